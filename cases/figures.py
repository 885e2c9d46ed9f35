"""Paper-size figures of the case studies, drawn on ``matplotlib.figure.Figure`` objects.

No pyplot and no global backend switch: each function returns a :class:`~matplotlib.figure.
Figure` that :meth:`cases.study.Output.write_figure` saves as PNG and PDF. Maps take 2D
``xarray.DataArray`` fields with dims ``(y, x)`` (CF order, as every pkfnet result) and draw
them with ``x`` horizontal; axes are in units of the domain length ``D``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.collections import EllipseCollection
from matplotlib.figure import Figure

__all__ = [
    "aspect_ellipses",
    "plot_cycle_scores",
    "plot_anisotropy",
    "plot_error_curves",
    "plot_field_table",
    "plot_fields",
    "plot_profiles",
    "plot_time_profiles",
]


def _map(fig: Figure, ax, field: xr.DataArray, title: str, **options) -> None:
    field = field.transpose("y", "x")
    lengths = [float(field[c].size * (field[c][1] - field[c][0])) for c in ("x", "y")]
    extent = (0, 1, 0, 1)
    image = ax.imshow(field.values, origin="lower", extent=extent, **options)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x / D", fontsize=8)
    ax.set_ylabel("y / D", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_aspect(lengths[1] / lengths[0])
    bar = fig.colorbar(image, ax=ax, shrink=0.85, format="%.2g")
    bar.ax.tick_params(labelsize=7)


def plot_fields(panels: dict[str, xr.DataArray], suptitle: str | None = None) -> Figure:
    """Side-by-side maps of 2D fields ``(y, x)``, one colour bar each."""
    fig = Figure(figsize=(3.3 * len(panels), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, field) in zip(axes, panels.items(), strict=True):
        _map(fig, ax, field, title, cmap="viridis")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def plot_field_table(
    rows: dict[str, dict[str, xr.DataArray]],
    suptitle: str | None = None,
    shared: tuple[str, ...] = (),
    diverging: tuple[str, ...] = (),
) -> Figure:
    """Table of maps: one row per field, one column per source (e.g. PKF, ensemble, difference).

    Parameters
    ----------
    rows : ``{row label: {column title: field (y, x)}}``, every row with the same columns.
    shared : columns drawn with a common colour range per row.
    diverging : columns drawn with a symmetric range and the ``RdBu_r`` map.
    """
    columns = list(next(iter(rows.values())))
    fig = Figure(figsize=(3.0 * len(columns), 2.6 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for r, (label, panels) in enumerate(rows.items()):
        together = [panels[c] for c in columns if c in shared]
        vmin = min(float(f.min()) for f in together) if together else None
        vmax = max(float(f.max()) for f in together) if together else None
        for c, column in enumerate(columns):
            field = panels[column]
            if column in diverging:
                bound = float(np.abs(field).max()) or 1.0
                options = {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
            elif column in shared:
                options = {"cmap": "viridis", "vmin": vmin, "vmax": vmax}
            else:
                options = {"cmap": "viridis"}
            _map(fig, axes[r, c], field, f"{label}: {column}", **options)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def aspect_ellipses(
    s_xx: xr.DataArray, s_xy: xr.DataArray, s_yy: xr.DataArray, every: int, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes of a 2D aspect-tensor field, subsampled for drawing ellipses.

    Parameters
    ----------
    s_xx, s_xy, s_yy : xarray.DataArray
        Aspect tensor components (length²), dims ``(y, x)``.
    every : keep one point in ``every`` along each axis.
    scale : factor applied to the semi-axes (the principal length-scales).

    Returns
    -------
    centres ``(m, 2)`` (x, y), major and minor semi-axes ``(m,)`` (``scale`` times the square
    roots of the eigenvalues of ``s``) and the major-axis angle ``(m,)`` in degrees from x.
    """
    sub = [c.transpose("y", "x")[::every, ::every] for c in (s_xx, s_xy, s_yy)]
    tensors = np.stack(
        [np.stack([sub[0], sub[1]], axis=-1), np.stack([sub[1], sub[2]], axis=-1)], axis=-2
    ).reshape(-1, 2, 2)
    values, vectors = np.linalg.eigh(tensors)
    x, y = np.meshgrid(sub[0]["x"].values, sub[0]["y"].values, indexing="xy")
    centres = np.stack([x.ravel(), y.ravel()], axis=1)
    major = scale * np.sqrt(np.clip(values[:, 1], 0.0, None))
    minor = scale * np.sqrt(np.clip(values[:, 0], 0.0, None))
    angle = np.degrees(np.arctan2(vectors[:, 1, 1], vectors[:, 0, 1]))
    return centres, major, minor, angle


