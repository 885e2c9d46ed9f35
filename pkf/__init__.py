"""Parametric Kalman filter: symbolic PKF dynamics and the ensemble engine.

Public API: :class:`SymbolicPKF` and :class:`Expectation` (derivation),
:func:`quasi_gaussian_closure`, :func:`sample_errors` and helpers (initial ensembles),
:class:`MomentAccumulator` and :func:`ensemble_statistics` (statistics),
:class:`EnsembleForecast` (batched ensemble forecasts with on-the-fly statistics),
:func:`build_dataset` (resumable training datasets), :class:`NetCDFWriter` and
:func:`read_netcdf` (netCDF files).
"""

from .dataset import build_dataset as build_dataset
from .dataset import burgers_background as burgers_background
from .dataset import ensemble_seed as ensemble_seed
from .derivation import SymbolicPKF as SymbolicPKF
from .ensemble import EnsembleForecast as EnsembleForecast
from .ensemble import EnsembleResult as EnsembleResult
from .expectation import Expectation as Expectation
from .netcdf import NetCDFWriter as NetCDFWriter
from .netcdf import VariableSpec as VariableSpec
from .netcdf import read_netcdf as read_netcdf
from .quasi_gaussian import quasi_gaussian_closure as quasi_gaussian_closure
from .sampling import ensemble_from_background as ensemble_from_background
from .sampling import gaussian_correlation as gaussian_correlation
from .sampling import isotropic_correlation as isotropic_correlation
from .sampling import sample_errors as sample_errors
from .statistics import MomentAccumulator as MomentAccumulator
from .statistics import Moments as Moments
from .statistics import ensemble_statistics as ensemble_statistics
from .statistics import metric_from_ensemble as metric_from_ensemble

__all__ = [
    "SymbolicPKF",
    "Expectation",
    "quasi_gaussian_closure",
    "sample_errors",
    "gaussian_correlation",
    "isotropic_correlation",
    "ensemble_from_background",
    "MomentAccumulator",
    "Moments",
    "ensemble_statistics",
    "metric_from_ensemble",
    "EnsembleForecast",
    "EnsembleResult",
    "build_dataset",
    "burgers_background",
    "ensemble_seed",
    "NetCDFWriter",
    "VariableSpec",
    "read_netcdf",
]
