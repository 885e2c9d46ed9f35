"""``pkfnet study FILE.toml``: a user's case study, PKF forecast against a reference ensemble.

:func:`prepare` closes the symbolic PKF of a validated :class:`~cases.study_file.StudyFile`
(so that a closure that does not apply is reported before anything is written);
:func:`run_study` generates the dynamics and PKF models, runs the PKF forecast and the
reference ensemble (errors drawn with :class:`pkf.sampling.SeededMembers`), compares them at
the saved times and writes ``study.nc``, the figures and (through
:func:`cases.study.run_case`) ``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
import xarray as xr

from .comparison import errors_by_time, stack_sources
from .study import Output, run_case
from .study_file import RunSettings, StudyFile

if TYPE_CHECKING:
    from generator.model import GeneratedModel

__all__ = [
    "Study",
    "compared_variables",
    "evaluate_on_grid",
    "initial_pkf_state",
    "prepare",
    "run_study",
]


@dataclass(frozen=True)
class Study:
    """A study file with its settings chosen (``--quick`` or not) and its PKF closed."""

    file: StudyFile
    settings: RunSettings
    closed_equations: tuple[sp.Eq, ...]

    @property
    def name(self) -> str:
        """The file's stem (names the default output directory)."""
        return self.file.path.stem


def prepare(study_file: StudyFile, quick: bool = False) -> Study:
    """Close the PKF of ``study_file`` and write it in the run's form.

    Raises
    ------
    StudyFileError
        When the named closure does not apply to these dynamics, or the expression does not
        close them (naming ``closure.name`` / ``closure.expression`` and its line).
    """
    pkf = study_file.pkf
    settings = study_file.settings(quick)
    spec = study_file.closure
    unclosed = pkf.unclosed_terms
    key = "closure.name" if spec.name is not None else "closure.expression"
    try:
        if unclosed:
            if spec.name is not None:
                from closures import close

                mapping = close(pkf, spec.name, form=settings.form, otherwise=spec.otherwise)
            else:
                mapping = {unclosed[0]: spec.expression}
            pkf.set_closure(mapping)
        equations = pkf.to_generator(form=settings.form, closure="slot")
    except ValueError as err:
        raise study_file.error(key, str(err)) from None
    left = [str(eq.lhs) for eq in equations if eq.rhs.has(*pkf.closure_slots.values())]
    if left:
        raise study_file.error(key, f"unclosed terms remain in {', '.join(left)}")
    study = Study(study_file, settings, tuple(equations))
    _check_grid_values(study)
    return study


def _check_grid_values(study: Study) -> None:
    """Every expression, evaluated on the grid, is finite, and every variance positive.

    Raises
    ------
    StudyFileError
        Naming the key, how many grid points fail and the first of them.
    """
    file = study.file
    coordinates = [str(c) for c in file.coordinates]

    def check(key: str, values: np.ndarray, positive: bool = False) -> None:
        bad = ~np.isfinite(values) | ((values <= 0) if positive else False)
        if bad.any():
            first = np.unravel_index(int(np.flatnonzero(bad)[0]), values.shape)
            where = ", ".join(
                f"{c} = {k * length / n:.4g}"
                for c, k, n, length in zip(
                    coordinates, first, file.domain.shape, file.domain.lengths, strict=False
                )
            )
            what = "finite and > 0" if positive else "finite"
            raise file.error(
                key,
                f"must be {what} on the grid; it is not at {int(bad.sum())} point(s), first at "
                f"{where} (value {float(values[first]):g})",
            )

    with np.errstate(all="ignore"):
        for name, values in constant_fields(study).items():
            check(f"fields.{name}", values)
        for name in file.pkf.fields:
            check(f"initial.{name}", _grid_values(study, file.initial[name]))
            check(
                f"errors.{name}.variance",
                _grid_values(study, file.errors[name].variance),
                positive=True,
            )


