"""Figure 6 of the PDE-NetGen paper: ensemble vs PKF for Burgers (mean, variance, length)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .figures import save_figure  # noqa: E402

__all__ = ["plot_burgers"]

_LABELS = {"u": r"$u / U_{max}$", "V": r"$V / V_0$", "L": r"$L / l_h$"}


def plot_burgers(
    x: np.ndarray,
    times: np.ndarray,
    ensemble: dict[str, np.ndarray],
    pkf: dict[str, np.ndarray],
    scales: dict[str, float],
    stem: str | Path,
) -> list[Path]:
    """2 × 3 panels: top the ensemble, bottom the PKF; columns u/Umax, V/V0, L/lh vs x/D.

    ``ensemble[f]`` and ``pkf[f]`` are (n_times, nx); one colour per saved time.
    Writes ``stem.png`` (200 dpi) and ``stem.pdf``.
    """
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.2), sharex=True, constrained_layout=True)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(times)))
    for row, (title, data) in enumerate((("ensemble", ensemble), ("PKF, learned closure", pkf))):
        for col, field in enumerate(("u", "V", "L")):
            ax = axes[row, col]
            for k, t in enumerate(times):
                ax.plot(
                    x,
                    data[field][k] / scales[field],
                    color=colours[k],
                    lw=1.2,
                    label=f"t = {t:.1f}",
                )
            ax.set_title(f"({'abcdef'[3 * row + col]}) {title}: {_LABELS[field]}", fontsize=9)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("x / D")
    axes[0, 0].legend(fontsize=7, ncol=2)
    for col in range(3):
        low = min(axes[0, col].get_ylim()[0], axes[1, col].get_ylim()[0])
        high = max(axes[0, col].get_ylim()[1], axes[1, col].get_ylim()[1])
        for row in range(2):
            axes[row, col].set_ylim(low, high)
    return save_figure(fig, stem)
