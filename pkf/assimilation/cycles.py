"""Assimilation cycles: a nature run, observations every window, and the KF, PKF and EnKF
cycling on the same observations, scored against the truth and against the exact KF.

:func:`run_cycles` alternates forecasts and analyses for every filter and records, per cycle,
filter and stage (forecast, analysis), the mean, variance, aspect tensor, length-scales and
cross-covariances, the RMSE of the mean against the truth, the spread and the relative L2
distance of every covariance parameter to the exact Kalman filter. The result is an
``xarray.Dataset`` with ``filter``, ``cycle`` and ``stage`` dimensions and a JSON-ready summary.
"""

from __future__ import annotations

import time as clock
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from generator.conventions import global_attributes
from generator.results import grid_coordinates, labelled, model_attributes, model_dataset
from generator.validation import finite_float, positive_int

from ..statistics import length_scale_from_metric
from .analysis_step import AnalysisError, AnalysisOrder, ForecastMetric, analysis_of_state
from .covariance import MAX_DENSE, CovarianceModel
from .enkf import EnKF, EnKFVariant, draw_members
from .kalman import KalmanFilter, model_grid
from .observations import Observations
from .state import PKFState, invert_tensor

if TYPE_CHECKING:
    from generator.model import GeneratedModel

__all__ = ["CycleResult", "EnKFSetup", "ObservationNetwork", "STAGES", "run_cycles"]

#: The two records of a cycle.
STAGES = ("forecast", "analysis")


@dataclass(frozen=True)
class ObservationNetwork:
    """Where and how a field is observed every cycle.

    Attributes
    ----------
    field : str
        Observed field.
    indices : array_like of int
        Grid indices (``(m,)`` or ``(m, ndim)``, model coordinate order).
    error_variance : float or array_like
        Observation-error variance ``R`` (scalar or ``(m,)``).
    """

    field: str
    indices: Any
    error_variance: Any

    def observe(self, truth: Mapping[str, ArrayLike], rng: np.random.Generator) -> Observations:
        """Observations of ``truth`` with errors drawn from ``rng``."""
        return Observations.from_truth(truth, self.field, self.indices, self.error_variance, rng)


@dataclass(frozen=True)
class EnKFSetup:
    """One EnKF of a cycling experiment (see :class:`pkf.assimilation.EnKF`)."""

    members: int
    variant: EnKFVariant = "square-root"
    localisation_radius: float | None = None
    inflation: float = 1.0
    name: str | None = None

    @property
    def label(self) -> str:
        """Its name in the results (default ``enkf_<members>``)."""
        return self.name or f"enkf_{self.members}"


