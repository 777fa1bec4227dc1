"""Masks <-> signed distance functions, grids and the coordinate conventions.

Conventions (stated here once, used everywhere)
-----------------------------------------------
* A frame is a C-order array ``(Z, Y, X)``; a sequence is ``(T, Z, Y, X)``.
  In general ``(D0, D1, D2)`` with ``D0`` the first array axis.
* Network coordinates are ``(c0, c1, c2, t)``, each in [-1, 1]: ``c_i`` runs
  along array axis ``i`` of the frame as ``linspace(-1, 1, D_i)``, and frame
  ``k`` of ``T`` sits at ``t_k = linspace(-1, 1, T)[k]``.  This is the mapping
  of the official implementation (Wiesner et al. 2022), so its files and
  checkpoints stay interchangeable with ours.
* SDF sign: negative inside, zero on the surface, positive outside.  A voxel
  belongs to the mask iff its SDF is negative.
* Official preprocessing: Euclidean distance transform inside and outside,
  outside distance clamped (32 voxels at 256^3, scaled with the grid size),
  then the whole sequence divided by its maximum absolute value, so values lie
  in [-1, 1].  The divisor (``scale``, in voxels) is kept with the data so
  distances can be recovered at physical scale: ``sdf * scale * spacing``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cellnb.sequence import MaskSequence

__all__ = [
    "CONNECTIVITY_26",
    "OFFICIAL_CLAMP_VOXELS",
    "OFFICIAL_GRID_SIZE",
    "default_clamp",
    "grid_axes",
    "grid_coords",
    "time_coords",
    "signed_distance",
    "label_components",
    "component_counts",
    "largest_component",
    "rotate_sdf",
    "sequence_to_sdf",
    "resample_time",
    "sdf_to_mask",
    "dice",
    "iou",
    "principal_axes",
    "canonical_rotation",
    "resample_to_cube",
    "crop_to_cube",
]

OFFICIAL_CLAMP_VOXELS = 32.0  # outside clamp of the official preprocessing at 256^3
OFFICIAL_GRID_SIZE = 256
# Structuring element of 26-connectivity (voxels touching by a face, an edge or a corner are
# neighbours): what every component count, label and dilation in cellnb uses.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def default_clamp(size: int) -> float:
    """Outside clamp in voxels for a cube of side ``size`` (32 at 256, scaled linearly)."""
    return OFFICIAL_CLAMP_VOXELS * size / OFFICIAL_GRID_SIZE


def _shape3(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in np.broadcast_to(np.asarray(shape), (3,)))
    if min(shape) < 2:
        raise ValueError(f"grid shape needs at least 2 samples per axis, got {shape}")
    return shape


def grid_axes(shape) -> list[np.ndarray]:
    """Coordinates of each axis of a frame grid: ``linspace(-1, 1, D_i)``.

    Parameters
    ----------
    shape : int or tuple of 3 ints
        Frame shape ``(D0, D1, D2)``; an int means a cube.
    """
    return [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in _shape3(shape)]


def grid_coords(shape) -> np.ndarray:
    """All voxel centres of a frame grid as network coordinates.

    Returns
    -------
    coords : ndarray of float32, shape (D0 * D1 * D2, 3)
        Rows in C order of the frame, columns ``(c0, c1, c2)``.
    """
    axes = np.meshgrid(*grid_axes(shape), indexing="ij")
    return np.stack([a.ravel() for a in axes], axis=1)


def time_coords(n_frames: int) -> np.ndarray:
    """Network time of each of ``n_frames`` frames: ``linspace(-1, 1, T)`` (0 for one frame)."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    if n_frames == 1:
        return np.zeros(1, dtype=np.float32)
    return np.linspace(-1.0, 1.0, n_frames, dtype=np.float32)


