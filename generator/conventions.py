"""Conventions every pkfnet result follows: package version, CF metadata, grid dimension order.

Forecasts, ensemble statistics, training sets and case files are labelled the same way, so that
they open in xarray / ncview and pass a CF-1.8 check:

* grid dimensions are named after the model's coordinates and stored in CF order (``z, y, x``
  last, fastest varying; for other names the reverse of the model's coordinate order);
* model time is dimensionless unless a time unit is given: a duration (``"s"``) labels elapsed
  time, a unit with a reference time (``"s since 2000-01-01"``) makes the coordinate a CF time
  (``standard_name: time``, ``calendar``);
* every file carries ``Conventions``, ``title``, ``source``, ``history`` and ``pkfnet_version``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import metadata

__all__ = [
    "CF_CONVENTIONS",
    "MEMBER_DIM",
    "coordinate_attributes",
    "cf_grid_order",
    "global_attributes",
    "member_attributes",
    "package_version",
    "time_attributes",
]

CF_CONVENTIONS = "CF-1.8"
#: Name of the ensemble-member dimension (CF standard name ``realization``).
MEMBER_DIM = "member"
_CF_AXES = ("z", "y", "x")


@cache
def package_version() -> str:
    """Installed pkfnet version, or ``"0+unknown"`` when running from an uninstalled tree.

    Examples
    --------
    >>> isinstance(package_version(), str)
    True
    """
    try:
        return metadata.version("pkfnet")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def cf_grid_order(coordinates: Sequence[str]) -> tuple[str, ...]:
    """Grid dimensions in the order CF readers expect (slowest first, ``x`` last).

    Coordinates named ``x``, ``y``, ``z`` are ordered ``z, y, x``; any other names are taken in
    the reverse of the model's order (the model's first coordinate varies fastest).

    Examples
    --------
    >>> cf_grid_order(("x", "y"))
    ('y', 'x')
    >>> cf_grid_order(("y", "x"))
    ('y', 'x')
    >>> cf_grid_order(("r", "s"))
    ('s', 'r')
    """
    names = tuple(str(c) for c in coordinates)
    if set(names) <= set(_CF_AXES):
        return tuple(c for c in _CF_AXES if c in names)
    return names[::-1]


def time_attributes(units: str | None = None) -> dict[str, str]:
    """Attributes of a model-time coordinate.

    Parameters
    ----------
    units : str, optional
        A UDUNITS time unit. With a reference time (``"days since 2000-01-01"``) the coordinate
        is a CF time (``standard_name: time``, ``axis: T``, ``calendar: standard``). A duration
        alone (``"s"``, ``"hours"``) is elapsed model time: CF allows ``standard_name: time``
        only with a reference time, so it has units but no standard name. Without units the
        time is the model's dimensionless time: ``units = "1"`` and no ``standard_name``.

    Examples
    --------
    >>> time_attributes()["units"]
    '1'
    >>> "standard_name" in time_attributes("s")
    False
    >>> time_attributes("hours since 2000-01-01")["standard_name"]
    'time'
    """
    if units is None:
        return {"long_name": "model time (dimensionless)", "units": "1"}
    if " since " not in f" {units} ":
        return {"long_name": "model time (elapsed)", "units": units}
    return {
        "standard_name": "time",
        "long_name": "model time",
        "units": units,
        "axis": "T",
        "calendar": "standard",
    }


def coordinate_attributes(
    name: str, units: str | None = None, periodic: bool = True
) -> dict[str, str]:
    """Attributes of a spatial grid coordinate (``units`` default ``"1"``, dimensionless).

    ``periodic=False`` labels a bounded axis (both end points on the grid).

    >>> coordinate_attributes("x", periodic=False)["long_name"]
    'x coordinate (bounded grid, both end points included)'
    """
    kind = "periodic grid" if periodic else "bounded grid, both end points included"
    attributes = {"long_name": f"{name} coordinate ({kind})", "units": units or "1"}
    if name in _CF_AXES:
        attributes["axis"] = name.upper()
    return attributes


def member_attributes() -> dict[str, str]:
    """Attributes of the ensemble-member coordinate."""
    return {"standard_name": "realization", "long_name": "ensemble member number", "units": "1"}


def global_attributes(
    title: str, history: str | None = None, **extra: object
) -> dict[str, str | int | float]:
    """Global attributes every pkfnet file carries, then ``extra`` (str, int or float values).

    ``history`` defaults to ``"<UTC time>: created by pkfnet <version>"``.
    """
    version = package_version()
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    attributes: dict[str, str | int | float] = {
        "Conventions": CF_CONVENTIONS,
        "title": title,
        "source": f"pkfnet {version}",
        "history": history or f"{stamp}: created by pkfnet {version}",
        "pkfnet_version": version,
    }
    for key, value in extra.items():
        attributes[key] = _attribute_value(key, value)
    return attributes


def _attribute_value(key: str, value: object) -> str | int | float:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, str | float | int):
        return value
    if isinstance(value, Mapping | Sequence):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars
    if item is None:
        raise TypeError(
            f"attribute {key!r}: expected str, int or float, got {type(value).__name__}"
        )
    return item()
