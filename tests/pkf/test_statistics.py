"""Ensemble statistics: analytic ensembles, heat-equation dynamics, exact chunk merging."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pkf.sampling import gaussian_correlation, sample_errors
from pkf.statistics import (
    MomentAccumulator,
    Moments,
    aspect_from_metric,
    centred_difference,
    chunk_moments,
    cross_correlation,
    cross_covariance,
    diffusion_from_metric,
    ensemble_statistics,
    length_scale_from_metric,
    metric_from_ensemble,
    metric_lags,
    moment_keys,
    normalized_error,
)


def assert_close(actual, expected, rtol=1e-12):
    """Relative agreement, with an absolute floor of rtol times the largest magnitude."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def two_wave_ensemble(shape, lengths, wave_a, wave_b, phases=3):
    """Members cos(k_a.x + phi) + cos(k_b.x + psi), phi and psi on uniform grids of phases.

    Exact discrete moments: mean 0, V = 1 and, with the centred difference,
    g_ij = (a_i a_j + b_i b_j) / 2 where a_i = sin(k_a,i dx_i) / dx_i.
    """
    axes = [np.arange(n) * length / n for n, length in zip(shape, lengths, strict=True)]
    x = np.meshgrid(*axes, indexing="ij")
    k_a = [2 * np.pi * m / length for m, length in zip(wave_a, lengths, strict=True)]
    k_b = [2 * np.pi * m / length for m, length in zip(wave_b, lengths, strict=True)]
    theta_a = sum(k * xi for k, xi in zip(k_a, x, strict=True))
    theta_b = sum(k * xi for k, xi in zip(k_b, x, strict=True))
    angles = 2 * np.pi * np.arange(phases) / phases
    members = [
        np.cos(theta_a + phi) + np.cos(theta_b + psi)
        for phi, psi in itertools.product(angles, angles)
    ]
    spacing = [length / n for n, length in zip(shape, lengths, strict=True)]
    a = np.array([np.sin(k * h) / h for k, h in zip(k_a, spacing, strict=True)])
    b = np.array([np.sin(k * h) / h for k, h in zip(k_b, spacing, strict=True)])
    return np.stack(members), spacing, (np.outer(a, a) + np.outer(b, b)) / 2


def test_centred_difference_of_sine_is_exact_discrete_derivative():
    n, k = 64, 3
    dx = 2 * np.pi / n
    x = np.arange(n) * dx
    field = np.tile(np.sin(k * x)[:, None], (1, 5))  # grid axes (x, y), 2D spacing
    result = centred_difference(field, (dx, 0.1), axis=0)
    np.testing.assert_allclose(result[:, 0], np.cos(k * x) * np.sin(k * dx) / dx, atol=1e-13)
    np.testing.assert_allclose(centred_difference(field, (dx, 0.1), axis=1), 0.0, atol=1e-13)


def test_two_wave_ensemble_statistics_are_exact_in_2d():
    ensemble, spacing, metric = two_wave_ensemble((32, 24), (1.0, 2.0), (2, 1), (-1, 3))
    stats = ensemble_statistics(ensemble, spacing)

    np.testing.assert_allclose(stats["mean"], 0.0, atol=1e-14)
    np.testing.assert_allclose(stats["variance"], 1.0, rtol=1e-13)
    expected = np.broadcast_to(metric[:, :, None, None], stats["metric"].shape)
    np.testing.assert_allclose(stats["metric"], expected, rtol=1e-12)
    aspect = np.linalg.inv(metric)
    np.testing.assert_allclose(stats["aspect"][:, :, 5, 7], aspect, rtol=1e-12)
    np.testing.assert_allclose(stats["diffusion"][:, :, 5, 7], aspect / 2, rtol=1e-12)
    np.testing.assert_allclose(
        stats["length_scale"][:, 5, 7], 1 / np.sqrt(np.diag(metric)), rtol=1e-12
    )


def test_one_dimensional_metric_of_a_cosine_ensemble():
    x = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    ensemble = np.stack([3 + 2 * np.cos(4 * x + 2 * np.pi * m / 5) for m in range(5)])
    g = metric_from_ensemble(ensemble, x[1])
    assert g.shape == (1, 1, 50)
    np.testing.assert_allclose(g[0, 0], (np.sin(4 * x[1]) / x[1]) ** 2, rtol=1e-12)
    np.testing.assert_allclose(aspect_from_metric(g), 1 / g, rtol=1e-14)
    np.testing.assert_allclose(diffusion_from_metric(g), 0.5 / g, rtol=1e-14)
    np.testing.assert_allclose(length_scale_from_metric(g)[0], 1 / np.sqrt(g[0, 0]), rtol=1e-14)


