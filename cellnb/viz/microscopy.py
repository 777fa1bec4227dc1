"""Figures of synthetic microscopy (notebook 06).

* :func:`plot_views`: per SNR, an XY slice, an XZ slice and the maximum
  projection along Z of one frame, beside the ground truth;
* :func:`plot_histograms`: image intensities inside and outside the cells;
* :func:`plot_seg_curve`: baseline SEG (and Otsu Dice) against SNR.

Images are ``(Z, Y, X)`` frames; slices are drawn at their physical aspect
(voxel size ``spacing``).  Every function returns a matplotlib Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter
from skimage.segmentation import find_boundaries

__all__ = ["plot_views", "plot_histograms", "plot_seg_curve"]

_CONTOUR_COLOUR = (1.0, 0.35, 0.1)  # ground-truth outlines drawn over the images
_HISTOGRAM_BINS = 80  # about this many bins, each a whole number of ADU wide


def _with_outline(gray: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """An RGB image of ``gray`` (scaled to its 0.5-99.5 percentiles) with the outlines of ``labels``."""
    lo, hi = np.percentile(gray, [0.5, 99.5])
    scaled = np.clip((gray.astype(float) - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = np.repeat(scaled[..., None], 3, axis=-1)
    rgb[find_boundaries(labels, mode="inner")] = _CONTOUR_COLOUR
    return rgb


def _views(volume: np.ndarray, labels: np.ndarray):
    z = int(np.argmax((labels > 0).sum(axis=(1, 2))))
    y = int(np.argmax((labels > 0).sum(axis=(0, 2))))
    return [
        (f"XY slice z={z}", volume[z], labels[z], "xy"),
        (f"XZ slice y={y}", volume[:, y], labels[:, y], "xz"),
        ("max projection along Z", volume.max(axis=0), labels.max(axis=0), "xy"),
    ]


def plot_views(images: dict, labels: np.ndarray, *, spacing=(1.0, 1.0, 1.0), title: str | None = None):
    """Slices and maximum projections of one frame at several SNRs, beside the ground truth.

    Parameters
    ----------
    images : dict
        ``{snr: frame (Z, Y, X)}``.
    labels : ndarray of int, shape (Z, Y, X)
        Ground truth of the frame (outlined on the images; shown in colour in the last row).
    spacing : tuple of 3 floats
        Voxel size (um), for the aspect of the XZ slices.
    """
    if not images:
        raise ValueError("images is empty; pass {snr: frame}")
    dz, _, dx = spacing
    rows = len(images) + 1
    fig, axes = plt.subplots(rows, 3, figsize=(10, 2.9 * rows), squeeze=False, constrained_layout=True)
    for r, (snr, frame) in enumerate(sorted(images.items(), reverse=True)):
        for c, (name, view, outline, kind) in enumerate(_views(np.asarray(frame), labels)):
            axes[r, c].imshow(_with_outline(view, outline), aspect=dz / dx if kind == "xz" else 1.0,
                              interpolation="nearest")
            axes[r, c].set_title(f"SNR {snr:g}: {name}", fontsize=8)
    for c, (name, _, view, kind) in enumerate(_views(labels, labels)):
        axes[-1, c].imshow(np.ma.masked_equal(view, 0), cmap="tab20", interpolation="nearest",
                           aspect=dz / dx if kind == "xz" else 1.0)
        axes[-1, c].set_title(f"ground truth: {name}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_histograms(images: dict, labels: np.ndarray, *, title: str | None = None):
    """Histograms of image values inside (cells) and outside (background) the ground truth, per SNR.

    Parameters
    ----------
    images : dict
        ``{snr: image}`` of any shape matching ``labels`` (frames or time-lapses).
    labels : ndarray of int
        Ground truth.
    """
    fig, axes = plt.subplots(1, len(images), figsize=(3.3 * len(images), 2.8), squeeze=False,
                             constrained_layout=True)
    cell = np.asarray(labels) > 0
    for ax, (snr, image) in zip(axes[0], sorted(images.items(), reverse=True)):
        image = np.asarray(image)
        width = max(1, round((int(image.max()) - int(image.min())) / _HISTOGRAM_BINS))
        bins = np.arange(int(image.min()), int(image.max()) + width + 1, width) - 0.5  # whole ADU per bin
        ax.hist(image[~cell], bins=bins, color="0.5", alpha=0.8, density=True, label="background")
        ax.hist(image[cell], bins=bins, color=_CONTOUR_COLOUR, alpha=0.7, density=True, label="cells")
        ax.set_yscale("log")
        ax.set_title(f"SNR {snr:g}", fontsize=9)
        ax.set_xlabel("intensity (ADU)", fontsize=8)
    axes[0, 0].set_ylabel("density", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_seg_curve(snrs, seg, *, dice=None, title: str | None = None):
    """Baseline segmentation score (CTC SEG, and optionally Otsu Dice) against SNR."""
    order = np.argsort(snrs)
    snrs = np.asarray(snrs, dtype=float)[order]
    fig, ax = plt.subplots(figsize=(4.2, 3.0), constrained_layout=True)
    ax.plot(snrs, np.asarray(seg, dtype=float)[order], "o-", label="SEG (Otsu + watershed)")
    if dice is not None:
        ax.plot(snrs, np.asarray(dice, dtype=float)[order], "s--", label="Dice (Otsu foreground)")
    ax.set_xscale("log")
    ax.set_xticks(snrs)
    ax.set_xticklabels([f"{s:g}" for s in snrs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0, 1)
    ax.set_xlabel("SNR (CTC definition)")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig
