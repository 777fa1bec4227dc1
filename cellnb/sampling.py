"""Training points: where in each SDF frame the decoder is fitted.

Two rules pick the points of a frame (Wiesner et al. 2022, Sec. 2.2; the
official ``lib/data.py``):

``"official"``
    ``near_fraction`` of the points from voxels whose normalised SDF is
    ``<= threshold`` (the cell and a thin shell around it), the rest from the
    other voxels.
``"band"``
    ``near_fraction`` of the points from the narrow band ``|SDF| <= threshold``
    around the zero level set, the rest from the other voxels.

Points are voxel centres, drawn uniformly with replacement within each part,
with network coordinates from :func:`cellnb.sdf.grid_axes`.

Either rule may give ``gap_fraction`` of the points (taken from the near
share) to the *gap voxels* of the frame (:func:`gap_voxels`): the background
that a morphological closing of the cell fills, i.e. thin gaps between two
nearby surfaces (the daughters of a division, a cell and its neighbour) and
narrow furrows.  A fit by L1 loss bridges a gap one or two voxels wide: a
line through it holds one or two outside voxels between inside voxels on
both sides, a smooth function cannot follow that and the loss settles with
the majority, inside.  The gap is a small share of the band (1-6% in
the C. elegans divisions at 48^3), so drawing from it on purpose is what
keeps the two cells apart.

:class:`SDFDataset` checks a folder of SDF files and reads frames lazily;
:class:`FramePoints` holds a fixed number of points for each frame of a set of
frames as flat voxel indices and SDF values (8 bytes a point).  Frames are
read one at a time from the HDF5 files (or from an in-memory cache when the
whole data set is small), so memory does not grow with the full grid of every
frame.  The points of frame ``f`` in sampling round ``r`` depend only on
``(seed, r, f)``: any process can draw any frame, and the points do not
depend on how frames are split between processes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm.auto import tqdm

from cellnb.io import read_sdf_frame, read_sdf_h5, sdf_h5_info
from cellnb.sdf import CONNECTIVITY_26, grid_axes, time_coords

__all__ = ["MODES", "NEAR_FRACTION", "NEAR_THRESHOLD", "GAP_RADIUS", "gap_voxels", "sample_frame", "sample_indices",
           "SDFDataset", "FramePoints"]


MODES = ("official", "band")
# The official sampling rule (Wiesner et al. 2022, its data loader): 70% of the points where the
# normalised SDF is at most 0.1, the rest uniformly elsewhere.
NEAR_FRACTION = 0.7
NEAR_THRESHOLD = 0.1
# Closing radius (voxels) of gap_voxels: a closing by a (2r + 1)^3 cube fills background gaps up to
# about 2r voxels wide; r = 2 takes in the one- and two-voxel gaps between touching cells.
GAP_RADIUS = 2
# Below this share of the frame, a part's voxel list is built explicitly; above
# it, points are drawn by rejection from uniform draws, with no index list.
_DENSE_SHARE = 0.25


def _check_sampling(n_points: int, near_fraction: float, threshold: float, mode: str, gap_fraction: float = 0.0,
                    gap_radius: int = GAP_RADIUS) -> None:
    if int(n_points) < 1:
        raise ValueError(f"n_points must be at least 1, got {n_points}")
    if not 0.0 <= near_fraction <= 1.0:
        raise ValueError(f"near_fraction must lie in [0, 1], got {near_fraction}")
    if not 0.0 <= gap_fraction <= near_fraction:
        raise ValueError(f"gap_fraction must lie in [0, near_fraction={near_fraction}] (gap points are part of the "
                         f"near share), got {gap_fraction}")
    if isinstance(gap_radius, bool) or int(gap_radius) != gap_radius or gap_radius < 1:
        raise ValueError(f"gap_radius must be a positive number of voxels, got {gap_radius}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "band" and threshold <= 0:
        raise ValueError(f"threshold must be positive for mode 'band', got {threshold}")


def _draw(mask: np.ndarray, count: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` flat indices drawn uniformly with replacement among the True voxels of a flat mask."""
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if count >= _DENSE_SHARE * mask.size:
        parts, need = [], k
        while need > 0:
            cand = rng.integers(0, mask.size, size=int(need * mask.size / count * 1.25) + 16)
            cand = cand[mask[cand]][:need]
            parts.append(cand)
            need -= cand.size
        return np.concatenate(parts)
    return np.flatnonzero(mask)[rng.integers(0, count, size=k)]


