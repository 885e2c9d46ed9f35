"""Benchmark: ensembles and training sets in-process vs on a local Dask cluster.

In one run: a 1600-member Burgers ensemble (241 points, 500 RK4 steps, statistics at 6 times)
and a training set of ``--ensembles`` ensembles × 400 members (steps 400 → 500), each
in-process and on ``LocalCluster``s of 1 and 2 single-threaded worker processes; the times and
the ratios to in-process are printed, with a projection of the paper's 400 × 400 training set
on 16 and 64 workers from the measured time per ensemble task (ignoring the client's writing,
measured separately). Needs the ``distributed`` extra.

    python scripts/bench/cluster.py [--ensembles 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from cases.burgers import Settings, burgers_background, models  # noqa: E402
from pkf import EnsembleForecast, build_dataset, sample_errors  # noqa: E402
from pkf.cluster import local_cluster  # noqa: E402

MEMBERS, TRAINING_MEMBERS = 1600, 400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ensembles", type=int, default=40)
    args = parser.parse_args()
    settings = Settings()
    model, _ = models(settings)
    x = np.arange(settings.points) / settings.points
    members = {
        "u": 0.25 * (1 + np.cos(2 * np.pi * (x - 0.25)))
        + sample_errors(settings.points, 1.0, MEMBERS, 0.02, 0.005**2, seed=0)
    }
    times = np.arange(settings.steps + 1) * settings.dt
    saved = settings.saved_times
    dataset_options = dict(
        ensembles=args.ensembles,
        members=TRAINING_MEMBERS,
        background=burgers_background(),
        error_variance=0.005**2,
        correlation=0.02,
        dt=settings.dt,
        steps=settings.steps,
        window=(400, 500),
        seed=0,
        progress=False,
    )
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, workers in (("in-process", 0), ("1 worker", 1), ("2 workers", 2)):
            client = local_cluster(workers) if workers else None
            try:
                forecast = EnsembleForecast(
                    model, MEMBERS, chunks=400, progress=False, client=client
                )
                forecast.run(times, members, saved)  # warm-up: build and compile (workers too)
                start = time.perf_counter()
                forecast.run(times, members, saved)
                ensemble = time.perf_counter() - start
                path = Path(folder) / f"{workers}.nc"
                build_dataset(
                    path.with_suffix(".warm.nc"),
                    model,
                    client=client,
                    **{**dataset_options, "ensembles": max(2, workers)},
                )
                start = time.perf_counter()
                build_dataset(path, model, client=client, **dataset_options)
                dataset = time.perf_counter() - start
            finally:
                if client is not None:
                    cluster = client.cluster
                    client.close()
                    cluster.close()
            rows[label] = (ensemble, dataset)
    base = rows["in-process"]
    print(f"Burgers, {settings.points} points, {settings.steps} RK4 steps (2 cores here)")
    print(
        f"{'':14s} {MEMBERS}-member ensemble   {args.ensembles} x {TRAINING_MEMBERS} training set"
    )
    for label, (ensemble, dataset) in rows.items():
        print(
            f"  {label:12s} {ensemble:7.2f} s ({base[0] / ensemble:4.2f} x)      "
            f"{dataset:7.1f} s ({base[1] / dataset:4.2f} x)"
        )
    per_task = rows["1 worker"][1] / args.ensembles  # one worker: one ensemble at a time
    for workers in (16, 64):
        print(
            f"  projected 400 x 400 training set on {workers} workers: "
            f"{400 * per_task / workers:.0f} s (per-ensemble task {per_task:.3f} s)"
        )


if __name__ == "__main__":
    main()
