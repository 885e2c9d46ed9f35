"""Paper-size matplotlib figures shared by the case studies (PNG and PDF)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_fields"]


def plot_fields(
    panels: dict[str, np.ndarray],
    lengths: tuple[float, float],
    stem: str | Path,
    suptitle: str | None = None,
    cmap: str = "viridis",
) -> list[Path]:
    """Side-by-side maps of 2D fields (nx, ny) on [0, Lx) × [0, Ly), axes in x/D (D = L).

    Writes ``stem.png`` (200 dpi) and ``stem.pdf``; returns both paths.
    """
    count = len(panels)
    fig, axes = plt.subplots(1, count, figsize=(3.3 * count, 3.2), constrained_layout=True)
    axes = np.atleast_1d(axes)
    extent = (0, 1, 0, 1)  # coordinates normalised by the domain lengths
    for ax, (title, field) in zip(axes, panels.items(), strict=True):
        image = ax.imshow(np.asarray(field).T, origin="lower", extent=extent, cmap=cmap)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x / D")
        ax.set_ylabel("y / D")
        fig.colorbar(image, ax=ax, shrink=0.8, format="%.1e")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    stem = Path(stem)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=200)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths
