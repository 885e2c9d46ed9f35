"""PKF statistics of an ensemble: mean, variance, metric/aspect/diffusion tensors, cross terms.

Direct functions work on a whole ensemble ``(members, *grid)``. :class:`MomentAccumulator` keeps
mergeable centred moments (Chan et al. parallel update) so that chunks of members, processed
separately or on other machines, give the single-pass statistics to rounding.

Derivatives are the second-order centred periodic difference
``D_i f(p) = (f(p + e_i) - f(p - e_i)) / (2 dx_i)`` on the last ``ndim`` axes, applied to the
normalised error ``eps = (x - mean) / sqrt(V)`` member by member; ``g_ij = mean(D_i eps D_j eps)``.

Bounded axes (``periodic=`` per grid axis, default all periodic: the results above, bit for
bit): the difference is centred in the interior and first-order one-sided at the two end points
of a bounded axis (``(f(1) - f(0)) / dx`` at ``p = 0``, ``(f(n-1) - f(n-2)) / dx`` at
``p = n - 1``); no value is ever wrapped around. A zero variance is accepted on the end points
of bounded axes only (a Dirichlet side with exact boundary values): ``eps`` is undefined there,
so the normalised statistics (metric, aspect, diffusion, length-scale, correlations) are NaN at
those points, and a point whose neighbour along an axis is such a point uses the one-sided
difference on its other side (NaN if it has none). A zero variance anywhere else raises, as on
periodic grids.
This stencil biases ``g`` low when the length-scale is only a few ``dx`` (relative bias about
``(dx / L)**2``); :func:`debias_diffusion` undoes it for a locally Gaussian correlation.

Estimators, for ``N`` members:

- mean (:func:`ensemble_mean`, :meth:`MomentAccumulator.mean`): the arithmetic mean;
- variance and cross-covariance (:func:`ensemble_variance`, :func:`cross_covariance`, the
  ``variance`` of :func:`ensemble_statistics`, and the same methods of
  :class:`MomentAccumulator`): the population estimator, divisor ``N`` (the convention of the
  PKF papers) by default; ``ddof=1`` gives the unbiased divisor ``N - 1``. Label outputs with
  :func:`variance_estimator`;
- normalised error, metric, aspect and diffusion tensors, length-scale and cross-correlation:
  ratios of co-moments that share one divisor, hence the same for either ``ddof`` (``eps`` is
  normalised with the population variance, so that ``mean(eps**2) = 1``).

Accuracy: every moment is taken about a shift, the first member, so that an ensemble whose mean
is far larger than its spread loses nothing to cancellation (errors of order ``eps * spread``,
not ``eps * |mean|``, with ``eps`` the float64 rounding unit), in one pass and across merges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MomentAccumulator",
    "Moments",
    "aspect_from_metric",
    "centred_difference",
    "chunk_moments",
    "cross_correlation",
    "cross_covariance",
    "debias_diffusion",
    "diffusion_from_metric",
    "ensemble_mean",
    "ensemble_statistics",
    "ensemble_variance",
    "length_scale_from_metric",
    "merge_moments",
    "metric_from_ensemble",
    "metric_lags",
    "moment_keys",
    "normalized_error",
    "variance_estimator",
]

Lag = tuple[int, ...]
MomentKey = tuple[str, str, Lag]

#: Smallest eigenvalue, relative to the unit diagonal, of the diagonally scaled metric
#: ``g_ij / sqrt(g_ii g_jj)`` accepted as positive definite. A metric from fewer members than
#: grid dimensions plus one is singular, and rounding leaves its eigenvalue near 1e-16.
_DEGENERATE_METRIC = 1e-12


# ---------------------------------------------------------------------------- validation


def _as_spacing(spacing: float | Sequence[float]) -> tuple[float, ...]:
    values = np.atleast_1d(np.asarray(spacing, dtype=float))
    valid = values.ndim == 1 and 1 <= values.size <= 3
    if not valid or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"spacing: expected 1 to 3 positive finite grid spacings, got {spacing}")
    return tuple(float(v) for v in values)


def _check_finite_members(ensemble: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(ensemble)
    if bad.any():
        members = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
        listed = ", ".join(str(k) for k in members[:10]) + (", ..." if members.size > 10 else "")
        raise ValueError(
            f"{name}: {np.count_nonzero(bad)} non-finite values (NaN or Inf) in members "
            f"[{listed}] of {ensemble.shape[0]}"
        )


def _as_ensemble(ensemble: ArrayLike, ndim: int = 0, name: str = "ensemble") -> np.ndarray:
    """``(members, *grid)`` float64 with at least one member, ``ndim`` grid axes, all finite."""
    ensemble = np.asarray(ensemble, dtype=np.float64)
    if ensemble.ndim < ndim + 1:
        raise ValueError(
            f"{name}: expected shape (members, *grid) with {ndim} grid axes, got {ensemble.shape}"
        )
    if ensemble.shape[0] < 1:
        raise ValueError(f"{name}: needs at least one member, got shape {ensemble.shape}")
    _check_finite_members(ensemble, name)
    return ensemble


def _check_grid(shape: tuple[int, ...], ndim: int) -> None:
    grid = shape[len(shape) - ndim :]
    if len(grid) != ndim or min(grid) < 3:
        raise ValueError(
            f"grid: the centred difference needs at least 3 points on each of the last {ndim} "
            f"axes (with fewer, f(p + 1) = f(p - 1) and the metric is 0), got shape {shape}"
        )


def _check_positive_variance(variance: np.ndarray, name: str = "variance") -> None:
    bad = np.count_nonzero(~(variance > 0))
    if bad:
        raise ValueError(
            f"{name}: {bad} of {variance.size} points have V <= 0 (or NaN); the normalised "
            "error eps = e / sqrt(V) is undefined there"
        )


def _as_periodic(periodic: bool | Sequence[bool] | None, ndim: int) -> tuple[bool, ...]:
    """One flag per grid axis: True periodic, False bounded (``None``: all periodic)."""
    if periodic is None:
        return (True,) * ndim
    if isinstance(periodic, bool | np.bool_):
        return (bool(periodic),) * ndim
    values = tuple(periodic)
    if len(values) != ndim or not all(isinstance(v, bool | np.bool_) for v in values):
        raise ValueError(
            f"periodic: expected one bool per grid axis ({ndim}), True for a periodic axis and "
            f"False for a bounded one, got {periodic!r}"
        )
    return tuple(bool(v) for v in values)


def _boundary_points(grid: tuple[int, ...], periodic: tuple[bool, ...]) -> np.ndarray:
    """Grid-shaped mask of the end points of the bounded axes (where ``V = 0`` is accepted)."""
    mask = np.zeros(grid, dtype=bool)
    for axis, (n, is_periodic) in enumerate(zip(grid, periodic, strict=True)):
        if not is_periodic:
            index = np.arange(n).reshape((n,) + (1,) * (len(grid) - axis - 1))
            mask |= (index == 0) | (index == n - 1)
    return mask


def _defined_points(variance: np.ndarray, periodic: tuple[bool, ...], name: str) -> np.ndarray:
    """``V > 0`` as a mask; raise if ``V <= 0`` (or NaN) away from the bounded end points."""
    defined = variance > 0
    boundary = _boundary_points(variance.shape[variance.ndim - len(periodic) :], periodic)
    bad = np.count_nonzero(~defined & ~boundary)
    if bad:
        raise ValueError(
            f"{name}: {bad} of {variance.size} points have V <= 0 (or NaN) away from the end "
            "points of the bounded axes; the normalised error eps = e / sqrt(V) is undefined "
            "there"
        )
    return np.asarray(defined)


_CENTRED, _FORWARD, _BACKWARD, _NONE = 0, 1, 2, 3
#: The difference of each kind as (offset, weight × dx) pairs.
_STENCILS: dict[int, tuple[tuple[int, float], ...]] = {
    _CENTRED: ((1, 0.5), (-1, -0.5)),
    _FORWARD: ((1, 1.0), (0, -1.0)),
    _BACKWARD: ((0, 1.0), (-1, -1.0)),
}


def _difference_kinds(defined: np.ndarray, periodic: tuple[bool, ...]) -> list[np.ndarray]:
    """Per grid axis, the difference used at each point: centred when both neighbours are
    defined (inside the grid, or periodic, with ``V > 0``), else forward or backward, else
    none (also at undefined points)."""
    ndim = len(periodic)
    kinds = []
    for axis in range(ndim):
        array_axis = axis - ndim
        n = defined.shape[array_axis]
        plus = np.roll(defined, -1, axis=array_axis)
        minus = np.roll(defined, 1, axis=array_axis)
        if not periodic[axis]:
            index = np.arange(n).reshape((n,) + (1,) * (ndim - axis - 1))
            plus = plus & (index < n - 1)
            minus = minus & (index > 0)
        kind = np.where(
            plus & minus, _CENTRED, np.where(plus, _FORWARD, np.where(minus, _BACKWARD, _NONE))
        )
        kinds.append(np.where(defined, kind, _NONE))
    return kinds


def _kind_difference(
    field: np.ndarray, kind: np.ndarray, spacing: float, axis: int, ndim: int
) -> np.ndarray:
    """The difference of ``field`` along ``axis`` chosen point by point by ``kind`` (NaN for
    none); shifted values are only read where they are inside the grid."""
    array_axis = axis - ndim
    out = np.full(np.broadcast_shapes(field.shape, kind.shape), np.nan)
    with np.errstate(invalid="ignore"):
        for code, stencil in _STENCILS.items():
            value = sum(
                weight * (np.roll(field, -offset, axis=array_axis) if offset else field)
                for offset, weight in stencil
            )
            out = np.where(kind == code, value / spacing, out)
    return out


def _check_ddof(ddof: int, count: int | None = None) -> int:
    """``ddof`` as an int, 0 or 1, with ``count - ddof >= 1`` when ``count`` is given."""
    if isinstance(ddof, bool) or not isinstance(ddof, int | np.integer) or ddof not in (0, 1):
        raise ValueError(
            "ddof: expected 0 (population variance, divisor N) or 1 (unbiased, divisor N - 1), "
            f"got {ddof!r}"
        )
    if count is not None and count - ddof < 1:
        raise ValueError(
            f"ddof={int(ddof)}: the divisor N - ddof must be at least 1, but there are only "
            f"N = {count} members"
        )
    return int(ddof)


def variance_estimator(ddof: int = 0) -> str:
    """Label of the variance estimator with ``ddof``, e.g. for a ``variance_estimator`` attribute.

    Parameters
    ----------
    ddof : {0, 1}
        Delta degrees of freedom: the divisor is ``N - ddof`` for ``N`` members.

    Returns
    -------
    str
        ``"population (divisor N)"`` or ``"unbiased sample (divisor N - 1)"``.

    Examples
    --------
    >>> variance_estimator()
    'population (divisor N)'
    >>> variance_estimator(1)
    'unbiased sample (divisor N - 1)'
    """
    return "unbiased sample (divisor N - 1)" if _check_ddof(ddof) else "population (divisor N)"


# ---------------------------------------------------------------------------- direct formulas


def _deviations(ensemble: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and deviations from it of a validated ensemble, both taken about member 0.

    ``x_k - x_0`` is exact when the members agree to a factor 2 (Sterbenz), so the deviations
    carry errors of order ``eps * spread`` however large the mean.
    """
    shift = ensemble[0]
    relative = ensemble - shift
    relative_mean = relative.mean(axis=0)
    return shift + relative_mean, relative - relative_mean


