"""Ensemble statistics: analytic ensembles, heat-equation dynamics, chunk merging to rounding
against exact rational moments, variance estimators, diffusion de-biasing, input validation."""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction

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
    debias_diffusion,
    diffusion_from_metric,
    ensemble_mean,
    ensemble_statistics,
    ensemble_variance,
    length_scale_from_metric,
    merge_moments,
    metric_from_ensemble,
    metric_lags,
    moment_keys,
    normalized_error,
    variance_estimator,
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


def tf_chunk_moments(chunk, keys):
    """The :class:`Moments` contract computed in TensorFlow, as a compiled ensemble loop does."""
    tf = pytest.importorskip("tensorflow")
    tensors = {name: tf.constant(value) for name, value in chunk.items()}
    shifts = {name: t[0] for name, t in tensors.items()}  # the chunk's first member
    relative = {name: tensors[name] - shifts[name] for name in tensors}
    relative_means = {name: tf.reduce_mean(r, axis=0) for name, r in relative.items()}
    errors = {name: relative[name] - relative_means[name] for name in tensors}
    comoments = {
        (a, b, lag): tf.reduce_sum(
            errors[a] * tf.roll(errors[b], shift=[-s for s in lag], axis=[-2, -1]), axis=0
        ).numpy()
        for a, b, lag in keys
    }
    count = next(iter(chunk.values())).shape[0]
    return Moments(
        count,
        {k: v.numpy() for k, v in shifts.items()},
        {k: v.numpy() for k, v in relative_means.items()},
        comoments,
    )


def test_tensorflow_chunk_sums_feed_the_accumulator():
    pytest.importorskip("tensorflow")
    fields, spacing = correlated_fields_2d(members=36, shape=(24, 20))
    fields = {"u": fields["u"] + 1e8, "v": fields["v"] - 3e7}  # |mean| >> spread
    keys = moment_keys(("u", "v"), ndim=2)
    from_tf = MomentAccumulator(spacing, ("u", "v"))
    for start, stop in [(0, 10), (10, 11), (11, 36)]:
        from_tf.update_moments(
            tf_chunk_moments({k: f[start:stop] for k, f in fields.items()}, keys)
        )
    reference = MomentAccumulator(spacing, ("u", "v")).update(fields)
    assert_close(from_tf.mean("u"), reference.mean("u"), rtol=1e-15)
    assert_close(from_tf.variance("v"), reference.variance("v"))
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


# --------------------------------------------------------- merging far from zero (exact reference)

UNIT_ROUNDOFF = 2.0**-53


def exact_moments(fields, ndim):
    """Means and co-moments of :func:`moment_keys` in exact rational arithmetic (fractions)."""
    count = next(iter(fields.values())).shape[0]
    exact = {name: np.vectorize(Fraction, otypes=[object])(f) for name, f in fields.items()}
    means = {name: e.sum(axis=0) / count for name, e in exact.items()}
    errors = {name: exact[name] - means[name] for name in exact}
    comoments = {
        (a, b, lag): (errors[a] * np.roll(errors[b], [-s for s in lag], axis=(-2, -1))).sum(0)
        for a, b, lag in moment_keys(tuple(fields), ndim)
    }
    return means, comoments


def merge_tree(parts):
    """Merge neighbours pairwise, level by level, as distributed workers would."""
    while len(parts) > 1:
        pairs = [parts[k : k + 2] for k in range(0, len(parts), 2)]
        parts = [merge_moments(*pair) if len(pair) == 2 else pair[0] for pair in pairs]
    return parts[0]


