"""pkfnet's embarrassingly parallel work on Dask distributed: ensemble chunks and datasets.

A generated model travels to the workers as its source code and weights (:class:`ModelSpec`),
never as pickled TensorFlow objects: each worker process rebuilds the class once, keeps it and
its compiled loops for the following tasks, integrates its chunks of members (or whole training
ensembles) and sends back the mergeable moments (or the statistics). The client merges and
writes in order, so a distributed run gives the numbers of an in-process run with the same
chunking. Needs the ``distributed`` extra (``pip install pkfnet[distributed]``).
"""

from __future__ import annotations

import hashlib
import operator
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from generator.conventions import package_version

from .ensemble import ChunkPlan, ChunkResult, EnsembleForecast, InitialMembers

if TYPE_CHECKING:
    from distributed import Client

    from generator.integrate import TimeGrid
    from generator.model import GeneratedModel

__all__ = ["ModelSpec", "connect", "ensemble_chunks", "local_cluster"]

#: How long connecting to a scheduler may take before it is reported as unreachable.
CONNECT_TIMEOUT = "10s"
#: Tasks in flight per worker: enough to keep every worker busy, few enough that the client
#: never holds much more than what it is about to merge or write.
TASKS_PER_WORKER = 2


def connect(client: Any, timeout: str = CONNECT_TIMEOUT) -> Client:
    """A ``distributed.Client`` from a client or a scheduler address.

    Raises
    ------
    ImportError
        When Dask distributed is not installed (``pip install pkfnet[distributed]``).
    ConnectionError
        Naming the address, when the scheduler cannot be reached within ``timeout``.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(
            "running on a Dask cluster needs Dask distributed: pip install 'pkfnet[distributed]'"
        ) from None
    if isinstance(client, Client):
        return client
    if not isinstance(client, str):
        raise TypeError(f"client: expected a distributed.Client or an address, got {client!r}")
    try:
        return Client(client, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {client!r} within {timeout} ({error}); check "
            "the address (e.g. tcp://host:8786) and that the scheduler is running"
        ) from None


def local_cluster(workers: int, threads_per_worker: int = 1) -> Client:
    """A ``LocalCluster`` of ``workers`` single-threaded worker processes, and its client.

    TensorFlow's thread pools are sized per worker (the cores shared among the workers), so N
    workers do not oversubscribe the machine.
    """
    from distributed import Client, LocalCluster

    from generator.integrate import cpu_cores

    threads = max(1, cpu_cores() // workers)
    environment = {
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "OMP_NUM_THREADS": str(threads),
    }
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        env=environment,
        dashboard_address=":0",
    )
    return Client(cluster)


@dataclass(frozen=True)
class ModelSpec:
    """Everything a worker needs to rebuild a generated model: source, settings, weights.

    Attributes
    ----------
    source : str
        The generated module's source code (``type(model).source()``).
    class_name : str
        The model class defined by ``source``.
    settings : dict
        Grid, lengths, dtype, time scheme, units (what ``GeneratedModel.save`` stores).
    weights : list of numpy.ndarray
        The trend network's weights: constants, constant fields, trainable scalars.
    """

    source: str
    class_name: str
    settings: dict[str, Any]
    weights: list[np.ndarray] = field(repr=False)

    @classmethod
    def from_model(cls, model: Any) -> ModelSpec:
        """The spec of ``model``; closure models plugged with ``set_closure`` cannot travel."""
        if getattr(model, "_closures", None):
            raise ValueError(
                f"{type(model).__name__}: closure models plugged with set_closure cannot be sent "
                "to Dask workers; generate the closure into the model instead "
                "(NNModelBuilder(..., closures={slot: expression}))"
            )
        return cls(
            source=type(model).source(),
            class_name=type(model).__name__,
            settings=model._settings(),
            weights=[np.asarray(w) for w in model.trend_model.get_weights()],
        )

    @property
    def key(self) -> str:
        """A hash of the spec, equal for equal models."""
        digest = hashlib.sha256(self.source.encode())
        digest.update(repr(sorted(self.settings.items())).encode())
        for weight in self.weights:
            digest.update(np.ascontiguousarray(weight).tobytes())
        return digest.hexdigest()

    def build(self) -> GeneratedModel:
        """The model, rebuilt in this process (classes are cached per source)."""
        from generator.builder import execute_module

        classes = _WORKER_CACHE.setdefault("classes", {})
        source_key = hashlib.sha256(self.source.encode()).hexdigest()
        if source_key not in classes:
            classes[source_key] = execute_module(self.source, self.class_name)
        model = classes[source_key]._restore(self.settings)
        model.trend_model.set_weights(self.weights)
        return model


#: Per worker process: rebuilt classes and the ensemble engines of the models seen, so that
#: each model is generated and compiled once per worker, not once per task.
_WORKER_CACHE: dict[str, dict[Any, Any]] = {}


@dataclass(frozen=True)
class EngineConfig:
    """The settings of an :class:`EnsembleForecast` a worker reproduces."""

    members: int
    chunks: tuple[int, ...]
    save_members: bool


def _engine(spec: ModelSpec, config: EngineConfig) -> EnsembleForecast:
    engines = _WORKER_CACHE.setdefault("engines", {})
    key = (spec.key, config)
    if key not in engines:
        engines[key] = EnsembleForecast(
            spec.build(),
            config.members,
            chunks=config.chunks,
            save_members=config.save_members,
            progress=False,
        )
    return engines[key]


def _given_members(start: int, arrays: dict[str, np.ndarray]) -> InitialMembers:
    """The members of one chunk (sliced by the client) as an ``initial(start, stop)``."""

    def initial(first: int, stop: int) -> dict[str, np.ndarray]:
        if (first, stop) != (start, start + len(next(iter(arrays.values())))):
            raise ValueError(f"chunk members {start}: asked for members {first}:{stop}")
        return arrays

    return initial


def _chunk_task(
    spec: ModelSpec,
    config: EngineConfig,
    initial: InitialMembers,
    index: int,
    plan: ChunkPlan,
    grid: TimeGrid,
    version: str,
    boundary: Mapping[Any, Any] | None = None,
) -> ChunkResult:
    """Worker side of :func:`ensemble_chunks`: one chunk's moments (members included);
    ``boundary``: the validated boundary errors (the chunk's series are drawn on the worker)."""
    if version != package_version():
        raise RuntimeError(
            f"this Dask worker runs pkfnet {package_version()}, the client {version}: install "
            "the same pkfnet on the workers"
        )
    return _engine(spec, config).run_chunk(initial, index, plan, grid, boundary)


def _moments_only(result: ChunkResult) -> ChunkResult:
    return ChunkResult(
        result.shifts, result.means, result.sums, result.finite, result.loop_finite, None
    )


def ensemble_chunks(
    forecast: EnsembleForecast,
    initial: InitialMembers,
    plan: ChunkPlan,
    grid: TimeGrid,
    boundary: Mapping[Any, Any] | None = None,
) -> Iterator[ChunkResult]:
    """The chunks of an ensemble forecast as Dask tasks on ``forecast.client``, in order.

    The moments of each chunk come back to the client as they are merged (at most a few
    chunks ahead); saved members stay on the workers as Dask arrays. A mapping of initial
    members is sliced here, one chunk per task; an ``initial(start, stop)`` callable is sent
    to the workers and called there, so the client never holds the members. ``boundary``
    (the validated boundary errors of :meth:`EnsembleForecast.run`) travels with each task:
    the workers draw each chunk's boundary series from the members' own seeds.
    """
    import dask
    import dask.array as da

    client = forecast.client
    spec = ModelSpec.from_model(forecast.model)
    config = EngineConfig(forecast.members, plan.sizes, forecast.save_members)
    remote_spec = client.scatter(spec, broadcast=True, hash=False)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    version = package_version()
    shape = tuple(forecast.model.shape)

    def submit(index: int) -> tuple[Any, Any, Any]:
        start, size = plan.starts[index], plan.sizes[index]
        chunk_initial: InitialMembers
        if callable(initial):
            chunk_initial = initial
        else:
            arrays = {
                name: np.asarray(initial[name])[start : start + size] for name in forecast.fields
            }
            chunk_initial = _given_members(start, arrays)
        task = client.submit(
            _chunk_task,
            remote_spec,
            config,
            chunk_initial,
            index,
            plan,
            grid,
            version,
            dict(boundary or {}),
            pure=False,
        )
        moments = client.submit(_moments_only, task, pure=False)
        members = None
        if forecast.save_members:
            count = len(grid.saved_steps)
            members = tuple(
                da.from_delayed(
                    dask.delayed(operator.getitem)(
                        dask.delayed(operator.attrgetter("members"))(task), k
                    ),
                    shape=(count, size, *shape),
                    dtype=forecast.model.dtype,
                )
                for k in range(len(forecast.fields))
            )
        # the chunk's own future is kept until its moments are in: releasing it earlier would
        # let the scheduler forget the task the moments depend on
        return moments, members, task

    window = TASKS_PER_WORKER * workers
    pending: list[tuple[Any, Any, Any]] = []
    next_index = 0
    try:
        for _ in range(len(plan.sizes)):
            while next_index < len(plan.sizes) and len(pending) < window:
                pending.append(submit(next_index))
                next_index += 1
            moments, members, _task = pending.pop(0)
            result = moments.result()
            if members is not None:
                result.members = members
            yield result
    finally:
        for moments, _, task in pending:
            moments.cancel()
            task.cancel()


def ensembles_in_order(
    client: Client, tasks: Sequence[Any], window: int
) -> Iterator[tuple[int, Any]]:
    """Results of ``tasks`` (callables returning futures, one per index) in index order, with
    at most ``window`` in flight; results that finish early wait here, in order."""
    from distributed import as_completed

    done: dict[int, Any] = {}
    futures: dict[Any, int] = {}
    submitted = 0
    queue = as_completed()
    try:
        for expected in range(len(tasks)):
            while submitted < len(tasks) and len(futures) + len(done) < window:
                future = tasks[submitted]()
                futures[future] = submitted
                queue.add(future)
                submitted += 1
            while expected not in done:
                future = next(queue)
                done[futures.pop(future)] = future.result()
            yield expected, done.pop(expected)
    finally:
        for future in futures:
            future.cancel()


def _dataset_task(
    spec: ModelSpec,
    config: EngineConfig,
    draw: Any,
    ensemble: int,
    times: np.ndarray,
    saved: np.ndarray,
    version: str,
) -> Any:
    """Worker side of :func:`dataset_statistics`: one ensemble's training statistics."""
    from .dataset import TRAINING_STATISTICS

    if version != package_version():
        raise RuntimeError(
            f"this Dask worker runs pkfnet {package_version()}, the client {version}: install "
            "the same pkfnet on the workers"
        )
    forecast = _engine(spec, config)
    initial = draw(forecast.model, ensemble)
    result = forecast.run(times, initial, saved_times=saved)
    return result.to_dataset(statistics=TRAINING_STATISTICS)


def dataset_statistics(
    client: Client,
    forecast: EnsembleForecast,
    draw: Any,
    times: np.ndarray,
    saved: np.ndarray,
) -> Any:
    """Each training ensemble's statistics as a Dask task, yielded in ensemble order.

    ``draw(model, ensemble)`` (a picklable ``functools.partial`` of :mod:`pkf.dataset`'s member
    draw, without the model) runs on the worker with its rebuilt model, so the members are
    drawn from the same seed there. The engine on the worker uses the client's chunk sizes, so its
    numbers are those of a serial build.
    """
    spec = ModelSpec.from_model(forecast.model)
    sizes = forecast.chunk_sizes(len(saved))
    config = EngineConfig(forecast.members, sizes, False)
    remote_spec = client.scatter(spec, broadcast=True, hash=False)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    version = package_version()

    def stream(ensembles: range) -> Iterator[tuple[int, Any]]:
        tasks = [
            (
                lambda e=e: client.submit(
                    _dataset_task,
                    remote_spec,
                    config,
                    draw,
                    e,
                    times,
                    saved,
                    version,
                    pure=False,
                )
            )
            for e in ensembles
        ]
        for offset, statistics in ensembles_in_order(client, tasks, TASKS_PER_WORKER * workers):
            yield ensembles[offset], statistics

    return stream
