"""Heterogeneous 2D diffusion (PDE-NetGen paper, Section 3.1 and Figure 4).

∂t u = ∇·(κ∇u) on the periodic unit square, κ(x, y) the rotation by
θ = (π/3) cos(kx x + ky y), (kx, ky) = 2π(2, 3), of diag(lx², ly²)/τ with lx = 10 dx,
ly = 5 dy, τ = 1; RK4 with dt = τ min(dx²/lx², dy²/ly²)/6 from a Dirac at the centre.
The generated network is compared with a plain numpy finite-difference code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import sympy as sp

__all__ = [
    "diffusion_equation",
    "diffusion_tensor",
    "time_step",
    "dirac",
    "numpy_forecast",
    "build_model",
    "run",
]


def diffusion_equation() -> sp.Eq:
    """∂t u = ∂x(κ11 ∂x u + κ12 ∂y u) + ∂y(κ12 ∂x u + κ22 ∂y u), unexpanded."""
    t, x, y = sp.symbols("t x y")
    u = sp.Function("u")(t, x, y)
    k11, k12, k22 = (sp.Function(f"kappa_{ij}")(x, y) for ij in ("11", "12", "22"))
    flux_x = k11 * sp.Derivative(u, x) + k12 * sp.Derivative(u, y)
    flux_y = k12 * sp.Derivative(u, x) + k22 * sp.Derivative(u, y)
    return sp.Eq(sp.Derivative(u, t), sp.Derivative(flux_x, x) + sp.Derivative(flux_y, y))


def diffusion_tensor(
    shape: tuple[int, int] = (100, 100),
    lengths: tuple[float, float] = (1.0, 1.0),
    cells: tuple[float, float] = (10.0, 5.0),
    tau: float = 1.0,
    wavenumbers: tuple[float, float] = (2.0, 3.0),
) -> dict[str, np.ndarray]:
    """Components κ11, κ12, κ22 (each (nx, ny), units length²/time) of the paper's field.

    The principal length-scales are ``cells`` grid spacings; the rotation angle is
    θ = (π/3) cos(2π (k_x x + k_y y)).
    """
    dx, dy = (L / n for L, n in zip(lengths, shape, strict=True))
    lx, ly = cells[0] * dx, cells[1] * dy
    x, y = np.meshgrid(np.arange(shape[0]) * dx, np.arange(shape[1]) * dy, indexing="ij")
    theta = np.pi / 3 * np.cos(2 * np.pi * (wavenumbers[0] * x + wavenumbers[1] * y))
    c, s = np.cos(theta), np.sin(theta)
    return {
        "kappa_11": (c**2 * lx**2 + s**2 * ly**2) / tau,
        "kappa_12": c * s * (lx**2 - ly**2) / tau,
        "kappa_22": (s**2 * lx**2 + c**2 * ly**2) / tau,
    }


def time_step(shape=(100, 100), lengths=(1.0, 1.0), cells=(10.0, 5.0), tau: float = 1.0) -> float:
    """dt = τ min(dx²/lx², dy²/ly²)/6 (time units)."""
    return tau * min(1 / cells[0] ** 2, 1 / cells[1] ** 2) / 6


def dirac(shape: tuple[int, int] = (100, 100)) -> np.ndarray:
    """Unit Dirac at the centre of the grid, (nx, ny)."""
    u = np.zeros(shape)
    u[shape[0] // 2, shape[1] // 2] = 1.0
    return u


def numpy_forecast(u0: np.ndarray, kappa: dict, dx: tuple[float, float], dt: float, steps: int):
    """Plain numpy RK4 of the expanded second-order centred scheme (the reference panel)."""

    def d1(f, axis, h):
        return (np.roll(f, -1, axis) - np.roll(f, 1, axis)) / (2 * h)

    def d2(f, axis, h):
        return (np.roll(f, -1, axis) - 2 * f + np.roll(f, 1, axis)) / h**2

    k11, k12, k22 = kappa["kappa_11"], kappa["kappa_12"], kappa["kappa_22"]
    k11_x, k12_x, k12_y, k22_y = (
        d1(k11, 0, dx[0]),
        d1(k12, 0, dx[0]),
        d1(k12, 1, dx[1]),
        d1(k22, 1, dx[1]),
    )

    def trend(u):
        ux, uy = d1(u, 0, dx[0]), d1(u, 1, dx[1])
        uxy = d1(ux, 1, dx[1])
        return (
            (k11_x + k12_y) * ux
            + (k12_x + k22_y) * uy
            + k11 * d2(u, 0, dx[0])
            + k22 * d2(u, 1, dx[1])
            + 2 * k12 * uxy
        )

    u = np.array(u0, dtype=float)
    for _ in range(steps):
        a = trend(u)
        b = trend(u + dt / 2 * a)
        c = trend(u + dt / 2 * b)
        d = trend(u + dt * c)
        u = u + dt / 6 * (a + 2 * b + 2 * c + d)
    return u


def build_model(shape=(100, 100), lengths=(1.0, 1.0), dtype="float64", accuracy=2, **kwargs):
    """Generate the network class from :func:`diffusion_equation` and instantiate it."""
    from generator import NNModelBuilder

    cls = NNModelBuilder(
        diffusion_equation(), class_name="NNDiffusion2D", accuracy=accuracy
    ).build()
    return cls(
        shape=shape, lengths=lengths, dtype=dtype, **diffusion_tensor(shape, lengths), **kwargs
    )


def run(
    out: str | Path = "results/diffusion2d",
    quick: bool = False,
    dtype: str = "float64",
    accuracy: int = 2,
    quiet: bool = False,
    **_: object,
) -> dict:
    """Run the case: forecast to t = 1 (t = 0.25 with ``quick``), write figure, netCDF, JSON.

    Returns the summary dictionary (also written to ``out/summary.json``).
    """
    from .figures import plot_fields
    from .output import write_grid_netcdf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shape, lengths = (100, 100), (1.0, 1.0)
    dx = tuple(L / n for L, n in zip(lengths, shape, strict=True))
    dt = time_step(shape, lengths)
    t_end = 0.25 if quick else 1.0
    steps = int(round(t_end / dt))
    u0 = dirac(shape)

    start = time.perf_counter()
    model = build_model(shape, lengths, dtype=dtype, accuracy=accuracy)
    build_seconds = time.perf_counter() - start
    times = np.arange(steps + 1) * dt
    start = time.perf_counter()
    network = model.forecast(times, {"u": u0}, saved_times=[times[-1]])[float(times[-1])]["u"]
    network_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reference = numpy_forecast(u0, diffusion_tensor(shape, lengths), dx, dt, steps)
    numpy_seconds = time.perf_counter() - start

    distance = float(np.sqrt(np.sum((network - reference) ** 2)))
    relative = distance / float(np.sqrt(np.sum(reference**2)))
    panels = {
        "(a) initial Dirac": u0,
        "(b) finite-difference reference": reference,
        "(c) generated network": network,
    }
    figure = plot_fields(
        panels,
        lengths,
        out / "fig4_diffusion2d",
        suptitle=f"2D heterogeneous diffusion, t = {times[-1]:.3g}",
    )
    netcdf = write_grid_netcdf(
        out / "diffusion2d.nc",
        {"u_initial": u0, "u_reference": reference, "u_network": network},
        coordinates={"x": np.arange(shape[0]) * dx[0], "y": np.arange(shape[1]) * dx[1]},
        attributes={
            "title": "pkfnet diffusion2d case (PDE-NetGen paper Fig. 4)",
            "equation": str(diffusion_equation()),
            "dt": dt,
            "steps": steps,
            "time": float(times[-1]),
            "dtype": dtype,
            "accuracy": accuracy,
        },
        long_names={
            "u_initial": "initial Dirac",
            "u_reference": "numpy finite-difference reference",
            "u_network": "generated Keras network",
        },
    )
    summary = {
        "case": "diffusion2d",
        "grid": list(shape),
        "dt": dt,
        "steps": steps,
        "final_time": float(times[-1]),
        "dtype": dtype,
        "accuracy": accuracy,
        "l2_distance": distance,
        "relative_l2_distance": relative,
        "seconds": {
            "build": build_seconds,
            "network_forecast_incl_compile": network_seconds,
            "numpy_forecast": numpy_seconds,
        },
        "files": [str(p) for p in (*figure, netcdf)],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not quiet:
        print(
            f"diffusion2d: t = {times[-1]:.3g}, {steps} RK4 steps, L2 distance network vs numpy "
            f"= {distance:.3e} (relative {relative:.3e})"
        )
        print(f"wrote {out / 'summary.json'}, {netcdf}, {', '.join(map(str, figure))}")
    return summary
