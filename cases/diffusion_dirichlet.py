"""Heterogeneous 1D diffusion on [0, 1] with Dirichlet walls: the PKF against ensembles.

Dirichlet walls whose values carry time-correlated errors (variance V_b, time-scale τ): the
PKF's variance is V_b at the walls and its aspect tensor the forced one,
:func:`cases.bounded_diffusion.wall_aspect`.
The model, the PKF and the comparison are those of :mod:`cases.bounded_diffusion`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .bounded import BoundedSettings
from .bounded_diffusion import run_bounded
from .study import Output

__all__ = ["DESCRIPTION", "Settings", "run"]

DESCRIPTION = "1D heterogeneous diffusion with uncertain Dirichlet walls: bounded PKF vs ensemble"
#: The two ensembles can run on a Dask cluster (--workers N, --scheduler ADDRESS).
SUPPORTS_CLUSTER = True


@dataclass(frozen=True)
class Settings(BoundedSettings):
    """Grid, ensemble size, final time and saved times."""

    @classmethod
    def quick(cls) -> Settings:
        """101 points and 800 members."""
        return cls(points=101, members=800)


def run(settings: Settings, output: Output) -> dict:
    """The bounded PKF against two independent ensembles (:func:`run_bounded`)."""
    return run_bounded(settings, output, "dirichlet")
