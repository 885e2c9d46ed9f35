"""Relative L2 errors used by every case summary, on labelled results."""

import numpy as np
import pytest
import xarray as xr

from cases.comparison import errors_by_time, relative_l2, stack_sources


def test_relative_l2_by_hand():
    # by hand: |(1, 0) - (1, 1)| / |(1, 1)| = 1/sqrt(2)
    assert relative_l2(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(2**-0.5)
    assert relative_l2(np.ones(3), np.zeros(3)) is None


def dataset(values, dims=("time", "x")):
    return xr.Dataset({"s_xy": (dims, np.asarray(values))}, coords={"time": [0.0, 1.0]})


def test_errors_by_time_skips_identically_zero_estimates_and_matches_labels():
    estimate = dataset([[0.0, 0.0], [1.0, 1.0]])
    reference = dataset([[0.1, -0.1], [2.0, 2.0]])
    assert errors_by_time(estimate, reference, ["s_xy"]) == {"s_xy": [None, 0.5]}
    errors = errors_by_time(estimate, reference, ["s_xy"], skip_zero=False)
    assert errors["s_xy"][0] == pytest.approx(1.0)
    # a reference stored in another dimension order is compared point by point, not by position
    transposed = xr.Dataset(
        {"s_xy": (("x", "time"), np.array([[0.1, 2.0], [-0.1, 2.0]]))},
        coords={"time": [0.0, 1.0]},
    )
    assert errors_by_time(estimate, transposed, ["s_xy"]) == {"s_xy": [None, 0.5]}


def test_stack_sources_keeps_values_and_constants():
    a = dataset([[0.0, 1.0], [2.0, 3.0]]).assign(kappa=xr.DataArray(0.5))
    b = dataset([[4.0, 5.0], [6.0, 7.0]])
    stacked = stack_sources({"pkf": a, "ensemble": b}, ["s_xy"])
    np.testing.assert_array_equal(stacked["s_xy"].sel(source="ensemble"), b["s_xy"])
    assert stacked["kappa"].item() == 0.5
