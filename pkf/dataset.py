"""Training datasets of PKF statistics from many independent ensemble forecasts.

:func:`build_dataset` runs ``K`` ensembles of ``N`` members, each around its own random
background, and writes the statistics (mean, V, diffusion tensor, cross-covariances) of
consecutive time steps ``(k, k + 1)`` in a window as samples of a netCDF file. The file grows one
ensemble at a time and a rerun resumes an interrupted build (per-ensemble seeds make it
deterministic).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from .ensemble import DEFAULT_MEMORY_BUDGET, EnsembleForecast, EnsembleResult
from .netcdf import NetCDFWriter, VariableSpec
from .sampling import Correlation, sample_errors

__all__ = ["Background", "build_dataset", "burgers_background", "ensemble_seed"]

Background = Callable[[np.random.Generator, Any], Mapping[str, np.ndarray]]
"""``background(rng, model) -> {field: grid array}``: the random background of one ensemble."""

NEXT_SUFFIX = "_next"


def ensemble_seed(seed: int, ensemble: int) -> np.random.SeedSequence:
    """Seed of ensemble ``ensemble``: child ``ensemble`` of ``SeedSequence(seed).spawn``.

    It depends only on ``(seed, ensemble)``, so a resumed build draws the same numbers.

    Examples
    --------
    >>> a = np.random.default_rng(ensemble_seed(1, 3)).random()
    >>> b = np.random.default_rng(np.random.SeedSequence(1).spawn(4)[3]).random()
    >>> a == b
    True
    """
    return np.random.SeedSequence(int(seed), spawn_key=(int(ensemble),))


def burgers_background(
    amplitude: float = 0.25,
    perturbation_std: float = 0.025,
    perturbation_length: float = 0.1,
    field: str = "u",
) -> Background:
    """Random Burgers backgrounds: the paper's ``U0`` plus a smooth random perturbation.

    ``U0(x) = amplitude (1 + cos(2 pi (x - 0.25) / D))`` (D the domain length; ``max U0 = 0.5``
    by default, as in Pannekoucke & Fablet 2020) plus a homogeneous Gaussian-correlated random
    field of standard deviation ``perturbation_std`` (default 5 % of ``max U0``) and length-scale
    ``perturbation_length`` (default 0.1, five times the error length-scale 0.02). The front
    then forms at a slightly different place and time in each ensemble, while the flow stays in
    the paper's regime (CFL ``max|u| dt / dx`` about 0.3 for dt = 0.002 on 241 points).

    Returns
    -------
    Background
        ``background(rng, model) -> {field: (nx,)}`` for a 1D model.
    """

    def background(rng: np.random.Generator, model: Any) -> dict[str, np.ndarray]:
        if len(model.shape) != 1:
            raise ValueError(f"burgers_background: expected a 1D model, got shape {model.shape}")
        (x,) = model.grid
        (length,) = model.lengths
        base = amplitude * (1.0 + np.cos(2.0 * np.pi * (x - 0.25 * length) / length))
        perturbation = sample_errors(
            model.shape,
            model.lengths,
            members=1,
            correlation=perturbation_length,
            variance=perturbation_std**2,
            seed=rng,
        )[0]
        return {field: base + perturbation}

    return background


def _per_field(value: Any, fields: tuple[str, ...], name: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        if set(value) != set(fields):
            raise ValueError(f"{name}: expected one entry per field {fields}, got {tuple(value)}")
        return dict(value)
    return {field: value for field in fields}


def _statistic_specs(model: Any) -> list[tuple[str, str, str, Callable]]:
    """``(name, units, long_name, extractor)`` of the statistics written per time step."""
    coords = tuple(model.coordinates)
    fields = tuple(model.prognostic_functions)
    ndim = len(coords)
    specs = []
    for field in fields:
        specs.append((field, "1", f"ensemble mean of {field}", lambda r, f=field: r.mean(f)))
        specs.append(
            (f"V_{field}", "1", f"error variance of {field}", lambda r, f=field: r.variance(f))
        )
        for i in range(ndim):
            for j in range(i, ndim):
                label = coords[i] + coords[j]
                specs.append(
                    (
                        f"nu_{field}_{label}",
                        "1",
                        f"diffusion tensor nu_{label} = (g^-1)_{label} / 2 of the error "
                        f"correlation of {field} (length squared)",
                        lambda r, f=field, i=i, j=j: r.diffusion(f)[:, i, j],
                    )
                )
    for first, second in combinations(fields, 2):
        specs.append(
            (
                f"V_{first}_{second}",
                "1",
                f"error cross-covariance of {first} and {second}",
                lambda r, a=first, b=second: r.cross_covariance(a, b),
            )
        )
    return specs


def build_dataset(
    path: str | os.PathLike,
    model: Any,
    *,
    ensembles: int,
    members: int,
    background: Background,
    error_variance: float | ArrayLike | Mapping[str, float | ArrayLike],
    correlation: float | Correlation | Mapping[str, float | Correlation],
    dt: float,
    steps: int,
    window: tuple[int, int],
    seed: int,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = True,
) -> Path:
    """Build (or resume) a dataset of consecutive-step PKF statistics from K ensembles.

    Ensemble ``e`` (``0 <= e < ensembles``) draws, from ``ensemble_seed(seed, e)``, a background
    ``background(rng, model)`` and then ``members`` error fields per prognostic field
    (:func:`pkf.sampling.sample_errors`, prescribed variance and homogeneous correlation). The
    members are integrated ``steps`` steps of ``dt`` by :class:`EnsembleForecast`; for each step
    ``k`` with ``window[0] <= k < window[1]`` one sample holds the statistics at step ``k``
    (variables ``u``, ``V_u``, ``nu_u_xx``, ... and ``V_u_v`` for field pairs) and at step
    ``k + 1`` (the same names with suffix ``_next``), plus ``ensemble``, ``step`` and the record
    coordinate ``sample`` (time of step ``k``). The samples of an ensemble are appended as one
    atomic block; rerunning after an interruption (SIGINT, kill) resumes at the first missing
    ensemble and gives the same file as an uninterrupted build.

    Parameters
    ----------
    path : path-like
        netCDF output (classic 64-bit offset format, CF-1.8, readable by ``xarray``). An
        existing file from the same build settings is resumed (a complete one is left as is).
    model : generator.model.GeneratedModel
        Generated model of the dynamics (grid, dtype and constants already set).
    ensembles : int
        Number of independent ensembles ``K``.
    members : int
        Members per ensemble ``N``.
    background : Background
        ``background(rng, model) -> {field: grid array}``, e.g. :func:`burgers_background`.
    error_variance : float, array or mapping
        Initial error variance per field (scalar or grid-shaped, field units squared).
    correlation : float, Correlation or mapping
        Initial error correlation per field (Gaussian length-scale or a correlation function,
        see :func:`pkf.sampling.sample_errors`).
    dt : float
        Time step (model time units).
    steps : int
        Steps integrated per ensemble (``>= window[1]``).
    window : (int, int)
        ``(first, stop)``: samples pair steps ``k`` and ``k + 1`` for ``first <= k < stop``.
    seed : int
        Root seed.
    memory_budget : int, default 1 GiB
        Passed to :class:`EnsembleForecast` (chunks of members).
    progress : bool, default True
        tqdm progress bar over ensembles.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    The paper's Burgers training set (400 ensembles x 400 members, steps 400 -> 500, 40 000
    samples)::

        build_dataset("burgers.nc", burgers, ensembles=400, members=400,
                      background=burgers_background(), error_variance=0.005**2,
                      correlation=0.02, dt=0.002, steps=500, window=(400, 500), seed=0)
    """
    path = Path(path)
    fields = tuple(model.prognostic_functions)
    first, stop = (int(k) for k in window)
    if not 0 <= first < stop <= steps:
        raise ValueError(
            f"window: expected 0 <= first < stop <= steps = {steps}, got ({first}, {stop})"
        )
    if ensembles < 1 or members < 2:
        raise ValueError(
            f"ensembles >= 1 and members >= 2 required, got ensembles={ensembles}, "
            f"members={members}"
        )
    variances = _per_field(error_variance, fields, "error_variance")
    correlations = _per_field(correlation, fields, "correlation")
    pairs = stop - first
    specs = _statistic_specs(model)
    settings = {
        "build_ensembles": int(ensembles),
        "build_members": int(members),
        "build_steps": int(steps),
        "build_window": f"{first} {stop}",
        "build_seed": str(seed),
        "build_dt": repr(float(dt)),
    }
    writer = _open_or_create(path, model, specs, settings, dt, seed)
    with writer:
        done, remainder = divmod(writer.n_records, pairs)
        if remainder:
            raise ValueError(
                f"{path}: {writer.n_records} samples is not a whole number of ensembles of "
                f"{pairs} samples; the file was not written by build_dataset"
            )
        times = np.arange(steps + 1) * float(dt)
        saved = times[first : stop + 1]
        forecast = EnsembleForecast(model, members, memory_budget=memory_budget, progress=False)
        with tqdm(
            total=ensembles,
            initial=min(done, ensembles),
            desc=f"dataset {path.name}",
            unit="ensemble",
            disable=not progress,
        ) as bar:
            for ensemble in range(done, ensembles):
                rng = np.random.default_rng(ensemble_seed(seed, ensemble))
                initial = _initial_members(model, rng, background, members, variances, correlations)
                result = forecast.run(times, initial, saved_times=saved)
                data = _samples(result, specs, ensemble, first, stop)
                data["time"] = saved[:-1]
                writer.append_records(np.arange(pairs) + ensemble * pairs, data)
                bar.update(1)
    return path


def _open_or_create(
    path: Path, model: Any, specs: list, settings: dict, dt: float, seed: int
) -> NetCDFWriter:
    if path.exists():
        writer = NetCDFWriter.open(path)
        found = {key: writer.attributes.get(key) for key in settings}
        stored = {key: str(value) for key, value in found.items()}
        if stored != {key: str(value) for key, value in settings.items()}:
            writer.close()
            raise ValueError(
                f"{path} exists with other build settings {found}; expected {settings}. "
                "Remove it or choose another path"
            )
        return writer
    dims = ("x", "y", "z")[: len(model.shape)]
    variables = [
        VariableSpec(name + suffix, units, long_name + when, dims)
        for name, units, long_name, _ in specs
        for suffix, when in (("", " at step k"), (NEXT_SUFFIX, " at step k + 1"))
    ]
    variables += [
        VariableSpec("ensemble", "1", "ensemble index", (), dtype="i4"),
        VariableSpec("step", "1", "time step index k", (), dtype="i4"),
        VariableSpec("time", "1", "model time at step k", (), standard_name="time"),
    ]
    coords = {name: axis for name, axis in zip(("x", "y", "z"), model.grid, strict=False)}
    return NetCDFWriter.create(
        path,
        variables,
        coords,
        equations=getattr(model, "equations_text", "") or type(model).__name__,
        dt=dt,
        seed=seed,
        record_dim="sample",
        record_units="1",
        record_dtype="i4",
        attributes={
            "title": "pkfnet PKF training dataset (ensemble statistics at steps k, k + 1)",
            "model": type(model).__name__,
            **settings,
        },
    )


def _initial_members(
    model: Any,
    rng: np.random.Generator,
    background: Background,
    members: int,
    variances: Mapping[str, Any],
    correlations: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    values = background(rng, model)
    fields = tuple(model.prognostic_functions)
    if not isinstance(values, Mapping) or set(values) != set(fields):
        raise ValueError(f"background: expected a mapping of the fields {fields}")
    initial = {}
    for field in fields:
        base = np.asarray(values[field], dtype=float)
        if base.shape != tuple(model.shape):
            raise ValueError(
                f"background[{field!r}]: expected grid shape {model.shape}, got {base.shape}"
            )
        errors = sample_errors(
            model.shape,
            model.lengths,
            members,
            correlation=correlations[field],
            variance=variances[field],
            seed=rng,
        )
        initial[field] = base + errors
    return initial


def _samples(
    result: EnsembleResult, specs: list, ensemble: int, first: int, stop: int
) -> dict[str, np.ndarray]:
    data = {}
    for name, _, _, extract in specs:
        values = extract(result)
        data[name] = values[:-1]
        data[name + NEXT_SUFFIX] = values[1:]
    count = stop - first
    data["ensemble"] = np.full(count, ensemble, dtype=np.int32)
    data["step"] = np.arange(first, stop, dtype=np.int32)
    return data
