"""Assimilation cycles of a tracer in a 1D heterogeneous wind: PKF vs exact KF vs EnKF.

∂t c + u(x) ∂x c = 0 on the periodic unit interval, u = 1 + 0.3 sin 2πx. The initial error is
Gaussian-correlated (length-scale 10 Δx, variance 1); every ``window`` the tracer is observed
every ``every`` grid points with error variance 0.25 (a quarter of the initial variance). The
exact Kalman filter (the full covariance propagated through the generated tracer model), the
PKF (generated from :class:`pkf.SymbolicPKF`, aspect form, analysis of
:func:`pkf.assimilation.analysis` with order-2 and order-1 tensor updates) and two EnKFs (serial
square-root, Gaspari-Cohn localisation) cycle on the same observations of one nature run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import sympy as sp

from generator.protocols import DType

from .cycling import check_ensembles, describe_cycles, report_cycles
from .study import Output

if TYPE_CHECKING:
    from generator.model import GeneratedModel

__all__ = ["DESCRIPTION", "Settings", "advection_equation", "build_models", "run", "wind"]

DESCRIPTION = (
    "PKF assimilation cycles, 1D tracer in a heterogeneous wind: vs exact KF and EnKF 40/400"
)
COMPARED = ("V_c", "L_c_x")


@dataclass(frozen=True)
class Settings:
    """Grid, observation network, cycles, filters and numerics."""

    points: int = field(default=241, metadata={"help": "grid points"})
    cycles: int = field(default=10, metadata={"help": "forecast/analysis cycles"})
    window: float = field(default=0.1, metadata={"help": "time between analyses"})
    every: int = field(default=10, metadata={"help": "observe every EVERY grid points"})
    length_scale: float = field(
        default=10.0, metadata={"help": "initial correlation length-scale (grid spacings)"}
    )
    error_variance: float = field(
        default=0.25, metadata={"help": "observation-error variance (initial variance 1)"}
    )
    members: tuple[int, ...] = field(default=(40, 400), metadata={"help": "EnKF sizes"})
    localisation: tuple[float, ...] = field(
        default=(0.3, 0.6),
        metadata={"help": "Gaspari-Cohn radius of each EnKF (domain units, <= 0: none)"},
    )
    inflation: float = field(default=1.0, metadata={"help": "EnKF multiplicative inflation"})
    variant: Literal["square-root", "stochastic"] = field(
        default="square-root", metadata={"help": "EnKF analysis"}
    )
    forecast_metric: Literal["model", "state"] = field(
        default="model", metadata={"help": "forecast metric of the PKF order-2 update"}
    )
    refit: bool = field(
        default=False, metadata={"help": "re-fit the PKF covariance model after each observation"}
    )
    projected: bool = field(
        default=True,
        metadata={
            "help": "also cycle the exact KF projected onto the PKF covariance model before each "
            "analysis (kf_projected: the covariance model's own error)"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the truth, observations, EnKFs"})
    dtype: DType = field(default="float64", metadata={"help": "dtype"})
    accuracy: Literal[2, 4, 6] = field(default=4, metadata={"help": "stencil order"})

    @classmethod
    def quick(cls) -> Settings:
        """3 cycles, EnKFs of 20 and 100 members."""
        return cls(cycles=3, members=(20, 100))

    def validate(self) -> None:
        if self.points < 32 or self.cycles < 1 or not 1 <= self.every <= self.points:
            raise ValueError(
                "--points >= 32, --cycles >= 1 and 1 <= --every <= --points required, got "
                f"{self.points}, {self.cycles}, {self.every}"
            )
        if not (self.window > 0 and self.length_scale > 0 and self.error_variance > 0):
            raise ValueError(
                "--window, --length-scale and --error-variance must be > 0, got "
                f"{self.window}, {self.length_scale}, {self.error_variance}"
            )
        if self.inflation < 1:
            raise ValueError(f"--inflation must be >= 1, got {self.inflation}")
        check_ensembles(self.members, self.localisation)


def advection_equation() -> sp.Eq:
    """∂t c = −u(x) ∂x c, the wind a constant field."""
    t, x = sp.symbols("t x")
    c = sp.Function("c")(t, x)
    u = sp.Function("u")(x)
    return sp.Eq(sp.Derivative(c, t), -u * sp.Derivative(c, x))


def wind(points: int, length: float = 1.0) -> np.ndarray:
    """u(x) = 1 + 0.3 sin(2π x / D), (nx,), length / time."""
    x = np.arange(points) * length / points
    return 1.0 + 0.3 * np.sin(2 * np.pi * x / length)


def build_models(points: int, dtype: DType, accuracy: int) -> tuple[GeneratedModel, GeneratedModel]:
    """The generated tracer model and its PKF model (aspect form), both with the wind set."""
    from generator import NNModelBuilder
    from pkf import SymbolicPKF

    equation = advection_equation()
    symbolic = SymbolicPKF(equation)
    if symbolic.unclosed_terms:
        raise RuntimeError(f"the PKF of advection should be closed, got {symbolic.unclosed_terms}")
    tracer = NNModelBuilder(equation, "Tracer1D", accuracy=accuracy).build()
    pkf = NNModelBuilder(
        symbolic.to_generator(form="aspect", closure="zero"), "PKFTracer1D", accuracy=accuracy
    ).build()
    u = wind(points)
    return (
        tracer(shape=points, lengths=1.0, dtype=dtype, u=u),
        pkf(shape=points, lengths=1.0, dtype=dtype, u=u),
    )


def run(settings: Settings, output: Output) -> dict:
    """Cycle KF, PKF (order 2 and 1) and the EnKFs; write netCDF, figures and the summary."""
    from pkf.assimilation import EnKFSetup, ObservationNetwork, run_cycles

    n = settings.points
    dx = 1.0 / n
    with output.step("build_models"):
        model, pkf_model = build_models(n, settings.dtype, settings.accuracy)
    background = {
        "c": np.zeros(n),
        "V_c": np.ones(n),
        "s_c_xx": np.full(n, (settings.length_scale * dx) ** 2),
    }
    network = ObservationNetwork("c", np.arange(0, n, settings.every), settings.error_variance)
    ensembles = [
        EnKFSetup(m, settings.variant, r if r > 0 else None, settings.inflation)
        for m, r in zip(settings.members, settings.localisation, strict=True)
    ]
    with output.step("cycles"):
        result = run_cycles(
            model,
            pkf_model,
            background,
            network,
            settings.window,
            settings.cycles,
            dt=dx / np.abs(wind(n)).max() / 6,
            ensembles=ensembles,
            orders=(2, 1),
            refit=settings.refit,
            forecast_metric=settings.forecast_metric,
            projected=settings.projected,
            seed=settings.seed,
            progress=output.progress,
        )
    summary = report_cycles(
        result,
        output,
        "assimilation1d",
        f"1D advection, {n} points, an observation every {settings.every} points",
        COMPARED,
        "c",
    )
    output.say(describe_cycles(result, "assimilation1d", COMPARED, "c"))
    return summary
