"""Cross-term samples and dictionary fits of the chemistry1d closure (issue 17, first step).

The product rule E[ε_A ∂ε_B] + E[ε_B ∂ε_A] = ∂ρ holds member by member in the continuum, so
on the samples it holds only to the discrete product rule of centred differences, a relative
error of order (dx / L)²: 0.9–2.1 % measured on the quick grid (121 points, 1600 members),
3.3–7.7 % on the 64 points used here, where (dx / min L_B)² = (1 / (64 · 0.05))² ≈ 0.10 is
the tolerance. The fit pipeline is checked on synthetic data built in plain numpy.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import sympy as sp
import xarray as xr

from cases import chemistry1d
from cases.chemistry_closure import (
    CROSS_TERMS,
    TrainingDraw,
    cross_dictionaries,
    cross_term_samples,
    fit_cross_terms,
    product_rule_residual,
    rho_field,
)


@pytest.fixture(scope="module")
def samples():
    settings = replace(chemistry1d.Settings.quick(), points=64, saved=3, final_time=0.5)
    # random length-scales as well (the learned closure's draw fixes them to the case's)
    draw = TrainingDraw(
        variance_a_modulation=(0.0, 0.6),
        variance_b=(0.1, 0.5),
        length_a=(0.07, 0.13),
        length_b=(0.05, 0.09),
    )
    return cross_term_samples(settings, ensembles=2, members=200, seed=3, draw=draw)


@pytest.mark.slow
def test_samples_satisfy_the_product_rule_identity(samples):
    assert dict(samples.sizes) == {"ensemble": 2, "time": 3, "x": 64}
    residual = product_rule_residual(samples)
    assert np.all(residual[1:] < (1 / (64 * 0.05)) ** 2), residual
    # rho = V_AB / sqrt(V_A V_B), recomputed independently from the estimated moments
    expected = samples["V_AB"] / np.sqrt(samples["V_A"] * samples["V_B"])
    np.testing.assert_allclose(samples["rho_AB"], expected, atol=1e-12)
    # the reaction builds up correlation from independent initial errors
    assert float(abs(samples["rho_AB"].isel(time=0)).max()) < 0.3
    assert float(abs(samples["rho_AB"].isel(time=-1)).max()) > 0.3


@pytest.mark.slow
def test_identity_fails_for_a_wrong_derivative(samples):
    """The check can fail: a cross term from a first derivative of the wrong sign breaks it."""
    broken = samples.copy()
    broken[CROSS_TERMS[0]] = -samples[CROSS_TERMS[0]]
    assert np.all(product_rule_residual(broken)[1:] > 0.5)


def test_dictionaries_have_the_dimensions_parity_and_correlation_factor():
    dictionaries = cross_dictionaries()
    rho, x = rho_field(), sp.Symbol("x")
    first, second = dictionaries[CROSS_TERMS[0]], dictionaries[CROSS_TERMS[1]]
    assert rho.diff(x) in first and rho.diff(x, 2) in second
    assert all(t.has(rho) for t in first + second)

    # odd: an odd count of x-derivatives in each first-term monomial, even in the second
    def parity(term):
        return (
            sum(
                d.derivative_count * p
                for d, p in term.as_powers_dict().items()
                if isinstance(d, sp.Derivative)
            )
            % 2
        )

    assert {parity(t) for t in first} == {1} and {parity(t) for t in second} == {0}


def test_fit_recovers_known_coefficients_on_synthetic_fields():
    """Fields and target in plain numpy; the fit must return the coefficients used."""
    rng = np.random.default_rng(0)
    n, dx = 128, 1.0 / 128
    x = np.arange(n) * dx
    shape = (3, 4, n)
    phase = rng.uniform(0, 2 * np.pi, shape[:2] + (1,))
    rho = 0.6 * np.sin(2 * np.pi * x + phase) * (0.7 + 0.3 * np.cos(6 * np.pi * x - phase))
    v_a = 1.0 + 0.4 * np.cos(2 * np.pi * x + 2 * phase)
    v_b = 0.3 + 0.1 * np.sin(4 * np.pi * x + phase)
    s_a = 0.01 * (1 + 0.3 * np.cos(2 * np.pi * x - phase))
    s_b = 0.004 * (1 + 0.2 * np.sin(2 * np.pi * x + 3 * phase))
    fields = {"rho_AB": rho, "V_A": v_a, "V_B": v_b, "s_A_xx": s_a, "s_B_xx": s_b}

    def d(f):  # second-order centred difference, as the models
        return (np.roll(f, -1, -1) - np.roll(f, 1, -1)) / (2 * dx)

    def d2(f):
        return (np.roll(f, -1, -1) - 2 * f + np.roll(f, 1, -1)) / dx**2

    first = 0.5 * d(rho) + 0.25 * rho * d(v_a) / v_a - 0.25 * rho * d(v_b) / v_b
    second = 0.25 * d2(rho) - 0.5 * rho / s_a - 0.5 * rho / s_b
    dims = ("ensemble", "time", "x")
    data = {}
    for name, values in {**fields, CROSS_TERMS[0]: first, CROSS_TERMS[1]: second}.items():
        full = np.broadcast_to(values, shape)
        data[name] = (dims, np.concatenate([full[:, :1], full], axis=1))  # t = 0 is not fitted
    samples = xr.Dataset(data, attrs={"dx": dx, "accuracy": 2})
    truth = {
        CROSS_TERMS[0]: {
            "Derivative(rho_AB(t, x), x)": 0.5,
            "rho_AB(t, x)*Derivative(V_A(t, x), x)/V_A(t, x)": 0.25,
            "rho_AB(t, x)*Derivative(V_B(t, x), x)/V_B(t, x)": -0.25,
        },
        CROSS_TERMS[1]: {
            "Derivative(rho_AB(t, x), (x, 2))": 0.25,
            "rho_AB(t, x)/s_A_xx(t, x)": -0.5,
            "rho_AB(t, x)/s_B_xx(t, x)": -0.5,
        },
    }
    # the true terms and every third other term of each dictionary (the whole dictionary is
    # collinear on these smooth fields)
    dictionaries = {
        name: [t for i, t in enumerate(terms) if str(t) in truth[name] or i % 3 == 0]
        for name, terms in cross_dictionaries().items()
    }
    for method in ("lstsq", "stlsq"):
        fits = fit_cross_terms(samples, dictionaries, method, threshold=0.02)
        for name, expected in truth.items():
            fit = fits[name]
            got = {str(t): c for t, c in zip(fit.terms, fit.coefficients, strict=True)}
            for term, c in got.items():
                assert c == pytest.approx(expected.get(term, 0.0), abs=1e-6), (method, term)
            assert fit.relative_residual < 1e-8


# -- the learned closure -------------------------------------------------------------------
def _rotated_statistics(theta, length_a=0.1, length_b=0.06, n=50):
    """V, M = E[(∂e)²] and their cross terms after the reaction rotated independent initial
    errors by theta (plain numpy): e_A = c a + s b, e_B = -s a + c b."""
    x = np.arange(n) / n
    v_a0, v_b0 = 1.0 - 0.5 * np.cos(2 * np.pi * x), 0.25 + 0.05 * np.sin(2 * np.pi * x)
    m_a0, m_b0 = v_a0 / length_a**2, v_b0 / length_b**2
    c, s = np.cos(theta), np.sin(theta)

    def rotate(p, q):
        return c * c * p + s * s * q, s * s * p + c * c * q, c * s * (q - p)

    return (*rotate(v_a0, v_b0), *rotate(m_a0, m_b0))


@pytest.mark.parametrize("theta", [0.1, 0.5, np.pi / 4, 1.0, 1.4])
def test_invariant_gradients_is_exact_for_rotated_statistics(theta):
    """M_AB from the invariants equals the rotated one, also at the crossing V_A = V_B (θ = π/4),
    with λ = (L_A / L_B)²; another λ misses it."""
    from cases.chemistry_closure import invariant_gradients

    v_a, v_b, v_ab, m_a, m_b, m_ab = _rotated_statistics(theta)
    exact = invariant_gradients(v_a, v_b, v_ab, m_a, m_b, (0.1 / 0.06) ** 2)
    np.testing.assert_allclose(exact, m_ab, rtol=1e-10, atol=1e-10 * np.abs(m_ab).max())
    wrong = invariant_gradients(v_a, v_b, v_ab, m_a, m_b, 2.0)
    assert np.linalg.norm(wrong - m_ab) > 0.05 * np.linalg.norm(m_ab)


def test_fit_ratio_recovers_the_squared_length_scale_ratio():
    from cases.chemistry_closure import fit_ratio

    names = ("V_A", "V_B", "V_AB", "M_A", "M_B", "M_AB")
    rows = [_rotated_statistics(theta, 0.12, 0.05) for theta in np.linspace(0, 1.5, 7)]
    data = {k: (("time", "x"), np.stack([r[i] for r in rows])) for i, k in enumerate(names)}
    ratio, residual = fit_ratio(xr.Dataset(data))
    assert ratio == pytest.approx((0.12 / 0.05) ** 2, rel=1e-5)
    assert residual < 1e-6


def test_antisymmetric_dictionary_changes_sign_when_the_species_are_exchanged():
    from cases.chemistry_closure import antisymmetric_dictionary
    from pkf import SymbolicPKF

    symbolic = SymbolicPKF(chemistry1d.chemistry_equations())
    fa, fb = symbolic.fields["A"], symbolic.fields["B"]
    swap = {fa.variance: fb.variance, fb.variance: fa.variance}
    swap.update({fa.aspect[0, 0]: fb.aspect[0, 0], fb.aspect[0, 0]: fa.aspect[0, 0]})
    terms = antisymmetric_dictionary(symbolic)
    assert len(terms) >= 3
    for term in terms:
        assert sp.simplify(term + term.xreplace(swap)) == 0
        assert term.has(rho_field())


def test_learned_closure_json_round_trip_and_bad_files(tmp_path):
    from cases.chemistry_closure import LearnedCrossClosure
    from pkf import SymbolicPKF

    x = sp.Symbol("x")
    learned = LearnedCrossClosure((sp.Derivative(rho_field(), x),), (0.5,), 2.7, {"seed": 3})
    loaded = LearnedCrossClosure.from_json(learned.to_json(tmp_path / "closure.json"))
    assert loaded == learned
    symbolic = SymbolicPKF(chemistry1d.chemistry_equations())
    closure = chemistry1d.cross_closure(symbolic, "learned", loaded)
    assert set(closure) == set(symbolic.unclosed_terms)
    bad = tmp_path / "bad.json"
    bad.write_text('{"first_terms_text": []}')
    with pytest.raises(ValueError, match="bad.json: not a learned chemistry1d closure"):
        LearnedCrossClosure.from_json(bad)
    bad.write_text('{"first_terms_text": [], "first_coefficients": [], "ratio": -1}')
    with pytest.raises(ValueError, match="ratio must be positive"):
        LearnedCrossClosure.from_json(bad)
    with pytest.raises(ValueError, match="missing.json: No such file"):
        LearnedCrossClosure.from_json(tmp_path / "missing.json")
    settings = chemistry1d.Settings(learned_closure=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="--learned-closure: no file"):
        settings.validate()
    settings = chemistry1d.Settings(learned_closure=str(bad))  # checked before any run
    with pytest.raises(ValueError, match="--learned-closure: .*ratio must be positive"):
        settings.validate()


def test_learned_closure_file_is_never_executed(tmp_path):
    """A term is matched as text against the rebuilt candidates, never evaluated: code in
    the file is an unknown term, and it does not run."""
    from cases.chemistry_closure import LearnedCrossClosure

    marker = tmp_path / "ran"
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('x') and 0 or Symbol('x')"
    evil = tmp_path / "evil.json"
    evil.write_text(
        json.dumps({"first_terms_text": [code], "first_coefficients": [1.0], "ratio": 2.0})
    )
    with pytest.raises(ValueError, match="unknown term"):
        LearnedCrossClosure.from_json(evil)
    assert not marker.exists()
