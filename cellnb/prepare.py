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
from cellnb.sdf import component_counts, crop_to_cube, default_clamp, sequence_to_sdf
from cellnb.sequence import MaskSequence
from cellnb.workspace import DataDir, RunDir

__all__ = ["DataConfig", "MIN_SPLIT", "parse_source", "load_source", "split_sequences", "write_dataset", "prepare"]

log = logging.getLogger(__name__)

MIN_SIZE = 8  # smallest cube side (voxels) a cell shape fits in
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
        each sequence's ``meta["rotation"]``.
    """

    n_sequences: int = 8
    frames: int = 12
    size: int = 48
    seed: int = 0
    holdout: float = 0.25
    align: bool = False

    SECTION = "data"

    def validate(self):
        if self.n_sequences < 1:
            raise ValueError(f"data.n_sequences must be at least 1, got {self.n_sequences}")
        if self.frames < 2:
            raise ValueError(f"data.frames must be at least 2, got {self.frames}")
        if self.size < MIN_SIZE:
            raise ValueError(f"data.size must be at least {MIN_SIZE} voxels, got {self.size}")
        if self.seed < 0:
            raise ValueError(f"data.seed must be a non-negative integer, got {self.seed}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"data.holdout must be a share in [0, 1), got {self.holdout}")

    def required_bytes(self) -> int:
        """Estimated peak memory of preparing this data set: every mask, plus one sequence's SDF work."""
        voxels = self.size**3
        return self.n_sequences * self.frames * voxels + voxels * (self.frames * 4 + _SDF_BYTES_PER_VOXEL)


def parse_source(source: str) -> tuple[str, str]:
    """Split ``"kind:argument"`` and check it; returns ``(kind, argument)``."""
    kind, _, arg = source.partition(":")
    if kind == "phantoms":
        if arg not in phantoms.FAMILIES:
            raise ValueError(
                f"unknown phantom family {arg!r} in source {source!r}; "
                f"use one of {', '.join('phantoms:' + f for f in phantoms.FAMILIES)}"
            )
    elif kind == "tiff":
        if not arg:
            raise ValueError(f"source {source!r} needs a path: tiff:PATH (folder of mask*.tif or one .tif)")
    elif kind == "celegans":
        if arg:
            raise ValueError(f"source 'celegans' takes no argument, got {source!r}; set the folder with data_dir")
    else:
        raise ValueError(
            f"unknown source {source!r}; use phantoms:dividing|filopodial|deforming, tiff:PATH or celegans"
        )
    return kind, arg


def load_source(source: str, config: DataConfig, *, data_dir=None, label: int | None = None,
                spacing=(1.0, 1.0, 1.0), progress: bool = True) -> list[MaskSequence]:
    """Mask sequences of a source, all frames ``(size, size, size)``.

    Parameters
    ----------
    source : str
        See the module docstring.
    config : DataConfig
        ``n_sequences`` (phantoms: how many; C. elegans: the most to keep, the
        earliest division windows; ignored for TIFF, one sequence),
        ``frames`` (phantoms and C. elegans windows), ``size``, ``seed``.
    data_dir : path-like, optional
        Folder holding ``celegans-3dmms`` (default ``$CELLNB_DATA_DIR``).
    label, spacing :
        TIFF only: the label to keep (default: the only one; several are
        refused) and the voxel size.
    """
    kind, arg = parse_source(source)
    if kind == "phantoms":
        batch = phantoms.make_batch(arg, config.n_sequences, size=config.size, frames=config.frames, rng=config.seed)
        return [crop_to_cube(seq, config.size, align=True) for seq in batch] if config.align else batch
    if kind == "tiff":
        seq = datasets.read_tiff_sequence(arg, label=label, spacing=spacing)
        return [crop_to_cube(seq, config.size, align=config.align)]
    sequences, _ = datasets.celegans_divisions(data_dir, frames=config.frames, size=config.size,
                                               max_sequences=config.n_sequences, progress=progress)
    return sequences


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
    sequences = load_source(source, config, data_dir=data_dir, progress=progress)
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
    }
    if run is not None:
        run.update_config("data", {"source": source, **config.to_dict()})
        run.update_metrics("data", {k: v for k, v in summary.items() if k not in ("files", "folder")})
    return summary
