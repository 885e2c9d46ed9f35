"""Term dictionaries: dimensions, the paper's Burgers terms, stable counts, parity, proposals.

Counts are checked against an independent brute-force enumeration over a box of exponent
vectors (numpy arithmetic on the exponents, no use of the enumeration code).
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
import sympy as sp

from closures import (
    LENGTH,
    Dimension,
    DimensionError,
    DimensionSystem,
    Quantity,
    dictionary,
    quasi_gaussian_proposal,
    reflection_parity,
)
from pkf import SymbolicPKF

t, x, y, kappa = sp.symbols("t x y kappa")
u = sp.Function("u")(t, x)


@pytest.fixture(scope="module")
def burgers():
    pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    return pkf, DimensionSystem.from_pkf(pkf), pkf.unclosed_terms[0], pkf.fields["u"]


def paper_terms(f):
    """The paper's candidate terms (Eq. 7) for a tensor f of dimension L^2."""
    return [f.diff(x, 2) / f**2, 1 / f**2, f.diff(x) ** 2 / f**3]


def brute_force(system, target, fields, order, degree, parity, box=6):
    """Independent enumeration: every exponent vector in a box, filtered with numpy.

    Factors: each field and its x-derivatives up to ``order``; positive fields (underived)
    take powers in [-box, box], all other factors in [0, degree]. Kept: dimension equal to
    ``target``, total power of non-positive factors <= degree, even derivative count if
    ``parity``. Returns the set of monomials and the largest |power| of a positive field.
    """
    factors = [f.diff(x, k) if k else f for f in fields for k in range(order + 1)]
    positive = [k == 0 and system.is_positive(f) for f in fields for k in range(order + 1)]
    orders = np.array([k for _ in fields for k in range(order + 1)])
    bases = ["L", *sorted({b for f in factors for b in system.of(f).exponents} - {"L"})]
    dims = np.array([[float(system.of(f).exponent(b)) for b in bases] for f in factors])
    goal = np.array([float(target.exponent(b)) for b in bases])
    ranges = [range(-box, box + 1) if p else range(degree + 1) for p in positive]
    powers = np.array(list(product(*ranges)))
    signed = ~np.array(positive)
    keep = np.all(powers @ dims == goal, axis=1) & (powers[:, signed].sum(axis=1) <= degree)
    if parity:
        keep &= (powers @ orders) % 2 == 0
    found = {sp.Mul(*(f**p for f, p in zip(factors, row, strict=True))) for row in powers[keep]}
    return found, int(np.abs(powers[keep][:, ~signed]).max())


def test_burgers_diffusion_dictionary_is_the_paper_terms_plus_one(burgers):
    pkf, system, term, field = burgers
    nu = field.diffusion[0, 0]
    terms = dictionary(term, [nu], pkf, max_derivative_order=2, max_degree=2)
    # degree 0: 1/nu^2; degree 1: d2nu/nu^2 (dnu would need nu^(-5/2)); degree 2:
    # (dnu)^2/nu^3, (d2nu)^2/nu^2 (dnu d2nu would need nu^(-5/2)).
    assert terms == [
        1 / nu**2,
        nu.diff(x, 2) / nu**2,
        nu.diff(x) ** 2 / nu**3,
        nu.diff(x, 2) ** 2 / nu**2,
    ]
    assert all(p in terms for p in paper_terms(nu))


@pytest.mark.parametrize("form", ["metric", "aspect", "diffusion"])
def test_paper_closure_terms_are_in_every_form(burgers, form):
    pkf, system, term, field = burgers
    tensor = field.tensor(form)[0, 0]
    terms = dictionary(term, [tensor], pkf)
    assert len(terms) == 4
    if form == "metric":  # 3 g^2 - 2 d2g: g^2, d2g and (dg)^2/g span the (1, 3/4, -2) closure
        expected = [tensor**2, tensor.diff(x, 2), tensor.diff(x) ** 2 / tensor]
    else:
        expected = paper_terms(tensor)
    assert all(e in terms for e in expected)
    assert all(system.of(t_) == system.of(term) for t_ in terms)


@pytest.mark.parametrize(
    ("names", "count"), [(("nu",), 4), (("nu", "V"), 9), (("nu", "V", "u"), 13)]
)
def test_counts_are_stable_and_match_a_brute_force_enumeration(burgers, names, count):
    pkf, system, term, field = burgers
    available = {"nu": field.diffusion[0, 0], "V": field.variance, "u": field.mean}
    fields = [available[n] for n in names]
    terms = dictionary(term, fields, system, max_derivative_order=2, max_degree=2)
    assert len(terms) == count
    assert len(set(terms)) == len(terms)
    target = system.of(term)
    assert all(system.of(t_) == target for t_ in terms)
    expected, largest = brute_force(system, target, fields, order=2, degree=2, parity=True)
    assert largest < 6  # the box is not what bounds the enumeration
    assert set(terms) == expected
    # the order is a pure function of the inputs
    assert dictionary(term, fields, system) == terms


