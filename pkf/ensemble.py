"""Batched ensemble forecasts with PKF statistics computed on the fly.

:class:`EnsembleForecast` runs the members of an ensemble as the batch axis of one XLA-compiled
loop around a generated model's ``step_tensors``; at each saved time the loop reduces the chunk
of members to mergeable moment sums (:class:`pkf.statistics.Moments`), so the members themselves
are only kept when asked. Chunks of members (sized from a memory budget) merge exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from generator.conventions import MEMBER_DIM
from generator.integrate import (
    DEFAULT_CACHE_BUDGET,
    WORKING_COPIES,
    chunk_sizes,
    largest_chunk,
)
from generator.protocols import SteppableModel

if TYPE_CHECKING:
    from generator.integrate import TimeGrid
from generator.results import model_dataset, to_model_order
from generator.validation import positive_int, real_array

from .sampling import BoundaryErrors
from .statistics import (
    MomentAccumulator,
    MomentKey,
    Moments,
    aspect_from_metric,
    length_scale_from_metric,
    moment_keys,
    variance_estimator,
)

__all__ = ["STATISTICS", "EnsembleForecast", "EnsembleResult", "Statistic"]

Statistic = Literal["mean", "variance", "metric", "aspect", "diffusion", "length_scale", "cross"]
#: The statistic groups :meth:`EnsembleResult.to_dataset` can compute.
STATISTICS: tuple[Statistic, ...] = (
    "mean",
    "variance",
    "metric",
    "aspect",
    "diffusion",
    "length_scale",
    "cross",
)

#: A perturbed side ``(field, coordinate, side)`` (side ``"low"`` or ``"high"``).
BoundarySide = tuple[str, str, str]

InitialMembers = Mapping[str, ArrayLike] | Callable[[int, int], Mapping[str, ArrayLike]]
"""Either every member at once, ``{field: (members, *grid)}``, or a callable
``initial(start, stop) -> {field: (stop - start, *grid)}`` giving members ``start:stop`` (so that
a large ensemble is never held in memory as a whole)."""

DEFAULT_MEMORY_BUDGET = 1 << 30


@dataclass(frozen=True)
class ChunkPlan:
    """How an ensemble is cut into chunks: first member and size of each, and the common
    compiled size (``capacity``; smaller chunks are padded with zero-weight copies)."""

    starts: tuple[int, ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, sizes: Sequence[int]) -> ChunkPlan:
        sizes = tuple(int(s) for s in sizes)
        return cls(tuple(int(s) for s in np.cumsum((0, *sizes[:-1]))), sizes)

    @property
    def capacity(self) -> int:
        return max(self.sizes)

    @property
    def padded(self) -> bool:
        return len(set(self.sizes)) > 1


@dataclass
class ChunkResult:
    """One chunk's moments at the saved times that were computed (numpy arrays).

    ``shifts``, ``means`` (relative to the shifts) per field and ``sums`` per moment key, each
    ``(n_written, *grid)``; ``finite`` the per-member finiteness ``(n_written, capacity)``;
    ``loop_finite`` False when the loop stopped at a non-finite state; ``members`` the chunk's
    members ``(n_written, size, *grid)`` per field when they are saved (in a distributed run, a
    Dask array that stays on the workers).
    """

    shifts: tuple[np.ndarray, ...]
    means: tuple[np.ndarray, ...]
    sums: tuple[np.ndarray, ...]
    finite: np.ndarray
    loop_finite: bool
    members: tuple[Any, ...] | None = None


@dataclass
class EnsembleResult:
    """Statistics of an ensemble forecast at the saved times.

    Attributes
    ----------
    model : SteppableModel
        The model that was run (gives the grid, names and metadata of :meth:`to_dataset`).
    times : numpy.ndarray
        ``(n_saved,)`` saved model times.
    accumulator : MomentAccumulator
        The merged moments, state shape ``(n_saved, *grid)`` (grid in model order); merge it
        with the accumulator of another run over other members (same times) to pool
        ensembles, see :meth:`merge`.
    members : dict of str to numpy.ndarray or None
        ``{field: (n_saved, members, *grid)}`` (model order) when the forecast saved them.
    """

    model: SteppableModel
    times: np.ndarray
    accumulator: MomentAccumulator
    members: dict[str, np.ndarray] | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """Prognostic field names."""
        return self.accumulator.fields

    @property
    def count(self) -> int:
        """Number of members."""
        return self.accumulator.count

    def merge(self, other: EnsembleResult) -> EnsembleResult:
        """The statistics of both ensembles pooled (same model, times and fields; exact)."""
        if not np.array_equal(other.times, self.times):
            raise ValueError("other: the two ensembles were saved at different times")
        pooled = MomentAccumulator(self.accumulator.spacing, self.fields, self.accumulator.periodic)
        pooled.merge(self.accumulator).merge(other.accumulator)
        return EnsembleResult(self.model, self.times, pooled)

    def to_dataset(
        self, ddof: int = 0, statistics: Sequence[Statistic] | None = None
    ) -> xr.Dataset:
        """The ensemble statistics as a CF-labelled ``xarray.Dataset``.

        ``statistics`` selects what to compute (default all of :data:`STATISTICS`: ``"mean"``,
        ``"variance"``, ``"metric"``, ``"aspect"``, ``"diffusion"``, ``"length_scale"``,
        ``"cross"``), e.g. ``("mean", "variance", "diffusion")`` for a training set.

        Variables (named like the PKF fields of :class:`pkf.SymbolicPKF`, so that a PKF
        forecast and an ensemble compare name by name), each ``(time, *grid)`` in CF order:

        * ``u`` — ensemble mean of field ``u``;
        * ``V_u`` — error variance (``ddof=0``: population, divisor N, the papers' estimator;
          ``ddof=1``: unbiased, divisor N − 1; the ``variance_estimator`` attribute says which);
        * ``g_u_xy``, ``s_u_xy``, ``nu_u_xy`` — metric, aspect (``s = g⁻¹``) and diffusion
          (``ν = s / 2``) tensor components for each coordinate pair ``x <= y`` (upper
          triangle), from centred differences of the normalised errors;
        * ``L_u_x`` — length-scale along each axis, ``1 / sqrt(g_xx)``;
        * ``V_uv`` and ``rho_uv`` — cross-covariance and cross-correlation of each field pair
          (in field order);
        * ``u_members`` — the members ``(time, member, *grid)``, when they were saved.

        On a model with bounded axes (``model.periodic_axes``) the differences are one-sided
        (first order) at the ends of the bounded axes, and the normalised statistics (``g``,
        ``s``, ``nu``, ``L``, ``rho``) are NaN where the variance is zero on a bounded side (a
        Dirichlet side with exact boundary values); the ``metric_estimator`` attribute says so.

        Raises
        ------
        ValueError
            For an unknown statistic, or a zero variance away from the bounded sides.
        """
        wanted = set(STATISTICS if statistics is None else statistics)
        unknown = sorted(wanted - set(STATISTICS))
        if unknown:
            raise ValueError(f"statistics: unknown {unknown}; expected some of {STATISTICS}")
        model, accumulator = self.model, self.accumulator
        nan_points = not all(accumulator.periodic)
        coordinates = tuple(model.coordinates)
        ndim = len(coordinates)
        fields: dict[str, np.ndarray] = {}
        attrs: dict[str, dict[str, str]] = {}
        pairs = [(i, j) for i in range(ndim) for j in range(i, ndim)]

        def put(name: str, values: np.ndarray, long_name: str) -> None:
            fields[name] = values
            attrs[name] = {"long_name": long_name, "units": "1"}

        tensors = {"metric": "g", "aspect": "s", "diffusion": "nu"}
        for f in self.fields:
            if "mean" in wanted:
                put(f, accumulator.mean(f), f"ensemble mean of {f}")
            if "variance" in wanted:
                put(f"V_{f}", accumulator.variance(f, ddof=ddof), f"error variance of {f}")
            if not wanted & {*tensors, "length_scale"}:
                continue
            metric = accumulator.metric(f)
            tensor_values = {"metric": metric}
            if wanted & {"aspect", "diffusion"}:
                tensor_values["aspect"] = aspect_from_metric(metric, nan_points)
                tensor_values["diffusion"] = tensor_values["aspect"] / 2
            for group, prefix in tensors.items():
                if group in wanted:
                    for i, j in pairs:
                        pair = coordinates[i] + coordinates[j]
                        put(
                            f"{prefix}_{f}_{pair}",
                            tensor_values[group][i, j],
                            f"{group} tensor {prefix}_{pair} of {f}",
                        )
            if "length_scale" in wanted:
                lengths = length_scale_from_metric(metric, nan_points)
                for i, c in enumerate(coordinates):
                    put(f"L_{f}_{c}", lengths[i], f"correlation length-scale of {f} along {c}")
        if "cross" in wanted:
            for a, b in combinations(self.fields, 2):
                put(
                    f"V_{a}{b}",
                    accumulator.cross_covariance(a, b, ddof=ddof),
                    f"error cross-covariance of {a} and {b}",
                )
                put(
                    f"rho_{a}{b}",
                    accumulator.cross_correlation(a, b),
                    f"cross-correlation {a} {b}",
                )
        dataset = model_dataset(
            model,
            fields,
            times=self.times,
            title=f"pkfnet ensemble statistics of {type(model).__name__}",
            field_attrs=attrs,
            members=False,
            ensemble_size=self.count,
            variance_estimator=variance_estimator(ddof),
            metric_estimator=metric_estimator(coordinates, accumulator.periodic),
        )
        if self.members is not None:
            for f, values in self.members.items():
                member = model_dataset(
                    model,
                    {f"{f}_members": values},
                    times=self.times,
                    members=True,
                    title="",
                    constants=False,
                )
                dataset[f"{f}_members"] = member[f"{f}_members"].assign_attrs(
                    long_name=f"ensemble members of {f}", units="1"
                )
        return dataset


def metric_estimator(coordinates: Sequence[str], periodic: Sequence[bool]) -> str:
    """The ``metric_estimator`` attribute: how the metric was estimated on these axes.

    >>> metric_estimator(("x",), (True,))
    'second-order centred periodic differences of normalised errors'
    """
    if all(periodic):
        return "second-order centred periodic differences of normalised errors"
    bounded = ", ".join(c for c, p in zip(coordinates, periodic, strict=True) if not p)
    return (
        "differences of normalised errors: second-order centred in the interior (periodic "
        f"where the axis is), first-order one-sided at the ends of the bounded axes ({bounded}); "
        "NaN where the variance is zero on a bounded side"
    )


class EnsembleForecast:
    """Ensemble forecast of a generated model with on-the-fly PKF statistics.

    All members of a chunk are the batch axis of one compiled loop (``tf.function`` with XLA)
    around ``model.step_tensors``; at each saved time the loop reduces the chunk to its mean and
    centred lag co-moment sums (the keys of :func:`pkf.statistics.moment_keys`, shifted with
    ``tf.roll``), and the chunks are merged with :func:`pkf.statistics.merge_moments`. Chunks
    are padded to a common size (padding members carry zero weight), so a run compiles once.

    Parameters
    ----------
    model : generator.SteppableModel
        A model built by :class:`generator.NNModelBuilder` (any time scheme; periodic or
        bounded axes, see ``model.periodic_axes``), or any object with the members of
        :class:`generator.protocols.SteppableModel` (periodic when it has no
        ``periodic_axes``).
    members : int
        Ensemble size ``N``.
    chunks : int or sequence of int, optional
        Largest chunk (int) or the explicit chunk sizes (summing to ``members``). By default
        the largest chunk that fits ``memory_budget``.
    memory_budget : int, default 1 GiB
        Bytes the compiled loop of one chunk may use (states, RK stages, saved members).
    cache_budget : int or None, default 20 MiB
        On a CPU (no GPU visible to TensorFlow), chunks are also kept below this working set,
        which is faster than one huge batch; ``None`` disables the limit.
    save_members : bool, default False
        Keep every member at the saved times in :attr:`EnsembleResult.members` (host memory
        ``n_saved * members * grid`` values per field; otherwise only moments are kept).
    progress : bool, default True
        Show a tqdm progress bar over members (per chunk).
    client : distributed.Client or str, optional
        Run the chunks as Dask tasks on this cluster (or the scheduler at this address): each
        worker rebuilds the generated model from its source code, integrates its chunks and
        returns their moments, merged here in chunk order — the same numbers as in-process.
        Saved members then stay on the workers (a Dask array). Default: in this process.

    Examples
    --------
    >>> import sympy as sp
    >>> from generator import NNModelBuilder
    >>> from pkf import sample_errors
    >>> t, x, kappa = sp.symbols("t x kappa")
    >>> u = sp.Function("u")(t, x)
    >>> Heat = NNModelBuilder([sp.Eq(u.diff(t), kappa * u.diff(x, 2))], "Heat").build()
    >>> model = Heat(shape=64, lengths=1.0, kappa=1e-3)
    >>> errors = sample_errors(64, 1.0, members=50, correlation=0.1, seed=0)
    >>> result = EnsembleForecast(model, members=50, progress=False).run(
    ...     np.arange(11) * 0.01, {"u": errors}, saved_times=[0.0, 0.1])
    >>> result.to_dataset()["s_u_xx"].shape  # (time, x): aspect tensor at the saved times
    (2, 64)
    """

    def __init__(
        self,
        model: SteppableModel,
        members: int,
        *,
        chunks: int | Sequence[int] | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        cache_budget: int | None = DEFAULT_CACHE_BUDGET,
        save_members: bool = False,
        progress: bool = True,
        client: Any = None,
    ) -> None:
        self.members = positive_int(members, "members")
        if client is not None:
            from .cluster import connect

            client = connect(client)
        self.client = client
        memory_budget = positive_int(memory_budget, "memory_budget")
        if cache_budget is not None:
            cache_budget = positive_int(cache_budget, "cache_budget")
        self.model = model
        self.fields = tuple(model.prognostic_functions)
        self.shape = tuple(model.shape)
        self.ndim = len(self.shape)
        self.periodic: tuple[bool, ...] = tuple(
            bool(p) for p in getattr(model, "periodic_axes", (True,) * self.ndim)
        )
        self.keys: tuple[MomentKey, ...] = moment_keys(self.fields, self.ndim, self.periodic)
        self.memory_budget = int(memory_budget)
        self.cache_budget = cache_budget
        self.save_members = bool(save_members)
        self.progress = bool(progress)
        self._chunks = chunks
        self._compiled: dict[bool, Callable] = {}
        # The shapes of the boundary series the compiled loops were traced with.
        self._boundary_signature: tuple | None = None

    def __repr__(self) -> str:
        return (
            f"EnsembleForecast({type(self.model).__name__}, members={self.members}, "
            f"fields={self.fields}, shape={self.shape})"
        )

    # -- chunking -----------------------------------------------------------------------
    def member_bytes(self, n_saved: int) -> int:
        """Estimated bytes one member needs in the compiled loop with ``n_saved`` saved times."""
        itemsize = np.dtype(self.model.dtype).itemsize
        state = itemsize * int(np.prod(self.shape)) * len(self.fields)
        return state * (WORKING_COPIES + (n_saved if self.save_members else 0))

    def chunk_sizes(self, n_saved: int = 1) -> tuple[int, ...]:
        """Chunk sizes used for a run with ``n_saved`` saved times."""
        chunks = self._chunks
        if chunks is None:
            largest = largest_chunk(
                self.member_bytes(n_saved), self.memory_budget, self.cache_budget
            )
            return chunk_sizes(self.members, largest)
        if np.isscalar(chunks) or not isinstance(chunks, Iterable):
            return chunk_sizes(self.members, positive_int(chunks, "chunks"))
        sizes = tuple(positive_int(c, "chunks") for c in chunks)
        if any(c < 1 for c in sizes) or sum(sizes) != self.members:
            raise ValueError(
                f"chunks: expected positive sizes summing to members={self.members}, got {sizes}"
            )
        return sizes

    # -- compiled loop ------------------------------------------------------------------
    def _loop(self, padded: bool) -> Callable:
        """The model's compiled loop (:func:`generator.integrate.compile_loop`) with the
        ensemble's save hook: chunk moments, per-member finiteness and, if asked, the members.

        ``padded`` chunks carry zero-weight copies of their first member (so that every chunk
        of a run has one size and the loop compiles once); unpadded chunks skip the weights.
        """
        if padded in self._compiled:
            return self._compiled[padded]
        import tensorflow as tf

        from generator.integrate import compile_loop

        fields, keys, ndim = self.fields, self.keys, self.ndim
        grid_axes = tuple(range(1, ndim + 1))
        index = {name: k for k, name in enumerate(fields)}
        save_members = self.save_members
        count_fields = len(fields)

        def member_flags(state):
            return tf.reduce_all(
                tf.stack([tf.reduce_all(tf.math.is_finite(s), axis=grid_axes) for s in state]),
                axis=0,
            )

        def save(state, weights):
            # Moments about the chunk's first member (a real member: padding goes last), so
            # that merging chunks keeps the single-pass accuracy when |mean| >> spread.
            count = tf.reduce_sum(weights)
            w = tf.reshape(weights, (-1,) + (1,) * ndim)
            shifts = tuple(s[0] for s in state)
            relative = tuple(s - c for s, c in zip(state, shifts, strict=True))
            if padded:
                means = tuple(tf.reduce_sum(w * r, axis=0) / count for r in relative)
                errors = tuple(w * (r - m) for r, m in zip(relative, means, strict=True))
            else:
                means = tuple(tf.reduce_mean(r, axis=0) for r in relative)
                errors = tuple(r - m for r, m in zip(relative, means, strict=True))
            sums = []
            for a, b, lag in keys:
                other = errors[index[b]]
                if any(lag):
                    other = tf.roll(other, shift=[-v for v in lag], axis=grid_axes)
                sums.append(tf.reduce_sum(errors[index[a]] * other, axis=0))
            # Any non-finite member makes the chunk mean non-finite, so the members are
            # examined one by one only then.
            finite = tf.cond(
                means_finite(means),
                lambda: tf.ones_like(weights, dtype=tf.bool),
                lambda: member_flags(state),
            )
            return (*shifts, *means, *sums, finite, *(state if save_members else ()))

        def means_finite(means):
            return tf.reduce_all([tf.reduce_all(tf.math.is_finite(m)) for m in means])

        def still_finite(_state, values):
            return means_finite(values[count_fields : 2 * count_fields])

        self._compiled[padded] = compile_loop(
            self.model.step_tensors, save, self.model.jit_compile, finite=still_finite
        )
        return self._compiled[padded]

    # -- public API ---------------------------------------------------------------------
    def run(
        self,
        times: ArrayLike,
        initial: InitialMembers,
        saved_times: ArrayLike | None = None,
        boundary_errors: Mapping[BoundarySide, BoundaryErrors] | None = None,
    ) -> EnsembleResult:
        """Forecast every member over ``times``; statistics at ``saved_times``.

        Parameters
        ----------
        times : array_like
            ``(n_times,)`` increasing, uniformly spaced model times; the step is
            ``times[1] - times[0]`` (validated by :func:`generator.integrate.time_grid`, as
            for a single forecast).
        initial : mapping or callable
            Initial members, ``{field: (members, *grid)}`` (model coordinate order), or
            ``initial(start, stop)`` returning members ``start:stop`` (see
            :data:`InitialMembers`).
        saved_times : array_like, optional
            Strictly increasing times among ``times`` where statistics (and members) are kept;
            default all.
        boundary_errors : mapping, optional
            Perturbed Dirichlet sides of a bounded model:
            ``{(field, coordinate, side): pkf.BoundaryErrors(mean, variance, time_scale,
            length_scale=None, seed=...)}``. Before each chunk, the side's value is set to
            ``BoundarySeries(times, mean + errors[:, chunk members])`` (member ``k``'s series
            drawn from its own seed, so any chunking gives the same members), linearly
            interpolated at every stage. After the run the side holds the constant ``mean``
            (the unperturbed value). With ``client=`` the workers draw the series.

        Returns
        -------
        EnsembleResult
            Statistics at the saved times, merged over the chunks; ``.to_dataset()`` labels
            them.

        Raises
        ------
        generator.NonFiniteStateError
            If a member is not finite at a saved time (naming the field, time and members).
        ValueError
            For ``boundary_errors`` naming an unknown field, coordinate or side, a side that is
            not Dirichlet, a value that is not a :class:`pkf.BoundaryErrors`, a ``mean`` not
            shaped like the face, or a Dask ``client``.
        """
        from generator.integrate import time_grid

        grid = time_grid(times, saved_times)
        boundary = self._check_boundary_errors(boundary_errors)
        plan = ChunkPlan.of(self.chunk_sizes(len(grid.saved_steps)))
        accumulator = MomentAccumulator(self.model.dx, self.fields, self.periodic)
        saved_members: dict[str, list[Any]] = {name: [] for name in self.fields}
        if self.client is None:
            results: Iterable[ChunkResult] = (
                self.run_chunk(initial, k, plan, grid, boundary) for k in range(len(plan.sizes))
            )
        else:
            from .cluster import ensemble_chunks

            results = ensemble_chunks(self, initial, plan, grid, boundary)
        with tqdm(
            total=self.members,
            desc=f"{type(self.model).__name__} ensemble",
            unit="member",
            disable=not self.progress,
        ) as bar:
            for start, size, result in zip(plan.starts, plan.sizes, results, strict=True):
                if not result.loop_finite:
                    self._raise_non_finite(
                        result.means, result.finite, grid.saved_times, start, size
                    )
                self._check_moments(result.means, result.sums, grid.saved_times, start, size)
                accumulator.update_moments(
                    Moments(
                        size,
                        dict(zip(self.fields, result.shifts, strict=True)),
                        dict(zip(self.fields, result.means, strict=True)),
                        dict(zip(self.keys, result.sums, strict=True)),
                    )
                )
                if self.save_members:
                    for name, array in zip(self.fields, result.members or (), strict=True):
                        saved_members[name].append(array)
                bar.update(size)
        members = None
        if self.save_members:
            members = {name: _concatenate(parts) for name, parts in saved_members.items()}
        if boundary:
            self._set_boundary_means(boundary)
        return EnsembleResult(self.model, grid.saved_times, accumulator, members)

    def _check_boundary_errors(
        self, boundary_errors: Mapping[BoundarySide, BoundaryErrors] | None
    ) -> dict[BoundarySide, BoundaryErrors]:
        """The validated ``boundary_errors`` of :meth:`run` (empty when None)."""
        if not boundary_errors:
            return {}
        if not isinstance(boundary_errors, Mapping):
            raise ValueError(
                "boundary_errors: expected a mapping {(field, coordinate, side): "
                f"BoundaryErrors}}, got {type(boundary_errors).__name__}"
            )
        from generator.boundaries import Dirichlet

        model = self.model
        if not hasattr(model, "boundary_condition"):
            raise ValueError(
                f"boundary_errors: {type(model).__name__} has no boundary values to perturb "
                "(not a generated model with bounded axes)"
            )
        checked: dict[BoundarySide, BoundaryErrors] = {}
        for key, spec in boundary_errors.items():
            if not (isinstance(key, tuple) and len(key) == 3):
                raise ValueError(
                    f"boundary_errors: keys are (field, coordinate, side) tuples, got {key!r}"
                )
            field, coordinate, side = key
            label = f"boundary_errors[{key!r}]"
            try:
                condition = model.boundary_condition(field, coordinate, side)
            except ValueError as error:
                raise ValueError(f"{label}: {error}") from None
            if not isinstance(condition, Dirichlet):
                raise ValueError(
                    f"{label}: that side is {condition.kind}, not Dirichlet; only a prescribed "
                    "boundary value can be perturbed"
                )
            if not isinstance(spec, BoundaryErrors):
                raise ValueError(
                    f"{label}: expected a pkf.BoundaryErrors, got {type(spec).__name__}"
                )
            face = self._face(coordinate)[0]
            mean = np.asarray(spec.mean)
            if mean.ndim and mean.shape != face:
                raise ValueError(
                    f"{label}: mean has shape {mean.shape}; expected a number or an array over "
                    f"the face {face}"
                )
            checked[(field, coordinate, side)] = spec
        return checked

    def _face(self, coordinate: str) -> tuple[tuple[int, ...], tuple[float, ...], tuple[bool, ...]]:
        """Shape, spacings and periodic flags of the face of ``coordinate``'s sides."""
        axis = tuple(self.model.coordinates).index(coordinate)

        def drop(values: Sequence[Any]) -> tuple:
            return tuple(values[:axis]) + tuple(values[axis + 1 :])

        return drop(self.shape), drop(self.model.dx), drop(self.periodic)

    def _set_boundary_series(
        self,
        boundary: Mapping[BoundarySide, BoundaryErrors],
        grid: TimeGrid,
        start: int,
        size: int,
        capacity: int,
    ) -> None:
        """Set every perturbed side to the series of members ``start:start + size`` (padding
        members repeat the first one), and drop compiled loops traced with other shapes."""
        from generator.boundaries import BoundarySeries

        times = grid.t0 + grid.dt * np.arange(grid.steps + 1)
        if grid.steps == 0:
            times = np.array([grid.t0])
        signature = []
        for (field, coordinate, side), spec in boundary.items():
            face, spacing, periodic = self._face(coordinate)
            if times.size > 1:
                values = spec.values(times, start, start + size, face, spacing, periodic)
            else:
                values = np.broadcast_to(spec.mean, (1, size, *face)).copy()
            pad = capacity - size
            if pad:
                values = np.concatenate([values, np.repeat(values[:, :1], pad, axis=1)], axis=1)
            self._set_side(field, coordinate, side, BoundarySeries(times, values))
            signature.append((field, coordinate, side, values.shape))
        if tuple(signature) != self._boundary_signature:
            self._compiled.clear()
            self._boundary_signature = tuple(signature)

    def _set_side(self, field: str, coordinate: str, side: str, value: Any) -> None:
        """``model.set_boundary_value`` (generated models; checked by :meth:`run`)."""
        getattr(self.model, "set_boundary_value")(field, coordinate, side, value)  # noqa: B009

    def _set_boundary_means(self, boundary: Mapping[BoundarySide, BoundaryErrors]) -> None:
        """Leave the perturbed sides at their constant means after a run."""
        for (field, coordinate, side), spec in boundary.items():
            self._set_side(field, coordinate, side, np.asarray(spec.mean))
        self._compiled.clear()
        self._boundary_signature = None

    def run_chunk(
        self,
        initial: InitialMembers,
        index: int,
        plan: ChunkPlan,
        grid: TimeGrid,
        boundary: Mapping[BoundarySide, BoundaryErrors] | None = None,
    ) -> ChunkResult:
        """Integrate chunk ``index`` of ``plan`` and reduce it to its moments (numpy).

        The unit of work of :meth:`run`, in this process or on a Dask worker. ``boundary``:
        the validated boundary errors of :meth:`run` (the model's sides are set to this
        chunk's series first).
        """
        from generator.integrate import run_loop

        start, size = int(plan.starts[index]), int(plan.sizes[index])
        dtype = self.model.dtype
        weights = np.zeros(plan.capacity, dtype=dtype)
        weights[:size] = 1.0
        if boundary:
            self._set_boundary_series(boundary, grid, start, size, plan.capacity)
        state = self._chunk_state(initial, start, start + size, plan.capacity)
        if not all(self.periodic) and hasattr(self.model, "project"):
            # As a single forecast: values present and covering the times, and the initial
            # members satisfying the boundary conditions.
            import tensorflow as tf

            check = getattr(self.model, "check_boundary_values", None)
            if check is not None:
                check("EnsembleForecast.run", grid.t0, grid.t0 + grid.steps * grid.dt)
            projected = self.model.project(tf.constant(grid.t0, dtype), state)
            state = tuple(np.ascontiguousarray(np.asarray(x)) for x in projected)
        result = run_loop(self._loop(plan.padded), state, grid, dtype, (weights,))
        count, keys = len(self.fields), len(self.keys)
        members = None
        if self.save_members:
            members = tuple(a[:, :size] for a in result.saved[2 * count + keys + 1 :])
        return ChunkResult(
            shifts=result.saved[:count],
            means=result.saved[count : 2 * count],
            sums=result.saved[2 * count : 2 * count + keys],
            finite=result.saved[2 * count + keys],
            loop_finite=result.finite,
            members=members,
        )

    def _chunk_state(
        self, initial: InitialMembers, start: int, stop: int, capacity: int
    ) -> tuple[np.ndarray, ...]:
        if callable(initial):
            values, where = initial(start, stop), f"initial({start}, {stop})"
            rows, members = slice(None), stop - start
        else:
            values, where = initial, "initial"
            rows, members = slice(start, stop), self.members
        if not isinstance(values, Mapping) or set(values) != set(self.fields):
            got = sorted(values) if isinstance(values, Mapping) else type(values).__name__
            raise ValueError(f"{where}: expected a mapping of the fields {self.fields}, got {got}")
        state = []
        for name in self.fields:
            value = to_model_order(self.model, values[name], f"{where}[{name!r}]", (MEMBER_DIM,))
            array = real_array(value, f"{where}[{name!r}]", self.model.dtype)
            if array.shape != (members, *self.shape):
                raise ValueError(
                    f"{where}[{name!r}]: expected shape (members, *grid) = "
                    f"{(members, *self.shape)}, got {array.shape}"
                )
            chunk = array[rows]
            if not np.isfinite(chunk).all():
                bad = np.flatnonzero(~np.isfinite(chunk).reshape(len(chunk), -1).all(axis=1))
                raise ValueError(
                    f"{where}[{name!r}]: initial members {(bad + start).tolist()[:10]} are not "
                    "finite"
                )
            pad = capacity - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)])
            state.append(np.ascontiguousarray(chunk))
        return tuple(state)

    def _check_moments(self, means, sums, saved_times, start: int, size: int) -> None:
        """Finite members whose moments overflow float64 (spread beyond ~1e154)."""
        from generator.integrate import NonFiniteStateError

        for (a, _, _), value in zip(self.keys, sums, strict=True):
            bad = ~np.isfinite(value.reshape(len(value), -1)).all(axis=1)
            if bad.any():
                k = int(np.argmax(bad))
                raise NonFiniteStateError(
                    f"EnsembleForecast: the statistics of field {a!r} overflow at t = "
                    f"{saved_times[k]:g} in members {start}:{start + size} (the members are "
                    "finite but their spread exceeds what float64 moments can hold); check "
                    "the initial members' amplitudes",
                    field=a,
                    time=float(saved_times[k]),
                )

    def _raise_non_finite(
        self,
        means: Sequence[np.ndarray],
        finite: np.ndarray,
        saved_times: np.ndarray,
        start: int,
        size: int,
    ) -> None:
        from generator.integrate import NonFiniteStateError

        k = len(finite) - 1
        time = float(saved_times[k])
        field = next(
            (n for n, m in zip(self.fields, means, strict=True) if not np.isfinite(m[k]).all()),
            self.fields[0],
        )
        bad = (np.flatnonzero(~finite[k][:size]) + start).tolist()
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        last = f"; all finite at t = {saved_times[k - 1]:g}" if k else ""
        raise NonFiniteStateError(
            f"EnsembleForecast: field {field!r} is not finite at t = {time:g} in {len(bad)} "
            f"member(s) ({shown}){last}; reduce the time step (CFL) or check the initial members",
            field=field,
            time=time,
        )


def _concatenate(parts: list[Any]) -> Any:
    """Members of all chunks along the member axis (Dask arrays stay lazy)."""
    if any(hasattr(part, "dask") for part in parts):
        import dask.array as da

        return da.concatenate(parts, axis=1)
    return np.concatenate(parts, axis=1)
