"""Data assimilation with the PKF: observations, the PKF analysis, exact KF, EnKF and cycles.

Public API: :class:`Observations` (point observations, :meth:`Observations.from_truth`),
:func:`analysis` (the PKF analysis step, uni- and multivariate, 1D-3D), :class:`KalmanFilter`
(exact square-root Kalman filter of linear dynamics, the reference), :class:`EnKF` (stochastic
and serial square-root ensemble Kalman filters), :func:`run_cycles` (forecast/analysis cycles of
all of them on the same observations), :class:`CovarianceModel` (the PKF covariance model) and
:func:`square_root_statistics` (variance and tensors of a covariance given by columns).
"""

from .analysis_step import AnalysisError as AnalysisError
from .analysis_step import AnalysisOrder as AnalysisOrder
from .analysis_step import ForecastMetric as ForecastMetric
from .analysis_step import analysis as analysis
from .covariance import CovarianceModel as CovarianceModel
from .covariance import SquareRootStatistics as SquareRootStatistics
from .covariance import square_root_statistics as square_root_statistics
from .cycles import CycleResult as CycleResult
from .cycles import EnKFSetup as EnKFSetup
from .cycles import ObservationNetwork as ObservationNetwork
from .cycles import run_cycles as run_cycles
from .enkf import EnKF as EnKF
from .enkf import EnKFVariant as EnKFVariant
from .enkf import gaspari_cohn as gaspari_cohn
from .grid import Grid as Grid
from .kalman import KalmanFilter as KalmanFilter
from .observations import Observations as Observations
from .observations import regular_network as regular_network
from .state import PKFState as PKFState

__all__ = [
    "AnalysisError",
    "AnalysisOrder",
    "CovarianceModel",
    "CycleResult",
    "EnKF",
    "EnKFSetup",
    "EnKFVariant",
    "ForecastMetric",
    "Grid",
    "KalmanFilter",
    "ObservationNetwork",
    "Observations",
    "PKFState",
    "SquareRootStatistics",
    "analysis",
    "gaspari_cohn",
    "regular_network",
    "run_cycles",
    "square_root_statistics",
]
