"""advection2d case, quick setting: outputs written and PKF within the ensemble's sampling noise.

Tolerances are loose because the quick ensemble has 100 members: the pointwise relative
sampling error of a variance is sqrt(2/100) ≈ 14 %, and the aspect tensor (inverse of a noisy
metric on a 61² grid where L = 6 dx) is noisier still (≈ 20-30 %). The PKF of advection is
closed, so its error against one ensemble should not exceed the difference between two
independent ensembles (which is about sqrt(2) times one ensemble's noise).
"""

import json

import numpy as np
import pytest

from cases import advection2d
from cases.study import Output, make_settings, run_case
from generator.results import open_results

FIELDS = ("V_c", "s_c_xx", "s_c_xy", "s_c_yy")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("advection2d")
    settings = make_settings(advection2d, "quick")
    return out, run_case("advection2d", advection2d, settings, Output(out, quiet=True))


@pytest.mark.slow
def test_quick_run_writes_netcdf_figures_and_summary(quick_run):
    out, summary = quick_run
    for stem in ("advection2d_fields", "advection2d_anisotropy", "advection2d_errors"):
        assert (out / f"{stem}.png").stat().st_size > 0
        assert (out / f"{stem}.pdf").stat().st_size > 0
    assert json.loads((out / "summary.json").read_text())["case"] == "advection2d"
    with open_results(out / "advection2d.nc") as ds:
        assert ds["V_c"].dims == ("source", "time", "y", "x")  # CF order
        assert list(ds["source"].values) == [
            "pkf",
            "ensemble_1",
            "ensemble_2",
            "ensembles_pooled",
        ]
        assert ds["V_c"].shape == (4, 5, 61, 61)
        assert ds["s_c_xy"].attrs["units"] == "1"
        assert "aspect" in ds["s_c_xy"].attrs["long_name"]
        assert ds["time"].values[-1] == pytest.approx(summary["saved_times"][-1])
        assert ds["u"].dims == ("y", "x") and np.ptp(ds["u"].values) > 0  # the wind is stored
        # the file's numbers are the summary's: PKF vs ensemble 1 at the last time
        pkf, ens = ds["V_c"].sel(source="pkf"), ds["V_c"].sel(source="ensemble_1")
        last = float(np.linalg.norm(pkf[-1] - ens[-1]) / np.linalg.norm(ens[-1]))
        assert last == pytest.approx(summary["final_relative_l2_error"]["V_c"], rel=1e-12)


@pytest.mark.slow
def test_quick_pkf_matches_ensemble_within_sampling_noise(quick_run):
    _, summary = quick_run
    final = summary["final_relative_l2_error"]
    noise = summary["final_ensemble_sampling_noise"]
    assert final["V_c"] < 0.25
    for key in ("s_c_xx", "s_c_xy", "s_c_yy"):
        assert final[key] < 0.4, key
    for key in FIELDS:
        assert final[key] < 1.2 * noise[key], key
    assert summary["relative_l2_error"]["s_c_xy"][0] is None  # PKF s_xy = 0 at t = 0
    assert len(summary["relative_l2_error"]["V_c"]) == len(summary["saved_times"])
