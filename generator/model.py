"""Runtime base class of generated models: trend model, time stepping, compiled forecasts.

A class produced by :class:`generator.NNModelBuilder` subclasses :class:`GeneratedModel` and
only declares what the equations contain (fields, constants, derivatives and a trend layer);
everything else — building the Keras trend model, Euler/RK2/RK4 steps, the compiled
multi-step forecast loop, checks on inputs and outputs — lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from .layers import PeriodicDerivatives, TrendLayer
from .timeschemes import TIME_SCHEMES

__all__ = ["GeneratedModel", "NonFiniteStateError"]


class NonFiniteStateError(FloatingPointError):
    """A forecast produced NaN or Inf (typically a CFL violation)."""


class GeneratedModel:
    """Base class of generated PDE models on a periodic grid.

    Parameters
    ----------
    shape : int or tuple of int
        Number of grid points per coordinate (default 100 per axis).
    lengths : float or tuple of float
        Domain length per coordinate (default 1.0); the grid is ``x_i = i * lengths/shape``.
    dtype : ``"float64"`` (default) or ``"float32"``.
    time_scheme : ``"euler"``, ``"rk2"`` or ``"rk4"`` (default).
    jit_compile : compile the forecast loop with XLA (default True).
    **values
        Every constant (scalar) and constant function (array shaped like the grid, or
        broadcastable to it along the field's own coordinates) by name.
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

    def __init__(
        self,
        shape: int | Sequence[int] | None = None,
        lengths: float | Sequence[float] | None = None,
        dtype: str = "float64",
        time_scheme: str = "rk4",
        jit_compile: bool = True,
        **values,
    ):
        ndim = len(self.coordinates)
        self.shape = _per_axis(shape, 100, ndim, "shape", int)
        self.lengths = _per_axis(lengths, 1.0, ndim, "lengths", float)
        self.dx = tuple(L / n for L, n in zip(self.lengths, self.shape, strict=True))
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = dtype
        if time_scheme not in TIME_SCHEMES:
            raise ValueError(
                f"time_scheme must be one of {sorted(TIME_SCHEMES)}, got {time_scheme!r}"
            )
        self.time_scheme = time_scheme
        self.jit_compile = jit_compile
        self._closures: dict[str, tuple[Callable, tuple[str, ...]]] = {}
        self.trend_model = self._build_trend_model()
        self._check_values(values)
        for name, value in values.items():
            self._set_value(name, value)
        self._advance = tf.function(
            self._advance_segments, jit_compile=jit_compile, reduce_retracing=True
        )

    # -- construction ---------------------------------------------------------------
    @property
    def grid(self) -> tuple[np.ndarray, ...]:
        """Coordinates of the grid points, one 1D array per axis."""
        return tuple(np.arange(n) * d for n, d in zip(self.shape, self.dx, strict=True))

    @property
    def trend_layer(self) -> TrendLayer:
        return self.trend_model.get_layer("trend")

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
            layer = PeriodicDerivatives(
                orders=[d[1] for d in derivs],
                spacings=self.dx,
                accuracy=self.accuracy,
                output_names=[d[0] for d in derivs],
                name=f"D_{name}",
                dtype=self.dtype,
            )
            fields.update(zip([d[0] for d in derivs], layer(tensor), strict=True))
        trend = self.trend_layer_class(
            shape=self.shape,
            spacings=self.dx,
            accuracy=self.accuracy,
            name="trend",
            dtype=self.dtype,
        )(fields)
        outputs = {
            name: keras.layers.Identity(name=f"trend_{name}", dtype=self.dtype)(trend[name])
            for name in self.prognostic_functions
        }
        return keras.Model(inputs=inputs, outputs=outputs, name=type(self).__name__)

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

    def _set_value(self, name: str, value) -> None:
        layer = self.trend_layer
        scalars = {**layer.constant_weights, **layer.scalar_weights}
        if name in scalars:
            array = np.asarray(value, dtype=self.dtype)
            if array.shape != ():
                raise ValueError(f"constant '{name}' must be a scalar, got shape {array.shape}")
            scalars[name].assign(array)
        elif name in layer.field_weights:
            layer.field_weights[name].assign(self._field_value(name, value))
        else:
            raise ValueError(
                f"'{name}' is neither a constant nor a constant function of this model"
            )

    def _field_value(self, name: str, value) -> np.ndarray:
        array = np.asarray(value, dtype=self.dtype)
        own = self.function_coordinates.get(name, self.coordinates)
        if array.shape == self.shape or array.ndim == 0:
            return np.broadcast_to(array, self.shape).copy()
        own_shape = tuple(self.shape[self.coordinates.index(c)] for c in own)
        if array.shape != own_shape:
            raise ValueError(
                f"constant function '{name}'({', '.join(own)}) needs shape {own_shape} or the "
                f"grid shape {self.shape}, got {array.shape}"
            )
        order = [own.index(c) for c in self.coordinates if c in own]
        array = np.transpose(array, order)
        index = tuple(slice(None) if c in own else None for c in self.coordinates)
        return np.broadcast_to(array[index], self.shape).copy()

    def set_constant(self, name: str, value) -> None:
        """Change a constant, trainable scalar or constant function after construction."""
        self._set_value(name, value)

    @property
    def trainable_scalars(self) -> dict[str, float]:
        """Current values of the trainable scalars, by name."""
        return {n: float(w.numpy()) for n, w in self.trend_layer.scalar_weights.items()}

    def get_constant(self, name: str) -> np.ndarray:
        """Current value of a constant, trainable scalar or constant function."""
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
        """Trend of every prognostic field; ``state`` is a tuple of (batch, *grid) tensors."""
        fields = dict(zip(self.prognostic_functions, state, strict=True))
        for name in self.exogenous_functions:
            fields[name] = self._exogenous(name, t, fields)
        out = self.trend_model(fields, training=False)
        return tuple(out[name] for name in self.prognostic_functions)

    def step_tensors(self, state: tuple, t, dt) -> tuple:
        """One time step of the model's scheme on a tuple of (batch, *grid) tensors."""
        return TIME_SCHEMES[self.time_scheme](self.trend_tensors, t, state, dt)

    # -- differentiable stepping ----------------------------------------------------
    def step_model(self, dt: float, steps: int = 1, return_sequence: bool = False) -> keras.Model:
        """The time scheme as a Keras model (the ResNet block of the paper's Figure 5).

        Parameters
        ----------
        dt : time step (time units).
        steps : number of chained steps (a k-step rollout model for multi-step losses).
        return_sequence : return every step, stacked as (batch, steps, *grid) per field,
            instead of the last state only.

        The model's inputs and outputs are dicts keyed by prognostic field; its weights are
        the trend model's (trainable scalars) and those of the plugged closure models, so
        gradients flow through all of them and through the initial state.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
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

    def _linearisation_inputs(self, state, vector, times):
        times = np.asarray(times, dtype=float)
        dt, indices = _saved_indices(times, None)
        x, batched = self._state_tensors(state)
        v, _ = self._state_tensors(vector)
        return (
            x,
            v,
            batched,
            tf.constant(times[0], self.dtype),
            tf.constant(dt, self.dtype),
            int(indices[-1]),
        )

    def tangent_linear(
        self, state: Mapping[str, np.ndarray], perturbation: Mapping[str, np.ndarray], times
    ) -> dict[str, np.ndarray]:
        """Tangent-linear model M'(x) δx over ``times`` by forward-mode differentiation.

        ``state`` and ``perturbation`` are dicts of arrays shaped like the grid (or with a
        batch axis); returns δx at ``times[-1]`` as a dict of arrays.
        """
        x, v, batched, t0, dt, steps = self._linearisation_inputs(state, perturbation, times)
        with tf.autodiff.ForwardAccumulator(x, v) as accumulator:
            y = self._propagate(x, t0, dt, steps)
        out = accumulator.jvp(y)
        return {
            n: _unbatch(o.numpy(), batched)
            for n, o in zip(self.prognostic_functions, out, strict=True)
        }

    def adjoint(
        self, state: Mapping[str, np.ndarray], cotangent: Mapping[str, np.ndarray], times
    ) -> dict[str, np.ndarray]:
        """Adjoint model M'(x)* δy over ``times`` by reverse-mode differentiation.

        ``cotangent`` is the sensitivity at ``times[-1]``; returns it pulled back to
        ``times[0]`` as a dict of arrays.
        """
        x, w, batched, t0, dt, steps = self._linearisation_inputs(state, cotangent, times)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = self._propagate(x, t0, dt, steps)
        out = tape.gradient(y, x, output_gradients=w)
        return {
            n: _unbatch(o.numpy(), batched)
            for n, o in zip(self.prognostic_functions, out, strict=True)
        }

    def save_weights(self, path: str) -> None:
        """Save trainable scalars, constants and plugged closure models (``*.weights.h5``)."""
        self.step_model(1.0).save_weights(path)

    def load_weights(self, path: str) -> None:
        """Load weights saved by :meth:`save_weights` into this model (same closures plugged)."""
        self.step_model(1.0).load_weights(path)

    def _advance_segments(self, state: tuple, t0, dt, segment_steps):
        """Integrate ``segment_steps[i]`` steps after each saved state; return them stacked."""
        count = segment_steps.shape[0]
        arrays = tuple(tf.TensorArray(s.dtype, size=count, element_shape=s.shape) for s in state)

        def segment(i, step, state, arrays):
            stop = step + segment_steps[i]

            def body(j, state):
                t = t0 + tf.cast(j, dt.dtype) * dt
                return j + 1, self.step_tensors(state, t, dt)

            step, state = tf.while_loop(lambda j, _: j < stop, body, (step, state))
            arrays = tuple(a.write(i, s) for a, s in zip(arrays, state, strict=True))
            return i + 1, step, state, arrays

        _, _, _, arrays = tf.while_loop(
            lambda i, *_: i < count, segment, (tf.constant(0), tf.constant(0), state, arrays)
        )
        return tuple(a.stack() for a in arrays)

    # -- public numpy API -----------------------------------------------------------
    def trend(self, t: float, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Trend ∂t of every prognostic field for a state (arrays shaped like the grid,
        or with a leading batch axis)."""
        tensors, batched = self._state_tensors(state)
        out = self.trend_tensors(tf.constant(t, self.dtype), tensors)
        return {
            n: _unbatch(v.numpy(), batched)
            for n, v in zip(self.prognostic_functions, out, strict=True)
        }

    def forecast(
        self,
        times: Sequence[float],
        state: Mapping[str, np.ndarray],
        saved_times: Sequence[float] | None = None,
    ) -> dict[float, dict[str, np.ndarray]]:
        """Integrate ``state`` over the uniformly spaced ``times``.

        Parameters
        ----------
        times : increasing, uniformly spaced times; the step is ``times[1] - times[0]``.
        state : field name → array shaped like the grid, or (members, *grid) for an ensemble.
        saved_times : times (among ``times``) at which the state is returned (default: all).

        Returns
        -------
        dict saved time → {field: array}, arrays shaped like the input state.

        Raises
        ------
        NonFiniteStateError naming the field and the first saved time where it is not finite.
        """
        times = np.asarray(times, dtype=float)
        dt, indices = _saved_indices(times, saved_times)
        tensors, batched = self._state_tensors(state)
        steps = np.diff(np.concatenate([[0], indices])).astype(np.int32)
        stacked = self._advance(
            tensors,
            tf.constant(times[0], self.dtype),
            tf.constant(dt, self.dtype),
            tf.constant(steps),
        )
        arrays = {n: a.numpy() for n, a in zip(self.prognostic_functions, stacked, strict=True)}
        self._check_finite(arrays, times[indices])
        return {
            float(times[idx]): {
                n: _unbatch(arrays[n][k], batched) for n in self.prognostic_functions
            }
            for k, idx in enumerate(indices)
        }

    def save(self, path: str) -> None:
        """Save the trend model (with constants and constant fields) as a ``.keras`` file."""
        self.trend_model.save(path)

    # -- checks -----------------------------------------------------------------------
    def _state_tensors(self, state: Mapping[str, np.ndarray]) -> tuple[tuple, bool]:
        missing = [n for n in self.prognostic_functions if n not in state]
        extra = [n for n in state if n not in self.prognostic_functions]
        if missing or extra:
            raise ValueError(
                f"state must hold exactly the prognostic fields {list(self.prognostic_functions)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unexpected {extra}" if extra else "")
            )
        arrays = [np.asarray(state[n], dtype=self.dtype) for n in self.prognostic_functions]
        batched = arrays[0].shape != self.shape
        for name, array in zip(self.prognostic_functions, arrays, strict=True):
            if array.shape[int(batched) :] != self.shape:
                raise ValueError(
                    f"field '{name}' has shape {array.shape}; expected the grid shape "
                    f"{self.shape} or (members, *{self.shape})"
                )
        if len({a.shape for a in arrays}) > 1:
            raise ValueError(f"fields have different shapes: {[a.shape for a in arrays]}")
        tensors = tuple(tf.constant(a if batched else a[None]) for a in arrays)
        return tensors, batched

    def _check_finite(self, arrays: Mapping[str, np.ndarray], saved: np.ndarray) -> None:
        for k, t in enumerate(saved):
            for name in self.prognostic_functions:
                if not np.isfinite(arrays[name][k]).all():
                    last = f"; the last finite saved state is at t = {saved[k - 1]:g}" if k else ""
                    raise NonFiniteStateError(
                        f"{type(self).__name__}.forecast: field '{name}' is not finite at "
                        f"t = {t:g}{last}; reduce the time step (CFL) or check the inputs"
                    )