@dataclass
class CycleResult:
    """What :func:`run_cycles` measured.

    Attributes
    ----------
    dataset : xarray.Dataset
        Dims ``filter``, ``cycle``, ``stage`` (``"forecast"``, ``"analysis"``) and the grid
        (CF order). Per field ``f``: ``f`` (mean), ``V_f``, ``s_f_<ij>``, ``L_f_<i>``, the
        cross-covariances ``V_ab``, ``truth_f`` ``(cycle, grid)``, ``rmse_f`` and ``spread_f``
        ``(filter, cycle, stage)``, ``distance_<q>`` ``(filter, cycle, stage)`` (relative L2 to
        the exact KF), the observations ``obs_<f>`` ``(cycle, obs_<f>_index)``.
    distances : dict
        ``{filter: {quantity: {stage: [per cycle]}}}`` relative L2 distance to the KF.
    scores : dict
        ``{filter: {"rmse_f" | "spread_f": {stage: [per cycle]}}}``.
    failures : dict
        ``{filter: message}`` for filters that stopped (their later records are NaN).
    seconds : dict
        ``{filter: {stage: total seconds}}`` (first cycle includes compilation).
    diagnostics : dict
        Where the PKF's error comes from, per cycle: ``covariance_model_column_misfit`` (the
        covariance model built from the exact KF's own forecast V and tensors, against the KF's
        columns at the observed points: the model's shape error alone) and
        ``oracle_analysis_distance_to_kf`` (``{quantity: [...]}``: the PKF analysis of that
        oracle forecast against the KF analysis: the analysis error without accumulated
        forecast error) and ``oracle_forecast_distance_to_kf`` (the PKF forecast over the
        window from the KF's previous analysis, against the KF forecast: the PKF dynamics'
        error, closure and discretisation, without accumulated analysis error); ``notes``
        (e.g. why ``kf_projected`` was skipped). The filter ``kf_projected`` (see
        :func:`run_cycles`) is the accumulated counterpart: the covariance model's error over
        all cycles, without the PKF's own approximations.
    """

    dataset: xr.Dataset
    distances: dict[str, dict[str, dict[str, list[float | None]]]]
    scores: dict[str, dict[str, dict[str, list[float]]]]
    failures: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def spread_ratio(self, name: str, stage: str, field_name: str) -> float:
        """Spread over RMSE of a filter, both as root-mean-squares over the cycles."""
        rmse = np.asarray(self.scores[name][f"rmse_{field_name}"][stage], dtype=float)
        spread = np.asarray(self.scores[name][f"spread_{field_name}"][stage], dtype=float)
        kept = np.isfinite(rmse) & np.isfinite(spread)
        if not kept.any():
            return float("nan")
        return float(np.sqrt(np.mean(spread[kept] ** 2) / np.mean(rmse[kept] ** 2)))

    def tensor_distance(self, name: str, field_name: str, stage: str) -> list[float]:
        """Relative L2 distance of the whole aspect tensor of ``field_name`` to the exact KF's.

        ``||s - s_KF|| / ||s_KF||`` with the Frobenius norm of the tensor at each point summed
        over the grid (off-diagonal components counted twice), per cycle. Unlike the
        component-wise distances it is not inflated where a component is near zero (the
        off-diagonal ``s_xy`` of nearly isotropic correlations). NaN where the filter stopped.
        """
        grid_dims = [str(d) for d in self.dataset[f"V_{field_name}"].dims[3:]]
        labels = {a + b: a == b for a in grid_dims for b in grid_dims}
        differences, references = [], []
        for label, diagonal in labels.items():
            key = f"s_{field_name}_{label}"
            if key not in self.dataset:
                continue
            variable = self.dataset[key]
            weight = 1.0 if diagonal else 2.0
            exact = variable.sel(filter="kf", stage=stage)
            differences.append(weight * (variable.sel(filter=name, stage=stage) - exact) ** 2)
            references.append(weight * exact**2)
        sums = [
            xr.concat(terms, "component").sum(["component", *grid_dims], skipna=False)
            for terms in (differences, references)
        ]
        ratio = (sums[0] / sums[1]) ** 0.5
        return [float(v) for v in ratio.values]

    def summary(self) -> dict[str, Any]:
        """Distances, scores, spread/RMSE ratios, failures and timings, JSON-ready."""
        fields = [
            str(v)[len("rmse_") :] for v in self.dataset.data_vars if str(v).startswith("rmse_")
        ]
        tensors = {
            name: {
                f: {stage: self.tensor_distance(name, f, stage) for stage in STAGES} for f in fields
            }
            for name in self.scores
        }
        ratios = {
            name: {
                f: {stage: self.spread_ratio(name, stage, f) for stage in STAGES} for f in fields
            }
            for name in self.scores
        }
        worst = {
            name: {
                q: max((v for s in STAGES for v in per_stage[s] if v is not None), default=None)
                for q, per_stage in quantities.items()
            }
            for name, quantities in self.distances.items()
        }
        return {
            "filters": list(self.scores),
            "distance_to_kf": self.distances,
            "largest_distance_to_kf": worst,
            "aspect_tensor_distance_to_kf": tensors,
            "scores": self.scores,
            "spread_over_rmse": ratios,
            "failures": self.failures,
            "seconds": self.seconds,
            "diagnostics": self.diagnostics,
        }


