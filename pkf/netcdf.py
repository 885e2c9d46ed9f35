"""CF netCDF files written record by record, resumable, locked and verifiable.

:class:`NetCDFWriter` appends records (times or samples) along an unlimited dimension. Each record
carries a CRC-32 of every record variable (``record_checksum``), the record count
``complete_records`` is advanced only once the data are on disk (``sync`` then ``fsync``), and one
writer at a time holds ``PATH.lock`` (:class:`OutputLock`). :func:`verify_file` checks every record
a file claims; :func:`read_netcdf` reads the complete, verified records back as numpy arrays.
"""

from __future__ import annotations

import errno
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import filelock
import netCDF4
import numpy as np
from numpy.typing import ArrayLike

from generator.conventions import (
    MEMBER_DIM,
    coordinate_attributes,
    global_attributes,
    member_attributes,
    package_version,
    time_attributes,
)

__all__ = [
    "CorruptFileError",
    "NetCDFFormat",
    "NetCDFWriter",
    "OutputLock",
    "OutputLockedError",
    "VariableSpec",
    "Verification",
    "package_version",
    "read_attributes",
    "read_netcdf",
    "verify_file",
]

COMPLETE_RECORDS = "complete_records"
RECORD_DIMENSION = "record_dimension"
#: Record variable ``(record, checksummed_variable)`` holding one CRC-32 per record and variable.
CHECKSUM_VARIABLE = "record_checksum"
CHECKSUM_DIM = "checksummed_variable"
#: Attribute holding the CRC-32 (8 hex digits) of a non-record variable (coordinates, constants).
CHECKSUM_ATTRIBUTE = "checksum_crc32"
LOCK_SUFFIX = ".lock"
NetCDFFormat = Literal[
    "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA", "NETCDF3_CLASSIC", "NETCDF4", "NETCDF4_CLASSIC"
]
"""A netCDF file format (the formats of ``netCDF4.Dataset``)."""
DEFAULT_FORMAT: NetCDFFormat = "NETCDF3_64BIT_OFFSET"
_MANAGED_ATTRIBUTES = {RECORD_DIMENSION, COMPLETE_RECORDS}
_VERIFY_BLOCK = 512  # records read at a time when verifying


@dataclass(frozen=True)
class VariableSpec:
    """A variable of a :class:`NetCDFWriter` file.

    Attributes
    ----------
    name : str
        Variable name, e.g. ``"V_u"``.
    units : str
        CF units string (``"1"`` for dimensionless, ``"m2 s-2"`` ...).
    long_name : str
        Human-readable description.
    dims : tuple of str
        Dimensions of one record (record variables) or of the variable (static variables),
        without the record dimension: grid dims, ``"member"`` and extra dims declared at
        creation, e.g. ``("member", "x")``. CF readers expect grid dims in the order of
        :func:`generator.conventions.cf_grid_order` (``..., y, x``).
    dtype : str
        netCDF type, ``"f8"`` by default.
    standard_name : str or None
        CF standard name, when one exists.
    attributes : mapping of str to str, optional
        Further variable attributes (e.g. ``{"coordinates": "time step"}``).
    """

    name: str
    units: str
    long_name: str
    dims: tuple[str, ...] = ("x",)
    dtype: str = "f8"
    standard_name: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


class CorruptFileError(ValueError):
    """Records or variables of a file fail verification (missing, unreadable or altered).

    Attributes
    ----------
    path : pathlib.Path
        The file.
    verification : Verification
        What was found (:attr:`Verification.problems`, :attr:`Verification.static_problems`).
    """

    def __init__(self, verification: Verification, advice: str = "") -> None:
        self.path = verification.path
        self.verification = verification
        message = f"{verification.path}: {verification.describe()}"
        super().__init__(message + (f". {advice}" if advice else ""))


class OutputLockedError(RuntimeError):
    """Another writer holds the lock of an output file.

    Attributes
    ----------
    path : pathlib.Path
        The output file.
    pid : int or None
        Process id of the holder, when the system tells it (Linux ``/proc/locks``).
    """

    def __init__(self, path: Path, lock_path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"{path} is being written by {holder} (lock {lock_path} is held); wait for it to "
            "finish or stop it, then rerun to resume; two writers of one file would corrupt it"
        )


