"""The periodic grid of an assimilation: spacing, periodic displacements, centred differences.

Everything here works on numpy arrays in the model's coordinate order; a field has the grid
shape, a batch of fields a leading axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from generator.stencils import stencil_weights
from generator.validation import per_axis, positive_int

__all__ = ["Grid", "COORDINATES"]

#: Default coordinate names by dimension (the names the cases' equations use).
COORDINATES = ("x", "y", "z")


@dataclass(frozen=True)
class Grid:
    """A uniform periodic grid ``x_i = k_i * lengths[i] / shape[i]``.

    Parameters
    ----------
    shape : tuple of int
        Points per axis (model coordinate order), 1 to 3 axes.
    lengths : tuple of float
        Domain length per axis (length units).
    coordinates : tuple of str
        Axis names (``("x",)``, ``("x", "y")``...), used in the tensor component names.

    Examples
    --------
    >>> grid = Grid.make((8,), 1.0)
    >>> grid.spacing, grid.displacement(np.array([1]), np.array([7]))[0].tolist()
    ((0.125,), [0.25])
    """

    shape: tuple[int, ...]
    lengths: tuple[float, ...]
    coordinates: tuple[str, ...]

    @classmethod
    def make(
        cls,
        shape: Sequence[int],
        lengths: float | Sequence[float] = 1.0,
        coordinates: Sequence[str] | None = None,
    ) -> Grid:
        """Validated grid: ``lengths`` a number or one per axis, default coordinate names."""
        shape = tuple(positive_int(n, "shape") for n in shape)
        if not 1 <= len(shape) <= 3:
            raise ValueError(f"shape: expected 1 to 3 grid dimensions, got {shape}")
        if any(n < 5 for n in shape):
            raise ValueError(f"shape: every axis needs at least 5 points, got {shape}")
        lengths = per_axis(lengths, len(shape), "lengths", "float")
        names = tuple(coordinates) if coordinates is not None else COORDINATES[: len(shape)]
        if len(names) != len(shape):
            raise ValueError(
                f"coordinates: expected {len(shape)} names for a {len(shape)}D grid, got {names}"
            )
        return cls(shape, lengths, names)

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of grid points."""
        return int(np.prod(self.shape))

    @property
    def spacing(self) -> tuple[float, ...]:
        """Grid spacing per axis."""
        return tuple(L / n for L, n in zip(self.lengths, self.shape, strict=True))

    def pairs(self) -> list[tuple[int, int]]:
        """Upper-triangle index pairs ``(i, j)``, ``i <= j``: the stored tensor components."""
        return [(i, j) for i in range(self.ndim) for j in range(i, self.ndim)]

    def pair_label(self, i: int, j: int) -> str:
        """``"xy"`` for the pair (0, 1) of coordinates ``("x", "y")``."""
        return self.coordinates[i] + self.coordinates[j]

    def unravel(self, flat: np.ndarray) -> np.ndarray:
        """``(k, ndim)`` grid indices of flat (C order) indices ``(k,)``."""
        return np.stack(np.unravel_index(np.asarray(flat), self.shape), axis=-1)

    def displacement(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Shortest periodic displacement ``x_p - x_q``, ``(ndim, *broadcast shape)``.

        ``p`` and ``q`` are flat grid indices (arrays that broadcast together). Half a period
        (even ``n``) is ``+-n/2`` by the sign of the index difference, so that
        ``d(p, q) = -d(q, p)`` exactly.
        """
        p_index = np.unravel_index(np.asarray(p), self.shape)
        q_index = np.unravel_index(np.asarray(q), self.shape)
        parts = []
        for a, b, n, dx in zip(p_index, q_index, self.shape, self.spacing, strict=True):
            raw = np.asarray(a) - np.asarray(b)
            k = np.mod(raw, n)
            k = np.where(k > n // 2, k - n, k)
            if n % 2 == 0:  # half the domain: keep the sign of the raw difference (d_pq = -d_qp)
                k = np.where(np.abs(raw) == n // 2, raw, k)
            parts.append(k * dx)
        return np.stack(np.broadcast_arrays(*parts))

    def derivative(self, field: np.ndarray, axis: int, accuracy: int = 2) -> np.ndarray:
        """Centred periodic first derivative along grid axis ``axis`` of the trailing grid axes.

        ``field`` is ``(..., *shape)``; the stencil has ``accuracy`` order
        (:func:`generator.stencils.stencil_weights`), the same weights as the generated models.
        """
        offsets, weights = stencil_weights(1, accuracy)
        position = field.ndim - self.ndim + axis
        result = np.zeros(field.shape)
        for offset, weight in zip(offsets, weights, strict=True):
            if weight:
                result += weight * np.roll(field, -int(offset), axis=position)
        return result / self.spacing[axis]