def _aspect_names(state: PKFState) -> dict[str, np.ndarray]:
    """Mean, variance, aspect components, length-scales and cross-covariances by name."""
    grid = state.grid
    out: dict[str, np.ndarray] = {}
    for f in state.fields:
        out[f] = state.mean[f]
        out[f"V_{f}"] = state.variance[f]
        for i, j in grid.pairs():
            out[f"s_{f}_{grid.pair_label(i, j)}"] = state.aspect[f][i, j]
        lengths = length_scale_from_metric(invert_tensor(state.aspect[f]))
        for i, c in enumerate(grid.coordinates):
            out[f"L_{f}_{c}"] = lengths[i]
    for (a, b), values in state.cross.items():
        out[f"V_{a}{b}"] = values
    return out


def _check_shared_constants(model: GeneratedModel, pkf_model: GeneratedModel) -> None:
    """The constants and constant fields both models have must be equal (a PKF of another wind
    or diffusivity than the dynamics' is a mistake, not a comparison)."""
    shared = sorted(
        set(model.constants + model.constant_functions)
        & set(pkf_model.constants + pkf_model.constant_functions)
    )
    for name in shared:
        a, b = model.get_constant(name), pkf_model.get_constant(name)
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-12, atol=0.0):
            raise ValueError(
                f"pkf_model: its {name!r} differs from the model's (max difference "
                f"{float(np.max(np.abs(a - b))) if a.shape == b.shape else 'shape'}); the PKF "
                "must forecast the same dynamics"
            )


def _warn_unresolved(state: PKFState) -> None:
    """Warn when the background's length-scales are under 2 grid spacings or over half the
    domain: the covariance model and the diagnosed tensors are not reliable there."""
    spacing, lengths = state.grid.spacing, state.grid.lengths
    for f, aspect in state.aspect.items():
        for i in range(state.grid.ndim):
            scale = np.sqrt(aspect[i, i])
            if scale.min() < 2 * spacing[i] or scale.max() > 0.5 * lengths[i]:
                warnings.warn(
                    f"background: the length-scale of {f!r} along {state.grid.coordinates[i]} "
                    f"spans {scale.min():.3g} to {scale.max():.3g}, outside [2 dx, D/2] = "
                    f"[{2 * spacing[i]:.3g}, {0.5 * lengths[i]:.3g}]: the covariance model and "
                    "the diagnosed tensors are not reliable there",
                    RuntimeWarning,
                    stacklevel=3,
                )


def _relative_l2(estimate: np.ndarray, reference: np.ndarray) -> float | None:
    norm = float(np.linalg.norm(reference))
    return None if norm == 0.0 else float(np.linalg.norm(estimate - reference)) / norm


