"""Training generated models: one-step-ahead and k-step rollout losses, repeated seeds.

The trainable weights are those of the model's step block (:meth:`GeneratedModel.step_model`):
trainable scalars and plugged closure models. Data are dicts of arrays, one per prognostic
field, shaped (samples, *grid); targets of rollouts are (samples, steps, *grid).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict, Unpack

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from .protocols import DType, TrainableModel
from .validation import finite_float, positive_int, real_array

__all__ = ["FitOptions", "Loss", "TrainingOptions", "fit_one_step", "fit_rollout", "repeat_fits"]

Arrays = Mapping[str, np.ndarray]

Loss = Literal["normalised", "increment", "mse"]
"""Training loss: per-field MSE divided by the field's variance over the targets, or raw MSE."""


class TrainingOptions(TypedDict, total=False):
    """Options of a fit (see :func:`fit_rollout` for their meaning and defaults)."""

    epochs: int
    batch_size: int
    learning_rate: float
    decay: float
    loss: Loss
    progress: bool


class FitOptions(TrainingOptions, total=False):
    """Options of one fit: the training options and the seed."""

    seed: int


def fit_one_step(
    model: TrainableModel,
    inputs: Arrays,
    targets: Arrays,
    dt: float,
    **options: Unpack[FitOptions],
) -> dict[str, list]:
    """Fit the model so that one time step maps ``inputs`` to ``targets``.

    Parameters
    ----------
    model : a generated model (with its closures plugged), or any
        :class:`generator.protocols.TrainableModel`.
    inputs, targets : field → (samples, *grid) arrays (the states at steps k and k + 1).
    dt : time step between inputs and targets (time units).
    **options : see :func:`fit_rollout` (epochs, batch_size, learning_rate, decay, seed,
        loss, progress).

    Returns
    -------
    history dict: ``loss`` (mean training loss per epoch), ``learning_rate`` per epoch and
    ``trainable_scalars`` (values after each epoch).
    """
    return _fit(model, inputs, targets, dt, steps=1, **options)


def fit_rollout(
    model: TrainableModel,
    inputs: Arrays,
    targets: Arrays,
    dt: float,
    steps: int,
    **options: Unpack[FitOptions],
) -> dict[str, list]:
    """Fit on k-step rollouts: ``targets[f]`` is (samples, steps, *grid).

    Options
    -------
    The keywords of :class:`FitOptions`.
    epochs : int (3); batch_size : int (32); learning_rate : float (0.1);
    decay : float, learning-rate factor applied after each epoch (0.1, as in the paper);
    seed : int (0), seeds shuffling and Keras initialisers; loss : ``"normalised"`` (per-field
    MSE divided by the field's variance over the targets, the default), ``"increment"``
    (per-field MSE divided by the variance of the increments ``targets - inputs``: for
    short steps, where the targets' own variance makes the loss, and the gradients, too small
    for Adam's epsilon) or ``"mse"`` (raw);
    progress : show a tqdm bar (True).
    """
    return _fit(model, inputs, targets, dt, steps=steps, **options)


