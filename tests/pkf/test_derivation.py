"""SymbolicPKF against the public oracles of pkf-notes.md and the SymPKF defect regressions."""

from __future__ import annotations

import keyword
import pickle
from itertools import permutations

import pytest
import sympy as sp
from sympy.core.function import AppliedUndef

from pkf.derivation import SymbolicPKF
from pkf.expectation import Expectation

t, x, y, z, kappa = sp.symbols("t x y z kappa")
u = sp.Function("u")(t, x)


def rhs_of(equations, lhs):
    """The right-hand side of the equation whose lhs is d(lhs)/dt."""
    for eq in equations:
        if eq.lhs.expr == lhs:
            return eq.rhs
    raise KeyError(lhs)


def same(a, b):
    return sp.expand(a - b) == 0


@pytest.fixture(scope="module")
def burgers():
    return SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))


def burgers_symbols(pkf):
    f = pkf.fields["u"]
    e4 = Expectation(f.epsilon * f.epsilon.diff(x, 4))
    return f.variance, f.metric[0, 0], f.aspect[0, 0], f.diffusion[0, 0], e4


def test_burgers_mean_and_variance_match_oracle(burgers):
    V, g, s, nu, _ = burgers_symbols(burgers)
    d = sp.Derivative
    mean = kappa * d(u, x, 2) - u * d(u, x) - d(V, x) / 2
    variance = (
        -2 * kappa * V * g
        + kappa * d(V, x, 2)
        - kappa * d(V, x) ** 2 / (2 * V)
        - u * d(V, x)
        - 2 * V * d(u, x)
    )
    assert same(rhs_of(burgers.in_metric, u), mean)
    assert same(rhs_of(burgers.in_metric, V), variance)
    assert same(rhs_of(burgers.in_aspect, V), variance.subs(g, 1 / s))
    assert same(rhs_of(burgers.in_diffusion, V), variance.subs(g, 1 / (2 * nu)))


def test_burgers_metric_equation_matches_oracle(burgers):
    V, g, _, _, e4 = burgers_symbols(burgers)
    d = sp.Derivative
    expected = (
        2 * kappa * g**2
        - 2 * kappa * e4
        - 3 * kappa * d(g, x, 2)
        + 2 * kappa * g * d(V, x, 2) / V
        + kappa * d(V, x) * d(g, x) / V
        - 2 * kappa * g * d(V, x) ** 2 / V**2
        - u * d(g, x)
        - 2 * g * d(u, x)
    )
    assert same(rhs_of(burgers.in_metric, g), expected)


@pytest.mark.parametrize(("form", "scale"), [("aspect", 1), ("diffusion", 2)])
def test_burgers_tensor_equation_matches_oracle_in_aspect_and_diffusion_forms(burgers, form, scale):
    V, _, s, nu, e4 = burgers_symbols(burgers)
    T = s if form == "aspect" else nu
    d = sp.Derivative
    expected = (
        2 * scale * kappa * T**2 * e4
        - 3 * kappa * d(T, x, 2)
        - 2 * kappa / scale
        + 6 * kappa * d(T, x) ** 2 / T
        - 2 * kappa * T * d(V, x, 2) / V
        + kappa * d(V, x) * d(T, x) / V
        + 2 * kappa * T * d(V, x) ** 2 / V**2
        - u * d(T, x)
        + 2 * T * d(u, x)
    )
    assert same(rhs_of(getattr(burgers, f"in_{form}"), T), expected)


def test_burgers_only_unclosed_term_is_fourth_order(burgers):
    eps = burgers.fields["u"].epsilon
    assert burgers.unclosed_terms == [Expectation(eps * eps.diff(x, 4))]


@pytest.mark.parametrize("closure_form", ["metric", "aspect", "diffusion"])
def test_closed_burgers_diffusion_equation_matches_oracle_for_closure_in_any_form(closure_form):
    pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    V, g, s, nu, e4 = burgers_symbols(pkf)
    d = sp.Derivative
    closure = {
        "metric": 3 * g**2 - 2 * d(g, x, 2),
        "aspect": 2 * d(s, x, 2) / s**2 + 3 / s**2 - 4 * d(s, x) ** 2 / s**3,
        "diffusion": d(nu, x, 2) / nu**2 + sp.Rational(3, 4) / nu**2 - 2 * d(nu, x) ** 2 / nu**3,
    }[closure_form]
    pkf.set_closure({e4: closure})
    expected = (
        kappa * d(nu, x, 2)
        + 2 * kappa
        - 2 * kappa * d(nu, x) ** 2 / nu
        - 2 * kappa * nu * d(V, x, 2) / V
        + kappa * d(V, x) * d(nu, x) / V
        + 2 * kappa * nu * d(V, x) ** 2 / V**2
        - u * d(nu, x)
        + 2 * nu * d(u, x)
    )
    equations = pkf.to_generator(form="diffusion")
    assert same(rhs_of(equations, nu), expected)
    assert not any(eq.rhs.has(Expectation) for eq in equations)