def test_dictionary_grows_with_degree_and_derivative_order(burgers):
    pkf, system, term, field = burgers
    nu = field.diffusion[0, 0]
    target = system.of(term)
    for order, degree in [(1, 2), (2, 3), (3, 2), (4, 3)]:
        terms = dictionary(term, [nu], system, max_derivative_order=order, max_degree=degree)
        expected, _ = brute_force(system, target, [nu], order, degree, parity=True)
        assert set(terms) == expected, (order, degree)
    assert len(dictionary(term, [nu], system, max_derivative_order=4, max_degree=3)) == 19


def test_parity_filter_removes_exactly_the_odd_terms():
    # A length-scale field ell [L]: d(ell) is dimensionless, so odd terms can match L^-4.
    ell = sp.Function("ell")(t, x)
    system = DimensionSystem({"ell": Quantity(LENGTH, positive=True)})
    target = Dimension({"L": -4})
    both = dictionary(target, [ell], system, max_degree=2, parity=False)
    even = dictionary(target, [ell], system, max_degree=2, parity=True)
    odd = [m for m in both if m not in even]
    assert ell.diff(x) / ell**4 in odd and ell.diff(x) * ell.diff(x, 2) / ell**3 in odd
    assert all(reflection_parity(m, system) == (1,) for m in odd)
    assert all(reflection_parity(m, system) == (0,) for m in even)
    assert [m for m in both if m in even] == even  # filtering keeps the order
    expected, _ = brute_force(system, target, [ell], order=2, degree=2, parity=True)
    # degree <= 2 products of d(ell) [1] and d2(ell) [L^-1] all fit (ell [L] absorbs any
    # length): 1, d, d2, d^2, d d2, d2^2; the two with an odd number of d(ell) are odd.
    assert set(even) == expected and len(even) == 4 and len(odd) == 2


def test_2d_parity_follows_each_axis_of_the_target():
    nxx, nxy, nyy = (sp.Function(n)(t, x, y) for n in ("nu_xx", "nu_xy", "nu_yy"))
    system = DimensionSystem(
        {
            "nu_xx": Quantity(LENGTH**2, positive=True),
            "nu_xy": Quantity(LENGTH**2),
            "nu_yy": Quantity(LENGTH**2, positive=True),
        },
        coordinates=("x", "y"),
    )
    eps = sp.Function("eps")(t, x, y)
    system = system.with_quantities({"eps": Quantity(Dimension())})
    xxxx, xxxy = eps * eps.diff(x, 4), eps * eps.diff(x, 3, y)
    assert reflection_parity(xxxy, system) == (1, 1)
    with pytest.raises(DimensionError, match="dimensionless combination"):
        dictionary(xxxx, [nxx, nyy], system)
    even = dictionary(xxxx, [nxx, nxy, nyy], system, max_degree=1, max_power=2)
    odd = dictionary(xxxy, [nxx, nxy, nyy], system, max_degree=1, max_power=2)
    assert nxx.diff(x, y) / (nxx * nyy) in odd and nxx.diff(x, 2) / (nxx * nyy) in even
    assert all(reflection_parity(m, system) == (0, 0) for m in even)
    assert all(reflection_parity(m, system) == (1, 1) for m in odd)
    assert not set(even) & set(odd)


def test_unknown_fields_and_bad_bounds_are_reported(burgers):
    pkf, system, term, _ = burgers
    with pytest.raises(DimensionError, match="unknown quantity 'ell'"):
        dictionary(term, [sp.Function("ell")(t, x)], system)
    with pytest.raises(ValueError, match="max_degree must be >= 0"):
        dictionary(term, [pkf.fields["u"].variance], system, max_degree=-1)


@pytest.mark.parametrize(
    ("form", "coefficients"),
    [
        ("diffusion", [sp.Rational(3, 4), sp.Rational(3, 2), sp.Rational(-3, 2)]),
        ("aspect", [3, 3, -3]),
        ("metric", [3, -3, 3]),
    ],
)
def test_quasi_gaussian_proposal_terms_are_dictionary_terms(burgers, form, coefficients):
    pkf, system, term, field = burgers
    proposal = quasi_gaussian_proposal(pkf, term, form)
    assert proposal.coefficients == coefficients
    assert set(proposal.terms) <= set(dictionary(term, [field.tensor(form)[0, 0]], system))
    s = field.aspect[0, 0]
    qg = pkf.quasi_gaussian_closure(term).expression
    back = {"diffusion": {field.diffusion[0, 0]: s / 2}, "metric": {field.metric[0, 0]: 1 / s}}
    converted = proposal.expression.subs(back.get(form, {})).doit()
    assert sp.simplify(converted - qg) == 0
