"""PKF -> code generator hand-off: the generated PKF models against analytic and ensemble results.

The closed PKF-Burgers model (Pannekoucke et al. 2018 closure, paper setup) is compared with a
plain-numpy ensemble of Burgers forecasts; the closure slot variant is checked against the
closed-expression variant, and the heat equation against its exact homogeneous solution.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import sympy as sp

from generator import NNModelBuilder
from pkf import SymbolicPKF, sample_errors
from pkf.statistics import ensemble_variance, metric_from_ensemble

t, x, kappa = sp.symbols("t x kappa")
u = sp.Function("u")(t, x)

# Paper setup (Pannekoucke et al. 2018; PDE-NetGen paper Section 4.2).
NX = 241
DX = 1.0 / NX
KAPPA = 0.0025
DT = 0.002
STEPS = 500  # t = 1
LH = 0.02
MEMBERS = 6400


def burgers_pkf() -> SymbolicPKF:
    return SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))


def pannekoucke_closure(nu: sp.Expr) -> sp.Expr:
    """E[eps d_x^4 eps] ~ d2nu/nu^2 + (3/4)/nu^2 - 2 (dnu)^2/nu^3 (diffusion form)."""
    return nu.diff(x, 2) / nu**2 + sp.Rational(3, 4) / nu**2 - 2 * nu.diff(x) ** 2 / nu**3


def initial_state() -> dict[str, np.ndarray]:
    """Mean U0 = 0.25 (1 + cos 2pi(x - 1/4)), V0 = (0.01 max U0)^2, nu0 = lh^2 / 2."""
    grid = np.arange(NX) * DX
    mean = 0.25 * (1 + np.cos(2 * np.pi * (grid - 0.25)))
    variance = np.full(NX, (0.01 * mean.max()) ** 2)
    return {"u": mean, "V_u": variance, "nu_u_xx": np.full(NX, LH**2 / 2)}


def forecast_final(model, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    times = np.arange(STEPS + 1) * DT
    return model.state_at(model.forecast(times, state, saved_times=[times[-1]]))


def relative_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def closed_forecast() -> dict[str, np.ndarray]:
    """PKF-Burgers with the closure as an expression, forecast to t = 1."""
    pkf = burgers_pkf()
    nu = pkf.fields["u"].diffusion[0, 0]
    pkf.set_closure({pkf.unclosed_terms[0]: pannekoucke_closure(nu)})
    equations = pkf.to_generator(form="diffusion", closure="slot")
    model_class = NNModelBuilder(equations, class_name="ClosedPKFBurgers").build()
    assert model_class.exogenous_functions == ()
    model = model_class(shape=NX, lengths=1.0, dtype="float64", kappa=KAPPA)
    return forecast_final(model, initial_state())


def numpy_burgers_ensemble(members: np.ndarray) -> np.ndarray:
    """RK4 of d_t u = kappa d2u - u du (centred differences), all members at once.

    ``members``: (members, NX) float64; returns the members at t = STEPS * DT. Members are
    integrated in cache-sized chunks.
    """

    def trend(v: np.ndarray) -> np.ndarray:
        right, left = np.roll(v, -1, axis=-1), np.roll(v, 1, axis=-1)
        return (KAPPA / DX**2) * (right - 2 * v + left) - v * (right - left) * (0.5 / DX)

    out = np.empty_like(members)
    for start in range(0, len(members), 400):
        v = members[start : start + 400]
        for _ in range(STEPS):
            k1 = trend(v)
            k2 = trend(v + 0.5 * DT * k1)
            k3 = trend(v + 0.5 * DT * k2)
            k4 = trend(v + DT * k3)
            v = v + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out[start : start + 400] = v
    return out


@pytest.mark.slow
def test_closed_pkf_burgers_matches_6400_member_ensemble_at_t1(closed_forecast):
    # Measured (seeds 0-3): variance 1.6-3.0 %, length-scale 2.5-2.9 % (about 2 % of the
    # latter is the low bias of g from the centred difference at L ~ 5 dx).
    state = initial_state()
    errors = sample_errors(NX, 1.0, MEMBERS, LH, variance=state["V_u"][0], seed=0)
    ensemble = numpy_burgers_ensemble(state["u"] + errors)
    variance = ensemble_variance(ensemble)
    length_scale = 1 / np.sqrt(metric_from_ensemble(ensemble, DX)[0, 0])

    assert relative_l2(closed_forecast["u"], ensemble.mean(axis=0)) < 1e-3
    assert relative_l2(closed_forecast["V_u"], variance) < 0.05
    assert relative_l2(np.sqrt(2 * closed_forecast["nu_u_xx"]), length_scale) < 0.05


def test_closure_slot_plugged_with_callable_matches_closed_expression(closed_forecast):
    pkf = burgers_pkf()
    equations = pkf.to_generator(form="diffusion", closure="slot")
    model_class = NNModelBuilder(equations, class_name="SlotPKFBurgers").build()
    assert model_class.exogenous_functions == ("closure_u_x4",)
    model = model_class(shape=NX, lengths=1.0, dtype="float64", kappa=KAPPA)

    def closure(nu):
        right, left = keras.ops.roll(nu, -1, axis=-1), keras.ops.roll(nu, 1, axis=-1)
        d1 = (right - left) / (2 * DX)
        d2 = (right - 2 * nu + left) / DX**2
        return d2 / nu**2 + 0.75 / nu**2 - 2 * d1**2 / nu**3

    model.set_closure("closure_u_x4", closure, inputs=["nu_u_xx"])
    plugged = forecast_final(model, initial_state())
    for name, expected in closed_forecast.items():
        np.testing.assert_allclose(plugged[name], expected, rtol=1e-10, err_msg=name)


def test_closed_pkf_heat_equation_converges_to_exact_homogeneous_solution_at_order_4():
    # With the closure, homogeneous statistics obey d_t s = 4 kappa, d_t V = -2 kappa V / s:
    # s(t) = s0 + 4 kappa t, V(t) = V0 sqrt(s0 / (s0 + 4 kappa t)).
    pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2)))
    nu = pkf.fields["u"].diffusion[0, 0]
    pkf.set_closure({pkf.unclosed_terms[0]: pannekoucke_closure(nu)})
    model_class = NNModelBuilder(pkf.to_generator(form="aspect"), class_name="ClosedHeat").build()
    assert model_class.prognostic_functions == ("u", "V_u", "s_u_xx")
    model = model_class(shape=32, lengths=1.0, dtype="float64", kappa=KAPPA)
    s0, v0, duration = LH**2, 2.0, 1.0
    state = {"u": np.zeros(32), "V_u": np.full(32, v0), "s_u_xx": np.full(32, s0)}
    exact_v = v0 * np.sqrt(s0 / (s0 + 4 * KAPPA * duration))
    errors = []
    for steps in (100, 200):
        times = np.linspace(0.0, duration, steps + 1)
        final = model.state_at(model.forecast(times, state, saved_times=[duration]))
        np.testing.assert_allclose(final["s_u_xx"], s0 + 4 * KAPPA * duration, rtol=1e-12)
        errors.append(np.max(np.abs(final["V_u"] / exact_v - 1)))
    assert errors[1] < 1e-6
    assert 3.8 < np.log2(errors[0] / errors[1]) < 4.2