def _per_axis(value, default, ndim: int, label: str, kind) -> tuple:
    if value is None:
        return (kind(default),) * ndim
    if np.isscalar(value):
        value = (value,)
    value = tuple(kind(v) for v in value)
    if len(value) != ndim:
        raise ValueError(f"{label} {value} must have one entry per coordinate ({ndim})")
    if any(v <= 0 for v in value):
        raise ValueError(f"{label} {value} must be positive")
    return value


def _saved_indices(times: np.ndarray, saved_times) -> tuple[float, np.ndarray]:
    if times.ndim != 1 or times.size < 1:
        raise ValueError(f"times must be a non-empty 1D sequence, got shape {times.shape}")
    if times.size == 1:
        dt = 0.0
    else:
        steps = np.diff(times)
        dt = float(steps[0])
        if dt <= 0 or not np.allclose(steps, dt, rtol=1e-9, atol=0):
            raise ValueError("times must be increasing and uniformly spaced")
    if saved_times is None:
        return dt, np.arange(times.size)
    saved = np.atleast_1d(np.asarray(saved_times, dtype=float))
    if dt == 0.0:
        indices = np.zeros(saved.size, dtype=int)
    else:
        indices = np.rint((saved - times[0]) / dt).astype(int)
    bad = (indices < 0) | (indices >= times.size)
    bad |= ~np.isclose(
        times[np.clip(indices, 0, times.size - 1)], saved, rtol=1e-9, atol=1e-12 * max(1.0, abs(dt))
    )
    if bad.any():
        raise ValueError(f"saved times {saved[bad].tolist()} are not among the forecast times")
    if np.any(np.diff(indices) < 0):
        raise ValueError("saved_times must be increasing")
    return dt, indices


def _unbatch(array: np.ndarray, batched: bool) -> np.ndarray:
    return array if batched else array[0]
