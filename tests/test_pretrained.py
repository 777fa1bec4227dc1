"""Pretrained models in the package (``cellnb models``, ``generate --pretrained``, ``load_pretrained``).

A tiny decoder is trained once on 16^3 dividing phantoms of four frames (a few
seconds), given a latent model and evaluation numbers, and packaged into a
temporary package folder.  Truth from outside the code under test: the run
itself (``load_trained`` and ``generate --run`` give what the packaged model
gives, exactly).  Seeds are fixed (prepare, train, generate).
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cellnb
from cellnb import pretrained
from cellnb.checkpoint import load_trained
from cellnb.cli import main
from cellnb.io import read_sdf_h5
from cellnb.latent import sample_codes
from cellnb.train import train
from cellnb.workspace import GeneratedDir, RunDir

SIZE, FRAMES = 16, 4
TINY_MODEL = {"code_length": 8, "dims": [32, 32, 32], "latent_in": [2], "xyz_in_all": False,
              "coord_init_bound": None}
TINY_TRAIN = {"epochs": 4, "points_per_frame": 256, "frames_per_batch": 4, "checkpoint_every": 4, "compile": False}
EVALUATE = {"recommended": "gaussian", "reference": "heldout",
            "sets": {"gaussian": {"nn1_accuracy": 0.625, "memorisation": 0.125, "topology_plausible": 0.75,
                                  "w1_norm": {"volume": 0.31, "surface_area": 0.27, "sphericity": 0.12}}}}
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pretrained.py"
MAX_BYTES = 40_000  # the tiny model's three files: weights of ~2.5k parameters, codes, card, latent model


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """``(run, models)``: a trained, 'evaluated' run and the package folder holding it as ``tiny``."""
    root = tmp_path_factory.mktemp("pretrained")
    data, run = root / "data", RunDir(root / "run")
    torch.set_num_threads(1)
    assert main(["prepare", "--source", "phantoms:dividing", "--n-sequences", "4", "--frames", str(FRAMES),
                 "--size", str(SIZE), "--no-align", "--out", str(data), "--quiet"]) == 0
    train(data, run.root, model_config=TINY_MODEL, train_config=TINY_TRAIN, device="cpu", progress=False)
    _, codes, _, _ = load_trained(run, device="cpu")
    _, model = sample_codes("gaussian", codes.numpy().astype(np.float64), 1, rng=0)
    model.save(run.latent_model)
    run.update_metrics("train", {**run.read_metrics()["train"], "dice_mean": 0.912, "topology_kept": 2,
                                 "topology_sequences": 3})
    run.update_metrics("evaluate", EVALUATE)
    models = root / "models"
    pretrained.package(run, "tiny", models)
    return run, models


@pytest.fixture
def models(packaged, monkeypatch, tmp_path):
    """The package folder of :func:`packaged` as cellnb's own, and a fresh cache."""
    monkeypatch.setattr(pretrained, "PACKAGE_DATA", packaged[1])
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    return packaged[1]


def test_load_pretrained_gives_the_runs_decoder_and_codes(packaged, models):
    run, _ = packaged
    decoder, codes, names, info = load_trained(run, device="cpu")
    decoder2, codes2, names2, info2 = cellnb.load_pretrained("tiny", device="cpu")
    assert names2 == names and torch.equal(codes2, codes)
    xyzt = torch.rand(500, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(decoder2(codes2[[0, 1, 2, 0, 1]].repeat_interleave(100, 0), xyzt),
                           decoder(codes[[0, 1, 2, 0, 1]].repeat_interleave(100, 0), xyzt))
    assert info2["model_config"] == info["model_config"] and info2["data"]["sha256"] == info["data"]["sha256"]
    assert info2["card"]["content_sha256"] == pretrained.content_hash(decoder.state_dict(), codes)


def test_the_package_holds_no_optimiser_state_and_is_small(models):
    folder = models / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "latent.npz", "model.pt"]
    model = torch.load(folder / "model.pt", weights_only=True)
    assert "optimizer" not in model and "rng" not in model
    assert sum(p.stat().st_size for p in folder.iterdir()) < MAX_BYTES


