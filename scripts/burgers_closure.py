"""Full-size Burgers closure study (issue 6): learned, theoretical and sparse closures.

On the paper's setup (400 ensembles x 400 members, steps 400 -> 500, dt = 0.002,
κ = 0.0025, 241 points) the study

1. builds (or resumes) the training set and trains the paper's 3-term closure
   a ∂x²ν/ν² + b/ν² + c (∂xν)²/ν³ one step ahead with ``--runs`` seeds (mean ± std vs the
   paper's (0.93, 0.75, −1.80) and the theory (1, 0.75, −2));
2. forecasts the PKF with the learned and the theoretical closures and compares u, V and
   L = sqrt(2ν) with a 6400-member reference ensemble at t = 0, 0.2, ..., 1 (relative L2);
3. fits the full 9-term dictionary (fields ν and V, derivative order ≤ 2, degree ≤ 2) by
   STLSQ on one-step tendencies of the same data (the residual of the ν equation once the
   known terms are removed; centred in time: fields at the midpoint of (k, k + 1), tendency
   (next − current) / dt), then forecasts the PKF with each selected closure;
4. repeats the 3-term learning with accuracy-4 stencils for the data (accuracy-4 Burgers
   ensembles) and the PKF model;
5. diagnoses the ensemble estimate of ν: the statistics use a second-order centred
   difference, which for a locally Gaussian correlation gives
   ν_est = dx² / (1 − exp(−dx²/ν)) ≈ ν + dx²/2; the 3-term closure is also fitted on data
   with this bias removed (ν = −dx² / log(1 − dx²/ν_est));
6. trains the 3-term closure on a dataset of the same size sampled over the whole forecast
   (steps 0 -> 500, 80 ensembles) instead of the paper's window, and forecasts with it;
7. refines the one-step coefficients with a 50-step rollout loss on that dataset (sequences
   every 25 steps): the one-step loss cannot see that V at t = 1 depends on b through the
   constant κ(4b − 1) of the ν equation, a 50-step rollout can.

Everything goes to ``--out`` as ``burgers_closure.json`` and ``burgers_closure.md``.

    python scripts/burgers_closure.py [--quick] [--out results/burgers_closure] [--runs 10]

Diagnostic (least-squares (a, b, c) versus the ensemble size, same backgrounds):

    python scripts/burgers_closure.py --members-sweep [--members 100 400 1600 6400]
        [--window 400 500] [--accuracy 2] [--sweep-ensembles 8]

``--quick`` runs all steps at a small scale (a few minutes); the datasets are resumable.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

from cases.burgers import (  # noqa: E402
    THEORY,
    Settings,
    burgers_equation,
    closed_pkf_equations,
    errors_vs_ensemble,
    forecast_fields,
    initial_state,
    pkf_equations,
    pkf_fields,
    reference_ensemble,
    training_set,
)

__all__ = [
    "PAPER",
    "debias_diffusion",
    "main",
    "members_sweep",
    "report_markdown",
    "rollout_sequences",
    "study",
]

PAPER = {"a": 0.93, "b": 0.75, "c": -1.80}
FIELDS = ("u", "V_u", "nu_u_xx")
#: Adam rate of the rollout fine-tuning (3 epochs, divided by 10 each): 0.1 blows up 50-step
#: rollouts from the initial guess, so the rollout starts from the one-step coefficients.
ROLLOUT_LEARNING_RATE = 3e-3
SLOT = "closure_u_x4"


def quick_settings() -> Settings:
    """Small scale of ``--quick``: 8 ensembles x 100 members, 800 reference members, 2 runs."""
    return Settings(ensembles=8, members=100, reference_members=800, batch_size=16, runs=2)


def debias_diffusion(nu: np.ndarray, dx: float) -> np.ndarray:
    """Undo the centred-difference bias of an ensemble ν for a locally Gaussian correlation.

    With ρ(r) = exp(−r²/(4ν)) the second-order centred difference gives
    g_est = (1 − ρ(2dx)) / (2dx²), i.e. ν_est = 1/(2 g_est) = dx² / (1 − exp(−dx²/ν)); the
    inverse is ν = −dx² / log(1 − dx²/ν_est) (ν_est is clipped above dx²).

    >>> nu = np.array([2e-4, 5e-5])
    >>> dx = 1 / 241
    >>> np.allclose(debias_diffusion(dx**2 / (1 - np.exp(-(dx**2) / nu)), dx), nu)
    True
    """
    ratio = np.minimum(dx**2 / np.asarray(nu, dtype=float), 1 - 1e-12)
    return -(dx**2) / np.log1p(-ratio)


def _midpoint_problem(
    rhs: sp.Expr, terms: Sequence[sp.Expr], data: dict, dt: float, dx: float, accuracy: int, kappa
) -> tuple[np.ndarray, np.ndarray]:
    """Features and target of the ν-equation residual, centred in time between k and k + 1."""
    from closures import residual_problem

    middle = {f: 0.5 * (data[f] + data[f"{f}_next"]) for f in FIELDS}
    tendency = (data["nu_u_xx_next"] - data["nu_u_xx"]) / dt
    return residual_problem(
        rhs,
        SLOT,
        terms,
        middle,
        tendency,
        dx,
        accuracy=accuracy,
        constants={"kappa": kappa},
    )


def rollout_sequences(
    data: dict, steps: int, stride: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """k-step rollout samples from a training set of consecutive one-step pairs.

    ``data`` holds, per sample, the fields, their ``*_next`` values and the ``ensemble`` and
    ``step`` indices (as written by ``build_dataset``). Each ensemble's steps are sorted and
    cut into sequences starting every ``stride`` steps. Returns ``inputs[f]`` (sequences,
    points) and ``targets[f]`` (sequences, ``steps``, points).
    """
    ensemble, step = np.asarray(data["ensemble"]), np.asarray(data["step"])
    order = np.lexsort((step, ensemble))
    count, length = len(np.unique(ensemble)), len(np.unique(step))
    if count * length != len(order) or length < steps:
        raise ValueError(
            f"need {steps} consecutive steps for every ensemble; got {len(order)} samples "
            f"for {count} ensembles x {length} steps"
        )
    starts = np.arange(0, length - steps + 1, stride)
    inputs, targets = {}, {}
    for f in FIELDS:
        now = np.asarray(data[f])[order].reshape(count, length, -1)
        after = np.asarray(data[f"{f}_next"])[order].reshape(count, length, -1)
        inputs[f] = now[:, starts].reshape(-1, now.shape[-1])
        windows = np.stack([after[:, starts + j] for j in range(steps)], axis=2)
        targets[f] = windows.reshape(-1, steps, now.shape[-1])
    return inputs, targets


def _coefficient_table(fits: dict) -> dict:
    return {"mean": fits["mean"], "std": fits["std"], "runs": fits["runs"]}


def study(
    out: str | Path,
    settings: Settings,
    *,
    accuracies: Sequence[int] = (2, 4),
    thresholds: Sequence[float] = (0.01, 0.05, 0.1),
    debias_runs: int = 3,
    trajectory_runs: int = 3,
    rollout_runs: int = 2,
    rollout_steps: int = 50,
    fit_stride: int = 1,
    seed: int = 0,
    dtype: str = "float64",
    progress: bool = True,
    say: Callable[..., None] = print,
) -> dict:
    """Run the whole study at the scale of ``settings``; returns (and writes) the results.

    Parameters
    ----------
    out : output folder (datasets ``training_acc{2,4}.nc``, ``burgers_closure.json``,
        ``burgers_closure.md``).
    settings : scale (``Settings.paper()`` for the full study); ``settings.runs`` seeds.
    accuracies : stencil accuracies studied; the first is the main one (sparse fit, ν bias).
    thresholds : STLSQ thresholds (each distinct selection is forecast).
    debias_runs : seeds of the training on bias-corrected ν (0 to skip).
    trajectory_runs : seeds of the training on a dataset of the same size sampled over the
        whole forecast (steps 0 -> ``settings.steps``, fewer ensembles) instead of the paper's
        window (0 to skip).
    rollout_runs : seeds of the ``rollout_steps``-step rollout training on that whole-forecast
        dataset, started from the one-step coefficients (0 to skip; needs ``trajectory_runs``).
    fit_stride : use every ``fit_stride``-th sample in the dictionary fits.
    """
    from closures import dictionary, fit_dictionary
    from generator import NNModelBuilder
    from generator.model import NonFiniteStateError
    from generator.train import repeat_fits
    from pkf.netcdf import read_netcdf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clock: dict[str, float] = {}
    tic = time.perf_counter()
    x, initial = initial_state(settings)
    dx = float(x[1] - x[0])
    saved = np.round(np.arange(6) * 0.2, 10)
    times = np.arange(settings.steps + 1) * settings.dt
    seeds = [seed + k for k in range(settings.runs)]
    _, term, nu, variance = pkf_fields()
    slot_rhs = pkf_fields()[0].to_generator(form="diffusion")[-1].rhs
    terms = dictionary(term, [nu, variance], pkf_fields()[0], 2, 2)
    xs = sp.Symbol("x")
    paper_terms = [nu.diff(xs, 2) / nu**2, 1 / nu**2, nu.diff(xs) ** 2 / nu**3]
    results: dict = {
        "settings": asdict(settings),
        "accuracies": list(accuracies),
        "saved_times": saved.tolist(),
        "theory": THEORY,
        "paper": PAPER,
        "dictionary": [str(t) for t in terms],
        "by_accuracy": {},
    }

    def pkf_model(equations: list, name: str, accuracy: int):
        cls = NNModelBuilder(equations, name, accuracy=accuracy).build()
        return lambda: cls(shape=settings.points, dtype=dtype, kappa=settings.kappa)

    def try_forecast(make: Callable, values: dict | None, reference: dict) -> dict:
        model = make()
        for name, value in (values or {}).items():
            model.set_constant(name, value)
        try:
            fields = forecast_fields(model, times, initial, saved)
        except NonFiniteStateError as error:
            return {"diverged": str(error)}
        return errors_vs_ensemble(fields, reference)

    for accuracy in accuracies:
        entry: dict = {}
        results["by_accuracy"][str(accuracy)] = entry
        start = time.perf_counter()
        burgers = NNModelBuilder(burgers_equation(), f"Burgers1DAcc{accuracy}", accuracy=accuracy)
        burgers = burgers.build()(shape=settings.points, dtype=dtype, kappa=settings.kappa)
        say(
            f"[acc {accuracy}] training set: {settings.ensembles} ensembles x "
            f"{settings.members} members"
        )
        path = training_set(
            out / f"training_acc{accuracy}.nc", burgers, settings, seed, progress=progress
        )
        data = {k: np.asarray(v) for k, v in read_netcdf(path).items() if k in _DATA_KEYS}
        entry["dataset"] = str(path)
        entry["samples"] = int(len(data["u"]))
        clock[f"dataset_acc{accuracy}"] = time.perf_counter() - start

        start = time.perf_counter()
        say(f"[acc {accuracy}] learning (a, b, c): {len(seeds)} runs on {entry['samples']} pairs")
        trainable = pkf_model(pkf_equations(), f"PKFBurgersAcc{accuracy}", accuracy)
        options = {"epochs": settings.epochs, "batch_size": settings.batch_size}
        fits = repeat_fits(
            trainable,
            {f: data[f] for f in FIELDS},
            {f: data[f"{f}_next"] for f in FIELDS},
            settings.dt,
            seeds=seeds,
            progress=progress,
            **options,
        )
        entry["one_step"] = _coefficient_table(fits)
        entry["loss_histories"] = [h["loss"] for h in fits["histories"]]
        clock[f"training_acc{accuracy}"] = time.perf_counter() - start
        say(f"[acc {accuracy}] learned " + _format_coefficients(fits["mean"], fits["std"]))

        start = time.perf_counter()
        subset = {k: v[::fit_stride] for k, v in data.items()}
        features, target = _midpoint_problem(
            slot_rhs, terms, subset, settings.dt, dx, accuracy, settings.kappa
        )
        three = fit_dictionary(paper_terms, features[..., [1, 0, 3]], target)
        entry["lstsq_3_terms"] = dict(zip("abc", map(float, three.coefficients), strict=True))
        entry["lstsq_3_terms_residual"] = three.relative_residual
        full = fit_dictionary(terms, features, target)
        entry["lstsq_full"] = {
            "coefficients": [float(c) for c in full.coefficients],
            "relative_residual": full.relative_residual,
        }
        sparse = [fit_dictionary(terms, features, target, "stlsq", t) for t in thresholds]
        entry["stlsq"] = [
            {
                "threshold": t,
                "selected": [str(s) for s in fit.selected],
                "coefficients": [float(c) for c in fit.coefficients],
                "relative_residual": fit.relative_residual,
                "expression": str(fit.expression),
            }
            for t, fit in zip(thresholds, sparse, strict=True)
        ]
        if accuracy == accuracies[0]:
            debiased = dict(subset)
            for f in ("nu_u_xx", "nu_u_xx_next"):
                debiased[f] = debias_diffusion(subset[f], dx)
            features_d, target_d = _midpoint_problem(
                slot_rhs, terms, debiased, settings.dt, dx, accuracy, settings.kappa
            )
            fit_d = fit_dictionary(paper_terms, features_d[..., [1, 0, 3]], target_d)
            entry["lstsq_3_terms_debiased"] = dict(
                zip("abc", map(float, fit_d.coefficients), strict=True)
            )
            del features_d, target_d
        del features, target
        clock[f"dictionary_fits_acc{accuracy}"] = time.perf_counter() - start
        say(f"[acc {accuracy}] least squares (3 terms) {entry['lstsq_3_terms']}")
        for item in entry["stlsq"]:
            say(f"[acc {accuracy}] STLSQ {item['threshold']}: {item['expression']}")

        if debias_runs and accuracy == accuracies[0]:
            start = time.perf_counter()
            say(f"[acc {accuracy}] learning (a, b, c) on bias-corrected ν: {debias_runs} runs")
            corrected = {
                f: debias_diffusion(data[f], dx) if f.startswith("nu") else data[f]
                for f in (*FIELDS, *(f"{f}_next" for f in FIELDS))
            }
            fits_d = repeat_fits(
                trainable,
                {f: corrected[f] for f in FIELDS},
                {f: corrected[f"{f}_next"] for f in FIELDS},
                settings.dt,
                seeds=seeds[:debias_runs],
                progress=progress,
                **options,
            )
            entry["one_step_debiased"] = _coefficient_table(fits_d)
            clock[f"training_debiased_acc{accuracy}"] = time.perf_counter() - start
            say(f"[acc {accuracy}] debiased " + _format_coefficients(fits_d["mean"], fits_d["std"]))
            del corrected
        del data, subset

        if trajectory_runs and accuracy == accuracies[0]:
            start = time.perf_counter()
            whole = replace(
                settings,
                window=(0, settings.steps),
                ensembles=max(1, entry["samples"] // settings.steps),
            )
            say(
                f"[acc {accuracy}] learning (a, b, c) on steps 0 -> {settings.steps}: "
                f"{whole.ensembles} ensembles, {trajectory_runs} runs"
            )
            path = training_set(
                out / f"training_acc{accuracy}_w0-{settings.steps}.nc",
                burgers,
                whole,
                seed,
                progress=progress,
            )
            raw = read_netcdf(path)
            data = {k: np.asarray(v) for k, v in raw.items() if k in _DATA_KEYS}
            fits_w = repeat_fits(
                trainable,
                {f: data[f] for f in FIELDS},
                {f: data[f"{f}_next"] for f in FIELDS},
                settings.dt,
                seeds=seeds[:trajectory_runs],
                progress=progress,
                **options,
            )
            entry["one_step_whole_trajectory"] = {
                "ensembles": whole.ensembles,
                "samples": int(len(data["u"])),
                **_coefficient_table(fits_w),
            }
            clock[f"training_whole_trajectory_acc{accuracy}"] = time.perf_counter() - start
            say(
                f"[acc {accuracy}] whole trajectory "
                + _format_coefficients(fits_w["mean"], fits_w["std"])
            )
            del data
            if rollout_runs:
                start = time.perf_counter()
                inputs, targets = rollout_sequences(raw, rollout_steps, rollout_steps // 2)
                say(
                    f"[acc {accuracy}] {rollout_steps}-step rollout training on "
                    f"{len(inputs['u'])} sequences, {rollout_runs} runs"
                )
                fits_r = repeat_fits(
                    trainable,
                    inputs,
                    targets,
                    settings.dt,
                    seeds=seeds[:rollout_runs],
                    steps=rollout_steps,
                    start=fits["mean"],
                    epochs=3,
                    batch_size=8,
                    learning_rate=ROLLOUT_LEARNING_RATE,
                    progress=progress,
                )
                entry["rollout"] = {
                    "steps": rollout_steps,
                    "sequences": int(len(inputs["u"])),
                    "start": fits["mean"],
                    **_coefficient_table(fits_r),
                    "loss_histories": [h["loss"] for h in fits_r["histories"]],
                }
                clock[f"training_rollout_acc{accuracy}"] = time.perf_counter() - start
                say(
                    f"[acc {accuracy}] rollout "
                    + _format_coefficients(entry["rollout"]["mean"], entry["rollout"]["std"])
                )
                del inputs, targets
            del raw

        start = time.perf_counter()
        say(f"[acc {accuracy}] reference ensemble of {settings.reference_members} members")
        result = reference_ensemble(burgers, settings, seed, saved, progress=progress)
        reference = {
            "u": result.mean("u"),
            "V": result.variance("u"),
            "L": np.sqrt(2 * result.diffusion("u")[:, 0, 0]),
        }
        clock[f"reference_acc{accuracy}"] = time.perf_counter() - start

        start = time.perf_counter()
        fixed = pkf_model(pkf_equations(THEORY), f"PKFBurgersFixedAcc{accuracy}", accuracy)
        closures = {"learned": (trainable, fits["mean"]), "theory": (fixed, None)}
        closures["lstsq_3_terms"] = (trainable, entry["lstsq_3_terms"])
        # sensitivity: the constant of the ν equation is κ(4b − 1), so V depends strongly on b
        closures["learned_b=0.75"] = (trainable, {**fits["mean"], "b": THEORY["b"]})
        if accuracy == accuracies[0]:
            closures["paper"] = (trainable, PAPER)
        if "one_step_whole_trajectory" in entry:
            closures["learned_whole_trajectory"] = (
                trainable,
                entry["one_step_whole_trajectory"]["mean"],
            )
        if "rollout" in entry:
            closures["learned_rollout"] = (trainable, entry["rollout"]["mean"])
        forecasts = {label: try_forecast(m, v, reference) for label, (m, v) in closures.items()}
        distinct: dict[str, str] = {}
        for t, fit in zip(thresholds, sparse, strict=True):
            key = ",".join(str(s) for s in fit.selected)
            if key in distinct:
                forecasts[f"stlsq_{t}"] = {"same_as": distinct[key], **forecasts[distinct[key]]}
                continue
            distinct[key] = f"stlsq_{t}"
            if not fit.selected:
                forecasts[f"stlsq_{t}"] = {"diverged": "no term selected"}
                continue
            make = pkf_model(
                closed_pkf_equations(fit.expression), f"PKFBurgersSparse{len(distinct)}", accuracy
            )
            forecasts[f"stlsq_{t}"] = try_forecast(make, None, reference)
        entry["relative_l2_vs_reference"] = forecasts
        clock[f"pkf_forecasts_acc{accuracy}"] = time.perf_counter() - start
        for label, value in forecasts.items():
            say(f"[acc {accuracy}] {label:14s} {_format_errors(value)}")

    clock["total"] = time.perf_counter() - tic
    results["seconds"] = clock
    (out / "burgers_closure.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "burgers_closure.md").write_text(report_markdown(results))
    say(f"wrote {out / 'burgers_closure.json'} and {out / 'burgers_closure.md'}")
    return results


_DATA_KEYS = {*FIELDS, *(f"{f}_next" for f in FIELDS)}


def members_sweep(
    out: str | Path,
    settings: Settings,
    members: Sequence[int] = (100, 400, 1600, 6400),
    ensembles: int = 8,
    accuracy: int = 2,
    seed: int = 0,
    progress: bool = True,
    say: Callable[..., None] = print,
) -> dict:
    """(a, b, c) by least squares on the ν tendencies versus the ensemble size.

    The same ``ensembles`` backgrounds (same seeds) are run with each member count; with
    sampling noise in ν (variance ∝ 1/N) the derivative features ∂x²ν/ν², (∂xν)²/ν³ are
    noisy inputs, so a regression bias that shrinks with N points to sampling noise, one
    that does not to the closure itself (or the ν estimator).  Writes ``members_sweep.json``.
    """
    from generator import NNModelBuilder
    from pkf.netcdf import read_netcdf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, initial = initial_state(settings)
    dx = float(x[1] - x[0])
    pkf, _, nu, _ = pkf_fields()
    rhs = pkf.to_generator(form="diffusion")[-1].rhs
    xs = sp.Symbol("x")
    terms = [nu.diff(xs, 2) / nu**2, 1 / nu**2, nu.diff(xs) ** 2 / nu**3]
    burgers = NNModelBuilder(burgers_equation(), f"Burgers1DSweep{accuracy}", accuracy=accuracy)
    burgers = burgers.build()(shape=settings.points, kappa=settings.kappa)
    from closures import fit_dictionary

    first, stop = settings.window
    rows = []
    for count in members:
        start = time.perf_counter()
        path = training_set(
            out / f"sweep_acc{accuracy}_e{ensembles}_n{count}_w{first}-{stop}.nc",
            burgers,
            settings,
            seed,
            progress=progress,
            ensembles=ensembles,
            members=count,
        )
        data = {k: np.asarray(v) for k, v in read_netcdf(path).items() if k in _DATA_KEYS}
        row: dict = {"members": int(count), "samples": int(len(data["u"]))}
        for label, values in (("raw", data), ("debiased", None)):
            if values is None:
                values = {
                    k: debias_diffusion(v, dx) if k.startswith("nu") else v for k, v in data.items()
                }
            features, target = _midpoint_problem(
                rhs, terms, values, settings.dt, dx, accuracy, settings.kappa
            )
            fit = fit_dictionary(terms, features, target)
            row[label] = dict(zip("abc", map(float, fit.coefficients), strict=True))
            row[f"{label}_relative_residual"] = fit.relative_residual
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        say(
            f"[sweep] N = {count:5d}: a, b, c = "
            + ", ".join(f"{row['raw'][n]:.4f}" for n in "abc")
            + "; nu debiased: "
            + ", ".join(f"{row['debiased'][n]:.4f}" for n in "abc")
        )
    result = {"ensembles": ensembles, "accuracy": accuracy, "window": [first, stop], "rows": rows}
    name = f"members_sweep_acc{accuracy}_w{first}-{stop}.json"
    (out / name).write_text(json.dumps(result, indent=2) + "\n")
    return result


def _format_coefficients(mean: dict, std: dict) -> str:
    return ", ".join(f"{n} = {mean[n]:.4f} ± {std[n]:.1e}" for n in "abc")


def _format_errors(errors: dict) -> str:
    if "diverged" in errors:
        return f"diverged: {errors['diverged'][:120]}"
    return "  ".join(f"{f} {errors[f][-1]:.2%}" for f in ("V", "L", "u")) + " (t = 1)"


def _spread_row(label: str, fit: dict) -> str:
    """Markdown row ``label (n runs) | a ± std | b ± std | c ± std``."""
    cells = " | ".join(f"{fit['mean'][n]:.4f} ± {fit['std'][n]:.1e}" for n in "abc")
    runs = f" ({len(fit['runs'])} runs)" if len(fit["runs"]) > 1 else ""
    return f"| {label}{runs} | {cells} |"


def report_markdown(results: dict) -> str:
    """The study as Markdown: coefficient tables, error tables at all saved times."""
    s = results["settings"]
    lines = [
        "# Burgers PKF closure study",
        "",
        f"{s['ensembles']} ensembles x {s['members']} members, steps {s['window'][0]} -> "
        f"{s['window'][1]}, dt = {s['dt']}, kappa = {s['kappa']}, {s['points']} points; "
        f"{s['runs']} training runs ({s['epochs']} epochs, batch {s['batch_size']}); reference "
        f"ensemble {s['reference_members']} members. Total time "
        f"{results['seconds']['total'] / 60:.1f} min.",
        "",
        "## Coefficients of a d2nu/nu^2 + b/nu^2 + c (dnu)^2/nu^3",
        "",
        "| fit | a | b | c |",
        "|---|---|---|---|",
        f"| theory | {THEORY['a']} | {THEORY['b']} | {THEORY['c']} |",
        f"| paper (learned) | {PAPER['a']} | {PAPER['b']} | {PAPER['c']} |",
    ]
    for acc, entry in results["by_accuracy"].items():
        lines.append(
            _spread_row(f"one-step training, accuracy {acc} (mean ± std)", entry["one_step"])
        )
        if "one_step_whole_trajectory" in entry:
            w = entry["one_step_whole_trajectory"]
            label = f"one-step training, accuracy {acc}, steps 0 -> {s['steps']}"
            lines.append(_spread_row(f"{label} ({w['ensembles']} ensembles)", w))
        if "rollout" in entry:
            r = entry["rollout"]
            label = f"{r['steps']}-step rollout training from the one-step fit, accuracy {acc}"
            lines.append(_spread_row(f"{label} ({r['sequences']} sequences)", r))
        if "one_step_debiased" in entry:
            label = f"one-step training, accuracy {acc}, nu bias removed"
            lines.append(_spread_row(label, entry["one_step_debiased"]))
        ls = entry["lstsq_3_terms"]
        lines.append(
            f"| least squares on tendencies, accuracy {acc} | "
            + " | ".join(f"{ls[n]:.4f}" for n in "abc")
            + " |"
        )
        if "lstsq_3_terms_debiased" in entry:
            ls = entry["lstsq_3_terms_debiased"]
            lines.append(
                f"| least squares on tendencies, accuracy {acc}, nu bias removed | "
                + " | ".join(f"{ls[n]:.4f}" for n in "abc")
                + " |"
            )
    dictionary_terms = results["dictionary"]
    for acc, entry in results["by_accuracy"].items():
        lines += [
            "",
            f"## Sparse fit (STLSQ) of the {len(dictionary_terms)}-term dictionary, accuracy {acc}",
            "",
            "| term | lstsq (all) | "
            + " | ".join(f"STLSQ {item['threshold']}" for item in entry["stlsq"])
            + " |",
            "|---|---|" + "---|" * len(entry["stlsq"]),
        ]
        for k, name in enumerate(dictionary_terms):
            row = [f"{entry['lstsq_full']['coefficients'][k]:.4g}"]
            row += [
                f"{item['coefficients'][k]:.4g}" if item["coefficients"][k] else "."
                for item in entry["stlsq"]
            ]
            lines.append(f"| `{name}` | " + " | ".join(row) + " |")
        lines.append(
            f"| relative residual | {entry['lstsq_full']['relative_residual']:.4f} | "
            + " | ".join(f"{item['relative_residual']:.4f}" for item in entry["stlsq"])
            + " |"
        )
    times = results["saved_times"]
    for acc, entry in results["by_accuracy"].items():
        lines += [
            "",
            f"## Relative L2 error vs the {s['reference_members']}-member reference, "
            f"accuracy {acc}",
            "",
            "| closure | field | " + " | ".join(f"t = {t:g}" for t in times) + " |",
            "|---|---|" + "---|" * len(times),
        ]
        for label, errors in entry["relative_l2_vs_reference"].items():
            if "diverged" in errors:
                lines.append(f"| {label} | - | diverged: {errors['diverged'][:100]} |")
                continue
            for f in ("V", "L", "u"):
                values = " | ".join(f"{e:.2%}" for e in errors[f])
                lines.append(f"| {label} | {f} | {values} |")
    lines += ["", "## Time (s)", ""]
    lines += [f"- {k}: {v:.0f}" for k, v in results["seconds"].items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict:
    """Command line: ``python scripts/burgers_closure.py [--quick] [--out DIR] [--runs N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small scale, a few minutes")
    parser.add_argument("--out", default="results/burgers_closure")
    parser.add_argument("--runs", type=int, help="training seeds (default 10, 2 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--debias-runs", type=int, default=3)
    parser.add_argument(
        "--trajectory-runs", type=int, default=3, help="seeds trained on steps 0 -> end"
    )
    parser.add_argument(
        "--rollout-runs", type=int, default=2, help="seeds of the 50-step rollout training"
    )
    parser.add_argument("--fit-stride", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--members-sweep",
        action="store_true",
        help="only the diagnostic: (a, b, c) by least squares vs ensemble size",
    )
    parser.add_argument("--members", type=int, nargs="+", help="member counts of the sweep")
    parser.add_argument("--sweep-ensembles", type=int, default=8)
    parser.add_argument("--accuracy", type=int, default=2, help="stencils of the sweep")
    parser.add_argument(
        "--window", type=int, nargs=2, metavar=("FIRST", "STOP"), help="steps of the samples"
    )
    args = parser.parse_args(argv)
    settings = quick_settings() if args.quick else Settings.paper()
    if args.runs is not None:
        settings = replace(settings, runs=args.runs)
    if args.window is not None:
        settings = replace(settings, window=tuple(args.window), steps=max(args.window))
    if args.members_sweep:
        members = args.members or ((50, 100, 200) if args.quick else (100, 400, 1600, 6400))
        return members_sweep(
            args.out,
            settings,
            members,
            ensembles=2 if args.quick else args.sweep_ensembles,
            accuracy=args.accuracy,
            seed=args.seed,
            progress=not args.no_progress,
        )
    return study(
        args.out,
        settings,
        seed=args.seed,
        debias_runs=min(args.debias_runs, settings.runs),
        trajectory_runs=min(args.trajectory_runs, settings.runs),
        rollout_runs=min(args.rollout_runs, settings.runs),
        fit_stride=args.fit_stride,
        progress=not args.no_progress,
    )


if __name__ == "__main__":
    main()
