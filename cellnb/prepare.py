"""Build an SDF data set on disk from a mask source (the ``prepare`` step).

The data set folder (:class:`cellnb.workspace.DataDir`) is built whole in a
temporary folder and swapped in when complete (:func:`cellnb.io.atomic_folder`):
``overwrite`` replaces the whole data set, never file by file, so no stale
sequence of an earlier call survives, and a failure leaves the old one as it was.
Parameters come from the profile section ``data`` (:class:`DataConfig`).

Sources are named as on the command line:

``phantoms:dividing`` | ``phantoms:filopodial`` | ``phantoms:deforming``
    built-in synthetic families (:mod:`cellnb.phantoms`);
``tiff:PATH``
    a label time-lapse (folder of TIFF frames or one multi-frame TIFF),
    cropped and centred into a cube;
``celegans``
    division sequences from the C. elegans lineage data (:mod:`cellnb.datasets`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cellnb import datasets, phantoms
from cellnb.config import Config
from cellnb.devices import check_memory
from cellnb.io import atomic_folder, check_writable_folder, write_json, write_sdf_h5
from cellnb.lineage import KINDS, sequences_from_lineage
from cellnb.sdf import (
    component_counts,
    crop_to_cube,
    default_clamp,
    resample_time,
    sequence_to_sdf,
)
from cellnb.sequence import MaskSequence
from cellnb.workspace import DataDir, RunDir

__all__ = ["DataConfig", "MIN_SPLIT", "parse_source", "load_source", "split_sequences", "write_dataset", "prepare"]

log = logging.getLogger(__name__)

MIN_SIZE = 8  # smallest cube side (voxels) a cell shape fits in
MAX_DAUGHTER_SHIFT = 4.0  # voxels: beyond it daughters would look pushed apart, not divided
MIN_SPLIT = 4  # fewer sequences than this are too few to hold some out: all train, evaluation warns
# Bytes per voxel of one frame while an SDF is made: the float32 SDF plus scipy's EDT work arrays
# (float64 distances and int32 feature indices, inside and outside).
_SDF_BYTES_PER_VOXEL = 4 + 2 * (8 + 3 * 4)


@dataclass(frozen=True)
class DataConfig(Config):
    """Parameters of :func:`prepare` (profile section ``data``).

    Parameters
    ----------
    n_sequences : int
        Phantoms: how many to draw; C. elegans: the most to keep.
    frames : int
        Frames per sequence.
    size : int
        Cube side in voxels.
    seed : int
        Seed of the phantom batch and of the train / held-out split.
    holdout : float
        Share of the sequences held out from training (seeded, rounded to the
        nearest count): realism is measured on them.  0 keeps them all for
        training; data sets of fewer than :data:`MIN_SPLIT` sequences are not split.
    align : bool
        Put every sequence in its canonical pose (principal axes along the
        grid axes, :func:`cellnb.sdf.canonical_rotation`) so that the codes
        need not spend capacity on orientation; the rotation is recorded in
        each sequence's ``meta["rotation"]``.  A division is turned to the pose
        of its daughters instead: the first axis through them, the larger one
        first, the plane between them in the middle of the cube
        (:mod:`cellnb.lineage`).
    daughter_shift : float
        Divisions of lineage sources: each daughter is moved this many cube
        voxels away from the other along the line through their centroids
        (shapes and volumes kept), so the background gap between them, one
        or two voxels where real daughters touch, widens by twice that.  A
        decoder fitted at a few dozen voxels holds a one-voxel gap for its
        training codes but bridges it for codes between them: new divisions
        then merge back (README, Honest evaluation).  0 keeps them in place.
    kind : {"divisions", "tracks", "cells"}
        Lineage sources (``labels``, ``ctc``, ``celegans``): one sequence per
        division, per track, or one frame per track (:mod:`cellnb.lineage`).
    spacing : tuple of 3 floats or None
        Voxel size Z, Y, X in micrometres of the source's masks; None: from
        the files' ImageJ/OME metadata (a warning when they have none), C.
        elegans 0.225.  Anisotropic voxels are resampled to isotropic cubes
        at physical size.
    axes : str or None
        Axis order of TIFF sources when their metadata are wrong or missing,
        e.g. ``"TZYX"``.
    strict : bool
        Refuse data that cannot be trusted (cells cut by the field of view,
        volume jumps, too small daughters, tracks with gaps) instead of
        warning about them.
    """

    n_sequences: int = 32
    frames: int = 12
    size: int = 48
    seed: int = 0
    holdout: float = 0.25
    align: bool = True
    daughter_shift: float = 2.0
    kind: str = "divisions"
    spacing: tuple[float, ...] | None = None
    axes: str | None = None
    strict: bool = False

    SECTION = "data"

    def validate(self):
        if self.n_sequences < 1:
            raise ValueError(f"data.n_sequences must be at least 1, got {self.n_sequences}")
        if self.kind == "cells" and self.frames != 1:
            raise ValueError(f"data.kind cells makes one frame per cell: set data.frames to 1 (--frames 1), "
                             f"got {self.frames}")
        if self.kind != "cells" and self.frames < 2:
            raise ValueError(f"data.frames must be at least 2, got {self.frames}")
        if self.size < MIN_SIZE:
            raise ValueError(f"data.size must be at least {MIN_SIZE} voxels, got {self.size}")
        if self.seed < 0:
            raise ValueError(f"data.seed must be a non-negative integer, got {self.seed}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"data.holdout must be a share in [0, 1), got {self.holdout}")
        if not 0.0 <= self.daughter_shift <= MAX_DAUGHTER_SHIFT:
            raise ValueError(f"data.daughter_shift must be between 0 and {MAX_DAUGHTER_SHIFT} voxels, got "
                             f"{self.daughter_shift}")
        if self.kind not in KINDS:
            raise ValueError(f"data.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.spacing is not None and (len(self.spacing) != 3 or min(self.spacing) <= 0):
            raise ValueError(f"data.spacing must be three positive voxel sizes Z Y X in um, got {list(self.spacing)}; "
                             "e.g. --spacing 1.0 0.2 0.2")

    def required_bytes(self) -> int:
        """Estimated peak memory of preparing this data set: every mask, plus one sequence's SDF work."""
        voxels = self.size**3
        return self.n_sequences * self.frames * voxels + voxels * (self.frames * 4 + _SDF_BYTES_PER_VOXEL)


