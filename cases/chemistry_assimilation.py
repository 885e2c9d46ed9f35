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
from typing import Literal

import numpy as np

from generator.protocols import DType

from .cycling import check_ensembles, describe_cycles, report_cycles
from .study import Output

__all__ = ["DESCRIPTION", "Settings", "run"]

DESCRIPTION = (
    "multivariate PKF assimilation cycles, two reacting species observed through A only, vs "
    "exact KF and EnKF 40/400"
)
COMPARED = ("V_A", "V_B", "V_AB", "L_A_x", "L_B_x")


@dataclass(frozen=True)
class Settings:
    """Grid, observation network, cycles, filters and numerics."""

    points: int = field(default=241, metadata={"help": "grid points"})
    cycles: int = field(default=5, metadata={"help": "forecast/analysis cycles"})
    window: float = field(default=0.2, metadata={"help": "time between analyses"})
    every: int = field(default=10, metadata={"help": "observe A every EVERY grid points"})
    error_variance: float = field(
        default=0.25, metadata={"help": "observation-error variance of A (mean V_A is 1)"}
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
        """121 points, 2 cycles, EnKFs of 20 and 100 members."""
        return cls(points=121, cycles=2, every=5, members=(20, 100))

    def validate(self) -> None:
        if self.points < 32 or self.cycles < 1 or not 1 <= self.every <= self.points:
            raise ValueError(
                "--points >= 32, --cycles >= 1 and 1 <= --every <= --points required, got "
                f"{self.points}, {self.cycles}, {self.every}"
            )
        if not (self.window > 0 and self.error_variance > 0):
            raise ValueError(
                f"--window and --error-variance must be > 0, got {self.window}, "
                f"{self.error_variance}"
            )
        if self.inflation < 1:
            raise ValueError(f"--inflation must be >= 1, got {self.inflation}")
        check_ensembles(self.members, self.localisation)


def run(settings: Settings, output: Output) -> dict:
    """Cycle KF, PKF (order 2 and 1) and the EnKFs observing A; write files and the summary."""
    from pkf.assimilation import EnKFSetup, ObservationNetwork, run_cycles

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
    network = ObservationNetwork("A", np.arange(0, n, settings.every), settings.error_variance)
    ensembles = [
        EnKFSetup(m, settings.variant, r if r > 0 else None, settings.inflation)
        for m, r in zip(settings.members, settings.localisation, strict=True)
    ]
    with output.step("cycles"):
        result = run_cycles(
            species,
            pkf_model,
            background,
            network,
            settings.window,
            settings.cycles,
            dt=(1.0 / n) / np.abs(wind(n)).max() / 6,
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
        "chemistry_assimilation",
        f"two species, {n} points, A observed every {settings.every} points",
        COMPARED,
        "A",
    )
    pkf = result.distances["pkf"]
    output.say(describe_cycles(result, "chemistry-assimilation", (*COMPARED, "B"), "A"))
    summary["acceptance"]["B_analysis"] = {"bar": None, "analysis": pkf["B"]["analysis"]}
    return summary
