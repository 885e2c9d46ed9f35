"""Paper-size matplotlib figures shared by the case studies (PNG and PDF)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import EllipseCollection  # noqa: E402

__all__ = [
    "save_figure",
    "aspect_ellipses",
    "plot_anisotropy",
    "plot_error_curves",
    "plot_field_table",
    "plot_fields",
    "plot_profiles",
]


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
    return save_figure(fig, stem)


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` (200 dpi) and ``stem.pdf``, close the figure, return both paths."""
    stem = Path(stem)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=200)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def plot_field_table(
    rows: dict[str, dict[str, np.ndarray]],
    stem: str | Path,
    suptitle: str | None = None,
    shared: tuple[str, ...] = (),
    cmap: str = "viridis",
    diverging: tuple[str, ...] = (),
) -> list[Path]:
    """Table of 2D maps (nx, ny) on the unit square: one row per field, one column per source.

    Parameters
    ----------
    rows : dict of str to dict of str to numpy.ndarray
        ``{row label: {column title: field (nx, ny)}}``; every row has the same columns.
    stem : path
        Output path without suffix; writes ``stem.png`` and ``stem.pdf``.
    suptitle : str, optional
        Figure title.
    shared : tuple of str
        Columns drawn with a common colour range per row (e.g. PKF and ensemble).
    cmap : str
        Colour map of the non-diverging columns.
    diverging : tuple of str
        Columns drawn with a symmetric range and the ``RdBu_r`` map (e.g. differences).

    Returns
    -------
    list of pathlib.Path
        The PNG and PDF paths.
    """
    columns = list(next(iter(rows.values())))
    fig, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(3.0 * len(columns), 2.6 * len(rows)),
        constrained_layout=True,
        squeeze=False,
    )
    for r, (label, panels) in enumerate(rows.items()):
        together = [np.asarray(panels[c]) for c in columns if c in shared]
        vmin = min(float(f.min()) for f in together) if together else None
        vmax = max(float(f.max()) for f in together) if together else None
        for c, column in enumerate(columns):
            ax, field = axes[r, c], np.asarray(panels[column])
            if column in diverging:
                bound = float(np.abs(field).max()) or 1.0
                options = {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
            elif column in shared:
                options = {"cmap": cmap, "vmin": vmin, "vmax": vmax}
            else:
                options = {"cmap": cmap}
            image = ax.imshow(field.T, origin="lower", extent=(0, 1, 0, 1), **options)
            ax.set_title(f"{label}: {column}", fontsize=9)
            ax.set_xlabel("x / D", fontsize=8)
            ax.set_ylabel("y / D", fontsize=8)
            ax.tick_params(labelsize=7)
            bar = fig.colorbar(image, ax=ax, shrink=0.85, format="%.2g")
            bar.ax.tick_params(labelsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return save_figure(fig, stem)


def aspect_ellipses(
    aspect: np.ndarray, lengths: tuple[float, float], every: int, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes of a 2D aspect-tensor field, subsampled for drawing ellipses.

    Parameters
    ----------
    aspect : numpy.ndarray
        ``(2, 2, nx, ny)`` aspect tensor ``s`` (length²).
    lengths : tuple of float
        Domain lengths (the grid is ``x_i = i * L / n``).
    every : int
        Keep one point in ``every`` along each axis.
    scale : float
        Factor applied to the semi-axes (the principal length-scales).

    Returns
    -------
    tuple of numpy.ndarray
        Centres ``(m, 2)``, major and minor semi-axes ``(m,)`` (``scale`` times the square roots
        of the eigenvalues of ``s``) and the major-axis angle ``(m,)`` in degrees from x.
    """
    nx, ny = aspect.shape[2:]
    sub = aspect[:, :, ::every, ::every]
    tensors = np.moveaxis(sub, (0, 1), (-2, -1)).reshape(-1, 2, 2)
    values, vectors = np.linalg.eigh(tensors)
    x = np.arange(0, nx, every) * lengths[0] / nx
    y = np.arange(0, ny, every) * lengths[1] / ny
    centres = np.stack([a.ravel() for a in np.meshgrid(x, y, indexing="ij")], axis=1)
    major = scale * np.sqrt(np.clip(values[:, 1], 0.0, None))
    minor = scale * np.sqrt(np.clip(values[:, 0], 0.0, None))
    angle = np.degrees(np.arctan2(vectors[:, 1, 1], vectors[:, 0, 1]))
    return centres, major, minor, angle


def plot_anisotropy(
    aspects: dict[str, np.ndarray],
    lengths: tuple[float, float],
    stem: str | Path,
    every: int = 12,
    scale: float = 0.5,
    suptitle: str | None = None,
) -> list[Path]:
    """Principal length-scales and correlation ellipses of 2D aspect tensors.

    One column per source (e.g. PKF and ensemble): the top row maps the major principal
    length-scale with the ellipses ``x^T s^-1 x = scale²`` drawn on a subsampled grid; the
    bottom row maps the minor principal length-scale.

    Parameters
    ----------
    aspects : dict of str to numpy.ndarray
        ``{title: (2, 2, nx, ny) aspect tensor}`` (length², domain of size ``lengths``).
    lengths : tuple of float
        Domain lengths (axes are drawn as x / D).
    stem : path
        Output path without suffix.
    every : int
        Subsampling of the ellipses (one every ``every`` points per axis).
    scale : float
        Ellipse semi-axes are ``scale`` times the principal length-scales.
    suptitle : str, optional
        Figure title.
    """
    titles = list(aspects)
    principal = {}
    for title, aspect in aspects.items():
        tensors = np.moveaxis(np.asarray(aspect), (0, 1), (-2, -1))
        values = np.linalg.eigvalsh(tensors)
        principal[title] = np.sqrt(np.clip(values[..., ::-1], 0.0, None))  # major, minor
    fig, axes = plt.subplots(
        2, len(titles), figsize=(3.4 * len(titles), 6.0), constrained_layout=True, squeeze=False
    )
    for k, (name, index) in enumerate((("major", 0), ("minor", 1))):
        vmin = min(float(p[..., index].min()) for p in principal.values())
        vmax = max(float(p[..., index].max()) for p in principal.values())
        for c, title in enumerate(titles):
            ax = axes[k, c]
            image = ax.imshow(
                principal[title][..., index].T / lengths[0],
                origin="lower",
                extent=(0, 1, 0, 1),
                vmin=vmin / lengths[0],
                vmax=vmax / lengths[0],
                cmap="viridis",
            )
            ax.set_title(f"{title}: {name} length-scale / D", fontsize=9)
            ax.set_xlabel("x / D", fontsize=8)
            ax.set_ylabel("y / D", fontsize=8)
            ax.tick_params(labelsize=7)
            bar = fig.colorbar(image, ax=ax, shrink=0.85, format="%.3f")
            bar.ax.tick_params(labelsize=7)
            if k == 0:
                centres, major, minor, angle = aspect_ellipses(
                    np.asarray(aspects[title]), lengths, every, scale
                )
                ax.add_collection(
                    EllipseCollection(
                        2 * major / lengths[0],
                        2 * minor / lengths[1],
                        angle,
                        units="xy",
                        offsets=centres / np.asarray(lengths),
                        offset_transform=ax.transData,
                        facecolors="none",
                        edgecolors="white",
                        linewidths=0.6,
                    )
                )
                ax.set_xlim(0, 1)
                ax.set_ylim(0, 1)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return save_figure(fig, stem)


def plot_error_curves(
    times: np.ndarray,
    errors: dict[str, np.ndarray],
    stem: str | Path,
    reference: dict[str, np.ndarray] | None = None,
    title: str | None = None,
) -> list[Path]:
    """Relative L2 errors against time, one line per field.

    Parameters
    ----------
    times : numpy.ndarray
        ``(n,)`` saved times.
    errors : dict of str to numpy.ndarray
        ``{field: (n,) relative error}`` (NaN where undefined), drawn as solid lines.
    stem : path
        Output path without suffix.
    reference : dict of str to numpy.ndarray, optional
        ``{field: (n,)}`` drawn dashed in the same colour (e.g. the sampling noise of the
        ensemble).
    title : str, optional
        Axes title.
    """
    fig, ax = plt.subplots(figsize=(5.0, 3.4), constrained_layout=True)
    for k, (name, values) in enumerate(errors.items()):
        colour = f"C{k}"
        ax.plot(times, 100 * np.asarray(values, float), "o-", color=colour, label=name)
        if reference and name in reference:
            ax.plot(times, 100 * np.asarray(reference[name], float), "--", color=colour)
    ax.set_xlabel("time")
    ax.set_ylabel("relative L2 error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, stem)


def plot_profiles(
    x: np.ndarray,
    panels: dict[str, dict[str, np.ndarray]],
    stem: str | Path,
    styles: dict[str, str] | None = None,
    suptitle: str | None = None,
) -> list[Path]:
    """1D profiles: one panel per quantity, one line per source.

    Parameters
    ----------
    x : numpy.ndarray
        ``(nx,)`` coordinate (drawn as given).
    panels : dict of str to dict of str to numpy.ndarray
        ``{panel title: {line label: (nx,) values}}``.
    stem : path
        Output path without suffix.
    styles : dict of str to str, optional
        Matplotlib format string per line label (e.g. ``{"ensemble": "k."}``).
    suptitle : str, optional
        Figure title.
    """
    styles = styles or {}
    count = len(panels)
    columns = min(count, 3)
    rows = -(-count // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns, 2.8 * rows), constrained_layout=True, squeeze=False
    )
    for ax, (title, lines) in zip(axes.ravel(), panels.items(), strict=False):
        for label, values in lines.items():
            ax.plot(x, values, styles.get(label, "-"), label=label, markersize=2, linewidth=1.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("x / D", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(fontsize=7)
    for ax in axes.ravel()[count:]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return save_figure(fig, stem)
