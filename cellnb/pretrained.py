"""Pretrained models shipped inside the package (``cellnb models``, ``generate --pretrained``).

Each model is a folder of package data::

    cellnb/pretrained/<name>/
      model.pt     what decoding needs: model and training configs, data record, decoder weights, codes,
                   the training sequences' records (spacing, meta); torch.save of tensors and plain values
      latent.npz   the latent model the run's evaluation recommends (when it has one)
      card.json    the model card: data provenance, training summary, the cellnb version that wrote it,
                   evaluation numbers from the run's metrics.json (None where absent), content hashes

:func:`pretrained_run` materialises a model once into a run directory in the
cache (``$CELLNB_CACHE_DIR`` or the OS cache folder, ``pretrained/<name>-<hash>``)
holding a checkpoint in the training format (:data:`cellnb.checkpoint.FORMAT`),
so :func:`cellnb.generate.generate` and :func:`cellnb.checkpoint.load_trained`
work on it unchanged.  :func:`package` writes a trained run into a package folder
(``scripts/pretrained.py`` regenerates the shipped ones).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from cellnb import __version__
from cellnb.checkpoint import FORMAT, KEYS, load_trained, read_checkpoint
from cellnb.io import (
    atomic_path,
    discard_folder,
    read_json,
    save_checkpoint,
    temporary_folder,
    write_json,
)
from cellnb.latent import LatentModel
from cellnb.sampling import SDFDataset
from cellnb.workspace import RunDir

__all__ = ["PACKAGE_DATA", "available", "read_card", "card_line", "load_pretrained", "pretrained_run", "package",
           "content_hash", "cache_dir"]

PACKAGE_DATA = Path(__file__).parent / "pretrained"  # where the shipped models live (tests point it elsewhere)
MODEL, LATENT, CARD = "model.pt", "latent.npz", "card.json"
MODEL_FORMAT = "cellnb.pretrained/1"
MODEL_KEYS = ("format", "model_config", "train_config", "data", "records", "decoder", "codes", "epoch", "stats")
CACHE_ENV = "CELLNB_CACHE_DIR"  # the same cache folder as the C. elegans download (cellnb.datasets)
EMPTY = "no pretrained models in this installation; see scripts/pretrained.py"
SHAPE_DESCRIPTORS = ("volume", "surface_area", "sphericity")  # the W1/sd numbers the card keeps


def _folder(root) -> Path:
    return Path(root) if root is not None else PACKAGE_DATA


def available(*, root=None) -> list[str]:
    """Names of the pretrained models in the package (sorted; ``[]`` when there are none)."""
    root = _folder(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MODEL).is_file() and (p / CARD).is_file())


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _model_folder(name: str, root) -> Path:
    known = available(root=root)
    if name not in known:
        listed = ", ".join(known) if known else "none (see scripts/pretrained.py)"
        raise ValueError(f"no pretrained model {name!r}; known: {listed}")
    return _folder(root) / name


def read_card(name: str, *, root=None) -> dict:
    """The model card of ``name``, checked against the installed cellnb version.

    Raises
    ------
    ValueError
        Unknown name (listing the known ones), or a model written by a newer
        cellnb than the installed one (naming the version needed).
    """
    card = read_json(_model_folder(name, root) / CARD)
    written = card.get("cellnb_version") or "0"
    if _version(written) > _version(__version__):
        raise ValueError(f"pretrained model {name!r} was written by cellnb {written}; it needs cellnb >= {written} "
                         f"(installed: {__version__}); upgrade cellnb")
    return card


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def card_line(card: dict) -> str:
    """One line of a model card: name, data, sequences, Dice, recommended strategy, 1-NN, memorisation."""
    data, ev = card.get("data") or {}, card.get("evaluation") or {}
    size = data.get("size")
    return (f"{card['name']:<12} data {data.get('source')} ({data.get('n_sequences')} sequences, "
            f"{data.get('frames')} frames, {size}^3)  Dice {_fmt(ev.get('dice'))}  "
            f"recommended {ev.get('recommended') or '-'}  1-NN {_fmt(ev.get('nn1_accuracy'))}  "
            f"memorisation {_fmt(ev.get('memorisation'), '.2f')}")


def content_hash(decoder_state: dict, codes: torch.Tensor) -> str:
    """SHA-256 of the decoder weights (by name, dtype, shape, bytes) and the codes."""
    digest = hashlib.sha256()
    for key in sorted(decoder_state):
        t = decoder_state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes())
    c = codes.detach().cpu().contiguous()
    digest.update(f"codes|{c.dtype}|{tuple(c.shape)}|".encode())
    digest.update(c.numpy().tobytes())
    return digest.hexdigest()


def _latent_hash(path: Path) -> str | None:
    if not path.is_file():
        return None
    m = LatentModel.load(path)
    digest = hashlib.sha256(f"{m.strategy}|{m.scale!r}|{json.dumps(m.info, sort_keys=True)}|".encode())
    for a in (m.weights, m.means, m.covariances):
        digest.update(a.astype("<f8").tobytes())
    return digest.hexdigest()


def _evaluation(metrics: dict) -> dict:
    """The card's evaluation numbers, read from a run's ``metrics.json`` (None where absent)."""
    train, ev = metrics.get("train") or {}, metrics.get("evaluate") or {}
    recommended = ev.get("recommended")
    chosen = (ev.get("sets") or {}).get(recommended) or {}
    w1 = chosen.get("w1_norm") or {}
    n_topology = train.get("topology_sequences")
    return {
        "dice": train.get("dice_mean"),
        "iou": train.get("iou_mean"),
        "topology_kept": train.get("topology_kept") / n_topology if n_topology and train.get(
            "topology_kept") is not None else None,
        "recommended": recommended,
        "reference": ev.get("reference"),
        "nn1_accuracy": chosen.get("nn1_accuracy"),
        "memorisation": chosen.get("memorisation"),
        "topology_plausible": chosen.get("topology_plausible"),
        "w1_norm": {d: w1.get(d) for d in SHAPE_DESCRIPTORS},
    }


def _records(run: RunDir, info: dict) -> list[dict]:
    dataset = SDFDataset(run.training_data())
    if dataset.names != list(info["data"]["names"]):
        raise ValueError(f"the data set of {run.root} no longer matches its checkpoint; train again")
    return [dict(r) for r in dataset.records]


def package(run, name: str, dest=None, *, overwrite: bool = False) -> dict:
    """Write a trained run's model into the package folder ``dest/<name>`` (default :data:`PACKAGE_DATA`).

    Parameters
    ----------
    run : RunDir or path-like
        A trained run (its training data must still be readable for the sequences' records).
    name : str
        Model name, e.g. ``"celegans"``.
    dest : path-like, optional
        Parent folder of the models.
    overwrite : bool
        Replace an existing model of that name (only once the new one is complete).

    Returns
    -------
    card : dict
        What ``card.json`` holds.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a plain folder name, got {name!r}")
    ckpt = read_checkpoint(run.require_checkpoint(), fix="train again with `cellnb train --overwrite`")
    _, _, _, info = load_trained(run, device="cpu")  # the consistency checks of a loadable model
    records = _records(run, info)
    metrics, config = run.read_metrics(), run.read_config()
    model = {
        "format": MODEL_FORMAT,
        "model_config": ckpt["model_config"],
        "train_config": ckpt["train_config"],
        "data": ckpt["data"],
        "records": records,
        "decoder": {k: v.detach().cpu().clone() for k, v in ckpt["decoder"].items()},
        "codes": ckpt["codes"].detach().cpu().clone(),
        "epoch": int(ckpt["epoch"]),
        "stats": ckpt["stats"],
    }
    data_metrics = metrics.get("data") or {}
    summary = run.data_dir.read_summary() if run.data_dir.summary_path.is_file() else {}
    first = records[0] if records else {}
    train = ckpt["train_config"]
    card = {
        "name": name,
        "cellnb_version": __version__,
        "profile": config.get("profile"),
        "data": {
            "source": data_metrics.get("source") or summary.get("source") or first.get("source"),
            "n_sequences": len(ckpt["data"]["names"]),
            "frames": ckpt["data"]["n_frames"],
            "size": ckpt["data"]["shape"][0],
            "shape": ckpt["data"]["shape"],
            "spacing": first.get("spacing"),
            "scale": first.get("scale"),
            "clamp": first.get("clamp"),
            "family": (first.get("meta") or {}).get("family"),
            "names": list(ckpt["data"]["names"]),
            "sha256": ckpt["data"]["sha256"],
        },
        "training": {
            "epochs": int(ckpt["epoch"]),
            "seed": train.get("seed"),
            "code_length": ckpt["model_config"].get("code_length"),
            "dims": ckpt["model_config"].get("dims"),
            "n_parameters": (metrics.get("train") or {}).get("n_parameters"),
            "final_loss": (metrics.get("train") or {}).get("final_loss"),
            "seconds": ckpt["stats"].get("seconds"),
            "device": ckpt["stats"].get("device"),
        },
        "evaluation": _evaluation(metrics),
        "content_sha256": content_hash(model["decoder"], model["codes"]),
        "latent_sha256": _latent_hash(run.latent_model),
    }
    target = _folder(dest) / name
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    tmp, made = temporary_folder(target)
    try:
        save_checkpoint(tmp / MODEL, model)
        if run.latent_model.is_file():
            shutil.copyfile(run.latent_model, tmp / LATENT)
        write_json(tmp / CARD, card)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        discard_folder(tmp, made)
        raise
    return card


def cache_dir() -> Path:
    """Where :func:`pretrained_run` materialises models: ``$CELLNB_CACHE_DIR`` or the OS cache, ``/pretrained``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env) / "pretrained"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cellnb" / "pretrained"


def _files_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in (MODEL, LATENT, CARD):
        path = folder / file
        digest.update(f"{file}|".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def pretrained_run(name: str, *, root=None, cache=None) -> RunDir:
    """A run directory of the pretrained model ``name`` (made once in the cache, atomically).

    Parameters
    ----------
    name : str
        One of :func:`available`.
    root : path-like, optional
        Parent folder of the models (default :data:`PACKAGE_DATA`).
    cache : path-like, optional
        Parent folder of the materialised runs (default :func:`cache_dir`).

    Returns
    -------
    RunDir
        Holding ``checkpoints/latest.pt`` (training format), ``latent.npz``
        (if the model has one), ``metrics.json`` (the card, section
        ``pretrained``) and ``config.json``; ``generate`` works on it.

    Raises
    ------
    ValueError
        Unknown name, a model from a newer cellnb, or damaged package data.
    """
    card = read_card(name, root=root)
    folder = _folder(root) / name
    cache = Path(cache) if cache is not None else cache_dir()
    run = RunDir(cache / f"{name}-{_files_hash(folder)}")
    if run.latest_checkpoint.is_file():
        return run
    model = read_checkpoint(folder / MODEL, fmt=MODEL_FORMAT, keys=MODEL_KEYS, what="cellnb pretrained model",
                            fix="regenerate it with scripts/pretrained.py")
    state = {
        "format": FORMAT,
        "model_config": model["model_config"],
        "train_config": model["train_config"],
        "data": {**model["data"], "records": model["records"]},
        "decoder": model["decoder"],
        "codes": model["codes"],
        "optimizer": {},  # not shipped: a pretrained model is for decoding, not for resuming training
        "epoch": model["epoch"],
        "log": [],
        "stats": model["stats"],
        "rng": {},
    }
    assert set(KEYS) <= set(state)
    tmp, made = temporary_folder(run.root)
    staged = RunDir(tmp)
    try:
        save_checkpoint(staged.latest_checkpoint, state)
        if (folder / LATENT).is_file():
            with atomic_path(staged.latent_model, overwrite=True) as out:
                shutil.copyfile(folder / LATENT, out)
        write_json(staged.metrics_path, {"pretrained": card})
        write_json(staged.config_path, {"profile": card.get("profile") or "quick", "model": model["model_config"],
                                        "train": dict(model["train_config"]), "pretrained": name})
        try:
            os.rename(tmp, run.root)
        except OSError:
            if not run.latest_checkpoint.is_file():  # not another process's finished copy
                raise
            discard_folder(tmp, made)
    except BaseException:
        discard_folder(tmp, made)
        raise
    return run


def load_pretrained(name: str, device=None, *, root=None, cache=None):
    """The decoder, codes, names and info of a pretrained model (as :func:`cellnb.checkpoint.load_trained`).

    Parameters
    ----------
    name : str
        One of :func:`available`, e.g. ``"celegans"``.
    device : str or torch.device, optional

    Returns
    -------
    decoder, codes, names, info
        See :func:`cellnb.checkpoint.load_trained`; ``info["card"]`` is the model card.
    """
    run = pretrained_run(name, root=root, cache=cache)
    decoder, codes, names, info = load_trained(run, device=device)
    info["card"] = read_card(name, root=root)
    return decoder, codes, names, info
