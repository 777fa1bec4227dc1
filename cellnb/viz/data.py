"""Figures of mask and SDF data sets (notebook 01)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_projections", "plot_sdf_slice", "plot_before_after"]


def plot_projections(sequences, *, n_frames: int = 6, axis: int = 0, titles=None):
    """Maximum-intensity projections of masks over time (rows: sequences, columns: time).

    Parameters
    ----------
    sequences : list of ndarray (T, Z, Y, X) bool
    n_frames : int
        Frames shown per sequence, evenly spread over its duration.
    axis : int
        Frame axis projected along (0 = Z).
    titles : list of str, optional
        Row labels.
    """
    if not len(sequences):
        raise ValueError("sequences is empty; pass at least one mask sequence")
    n_cols = min(n_frames, min(len(s) for s in sequences))
    fig, axes = plt.subplots(
        len(sequences), n_cols, figsize=(1.6 * n_cols, 1.6 * len(sequences)), squeeze=False, constrained_layout=True
    )
    for r, masks in enumerate(sequences):
        picks = np.linspace(0, len(masks) - 1, n_cols).round().astype(int)
        for c, t in enumerate(picks):
            ax = axes[r, c]
            ax.imshow(np.asarray(masks[t]).max(axis=axis), cmap="gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {t}", fontsize=8)
        if titles is not None:
            axes[r, 0].set_ylabel(titles[r], fontsize=7)
    return fig


def plot_sdf_slice(sdf_frame: np.ndarray, *, axis: int = 0, index: int | None = None, title: str | None = None):
    """One slice of an SDF with its zero level set (the paper's SDF illustration).

    Parameters
    ----------
    sdf_frame : ndarray, shape (D0, D1, D2)
        Normalised SDF, negative inside.
    axis, index : int
        Slice ``index`` along ``axis`` (default: the slice with the most inside voxels).
    """
    sdf_frame = np.asarray(sdf_frame)
    if sdf_frame.ndim != 3:
        raise ValueError(f"sdf_frame must be one 3D frame, got shape {sdf_frame.shape}")
    if index is None:
        other = tuple(a for a in range(3) if a != axis)
        index = int(np.argmax((sdf_frame < 0).sum(axis=other)))
    plane = np.take(sdf_frame, index, axis=axis)
    lim = float(np.max(np.abs(plane))) or 1.0
    fig, ax = plt.subplots(figsize=(4.2, 3.6), constrained_layout=True)
    im = ax.imshow(plane, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.contour(plane, levels=[0.0], colors="k", linewidths=1.2)
    ax.set_title(title or f"SDF, slice {index} along axis {axis}", fontsize=9)
    ax.set_xlabel("black line: zero level set (the cell surface)", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, label="normalised SDF (negative inside)")
    return fig


def _views(ax_row, mask, spacing, label):
    """Projections of a mask along Z (Y-X) and along Y (Z-X), drawn at physical aspect."""
    dz, dy, dx = spacing
    nz, ny, nx = mask.shape
    views = [(mask.max(axis=0), (0, nx * dx, ny * dy, 0), "Y-X (along Z)"),
             (mask.max(axis=1), (0, nx * dx, nz * dz, 0), "Z-X (along Y)")]
    for ax, (image, extent, name) in zip(ax_row, views):
        ax.imshow(image, cmap="gray", interpolation="nearest", extent=extent)
        ax.set_title(f"{label}: {name}", fontsize=8)
        ax.set_xlabel("um", fontsize=7)
        ax.tick_params(labelsize=6)


def plot_before_after(labels_frame, label: int, spacing, prepared_frame, prepared_spacing, *, title=None):
    """One cell as segmented (its label in a raw frame, anisotropic voxels) and as prepared (the isotropic cube).

    Both are drawn in micrometres, so a cell whose proportions survived the
    preparation looks the same in both rows.

    Parameters
    ----------
    labels_frame : ndarray of int, shape (Z, Y, X)
    label : int
    spacing : tuple of 3 floats
        Voxel size of ``labels_frame`` (um).
    prepared_frame : ndarray of bool, shape (n, n, n)
    prepared_spacing : tuple of 3 floats
    """
    cell = np.asarray(labels_frame) == label
    if not cell.any():
        raise ValueError(f"label {label} is not in the frame")
    box = tuple(slice(max(i.min() - 2, 0), i.max() + 3) for i in np.nonzero(cell))
    fig, axes = plt.subplots(2, 2, figsize=(6.4, 6.0), constrained_layout=True)
    _views(axes[0], cell[box], spacing, f"as segmented ({spacing[0]:g} x {spacing[1]:g} x {spacing[2]:g} um)")
    _views(axes[1], np.asarray(prepared_frame, dtype=bool), prepared_spacing,
           f"as prepared ({prepared_spacing[0]:.3g} um cube)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