def worst_relative_errors(moments, reference):
    """Mean error / |mean| and co-moment error / sqrt(M_aa(p) M_bb(p + lag)) (Cauchy-Schwarz)."""
    means, comoments = reference
    mean_error = max(
        float(np.max(np.abs(moments.means[name] - means[name].astype(float)) / np.abs(mean)))
        for name, mean in moments.means.items()
    )
    comoment_error = 0.0
    for (a, b, lag), exact in comoments.items():
        zero = (0,) * len(lag)
        scale = np.sqrt(
            comoments[(a, a, zero)].astype(float)
            * np.roll(comoments[(b, b, zero)].astype(float), [-s for s in lag], axis=(-2, -1))
        )
        error = np.abs((moments.comoments[(a, b, lag)] - exact).astype(float)) / scale
        comoment_error = max(comoment_error, float(error.max()))
    return mean_error, comoment_error


@pytest.mark.parametrize("offset", [1e4, 1e10])
def test_merged_moments_keep_single_pass_accuracy_far_from_zero(offset):
    """Chunks merged in any order or tree agree with exact rational moments to rounding.

    Bound: a single pass sums N products of deviations, each with a relative error of a few
    rounding units u = 2**-53, in sequence: |error| <= (N + 2) u sum_k |e_a e_b|
    <= (N + 2) u sqrt(M_aa M_bb) (Cauchy-Schwarz), and each merge adds a few roundings. The test
    asserts (N + 6 merges) u, here 91 u = 1.0e-14; measured: at most 6.3e-16. Merging about the
    chunk means instead (the shift set to the mean, the former algorithm) loses
    eps * offset / spread in the Chan cross term: 2.5e-13 at 1e4, 4.8e-7 at 1e10, which the same
    test rejects.
    """
    rng = np.random.default_rng(7)
    members, shape = 61, (5, 4)
    u = offset + rng.standard_normal((members, *shape))
    v = -0.3 * offset + 0.5 * (u - offset) + 0.2 * rng.standard_normal((members, *shape))
    fields = {"u": u, "v": v}
    reference = exact_moments(fields, 2)
    cuts = [0, 1, 9, 10, 30, 47, 61]
    chunks = [
        chunk_moments({k: f[a:b] for k, f in fields.items()}, 2)
        for a, b in itertools.pairwise(cuts)
    ]
    merges = len(chunks) - 1
    bound = (members + 6 * merges) * UNIT_ROUNDOFF
    permuted = [chunks[k] for k in np.random.default_rng(1).permutation(len(chunks))]
    candidates = {
        "single pass": chunk_moments(fields, 2),
        "forward": functools.reduce(merge_moments, chunks),
        "backward": functools.reduce(merge_moments, chunks[::-1]),
        "permuted": functools.reduce(merge_moments, permuted),
        "tree": merge_tree(chunks),
        "tree of reversed": merge_tree(chunks[::-1]),
    }
    accumulator = MomentAccumulator((0.2, 0.25), ("u", "v"))
    for chunk in chunks:
        accumulator.merge(MomentAccumulator((0.2, 0.25), ("u", "v")).update_moments(chunk))
    candidates["accumulator"] = accumulator.moments
    for label, moments in candidates.items():
        assert moments.count == members
        mean_error, comoment_error = worst_relative_errors(moments, reference)
        assert mean_error <= 2 * UNIT_ROUNDOFF, (label, mean_error)
        assert comoment_error <= bound, (label, comoment_error, bound)

    # the same chunks merged about their means (the former algorithm) fail the bound
    about_means = [
        Moments(c.count, c.means, {k: 0 * m for k, m in c.means.items()}, c.comoments)
        for c in chunks
    ]
    _, naive_error = worst_relative_errors(functools.reduce(merge_moments, about_means), reference)
    assert naive_error > 10 * bound, naive_error


def test_chunk_moments_shift_by_the_first_member():
    fields, _ = correlated_fields_2d(members=8, shape=(24, 20))
    moments = chunk_moments(fields, ndim=2)
    for name, f in fields.items():
        np.testing.assert_array_equal(moments.shifts[name], f[0])
        np.testing.assert_allclose(moments.relative_means[name], (f - f[0]).mean(0), rtol=1e-15)
        np.testing.assert_allclose(moments.means[name], f.mean(0), rtol=1e-14)


