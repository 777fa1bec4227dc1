"""Real-vs-generated statistics on synthetic descriptor tables with known answers."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from cellnb.compare import (
    compare_descriptors,
    comparison_report,
    nn1_accuracy,
    reading,
    time_courses,
    to_markdown,
    topology_possible,
    topology_plausible,
    topology_summary,
)
from cellnb.sdf import time_coords
from cellnb.viz.descriptors import plot_distributions, plot_stats_table, plot_time_bands


def table(courses: dict, *, prefix: str = "s") -> pd.DataFrame:
    """A descriptor table from {column: array (n_sequences, T)}, t = linspace(-1, 1, T) per sequence."""
    first = next(iter(courses.values()))
    n, n_frames = first.shape
    rows = []
    for i in range(n):
        for k, t in enumerate(time_coords(n_frames)):
            values = {c: v[i, k] for c, v in courses.items()}
            rows.append({"sequence": f"{prefix}{i:03d}", "frame": k, "t": float(t), **values})
    return pd.DataFrame(rows)


def growth(rng, n, n_frames, *, slope=(1.0, 2.0), sign=1.0, prefix="s") -> pd.DataFrame:
    """Sequences whose volume grows (sign +1) or shrinks (sign -1) linearly over time, random start and slope."""
    t = (time_coords(n_frames) + 1) / 2
    start = rng.uniform(10, 12, size=(n, 1))
    rate = rng.uniform(*slope, size=(n, 1))
    volume = start + sign * rate * (t if sign > 0 else t - 1)
    sphericity = 0.9 - 0.05 * t + rng.normal(0, 0.002, size=(n, n_frames))
    counts = np.ones((n, n_frames), int)
    return table({"volume": volume, "sphericity": sphericity, "n_components": counts}, prefix=prefix)


# --- topology -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "family", "expected"),
    [
        ([1, 1, 2, 2], "dividing", True),
        ([1, 2], "dividing", True),
        ([1, 1, 1], "dividing", False),  # never divides
        ([2, 2, 2], "dividing", False),  # starts divided
        ([1, 2, 1, 2], "dividing", False),  # reversal
        ([1, 3, 2], "dividing", False),  # more than two
        ([1, 0, 2], "dividing", False),  # vanishes
        ([1, 1, 1], "deforming", True),
        ([1, 2, 1], "deforming", False),
        ([1, 1, 0], "filopodial", False),
        ([1], "filopodial", True),
    ],
)
def test_topology_plausible(counts, family, expected):
    assert topology_plausible(np.array(counts), family) is expected


def test_topology_plausible_needs_counts():
    with pytest.raises(ValueError, match="counts"):
        topology_plausible([], "dividing")


@pytest.mark.parametrize(
    ("counts", "family", "first_impossible"),
    [
        ([1, 1, 2, 2], "dividing", None),
        ([1, 1, 1], "dividing", None),  # may still divide: only the whole sequence fails
        ([1, 2, 2, 1], "dividing", 4),  # merges back at frame 4
        ([1, 3, 2], "dividing", 2),
        ([2, 2], "dividing", 1),
        ([1, 1, 2, 1], "filopodial", 3),  # a part breaks off at frame 3
    ],
)
def test_topology_possible_prefixes(counts, family, first_impossible):
    """A prefix is given up exactly from the first frame that no continuation can make plausible."""
    possible = [topology_possible(counts[:k], family) for k in range(1, len(counts) + 1)]
    expected = [first_impossible is None or k < first_impossible for k in range(1, len(counts) + 1)]
    assert possible == expected
    if topology_plausible(counts, family):
        assert all(possible)


def test_topology_summary_share():
    counts = np.array([[1, 1, 2, 2], [1, 2, 2, 2], [1, 2, 1, 2], [1, 1, 1, 1]])
    summary = topology_summary(table({"n_components": counts}), "dividing")
    assert summary == {"family": "dividing", "n_sequences": 4, "n_plausible": 2, "share_plausible": 0.5}


# --- per-descriptor statistics --------------------------------------------------------------------------


def test_identical_samples_have_zero_distance():
    rng = np.random.default_rng(0)  # seeded
    values = rng.normal(5.0, 2.0, size=(20, 10))
    real = table({"volume": values})
    stats = compare_descriptors(real, real.copy()).loc["volume"]
    assert stats["ks_statistic"] == 0.0
    assert stats["ks_pvalue"] == pytest.approx(1.0)
    assert stats["w1"] == 0.0 and stats["w1_norm"] == 0.0
    assert stats["real_median"] == stats["gen_median"] == pytest.approx(np.median(values))


def test_shifted_samples_are_far_apart():
    rng = np.random.default_rng(1)  # seeded
    values = rng.normal(5.0, 2.0, size=(20, 10))
    shift = 3 * values.std()
    stats = compare_descriptors(table({"volume": values}), table({"volume": values + shift})).loc["volume"]
    # Shifting a sample moves every quantile by the shift: W1 = shift exactly, i.e. 3 real standard deviations.
    assert stats["w1"] == pytest.approx(shift)
    assert stats["w1_norm"] == pytest.approx(3.0)
    assert stats["gen_median"] - stats["real_median"] == pytest.approx(shift)
    assert stats["gen_iqr"] == pytest.approx(stats["real_iqr"])
    assert stats["ks_statistic"] > 0.8 and stats["ks_pvalue"] < 1e-20


def test_median_and_iqr_of_known_values_and_nan_frames_left_out():
    values = np.arange(1.0, 101.0).reshape(10, 10)
    with_nan = values.copy()
    with_nan[0, 0] = np.nan
    stats = compare_descriptors(table({"volume": values}), table({"volume": with_nan})).loc["volume"]
    assert (stats["real_median"], stats["real_iqr"]) == (50.5, 49.5)
    assert stats["gen_median"] == 51.0  # 2..100


def test_constant_real_descriptor():
    ones = np.ones((4, 5), int)
    stats = compare_descriptors(table({"n_components": ones}), table({"n_components": ones})).loc["n_components"]
    assert stats["w1_norm"] == 0.0
    stats = compare_descriptors(table({"n_components": ones}), table({"n_components": 2 * ones})).loc["n_components"]
    assert stats["w1_norm"] == np.inf


# --- sequences: time courses and 1-NN ---------------------------------------------------------------------


def test_time_courses_resample_over_normalised_time():
    df = table({"volume": np.array([[0.0, 1.0, np.nan, 3.0, 4.0]])})
    names, grid, courses = time_courses(df, columns=["volume"], n_times=9)
    assert names == ["s000"]
    np.testing.assert_allclose(grid, np.linspace(-1, 1, 9))
    np.testing.assert_allclose(courses[0, :, 0], np.linspace(0, 4, 9))  # the NaN frame is bridged


def test_nn1_accuracy_separable_populations():
    rng = np.random.default_rng(2)  # seeded
    real = growth(rng, 30, 12)
    shrinking = growth(rng, 30, 20, sign=-1.0, prefix="g")  # other length: compared over normalised time
    assert nn1_accuracy(real, shrinking) >= 0.95


def test_nn1_accuracy_same_distribution_is_about_one_half():
    # Seeded (seeds 0..4): the mean over five draws of 40 + 40 sequences; single draws spread by about 0.06.
    scores = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        scores.append(nn1_accuracy(growth(rng, 40, 12), growth(rng, 40, 25, prefix="g")))
    assert abs(np.mean(scores) - 0.5) < 0.08


def test_nn1_accuracy_needs_two_sequences_each():
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="at least 2 sequences"):
        nn1_accuracy(growth(rng, 1, 5), growth(rng, 5, 5))


# --- report, markdown, reading ------------------------------------------------------------------------------


def test_comparison_report_is_json_and_its_reading_follows_the_numbers():
    rng = np.random.default_rng(4)  # seeded
    real = growth(rng, 20, 10)
    generated = growth(rng, 20, 10, prefix="g")
    generated["sphericity"] = generated["sphericity"] + 0.5  # far off: many real standard deviations
    report = comparison_report(real, generated, family="deforming")
    json.dumps(report, allow_nan=False)
    assert report["n_sequences"] == {"real": 20, "generated": 20}
    assert report["n_frames"] == {"real": 200, "generated": 200}
    assert report["descriptors"]["volume"]["w1_norm"] < 0.5
    assert report["descriptors"]["sphericity"]["w1_norm"] > 5
    assert report["topology"]["generated"]["share_plausible"] == 1.0
    assert report["nn1_accuracy"] > 0.9

    text = reading(report)
    assert "volume" in text.split("match")[0]  # volume is named among the matching descriptors
    assert "Sphericity differs" in text
    assert f"{report['nn1_accuracy']:.2f}" in text and "clearly distinguishable" in text
    assert "100% of the generated sequences" in text


def test_near_copies_of_the_real_sequences_read_as_copies():
    rng = np.random.default_rng(6)
    real = growth(rng, 12, 8)
    copies = real.assign(sequence="copy_" + real["sequence"])
    columns = ["volume", "sphericity"]
    copies[columns] = copies[columns] * (1 + 1e-4 * rng.standard_normal((len(copies), 2)))
    report = comparison_report(real, copies, family="deforming")
    assert report["nn1_accuracy"] < 0.1  # every sequence's nearest neighbour is its copy, in the other sample
    assert "close copies of training sequences" in reading(report)


def test_report_without_enough_sequences_still_writes():
    rng = np.random.default_rng(5)
    report = comparison_report(growth(rng, 1, 6), growth(rng, 3, 6), family="dividing")
    assert report["nn1_accuracy"] is None
    assert report["topology"]["real"]["share_plausible"] == 0.0  # never divides
    assert "not computed" in reading(report)


def test_to_markdown():
    values = np.arange(12.0).reshape(3, 4)
    stats = compare_descriptors(table({"volume": values}), table({"volume": values + 1}))
    lines = to_markdown(stats).strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("| descriptor | real_median |")
    assert lines[1].startswith("| --- | ---: |")
    assert lines[2].startswith("| volume | 5.5 | 5.5 | 6.5 |")


# --- figures --------------------------------------------------------------------------------------------------


def test_figures_have_one_panel_per_descriptor():
    rng = np.random.default_rng(6)
    real = growth(rng, 6, 8)
    gens = {"gaussian": growth(rng, 6, 10, prefix="g"), "random": growth(rng, 6, 8, prefix="r")}
    columns = ["volume", "sphericity", "n_components"]  # n_components is constant: drawn as a line, not a violin
    figures = (plot_distributions(real, gens, columns=columns, title="t"), plot_time_bands(real, gens, columns=columns))
    for fig in figures:
        assert sum(ax.get_visible() for ax in fig.axes) == 3
        plt.close(fig)
    fig = plot_stats_table(compare_descriptors(real, gens["gaussian"]))
    assert fig.axes[0].tables
    plt.close(fig)
    with pytest.raises(ValueError, match="not in"):
        plot_distributions(real, gens, columns=["volume", "solidity"])
