"""The one compiled time loop: time-grid validation, any sequence of calls, non-finite stops."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from generator import NNModelBuilder, NonFiniteStateError, time_grid

t, x = sp.symbols("t x")
u = sp.Function("u")(t, x)
N = 32
XS = np.arange(N) / N


@pytest.fixture(scope="module")
def burgers_class():
    kappa = sp.Symbol("kappa")
    eq = sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x))
    return NNModelBuilder(eq, "LoopBurgers").build()


def numpy_burgers(u0: np.ndarray, dt: float, steps: int, kappa: float = 0.01) -> np.ndarray:
    h = 1 / N

    def trend(f):
        d1 = (np.roll(f, -1, -1) - np.roll(f, 1, -1)) / (2 * h)
        d2 = (np.roll(f, -1, -1) - 2 * f + np.roll(f, 1, -1)) / h**2
        return kappa * d2 - f * d1

    f = np.array(u0, dtype=float)
    for _ in range(steps):
        a = trend(f)
        b = trend(f + dt / 2 * a)
        c = trend(f + dt / 2 * b)
        d = trend(f + dt * c)
        f = f + dt / 6 * (a + 2 * b + 2 * c + d)
    return f


def test_any_sequence_of_forecast_calls_matches_numpy(burgers_class):
    # Issue 11.1: a second forecast with another number of saved times failed inside
    # TensorFlow ("Argument `size` must be provided") after a relaxed retrace.
    model = burgers_class(shape=N, kappa=0.01)
    times = np.arange(51) * 0.001
    u0 = 0.5 + 0.2 * np.sin(2 * np.pi * XS)
    rng = np.random.default_rng(0)
    calls = [
        (None, None),
        ([0.02], None),
        ([0.01, 0.05], 3),
        (None, 7),
        ([0.0], None),
        (0.03, 2),
        ([0.01, 0.02, 0.03, 0.04], None),
    ]
    for saved, members in calls:
        state = u0 if members is None else u0 + 0.05 * rng.standard_normal((members, N))
        out = model.forecast(times, {"u": state}, saved_times=saved)
        expected_times = times if saved is None else np.atleast_1d(saved)
        np.testing.assert_array_equal(out["time"].values, expected_times)
        for k, time in enumerate(expected_times):
            steps = int(round(time / 0.001))
            got = out["u"].values[k]
            np.testing.assert_allclose(got, numpy_burgers(state, 0.001, steps), rtol=1e-12)


def test_float32_and_float64_models_alternate(burgers_class):
    single = burgers_class(shape=N, dtype="float32", kappa=0.01)
    double = burgers_class(shape=N, dtype="float64", kappa=0.01)
    times = np.arange(11) * 0.001
    u0 = 0.5 + 0.2 * np.sin(2 * np.pi * XS)
    reference = numpy_burgers(u0, 0.001, 10)
    for _ in range(2):
        a = single.forecast(times, {"u": u0}, saved_times=[0.01])["u"].values[-1]
        b = double.forecast(times, {"u": u0}, saved_times=[0.01])["u"].values[-1]
        assert a.dtype == np.float32 and b.dtype == np.float64
        np.testing.assert_allclose(a, reference, rtol=1e-5)
        np.testing.assert_allclose(b, reference, rtol=1e-12)


def test_blow_up_after_reuse_is_a_non_finite_error_with_the_partial_forecast(burgers_class):
    model = burgers_class(shape=N, kappa=0.01)
    u0 = 0.5 + 0.2 * np.sin(2 * np.pi * XS)
    model.forecast(np.arange(11) * 0.001, {"u": u0}, saved_times=[0.005])
    model.forecast(np.arange(11) * 0.001, {"u": u0})
    times = np.arange(2001) * 0.02  # dt kappa / dx² = 0.2 per step but u explodes the CFL later
    saved = times[::100]
    with pytest.raises(NonFiniteStateError, match="field 'u' is not finite at t = ") as info:
        model.forecast(times, {"u": 40 * u0}, saved_times=saved)
    error = info.value
    assert error.field == "u"
    partial = error.partial
    assert partial is not None and partial.sizes["time"] >= 1
    assert np.isfinite(partial["u"].values).all()
    assert error.time == pytest.approx(saved[partial.sizes["time"]])
    # the partial forecast is what an uninterrupted run computes up to there
    np.testing.assert_allclose(
        partial["u"].values[-1],
        numpy_burgers(40 * u0, 0.02, 100 * (partial.sizes["time"] - 1)),
        rtol=1e-10,
    )


def test_time_grid_is_validated_once_with_named_errors():
    assert time_grid([0.5]).steps == 0
    np.testing.assert_array_equal(time_grid([0.0, 0.1, 0.2], 0.2).saved_steps, [2])
    cases = [
        (([0.0, 0.1, 0.3], None), "uniformly spaced"),
        (([0.0, np.nan], None), "times: expected finite"),
        (([0.0, 0.1, 0.2], [0.1, 0.1]), r"saved_times: \[0.1\] appear more than once"),
        (([0.0, 0.1, 0.2], [0.2, 0.1]), "saved_times: expected increasing"),
        (([0.0, 0.1, 0.2], [0.15]), "not among the forecast times"),
        (([0.0, 0.1], [np.inf]), "saved_times: expected finite"),
        (([0.0, 0.1j], None), "times: expected real numbers"),
    ]
    for (times, saved), message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            time_grid(times, saved)


def test_forecast_of_a_single_time_returns_the_initial_state(burgers_class):
    model = burgers_class(shape=N, kappa=0.01)
    u0 = np.cos(2 * np.pi * XS)
    out = model.forecast([0.25], {"u": u0})
    assert out.sizes["time"] == 1 and out["time"].item() == 0.25
    np.testing.assert_array_equal(out["u"].values[0], u0)


def test_saved_time_selects_exactly_by_label(burgers_class):
    # Issue 12.2: forecast[0.7] raised KeyError (the key was 0.7000000000000001).
    model = burgers_class(shape=N, kappa=0.01)
    times = np.arange(1001) * 0.001
    out = model.forecast(times, {"u": 0.5 + 0 * XS}, saved_times=[0.3, 0.7])
    assert out["u"].sel(time=0.7).shape == (N,)
    assert out["time"].attrs["units"] == "1"
    assert out.attrs["time_scheme"] == "rk4" and out.attrs["dt"] == pytest.approx(0.001)
    assert out["kappa"].item() == 0.01  # the model's constants travel with the results


def test_compiled_loops_are_kept_in_the_persistent_cache(tmp_path):
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import numpy as np, sympy as sp
        from generator import NNModelBuilder, enable_compilation_cache
        print(enable_compilation_cache())
        t, x = sp.symbols("t x")
        u = sp.Function("u")(t, x)
        model = NNModelBuilder(sp.Eq(u.diff(t), u.diff(x, 2)), "CacheHeat").build()(shape=16)
        out = model.forecast(np.arange(5) * 1e-4, {"u": np.cos(2 * np.pi * np.arange(16) / 16)})
        np.save("out.npy", out["u"].values)
        """
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TF_XLA_FLAGS", "PKFNET_CACHE_DIR", "XDG_CACHE_HOME")
    }
    env["PKFNET_CACHE_DIR"] = str(tmp_path / "cache")
    runs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-2000:]
        runs.append(np.load(tmp_path / "out.npy"))
    assert str(tmp_path / "cache" / "xla") in result.stdout
    assert list((tmp_path / "cache" / "xla").glob("*"))  # the compiled loop is on disk
    np.testing.assert_array_equal(runs[0], runs[1])  # and reusing it changes nothing
