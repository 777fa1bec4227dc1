"""Generating new time-evolving shapes from a trained run (``cellnb generate``).

New latent codes (:mod:`cellnb.latent`) are decoded into SDF sequences at any
number of frames and any grid size (:mod:`cellnb.field`) and exported in the
formats labs use (:mod:`cellnb.export`).  The output folder (default
``<run>/generated/<strategy>/``) is a :class:`cellnb.workspace.GeneratedDir`.

Sequence ``k`` is named ``<strategy><k:03d>``.  A frame with no inside voxel
is listed under ``empty_frames``.  With ``method="narrow"`` the SDF is exact near the surface
and interpolated far from it (signs always exact, :mod:`cellnb.field`); use
``method="dense"`` for exact values everywhere.

Safety: an existing output folder is refused before any work unless
``overwrite``; everything is written into a hidden temporary folder beside it
and swapped in when complete (:func:`cellnb.io.atomic_folder`), so a failure
or Ctrl-C leaves no partial output and the old folder as it was.

Multi-process: under ``torchrun`` (``WORLD_SIZE > 1``) the processes join
one group and process ``r`` generates sequences ``r, r + K, ...``.  The codes
are drawn once from ``seed`` for all ``n`` sequences and decoding is
deterministic, so the output does not depend on the number of processes.
All processes must see the output's parent folder (one file system).  If a
process fails, torchrun stops the others; the output folder is then never
created, but the hidden ``.<out>.tmp-*`` folder may remain and can be
deleted.

Plausible cells only (``plausible``): a drawn code whose cell breaks the
family's topology rule (:func:`cellnb.compare.topology_plausible`: a division
that merges back, a part that breaks off) is given up at the first frame that
rules it out (:func:`cellnb.compare.topology_possible`) and the next drawn code
takes its place, up to ``redraws`` extra codes per sequence; the codes are drawn
once from ``seed``, and the ``n`` kept are the first plausible ones in the order
drawn, so the output still does not depend on the number of processes.  The
summary's ``screen`` says how many codes were drawn and what share was
plausible as decoded (the decoder's raw rate, reported beside the kept set's);
if too few are, the rest of the ``n`` are filled with the first implausible
ones, and a warning says so.

Starting from given codes (``from_codes``, e.g. the ``codes.npz`` of
``cellnb fit``: codes of a lab's own cells): ``perturb`` or ``interpolate``
make ``n`` sequences from each code (:func:`cellnb.latent.codes_around`);
``interpolate`` goes from the code (weight 0) to its nearest training code
or to the training code named by ``towards`` (weight 1).  The set is named
``<strategy>-from-<folder of the codes file>`` by default.

Parameters come from the profile section ``generate`` (:class:`GenerateConfig`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from scipy.spatial.transform import Rotation
from tqdm.auto import tqdm

from cellnb.checkpoint import load_trained
from cellnb.compare import topology_plausible, topology_possible
from cellnb.config import Config
from cellnb.devices import check_memory, process_group, select_device
from cellnb.errors import Interrupted
from cellnb.export import check_formats, export_ctc, export_sequence
from cellnb.field import METHODS, evaluate, grid_shape, required_bytes
from cellnb.fit import read_codes
from cellnb.io import (
    check_writable_folder,
    discard_folder,
    swap_in,
    temporary_folder,
    write_json,
)
from cellnb.latent import AROUND, STRATEGIES, LatentModel, codes_around, sample_codes
from cellnb.sampling import SDFDataset
from cellnb.sdf import component_counts, rotate_sdf, time_coords
from cellnb.signals import check_interrupt
from cellnb.workspace import GeneratedDir, RunDir

__all__ = ["ORIENTATIONS", "GenerateConfig", "generate", "rotations", "sequence_name"]

log = logging.getLogger(__name__)

RECOMMENDED = "recommended"  # the strategy the run's evaluation recommends (its latent.npz)
FALLBACK_STRATEGY = "gaussian"  # what "recommended" means before any evaluation
ORIENTATIONS = ("canonical", "training", "uniform")  # poses of new cells (GenerateConfig.orientation)


@dataclass(frozen=True)
class GenerateConfig(Config):
    """Parameters of :func:`generate` (profile section ``generate``).

    Parameters
    ----------
    n : int
        Number of sequences.
    strategy : {"recommended", "random", "gaussian", "gmm", "kde", "perturb", "interpolate"}
        How codes are drawn (:mod:`cellnb.latent`); ``recommended``: the
        latent model the run's evaluation chose (``latent.npz``, written by
        :func:`cellnb.evaluate.evaluate_run`), else ``gaussian``.
    frames : int
        Frames per sequence, evenly spaced over network time [-1, 1] (any
        number, more or fewer than in training).
    size : int
        Grid side of a frame (any size >= 8; the physical box is the training one).
    seed : int
        Seed of the codes; same seed, same sequences.
    method : {"narrow", "dense"}
        Field evaluation route (:mod:`cellnb.field`).
    formats : tuple of {"h5", "tiff", "mesh", "gif", "mp4", "ctc"}
        Exports (:mod:`cellnb.export`); ``ctc`` (tracking ground truth, a few
        cells per field) is made from the SDF files, so ``h5`` comes with it.
    cells_per_field : int
        Generated cells placed in one field of a ``ctc`` export.
    scale : float
        Temperature of the latent model: every component's standard
        deviation times this (1: as fitted; with ``recommended``, at the
        temperature the evaluation chose, times this).
    strategies : tuple of str
        The generated sets notebook 03 makes and notebook 05 compares: a
        strategy, or ``strategy@scale`` for another temperature (e.g. ``kde@0.5``).
    plausible : bool or None
        Keep only cells whose topology is plausible for the family, redrawing
        the others (module docstring).  None: as the recommended latent model
        was evaluated (``strategy="recommended"``), else False.  A set spec
        ends in ``+plausible`` for it (e.g. ``gmm+plausible``).
    redraws : int
        With ``plausible``: at most this many extra codes drawn per sequence.
    orientation : {"canonical", "training", "uniform"}
        Pose of the new cells.  ``canonical``: as decoded, in the pose the
        training cells were aligned to (``data.align``; what evaluation
        compares with the held-out cells, aligned alike).  ``training``: each
        turned by the recorded rotation of a training cell drawn at random, so
        cells come out in the orientations real cells have (a synthetic
        microscopy field); ``uniform``: by a rotation drawn uniformly from
        SO(3).  Seeded by ``seed``; each sequence records its ``rotation``.
    """

    n: int = 16
    strategy: str = RECOMMENDED
    frames: int = 12
    size: int = 48
    seed: int = 0
    method: str = "narrow"
    formats: tuple[str, ...] = ("h5",)
    scale: float = 1.0
    cells_per_field: int = 1
    strategies: tuple[str, ...] = ("random", "gaussian", "gmm", "kde", "perturb")
    orientation: str = "canonical"
    plausible: bool | None = None
    redraws: int = 8

    SECTION = "generate"

    def validate(self):
        if self.n < 1:
            raise ValueError(f"generate.n must be a positive number of sequences, got {self.n}")
        if self.strategy != RECOMMENDED and self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; use {RECOMMENDED} or one of {', '.join(STRATEGIES)}")
        for spec in self.strategies:
            parse_set(spec)
        if self.frames < 1:
            raise ValueError(f"generate.frames must be at least 1, got {self.frames}")
        grid_shape(self.size)
        if self.seed < 0:
            raise ValueError(f"generate.seed must be a non-negative integer, got {self.seed}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; use one of {', '.join(METHODS)}")
        check_formats(self.formats)
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"unknown orientation {self.orientation!r}; use one of {', '.join(ORIENTATIONS)}")
        if self.cells_per_field < 1:
            raise ValueError(f"generate.cells_per_field must be at least 1, got {self.cells_per_field}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"generate.scale must be a positive temperature, got {self.scale}")
        if self.redraws < 0:
            raise ValueError(f"generate.redraws must be a non-negative number of extra codes, got {self.redraws}")


PLAUSIBLE = "+plausible"  # the ending of a set spec that keeps plausible cells only (GenerateConfig.plausible)


def set_name(strategy: str, scale: float = 1.0, plausible: bool = False) -> str:
    """Folder name of a generated set: the strategy, ``@scale`` at another temperature than 1, ``+plausible``."""
    return (strategy if scale == 1.0 else f"{strategy}@{scale:g}") + (PLAUSIBLE if plausible else "")


def parse_set(spec: str) -> dict:
    """The :class:`GenerateConfig` fields of a set spec: ``"kde@0.5+plausible"`` ->
    ``{"strategy": "kde", "scale": 0.5, "plausible": True}``; a plain strategy has scale 1."""
    plausible = spec.endswith(PLAUSIBLE)
    strategy, _, scale = spec.removesuffix(PLAUSIBLE).partition("@")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} in {spec!r}; use one of {', '.join(STRATEGIES)}, "
                         f"optionally with @SCALE and {PLAUSIBLE}")
    try:
        value = float(scale) if scale else 1.0
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"the scale in {spec!r} must be a positive number, e.g. {strategy}@0.5")
    return {"strategy": strategy, "scale": value, "plausible": plausible}


def sequence_name(strategy: str, index: int) -> str:
    """File name stem of generated sequence ``index``: ``<strategy><index:03d>``."""
    return f"{strategy}{index:03d}"


def _training_records(run: RunDir, info: dict) -> list[dict]:
    """Each training sequence's record (spacing, scale, clamp, meta), or ``[]`` when the data set is gone.

    A checkpoint that carries the records in its data entry (a pretrained model's,
    :mod:`cellnb.pretrained`) needs no data set.
    """
    if info["data"].get("records") is not None:
        return [{**r, "shape": list(info["data"]["shape"])} for r in info["data"]["records"]]
    try:
        dataset = SDFDataset(run.training_data())
    except (FileNotFoundError, ValueError) as err:
        log.warning("training data not readable (%s); generated files record no physical spacing", err)
        return []
    return [{**r, "shape": list(info["data"]["shape"])} for r in dataset.records]


def _size_column(codes: np.ndarray, records: list[dict]) -> dict | None:
    """How the log voxel size of the training sequences joins their codes as one more column.

    The column is the log size standardised to the codes' spread, so every
    latent model (an isotropic ``random`` one included) draws sizes as
    spread as the training ones, jointly with the shapes.  None when the
    sizes are unknown or all equal (phantoms).
    """
    sizes = [r.get("spacing") for r in records]
    if len(sizes) != len(codes) or any(not s for s in sizes):
        return None
    logs = np.log([float(s[0]) for s in sizes])
    if np.ptp(logs) <= 1e-9:
        return None
    return {"mean": float(logs.mean()), "sd": float(logs.std()), "spread": float(codes.std()), "values": logs.tolist()}


def _features(codes: np.ndarray, size: dict | None) -> np.ndarray:
    if size is None:
        return codes
    column = (np.asarray(size["values"]) - size["mean"]) / size["sd"] * size["spread"]
    return np.column_stack([codes, column])


def _split_features(samples: np.ndarray, size: dict | None, code_length: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes and voxel sizes (or None) of samples drawn in the joint space of :func:`_features`."""
    codes = np.ascontiguousarray(samples[:, :code_length], dtype=np.float32)
    if size is None:
        return codes, None
    logs = samples[:, code_length] / size["spread"] * size["sd"] + size["mean"]
    return codes, np.exp(logs)


