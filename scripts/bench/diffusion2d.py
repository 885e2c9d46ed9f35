"""Benchmark: generated network vs plain numpy on the paper's 2D diffusion (Fig. 4).

600 RK4 steps on 100×100, float64, both timed in this one process; prints the ratio.
Also times a 400-member batch through the same compiled forecast.

    python scripts/bench/diffusion2d.py [--steps 600] [--members 400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from cases.diffusion2d import build_model, diffusion_tensor, dirac, numpy_forecast, time_step  # noqa: E402


def best_of(repeat: int, function) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--members", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    shape = (100, 100)
    dt = time_step()
    times = np.arange(args.steps + 1) * dt
    u0 = dirac(shape)
    kappa = diffusion_tensor(shape)
    model = build_model(shape, dtype="float64")

    def network():
        return model.forecast(times, {"u": u0}, saved_times=[times[-1]])

    start = time.perf_counter()
    network()
    first = time.perf_counter() - start
    t_network = best_of(args.repeat, network)
    t_numpy = best_of(args.repeat, lambda: numpy_forecast(u0, kappa, (0.01, 0.01), dt, args.steps))
    print(f"2D diffusion, 100x100, {args.steps} RK4 steps, float64")
    print(f"  generated network : {t_network:8.3f} s  (first call incl. XLA compile {first:.2f} s)")
    print(f"  numpy reference   : {t_numpy:8.3f} s")
    print(f"  speed-up          : {t_numpy / t_network:8.2f} x  (target >= 3)")

    members = np.random.default_rng(0).normal(size=(args.members, *shape))

    def batch():
        return model.forecast(times, {"u": members}, saved_times=[times[-1]])

    batch()
    t_batch = best_of(1, batch)
    print(
        f"  {args.members} members in one batch: {t_batch:8.3f} s "
        f"({t_batch / args.members * 1e3:.1f} ms per member; "
        f"numpy single run x {args.members} would be {t_numpy * args.members:.0f} s)"
    )


if __name__ == "__main__":
    main()