def _normalized(deviations: np.ndarray, name: str = "variance") -> np.ndarray:
    variance = np.mean(deviations * deviations, axis=0)
    _check_positive_variance(variance, name)
    return deviations / np.sqrt(variance)


def centred_difference(
    field: ArrayLike,
    spacing: float | Sequence[float],
    axis: int,
    periodic: bool | Sequence[bool] | None = None,
) -> np.ndarray:
    """Second-order centred difference along grid axis ``axis`` (periodic, or one-sided at the
    ends of a bounded axis).

    Parameters
    ----------
    field : array_like
        ``(..., *grid)``; the grid is the last ``len(spacing)`` axes.
    spacing : float or sequence of float
        Grid spacing per grid axis (physical units).
    axis : int
        Grid axis, ``0 <= axis < len(spacing)``.
    periodic : bool or sequence of bool, optional
        Per grid axis, True when periodic (default: all). On a bounded axis the first and
        last points take the first-order one-sided differences ``(f(1) - f(0)) / dx`` and
        ``(f(n-1) - f(n-2)) / dx``.

    Returns
    -------
    numpy.ndarray
        ``(f(p + e_axis) - f(p - e_axis)) / (2 dx_axis)``, same shape as ``field``.

    Raises
    ------
    ValueError
        If ``axis`` is out of range, ``field`` has fewer than ``len(spacing)`` axes (or fewer
        than 2 points along a bounded ``axis``), or ``periodic`` is not one bool per axis.

    Examples
    --------
    >>> centred_difference(np.array([0.0, 1.0, 4.0, 9.0]), 1.0, 0)
    array([-4.,  2.,  4., -2.])
    >>> centred_difference(np.array([0.0, 1.0, 4.0, 9.0]), 1.0, 0, periodic=[False])
    array([1., 2., 4., 5.])
    """
    spacing = _as_spacing(spacing)
    ndim = len(spacing)
    if not 0 <= axis < ndim:
        raise ValueError(f"axis: expected 0 <= axis < {ndim}, got {axis}")
    field = np.asarray(field, dtype=np.float64)
    if field.ndim < ndim:
        raise ValueError(f"field: expected at least {ndim} grid axes, got shape {field.shape}")
    periodic = _as_periodic(periodic, ndim)
    array_axis = axis - ndim
    forward = np.roll(field, -1, axis=array_axis)
    backward = np.roll(field, 1, axis=array_axis)
    out = (forward - backward) / (2.0 * spacing[axis])
    if periodic[axis]:
        return out
    n = field.shape[array_axis]
    if n < 2:
        raise ValueError(f"field: a bounded axis needs at least 2 points, got shape {field.shape}")

    def at(index: int) -> tuple[slice | int, ...]:
        return (slice(None),) * (field.ndim + array_axis) + (index,)

    out[at(0)] = (field[at(1)] - field[at(0)]) / spacing[axis]
    out[at(n - 1)] = (field[at(n - 1)] - field[at(n - 2)]) / spacing[axis]
    return out


