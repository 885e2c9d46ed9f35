"""The method-of-images wall correction (cases.wall_images) against the exact covariance.

Constant κ between no-flux walls: the split P = P_h + P_r is exact and the image quadrature is
exact for constant κ, so the corrected PKF must match the covariance of the discrete model
propagated exactly (P ← M P Mᵀ, plain numpy here: reflecting-wall second differences, RK4
step), up to discretisation and the PKF's own error on the free part. The plain bounded PKF
(pkf.boundaries, Neumann rules) misses there, so these tests fail without the correction.

Measured this session (101 points, κ = 0.01, L₀ = 0.05, V₀ = 1, 300 RK4 steps to t = 1),
relative L2 at t = 0.5 and 1: V 0.09 % and 0.07 % for the corrected PKF (wall values 0.12 %
high), 5.5 % and 6.9 % for the plain bounded PKF; g over the inner points 0.32 % and 0.19 %
(plain: 8.6 % and 10.7 %).

Dirichlet walls with uncertain values (cases.wall_images.dirichlet_wall_corrected): the exact
covariance of a numpy Dirichlet model driven by the two wall series (Gaussian time covariance)
from initial errors conditioned on them. Measured this session (101 points, κ = 0.01,
L₀ = 0.05, V₀ = V_b (1 + 2 sin²(πx)), V_b = 0.5, τ = 0.1, 200 RK4 steps to t = 1), relative L2
at t = 0.5 and 1: V 0.10 % and 0.21 % (plain bounded PKF 4.9 % and 5.0 %), length-scale over
the inner points 0.33 % and 0.57 % (plain 7.3 % and 13.2 %); the wall-forced variance alone
0.19 % and 0.18 %.
"""

import numpy as np
import pytest
import xarray as xr

from cases.bounded_diffusion import diffusion_equation, wall_aspect
from cases.wall_images import (
    dirichlet_wall_corrected,
    even_extension,
    even_extension_pkf,
    forced_wall_moments,
    image_corrected,
    wall_moments,
)

N, KAPPA, LENGTH0, STEPS = 101, 0.01, 0.05, 300
SAVED = np.array([0.0, 0.5, 1.0])
#: Dirichlet walls: the wall values' variance and time-scale; RK4 steps to t = 1.
V_B, TAU, DIRICHLET_STEPS = 0.5, 0.1, 200


def _exact_statistics(variance0):
    """V and the centred-difference metric of the exact covariance of the discrete model."""
    dx = 1.0 / (N - 1)
    x = np.arange(N) * dx
    laplacian = np.diag(np.full(N, -2.0)) + np.diag(np.ones(N - 1), 1) + np.diag(np.ones(N - 1), -1)
    laplacian[0, 1] = laplacian[-1, -2] = 2.0  # a ghost point mirrored across each wall
    a = KAPPA * laplacian / dx**2 * (1.0 / STEPS)
    step = np.eye(N) + a + a @ a / 2 + a @ a @ a / 6 + a @ a @ a @ a / 24  # RK4
    sigma = np.sqrt(variance0)
    p = np.outer(sigma, sigma) * np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * LENGTH0**2))
    variances, metrics = [], []
    for k in range(STEPS + 1):
        if k in np.rint(SAVED * STEPS).astype(int):
            v = np.diag(p).copy()
            r = p / np.sqrt(np.outer(v, v))
            g = np.full(N, np.nan)
            g[1:-1] = (2 - 2 * np.diag(r, 2)) / (4 * dx**2)  # E[(∂x ε)²], centred differences
            variances.append(v)
            metrics.append(g)
        p = step @ p @ step.T
    return np.array(variances), np.array(metrics)


@pytest.fixture(scope="module")
def forecasts():
    """Exact statistics, the image-corrected PKF and the plain bounded PKF, constant κ."""
    from closures import close
    from generator import NNModelBuilder
    from generator.boundaries import Neumann
    from pkf import SymbolicPKF
    from pkf.boundaries import pkf_boundaries

    x = np.linspace(0.0, 1.0, N)
    kappa, variance0 = np.full(N, KAPPA), np.ones(N)
    times = np.linspace(0.0, 1.0, STEPS + 1)
    state0 = {"u": np.zeros(N), "V_u": variance0, "g_u_xx": np.full(N, LENGTH0**-2)}
    symbolic = SymbolicPKF(diffusion_equation())
    symbolic.set_closure(close(symbolic, "P18"))
    free = even_extension_pkf(symbolic, x, kappa, state0, times, SAVED)
    corrected = image_corrected(free, kappa, variance0, LENGTH0)
    sides = {"x": (Neumann(0.0), Neumann(0.0))}
    bounded = NNModelBuilder(
        symbolic.to_generator("metric"), boundaries=pkf_boundaries(symbolic, sides, "metric")
    ).build()(shape=N, lengths=1.0, dtype="float64", kappa=kappa)
    plain = bounded.forecast(times, state0, saved_times=SAVED)
    return _exact_statistics(variance0), corrected, plain


