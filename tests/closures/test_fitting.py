"""Linear fits of closure coefficients on synthetic ensembles and model tendencies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

from closures import (
    as_trainable_expression,
    dictionary,
    evaluate,
    evaluate_terms,
    fit_dictionary,
    fit_one_step_closure,
    least_squares,
    load_coefficients,
    residual_problem,
    stlsq,
)
from generator import NNModelBuilder
from pkf import SymbolicPKF

t, x, kappa = sp.symbols("t x kappa")
u = sp.Function("u")(t, x)
N, H, KAPPA = 64, 1 / 64, 0.0025
THEORY = np.array([0.75, 1.0, -2.0])  # 1/nu^2, d2nu/nu^2, (dnu)^2/nu^3 (Pannekoucke 2018)
SLOT = "closure_u_x4"


@pytest.fixture(scope="module")
def burgers():
    pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    field = pkf.fields["u"]
    nu, variance = field.diffusion[0, 0], field.variance
    return pkf, dictionary(pkf.unclosed_terms[0], [nu, variance], pkf)


def smooth_positive(samples, base, seed):
    """Smooth periodic positive fields (samples, N): base * exp(sum of 4 random modes)."""
    rng = np.random.default_rng(seed)
    k = np.arange(1, 5)
    grid = np.arange(N) * H
    amplitude = 0.6 * rng.normal(size=(samples, 4, 1)) / k[:, None]
    phase = rng.uniform(0, 2 * np.pi, size=(samples, 4, 1))
    modes = np.sum(amplitude * np.cos(2 * np.pi * k[:, None] * grid + phase), axis=1)
    return base * np.exp(modes)


def fields(samples=40, seed=0):
    return {
        "nu_u_xx": smooth_positive(samples, 0.5 * 0.06**2, seed),
        "V_u": smooth_positive(samples, 1e-4, seed + 1),
        "u": 0.3 * smooth_positive(samples, 1.0, seed + 2),
    }


def theoretical_closure(nu):
    """numpy (1, 3/4, -2) closure with centred second-order differences."""
    d1 = (np.roll(nu, -1, -1) - np.roll(nu, 1, -1)) / (2 * H)
    d2 = (np.roll(nu, -1, -1) - 2 * nu + np.roll(nu, 1, -1)) / H**2
    return 0.75 / nu**2 + d2 / nu**2 - 2 * d1**2 / nu**3


def test_evaluate_uses_the_generated_models_periodic_stencils():
    f = sp.Function("f")(t, x)
    data = fields()
    values = evaluate(
        f.diff(x, 2) / f**2 + kappa * f, {"f": data["nu_u_xx"]}, H, constants={"kappa": 2.0}
    )
    nu = data["nu_u_xx"]
    d2 = (np.roll(nu, -1, -1) - 2 * nu + np.roll(nu, 1, -1)) / H**2
    np.testing.assert_allclose(values, d2 / nu**2 + 2 * nu, rtol=1e-10)
    with pytest.raises(ValueError, match=r"no value for constant\(s\) \['kappa'\]"):
        evaluate(kappa * f, {"f": nu}, H)
    with pytest.raises(ValueError, match="no array for field 'f'"):
        evaluate(f, {}, H)


def test_least_squares_recovers_the_theoretical_closure_from_its_values(burgers):
    _, terms = burgers
    three = terms[:2] + [terms[3]]  # 1/nu^2, d2nu/nu^2, (dnu)^2/nu^3
    data = fields()
    target = theoretical_closure(data["nu_u_xx"])
    features = evaluate_terms(three, data, H)
    assert features.shape == (40, N, 3)
    np.testing.assert_allclose(least_squares(features, target), THEORY, rtol=1e-6, atol=1e-6)
    # the same on the full dictionary: the other coefficients vanish
    full = fit_dictionary(terms, evaluate_terms(terms, data, H), target)
    expected = np.zeros(len(terms))
    expected[[0, 1, 3]] = THEORY
    np.testing.assert_allclose(full.coefficients, expected, atol=1e-6)
    assert full.relative_residual < 1e-10


def test_stlsq_removes_the_spurious_terms_and_keeps_the_closure(burgers):
    _, terms = burgers
    data = fields(seed=3)
    features = evaluate_terms(terms, data, H)
    target = theoretical_closure(data["nu_u_xx"])
    noisy = target * (1 + 1e-3 * np.random.default_rng(7).normal(size=target.shape))
    plain = least_squares(features, noisy)
    assert np.count_nonzero(np.abs(plain) > 0) == len(terms)  # noise leaks into every term
    for values, tolerance in ((target, 1e-6), (noisy, 1e-2)):
        result = fit_dictionary(terms, features, values, method="stlsq", threshold=0.02)
        assert result.selected == [terms[0], terms[1], terms[3]]
        np.testing.assert_allclose(result.coefficients[[0, 1, 3]], THEORY, rtol=tolerance)
        assert np.count_nonzero(result.coefficients) == 3


def test_stlsq_threshold_is_relative_to_the_target():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 3)) * np.array([1.0, 1e6, 1e-6])
    c = np.array([2.0, 3e-6, 4e5])
    assert np.all(stlsq(a, a @ c, threshold=0.05) != 0)  # raw sizes differ by 1e12
    c[1] = 3e-9  # carries 0.1 % of the target
    assert stlsq(a, a @ c, threshold=0.05)[1] == 0


def test_residual_of_model_tendencies_gives_the_closure_coefficients(burgers):
    pkf, terms = burgers
    three = terms[:2] + [terms[3]]
    equations = pkf.to_generator(form="diffusion", closure="slot")
    closure = as_trainable_expression(three, init=THEORY, trainable=False)
    model = NNModelBuilder(equations, "TendencyBurgers", closures={SLOT: closure}).build()
    model = model(shape=N, kappa=KAPPA, jit_compile=False)
    data = fields(samples=8, seed=5)
    tendency = model.trend(0.0, data)["nu_u_xx"]
    rhs = equations[-1].rhs
    features, target = residual_problem(
        rhs, SLOT, terms, data, tendency, H, constants={"kappa": KAPPA}
    )
    result = fit_dictionary(terms, features, target, method="stlsq", threshold=1e-3)
    assert result.selected == three
    np.testing.assert_allclose(result.coefficients[[0, 1, 3]], THEORY, rtol=1e-6)
    with pytest.raises(ValueError, match="does not appear"):
        residual_problem(equations[0].rhs, SLOT, terms, data, tendency, H)


def test_fit_result_round_trips_through_json(burgers, tmp_path):
    _, terms = burgers
    data = fields(samples=4)
    result = fit_dictionary(
        terms,
        evaluate_terms(terms, data, H),
        theoretical_closure(data["nu_u_xx"]),
        method="stlsq",
        metadata={"source": "synthetic"},
    )
    path = result.to_json(tmp_path / "closure.json")
    saved = json.loads(path.read_text())
    assert saved["method"] == "stlsq" and saved["metadata"] == {"source": "synthetic"}
    assert saved["selected"] == [c != 0 for c in result.coefficients]
    loaded_terms, coefficients = load_coefficients(path)
    assert loaded_terms == terms
    np.testing.assert_array_equal(coefficients, result.coefficients)
    expected = sum(float(c) * t_ for c, t_ in zip(coefficients, terms, strict=True) if c != 0)
    assert sp.simplify(result.expression - expected) == 0


def test_one_step_training_moves_the_coefficients_toward_the_truth(burgers):
    pkf, terms = burgers
    three = terms[:2] + [terms[3]]
    equations = pkf.to_generator(form="diffusion", closure="slot")
    truth = as_trainable_expression(three, init=THEORY, trainable=False)
    reference = NNModelBuilder(equations, "OneStepTruth", closures={SLOT: truth}).build()
    reference = reference(shape=N, kappa=KAPPA, jit_compile=False)
    data = fields(samples=256, seed=11)
    dt = 0.002
    after = reference.state_at(reference.forecast([0.0, dt], data, saved_times=[dt]))
    start = THEORY * np.array([0.8, 1.3, 0.7])
    result = fit_one_step_closure(
        equations,
        SLOT,
        three,
        data,
        after,
        dt,
        shape=N,
        constants={"kappa": KAPPA},
        init=start,
        epochs=2,
        batch_size=32,
        learning_rate=0.02,
        progress=False,
    )
    history = result.metadata["history"]
    assert history["loss"][-1] < history["loss"][0]
    assert np.all(np.abs(result.coefficients - THEORY) < np.abs(start - THEORY))
