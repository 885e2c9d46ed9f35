"""The one compiled time loop of pkfnet: fixed-step integration with save hooks.

A forecast that returns states and an ensemble that reduces its members to moments are the same
loop with different *save hooks* (in the spirit of diffrax's ``SaveAt(ts=..., fn=...)`` and
py-pde's trackers): :func:`compile_loop` wraps a step function and a hook into one XLA-compiled
``tf.function``; :func:`time_grid` is the single validation of forecast times; the loop stops at
the first saved time where the state is not finite, and :class:`NonFiniteStateError` reports it
with what was computed before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from .validation import positive_int, real_array

__all__ = [
    "LoopResult",
    "NonFiniteStateError",
    "SaveHook",
    "StepFunction",
    "TimeGrid",
    "compile_loop",
    "DEFAULT_CACHE_BUDGET",
    "chunk_sizes",
    "cpu_cores",
    "enable_compilation_cache",
    "largest_chunk",
    "run_chunks",
    "run_loop",
    "time_grid",
]

#: A saved time may differ from a forecast time by this fraction of the time step.
SAVED_TIME_TOLERANCE = 1e-6


class NonFiniteStateError(FloatingPointError):
    """A model produced NaN or Inf (typically a CFL violation or a bad input).

    Attributes
    ----------
    field : str or None
        The first non-finite field.
    time : float or None
        The first saved time where it is not finite.
    partial : xarray.Dataset or None
        What was computed up to the last finite saved time (``None`` if nothing was), so that
        one can see where the run went wrong.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        time: float | None = None,
        partial: Any = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.time = time
        self.partial = partial


@dataclass(frozen=True)
class TimeGrid:
    """Validated forecast times: uniform steps from ``t0`` and the saved steps among them.

    Attributes
    ----------
    t0 : float
        First time.
    dt : float
        Time step (``0.0`` when only one time is given).
    steps : int
        Number of steps from ``t0`` to the last time.
    saved_steps : numpy.ndarray
        ``(n_saved,)`` strictly increasing step indices of the saved times.
    saved_times : numpy.ndarray
        ``(n_saved,)`` the saved times as the caller gave them (so that ``sel(time=0.7)``
        finds ``0.7`` exactly).
    """

    t0: float
    dt: float
    steps: int
    saved_steps: np.ndarray
    saved_times: np.ndarray

    @property
    def segment_steps(self) -> np.ndarray:
        """Steps integrated before each saved time: ``diff([0, *saved_steps])``, int32."""
        return np.diff(np.concatenate([[0], self.saved_steps])).astype(np.int32)


def time_grid(times: ArrayLike, saved_times: ArrayLike | None = None) -> TimeGrid:
    """Validate forecast times and the saved times among them.

    Parameters
    ----------
    times : array_like
        ``(n,)`` finite, increasing, uniformly spaced times (``n >= 1``; the step is
        ``times[1] - times[0]``, uniform to a relative 1e-9).
    saved_times : array_like, optional
        Strictly increasing times among ``times`` (each within 1e-6 of a step of one);
        default all of ``times``.

    Raises
    ------
    ValueError
        Naming ``times`` or ``saved_times`` and the offending values.

    Examples
    --------
    >>> grid = time_grid([0.0, 0.1, 0.2, 0.3], saved_times=[0.1, 0.3])
    >>> grid.saved_steps.tolist(), grid.segment_steps.tolist()
    ([1, 3], [1, 2])
    """
    times = real_array(times, "times")
    if times.ndim != 1 or times.size < 1:
        raise ValueError(f"times: expected a non-empty 1D sequence, got shape {times.shape}")
    if not np.isfinite(times).all():
        raise ValueError(f"times: expected finite values, got {times[~np.isfinite(times)][:3]}")
    if times.size == 1:
        dt = 0.0
    else:
        steps = np.diff(times)
        dt = float(steps[0])
        if dt <= 0 or not np.allclose(steps, dt, rtol=1e-9, atol=0):
            raise ValueError("times: expected increasing, uniformly spaced times")
    if saved_times is None:
        return TimeGrid(float(times[0]), dt, times.size - 1, np.arange(times.size), times.copy())
    saved = real_array(saved_times, "saved_times")
    if saved.ndim > 1 or saved.size < 1:
        raise ValueError(f"saved_times: expected a time or a 1D sequence, got shape {saved.shape}")
    saved = np.atleast_1d(saved)
    if not np.isfinite(saved).all():
        raise ValueError(f"saved_times: expected finite values, got {saved.tolist()}")
    if dt == 0.0:
        indices = np.zeros(saved.size, dtype=np.int64)
        found = np.abs(saved - times[0]) <= SAVED_TIME_TOLERANCE * max(abs(times[0]), 1e-300)
        found |= saved == times[0]
    else:
        indices = np.rint((saved - times[0]) / dt).astype(np.int64)
        inside = (indices >= 0) & (indices < times.size)
        nearest = times[np.clip(indices, 0, times.size - 1)]
        found = inside & (np.abs(nearest - saved) <= SAVED_TIME_TOLERANCE * dt)
    if not found.all():
        raise ValueError(
            f"saved_times: {saved[~found].tolist()} are not among the forecast times "
            f"({times[0]:g} to {times[-1]:g} every {dt:g})"
        )
    repeated = np.diff(indices) == 0
    if repeated.any():
        raise ValueError(
            f"saved_times: {saved[1:][repeated].tolist()} appear more than once; give each "
            "saved time once"
        )
    if (np.diff(indices) < 0).any():
        raise ValueError("saved_times: expected increasing times")
    return TimeGrid(float(times[0]), dt, times.size - 1, indices, saved)


