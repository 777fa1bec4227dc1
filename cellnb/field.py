"""Evaluating a learned field on grids: dense and narrow-band coarse-to-fine.

A decoder and one latent code define a whole time-evolving shape
``SDF(c0, c1, c2, t)``; this module samples it on a frame grid of any size
(per axis) at any list of times in [-1, 1], so one code gives a sequence at
any spatial and temporal resolution without retraining.  Coordinates follow
:mod:`cellnb.sdf`: axis ``i`` of a frame of shape ``(D0, D1, D2)`` runs as
``linspace(-1, 1, D_i)``.

Every route calls ``decoder.forward_grouped(code[None], xyzt[None])``, which
computes the code's constant share of the first layer and of the
re-injection layers once per chunk instead of once per point (see
:class:`cellnb.model.Decoder`); the result equals the per-point
``decoder(codes, xyzt)`` call.

Narrow band (coarse-to-fine)
----------------------------
Only the sign of the SDF matters for the masks, and far from the surface the
sign cannot change over a short distance.  :func:`evaluate_narrow_band`
evaluates every ``coarse``-th voxel per axis, then halves the stride level by
level.  A cell of the current level (a box between neighbouring evaluated
nodes) is refined only if the surface may pass through it:

* its corners do not all have the same sign, or
* ``min |SDF(corner)| <= margin * K * h``, where ``h`` is half the cell's
  diagonal (every point of a box lies within ``h`` of one of its corners) and
  ``K`` bounds the field's slope there (SDF units per unit of network
  coordinate).  If ``|SDF(c)| > K * h`` at every corner, the field cannot
  reach zero inside the cell.

The SDF is normalised (:func:`cellnb.sdf.sequence_to_sdf`), so its slope per
grid unit is not known in advance for a learned field.  ``K`` is therefore
measured, locally: the largest gradient norm of the finite differences of
the current level over the cell and its 26 neighbours (all 12 edges of the
cell and the ones around it), or a known bound ``lipschitz`` if that is
larger.  It is local because learned fields ring where the training SDF is
clamped, far from the surface: on a briefly fitted paper decoder the slope
there is 2-3 times the slope at the surface, and a global bound would refine
everything.  A measured slope is an estimate, not a proof: a feature thinner
than the current level's sampling that leaves no trace on the differences
around it could be missed, hence the safety factor ``margin`` (default
:data:`DEFAULT_MARGIN`; larger is safer and slower) and the choice of the
coarsest level (``coarse``).  On analytic SDFs, on a tiny decoder trained on
them and on a fitted paper decoder, the masks equal the dense route's
exactly at 64^3..256^3 (``tests/test_field.py``,
``benchmarks/field_speed.py``).

Nodes of refined cells are evaluated exactly; everywhere else values are
trilinearly interpolated from the coarser level.  Interpolated values keep
the sign of their cell's corners, but their magnitude is only approximate:
use the dense route when exact values far from the surface matter (e.g. to
train on them).

At the last level (stride 2 to 1) only signs are left to decide, so the
same test runs per voxel instead of per cell: a voxel of a refined cell is
evaluated unless one of its nearest nodes ``c``, at distance ``d`` (one voxel
along each axis where the voxel lies between nodes), has ``|SDF(c)| > margin
* K * d`` and the voxel's interpolated value has that node's sign.  This
halves the evaluations of the last level (at 256^3 on a fitted paper decoder:
42.8x fewer than dense instead of 23.3x, masks still identical to dense).

Every frame of a sequence starts from the coarsest level: the levels above
the last are cheap (at 128^3 on the quick profile's pretrained ``dividing``
model about 41k of a frame's 123k evaluations, most of them the stride-2
nodes of the band itself), so starting a frame at stride 2 in the previous
frame's band would save about 10% (12.5k evaluations per frame, measured
with no dilation at all), and dilating that band by twice the change
measured at the coarsest nodes, which a start that keeps the masks equal to
dense needs, made it cost more than the cold start at 128^3 (12 and 40
frames) and 256^3 (8 frames) (issue 14).

Memory
------
The levels above the last are arrays of at most 1/8 of the grid (stride 2);
the last level lists only the voxels of refined cells and fills the output
frame in place, so the work memory of a frame is about one frame's float32
size besides the output (measured 1.1 frames at 256^3, was 4-5).  A grid is
refused with a ``ValueError`` saying how much memory it needs when its
float32 output (``T * D0 * D1 * D2 * 4`` bytes) plus working buffers would
not fit the memory available now (:func:`cellnb.devices.check_memory`).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from scipy import ndimage
from tqdm.auto import tqdm

from cellnb.devices import check_memory, format_bytes
from cellnb.sdf import component_counts, grid_axes, iou

__all__ = [
    "MIN_GRID_SIZE",
    "DEFAULT_CHUNK_POINTS",
    "DEFAULT_MARGIN",
    "METHODS",
    "grid_shape",
    "default_coarse",
    "required_bytes",
    "evaluate_dense",
    "evaluate_narrow_band",
    "evaluate",
    "evaluate_codes",
    "compare_methods",
]

log = logging.getLogger(__name__)

MIN_GRID_SIZE = 8  # smallest grid side accepted (smaller grids cannot hold a cell shape)
DEFAULT_CHUNK_POINTS = 2**17  # points per network call: bounds the activation memory
DEFAULT_MARGIN = 2.0  # safety factor on the measured local slope of the narrow band
COARSE_CELLS = 16  # the default coarsest level has about this many cells along the shortest axis
_BYTES = 4  # float32
_WORK_FRAMES = 1.5  # narrow band: work memory per frame besides the output, in frames (measured 1.1 at 256^3)
_LIVE_ACTIVATIONS = 4  # activation tensors of the widest layer alive at once in forward_grouped
METHODS = ("narrow", "dense")


def grid_shape(shape) -> tuple[int, int, int]:
    """A checked frame shape ``(D0, D1, D2)`` from an int (cube) or 3 ints, each >= :data:`MIN_GRID_SIZE`."""
    try:
        dims = np.broadcast_to(np.asarray(shape), (3,))
    except ValueError:
        raise ValueError(f"shape must be an int or 3 ints (D0, D1, D2), got {shape!r}") from None
    dims = tuple(int(d) for d in dims)
    if min(dims) < MIN_GRID_SIZE:
        raise ValueError(f"grid shape {dims} is too small: each side needs at least {MIN_GRID_SIZE} voxels")
    return dims


def _times(times) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times, dtype=np.float32))
    if t.ndim != 1:
        raise ValueError(f"times must be a 1D list of network times, got shape {t.shape}")
    if t.size == 0:
        raise ValueError("times is empty: ask for at least one frame (e.g. times=cellnb.sdf.time_coords(12))")
    if not np.all(np.isfinite(t)) or t.min() < -1.0 or t.max() > 1.0:
        raise ValueError(
            f"times must lie in [-1, 1] (the span the model was trained on), got [{t.min()}, {t.max()}]; "
            "use cellnb.sdf.time_coords(n_frames) for evenly spaced frames"
        )
    return t


def required_bytes(shape, n_frames: int, *, decoder=None, chunk_points: int = DEFAULT_CHUNK_POINTS,
                   method: str = "dense") -> int:
    """Estimated peak memory of evaluating ``n_frames`` frames of ``shape``, in bytes.

    The float32 output ``T * D0 * D1 * D2 * 4``, plus the network's activations
    for one chunk (``chunk_points`` times the widest layer, a few tensors
    alive at once), plus for the narrow band the work of one frame (:data:`_WORK_FRAMES`).
    """
    dims = grid_shape(shape)
    voxels = int(np.prod(dims))
    total = n_frames * voxels * _BYTES
    if method == "narrow":
        total += int(_WORK_FRAMES * voxels * _BYTES)
    width = max(decoder.config.dims) if decoder is not None else 512
    total += chunk_points * (width * _LIVE_ACTIVATIONS + 8) * _BYTES
    return int(total)


def _check_memory(shape, n_frames, decoder, chunk_points, method, device) -> None:
    needed = required_bytes(shape, n_frames, decoder=decoder, chunk_points=chunk_points, method=method)
    check_memory(needed, what=f"evaluating {n_frames} frames of {grid_shape(shape)}")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        on_device = chunk_points * (max(decoder.config.dims) * _LIVE_ACTIVATIONS + 8) * _BYTES
        if on_device > free:
            raise ValueError(
                f"a chunk of {chunk_points} points needs about {format_bytes(on_device)} on {device} but only "
                f"{format_bytes(free)} is free; lower chunk_points"
            )


def _prepare(decoder, code, device):
    """The decoder moved to the device, a checked ``(1, L)`` code tensor there, and the device."""
    if device is None:
        device = next(decoder.parameters()).device
    device = torch.device(device)
    decoder = decoder.to(device)
    code = torch.as_tensor(code, dtype=torch.float32).detach().to(device)
    length = decoder.config.code_length
    if code.shape != (length,):
        raise ValueError(f"code must have shape ({length},) for this decoder, got {tuple(code.shape)}")
    return decoder, code[None], device


def _check_chunk(chunk_points: int) -> int:
    chunk_points = int(chunk_points)
    if chunk_points < 1:
        raise ValueError(f"chunk_points must be a positive number of points, got {chunk_points}")
    return chunk_points


class _Evaluator:
    """Evaluates one code at grid indices of one frame, in chunks, counting the points."""

    def __init__(self, decoder, code, shape, chunk_points, device):
        self.decoder, self.code, self.device = decoder, code, device
        self.axes = [torch.from_numpy(a).to(device) for a in grid_axes(shape)]
        self.chunk = chunk_points
        self.count = 0

    @torch.no_grad()
    def __call__(self, t: float, i0, i1, i2) -> np.ndarray:
        """SDF at voxels ``(i0[k], i1[k], i2[k])`` at time ``t``; index arrays of equal length."""
        n = len(i0)
        out = np.empty(n, dtype=np.float32)
        was_training = self.decoder.training
        self.decoder.eval()
        try:
            for start in range(0, n, self.chunk):
                stop = min(n, start + self.chunk)
                idx = [torch.as_tensor(i[start:stop], device=self.device) for i in (i0, i1, i2)]
                xyzt = torch.empty((stop - start, 4), dtype=torch.float32, device=self.device)
                for axis in range(3):
                    xyzt[:, axis] = self.axes[axis][idx[axis]]
                xyzt[:, 3] = float(t)
                out[start:stop] = self.decoder.forward_grouped(self.code, xyzt[None])[0].float().cpu().numpy()
        finally:
            self.decoder.train(was_training)
        self.count += n
        return out


def evaluate_dense(decoder, code, *, shape, times, chunk_points: int = DEFAULT_CHUNK_POINTS,
                   device=None) -> np.ndarray:
    """The field of one code at every voxel of a grid, at each of ``times``.

    Parameters
    ----------
    decoder : cellnb.model.Decoder
    code : Tensor or ndarray, shape (L,)
    shape : int or tuple of 3 ints
        Frame shape ``(D0, D1, D2)``; an int means a cube.  At least
        :data:`MIN_GRID_SIZE` per side.
    times : array-like of float, shape (T,)
        Network times in [-1, 1]; ``cellnb.sdf.time_coords(T)`` for T evenly
        spaced frames (any T, more or fewer than in training).
    chunk_points : int
        Points per network call; bounds the activation memory.
    device : str or torch.device, optional
        Where to evaluate; default the decoder's device.  The decoder is moved
        there (``nn.Module.to`` works in place).

    Returns
    -------
    sdf : ndarray of float32, shape (T, D0, D1, D2)
    """
    dims, t = grid_shape(shape), _times(times)
    chunk_points = _check_chunk(chunk_points)
    decoder, code, device = _prepare(decoder, code, device)
    _check_memory(dims, len(t), decoder, chunk_points, "dense", device)
    evaluator = _Evaluator(decoder, code, dims, chunk_points, device)
    out = np.empty((len(t),) + dims, dtype=np.float32)
    n = int(np.prod(dims))
    # Slabs of whole index ranges keep the index arrays as small as one chunk.
    for k, tk in enumerate(t):
        flat = out[k].reshape(-1)
        for start in range(0, n, chunk_points):
            i0, i1, i2 = np.unravel_index(np.arange(start, min(n, start + chunk_points)), dims)
            flat[start : start + len(i0)] = evaluator(tk, i0, i1, i2)
    return out


def default_coarse(shape) -> int:
    """Stride of the coarsest level: the largest power of two leaving about 16 cells on the shortest side."""
    side = min(grid_shape(shape))
    return 2 ** max(0, int(math.floor(math.log2(side / COARSE_CELLS))))


def _nodes(n: int, stride: int) -> np.ndarray:
    """Voxel indices of the nodes of one level along an axis: every ``stride``-th, plus the last."""
    nodes = np.arange(0, n, stride)
    return nodes if nodes[-1] == n - 1 else np.append(nodes, n - 1)


def _left_cell(old: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the cell of ``old`` nodes whose closed interval holds ``x``, the right one at a node."""
    return np.clip(np.searchsorted(old, x, side="right") - 1, 0, len(old) - 2)


