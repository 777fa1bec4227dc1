"""The `cellnb` command: user errors are one line, no traceback, nothing written."""

import subprocess
import sys

import numpy as np
import pytest

from cellnb.cli import main
from cellnb.io import read_sdf_h5


def test_prepare_builds_a_phantom_data_set(tmp_path, capsys):
    out = tmp_path / "data"
    code = main(["prepare", "--source", "phantoms:dividing", "--n-sequences", "2", "--frames", "4",
                 "--size", "16", "--out", str(out), "--quiet"])
    assert code == 0
    assert "prepared 2 sequences" in capsys.readouterr().out
    files = sorted(out.glob("*.h5"))
    assert len(files) == 2
    sdf, record = read_sdf_h5(files[0])
    assert sdf.shape == (4, 16, 16, 16) and record["source"] == "phantoms:dividing"
    assert np.abs(sdf).max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["prepare", "--source", "phantoms:round", "--out", "X"], "unknown phantom family"),
        (["prepare", "--source", "nowhere", "--out", "X"], "unknown source"),
        (["prepare", "--source", "phantoms:dividing", "--size", "4", "--out", "X"], "size must be at least"),
        (["train", "--data", "EMPTY", "--run", "RUN"], "no"),
        (["reconstruct", "--run", "RUN"], "no trained model"),
        (["generate", "--run", "RUN"], "no trained model"),
        (["generate", "--run", "RUN", "--plausible", "--redraws", "-1"], "must be a non-negative integer"),
    ],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, argv, message):
    (tmp_path / "EMPTY").mkdir()
    argv = [a if a not in ("X", "EMPTY", "RUN") else str(tmp_path / a) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "cellnb", *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"cellnb {argv[0]}: error:")
    assert message in proc.stderr
    assert not (tmp_path / "X").exists() and not (tmp_path / "RUN").exists()


def test_prepare_refuses_to_overwrite_existing_data(tmp_path):
    out = tmp_path / "data"
    args = ["prepare", "--source", "phantoms:deforming", "--n-sequences", "1", "--frames", "3",
            "--size", "16", "--out", str(out), "--quiet"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(args[:-1] + ["--seed", "5", "--quiet"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_microscopy_command_renders_generated_sequences_and_refuses_bad_input(tmp_path):
    from cellnb import phantoms
    from cellnb.prepare import write_dataset

    cells = phantoms.make_batch("dividing", 2, size=16, frames=3, rng=0)
    write_dataset(cells, tmp_path / "sdf", progress=False)
    out = tmp_path / "ctc"
    args = ["microscopy", "--from", str(tmp_path / "sdf"), "--out", str(out), "--spacing", "2", "1", "1", "--quiet"]
    assert main(args) == 0
    assert (out / "01_GT" / "TRA" / "man_track.txt").is_file() and len(list((out / "01").glob("t*.tif"))) == 3
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for bad, message in [(["--snr", "0", "--overwrite"], "snr"), ([], "already exists")]:
        proc = subprocess.run([sys.executable, "-m", "cellnb", *args[:9], *bad], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("cellnb microscopy: error:") and message in proc.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
