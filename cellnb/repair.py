"""Repairing division windows: re-timing an early split, rebuilding glitch frames of a cell.

A *span* is a run of consecutive frames around one division, as a lineage
records it: first frames of the mother, then frames of its two daughters.
Cells are numbered 0 (mother), 1 and 2 (daughters).  The functions take
voxel counts or masks per frame and per cell, nothing specific to a data set,
so every lineage reader shares them (:mod:`cellnb.lineage`).  Automatic
segmentations make two kinds of mistakes around a division: the lineage
splits a frame or two before the membranes do (one daughter label holds the
undivided mother, the other a few voxels), and a label is a few voxels, leaks
into a neighbour or is missing in one frame.  The first is re-timed, the
second rebuilt by shape-based interpolation between the cell's neighbouring
frames (:func:`interpolate_masks`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from cellnb.sdf import signed_distance

__all__ = [
    "VOLUME_RATIO_RANGE",
    "MAX_RETIMED_FRAMES",
    "MAX_FILLED_RUN",
    "FILL_MARGIN",
    "DivisionRepair",
    "plan_division_repair",
    "interpolate_masks",
    "repair_division_window",
]

# Plausible voxel count of a label in a frame / its median in the window: daughters of a few
# voxels and leaks into a neighbour (1.4-2.5x) are segmentation glitches.
VOLUME_RATIO_RANGE = (0.6, 1.4)
# First daughter frames that may still show the undivided mother, one daughter label holding it
# and the other a few voxels (the lineage splits one or two frames before the membranes do; in
# the C. elegans data of 3DMMS this is what most rejected windows show, never more than two frames).
MAX_RETIMED_FRAMES = 2
# Consecutive glitch frames of one cell that may be rebuilt from its neighbours in time; longer
# runs are rejected, since an interpolation across them would invent shape.
MAX_FILLED_RUN = 2
# Frames read beyond each end of a window, so that a glitch in its first or last frame is
# interpolated between two real frames instead of copied from one.
FILL_MARGIN = 1
_CELL_NAMES = ("mother", "daughter 1", "daughter 2")
_TIE_TOLERANCE = 1e-4  # |blended SDF| in voxels below which interpolate_masks breaks a tie
_TIE_SIGMA = 0.5  # voxels: the Gaussian that breaks ties (the half-voxel step of a voxel SDF)


@dataclass(frozen=True)
class DivisionRepair:
    """How a division window is taken from a span of frames, and which of its masks are rebuilt.

    The span holds ``n_mother`` frames of the mother followed by ``n_span -
    n_mother`` frames of the two daughters, as the lineage records them; all
    indices here are span indices.  Made by :func:`plan_division_repair`,
    applied by :func:`repair_division_window`.

    Attributes
    ----------
    n_mother, n_span : int
        Mother frames and all frames of the span.
    start, division, stop : int
        The window is span frames ``start .. stop - 1``; ``division`` is its
        first two-cell frame, after re-timing (``division - start`` equals
        ``before``).
    retimed : tuple of int
        Daughter frames of the span that still show the undivided mother (one
        daughter label holds the mother, the other is implausibly small): in
        the window they are mother frames, the union of both daughter labels.
    fills : tuple of (int, int, int or None, int or None)
        ``(frame, cell, previous, next)`` for every glitch entry of the window
        (cell 0 the mother, 1 and 2 the daughters): a voxel count outside
        :data:`VOLUME_RATIO_RANGE` times that cell's median in the window, or
        none at all.  It is rebuilt from the nearest plausible frames of the
        same cell, ``previous`` and ``next`` (None where the cell has none on
        that side within the span).
    notes : tuple of str
        One line per repair, for logs and sequence metadata.
    rejected : str or None
        Why the window cannot be used (then the other fields are not meaningful).
    """

    n_mother: int
    n_span: int
    start: int = 0
    division: int = 0
    stop: int = 0
    retimed: tuple[int, ...] = ()
    fills: tuple[tuple[int, int, int | None, int | None], ...] = ()
    notes: tuple[str, ...] = ()
    rejected: str | None = None

    @property
    def repaired(self) -> bool:
        """Whether the window was re-timed or has rebuilt masks."""
        return bool(self.retimed or self.fills)

    def cells_at(self, i: int) -> tuple[int, ...]:
        """Cells of span frame ``i`` in the window: ``(0,)`` before the division, ``(1, 2)`` from it on."""
        return (0,) if i < self.division else (1, 2)

    def inputs(self) -> tuple[tuple[int, int], ...]:
        """The ``(frame, cell)`` masks that :func:`repair_division_window` reads, in span order.

        Cell 0 of a mother frame, cells 1 and 2 of a daughter frame (both for
        a re-timed frame, whose mother is their union).  Every other entry,
        glitches included, may be left out (None).
        """
        filled = {(i, c) for i, c, _, _ in self.fills}
        needed = {(i, c) for i in range(self.start, self.stop) for c in self.cells_at(i)} - filled
        needed |= {(n, c) for _, c, p, q in self.fills for n in (p, q) if n is not None}
        entries = set()
        for i, c in needed:
            entries |= {(i, 1), (i, 2)} if c == 0 and i >= self.n_mother else {(i, c)}
        return tuple(sorted(entries))


def _longest_run(indices: list[int]) -> int:
    """Length of the longest run of consecutive integers in a sorted list."""
    best = run = 0
    for k, i in enumerate(indices):
        run = run + 1 if k and i == indices[k - 1] + 1 else 1
        best = max(best, run)
    return best


def plan_division_repair(
    mother_voxels,
    daughter_voxels,
    *,
    before: int,
    after: int,
    ratio_range=VOLUME_RATIO_RANGE,
    max_retimed: int = MAX_RETIMED_FRAMES,
    max_filled_run: int = MAX_FILLED_RUN,
    names=_CELL_NAMES,
    times=None,
) -> DivisionRepair:
    """Plan a division window in a span of frames from voxel counts alone: re-time it, find its glitches.

    1. **Re-timing.**  While a first daughter frame has one daughter below
       ``ratio_range[0]`` times its median over the span and the other alone
       within ``ratio_range`` times the mother's median, the cell has not
       divided yet in that frame (the lineage split it early): it becomes a
       mother frame, at most ``max_retimed`` of them.
    2. **Window.**  ``before`` frames up to the (re-timed) division and
       ``after`` frames from it on.
    3. **Glitches.**  Per cell, a window frame whose count is outside
       ``ratio_range`` times the cell's median in the window (a few voxels, a
       leak into a neighbour, a missing label) is marked to be rebuilt from
       the nearest plausible frames of that cell (see
       :func:`repair_division_window`).  A cell with more than
       ``max_filled_run`` glitch frames in a row, or glitches in more than
       half of its window frames, rejects the window.

    Parameters
    ----------
    mother_voxels : array_like, shape (M,)
        Voxel count of the mother in each of its span frames (0: missing), M >= ``before``.
    daughter_voxels : array_like, shape (D, 2)
        Voxel counts of both daughters in each of their span frames, D >= ``after``.
    before, after : int
        Frames of the window before the division and from it on (>= 1).
    ratio_range : (float, float)
        Plausible count / median of a cell (default :data:`VOLUME_RATIO_RANGE`).
    max_retimed : int
        Most first daughter frames that may be re-timed (0: none).
    max_filled_run : int
        Most consecutive glitch frames of one cell that may be rebuilt (0: none).
    names : sequence of 3 str
        Names of the mother and the daughters, for the notes.
    times : sequence of M + D, optional
        Time point of each span frame, for the notes; default the span index.

    Returns
    -------
    DivisionRepair
        With ``rejected`` set when no usable window exists: the reason starts
        with ``"too few frames"`` or ``"implausible volume"``.
    """
    mother_voxels = np.asarray(mother_voxels, dtype=float)
    daughter_voxels = np.asarray(daughter_voxels, dtype=float)
    if isinstance(before, bool) or int(before) != before or before < 1:
        raise ValueError(f"before must be a positive number of frames, got {before}")
    if isinstance(after, bool) or int(after) != after or after < 1:
        raise ValueError(f"after must be a positive number of frames, got {after}")
    if mother_voxels.ndim != 1 or mother_voxels.size < before:
        raise ValueError(f"mother_voxels must be a 1D array of at least before={before} counts, "
                         f"got shape {mother_voxels.shape}")
    if daughter_voxels.ndim != 2 or daughter_voxels.shape[1] != 2 or len(daughter_voxels) < after:
        raise ValueError(f"daughter_voxels must have shape (D, 2) with D >= after={after}, "
                         f"got shape {daughter_voxels.shape}")
    if (mother_voxels < 0).any() or (daughter_voxels < 0).any():
        raise ValueError("voxel counts must be 0 or more; give 0 where a cell is missing")
    lo, hi = ratio_range
    if not 0 < lo <= 1 <= hi:
        raise ValueError(f"ratio_range must be (low, high) with 0 < low <= 1 <= high, got {ratio_range}")
    if int(max_retimed) < 0 or int(max_filled_run) < 0:
        raise ValueError(f"max_retimed and max_filled_run must be 0 or more, got {max_retimed}, {max_filled_run}")
    names = tuple(names)
    if len(names) != 3:
        raise ValueError(f"names must name the mother and both daughters (3 names), got {names}")
    n_mother, n_daughter = mother_voxels.size, len(daughter_voxels)
    n_span = n_mother + n_daughter
    times = list(range(n_span)) if times is None else list(times)
    if len(times) != n_span:
        raise ValueError(f"times must give one time point per span frame ({n_span}), got {len(times)}")
    empty = DivisionRepair(n_mother, n_span)

    mother_ref = float(np.median(mother_voxels))
    daughter_ref = np.median(daughter_voxels, axis=0)
    notes, k = [], 0
    while k < min(int(max_retimed), n_daughter):
        small, large = np.argsort(daughter_voxels[k], kind="stable")
        counts = daughter_voxels[k]
        if not (counts[small] < lo * daughter_ref[small] and mother_ref > 0
                and lo <= counts[large] / mother_ref <= hi):
            break
        notes.append(f"frame {times[n_mother + k]} re-timed to the mother: {names[1 + large]} holds it "
                     f"({counts[large]:.0f} voxels, mother median {mother_ref:.0f}), {names[1 + small]} has "
                     f"{counts[small]:.0f} (median {daughter_ref[small]:.0f})")
        k += 1
    division = n_mother + k
    start, stop = division - int(before), division + int(after)
    if stop > n_span:
        why = f" after re-timing the division by {k} frame(s)" if k else ""
        return replace(empty, rejected=f"too few frames: {names[1]} and {names[2]} have {n_span - division} "
                                       f"frames{why}, the window needs {after} after")

    counts = {0: {i: float(mother_voxels[i]) for i in range(n_mother)}}
    counts[0].update({i: float(daughter_voxels[i - n_mother].sum()) for i in range(n_mother, division)})
    for c in (1, 2):
        counts[c] = {i: float(daughter_voxels[i - n_mother, c - 1]) for i in range(division, n_span)}
    window = {0: range(start, division), 1: range(division, stop), 2: range(division, stop)}
    fills = []
    for c in (0, 1, 2):
        ref = float(np.median([counts[c][i] for i in window[c]]))
        good = sorted(i for i, n in counts[c].items() if ref > 0 and lo <= n / ref <= hi)
        bad = [i for i in window[c] if i not in good]
        if not bad:
            continue
        shown = ", ".join(f"{counts[c][i]:.0f} at frame {times[i]}" for i in bad)
        if _longest_run(bad) > int(max_filled_run) or 2 * len(bad) > len(window[c]):
            return replace(empty, rejected=f"implausible volume: {names[c]} has {shown} (median {ref:.0f} in "
                                           f"the window), more glitch frames than can be rebuilt "
                                           f"(at most {max_filled_run} in a row and half of the window)")
        for i in bad:
            prev = max((g for g in good if g < i), default=None)
            nxt = min((g for g in good if g > i), default=None)
            if prev is None and nxt is None:
                return replace(empty, rejected=f"implausible volume: {names[c]} has no plausible frame in the span")
            fills.append((i, c, prev, nxt))
            source = " and ".join(f"frame {times[n]}" for n in (prev, nxt) if n is not None)
            how = "interpolated between" if prev is not None and nxt is not None else "copied from"
            notes.append(f"{names[c]} at frame {times[i]} ({counts[c][i]:.0f} voxels, median {ref:.0f}) "
                         f"{how} {source}")
    return DivisionRepair(n_mother, n_span, start, division, stop, tuple(range(n_mother, division)),
                          tuple(sorted(fills)), tuple(notes))


def interpolate_masks(first: np.ndarray, second: np.ndarray, weight: float) -> np.ndarray:
    """Shape-based interpolation between two binary frames of one cell.

    The signed distances of both masks are blended linearly and thresholded
    at zero (Raya & Udupa, IEEE Trans. Med. Imaging 9(1):32-42, 1990), so the
    shape grows or shrinks between the two instead of fading in and out.
    Each distance map is first translated (linear interpolation) so that its
    centroid sits at the blended centroid: a cell that moves by a good part
    of its size between the frames is then not thinned where the two do not
    overlap.  Voxels where the blend is exactly zero (at equal weights a
    surface voxel of one mask on the outside neighbour of the other's
    surface) take the sign of the blend smoothed by a Gaussian of half a voxel.

    Parameters
    ----------
    first, second : ndarray of bool, shape (D0, D1, D2)
        Non-empty, not full, one shape.
    weight : float
        0 gives ``first``, 1 gives ``second``.

    Returns
    -------
    ndarray of bool, shape (D0, D1, D2)
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    if np.shape(first) != np.shape(second):
        raise ValueError(f"masks must have one shape, got {np.shape(first)} and {np.shape(second)}")
    if weight in (0.0, 1.0):
        return np.array(first if weight == 0.0 else second, dtype=bool)
    centres = [np.array(ndimage.center_of_mass(m)) for m in (first, second)]
    target = (1.0 - weight) * centres[0] + weight * centres[1]
    blend = sum(
        w * ndimage.shift(signed_distance(m), target - c, order=1, mode="nearest")
        for w, m, c in zip((1.0 - weight, weight), (first, second), centres)
    )
    tie = np.abs(blend) < _TIE_TOLERANCE
    return (blend < 0) | (tie & (ndimage.gaussian_filter(blend, _TIE_SIGMA) < 0))


