"""Closure models: the trainable-expression closure and the exogenous Keras closure agree."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from closures import (
    as_trainable_expression,
    closure_coefficients,
    dictionary,
    linear_closure_model,
    plug_linear_closure,
    term_fields,
)
from generator import NNModelBuilder, TrainableScalar
from pkf import SymbolicPKF

t, x, kappa = sp.symbols("t x kappa")
u = sp.Function("u")(t, x)
NX, KAPPA, DT, STEPS = 96, 0.0025, 0.002, 40
SLOT = "closure_u_x4"


@pytest.fixture(scope="module")
def burgers():
    pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    field = pkf.fields["u"]
    terms = dictionary(pkf.unclosed_terms[0], [field.diffusion[0, 0], field.variance], pkf)
    return pkf, terms, pkf.to_generator(form="diffusion", closure="slot")


def initial_state() -> dict[str, np.ndarray]:
    grid = np.arange(NX) / NX
    mean = 0.25 * (1 + np.cos(2 * np.pi * (grid - 0.25)))
    variance = 1e-5 * (1 + 0.3 * np.sin(2 * np.pi * grid))
    nu = 0.5 * (0.05 + 0.01 * np.cos(4 * np.pi * grid)) ** 2
    return {"u": mean, "V_u": variance, "nu_u_xx": nu}


def test_trainable_expression_has_one_trainable_scalar_per_term():
    nu = sp.Function("nu")(t, x)
    expr = as_trainable_expression([1 / nu**2, nu.diff(x, 2) / nu**2], init=[0.75, 1.0])
    scalars = sorted(expr.atoms(TrainableScalar), key=str)
    assert [s.name for s in scalars] == ["a_0", "a_1"]
    assert [s.init for s in scalars] == [0.75, 1.0]
    with pytest.raises(ValueError, match="2 initial values for 3 terms"):
        as_trainable_expression([nu, nu**2, nu**3], init=[1.0, 2.0])


def test_linear_closure_model_matches_numpy_on_the_paper_terms():
    nu = sp.Function("nu")(t, x)
    terms = [nu.diff(x, 2) / nu**2, 1 / nu**2, nu.diff(x) ** 2 / nu**3]
    net, names = linear_closure_model(terms, NX, 1 / NX, coefficients=[1.0, 0.75, -2.0])
    assert names == ["nu"]
    field = initial_state()["nu_u_xx"]
    h = 1 / NX
    d1 = (np.roll(field, -1) - np.roll(field, 1)) / (2 * h)
    d2 = (np.roll(field, -1) - 2 * field + np.roll(field, 1)) / h**2
    expected = d2 / field**2 + 0.75 / field**2 - 2 * d1**2 / field**3
    np.testing.assert_allclose(np.asarray(net(field[None]))[0, :, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(closure_coefficients(net), [1.0, 0.75, -2.0])


def test_expression_and_keras_closures_give_the_same_burgers_pkf_forecast(burgers):
    pkf, terms, equations = burgers
    assert term_fields(terms) == ["nu_u_xx", "V_u"]
    coefficients = np.zeros(len(terms))
    coefficients[:4] = [0.75, 1.0, 0.01, -2.0]  # 1/nu^2, d2nu/nu^2, d2V/(V nu), (dnu)^2/nu^3
    coefficients[4:] = 0.01 * np.arange(1, len(terms) - 3)
    expr = as_trainable_expression(terms, init=coefficients)
    inside = NNModelBuilder(equations, "ExprClosure", closures={SLOT: expr}).build()
    inside = inside(shape=NX, kappa=KAPPA, jit_compile=False)
    assert inside.trainable_scalars == pytest.approx(
        {f"a_{k}": c for k, c in enumerate(coefficients)}, abs=0
    )
    outside = NNModelBuilder(equations, "KerasClosure").build()(
        shape=NX, kappa=KAPPA, jit_compile=False
    )
    net = plug_linear_closure(outside, SLOT, terms, coefficients)
    assert [i.name for i in net.inputs] == ["nu_u_xx", "V_u"]
    times = np.arange(STEPS + 1) * DT
    a = inside.state_at(inside.forecast(times, initial_state(), saved_times=[times[-1]]))
    b = outside.state_at(outside.forecast(times, initial_state(), saved_times=[times[-1]]))
    assert not np.allclose(a["nu_u_xx"], initial_state()["nu_u_xx"], rtol=1e-3)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-10, atol=0, err_msg=name)


def test_plug_rejects_terms_on_fields_the_model_does_not_have(burgers):
    _, _, equations = burgers
    model = NNModelBuilder(equations, "Reject").build()(shape=NX, kappa=KAPPA)
    s = sp.Function("s")(t, x)
    with pytest.raises(ValueError, match=r"\['s'\] are not prognostic"):
        plug_linear_closure(model, SLOT, [1 / s**2])
