"""Nothing a user made is lost, every error is one line (issue 9, section 2).

Each case was seen by a user; each must end in one line on stderr, exit status
2 (130 for Ctrl-C, 143 for SIGTERM), no traceback, and the files that were
there before exactly as they were.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO
from test_train import TINY_MODEL, TINY_TRAIN, write_data

from cellnb import cli
from cellnb.checkpoint import load_trained
from cellnb.io import atomic_folder, atomic_path, write_sdf_h5
from cellnb.notebook import check_parameters
from cellnb.runner import run_all
from cellnb.signals import Terminated, handled
from cellnb.train import Trainer, train
from cellnb.workspace import RunDir, RunInUse

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
TINY_SET = json.dumps({"model": TINY_MODEL, "train": TINY_TRAIN})


def snapshot(folder):
    """Every file below ``folder`` (the lock file aside) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def hidden(folder):
    return sorted(p.name for p in folder.rglob(".*") if p.name != ".lock")


def cellnb(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "cellnb", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def one_line_error(proc, command, match):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"cellnb {command}: error:"), proc.stderr
    assert match in lines[-1], lines[-1]


@pytest.fixture
def trained(tmp_path):
    data = write_data(tmp_path / "data")
    run = RunDir(tmp_path / "run")
    train(data, run, model_config=TINY_MODEL, train_config=TINY_TRAIN, device="cpu", progress=False)
    return data, run


def test_a_failed_overwrite_leaves_the_trained_model_and_its_config_as_they_were(trained, monkeypatch):
    data, run = trained
    before = snapshot(run.root)
    from cellnb import train as train_module

    original = train_module.Trainer.run_epoch

    def failing(self, epoch):
        if epoch == 2:
            raise ValueError("training diverged at epoch 3 (loss nan); lower train.lr_decoder")
        return original(self, epoch)

    monkeypatch.setattr(train_module.Trainer, "run_epoch", failing)
    with pytest.raises(ValueError, match="diverged"):
        train(data, run, model_config=TINY_MODEL, train_config={**TINY_TRAIN, "lr_decoder": 5e-3}, overwrite=True,
              device="cpu", progress=False)
    assert snapshot(run.root) == before and hidden(run.root) == []


def test_a_successful_overwrite_replaces_the_model_whole(trained):
    data, run = trained
    old = load_trained(run)[3]
    train(data, run, model_config=TINY_MODEL, train_config={**TINY_TRAIN, "epochs": 2, "checkpoint_every": 1},
          overwrite=True, device="cpu", progress=False)
    new = load_trained(run)[3]
    assert old["epoch"] == 4 and new["epoch"] == 2
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["epoch00001.pt", "epoch00002.pt", "latest.pt"]
    assert run.read_config()["train"]["epochs"] == 2 and len(run.train_log.read_text().splitlines()) == 3
    assert hidden(run.root) == []


def test_resume_on_other_data_with_the_same_names_and_shapes_is_refused(trained, tmp_path):
    data, run = trained
    other = write_data(tmp_path / "other")
    with h5py.File(other / "grow.h5", "r+") as f:
        f["sdf_vid"][0, 0, 0, 0] = 0.5  # one value differs; names, frames, shapes are the same
    with pytest.raises(ValueError, match=r"other values \(content hash\)"):
        train(other, run, model_config=TINY_MODEL, train_config={**TINY_TRAIN, "epochs": 6}, resume=True,
              device="cpu", progress=False)


def test_a_second_process_on_the_same_run_is_refused(trained):
    data, run = trained
    before = snapshot(run.root)
    with run.lock("train"):
        with pytest.raises(RunInUse, match=rf"in use by cellnb train \(pid {os.getpid()}\)"):
            train(data, run, model_config=TINY_MODEL, train_config=TINY_TRAIN, overwrite=True, device="cpu",
                  progress=False)
        proc = cellnb("train", "--data", data, "--run", run.root, "--overwrite", "--set", TINY_SET, "--quiet")
        one_line_error(proc, "train", "is in use by cellnb train")
    assert snapshot(run.root) == before