def test_generate_pretrained_writes_what_generate_run_writes(packaged, models, tmp_path):
    run, _ = packaged
    common = ["--n", "2", "--frames", "3", "--size", "12", "--seed", "5", "--strategy", "gaussian", "--quiet"]
    assert main(["generate", "--run", str(run.root), "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["generate", "--pretrained", "tiny", "--out", str(tmp_path / "b"), *common]) == 0
    a, b = GeneratedDir(tmp_path / "a"), GeneratedDir(tmp_path / "b")
    assert [p.name for p in a.sdf_files()] == [p.name for p in b.sdf_files()] == ["gaussian000.h5", "gaussian001.h5"]
    for fa, fb in zip(a.sdf_files(), b.sdf_files()):
        (sa, ra), (sb, rb) = read_sdf_h5(fa), read_sdf_h5(fb)
        assert np.array_equal(sa, sb)
        assert ra["spacing"] == rb["spacing"] and ra["scale"] == rb["scale"]
    # "recommended" draws from the shipped latent model, as from the run's own
    assert main(["generate", "--run", str(run.root), "--out", str(tmp_path / "c"), *common[:-3], "--quiet"]) == 0
    assert main(["generate", "--pretrained", "tiny", "--out", str(tmp_path / "d"), *common[:-3], "--quiet"]) == 0
    for fa, fb in zip(GeneratedDir(tmp_path / "c").sdf_files(), GeneratedDir(tmp_path / "d").sdf_files()):
        assert np.array_equal(read_sdf_h5(fa)[0], read_sdf_h5(fb)[0])


def test_the_run_is_materialised_once(models, tmp_path):
    first = pretrained.pretrained_run("tiny")
    stamp = first.latest_checkpoint.stat().st_mtime_ns
    again = pretrained.pretrained_run("tiny")
    assert again.root == first.root and again.latest_checkpoint.stat().st_mtime_ns == stamp
    assert first.root.parent == tmp_path / "cache" / "pretrained" and first.root.name.startswith("tiny-")
    assert not [p for p in first.root.parent.iterdir() if p.name.startswith(".")]


def test_models_prints_the_cards_numbers(models, capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    line = lines[0]
    for text in ("tiny", "phantoms:dividing", "sequences", "Dice 0.912", "recommended gaussian", "1-NN 0.625",
                 "memorisation 0.12"):
        assert text in line
    card = pretrained.read_card("tiny")
    assert card["evaluation"]["topology_kept"] == pytest.approx(2 / 3)
    assert card["evaluation"]["w1_norm"] == EVALUATE["sets"]["gaussian"]["w1_norm"]
    assert card["data"]["spacing"] is not None and card["cellnb_version"] == cellnb.__version__
    assert line == pretrained.card_line(card)


def test_no_models_is_said_plainly(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(pretrained, "PACKAGE_DATA", tmp_path / "missing")
    assert pretrained.available() == []
    assert main(["models"]) == 0
    assert capsys.readouterr().out.strip() == pretrained.EMPTY


def test_an_unknown_name_is_one_line_listing_the_known_ones(models, tmp_path, capsys):
    assert main(["generate", "--pretrained", "nope", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'nope'" in err and "known: tiny" in err
    with pytest.raises(ValueError, match="known: tiny"):
        cellnb.load_pretrained("nope")


def test_run_and_pretrained_are_exclusive(models, packaged, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--run", str(packaged[0].root), "--pretrained", "tiny", "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_a_model_from_a_newer_cellnb_names_the_version(models, tmp_path, capsys, monkeypatch):
    newer = tmp_path / "newer"
    (newer / "future").mkdir(parents=True)
    for f in ("model.pt", "latent.npz"):
        (newer / "future" / f).write_bytes((models / "tiny" / f).read_bytes())
    card = json.loads((models / "tiny" / "card.json").read_text())
    (newer / "future" / "card.json").write_text(json.dumps({**card, "name": "future", "cellnb_version": "99.1.0"}))
    monkeypatch.setattr(pretrained, "PACKAGE_DATA", newer)
    assert main(["generate", "--pretrained", "future", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cellnb >= 99.1.0" in err
    assert not (tmp_path / "o").exists()


def test_the_script_packages_prints_the_models_line_and_checks(packaged, tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("pretrained_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    runs, dest = tmp_path / "runs", tmp_path / "package"
    runs.mkdir()
    (runs / "dividing").symlink_to(packaged[0].root)
    args = ["--from-runs", str(runs), "--models", "dividing", "--dest", str(dest)]
    assert script.main(args) == 0
    printed = capsys.readouterr().out.strip()
    monkeypatch.setattr(pretrained, "PACKAGE_DATA", dest)
    assert main(["models"]) == 0
    assert capsys.readouterr().out.strip() == printed
    assert script.main([*args, "--check"]) == 0
    card = json.loads((dest / "dividing" / "card.json").read_text())
    card["content_sha256"] = "0" * 64
    (dest / "dividing" / "card.json").write_text(json.dumps(card))
    assert script.main([*args, "--check"]) == 1
    assert "content_sha256 differs" in capsys.readouterr().err


def test_generate_pretrained_needs_an_output_folder(models, capsys):
    assert main(["generate", "--pretrained", "tiny", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--pretrained needs --out" in err


def test_fit_pretrained_gives_the_codes_of_fit_run(packaged, models, tmp_path, capsys):
    run, _ = packaged
    heldout = run.root.parent / "data" / "heldout"
    common = ["--data", str(heldout), "--iterations", "5", "--quiet"]
    assert main(["fit", "--pretrained", "tiny", "--out", str(tmp_path / "p"), *common]) == 0
    assert main(["fit", "--run", str(run.root), "--out", str(tmp_path / "r"), *common]) == 0
    capsys.readouterr()
    for file in ("codes.npz", "table.csv"):
        assert (tmp_path / "p" / file).read_bytes() == (tmp_path / "r" / file).read_bytes()


@pytest.mark.parametrize("args, needle", [
    (["--pretrained", "nope", "--out", "o"], "known: tiny"),
    (["--pretrained", "tiny"], "--pretrained needs --out"),
])
def test_fit_pretrained_bad_input_is_one_line(packaged, models, tmp_path, capsys, args, needle):
    heldout = packaged[0].root.parent / "data" / "heldout"
    args = [str(tmp_path / a) if a == "o" else a for a in args]
    assert main(["fit", *args, "--data", str(heldout), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cellnb fit: error:") and needle in err[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "cache").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--run", str(packaged[0].root), "--pretrained", "tiny", "--data", str(heldout)])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_generating_needs_no_notebook_packages():
    """`pip install cellnb` without the notebook extras: generate imports without IPython (a bug once)."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['IPython'] = None; sys.modules['ipykernel'] = None\n"
            "import cellnb.generate, cellnb.export, cellnb.render, cellnb.fit, cellnb.cli")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
