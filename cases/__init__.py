"""Case studies, one module per case, each exposing ``run(out, quick=..., ...)``.

:data:`CASES` maps a case name to its module; modules are imported only when run, so the
command line starts fast.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

#: case name → (module, one-line description)
CASES: dict[str, tuple[str, str]] = {
    "diffusion2d": (
        "cases.diffusion2d",
        "heterogeneous 2D diffusion of a Dirac (paper Fig. 4): generated network vs numpy",
    ),
}

__all__ = ["CASES", "load_case"]


def load_case(name: str) -> ModuleType:
    """Import the module of case ``name`` (ValueError listing the cases if unknown)."""
    if name not in CASES:
        raise ValueError(f"unknown case '{name}'; available cases: {', '.join(CASES)}")
    return import_module(CASES[name][0])