class OutputLock:
    """Exclusive, non-blocking lock of an output file: ``PATH.lock`` beside it (``filelock``).

    The lock is an ``flock`` on the lock file, so the system releases it when its holder exits,
    even by SIGKILL; the lock file itself stays (it is empty and harmless). A second writer, in
    this process or another, is refused at once with :class:`OutputLockedError` naming the path
    and, on Linux, the holder's PID.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "out.nc"
    >>> with OutputLock(path):
    ...     OutputLock(path).acquire()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pkf.netcdf.OutputLockedError: ...
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + LOCK_SUFFIX)
        self._lock = filelock.FileLock(str(self.lock_path), timeout=0)

    @property
    def is_locked(self) -> bool:
        """Whether this object holds the lock."""
        return bool(self._lock.is_locked)

    def acquire(self) -> OutputLock:
        """Take the lock now or raise :class:`OutputLockedError` (never waits)."""
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise OutputLockedError(
                self.path, self.lock_path, _lock_holder(self.lock_path)
            ) from None
        return self

    def release(self) -> None:
        """Release the lock (idempotent)."""
        while self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _lock_holder(lock_path: Path) -> int | None:
    """PID holding an ``flock`` on ``lock_path`` according to ``/proc/locks`` (Linux), else None."""
    try:
        status = lock_path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    for line in table.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == device:
            try:
                return int(parts[4])
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_file` found in a file.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    claimed : int
        Records the file claims complete (``complete_records``).
    on_disk : int
        Records the header's record dimension holds.
    problems : mapping of int to tuple of str
        Claimed records that fail, with the variables that fail in each (all of them for a
        record absent from the file). Empty when every claimed record verifies.
    static_problems : tuple of str
        Non-record variables (coordinates, constants) whose checksum does not match.
    checksummed : bool
        Whether the file has checksums (files written before them can only be checked for
        presence).
    """

    path: Path
    claimed: int
    on_disk: int
    problems: Mapping[int, tuple[str, ...]]
    static_problems: tuple[str, ...] = ()
    checksummed: bool = True

    @property
    def ok(self) -> bool:
        """Whether every claimed record and every static variable verifies."""
        return not self.problems and not self.static_problems

    @property
    def verified(self) -> int:
        """Length of the verified prefix: records ``[0, verified)`` all verify."""
        return min(self.problems, default=self.claimed)

    def describe(self) -> str:
        """One sentence per kind of problem, records grouped in runs (for error messages)."""
        if self.ok:
            return f"all {self.claimed} claimed records verify"
        parts = []
        absent = [k for k in self.problems if k >= self.on_disk]
        if absent:
            parts.append(
                f"records {_ranges(absent)} are claimed complete (complete_records = "
                f"{self.claimed}) but absent: the file holds {self.on_disk} records"
            )
        altered = {k: v for k, v in self.problems.items() if k < self.on_disk}
        if altered:
            groups: list[tuple[list[int], tuple[str, ...]]] = []
            for record in sorted(altered):
                names = altered[record]
                if groups and groups[-1][1] == names and groups[-1][0][-1] == record - 1:
                    groups[-1][0].append(record)
                else:
                    groups.append(([record], names))
            shown = "; ".join(
                f"record{'s' if len(records) > 1 else ''} {_ranges(records)}: {', '.join(names)}"
                for records, names in groups[:8]
            )
            more = f"; ... ({len(groups) - 8} more groups)" if len(groups) > 8 else ""
            parts.append(
                f"{len(altered)} of the {self.claimed} claimed records fail their checksum "
                f"(truncated, unwritten or altered data) — {shown}{more}"
            )
        if self.static_problems:
            parts.append(
                f"variables {', '.join(self.static_problems)} fail their checksum (altered data)"
            )
        return "; ".join(parts)


