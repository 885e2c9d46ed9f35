"""Metric <-> aspect <-> diffusion conversions and the canonical division by det."""

from __future__ import annotations

import pytest
import sympy as sp

from pkf.derivation import SymbolicPKF
from pkf.forms import DeterminantDivision, TensorForm, relation
from pkf.naming import NameRegistry, build_field_symbols

t, x, y, kappa = sp.symbols("t x y kappa")


def field(coords):
    args = (t, *coords)
    return build_field_symbols("u", sp.Function("u")(*args), args, coords, NameRegistry())


def test_relations_between_forms():
    assert relation("metric", "aspect") == ("inverse", 1)
    assert relation("diffusion", "metric") == ("inverse", sp.Rational(1, 2))
    assert relation("diffusion", "aspect") == ("scale", sp.Rational(1, 2))
    with pytest.raises(ValueError, match="unknown form"):
        relation("metric", "length")


def test_pannekoucke_closure_converts_between_the_three_forms_in_1d():
    f = field((x,))
    g, s, nu = f.metric[0, 0], f.aspect[0, 0], f.diffusion[0, 0]
    d = sp.Derivative
    closures = {
        "metric": 3 * g**2 - 2 * d(g, x, 2),
        "aspect": 2 * d(s, x, 2) / s**2 + 3 / s**2 - 4 * d(s, x) ** 2 / s**3,
        "diffusion": d(nu, x, 2) / nu**2 + sp.Rational(3, 4) / nu**2 - 2 * d(nu, x) ** 2 / nu**3,
    }
    for target, expected in closures.items():
        form = TensorForm(f, target, (x,), NameRegistry())
        for source, closure in closures.items():
            assert sp.expand(form.rewrite(closure, source) - expected) == 0, (source, target)


def test_metric_rewritten_in_aspect_form_in_2d_uses_the_adjugate():
    f = field((x, y))
    form = TensorForm(f, "aspect", (x, y), NameRegistry())
    s = f.aspect
    det = s[0, 0] * s[1, 1] - s[0, 1] ** 2
    assert sp.simplify(form.rewrite(f.metric[0, 0], "metric") - s[1, 1] / det) == 0
    derivative = form.rewrite(f.metric[0, 1].diff(x), "metric")
    assert sp.simplify(derivative - (s.inv()[0, 1]).diff(x)) == 0


def test_determinant_division_cancels_exact_multiples():
    a, b, c = sp.symbols("a b c")
    division = DeterminantDivision(sp.Matrix([[a, b], [b, c]]), "s")
    D = division.det_symbol
    assert division.reduce_modulo_determinant(sp.expand((a * c - b**2) ** 2 * a / D**2)) == a
    reduced = division.reduce_modulo_determinant(sp.expand((a * c * b + 1) / D))
    exact = (a * c * b + 1) / (a * c - b**2)
    assert sp.simplify(division.substitute_determinant(reduced) - exact) == 0


def test_2d_heat_aspect_trend_equals_minus_s_gdot_s():
    u = sp.Function("u")(t, x, y)
    pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * (u.diff(x, 2) + u.diff(y, 2))))
    f = pkf.fields["u"]
    metric = {eq.lhs.expr: eq.rhs for eq in pkf.to_generator("metric", closure="zero")}
    aspect = {eq.lhs.expr: eq.rhs for eq in pkf.to_generator("aspect", closure="zero")}
    s_values = sp.Matrix([[2 + x**2, x * y / 3], [x * y / 3, 3 + y]])
    values = {f.variance: 1 + x**2 + y**2 / 2, f.mean: sp.sin(x) * y}
    values.update({f.aspect[i, j]: s_values[i, j] for i in range(2) for j in range(2)})
    g_values = s_values.inv()
    values.update({f.metric[i, j]: g_values[i, j] for i in range(2) for j in range(2)})
    point = {x: sp.Rational(1, 3), y: sp.Rational(1, 2), kappa: sp.Rational(3, 7)}

    def evaluate(expr):
        return expr.subs(values).doit().subs(point)

    g_dot = sp.Matrix(2, 2, lambda i, j: evaluate(metric[f.metric[i, j]]))
    expected = -s_values.subs(point) * g_dot * s_values.subs(point)
    for i, j in ((0, 0), (0, 1), (1, 1)):
        assert abs(float(evaluate(aspect[f.aspect[i, j]]) - expected[i, j])) < 1e-12
