"""Heterogeneous 2D diffusion (PDE-NetGen paper, Section 3.1 and Figure 4).

∂t u = ∇·(κ∇u) on the periodic unit square, κ(x, y) the rotation by
θ = (π/3) cos(kx x + ky y), (kx, ky) = 2π(2, 3), of diag(lx², ly²)/τ with lx = 10 dx,
ly = 5 dy, τ = 1; RK4 with dt = τ min(dx²/lx², dy²/ly²)/6 from a Dirac at the centre.
The generated network is compared with a plain numpy finite-difference code of the same
scheme: the expanded operator with centred stencils of the same accuracy order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import sympy as sp

from generator.protocols import DType

from .study import Output

if TYPE_CHECKING:
    from generator.model import GeneratedModel

__all__ = [
    "DESCRIPTION",
    "Settings",
    "build_model",
    "diffusion_equation",
    "diffusion_tensor",
    "dirac",
    "numpy_forecast",
    "run",
    "time_step",
]

DESCRIPTION = "heterogeneous 2D diffusion of a Dirac (paper Fig. 4): generated network vs numpy"


@dataclass(frozen=True)
class Settings:
    """Grid, final time and numerics; the default is the paper's run."""

    points: int = field(default=100, metadata={"help": "grid points per axis"})
    final_time: float = field(default=1.0, metadata={"help": "final time (units of tau)"})
    dtype: DType = field(default="float64", metadata={"help": "floating-point type of the network"})
    accuracy: Literal[2, 4, 6] = field(
        default=2, metadata={"help": "order of the centred stencils (network and numpy)"}
    )

    @classmethod
    def quick(cls) -> Settings:
        """Integrate to t = 0.25 only."""
        return cls(final_time=0.25)

    def validate(self) -> None:
        if self.points < 16:
            raise ValueError(f"--points: expected at least 16, got {self.points}")
        if not self.final_time > 0:
            raise ValueError(f"--final-time: expected a positive time, got {self.final_time}")


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


def time_step(cells: tuple[float, float] = (10.0, 5.0), tau: float = 1.0) -> float:
    """dt = τ min(dx²/lx², dy²/ly²)/6 (time units)."""
    return tau * min(1 / cells[0] ** 2, 1 / cells[1] ** 2) / 6