def test_to_generator_turns_unclosed_terms_into_named_slots(burgers):
    equations = burgers.to_generator(form="diffusion", closure="slot")
    slot = sp.Function("closure_u_x4")(t, x)
    nu = burgers.fields["u"].diffusion[0, 0]
    assert rhs_of(equations, nu).has(slot)
    assert burgers.closure_slots == {burgers.unclosed_terms[0]: slot}
    zero = rhs_of(burgers.to_generator(form="diffusion", closure="zero"), nu)
    assert same(zero, rhs_of(equations, nu).subs(slot, 0))
    for eq in equations:
        assert isinstance(eq.lhs, sp.Derivative) and eq.lhs.variables == (t,)
        for f in eq.rhs.atoms(AppliedUndef) | {eq.lhs.expr}:
            assert f.func.__name__.isidentifier()


def test_set_closure_rejects_a_term_that_is_not_unclosed(burgers):
    eps = burgers.fields["u"].epsilon
    wrong = Expectation(eps * eps.diff(x, 6))
    with pytest.raises(ValueError, match="is not an unclosed term"):
        burgers.set_closure({wrong: 0})


def test_advection_1d_matches_oracle_and_is_closed():
    c, U = sp.Function("c")(t, x), sp.Function("U")(x)
    pkf = SymbolicPKF(sp.Eq(c.diff(t), -U * c.diff(x)))
    f = pkf.fields["c"]
    V, g, s = f.variance, f.metric[0, 0], f.aspect[0, 0]
    assert same(rhs_of(pkf.in_metric, V), -U * V.diff(x))
    assert same(rhs_of(pkf.in_metric, g), -U * g.diff(x) - 2 * g * U.diff(x))
    assert same(rhs_of(pkf.in_aspect, s), -U * s.diff(x) + 2 * s * U.diff(x))
    assert pkf.unclosed_terms == []


def test_pkf_trends_split_over_the_terms_of_burgers():
    advection = -u * u.diff(x)
    diffusion = kappa * u.diff(x, 2)
    whole = SymbolicPKF(sp.Eq(u.diff(t), advection + diffusion))
    parts = [SymbolicPKF(sp.Eq(u.diff(t), rhs)) for rhs in (advection, diffusion)]
    for form in ("in_metric", "in_aspect", "in_diffusion"):
        for k, eq in enumerate(getattr(whole, form)):
            total = sum(getattr(p, form)[k].rhs for p in parts)
            # the mean trend of each part contains the dynamics once
            assert same(eq.rhs, total), (form, eq.lhs)


def test_advection_2d_aspect_equations_are_polynomial_and_match_oracle():
    c = sp.Function("c")(t, x, y)
    U, W = sp.Function("U")(x, y), sp.Function("W")(x, y)
    pkf = SymbolicPKF(sp.Eq(c.diff(t), -U * c.diff(x) - W * c.diff(y)))
    s = pkf.fields["c"].aspect
    grad = sp.Matrix([[U.diff(x), U.diff(y)], [W.diff(x), W.diff(y)]])
    expected = -U * s.diff(x) - W * s.diff(y) + grad * s + s * grad.T
    for i, j in ((0, 0), (0, 1), (1, 1)):
        rhs = rhs_of(pkf.in_aspect, s[i, j])
        assert same(rhs, expected[i, j])
        assert all(not (p.is_Pow and p.exp.is_negative) for p in sp.preorder_traversal(rhs))
    assert pkf.unclosed_terms == []


def test_advection_3d_gives_six_closed_tensor_equations_per_field():
    c = sp.Function("c")(t, x, y, z)
    velocity = [sp.Function(n)(x, y, z) for n in ("U", "W", "Q")]
    rhs = -sum(v * c.diff(q) for v, q in zip(velocity, (x, y, z), strict=True))
    pkf = SymbolicPKF(sp.Eq(c.diff(t), rhs))
    g = pkf.fields["c"].metric
    tensor_lhs = [eq.lhs.expr for eq in pkf.in_metric if eq.lhs.expr in set(g)]
    assert len(tensor_lhs) == 6 and len(pkf.in_metric) == 8
    assert pkf.unclosed_terms == []
    grad = sp.Matrix(3, 3, lambda i, j: velocity[i].diff((x, y, z)[j]))
    expected = -sum((v * g.diff(q) for v, q in zip(velocity, (x, y, z), strict=True)), sp.zeros(3))
    expected -= grad.T * g + g * grad
    assert same(rhs_of(pkf.in_metric, g[0, 1]), expected[0, 1])


