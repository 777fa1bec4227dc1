"""The README's results section, written from the runs' ``metrics.json``.

Every number in that section comes from a metrics file the pipeline wrote;
nothing is typed by hand.  The section sits between two HTML comments,
``<!-- results:start -->`` and ``<!-- results:end -->``, which are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

from cellnb.compare import format_cell
from cellnb.io import atomic_path
from cellnb.workspace import RunDir

__all__ = ["START", "END", "headline_rows", "results_markdown", "update_readme"]

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def _get(metrics: dict, *path: str):
    """``metrics[path[0]][path[1]]...``, or None where a step did not write it."""
    value = metrics
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _topology_kept(metrics: dict) -> str | None:
    """``kept/checked`` reconstructed sequences whose component count changes; None where none does."""
    checked = _get(metrics, "train", "topology_sequences")
    return f"{_get(metrics, 'train', 'topology_kept')}/{checked}" if checked else None


def _at(*path: str):
    return lambda metrics: _get(metrics, *path)


def _split(metrics: dict) -> str | None:
    """``train/held-out`` sequence counts."""
    data = _get(metrics, "data") or {}
    return f"{data['n_train']}/{data['n_heldout']}" if "n_train" in data else None


def _recommended(*path: str):
    """A number of the recommended generated set's evaluation."""
    def value(metrics):
        name = _get(metrics, "evaluate", "recommended")
        return _get(metrics, "evaluate", "sets", name, *path) if name else None
    return value


# (header, value from a run's metrics) of the headline table's columns.
_COLUMNS = [
    ("train/held-out", _split),
    ("grid", _at("data", "size")),
    ("train s", _at("train", "seconds")),
    ("recon. Dice", _at("train", "dice_mean")),
    ("topology kept", _topology_kept),
    ("recommended", _at("evaluate", "recommended")),
    ("memorisation", _recommended("memorisation")),
    ("1-NN acc.", _recommended("nn1_accuracy")),
    ("W1/sd volume", _recommended("w1_norm", "volume")),
    ("W1/sd area", _recommended("w1_norm", "surface_area")),
    ("W1/sd sphericity", _recommended("w1_norm", "sphericity")),
    ("variety volume", _recommended("variety", "volume")),
    ("variety area", _recommended("variety", "surface_area")),
    ("variety sphericity", _recommended("variety", "sphericity")),
    ("coverage", _recommended("coverage")),
    ("real 1-NN acc.", _at("evaluate", "baseline", "nn1_accuracy")),
    ("real W1/sd volume", _at("evaluate", "baseline", "w1_norm", "volume")),
    ("topology G", _recommended("topology_plausible")),
    ("topology as drawn", _recommended("drawn_plausible")),
    ("narrow-band evals ratio", _at("field", "evaluations_ratio")),
]


def headline_rows(runs, names) -> list[dict]:
    """One dict per data set with the headline numbers (None where a step did not run)."""
    rows = []
    for name in names:
        metrics = RunDir(Path(runs) / name).read_metrics()
        rows.append({"data set": name, **{header: value(metrics) for header, value in _COLUMNS}})
    return rows


def _figure_lines(figures: Path, name: str, relative_to: Path) -> list[str]:
    lines = []
    for png in sorted(figures.glob(f"{name}_*.png")):
        label = png.stem[len(name) + 1 :].replace("_", " ")
        rel = Path(os.path.relpath(png, relative_to)).as_posix()
        lines.append(f"**{name}: {label}**\n\n![{name} {label}]({rel})\n")
    for video in sorted(figures.glob(f"{name}_*.mp4")):
        label = video.stem[len(name) + 1 :].replace("_", " ")
        rel = Path(os.path.relpath(video, relative_to)).as_posix()
        lines.append(f"**{name}: {label}** ([MP4]({rel}))\n")
    return lines


def results_markdown(runs, names, *, figures="figures", relative_to=".") -> str:
    """Markdown of the headline table and the figures of each data set."""
    rows = headline_rows(runs, names)
    headers = list(rows[0]) if rows else ["data set"]
    lines = [
        "Produced by `cellnb run` from `runs/<data set>/metrics.json` (quick profile unless stated).",
        "Every realism number compares the recommended generated set with real sequences **held out from",
        "training** (train/held-out: sequence counts). topology kept: reconstructed training sequences with the",
        "true component count in every frame, of those whose count changes (– where none does); recommended:",
        "the latent strategy the evaluation chose (lowest realism error, the mean of |1-NN acc. - 0.5| / 0.5 and",
        "the share of implausible topology, among the sets that memorise at most 10%); memorisation: share of generated sequences closer to a training sequence than any held-out",
        "one is; 1-NN acc.: leave-one-out 1-nearest-neighbour two-sample accuracy on descriptor time courses",
        "(0.5 = indistinguishable); W1/sd: Wasserstein-1 distance over the real standard deviation; variety:",
        "sd of generated over sd of held-out real; coverage: share of held-out sequences that are some generated",
        "sequence's nearest neighbour (shape distance 1 - mean IoU); topology G: share of generated sequences",
        "with a plausible component count over time; topology as drawn: the same share among every code drawn",
        "for the set (lower where a +plausible set redrew the implausible ones); real 1-NN acc., real W1/sd:",
        "the same numbers for as many training sequences as there are held-out ones (the noise floor: what",
        "real cells score against real cells); narrow-band ratio: dense / narrow-band evaluations at the",
        "finest grid of notebook 04.",
        "",
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row[h]) if row[h] is not None else "–" for h in headers) + " |")
    lines.append("")
    for name in names:
        lines.extend(_figure_lines(Path(figures), name, Path(relative_to)))
    return "\n".join(lines)


def update_readme(readme, *, runs, figures, names) -> Path:
    """Replace the text between the results markers of ``readme`` (atomically)."""
    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no results markers {START} ... {END}; add them where the results go")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    body = results_markdown(runs, names, figures=figures, relative_to=readme.resolve().parent)
    with atomic_path(readme, overwrite=True) as tmp:
        tmp.write_text(f"{head}{START}\n{body}\n{END}{tail}")
    return readme
