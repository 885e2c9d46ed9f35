"""Exact KF, EnKF and cycles of pkf.assimilation against plain-numpy references.

The discrete dynamics is constant-wind advection with second-order centred differences and
RK4; its propagator M is built here as a dense matrix, so the exact covariance forecast
M P M^T and the Kalman update are written independently of the package.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from pkf.assimilation import (
    EnKF,
    EnKFSetup,
    KalmanFilter,
    ObservationNetwork,
    Observations,
    gaspari_cohn,
    run_cycles,
)

N = 48
SPEED = 0.7
BACKGROUND = {"c": np.zeros(N), "V_c": np.ones(N), "s_c_xx": np.full(N, 0.15**2)}


@pytest.fixture(scope="module")
def models():
    from generator import NNModelBuilder
    from pkf import SymbolicPKF

    t, x, a = sp.symbols("t x a")
    c = sp.Function("c")(t, x)
    equation = sp.Eq(c.diff(t), -a * c.diff(x))
    tracer = NNModelBuilder(equation, "AssimilationAdvection").build()(
        shape=N, lengths=1.0, a=SPEED
    )
    pkf_class = NNModelBuilder(
        SymbolicPKF(equation).to_generator(form="aspect", closure="zero"), "AssimilationPKF"
    ).build()
    return tracer, pkf_class(shape=N, lengths=1.0, a=SPEED)


def propagator(steps: int, dt: float) -> np.ndarray:
    """Dense RK4 propagator of dc/dt = -a D c, D the centred periodic difference."""
    identity = np.eye(N)
    derivative = (np.roll(identity, 1, axis=1) - np.roll(identity, -1, axis=1)) * (N / 2)
    A = -SPEED * derivative
    k1 = A
    k2 = A @ (identity + dt / 2 * k1)
    k3 = A @ (identity + dt / 2 * k2)
    k4 = A @ (identity + dt * k3)
    return np.linalg.matrix_power(identity + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), steps)


def kalman_update(P, mean, points, values, R):
    PH = P[:, points]
    gain = PH @ np.linalg.inv(PH[points] + R * np.eye(len(points)))
    return mean + gain @ (values - mean[points]), P - gain @ PH.T


def test_kalman_filter_forecast_and_analysis_match_dense_numpy(models):
    tracer, _ = models
    kf = KalmanFilter.from_pkf_state(tracer, BACKGROUND)
    P0 = kf.covariance()
    times = np.arange(11) * 0.01
    kf.forecast(times)
    M = propagator(10, 0.01)
    np.testing.assert_allclose(kf.covariance(), M @ P0 @ M.T, atol=1e-12)
    points, values = np.array([3, 20, 21, 40]), np.array([0.5, -0.2, 0.3, 1.0])
    mean, P_a = kalman_update(kf.covariance(), np.zeros(N), points, values, 0.3)
    kf.assimilate(Observations("c", points, values, 0.3))
    np.testing.assert_allclose(kf.covariance(), P_a, atol=1e-12)
    np.testing.assert_allclose(kf.mean["c"], mean, atol=1e-12)
    np.testing.assert_allclose(kf.statistics().variance["c"], np.diag(P_a), atol=1e-12)


def test_serial_square_root_enkf_is_the_exact_update_of_its_sample_covariance(models):
    tracer, _ = models
    enkf = EnKF.from_pkf_state(tracer, BACKGROUND, members=30, seed=1)
    anomalies = enkf.anomalies()["c"]
    P = anomalies.T @ anomalies
    points, values = np.array([5, 6, 30]), np.array([1.0, 0.8, -0.5])
    mean, P_a = kalman_update(P, enkf.mean["c"], points, values, 0.2)
    enkf.assimilate(Observations("c", points, values, 0.2))
    after = enkf.anomalies()["c"]
    np.testing.assert_allclose(after.T @ after, P_a, atol=1e-12)
    np.testing.assert_allclose(enkf.mean["c"], mean, atol=1e-12)


def test_stochastic_enkf_mean_is_exact_and_covariance_within_sampling_noise(models):
    tracer, _ = models
    enkf = EnKF.from_pkf_state(tracer, BACKGROUND, members=4000, seed=2, variant="stochastic")
    anomalies = enkf.anomalies()["c"]
    P = anomalies.T @ anomalies
    points, values = np.array([10, 30]), np.array([1.0, -1.0])
    mean, P_a = kalman_update(P, enkf.mean["c"], points, values, 0.25)
    enkf.assimilate(Observations("c", points, values, 0.25))
    np.testing.assert_allclose(enkf.mean["c"], mean, atol=1e-12)  # centred perturbations
    after = enkf.anomalies()["c"]
    # 4000 members: relative sampling error of a covariance about sqrt(2 / 4000) = 2 %
    assert np.linalg.norm(after.T @ after - P_a) / np.linalg.norm(P_a) < 0.06


def test_localisation_and_inflation(models):
    tracer, _ = models
    enkf = EnKF.from_pkf_state(tracer, BACKGROUND, members=20, seed=3, localisation_radius=0.25)
    before = enkf.mean["c"].copy()
    enkf.assimilate(Observations("c", [24], [3.0], 0.1))
    increment = enkf.mean["c"] - before
    distance = np.abs(np.arange(N) - 24) / N
    assert np.abs(increment[distance >= 0.25]).max() < 1e-14 and abs(increment[24]) > 0.5
    inflated = EnKF.from_pkf_state(tracer, BACKGROUND, members=20, seed=4, inflation=1.2)
    variance = inflated.statistics().variance["c"]
    inflated.assimilate(Observations("c", [24], [0.0], 1e12))  # no information
    np.testing.assert_allclose(inflated.statistics().variance["c"], 1.44 * variance, rtol=1e-9)
    assert gaspari_cohn([0.0, 0.25, 0.3], 0.25).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="inflation: expected a factor >= 1"):
        EnKF.from_pkf_state(tracer, BACKGROUND, members=5, inflation=0.9)
    with pytest.raises(ValueError, match="variant: expected"):
        EnKF.from_pkf_state(tracer, BACKGROUND, members=5, variant="etkf")  # type: ignore[arg-type]


def test_filters_name_bad_input(models):
    tracer, _ = models
    kf = KalmanFilter.from_pkf_state(tracer, BACKGROUND)
    with pytest.raises(ValueError, match="unknown field 'q'"):
        kf.assimilate(Observations("q", [1], [0.0], 0.1))
    with pytest.raises(ValueError, match=r"index \(99,\) is off the grid"):
        kf.assimilate(Observations("c", [99], [0.0], 0.1))
    with pytest.raises(ValueError, match="columns: expected"):
        KalmanFilter(tracer, {"c": np.zeros(N)}, {"c": np.zeros((3, N + 1))})
    with pytest.raises(ValueError, match="members: expected the model's fields"):
        EnKF(tracer, {"u": np.zeros((4, N))})


@pytest.fixture(scope="module")
def cycles(models):
    tracer, pkf_model = models
    network = ObservationNetwork("c", np.arange(0, N, 6), 0.25)
    return run_cycles(
        tracer,
        pkf_model,
        BACKGROUND,
        network,
        window=0.1,
        cycles=2,
        dt=0.01,
        ensembles=[EnKFSetup(200, localisation_radius=0.5)],
        seed=5,
    )


def test_cycles_dataset_scores_and_distances(cycles):
    ds = cycles.dataset
    assert list(ds["filter"].values) == ["kf", "pkf", "pkf_order1", "enkf_200", "kf_projected"]
    assert ds["V_c"].dims == ("filter", "cycle", "stage", "x")
    assert ds["rmse_c"].shape == (5, 2, 2) and ds["obs_c"].shape == (2, 8)
    np.testing.assert_allclose(ds["time"], [0.1, 0.2])
    assert cycles.distances["kf"]["V_c"]["analysis"] == [0.0, 0.0]
    # First cycle: a homogeneous Gaussian forecast is of the model form, so the PKF analysis is
    # the exact one up to discretisation (measured V 0.03 %, L 3 %); at the second the
    # analysed correlations are not Gaussian (measured V 0.7 %, L 8 %).
    pkf = cycles.distances["pkf"]
    assert max(pkf["V_c"]["forecast"][0], pkf["V_c"]["analysis"][0]) < 0.005
    assert pkf["L_c_x"]["analysis"][0] < 0.05
    assert pkf["V_c"]["analysis"][1] < 0.03 and pkf["L_c_x"]["analysis"][1] < 0.15
    misfit = cycles.diagnostics["covariance_model_column_misfit"]
    assert misfit[0] < 0.02 < 0.1 < misfit[1]
    # 200 members: sampling noise of the variance about sqrt(2/200) = 10 % pointwise
    assert cycles.distances["enkf_200"]["V_c"]["analysis"][1] < 0.1
    # every filter's analysis RMSE is below its forecast RMSE at the first cycle
    assert (ds["rmse_c"].isel(cycle=0, stage=1) < ds["rmse_c"].isel(cycle=0, stage=0)).all()
    summary = cycles.summary()
    assert set(summary["spread_over_rmse"]) == {
        "kf",
        "pkf",
        "pkf_order1",
        "enkf_200",
        "kf_projected",
    }
    # The KF projected onto the covariance model before each analysis: at the first cycle the
    # forecast is of the model form (measured V 0.7 %, L 0.8 %: the factorisation's clipping);
    # at the second the projection discards the non-Gaussian analysed shape (V 1.4 %, L 2.2 %)
    projected = cycles.distances["kf_projected"]
    assert projected["V_c"]["analysis"][0] < 0.01 and projected["L_c_x"]["analysis"][0] < 0.015
    assert projected["L_c_x"]["analysis"][1] > 2 * projected["L_c_x"]["analysis"][0]
    tensor = summary["aspect_tensor_distance_to_kf"]
    assert tensor["kf"]["c"]["analysis"] == [0.0, 0.0]
    # in 1D the tensor distance is that of s_xx
    np.testing.assert_allclose(tensor["pkf"]["c"]["analysis"], pkf["s_c_xx"]["analysis"])


def test_run_cycles_names_bad_background(models):
    tracer, pkf_model = models
    with pytest.raises(ValueError, match="background: expected the PKF model's fields"):
        run_cycles(
            tracer, pkf_model, {"c": np.zeros(N)}, ObservationNetwork("c", [1], 1.0), 0.1, 1, 0.01
        )


def test_projection_onto_the_covariance_model(models):
    """After an analysis the covariance is no longer Gaussian; the projection replaces it by the
    heterogeneous Gaussian model of its own variance and length-scale (written here in numpy)."""
    tracer, _ = models
    kf = KalmanFilter.from_pkf_state(tracer, BACKGROUND)
    kf.assimilate(Observations("c", [5, 6, 30], [0.0, 0.0, 0.0], 0.2))
    P = kf.covariance()
    V = np.diag(P)
    rho = P / np.sqrt(np.outer(V, V))
    i, j = np.arange(N), (np.arange(N) + 1) % N
    k = (np.arange(N) - 1) % N
    metric = (rho[j, j] - rho[j, k] - rho[k, j] + rho[k, k]) * (N / 2) ** 2  # d_x d_x' rho
    s = 1.0 / metric
    d = ((i[:, None] - i[None, :] + N // 2) % N - N // 2) / N
    total = s[:, None] + s[None, :]
    model = np.sqrt(np.outer(V, V)) * np.outer(s, s) ** 0.25 / np.sqrt(total / 2)
    model *= np.exp(-(d**2) / total)
    assert np.linalg.norm(P - model) / np.linalg.norm(model) > 0.05  # not of the model form
    values = np.linalg.eigvalsh(model)
    dropped = -values[values < 0].sum() / values.sum()
    kf.project_onto_model()
    # the factorisation drops the model's negative spectral power (the shortest-displacement
    # Gaussian is not quite positive definite on a periodic domain): measured 0.17 %
    assert 0 < dropped < 0.01
    assert np.linalg.norm(kf.covariance() - model) / np.linalg.norm(model) < 3 * dropped + 1e-12
    np.testing.assert_allclose(kf.statistics().variance["c"], V, rtol=3 * dropped)


def test_run_cycles_refuses_inconsistent_setups_before_running(models):
    tracer, pkf_model = models
    network = ObservationNetwork("c", np.arange(0, N, 6), 0.25)

    def cycles(**changes):
        arguments = {
            "model": tracer,
            "pkf_model": pkf_model,
            "background": BACKGROUND,
            "networks": network,
            "window": 0.1,
            "cycles": 1,
            "dt": 0.01,
        }
        arguments.update(changes)
        return run_cycles(**arguments)

    with pytest.raises(ValueError, match="swapped"):
        cycles(model=pkf_model, pkf_model=tracer)
    with pytest.raises(ValueError, match="non-empty sequence"):
        cycles(networks=[])
    with pytest.raises(ValueError, match="unknown field 'q'"):
        cycles(networks=ObservationNetwork("q", [1], 0.25))
    with pytest.raises(ValueError, match=r"index \(60,\) is off the grid"):
        cycles(networks=ObservationNetwork("c", [60], 0.25))
    with pytest.raises(ValueError, match=r"labelled \['enkf_10'\]"):
        cycles(ensembles=[EnKFSetup(10), EnKFSetup(10, variant="stochastic")])
    other = type(pkf_model)(shape=N, lengths=1.0, a=2 * SPEED)
    with pytest.raises(ValueError, match="its 'a' differs from the model's"):
        cycles(pkf_model=other)


def test_kalman_filter_refuses_a_nonlinear_model():
    from generator import NNModelBuilder

    t, x = sp.symbols("t x")
    u = sp.Function("u")(t, x)
    burgers = NNModelBuilder(sp.Eq(u.diff(t), -u * u.diff(x)), "AssimilationBurgers").build()(
        shape=N
    )
    state = {"u": np.zeros(N), "V_u": np.ones(N), "s_u_xx": np.full(N, 0.15**2)}
    with pytest.raises(ValueError, match="AssimilationBurgers is not linear"):
        KalmanFilter.from_pkf_state(burgers, state)


def test_enkf_refuses_identical_members_and_says_none_for_no_localisation(models):
    tracer, _ = models
    with pytest.raises(ValueError, match="identical"):
        EnKF(tracer, {"c": np.zeros((10, N))})
    with pytest.raises(ValueError, match="or None for no localisation"):
        EnKF.from_pkf_state(tracer, BACKGROUND, members=10, localisation_radius=0.0)


def test_a_stopped_pkf_is_warned_about_and_recorded(models):
    tracer, pkf_model = models
    # a perfect observation (error variance 0) leaves zero variance: the PKF analysis stops
    network = ObservationNetwork("c", [10], 0.0)
    with pytest.warns(RuntimeWarning, match="pkf stopped at the analysis of cycle 1"):
        result = run_cycles(
            tracer, pkf_model, BACKGROUND, network, 0.1, 1, 0.01, orders=(2,), projected=False
        )
    assert result.failures["pkf"].startswith("cycle 1, analysis:")
    assert np.isnan(result.dataset["V_c"].sel(filter="pkf", stage="analysis")).all()
