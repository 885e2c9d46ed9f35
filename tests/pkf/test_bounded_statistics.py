"""Ensemble statistics on bounded axes (issue 16, part 2).

References are plain numpy written here: centred differences of the normalised errors in the
interior, first-order one-sided differences at the ends of a bounded axis, NaN where the
variance is zero on a bounded side (and the one-sided difference away from such a point).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from generator import NNModelBuilder
from pkf import EnsembleForecast, sample_errors
from pkf.statistics import (
    MomentAccumulator,
    centred_difference,
    ensemble_statistics,
    metric_from_ensemble,
    moment_keys,
)

t, x, y = sp.symbols("t x y")


def plain_gradient_1d(eps: np.ndarray, dx: float) -> np.ndarray:
    """D eps along the last axis: centred inside, one-sided at the ends and next to NaN."""
    n = eps.shape[-1]
    out = np.full(eps.shape, np.nan)
    for p in range(n):
        here = eps[..., p]
        left = eps[..., p - 1] if p > 0 else None
        right = eps[..., p + 1] if p < n - 1 else None
        if np.isnan(here).any():
            continue
        has_left = left is not None and not np.isnan(left).any()
        has_right = right is not None and not np.isnan(right).any()
        if has_left and has_right:
            out[..., p] = (right - left) / (2 * dx)
        elif has_right:
            out[..., p] = (right - here) / dx
        elif has_left:
            out[..., p] = (here - left) / dx
    return out


def plain_metric_1d(members: np.ndarray, dx: float) -> np.ndarray:
    """``(members, n)`` -> ``(n,)``; NaN where V = 0."""
    errors = members - members.mean(axis=0)
    variance = (errors**2).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        eps = np.where(variance > 0, errors / np.sqrt(variance), np.nan)
    gradient = plain_gradient_1d(eps, dx)
    return (gradient**2).mean(axis=0)


def test_centred_difference_is_one_sided_at_the_ends_of_a_bounded_axis():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((3, 7, 9))
    d = centred_difference(f, (0.5, 0.2), 0, periodic=(False, True))
    assert np.array_equal(d[:, 1:-1], (f[:, 2:] - f[:, :-2]) / 1.0)
    assert np.array_equal(d[:, 0], (f[:, 1] - f[:, 0]) / 0.5)
    assert np.array_equal(d[:, -1], (f[:, -1] - f[:, -2]) / 0.5)
    along_y = centred_difference(f, (0.5, 0.2), 1, periodic=(False, True))
    assert np.array_equal(along_y, centred_difference(f, (0.5, 0.2), 1))  # y periodic


def test_periodic_default_is_unchanged_bit_for_bit():
    rng = np.random.default_rng(1)
    ens = rng.standard_normal((12, 10, 8))
    spacing = (0.1, 0.3)
    eps = (ens - ens.mean(0)) / ens.std(0)
    rolled = [(np.roll(eps, -1, a) - np.roll(eps, 1, a)) / (2 * spacing[a - 1]) for a in (1, 2)]
    old = np.array([[np.mean(gi * gj, axis=0) for gj in rolled] for gi in rolled])
    np.testing.assert_allclose(metric_from_ensemble(ens, spacing), old, rtol=1e-12)
    for periodic in (None, True, (True, True)):
        np.testing.assert_array_equal(
            metric_from_ensemble(ens, spacing, periodic=periodic),
            metric_from_ensemble(ens, spacing),
        )
        acc = MomentAccumulator(spacing, periodic=periodic).update(ens[:5]).update(ens[5:])
        plain = MomentAccumulator(spacing).update(ens[:5]).update(ens[5:])
        np.testing.assert_array_equal(acc.metric(), plain.metric())
    assert moment_keys(("u",), 2, (True, True)) == moment_keys(("u",), 2)


def test_bounded_1d_statistics_match_plain_numpy_with_one_sided_ends():
    rng = np.random.default_rng(2)
    members, n, dx = 40, 15, 0.25
    ens = 3.0 + rng.standard_normal((members, n)).cumsum(axis=1)  # correlated along x
    expected = plain_metric_1d(ens, dx)
    assert np.isfinite(expected).all()
    # the ends: E[((eps(1) - eps(0)) / dx)^2] and E[((eps(n-1) - eps(n-2)) / dx)^2]
    eps = (ens - ens.mean(0)) / ens.std(0)
    assert expected[0] == pytest.approx(np.mean(((eps[:, 1] - eps[:, 0]) / dx) ** 2), rel=1e-12)
    assert expected[-1] == pytest.approx(np.mean(((eps[:, -1] - eps[:, -2]) / dx) ** 2), rel=1e-12)
    metric = metric_from_ensemble(ens, dx, periodic=[False])
    np.testing.assert_allclose(metric[0, 0], expected, rtol=1e-12)
    stats = ensemble_statistics(ens, dx, periodic=[False])
    np.testing.assert_allclose(stats["length_scale"][0], 1 / np.sqrt(expected), rtol=1e-12)
    np.testing.assert_allclose(stats["aspect"][0, 0], 1 / expected, rtol=1e-12)
    acc = MomentAccumulator(dx, periodic=[False])
    for chunk in np.array_split(ens, 3):
        acc.update(chunk)
    np.testing.assert_allclose(acc.metric()[0, 0], expected, rtol=1e-10)
    np.testing.assert_allclose(acc.length_scale()[0], 1 / np.sqrt(expected), rtol=1e-10)
    # different from the periodic estimate at the ends only (no wrapped values)
    periodic = metric_from_ensemble(ens, dx)[0, 0]
    np.testing.assert_array_equal(periodic[1:-1], metric[0, 0, 1:-1])
    assert not np.isclose(periodic[0], metric[0, 0, 0])


def test_zero_variance_on_a_bounded_side_gives_nan_there_and_one_sided_next_to_it():
    rng = np.random.default_rng(3)
    ens = rng.standard_normal((30, 12)).cumsum(axis=1)
    ens[:, 0] = 1.5  # Dirichlet: every member has the exact boundary value
    ens[:, -1] = -0.5
    expected = plain_metric_1d(ens, 0.1)
    assert np.isnan(expected[[0, -1]]).all() and np.isfinite(expected[1:-1]).all()
    eps = (ens - ens.mean(0)) / np.where(ens.std(0) > 0, ens.std(0), np.nan)
    assert expected[1] == pytest.approx(np.mean(((eps[:, 2] - eps[:, 1]) / 0.1) ** 2))
    stats = ensemble_statistics(ens, 0.1, periodic=[False])
    np.testing.assert_allclose(stats["metric"][0, 0], expected, rtol=1e-12)
    acc = MomentAccumulator(0.1, periodic=[False]).update(ens[:7]).update(ens[7:])
    for name in ("metric", "aspect", "diffusion", "length_scale"):
        assert np.isnan(stats[name][..., [0, -1]]).all(), name
        assert np.isfinite(stats[name][..., 1:-1]).all(), name
        np.testing.assert_allclose(acc.statistics()[name], stats[name], rtol=1e-10)
    assert np.array_equal(stats["variance"][[0, -1]], [0.0, 0.0])
    with pytest.raises(ValueError, match="variance"):
        metric_from_ensemble(ens, 0.1)  # periodic: V = 0 raises as before


def test_zero_variance_inside_a_bounded_grid_still_raises():
    rng = np.random.default_rng(4)
    ens = rng.standard_normal((10, 9))
    ens[:, 4] = 2.0
    with pytest.raises(ValueError, match="away from the end points"):
        metric_from_ensemble(ens, 0.1, periodic=[False])
    with pytest.raises(ValueError, match="away from the end points"):
        MomentAccumulator(0.1, periodic=[False]).update(ens).metric()
    with pytest.raises(ValueError, match="periodic: expected one bool per grid axis"):
        metric_from_ensemble(ens, 0.1, periodic=[False, True])


def test_bounded_x_periodic_y_metric_matches_plain_numpy_and_the_accumulator():
    rng = np.random.default_rng(5)
    members, nx, ny, spacing = 25, 9, 8, (0.2, 0.5)
    ens = rng.standard_normal((members, nx, ny)).cumsum(axis=1).cumsum(axis=2)
    ens[:, 0, :] = 0.0  # a Dirichlet face at x = 0
    errors = ens - ens.mean(0)
    variance = (errors**2).mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        eps = np.where(variance > 0, errors / np.sqrt(variance), np.nan)
    gx = np.moveaxis(plain_gradient_1d(np.moveaxis(eps, 1, -1), spacing[0]), -1, 1)
    gy = (np.roll(eps, -1, 2) - np.roll(eps, 1, 2)) / (2 * spacing[1])
    expected = np.array(
        [[np.mean(a * b, axis=0) for b in (gx, gy)] for a in (gx, gy)]
    )  # NaN on the x = 0 face
    metric = metric_from_ensemble(ens, spacing, periodic=(False, True))
    np.testing.assert_allclose(metric, expected, rtol=1e-12)
    assert np.isnan(metric[:, :, 0]).all() and np.isfinite(metric[:, :, 1:]).all()
    acc = MomentAccumulator(spacing, periodic=(False, True))
    for chunk in np.array_split(ens, 4):
        acc.update(chunk)
    np.testing.assert_allclose(acc.metric(), expected, rtol=1e-10, equal_nan=True)
    aspect = acc.aspect()
    assert np.isnan(aspect[:, :, 0]).all() and np.isfinite(aspect[:, :, 1:]).all()


def test_bounded_heat_ensemble_dataset_matches_numpy_from_saved_members():
    """1D heat equation, Dirichlet at both ends with exact boundary values (V = 0 there)."""
    u = sp.Function("u")(t, x)
    kappa = sp.Symbol("kappa")
    Heat = NNModelBuilder(
        sp.Eq(u.diff(t), kappa * u.diff(x, 2)), "BoundedEnsembleHeat", boundaries={"x": "dirichlet"}
    ).build()
    n, members = 41, 60
    model = Heat(shape=n, kappa=2e-3, boundary_values={"x": (1.0, 0.5)})
    dx = model.dx[0]
    assert model.periodic_axes == (False,)
    errors = sample_errors(n, 1.0, members=members, correlation=0.1, variance=0.04, seed=6)
    background = np.linspace(1.0, 0.5, n)
    times = np.arange(51) * 0.2 * dx**2 / 2e-3
    engine = EnsembleForecast(model, members=members, chunks=25, save_members=True, progress=False)
    result = engine.run(times, {"u": background + errors}, saved_times=times[[0, 25, 50]])
    ds = result.to_dataset()
    saved = result.members["u"]  # (time, member, x)
    assert np.array_equal(saved[:, :, 0], np.ones((3, members)))  # projected at t0 too
    assert np.array_equal(saved[:, :, -1], np.full((3, members), 0.5))
    for k in range(3):
        expected = plain_metric_1d(saved[k], dx)
        np.testing.assert_allclose(ds["g_u_xx"].values[k], expected, rtol=1e-10, equal_nan=True)
        np.testing.assert_allclose(
            ds["L_u_x"].values[k], 1 / np.sqrt(expected), rtol=1e-10, equal_nan=True
        )
        np.testing.assert_allclose(ds["V_u"].values[k], saved[k].var(axis=0), rtol=1e-10, atol=0)
    for name in ("g_u_xx", "s_u_xx", "nu_u_xx", "L_u_x"):
        assert np.isnan(ds[name].values[:, [0, -1]]).all(), name
        assert np.isfinite(ds[name].values[:, 1:-1]).all(), name
    assert "one-sided" in ds.attrs["metric_estimator"]
    single = EnsembleForecast(model, members=members, progress=False).run(
        times, {"u": background + errors}, saved_times=times[[0, 25, 50]]
    )
    np.testing.assert_allclose(
        single.to_dataset()["g_u_xx"], ds["g_u_xx"], rtol=1e-12, equal_nan=True
    )


def test_netcdf_grid_attribute_describes_bounded_axes(tmp_path):
    from pkf.netcdf import NetCDFWriter, VariableSpec

    coords = {"x": np.linspace(0.0, 1.0, 5), "y": np.arange(4) / 4}
    spec = [VariableSpec("u", "1", "u", ("x", "y"))]
    writer = NetCDFWriter.create(
        tmp_path / "b.nc", spec, coords, equations="u", dt=0.1, seed=0, periodic=(False, True)
    )
    grid = writer.attributes["grid"]
    writer.close()
    assert grid == (
        "x: bounded, 5 points, dx = 0.25, from 0 to 1; y: periodic, 4 points, dy = 0.25, from 0"
    )
    periodic = NetCDFWriter.create(tmp_path / "p.nc", spec, coords, equations="u", dt=0.1, seed=0)
    assert periodic.attributes["grid"].startswith("periodic; x: 5 points")
    periodic.close()
