"""Generate Keras models from sympy evolution equations on periodic or bounded grids.

Public API: :class:`NNModelBuilder` (equations → code → model class; ``boundaries=`` with
:class:`Periodic`, :class:`Dirichlet`, :class:`Neumann`, :class:`Outflow` sides and
:class:`BoundarySeries` values), :class:`PDESystem`
(the analysed system), :func:`stencil_weights` / :func:`derivative_kernel` (finite
differences), :class:`GeneratedModel` (runtime base class), :func:`load_model`, the time
schemes and the one compiled time loop (:func:`time_grid`, :class:`NonFiniteStateError`); the
protocols saying what consumers need from a model (:class:`LabelledModel`,
:class:`SteppableModel`, :class:`FingerprintedModel`, :class:`TrainableModel`,
:class:`ClosableModel`) and the option types :data:`DType` and :data:`TimeScheme`.
TensorFlow is imported only when a model is built or run, so symbolic work stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .analysis import PDESystem as PDESystem
from .boundaries import BoundarySeries as BoundarySeries
from .boundaries import Dirichlet as Dirichlet
from .boundaries import Neumann as Neumann
from .boundaries import Outflow as Outflow
from .boundaries import Periodic as Periodic
from .builder import NNModelBuilder as NNModelBuilder
from .integrate import NonFiniteStateError as NonFiniteStateError
from .integrate import TimeGrid as TimeGrid
from .integrate import enable_compilation_cache as enable_compilation_cache
from .integrate import time_grid as time_grid
from .protocols import ClosableModel as ClosableModel
from .protocols import DType as DType
from .protocols import FingerprintedModel as FingerprintedModel
from .protocols import LabelledModel as LabelledModel
from .protocols import SteppableModel as SteppableModel
from .protocols import TrainableModel as TrainableModel
from .stencils import derivative_kernel as derivative_kernel
from .stencils import stencil_weights as stencil_weights
from .symbols import TrainableScalar as TrainableScalar
from .timeschemes import TIME_SCHEMES as TIME_SCHEMES
from .timeschemes import TimeScheme as TimeScheme

if TYPE_CHECKING:  # imported lazily at run time (TensorFlow), see __getattr__
    from .model import GeneratedModel as GeneratedModel
    from .model import load_model as load_model

_LAZY = {
    "GeneratedModel": "generator.model",
    "load_model": "generator.model",
}

__all__ = [
    "NNModelBuilder",
    "TrainableScalar",
    "PDESystem",
    "Periodic",
    "Dirichlet",
    "Neumann",
    "Outflow",
    "BoundarySeries",
    "GeneratedModel",
    "load_model",
    "NonFiniteStateError",
    "TimeGrid",
    "enable_compilation_cache",
    "time_grid",
    "stencil_weights",
    "derivative_kernel",
    "TIME_SCHEMES",
    "TimeScheme",
    "DType",
    "LabelledModel",
    "SteppableModel",
    "FingerprintedModel",
    "TrainableModel",
    "ClosableModel",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'generator' has no attribute {name!r}")