def _interp_axis(values: np.ndarray, axis: int, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values`` from nodes ``old`` to nodes ``new`` along one axis."""
    left = _left_cell(old, new)
    w = ((new - old[left]) / (old[left + 1] - old[left])).astype(np.float32)
    shape = [1, 1, 1]
    shape[axis] = -1
    w = w.reshape(shape)
    a = np.take(values, left, axis=axis)
    b = np.take(values, left + 1, axis=axis)
    a += w * (b - a)
    return a


def _corner_extremes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell the minimum and maximum of its 8 corner values."""
    vmin = vmax = None
    for o0 in (0, 1):
        for o1 in (0, 1):
            for o2 in (0, 1):
                c = values[o0 : values.shape[0] - 1 + o0, o1 : values.shape[1] - 1 + o1,
                           o2 : values.shape[2] - 1 + o2]
                vmin = c.copy() if vmin is None else np.minimum(vmin, c, out=vmin)
                vmax = c.copy() if vmax is None else np.maximum(vmax, c, out=vmax)
    return vmin, vmax


def _local_slopes(values: np.ndarray, steps: list[np.ndarray]) -> np.ndarray:
    """Per cell, the largest gradient norm of the forward differences over the cell and its 26 neighbours.

    The neighbourhood covers all 12 edges of the cell (each cell's own
    differences use the 3 edges at its first corner).  Units: SDF per
    network unit.
    """
    d = [np.diff(values, axis=a) / steps[a].reshape([-1 if b == a else 1 for b in range(3)]) for a in range(3)]
    slopes = np.sqrt(d[0][:, :-1, :-1] ** 2 + d[1][:-1, :, :-1] ** 2 + d[2][:-1, :-1, :] ** 2)
    return ndimage.maximum_filter(slopes, size=3, mode="nearest")


def _level_criterion(values: np.ndarray, nodes, unit, margin: float, lipschitz: float):
    """Cells of one level that the surface may cross (module docstring) and each cell's slope bound ``K``."""
    steps = [(np.diff(n) * u).astype(np.float32) for n, u in zip(nodes, unit)]  # float32: work arrays stay small
    half_diag = 0.5 * np.sqrt(steps[0][:, None, None] ** 2 + steps[1][None, :, None] ** 2
                              + steps[2][None, None, :] ** 2)
    vmin, vmax = _corner_extremes(values)
    crossing = (vmin < 0) & (vmax >= 0)
    closest = np.where(crossing, 0.0, np.where(vmin >= 0, vmin, -vmax))  # min |value| over the corners
    bound = np.maximum(_local_slopes(values, steps), lipschitz)
    return crossing | (closest <= margin * bound * half_diag), bound


def _refine(evaluate, t: float, values: np.ndarray, nodes, new, active: np.ndarray) -> np.ndarray:
    """Values on the ``new`` (twice finer) nodes: evaluated on the closed boundary of active cells, else interpolated."""
    for axis in range(3):
        values = _interp_axis(values, axis, nodes[axis], new[axis])
    # New nodes on the closed boundary of a refined cell: OR over the (one or two) cells each touches.
    touch = active
    for axis in range(3):
        right = _left_cell(nodes[axis], new[axis])
        left = np.clip(np.searchsorted(nodes[axis], new[axis], side="left") - 1, 0, len(nodes[axis]) - 2)
        touch = np.take(touch, right, axis=axis) | np.take(touch, left, axis=axis)
    on_old = [np.isin(n, o) for n, o in zip(new, nodes)]
    touch &= ~(on_old[0][:, None, None] & on_old[1][None, :, None] & on_old[2][None, None, :])
    i0, i1, i2 = np.nonzero(touch)
    if len(i0):
        values[i0, i1, i2] = evaluate(t, new[0][i0], new[1][i1], new[2][i2])
    return values


def _finest_level(evaluate, t: float, values: np.ndarray, nodes, active: np.ndarray, bound: np.ndarray, unit,
                  margin: float, out: np.ndarray) -> None:
    """The last refinement, from the nodes of stride 2 (``values``) to every voxel, written into ``out``.

    Every voxel between stride-2 nodes lies 1 voxel from its nodes along
    each axis where it is not on a node: an edge midpoint has 2 nodes at
    distance ``d`` of one voxel, a face centre 4 at ``sqrt(2)`` voxels, a
    cell centre 8 at ``sqrt(3)``.  A voxel of an active cell is evaluated
    unless one of its nodes ``c`` proves its sign, ``|SDF(c)| > margin * K *
    d`` (the per-cell test applied to the voxel, whose distance to that node
    is ``d`` instead of the half-diagonal), and the average of its nodes
    (its interpolated value) has that sign.  Only the voxels of active cells
    are listed (by the 7 kinds of position between nodes), so the work
    follows the band; ``out`` is filled by interpolation in place.
    """
    dims = out.shape
    interior = [np.arange(1, n - 1, 2) for n in dims]  # voxels inside the cells of width 2 along each axis
    counts = [len(n) for n in nodes]
    padded = np.pad(active, 1)  # cell c at c + 1; False outside the grid
    exact = []
    for kind in range(1, 8):
        between = [bool(kind >> a & 1) for a in range(3)]  # along which axes the voxel lies between nodes
        # cells holding the voxel: its own cell c along an axis where it is between nodes, else the cells
        # j - 1 and j on either side of its node j
        options = [[slice(1, 1 + len(interior[a]))] if between[a] else [slice(0, counts[a]), slice(1, counts[a] + 1)]
                   for a in range(3)]
        touched = np.zeros([len(interior[a]) if between[a] else counts[a] for a in range(3)], dtype=bool)
        for s0 in options[0]:
            for s1 in options[1]:
                for s2 in options[2]:
                    touched |= padded[s0, s1, s2]
        j = np.nonzero(touched)
        if not len(j[0]):
            continue
        offsets = [(0, 1) if between[a] else (0,) for a in range(3)]
        corners = np.stack([values[j[0] + o0, j[1] + o1, j[2] + o2]
                            for o0 in offsets[0] for o1 in offsets[1] for o2 in offsets[2]])
        cell = [np.minimum(j[a], active.shape[a] - 1) for a in range(3)]
        limit = margin * bound[cell[0], cell[1], cell[2]] * math.sqrt(sum(u * u for u, b in zip(unit, between) if b))
        positive, negative = (corners > limit).any(axis=0), (corners < -limit).any(axis=0)
        mean = corners.mean(axis=0)
        proven = np.where(mean >= 0, positive & ~negative, negative & ~positive)
        pick = [(interior[a] if between[a] else nodes[a])[j[a][~proven]] for a in range(3)]
        if len(pick[0]):
            exact.append((pick, evaluate(t, *pick)))
    _fill_between_nodes(out, values, nodes)
    for (i0, i1, i2), v in exact:
        out[i0, i1, i2] = v


def _fill_between_nodes(out: np.ndarray, values: np.ndarray, nodes, slab: int = 16) -> None:
    """Trilinear interpolation of the stride-2 node ``values`` to every voxel of ``out``, in place.

    Between two nodes 2 voxels apart the voxel gets their mean; axis by
    axis, in slabs of ``slab`` planes so that no temporary is frame-sized.
    A pass along one axis also averages lanes of the later axes that hold no
    value yet (a later pass overwrites them), so ``out`` is zeroed first:
    whatever it held (``np.empty``: NaN or inf bits) never enters the sums.
    """
    out.fill(0.0)
    out[np.ix_(*nodes)] = values
    for axis in range(3):
        n = out.shape[axis]
        across = (axis + 1) % 3  # the slabs run along another axis
        for s in range(0, out.shape[across], slab):
            view = np.moveaxis(out, (axis, across), (0, 1))[:, s : s + slab]
            mid = view[1 : n - 1 : 2]
            np.add(view[0 : n - 2 : 2], view[2:n:2], out=mid)
            mid *= 0.5


def _narrow_frame(evaluate, t: float, dims, coarse: int, margin: float, lipschitz: float,
                  out: np.ndarray | None = None) -> np.ndarray:
    """One frame by coarse-to-fine refinement (module docstring) into ``out``; ``evaluate(t, i0, i1, i2)``."""
    out = np.empty(dims, dtype=np.float32) if out is None else out
    unit = [2.0 / (n - 1) for n in dims]  # network units per voxel along each axis
    stride = coarse
    nodes = [_nodes(n, stride) for n in dims]
    grid = np.meshgrid(*nodes, indexing="ij")
    values = evaluate(t, *(g.ravel() for g in grid)).reshape(grid[0].shape)
    if stride == 1:
        out[...] = values
        return out
    parent = None  # cells whose parent was refined (None: all, at the coarsest level)
    while True:
        active, bound = _level_criterion(values, nodes, unit, margin, lipschitz)
        if parent is not None:
            active &= parent
        if stride == 2:
            _finest_level(evaluate, t, values, nodes, active, bound, unit, margin, out)
            return out
        stride //= 2
        new = [_nodes(n, stride) for n in dims]
        values = _refine(evaluate, t, values, nodes, new, active)
        cells = [_left_cell(o, n[:-1]) for o, n in zip(nodes, new)]
        parent = active[np.ix_(*cells)]
        nodes = new


def evaluate_narrow_band(decoder, code, *, shape, times, coarse: int | None = None,
                         margin: float = DEFAULT_MARGIN, lipschitz: float = 0.0,
                         chunk_points: int = DEFAULT_CHUNK_POINTS, device=None) -> tuple[np.ndarray, int]:
    """The field of one code on a grid, evaluated densely only near the surface.

    Coarse-to-fine refinement where a slope bound says the surface may pass
    (module docstring): the sign of every voxel, hence the mask ``sdf < 0``,
    matches :func:`evaluate_dense` (verified, not guaranteed, for learned
    fields); values are exact near the surface and interpolated far from it.

    Parameters
    ----------
    decoder : cellnb.model.Decoder
    code : Tensor or ndarray, shape (L,)
    shape : int or tuple of 3 ints
        Frame shape ``(D0, D1, D2)``, at least :data:`MIN_GRID_SIZE` per side.
    times : array-like of float, shape (T,)
        Network times in [-1, 1].
    coarse : int, optional
        Stride of the coarsest level in voxels, a power of two (1 means
        dense); default :func:`default_coarse` (about 16 cells per side:
        4 at 64^3, 8 at 128^3, 16 at 256^3).
    margin : float
        Safety factor (>= 1) on the measured local slope; larger is safer
        and slower.
    lipschitz : float
        A known bound on the field's slope in SDF units per network unit
        (e.g. 1 for an exact SDF in network units); the measured local slope
        is used where it is larger.
    chunk_points : int
        Points per network call.
    device : str or torch.device, optional
        Default the decoder's device (the decoder is moved there).

    Returns
    -------
    sdf : ndarray of float32, shape (T, D0, D1, D2)
    n_evaluations : int
        Points evaluated by the network, over all frames (dense: ``T * D0 * D1 * D2``).
    """
    dims, t = grid_shape(shape), _times(times)
    chunk_points = _check_chunk(chunk_points)
    if coarse is None:
        coarse = default_coarse(dims)
    coarse = int(coarse)
    if coarse < 1 or coarse & (coarse - 1):
        raise ValueError(f"coarse must be a power of two (1, 2, 4, 8, ...), got {coarse}")
    if not margin >= 1.0:
        raise ValueError(f"margin is a safety factor and must be at least 1, got {margin}")
    if not lipschitz >= 0.0:
        raise ValueError(f"lipschitz must be a non-negative slope bound, got {lipschitz}")
    decoder, code, device = _prepare(decoder, code, device)
    _check_memory(dims, len(t), decoder, chunk_points, "narrow", device)
    evaluator = _Evaluator(decoder, code, dims, chunk_points, device)
    out = np.empty((len(t),) + dims, dtype=np.float32)
    for k, tk in enumerate(t):
        before = evaluator.count
        _narrow_frame(evaluator, tk, dims, coarse, float(margin), float(lipschitz), out=out[k])
        log.debug("narrow band t=%+.3f: %d evaluations, %.1fx fewer than dense", tk, evaluator.count - before,
                  np.prod(dims) / max(1, evaluator.count - before))
    return out, evaluator.count


def evaluate(decoder, code, *, shape, times, method: str = "narrow", chunk_points: int = DEFAULT_CHUNK_POINTS,
             device=None) -> tuple[np.ndarray, int]:
    """Either route by name: ``method="narrow"`` (default) or ``"dense"``; returns ``(sdf, n_evaluations)``."""
    if method == "narrow":
        return evaluate_narrow_band(decoder, code, shape=shape, times=times, chunk_points=chunk_points,
                                    device=device)
    if method == "dense":
        sdf = evaluate_dense(decoder, code, shape=shape, times=times, chunk_points=chunk_points, device=device)
        return sdf, int(sdf.size)
    raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")


def compare_methods(decoder, code, *, shape, times, margin: float = DEFAULT_MARGIN, coarse: int | None = None,
                    chunk_points: int = DEFAULT_CHUNK_POINTS, device=None) -> dict:
    """Dense vs narrow band on the same code and grid: evaluations, seconds, mask agreement.

    Returns
    -------
    dict
        ``shape``, ``frames``, ``dense_evaluations``, ``narrow_evaluations``,
        ``evaluations_ratio`` (dense / narrow), ``dense_seconds``,
        ``narrow_seconds``, ``time_ratio`` (dense / narrow), ``iou`` of the
        masks ``sdf < 0`` over all frames, ``voxels_differing``, and the
        26-connected component count of each frame by each route
        (``components_dense``, ``components_narrow``).
    """
    start = time.perf_counter()
    dense = evaluate_dense(decoder, code, shape=shape, times=times, chunk_points=chunk_points, device=device) < 0
    dense_s = time.perf_counter() - start
    start = time.perf_counter()
    sdf, n_narrow = evaluate_narrow_band(decoder, code, shape=shape, times=times, margin=margin, coarse=coarse,
                                         chunk_points=chunk_points, device=device)
    narrow_s = time.perf_counter() - start
    narrow = sdf < 0
    return {
        "shape": list(dense.shape[1:]),
        "frames": int(dense.shape[0]),
        "dense_evaluations": int(dense.size),
        "narrow_evaluations": int(n_narrow),
        "evaluations_ratio": dense.size / n_narrow,
        "dense_seconds": dense_s,
        "narrow_seconds": narrow_s,
        "time_ratio": dense_s / narrow_s,
        "iou": iou(dense, narrow),
        "voxels_differing": int((dense != narrow).sum()),
        "components_dense": [int(c) for c in component_counts(dense)],
        "components_narrow": [int(c) for c in component_counts(narrow)],
    }


def evaluate_codes(decoder, codes, *, shape, times, method: str = "narrow",
                   chunk_points: int = DEFAULT_CHUNK_POINTS, device=None, progress: bool = False) -> np.ndarray:
    """Several codes on the same grid and times (:func:`evaluate` for each).

    Parameters
    ----------
    codes : Tensor or ndarray, shape (n, L)

    Returns
    -------
    sdf : ndarray of float32, shape (n, T, D0, D1, D2)
    """
    codes = torch.as_tensor(codes, dtype=torch.float32)
    if codes.ndim != 2:
        raise ValueError(f"codes must be a matrix (n, L), got shape {tuple(codes.shape)}")
    dims, t = grid_shape(shape), _times(times)
    check_memory(len(codes) * len(t) * int(np.prod(dims)) * _BYTES, what=f"{len(codes)} sequences of {len(t)} frames of {dims}")
    return np.stack([
        evaluate(decoder, code, shape=dims, times=t, method=method, chunk_points=chunk_points, device=device)[0]
        for code in tqdm(codes, desc="decode", unit="code", disable=not progress)
    ])
