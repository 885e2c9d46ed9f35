"""Generated models on unusual but valid equations, and clear errors on bad inputs (issue 11)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import xarray as xr

from generator import NNModelBuilder, NonFiniteStateError

t, x, y = sp.symbols("t x y")
u = sp.Function("u")(t, x)


def build(rhs, name="M", **values):
    cls = NNModelBuilder(sp.Eq(u.diff(t), rhs), name).build()
    return cls(shape=8, **values)


@pytest.mark.parametrize(("rhs", "expected"), [(1, 1.0), (0, 0.0), (sp.Rational(3, 4), 0.75)])
def test_right_hand_sides_without_fields_broadcast_to_the_grid(rhs, expected):
    model = build(rhs)
    state = {"u": np.linspace(0, 1, 8)}
    np.testing.assert_array_equal(model.trend(0.0, state)["u"], np.full(8, expected))
    batch = {"u": np.zeros((3, 8))}
    assert model.trend(0.0, batch)["u"].shape == (3, 8)
    out = model.forecast([0.0, 0.5, 1.0], batch)
    np.testing.assert_allclose(out["u"].values[-1], np.full((3, 8), expected), rtol=1e-15)


def test_constant_right_hand_side_and_clock_field():
    tau = sp.Function("tau")(t, x)
    k = sp.Symbol("k")
    cls = NNModelBuilder([sp.Eq(u.diff(t), k), sp.Eq(tau.diff(t), 1)], "Clock").build()
    model = cls(shape=8, k=2.5)
    trend = model.trend(0.0, {"u": np.zeros(8), "tau": np.zeros(8)})
    np.testing.assert_array_equal(trend["u"], 2.5)
    np.testing.assert_array_equal(trend["tau"], 1.0)
    out = model.forecast(np.arange(11) * 0.1, {"u": np.zeros(8), "tau": np.zeros(8)})
    np.testing.assert_allclose(out["tau"].values[-1], 1.0, rtol=1e-14)
    np.testing.assert_allclose(out["u"].values[-1], 2.5, rtol=1e-14)


def test_numeric_function_arguments_are_exact_in_the_model_dtype():
    state = {"u": np.full(8, 0.7)}
    # sin(2) * 0.7 in float64 (the value the issue gives)
    value = build(sp.sin(2) * u).trend(0.0, state)["u"]
    np.testing.assert_array_equal(value, np.full(8, 0.6365081987779772))
    np.testing.assert_array_equal(
        build(-sp.sqrt(2) * u).trend(0.0, state)["u"], np.full(8, -math.sqrt(2) * 0.7)
    )
    np.testing.assert_array_equal(
        build(u + sp.log(3)).trend(0.0, state)["u"], np.full(8, 0.7 + math.log(3))
    )
    # u_t = sin(2): Euler integration gives sin(2) t with sin(2) in float64, not float32
    model = NNModelBuilder(sp.Eq(u.diff(t), sp.sin(2)), "SinTwo").build()(
        shape=8, time_scheme="euler"
    )
    out = model.forecast([0.0, 1.0], {"u": np.zeros(8)})
    np.testing.assert_array_equal(out["u"].values[-1], np.full(8, math.sin(2)))
    single = NNModelBuilder(sp.Eq(u.diff(t), sp.sin(2) * u), "SinTwo32").build()(
        shape=8, dtype="float32"
    )
    assert single.trend(0.0, {"u": np.ones(8)})["u"].dtype == np.float32


def test_pkf_of_a_pointwise_dynamics_builds_and_forecasts():
    # Its aspect equation is d_t s = 0, a right-hand side without fields.
    from pkf import SymbolicPKF

    pkf = SymbolicPKF(sp.Eq(u.diff(t), -(u**2)))
    cls = NNModelBuilder(pkf.to_generator(form="aspect"), "PointwisePKF").build()
    model = cls(shape=8)
    state = {"u": np.full(8, 1.0), "V_u": np.full(8, 0.01), "s_u_xx": np.full(8, 0.02)}
    out = model.forecast(np.arange(11) * 0.01, state)
    np.testing.assert_array_equal(out["s_u_xx"].values[-1], 0.02)

    # mean: u' = -u² - V, V' = -4 u V: a tiny numpy RK4 as the reference
    def f(z):
        return np.array([-(z[0] ** 2) - z[1], -4 * z[0] * z[1]])

    z = np.array([1.0, 0.01])
    for _ in range(10):
        a = f(z)
        b = f(z + 0.005 * a)
        c = f(z + 0.005 * b)
        d = f(z + 0.01 * c)
        z = z + 0.01 / 6 * (a + 2 * b + 2 * c + d)
    np.testing.assert_allclose(out["u"].values[-1], z[0], rtol=1e-12)
    np.testing.assert_allclose(out["V_u"].values[-1], z[1], rtol=1e-12)


@pytest.mark.parametrize("shape", [(16, 16), (16, 24)])
def test_constant_function_arrays_are_read_in_their_own_argument_order(shape):
    # Issue 11.3: k(y, x) given as an array (ny, nx) was used untransposed on square grids.
    v = sp.Function("v")(t, x, y)
    kyx = sp.Function("kyx")(y, x)
    cls = NNModelBuilder(sp.Eq(v.diff(t), kyx * v), "OwnOrder").build()
    nx, ny = shape
    xs, ys = np.arange(nx) / nx, np.arange(ny) / ny
    k_own = np.sin(2 * np.pi * ys)[:, None] + 3 * xs[None, :]  # (ny, nx): k[j, i] = k(y_j, x_i)
    model = cls(shape=shape, kyx=k_own)
    state = np.ones((nx, ny))
    expected = k_own.T  # grid order (nx, ny)
    np.testing.assert_allclose(model.trend(0.0, {"v": state})["v"], expected, rtol=1e-15)
    labelled = xr.DataArray(k_own.T, dims=("x", "y"))  # named dims: any order
    np.testing.assert_allclose(
        cls(shape=shape, kyx=labelled).trend(0.0, {"v": state})["v"], expected, rtol=1e-15
    )
    if nx != ny:
        with pytest.raises(ValueError, match="own argument order"):
            cls(shape=shape, kyx=k_own.T)


@pytest.mark.parametrize(
    ("symbol", "kind"),
    [("ops", "constant"), ("self", "constant"), ("shape", "constant"), ("trend_u", "constant")],
)
def test_names_the_generated_code_uses_are_refused(symbol, kind):
    with pytest.raises(ValueError, match=f"{kind} '{symbol}': the name is reserved"):
        NNModelBuilder(sp.Eq(u.diff(t), sp.Symbol(symbol) * u), "Reserved")


def test_field_named_fields_or_constants_is_refused():
    for name in ("fields", "constants", "keras"):
        f = sp.Function(name)(t, x)
        with pytest.raises(ValueError, match=f"function '{name}': the name is reserved"):
            NNModelBuilder(sp.Eq(f.diff(t), -f), "Reserved")


def test_code_in_a_name_never_runs(monkeypatch):
    # Issue 11.5: the module docstring embedded raw equation text.
    import os

    monkeypatch.delenv("PKFNET_PWNED", raising=False)
    evil = 'a"""\nimport os; os.environ["PKFNET_PWNED"] = "1"\n"""'
    for symbol, function in ((sp.Symbol(evil), u), (sp.Symbol("k"), sp.Function(evil)(t, x))):
        try:
            NNModelBuilder(sp.Eq(function.diff(t), symbol * function), "Evil").build()
        except ValueError:
            pass  # refusing the name is fine too
        assert "PKFNET_PWNED" not in os.environ
    with pytest.raises(ValueError, match="keyword"):
        NNModelBuilder(sp.Eq(u.diff(t), -u), "class")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lengths": np.inf}, r"lengths\[0\]: expected a finite number > 0, got inf"),
        ({"lengths": np.nan}, r"lengths\[0\]: expected a finite number > 0, got nan"),
        ({"shape": 64.7}, r"shape\[0\]: expected an integer >= 1, got 64.7"),
        ({"shape": 0}, r"shape\[0\]: expected an integer >= 1, got 0"),
        ({"dtype": "float16"}, "dtype: expected 'float32' or 'float64'"),
        ({"time_scheme": "rk3"}, "time_scheme: expected one of"),
    ],
)
def test_bad_model_arguments_are_named(kwargs, message):
    cls = NNModelBuilder(sp.Eq(u.diff(t), -u), "Decay").build()
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_bad_states_and_steps_are_named_never_silent():
    model = build(sp.Symbol("k") * u.diff(x), "Advect", k=1.0)
    with pytest.raises(TypeError, match=r"state\['u'\]: expected real numbers, got complex"):
        model.forecast([0.0, 0.1], {"u": np.ones(8) * (1 + 1j)})
    with pytest.raises(ValueError, match=r"state\['u'\]: 8 values are not finite"):
        model.forecast([0.0, 0.1], {"u": np.full(8, np.nan)})
    with pytest.raises(ValueError, match="dt: expected a finite number > 0, got nan"):
        model.step_model(float("nan"))
    with pytest.raises(ValueError, match="steps: expected an integer >= 1, got 2.5"):
        model.step_model(0.1, steps=2.5)
    with pytest.raises(ValueError, match="constant 'k' must be finite"):
        model.set_constant("k", np.inf)
    nan_state = {"u": np.full(8, np.nan)}
    for call in (
        lambda: model.trend(0.0, nan_state),
        lambda: model.tangent_linear({"u": np.ones(8)}, nan_state, [0.0, 0.1]),
        lambda: model.adjoint(nan_state, {"u": np.ones(8)}, [0.0, 0.1]),
    ):
        with pytest.raises(ValueError, match="values are not finite"):
            call()
    # finite inputs whose results overflow: named, never returned silently
    blow = build(sp.exp(u), "Overflow")
    big = {"u": np.full(8, 800.0)}
    with pytest.raises(NonFiniteStateError, match="trend: field 'u' is not finite"):
        blow.trend(0.0, big)
    with pytest.raises(NonFiniteStateError, match="tangent_linear: field 'u' is not finite"):
        blow.tangent_linear(big, {"u": np.ones(8)}, [0.0, 0.1])
    with pytest.raises(NonFiniteStateError, match="adjoint: field 'u' is not finite"):
        blow.adjoint(big, {"u": np.ones(8)}, [0.0, 0.1])
    with pytest.raises(ValueError, match="perturbation: shape"):
        model.tangent_linear({"u": np.ones(8)}, {"u": np.ones((2, 8))}, [0.0, 0.1])


def test_trainable_scalar_init_must_be_finite():
    from generator import TrainableScalar

    with pytest.raises(ValueError, match="init: expected a finite number"):
        TrainableScalar("a", init=float("nan"))
