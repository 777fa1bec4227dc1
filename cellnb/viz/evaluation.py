"""Figures of the held-out evaluation (notebook 05): novelty against realism, and the numbers behind it.

* :func:`plot_novelty_realism`: every generated set on one plane, its
  memorisation rate (x: how often it copies a training cell) against its
  1-NN accuracy against held-out real cells (y: how easily it is told apart
  from them); the training cells themselves are the reference point at
  memorisation 1.  The good corner is bottom left: new (few copies) and
  realistic (1-NN accuracy near 0.5).
* :func:`plot_variety`: per descriptor, the spread of each set over the spread
  of the held-out cells (1: as varied as real cells; below: average cells).

Inputs are the dict of :func:`cellnb.evaluate.evaluate_run` (or the
``evaluate`` section of ``metrics.json``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_novelty_realism", "plot_variety"]

TARGET_MEMORISATION = 0.10  # issue 10's quality targets, drawn as the acceptable corner
TARGET_NN1 = 0.70


def _labels(ax, texts: dict, *, size: float = 8.0) -> None:
    """Label points ``{(x, y): text}`` to their upper right, each moved up until it overlaps no earlier label."""
    ax.figure.canvas.draw()  # the final axes limits, so that data and points convert as they will be drawn
    placed, line = [], size * 1.25  # boxes (x0, y0, x1, y1) in points; a text line's height
    to_points = 72.0 / ax.figure.dpi
    for (x, y), text in sorted(texts.items(), key=lambda item: (item[0][1], item[0][0])):
        px, py = (np.asarray(ax.transData.transform((x, y))) * to_points).tolist()
        width, dy = 0.55 * size * len(text), 4.0
        while any(px + 6 < b[2] and b[0] < px + 6 + width and py + dy < b[3] and b[1] < py + dy + line
                  for b in placed):
            dy += line
        placed.append((px + 6, py + dy, px + 6 + width, py + dy + line))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, dy), fontsize=size)


def plot_novelty_realism(evaluation: dict, *, title: str | None = None):
    """Memorisation rate against 1-NN accuracy, one point per generated set, coloured by topology.

    The colour is the share of the set's sequences whose component count
    over time is plausible (green: all; red: none), the third term of the
    recommendation (:func:`cellnb.evaluate.realism_error`).

    Parameters
    ----------
    evaluation : dict
        ``sets`` ({name: {"memorisation", "nn1_accuracy", ...}}), ``baseline``
        and ``recommended`` as :func:`cellnb.evaluate.evaluate_run` returns them.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.8), constrained_layout=True)
    ax.axhspan(0.5, TARGET_NN1, xmin=0.0, xmax=(TARGET_MEMORISATION + 0.03) / 1.06, color="#d9f0d3", zorder=0,
               label=f"target: memorisation <= {TARGET_MEMORISATION:.0%}, 1-NN <= {TARGET_NN1}")
    ax.axhline(0.5, color="0.6", lw=0.8, ls="--")
    ax.text(1.02, 0.5, "indistinguishable", va="center", ha="left", fontsize=7, color="0.4",
            transform=ax.get_yaxis_transform())
    points = {}  # sets at one spot share one label
    for name, s in evaluation["sets"].items():
        if s.get("memorisation") is None or s.get("nn1_accuracy") is None:
            continue
        best = name == evaluation.get("recommended")
        topology = s.get("topology_plausible")
        ax.scatter(s["memorisation"], s["nn1_accuracy"], s=90 if best else 45, marker="*" if best else "o",
                   c=[topology if topology is not None else 1.0], cmap="RdYlGn", vmin=0.0, vmax=1.0,
                   edgecolors="k" if best else "0.4", linewidths=0.8, zorder=3)
        spot = (round(s["memorisation"], 2), round(s["nn1_accuracy"], 2))
        points.setdefault(spot, []).append(name + (" (recommended)" if best else ""))
    if points:
        colour = ax.figure.colorbar(ax.collections[-1], ax=ax, shrink=0.6, pad=0.02)
        colour.set_label("share with plausible topology", fontsize=8)
    base = evaluation.get("baseline")
    if base and base.get("nn1_accuracy") is not None:
        ax.scatter(1.0, base["nn1_accuracy"], marker="s", color="0.3", zorder=3)
        ax.annotate("training cells (copies)", (1.0, base["nn1_accuracy"]), textcoords="offset points",
                    xytext=(-8, 6), ha="right", fontsize=8)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(min(0.25, ax.get_ylim()[0]), 1.02)
    ax.set_xlabel("memorisation rate (share of generated cells closer to a training cell than any held-out cell)")
    ax.set_ylabel("1-NN accuracy against held-out real cells")
    ax.xaxis.label.set_fontsize(8)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title or "novelty (left) and realism (down) of each latent strategy", fontsize=10)
    _labels(ax, {spot: ", ".join(names) for spot, names in points.items()})
    return fig


def plot_variety(evaluation: dict, *, title: str | None = None):
    """Variety ratio (sd of generated / sd of held-out real) per descriptor and set, as grouped bars."""
    sets = evaluation["sets"]
    names = list(sets)
    columns = list(next(iter(sets.values()))["variety"]) if sets else []
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names)), 3.6), constrained_layout=True)
    width = 0.8 / max(1, len(columns))
    for j, column in enumerate(columns):
        values = [sets[n]["variety"][column] for n in names]
        values = [np.nan if v is None else v for v in values]
        ax.bar(np.arange(len(names)) + (j - (len(columns) - 1) / 2) * width, values, width,
               label=column.replace("_", " "))
    ax.axhspan(0.7, 1.3, color="#d9f0d3", zorder=0, label="0.7 - 1.3")
    ax.axhline(1.0, color="0.4", lw=0.8)
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set_ylabel("sd generated / sd held-out real")
    ax.legend(fontsize=7, ncols=2)
    ax.set_title(title or "variety of the generated cells", fontsize=10)
    return fig