SOURCES = "phantoms:dividing|filopodial|deforming, tiff:PATH|GLOB, labels:PATH, ctc:PATH or celegans"


def parse_source(source: str) -> tuple[str, str]:
    """Split ``"kind:argument"`` and check it; returns ``(kind, argument)``."""
    kind, _, arg = source.partition(":")
    if kind == "phantoms":
        if arg not in phantoms.FAMILIES:
            raise ValueError(
                f"unknown phantom family {arg!r} in source {source!r}; "
                f"use one of {', '.join('phantoms:' + f for f in phantoms.FAMILIES)}"
            )
    elif kind in ("tiff", "labels", "ctc"):
        if not arg:
            raise ValueError(f"source {source!r} needs a path: {kind}:PATH")
    elif kind == "celegans":
        if arg:
            raise ValueError(f"source 'celegans' takes no argument, got {source!r}; set the folder with data_dir")
    else:
        raise ValueError(f"unknown source {source!r}; use {SOURCES}")
    return kind, arg


def _time_resampled(seq: MaskSequence, frames: int) -> MaskSequence:
    """A single-cell time-lapse brought to ``frames`` frames (linear on the SDF, :func:`cellnb.sdf.resample_time`)."""
    if seq.n_frames == frames:
        return seq
    if seq.n_frames == 1:
        raise ValueError(f"{seq.name} has one frame; it cannot be resampled to {frames}: use frames=1 for a static "
                         "data set or give time-lapses")
    masks = resample_time(seq.masks, frames, spacing=seq.spacing)
    return MaskSequence(masks, seq.spacing, seq.name, {**seq.meta, "source_frames": seq.n_frames})


