"""Sequences from any tracked label time-lapse: divisions, tracks or single cells, one code path.

Every real source with a lineage comes here as a :class:`Lineage` (a tracks
table in the Cell Tracking Challenge sense: ``label, begin, end, parent``,
frames counted from 0) and a :class:`Frames` source (label volume of frame
``t`` on demand, with its voxel size in micrometres): a CTC folder, a label
time-lapse linked by overlap (:func:`cellnb.ctc.link_by_overlap`), or the
C. elegans embryo (:mod:`cellnb.datasets`).  Three kinds of sequences:

``divisions``
    one per mother whose two daughters begin the frame after she ends: her
    last ``before`` frames, then the union of the daughters in their first
    ``frames - before`` frames (the paper's grow-and-divide sequences).
    Glitch frames are re-timed or rebuilt (:mod:`cellnb.repair`); the
    daughters are resampled apart and the voxels where they touch become
    background, so a division is one 26-connected component becoming two at
    any grid size;
``tracks``
    one per track (a cell's life between divisions), resampled in time to
    ``frames`` frames (:func:`cellnb.sdf.resample_time`);
``cells``
    one frame per track (its middle one): a population of static cells, for
    a static shape model.

Each sequence is cropped into one cube for all its frames (centred on its
voxels, side its physical extent and a margin), optionally turned to its
canonical pose (:func:`cellnb.sdf.canonical_rotation`; a division to the
pose of its daughters, the plane between them in the middle of the cube, so
that the thin gap between daughters lies at one place in every sequence), and resampled
isotropically from physical coordinates, so anisotropic voxels (a z step of
several pixels) keep the cell's proportions.  Every sequence records its
voxel size in micrometres.

Frames are read once, in time order; only the crops of unfinished sequences
are held.  What cannot be trusted is counted and reported once per kind of
problem (:class:`Findings`): cells cut by the field of view, frames whose
volume jumps, daughters too small, tracks with gaps; ``strict`` makes them errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm.auto import tqdm

from cellnb.repair import (
    FILL_MARGIN,
    MAX_RETIMED_FRAMES,
    plan_division_repair,
    repair_division_window,
)
from cellnb.sdf import (
    CONNECTIVITY_26,
    canonical_rotation,
    component_counts,
    resample_time,
    resample_to_cube,
)
from cellnb.sequence import MaskSequence

__all__ = ["KINDS", "CROP_MARGIN", "Frames", "Lineage", "Findings", "check_arguments", "sequences_from_lineage"]

log = logging.getLogger(__name__)

KINDS = ("divisions", "tracks", "cells")
CROP_MARGIN = 0.15  # cube side = the sequence's extent around its centre, enlarged this much on each side
_CROP_PAD = 2  # background voxels kept around a label's bounding box for its distance transform
_GAP_CUTS = 256  # planes tried between the daughters by _division_rotation
MIN_TRACK_SHARE = 0.5  # a track needs at least this share of the requested frames (no inventing a life)


@dataclass
class Frames:
    """Label volumes of a time-lapse, read on demand.

    Parameters
    ----------
    n_frames : int
    read : callable
        ``read(t)`` gives frame ``t`` (0-based) as an int array ``(Z, Y, X)``.
    spacing : tuple of 3 floats
        Voxel size (Z, Y, X) in micrometres.
    """

    n_frames: int
    read: Callable[[int], np.ndarray]
    spacing: tuple[float, float, float]

    @classmethod
    def from_array(cls, labels: np.ndarray, spacing) -> "Frames":
        labels = np.asarray(labels)
        return cls(len(labels), lambda t: labels[t], tuple(float(s) for s in spacing))


@dataclass
class Lineage:
    """A tracks table (``label, begin, end, parent``; frames from 0) and a name per label.

    Parameters
    ----------
    tracks : DataFrame
    names : dict, optional
        Label -> name (e.g. C. elegans lineage names); default ``str(label)``.
    prefix : str
        Sequence names are ``<prefix><name>`` (e.g. ``celegans_ABala``).
    """

    tracks: pd.DataFrame
    names: dict = field(default_factory=dict)
    prefix: str = "cell_"

    def name(self, label: int) -> str:
        return str(self.names.get(int(label), int(label)))

    def row(self, label: int) -> dict:
        return self.tracks.set_index("label").loc[int(label)].to_dict()

    def daughters(self) -> dict[int, list[int]]:
        """Mother label -> her daughters' labels (tracks whose parent she is)."""
        children: dict[int, list[int]] = {}
        for label, parent in zip(self.tracks["label"], self.tracks["parent"]):
            if parent:
                children.setdefault(int(parent), []).append(int(label))
        return children


