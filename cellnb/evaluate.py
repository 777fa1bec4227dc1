"""Honest evaluation of generated cells: against held-out real cells, beside memorisation.

A generative model that copies its training cells scores perfectly on any
comparison with the training set, so realism is measured here against real
sequences held out from training (``data/heldout/``, :func:`cellnb.prepare.split_sequences`),
next to how close the generated cells come to the training cells.  For each
generated set (a latent strategy at a temperature):

realism against the held-out cells (O)
    per headline descriptor the Wasserstein-1 distance over the real standard
    deviation (``w1_norm``), the KS statistic and the **variety ratio** (the
    spread across G sequences over the spread across O sequences, at the same
    time of life, :func:`variety_ratios`); the leave-one-out **1-NN two-sample accuracy** on
    descriptor time courses (:func:`cellnb.compare.nn1_accuracy`; 0.5: G and O
    cannot be told apart, 1: fully separable);
shape distance between sequences
    ``d(a, b) = 1 - mean_t IoU(a_t, b_t)`` on the common grid
    (:func:`shape_distances`); with it **coverage** (share of held-out
    sequences that are the nearest held-out neighbour of some generated one)
    and **minimum matching distance** (mean distance of a held-out sequence to
    its nearest generated one), after Achlioptas et al. (2018), and a 1-NN
    accuracy on shapes;
novelty
    the **memorisation rate**: the share of generated sequences that come
    closer to a training sequence than any held-out real sequence does;
topology
    the share of generated sequences whose component count over time is
    plausible for the family (:func:`cellnb.compare.topology_plausible`),
    and beside it ``drawn_plausible``, the share among all codes drawn for the
    set: the decoder's own rate where implausible cells were redrawn
    (``+plausible`` sets, :mod:`cellnb.generate`), else the same number.

The training sequences themselves (as many as there are held-out ones, so
the 1-NN accuracy has the same chance level), compared with the held-out
ones the same way, are the reference a perfect model would reach
(``baseline``).  The
recommended set is the one told least easily from real cells
(:func:`realism_error`: 1-NN accuracy away from 0.5 and implausible
topology, equally weighted) among the sets that memorise at most
:attr:`EvaluateConfig.max_memorisation` (mean W1 breaks ties); its latent model becomes the run's ``latent.npz``, the default
of ``cellnb generate``.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellnb.compare import (
    HEADLINE_DESCRIPTORS,
    compare_descriptors,
    nn1_accuracy,
    time_courses,
    topology_plausible,
)
from cellnb.config import Config
from cellnb.descriptors import describe_path
from cellnb.io import atomic_path, read_sdf_h5
from cellnb.sdf import component_counts
from cellnb.workspace import RunDir

__all__ = [
    "EvaluateConfig",
    "shape_distances",
    "memorisation_rate",
    "coverage_mmd",
    "nn1_from_distances",
    "variety_ratios",
    "evaluate_set",
    "realism_error",
    "recommend",
    "evaluate_run",
]

log = logging.getLogger(__name__)

TRAINING = "training"  # the baseline row: the training sequences judged like a generated set


@dataclass(frozen=True)
class EvaluateConfig(Config):
    """Parameters of :func:`evaluate_run` (profile section ``evaluate``).

    Parameters
    ----------
    max_memorisation : float
        A set that memorises more than this share is not recommended.
    descriptors : tuple of str
        Descriptors whose W1/sd and variety ratio are reported and whose mean
        W1/sd breaks ties.
    """

    max_memorisation: float = 0.10
    descriptors: tuple[str, ...] = HEADLINE_DESCRIPTORS

    SECTION = "evaluate"

    def validate(self):
        if not 0.0 <= self.max_memorisation <= 1.0:
            raise ValueError(f"evaluate.max_memorisation must be a share in [0, 1], got {self.max_memorisation}")


def _masks(files) -> np.ndarray:
    """Masks ``sdf < 0`` of SDF files of one grid, stacked: (n, T, D0, D1, D2) bool."""
    stack = [read_sdf_h5(f)[0] < 0 for f in files]
    shapes = {m.shape for m in stack}
    if len(shapes) > 1:
        raise ValueError(f"sequences to compare must share one grid and frame count, got {sorted(shapes)}")
    return np.stack(stack)


def shape_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``1 - mean_t IoU(a_i[t], b_j[t])`` for every pair of mask sequences.

    Parameters
    ----------
    a : ndarray of bool, shape (n, T, D0, D1, D2)
    b : ndarray of bool, shape (m, T, D0, D1, D2)

    Returns
    -------
    d : ndarray of float, shape (n, m)
        In [0, 1]; 0 for identical sequences.  Two empty frames count as IoU 1.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"sequences must have the same frames and grid, got {a.shape[1:]} and {b.shape[1:]}")
    n, m, frames = len(a), len(b), a.shape[1]
    iou = np.zeros((n, m))
    for t in range(frames):
        fa = a[:, t].reshape(n, -1).astype(np.float32)
        fb = b[:, t].reshape(m, -1).astype(np.float32)
        inter = fa @ fb.T  # exact: counts below 2^24 voxels
        union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
        iou += np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return 1.0 - iou / frames


def memorisation_rate(gen_to_train: np.ndarray, heldout_to_train: np.ndarray) -> float:
    """Share of generated sequences nearer a training sequence than any held-out real sequence is.

    Parameters
    ----------
    gen_to_train : ndarray, shape (g, n_train)
    heldout_to_train : ndarray, shape (h, n_train)
    """
    threshold = float(heldout_to_train.min(axis=1).min())
    return float(np.mean(gen_to_train.min(axis=1) < threshold))


def coverage_mmd(gen_to_ref: np.ndarray) -> tuple[float, float]:
    """Coverage and minimum matching distance of a generated set against a reference set.

    Parameters
    ----------
    gen_to_ref : ndarray, shape (g, r)

    Returns
    -------
    coverage : float
        Share of reference sequences that are the nearest reference of at least one generated sequence.
    mmd : float
        Mean over the reference sequences of the distance to their nearest generated sequence.
    """
    covered = np.unique(np.argmin(gen_to_ref, axis=1))
    return len(covered) / gen_to_ref.shape[1], float(gen_to_ref.min(axis=0).mean())


def nn1_from_distances(gen_gen: np.ndarray, gen_ref: np.ndarray, ref_ref: np.ndarray) -> float:
    """Leave-one-out 1-NN two-sample accuracy from the three distance blocks of G and R."""
    full = np.block([[gen_gen, gen_ref], [gen_ref.T, ref_ref]]).astype(float)
    np.fill_diagonal(full, np.inf)
    labels = np.r_[np.ones(len(gen_gen), bool), np.zeros(len(ref_ref), bool)]
    return float(np.mean(labels[np.argmin(full, axis=1)] == labels))


def variety_ratios(reference: pd.DataFrame, generated: pd.DataFrame, columns) -> dict:
    """Spread of each descriptor across generated sequences over that across reference sequences.

    The spread is the standard deviation across sequences at the same
    normalised time (time courses of :func:`cellnb.compare.time_courses` on a
    common grid), averaged over time: variation over a cell's life does not
    count, so a set of one average cell repeated reads 0 and a set as varied
    as the real cells reads 1.
    """
    n_times = int(max(reference.groupby("sequence").size().max(), generated.groupby("sequence").size().max()))
    _, _, o = time_courses(reference, columns=list(columns), n_times=n_times)
    _, _, g = time_courses(generated, columns=list(columns), n_times=n_times)
    out = {}
    for j, c in enumerate(columns):
        sd_o, sd_g = np.nanmean(np.nanstd(o[:, :, j], axis=0)), np.nanmean(np.nanstd(g[:, :, j], axis=0))
        out[c] = _number(float(sd_g / sd_o)) if sd_o > 0 else None
    return out


def _number(value):
    return value if value is not None and math.isfinite(value) else None


def evaluate_set(*, generated: pd.DataFrame, reference: pd.DataFrame, gen_masks: np.ndarray,
                 ref_masks: np.ndarray, train_masks: np.ndarray, ref_ref: np.ndarray, ref_train: np.ndarray,
                 family: str, columns=HEADLINE_DESCRIPTORS, memorise: bool = True) -> dict:
    """Every number of the module docstring for one generated set.

    Parameters
    ----------
    generated, reference : pandas.DataFrame
        Descriptor tables of the set and of the reference (held-out) sequences.
    gen_masks, ref_masks, train_masks : ndarray of bool, shape (n, T, D0, D1, D2)
    ref_ref, ref_train : ndarray
        Shape distances reference-reference and reference-training (computed once for all sets).
    family : str
        Cell family of the topology rule.
    memorise : bool
        Measure memorisation (False for the training set itself, which is its own copy).

    Returns
    -------
    dict
        ``n``, ``w1_norm``, ``ks`` and ``variety`` (per descriptor),
        ``w1_norm_mean``, ``nn1_accuracy`` (descriptor courses),
        ``nn1_shape``, ``coverage``, ``mmd``, ``memorisation``,
        ``nearest_train`` (median distance of a generated sequence to its
        nearest training sequence), ``topology_plausible``.
    """
    stats = compare_descriptors(reference, generated, columns=list(columns))
    gen_ref = shape_distances(gen_masks, ref_masks)
    gen_gen = shape_distances(gen_masks, gen_masks)
    gen_train = shape_distances(gen_masks, train_masks) if memorise else None
    coverage, mmd = coverage_mmd(gen_ref)
    try:
        nn1 = nn1_accuracy(reference, generated)
    except ValueError as err:
        log.warning("1-NN accuracy not computed: %s", err)
        nn1 = None
    topology = [topology_plausible(component_counts(m), family) for m in gen_masks]
    w1 = {c: _number(float(stats.loc[c, "w1_norm"])) for c in columns}
    return {
        "n": int(len(gen_masks)),
        "w1_norm": w1,
        "w1_norm_mean": _number(float(np.mean([v for v in w1.values() if v is not None]))) if any(
            v is not None for v in w1.values()) else None,
        "ks": {c: _number(float(stats.loc[c, "ks_statistic"])) for c in columns},
        "variety": variety_ratios(reference, generated, columns),
        "nn1_accuracy": _number(nn1),
        "nn1_shape": nn1_from_distances(gen_gen, gen_ref, ref_ref) if len(ref_masks) > 1 else None,
        "coverage": coverage,
        "mmd": mmd,
        "memorisation": memorisation_rate(gen_train, ref_train) if memorise else None,
        "nearest_train": float(np.median(gen_train.min(axis=1))) if memorise else None,
        "topology_plausible": float(np.mean(topology)),
    }


def realism_error(summary: dict) -> float:
    """How easily a generated set is told from real cells, 0 (not at all) to 1 (always).

    The mean of two shares that both reach 1 for a set any observer tells
    apart: the 1-NN two-sample error away from chance, ``|1-NN - 0.5| / 0.5``
    (shapes and descriptor time courses), and the share of sequences whose
    component count over time is implausible for the family (a division that
    merges back, a protrusion that breaks off: :func:`cellnb.compare.topology_plausible`),
    which shape distances barely see since a bridge or a fragment is a few voxels.
    """
    nn1 = summary["nn1_accuracy"] if summary["nn1_accuracy"] is not None else 1.0
    topology = summary.get("topology_plausible")
    implausible = 1.0 - topology if topology is not None else 0.0
    return 0.5 * (abs(nn1 - 0.5) / 0.5 + implausible)


def recommend(sets: dict, *, max_memorisation: float) -> str:
    """The set with the lowest :func:`realism_error` among those memorising at most ``max_memorisation``.

    Mean W1/sd breaks ties; when no set memorises little enough, the least
    memorising one is recommended (with a warning).
    """
    if not sets:
        raise ValueError("no generated sets to choose from; generate some first")

    def realism(name):
        s = sets[name]
        return realism_error(s), s["w1_norm_mean"] if s["w1_norm_mean"] is not None else math.inf

    novel = [n for n, s in sets.items() if s["memorisation"] is None or s["memorisation"] <= max_memorisation]
    if novel:
        return min(novel, key=realism)
    least = min(sets, key=lambda n: (sets[n]["memorisation"], realism(n)))
    log.warning("every generated set memorises more than %.0f%% of its sequences; recommending the least "
                "memorising one, %s", 100 * max_memorisation, least)
    return least


def _write_table(table: pd.DataFrame, path) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        table.to_csv(tmp, index=False)


def evaluate_run(run, config: EvaluateConfig | None = None, *, progress: bool = False) -> dict:
    """Judge every generated set of a run against its held-out real sequences (notebook 05).

    Writes the descriptor tables (``descriptors/<name>.csv``), the
    ``evaluate`` section of ``metrics.json`` and the recommended set's latent
    model as the run's ``latent.npz``.

    Returns
    -------
    dict
        ``family``, ``reference`` (``"heldout"``, or ``"training"`` when the
        data set was too small to hold sequences out: then a warning says so
        and memorisation is not measured), ``warning``, ``n_train``,
        ``n_reference``, ``sets`` ({name: :func:`evaluate_set`}),
        ``baseline`` (the training sequences judged the same way),
        ``recommended``, ``rule``, ``tables`` ({name: descriptor table}, with
        ``"training"`` and ``"heldout"``) and ``seconds``.
    """
    config = config or EvaluateConfig()
    run = run if isinstance(run, RunDir) else RunDir(run)
    names = run.sampled_sets()
    if not names:
        raise FileNotFoundError(f"no generated sequences in {run.generated}; run 03_latent_sampling "
                                f"(or `cellnb generate --run {run.root}`) first")
    start = time.perf_counter()
    data = run.data_dir
    train_files, held_files = run.data_files(), data.heldout_files()
    family = data.family(default=run.name)
    warning = None
    if len(held_files) < 2:
        warning = (f"{run.data} holds {len(held_files)} held-out sequences (the data set was too small to "
                   "split): generated cells are judged against the training cells, which rewards copying, "
                   "and memorisation is not measured")
        log.warning(warning)
    tables = {TRAINING: describe_path(run.data, progress=progress)}
    tables["heldout"] = describe_path(data.heldout, progress=progress) if not warning else tables[TRAINING]
    train_masks = _masks(train_files)
    ref_masks = _masks(held_files) if not warning else train_masks
    reference = tables["heldout"]
    ref_ref = shape_distances(ref_masks, ref_masks)
    ref_train = shape_distances(ref_masks, train_masks)
    common = dict(reference=reference, ref_masks=ref_masks, train_masks=train_masks, ref_ref=ref_ref,
                  ref_train=ref_train, family=family, columns=config.descriptors)
    sets = {}
    for name in names:
        folder = run.generated_set(name)
        tables[name] = describe_path(folder.sdf, progress=progress)
        masks = _masks(folder.sdf_files())
        if masks.shape[2:] != train_masks.shape[2:]:
            raise ValueError(f"generated set {name} has frames of {masks.shape[2:]}, the training data "
                             f"{train_masks.shape[2:]}; generate on the training grid to compare shapes")
        if masks.shape[1] != train_masks.shape[1]:  # compare at the training frames' times: nearest frames
            masks = masks[:, np.round(np.linspace(0, masks.shape[1] - 1, train_masks.shape[1])).astype(int)]
        sets[name] = evaluate_set(generated=tables[name], gen_masks=masks, memorise=not warning, **common)
        screen = folder.read_summary().get("screen") if folder.summary_path.is_file() else None
        sets[name]["drawn_plausible"] = screen["acceptance"] if screen else sets[name]["topology_plausible"]
    baseline = None
    if not warning:  # as many training sequences as held-out ones, so 1-NN accuracy has the same chance level
        pick = np.sort(np.random.default_rng(0).permutation(len(train_files))[: len(ref_masks)])
        names_picked = [tables[TRAINING]["sequence"].unique()[i] for i in pick]
        subset = tables[TRAINING][tables[TRAINING]["sequence"].isin(names_picked)]
        baseline = evaluate_set(generated=subset, gen_masks=train_masks[pick], memorise=False, **common)
    candidates = {n: s for n, s in sets.items() if run.generated_set(n).latent_model_path.is_file()}
    recommended = recommend(candidates or sets, max_memorisation=config.max_memorisation)
    rule = (f"lowest realism error against held-out cells (mean of |1-NN accuracy - 0.5| / 0.5 and the share "
            f"of implausible topology) among the sets memorising at most {config.max_memorisation:.0%}; "
            f"mean W1/sd breaks ties")
    seconds = time.perf_counter() - start
    with run.lock("evaluate"):
        for name, table in tables.items():
            _write_table(table, run.descriptor_table(name))
        model = run.generated_set(recommended).latent_model_path
        if model.is_file():
            with atomic_path(run.latent_model, overwrite=True) as tmp:
                shutil.copyfile(model, tmp)
        run.update_metrics("evaluate", {
            "family": family, "reference": "training" if warning else "heldout", "warning": warning,
            "n_train": len(train_files), "n_reference": len(ref_masks), "sets": sets, "baseline": baseline,
            "recommended": recommended, "rule": rule, "descriptors": list(config.descriptors),
            "seconds": round(seconds, 2),
        })
    return {"family": family, "reference": "training" if warning else "heldout", "warning": warning,
            "n_train": len(train_files), "n_reference": len(ref_masks), "sets": sets, "baseline": baseline,
            "recommended": recommended, "rule": rule, "tables": tables, "seconds": seconds}
