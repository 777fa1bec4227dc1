"""Codes for cells the model never saw (``cellnb fit``).

The sequences of a prepared data folder (e.g. a run's held-out split
``data/heldout/``) get one latent code each by test-time optimisation with
the decoder frozen (:func:`cellnb.reconstruct.fit_codes`), drawing points by
the run's own training rule (its ``TrainConfig``).  Each fitted code is then
reported:

* how well it reconstructs its sequence: Dice of the decoded masks against
  the input's (``sdf < 0``) and the component count per frame of both
  (:func:`cellnb.sdf.component_counts`);
* where it falls in the latent distribution: its log-likelihood under the
  run's latent model (``latent.npz``, :class:`cellnb.latent.LatentModel`,
  written by the run's evaluation, :func:`cellnb.evaluate.evaluate_run`;
  a run without one is refused unless a strategy is named to fit one now,
  as notebook 03 does before the evaluation), beside the median
  log-likelihood of the training codes,
  and the nearest training code (name, Euclidean distance) beside the median
  nearest-neighbour distance among the training codes, for scale.

The output folder is a :class:`cellnb.workspace.FittedDir` (``codes.npz``
with names and codes, ``table.csv``, ``summary.json``), written whole or not
at all (:func:`cellnb.io.atomic_folder`); ``cellnb generate --from-codes``
starts from its ``codes.npz``.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

from cellnb.checkpoint import load_trained
from cellnb.devices import select_device
from cellnb.errors import Interrupted
from cellnb.io import atomic_folder, check_writable_folder, write_json
from cellnb.latent import LatentModel, fit_latent_model
from cellnb.reconstruct import FIT_ITERATIONS, fit_codes
from cellnb.sampling import SDFDataset
from cellnb.sdf import component_counts, dice
from cellnb.train import TrainConfig
from cellnb.workspace import FittedDir, RunDir

__all__ = ["TABLE_COLUMNS", "fit_run", "point_rule", "read_codes"]

log = logging.getLogger(__name__)

# Columns of the per-sequence table (table.csv); components are joined by spaces, one count per frame.
TABLE_COLUMNS = ("name", "dice", "components_true", "components_fitted", "topology_match", "log_likelihood",
                 "nearest", "nearest_distance")


def point_rule(train_config: dict | TrainConfig) -> dict:
    """The keyword arguments of :func:`cellnb.reconstruct.fit_codes` that repeat a run's training points.

    Parameters
    ----------
    train_config : dict or TrainConfig
        The run's training configuration (``info["train_config"]`` of
        :func:`cellnb.checkpoint.load_trained`).
    """
    tc = train_config if isinstance(train_config, TrainConfig) else TrainConfig.from_dict(train_config)
    return {"points_per_frame": tc.points_per_frame, "near_fraction": tc.near_fraction, "threshold": tc.threshold,
            "mode": tc.sampling_mode, "gap_fraction": tc.gap_fraction, "gap_radius": tc.gap_radius,
            "resample_every": tc.resample_every, "clamp": tc.clamp, "code_reg": tc.code_reg}


def read_codes(path) -> tuple[list[str], np.ndarray]:
    """Names and codes ``(n, L)`` float32 of a ``codes.npz`` written by :func:`fit_run`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codes file {path} does not exist; make it with `cellnb fit --out DIR` (DIR/codes.npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            names, codes = [str(n) for n in z["names"]], np.asarray(z["codes"], dtype=np.float32)
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path} is not a codes file written by `cellnb fit` ({err})") from None
    if codes.ndim != 2 or len(names) != len(codes):
        raise ValueError(f"{path}: {len(names)} names but codes of shape {codes.shape}")
    return names, codes


def _require_latent_model(run: RunDir) -> None:
    if not run.latent_model.is_file():
        raise FileNotFoundError(
            f"{run.root} has no latent model ({run.latent_model.name}) yet; evaluate it first: notebooks "
            f"03_latent_sampling then 05_shape_descriptors with run_dir={run.root} (as `cellnb run` does)")