def _ranges(values: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    values = sorted(values)
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


def _crc32_rows(values: np.ndarray, count: int) -> np.ndarray:
    """CRC-32 of each of the ``count`` leading rows of ``values`` (little-endian bytes)."""
    array = np.asarray(values)
    array = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
    rows = array.reshape(count, -1)
    return np.array([zlib.crc32(row.tobytes()) for row in rows], dtype=np.float64)


def _crc32_hex(values: np.ndarray) -> str:
    return f"{int(_crc32_rows(np.asarray(values).reshape(1, -1), 1)[0]):08x}"


def _grid_description(
    coords: Mapping[str, np.ndarray], periodic: Sequence[bool] | None = None
) -> str:
    """``"periodic; x: 64 points, dx = ..., from 0"`` when every axis is periodic; otherwise
    each axis says ``periodic`` or ``bounded`` (both ends included), e.g.
    ``"x: bounded, 41 points, dx = 0.025, from 0 to 1; y: periodic, ..."``."""
    flags = [True] * len(coords) if periodic is None else [bool(p) for p in periodic]
    if len(flags) != len(coords):
        raise ValueError(
            f"periodic: expected one flag per coordinate {list(coords)}, got {list(flags)}"
        )
    parts = []
    for (name, values), is_periodic in zip(coords.items(), flags, strict=True):
        kind = "" if all(flags) else ("periodic, " if is_periodic else "bounded, ")
        if values.size > 1:
            spacing = float(values[1] - values[0])
            end = "" if is_periodic else f" to {values[-1]:.6g}"
            parts.append(
                f"{name}: {kind}{values.size} points, d{name} = {spacing:.6g}, from "
                f"{values[0]:.6g}{end}"
            )
        else:
            parts.append(f"{name}: {kind}{values.size} point at {values[0]:.6g}")
    if all(flags):
        return "periodic; " + "; ".join(parts)
    return "; ".join(parts)


def _attribute_value(key: str, value: object) -> str | int | float | np.floating:
    """A global attribute value the classic format can hold (no 64-bit integers)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, str | float | np.floating):
        return value
    if isinstance(value, int | np.integer):
        return int(value) if -(2**31) <= int(value) < 2**31 else str(int(value))
    raise TypeError(f"attributes[{key!r}]: expected str, int or float, got {type(value).__name__}")


def _check_coords(coords: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    if not coords or not 1 <= len(coords) <= 3:
        raise ValueError(f"coords: expected 1 to 3 grid coordinates, got {tuple(coords)}")
    arrays = {str(name): np.asarray(values, dtype=np.float64) for name, values in coords.items()}
    for name, values in arrays.items():
        if values.ndim != 1 or values.size < 1:
            raise ValueError(
                f"coords[{name!r}]: expected a non-empty 1D array, got shape {values.shape}"
            )
    return arrays


def _fill_value(dtype: str) -> int | float | str:
    return netCDF4.default_fillvals[np.dtype(dtype).str[1:]]


_IO_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES)


def _io_error(path: Path, error: BaseException, doing: str, advice: str) -> OSError:
    """A clean ``OSError`` for a failed write (netCDF4 raises ``RuntimeError`` without errno)."""
    code = getattr(error, "errno", None)
    detail = getattr(error, "strerror", None) or str(error)
    if code is None:
        code = next((c for c in _IO_ERRNOS if os.strerror(c) in detail), errno.EIO)
    reason = os.strerror(code) + ("" if detail == os.strerror(code) else f": {detail}")
    return OSError(code, f"{path}: {doing} failed ({reason}). {advice}".rstrip())


def _abandon(dataset: netCDF4.Dataset) -> None:
    """Give up a dataset after a failed write, without closing it.

    After a failed write or sync, netCDF-C's ``nc_close`` can crash the interpreter, and
    netCDF4 closes a dataset still marked open again when the object is freed. The handle is
    marked closed and left to the process (a few kilobytes of buffers and one descriptor); the
    file keeps what reached the disk, and its claimed records stay those flushed before.
    (``Dataset.__setattr__`` would write a netCDF attribute, so the C-level flag is set
    through its descriptor.)
    """
    vars(netCDF4.Dataset)["_isopen"].__set__(dataset, 0)


def _close_quietly(dataset: netCDF4.Dataset) -> None:
    """Close a dataset after an error that was not a failed write (nothing to report)."""
    try:
        if dataset.isopen():
            dataset.close()
    except (OSError, RuntimeError):
        _abandon(dataset)


def _record_bytes(dataset: netCDF4.Dataset, record_dim: str) -> int:
    """Bytes one record takes in a classic-format file (each variable's slab padded to 4)."""
    slabs = [
        variable.dtype.itemsize * int(np.prod(variable.shape[1:], dtype=np.int64))
        for variable in dataset.variables.values()
        if variable.dimensions[:1] == (record_dim,)
    ]
    if len(slabs) == 1:
        return slabs[0]
    return sum(-(-slab // 4) * 4 for slab in slabs)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class NetCDFWriter:
    """Incremental CF-1.8 netCDF writer, one block of records per :meth:`append_records`.

    Create a file with :meth:`create`, reopen one (to resume an interrupted run) with
    :meth:`open`; either takes the file's :class:`OutputLock` (or uses one the caller holds) and
    keeps it until :meth:`close`. Each append writes every record variable, the record
    coordinate and one CRC-32 per variable and record (``record_checksum``), flushes them to
    disk (``sync`` then ``fsync``), and only then advances the global attribute
    ``complete_records`` (flushed again). A run killed, or a disk filled, during an append leaves
    the file claiming only records whose data are on disk; the next append overwrites the rest.
    :meth:`verify` checks every claimed record against its checksums.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "heat.nc"
    >>> spec = VariableSpec("u", "1", "temperature", ("x",))
    >>> with NetCDFWriter.create(path, [spec], {"x": np.arange(4) / 4}, equations="u_t = u_xx",
    ...                          dt=0.1, seed=1) as writer:
    ...     writer.append(0.0, {"u": np.zeros(4)})
    0
    >>> read_netcdf(path)["u"].shape
    (1, 4)
    >>> verify_file(path).ok
    True
    """

    def __init__(self, dataset: netCDF4.Dataset, lock: OutputLock, owns_lock: bool) -> None:
        self._dataset = dataset
        self._lock = lock
        self._owns_lock = owns_lock
        self.record_dim = str(dataset.getncattr(RECORD_DIMENSION))
        self.path = Path(dataset.filepath())
        dataset.set_auto_mask(False)
        self._descriptor: int | None = os.open(self.path, os.O_RDWR)
        classic = dataset.data_model.startswith("NETCDF3")
        self._record_bytes = _record_bytes(dataset, self.record_dim) if classic else 0
        checksum = dataset.variables.get(CHECKSUM_VARIABLE)
        self._checksummed: tuple[str, ...] | None = (
            tuple(checksum.getncattr("variables").split()) if checksum is not None else None
        )

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        variables: Sequence[VariableSpec],
        coords: Mapping[str, ArrayLike],
        *,
        equations: str,
        dt: float,
        seed: int | str | None,
        title: str = "pkfnet output",
        grid: str | None = None,
        periodic: Sequence[bool] | None = None,
        record_dim: str = "time",
        record_units: str = "1",
        record_dtype: str = "f8",
        coord_units: str = "1",
        members: int | None = None,
        extra_dims: Mapping[str, int] | None = None,
        static: Sequence[tuple[VariableSpec, ArrayLike]] = (),
        attributes: Mapping[str, object] | None = None,
        format: NetCDFFormat = DEFAULT_FORMAT,
        overwrite: bool = False,
        lock: OutputLock | None = None,
    ) -> NetCDFWriter:
        """Create a new file with its dimensions, coordinates, variables and global attributes.

        Parameters
        ----------
        path : path-like
            Output file. The header is written to ``path + ".part"``, flushed and renamed, so
            ``path`` is either absent or a valid file.
        variables : sequence of VariableSpec
            Record variables.
        coords : mapping of str to array_like
            Grid coordinates ``{name: (n,)}`` (1 to 3, ``coord_units``), e.g. ``{"y": ..,
            "x": ..}``; their order is the order of the dimensions in the file.
        equations : str
            The model equations (global attribute ``equations``).
        dt : float
            Time step (global attribute ``dt``, model time units).
        seed : int, str or None
            Random seed (global attribute ``seed``; a string when it does not fit 32 bits or
            is None).
        title : str, default "pkfnet output"
            Global attribute ``title``.
        grid : str, optional
            Grid description; built from ``coords`` (and ``periodic``) when omitted.
        periodic : sequence of bool, optional
            Per coordinate of ``coords`` (same order), True for a periodic axis, False for a
            bounded one (both ends included); default all periodic. Only used to describe the
            grid (global attribute ``grid``).
        record_dim : str, default "time"
            Name of the unlimited dimension (``"time"`` or e.g. ``"sample"``).
        record_units, record_dtype : str
            Units and type of the record coordinate variable. A ``"time"`` record coordinate
            with units ``"1"`` is dimensionless model time (no ``standard_name``, see
            :func:`generator.conventions.time_attributes`).
        coord_units : str, default "1"
            Units of the grid coordinates.
        members : int, optional
            Size of the ``member`` dimension (CF ``realization``) when members are saved.
        extra_dims : mapping of str to int, optional
            Further fixed dimensions (e.g. tensor components).
        static : sequence of (VariableSpec, array_like)
            Non-record variables written once with their values (model constants, constant
            fields), each protected by a ``checksum_crc32`` attribute.
        attributes : mapping, optional
            Further global attributes (str, int or float).
        format : NetCDFFormat, default "NETCDF3_64BIT_OFFSET"
            netCDF format; the classic 64-bit offset format survives a kill mid-write better
            than HDF5-based ``"NETCDF4"``.
        overwrite : bool, default False
            Replace an existing file instead of raising ``FileExistsError``.
        lock : OutputLock, optional
            The file's lock, already held by the caller (who releases it); by default the
            writer takes it and releases it on :meth:`close`.

        Raises
        ------
        FileExistsError
            ``path`` exists and ``overwrite`` is false.
        OutputLockedError
            Another writer holds the file's lock.
        ValueError
            Inconsistent variables, dimensions or attributes.
        OSError
            The header could not be written (no space left ...); ``path`` is untouched.
        """
        path = Path(path)
        lock, owns_lock = _take_lock(path, lock)
        try:
            if path.exists() and not overwrite:
                raise FileExistsError(
                    f"{path} exists; NetCDFWriter.open(path) resumes it, overwrite=True replaces it"
                )
            reserved = _MANAGED_ATTRIBUTES & set(attributes or {})
            if reserved:
                raise ValueError(f"attributes: {sorted(reserved)} are managed by NetCDFWriter")
            coords = _check_coords(coords)
            dims = {name: values.size for name, values in coords.items()}
            if members is not None:
                dims[MEMBER_DIM] = int(members)
            for name, size in (extra_dims or {}).items():
                if name in dims or name == record_dim:
                    raise ValueError(f"extra_dims: {name!r} clashes with an existing dimension")
                dims[name] = int(size)
            static_arrays = [(spec, np.asarray(values)) for spec, values in static]
            _check_variables(variables, static_arrays, dims, record_dim)
            global_attrs: dict[str, object] = dict(global_attributes(title))
            global_attrs.update(
                equations=equations,
                grid=grid if grid is not None else _grid_description(coords, periodic),
                dt=float(dt),
                seed="None" if seed is None else seed,
            )
            global_attrs.update(attributes or {})
            global_attrs[RECORD_DIMENSION] = record_dim
            partial = path.with_name(path.name + ".part")
            try:
                dataset = netCDF4.Dataset(partial, "w", format=format)
            except (OSError, RuntimeError) as error:
                partial.unlink(missing_ok=True)
                raise _io_error(
                    path,
                    error,
                    f"creating {partial.name}",
                    "Free disk space or choose another path.",
                ) from error
            try:
                for key, value in global_attrs.items():
                    dataset.setncattr(key, _attribute_value(key, value))
                dataset.setncattr(COMPLETE_RECORDS, np.int32(0))
                _define(
                    dataset,
                    variables,
                    static_arrays,
                    coords,
                    dims,
                    record_dim,
                    record_units,
                    record_dtype,
                    coord_units,
                    format,
                )
                dataset.close()
                descriptor = os.open(partial, os.O_RDONLY)
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
            except (OSError, RuntimeError) as error:
                _abandon(dataset)
                partial.unlink(missing_ok=True)
                raise _io_error(
                    path, error, "writing the header", "Free disk space or choose another path."
                ) from error
            except BaseException:
                _close_quietly(dataset)
                partial.unlink(missing_ok=True)
                raise
            os.replace(partial, path)
            _fsync_directory(path.parent)
            return cls(netCDF4.Dataset(path, "a"), lock, owns_lock)
        except BaseException:
            if owns_lock:
                lock.release()
            raise

    @classmethod
    def open(
        cls, path: str | os.PathLike, *, lock: OutputLock | None = None, verify: bool = True
    ) -> NetCDFWriter:
        """Reopen a file written by :meth:`create` to append more records (resume).

        Parameters
        ----------
        path : path-like
            The file.
        lock : OutputLock, optional
            The file's lock, already held by the caller; by default the writer takes it.
        verify : bool, default True
            Check every claimed record first (:meth:`verify`) and refuse a file that fails.
            With ``False`` the caller checks: ``writer.truncate(writer.verify().verified)``
            keeps the verified records and resumes after them.

        Raises
        ------
        FileNotFoundError
            There is no file at ``path``.
        OutputLockedError
            Another writer holds the file's lock.
        CorruptFileError
            ``verify`` and claimed records or static variables fail verification.
        OSError
            The file cannot be read as netCDF.
        ValueError
            If the file was not written by :class:`NetCDFWriter`.
        """
        path = Path(path)
        lock, owns_lock = _take_lock(path, lock)
        try:
            if not path.is_file():  # netCDF4's mode "a" would create an empty file
                raise FileNotFoundError(errno.ENOENT, "no such file to resume", str(path))
            try:
                dataset = netCDF4.Dataset(path, "a")
            except (OSError, RuntimeError) as error:
                raise OSError(
                    getattr(error, "errno", None) or errno.EIO,
                    f"{path}: cannot be opened as a netCDF file ({error})",
                ) from error
            if not {RECORD_DIMENSION, COMPLETE_RECORDS} <= set(dataset.ncattrs()):
                dataset.close()
                raise ValueError(
                    f"{path}: not a NetCDFWriter file (no {RECORD_DIMENSION!r} attribute)"
                )
            writer = cls(dataset, lock, owns_lock)
            if verify:
                verification = writer.verify()
                if not verification.ok:
                    writer.close()
                    raise CorruptFileError(
                        verification,
                        "Open it with verify=False and truncate(verify().verified) to resume "
                        "after the verified records",
                    )
            return writer
        except BaseException:
            if owns_lock:
                lock.release()
            raise

    @property
    def n_records(self) -> int:
        """Number of records the file claims complete (``complete_records``)."""
        return int(self._dataset.getncattr(COMPLETE_RECORDS))

    @property
    def record_variables(self) -> tuple[str, ...]:
        """Names of the variables written at every record (not the record coordinate, nor the
        checksums)."""
        return tuple(
            name
            for name, variable in self._dataset.variables.items()
            if variable.dimensions[:1] == (self.record_dim,)
            and name not in (self.record_dim, CHECKSUM_VARIABLE)
        )

    @property
    def attributes(self) -> dict[str, object]:
        """Global attributes of the file."""
        return {key: self._dataset.getncattr(key) for key in self._dataset.ncattrs()}

    def append(self, record_value: float, data: Mapping[str, ArrayLike]) -> int:
        """Write one record of every variable (see :meth:`append_records`).

        Parameters
        ----------
        record_value : float
            Value of the record coordinate (model time, sample number ...).
        data : mapping of str to array_like
            One array per record variable, shaped like the variable's record dims.

        Returns
        -------
        int
            Index of the record written.
        """
        expected = set(self.record_variables)
        if set(data) != expected:
            raise ValueError(
                f"data: expected variables {sorted(expected)}, got {sorted(data)}; every "
                "record variable must be written at each append"
            )
        for name in self.record_variables:
            shape = self._dataset.variables[name].shape[1:]
            value = np.asarray(data[name])
            if value.shape != shape:
                raise ValueError(
                    f"data[{name!r}]: expected shape {shape} for dims "
                    f"{self._dataset.variables[name].dimensions[1:]}, got {value.shape}"
                )
        block = {name: np.asarray(value)[np.newaxis] for name, value in data.items()}
        return self.append_records([record_value], block)[0]

    def append_records(self, record_values: ArrayLike, data: Mapping[str, ArrayLike]) -> range:
        """Write a block of records atomically (one ``complete_records`` update).

        Order: data, record coordinate and checksums; ``sync`` + ``fsync``; then
        ``complete_records``; ``sync`` + ``fsync``. A run killed or a write failing during the
        block leaves ``n_records`` at its start, so the whole block is rewritten on resume:
        blocks are never half kept.

        Parameters
        ----------
        record_values : array_like
            ``(n,)`` values of the record coordinate.
        data : mapping of str to array_like
            One ``(n, *record_dims)`` array per record variable.

        Returns
        -------
        range
            Indices of the records written.

        Raises
        ------
        ValueError
            Missing, extra or misshapen variables (nothing is written).
        OSError
            Writing or flushing failed (``errno.ENOSPC`` when the disk is full): the file still
            claims only its earlier, intact records and this writer is closed; free space and
            reopen to resume.
        """
        self._check_open()
        record_values = np.atleast_1d(np.asarray(record_values))
        if record_values.ndim != 1:
            raise ValueError(f"record_values: expected shape (n,), got {record_values.shape}")
        count = record_values.size
        expected = set(self.record_variables)
        if set(data) != expected:
            raise ValueError(
                f"data: expected variables {sorted(expected)}, got {sorted(data)}; every "
                "record variable must be written in each block"
            )
        variables = self._dataset.variables
        arrays = {self.record_dim: record_values.astype(variables[self.record_dim].dtype)}
        for name in self.record_variables:
            variable = variables[name]
            shape = (count, *variable.shape[1:])
            value = np.asarray(data[name])
            if value.shape != shape:
                raise ValueError(
                    f"data[{name!r}]: expected shape {shape} for dims "
                    f"({self.record_dim}, {', '.join(variable.dimensions[1:])}), got {value.shape}"
                )
            arrays[name] = value.astype(variable.dtype, copy=False)
        start = self.n_records
        stop = start + count
        checksums = None
        if self._checksummed is not None:
            checksums = np.stack([_crc32_rows(arrays[n], count) for n in self._checksummed], 1)
        advice = (
            f"The file still claims its first {start} records, which are intact; free disk "
            "space (or move the file where there is room) and rerun to resume from there"
        )
        doing = f"writing record {start}" if count == 1 else f"writing records {start}-{stop - 1}"
        try:
            self._reserve(stop)
        except OSError as error:
            raise _io_error(
                self.path, error, f"reserving disk space for {doing}", advice
            ) from error
        try:
            self._write_block(start, arrays, checksums)
            self._flush()
            self._dataset.setncattr(COMPLETE_RECORDS, np.int32(stop))
            self._flush()
        except (OSError, RuntimeError) as error:
            self._abandon()
            raise _io_error(self.path, error, doing, advice) from error
        return range(start, stop)

    def _reserve(self, stop: int) -> None:
        """Allocate the disk space of records up to ``stop`` before netCDF writes them, so that
        a full disk fails here, cleanly, rather than inside netCDF-C (classic format only)."""
        missing = stop - len(self._dataset.dimensions[self.record_dim])
        if self._record_bytes and missing > 0:
            size = os.fstat(self._file_descriptor).st_size
            os.posix_fallocate(self._file_descriptor, size, missing * self._record_bytes)

    def _write_block(
        self, start: int, arrays: Mapping[str, np.ndarray], checksums: np.ndarray | None
    ) -> None:
        variables = self._dataset.variables
        for name, value in arrays.items():
            variables[name][start : start + len(value)] = value
        if checksums is not None:
            variables[CHECKSUM_VARIABLE][start : start + len(checksums)] = checksums

    def _flush(self) -> None:
        """Push netCDF's buffers to the system (``sync``) and the system's to disk (``fsync``)."""
        self._dataset.sync()
        os.fsync(self._file_descriptor)

    def verify(self) -> Verification:
        """Check every record the file claims (presence and checksums) and the static variables."""
        self._check_open()
        return _verify(self._dataset, self.path)

    def truncate(self, n_records: int) -> None:
        """Claim only the first ``n_records`` records (flushed); later appends overwrite the rest.

        Raises
        ------
        ValueError
            If ``n_records`` is negative or more than the records claimed now.
        """
        self._check_open()
        if not 0 <= n_records <= self.n_records:
            raise ValueError(f"n_records: expected 0 to {self.n_records}, got {n_records}")
        try:
            self._dataset.setncattr(COMPLETE_RECORDS, np.int32(n_records))
            self._flush()
        except (OSError, RuntimeError) as error:
            self._abandon()
            raise _io_error(self.path, error, "updating complete_records", "") from error

    @property
    def _file_descriptor(self) -> int:
        """The file's descriptor, for ``fsync`` and ``posix_fallocate`` (open writers only)."""
        if self._descriptor is None:
            raise ValueError(f"{self.path}: the writer is closed")
        return self._descriptor

    def _check_open(self) -> None:
        if not self._dataset.isopen():
            raise ValueError(f"{self.path}: the writer is closed")

    def _abandon(self) -> None:
        _abandon(self._dataset)
        self._release()

    def _release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
        if self._owns_lock:
            self._lock.release()

    def close(self) -> None:
        """Flush and close the file and release the lock if the writer took it (idempotent).

        Raises
        ------
        OSError
            The final flush failed (the claimed records are still intact).
        """
        try:
            if self._dataset.isopen():
                try:
                    self._dataset.close()
                except (OSError, RuntimeError) as error:
                    _abandon(self._dataset)
                    raise _io_error(
                        self.path, error, "closing the file", "The claimed records are intact."
                    ) from error
        finally:
            self._release()

    def __enter__(self) -> NetCDFWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _take_lock(path: Path, lock: OutputLock | None) -> tuple[OutputLock, bool]:
    if lock is None:
        return OutputLock(path).acquire(), True
    if lock.path.resolve() != path.resolve() or not lock.is_locked:
        raise ValueError(f"lock: expected the held lock of {path}, got one of {lock.path}")
    return lock, False


def _check_variables(
    variables: Sequence[VariableSpec],
    static: Sequence[tuple[VariableSpec, np.ndarray]],
    dims: Mapping[str, int],
    record_dim: str,
) -> None:
    names = [spec.name for spec in variables] + [spec.name for spec, _ in static]
    if not variables or len(set(names)) != len(names):
        raise ValueError(f"variables: expected distinct variable names, got {names}")
    reserved = set(dims) | {record_dim, CHECKSUM_VARIABLE, CHECKSUM_DIM}
    for spec in [*variables, *(spec for spec, _ in static)]:
        if spec.name in reserved:
            raise ValueError(f"variables: {spec.name!r} clashes with a dimension or reserved name")
        unknown = [dim for dim in spec.dims if dim not in dims]
        if unknown:
            raise ValueError(
                f"variables[{spec.name!r}]: unknown dims {unknown}; known {sorted(dims)}"
            )
    for spec, values in static:
        shape = tuple(dims[d] for d in spec.dims)
        if values.shape != shape:
            raise ValueError(
                f"static[{spec.name!r}]: expected shape {shape} for dims {spec.dims}, "
                f"got {values.shape}"
            )


def _set_attributes(variable: netCDF4.Variable, spec: VariableSpec) -> None:
    variable.units = spec.units
    variable.long_name = spec.long_name
    if spec.standard_name:
        variable.standard_name = spec.standard_name
    for key, value in spec.attributes.items():
        variable.setncattr(key, value)


def _define(
    dataset: netCDF4.Dataset,
    variables: Sequence[VariableSpec],
    static: Sequence[tuple[VariableSpec, np.ndarray]],
    coords: Mapping[str, np.ndarray],
    dims: Mapping[str, int],
    record_dim: str,
    record_units: str,
    record_dtype: str,
    coord_units: str,
    format: NetCDFFormat,
) -> None:
    dataset.createDimension(record_dim, None)
    for name, size in dims.items():
        dataset.createDimension(name, size)
    checksummed = (record_dim, *(spec.name for spec in variables))
    dataset.createDimension(CHECKSUM_DIM, len(checksummed))
    record = dataset.createVariable(record_dim, record_dtype, (record_dim,))
    if record_dim == "time":
        record.setncatts(time_attributes(None if record_units == "1" else record_units))
    else:
        record.setncatts({"long_name": f"{record_dim} number", "units": record_units})
    for name, values in coords.items():
        variable = dataset.createVariable(name, "f8", (name,))
        variable.setncatts(coordinate_attributes(name, None if coord_units == "1" else coord_units))
        variable[:] = values
        variable.setncattr(CHECKSUM_ATTRIBUTE, _crc32_hex(values))
    if MEMBER_DIM in dims:
        member = dataset.createVariable(MEMBER_DIM, "i4", (MEMBER_DIM,))
        member.setncatts(member_attributes())
        values = np.arange(dims[MEMBER_DIM], dtype=np.int32)
        member[:] = values
        member.setncattr(CHECKSUM_ATTRIBUTE, _crc32_hex(values))
    compress = format.startswith("NETCDF4")  # zlib level 4; the classic formats cannot
    for spec in variables:
        variable = dataset.createVariable(
            spec.name,
            spec.dtype,
            (record_dim, *spec.dims),
            fill_value=_fill_value(spec.dtype),
            zlib=compress,
            complevel=4,
        )
        _set_attributes(variable, spec)
    checksum = dataset.createVariable(
        CHECKSUM_VARIABLE, "f8", (record_dim, CHECKSUM_DIM), fill_value=_fill_value("f8")
    )
    checksum.setncatts(
        {
            "long_name": "CRC-32 (zlib) of the little-endian bytes of each record variable, "
            "per record; integers 0 to 2**32 - 1 stored exactly as doubles",
            "units": "1",
            "variables": " ".join(checksummed),
        }
    )
    for spec, values in static:
        variable = dataset.createVariable(
            spec.name, spec.dtype, spec.dims, zlib=compress, complevel=4
        )
        _set_attributes(variable, spec)
        stored = values.astype(variable.dtype)
        if spec.dims:
            variable[:] = stored
        else:
            variable.assignValue(stored)
        variable.setncattr(CHECKSUM_ATTRIBUTE, _crc32_hex(stored))


def _read_whole(variable: netCDF4.Variable) -> np.ndarray:
    return variable.getValue() if variable.ndim == 0 else variable[:]


def _verify(dataset: netCDF4.Dataset, path: Path) -> Verification:
    record_dim = str(dataset.getncattr(RECORD_DIMENSION))
    claimed = int(dataset.getncattr(COMPLETE_RECORDS))
    on_disk = len(dataset.dimensions[record_dim])
    variables = dataset.variables
    record_names = [
        name
        for name, variable in variables.items()
        if variable.dimensions[:1] == (record_dim,) and name != CHECKSUM_VARIABLE
    ]
    problems: dict[int, set[str]] = {k: set(record_names) for k in range(on_disk, claimed)}
    checksum = variables.get(CHECKSUM_VARIABLE)
    present = min(claimed, on_disk)
    if checksum is not None:
        names = checksum.getncattr("variables").split()
        for start in range(0, present, _VERIFY_BLOCK):
            stop = min(start + _VERIFY_BLOCK, present)
            try:
                stored = np.asarray(checksum[start:stop])
            except (OSError, RuntimeError, IndexError):
                stored = np.full((stop - start, len(names)), np.nan)
            for column, name in enumerate(names):
                try:
                    computed = _crc32_rows(np.asarray(variables[name][start:stop]), stop - start)
                    bad = np.flatnonzero(computed != stored[:, column])
                except (OSError, RuntimeError, IndexError, KeyError):
                    bad = np.arange(stop - start)
                for k in bad:
                    problems.setdefault(start + int(k), set()).add(name)
    static_problems = []
    for name, variable in variables.items():
        if CHECKSUM_ATTRIBUTE in variable.ncattrs():
            try:
                values = np.asarray(_read_whole(variable))
                ok = _crc32_hex(values) == variable.getncattr(CHECKSUM_ATTRIBUTE)
            except (OSError, RuntimeError):
                ok = False
            if not ok:
                static_problems.append(name)
    order = {name: k for k, name in enumerate(variables)}
    return Verification(
        path=path,
        claimed=claimed,
        on_disk=on_disk,
        problems={k: tuple(sorted(v, key=order.__getitem__)) for k, v in sorted(problems.items())},
        static_problems=tuple(static_problems),
        checksummed=checksum is not None,
    )


def verify_file(path: str | os.PathLike) -> Verification:
    """Check every record a :class:`NetCDFWriter` file claims, and its static variables.

    A record verifies when it is present in the file and the CRC-32 of each record variable
    matches ``record_checksum``; static variables (coordinates, constants) are checked against
    their ``checksum_crc32`` attribute. Reading needs no lock (a writer may be appending).

    Returns
    -------
    Verification
        ``.ok``, ``.verified`` (the verified prefix), ``.problems`` (records -> variables).

    Raises
    ------
    OSError
        The file cannot be read as netCDF.
    ValueError
        If the file was not written by :class:`NetCDFWriter`.
    """
    path = Path(path)
    try:
        dataset = netCDF4.Dataset(path, "r")
    except (OSError, RuntimeError) as error:
        raise OSError(
            getattr(error, "errno", None) or errno.EIO,
            f"{path}: cannot be opened as a netCDF file ({error})",
        ) from error
    with dataset:
        if not {RECORD_DIMENSION, COMPLETE_RECORDS} <= set(dataset.ncattrs()):
            raise ValueError(f"{path}: not a NetCDFWriter file (no {RECORD_DIMENSION!r} attribute)")
        dataset.set_auto_mask(False)
        return _verify(dataset, path)


def read_netcdf(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every variable of a file as numpy arrays, keeping only complete records.

    Files written by :class:`NetCDFWriter` are verified first (:func:`verify_file`); their
    checksums are not returned.

    Returns
    -------
    dict of str to numpy.ndarray
        Variables by name (record variables ``(n_records, *record_dims)``), coordinates included.

    Raises
    ------
    CorruptFileError
        A claimed record or a static variable fails verification (names records and variables).
    """
    path = Path(path)
    with netCDF4.Dataset(path, "r") as dataset:
        dataset.set_auto_mask(False)
        attributes = dataset.ncattrs()
        managed = {RECORD_DIMENSION, COMPLETE_RECORDS} <= set(attributes)
        if managed:
            verification = _verify(dataset, path)
            if not verification.ok:
                raise CorruptFileError(verification, "Rerun the build that wrote it to repair it")
        record_dim = dataset.getncattr(RECORD_DIMENSION) if managed else None
        complete = int(dataset.getncattr(COMPLETE_RECORDS)) if managed else None
        arrays = {}
        for name, variable in dataset.variables.items():
            if name == CHECKSUM_VARIABLE and managed:
                continue
            if complete is not None and variable.dimensions[:1] == (record_dim,):
                arrays[name] = np.array(variable[:complete])
            else:
                arrays[name] = np.array(_read_whole(variable))
        return arrays


def read_attributes(path: str | os.PathLike) -> dict[str, object]:
    """Global attributes of a file as a dict (``seed`` may be an int or a string)."""
    with netCDF4.Dataset(Path(path), "r") as dataset:
        return {key: dataset.getncattr(key) for key in dataset.ncattrs()}
