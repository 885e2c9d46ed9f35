"""PKF statistics of an ensemble: mean, variance, metric/aspect/diffusion tensors, cross terms.

Direct functions work on a whole ensemble ``(members, *grid)``. :class:`MomentAccumulator` keeps
mergeable centred moments (Chan et al. parallel update) so that chunks of members, processed
separately or on other machines, give exactly the single-pass statistics.

Derivatives are the second-order centred periodic difference
``D_i f(p) = (f(p + e_i) - f(p - e_i)) / (2 dx_i)`` on the last ``ndim`` axes, applied to the
normalised error ``eps = (x - mean) / sqrt(V)`` member by member; ``g_ij = mean(D_i eps D_j eps)``.
This stencil biases ``g`` low when the length-scale is only a few ``dx`` (relative bias about
``(dx / L)**2``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
]

Lag = tuple[int, ...]
MomentKey = tuple[str, str, Lag]


# ---------------------------------------------------------------------------- direct formulas


def _as_spacing(spacing: float | Sequence[float]) -> tuple[float, ...]:
    values = np.atleast_1d(np.asarray(spacing, dtype=float))
    if values.ndim != 1 or not 1 <= values.size <= 3 or np.any(values <= 0):
        raise ValueError(f"spacing: expected 1 to 3 positive grid spacings, got {spacing}")
    return tuple(float(v) for v in values)


def _as_ensemble(ensemble: ArrayLike, ndim: int, name: str = "ensemble") -> np.ndarray:
    ensemble = np.asarray(ensemble, dtype=np.float64)
    if ensemble.ndim < ndim + 1:
        raise ValueError(
            f"{name}: expected shape (members, *grid) with {ndim} grid axes, got {ensemble.shape}"
        )
    if ensemble.shape[0] < 1:
        raise ValueError(f"{name}: needs at least one member, got shape {ensemble.shape}")
    return ensemble


def _check_positive_variance(variance: np.ndarray, name: str = "variance") -> None:
    bad = np.count_nonzero(~(variance > 0))
    if bad:
        raise ValueError(
            f"{name}: {bad} of {variance.size} points have V <= 0 (or NaN); the normalised "
            "error eps = e / sqrt(V) is undefined there"
        )


def centred_difference(field: ArrayLike, spacing: float | Sequence[float], axis: int) -> np.ndarray:
    """Second-order centred periodic difference along grid axis ``axis``.

    Parameters
    ----------
    field : array_like
        ``(..., *grid)``; the grid is the last ``len(spacing)`` axes.
    spacing : float or sequence of float
        Grid spacing per grid axis (physical units).
    axis : int
        Grid axis, ``0 <= axis < len(spacing)``.

    Returns
    -------
    numpy.ndarray
        ``(f(p + e_axis) - f(p - e_axis)) / (2 dx_axis)``, same shape as ``field``.

    Examples
    --------
    >>> centred_difference(np.array([0.0, 1.0, 4.0, 9.0]), 1.0, 0)
    array([-4.,  2.,  4., -2.])
    """
    spacing = _as_spacing(spacing)
    ndim = len(spacing)
    if not 0 <= axis < ndim:
        raise ValueError(f"axis: expected 0 <= axis < {ndim}, got {axis}")
    field = np.asarray(field, dtype=np.float64)
    array_axis = axis - ndim
    forward = np.roll(field, -1, axis=array_axis)
    backward = np.roll(field, 1, axis=array_axis)
    return (forward - backward) / (2.0 * spacing[axis])


def ensemble_mean(ensemble: ArrayLike) -> np.ndarray:
    """Mean over members: ``(members, *grid)`` -> ``grid``."""
    return np.asarray(ensemble, dtype=np.float64).mean(axis=0)


def ensemble_variance(ensemble: ArrayLike) -> np.ndarray:
    """Population variance over members (divisor ``members``): ``(members, *grid)`` -> ``grid``."""
    return np.asarray(ensemble, dtype=np.float64).var(axis=0)


def normalized_error(ensemble: ArrayLike) -> np.ndarray:
    """Normalised error ``eps = (x - mean) / sqrt(V)``, shape ``(members, *grid)``.

    Raises
    ------
    ValueError
        If ``V <= 0`` anywhere (e.g. identical members).
    """
    ensemble = np.asarray(ensemble, dtype=np.float64)
    variance = ensemble.var(axis=0)
    _check_positive_variance(variance)
    return (ensemble - ensemble.mean(axis=0)) / np.sqrt(variance)


def metric_from_ensemble(ensemble: ArrayLike, spacing: float | Sequence[float]) -> np.ndarray:
    """Metric tensor ``g_ij = E[D_i eps D_j eps]`` with centred periodic differences.

    Parameters
    ----------
    ensemble : array_like
        ``(members, *grid)``; the grid is the last ``len(spacing)`` axes.
    spacing : float or sequence of float
        Grid spacing per axis (physical units).

    Returns
    -------
    numpy.ndarray
        ``(ndim, ndim, *grid)``, symmetric, units 1 / length**2.

    Examples
    --------
    >>> x = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    >>> ens = np.stack([np.cos(x + 2 * np.pi * k / 3) for k in range(3)])
    >>> g = metric_from_ensemble(ens, x[1])
    >>> bool(np.allclose(g[0, 0], (np.sin(x[1]) / x[1]) ** 2))
    True
    """
    spacing = _as_spacing(spacing)
    ndim = len(spacing)
    eps = normalized_error(_as_ensemble(ensemble, ndim))
    gradients = [centred_difference(eps, spacing, axis) for axis in range(ndim)]
    metric = np.empty((ndim, ndim, *eps.shape[1:]))
    for i in range(ndim):
        for j in range(i, ndim):
            metric[i, j] = metric[j, i] = np.mean(gradients[i] * gradients[j], axis=0)
    return metric


def _tensor_last(tensor: np.ndarray) -> np.ndarray:
    if tensor.ndim < 2 or tensor.shape[0] != tensor.shape[1]:
        raise ValueError(f"metric: expected shape (ndim, ndim, *grid), got {tensor.shape}")
    return np.moveaxis(tensor, (0, 1), (-2, -1))


def aspect_from_metric(metric: ArrayLike) -> np.ndarray:
    """Aspect tensor ``s = g^-1`` pointwise: ``(ndim, ndim, *grid)`` -> same, units length**2."""
    metric = np.asarray(metric, dtype=np.float64)
    return np.moveaxis(np.linalg.inv(_tensor_last(metric)), (-2, -1), (0, 1))


def diffusion_from_metric(metric: ArrayLike) -> np.ndarray:
    """Diffusion tensor ``nu = g^-1 / 2`` pointwise: ``(ndim, ndim, *grid)`` -> same."""
    return 0.5 * aspect_from_metric(metric)


def length_scale_from_metric(metric: ArrayLike) -> np.ndarray:
    """Length-scale along each grid axis, ``L_i = 1 / sqrt(g_ii)``.

    This is the correlation length of the section of the correlation along axis ``i``; in 1D it
    equals ``sqrt(s)``. Shape ``(ndim, ndim, *grid)`` -> ``(ndim, *grid)``, physical units.
    """
    metric = np.asarray(metric, dtype=np.float64)
    diagonal = np.moveaxis(np.diagonal(_tensor_last(metric), axis1=-2, axis2=-1), -1, 0)
    _check_positive_variance(diagonal, "metric diagonal")
    return 1.0 / np.sqrt(diagonal)


def cross_covariance(first: ArrayLike, second: ArrayLike) -> np.ndarray:
    """Cross-covariance ``V_ab = E[e_a e_b]`` (population) of two ensembles of equal shape."""
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"second: shape {second.shape} differs from first {first.shape}")
    return np.mean((first - first.mean(axis=0)) * (second - second.mean(axis=0)), axis=0)


def cross_correlation(first: ArrayLike, second: ArrayLike) -> np.ndarray:
    """Cross-correlation ``E[eps_a eps_b] = V_ab / sqrt(V_a V_b)`` of two ensembles."""
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    product = first.var(axis=0) * second.var(axis=0)
    _check_positive_variance(product, "V_a V_b")
    return cross_covariance(first, second) / np.sqrt(product)


def _derived_statistics(mean: np.ndarray, variance: np.ndarray, metric: np.ndarray) -> dict:
    aspect = aspect_from_metric(metric)
    return {
        "mean": mean,
        "variance": variance,
        "metric": metric,
        "aspect": aspect,
        "diffusion": 0.5 * aspect,
        "length_scale": length_scale_from_metric(metric),
    }


def ensemble_statistics(
    ensemble: ArrayLike, spacing: float | Sequence[float]
) -> dict[str, np.ndarray]:
    """All univariate PKF statistics of one ensemble.

    Returns
    -------
    dict
        ``mean`` and ``variance`` ``grid``; ``metric``, ``aspect``, ``diffusion``
        ``(ndim, ndim, *grid)``; ``length_scale`` ``(ndim, *grid)``.
    """
    spacing = _as_spacing(spacing)
    ensemble = _as_ensemble(ensemble, len(spacing))
    return _derived_statistics(
        ensemble.mean(axis=0), ensemble.var(axis=0), metric_from_ensemble(ensemble, spacing)
    )


# ---------------------------------------------------------------------- mergeable moments


def metric_lags(ndim: int) -> tuple[Lag, ...]:
    """Lags ``delta`` whose auto co-moments determine V and the centred-difference metric.

    ``g_ij(p)`` couples the values at ``p +- e_i`` and ``p +- e_j``, i.e. lags ``0``,
    ``2 e_i`` and, for ``i < j``, ``e_i + e_j`` and ``e_i - e_j`` (the other signs follow by
    symmetry). 1D: 2 lags, 2D: 5, 3D: 10.
    """
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim: expected 1, 2 or 3, got {ndim}")
    unit = np.eye(ndim, dtype=int)
    lags = [tuple(np.zeros(ndim, dtype=int))] + [tuple(2 * unit[i]) for i in range(ndim)]
    for i, j in combinations(range(ndim), 2):
        lags += [tuple(unit[i] + unit[j]), tuple(unit[i] - unit[j])]
    return tuple(tuple(int(v) for v in lag) for lag in lags)


def moment_keys(fields: Sequence[str], ndim: int) -> tuple[MomentKey, ...]:
    """Keys ``(a, b, lag)`` of the co-moments kept for ``fields`` on an ``ndim`` grid.

    Each field gets its :func:`metric_lags`; each pair ``a`` before ``b`` the zero lag.
    """
    zero = (0,) * ndim
    keys = [(name, name, lag) for name in fields for lag in metric_lags(ndim)]
    keys += [(a, b, zero) for a, b in combinations(fields, 2)]
    return tuple(keys)


def _shift(field: np.ndarray, offset: Sequence[int]) -> np.ndarray:
    """``field(p + offset)`` on the periodic grid formed by the last ``len(offset)`` axes."""
    ndim = len(offset)
    return np.roll(field, tuple(-int(o) for o in offset), axis=tuple(range(-ndim, 0)))


@dataclass
class Moments:
    """Centred moments of a set of members, mergeable with :func:`merge_moments`.

    Attributes
    ----------
    count : int
        Number of members.
    means : dict of str to numpy.ndarray
        Mean of each field, ``state`` shape (``(*lead, *grid)``).
    comoments : dict of (str, str, tuple of int) to numpy.ndarray
        ``comoments[(a, b, lag)](p) = sum_k (a_k(p) - mean_a(p)) (b_k(p + lag) - mean_b(p + lag))``
        with periodic ``p + lag`` on the grid axes, for the keys of :func:`moment_keys`.
        Per-chunk sums computed elsewhere (e.g. TensorFlow with ``tf.roll``) fit here.
    """

    count: int
    means: dict[str, np.ndarray]
    comoments: dict[MomentKey, np.ndarray] = field(default_factory=dict)


def chunk_moments(fields: Mapping[str, ArrayLike], ndim: int) -> Moments:
    """Moments of one chunk of members (the numpy reference for the per-chunk sums).

    Parameters
    ----------
    fields : mapping of str to array_like
        Each ``(members, *lead, *grid)`` with the same shape; the grid is the last ``ndim`` axes.
    ndim : int
        Number of grid axes.
    """
    arrays = {name: np.asarray(value, dtype=np.float64) for name, value in fields.items()}
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"fields: all fields need the same shape, got {shapes}")
    first = next(iter(arrays.values()))
    _as_ensemble(first, ndim, f"fields[{next(iter(arrays))!r}]")
    means = {name: a.mean(axis=0) for name, a in arrays.items()}
    errors = {name: arrays[name] - means[name] for name in arrays}
    comoments = {
        (a, b, lag): np.sum(errors[a] * _shift(errors[b], lag), axis=0)
        for a, b, lag in moment_keys(tuple(arrays), ndim)
    }
    return Moments(first.shape[0], means, comoments)


def _check_compatible(first: Moments, second: Moments) -> None:
    if set(first.means) != set(second.means) or set(first.comoments) != set(second.comoments):
        raise ValueError(
            f"moments: fields/keys differ: {sorted(first.means)} vs {sorted(second.means)}"
        )
    for name, mean in first.means.items():
        if mean.shape != second.means[name].shape:
            raise ValueError(
                f"moments: state shape of {name!r} differs: {mean.shape} vs "
                f"{second.means[name].shape}"
            )


def merge_moments(first: Moments, second: Moments) -> Moments:
    """Combine the moments of two disjoint member sets (Chan et al. pairwise update).

    ``M = M_A + M_B + (n_A n_B / n) d_a(p) d_b(p + lag)`` with ``d = mean_B - mean_A``.
    """
    if first.count == 0:
        return Moments(second.count, dict(second.means), dict(second.comoments))
    if second.count == 0:
        return Moments(first.count, dict(first.means), dict(first.comoments))
    _check_compatible(first, second)
    count = first.count + second.count
    weight = second.count / count
    delta = {name: second.means[name] - first.means[name] for name in first.means}
    means = {name: first.means[name] + weight * delta[name] for name in first.means}
    factor = first.count * weight
    comoments = {
        (a, b, lag): first.comoments[(a, b, lag)]
        + second.comoments[(a, b, lag)]
        + factor * delta[a] * _shift(delta[b], lag)
        for a, b, lag in first.comoments
    }
    return Moments(count, means, comoments)


class MomentAccumulator:
    """Mergeable on-the-fly PKF statistics of one or several fields.

    Parameters
    ----------
    spacing : float or sequence of float
        Grid spacing per grid axis (physical units); the grid is the last ``len(spacing)`` axes
        of every state, leading axes (e.g. time) are independent.
    fields : sequence of str, default ("x",)
        Field names; cross-covariances are kept for every pair.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ens = rng.standard_normal((10, 16))
    >>> acc = MomentAccumulator(spacing=0.1)
    >>> acc.update(ens[:3]).update(ens[3:])
    MomentAccumulator(fields=('x',), count=10)
    >>> bool(np.allclose(acc.variance(), ens.var(axis=0)))
    True
    """

    def __init__(self, spacing: float | Sequence[float], fields: Sequence[str] = ("x",)) -> None:
        self.spacing = _as_spacing(spacing)
        self.fields = tuple(fields)
        if not self.fields or len(set(self.fields)) != len(self.fields):
            raise ValueError(f"fields: expected distinct field names, got {fields}")
        self._moments = Moments(0, {}, {})

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
            ``(members, *lead, *grid)`` per field (an array when there is one field).
        """
        return self.update_moments(chunk_moments(self._as_fields(batch), self.ndim))

    def update_moments(self, moments: Moments) -> MomentAccumulator:
        """Add precomputed per-chunk :class:`Moments` (e.g. sums computed in TensorFlow)."""
        expected = set(moment_keys(self.fields, self.ndim))
        if set(moments.means) != set(self.fields) or set(moments.comoments) != expected:
            missing = sorted(expected - set(moments.comoments), key=str)
            raise ValueError(
                f"moments: expected means of {self.fields} and the keys of moment_keys(); "
                f"missing {missing}"
            )
        moments = Moments(
            int(moments.count),
            {k: np.asarray(v, dtype=np.float64) for k, v in moments.means.items()},
            {k: np.asarray(v, dtype=np.float64) for k, v in moments.comoments.items()},
        )
        if moments.count < 0:
            raise ValueError(f"moments: count must be non-negative, got {moments.count}")
        self._moments = merge_moments(self._moments, moments)
        return self

    def merge(self, other: MomentAccumulator) -> MomentAccumulator:
        """Add the members accumulated by ``other`` (same fields and spacing)."""
        if other.fields != self.fields or other.spacing != self.spacing:
            raise ValueError(
                f"other: fields/spacing {other.fields}/{other.spacing} differ from "
                f"{self.fields}/{self.spacing}"
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
        return self._moments.means[self._field(name)].copy()

    def variance(self, name: str | None = None) -> np.ndarray:
        """Population variance of field ``name``, state shape."""
        name = self._field(name)
        return self._moments.comoments[(name, name, (0,) * self.ndim)] / self.count

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
        / (sigma(p + a e_i) sigma(p + b e_j) 4 dx_i dx_j)``.
        """
        name = self._field(name)
        variance = self.variance(name)
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

    def aspect(self, name: str | None = None) -> np.ndarray:
        """Aspect tensor ``s = g^-1``, ``(ndim, ndim, *state)``."""
        return aspect_from_metric(self.metric(name))

    def diffusion(self, name: str | None = None) -> np.ndarray:
        """Diffusion tensor ``nu = g^-1 / 2``, ``(ndim, ndim, *state)``."""
        return diffusion_from_metric(self.metric(name))

    def length_scale(self, name: str | None = None) -> np.ndarray:
        """Length-scale along each axis ``1 / sqrt(g_ii)``, ``(ndim, *state)``."""
        return length_scale_from_metric(self.metric(name))

    def _pair(self, first: str, second: str) -> tuple[str, str]:
        first, second = self._field(first), self._field(second)
        if first == second:
            raise ValueError(f"cross statistics need two different fields, got {first!r} twice")
        order = self.fields.index
        return (first, second) if order(first) < order(second) else (second, first)

    def cross_covariance(self, first: str, second: str) -> np.ndarray:
        """Cross-covariance ``V_ab = E[e_a e_b]``, state shape."""
        a, b = self._pair(first, second)
        return self._moments.comoments[(a, b, (0,) * self.ndim)] / self.count

    def cross_correlation(self, first: str, second: str) -> np.ndarray:
        """Cross-correlation ``V_ab / sqrt(V_a V_b)``, state shape."""
        product = self.variance(first) * self.variance(second)
        _check_positive_variance(product, f"V_{first} V_{second}")
        return self.cross_covariance(first, second) / np.sqrt(product)

    def statistics(self, name: str | None = None) -> dict[str, np.ndarray]:
        """Univariate statistics of field ``name``, keys as in :func:`ensemble_statistics`."""
        return _derived_statistics(self.mean(name), self.variance(name), self.metric(name))