class Findings:
    """Problems of the data, counted per kind; reported once each, or raised with ``strict``."""

    def __init__(self):
        self.counts: dict[str, set[str]] = {}

    def add(self, kind: str, sequence: str) -> None:
        self.counts.setdefault(kind, set()).add(sequence)

    def report(self, *, total: int, strict: bool) -> list[str]:
        """One line per kind of problem, saying how many sequences it concerns; raises if ``strict``."""
        lines = [f"{len(names)} of {total} sequences: {kind} ({', '.join(sorted(names)[:5])}"
                 f"{', ...' if len(names) > 5 else ''})" for kind, names in sorted(self.counts.items())]
        if lines and strict:
            raise ValueError("data that cannot be trusted (strict): " + "; ".join(lines)
                             + "; fix the data or leave out --strict to keep them with a warning")
        for line in lines:
            log.warning(line)
        return lines


@dataclass
class _Request:
    """The crops one sequence needs: ``(frame, label)`` -> (bool crop, offset), filled as frames stream by."""

    name: str
    needs: dict[int, tuple[int, ...]]  # frame -> labels to crop there
    cells: tuple[int, ...] = ()  # divisions: (mother, daughter 1, daughter 2)
    mother_frames: list[int] = field(default_factory=list)
    daughter_frames: list[int] = field(default_factory=list)
    crops: dict = field(default_factory=dict)
    border: bool = False

    @property
    def last(self) -> int:
        return max(self.needs)


def _gather(frames: Frames, requests: list[_Request], build, *, max_sequences, progress) -> list:
    """Stream the frames once; build each request (``build(request)``) as soon as its last frame is read."""
    needed = sorted({t for r in requests for t in r.needs})
    pending = sorted(requests, key=lambda r: r.last)
    built = []
    with tqdm(total=len(needed), desc="frames", unit="frame", disable=not progress) as bar:
        for t in needed:
            if max_sequences is not None and sum(isinstance(b, MaskSequence) for b in built) >= max_sequences:
                break
            volume = np.asarray(frames.read(t))
            objects = ndimage.find_objects(volume)
            for r in pending:
                for label in r.needs.get(t, ()):
                    box = objects[label - 1] if 0 < label <= len(objects) else None
                    if box is None:  # a missing label: a glitch the division repair may rebuild
                        continue
                    r.crops[(t, label)] = (volume[box] == label, np.array([sl.start for sl in box]))
                    r.border |= any(sl.start == 0 or sl.stop == n for sl, n in zip(box, volume.shape))
            while pending and pending[0].last == t:
                r = pending.pop(0)
                built.append(build(r))
                r.crops.clear()
            bar.update()
    return built


def _division_rotation(points, first, second, towards):
    """The pose of a division: the first axis from the larger daughter's centroid to the other's.

    ``points`` are all the sequence's voxel centres, ``first`` and ``second``
    the daughters' (physical units, one row each), ``towards`` the unit vector
    from the first daughter's centroid to the second's.  The other two axes are the
    principal axes of ``points`` across the division axis, signed by their
    third moment like :func:`cellnb.sdf.canonical_rotation`; ``det = +1``.
    Returns ``(rotation, gap)``: the axes as columns, and the position along
    the first axis of the plane that best separates the daughters' voxels
    (fewest on the wrong side, over all their frames).
    """
    u = towards
    if len(second) > len(first):
        first, second, u = second, first, -towards
    across = np.eye(3) - np.outer(u, u)
    centred = (points - points.mean(axis=0)) @ across
    eigval, eigvec = np.linalg.eigh(centred.T @ centred)
    others = eigvec[:, np.argsort(eigval)[::-1][:2]]
    skew = np.mean((centred @ others) ** 3, axis=0)
    rotation = np.column_stack([u, others * np.where(skew < 0, -1.0, 1.0)])
    if np.linalg.det(rotation) < 0:
        rotation[:, 2] *= -1.0
    a, b = np.sort(first @ u), np.sort(second @ u)
    cuts = np.linspace(b[0], a[-1], _GAP_CUTS) if b[0] < a[-1] else np.array([0.5 * (a[-1] + b[0])])
    wrong = len(a) - np.searchsorted(a, cuts) + np.searchsorted(b, cuts)
    best = np.flatnonzero(wrong == wrong.min())
    return rotation, 0.5 * (cuts[best[0]] + cuts[best[-1]])


