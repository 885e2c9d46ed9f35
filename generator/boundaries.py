"""Boundary conditions of generated models: declarations, boundary values and their imposition.

Every axis of a model is periodic (the default) or bounded. On a bounded axis each prognostic
field has one condition per side: :class:`Dirichlet` (prescribed value), :class:`Neumann`
(prescribed derivative) or :class:`Outflow` (none: the boundary point is prognostic). The
derivatives near a bounded side use off-centre stencils (:func:`generator.stencils.
boundary_weights`); :class:`BoundaryImposition` resets the Dirichlet and Neumann points of a
state at every Runge-Kutta stage. TensorFlow is imported only by the imposition.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from .stencils import boundary_weights
from .validation import real_array

__all__ = [
    "SIDES",
    "BoundaryImposition",
    "BoundarySeries",
    "Condition",
    "Conditions",
    "Dirichlet",
    "Neumann",
    "Outflow",
    "Periodic",
    "Side",
    "bounded_conditions",
    "describe_conditions",
    "normalize_boundaries",
    "periodic_axes",
]

Side = Literal["low", "high"]
#: The two sides of an axis: ``"low"`` at coordinate 0, ``"high"`` at the domain length.
SIDES: tuple[Side, Side] = ("low", "high")


def _declared_value(value: object, kind: str) -> float | None:
    """A declaration's value: a finite number, or None (to be given to the model)."""
    if value is None:
        return None
    if (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and np.isfinite(float(value))
    ):
        return float(value)
    raise ValueError(
        f"{kind}(value={value!r}): a declaration's value is a finite number or None; give "
        "arrays, functions of time and BoundarySeries to the model (boundary_values= or "
        "set_boundary_value)"
    )


@dataclass(frozen=True)
class Periodic:
    """Periodic axis: the last point's right neighbour is the first point (both sides)."""

    kind: ClassVar[str] = "periodic"


@dataclass(frozen=True)
class Dirichlet:
    """Prescribed value at the boundary point.

    Parameters
    ----------
    value : float or None, default 0.0
        The value (field units). ``None``: the value must be given when the model is
        constructed (``boundary_values=``) or with ``set_boundary_value``, where it may also be
        an array over the face, a function of time or a :class:`BoundarySeries`.
    """

    value: float | None = 0.0
    kind: ClassVar[str] = "dirichlet"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _declared_value(self.value, "Dirichlet"))


@dataclass(frozen=True)
class Neumann:
    """Prescribed derivative ∂u/∂x_i at the boundary point, along the increasing coordinate.

    The sign convention is the same on both sides: the value is the derivative along +x_i, not
    the outward normal derivative (which is ``-value`` on the low side). The boundary point is
    set from the interior so that the off-centre first derivative of the model's accuracy
    (``accuracy + 1`` points, :func:`generator.stencils.boundary_weights`) equals the value.

    Parameters
    ----------
    value : float or None, default 0.0 (no flux)
        The derivative (field units per length unit); ``None``: given to the model, as for
        :class:`Dirichlet`.
    """

    value: float | None = 0.0
    kind: ClassVar[str] = "neumann"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _declared_value(self.value, "Neumann"))


@dataclass(frozen=True)
class Outflow:
    """Open side: no condition; the boundary point is prognostic (off-centre derivatives).

    For transport leaving the domain (a first-order equation whose characteristics go out).
    A second derivative at a prognostic boundary point (diffusion) has a positive diagonal
    weight (``2/h²`` at accuracy 2), which makes the point grow at a rate ~ ``2κ/h²``: a
    diffusive equation needs a condition (:class:`Neumann`, :class:`Dirichlet`) on that side.
    At accuracy 4 and more, centred transport with this full-order closure has growing modes
    (slow at 4, fast at 6): use accuracy 2 for long transport runs.
    """

    kind: ClassVar[str] = "outflow"


Condition = Periodic | Dirichlet | Neumann | Outflow
#: Conditions by prognostic field, then coordinate: ``{field: {coordinate: (low, high)}}``.
Conditions = dict[str, dict[str, tuple[Condition, Condition]]]

