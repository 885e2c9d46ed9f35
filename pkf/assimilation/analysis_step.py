"""The PKF analysis step: mean, variance, tensor and cross-covariance updates by observations.

Serial processing of point observations with the covariance model of
:mod:`pkf.assimilation.covariance` (Pannekoucke 2021, Tellus A 73:1926660; several fields after
Perrot et al. 2023). Observation ``k`` of field ``f`` at point ``l_k`` with error variance
``R_k`` uses the column ``c_k(x) = P_k(x, l_k)`` of the covariance left by the observations
before it, ``P_k = P_f - sum_{j<k} b_j b_j^T`` (``P_f`` the model covariance), and

* updates every field's mean: ``x += c_k (y_k - x_f(l_k)) / (c_k(l_k) + R_k)``;
* adds ``b_k = c_k / sqrt(c_k(l_k) + R_k)`` to the update, ``P_a = P_f - sum_k b_k b_k^T``, so
  ``V_a = V_f - sum_k b_k^2`` and ``V_AB,a = V_AB,f - sum_k b_k,A b_k,B``;
* the tensor then follows from ``P_a``:

  - order 1: ``g_a = (V_f / V_a) g_f``;
  - order 2 (the metric of ``P_a``, ``g = d_x d_x' rho`` on the diagonal; Pannekoucke 2021):
    ``g_a = (V_f / V_a) g_f + grad V_f grad V_f^T / (4 V_f V_a)
    - sum_k grad b_k grad b_k^T / V_a - grad V_a grad V_a^T / (4 V_a^2)``,
    gradients by centred differences, ``g_f = s_f^-1`` the state's metric
    (``forecast_metric="state"``). The model's own metric is not exactly ``s^-1`` where ``s``
    varies: ``g_m = s^-1 + tr(s^-1 d_i s s^-1 d_j s) / 8`` (:meth:`CovarianceModel.metric`).
    With ``forecast_metric="model"`` the update is the exact metric change of the model
    covariance, ``g_a = g_f + (V_f / V_a - 1) g_m + ...`` (same other terms), which converges
    to the metric change of the exact ``P_a`` with resolution for any ``s``.

This serial processing is exactly the batch update ``P_a = P_f - P_f H^T (H P_f H^T + R)^-1 H
P_f`` of the model covariance. With ``refit=True`` the model is instead re-fitted to the updated
state after each observation (the next observation sees ``(V_a, s_a)``, not ``P_a``): the
sequential form of the PKF analysis, cheaper but a further approximation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from generator.protocols import LabelledModel

from .covariance import CovarianceModel
from .observations import Observations
from .state import PKFState, invert_tensor, positive_definite

__all__ = ["AnalysisError", "AnalysisOrder", "ForecastMetric", "analysis", "analysis_of_state"]

ForecastMetric = Literal["state", "model"]
"""Forecast metric of the order-2 update: the state's ``s^-1`` or the model's own metric."""

AnalysisOrder = Literal[1, 2]
"""Order of the tensor update: 1 (variance ratio) or 2 (the metric of the analysed covariance)."""


class AnalysisError(ValueError):
    """The analysis cannot produce a valid state (a variance or tensor would not be positive)."""


@dataclass(frozen=True)
class _Point:
    field: str
    flat: int
    value: float
    error_variance: float
    label: str


def _points(observations: Sequence[Observations], state: PKFState) -> list[_Point]:
    points = []
    for obs in observations:
        obs.check_grid(state.grid.shape, state.fields)
        flat = obs.flat_indices(state.grid.shape)
        for k in range(obs.count):
            label = f"observation {k} of {obs.field!r} at {tuple(obs.indices[k].tolist())}"
            points.append(
                _Point(
                    obs.field,
                    int(flat[k]),
                    float(obs.values[k]),
                    float(obs.error_variance[k]),
                    label,
                )
            )
    return points


def _as_list(observations: Observations | Sequence[Observations]) -> list[Observations]:
    if isinstance(observations, Observations):
        return [observations]
    items = list(observations)
    wrong = [type(o).__name__ for o in items if not isinstance(o, Observations)]
    if wrong or not items:
        raise ValueError(
            "observations: expected an Observations or a non-empty sequence of them, got "
            f"{wrong or 'nothing'}"
        )
    return items


def analysis(
    state: Mapping[str, ArrayLike],
    observations: Observations | Sequence[Observations],
    lengths: float | Sequence[float] | LabelledModel,
    order: AnalysisOrder = 2,
    *,
    coordinates: Sequence[str] | None = None,
    accuracy: int = 2,
    refit: bool = False,
    forecast_metric: ForecastMetric = "model",
) -> dict[str, np.ndarray]:
    """PKF analysis of a forecast state by point observations.

    Parameters
    ----------
    state : mapping of str to array_like
        The PKF forecast, named as the PKF model's fields: means ``f``, variances ``V_f``,
        the tensor in metric (``g_f_xy``), aspect (``s_f_xy``) or diffusion (``nu_f_xy``)
        form, and cross-covariances ``V_ab`` (a field pair without one is uncorrelated).
        Grid-shaped arrays in model coordinate order, 1D to 3D.
    observations : Observations or sequence of Observations
        Point observations, of any of the state's fields.
    lengths : float, sequence of float or generator.GeneratedModel
        Domain length per axis (length units of the tensors), or the (PKF) model whose grid
        the state lives on: its ``lengths`` and ``coordinates`` are used. Required: the
        covariance model's distances depend on it, and a wrong length gives a wrong analysis.
    order : {1, 2}
        Tensor update (see the module docstring).
    coordinates : sequence of str, optional
        Coordinate names in the tensor names (default ``x, y, z``).
    accuracy : int
        Order of the centred differences of the order-2 update (2, 4, 6).
    refit : bool
        Re-fit the covariance model after each observation instead of keeping ``P_f`` and the
        rank-one updates (see the module docstring).
    forecast_metric : {"state", "model"}
        Forecast metric of the order-2 update (see the module docstring).

    Returns
    -------
    dict of str to numpy.ndarray
        The analysis, with the same names and tensor form as ``state``: means in the units of
        the fields, variances in their squares, tensors in length² (aspect ``s``, diffusion
        ``nu = s / 2``) or 1/length² (metric ``g = s^-1``).

    References
    ----------
    Pannekoucke (2021), Tellus A 73:1926660 (univariate analysis, order 1 and 2); Perrot et al.
    (2023) for the cross-covariance model of several fields.

    Raises
    ------
    ValueError
        Naming the problem: a bad state (see :meth:`PKFState.from_mapping`), an observation of
        an unknown field or off the grid, ``order`` not 1 or 2; ``AnalysisError`` (a
        ``ValueError``) when an analysed variance or tensor is not positive (e.g. a zero
        observation error at a point, or an order-2 update the grid cannot resolve).

    Examples
    --------
    >>> from pkf.assimilation import Observations
    >>> n = 100
    >>> forecast = {"c": np.zeros(n), "V_c": np.ones(n), "s_c_xx": np.full(n, 0.05**2)}
    >>> obs = Observations("c", indices=[50], values=[1.0], error_variance=1.0)
    >>> result = analysis(forecast, obs, lengths=1.0, order=2)  # or lengths=the PKF model
    >>> round(float(result["c"][50]), 12), round(float(result["V_c"][50]), 12)  # V R / (V + R)
    (0.5, 0.5)
    """
    domain: float | Sequence[float]
    if isinstance(lengths, (int, float, Sequence, np.ndarray)):
        domain = lengths
    else:  # a model: its grid
        domain = tuple(float(v) for v in lengths.lengths)
        coordinates = tuple(lengths.coordinates) if coordinates is None else coordinates
    pkf_state = PKFState.from_mapping(state, domain, coordinates)
    return analysis_of_state(
        pkf_state, observations, order, accuracy, refit, forecast_metric
    ).to_mapping()


def analysis_of_state(
    state: PKFState,
    observations: Observations | Sequence[Observations],
    order: AnalysisOrder = 2,
    accuracy: int = 2,
    refit: bool = False,
    forecast_metric: ForecastMetric = "model",
) -> PKFState:
    """:func:`analysis` on a :class:`PKFState` (returns a new one)."""
    if order not in (1, 2):
        raise ValueError(f"order: expected 1 or 2, got {order!r}")
    if forecast_metric not in ("state", "model"):
        raise ValueError(f"forecast_metric: expected 'state' or 'model', got {forecast_metric!r}")
    if accuracy not in (2, 4, 6, 8):
        raise ValueError(f"accuracy: expected an even order 2 to 8, got {accuracy!r}")
    points = _points(_as_list(observations), state)
    if not refit:
        return _update(state, points, order, accuracy, forecast_metric)
    for point in points:
        state = _update(state, [point], order, accuracy, forecast_metric)
    return state


def _update(
    state: PKFState, points: list[_Point], order: int, accuracy: int, forecast_metric: str
) -> PKFState:
    grid = state.grid
    n, fields = grid.size, state.fields
    model = CovarianceModel(state)
    mean = {f: state.mean[f].reshape(n).copy() for f in fields}
    columns = {f: np.zeros((len(points), n)) for f in fields}
    for k, point in enumerate(points):
        column = {f: model.column(f, point.field, point.flat) for f in fields}
        if k:
            weights = columns[point.field][:k, point.flat]
            for f in fields:
                column[f] -= weights @ columns[f][:k]
        total = column[point.field][point.flat] + point.error_variance
        if not total > 0:
            raise AnalysisError(
                f"{point.label}: forecast plus observation-error variance is {total:g} (<= 0); "
                "give a positive error_variance"
            )
        weight = (point.value - mean[point.field][point.flat]) / total
        root = np.sqrt(total)
        for f in fields:
            mean[f] += column[f] * weight
            columns[f][k] = column[f] / root
    variance = {}
    for f in fields:
        v = state.variance[f].reshape(n) - np.einsum("kn,kn->n", columns[f], columns[f])
        if not (v > 0).all():
            raise AnalysisError(
                f"analysis: the variance of {f!r} is <= 0 at {int(np.count_nonzero(v <= 0))} "
                "points (an observation with zero error variance leaves no uncertainty there)"
            )
        variance[f] = v.reshape(grid.shape)
    cross = {
        (a, b): values - np.einsum("kn,kn->n", columns[a], columns[b]).reshape(grid.shape)
        for (a, b), values in state.cross.items()
    }
    aspect = {}
    for f in fields:
        metric = _metric_update(
            state, model, f, variance[f], columns[f], order, accuracy, forecast_metric
        )
        good = positive_definite(metric)
        if not good.all():
            where = grid.unravel(np.flatnonzero(~good.reshape(n))[:5]).tolist()
            raise AnalysisError(
                f"analysis: the order-{order} metric of {f!r} is not positive definite at "
                f"{int(np.count_nonzero(~good))} points (first {where}): the update's gradients "
                "are not resolved by the grid there"
            )
        aspect[f] = invert_tensor(metric)
    mean_out = {f: mean[f].reshape(grid.shape) for f in fields}
    return PKFState(grid, state.form, mean_out, variance, aspect, cross, dict(state.cross_names))


def _metric_update(
    state: PKFState,
    model: CovarianceModel,
    name: str,
    variance_a: np.ndarray,
    columns: np.ndarray,
    order: int,
    accuracy: int,
    forecast_metric: str,
) -> np.ndarray:
    """The analysed metric of field ``name`` (see the module docstring)."""
    grid = state.grid
    variance_f = state.variance[name]
    metric_f = state.metric(name)
    ratio = variance_f / variance_a
    if order == 1:
        return ratio * metric_f
    ndim = grid.ndim
    b = columns.reshape(-1, *grid.shape)
    grad_b = [grid.derivative(b, axis, accuracy) for axis in range(ndim)]
    grad_vf = [grid.derivative(variance_f, axis, accuracy) for axis in range(ndim)]
    grad_va = [grid.derivative(variance_a, axis, accuracy) for axis in range(ndim)]
    if forecast_metric == "model":
        metric = metric_f + (ratio - 1.0) * model.metric(name, accuracy)
    else:
        metric = ratio * metric_f
    for i, j in grid.pairs():
        term = (
            grad_vf[i] * grad_vf[j] / (4 * variance_f * variance_a)
            - np.einsum("k...,k...->...", grad_b[i], grad_b[j]) / variance_a
            - grad_va[i] * grad_va[j] / (4 * variance_a**2)
        )
        metric[i, j] = metric[i, j] + term
        if i != j:
            metric[j, i] = metric[i, j]
    return metric