def signed_distance(mask: np.ndarray, *, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Signed Euclidean distance of a binary frame, in the units of ``spacing``.

    The surface is put half a voxel from the voxel centres on either side, so
    inside voxels have values <= -spacing/2, outside voxels >= +spacing/2, and
    ``signed_distance(m) < 0`` gives back ``m`` exactly.

    Parameters
    ----------
    mask : ndarray of bool, shape (D0, D1, D2)
    spacing : tuple of 3 floats
        Voxel size along each axis.

    Returns
    -------
    sdf : ndarray of float32, shape (D0, D1, D2)
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be one 3D frame (D0, D1, D2), got shape {mask.shape}")
    spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    if not mask.any() or mask.all():
        raise ValueError(
            "mask has no surface (it is all background or all foreground); "
            "an SDF needs both inside and outside voxels"
        )
    half = 0.5 * float(np.min(spacing))
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    return np.where(mask, -(inside - half), outside - half).astype(np.float32)


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The 26-connected components of a binary frame: labels 1..n in scan order, and n.

    The one labelling rule of cellnb: component counts, exported labels, the
    topology of divisions and protrusions all use it.

    Returns
    -------
    labels : ndarray of int32, shape of ``mask``
    n : int
    """
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=CONNECTIVITY_26)
    return labels, int(n)


def component_counts(masks) -> np.ndarray:
    """Number of 26-connected foreground components of each frame.

    Parameters
    ----------
    masks : ndarray, shape (T, Z, Y, X) or (Z, Y, X)
        Foreground is any non-zero voxel.

    Returns
    -------
    counts : ndarray of int, shape (T,)
        One count per frame (shape (1,) for a single frame).
    """
    masks = np.asarray(masks)
    if masks.ndim == 3:
        masks = masks[None]
    if masks.ndim != 4:
        raise ValueError(f"masks must have shape (T, Z, Y, X), got {masks.shape}")
    return np.array([label_components(frame)[1] for frame in masks], dtype=int)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 26-connected component of a binary frame."""
    labels, n = label_components(mask)
    if n <= 1:
        return np.asarray(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))