def plot_anisotropy(
    aspects: dict[str, tuple[xr.DataArray, xr.DataArray, xr.DataArray]],
    every: int = 12,
    scale: float = 0.5,
    suptitle: str | None = None,
) -> Figure:
    """Principal length-scales and correlation ellipses of 2D aspect tensors.

    One column per source: the top row maps the major principal length-scale with the ellipses
    ``x^T s^-1 x = scale²`` on a subsampled grid, the bottom row the minor one.

    Parameters
    ----------
    aspects : ``{title: (s_xx, s_xy, s_yy)}``, each ``(y, x)`` (length², domain ``D``).
    """
    titles = list(aspects)
    first = aspects[titles[0]][0]
    lengths = np.array([float(first[c].size * (first[c][1] - first[c][0])) for c in ("x", "y")])
    principal = {}
    for title, (sxx, sxy, syy) in aspects.items():
        trace, det = sxx + syy, sxx * syy - sxy**2
        root = np.sqrt(np.clip((trace / 2) ** 2 - det, 0.0, None))
        principal[title] = (
            np.sqrt(np.clip(trace / 2 + root, 0.0, None)),
            np.sqrt(np.clip(trace / 2 - root, 0.0, None)),
        )
    fig = Figure(figsize=(3.4 * len(titles), 6.0), layout="constrained")
    axes = fig.subplots(2, len(titles), squeeze=False)
    for k, name in enumerate(("major", "minor")):
        vmin = min(float(p[k].min()) for p in principal.values()) / lengths[0]
        vmax = max(float(p[k].max()) for p in principal.values()) / lengths[0]
        for c, title in enumerate(titles):
            ax = axes[k, c]
            _map(
                fig,
                ax,
                principal[title][k] / lengths[0],
                f"{title}: {name} length-scale / D",
                cmap="viridis",
                vmin=vmin,
                vmax=vmax,
            )
            if k == 0:
                centres, major, minor, angle = aspect_ellipses(*aspects[title], every, scale)
                ax.add_collection(
                    EllipseCollection(
                        2 * major / lengths[0],
                        2 * minor / lengths[1],
                        angle,
                        units="xy",
                        offsets=centres / lengths,
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
    return fig


def plot_error_curves(
    times: np.ndarray,
    errors: dict[str, list[float | None]],
    reference: dict[str, list[float | None]] | None = None,
    title: str | None = None,
    log: bool = False,
    reference_label: str = "ensemble 2 vs 1 (noise)",
) -> Figure:
    """Relative L2 errors (%) against time, one solid line per field; ``reference`` dashed in
    the same colour (e.g. the ensemble's sampling noise). A name ``"field, variant"`` (another
    estimate of a field listed before it) is drawn dotted with squares in the field's colour.
    ``None`` entries are gaps; ``log``: a logarithmic error axis (errors spanning decades);
    ``reference_label``: the legend entry of the dashed lines."""

    def percent(values):
        return 100 * np.array([np.nan if v is None else v for v in values], dtype=float)

    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.subplots()
    colours: dict[str, str] = {}
    for name, values in errors.items():
        field = name.split(",")[0]
        variant = field != name and field in colours
        colour = colours.setdefault(field, f"C{len(colours)}")
        ax.plot(times, percent(values), "s:" if variant else "o-", color=colour, label=name)
        if reference and name in reference:
            ax.plot(times, percent(reference[name]), "--", color=colour)
    if reference:
        ax.plot([], [], "--", color="0.4", label=reference_label)
    ax.set_xlabel("time")
    ax.set_ylabel("relative L2 error (%)")
    if log:
        from matplotlib.ticker import ScalarFormatter

        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 3, 30 rather than 3×10⁰, 3×10¹
        ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.grid(alpha=0.3, which="both" if log else "major")
    ax.legend(fontsize=8, ncols=2)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_profiles(
    x: np.ndarray,
    panels: dict[str, dict[str, np.ndarray]],
    styles: dict[str, str] | None = None,
    suptitle: str | None = None,
    columns: int | None = None,
    xlabel: str = "x / D (D: domain length)",
) -> Figure:
    """1D profiles: one panel per quantity ``{title: {line label: (nx,) values}}``, ``columns``
    panels per row (default up to 3)."""
    styles = styles or {}
    count = len(panels)
    columns = min(count, columns or 3)
    rows = -(-count // columns)
    fig = Figure(figsize=(3.6 * columns, 2.8 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, (title, lines) in zip(axes.ravel(), panels.items(), strict=False):
        for label, values in lines.items():
            ax.plot(x, values, styles.get(label, "-"), label=label, markersize=2, linewidth=1.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(fontsize=7)
    for ax in axes.ravel()[count:]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def plot_time_profiles(
    rows: dict[str, xr.Dataset],
    columns: dict[str, tuple[str, float, str]],
) -> Figure:
    """Profiles at every saved time: one row per source, one column per quantity (Fig. 6).

    Parameters
    ----------
    rows : ``{row title: dataset}`` with 1D variables ``(time, x)``.
    columns : ``{variable: (label, scale, description)}``: each variable is drawn divided by
        ``scale`` and labelled ``label``.
    """
    fig = Figure(figsize=(3.4 * len(columns), 2.6 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(columns), sharex=True, squeeze=False)
    letters = "abcdefghijklmnop"
    for r, (title, data) in enumerate(rows.items()):
        times = data["time"].values
        colours = colormaps["viridis"](np.linspace(0, 0.9, len(times)))
        for c, (name, (label, scale, _)) in enumerate(columns.items()):
            ax = axes[r, c]
            x = data[name]["x"].values
            length = float(x.size * (x[1] - x[0]))
            for k, t in enumerate(times):
                ax.plot(
                    x / length,
                    data[name].values[k] / scale,
                    color=colours[k],
                    lw=1.2,
                    label=f"t = {t:.1f}",
                )
            ax.set_title(f"({letters[len(columns) * r + c]}) {title}: {label}", fontsize=9)
            ax.grid(alpha=0.3)
            if r == len(rows) - 1:
                ax.set_xlabel("x / D")
    axes[0, 0].legend(fontsize=7, ncol=2)
    for c in range(len(columns)):
        low = min(axes[r, c].get_ylim()[0] for r in range(len(rows)))
        high = max(axes[r, c].get_ylim()[1] for r in range(len(rows)))
        for r in range(len(rows)):
            axes[r, c].set_ylim(low, high)
    return fig


def plot_cycle_scores(
    times: np.ndarray,
    scores: dict[str, dict[str, np.ndarray]],
    title: str | None = None,
    styles: dict[str, str] | None = None,
    widths: dict[str, float] | None = None,
) -> Figure:
    """RMSE (solid) and spread (dashed) of assimilation cycles, one colour per filter.

    Each cycle is drawn as a saw tooth: the forecast value then the analysis value at the same
    analysis time.

    Parameters
    ----------
    times : ``(cycles,)`` analysis times.
    scores : ``{filter: {"rmse": (cycles, 2), "spread": (cycles, 2)}}``, columns forecast and
        analysis.
    styles : optional colour per filter (e.g. ``"C0"``).
    widths : optional line width per filter (default: the first, the reference, thick).
    """
    styles = styles or {}
    widths = widths or {}
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    steps = np.repeat(np.asarray(times, dtype=float), 2)
    for k, (name, values) in enumerate(scores.items()):
        colour = styles.get(name, f"C{k}")
        width = widths.get(name, 2.6 if k == 0 else 1.3)  # the first (reference) underneath
        ax.plot(steps, np.asarray(values["rmse"]).ravel(), "-", color=colour, lw=width, label=name)
        ax.plot(steps, np.asarray(values["spread"]).ravel(), "--", color=colour, lw=1.0)
    ax.set_xlabel("time")
    ax.set_ylabel("RMSE (solid), spread (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
