"""Case studies, one module per case, on the scaffold of :mod:`cases.study`.

Each case module declares ``DESCRIPTION``, a ``Settings`` dataclass (its command-line flags and
presets) and ``run(settings, output)``. :data:`CASES` maps a command-line name to its module;
modules are imported only when used, and TensorFlow only when a case runs.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

#: case name → module
CASES: dict[str, str] = {
    "burgers": "cases.burgers",
    "burgers-closure": "cases.burgers_closure",
    "diffusion2d": "cases.diffusion2d",
    "advection2d": "cases.advection2d",
    "chemistry1d": "cases.chemistry1d",
    "advection-inflow": "cases.advection_inflow",
    "diffusion-dirichlet": "cases.diffusion_dirichlet",
    "diffusion-neumann": "cases.diffusion_neumann",
    "assimilation1d": "cases.assimilation1d",
    "assimilation2d": "cases.assimilation2d",
    "chemistry-assimilation": "cases.chemistry_assimilation",
}

__all__ = ["CASES", "load_case"]


def load_case(name: str) -> ModuleType:
    """Import the module of case ``name`` (ValueError listing the cases if unknown)."""
    if name not in CASES:
        raise ValueError(f"unknown case '{name}'; available cases: {', '.join(CASES)}")
    return import_module(CASES[name])
