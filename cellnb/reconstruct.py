"""Decoding learned codes back, scoring them, and fitting codes to unseen sequences.

* :func:`reconstruct`: every learned code decoded on the training grid and
  compared with its training sequence (Dice, IoU, SDF error near the surface,
  topology over time); the scores go to the ``train`` section of ``metrics.json``.
* :func:`fit_codes`: test-time optimisation of codes for sequences the model
  never saw, with the decoder frozen (DeepSDF, Park et al. 2019, Sec. 4.2),
  several at once; :func:`fit_code` for one (``cellnb fit``: :mod:`cellnb.fit`).
* :func:`resolution_study`: one learned code at several temporal samplings and
  on a finer grid, dense against narrow band (the ``field`` section).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cellnb.checkpoint import load_trained, training_metrics
from cellnb.config import Config
from cellnb.field import METHODS, compare_methods, evaluate, evaluate_dense, grid_shape
from cellnb.mesh import volume_curve
from cellnb.sampling import (
    GAP_RADIUS,
    NEAR_FRACTION,
    NEAR_THRESHOLD,
    SDFDataset,
    gap_voxels,
    sample_indices,
)
from cellnb.sdf import component_counts, dice, grid_axes, iou, time_coords
from cellnb.signals import check_interrupt
from cellnb.workspace import RunDir

__all__ = ["SURFACE_BAND", "ResampleConfig", "reconstruct", "fit_codes", "fit_code", "resolution_study"]

SURFACE_BAND = 0.1  # |SDF| (normalised) below which the SDF error "near the surface" is measured
FIT_INIT_STD = 0.01  # DeepSDF's initial code spread for test-time optimisation
FIT_CODE_REG = 1e-4  # DeepSDF's code regularisation weight (Park et al. 2019, Sec. 4.2)
FIT_LR = 5e-3  # Adam step of a code at test time (DeepSDF's reconstruction uses 5e-3)
FIT_ITERATIONS = 300  # test-time steps; each sees every frame of the sequence once, like a training epoch
FIT_BATCH = 8  # sequences whose codes are optimised together


def reconstruct(
    run,
    *,
    size=None,
    frames: int | None = None,
    data=None,
    sequences=None,
    chunk_points: int = 2**16,
    device=None,
    progress: bool = True,
) -> dict:
    """Decode the learned codes on a grid and score them against the training data.

    At the training grid size and frame count, every sequence is compared
    with its training masks (``sdf < 0``): Dice and IoU over the whole
    sequence, mean ``|SDF error|`` where the true ``|SDF| <= 0.1`` (normalised
    units, and voxels when the file records its scale), and the number of
    connected components per frame.  The ``train`` section of
    ``metrics.json`` is then rewritten with these scores and the training
    numbers.  At another size or frame count only the reconstructions are
    returned.

    Parameters
    ----------
    run : RunDir or path-like
    size : int or tuple of 3 ints, optional
        Grid shape; default the training shape.
    frames : int, optional
        Frame count (evenly spaced in time); default the training count.
    data : path-like, optional
        SDF data set to score against; default the one recorded in the run's
        config (else ``run/data``).
    sequences : list of str, optional
        Names of the sequences to decode; default all.
    chunk_points : int
        Points per network call.
    device : str or torch.device, optional
    progress : bool

    Returns
    -------
    dict
        ``n_sequences``, ``size``, ``frames``, ``names``, ``masks`` (name ->
        bool array (T, D0, D1, D2)) and, when scored, ``dice_mean``,
        ``iou_mean``, ``sdf_error_near_mean``, ``dice``, ``iou``,
        ``sdf_error_near`` (per sequence), ``topology_sequences`` (sequences
        whose true component count changes, e.g. dividing cells),
        ``topology_kept`` (those whose reconstruction has the same count in
        every frame), ``components_match`` (all sequences whose
        reconstruction has the true count in every frame), ``components``
        (name -> [true counts, reconstructed counts]) and the training numbers ``n_parameters``, ``epochs``,
        ``points_per_second``, ``seconds``, ``final_loss`` (as :func:`train` wrote them).
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    decoder, codes, names, info = load_trained(run, device=device)
    train_shape = tuple(info["data"]["shape"])
    train_frames = int(info["data"]["n_frames"])
    shape = train_shape if size is None else grid_shape(size)
    n_t = train_frames if frames is None else int(frames)
    picks = names if sequences is None else list(sequences)
    unknown = [n for n in picks if n not in names]
    if unknown:
        raise ValueError(f"sequences {unknown} are not in the run; known: {names}")
    scored = shape == train_shape and n_t == train_frames
    dataset = None
    if scored:
        folder = Path(data) if data is not None else run.training_data()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"the training data ({folder}) is gone, so the reconstruction cannot be "
                "scored; pass data=FOLDER, or a size/frame count other than the training one to skip scoring"
            )
        dataset = SDFDataset(folder)
        if dataset.fingerprint() != info["data"]:
            raise ValueError(f"data set {folder} is not the one the run was trained on (names or content differ: "
                             f"{info['data']['names']}); pass data=FOLDER with the training data")
    times = time_coords(n_t)
    out = {"n_sequences": len(picks), "size": list(shape), "frames": n_t, "names": picks, "masks": {}}
    per = {"dice": {}, "iou": {}, "sdf_error_near": {}, "sdf_error_near_voxels": {}, "components": {}}
    for name in tqdm(picks, desc="reconstruct", unit="seq", disable=not progress):
        s = names.index(name)
        sdf = evaluate_dense(decoder, codes[s], shape=shape, times=times, chunk_points=chunk_points,
                             device=codes.device)
        rec = sdf < 0
        out["masks"][name] = rec
        if not scored:
            continue
        truth_sdf = dataset.sequence(s)
        truth = truth_sdf < 0
        per["dice"][name] = dice(rec, truth)
        per["iou"][name] = iou(rec, truth)
        near = np.abs(truth_sdf) <= SURFACE_BAND
        err = float(np.abs(sdf[near] - truth_sdf[near]).mean()) if near.any() else 0.0
        per["sdf_error_near"][name] = err
        scale = dataset.records[s].get("scale")
        if scale:
            per["sdf_error_near_voxels"][name] = err * float(scale)
        per["components"][name] = [component_counts(truth).tolist(), component_counts(rec).tolist()]
    if not scored:
        return out
    changing = [n for n, (t, _) in per["components"].items() if len(set(t)) > 1]
    kept = [n for n in changing if per["components"][n][0] == per["components"][n][1]]
    metrics = {
        **training_metrics(int(info["epoch"]), info["stats"], info["log"], decoder.n_parameters()),
        "n_sequences": len(picks),
        "size": list(shape),
        "frames": n_t,
        "dice_mean": float(np.mean(list(per["dice"].values()))),
        "iou_mean": float(np.mean(list(per["iou"].values()))),
        "sdf_error_near_mean": float(np.mean(list(per["sdf_error_near"].values()))),
        "topology_sequences": len(changing),
        "topology_kept": len(kept),
        "components_match": sum(t == r for t, r in per["components"].values()),
        **{k: v for k, v in per.items() if v},
    }
    if per["sdf_error_near_voxels"]:
        metrics["sdf_error_near_voxels_mean"] = float(np.mean(list(per["sdf_error_near_voxels"].values())))
    with run.lock("reconstruct"):
        run.update_metrics("train", metrics)
    out.update(metrics)
    return out


