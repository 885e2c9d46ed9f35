"""Generated models against independent plain-numpy finite-difference codes."""

import numpy as np
import pytest
import sympy as sp

from cases.diffusion2d import diffusion_equation, diffusion_tensor, dirac, time_step
from generator import NNModelBuilder, NonFiniteStateError

t, x, y, z = sp.symbols("t x y z")


def roll_d1(f, axis, h):
    return (np.roll(f, -1, axis) - np.roll(f, 1, axis)) / (2 * h)


def roll_d2(f, axis, h):
    return (np.roll(f, -1, axis) - 2 * f + np.roll(f, 1, axis)) / h**2


def rk4_numpy(trend, u, dt, steps):
    for _ in range(steps):
        a = trend(u)
        b = trend(u + dt / 2 * a)
        c = trend(u + dt / 2 * b)
        d = trend(u + dt * c)
        u = u + dt / 6 * (a + 2 * b + 2 * c + d)
    return u


def relative_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def diffusion_class():
    return NNModelBuilder(diffusion_equation(), class_name="NNDiffusion2D").build()


def numpy_diffusion(u0, kappa, h, dt, steps):
    k11, k12, k22 = kappa["kappa_11"], kappa["kappa_12"], kappa["kappa_22"]

    def trend(u):
        # ∇·(κ∇u) expanded by the product rule, each derivative by a centred 2nd-order stencil.
        return (
            roll_d1(k11, 0, h) * roll_d1(u, 0, h)
            + k11 * roll_d2(u, 0, h)
            + roll_d1(k12, 0, h) * roll_d1(u, 1, h)
            + k12 * roll_d1(roll_d1(u, 0, h), 1, h)
            + roll_d1(k12, 1, h) * roll_d1(u, 0, h)
            + k12 * roll_d1(roll_d1(u, 1, h), 0, h)
            + roll_d1(k22, 1, h) * roll_d1(u, 1, h)
            + k22 * roll_d2(u, 1, h)
        )

    return rk4_numpy(trend, u0, dt, steps)


@pytest.mark.parametrize(("dtype", "tolerance"), [("float64", 1e-12), ("float32", 1e-5)])
def test_rk4_matches_numpy_reference_2d_heterogeneous_diffusion(diffusion_class, dtype, tolerance):
    shape = (100, 100)
    kappa = diffusion_tensor(shape)
    model = diffusion_class(shape=shape, dtype=dtype, **kappa)
    dt, steps = time_step(), 60
    times = np.arange(steps + 1) * dt
    u0 = dirac(shape)
    out = model.state_at(model.forecast(times, {"u": u0}, saved_times=[times[-1]]))["u"]
    expected = numpy_diffusion(u0, kappa, 1 / 100, dt, steps)
    assert out.dtype == np.dtype(dtype)
    assert relative_l2(out, expected) <= tolerance


def test_forecast_returns_every_saved_time_and_batches_members(diffusion_class):
    shape = (32, 32)
    kappa = diffusion_tensor(shape)
    model = diffusion_class(shape=shape, **kappa)
    dt = time_step()
    times = np.arange(11) * dt
    rng = np.random.default_rng(1)
    members = rng.normal(size=(5, *shape))
    out = model.forecast(times, {"u": members}, saved_times=times[[0, 4, 10]])
    np.testing.assert_array_equal(out["time"].values, times[[0, 4, 10]])
    assert out["u"].dims == ("time", "member", "y", "x")  # CF order: x varies fastest
    np.testing.assert_array_equal(model.state_at(out, times[0])["u"], members)
    for k, t_saved in zip([4, 10], times[[4, 10]], strict=True):
        single = np.stack([numpy_diffusion(m, kappa, 1 / 32, dt, k) for m in members])
        assert relative_l2(model.state_at(out, t_saved)["u"], single) <= 1e-12
        # the labelled array is the same data with the grid axes in CF order
        np.testing.assert_array_equal(
            out["u"].sel(time=t_saved).values, np.swapaxes(model.state_at(out, t_saved)["u"], 1, 2)
        )


def burgers_1d_reference(u0, kappa, a, h, dt, steps, scheme):
    def trend(u):
        return -u * roll_d1(u, 0, h) + kappa * roll_d2(u, 0, h) - a * np.sin(u) * np.exp(-(u**2))

    u = u0.copy()
    for _ in range(steps):
        if scheme == "euler":
            u = u + dt * trend(u)
        elif scheme == "rk2":
            u = u + dt * trend(u + dt / 2 * trend(u))
    return u if scheme != "rk4" else rk4_numpy(trend, u0, dt, steps)


