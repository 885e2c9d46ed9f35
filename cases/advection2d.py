"""Tracer advection by a heterogeneous rotating wind: PKF against an ensemble (SymPKF 2D example).

∂t c + u ∂x c + v ∂y c = 0 on the periodic unit square, with the stationary wind
(u, v) = R(θ) (20 Δ, 10 Δ) / T, R(θ) the rotation by θ(x, y) = (π/3) cos(2π (x + 2y)),
Δ = 1/241 the spacing of the reference 241² grid and T = 1. The PKF of this dynamics (mean,
variance V and the three aspect-tensor components) is closed; it is derived with
:class:`pkf.SymbolicPKF`, generated with :class:`generator.NNModelBuilder` and compared with two
independent batched ensembles of the generated tracer model (:class:`pkf.EnsembleForecast`):
the second measures the sampling noise, and both pooled show whether the PKF error shrinks
like sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import sympy as sp

from generator.protocols import DType

from .comparison import at_final_time, errors_by_time, percent, stack_sources
from .study import Output

if TYPE_CHECKING:
    from generator.model import GeneratedModel
    from pkf import SymbolicPKF

__all__ = [
    "DESCRIPTION",
    "Settings",
    "advection_equation",
    "build_models",
    "gaussian_bump",
    "rotating_wind",
    "run",
    "time_step",
]

DESCRIPTION = (
    "tracer in a rotating heterogeneous 2D wind: closed PKF (V, aspect) vs 400-member ensemble"
)
#: Reference grid: the wind is (20, 10) of its spacings per T whatever grid a run uses.
REFERENCE_SHAPE = (241, 241)
#: The two ensembles can run on a Dask cluster (--workers N, --scheduler ADDRESS).
SUPPORTS_CLUSTER = True
#: The compared PKF fields (the ensemble statistics carry the same names).
COMPARED = ("c", "V_c", "s_c_xx", "s_c_xy", "s_c_yy")


@dataclass(frozen=True)
class Settings:
    """Grid, ensemble size and numerics."""

    points: int = field(default=241, metadata={"help": "grid points per axis"})
    members: int = field(default=400, metadata={"help": "members of each ensemble"})
    final_time: float = field(default=1.0, metadata={"help": "final time (units of T)"})
    saved: int = field(default=5, metadata={"help": "number of saved times"})
    variance: float = field(default=1.0, metadata={"help": "initial error variance"})
    length_scale: float = field(default=0.1, metadata={"help": "initial length-scale"})
    seed: int = field(default=0, metadata={"help": "seed of ensemble 1 (ensemble 2: seed + 1)"})
    dtype: DType = field(default="float64", metadata={"help": "dtype"})
    accuracy: Literal[2, 4, 6] = field(default=2, metadata={"help": "stencil order"})

    @classmethod
    def quick(cls) -> Settings:
        """61² grid and 100 members."""
        return cls(points=61, members=100)

    @classmethod
    def paper(cls) -> Settings:
        """Two 1600-member ensembles: a reference whose sampling noise is below the bar."""
        return cls(members=1600)

    def validate(self) -> None:
        if self.points < 16 or self.members < 2 or self.saved < 2:
            raise ValueError(
                "--points >= 16, --members >= 2 and --saved >= 2 required, got "
                f"{self.points}, {self.members}, {self.saved}"
            )


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
    shape: tuple[int, int], lengths: tuple[float, float], dtype: DType, accuracy: int
) -> tuple[GeneratedModel, GeneratedModel, SymbolicPKF]:
    """Generate and instantiate the tracer model and its PKF model (aspect form).

    Returns ``(tracer model, PKF model, SymbolicPKF)``; both models carry the wind of
    :func:`rotating_wind` as constant fields.
    """
    from generator import NNModelBuilder
    from pkf import SymbolicPKF

    wind: dict[str, Any] = rotating_wind(shape, lengths)  # constant fields, by keyword
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


def run(settings: Settings, output: Output) -> dict:
    """PKF and two independent ensembles, statistics compared at the saved times."""
    from pkf import EnsembleForecast
    from pkf.sampling import SeededMembers

    from .figures import plot_anisotropy, plot_error_curves, plot_field_table

    shape, lengths = (settings.points, settings.points), (1.0, 1.0)
    spacing = (lengths[0] / shape[0], lengths[1] / shape[1])
    steps = int(np.ceil(settings.final_time / time_step(rotating_wind(shape, lengths), spacing)))
    times = np.arange(steps + 1) * (settings.final_time / steps)
    saved = times[np.unique(np.rint(np.linspace(0, steps, settings.saved)).astype(int))]
    c0 = gaussian_bump(shape, lengths, width=0.1)
    with output.step("derive_and_build"):
        tracer, pkf_model, symbolic = build_models(
            shape, lengths, settings.dtype, settings.accuracy
        )
    state0 = {
        "c": c0,
        "V_c": np.full(shape, settings.variance),
        "s_c_xx": np.full(shape, settings.length_scale**2),
        "s_c_xy": np.zeros(shape),
        "s_c_yy": np.full(shape, settings.length_scale**2),
    }
    with output.step("pkf_forecast_incl_compile"):
        pkf = pkf_model.forecast(times, state0, saved_times=saved)
    engine = EnsembleForecast(
        tracer, settings.members, progress=output.progress, client=output.client
    )
    results = []
    for k in range(2):
        with output.step(f"ensemble_{k + 1}_incl_compile"):
            # Members drawn chunk by chunk (on the workers with a cluster): never all at once.
            members = SeededMembers(
                {"c": c0},
                lengths,
                {"c": settings.length_scale},
                {"c": settings.variance},
                seed=settings.seed + k,
            )
            results.append(engine.run(times, members, saved_times=saved))
    ensembles = [r.to_dataset() for r in (*results, results[0].merge(results[1]))]
    pkf_errors = errors_by_time(pkf, ensembles[0], COMPARED)
    pooled_errors = errors_by_time(pkf, ensembles[2], COMPARED)
    noise = errors_by_time(ensembles[1], ensembles[0], COMPARED, skip_zero=False)
    noise["s_c_xy"][0] = None  # t = 0: both are sampling noise around 0

    stacked = stack_sources(
        {
            "pkf": pkf,
            "ensemble_1": ensembles[0],
            "ensemble_2": ensembles[1],
            "ensembles_pooled": ensembles[2],
        },
        COMPARED,
    )
    stacked.attrs.update(
        title="pkfnet advection2d case: PKF vs ensembles for 2D heterogeneous advection",
        members=settings.members,
        seed=settings.seed,
        second_ensemble_seed=settings.seed + 1,
    )
    output.write_dataset(stacked, "advection2d.nc")

    with output.step("figures"):
        final = {"time": saved[-1]}
        label = f"ensemble ({settings.members})"
        rows = {
            name: {
                "PKF": pkf[name].sel(final),
                label: ensembles[0][name].sel(final),
                "PKF − ensemble": (pkf[name] - ensembles[0][name]).sel(final),
            }
            for name in COMPARED[1:]
        }
        output.write_figure(
            plot_field_table(
                rows,
                suptitle=f"2D advection, t = {saved[-1]:.3g} T: variance and aspect tensor",
                shared=("PKF", label),
                diverging=("PKF − ensemble",),
            ),
            "advection2d_fields",
        )

        def tensor(ds):
            return tuple(ds[f"s_c_{ij}"].sel(final) for ij in ("xx", "xy", "yy"))

        output.write_figure(
            plot_anisotropy(
                {"PKF": tensor(pkf), label: tensor(ensembles[0])},
                every=max(1, shape[0] // 12),
                scale=0.3,
                suptitle=f"2D advection, t = {saved[-1]:.3g} T: principal length-scales "
                "(ellipses: 0.3 × length-scales)",
            ),
            "advection2d_anisotropy",
        )
        output.write_figure(
            plot_error_curves(
                saved,
                {k: pkf_errors[k] for k in COMPARED[1:]},
                reference={k: noise[k] for k in COMPARED[1:]},
                title="PKF vs ensemble (solid); ensemble 2 vs ensemble 1 (dashed)\n"
                f"{settings.members} members",
            ),
            "advection2d_errors",
        )

    output.say(
        f"advection2d: {shape[0]}x{shape[1]}, {settings.members} members, {steps} RK4 steps; "
        f"at t = {saved[-1]:.3g}\n  PKF vs ensemble 1: {percent(at_final_time(pkf_errors))}\n"
        f"  ensemble 2 vs 1:   {percent(at_final_time(noise))}\n"
        f"  PKF vs pooled:     {percent(at_final_time(pooled_errors))}"
    )
    return {
        "dt": float(times[1]),
        "steps": steps,
        "saved_times": saved.tolist(),
        "pkf_equations": [str(eq) for eq in symbolic.in_aspect],
        "relative_l2_error": pkf_errors,
        "ensemble_sampling_noise": noise,
        "relative_l2_error_vs_pooled_ensembles": pooled_errors,
        "final_relative_l2_error": at_final_time(pkf_errors),
        "final_ensemble_sampling_noise": at_final_time(noise),
        "final_relative_l2_error_vs_pooled_ensembles": at_final_time(pooled_errors),
    }