@contextlib.contextmanager
def _frozen(module: torch.nn.Module):
    """Turn off gradients of a module's parameters for the block, then restore them."""
    flags = [p.requires_grad for p in module.parameters()]
    try:
        for p in module.parameters():
            p.requires_grad_(False)
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def _check_fit(iterations, lr, points_per_frame, batch_size) -> None:
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if int(points_per_frame) != points_per_frame or points_per_frame < 1:
        raise ValueError(f"points_per_frame must be a positive integer, got {points_per_frame}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")


class _SequencePoints:
    """Fresh training points of one sequence per step, drawn by the run's rule with seed ``(seed, step, k)``.

    The points of sequence ``k`` at step ``r`` depend only on ``(seed, r, k)``,
    so a code fitted in a batch is the one fitted alone.  Gap voxels are found
    once per frame.
    """

    def __init__(self, sdf: np.ndarray, index: int, *, points_per_frame: int, rule: dict, seed: int):
        self.sdf, self.index, self.points_per_frame, self.rule, self.seed = sdf, index, points_per_frame, rule, seed
        self.gaps = [np.flatnonzero(gap_voxels(f, radius=rule["gap_radius"])) if rule["gap_fraction"] > 0 else None
                     for f in sdf]
        axes = np.meshgrid(*grid_axes(sdf.shape[1:]), indexing="ij")
        self.coords = np.stack([a.ravel() for a in axes], axis=1)
        self.times = time_coords(sdf.shape[0])

    def draw(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``xyzt`` (T * P, 4) and target SDF (T * P,) of one step."""
        rng = np.random.default_rng((self.seed, int(step), self.index))
        xyzt, target = [], []
        for t, frame, gap in zip(self.times, self.sdf, self.gaps):
            flat = frame.ravel()
            idx = sample_indices(flat, self.points_per_frame, gap=gap, rng=rng, **self.rule)
            xyzt.append(np.column_stack([self.coords[idx], np.full(len(idx), t, dtype=np.float32)]))
            target.append(flat[idx])
        return np.concatenate(xyzt), np.concatenate(target)


def fit_codes(decoder, sequences, *, iterations: int = FIT_ITERATIONS, lr: float = FIT_LR,
              points_per_frame: int = 2048, near_fraction: float = NEAR_FRACTION, threshold: float = NEAR_THRESHOLD,
              mode: str = "official", gap_fraction: float = 0.0, gap_radius: int = GAP_RADIUS,
              resample_every: int = 1, clamp: float | None = None, seed: int = 0, init=None,
              code_reg: float = FIT_CODE_REG, batch_size: int = FIT_BATCH, device=None,
              progress: bool = False) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Fit one code to each of several unseen SDF sequences, the decoder frozen (DeepSDF test-time optimisation).

    Adam minimises, for each sequence, the L1 error between the decoder's
    output and the SDF at points drawn from every frame by the training rule
    (:func:`cellnb.sampling.sample_indices`), plus ``code_reg * |code|^2``
    (Park et al. 2019, Eq. 9).  Up to ``batch_size`` sequences of one frame
    count are optimised together through :meth:`cellnb.model.Decoder.forward_grouped`
    (one group of points per code).  The loss is the sum of the sequences'
    own losses and Adam works entry by entry, so every code is the one a fit
    of its sequence alone gives (up to float rounding), whatever the batch.
    The decoder's weights are not changed.

    Parameters
    ----------
    decoder : cellnb.model.Decoder
    sequences : list of ndarray, each shape (T, D0, D1, D2)
        Normalised SDF sequences (as in the training data); frame ``k`` sits
        at network time ``time_coords(T)[k]``.
    iterations : int
        Optimisation steps.
    lr : float
        Adam step size of the codes.
    points_per_frame : int
        Points drawn from each frame per step.
    near_fraction, threshold, mode, gap_fraction, gap_radius :
        The point rule (:func:`cellnb.sampling.sample_frame`); use the
        training run's (``TrainConfig``) to fit as the model was trained.
    resample_every : int
        Draw new points every this many steps (the run's ``resample_every``:
        one step sees every frame once, like one training epoch).
    clamp : float, optional
        Clamp prediction and target to ``[-clamp, clamp]`` before the loss (the run's ``clamp``).
    seed : int
        Seeds the initial codes (sequence ``k``: ``(seed, k)``) and the point draws (``(seed, round, k)``).
    init : array-like, shape (L,) or (N, L), optional
        Starting code(s), e.g. the mean of the learned codes; default
        ``N(0, 0.01^2)`` entries.
    code_reg : float
        Weight of a code's squared norm in its loss.
    batch_size : int
        Sequences optimised together.
    device : str or torch.device, optional
        Default the decoder's device (the decoder is moved there).
    progress : bool
        Show a progress bar (one tick per step of a batch).

    Returns
    -------
    codes : Tensor of float32, shape (N, L), on the CPU
    reconstructions : list of ndarray of float32, each shape (T, D0, D1, D2)
        The SDF of each fitted code, decoded densely on its sequence's grid and frames.
    """
    sequences = [np.asarray(s, dtype=np.float32) for s in sequences]
    if not sequences:
        raise ValueError("sequences is empty; pass at least one SDF sequence")
    bad = [s.shape for s in sequences if s.ndim != 4]
    if bad:
        raise ValueError(f"sdf must have shape (T, D0, D1, D2), got {bad[0]}")
    _check_fit(iterations, lr, points_per_frame, batch_size)
    if int(resample_every) != resample_every or resample_every < 0:
        raise ValueError(f"resample_every must be a non-negative integer, got {resample_every}")
    device = torch.device(device) if device is not None else next(decoder.parameters()).device
    decoder = decoder.to(device)
    length = decoder.config.code_length
    if init is None:
        start = torch.from_numpy(np.stack([np.random.default_rng((seed, k)).standard_normal(length)
                                           for k in range(len(sequences))]).astype(np.float32)) * FIT_INIT_STD
    else:
        init = init.detach().cpu() if torch.is_tensor(init) else init
        start = torch.as_tensor(np.asarray(init, dtype=np.float32)).clone()
        if start.shape not in ((length,), (len(sequences), length)):
            raise ValueError(f"init must have shape ({length},) or ({len(sequences)}, {length}), got {tuple(start.shape)}")
        start = start.expand(len(sequences), length).clone()
    rule = {"near_fraction": near_fraction, "threshold": threshold, "mode": mode, "gap_fraction": gap_fraction,
            "gap_radius": gap_radius}
    groups: dict[int, list[int]] = {}
    for k, s in enumerate(sequences):
        groups.setdefault(s.shape[0], []).append(k)
    batches = [ks[i : i + int(batch_size)] for ks in groups.values() for i in range(0, len(ks), int(batch_size))]
    fitted = start.clone()
    with _frozen(decoder), tqdm(total=len(batches) * int(iterations), desc="fit codes", unit="step",
                                disable=not progress) as bar:
        for batch in batches:
            points = [_SequencePoints(sequences[k], k, points_per_frame=int(points_per_frame), rule=rule, seed=seed)
                      for k in batch]
            code = start[batch].to(device).requires_grad_(True)
            optimizer = torch.optim.Adam([code], lr=lr)
            for step in range(int(iterations)):
                if step == 0 or (resample_every and step % resample_every == 0):
                    draws = [p.draw(step // resample_every if resample_every else 0) for p in points]
                    xyzt = torch.from_numpy(np.stack([d[0] for d in draws])).to(device)
                    target = torch.from_numpy(np.stack([d[1] for d in draws])).to(device)
                pred = decoder.forward_grouped(code, xyzt)
                tgt = target
                if clamp is not None:
                    pred, tgt = pred.clamp(-clamp, clamp), target.clamp(-clamp, clamp)
                loss = ((pred - tgt).abs().mean(dim=1) + code_reg * code.pow(2).sum(dim=1)).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.update(1)
                check_interrupt()
            fitted[batch] = code.detach().cpu()
    reconstructions = [evaluate_dense(decoder, fitted[k], shape=s.shape[1:], times=time_coords(s.shape[0]),
                                      device=device) for k, s in enumerate(sequences)]
    return fitted, reconstructions


def fit_code(decoder, sdf, *, iterations: int = FIT_ITERATIONS, lr: float = FIT_LR, points_per_frame: int = 2048,
             near_fraction: float = NEAR_FRACTION, threshold: float = NEAR_THRESHOLD, mode: str = "official",
             seed: int = 0, device=None, init=None, code_reg: float = FIT_CODE_REG,
             progress: bool = False) -> tuple[torch.Tensor, float]:
    """Fit a code to one unseen SDF sequence with the decoder frozen: :func:`fit_codes` of one sequence.

    Parameters
    ----------
    decoder : cellnb.model.Decoder
    sdf : ndarray, shape (T, D0, D1, D2)
        Normalised SDF of the sequence.
    iterations, lr, points_per_frame, near_fraction, threshold, mode, seed, device, code_reg, progress :
        As in :func:`fit_codes`.
    init : array-like, shape (L,), optional
        Starting code; default ``N(0, 0.01^2)`` entries.

    Returns
    -------
    code : Tensor of float32, shape (L,), on the CPU
    dice : float
        Dice of the masks ``sdf < 0`` of the fitted code (dense evaluation on
        the same grid and frames) against those of ``sdf``.
    """
    sdf = np.asarray(sdf, dtype=np.float32)
    if sdf.ndim != 4:
        raise ValueError(f"sdf must have shape (T, D0, D1, D2), got {sdf.shape}")
    length = decoder.config.code_length
    if init is not None and np.shape(init) != (length,):
        raise ValueError(f"init must have shape ({length},), got {tuple(np.shape(init))}")
    codes, recon = fit_codes(decoder, [sdf], iterations=iterations, lr=lr, points_per_frame=points_per_frame,
                             near_fraction=near_fraction, threshold=threshold, mode=mode, seed=seed, init=init,
                             code_reg=code_reg, device=device, progress=progress)
    return codes[0], dice(recon[0] < 0, sdf < 0)


@dataclass(frozen=True)
class ResampleConfig(Config):
    """Parameters of :func:`resolution_study` (profile section ``resample``).

    Parameters
    ----------
    time_samplings : tuple of int
        Frame counts one code is decoded at (the paper's temporal sampling figure).
    super_resolution : int
        The finer grid is this many times the training grid per axis.
    method : {"narrow", "dense"}
        Route of the temporal samplings (:mod:`cellnb.field`).
    """

    time_samplings: tuple[int, ...] = (5, 10, 30, 120)
    super_resolution: int = 4
    method: str = "narrow"

    SECTION = "resample"

    def validate(self):
        if not self.time_samplings or min(self.time_samplings) < 1:
            raise ValueError(f"resample.time_samplings must list frame counts >= 1, got {list(self.time_samplings)}")
        if self.super_resolution < 1:
            raise ValueError(f"resample.super_resolution must be at least 1, got {self.super_resolution}")
        if self.method not in METHODS:
            raise ValueError(f"resample.method must be one of {', '.join(METHODS)}, got {self.method!r}")


def resolution_study(run, config: ResampleConfig | None = None, *, sequence: int = 0, device="cpu") -> dict:
    """One learned code at several temporal samplings and on a finer grid (notebook 04).

    The code of training sequence ``sequence`` is decoded on the training
    grid at each frame count of ``config.time_samplings``, and its volume
    measured on the surface meshes; then the frame at t = 0 is decoded on a
    grid ``config.super_resolution`` times finer per axis, densely and by the
    narrow band (:func:`cellnb.field.compare_methods`), and on the training
    grid.  The comparison goes to the ``field`` section of ``metrics.json``.

    Returns
    -------
    dict
        ``name``, ``shape`` (training grid), ``spacing`` (of the training
        grid), ``record`` (of the sequence's SDF file), ``samplings`` ({T: sdf (T, D0, D1, D2)}), ``volumes`` ({T: (times,
        volumes)}), ``field`` (the metrics written), ``fine`` and ``coarse``
        (the t = 0 frame on the finer and the training grid).
    """
    config = config or ResampleConfig()
    run = run if isinstance(run, RunDir) else RunDir(run)
    decoder, codes, names, info = load_trained(run, device=device)
    shape = tuple(info["data"]["shape"])
    name = names[sequence]
    folder = run.training_data()
    record = SDFDataset(folder).records[sequence] if folder.is_dir() else {}
    spacing = record.get("spacing") or [1.0, 1.0, 1.0]
    code = codes[sequence]
    samplings = {T: evaluate(decoder, code, shape=shape, times=time_coords(T), method=config.method)[0]
                 for T in config.time_samplings}
    volumes = {T: (time_coords(T), volume_curve(sdf, spacing=spacing, method="mesh")) for T, sdf in samplings.items()}
    fine_shape = grid_shape(tuple(config.super_resolution * s for s in shape))
    t_mid = np.zeros(1, dtype=np.float32)
    field = compare_methods(decoder, code, shape=fine_shape, times=t_mid)
    run.update_metrics("field", field)
    fine = evaluate(decoder, code, shape=fine_shape, times=t_mid)[0][0]
    coarse = evaluate_dense(decoder, code, shape=shape, times=t_mid)[0]
    return {"name": name, "shape": shape, "spacing": spacing, "record": record, "samplings": samplings,
            "volumes": volumes,
            "field": field, "fine": fine, "coarse": coarse}
