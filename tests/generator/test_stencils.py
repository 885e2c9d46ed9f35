"""Finite-difference stencils: measured convergence orders on smooth periodic functions."""

import numpy as np
import pytest
import sympy as sp

from generator.layers import periodic_derivatives
from generator.stencils import (
    apply_stencils,
    derivative_kernel,
    derivative_stencil,
    stencil_half_width,
    stencil_weights,
)

X = sp.Symbol("X")
# A smooth periodic function on [0, 1) that is not a single Fourier mode.
F1 = sp.exp(sp.sin(2 * sp.pi * X)) + sp.cos(4 * sp.pi * X) / 3


def apply_kernel(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Independent periodic application of a centred kernel with np.roll."""
    out = np.zeros_like(values)
    half = [s // 2 for s in kernel.shape]
    for position in zip(*np.nonzero(kernel), strict=True):
        shift = tuple(h - p for p, h in zip(position, half, strict=True))
        out += kernel[position] * np.roll(values, shift, axis=tuple(range(values.ndim)))
    return out


def error_1d(order: int, accuracy: int, n: int) -> float:
    x = np.arange(n) / n
    f = sp.lambdify(X, F1, "numpy")(x)
    exact = sp.lambdify(X, sp.diff(F1, X, order), "numpy")(x)
    approx = apply_kernel(f, derivative_kernel((order,), (1.0 / n,), accuracy))
    return float(np.max(np.abs(approx - exact)))


def measured_order(errors: list[float], ns: list[int]) -> float:
    return float(np.log(errors[-2] / errors[-1]) / np.log(ns[-1] / ns[-2]))


@pytest.mark.parametrize("accuracy", [2, 4, 6])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_centred_stencil_converges_at_requested_order_1d(order, accuracy):
    ns = [40, 80, 160]
    errors = [error_1d(order, accuracy, n) for n in ns]
    assert abs(measured_order(errors, ns) - accuracy) < 0.2, errors


def test_odd_order_stencils_are_compact():
    assert stencil_half_width(1, 2) == 1
    assert stencil_half_width(3, 2) == 2  # 5 points, not 7
    assert len(stencil_weights(3, 4)[0]) == 7
    assert stencil_half_width(0, 2) == 0


def test_stencil_weights_are_exact_for_polynomials():
    # A stencil of accuracy p for order m differentiates polynomials of degree m + p - 1 exactly.
    for order in range(1, 5):
        for accuracy in (2, 4, 6):
            offsets, weights = stencil_weights(order, accuracy)
            degree = order + accuracy - 1
            for k in range(degree + 1):
                value = np.sum(weights * offsets.astype(float) ** k)
                exact = float(sp.ff(k, order)) if k == order else 0.0
                assert value == pytest.approx(exact, abs=1e-9), (order, accuracy, k)


MIXED_CASES = [
    ((1, 1), sp.sin(2 * sp.pi * X) * sp.exp(sp.cos(2 * sp.pi * sp.Symbol("Y")))),
    ((2, 1), sp.exp(sp.sin(2 * sp.pi * X)) * sp.cos(2 * sp.pi * sp.Symbol("Y"))),
    (
        (1, 1, 1),
        sp.sin(2 * sp.pi * X)
        * sp.cos(2 * sp.pi * sp.Symbol("Y"))
        * sp.sin(4 * sp.pi * sp.Symbol("Z")),
    ),
    ((2, 0, 1), sp.exp(sp.sin(2 * sp.pi * X)) * sp.sin(2 * sp.pi * sp.Symbol("Z"))),
]


@pytest.mark.parametrize("accuracy", [2, 4, 6])
@pytest.mark.parametrize(("orders", "expr"), MIXED_CASES)
def test_mixed_derivative_converges_at_requested_order(orders, expr, accuracy):
    symbols = sp.symbols("X Y Z")[: len(orders)]
    exact_expr = sp.diff(expr, *[(s, o) for s, o in zip(symbols, orders, strict=True) if o])
    ns = [24, 48] if len(orders) == 3 else [48, 96]
    errors = []
    for n in ns:
        axes = np.meshgrid(*[np.arange(n) / n] * len(orders), indexing="ij")
        f = sp.lambdify(symbols, expr, "numpy")(*axes) * np.ones_like(axes[0])
        exact = sp.lambdify(symbols, exact_expr, "numpy")(*axes) * np.ones_like(axes[0])
        kernel = derivative_kernel(orders, (1.0 / n,) * len(orders), accuracy)
        errors.append(float(np.max(np.abs(apply_kernel(f, kernel) - exact))))
    assert abs(measured_order(errors, ns) - accuracy) < 0.2, errors


@pytest.mark.parametrize("accuracy", [2, 4])
def test_keras_periodic_derivatives_match_numpy_roll(accuracy):
    rng = np.random.default_rng(0)
    field = rng.normal(size=(3, 12, 10))
    orders = [(1, 0), (0, 2), (1, 1), (3, 0), (2, 2)]
    spacings = (0.1, 0.25)
    kernels = [derivative_kernel(o, spacings, accuracy) for o in orders]
    outputs = periodic_derivatives(
        field, [derivative_stencil(o, spacings, accuracy) for o in orders]
    )
    for kernel, out in zip(kernels, outputs, strict=True):
        # the separable application equals the full N-d kernel (rounding apart)
        expected = np.stack([apply_kernel(member, kernel) for member in field])
        np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-12, atol=1e-10)


def test_separable_stencils_share_partial_results():
    calls = []

    def counting_roll(array, shift, axis):
        calls.append((shift, axis))
        return np.roll(array, shift, axis)

    field = np.random.default_rng(1).normal(size=(8, 6))
    stencils = [derivative_stencil(o, (1.0, 1.0), 2) for o in [(1, 0), (2, 0), (0, 1), (1, 1)]]
    outputs = apply_stencils(field, stencils, counting_roll, 0)
    # u(x±1) shared by ∂x and ∂x²; u(y±1) for ∂y; (∂x u)(y±1) for ∂x∂y: six copies in all
    assert len(calls) == 6
    expected = apply_kernel(field, derivative_kernel((1, 1), (1.0, 1.0), 2))
    np.testing.assert_allclose(outputs[3], expected, rtol=1e-13, atol=1e-13)


def test_bad_order_or_accuracy_is_rejected():
    with pytest.raises(ValueError, match="accuracy"):
        stencil_weights(2, 3)
    with pytest.raises(ValueError, match="order"):
        stencil_weights(-1, 2)
    with pytest.raises(ValueError, match="same length"):
        derivative_kernel((1, 1), (0.1,))
