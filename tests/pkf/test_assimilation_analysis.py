"""PKF analysis (pkf.assimilation.analysis) against the exact Kalman update in plain numpy.

The forecast covariance is of the model form (P_f = the covariance model's dense matrix), so
the exact analysis is P_a = P_f - P_f H^T (H P_f H^T + R)^-1 H P_f. Variances, means and
cross-covariances of the PKF analysis are that update, to rounding. The analysed tensor is
compared with the metric diagnosed from P_a by centred differences of its correlation matrix
(written here, independently of the package): the difference is discretisation error, and it
shrinks at the order of the stencils when the grid is refined (measured below).
"""

from __future__ import annotations

import numpy as np
import pytest

from pkf.assimilation import AnalysisError, CovarianceModel, Observations, PKFState, analysis


def exact_update(P, points, values, mean, R):
    """Batch Kalman update of a dense covariance ``P`` (plain numpy)."""
    H = np.asarray(points)
    PH = P[:, H]
    gain = PH @ np.linalg.inv(PH[H] + R * np.eye(len(H)))
    return mean + gain @ (np.asarray(values) - mean[H]), P - gain @ PH.T


def dense_metric(P, shape, spacing, accuracy):
    """g_ij = d_i d_j' rho on the diagonal by centred differences of the correlation matrix."""
    weights = {2: {1: 0.5, -1: -0.5}, 4: {1: 2 / 3, -1: -2 / 3, 2: -1 / 12, -2: 1 / 12}}
    sigma = np.sqrt(np.diag(P))
    index = np.indices(shape).reshape(len(shape), -1)
    ndim = len(shape)
    metric = np.zeros((ndim, ndim, int(np.prod(shape))))
    for i in range(ndim):
        for j in range(ndim):
            for a, wa in weights[accuracy].items():
                for b, wb in weights[accuracy].items():
                    p, q = index.copy(), index.copy()
                    p[i] = (p[i] + a) % shape[i]
                    q[j] = (q[j] + b) % shape[j]
                    fp = np.ravel_multi_index(tuple(p), shape)
                    fq = np.ravel_multi_index(tuple(q), shape)
                    metric[i, j] += wa * wb * P[fp, fq] / (sigma[fp] * sigma[fq])
            metric[i, j] /= spacing[i] * spacing[j]
    return metric.reshape(ndim, ndim, *shape)


def tensor(state, prefix, field, coordinates):
    ndim = len(coordinates)
    out = np.empty((ndim, ndim, *state[field].shape))
    for i in range(ndim):
        for j in range(i, ndim):
            out[i, j] = out[j, i] = state[f"{prefix}_{field}_{coordinates[i]}{coordinates[j]}"]
    return out


def inverse(t):
    return np.moveaxis(np.linalg.inv(np.moveaxis(t, (0, 1), (-2, -1))), (-2, -1), (0, 1))


def state_1d(n, heterogeneous):
    x = np.arange(n) / n
    variance = 1 + 0.5 * np.sin(2 * np.pi * x) if heterogeneous else np.ones(n)
    length = 0.05 * (1 + 0.3 * np.cos(2 * np.pi * x)) if heterogeneous else np.full(n, 0.05)
    return {"c": np.sin(2 * np.pi * x), "V_c": variance, "s_c_xx": length**2}


def state_2d(n, heterogeneous):
    x, y = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    bump = (1 + 0.2 * np.cos(2 * np.pi * y)) if heterogeneous else 1.0
    s_xx = (0.2 * bump) ** 2 * np.ones((n, n))
    s_yy = (0.15 * (1 + 0.2 * np.sin(2 * np.pi * x)) if heterogeneous else 0.15) ** 2 * np.ones(
        (n, n)
    )
    s_xy = 0.4 * np.sqrt(s_xx * s_yy) * (1 + 0.3 * np.sin(2 * np.pi * (x + y)) * heterogeneous)
    variance = 1 + 0.3 * np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y) * heterogeneous
    return {"c": x * y, "V_c": variance, "s_c_xx": s_xx, "s_c_xy": s_xy, "s_c_yy": s_yy}


