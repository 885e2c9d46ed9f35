"""What the assimilation cases share: settings checks, the cycling run and its report.

:func:`report_cycles` turns a :class:`pkf.assimilation.CycleResult` into the case's files
(netCDF with a ``filter`` dimension, figures) and the summary: PKF-vs-KF distances per cycle,
the acceptance bars of issue 13 checked on them, RMSE and spread/RMSE of every filter, the
oracle diagnostics that say where the PKF's error comes from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from generator.protocols import DType

from .study import Output

if TYPE_CHECKING:
    from generator.model import GeneratedModel
    from pkf.assimilation import CycleResult, EnKFSetup, ObservationNetwork

__all__ = [
    "BARS",
    "CyclingSettings",
    "check_ensembles",
    "cycle",
    "describe_cycles",
    "percent",
    "report_cycles",
]

#: Acceptance bars (relative L2 distance of the PKF to the exact KF at every cycle) by kind.
BARS = {"variance": 0.10, "tensor": 0.15, "rmse": 0.10}


def check_ensembles(members: Sequence[int], radii: Sequence[float]) -> None:
    """Every ensemble needs >= 2 members and one localisation radius (``<= 0``: none)."""
    if len(members) != len(radii):
        raise ValueError(
            f"--members and --localisation need one value per ensemble, got {len(members)} and "
            f"{len(radii)}"
        )
    if any(m < 2 for m in members):
        raise ValueError(f"--members: every ensemble needs at least 2 members, got {members}")


@dataclass(frozen=True)
class CyclingSettings:
    """The settings every assimilation case has: cycles, network, filters, numerics.

    A case's ``Settings`` subclasses it, adds its grid and initial errors, and may give other
    defaults; ``validate`` checks these fields (call it from the case's ``validate``).
    """

    cycles: int = field(default=5, metadata={"help": "forecast/analysis cycles"})
    window: float = field(default=0.2, metadata={"help": "time between analyses"})
    every: int = field(
        default=10, metadata={"help": "observe every EVERY grid points (along each axis)"}
    )
    error_variance: float = field(
        default=0.25,
        metadata={"help": "observation-error variance (the initial variance is about 1)"},
    )
    members: tuple[int, ...] = field(default=(40, 400), metadata={"help": "EnKF sizes"})
    localisation: tuple[float, ...] = field(
        default=(0.3, 0.6),
        metadata={"help": "Gaspari-Cohn radius of each EnKF (domain units, <= 0: none)"},
    )
    inflation: float = field(default=1.0, metadata={"help": "EnKF multiplicative inflation"})
    variant: Literal["square-root", "stochastic"] = field(
        default="square-root", metadata={"help": "EnKF analysis"}
    )
    forecast_metric: Literal["model", "state"] = field(
        default="model", metadata={"help": "forecast metric of the PKF order-2 update"}
    )
    refit: bool = field(
        default=False, metadata={"help": "re-fit the PKF covariance model after each observation"}
    )
    projected: bool = field(
        default=True,
        metadata={
            "help": "also cycle the exact KF projected onto the PKF covariance model before each "
            "analysis (kf_projected: the covariance model's own error)"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the truth, observations, EnKFs"})
    dtype: DType = field(default="float64", metadata={"help": "dtype"})
    accuracy: Literal[2, 4, 6] = field(default=4, metadata={"help": "stencil order"})

    def validate(self) -> None:
        """Check the shared settings (a ``ValueError`` naming the flag)."""
        if self.cycles < 1 or self.every < 1:
            raise ValueError(f"--cycles and --every must be >= 1, got {self.cycles}, {self.every}")
        if not (self.window > 0 and self.error_variance > 0):
            raise ValueError(
                f"--window and --error-variance must be > 0, got {self.window}, "
                f"{self.error_variance}"
            )
        if self.inflation < 1:
            raise ValueError(f"--inflation must be >= 1, got {self.inflation}")
        check_ensembles(self.members, self.localisation)

    def ensembles(self) -> list[EnKFSetup]:
        """The EnKFs to cycle: one per ``members`` entry with its localisation radius."""
        from pkf.assimilation import EnKFSetup

        repeated = len(set(self.members)) < len(self.members)
        return [
            EnKFSetup(
                m,
                self.variant,
                r if r > 0 else None,
                self.inflation,
                name=f"enkf_{m}_{k + 1}" if repeated else None,
            )
            for k, (m, r) in enumerate(zip(self.members, self.localisation, strict=True))
        ]


def cycle(
    settings: CyclingSettings,
    output: Output,
    models: tuple[GeneratedModel, GeneratedModel],
    background: Mapping[str, np.ndarray],
    network: ObservationNetwork,
    dt: float,
    *,
    stem: str,
    title: str,
    compared: Sequence[str],
    main_field: str,
) -> tuple[CycleResult, dict[str, Any]]:
    """Cycle KF, PKF (order-2 and order-1 updates), the EnKFs and ``kf_projected`` on one
    nature run; write ``<stem>.nc``, the figures and the console report.

    Returns the :class:`pkf.assimilation.CycleResult` and the summary of :func:`report_cycles`.
    """
    from pkf.assimilation import run_cycles

    model, pkf_model = models
    with output.step("cycles"):
        result = run_cycles(
            model,
            pkf_model,
            background,
            network,
            settings.window,
            settings.cycles,
            dt=dt,
            ensembles=settings.ensembles(),
            orders=(2, 1),
            refit=settings.refit,
            forecast_metric=settings.forecast_metric,
            projected=settings.projected,
            seed=settings.seed,
            progress=output.progress,
        )
    summary = report_cycles(result, output, stem, title, compared, main_field)
    output.say(describe_cycles(result, stem, compared, main_field))
    return result, summary


def filter_styles(filters: Sequence[str]) -> dict[str, tuple[str, str, float]]:
    """One look per filter in every figure: ``{name: (colour, line style, width)}``.

    The exact KF is a thick black line under the others, the PKF blue, its order-1 update
    orange dotted, ``kf_projected`` a thin red dash-dot line, the EnKFs green, purple, brown...
    """
    looks = {
        "kf": ("k", "-", 2.6),
        "pkf": ("C0", "-", 1.4),
        "pkf_order1": ("C1", ":", 1.4),
        "kf_projected": ("C3", "-.", 1.0),
    }
    ensembles = [name for name in filters if name not in looks]
    colours = ("C2", "C4", "C5", "C6", "C8", "C9")
    looks.update({name: (colours[k % len(colours)], "--", 1.2) for k, name in enumerate(ensembles)})
    return {name: looks[name] for name in filters}


def drawing_order(filters: Sequence[str]) -> list[str]:
    """The exact KF first (underneath), the PKF last (on top), the others between."""
    middle = [name for name in filters if name not in ("kf", "pkf")]
    return [name for name in ("kf", *middle, "pkf") if name in filters]


def _bar(quantity: str, fields: Sequence[str]) -> float | None:
    kind = quantity.split("_", 1)[0]
    if kind == "V":
        return BARS["variance"]
    if kind in ("L", "s"):
        return BARS["tensor"]
    return None


def report_cycles(
    result: CycleResult,
    output: Output,
    stem: str,
    title: str,
    compared: Sequence[str],
    main_field: str,
) -> dict[str, Any]:
    """Write ``<stem>.nc`` and the figures; return the summary (acceptance numbers included).

    Parameters
    ----------
    result : CycleResult
        What :func:`pkf.assimilation.run_cycles` returned.
    output : Output
        The case's output place.
    stem : str
        File stem (``assimilation1d``...).
    title : str
        Figure title.
    compared : sequence of str
        The PKF quantities checked against the exact KF (``V_c``, ``L_c_x``, ``s_c_xy``...).
    main_field : str
        The field whose RMSE/spread is drawn and checked.
    """
    from .figures import (
        plot_cycle_scores,
        plot_error_curves,
        plot_field_table,
        plot_profiles,
    )

    dataset = result.dataset
    output.write_dataset(dataset, f"{stem}.nc")
    times = dataset["time"].values
    filters = [str(f) for f in dataset["filter"].values]
    fields = [str(v)[len("rmse_") :] for v in dataset.data_vars if str(v).startswith("rmse_")]
    stages = ("forecast", "analysis")

    pkf = result.distances["pkf"]
    acceptance: dict[str, Any] = {}
    for quantity in compared:
        bar = _bar(quantity, fields)
        values = [v for stage in stages for v in pkf[quantity][stage]]
        finite = [v for v in values if v is not None and np.isfinite(v)]
        worst = max(finite) if len(finite) == len(values) else None
        acceptance[quantity] = {
            "bar": bar,
            "largest_distance": worst,
            "met": None if bar is None else (worst is not None and worst <= bar),
            "forecast": pkf[quantity]["forecast"],
            "analysis": pkf[quantity]["analysis"],
        }
    rmse = {
        name: np.asarray(result.scores[name][f"rmse_{main_field}"]["analysis"], dtype=float)
        for name in filters
    }
    ratio = rmse["pkf"] / rmse["kf"]
    acceptance[f"rmse_{main_field}_analysis_pkf_over_kf"] = {
        "bar": 1.0 + BARS["rmse"],
        "per_cycle": ratio.tolist(),
        "met": bool(np.all(np.abs(ratio - 1.0) <= BARS["rmse"])),
    }
    spread_over_rmse = {
        name: {f: {stage: result.spread_ratio(name, stage, f) for stage in stages} for f in fields}
        for name in filters
    }

    looks = filter_styles(filters)
    looks_fixed = ("kf", "pkf", "pkf_order1", "kf_projected")  # maps: KF, PKF and the EnKFs
    with output.step("figures"):
        scores = {
            name: {
                "rmse": dataset[f"rmse_{main_field}"].sel(filter=name).values,
                "spread": dataset[f"spread_{main_field}"].sel(filter=name).values,
            }
            for name in drawing_order(filters)
        }
        output.write_figure(
            plot_cycle_scores(
                times,
                scores,
                title=f"{title}\nRMSE of the mean of {main_field} against the truth (solid), "
                "spread (dashed)",
                styles={name: look[0] for name, look in looks.items()},
                widths={name: look[2] for name, look in looks.items()},
            ),
            f"{stem}_scores",
        )

        def per_cycle(values: list[float | None]) -> list[float | None]:
            return [None if v is None or not np.isfinite(v) else v for v in values]

        output.write_figure(
            plot_error_curves(
                times,
                {q: per_cycle(pkf[q]["analysis"]) for q in compared},
                reference={q: per_cycle(pkf[q]["forecast"]) for q in compared},
                title=f"{title}\nPKF vs exact KF after each analysis (solid) and forecast (dashed)",
            ),
            f"{stem}_distances",
        )
        shown = drawing_order(filters)
        last = int(dataset["cycle"].values[-1])
        grid_dims = [d for d in dataset[compared[0]].dims if d not in ("filter", "cycle", "stage")]
        if len(grid_dims) == 1:
            axis = dataset[grid_dims[0]].values
            length = float(axis.size * (axis[1] - axis[0]))
            panels = {}
            for quantity in compared:
                for stage in stages:
                    panels[f"{quantity} after the {stage}, cycle {last}"] = {
                        name: dataset[quantity].sel(filter=name, cycle=last, stage=stage).values
                        for name in shown
                    }
            styles = {name: look[0] + look[1] for name, look in looks.items()}
            output.write_figure(
                plot_profiles(
                    axis / length,
                    panels,
                    styles=styles,
                    suptitle=title,
                    columns=2 if len(compared) <= 2 else 4,
                ),
                f"{stem}_profiles",
            )
        else:
            for stage in stages:
                rows = {}
                for quantity in compared:
                    mapped = ["kf", "pkf", *(n for n in filters if n not in looks_fixed)]
                    rows[quantity] = {
                        name: dataset[quantity].sel(filter=name, cycle=last, stage=stage)
                        for name in mapped
                    }
                    rows[quantity]["pkf - kf"] = dataset[quantity].sel(
                        filter="pkf", cycle=last, stage=stage
                    ) - dataset[quantity].sel(filter="kf", cycle=last, stage=stage)
                columns = [c for c in next(iter(rows.values())) if c != "pkf - kf"]
                output.write_figure(
                    plot_field_table(
                        rows,
                        suptitle=f"{title}: after the {stage} of cycle {last}",
                        shared=tuple(c for c in columns if c in ("kf", "pkf")),
                        diverging=("pkf - kf",),
                    ),
                    f"{stem}_maps_{stage}",
                )

    summary = result.summary()
    return {
        "analysis_times": times.tolist(),
        "acceptance": acceptance,
        "spread_over_rmse": spread_over_rmse,
        "distance_to_kf": summary["distance_to_kf"],
        "largest_distance_to_kf": summary["largest_distance_to_kf"],
        "scores": summary["scores"],
        "failures": summary["failures"],
        "diagnostics": summary["diagnostics"],
        "filter_seconds": summary["seconds"],
    }


def percent(values: Sequence[float | None]) -> str:
    """``"1.2 3.4 -"``: a list of fractions as percentages (``-`` for None)."""
    return " ".join("-" if v is None or not np.isfinite(v) else f"{100 * v:.1f}" for v in values)


def describe_cycles(
    result: CycleResult, case: str, quantities: Sequence[str], main_field: str
) -> str:
    """The console report of a cycling case: PKF (and ``kf_projected``) vs exact KF per cycle,
    analysis RMSE and spread/RMSE of every filter, failures."""
    filters = list(result.scores)
    shown = [name for name in ("pkf", "kf_projected") if name in result.distances]
    cycles = len(result.distances["pkf"][quantities[0]]["analysis"])
    lines = [f"{case}: {cycles} cycles; relative L2 distance to the exact KF (%), per cycle"]
    for name in shown:
        for q in quantities:
            for stage in ("forecast", "analysis"):
                values = percent(result.distances[name][q][stage])
                lines.append(f"  {name:12s} {q:7s} {stage:8s}: {values}")
    lines.append(f"analysis RMSE of {main_field} per cycle, spread/RMSE over the cycles")
    for label in filters:
        rmse = result.scores[label][f"rmse_{main_field}"]["analysis"]
        ratio = result.spread_ratio(label, "analysis", main_field)
        lines.append(
            f"  {label:12s} " + " ".join(f"{v:.3f}" for v in rmse) + f"   spread/RMSE {ratio:.2f}"
        )
    lines.append(f"failures: {result.failures or 'none'}")
    return "\n".join(lines)
