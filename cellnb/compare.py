"""Real (O) versus generated (G) shape statistics, from descriptor tables.

The inputs are tables of :func:`cellnb.descriptors.describe_sequence` (one row
per frame, columns ``sequence``, ``frame``, ``t`` and the descriptors).

* Per descriptor, over all frames: medians and interquartile ranges, the
  two-sample Kolmogorov-Smirnov statistic and p-value
  (``scipy.stats.ks_2samp``), and the Wasserstein-1 distance
  (``scipy.stats.wasserstein_distance``) divided by the real data's standard
  deviation (``w1_norm``; 0 = same distribution, 1 = off by about one real
  standard deviation).
* Over whole sequences: the 1-nearest-neighbour two-sample accuracy
  (:func:`nn1_accuracy`) on descriptor time courses.
* Topology: the share of sequences whose component count over time is a valid
  trajectory for the family (:func:`topology_plausible`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from scipy.stats import ks_2samp, wasserstein_distance

from cellnb.descriptors import DESCRIPTOR_COLUMNS

__all__ = [
    "W1_MATCH",
    "HEADLINE_DESCRIPTORS",
    "best_strategy",
    "topology_possible",
    "topology_plausible",
    "topology_summary",
    "time_courses",
    "compare_descriptors",
    "nn1_accuracy",
    "comparison_report",
    "format_cell",
    "to_markdown",
    "reading",
]

logger = logging.getLogger(__name__)

W1_MATCH = 0.5  # w1_norm at or below this reads as "matches" (issue 5 quality target)
NN1_HARD = 0.6  # 1-NN accuracy at or below this: real and generated are hard to tell apart
NN1_PARTLY = 0.8  # above NN1_HARD and at or below this: partly distinguishable
NN1_COPIES = 0.35  # below this, sequences sit nearer the other sample than their own: near copies

HEADLINE_DESCRIPTORS = ("volume", "surface_area", "sphericity")  # the realism targets
_STAT_COLUMNS = ["real_median", "real_iqr", "gen_median", "gen_iqr", "ks_statistic", "ks_pvalue", "w1", "w1_norm"]


def topology_possible(counts, family: str) -> bool:
    """Whether the first frames' component counts can still begin a plausible trajectory.

    The rule of :func:`topology_plausible` without its last-frame condition:
    a prefix that fails it (a division merging back, a broken-off part) can
    be given up before the rest of the sequence is decoded
    (:func:`cellnb.generate.generate` with ``plausible``).

    Parameters
    ----------
    counts : sequence of int
        Number of connected components of the first frames, in time order.
    family : str
        As in :func:`topology_plausible`.

    Returns
    -------
    bool
    """
    counts = [int(c) for c in counts]
    if not counts:
        raise ValueError("counts is empty; pass one component count per frame")
    if family == "dividing":
        return counts[0] == 1 and all(c in (1, 2) for c in counts) and all(b >= a for a, b in zip(counts, counts[1:]))
    return all(c == 1 for c in counts)


def topology_plausible(counts, family: str) -> bool:
    """Whether a component count over time is a valid trajectory for a cell family.

    Parameters
    ----------
    counts : sequence of int
        Number of connected components of each frame, in time order.
    family : str
        ``"dividing"``: starts with 1 component, ends with 2, never 0 nor more
        than 2, never goes back from 2 to 1 (non-decreasing).  Any other family
        (``"deforming"``, ``"filopodial"``, real single cells): exactly 1
        component in every frame.

    Returns
    -------
    bool
    """
    counts = [int(c) for c in counts]
    return topology_possible(counts, family) and (family != "dividing" or counts[-1] == 2)


def _sequences(df: pd.DataFrame):
    """(name, rows sorted by frame) of each sequence of a descriptor table."""
    missing = {"sequence", "frame", "t"} - set(df.columns)
    if missing:
        raise ValueError(
            f"descriptor table lacks columns {sorted(missing)}; make it with cellnb.descriptors.describe_sequence"
        )
    return [(name, rows.sort_values("frame")) for name, rows in df.groupby("sequence", sort=True)]


def topology_summary(df: pd.DataFrame, family: str) -> dict:
    """Share of a table's sequences whose ``n_components`` over time is plausible for ``family``.

    Returns
    -------
    summary : dict
        ``{"family", "n_sequences", "n_plausible", "share_plausible"}``
        (``share_plausible`` is None for an empty table).
    """
    flags = [topology_plausible(rows["n_components"].to_numpy(), family) for _, rows in _sequences(df)]
    n = len(flags)
    return {
        "family": family,
        "n_sequences": n,
        "n_plausible": int(sum(flags)),
        "share_plausible": (sum(flags) / n) if n else None,
    }


def time_courses(df: pd.DataFrame, *, columns=None, n_times: int | None = None) -> tuple[list, np.ndarray, np.ndarray]:
    """Each sequence's descriptors resampled to a common time grid.

    Each descriptor of each sequence is linearly interpolated over the
    sequence's normalised time ``t`` (``linspace(-1, 1, T)``, whatever ``T``)
    at ``n_times`` points of ``linspace(-1, 1, n_times)``; NaN frames (empty
    masks) are skipped, and a descriptor with no finite value stays NaN.

    Parameters
    ----------
    df : pandas.DataFrame
        Descriptor table.
    columns : list of str, optional
        Descriptors; default all of :data:`cellnb.descriptors.DESCRIPTOR_COLUMNS` in ``df``.
    n_times : int, optional
        Grid length; default the largest frame count of a sequence.

    Returns
    -------
    names : list
        Sequence names, sorted.
    grid : ndarray, shape (n_times,)
    courses : ndarray of float, shape (n_sequences, n_times, n_columns)
    """
    columns = _columns(df, columns)
    sequences = _sequences(df)
    if n_times is None:
        n_times = max((len(rows) for _, rows in sequences), default=1)
    if n_times < 1:
        raise ValueError(f"n_times must be at least 1, got {n_times}")
    grid = np.linspace(-1.0, 1.0, n_times) if n_times > 1 else np.zeros(1)
    courses = np.full((len(sequences), n_times, len(columns)), np.nan)
    for i, (_, rows) in enumerate(sequences):
        t = rows["t"].to_numpy(dtype=float)
        for j, column in enumerate(columns):
            values = rows[column].to_numpy(dtype=float)
            ok = np.isfinite(values)
            if ok.any():
                courses[i, :, j] = np.interp(grid, t[ok], values[ok])
    return [name for name, _ in sequences], grid, courses


def _columns(df: pd.DataFrame, columns) -> list[str]:
    if columns is None:
        return [c for c in DESCRIPTOR_COLUMNS if c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the descriptor table; choose from {list(df.columns)}")
    return list(columns)


def _finite(df: pd.DataFrame, column: str) -> np.ndarray:
    values = df[column].to_numpy(dtype=float)
    return values[np.isfinite(values)]


def compare_descriptors(real: pd.DataFrame, generated: pd.DataFrame, *, columns=None) -> pd.DataFrame:
    """Per-descriptor statistics of real versus generated frames.

    Parameters
    ----------
    real, generated : pandas.DataFrame
        Descriptor tables (all frames of all sequences are pooled).
    columns : list of str, optional
        Descriptors; default those of :data:`~cellnb.descriptors.DESCRIPTOR_COLUMNS` in both tables.

    Returns
    -------
    table : pandas.DataFrame
        Indexed by descriptor, columns ``real_median``, ``real_iqr``,
        ``gen_median``, ``gen_iqr``, ``ks_statistic``, ``ks_pvalue``, ``w1``
        and ``w1_norm`` (``w1`` over the real standard deviation; 0 when both
        are 0, inf when only the standard deviation is).  NaN frames are left
        out; a descriptor without finite values on one side gets NaN.
    """
    if columns is None:
        columns = [c for c in _columns(real, None) if c in generated.columns]
    else:
        for df in (real, generated):
            _columns(df, columns)
    rows = {}
    for column in columns:
        o, g = _finite(real, column), _finite(generated, column)
        if len(o) == 0 or len(g) == 0:
            side = "real" if len(o) == 0 else "generated"
            logger.warning("descriptor %s has no finite values in the %s table", column, side)
            rows[column] = dict.fromkeys(_STAT_COLUMNS, float("nan"))
            continue
        ks = ks_2samp(o, g)
        w1 = float(wasserstein_distance(o, g))
        std = float(np.std(o))
        rows[column] = {
            "real_median": float(np.median(o)),
            "real_iqr": float(np.subtract(*np.percentile(o, [75, 25]))),
            "gen_median": float(np.median(g)),
            "gen_iqr": float(np.subtract(*np.percentile(g, [75, 25]))),
            "ks_statistic": float(ks.statistic),
            "ks_pvalue": float(ks.pvalue),
            "w1": w1,
            "w1_norm": w1 / std if std > 0 else (0.0 if w1 == 0 else float("inf")),
        }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=_STAT_COLUMNS)
    table.index.name = "descriptor"
    return table


def nn1_accuracy(real: pd.DataFrame, generated: pd.DataFrame, *, columns=None, n_times: int | None = None) -> float:
    """1-nearest-neighbour two-sample accuracy on descriptor time courses.

    Each sequence becomes one vector: its descriptors resampled to
    ``n_times`` points of normalised time (:func:`time_courses`), each
    descriptor standardised with the mean and standard deviation pooled over
    both samples (so every descriptor weighs the same; NaN becomes the pooled
    mean), concatenated.  Every sequence is then labelled by its Euclidean
    nearest neighbour among all the others (leave-one-out), and the accuracy of
    those labels is returned.  If generated sequences are distributed like the
    real ones, a neighbour is as likely to come from either sample and the
    accuracy is about 0.5 (with equal sample sizes); 1.0 means the two samples
    are fully separable, and values well below 0.5 point to generated
    sequences that copy real ones (memorisation).

    Parameters
    ----------
    real, generated : pandas.DataFrame
        Descriptor tables with at least 2 sequences each.
    columns : list of str, optional
        Descriptors; default all of :data:`~cellnb.descriptors.DESCRIPTOR_COLUMNS` in both tables.
    n_times : int, optional
        Time points per course; default the largest frame count of any sequence.

    Returns
    -------
    accuracy : float in [0, 1]
    """
    if columns is None:
        columns = [c for c in _columns(real, None) if c in generated.columns]
    if n_times is None:
        n_times = max(real.groupby("sequence").size().max(), generated.groupby("sequence").size().max())
    _, _, o = time_courses(real, columns=columns, n_times=n_times)
    _, _, g = time_courses(generated, columns=columns, n_times=n_times)
    if len(o) < 2 or len(g) < 2:
        raise ValueError(
            f"nn1_accuracy needs at least 2 sequences per sample, got {len(o)} real and {len(g)} generated"
        )
    courses = np.concatenate([o, g])
    mean = np.nanmean(courses, axis=(0, 1))
    std = np.nanstd(courses, axis=(0, 1))
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    z = np.nan_to_num((courses - np.nan_to_num(mean)) / std, nan=0.0).reshape(len(courses), -1)
    labels = np.r_[np.zeros(len(o), bool), np.ones(len(g), bool)]
    dist = cdist(z, z)
    np.fill_diagonal(dist, np.inf)
    return float(np.mean(labels[np.argmin(dist, axis=1)] == labels))


def _json_number(value):
    """A float for JSON: None for NaN or infinity."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def comparison_report(real: pd.DataFrame, generated: pd.DataFrame, *, family: str) -> dict:
    """JSON-serialisable summary of real versus generated descriptors (the ``descriptors`` section of metrics.json).

    Returns
    -------
    report : dict
        ``family``; ``n_sequences`` and ``n_frames`` (``{"real", "generated"}``);
        ``descriptors``: per descriptor ``real_median``, ``real_iqr``,
        ``gen_median``, ``gen_iqr``, ``ks``, ``p``, ``w1_norm``;
        ``nn1_accuracy`` (None with a logged warning when a sample has fewer
        than 2 sequences); ``topology``: :func:`topology_summary` of each
        sample.  Non-finite numbers are written as None.
    """
    table = compare_descriptors(real, generated)
    try:
        nn1 = nn1_accuracy(real, generated)
    except ValueError as err:
        logger.warning("1-NN accuracy not computed: %s", err)
        nn1 = None
    descriptors = {
        column: {
            "real_median": _json_number(row.real_median),
            "real_iqr": _json_number(row.real_iqr),
            "gen_median": _json_number(row.gen_median),
            "gen_iqr": _json_number(row.gen_iqr),
            "ks": _json_number(row.ks_statistic),
            "p": _json_number(row.ks_pvalue),
            "w1_norm": _json_number(row.w1_norm),
        }
        for column, row in table.iterrows()
    }
    return {
        "family": family,
        "n_sequences": {"real": int(real["sequence"].nunique()), "generated": int(generated["sequence"].nunique())},
        "n_frames": {"real": int(len(real)), "generated": int(len(generated))},
        "descriptors": descriptors,
        "nn1_accuracy": _json_number(nn1),
        "topology": {"real": topology_summary(real, family), "generated": topology_summary(generated, family)},
    }


