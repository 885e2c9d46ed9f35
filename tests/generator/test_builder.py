"""Code rendering: readable module, identical forecasts from file and memory, saving."""

import importlib.util
import sys

import keras
import numpy as np
import pytest
import sympy as sp

from generator import NNModelBuilder

t, x = sp.symbols("t x")
u = sp.Function("u")(t, x)
v = sp.Function("v")(t, x)
kappa = sp.Symbol("kappa")


@pytest.fixture(scope="module")
def builder():
    equations = [
        sp.Eq(
            sp.Derivative(u, t),
            -sp.Rational(3, 4) * u * sp.Derivative(u, x)
            + kappa * sp.Derivative(u, x, 2)
            + sp.exp(u * v) / (1 + (u * v) ** 2),
        ),
        sp.Eq(sp.Derivative(v, t), -0.5 * sp.sqrt(1 + (u * v) ** 2) * sp.Derivative(v, x, 3)),
    ]
    return NNModelBuilder(equations, class_name="Coupled1D", accuracy=4)


def test_code_uses_equation_names_and_keeps_coefficients(builder):
    code = builder.code
    assert "class Coupled1D(GeneratedModel)" in code
    for name in ("D_u_x1", "D_u_x2", "D_v_x3", "trend_u", "trend_v", "kappa = constants"):
        assert name in code
    assert "3*" in code and "/4" in code  # -3/4 kept exactly, sign included
    assert "- 0.5*" in code or "-0.5*" in code
    assert "ops.exp(" in code and "ops.sqrt(" in code
    compile(code, "<generated>", "exec")


def test_repeated_subexpression_is_computed_once(builder):
    code = builder.code
    assert "common sub-expressions" in code
    assert code.count("u*v") == 1


def test_written_module_and_built_class_give_identical_forecasts(builder, tmp_path):
    path = builder.write_module(tmp_path / "coupled1d.py")
    spec = importlib.util.spec_from_file_location("coupled1d_test_module", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    built = builder.build()
    xs = np.arange(64) / 64
    state = {"u": 0.3 * np.sin(2 * np.pi * xs), "v": 0.2 * np.cos(2 * np.pi * xs)}
    times = np.arange(21) * 1e-6
    a = module.Coupled1D(shape=64, kappa=0.01).forecast(times, state, saved_times=[times[-1]])
    b = built(shape=64, kappa=0.01).forecast(times, state, saved_times=[times[-1]])
    for name in ("u", "v"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
        assert np.all(np.isfinite(a[name].values))


def test_trend_model_summary_save_and_load_roundtrip(builder, tmp_path):
    model = builder.build()(shape=32, kappa=0.02)
    model.trend_model.summary(print_fn=lambda *_args, **_kw: None)
    path = tmp_path / "coupled.keras"
    model.save(str(path))
    loaded = keras.models.load_model(path)
    xs = np.arange(32) / 32
    inputs = {"u": np.sin(2 * np.pi * xs)[None], "v": np.cos(2 * np.pi * xs)[None]}
    original = model.trend_model(inputs)
    restored = loaded(inputs)
    for name in ("u", "v"):
        np.testing.assert_array_equal(np.asarray(original[name]), np.asarray(restored[name]))
    assert float(loaded.get_layer("pkfnet_trend").constant_weights["kappa"].numpy()) == 0.02


def test_constants_are_weights_not_frozen(builder):
    model = builder.build()(shape=16, kappa=0.0)
    xs = np.arange(16) / 16
    state = {"u": np.sin(2 * np.pi * xs), "v": np.zeros(16)}
    before = model.trend(0.0, state)["u"]
    model.set_constant("kappa", 1.0)
    after = model.trend(0.0, state)["u"]
    d2 = after - before
    h = 1 / 16
    # 4th-order second derivative of sin(2πx) on the grid, written independently here.
    f = state["u"]
    expected = (
        -np.roll(f, 2) + 16 * np.roll(f, 1) - 30 * f + 16 * np.roll(f, -1) - np.roll(f, -2)
    ) / (12 * h**2)
    np.testing.assert_allclose(d2, expected, rtol=1e-12, atol=1e-9)
