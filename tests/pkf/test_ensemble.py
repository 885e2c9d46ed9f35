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
    # homogeneous statistics: compare the domain averages
    s = result.aspect("u")[:, 0, 0].mean(axis=-1)
    variance = result.variance("u").mean(axis=-1)
    np.testing.assert_allclose(s, aspect, rtol=0.03)
    np.testing.assert_allclose(variance, v0 * np.sqrt(s0 / aspect), rtol=0.03)
    np.testing.assert_allclose(result.mean("u"), 1.0, atol=0.1)
    np.testing.assert_allclose(
        result.length_scale("u")[:, 0], np.sqrt(result.aspect("u")[:, 0, 0]), rtol=1e-12
    )


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
    for k, time in enumerate(result.times):
        aspect = s0 + 4 * tensor * time
        expected = centred_metric_of_gaussian(aspect, 1.0 / n)
        metric = result.metric("u")[k].mean(axis=(-2, -1))
        scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
        np.testing.assert_array_less(np.abs(metric - expected) / scale, 0.03)
        measured = result.aspect("u")[k].mean(axis=(-2, -1))
        scale = np.sqrt(np.outer(np.diag(aspect), np.diag(aspect)))
        np.testing.assert_array_less(np.abs(measured - aspect) / scale, 0.08)
        variance = result.variance("u")[k].mean()
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
    for name in ("u", "v"):
        for key, value in single.statistics(name).items():
            np.testing.assert_allclose(
                chunked.statistics(name)[key], value, rtol=0, atol=1e-12 * np.abs(value).max()
            )
    covariance = single.cross_covariance("u", "v")
    np.testing.assert_allclose(
        chunked.cross_covariance("v", "u"),
        covariance,
        rtol=0,
        atol=1e-12 * np.abs(covariance).max(),
    )
    # the on-the-fly moments equal the direct statistics of the saved members
    members_u, members_v = single.members["u"], single.members["v"]
    assert members_u.shape == (saved.size, members, 48)
    for k in range(saved.size):
        direct = ensemble_statistics(members_u[k], model.dx)
        for key, value in direct.items():
            np.testing.assert_allclose(single.statistics("u")[key][k], value, rtol=1e-10)
        np.testing.assert_allclose(
            single.cross_covariance("u", "v")[k],
            cross_covariance(members_u[k], members_v[k]),
            rtol=1e-10,
            atol=1e-14,
        )
    # the members themselves match the model's own forecast
    reference = model.forecast(times, initial, saved_times=saved)
    np.testing.assert_allclose(members_u[-1], reference[float(saved[-1])]["u"], rtol=1e-12)


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
