"""The gap between two daughters, in the data and in the model's reconstruction.

Two daughters of a division touch; in a label volume their membranes are
background, so at the training grid a gap of one or two voxels keeps them
apart (``NOTES.md``).  A decoder that smooths over that gap bridges the
daughters and loses the division.  :func:`division_section` measures the gap
where it is narrowest: on the line through the two daughters' centroids, in
the first frame with two daughters, it samples the true and the
reconstructed signed distance (a profile whose positive stretch between the
daughters is the gap) and the plane through that line (a section showing
both daughters).  :func:`division_gaps` does it for the division sequences of
a trained run (notebook 02's figure ``<name>_division_gap.png``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from cellnb.checkpoint import load_trained
from cellnb.field import evaluate_dense
from cellnb.io import read_sdf_h5
from cellnb.sdf import component_counts, label_components, time_coords
from cellnb.workspace import DataDir, RunDir

__all__ = ["division_section", "division_gaps"]

_SAMPLES_PER_VOXEL = 8  # profile resolution along the line


def _positive_run(profile: np.ndarray, step: float, middle: int) -> float:
    """Length (in voxels) of the stretch around index ``middle`` where ``profile > 0``."""
    if profile[middle] <= 0:
        return 0.0
    lo, hi = middle, middle
    while lo > 0 and profile[lo - 1] > 0:
        lo -= 1
    while hi < len(profile) - 1 and profile[hi + 1] > 0:
        hi += 1
    return (hi - lo + 1) * step


def division_section(true_sdf: np.ndarray, rec_sdf: np.ndarray, *, half_width: int | None = None) -> dict:
    """The gap between two daughters in one frame: a profile and a section, true and reconstructed.

    Parameters
    ----------
    true_sdf, rec_sdf : ndarray, shape (Z, Y, X)
        One frame's signed distance (negative inside) of the data and of the
        model; ``true_sdf < 0`` must hold exactly two components.
    half_width : int, optional
        Half the side of the section, in voxels; default half the grid side.

    Returns
    -------
    dict
        ``position`` (voxels along the line, 0 at the midpoint between the
        two daughters' facing surfaces), ``profile_true``/``profile_rec`` (the
        SDFs there), ``gap_true``/``gap_rec`` (length in voxels of the
        positive stretch at that midpoint: the gap, 0 when bridged),
        ``section_true``/``section_rec`` (the SDFs on the plane through the
        centroids' line, ``(2 h + 1, 2 h + 1)``, the line along the first
        axis), and ``centroids`` (2, 3) in voxel indices.

    Raises
    ------
    ValueError
        Frames of different shapes, or a true frame without exactly two components.
    """
    true_sdf, rec_sdf = np.asarray(true_sdf, dtype=np.float32), np.asarray(rec_sdf, dtype=np.float32)
    if true_sdf.ndim != 3 or true_sdf.shape != rec_sdf.shape:
        raise ValueError(f"true_sdf and rec_sdf must be 3D frames of one shape, got {true_sdf.shape} and "
                         f"{rec_sdf.shape}")
    labels, n = label_components(true_sdf < 0)
    if n != 2:
        raise ValueError(f"true_sdf holds {n} components; pass a frame with exactly two daughters")
    centroids = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, [1, 2]))
    axis = centroids[1] - centroids[0]
    length = float(np.linalg.norm(axis))
    axis /= length
    other = np.eye(3)[np.argmin(np.abs(axis))]
    across = np.cross(axis, other)
    across /= np.linalg.norm(across)
    step = 1.0 / _SAMPLES_PER_VOXEL
    # Along the line: from beyond one centroid to beyond the other; the gap's middle is where the true SDF peaks
    # between the centroids.
    reach = length / 2 + max(4.0, length / 2)
    t = np.arange(-reach, reach + step / 2, step)
    mid = centroids.mean(axis=0)
    line = mid[:, None] + axis[:, None] * t[None]
    profile_true = ndimage.map_coordinates(true_sdf, line, order=1, mode="nearest")
    profile_rec = ndimage.map_coordinates(rec_sdf, line, order=1, mode="nearest")
    inner = np.abs(t) <= length / 2
    peak = int(np.flatnonzero(inner)[np.argmax(profile_true[inner])])
    h = half_width if half_width is not None else true_sdf.shape[0] // 2
    u = np.arange(-h, h + 1, dtype=float)
    centre = mid + axis * t[peak]
    plane = centre[:, None, None] + axis[:, None, None] * u[None, :, None] + across[:, None, None] * u[None, None, :]
    return {
        "position": t - t[peak],
        "profile_true": profile_true,
        "profile_rec": profile_rec,
        "gap_true": _positive_run(profile_true, step, peak),
        "gap_rec": _positive_run(profile_rec, step, peak),
        "section_true": ndimage.map_coordinates(true_sdf, plane.reshape(3, -1), order=1, mode="nearest").reshape(
            len(u), len(u)),
        "section_rec": ndimage.map_coordinates(rec_sdf, plane.reshape(3, -1), order=1, mode="nearest").reshape(
            len(u), len(u)),
        "centroids": centroids,
    }


def division_gaps(run, *, n: int = 4, device="cpu") -> list[dict]:
    """:func:`division_section` for the first ``n`` division sequences of a trained run.

    Each sequence is taken at its first frame with two true components (the
    narrowest gap); its reconstruction is decoded densely on the training grid.

    Returns
    -------
    list of dict
        Per sequence the :func:`division_section` entries plus ``name``,
        ``frame`` and ``components_rec`` (the reconstruction's component
        count in that frame).  Empty when no training sequence divides.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    decoder, codes, names, _ = load_trained(run, device=device)
    out = []
    for i, name in enumerate(names):
        if len(out) == n:
            break
        sdf, _ = read_sdf_h5(DataDir(run.training_data()).sequence_path(name))
        counts = component_counts(sdf < 0)
        frames = np.flatnonzero(counts == 2)
        if counts[0] != 1 or not len(frames):
            continue
        frame = int(frames[0])
        times = time_coords(len(sdf))[frame : frame + 1]
        with torch.no_grad():
            rec = evaluate_dense(decoder, codes[i], shape=sdf.shape[1:], times=times, device=device)[0]
        out.append({"name": name, "frame": frame, "components_rec": int(component_counts(rec[None] < 0)[0]),
                    **division_section(sdf[frame], rec)})
    return out
