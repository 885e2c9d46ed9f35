"""Runtime base class of generated models: trend model, time stepping, compiled forecasts.

A class produced by :class:`generator.NNModelBuilder` subclasses :class:`GeneratedModel` and
only declares what the equations contain (fields, constants, derivatives and a trend layer);
everything else — building the Keras trend model, Euler/RK2/RK4 steps, the compiled forecast
(:mod:`generator.integrate`), labelled results (:mod:`generator.results`), checks on inputs and
outputs, saving and loading — lives here.

Array layout: numpy arrays of fields are in the model's coordinate order (``model.coordinates``)
with an optional leading member axis; a constant function ``k(y, x)`` is given in its own
argument order. ``xarray.DataArray`` inputs are matched by dimension name instead.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import xarray as xr
from numpy.typing import ArrayLike

from .boundaries import (
    SIDES,
    BoundaryImposition,
    Condition,
    Conditions,
    Neumann,
    bounded_conditions,
    normalize_boundaries,
    periodic_axes,
)
from .conventions import MEMBER_DIM
from .integrate import (
    DEFAULT_CACHE_BUDGET,
    WORKING_COPIES,
    NonFiniteStateError,
    chunk_sizes,
    compile_loop,
    largest_chunk,
    run_chunks,
    time_grid,
)
from .layers import Derivatives, TrendLayer
from .protocols import DType
from .results import model_dataset, to_model_order
from .stencils import one_sided_nodes
from .timeschemes import TIME_SCHEMES, TimeScheme
from .validation import finite_float, per_axis, positive_int, real_array

__all__ = ["GeneratedModel", "NonFiniteStateError", "load_model"]

#: Bytes a forecast's compiled loop may use at once (larger batches run in chunks).
DEFAULT_MEMORY_BUDGET = 1 << 30
#: Layer names inside the trend model; user names never start with ``pkfnet_``.
TREND_LAYER = "pkfnet_trend"


class GeneratedModel:
    """Base class of generated PDE models on a grid of periodic or bounded axes.

    Parameters
    ----------
    shape : int or tuple of int
        Number of grid points per coordinate (default 100 per axis).
    lengths : float or tuple of float
        Domain length per coordinate (default 1.0); the grid is ``x_i = i * lengths/shape`` on
        a periodic axis, ``x_i = i * lengths/(shape - 1)`` (both ends included) on a bounded
        one.
    dtype : ``"float64"`` (default) or ``"float32"``.
    time_scheme : ``"euler"``, ``"rk2"`` or ``"rk4"`` (default).
    jit_compile : compile the forecast loop with XLA (default True).
    time_units, length_units : str, optional
        UDUNITS units of the model's time and coordinates, written to results; without them
        time and space are dimensionless (``units = "1"``).
    boundary_values : mapping, optional
        Values of the Dirichlet and Neumann sides declared by the class
        (``boundary_conditions``), replacing the declared ones: ``{field: {coordinate:
        sides}}``, or ``{coordinate: sides}`` for every field with an imposed side there.
        ``sides`` is a ``(low, high)`` tuple (``None`` leaves a side as declared), a
        ``{"low": ..., "high": ...}`` mapping, or one value for every imposed side of the
        axis. A value is a number, an array over the face (the grid shape without the axis,
        model order), a function ``value(t)`` of a scalar tensor written with ``keras.ops``
        (returning a scalar, a face or a ``(batch, *face)`` tensor), or a
        :class:`generator.boundaries.BoundarySeries`; see :meth:`set_boundary_value`.
    **values
        Every constant (scalar) and constant function by name. A constant function is an array
        in its own argument order (``k(y, x)``: shape ``(ny, nx)``), a scalar (uniform), or an
        ``xarray.DataArray`` with its coordinate names as dims.

    Raises
    ------
    ValueError
        Naming the argument: non-positive or non-integral ``shape``, non-finite ``lengths``,
        unknown ``dtype`` / ``time_scheme``, missing or unknown constants, wrong array shapes,
        a bounded axis too short for its off-centre stencils, bad boundary values (naming the
        field, coordinate and side).
    """

    #: Filled in by generated subclasses.
    prognostic_functions: tuple[str, ...] = ()
    constant_functions: tuple[str, ...] = ()
    exogenous_functions: tuple[str, ...] = ()
    constants: tuple[str, ...] = ()
    trainable_scalar_names: tuple[str, ...] = ()
    diagnostic_functions: tuple[str, ...] = ()
    coordinates: tuple[str, ...] = ()
    time_variable: str = "t"
    accuracy: int = 2
    function_coordinates: dict[str, tuple[str, ...]] = {}
    field_derivatives: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}
    trend_layer_class: type[TrendLayer] = TrendLayer
    equations_text: str = ""
    #: The bounded axes' conditions ``{field: {coordinate: (low, high)}}`` (see
    #: :mod:`generator.boundaries`); axes not listed are periodic.
    boundary_conditions: Conditions = {}

    def __init__(
        self,
        shape: int | Sequence[int] | None = None,
        lengths: float | Sequence[float] | None = None,
        dtype: DType = "float64",
        time_scheme: TimeScheme = "rk4",
        jit_compile: bool = True,
        time_units: str | None = None,
        length_units: str | None = None,
        boundary_values: Mapping[str, Any] | None = None,
        **values: Any,
    ) -> None:
        self._configure(shape, lengths, dtype, time_scheme, jit_compile, time_units, length_units)
        self._check_values(values)
        for name, value in values.items():
            self._set_value(name, value)
        if boundary_values is not None:
            self._set_boundary_values(boundary_values)

    def _configure(
        self,
        shape: int | Sequence[int] | None,
        lengths: float | Sequence[float] | None,
        dtype: DType,
        time_scheme: TimeScheme,
        jit_compile: bool,
        time_units: str | None,
        length_units: str | None,
    ) -> None:
        ndim = len(self.coordinates)
        self.shape: tuple[int, ...] = per_axis(shape, ndim, "shape", "int", default=100)
        self.lengths: tuple[float, ...] = per_axis(lengths, ndim, "lengths", "float", default=1.0)
        conditions = normalize_boundaries(
            self.boundary_conditions, self.coordinates, self.prognostic_functions
        )
        self._conditions = bounded_conditions(conditions)
        self.periodic_axes: tuple[bool, ...] = periodic_axes(conditions, self.coordinates)
        self._check_bounded_sizes()
        self.dx: tuple[float, ...] = tuple(
            L / n if periodic else L / (n - 1)
            for L, n, periodic in zip(self.lengths, self.shape, self.periodic_axes, strict=True)
        )
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
        self.dtype: DType = dtype
        if time_scheme not in TIME_SCHEMES:
            raise ValueError(
                f"time_scheme: expected one of {sorted(TIME_SCHEMES)}, got {time_scheme!r}"
            )
        self.time_scheme: TimeScheme = time_scheme
        self.jit_compile = bool(jit_compile)
        self.time_units = time_units
        self.length_units = length_units
        self._closures: dict[str, tuple[Callable, tuple[str, ...]]] = {}
        self._loops: dict[str, Callable] = {}
        self._imposition: BoundaryImposition | None = None
        if not all(self.periodic_axes):
            self._imposition = BoundaryImposition(
                self._conditions,
                self.coordinates,
                self.prognostic_functions,
                self.shape,
                self.dx,
                self.accuracy,
                self.dtype,
            )
        self.trend_model = self._build_trend_model()

    def _check_bounded_sizes(self) -> None:
        """A bounded axis needs the points of its widest off-centre stencil."""
        layer = self.trend_layer_class
        orders = [
            spec[1]
            for table in (
                self.field_derivatives,
                layer.constant_function_derivatives,
                layer.diagnostic_derivatives,
            )
            for specs in table.values()
            for spec in specs
        ]
        for axis, (name, n, periodic) in enumerate(
            zip(self.coordinates, self.shape, self.periodic_axes, strict=True)
        ):
            if periodic:
                continue
            needed = [3] + [one_sided_nodes(o[axis], self.accuracy) for o in orders]
            neumann = any(
                isinstance(c, Neumann)
                for axes in self._conditions.values()
                for c in axes.get(name, ())
            )
            needed.append(self.accuracy + 1 if neumann else 0)
            if n < max(needed):
                raise ValueError(
                    f"shape[{axis}] = {n} on the bounded coordinate '{name}': its off-centre "
                    f"stencils of accuracy {self.accuracy} need at least {max(needed)} points"
                )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, lengths={self.lengths}, "
            f"dtype={self.dtype!r}, time_scheme={self.time_scheme!r})"
        )

    # -- construction ---------------------------------------------------------------
    @property
    def grid(self) -> tuple[np.ndarray, ...]:
        """Coordinates of the grid points, one 1D array per axis: ``i * dx``, ``i = 0..n-1``
        (a bounded axis ends at its length, a periodic one a step before)."""
        return tuple(np.arange(n) * d for n, d in zip(self.shape, self.dx, strict=True))

    @property
    def boundary_description(self) -> str:
        """The boundary conditions with their current values, one line (``"periodic"`` when
        every axis is)."""
        return "periodic" if self._imposition is None else self._imposition.describe()

    @property
    def trend_layer(self) -> TrendLayer:
        return self.trend_model.get_layer(TREND_LAYER)

    def _build_trend_model(self) -> keras.Model:
        inputs = {
            name: keras.Input(shape=self.shape, name=name, dtype=self.dtype)
            for name in (*self.prognostic_functions, *self.exogenous_functions)
        }
        fields = dict(inputs)
        for name, tensor in inputs.items():
            derivs = self.field_derivatives.get(name, ())
            if not derivs:
                continue
            layer = Derivatives(
                orders=[d[1] for d in derivs],
                spacings=self.dx,
                accuracy=self.accuracy,
                output_names=[d[0] for d in derivs],
                bounded=[not p for p in self.periodic_axes],
                name=f"pkfnet_D_{name}",
                dtype=self.dtype,
            )
            fields.update(zip([d[0] for d in derivs], layer(tensor), strict=True))
        layer = self.trend_layer_class(
            shape=self.shape,
            spacings=self.dx,
            accuracy=self.accuracy,
            bounded=[not p for p in self.periodic_axes],
            name=TREND_LAYER,
            dtype=self.dtype,
        )
        layer.model_settings = self._settings()
        trend = layer(fields)
        outputs = {
            name: keras.layers.Identity(name=f"pkfnet_trend_{name}", dtype=self.dtype)(trend[name])
            for name in self.prognostic_functions
        }
        return keras.Model(inputs=inputs, outputs=outputs, name=type(self).__name__)

    def _settings(self) -> dict[str, Any]:
        settings = {
            "shape": list(self.shape),
            "lengths": list(self.lengths),
            "dtype": self.dtype,
            "time_scheme": self.time_scheme,
            "jit_compile": self.jit_compile,
            "time_units": self.time_units,
            "length_units": self.length_units,
        }
        if self._imposition is not None:
            settings["boundary_values"] = self._imposition.settings()
        return settings

    def _check_values(self, values: Mapping) -> None:
        expected = (*self.constants, *self.constant_functions)
        unknown = [k for k in values if k not in expected]
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown keyword(s) {unknown}; the system's constants "
                f"and constant functions are {list(expected)}"
            )
        missing = [k for k in expected if k not in values]
        if missing:
            raise ValueError(
                f"{type(self).__name__}: missing value for {', '.join(repr(m) for m in missing)}; "
                "pass every constant and constant function by keyword"
            )

    def _set_value(self, name: str, value: Any) -> None:
        layer = self.trend_layer
        scalars = {**layer.constant_weights, **layer.scalar_weights}
        if name in scalars:
            array = real_array(value, f"constant '{name}'", self.dtype)
            if array.shape != ():
                raise ValueError(f"constant '{name}' must be a scalar, got shape {array.shape}")
            if not np.isfinite(array):
                raise ValueError(f"constant '{name}' must be finite, got {float(array)}")
            scalars[name].assign(array)
        elif name in layer.field_weights:
            layer.field_weights[name].assign(self._field_value(name, value))
        else:
            raise ValueError(
                f"'{name}' is neither a constant nor a constant function of this model"
            )

    def _field_value(self, name: str, value: Any) -> np.ndarray:
        own = self.function_coordinates.get(name, self.coordinates)
        label = f"constant function '{name}'({', '.join(own)})"
        if isinstance(value, xr.DataArray):
            if set(value.dims) != set(own):
                raise ValueError(f"{label}: DataArray dims {value.dims} must be {own}")
            value = value.transpose(*own).values
        array = real_array(value, label, self.dtype)
        if not np.isfinite(array).all():
            raise ValueError(f"{label}: values must be finite")
        if array.ndim == 0:
            return np.full(self.shape, array, dtype=self.dtype)
        own_shape = tuple(self.shape[self.coordinates.index(c)] for c in own)
        if array.shape != own_shape:
            hint = ""
            grid_order = tuple(c for c in self.coordinates if c in own)
            if own != grid_order and array.shape == own_shape[::-1]:
                hint = (
                    f"; arrays are read in the function's own argument order ({', '.join(own)}),"
                    " not the grid's: transpose it or pass an xarray.DataArray with named dims"
                )
            raise ValueError(f"{label} needs shape {own_shape}, got {array.shape}{hint}")
        order = [own.index(c) for c in self.coordinates if c in own]
        array = np.transpose(array, order)
        index = tuple(slice(None) if c in own else None for c in self.coordinates)
        return np.broadcast_to(array[index], self.shape).copy()

    def set_constant(self, name: str, value: Any) -> None:
        """Change a constant, trainable scalar or constant function after construction."""
        self._set_value(name, value)

    def boundary_condition(self, field: str, coordinate: str, side: str) -> Condition:
        """The declared condition (:mod:`generator.boundaries`) of one side of a bounded axis.

        Raises
        ------
        ValueError
            Naming the field, coordinate or side that is unknown, or the axis if it is
            periodic.
        """
        if self._imposition is None:
            raise ValueError(f"{type(self).__name__}: every axis is periodic (no boundary)")
        return self._imposition.condition(field, coordinate, side)

    def set_boundary_value(self, field: str, coordinate: str, side: str, value: Any) -> None:
        """Set the value of a Dirichlet or Neumann side.

        Parameters
        ----------
        field : a prognostic field.
        coordinate : a bounded coordinate.
        side : ``"low"`` (coordinate 0) or ``"high"`` (coordinate ``lengths``).
        value : number, array, callable or :class:`generator.boundaries.BoundarySeries`
            The boundary value (Dirichlet, field units) or the derivative along the increasing
            coordinate (Neumann, field units per length unit): a number; an array over the
            face, shaped like the grid without ``coordinate``'s axis (model order; an
            ``xarray.DataArray`` with those dims); a function ``value(t)`` of a scalar tensor of
            the model's dtype, written with ``keras.ops``, returning a scalar, a face-shaped or
            a ``(batch, *face)`` tensor (called at every stage time inside the compiled loop);
            or a ``BoundarySeries(times, values)`` interpolated linearly at the stage times.
            Numbers, arrays and series of unchanged shapes are held in variables: changing them
            reuses the compiled forecast (and an ensemble's compiled loop). A new function, or
            a series of another shape, is traced again by :meth:`forecast`; an
            ``EnsembleForecast`` made before keeps what it compiled: make a new one.

        Raises
        ------
        ValueError
            Naming the field, coordinate and side: not a prognostic field, an unknown or
            periodic coordinate, a side without condition (outflow), a wrong value shape or
            non-finite values.

        Examples
        --------
        >>> model.set_boundary_value("u", "x", "low", lambda t: keras.ops.sin(t))  # doctest: +SKIP
        """
        if self._imposition is None:
            raise ValueError(
                f"boundary value for field '{field}', coordinate '{coordinate}', side "
                f"'{side}': {type(self).__name__} is periodic on every axis (no boundary)"
            )
        if self._imposition.set(field, coordinate, side, value):
            self._loops.clear()

    def _set_boundary_values(self, values: Mapping[str, Any]) -> None:
        if not isinstance(values, Mapping):
            raise TypeError(
                f"boundary_values: expected a mapping of field or coordinate → values, got "
                f"{values!r}"
            )
        for key, spec in values.items():
            if key in self.prognostic_functions:
                if not isinstance(spec, Mapping):
                    raise ValueError(
                        f"boundary_values['{key}']: expected a mapping of coordinate → values, "
                        f"got {spec!r}"
                    )
                for coordinate, sides in spec.items():
                    self._set_sides([key], coordinate, sides, f"boundary_values['{key}']")
            elif key in self.coordinates:
                imposed = self._imposition.sides if self._imposition is not None else {}
                fields = [
                    f
                    for f in self.prognostic_functions
                    if any((f, key, side) in imposed for side in SIDES)
                ]
                if not fields:
                    raise ValueError(
                        f"boundary_values['{key}']: no field has a Dirichlet or Neumann side "
                        f"on coordinate '{key}'"
                    )
                self._set_sides(fields, key, spec, "boundary_values")
            else:
                raise ValueError(
                    f"boundary_values: unknown field or coordinate {key!r}; the prognostic "
                    f"fields are {list(self.prognostic_functions)} and the coordinates "
                    f"{list(self.coordinates)}"
                )

    def _set_sides(self, fields: Sequence[str], coordinate: str, sides: Any, label: str) -> None:
        if isinstance(sides, tuple):
            if len(sides) != 2:
                raise ValueError(
                    f"{label}['{coordinate}']: a tuple of sides is (low, high), got {len(sides)}"
                )
            pairs = dict(zip(SIDES, sides, strict=True))
        elif isinstance(sides, Mapping):
            unknown = [s for s in sides if s not in SIDES]
            if unknown:
                raise ValueError(
                    f"{label}['{coordinate}']: unknown side(s) {unknown}; sides are 'low' and "
                    "'high'"
                )
            pairs = dict(sides)
        else:  # one value for every imposed side
            imposed = self._imposition.sides if self._imposition is not None else {}
            pairs = {s: sides for s in SIDES if any((f, coordinate, s) in imposed for f in fields)}
            if not pairs:
                pairs = {"low": sides}  # raises below, naming the side
        for field in fields:
            for side, value in pairs.items():
                if value is not None:
                    self.set_boundary_value(field, coordinate, side, value)

    @property
    def trainable_scalars(self) -> dict[str, float]:
        """Current values of the trainable scalars, by name."""
        return {n: float(w.numpy()) for n, w in self.trend_layer.scalar_weights.items()}

    def get_constant(self, name: str) -> np.ndarray:
        """Current value of a constant, trainable scalar or constant function.

        Constant functions are returned in the model's coordinate order, grid-shaped.
        """
        layer = self.trend_layer
        weights = {**layer.constant_weights, **layer.scalar_weights, **layer.field_weights}
        weight = weights.get(name)
        if weight is None:
            raise ValueError(
                f"'{name}' is neither a constant nor a constant function of this model"
            )
        return np.asarray(weight.numpy())

    def set_closure(
        self, name: str, function: Callable, inputs: Sequence[str] | None = None
    ) -> None:
        """Plug a model into the exogenous function ``name``.

        Parameters
        ----------
        name : an exogenous function of the system.
        function : a Keras model or callable taking the listed fields (a single tensor, or
            a list of tensors in ``inputs`` order), each (batch, *grid), and returning the
            exogenous field (batch, *grid) (a trailing axis of size 1 is dropped).
        inputs : prognostic field names fed to ``function`` (default: all of them).
        """
        if name not in self.exogenous_functions:
            raise ValueError(
                f"'{name}' is not an exogenous function of {type(self).__name__}; "
                f"exogenous functions are {list(self.exogenous_functions)}"
            )
        inputs = tuple(inputs or self.prognostic_functions)
        bad = [i for i in inputs if i not in self.prognostic_functions]
        if bad:
            raise ValueError(f"closure '{name}': unknown input field(s) {bad}")
        self._closures[name] = (function, inputs)
        self._loops.clear()

    def fingerprint(self) -> dict[str, str]:
        """Everything that determines this model's results, as strings (for file headers).

        The generated source code (hash, which includes the declared boundary conditions),
        grid, dtype, time scheme, and a hash of every constant, constant field and trainable
        scalar value, of the boundary values (functions of time by their code and captured
        values) and of the plugged closure models' weights; a bounded model adds its
        ``boundary_conditions`` in words. Two models with the same fingerprint compute the same
        numbers (up to what a boundary function reads from globals).
        """
        digest = hashlib.sha256()
        for name in (*self.constants, *self.trainable_scalar_names, *self.constant_functions):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(self.get_constant(name)).tobytes())
        for name, (function, inputs) in sorted(self._closures.items()):
            digest.update(f"{name}{inputs}{type(function).__name__}".encode())
            for weight in getattr(function, "weights", ()):
                digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
        if self._imposition is not None:
            self._imposition.fingerprint(digest)
        source = type(self).source()
        fingerprint = {
            "model": type(self).__name__,
            "model_source_sha256": hashlib.sha256(source.encode()).hexdigest(),
            "shape": " ".join(map(str, self.shape)),
            "lengths": " ".join(repr(v) for v in self.lengths),
            "dtype": self.dtype,
            "time_scheme": self.time_scheme,
            "stencil_accuracy": str(self.accuracy),
            "values_sha256": digest.hexdigest(),
        }
        if self._imposition is not None:  # periodic models keep their earlier fingerprint
            fingerprint["boundary_conditions"] = self.boundary_description
        return fingerprint

    @classmethod
    def source(cls) -> str:
        """The generated module's source code (from the builder or the module file)."""
        code = getattr(cls, "source_code", None)
        if code:
            return code
        try:
            return inspect.getsource(sys.modules[cls.__module__])
        except (KeyError, OSError, TypeError):
            return cls.equations_text or cls.__name__

    # -- trend and steps on tensors -------------------------------------------------
    def _exogenous(self, name: str, t, fields: Mapping) -> object:
        if name not in self._closures:
            raise ValueError(
                f"exogenous function '{name}' has no value: plug a model with "
                f"set_closure('{name}', model, inputs=[...])"
            )
        function, inputs = self._closures[name]
        args = [fields[i] for i in inputs]
        value = function(args[0] if len(args) == 1 else args)
        if len(value.shape) == len(self.shape) + 2 and value.shape[-1] == 1:
            value = value[..., 0]
        return keras.ops.cast(value, self.dtype)

    def trend_tensors(self, t, state: tuple) -> tuple:
        """Trend of every prognostic field; ``state`` is a tuple of (batch, *grid) tensors.

        The right-hand sides on the state as given, with off-centre stencils near bounded sides
        (boundary conditions are not imposed here: see :meth:`project`)."""
        fields = dict(zip(self.prognostic_functions, state, strict=True))
        for name in self.exogenous_functions:
            fields[name] = self._exogenous(name, t, fields)
        out = self.trend_model(fields, training=False)
        return tuple(out[name] for name in self.prognostic_functions)

    def step_tensors(self, state: tuple, t, dt) -> tuple:
        """One time step of the model's scheme on a tuple of (batch, *grid) tensors.

        On a bounded grid the boundary conditions are imposed (:meth:`project`) on the state
        the step starts from, on every Runge-Kutta stage state at its stage time and on the
        result at ``t + dt``."""
        scheme = TIME_SCHEMES[self.time_scheme]
        if self._imposition is None:
            return scheme(self.trend_tensors, t, state, dt)
        return scheme(self.trend_tensors, t, state, dt, self._imposition.project)

    def project(self, t, state: tuple) -> tuple:
        """``state`` (a tuple of (batch, *grid) tensors) with the boundary conditions at time
        ``t`` imposed: Dirichlet points set to their value, Neumann points set from the
        interior so that the off-centre first derivative of the stencils' accuracy equals the
        prescribed derivative (along the increasing coordinate). Differentiable (Keras
        symbolic tensors too); the state itself on a periodic grid.

        Raises
        ------
        ValueError
            If an imposed side has no value (naming the field, coordinate and side).
        """
        if self._imposition is None:
            return tuple(state)
        return self._imposition.project(t, tuple(state))

    def check_boundary_values(
        self, where: str, first: float | None = None, last: float | None = None
    ) -> None:
        """Refuse a run whose boundary values are missing or do not cover ``[first, last]``.

        Raises
        ------
        ValueError
            Naming ``where``, the field, coordinate and side: an imposed side without a value,
            or a :class:`generator.boundaries.BoundarySeries` not covering the run's times.
        """
        self._check_boundaries(where, first, last)

    def _check_boundaries(
        self, where: str, first: float | None = None, last: float | None = None
    ) -> None:
        if self._imposition is None:
            return
        self._imposition.check_complete(f"{type(self).__name__}.{where}")
        if first is not None and last is not None:
            self._imposition.check_times(first, last, f"{type(self).__name__}.{where}")

    # -- differentiable stepping ----------------------------------------------------
    def step_model(self, dt: float, steps: int = 1, return_sequence: bool = False) -> keras.Model:
        """The time scheme as a Keras model (the ResNet block of the paper's Figure 5).

        Parameters
        ----------
        dt : time step (time units, finite and positive).
        steps : number of chained steps (a k-step rollout model for multi-step losses).
        return_sequence : return every step, stacked as (batch, steps, *grid) per field,
            instead of the last state only.

        The model's inputs and outputs are dicts keyed by prognostic field; its weights are
        the trend model's (trainable scalars) and those of the plugged closure models, so
        gradients flow through all of them and through the initial state. On a bounded grid
        the steps start at ``t = 0`` and use the boundary values set when the model is made
        (numbers and arrays are read once; build a new step model after changing them).
        """
        dt = finite_float(dt, "dt", "positive")
        steps = positive_int(steps, "steps")
        self._check_boundaries("step_model", 0.0, steps * dt)
        inputs = {
            name: keras.Input(shape=self.shape, name=name, dtype=self.dtype)
            for name in self.prognostic_functions
        }
        state = tuple(inputs[n] for n in self.prognostic_functions)
        sequence = []
        for k in range(steps):
            state = self.step_tensors(state, k * dt, dt)
            sequence.append(state)
        if return_sequence:
            outputs = {
                n: keras.ops.stack([s[i] for s in sequence], axis=1)
                for i, n in enumerate(self.prognostic_functions)
            }
        else:
            outputs = dict(zip(self.prognostic_functions, state, strict=True))
        name = f"{type(self).__name__}_{self.time_scheme}_x{steps}"
        return keras.Model(inputs=inputs, outputs=outputs, name=name)

    def _propagate(self, state: tuple, t0, dt, steps: int) -> tuple:
        def body(j, state):
            return j + 1, self.step_tensors(state, t0 + tf.cast(j, dt.dtype) * dt, dt)

        return tf.while_loop(lambda j, _: j < steps, body, (tf.constant(0), state))[1]

    def _linearisation_inputs(self, state, vector, times, label):
        grid = time_grid(times)
        x, batched = self._state_tensors(state, "state")
        v, batched_v = self._state_tensors(vector, label)
        if batched != batched_v or x[0].shape != v[0].shape:
            raise ValueError(
                f"{label}: shape {tuple(v[0].shape)} differs from the state's {tuple(x[0].shape)}"
            )
        t0, dt = tf.constant(grid.t0, self.dtype), tf.constant(grid.dt, self.dtype)
        self._check_boundaries(
            "tangent_linear" if label == "perturbation" else "adjoint",
            grid.t0,
            grid.t0 + grid.steps * grid.dt,
        )
        return x, v, batched, t0, dt, grid.steps

    def tangent_linear(
        self, state: Mapping[str, Any], perturbation: Mapping[str, Any], times: ArrayLike
    ) -> dict[str, np.ndarray]:
        """Tangent-linear model M'(x) δx over ``times`` by forward-mode differentiation.

        ``state`` and ``perturbation`` are dicts of arrays shaped like the grid (or with a
        batch axis); returns δx at ``times[-1]`` as a dict of arrays.

        Raises
        ------
        NonFiniteStateError
            If the result is not finite (naming the field).
        """
        x, v, batched, t0, dt, steps = self._linearisation_inputs(
            state, perturbation, times, "perturbation"
        )
        with tf.autodiff.ForwardAccumulator(x, v) as accumulator:
            y = self._propagate(x, t0, dt, steps)
        return self._outputs(accumulator.jvp(y), batched, "tangent_linear")

    def adjoint(
        self, state: Mapping[str, Any], cotangent: Mapping[str, Any], times: ArrayLike
    ) -> dict[str, np.ndarray]:
        """Adjoint model M'(x)* δy over ``times`` by reverse-mode differentiation.

        ``cotangent`` is the sensitivity at ``times[-1]``; returns it pulled back to
        ``times[0]`` as a dict of arrays.

        Raises
        ------
        NonFiniteStateError
            If the result is not finite (naming the field).
        """
        x, w, batched, t0, dt, steps = self._linearisation_inputs(
            state, cotangent, times, "cotangent"
        )
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = self._propagate(x, t0, dt, steps)
        return self._outputs(tape.gradient(y, x, output_gradients=w), batched, "adjoint")

    def _outputs(self, tensors, batched: bool, where: str) -> dict[str, np.ndarray]:
        arrays = {
            n: _unbatch(o.numpy(), batched)
            for n, o in zip(self.prognostic_functions, tensors, strict=True)
        }
        for name, array in arrays.items():
            if not np.isfinite(array).all():
                raise NonFiniteStateError(
                    f"{type(self).__name__}.{where}: field '{name}' is not finite "
                    f"({np.count_nonzero(~np.isfinite(array))} of {array.size} values); check "
                    "the inputs, the constants and the time step",
                    field=name,
                )
        return arrays

    def save_weights(self, path: str) -> None:
        """Save trainable scalars, constants and plugged closure models (``*.weights.h5``)."""
        self.step_model(1.0).save_weights(path)

    def load_weights(self, path: str) -> None:
        """Load weights saved by :meth:`save_weights` into this model (same closures plugged)."""
        self.step_model(1.0).load_weights(path)

    # -- public numpy / xarray API ------------------------------------------------------
    def trend(self, t: float, state: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Trend ∂t of every prognostic field for a state (arrays shaped like the grid,
        or with a leading batch axis).

        The right-hand sides evaluated on the state as given. On a bounded axis the
        derivatives use off-centre stencils at the first and last points, so the trend is
        defined there too; at Dirichlet and Neumann points it is what the equations give but
        the time schemes do not use it: those points are reset from their condition at every
        stage (:meth:`project`).

        Raises
        ------
        NonFiniteStateError
            If a trend is not finite (naming the field).
        """
        tensors, batched = self._state_tensors(state, "state")
        t = finite_float(t, "t")
        out = self.trend_tensors(tf.constant(t, self.dtype), tensors)
        return self._outputs(out, batched, "trend")

    def forecast(
        self,
        times: ArrayLike,
        state: Mapping[str, Any],
        saved_times: ArrayLike | None = None,
    ) -> xr.Dataset:
        """Integrate ``state`` over the uniformly spaced ``times`` in one compiled loop.

        Parameters
        ----------
        times : increasing, uniformly spaced times; the step is ``times[1] - times[0]``.
        state : field name → array shaped like the grid (model coordinate order), or
            ``(members, *grid)`` for an ensemble, or an ``xarray`` object with named dims
            (e.g. ``ds.isel(time=-1)`` of an earlier forecast).
        saved_times : strictly increasing times among ``times`` at which the state is kept
            (default: all).

        On a bounded grid the initial state is projected onto the boundary conditions at
        ``times[0]`` first (and kept so at ``times[0]``), then every step imposes them at
        every stage.

        Returns
        -------
        xarray.Dataset
            One variable per prognostic field, dims ``("time", [member,] *grid)`` with the
            grid in CF order (``y, x``); coordinates with units; the model's constants and
            constant fields; attributes saying how it was made (equations, scheme, ``dt``...).
            ``ds["u"].sel(time=0.7)`` gives the state at t = 0.7.

        Raises
        ------
        ValueError
            For bad times, saved times or states (naming the argument and field).
        NonFiniteStateError
            Naming the field and the first saved time where it is not finite; its ``partial``
            attribute holds the forecast up to the last finite saved time.
        """
        grid = time_grid(times, saved_times)
        tensors, batched = self._state_tensors(state, "state")
        if self._imposition is not None:
            self._check_boundaries("forecast", grid.t0, grid.t0 + grid.steps * grid.dt)
            tensors = self.project(tf.constant(grid.t0, self.dtype), tensors)
        if "states" not in self._loops:
            self._loops["states"] = compile_loop(
                self.step_tensors, lambda state: tuple(state), self.jit_compile
            )
        # A large batch runs in cache-sized chunks of members (one compiled loop, in order):
        # one big batch is memory-bound (see generator.integrate.largest_chunk).
        members = int(tensors[0].shape[0])
        itemsize = np.dtype(self.dtype).itemsize
        member_bytes = itemsize * int(np.prod(self.shape)) * len(self.prognostic_functions)
        member_bytes *= WORKING_COPIES + len(grid.saved_steps)
        sizes = chunk_sizes(
            members, largest_chunk(member_bytes, DEFAULT_MEMORY_BUDGET, DEFAULT_CACHE_BUDGET)
        )
        if self._imposition is not None and self._imposition.member_axis():
            sizes = (members,)  # boundary values per member: the members stay together
        bounds = np.cumsum([0, *sizes])
        chunks = (
            (tuple(t[start:stop] for t in tensors), ())
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
        )
        results = list(run_chunks(self._loops["states"], chunks, grid, self.dtype))
        written = min(len(r.saved[0]) for r in results)
        finite = all(r.finite for r in results) and all(len(r.saved[0]) == written for r in results)
        arrays = {
            n: np.concatenate([r.saved[k][:written] for r in results], axis=1)
            for k, n in enumerate(self.prognostic_functions)
        }
        if not batched:
            arrays = {n: a[:, 0] for n, a in arrays.items()}
        dataset = self._forecast_dataset(arrays, grid.saved_times[:written], grid.dt, batched)
        if not finite:
            self._raise_non_finite(dataset, grid.saved_times[:written])
        return dataset

    def state_at(self, dataset: xr.Dataset, time: float | None = None) -> dict[str, np.ndarray]:
        """The prognostic fields of a forecast at one saved time, as model-order numpy arrays.

        Parameters
        ----------
        dataset : xarray.Dataset
            A result of :meth:`forecast`.
        time : float, optional
            A saved time of ``dataset`` (default: the last one).

        Returns
        -------
        dict of str to numpy.ndarray
            ``{field: grid array}`` (or ``(members, *grid)``) in the model's coordinate order,
            ready for :meth:`forecast`, :meth:`trend` or :meth:`tangent_linear`.
        """
        snapshot = dataset.isel(time=-1) if time is None else dataset.sel(time=time)
        return {
            name: to_model_order(self, snapshot[name], name, (MEMBER_DIM,))
            for name in self.prognostic_functions
        }

    def _forecast_dataset(self, arrays, times, dt, batched) -> xr.Dataset:
        return model_dataset(
            self,
            arrays,
            times=times,
            members=batched,
            title=f"pkfnet forecast of {type(self).__name__}",
            field_attrs={n: {"long_name": n, "units": "1"} for n in arrays},
            dt=float(dt),
        )

    def _raise_non_finite(self, dataset: xr.Dataset, times: np.ndarray) -> None:
        last = dataset.isel(time=-1)
        bad = next(n for n in self.prognostic_functions if not np.isfinite(last[n].values).all())
        partial = dataset.isel(time=slice(0, -1)) if len(times) > 1 else None
        where = f"; the last finite saved state is at t = {times[-2]:g}" if len(times) > 1 else ""
        raise NonFiniteStateError(
            f"{type(self).__name__}.forecast: field '{bad}' is not finite at t = {times[-1]:g}"
            f"{where} (kept in the error's .partial); reduce the time step (CFL) or check the "
            "inputs",
            field=bad,
            time=float(times[-1]),
            partial=partial,
        )

    def save(self, path: str | Path) -> Path:
        """Save the model (trend network, constants, settings and generated code) as ``.keras``.

        Reload it with :func:`generator.load_model` (any process) to get the whole model back,
        forecast included; ``keras.saving.load_model`` gives the bare trend network. Boundary
        values that are numbers or arrays are saved; functions of time and series are not:
        the reloaded model has them missing (a forecast names them) until they are set again.
        """
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"path: a saved model file ends with '.keras', got {path.name!r}")
        self.trend_layer.model_settings = self._settings()  # the current boundary values
        self.trend_model.save(path)
        return path

    @classmethod
    def _restore(cls, settings: Mapping[str, Any]) -> GeneratedModel:
        model = cls.__new__(cls)
        model._configure(
            settings["shape"],
            settings["lengths"],
            settings["dtype"],
            settings["time_scheme"],
            settings.get("jit_compile", True),
            settings.get("time_units"),
            settings.get("length_units"),
        )
        if model._imposition is not None:
            model._imposition.restore(settings.get("boundary_values") or {})
        return model

    # -- checks -----------------------------------------------------------------------
    def _state_tensors(self, state: Mapping[str, Any], label: str) -> tuple[tuple, bool]:
        if isinstance(state, xr.Dataset):
            state = {n: state[n] for n in self.prognostic_functions if n in state}
        if not isinstance(state, Mapping):
            raise TypeError(f"{label}: expected a mapping of field name → array, got {state!r}")
        missing = [n for n in self.prognostic_functions if n not in state]
        extra = [n for n in state if n not in self.prognostic_functions]
        if missing or extra:
            raise ValueError(
                f"{label} must hold exactly the prognostic fields {list(self.prognostic_functions)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unexpected {extra}" if extra else "")
            )
        arrays = [
            real_array(
                to_model_order(self, state[n], f"{label}['{n}']", (MEMBER_DIM,)),
                f"{label}['{n}']",
                self.dtype,
            )
            for n in self.prognostic_functions
        ]
        batched = arrays[0].shape != self.shape
        for name, array in zip(self.prognostic_functions, arrays, strict=True):
            if array.shape[int(batched) :] != self.shape or array.ndim != len(self.shape) + batched:
                raise ValueError(
                    f"{label}['{name}'] has shape {array.shape}; expected the grid shape "
                    f"{self.shape} (coordinates {', '.join(self.coordinates)}) or "
                    f"(members, *{self.shape})"
                )
        if len({a.shape for a in arrays}) > 1:
            raise ValueError(
                f"{label}: fields have different shapes "
                f"{ {n: a.shape for n, a in zip(self.prognostic_functions, arrays, strict=True)} }"
            )
        for name, array in zip(self.prognostic_functions, arrays, strict=True):
            if not np.isfinite(array).all():
                raise ValueError(
                    f"{label}['{name}']: {np.count_nonzero(~np.isfinite(array))} values are not "
                    "finite"
                )
        tensors = tuple(tf.constant(a if batched else a[None]) for a in arrays)
        return tensors, batched


def _unbatch(array: np.ndarray, batched: bool) -> np.ndarray:
    return array if batched else array[0]


def load_model(path: str | Path, safe_mode: bool = True) -> GeneratedModel:
    """Reload a model saved by :meth:`GeneratedModel.save`, in this or another process.

    Parameters
    ----------
    path : path-like
        A ``.keras`` file written by :meth:`GeneratedModel.save`.
    safe_mode : bool, default True
        The file holds the generated module's source. When its class was not generated in this
        process, ``safe_mode=True`` refuses to run that code (rebuild the class from the same
        equations with ``NNModelBuilder(...).build()`` first, then load); ``safe_mode=False``
        runs it — only for files you trust, like ``keras.saving.load_model(safe_mode=False)``.

    Returns
    -------
    GeneratedModel
        An instance of the generated class with the saved grid, settings and weights (plugged
        closure models are not part of the file: plug them again and use
        :meth:`GeneratedModel.load_weights`).

    Raises
    ------
    ValueError
        If the file was not written by :meth:`GeneratedModel.save`, or its class is unknown in
        safe mode.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a saved pkfnet model ({err})") from None
    layer = next(
        (
            item
            for item in config.get("config", {}).get("layers", [])
            if item.get("config", {}).get("name") == TREND_LAYER
        ),
        None,
    )
    if layer is None or "source" not in layer["config"]:
        raise ValueError(f"{path}: not written by GeneratedModel.save (no generated trend layer)")
    registered = f"{layer['module'] if 'module' in layer else ''}"
    key = layer.get("registered_name") or registered
    trend_class = keras.saving.get_registered_object(key)
    if trend_class is None:
        if safe_mode:
            raise ValueError(
                f"{path}: its model class {layer['class_name']!r} ({key}) was not generated in "
                "this process; rebuild it from the same equations with NNModelBuilder(...)"
                ".build() before loading, or pass safe_mode=False to run the generated code "
                "stored in the file (only for files you trust)"
            )
        from .builder import execute_module

        execute_module(layer["config"]["source"], layer["class_name"].removesuffix("Trend"))
        trend_class = keras.saving.get_registered_object(key)
    model_class = trend_class.model_class
    model = model_class._restore(layer["config"]["model_settings"])
    loaded = keras.saving.load_model(path)
    model.trend_model.set_weights(loaded.get_weights())
    return model