def _relative(estimate, reference):
    return np.linalg.norm(estimate - reference, axis=-1) / np.linalg.norm(reference, axis=-1)


def test_even_extension_is_the_periodic_image_of_the_wall_profile():
    values = np.arange(5.0)
    extended = even_extension(values)
    assert extended.shape == (8,)
    np.testing.assert_array_equal(extended[:5], values)
    np.testing.assert_array_equal(np.roll(extended[::-1], 1), extended)  # even about x = 0


def test_image_corrected_variance_matches_the_exact_covariance_and_the_plain_pkf_misses(
    forecasts,
):
    (variance, _), corrected, plain = forecasts
    assert isinstance(corrected, xr.Dataset)
    np.testing.assert_allclose(corrected["V_u"].values[0], variance[0])  # no image at t = 0
    error = _relative(corrected["V_u"].values[1:], variance[1:])
    missed = _relative(plain["V_u"].values[1:], variance[1:])
    assert np.all(error < 0.005), error
    assert np.all(missed > 0.04), missed  # the plain PKF: about 10 % low at the walls
    wall = corrected["V_u"].values[-1, [0, -1]] / variance[-1, [0, -1]]
    np.testing.assert_allclose(wall, 1.0, rtol=0.005)


def test_image_corrected_metric_matches_the_exact_covariance_inside(forecasts):
    (_, metric), corrected, plain = forecasts
    inner = slice(1, -1)
    error = _relative(corrected["g_u_xx"].values[1:, inner], metric[1:, inner])
    missed = _relative(plain["g_u_xx"].values[1:, inner], metric[1:, inner])
    assert np.all(error < 0.015), error
    assert np.all(missed > 0.06), missed
    final = corrected.isel(time=-1)
    np.testing.assert_array_equal(final["g_u_xx"].values[[0, -1]], 0.0)  # even field: ∂x e = 0
    assert np.isnan(final["L_u_x"].values[[0, -1]]).all()
    assert np.all(final["L_u_x"].values[1:-1] > 0)


def test_wall_moments_match_the_continuous_image_formula_for_constant_kappa():
    """At the wall, V_tot / V_h = 1 + the mirror term, which for σ₀ = 1 and a Gaussian ρ₀ of
    length L₀ after a free diffusion of variance s² = 2κt is, in closed form,
    V_tot(0) = ∫∫ G(a) G(b) ρ₀(|a| − |b|) da db = 4 ∫∫_{a,b>0} G(a) G(b) ρ₀(a − b) da db
    (an independent 2D quadrature here) and V_h(0) = (L₀² / (L₀² + 2 s²))^½."""
    distance = np.linspace(0.0, 1.0, 401)
    t = 0.5
    moments = wall_moments(distance, np.full(401, KAPPA), np.ones(401), LENGTH0, t)
    s2 = 2 * KAPPA * t
    free = np.sqrt(LENGTH0**2 / (LENGTH0**2 + 2 * s2))
    assert moments["V_h"][0] == pytest.approx(free, rel=1e-3)
    a = np.linspace(0.0, 1.0, 2001)[:, None]
    b = a.T
    kernel = np.exp(-(a**2) / (2 * s2)) / np.sqrt(2 * np.pi * s2)
    rho = np.exp(-((a - b) ** 2) / (2 * LENGTH0**2))
    total = 4 * np.trapezoid(np.trapezoid(kernel * kernel.T * rho, b.ravel(), axis=1), a.ravel())
    assert moments["V_tot"][0] == pytest.approx(total, rel=1e-3)
    assert total > 1.4 * free  # the image term is not small at the wall


def _gaussian(r, length):
    return np.exp(-(r**2) / (2 * length**2))