class StepFunction(Protocol):
    """``step(state, t, dt) -> state``: one time step on a tuple of tensors."""

    def __call__(self, state: tuple, t: Any, dt: Any) -> tuple: ...


class SaveHook(Protocol):
    """``save(state, *arguments) -> tuple of tensors`` kept at every saved time.

    Examples: ``lambda state: state`` keeps the states; an ensemble hook reduces the members to
    their mean and co-moment sums. The hook runs inside the compiled loop.
    """

    def __call__(self, state: tuple, *arguments: Any) -> tuple: ...


def compile_loop(
    step: StepFunction,
    save: SaveHook,
    jit_compile: bool = True,
    finite: Callable[[tuple, tuple], Any] | None = None,
) -> Callable[..., tuple]:
    """Compile the integration loop of ``step`` with the save hook ``save``.

    The returned ``tf.function`` takes ``(state, arguments, t0, dt, segment_steps)`` — the
    state a tuple of tensors, ``arguments`` a tuple of extra tensors passed to the hook — and
    returns ``(saved, written, finite)``: ``saved`` is a tuple of tensors stacked over the
    saved times (``(n_saved, ...)``, entries after ``written`` are zeros), ``written`` the
    number of saved entries computed and ``finite`` False if the loop stopped because the state
    became non-finite (the last written entry is then the first non-finite one).

    ``finite(state, saved_values)`` decides whether the state is still finite at a saved time
    (a scalar boolean tensor); by default every value of the state is checked. A hook whose
    outputs are non-finite whenever the state is (an ensemble mean, say) can pass a cheaper
    check on its outputs.

    Every call shape (batch size, number of saved times) compiles once and is cached by
    TensorFlow; any sequence of calls is valid.
    """
    import tensorflow as tf

    def all_finite(state: tuple, _values: tuple):
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(s)) for s in state])

    check = finite or all_finite

    def loop(state, arguments, t0, dt, segment_steps):
        count = tf.shape(segment_steps)[0]
        first = save(state, *arguments)
        arrays = tuple(tf.TensorArray(x.dtype, size=count, element_shape=x.shape) for x in first)

        def segment(i, j, state, arrays, finite):
            stop = j + segment_steps[i]

            def body(j, state):
                t = t0 + tf.cast(j, dt.dtype) * dt
                return j + 1, tuple(step(state, t, dt))

            j, state = tf.while_loop(lambda j, _: j < stop, body, (j, state))
            values = save(state, *arguments)
            arrays = tuple(a.write(i, v) for a, v in zip(arrays, values, strict=True))
            return i + 1, j, state, arrays, check(state, values)

        written, _, _, arrays, finite = tf.while_loop(
            lambda i, _j, _s, _a, finite: (i < count) & finite,
            segment,
            (tf.constant(0), tf.constant(0), state, arrays, tf.constant(True)),
        )
        return tuple(a.stack() for a in arrays), written, finite

    compiled = tf.function(loop, jit_compile=jit_compile, autograph=False, reduce_retracing=True)
    # Each model and ensemble compiles its own loop from this one Python function, and every
    # new call shape retraces by design: TensorFlow's "frequent retracing" warning would fire
    # for every sixth model of a session and mislead users.
    compiled._omit_frequent_tracing_warning = True
    return compiled


@dataclass(frozen=True)
class LoopResult:
    """Outputs of one compiled loop run, as numpy arrays.

    Attributes
    ----------
    saved : tuple of numpy.ndarray
        The hook's outputs stacked over the saved times that were computed,
        ``(written, ...)`` each.
    finite : bool
        False when the loop stopped at a non-finite state (the last entry of ``saved``).
    """

    saved: tuple[np.ndarray, ...]
    finite: bool