_KINDS: dict[str, type[Condition]] = {
    "periodic": Periodic,
    "dirichlet": Dirichlet,
    "neumann": Neumann,
    "outflow": Outflow,
    "open": Outflow,
}


@dataclass(frozen=True, eq=False)
class BoundarySeries:
    """A boundary value given at times, linearly interpolated at every stage time.

    Parameters
    ----------
    times : (n_times,) array
        Strictly increasing, finite times (time units).
    values : (n_times, *face) or (n_times, members, *face) array
        The value at each time; ``face`` is the grid shape without the boundary's axis (``()``
        in 1D). With a member axis, member k of the state gets ``values[:, k]`` (its size must
        be the state's batch size, or 1). Outside ``times`` the first or last value is held; a
        forecast refuses times outside the series.

    Raises
    ------
    ValueError
        For non-increasing or non-finite times, non-finite values, or a first axis of
        ``values`` that does not match ``times``.

    Examples
    --------
    >>> series = BoundarySeries([0.0, 1.0], [[0.0, 0.0], [1.0, 2.0]])
    >>> series.values.shape
    (2, 2)
    """

    times: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        times = real_array(self.times, "BoundarySeries.times")
        values = real_array(self.values, "BoundarySeries.values")
        if times.ndim != 1 or times.size < 1:
            raise ValueError(f"BoundarySeries.times: expected a 1D array, got shape {times.shape}")
        if not np.isfinite(times).all() or (np.diff(times) <= 0).any():
            raise ValueError("BoundarySeries.times: expected finite, strictly increasing times")
        if values.ndim < 1 or values.shape[0] != times.size:
            raise ValueError(
                f"BoundarySeries.values: expected shape ({times.size}, ...) (one value per "
                f"time), got {values.shape}"
            )
        if not np.isfinite(values).all():
            raise ValueError("BoundarySeries.values: expected finite values")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)


def _condition(item: object, label: str) -> Condition:
    if isinstance(item, Periodic | Dirichlet | Neumann | Outflow):
        return item
    if isinstance(item, type) and item in (Periodic, Dirichlet, Neumann, Outflow):
        return item()
    if isinstance(item, str) and item.lower() in _KINDS:
        return _KINDS[item.lower()]()
    raise ValueError(
        f"{label}: unknown boundary condition {item!r}; expected one of "
        f"{sorted(_KINDS)} or Periodic(), Dirichlet(value), Neumann(value), Outflow()"
    )


def _pair(spec: object, label: str) -> tuple[Condition, Condition]:
    if isinstance(spec, tuple | list):
        if len(spec) != 2:
            raise ValueError(
                f"{label}: expected one condition or a (low, high) pair, got {len(spec)} items"
            )
        return _condition(spec[0], f"{label}[low]"), _condition(spec[1], f"{label}[high]")
    condition = _condition(spec, label)
    return condition, condition


