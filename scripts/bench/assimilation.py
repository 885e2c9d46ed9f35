"""Benchmark: the cost of one assimilation cycle, PKF vs EnKF (40, 400 members) vs exact KF.

The ``assimilation1d`` setup (tracer in a heterogeneous 1D wind, 241 points, window 0.1, an
observation every 10 points) or, with ``--case 2d``, the ``assimilation2d`` one (64², window
0.2, observations every 8 points). Every filter is warmed up (compiled) by one cycle, then one
cycle (forecast over the window + analysis) is timed ``--repeat`` times in this one process;
the median times are printed with their ratios to the PKF cycle, and the forecast alone is
compared with the forecast of one and of N members (the literature's claim to check: a PKF
forecast costs about as much as a few ensemble members).

    python scripts/bench/assimilation.py [--repeat 5] [--case 1d|2d]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pkf.assimilation import (  # noqa: E402
    EnKF,
    KalmanFilter,
    ObservationNetwork,
    PKFState,
    regular_network,
)
from pkf.assimilation.analysis_step import analysis_of_state  # noqa: E402


def setup(case: str):
    """Models, background, observation network, forecast times and the radii of the EnKFs."""
    if case == "1d":
        from cases.assimilation1d import build_models, wind

        n = 241
        model, pkf_model = build_models(n, "float64", 4)
        background = {"c": np.zeros(n), "V_c": np.ones(n), "s_c_xx": np.full(n, (10 / n) ** 2)}
        network = ObservationNetwork("c", np.arange(0, n, 10), 0.25)
        dt, window = (1 / n) / np.abs(wind(n)).max() / 6, 0.1
    else:
        from cases.advection2d import build_models, rotating_wind, time_step

        shape = (64, 64)
        model, pkf_model, _ = build_models(shape, (1.0, 1.0), "float64", 4)
        background = {
            "c": np.zeros(shape),
            "V_c": np.ones(shape),
            "s_c_xx": np.full(shape, 0.01),
            "s_c_xy": np.zeros(shape),
            "s_c_yy": np.full(shape, 0.01),
        }
        network = ObservationNetwork("c", regular_network(shape, 8), 0.25)
        dt, window = time_step(rotating_wind(shape), (1 / 64, 1 / 64)), 0.2
    steps = int(np.ceil(window / dt))
    return model, pkf_model, background, network, np.arange(steps + 1) * (window / steps)


def median_time(action, repeat: int) -> float:
    action()  # warm-up: compilation, caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--case", choices=("1d", "2d"), default="1d")
    args = parser.parse_args()
    model, pkf_model, background, network, times = setup(args.case)
    state = PKFState.from_mapping(background, model.lengths, model.coordinates)
    truth = {f: state.mean[f] for f in state.fields}
    observations = [network.observe(truth, np.random.default_rng(0))]

    def pkf_forecast():
        return PKFState.from_mapping(
            pkf_model.state_at(pkf_model.forecast(times, background, [times[-1]])),
            model.lengths,
            model.coordinates,
        )

    forecast_state = pkf_forecast()
    results: dict[str, float] = {}
    results["PKF forecast"] = median_time(pkf_forecast, args.repeat)
    results["PKF analysis"] = median_time(
        lambda: analysis_of_state(forecast_state, observations, 2, model.accuracy), args.repeat
    )
    results["PKF cycle"] = results["PKF forecast"] + results["PKF analysis"]
    one_member = {f: truth[f] for f in model.prognostic_functions}
    results["1 member forecast"] = median_time(
        lambda: model.forecast(times, one_member, [times[-1]]), args.repeat
    )
    for members, radius in ((40, 0.3), (400, 0.6)):
        enkf = EnKF.from_pkf_state(model, background, members, seed=1, localisation_radius=radius)
        start_members = dict(enkf.members)

        def forecast(enkf=enkf, start=start_members):
            enkf.members = dict(start)
            enkf.forecast(times)

        results[f"EnKF {members} forecast"] = median_time(forecast, args.repeat)
        forecast()
        forecast_members = dict(enkf.members)

        def analysis(enkf=enkf, start=forecast_members):
            enkf.members = dict(start)
            enkf.assimilate(observations)

        results[f"EnKF {members} analysis"] = median_time(analysis, args.repeat)
        results[f"EnKF {members} cycle"] = (
            results[f"EnKF {members} forecast"] + results[f"EnKF {members} analysis"]
        )
    kf = KalmanFilter.from_pkf_state(model, background)
    initial_columns, initial_mean = dict(kf.columns), dict(kf.mean)

    def kf_forecast():
        kf.columns, kf.mean = dict(initial_columns), dict(initial_mean)
        kf.forecast(times)

    results["exact KF forecast"] = median_time(kf_forecast, args.repeat)
    kf_forecast()
    forecast_columns, forecast_mean = dict(kf.columns), dict(kf.mean)

    def kf_analysis():
        kf.columns = {f: v.copy() for f, v in forecast_columns.items()}
        kf.mean = dict(forecast_mean)
        kf.assimilate(observations)

    results["exact KF analysis"] = median_time(kf_analysis, args.repeat)
    results["exact KF cycle"] = results["exact KF forecast"] + results["exact KF analysis"]

    grid = "x".join(map(str, model.shape))
    print(
        f"one assimilation cycle, {args.case} case ({grid} points, {len(times) - 1} RK4 steps, "
        f"{network.observe(truth, np.random.default_rng(0)).count} observations, KF rank "
        f"{kf.rank}); median of {args.repeat}"
    )
    base = results["PKF cycle"]
    for name, seconds in results.items():
        print(f"  {name:22s} {seconds * 1e3:10.2f} ms   {seconds / base:8.2f} x PKF cycle")
    member = results["1 member forecast"]
    print(
        f"PKF forecast = {results['PKF forecast'] / member:.1f} single-member forecasts; "
        f"EnKF 40 forecast = {results['EnKF 40 forecast'] / member:.1f}, EnKF 400 = "
        f"{results['EnKF 400 forecast'] / member:.1f} single-member forecasts"
    )


if __name__ == "__main__":
    main()