def _output_record(train: dict, shape) -> dict:
    """Spacing, scale and clamp of the new grid: the same physical box as the training grid."""
    if not train.get("spacing") or not train.get("shape"):
        return {"spacing": None, "scale": None, "clamp": None}
    ratio = [(n_new - 1) / (n_old - 1) for n_new, n_old in zip(shape, train["shape"])]
    spacing = [float(s) / r for s, r in zip(train["spacing"], ratio)]
    scale = float(train["scale"]) * ratio[0] if train.get("scale") else None
    clamp = float(train["clamp"]) * ratio[0] if train.get("clamp") else None
    return {"spacing": spacing, "scale": scale, "clamp": clamp}


def rotations(orientation: str, n: int, records: list[dict], *, rng) -> list[np.ndarray | None]:
    """The rotation of each of ``n`` new cells (:attr:`GenerateConfig.orientation`), None for ``canonical``.

    Raises
    ------
    ValueError
        ``training`` when no training cell recorded a rotation (data prepared
        without ``align``: the cells already are in their own poses).
    """
    if orientation == "canonical":
        return [None] * n
    rng = np.random.default_rng(rng)
    if orientation == "uniform":
        return list(Rotation.random(n, random_state=rng).as_matrix())
    recorded = [np.asarray((r.get("meta") or {}).get("rotation"), dtype=float) for r in records
                if (r.get("meta") or {}).get("rotation") is not None]
    if not recorded:
        raise ValueError("orientation training needs training cells aligned to a canonical pose (data.align, "
                         "prepare --align); these cells kept their own poses: use orientation canonical")
    return [recorded[i] for i in rng.integers(len(recorded), size=n)]