def gap_voxels(sdf: np.ndarray, *, radius: int = GAP_RADIUS) -> np.ndarray:
    """Background voxels in thin gaps between surfaces and in narrow furrows of one frame.

    The voxels that a morphological closing of the cell (``sdf < 0``) by a
    cube of ``2 * radius + 1`` voxels (:data:`cellnb.sdf.CONNECTIVITY_26`,
    ``radius`` times) adds: background between two surfaces less than about
    ``2 * radius`` voxels apart.  A convex cell has none; the two daughters
    of a division have their contact face.

    Parameters
    ----------
    sdf : ndarray, shape (D0, D1, D2)
        SDF of one frame (negative inside; any units).
    radius : int
        Closing radius in voxels (default :data:`GAP_RADIUS`).

    Returns
    -------
    ndarray of bool, shape (D0, D1, D2)
    """
    sdf = np.asarray(sdf)
    if sdf.ndim != 3:
        raise ValueError(f"sdf must be one frame of shape (D0, D1, D2), got shape {sdf.shape}")
    if isinstance(radius, bool) or int(radius) != radius or radius < 1:
        raise ValueError(f"radius must be a positive number of voxels, got {radius}")
    inside = sdf < 0
    return ndimage.binary_closing(inside, structure=CONNECTIVITY_26, iterations=int(radius)) & ~inside


def sample_indices(
    sdf: np.ndarray,
    n_points: int,
    *,
    near_fraction: float = NEAR_FRACTION,
    threshold: float = NEAR_THRESHOLD,
    mode: str = "official",
    gap_fraction: float = 0.0,
    gap_radius: int = GAP_RADIUS,
    gap=None,
    rng=None,
) -> np.ndarray:
    """Flat voxel indices of the training points of one frame.

    Same rule and arguments as :func:`sample_frame`, and ``gap``: the flat
    indices of the frame's gap voxels when already known (else computed with
    :func:`gap_voxels` when ``gap_fraction > 0``).  Returns ``(n_points,)``
    int64 indices into ``sdf.ravel()``: the near points (band or gap), then
    the others, then the gap points.  When one part of the frame is empty,
    its points come from the others (gap points from the near part).
    """
    _check_sampling(n_points, near_fraction, threshold, mode, gap_fraction, gap_radius)
    rng = np.random.default_rng(rng)
    flat = np.asarray(sdf, dtype=np.float32).ravel()
    if not np.isfinite(flat).all():
        raise ValueError("sdf contains NaN or infinite values; rebuild the data set with `cellnb prepare`")
    near = flat <= threshold if mode == "official" else np.abs(flat) <= threshold
    n_near_vox = int(np.count_nonzero(near))
    n_far_vox = flat.size - n_near_vox
    k_near = int(round(n_points * near_fraction))
    if n_near_vox == 0:
        k_near = 0
    elif n_far_vox == 0:
        k_near = n_points
    k_gap = 0
    if gap_fraction > 0:
        if gap is None:
            gap = np.flatnonzero(gap_voxels(sdf, radius=gap_radius))
        if len(gap):
            k_gap = min(int(round(n_points * gap_fraction)), n_points)
            k_near = max(k_near - k_gap, 0) if n_near_vox else 0
    parts = [
        _draw(near, n_near_vox, k_near, rng),
        _draw(~near, n_far_vox, n_points - k_near - k_gap, rng),
    ]
    if k_gap:
        parts.append(np.asarray(gap, dtype=np.int64)[rng.integers(0, len(gap), size=k_gap)])
    return np.concatenate(parts)


