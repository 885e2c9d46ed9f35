"""Benchmark: the generated 2D diffusion network vs plain numpy, one member and batches.

Paper Figure 4 setting: heterogeneous diffusion on 100×100, 600 RK4 steps. Timed in this one
process (best of ``--repeat`` rounds, each round timing every configuration once) and printed
as ratios: the network vs the numpy reference for one
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


def interleaved_best(functions: dict, repeat: int) -> dict[str, float]:
    """Best time of each function over ``repeat`` rounds, each round timing every function once
    (a slow phase of a shared machine then hits all of them, not one line of the table)."""
    best = dict.fromkeys(functions, np.inf)
    for _ in range(repeat):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
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
    models = {dtype: build_model(shape, dtype=dtype) for dtype in ("float64", "float32")}
    rng = np.random.default_rng(0)
    batches = {m: {"u": rng.normal(size=(m, *shape))} for m in (8, 64)}

    def network(dtype: str, state: dict):
        return lambda: models[dtype].forecast(times, state, saved_times=times[-1])

    functions = {
        "numpy": lambda: numpy_forecast(u0, kappa, (0.01, 0.01), time_step(), args.steps),
        "float64": network("float64", {"u": u0}),
        "float32": network("float32", {"u": u0}),
        **{f"batch {m}": network("float64", batch) for m, batch in batches.items()},
    }
    first = {}
    for name, function in functions.items():  # first calls: compilation
        start = time.perf_counter()
        function()
        first[name] = time.perf_counter() - start
    best = interleaved_best(functions, args.repeat)
    print(
        f"2D diffusion, 100x100, {args.steps} RK4 steps (best of {args.repeat} interleaved rounds)"
    )
    print(f"  numpy reference (float64)        : {best['numpy']:8.3f} s")
    for dtype in ("float64", "float32"):
        print(
            f"  generated network, {dtype}, 1 member: {best[dtype]:8.3f} s  -> "
            f"{best['numpy'] / best[dtype]:5.2f} x numpy (first call incl. compile "
            f"{first[dtype]:.2f} s)"
        )
    for members in batches:
        elapsed = best[f"batch {members}"]
        per_member = elapsed / members
        print(
            f"  {members:2d} members in one call (float64): {elapsed:8.3f} s, "
            f"{per_member * 1e3:.1f} ms per member = {per_member / best['float64']:.2f} x "
            "one member alone"
        )


if __name__ == "__main__":
    main()