def _dirichlet_exact_statistics(variance0):
    """V and the centred-difference metric of the exact covariance of a discrete Dirichlet model.

    Second differences on the N − 2 inner points, RK4 (200 steps to t = 1) with each wall value
    interpolated linearly in time at the stages. The error e = G z is linear in the independent
    inputs z = (ε, w_low(t_k), w_high(t_k)): ε of covariance ρ₀(x_i − x_j), each wall series of
    covariance V_b exp(−(t_k − t_l)² / (2τ²)); the initial error is conditioned on the wall
    values as ``BoundaryConsistentMembers`` does, e(0) = σ₀ [ε − ρ_L ε(0) − ρ_R ε(1)]
    + σ₀ ρ_L w_low(0) / σ₀(0) + σ₀ ρ_R w_high(0) / σ₀(1). P = G C_z Gᵀ at the saved times,
    and its wall-forced part (the columns of the wall series, the lift included).
    """
    dx, dt = 1.0 / (N - 1), 1.0 / DIRICHLET_STEPS
    x = np.arange(N) * dx
    inner = np.eye(N - 2, k=1) + np.eye(N - 2, k=-1) - 2 * np.eye(N - 2)

    def tendency(y, low, high):  # y: (N − 2, inputs); low, high: (inputs,) wall values
        f = inner @ y
        f[0] += low
        f[-1] += high
        return KAPPA / dx**2 * f

    def step(y, low, high):  # low, high: the wall values at the start and the end of the step
        mid = ((low[0] + low[1]) / 2, (high[0] + high[1]) / 2)
        k1 = tendency(y, low[0], high[0])
        k2 = tendency(y + dt / 2 * k1, *mid)
        k3 = tendency(y + dt / 2 * k2, *mid)
        k4 = tendency(y + dt * k3, low[1], high[1])
        return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    times = np.arange(DIRICHLET_STEPS + 1) * dt
    walls = (N + np.arange(times.size), N + times.size + np.arange(times.size))
    unit = np.eye(N + 2 * times.size)
    sigma = np.sqrt(variance0)
    rho_low, rho_high = _gaussian(x, LENGTH0), _gaussian(1 - x, LENGTH0)
    g = sigma[:, None] * (
        unit[:N, :] - np.outer(rho_low, unit[0]) - np.outer(rho_high, unit[N - 1])
    )
    g += np.outer(sigma * rho_low / sigma[0], unit[walls[0][0]])
    g += np.outer(sigma * rho_high / sigma[-1], unit[walls[1][0]])
    covariance = np.zeros_like(unit)
    covariance[:N, :N] = _gaussian(x[:, None] - x[None, :], LENGTH0)
    for wall in walls:
        covariance[np.ix_(wall, wall)] = V_B * _gaussian(times[:, None] - times[None, :], TAU)
    variances, metrics, forced = [], [], []
    saved = np.rint(SAVED * DIRICHLET_STEPS).astype(int)
    for k in range(DIRICHLET_STEPS + 1):
        if k in saved:
            p = g @ covariance @ g.T
            v = np.diag(p).copy()
            r = p / np.sqrt(np.outer(v, v))
            metric = np.full(N, np.nan)
            metric[1:-1] = (2 - 2 * np.diag(r, 2)) / (4 * dx**2)  # centred differences
            variances.append(v)
            metrics.append(metric)
            forced.append(np.einsum("ia,ab,ib->i", g[:, N:], covariance[N:, N:], g[:, N:]))
        if k < DIRICHLET_STEPS:
            low, high = unit[walls[0][k : k + 2]], unit[walls[1][k : k + 2]]
            g[1:-1] = step(g[1:-1], low, high)
            g[0], g[-1] = low[1], high[1]
    return np.array(variances), np.array(metrics), np.array(forced)


