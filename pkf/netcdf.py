"""CF-style netCDF output for forecasts, ensembles and training datasets.

:class:`NetCDFWriter` appends records (times or samples) along an unlimited dimension and syncs
after each one, so an interrupted run leaves a readable file that :meth:`NetCDFWriter.open`
resumes. :func:`read_netcdf` reads the complete records back as numpy arrays.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import netCDF4
import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "NetCDFWriter",
    "VariableSpec",
    "package_version",
    "read_attributes",
    "read_netcdf",
]

SPATIAL_DIMS = ("x", "y", "z")
REALIZATION_DIM = "realization"
COMPLETE_RECORDS = "complete_records"
RECORD_DIMENSION = "record_dimension"
DEFAULT_FORMAT = "NETCDF3_64BIT_OFFSET"


def package_version() -> str:
    """Installed pkfnet version, or ``"0+unknown"`` when running from an uninstalled tree."""
    try:
        return metadata.version("pkfnet")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class VariableSpec:
    """A record variable of a :class:`NetCDFWriter` file.

    Attributes
    ----------
    name : str
        Variable name, e.g. ``"V_u"``.
    units : str
        CF units string (``"1"`` for dimensionless, ``"m2 s-2"`` ...).
    long_name : str
        Human-readable description.
    dims : tuple of str
        Dimensions of one record, without the record dimension: spatial dims (``"x"``, ``"y"``,
        ``"z"``), ``"realization"`` and extra dims declared at creation, e.g.
        ``("realization", "x")``.
    dtype : str
        netCDF type, ``"f8"`` by default.
    standard_name : str or None
        CF standard name, when one exists.
    """

    name: str
    units: str
    long_name: str
    dims: tuple[str, ...] = ("x",)
    dtype: str = "f8"
    standard_name: str | None = None


def _grid_description(coords: Mapping[str, np.ndarray]) -> str:
    parts = []
    for name, values in coords.items():
        if values.size > 1:
            spacing = float(values[1] - values[0])
            parts.append(
                f"{name}: {values.size} points, d{name} = {spacing:.6g}, from {values[0]:.6g}"
            )
        else:
            parts.append(f"{name}: {values.size} point at {values[0]:.6g}")
    return "periodic; " + "; ".join(parts)


def _attribute_value(key: str, value: object) -> str | int | float:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (str, float, np.floating)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value) if -(2**31) <= int(value) < 2**31 else str(int(value))
    raise TypeError(f"attributes[{key!r}]: expected str, int or float, got {type(value).__name__}")


def _check_coords(coords: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    if not coords or tuple(coords) != SPATIAL_DIMS[: len(coords)]:
        raise ValueError(
            f"coords: expected keys {SPATIAL_DIMS[:3]} in order (1 to 3), got {tuple(coords)}"
        )
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in coords.items()}
    for name, values in arrays.items():
        if values.ndim != 1 or values.size < 1:
            raise ValueError(
                f"coords[{name!r}]: expected a non-empty 1D array, got shape {values.shape}"
            )
    return arrays


class NetCDFWriter:
    """Incremental CF-1.8 netCDF writer, one record per :meth:`append`.

    Create a file with :meth:`create`, reopen one (to resume an interrupted run) with
    :meth:`open`. Each :meth:`append` writes every variable at index :attr:`n_records`, then the
    record coordinate, then the global attribute ``complete_records``, and syncs to disk; a
    record counts only once all of it is written, so a run killed between or during appends
    resumes at the first incomplete record (which is overwritten).

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
    """

    def __init__(self, dataset: netCDF4.Dataset) -> None:
        self._dataset = dataset
        self.record_dim = str(dataset.getncattr(RECORD_DIMENSION))
        self.path = Path(dataset.filepath())

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        variables: Sequence[VariableSpec],
        coords: Mapping[str, ArrayLike],
        *,
        equations: str,
        dt: float,
        seed: int | None,
        grid: str | None = None,
        record_dim: str = "time",
        record_units: str = "1",
        record_dtype: str = "f8",
        coord_units: str = "1",
        realizations: int | None = None,
        extra_dims: Mapping[str, int] | None = None,
        attributes: Mapping[str, object] | None = None,
        format: str = DEFAULT_FORMAT,
        overwrite: bool = False,
    ) -> NetCDFWriter:
        """Create a new file with its dimensions, coordinates, variables and global attributes.

        Parameters
        ----------
        path : path-like
            Output file. The header is written to ``path + ".part"`` and renamed, so ``path``
            is either absent or a valid file.
        variables : sequence of VariableSpec
            Record variables.
        coords : mapping of str to array_like
            Spatial coordinates ``{"x": (nx,)[, "y": (ny,)[, "z": (nz,)]]}`` (``coord_units``).
        equations : str
            The model equations (global attribute ``equations``).
        dt : float
            Time step (global attribute ``dt``, units of ``record_units`` for time records).
        seed : int or None
            Random seed (global attribute ``seed``; a string when it does not fit 32 bits or
            is None).
        grid : str, optional
            Grid description; built from ``coords`` when omitted.
        record_dim : str, default "time"
            Name of the unlimited dimension (``"time"`` or e.g. ``"sample"``).
        record_units, record_dtype : str
            Units and type of the record coordinate variable.
        coord_units : str, default "1"
            Units of the spatial coordinates.
        realizations : int, optional
            Size of the ``realization`` dimension when members are saved.
        extra_dims : mapping of str to int, optional
            Further fixed dimensions (e.g. tensor components).
        attributes : mapping, optional
            Further global attributes (str, int or float).
        format : str, default "NETCDF3_64BIT_OFFSET"
            netCDF format; the classic 64-bit offset format survives a kill mid-write better
            than HDF5-based ``"NETCDF4"``.
        overwrite : bool, default False
            Replace an existing file instead of raising ``FileExistsError``.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"{path} exists; NetCDFWriter.open(path) resumes it, overwrite=True replaces it"
            )
        reserved = {RECORD_DIMENSION, COMPLETE_RECORDS} & set(attributes or {})
        if reserved:
            raise ValueError(f"attributes: {sorted(reserved)} are managed by NetCDFWriter")
        coords = _check_coords(coords)
        dims = {name: values.size for name, values in coords.items()}
        if realizations is not None:
            dims[REALIZATION_DIM] = int(realizations)
        for name, size in (extra_dims or {}).items():
            if name in dims or name == record_dim:
                raise ValueError(f"extra_dims: {name!r} clashes with an existing dimension")
            dims[name] = int(size)
        _check_variables(variables, dims, record_dim)

        partial = path.with_name(path.name + ".part")
        dataset = netCDF4.Dataset(partial, "w", format=format)
        try:
            global_attributes = {
                "Conventions": "CF-1.8",
                "title": "pkfnet output",
                "source": f"pkfnet {package_version()}",
                "pkfnet_version": package_version(),
                "equations": equations,
                "grid": grid if grid is not None else _grid_description(coords),
                "dt": float(dt),
                "seed": "None" if seed is None else seed,
                RECORD_DIMENSION: record_dim,
                **dict(attributes or {}),
            }
            for key, value in global_attributes.items():
                dataset.setncattr(key, _attribute_value(key, value))
            dataset.setncattr(COMPLETE_RECORDS, np.int32(0))
            _define(
                dataset,
                variables,
                coords,
                dims,
                record_dim,
                record_units,
                record_dtype,
                coord_units,
                format,
            )
        except BaseException:
            dataset.close()
            partial.unlink(missing_ok=True)
            raise
        dataset.close()
        os.replace(partial, path)
        return cls(netCDF4.Dataset(path, "a"))

    @classmethod
    def open(cls, path: str | os.PathLike) -> NetCDFWriter:
        """Reopen a file written by :meth:`create` to append more records (resume).

        Raises
        ------
        ValueError
            If the file was not written by :class:`NetCDFWriter`.
        """
        dataset = netCDF4.Dataset(Path(path), "a")
        if RECORD_DIMENSION not in dataset.ncattrs() or COMPLETE_RECORDS not in dataset.ncattrs():
            dataset.close()
            raise ValueError(f"{path}: not a NetCDFWriter file (no {RECORD_DIMENSION!r} attribute)")
        return cls(dataset)

    @property
    def n_records(self) -> int:
        """Number of complete records in the file."""
        return int(self._dataset.getncattr(COMPLETE_RECORDS))

    @property
    def record_variables(self) -> tuple[str, ...]:
        """Names of the variables written at every record (not the record coordinate)."""
        return tuple(
            name
            for name, variable in self._dataset.variables.items()
            if variable.dimensions[:1] == (self.record_dim,) and name != self.record_dim
        )

    def append(self, record_value: float, data: Mapping[str, ArrayLike]) -> int:
        """Write one record of every variable and sync the file.

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
        index = self.n_records
        arrays = {}
        for name in self.record_variables:
            variable = self._dataset.variables[name]
            shape = variable.shape[1:]
            value = np.asarray(data[name])
            if value.shape != shape:
                raise ValueError(
                    f"data[{name!r}]: expected shape {shape} for dims {variable.dimensions[1:]}, "
                    f"got {value.shape}"
                )
            arrays[name] = value
        for name, value in arrays.items():
            self._dataset.variables[name][index] = value
        self._dataset.variables[self.record_dim][index] = record_value
        self._dataset.setncattr(COMPLETE_RECORDS, np.int32(index + 1))
        self._dataset.sync()
        return index

    def append_records(self, record_values: ArrayLike, data: Mapping[str, ArrayLike]) -> range:
        """Write a block of records atomically (one ``complete_records`` update, one sync).

        A run killed during the block leaves ``n_records`` at its start, so the whole block is
        rewritten on resume: blocks are never half kept.

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
        """
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
        arrays = {}
        for name in self.record_variables:
            variable = self._dataset.variables[name]
            shape = (count, *variable.shape[1:])
            value = np.asarray(data[name])
            if value.shape != shape:
                raise ValueError(
                    f"data[{name!r}]: expected shape {shape} for dims "
                    f"({self.record_dim}, {', '.join(variable.dimensions[1:])}), got {value.shape}"
                )
            arrays[name] = value
        start = self.n_records
        stop = start + count
        for name, value in arrays.items():
            self._dataset.variables[name][start:stop] = value
        self._dataset.variables[self.record_dim][start:stop] = record_values
        self._dataset.setncattr(COMPLETE_RECORDS, np.int32(stop))
        self._dataset.sync()
        return range(start, stop)

    @property
    def attributes(self) -> dict[str, object]:
        """Global attributes of the file."""
        return {key: self._dataset.getncattr(key) for key in self._dataset.ncattrs()}

    def close(self) -> None:
        """Sync and close the file (idempotent)."""
        if self._dataset.isopen():
            self._dataset.close()

    def __enter__(self) -> NetCDFWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_variables(
    variables: Sequence[VariableSpec], dims: Mapping[str, int], record_dim: str
) -> None:
    names = [spec.name for spec in variables]
    if not variables or len(set(names)) != len(names):
        raise ValueError(f"variables: expected distinct variable names, got {names}")
    reserved = set(dims) | {record_dim}
    for spec in variables:
        if spec.name in reserved:
            raise ValueError(f"variables: {spec.name!r} clashes with a dimension name")
        unknown = [dim for dim in spec.dims if dim not in dims]
        if unknown:
            raise ValueError(
                f"variables[{spec.name!r}]: unknown dims {unknown}; known {sorted(dims)}"
            )


def _define(
    dataset: netCDF4.Dataset,
    variables: Sequence[VariableSpec],
    coords: Mapping[str, np.ndarray],
    dims: Mapping[str, int],
    record_dim: str,
    record_units: str,
    record_dtype: str,
    coord_units: str,
    format: str,
) -> None:
    dataset.createDimension(record_dim, None)
    for name, size in dims.items():
        dataset.createDimension(name, size)
    record = dataset.createVariable(record_dim, record_dtype, (record_dim,))
    record.units = record_units
    record.long_name = "model time" if record_dim == "time" else f"{record_dim} index"
    if record_dim == "time":
        record.standard_name = "time"
        record.axis = "T"
    for name, values in coords.items():
        variable = dataset.createVariable(name, "f8", (name,))
        variable.units = coord_units
        variable.long_name = f"{name} coordinate (periodic)"
        variable.axis = name.upper()
        variable[:] = values
    if REALIZATION_DIM in dims:
        realization = dataset.createVariable(REALIZATION_DIM, "i4", (REALIZATION_DIM,))
        realization.standard_name = "realization"
        realization.long_name = "ensemble member number"
        realization.units = "1"
        realization[:] = np.arange(dims[REALIZATION_DIM], dtype=np.int32)
    compress = {"zlib": True, "complevel": 4} if format.startswith("NETCDF4") else {}
    for spec in variables:
        variable = dataset.createVariable(
            spec.name, spec.dtype, (record_dim, *spec.dims), **compress
        )
        variable.units = spec.units
        variable.long_name = spec.long_name
        if spec.standard_name:
            variable.standard_name = spec.standard_name


def read_netcdf(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every variable of a file as numpy arrays, keeping only complete records.

    Returns
    -------
    dict of str to numpy.ndarray
        Variables by name (record variables ``(n_records, *record_dims)``), coordinates included.
    """
    with netCDF4.Dataset(Path(path), "r") as dataset:
        dataset.set_auto_mask(False)
        attributes = dataset.ncattrs()
        record_dim = dataset.getncattr(RECORD_DIMENSION) if RECORD_DIMENSION in attributes else None
        complete = (
            int(dataset.getncattr(COMPLETE_RECORDS)) if COMPLETE_RECORDS in attributes else None
        )
        arrays = {}
        for name, variable in dataset.variables.items():
            if complete is not None and variable.dimensions[:1] == (record_dim,):
                arrays[name] = np.array(variable[:complete])
            else:
                arrays[name] = np.array(variable[:])
        return arrays


def read_attributes(path: str | os.PathLike) -> dict[str, object]:
    """Global attributes of a file as a dict (``seed`` may be an int or a string)."""
    with netCDF4.Dataset(Path(path), "r") as dataset:
        return {key: dataset.getncattr(key) for key in dataset.ncattrs()}