def _cube(crops, spacing, size: int, *, align: bool, daughters=None, daughter_shift: float = 0.0):
    """The cube of a sequence: ``(resample(crop, offset, apart=0) -> cube mask, side in um, rotation or None)``.

    Centred on the middle of the crops' voxels along the cube's axes, its side
    the largest physical extent along them, enlarged by :data:`CROP_MARGIN`
    on each side; the axes are the canonical pose of all the crops' voxels
    together when ``align``, else the array axes.  A division (``daughters``:
    for each daughter, the positions of her crops in ``crops``) is aligned on its daughters instead
    (:func:`_division_rotation`), and centred along the division axis on the
    plane between them, so that every division's gap lies at the same place
    in the cube.  ``resample(..., apart=-1 or 1)`` moves a crop of the first
    or second daughter ``daughter_shift`` cube voxels away from the other
    along the line through their centroids.
    """
    spacing = np.asarray(spacing, dtype=float)
    each = [(np.argwhere(crop) + offset) * spacing for crop, offset in crops]  # voxel centres, physical
    points = np.concatenate(each)
    gap, towards = None, np.zeros(3)
    if daughters is not None:
        first, second = (np.concatenate([each[i] for i in which]) for which in daughters)
        towards = second.mean(axis=0) - first.mean(axis=0)
        towards /= np.linalg.norm(towards)  # unit, from the first daughter to the second
    if align and daughters is not None:
        rotation, gap = _division_rotation(points, first, second, towards)
    elif align:
        shape = np.ptp(points, axis=0) / spacing + 1
        canvas = np.zeros(np.ceil(shape).astype(int) + 1, dtype=bool)
        low = points.min(axis=0)
        canvas[tuple(np.round((points - low) / spacing).astype(int).T)] = True
        rotation = canonical_rotation(canvas, spacing=spacing)[1]
    else:
        rotation = np.eye(3)
    half = 0.5 * spacing @ np.abs(rotation)
    along = points @ rotation
    lo, hi = along.min(axis=0) - half, along.max(axis=0) + half
    if gap is not None:
        reach = max(gap - lo[0], hi[0] - gap)
        lo[0], hi[0] = gap - reach, gap + reach
    side = float(np.max(hi - lo)) * (1.0 + 2.0 * CROP_MARGIN)
    shift = towards * daughter_shift * side / size  # physical
    widened = 2.0 * np.abs(shift @ rotation)  # what moving the daughters adds to the extent along each cube axis
    side = max(side, float(np.max(hi - lo + widened)) * (1.0 + CROP_MARGIN))  # half the margin left beside them
    center = (rotation @ ((lo + hi) / 2.0)) / spacing  # voxel index of the source volume

    def resample(crop, offset, apart: int = 0):
        moved = offset - _CROP_PAD + apart * shift / spacing
        return resample_to_cube(np.pad(crop, _CROP_PAD), center=center - moved, side=side,
                                size=size, spacing=spacing, rotation=rotation if align else None)

    return resample, side, rotation if align else None