def test_notebook_parameters_are_typed_like_cli_options():
    ns = {"__annotations__": {"overwrite": bool, "epochs": int}, "overwrite": "no", "epochs": "5"}
    assert check_parameters(ns) == {"overwrite": False, "epochs": 5} and ns["overwrite"] is False
    with pytest.raises(ValueError, match="parameter overwrite must be true or false, got 'maybe'"):
        check_parameters({"__annotations__": {"overwrite": bool}, "overwrite": "maybe"})
    with pytest.raises(ValueError, match="parameter epochs must be an integer, got 'five'"):
        check_parameters({"__annotations__": {"epochs": int}, "epochs": "five"})


def test_every_notebook_checks_its_parameters_first():
    import nbformat

    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        assert cells[index + 1].source.startswith("check_parameters(globals())"), path.name


def test_prepare_refuses_a_grid_that_does_not_fit_memory_before_any_work(tmp_path):
    proc = cellnb("prepare", "--source", "phantoms:dividing", "--size", "4096", "--out", tmp_path / "d")
    one_line_error(proc, "prepare", "needs about")
    assert "GiB of memory" in proc.stderr and not (tmp_path / "d").exists()


def test_prepare_overwrite_replaces_the_whole_data_set(tmp_path):
    out = tmp_path / "d"
    base = ["prepare", "--source", "phantoms:deforming", "--frames", "3", "--size", "16", "--out", str(out), "--quiet"]
    assert cli.main(base + ["--n-sequences", "3"]) == 0
    assert cli.main(base + ["--n-sequences", "1", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "deforming_000.h5"]  # no stale sequences


@pytest.mark.parametrize("argv, command, match", [
    (["train", "--data", "DATA", "--run", "RUN", "--device", "bogus"], "train", "not a device name"),
    (["train", "--data", "DATA", "--run", "RUN", "--seed", "-1"], "train", "--seed: must be a non-negative"),
    (["train", "--data", "DATA", "--run", "RUN", "--set", '{"train": {"epochs": "five"}}'], "train",
     "train.epochs must be an integer, got 'five'"),
    (["train", "--data", "DATA", "--run", "RUN", "--set", '{"train": {"epoch": 5}}'], "train",
     "unknown train parameter(s) ['epoch']"),
    (["generate", "--run", "RUN", "--n", "0"], "generate", "--n: must be a positive integer"),
    (["describe", "DATA", "--out", "DATA"], "describe", "is an existing folder"),
    (["prepare", "--source", "phantoms:dividing", "--out", "/sys/cellnb-test"], "prepare", "cannot write"),
    (["run", "--set", '{"trian": {"epochs": 5}}', "--runs", "RUNS"], "run", "unknown profile section(s) ['trian']"),
])
def test_bad_options_are_one_line_errors(tmp_path, argv, command, match):
    data = write_data(tmp_path / "data")
    subs = {"DATA": data, "RUN": tmp_path / "run", "RUNS": tmp_path / "runs"}
    proc = cellnb(*[subs.get(a, a) for a in argv])
    one_line_error(proc, command, match)
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_damaged_files_are_named_in_one_line(trained, tmp_path):
    data, run = trained
    ckpt = torch.load(run.latest_checkpoint, weights_only=True)
    del ckpt["optimizer"], ckpt["log"]
    torch.save(ckpt, run.latest_checkpoint)
    one_line_error(cellnb("generate", "--run", run.root, "--n", "1", "--size", "12", "--frames", "2"), "generate",
                   "lacks the checkpoint entries ['optimizer', 'log']")
    with h5py.File(data / "grow.h5", "r+") as f:
        f.attrs["cellnb"] = "{not json"
    one_line_error(cellnb("describe", data / "grow.h5", "--out", tmp_path / "d.csv"), "describe",
                   "record is not valid JSON")
    nan = tmp_path / "nan.h5"
    sdf = np.ones((2, 8, 8, 8), np.float32)
    sdf[:, 3:5, 3:5, 3:5] = -1
    write_sdf_h5(nan, sdf)
    with h5py.File(nan, "r+") as f:
        f["sdf_vid"][0, 0, 0, 1] = np.nan
    one_line_error(cellnb("describe", nan, "--out", tmp_path / "d.csv"), "describe",
                   "NaN or infinite SDF values in frame(s) [1]")
    assert not (tmp_path / "d.csv").exists()


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import cellnb.io

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "d"))

    monkeypatch.setattr(cellnb.io, "write_sdf_h5", full)
    monkeypatch.setattr("cellnb.prepare.write_sdf_h5", full)
    code = cli.main(["prepare", "--source", "phantoms:deforming", "--n-sequences", "1", "--frames", "2",
                     "--size", "16", "--out", str(tmp_path / "d"), "--quiet"])
    assert code == 2 and "no space left" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _wait_for(path, timeout=120):
    _wait_for_glob(path.parent, path.name, timeout=timeout)


