"""Closures of the PKF dynamics: dimensions → term dictionaries → closure models → fits.

Public API: :class:`Dimension` and :class:`DimensionSystem` (physical dimensions of PKF
quantities and expressions), :func:`dictionary` (dimensionally consistent candidate terms)
and :func:`quasi_gaussian_proposal`, the named proposals (:func:`named_proposal`,
:func:`closure_names`, :func:`close`: ``"quasi-gaussian"``, ``"P18"``),
:func:`as_trainable_expression` and
:func:`linear_closure_model` / :func:`plug_linear_closure` (closure models),
:func:`least_squares`, :func:`stlsq` and :func:`fit_dictionary` (linear fits of the
coefficients, saved to JSON).  Keras is imported only by the closure-model functions.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .dictionary import Proposal as Proposal
from .dictionary import candidate_factors as candidate_factors
from .dictionary import dictionary as dictionary
from .dictionary import monomial_exponents as monomial_exponents
from .dictionary import quasi_gaussian_proposal as quasi_gaussian_proposal
from .dictionary import reflection_parity as reflection_parity
from .dimensions import DIMENSIONLESS as DIMENSIONLESS
from .dimensions import LENGTH as LENGTH
from .dimensions import TIME as TIME
from .dimensions import Dimension as Dimension
from .dimensions import DimensionError as DimensionError
from .dimensions import DimensionSystem as DimensionSystem
from .dimensions import Quantity as Quantity
from .dimensions import field_unit as field_unit
from .proposals import CLOSURE_NAMES as CLOSURE_NAMES
from .proposals import PROPOSAL_NAMES as PROPOSAL_NAMES
from .proposals import ClosureName as ClosureName
from .proposals import close as close
from .proposals import closure_names as closure_names
from .proposals import named_proposal as named_proposal

if TYPE_CHECKING:  # imported lazily at run time (Keras), see __getattr__
    from .fitting import FitMethod as FitMethod
    from .fitting import FitResult as FitResult
    from .fitting import evaluate as evaluate
    from .fitting import evaluate_terms as evaluate_terms
    from .fitting import fit_dictionary as fit_dictionary
    from .fitting import fit_one_step_closure as fit_one_step_closure
    from .fitting import least_squares as least_squares
    from .fitting import load_coefficients as load_coefficients
    from .fitting import residual_problem as residual_problem
    from .fitting import stlsq as stlsq
    from .models import DictionaryFeatures as DictionaryFeatures
    from .models import as_trainable_expression as as_trainable_expression
    from .models import closure_coefficients as closure_coefficients
    from .models import coefficient_names as coefficient_names
    from .models import linear_closure_model as linear_closure_model
    from .models import plug_linear_closure as plug_linear_closure
    from .models import set_closure_coefficients as set_closure_coefficients
    from .models import term_fields as term_fields

_LAZY = {
    "as_trainable_expression": "closures.models",
    "coefficient_names": "closures.models",
    "closure_coefficients": "closures.models",
    "set_closure_coefficients": "closures.models",
    "linear_closure_model": "closures.models",
    "plug_linear_closure": "closures.models",
    "term_fields": "closures.models",
    "DictionaryFeatures": "closures.models",
    "FitMethod": "closures.fitting",
    "FitResult": "closures.fitting",
    "evaluate": "closures.fitting",
    "evaluate_terms": "closures.fitting",
    "least_squares": "closures.fitting",
    "stlsq": "closures.fitting",
    "fit_dictionary": "closures.fitting",
    "fit_one_step_closure": "closures.fitting",
    "residual_problem": "closures.fitting",
    "load_coefficients": "closures.fitting",
}

__all__ = [
    "Dimension",
    "DimensionError",
    "DimensionSystem",
    "Quantity",
    "DIMENSIONLESS",
    "LENGTH",
    "TIME",
    "field_unit",
    "dictionary",
    "candidate_factors",
    "monomial_exponents",
    "reflection_parity",
    "Proposal",
    "quasi_gaussian_proposal",
    "CLOSURE_NAMES",
    "PROPOSAL_NAMES",
    "ClosureName",
    "close",
    "closure_names",
    "named_proposal",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'closures' has no attribute {name!r}")
