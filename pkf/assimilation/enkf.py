"""Ensemble Kalman filters on the generated model: stochastic and serial square-root variants.

Members are forecast as one batch through the compiled loop of :class:`pkf.EnsembleForecast`.
The analysis is either the stochastic EnKF with perturbed observations (Burgers, van Leeuwen &
Evensen 1998) or the serial square-root filter (EnSRF, Whitaker & Hamill 2002), both with
optional Gaspari-Cohn (1999) localisation of the covariances and multiplicative inflation of
the forecast anomalies (Anderson & Anderson 1999).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

from generator.validation import finite_float, positive_int

from ..forms import PKFForm
from .covariance import CovarianceModel, SquareRootStatistics, square_root_statistics
from .kalman import (
    _fields,
    _observation_list,
    _rank_one_update,
    filter_state,
    model_grid,
    propagate_members,
)
from .observations import Observations
from .state import PKFState

if TYPE_CHECKING:
    from generator.model import GeneratedModel

__all__ = ["EnKF", "EnKFVariant", "gaspari_cohn"]

EnKFVariant = Literal["stochastic", "square-root"]
"""``"stochastic"``: perturbed observations; ``"square-root"``: serial EnSRF."""


def gaspari_cohn(distance: ArrayLike, radius: float) -> np.ndarray:
    """Gaspari-Cohn (1999, eq. 4.10) compactly supported 5th-order correlation.

    Parameters
    ----------
    distance : array_like
        Distances (length units), ``>= 0``.
    radius : float
        Localisation radius: the weight is 1 at distance 0 and vanishes beyond ``radius``
        (the function's half-width is ``c = radius / 2``).

    Returns
    -------
    numpy.ndarray
        Weights in ``[0, 1]``, the shape of ``distance``.

    Examples
    --------
    >>> gaspari_cohn([0.0, 0.5, 1.0, 2.0], radius=1.0).round(4).tolist()
    [1.0, 0.2083, 0.0, 0.0]
    """
    radius = finite_float(radius, "localisation_radius", "positive")
    z = np.abs(np.asarray(distance, dtype=np.float64)) / (radius / 2.0)
    near = -0.25 * z**5 + 0.5 * z**4 + 0.625 * z**3 - 5.0 / 3.0 * z**2 + 1.0
    safe = np.where(z > 0, z, 1.0)
    far = (
        z**5 / 12.0
        - 0.5 * z**4
        + 0.625 * z**3
        + 5.0 / 3.0 * z**2
        - 5.0 * z
        + 4.0
        - 2.0 / (3.0 * safe)
    )
    return np.where(z <= 1.0, near, np.where(z < 2.0, far, 0.0))


class EnKF:
    """Ensemble Kalman filter of a generated model.

    Parameters
    ----------
    model : generator.GeneratedModel
        The dynamics (any generated model; members run as one batch).
    members : mapping of str to array_like
        Initial members ``{field: (N, *grid)}`` (model coordinate order), ``N >= 2``.
    variant : {"square-root", "stochastic"}
        Serial square-root filter (Whitaker & Hamill 2002) or perturbed observations (Burgers
        et al. 1998, batch gain with the localised covariances).
    localisation_radius : float, optional
        Gaspari-Cohn localisation: covariances between points farther apart than this
        distance (shortest periodic, length units) are set to zero, nearer ones tapered
        (:func:`gaspari_cohn`). ``None``: no localisation.
    inflation : float
        Multiplicative inflation ``lambda >= 1`` of the forecast anomalies before each
        analysis (variances times ``lambda**2``).
    seed : int, numpy.random.Generator or None
        Random stream of the observation perturbations (stochastic variant).
    accuracy : int, optional
        Order of the centred differences of the diagnosed tensors (default the model's).
    progress : bool
        Progress bars of the member forecasts.

    Examples
    --------
    >>> import sympy as sp
    >>> from generator import NNModelBuilder
    >>> t, x = sp.symbols("t x")
    >>> c = sp.Function("c")(t, x)
    >>> Advection = NNModelBuilder(sp.Eq(c.diff(t), -c.diff(x)), "Advection").build()
    >>> model = Advection(shape=32, lengths=1.0)
    >>> background = {"c": np.zeros(32), "V_c": np.ones(32), "s_c_xx": np.full(32, 0.1**2)}
    >>> enkf = EnKF.from_pkf_state(model, background, members=50, seed=0)
    >>> enkf.assimilate(Observations("c", [5], [1.0], error_variance=1e-6))
    >>> abs(float(enkf.mean["c"][5]) - 1.0) < 1e-3  # an accurate observation is drawn to
    True
    """

    def __init__(
        self,
        model: GeneratedModel,
        members: Mapping[str, ArrayLike],
        *,
        variant: EnKFVariant = "square-root",
        localisation_radius: float | None = None,
        inflation: float = 1.0,
        seed: int | np.random.Generator | None = None,
        accuracy: int | None = None,
        progress: bool = False,
    ) -> None:
        if variant not in ("stochastic", "square-root"):
            raise ValueError(f"variant: expected 'stochastic' or 'square-root', got {variant!r}")
        self.model = model
        self.grid = model_grid(model)
        self.fields = tuple(model.prognostic_functions)
        ensemble = _fields(members, self.fields, None, "members")
        sizes = {v.shape[0] for v in ensemble.values()}
        if len(sizes) != 1 or any(v.shape[1:] != self.grid.shape for v in ensemble.values()):
            raise ValueError(
                f"members: expected (N, *grid) = (N, *{self.grid.shape}) arrays of one size, got "
                f"{ {f: v.shape for f, v in ensemble.items()} }"
            )
        self.size = positive_int(sizes.pop(), "members", minimum=2)
        for f, values in ensemble.items():
            if np.all(np.ptp(values, axis=0) == 0):
                raise ValueError(
                    f"members[{f!r}]: all {self.size} members are identical (no spread): an "
                    "EnKF needs members drawn around the mean (see EnKF.from_pkf_state)"
                )
        self.members = ensemble
        self.variant: EnKFVariant = variant
        if localisation_radius is not None and not localisation_radius > 0:
            raise ValueError(
                f"localisation_radius: expected a distance > 0, or None for no localisation, "
                f"got {localisation_radius!r}"
            )
        self.localisation_radius = (
            None
            if localisation_radius is None
            else finite_float(localisation_radius, "localisation_radius", "positive")
        )
        self.inflation = finite_float(inflation, "inflation", "positive")
        if self.inflation < 1.0:
            raise ValueError(f"inflation: expected a factor >= 1, got {inflation}")
        self.rng = np.random.default_rng(seed)
        self.accuracy = int(accuracy if accuracy is not None else model.accuracy)
        self.progress = progress
        self._engine: object | None = None

    @classmethod
    def from_pkf_state(
        cls,
        model: GeneratedModel,
        state: Mapping[str, ArrayLike],
        members: int,
        *,
        seed: int | np.random.Generator | None = None,
        **options: object,
    ) -> EnKF:
        """Members ``x_r = mean + S z_r`` (``z_r ~ N(0, I)``) drawn from the PKF covariance model
        of ``state`` (:meth:`CovarianceModel.square_root`); ``options`` as for :class:`EnKF`."""
        grid = model_grid(model)
        members = positive_int(members, "members", minimum=2)
        pkf_state = PKFState.from_mapping(state, grid.lengths, grid.coordinates)
        columns = CovarianceModel(pkf_state).square_root()
        rng = np.random.default_rng(seed)
        return cls(
            model,
            draw_members(pkf_state.mean, columns, members, rng),
            seed=rng,
            **options,  # type: ignore[arg-type]
        )

    @property
    def mean(self) -> dict[str, np.ndarray]:
        """Ensemble mean of every field, grid-shaped."""
        return {f: v.mean(axis=0) for f, v in self.members.items()}

    def anomalies(self) -> dict[str, np.ndarray]:
        """``(x_r - mean) / sqrt(N - 1)``: the square root of the sample covariance, per field."""
        scale = 1.0 / np.sqrt(self.size - 1)
        return {f: (v - v.mean(axis=0)) * scale for f, v in self.members.items()}

    def forecast(self, times: ArrayLike) -> None:
        """Forecast every member over ``times``: one batched compiled loop."""
        from ..ensemble import EnsembleForecast

        if self._engine is None:
            self._engine = EnsembleForecast(
                self.model, self.size, save_members=True, progress=self.progress
            )
        self.members = propagate_members(self._engine, times, self.members)

    def _localisation(self, points: np.ndarray, targets: np.ndarray) -> np.ndarray | float:
        if self.localisation_radius is None:
            return 1.0
        distance = np.sqrt(np.sum(self.grid.displacement(points, targets) ** 2, axis=0))
        return gaspari_cohn(distance, self.localisation_radius)

    def assimilate(self, observations: Observations | Sequence[Observations]) -> None:
        """Analysis of the members by the observations (variant, localisation, inflation).

        Raises
        ------
        ValueError
            For an observation of an unknown field or off the grid.
        """
        items = _observation_list(observations)
        n, size = self.grid.size, self.size
        fields_obs, points, values, variances = [], [], [], []
        for obs in items:
            obs.check_grid(self.grid.shape, self.fields)
            fields_obs += [obs.field] * obs.count
            points.append(obs.flat_indices(self.grid.shape))
            values.append(obs.values)
            variances.append(obs.error_variance)
        flat_points = np.concatenate(points)
        y, r = np.concatenate(values), np.concatenate(variances)
        mean = {f: v.reshape(size, n).mean(axis=0) for f, v in self.members.items()}
        anomalies = {
            f: self.inflation * (v.reshape(size, n) - mean[f]) for f, v in self.members.items()
        }
        if self.variant == "square-root":
            self._serial_square_root(mean, anomalies, fields_obs, flat_points, y, r)
        else:
            self._stochastic(mean, anomalies, fields_obs, flat_points, y, r)
        self.members = {
            f: (mean[f] + anomalies[f]).reshape(size, *self.grid.shape) for f in self.fields
        }

    def _serial_square_root(self, mean, anomalies, fields_obs, points, y, r) -> None:
        n, scale = self.grid.size, 1.0 / (self.size - 1)
        everywhere = np.arange(n)
        for k, (field, point) in enumerate(zip(fields_obs, points, strict=True)):
            h_anomaly = anomalies[field][:, point].copy()
            total = float(h_anomaly @ h_anomaly) * scale + r[k]
            if not total > 0:
                raise ValueError(f"observation {k} of {field!r}: zero forecast and error variance")
            taper = self._localisation(everywhere, np.asarray(point))
            innovation = y[k] - mean[field][point]
            shrink = 1.0 / (1.0 + np.sqrt(r[k] / total))
            for f in self.fields:
                gain = taper * (h_anomaly @ anomalies[f]) * scale / total
                mean[f] += gain * innovation
                _rank_one_update(anomalies[f], -shrink, h_anomaly, gain)

    def _stochastic(self, mean, anomalies, fields_obs, points, y, r) -> None:
        n, size, scale = self.grid.size, self.size, 1.0 / (self.size - 1)
        h_anomalies = np.stack(
            [anomalies[f][:, p] for f, p in zip(fields_obs, points, strict=True)], axis=1
        )  # (N, m)
        h_mean = np.array([mean[f][p] for f, p in zip(fields_obs, points, strict=True)])
        innovation_covariance = h_anomalies.T @ h_anomalies * scale
        innovation_covariance *= self._localisation(points[:, None], points[None, :])
        innovation_covariance[np.diag_indices_from(innovation_covariance)] += r
        perturbations = self.rng.standard_normal((size, len(y))) * np.sqrt(r)
        perturbations -= perturbations.mean(axis=0)
        members_h = h_mean + h_anomalies  # (N, m)
        weights = np.linalg.solve(innovation_covariance, (y + perturbations - members_h).T)
        mean_weights = np.linalg.solve(innovation_covariance, y - h_mean)
        taper = self._localisation(np.arange(n)[:, None], points[None, :])  # (n, m) or 1
        for f in self.fields:
            gain = (anomalies[f].T @ h_anomalies) * scale * taper  # (n, m)
            increments = (gain @ weights).T  # (N, n)
            mean_increment = gain @ mean_weights
            anomalies[f] += increments - increments.mean(axis=0)
            mean[f] += mean_increment

    def statistics(self) -> SquareRootStatistics:
        """Variance (divisor ``N - 1``), metric/aspect tensors and cross-covariances."""
        return square_root_statistics(self.anomalies(), self.grid, self.accuracy)

    def state(self, form: PKFForm = "aspect") -> dict[str, np.ndarray]:
        """Ensemble mean and statistics named as a PKF state (``c``, ``V_c``, ``s_c_xx``...)."""
        return filter_state(self.mean, self.statistics(), self.grid, form)


def draw_members(
    mean: Mapping[str, np.ndarray],
    columns: Mapping[str, np.ndarray],
    members: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """``members`` draws ``mean + S z`` (``z ~ N(0, I)``) from a square root ``S``
    (``{field: (rank, *grid)}``); ``{field: (members, *grid)}``."""
    rank = next(iter(columns.values())).shape[0]
    white = rng.standard_normal((members, rank))
    return {f: mean[f] + np.tensordot(white, columns[f], axes=(1, 0)) for f in columns}
