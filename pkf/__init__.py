"""Parametric Kalman filter: symbolic PKF dynamics and the ensemble engine.

Public API: :class:`SymbolicPKF` and :class:`Expectation` (derivation; the option types
:data:`PKFForm` and :data:`ClosureHandling`),
:func:`quasi_gaussian_closure`, :func:`sample_errors` and helpers (initial ensembles),
:class:`MomentAccumulator` and :func:`ensemble_statistics` (statistics),
:class:`EnsembleForecast` (batched ensemble forecasts with on-the-fly statistics, results as
``xarray`` datasets), :func:`build_dataset` / :func:`open_training_set` (resumable, verified
training sets) and :class:`NetCDFWriter` (the record writer behind them).
"""

from .dataset import build_dataset as build_dataset
from .dataset import callable_fingerprint as callable_fingerprint
from .dataset import ensemble_seed as ensemble_seed
from .dataset import open_training_set as open_training_set
from .dataset import rollout_samples as rollout_samples
from .derivation import ClosureHandling as ClosureHandling
from .derivation import SymbolicPKF as SymbolicPKF
from .ensemble import EnsembleForecast as EnsembleForecast
from .ensemble import EnsembleResult as EnsembleResult
from .expectation import Expectation as Expectation
from .forms import PKFForm as PKFForm
from .netcdf import CorruptFileError as CorruptFileError
from .netcdf import NetCDFWriter as NetCDFWriter
from .netcdf import OutputLockedError as OutputLockedError
from .netcdf import VariableSpec as VariableSpec
from .quasi_gaussian import quasi_gaussian_closure as quasi_gaussian_closure
from .sampling import BoundaryConsistentMembers as BoundaryConsistentMembers
from .sampling import BoundaryErrors as BoundaryErrors
from .sampling import ensemble_from_background as ensemble_from_background
from .sampling import gaussian_correlation as gaussian_correlation
from .sampling import isotropic_correlation as isotropic_correlation
from .sampling import sample_errors as sample_errors
from .sampling import time_correlated_errors as time_correlated_errors
from .statistics import MomentAccumulator as MomentAccumulator
from .statistics import Moments as Moments
from .statistics import debias_diffusion as debias_diffusion
from .statistics import ensemble_statistics as ensemble_statistics
from .statistics import metric_from_ensemble as metric_from_ensemble
from .statistics import variance_estimator as variance_estimator

__all__ = [
    "SymbolicPKF",
    "PKFForm",
    "ClosureHandling",
    "Expectation",
    "quasi_gaussian_closure",
    "sample_errors",
    "gaussian_correlation",
    "isotropic_correlation",
    "ensemble_from_background",
    "BoundaryConsistentMembers",
    "BoundaryErrors",
    "time_correlated_errors",
    "MomentAccumulator",
    "Moments",
    "debias_diffusion",
    "ensemble_statistics",
    "metric_from_ensemble",
    "variance_estimator",
    "EnsembleForecast",
    "EnsembleResult",
    "build_dataset",
    "callable_fingerprint",
    "ensemble_seed",
    "open_training_set",
    "rollout_samples",
    "CorruptFileError",
    "NetCDFWriter",
    "OutputLockedError",
    "VariableSpec",
]
