"""Closure models from a dictionary of terms: trainable sympy expressions or Keras models.

Either ``sum_i a_i term_i`` with :class:`generator.TrainableScalar` coefficients, generated
inside the PKF model (``NNModelBuilder(..., closures={slot: expr})``), or an exogenous Keras
model (terms computed with periodic derivative stencils, then a linear layer without bias)
plugged with ``model.set_closure(slot, keras_model, inputs=[...])``.  For the same
coefficients both give the same forecast.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import sympy as sp
from keras import ops
from numpy.typing import ArrayLike
from sympy.core.function import AppliedUndef

from closures.dictionary import monomial_exponents
from generator import TrainableScalar
from generator.layers import periodic_derivatives
from generator.protocols import ClosableModel, DType
from generator.stencils import derivative_stencil

__all__ = [
    "DictionaryFeatures",
    "as_trainable_expression",
    "coefficient_names",
    "closure_coefficients",
    "linear_closure_model",
    "plug_linear_closure",
    "set_closure_coefficients",
    "term_fields",
]


def coefficient_names(count: int, prefix: str = "a") -> list[str]:
    """Names of the coefficients of a ``count``-term closure: ``prefix_0, prefix_1, ...``.

    >>> coefficient_names(3)
    ['a_0', 'a_1', 'a_2']
    """
    if not prefix.isidentifier():
        raise ValueError(f"prefix {prefix!r} is not a Python identifier")
    return [f"{prefix}_{k}" for k in range(count)]


def as_trainable_expression(
    terms: Sequence[sp.Expr],
    prefix: str = "a",
    init: float | Sequence[float] = 0.0,
    trainable: bool = True,
) -> sp.Expr:
    """``sum_i a_i * terms[i]`` with :class:`generator.TrainableScalar` coefficients.

    Parameters
    ----------
    terms : dictionary terms (sympy expressions of the model's fields).
    prefix : coefficient names are ``prefix_0, prefix_1, ...`` (see :func:`coefficient_names`).
    init : initial value of every coefficient, or one per term.
    trainable : False freezes the coefficients (they become saved constants).

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> nu = sp.Function("nu")(x)
    >>> as_trainable_expression([1 / nu**2, nu.diff(x) ** 2 / nu**3], init=[0.75, -2.0])
    a_0/nu(x)**2 + a_1*Derivative(nu(x), x)**2/nu(x)**3
    """
    terms = [sp.sympify(t) for t in terms]
    if not terms:
        raise ValueError("as_trainable_expression needs at least one term")
    values = np.asarray(init, dtype=float)
    if values.ndim and len(values) != len(terms):
        raise ValueError(f"{len(values)} initial values for {len(terms)} terms")
    values = np.broadcast_to(values, (len(terms),))
    names = coefficient_names(len(terms), prefix)
    return sp.Add(
        *(
            TrainableScalar(name, init=float(value), trainable=trainable) * term
            for name, value, term in zip(names, values, terms, strict=True)
        )
    )


def term_fields(terms: Sequence[sp.Expr]) -> list[str]:
    """Names of the fields the terms use, in order of first appearance.

    >>> x = sp.Symbol("x")
    >>> nu, v = sp.Function("nu")(x), sp.Function("V")(x)
    >>> term_fields([1 / nu**2, v.diff(x) / (v * nu)])
    ['nu', 'V']
    """
    names: list[str] = []
    for term in terms:
        for base in monomial_exponents(term):
            field = base.expr if isinstance(base, sp.Derivative) else base
            if not isinstance(field, AppliedUndef):
                raise ValueError(f"term {term}: factor {base} is not a field or its derivative")
            if field.func.__name__ not in names:
                names.append(field.func.__name__)
    return names


@keras.saving.register_keras_serializable(package="pkfnet")
class DictionaryFeatures(keras.layers.Layer):
    """Evaluates monomial terms of periodic fields: fields -> (batch, *grid, terms).

    Parameters
    ----------
    factors : list of ``(field index, derivative orders per axis)``; index into the
        inputs list.
    powers : per term, a list of ``(factor index, integer power)``.
    spacings : grid spacing per axis.
    accuracy : even order of accuracy of the centred stencils (as the generated model's).
    """

    def __init__(self, factors, powers, spacings, accuracy=2, **kwargs):
        super().__init__(**kwargs)
        self.factors = [(int(f), tuple(int(o) for o in orders)) for f, orders in factors]
        self.powers = [[(int(k), int(p)) for k, p in term] for term in powers]
        self.spacings = tuple(float(s) for s in spacings)
        self.accuracy = int(accuracy)
        self._kernels = [
            derivative_stencil(orders, self.spacings, self.accuracy) if any(orders) else None
            for _, orders in self.factors
        ]

    def call(self, fields):
        if not isinstance(fields, (list, tuple)):
            fields = [fields]
        values = []
        for (index, _), kernel in zip(self.factors, self._kernels, strict=True):
            field = fields[index]
            values.append(field if kernel is None else periodic_derivatives(field, [kernel])[0])
        columns = []
        for term in self.powers:
            numerator, denominator = None, None
            for k, p in term:
                for _ in range(abs(p)):
                    if p > 0:
                        numerator = values[k] if numerator is None else numerator * values[k]
                    else:
                        denominator = values[k] if denominator is None else denominator * values[k]
            if numerator is None:
                numerator = ops.ones_like(fields[0])
            columns.append(numerator if denominator is None else numerator / denominator)
        return ops.stack(columns, axis=-1)

    def compute_output_shape(self, input_shape):
        first = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (*first, len(self.powers))

    def get_config(self):
        config = super().get_config()
        config.update(
            factors=[[f, list(o)] for f, o in self.factors],
            powers=[[list(kp) for kp in term] for term in self.powers],
            spacings=list(self.spacings),
            accuracy=self.accuracy,
        )
        return config


def linear_closure_model(
    terms: Sequence[sp.Expr],
    shape: int | Sequence[int],
    spacings: float | Sequence[float],
    coordinates: Sequence[str] = ("x",),
    accuracy: int = 2,
    coefficients: Sequence[float] | None = None,
    inputs: Sequence[str] | None = None,
    dtype: DType = "float64",
    name: str = "linear_closure",
) -> tuple[keras.Model, list[str]]:
    """A Keras model ``sum_i c_i terms[i]`` on a periodic grid, and its input field names.

    The terms are computed from the input fields with centred periodic stencils (those of
    the generated models, :func:`generator.stencils.derivative_kernel`), stacked on a last
    axis and combined by a ``Dense(1, use_bias=False)`` layer named ``"coefficients"``.

    Parameters
    ----------
    terms : monomials of fields ``f(t, x, ...)`` and their derivatives.
    shape, spacings : grid points and spacing per axis.
    coordinates : coordinate names, in axis order.
    accuracy : stencil accuracy (use the generated model's).
    coefficients : initial coefficients (default zeros).
    inputs : input field names, in the order of the model's inputs (default
        :func:`term_fields`); may include fields the terms do not use.
    dtype : ``"float64"`` or ``"float32"``.

    Returns
    -------
    (model, inputs): the Keras model, taking a list of (batch, *grid) tensors in ``inputs``
    order and returning (batch, *grid, 1); and the input names for
    ``GeneratedModel.set_closure(slot, model, inputs=inputs)``.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> nu = sp.Function("nu")(x)
    >>> net, names = linear_closure_model([1 / nu**2], 16, 1 / 16, coefficients=[0.75])
    >>> names, tuple(net(np.full((1, 16), 0.5)).shape)
    (['nu'], (1, 16, 1))
    """
    terms = [sp.sympify(t) for t in terms]
    shape = tuple(int(n) for n in np.atleast_1d(shape))
    spacings = tuple(float(s) for s in np.atleast_1d(spacings))
    coordinates = tuple(str(c) for c in coordinates)
    if not len(shape) == len(spacings) == len(coordinates):
        raise ValueError(
            f"shape {shape}, spacings {spacings} and coordinates {coordinates} must have one "
            "entry per axis"
        )
    names = list(inputs) if inputs is not None else term_fields(terms)
    factors, powers = _plan(terms, names, coordinates)
    fields = [keras.Input(shape=shape, name=n, dtype=dtype) for n in names]
    features = DictionaryFeatures(factors, powers, spacings, accuracy, dtype=dtype, name="terms")(
        fields
    )
    output = keras.layers.Dense(1, use_bias=False, dtype=dtype, name="coefficients")(features)
    model = keras.Model(fields[0] if len(fields) == 1 else fields, output, name=name)
    values = np.zeros(len(terms)) if coefficients is None else np.asarray(coefficients, float)
    set_closure_coefficients(model, values)
    return model, names


def closure_coefficients(model: keras.Model) -> np.ndarray:
    """The coefficients (terms,) of a :func:`linear_closure_model`."""
    return np.asarray(model.get_layer("coefficients").get_weights()[0]).ravel()


def set_closure_coefficients(model: keras.Model, values: ArrayLike) -> None:
    """Set the coefficients (terms,) of a :func:`linear_closure_model`."""
    layer = model.get_layer("coefficients")
    kernel = layer.get_weights()[0]
    array = np.asarray(values, dtype=kernel.dtype)
    if array.shape != (kernel.shape[0],):
        raise ValueError(f"{array.shape[0]} coefficients for {kernel.shape[0]} terms")
    layer.set_weights([array.reshape(kernel.shape)])


def plug_linear_closure(
    model: ClosableModel,
    slot: str,
    terms: Sequence[sp.Expr],
    coefficients: Sequence[float] | None = None,
) -> keras.Model:
    """Build a :func:`linear_closure_model` matching a generated model and plug it in ``slot``.

    Grid, spacings, coordinates, stencil accuracy and dtype are the generated model's (or any
    :class:`generator.protocols.ClosableModel`'s); the inputs are the prognostic fields the
    terms use.

    Returns
    -------
    The plugged Keras model (its ``"coefficients"`` layer holds the trainable weights).

    Raises
    ------
    ValueError if a term uses a field that is not prognostic in ``model``.
    """
    names = term_fields(terms)
    unknown = [n for n in names if n not in model.prognostic_functions]
    if unknown:
        raise ValueError(
            f"closure '{slot}': term field(s) {unknown} are not prognostic fields of "
            f"{type(model).__name__} {list(model.prognostic_functions)}"
        )
    net, names = linear_closure_model(
        terms,
        model.shape,
        model.dx,
        model.coordinates,
        model.accuracy,
        coefficients,
        names,
        model.dtype,
        name=f"closure_{slot}",
    )
    model.set_closure(slot, net, inputs=names)
    return net


def _plan(
    terms: Sequence[sp.Expr], names: Sequence[str], coordinates: Sequence[str]
) -> tuple[list, list]:
    """(field index, orders) of each distinct factor, and (factor, power) per term."""
    symbols = [sp.Symbol(c) for c in coordinates]
    factors: list[tuple[int, tuple[int, ...]]] = []
    powers: list[list[tuple[int, int]]] = []
    for term in terms:
        entry = []
        for base, power in monomial_exponents(term).items():
            field = base.expr if isinstance(base, sp.Derivative) else base
            if not isinstance(field, AppliedUndef) or field.func.__name__ not in names:
                raise ValueError(f"term {term}: {field} is not one of the input fields {names}")
            orders = [0] * len(symbols)
            if isinstance(base, sp.Derivative):
                for variable, count in base.variable_count:
                    if variable not in symbols:
                        raise ValueError(f"term {term}: derivative in {variable}, not a coordinate")
                    orders[symbols.index(variable)] += int(count)
            key = (list(names).index(field.func.__name__), tuple(orders))
            if key not in factors:
                factors.append(key)
            entry.append((factors.index(key), int(power)))
        powers.append(entry)
    return factors, powers
