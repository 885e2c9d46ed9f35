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

__all__ = ["apply_stencils", "derivative_kernel", "stencil_half_width", "stencil_weights"]


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


def apply_stencils(
    field: Any,
    kernels: Sequence[np.ndarray],
    roll: Callable[..., Any],
    first_axis: int,
) -> list:
    """All centred stencils of one periodic field, as weighted sums of shifted copies.

    The one stencil application of pkfnet: the generated Keras layers call it with
    ``keras.ops.roll`` on ``(batch, *grid)`` tensors, the numpy closure fits with
    ``numpy.roll`` on ``(..., *grid)`` arrays, so both evaluate exactly the same sums.

    Parameters
    ----------
    field : array or tensor whose grid axes are ``first_axis, ..., first_axis + d - 1``.
    kernels : stencils from :func:`derivative_kernel`, each ``(2 r_0 + 1, ..., 2 r_{d-1} + 1)``,
        already divided by the grid spacings.
    roll : ``roll(array, shift, axis)`` of the backend (``numpy.roll``, ``keras.ops.roll``).
    first_axis : index of the first grid axis.

    Returns
    -------
    list, one array/tensor shaped like ``field`` per kernel (zeros for an all-zero kernel).

    Each shifted copy is made once and shared by every kernel that uses it; a diagonal shift is
    composed from one-axis rolls of an already shifted copy.

    Examples
    --------
    >>> f = np.array([0.0, 1.0, 4.0, 9.0])
    >>> apply_stencils(f, [derivative_kernel((2,), (1.0,))], np.roll, 0)[0]
    array([ 10.,   2.,   2., -14.])
    """
    ndim = len(kernels[0].shape) if kernels else 0
    shifted: dict[tuple[int, ...], Any] = {(0,) * ndim: field}

    def view(offset: tuple[int, ...]) -> Any:
        if offset not in shifted:
            axis = max(a for a in range(ndim) if offset[a])
            previous = offset[:axis] + (0,) * (ndim - axis)
            shifted[offset] = roll(view(previous), -offset[axis], first_axis + axis)
        return shifted[offset]

    outputs = []
    for kernel in kernels:
        half = [n // 2 for n in kernel.shape]
        total = None
        for position in zip(*np.nonzero(kernel), strict=True):
            weight = float(kernel[position])
            offset = tuple(int(p) - h for p, h in zip(position, half, strict=True))
            term = weight * view(offset)
            total = term if total is None else total + term
        outputs.append(total if total is not None else 0.0 * field)
    return outputs
