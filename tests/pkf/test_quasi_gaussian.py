"""Quasi-Gaussian closure proposal (pkf-notes.md) in 1D, 2D and 3D."""

from __future__ import annotations

import sympy as sp

from pkf.derivation import SymbolicPKF
from pkf.quasi_gaussian import quasi_gaussian_closure, quasi_gaussian_expectation

t, x, y, z, kappa = sp.symbols("t x y z kappa")


def test_fourth_order_1d_proposal_matches_notes():
    s = sp.Function("s")(x)
    proposal = quasi_gaussian_closure(sp.Matrix([[s]]), (x,), (4,))
    expected = 3 * s.diff(x, 2) / s**2 + 3 / s**2 - 3 * s.diff(x) ** 2 / s**3
    assert sp.expand(proposal.expression - expected) == 0
    assert proposal.template.subs(proposal.values) == proposal.expression
    assert len(proposal.coefficients) == 3
    assert proposal.template.free_symbols >= set(proposal.coefficients)


def test_low_orders_agree_with_exact_identities():
    s = sp.Function("s")(x)
    assert quasi_gaussian_expectation(sp.Matrix([[s]]), (x,), (2,)) == -1 / s
    third = quasi_gaussian_expectation(sp.Matrix([[s]]), (x,), (3,))
    assert sp.expand(third - (-sp.Rational(3, 2) * (1 / s).diff(x))) == 0


def test_2d_homogeneous_limit_uses_product_of_factorials():
    a, b, c = (sp.Function(n)(x, y) for n in "abc")
    value = quasi_gaussian_expectation(sp.Matrix([[a, b], [b, c]]), (x, y), (2, 2))
    A, B, C = sp.symbols("A B C", positive=True)
    G = sp.Matrix([[A, B], [B, C]]).inv()
    homogeneous = value.subs({a: A, b: B, c: C}).doit()
    # Isserlis for exp(-d^T G d / 2): d_x^2 d_y^2 rho(0) = G_xx G_yy + 2 G_xy^2 (alpha! = 2! 2!)
    assert sp.simplify(homogeneous - (G[0, 0] * G[1, 1] + 2 * G[0, 1] ** 2)) == 0


def test_2d_proposal_reduces_to_1d_along_a_separable_axis():
    a = sp.Function("a")(x)
    c = sp.Symbol("c", positive=True)
    value = quasi_gaussian_expectation(sp.Matrix([[a, 0], [0, c]]), (x, y), (4, 0))
    one_d = quasi_gaussian_expectation(sp.Matrix([[a]]), (x,), (4,))
    assert sp.simplify(value - one_d) == 0


def test_3d_second_order_proposal_is_minus_the_metric():
    s = sp.Matrix(3, 3, lambda i, j: sp.Function(f"s{min(i, j)}{max(i, j)}")(x, y, z))
    value = quasi_gaussian_expectation(s, (x, y, z), (1, 0, 1))
    assert sp.simplify(value + s.inv()[0, 2]) == 0


def test_pkf_proposal_for_burgers_term_closes_the_system():
    u = sp.Function("u")(t, x)
    pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    term = pkf.unclosed_terms[0]
    proposal = pkf.quasi_gaussian_closure(term)
    pkf.set_closure({term: proposal.template})
    equations = pkf.to_generator("diffusion")
    assert all(not eq.rhs.has(sp.Function("closure_u_x4")(t, x)) for eq in equations)
    assert set(proposal.coefficients) <= set().union(*(eq.rhs.free_symbols for eq in equations))
