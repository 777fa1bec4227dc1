"""Fitting the auto-decoder: one latent code per sequence and one shared decoder.

The loop follows the official ``train.py`` (Wiesner et al. 2022, after
DeepSDF): codes are an embedding initialised ``N(0, code_init_std^2 / L)``,
the loss is the L1 distance of the (optionally clamped) SDF plus
``code_reg * min(1, epoch / code_reg_warmup_epochs)`` times the mean code
norm, and Adam updates decoder and codes with their own learning rates and
schedules.  It differs where that makes it faster on the same model:

* a batch is ``frames_per_batch`` frames of ``points_per_frame`` points each,
  and :meth:`cellnb.model.Decoder.forward_grouped` computes every code's share
  of the first and the re-injection layers once per frame instead of once
  per point;
* training points are pre-drawn per frame (:class:`cellnb.sampling.FramePoints`)
  and redrawn every ``resample_every`` epochs; nothing is collated per step;
* on the CPU, ``forward_grouped`` runs blocks of points through all layers
  while they are in cache, with a fused backward pass, one worker thread per
  torch thread (:class:`cellnb.model.Decoder`);
* with ``compile`` the step runs through ``torch.compile`` only when the run
  is long enough for the compile (26-44 s cold, about 6 s from inductor's
  cache, kept in :data:`COMPILE_CACHE`) to pay for itself: on the CPU the
  compiled step is no faster than the block route (within a few percent), so
  only runs of hours compile there (:meth:`Trainer._compile_if_it_pays`).
  Compiling needs a C++ compiler on CPU (without one, training warns and runs
  eagerly).

Before a run starts, :func:`training_memory` estimates and logs what a
process holds: points, data cache, activations and parameters.

Multi-process
-------------
Run under ``torchrun --nproc_per_node=K -m cellnb train ...`` (or ``python -m
torch.distributed.run``): the processes form a group (gloo on CPU, nccl on
GPU), the decoder and the code embedding are one DistributedDataParallel
module (gradients of the codes are all-reduced like any other parameter),
and frames are sharded: frame ``f`` belongs to virtual shard ``f %
frames_per_batch``, each batch takes one frame of every virtual shard, and
process ``r`` owns shards ``r, r + K, ...``.  The batches are therefore the
same for any K, so K processes reproduce the single-process run up to
floating-point summation order.  Only process 0 writes files.

Mixed precision
---------------
``amp="bf16"`` or ``"fp16"`` runs the decoder under CUDA autocast (fp16 with a
gradient scaler); the loss, the optimiser and the checkpoints stay float32,
and so does the decoder's first layer (its sine's argument reaches omega
times the coordinates, where bfloat16 would round it by up to 0.125).  On
CPU the option is ignored with a warning and training runs in float32, so
one profile works on both kinds of device.  (Untested on a GPU so far.)

Resume
------
Checkpoints hold the decoder, codes, optimiser state, epoch, log and the
torch RNG state; batch order and training points are functions of ``(seed,
epoch)``, so a resumed run continues bit for bit.  Learning-rate schedules
are functions of the epoch and of the configured ``epochs``.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from cellnb.checkpoint import FORMAT, read_checkpoint, training_metrics
from cellnb.config import Config
from cellnb.devices import process_group, select_device
from cellnb.errors import Interrupted
from cellnb.io import (
    atomic_path,
    discard_folder,
    save_checkpoint,
    swap_in,
    temporary_folder,
)
from cellnb.model import N_COORDS, Decoder, DecoderConfig
from cellnb.sampling import (
    GAP_RADIUS,
    MODES,
    NEAR_FRACTION,
    NEAR_THRESHOLD,
    FramePoints,
    SDFDataset,
)
from cellnb.signals import check_interrupt
from cellnb.workspace import RunDir

__all__ = [
    "TrainConfig",
    "AutoDecoder",
    "Trainer",
    "learning_rates",
    "training_memory",
    "train",
]

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "step", "cosine")
AMP_MODES = ("none", "bf16", "fp16")
# Settings that may change when resuming; all others must equal the checkpoint's.
_RESUMABLE = ("epochs", "checkpoint_every", "compile")
# metrics.json sections computed from a model; they no longer hold once the model is trained anew
_DOWNSTREAM = ("generate", "field", "descriptors", "evaluate")
# torch.compile pays when the time it saves over the run exceeds its own cost.  Its cost: a cold
# compile of the paper decoder's training step took 26-44 s on a 2-core CPU (about 6 s from a warm
# cache).  What it saves, as a share of an eager step: on the CPU, measured against the block route
# of Decoder.forward_grouped, one thread, 8 x 1024 points per step: paper decoder 89.0k vs 87.2k
# points per CPU-second (+2%; max-autotune 83.9k), quick decoder 223k vs 238k (-6%); on CUDA an
# estimate for fusing the sines, not measured yet (no GPU was available).
COMPILE_SECONDS = 45.0
COMPILE_GAIN = {"cpu": 0.02, "cuda": 0.3}
# Inductor's compiled kernels are kept here across runs (unless TORCHINDUCTOR_CACHE_DIR is set).
COMPILE_CACHE = Path.home() / ".cache" / "cellnb" / "torchinductor"
_POINT_BYTES = 8  # a training point held by FramePoints: int32 voxel index + float32 SDF
_FLOAT_BYTES = 4
_ADAM_COPIES = 4  # weights, gradients and Adam's two moments, all float32
_LAYER_TRANSIENTS = 4  # layer-wide tensors alive at once in the backward pass of the one-product-per-layer route


@dataclass(frozen=True)
class TrainConfig(Config):
    """Every training parameter; saved in every checkpoint (profile section ``train``).

    The defaults are the quick profile's (a CPU, minutes); the paper profile
    overrides them with the published settings.

    Parameters
    ----------
    epochs : int
        Passes over all frames.
    lr_decoder, lr_codes : float
        Initial Adam learning rates of the decoder and of the codes.
    lr_schedule : {"constant", "step", "cosine"}
        ``step``: multiply by ``lr_step_factor`` every ``lr_step_every``
        epochs (decoder) and by ``lr_codes_step_factor`` every
        ``lr_codes_step_every`` epochs (codes), as the official schedules;
        ``cosine``: cosine decay from the initial rate to ``lr_final_factor``
        times it over ``epochs``.
    lr_warmup_epochs : int
        Linear warm-up of both rates over the first epochs (0: none).
    points_per_frame : int
        Training points per frame.
    frames_per_batch : int
        Frames per optimisation step (a multiple of the process count).
    sampling_mode : {"official", "band"}
        Point rule of :func:`cellnb.sampling.sample_frame`.
    near_fraction, threshold : float
        Share of points near the cell and the SDF threshold defining "near".
    gap_fraction : float
        Share of the points drawn from the gap voxels of each frame (thin
        background gaps between nearby surfaces, :func:`cellnb.sampling.gap_voxels`),
        taken from the near share; 0 (default): none, the official rule.
    gap_radius : int
        Closing radius in voxels that defines the gap voxels (gaps up to about
        twice as wide); default :data:`cellnb.sampling.GAP_RADIUS`.
    resample_every : int
        Redraw the points every this many epochs (0: draw once).
    code_init_std : float
        Codes start as ``N(0, (code_init_std / sqrt(L))^2)``: DeepSDF's and the
        official ``CodeInitStdDev`` (default 1.0) divided by ``sqrt(CodeLength)``.
    code_reg : float
        Weight of the mean code norm in the loss (official
        ``CodeRegularizationLambda``, 1e-4); 0 disables it.  With
        ``variational``, the weight of the mean KL term instead.
    variational : bool
        A variational auto-decoder: each sequence's code is a Gaussian
        ``N(mu, diag(sigma^2))`` (mean and log-variance learned), training
        decodes a draw from it (reparameterised), and the loss adds the KL
        divergence to the codes' prior ``N(0, (code_init_std / sqrt(L))^2 I)``.
        The decoder is trained on a neighbourhood of every code, not only at
        it, which is meant to make codes drawn between the learned ones
        decode like training cells; measured on C. elegans at KL weights
        1e-4 and 1e-3 it learns spreads of 2-3% of the distance between
        neighbouring codes and does not (README, "Honest evaluation").  The
        means are the run's codes (reconstruction, latent models, fit);
        off: DeepSDF's point codes.
    code_reg_warmup_epochs : int
        The weight ramps up linearly over this many epochs (official: 1000).
    clamp : float or None
        Clamp prediction and target SDF to ``[-clamp, clamp]`` before the loss
        (official ``ClampingDistance`` with ``ClampSDFminmax``).
    grad_clip : float or None
        Clip the decoder's gradient norm (official ``GradientClipNorm``).
    checkpoint_every : int
        Write ``latest.pt`` and a snapshot every this many epochs (and at the end).
    seed : int
        Seeds initialisation, batch order and training points.
    amp : {"none", "bf16", "fp16"}
        Mixed precision (CUDA only; ignored with a warning on CPU).
    cache_mb : int
        Keep a process's frames in memory when they take at most this many MiB;
        larger data sets are read from the files at each redraw.
    num_threads : int or None
        CPU threads torch uses while training (restored afterwards); None
        leaves torch's setting as it is.  Small steps on a CPU shared with
        other work run much faster on one thread (see the quick profile).
    compile : bool
        Run the forward pass through ``torch.compile`` (see the module notes).
    """

    epochs: int = 100
    lr_decoder: float = 3e-4
    lr_codes: float = 1e-3
    lr_schedule: str = "cosine"
    lr_step_every: int = 500
    lr_step_factor: float = 0.5
    lr_codes_step_every: int = 500
    lr_codes_step_factor: float = 0.5
    lr_final_factor: float = 0.05
    lr_warmup_epochs: int = 0
    points_per_frame: int = 1024
    frames_per_batch: int = 8
    sampling_mode: str = "band"
    near_fraction: float = NEAR_FRACTION
    threshold: float = NEAR_THRESHOLD
    gap_fraction: float = 0.0
    gap_radius: int = GAP_RADIUS
    resample_every: int = 1
    code_init_std: float = 1.0
    code_reg: float = 1e-4
    code_reg_warmup_epochs: int = 100
    variational: bool = False
    clamp: float | None = None
    grad_clip: float | None = None
    checkpoint_every: int = 40
    seed: int = 0
    amp: str = "none"
    cache_mb: int = 1024
    num_threads: int | None = 1
    compile: bool = True

    SECTION = "train"

    def validate(self):
        positive = ("epochs", "points_per_frame", "frames_per_batch", "checkpoint_every", "lr_step_every",
                    "lr_codes_step_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr_decoder", "lr_codes", "lr_step_factor", "lr_codes_step_factor", "lr_final_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("resample_every", "lr_warmup_epochs", "code_reg_warmup_epochs", "cache_mb"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.code_reg < 0 or self.code_init_std <= 0:
            raise ValueError("code_reg must be >= 0 and code_init_std > 0")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        if self.sampling_mode not in MODES:
            raise ValueError(f"sampling_mode must be one of {', '.join(MODES)}, got {self.sampling_mode!r}")
        if not 0.0 <= self.near_fraction <= 1.0:
            raise ValueError(f"near_fraction must lie in [0, 1], got {self.near_fraction}")
        if not 0.0 <= self.gap_fraction <= self.near_fraction:
            raise ValueError(f"gap_fraction must lie in [0, near_fraction={self.near_fraction}] (gap points are part "
                             f"of the near share), got {self.gap_fraction}")
        if isinstance(self.gap_radius, bool) or int(self.gap_radius) != self.gap_radius or self.gap_radius < 1:
            raise ValueError(f"gap_radius must be a positive number of voxels, got {self.gap_radius}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be at least 1 or null (leave torch's setting), got {self.num_threads}")
        for name in ("clamp", "grad_clip"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or null (off), got {value}")

        if self.seed < 0:
            raise ValueError(f"train.seed must be a non-negative integer, got {self.seed}")


def learning_rates(config: TrainConfig, epoch: int) -> tuple[float, float]:
    """Learning rates of decoder and codes during ``epoch`` (0-based)."""
    if config.lr_schedule == "constant":
        f_dec = f_codes = 1.0
    elif config.lr_schedule == "step":
        f_dec = config.lr_step_factor ** (epoch // config.lr_step_every)
        f_codes = config.lr_codes_step_factor ** (epoch // config.lr_codes_step_every)
    else:
        progress = epoch / max(config.epochs - 1, 1)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        f_dec = f_codes = config.lr_final_factor + (1 - config.lr_final_factor) * cosine
    if epoch < config.lr_warmup_epochs:
        warm = (epoch + 1) / (config.lr_warmup_epochs + 1)
        f_dec, f_codes = f_dec * warm, f_codes * warm
    return config.lr_decoder * f_dec, config.lr_codes * f_codes


class AutoDecoder(nn.Module):
    """The decoder and the code embedding as one module (what DDP wraps).

    Parameters
    ----------
    decoder : Decoder
    n_codes : int
        Number of sequences S.
    init_std : float
        Standard deviation of the initial codes.
    """

    def __init__(self, decoder: Decoder, n_codes: int, *, init_std: float, variational: bool = False):
        super().__init__()
        self.decoder = decoder
        self.prior_std = init_std
        self.codes = nn.Embedding(n_codes, decoder.config.code_length)
        nn.init.normal_(self.codes.weight, 0.0, init_std)
        # Log-variances of a variational auto-decoder, starting at a tenth of the prior's spread.
        self.log_var = nn.Embedding(n_codes, decoder.config.code_length) if variational else None
        if self.log_var is not None:
            nn.init.constant_(self.log_var.weight, 2.0 * math.log(0.1 * init_std))

    def code_parameters(self) -> list[nn.Parameter]:
        """The per-sequence parameters (code means, and log-variances when variational)."""
        return [self.codes.weight] + ([self.log_var.weight] if self.log_var is not None else [])

    def forward(self, sequence: torch.Tensor, xyzt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SDF at ``xyzt`` (B, P, 4) for the sequences ``sequence`` (B,): returns ``(sdf (B, P), codes (B, L))``.

        Variational and training: the codes are draws ``mu + sigma * eps``
        (torch's generator); otherwise the means.
        """
        z = self.codes(sequence)
        if self.log_var is not None and self.training:
            z = z + torch.exp(0.5 * self.log_var(sequence)) * torch.randn_like(z)
        return self.decoder.forward_grouped(z, xyzt), z

    def kl(self, sequence: torch.Tensor) -> torch.Tensor:
        """KL divergence of each code distribution of ``sequence`` (B,) to the prior, shape (B,)."""
        mu, log_var = self.codes(sequence), self.log_var(sequence)
        ratio = 2.0 * math.log(self.prior_std)
        return 0.5 * (torch.exp(log_var - ratio) + mu.pow(2) / self.prior_std**2 - 1.0 - (log_var - ratio)).sum(dim=1)