def evaluate_on_grid(
    expression: sp.Expr,
    arguments: tuple[sp.Symbol, ...],
    coordinates: tuple[sp.Symbol, ...],
    shape: tuple[int, ...],
    lengths: tuple[float, ...],
) -> np.ndarray:
    """An expression of ``arguments`` (a subset of ``coordinates``) on the periodic grid.

    The grid is ``x_i = k L_i / n_i``, ``k = 0 .. n_i - 1`` (as the generated models);
    returns the array over the axes of ``arguments`` in their order (a constant function
    ``k(y, x)`` in its own argument order), float64.
    """
    axes = {
        c: np.arange(n) * (length / n)
        for c, n, length in zip(coordinates, shape, lengths, strict=True)
    }
    grids = np.meshgrid(*(axes[a] for a in arguments), indexing="ij")
    function = sp.lambdify(arguments, expression, modules="numpy")
    values = np.asarray(function(*grids), dtype=float)
    return np.broadcast_to(values, tuple(axes[a].size for a in arguments)).copy()


def _grid_values(study: Study, expression: sp.Expr) -> np.ndarray:
    file = study.file
    return evaluate_on_grid(
        expression, file.coordinates, file.coordinates, file.domain.shape, file.domain.lengths
    )


def constant_fields(study: Study) -> dict[str, np.ndarray]:
    """The ``[fields]`` on the grid, each over its own arguments."""
    file = study.file
    result = {}
    for name, expression in file.fields.items():
        arguments = tuple(
            sp.Symbol(c)
            for c in _function_arguments(file, name)
            if sp.Symbol(c) in file.coordinates
        )
        result[name] = evaluate_on_grid(
            expression, arguments, file.coordinates, file.domain.shape, file.domain.lengths
        )
    return result


def _function_arguments(file: StudyFile, name: str) -> tuple[str, ...]:
    for equation in file.dynamics.equations:
        for function in equation.atoms(sp.core.function.AppliedUndef):
            if function.func.__name__ == name:
                return tuple(str(a) for a in function.args)
    raise KeyError(name)


def initial_pkf_state(study: Study) -> dict[str, np.ndarray]:
    """The PKF initial state: means from ``[initial]``, variances and tensors (in the run's
    form) from ``[errors]``, cross-covariances 0 (independent initial errors).

    Returns ``{PKF field name: grid-shaped float64 array}`` (model coordinate order).
    """
    file = study.file
    shape, ndim = file.domain.shape, len(file.coordinates)
    state: dict[str, np.ndarray] = {}
    for name, symbols in file.pkf.fields.items():
        state[name] = _grid_values(study, file.initial[name])
        spec = file.errors[name]
        state[symbols.variance.func.__name__] = _grid_values(study, spec.variance)
        aspect = spec.aspect_tensor(ndim)
        tensor = {
            "aspect": aspect,
            "diffusion": aspect / 2,
            "metric": np.linalg.inv(aspect),
        }[study.settings.form]
        functions = symbols.tensor(study.settings.form)
        for i in range(ndim):
            for j in range(i, ndim):
                state[functions[i, j].func.__name__] = np.full(shape, tensor[i, j])
    names = list(file.pkf.fields)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            state[file.pkf.covariance(first, second).func.__name__] = np.zeros(shape)
    return state


def compared_variables(study: Study) -> list[str]:
    """What is compared: means, variances, cross-covariances, the form's tensor components
    and the length-scales ``L_f_<axis>`` of every field."""
    file = study.file
    form = study.settings.form
    ndim = len(file.coordinates)
    names = list(file.pkf.fields)
    result = list(names)
    result += [file.pkf.fields[f].variance.func.__name__ for f in names]
    for i, first in enumerate(names):
        result += [file.pkf.covariance(first, s).func.__name__ for s in names[i + 1 :]]
    for f in names:
        tensor = file.pkf.fields[f].tensor(form)
        result += [tensor[i, j].func.__name__ for i in range(ndim) for j in range(i, ndim)]
        result += [f"L_{f}_{c}" for c in file.coordinates]
    return result


def _with_length_scales(study: Study, forecast: xr.Dataset) -> xr.Dataset:
    """``L_f_<axis> = 1 / sqrt(g_ii)`` of the PKF tensors, as the ensemble statistics."""
    from pkf.statistics import length_scale_from_metric

    file, form = study.file, study.settings.form
    coordinates = [str(c) for c in file.coordinates]
    ndim = len(coordinates)
    added = {}
    for f, symbols in file.pkf.fields.items():
        functions = symbols.tensor(form)
        component = {
            (i, j): forecast[functions[min(i, j), max(i, j)].func.__name__]
            for i in range(ndim)
            for j in range(ndim)
        }
        dims = component[(0, 0)].dims
        matrix = np.stack(
            [np.stack([component[(i, j)].values for j in range(ndim)], -1) for i in range(ndim)],
            -2,
        )
        if form == "diffusion":
            matrix = 2 * matrix
        metric = matrix if form == "metric" else np.linalg.inv(matrix)
        lengths = length_scale_from_metric(np.moveaxis(metric, (-2, -1), (0, 1)))
        for i, c in enumerate(coordinates):
            added[f"L_{f}_{c}"] = xr.DataArray(
                lengths[i],
                dims=dims,
                coords=component[(0, 0)].coords,
                attrs={"long_name": f"length-scale of {f} along {c}", "units": "1"},
            )
    return forecast.assign(added)


