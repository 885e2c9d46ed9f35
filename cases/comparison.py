"""Comparison of PKF forecasts with ensemble statistics, shared by the case studies.

PKF forecasts and ensemble statistics are ``xarray.Dataset`` objects whose variables carry the
same names (``V_u``, ``s_c_xy``...), so they compare variable by variable and time by time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

__all__ = ["at_final_time", "errors_by_time", "percent", "relative_l2", "stack_sources"]


def relative_l2(estimate: ArrayLike, reference: ArrayLike) -> float | None:
    """‖estimate − reference‖₂ / ‖reference‖₂ over the grid (None when ‖reference‖ is 0).

    Examples
    --------
    >>> round(relative_l2(np.array([1.0, 0.0]), np.array([1.0, 1.0])), 12)  # 1 / sqrt(2)
    0.707106781187
    """
    expected = np.asarray(reference, dtype=float)
    norm = float(np.linalg.norm(expected))
    if norm == 0.0:
        return None
    return float(np.linalg.norm(np.asarray(estimate, dtype=float) - expected)) / norm


def errors_by_time(
    estimate: xr.Dataset,
    reference: xr.Dataset,
    variables: Sequence[str],
    skip_zero: bool = True,
    points: slice | None = None,
) -> dict[str, list[float | None]]:
    """Relative L2 error of each variable at each time of ``estimate`` (matched by label).

    With ``skip_zero`` the error is None where the estimate is identically 0 (e.g. a PKF cross
    term at t = 0, where the ensemble value is pure sampling noise). ``points`` restricts the
    comparison to a slice of the last grid dimension (e.g. without the walls of a bounded
    1D domain).
    """
    errors: dict[str, list[float | None]] = {}
    for name in variables:
        values = []
        for time in estimate["time"].values:
            a = estimate[name].sel(time=time)
            b = reference[name].sel(time=time).transpose(*a.dims)
            if points is not None:
                a, b = a.isel({a.dims[-1]: points}), b.isel({a.dims[-1]: points})
            values.append(None if skip_zero and not np.any(a.values) else relative_l2(a, b))
        errors[name] = values
    return errors


def at_final_time(errors: dict[str, list[float | None]]) -> dict[str, float | None]:
    """The last entry of each row of :func:`errors_by_time` (the final saved time)."""
    return {key: row[-1] for key, row in errors.items()}


def percent(values: dict[str, float | None]) -> str:
    """``"V_u 1.4 %, L_u_x 1.2 %"``: fractions as percentages, None entries left out."""
    return ", ".join(f"{k} {100 * v:.1f} %" for k, v in values.items() if v is not None)


def stack_sources(datasets: dict[str, xr.Dataset], variables: Sequence[str]) -> xr.Dataset:
    """Variables of several sources (PKF, ensembles...) along a new ``source`` dimension.

    The result keeps the first dataset's coordinates, attributes and time-independent
    variables (the model's constants and constant fields, e.g. winds); ``source`` is a string
    coordinate (``ds["V_c"].sel(source="pkf")``).
    """
    names = list(datasets)
    parts = [datasets[n][list(variables)] for n in names]
    stacked = xr.concat(parts, dim="source", coords="minimal", compat="override")
    first = datasets[names[0]]
    stacked = stacked.assign_coords(
        source=xr.DataArray(names, dims=("source",), attrs={"long_name": "origin of the data"})
    )
    for name in variables:
        # the most descriptive attributes: a long name that is more than the variable's name
        described = [d[name].attrs for d in datasets.values() if d[name].attrs.get("long_name")]
        richer = [a for a in described if a["long_name"] != name]
        stacked[name].attrs = dict((richer or described or [first[name].attrs])[0])
    constants = [n for n in first.data_vars if "time" not in first[n].dims and n not in variables]
    stacked = stacked.assign({n: first[n] for n in constants})
    stacked.attrs = dict(first.attrs)
    return stacked
