"""The Burgers closure study: learned, theoretical and sparse closures against a reference.

On the paper's setup (400 ensembles x 400 members, steps 400 -> 500, dt = 0.002, κ = 0.0025,
241 points; ``--quick`` for a smoke-size run) the study, per stencil accuracy:

1. builds (or resumes) the training set and trains the paper's 3-term closure
   a ∂x²ν/ν² + b/ν² + c (∂xν)²/ν³ one step ahead with ``runs`` seeds (:func:`learn_one_step`);
2. fits the 9-term dictionary (fields ν and V, derivative order ≤ 2, degree ≤ 2) and the 3
   paper terms by least squares and STLSQ on one-step tendencies of the same data, centred in
   time (:func:`fit_dictionaries`);
3. on the main accuracy: removes the centred-difference bias of the ensemble ν
   (ν = −dx² / log(1 − dx²/ν_est), :func:`pkf.statistics.debias_diffusion`) and fits and trains
   again (:func:`learn_debiased`); trains on a dataset of the same size sampled over the whole
   forecast (:func:`learn_whole_trajectory`) and refines the one-step coefficients with a
   ``rollout_steps``-step rollout loss (:func:`refine_by_rollout`): the one-step loss cannot see
   that V at t = 1 depends on b through the constant κ(4b − 1) of the ν equation;
4. forecasts the PKF with every closure and compares u, V and L = sqrt(2ν) with the reference
   ensemble at t = 0, 0.2, ..., 1 (:func:`forecast_closures`).

``sweep_members`` runs only the diagnostic :func:`members_sweep` (least-squares (a, b, c)
versus the ensemble size on the same backgrounds). Results: ``burgers_closure.json`` and the
Markdown report ``burgers_closure.md`` (:func:`report_markdown`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from generator.protocols import FingerprintedModel

from . import burgers
from .burgers import FIELDS, PAPER_LEARNED, THEORY
from .study import Output

if TYPE_CHECKING:
    import xarray as xr

    from generator.model import GeneratedModel

__all__ = [
    "DESCRIPTION",
    "Settings",
    "fit_dictionaries",
    "forecast_closures",
    "learn_debiased",
    "learn_one_step",
    "learn_whole_trajectory",
    "members_sweep",
    "refine_by_rollout",
    "report_markdown",
    "run",
]

DESCRIPTION = (
    "Burgers closure study: one-step, sparse, de-biased, whole-trajectory and rollout closures "
    "vs a reference ensemble"
)
SLOT = "closure_u_x4"
#: The training sets and reference ensembles can run on a Dask cluster (--workers N).
SUPPORTS_CLUSTER = True
#: Adam rate of the rollout fine-tuning (3 epochs, divided by 10 each): 0.1 blows up 50-step
#: rollouts from the initial guess, so the rollout starts from the one-step coefficients.
ROLLOUT_LEARNING_RATE = 3e-3


@dataclass(frozen=True)
class Settings(burgers.Settings):
    """The Burgers settings (default: the paper's scale, 10 runs) and the study's options."""

    ensembles: int = field(default=400, metadata={"help": "training-set ensembles"})
    runs: int = field(default=10, metadata={"help": "training runs (seeds)"})
    extra_accuracies: tuple[int, ...] = field(
        default=(4,),
        metadata={"help": "further stencil accuracies studied besides --accuracy", "nargs": "*"},
    )
    thresholds: tuple[float, ...] = field(
        default=(0.01, 0.05, 0.1), metadata={"help": "STLSQ thresholds", "nargs": "+"}
    )
    debias_runs: int = field(default=3, metadata={"help": "runs on de-biased nu (0: skip)"})
    trajectory_runs: int = field(
        default=3, metadata={"help": "runs on the whole-forecast dataset (0: skip)"}
    )
    rollout_runs: int = field(default=2, metadata={"help": "rollout refinement runs (0: skip)"})
    rollout_steps: int = field(default=50, metadata={"help": "steps of the rollout loss"})
    fit_stride: int = field(default=1, metadata={"help": "use every n-th sample in the fits"})
    sweep_members: tuple[int, ...] = field(
        default=(),
        metadata={"help": "only the members sweep, with these ensemble sizes", "nargs": "*"},
    )
    sweep_ensembles: int = field(default=8, metadata={"help": "ensembles of the members sweep"})

    @property
    def accuracies(self) -> tuple[int, ...]:
        """The main accuracy first, then the extra ones."""
        return (self.accuracy, *(a for a in self.extra_accuracies if a != self.accuracy))

    def validate(self) -> None:
        super().validate()
        if any(a not in (2, 4, 6) for a in self.extra_accuracies):
            raise ValueError(f"--extra-accuracies: expected 2, 4 or 6, got {self.extra_accuracies}")
        if self.rollout_steps < 2 or self.fit_stride < 1:
            raise ValueError("--rollout-steps >= 2 and --fit-stride >= 1 required")


def _paper_terms(nu: sp.Expr) -> list[sp.Expr]:
    x = sp.Symbol("x")
    return [nu.diff(x, 2) / nu**2, 1 / nu**2, nu.diff(x) ** 2 / nu**3]


def _table(fits: dict) -> dict:
    return {"mean": fits["mean"], "std": fits["std"], "runs": fits["runs"]}


def _pairs(data) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return {f: data[f].values for f in FIELDS}, {f: data[f"{f}_next"].values for f in FIELDS}


def _trainer(pkf_class: type[GeneratedModel], settings: Settings) -> Callable[[], GeneratedModel]:
    return lambda: pkf_class(shape=settings.points, dtype=settings.dtype, kappa=settings.kappa)


def learn_one_step(
    make_model: Callable[[], GeneratedModel], data, settings: Settings, runs: int, progress: bool
) -> dict:
    """Train (a, b, c) one step ahead on the samples of ``data`` with ``runs`` seeds."""
    from generator.train import repeat_fits

    inputs, targets = _pairs(data)
    fits = repeat_fits(
        make_model,
        inputs,
        targets,
        settings.dt,
        seeds=[settings.seed + k for k in range(runs)],
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        progress=progress,
    )
    return {**_table(fits), "loss_histories": [h["loss"] for h in fits["histories"]]}


def fit_dictionaries(
    data, settings: Settings, accuracy: int, debias: bool = False, full: bool = True
) -> dict:
    """Least squares (3 paper terms, whole dictionary) and STLSQ on centred-in-time tendencies.

    With ``debias`` the ensemble ν is first corrected by :func:`pkf.statistics.debias_diffusion`;
    without ``full`` only the 3-term least squares (and its residual) is returned.
    """
    from closures import dictionary, fit_dictionary
    from closures.fitting import midpoint_residual_problem
    from pkf.statistics import debias_diffusion

    pkf, term, nu, variance = burgers.pkf_fields()
    rhs = pkf.to_generator(form="diffusion")[-1].rhs
    dx = 1.0 / settings.points
    samples = {k: data[k].values[:: settings.fit_stride] for k in (*FIELDS, *_next(FIELDS))}
    if debias:
        for name in ("nu_u_xx", "nu_u_xx_next"):
            samples[name] = debias_diffusion(samples[name], dx)
    terms = dictionary(term, [nu, variance], pkf, 2, 2)
    features, target = midpoint_residual_problem(
        rhs, SLOT, terms, samples, FIELDS, settings.dt, dx, accuracy, {"kappa": settings.kappa}
    )
    paper = _paper_terms(nu)
    columns = [terms.index(t) for t in paper]
    three = fit_dictionary(paper, features[..., columns], target)
    result: dict = {
        "lstsq_3_terms": dict(zip("abc", map(float, three.coefficients), strict=True)),
        "lstsq_3_terms_residual": three.relative_residual,
    }
    if not full:
        return result
    everything = fit_dictionary(terms, features, target)
    result["dictionary"] = [str(t) for t in terms]
    result["lstsq_full"] = {
        "coefficients": [float(c) for c in everything.coefficients],
        "relative_residual": everything.relative_residual,
    }
    sparse = [fit_dictionary(terms, features, target, "stlsq", t) for t in settings.thresholds]
    result["stlsq"] = [
        {
            "threshold": t,
            "selected": [str(s) for s in fit.selected],
            "coefficients": [float(c) for c in fit.coefficients],
            "relative_residual": fit.relative_residual,
            "expression": str(fit.expression),
            "_expression": fit.expression,
        }
        for t, fit in zip(settings.thresholds, sparse, strict=True)
    ]
    return result


def learn_debiased(
    make_model: Callable[[], GeneratedModel], data, settings: Settings, runs: int, progress: bool
) -> dict:
    """Train (a, b, c) one step ahead on the data with the ν bias removed."""
    from pkf.statistics import debias_diffusion

    dx = 1.0 / settings.points
    corrected = data.copy()
    for name in ("nu_u_xx", "nu_u_xx_next"):
        corrected[name] = (data[name].dims, debias_diffusion(data[name].values, dx))
    return learn_one_step(make_model, corrected, settings, runs, progress)


def learn_whole_trajectory(
    make_model: Callable[[], GeneratedModel],
    model: FingerprintedModel,
    settings: Settings,
    samples: int,
    runs: int,
    output: Output,
    accuracy: int,
) -> tuple[dict, xr.Dataset]:
    """Train on a dataset of ``samples`` pairs sampled over the whole forecast (steps 0 ->
    ``steps``) instead of the paper's window; returns the fit and that dataset."""
    ensembles = max(1, samples // settings.steps)
    whole = replace(settings, window=(0, settings.steps), ensembles=ensembles)
    output.say(
        f"[acc {accuracy}] learning (a, b, c) on steps 0 -> {settings.steps}: {ensembles} "
        f"ensembles, {runs} runs"
    )
    path = output.path(f"training_acc{accuracy}_w0-{settings.steps}.nc")
    data = burgers.training_set(path, model, whole, output.progress, client=output.client)
    fits = learn_one_step(make_model, data, settings, runs, output.progress)
    return {"ensembles": ensembles, "samples": int(data.sizes["sample"]), **fits}, data


def refine_by_rollout(
    make_model: Callable[[], GeneratedModel],
    data,
    start: dict[str, float],
    settings: Settings,
    runs: int,
    progress: bool,
) -> dict:
    """Refine (a, b, c) from ``start`` with a ``rollout_steps``-step rollout loss."""
    from generator.train import repeat_fits
    from pkf.dataset import rollout_samples

    steps = settings.rollout_steps
    inputs, targets = rollout_samples(data, FIELDS, steps, stride=steps // 2)
    fits = repeat_fits(
        make_model,
        inputs,
        targets,
        settings.dt,
        seeds=[settings.seed + k for k in range(runs)],
        steps=steps,
        start=start,
        epochs=3,
        batch_size=8,
        learning_rate=ROLLOUT_LEARNING_RATE,
        progress=progress,
    )
    return {
        "steps": steps,
        "sequences": int(len(inputs["u"])),
        "start": start,
        **_table(fits),
        "loss_histories": [h["loss"] for h in fits["histories"]],
    }


def forecast_closures(
    closures: dict[str, tuple[Callable[[], GeneratedModel], dict[str, float] | None]],
    reference,
    settings: Settings,
) -> dict[str, dict]:
    """PKF forecast of each closure ``{label: (make_model, coefficients)}`` vs the reference.

    A forecast that blows up is reported as ``{"diverged": message}``.
    """
    from generator import NonFiniteStateError

    results: dict[str, dict] = {}
    for label, (make_model, values) in closures.items():
        try:
            forecast = burgers.pkf_forecast(make_model(), settings, values)
        except NonFiniteStateError as error:
            results[label] = {"diverged": str(error)}
            continue
        results[label] = burgers.compare(forecast, reference)
    return results


def _study_accuracy(settings: Settings, accuracy: int, output: Output, results: dict) -> None:
    """Every experiment of the study at one stencil accuracy (into ``results``)."""
    say, progress = output.say, output.progress
    main = accuracy == settings.accuracies[0]
    entry: dict = {}
    results["by_accuracy"][str(accuracy)] = entry
    burgers_model, pkf_class = burgers.models(settings, accuracy, f"Acc{accuracy}")
    trainable = _trainer(pkf_class, settings)
    say(f"[acc {accuracy}] training set: {settings.ensembles} ensembles x {settings.members}")
    with output.step(f"dataset_acc{accuracy}"):
        data = burgers.training_set(
            output.path(f"training_acc{accuracy}.nc"),
            burgers_model,
            settings,
            progress,
            client=output.client,
        )
    entry["samples"] = int(data.sizes["sample"])
    runs = settings.runs
    say(f"[acc {accuracy}] learning (a, b, c): {runs} runs on {entry['samples']} pairs")
    with output.step(f"training_acc{accuracy}"):
        entry["one_step"] = learn_one_step(trainable, data, settings, runs, progress)
    say(f"[acc {accuracy}] learned " + _format(entry["one_step"]))
    with output.step(f"dictionary_fits_acc{accuracy}"):
        fits = fit_dictionaries(data, settings, accuracy)
        if main:
            debiased = fit_dictionaries(data, settings, accuracy, debias=True, full=False)
            entry["lstsq_3_terms_debiased"] = debiased["lstsq_3_terms"]
    results["dictionary"] = fits.pop("dictionary")
    sparse = [item.pop("_expression") for item in fits["stlsq"]]
    entry.update(fits)
    say(f"[acc {accuracy}] least squares (3 terms) {entry['lstsq_3_terms']}")
    if main and settings.debias_runs:
        with output.step(f"training_debiased_acc{accuracy}"):
            entry["one_step_debiased"] = learn_debiased(
                trainable, data, settings, min(settings.debias_runs, runs), progress
            )
    if main and settings.trajectory_runs:
        with output.step(f"training_whole_trajectory_acc{accuracy}"):
            whole_fit, whole_data = learn_whole_trajectory(
                trainable,
                burgers_model,
                settings,
                entry["samples"],
                min(settings.trajectory_runs, runs),
                output,
                accuracy,
            )
        entry["one_step_whole_trajectory"] = whole_fit
        if settings.rollout_runs:
            with output.step(f"training_rollout_acc{accuracy}"):
                entry["rollout"] = refine_by_rollout(
                    trainable,
                    whole_data,
                    entry["one_step"]["mean"],
                    settings,
                    min(settings.rollout_runs, runs),
                    progress,
                )
            say(f"[acc {accuracy}] rollout " + _format(entry["rollout"]))
    say(f"[acc {accuracy}] reference ensemble of {settings.reference_members} members")
    with output.step(f"reference_acc{accuracy}"):
        reference = burgers.reference_statistics(burgers_model, settings, progress, output.client)
    with output.step(f"pkf_forecasts_acc{accuracy}"):
        learned = entry["one_step"]["mean"]
        closures: dict[str, tuple[Callable[[], GeneratedModel], dict[str, float] | None]] = {
            "learned": (trainable, learned),
            "theory": (trainable, THEORY),
            "lstsq_3_terms": (trainable, entry["lstsq_3_terms"]),
            # sensitivity: the constant of the ν equation is κ(4b − 1)
            "learned_b=0.75": (trainable, {**learned, "b": THEORY["b"]}),
        }
        if main:
            closures["paper"] = (trainable, PAPER_LEARNED)
        if "one_step_whole_trajectory" in entry:
            closures["learned_whole_trajectory"] = (
                trainable,
                entry["one_step_whole_trajectory"]["mean"],
            )
        if "rollout" in entry:
            closures["learned_rollout"] = (trainable, entry["rollout"]["mean"])
        forecasts = forecast_closures(closures, reference, settings)
        forecasts.update(_sparse_forecasts(settings, accuracy, sparse, reference))
    entry["relative_l2_vs_reference"] = forecasts
    for label, value in forecasts.items():
        say(f"[acc {accuracy}] {label:24s} {_format_errors(value)}")


def _sparse_forecasts(settings: Settings, accuracy: int, sparse, reference) -> dict:
    """Forecast each distinct STLSQ selection once."""
    from generator import NNModelBuilder

    forecasts: dict[str, dict] = {}
    distinct: dict[str, str] = {}
    for threshold, expression in zip(settings.thresholds, sparse, strict=True):
        label = f"stlsq_{threshold}"
        key = str(expression)
        if key in distinct:
            forecasts[label] = {"same_as": distinct[key], **forecasts[distinct[key]]}
            continue
        distinct[key] = label
        if expression == 0:
            forecasts[label] = {"diverged": "no term selected"}
            continue
        equations = burgers.closed_pkf_equations(expression)
        cls = NNModelBuilder(equations, f"PKFBurgersSparse{len(distinct)}", accuracy=accuracy)
        make = _trainer(cls.build(), settings)
        forecasts.update(forecast_closures({label: (make, None)}, reference, settings))
    return forecasts


def members_sweep(settings: Settings, output: Output) -> dict:
    """(a, b, c) by least squares on the ν tendencies versus the ensemble size.

    The same ``sweep_ensembles`` backgrounds (same seeds) are run with each member count of
    ``sweep_members``; with sampling noise in ν (variance ∝ 1/N) the derivative features are
    noisy inputs, so a regression bias that shrinks with N points to sampling noise, one that
    does not to the closure itself (or the ν estimator). Also with ν de-biased.
    """
    burgers_model, _ = burgers.models(settings, name="Sweep")
    first, stop = settings.window
    rows = []
    for count in settings.sweep_members:
        with output.step(f"sweep_{count}"):
            path = output.path(
                f"sweep_acc{settings.accuracy}_e{settings.sweep_ensembles}_n{count}"
                f"_w{first}-{stop}.nc"
            )
            data = burgers.training_set(
                path,
                burgers_model,
                settings,
                output.progress,
                ensembles=settings.sweep_ensembles,
                members=count,
                client=output.client,
            )
            plain = fit_dictionaries(data, settings, settings.accuracy, full=False)
            debiased = fit_dictionaries(data, settings, settings.accuracy, True, full=False)
        row = {
            "members": int(count),
            "samples": int(data.sizes["sample"]),
            "raw": plain["lstsq_3_terms"],
            "raw_relative_residual": plain["lstsq_3_terms_residual"],
            "debiased": debiased["lstsq_3_terms"],
            "debiased_relative_residual": debiased["lstsq_3_terms_residual"],
        }
        rows.append(row)
        output.say(
            f"[sweep] N = {count:5d}: a, b, c = "
            + ", ".join(f"{row['raw'][n]:.4f}" for n in "abc")
            + "; nu debiased: "
            + ", ".join(f"{row['debiased'][n]:.4f}" for n in "abc")
        )
    return {"ensembles": settings.sweep_ensembles, "window": [first, stop], "rows": rows}


def run(settings: Settings, output: Output) -> dict:
    """The whole study (or only the members sweep); writes the JSON results and the report."""
    if settings.sweep_members:
        sweep = members_sweep(settings, output)
        output.write_json(sweep, "members_sweep.json")
        return {"members_sweep": sweep}
    results: dict = {
        "settings": {k: v for k, v in vars(settings).items()},
        "accuracies": list(settings.accuracies),
        "saved_times": settings.saved_times.tolist(),
        "theory": THEORY,
        "paper": PAPER_LEARNED,
        "by_accuracy": {},
    }
    for accuracy in settings.accuracies:
        _study_accuracy(settings, accuracy, output, results)
    results["seconds"] = dict(output.seconds)
    output.write_json(results, "burgers_closure.json")
    report = output.path("burgers_closure.md")
    report.write_text(report_markdown(results))
    output.files.append(report)
    return {"by_accuracy": results["by_accuracy"], "dictionary": results["dictionary"]}


def _next(fields: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{f}_next" for f in fields)


def _format(fit: dict) -> str:
    return ", ".join(f"{n} = {fit['mean'][n]:.4f} ± {fit['std'][n]:.1e}" for n in "abc")


def _format_errors(errors: dict) -> str:
    if "diverged" in errors:
        return f"diverged: {errors['diverged'][:120]}"
    return "  ".join(f"{f} {errors[f][-1]:.2%}" for f in ("V_u", "L_u_x", "u")) + " (final)"


def _spread_row(label: str, fit: dict) -> str:
    """Markdown row ``label (n runs) | a ± std | b ± std | c ± std``."""
    cells = " | ".join(f"{fit['mean'][n]:.4f} ± {fit['std'][n]:.1e}" for n in "abc")
    runs = f" ({len(fit['runs'])} runs)" if len(fit["runs"]) > 1 else ""
    return f"| {label}{runs} | {cells} |"


def report_markdown(results: dict) -> str:
    """The study as Markdown: coefficient tables, sparse fits, errors at all saved times."""
    s = results["settings"]
    total = results["seconds"].get("total", sum(results["seconds"].values()))
    lines = [
        "# Burgers PKF closure study",
        "",
        f"{s['ensembles']} ensembles x {s['members']} members, steps {s['window'][0]} -> "
        f"{s['window'][1]}, dt = {s['dt']}, kappa = {s['kappa']}, {s['points']} points; "
        f"{s['runs']} training runs ({s['epochs']} epochs, batch {s['batch_size']}); reference "
        f"ensemble {s['reference_members']} members. Time {total / 60:.1f} min.",
        "",
        "## Coefficients of a d2nu/nu^2 + b/nu^2 + c (dnu)^2/nu^3",
        "",
        "| fit | a | b | c |",
        "|---|---|---|---|",
        f"| theory | {THEORY['a']} | {THEORY['b']} | {THEORY['c']} |",
        f"| paper (learned) | {PAPER_LEARNED['a']} | {PAPER_LEARNED['b']} | {PAPER_LEARNED['c']} |",
    ]
    for acc, entry in results["by_accuracy"].items():
        lines.append(_spread_row(f"one-step training, accuracy {acc}", entry["one_step"]))
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
        for key, label in (
            ("lstsq_3_terms", "least squares on tendencies"),
            ("lstsq_3_terms_debiased", "least squares on tendencies, nu bias removed"),
        ):
            if key in entry:
                cells = " | ".join(f"{entry[key][n]:.4f}" for n in "abc")
                lines.append(f"| {label}, accuracy {acc} | {cells} |")
    terms = results["dictionary"]
    for acc, entry in results["by_accuracy"].items():
        lines += [
            "",
            f"## Sparse fit (STLSQ) of the {len(terms)}-term dictionary, accuracy {acc}",
            "",
            "| term | lstsq (all) | "
            + " | ".join(f"STLSQ {item['threshold']}" for item in entry["stlsq"])
            + " |",
            "|---|---|" + "---|" * len(entry["stlsq"]),
        ]
        for k, name in enumerate(terms):
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
            for f in ("V_u", "L_u_x", "u"):
                values = " | ".join(f"{e:.2%}" for e in errors[f])
                lines.append(f"| {label} | {f} | {values} |")
    lines += ["", "## Time (s)", ""]
    lines += [f"- {k}: {v:.0f}" for k, v in results["seconds"].items()]
    return "\n".join(lines) + "\n"
