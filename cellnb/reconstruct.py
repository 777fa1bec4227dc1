"""Decoding learned codes back, scoring them, and fitting codes to unseen sequences.

* :func:`reconstruct`: every learned code decoded on the training grid and
  compared with its training sequence (Dice, IoU, SDF error near the surface,
  topology over time); the scores go to the ``train`` section of ``metrics.json``.
* :func:`fit_code`: test-time optimisation of a code for a sequence the model
  never saw, with the decoder frozen (DeepSDF, Park et al. 2019, Sec. 4.2).
* :func:`resolution_study`: one learned code at several temporal samplings and
  on a finer grid, dense against narrow band (the ``field`` section).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm, trange

from cellnb.checkpoint import load_trained, training_metrics
from cellnb.config import Config
from cellnb.field import METHODS, compare_methods, evaluate, evaluate_dense, grid_shape
from cellnb.mesh import volume_curve
from cellnb.sampling import NEAR_FRACTION, NEAR_THRESHOLD, SDFDataset, sample_frame
from cellnb.sdf import component_counts, dice, iou, time_coords
from cellnb.workspace import RunDir

__all__ = ["SURFACE_BAND", "ResampleConfig", "reconstruct", "fit_code", "resolution_study"]

SURFACE_BAND = 0.1  # |SDF| (normalised) below which the SDF error "near the surface" is measured
FIT_INIT_STD = 0.01  # DeepSDF's initial code spread for test-time optimisation
FIT_CODE_REG = 1e-4  # DeepSDF's code regularisation weight (Park et al. 2019, Sec. 4.2)


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


def fit_code(decoder, sdf, *, iterations: int = 300, lr: float = 5e-3, points_per_frame: int = 2048,
             near_fraction: float = NEAR_FRACTION, threshold: float = NEAR_THRESHOLD, mode: str = "official",
             seed: int = 0, device=None, init=None, code_reg: float = FIT_CODE_REG,
             progress: bool = False) -> tuple[torch.Tensor, float]:
    """Fit a code to an unseen SDF sequence with the decoder frozen (DeepSDF test-time optimisation).

    Adam minimises the L1 error between the decoder's output and the SDF at
    points drawn from every frame with :func:`cellnb.sampling.sample_frame`
    (fresh points each iteration), plus ``code_reg * |code|^2`` (Park et
    al. 2019, Eq. 9).  The decoder's weights are not changed.

    Parameters
    ----------
    decoder : cellnb.model.Decoder
    sdf : ndarray, shape (T, D0, D1, D2)
        Normalised SDF of the sequence (as in the training data); frame ``k``
        sits at network time ``time_coords(T)[k]``.
    iterations : int
        Optimisation steps.
    lr : float
        Adam step size for the code.
    points_per_frame : int
        Points drawn from each frame per step.
    near_fraction, threshold, mode :
        The point rule (:func:`cellnb.sampling.sample_frame`); use the
        training run's (``TrainConfig``) to fit as the model was trained.
    seed : int
        Seeds the initial code and the point draws.
    device : str or torch.device, optional
        Default the decoder's device (the decoder is moved there).
    init : array-like, shape (L,), optional
        Starting code, e.g. the mean of the learned codes; default
        ``N(0, 0.01^2)`` entries.
    code_reg : float
        Weight of the code's squared norm in the loss.
    progress : bool
        Show a progress bar.

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
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if int(points_per_frame) != points_per_frame or points_per_frame < 1:
        raise ValueError(f"points_per_frame must be a positive integer, got {points_per_frame}")
    device = torch.device(device) if device is not None else next(decoder.parameters()).device
    decoder = decoder.to(device)
    length = decoder.config.code_length
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    if init is None:
        code = torch.randn(length, generator=generator) * FIT_INIT_STD
    else:
        code = torch.as_tensor(init, dtype=torch.float32).detach().clone().cpu()
        if code.shape != (length,):
            raise ValueError(f"init must have shape ({length},), got {tuple(code.shape)}")
    code = code.to(device).requires_grad_(True)
    times = time_coords(sdf.shape[0])
    optimizer = torch.optim.Adam([code], lr=lr)
    with _frozen(decoder):
        for _ in trange(int(iterations), desc="fit code", disable=not progress):
            xyzt, target = [], []
            for t, frame in zip(times, sdf):
                coords, values = sample_frame(frame, int(points_per_frame), near_fraction=near_fraction,
                                              threshold=threshold, mode=mode, rng=rng)
                xyzt.append(np.column_stack([coords, np.full(len(coords), t, dtype=np.float32)]))
                target.append(values)
            xyzt = torch.from_numpy(np.concatenate(xyzt).astype(np.float32)).to(device)
            target = torch.from_numpy(np.concatenate(target).astype(np.float32)).to(device)
            pred = decoder.forward_grouped(code[None], xyzt[None])[0]
            loss = (pred - target).abs().mean() + code_reg * code.pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    fitted = code.detach().cpu()
    recon = evaluate_dense(decoder, fitted, shape=sdf.shape[1:], times=times, device=device)
    return fitted, dice(recon < 0, sdf < 0)


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