def test_identical_members_have_exactly_zero_variance():
    # about the rounded mean, 7 copies of 0.7 have V = 1.2e-32 > 0 and a metric of 0
    for value in (0.7, 1e10 + 0.1):
        members = np.full((7, 16), value)
        assert np.all(ensemble_variance(members) == 0)
        assert np.all(
            MomentAccumulator(0.1).update(members[:3]).update(members[3:]).variance() == 0
        )
        with pytest.raises(ValueError, match="16 of 16 points have V <= 0"):
            metric_from_ensemble(members, 0.1)


def test_direct_statistics_are_accurate_far_from_zero():
    rng = np.random.default_rng(3)
    errors = rng.standard_normal((40, 6, 5))
    ensemble = 1e10 + errors
    exact = exact_moments({"u": ensemble}, 2)
    variance = exact[1][("u", "u", (0, 0))].astype(float) / 40
    np.testing.assert_allclose(ensemble_variance(ensemble), variance, rtol=1e-14)
    mean = exact[0]["u"].astype(float)
    np.testing.assert_allclose(ensemble_mean(ensemble), mean, rtol=2 * UNIT_ROUNDOFF)
    np.testing.assert_allclose(cross_covariance(ensemble, -ensemble), -variance, rtol=1e-14)
    # x - 1e10 is exact, and so is the metric about member 0 (about the mean: 3e-9 apart)
    np.testing.assert_array_equal(
        metric_from_ensemble(ensemble, (0.1, 0.2)),
        metric_from_ensemble(ensemble - 1e10, (0.1, 0.2)),
    )


def test_moments_validate_the_contract():
    shape = (3, 4)
    state = np.zeros(shape)
    keys = moment_keys(("u",), 1)
    good = {key: np.ones(shape) for key in keys}
    Moments(np.int64(3), {"u": state}, {"u": state}, good)
    with pytest.raises(ValueError, match="count must be a non-negative integer, got 2.5"):
        Moments(2.5, {"u": state}, {"u": state}, good)
    with pytest.raises(ValueError, match="count must be a non-negative integer"):
        Moments(-1, {"u": state}, {"u": state}, good)
    with pytest.raises(ValueError, match=r"shifts name fields \['u'\] but relative_means \['v'\]"):
        Moments(3, {"u": state}, {"v": state}, good)
    with pytest.raises(ValueError, match="one state shape"):
        Moments(3, {"u": state}, {"u": state}, {**good, keys[0]: np.ones((3, 5))})
    with pytest.raises(ValueError, match=r"comoments\[\('u', 'u', \(2,\)\)\] has 12 non-finite"):
        Moments(3, {"u": state}, {"u": state}, {**good, keys[1]: np.full(shape, np.nan)})
    with pytest.raises(TypeError):
        Moments(3, {"u": state}, good)  # the former (count, means, comoments) no longer fits
    accumulator = MomentAccumulator(0.1, ("u",))
    with pytest.raises(ValueError, match=r"missing \[\('u', 'u', \(2,\)\)\]"):
        accumulator.update_moments(Moments(3, {"u": state}, {"u": state}, {keys[0]: state}))


# ------------------------------------------------------------------------- variance estimators


def test_ddof_one_gives_the_unbiased_variance_and_covariance():
    fields, spacing = correlated_fields_2d(members=30, shape=(24, 20))
    u, v = fields["u"], fields["v"]
    accumulator = accumulate(fields, spacing, [0, 4, 17, 30])
    for ddof in (0, 1):
        expected = u.var(axis=0, ddof=ddof)
        covariance = np.sum((u - u.mean(0)) * (v - v.mean(0)), axis=0) / (30 - ddof)
        assert_close(ensemble_variance(u, ddof=ddof), expected)
        assert_close(accumulator.variance("u", ddof=ddof), expected)
        assert_close(ensemble_statistics(u, spacing, ddof=ddof)["variance"], expected)
        assert_close(accumulator.statistics("u", ddof=ddof)["variance"], expected)
        assert_close(cross_covariance(u, v, ddof=ddof), covariance)
        assert_close(accumulator.cross_covariance("v", "u", ddof=ddof), covariance)
    assert_close(ensemble_variance(u, ddof=1)[3, 4], np.cov(u[:, 3, 4], v[:, 3, 4])[0, 0])