def _nearest(fitted: np.ndarray, learned: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Index and distance of each fitted code's nearest learned code; median nearest-neighbour distance of the learned."""
    d = cdist(fitted, learned)
    among = cdist(learned, learned)
    np.fill_diagonal(among, np.inf)
    spread = float(np.median(among.min(axis=1))) if len(learned) > 1 else float("nan")
    return d.argmin(axis=1), d.min(axis=1), spread


def fit_run(run, data, *, out=None, iterations: int = FIT_ITERATIONS, seed: int = 0, latent: str | None = None,
            device=None, overwrite: bool = False, progress: bool = True) -> dict:
    """Fit codes to the sequences of a data folder with a run's decoder frozen, report and save them.

    Parameters
    ----------
    run : RunDir or path-like
        Trained and evaluated run (``cellnb train``, then its evaluation: it has ``latent.npz``).
    data : path-like
        Folder of SDF files (``cellnb prepare``), on the run's training grid.
    out : path-like, optional
        Output folder (a :class:`cellnb.workspace.FittedDir`); default
        ``<run>/fitted/<data folder name>``.
    iterations : int
        Optimisation steps per code (:func:`cellnb.reconstruct.fit_codes`).
    seed : int
        Seed of the initial codes and the point draws.
    latent : str, optional
        Score the codes under a latent model of this strategy (e.g.
        ``"gaussian"``, :func:`cellnb.latent.fit_latent_model`) fitted now to
        the run's codes; default the run's own ``latent.npz``, which must exist.
    device : str or torch.device, optional
    overwrite : bool
        Replace an existing ``out`` (only once the new one is complete).
    progress : bool

    Returns
    -------
    summary : dict
        ``run``, ``data``, ``out``, ``n``, ``iterations``, ``seed``,
        ``point_rule``, ``latent_model`` (where the model came from),
        ``train_log_likelihood_median``, ``train_nearest_median``,
        ``dice_mean``, ``seconds`` and ``sequences``: per sequence the
        :data:`TABLE_COLUMNS` and ``spacing``.  Also ``summary.json``.

    Raises
    ------
    ValueError
        Data on another grid or of another frame count than the training
        data (saying both), bad arguments.
    FileNotFoundError
        No trained model, no latent model (the run is not evaluated yet and
        ``latent`` is None), or no SDF file in ``data``.
    FileExistsError
        ``out`` exists and ``overwrite`` is False.
    Interrupted
        Ctrl-C or SIGTERM (nothing was written).
    """
    start = time.perf_counter()
    run = run if isinstance(run, RunDir) else RunDir(run)
    data = Path(data)
    out = Path(out) if out is not None else run.fitted_set(data.name).root
    check_writable_folder(out, overwrite=overwrite)
    run.require_checkpoint()
    if latent is None:
        _require_latent_model(run)
    dataset = SDFDataset(data)
    decoder, learned, names, info = load_trained(run, device=select_device(device))
    train_shape, train_frames = tuple(info["data"]["shape"]), int(info["data"]["n_frames"])
    if tuple(dataset.shape) != train_shape:
        raise ValueError(f"{data} holds frames of {tuple(dataset.shape)} voxels but the run was trained on "
                         f"{train_shape}; prepare the data again with --size {train_shape[0]}")
    if dataset.n_frames != train_frames:
        raise ValueError(f"{data} holds sequences of {dataset.n_frames} frames but the run was trained on "
                         f"{train_frames}; prepare the data again with --frames {train_frames}")
    learned = learned.detach().cpu().numpy().astype(np.float64)
    rule = point_rule(info["train_config"])
    sequences = [dataset.sequence(s) for s in range(len(dataset.names))]
    try:
        codes, recons = fit_codes(decoder, sequences, iterations=iterations, seed=seed, progress=progress, **rule)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; nothing was written to {out}") from None
    codes = codes.numpy()
    if latent is None:
        model, source = LatentModel.load(run.latent_model), f"the run's latent model ({run.latent_model})"
    else:
        model, source = fit_latent_model(latent, learned), f"a {latent} model fitted now to the run's codes"
    model = model.marginal(decoder.config.code_length)
    loglik = model.log_likelihood(codes)
    nearest, distance, spread = _nearest(codes.astype(np.float64), learned)
    rows = []
    for k, (name, sdf, recon) in enumerate(zip(dataset.names, sequences, recons)):
        true_c, fit_c = component_counts(sdf < 0).tolist(), component_counts(recon < 0).tolist()
        rows.append({"name": name, "dice": dice(recon < 0, sdf < 0), "components_true": true_c,
                     "components_fitted": fit_c, "topology_match": true_c == fit_c,
                     "log_likelihood": float(loglik[k]), "nearest": names[nearest[k]],
                     "nearest_distance": float(distance[k]), "spacing": dataset.records[k].get("spacing")})
    summary = {
        "run": str(run.root), "data": str(data), "out": str(out), "n": len(rows), "iterations": int(iterations),
        "seed": int(seed), "point_rule": rule, "latent_model": {"strategy": model.strategy, "source": source},
        "train_log_likelihood_median": float(np.median(model.log_likelihood(learned))),
        "train_nearest_median": spread, "dice_mean": float(np.mean([r["dice"] for r in rows])),
        "sequences": rows,
    }
    try:
        with atomic_folder(out, overwrite=overwrite) as tmp:
            folder = FittedDir(tmp)
            with open(folder.codes_path, "wb") as f:
                np.savez(f, names=np.array(dataset.names, dtype=np.str_), codes=codes.astype(np.float32))
            with open(folder.table_path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(TABLE_COLUMNS)
                for r in rows:
                    writer.writerow([" ".join(map(str, r[c])) if isinstance(r[c], list) else r[c]
                                     for c in TABLE_COLUMNS])
            summary["seconds"] = time.perf_counter() - start
            write_json(folder.summary_path, summary)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; nothing was written to {out}") from None
    log.info("fitted %d codes to %s in %.1f s (mean Dice %.3f)", len(rows), data, summary["seconds"],
             summary["dice_mean"])
    return summary
