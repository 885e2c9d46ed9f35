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
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from generator.protocols import DType

from .cycling import CyclingSettings, cycle
from .study import Output

if TYPE_CHECKING:
    from generator.model import GeneratedModel

__all__ = ["DESCRIPTION", "Settings", "advection_equation", "build_models", "run", "wind"]

DESCRIPTION = (
    "PKF assimilation cycles, 1D tracer in a heterogeneous wind: vs exact KF and EnKF 40/400"
)
COMPARED = ("V_c", "L_c_x")


@dataclass(frozen=True)
class Settings(CyclingSettings):
    """Grid and initial error of the case; cycles, network, filters as :class:`CyclingSettings`."""

    points: int = field(default=241, metadata={"help": "grid points"})
    length_scale: float = field(
        default=10.0, metadata={"help": "initial correlation length-scale (grid spacings)"}
    )
    cycles: int = field(default=10, metadata={"help": "forecast/analysis cycles"})
    window: float = field(default=0.1, metadata={"help": "time between analyses"})

    @classmethod
    def quick(cls) -> Settings:
        """3 cycles, EnKFs of 20 and 100 members."""
        return cls(cycles=3, members=(20, 100))

    def validate(self) -> None:
        super().validate()
        if self.points < 32 or self.every > self.points:
            raise ValueError(
                f"--points >= 32 and --every <= --points required, got {self.points}, {self.every}"
            )
        if not self.length_scale > 0:
            raise ValueError(f"--length-scale must be > 0, got {self.length_scale}")


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
    from pkf.assimilation import ObservationNetwork, regular_network

    n = settings.points
    dx = 1.0 / n
    with output.step("build_models"):
        models = build_models(n, settings.dtype, settings.accuracy)
    background = {
        "c": np.zeros(n),
        "V_c": np.ones(n),
        "s_c_xx": np.full(n, (settings.length_scale * dx) ** 2),
    }
    network = ObservationNetwork(
        "c", regular_network((n,), settings.every), settings.error_variance
    )
    _, summary = cycle(
        settings,
        output,
        models,
        background,
        network,
        dt=dx / np.abs(wind(n)).max() / 6,
        stem="assimilation1d",
        title=f"1D advection, {n} points, an observation every {settings.every} points",
        compared=COMPARED,
        main_field="c",
    )
    return summary