def _one_sequence(decoder, code, *, name, index, shape, times, method, formats, folder: GeneratedDir, record: dict,
                  bar, rotation=None) -> dict:
    """Decode one code, write its exports into ``folder``; returns its timings and counts."""
    start = time.perf_counter()
    sdf = np.empty((len(times),) + shape, dtype=np.float32)
    n_eval = 0
    for k, t in enumerate(times):
        frame, count = evaluate(decoder, code, shape=shape, times=[t], method=method)
        sdf[k], n_eval = frame[0], n_eval + count
        bar.update(1)
        check_interrupt()
    if rotation is not None:
        sdf = rotate_sdf(sdf, rotation)
        record = {**record, "meta": {**record["meta"], "rotation": np.asarray(rotation).tolist()}}
    eval_seconds = time.perf_counter() - start
    components = component_counts(sdf < 0).tolist()
    per_sequence = tuple(f for f in formats if f != "ctc") + (("h5",) if "ctc" in formats else ())
    export_sequence(folder, name, sdf, formats=tuple(dict.fromkeys(per_sequence)), record=record)
    seconds = time.perf_counter() - start
    return {
        "name": name,
        "index": index,
        "seconds": seconds,
        "evaluate_seconds": eval_seconds,
        "export_seconds": seconds - eval_seconds,
        "n_evaluations": int(n_eval),
        "components": components,
        "empty_frames": [k for k, c in enumerate(components) if c == 0],
    }


