"""The exact Kalman filter of a linear generated model, in square-root form: the reference.

The covariance is kept as columns, ``P = S S^T`` (``S`` is ``{field: (rank, *grid)}``). The
forecast ``P <- M P M^T`` runs the linear model on the columns as one batch of "members" through
the compiled loop of :class:`pkf.EnsembleForecast`; observations are assimilated one after the
other with Potter's square-root update, which is the exact Kalman analysis for independent
observation errors. Nothing is sampled: variance, metric/aspect tensors and cross-covariances
come from ``P`` itself (:func:`pkf.assimilation.square_root_statistics`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from generator.protocols import SteppableModel
from generator.validation import real_array

from ..forms import PKFForm
from .covariance import CovarianceModel, SquareRootStatistics, square_root_statistics
from .grid import Grid
from .observations import Observations
from .state import PKFState

if TYPE_CHECKING:
    from generator.model import GeneratedModel

__all__ = ["KalmanFilter", "check_linear", "filter_state", "model_grid", "propagate_members"]


def model_grid(model: SteppableModel) -> Grid:
    """The :class:`Grid` of a generated model (shape, lengths, coordinate names)."""
    return Grid.make(model.shape, model.lengths, model.coordinates)


def propagate_members(
    engine: object, times: ArrayLike, members: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run ``members`` (``{field: (N, *grid)}``) over ``times`` through an
    :class:`pkf.EnsembleForecast` built with ``save_members=True``; the members at the end."""
    times = np.asarray(times, dtype=float)
    result = engine.run(times, dict(members), saved_times=[times[-1]])  # type: ignore[attr-defined]
    assert result.members is not None
    return {f: np.ascontiguousarray(v[-1]) for f, v in result.members.items()}


def _observation_list(observations: Observations | Sequence[Observations]) -> list[Observations]:
    items = [observations] if isinstance(observations, Observations) else list(observations)
    if not items or not all(isinstance(o, Observations) for o in items):
        raise ValueError("observations: expected an Observations or a non-empty sequence of them")
    return items


