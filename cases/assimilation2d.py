"""Assimilation cycles of a tracer in the rotating 2D wind of ``advection2d``: the anisotropic
PKF analysis against the exact KF and EnKFs.

∂t c + u ∂x c + v ∂y c = 0 on the periodic unit square with the rotating heterogeneous wind of
:func:`cases.advection2d.rotating_wind`. The initial error is Gaussian-correlated (isotropic
length-scale 0.1, variance 1); every ``window`` the tracer is observed on a regular network
(every ``every`` grid points along each axis) with error variance 0.25. The exact Kalman filter
(``points**2`` columns forecast as one batch), the PKF (aspect form: V and the three aspect
components, order-2 and order-1 analyses) and two EnKFs cycle on the same observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from generator.protocols import DType

from .cycling import check_ensembles, describe_cycles, report_cycles
from .study import Output

__all__ = ["DESCRIPTION", "Settings", "run"]

DESCRIPTION = (
    "PKF assimilation cycles, 2D tracer in a rotating wind (anisotropic analysis) vs exact KF "
    "and EnKF 40/400"
)
COMPARED = ("V_c", "s_c_xx", "s_c_xy", "s_c_yy")


@dataclass(frozen=True)
class Settings:
    """Grid, observation network, cycles, filters and numerics."""

    points: int = field(default=64, metadata={"help": "grid points per axis"})
    cycles: int = field(default=5, metadata={"help": "forecast/analysis cycles"})
    window: float = field(default=0.2, metadata={"help": "time between analyses (units of T)"})
    every: int = field(default=8, metadata={"help": "observe every EVERY points along each axis"})
    length_scale: float = field(
        default=0.1, metadata={"help": "initial correlation length-scale (domain units)"}
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
    projected: bool = field(
        default=False,
        metadata={
            "help": "also cycle the exact KF projected onto the PKF covariance model before each "
            "analysis (kf_projected: the covariance model's own error; a dense factorisation "
            "of points**2 rows per cycle, about 30 s at 64²)"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the truth, observations, EnKFs"})
    dtype: DType = field(default="float64", metadata={"help": "dtype"})
    accuracy: Literal[2, 4, 6] = field(default=4, metadata={"help": "stencil order"})

    @classmethod
    def quick(cls) -> Settings:
        """32² grid, length-scale 0.2, 2 cycles, EnKFs of 20 and 100 members."""
        return cls(points=32, cycles=2, length_scale=0.2, members=(20, 100))

    def validate(self) -> None:
        if self.points < 16 or self.cycles < 1 or not 1 <= self.every <= self.points:
            raise ValueError(
                "--points >= 16, --cycles >= 1 and 1 <= --every <= --points required, got "
                f"{self.points}, {self.cycles}, {self.every}"
            )
        if self.points > 76:
            raise ValueError(
                f"--points {self.points}: the exact KF holds points**4 covariance values; at "
                "most 76 (about 270 MB)"
            )
        if not (self.window > 0 and self.length_scale > 0 and self.error_variance > 0):
            raise ValueError(
                "--window, --length-scale and --error-variance must be > 0, got "
                f"{self.window}, {self.length_scale}, {self.error_variance}"
            )
        if self.inflation < 1:
            raise ValueError(f"--inflation must be >= 1, got {self.inflation}")
        check_ensembles(self.members, self.localisation)


def run(settings: Settings, output: Output) -> dict:
    """Cycle KF, PKF (order 2 and 1) and the EnKFs; write netCDF, maps and the summary."""
    from pkf.assimilation import EnKFSetup, ObservationNetwork, regular_network, run_cycles

    from .advection2d import build_models, rotating_wind, time_step

    shape, lengths = (settings.points, settings.points), (1.0, 1.0)
    spacing = (1.0 / settings.points, 1.0 / settings.points)
    with output.step("build_models"):
        model, pkf_model, _ = build_models(shape, lengths, settings.dtype, settings.accuracy)
    variance = settings.length_scale**2
    background = {
        "c": np.zeros(shape),
        "V_c": np.ones(shape),
        "s_c_xx": np.full(shape, variance),
        "s_c_xy": np.zeros(shape),
        "s_c_yy": np.full(shape, variance),
    }
    network = ObservationNetwork(
        "c", regular_network(shape, settings.every), settings.error_variance
    )
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
            dt=time_step(rotating_wind(shape, lengths), spacing),
            ensembles=ensembles,
            orders=(2, 1),
            forecast_metric=settings.forecast_metric,
            projected=settings.projected,
            seed=settings.seed,
            progress=output.progress,
        )
    summary = report_cycles(
        result,
        output,
        "assimilation2d",
        f"2D rotating wind, {settings.points}², observations every {settings.every} points",
        COMPARED,
        "c",
    )
    output.say(describe_cycles(result, "assimilation2d", COMPARED, "c"))
    return summary