def run_cycles(
    model: GeneratedModel,
    pkf_model: GeneratedModel,
    background: Mapping[str, ArrayLike],
    networks: ObservationNetwork | Sequence[ObservationNetwork],
    window: float,
    cycles: int,
    dt: float,
    *,
    ensembles: Sequence[EnKFSetup] = (),
    orders: Sequence[AnalysisOrder] = (2, 1),
    refit: bool = False,
    forecast_metric: ForecastMetric = "model",
    projected: bool = True,
    seed: int = 0,
    accuracy: int | None = None,
    progress: bool = False,
) -> CycleResult:
    """Cycle the exact KF, the PKF and EnKFs on the same observations of a nature run.

    The truth is drawn from the background's covariance model and run by ``model``; at the end
    of each window it is observed through ``networks`` (seeded errors) and every filter is
    forecast, then analysed, with those observations. The exact KF holds a dense square root
    (``n`` columns per field: 1D up to a few thousand points, 2D up to about 64²). Sources:
    Pannekoucke (2021, Tellus A 73:1926660) for the PKF analysis, Whitaker & Hamill (2002)
    and Burgers et al. (1998) for the EnKFs, Gaspari & Cohn (1999) for localisation.

    Parameters
    ----------
    model : generator.GeneratedModel
        The linear dynamics: nature run, exact-KF columns and EnKF members.
    pkf_model : generator.GeneratedModel
        The generated PKF model of the same dynamics (metric, aspect or diffusion form).
    background : mapping of str to array_like
        The initial PKF state (fields of ``pkf_model``): its means and covariance model are the
        initial distribution of every filter; the truth is drawn from it.
    networks : ObservationNetwork or sequence of them
        What is observed at the end of every window.
    window : float
        Time between analyses (model time units).
    cycles : int
        Number of forecast/analysis cycles; analysis ``k`` is at ``k * window``.
    dt : float
        Largest time step (reduced so that ``window`` is a whole number of steps).
    ensembles : sequence of EnKFSetup
        The EnKFs to run alongside.
    orders : sequence of {1, 2}
        PKF tensor updates to run: the first is the filter ``"pkf"``, others
        ``"pkf_order<k>"``.
    refit, forecast_metric
        PKF analysis options (see :func:`pkf.assimilation.analysis`).
    projected : bool
        Also cycle ``"kf_projected"``: the exact KF whose forecast covariance is replaced
        before each analysis by the covariance model of its own variance, tensors and the
        background's cross-covariances (:meth:`KalmanFilter.project_onto_model`). It is the PKF
        without discretisation and closure errors, so its distance to ``"kf"`` is the error of
        the covariance model alone. Skipped (with a note in ``diagnostics``) when the stacked
        state exceeds :data:`pkf.assimilation.covariance.MAX_DENSE` rows.
    seed : int
        Seeds the truth, the observation errors and every EnKF.
    accuracy : int, optional
        Order of the centred differences of the diagnosed tensors and of the order-2 update
        (default the PKF model's stencil accuracy).
    progress : bool
        A progress bar over the cycles.

    Returns
    -------
    CycleResult

    Raises
    ------
    ValueError
        Before anything runs: the background does not hold the PKF model's fields (or the two
        models are swapped), the models' grids or shared constants differ, ``model`` is not
        linear (:class:`KalmanFilter`), an empty network or an observation of an unknown field
        or off the grid, two EnKFs with the same label, a bad ``window``, ``dt``, ``cycles`` or
        ``orders``.

    Warns
    -----
    RuntimeWarning
        When the background's length-scales are under 2 grid spacings or over half the domain,
        and when a PKF stops (a variance or tensor that is not positive, a non-finite
        forecast): the failure is recorded in :attr:`CycleResult.failures` (filter, cycle,
        stage, message) and its later records are NaN; the other filters go on.

    Examples
    --------
    >>> import sympy as sp
    >>> from generator import NNModelBuilder
    >>> from pkf import SymbolicPKF
    >>> t, x = sp.symbols("t x")
    >>> c = sp.Function("c")(t, x)
    >>> equation = sp.Eq(c.diff(t), -c.diff(x))
    >>> model = NNModelBuilder(equation, "DocTracer").build()(shape=40)
    >>> pkf_model = NNModelBuilder(
    ...     SymbolicPKF(equation).to_generator(form="aspect"), "DocPKFTracer"
    ... ).build()(shape=40)
    >>> background = {"c": np.zeros(40), "V_c": np.ones(40), "s_c_xx": np.full(40, 0.1**2)}
    >>> network = ObservationNetwork("c", np.arange(0, 40, 5), error_variance=0.25)
    >>> result = run_cycles(model, pkf_model, background, network, window=0.1, cycles=2, dt=0.01)
    >>> result.dataset["V_c"].dims, [str(f) for f in result.dataset["filter"].values]
    (('filter', 'cycle', 'stage', 'x'), ['kf', 'pkf', 'pkf_order1', 'kf_projected'])
    >>> bool(result.distances["pkf"]["V_c"]["analysis"][0] < 0.01)  # a model-form forecast
    True
    """
    grid = model_grid(model)
    if model_grid(pkf_model) != grid:
        raise ValueError(
            f"pkf_model: grid {model_grid(pkf_model)} differs from the model's grid {grid}"
        )
    if set(background) != set(pkf_model.prognostic_functions):
        swapped = set(background) == set(model.prognostic_functions) or set(
            model.prognostic_functions
        ) >= {f"V_{f}" for f in pkf_model.prognostic_functions}
        raise ValueError(
            f"background: expected the PKF model's fields {list(pkf_model.prognostic_functions)}, "
            f"got {sorted(background)}"
            + (" (are model and pkf_model swapped? the dynamics comes first)" if swapped else "")
        )
    _check_shared_constants(model, pkf_model)
    state0 = PKFState.from_mapping(background, grid.lengths, grid.coordinates)
    if set(state0.fields) != set(model.prognostic_functions):
        raise ValueError(
            f"background: its fields {list(state0.fields)} are not the model's "
            f"{list(model.prognostic_functions)}"
        )
    networks = [networks] if isinstance(networks, ObservationNetwork) else list(networks)
    if not networks or not all(isinstance(n, ObservationNetwork) for n in networks):
        raise ValueError(
            "networks: expected an ObservationNetwork or a non-empty sequence of them, got "
            f"{networks!r}"
        )
    for network in networks:  # every field, index and error variance checked before any run
        Observations(
            network.field,
            network.indices,
            np.zeros(len(np.atleast_1d(network.indices))),
            network.error_variance,
            shape=grid.shape,
        ).check_grid(grid.shape, state0.fields)
    labels = [setup.label for setup in ensembles]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(
            f"ensembles: two or more EnKFs are labelled {repeated}; give each a name "
            "(EnKFSetup(..., name='enkf_40_stochastic'))"
        )
    _warn_unresolved(state0)
    window = finite_float(window, "window", "positive")
    cycles = positive_int(cycles, "cycles")
    steps = int(np.ceil(window / finite_float(dt, "dt", "positive") - 1e-9))
    step = window / steps
    orders = tuple(orders)
    if not orders or any(o not in (1, 2) for o in orders):
        raise ValueError(f"orders: expected a non-empty sequence of 1 and 2, got {orders}")
    accuracy = int(accuracy if accuracy is not None else pkf_model.accuracy)
    streams = np.random.SeedSequence(seed).spawn(3 + len(ensembles))
    truth_rng, obs_rng = np.random.default_rng(streams[0]), np.random.default_rng(streams[1])

    kf = KalmanFilter.from_pkf_state(model, background, accuracy=accuracy)
    truth = draw_members(state0.mean, kf.columns, 1, truth_rng)
    truth = {f: v[0] for f, v in truth.items()}
    pkf_names = ["pkf" if k == 0 else f"pkf_order{o}" for k, o in enumerate(orders)]
    pkf_states = {name: state0 for name in pkf_names}
    enkfs = {
        setup.label: EnKF(
            model,
            draw_members(state0.mean, kf.columns, setup.members, np.random.default_rng(s)),
            variant=setup.variant,
            localisation_radius=setup.localisation_radius,
            inflation=setup.inflation,
            seed=np.random.default_rng(s.spawn(1)[0]),
            accuracy=accuracy,
        )
        for setup, s in zip(ensembles, streams[3:], strict=True)
    }
    projection: KalmanFilter | None = None
    notes: list[str] = []
    if projected and grid.size * len(state0.fields) <= MAX_DENSE:
        projection = KalmanFilter(model, kf.mean, kf.columns, accuracy=accuracy)
    elif projected:
        notes.append(
            f"kf_projected skipped: {grid.size * len(state0.fields)} state rows exceed the dense "
            f"limit {MAX_DENSE} of the covariance model's factorisation"
        )
    names = ["kf", *pkf_names, *enkfs, *(["kf_projected"] if projection else [])]
    records: dict[str, dict[str, list[dict[str, np.ndarray] | None]]] = {
        name: {stage: [] for stage in STAGES} for name in names
    }
    seconds = {name: dict.fromkeys(STAGES, 0.0) for name in names}
    failures: dict[str, str] = {}
    truths: list[dict[str, np.ndarray]] = []
    observed: list[list[Observations]] = []
    misfit: list[float] = []
    oracle: list[dict[str, np.ndarray] | None] = []
    oracle_forecast: list[dict[str, np.ndarray] | None] = []

    def timed(name: str, stage: str, action):
        start = clock.perf_counter()
        value = action()
        seconds[name][stage] += clock.perf_counter() - start
        return value

    def filter_state(filter_: KalmanFilter | EnKF) -> PKFState:
        stats = filter_.statistics()
        names_cross = {pair: f"V_{pair[0]}{pair[1]}" for pair in stats.cross}
        return PKFState(
            grid, "aspect", filter_.mean, stats.variance, stats.aspect, stats.cross, names_cross
        )

    def diagnosed(filter_: KalmanFilter | EnKF) -> dict[str, np.ndarray]:
        return _aspect_names(filter_state(filter_))

    bar = tqdm(range(cycles), desc="assimilation cycles", unit="cycle", disable=not progress)
    for cycle in bar:
        times = cycle * window + np.arange(steps + 1) * step
        times[-1] = (cycle + 1) * window
        forecast = model.forecast(times, truth, saved_times=[times[-1]])
        truth = {f: np.asarray(v) for f, v in model.state_at(forecast).items()}
        truths.append(truth)
        observations = [network.observe(truth, obs_rng) for network in networks]
        observed.append(observations)
        kf_start = filter_state(kf)
        start = PKFState(
            grid,
            state0.form,
            kf_start.mean,
            kf_start.variance,
            kf_start.aspect,
            {pair: kf_start.cross[pair] for pair in state0.cross if pair in kf_start.cross},
            dict(state0.cross_names),
        )
        try:
            oracle_forecast.append(
                _aspect_names(
                    PKFState.from_mapping(
                        pkf_model.state_at(
                            pkf_model.forecast(times, start.to_mapping(), [times[-1]])
                        ),
                        grid.lengths,
                        grid.coordinates,
                    )
                )
            )
        except (FloatingPointError, ValueError):
            oracle_forecast.append(None)

        timed("kf", "forecast", lambda t=times: kf.forecast(t))
        kf_forecast = filter_state(kf)
        records["kf"]["forecast"].append(_aspect_names(kf_forecast))
        misfit.append(_column_misfit(kf, kf_forecast, observations))
        timed("kf", "analysis", lambda o=observations: kf.assimilate(o))
        records["kf"]["analysis"].append(diagnosed(kf))
        try:
            oracle.append(
                _aspect_names(
                    analysis_of_state(
                        kf_forecast, observations, orders[0], accuracy, refit, forecast_metric
                    )
                )
            )
        except AnalysisError:
            oracle.append(None)

        for name, order in zip(pkf_names, orders, strict=True):
            if name in failures:
                for stage in STAGES:
                    records[name][stage].append(None)
                continue
            try:
                state = pkf_states[name]
                result = timed(
                    name,
                    "forecast",
                    lambda s=state, t=times: pkf_model.forecast(t, s.to_mapping(), [t[-1]]),
                )
                forecast_state = PKFState.from_mapping(
                    pkf_model.state_at(result), grid.lengths, grid.coordinates
                )
                records[name]["forecast"].append(_aspect_names(forecast_state))
                analysed = timed(
                    name,
                    "analysis",
                    lambda s=forecast_state, o=observations, k=order: analysis_of_state(
                        s, o, k, accuracy, refit, forecast_metric
                    ),
                )
                records[name]["analysis"].append(_aspect_names(analysed))
                pkf_states[name] = analysed
            except (AnalysisError, FloatingPointError, ValueError) as error:
                stage = "analysis" if len(records[name]["forecast"]) > cycle else "forecast"
                failures[name] = f"cycle {cycle + 1}, {stage}: {error}"
                warnings.warn(
                    f"run_cycles: {name} stopped at the {stage} of cycle {cycle + 1} ({error}); "
                    "its later records are NaN. When a forecast or a tensor update failed, a "
                    "finer grid (length-scales of 4 grid spacings or more) or a shorter window "
                    "usually helps",
                    RuntimeWarning,
                    stacklevel=2,
                )
                while len(records[name]["analysis"]) < cycle + 1:
                    for stage in STAGES:
                        if len(records[name][stage]) < cycle + 1:
                            records[name][stage].append(None)

        for name, enkf in enkfs.items():
            timed(name, "forecast", lambda e=enkf, t=times: e.forecast(t))
            records[name]["forecast"].append(diagnosed(enkf))
            timed(name, "analysis", lambda e=enkf, o=observations: e.assimilate(o))
            records[name]["analysis"].append(diagnosed(enkf))

        if projection is not None:
            timed("kf_projected", "forecast", lambda t=times: projection.forecast(t))
            records["kf_projected"]["forecast"].append(diagnosed(projection))

            def project_and_assimilate(o: list[Observations] = observations) -> None:
                assert projection is not None
                projection.project_onto_model(tuple(state0.cross))
                projection.assimilate(o)

            timed("kf_projected", "analysis", project_and_assimilate)
            records["kf_projected"]["analysis"].append(diagnosed(projection))

    result = _result(
        model,
        grid,
        state0.fields,
        names,
        records,
        truths,
        observed,
        seconds,
        failures,
        window,
        step,
    )
    kf_records = {stage: [r for r in records["kf"][stage] if r is not None] for stage in STAGES}
    result.diagnostics = {
        "notes": notes,
        "covariance_model_column_misfit": misfit,
        "oracle_forecast_distance_to_kf": {
            v: [
                None if o is None else _relative_l2(o[v], kf_records["forecast"][k][v])
                for k, o in enumerate(oracle_forecast)
            ]
            for v in kf_records["forecast"][0]
        },
        "oracle_analysis_distance_to_kf": {
            v: [
                None if o is None else _relative_l2(o[v], kf_records["analysis"][k][v])
                for k, o in enumerate(oracle)
            ]
            for v in kf_records["analysis"][0]
        },
    }
    return result