def _virtual_shards(n_frames: int, batch: int) -> list[np.ndarray]:
    """Frames of each virtual shard: shard ``v`` holds the frames ``f`` with ``f % batch == v``."""
    return [np.arange(v, n_frames, batch) for v in range(batch)]


def _epoch_batches(shards, seed: int, epoch: int, mine) -> list[list[int]]:
    """This process's frames of every step of an epoch (one frame per owned shard per step)."""
    rng = np.random.default_rng((seed, epoch, 0x5EED))
    perms = [rng.permutation(len(s)) for s in shards]  # all shards: every process draws the same stream
    steps = min(len(s) for s in shards)
    return [[int(shards[v][perms[v][b]]) for v in mine] for b in range(steps)]


def _check_resume(ckpt: dict, model_config: DecoderConfig, train_config: TrainConfig, data: SDFDataset, path):
    if ckpt["model_config"] != model_config.to_dict():
        saved_model = ckpt["model_config"]
        diff = {k: (saved_model.get(k), v) for k, v in model_config.to_dict().items() if saved_model.get(k) != v}
        raise ValueError(
            f"checkpoint {path} was trained with a different model config (checkpoint vs requested: {diff}); "
            "resume with the same model settings or start over with overwrite=True (--overwrite)"
        )
    saved = {k: v for k, v in ckpt["train_config"].items() if k not in _RESUMABLE}
    asked = {k: v for k, v in train_config.to_dict().items() if k not in _RESUMABLE}
    if saved != asked:
        diff = {k: (saved.get(k), asked.get(k)) for k in asked if saved.get(k) != asked.get(k)}
        raise ValueError(
            f"checkpoint {path} was trained with different settings (checkpoint vs requested: {diff}); only "
            f"{', '.join(_RESUMABLE)} may change when resuming; use the same settings or overwrite=True (--overwrite)"
        )
    if ckpt["data"] != data.fingerprint():
        saved, here = ckpt["data"], data.fingerprint()
        what = "other values (content hash)" if {**saved, "sha256": None} == {**here, "sha256": None} else (
            f"other sequences ({saved.get('names')} x {saved.get('n_frames')} x {saved.get('shape')})")
        raise ValueError(
            f"checkpoint {path} was trained on other data than {data.folder}: {what}; resume with the same "
            "data set, or start over with overwrite=True (--overwrite)"
        )
    if ckpt["epoch"] > train_config.epochs:
        raise ValueError(
            f"checkpoint {path} is at epoch {ckpt['epoch']}, beyond the requested epochs={train_config.epochs}; "
            "ask for more epochs to continue"
        )


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["epoch"])
            writer.writeheader()
            writer.writerows(rows)