def _voxel_count(mask) -> int:
    return 0 if mask is None else int(np.count_nonzero(mask))


def repair_division_window(
    mother,
    daughters,
    *,
    before: int,
    after: int,
    repair: DivisionRepair | None = None,
    ratio_range=VOLUME_RATIO_RANGE,
    max_retimed: int = MAX_RETIMED_FRAMES,
    max_filled_run: int = MAX_FILLED_RUN,
) -> tuple[list[tuple[np.ndarray, ...]] | None, DivisionRepair]:
    """The masks of a division window, re-timed and with its glitch frames rebuilt.

    Plans with :func:`plan_division_repair` on the masks' voxel counts (or
    uses ``repair``, e.g. planned on counts at another resolution), then
    builds the window: a re-timed frame's mother is the union of both
    daughter labels; a glitch entry is interpolated between the nearest
    plausible frames of that cell before and after it with
    :func:`interpolate_masks` (weights by distance in frames), or copied from
    the only one there is at the end of a span.  Interpolation is preferred to
    copying a neighbour or dropping the frame: the cell keeps moving and
    growing through the rebuilt frame, and the frames stay evenly spaced in time.

    Parameters
    ----------
    mother : sequence of M ndarray of bool (D0, D1, D2) or None
        The mother in its span frames; None where missing or not needed.
    daughters : sequence of D pairs of (ndarray of bool or None)
        Both daughters in their span frames.
    before, after : int
        Window frames before the division and from it on.
    repair : DivisionRepair, optional
        A plan for this span; its :meth:`DivisionRepair.inputs` must be given.
    ratio_range, max_retimed, max_filled_run :
        The rule of :func:`plan_division_repair` (when ``repair`` is None).

    Returns
    -------
    cells : list of tuple of ndarray of bool, or None
        ``before + after`` frames: ``(mother,)`` before the division,
        ``(daughter 1, daughter 2)`` from it on; None when rejected.
    repair : DivisionRepair
        The plan used (``repair.rejected`` says why a window is unusable).

    Raises
    ------
    ValueError
        If masks differ in shape, a mask the plan reads is None, or
        ``repair`` does not fit the span.
    """
    mother = list(mother)
    daughters = [tuple(pair) for pair in daughters]
    if any(len(pair) != 2 for pair in daughters):
        raise ValueError("daughters must hold one pair of masks (daughter 1, daughter 2) per frame")
    shapes = {np.shape(m) for m in [*mother, *(m for pair in daughters for m in pair)] if m is not None}
    if len(shapes) > 1:
        raise ValueError(f"all masks of a window must have one shape, got {sorted(shapes)}")
    if repair is None:
        repair = plan_division_repair([_voxel_count(m) for m in mother],
                                      [[_voxel_count(m) for m in pair] for pair in daughters],
                                      before=before, after=after, ratio_range=ratio_range,
                                      max_retimed=max_retimed, max_filled_run=max_filled_run)
    elif (repair.n_mother, repair.n_span) != (len(mother), len(mother) + len(daughters)) or (
            not repair.rejected and (repair.division - repair.start, repair.stop - repair.division) != (before, after)):
        raise ValueError(f"repair was planned for {repair.n_mother} mother frames of {repair.n_span} with another "
                         f"window; got {len(mother)} + {len(daughters)} frames, before={before}, after={after}")
    if repair.rejected:
        return None, repair

    def given(i: int, c: int) -> np.ndarray | None:
        return mother[i] if c == 0 else daughters[i - repair.n_mother][c - 1]

    for i, c in repair.inputs():
        # a re-timed frame's mother is the union of its daughter labels: one of them may be absent
        union_given = i in repair.retimed and any(m is not None for m in daughters[i - repair.n_mother])
        if given(i, c) is None and not union_given:
            raise ValueError(f"the mask of {_CELL_NAMES[c]} at span frame {i} is None, but the repair needs it")

    def entry(i: int, c: int) -> np.ndarray:
        if c == 0 and i >= repair.n_mother:
            return np.logical_or.reduce([m for m in daughters[i - repair.n_mother] if m is not None])
        return np.asarray(given(i, c), dtype=bool)

    rebuilt = {}
    for i, c, prev, nxt in repair.fills:
        if prev is None or nxt is None:
            rebuilt[(i, c)] = entry(prev if nxt is None else nxt, c).copy()
        else:
            rebuilt[(i, c)] = interpolate_masks(entry(prev, c), entry(nxt, c), (i - prev) / (nxt - prev))
    cells = [tuple(rebuilt[(i, c)] if (i, c) in rebuilt else entry(i, c) for c in repair.cells_at(i))
             for i in range(repair.start, repair.stop)]
    return cells, repair
