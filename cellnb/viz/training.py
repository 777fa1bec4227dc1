"""Figures of training (notebook 02): loss curves and ground truth vs reconstruction."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_loss", "plot_reconstruction", "plot_division_gap"]


def _rows(log) -> list[dict]:
    if isinstance(log, (str, Path)):
        with open(log, newline="") as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if hasattr(log, "to_dict"):  # pandas DataFrame
        return log.to_dict("records")
    return list(log)


def plot_loss(log):
    """Loss curves of a training run.

    Parameters
    ----------
    log : list of dict, DataFrame or path-like
        Per-epoch rows with ``epoch``, ``loss`` (mean L1 SDF error),
        ``code_reg`` (weighted code-norm term) and ``lr_decoder``/``lr_codes``:
        ``load_trained(run)[3]["log"]`` or ``run/train_log.csv``.

    Returns
    -------
    matplotlib.figure.Figure
        Left: losses (log scale) per epoch; right: learning rates.
    """
    rows = _rows(log)
    if not rows:
        raise ValueError("log is empty; train at least one epoch first")
    epoch = np.array([r["epoch"] for r in rows])
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    ax.plot(epoch, [r["loss"] for r in rows], label="SDF L1 loss")
    reg = np.array([r.get("code_reg", 0.0) for r in rows])
    if np.any(reg > 0):
        ax.plot(epoch, reg, label="code regularisation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (normalised SDF units)")
    ax.legend(fontsize=8)
    for key, label in (("lr_decoder", "decoder"), ("lr_codes", "codes")):
        if key in rows[0]:
            ax_lr.plot(epoch, [r[key] for r in rows], label=label)
    ax_lr.set_yscale("log")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    ax_lr.legend(fontsize=8)
    return fig


def plot_reconstruction(gt_masks, rec_masks, frames=4, *, names=None, axis: int = 0, max_sequences: int = 4):
    """Maximum projections of true and reconstructed masks, side by side.

    Parameters
    ----------
    gt_masks, rec_masks : list of ndarray (T, Z, Y, X) bool, or dict name -> array
        Ground truth and reconstruction of the same sequences (same shapes);
        e.g. ``reconstruct(run)["masks"]`` for the reconstructions.
    frames : int or sequence of int
        How many frames, evenly spread over time, or which frame indices.
    names : list of str, optional
        Row labels (default the dict keys, else ``sequence i``).
    axis : int
        Frame axis projected along (0 = Z).
    max_sequences : int
        Show at most this many sequences (the first ones).

    Returns
    -------
    matplotlib.figure.Figure
        One row per sequence; for each frame a pair of columns "true" | "rec.".
    """
    if isinstance(gt_masks, dict):
        names = list(gt_masks) if names is None else list(names)
        gt_masks = [gt_masks[n] for n in names]
    if isinstance(rec_masks, dict):
        names = list(rec_masks) if names is None else list(names)
        missing = [n for n in names if n not in rec_masks]
        if missing:
            raise ValueError(f"rec_masks has no sequences {missing}; reconstruct them first")
        rec_masks = [rec_masks[n] for n in names]
    if not len(gt_masks) or len(gt_masks) != len(rec_masks):
        raise ValueError(
            f"gt_masks and rec_masks must hold the same, non-zero number of sequences, "
            f"got {len(gt_masks)} and {len(rec_masks)}"
        )
    n_seq = min(len(gt_masks), max_sequences)
    for i in range(n_seq):
        if np.shape(gt_masks[i]) != np.shape(rec_masks[i]) or np.ndim(gt_masks[i]) != 4:
            raise ValueError(
                f"sequence {i}: ground truth {np.shape(gt_masks[i])} and reconstruction {np.shape(rec_masks[i])} "
                "must both be (T, Z, Y, X) of one shape; reconstruct at the training size"
            )
    n_t = len(gt_masks[0])
    picks = np.linspace(0, n_t - 1, min(frames, n_t)).round().astype(int) if np.isscalar(frames) else np.asarray(frames)
    if picks.min() < 0 or picks.max() >= n_t:
        raise ValueError(f"frames must lie in [0, {n_t}), got {picks.tolist()}")
    fig, axes = plt.subplots(n_seq, 2 * len(picks), figsize=(1.5 * 2 * len(picks), 1.6 * n_seq),
                             squeeze=False, constrained_layout=True)
    for r in range(n_seq):
        for c, t in enumerate(picks):
            for k, (masks, label) in enumerate(((gt_masks[r], "true"), (rec_masks[r], "rec."))):
                ax = axes[r, 2 * c + k]
                ax.imshow(np.asarray(masks[t]).max(axis=axis), cmap="gray", interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"t={t} {label}", fontsize=8)
        label = names[r] if names is not None else f"sequence {r}"
        axes[r, 0].set_ylabel(label, fontsize=7)
    return fig


def plot_division_gap(gaps):
    """The gap between two daughters, true against reconstructed (:func:`cellnb.division.division_gaps`).

    Parameters
    ----------
    gaps : list of dict
        :func:`cellnb.division.division_gaps` rows.

    Returns
    -------
    matplotlib.figure.Figure
        One row per sequence.  Left: the section through both daughters'
        centroids (true cell grey, reconstructed surface orange); right: the
        signed distance along the line through the centroids (true and
        reconstructed; above zero between the daughters is the gap, whose
        width in voxels the title gives).
    """
    if not gaps:
        raise ValueError("gaps is empty: no training sequence divides (one component, then two)")
    fig, axes = plt.subplots(len(gaps), 2, figsize=(8, 2.6 * len(gaps)), squeeze=False, constrained_layout=True,
                             gridspec_kw={"width_ratios": [1, 1.6]})
    for row, g in zip(axes, gaps):
        section, profile = row
        h = (g["section_true"].shape[0] - 1) / 2
        extent = (-h, h, h, -h)
        section.imshow(g["section_true"].T < 0, cmap="Greys", vmin=0, vmax=1.6, extent=extent)
        section.contour(np.linspace(-h, h, g["section_rec"].shape[0]), np.linspace(-h, h, g["section_rec"].shape[1]),
                        g["section_rec"].T, levels=[0.0], colors="tab:orange", linewidths=1.2)
        section.axhline(0, color="tab:blue", lw=0.6, ls=":")
        section.set_title(f"{g['name']}, frame {g['frame']}", fontsize=8)
        section.set_xticks([])
        section.set_yticks([])
        profile.plot(g["position"], g["profile_true"], color="0.3", label="data")
        profile.plot(g["position"], g["profile_rec"], color="tab:orange", label="reconstruction")
        profile.axhline(0, color="k", lw=0.6)
        profile.fill_between(g["position"], 0, g["profile_true"], where=g["profile_true"] > 0, color="0.85")
        profile.set_xlim(-6, 6)
        bridged = " (bridged)" if g["components_rec"] < 2 else ""
        profile.set_title(f"gap {g['gap_true']:.1f} voxels in the data, {g['gap_rec']:.1f} reconstructed{bridged}",
                          fontsize=8)
        profile.set_xlabel("voxels along the line through the daughters' centroids", fontsize=8)
        profile.set_ylabel("SDF", fontsize=8)
        profile.legend(fontsize=7, loc="lower right")
    return fig
