"""Relative L2 errors used by every case summary."""

import numpy as np
import pytest

from cases.comparison import errors_by_time, relative_l2


def test_relative_l2_by_hand():
    # by hand: |(1, 0) - (1, 1)| / |(1, 1)| = 1/sqrt(2)
    assert relative_l2(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(2**-0.5)
    assert relative_l2(np.ones(3), np.zeros(3)) is None


def test_errors_by_time_skips_identically_zero_estimates():
    estimate = {"s_xy": np.array([[0.0, 0.0], [1.0, 1.0]])}
    reference = {"s_xy": np.array([[0.1, -0.1], [2.0, 2.0]])}
    assert errors_by_time(estimate, reference) == {"s_xy": [None, 0.5]}
    assert errors_by_time(estimate, reference, skip_zero=False)["s_xy"][0] == pytest.approx(1.0)
