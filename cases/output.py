"""netCDF output of gridded snapshot fields for the case studies (CF-style)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import netCDF4
import numpy as np

from pkf.netcdf import package_version

__all__ = ["write_grid_netcdf"]


def write_grid_netcdf(
    path: str | Path,
    fields: dict[str, np.ndarray],
    coordinates: dict[str, np.ndarray],
    attributes: dict | None = None,
    long_names: dict[str, str] | None = None,
    units: dict[str, str] | None = None,
) -> Path:
    """Write fields shaped like the grid (dims in ``coordinates`` order) to a netCDF4 file.

    ``coordinates`` may start with ``time`` for time series of fields, (n_time, *grid).

    Every variable gets a ``long_name`` and ``units`` ("1" = dimensionless by default); the
    file carries ``Conventions = CF-1.8``, the package version and the creation date.
    """
    path = Path(path)
    long_names, units = long_names or {}, units or {}
    with netCDF4.Dataset(path, "w") as ds:
        for name, values in coordinates.items():
            ds.createDimension(name, len(values))
            var = ds.createVariable(name, "f8", (name,))
            var[:] = values
            if name == "time":
                var.units = "1"
                var.long_name = "time (in units of the case's time scale)"
                var.axis = "T"
            else:
                var.units = "1"
                var.long_name = f"{name} coordinate (fraction of the domain length)"
            if name in ("x", "y", "z"):
                var.axis = name.upper()
        dims = tuple(coordinates)
        for name, values in fields.items():
            values = np.asarray(values)
            expected = tuple(len(v) for v in coordinates.values())
            if values.shape != expected:
                raise ValueError(f"field '{name}' has shape {values.shape}, grid is {expected}")
            var = ds.createVariable(name, "f8", dims, zlib=True)
            var[:] = values
            var.long_name = long_names.get(name, name)
            var.units = units.get(name, "1")
        ds.Conventions = "CF-1.8"
        ds.source = f"pkfnet {package_version()}"
        ds.history = f"created {datetime.now(UTC).isoformat(timespec='seconds')}"
        for key, value in (attributes or {}).items():
            ds.setncattr(key, value)
    return path
