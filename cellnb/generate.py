"""Generating new time-evolving shapes from a trained run (``cellnb generate``).

New latent codes (:mod:`cellnb.latent`) are decoded into SDF sequences at any
number of frames and any grid size (:mod:`cellnb.field`) and exported in the
formats labs use.  Output folder (default ``<run>/generated/<strategy>/``)::

    summary.json              parameters, per-sequence timings and component counts
    codes.npy                 the codes, (n, L) float32, row k = sequence k
    sdf/<name>.h5             SDF in the official HDF5 layout       (format "h5")
    masks/<name>/mask000.tif  label masks, Cell Tracking Challenge  (format "tiff")
    meshes/<name>/frame000.ply  zero level set per frame            (format "mesh")
    gif/<name>.gif            3D render over time                   (format "gif")

Sequence ``k`` is named ``<strategy><k:03d>``.  Labels of a mask frame are its
26-connected components (1, 2, ... in scan order; they are not tracked across
frames).  A frame with no inside voxel has no mesh file (listed under
``empty_frames``).  With ``method="narrow"`` the SDF is exact near the surface
and interpolated far from it (signs always exact, :mod:`cellnb.field`); use
``method="dense"`` for exact values everywhere.

Safety: an existing output folder is refused before any work unless
``overwrite``; everything is written into a hidden temporary folder beside it
and renamed when complete, so a failure leaves no partial output.

Multi-process: under ``torchrun`` (``WORLD_SIZE > 1``) the processes join
one group and process ``r`` generates sequences ``r, r + K, ...``.  The codes
are drawn once from ``seed`` for all ``n`` sequences and decoding is
deterministic, so the output does not depend on the number of processes.
All processes must see the output's parent folder (one file system).  If a
process fails, torchrun stops the others; the output folder is then never
created, but the hidden ``.<out>.tmp-*`` folder may remain and can be
deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from scipy import ndimage
from tqdm.auto import tqdm

from cellnb.devices import process_group, select_device
from cellnb.field import METHODS, check_memory, evaluate, grid_shape, mesh_frame, required_bytes
from cellnb.io import write_ctc_masks, write_json, write_mesh, write_sdf_h5
from cellnb.latent import STRATEGIES, default_sigma, sample_codes
from cellnb.sampling import SDFDataset
from cellnb.sdf import CONNECTIVITY_26, time_coords
from cellnb.train import load_trained
from cellnb.viz.render import render_mesh, save_gif
from cellnb.workspace import RunDir

__all__ = ["FORMATS", "generate", "sequence_name"]

log = logging.getLogger(__name__)

FORMATS = ("h5", "tiff", "mesh", "gif")
SUMMARY_FILE = "summary.json"
CODES_FILE = "codes.npy"
GIF_WINDOW = (320, 320)  # pixels of each animation frame


def sequence_name(strategy: str, index: int) -> str:
    """File name stem of generated sequence ``index``: ``<strategy><index:03d>``."""
    return f"{strategy}{index:03d}"


def _check_inputs(n, strategy, frames, size, method, formats, sigma) -> tuple[tuple[int, int, int], tuple[str, ...]]:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive number of sequences, got {n}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if int(frames) != frames or frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    shape = grid_shape(size)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown format(s) {unknown or formats}; use one or more of {', '.join(FORMATS)}")
    if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive noise scale (or None for the default), got {sigma}")
    return shape, tuple(dict.fromkeys(formats))


def _training_record(run: RunDir, info: dict) -> dict:
    """Spacing, scale and clamp of the training data, or ``{}`` when the data set is gone."""
    folder = run.read_config().get("train", {}).get("data") or run.data
    try:
        dataset = SDFDataset(folder)
    except (FileNotFoundError, ValueError) as err:
        log.warning("training data not readable (%s); generated files record no physical spacing", err)
        return {}
    record = dict(dataset.records[0]) if dataset.records else {}
    record["shape"] = list(info["data"]["shape"])
    return record


def _output_record(train: dict, shape) -> dict:
    """Spacing, scale and clamp of the new grid: the same physical box as the training grid."""
    if not train.get("spacing") or not train.get("shape"):
        return {"spacing": None, "scale": None, "clamp": None}
    ratio = [(n_new - 1) / (n_old - 1) for n_new, n_old in zip(shape, train["shape"])]
    spacing = [float(s) / r for s, r in zip(train["spacing"], ratio)]
    scale = float(train["scale"]) * ratio[0] if train.get("scale") else None
    clamp = float(train["clamp"]) * ratio[0] if train.get("clamp") else None
    return {"spacing": spacing, "scale": scale, "clamp": clamp}


def _labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    labels, count = ndimage.label(mask, structure=CONNECTIVITY_26)
    return labels.astype(np.uint16), int(count)


def _one_sequence(decoder, code, *, name, index, shape, times, method, formats, folder: Path, record: dict,
                  bar) -> dict:
    """Decode one code, write its exports into ``folder``; returns its timings and counts."""
    start = time.perf_counter()
    sdf = np.empty((len(times),) + shape, dtype=np.float32)
    labels = np.zeros((len(times),) + shape, dtype=np.uint16) if "tiff" in formats else None
    spacing = record["spacing"] or (1.0, 1.0, 1.0)
    n_eval, components, empty, meshes = 0, [], [], []
    eval_seconds = 0.0
    for k, t in enumerate(times):
        t0 = time.perf_counter()
        frame, count = evaluate(decoder, code, shape=shape, times=[t], method=method)
        eval_seconds += time.perf_counter() - t0
        sdf[k], n_eval = frame[0], n_eval + count
        frame_labels, n_comp = _labels(sdf[k] < 0)
        components.append(n_comp)
        if n_comp == 0:
            empty.append(k)
        if labels is not None:
            labels[k] = frame_labels
        if "mesh" in formats or "gif" in formats:
            mesh = mesh_frame(sdf[k], spacing=spacing)
            if "mesh" in formats and mesh.n_points > 0:
                write_mesh(folder / "meshes" / name / f"frame{k:03d}.ply", mesh)
            if "gif" in formats:
                meshes.append(mesh)
        bar.update(1)
    if "h5" in formats:
        write_sdf_h5(folder / "sdf" / f"{name}.h5", sdf, record={"name": name, **record})
    if labels is not None:
        write_ctc_masks(folder / "masks" / name, labels)
    if "gif" in formats:
        extent = [(n - 1) * s for n, s in zip(shape, spacing)]
        bounds = (0.0, extent[0], 0.0, extent[1], 0.0, extent[2])
        save_gif([render_mesh(m, window_size=GIF_WINDOW, bounds=bounds) for m in meshes],
                 folder / "gif" / f"{name}.gif")
    seconds = time.perf_counter() - start
    return {
        "name": name,
        "index": index,
        "seconds": seconds,
        "evaluate_seconds": eval_seconds,
        "export_seconds": seconds - eval_seconds,
        "n_evaluations": int(n_eval),
        "components": components,
        "empty_frames": empty,
    }


def _temporary_folder(out: Path, rank: int, world: int) -> tuple[Path, list[Path]]:
    """A hidden folder beside ``out``, made by process 0 and its name shared with the others.

    Also returns the parent folders it had to create (innermost first), to
    remove again if generation fails.
    """
    name, made = [None], []
    if rank == 0:
        parent = out.parent
        while not parent.exists():
            made.append(parent)
            parent = parent.parent
        out.parent.mkdir(parents=True, exist_ok=True)
        name[0] = tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    if world > 1:
        dist.broadcast_object_list(name, src=0)
    return Path(name[0]), made


def _discard(tmp: Path, made: list[Path]) -> None:
    """Remove a failed run's temporary folder and the (empty) parents made for it."""
    shutil.rmtree(tmp, ignore_errors=True)
    for folder in made:
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` to ``out``; an old ``out`` is removed only after the move."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old)


def generate(
    run,
    *,
    n: int = 4,
    strategy: str = "gaussian",
    frames: int = 12,
    size=64,
    seed: int = 0,
    method: str = "narrow",
    formats=("h5",),
    out=None,
    overwrite: bool = False,
    sigma: float | None = None,
    device=None,
    progress: bool = True,
) -> dict:
    """Generate ``n`` new sequences from a trained run and export them.

    Parameters
    ----------
    run : RunDir or path-like
        Run directory with a trained model (``cellnb train``).
    n : int
        Number of sequences.
    strategy : {"random", "gaussian", "perturb", "interpolate"}
        How codes are drawn (:mod:`cellnb.latent`).
    frames : int
        Frames per sequence, evenly spaced over network time [-1, 1] (any
        number, more or fewer than in training).
    size : int or tuple of 3 ints
        Grid shape of a frame (any size >= 8; the physical box is the training one).
    seed : int
        Seed of the codes; same seed, same sequences.
    method : {"narrow", "dense"}
        Field evaluation route (:mod:`cellnb.field`).
    formats : iterable of {"h5", "tiff", "mesh", "gif"}
        Exports (module docstring).
    out : path-like, optional
        Output folder; default ``<run>/generated/<strategy>``.
    overwrite : bool
        Replace an existing output folder.
    sigma : float, optional
        Noise scale of ``random``/``perturb``; default from the spread of the
        learned codes (:func:`cellnb.latent.default_sigma`).
    device : str or torch.device, optional
        Default ``cuda`` if available, else ``cpu``.
    progress : bool
        Show a progress bar (process 0 only).

    Returns
    -------
    summary : dict
        ``out``, ``n``, ``strategy``, ``frames``, ``size``, ``method``,
        ``formats``, ``seed``, ``sigma``, ``seconds`` (wall time of the call),
        ``seconds_per_sequence`` (mean), ``world_size``, ``record`` (spacing,
        scale, clamp of the new grid) and ``sequences``: per sequence
        ``name``, ``index``, ``seconds``, ``evaluate_seconds``,
        ``export_seconds``, ``n_evaluations``, ``components`` (per frame) and
        ``empty_frames``.  Also written to ``summary.json`` and, in short, to
        the ``generate`` section of the run's ``metrics.json`` under the
        output folder's name.

    Raises
    ------
    ValueError
        Bad arguments, or a grid that does not fit memory (saying how much it needs).
    FileNotFoundError
        No trained model in ``run``.
    FileExistsError
        ``out`` exists and ``overwrite`` is False.
    """
    start = time.perf_counter()
    shape, formats = _check_inputs(n, strategy, frames, size, method, formats, sigma)
    run = run if isinstance(run, RunDir) else RunDir(run)
    out = Path(out) if out is not None else run.generated / strategy
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) or choose another --out")
    run.require_checkpoint()
    with process_group(select_device(device)) as (rank, world, device):
        decoder, learned, _, info = load_trained(run, device=device)
        needed = required_bytes(shape, frames, decoder=decoder, method=method)
        needed += frames * int(np.prod(shape)) * (2 if "tiff" in formats else 0)  # uint16 labels
        check_memory(needed, what=f"a sequence of {frames} frames of {shape}")
        if sigma is None and strategy in ("random", "perturb"):
            sigma = default_sigma(strategy, learned.cpu())
        codes = sample_codes(strategy, learned.cpu(), int(n), sigma=sigma, rng=seed)
        record = _output_record(_training_record(run, info), shape)
        meta = {"strategy": strategy, "seed": int(seed), "sigma": sigma, "method": method, "run": str(run.root)}
        times = time_coords(int(frames))
        mine = list(range(rank, int(n), world))
        tmp, made = _temporary_folder(out, rank, world)
        try:
            rows = []
            with tqdm(total=len(mine) * len(times), desc=f"generate {strategy}", unit="frame",
                      disable=not progress or rank != 0) as bar:
                for i in mine:
                    name = sequence_name(strategy, i)
                    seq_record = {**record, "source": f"generated:{strategy}", "meta": {**meta, "index": i}}
                    rows.append(_one_sequence(decoder, torch.from_numpy(codes[i]), name=name, index=i, shape=shape,
                                              times=times, method=method, formats=formats, folder=tmp,
                                              record=seq_record, bar=bar))
            if world > 1:
                gathered = [None] * world
                dist.all_gather_object(gathered, rows)
                rows = [r for part in gathered for r in part]
            rows.sort(key=lambda r: r["index"])
            summary = {
                "out": str(out),
                "n": int(n),
                "strategy": strategy,
                "frames": int(frames),
                "size": list(shape),
                "method": method,
                "formats": list(formats),
                "seed": int(seed),
                "sigma": sigma,
                "world_size": world,
                "record": record,
                "seconds_per_sequence": float(np.mean([r["seconds"] for r in rows])),
                "sequences": rows,
            }
            if rank == 0:
                np.save(tmp / CODES_FILE, codes)
                summary["seconds"] = time.perf_counter() - start
                write_json(tmp / SUMMARY_FILE, summary)
            if world > 1:
                dist.barrier()
            if rank == 0:
                _replace(tmp, out)
        except BaseException:
            if rank == 0:
                _discard(tmp, made)
            raise
        if world > 1:
            dist.barrier()
        summary["seconds"] = time.perf_counter() - start
        if rank == 0:
            section = run.read_metrics().get("generate", {})
            section[out.name] = {k: summary[k] for k in ("n", "frames", "size", "method", "seconds",
                                                          "seconds_per_sequence")}
            section[out.name]["evaluations_per_sequence"] = float(np.mean([r["n_evaluations"] for r in rows]))
            run.update_metrics("generate", section)
        log.info("generated %d sequences into %s in %.1f s", n, out, summary["seconds"])
        return summary
