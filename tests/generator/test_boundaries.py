"""Bounded domains (issue 16, part 1): Dirichlet, Neumann and outflow sides of generated models.

References are independent of the code under test: exact derivatives of analytic functions
(sympy), manufactured solutions of the heat equation, and plain-numpy codes written here with
hand-coded second-order stencils, one-sided boundary rows and RK4 with the same imposition of
the boundary conditions at every stage.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import sympy as sp
from keras import ops

from generator import NNModelBuilder, load_model
from generator.boundaries import BoundarySeries, Dirichlet, Neumann, Outflow, Periodic
from generator.layers import grid_derivatives
from generator.stencils import apply_stencils, derivative_stencil

t, x, y = sp.symbols("t x y")
u = sp.Function("u")(t, x)
u2 = sp.Function("u")(t, x, y)
c = sp.Function("c")(x)
k = sp.Function("k")(x)
kappa = sp.Symbol("kappa")

HEAT = sp.Eq(u.diff(t), kappa * u.diff(x, 2))
HETEROGENEOUS_HEAT = sp.Eq(u.diff(t), k * u.diff(x, 2))
ADVECTION = sp.Eq(u.diff(t), -c * u.diff(x))
BURGERS = sp.Eq(u.diff(t), -u * u.diff(x) + kappa * u.diff(x, 2))
INVISCID_BURGERS = sp.Eq(u.diff(t), -u * u.diff(x))
HEAT_2D = sp.Eq(u2.diff(t), kappa * (u2.diff(x, 2) + u2.diff(y, 2)))


def measured_order(errors, ns) -> float:
    """Order from the last two (error, points) pairs; spacing ∝ 1 / (n - 1)."""
    return float(np.log(errors[-2] / errors[-1]) / np.log((ns[-1] - 1) / (ns[-2] - 1)))


def relative_l2(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# -- 1. convergence -------------------------------------------------------------------------
X = sp.Symbol("X")
F1 = sp.exp(sp.sin(2 * X)) + sp.cos(3 * X)  # smooth, not periodic on [0, 1]


@pytest.mark.parametrize("accuracy", [2, 4])
@pytest.mark.parametrize("order", [1, 2])
def test_bounded_derivative_converges_at_requested_order_up_to_the_ends(order, accuracy):
    ns = [41, 81, 161]
    f = sp.lambdify(X, F1, "numpy")
    exact = sp.lambdify(X, sp.diff(F1, X, order), "numpy")
    errors = []
    for n in ns:
        xs = np.linspace(0.0, 1.0, n)
        stencil = derivative_stencil((order,), (1 / (n - 1),), accuracy, bounded=(True,))
        approx = apply_stencils(f(xs), [stencil], np.roll, 0, np.where)[0]
        errors.append(np.abs(approx - exact(xs)).max())  # max norm: the end points count
    assert abs(measured_order(errors, ns) - accuracy) < 0.3, errors


@pytest.mark.parametrize("accuracy", [2, 4])
@pytest.mark.parametrize("orders", [(1, 1), (2, 0), (1, 2)])
def test_mixed_derivative_bounded_x_periodic_y_converges_through_the_keras_path(orders, accuracy):
    # f(x, y) smooth, bounded in x on [0, 1], periodic in y on [0, 1).
    Y = sp.Symbol("Y")
    expr = sp.exp(sp.sin(2 * X)) * (1 + sp.sin(2 * sp.pi * Y) / 2 + sp.cos(4 * sp.pi * Y) / 5)
    f = sp.lambdify((X, Y), expr, "numpy")
    exact = sp.lambdify((X, Y), sp.diff(expr, X, orders[0], Y, orders[1]), "numpy")
    ns = [81, 161, 321]  # ∂x² at accuracy 4 approaches its order from above (4.45 at 161)
    errors = []
    for n in ns:
        xs, ys = np.linspace(0.0, 1.0, n), np.arange(n - 1) / (n - 1)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        spacing = (1 / (n - 1), 1 / (n - 1))
        stencil = derivative_stencil(orders, spacing, accuracy, bounded=(True, False))
        approx = np.asarray(grid_derivatives(ops.convert_to_tensor(f(gx, gy)[None]), [stencil])[0])
        by_numpy = apply_stencils(f(gx, gy), [stencil], np.roll, 0, np.where)[0]
        np.testing.assert_array_equal(approx[0], by_numpy)  # one stencil application
        errors.append(np.abs(approx[0] - exact(gx, gy)).max())
    assert abs(measured_order(errors, ns) - accuracy) < 0.3, errors


KAPPA, OMEGA, PHASE, T_END = 0.1, 2.5, 0.4, 0.1
RATE = KAPPA * OMEGA**2


def heat_exact(xs, time):
    return np.exp(-RATE * time) * np.cos(OMEGA * xs + PHASE)


def heat_boundary_values(kind):
    """The manufactured solution's boundary values (Dirichlet) or x-derivatives (Neumann),
    written with keras.ops as functions of the stage time."""
    if kind == "dirichlet":
        return (
            lambda s: ops.exp(-RATE * s) * np.cos(PHASE),
            lambda s: ops.exp(-RATE * s) * np.cos(OMEGA + PHASE),
        )
    return (
        lambda s: -OMEGA * ops.exp(-RATE * s) * np.sin(PHASE),
        lambda s: -OMEGA * ops.exp(-RATE * s) * np.sin(OMEGA + PHASE),
    )


@pytest.mark.parametrize("accuracy", [2, 4])
@pytest.mark.parametrize("kind", ["dirichlet", "neumann"])
def test_bounded_heat_forecast_converges_at_requested_order_1d(kind, accuracy):
    """Manufactured solution exp(-κω²t) cos(ωx + φ) with time-dependent boundary values.

    Dirichlet and Neumann both keep the requested order (measured 2.00 / 3.84 Dirichlet,
    2.09 / 4.08 Neumann from 41 to 81 points): the Neumann point is set with the off-centre
    first derivative of order p (p + 1 points), the same as the model's derivative there.
    """
    model_class = NNModelBuilder(
        HEAT, "BoundedHeat", accuracy=accuracy, boundaries={"x": kind}
    ).build()
    ns = [21, 41, 81]
    errors = []
    for n in ns:
        h = 1 / (n - 1)
        steps = int(np.ceil(T_END * KAPPA / (0.2 * h**2)))  # RK4 time error ~ h^8: negligible
        model = model_class(shape=n, kappa=KAPPA, boundary_values={"x": heat_boundary_values(kind)})
        xs = model.grid[0]
        assert xs[-1] == pytest.approx(1.0) and model.dx[0] == pytest.approx(h)
        times = np.linspace(0.0, T_END, steps + 1)
        out = model.forecast(times, {"u": heat_exact(xs, 0.0)}, saved_times=[T_END])
        errors.append(np.abs(out["u"].values[-1] - heat_exact(xs, T_END)).max())
    assert abs(measured_order(errors, ns) - accuracy) < 0.3, errors


def discrete_y_eigenvalue(ny, accuracy):
    """Eigenvalue of the centred periodic ∂y² stencil on cos(2πy), ny points on [0, 1)."""
    h = 1 / ny
    weights = {2: [1, -2, 1], 4: [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12]}[accuracy]
    half = len(weights) // 2
    return sum(w * np.cos(2 * np.pi * (j - half) * h) for j, w in enumerate(weights)) / h**2


@pytest.mark.parametrize("accuracy", [2, 4])
@pytest.mark.parametrize("kind", ["dirichlet", "neumann"])
def test_bounded_x_periodic_y_heat_forecast_converges_at_requested_order_2d(kind, accuracy):
    """u = exp(-κ(ω² - λ_y) t) cos(ωx + φ) cos(2πy), λ_y the discrete y eigenvalue (so the
    periodic y discretisation is exact and the error is that of the bounded x axis). The
    boundary values are face-shaped functions of time, (ny,)."""
    ny = 8
    lam = discrete_y_eigenvalue(ny, accuracy)
    rate = KAPPA * (OMEGA**2 - lam)
    profile = np.cos(2 * np.pi * np.arange(ny) / ny)
    if kind == "dirichlet":
        values = (
            lambda s: ops.exp(-rate * s) * (np.cos(PHASE) * profile),
            lambda s: ops.exp(-rate * s) * (np.cos(OMEGA + PHASE) * profile),
        )
    else:
        values = (
            lambda s: ops.exp(-rate * s) * (-OMEGA * np.sin(PHASE) * profile),
            lambda s: ops.exp(-rate * s) * (-OMEGA * np.sin(OMEGA + PHASE) * profile),
        )
    model_class = NNModelBuilder(
        HEAT_2D, "BoundedHeat2D", accuracy=accuracy, boundaries={"x": kind}
    ).build()
    ns = [21, 41, 81]
    errors = []
    for n in ns:
        h = 1 / (n - 1)
        steps = int(np.ceil(T_END * KAPPA / (0.1 * h**2)))
        model = model_class(shape=(n, ny), kappa=KAPPA, boundary_values={"x": values})
        assert model.periodic_axes == (False, True)
        gx, gy = np.meshgrid(*model.grid, indexing="ij")

        def exact(time, gx=gx, gy=gy):
            return np.exp(-rate * time) * np.cos(OMEGA * gx + PHASE) * np.cos(2 * np.pi * gy)

        times = np.linspace(0.0, T_END, steps + 1)
        out = model.state_at(model.forecast(times, {"u": exact(0.0)}, saved_times=[T_END]))
        errors.append(np.abs(out["u"] - exact(T_END)).max())
    assert abs(measured_order(errors, ns) - accuracy) < 0.3, errors


# -- 2. plain-numpy references --------------------------------------------------------------
def d1(f, h):
    """Second-order ∂x: centred inside, 3-point one-sided rows at both ends."""
    out = np.empty_like(f)
    out[1:-1] = (f[2:] - f[:-2]) / (2 * h)
    out[0] = (-3 * f[0] + 4 * f[1] - f[2]) / (2 * h)
    out[-1] = (3 * f[-1] - 4 * f[-2] + f[-3]) / (2 * h)
    return out


def d2(f, h):
    """Second-order ∂x²: centred inside, 4-point one-sided rows at both ends."""
    out = np.empty_like(f)
    out[1:-1] = (f[2:] - 2 * f[1:-1] + f[:-2]) / h**2
    out[0] = (2 * f[0] - 5 * f[1] + 4 * f[2] - f[3]) / h**2
    out[-1] = (2 * f[-1] - 5 * f[-2] + 4 * f[-3] - f[-4]) / h**2
    return out


def rk4_imposed(trend, impose, f, t0, dt, steps):
    """RK4 with the boundary imposed on the start state, each stage and the result."""
    for j in range(steps):
        s = t0 + j * dt
        f = impose(s, f)
        a = trend(f)
        b = trend(impose(s + dt / 2, f + dt / 2 * a))
        c_ = trend(impose(s + dt / 2, f + dt / 2 * b))
        d = trend(impose(s + dt, f + dt * c_))
        f = impose(s + dt, f + dt / 6 * (a + 2 * b + 2 * c_ + d))
    return f


N_REF = 101
H_REF = 1 / (N_REF - 1)
XS_REF = np.linspace(0.0, 1.0, N_REF)
K_REF = 0.05 + 0.04 * np.sin(2 * np.pi * XS_REF) ** 2


def test_heat_with_heterogeneous_k_and_dirichlet_ends_matches_numpy():
    model = NNModelBuilder(
        HETEROGENEOUS_HEAT, "RefDirichlet", boundaries={"x": "dirichlet"}
    ).build()(shape=N_REF, k=K_REF, boundary_values={"x": (1.0, 0.25)})
    u0 = np.sin(3 * np.pi * XS_REF) ** 2
    dt, steps = 0.2 * H_REF**2 / K_REF.max(), 200

    def impose(_s, f):
        f = f.copy()
        f[0], f[-1] = 1.0, 0.25
        return f

    expected = rk4_imposed(lambda f: K_REF * d2(f, H_REF), impose, u0, 0.0, dt, steps)
    times = np.arange(steps + 1) * dt
    out = model.forecast(times, {"u": u0}, saved_times=[times[-1]])["u"].values[-1]
    assert relative_l2(out, expected) <= 1e-12


def test_heat_with_heterogeneous_k_and_neumann_ends_matches_numpy():
    low, high = 0.5, -0.3  # ∂u/∂x along +x at both ends
    model = NNModelBuilder(HETEROGENEOUS_HEAT, "RefNeumann", boundaries={"x": "neumann"}).build()(
        shape=N_REF, k=K_REF, boundary_values={"x": (low, high)}
    )
    u0 = np.sin(3 * np.pi * XS_REF) ** 2
    dt, steps = 0.2 * H_REF**2 / K_REF.max(), 200

    def impose(_s, f):
        # one-sided (-3 f0 + 4 f1 - f2) / 2h = low and (3 fn - 4 fn-1 + fn-2) / 2h = high
        f = f.copy()
        f[0] = (4 * f[1] - f[2] - 2 * H_REF * low) / 3
        f[-1] = (4 * f[-2] - f[-3] + 2 * H_REF * high) / 3
        return f

    expected = rk4_imposed(lambda f: K_REF * d2(f, H_REF), impose, u0, 0.0, dt, steps)
    times = np.arange(steps + 1) * dt
    out = model.forecast(times, {"u": u0}, saved_times=[times[-1]])["u"].values[-1]
    assert relative_l2(out, expected) <= 1e-12
    np.testing.assert_allclose(d1(out, H_REF)[[0, -1]], [low, high], rtol=1e-10)


def test_advection_with_time_dependent_inflow_and_outflow_matches_numpy():
    wind = 1.0 + 0.5 * np.sin(2 * np.pi * XS_REF)
    model = NNModelBuilder(
        ADVECTION, "RefAdvection", boundaries={"x": ("dirichlet", "outflow")}
    ).build()(shape=N_REF, c=wind)
    model.set_boundary_value("u", "x", "low", lambda s: 0.5 * ops.sin(2 * np.pi * s))
    u0 = np.exp(-(((XS_REF - 0.3) / 0.08) ** 2))
    dt, steps, t0 = 0.5 * H_REF / wind.max(), 300, 0.1

    def impose(s, f):
        f = f.copy()
        f[0] = 0.5 * np.sin(2 * np.pi * s)
        return f

    expected = rk4_imposed(lambda f: -wind * d1(f, H_REF), impose, u0, t0, dt, steps)
    times = t0 + np.arange(steps + 1) * dt
    out = model.forecast(times, {"u": u0}, saved_times=[times[0], times[-1]])["u"].values
    assert out[0, 0] == pytest.approx(0.5 * np.sin(2 * np.pi * t0))  # initial state projected
    assert relative_l2(out[-1], expected) <= 1e-12


def test_step_model_and_trend_of_a_bounded_model():
    model = NNModelBuilder(
        HETEROGENEOUS_HEAT, "BoundedSteps", boundaries={"x": ("dirichlet", "neumann")}
    ).build()(shape=N_REF, k=K_REF, boundary_values={"x": (lambda s: 1.0 + s, 0.5)})
    u0 = np.sin(3 * np.pi * XS_REF) ** 2
    dt = 0.2 * H_REF**2 / K_REF.max()
    stepped = np.asarray(model.step_model(dt, steps=3)({"u": u0[None]})["u"])[0]
    forecast = model.forecast(np.arange(4) * dt, {"u": u0})["u"].values[-1]
    assert relative_l2(stepped, forecast) <= 1e-12
    assert stepped[0] == pytest.approx(1.0 + 3 * dt, rel=1e-14)
    # the trend is the equation with one-sided rows, on the state as given (not projected)
    trend = model.trend(0.0, {"u": u0})["u"]
    np.testing.assert_allclose(trend, K_REF * d2(u0, H_REF), rtol=1e-10, atol=1e-9)


def test_neumann_value_is_the_derivative_along_increasing_x_on_both_sides():
    # u = x has ∂u/∂x = 1 at both ends: with Neumann (1, 1) it is a steady state of the heat
    # equation. With an outward-normal convention the high side would need -1... not +1.
    model = NNModelBuilder(HEAT, "NeumannSign", boundaries={"x": Neumann(1.0)}).build()(
        shape=21, kappa=0.1
    )
    xs = model.grid[0]
    out = model.forecast(np.arange(51) * 1e-3, {"u": xs.copy()})["u"].values[-1]
    np.testing.assert_allclose(out, xs, atol=1e-13)
    model.set_boundary_value("u", "x", "high", -1.0)
    out = model.forecast(np.arange(51) * 1e-3, {"u": xs.copy()})["u"].values[-1]
    assert np.abs(out - xs).max() > 1e-3


def test_face_arrays_series_with_member_axis_and_2d_faces_reach_the_boundary():
    model = NNModelBuilder(
        HEAT_2D, "Faces2D", boundaries={"x": (Dirichlet(None), Outflow())}
    ).build()(shape=(12, 6), kappa=0.01)
    face = np.linspace(1.0, 2.0, 6)
    model.set_boundary_value("u", "x", "low", face)
    times = np.arange(11) * 1e-3
    out = model.state_at(model.forecast(times, {"u": np.zeros((12, 6))}))["u"]
    np.testing.assert_array_equal(out[0], face)
    # a series with a member axis: member m gets its own boundary value, interpolated
    series_times = np.array([0.0, 0.004, 0.02])
    values = np.stack([np.full((3, 6), v) for v in (0.0, 1.0, 5.0)])  # (n_times, members, ny)
    values[:, 1] *= 2.0
    model.set_boundary_value("u", "x", "low", BoundarySeries(series_times, values))
    ds = model.forecast(times, {"u": np.zeros((3, 12, 6))})
    at = model.state_at(ds, times[6])["u"]  # t = 0.006: 1 + (5 - 1) * 0.002 / 0.016 = 1.5
    expected = np.broadcast_to(np.array([1.5, 3.0, 1.5])[:, None], (3, 6))
    np.testing.assert_allclose(at[:, 0, :], expected, rtol=1e-12)
    with pytest.raises(ValueError, match="3 members, but the state has 2"):
        model.forecast(times, {"u": np.zeros((2, 12, 6))})
    with pytest.raises(ValueError, match="covers t = 0 to 0.02"):
        model.forecast(np.arange(31) * 1e-3, {"u": np.zeros((3, 12, 6))})


# -- 3. tangent linear and adjoint ------------------------------------------------------------
@pytest.mark.slow  # about 13 s each: the tangent linear and adjoint run eagerly
@pytest.mark.parametrize(
    ("equation", "boundaries", "values"),
    [
        (
            INVISCID_BURGERS,
            {"x": ("dirichlet", "outflow")},
            {"x": (lambda s: 0.6 + 0.2 * ops.sin(s), None)},
        ),
        (HETEROGENEOUS_HEAT, {"x": "neumann"}, {"x": (0.3, -0.2)}),
    ],
    ids=["dirichlet-outflow", "neumann"],
)
def test_bounded_adjoint_passes_the_dot_product_test_and_tangent_linear_matches_differences(
    equation, boundaries, values
):
    n = 41
    xs = np.linspace(0.0, 1.0, n)
    constants = {} if equation is INVISCID_BURGERS else {"k": 0.02 + 0.01 * xs}
    model = NNModelBuilder(equation, "Linearised", boundaries=boundaries).build()(
        shape=n, boundary_values=values, **constants
    )
    times = np.arange(51) * 2e-3  # 50 RK4 steps
    rng = np.random.default_rng(3)
    state = {"u": 0.6 + 0.3 * np.sin(2 * np.pi * xs)}
    dx, w = {"u": rng.normal(size=n)}, {"u": rng.normal(size=n)}
    m_dx = model.tangent_linear(state, dx, times)["u"]
    mt_w = model.adjoint(state, w, times)["u"]
    lhs, rhs = float(m_dx @ w["u"]), float(dx["u"] @ mt_w)
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)
    eps = 1e-5
    plus = model.forecast(times, {"u": state["u"] + eps * dx["u"]}, saved_times=[times[-1]])
    minus = model.forecast(times, {"u": state["u"] - eps * dx["u"]}, saved_times=[times[-1]])
    difference = (plus["u"].values[-1] - minus["u"].values[-1]) / (2 * eps)
    assert relative_l2(m_dx, difference) <= 1e-7
    if "dirichlet" in boundaries["x"]:
        assert m_dx[0] == 0.0  # the Dirichlet point does not depend on the state


# -- 4. periodic models unchanged -----------------------------------------------------------
#: sha256 of the code generated for HEAT ("Heat", accuracy 2) before bounded axes existed.
PERIODIC_HEAT_SHA256 = "b8a62528777dd14d24d4f40b5cbb50a84387f57b9f1fb549fedbc41a55f7220a"


def test_periodic_declarations_generate_exactly_the_code_of_before():
    codes = {
        NNModelBuilder(HEAT, "Heat", boundaries=boundaries).code
        for boundaries in (
            None,
            {},
            {"x": "periodic"},
            {"x": (Periodic(), Periodic())},
            {"u": {"x": ("periodic", "periodic")}},
        )
    }
    assert len(codes) == 1
    code = codes.pop()
    assert hashlib.sha256(code.encode()).hexdigest() == PERIODIC_HEAT_SHA256
    assert "periodic grid" in code and "boundary_conditions" not in code
    model = NNModelBuilder(HEAT, "Heat").build()(shape=10, lengths=2.0, kappa=0.1)
    assert model.periodic_axes == (True,) and model.dx == (0.2,)
    assert model.boundary_description == "periodic"
    assert "boundary_conditions" not in model.fingerprint()
    assert "boundary_values" not in model._settings()


def test_bounded_module_docstring_and_grid_say_what_is_bounded():
    code = NNModelBuilder(
        HEAT_2D,
        "Doc2D",
        boundaries={"x": ("dirichlet", "outflow"), "u": {"x": (Dirichlet(1.5), "open")}},
    ).code
    assert "periodic grid" not in code
    assert "x bounded, y periodic" in code
    assert "u(x: dirichlet 1.5 | outflow, y: periodic)" in code
    assert '"x": (Dirichlet(value=1.5), Outflow()),' in code
    model = NNModelBuilder(HEAT_2D, "Grid2D", boundaries={"x": "outflow"}).build()(
        shape=(5, 4), kappa=0.1
    )
    np.testing.assert_allclose(model.grid[0], [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(model.grid[1], [0.0, 0.25, 0.5, 0.75])
    ds = model.forecast([0.0], {"u": np.zeros((5, 4))})
    assert "bounded" in ds["x"].attrs["long_name"] and "periodic" in ds["y"].attrs["long_name"]
    assert ds.attrs["boundary_conditions"] == "u(x: outflow | outflow, y: periodic)"


# -- 5. bad input ----------------------------------------------------------------------------
def test_bad_declarations_name_the_offending_item():
    with pytest.raises(ValueError, match=r"unknown coordinate 'z'.*\['x'\]"):
        NNModelBuilder(HEAT, boundaries={"z": "dirichlet"})
    with pytest.raises(ValueError, match="'c' is not a prognostic function"):
        NNModelBuilder(ADVECTION, boundaries={"c": {"x": "dirichlet"}})
    with pytest.raises(ValueError, match="unknown boundary condition 'robin'"):
        NNModelBuilder(HEAT, boundaries={"x": ("robin", "outflow")})
    with pytest.raises(ValueError, match="field 'u', coordinate 'x': periodic on one side only"):
        NNModelBuilder(HEAT, boundaries={"x": ("periodic", "dirichlet")})
    with pytest.raises(ValueError, match=r"unknown coordinate 'y'.*\['x'\]"):
        NNModelBuilder(HEAT, boundaries={"u": {"y": "dirichlet"}})
    with pytest.raises(ValueError, match="a declaration's value is a finite number or None"):
        Dirichlet(np.ones(3))
    v = sp.Function("v")(t, x)
    coupled = [sp.Eq(u.diff(t), v.diff(x)), sp.Eq(v.diff(t), u.diff(x))]
    with pytest.raises(ValueError, match=r"coordinate 'x' is periodic for \['v'\]"):
        NNModelBuilder(coupled, boundaries={"u": {"x": "dirichlet"}})


def test_bad_boundary_values_name_field_coordinate_and_side():
    model_class = NNModelBuilder(
        HEAT, "BadValues", boundaries={"x": (Dirichlet(None), Outflow())}
    ).build()
    model = model_class(shape=16, kappa=0.1)
    with pytest.raises(ValueError, match="field 'u', coordinate 'x', side 'high'.*outflow"):
        model.set_boundary_value("u", "x", "high", 0.0)  # a Neumann value on an outflow side
    with pytest.raises(
        ValueError, match="missing boundary value for field 'u', coordinate 'x', side 'low'"
    ):
        model.forecast(np.arange(3) * 1e-3, {"u": np.zeros(16)})
    with pytest.raises(ValueError, match="missing boundary value.*side 'low'"):
        model.step_model(1e-3)
    with pytest.raises(ValueError, match="'w' is not a prognostic field"):
        model.set_boundary_value("w", "x", "low", 0.0)
    with pytest.raises(ValueError, match="side must be 'low' or 'high'"):
        model.set_boundary_value("u", "x", "left", 0.0)
    with pytest.raises(ValueError, match=r"field 'u', coordinate 'x', side 'low'.*shape \(\)"):
        model.set_boundary_value("u", "x", "low", np.ones(3))
    with pytest.raises(ValueError, match="coordinate 'x'.*at least 4 points"):
        model_class(shape=3, kappa=0.1)
    with pytest.raises(ValueError, match="unknown field or coordinate 'q'"):
        model_class(shape=16, kappa=0.1, boundary_values={"q": 1.0})
    periodic = NNModelBuilder(HEAT, "NoBoundary").build()(shape=8, kappa=0.1)
    with pytest.raises(ValueError, match="periodic on every axis"):
        periodic.set_boundary_value("u", "x", "low", 0.0)
    face = NNModelBuilder(HEAT_2D, "BadFace", boundaries={"x": "neumann"}).build()(
        shape=(8, 5), kappa=0.1
    )
    with pytest.raises(ValueError, match=r"side 'high' \(neumann\).*shape \(5,\)"):
        face.set_boundary_value("u", "x", "high", np.ones(8))
    with pytest.raises(ValueError, match="returned shape"):
        face.set_boundary_value("u", "x", "low", lambda s: ops.ones((3, 3), dtype="float64"))
        face.forecast(np.arange(2) * 1e-3, {"u": np.zeros((8, 5))})


# -- 6. saving, fingerprints, ensembles -------------------------------------------------------
def test_bounded_model_save_load_round_trip_and_fingerprints(tmp_path):
    model_class = NNModelBuilder(
        BURGERS, "SavedBounded", boundaries={"x": (Dirichlet(None), Neumann(0.0))}
    ).build()
    model = model_class(shape=24, kappa=0.02, boundary_values={"x": (0.7, None)})
    model.set_boundary_value("u", "x", "high", 0.25)
    xs = model.grid[0]
    times = np.arange(21) * 2e-3
    state = {"u": 0.5 + 0.2 * np.cos(3 * xs)}
    reloaded = load_model(model.save(tmp_path / "bounded.keras"))
    assert reloaded.fingerprint() == model.fingerprint()
    assert reloaded.boundary_description == "u(x: dirichlet 0.7 | neumann 0.25)"
    np.testing.assert_array_equal(
        reloaded.forecast(times, state)["u"].values, model.forecast(times, state)["u"].values
    )
    rebuilt = model_class._restore(model._settings())  # as Dask workers rebuild a model
    rebuilt.trend_model.set_weights(model.trend_model.get_weights())
    assert rebuilt.fingerprint() == model.fingerprint()
    before = model.fingerprint()
    model.set_boundary_value("u", "x", "low", 0.8)
    assert model.fingerprint()["values_sha256"] != before["values_sha256"]
    # a function of time is not saved: the reloaded model asks for it instead of guessing
    model.set_boundary_value("u", "x", "low", lambda s: 0.7 + s)
    reloaded = load_model(model.save(tmp_path / "function.keras"))
    with pytest.raises(ValueError, match="missing boundary value for field 'u', coordinate 'x'"):
        reloaded.forecast(times, state)
    periodic = NNModelBuilder(BURGERS, "SavedBounded").build()(shape=24, kappa=0.02)
    assert periodic.fingerprint()["model_source_sha256"] != before["model_source_sha256"]
    assert periodic.fingerprint() != before


def test_changing_a_number_or_series_of_the_same_shape_reuses_the_compiled_forecast():
    model = NNModelBuilder(HEAT, "Reuse", boundaries={"x": "dirichlet"}).build()(
        shape=16, kappa=0.1
    )
    times = np.arange(5) * 1e-3
    model.forecast(times, {"u": np.zeros(16)})
    loop = model._loops["states"]
    model.set_boundary_value("u", "x", "low", 2.0)
    out = model.forecast(times, {"u": np.zeros(16)})["u"].values
    assert model._loops["states"] is loop and out[-1, 0] == 2.0
    model.set_boundary_value("u", "x", "high", BoundarySeries([0.0, 1.0], [0.0, 1.0]))
    assert "states" not in model._loops  # a new kind of value: traced again
    model.forecast(times, {"u": np.zeros(16)})
    loop = model._loops["states"]
    model.set_boundary_value("u", "x", "high", BoundarySeries([0.0, 1.0], [0.0, 10.0]))
    out = model.forecast(times, {"u": np.zeros(16)})["u"].values
    assert model._loops["states"] is loop
    assert out[-1, -1] == pytest.approx(10.0 * times[-1], rel=1e-12)


def test_bounded_model_runs_through_the_ensemble_engine_unchanged():
    from pkf import EnsembleForecast

    model = NNModelBuilder(
        ADVECTION, "EnsembleBounded", boundaries={"x": ("dirichlet", "outflow")}
    ).build()(shape=32, c=1.0, boundary_values={"x": (lambda s: ops.sin(s), None)})
    xs = model.grid[0]
    members = np.exp(-(((xs - 0.5) / 0.1) ** 2)) * (1 + 0.1 * np.arange(6)[:, None])
    times = np.arange(21) * 0.01
    ensemble = EnsembleForecast(model, 6, chunks=4, save_members=True, progress=False)
    run = ensemble.run(times, {"u": members}, saved_times=[times[-1]])
    # mean and variance only: the Dirichlet point has no spread (V = 0), so the normalised
    # errors behind the metric are undefined there until boundary perturbations exist.
    result = run.to_dataset(statistics=("mean", "variance"))
    forecast = model.forecast(times, {"u": members}, saved_times=[times[-1]])
    np.testing.assert_allclose(
        result["u_members"].values, forecast["u"].values, rtol=1e-12, atol=1e-14
    )
    assert result["u_members"].values[-1, :, 0] == pytest.approx(np.sin(times[-1]))
    np.testing.assert_allclose(
        result["u"].values, forecast["u"].values.mean(axis=1), rtol=1e-12, atol=1e-14
    )


# -- 7. float32 --------------------------------------------------------------------------------
def test_bounded_models_run_in_float32():
    model_class = NNModelBuilder(
        HETEROGENEOUS_HEAT, "Bounded32", boundaries={"x": ("neumann", "dirichlet")}
    ).build()
    xs = np.linspace(0.0, 1.0, 41)
    values = {"x": (0.5, lambda s: 1.0 + ops.sin(s))}
    results = {}
    for dtype in ("float32", "float64"):
        model = model_class(shape=41, k=0.01 + 0.01 * xs, dtype=dtype, boundary_values=values)
        out = model.forecast(np.arange(101) * 1e-3, {"u": np.cos(xs)})["u"].values[-1]
        assert out.dtype == np.dtype(dtype)
        results[dtype] = out
    assert relative_l2(results["float32"], results["float64"]) <= 1e-5
