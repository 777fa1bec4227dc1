"""Build an SDF data set on disk from a mask source (the ``prepare`` step).

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

from pathlib import Path

from tqdm.auto import tqdm

from cellnb import datasets, phantoms
from cellnb.io import write_json, write_sdf_h5
from cellnb.sdf import crop_to_cube, default_clamp, sequence_to_sdf
from cellnb.sequence import MaskSequence

__all__ = ["parse_source", "load_source", "write_dataset", "prepare"]


SUMMARY_FILE = "dataset.json"


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


def load_source(
    source: str,
    *,
    n_sequences: int = 8,
    frames: int = 12,
    size: int = 48,
    seed=0,
    data_dir=None,
    label: int | None = None,
    spacing=(1.0, 1.0, 1.0),
) -> list[MaskSequence]:
    """Mask sequences of a source, all frames ``(size, size, size)``.

    Parameters
    ----------
    source : str
        See the module docstring.
    n_sequences : int
        Phantoms: how many to draw; C. elegans: the most to keep (the
        earliest division windows); ignored for TIFF (one sequence).
    frames : int
        Frames per sequence (phantoms and C. elegans windows).
    size : int
        Cube side in voxels.
    seed : int
        Seed of the phantom batch.
    data_dir : path-like, optional
        Folder holding ``celegans-3dmms`` (default ``$CELLNB_DATA_DIR``).
    label, spacing :
        TIFF only: the label to keep (default all foreground) and the voxel size.
    """
    kind, arg = parse_source(source)
    if n_sequences < 1:
        raise ValueError(f"n_sequences must be at least 1, got {n_sequences}")
    if kind == "phantoms":
        return phantoms.make_batch(arg, n_sequences, size=size, frames=frames, rng=seed)
    if kind == "tiff":
        seq = datasets.read_tiff_sequence(arg, label=label, spacing=spacing)
        return [crop_to_cube(seq, size)]
    sequences, _ = datasets.celegans_divisions(data_dir, frames=frames, size=size, max_sequences=n_sequences)
    return sequences


def write_dataset(
    sequences: list[MaskSequence],
    out,
    *,
    source: str = "",
    clamp: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Convert mask sequences to normalised SDFs and write one HDF5 file each.

    Also writes ``dataset.json`` (per-sequence frames, volumes and components).
    Nothing is written if any target exists and ``overwrite`` is False.

    Returns
    -------
    list of Path
        The ``.h5`` files, in the order of ``sequences``.
    """
    out = Path(out)
    if not sequences:
        raise ValueError("no sequences to write; check the source")
    paths = [out / f"{seq.name}.h5" for seq in sequences]
    if len(set(paths)) != len(paths):
        raise ValueError("sequence names must be unique; they become file names")
    existing = [p for p in paths + [out / SUMMARY_FILE] if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists; pass overwrite=True (--overwrite) to replace the data set")
    rows = []
    for seq, path in zip(tqdm(sequences, desc="SDF", unit="seq", disable=not progress), paths):
        size = max(seq.shape)
        seq_clamp = default_clamp(size) if clamp is None else clamp
        sdf, scale = sequence_to_sdf(seq.masks, clamp=seq_clamp)
        record = {
            "name": seq.name,
            "source": source,
            "spacing": list(seq.spacing),
            "scale": scale,
            "clamp": seq_clamp,
            "meta": seq.meta,
        }
        write_sdf_h5(path, sdf, record=record, overwrite=overwrite)
        volumes = seq.masks.reshape(seq.n_frames, -1).sum(axis=1)
        rows.append(
            {
                "name": seq.name,
                "file": path.name,
                "frames": seq.n_frames,
                "shape": list(seq.shape),
                "spacing": list(seq.spacing),
                "volume_voxels_min": int(volumes.min()),
                "volume_voxels_max": int(volumes.max()),
                "meta": seq.meta,
            }
        )
    write_json(out / SUMMARY_FILE, {"source": source, "sequences": rows}, overwrite=True)
    return paths


def prepare(
    source: str,
    out,
    *,
    n_sequences: int = 8,
    frames: int = 12,
    size: int = 48,
    seed=0,
    data_dir=None,
    clamp: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """:func:`load_source` then :func:`write_dataset`: the whole ``prepare`` step."""
    if size < 8:
        raise ValueError(f"size must be at least 8 voxels, got {size}")
    if frames < 2:
        raise ValueError(f"frames must be at least 2, got {frames}")
    sequences = load_source(source, n_sequences=n_sequences, frames=frames, size=size, seed=seed, data_dir=data_dir)
    return write_dataset(sequences, out, source=source, clamp=clamp, overwrite=overwrite, progress=progress)