def load_source(source: str, config: DataConfig, *, data_dir=None,
                progress: bool = True) -> tuple[list[MaskSequence], list[str]]:
    """Mask sequences of a source, all frames ``(size, size, size)``, ``frames`` frames each, and warnings.

    Parameters
    ----------
    source : str
        See the module docstring.
    config : DataConfig
        ``n_sequences`` (phantoms: how many; lineage sources: the most to
        keep, the earliest in time), ``frames``, ``size``, ``seed``,
        ``kind``, ``spacing``, ``axes``, ``align``, ``strict``.
    data_dir : path-like, optional
        Folder holding ``celegans-3dmms`` (default ``$CELLNB_DATA_DIR``).

    Returns
    -------
    sequences : list of MaskSequence
    warnings : list of str
        What cannot be trusted in the data, one line per kind of problem
        (:class:`cellnb.lineage.Findings`); with ``strict`` an error instead.
    """
    kind, arg = parse_source(source)
    if kind == "phantoms":
        batch = phantoms.make_batch(arg, config.n_sequences, size=config.size, frames=config.frames, rng=config.seed)
        return ([crop_to_cube(seq, config.size, align=True) for seq in batch] if config.align else batch), []
    if kind == "tiff":
        sequences = datasets.read_tiff_sequences(arg, spacing=config.spacing, axes=config.axes)
        cubes = [crop_to_cube(seq, config.size, align=config.align) for seq in sequences]
        return [_time_resampled(seq, config.frames) for seq in cubes], []
    if kind == "labels":
        frames, lineage = datasets.labels_lineage(arg, spacing=config.spacing, axes=config.axes)
    elif kind == "ctc":
        frames, lineage = datasets.ctc_lineage(arg, spacing=config.spacing)
    else:
        frames, lineage = datasets.celegans_lineage(data_dir, spacing=config.spacing, progress=progress)
    sequences, _, warnings = sequences_from_lineage(frames, lineage, kind=config.kind, n_frames=config.frames,
                                                    size=config.size, align=config.align,
                                                    daughter_shift=config.daughter_shift,
                                                    max_sequences=config.n_sequences, strict=config.strict,
                                                    progress=progress)
    if not sequences:
        raise ValueError(f"no {config.kind} sequences of {config.frames} frames in {source}; see the log for why "
                         "each was skipped (e.g. fewer frames, or another --kind)")
    return sequences, warnings


def split_sequences(sequences: list, *, holdout: float, rng=None) -> tuple[list, list]:
    """Split sequences, seeded, into training and held-out ones (``round(holdout * n)`` held out).

    Fewer than :data:`MIN_SPLIT` sequences are not split (all train, with a warning).

    Returns
    -------
    train, heldout : list
        In their original order.
    """
    n = len(sequences)
    k = int(round(holdout * n))
    if holdout > 0 and n < MIN_SPLIT:
        log.warning("%d sequences are too few to hold some out (at least %d are needed); all are used for "
                    "training, and realism will be judged against the training set", n, MIN_SPLIT)
        k = 0
    k = min(max(k, 1 if holdout > 0 and n >= MIN_SPLIT else 0), n - 1)
    held = set(np.random.default_rng(rng).permutation(n)[:k].tolist())
    return [s for i, s in enumerate(sequences) if i not in held], [s for i, s in enumerate(sequences) if i in held]