def _apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two cells in one mask, the voxels where they touch or overlap made background (two components)."""
    touching = ndimage.binary_dilation(a, CONNECTIVITY_26) & ndimage.binary_dilation(b, CONNECTIVITY_26)
    return (a | b) & ~touching


def _plan_divisions(lineage: Lineage, n_frames: int, frames: int, before: int):
    """The crop requests of every usable division, and the divisions ruled out with reasons."""
    after = frames - before
    table = lineage.tracks.set_index("label")
    requests, skipped = [], []
    for mother, children in sorted(lineage.daughters().items()):
        name = lineage.prefix + lineage.name(mother)
        if mother not in table.index:
            continue
        if len(children) != 2:
            skipped.append((name, f"missing daughter: {len(children)} in the lineage, a division needs two"))
            continue
        m = table.loc[mother]
        d1, d2 = sorted(children)
        last = int(m["end"])
        firsts = [int(table.loc[d, "begin"]) for d in (d1, d2)]
        if firsts != [last + 1, last + 1]:
            skipped.append((name, f"not contiguous: daughters start at frames {firsts}, the mother ends at {last}"))
            continue
        if last - int(m["begin"]) + 1 < before:
            skipped.append((name, f"too few frames: the mother has {last - int(m['begin']) + 1}, the window "
                                  f"needs {before} before"))
            continue
        daughter_end = min(int(table.loc[d, "end"]) for d in (d1, d2))
        if daughter_end - last < after:
            skipped.append((name, f"too few frames: a daughter has {daughter_end - last}, the window needs "
                                  f"{after} after"))
            continue
        first = max(int(m["begin"]), last - before + 1 - FILL_MARGIN)
        end = min(daughter_end, last + after + MAX_RETIMED_FRAMES + FILL_MARGIN, n_frames - 1)
        needs = {t: (mother,) for t in range(first, last + 1)}
        needs.update({t: (d1, d2) for t in range(last + 1, end + 1)})
        requests.append(_Request(name, needs, (mother, d1, d2), list(range(first, last + 1)),
                                 list(range(last + 1, end + 1))))
    return requests, skipped


def _build_division(r: _Request, lineage: Lineage, frames: Frames, *, size, before, after, align, daughter_shift,
                    findings):
    mother, d1, d2 = r.cells
    span = r.mother_frames + r.daughter_frames
    n_mother = len(r.mother_frames)
    key = lambda i, c: (span[i], r.cells[c])  # noqa: E731 (span frame i, cell c: 0 mother, 1 and 2 daughters)
    voxels = {k: int(crop.sum()) for k, (crop, _) in r.crops.items()}
    names = tuple(lineage.name(c) for c in r.cells)
    repair = plan_division_repair(
        [voxels.get(key(i, 0), 0) for i in range(n_mother)],
        [[voxels.get(key(i, c), 0) for c in (1, 2)] for i in range(n_mother, len(span))],
        before=before, after=after, names=names, times=span,
    )
    if repair.rejected:
        return repair.rejected
    inputs = [key(i, c) for i, c in repair.inputs() if key(i, c) in r.crops]
    in_window = set(span[repair.start : repair.stop])
    window = [k for k in inputs if k[0] in in_window]
    daughters = [[i for i, k in enumerate(window) if k[1] == cell] for cell in (d1, d2)]
    resample, side, rotation = _cube([r.crops[k] for k in window], frames.spacing, size, align=align,
                                     daughters=daughters if all(daughters) else None, daughter_shift=daughter_shift)
    apart = {mother: 0, d1: -1, d2: 1}
    cubes = {k: resample(*r.crops[k], apart=apart[k[1]]) for k in inputs}
    cells, _ = repair_division_window(
        [cubes.get(key(i, 0)) for i in range(n_mother)],
        [tuple(cubes.get(key(i, c)) for c in (1, 2)) for i in range(n_mother, len(span))],
        before=before, after=after, repair=repair,
    )
    masks = np.stack([c[0] if len(c) == 1 else _apart(*c) for c in cells])
    counts = component_counts(masks).tolist()
    if counts != [1] * before + [2] * after:
        return f"topology: components per frame {counts}, expected 1 before and 2 from the division on"
    if r.border:
        findings.add("cut by the field of view (a cell touches the volume's border)", r.name)
    if repair.fills:
        findings.add("frames whose volume jumps, rebuilt from their neighbours", r.name)
    if repair.retimed:
        findings.add("daughters too small in their first frames, re-timed to the mother", r.name)
    meta = {"family": "dividing", "mother": names[0], "daughters": list(names[1:]), "division_frame": before,
            "source_frames": span[repair.start : repair.stop], "retimed": len(repair.retimed),
            "repairs": list(repair.notes)}
    if rotation is not None:
        meta["rotation"] = rotation.T.tolist()
    step = side / size
    return MaskSequence(masks, (step, step, step), r.name, meta)


def _plan_tracks(lineage: Lineage, frames: int, kind: str):
    requests, skipped = [], []
    need = 1 if kind == "cells" else max(2, int(np.ceil(MIN_TRACK_SHARE * frames)))
    for row in lineage.tracks.itertuples():
        name = lineage.prefix + lineage.name(row.label)
        length = int(row.end) - int(row.begin) + 1
        if length < need:
            skipped.append((name, f"too few frames: the track has {length}, {kind} need {need}"))
            continue
        span = [(int(row.begin) + int(row.end)) // 2] if kind == "cells" else range(int(row.begin), int(row.end) + 1)
        requests.append(_Request(name, {t: (int(row.label),) for t in span}))
    return requests, skipped


def _build_track(r: _Request, frames: Frames, *, size, n_frames, kind, align, findings):
    present = sorted(t for t, _ in r.crops)
    if not present:
        return "the label is in none of its frames"
    if len(present) < len(r.needs):
        findings.add("tracks with gaps (frames where the label is missing; interpolated)", r.name)
    resample, side, rotation = _cube([r.crops[k] for k in sorted(r.crops)], frames.spacing, size, align=align)
    masks = np.stack([resample(*r.crops[k]) for k in sorted(r.crops)])
    empty = [present[i] for i, m in enumerate(masks) if not m.any()]
    if empty:
        return f"too small: frame(s) {empty} hold less than a voxel of the {size}^3 cube"
    if kind == "tracks":
        span = min(r.needs), max(r.needs)
        masks = resample_time(masks, n_frames, times=present, span=span, spacing=(1.0, 1.0, 1.0))
    if r.border:
        findings.add("cut by the field of view (a cell touches the volume's border)", r.name)
    if (component_counts(masks) != 1).any():
        findings.add("cells of more than one piece in a frame", r.name)
    meta = {"family": "single", "source_frames": present}
    if rotation is not None:
        meta["rotation"] = rotation.T.tolist()
    step = side / size
    return MaskSequence(masks, (step, step, step), r.name, meta)


def check_arguments(*, kind: str, n_frames: int, size: int, before: int | None, max_sequences: int | None) -> int | None:
    """Check the arguments of :func:`sequences_from_lineage` before any data is read; returns ``before``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if isinstance(size, bool) or int(size) != size or size < 8:
        raise ValueError(f"size must be an integer of at least 8 voxels, got {size}")
    if kind != "cells" and (isinstance(n_frames, bool) or int(n_frames) != n_frames or n_frames < 2):
        raise ValueError(f"frames must be an integer of at least 2, got {n_frames}")
    if max_sequences is not None and (int(max_sequences) != max_sequences or max_sequences < 1):
        raise ValueError(f"max_sequences must be a positive integer or None (all), got {max_sequences}")
    if kind != "divisions":
        return None
    before = int(n_frames) // 2 if before is None else before
    if int(before) != before or not 1 <= before <= n_frames - 1:
        raise ValueError(f"before must be between 1 and frames - 1 = {n_frames - 1} mother frames, got {before}")
    return int(before)


