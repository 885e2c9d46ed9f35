"""Benchmark: the generated 2D diffusion network vs plain numpy, one member and batches.

Paper Figure 4 setting: heterogeneous diffusion on 100×100, 600 RK4 steps. Timed in this one
process (best of ``--repeat``) and printed as ratios: the network vs the numpy reference for one
member (float64 and float32), and the cost per member of batches of 8 and 64 members forecast
in one call (the model runs them in cache-sized chunks) relative to one member alone.

    python scripts/bench/diffusion2d.py [--steps 600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from cases.diffusion2d import (  # noqa: E402
    build_model,
    diffusion_tensor,
    dirac,
    numpy_forecast,
    time_step,
)


def best_of(repeat: int, function) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    shape = (100, 100)
    times = np.arange(args.steps + 1) * time_step()
    u0 = dirac(shape)
    kappa = diffusion_tensor(shape)
    t_numpy = best_of(
        max(1, args.repeat // 2),
        lambda: numpy_forecast(u0, kappa, (0.01, 0.01), time_step(), args.steps),
    )
    print(f"2D diffusion, 100x100, {args.steps} RK4 steps")
    print(f"  numpy reference (float64)        : {t_numpy:8.3f} s")
    single = {}
    for dtype in ("float64", "float32"):
        model = build_model(shape, dtype=dtype)

        def network(model=model):
            return model.forecast(times, {"u": u0}, saved_times=times[-1])

        start = time.perf_counter()
        network()
        first = time.perf_counter() - start
        single[dtype] = best_of(args.repeat, network)
        print(
            f"  generated network, {dtype}, 1 member: {single[dtype]:8.3f} s  -> "
            f"{t_numpy / single[dtype]:5.2f} x numpy (first call incl. compile {first:.2f} s)"
        )
    model = build_model(shape, dtype="float64")
    rng = np.random.default_rng(0)
    for members in (8, 64):
        batch = {"u": rng.normal(size=(members, *shape))}

        def run(batch=batch):
            return model.forecast(times, batch, saved_times=times[-1])

        run()
        elapsed = best_of(max(1, args.repeat // 2), run)
        per_member = elapsed / members
        print(
            f"  {members:2d} members in one call (float64): {elapsed:8.3f} s, "
            f"{per_member * 1e3:.1f} ms per member = {per_member / single['float64']:.2f} x "
            "one member alone"
        )


if __name__ == "__main__":
    main()
