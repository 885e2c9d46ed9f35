"""Named closure proposals: P18 against the published closure (symbolic and closed system),
quasi-Gaussian against its own proposal function, where each applies, and both against the
fourth derivative of Gaussian correlations computed with numpy finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.core.function import AppliedUndef

from closures import (
    CLOSURE_NAMES,
    PROPOSAL_NAMES,
    close,
    closure_names,
    named_proposal,
    quasi_gaussian_proposal,
)
from pkf import SymbolicPKF

t, x, y, kappa = sp.symbols("t x y kappa")
u = sp.Function("u")(t, x)
FORMS = ("metric", "aspect", "diffusion")
BURGERS = sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x))
KURAMOTO_SIVASHINSKY = sp.Eq(u.diff(t), -u.diff(x, 4) - u.diff(x, 2) - u * u.diff(x))


@pytest.fixture(scope="module")
def burgers():
    pkf = SymbolicPKF(BURGERS)
    (term,) = pkf.unclosed_terms
    return pkf, term


@pytest.fixture(scope="module")
def kuramoto_sivashinsky():
    """Two unclosed terms: E[eps d_x^4 eps] and E[eps d_x^6 eps]."""
    return SymbolicPKF(KURAMOTO_SIVASHINSKY)


@pytest.fixture(scope="module")
def chemistry():
    """Two fields: auto terms E[eps_A d^4 eps_A], E[eps_B d^4 eps_B] and cross terms."""
    a, b = sp.Function("A")(t, x), sp.Function("B")(t, x)
    k = sp.Symbol("k")
    return SymbolicPKF(
        [sp.Eq(a.diff(t), k * a.diff(x, 2) - a * b), sp.Eq(b.diff(t), k * b.diff(x, 2) + a * b)]
    )


@pytest.fixture(scope="module")
def heat2d():
    v = sp.Function("u")(t, x, y)
    return SymbolicPKF(sp.Eq(v.diff(t), kappa * (v.diff(x, 2) + v.diff(y, 2))))


def test_p18_is_the_published_burgers_closure_in_each_form(burgers):
    # Pannekoucke et al. 2018: E[eps d4 eps] ~ 3 g^2 - 2 d2 g; written out by hand in each form
    # (cases/burgers.py: a d2nu/nu^2 + b/nu^2 + c (dnu)^2/nu^3 with (a, b, c) = (1, 3/4, -2)).
    pkf, term = burgers
    field = pkf.fields["u"]
    nu, s, g = field.diffusion[0, 0], field.aspect[0, 0], field.metric[0, 0]
    expected = {
        "diffusion": nu.diff(x, 2) / nu**2
        + sp.Rational(3, 4) / nu**2
        - 2 * nu.diff(x) ** 2 / nu**3,
        "aspect": 2 * s.diff(x, 2) / s**2 + 3 / s**2 - 4 * s.diff(x) ** 2 / s**3,
        "metric": 3 * g**2 - 2 * g.diff(x, 2),
    }
    for form in FORMS:
        proposal = named_proposal("P18", pkf, term, form)
        assert sp.expand(proposal.expression - expected[form]) == 0, form
    diffusion = named_proposal("P18", pkf, term)
    assert diffusion.coefficients == [sp.Rational(3, 4), 1, -2]
    assert diffusion.terms == [1 / nu**2, nu.diff(x, 2) / nu**2, nu.diff(x) ** 2 / nu**3]


def test_p18_closed_burgers_is_the_published_closed_system():
    # PKF notes: closed with P18, d_t nu = k d2nu + 2k - 2k (dnu)^2/nu - 2k nu d2V/V
    #   + k dV dnu/V + 2k nu (dV)^2/V^2 - u dnu + 2 nu du
    pkf = SymbolicPKF(BURGERS)
    pkf.set_closure(close(pkf, "P18"))
    equations = pkf.to_generator("diffusion")
    assert not [f for eq in equations for f in eq.rhs.atoms(AppliedUndef) if "closure" in str(f)]
    nu, V = pkf.fields["u"].diffusion[0, 0], pkf.fields["u"].variance
    expected = (
        kappa * nu.diff(x, 2)
        + 2 * kappa
        - 2 * kappa * nu.diff(x) ** 2 / nu
        - 2 * kappa * nu * V.diff(x, 2) / V
        + kappa * V.diff(x) * nu.diff(x) / V
        + 2 * kappa * nu * V.diff(x) ** 2 / V**2
        - u * nu.diff(x)
        + 2 * nu * u.diff(x)
    )
    assert equations[-1].lhs == sp.Derivative(nu, t)
    assert sp.expand(equations[-1].rhs - expected) == 0


@pytest.mark.parametrize("form", FORMS)
def test_named_quasi_gaussian_is_quasi_gaussian_proposal(kuramoto_sivashinsky, form):
    pkf = kuramoto_sivashinsky
    for term in pkf.unclosed_terms:
        assert named_proposal("quasi-gaussian", pkf, term, form) == quasi_gaussian_proposal(
            pkf, term, form
        )


def test_names_that_apply_to_each_term(burgers, kuramoto_sivashinsky, chemistry, heat2d):
    pkf, term = burgers
    assert closure_names(pkf, term) == ["quasi-gaussian", "P18"]
    assert [
        closure_names(kuramoto_sivashinsky, s) for s in kuramoto_sivashinsky.unclosed_terms
    ] == [
        ["quasi-gaussian", "P18"],
        ["quasi-gaussian"],  # E[eps d^6 eps]: not P18's term
    ]
    auto = [s for s in chemistry.unclosed_terms if closure_names(chemistry, s)]
    assert len(auto) == 2 and all(
        closure_names(chemistry, s) == ["quasi-gaussian", "P18"] for s in auto
    )
    assert all(closure_names(heat2d, s) == ["quasi-gaussian"] for s in heat2d.unclosed_terms)
    assert set(PROPOSAL_NAMES) < set(CLOSURE_NAMES)


def test_p18_is_refused_for_a_2d_term_naming_the_term_and_what_applies(heat2d):
    term = heat2d.unclosed_terms[0]
    with pytest.raises(
        ValueError, match=r"closure P18 does not apply to Expectation\(eps_u\(t, x, y\)"
    ) as info:
        named_proposal("P18", heat2d, term)
    assert "1D" in str(info.value) and "apply to it: quasi-gaussian" in str(info.value)
    with pytest.raises(ValueError, match="P18 does not apply"):
        close(heat2d, "P18")


def test_p18_and_quasi_gaussian_are_refused_for_a_cross_term(chemistry):
    cross = next(s for s in chemistry.unclosed_terms if not closure_names(chemistry, s))
    assert cross.has(chemistry.fields["A"].epsilon, chemistry.fields["B"].epsilon)
    for name in PROPOSAL_NAMES:
        with pytest.raises(
            ValueError, match=f"closure {name} does not apply to .*no named proposal"
        ):
            named_proposal(name, chemistry, cross)
        with pytest.raises(ValueError, match=f"closure {name} does not apply"):
            close(chemistry, name)


def test_p18_is_refused_for_the_sixth_order_term(kuramoto_sivashinsky):
    pkf = kuramoto_sivashinsky
    with pytest.raises(ValueError, match=r"\(x, 6\).*apply to it: quasi-gaussian"):
        close(pkf, "P18")


def test_bad_names_forms_and_terms_are_refused(burgers, heat2d):
    pkf, term = burgers
    with pytest.raises(ValueError, match="unknown closure proposal 'gaussian'; expected one of"):
        named_proposal("gaussian", pkf, term)
    with pytest.raises(ValueError, match="unknown closure 'P19'"):
        close(pkf, "P19")
    with pytest.raises(ValueError, match="unknown form 'tensor'"):
        named_proposal("P18", pkf, term, "tensor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is not an unclosed term of this system"):
        named_proposal("quasi-gaussian", pkf, heat2d.unclosed_terms[0])


@pytest.mark.parametrize("name", ["none", "zero", "quasi-gaussian"])  # P18: see above
def test_close_then_set_closure_gives_a_closed_generator_system(name):
    pkf = SymbolicPKF(KURAMOTO_SIVASHINSKY)
    closures = close(pkf, name, "aspect")
    assert list(closures) == pkf.unclosed_terms
    if name in ("none", "zero"):
        assert set(closures.values()) == {0}
    pkf.set_closure(closures)
    for form in FORMS:
        functions = {
            f.func.__name__ for eq in pkf.to_generator(form) for f in eq.atoms(AppliedUndef)
        }
        assert not [f for f in functions if f.startswith("closure_")], (name, form)


def _tensor_value(field, form: str, aspect: float) -> tuple[sp.Expr, float]:
    """The tensor function of ``form`` and its value for an aspect (L^2) value."""
    if form == "diffusion":
        return field.diffusion[0, 0], aspect / 2
    if form == "aspect":
        return field.aspect[0, 0], aspect
    return field.metric[0, 0], 1 / aspect


def _fourth_derivative(f, h: float) -> float:
    """d^4 f / d delta^4 at 0, 7-point centred stencil (accuracy h^4), plain numpy."""
    weights = np.array([-1, 12, -39, 56, -39, 12, -1]) / 6
    return float(weights @ f(h * np.arange(-3, 4)) / h**4)


@pytest.mark.parametrize("name", PROPOSAL_NAMES)
@pytest.mark.parametrize("length", [0.3, 1.0, 2.5])
def test_homogeneous_gaussian_correlation_gives_rho_4th_derivative(burgers, name, length):
    # rho(d) = exp(-d^2 / (2 L^2)): E[eps d4 eps] = rho''''(0) = 3 / L^4; with a homogeneous
    # tensor only the 1/nu^2 term survives: (3/4) / nu^2 = 3 / L^4 (nu = L^2 / 2).
    reference = _fourth_derivative(lambda d: np.exp(-(d**2) / (2 * length**2)), 1e-2 * length)
    assert reference == pytest.approx(3 / length**4, rel=1e-6)
    pkf, term = burgers
    for form in FORMS:
        expression = named_proposal(name, pkf, term, form).expression
        tensor, value = _tensor_value(pkf.fields["u"], form, length**2)
        derivatives = {d: 0 for d in expression.atoms(sp.Derivative)}
        closed = float(expression.subs(derivatives).subs(tensor, value))
        assert closed == pytest.approx(reference, rel=1e-6), form


@pytest.mark.parametrize("form", FORMS)
def test_quasi_gaussian_is_exact_for_a_heterogeneous_locally_gaussian_correlation(burgers, form):
    # rho(x, x + d) = exp(-d^2 / (s(x) + s(x + d))) with s(x) = L^2 (1 + 0.3 sin x): the
    # quasi-Gaussian hypothesis itself, so its closure must equal d^4/dd^4 rho at d = 0
    # (numpy finite differences in d at fixed x); P18 differs from it where s varies.
    pkf, term = burgers

    def aspect_of(z):
        return 0.8**2 * (1 + 0.3 * np.sin(z))

    points = np.linspace(0.0, 2 * np.pi, 7)
    reference = np.array(
        [
            _fourth_derivative(
                lambda d, p=p: np.exp(-(d**2) / (aspect_of(p) + aspect_of(p + d))), 1e-2
            )
            for p in points
        ]
    )
    tensor, _ = _tensor_value(pkf.fields["u"], form, 1.0)
    profile = {"diffusion": 0.32 * (1 + 0.3 * sp.sin(x)), "aspect": 0.64 * (1 + 0.3 * sp.sin(x))}
    profile["metric"] = 1 / profile["aspect"]
    results = {}
    for name in PROPOSAL_NAMES:
        expression = named_proposal(name, pkf, term, form).expression.subs(tensor, profile[form])
        values = sp.lambdify(x, expression.doit(), "numpy")(points)
        results[name] = np.asarray(values, dtype=float)
    np.testing.assert_allclose(results["quasi-gaussian"], reference, rtol=1e-5)
    assert np.max(np.abs(results["P18"] - reference) / np.abs(reference)) > 0.05


def test_otherwise_zero_closes_the_cross_terms_of_a_multivariate_system():
    t, x, k, kappa = sp.symbols("t x k kappa")
    a, b = sp.Function("A")(t, x), sp.Function("B")(t, x)
    pkf = SymbolicPKF(
        [
            sp.Eq(a.diff(t), kappa * a.diff(x, 2) + k * b),
            sp.Eq(b.diff(t), kappa * b.diff(x, 2) - k * a),
        ]
    )
    with pytest.raises(ValueError, match="does not apply to"):
        close(pkf, "quasi-gaussian")  # the cross terms E[eps_A d eps_B] have no proposal
    closures = close(pkf, "quasi-gaussian", otherwise="zero")
    eps_a, eps_b = pkf.fields["A"].epsilon, pkf.fields["B"].epsilon
    for term, closure in closures.items():
        if term.has(eps_a) and term.has(eps_b):
            assert closure == 0
        else:
            assert closure == named_proposal("quasi-gaussian", pkf, term).expression != 0
    assert len(closures) == len(pkf.unclosed_terms) == 4
    with pytest.raises(ValueError, match="otherwise"):
        close(pkf, "P18", otherwise="gaussian")  # type: ignore[arg-type]
