"""Transport through a bounded domain with an uncertain inflow: bounded PKF vs ensemble.

∂t u = −c(x) ∂x u on [0, 1], c(x) = U (1 + sin(2πx) / 3) > 0, with a Dirichlet inflow at x = 0
whose value carries time-correlated errors (variance V_b, Gaussian correlation in time of
time-scale τ) and an open outflow at x = 1 (issue 16; Sabathier, Pannekoucke & Maget 2022).
The PKF of the dynamics (:class:`pkf.SymbolicPKF`, aspect form, closed) gets its boundary
conditions from the dynamics' (:func:`pkf.boundaries.pkf_boundaries`): Dirichlet inflow on the
mean, the variance (V_b) and the aspect tensor, outflow on all three. An error entering at
time t₀ is carried along the characteristics, so two points δ apart near the inlet hold
errors that entered δ / c(0) apart in time: the boundary length-scale is c(0) τ
(:func:`pkf.boundaries.boundary_statistics`), which the wind then stretches (s ∝ c²).

The initial errors have the inflow's statistics at x = 0 (variance V_0(x) = V_b (1 + 2
sin²(πx)), length-scale U τ), so the statistics are continuous at the inlet. The reference is
an ensemble of members perturbed at the inflow by :class:`pkf.sampling.BoundaryErrors`
(:meth:`pkf.EnsembleForecast.run`); a second independent ensemble measures its sampling noise.
Each member's initial field is made continuous with its own inflow value at t = 0
(:class:`pkf.sampling.BoundaryConsistentMembers`, a conditional draw that keeps the initial
covariance): otherwise the jump at the inlet radiates grid-scale waves that centred
differences carry through the domain.
Centred transport with an outflow side is stable at stencil accuracy 2 only (see
:class:`generator.boundaries.Outflow`), the case's setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
import xarray as xr

from .bounded import BoundedSettings
from .comparison import at_final_time, errors_by_time, percent, stack_sources
from .study import Output

__all__ = [
    "DESCRIPTION",
    "PARAMETERS",
    "Settings",
    "run",
    "transport_equation",
    "wind",
]

DESCRIPTION = "1D transport with an uncertain Dirichlet inflow and an open outflow: PKF vs ensemble"

#: Mean wind U, inflow error variance V_b and time-scale τ (time units; domain length 1).
PARAMETERS: dict[str, float] = {"U": 1.0, "V_b": 0.5, "tau": 0.08}
#: Compared quantities (PKF names; the ensemble statistics carry the same ones).
COMPARED = ("V_u", "L_u_x")
#: The two ensembles can run on a Dask cluster (--workers N, --scheduler ADDRESS).
SUPPORTS_CLUSTER = True


@dataclass(frozen=True)
class Settings(BoundedSettings):
    """Grid, ensemble size and saved times."""

    points: int = field(default=401, metadata={"help": "grid points, both ends included"})
    final_time: float = field(default=1.5, metadata={"help": "final time (a transit is ~1.05)"})

    @classmethod
    def quick(cls) -> Settings:
        """201 points and 800 members."""
        return cls(points=201, members=800)


def transport_equation() -> sp.Eq:
    """∂t u = −c(x) ∂x u (the wind a constant field)."""
    t, x = sp.symbols("t x")
    u, c = sp.Function("u")(t, x), sp.Function("c")(x)
    return sp.Eq(sp.Derivative(u, t), -c * sp.Derivative(u, x))


def wind(x: np.ndarray, speed: float = PARAMETERS["U"]) -> np.ndarray:
    """c(x) = U (1 + sin(2π x) / 3), length / time; c(0) = U."""
    return speed * (1.0 + np.sin(2 * np.pi * x) / 3.0)


def _pkf_dataset(forecast: xr.Dataset) -> xr.Dataset:
    """A PKF forecast (aspect form) with the length-scale L_u_x = sqrt(s_u_xx) added."""
    return forecast.assign(
        L_u_x=xr.apply_ufunc(np.sqrt, forecast["s_u_xx"]).assign_attrs(
            long_name="length-scale of u", units="1"
        )
    )


def run(settings: Settings, output: Output) -> dict:
    """The bounded PKF forecast against two independent ensembles with inflow errors."""
    from generator import NNModelBuilder
    from generator.boundaries import Dirichlet, Outflow
    from pkf import EnsembleForecast, SymbolicPKF
    from pkf.boundaries import boundary_statistics, pkf_boundaries
    from pkf.sampling import BoundaryConsistentMembers, BoundaryErrors, SeededMembers

    from .figures import plot_error_curves, plot_profiles

    settings.validate()
    x = settings.grid()
    n, dx = x.size, float(x[1])
    c = wind(x)
    v_b, tau, speed = PARAMETERS["V_b"], PARAMETERS["tau"], PARAMETERS["U"]
    times, saved = settings.time_grid(0.5 * dx / c.max())
    steps = times.size - 1
    boundaries: dict[str, Any] = {"x": (Dirichlet(None), Outflow())}
    equation = transport_equation()
    symbolic = SymbolicPKF(equation)
    variance = v_b * (1.0 + 2.0 * np.sin(np.pi * x) ** 2)
    mean = np.exp(-((x - 0.4) ** 2) / (2 * 0.08**2))
    state0 = {"u": mean, "V_u": variance, "s_u_xx": np.full(n, (speed * tau) ** 2)}

    with output.step("pkf_build_and_forecast"):
        pkf_class = NNModelBuilder(
            symbolic.to_generator("aspect"),
            class_name="PKFAdvectionInflow",
            boundaries=pkf_boundaries(symbolic, boundaries, "aspect"),
        ).build()
        inflow = boundary_statistics(
            symbolic, "u", "x", "low", variance=v_b, length_scales=c[0] * tau, mean=0.0
        )
        pkf_model = pkf_class(
            shape=n, lengths=1.0, dtype=settings.dtype, c=c, boundary_values=inflow
        )
        pkf = _pkf_dataset(pkf_model.forecast(times, state0, saved_times=saved))

    model_class = NNModelBuilder(
        equation, class_name="NNAdvectionInflow", boundaries=boundaries
    ).build()
    model = model_class(
        shape=n, lengths=1.0, dtype=settings.dtype, c=c, boundary_values={"x": (0.0, None)}
    )
    engine = EnsembleForecast(
        model, settings.members, progress=output.progress, client=output.client
    )
    results = []
    for k in range(2):
        with output.step(f"ensemble_{k + 1}_incl_compile"):
            seed = settings.seed + k
            drawn = SeededMembers(
                {"u": mean}, (n * dx,), {"u": speed * tau}, {"u": variance}, seed=seed
            )
            errors = {
                ("u", "x", "low"): BoundaryErrors(
                    0.0, variance=v_b, time_scale=tau, seed=1000 + seed
                )
            }
            initial = BoundaryConsistentMembers(
                drawn, errors, times, x, {"u": mean}, {"u": variance}, {"u": speed * tau}
            )
            results.append(engine.run(times, initial, saved_times=saved, boundary_errors=errors))
    ensembles = [r.to_dataset() for r in (*results, results[0].merge(results[1]))]
    errors_ = errors_by_time(pkf, ensembles[0], COMPARED)
    noise = errors_by_time(ensembles[1], ensembles[0], COMPARED)
    pooled = errors_by_time(pkf, ensembles[2], COMPARED)

    sources = {"pkf": pkf, "ensemble_1": ensembles[0], "ensemble_2": ensembles[1]}
    sources["ensembles_pooled"] = ensembles[2]
    stacked = stack_sources(sources, COMPARED)
    stacked.attrs.update(
        title="pkfnet advection-inflow case: bounded PKF vs ensemble with inflow errors",
        members=settings.members,
        seed=settings.seed,
        second_ensemble_seed=settings.seed + 1,
        boundary_error_variance=v_b,
        boundary_error_time_scale=tau,
    )
    output.write_dataset(stacked, "advection_inflow.nc")

    with output.step("figures"):
        label = f"ensemble ({settings.members})"
        panels = {}
        for key in ("V_u", "L_u_x"):
            for t in saved[2::2]:
                panels[f"{key}, t = {t:.3g}"] = {
                    "PKF": pkf[key].sel(time=t).values,
                    label: ensembles[0][key].sel(time=t).values,
                }
        expected = {"c(x) τ (steady length-scale)": c * tau}
        panels["wind c(x) (solid), c(x) τ (dashed)"] = {"c(x)": c, **expected}
        styles = {"PKF": "C0-", label: "k.", "c(x)": "C2-", "c(x) τ (steady length-scale)": "C3--"}
        output.write_figure(
            plot_profiles(
                x,
                panels,
                styles=styles,
                suptitle="Transport with an uncertain inflow (x = 0) and an open outflow (x = 1)",
                xlabel="x (domain [0, 1])",
            ),
            "advection_inflow_statistics",
        )
        output.write_figure(
            plot_error_curves(
                saved,
                {k: errors_[k] for k in ("V_u", "L_u_x")},
                reference={k: noise[k] for k in ("V_u", "L_u_x")},
                title=f"PKF vs ensemble (solid); ensemble 2 vs 1 (dashed)\n"
                f"{settings.members} members",
            ),
            "advection_inflow_errors",
        )

    output.say(
        f"advection-inflow: {n} points, {settings.members} members, {steps} RK4 steps; at t = "
        f"{saved[-1]:.3g}\n  PKF vs ensemble: {percent(at_final_time(errors_))}\n"
        f"  ensemble 2 vs 1: {percent(at_final_time(noise))}\n"
        f"  PKF vs both ensembles pooled: {percent(at_final_time(pooled))}"
    )
    return {
        "dt": float(times[1]),
        "steps": steps,
        "saved_times": saved.tolist(),
        "parameters": PARAMETERS,
        "boundary_conditions": pkf_model.boundary_description,
        "relative_l2_error": errors_,
        "ensemble_sampling_noise": noise,
        "relative_l2_error_vs_pooled_ensembles": pooled,
        "final_relative_l2_error": at_final_time(errors_),
        "final_ensemble_sampling_noise": at_final_time(noise),
        "final_relative_l2_error_vs_pooled_ensembles": at_final_time(pooled),
    }
