"""Saving and reloading whole generated models: itself or a clear error, in any process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import sympy as sp

from generator import NNModelBuilder, load_model

t, x = sp.symbols("t x")
u = sp.Function("u")(t, x)
kappa = sp.Symbol("kappa")
XS = np.arange(16) / 16
STATE = {"u": np.sin(2 * np.pi * XS) + 0.5}


def test_same_class_name_never_reloads_as_another_model(tmp_path):
    # Issue 11.4: after a second class with the same (default) name was generated, loading the
    # first model's file returned the second model's trend.
    first = NNModelBuilder(sp.Eq(u.diff(t), kappa * u.diff(x, 2))).build()(shape=16, kappa=0.1)
    path = first.save(tmp_path / "first.keras")
    second = NNModelBuilder(sp.Eq(u.diff(t), -u * u.diff(x))).build()(shape=16)
    expected = first.trend(0.0, STATE)["u"]
    assert np.abs(second.trend(0.0, STATE)["u"] - expected).max() > 0.1
    reloaded = load_model(path)
    assert type(reloaded) is type(first)
    np.testing.assert_array_equal(reloaded.trend(0.0, STATE)["u"], expected)
    bare = keras.saving.load_model(path)  # the bare trend network is itself too
    np.testing.assert_array_equal(np.asarray(bare({"u": STATE["u"][None]})["u"])[0], expected)


def test_reloaded_model_forecasts_like_the_original(tmp_path):
    cls = NNModelBuilder(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)), "Saved").build()
    model = cls(shape=16, lengths=2.0, time_scheme="rk2", kappa=0.05)
    path = model.save(tmp_path / "saved.keras")
    reloaded = load_model(path)
    assert (reloaded.shape, reloaded.lengths, reloaded.time_scheme) == ((16,), (2.0,), "rk2")
    times = np.arange(21) * 0.01
    a = model.forecast(times, STATE)["u"].values
    b = reloaded.forecast(times, STATE)["u"].values
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="ends with '.keras'"):
        model.save(tmp_path / "saved.h5")


def test_fresh_process_reload_needs_trust_or_the_rebuilt_class(tmp_path):
    cls = NNModelBuilder(sp.Eq(u.diff(t), kappa * u.diff(x, 2)), "FreshHeat").build()
    model = cls(shape=16, kappa=0.3)
    path = model.save(tmp_path / "heat.keras")
    np.save(tmp_path / "expected.npy", model.trend(0.0, STATE)["u"])
    script = textwrap.dedent(
        f"""
        import numpy as np
        from generator import load_model
        path = {str(path)!r}
        try:
            load_model(path)
        except ValueError as error:
            assert "safe_mode=False" in str(error), error
        else:
            raise AssertionError("safe mode ran code from the file")
        model = load_model(path, safe_mode=False)
        xs = np.arange(16) / 16
        got = model.trend(0.0, {{"u": np.sin(2 * np.pi * xs) + 0.5}})["u"]
        np.testing.assert_array_equal(got, np.load({str(tmp_path / "expected.npy")!r}))
        print("ok", type(model).__name__)
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok FreshHeat" in result.stdout


def test_a_file_that_is_not_a_saved_model_is_refused(tmp_path):
    bogus = Path(tmp_path / "bogus.keras")
    bogus.write_text("not a zip")
    with pytest.raises(ValueError, match="not a saved pkfnet model"):
        load_model(bogus)