def single_observation_errors(state, point, accuracy, coordinates):
    """(max |V_pkf - V_kf|, full-tensor and update errors relative to the KF's)."""
    shape = state["c"].shape
    model = CovarianceModel(PKFState.from_mapping(state))
    P = model.matrix()
    flat = np.ravel_multi_index(point, shape)
    mean, P_a = exact_update(P, [flat], [1.0], state["c"].ravel(), 0.25)
    result = analysis(
        state, Observations("c", [point], [1.0], 0.25), order=2, accuracy=accuracy, lengths=1.0
    )
    spacing = tuple(1.0 / n for n in shape)
    g_kf, g_f = (
        dense_metric(P_a, shape, spacing, accuracy),
        dense_metric(P, shape, spacing, accuracy),
    )
    g_pkf = inverse(tensor(result, "s", "c", coordinates))
    g_state = inverse(tensor(state, "s", "c", coordinates))
    full = np.abs(g_pkf - g_kf).max() / np.abs(g_kf).max()
    update = np.abs((g_pkf - g_state) - (g_kf - g_f)).max() / np.abs(g_kf - g_f).max()
    v_error = max(
        np.abs(result["V_c"] - np.diag(P_a).reshape(shape)).max(),
        np.abs(result["c"] - mean.reshape(shape)).max(),
    )
    return v_error, full, update


