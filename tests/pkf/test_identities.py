"""Expectation operator and the exact reduction identities (pkf-notes.md, step 3)."""

from __future__ import annotations

import pickle

import pytest
import sympy as sp

from pkf.derivation import SymbolicPKF
from pkf.expectation import Expectation, random_function

t, x, y, lam = sp.symbols("t x y lambda")


def same(a, b):
    return sp.expand(a - b) == 0


@pytest.fixture(scope="module")
def one_d():
    u = sp.Function("u")(t, x)
    pkf = SymbolicPKF(sp.Eq(u.diff(t), 0))
    f = pkf.fields["u"]
    return pkf, f.epsilon, f.metric[0, 0]


def test_substitution_identities_in_1d(one_d):
    pkf, eps, g = one_d
    d = eps.diff
    e4 = Expectation(eps * d(x, 4))
    cases = [
        (eps, 0),
        (eps**2, 1),
        (eps * d(x), 0),
        (eps * d(x, 2), -g),
        (eps * d(x, 3), -sp.Rational(3, 2) * g.diff(x)),
        (d(x) ** 2, g),
        (d(x) * d(x, 2), g.diff(x) / 2),
        (d(x) * d(x, 3), -e4 - sp.Rational(3, 2) * g.diff(x, 2)),
        (d(x, 2) ** 2, e4 + 2 * g.diff(x, 2)),
    ]
    for arg, expected in cases:
        assert same(pkf.reduce_expectations(Expectation(arg)), expected), arg


def test_odd_order_expectation_follows_from_lower_even_orders(one_d):
    pkf, eps, g = one_d
    e4 = Expectation(eps * eps.diff(x, 4))
    expected = sp.Rational(5, 2) * sp.Derivative(e4, x) + 5 * g.diff(x, 3) / 2
    assert same(pkf.reduce_expectations(Expectation(eps * eps.diff(x, 5))), expected)


def test_substitution_identities_in_2d_keep_both_derivatives():
    u = sp.Function("u")(t, x, y)
    pkf = SymbolicPKF(sp.Eq(u.diff(t), 0))
    eps, g = pkf.fields["u"].epsilon, pkf.fields["u"].metric
    half = sp.Rational(1, 2)
    assert same(pkf.reduce_expectations(Expectation(eps * eps.diff(x, y))), -g[0, 1])
    assert same(pkf.reduce_expectations(Expectation(eps.diff(x) * eps.diff(y))), g[0, 1])
    third = -half * (2 * g[0, 1].diff(x) + g[0, 0].diff(y))
    assert same(pkf.reduce_expectations(Expectation(eps * eps.diff(x, x, y))), third)
    mixed = pkf.reduce_expectations(Expectation(eps.diff(x) * eps.diff(x, y)))
    assert same(mixed, half * g[0, 0].diff(y))
    assert same(
        pkf.reduce_expectations(Expectation(eps.diff(y) * eps.diff(x, x))),
        g[0, 1].diff(x) - half * g[0, 0].diff(y),
    )


def test_cross_term_product_rule_closes_the_symmetric_sum():
    a, b = sp.Function("a")(t, x), sp.Function("b")(t, x)
    pkf = SymbolicPKF([sp.Eq(a.diff(t), b), sp.Eq(b.diff(t), a)])
    ea, eb = pkf.fields["a"].epsilon, pkf.fields["b"].epsilon
    Va, Vb, Vab = pkf.fields["a"].variance, pkf.fields["b"].variance, pkf.covariance("a", "b")
    total = pkf.reduce_expectations(Expectation(ea * eb.diff(x)) + Expectation(eb * ea.diff(x)))
    assert same(total, (Vab / (sp.sqrt(Va) * sp.sqrt(Vb))).diff(x))
    assert same(pkf.reduce_expectations(Expectation(ea * eb)), Vab / (sp.sqrt(Va) * sp.sqrt(Vb)))


def test_reduce_rejects_products_of_three_errors(one_d):
    pkf, eps, _ = one_d
    with pytest.raises(ValueError, match="two errors"):
        pkf.reduce_expectations(Expectation(eps**3))


def test_expectation_is_linear_and_takes_out_deterministic_factors():
    eps = random_function("eps")(t, x)
    u = sp.Function("u")(t, x)
    assert Expectation(3 * u * eps + u) == 3 * u * Expectation(eps) + u
    assert Expectation(sp.Integer(2)) == 2


def test_expectation_keeps_both_derivatives_of_a_mixed_derivative():
    X = random_function("X")(t, x, y)
    term = Expectation(X.diff(x, y))
    assert term.args[0] == sp.Derivative(X, x, y)
    assert sp.diff(Expectation(X), x, y) == term
    assert sp.Derivative(Expectation(X), x, y).doit() == term


def test_expectation_survives_subs_doit_series_printing_and_pickling():
    eps = random_function("eps")(t, x)
    term = Expectation(eps * eps.diff(x, 4))
    assert pickle.loads(pickle.dumps(term)) == term
    assert term.doit() == term
    assert term.subs(t, 0) == Expectation(
        random_function("eps")(0, x) * sp.Derivative(random_function("eps")(0, x), (x, 4))
    )
    series = (sp.exp(lam) * term).series(lam, 0, 2).removeO()
    assert same(series, term + lam * term)
    assert r"\mathbb{E}" in sp.latex(term)
    assert "Expectation" in str(term) and sp.pretty(term)