def write_dataset(
    sequences: list[MaskSequence],
    out,
    *,
    heldout: list[MaskSequence] = (),
    source: str = "",
    clamp: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Convert mask sequences to normalised SDFs and write them as one data set folder.

    One HDF5 file per training sequence, one per held-out sequence in
    ``heldout/``, and ``dataset.json`` (per-sequence frames, volumes,
    components and split), built in a temporary folder and swapped in whole
    (:func:`cellnb.io.atomic_folder`).

    Returns
    -------
    list of Path
        The training ``.h5`` files, in the order of ``sequences``.
    """
    folder = DataDir(out)
    if not sequences:
        raise ValueError("no sequences to write; check the source")
    names = [seq.name for seq in (*sequences, *heldout)]
    if len(set(names)) != len(names):
        raise ValueError("sequence names must be unique; they become file names")
    rows = []
    with atomic_folder(folder.root, overwrite=overwrite) as tmp:
        staging = DataDir(tmp)
        todo = [(seq, "train") for seq in sequences] + [(seq, "heldout") for seq in heldout]
        for seq, split in tqdm(todo, desc="SDF", unit="seq", disable=not progress):
            seq_clamp = default_clamp(max(seq.shape)) if clamp is None else clamp
            sdf, scale = sequence_to_sdf(seq.masks, clamp=seq_clamp)
            record = {"name": seq.name, "source": source, "spacing": list(seq.spacing), "scale": scale,
                      "clamp": seq_clamp, "meta": seq.meta}
            path = staging.sequence_path(seq.name) if split == "train" else staging.heldout_path(seq.name)
            write_sdf_h5(path, sdf, record=record)
            volumes = seq.masks.reshape(seq.n_frames, -1).sum(axis=1)
            rows.append({
                "name": seq.name,
                "split": split,
                "file": path.relative_to(staging.root).as_posix(),
                "frames": seq.n_frames,
                "shape": list(seq.shape),
                "spacing": list(seq.spacing),
                "volume_voxels_min": int(volumes.min()),
                "volume_voxels_max": int(volumes.max()),
                "components": component_counts(seq.masks).tolist(),
                "meta": seq.meta,
            })
        write_json(staging.summary_path, {"source": source, "sequences": rows})
    return [folder.sequence_path(name) for name in names]


def prepare(source: str, out, config: DataConfig | None = None, *, data_dir=None, clamp: float | None = None,
            overwrite: bool = False, progress: bool = True, **params) -> dict:
    """:func:`load_source` then :func:`write_dataset`: the whole ``prepare`` step.

    Everything that can be checked is checked before the source is read: the
    parameters, the memory the data set needs, and the output folder.

    Parameters
    ----------
    source : str
        See the module docstring.
    out : path-like or RunDir
        The data set folder; a :class:`~cellnb.workspace.RunDir` means its
        ``data/`` folder, and the ``data`` sections of its ``config.json`` and
        ``metrics.json`` are written too.
    config : DataConfig, optional
        Default :class:`DataConfig`'s defaults.
    data_dir : path-like, optional
        Folder holding ``celegans-3dmms`` (default ``$CELLNB_DATA_DIR``).
    clamp : float, optional
        Outside SDF clamp in voxels; default :func:`cellnb.sdf.default_clamp`.
    overwrite : bool
        Replace an existing data set (whole, once the new one is complete).
    **params
        Fields of :class:`DataConfig` to change, e.g. ``n_sequences=4``.

    Returns
    -------
    dict
        ``source``, ``folder``, ``files``, ``n_sequences``, ``frames`` (per
        sequence), ``size``, ``seconds`` and ``components`` (name -> per-frame
        component counts).
    """
    start = time.perf_counter()
    config = (config or DataConfig()).replace(**params) if params else (config or DataConfig())
    run = out if isinstance(out, RunDir) else None
    folder = run.data if run is not None else Path(out)
    parse_source(source)
    check_memory(config.required_bytes(), what=f"a data set of {config.n_sequences} x {config.frames} frames of "
                                              f"{config.size}^3")
    check_writable_folder(folder, overwrite=overwrite)
    sequences, warnings = load_source(source, config, data_dir=data_dir, progress=progress)
    train, heldout = split_sequences(sequences, holdout=config.holdout, rng=(config.seed, 0x5917))
    paths = write_dataset(train, folder, heldout=heldout, source=source, clamp=clamp, overwrite=overwrite,
                          progress=progress)
    rows = DataDir(folder).read_summary()["sequences"]
    frames = sorted({row["frames"] for row in rows})
    summary = {
        "source": source,
        "folder": str(folder),
        "files": [str(p) for p in paths],
        "n_sequences": len(rows),
        "n_train": len(train),
        "n_heldout": len(heldout),
        "frames": frames[0] if len(frames) == 1 else frames,
        "size": config.size,
        "seconds": round(time.perf_counter() - start, 2),
        "components": {row["name"]: row["components"] for row in rows},
        "warnings": warnings,
    }
    if run is not None:
        run.update_config("data", {"source": source, **config.to_dict()})
        run.update_metrics("data", {k: v for k, v in summary.items() if k not in ("files", "folder")})
    return summary