def _wait_for_glob(folder, pattern, timeout=120):
    start = time.monotonic()
    while not list(folder.glob(pattern)):
        assert time.monotonic() - start < timeout, f"{folder}/{pattern} never appeared"
        time.sleep(0.05)


def test_ctrl_c_during_training_says_what_is_intact_and_leaves_no_temporary_files(tmp_path):
    data = write_data(tmp_path / "data")
    run = RunDir(tmp_path / "run")
    long = json.dumps({"model": TINY_MODEL, "train": {**TINY_TRAIN, "epochs": 100_000, "checkpoint_every": 1}})
    proc = subprocess.Popen([sys.executable, "-m", "cellnb", "train", "--data", str(data), "--run", str(run.root),
                             "--set", long, "--quiet"], env=ENV, stderr=subprocess.PIPE, text=True)
    _wait_for(run.latest_checkpoint)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("cellnb train: interrupted at epoch ")
    assert "is intact; resume with --resume" in err
    assert load_trained(run)[3]["epoch"] >= 1 and hidden(run.root) == []
    # An interrupted --overwrite leaves the model it was replacing exactly as it was.
    before = snapshot(run.root)
    proc = subprocess.Popen([sys.executable, "-m", "cellnb", "train", "--data", str(data), "--run", str(run.root),
                             "--set", long, "--overwrite", "--quiet"], env=ENV, stderr=subprocess.PIPE, text=True)
    _wait_for_glob(run.root, ".checkpoints.tmp-*/latest.pt")  # training aside, a few epochs in
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err
    assert "the previous model" in err and "is unchanged" in err
    assert snapshot(run.root) == before and hidden(run.root) == []