def normalize_boundaries(
    declaration: Mapping[str, Any] | None,
    coordinates: Sequence[str],
    fields: Sequence[str],
    other_functions: Sequence[str] = (),
) -> Conditions:
    """Every prognostic field's ``(low, high)`` condition on every axis.

    Parameters
    ----------
    declaration : mapping or None
        Keys are coordinate names (the conditions of every prognostic field on that axis) or
        prognostic field names mapping to their own ``{coordinate: conditions}`` (overriding
        the coordinate's). Conditions are one condition for both sides or a ``(low, high)``
        pair, each a kind string (``"periodic"``, ``"dirichlet"``, ``"neumann"``,
        ``"outflow"`` or ``"open"``) or a condition object. ``None``: all periodic.
    coordinates : the system's coordinate names, in axis order.
    fields : the prognostic field names.
    other_functions : the system's other function names (for error messages).

    Returns
    -------
    dict
        ``{field: {coordinate: (low, high)}}`` for every field and coordinate.

    Raises
    ------
    ValueError
        Naming the item: an unknown coordinate (listing the system's), a function that is not
        prognostic, an unknown kind, a periodic condition on one side only, or an axis that is
        periodic for some fields and bounded for others.

    Examples
    --------
    >>> c = normalize_boundaries({"x": ("dirichlet", "outflow")}, ("x",), ("u",))
    >>> c["u"]["x"]
    (Dirichlet(value=0.0), Outflow())
    >>> normalize_boundaries({"x": "robin"}, ("x",), ("u",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: boundaries['x']: unknown boundary condition 'robin'; expected one of ...
    """
    declaration = {} if declaration is None else declaration
    if not isinstance(declaration, Mapping):
        raise TypeError(
            f"boundaries: expected a mapping of coordinate (or field) → conditions, got "
            f"{declaration!r}"
        )
    periodic = (Periodic(), Periodic())
    by_axis: dict[str, tuple[Condition, Condition]] = {}
    by_field: dict[str, dict[str, tuple[Condition, Condition]]] = {}
    for key, spec in declaration.items():
        if key in coordinates:
            by_axis[key] = _pair(spec, f"boundaries['{key}']")
        elif key in fields:
            if not isinstance(spec, Mapping):
                raise ValueError(
                    f"boundaries['{key}']: a field's conditions are a mapping of coordinate → "
                    f"conditions, got {spec!r}"
                )
            own = {}
            for coordinate, item in spec.items():
                if coordinate not in coordinates:
                    raise ValueError(
                        f"boundaries['{key}']: unknown coordinate {coordinate!r}; the system's "
                        f"coordinates are {list(coordinates)}"
                    )
                own[coordinate] = _pair(item, f"boundaries['{key}']['{coordinate}']")
            by_field[key] = own
        elif key in other_functions:
            raise ValueError(
                f"boundaries: {key!r} is not a prognostic function; conditions apply to the "
                f"prognostic fields {list(fields)}"
            )
        else:
            raise ValueError(
                f"boundaries: unknown coordinate {key!r}; the system's coordinates are "
                f"{list(coordinates)} and its prognostic fields {list(fields)} (a PKF "
                "declaration must use the form of the equations it is given with)"
            )
    conditions: Conditions = {
        f: {c: by_field.get(f, {}).get(c, by_axis.get(c, periodic)) for c in coordinates}
        for f in fields
    }
    for f, axes in conditions.items():
        for c, (low, high) in axes.items():
            if isinstance(low, Periodic) != isinstance(high, Periodic):
                raise ValueError(
                    f"boundaries: field {f!r}, coordinate {c!r}: periodic on one side only "
                    f"({low}, {high}); an axis is periodic on both sides or on neither"
                )
    for c in coordinates:
        flags = {f: isinstance(conditions[f][c][0], Periodic) for f in fields}
        if len(set(flags.values())) > 1:
            raise ValueError(
                f"boundaries: coordinate {c!r} is periodic for "
                f"{[f for f, p in flags.items() if p]} and bounded for "
                f"{[f for f, p in flags.items() if not p]}; the grid is shared, so an axis is "
                "periodic for every field or for none"
            )
    return conditions


def bounded_conditions(conditions: Conditions) -> Conditions:
    """Only the bounded axes of :func:`normalize_boundaries` (what a generated class declares).

    >>> bounded_conditions({"u": {"x": (Periodic(), Periodic()), "y": (Outflow(), Outflow())}})
    {'u': {'y': (Outflow(), Outflow())}}
    """
    return {
        f: {c: pair for c, pair in axes.items() if not isinstance(pair[0], Periodic)}
        for f, axes in conditions.items()
    }


def periodic_axes(conditions: Conditions, coordinates: Sequence[str]) -> tuple[bool, ...]:
    """Whether each axis is periodic (no field lists it in ``conditions`` as bounded)."""
    bounded = {
        c for axes in conditions.values() for c, p in axes.items() if not isinstance(p[0], Periodic)
    }
    return tuple(c not in bounded for c in coordinates)


def _side_text(condition: Condition) -> str:
    value = getattr(condition, "value", None)
    if isinstance(condition, Dirichlet | Neumann):
        return f"{condition.kind} {value:g}" if value is not None else f"{condition.kind} (given)"
    return condition.kind


