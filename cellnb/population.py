"""Several cell sequences in one field of view: placed without overlap, drifting, with one lineage.

A :class:`Population` is a label time-lapse ``(T, Z, Y, X)`` built frame by
frame from the cells' own crops (only those are held in memory) and a tracks
table in the Cell Tracking Challenge sense (:mod:`cellnb.ctc`): each
sequence's 26-connected components are linked over time by overlap, so a
dividing cell's mother ends the frame before her two daughters begin, with
the mother as their parent.  Cells are kept ``gap`` voxels apart at all
times: the footprint of a cell is the union of its masks over its life,
shifted by its drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from cellnb import ctc
from cellnb.sequence import MaskSequence, check_spacing

__all__ = ["Population", "place_cells"]

_PACKING = 2.0  # an automatic field offers this much area (Y x X) per unit of the cells' footprints
_FIELD_GROWTH = 1.25  # an automatic field that holds no placement grows laterally by this factor ...
_FIELD_GROWTH_ROUNDS = 8  # ... at most this many times


@dataclass
class _Placed:
    labels: np.ndarray  # (T, z, y, x) uint16, global track labels, crop of one sequence
    corners: np.ndarray  # (T, 3) int, field index of the crop's corner in each frame
    name: str


class Population:
    """Several cell sequences placed in one field: labels ``(T, Z, Y, X)`` built frame by frame.

    ``population[t]`` gives frame ``t`` (uint16, ``(Z, Y, X)``), ``len`` the
    frame count and ``numpy.asarray(population)`` the whole time-lapse; only
    the cells' crops are held in memory.

    Attributes
    ----------
    shape : tuple (T, Z, Y, X)
    spacing : tuple of 3 floats
        Voxel size (um) of the masks.
    tracks : DataFrame
        Lineage (columns ``label, begin, end, parent``).
    names : list of str
        Sequence of each placed cell.
    centres : ndarray (n, 3)
        Field voxel of each cell's footprint centre.
    """

    ndim = 4
    dtype = np.dtype(ctc.LABEL_DTYPE)

    def __init__(self, shape, spacing, placed: list[_Placed], tracks: pd.DataFrame, centres):
        self.shape = tuple(int(s) for s in shape)
        self.spacing = tuple(spacing)
        self._placed = placed
        self.tracks = tracks
        self.names = [p.name for p in placed]
        self.centres = np.asarray(centres)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Population({len(self._placed)} cells, shape={self.shape}, {len(self.tracks)} tracks)"

    def __getitem__(self, t):
        if not isinstance(t, (int, np.integer)):
            raise TypeError("index a Population by frame number; use numpy.asarray(population) for the whole array")
        t = int(t)
        if not -len(self) <= t < len(self):
            raise IndexError(f"frame {t} out of range for {len(self)} frames")
        t %= len(self)
        frame = np.zeros(self.shape[1:], dtype=ctc.LABEL_DTYPE)
        for cell in self._placed:
            crop = cell.labels[t]
            sl = tuple(slice(c, c + n) for c, n in zip(cell.corners[t], crop.shape))
            inside = crop > 0
            frame[sl][inside] = crop[inside]
        return frame

    def __array__(self, dtype=None, copy=None):
        out = np.stack([self[t] for t in range(len(self))])
        return out if dtype is None else out.astype(dtype)


def _sequence_masks(seq) -> tuple[np.ndarray, tuple, str]:
    if isinstance(seq, MaskSequence):
        return seq.masks, seq.spacing, seq.name
    masks = np.asarray(seq)
    if masks.ndim != 4:
        raise ValueError(f"each sequence must be a MaskSequence or masks (T, Z, Y, X), got shape {masks.shape}")
    return masks.astype(bool), None, ""


def place_cells(sequences, *, shape=None, spacing=None, drift: float = 0.0, gap: int = 1, positions=None,
                max_tries: int = 500, rng=None) -> Population:
    """Place cell sequences in one field without overlap, each drifting at a constant velocity.

    Parameters
    ----------
    sequences : list of MaskSequence or ndarray (T, Z, Y, X) bool
        One cell (or a dividing cell and its daughters) each; all with the same
        frame count and voxel size.  Each frame's 26-connected components are
        linked into tracks by overlap (:func:`cellnb.ctc.link_by_overlap`): a
        dividing sequence gives a mother track and two daughter tracks.
    shape : tuple (Z, Y, X), optional
        Field shape in mask voxels; default large enough for all cells side by
        side in Y-X (grown until they fit).
    spacing : tuple of 3 floats, optional
        Mask voxel size (um); default the sequences' own (MaskSequence.spacing).
    drift : float
        Speed (um per frame) of each cell's drift, in a random direction; 0 for none.
    gap : int
        Voxels kept free between cells at all times (1: labels never touch).
    positions : array-like (n, 3), optional
        Field voxel of each cell's footprint centre, instead of random placement.
    max_tries : int
        Random positions tried per cell.
    rng : int or numpy.random.Generator, optional

    Returns
    -------
    Population
        Labels ``(T, Z, Y, X)`` frame by frame and the tracks table; labels
        are numbered sequence by sequence (the first sequence's tracks first).

    Raises
    ------
    ValueError
        Sequences of different frame counts or voxel sizes, a cell larger than
        the field, cells that overlap at the given positions, or no place
        found without overlap after ``max_tries``.
    """
    if not len(sequences):
        raise ValueError("sequences is empty; pass at least one cell sequence")
    rng = np.random.default_rng(rng)
    gap = int(gap)
    if gap < 0:
        raise ValueError(f"gap must be >= 0 voxels, got {gap}")
    drift = float(drift)
    if not (math.isfinite(drift) and drift >= 0):
        raise ValueError(f"drift must be >= 0 um per frame, got {drift}")
    unpacked = [_sequence_masks(s) for s in sequences]
    n_frames = {len(m) for m, _, _ in unpacked}
    if len(n_frames) != 1:
        raise ValueError(f"sequences have {sorted(n_frames)} frames; give sequences of one frame count")
    n_frames = n_frames.pop()
    own = {tuple(s) for _, s, _ in unpacked if s is not None}
    if spacing is None:
        if len(own) > 1:
            raise ValueError(f"sequences have voxel sizes {sorted(own)}; resample them to one voxel size")
        spacing = own.pop() if own else (1.0, 1.0, 1.0)
    spacing = np.asarray(check_spacing(spacing))

    footprints, crops, moves, names = [], [], [], []
    next_label = 1
    track_tables = []
    for i, (masks, _, name) in enumerate(unpacked):
        if not masks.any():
            raise ValueError(f"sequence {i} ({name}) is empty; every sequence needs a cell")
        box = ndimage.find_objects(masks.any(axis=0).astype(np.uint8))[0]
        crop = masks[(slice(None),) + box]
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        steps = np.rint(np.arange(n_frames)[:, None] * (drift * direction / spacing)[None, :]).astype(int)
        steps -= steps.min(axis=0)
        extent = np.array(crop.shape[1:]) + steps.max(axis=0)
        footprint = np.zeros(extent, dtype=bool)
        for t in range(n_frames):
            footprint[tuple(slice(s, s + n) for s, n in zip(steps[t], crop.shape[1:]))] |= crop[t]
        labels, tracks = ctc.link_by_overlap(crop)
        shift = next_label - 1
        labels[labels > 0] += ctc.LABEL_DTYPE(shift)
        tracks = tracks.assign(label=tracks["label"] + shift,
                               parent=np.where(tracks["parent"] > 0, tracks["parent"] + shift, 0))
        next_label += len(tracks)
        footprints.append(footprint)
        crops.append(labels)
        moves.append(steps)
        names.append(name or f"sequence_{i}")
        track_tables.append(tracks)
    tracks = pd.concat(track_tables, ignore_index=True).sort_values("label", ignore_index=True)
    grown = [ndimage.binary_dilation(np.pad(f, gap), ndimage.generate_binary_structure(3, 3), iterations=gap)
             if gap else f for f in footprints]

    if positions is not None:
        centres = np.asarray(positions, dtype=float)
        if centres.shape != (len(footprints), 3):
            raise ValueError(f"positions must be one (z, y, x) centre per sequence, shape ({len(footprints)}, 3); "
                             f"got {centres.shape}")
        if shape is None:
            raise ValueError("positions need the field shape; pass shape=(Z, Y, X)")
        field = tuple(int(s) for s in shape)
        corners = _place_at(field, footprints, grown, gap, np.rint(centres).astype(int), names)
    else:
        field = _auto_field(footprints, gap) if shape is None else tuple(int(s) for s in shape)
        corners = None
        for _ in range(_FIELD_GROWTH_ROUNDS if shape is None else 1):
            corners = _place_random(field, footprints, grown, gap, max_tries, rng, names,
                                    raise_on_failure=shape is not None)
            if corners is not None:
                break
            field = (field[0], math.ceil(field[1] * _FIELD_GROWTH), math.ceil(field[2] * _FIELD_GROWTH))
        if corners is None:
            raise ValueError(f"could not place {len(footprints)} cells without overlap; give a larger shape")
    placed = [_Placed(labels=c, corners=corner[None, :] + steps, name=nm)
              for c, corner, steps, nm in zip(crops, corners, moves, names)]
    centres = np.array([corner + np.array(f.shape) // 2 for corner, f in zip(corners, footprints)])
    return Population((n_frames,) + field, tuple(spacing), placed, tracks, centres)


def _auto_field(footprints, gap) -> tuple[int, int, int]:
    extents = np.array([f.shape for f in footprints])
    margin = 2 * (gap + 1)
    side = math.sqrt(_PACKING * float(np.sum(extents[:, 1] * extents[:, 2])))
    return (int(extents[:, 0].max()) + margin,
            int(max(extents[:, 1].max(), side)) + margin,
            int(max(extents[:, 2].max(), side)) + margin)


def _fits(field, footprint, names, i) -> None:
    if any(f > n for f, n in zip(footprint.shape, field)):
        raise ValueError(
            f"cell {i} ({names[i]}) needs {footprint.shape} voxels over its life (with drift), more than the "
            f"field {field}; give a larger shape or less drift"
        )


def _slices(corner, shape, gap, field):
    """Slices placing a footprint at ``corner``: its own field slice, and the field and array slices of
    the footprint grown by ``gap`` (clipped to the field)."""
    lo = np.asarray(corner) - gap
    hi = np.asarray(corner) + np.asarray(shape) + gap
    field_sl = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, field))
    grown_sl = tuple(slice(max(a, 0) - a, min(b, n) - a) for a, b, n in zip(lo, hi, field))
    own_sl = tuple(slice(c, c + n) for c, n in zip(corner, shape))
    return own_sl, field_sl, grown_sl


def _place_at(field, footprints, grown, gap, centres, names) -> list[np.ndarray]:
    occupied = np.zeros(field, dtype=np.int32)
    corners = []
    for i, (f, g, centre) in enumerate(zip(footprints, grown, centres)):
        _fits(field, f, names, i)
        corner = centre - np.array(f.shape) // 2
        if np.any(corner < 0) or np.any(corner + f.shape > np.array(field)):
            raise ValueError(f"cell {i} ({names[i]}) at centre {tuple(centre)} does not fit inside the field {field}; "
                             "move it inward")
        own, fsl, gsl = _slices(corner, f.shape, gap, field)
        hit = occupied[fsl][g[gsl]]
        if hit.any():
            other = int(hit[hit > 0][0]) - 1
            raise ValueError(f"masks overlap when placed: cell {i} ({names[i]}) at {tuple(centre)} comes within "
                             f"{gap} voxels of cell {other} ({names[other]}); move them apart")
        occupied[own][f] = i + 1
        corners.append(corner)
    return corners


def _place_random(field, footprints, grown, gap, max_tries, rng, names, *, raise_on_failure) -> list | None:
    """Corners of randomly placed footprints (largest first), or None when one finds no room and not raising."""
    occupied = np.zeros(field, dtype=bool)
    corners = [None] * len(footprints)
    for i in np.argsort([-f.sum() for f in footprints], kind="stable"):
        f, g = footprints[i], grown[i]
        if any(a > n for a, n in zip(f.shape, field)):
            if raise_on_failure:
                _fits(field, f, names, i)
            return None
        for _ in range(int(max_tries)):
            corner = np.array([rng.integers(0, n - a + 1) for n, a in zip(field, f.shape)])
            own, fsl, gsl = _slices(corner, f.shape, gap, field)
            if not occupied[fsl][g[gsl]].any():
                occupied[own] |= f
                corners[i] = corner
                break
        else:
            if raise_on_failure:
                raise ValueError(
                    f"could not place cell {i} ({names[i]}) without overlap after {max_tries} tries in a field of "
                    f"{field} voxels; give a larger shape, fewer cells or less drift"
                )
            return None
    return corners
