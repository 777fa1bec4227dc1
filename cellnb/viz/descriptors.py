"""Figures of shape descriptors, real (O) next to generated (G) (notebook 05, the paper's quantitative figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellnb.compare import format_cell, time_courses
from cellnb.descriptors import DESCRIPTOR_COLUMNS

__all__ = ["plot_distributions", "plot_time_bands", "plot_stats_table"]

REAL_COLOR = "0.45"  # grey for the real data, tab10 colours for generated strategies
N_PANEL_COLUMNS = 4  # descriptor panels per figure row


def _datasets(real_df: pd.DataFrame, gen_dfs: dict) -> list[tuple[str, pd.DataFrame, str]]:
    if not isinstance(gen_dfs, dict):
        raise ValueError(
            "gen_dfs must be a dict {strategy name: descriptor table}; wrap a single table as {'G': table}"
        )
    colors = plt.get_cmap("tab10").colors
    generated = [(str(k), df, colors[i % len(colors)]) for i, (k, df) in enumerate(gen_dfs.items())]
    return [("O", real_df, REAL_COLOR)] + generated


def _columns(datasets, columns) -> list[str]:
    if columns is None:
        return [c for c in DESCRIPTOR_COLUMNS if all(c in df.columns for _, df, _ in datasets)]
    for name, df, _ in datasets:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"columns {missing} are not in the {name!r} table; choose from {DESCRIPTOR_COLUMNS}")
    return list(columns)


def _panels(n: int, width: float, height: float):
    n_cols = min(N_PANEL_COLUMNS, n)
    n_rows = int(np.ceil(n / n_cols))
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False, constrained_layout=True
    )
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def plot_distributions(real_df: pd.DataFrame, gen_dfs: dict, *, columns=None, title: str | None = None):
    """Violin plot of each descriptor over all frames: real (O) next to each generated strategy.

    Parameters
    ----------
    real_df : pandas.DataFrame
        Descriptor table of the real sequences (:func:`cellnb.descriptors.describe_sequence`).
    gen_dfs : dict of str to pandas.DataFrame
        Descriptor table of each generation strategy, e.g. ``{"gaussian": ..., "random": ...}``.
    columns : list of str, optional
        Descriptors, one panel each; default all of :data:`~cellnb.descriptors.DESCRIPTOR_COLUMNS`.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        A white bar marks each median; a sample whose values are all equal is
        drawn as a horizontal line.  NaN values are left out.
    """
    datasets = _datasets(real_df, gen_dfs)
    columns = _columns(datasets, columns)
    fig, axes = _panels(len(columns), 0.6 * len(datasets) + 1.6, 2.6)
    positions = np.arange(1, len(datasets) + 1)
    for ax, column in zip(axes, columns):
        for pos, (_, df, color) in zip(positions, datasets):
            values = df[column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if len(values) == 0:
                continue
            if len(values) > 1 and np.ptp(values) > 0:
                parts = ax.violinplot(values, positions=[pos], widths=0.8, showextrema=False)
                for body in parts["bodies"]:
                    body.set_facecolor(color)
                    body.set_edgecolor("black")
                    body.set_alpha(0.75)
            else:
                ax.hlines(values[0], pos - 0.35, pos + 0.35, color=color, lw=3)
            ax.hlines(np.median(values), pos - 0.15, pos + 0.15, color="white", lw=2)
        ax.set_xticks(positions, [name for name, _, _ in datasets], rotation=45 if len(datasets) > 3 else 0)
        ax.set_title(column.replace("_", " "), fontsize=9)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_time_bands(real_df: pd.DataFrame, gen_dfs: dict, *, columns=None, n_times: int | None = None):
    """Median and interquartile band of each descriptor over normalised time, real and generated.

    Each sequence is resampled to a common time grid first
    (:func:`cellnb.compare.time_courses`), so sequences of different lengths
    line up from first (t = -1) to last frame (t = +1).

    Parameters
    ----------
    real_df, gen_dfs, columns
        As in :func:`plot_distributions`.
    n_times : int, optional
        Time points; default the largest frame count of any sequence.

    Returns
    -------
    matplotlib.figure.Figure
    """
    datasets = _datasets(real_df, gen_dfs)
    columns = _columns(datasets, columns)
    if n_times is None:
        n_times = max(int(df.groupby("sequence").size().max()) for _, df, _ in datasets)
    fig, axes = _panels(len(columns), 3.0, 2.3)
    for name, df, color in datasets:
        _, grid, courses = time_courses(df, columns=columns, n_times=n_times)
        low, mid, high = np.nanpercentile(courses, [25, 50, 75], axis=0)
        for j, ax in enumerate(axes):
            ax.fill_between(grid, low[:, j], high[:, j], color=color, alpha=0.25, lw=0)
            ax.plot(grid, mid[:, j], color=color, lw=1.5, label=name)
    for ax, column in zip(axes, columns):
        ax.set_title(column.replace("_", " "), fontsize=9)
        ax.set_xlabel("normalised time t", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, frameon=False)
    return fig


def plot_stats_table(table_df: pd.DataFrame, *, title: str | None = None):
    """The statistics table of :func:`cellnb.compare.compare_descriptors` as an image.

    Parameters
    ----------
    table_df : pandas.DataFrame
        Any table; its index becomes the first column, floats are shown to 4
        significant digits.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    header = [str(table_df.index.name or "")] + [str(c) for c in table_df.columns]
    cells = [[format_cell(i)] + [format_cell(v) for v in row.tolist()] for i, row in table_df.iterrows()]
    fig, ax = plt.subplots(figsize=(1.1 * len(header) + 0.6, 0.3 * (len(cells) + 1) + 0.5), constrained_layout=True)
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=header, loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(header))))
    if title:
        ax.set_title(title, fontsize=9)
    return fig
