"""Physical dimensions of PKF quantities, unclosed terms and derived equations."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp

from closures import (
    DIMENSIONLESS,
    LENGTH,
    TIME,
    Dimension,
    DimensionError,
    DimensionSystem,
    field_unit,
)
from generator import TrainableScalar
from pkf import Expectation, SymbolicPKF

t, x, y, kappa = sp.symbols("t x y kappa")
u = sp.Function("u")(t, x)
v = sp.Function("v")(t, x)
U = field_unit("u")


@pytest.fixture(scope="module")
def burgers() -> SymbolicPKF:
    return SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))


def test_dimension_algebra_uses_exact_rational_exponents():
    assert LENGTH**2 / LENGTH**6 == Dimension({"L": -4})
    assert (U**2) ** Fraction(1, 2) == U
    assert str(U**2 / LENGTH**2 * TIME) == "L^-2 T U_u^2"
    assert str(DIMENSIONLESS) == "1" and (LENGTH / LENGTH).is_dimensionless
    assert len({LENGTH * U, U * LENGTH}) == 1


def test_every_pkf_quantity_has_its_dimension(burgers):
    system = DimensionSystem.from_pkf(burgers)
    field = burgers.fields["u"]
    expected = {
        field.mean: U,
        field.variance: U**2,
        field.metric[0, 0]: LENGTH**-2,
        field.aspect[0, 0]: LENGTH**2,
        field.diffusion[0, 0]: LENGTH**2,
        field.epsilon: DIMENSIONLESS,
        burgers.closure_slots[burgers.unclosed_terms[0]]: LENGTH**-4,
    }
    for expr, dim in expected.items():
        assert system.of(expr) == dim, expr
    assert system.of(field.diffusion[0, 0].diff(x, 2)) == DIMENSIONLESS
    assert system.of(field.variance.diff(x)) == U**2 / LENGTH
    assert system.of(sp.sqrt(field.variance)) == U
    assert system.is_positive(field.variance) and not system.is_positive(field.mean)


def test_unclosed_terms_are_inverse_lengths_to_the_number_of_derivatives(burgers):
    system = DimensionSystem.from_pkf(burgers)
    assert system.of(burgers.unclosed_terms[0]) == LENGTH**-4
    eps = burgers.fields["u"].epsilon
    assert system.of(Expectation(eps.diff(x) * eps.diff(x, 3))) == LENGTH**-4
    two = SymbolicPKF([sp.Eq(u.diff(t), v.diff(x)), sp.Eq(v.diff(t), u.diff(x))])
    system2 = DimensionSystem.from_pkf(two)
    eu, ev = two.fields["u"].epsilon, two.fields["v"].epsilon
    assert system2.of(Expectation(eu.diff(x) * ev.diff(x))) == LENGTH**-2
    assert system2.of(two.covariance("u", "v")) == U * field_unit("v")


def test_2d_tensor_components_off_diagonal_are_not_positive():
    w = sp.Function("w")(t, x, y)
    pkf = SymbolicPKF(sp.Eq(w.diff(t), -w.diff(x)))
    system = DimensionSystem.from_pkf(pkf)
    g = pkf.fields["w"].metric
    assert system.of(g[0, 1].diff(x, y)) == LENGTH**-4
    assert system.is_positive(g[0, 0]) and not system.is_positive(g[0, 1])


@pytest.mark.parametrize("form", ["in_metric", "in_aspect", "in_diffusion"])
def test_derived_burgers_equations_are_dimensionally_consistent(burgers, form):
    # Burgers ties the field unit to L/T (u du/dx is [U^2/L] like du/dt [U/T]).
    system = DimensionSystem.from_pkf(
        burgers, constants={"kappa": LENGTH**2 / TIME}, units={"u": LENGTH / TIME}
    )
    for equation in getattr(burgers, form):
        system.of(equation)  # raises on any inconsistent term


def test_errors_name_the_unknown_symbol_and_the_mixed_terms(burgers):
    system = DimensionSystem.from_pkf(burgers)
    with pytest.raises(DimensionError, match="unknown symbol 'kappa'"):
        system.of(kappa * u)
    nu = burgers.fields["u"].diffusion[0, 0]
    with pytest.raises(DimensionError, match=r"sum mixes dimensions: .* is \[L\^-4\] but .*"):
        system.of(1 / nu**2 + nu.diff(x) / nu**2)
    with pytest.raises(DimensionError, match="unknown quantity 'q'"):
        system.of(sp.Function("q")(t, x))
    with pytest.raises(DimensionError, match="argument"):
        system.of(sp.exp(nu))
    with pytest.raises(ValueError, match="units given for unknown field"):
        DimensionSystem.from_pkf(burgers, units={"w": LENGTH})


def test_trainable_scalars_are_dimensionless(burgers):
    system = DimensionSystem.from_pkf(burgers)
    nu = burgers.fields["u"].diffusion[0, 0]
    assert system.of(TrainableScalar("a_0") / nu**2) == LENGTH**-4
