"""cellnb.report: the README results section comes from metrics files, numbers unchanged."""

import pytest

from cellnb.report import END, START, headline_rows, results_markdown, update_readme
from cellnb.workspace import RunDir


def write_run(runs, name, *, topology_sequences):
    run = RunDir(runs / name)
    run.root.mkdir(parents=True)
    run.update_metrics("data", {"n_sequences": 8, "n_train": 6, "n_heldout": 2, "size": 48})
    run.update_metrics("train", {"seconds": 88.25, "dice_mean": 0.9921, "iou_mean": 0.9845, "topology_kept": 7,
                                 "topology_sequences": topology_sequences})
    gmm = {"memorisation": 0.0625, "nn1_accuracy": 0.59, "coverage": 0.5, "topology_plausible": 0.9375,
           "w1_norm": {"volume": 0.41, "surface_area": 0.0706, "sphericity": 0.04},
           "variety": {"volume": 1.34, "surface_area": 1.29, "sphericity": 0.49}}
    run.update_metrics("evaluate", {"recommended": "gmm", "sets": {"gmm": gmm, "random": {}},
                                    "baseline": {"nn1_accuracy": 0.75, "w1_norm": {"volume": 0.58}}})
    return run


def test_headline_rows_read_the_metrics_files(tmp_path):
    write_run(tmp_path, "dividing", topology_sequences=8)
    write_run(tmp_path, "filopodial", topology_sequences=0)
    dividing, filopodial = headline_rows(tmp_path, ["dividing", "filopodial"])
    assert dividing["recon. Dice"] == 0.9921 and dividing["W1/sd area"] == 0.0706 and dividing["topology G"] == 0.9375
    assert dividing["train/held-out"] == "6/2" and dividing["recommended"] == "gmm"
    assert dividing["memorisation"] == 0.0625 and dividing["variety volume"] == 1.34
    assert dividing["real 1-NN acc."] == 0.75 and dividing["real W1/sd volume"] == 0.58
    assert dividing["topology kept"] == "7/8"
    assert filopodial["topology kept"] is None  # nothing divides: no count to keep
    assert dividing["narrow-band evals ratio"] is None  # notebook 04 did not run


def test_update_readme_replaces_only_the_marked_section(tmp_path):
    write_run(tmp_path / "runs", "dividing", topology_sequences=8)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "dividing_loss.png").write_bytes(b"png")
    (tmp_path / "figures" / "dividing_animation.mp4").write_bytes(b"mp4")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{START}\nold numbers\n{END}\n\nAfter.\n")
    update_readme(readme, runs=tmp_path / "runs", figures=tmp_path / "figures", names=["dividing"])
    text = readme.read_text()
    assert text.startswith("# Title\n\n" + START) and text.endswith(END + "\n\nAfter.\n")
    assert "old numbers" not in text
    row = next(line for line in text.splitlines() if line.startswith("| dividing"))
    assert "| 0.9921 |" in row and "| 7/8 |" in row and "| – |" in row
    assert "![dividing loss](figures/dividing_loss.png)" in text
    assert "**dividing: animation** ([MP4](figures/dividing_animation.mp4))" in text
    assert text == readme.read_text() and results_markdown(tmp_path / "runs", ["dividing"],
                                                           figures=tmp_path / "figures", relative_to=tmp_path) in text


def test_readme_without_markers_is_refused_and_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    with pytest.raises(ValueError, match="results markers"):
        update_readme(readme, runs=tmp_path, figures=tmp_path, names=[])
    assert readme.read_text() == "# Title\n"
