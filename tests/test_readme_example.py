"""The README's command-line example, run as written but on tiny sizes."""

import re
import shlex

import pandas as pd
import pytest
from conftest import REPO

from cellnb import ctc
from cellnb.cli import main

# Shrink the example's sizes so it runs in seconds; every other argument is the README's.
TINY = {
    "--n-sequences 8": "--n-sequences 2",
    "--frames 12": "--frames 4",
    "--size 48": "--size 16",
    "--profile quick": "--profile quick --epochs 200",  # 200 steps: cells that are not empty
    "--frames 30 --size 128": "--frames 3 --size 16",
    "--n 4": "--n 2",
}


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"^## The command line\s+```bash\n(.*?)```", text, re.S | re.M).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("cellnb ")]


@pytest.mark.slow
def test_readme_cli_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = [c for c in readme_commands() if not c.startswith("cellnb run")]
    assert [c.split()[1] for c in commands] == ["prepare", "train", "reconstruct", "generate", "describe", "generate",
                                                "microscopy"]
    for command in commands:
        for long, short in TINY.items():
            command = command.replace(long, short)
        if command.startswith("cellnb microscopy"):  # tiny cells of a 200-step model: image them at their own voxel
            spacing = ctc.read_spacing(tmp_path / "runs/demo/tracks/ctc/field000/01_GT/TRA")
            command += " --spacing " + " ".join(map(str, spacing))
        assert main(shlex.split(command)[1:]) == 0, command
    assert len(list((tmp_path / "runs/demo/data").glob("*.h5"))) == 2
    assert (tmp_path / "runs/demo/checkpoints/latest.pt").is_file()
    table = pd.read_csv(tmp_path / "descriptors.csv")
    assert table["sequence"].nunique() == 2 and len(table) == 2 * 3
    field = tmp_path / "runs/demo/tracks/ctc/field000"  # generated cells as tracking ground truth
    assert (field / "01_GT/TRA/man_track.txt").is_file()
    microscopy = tmp_path / "runs/demo/microscopy"
    assert len(list((microscopy / "01").glob("t*.tif"))) == len(list((microscopy / "01_GT/SEG").glob("man_seg*.tif")))
    assert (microscopy / "01_GT/TRA/man_track.txt").is_file()