@pytest.fixture(scope="module")
def dirichlet_forecasts():
    """Exact statistics, the Dirichlet-corrected PKF and the plain bounded PKF, constant κ."""
    from closures import close
    from generator import NNModelBuilder
    from generator.boundaries import Dirichlet
    from pkf import SymbolicPKF
    from pkf.boundaries import boundary_statistics, pkf_boundaries

    x = np.linspace(0.0, 1.0, N)
    kappa = np.full(N, KAPPA)
    variance0 = V_B * (1.0 + 2.0 * np.sin(np.pi * x) ** 2)
    times = np.linspace(0.0, 1.0, DIRICHLET_STEPS + 1)
    symbolic = SymbolicPKF(diffusion_equation())
    symbolic.set_closure(close(symbolic, "P18"))
    state0 = {"u": np.zeros(N), "V_u": variance0, "g_u_xx": np.full(N, LENGTH0**-2)}
    free = even_extension_pkf(symbolic, x, kappa, state0, times, SAVED)
    corrected = dirichlet_wall_corrected(free, kappa, variance0, LENGTH0, V_B, TAU)
    values: dict = {}
    for side in ("low", "high"):
        stats = boundary_statistics(
            symbolic,
            "u",
            "x",
            side,
            variance=V_B,
            length_scales=np.sqrt(wall_aspect(KAPPA, TAU)),
            mean=0.0,
        )
        for name, entry in stats.items():
            values.setdefault(name, {}).setdefault("x", {}).update(entry["x"])
    sides = {"x": (Dirichlet(None), Dirichlet(None))}
    bounded = NNModelBuilder(
        symbolic.to_generator("aspect"), boundaries=pkf_boundaries(symbolic, sides, "aspect")
    ).build()(shape=N, lengths=1.0, dtype="float64", kappa=kappa, boundary_values=values)
    aspect0 = {"u": np.zeros(N), "V_u": variance0, "s_u_xx": np.full(N, LENGTH0**2)}
    plain = bounded.forecast(times, aspect0, saved_times=SAVED)
    return _dirichlet_exact_statistics(variance0), corrected, plain


def test_dirichlet_corrected_statistics_match_the_exact_covariance_and_the_plain_pkf_misses(
    dirichlet_forecasts,
):
    (variance, metric, _), corrected, plain = dirichlet_forecasts
    np.testing.assert_allclose(corrected["V_u"].values[0], variance[0])  # the initial state
    error = _relative(corrected["V_u"].values[1:], variance[1:])
    missed = _relative(plain["V_u"].values[1:], variance[1:])
    assert np.all(error < 0.005), error
    assert np.all(missed > 0.04), missed  # the plain PKF: too much variance in the layers
    np.testing.assert_allclose(corrected["V_u"].values[-1, [0, -1]], V_B, rtol=0.005)
    inner = slice(1, -1)
    length = metric[1:, inner] ** -0.5
    length_error = _relative(corrected["L_u_x"].values[1:, inner], length)
    length_missed = _relative(np.sqrt(plain["s_u_xx"].values[1:, inner]), length)
    assert np.all(length_error < 0.015), length_error
    assert np.all(length_missed > 0.06), length_missed


