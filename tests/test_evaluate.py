"""Held-out evaluation: the metrics tell copies, averages and new realistic cells apart.

Truth from outside the code under test: hand-made masks with known overlaps,
hand-made distance matrices, and three generated sets whose nature is known
by construction: exact copies of training sequences, one average shape
repeated, and new draws from the same phantom family as the real cells.
"""

import json

import numpy as np
import pytest

from cellnb import phantoms
from cellnb.evaluate import (
    coverage_mmd,
    evaluate_run,
    memorisation_rate,
    nn1_from_distances,
    realism_error,
    recommend,
    shape_distances,
)
from cellnb.io import read_sdf_h5, write_sdf_h5
from cellnb.latent import fit_latent_model
from cellnb.prepare import write_dataset
from cellnb.sdf import sequence_to_sdf
from cellnb.workspace import GeneratedDir, RunDir


def test_shape_distance_of_known_overlaps():
    a = np.zeros((1, 2, 4, 4, 4), bool)
    a[0, :, :2] = True  # half the box in both frames
    b = np.zeros((3, 2, 4, 4, 4), bool)
    b[0] = a[0]  # identical
    b[1, :, 2:] = True  # disjoint
    b[2, 0, :1] = True  # frame 0: a quarter (IoU 1/2); frame 1: empty (IoU 0)
    np.testing.assert_allclose(shape_distances(a, b), [[0.0, 1.0, 1 - (0.5 + 0.0) / 2]])
    empty = np.zeros((1, 2, 4, 4, 4), bool)
    assert shape_distances(empty, empty)[0, 0] == 0.0
    with pytest.raises(ValueError, match="same frames and grid"):
        shape_distances(a, b[:, :1])


def test_memorisation_coverage_and_1nn_on_hand_made_distances():
    heldout_to_train = np.array([[0.4, 0.5], [0.3, 0.6]])  # the closest a real unseen cell comes: 0.3
    gen_to_train = np.array([[0.1, 0.9], [0.35, 0.5], [0.29, 0.8], [0.5, 0.5]])
    assert memorisation_rate(gen_to_train, heldout_to_train) == 0.5
    gen_to_ref = np.array([[0.1, 0.9, 0.8], [0.2, 0.7, 0.9]])  # both match reference 0
    assert coverage_mmd(gen_to_ref) == (pytest.approx(1 / 3), pytest.approx((0.1 + 0.7 + 0.8) / 3))
    far = np.full((3, 3), 5.0)
    near = np.ones((3, 3)) - np.eye(3)
    assert nn1_from_distances(near, far, near) == 1.0  # each sample sits with its own
    assert nn1_from_distances(far, near * 0 + 0.5, far) == 0.0  # each sits nearer the other sample: copies


def test_recommendation_prefers_realistic_sets_that_do_not_copy():
    sets = {
        "copies": {"memorisation": 0.9, "nn1_accuracy": 0.5, "w1_norm_mean": 0.05},
        "average": {"memorisation": 0.0, "nn1_accuracy": 0.95, "w1_norm_mean": 0.8},
        "new": {"memorisation": 0.05, "nn1_accuracy": 0.6, "w1_norm_mean": 0.2},
    }
    assert recommend(sets, max_memorisation=0.1) == "new"
    assert recommend({"copies": sets["copies"]}, max_memorisation=0.1) == "copies"  # the least memorising


def test_a_set_whose_divisions_merge_back_is_not_recommended_over_one_that_keeps_them():
    # Equal shape realism; one set's daughters fuse again in most sequences (a bridge is a few voxels,
    # which 1-NN on shapes does not see).
    sets = {
        "bridged": {"memorisation": 0.0, "nn1_accuracy": 0.55, "w1_norm_mean": 0.1, "topology_plausible": 0.2},
        "divides": {"memorisation": 0.0, "nn1_accuracy": 0.65, "w1_norm_mean": 0.3, "topology_plausible": 0.9},
    }
    assert realism_error(sets["bridged"]) == pytest.approx(0.5 * (0.1 + 0.8))
    assert recommend(sets, max_memorisation=0.1) == "divides"
    sets["divides"]["topology_plausible"] = 0.2  # then shape realism decides
    assert recommend(sets, max_memorisation=0.1) == "bridged"