def test_normalised_statistics_do_not_depend_on_ddof():
    """g, s, nu, L and the cross-correlation are ratios of co-moments with one divisor."""
    fields, spacing = correlated_fields_2d(members=30, shape=(24, 20))
    u, v = fields["u"], fields["v"]
    # the metric rebuilt from unbiased (N - 1) covariances and variances equals the default
    errors = u - u.mean(axis=0)
    sigma = np.sqrt(np.sum(errors**2, axis=0) / 29)
    gradient = centred_difference(errors / sigma, spacing, 0)
    assert_close(np.sum(gradient**2, axis=0) / 29, metric_from_ensemble(u, spacing)[0, 0])
    population = ensemble_statistics(u, spacing)
    unbiased = ensemble_statistics(u, spacing, ddof=1)
    accumulator = accumulate(fields, spacing, [0, 11, 30])
    for key in ("metric", "aspect", "diffusion", "length_scale"):
        np.testing.assert_array_equal(unbiased[key], population[key])
        assert_close(accumulator.statistics("u", ddof=1)[key], population[key])
    np.testing.assert_allclose(unbiased["variance"], population["variance"] * 30 / 29, rtol=1e-14)
    correlation = cross_covariance(u, v, ddof=1) / np.sqrt(
        ensemble_variance(u, ddof=1) * ensemble_variance(v, ddof=1)
    )
    assert_close(correlation, cross_correlation(u, v))
    assert_close(
        accumulator.cross_covariance("u", "v", ddof=1)
        / np.sqrt(accumulator.variance("u", ddof=1) * accumulator.variance("v", ddof=1)),
        accumulator.cross_correlation("u", "v"),
    )


@pytest.mark.parametrize("ddof", [2, -1, True, 0.5, "1", None])
def test_ddof_other_than_zero_or_one_is_refused(ddof):
    ensemble = np.random.default_rng(0).standard_normal((5, 8))
    accumulator = MomentAccumulator(0.1).update(ensemble)
    with pytest.raises(ValueError, match=r"ddof: expected 0 \(population.*or 1 \(unbiased"):
        ensemble_variance(ensemble, ddof=ddof)
    with pytest.raises(ValueError, match="ddof: expected 0"):
        cross_covariance(ensemble, ensemble, ddof=ddof)
    with pytest.raises(ValueError, match="ddof: expected 0"):
        accumulator.variance(ddof=ddof)
    with pytest.raises(ValueError, match="ddof: expected 0"):
        variance_estimator(ddof)


def test_ddof_one_needs_two_members():
    one = np.ones((1, 8))
    np.testing.assert_array_equal(ensemble_variance(one), 0.0)
    with pytest.raises(ValueError, match=r"ddof=1: .* N - ddof must be at least 1.* N = 1 members"):
        ensemble_variance(one, ddof=1)
    with pytest.raises(ValueError, match=r"ddof=1: .*N = 1 members"):
        cross_covariance(one, one, ddof=1)
    accumulator = MomentAccumulator(0.1, ("u", "v")).update({"u": one, "v": one})
    with pytest.raises(ValueError, match=r"ddof=1: .*N = 1 members"):
        accumulator.variance("u", ddof=1)
    with pytest.raises(ValueError, match=r"ddof=1: .*N = 1 members"):
        accumulator.cross_covariance("u", "v", ddof=1)


def test_variance_estimator_labels():
    assert variance_estimator() == variance_estimator(0) == "population (divisor N)"
    assert variance_estimator(np.int64(1)) == "unbiased sample (divisor N - 1)"


# ----------------------------------------------------------------------- diffusion de-biasing