def test_squared_gradient_mean_equation_is_reduced_without_expectation():
    pkf = SymbolicPKF(sp.Eq(u.diff(t), -(u.diff(x) ** 2)))
    f = pkf.fields["u"]
    V, g = f.variance, f.metric[0, 0]
    mean = rhs_of(pkf.in_metric, u)
    assert same(mean, -(u.diff(x) ** 2) - V * g - V.diff(x) ** 2 / (4 * V))
    assert not mean.has(Expectation)


def test_diffusion_form_keeps_cross_covariance_equations():
    a, b = sp.Function("a")(t, x), sp.Function("b")(t, x)
    pkf = SymbolicPKF([sp.Eq(a.diff(t), b), sp.Eq(b.diff(t), -a)])
    cov = pkf.covariance("a", "b")
    for form in ("in_metric", "in_aspect", "in_diffusion"):
        assert cov in [eq.lhs.expr for eq in getattr(pkf, form)]
    assert [eq.lhs.expr for eq in pkf.to_generator(form="diffusion")].count(cov) == 1


def test_two_field_transport_cross_covariance_closes():
    A, B, U = sp.Function("A")(t, x), sp.Function("B")(t, x), sp.Function("U")(x)
    pkf = SymbolicPKF([sp.Eq(A.diff(t), -U * A.diff(x) + B), sp.Eq(B.diff(t), -U * B.diff(x) - A)])
    V_AB = pkf.covariance("A", "B")
    V_A, V_B = pkf.fields["A"].variance, pkf.fields["B"].variance
    for form in ("in_metric", "in_diffusion"):
        rhs = rhs_of(getattr(pkf, form), V_AB)
        assert same(rhs, -U * V_AB.diff(x) - V_A + V_B)


def test_time_symbol_may_have_any_name_and_position():
    tau, r = sp.symbols("tau r")
    w = sp.Function("w")(r, tau)
    pkf = SymbolicPKF(sp.Eq(w.diff(tau), kappa * w.diff(r, 2) - w * w.diff(r)))
    reference = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    mine, theirs = pkf.to_generator("diffusion"), reference.to_generator("diffusion")

    def renamed(e):
        name = e.func.__name__.replace("w", "u").replace("rr", "xx").replace("r4", "x4")
        return sp.Function(name)(t, x)

    for eq, ref in zip(mine, theirs, strict=True):
        assert eq.lhs.variables == (tau,) and eq.lhs.expr.args == (r, tau)
        rhs = eq.rhs.subs({r: x, tau: t}).replace(lambda e: isinstance(e, AppliedUndef), renamed)
        assert same(rhs, ref.rhs)


def test_generated_names_never_collide_and_are_identifiers():
    fields = [sp.Function(n)(t, x) for n in ("u", "A", "uA", "V_u")]
    pkf = SymbolicPKF([sp.Eq(f.diff(t), -f.diff(x)) for f in fields])
    names = [eq.lhs.expr.func.__name__ for eq in pkf.to_generator(form="aspect")]
    assert len(names) == len(set(names))
    assert all(n.isidentifier() and not keyword.iskeyword(n) for n in names)
    assert pkf.fields["uA"].variance != pkf.covariance("u", "A")
    assert pkf.fields["V_u"].mean != pkf.fields["u"].variance


def test_rejects_left_hand_side_that_is_not_a_time_derivative_counting_from_1():
    with pytest.raises(ValueError, match=r"^equation 2: "):
        SymbolicPKF([sp.Eq(u.diff(t), u), sp.Eq(sp.Function("v")(t, x).diff(t, 2), u)])


v = sp.Function("v")(t, x)
w = sp.Function("w")


@pytest.mark.parametrize(
    "equations",
    [
        [sp.Eq(u.diff(t), u), sp.Eq(v.diff(t), v.diff(t))],  # time derivative on the right
        [sp.Eq(u.diff(t), u), sp.Eq(v.diff(t), sp.tan(v))],  # unsupported function
        [sp.Eq(u.diff(t), u), sp.Eq(u.diff(t), v)],  # two equations for one field
        [sp.Eq(u.diff(t), u), sp.Eq(v.diff(t), w(t, y))],  # coordinate the domain lacks
        [sp.Eq(u.diff(t), u), sp.Eq(v.diff(t), x * v)],  # explicit coordinate
        [sp.Eq(u.diff(t), u), sp.Eq(v.diff(t, x), v)],  # mixed derivative on the left
        [sp.Eq(u.diff(t), u), sp.Eq(v.diff(t), sp.Integral(v, x))],  # unsupported construct
    ],
)
def test_invalid_systems_get_the_generator_analysis_message(equations):
    from generator.analysis import PDESystem

    with pytest.raises(ValueError) as reference:
        PDESystem.from_equations(equations)
    with pytest.raises(ValueError) as ours:
        SymbolicPKF(equations)
    assert str(ours.value) == str(reference.value)
    assert str(ours.value).startswith("equation 2: ")


