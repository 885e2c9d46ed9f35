"""Labelled results: model arrays ↔ ``xarray`` objects with CF metadata.

Numpy arrays handed to or returned by a model are laid out in the model's coordinate order
(``model.coordinates``, the order of the prognostic functions' arguments, e.g. ``(nx, ny)`` for
``u(t, x, y)``), with an optional leading member axis. ``xarray`` objects are matched by
dimension name and stored in CF order (``time``, ``member``, then ``z, y, x``; see
:func:`generator.conventions.cf_grid_order`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .conventions import (
    MEMBER_DIM,
    cf_grid_order,
    coordinate_attributes,
    global_attributes,
    member_attributes,
    time_attributes,
)
from .protocols import LabelledModel

__all__ = [
    "LABEL_SUFFIX",
    "cf_labels",
    "grid_coordinates",
    "labelled",
    "model_attributes",
    "model_dataset",
    "open_results",
    "to_model_order",
]

#: Suffix of the label variable that stands for a string-valued dimension coordinate on file.
LABEL_SUFFIX = "_name"


def grid_coordinates(model: LabelledModel) -> dict[str, xr.DataArray]:
    """Coordinates of the model's grid points, one 1D ``DataArray`` per axis, with units."""
    units = model.length_units
    return {
        name: xr.DataArray(values, dims=(name,), attrs=coordinate_attributes(name, units, periodic))
        for name, values, periodic in zip(
            model.coordinates, model.grid, model.periodic_axes, strict=True
        )
    }


def model_attributes(model: LabelledModel) -> dict[str, str | int]:
    """How the data were made: model class, equations, scheme, accuracy, dtype, grid lengths,
    boundary conditions (``"periodic"``, or every field's conditions per axis and side)."""
    return {
        "model": type(model).__name__,
        "equations": model.equations_text or type(model).__name__,
        "time_scheme": model.time_scheme,
        "stencil_accuracy": int(model.accuracy),
        "dtype": model.dtype,
        "domain_lengths": " ".join(repr(float(v)) for v in model.lengths),
        "boundary_conditions": model.boundary_description,
    }


def labelled(
    model: LabelledModel,
    values: np.ndarray,
    own_dims: Sequence[str],
    attrs: Mapping[str, str] | None = None,
) -> xr.DataArray:
    """A model-order array (``own_dims`` in that order) as a ``DataArray`` in CF order.

    ``own_dims`` names every axis of ``values``: any leading dims (``time``, ``member``) then
    grid coordinates in model order; the result puts them in CF order.
    """
    array = xr.DataArray(values, dims=tuple(own_dims), attrs=dict(attrs or {}))
    grid = [d for d in cf_grid_order(model.coordinates) if d in own_dims]
    lead = [d for d in own_dims if d not in grid]
    return array.transpose(*lead, *grid)


def model_dataset(
    model: LabelledModel,
    fields: Mapping[str, np.ndarray],
    *,
    times: np.ndarray | None = None,
    members: bool = False,
    title: str,
    field_attrs: Mapping[str, Mapping[str, str]] | None = None,
    constants: bool = True,
    **attributes: object,
) -> xr.Dataset:
    """Build a CF-labelled ``Dataset`` from model-order arrays.

    Parameters
    ----------
    model : LabelledModel
        Gives the grid, coordinates, units and metadata (e.g. a ``GeneratedModel``).
    fields : mapping of str to numpy.ndarray
        ``(n_times, [members,] *grid)`` when ``times`` is given, else ``([members,] *grid)``,
        grid axes in model order.
    times : numpy.ndarray, optional
        ``(n_times,)`` model times of the leading axis.
    members : bool
        Whether the arrays have a member axis (after time).
    title : str
        The file's ``title``.
    field_attrs : mapping, optional
        ``long_name``/``units`` per variable.
    constants : bool
        Also store the model's constants (0-d variables) and constant fields (grid variables),
        so a file says with which winds, diffusivities... it was computed.
    **attributes
        Further global attributes (e.g. ``dt``, ``seed``).
    """
    lead = (["time"] if times is not None else []) + ([MEMBER_DIM] if members else [])
    dims = (*lead, *model.coordinates)
    data = {
        name: labelled(model, _array(value), dims, (field_attrs or {}).get(name))
        for name, value in fields.items()
    }
    coords: dict[str, xr.DataArray] = dict(grid_coordinates(model))
    if times is not None:
        coords["time"] = xr.DataArray(
            np.asarray(times, dtype=float),
            dims=("time",),
            attrs=time_attributes(model.time_units),
        )
    if members:
        count = next(iter(fields.values())).shape[len(lead) - 1]
        coords[MEMBER_DIM] = xr.DataArray(
            np.arange(count, dtype=np.int32), dims=(MEMBER_DIM,), attrs=member_attributes()
        )
    if constants:
        data.update(_constant_variables(model, exclude=set(data)))
    extra: dict[str, object] = {**model_attributes(model), **attributes}
    history = extra.pop("history", None)
    attrs = global_attributes(title, None if history is None else str(history), **extra)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _array(value: Any) -> Any:
    """A numpy array, or the value itself when it is a lazy Dask array (kept lazy)."""
    return value if hasattr(value, "dask") else np.asarray(value)


