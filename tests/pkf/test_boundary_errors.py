"""Boundary errors for ensembles on bounded domains (issue 16, part 2).

The sampled series are checked against their prescription (variance, Gaussian temporal and
spatial correlation) with plain-numpy estimators written here; the ensemble engine against the
physics of transport: an inflow error advected at speed c keeps its variance and turns a
Gaussian time correlation of scale tau into a Gaussian space correlation of scale c tau.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from generator import NNModelBuilder
from pkf import BoundaryErrors, EnsembleForecast, time_correlated_errors

t, x, y = sp.symbols("t x y")


def lag_correlation(series: np.ndarray, lag: int) -> float:
    """Correlation between times s and s + lag, pooled over members and s (zero mean known)."""
    a, b = series[:-lag] if lag else series, series[lag:]
    return float(np.mean(a * b) / np.sqrt(np.mean(a * a) * np.mean(b * b)))


def test_time_series_have_the_prescribed_variance_and_gaussian_time_correlation():
    # 3000 members, 201 times, tau = 10 steps: about 8 independent times per member, so the
    # pooled estimates have standard deviations of about 0.9 % (variance) and 0.004
    # (correlation at lag tau); the tolerances are about 4 of them.
    times = np.arange(201) * 0.01
    tau, variance, members = 0.1, 2.0, 3000
    e = time_correlated_errors(times, 0, members, variance, tau, seed=11)
    assert e.shape == (201, members)
    assert np.mean(e**2) == pytest.approx(variance, rel=0.04)
    assert lag_correlation(e, 10) == pytest.approx(np.exp(-0.5), abs=0.02)  # lag tau
    assert lag_correlation(e, 20) == pytest.approx(np.exp(-2.0), abs=0.02)  # lag 2 tau
    assert lag_correlation(e, 5) == pytest.approx(np.exp(-0.125), abs=0.02)
    # the padding: the first and last times are not correlated through the periodic wrap
    ends = np.mean(e[0] * e[-1]) / variance
    assert abs(ends) < 4 / np.sqrt(members)


def test_face_errors_have_a_gaussian_correlation_along_a_periodic_or_bounded_face():
    times = np.arange(41) * 0.05
    for periodic in (True, False):
        e = time_correlated_errors(
            times,
            0,
            400,
            0.5,
            0.2,
            seed=2,
            face_shape=(40,),
            face_spacing=(0.025,),
            face_periodic=(periodic,),
            length_scale=0.1,
        )
        assert e.shape == (41, 400, 40)
        assert np.mean(e**2) == pytest.approx(0.5, rel=0.06)
        along = np.mean(e[..., :-4] * e[..., 4:]) / np.mean(e**2)  # lag 4 dy = L
        assert along == pytest.approx(np.exp(-0.5), abs=0.03)
        assert lag_correlation(e, 4) == pytest.approx(np.exp(-0.5), abs=0.03)  # lag tau
    assert abs(np.mean(e[..., 0] * e[..., -1]) / 0.5) < 0.03  # bounded face: no wrap
    uniform = time_correlated_errors(times, 0, 3, 0.5, 0.2, seed=2, face_shape=(5,))
    assert np.array_equal(uniform, np.repeat(uniform[..., :1], 5, axis=-1))


def test_series_are_reproducible_and_chunk_independent():
    times = np.linspace(0.0, 1.0, 51)
    spec = BoundaryErrors(1.5, variance=0.3, time_scale=0.1, seed=4)
    whole = spec.values(times, 0, 10)
    parts = np.concatenate([spec.values(times, 0, 3), spec.values(times, 3, 10)], axis=1)
    np.testing.assert_array_equal(whole, parts)
    np.testing.assert_array_equal(whole, BoundaryErrors(1.5, 0.3, 0.1, seed=4).values(times, 0, 10))
    np.testing.assert_array_equal(whole, 1.5 + spec.errors(times, 0, 10))
    other = BoundaryErrors(1.5, 0.3, 0.1, seed=5).values(times, 0, 10)
    assert not np.allclose(whole, other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variance": -1.0}, "variance"),
        ({"time_scale": 0.0}, "time_scale"),
        ({"time_scale": -2.0}, "time_scale"),
        ({"length_scale": 0.0}, "length_scale"),
        ({"mean": np.nan}, "mean"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_boundary_errors_reject_bad_arguments(kwargs, message):
    arguments = {"mean": 0.0, "variance": 1.0, "time_scale": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        BoundaryErrors(**arguments)


def test_time_correlated_errors_reject_bad_times_and_faces():
    with pytest.raises(ValueError, match="times"):
        time_correlated_errors([0.0, 0.1, 0.3], 0, 2, 1.0, 0.1, seed=0)
    with pytest.raises(ValueError, match="length_scale"):
        time_correlated_errors([0.0, 0.1], 0, 2, 1.0, 0.1, seed=0, length_scale=0.2)
    with pytest.raises(ValueError, match="face_spacing"):
        time_correlated_errors(
            [0.0, 0.1], 0, 2, 1.0, 0.1, seed=0, face_shape=(4,), length_scale=0.2
        )


def advection_model(n: int):
    u = sp.Function("u")(t, x)
    c = sp.Symbol("c")
    cls = NNModelBuilder(
        sp.Eq(u.diff(t), -c * u.diff(x)),
        "InflowAdvection",
        accuracy=2,
        boundaries={"x": ("dirichlet", "outflow")},
    ).build()
    return cls(shape=n, c=1.0)


def test_boundary_errors_are_validated_by_the_ensemble():
    model = advection_model(21)
    engine = EnsembleForecast(model, members=4, progress=False)
    times = np.arange(5) * 0.01
    initial = {"u": np.zeros((4, 21))}
    good = BoundaryErrors(0.0, 1.0, 0.1)
    cases = [
        ({("v", "x", "low"): good}, "'v' is not a prognostic field"),
        ({("u", "z", "low"): good}, "unknown coordinate"),
        ({("u", "x", "left"): good}, "side must be"),
        ({("u", "x", "high"): good}, "outflow, not Dirichlet"),
        ({("u", "x", "low"): 1.0}, "BoundaryErrors"),
        ({("u", "x"): good}, "tuples"),
        ({("u", "x", "low"): BoundaryErrors(np.zeros(3), 1.0, 0.1)}, "face"),
    ]
    for boundary, message in cases:
        with pytest.raises(ValueError, match=message):
            engine.run(times, initial, boundary_errors=boundary)


def test_chunking_does_not_change_the_boundary_errors():
    n, members = 41, 30
    model = advection_model(n)
    times = np.arange(161) * 0.01  # saved after the transit (ahead of the front V ~ 0)
    boundary = {("u", "x", "low"): BoundaryErrors(1.0, 0.5, 0.05, seed=8)}
    initial = {"u": np.ones((members, n))}
    out = {}
    for chunks in (members, (10, 10, 10), 13):  # one chunk, three, and padded chunks
        engine = EnsembleForecast(model, members, chunks=chunks, save_members=True, progress=False)
        result = engine.run(times, initial, saved_times=times[[120, 160]], boundary_errors=boundary)
        out[str(chunks)] = result
        expected = 1.0 + boundary[("u", "x", "low")].errors(times, 0, members)
        np.testing.assert_allclose(result.members["u"][:, :, 0], expected[[120, 160]], rtol=1e-12)
    reference = out[str(members)].to_dataset()
    for key in ("(10, 10, 10)", "13"):
        ds = out[key].to_dataset()
        for name in ("u", "V_u", "g_u_xx", "L_u_x"):
            np.testing.assert_allclose(ds[name], reference[name], rtol=1e-12, atol=1e-14)
    # afterwards the side holds its unperturbed mean again
    plain = model.forecast(times[:3], {"u": np.zeros(n)})
    assert float(plain["u"].values[-1, 0]) == 1.0


def test_advected_inflow_errors_keep_variance_and_give_length_scale_c_tau():
    """u_t + c u_x = 0, Dirichlet inflow at x = 0 perturbed with (V_b, tau), outflow at x = 1.

    After the transit, u(x, t) = b(t - x / c): variance V_b, Gaussian correlation in x of
    length-scale c tau. 1000 members: at one point the variance has a 4.5 % standard deviation;
    averaged over x in [0.2, 0.8] (six length-scales) about 2 %, and the length-scale about
    the same; the tolerances are 8 %. Measured: V / V_b = 0.990, L / (c tau) = 0.979.
    """
    n, members, c, tau, v_b = 201, 1000, 1.0, 0.1, 0.3
    model = advection_model(n)
    dx = model.dx[0]
    times = np.arange(751) * 0.4 * dx / c  # t = 1.5: every interior point past its transit
    boundary = {("u", "x", "low"): BoundaryErrors(2.0, v_b, tau, seed=21)}
    result = EnsembleForecast(model, members, progress=False).run(
        times, {"u": np.full((members, n), 2.0)}, saved_times=times[-1:], boundary_errors=boundary
    )
    ds = result.to_dataset(statistics=("mean", "variance", "length_scale"))
    inside = (model.grid[0] >= 0.2) & (model.grid[0] <= 0.8)
    variance = ds["V_u"].values[-1, inside]
    length = ds["L_u_x"].values[-1, inside]
    assert np.mean(variance) == pytest.approx(v_b, rel=0.08)
    assert np.mean(length) == pytest.approx(c * tau, rel=0.08)
    assert np.mean(ds["u"].values[-1, inside]) == pytest.approx(2.0, abs=0.05)
    # the inflow point carries the prescribed series: V_b there as well (not NaN)
    assert np.isfinite(ds["L_u_x"].values[-1]).all()


def test_float32_bounded_ensemble_with_boundary_errors_runs():
    u = sp.Function("u")(t, x)
    c = sp.Symbol("c")
    cls = NNModelBuilder(
        sp.Eq(u.diff(t), -c * u.diff(x)),
        "InflowAdvection32",
        accuracy=2,
        boundaries={"x": ("dirichlet", "outflow")},
    ).build()
    model = cls(shape=41, c=1.0, dtype="float32")
    times = np.arange(121) * 0.01
    boundary = {("u", "x", "low"): BoundaryErrors(1.0, 0.2, 0.1, seed=1)}
    result = EnsembleForecast(model, 20, chunks=7, progress=False).run(
        times, {"u": np.ones((20, 41))}, saved_times=times[-1:], boundary_errors=boundary
    )
    ds = result.to_dataset()
    assert np.isfinite(ds["L_u_x"].values).all() and ds["V_u"].values.min() > 0


def test_boundary_consistent_members_keep_the_covariance_and_match_the_inflow():
    """The conditioned initial members: member values at the inlet equal the inflow series at
    t = 0, and the covariance stays the prescribed one (checked on 4000 members, plain numpy:
    variance within 8 % and correlation with the inlet within 0.05)."""
    from pkf.sampling import BoundaryConsistentMembers, SeededMembers

    n, length = 101, 0.1
    x = np.arange(n) / (n - 1)
    variance = 0.5 * (1 + np.sin(np.pi * x) ** 2)
    members = SeededMembers(
        {"u": np.zeros(n)}, (n / (n - 1),), {"u": length}, {"u": variance}, seed=4
    )
    errors = BoundaryErrors(0.0, variance=0.5, time_scale=0.1, seed=9)
    times = np.linspace(0, 1, 11)
    draw = BoundaryConsistentMembers(
        members,
        {("u", "x", "low"): errors},
        times,
        x,
        {"u": np.zeros(n)},
        {"u": variance},
        {"u": length},
    )
    values = draw(0, 4000)["u"]
    np.testing.assert_allclose(values[:, 0], errors.values(times, 0, 4000)[0], atol=1e-12)
    np.testing.assert_allclose(values.var(0), variance, rtol=0.08)
    correlation = (values * values[:, :1]).mean(0) / np.sqrt(values.var(0) * values[:, 0].var())
    expected = np.exp(-(x**2) / (2 * length**2))
    np.testing.assert_allclose(correlation[:30], expected[:30], atol=0.05)
    np.testing.assert_array_equal(draw(10, 12)["u"], values[10:12])  # chunk-independent


def test_boundary_consistent_members_name_a_bad_side_or_a_missing_field():
    from pkf.sampling import BoundaryConsistentMembers

    errors = BoundaryErrors(0.0, variance=0.5, time_scale=0.1)
    x = np.linspace(0.0, 1.0, 11)
    fields = ({"u": x}, {"u": x}, {"u": 0.1})
    with pytest.raises(ValueError, match="middle"):
        BoundaryConsistentMembers(None, {("u", "x", "middle"): errors}, x, x, *fields)
    with pytest.raises(ValueError, match="'v'"):
        BoundaryConsistentMembers(None, {("v", "x", "low"): errors}, x, x, *fields)