@pytest.mark.parametrize(
    ("equations", "message"),
    [
        (
            [sp.Eq(u.diff(t), v), sp.Eq(v, u**2)],
            r"^equation 2: Eq\(v\(t, x\), u\(t, x\)\*\*2\) is a diagnostic equation; .*"
            r"substitute v\(t, x\) into the other equations",
        ),
        (
            [sp.Eq(u.diff(t), 0), sp.Eq(sp.Function("v")(x, t).diff(t), 0)],
            r"^equation 2: v\(x, t\) has arguments \(x, t\), equation 1 has \(t, x\); give every",
        ),
        (
            [sp.Eq(u.diff(t), sp.Function("u")(x, t))],
            r"^equation 1: u\(x, t\) must be written with the arguments of its equation, u\(t, x\)",
        ),
        (
            [sp.Eq(sp.Function("q")(t).diff(t), -sp.Function("q")(t))],
            r"^equation 1: q\(t\) has 0 spatial coordinates \(none\); the PKF is derived in 1 to 3",
        ),
    ],
)
def test_pkf_specific_checks_name_the_equation_from_1(equations, message):
    with pytest.raises(ValueError, match=message):
        SymbolicPKF(equations)


def test_more_than_three_spatial_coordinates_are_refused_at_once():
    s = sp.Symbol("s")
    c = sp.Function("c")(t, x, y, z, s)
    with pytest.raises(ValueError, match=r"^equation 1: .* 4 spatial coordinates \(x, y, z, s\); "):
        SymbolicPKF(sp.Eq(c.diff(t), -c.diff(x)))


A, B, C = (sp.Function(n)(t, x) for n in "ABC")
U, k = sp.Function("U")(x), sp.Symbol("k")


def _chemistry(order):
    rhs = {A: -U * A.diff(x) + k * B, B: -U * B.diff(x) - k * A, C: U * C.diff(x, 2) + A * B}
    return [sp.Eq(f.diff(t), rhs[f]) for f in order]


def _everything(pkf):
    """Every result of a derivation, for comparing two of them."""
    return (
        list(pkf.fields),
        [pkf.covariance(f, h) for f in pkf.fields for h in pkf.fields if f < h],
        pkf.unclosed_terms,
        pkf.closure_slots,
        pkf.in_metric,
        pkf.in_diffusion,
        pkf.to_generator("aspect"),
    )


@pytest.mark.parametrize("fields", [(A, B), (A, B, C)], ids=["2 fields", "3 fields"])
def test_results_do_not_depend_on_the_order_of_the_equations(fields):
    first, *others = [SymbolicPKF(_chemistry(order)) for order in permutations(fields)]
    reference = _everything(first)
    for pkf in others:
        assert _everything(pkf) == reference


def test_fields_cross_covariances_and_cross_terms_follow_the_sorted_names():
    pkf = SymbolicPKF(_chemistry((B, A)))  # given in the other order
    assert list(pkf.fields) == ["A", "B"]
    assert pkf.covariance("B", "A").func.__name__ == "V_AB"
    eps_a, eps_b = pkf.fields["A"].epsilon, pkf.fields["B"].epsilon
    for term in pkf.unclosed_terms:  # E[eps_A d^c eps_B]: the derivatives on the later field
        (product,) = term.args
        assert product.has(eps_a) and any(d.expr == eps_b for d in product.atoms(sp.Derivative))
    means = [eq.lhs.expr for eq in pkf.in_metric[:2]]
    assert means == [A, B]
    variances = [eq.lhs.expr for eq in pkf.in_metric[2:4]]
    assert variances == [pkf.fields["A"].variance, pkf.fields["B"].variance]


def test_derived_equations_pickle_round_trip(burgers):
    assert pickle.loads(pickle.dumps(burgers.in_metric)) == burgers.in_metric


def test_set_closure_never_evaluates_text(tmp_path):
    pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2)))
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(ValueError, match="give a sympy expression or a number"):
        pkf.set_closure({pkf.unclosed_terms[0]: code})
    assert not marker.exists()
    pkf.set_closure({pkf.unclosed_terms[0]: 0})  # numbers are fine