def sequence_to_sdf(
    masks: np.ndarray, *, clamp: float | None = None, keep_largest: bool = False
) -> tuple[np.ndarray, float]:
    """Official preprocessing of a mask sequence into a normalised SDF.

    Parameters
    ----------
    masks : ndarray of bool, shape (T, D0, D1, D2)
        Isotropic frames (resample with :func:`crop_to_cube` first).
    clamp : float, optional
        Outside distance clamp in voxels; default :func:`default_clamp` of the
        largest grid side.
    keep_largest : bool
        Keep only the largest connected component of each frame (the official
        option; leave off for dividing cells, whose daughters are two components).

    Returns
    -------
    sdf : ndarray of float32, shape (T, D0, D1, D2)
        Values in [-1, 1], negative inside.
    scale : float
        Voxels per unit of ``sdf``: the distance in voxels is ``sdf * scale``.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 4:
        raise ValueError(f"masks must have shape (T, D0, D1, D2), got {masks.shape}")
    if clamp is None:
        clamp = default_clamp(max(masks.shape[1:]))
    if clamp <= 0:
        raise ValueError(f"clamp must be a positive number of voxels, got {clamp}")
    frames = []
    for t, frame in enumerate(masks):
        if keep_largest:
            frame = largest_component(frame)
        try:
            frames.append(np.minimum(signed_distance(frame), clamp))
        except ValueError as err:
            raise ValueError(f"frame {t}: {err}") from None
    sdf = np.stack(frames)
    scale = float(np.max(np.abs(sdf)))
    return (sdf / scale).astype(np.float32), scale


def resample_time(masks: np.ndarray, frames: int, *, times=None, span=None, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A mask sequence resampled to ``frames`` frames evenly spaced over a span of time.

    Each new frame interpolates linearly, at its time, the signed distances of
    the two original frames around it (:func:`signed_distance`), so a
    surface moves smoothly between frames instead of jumping as nearest-frame
    sampling would.  Original frames that fall on a new frame's time are kept
    exactly; before the first or after the last original frame, the nearest
    one is kept.

    Parameters
    ----------
    masks : ndarray of bool, shape (T, D0, D1, D2)
        Every frame needs inside and outside voxels.
    frames : int
        New frame count (at least 1; with 1, the middle of the span).
    times : sequence of T floats, optional
        Time of each original frame, increasing (e.g. frame numbers of a
        track with gaps); default ``0 .. T - 1``.
    span : (float, float), optional
        First and last time of the new frames; default the first and last of ``times``.
    spacing : tuple of 3 floats
        Voxel size (for anisotropic voxels the distances are physical).

    Returns
    -------
    masks : ndarray of bool, shape (frames, D0, D1, D2)
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 4:
        raise ValueError(f"masks must have shape (T, D0, D1, D2), got {masks.shape}")
    if int(frames) != frames or frames < 1:
        raise ValueError(f"frames must be a positive number of frames, got {frames}")
    n = masks.shape[0]
    times = np.arange(n, dtype=float) if times is None else np.asarray(times, dtype=float)
    if times.shape != (n,) or (np.diff(times) <= 0).any():
        raise ValueError(f"times must give {n} increasing times, one per frame, got {times.tolist()}")
    first, last = (times[0], times[-1]) if span is None else (float(span[0]), float(span[1]))
    targets = np.linspace(first, last, int(frames)) if frames > 1 else np.array([(first + last) / 2.0])
    positions = np.interp(targets, times, np.arange(n, dtype=float))
    distances: dict[int, np.ndarray] = {}

    def distance(i: int) -> np.ndarray:
        if i not in distances:
            try:
                distances[i] = signed_distance(masks[i], spacing=spacing)
            except ValueError as err:
                raise ValueError(f"frame {i}: {err}") from None
        return distances[i]

    out = np.empty((len(positions), *masks.shape[1:]), dtype=bool)
    for k, p in enumerate(positions):
        i, w = int(np.floor(p)), float(p - np.floor(p))
        if w < 1e-9:
            out[k] = masks[i]
        elif w > 1 - 1e-9:
            out[k] = masks[i + 1]
        else:
            out[k] = (1.0 - w) * distance(i) + w * distance(i + 1) < 0
    return out


def sdf_to_mask(sdf: np.ndarray, *, level: float = 0.0) -> np.ndarray:
    """Foreground of an SDF of any shape: ``sdf < level``."""
    return np.asarray(sdf) < level


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def dice(a, b) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|) of two masks of one shape (1 when both are empty)."""
    a, b = _pair(a, b)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def iou(a, b) -> float:
    """Intersection over union |A∩B| / |A∪B| of two masks of one shape (1 when both are empty)."""
    a, b = _pair(a, b)
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum()) / union