def ensemble_mean(ensemble: ArrayLike) -> np.ndarray:
    """Mean over members, ``(members, *grid)`` -> ``grid``.

    Computed about the first member: ``x_0 + mean(x_k - x_0)``.

    Raises
    ------
    ValueError
        If there is no member or a value is not finite.

    Examples
    --------
    >>> ensemble_mean([[1.0, 2.0], [3.0, 6.0]])
    array([2., 4.])
    """
    ensemble = _as_ensemble(ensemble)
    return ensemble[0] + (ensemble - ensemble[0]).mean(axis=0)


def ensemble_variance(ensemble: ArrayLike, ddof: int = 0) -> np.ndarray:
    """Variance over members, ``(members, *grid)`` -> ``grid``, units of the field squared.

    Parameters
    ----------
    ensemble : array_like
        ``(members, *grid)``, ``N`` members.
    ddof : {0, 1}, default 0
        Divisor ``N - ddof``: 0 is the population variance of the PKF papers, 1 the unbiased
        estimator.

    Raises
    ------
    ValueError
        If there is no member, a value is not finite, or ``ddof`` is not 0 or 1 (or
        ``N - ddof < 1``).

    Examples
    --------
    >>> ensemble_variance([[1.0], [3.0]]), ensemble_variance([[1.0], [3.0]], ddof=1)
    (array([1.]), array([2.]))
    """
    ensemble = _as_ensemble(ensemble)
    ddof = _check_ddof(ddof, ensemble.shape[0])
    _, deviations = _deviations(ensemble)
    return np.sum(deviations * deviations, axis=0) / (ensemble.shape[0] - ddof)


def normalized_error(ensemble: ArrayLike) -> np.ndarray:
    """Normalised error ``eps = (x - mean) / sqrt(V)``, shape ``(members, *grid)``.

    ``V`` is the population variance, so that ``mean(eps**2) = 1`` over members.

    Raises
    ------
    ValueError
        If there is no member, a value is not finite, or ``V <= 0`` somewhere (e.g. identical
        members).
    """
    return _normalized(_deviations(_as_ensemble(ensemble))[1])


def _bounded_metric_of(
    deviations: np.ndarray, spacing: tuple[float, ...], periodic: tuple[bool, ...]
) -> np.ndarray:
    """The metric with one-sided differences at bounded ends (NaN where ``eps`` is undefined)."""
    ndim = len(spacing)
    variance = np.mean(deviations * deviations, axis=0)
    defined = _defined_points(variance, periodic, "variance")
    with np.errstate(invalid="ignore", divide="ignore"):
        eps = deviations / np.sqrt(np.where(defined, variance, np.nan))
    kinds = _difference_kinds(defined, periodic)
    gradients = [
        _kind_difference(eps, kinds[axis], spacing[axis], axis, ndim) for axis in range(ndim)
    ]
    metric = np.empty((ndim, ndim, *eps.shape[1:]))
    for i in range(ndim):
        for j in range(i, ndim):
            metric[i, j] = metric[j, i] = np.mean(gradients[i] * gradients[j], axis=0)
    return metric