@pytest.mark.parametrize("heterogeneous", [False, True])
def test_single_observation_1d_variance_exact_and_tensor_converges(heterogeneous):
    # Measured (accuracy 2, n = 100/200/400): full-tensor error 20/5.0/1.25 % homogeneous,
    # update error 46/10.9/2.7 % heterogeneous: second order (ratio 4 per halving of dx).
    errors = [
        single_observation_errors(state_1d(n, heterogeneous), (n // 3,), 2, "x")
        for n in (100, 200, 400)
    ]
    for v_error, _, _ in errors:
        assert v_error < 1e-12
    measured = [e[2] if heterogeneous else e[1] for e in errors]
    assert measured[-1] < 0.03
    for coarse, fine in zip(measured, measured[1:], strict=False):
        assert coarse / fine > 3.5  # second-order convergence


@pytest.mark.parametrize("heterogeneous", [False, True])
def test_single_observation_2d_anisotropic_variance_exact_and_tensor_converges(heterogeneous):
    # Accuracy 4 stencils, every component. Measured at n = 16/24/32/48 (length-scales 2.4 to
    # 9.6 dx): homogeneous full-tensor error 61/21/9.0/2.4 %, heterogeneous update error
    # 48/15/5.6/1.4 % (order about 3.3 on these coarse grids, 4 asymptotically).
    errors = [
        single_observation_errors(state_2d(n, heterogeneous), (n // 3, n // 2), 4, "xy")
        for n in (16, 32)
    ]
    for v_error, _, _ in errors:
        assert v_error < 1e-12
    measured = [e[2] if heterogeneous else e[1] for e in errors]
    assert measured[-1] < (0.08 if heterogeneous else 0.12)
    assert measured[0] / measured[1] > 5


def test_serial_processing_equals_the_batch_update_1d_and_3d():
    n = 80
    state = state_1d(n, True)
    points, values = [3, 10, 11, 40, 70], [0.2, -0.3, 0.1, 1.0, 0.0]
    P = CovarianceModel(PKFState.from_mapping(state)).matrix()
    mean, P_a = exact_update(P, points, values, state["c"], 0.3)
    result = analysis(state, Observations("c", points, values, 0.3), lengths=1.0)
    np.testing.assert_allclose(result["V_c"], np.diag(P_a), atol=1e-12)
    np.testing.assert_allclose(result["c"], mean, atol=1e-12)

    shape = (8, 8, 8)
    z = np.indices(shape)[2] / 8
    state3 = {
        "c": np.zeros(shape),
        "V_c": 1 + 0.2 * np.sin(2 * np.pi * z),
        "s_c_xx": np.full(shape, 0.2**2),
        "s_c_xy": np.full(shape, 0.01),
        "s_c_xz": np.full(shape, -0.005),
        "s_c_yy": np.full(shape, 0.25**2),
        "s_c_yz": np.full(shape, 0.0),
        "s_c_zz": np.full(shape, 0.15**2),
    }
    points3 = [(1, 2, 3), (5, 5, 5), (1, 2, 4)]
    P3 = CovarianceModel(PKFState.from_mapping(state3)).matrix()
    flat = [np.ravel_multi_index(p, shape) for p in points3]
    mean3, P3_a = exact_update(P3, flat, [1.0, 0.5, -1.0], state3["c"].ravel(), 0.1)
    result3 = analysis(state3, Observations("c", points3, [1.0, 0.5, -1.0], 0.1), lengths=1.0)
    np.testing.assert_allclose(result3["V_c"].ravel(), np.diag(P3_a), atol=1e-12)
    np.testing.assert_allclose(result3["c"].ravel(), mean3, atol=1e-12)
    # every one of the six components is updated and the tensor stays positive definite
    for pair in ("xx", "xy", "xz", "yy", "yz", "zz"):
        assert not np.allclose(result3[f"s_c_{pair}"], state3[f"s_c_{pair}"])
    eigen = np.linalg.eigvalsh(np.moveaxis(tensor(result3, "s", "c", "xyz"), (0, 1), (-2, -1)))
    assert (eigen > 0).all()


def test_order_2_3d_tensor_converges_to_the_metric_of_the_exact_analysis():
    # Accuracy 4, anisotropic (all six components), length-scales 0.25-0.3: measured
    # full-tensor error 92/53/33/21 % at n = 8/10/12/14 (2 to 4 dx: coarse, pre-asymptotic).
    def state(n):
        shape = (n, n, n)
        return {
            "c": np.zeros(shape),
            "V_c": np.ones(shape),
            "s_c_xx": np.full(shape, 0.3**2),
            "s_c_xy": np.full(shape, 0.3 * 0.3 * 0.25),
            "s_c_xz": np.full(shape, 0.0),
            "s_c_yy": np.full(shape, 0.25**2),
            "s_c_yz": np.full(shape, -0.2 * 0.25 * 0.27),
            "s_c_zz": np.full(shape, 0.27**2),
        }

    errors = [
        single_observation_errors(state(n), (n // 2, n // 3, n // 4), 4, "xyz") for n in (8, 12)
    ]
    assert all(e[0] < 1e-12 for e in errors)
    assert errors[1][1] < 0.4 and errors[0][1] / errors[1][1] > 2.5


def test_order_1_scales_the_metric_by_the_variance_ratio():
    state = state_2d(24, True)
    obs = Observations("c", [(3, 4), (10, 12)], [0.5, -0.5], 0.2)
    first = analysis(state, obs, order=1, lengths=1.0)
    second = analysis(state, obs, order=2, lengths=1.0)
    np.testing.assert_array_equal(first["V_c"], second["V_c"])
    expected = (state["V_c"] / first["V_c"]) * inverse(tensor(state, "s", "c", "xy"))
    np.testing.assert_allclose(inverse(tensor(first, "s", "c", "xy")), expected, rtol=1e-10)


def test_metric_and_diffusion_forms_give_the_same_analysis():
    state = state_2d(20, True)
    aspect = tensor(state, "s", "c", "xy")
    metric_state = {"c": state["c"], "V_c": state["V_c"]}
    diffusion_state = dict(metric_state)
    metric = inverse(aspect)
    for i, j, pair in ((0, 0, "xx"), (0, 1, "xy"), (1, 1, "yy")):
        metric_state[f"g_c_{pair}"] = metric[i, j]
        diffusion_state[f"nu_c_{pair}"] = aspect[i, j] / 2
    obs = Observations("c", [(5, 5)], [1.0], 0.25)
    reference = analysis(state, obs, lengths=1.0)
    from_metric = analysis(metric_state, obs, lengths=1.0)
    from_diffusion = analysis(diffusion_state, obs, lengths=1.0)
    assert set(from_metric) == set(metric_state) and set(from_diffusion) == set(diffusion_state)
    result_metric = inverse(tensor(from_metric, "g", "c", "xy"))
    np.testing.assert_allclose(result_metric, tensor(reference, "s", "c", "xy"), rtol=1e-10)
    np.testing.assert_allclose(
        2 * tensor(from_diffusion, "nu", "c", "xy"), tensor(reference, "s", "c", "xy"), rtol=1e-10
    )


def test_an_observation_of_A_corrects_B_through_the_cross_covariance():
    n = 90
    x = np.arange(n) / n
    variance_a = 1 - np.cos(2 * np.pi * x) / 2
    state = {
        "A": np.sin(2 * np.pi * x),
        "B": np.cos(2 * np.pi * x),
        "V_A": variance_a,
        "V_B": np.full(n, 0.25),
        "V_AB": -0.15 * (variance_a - 0.25),
        "s_A_xx": (0.1**2) * (1 + 0.2 * np.sin(2 * np.pi * x)),
        "s_B_xx": np.full(n, 0.06**2),
    }
    points, values = [10, 45, 46, 80], [0.3, -0.2, 0.1, 1.0]
    P = CovarianceModel(PKFState.from_mapping(state)).matrix()
    stacked = np.concatenate([state["A"], state["B"]])
    mean, P_a = exact_update(P, points, values, stacked, 0.25)
    result = analysis(state, Observations("A", points, values, 0.25), lengths=1.0)
    np.testing.assert_allclose(result["A"], mean[:n], atol=1e-12)
    np.testing.assert_allclose(result["B"], mean[n:], atol=1e-12)
    np.testing.assert_allclose(result["V_B"], np.diag(P_a)[n:], atol=1e-12)
    np.testing.assert_allclose(result["V_AB"], np.diag(P_a[:n, n:]), atol=1e-12)
    assert np.abs(result["B"] - state["B"]).max() > 0.01  # B was corrected
    assert not np.allclose(result["s_B_xx"], state["s_B_xx"])
    # without a cross-covariance, A's observations leave B alone
    independent = {k: v for k, v in state.items() if k != "V_AB"}
    alone = analysis(independent, Observations("A", points, values, 0.25), lengths=1.0)
    np.testing.assert_array_equal(alone["B"], state["B"])
    np.testing.assert_array_equal(alone["V_B"], state["V_B"])


def test_refit_equals_the_serial_update_for_one_observation_and_differs_for_several():
    state = state_1d(100, True)
    one = Observations("c", [30], [1.0], 0.25)
    np.testing.assert_allclose(
        analysis(state, one, refit=True, lengths=1.0)["s_c_xx"],
        analysis(state, one, lengths=1.0)["s_c_xx"],
        rtol=1e-13,
    )
    several = Observations("c", [30, 33], [1.0, 0.0], 0.25)
    assert not np.allclose(
        analysis(state, several, refit=True, lengths=1.0)["V_c"],
        analysis(state, several, lengths=1.0)["V_c"],
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Observations("c", [200], [1.0], 0.25, shape=(100,)),
            r"index \(200,\) is off the grid",
        ),
        (lambda: Observations("c", [3], [1.0], -0.1), "error_variance: must be finite and >= 0"),
        (lambda: Observations("c", [3, 4], [np.nan, 1.0], 0.1), "observation 0 .* not finite"),
        (lambda: Observations("c", [3.5], [1.0], 0.1), "indices: expected integer"),
        (lambda: Observations("c", [3, 4], [1.0], 0.1), "values: expected one value per"),
        (lambda: Observations("c", [], [], 0.1), "at least one observation"),
    ],
)
def test_bad_observations_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_analysis_input_is_named():
    state = state_1d(50, False)
    with pytest.raises(ValueError, match="unknown field 'q'"):
        analysis(state, Observations("q", [3], [1.0], 0.1), lengths=1.0)
    with pytest.raises(ValueError, match=r"index \(60,\) is off the grid of shape \(50,\)"):
        analysis(state, Observations("c", [60], [1.0], 0.1), lengths=1.0)
    with pytest.raises(ValueError, match="2D indices for a 1D grid"):
        analysis(state, Observations("c", [(1, 2)], [1.0], 0.1), lengths=1.0)
    with pytest.raises(ValueError, match="tensor component 's_c_xy' of field 'c' is missing"):
        analysis(
            {k: v for k, v in state_2d(20, False).items() if k != "s_c_xy"},
            Observations("c", [(1, 2)], [1.0], 0.1),
            lengths=1.0,
        )
    with pytest.raises(ValueError, match=r"state\['V_c'\]: variances must be > 0"):
        analysis({**state, "V_c": -state["V_c"]}, Observations("c", [3], [1.0], 0.1), lengths=1.0)
    with pytest.raises(ValueError, match="unknown entries"):
        analysis({**state, "extra": state["c"]}, Observations("c", [3], [1.0], 0.1), lengths=1.0)
    with pytest.raises(ValueError, match="order: expected 1 or 2"):
        analysis(state, Observations("c", [3], [1.0], 0.1), order=3, lengths=1.0)  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="variance of 'c' is <= 0"):
        analysis(state, Observations("c", [3], [1.0], 0.0), lengths=1.0)  # a perfect observation


def test_from_truth_draws_seeded_errors_with_the_given_variance():
    truth = {"c": np.zeros(5000)}
    obs = Observations.from_truth(truth, "c", np.arange(5000), 0.25, seed=3)
    again = Observations.from_truth(truth, "c", np.arange(5000), 0.25, seed=3)
    np.testing.assert_array_equal(obs.values, again.values)
    assert abs(obs.values.var() - 0.25) < 0.02  # 5000 draws: 2 % standard error
    with pytest.raises(ValueError, match="unknown field 'd'"):
        Observations.from_truth(truth, "d", [1], 0.25)
