"""Training datasets of PKF statistics from many independent ensemble forecasts.

:func:`build_dataset` runs ``K`` ensembles of ``N`` members, each around its own random
background, and writes the statistics (mean, V, diffusion tensor, cross-covariances) of
consecutive time steps ``(k, k + 1)`` in a window as samples of a netCDF file. The file grows one
ensemble at a time under an exclusive lock; a rerun verifies what the file holds and resumes (or
extends) it only if it was built with the same settings (:func:`build_fingerprint`).
:func:`open_training_set` reads the verified samples back as an ``xarray.Dataset``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import types
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from importlib import metadata
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from generator.conventions import cf_grid_order, package_version, time_attributes
from generator.protocols import FingerprintedModel, SteppableModel
from generator.results import model_attributes
from generator.validation import positive_int

from .ensemble import DEFAULT_MEMORY_BUDGET, EnsembleForecast, Statistic
from .netcdf import (
    CHECKSUM_VARIABLE,
    RECORD_DIMENSION,
    CorruptFileError,
    NetCDFWriter,
    OutputLock,
    VariableSpec,
    verify_file,
)
from .sampling import Correlation, sample_errors

__all__ = [
    "Background",
    "build_dataset",
    "build_fingerprint",
    "callable_fingerprint",
    "ensemble_seed",
    "open_training_set",
    "rollout_samples",
]

Background = Callable[[np.random.Generator, FingerprintedModel], Mapping[str, np.ndarray]]
"""``background(rng, model) -> {field: grid array}``: the random background of one ensemble."""

NEXT_SUFFIX = "_next"
#: The statistics a training set keeps (the PKF fields in diffusion form): only these are
#: computed from each ensemble's moments.
TRAINING_STATISTICS: tuple[Statistic, ...] = ("mean", "variance", "diffusion", "cross")
RECORD_DIM = "sample"
#: Global attribute listing the attributes that make up a training set's build fingerprint.
FINGERPRINT_KEYS = "fingerprint_keys"
#: Global attribute: SHA-256 of the fingerprint (equal for files built alike).
FINGERPRINT_SHA256 = "fingerprint_sha256"
#: Per-record variables that label a sample (CF auxiliary coordinates of every statistic).
SAMPLE_LABELS = ("time", "step", "ensemble")


def ensemble_seed(seed: int, ensemble: int) -> np.random.SeedSequence:
    """Seed of ensemble ``ensemble``: child ``ensemble`` of ``SeedSequence(seed).spawn``.

    It depends only on ``(seed, ensemble)``, so a resumed build draws the same numbers.

    Examples
    --------
    >>> a = np.random.default_rng(ensemble_seed(1, 3)).random()
    >>> b = np.random.default_rng(np.random.SeedSequence(1).spawn(4)[3]).random()
    >>> a == b
    True
    """
    return np.random.SeedSequence(int(seed), spawn_key=(int(ensemble),))


def callable_fingerprint(obj: object) -> str:
    """A stable hash of what a callable (or a value) computes, for build fingerprints.

    Functions are hashed by their bytecode, constants, names used, default arguments and closure
    values (recursively: closures of closures, ``functools.partial`` arguments, bound methods'
    instances, callable objects' attributes); numpy arrays by dtype, shape and bytes; plain
    values by ``repr``. The file and line where a function is defined do not count, so moving
    it does not change its hash; editing its code, its docstring or a closure value does.

    An object may state its own fingerprint with a ``fingerprint`` attribute: a string, a
    mapping, or a method returning one (generated models do); it is used instead, as is (a
    mapping as sorted JSON). So a wrapper that computes what ``f`` computes can say so with
    ``wrapper.fingerprint = callable_fingerprint(f)``.

    Limits: globals a function reads (module constants, other functions it calls) are not
    followed, so a callable whose result changes with mutable global state is not detected;
    bytecode differs between Python versions, so a file built under another Python refuses a
    resume; objects without code or attributes to hash (e.g. a ``numpy.random.Generator``
    captured in a closure) raise ``TypeError``: give them a ``fingerprint`` attribute.

    Returns
    -------
    str
        ``"sha256:<64 hex digits>"``, or the object's own fingerprint.

    Raises
    ------
    TypeError
        If ``obj`` (or something it captures) cannot be hashed stably.

    Examples
    --------
    >>> def scaled(k):
    ...     return lambda x: k * x
    >>> callable_fingerprint(scaled(2)) == callable_fingerprint(scaled(2))
    True
    >>> callable_fingerprint(scaled(2)) == callable_fingerprint(scaled(3))
    False
    """
    own = _own_fingerprint(obj)
    if own is not None:
        return own
    description = _describe(obj, set())
    return "sha256:" + hashlib.sha256(description.encode()).hexdigest()


def _own_fingerprint(obj: object) -> str | None:
    """The fingerprint an object states itself (``fingerprint`` attribute or method), if any."""
    own = None if isinstance(obj, type) else getattr(obj, "fingerprint", None)
    if own is None:
        return None
    value = own() if callable(own) else own
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _describe(obj: object, active: set[int]) -> str:
    own = _own_fingerprint(obj)
    if own is not None:
        return f"custom:{own}"
    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        return f"{type(obj).__name__}:{obj!r}"
    if isinstance(obj, np.ndarray | np.generic):
        array = np.ascontiguousarray(obj)
        digest = hashlib.sha256(array.tobytes()).hexdigest()
        return f"array:{array.dtype.str}:{array.shape}:{digest}"
    if id(obj) in active:
        return "recursive"
    active.add(id(obj))
    try:
        return _describe_container(obj, active)
    finally:
        active.discard(id(obj))


def _describe_container(obj: object, active: set[int]) -> str:
    def inner(value: object) -> str:
        return _describe(value, active)

    if isinstance(obj, list | tuple):
        return f"{type(obj).__name__}[{','.join(map(inner, obj))}]"
    if isinstance(obj, set | frozenset):
        return f"set[{','.join(sorted(map(inner, obj)))}]"
    if isinstance(obj, Mapping):
        items = sorted(f"{inner(k)}={inner(v)}" for k, v in obj.items())
        return f"mapping[{','.join(items)}]"
    if isinstance(obj, functools.partial):
        return f"partial({inner(obj.func)},{inner(obj.args)},{inner(obj.keywords)})"
    if isinstance(obj, types.MethodType):
        return f"method({inner(obj.__func__)},{inner(obj.__self__)})"
    if isinstance(obj, types.FunctionType):
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(inner(cell.cell_contents))
            except ValueError:  # an empty cell
                cells.append("empty")
        return (
            f"function({_describe_code(obj.__code__, active)},{inner(obj.__defaults__)},"
            f"{inner(obj.__kwdefaults__)},[{','.join(cells)}])"
        )
    if isinstance(obj, type | types.ModuleType | types.BuiltinFunctionType | np.ufunc):
        module = getattr(obj, "__module__", None) or ""
        name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "")
        return f"{type(obj).__name__}:{module}.{name}"
    state = getattr(obj, "__dict__", None)
    if state is not None:
        call = next((vars(c)["__call__"] for c in type(obj).__mro__ if "__call__" in vars(c)), None)
        code = inner(call) if isinstance(call, types.FunctionType) else ""
        return f"object:{inner(type(obj))}:{code}:{inner(dict(state))}"
    raise TypeError(
        f"cannot fingerprint a {type(obj).__name__} stably; give it a 'fingerprint' attribute "
        "(a string, or a method returning one) that changes whenever what it computes changes"
    )


def _describe_code(code: types.CodeType, active: set[int]) -> str:
    constants = ",".join(
        _describe_code(c, active) if isinstance(c, types.CodeType) else _describe(c, active)
        for c in code.co_consts
    )
    # __future__ compiler flags (bits above 0xFFFF) say how the source was compiled, not what
    # the code computes: the same function exec'd under another module's futures is the same.
    return (
        f"code({code.co_argcount},{code.co_kwonlyargcount},{code.co_flags & 0xFFFF},"
        f"{code.co_code.hex()},{code.co_names},[{constants}])"
    )


def _value_fingerprint(value: Any) -> str | float:
    """A build argument as a fingerprint value: a float, per-axis floats, an array hash or a
    callable's hash."""
    if callable(value):
        return callable_fingerprint(value)
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return float(array)
    if array.ndim == 1 and array.size <= 3:
        return " ".join(repr(float(v)) for v in array)
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    return f"array shape {array.shape} sha256:{digest}"


def _canonical(value: object) -> str:
    """The comparable text of a setting, as requested or as read back from an attribute."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def build_fingerprint(
    model: FingerprintedModel,
    forecast: EnsembleForecast,
    *,
    steps: int,
    window: tuple[int, int],
    seed: int,
    dt: float,
    error_variance: Mapping[str, Any],
    correlation: Mapping[str, Any],
    background: Background,
) -> dict[str, str | int | float]:
    """Everything that determines a training set's numbers, as global attributes.

    The model's attributes and fingerprint (:func:`generator.results.model_attributes`,
    ``GeneratedModel.fingerprint()``: class, equations, generated source hash, grid, dtype, time
    scheme, stencil accuracy, hash of every constant / constant field / trainable value and
    closure weights), its time and length units, the build arguments (``ensemble_size``,
    ``steps``, ``window_first``/``window_stop``, ``seed``, ``dt``, ``error_variance_<field>``,
    ``correlation_<field>`` as values, array hashes or callable hashes, ``background`` by
    :func:`callable_fingerprint`), the member chunks actually used (``chunk_sizes``: chunking
    changes the rounding of the merged moments) and the pkfnet version. The number of
    ensembles is not part of it: a file grows to any larger ``ensembles`` with the same numbers
    as a fresh build. The device (``compute_device``: CPU or GPU) and the numpy, TensorFlow and
    Keras versions are recorded too, as each can change the rounding of the results.

    Parameters
    ----------
    model : generator.FingerprintedModel
        The model of the dynamics (e.g. a ``GeneratedModel``).
    forecast : EnsembleForecast
        The ensemble runner (members and chunking).
    steps, window, seed, dt
        As for :func:`build_dataset`.
    error_variance, correlation : mapping of str to value
        Per prognostic field.
    background : Background
        The background sampler.

    Returns
    -------
    dict
        ``{attribute name: str, int or float}`` in a fixed order.
    """
    first, stop = window
    attributes = model_attributes(model)
    settings: dict[str, str | int | float] = dict(attributes)
    for key, value in model.fingerprint().items():
        name = key if key in attributes or key.startswith("model") else f"model_{key}"
        if name in settings and _canonical(settings[name]) != _canonical(value):
            name = f"model_{key}"
        settings.setdefault(name, value)
    for name, units in (("time_units", model.time_units), ("length_units", model.length_units)):
        if units:
            settings[name] = str(units)
    settings.update(
        ensemble_size=int(forecast.members),
        steps=int(steps),
        window_first=int(first),
        window_stop=int(stop),
        seed=int(seed),
        dt=float(dt),
    )
    for field in model.prognostic_functions:
        settings[f"error_variance_{field}"] = _value_fingerprint(error_variance[field])
        settings[f"correlation_{field}"] = _value_fingerprint(correlation[field])
    settings["background"] = callable_fingerprint(background)
    settings["chunk_sizes"] = " ".join(map(str, forecast.chunk_sizes(stop - first + 1)))
    settings["compute_device"] = _compute_device()
    settings["pkfnet_version"] = package_version()
    for library in ("numpy", "tensorflow", "keras"):
        settings[f"{library}_version"] = _library_version(library)
    return settings


def _compute_device() -> str:
    """``"GPU"`` when TensorFlow sees one (the ensembles run there), else ``"CPU"``: XLA on
    either rounds differently."""
    import tensorflow as tf

    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def _library_version(name: str) -> str:
    for distribution in (name, f"{name}-cpu"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def _fingerprint_attributes(settings: Mapping[str, object]) -> dict[str, str]:
    canonical = {key: _canonical(value) for key, value in settings.items()}
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    return {FINGERPRINT_KEYS: " ".join(settings), FINGERPRINT_SHA256: digest}


def _differences(stored: Mapping[str, object], settings: Mapping[str, object]) -> list[str]:
    keys = list(settings)
    keys += [k for k in str(stored.get(FINGERPRINT_KEYS, "")).split() if k not in settings]

    def show(value: object) -> str:
        if value is None:
            return "(absent)"
        text = _canonical(value)
        return repr(text if len(text) <= 90 else text[:87] + "...")

    differences = []
    for key in keys:
        old, new = stored.get(key), settings.get(key)
        if (old is None) != (new is None) or _canonical(old) != _canonical(new):
            differences.append(f"{key}: stored {show(old)}, requested {show(new)}")
    return differences


def _per_field(value: Any, fields: tuple[str, ...], name: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        if set(value) != set(fields):
            raise ValueError(f"{name}: expected one entry per field {fields}, got {tuple(value)}")
        return dict(value)
    return {field: value for field in fields}


def _statistic_names(model: SteppableModel) -> list[str]:
    """Names of the statistics stored per step (as in ``EnsembleResult.to_dataset``)."""
    coords = tuple(model.coordinates)
    fields = tuple(model.prognostic_functions)
    names = []
    for field in fields:
        names += [field, f"V_{field}"]
        names += [
            f"nu_{field}_{coords[i]}{coords[j]}"
            for i in range(len(coords))
            for j in range(i, len(coords))
        ]
    names += [f"V_{a}{b}" for a, b in combinations(fields, 2)]
    return names


def build_dataset(
    path: str | os.PathLike,
    model: FingerprintedModel,
    *,
    ensembles: int,
    members: int,
    background: Background,
    error_variance: float | ArrayLike | Mapping[str, float | ArrayLike],
    correlation: float | Correlation | Mapping[str, float | Correlation],
    dt: float,
    steps: int,
    window: tuple[int, int],
    seed: int,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = True,
    client: Any = None,
) -> Path:
    """Build, resume or extend a dataset of consecutive-step PKF statistics from K ensembles.

    Ensemble ``e`` (``0 <= e < ensembles``) draws, from ``ensemble_seed(seed, e)``, a background
    ``background(rng, model)`` and then ``members`` error fields per prognostic field
    (:func:`pkf.sampling.sample_errors`, prescribed variance and homogeneous correlation). The
    members are integrated ``steps`` steps of ``dt`` by :class:`EnsembleForecast`; for each step
    ``k`` with ``window[0] <= k < window[1]`` one sample holds the statistics at step ``k``
    (variables ``u``, ``V_u``, ``nu_u_xx``, ... and ``V_uv`` for field pairs, named as in
    ``EnsembleResult.to_dataset()``, grid in CF order) and at step ``k + 1`` (the same names
    with suffix ``_next``), labelled by ``ensemble``, ``step`` and ``time`` (model time of step
    ``k``) along the record dimension ``sample``. The model's constants (0-d) and constant
    fields are stored once. The samples of an ensemble are appended as one atomic, checksummed
    block (:class:`pkf.netcdf.NetCDFWriter`).

    Rerunning is safe:

    * an exclusive lock (``PATH.lock``) refuses a second concurrent build of ``path``
      (:class:`pkf.netcdf.OutputLockedError`, naming the holder's PID);
    * the stored build fingerprint (:func:`build_fingerprint`) must match the requested one,
      else ``ValueError`` names every differing setting with its stored and requested value;
    * every record the file claims is verified (present, checksums); if some fail (a truncated
      file, a claim beyond the data, flipped bytes), a ``RuntimeWarning`` names them and the
      build restarts from the last ensemble whose records all verify, recomputing the rest
      (the same numbers: ensembles depend only on their seed);
    * a file holding fewer ensembles than ``ensembles`` (interrupted, or built with a smaller
      K) is completed or extended to exactly the file a fresh build would give; one holding
      more is refused (nothing is removed).

    Parameters
    ----------
    path : path-like
        netCDF output (classic 64-bit offset format, CF-1.8); read it with
        :func:`open_training_set`.
    model : generator.FingerprintedModel
        Generated model of the dynamics (grid, dtype and constants already set), or any object
        with the members of :class:`generator.protocols.FingerprintedModel`.
    ensembles : int
        Number of independent ensembles ``K``.
    members : int
        Members per ensemble ``N`` (attribute ``ensemble_size``).
    background : Background
        ``background(rng, model) -> {field: grid array}``, e.g.
        :func:`cases.burgers.burgers_background`;
        part of the fingerprint through :func:`callable_fingerprint`.
    error_variance : float, array or mapping
        Initial error variance per field (scalar or grid-shaped, field units squared).
    correlation : float, Correlation or mapping
        Initial error correlation per field (Gaussian length-scale or a correlation function,
        see :func:`pkf.sampling.sample_errors`).
    dt : float
        Time step (model time units).
    steps : int
        Steps integrated per ensemble (``>= window[1]``).
    window : (int, int)
        ``(first, stop)``: samples pair steps ``k`` and ``k + 1`` for ``first <= k < stop``.
    seed : int
        Root seed.
    memory_budget : int, default 1 GiB
        Passed to :class:`EnsembleForecast`; the member chunks it gives are part of the
        fingerprint.
    progress : bool, default True
        tqdm progress bar over ensembles.
    client : distributed.Client or str, optional
        Compute the ensembles as Dask tasks on this cluster (or the scheduler at this address),
        a few per worker in flight; they are written here in ensemble order (ensembles that
        finish early wait), so the file holds the same data as a serial build; an interrupted
        distributed build resumes like a serial one, and a task lost with its worker is rerun
        by Dask with the same seed. Default: in this process.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    pkf.netcdf.OutputLockedError
        Another process is building ``path``.
    TypeError
        ``background`` or a correlation function cannot be fingerprinted (see
        :func:`callable_fingerprint`); nothing is written.
    ValueError
        Invalid arguments; ``path`` built with other settings, holding more ensembles than
        requested, or not a training set.
    pkf.netcdf.CorruptFileError
        A coordinate or constant of the file fails its checksum (remove the file to rebuild).
    OSError
        Writing failed (``errno.ENOSPC``: disk full): the file keeps its verified ensembles;
        free space and rerun to resume.

    Examples
    --------
    The paper's Burgers training set (400 ensembles x 400 members, steps 400 -> 500, 40 000
    samples)::

        build_dataset("burgers.nc", burgers, ensembles=400, members=400,
                      background=burgers_background(),  # from cases.burgers
                      error_variance=0.005**2,
                      correlation=0.02, dt=0.002, steps=500, window=(400, 500), seed=0)
        samples = open_training_set("burgers.nc")
    """
    path = Path(path)
    fields = tuple(model.prognostic_functions)
    first, stop = (int(k) for k in window)
    if not 0 <= first < stop <= steps:
        raise ValueError(
            f"window: expected 0 <= first < stop <= steps = {steps}, got ({first}, {stop})"
        )
    if ensembles < 1 or members < 2:
        raise ValueError(
            f"ensembles >= 1 and members >= 2 required, got ensembles={ensembles}, "
            f"members={members}"
        )
    variances = _per_field(error_variance, fields, "error_variance")
    correlations = _per_field(correlation, fields, "correlation")
    pairs = stop - first
    if client is not None:
        from .cluster import connect

        client = connect(client)
    forecast = EnsembleForecast(model, members, memory_budget=memory_budget, progress=False)
    settings = build_fingerprint(
        model,
        forecast,
        steps=steps,
        window=(first, stop),
        seed=seed,
        dt=dt,
        error_variance=variances,
        correlation=correlations,
        background=background,
    )
    times = np.arange(steps + 1) * float(dt)
    saved = times[first : stop + 1]
    names = _statistic_names(model)
    grid_dims = cf_grid_order(model.coordinates)
    with OutputLock(path) as lock:
        writer = _resume(path, lock, settings, pairs, ensembles) if path.exists() else None
        # One helper thread draws ensemble e + 1 and appends ensemble e - 1 (checksums, fsync)
        # while ensemble e is integrated; blocks stay in order and at most one is pending, so
        # an interruption loses at most the ensemble being computed and never leaves a block
        # half counted.
        pending: Future | None = None
        try:
            done = writer.n_records // pairs if writer is not None else 0
            with (
                tqdm(
                    total=ensembles,
                    initial=done,
                    desc=f"dataset {path.name}",
                    unit="ensemble",
                    disable=not progress,
                ) as bar,
                ThreadPoolExecutor(1, thread_name_prefix="pkfnet-dataset") as executor,
            ):
                draw = functools.partial(
                    _draw_members,
                    seed=seed,
                    background=background,
                    members=members,
                    variances=variances,
                    correlations=correlations,
                )
                if client is None:
                    stream = _statistics_in_process(executor, forecast, draw, times, saved)
                else:
                    from .cluster import dataset_statistics

                    stream = dataset_statistics(client, forecast, draw, times, saved)
                for ensemble, statistics in stream(range(done, ensembles)):
                    if writer is None:
                        writer = _create(path, lock, model, statistics, names, settings, pairs)
                    data = _samples(statistics, names, grid_dims, ensemble, first, stop)
                    if pending is not None:
                        pending.result()  # the previous block is on disk (or its error raises)
                        bar.update(1)
                    records = np.arange(pairs) + ensemble * pairs
                    pending = executor.submit(writer.append_records, records, data)
                if pending is not None:
                    pending.result()
                    bar.update(1)
                    pending = None
        finally:
            if pending is not None:
                # Interrupted while a block was being written: let it finish (it is counted
                # only once complete), then close.
                wait([pending])
            if writer is not None:
                writer.close()
    return path


def _resume(
    path: Path, lock: OutputLock, settings: Mapping[str, object], pairs: int, ensembles: int
) -> NetCDFWriter:
    """Open an existing training set to resume it: same fingerprint, verified records only."""
    try:
        writer = NetCDFWriter.open(path, lock=lock, verify=False)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path} exists but is not a resumable training set ({error}); remove it or choose "
            "another path"
        ) from error
    try:
        stored = writer.attributes
        if FINGERPRINT_KEYS not in stored or writer.record_dim != RECORD_DIM:
            raise ValueError(
                f"{path} exists but has no build fingerprint: it was not written by this "
                "version of build_dataset; remove it or choose another path"
            )
        differences = _differences(stored, settings)
        if differences:
            raise ValueError(
                f"{path} was built with other settings than requested, so resuming it would mix "
                f"ensembles computed differently: {'; '.join(differences)}. Rerun with the "
                "stored settings to resume or extend it, or build into another path"
            )
        verification = writer.verify()
        if verification.static_problems:
            raise CorruptFileError(verification, "Remove the file and build it anew")
        keep = verification.verified // pairs * pairs
        if keep < writer.n_records:
            warnings.warn(
                f"{path}: {verification.describe()}; rebuilding from ensemble {keep // pairs} "
                f"(record {keep}): the records from there on are recomputed",
                RuntimeWarning,
                stacklevel=3,
            )
            writer.truncate(keep)
        if keep // pairs > ensembles:
            raise ValueError(
                f"{path} holds {keep // pairs} complete ensembles, more than the "
                f"ensembles={ensembles} requested; nothing to do: read it with "
                "open_training_set (and select ensembles), or build into another path"
            )
    except BaseException:
        writer.close()
        raise
    return writer


def _create(
    path: Path,
    lock: OutputLock,
    model: SteppableModel,
    statistics: xr.Dataset,
    names: list[str],
    settings: Mapping[str, Any],
    pairs: int,
) -> NetCDFWriter:
    """Create the training set with the variables and constants of one ensemble's statistics."""
    grid_dims = cf_grid_order(model.coordinates)
    missing = [name for name in names if name not in statistics]
    if missing:
        raise RuntimeError(f"EnsembleResult.to_dataset() lacks the statistics {missing}")
    labels = " ".join(SAMPLE_LABELS)
    variables = []
    for name in names:
        attrs = statistics[name].attrs
        for suffix, when in (("", "at step k"), (NEXT_SUFFIX, "at step k + 1")):
            variables.append(
                VariableSpec(
                    name + suffix,
                    str(attrs.get("units", "1")),
                    f"{attrs.get('long_name', name)} {when}",
                    grid_dims,
                    attributes={"coordinates": labels},
                )
            )
    time_attrs = time_attributes(model.time_units)
    variables += [
        VariableSpec(
            "time",
            time_attrs["units"],
            time_attrs["long_name"].replace("model time", "model time of step k"),
            (),
            standard_name=time_attrs.get("standard_name"),
            attributes={k: v for k, v in time_attrs.items() if k == "calendar"},
        ),
        VariableSpec("step", "1", "time step index k of the sample", (), dtype="i4"),
        VariableSpec(
            "ensemble", "1", "ensemble number e (seeded by child e of the root seed)", (), "i4"
        ),
    ]
    static = [
        (
            VariableSpec(
                str(name),
                str(array.attrs.get("units", "1")),
                str(array.attrs.get("long_name", name)),
                tuple(str(d) for d in array.dims),
            ),
            array.values,
        )
        for name, array in statistics.data_vars.items()
        if "time" not in array.dims
    ]
    attributes = {k: v for k, v in settings.items() if k not in ("equations", "dt", "seed")}
    attributes.update(_fingerprint_attributes(settings))
    attributes.update(
        samples_per_ensemble=int(pairs),
        variance_estimator=str(statistics.attrs.get("variance_estimator", "")),
        metric_estimator=str(statistics.attrs.get("metric_estimator", "")),
    )
    return NetCDFWriter.create(
        path,
        variables,
        {name: statistics[name].values for name in grid_dims},
        equations=str(settings["equations"]),
        dt=float(settings["dt"]),
        seed=settings["seed"],
        title="pkfnet PKF training set: ensemble statistics at consecutive steps k, k + 1",
        record_dim=RECORD_DIM,
        record_units="1",
        record_dtype="i4",
        coord_units=model.length_units or "1",
        periodic=[
            dict(
                zip(
                    model.coordinates,
                    getattr(model, "periodic_axes", (True,) * len(model.coordinates)),
                    strict=True,
                )
            )[d]
            for d in grid_dims
        ],
        static=static,
        attributes=attributes,
        lock=lock,
    )