def build_models(study: Study) -> tuple[GeneratedModel, GeneratedModel]:
    """The dynamics model and the closed PKF model, instantiated with the study's constants,
    constant fields, grid and numerics."""
    from generator import NNModelBuilder

    file, settings = study.file, study.settings
    name = "".join(part.capitalize() for part in _identifier(study.name).split("_")) or "Study"
    options: dict[str, Any] = {
        "shape": file.domain.shape,
        "lengths": file.domain.lengths,
        "dtype": settings.dtype,
        "time_scheme": settings.time_scheme,
        **file.dynamics.constants,
        **constant_fields(study),
    }
    dynamics_class = NNModelBuilder(
        list(file.dynamics.equations), f"{name}Dynamics", accuracy=settings.accuracy
    ).build()
    pkf_class = NNModelBuilder(
        list(study.closed_equations), f"{name}PKF", accuracy=settings.accuracy
    ).build()
    dynamics = dynamics_class(**_accepted(dynamics_class, options))
    pkf_model = pkf_class(**_accepted(pkf_class, options))
    return dynamics, pkf_model


def _accepted(model_class: type, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without the constants a generated class does not take."""
    values = {*model_class.constants, *model_class.constant_functions}  # type: ignore[attr-defined]
    grid = {"shape", "lengths", "dtype", "time_scheme"}
    return {k: v for k, v in options.items() if k in grid or k in values}


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def run_study(study: Study, output: Output) -> dict:
    """PKF forecast and reference ensemble, compared at the saved times; write the results.

    Writes ``study.nc`` (a ``source`` dimension: ``pkf``, ``ensemble``) and the figures
    (1D: ``profiles`` and ``errors``; 2D: ``maps``, ``anisotropy`` and ``errors``; 3D:
    ``errors``); returns the summary entries (relative L2 error per variable and saved time).
    """
    from pkf import EnsembleForecast
    from pkf.sampling import SeededMembers, gaussian_correlation

    file, settings = study.file, study.settings
    times, saved = settings.times, settings.saved
    with output.step("generate"):
        dynamics, pkf_model = build_models(study)
    initial = initial_pkf_state(study)
    with output.step("pkf_forecast_incl_compile"):
        forecast = pkf_model.forecast(times, initial, saved_times=saved)
    forecast = _with_length_scales(study, forecast)
    ndim = len(file.coordinates)
    members = SeededMembers(
        {f: initial[f] for f in file.pkf.fields},
        file.domain.lengths,
        {
            f: gaussian_correlation(aspect=spec.aspect_tensor(ndim))
            if ndim > 1
            else spec.aspect_tensor(1)[0, 0] ** 0.5
            for f, spec in file.errors.items()
        },
        {f: initial[file.pkf.fields[f].variance.func.__name__] for f in file.pkf.fields},
        seed=settings.seed,
    )
    engine = EnsembleForecast(
        dynamics, settings.members, progress=output.progress, client=output.client
    )
    with output.step("ensemble_incl_compile"):
        ensemble = engine.run(times, members, saved_times=saved).to_dataset()
    compared = compared_variables(study)
    errors = errors_by_time(forecast, ensemble, compared)
    stacked = stack_sources({"pkf": forecast, "ensemble": ensemble}, compared)
    stacked.attrs.update(
        title=f"pkfnet study {file.path.name}: PKF vs ensemble",
        study_file=str(file.path),
        closure=file.closure.describe(),
        members=settings.members,
        seed=settings.seed,
    )
    output.write_dataset(stacked, "study.nc")
    with output.step("figures"):
        _figures(study, forecast, ensemble, errors, output)
    final = {name: values[-1] for name, values in errors.items()}
    output.say(
        f"{study.name}: {settings.members} members, {settings.steps} steps; relative L2 at "
        f"t = {saved[-1]:.3g}: "
        + ", ".join(f"{k} {100 * v:.2f} %" for k, v in final.items() if v is not None)
    )
    return {
        "study_file": str(file.path),
        "equations": list(file.dynamics.text),
        "constants": dict(file.dynamics.constants),
        "expressions": dict(file.expressions),
        "closure": file.closure.describe(),
        "pkf_equations": [str(eq) for eq in study.closed_equations],
        "saved_times": saved.tolist(),
        "relative_l2_error": errors,
        "final_relative_l2_error": final,
    }


def _figures(
    study: Study,
    forecast: xr.Dataset,
    ensemble: xr.Dataset,
    errors: dict[str, list[float | None]],
    output: Output,
) -> None:
    from .figures import plot_anisotropy, plot_error_curves, plot_field_table, plot_time_profiles

    file, settings = study.file, study.settings
    coordinates = [str(c) for c in file.coordinates]
    rename = {c: n for c, n in zip(coordinates, ("x", "y"), strict=False) if c != n}
    pkf, ens = forecast.rename(rename), ensemble.rename(rename)
    fields = list(file.pkf.fields)
    shown = [
        name
        for f in fields
        for name in (f, file.pkf.fields[f].variance.func.__name__, f"L_{f}_{coordinates[0]}")
    ]
    label = f"ensemble ({settings.members})"
    if len(coordinates) == 1:
        output.write_figure(
            plot_time_profiles(
                {label: ens, "PKF": pkf}, {name: (name, 1.0, name) for name in shown}
            ),
            "profiles",
        )
    elif len(coordinates) == 2:
        final = {"time": settings.saved[-1]}
        rows = {
            name: {
                "PKF": pkf[name].sel(final),
                label: ens[name].sel(final),
                "PKF − ensemble": (pkf[name] - ens[name]).sel(final),
            }
            for name in shown
        }
        output.write_figure(
            plot_field_table(
                rows,
                suptitle=f"{study.name}, t = {settings.saved[-1]:.3g}",
                shared=("PKF", label),
                diverging=("PKF − ensemble",),
            ),
            "maps",
        )
        f = fields[0]
        pkf_aspect = _aspect_components(study, f, pkf, final)
        x, y = coordinates
        ens_aspect = (
            ens[f"s_{f}_{x}{x}"].sel(final),
            ens[f"s_{f}_{x}{y}"].sel(final),
            ens[f"s_{f}_{y}{y}"].sel(final),
        )
        output.write_figure(
            plot_anisotropy(
                {"PKF": pkf_aspect, label: ens_aspect},
                every=max(1, file.domain.shape[0] // 12),
                scale=0.3,
                suptitle=f"{study.name}, t = {settings.saved[-1]:.3g}: principal "
                f"length-scales of {f} (ellipses: 0.3 × length-scales)",
            ),
            "anisotropy",
        )
    output.write_figure(
        plot_error_curves(
            settings.saved,
            {k: v for k, v in errors.items() if k in shown},
            title=f"{study.name}: PKF vs ensemble ({settings.members} members), "
            f"closure {file.closure.describe()}",
        ),
        "errors",
    )


def _aspect_components(study: Study, f: str, forecast: xr.Dataset, at: dict) -> tuple:
    """``(s_xx, s_xy, s_yy)`` of field ``f`` from the PKF tensor of the run's form (2D)."""
    functions = study.file.pkf.fields[f].tensor(study.settings.form)
    xx, xy, yy = (
        forecast[functions[i, j].func.__name__].sel(at) for i, j in ((0, 0), (0, 1), (1, 1))
    )
    form = study.settings.form
    if form == "diffusion":
        return 2 * xx, 2 * xy, 2 * yy
    if form == "aspect":
        return xx, xy, yy
    det = xx * yy - xy**2
    return yy / det, -xy / det, xx / det


class _StudyCase:
    """A study as a case of the scaffold (:func:`cases.study.run_case`)."""

    DESCRIPTION = "a user's study file: PKF vs reference ensemble"
    Settings: type = RunSettings

    def __init__(self, study: Study) -> None:
        self.study = study

    def run(self, settings: Any, output: Output) -> dict:
        return run_study(self.study, output)


def run(study: Study, output: Output) -> dict:
    """Run ``study`` on the case scaffold: results, timings and ``summary.json``."""
    return run_case(study.name, _StudyCase(study), study.settings, output)