def _write_set(run: RunDir, name: str, sequences) -> None:
    folder = GeneratedDir(run.generated / name)
    for k, seq in enumerate(sequences):
        sdf, scale = sequence_to_sdf(seq.masks)
        write_sdf_h5(folder.sdf_path(f"{name}{k:03d}"), sdf, record={"name": f"{name}{k:03d}", "scale": scale,
                                                                      "spacing": [1.0] * 3, "meta": {}})
    fit_latent_model("gaussian", np.random.default_rng(0).normal(size=(8, 2))).save(folder.latent_model_path)


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """A run with 12 training and 12 held-out dividing phantoms, and three generated sets of known nature."""
    run = RunDir(tmp_path_factory.mktemp("eval") / "run")
    real = phantoms.make_batch("dividing", 24, size=16, frames=4, rng=1)
    write_dataset(real[:12], run.data, heldout=real[12:], progress=False)
    train = [read_sdf_h5(f)[0] for f in run.data_files()]
    copies = [phantoms.MaskSequence(s < 0, name=f"c{k}") for k, s in enumerate(train)]
    _write_set(run, "copies", copies)
    _write_set(run, "average", [real[0]] * 12)
    _write_set(run, "new", phantoms.make_batch("dividing", 12, size=16, frames=4, rng=99))
    return run, evaluate_run(run)


def test_copies_are_caught_by_memorisation(judged):
    _, result = judged
    assert result["reference"] == "heldout" and result["n_train"] == 12 and result["n_reference"] == 12
    assert result["sets"]["copies"]["memorisation"] == 1.0 and result["sets"]["copies"]["nearest_train"] == 0.0
    assert result["sets"]["new"]["memorisation"] <= 0.25


def test_an_average_cell_is_caught_by_variety_and_coverage(judged):
    _, result = judged
    average, new = result["sets"]["average"], result["sets"]["new"]
    assert all(v < 0.05 for v in average["variety"].values())
    assert all(0.5 < v < 1.6 for v in new["variety"].values())
    assert average["coverage"] <= 2 / 12 < new["coverage"]
    assert average["nn1_accuracy"] > 0.8 > new["nn1_accuracy"]


def test_new_draws_of_the_family_are_recommended_and_the_run_records_why(judged):
    run, result = judged
    assert result["recommended"] == "new"
    assert abs(result["baseline"]["nn1_accuracy"] - 0.5) <= 0.25  # real vs real: hard to tell apart
    metrics = json.loads(run.metrics_path.read_text())["evaluate"]
    assert metrics["recommended"] == "new" and set(metrics["sets"]) == {"average", "copies", "new"}
    assert run.latent_model.read_bytes() == (run.generated / "new" / "latent.npz").read_bytes()
    assert run.descriptor_table("heldout").is_file() and run.descriptor_table("new").is_file()
    assert result["sets"]["new"]["topology_plausible"] == 1.0


def test_a_data_set_too_small_to_split_is_judged_against_training_with_a_warning(tmp_path, caplog):
    run = RunDir(tmp_path / "run")
    real = phantoms.make_batch("deforming", 3, size=16, frames=3, rng=2)
    write_dataset(real, run.data, progress=False)
    _write_set(run, "new", phantoms.make_batch("deforming", 3, size=16, frames=3, rng=5))
    result = evaluate_run(run)
    assert result["reference"] == "training" and "rewards copying" in result["warning"]
    assert result["sets"]["new"]["memorisation"] is None and result["baseline"] is None
    assert "too small to split" in caplog.text


def test_novelty_plane_labels_sets_at_one_spot_once_and_colours_by_topology():
    from cellnb.viz.evaluation import plot_novelty_realism

    same = {"memorisation": 0.0625, "nn1_accuracy": 0.7}
    evaluation = {"sets": {"gaussian": {**same, "topology_plausible": 0.2}, "gmm": {**same, "topology_plausible": 0.6},
                           "random": {"memorisation": 0.0, "nn1_accuracy": 0.9, "topology_plausible": 0.0}},
                  "baseline": None, "recommended": "gmm"}
    fig = plot_novelty_realism(evaluation)
    ax = fig.axes[0]
    labels = sorted(t.get_text() for t in ax.texts if t.get_text() != "indistinguishable")
    assert labels == ["gaussian, gmm (recommended)", "random"]
    colours = [c.get_array()[0] for c in ax.collections]
    assert colours == [0.2, 0.6, 0.0]


def test_novelty_plane_labels_of_nearby_sets_do_not_overlap():
    """Bug: the labels 'gaussian, gmm' and 'kde' of two sets 0.01 apart were drawn over each other."""
    from cellnb.viz.evaluation import plot_novelty_realism

    evaluation = {"sets": {"gaussian": {"memorisation": 0.06, "nn1_accuracy": 0.71, "topology_plausible": 0.3},
                           "gmm": {"memorisation": 0.06, "nn1_accuracy": 0.71, "topology_plausible": 0.3},
                           "kde": {"memorisation": 0.07, "nn1_accuracy": 0.72, "topology_plausible": 0.5},
                           "random": {"memorisation": 0.0, "nn1_accuracy": 0.72, "topology_plausible": 0.0}},
                  "baseline": None, "recommended": "kde"}
    fig = plot_novelty_realism(evaluation)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts if t.get_text() != "indistinguishable"]
    assert len(boxes) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
