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


# (header, value from a run's metrics) of the headline table's columns.
_COLUMNS = [
    ("sequences", _at("data", "n_sequences")),
    ("grid", _at("data", "size")),
    ("train s", _at("train", "seconds")),
    ("recon. Dice", _at("train", "dice_mean")),
    ("recon. IoU", _at("train", "iou_mean")),
    ("topology kept", _topology_kept),
    ("best strategy", _at("descriptors", "best_strategy")),
    ("W1/sd volume", _at("descriptors", "best", "descriptors", "volume", "w1_norm")),
    ("W1/sd area", _at("descriptors", "best", "descriptors", "surface_area", "w1_norm")),
    ("W1/sd sphericity", _at("descriptors", "best", "descriptors", "sphericity", "w1_norm")),
    ("KS volume", _at("descriptors", "best", "descriptors", "volume", "ks")),
    ("1-NN acc.", _at("descriptors", "best", "nn1_accuracy")),
    ("topology G", _at("descriptors", "best", "topology", "generated", "share_plausible")),
    ("narrow-band evals ratio", _at("field", "evaluations_ratio")),
    ("narrow-band time ratio", _at("field", "time_ratio")),
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
    return lines


def results_markdown(runs, names, *, figures="figures", relative_to=".") -> str:
    """Markdown of the headline table and the figures of each data set."""
    rows = headline_rows(runs, names)
    headers = list(rows[0]) if rows else ["data set"]
    lines = [
        "Produced by `cellnb run` from `runs/<data set>/metrics.json` (quick profile unless stated).",
        "W1/sd: Wasserstein-1 distance between real (O) and generated (G) descriptor distributions divided by",
        "the real standard deviation; topology kept: reconstructed training sequences with the true component",
        "count in every frame, of those whose count changes (– where none does); 1-NN acc.: leave-one-out",
        "1-nearest-neighbour two-sample accuracy on descriptor time courses (0.5 = indistinguishable);",
        "topology G: share of generated sequences with a",
        "plausible component count over time; narrow-band ratios: dense / narrow-band at the finest grid of notebook 04.",
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
