"""Figures of generated shapes (notebooks 03 and 04).

* :func:`plot_sequence_grid`: 3D surfaces, rows = sequences, columns = time
  (the paper's "new time-evolving shapes" figures);
* :func:`plot_interpolation_strip`: surfaces along a line between two codes;
* :func:`plot_volume_curves`: volume over time at several temporal samplings;
* :func:`plot_super_resolution`: one frame on the training grid and on a finer one.

Inputs are SDF arrays (negative inside), e.g. from
:func:`cellnb.field.evaluate_codes` or read back from generated ``.h5`` files;
surfaces are :func:`cellnb.mesh.mesh_frame` meshes rendered off-screen by
:mod:`cellnb.render`.  Every function returns a matplotlib Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from cellnb.mesh import mesh_frame
from cellnb.render import render_grid
from cellnb.sequence import check_spacing
from cellnb.viz.images import image_figure

__all__ = [
    "render_sdf_grid",
    "plot_sequence_grid",
    "plot_interpolation_strip",
    "plot_volume_curves",
    "plot_super_resolution",
]


def _bounds(shape, spacing) -> tuple[float, ...]:
    """The physical box of a frame grid, so every render of it shares one camera."""
    extent = [(n - 1) * s for n, s in zip(shape, spacing)]
    return (0.0, extent[0], 0.0, extent[1], 0.0, extent[2])


def render_sdf_grid(frames, *, spacing=(1.0, 1.0, 1.0), window_size=(200, 200), camera: str = "iso") -> np.ndarray:
    """Render SDF frames arranged as ``frames[row][col]`` into one RGB image.

    Parameters
    ----------
    frames : array-like, shape (rows, cols, D0, D1, D2)
        All frames share one grid; every panel is framed on that grid's box,
        so sizes compare across panels.
    spacing : tuple of 3 floats
        Voxel size.
    window_size : (width, height)
        Pixels of each panel.

    Returns
    -------
    image : ndarray of uint8, shape (H, W, 3)
    """
    frames = np.asarray(frames)
    if frames.ndim != 5 or 0 in frames.shape[:2]:
        raise ValueError(f"frames must have shape (rows, cols, D0, D1, D2), got {frames.shape}")
    spacing = np.asarray(check_spacing(spacing))
    meshes = [[mesh_frame(f, spacing=spacing) for f in row] for row in frames]
    return render_grid(meshes, window_size=window_size, bounds=_bounds(frames.shape[2:], spacing), camera=camera)


def _pick(n_frames: int, columns: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_frames - 1, min(columns, n_frames)).round().astype(int))


def plot_sequence_grid(sequences, *, columns: int = 6, times=None, spacing=(1.0, 1.0, 1.0), names=None,
                       window_size=(200, 200), title: str | None = None):
    """Surfaces of several sequences over time: rows = sequences, columns = evenly spread frames.

    Parameters
    ----------
    sequences : list of ndarray, each (T, D0, D1, D2)
        SDF sequences of one shape (T, grid) each.
    columns : int
        Frames shown per sequence (all of them when T is smaller).
    times : array-like, shape (T,), optional
        Network time of each frame, for the column labels; default
        :func:`cellnb.sdf.time_coords` spacing, ``linspace(-1, 1, T)``.
    spacing : tuple of 3 floats
    names : list of str, optional
        Row labels.
    """
    sequences = [np.asarray(s) for s in sequences]
    if not sequences:
        raise ValueError("sequences is empty; pass at least one SDF sequence (T, D0, D1, D2)")
    if len({s.shape for s in sequences}) != 1 or sequences[0].ndim != 4:
        raise ValueError(f"sequences must all have one shape (T, D0, D1, D2), got {[s.shape for s in sequences]}")
    n_frames = sequences[0].shape[0]
    picks = _pick(n_frames, columns)
    times = np.linspace(-1.0, 1.0, n_frames) if times is None else np.asarray(times)
    image = render_sdf_grid(np.stack([s[picks] for s in sequences]), spacing=spacing, window_size=window_size)
    return image_figure(image, title=title, row_labels=names, col_labels=[f"t = {times[k]:+.2f}" for k in picks])


def plot_interpolation_strip(frames, *, alphas=None, times=None, spacing=(1.0, 1.0, 1.0), window_size=(200, 200),
                             title: str | None = None):
    """Surfaces along a line between two codes: columns = interpolation steps, rows = times.

    Parameters
    ----------
    frames : ndarray, shape (steps, D0, D1, D2) or (steps, T, D0, D1, D2)
        The decoded codes of :func:`cellnb.latent.interpolate_codes`
        (e.g. ``evaluate_codes(decoder, codes, shape=64, times=[0.0])``).
    alphas : array-like, shape (steps,), optional
        Position of each step between the two codes (default ``linspace(0, 1, steps)``).
    times : array-like, shape (T,), optional
        Network time of each row, for the labels.
    """
    frames = np.asarray(frames)
    if frames.ndim == 4:
        frames = frames[:, None]
    if frames.ndim != 5:
        raise ValueError(f"frames must have shape (steps, D0, D1, D2) or (steps, T, D0, D1, D2), got {frames.shape}")
    steps, n_t = frames.shape[:2]
    alphas = np.linspace(0.0, 1.0, steps) if alphas is None else np.asarray(alphas)
    image = render_sdf_grid(frames.transpose(1, 0, 2, 3, 4), spacing=spacing, window_size=window_size)
    rows = None if times is None else [f"t = {t:+.2f}" for t in np.asarray(times)]
    return image_figure(image, title=title, row_labels=rows, col_labels=[f"{a:.2f}" for a in alphas])


def plot_volume_curves(curves: dict, *, units: str = "voxels", title: str | None = None):
    """Volume over time at several temporal samplings of one sequence.

    Parameters
    ----------
    curves : dict
        ``{label: (times, volumes)}``, e.g. ``{5: (time_coords(5),
        volume_curve(sdf5, spacing=...)), 120: (...)}``; an int label
        reads "<label> frames" in the legend.  Drawn from the
        finest to the coarsest sampling, the finer as lines, the coarser as
        larger markers on top, so the finer curves can be seen to pass
        through the coarser points.
    units : str
        Volume units for the axis label (e.g. ``"µm³"``).
    """
    if not curves:
        raise ValueError("curves is empty; pass {label: (times, volumes)}")
    order = sorted(curves, key=lambda k: -len(curves[k][0]))
    fig, ax = plt.subplots(figsize=(6.0, 3.6), constrained_layout=True)
    for rank, label in enumerate(order):
        t, v = (np.asarray(a, dtype=float) for a in curves[label])
        if t.shape != v.shape or t.ndim != 1:
            raise ValueError(f"curve {label!r}: times and volumes must be 1D of one length, got {t.shape}, {v.shape}")
        name = f"{label} frames" if isinstance(label, (int, np.integer)) else str(label)
        ax.plot(t, v, "-o", lw=1.2, ms=3 + 3 * rank, mfc="none" if rank else None, zorder=rank, label=name)
    ax.set_xlabel("network time t")
    ax.set_ylabel(f"volume ({units})")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_super_resolution(coarse, fine, *, spacing_coarse=(1.0, 1.0, 1.0), spacing_fine=None, axis: int = 0,
                          window_size=(280, 280), labels=("training grid", "finer grid"), title: str | None = None):
    """The same frame on two grids: renders (top) and the central slice with its zero contour (bottom).

    Parameters
    ----------
    coarse, fine : ndarray, shape (D0, D1, D2) each
        One frame decoded on the training grid and on a finer grid of the
        same physical box.
    spacing_coarse : tuple of 3 floats
    spacing_fine : tuple of 3 floats, optional
        Default: ``spacing_coarse`` scaled by the ratio of the grid sizes,
        ``(n_coarse - 1) / (n_fine - 1)`` per axis.
    axis : int
        Axis normal to the slice.
    """
    coarse, fine = np.asarray(coarse), np.asarray(fine)
    if coarse.ndim != 3 or fine.ndim != 3:
        raise ValueError(f"coarse and fine must be single frames (D0, D1, D2), got {coarse.shape} and {fine.shape}")
    spacing_coarse = np.asarray(check_spacing(spacing_coarse, name="spacing_coarse"))
    if spacing_fine is None:
        spacing_fine = spacing_coarse * (np.array(coarse.shape) - 1) / (np.array(fine.shape) - 1)
    spacing_fine = np.asarray(check_spacing(spacing_fine, name="spacing_fine"))
    fig, axes = plt.subplots(2, 2, figsize=(7.0, 7.0), constrained_layout=True)
    for col, (frame, spacing, label) in enumerate(zip((coarse, fine), (spacing_coarse, spacing_fine), labels)):
        image = render_sdf_grid(frame[None, None], spacing=spacing, window_size=window_size)
        axes[0, col].imshow(image)
        axes[0, col].set_title(f"{label} {'x'.join(map(str, frame.shape))}", fontsize=9)
        cut = np.take(frame, frame.shape[axis] // 2, axis=axis)
        other = [s for a, s in enumerate(spacing) if a != axis]
        extent = (0, (cut.shape[1] - 1) * other[1], (cut.shape[0] - 1) * other[0], 0)
        limit = float(np.abs(cut).max()) or 1.0
        axes[1, col].imshow(cut, cmap="RdBu", vmin=-limit, vmax=limit, extent=extent, interpolation="nearest")
        axes[1, col].contour(np.linspace(0, extent[1], cut.shape[1]), np.linspace(0, extent[2], cut.shape[0]), cut,
                             levels=[0.0], colors="k", linewidths=0.8)
        axes[1, col].set_title(f"central slice (axis {axis}), zero level", fontsize=9)
    for ax in axes[0]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