def run_loop(
    loop: Callable[..., tuple],
    state: Sequence[Any],
    grid: TimeGrid,
    dtype: str,
    arguments: Sequence[Any] = (),
) -> LoopResult:
    """Run a loop from :func:`compile_loop` over ``grid``; outputs cut to what was computed."""
    import tensorflow as tf

    saved, written, finite = loop(
        tuple(tf.convert_to_tensor(s) for s in state),
        tuple(tf.convert_to_tensor(a) for a in arguments),
        tf.constant(grid.t0, dtype),
        tf.constant(grid.dt, dtype),
        tf.constant(grid.segment_steps),
    )
    count = int(written)
    return LoopResult(tuple(s.numpy()[:count] for s in saved), bool(finite))


#: Working set per chunk on a CPU: beyond it a batched RK loop is memory-bound (measured on 2
#: cores: 100×100 diffusion runs 2.3x faster in chunks of 4 than of 64 members, while 400
#: Burgers members on 241 points, 18 MB, are fastest in one chunk).
DEFAULT_CACHE_BUDGET = 20 << 20
#: Working copies of one member's state held by a compiled RK4 step with its derivatives and
#: the saved outputs' temporaries (an upper estimate, to size chunks from a budget).
WORKING_COPIES = 24


def cpu_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def chunk_sizes(members: int, max_chunk: int) -> tuple[int, ...]:
    """Split ``members`` into the fewest near-equal chunks of at most ``max_chunk`` members.

    Examples
    --------
    >>> chunk_sizes(10, 4)
    (4, 3, 3)
    """
    members = positive_int(members, "members")
    max_chunk = positive_int(max_chunk, "max_chunk")
    count = -(-members // max_chunk)
    base, extra = divmod(members, count)
    return tuple(base + 1 if k < extra else base for k in range(count))


def largest_chunk(member_bytes: int, memory_budget: int, cache_budget: int | None) -> int:
    """Members per chunk: what fits the memory budget and, on a CPU, the cache budget — but at
    least one per core, so that XLA's loops (split over the member axis) keep every core busy.

    A chunk of one large 2D member runs on one core; two members of 241² run 1.8x faster per
    member than one, and more than fit the cache run slower again (measured, 2 cores).
    """
    import tensorflow as tf

    member_bytes = max(member_bytes, 1)
    memory_limit = max(1, memory_budget // member_bytes)  # a hard limit
    if cache_budget is None or tf.config.list_physical_devices("GPU"):
        return memory_limit
    return min(memory_limit, max(cpu_cores(), cache_budget // member_bytes))


def run_chunks(
    loop: Callable[..., tuple],
    chunks: Iterable[tuple[Sequence[Any], Sequence[Any]]],
    grid: TimeGrid,
    dtype: str,
) -> Iterator[LoopResult]:
    """Run chunks of members through one compiled loop, in order, one after the other.

    ``chunks`` yields ``(state, arguments)`` for :func:`run_loop`; a generator, so that a
    large ensemble is never held in memory as a whole.
    """
    for state, arguments in chunks:
        yield run_loop(loop, state, grid, dtype, arguments)


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path | None:
    """Keep XLA's compiled loops on disk, so that a later process skips their compilation.

    Sets TensorFlow's persistent XLA cache (``TF_XLA_FLAGS=--tf_xla_persistent_cache_directory``)
    unless one is already set. It takes effect only if nothing has been compiled with XLA yet
    in this process (call it before the first forecast); the ``pkfnet`` command does when the
    environment variable ``PKFNET_CACHE_DIR`` is set. Measured: a 2D PKF model's first forecast
    1.7 s → 0.4 s, a 2D diffusion 0.41 s → 0.21 s (the rest is tracing, done per process). The
    cache is safe to delete; entries are keyed by the compiled program, so a changed model
    never reuses a stale one. It is opt-in because TensorFlow 2.21 logs a (harmless) C++ error
    line about CPU tuning flags each time it loads an entry.

    Parameters
    ----------
    directory : path-like, optional
        Default ``$PKFNET_CACHE_DIR/xla``, else ``$XDG_CACHE_HOME/pkfnet/xla``, else
        ``~/.cache/pkfnet/xla``.

    Returns
    -------
    pathlib.Path or None
        The cache directory in use, or None when TensorFlow was already given another one.
    """
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" in flags:
        return None
    if directory is None:
        root = os.environ.get("PKFNET_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
            "pkfnet",
        )
        directory = os.path.join(root, "xla")
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # read-only home, say: compile every time, as without a cache
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={path}".strip()
    return path
