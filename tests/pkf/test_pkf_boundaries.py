"""PKF boundary conditions derived from the dynamics' (pkf.boundaries)."""

import numpy as np
import pytest
import sympy as sp

from generator import NNModelBuilder
from generator.boundaries import Dirichlet, Neumann, Outflow, Periodic
from pkf import SymbolicPKF
from pkf.boundaries import boundary_statistics, pkf_boundaries

t, x, y = sp.symbols("t x y")


def heat_2d():
    u = sp.Function("u")(t, x, y)
    k = sp.Function("k")(x, y)
    return SymbolicPKF(sp.Eq(u.diff(t), k * (u.diff(x, 2) + u.diff(y, 2))))


def test_dirichlet_gives_required_values_on_variance_and_tensor_outflow_is_carried():
    u, c = sp.Function("u")(t, x), sp.Function("c")(x)
    symbolic = SymbolicPKF(sp.Eq(u.diff(t), -c * u.diff(x)))
    conditions = pkf_boundaries(symbolic, {"x": (Dirichlet(1.5), "outflow")})
    assert conditions["u"]["x"] == (Dirichlet(1.5), Outflow())
    assert conditions["V_u"]["x"] == (Dirichlet(None), Outflow())
    assert conditions["s_u_xx"]["x"] == (Dirichlet(None), Outflow())
    metric = pkf_boundaries(symbolic, {"x": ("dirichlet", "outflow")}, form="metric")
    assert metric["g_u_xx"]["x"] == (Dirichlet(None), Outflow())


def test_neumann_reflection_parity_in_2d_with_a_periodic_axis():
    """Bounded x with Neumann, periodic y: V and g_yy even (Neumann 0), g_xy odd (Dirichlet 0)
    under x -> -x, g_xx = 0 at the wall (the normalised error's derivative vanishes); the
    periodic axis stays periodic. The aspect form cannot hold g = 0 and is refused."""
    conditions = pkf_boundaries(heat_2d(), {"x": Neumann(0.0)}, form="metric")
    assert conditions["V_u"]["x"] == (Neumann(0.0), Neumann(0.0))
    assert conditions["g_u_xx"]["x"] == (Dirichlet(0.0), Dirichlet(0.0))
    assert conditions["g_u_yy"]["x"] == (Neumann(0.0), Neumann(0.0))
    assert conditions["g_u_xy"]["x"] == (Dirichlet(0.0), Dirichlet(0.0))
    assert all(conditions[f]["y"] == (Periodic(), Periodic()) for f in conditions)
    with pytest.raises(ValueError, match="Neumann side of 'u' on 'x'.*form='metric'"):
        pkf_boundaries(heat_2d(), {"x": Neumann(0.0)}, form="aspect")


def test_cross_covariance_conditions():
    u, v = sp.Function("u")(t, x), sp.Function("v")(t, x)
    symbolic = SymbolicPKF([sp.Eq(u.diff(t), -u.diff(x) + v), sp.Eq(v.diff(t), -v.diff(x) - u)])
    conditions = pkf_boundaries(
        symbolic,
        {"x": ("dirichlet", "outflow"), "v": {"x": ("neumann", "neumann")}},
        form="metric",
    )
    assert conditions["V_uv"]["x"] == (Dirichlet(0.0), Outflow())
    both = pkf_boundaries(symbolic, {"x": ("neumann", "outflow")}, form="metric")
    assert both["V_uv"]["x"] == (Neumann(0.0), Outflow())


