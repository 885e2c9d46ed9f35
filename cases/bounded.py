"""Settings shared by the bounded 1D cases (advection-inflow, diffusion-neumann,
diffusion-dirichlet, issue 16): grid, ensemble size, final time, saved times and the time grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from generator.protocols import DType

__all__ = ["BoundedSettings"]


@dataclass(frozen=True)
class BoundedSettings:
    """Grid, ensemble size, final time and saved times of a bounded 1D case on [0, 1]."""

    points: int = field(default=201, metadata={"help": "grid points, both ends included"})
    members: int = field(default=6400, metadata={"help": "members of each ensemble"})
    final_time: float = field(default=1.0, metadata={"help": "final time"})
    saved: int = field(default=5, metadata={"help": "number of saved times"})
    seed: int = field(default=0, metadata={"help": "seed of ensemble 1 (ensemble 2: seed + 1)"})
    dtype: DType = field(default="float64", metadata={"help": "dtype"})

    def validate(self) -> None:
        if self.points < 32 or self.members < 2 or self.saved < 2:
            raise ValueError(
                "--points >= 32, --members >= 2 and --saved >= 2 required, got "
                f"{self.points}, {self.members}, {self.saved}"
            )
        if not self.final_time > 0:
            raise ValueError(f"--final-time: expected a positive time, got {self.final_time}")

    def grid(self) -> np.ndarray:
        """The ``points`` grid points of [0, 1], both ends included."""
        return np.linspace(0.0, 1.0, self.points)

    def time_grid(self, max_step: float) -> tuple[np.ndarray, np.ndarray]:
        """``(times, saved)``: uniform steps of at most ``max_step`` to ``final_time`` and the
        ``saved`` times among them, evenly spread from 0 to ``final_time``."""
        steps = int(np.ceil(self.final_time / max_step))
        times = np.arange(steps + 1) * (self.final_time / steps)
        return times, times[np.unique(np.rint(np.linspace(0, steps, self.saved)).astype(int))]
