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

import numpy as np

from .cycling import CyclingSettings, cycle
from .study import Output

__all__ = ["DESCRIPTION", "Settings", "run"]

DESCRIPTION = (
    "PKF assimilation cycles, 2D tracer in a rotating wind (anisotropic analysis) vs exact KF "
    "and EnKF 40/400"
)
COMPARED = ("V_c", "s_c_xx", "s_c_xy", "s_c_yy")


@dataclass(frozen=True)
class Settings(CyclingSettings):
    """Grid and initial error of the case; cycles, network, filters as :class:`CyclingSettings`."""

    points: int = field(default=64, metadata={"help": "grid points per axis"})
    length_scale: float = field(
        default=0.1, metadata={"help": "initial correlation length-scale (domain units)"}
    )
    every: int = field(default=8, metadata={"help": "observe every EVERY points along each axis"})
    projected: bool = field(
        default=False,
        metadata={
            "help": "also cycle the exact KF projected onto the PKF covariance model before each "
            "analysis (kf_projected: the covariance model's own error; a dense factorisation "
            "of points**2 rows per cycle, about 30 s at 64²)"
        },
    )

    @classmethod
    def quick(cls) -> Settings:
        """32² grid, length-scale 0.2, 2 cycles, EnKFs of 20 and 100 members."""
        return cls(points=32, cycles=2, length_scale=0.2, members=(20, 100))

    def validate(self) -> None:
        super().validate()
        if self.points < 16 or self.every > self.points:
            raise ValueError(
                f"--points >= 16 and --every <= --points required, got {self.points}, {self.every}"
            )
        if self.points > 76:
            raise ValueError(
                f"--points {self.points}: the exact KF holds points**4 covariance values; at "
                "most 76 (about 270 MB)"
            )
        if not self.length_scale > 0:
            raise ValueError(f"--length-scale must be > 0, got {self.length_scale}")


def run(settings: Settings, output: Output) -> dict:
    """Cycle KF, PKF (order 2 and 1) and the EnKFs; write netCDF, maps and the summary."""
    from pkf.assimilation import ObservationNetwork, regular_network

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
    _, summary = cycle(
        settings,
        output,
        (model, pkf_model),
        background,
        network,
        dt=time_step(rotating_wind(shape, lengths), spacing),
        stem="assimilation2d",
        title=f"2D rotating wind, {settings.points}², observations every {settings.every} points",
        compared=COMPARED,
        main_field="c",
    )
    return summary
