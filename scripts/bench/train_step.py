"""Benchmark: one training epoch of the generated PKF-Burgers model vs a hand-written loop.

40 000 samples of (u, V, ν) on 241 points, batch 32, one-step-ahead loss through RK4, the
closure a ∂²ν/ν² + b/ν² + c (∂ν)²/ν³ with trainable (a, b, c). The baseline is a plain
``tf.function`` training step written here with ``tf.roll`` stencils. Both run in this process;
the ratio is generated / baseline (target <= 1.5).

    python scripts/bench/train_step.py [--samples 40000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402
import tensorflow as tf  # noqa: E402

from generator import NNModelBuilder, TrainableScalar  # noqa: E402
from generator.train import fit_one_step  # noqa: E402

N, DT, KAPPA = 241, 0.002, 0.0025


def pkf_burgers_equations():
    """Closed PKF-Burgers system in diffusion form (pkf-notes.md), closure coefficients a, b, c."""
    t, x = sp.symbols("t x")
    u, V, nu = (sp.Function(n)(t, x) for n in ("u", "V_u", "nu_u_xx"))
    a, b, c = (TrainableScalar(n, init=v) for n, v in (("a", 0.5), ("b", 0.5), ("c", -1.0)))
    k = sp.Symbol("kappa")

    def D(f, n=1):
        return sp.Derivative(f, x, n)

    e4 = a * D(nu, 2) / nu**2 + b / nu**2 + c * D(nu) ** 2 / nu**3
    return [
        sp.Eq(D(u, 0).diff(t), k * D(u, 2) - u * D(u) - D(V) / 2),
        sp.Eq(
            sp.Derivative(V, t),
            -k * V / nu + k * D(V, 2) - k * D(V) ** 2 / (2 * V) - u * D(V) - 2 * V * D(u),
        ),
        sp.Eq(
            sp.Derivative(nu, t),
            4 * k * nu**2 * e4
            - 3 * k * D(nu, 2)
            - k
            + 6 * k * D(nu) ** 2 / nu
            - 2 * k * nu * D(V, 2) / V
            + k * D(V) * D(nu) / V
            + 2 * k * nu * D(V) ** 2 / V**2
            - u * D(nu)
            + 2 * nu * D(u),
        ),
    ]


def samples(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = np.arange(N) / N
    phase = rng.uniform(0, 2 * np.pi, size=(count, 1))
    u = 0.25 * (1 + np.cos(2 * np.pi * xs + phase))
    V = 6.25e-6 * (1 + 0.5 * np.sin(2 * np.pi * xs + phase))
    nu = 2e-4 * (1 + 0.3 * np.cos(4 * np.pi * xs + phase))
    return {"u": u, "V_u": V, "nu_u_xx": nu}


def handwritten_step(variables):
    a, b, c = variables
    h = 1.0 / N

    def d1(f):
        return (tf.roll(f, -1, 1) - tf.roll(f, 1, 1)) / (2 * h)

    def d2(f):
        return (tf.roll(f, -1, 1) - 2 * f + tf.roll(f, 1, 1)) / h**2

    def trend(state):
        u, V, nu = state
        ux, Vx, nux, Vxx, nuxx = d1(u), d1(V), d1(nu), d2(V), d2(nu)
        e4 = a * nuxx / nu**2 + b / nu**2 + c * nux**2 / nu**3
        k = KAPPA
        return (
            k * d2(u) - u * ux - Vx / 2,
            -k * V / nu + k * Vxx - k * Vx**2 / (2 * V) - u * Vx - 2 * V * ux,
            4 * k * nu**2 * e4
            - 3 * k * nuxx
            - k
            + 6 * k * nux**2 / nu
            - 2 * k * nu * Vxx / V
            + k * Vx * nux / V
            + 2 * k * nu * Vx**2 / V**2
            - u * nux
            + 2 * nu * ux,
        )

    def step(state):
        def axpy(s, k, f):
            return tuple(si + f * ki for si, ki in zip(s, k, strict=True))

        k1 = trend(state)
        k2 = trend(axpy(state, k1, DT / 2))
        k3 = trend(axpy(state, k2, DT / 2))
        k4 = trend(axpy(state, k3, DT))
        return tuple(
            s + DT / 6 * (p + 2 * q + 2 * r + w)
            for s, p, q, r, w in zip(state, k1, k2, k3, k4, strict=True)
        )

    return step


def baseline_epoch(x, y, batch_size: int, weights) -> float:
    variables = [tf.Variable(v, dtype=tf.float64) for v in (0.5, 0.5, -1.0)]
    step = handwritten_step(variables)
    optimizer = keras.optimizers.Adam(learning_rate=0.1)
    names = list(x)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x["u"]), seed=0)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            pred = step(tuple(xb[n] for n in names))
            loss = tf.add_n(
                [
                    w * tf.reduce_mean(tf.square(p - yb[n]))
                    for n, p, w in zip(names, pred, weights, strict=True)
                ]
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    start = time.perf_counter()
    for xb, yb in dataset:
        float(train_step(xb, yb))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40_000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    cls = NNModelBuilder(pkf_burgers_equations(), "PKFBurgersBench").build()
    truth = cls(shape=N, kappa=KAPPA)
    for name, value in (("a", 1.0), ("b", 0.75), ("c", -2.0)):
        truth.set_constant(name, value)
    x = samples(args.samples)
    y = {n: np.asarray(v) for n, v in truth.step_model(DT)(x).items()}
    weights = [1.0 / np.var(y[n]) for n in x]

    model = cls(shape=N, kappa=KAPPA)
    start = time.perf_counter()
    fit_one_step(model, x, y, DT, epochs=1, batch_size=args.batch_size, progress=False)
    generated = time.perf_counter() - start
    baseline = baseline_epoch(x, y, args.batch_size, weights)
    batches = int(np.ceil(args.samples / args.batch_size))
    print(
        f"one epoch, {args.samples} samples of 3 x {N}, batch {args.batch_size} ({batches} steps)"
    )
    per_step = {k: v / batches * 1e3 for k, v in (("gen", generated), ("base", baseline))}
    print(f"  generated model (fit_one_step): {generated:7.2f} s  ({per_step['gen']:.2f} ms/step)")
    print(f"  hand-written tf.function loop : {baseline:7.2f} s  ({per_step['base']:.2f} ms/step)")
    print(f"  ratio generated / baseline    : {generated / baseline:7.2f}  (target <= 1.5)")
    print(f"  learned after 1 epoch: {model.trainable_scalars} (truth a=1, b=0.75, c=-2)")


if __name__ == "__main__":
    main()
