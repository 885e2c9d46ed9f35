"""Case studies, one module per case, each exposing ``run(out, quick=..., ...)``.

:data:`CASES` maps a case name to its module; modules are imported only when run, so the
command line starts fast.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

#: case name → (module, one-line description)
CASES: dict[str, tuple[str, str]] = {
    "burgers": (
        "cases.burgers",
        "Burgers PKF (paper Fig. 6): learn the closure from ensembles, compare with a reference",
    ),
    "diffusion2d": (
        "cases.diffusion2d",
        "heterogeneous 2D diffusion of a Dirac (paper Fig. 4): generated network vs numpy",
    ),
    "advection2d": (
        "cases.advection2d",
        "tracer in a rotating heterogeneous 2D wind: closed PKF (V, aspect) vs 400-member ensemble",
    ),
    "chemistry1d": (
        "cases.chemistry1d",
        "two reacting species in a 1D wind: multivariate PKF (V_A, V_B, V_AB, L) vs ensemble",
    ),
}

__all__ = ["CASES", "load_case"]


def load_case(name: str) -> ModuleType:
    """Import the module of case ``name`` (ValueError listing the cases if unknown)."""
    if name not in CASES:
        raise ValueError(f"unknown case '{name}'; available cases: {', '.join(CASES)}")
    return import_module(CASES[name][0])
