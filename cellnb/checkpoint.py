"""The training checkpoint format, checked loading, and :func:`load_trained`.

A checkpoint is one ``torch.save`` file of tensors and plain values (loaded
with ``weights_only=True``: data, never code), written atomically by
:func:`cellnb.io.save_checkpoint`.  It holds everything to rebuild and
continue a run (after nanoGPT's checkpoint dict):

``format``        :data:`FORMAT`
``model_config``  :class:`cellnb.model.DecoderConfig` as a dict: rebuilds the decoder alone
``train_config``  :class:`cellnb.train.TrainConfig` as a dict
``data``          fingerprint of the training data (names, frames, shape, content hash)
``decoder``       decoder state dict
``codes``         (S, L) float32, one learned code per training sequence
``optimizer``     Adam state
``epoch``         epochs done
``log``           one row per epoch (loss, learning rates, seconds)
``stats``         ``seconds``, ``points``, ``world_size``, ``device``
``rng``           torch RNG state, for bit-for-bit resume
"""

from __future__ import annotations

import torch

from cellnb.devices import select_device
from cellnb.io import load_checkpoint
from cellnb.model import Decoder, DecoderConfig
from cellnb.workspace import RunDir

__all__ = ["FORMAT", "KEYS", "read_checkpoint", "training_metrics", "load_trained"]

FORMAT = "cellnb.train/1"
KEYS = ("format", "model_config", "train_config", "data", "decoder", "codes", "optimizer", "epoch", "log", "stats",
        "rng")


def read_checkpoint(path, *, fix: str, map_location="cpu", fmt: str = FORMAT, keys=KEYS,
                    what: str = "cellnb training checkpoint") -> dict:
    """Load a torch file of tensors and plain values safely and check its format and keys.

    Parameters
    ----------
    path : path-like
    fix : str
        What the user should do if the file is not usable (ends the error message).
    map_location : str or torch.device
    fmt : str
        The ``format`` entry the file must hold (default a training checkpoint's,
        :data:`FORMAT`; a pretrained model has its own).
    keys : sequence of str
        The entries the file must hold (default :data:`KEYS`).
    what : str
        What the file should be, for the error message.

    Raises
    ------
    FileNotFoundError
        No file.
    ValueError
        Unsafe, corrupt, another format or missing keys (naming them).
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise ValueError(f"{path} is not a {what}; {fix}")
    missing = [k for k in keys if k not in ckpt]
    if missing:
        raise ValueError(f"{path} lacks the checkpoint entries {missing} (damaged or edited); {fix}")
    return ckpt


def training_metrics(epochs: int, stats: dict, log: list[dict], n_parameters: int) -> dict:
    """The ``train`` metrics of a fit, from its ``stats`` (``seconds``, ``points``) and per-epoch ``log``."""
    return {
        "epochs": epochs,
        "seconds": stats["seconds"],
        "points_per_second": stats["points"] / stats["seconds"] if stats["seconds"] > 0 else 0.0,
        "final_loss": log[-1]["loss"] if log else None,
        "n_parameters": n_parameters,
    }


def load_trained(run, *, device=None) -> tuple[Decoder, torch.Tensor, list[str], dict]:
    """The trained decoder and codes of a run.

    Parameters
    ----------
    run : RunDir or path-like
    device : str or torch.device, optional

    Returns
    -------
    decoder : Decoder
        In eval mode, on ``device``.
    codes : Tensor, shape (S, L)
        One row per training sequence, in the order of ``names``.
    names : list of str
    info : dict
        ``epoch``, ``model_config``, ``train_config``, ``data`` (names,
        frame count, shape, content hash), ``stats`` (seconds, points, ...), ``log``.

    Raises
    ------
    FileNotFoundError
        No checkpoint.
    ValueError
        Corrupt, unsafe or inconsistent checkpoint.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    path = run.require_checkpoint()
    device = select_device(device)
    ckpt = read_checkpoint(path, map_location=device, fix="train again with `cellnb train --overwrite`")
    config = DecoderConfig.from_dict(ckpt["model_config"])
    decoder = Decoder(config)
    try:
        decoder.load_state_dict(ckpt["decoder"])
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not match the saved model config {config} ({err})") from None
    codes = ckpt["codes"]
    names = list(ckpt["data"]["names"])
    if codes.shape != (len(names), config.code_length):
        raise ValueError(
            f"{path}: codes of shape {tuple(codes.shape)} do not match {len(names)} sequences x {config.code_length}"
        )
    decoder.to(device).eval()
    info = {k: ckpt[k] for k in ("epoch", "model_config", "train_config", "data", "stats", "log")}
    return decoder, codes.to(device), names, info