def _fit(
    model: TrainableModel,
    inputs: Arrays,
    targets: Arrays,
    dt: float,
    steps: int,
    epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 0.1,
    decay: float = 0.1,
    seed: int = 0,
    loss: Loss = "normalised",
    progress: bool = True,
) -> dict[str, list]:
    names = model.prognostic_functions
    dt = finite_float(dt, "dt", "positive")
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    learning_rate = finite_float(learning_rate, "learning_rate", "positive")
    decay = finite_float(decay, "decay", "positive")
    x = _check_arrays(inputs, names, "inputs", model.dtype)
    y = _check_arrays(targets, names, "targets", model.dtype)
    samples = len(x[names[0]])
    if any(len(y[n]) != samples for n in names):
        raise ValueError("inputs and targets must hold the same number of samples")
    if loss not in ("normalised", "increment", "mse"):
        raise ValueError(f"loss must be 'normalised', 'increment' or 'mse', got {loss!r}")
    keras.utils.set_random_seed(seed)
    block = model.step_model(dt, steps=steps, return_sequence=steps > 1)
    weights = {n: _loss_weight(loss, x[n], y[n], steps) for n in names}
    batches_per_epoch = int(np.ceil(samples / batch_size))
    schedule = keras.optimizers.schedules.ExponentialDecay(
        learning_rate, decay_steps=batches_per_epoch, decay_rate=decay, staircase=True
    )
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    variables = block.trainable_variables
    if not variables:
        raise ValueError("the model has no trainable weights (trainable scalars or closures)")
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(samples, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            pred = block(xb, training=True)
            value = tf.add_n(
                [weights[n] * tf.reduce_mean(tf.square(pred[n] - yb[n])) for n in names]
            )
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))
        return value

    history: dict[str, list] = {"loss": [], "learning_rate": [], "trainable_scalars": []}
    for epoch in range(epochs):
        rate = float(schedule(epoch * batches_per_epoch))
        total = 0.0
        bar = tqdm(
            dataset,
            total=batches_per_epoch,
            disable=not progress,
            leave=False,
            desc=f"epoch {epoch + 1}/{epochs}",
        )
        for xb, yb in bar:
            value = float(train_step(xb, yb))
            if not np.isfinite(value):
                raise FloatingPointError(f"training loss became {value} in epoch {epoch + 1}")
            total += value
        history["loss"].append(total / batches_per_epoch)
        history["learning_rate"].append(rate)
        history["trainable_scalars"].append(model.trainable_scalars)
    return history


def _loss_weight(loss: Loss, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    """1 / the variance that normalises a field's MSE (see :func:`fit_rollout`)."""
    if loss == "mse":
        return 1.0
    spread = y - (x[:, None] if steps > 1 else x) if loss == "increment" else y
    return 1.0 / max(float(np.var(spread)), np.finfo(float).tiny)


def repeat_fits(
    make_model: Callable[[], TrainableModel],
    inputs: Arrays,
    targets: Arrays,
    dt: float,
    seeds: Sequence[int],
    steps: int = 1,
    start: Mapping[str, float] | None = None,
    **options: Unpack[TrainingOptions],
) -> dict[str, Any]:
    """Train fresh models with several seeds; mean and spread of the learned scalars.

    ``make_model()`` must return a new model (closures plugged, a
    :class:`generator.protocols.TrainableModel`) for each run. ``steps`` > 1
    trains on ``steps``-step rollouts (targets (samples, steps, *grid), as in
    :func:`fit_rollout`); ``start`` sets scalars (by name) before each run.

    Returns ``{"runs": [scalars per run], "mean": {...}, "std": {...}, "histories": [...]}``.
    """
    runs: list[dict[str, float]] = []
    histories: list[dict[str, list]] = []
    for seed in seeds:
        model = make_model()
        for name, value in (start or {}).items():
            model.set_constant(name, value)
        histories.append(_fit(model, inputs, targets, dt, steps=steps, seed=seed, **options))
        runs.append(model.trainable_scalars)
    names = list(runs[0]) if runs else []
    return {
        "runs": runs,
        "mean": {n: float(np.mean([r[n] for r in runs])) for n in names},
        "std": {n: float(np.std([r[n] for r in runs])) for n in names},
        "histories": histories,
    }


def _check_arrays(
    arrays: Arrays, names: Sequence[str], label: str, dtype: DType
) -> dict[str, np.ndarray]:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{label} lack field(s) {missing}; expected {list(names)}")
    checked = {}
    for name in names:
        array = real_array(arrays[name], f"{label}['{name}']", dtype)
        bad = np.count_nonzero(~np.isfinite(array))
        if bad:
            raise ValueError(f"{label}['{name}']: {bad} values are not finite")
        checked[name] = array
    return checked