def centred_estimate_of_gaussian_diffusion(nu, dx):
    """nu_est = 1 / (2 g_est), g_est = (1 - rho(2 dx)) / (2 dx^2), rho(r) = exp(-r^2 / (4 nu))."""
    rho = np.exp(-((2 * dx) ** 2) / (4 * nu))
    return 1 / (2 * (1 - rho) / (2 * dx**2))


def test_debias_diffusion_inverts_the_centred_estimate():
    dx = 1 / 241
    # below nu = dx**2 / 4 the inverse is ill-conditioned (nu_est - dx**2 ~ exp(-dx**2 / nu))
    nu = np.geomspace(0.25, 500, 25).reshape(5, 5) * dx**2
    estimate = centred_estimate_of_gaussian_diffusion(nu, dx)
    assert np.all(estimate > dx**2)
    np.testing.assert_allclose(debias_diffusion(estimate, dx), nu, rtol=1e-12)
    # far above dx**2 the bias tends to dx**2 / 2
    np.testing.assert_allclose(estimate[-1, -1] - nu[-1, -1], dx**2 / 2, rtol=1e-3)
    # estimates at or below dx**2 (outside the model) are clipped, not NaN
    clipped = debias_diffusion(np.array([0.5, 1.0]) * dx**2, dx)
    np.testing.assert_allclose(clipped, dx**2 / np.log(1e12), rtol=1e-3)


def test_debias_diffusion_recovers_nu_of_a_sampled_gaussian_ensemble():
    """8000 periodic 1D members with L = 2 dx: the raw ensemble nu is 27 % high, as predicted.

    Sampling noise of the domain-averaged nu, measured over 12 seeds: 0.16 % (1 sigma).
    """
    n = 512
    dx = 1.0 / n
    length = 2 * dx
    nu = length**2 / 2
    errors = sample_errors(n, 1.0, 8000, length, variance=3.0, seed=4)
    raw = diffusion_from_metric(metric_from_ensemble(errors, dx))[0, 0]
    debiased = debias_diffusion(raw, dx)
    predicted_bias = centred_estimate_of_gaussian_diffusion(nu, dx) - nu
    assert predicted_bias / nu > 0.25
    assert abs((raw.mean() - nu) / predicted_bias - 1) < 0.03
    assert abs(debiased.mean() / nu - 1) < 0.008
    improvement = abs(raw.mean() - nu) - abs(debiased.mean() - nu)
    assert abs(improvement / predicted_bias - 1) < 0.05


@pytest.mark.parametrize(
    ("nu", "dx", "message"),
    [
        (
            np.array([1e-4, 0.0]),
            0.01,
            r"nu: 1 of 2 estimates are <= 0 or not finite \(first at index \(1,\)",
        ),
        (np.array([[1e-4, -1e-4]]), 0.01, r"first at index \(0, 1\)"),
        (np.array([np.nan]), 0.01, "nu: 1 of 1"),
        (np.array([np.inf, np.inf]), 0.01, "nu: 2 of 2"),
        (np.array([1e-4]), 0.0, "dx: expected a positive finite grid spacing"),
        (np.array([1e-4]), np.nan, "dx: expected a positive finite"),
        (np.array([1e-4]), [0.1, 0.1], "dx: expected a positive finite"),
    ],
)
def test_debias_diffusion_refuses_invalid_input(nu, dx, message):
    with pytest.raises(ValueError, match=message):
        debias_diffusion(nu, dx)


# ------------------------------------------------------------------------------- input faults


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_members_are_refused_with_the_member_index(bad):
    ensemble = np.random.default_rng(0).standard_normal((6, 8))
    ensemble[4, 2] = bad
    message = r"1 non-finite values \(NaN or Inf\) in members \[4\] of 6"
    for function in (ensemble_mean, ensemble_variance, normalized_error):
        with pytest.raises(ValueError, match=message):
            function(ensemble)
    with pytest.raises(ValueError, match=message):
        metric_from_ensemble(ensemble, 0.1)
    with pytest.raises(ValueError, match="second: " + message):
        cross_covariance(np.ones_like(ensemble), ensemble)
    with pytest.raises(ValueError, match="first: " + message):
        cross_correlation(ensemble, ensemble)
    with pytest.raises(ValueError, match=r"fields\['x'\]: " + message):
        MomentAccumulator(0.1).update(ensemble)


