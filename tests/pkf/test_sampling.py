"""Spectral sampling: prescribed variance and correlation recovered within sampling error."""

from __future__ import annotations

import numpy as np
import pytest

from pkf.sampling import (
    circulant_spectrum,
    ensemble_from_background,
    gaussian_correlation,
    isotropic_correlation,
    periodic_displacements,
    sample_errors,
)
from pkf.statistics import aspect_from_metric, metric_from_ensemble, normalized_error


def expected_centred_metric(correlation, spacing):
    """E[D_i eps D_j eps] = (rho(h_i - h_j) - rho(h_i + h_j)) / (2 dx_i dx_j), homogeneous rho.

    The exact expectation of the centred-difference estimator, free of the (dx / L)**2 bias.
    """
    ndim = len(spacing)
    steps = [spacing[i] * np.eye(ndim)[i] for i in range(ndim)]

    def rho(d):
        return float(correlation(d.reshape(ndim, *(1,) * ndim)).ravel()[0])

    return np.array(
        [
            [
                (rho(steps[i] - steps[j]) - rho(steps[i] + steps[j]))
                / (2 * spacing[i] * spacing[j])
                for j in range(ndim)
            ]
            for i in range(ndim)
        ]
    )


def rotated_aspect(major, minor, angle):
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return rotation @ np.diag([major**2, minor**2]) @ rotation.T


def test_periodic_displacements_fold_into_half_domain():
    d = periodic_displacements((5, 4), (1.0, 2.0))
    assert d.shape == (2, 5, 4)
    np.testing.assert_allclose(d[0, :, 0], [0.0, 0.2, 0.4, -0.4, -0.2])
    np.testing.assert_allclose(d[1, 0, :], [0.0, 0.5, 1.0, -0.5])


def test_gaussian_1d_variance_field_and_length_scale_match_prescription():
    n, domain = 512, 1.0
    dx = domain / n
    length = 8 * dx
    variance = 2.0 + np.sin(2 * np.pi * np.arange(n) / n)
    errors = sample_errors(n, domain, 1000, length, variance=variance, seed=1)

    assert errors.shape == (1000, n) and errors.dtype == np.float64
    # spatial mean of V / V_prescribed: sampling std about 0.5 %
    assert abs(np.mean(errors.var(axis=0) / variance) - 1) < 0.02
    g = metric_from_ensemble(errors, dx)[0, 0].mean()
    g_expected = expected_centred_metric(gaussian_correlation(length), (dx,))[0, 0]
    assert abs(g / g_expected - 1) < 0.02  # sampling std about 0.4 %
    # length-scale L = 1 / sqrt(g): 0.8 % centred-difference bias at L = 8 dx, plus sampling
    assert abs(1 / np.sqrt(g) / length - 1) < 0.025


def test_isotropic_soar_correlation_matches_empirical_correlation():
    n, domain = 512, 1.0
    dx = domain / n
    length = 6 * dx

    def soar(r):
        return (1 + r / length) * np.exp(-r / length)

    errors = sample_errors(n, domain, 1000, isotropic_correlation(soar), seed=2)
    eps = normalized_error(errors)
    lags = np.arange(0, 25, 3)
    empirical = [np.mean(eps * np.roll(eps, -k, axis=1)) for k in lags]
    np.testing.assert_allclose(empirical, soar(lags * dx), atol=0.02)


def test_rotated_anisotropic_2d_aspect_tensor_all_components():
    shape, lengths = (128, 96), (1.0, 0.75)
    spacing = (lengths[0] / shape[0], lengths[1] / shape[1])
    aspect = rotated_aspect(10 * spacing[0], 5 * spacing[0], np.pi / 6)
    correlation = gaussian_correlation(aspect=aspect)
    errors = sample_errors(shape, lengths, 400, correlation, variance=3.0, seed=3)

    assert errors.shape == (400, *shape)
    assert abs(errors.var(axis=0).mean() / 3.0 - 1) < 0.04  # sampling std about 1 %
    g = metric_from_ensemble(errors, spacing).mean(axis=(2, 3))
    g_expected = expected_centred_metric(correlation, spacing)
    g_scale = np.sqrt(np.outer(np.diag(g_expected), np.diag(g_expected)))
    np.testing.assert_array_less(np.abs(g - g_expected) / g_scale, 0.03)
    # against the prescription itself, including the centred-difference bias (about 2 %)
    s = aspect_from_metric(g[:, :, None])[:, :, 0]
    s_scale = np.sqrt(np.outer(np.diag(aspect), np.diag(aspect)))
    np.testing.assert_array_less(np.abs(s - aspect) / s_scale, 0.05)