def test_forced_wall_moments_match_the_exact_wall_forced_variance(dirichlet_forecasts):
    """The two walls' forced layers (lift included) against the exact wall-forced part."""
    (_, _, forced), _, _ = dirichlet_forecasts
    distance = np.linspace(0.0, 1.0, N)
    sigma0 = np.sqrt(V_B * (1.0 + 2.0 * np.sin(np.pi * distance) ** 2))  # symmetric
    for exact, time in zip(forced[1:], SAVED[1:], strict=True):
        one = forced_wall_moments(distance, np.full(N, KAPPA), sigma0, LENGTH0, time, V_B, TAU)["V"]
        error = np.linalg.norm(one + one[::-1] - exact) / np.linalg.norm(exact)
        assert error < 0.01, (time, error)
        assert exact[N // 2] < 0.01 * V_B  # the layers: the middle is not forced yet


def test_neumann_correction_with_heterogeneous_kappa_against_the_exact_covariance():
    """The case's κ(x) = κ₀ (1 + sin(2πx) / 2), 201 points, t = 1: the exact covariance of a
    numpy model of ∂t u = κ ∂x²u + κ' ∂x u (centred differences, mirrored ghost points, RK4)
    against the corrected PKF (Liouville-Green kernel with the wall's δ potential) and the plain
    bounded PKF. Measured: corrected V 1.5 %, L 7.3 % over the inner points (the rest near the
    left wall, where κ rises steeply); plain 8.9 %, 74 %; the heat kernel in ξ alone (no
    amplitude, no δ) misses the length-scale bar here."""
    from closures import close
    from generator import NNModelBuilder
    from generator.boundaries import Neumann
    from pkf import SymbolicPKF
    from pkf.boundaries import pkf_boundaries

    n, steps = 201, 1200
    dx = 1.0 / (n - 1)
    x = np.arange(n) * dx
    kappa = KAPPA * (1 + np.sin(2 * np.pi * x) / 2)
    slope = KAPPA * np.pi * np.cos(2 * np.pi * x)
    operator = np.zeros((n, n))
    for i in range(n):
        left, right = (i - 1, i + 1)
        left, right = (right if i == 0 else left), (left if i == n - 1 else right)  # mirrored
        operator[i, i] -= 2 * kappa[i] / dx**2
        operator[i, left] += kappa[i] / dx**2 - slope[i] / (2 * dx)
        operator[i, right] += kappa[i] / dx**2 + slope[i] / (2 * dx)
    a = operator / steps
    step = np.eye(n) + a + a @ a / 2 + a @ a @ a / 6 + a @ a @ a @ a / 24
    variance0 = 1.0 + 0.5 * np.cos(2 * np.pi * x)
    sigma = np.sqrt(variance0)
    p = np.outer(sigma, sigma) * np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * LENGTH0**2))
    for _ in range(steps):
        p = step @ p @ step.T
    v = np.diag(p).copy()
    r = p / np.sqrt(np.outer(v, v))
    exact_length = 1 / np.sqrt((2 - 2 * np.diag(r, 2)) / (4 * dx**2))  # inner points

    times = np.linspace(0.0, 1.0, steps + 1)
    state0 = {"u": np.zeros(n), "V_u": variance0, "g_u_xx": np.full(n, LENGTH0**-2)}
    symbolic = SymbolicPKF(diffusion_equation())
    symbolic.set_closure(close(symbolic, "P18"))
    free = even_extension_pkf(symbolic, x, kappa, state0, times, [1.0])
    corrected = image_corrected(free, kappa, variance0, LENGTH0).isel(time=-1)
    sides = {"x": (Neumann(0.0), Neumann(0.0))}
    bounded = NNModelBuilder(
        symbolic.to_generator("metric"), boundaries=pkf_boundaries(symbolic, sides, "metric")
    ).build()(shape=n, lengths=1.0, dtype="float64", kappa=kappa)
    plain = bounded.forecast(times, state0, saved_times=[1.0]).isel(time=-1)
    plain_length = 1 / np.sqrt(plain["g_u_xx"].values[1:-1])

    def relative(estimate, reference):
        return np.linalg.norm(estimate - reference) / np.linalg.norm(reference)

    assert relative(corrected["V_u"].values, v) < 0.03
    assert relative(corrected["L_u_x"].values[1:-1], exact_length) < 0.11
    assert relative(plain["V_u"].values, v) > 0.07
    assert relative(plain_length, exact_length) > 0.5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d, k, s: wall_moments(d**2, k, s, 0.05, 0.5), "distance"),
        (lambda d, k, s: wall_moments(d[::-1], k, s, 0.05, 0.5), "distance"),
        (lambda d, k, s: wall_moments(d + 0.1, k, s, 0.05, 0.5), "distance"),
        (lambda d, k, s: wall_moments(d, k[:-1], s, 0.05, 0.5), "kappa"),
        (lambda d, k, s: wall_moments(d, -k, s, 0.05, 0.5), "kappa"),
        (lambda d, k, s: wall_moments(d, k, s, 0.0, 0.5), "length0"),
        (lambda d, k, s: wall_moments(d, k, s, 0.05, -1.0), "elapsed"),
        (lambda d, k, s: wall_moments(d, k, s, 0.05, 0.5, spacing=-0.01), "spacing"),
        (lambda d, k, s: forced_wall_moments(d, k, s, 0.05, 0.5, -1.0, 0.1), "wall_variance"),
        (lambda d, k, s: forced_wall_moments(d, k, s, 0.05, 0.5, 0.5, 0.0), "time_scale"),
        (lambda d, k, s: forced_wall_moments(d, k, s, 0.05, 0.5, 0.5, 1e-5), "bin_width"),
    ],
)
def test_wall_moments_reject_bad_input_naming_the_argument(call, message):
    d = np.linspace(0.0, 1.0, 41)
    with pytest.raises(ValueError, match=message):
        call(d, np.full(41, KAPPA), np.ones(41))


def test_corrections_reject_a_free_forecast_they_cannot_use():
    x = np.linspace(0.0, 1.0, 11)
    free = xr.Dataset(
        {"V_u": (("time", "x"), np.ones((2, 11))), "s_u_xx": (("time", "x"), np.ones((2, 11)))},
        coords={"time": [0.0, 0.5], "x": x},
    )
    with pytest.raises(ValueError, match="g_u_xx"):
        image_corrected(free, np.full(11, KAPPA), np.ones(11), LENGTH0)
    free = free.rename(s_u_xx="g_u_xx")
    with pytest.raises(ValueError, match="start"):
        image_corrected(free, np.full(11, KAPPA), np.ones(11), LENGTH0, start=0.2)