def _column_misfit(
    kf: KalmanFilter, state: PKFState, observations: Sequence[Observations]
) -> float:
    """Relative L2 misfit of the covariance model's columns ``P(., l)`` at the observed points,
    with the exact covariance's own variance and tensors, to the exact columns."""
    model = CovarianceModel(state)
    n = kf.grid.size
    exact, fitted = [], []
    for obs in observations:
        for point in obs.flat_indices(kf.grid.shape):
            z = kf.columns[obs.field].reshape(kf.rank, n)[:, point]
            for f in kf.fields:
                exact.append(z @ kf.columns[f].reshape(kf.rank, n))
                fitted.append(model.column(f, obs.field, int(point)))
    reference = np.concatenate(exact)
    return float(np.linalg.norm(np.concatenate(fitted) - reference) / np.linalg.norm(reference))


def _result(model, grid, fields, names, records, truths, observed, seconds, failures, window, step):
    reference = records["kf"]
    variables = list(reference["forecast"][0])
    distances: dict[str, dict[str, dict[str, list[float | None]]]] = {}
    scores: dict[str, dict[str, dict[str, list[float]]]] = {}
    cycles = len(truths)
    for name in names:
        distances[name] = {v: {s: [] for s in STAGES} for v in variables}
        scores[name] = {
            f"{kind}_{f}": {s: [] for s in STAGES} for kind in ("rmse", "spread") for f in fields
        }
        for stage in STAGES:
            for k in range(cycles):
                record = records[name][stage][k]
                for v in variables:
                    value = (
                        None if record is None else _relative_l2(record[v], reference[stage][k][v])
                    )
                    distances[name][v][stage].append(value)
                for f in fields:
                    if record is None:
                        rmse = spread = float("nan")
                    else:
                        rmse = float(np.sqrt(np.mean((record[f] - truths[k][f]) ** 2)))
                        spread = float(np.sqrt(np.mean(record[f"V_{f}"])))
                    scores[name][f"rmse_{f}"][stage].append(rmse)
                    scores[name][f"spread_{f}"][stage].append(spread)

    dims = ("filter", "cycle", "stage", *grid.coordinates)
    data: dict[str, xr.DataArray] = {}
    for v in variables:
        values = np.full((len(names), cycles, len(STAGES), *grid.shape), np.nan)
        for a, name in enumerate(names):
            for b, stage in enumerate(STAGES):
                for k in range(cycles):
                    record = records[name][stage][k]
                    if record is not None:
                        values[a, k, b] = record[v]
        data[v] = labelled(model, values, dims, {"long_name": _long_name(v, fields), "units": "1"})
    for f in fields:
        data[f"truth_{f}"] = labelled(
            model,
            np.stack([t[f] for t in truths]),
            ("cycle", *grid.coordinates),
            {"long_name": f"nature run of {f} at the analysis times", "units": "1"},
        )
    for key in scores[names[0]]:
        kind, f = key.split("_", 1)
        data[key] = xr.DataArray(
            np.array([[scores[n][key][s] for s in STAGES] for n in names]).transpose(0, 2, 1),
            dims=("filter", "cycle", "stage"),
            attrs={
                "long_name": (
                    f"root-mean-square error of the mean of {f} against the truth"
                    if kind == "rmse"
                    else f"spread of {f}: square root of the grid-mean variance"
                ),
                "units": "1",
            },
        )
    for v in variables:
        values = np.array(
            [
                [[np.nan if x is None else x for x in distances[n][v][s]] for s in STAGES]
                for n in names
            ]
        ).transpose(0, 2, 1)
        data[f"distance_{v}"] = xr.DataArray(
            values,
            dims=("filter", "cycle", "stage"),
            attrs={
                "long_name": f"relative L2 distance of {v} to the exact Kalman filter",
                "units": "1",
            },
        )
    for f in dict.fromkeys(o.field for o in observed[0]):
        which = [j for j, o in enumerate(observed[0]) if o.field == f]
        index_dim = f"obs_{f}_index"
        data[f"obs_{f}"] = xr.DataArray(
            np.stack([np.concatenate([items[j].values for j in which]) for items in observed]),
            dims=("cycle", index_dim),
            attrs={"long_name": f"observations of {f} (truth plus error)", "units": "1"},
        )
        indices = np.concatenate([observed[0][j].indices for j in which])
        for axis, c in enumerate(grid.coordinates):
            data[f"obs_{f}_{c}_index"] = xr.DataArray(
                indices[:, axis],
                dims=(index_dim,),
                attrs={"long_name": f"grid index along {c} of the observations of {f}"},
            )
        data[f"obs_{f}_error_variance"] = xr.DataArray(
            np.concatenate([observed[0][j].error_variance for j in which]),
            dims=(index_dim,),
            attrs={"long_name": f"observation-error variance of {f}", "units": "1"},
        )
    coords: dict[str, Any] = dict(grid_coordinates(model))
    coords["filter"] = xr.DataArray(names, dims=("filter",), attrs={"long_name": "filter"})
    coords["cycle"] = xr.DataArray(
        np.arange(1, cycles + 1, dtype=np.int32),
        dims=("cycle",),
        attrs={"long_name": "cycle number", "units": "1"},
    )
    coords["time"] = xr.DataArray(
        np.round(window * np.arange(1, cycles + 1), 12),
        dims=("cycle",),
        attrs={"long_name": "analysis time", "units": model.time_units or "1"},
    )
    coords["stage"] = xr.DataArray(
        list(STAGES),
        dims=("stage",),
        attrs={"long_name": "forecast (before) or analysis (after the observations)"},
    )
    extra: dict[str, object] = {
        **model_attributes(model),
        "dt": step,
        "window": window,
        "cycles": cycles,
        "failures": str(failures) if failures else "none",
    }
    attrs = global_attributes(
        "pkfnet assimilation cycles: exact KF, PKF and EnKF on the same observations", None, **extra
    )
    dataset = xr.Dataset(data, coords=coords, attrs=attrs)
    constants = model_dataset(model, {}, title="")  # the model's constants and constant fields
    dataset = dataset.assign({name: constants[name] for name in constants.data_vars})
    return CycleResult(dataset, distances, scores, failures, seconds)


def _long_name(name: str, fields: Sequence[str]) -> str:
    if name in fields:
        return f"mean of {name}"
    kind, _, rest = name.partition("_")
    if kind == "V":
        return f"error variance of {rest}" if rest in fields else f"error cross-covariance {rest}"
    field_name, _, component = rest.rpartition("_")
    if kind == "s":
        return f"aspect tensor s_{component} of {field_name}"
    return f"correlation length-scale of {field_name} along {component}"
