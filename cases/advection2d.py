"""Tracer advection by a heterogeneous rotating wind: PKF against an ensemble (SymPKF 2D example).

∂t c + u ∂x c + v ∂y c = 0 on the periodic unit square, with the stationary wind
(u, v) = R(θ) (20 Δ, 10 Δ) / T, R(θ) the rotation by θ(x, y) = (π/3) cos(2π (x + 2y)),
Δ = 1/241 the spacing of the reference 241² grid and T = 1. The PKF of this dynamics (mean,
variance V and the three aspect-tensor components) is closed; it is derived with
:class:`pkf.SymbolicPKF`, generated with :class:`generator.NNModelBuilder` and compared with a
batched ensemble of the generated tracer model (:class:`pkf.EnsembleForecast`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import sympy as sp

from .comparison import errors_by_time

__all__ = [
    "ASPECT_COMPONENTS",
    "SETTINGS",
    "advection_equation",
    "build_models",
    "gaussian_bump",
    "rotating_wind",
    "run",
    "time_step",
]

#: Reference grid: the wind is (20, 10) of its spacings per T whatever grid a run uses.
REFERENCE_SHAPE = (241, 241)
#: full and quick settings: grid, ensemble size, final time (units of T), number of saved times.
SETTINGS = {
    "full": {"shape": (241, 241), "members": 400, "final_time": 1.0, "saved": 5},
    "quick": {"shape": (61, 61), "members": 100, "final_time": 1.0, "saved": 5},
}
#: aspect-tensor components (index pairs) in the PKF field names s_c_xx, s_c_xy, s_c_yy.
ASPECT_COMPONENTS = {"s_xx": (0, 0), "s_xy": (0, 1), "s_yy": (1, 1)}


def advection_equation() -> sp.Eq:
    """∂t c = −u(x, y) ∂x c − v(x, y) ∂y c, with a stationary wind given as constant fields."""
    t, x, y = sp.symbols("t x y")
    c = sp.Function("c")(t, x, y)
    u, v = sp.Function("u")(x, y), sp.Function("v")(x, y)
    return sp.Eq(sp.Derivative(c, t), -u * sp.Derivative(c, x) - v * sp.Derivative(c, y))


def rotating_wind(
    shape: tuple[int, int] = REFERENCE_SHAPE,
    lengths: tuple[float, float] = (1.0, 1.0),
    cells: tuple[float, float] = (20.0, 10.0),
    period: float = 1.0,
    reference_shape: tuple[int, int] = REFERENCE_SHAPE,
) -> dict[str, np.ndarray]:
    """Wind components ``u``, ``v`` (each (nx, ny), length / time) on the grid ``shape``.

    (u, v) = R(θ) (cells_x Δx, cells_y Δy) / period with θ = (π/3) cos(2π (x + 2y)) and Δ the
    spacing of ``reference_shape`` (so coarser grids solve the same physical problem).
    """
    dx, dy = (L / n for L, n in zip(lengths, shape, strict=True))
    ref_dx, ref_dy = (L / n for L, n in zip(lengths, reference_shape, strict=True))
    x, y = np.meshgrid(np.arange(shape[0]) * dx, np.arange(shape[1]) * dy, indexing="ij")
    theta = np.pi / 3 * np.cos(2 * np.pi * (x / lengths[0] + 2 * y / lengths[1]))
    wx, wy = cells[0] * ref_dx / period, cells[1] * ref_dy / period
    return {
        "u": np.cos(theta) * wx - np.sin(theta) * wy,
        "v": np.sin(theta) * wx + np.cos(theta) * wy,
    }


def time_step(wind: dict[str, np.ndarray], spacing: tuple[float, float]) -> float:
    """dt = min(dx / max|u|, dy / max|v|) / 6 (time units)."""
    return min(spacing[0] / np.abs(wind["u"]).max(), spacing[1] / np.abs(wind["v"]).max()) / 6


def gaussian_bump(
    shape: tuple[int, int], lengths: tuple[float, float] = (1.0, 1.0), width: float = 0.1
) -> np.ndarray:
    """exp(−|x − centre|² / (2 width²)) at the centre of the domain, (nx, ny)."""
    axes = [np.arange(n) * L / n - L / 2 for n, L in zip(shape, lengths, strict=True)]
    x, y = np.meshgrid(*axes, indexing="ij")
    return np.exp(-(x**2 + y**2) / (2 * width**2))


def build_models(
    shape: tuple[int, int], lengths: tuple[float, float], dtype: str, accuracy: int
) -> tuple[object, object, object]:
    """Generate and instantiate the tracer model and its PKF model (aspect form).

    Returns
    -------
    tuple
        ``(tracer model, PKF model, SymbolicPKF)``; both models carry the wind of
        :func:`rotating_wind` as constant fields.
    """
    from generator import NNModelBuilder
    from pkf import SymbolicPKF

    wind = rotating_wind(shape, lengths)
    equation = advection_equation()
    tracer_class = NNModelBuilder(equation, class_name="NNAdvection2D", accuracy=accuracy).build()
    symbolic = SymbolicPKF(equation)
    if symbolic.unclosed_terms:
        raise RuntimeError(
            f"advection2d: the PKF of advection should be closed, got {symbolic.unclosed_terms}"
        )
    pkf_class = NNModelBuilder(
        symbolic.to_generator(form="aspect", closure="zero"),
        class_name="PKFAdvection2D",
        accuracy=accuracy,
    ).build()
    tracer = tracer_class(shape=shape, lengths=lengths, dtype=dtype, **wind)
    pkf_model = pkf_class(shape=shape, lengths=lengths, dtype=dtype, **wind)
    return tracer, pkf_model, symbolic


def _ensemble_fields(result, name: str = "c") -> dict[str, np.ndarray]:
    """Mean, V and aspect components of an :class:`pkf.EnsembleResult`, each (n_saved, nx, ny)."""
    aspect = result.aspect(name)
    fields = {"c": result.mean(name), "V": result.variance(name)}
    fields.update({key: aspect[:, i, j] for key, (i, j) in ASPECT_COMPONENTS.items()})
    return fields


def _write_netcdf(
    path: Path,
    times: np.ndarray,
    grid: dict[str, np.ndarray],
    pkf_fields: dict[str, np.ndarray],
    ensembles: list[dict[str, np.ndarray]],
    attributes: dict,
    dt: float,
    seed: int,
) -> Path:
    from pkf import NetCDFWriter, VariableSpec

    meaning = {
        "c": ("mean tracer concentration", "1"),
        "V": ("tracer error variance", "1"),
        "s_xx": ("aspect tensor component s_xx (correlation length squared along x)", "1"),
        "s_xy": ("aspect tensor component s_xy", "1"),
        "s_yy": ("aspect tensor component s_yy (correlation length squared along y)", "1"),
    }
    labels = ("ensemble 1 (reference)", "ensemble 2 (independent)", "ensembles 1 and 2 pooled")
    prefixes = ("ens1", "ens2", "ens_pooled")
    sources = [("pkf", "PKF forecast"), *zip(prefixes, labels, strict=False)]
    specs = [
        VariableSpec(f"{prefix}_{key}", units, f"{label}: {text}", ("x", "y"))
        for prefix, label in sources
        for key, (text, units) in meaning.items()
    ]
    data = {f"pkf_{key}": pkf_fields[key] for key in meaning}
    for prefix, fields in zip(prefixes, ensembles, strict=True):
        data.update({f"{prefix}_{key}": fields[key] for key in meaning})
    with NetCDFWriter.create(
        path,
        specs,
        grid,
        equations=str(advection_equation()),
        dt=dt,
        seed=seed,
        record_units="1",
        attributes=attributes,
        overwrite=True,
    ) as writer:
        writer.append_records(times, data)
    return path


def run(
    out: str | Path = "results/advection2d",
    quick: bool = False,
    dtype: str = "float64",
    accuracy: int = 2,
    quiet: bool = False,
    seed: int = 0,
    members: int | None = None,
    **_: object,
) -> dict:
    """Run the case: PKF and two independent ensembles, statistics compared at saved times.

    Parameters
    ----------
    out : path
        Output directory (created): ``advection2d.nc``, figures, ``summary.json``.
    quick : bool
        Coarse grid (61²) and 100 members instead of 241² and 400.
    dtype : {"float64", "float32"}
        Floating-point type of the generated models.
    accuracy : int
        Order of the centred finite-difference stencils.
    quiet : bool
        No progress bars or printed summary.
    seed : int
        Seed of the first ensemble (the second, for the sampling noise, uses ``seed + 1``).
    members : int, optional
        Ensemble size (default 400, quick 100).

    Returns
    -------
    dict
        The summary (also written to ``out/summary.json``): relative L2 errors of every PKF
        field against the reference ensemble at every saved time, the same for the second
        ensemble against the first (sampling noise) and for the PKF against both ensembles
        pooled, timings and file names.
    """
    from pkf import EnsembleForecast, EnsembleResult, sample_errors

    from .figures import plot_anisotropy, plot_error_curves, plot_field_table

    setting = SETTINGS["quick" if quick else "full"]
    members = int(members or setting["members"])
    shape, lengths = setting["shape"], (1.0, 1.0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spacing = tuple(L / n for L, n in zip(lengths, shape, strict=True))
    wind = rotating_wind(shape, lengths)
    dt = time_step(wind, spacing)
    steps = int(np.ceil(setting["final_time"] / dt))
    dt = setting["final_time"] / steps
    times = np.arange(steps + 1) * dt
    saved_index = np.unique(np.rint(np.linspace(0, steps, setting["saved"])).astype(int))
    saved = times[saved_index]
    variance0, length_scale0 = 1.0, 0.1
    c0 = gaussian_bump(shape, lengths, width=0.1)
    seconds = {}

    start = time.perf_counter()
    tracer, pkf_model, symbolic = build_models(shape, lengths, dtype, accuracy)
    seconds["derive_and_build"] = time.perf_counter() - start

    state0 = {
        "c": c0,
        "V_c": np.full(shape, variance0),
        "s_c_xx": np.full(shape, length_scale0**2),
        "s_c_xy": np.zeros(shape),
        "s_c_yy": np.full(shape, length_scale0**2),
    }
    start = time.perf_counter()
    forecast = pkf_model.forecast(times, state0, saved_times=saved)
    seconds["pkf_forecast_incl_compile"] = time.perf_counter() - start
    pkf_fields = {
        key: np.stack([forecast[float(t)][name] for t in saved])
        for key, name in (
            ("c", "c"),
            ("V", "V_c"),
            ("s_xx", "s_c_xx"),
            ("s_xy", "s_c_xy"),
            ("s_yy", "s_c_yy"),
        )
    }

    ensembles, results = [], []
    engine = EnsembleForecast(tracer, members, progress=not quiet)
    for k in range(2):
        start = time.perf_counter()
        errors = sample_errors(
            shape, lengths, members, length_scale0, variance=variance0, seed=seed + k
        )
        result = engine.run(times, {"c": c0 + errors}, saved_times=saved)
        del errors
        ensembles.append(_ensemble_fields(result))
        results.append(result)
        seconds[f"ensemble_{k + 1}_incl_compile"] = time.perf_counter() - start
    # Both ensembles merged exactly (2 x members): the PKF error against it should shrink by
    # about sqrt(2) if it is sampling noise.
    pooled = EnsembleResult(saved, results[0].accumulator.merge(results[1].accumulator))
    ensembles.append(_ensemble_fields(pooled))

    pkf_errors = errors_by_time(pkf_fields, ensembles[0], skip_zero=True)
    pooled_errors = errors_by_time(pkf_fields, ensembles[2], skip_zero=True)
    noise = errors_by_time(ensembles[1], ensembles[0], skip_zero=False)
    noise["s_xy"][0] = None  # t = 0: both are sampling noise around 0

    start = time.perf_counter()
    final = len(saved) - 1
    rows = {}
    for key, label in (("V", "V"), ("s_xx", "s_xx"), ("s_xy", "s_xy"), ("s_yy", "s_yy")):
        rows[label] = {
            "PKF": pkf_fields[key][final],
            f"ensemble ({members})": ensembles[0][key][final],
            "PKF − ensemble": pkf_fields[key][final] - ensembles[0][key][final],
        }
    ens_label = f"ensemble ({members})"
    figures = plot_field_table(
        rows,
        out / "advection2d_fields",
        suptitle=f"2D advection, t = {saved[final]:.3g} T: variance and aspect tensor",
        shared=("PKF", ens_label),
        diverging=("PKF − ensemble",),
    )

    def aspect_tensor(fields: dict[str, np.ndarray]) -> np.ndarray:
        s = fields
        return np.array(
            [[s["s_xx"][final], s["s_xy"][final]], [s["s_xy"][final], s["s_yy"][final]]]
        )

    figures += plot_anisotropy(
        {"PKF": aspect_tensor(pkf_fields), ens_label: aspect_tensor(ensembles[0])},
        lengths,
        out / "advection2d_anisotropy",
        every=max(1, shape[0] // 12),
        scale=0.3,
        suptitle=f"2D advection, t = {saved[final]:.3g} T: principal length-scales "
        "(ellipses: 0.3 × length-scales)",
    )

    def as_array(values: list[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values])

    figures += plot_error_curves(
        saved,
        {key: as_array(pkf_errors[key]) for key in ("V", *ASPECT_COMPONENTS)},
        out / "advection2d_errors",
        reference={key: as_array(noise[key]) for key in ("V", *ASPECT_COMPONENTS)},
        title=f"PKF vs ensemble (solid); ensemble 2 vs ensemble 1 (dashed)\n{members} members",
    )
    seconds["figures"] = time.perf_counter() - start

    grid = {"x": np.arange(shape[0]) * spacing[0], "y": np.arange(shape[1]) * spacing[1]}
    attributes = {
        "title": "pkfnet advection2d case: PKF vs ensemble for 2D heterogeneous advection",
        "members": members,
        "time_units": "T (wind period, T = 1)",
        "stencil_accuracy": accuracy,
        "ensemble_metric_stencil": "second-order centred periodic difference",
        "second_ensemble_seed": seed + 1,
    }
    netcdf = _write_netcdf(
        out / "advection2d.nc", saved, grid, pkf_fields, ensembles, attributes, dt, seed
    )

    summary = {
        "case": "advection2d",
        "setting": "quick" if quick else "full",
        "grid": list(shape),
        "members": members,
        "dt": dt,
        "steps": steps,
        "saved_times": saved.tolist(),
        "dtype": dtype,
        "accuracy": accuracy,
        "seed": seed,
        "initial": {"variance": variance0, "length_scale": length_scale0, "bump_width": 0.1},
        "pkf_equations": [str(eq) for eq in symbolic.in_aspect],
        "relative_l2_error": pkf_errors,
        "ensemble_sampling_noise": noise,
        "relative_l2_error_vs_pooled_ensembles": pooled_errors,
        "final_relative_l2_error": {key: row[-1] for key, row in pkf_errors.items()},
        "final_ensemble_sampling_noise": {key: row[-1] for key, row in noise.items()},
        "final_relative_l2_error_vs_pooled_ensembles": {
            key: row[-1] for key, row in pooled_errors.items()
        },
        "seconds": seconds,
        "files": [str(p) for p in (*figures, netcdf)],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not quiet:
        final_errors = ", ".join(
            f"{key} {100 * value:.1f} %"
            for key, value in summary["final_relative_l2_error"].items()
        )
        final_noise = ", ".join(
            f"{key} {100 * value:.1f} %"
            for key, value in summary["final_ensemble_sampling_noise"].items()
        )
        print(f"advection2d: {shape[0]}x{shape[1]}, {members} members, {steps} RK4 steps")
        print(f"relative L2 error PKF vs ensemble at t = {saved[-1]:.3g}: {final_errors}")
        print(f"ensemble 2 vs ensemble 1 at t = {saved[-1]:.3g}: {final_noise}")
        pooled_line = ", ".join(
            f"{key} {100 * value:.1f} %"
            for key, value in summary["final_relative_l2_error_vs_pooled_ensembles"].items()
        )
        print(f"PKF vs both ensembles pooled ({2 * members} members): {pooled_line}")
        print(f"wrote {out / 'summary.json'}, {netcdf}, {len(figures)} figure files")
    return summary
