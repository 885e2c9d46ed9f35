"""Generate Keras models from sympy evolution equations on periodic grids.

Public API: :class:`NNModelBuilder` (equations → code → model class), :class:`PDESystem`
(the analysed system), :func:`stencil_weights` / :func:`derivative_kernel` (finite
differences), :class:`GeneratedModel` (runtime base class), :func:`load_model`, the time
schemes and the one compiled time loop (:func:`time_grid`, :class:`NonFiniteStateError`).
TensorFlow is imported only when a model is built or run, so symbolic work stays light.
"""

from __future__ import annotations

from importlib import import_module

from .analysis import PDESystem as PDESystem
from .builder import NNModelBuilder as NNModelBuilder
from .integrate import NonFiniteStateError as NonFiniteStateError
from .integrate import TimeGrid as TimeGrid
from .integrate import time_grid as time_grid
from .stencils import derivative_kernel as derivative_kernel
from .stencils import stencil_weights as stencil_weights
from .symbols import TrainableScalar as TrainableScalar
from .timeschemes import TIME_SCHEMES as TIME_SCHEMES

_LAZY = {
    "GeneratedModel": "generator.model",
    "load_model": "generator.model",
}

__all__ = [
    "NNModelBuilder",
    "TrainableScalar",
    "PDESystem",
    "GeneratedModel",
    "load_model",
    "NonFiniteStateError",
    "TimeGrid",
    "time_grid",
    "stencil_weights",
    "derivative_kernel",
    "TIME_SCHEMES",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'generator' has no attribute {name!r}")
