"""Notebooks: committed clean, declare what the runner passes, and run end to end."""

import json
import re

import nbformat
import papermill
import pytest
from conftest import REPO, celegans_available, real_data_dir

from cellnb.report import END, START
from cellnb.runner import NOTEBOOK_PARAMETERS, NOTEBOOKS, run_all

NOTEBOOK_DIR = REPO / "notebooks"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_declares_the_runner_parameters(name):
    declared = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    assert set(NOTEBOOK_PARAMETERS[name]) <= set(declared)
    assert all(p["help"] for p in declared.values())  # every parameter has a comment


def test_readme_quick_start_is_two_commands_that_exist():
    text = (REPO / "README.md").read_text()
    block = re.search(r"^## Quick start\s+```[a-z]*\n(.*?)```", text, re.S | re.M).group(1)
    lines = [line for line in block.strip().splitlines() if line.strip()]
    assert len(lines) == 2 and "main.sh" in lines[0] and "test.sh" in lines[1]
    for line in lines:
        script = re.search(r"bash (\S+)", line).group(1)
        assert (REPO / script).is_file()
    assert START in text and END in text


TINY = {
    "data": {"n_sequences": 3, "frames": 5, "size": 16},
    "train": {"epochs": 3},
    "generate": {"n": 2, "frames": 4, "size": 16},
}


@pytest.mark.slow
def test_main_job_runs_every_notebook_on_tiny_settings(tmp_path):
    """The README's main command, on tiny settings: every notebook, every data set, figures, README results."""
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Results\n\n{START}\nold\n{END}\n")
    datasets = ["dividing", "filopodial"] + (["celegans", "celegans-cells"] if celegans_available() else [])
    summary = run_all(
        profile="quick", runs=tmp_path / "runs", figures=tmp_path / "figures", datasets=datasets,
        overrides=TINY, notebooks=NOTEBOOK_DIR, readme=readme, progress=False, data_dir=real_data_dir(),
    )
    assert summary["datasets"] == datasets and summary["skipped"] == {}
    for name in datasets:
        metrics = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
        assert {"data", "train", "generate", "field", "evaluate", "microscopy"} <= set(metrics)
        assert len(list((tmp_path / "runs" / name / "executed").glob("*.ipynb"))) == len(NOTEBOOKS)
        assert len(list((tmp_path / "figures").glob(f"{name}_*.png"))) >= 8
    text = readme.read_text()
    assert "old" not in text and "| dividing |" in text and "figures/dividing_" in text
    # The data sets ran side by side (one thread each); one after another (all threads), the numbers are the same.
    alone = run_all(
        profile="quick", runs=tmp_path / "alone", figures=tmp_path / "alone-figures", datasets=["dividing"],
        overrides=TINY, notebooks=NOTEBOOK_DIR, readme=None, progress=False, jobs=1,
    )
    assert alone["datasets"] == ["dividing"]
    side_by_side, one = (_numbers(json.loads((root / "dividing" / "metrics.json").read_text()))
                         for root in (tmp_path / "runs", tmp_path / "alone"))
    assert len(one) > 100 and side_by_side == one


def _numbers(metrics, key="") -> dict:
    """Every number in ``metrics`` by its key path, timings left out."""
    if isinstance(metrics, dict):
        return {k: v for name, value in metrics.items() for k, v in _numbers(value, f"{key}/{name}").items()}
    if isinstance(metrics, list):
        return {k: v for i, value in enumerate(metrics) for k, v in _numbers(value, f"{key}/{i}").items()}
    timing = "second" in key or key.endswith("time_ratio")
    return {key: metrics} if isinstance(metrics, (int, float)) and not timing else {}


# The paper profile's parameters, shrunk to CPU size (issue 9: these key names must keep working).
PAPER_TINY = {
    "data": {"n_sequences": 2, "frames": 4, "size": 16},
    "train": {"epochs": 2, "points_per_frame": 256, "frames_per_batch": 4},
    "generate": {"n": 2, "frames": 4, "size": 16},
}


@pytest.mark.slow
def test_paper_profile_runs_every_notebook_on_a_cpu(tmp_path):
    """`cellnb run --profile paper --set PAPER_TINY` completes on a CPU, every notebook included."""
    summary = run_all(
        profile="paper", runs=tmp_path / "runs", figures=tmp_path / "figures", datasets=["dividing"],
        overrides=PAPER_TINY, notebooks=NOTEBOOK_DIR, readme=None, progress=False,
    )
    assert summary["datasets"] == ["dividing"]
    metrics = json.loads((tmp_path / "runs" / "dividing" / "metrics.json").read_text())
    assert metrics["train"]["n_parameters"] == 216_137 and metrics["train"]["epochs"] == 2
    assert {"data", "train", "generate", "field", "evaluate", "microscopy"} <= set(metrics)
    config = json.loads((tmp_path / "runs" / "dividing" / "config.json").read_text())
    assert config["train"]["lr_schedule"] == "step" and config["profile"] == "paper"