def _default_name(run: RunDir, config: GenerateConfig) -> str:
    """The set name of what ``config`` draws (:func:`set_name`), ``recommended`` resolved to the evaluated set."""
    scale = config.scale
    if config.strategy == RECOMMENDED and run.latent_model.is_file():
        scale *= LatentModel.load(run.latent_model).scale
    return set_name(_resolve(run, config.strategy), scale, _plausible(run, config))


def _resolve(run: RunDir, strategy: str) -> str:
    """The strategy ``recommended`` stands for in this run (its latent model's), else the strategy itself."""
    if strategy != RECOMMENDED:
        return strategy
    if run.latent_model.is_file():
        return LatentModel.load(run.latent_model).strategy
    log.info("no evaluation has recommended a latent model for %s yet; using %s", run.root, FALLBACK_STRATEGY)
    return FALLBACK_STRATEGY


def _plausible(run: RunDir, config: GenerateConfig) -> bool:
    """Whether this call keeps plausible cells only: as asked, else as the recommended set was made."""
    if config.plausible is not None:
        return config.plausible
    if config.strategy == RECOMMENDED and run.latent_model.is_file():
        return bool(LatentModel.load(run.latent_model).info.get("plausible", False))
    return False


def _draw(run: RunDir, config: GenerateConfig, learned: np.ndarray, records: list[dict], count: int):
    """``(strategy, samples, model, size column)``: ``count`` codes (and sizes) drawn for a generated set.

    ``recommended`` with an evaluated run samples the run's saved latent
    model; any other strategy fits its model to the learned codes (and the
    training sizes, :func:`_size_column`) now.
    """
    if config.strategy == RECOMMENDED and run.latent_model.is_file():
        model = LatentModel.load(run.latent_model)
        model = model.with_scale(model.scale * config.scale)  # the temperature it was evaluated at, times scale
        size = model.info.get("size")
        return model.strategy, model.sample(count, rng=config.seed), model, size
    strategy = _resolve(run, config.strategy)
    size = _size_column(learned, records)
    samples, model = sample_codes(strategy, _features(learned, size), count, scale=config.scale, rng=config.seed)
    if model is not None:
        model.info["size"] = size
    return strategy, samples, model, size


def _decodes_plausibly(decoder, code, *, shape, times, method, family) -> tuple[bool, int]:
    """``(plausible, frames decoded)``: decode frame after frame until the topology rules the cell out."""
    counts = []
    for t in times:
        frame, _ = evaluate(decoder, code, shape=shape, times=[t], method=method)
        counts.append(int(component_counts(frame < 0)[0]))
        check_interrupt()
        if not topology_possible(counts, family):
            return False, len(counts)
    return topology_plausible(counts, family), len(counts)