def test_zero_variance_raises_instead_of_nan():
    ensemble = np.ones((4, 16))
    with pytest.raises(ValueError, match=r"16 of 16 points have V <= 0"):
        normalized_error(ensemble)
    with pytest.raises(ValueError, match="V <= 0"):
        MomentAccumulator(0.1).update(ensemble).metric()


def test_cross_covariance_and_correlation_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 8))
    b = 0.5 * a + rng.standard_normal((50, 8))
    covariance = [np.cov(a[:, i], b[:, i], bias=True)[0, 1] for i in range(8)]
    correlation = [np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(8)]
    np.testing.assert_allclose(cross_covariance(a, b), covariance, rtol=1e-12)
    np.testing.assert_allclose(cross_correlation(a, b), correlation, rtol=1e-12)
    with pytest.raises(ValueError, match=r"second: shape \(50, 7\) differs from first \(50, 8\)"):
        cross_covariance(a, b[:, :7])


def correlated_fields_2d(members=210, shape=(40, 32), seed=5):
    spacing = (1.0 / shape[0], 0.8 / shape[1])
    aspect = np.array([[3.0, 1.0], [1.0, 2.0]]) * 2 * spacing[0] ** 2  # L about 2.5 dx
    correlation = gaussian_correlation(aspect=aspect)
    variance = 1.5 + np.cos(2 * np.pi * np.arange(shape[0]) / shape[0])[:, None] * np.ones(shape)
    u = 4.0 + sample_errors(shape, (1.0, 0.8), members, correlation, variance, seed=seed)
    noise = sample_errors(shape, (1.0, 0.8), members, 2 * spacing[0], 0.3, seed=seed + 1)
    v = 0.6 * u + noise
    return {"u": u, "v": v}, spacing


def accumulate(fields, spacing, cuts):
    total = MomentAccumulator(spacing, fields=tuple(fields))
    for start, stop in itertools.pairwise(cuts):
        chunk = MomentAccumulator(spacing, fields=tuple(fields))
        total.merge(chunk.update({name: f[start:stop] for name, f in fields.items()}))
    return total


def test_seven_uneven_chunks_merge_to_the_single_pass_result_2d():
    fields, spacing = correlated_fields_2d()
    single = accumulate(fields, spacing, [0, 210])
    merged = accumulate(fields, spacing, [0, 1, 40, 41, 97, 150, 151, 210])
    assert merged.count == single.count == 210
    for name in ("u", "v"):
        assert_close(merged.mean(name), single.mean(name))
        assert_close(merged.variance(name), single.variance(name))
        metric = single.metric(name)
        for i, j in itertools.product(range(2), range(2)):
            assert_close(merged.metric(name)[i, j], metric[i, j])
    assert_close(merged.cross_covariance("u", "v"), single.cross_covariance("u", "v"))
    assert_close(merged.cross_correlation("v", "u"), single.cross_correlation("u", "v"))


def test_accumulator_equals_direct_formulas_2d():
    fields, spacing = correlated_fields_2d()
    accumulator = accumulate(fields, spacing, [0, 13, 100, 210])
    u, v = fields["u"], fields["v"]
    direct = ensemble_statistics(u, spacing)
    merged = accumulator.statistics("u")
    for key in ("mean", "variance", "metric", "aspect", "diffusion", "length_scale"):
        assert_close(merged[key], direct[key])
    assert_close(accumulator.metric("v"), metric_from_ensemble(v, spacing))
    assert_close(accumulator.cross_covariance("u", "v"), cross_covariance(u, v))
    assert_close(accumulator.cross_correlation("u", "v"), cross_correlation(u, v))


@pytest.mark.parametrize("ndim", [1, 3])
def test_accumulator_equals_direct_metric_in_1d_and_3d(ndim):
    shape = {1: (64,), 3: (12, 10, 8)}[ndim]
    spacing = tuple(1.0 / n for n in shape)
    errors = sample_errors(shape, 1.0, 60, 1.5 / shape[0], variance=2.0, seed=ndim)
    accumulator = accumulate({"x": errors}, spacing, [0, 7, 8, 33, 60])
    assert len(metric_lags(ndim)) == {1: 2, 3: 10}[ndim]
    assert_close(accumulator.metric(), metric_from_ensemble(errors, spacing))