def dirac(shape: tuple[int, int] = (100, 100)) -> np.ndarray:
    """Unit Dirac at the centre of the grid, (nx, ny)."""
    u = np.zeros(shape)
    u[shape[0] // 2, shape[1] // 2] = 1.0
    return u


#: Centred first- and second-derivative weights at offsets -r..r (standard tables), per order.
_FIRST = {2: [-1 / 2, 0, 1 / 2], 4: [1 / 12, -2 / 3, 0, 2 / 3, -1 / 12]}
_FIRST[6] = [-1 / 60, 3 / 20, -3 / 4, 0, 3 / 4, -3 / 20, 1 / 60]
_SECOND = {2: [1, -2, 1], 4: [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12]}
_SECOND[6] = [1 / 90, -3 / 20, 3 / 2, -49 / 18, 3 / 2, -3 / 20, 1 / 90]


def numpy_forecast(
    u0: np.ndarray,
    kappa: dict[str, np.ndarray],
    dx: tuple[float, float],
    dt: float,
    steps: int,
    accuracy: int = 2,
) -> np.ndarray:
    """Plain numpy RK4 of the expanded operator with centred stencils of order ``accuracy``.

    ``(κ11_x + κ12_y) u_x + (κ12_x + κ22_y) u_y + κ11 u_xx + κ22 u_yy + 2 κ12 u_xy``, every
    derivative (of u and of κ) a centred stencil of the given accuracy, ``u_xy`` the product
    of the two first-derivative stencils: the scheme the generator derives from the
    unexpanded equation.
    """

    def stencil(weights, f, axis, h, order):
        r = len(weights) // 2
        return sum(w * np.roll(f, r - k, axis) for k, w in enumerate(weights)) / h**order

    def d1(f, axis):
        return stencil(_FIRST[accuracy], f, axis, dx[axis], 1)

    def d2(f, axis):
        return stencil(_SECOND[accuracy], f, axis, dx[axis], 2)

    k11, k12, k22 = kappa["kappa_11"], kappa["kappa_12"], kappa["kappa_22"]
    drift_x, drift_y = d1(k11, 0) + d1(k12, 1), d1(k12, 0) + d1(k22, 1)

    def trend(u):
        return (
            drift_x * d1(u, 0)
            + drift_y * d1(u, 1)
            + k11 * d2(u, 0)
            + k22 * d2(u, 1)
            + 2 * k12 * d1(d1(u, 0), 1)
        )

    u = np.array(u0, dtype=float)
    for _ in range(steps):
        a = trend(u)
        b = trend(u + dt / 2 * a)
        c = trend(u + dt / 2 * b)
        d = trend(u + dt * c)
        u = u + dt / 6 * (a + 2 * b + 2 * c + d)
    return u


def build_model(
    shape: tuple[int, int] = (100, 100),
    lengths: tuple[float, float] = (1.0, 1.0),
    dtype: DType = "float64",
    accuracy: int = 2,
) -> GeneratedModel:
    """Generate the network class from :func:`diffusion_equation` and instantiate it."""
    from generator import NNModelBuilder

    cls = NNModelBuilder(
        diffusion_equation(), class_name="NNDiffusion2D", accuracy=accuracy
    ).build()
    kappa: dict[str, Any] = diffusion_tensor(shape, lengths)  # constant fields, by keyword
    return cls(shape=shape, lengths=lengths, dtype=dtype, **kappa)


def run(settings: Settings, output: Output) -> dict:
    """Forecast with the network and with numpy; figure, netCDF and their distance."""
    from generator.results import model_dataset

    from .figures import plot_fields

    shape, lengths = (settings.points, settings.points), (1.0, 1.0)
    dx = (lengths[0] / shape[0], lengths[1] / shape[1])
    dt = time_step()
    steps = int(round(settings.final_time / dt))
    times = np.arange(steps + 1) * dt
    u0 = dirac(shape)
    with output.step("build"):
        model = build_model(shape, lengths, settings.dtype, settings.accuracy)
    with output.step("network_forecast_incl_compile"):
        network = model.state_at(model.forecast(times, {"u": u0}, saved_times=times[-1]))["u"]
    with output.step("numpy_forecast"):
        kappa = diffusion_tensor(shape, lengths)
        reference = numpy_forecast(u0, kappa, dx, dt, steps, settings.accuracy)
    distance = float(np.sqrt(np.sum((network - reference) ** 2)))
    relative = distance / float(np.sqrt(np.sum(reference**2)))
    compared = (
        f"generated network ({settings.dtype}) vs numpy (float64), same scheme: RK4, centred "
        f"stencils of order {settings.accuracy}"
    )
    dataset = model_dataset(
        model,
        {"u_initial": u0, "u_reference": reference, "u_network": network},
        title="pkfnet diffusion2d case (PDE-NetGen paper Fig. 4)",
        field_attrs={
            "u_initial": {"long_name": "initial Dirac", "units": "1"},
            "u_reference": {"long_name": "numpy finite-difference reference", "units": "1"},
            "u_network": {"long_name": "generated Keras network", "units": "1"},
        },
        dt=dt,
        steps=steps,
        final_time=float(times[-1]),
        compared=compared,
    )
    output.write_dataset(dataset, "diffusion2d.nc")
    output.write_figure(
        plot_fields(
            {
                "(a) initial Dirac": dataset["u_initial"],
                "(b) finite-difference reference": dataset["u_reference"],
                "(c) generated network": dataset["u_network"],
            },
            suptitle=f"2D heterogeneous diffusion, t = {times[-1]:.3g}",
        ),
        "fig4_diffusion2d",
    )
    output.say(
        f"diffusion2d: t = {times[-1]:.3g}, {steps} RK4 steps; {compared}: L2 distance "
        f"{distance:.3e} (relative {relative:.3e})"
    )
    return {
        "grid": list(shape),
        "dt": dt,
        "steps": steps,
        "final_time": float(times[-1]),
        "compared": compared,
        "l2_distance": distance,
        "relative_l2_distance": relative,
    }
