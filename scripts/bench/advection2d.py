"""Benchmark: the advection2d case's PKF forecast and ensemble, before/after a code change.

The 241² rotating-wind tracer of ``cases/advection2d.py``: the closed PKF forecast (aspect form)
and an ensemble of ``--members`` members (400 in the case) to t = 1 with 5 saved times. With
``--baseline REV`` the same measurement also runs on the code of git revision ``REV`` (checked
out in a temporary worktree, run in a subprocess right after this one) and the ratios are
printed — the "before" of a performance change, measured in the same run.

    python scripts/bench/advection2d.py [--members 400] [--baseline 3caacf6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[2]

# Runs with this revision's code or an older one: only API common to both is used (and call
# sequences the old forecast loop survived: it failed on a second call with another number of
# saved times).
MEASURE = """
import json, sys, time
import numpy as np
from cases.advection2d import build_models, gaussian_bump, rotating_wind, time_step
from pkf import EnsembleForecast, sample_errors

members = int(sys.argv[1])
shape, lengths = (241, 241), (1.0, 1.0)
start = time.perf_counter()
tracer, pkf_model, _ = build_models(shape, lengths, "float64", 2)
build = time.perf_counter() - start
spacing = (1 / 241, 1 / 241)
steps = int(np.ceil(1.0 / time_step(rotating_wind(shape, lengths), spacing)))
times = np.arange(steps + 1) / steps
saved = times[np.unique(np.rint(np.linspace(0, steps, 5)).astype(int))]
state = {
    "c": gaussian_bump(shape, lengths),
    "V_c": np.ones(shape),
    "s_c_xx": np.full(shape, 0.01),
    "s_c_xy": np.zeros(shape),
    "s_c_yy": np.full(shape, 0.01),
}
pkf_model.forecast(times, state, saved_times=saved)  # compile (same call shape as timed)
best = []
for _ in range(3):
    start = time.perf_counter()
    pkf_model.forecast(times, state, saved_times=saved)
    best.append(time.perf_counter() - start)
errors = sample_errors(shape, lengths, members, 0.1, variance=1.0, seed=0)
initial = {"c": gaussian_bump(shape, lengths) + errors}
forecast = EnsembleForecast(tracer, members, progress=False)
forecast.run(times[:5], initial, saved_times=times[:5])  # compile: 5 saved times, as timed
start = time.perf_counter()
forecast.run(times, initial, saved_times=saved)
ensemble = time.perf_counter() - start
print(json.dumps({"steps": steps, "build": build, "pkf": min(best), "ensemble": ensemble}))
"""


def measure(members: int, source: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(members)],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"measurement failed in {source}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def best_rows(rows: list[dict]) -> dict:
    """Per key, the best (smallest) time over repeated measurements."""
    return {key: min(row[key] for row in rows) for key in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=400)
    parser.add_argument("--baseline", help="git revision to compare with (e.g. 3caacf6)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="measurements of each tree, alternated (best kept: a slow phase of a shared "
        "machine then hits both sides)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    sources = {"this tree": ROOT}
    with tempfile.TemporaryDirectory() as folder:
        if args.baseline:
            worktree = Path(folder) / "baseline"
            subprocess.run(
                ["git", "worktree", "add", "--detach", "-q", str(worktree), args.baseline],
                cwd=ROOT,
                check=True,
            )
            sources[f"revision {args.baseline}"] = worktree
        try:
            measured: dict[str, list[dict]] = {label: [] for label in sources}
            for _ in range(max(1, args.rounds)):
                for label, source in sources.items():
                    measured[label].append(measure(args.members, source))
        finally:
            if args.baseline:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False
                )
    rows = [(label, best_rows(values)) for label, values in measured.items()]
    now = rows[0][1]
    print(
        f"advection2d, 241x241, {int(now['steps'])} RK4 steps, {args.members} members "
        f"(best of {max(1, args.rounds)} alternated rounds)"
    )
    for label, row in rows:
        print(
            f"  {label:22s}: PKF forecast {row['pkf']:6.2f} s, ensemble {row['ensemble']:7.2f} s"
            f" ({row['ensemble'] / args.members * 1e3:.1f} ms per member)"
        )
    if len(rows) == 2:
        before = rows[1][1]
        print(
            f"  speed-up              : PKF forecast {before['pkf'] / now['pkf']:.2f} x, "
            f"ensemble {before['ensemble'] / now['ensemble']:.2f} x"
        )
    print(f"  (benchmark wall time {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