@pytest.mark.parametrize("scheme", ["euler", "rk2", "rk4"])
def test_1d_burgers_with_functions_matches_numpy_for_each_time_scheme(scheme):
    u = sp.Function("u")(t, x)
    kappa, a = sp.symbols("kappa a")
    rhs = (
        -u * sp.Derivative(u, x) + kappa * sp.Derivative(u, x, 2) - a * sp.sin(u) * sp.exp(-(u**2))
    )
    cls = NNModelBuilder(sp.Eq(sp.Derivative(u, t), rhs), class_name="Burgers1D").build()
    n, dt, steps = 241, 0.002, 100
    model = cls(shape=n, time_scheme=scheme, kappa=0.0025, a=0.3)
    xs = np.arange(n) / n
    u0 = 0.25 * (1 + np.cos(2 * np.pi * (xs - 0.25)))
    times = np.arange(steps + 1) * dt
    out = model.forecast(times, {"u": u0}, saved_times=[times[-1]])["u"].values[-1]
    expected = burgers_1d_reference(u0, 0.0025, 0.3, 1 / n, dt, steps, scheme)
    assert relative_l2(out, expected) <= 1e-12


def test_3d_advection_diffusion_matches_numpy_on_16_cubed_grid():
    c = sp.Function("c")(t, x, y, z)
    w = [sp.Function(f"w_{axis}")(x, y, z) for axis in "xyz"]
    kappa = sp.Symbol("kappa")
    coords = (x, y, z)
    rhs = -sum(wi * sp.Derivative(c, xi) for wi, xi in zip(w, coords, strict=True))
    rhs += kappa * sum(sp.Derivative(c, xi, 2) for xi in coords)
    cls = NNModelBuilder(sp.Eq(sp.Derivative(c, t), rhs), class_name="AdvDiff3D").build()
    n, h = 16, 1 / 16
    grid = np.meshgrid(*[np.arange(n) * h] * 3, indexing="ij")
    winds = {
        "w_x": np.sin(2 * np.pi * grid[1]),
        "w_y": np.cos(2 * np.pi * grid[2]),
        "w_z": 0.5 + 0.0 * grid[0],
    }
    model = cls(shape=(n, n, n), kappa=0.002, **winds)
    c0 = np.exp(-((grid[0] - 0.5) ** 2 + (grid[1] - 0.5) ** 2 + (grid[2] - 0.5) ** 2) / 0.02)

    def trend(f):
        adv = sum(winds[f"w_{a}"] * roll_d1(f, i, h) for i, a in enumerate("xyz"))
        return -adv + 0.002 * sum(roll_d2(f, i, h) for i in range(3))

    dt, steps = 0.005, 40
    times = np.arange(steps + 1) * dt
    out = model.state_at(model.forecast(times, {"c": c0}, saved_times=[times[-1]]))["c"]
    assert relative_l2(out, rk4_numpy(trend, c0, dt, steps)) <= 1e-12


def test_cfl_violation_stops_with_error_naming_field_and_time():
    u = sp.Function("u")(t, x)
    cls = NNModelBuilder(sp.Eq(sp.Derivative(u, t), sp.Derivative(u, x, 2)), "Heat").build()
    model = cls(shape=64)
    times = np.arange(201) * 0.01  # dt / dx² = 41: explodes
    u0 = np.random.default_rng(0).normal(size=64)
    with pytest.raises(NonFiniteStateError, match=r"field 'u' is not finite at t = "):
        model.forecast(times, {"u": u0}, saved_times=times[::50])


def test_missing_or_unknown_constants_are_named(diffusion_class):
    kappa = diffusion_tensor((10, 10))
    kappa.pop("kappa_12")
    with pytest.raises(ValueError, match="missing value for 'kappa_12'"):
        diffusion_class(shape=(10, 10), **kappa)
    with pytest.raises(ValueError, match=r"unknown keyword\(s\) \['kappa_99'\]"):
        diffusion_class(shape=(10, 10), kappa_12=0.0, kappa_99=1.0, **kappa)


def test_bad_state_shape_names_the_field(diffusion_class):
    model = diffusion_class(shape=(10, 10), **diffusion_tensor((10, 10)))
    with pytest.raises(ValueError, match=r"state\['u'\] has shape \(9, 10\)"):
        model.forecast([0.0, 0.001], {"u": np.zeros((9, 10))})
    with pytest.raises(ValueError, match="missing"):
        model.forecast([0.0, 0.001], {})
    with pytest.raises(ValueError, match="not among the forecast times"):
        model.forecast([0.0, 0.001], {"u": np.zeros((10, 10))}, saved_times=[0.0005])