def test_diffusion_tensor_is_half_the_aspect_tensor():
    nu = np.array([[2.0, 0.5], [0.5, 1.0]]) * 1e-3
    d = periodic_displacements((16, 16), (1.0, 1.0))
    np.testing.assert_allclose(
        gaussian_correlation(diffusion=nu)(d), gaussian_correlation(aspect=2 * nu)(d)
    )


def test_per_axis_length_scales_equal_diagonal_aspect():
    d = periodic_displacements((16, 12), (1.0, 1.0))
    np.testing.assert_allclose(
        gaussian_correlation([0.1, 0.05])(d),
        gaussian_correlation(aspect=np.diag([0.01, 0.0025]))(d),
    )


def test_3d_sampling_has_unit_variance():
    errors = sample_errors((24, 24, 24), 1.0, 100, 2.5 / 24, seed=4)
    assert errors.shape == (100, 24, 24, 24)
    assert abs(errors.var(axis=0).mean() - 1) < 0.05


def test_same_seed_reproduces_and_different_seed_differs():
    kwargs = dict(shape=(32, 24), lengths=(1.0, 1.0), members=5, correlation=0.1)
    first = sample_errors(**kwargs, seed=7)
    np.testing.assert_array_equal(first, sample_errors(**kwargs, seed=7))
    np.testing.assert_array_equal(first, sample_errors(**kwargs, seed=np.random.default_rng(7)))
    assert not np.allclose(first, sample_errors(**kwargs, seed=8))


def test_spectrum_of_valid_correlation_is_non_negative_and_sums_to_variance():
    shape = (64, 48)
    spectrum = circulant_spectrum(shape, (1.0, 1.0), gaussian_correlation(0.05))
    assert spectrum.shape == (64, 25)
    assert spectrum.min() >= 0
    weights = np.full(spectrum.shape, 2.0)
    weights[:, 0] = weights[:, -1] = 1.0  # rfft half-plane: interior columns appear twice
    assert np.isclose((weights * spectrum).sum() / np.prod(shape), 1.0)


def test_non_positive_definite_correlation_warns():
    def top_hat(r):
        return (r < 0.1).astype(float)

    with pytest.warns(RuntimeWarning, match="not positive semi-definite"):
        sample_errors(128, 1.0, 2, isotropic_correlation(top_hat), seed=0)


def test_bad_arguments_name_the_argument_and_shapes():
    with pytest.raises(ValueError, match=r"variance: .*grid shape \(32,\).*\(31,\)"):
        sample_errors(32, 1.0, 2, 0.1, variance=np.ones(31))
    with pytest.raises(ValueError, match=r"lengths: expected one entry per grid axis \(2\)"):
        sample_errors((32, 32), (1.0, 1.0, 1.0), 2, 0.1)
    with pytest.raises(ValueError, match=r"lengths\[0\]: expected a finite number > 0, got inf"):
        sample_errors(32, np.inf, 2, 0.1)
    with pytest.raises(ValueError, match="members: expected an integer >= 1, got 2.7"):
        sample_errors(32, 1.0, 2.7, 0.1)
    with pytest.raises(ValueError, match=r"shape\[0\]: expected an integer >= 1, got 64.7"):
        sample_errors(64.7, 1.0, 2, 0.1)
    with pytest.raises(ValueError, match="length_scale: expected positive"):
        sample_errors(32, 1.0, 2, np.nan)
    with pytest.raises(ValueError, match="aspect: tensor must be positive definite"):
        gaussian_correlation(aspect=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="exactly one of"):
        gaussian_correlation(0.1, aspect=np.eye(2))
    with pytest.raises(ValueError, match="variance: values must be finite and non-negative"):
        sample_errors(32, 1.0, 2, 0.1, variance=-1.0)


def test_ensemble_from_background_adds_errors_and_checks_shapes():
    errors = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(ensemble_from_background(np.ones(4), errors), errors + 1)
    with pytest.raises(ValueError, match=r"background: shape \(5,\)"):
        ensemble_from_background(np.ones(5), errors)