def best_strategy(reports: dict, *, columns=HEADLINE_DESCRIPTORS) -> str:
    """The strategy whose generated descriptors are closest to the real ones.

    Parameters
    ----------
    reports : dict
        ``{strategy: comparison_report(...)}``.
    columns : sequence of str
        Descriptors whose normalised W1 distances are averaged (lower is better).
    """
    if not reports:
        raise ValueError("reports is empty; compare at least one generated set")

    def score(report):
        values = [report["descriptors"][c]["w1_norm"] for c in columns]
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else np.inf

    return min(reports, key=lambda s: score(reports[s]))


def format_cell(value) -> str:
    """A table cell as text: integers as is, floats to 4 significant digits, ``|`` escaped for markdown."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "nan" if np.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _alignment(column: pd.Series) -> str:
    return "---:" if pd.api.types.is_numeric_dtype(column) else "---"


def to_markdown(table: pd.DataFrame) -> str:
    """A DataFrame (with its index as the first column) as a GitHub markdown table; floats to 4 significant digits."""
    header = [str(table.index.name or "")] + [str(c) for c in table.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + [_alignment(table[c]) for c in table.columns]) + " |",
    ]
    for index, row in table.iterrows():
        lines.append("| " + " | ".join([format_cell(index)] + [format_cell(v) for v in row.tolist()]) + " |")
    return "\n".join(lines) + "\n"


def _names(columns) -> str:
    names = [c.replace("_", " ") for c in columns]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def reading(report: dict) -> str:
    """A short plain-English reading of a :func:`comparison_report`, generated from its numbers."""
    n, f = report["n_sequences"], report["n_frames"]
    parts = [
        f"{n['generated']} generated sequences ({f['generated']} frames) were compared with "
        f"{n['real']} real ones ({f['real']} frames) of the {report['family']} family."
    ]
    scores = {c: d["w1_norm"] for c, d in report["descriptors"].items()}
    match = [c for c, w in scores.items() if w is not None and w <= W1_MATCH]
    differ = sorted((c for c, w in scores.items() if w is None or w > W1_MATCH), key=lambda c: -(scores[c] or math.inf))
    if match:
        verb = "distributions of {} match" if len(match) > 1 else "distribution of {} matches"
        ones = "ones" if len(match) > 1 else "one"
        parts.append(f"The {verb.format(_names(match))} the real {ones} (W1 / real std <= {W1_MATCH}).")
    if differ:
        worst = differ[0]
        d = report["descriptors"][worst]
        worst_text = (
            f"largest gap: {worst.replace('_', ' ')}, W1 / real std = {d['w1_norm']:.2f}, KS = {d['ks']:.2f}"
            if d["w1_norm"] is not None
            else f"{worst.replace('_', ' ')}: W1 / real std undefined (real values constant or missing)"
        )
        parts.append(f"{_names(differ).capitalize()} differ{'s' * (len(differ) == 1)} ({worst_text}).")
    nn1 = report["nn1_accuracy"]
    if nn1 is None:
        parts.append("The 1-NN two-sample accuracy was not computed (fewer than 2 sequences on one side).")
    else:
        if nn1 < NN1_COPIES:
            verdict = ("nearer to real ones than real ones are to each other, so they are close copies of training "
                       "sequences rather than new ones")
        elif nn1 <= NN1_HARD:
            verdict = "hard to tell apart from real ones"
        elif nn1 <= NN1_PARTLY:
            verdict = "partly distinguishable from real ones"
        else:
            verdict = "clearly distinguishable from real ones"
        parts.append(
            f"The 1-NN two-sample accuracy on descriptor time courses is {nn1:.2f} "
            f"(0.5 = indistinguishable, 1.0 = fully separable): the generated sequences are {verdict}."
        )
    topo = report["topology"]
    shares = {k: topo[k]["share_plausible"] for k in ("generated", "real")}
    if shares["generated"] is not None:
        rule = "1 then 2 components, never back" if report["family"] == "dividing" else "one component in every frame"
        real_text = f", against {shares['real']:.0%} of the real ones" if shares["real"] is not None else ""
        parts.append(
            f"{shares['generated']:.0%} of the generated sequences have a plausible topology ({rule}){real_text}."
        )
    return " ".join(parts)