def _screen(decoder, codes: np.ndarray, n: int, *, shape, times, method, family, rank, world, progress) -> tuple:
    """``(chosen, screen)``: the indices of the first ``n`` drawn codes whose cells are plausible, and a record.

    Codes are decoded in the order drawn, in rounds shared among the
    processes, until ``n`` are plausible or none are left; the choice depends
    only on the codes, not on the number of processes.  Too few plausible:
    the first implausible ones fill the rest (with a warning).
    """
    verdicts, frames, start = {}, 0, 0
    with tqdm(total=n, desc="screen topology", unit="cell", disable=not progress or rank != 0) as bar:
        while start < len(codes) and sum(verdicts.values()) < n:
            stop = min(len(codes), start + max(n - sum(verdicts.values()), world))
            mine = {i: _decodes_plausibly(decoder, torch.from_numpy(codes[i]), shape=shape, times=times,
                                          method=method, family=family) for i in range(start + rank, stop, world)}
            parts = [mine]
            if world > 1:
                parts = [None] * world
                dist.all_gather_object(parts, mine)
            for part in parts:
                for i, (ok, decoded) in part.items():
                    verdicts[i], frames = ok, frames + decoded
            bar.update(min(n, sum(verdicts.values())) - bar.n)
            bar.set_postfix(drawn=len(verdicts))
            start = stop
    order = sorted(verdicts)
    kept = [i for i in order if verdicts[i]][:n]
    filled = [i for i in order if not verdicts[i]][: n - len(kept)]
    drawn, plausible = len(verdicts), sum(verdicts.values())
    if filled:
        log.warning("only %d of %d drawn codes decode to cells of plausible topology (%s); %d of the %d sequences "
                    "are implausible: raise redraws", plausible, drawn, family, len(filled), n)
    screen = {"drawn": drawn, "plausible": int(plausible), "acceptance": plausible / drawn, "filled": len(filled),
              "frames_decoded": int(frames)}
    return sorted(kept + filled), screen