def test_leading_axes_are_independent_states():
    fields, spacing = correlated_fields_2d(members=30, shape=(24, 20))
    stacked = np.stack([fields["u"], 2 * fields["u"] ** 2], axis=1)  # (members, time, x, y)
    accumulator = MomentAccumulator(spacing).update(stacked[:11]).update(stacked[11:])
    assert accumulator.metric().shape == (2, 2, 2, 24, 20)
    for t in range(2):
        assert_close(accumulator.metric()[:, :, t], metric_from_ensemble(stacked[:, t], spacing))
        assert_close(accumulator.variance()[t], stacked[:, t].var(axis=0))


def test_merge_order_does_not_matter():
    fields, spacing = correlated_fields_2d(members=40, shape=(24, 20))
    parts = [
        MomentAccumulator(spacing, ("u", "v")).update({k: f[a:b] for k, f in fields.items()})
        for a, b in [(0, 5), (5, 30), (30, 40)]
    ]
    forward = MomentAccumulator(spacing, ("u", "v"))
    for part in parts:
        forward.merge(part)
    backward = MomentAccumulator(spacing, ("u", "v"))
    for part in reversed(parts):
        backward.merge(part)
    assert_close(forward.metric("u"), backward.metric("u"))
    assert_close(forward.cross_covariance("u", "v"), backward.cross_covariance("u", "v"))


def test_tensorflow_chunk_sums_feed_the_accumulator():
    tf = pytest.importorskip("tensorflow")
    fields, spacing = correlated_fields_2d(members=36, shape=(24, 20))
    keys = moment_keys(("u", "v"), ndim=2)

    def tf_moments(chunk):
        tensors = {name: tf.constant(value) for name, value in chunk.items()}
        means = {name: tf.reduce_mean(t, axis=0) for name, t in tensors.items()}
        errors = {name: tensors[name] - means[name] for name in tensors}
        comoments = {
            (a, b, lag): tf.reduce_sum(
                errors[a] * tf.roll(errors[b], shift=[-s for s in lag], axis=[-2, -1]), axis=0
            ).numpy()
            for a, b, lag in keys
        }
        count = next(iter(chunk.values())).shape[0]
        return Moments(count, {k: m.numpy() for k, m in means.items()}, comoments)

    from_tf = MomentAccumulator(spacing, ("u", "v"))
    for start, stop in [(0, 10), (10, 11), (11, 36)]:
        from_tf.update_moments(tf_moments({k: f[start:stop] for k, f in fields.items()}))
    reference = MomentAccumulator(spacing, ("u", "v")).update(fields)
    assert_close(from_tf.metric("u"), reference.metric("u"))
    assert_close(from_tf.cross_covariance("u", "v"), reference.cross_covariance("u", "v"))


def test_chunk_moments_defines_the_comoment_keys():
    fields, _ = correlated_fields_2d(members=8, shape=(24, 20))
    moments = chunk_moments(fields, ndim=2)
    assert set(moments.comoments) == set(moment_keys(("u", "v"), 2))
    errors = fields["u"] - fields["u"].mean(axis=0)
    shifted = np.roll(errors, (-1, 1), axis=(1, 2))  # value at p + (1, -1)
    np.testing.assert_allclose(moments.comoments[("u", "u", (1, -1))], (errors * shifted).sum(0))


def test_accumulator_rejects_mismatched_input():
    accumulator = MomentAccumulator((0.1, 0.1), fields=("u", "v"))
    with pytest.raises(ValueError, match="no members accumulated"):
        accumulator.variance("u")
    with pytest.raises(ValueError, match="an array is ambiguous"):
        accumulator.update(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r"expected fields \('u', 'v'\), got \('u',\)"):
        accumulator.update({"u": np.zeros((3, 4, 4))})
    with pytest.raises(ValueError, match="same shape"):
        accumulator.update({"u": np.zeros((3, 4, 4)), "v": np.zeros((3, 4, 5))})
    accumulator.update({"u": np.ones((3, 4, 4)), "v": np.ones((3, 4, 4))})
    with pytest.raises(ValueError, match=r"state shape of 'u' differs: \(4, 4\) vs \(5, 4\)"):
        accumulator.update({"u": np.ones((3, 5, 4)), "v": np.ones((3, 5, 4))})
    with pytest.raises(ValueError, match="fields/spacing"):
        accumulator.merge(MomentAccumulator((0.1, 0.2), fields=("u", "v")))


