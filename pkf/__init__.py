"""Parametric Kalman filter: symbolic PKF dynamics and the ensemble engine.

Public API: :class:`SymbolicPKF` and :class:`Expectation` (derivation),
:func:`quasi_gaussian_closure`, :func:`sample_errors` and helpers (initial ensembles),
:class:`MomentAccumulator` and :func:`ensemble_statistics` (statistics),
:class:`NetCDFWriter` and :func:`read_netcdf` (datasets).
"""

from .derivation import SymbolicPKF as SymbolicPKF
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
    "NetCDFWriter",
    "VariableSpec",
    "read_netcdf",
]
