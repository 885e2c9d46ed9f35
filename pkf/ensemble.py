"""Batched ensemble forecasts with PKF statistics computed on the fly.

:class:`EnsembleForecast` runs the members of an ensemble as the batch axis of one XLA-compiled
loop around a generated model's ``step_tensors``; at each saved time the loop reduces the chunk
of members to mergeable moment sums (:class:`pkf.statistics.Moments`), so the members themselves
are only kept when asked. Chunks of members (sized from a memory budget) merge exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from .statistics import MomentAccumulator, MomentKey, Moments, moment_keys

__all__ = ["EnsembleForecast", "EnsembleResult", "chunk_sizes"]

InitialMembers = Mapping[str, ArrayLike] | Callable[[int, int], Mapping[str, ArrayLike]]
"""Either every member at once, ``{field: (members, *grid)}``, or a callable
``initial(start, stop) -> {field: (stop - start, *grid)}`` giving members ``start:stop`` (so that
a large ensemble is never held in memory as a whole)."""

DEFAULT_MEMORY_BUDGET = 1 << 30
#: Working-set size per chunk on a CPU: beyond it a batched RK loop is memory-bound (measured
#: on 2 cores: 100×100 diffusion runs 2.3x faster in chunks of 4 than of 64 members, while
#: 400 Burgers members on 241 points, 18 MB, are fastest in one chunk).
DEFAULT_CACHE_BUDGET = 20 << 20
#: Working copies of one member's state held by a compiled RK4 step with its derivatives and
#: the statistics temporaries (an upper estimate, used to size chunks from a memory budget).
_WORKING_COPIES = 24


def chunk_sizes(members: int, max_chunk: int) -> tuple[int, ...]:
    """Split ``members`` into the fewest near-equal chunks of at most ``max_chunk`` members.

    Examples
    --------
    >>> chunk_sizes(10, 4)
    (4, 3, 3)
    """
    if members < 1 or max_chunk < 1:
        raise ValueError(f"members and max_chunk must be positive, got {members}, {max_chunk}")
    count = -(-members // max_chunk)
    base, extra = divmod(members, count)
    return tuple(base + 1 if k < extra else base for k in range(count))


@dataclass
class EnsembleResult:
    """Statistics of an ensemble forecast at the saved times (time is the first axis).

    Attributes
    ----------
    times : numpy.ndarray
        ``(n_saved,)`` saved model times.
    accumulator : MomentAccumulator
        The merged moments, state shape ``(n_saved, *grid)``; merge it with the accumulator
        of another run over other members (same times) to pool ensembles.
    members : dict of str to numpy.ndarray or None
        ``{field: (n_saved, members, *grid)}`` when the forecast saved its members.
    """

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

    def mean(self, name: str | None = None) -> np.ndarray:
        """Ensemble mean, ``(n_saved, *grid)``."""
        return self.accumulator.mean(name)

    def variance(self, name: str | None = None) -> np.ndarray:
        """Population variance ``V``, ``(n_saved, *grid)``."""
        return self.accumulator.variance(name)

    def metric(self, name: str | None = None) -> np.ndarray:
        """Metric tensor ``g_ij``, ``(n_saved, ndim, ndim, *grid)``, 1 / length**2."""
        return np.moveaxis(self.accumulator.metric(name), 2, 0)

    def aspect(self, name: str | None = None) -> np.ndarray:
        """Aspect tensor ``s = g^-1``, ``(n_saved, ndim, ndim, *grid)``, length**2."""
        return np.moveaxis(self.accumulator.aspect(name), 2, 0)

    def diffusion(self, name: str | None = None) -> np.ndarray:
        """Diffusion tensor ``nu = g^-1 / 2``, ``(n_saved, ndim, ndim, *grid)``, length**2."""
        return np.moveaxis(self.accumulator.diffusion(name), 2, 0)

    def length_scale(self, name: str | None = None) -> np.ndarray:
        """Length-scale along each axis ``1 / sqrt(g_ii)``, ``(n_saved, ndim, *grid)``."""
        return np.moveaxis(self.accumulator.length_scale(name), 1, 0)

    def cross_covariance(self, first: str, second: str) -> np.ndarray:
        """Cross-covariance ``V_ab``, ``(n_saved, *grid)``."""
        return self.accumulator.cross_covariance(first, second)

    def cross_correlation(self, first: str, second: str) -> np.ndarray:
        """Cross-correlation ``V_ab / sqrt(V_a V_b)``, ``(n_saved, *grid)``."""
        return self.accumulator.cross_correlation(first, second)

    def statistics(self, name: str | None = None) -> dict[str, np.ndarray]:
        """``mean``, ``variance``, ``metric``, ``aspect``, ``diffusion``, ``length_scale``."""
        return {
            "mean": self.mean(name),
            "variance": self.variance(name),
            "metric": self.metric(name),
            "aspect": self.aspect(name),
            "diffusion": self.diffusion(name),
            "length_scale": self.length_scale(name),
        }


class EnsembleForecast:
    """Ensemble forecast of a generated model with on-the-fly PKF statistics.

    All members of a chunk are the batch axis of one compiled loop (``tf.function`` with XLA)
    around ``model.step_tensors``; at each saved time the loop reduces the chunk to its mean and
    centred lag co-moment sums (the keys of :func:`pkf.statistics.moment_keys`, shifted with
    ``tf.roll``), and the chunks are merged with :func:`pkf.statistics.merge_moments`. Chunks
    are padded to a common size (padding members carry zero weight), so a run compiles once.

    Parameters
    ----------
    model : generator.model.GeneratedModel
        A model built by :class:`generator.NNModelBuilder` (any time scheme, periodic grid).
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
    >>> result.aspect("u").shape
    (2, 1, 1, 64)
    """

    def __init__(
        self,
        model: Any,
        members: int,
        *,
        chunks: int | Sequence[int] | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        cache_budget: int | None = DEFAULT_CACHE_BUDGET,
        save_members: bool = False,
        progress: bool = True,
    ) -> None:
        if int(members) != members or members < 1:
            raise ValueError(f"members: expected a positive integer, got {members}")
        if memory_budget <= 0:
            raise ValueError(
                f"memory_budget: expected a positive number of bytes, got {memory_budget}"
            )
        self.model = model
        self.members = int(members)
        self.fields = tuple(model.prognostic_functions)
        self.shape = tuple(model.shape)
        self.ndim = len(self.shape)
        self.keys: tuple[MomentKey, ...] = moment_keys(self.fields, self.ndim)
        self.memory_budget = int(memory_budget)
        self.cache_budget = cache_budget
        self.save_members = bool(save_members)
        self.progress = bool(progress)
        self._chunks = chunks
        self._compiled: dict[tuple[bool, bool], Callable] = {}

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
        return state * (_WORKING_COPIES + (n_saved if self.save_members else 0))

    def chunk_sizes(self, n_saved: int = 1) -> tuple[int, ...]:
        """Chunk sizes used for a run with ``n_saved`` saved times."""
        chunks = self._chunks
        if chunks is None:
            budget = self.memory_budget
            if self.cache_budget is not None and not _gpu_visible():
                budget = min(budget, int(self.cache_budget))
            largest = max(1, budget // self.member_bytes(n_saved))
            return chunk_sizes(self.members, largest)
        if np.isscalar(chunks):
            if int(chunks) < 1:
                raise ValueError(f"chunks: expected a positive chunk size, got {chunks}")
            return chunk_sizes(self.members, int(chunks))
        sizes = tuple(int(c) for c in chunks)
        if any(c < 1 for c in sizes) or sum(sizes) != self.members:
            raise ValueError(
                f"chunks: expected positive sizes summing to members={self.members}, got {sizes}"
            )
        return sizes

    # -- compiled loop ------------------------------------------------------------------
    def _loop(self, save_members: bool, padded: bool) -> Callable:
        if (save_members, padded) in self._compiled:
            return self._compiled[(save_members, padded)]
        import tensorflow as tf

        model, fields, keys, ndim = self.model, self.fields, self.keys, self.ndim
        grid_axes = tuple(range(1, ndim + 1))
        index = {name: k for k, name in enumerate(fields)}

        def moments(state, weights, count):
            if padded:
                w = tf.reshape(weights, (-1,) + (1,) * ndim)
                means = tuple(tf.reduce_sum(w * s, axis=0) / count for s in state)
                errors = tuple(w * (s - m) for s, m in zip(state, means, strict=True))
            else:
                means = tuple(tf.reduce_mean(s, axis=0) for s in state)
                errors = tuple(s - m for s, m in zip(state, means, strict=True))
            sums = []
            for a, b, lag in keys:
                other = errors[index[b]]
                if any(lag):
                    other = tf.roll(other, shift=[-v for v in lag], axis=grid_axes)
                sums.append(tf.reduce_sum(errors[index[a]] * other, axis=0))
            return means, tuple(sums)

        def run(state, weights, t0, dt, segment_steps):
            count = tf.reduce_sum(weights)
            n_saved = tf.shape(segment_steps)[0]

            def arrays(like):
                return tuple(
                    tf.TensorArray(x.dtype, size=n_saved, element_shape=x.shape) for x in like
                )

            means0, sums0 = moments(state, weights, count)
            outputs = (arrays(means0), arrays(sums0))
            if save_members:
                outputs += (arrays(state),)

            def segment(i, step, state, outputs):
                stop = step + segment_steps[i]

                def body(j, state):
                    t = t0 + tf.cast(j, dt.dtype) * dt
                    return j + 1, tuple(model.step_tensors(state, t, dt))

                step, state = tf.while_loop(lambda j, _: j < stop, body, (step, state))
                values = moments(state, weights, count) + ((state,) if save_members else ())
                outputs = tuple(
                    tuple(a.write(i, v) for a, v in zip(group, value, strict=True))
                    for group, value in zip(outputs, values, strict=True)
                )
                return i + 1, step, state, outputs

            _, _, _, outputs = tf.while_loop(
                lambda i, *_: i < n_saved,
                segment,
                (tf.constant(0), tf.constant(0), state, outputs),
            )
            return tuple(tuple(a.stack() for a in group) for group in outputs)

        compiled = tf.function(
            run, jit_compile=getattr(model, "jit_compile", True), autograph=False
        )
        self._compiled[(save_members, padded)] = compiled
        return compiled

    # -- public API ---------------------------------------------------------------------
    def run(
        self,
        times: ArrayLike,
        initial: InitialMembers,
        saved_times: ArrayLike | None = None,
    ) -> EnsembleResult:
        """Forecast every member over ``times``; statistics at ``saved_times``.

        Parameters
        ----------
        times : array_like
            ``(n_times,)`` increasing, uniformly spaced model times; the step is
            ``times[1] - times[0]``.
        initial : mapping or callable
            Initial members, ``{field: (members, *grid)}``, or ``initial(start, stop)``
            returning members ``start:stop`` (see :data:`InitialMembers`).
        saved_times : array_like, optional
            Times among ``times`` where statistics (and members) are kept; default all.

        Returns
        -------
        EnsembleResult
            Statistics at the saved times, merged over the chunks.

        Raises
        ------
        generator.model.NonFiniteStateError
            If a member is not finite at a saved time (naming the field, time and chunk).
        """
        import tensorflow as tf

        times = np.asarray(times, dtype=float)
        dt, saved = _saved_steps(times, saved_times)
        segment_steps = np.diff(np.concatenate([[0], saved])).astype(np.int32)
        saved_values = times[saved]
        sizes = self.chunk_sizes(len(saved))
        capacity = max(sizes)
        loop = self._loop(self.save_members, padded=len(set(sizes)) > 1)
        dtype = self.model.dtype
        constants = (
            tf.constant(times[0], dtype),
            tf.constant(dt, dtype),
            tf.constant(segment_steps),
        )
        accumulator = MomentAccumulator(self.model.dx, self.fields)
        saved_members: dict[str, list[np.ndarray]] = {name: [] for name in self.fields}
        start = 0
        with tqdm(
            total=self.members,
            desc=f"{type(self.model).__name__} ensemble",
            unit="member",
            disable=not self.progress,
        ) as bar:
            for size in sizes:
                stop = start + size
                state = self._chunk_state(initial, start, stop, capacity)
                weights = np.zeros(capacity, dtype=dtype)
                weights[:size] = 1.0
                outputs = loop(
                    tuple(tf.constant(s) for s in state), tf.constant(weights), *constants
                )
                means, sums = (tuple(a.numpy() for a in group) for group in outputs[:2])
                self._check_finite(means, saved_values, start, stop)
                accumulator.update_moments(
                    Moments(
                        size,
                        dict(zip(self.fields, means, strict=True)),
                        dict(zip(self.keys, sums, strict=True)),
                    )
                )
                if self.save_members:
                    for name, array in zip(self.fields, outputs[2], strict=True):
                        saved_members[name].append(array.numpy()[:, :size])
                start = stop
                bar.update(size)
        members = None
        if self.save_members:
            members = {name: np.concatenate(parts, axis=1) for name, parts in saved_members.items()}
        return EnsembleResult(saved_values, accumulator, members)

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
            array = np.asarray(values[name], dtype=self.model.dtype)
            if array.shape != (members, *self.shape):
                raise ValueError(
                    f"{where}[{name!r}]: expected shape (members, *grid) = "
                    f"{(members, *self.shape)}, got {array.shape}"
                )
            chunk = array[rows]
            if not np.isfinite(chunk).all():
                from generator.model import NonFiniteStateError

                raise NonFiniteStateError(
                    f"{where}[{name!r}]: initial members {start}:{stop} are not all finite"
                )
            pad = capacity - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], pad, axis=0)])
            state.append(np.ascontiguousarray(chunk))
        return tuple(state)

    def _check_finite(
        self, means: Sequence[np.ndarray], saved_values: np.ndarray, start: int, stop: int
    ) -> None:
        from generator.model import NonFiniteStateError

        # A NaN or Inf in any member makes the chunk mean non-finite at that point.
        for k, t in enumerate(saved_values):
            for name, mean in zip(self.fields, means, strict=True):
                if not np.isfinite(mean[k]).all():
                    raise NonFiniteStateError(
                        f"EnsembleForecast: field {name!r} is not finite at t = {t:g} in "
                        f"members {start}:{stop}; reduce the time step (CFL) or check the "
                        "initial members"
                    )


def _gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _saved_steps(times: np.ndarray, saved_times: ArrayLike | None) -> tuple[float, np.ndarray]:
    """Step ``dt`` and the indices into ``times`` of the saved times."""
    if times.ndim != 1 or times.size < 2:
        raise ValueError(f"times: expected at least 2 increasing times, got shape {times.shape}")
    steps = np.diff(times)
    dt = float(steps[0])
    if dt <= 0 or not np.allclose(steps, dt, rtol=1e-9, atol=0):
        raise ValueError("times: expected increasing, uniformly spaced times")
    if saved_times is None:
        return dt, np.arange(times.size)
    saved = np.atleast_1d(np.asarray(saved_times, dtype=float))
    indices = np.rint((saved - times[0]) / dt).astype(int)
    inside = (indices >= 0) & (indices < times.size)
    bad = ~inside | ~np.isclose(
        times[np.clip(indices, 0, times.size - 1)], saved, rtol=1e-9, atol=1e-12 * dt
    )
    if bad.any():
        raise ValueError(f"saved_times: {saved[bad].tolist()} are not among times")
    if np.any(np.diff(indices) <= 0):
        raise ValueError("saved_times: expected strictly increasing times")
    return dt, indices
