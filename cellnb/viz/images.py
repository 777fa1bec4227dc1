"""A rendered image as a labelled matplotlib figure (rows and columns of a render grid)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["image_figure"]


def image_figure(image: np.ndarray, *, title: str | None = None, row_labels=None, col_labels=None):
    """A matplotlib figure showing a rendered image, with optional row and column labels.

    Labels are placed evenly along the left and top edges, matching a grid made by
    :func:`cellnb.render.render_grid`.
    """
    h, w = image.shape[:2]
    fig, ax = plt.subplots(figsize=(min(2.0 + w / 110.0, 16.0), min(0.6 + h / 110.0, 16.0)), constrained_layout=True)
    ax.imshow(image)
    ax.set_xticks([] if not col_labels else (np.arange(len(col_labels)) + 0.5) * w / len(col_labels))
    ax.set_yticks([] if not row_labels else (np.arange(len(row_labels)) + 0.5) * h / len(row_labels))
    if col_labels:
        ax.set_xticklabels(col_labels, fontsize=8)
        ax.xaxis.tick_top()
    if row_labels:
        ax.set_yticklabels(row_labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