def sequences_from_lineage(frames: Frames, lineage: Lineage, *, kind: str = "divisions", n_frames: int = 12,
                           size: int = 48, before: int | None = None, align: bool = False,
                           daughter_shift: float = 0.0, max_sequences: int | None = None, strict: bool = False,
                           progress: bool = True) -> tuple[list[MaskSequence], list[tuple[str, str]], list[str]]:
    """Mask sequences of a tracked time-lapse (module docstring).

    Parameters
    ----------
    frames : Frames
    lineage : Lineage
    kind : {"divisions", "tracks", "cells"}
    n_frames : int
        Frames per sequence (divisions: the window; tracks: after resampling
        in time; cells: ignored, one frame each).
    size : int
        Cube side in voxels.
    before : int, optional
        Divisions: mother frames in the window (default ``n_frames // 2``).
    align : bool
        Turn each sequence to its canonical pose.
    daughter_shift : float
        Divisions: move each daughter this many cube voxels away from the
        other along the line through their centroids (shapes and volumes
        kept), widening the background gap between them by twice that.
    max_sequences : int, optional
        Stop after this many sequences (the earliest in time).
    strict : bool
        Raise on data that cannot be trusted instead of warning (:class:`Findings`).

    Returns
    -------
    sequences : list of MaskSequence
    skipped : list of (name, reason)
    warnings : list of str
        One line per kind of problem, with how many sequences it concerns.
    """
    before = check_arguments(kind=kind, n_frames=n_frames, size=size, before=before, max_sequences=max_sequences)
    findings = Findings()
    if kind == "divisions":
        requests, skipped = _plan_divisions(lineage, frames.n_frames, int(n_frames), before)

        def build(r):
            return _build_division(r, lineage, frames, size=int(size), before=before, after=int(n_frames) - before,
                                   align=align, daughter_shift=daughter_shift, findings=findings)
    else:
        requests, skipped = _plan_tracks(lineage, int(n_frames), kind)

        def build(r):
            return _build_track(r, frames, size=int(size), n_frames=int(n_frames), kind=kind, align=align,
                                findings=findings)
    built = _gather(frames, requests, build, max_sequences=max_sequences, progress=progress)
    sequences = []
    for r, result in zip(sorted(requests, key=lambda r: r.last), built):
        if isinstance(result, str):
            skipped.append((r.name, result))
        else:
            sequences.append(result)
    if max_sequences is not None:
        sequences = sequences[: int(max_sequences)]
    for name, reason in skipped:
        log.info("skip %s: %s", name, reason)
    warnings = findings.report(total=len(sequences), strict=strict)
    log.info("%d %s sequences built, %d skipped", len(sequences), kind, len(skipped))
    return sequences, skipped, warnings