def describe_conditions(conditions: Conditions, coordinates: Sequence[str]) -> str:
    """One line saying every field's conditions, ``"periodic"`` when every axis is.

    >>> describe_conditions({"u": {"x": (Dirichlet(1.0), Outflow())}}, ("x", "y"))
    'u(x: dirichlet 1 | outflow, y: periodic)'
    """
    if all(periodic_axes(conditions, coordinates)):
        return "periodic"
    parts = []
    for f, axes in conditions.items():
        sides = []
        for c in coordinates:
            pair = axes.get(c, (Periodic(), Periodic()))
            if isinstance(pair[0], Periodic):
                sides.append(f"{c}: periodic")
            else:
                sides.append(f"{c}: {_side_text(pair[0])} | {_side_text(pair[1])}")
        parts.append(f"{f}({', '.join(sides)})")
    return "; ".join(parts)


# -- boundary values and their imposition (TensorFlow) ---------------------------------------


@dataclass
class _Side:
    """One imposed side: its condition, where it is, and the current value's source."""

    field: int
    axis: int
    side: Side
    kind: str
    label: str
    source: str = "missing"  # "constant", "function", "series" or "missing"
    value: Any = None  # tf.Variable (constant), callable, or (times, values) tf.Variables
    description: str = "missing"
    constant: np.ndarray | None = None  # the constant value, for settings and fingerprints


