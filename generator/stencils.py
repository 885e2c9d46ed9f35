"""Centred finite-difference stencils on a uniform periodic grid.

One-dimensional weights come from sympy's exact rational Fornberg algorithm;
multi-dimensional (mixed) stencils are tensor products of the 1D ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
import sympy

__all__ = [
    "Stencil",
    "apply_stencils",
    "derivative_kernel",
    "derivative_stencil",
    "stencil_half_width",
    "stencil_weights",
]


def stencil_half_width(order: int, accuracy: int) -> int:
    """Half width r of the compact centred stencil (2r + 1 points).

    A centred scheme for the ``order``-th derivative with even ``accuracy`` p uses
    ``2 * ((order + 1) // 2) - 1 + p`` points, so ∂x and ∂x² use 3 points at p = 2,
    ∂x³ and ∂x⁴ use 5.

    >>> stencil_half_width(3, 2)
    2
    """
    _check_order_accuracy(order, accuracy)
    if order == 0:
        return 0
    return (order + 1) // 2 - 1 + accuracy // 2


@cache
def _exact_weights(order: int, accuracy: int) -> tuple[sympy.Rational, ...]:
    r = stencil_half_width(order, accuracy)
    offsets = list(range(-r, r + 1))
    weights = sympy.finite_diff_weights(order, offsets, 0)[order][-1]
    return tuple(sympy.Rational(w) for w in weights)


def stencil_weights(order: int, accuracy: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and weights of the centred stencil for d^order/dx^order, unit spacing.

    Parameters
    ----------
    order : int
        Derivative order (0, 1, 2, ...).
    accuracy : int
        Even order of accuracy (2, 4, 6, ...).

    Returns
    -------
    offsets : (2r + 1,) int array, grid offsets -r..r.
    weights : (2r + 1,) float64 array; divide by dx**order for spacing dx.

    >>> stencil_weights(2, 2)[1]
    array([ 1., -2.,  1.])
    """
    weights = np.array([float(w) for w in _exact_weights(order, accuracy)])
    r = (len(weights) - 1) // 2
    return np.arange(-r, r + 1), weights


def derivative_kernel(
    orders: tuple[int, ...], spacings: tuple[float, ...], accuracy: int = 2
) -> np.ndarray:
    """N-dimensional kernel of the mixed derivative ∂^orders, as a tensor product.

    Parameters
    ----------
    orders : tuple of int, one derivative order per axis (e.g. (1, 2) for ∂x ∂y²).
    spacings : tuple of float, the grid spacing of each axis (same units as the axes).
    accuracy : even order of accuracy of each 1D factor.

    Returns
    -------
    kernel : float64 array of shape (2 r_0 + 1, ..., 2 r_{n-1} + 1), centred, such that
        ``sum(kernel * patch)`` approximates the derivative at the patch centre.
    """
    if len(orders) != len(spacings):
        raise ValueError(
            f"derivative orders {orders} and spacings {spacings} must have the same length"
        )
    kernel = np.ones(())
    for order, dx in zip(orders, spacings, strict=True):
        _, w = stencil_weights(order, accuracy)
        kernel = np.multiply.outer(kernel, w / dx**order)
    return kernel


def _check_order_accuracy(order: int, accuracy: int) -> None:
    if not isinstance(order, (int, np.integer)) or order < 0:
        raise ValueError(f"derivative order must be a non-negative integer, got {order!r}")
    if not isinstance(accuracy, (int, np.integer)) or accuracy < 2 or accuracy % 2:
        raise ValueError(f"accuracy must be an even integer >= 2, got {accuracy!r}")


Stencil = tuple[np.ndarray, ...]
"""A separable stencil: one centred 1D weight array per grid axis (``[1.0]``: no derivative
along that axis), already divided by the spacings. :func:`derivative_stencil` builds them."""


def derivative_stencil(
    orders: tuple[int, ...], spacings: tuple[float, ...], accuracy: int = 2
) -> Stencil:
    """The mixed derivative ∂^orders as separable 1D factors (the tensor factors of
    :func:`derivative_kernel`).

    Examples
    --------
    >>> [w.tolist() for w in derivative_stencil((1, 0), (0.5, 1.0))]
    [[-1.0, 0.0, 1.0], [1.0]]
    """
    if len(orders) != len(spacings):
        raise ValueError(
            f"derivative orders {orders} and spacings {spacings} must have the same length"
        )
    return tuple(
        stencil_weights(order, accuracy)[1] / dx**order
        for order, dx in zip(orders, spacings, strict=True)
    )


def apply_stencils(
    field: Any,
    stencils: Sequence[Stencil],
    roll: Callable[..., Any],
    first_axis: int,
) -> list:
    """All centred stencils of one periodic field, axis by axis, sharing every shifted copy.

    The one stencil application of pkfnet: the generated Keras layers call it with
    ``keras.ops.roll`` on ``(batch, *grid)`` tensors, the numpy closure fits with
    ``numpy.roll`` on ``(..., *grid)`` arrays, so both evaluate exactly the same sums.

    A stencil is applied one axis after the other (it is a tensor product), and the partial
    result after the first ``k`` axes is computed once for every stencil that starts with the
    same ``k`` factors: ``∂x u`` and ``∂x ∂y u`` share ``∂x u``, whose two ``y``-shifted copies
    then give ``∂x ∂y u``. Every shifted copy of every partial result is made once. A
    one-axis stencil is the weighted sum of shifted copies in offset order, the same sum as the
    full kernel of :func:`derivative_kernel`.

    Parameters
    ----------
    field : array or tensor whose grid axes are ``first_axis, ..., first_axis + d - 1``.
    stencils : from :func:`derivative_stencil`, one per derivative wanted.
    roll : ``roll(array, shift, axis)`` of the backend (``numpy.roll``, ``keras.ops.roll``).
    first_axis : index of the first grid axis.

    Returns
    -------
    list, one array/tensor shaped like ``field`` per stencil (zeros for an all-zero stencil).

    Examples
    --------
    >>> f = np.array([0.0, 1.0, 4.0, 9.0])
    >>> apply_stencils(f, [derivative_stencil((2,), (1.0,))], np.roll, 0)[0]
    array([ 10.,   2.,   2., -14.])
    """
    partials: dict[tuple[bytes, ...], Any] = {(): field}
    shifted: dict[tuple[tuple[bytes, ...], int, int], Any] = {}

    def shift(key: tuple[bytes, ...], axis: int, offset: int) -> Any:
        if (key, axis, offset) not in shifted:
            base = partials[key]
            shifted[(key, axis, offset)] = base if offset == 0 else roll(base, -offset, axis)
        return shifted[(key, axis, offset)]

    def partial(stencil: Stencil, count: int) -> Any:
        key = tuple(np.asarray(w, dtype=np.float64).tobytes() for w in stencil[:count])
        if key not in partials:
            base = partial(stencil, count - 1)
            weights = np.asarray(stencil[count - 1], dtype=np.float64)
            if weights.size == 1 and weights[0] == 1.0:
                partials[key] = base  # no derivative along this axis
                return base
            half = weights.size // 2
            total = None
            for position in np.nonzero(weights)[0]:
                term = float(weights[position]) * shift(
                    key[:-1], first_axis + count - 1, int(position) - half
                )
                total = term if total is None else total + term
            partials[key] = total if total is not None else 0.0 * field
        return partials[key]

    return [partial(tuple(stencil), len(stencil)) for stencil in stencils]