def test_empty_ensembles_are_refused():
    empty = np.zeros((0, 8))
    for function in (ensemble_mean, ensemble_variance, normalized_error):
        with pytest.raises(ValueError, match="needs at least one member"):
            function(empty)
    with pytest.raises(ValueError, match="needs at least one member"):
        cross_covariance(empty, empty)
    with pytest.raises(ValueError, match="needs at least one member"):
        MomentAccumulator(0.1).update(empty)


@pytest.mark.parametrize("spacing", [np.nan, np.inf, 0.0, -0.1, (0.1, np.nan)])
def test_non_finite_or_non_positive_spacing_is_refused(spacing):
    with pytest.raises(ValueError, match="spacing: expected 1 to 3 positive finite"):
        metric_from_ensemble(np.random.default_rng(0).standard_normal((5, 8, 8)), spacing)


def test_grids_too_small_for_the_centred_difference_are_refused():
    ensemble = np.random.default_rng(0).standard_normal((5, 2, 8))
    with pytest.raises(ValueError, match=r"at least 3 points .* got shape \(5, 2, 8\)"):
        metric_from_ensemble(ensemble, (0.1, 0.1))
    with pytest.raises(ValueError, match="at least 3 points"):
        MomentAccumulator((0.1, 0.1)).update(ensemble).metric()


def test_cross_correlation_of_very_large_and_small_fields_neither_overflows_nor_underflows():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((30, 8))
    b = 0.5 * a + rng.standard_normal((30, 8))
    expected = cross_correlation(a, b)
    for scale in (1e150, 1e-150):  # V_a V_b = 1e600 or 1e-600 is not representable
        assert_close(cross_correlation(scale * a, scale * b), expected)
        accumulator = MomentAccumulator(0.1, ("a", "b")).update({"a": scale * a, "b": scale * b})
        assert_close(accumulator.cross_correlation("a", "b"), expected)


def test_singular_or_indefinite_metrics_have_no_aspect():
    rng = np.random.default_rng(0)
    two_members = metric_from_ensemble(rng.standard_normal((2, 8, 8)), (0.1, 0.1))  # rank 1
    with pytest.raises(ValueError, match=r"64 of 64 points are not positive definite"):
        aspect_from_metric(two_members)
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])[:, :, None]
    with pytest.raises(ValueError, match="1 of 1 points are not positive definite"):
        diffusion_from_metric(indefinite)
    with pytest.raises(ValueError, match="not symmetric"):
        aspect_from_metric(np.array([[1.0, 0.5], [0.0, 1.0]])[:, :, None])
    with pytest.raises(ValueError, match="1 points are not finite"):
        aspect_from_metric(np.full((1, 1, 3), 1.0) * np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="diagonal values g_ii are <= 0"):
        length_scale_from_metric(np.zeros((1, 1, 4)))


def test_aspect_of_a_metric_with_very_different_axis_scales_is_accepted_and_accurate():
    # g_xx / g_yy = 1e16 (e.g. a vertical and a horizontal axis): its eigenvalues differ by
    # 1e16, but the diagonally scaled metric [[1, c], [c, 1]] is well conditioned
    gxx, gyy, c = 1e8, 1e-8, 0.6
    gxy = c * np.sqrt(gxx * gyy)
    metric = np.array([[gxx, gxy], [gxy, gyy]])
    expected = np.array([[gyy, -gxy], [-gxy, gxx]]) / (gxx * gyy * (1 - c**2))
    np.testing.assert_allclose(
        aspect_from_metric(metric[:, :, None])[:, :, 0], expected, rtol=1e-14
    )