def principal_axes(mask, *, spacing=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid and principal axes of a frame's voxels, in physical units.

    Parameters
    ----------
    mask : ndarray of bool, shape (Z, Y, X)
        Non-empty frame.
    spacing : tuple of 3 floats
        Voxel size (dz, dy, dx).

    Returns
    -------
    centroid : ndarray, shape (3,)
        Mean voxel centre, ``index * spacing``.
    lengths : ndarray, shape (3,)
        Full axis lengths ``2 sqrt(5 l)`` from the covariance eigenvalues
        ``l``, descending; exact for a solid ellipsoid.
    axes : ndarray, shape (3, 3)
        Unit axis directions as columns, in the order of ``lengths``.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be one 3D frame (Z, Y, X), got shape {mask.shape}; index a sequence by frame")
    spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    points = np.argwhere(mask) * spacing
    if len(points) == 0:
        raise ValueError("mask is empty; principal axes need at least one foreground voxel")
    centroid = points.mean(axis=0)
    cov = np.cov(points - centroid, rowvar=False, bias=True)
    eigval, eigvec = np.linalg.eigh(np.atleast_2d(cov))
    order = np.argsort(eigval)[::-1]
    lengths = 2.0 * np.sqrt(5.0 * np.clip(eigval[order], 0.0, None))
    return centroid, lengths, eigvec[:, order]


def canonical_rotation(mask, *, spacing=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """The pose that puts a shape's principal axes along the array axes: ``(centroid, R)``.

    ``R``'s columns are the principal axes (longest first), each pointing to
    the side where the shape's third moment along it is positive, so a shape
    and any rotated copy get the same canonical pose; ``det R = +1`` (the
    shortest axis gives way).  A point ``u`` of the canonical frame sits at
    ``centroid + R @ u`` in the physical frame of ``mask``.
    """
    centroid, _, axes = principal_axes(mask, spacing=spacing)
    points = np.argwhere(mask) * np.broadcast_to(np.asarray(spacing, dtype=float), (3,)) - centroid
    skew = np.mean((points @ axes) ** 3, axis=0)
    axes = axes * np.where(skew < 0, -1.0, 1.0)
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1.0
    return centroid, axes


_SLAB = 16  # planes of a rotated cube sampled at once: bounds the coordinate arrays at large sizes


def resample_to_cube(
    mask: np.ndarray,
    *,
    center,
    side: float,
    size: int,
    spacing=(1.0, 1.0, 1.0),
    rotation=None,
) -> np.ndarray:
    """Resample a region of a binary frame into an isotropic cube.

    The mask's signed distance is interpolated linearly at the cube's voxel
    centres and thresholded at zero, which resamples a surface more faithfully
    than interpolating the mask itself.

    Parameters
    ----------
    mask : ndarray of bool, shape (D0, D1, D2)
    center : sequence of 3 floats
        Cube centre in voxel index coordinates of ``mask``.
    side : float
        Cube side in physical units (same as ``spacing``).
    size : int
        Output grid side in voxels.
    spacing : tuple of 3 floats
        Voxel size of ``mask``.
    rotation : ndarray, shape (3, 3), optional
        The cube's axes as columns, in the physical frame of ``mask``
        (:func:`canonical_rotation`); default the array axes.

    Returns
    -------
    cube : ndarray of bool, shape (size, size, size)
        Its voxel size is ``side / size`` along every axis.
    """
    if size < 2:
        raise ValueError(f"size must be at least 2 voxels, got {size}")
    spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros((size,) * 3, dtype=bool)
    step = side / size
    offsets = (np.arange(size) - (size - 1) / 2.0) * step
    center = np.asarray(center, dtype=float)
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
    # Only the part of the mask that the cube covers (plus a margin) needs a distance map.
    corners = np.array(np.meshgrid(*[offsets[[0, -1]]] * 3, indexing="ij")).reshape(3, -1).T
    reach = center + (corners @ rot.T) / spacing
    lo = [max(int(np.floor(v)) - 2, 0) for v in reach.min(axis=0)]
    hi = [min(int(np.ceil(v)) + 3, n) for v, n in zip(reach.max(axis=0), mask.shape)]
    if any(h <= l for l, h in zip(lo, hi)):
        return np.zeros((size,) * 3, dtype=bool)
    sub = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    if sub.all():
        return np.ones((size,) * 3, dtype=bool)
    if not sub.any():
        return np.zeros((size,) * 3, dtype=bool)
    dist = signed_distance(np.pad(sub, 1, constant_values=False), spacing=spacing)
    origin = center - np.asarray(lo) + 1
    if rotation is None:
        grid = np.meshgrid(*[origin[i] + offsets / spacing[i] for i in range(3)], indexing="ij")
        return ndimage.map_coordinates(dist, grid, order=1, mode="nearest") < 0
    out = np.empty((size,) * 3, dtype=bool)
    rest = np.array(np.meshgrid(offsets, offsets, indexing="ij")).reshape(2, -1)
    for start in range(0, size, _SLAB):
        planes = offsets[start : start + _SLAB]
        u = np.concatenate([np.repeat(planes, rest.shape[1])[None], np.tile(rest, len(planes))])  # (3, n) canonical
        coords = origin[:, None] + (rot @ u) / spacing[:, None]
        values = ndimage.map_coordinates(dist, coords, order=1, mode="nearest")
        out[start : start + len(planes)] = (values < 0).reshape(len(planes), size, size)
    return out


def rotate_sdf(sdf: np.ndarray, rotation) -> np.ndarray:
    """A signed distance field turned about its grid's centre.

    A rotation keeps distances, so the result is again a signed distance
    (interpolated linearly; beyond the grid, the nearest border value).

    Parameters
    ----------
    sdf : ndarray, shape (Z, Y, X) or (T, Z, Y, X)
        On an isotropic grid (one frame or a sequence, each frame turned alike).
    rotation : ndarray, shape (3, 3)
        Rows: the axes of ``sdf``'s grid in the output's frame, as
        :func:`crop_to_cube` records them in ``meta["rotation"]`` (an
        orthonormal matrix).  A shape aligned to its canonical pose comes back
        in the pose of the cell the rotation was recorded from.

    Returns
    -------
    ndarray, float32, the shape of ``sdf``
    """
    rot = np.asarray(rotation, dtype=float)
    if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-5):
        raise ValueError(f"rotation must be an orthonormal 3x3 matrix, got {np.round(rot, 3).tolist()}")
    sdf = np.asarray(sdf, dtype=np.float32)
    if sdf.ndim == 4:
        return np.stack([rotate_sdf(frame, rot) for frame in sdf])
    if sdf.ndim != 3 or len(set(sdf.shape)) != 1:
        raise ValueError(f"sdf must be one cubic frame (N, N, N) or a sequence (T, N, N, N), got shape {sdf.shape}")
    center = (np.asarray(sdf.shape, dtype=float) - 1) / 2.0
    # Output voxel p holds the value at canonical coordinates u = rot @ (p - c) + c.
    return ndimage.affine_transform(sdf, rot, offset=center - rot @ center, order=1, mode="nearest")


def crop_to_cube(seq: MaskSequence, size: int, *, margin: float = 0.15, keep_largest: bool = False,
                 align: bool = False) -> MaskSequence:
    """Centre a sequence in an isotropic cube of ``size`` voxels (official crop/centre step).

    One cube is used for all frames: it is centred on the centre of the bounding
    box of the union of all frames, and its side is that box's largest physical
    extent enlarged by ``margin`` on each side, so the cell never touches the border.

    Parameters
    ----------
    seq : MaskSequence
    size : int
        Cube side in voxels.
    margin : float
        Share of the extent added on each side.
    keep_largest : bool
        Keep the largest component of each frame.
    align : bool
        Turn the cube to the canonical pose of the union of all frames
        (:func:`canonical_rotation`: principal axes along the array axes,
        longest first), so that shapes differing only by orientation come out
        alike; the rotation is recorded in ``meta["rotation"]`` (rows: the
        cube's axes in the source's physical frame).

    Returns
    -------
    MaskSequence
        Frames of shape (size, size, size), spacing ``side / size`` on every axis.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 voxels, got {size}")
    union = seq.masks.any(axis=0)
    if not union.any():
        raise ValueError(f"sequence {seq.name!r} is empty in every frame; nothing to crop")
    spacing = np.asarray(seq.spacing)
    rotation = canonical_rotation(union, spacing=spacing)[1] if align else np.eye(3)
    points = np.argwhere(union) * spacing  # physical
    half = 0.5 * spacing @ np.abs(rotation)  # a voxel's half extent along each cube axis
    along = points @ rotation
    lo, hi = along.min(axis=0) - half, along.max(axis=0) + half
    center = (rotation @ ((lo + hi) / 2.0)) / spacing  # back to voxel indices of the source
    side = float(np.max(hi - lo)) * (1.0 + 2.0 * margin)
    frames = []
    for frame in seq.masks:
        if keep_largest and frame.any():
            frame = largest_component(frame)
        frames.append(resample_to_cube(frame, center=center, side=side, size=size, spacing=spacing,
                                       rotation=rotation if align else None))
    step = side / size
    meta = dict(seq.meta)
    if align:
        meta["rotation"] = rotation.T.tolist()
    return MaskSequence(np.stack(frames), (step, step, step), seq.name, meta)
