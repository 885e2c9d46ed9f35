"""Benchmark: batched Burgers ensemble with on-the-fly PKF statistics vs numpy and JAX.

Burgers ``u_t = -u u_x + kappa u_xx`` on 241 points, 400 members, 500 RK4 steps
(dt = 0.002, kappa = 0.0025), statistics (mean, V, metric) at every step; ``EnsembleForecast``,
a vectorised numpy loop and (when JAX is installed: ``pip install -e .[bench]``) a hand-written
JAX loop (``jit`` + ``lax.scan``, statistics inside) are timed in this one process and the
ratios printed. ``--dataset K`` also times ``build_dataset`` for K ensembles of the paper's
training set (K = 400: the whole set) with the peak resident memory of the process.

    python scripts/bench/ensemble_burgers.py [--repeat 5] [--dataset 40]
    python scripts/bench/ensemble_burgers.py --repeat 1 --dataset 400
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

from cases.burgers import burgers_background  # noqa: E402
from generator import NNModelBuilder  # noqa: E402
from pkf import EnsembleForecast, build_dataset, sample_errors  # noqa: E402

NX, LENGTH, KAPPA, DT, STEPS, MEMBERS = 241, 1.0, 0.0025, 0.002, 500, 400


def burgers_model():
    t, x, kappa = sp.symbols("t x kappa")
    u = sp.Function("u")(t, x)
    equation = sp.Eq(u.diff(t), -u * u.diff(x) + kappa * u.diff(x, 2))
    Burgers = NNModelBuilder([equation], class_name="Burgers").build()
    return Burgers(shape=NX, lengths=LENGTH, dtype="float64", kappa=KAPPA)


def numpy_ensemble(members: np.ndarray, dx: float) -> dict[str, np.ndarray]:
    """Vectorised numpy RK4 of all members at once, statistics at every step.

    Returns mean, V and the centred-difference metric g, each ``(STEPS + 1, NX)``.
    """

    def trend(u):
        up, um = np.roll(u, -1, axis=-1), np.roll(u, 1, axis=-1)
        return -u * (up - um) / (2 * dx) + KAPPA * (up - 2 * u + um) / dx**2

    def statistics(u):
        mean = u.mean(axis=0)
        error = u - mean
        variance = (error * error).mean(axis=0)
        eps = error / np.sqrt(variance)
        grad = (np.roll(eps, -1, axis=-1) - np.roll(eps, 1, axis=-1)) / (2 * dx)
        return mean, variance, (grad * grad).mean(axis=0)

    out = np.empty((3, STEPS + 1, members.shape[-1]))
    u = members.copy()
    out[:, 0] = statistics(u)
    for step in range(1, STEPS + 1):
        k1 = trend(u)
        k2 = trend(u + DT / 2 * k1)
        k3 = trend(u + DT / 2 * k2)
        k4 = trend(u + DT * k3)
        u = u + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out[:, step] = statistics(u)
    return {"mean": out[0], "variance": out[1], "metric": out[2]}


def jax_ensemble(dx: float):
    """The same loop hand-written in JAX (float64, jit + scan), or None without JAX."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)

    def trend(u):
        up, um = jnp.roll(u, -1, axis=-1), jnp.roll(u, 1, axis=-1)
        return -u * (up - um) / (2 * dx) + KAPPA * (up - 2 * u + um) / dx**2

    def statistics(u):
        mean = u.mean(axis=0)
        error = u - mean
        variance = (error * error).mean(axis=0)
        eps = error / jnp.sqrt(variance)
        grad = (jnp.roll(eps, -1, axis=-1) - jnp.roll(eps, 1, axis=-1)) / (2 * dx)
        return jnp.stack([mean, variance, (grad * grad).mean(axis=0)])

    def step(u, _):
        k1 = trend(u)
        k2 = trend(u + DT / 2 * k1)
        k3 = trend(u + DT / 2 * k2)
        k4 = trend(u + DT * k3)
        u = u + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return u, statistics(u)

    @jax.jit
    def run(u):
        _, stats = jax.lax.scan(step, u, None, length=STEPS)
        return jnp.concatenate([statistics(u)[None], stats])

    def call(members):
        out = np.asarray(run(jnp.asarray(members)))
        return {"mean": out[:, 0], "variance": out[:, 1], "metric": out[:, 2]}

    return call


def best_of(repeat: int, function) -> tuple[float, object]:
    best, value = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dataset", type=int, default=0, help="ensembles to build (0: skip)")
    args = parser.parse_args()

    model = burgers_model()
    x = np.arange(NX) * model.dx[0]
    background = 0.25 * (1 + np.cos(2 * np.pi * (x - 0.25)))
    errors = sample_errors(NX, LENGTH, MEMBERS, correlation=0.02, variance=0.005**2, seed=0)
    members = background + errors
    times = np.arange(STEPS + 1) * DT
    forecast = EnsembleForecast(model, members=MEMBERS, progress=False)

    def network():
        result = forecast.run(times, {"u": members})
        statistics = result.to_dataset(statistics=("mean", "variance", "metric"))
        return {
            "mean": statistics["u"].values,
            "variance": statistics["V_u"].values,
            "metric": statistics["g_u_xx"].values,
        }

    start = time.perf_counter()
    network()
    first = time.perf_counter() - start
    t_network, ours = best_of(args.repeat, network)
    t_numpy, reference = best_of(args.repeat, lambda: numpy_ensemble(members, model.dx[0]))
    agreement = max(
        float(np.abs(ours[k] - reference[k]).max() / np.abs(reference[k]).max()) for k in ours
    )
    print(f"Burgers ensemble: {NX} points, {MEMBERS} members, {STEPS} RK4 steps, stats every step")
    print(f"  EnsembleForecast : {t_network:8.3f} s  (first call incl. XLA compile {first:.2f} s)")
    print(f"  numpy RK4        : {t_numpy:8.3f} s  -> {t_numpy / t_network:5.2f} x")
    jax_run = jax_ensemble(model.dx[0])
    if jax_run is None:
        print("  JAX              : not installed (pip install -e .[bench])")
    else:
        jax_run(members)  # compile
        t_jax, theirs = best_of(args.repeat, lambda: jax_run(members))
        jax_agreement = max(
            float(np.abs(theirs[k] - reference[k]).max() / np.abs(reference[k]).max())
            for k in theirs
        )
        print(
            f"  JAX (jit + scan) : {t_jax:8.3f} s  -> {t_jax / t_network:5.2f} x  "
            f"(max relative difference to numpy {jax_agreement:.1e})"
        )
    print(f"  max relative difference of the statistics to numpy: {agreement:.1e}")

    if args.dataset:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "burgers.nc"
            start = time.perf_counter()
            build_dataset(
                path,
                model,
                ensembles=args.dataset,
                members=MEMBERS,
                background=burgers_background(),
                error_variance=0.005**2,
                correlation=0.02,
                dt=DT,
                steps=STEPS,
                window=(400, 500),
                seed=0,
                progress=False,
            )
            elapsed = time.perf_counter() - start
            size = path.stat().st_size / 2**20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        per_ensemble = elapsed / args.dataset
        print(f"build_dataset: {args.dataset} ensembles x {MEMBERS} members in {elapsed:.1f} s")
        print(f"  {per_ensemble:.3f} s per ensemble; file {size:.0f} MiB; peak RSS {peak:.2f} GiB")
        if args.dataset != 400:
            print(f"  extrapolated to 400 ensembles: {400 * per_ensemble:.0f} s")


if __name__ == "__main__":
    main()
