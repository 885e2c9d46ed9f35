"""advection2d case, quick setting: outputs written and PKF within the ensemble's sampling noise.

Tolerances are loose because the quick ensemble has 100 members: the pointwise relative
sampling error of a variance is sqrt(2/100) ≈ 14 %, and the aspect tensor (inverse of a noisy
metric on a 61² grid where L = 6 dx) is noisier still (≈ 20-30 %). The PKF of advection is
closed, so its error against one ensemble should not exceed the difference between two
independent ensembles (which is about sqrt(2) times one ensemble's noise).
"""

import json

import pytest

from cases import advection2d

FIELDS = ("V", "s_xx", "s_xy", "s_yy")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("advection2d")
    return out, advection2d.run(out, quick=True, quiet=True)


@pytest.mark.slow
def test_quick_run_writes_netcdf_figures_and_summary(quick_run):
    xarray = pytest.importorskip("xarray")
    out, summary = quick_run
    for stem in ("advection2d_fields", "advection2d_anisotropy", "advection2d_errors"):
        assert (out / f"{stem}.png").stat().st_size > 0
        assert (out / f"{stem}.pdf").stat().st_size > 0
    assert json.loads((out / "summary.json").read_text())["case"] == "advection2d"
    with xarray.open_dataset(out / "advection2d.nc") as ds:
        assert ds["pkf_V"].dims == ("time", "x", "y")
        assert ds["pkf_V"].shape == ds["ens1_V"].shape == (5, 61, 61)
        assert ds["ens1_s_xy"].attrs["units"] == "1"
        assert "aspect" in ds["pkf_s_xy"].attrs["long_name"]
        assert ds["time"].values[-1] == pytest.approx(summary["saved_times"][-1])


@pytest.mark.slow
def test_quick_pkf_matches_ensemble_within_sampling_noise(quick_run):
    _, summary = quick_run
    final = summary["final_relative_l2_error"]
    noise = summary["final_ensemble_sampling_noise"]
    assert final["V"] < 0.25
    for key in ("s_xx", "s_xy", "s_yy"):
        assert final[key] < 0.4, key
    for key in FIELDS:
        assert final[key] < 1.2 * noise[key], key
    assert summary["relative_l2_error"]["s_xy"][0] is None  # PKF s_xy = 0 at t = 0
    assert len(summary["relative_l2_error"]["V"]) == len(summary["saved_times"])