def _around(config: GenerateConfig, learned: np.ndarray, names: list[str], from_codes, towards):
    """``(codes, model, origins)`` of a set started from the codes of ``from_codes`` (module docstring)."""
    anchor_names, anchors = read_codes(from_codes)
    targets = None
    if towards is not None:
        if towards not in names:
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise ValueError(f"towards: no training sequence {towards!r} in the run; known: {shown}")
        targets = learned[names.index(towards)]
    codes, weights, model = codes_around(config.strategy, anchors, learned, config.n, targets=targets,
                                         scale=config.scale, rng=config.seed)
    origins = [{"from": anchor_names[i // config.n], "weight": None if np.isnan(w) else float(w)}
               for i, w in enumerate(weights)]
    if config.strategy == "interpolate":
        d = ((anchors[:, None].astype(np.float64) - learned[None]) ** 2).sum(axis=2)
        ends = [towards or names[j] for j in d.argmin(axis=1)]
        for i, o in enumerate(origins):
            o["towards"] = ends[i // config.n]
    return codes.astype(np.float32), model, origins


def _lock(run: RunDir, rank: int):
    """The run's lock, held by process 0 (the one that writes)."""
    return run.lock("generate") if rank == 0 else contextlib.nullcontext()


def _shared_temporary_folder(out: Path, rank: int, world: int) -> tuple[Path, list[Path]]:
    """:func:`cellnb.io.temporary_folder` made by process 0, its name shared with the others."""
    name, made = [None], []
    if rank == 0:
        tmp, made = temporary_folder(out)
        name[0] = str(tmp)
    if world > 1:
        dist.broadcast_object_list(name, src=0)
    return Path(name[0]), made


def generate(
    run,
    config: GenerateConfig | None = None,
    *,
    out=None,
    overwrite: bool = False,
    from_codes=None,
    towards: str | None = None,
    device=None,
    progress: bool = True,
    **params,
) -> dict:
    """Generate new sequences from a trained run and export them.

    Parameters
    ----------
    run : RunDir or path-like
        Run directory with a trained model (``cellnb train``).
    config : GenerateConfig, optional
        What to generate (number, strategy, frames, grid size, seed, route,
        formats, temperature); default :class:`GenerateConfig`'s defaults.
    out : path-like, optional
        Output folder; default ``<run>/generated/<strategy>``.
    overwrite : bool
        Replace an existing output folder (only once the new one is complete).
    from_codes : path-like, optional
        A ``codes.npz`` (names and codes, ``cellnb fit``) to start from:
        ``n`` sequences from each of its codes by ``perturb`` or
        ``interpolate`` (module docstring).
    towards : str, optional
        With ``from_codes`` and ``interpolate``: the training sequence whose
        code the interpolation goes to; default each code's nearest.
    device : str or torch.device, optional
        Default ``cuda`` if available, else ``cpu``.
    progress : bool
        Show a progress bar (process 0 only).
    **params
        Fields of :class:`GenerateConfig` to change, e.g. ``n=4, strategy="perturb"``.

    Returns
    -------
    summary : dict
        ``out``, ``n``, ``strategy``, ``frames``, ``size``, ``method``,
        ``formats``, ``seed``, ``scale``, ``latent_model`` (its strategy and
        how it was fitted), ``seconds`` (wall time of the call),
        ``seconds_per_sequence`` (mean), ``world_size``, ``record`` (spacing,
        scale, clamp of the new grid), ``family``, ``topology_plausible``
        (share of sequences whose component count over time is plausible for
        the training data's family, :func:`cellnb.compare.topology_plausible`)
        and ``sequences``: per sequence ``name``, ``index``, ``seconds``,
        ``evaluate_seconds``, ``export_seconds``, ``n_evaluations``,
        ``components`` (per frame), ``plausible`` and ``empty_frames`` (and,
        from given codes, ``from``, ``weight`` and ``towards``; with
        ``plausible``, ``draw``: the code's place in the order drawn).
        ``plausible`` (whether implausible cells were redrawn) and ``screen``
        (None without it, else ``drawn``, ``plausible``, ``acceptance``: the
        share of drawn codes plausible as decoded, ``filled``,
        ``frames_decoded`` and ``redraws``).  Also
        written to ``summary.json`` and, in short, to the ``generate`` section
        of the run's ``metrics.json`` under the output folder's name.

    Raises
    ------
    ValueError
        Bad arguments, or a grid that does not fit memory (saying how much it needs).
    FileNotFoundError
        No trained model in ``run``.
    FileExistsError
        ``out`` exists and ``overwrite`` is False.
    RunInUse
        Another cellnb process is writing into the run.
    Interrupted
        Ctrl-C or SIGTERM (nothing was written).
    """
    start = time.perf_counter()
    config = (config or GenerateConfig()).replace(**params) if params else (config or GenerateConfig())
    shape, formats, n, frames = grid_shape(config.size), config.formats, config.n, config.frames
    run = run if isinstance(run, RunDir) else RunDir(run)
    if towards is not None and (from_codes is None or config.strategy != "interpolate"):
        raise ValueError("towards needs from_codes (--from-codes) and strategy interpolate")
    if from_codes is not None and config.strategy not in AROUND:
        raise ValueError(f"from_codes (--from-codes) takes strategy {' or '.join(AROUND)}, got {config.strategy!r}")
    if from_codes is not None and config.plausible:
        raise ValueError("plausible keeps drawn codes whose cells are plausible; codes started from --from-codes "
                         "are not drawn: leave plausible off")
    if from_codes is not None and not Path(from_codes).is_file():
        raise FileNotFoundError(f"codes file {from_codes} does not exist; make it with `cellnb fit --out DIR`")
    if out is not None:
        out = Path(out)
    elif from_codes is not None:
        out = run.generated / f"{config.strategy}-from-{Path(from_codes).resolve().parent.name}"
    else:
        out = run.generated / _default_name(run, config)
    check_writable_folder(out, overwrite=overwrite)
    run.require_checkpoint()
    with process_group(select_device(device)) as (rank, world, device), _lock(run, rank):
        decoder, learned, names, info = load_trained(run, device=device)
        needed = required_bytes(shape, frames, decoder=decoder, method=config.method)
        needed += frames * int(np.prod(shape)) * (2 if "tiff" in formats else 0)  # uint16 labels
        check_memory(needed, what=f"a sequence of {frames} frames of {shape}")
        records = _training_records(run, info)
        family = (records[0].get("meta") or {}).get("family") if records else None
        family = family or "single"
        plausible = from_codes is None and _plausible(run, config)
        learned = learned.cpu().numpy().astype(np.float64)
        times = time_coords(frames)
        origins, screen, draws = None, None, None
        if from_codes is not None:
            strategy, sizes = config.strategy, None
            codes, model, origins = _around(config, learned, names, from_codes, towards)
            n = len(codes)
        else:
            count = n * (1 + config.redraws) if plausible else n
            strategy, samples, model, size = _draw(run, config, learned, records, count)
            codes, sizes = _split_features(samples, size, decoder.config.code_length)
            if plausible:
                draws, screen = _screen(decoder, codes, n, shape=shape, times=times, method=config.method,
                                        family=family, rank=rank, world=world, progress=progress)
                codes, sizes = codes[draws], None if sizes is None else sizes[draws]
                screen["redraws"] = config.redraws
            if model is not None:  # the saved model says whether its set was redrawn (absent: it was not)
                model.info.pop("plausible", None)
                model.info.update({"plausible": True} if plausible else {})
        base = records[0] if records else {}
        scale = config.scale if model is None else model.scale  # a recommended model's: as evaluated, times scale
        meta = {"strategy": strategy, "scale": scale, "seed": config.seed, "method": config.method,
                "run": str(run.root)}
        record = _output_record(base, shape)
        seq_records = [_output_record({**base, "spacing": [float(v)] * 3}, shape) if sizes is not None else record
                       for v in (sizes if sizes is not None else range(n))]
        poses = rotations(config.orientation, n, records, rng=[config.seed, 1])
        mine = list(range(rank, n, world))
        tmp, made = _shared_temporary_folder(out, rank, world)
        try:
            rows = []
            with tqdm(total=len(mine) * len(times), desc=f"generate {strategy}", unit="frame",
                      disable=not progress or rank != 0) as bar:
                for i in mine:
                    name = sequence_name(strategy, i)
                    seq_record = {**seq_records[i], "source": f"generated:{strategy}",
                                  "meta": {**meta, "index": i, "family": family}}
                    rows.append(_one_sequence(decoder, torch.from_numpy(codes[i]), name=name, index=i, shape=shape,
                                              times=times, method=config.method, formats=formats,
                                              folder=GeneratedDir(tmp), record=seq_record, bar=bar,
                                              rotation=poses[i]))
            if world > 1:
                gathered = [None] * world
                dist.all_gather_object(gathered, rows)
                rows = [r for part in gathered for r in part]
            rows.sort(key=lambda r: r["index"])
            for row in rows:
                row["plausible"] = topology_plausible(row["components"], family)
                row.update(origins[row["index"]] if origins else {})
                if draws is not None:
                    row["draw"] = int(draws[row["index"]])
            summary = {
                "out": str(out),
                "n": n,
                "strategy": strategy,
                "scale": scale,
                "latent_model": None if model is None else {"strategy": model.strategy, **model.info},
                "from_codes": None if from_codes is None else str(from_codes),
                "frames": frames,
                "size": list(shape),
                "method": config.method,
                "formats": list(formats),
                "seed": config.seed,
                "orientation": config.orientation,
                "world_size": world,
                "record": record,
                "family": family,
                "topology_plausible": float(np.mean([r["plausible"] for r in rows])),
                "plausible": plausible,
                "screen": screen,
                "seconds_per_sequence": float(np.mean([r["seconds"] for r in rows])),
                "sequences": rows,
            }
            if rank == 0:
                folder = GeneratedDir(tmp)
                if "ctc" in formats:
                    summary["ctc"] = export_ctc(folder, [r["name"] for r in rows],
                                                cells_per_field=config.cells_per_field, rng=config.seed)
                np.save(folder.codes_path, codes)
                if model is not None:
                    model.save(folder.latent_model_path)
                summary["seconds"] = time.perf_counter() - start
                write_json(folder.summary_path, summary)
            if world > 1:
                dist.barrier()
            if rank == 0:
                swap_in(tmp, out)
        except BaseException as err:
            if rank == 0:
                discard_folder(tmp, made)
            if isinstance(err, KeyboardInterrupt):
                raise Interrupted(f"interrupted; nothing was written to {out}") from None
            raise
        if world > 1:
            dist.barrier()
        summary["seconds"] = time.perf_counter() - start
        if rank == 0:
            section = run.read_metrics().get("generate", {})
            section[out.name] = {k: summary[k] for k in ("n", "frames", "size", "method", "seconds",
                                                          "seconds_per_sequence", "topology_plausible")}
            section[out.name]["evaluations_per_sequence"] = float(np.mean([r["n_evaluations"] for r in rows]))
            section[out.name]["drawn_plausible"] = screen["acceptance"] if screen else None
            run.update_metrics("generate", section)
        log.info("generated %d sequences into %s in %.1f s", n, out, summary["seconds"])
        return summary
