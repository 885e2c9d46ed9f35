"""Keras layers of generated models: finite-difference derivatives and the trend.

Keras has no circular padding. On a periodic axis every derivative of a field is instead a
weighted sum of periodically shifted copies of it (``ops.roll``), each copy made once per
field and shared by all its derivatives: the equivalent of wrap padding plus one
multi-channel valid convolution, which XLA fuses into a few loops (about 4x faster than
pad-and-slice on CPU). On a bounded axis the same sum is exact away from the ends, and the
first and last points are replaced by off-centre rows (``ops.where`` on a constant mask,
:func:`generator.stencils.apply_stencils`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import ops

from .stencils import Stencil, apply_stencils, derivative_stencil

if TYPE_CHECKING:
    from .model import GeneratedModel

__all__ = [
    "Derivatives",
    "PeriodicDerivatives",
    "TrendLayer",
    "grid_derivatives",
    "periodic_derivatives",
]


def _kernels(orders_list, spacings, accuracy, bounded=None) -> list[Stencil]:
    return [derivative_stencil(tuple(o), tuple(spacings), accuracy, bounded) for o in orders_list]


def grid_derivatives(x, stencils: Sequence[Stencil]) -> list:
    """All derivatives of one field ``x`` (batch, n_0, ..., n_{d-1}), periodic or bounded axes.

    ``stencils`` are separable stencils divided by the spacings
    (:func:`generator.stencils.derivative_stencil`, with ``bounded=`` for bounded axes); one
    tensor shaped like ``x`` is returned per stencil (see
    :func:`generator.stencils.apply_stencils`, shared with numpy).
    """
    return apply_stencils(
        x,
        stencils,
        lambda a, shift, axis: ops.roll(a, shift, axis),
        1,
        ops.where,
    )


def periodic_derivatives(x, stencils: Sequence[Stencil]) -> list:
    """All derivatives of one field ``x`` (batch, n_0, ..., n_{d-1}) on the periodic grid.

    The same as :func:`grid_derivatives` for stencils of periodic axes only.
    """
    return grid_derivatives(x, stencils)


@keras.saving.register_keras_serializable(package="pkfnet")
class Derivatives(keras.layers.Layer):
    """All finite-difference derivatives of one field on a grid of periodic or bounded axes.

    Parameters
    ----------
    orders : list of per-axis derivative orders, one entry per output.
    spacings : grid spacing of each axis.
    accuracy : even order of accuracy of the stencils (centred inside, off-centre rows of
        the same order near bounded sides).
    output_names : names of the outputs (for readability only).
    bounded : one bool per axis (default all False: periodic).
    """

    def __init__(self, orders, spacings, accuracy=2, output_names=None, bounded=None, **kwargs):
        super().__init__(**kwargs)
        self.orders = [tuple(int(v) for v in o) for o in orders]
        self.spacings = tuple(float(s) for s in spacings)
        self.accuracy = int(accuracy)
        self.output_names = list(output_names or [str(o) for o in self.orders])
        self.bounded = tuple(bool(b) for b in (bounded or (False,) * len(self.spacings)))
        self._kernels = _kernels(self.orders, self.spacings, self.accuracy, self.bounded)

    def call(self, x):
        return grid_derivatives(x, self._kernels)

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape)] * len(self.orders)

    def get_config(self):
        config = super().get_config()
        config.update(
            orders=[list(o) for o in self.orders],
            spacings=list(self.spacings),
            accuracy=self.accuracy,
            output_names=self.output_names,
            bounded=list(self.bounded),
        )
        return config


@keras.saving.register_keras_serializable(package="pkfnet")
class PeriodicDerivatives(Derivatives):
    """:class:`Derivatives` on a periodic grid (the layer of models saved before bounded axes
    existed; kept so that their files load)."""


class TrendLayer(keras.layers.Layer):
    """Base of the generated trend layers: holds constants and constant fields as weights.

    A generated subclass sets the class attributes ``constant_names`` (scalars),
    ``constant_function_names`` (fields without time) and
    ``constant_function_derivatives`` (name → list of (derivative name, orders)),
    ``trainable_scalar_specs`` ((name, init, trainable) of each trainable scalar) and
    ``diagnostic_derivatives`` (derivatives of diagnostic fields), and implements
    ``compute_trend(fields, constants)``; ``constants`` holds the constants and the trainable
    scalars. Constants are non-trainable weights, trainable scalars trainable ones, so both
    are saved with the model and can be changed without rebuilding it.

    Parameters
    ----------
    shape : grid shape (n_0, ..., n_{d-1}).
    spacings : grid spacing of each axis.
    accuracy : even order of accuracy of the stencils.
    bounded : one bool per axis (default all False: periodic); the derivatives of constant
        and diagnostic fields use off-centre rows near bounded sides, as the prognostic ones.
    """

    constant_names: tuple[str, ...] = ()
    constant_function_names: tuple[str, ...] = ()
    constant_function_derivatives: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}
    trainable_scalar_specs: tuple[tuple[str, float, bool], ...] = ()
    diagnostic_derivatives: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {}

    #: The generated model class this trend belongs to (set by the generated module).
    model_class: type[GeneratedModel] | None = None

    def __init__(
        self,
        shape,
        spacings,
        accuracy=2,
        source=None,
        model_settings=None,
        bounded=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.model_settings = dict(model_settings or {})
        self.grid_shape = tuple(int(n) for n in shape)
        self.spacings = tuple(float(s) for s in spacings)
        self.accuracy = int(accuracy)
        self.bounded = tuple(bool(b) for b in (bounded or (False,) * len(self.grid_shape)))
        self.constant_weights = {
            name: self.add_weight(
                name=name, shape=(), initializer="zeros", trainable=False, dtype=self.dtype
            )
            for name in self.constant_names
        }
        self.field_weights = {
            name: self.add_weight(
                name=name,
                shape=self.grid_shape,
                initializer="zeros",
                trainable=False,
                dtype=self.dtype,
            )
            for name in self.constant_function_names
        }
        self.scalar_weights = {
            name: self.add_weight(
                name=name,
                shape=(),
                initializer=keras.initializers.Constant(init),
                trainable=trainable,
                dtype=self.dtype,
            )
            for name, init, trainable in self.trainable_scalar_specs
        }
        for (_, init, _), weight in zip(
            self.trainable_scalar_specs, self.scalar_weights.values(), strict=True
        ):
            weight.assign(np.asarray(init, dtype=self.dtype))  # exact, not via float32
        self._field_kernels = {
            name: (
                [d[0] for d in derivs],
                _kernels([d[1] for d in derivs], self.spacings, self.accuracy, self.bounded),
            )
            for name, derivs in {
                **self.constant_function_derivatives,
                **self.diagnostic_derivatives,
            }.items()
        }

    def constant_fields(self) -> dict:
        """Constant fields (1, *grid) and their derivatives, by generated name."""
        fields = {}
        for name, weight in self.field_weights.items():
            value = ops.expand_dims(ops.convert_to_tensor(weight), 0)
            fields[name] = value
            if name in self._field_kernels:
                names, kernels = self._field_kernels[name]
                fields.update(zip(names, grid_derivatives(value, kernels), strict=True))
        return fields

    def call(self, fields):
        all_fields = dict(fields)
        all_fields.update(self.constant_fields())
        weights = {**self.constant_weights, **self.scalar_weights}
        constants = {k: ops.convert_to_tensor(w) for k, w in weights.items()}
        trends = self.compute_trend(all_fields, constants)
        return {name: self._as_field(value, fields[name]) for name, value in trends.items()}

    def _as_field(self, value, like):
        """A trend as a tensor shaped and typed like its field ``like`` (batch, *grid).

        Trends without fields (``u_t = 1``, ``u_t = k``) and trends of constant fields only,
        shaped (1, *grid), are broadcast to the batch; numbers keep the model's dtype.
        """
        if isinstance(value, int | float):  # a number: exact in the model's dtype
            value = ops.convert_to_tensor(value, dtype=self.dtype)
        value = ops.cast(value, self.dtype)
        if tuple(value.shape) != tuple(like.shape):
            value = value + ops.zeros_like(like)
        return value

    def derivatives_of(self, name: str, value) -> list:
        """The derivatives of diagnostic field ``name`` listed in ``diagnostic_derivatives``."""
        return grid_derivatives(value, self._field_kernels[name][1])

    def compute_trend(self, fields: dict, constants: dict) -> dict:
        raise NotImplementedError("generated subclasses implement compute_trend")

    def get_config(self):
        config = super().get_config()
        config.update(
            shape=list(self.grid_shape),
            spacings=list(self.spacings),
            accuracy=self.accuracy,
            bounded=list(self.bounded),
            model_settings=self.model_settings,
            source=self.model_class.source() if self.model_class is not None else None,
        )
        return config