def laplacian(u, spacing):
    total = np.zeros_like(u)
    for i, h in enumerate(spacing):
        axis = i - len(spacing)
        total += (np.roll(u, -1, axis) - 2 * u + np.roll(u, 1, axis)) / h**2
    return total


def rk4_heat(u, kappa, spacing, dt, steps):
    """Plain numpy RK4 of du/dt = kappa laplacian(u), vectorised over members."""

    def trend(v):
        return kappa * laplacian(v, spacing)

    for _ in range(steps):
        k1 = trend(u)
        k2 = trend(u + 0.5 * dt * k1)
        k3 = trend(u + 0.5 * dt * k2)
        k4 = trend(u + dt * k3)
        u = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return u


def test_heat_equation_ensemble_follows_analytic_variance_and_aspect_1d():
    n, domain = 1000, 2.0
    dx = domain / n
    length0 = 10 * dx  # L0 >= 8 dx keeps the centred-difference bias on s near 1 %
    s0, v0 = length0**2, 2.0
    kappa = s0 / 4  # s doubles by t = 1
    initial = sample_errors(n, domain, 1600, length0, variance=v0, seed=11)
    final = rk4_heat(initial, kappa, (dx,), dt=0.02, steps=50)  # dt = 0.72 of the RK4 limit

    before = ensemble_statistics(initial, dx)
    after = ensemble_statistics(final, dx)
    s_expected = s0 + 4 * kappa * 1.0
    v_expected = v0 * np.sqrt(s0 / s_expected)
    s_error = after["aspect"][0, 0].mean() / s_expected - 1
    v_error = after["variance"].mean() / v_expected - 1
    assert abs(s_error) < 0.03, s_error
    assert abs(v_error) < 0.03, v_error
    # the same law from the ensemble's own initial statistics, free of sampling error in s0, V0
    s0_hat, v0_hat = before["aspect"][0, 0].mean(), before["variance"].mean()
    assert abs(after["aspect"][0, 0].mean() / (s0_hat + 4 * kappa) - 1) < 0.01
    v_law = v0_hat * np.sqrt(s0_hat / (s0_hat + 4 * kappa))
    assert abs(after["variance"].mean() / v_law - 1) < 0.01


def test_heat_equation_rotated_anisotropic_aspect_all_components_2d():
    """Exact spectral heat propagator: s(t) = s0 + 4 kappa t I, V = V0 sqrt(det s0 / det s)."""
    shape, lengths = (96, 96), (1.0, 1.0)
    spacing = (lengths[0] / shape[0], lengths[1] / shape[1])
    angle = np.pi / 5
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    s0 = rotation @ np.diag([(12 * spacing[0]) ** 2, (8 * spacing[0]) ** 2]) @ rotation.T
    kappa, v0, t = (8 * spacing[0]) ** 2 / 8, 2.0, 1.0
    initial = sample_errors(shape, lengths, 400, gaussian_correlation(aspect=s0), v0, seed=12)
    k = np.meshgrid(
        *[2 * np.pi * np.fft.fftfreq(n, d=h) for n, h in zip(shape, spacing, strict=True)],
        indexing="ij",
    )
    propagator = np.exp(-kappa * t * (k[0] ** 2 + k[1] ** 2))
    final = np.fft.ifft2(np.fft.fft2(initial) * propagator).real

    s_expected = s0 + 4 * kappa * t * np.eye(2)
    v_expected = v0 * np.sqrt(np.linalg.det(s0) / np.linalg.det(s_expected))
    before = ensemble_statistics(initial, spacing)
    after = ensemble_statistics(final, spacing)
    s_hat = after["aspect"].mean(axis=(2, 3))
    scale = np.sqrt(np.outer(np.diag(s_expected), np.diag(s_expected)))
    np.testing.assert_array_less(np.abs(s_hat - s_expected) / scale, 0.04)
    increment = s_hat - before["aspect"].mean(axis=(2, 3))
    np.testing.assert_array_less(np.abs(increment - 4 * kappa * t * np.eye(2)) / scale, 0.01)
    assert abs(after["variance"].mean() / v_expected - 1) < 0.03
