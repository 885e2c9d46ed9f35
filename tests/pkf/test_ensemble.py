"""EnsembleForecast: analytic heat-equation statistics, exact chunk merging, errors."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from generator import NNModelBuilder
from generator.model import NonFiniteStateError
from pkf import EnsembleForecast, gaussian_correlation, sample_errors
from pkf.statistics import cross_covariance, ensemble_statistics

t, x, y = sp.symbols("t x y")


def heat_1d(nx: int, kappa: float):
    u = sp.Function("u")(t, x)
    k = sp.Symbol("kappa")
    Heat = NNModelBuilder([sp.Eq(u.diff(t), k * u.diff(x, 2))], class_name="Heat1D").build()
    return Heat(shape=nx, lengths=1.0, dtype="float64", kappa=kappa)


def heat_2d(n: int, tensor: np.ndarray):
    """``u_t = K_xx u_xx + 2 K_xy u_xy + K_yy u_yy`` (constant anisotropic diffusion)."""
    u = sp.Function("u")(t, x, y)
    kxx, kxy, kyy = sp.symbols("kxx kxy kyy")
    rhs = kxx * u.diff(x, 2) + 2 * kxy * u.diff(x, y) + kyy * u.diff(y, 2)
    Heat = NNModelBuilder([sp.Eq(u.diff(t), rhs)], class_name="Heat2D").build()
    return Heat(
        shape=(n, n), lengths=(1.0, 1.0), kxx=tensor[0, 0], kxy=tensor[0, 1], kyy=tensor[1, 1]
    )


def test_heat_1d_aspect_and_variance_follow_the_analytic_solution():
    # s(t) = s0 + 4 kappa t, V(t) = V0 sqrt(s0 / s(t)) for a Gaussian initial correlation.
    # L0 = 12 dx keeps the centred-difference bias on s below 1 % ((dx / L)**2).
    nx, kappa, v0 = 256, 5e-4, 2.0
    s0 = (12 / nx) ** 2
    model = heat_1d(nx, kappa)
    errors = sample_errors(nx, 1.0, members=1600, correlation=np.sqrt(s0), variance=v0, seed=1)
    times = np.arange(101) * 0.01
    result = EnsembleForecast(model, members=1600, progress=False).run(
        times, {"u": 1.0 + errors}, saved_times=[0.0, 0.5, 1.0]
    )
    aspect = s0 + 4 * kappa * result.times
    assert aspect[-1] / s0 >= 1.5
    ds = result.to_dataset()
    # homogeneous statistics: compare the domain averages
    np.testing.assert_allclose(ds["s_u_xx"].mean("x"), aspect, rtol=0.03)
    np.testing.assert_allclose(ds["V_u"].mean("x"), v0 * np.sqrt(s0 / aspect), rtol=0.03)
    np.testing.assert_allclose(ds["u"], 1.0, atol=0.1)
    np.testing.assert_allclose(ds["L_u_x"], np.sqrt(ds["s_u_xx"]), rtol=1e-12)
    np.testing.assert_allclose(ds["nu_u_xx"], ds["s_u_xx"] / 2, rtol=1e-15)
    assert ds.attrs["variance_estimator"] == "population (divisor N)"
    unbiased = result.to_dataset(ddof=1)
    np.testing.assert_allclose(unbiased["V_u"], ds["V_u"] * 1600 / 1599, rtol=1e-14)
    np.testing.assert_array_equal(unbiased["s_u_xx"], ds["s_u_xx"])


def centred_metric_of_gaussian(aspect: np.ndarray, dx: float) -> np.ndarray:
    """Expected centred-difference metric of a homogeneous Gaussian correlation.

    ``E[D_i eps D_j eps] = sum_{a, b = +-1} a b rho(a dx e_i - b dx e_j) / (4 dx**2)``.
    """
    inverse = np.linalg.inv(aspect)
    unit = np.eye(2) * dx
    metric = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            for a in (1, -1):
                for b in (1, -1):
                    d = a * unit[i] - b * unit[j]
                    metric[i, j] += a * b * np.exp(-0.5 * d @ inverse @ d) / (4 * dx * dx)
    return metric


def test_heat_2d_rotated_anisotropic_aspect_tensor_follows_s0_plus_4_k_t():
    # s(t) = s0 + 4 K t for u_t = div(K grad u) and V(t) = V0 sqrt(det s0 / det s(t)).
    # On 64 x 64 points the smallest length-scale is only ~4 dx, where the centred difference
    # biases g by several per cent; the ensemble metric is therefore compared with the
    # expected centred-difference metric of the analytic Gaussian correlation (3 % of
    # sqrt(g_ii g_jj), sampling noise of the domain average is below 1 %), and the aspect
    # tensor with the analytic one within 8 % (the stencil bias).
    n, v0 = 64, 1.0
    angle = np.deg2rad(30.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    s0 = rotation @ np.diag([0.09**2, 0.06**2]) @ rotation.T
    tensor = np.array([[6e-4, 2e-4], [2e-4, 3e-4]])
    model = heat_2d(n, tensor)
    errors = sample_errors(
        (n, n), 1.0, members=1600, correlation=gaussian_correlation(aspect=s0), seed=2
    )
    times = np.arange(21) * 0.05
    result = EnsembleForecast(model, members=1600, progress=False).run(
        times, {"u": errors}, saved_times=[0.0, 1.0]
    )
    ds = result.to_dataset()
    assert ds["g_u_xy"].dims == ("time", "y", "x")

    def tensor_mean(prefix, k):
        xy = float(ds[f"{prefix}_u_xy"][k].mean())
        return np.array(
            [
                [float(ds[f"{prefix}_u_xx"][k].mean()), xy],
                [xy, float(ds[f"{prefix}_u_yy"][k].mean())],
            ]
        )

    for k, time in enumerate(result.times):
        aspect = s0 + 4 * tensor * time
        expected = centred_metric_of_gaussian(aspect, 1.0 / n)
        metric = tensor_mean("g", k)
        scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
        np.testing.assert_array_less(np.abs(metric - expected) / scale, 0.03)
        measured = tensor_mean("s", k)
        scale = np.sqrt(np.outer(np.diag(aspect), np.diag(aspect)))
        np.testing.assert_array_less(np.abs(measured - aspect) / scale, 0.08)
        variance = float(ds["V_u"][k].mean())
        expected_variance = v0 * np.sqrt(np.linalg.det(s0) / np.linalg.det(aspect))
        assert abs(variance / expected_variance - 1) < 0.03
    assert abs(s0[0, 1]) > 0.1 * np.sqrt(s0[0, 0] * s0[1, 1])  # the off-diagonal is tested


def two_field_model():
    """Damped linear waves ``u_t = -v_x + k u_xx``, ``v_t = -u_x`` (cross-covariances)."""
    u = sp.Function("u")(t, x)
    v = sp.Function("v")(t, x)
    k = sp.Symbol("k")
    Waves = NNModelBuilder(
        [sp.Eq(u.diff(t), -v.diff(x) + k * u.diff(x, 2)), sp.Eq(v.diff(t), -u.diff(x))],
        class_name="Waves",
    ).build()
    return Waves(shape=48, lengths=1.0, dtype="float64", k=1e-3)


def test_seven_uneven_chunks_merge_to_the_single_chunk_statistics():
    model = two_field_model()
    members = 210
    rng = np.random.default_rng(3)
    initial = {
        "u": 1.0 + sample_errors(48, 1.0, members, correlation=0.08, seed=rng),
        "v": sample_errors(48, 1.0, members, correlation=0.05, variance=0.5, seed=rng),
    }
    times = np.arange(41) * 0.005
    saved = times[::10]
    single = EnsembleForecast(model, members, progress=False, save_members=True).run(
        times, initial, saved_times=saved
    )
    chunks = (50, 7, 33, 41, 29, 20, 30)
    chunked = EnsembleForecast(model, members, chunks=chunks, progress=False).run(
        times, lambda start, stop: {k: v[start:stop] for k, v in initial.items()}, saved
    )
    assert chunked.count == single.count == members
    one, many = single.to_dataset(), chunked.to_dataset()
    statistics = [n for n in one.data_vars if n not in model.constants and "members" not in n]
    assert {"u", "V_u", "g_u_xx", "s_u_xx", "nu_u_xx", "L_u_x", "V_uv", "rho_uv"} <= set(statistics)
    for name in statistics:
        value = one[name].values
        np.testing.assert_allclose(many[name], value, rtol=0, atol=1e-12 * np.abs(value).max())
    # the on-the-fly moments equal the direct statistics of the saved members
    members_u, members_v = single.members["u"], single.members["v"]
    assert members_u.shape == (saved.size, members, 48)
    assert one["u_members"].dims == ("time", "member", "x")
    names = {"mean": "u", "variance": "V_u", "length_scale": "L_u_x"}
    names.update(metric="g_u_xx", aspect="s_u_xx", diffusion="nu_u_xx")
    for k in range(saved.size):
        direct = ensemble_statistics(members_u[k], model.dx)
        for key, value in direct.items():
            expected = value.reshape(-1, 48)[0]  # tensors (1, 1, 48), length-scale (1, 48)
            np.testing.assert_allclose(one[names[key]].values[k], expected, rtol=1e-10)
        np.testing.assert_allclose(
            one["V_uv"].values[k],
            cross_covariance(members_u[k], members_v[k]),
            rtol=1e-10,
            atol=1e-14,
        )
    # the members themselves match the model's own forecast
    reference = model.forecast(times, initial, saved_times=saved)
    np.testing.assert_allclose(members_u[-1], reference["u"].values[-1], rtol=1e-12)


def test_chunks_follow_the_memory_budget():
    model = heat_1d(32, 1e-3)
    forecast = EnsembleForecast(model, 100, memory_budget=30 * forecast_bytes(model))
    assert forecast.chunk_sizes() == (25, 25, 25, 25)
    assert EnsembleForecast(model, 100).chunk_sizes() == (100,)
    with pytest.raises(ValueError, match="summing to members=100"):
        EnsembleForecast(model, 100, chunks=(50, 40)).chunk_sizes()


def forecast_bytes(model) -> int:
    return EnsembleForecast(model, 1).member_bytes(1)


def test_non_finite_member_raises_naming_field_and_time():
    model = heat_1d(32, 1.0)  # dt far beyond the stability limit
    errors = sample_errors(32, 1.0, members=4, correlation=0.1, seed=0)
    times = np.arange(201) * 0.01
    with pytest.raises(NonFiniteStateError, match=r"field 'u' is not finite at t = "):
        EnsembleForecast(model, 4, progress=False).run(times, {"u": errors}, times[::50])


def test_initial_members_with_a_wrong_shape_are_rejected():
    model = heat_1d(32, 1e-3)
    with pytest.raises(ValueError, match=r"initial\['u'\]: expected shape .* \(4, 32\)"):
        EnsembleForecast(model, 4, progress=False).run([0.0, 0.1], {"u": np.zeros((3, 32))})


def test_bad_ensemble_arguments_are_named():
    model = heat_1d(16, 1e-3)
    with pytest.raises(ValueError, match="members: expected an integer >= 1, got 2.7"):
        EnsembleForecast(model, 2.7)
    with pytest.raises(ValueError, match="chunks: expected an integer >= 1, got 0"):
        EnsembleForecast(model, 4, chunks=0).chunk_sizes()
    forecast = EnsembleForecast(model, 2, progress=False)
    members = {"u": np.zeros((2, 16))}
    with pytest.raises(ValueError, match=r"saved_times: \[0.1\] appear more than once"):
        forecast.run([0.0, 0.1], members, saved_times=[0.1, 0.1])
    with pytest.raises(TypeError, match=r"initial\['u'\]: expected real numbers"):
        forecast.run([0.0, 0.1], {"u": np.zeros((2, 16)) * 1j})
    bad = np.zeros((2, 16))
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"initial\['u'\]: initial members \[1\] are not finite"):
        forecast.run([0.0, 0.1], {"u": bad})


def test_single_time_and_model_forecast_share_the_time_grid_rules():
    # One validation for both (issue 12.1): a single time is the initial ensemble.
    model = heat_1d(16, 1e-3)
    members = np.random.default_rng(0).normal(size=(5, 16))
    result = EnsembleForecast(model, 5, progress=False).run([0.3], {"u": members})
    np.testing.assert_array_equal(result.times, [0.3])
    np.testing.assert_allclose(result.to_dataset()["V_u"].values[0], members.var(axis=0))


def test_blow_up_names_the_members_that_are_not_finite():
    model = heat_1d(32, 1.0)  # unstable: kappa dt / dx² = 10; zero members stay zero
    members = np.zeros((6, 32))
    members[4] = np.cos(np.pi * np.arange(32))  # the fastest-growing mode
    times = np.arange(101) * 0.01
    forecast = EnsembleForecast(model, 6, chunks=3, progress=False)
    with pytest.raises(NonFiniteStateError, match=r"in 1 member\(s\) \(4\)") as info:
        forecast.run(times, {"u": members}, times[::10])
    assert info.value.field == "u" and info.value.time > 0
    # finite members whose moments overflow float64 are named too, never returned as inf
    huge = np.zeros((6, 32))
    huge[4] = 1e300
    stable = EnsembleForecast(heat_1d(32, 1e-3), 6, progress=False)
    with pytest.raises(NonFiniteStateError, match="statistics of field 'u' overflow"):
        stable.run(times[:3], {"u": huge})
