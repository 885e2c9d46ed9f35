"""Comparison of PKF fields with ensemble statistics, shared by the case studies."""

from __future__ import annotations

import numpy as np

__all__ = ["relative_l2", "errors_by_time"]


def relative_l2(estimate: np.ndarray, reference: np.ndarray) -> float | None:
    """‖estimate − reference‖₂ / ‖reference‖₂ over the grid (None when ‖reference‖ is 0)."""
    norm = float(np.linalg.norm(reference))
    if norm == 0.0:
        return None
    return float(np.linalg.norm(np.asarray(estimate) - reference)) / norm


def errors_by_time(
    estimate: dict[str, np.ndarray], reference: dict[str, np.ndarray], skip_zero: bool = True
) -> dict[str, list[float | None]]:
    """Relative L2 error of each field at each saved time (fields are (n_saved, *grid)).

    With ``skip_zero`` the error is None where the estimate is identically 0 (e.g. a PKF
    cross term at t = 0, where the ensemble value is pure sampling noise).
    """
    return {
        key: [
            None
            if skip_zero and not np.any(values[k])
            else relative_l2(values[k], reference[key][k])
            for k in range(values.shape[0])
        ]
        for key, values in estimate.items()
    }
