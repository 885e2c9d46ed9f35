"""Heterogeneous diffusion on a bounded interval: the PKF against ensembles (issue 16).

∂t u = ∂x(κ(x) ∂x u) on [0, 1], κ(x) = κ₀ (1 + sin(2πx) / 2), with Neumann (no flux) or
Dirichlet conditions at both ends; the shared body of :mod:`cases.diffusion_neumann` and
:mod:`cases.diffusion_dirichlet`. The PKF (aspect form) is closed by the P18 closure of
E[ε ∂x⁴ε] (Pannekoucke et al. 2018, :func:`closures.close`), and its boundary conditions come
from the dynamics' (:func:`pkf.boundaries.pkf_boundaries`):

* Neumann: the error's derivative vanishes at the walls, so the statistics are even under
  reflection (zero derivative of V) and the normalised error's derivative vanishes there: the
  metric is 0 at the walls (an infinite length-scale), so this PKF is in metric form.
* Dirichlet with boundary errors of variance V_b and Gaussian correlation in time of time-scale
  τ (:class:`pkf.sampling.BoundaryErrors`): V = V_b at the walls, and the aspect tensor of the
  errors the wall forces by diffusion into the domain. For a stationary Gaussian forcing of a
  half-line, e(x) = exp(−x √(iω/κ)) e_b in frequency, so with p(ω) the forcing's spectral
  density (normal, standard deviation 1/τ), E[(∂x e)²] = V_b E|ω| / κ and
  E[e ∂x e] = −V_b E√(|ω|/2) / √κ at the wall, and the normalised metric is
  g_b = (E|ω| − (E√(|ω|/2))²) / κ = (√(2/π) − 2^{-1/2} Γ(3/4)² / π) / (κ τ) ≈ 0.4599 / (κ τ):
  s_b = 1 / g_b ≈ 2.174 κ(0) τ (:func:`wall_aspect`). The initial members are made continuous
  with their wall values at t = 0 (:class:`pkf.sampling.BoundaryConsistentMembers`).

Near a wall the variance also holds what no local closure represents: with Neumann walls the
correlation of each point with its own mirror image; with Dirichlet walls the (negative) odd
image of the initial errors and the wall-forced layers, whose profile is a superposition of
damped waves exp(−x √(iω/κ)). Both cases also report the PKF of the even extension corrected
for the walls (:mod:`cases.wall_images`: :func:`~cases.wall_images.image_corrected`,
:func:`~cases.wall_images.dirichlet_wall_corrected`), next to the plain bounded PKF.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import sympy as sp
import xarray as xr

from .bounded import BoundedSettings
from .comparison import at_final_time, errors_by_time, percent, stack_sources
from .study import Output

if TYPE_CHECKING:
    from pkf import SymbolicPKF

__all__ = [
    "diffusion_equation",
    "diffusivity",
    "run_bounded",
    "wall_aspect",
]

#: κ₀, the initial length-scale L₀, the Dirichlet boundary errors' variance V_b and time-scale τ.
PARAMETERS: dict[str, float] = {"kappa": 0.01, "L0": 0.05, "V_b": 0.5, "tau": 0.1}
COMPARED = ("V_u", "g_u_xx")
Walls = Literal["neumann", "dirichlet"]
#: What the summary's ``*_image_corrected`` keys measure, by walls.
IMAGE_CORRECTIONS: dict[str, str] = {
    "neumann": "cases.wall_images.image_corrected: periodic PKF of the even extension (free "
    "part) + per-wall method-of-images quadrature (Liouville-Green kernel with the δ potential "
    "of the kink of kappa(|x|) at the wall), hybrid combination",
    "dirichlet": "cases.wall_images.dirichlet_wall_corrected: periodic PKF of the even "
    "extension (free part) + per-wall odd image quadrature rescaled to V = 0 at the wall + "
    "wall-forced Duhamel quadrature (Gaussian time covariance, initial lift, Liouville-Green "
    "amplitude)",
}


def diffusion_equation() -> sp.Eq:
    """∂t u = ∂x(κ(x) ∂x u) (κ a constant field)."""
    t, x = sp.symbols("t x")
    u, kappa = sp.Function("u")(t, x), sp.Function("kappa")(x)
    return sp.Eq(sp.Derivative(u, t), sp.Derivative(kappa * sp.Derivative(u, x), x))


def diffusivity(x: np.ndarray, kappa: float = PARAMETERS["kappa"]) -> np.ndarray:
    """κ(x) = κ₀ (1 + sin(2π x) / 2), length² / time."""
    return kappa * (1.0 + np.sin(2 * np.pi * x) / 2.0)


def wall_aspect(kappa: float, time_scale: float) -> float:
    """Aspect s_b at a Dirichlet wall forced by stationary Gaussian-correlated errors.

    s_b = κ τ / (√(2/π) − 2^{-1/2} Γ(3/4)² / π) ≈ 2.174 κ τ (module docstring), length².
    """
    g = math.sqrt(2 / math.pi) - 2**-0.5 * math.gamma(0.75) ** 2 / math.pi
    return kappa * time_scale / g


def _with_metric_and_length_scale(forecast: xr.Dataset) -> xr.Dataset:
    """A PKF forecast (aspect or metric form) with g_u_xx and L_u_x (NaN where g = 0)."""
    if "g_u_xx" in forecast:
        metric = forecast["g_u_xx"]
    else:
        metric = (1.0 / forecast["s_u_xx"]).assign_attrs(long_name="metric of u", units="1")
    length = xr.apply_ufunc(np.sqrt, 1.0 / metric.where(metric > 0))
    return forecast.assign(
        g_u_xx=metric, L_u_x=length.assign_attrs(long_name="length-scale of u", units="1")
    )


def _image_corrected(
    symbolic: SymbolicPKF,
    x: np.ndarray,
    kappa: np.ndarray,
    state0: dict[str, np.ndarray],
    times: np.ndarray,
    saved: np.ndarray,
    settings: BoundedSettings,
    walls: Walls,
) -> xr.Dataset:
    """The PKF of the even extension with the wall correction of :mod:`cases.wall_images`."""
    from .wall_images import dirichlet_wall_corrected, even_extension_pkf, image_corrected

    length0, variance = PARAMETERS["L0"], state0["V_u"]
    free_state = {"u": state0["u"], "V_u": variance, "g_u_xx": np.full(x.size, length0**-2)}
    free = even_extension_pkf(symbolic, x, kappa, free_state, times, saved, settings.dtype)
    if walls == "neumann":
        return image_corrected(free, kappa, variance, length0)
    return dirichlet_wall_corrected(
        free, kappa, variance, length0, PARAMETERS["V_b"], PARAMETERS["tau"]
    )


def run_bounded(settings: BoundedSettings, output: Output, walls: Walls) -> dict:
    """The bounded PKF forecast against two independent ensembles; files and summary."""
    from closures import close
    from generator import NNModelBuilder
    from generator.boundaries import Dirichlet, Neumann
    from pkf import BoundaryErrors, EnsembleForecast, SymbolicPKF
    from pkf.boundaries import boundary_statistics, pkf_boundaries
    from pkf.sampling import BoundaryConsistentMembers, SeededMembers

    from .figures import plot_error_curves, plot_profiles

    settings.validate()
    x = settings.grid()
    n, dx = x.size, float(x[1])
    kappa = diffusivity(x)
    length0, v_b, tau = PARAMETERS["L0"], PARAMETERS["V_b"], PARAMETERS["tau"]
    times, saved = settings.time_grid(0.5 * dx**2 / kappa.max())
    steps = times.size - 1
    sides: dict[str, Any]
    form: Literal["metric", "aspect"] = "metric" if walls == "neumann" else "aspect"
    if walls == "neumann":
        sides = {"x": (Neumann(0.0), Neumann(0.0))}
        variance = 1.0 + 0.5 * np.cos(2 * np.pi * x)
    else:
        sides = {"x": (Dirichlet(None), Dirichlet(None))}
        variance = v_b * (1.0 + 2.0 * np.sin(np.pi * x) ** 2)
    mean = np.exp(-((x - 0.4) ** 2) / (2 * 0.1**2))
    equation = diffusion_equation()
    symbolic = SymbolicPKF(equation)
    symbolic.set_closure(close(symbolic, "P18"))
    state0 = {"u": mean, "V_u": variance}
    if form == "metric":
        state0["g_u_xx"] = np.full(n, 1 / length0**2)
    else:
        state0["s_u_xx"] = np.full(n, length0**2)

    values: dict[str, Any] = {}
    wall_values: dict[str, Any] = {}
    if walls == "dirichlet":
        for side, index in (("low", 0), ("high", -1)):
            stats = boundary_statistics(
                symbolic,
                "u",
                "x",
                side,
                variance=v_b,
                length_scales=math.sqrt(wall_aspect(float(kappa[index]), tau)),
                mean=0.0,
            )
            for name, entry in stats.items():
                values.setdefault(name, {}).setdefault("x", {}).update(entry["x"])
        wall_values = {"x": (0.0, 0.0)}
    with output.step("pkf_build_and_forecast"):
        pkf_class = NNModelBuilder(
            symbolic.to_generator(form),
            class_name=f"PKFDiffusion{walls.capitalize()}",
            boundaries=pkf_boundaries(symbolic, sides, form),
        ).build()
        pkf_model = pkf_class(
            shape=n, lengths=1.0, dtype=settings.dtype, kappa=kappa, boundary_values=values or None
        )
        pkf = _with_metric_and_length_scale(pkf_model.forecast(times, state0, saved_times=saved))
    with output.step("pkf_image_corrected"):
        corrected = _image_corrected(symbolic, x, kappa, state0, times, saved, settings, walls)
        corrected = corrected.assign_coords(x=pkf["x"])

    model_class = NNModelBuilder(
        equation, class_name=f"NNDiffusion{walls.capitalize()}", boundaries=sides
    ).build()
    model = model_class(
        shape=n,
        lengths=1.0,
        dtype=settings.dtype,
        kappa=kappa,
        boundary_values=wall_values or None,
    )
    engine = EnsembleForecast(
        model, settings.members, progress=output.progress, client=output.client
    )
    results = []
    for k in range(2):
        with output.step(f"ensemble_{k + 1}_incl_compile"):
            seed = settings.seed + k
            initial: Any = SeededMembers(
                {"u": mean}, (n * dx,), {"u": length0}, {"u": variance}, seed=seed
            )
            errors = None
            if walls == "dirichlet":
                errors = {
                    ("u", "x", side): BoundaryErrors(
                        0.0, variance=v_b, time_scale=tau, seed=1000 + 2 * seed + j
                    )
                    for j, side in enumerate(("low", "high"))
                }
                initial = BoundaryConsistentMembers(
                    initial, errors, times, x, {"u": mean}, {"u": variance}, {"u": length0}
                )
            results.append(engine.run(times, initial, saved_times=saved, boundary_errors=errors))
    ensembles = [r.to_dataset() for r in (*results, results[0].merge(results[1]))]
    errors_ = errors_by_time(pkf, ensembles[0], COMPARED)
    noise = errors_by_time(ensembles[1], ensembles[0], COMPARED)
    pooled = errors_by_time(pkf, ensembles[2], COMPARED)
    inside, quarter = slice(1, -1), slice(n // 4, n - n // 4)  # without the walls; middle half

    errors_.update(errors_by_time(pkf, ensembles[0], ("L_u_x",), points=inside))
    noise.update(errors_by_time(ensembles[1], ensembles[0], ("L_u_x",), points=inside))
    pooled.update(errors_by_time(pkf, ensembles[2], ("L_u_x",), points=inside))
    middle = errors_by_time(pkf, ensembles[0], ("L_u_x",), points=quarter)
    images: dict[str, Any] = {
        "relative_l2_error": errors_by_time(corrected, ensembles[0], COMPARED),
        "relative_l2_error_vs_pooled_ensembles": errors_by_time(corrected, ensembles[2], COMPARED),
    }
    for key, reference, points in (
        ("relative_l2_error", ensembles[0], inside),
        ("relative_l2_error_vs_pooled_ensembles", ensembles[2], inside),
        ("relative_l2_error_middle_half", ensembles[0], quarter),
    ):
        images.setdefault(key, {}).update(
            errors_by_time(corrected, reference, ("L_u_x",), points=points)
        )
    name = f"diffusion_{walls}"
    sources = {"pkf": pkf, "pkf_image_corrected": corrected}
    sources |= {"ensemble_1": ensembles[0], "ensemble_2": ensembles[1]}
    sources["ensembles_pooled"] = ensembles[2]
    stacked = stack_sources(sources, (*COMPARED, "L_u_x"))
    parameters = {
        k: v for k, v in PARAMETERS.items() if walls == "dirichlet" or k in ("kappa", "L0")
    }
    stacked.attrs.update(
        title=f"pkfnet {name.replace('_', '-')} case: bounded PKF vs ensemble",
        members=settings.members,
        seed=settings.seed,
        second_ensemble_seed=settings.seed + 1,
        diffusivity="kappa(x) = kappa0 (1 + sin(2 pi x) / 2)",
        diffusivity_kappa0=PARAMETERS["kappa"],
        initial_length_scale=length0,
        image_correction=IMAGE_CORRECTIONS[walls],
    )
    if walls == "dirichlet":
        stacked.attrs.update(
            boundary_error_variance=v_b,
            boundary_error_time_scale=tau,
            wall_aspect=wall_aspect(float(kappa[0]), tau),
        )
    output.write_dataset(stacked, f"{name}.nc")

    with output.step("figures"):
        label = f"ensemble ({settings.members})"
        panels = {}
        for key in ("V_u", "L_u_x"):
            shown = inside if key == "L_u_x" else slice(None)  # as the errors: L without walls
            for t in saved[2::2]:
                title = f"{key}, t = {t:.3g}" + (" (inner points)" if key == "L_u_x" else "")
                panels[title] = {
                    "PKF": pkf[key].sel(time=t).values,
                    label: ensembles[0][key].sel(time=t).values,
                    "initial (PKF)": pkf[key].isel(time=0).values,
                    "PKF + images": corrected[key].sel(time=t).values,
                }
                for line, profile in panels[title].items():
                    masked = np.full(n, np.nan)
                    masked[shown] = profile[shown]
                    panels[title][line] = masked
        panels["diffusivity κ(x)"] = {"κ": kappa}
        output.write_figure(
            plot_profiles(
                x,
                panels,
                styles={
                    "PKF": "C0-",
                    "PKF + images": "C3--",
                    label: "k.",
                    "initial (PKF)": "C7:",
                    "κ": "C2-",
                },
                suptitle=f"Heterogeneous diffusion, {walls.capitalize()} walls: PKF vs ensemble",
                xlabel="x (domain [0, 1])",
            ),
            f"{name}_statistics",
        )
        output.write_figure(
            plot_error_curves(
                saved,
                errors_ | {f"{k}, PKF + images": v for k, v in images["relative_l2_error"].items()},
                reference=noise,
                title=f"vs ensemble ({settings.members}): PKF (solid), PKF + images (dotted);\n"
                "ensemble 2 vs 1 (dashed); L_u_x over the inner points",
                log=True,
            ),
            f"{name}_errors",
        )

    final = {key: at_final_time(value) for key, value in images.items()}
    corrected_line = (
        "\n  image-corrected PKF (cases.wall_images) vs ensemble: "
        f"{percent(final['relative_l2_error'])} (middle half: "
        f"{percent(final['relative_l2_error_middle_half'])}); vs both pooled: "
        f"{percent(final['relative_l2_error_vs_pooled_ensembles'])}"
    )
    output.say(
        f"{name.replace('_', '-')}: {n} points, {settings.members} members, {steps} RK4 steps; "
        f"relative L2 at t = {saved[-1]:.3g} (L_u_x over the inner points: the walls excluded)"
        f"\n  PKF vs ensemble: {percent(at_final_time(errors_))} (middle half: "
        f"{percent(at_final_time(middle))})\n"
        f"  ensemble 2 vs 1: {percent(at_final_time(noise))}\n"
        f"  PKF vs both ensembles pooled: {percent(at_final_time(pooled))}" + corrected_line
    )
    image_summary: dict[str, Any] = {"image_correction": IMAGE_CORRECTIONS[walls]}
    for key, value in images.items():
        image_summary[f"{key}_image_corrected"] = value
        image_summary[f"final_{key}_image_corrected"] = at_final_time(value)
    return {
        "dt": float(times[1]),
        "steps": steps,
        "saved_times": saved.tolist(),
        "parameters": parameters,
        "wall_aspect": wall_aspect(float(kappa[0]), tau) if walls == "dirichlet" else None,
        "boundary_conditions": pkf_model.boundary_description,
        "relative_l2_error": errors_,
        "relative_l2_error_middle_half": middle,
        "length_scale_errors_exclude": "the two wall points"
        + (" (the PKF length-scale is infinite at a no-flux wall)" if walls == "neumann" else ""),
        "ensemble_sampling_noise": noise,
        "relative_l2_error_vs_pooled_ensembles": pooled,
        "final_relative_l2_error": at_final_time(errors_),
        "final_ensemble_sampling_noise": at_final_time(noise),
        "final_relative_l2_error_vs_pooled_ensembles": at_final_time(pooled),
        **image_summary,
    }