def _compiled(model: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(model)`` with inductor's cache in :data:`COMPILE_CACHE` (kept across runs)."""
    cache = os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(COMPILE_CACHE))
    log.info("compiling the training step with torch.compile on %s (kernel cache %s)", device, cache)
    return torch.compile(model)


def _cxx_missing(device: torch.device) -> bool:
    """Whether torch.compile lacks the C++ compiler it needs on CPU (warns if so)."""
    cxx = os.environ.get("CXX", "g++")  # what torch's inductor compiles CPU kernels with
    if device.type == "cpu" and shutil.which(cxx) is None:
        warnings.warn(f"train.compile is on but the C++ compiler {cxx!r} that torch.compile needs on CPU was not "
                      "found; training without compiling. Install g++ or set train.compile to false.")
        return True
    return False


def training_memory(model_config: DecoderConfig, config: TrainConfig, *, n_sequences: int, n_frames: int, shape,
                    world: int = 1, device="cpu") -> dict:
    """Estimated peak memory of one training process, by part, in bytes.

    Parameters
    ----------
    model_config : DecoderConfig
    config : TrainConfig
    n_sequences, n_frames : int
        Size of the data set (sequences and frames per sequence).
    shape : int or tuple of 3 ints
        Frame shape ``(D0, D1, D2)``.
    world : int
        Number of processes; each holds ``1 / world`` of the frames and of a step's points.
    device : str or torch.device
        Where the model trains (activations there; points and the data cache too).

    Returns
    -------
    dict
        ``points`` (the drawn training points, 8 bytes each), ``data_cache``
        (the frames kept in memory when they fit ``cache_mb``, else the one
        frame being read), ``activations`` (what a step keeps for its
        backward pass: :meth:`Decoder.training_floats_per_point` float32 per
        point, plus the step's coordinates, targets and predictions; off the
        CPU, where one product per layer runs over all points of a step, also
        the few layer-wide tensors alive at once in its backward pass),
        ``parameters`` (decoder and codes with gradients and Adam moments),
        ``total`` (their sum), and ``step_points`` (points per step in this process).
    """
    voxels = int(np.prod(np.broadcast_to(np.asarray(shape), (3,))))  # an int is a cube
    frames = -(-n_sequences * n_frames // world)  # this process's frames, rounded up
    step_points = max(1, min(config.frames_per_batch, n_sequences * n_frames) // world) * config.points_per_frame
    cache = frames * voxels * _FLOAT_BYTES
    decoder = Decoder(model_config)
    per_point = decoder.training_floats_per_point() + N_COORDS + 3  # + xyzt, target, prediction, its gradient
    if torch.device(device).type != "cpu":  # gradient, cosine, product and input gradient of the widest layer
        per_point += _LAYER_TRANSIENTS * max(out for _, out in model_config.layer_shapes())
    parts = {
        "points": frames * config.points_per_frame * _POINT_BYTES,
        "data_cache": cache if cache <= config.cache_mb << 20 else voxels * _FLOAT_BYTES,
        "activations": step_points * per_point * _FLOAT_BYTES,
        "parameters": (decoder.n_parameters() + n_sequences * model_config.code_length) * _ADAM_COPIES * _FLOAT_BYTES,
    }
    return {**parts, "total": sum(parts.values()), "step_points": step_points, "device": str(torch.device(device))}


def _amp_context(amp: str, device: torch.device):
    if amp == "none" or device.type != "cuda":
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _as_config(cls, value):
    """A config section from an instance, a dict over the section's defaults, or None (the defaults)."""
    return value if isinstance(value, cls) else cls.from_dict(value or {})


def train(
    data,
    run,
    *,
    model_config=None,
    train_config=None,
    device=None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Fit a decoder and one code per sequence to an SDF data set.

    Parameters
    ----------
    data : path-like or None
        Folder of ``.h5`` SDF files (``cellnb prepare``); None: the run's ``data/``.
    run : RunDir or path-like
        Run directory; checkpoints go to ``run/checkpoints`` (``latest.pt`` and
        ``epochNNNNN.pt`` snapshots), the per-epoch log to ``run/train_log.csv``.
    model_config : DecoderConfig or dict, optional
        Decoder; a dict sets some fields over :class:`~cellnb.model.DecoderConfig`'s
        defaults (the published decoder); a profile's ``model`` section is the usual source.
    train_config : TrainConfig or dict, optional
        Training settings; a dict sets some fields over :class:`TrainConfig`'s defaults.
    device : str or torch.device, optional
        Default CUDA if available, else CPU.  Under torchrun on CUDA each
        process uses ``cuda:LOCAL_RANK``.
    resume : bool
        Continue from ``latest.pt`` (settings other than ``epochs``,
        ``checkpoint_every`` and ``compile`` must match the checkpoint's, and
        the data its content hash).
    overwrite : bool
        Start over even if the run has a trained model.  The new model is
        trained aside and replaces the old one (checkpoints, log, the
        ``model``/``train`` sections of ``config.json``) only when training
        succeeds: a failed or interrupted run leaves the old model exactly as it was.
    progress : bool
        Show a tqdm bar with the loss.

    Returns
    -------
    dict
        ``epochs``, ``seconds`` (training wall time, summed over resumed
        sessions), ``points_per_second``, ``final_loss``, ``n_parameters``,
        ``n_sequences``, ``n_frames``, ``checkpoint`` (path), ``device``,
        ``world_size``.

    Raises
    ------
    FileNotFoundError
        No SDF files, or ``resume`` without a checkpoint.
    FileExistsError
        A checkpoint exists and neither ``resume`` nor ``overwrite`` is set.
    ValueError
        Inconsistent data, NaNs, settings that do not match the checkpoint,
        or a diverged loss (nothing is written then).
    RunInUse
        Another cellnb process is writing into the run.
    Interrupted
        Ctrl-C or SIGTERM; the message says what is intact.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    model_config, train_config = _as_config(DecoderConfig, model_config), _as_config(TrainConfig, train_config)
    if resume and overwrite:
        raise ValueError("pass either resume=True (continue) or overwrite=True (start over), not both")
    dataset = SDFDataset(run.data if data is None else data)
    device = select_device(device)
    writer = int(os.environ.get("RANK", "0")) == 0
    with run.lock("train") if writer else contextlib.nullcontext():
        ckpt = None
        if resume:
            ckpt = read_checkpoint(run.require_checkpoint(), fix="start over with overwrite=True (--overwrite)")
            _check_resume(ckpt, model_config, train_config, dataset, run.latest_checkpoint)
        elif run.latest_checkpoint.exists() and not overwrite:
            raise FileExistsError(
                f"{run.latest_checkpoint} exists; pass resume=True (--resume) to continue it "
                "or overwrite=True (--overwrite) to start over"
            )
        staged = overwrite and run.latest_checkpoint.exists()
        if train_config.amp != "none" and device.type != "cuda":
            log.warning("amp=%r needs CUDA; training in float32 on %s", train_config.amp, device)
        threads = torch.get_num_threads()
        if train_config.num_threads is not None:
            torch.set_num_threads(train_config.num_threads)
        try:
            with process_group(device) as (rank, world, device):
                return _fit(dataset, run, model_config, train_config, ckpt, device, rank, world, progress, staged)
        finally:
            torch.set_num_threads(threads)


class Trainer:
    """The state of a training run and one epoch of its loop.

    :func:`train` adds checkpoints, logging and resume around it; the
    benchmark (``benchmarks/train_throughput.py``) times it directly.

    Parameters
    ----------
    dataset : SDFDataset
    model_config : DecoderConfig
    config : TrainConfig
    device : torch.device
    rank, world : int
        This process's rank and the number of processes (1 without torchrun).

    Raises
    ------
    ValueError
        If ``frames_per_batch`` is not a multiple of ``world``.
    """

    def __init__(self, dataset: SDFDataset, model_config: DecoderConfig, config: TrainConfig, *,
                 device=torch.device("cpu"), rank: int = 0, world: int = 1):
        tc = config
        self.dataset, self.model_config, self.config = dataset, model_config, tc
        self.device, self.world = torch.device(device), world
        self.batch = min(tc.frames_per_batch, dataset.n_total_frames)
        if self.batch % world:
            raise ValueError(
                f"frames_per_batch ({self.batch}) must be a multiple of the number of processes ({world}); "
                f"set train.frames_per_batch to e.g. {max(world, self.batch - self.batch % world)}"
            )
        self.shards = _virtual_shards(dataset.n_total_frames, self.batch)
        self.mine = list(range(rank, self.batch, world))
        torch.manual_seed(tc.seed)
        self.module = AutoDecoder(Decoder(model_config), dataset.n_sequences,
                                  init_std=tc.code_init_std / math.sqrt(model_config.code_length),
                                  variational=tc.variational).to(self.device)
        self.optimizer = torch.optim.Adam(
            [{"params": self.module.decoder.parameters(), "lr": tc.lr_decoder},
             {"params": self.module.code_parameters(), "lr": tc.lr_codes}]
        )
        self.model = nn.parallel.DistributedDataParallel(self.module) if world > 1 else self.module
        self.memory = training_memory(model_config, tc, n_sequences=dataset.n_sequences, n_frames=dataset.n_frames,
                                      shape=dataset.shape, world=world, device=self.device)
        log.info("memory model (%s, per process): %s", self.device,
                 ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in self.memory.items() if k not in ("step_points",
                                                                                                "device")))
        available = psutil.virtual_memory().available if self.device.type == "cpu" else None
        if available is not None and self.memory["total"] > available:
            log.warning("training needs about %.1f GiB but %.1f GiB is available; lower train.points_per_frame or "
                        "train.frames_per_batch", self.memory["total"] / 2**30, available / 2**30)
        self.forward = self._compile_if_it_pays() if tc.compile else self.model
        self.points = FramePoints(
            dataset,
            frames=np.sort(np.concatenate([self.shards[v] for v in self.mine])),
            points_per_frame=tc.points_per_frame,
            near_fraction=tc.near_fraction,
            threshold=tc.threshold,
            mode=tc.sampling_mode,
            gap_fraction=tc.gap_fraction,
            gap_radius=tc.gap_radius,
            seed=tc.seed,
            cache_bytes=tc.cache_mb << 20,
        ).to(self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=tc.amp == "fp16" and self.device.type == "cuda")

    def _compile_if_it_pays(self) -> nn.Module:
        """The model compiled when the run is long enough for the compile to pay, else as it is.

        One eager step on random points of a step's shape is timed (after
        one untimed); compiling pays when :data:`COMPILE_GAIN` of that time
        over all steps of the run exceeds :data:`COMPILE_SECONDS`.  Process
        0 decides for all.  The whole run (and a resumed one, which decides
        from the same total) is then either compiled or eager.
        """
        if _cxx_missing(self.device):
            return self.model
        tc = self.config
        steps = tc.epochs * min(len(s) for s in self.shards)
        generator = torch.Generator(self.device).manual_seed(tc.seed)
        frames = len(self.mine)
        seq = torch.zeros(frames, dtype=torch.int64, device=self.device)
        xyzt = torch.rand((frames, tc.points_per_frame, N_COORDS), generator=generator, device=self.device) * 2 - 1
        seconds = 0.0
        for _ in range(2):  # the first call warms up (allocations, libraries)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            with _amp_context(tc.amp, self.device):
                pred, _ = self.module(seq, xyzt)
            pred.float().sum().backward()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - start
        self.module.zero_grad(set_to_none=True)
        saving = COMPILE_GAIN.get(self.device.type, 0.0) * seconds * steps
        pays = torch.tensor([saving > COMPILE_SECONDS], device=self.device)
        if self.world > 1:
            dist.broadcast(pays, 0)
        log.info("train.compile: an eager step takes %.3f s; compiling would save about %.0f s over %d steps "
                 "against about %.0f s to compile: %s", seconds, saving, steps, COMPILE_SECONDS,
                 "compiling" if pays.item() else "not compiling (the run is too short)")
        return _compiled(self.model, self.device) if pays.item() else self.model

    def run_epoch(self, epoch: int) -> dict:
        """Train one epoch (0-based); returns the epoch's log row without timing.

        The row holds ``epoch`` (1-based), ``loss`` (mean L1 SDF loss over the
        steps and processes), ``code_reg`` (mean weighted code term),
        ``lr_decoder``, ``lr_codes`` and ``points`` (trained, all processes).
        """
        tc, optimizer = self.config, self.optimizer
        lr_dec, lr_codes = learning_rates(tc, epoch)
        optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"] = lr_dec, lr_codes
        round_ = epoch // tc.resample_every if tc.resample_every else 0
        if self.points.round != round_:
            self.points.resample(round_)
        warm = min(1.0, (epoch + 1) / tc.code_reg_warmup_epochs) if tc.code_reg_warmup_epochs else 1.0
        reg_weight = tc.code_reg * warm
        sums = torch.zeros(3, dtype=torch.float64)
        self.model.train()
        for frames in _epoch_batches(self.shards, tc.seed, epoch, self.mine):
            seq, xyzt, target = self.points.batch(frames)
            with _amp_context(tc.amp, self.device):
                pred, z = self.forward(seq, xyzt)
            pred = pred.float()
            if tc.clamp is not None:
                pred, target = pred.clamp(-tc.clamp, tc.clamp), target.clamp(-tc.clamp, tc.clamp)
            sdf_loss = (pred - target).abs().mean()
            reg = self.module.kl(seq).mean() if tc.variational else z.norm(dim=1).mean()
            loss = sdf_loss + reg_weight * reg
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if tc.grad_clip is not None:
                self.scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(self.module.decoder.parameters(), tc.grad_clip)
            self.scaler.step(optimizer)
            self.scaler.update()
            sums += torch.tensor([sdf_loss.item(), reg_weight * reg.item(), 1.0], dtype=torch.float64)
            check_interrupt()
        if self.world > 1:
            dist.all_reduce(sums)
        steps = sums[2].item()
        loss_mean = (sums[0] / steps).item() if steps else float("nan")
        if not math.isfinite(loss_mean):
            raise ValueError(
                f"training diverged at epoch {epoch + 1} (loss {loss_mean}); lower train.lr_decoder "
                f"(now {tc.lr_decoder}); no checkpoint was written for this epoch"
            )
        return {"epoch": epoch + 1, "loss": loss_mean, "code_reg": (sums[1] / steps).item(), "lr_decoder": lr_dec,
                "lr_codes": lr_codes, "points": int(steps) // self.world * self.batch * tc.points_per_frame}

    def state(self) -> dict:
        """Model, codes and optimiser state for a checkpoint."""
        return {
            "decoder": self.module.decoder.state_dict(),
            "codes": self.module.codes.weight.detach().cpu().clone(),
            **({"code_log_var": self.module.log_var.weight.detach().cpu().clone()} if self.config.variational else {}),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state(self, ckpt: dict) -> None:
        """Restore what :meth:`state` saved."""
        self.module.decoder.load_state_dict(ckpt["decoder"])
        with torch.no_grad():
            self.module.codes.weight.copy_(ckpt["codes"])
            if self.module.log_var is not None:  # resume refuses a change of train.variational
                self.module.log_var.weight.copy_(ckpt["code_log_var"])
        self.optimizer.load_state_dict(ckpt["optimizer"])


def _record_configs(run: RunDir, model_config, tc, dataset, device, world) -> None:
    """The ``model`` and ``train`` sections of ``config.json``: what ``latest.pt`` was trained with."""
    run.update_config("model", model_config.to_dict())
    run.update_config("train", {**tc.to_dict(), "data": run.record_path(dataset.folder), "device": str(device),
                                "world_size": world})


def _fit(dataset, run, model_config, tc, ckpt, device, rank, world, progress, staged) -> dict:
    trainer = Trainer(dataset, model_config, tc, device=device, rank=rank, world=world)
    start, history, seconds, points_done = 0, [], 0.0, 0
    if ckpt is not None:
        trainer.load_state(ckpt)
        start, history = int(ckpt["epoch"]), list(ckpt["log"])
        seconds, points_done = float(ckpt["stats"]["seconds"]), int(ckpt["stats"]["points"])
        torch.set_rng_state(ckpt["rng"]["torch"])
    writer = rank == 0
    # An overwrite trains aside: checkpoints and log go to a hidden folder beside checkpoints/ until the end.
    tmp, made = temporary_folder(run.checkpoints) if writer and staged else (None, [])
    folder = tmp if staged else run.checkpoints
    log_path = folder / run.train_log.name if staged else run.train_log
    fresh = ckpt is None and not staged  # a fresh run clears stale snapshots at its first save
    saved = start if ckpt is not None else None
    bar = tqdm(range(start, tc.epochs), desc="train", unit="epoch", initial=start, total=tc.epochs,
               disable=not (progress and writer))
    t_start = time.perf_counter()
    epoch = start
    try:
        for epoch in bar:
            row = trainer.run_epoch(epoch)
            points_done += row.pop("points")
            elapsed = seconds + time.perf_counter() - t_start
            history.append({**row, "seconds": round(elapsed, 3)})
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            last = epoch + 1 == tc.epochs
            if writer and ((epoch + 1) % tc.checkpoint_every == 0 or last):
                state = {
                    "format": FORMAT,
                    "model_config": model_config.to_dict(),
                    "train_config": tc.to_dict(),
                    "data": dataset.fingerprint(),
                    **trainer.state(),
                    "epoch": epoch + 1,
                    "log": history,
                    "stats": {"seconds": elapsed, "points": points_done, "world_size": world, "device": str(device)},
                    "rng": {"torch": torch.get_rng_state()},
                }
                if fresh:
                    for old in run.checkpoints.glob("epoch*.pt"):
                        old.unlink()
                    fresh = False
                save_checkpoint(folder / run.epoch_checkpoint(epoch + 1).name, state, overwrite=True)
                save_checkpoint(folder / run.latest_checkpoint.name, state, overwrite=True)
                saved = epoch + 1  # intact from here on, whatever interrupts the writes below
                _write_log(log_path, history)
                if not staged:
                    _record_configs(run, model_config, tc, dataset, device, world)
    except BaseException as err:
        if tmp is not None:
            discard_folder(tmp, made)
        if not isinstance(err, KeyboardInterrupt):
            raise
        if staged:
            kept = f"the previous model in {run.root} is unchanged (the new training was discarded)"
        elif saved:
            kept = f"the last checkpoint (epoch {saved}) is intact; resume with --resume"
        elif (folder / run.latest_checkpoint.name).is_file():  # written, interrupted before it was counted
            kept = f"the last checkpoint in {folder} is intact; resume with --resume"
        else:
            kept = "no checkpoint was written yet; start again"
        raise Interrupted(f"interrupted at epoch {epoch + 1}; {kept}") from None
    if writer and staged:
        swap_in(tmp, run.checkpoints)
        os.replace(run.checkpoints / run.train_log.name, run.train_log)
        _record_configs(run, model_config, tc, dataset, device, world)
    seconds_total = seconds + time.perf_counter() - t_start
    fit = training_metrics(tc.epochs, {"seconds": seconds_total, "points": points_done}, history,
                           trainer.module.decoder.n_parameters())
    summary = {
        **fit,
        "n_sequences": dataset.n_sequences,
        "n_frames": dataset.n_frames,
        "checkpoint": str(run.latest_checkpoint),
        "device": str(device),
        "world_size": world,
    }
    if writer:
        run.drop_metrics(_DOWNSTREAM)
        run.latent_model.unlink(missing_ok=True)  # fitted to the old model's codes
        run.update_metrics("train", fit)
    return summary