class KalmanFilter:
    """Exact square-root Kalman filter of a linear model.

    Parameters
    ----------
    model : generator.GeneratedModel
        A linear, homogeneous model (``M(a x + b y) = a M x + b M y``): advection, diffusion,
        linear reactions. Its forecast of a column is the forecast of an error.
    mean : mapping of str to array_like
        Initial mean of every prognostic field, grid-shaped (model coordinate order).
    columns : mapping of str to array_like
        Square root of the initial covariance, ``{field: (rank, *grid)}``, ``P = S S^T``.
    accuracy : int, optional
        Order of the centred differences of the diagnosed tensors (default the model's).
    progress : bool
        Progress bars of the column forecasts.

    Notes
    -----
    The analysis of an observation ``y`` of field ``f`` at ``l`` with error variance ``R``
    (Potter 1964; e.g. Whitaker & Hamill 2002, eq. 13 for the ensemble form): with
    ``z = S^T h`` (the columns at ``l``), ``d = z^T z + R`` and ``P h = S z``,
    ``x_a = x + P h (y - x(l)) / d`` and ``S_a = S - S z z^T / (d + sqrt(R d))``, so that
    ``S_a S_a^T = P - P h h^T P / d`` exactly.

    Examples
    --------
    >>> import sympy as sp
    >>> from generator import NNModelBuilder
    >>> t, x = sp.symbols("t x")
    >>> c = sp.Function("c")(t, x)
    >>> Advection = NNModelBuilder(sp.Eq(c.diff(t), -c.diff(x)), "Advection").build()
    >>> model = Advection(shape=32, lengths=1.0)
    >>> background = {"c": np.zeros(32), "V_c": np.ones(32), "s_c_xx": np.full(32, 0.1**2)}
    >>> kf = KalmanFilter.from_pkf_state(model, background)
    >>> kf.assimilate(Observations("c", [5], [1.0], error_variance=1.0))
    >>> round(float(kf.statistics().variance["c"][5]), 12)  # V R / (V + R)
    0.5
    """

    def __init__(
        self,
        model: GeneratedModel,
        mean: Mapping[str, ArrayLike],
        columns: Mapping[str, ArrayLike],
        *,
        accuracy: int | None = None,
        progress: bool = False,
    ) -> None:
        self.model = model
        self.grid = model_grid(model)
        self.fields = tuple(model.prognostic_functions)
        self.accuracy = int(accuracy if accuracy is not None else model.accuracy)
        self.progress = progress
        self.mean = _fields(mean, self.fields, self.grid.shape, "mean")
        square_root = _fields(columns, self.fields, None, "columns")
        ranks = {f: v.shape[0] for f, v in square_root.items()}
        shapes = {f: v.shape[1:] for f, v in square_root.items()}
        if len(set(ranks.values())) != 1 or any(s != self.grid.shape for s in shapes.values()):
            raise ValueError(
                f"columns: expected (rank, *grid) = (rank, *{self.grid.shape}) arrays of one rank, "
                f"got shapes { {f: v.shape for f, v in square_root.items()} }"
            )
        self.columns = square_root
        self._engine: object | None = None
        check_linear(model)

    @classmethod
    def from_pkf_state(
        cls,
        model: GeneratedModel,
        state: Mapping[str, ArrayLike],
        *,
        accuracy: int | None = None,
        progress: bool = False,
    ) -> KalmanFilter:
        """A filter whose initial mean and covariance are those of a PKF state.

        The covariance is the PKF covariance model of ``state``
        (:class:`pkf.assimilation.CovarianceModel`), factorised by
        :meth:`CovarianceModel.square_root`.
        """
        grid = model_grid(model)
        pkf_state = PKFState.from_mapping(state, grid.lengths, grid.coordinates)
        columns = CovarianceModel(pkf_state).square_root()
        return cls(model, pkf_state.mean, columns, accuracy=accuracy, progress=progress)

    @property
    def rank(self) -> int:
        """Number of columns of the square root."""
        return int(next(iter(self.columns.values())).shape[0])

    def covariance(self) -> np.ndarray:
        """The dense covariance matrix, stacked field by field (flat C-order grids)."""
        stacked = np.concatenate([self.columns[f].reshape(self.rank, -1) for f in self.fields], 1)
        return stacked.T @ stacked

    def forecast(self, times: ArrayLike) -> None:
        """Propagate the mean and the covariance over ``times`` (uniform, as for a forecast).

        The mean is a forecast of the model; the columns run as one batch through the compiled
        loop of :class:`pkf.EnsembleForecast` (chunked as that class decides).
        """
        from ..ensemble import EnsembleForecast

        times = np.asarray(times, dtype=float)
        forecast = self.model.forecast(times, self.mean, saved_times=[times[-1]])
        self.mean = {f: np.asarray(v) for f, v in self.model.state_at(forecast).items()}
        if self._engine is None:
            self._engine = EnsembleForecast(
                self.model, self.rank, save_members=True, progress=self.progress
            )
        self.columns = propagate_members(self._engine, times, self.columns)

    def assimilate(self, observations: Observations | Sequence[Observations]) -> None:
        """Exact analysis by the observations, one after the other (Potter's update).

        Raises
        ------
        ValueError
            For an observation of an unknown field or off the grid.
        """
        n = self.grid.size
        flat_columns = {f: self.columns[f].reshape(self.rank, n) for f in self.fields}
        flat_mean = {f: self.mean[f].reshape(n).copy() for f in self.fields}
        for obs in _observation_list(observations):
            obs.check_grid(self.grid.shape, self.fields)
            points = obs.flat_indices(self.grid.shape)
            for k, point in enumerate(points):
                z = flat_columns[obs.field][:, point].copy()
                variance_r = float(obs.error_variance[k])
                total = float(z @ z) + variance_r
                if not total > 0:
                    raise ValueError(
                        f"observation {k} of {obs.field!r}: forecast plus error variance is 0"
                    )
                innovation = obs.values[k] - flat_mean[obs.field][point]
                shrink = 1.0 / (total + np.sqrt(variance_r * total))
                for f in self.fields:
                    gain_column = z @ flat_columns[f]
                    flat_mean[f] += gain_column * (innovation / total)
                    _rank_one_update(flat_columns[f], -shrink, z, gain_column)
        self.mean = {f: v.reshape(self.grid.shape) for f, v in flat_mean.items()}
        self.columns = {f: v.reshape(self.rank, *self.grid.shape) for f, v in flat_columns.items()}

    def project_onto_model(self, cross: Sequence[tuple[str, str]] = ()) -> None:
        """Replace the covariance by the PKF covariance model of its own statistics.

        The variance, aspect tensors and the cross-covariances of the field pairs ``cross`` are
        diagnosed from the current covariance (:meth:`statistics`) and the covariance becomes
        the heterogeneous Gaussian model of those parameters
        (:class:`pkf.assimilation.CovarianceModel`, factorised by
        :meth:`~pkf.assimilation.CovarianceModel.square_root`). A filter projected before each
        analysis is the PKF without its discretisation and closure errors: what remains of its
        distance to the exact filter is the error of the covariance model itself.

        Raises
        ------
        ValueError
            If the stacked state exceeds the dense limit of the factorisation
            (:data:`pkf.assimilation.covariance.MAX_DENSE` rows).
        """
        stats = self.statistics()
        pairs = {tuple(pair) for pair in cross}
        kept = {pair: values for pair, values in stats.cross.items() if pair in pairs}
        names = {pair: f"V_{pair[0]}{pair[1]}" for pair in kept}
        state = PKFState(self.grid, "aspect", self.mean, stats.variance, stats.aspect, kept, names)
        rank = self.rank
        self.columns = CovarianceModel(state).square_root()
        if self.rank != rank:
            self._engine = None  # the batch of columns changed size

    def statistics(self) -> SquareRootStatistics:
        """Variance, metric/aspect tensors and cross-covariances of the current covariance."""
        return square_root_statistics(self.columns, self.grid, self.accuracy)

    def state(self, form: PKFForm = "aspect") -> dict[str, np.ndarray]:
        """Mean and covariance diagnostics named as a PKF state (``c``, ``V_c``, ``s_c_xx``...).

        Cross-covariances are named ``V_ab`` in field order.
        """
        return filter_state(self.mean, self.statistics(), self.grid, form)