def _metric_of(eps: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    ndim = len(spacing)
    gradients = [centred_difference(eps, spacing, axis) for axis in range(ndim)]
    metric = np.empty((ndim, ndim, *eps.shape[1:]))
    for i in range(ndim):
        for j in range(i, ndim):
            metric[i, j] = metric[j, i] = np.mean(gradients[i] * gradients[j], axis=0)
    return metric


def metric_from_ensemble(
    ensemble: ArrayLike,
    spacing: float | Sequence[float],
    periodic: bool | Sequence[bool] | None = None,
) -> np.ndarray:
    """Metric tensor ``g_ij = E[D_i eps D_j eps]`` with centred differences.

    Parameters
    ----------
    ensemble : array_like
        ``(members, *grid)``; the grid is the last ``len(spacing)`` axes, at least 3 points
        each.
    spacing : float or sequence of float
        Grid spacing per axis (physical units).
    periodic : bool or sequence of bool, optional
        Per grid axis, True when periodic (default: all, the centred periodic difference). On
        a bounded axis the end points take first-order one-sided differences, and ``V = 0`` is
        accepted on them (NaN metric there; see the module notes).

    Returns
    -------
    numpy.ndarray
        ``(ndim, ndim, *grid)``, symmetric, units 1 / length**2 (NaN at undefined points of
        bounded grids).

    Raises
    ------
    ValueError
        If a value is not finite, ``V <= 0`` somewhere (away from the end points of bounded
        axes), the grid is too small, or ``periodic`` is not one bool per axis.

    Examples
    --------
    >>> x = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    >>> ens = np.stack([np.cos(x + 2 * np.pi * k / 3) for k in range(3)])
    >>> g = metric_from_ensemble(ens, x[1])
    >>> bool(np.allclose(g[0, 0], (np.sin(x[1]) / x[1]) ** 2))
    True
    """
    spacing = _as_spacing(spacing)
    periodic = _as_periodic(periodic, len(spacing))
    ensemble = _as_ensemble(ensemble, len(spacing))
    _check_grid(ensemble.shape, len(spacing))
    if all(periodic):
        return _metric_of(_normalized(_deviations(ensemble)[1]), spacing)
    return _bounded_metric_of(_deviations(ensemble)[1], spacing, periodic)


def _tensor_last(tensor: np.ndarray) -> np.ndarray:
    if tensor.ndim < 2 or tensor.shape[0] != tensor.shape[1] or not 1 <= tensor.shape[0] <= 3:
        raise ValueError(f"metric: expected shape (ndim, ndim, *grid), got {tensor.shape}")
    return np.moveaxis(tensor, (0, 1), (-2, -1))


def _undefined_as_nan(
    function: Callable[[np.ndarray], np.ndarray], metric: ArrayLike, nan_points: bool
) -> np.ndarray:
    """``function(metric)`` with the points where the metric has a NaN component given NaN
    (when ``nan_points``; otherwise ``function(metric)`` itself, which raises on them)."""
    metric = np.asarray(metric, dtype=np.float64)
    if not nan_points:
        return function(metric)
    tensor = _tensor_last(metric)
    undefined = np.isnan(tensor).any(axis=(-2, -1))
    if not undefined.any():
        return function(metric)
    eye = np.eye(tensor.shape[-1])
    filled = np.where(undefined[..., None, None], eye, tensor)
    out = function(np.moveaxis(filled, (-2, -1), (0, 1)))
    return np.where(undefined, np.nan, out)


def aspect_from_metric(metric: ArrayLike, nan_points: bool = False) -> np.ndarray:
    """Aspect tensor ``s = g^-1`` pointwise.

    The inverse is taken of the diagonally scaled metric ``g_ij / sqrt(g_ii g_jj)``, so that
    very different length-scales along the axes cost no accuracy.

    Parameters
    ----------
    metric : array_like
        ``(ndim, ndim, *grid)`` symmetric positive definite, units 1 / length**2.
    nan_points : bool, default False
        True: points where a metric component is NaN (undefined statistics, e.g. ``V = 0`` at
        a Dirichlet side of a bounded grid) give NaN instead of raising.

    Returns
    -------
    numpy.ndarray
        ``(ndim, ndim, *grid)``, units length**2.

    Raises
    ------
    ValueError
        If the metric is not finite (unless ``nan_points``, for NaN), not symmetric, or not
        positive definite somewhere (e.g. estimated from ``ndim`` members or fewer, or from a
        constant field).

    Examples
    --------
    >>> aspect_from_metric(np.array([[[4.0]]]))
    array([[[0.25]]])
    """
    return _undefined_as_nan(_aspect, metric, nan_points)


def _aspect(metric: np.ndarray) -> np.ndarray:
    tensor = _tensor_last(np.asarray(metric, dtype=np.float64))
    if not np.isfinite(tensor).all():
        count = np.count_nonzero(~np.isfinite(tensor).all(axis=(-2, -1)))
        raise ValueError(f"metric: {count} points are not finite")
    scale = np.abs(tensor).max(axis=(-2, -1), keepdims=True)
    asymmetric = np.count_nonzero(np.abs(tensor - np.swapaxes(tensor, -1, -2)) > 1e-12 * scale)
    if asymmetric:
        raise ValueError(f"metric: not symmetric at {asymmetric} entries (g_ij != g_ji)")
    diagonal = np.diagonal(tensor, axis1=-2, axis2=-1)
    bad = ~(diagonal > 0).all(axis=-1)
    root = np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
    scaled = tensor / (root[..., :, None] * root[..., None, :])
    bad |= ~(np.linalg.eigvalsh(scaled)[..., 0] > _DEGENERATE_METRIC)
    if bad.any():
        raise ValueError(
            f"metric: {np.count_nonzero(bad)} of {bad.size} points are not positive definite "
            "(singular to rounding), so g^-1 is undefined there; an ensemble needs more than "
            "ndim members and a non-constant field for a regular metric"
        )
    inverse = np.linalg.inv(scaled) / (root[..., :, None] * root[..., None, :])
    return np.moveaxis(inverse, (-2, -1), (0, 1))


def diffusion_from_metric(metric: ArrayLike, nan_points: bool = False) -> np.ndarray:
    """Diffusion tensor ``nu = g^-1 / 2`` pointwise: ``(ndim, ndim, *grid)`` -> same, length**2.

    ``nan_points`` as in :func:`aspect_from_metric`.

    Raises
    ------
    ValueError
        As :func:`aspect_from_metric`.
    """
    return 0.5 * aspect_from_metric(metric, nan_points)


def length_scale_from_metric(metric: ArrayLike, nan_points: bool = False) -> np.ndarray:
    """Length-scale along each grid axis, ``L_i = 1 / sqrt(g_ii)``.

    This is the correlation length of the section of the correlation along axis ``i``; in 1D it
    equals ``sqrt(s)``. Shape ``(ndim, ndim, *grid)`` -> ``(ndim, *grid)``, physical units.
    ``nan_points``: points with a NaN metric component give NaN (see
    :func:`aspect_from_metric`).

    Raises
    ------
    ValueError
        If a diagonal component ``g_ii`` is not positive (or NaN, unless ``nan_points``).
    """
    return _undefined_as_nan(_length_scale, metric, nan_points)


def _length_scale(metric: np.ndarray) -> np.ndarray:
    metric = np.asarray(metric, dtype=np.float64)
    diagonal = np.moveaxis(np.diagonal(_tensor_last(metric), axis1=-2, axis2=-1), -1, 0)
    bad = np.count_nonzero(~(diagonal > 0))
    if bad:
        raise ValueError(
            f"metric: {bad} of {diagonal.size} diagonal values g_ii are <= 0 (or NaN); the "
            "length-scale 1 / sqrt(g_ii) is undefined there"
        )
    return 1.0 / np.sqrt(diagonal)


def _pair_of_ensembles(first: ArrayLike, second: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    first = _as_ensemble(first, name="first")
    second = _as_ensemble(second, name="second")
    if first.shape != second.shape:
        raise ValueError(f"second: shape {second.shape} differs from first {first.shape}")
    return _deviations(first)[1], _deviations(second)[1]


def cross_covariance(first: ArrayLike, second: ArrayLike, ddof: int = 0) -> np.ndarray:
    """Cross-covariance ``V_ab = E[e_a e_b]`` of two ensembles of equal shape.

    Parameters
    ----------
    first, second : array_like
        ``(members, *grid)`` each, ``N`` members.
    ddof : {0, 1}, default 0
        Divisor ``N - ddof`` (0: population, 1: unbiased).

    Returns
    -------
    numpy.ndarray
        ``grid``, units of ``first`` times units of ``second``.

    Raises
    ------
    ValueError
        If the shapes differ, a value is not finite, or ``ddof`` is invalid.
    """
    a, b = _pair_of_ensembles(first, second)
    ddof = _check_ddof(ddof, a.shape[0])
    return np.sum(a * b, axis=0) / (a.shape[0] - ddof)


def cross_correlation(first: ArrayLike, second: ArrayLike) -> np.ndarray:
    """Cross-correlation ``E[eps_a eps_b] = V_ab / sqrt(V_a V_b)`` of two ensembles.

    Independent of the variance divisor. ``sqrt(V_a)`` and ``sqrt(V_b)`` are taken separately,
    so that the product cannot underflow or overflow.

    Raises
    ------
    ValueError
        If the shapes differ, a value is not finite, or ``V_a`` or ``V_b`` is 0 somewhere.
    """
    a, b = _pair_of_ensembles(first, second)
    va, vb = np.mean(a * a, axis=0), np.mean(b * b, axis=0)
    _check_positive_variance(va, "variance of first")
    _check_positive_variance(vb, "variance of second")
    return np.mean(a * b, axis=0) / (np.sqrt(va) * np.sqrt(vb))


def _derived_statistics(
    mean: np.ndarray, variance: np.ndarray, metric: np.ndarray, nan_points: bool = False
) -> dict:
    aspect = aspect_from_metric(metric, nan_points)
    return {
        "mean": mean,
        "variance": variance,
        "metric": metric,
        "aspect": aspect,
        "diffusion": 0.5 * aspect,
        "length_scale": length_scale_from_metric(metric, nan_points),
    }


def ensemble_statistics(
    ensemble: ArrayLike,
    spacing: float | Sequence[float],
    ddof: int = 0,
    periodic: bool | Sequence[bool] | None = None,
) -> dict[str, np.ndarray]:
    """All univariate PKF statistics of one ensemble.

    Parameters
    ----------
    ensemble : array_like
        ``(members, *grid)``; the grid is the last ``len(spacing)`` axes.
    spacing : float or sequence of float
        Grid spacing per axis (physical units).
    ddof : {0, 1}, default 0
        Variance divisor ``N - ddof``; the other statistics do not depend on it.
    periodic : bool or sequence of bool, optional
        Per grid axis, True when periodic (default: all). See :func:`metric_from_ensemble`.

    Returns
    -------
    dict
        ``mean`` and ``variance`` ``grid``; ``metric``, ``aspect``, ``diffusion``
        ``(ndim, ndim, *grid)``; ``length_scale`` ``(ndim, *grid)``. On a bounded grid the
        normalised statistics are NaN where ``V = 0`` on a bounded side.

    Raises
    ------
    ValueError
        As :func:`metric_from_ensemble`, or for an invalid ``ddof``.
    """
    spacing = _as_spacing(spacing)
    periodic = _as_periodic(periodic, len(spacing))
    ensemble = _as_ensemble(ensemble, len(spacing))
    _check_grid(ensemble.shape, len(spacing))
    ddof = _check_ddof(ddof, ensemble.shape[0])
    mean, deviations = _deviations(ensemble)
    variance = np.sum(deviations * deviations, axis=0) / (ensemble.shape[0] - ddof)
    if all(periodic):
        metric = _metric_of(_normalized(deviations), spacing)
        return _derived_statistics(mean, variance, metric)
    metric = _bounded_metric_of(deviations, spacing, periodic)
    return _derived_statistics(mean, variance, metric, nan_points=True)


def debias_diffusion(nu: ArrayLike, dx: float) -> np.ndarray:
    """Undo the centred-difference bias of an ensemble diffusion for a locally Gaussian correlation.

    For a locally Gaussian correlation ``rho(r) = exp(-r**2 / (4 nu))`` (aspect ``s = 2 nu``)
    the second-order centred difference of the normalised error gives
    ``g_est = E[(D eps)**2] = (1 - rho(2 dx)) / (2 dx**2)``, so the ensemble diffusion is

        ``nu_est = 1 / (2 g_est) = dx**2 / (1 - exp(-dx**2 / nu))``,

    which exceeds ``nu`` by about ``dx**2 / 2`` when ``nu >> dx**2`` and always exceeds
    ``dx**2``. This returns the inverse ``nu = -dx**2 / log(1 - dx**2 / nu_est)``. The inverse
    is ill-conditioned below ``nu ~ dx**2 / 4``: there ``nu_est - dx**2`` is only
    ``exp(-dx**2 / nu) dx**2``, so a relative error ``r`` of ``nu_est`` becomes about
    ``r exp(dx**2 / nu) nu / dx**2`` in ``nu``.

    Parameters
    ----------
    nu : array_like
        Ensemble estimates ``nu_est`` (any shape), length**2: the 1D diffusion, e.g.
        ``diffusion_from_metric(g)[0, 0]``, or a component ``nu_ii`` of a diagonal diffusion
        tensor, with that axis' ``dx``.
    dx : float
        Grid spacing (the same length unit).

    Returns
    -------
    numpy.ndarray
        ``nu``, same shape, length**2. Estimates ``nu_est <= dx**2``, outside the range of the
        formula (sampling noise), are clipped to ``dx**2 / (1 - 1e-12)`` and give
        ``dx**2 / log(1e12)``, about ``dx**2 / 27.6``.

    Raises
    ------
    ValueError
        If ``dx`` is not positive and finite, or an estimate is ``<= 0`` or not finite.

    Examples
    --------
    >>> nu = np.array([2e-4, 5e-5])
    >>> dx = 1 / 241
    >>> bool(np.allclose(debias_diffusion(dx**2 / (1 - np.exp(-(dx**2) / nu)), dx), nu))
    True
    """
    if not (np.ndim(dx) == 0 and np.isfinite(dx) and dx > 0):
        raise ValueError(f"dx: expected a positive finite grid spacing, got {dx!r}")
    nu = np.asarray(nu, dtype=np.float64)
    bad = ~(np.isfinite(nu) & (nu > 0))
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"nu: {np.count_nonzero(bad)} of {nu.size} estimates are <= 0 or not finite (first "
            f"at index {first}: {nu[first]!r}); an ensemble diffusion is positive"
        )
    ratio = np.minimum(dx**2 / nu, 1 - 1e-12)
    return -(dx**2) / np.log1p(-ratio)


# ---------------------------------------------------------------------- mergeable moments


def metric_lags(ndim: int, periodic: bool | Sequence[bool] | None = None) -> tuple[Lag, ...]:
    """Lags ``delta`` whose auto co-moments determine V and the centred-difference metric.

    ``g_ij(p)`` couples the values at ``p +- e_i`` and ``p +- e_j``, i.e. lags ``0``,
    ``2 e_i`` and, for ``i < j``, ``e_i + e_j`` and ``e_i - e_j`` (the other signs follow by
    symmetry). 1D: 2 lags, 2D: 5, 3D: 10. When an axis is bounded (``periodic`` has a False),
    the one-sided differences also need ``e_i`` for every axis, appended last (1D: 3, 2D: 7,
    3D: 13).

    Examples
    --------
    >>> metric_lags(2)
    ((0, 0), (2, 0), (0, 2), (1, 1), (1, -1))
    >>> metric_lags(1, periodic=[False])
    ((0,), (2,), (1,))
    """
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim: expected 1, 2 or 3, got {ndim}")
    periodic = _as_periodic(periodic, ndim)
    unit = np.eye(ndim, dtype=int)
    lags = [tuple(np.zeros(ndim, dtype=int))] + [tuple(2 * unit[i]) for i in range(ndim)]
    for i, j in combinations(range(ndim), 2):
        lags += [tuple(unit[i] + unit[j]), tuple(unit[i] - unit[j])]
    if not all(periodic):
        lags += [tuple(unit[i]) for i in range(ndim)]
    return tuple(tuple(int(v) for v in lag) for lag in lags)


def moment_keys(
    fields: Sequence[str], ndim: int, periodic: bool | Sequence[bool] | None = None
) -> tuple[MomentKey, ...]:
    """Keys ``(a, b, lag)`` of the co-moments kept for ``fields`` on an ``ndim`` grid.

    Each field gets its :func:`metric_lags` (with ``periodic``, one flag per grid axis, default
    all periodic); each pair ``a`` before ``b`` the zero lag.

    Examples
    --------
    >>> moment_keys(("u", "v"), 1)
    (('u', 'u', (0,)), ('u', 'u', (2,)), ('v', 'v', (0,)), ('v', 'v', (2,)), ('u', 'v', (0,)))
    """
    zero = (0,) * ndim
    keys = [(name, name, lag) for name in fields for lag in metric_lags(ndim, periodic)]
    keys += [(a, b, zero) for a, b in combinations(fields, 2)]
    return tuple(keys)


def _shift(field: np.ndarray, offset: Sequence[int] | np.ndarray) -> np.ndarray:
    """``field(p + offset)`` on the periodic grid formed by the last ``len(offset)`` axes
    (wrapped around on bounded axes too: the callers only read the points where ``p + offset``
    is inside the grid)."""
    ndim = len(offset)
    return np.roll(field, tuple(-int(o) for o in offset), axis=tuple(range(-ndim, 0)))


def _as_state(value: ArrayLike, what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    bad = np.count_nonzero(~np.isfinite(array))
    if bad:
        raise ValueError(f"moments: {what} has {bad} non-finite values (NaN or Inf)")
    return array


@dataclass
class Moments:
    """Centred moments of a set of members about a shift, mergeable with :func:`merge_moments`.

    Each field's moments are kept relative to a *shift* ``c``, a reference value per state
    point close to the members: for a chunk, its first member. Differences of nearly equal
    values are exact in floating point (Sterbenz), so ``x_k - c`` and, when merging, the
    difference of two chunks' shifts are exact, and the statistics keep errors of order
    ``eps * spread`` even when ``|mean|`` is many orders of magnitude larger than the spread.

    Contract for a producer of per-chunk sums (:func:`chunk_moments` in numpy, the compiled
    loop of :class:`pkf.ensemble.EnsembleForecast` in TensorFlow): for the ``n`` members
    ``x_k`` (``k = 0 .. n - 1``) of a chunk, per field ``f`` and state point ``p`` (all arrays
    of state shape ``(*lead, *grid)``),

    - ``count = n``;
    - ``shifts[f] = x_0``, the chunk's first member;
    - ``relative_means[f] = sum_k (x_k - x_0) / n``;
    - ``comoments[(a, b, lag)](p) = sum_k e_a,k(p) e_b,k(p + lag)`` for the keys of
      :func:`moment_keys`, with ``e_f,k = (x_k - x_0) - relative_means[f]`` and periodic
      ``p + lag`` on the grid axes (``tf.roll(e_b, shift=-lag, axis=grid_axes)``). On a
      bounded axis the same roll is used: the entries whose ``p + lag`` falls outside the grid
      hold wrapped products, which merge consistently and are never read by the statistics.

    Padding members (zero weight) are left out of every sum and of ``count``; the shift must
    be a real member (any value gives the same statistics up to rounding, a member gives the
    accuracy). Arrays may be numpy or TensorFlow, float32 or float64; they are stored as
    float64 and must be finite.

    Attributes
    ----------
    count : int
        Number of members ``n >= 0``.
    shifts : dict of str to numpy.ndarray
        Shift ``c`` of each field, state shape, units of the field.
    relative_means : dict of str to numpy.ndarray
        ``mean - shift`` of each field, state shape.
    comoments : dict of (str, str, tuple of int) to numpy.ndarray
        ``sum_k (a_k(p) - mean_a(p)) (b_k(p + lag) - mean_b(p + lag))``, state shape.

    Raises
    ------
    ValueError
        If ``count`` is not a non-negative integer, the fields of ``shifts``,
        ``relative_means`` and ``comoments`` differ, the state shapes differ, or a value is
        not finite.

    Examples
    --------
    >>> m = Moments(2, {"x": np.array([1e10])}, {"x": np.array([0.5])},
    ...             {("x", "x", (0,)): np.array([0.5])})
    >>> m.means["x"], m.comoments[("x", "x", (0,))] / m.count  # members 1e10 and 1e10 + 1
    (array([1.e+10]), array([0.25]))
    """

    count: int
    shifts: dict[str, np.ndarray]
    relative_means: dict[str, np.ndarray]
    comoments: dict[MomentKey, np.ndarray]

    def __post_init__(self) -> None:
        count = self.count
        if isinstance(count, bool) or not float(count).is_integer() or count < 0:
            raise ValueError(f"moments: count must be a non-negative integer, got {count!r}")
        self.count = int(count)
        if set(self.shifts) != set(self.relative_means):
            raise ValueError(
                f"moments: shifts name fields {sorted(self.shifts)} but relative_means "
                f"{sorted(self.relative_means)}"
            )
        self.shifts = {k: _as_state(v, f"shifts[{k!r}]") for k, v in self.shifts.items()}
        self.relative_means = {
            k: _as_state(v, f"relative_means[{k!r}]") for k, v in self.relative_means.items()
        }
        self.comoments = {
            (a, b, tuple(int(v) for v in lag)): _as_state(value, f"comoments[{(a, b, lag)!r}]")
            for (a, b, lag), value in self.comoments.items()
        }
        unknown = {name for a, b, _ in self.comoments for name in (a, b)} - set(self.shifts)
        if unknown:
            raise ValueError(f"moments: comoments name fields {sorted(unknown)} without a shift")
        shapes = {
            f"{kind}[{key!r}]": value.shape
            for kind, group in (
                ("shifts", self.shifts),
                ("relative_means", self.relative_means),
                ("comoments", self.comoments),
            )
            for key, value in group.items()
        }
        if len(set(shapes.values())) > 1:
            raise ValueError(f"moments: all arrays need one state shape, got {shapes}")

    @property
    def means(self) -> dict[str, np.ndarray]:
        """Mean of each field, ``shifts + relative_means``, state shape."""
        return {name: self.shifts[name] + self.relative_means[name] for name in self.shifts}


def chunk_moments(
    fields: Mapping[str, ArrayLike], ndim: int, periodic: bool | Sequence[bool] | None = None
) -> Moments:
    """Moments of one chunk of members (the numpy reference of the :class:`Moments` contract).

    Parameters
    ----------
    fields : mapping of str to array_like
        Each ``(members, *lead, *grid)`` with the same shape, finite; the grid is the last
        ``ndim`` axes.
    ndim : int
        Number of grid axes.
    periodic : bool or sequence of bool, optional
        Per grid axis, True when periodic (default: all); selects the keys of
        :func:`moment_keys`.

    Returns
    -------
    Moments
        Shifted by the first member, with the co-moments of :func:`moment_keys`.
    """
    arrays = {
        name: _as_ensemble(value, ndim, f"fields[{name!r}]") for name, value in fields.items()
    }
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"fields: all fields need the same shape, got {shapes}")
    shifts = {name: a[0].copy() for name, a in arrays.items()}
    relative = {name: a - shifts[name] for name, a in arrays.items()}
    relative_means = {name: r.mean(axis=0) for name, r in relative.items()}
    errors = {name: relative[name] - relative_means[name] for name in arrays}
    comoments = {
        (a, b, lag): np.sum(errors[a] * _shift(errors[b], lag), axis=0)
        for a, b, lag in moment_keys(tuple(arrays), ndim, periodic)
    }
    count = next(iter(shapes.values()))[0]
    return Moments(count, shifts, relative_means, comoments)


def _check_compatible(first: Moments, second: Moments) -> None:
    if set(first.shifts) != set(second.shifts) or set(first.comoments) != set(second.comoments):
        raise ValueError(
            f"moments: fields/keys differ: {sorted(first.shifts)} vs {sorted(second.shifts)}"
        )
    for name, shift in first.shifts.items():
        if shift.shape != second.shifts[name].shape:
            raise ValueError(
                f"moments: state shape of {name!r} differs: {shift.shape} vs "
                f"{second.shifts[name].shape}"
            )


def _copy(moments: Moments) -> Moments:
    return Moments(
        moments.count,
        dict(moments.shifts),
        dict(moments.relative_means),
        dict(moments.comoments),
    )


def merge_moments(first: Moments, second: Moments) -> Moments:
    """Combine the moments of two disjoint member sets (Chan et al. pairwise update).

    With ``n = n_A + n_B`` and the difference of the means taken as
    ``d = (c_B - c_A) + (m_B - m_A)`` (shifts ``c``, relative means ``m``), the result keeps
    the shift ``c_A`` and has relative mean ``m_A + (n_B / n) d`` and co-moments
    ``M = M_A + M_B + (n_A n_B / n) d_a(p) d_b(p + lag)``. ``c_B - c_A`` is exact when the
    shifts agree to a factor 2 (the case ``|mean| >> spread``, where it matters), so ``d``
    carries an error of order ``eps * spread`` rather than ``eps * |mean|``.

    Parameters
    ----------
    first, second : Moments
        Same fields, keys and state shape (or a count of 0).

    Returns
    -------
    Moments
        The moments of the union; the inputs are not modified.
    """
    if first.count == 0:
        return _copy(second)
    if second.count == 0:
        return _copy(first)
    _check_compatible(first, second)
    count = first.count + second.count
    weight = second.count / count
    delta = {
        name: (second.shifts[name] - first.shifts[name])
        + (second.relative_means[name] - first.relative_means[name])
        for name in first.shifts
    }
    relative_means = {
        name: first.relative_means[name] + weight * delta[name] for name in first.shifts
    }
    factor = first.count * weight
    comoments = {
        (a, b, lag): first.comoments[(a, b, lag)]
        + second.comoments[(a, b, lag)]
        + factor * delta[a] * _shift(delta[b], lag)
        for a, b, lag in first.comoments
    }
    return Moments(count, dict(first.shifts), relative_means, comoments)


class MomentAccumulator:
    """Mergeable on-the-fly PKF statistics of one or several fields.

    Parameters
    ----------
    spacing : float or sequence of float
        Grid spacing per grid axis (physical units); the grid is the last ``len(spacing)`` axes
        of every state, leading axes (e.g. time) are independent.
    fields : sequence of str, default ("x",)
        Field names; cross-covariances are kept for every pair.
    periodic : bool or sequence of bool, optional
        Per grid axis, True when periodic (default: all). With a bounded axis the moments
        also keep the lag ``e_i`` of every axis, the metric uses first-order one-sided
        differences at the ends of the bounded axes (from the lag ``e_i`` co-moment stored at
        ``p = 0`` and at ``p = n - 2``), and ``V = 0`` is accepted on those ends: the
        normalised statistics are NaN there (see the module notes).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ens = rng.standard_normal((10, 16))
    >>> acc = MomentAccumulator(spacing=0.1)
    >>> acc.update(ens[:3]).update(ens[3:])
    MomentAccumulator(fields=('x',), count=10)
    >>> bool(np.allclose(acc.variance(), ens.var(axis=0)))
    True
    >>> bool(np.allclose(acc.variance(ddof=1), ens.var(axis=0, ddof=1)))
    True
    """

    def __init__(
        self,
        spacing: float | Sequence[float],
        fields: Sequence[str] = ("x",),
        periodic: bool | Sequence[bool] | None = None,
    ) -> None:
        self.spacing = _as_spacing(spacing)
        self.periodic = _as_periodic(periodic, len(self.spacing))
        self.fields = tuple(fields)
        if not self.fields or len(set(self.fields)) != len(self.fields):
            raise ValueError(f"fields: expected distinct field names, got {fields}")
        self._moments = Moments(0, {}, {}, {})

    def __repr__(self) -> str:
        return f"MomentAccumulator(fields={self.fields}, count={self.count})"

    @property
    def ndim(self) -> int:
        """Number of grid axes."""
        return len(self.spacing)

    @property
    def count(self) -> int:
        """Number of members accumulated."""
        return self._moments.count

    @property
    def moments(self) -> Moments:
        """The accumulated :class:`Moments` (e.g. to send to another process and merge)."""
        return self._moments

    def _as_fields(self, batch: ArrayLike | Mapping[str, ArrayLike]) -> dict[str, ArrayLike]:
        if not isinstance(batch, Mapping):
            if len(self.fields) != 1:
                raise ValueError(
                    f"batch: an array is ambiguous with fields {self.fields}; pass a mapping"
                )
            return {self.fields[0]: batch}
        if set(batch) != set(self.fields):
            raise ValueError(f"batch: expected fields {self.fields}, got {tuple(batch)}")
        return {name: batch[name] for name in self.fields}

    def update(self, batch: ArrayLike | Mapping[str, ArrayLike]) -> MomentAccumulator:
        """Add a chunk of members.

        Parameters
        ----------
        batch : array_like or mapping of str to array_like
            ``(members, *lead, *grid)`` per field (an array when there is one field), finite.
        """
        return self.update_moments(chunk_moments(self._as_fields(batch), self.ndim, self.periodic))

    def update_moments(self, moments: Moments) -> MomentAccumulator:
        """Add precomputed per-chunk :class:`Moments` (e.g. sums computed in TensorFlow).

        ``moments`` follows the contract of :class:`Moments` (shift, mean relative to it and
        centred co-moment sums) for this accumulator's fields and :func:`moment_keys`.
        """
        expected = set(moment_keys(self.fields, self.ndim, self.periodic))
        keys = set(moments.comoments)
        if set(moments.shifts) != set(self.fields) or keys != expected:
            raise ValueError(
                f"moments: expected shifts and relative means of {self.fields} and the keys of "
                f"moment_keys(); missing {sorted(expected - keys, key=str)}, unexpected "
                f"{sorted(keys - expected, key=str)}, fields {sorted(moments.shifts)}"
            )
        self._moments = merge_moments(self._moments, moments)
        return self

    def merge(self, other: MomentAccumulator) -> MomentAccumulator:
        """Add the members accumulated by ``other`` (same fields, spacing and periodic axes)."""
        if (
            other.fields != self.fields
            or other.spacing != self.spacing
            or other.periodic != self.periodic
        ):
            raise ValueError(
                f"other: fields/spacing/periodic {other.fields}/{other.spacing}/{other.periodic} "
                f"differ from {self.fields}/{self.spacing}/{self.periodic}"
            )
        self._moments = merge_moments(self._moments, other._moments)
        return self

    def _field(self, name: str | None) -> str:
        if self.count == 0:
            raise ValueError("MomentAccumulator: no members accumulated yet")
        if name is None:
            if len(self.fields) != 1:
                raise ValueError(f"field: name one of {self.fields}")
            return self.fields[0]
        if name not in self.fields:
            raise ValueError(f"field: {name!r} is not one of {self.fields}")
        return name

    def mean(self, name: str | None = None) -> np.ndarray:
        """Ensemble mean of field ``name``, state shape."""
        name = self._field(name)
        return self._moments.shifts[name] + self._moments.relative_means[name]

    def variance(self, name: str | None = None, ddof: int = 0) -> np.ndarray:
        """Variance of field ``name``, state shape; divisor ``N - ddof`` (0: population)."""
        name = self._field(name)
        ddof = _check_ddof(ddof, self.count)
        return self._moments.comoments[(name, name, (0,) * self.ndim)] / (self.count - ddof)

    def _covariance_at(self, name: str, offset_p: np.ndarray, offset_q: np.ndarray) -> np.ndarray:
        """``Cov(x(p + offset_p), x(p + offset_q))`` for every ``p``, from the stored lags."""
        lag = tuple(int(v) for v in offset_q - offset_p)
        negative = tuple(-v for v in lag)
        comoments = self._moments.comoments
        if (name, name, lag) in comoments:
            return _shift(comoments[(name, name, lag)], offset_p) / self.count
        return _shift(comoments[(name, name, negative)], offset_q) / self.count

    def metric(self, name: str | None = None) -> np.ndarray:
        """Metric ``g_ij = E[D_i eps D_j eps]``, ``(ndim, ndim, *state)``.

        Exactly the centred-difference estimate of :func:`metric_from_ensemble` on the final
        mean and variance: with ``sigma = sqrt(V)``,
        ``g_ij(p) = sum_{a,b=+-1} a b Cov(x(p + a e_i), x(p + b e_j))
        / (sigma(p + a e_i) sigma(p + b e_j) 4 dx_i dx_j)``. Independent of the variance
        divisor. On a bounded grid the same sum runs over the offsets and weights of the
        difference used at each point (one-sided at the ends), as in
        :func:`metric_from_ensemble` with ``periodic``; NaN where undefined.

        Raises
        ------
        ValueError
            If the grid is too small or ``V <= 0`` somewhere (away from the ends of bounded
            axes).
        """
        name = self._field(name)
        variance = self.variance(name)
        _check_grid(variance.shape, self.ndim)
        if not all(self.periodic):
            return self._bounded_metric(name, variance)
        _check_positive_variance(variance, f"variance of {name!r}")
        sigma = np.sqrt(variance)
        unit = np.eye(self.ndim, dtype=int)
        metric = np.empty((self.ndim, self.ndim, *variance.shape))
        for i in range(self.ndim):
            for j in range(i, self.ndim):
                total = np.zeros_like(variance)
                for a in (1, -1):
                    for b in (1, -1):
                        p, q = a * unit[i], b * unit[j]
                        covariance = self._covariance_at(name, p, q)
                        total += a * b * covariance / (_shift(sigma, p) * _shift(sigma, q))
                scale = 4.0 * self.spacing[i] * self.spacing[j]
                metric[i, j] = metric[j, i] = total / scale
        return metric

    def _bounded_metric(self, name: str, variance: np.ndarray) -> np.ndarray:
        """The metric with the difference of each point (see :func:`_difference_kinds`)."""
        defined = _defined_points(variance, self.periodic, f"variance of {name!r}")
        kinds = _difference_kinds(defined, self.periodic)
        sigma = np.sqrt(variance)
        unit = np.eye(self.ndim, dtype=int)
        metric = np.empty((self.ndim, self.ndim, *variance.shape))
        with np.errstate(invalid="ignore", divide="ignore"):
            for i in range(self.ndim):
                for j in range(i, self.ndim):
                    out = np.full(variance.shape, np.nan)
                    for kind_i, stencil_i in _STENCILS.items():
                        for kind_j, stencil_j in _STENCILS.items():
                            where = (kinds[i] == kind_i) & (kinds[j] == kind_j)
                            if not where.any():
                                continue
                            total = np.zeros_like(variance)
                            for a, weight_a in stencil_i:
                                for b, weight_b in stencil_j:
                                    p, q = a * unit[i], b * unit[j]
                                    covariance = self._covariance_at(name, p, q)
                                    scale = _shift(sigma, p) * _shift(sigma, q)
                                    total = total + weight_a * weight_b * covariance / scale
                            scale = self.spacing[i] * self.spacing[j]
                            out = np.where(where, total / scale, out)
                    metric[i, j] = metric[j, i] = out
        return metric

    @property
    def _nan_points(self) -> bool:
        return not all(self.periodic)

    def aspect(self, name: str | None = None) -> np.ndarray:
        """Aspect tensor ``s = g^-1``, ``(ndim, ndim, *state)`` (NaN where undefined)."""
        return aspect_from_metric(self.metric(name), self._nan_points)

    def diffusion(self, name: str | None = None) -> np.ndarray:
        """Diffusion tensor ``nu = g^-1 / 2``, ``(ndim, ndim, *state)`` (NaN where undefined)."""
        return diffusion_from_metric(self.metric(name), self._nan_points)

    def length_scale(self, name: str | None = None) -> np.ndarray:
        """Length-scale along each axis ``1 / sqrt(g_ii)``, ``(ndim, *state)`` (NaN where
        undefined)."""
        return length_scale_from_metric(self.metric(name), self._nan_points)

    def _pair(self, first: str, second: str) -> tuple[str, str]:
        first, second = self._field(first), self._field(second)
        if first == second:
            raise ValueError(f"cross statistics need two different fields, got {first!r} twice")
        order = self.fields.index
        return (first, second) if order(first) < order(second) else (second, first)

    def cross_covariance(self, first: str, second: str, ddof: int = 0) -> np.ndarray:
        """Cross-covariance ``V_ab = E[e_a e_b]``, state shape; divisor ``N - ddof``."""
        a, b = self._pair(first, second)
        ddof = _check_ddof(ddof, self.count)
        return self._moments.comoments[(a, b, (0,) * self.ndim)] / (self.count - ddof)

    def cross_correlation(self, first: str, second: str) -> np.ndarray:
        """Cross-correlation ``V_ab / sqrt(V_a V_b)``, state shape (independent of ``ddof``);
        NaN where a variance is 0 on the end of a bounded axis."""
        va, vb = self.variance(first), self.variance(second)
        if all(self.periodic):
            _check_positive_variance(va, f"variance of {first!r}")
            _check_positive_variance(vb, f"variance of {second!r}")
            return self.cross_covariance(first, second) / (np.sqrt(va) * np.sqrt(vb))
        defined = _defined_points(va, self.periodic, f"variance of {first!r}")
        defined &= _defined_points(vb, self.periodic, f"variance of {second!r}")
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = self.cross_covariance(first, second) / (np.sqrt(va) * np.sqrt(vb))
        return np.where(defined, rho, np.nan)

    def statistics(self, name: str | None = None, ddof: int = 0) -> dict[str, np.ndarray]:
        """Univariate statistics of field ``name``, keys as in :func:`ensemble_statistics`.

        ``ddof`` sets the divisor of ``variance`` only; the other statistics do not depend on it.
        """
        return _derived_statistics(
            self.mean(name), self.variance(name, ddof), self.metric(name), self._nan_points
        )