def _constant_variables(model: LabelledModel, exclude: set[str]) -> dict[str, xr.DataArray]:
    variables = {}
    for name in (*model.constants, *model.trainable_scalar_names):
        if name in exclude:
            continue
        kind = "trainable scalar" if name in model.trainable_scalar_names else "model constant"
        variables[name] = xr.DataArray(
            model.get_constant(name), attrs={"long_name": f"{kind} {name}", "units": "1"}
        )
    for name in model.constant_functions:
        if name in exclude:
            continue
        variables[name] = labelled(
            model,
            model.get_constant(name),
            model.coordinates,
            {"long_name": f"constant field {name} of the model", "units": "1"},
        )
    return variables


def to_model_order(model: LabelledModel, value: Any, name: str, leading: Sequence[str] = ()) -> Any:
    """An input given as ``xarray.DataArray`` transposed to model order; others unchanged.

    ``leading`` are the dims allowed before the grid (e.g. ``("member",)``). A DataArray must
    carry exactly the model's grid dims plus, optionally, those leading dims.
    """
    if not isinstance(value, xr.DataArray):
        return value
    grid = tuple(model.coordinates)
    extra = [d for d in value.dims if d not in grid]
    if any(d not in leading for d in extra) or not set(grid) <= set(value.dims):
        raise ValueError(
            f"{name}: DataArray dims {value.dims} do not match the model grid {grid}"
            + (f" (optionally preceded by {tuple(leading)})" if leading else "")
        )
    return value.transpose(*[d for d in leading if d in value.dims], *grid).values


def cf_labels(dataset: xr.Dataset) -> xr.Dataset:
    """The dataset with its string-valued dimension coordinates written as CF label variables.

    A CF coordinate variable (a variable named after its dimension) must be numeric and
    strictly monotonic (CF-1.8, section 5), so a string coordinate such as ``source`` or
    ``filter`` becomes the auxiliary coordinate ``source_name`` along the dimension ``source``
    (listed in the ``coordinates`` attribute of the variables that use it, CF section 6.1).
    :func:`open_results` turns it back into an index.
    """
    labels = [
        name
        for name, coord in dataset.coords.items()
        if name in dataset.dims and coord.dtype.kind in "OUS"
    ]
    for name in labels:
        coord = dataset[name]
        attrs = {"long_name": str(coord.attrs.get("long_name", name)), **coord.attrs}
        label = f"{name}{LABEL_SUFFIX}"
        dataset = dataset.drop_vars(str(name)).assign_coords(
            {label: ((name,), coord.values.astype(str), attrs)}
        )
        dataset[label].encoding["dtype"] = "S1"  # a char array: CF has no variable-length strings
    return dataset


def open_results(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a pkfnet results file into memory with its label dimensions as indexes.

    The inverse of :func:`cf_labels`: ``source_name`` along ``source`` becomes the index
    ``source`` again, so that ``ds.sel(source="pkf")`` works as on the dataset that was
    written. Plain ``xarray.open_dataset`` reads the same file (with ``source_name`` as an
    auxiliary coordinate).
    """
    with xr.open_dataset(path) as opened:
        dataset = opened.load()
    for name in list(dataset.coords):
        dim = str(name)[: -len(LABEL_SUFFIX)]
        if (
            str(name).endswith(LABEL_SUFFIX)
            and dataset[name].dims == (dim,)
            and dim not in dataset.coords
        ):
            dataset = dataset.rename_vars({name: dim}).set_xindex(dim)
    return dataset