def test_sigterm_during_generation_leaves_no_hidden_folders(trained):
    _, run = trained
    proc = subprocess.Popen([sys.executable, "-m", "cellnb", "generate", "--run", str(run.root), "--n", "50",
                             "--frames", "20", "--size", "64", "--method", "dense", "--quiet"], env=ENV,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(10)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert "interrupted" in err.strip().splitlines()[-1]
    assert not run.generated.exists() or hidden(run.generated) == []


def test_files_get_the_users_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
        with atomic_folder(tmp_path / "folder") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755


def _fake_notebooks(run, values, notebooks, progress):
    """Stands in for papermill: the files a run makes, and a failure for the data set named 'filopodial'."""
    run.root.mkdir(parents=True, exist_ok=True)
    run.update_metrics("data", {"n_sequences": 1, "size": 16})
    run.figures.mkdir(exist_ok=True)
    (run.figures / f"{values['name']}_x.png").write_bytes(b"new")
    if values["name"] == "filopodial" and values.get("fail"):
        raise RuntimeError("a notebook failed")


def test_a_failed_main_job_leaves_every_previous_run_figure_and_readme_byte_identical(tmp_path, monkeypatch):
    import cellnb.runner as runner

    runs, figures, readme = tmp_path / "runs", tmp_path / "figures", tmp_path / "README.md"
    for name in ("dividing", "filopodial"):
        (runs / name).mkdir(parents=True)
        (runs / name / "metrics.json").write_text(f'{{"old": "{name}"}}')
    figures.mkdir()
    (figures / "dividing_x.png").write_bytes(b"old")
    readme.write_text("# x\n<!-- results:start -->\nold\n<!-- results:end -->\n")
    before = {"runs": snapshot(runs), "figures": snapshot(figures), "readme": readme.read_bytes()}

    def failing(run, values, notebooks, progress):
        _fake_notebooks(run, {**values, "fail": True}, notebooks, progress)

    monkeypatch.setattr(runner, "_run_notebooks", failing)
    kwargs = dict(runs=runs, figures=figures, readme=readme, datasets=["dividing", "filopodial"], progress=False,
                  notebooks=REPO / "notebooks")
    with pytest.raises(RuntimeError, match="a notebook failed"):
        run_all(overwrite=True, **kwargs)
    with pytest.raises(ValueError, match="trian"):
        run_all(overwrite=True, overrides={"trian": {}}, **kwargs)
    assert {"runs": snapshot(runs), "figures": snapshot(figures), "readme": readme.read_bytes()} == before
    assert hidden(runs) == []
    monkeypatch.setattr(runner, "_run_notebooks", _fake_notebooks)
    summary = run_all(overwrite=True, **{**kwargs, "datasets": ["dividing", "celegans"]},
                      data_dir=tmp_path / "no-data")
    assert summary["datasets"] == ["dividing"] and "no C. elegans data" in summary["skipped"]["celegans"]
    assert (figures / "dividing_x.png").read_bytes() == b"new" and hidden(runs) == []


def test_run_says_which_data_sets_it_skipped_and_why(monkeypatch, capsys, tmp_path):
    import cellnb.runner as runner

    monkeypatch.setattr(runner, "_run_notebooks", _fake_notebooks)
    monkeypatch.chdir(REPO)
    code = cli.main(["run", "--runs", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures"), "--readme", "",
                     "--datasets", "dividing", "celegans", "--data-dir", str(tmp_path / "none"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("ran dividing; ") and "skipped celegans (no C. elegans data:" in out


def test_a_signal_swallowed_by_a_finaliser_is_raised_again(capfd):
    """Bug: SIGTERM landing in a weakref callback printed 'Exception ignored ... Traceback' and the command went on."""

    class Dying:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler's Terminated is raised here, and dropped
            time.sleep(0.5)

    with pytest.raises(Terminated), handled():
        Dying()
        time.sleep(5)  # the signal sent again lands here
    assert "Traceback" not in capfd.readouterr().err


def test_a_ctrl_c_swallowed_during_training_still_stops_it(tmp_path, monkeypatch, capsys):
    """Bug (CI, once in many runs): a Ctrl-C sent during training was lost, and training went on to the end."""
    data = write_data(tmp_path / "data")
    run_epoch = Trainer.run_epoch

    def swallowing(self, epoch):
        if epoch == 1:  # the second epoch, after the first checkpoint
            try:  # what code that drops exceptions (a finaliser, a C++ callback) does to the signal's
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
            except KeyboardInterrupt:
                pass
        return run_epoch(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", swallowing)
    settings = json.dumps({"model": TINY_MODEL, "train": {**TINY_TRAIN, "checkpoint_every": 1}})
    code = cli.main(["train", "--data", str(data), "--run", str(tmp_path / "run"), "--set", settings, "--quiet"])
    err = capsys.readouterr().err
    assert code == 130 and "cellnb train: interrupted at epoch 2; the last checkpoint (epoch 1) is intact" in err
    assert load_trained(RunDir(tmp_path / "run"))[3]["epoch"] == 1


def test_a_data_set_that_fails_stops_the_one_running_beside_it(tmp_path, monkeypatch):
    """Data sets run side by side (jobs=2): a failure stops the other lane, which cleans up, and nothing changes."""
    import cellnb.runner as runner

    runs = tmp_path / "runs"
    (runs / "dividing").mkdir(parents=True)
    (runs / "dividing" / "metrics.json").write_text('{"old": "dividing"}')
    before = snapshot(runs)

    def notebooks(run, values, notebooks, progress):
        run.root.mkdir(parents=True, exist_ok=True)
        if values["name"] == "filopodial":
            time.sleep(1)
            raise RuntimeError("a notebook failed")
        try:
            time.sleep(120)  # the long one: stopped before it ends
            (tmp_path / "finished").touch()
        finally:
            (tmp_path / "cleaned-up").touch()

    monkeypatch.setattr(runner, "_run_notebooks", notebooks)
    with pytest.raises(RuntimeError, match="^filopodial: RuntimeError: a notebook failed"):
        run_all(runs=runs, figures=tmp_path / "figures", readme=None, datasets=["dividing", "filopodial"],
                progress=False, notebooks=REPO / "notebooks", overwrite=True, jobs=2)
    assert (tmp_path / "cleaned-up").exists() and not (tmp_path / "finished").exists()
    assert snapshot(runs) == before and hidden(runs) == []
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        run_all(runs=runs, readme=None, datasets=["dividing"], notebooks=REPO / "notebooks", overwrite=True, jobs=0)
