"""Point observations of one field on grid points: values, error variances, validation.

An :class:`Observations` holds observations ``y_k = x_f(l_k) + e_k`` of one field ``f`` at grid
points ``l_k`` (the observation operator ``H`` picks grid values) with independent errors of
variance ``R_k``; :meth:`Observations.from_truth` draws them from a nature run with seeded errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from generator.validation import real_array

__all__ = ["Observations", "regular_network"]


def _as_indices(indices: ArrayLike) -> np.ndarray:
    """``(m,)`` ints (1D) or ``(m, ndim)`` int tuples as an ``(m, ndim)`` int64 array."""
    array = np.asarray(indices)
    if array.size == 0:
        raise ValueError("indices: at least one observation is needed, got none")
    if array.dtype.kind not in "iu":
        if (
            array.dtype.kind == "f"
            and np.all(np.isfinite(array))
            and np.all(array == np.round(array))
        ):
            array = array.astype(np.int64)
        else:
            raise ValueError(
                f"indices: expected integer grid indices (tuples in 2D/3D), got {array.dtype} "
                f"values {array.ravel()[:5].tolist()}"
            )
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or not 1 <= array.shape[1] <= 3:
        raise ValueError(
            f"indices: expected shape (m,) or (m, ndim) with ndim 1 to 3, got {array.shape}"
        )
    return array.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Observations:
    """Point observations of one field on grid indices.

    Parameters
    ----------
    field : str
        The observed prognostic field (e.g. ``"c"``); its mean is the state entry of that name.
    indices : array_like of int
        Grid indices of the observed points: ``(m,)`` in 1D, ``(m, ndim)`` tuples in 2D/3D,
        in the model's coordinate order (``model.coordinates``).
    values : array_like
        ``(m,)`` observed values (units of the field).
    error_variance : float or array_like
        Observation-error variance ``R``, one value or ``(m,)`` (units of the field squared,
        ``>= 0``; errors are independent).
    shape : tuple of int, optional
        The grid shape, to check the indices at once (they are checked again against the state
        by :func:`pkf.assimilation.analysis`).

    Raises
    ------
    ValueError
        Naming the argument: an empty or non-integral index list, an index off the grid,
        a NaN or infinite value, a negative or non-finite error variance, mismatched lengths.

    Examples
    --------
    >>> obs = Observations("c", indices=[3, 10], values=[0.5, -0.2], error_variance=0.25)
    >>> obs.count, obs.error_variance.tolist()
    (2, [0.25, 0.25])
    >>> Observations("c", indices=[3], values=[float("nan")], error_variance=0.25)
    Traceback (most recent call last):
    ...
    ValueError: values: observation 0 (field 'c' at index (3,)) is not finite: nan
    """

    field: str
    indices: np.ndarray
    values: np.ndarray
    error_variance: np.ndarray
    shape: tuple[int, ...] | None = None

    def __init__(
        self,
        field: str,
        indices: ArrayLike,
        values: ArrayLike,
        error_variance: ArrayLike,
        shape: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(field, str) or not field:
            raise ValueError(f"field: expected a field name, got {field!r}")
        index = _as_indices(indices)
        count = len(index)
        value = np.atleast_1d(real_array(values, "values"))
        if value.shape != (count,):
            raise ValueError(
                f"values: expected one value per observation ({count}), got shape {value.shape}"
            )
        bad = np.flatnonzero(~np.isfinite(value))
        if bad.size:
            k = int(bad[0])
            raise ValueError(
                f"values: observation {k} (field {field!r} at index {tuple(index[k].tolist())}) "
                f"is not finite: {value[k]}"
            )
        variance = real_array(error_variance, "error_variance")
        if variance.ndim == 0:
            variance = np.full(count, float(variance))
        if variance.shape != (count,):
            raise ValueError(
                f"error_variance: expected a scalar or one value per observation ({count}), "
                f"got shape {variance.shape}"
            )
        wrong = np.flatnonzero(~(np.isfinite(variance) & (variance >= 0)))
        if wrong.size:
            k = int(wrong[0])
            raise ValueError(
                f"error_variance: must be finite and >= 0, got {variance[k]} for observation {k} "
                f"(field {field!r} at index {tuple(index[k].tolist())})"
            )
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "indices", index)
        object.__setattr__(self, "values", value.astype(np.float64))
        object.__setattr__(self, "error_variance", variance.astype(np.float64))
        object.__setattr__(self, "shape", None if shape is None else tuple(int(n) for n in shape))
        for array in (self.indices, self.values, self.error_variance):
            array.setflags(write=False)
        if self.shape is not None:
            self.check_grid(self.shape)

    def __repr__(self) -> str:
        return (
            f"Observations(field={self.field!r}, count={self.count}, "
            f"error_variance={np.unique(self.error_variance).tolist()[:3]})"
        )

    @property
    def count(self) -> int:
        """Number of observations ``m``."""
        return len(self.values)

    @property
    def ndim(self) -> int:
        """Number of grid dimensions of the indices."""
        return int(self.indices.shape[1])

    def check_grid(self, shape: Sequence[int], fields: Sequence[str] | None = None) -> None:
        """Check the field name and that every index lies on a grid of ``shape``.

        Raises
        ------
        ValueError
            For an unknown field (listing ``fields``), a dimension mismatch or an index off the
            grid (naming the observation and the grid shape).
        """
        shape = tuple(int(n) for n in shape)
        if fields is not None and self.field not in fields:
            raise ValueError(
                f"observations: unknown field {self.field!r}; the state's fields are {list(fields)}"
            )
        if self.ndim != len(shape):
            raise ValueError(
                f"indices: {self.ndim}D indices for a {len(shape)}D grid of shape {shape}"
            )
        outside = np.flatnonzero(((self.indices < 0) | (self.indices >= shape)).any(axis=1))
        if outside.size:
            k = int(outside[0])
            raise ValueError(
                f"indices: observation {k} of field {self.field!r} at index "
                f"{tuple(self.indices[k].tolist())} is off the grid of shape {shape} "
                f"({outside.size} observation(s) off the grid)"
            )

    def flat_indices(self, shape: Sequence[int]) -> np.ndarray:
        """``(m,)`` indices into the flattened grid (C order) of ``shape``."""
        self.check_grid(shape)
        return np.ravel_multi_index(tuple(self.indices.T), tuple(shape))

    def innovation(self, mean: ArrayLike) -> np.ndarray:
        """``y - H x``: ``(m,)`` observed minus the field ``mean`` (grid shape) at the points."""
        mean = np.asarray(mean, dtype=np.float64)
        self.check_grid(mean.shape)
        return self.values - mean[tuple(self.indices.T)]

    @classmethod
    def from_truth(
        cls,
        truth: Mapping[str, ArrayLike] | ArrayLike,
        field: str,
        indices: ArrayLike,
        error_variance: ArrayLike,
        seed: int | np.random.Generator | None = None,
    ) -> Observations:
        """Observations of a nature run: ``y = x_true(l) + sqrt(R) z``, ``z ~ N(0, 1)``.

        Parameters
        ----------
        truth : mapping or array_like
            The true state ``{field: grid array}`` (model coordinate order) or the observed
            field itself.
        field, indices, error_variance
            As in :class:`Observations`.
        seed : int, numpy.random.Generator or None
            Seed or generator of the observation errors (the same seed gives the same errors).

        Examples
        --------
        >>> truth = {"c": np.linspace(0.0, 1.0, 11)}
        >>> obs = Observations.from_truth(truth, "c", [0, 5, 10], 0.0, seed=1)
        >>> obs.values.tolist()  # error variance 0: the true values
        [0.0, 0.5, 1.0]
        """
        if isinstance(truth, Mapping):
            if field not in truth:
                raise ValueError(
                    f"observations: unknown field {field!r}; the truth has fields {list(truth)}"
                )
            true_field = real_array(truth[field], f"truth[{field!r}]")
        else:
            true_field = real_array(truth, "truth")
        index = _as_indices(indices)
        probe = cls(field, index, np.zeros(len(index)), error_variance, shape=true_field.shape)
        rng = np.random.default_rng(seed)
        errors = np.sqrt(probe.error_variance) * rng.standard_normal(probe.count)
        values = true_field[tuple(probe.indices.T)] + errors
        return cls(field, probe.indices, values, probe.error_variance, shape=true_field.shape)


def regular_network(
    shape: Sequence[int], every: int | Sequence[int], offset: int = 0
) -> np.ndarray:
    """Indices of a regular observation network: every ``every`` points along each axis.

    On the periodic grid the last point of an axis is dropped when it lies closer than
    ``every / 2`` to the first one across the boundary (241 points every 10: 0, 10, ..., 230,
    not 240 beside 0), so that no two observations are nearly on top of each other.

    Returns
    -------
    numpy.ndarray
        ``(m, ndim)`` int64 indices (C order of the network), starting at ``offset``.

    Examples
    --------
    >>> regular_network((8, 8), 4).tolist()
    [[0, 0], [0, 4], [4, 0], [4, 4]]
    >>> regular_network((241,), 10)[-2:].ravel().tolist()
    [220, 230]
    """
    shape = tuple(int(n) for n in shape)
    steps = np.atleast_1d(np.asarray(every))
    if steps.size == 1:
        steps = np.repeat(steps, len(shape))
    if steps.shape != (len(shape),) or steps.dtype.kind not in "iu" or (steps < 1).any():
        raise ValueError(f"every: expected a positive integer step per axis, got {every!r}")
    axes = []
    for n, step in zip(shape, steps, strict=True):
        points = np.arange(offset % n, n, int(step))
        if len(points) > 1 and (points[0] + n - points[-1]) < step / 2:
            points = points[:-1]
        axes.append(points)
    grids = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