class BoundaryImposition:
    """The Dirichlet and Neumann sides of a model, their values and the projection of states.

    Parameters
    ----------
    conditions : dict
        ``{field: {coordinate: (low, high)}}`` of the bounded axes (the generated class's
        ``boundary_conditions``).
    coordinates, fields : the model's coordinates (axis order) and prognostic fields.
    shape, spacings : the grid (points and spacing per axis).
    accuracy : the stencils' order of accuracy (Neumann sides use the same).
    dtype : the model's dtype.

    Values are numbers, face arrays (the grid shape without the side's axis, model order), a
    function ``value(t)`` of a scalar tensor returning a scalar, face or ``(batch, *face)``
    tensor (written with ``keras.ops``), or a :class:`BoundarySeries`. Numbers and arrays are
    held in TensorFlow variables (changing them needs no new compilation), a series too as long
    as its shapes stay the same.
    """

    def __init__(
        self,
        conditions: Conditions,
        coordinates: Sequence[str],
        fields: Sequence[str],
        shape: Sequence[int],
        spacings: Sequence[float],
        accuracy: int,
        dtype: str,
    ) -> None:
        self.coordinates = tuple(coordinates)
        self.fields = tuple(fields)
        self.shape = tuple(shape)
        self.spacings = tuple(spacings)
        self.accuracy = int(accuracy)
        self.dtype = dtype
        self.conditions = conditions
        low, high = boundary_weights(1, self.accuracy)
        # First derivative at the boundary point from the accuracy + 1 nearest points.
        self._neumann_rows = {"low": low[0], "high": high[-1]}
        self.sides: dict[tuple[str, str, Side], _Side] = {}
        for f, axes in conditions.items():
            for c, pair in axes.items():
                for side, condition in zip(SIDES, pair, strict=True):
                    if isinstance(condition, Dirichlet | Neumann):
                        entry = _Side(
                            self.fields.index(f),
                            self.coordinates.index(c),
                            side,
                            condition.kind,
                            f"field '{f}', coordinate '{c}', side '{side}' ({condition.kind})",
                        )
                        self.sides[(f, c, side)] = entry
                        if condition.value is not None:
                            self._assign(entry, condition.value)

    # -- values -------------------------------------------------------------------------
    def face_shape(self, axis: int) -> tuple[int, ...]:
        """Grid shape without ``axis`` (model order): the shape of a face value."""
        return self.shape[:axis] + self.shape[axis + 1 :]

    def condition(self, field: str, coordinate: str, side: str) -> Condition:
        """The declared condition of ``(field, coordinate, side)``, or a ValueError naming
        what is wrong (unknown field, coordinate or side; a periodic axis)."""
        if field not in self.fields:
            raise ValueError(
                f"boundary value: {field!r} is not a prognostic field; the prognostic fields "
                f"are {list(self.fields)}"
            )
        if coordinate not in self.coordinates:
            raise ValueError(
                f"boundary value for field '{field}': unknown coordinate {coordinate!r}; the "
                f"coordinates are {list(self.coordinates)}"
            )
        if side not in SIDES:
            raise ValueError(
                f"boundary value for field '{field}', coordinate '{coordinate}': side must be "
                f"'low' or 'high', got {side!r}"
            )
        pair = self.conditions.get(field, {}).get(coordinate)
        if pair is None:
            raise ValueError(
                f"boundary value for field '{field}', coordinate '{coordinate}': the axis is "
                "periodic (no boundary)"
            )
        return pair[SIDES.index(side)]

    def entry(self, field: str, coordinate: str, side: str) -> _Side:
        """The imposed side ``(field, coordinate, side)``, or a ValueError naming what is wrong."""
        condition = self.condition(field, coordinate, side)
        key = (field, coordinate, SIDES[SIDES.index(side)])  # side checked: a Side literal
        if key not in self.sides:
            kind = condition.kind
            raise ValueError(
                f"boundary value for field '{field}', coordinate '{coordinate}', side "
                f"'{side}': that side is {kind} (no condition); a Dirichlet or Neumann value "
                "cannot be imposed there"
            )
        return self.sides[key]

    def set(self, field: str, coordinate: str, side: str, value: Any) -> bool:
        """Set a side's value; True when compiled loops must be rebuilt (a new kind/shape)."""
        return self._assign(self.entry(field, coordinate, side), value)

    def _assign(self, entry: _Side, value: Any) -> bool:
        import tensorflow as tf

        face = self.face_shape(entry.axis)
        label = f"boundary value of {entry.label}"
        if isinstance(value, BoundarySeries):
            extra = value.values.shape[1:]
            if extra != face and extra[1:] != face:
                raise ValueError(
                    f"{label}: BoundarySeries values need shape (n_times, *{face}) or "
                    f"(n_times, members, *{face}), got {value.values.shape}"
                )
            times = value.times.astype(self.dtype)
            values = value.values.astype(self.dtype)
            old = entry.value if entry.source == "series" else None
            entry.source, entry.description, entry.constant = "series", "series", None
            if old is not None and old[0].shape == times.shape and old[1].shape == values.shape:
                old[0].assign(times)
                old[1].assign(values)
                return False
            entry.value = (
                tf.Variable(times, trainable=False, name="boundary_times"),
                tf.Variable(values, trainable=False, name="boundary_values"),
            )
            return True
        if callable(value):
            entry.source, entry.value, entry.constant = "function", value, None
            entry.description = "function of time"
            return True
        if hasattr(value, "dims") and hasattr(value, "transpose"):  # an xarray.DataArray
            own = tuple(c for c in self.coordinates if c != self.coordinates[entry.axis])
            if set(value.dims) != set(own):
                raise ValueError(f"{label}: DataArray dims {value.dims} must be {own}")
            value = value.transpose(*own).values
        array = real_array(value, label, self.dtype)
        if array.ndim and array.shape != face:
            raise ValueError(
                f"{label}: expected a number or an array over the face, shape {face} (the grid "
                f"without '{self.coordinates[entry.axis]}'), got shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"{label}: values must be finite")
        full = np.broadcast_to(array, face).astype(self.dtype)
        entry.constant = full.copy()
        entry.description = f"{float(array):g}" if array.ndim == 0 else "array"
        if entry.source == "constant":
            entry.value.assign(full)
            return False
        entry.source = "constant"
        entry.value = tf.Variable(full, trainable=False, name="boundary_value")
        return True

    def member_axis(self) -> bool:
        """Whether a side's value is a series with a member axis (one value per member)."""
        return any(
            e.source == "series" and e.value[1].shape.rank == len(self.shape) + 1
            for e in self.sides.values()
        )

    def missing(self) -> list[str]:
        """Labels of the imposed sides without a value."""
        return [e.label for e in self.sides.values() if e.source == "missing"]

    def check_complete(self, where: str) -> None:
        """Raise ValueError naming every imposed side that has no value."""
        missing = self.missing()
        if missing:
            raise ValueError(
                f"{where}: missing boundary value for {'; '.join(missing)}; give it with "
                "boundary_values= when constructing the model or with set_boundary_value"
            )

    def check_times(self, first: float, last: float, where: str) -> None:
        """Raise ValueError if a series does not cover the times ``first .. last``."""
        for e in self.sides.values():
            if e.source != "series":
                continue
            times = e.value[0].numpy()
            tolerance = 1e-9 * max(1.0, abs(first), abs(last))
            if first < times[0] - tolerance or last > times[-1] + tolerance:
                raise ValueError(
                    f"{where}: the BoundarySeries of {e.label} covers t = {times[0]:g} to "
                    f"{times[-1]:g}, not the forecast's {first:g} to {last:g}"
                )

    def settings(self) -> dict[str, dict[str, list[Any]]]:
        """The values as JSON-ready lists ``{field: {coordinate: [low, high]}}``: numbers and
        nested lists for constant values, ``None`` for a missing one, ``"function"`` or
        ``"series"`` for those that cannot be saved (:meth:`restore` leaves them missing, so
        that a forecast asks for them instead of silently using another value)."""
        out: dict[str, dict[str, list[Any]]] = {}
        for (f, c, side), e in self.sides.items():
            pair = out.setdefault(f, {}).setdefault(c, [None, None])
            if e.constant is not None:
                pair[SIDES.index(side)] = e.constant.tolist()
            elif e.source in ("function", "series"):
                pair[SIDES.index(side)] = e.source
        return out

    def restore(self, settings: Mapping[str, Mapping[str, Sequence[Any]]]) -> None:
        """Set the values saved by :meth:`settings` (functions and series become missing)."""
        for f, axes in settings.items():
            for c, sides in axes.items():
                for side, value in zip(SIDES, sides, strict=True):
                    if isinstance(value, str):
                        entry = self.entry(f, c, side)
                        entry.source, entry.value, entry.constant = "missing", None, None
                        entry.description = f"missing ({value} not saved)"
                    elif value is not None:
                        self.set(f, c, side, np.asarray(value))

    def fingerprint(self, digest: Any) -> None:
        """Add every side's value (bytes, or a function's code) to a hashlib digest."""
        for key, e in sorted(self.sides.items()):
            digest.update(f"{key}{e.kind}{e.source}".encode())
            if e.source == "constant":
                digest.update(np.ascontiguousarray(e.constant).tobytes())
            elif e.source == "series":
                for variable in e.value:
                    digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
            elif e.source == "function":
                digest.update(_function_fingerprint(e.value).encode())

    def describe(self) -> str:
        """The conditions with their current values, one line (see :func:`describe_conditions`)."""
        parts = []
        for f, axes in self.conditions.items():
            texts = []
            for c in self.coordinates:
                if c not in axes:
                    texts.append(f"{c}: periodic")
                    continue
                sides = []
                for side, condition in zip(SIDES, axes[c], strict=True):
                    e = self.sides.get((f, c, side))
                    sides.append(condition.kind if e is None else f"{e.kind} {e.description}")
                texts.append(f"{c}: {' | '.join(sides)}")
            parts.append(f"{f}({', '.join(texts)})")
        return "; ".join(parts)

    # -- imposition -----------------------------------------------------------------------
    def value_at(self, entry: _Side, t: Any) -> Any:
        """The side's value at time ``t`` (scalar tensor): ``()``, face or ``(batch, *face)``."""
        import tensorflow as tf

        if entry.source == "missing":
            self.check_complete("boundary imposition")
        if entry.source == "constant":
            return tf.convert_to_tensor(entry.value)
        if entry.source == "function":
            value = tf.cast(tf.convert_to_tensor(entry.value(t)), self.dtype)
            face = self.face_shape(entry.axis)
            rank = value.shape.rank
            if rank != 0 and (
                rank not in (len(face), len(face) + 1)
                or tuple(value.shape[rank - len(face) :]) != face
            ):
                raise ValueError(
                    f"boundary value of {entry.label}: the function returned shape "
                    f"{tuple(value.shape)}; expected (), {face} or (batch, *{face})"
                )
            return value
        times, values = entry.value
        count = int(times.shape[0])
        if count == 1:
            return tf.convert_to_tensor(values)[0]
        below = tf.reduce_sum(tf.cast(times[1:-1] <= t, tf.int32))
        t0, t1 = tf.gather(times, below), tf.gather(times, below + 1)
        weight = tf.clip_by_value((t - t0) / (t1 - t0), 0.0, 1.0)
        return (1 - weight) * tf.gather(values, below) + weight * tf.gather(values, below + 1)

    def project(self, t: Any, state: tuple) -> tuple:
        """The state with every Dirichlet and Neumann point reset from its condition at ``t``.

        ``state`` holds one ``(batch, *grid)`` tensor per prognostic field (Keras symbolic
        tensors too: only ``keras.ops``, slicing and ``where`` on constant masks touch it, so
        the projection is differentiable; its derivative is zero at the Dirichlet points);
        ``t`` is a scalar tensor or a number. Axes are done in coordinate order (a later axis
        sets the corners it shares with an earlier one); on each axis the Dirichlet sides
        first, then the Neumann sides (from the interior points).
        """
        import tensorflow as tf
        from keras import ops

        t = tf.cast(t, self.dtype) if tf.is_tensor(t) else tf.constant(t, self.dtype)
        fields = list(state)
        ndim = len(self.shape)
        for axis in range(ndim):
            for kind in ("dirichlet", "neumann"):
                for entry in self.sides.values():
                    if entry.axis != axis or entry.kind != kind:
                        continue
                    x = fields[entry.field]
                    slab = self._slab(entry, self.value_at(entry, t), x)
                    n = self.shape[axis]
                    mask = np.zeros((1,) * (axis + 1) + (n,) + (1,) * (ndim - axis - 1), bool)
                    mask[(0,) * (axis + 1) + (0 if entry.side == "low" else n - 1,)] = True
                    fields[entry.field] = ops.where(mask, slab, x)
        return tuple(fields)

    def _slab(self, entry: _Side, value: Any, x: Any) -> Any:
        """The new boundary points of ``x``, broadcastable to (batch, ..., 1, ...)."""
        from keras import ops

        axis = entry.axis + 1  # the batch axis comes first
        ndim = len(self.shape)
        rank = len(value.shape)
        if rank:
            if rank == ndim - 1:
                value = ops.expand_dims(value, 0)  # a face: the same for every member
            batch, state_batch = value.shape[0], x.shape[0]
            if batch not in (1, None) and state_batch is not None and batch != state_batch:
                raise ValueError(
                    f"boundary value of {entry.label}: {batch} members, but the state has "
                    f"{state_batch}; give one value per member or one for all"
                )
            value = ops.expand_dims(value, axis)
        n = self.shape[entry.axis]
        keep = (slice(None),) * axis
        if entry.kind == "dirichlet":
            return value
        # Neumann: w_b u_b + sum_j w_j u_j = h g, solved for the boundary point u_b.
        row = self._neumann_rows[entry.side]
        m = row.size
        nodes = range(m) if entry.side == "low" else range(n - m, n)
        boundary = 0 if entry.side == "low" else m - 1
        total = (self.spacings[entry.axis] / float(row[boundary])) * value
        for j, node in enumerate(nodes):
            if j != boundary and row[j]:
                total = (
                    total
                    - (float(row[j]) / float(row[boundary])) * x[keep + (slice(node, node + 1),)]
                )
        return total


def _function_fingerprint(function: Callable) -> str:
    """A hash of a boundary function's code, constants and captured values (one level)."""
    digest = hashlib.sha256(getattr(function, "__qualname__", repr(function)).encode())
    code = getattr(function, "__code__", None)
    if code is not None:
        digest.update(code.co_code)
        digest.update(repr(code.co_consts).encode())
    for cell in getattr(function, "__closure__", None) or ():
        contents = cell.cell_contents
        if isinstance(contents, np.ndarray):
            digest.update(np.ascontiguousarray(contents).tobytes())
        else:
            digest.update(repr(contents).encode())
    return digest.hexdigest()