@pytest.mark.parametrize(
    ("form", "expected"), [("aspect", 0.04), ("metric", 25.0), ("diffusion", 0.02)]
)
def test_boundary_statistics_tensor_values(form, expected):
    u = sp.Function("u")(t, x)
    symbolic = SymbolicPKF(sp.Eq(u.diff(t), -u.diff(x)))
    values = boundary_statistics(
        symbolic, "u", "x", "low", variance=0.3, length_scales=0.2, mean=1.0, form=form
    )
    tensor = {"aspect": "s_u_xx", "metric": "g_u_xx", "diffusion": "nu_u_xx"}[form]
    assert values[tensor] == {"x": {"low": pytest.approx(expected)}}
    assert values["V_u"] == {"x": {"low": 0.3}} and values["u"] == {"x": {"low": 1.0}}
    with pytest.raises(ValueError, match="length_scales must be positive"):
        boundary_statistics(symbolic, "u", "x", "low", variance=0.3, length_scales=0.0)
    with pytest.raises(ValueError, match="side must be 'low' or 'high'"):
        boundary_statistics(symbolic, "u", "x", "left", variance=0.3, length_scales=0.1)
    with pytest.raises(ValueError, match="coordinate 'z' unknown"):
        boundary_statistics(symbolic, "u", "z", "low", variance=0.3, length_scales=0.1)


def test_bounded_pkf_model_carries_the_inflow_statistics_into_the_domain():
    """Advection at constant speed c with a Dirichlet inflow and an open outflow: the PKF
    variance and aspect are transported, so after a transit the domain holds the boundary
    errors' statistics, V_b and (c τ)², whatever the initial ones (a smooth bump that leaves;
    the dispersive tail of centred differences stays at 1.1e-3 relative, measured)."""
    u, c = sp.Function("u")(t, x), sp.Function("c")(x)
    symbolic = SymbolicPKF(sp.Eq(u.diff(t), -c * u.diff(x)))
    model_class = NNModelBuilder(
        symbolic.to_generator("aspect"),
        "PKFInflow",
        boundaries=pkf_boundaries(symbolic, {"x": ("dirichlet", "outflow")}),
    ).build()
    n, speed, tau, v_b = 101, 1.0, 0.08, 0.3
    values = boundary_statistics(
        symbolic, "u", "x", "low", variance=v_b, length_scales=speed * tau, mean=0.0
    )
    model = model_class(shape=n, c=np.full(n, speed), boundary_values=values)
    xs = model.grid[0]
    bump = np.exp(-((xs - 0.5) ** 2) / (2 * 0.08**2))
    state = {"u": np.zeros(n), "V_u": v_b + 0.5 * bump, "s_u_xx": (speed * tau) ** 2 * (1 + bump)}
    times = np.linspace(0.0, 1.5, 751)
    final = model.forecast(times, state, saved_times=times[[0, -1]]).isel(time=-1)
    np.testing.assert_allclose(final["V_u"], v_b, rtol=3e-3)
    np.testing.assert_allclose(final["s_u_xx"], (speed * tau) ** 2, rtol=3e-3)
    with pytest.raises(ValueError, match="V_u"):  # the boundary statistics are required
        model_class(shape=n, c=np.full(n, speed)).forecast(times[:3], state)


def test_ensemble_refuses_a_boundary_series_that_does_not_cover_the_times():
    """As a single forecast does (the series would otherwise hold its last value)."""
    from generator.boundaries import BoundarySeries
    from pkf import EnsembleForecast

    u, k = sp.Function("u")(t, x), sp.Symbol("k")
    model_class = NNModelBuilder(
        sp.Eq(u.diff(t), k * u.diff(x, 2)), "HeatSeries", boundaries={"x": Dirichlet(None)}
    ).build()
    model = model_class(shape=21, k=0.1, boundary_values={"x": (0.0, 0.0)})
    model.set_boundary_value("u", "x", "low", BoundarySeries([0.0, 0.05], [0.0, 1.0]))
    times = np.linspace(0.0, 0.1, 11)
    members = np.zeros((4, 21))
    with pytest.raises(ValueError, match="EnsembleForecast.run.*covers t = 0 to 0.05"):
        EnsembleForecast(model, 4, progress=False).run(
            times, lambda start, stop: {"u": members[start:stop]}
        )