def _initial_members(
    model: FingerprintedModel,
    rng: np.random.Generator,
    background: Background,
    members: int,
    variances: Mapping[str, Any],
    correlations: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    values = background(rng, model)
    fields = tuple(model.prognostic_functions)
    if not isinstance(values, Mapping) or set(values) != set(fields):
        raise ValueError(f"background: expected a mapping of the fields {fields}")
    initial = {}
    for field in fields:
        base = np.asarray(values[field], dtype=float)
        if base.shape != tuple(model.shape):
            raise ValueError(
                f"background[{field!r}]: expected grid shape {model.shape}, got {base.shape}"
            )
        errors = sample_errors(
            model.shape,
            model.lengths,
            members,
            correlation=correlations[field],
            variance=variances[field],
            seed=rng,
        )
        initial[field] = base + errors
    return initial


def _draw_members(
    model: FingerprintedModel,
    ensemble: int,
    *,
    seed: int,
    background: Background,
    members: int,
    variances: Mapping[str, Any],
    correlations: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """The initial members of ensemble ``ensemble`` (from its own seed only); picklable as a
    ``functools.partial`` of everything but the model, for Dask workers."""
    rng = np.random.default_rng(ensemble_seed(seed, ensemble))
    return _initial_members(model, rng, background, members, variances, correlations)


def _statistics_in_process(
    executor: ThreadPoolExecutor,
    forecast: EnsembleForecast,
    draw: Callable[[Any, int], dict[str, np.ndarray]],
    times: np.ndarray,
    saved: np.ndarray,
) -> Callable[[range], Iterator[tuple[int, xr.Dataset]]]:
    """Each ensemble's training statistics, in order, computed here; the next ensemble's
    members are drawn by the helper thread while one is integrated."""

    def stream(ensembles: range) -> Iterator[tuple[int, xr.Dataset]]:
        model = forecast.model
        upcoming = executor.submit(draw, model, ensembles[0]) if ensembles else None
        for ensemble in ensembles:
            assert upcoming is not None
            initial = upcoming.result()
            later = ensemble + 1
            upcoming = executor.submit(draw, model, later) if later < ensembles.stop else None
            result = forecast.run(times, initial, saved_times=saved)
            yield ensemble, result.to_dataset(statistics=TRAINING_STATISTICS)

    return stream


def _samples(
    statistics: xr.Dataset,
    names: list[str],
    grid_dims: tuple[str, ...],
    ensemble: int,
    first: int,
    stop: int,
) -> dict[str, np.ndarray]:
    data = {}
    for name in names:
        values = statistics[name].transpose("time", *grid_dims).values
        data[name] = values[:-1]
        data[name + NEXT_SUFFIX] = values[1:]
    data["time"] = statistics["time"].values[:-1]
    data["step"] = np.arange(first, stop, dtype=np.int32)
    data["ensemble"] = np.full(stop - first, ensemble, dtype=np.int32)
    return data


def open_training_set(
    path: str | os.PathLike, *, on_corrupt: Literal["raise", "drop"] = "raise"
) -> xr.Dataset:
    """The verified samples of a training set written by :func:`build_dataset`.

    Every record the file claims is verified first (:func:`pkf.netcdf.verify_file`: present,
    CRC-32 of each variable); records beyond the claim (a block being written) are left out.

    Parameters
    ----------
    path : path-like
        The training set.
    on_corrupt : {"raise", "drop"}, default "raise"
        What to do when claimed records fail verification: raise, or warn and return only the
        records that verify.

    Returns
    -------
    xarray.Dataset
        In memory (the file is closed). Statistics ``(sample, *grid)`` (grid in CF order, e.g.
        ``(sample, y, x)``) named ``u``, ``V_u``, ``nu_u_xx``, ``V_uv`` ... and ``*_next``; the
        coordinates ``sample``, ``time``, ``step``, ``ensemble`` along ``sample``; grid
        coordinates; the model's constants and constant fields; the build fingerprint and
        provenance as attributes.

    Raises
    ------
    pkf.netcdf.CorruptFileError
        Claimed records fail verification (``on_corrupt="raise"``), naming records and
        variables; or a coordinate or constant fails its checksum (always).
    ValueError
        ``path`` is not a training set.
    OSError
        ``path`` cannot be read as netCDF.

    Examples
    --------
    >>> samples = open_training_set("burgers.nc")  # doctest: +SKIP
    >>> samples["V_u_next"].sel(sample=samples.ensemble == 3)  # doctest: +SKIP
    """
    path = Path(path)
    if on_corrupt not in ("raise", "drop"):
        raise ValueError(f"on_corrupt: expected 'raise' or 'drop', got {on_corrupt!r}")
    verification = verify_file(path)
    if verification.static_problems:
        raise CorruptFileError(verification, "Remove the file and rebuild it with build_dataset")
    if verification.problems:
        if on_corrupt == "raise":
            raise CorruptFileError(
                verification,
                "Rerun build_dataset with the same settings to recompute them, or pass "
                "on_corrupt='drop' to read only the records that verify",
            )
        warnings.warn(
            f"{path}: {verification.describe()}; these records are left out",
            RuntimeWarning,
            stacklevel=2,
        )
    keep = np.array(
        [k for k in range(verification.claimed) if k not in verification.problems], dtype=int
    )
    with xr.open_dataset(
        path, mask_and_scale=False, decode_times=False, decode_timedelta=False
    ) as raw:
        if FINGERPRINT_KEYS not in raw.attrs:
            raise ValueError(f"{path}: not a training set written by build_dataset")
        record_dim = str(raw.attrs[RECORD_DIMENSION])
        dataset = raw.drop_vars(CHECKSUM_VARIABLE).isel({record_dim: keep}).load()
    for variable in dataset.variables.values():
        variable.attrs.pop("_FillValue", None)
        variable.encoding.pop("_FillValue", None)
    return dataset


def rollout_samples(
    samples: xr.Dataset, fields: Sequence[str], steps: int, stride: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """k-step rollout training pairs from the one-step samples of a training set.

    Each ensemble's samples are sorted by ``step`` and cut into sequences of ``steps``
    consecutive steps starting every ``stride`` steps: the input is the state at the first
    step, the targets the ``steps`` following states (the ``*_next`` values).

    Parameters
    ----------
    samples : xarray.Dataset
        From :func:`open_training_set` (coordinates ``ensemble`` and ``step`` along ``sample``).
    fields : the prognostic fields of the model to train.
    steps, stride : sequence length and spacing of the sequence starts, in steps.

    Returns
    -------
    inputs, targets : dict of str to numpy.ndarray
        ``inputs[f]`` ``(sequences, *grid)``, ``targets[f]`` ``(sequences, steps, *grid)``,
        grid in model coordinate order (for :func:`generator.train.fit_rollout`).

    Raises
    ------
    ValueError
        If some ensemble lacks ``steps`` consecutive steps.
    """
    steps = positive_int(steps, "steps")
    stride = positive_int(stride, "stride")
    ensemble = np.asarray(samples["ensemble"].values)
    step = np.asarray(samples["step"].values)
    order = np.lexsort((step, ensemble))
    count, length = len(np.unique(ensemble)), len(np.unique(step))
    if count * length != len(order) or length < steps:
        raise ValueError(
            f"samples: need {steps} consecutive steps for every ensemble; got {len(order)} "
            f"samples for {count} ensembles x {length} steps"
        )
    if np.any(np.diff(step[order].reshape(count, length), axis=1) != 1):
        raise ValueError("samples: the steps of an ensemble are not consecutive")
    record_dim = samples[fields[0]].dims[0]
    grid_dims = [d for d in samples[fields[0]].dims if d != record_dim]
    model_order = [record_dim, *reversed(grid_dims)] if len(grid_dims) > 1 else None
    starts = np.arange(0, length - steps + 1, stride)
    inputs, targets = {}, {}
    for f in fields:
        now, after = samples[f], samples[f"{f}{NEXT_SUFFIX}"]
        if model_order is not None:
            now, after = now.transpose(*model_order), after.transpose(*model_order)
        current = now.values[order].reshape(count, length, *now.shape[1:])
        following = after.values[order].reshape(count, length, *after.shape[1:])
        inputs[f] = current[:, starts].reshape(-1, *current.shape[2:])
        windows = np.stack([following[:, starts + j] for j in range(steps)], axis=2)
        targets[f] = windows.reshape(-1, steps, *current.shape[2:])
    return inputs, targets