def check_linear(model: GeneratedModel) -> None:
    """Refuse a model whose trend is not linear: ``T(2x + 3y) = 2 T(x) + 3 T(y)`` is checked on
    random states (relative tolerance 1e-8 in float64, 1e-4 in float32).

    The exact Kalman filter forecasts the columns of a square root with the model itself, which
    is the covariance forecast ``M P M^T`` only for a linear, homogeneous dynamics (no source
    term, no product of fields).

    Raises
    ------
    ValueError
        Naming the model and the measured relative departure from linearity.
    """
    rng = np.random.default_rng(20261130)
    fields = tuple(model.prognostic_functions)
    x = {f: rng.standard_normal(model.shape) for f in fields}
    y = {f: rng.standard_normal(model.shape) for f in fields}
    combined = {f: 2 * x[f] + 3 * y[f] for f in fields}
    tx, ty, tc = (model.trend(0.0, state) for state in (x, y, combined))
    scale = max(float(np.abs(2 * tx[f]).max() + np.abs(3 * ty[f]).max()) for f in fields)
    departure = max(float(np.abs(tc[f] - 2 * tx[f] - 3 * ty[f]).max()) for f in fields)
    tolerance = 1e-8 if model.dtype == "float64" else 1e-4
    if departure > tolerance * max(scale, np.finfo(float).tiny):
        raise ValueError(
            f"model: {type(model).__name__} is not linear (T(2x + 3y) differs from 2 T(x) + "
            f"3 T(y) by {departure / scale:.2g} relative); the exact Kalman filter needs a linear "
            "dynamics without source terms (use the EnKF for a nonlinear one)"
        )


def _rank_one_update(matrix: np.ndarray, alpha: float, left: np.ndarray, right: np.ndarray) -> None:
    """``matrix += alpha * outer(left, right)`` in place.

    Large C-ordered arrays go through BLAS ``dger`` (no temporary: 7x faster on 4096²); small
    ones through numpy (``dger`` has a fixed cost of milliseconds, measured with OpenBLAS).
    """
    from scipy.linalg.blas import dger

    if matrix.size > 1 << 20 and matrix.flags.c_contiguous and matrix.dtype == np.float64:
        dger(alpha, right, left, a=matrix.T, overwrite_a=True)
    else:
        matrix += alpha * np.outer(left, right)


def filter_state(
    mean: Mapping[str, np.ndarray], stats: SquareRootStatistics, grid: Grid, form: PKFForm
) -> dict[str, np.ndarray]:
    """A filter's mean and diagnosed covariance as a PKF state mapping of tensor ``form``."""
    names = {pair: f"V_{pair[0]}{pair[1]}" for pair in stats.cross}
    state = PKFState(
        grid, form, dict(mean), dict(stats.variance), dict(stats.aspect), dict(stats.cross), names
    )
    return state.to_mapping()


def _fields(
    values: Mapping[str, ArrayLike],
    fields: tuple[str, ...],
    shape: tuple[int, ...] | None,
    label: str,
) -> dict[str, np.ndarray]:
    if not isinstance(values, Mapping) or set(values) != set(fields):
        got = sorted(values) if isinstance(values, Mapping) else type(values).__name__
        raise ValueError(f"{label}: expected the model's fields {list(fields)}, got {got}")
    out = {}
    for f in fields:
        array = real_array(values[f], f"{label}[{f!r}]")
        if shape is not None and array.shape != shape:
            raise ValueError(f"{label}[{f!r}]: expected the grid shape {shape}, got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{label}[{f!r}]: values are not finite")
        out[f] = np.array(array, dtype=np.float64)
    return out
