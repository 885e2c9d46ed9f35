"""Multivariate assimilation cycles of two reacting species, observing A only.

The linear two-species transport of :mod:`cases.chemistry1d` (∂t A = −u ∂x A + k B,
∂t B = −u ∂x B − k A, u(x) = U (1 + sin(2πx)/3)) with the initial errors of that case (V_A =
1 − cos(2πx)/2, V_B = 1/4, independent, Gaussian length-scales 0.1 and 0.06). Every ``window``
A is observed every ``every`` grid points; B is never observed, so its mean, V_B and V_AB are
corrected only through the cross-covariance (the multivariate PKF analysis with the
cross-correlation model of Perrot et al. 2023). The reaction creates the cross-covariance
during each forecast (V_AB = 0 initially). Exact KF (both fields stacked), PKF (aspect form,
the "zero" cross closure of ``chemistry1d``) and two EnKFs cycle on the same observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cycling import CyclingSettings, cycle
from .study import Output

__all__ = ["DESCRIPTION", "Settings", "run"]

DESCRIPTION = (
    "multivariate PKF assimilation cycles, two reacting species observed through A only, vs "
    "exact KF and EnKF 40/400"
)
#: Compared with the exact KF: the covariance parameters and B's mean, corrected through V_AB only.
COMPARED = ("V_A", "V_B", "V_AB", "L_A_x", "L_B_x", "B")


@dataclass(frozen=True)
class Settings(CyclingSettings):
    """Grid of the case; cycles, network, filters as :class:`CyclingSettings` (A observed)."""

    points: int = field(default=241, metadata={"help": "grid points"})

    @classmethod
    def quick(cls) -> Settings:
        """121 points, 2 cycles, EnKFs of 20 and 100 members."""
        return cls(points=121, cycles=2, every=5, members=(20, 100))

    def validate(self) -> None:
        super().validate()
        if self.points < 32 or self.every > self.points:
            raise ValueError(
                f"--points >= 32 and --every <= --points required, got {self.points}, {self.every}"
            )


def run(settings: Settings, output: Output) -> dict:
    """Cycle KF, PKF (order 2 and 1) and the EnKFs observing A; write files and the summary."""
    from pkf.assimilation import ObservationNetwork, regular_network

    from .chemistry1d import PARAMETERS, build_models, wind

    n = settings.points
    x = np.arange(n) / n
    with output.step("build_models"):
        species, pkf_model, _ = build_models(n, 1.0, settings.dtype, settings.accuracy, "zero")
    background = {
        "A": np.exp(-((x - 0.5) ** 2) / (2 * 0.1**2)),
        "B": np.zeros(n),
        "V_A": 1.0 - np.cos(2 * np.pi * x) / 2.0,
        "V_B": np.full(n, PARAMETERS["V_B"]),
        "V_AB": np.zeros(n),
        "s_A_xx": np.full(n, PARAMETERS["L_A"] ** 2),
        "s_B_xx": np.full(n, PARAMETERS["L_B"] ** 2),
    }
    network = ObservationNetwork(
        "A", regular_network((n,), settings.every), settings.error_variance
    )
    _, summary = cycle(
        settings,
        output,
        (species, pkf_model),
        background,
        network,
        dt=(1.0 / n) / np.abs(wind(n)).max() / 6,
        stem="chemistry_assimilation",
        title=f"two species, {n} points, A observed every {settings.every} points",
        compared=COMPARED,
        main_field="A",
    )
    return summary