def sample_frame(
    sdf: np.ndarray,
    n_points: int,
    *,
    near_fraction: float = NEAR_FRACTION,
    threshold: float = NEAR_THRESHOLD,
    mode: str = "official",
    gap_fraction: float = 0.0,
    gap_radius: int = GAP_RADIUS,
    rng=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the training points of one SDF frame.

    Parameters
    ----------
    sdf : ndarray, shape (D0, D1, D2)
        Normalised SDF of one frame (negative inside, values in [-1, 1]).
    n_points : int
        Number of points.
    near_fraction : float
        Share of the points drawn near the cell (official: 0.7).
    threshold : float
        ``"official"``: near voxels have ``sdf <= threshold``; ``"band"``: near
        voxels have ``|sdf| <= threshold``.  In normalised SDF units.
    mode : {"official", "band"}
        Which rule (see the module docstring).
    gap_fraction : float
        Share of the points drawn from the gap voxels (:func:`gap_voxels`),
        taken from the near share (at most ``near_fraction``); 0: none.
    gap_radius : int
        Closing radius of :func:`gap_voxels`, in voxels.
    rng : int or numpy.random.Generator, optional
        Seed or generator; same seed, same points.

    Returns
    -------
    coords : ndarray of float32, shape (n_points, 3)
        Network coordinates ``(c0, c1, c2)`` of voxel centres, in [-1, 1]
        (:mod:`cellnb.sdf` conventions).
    values : ndarray of float32, shape (n_points,)
        The SDF at those voxels.
    """
    sdf = np.asarray(sdf, dtype=np.float32)
    if sdf.ndim != 3:
        raise ValueError(f"sdf must be one frame of shape (D0, D1, D2), got shape {sdf.shape}")
    idx = sample_indices(sdf, n_points, near_fraction=near_fraction, threshold=threshold, mode=mode,
                         gap_fraction=gap_fraction, gap_radius=gap_radius, rng=rng)
    axes = grid_axes(sdf.shape)
    sub = np.unravel_index(idx, sdf.shape)
    coords = np.stack([axes[i][sub[i]] for i in range(3)], axis=1)
    return coords, sdf.ravel()[idx]


class SDFDataset:
    """A checked folder of SDF files (one sequence each), read frame by frame.

    Parameters
    ----------
    folder : path-like
        Folder holding ``*.h5`` SDF files (from ``cellnb prepare`` or the
        official data sets).

    Raises
    ------
    FileNotFoundError
        If the folder is missing or holds no ``.h5`` file.
    ValueError
        If a file is unreadable, or the files differ in grid size or frame
        count (the message lists which file has which).

    Attributes
    ----------
    files : list of Path
        Sorted by name; sequence ``s`` is ``files[s]``.
    names : list of str
        Sequence names (record ``name``, else the file stem).
    n_frames : int
        Frames per sequence T.
    shape : tuple of 3 ints
        Frame shape ``(D0, D1, D2)``.
    records : list of dict
        Each file's record (empty for official files).
    """

    def __init__(self, folder):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"data folder {folder} does not exist; build it with `cellnb prepare --out {folder}`"
            )
        files = sorted(folder.glob("*.h5"))
        if not files:
            raise FileNotFoundError(
                f"data folder {folder} holds no .h5 SDF files; build them with `cellnb prepare --out {folder}`"
            )
        infos = [sdf_h5_info(f) for f in files]
        frames = {f.name: t for f, (t, _, _) in zip(files, infos)}
        shapes = {f.name: s for f, (_, s, _) in zip(files, infos)}
        if len(set(shapes.values())) > 1:
            raise ValueError(
                f"SDF files in {folder} have different grid sizes: {_describe(shapes)}; "
                "prepare all sequences with one --size"
            )
        if len(set(frames.values())) > 1:
            raise ValueError(
                f"SDF files in {folder} have different frame counts: {_describe(frames)}; "
                "prepare all sequences with one --frames"
            )
        self.folder = folder
        self.files = files
        self.records = [rec for _, _, rec in infos]
        self.names = [rec.get("name") or f.stem for f, rec in zip(files, self.records)]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"sequence names in {folder} are not unique: {self.names}")
        self.n_frames = int(infos[0][0])
        self.shape = tuple(infos[0][1])
        self.times = time_coords(self.n_frames)
        self._sha256 = None

    def __repr__(self) -> str:
        return f"SDFDataset({str(self.folder)!r}: {self.n_sequences} x {self.n_frames} x {self.shape})"

    @property
    def n_sequences(self) -> int:
        return len(self.files)

    @property
    def n_total_frames(self) -> int:
        """All frames of all sequences; frame ``f`` is frame ``f % T`` of sequence ``f // T``."""
        return self.n_sequences * self.n_frames

    @property
    def nbytes(self) -> int:
        """Size of the whole data set in memory as float32."""
        return self.n_total_frames * int(np.prod(self.shape)) * 4

    def frame(self, f: int) -> np.ndarray:
        """Frame ``f`` (global index) as ``(D0, D1, D2)`` float32, checked for NaN."""
        s, t = divmod(int(f), self.n_frames)
        sdf = read_sdf_frame(self.files[s], t)
        if not np.isfinite(sdf).all():
            raise ValueError(
                f"{self.files[s]} frame {t} contains NaN or infinite values; rebuild it with `cellnb prepare`"
            )
        return sdf

    def sequence(self, s: int) -> np.ndarray:
        """Sequence ``s`` as ``(T, D0, D1, D2)`` float32, checked for NaN."""
        sdf, _ = read_sdf_h5(self.files[s])
        if not np.isfinite(sdf).all():
            raise ValueError(f"{self.files[s]} contains NaN or infinite values; rebuild it with `cellnb prepare`")
        return sdf

    def fingerprint(self) -> dict:
        """What a checkpoint records about its data: names, frame count, shape and a content hash.

        ``sha256`` is the SHA-256 of every file's bytes, in order, so data with
        the same names and shapes but other values has another fingerprint.
        Computed once per instance.
        """
        if self._sha256 is None:
            digest = hashlib.sha256()
            for path in self.files:
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        digest.update(block)
            self._sha256 = digest.hexdigest()
        return {"names": list(self.names), "n_frames": self.n_frames, "shape": list(self.shape),
                "sha256": self._sha256}


def _describe(values: dict) -> str:
    return ", ".join(f"{name}: {value}" for name, value in values.items())


class FramePoints:
    """A fixed number of training points for each of a set of frames.

    Parameters
    ----------
    dataset : SDFDataset
    frames : sequence of int
        Global frame indices this pool holds (all frames by default; one
        process of a multi-process run holds its shard).
    points_per_frame : int
    near_fraction, threshold, mode, gap_fraction, gap_radius :
        The sampling rule (:func:`sample_frame`).  The gap voxels of a frame
        are found once and kept (a few hundred indices a frame).
    seed : int
        Base seed: the points of frame ``f`` in round ``r`` are drawn with the
        seed ``(seed, r, f)``.
    cache_bytes : int
        Keep the SDF of the held frames in memory when they take at most this
        many bytes (redrawing is then cheap); otherwise each redraw reads the
        frames from the files again, one at a time.

    Attributes
    ----------
    index : Tensor of int32, shape (F, P)
        Flat voxel index of each point, ``F = len(frames)``.
    values : Tensor of float32, shape (F, P)
        SDF at each point.
    round : int
        The sampling round the points belong to (-1 before the first draw).
    """

    def __init__(
        self,
        dataset: SDFDataset,
        *,
        frames=None,
        points_per_frame: int,
        near_fraction: float = NEAR_FRACTION,
        threshold: float = NEAR_THRESHOLD,
        mode: str = "official",
        gap_fraction: float = 0.0,
        gap_radius: int = GAP_RADIUS,
        seed: int = 0,
        cache_bytes: int = 1 << 30,
    ):
        _check_sampling(points_per_frame, near_fraction, threshold, mode, gap_fraction, gap_radius)
        self.dataset = dataset
        self.frames = np.arange(dataset.n_total_frames) if frames is None else np.asarray(frames, dtype=np.int64)
        if self.frames.size and (self.frames.min() < 0 or self.frames.max() >= dataset.n_total_frames):
            raise ValueError(
                f"frames must lie in [0, {dataset.n_total_frames}), got {self.frames.min()}..{self.frames.max()}"
            )
        self.points_per_frame = int(points_per_frame)
        self.rule = {"near_fraction": float(near_fraction), "threshold": float(threshold), "mode": mode,
                     "gap_fraction": float(gap_fraction), "gap_radius": int(gap_radius)}
        self._gaps: dict[int, np.ndarray] = {}  # frame -> flat indices of its gap voxels (int32)
        self.seed = int(seed)
        self.row = {int(f): i for i, f in enumerate(self.frames)}
        n_vox = int(np.prod(dataset.shape))
        if n_vox >= 2**31:
            raise ValueError(f"frame shape {dataset.shape} has too many voxels for int32 point indices")
        self._cache = None
        if self.frames.size * n_vox * 4 <= cache_bytes:
            self._cache = {}
        self.index = torch.zeros((self.frames.size, self.points_per_frame), dtype=torch.int32)
        self.values = torch.zeros((self.frames.size, self.points_per_frame), dtype=torch.float32)
        self.round = -1
        # voxel index -> network coordinate lookup tables (cellnb.sdf.grid_axes, time_coords)
        self._axes = [torch.from_numpy(a) for a in grid_axes(dataset.shape)]
        self._times = torch.from_numpy(dataset.times)

    @property
    def cached(self) -> bool:
        return self._cache is not None

    @property
    def nbytes(self) -> int:
        """Memory held by the points, the gap voxel lists and the frame cache (when used)."""
        cache = sum(a.nbytes for a in self._cache.values()) if self._cache else 0
        cache += sum(a.nbytes for a in self._gaps.values())
        return self.index.numel() * 4 + self.values.numel() * 4 + cache

    def _frame(self, f: int) -> np.ndarray:
        if self._cache is None:
            return self.dataset.frame(f)
        if f not in self._cache:
            self._cache[f] = self.dataset.frame(f)
        return self._cache[f]

    def resample(self, round_: int, *, progress: bool = False) -> None:
        """Draw the points of every held frame for sampling round ``round_``."""
        for i, f in enumerate(tqdm(self.frames, desc="sampling", unit="frame", disable=not progress, leave=False)):
            frame = self._frame(int(f))
            gap = None
            if self.rule["gap_fraction"] > 0:
                if int(f) not in self._gaps:
                    self._gaps[int(f)] = np.flatnonzero(gap_voxels(frame, radius=self.rule["gap_radius"])).astype(
                        np.int32)
                gap = self._gaps[int(f)]
            sdf = frame.ravel()
            idx = sample_indices(sdf, self.points_per_frame, rng=(self.seed, int(round_), int(f)), gap=gap,
                                 **self.rule)
            self.index[i] = torch.from_numpy(idx.astype(np.int32))
            self.values[i] = torch.from_numpy(sdf[idx])
        self.round = int(round_)

    def to(self, device) -> "FramePoints":
        """Move the points (not the frame cache) to ``device``."""
        self.index = self.index.to(device)
        self.values = self.values.to(device)
        self._axes = [a.to(device) for a in self._axes]
        self._times = self._times.to(device)
        return self

    def batch(self, frames) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The points of some held frames, ready for :meth:`Decoder.forward_grouped`.

        Parameters
        ----------
        frames : sequence of int
            Global frame indices (all must be held).

        Returns
        -------
        sequence : Tensor of int64, shape (B,)
            Sequence index of each frame.
        xyzt : Tensor of float32, shape (B, P, 4)
            Network coordinates of the points.
        values : Tensor of float32, shape (B, P)
            Target SDF.
        """
        frames = [int(f) for f in frames]
        device = self.index.device
        rows = torch.tensor([self.row[f] for f in frames], dtype=torch.int64, device=device)
        seq = torch.tensor([f // self.dataset.n_frames for f in frames], dtype=torch.int64, device=device)
        t = self._times[torch.tensor([f % self.dataset.n_frames for f in frames], device=device)]
        idx = self.index[rows].long()
        _, d1, d2 = self.dataset.shape
        a0, a1, a2 = self._axes
        coords = [a0[idx // (d1 * d2)], a1[(idx // d2) % d1], a2[idx % d2]]
        xyzt = torch.stack([*coords, t[:, None].expand_as(idx)], dim=-1)
        return seq, xyzt, self.values[rows]
