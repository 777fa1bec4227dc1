"""Codes for unseen cells (``cellnb fit``) and generation from them (``generate --from-codes``).

A tiny decoder is trained once here on three 16^3 dividing phantoms of four
frames (about 4 s; one more is held out by ``prepare``).  Truth from outside
the code under test: a batched fit against one-at-a-time fits, a training
sequence's fitted code against its learned code (reconstruct's Dice, and the
learned code is the nearest), the interpolation's weight-0 end against the
fitted code decoded directly.  Seeds are fixed (prepare, train, fit).
"""

import csv
import json

import numpy as np
import pytest
import torch

from cellnb.checkpoint import load_trained
from cellnb.cli import main
from cellnb.field import evaluate_dense
from cellnb.fit import TABLE_COLUMNS, fit_run, point_rule, read_codes
from cellnb.io import read_sdf_h5
from cellnb.latent import codes_around, fit_latent_model
from cellnb.reconstruct import fit_codes, reconstruct
from cellnb.sampling import SDFDataset
from cellnb.sdf import time_coords
from cellnb.train import train
from cellnb.workspace import RunDir

SIZE, FRAMES = 16, 4
TINY_MODEL = {"code_length": 8, "dims": [32, 32, 32], "latent_in": [2], "xyz_in_all": False,
              "coord_init_bound": None}
TINY_TRAIN = {"epochs": 300, "points_per_frame": 256, "frames_per_batch": 4, "checkpoint_every": 300,
              "lr_decoder": 3e-3, "lr_codes": 1e-2, "compile": False}
ITERATIONS = 300  # test-time steps: enough for these codes to converge (fits of the training data match their own)
DICE_MARGIN = 0.03  # issue 13: fitted codes within 0.03 of the training sequences' own Dice


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """``(run, data)``: a run trained on 3 dividing phantoms; ``data/heldout`` holds a fourth.

    Not aligned: on these 16^3 phantoms in canonical pose one of the three fits reaches Dice 0.79
    against its learned code's 0.95 in 300 steps (known, see issue 13's note).
    """
    root = tmp_path_factory.mktemp("fit")
    data, run = root / "data", root / "run"
    torch.set_num_threads(1)
    assert main(["prepare", "--source", "phantoms:dividing", "--n-sequences", "4", "--frames", str(FRAMES),
                 "--size", str(SIZE), "--no-align", "--out", str(data), "--quiet"]) == 0
    train(data, run, model_config=TINY_MODEL, train_config=TINY_TRAIN, device="cpu", progress=False)
    _, codes, _, _ = load_trained(run, device="cpu")
    fit_latent_model("gaussian", codes.numpy().astype(np.float64)).save(RunDir(run).latent_model)  # as if evaluated
    return run, data


def listing(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_batched_fit_gives_the_codes_of_fits_one_at_a_time(tiny_run):
    run, data = tiny_run
    decoder, _, _, info = load_trained(run, device="cpu")
    dataset = SDFDataset(data)
    sequences = [dataset.sequence(s) for s in range(3)]
    rule = point_rule(info["train_config"])
    together, recon = fit_codes(decoder, sequences, iterations=20, seed=4, batch_size=3, **rule)
    alone, _ = fit_codes(decoder, sequences, iterations=20, seed=4, batch_size=1, **rule)
    assert together.shape == (3, TINY_MODEL["code_length"]) and len(recon) == 3
    np.testing.assert_allclose(together.numpy(), alone.numpy(), atol=1e-4)
    assert not np.allclose(together[0].numpy(), together[1].numpy())  # each sequence its own code
    again, _ = fit_codes(decoder, sequences, iterations=20, seed=4, batch_size=3, **rule)
    np.testing.assert_array_equal(together.numpy(), again.numpy())  # seeded


def test_fitting_training_sequences_matches_their_learned_codes(tiny_run, tmp_path):
    run, data = tiny_run
    learned = reconstruct(run, progress=False)["dice"]
    summary = fit_run(run, data, out=tmp_path / "fit", iterations=ITERATIONS, progress=False)
    assert [r["name"] for r in summary["sequences"]] == list(learned)
    for row in summary["sequences"]:
        assert row["dice"] >= learned[row["name"]] - DICE_MARGIN, (row, learned)
        assert row["nearest"] == row["name"]  # the learned code of the same sequence
        assert row["nearest_distance"] < summary["train_nearest_median"]
        assert row["topology_match"] and row["components_true"][-1] == 2  # the division is kept
        assert np.isfinite(row["log_likelihood"])
    assert "latent.npz" in summary["latent_model"]["source"]


def test_fit_command_writes_codes_and_table_and_refuses_to_overwrite(tiny_run, tmp_path, capsys):
    run, data = tiny_run
    out = tmp_path / "heldout_fit"
    args = ["fit", "--run", str(run), "--data", str(data / "heldout"), "--out", str(out), "--iterations", "50",
            "--seed", "1", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    assert "fitted 1 codes" in capsys.readouterr().out
    names, codes = read_codes(out / "codes.npz")
    assert names == ["dividing_000"] and codes.shape == (1, TINY_MODEL["code_length"])
    with open(out / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == TABLE_COLUMNS and rows[0]["name"] == "dividing_000"
    assert len(rows[0]["components_true"].split()) == FRAMES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["point_rule"]["mode"] == "band" and summary["iterations"] == 50
    before = listing(out)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cellnb fit: error:") and "already exists" in err[0]
    assert listing(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def one_line_error(capsys, *needles):
    """The command's stderr is one error line holding every needle."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cellnb fit: error:"), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    return err[0]


@pytest.mark.parametrize("flag, value, needle", [("--size", "20", "--size 16"), ("--frames", "3", "--frames 4")])
def test_fit_refuses_data_on_another_grid_or_frame_count(tiny_run, tmp_path, capsys, flag, value, needle):
    run, _ = tiny_run
    other = {"--size": str(SIZE), "--frames": str(FRAMES), flag: value}
    assert main(["prepare", "--source", "phantoms:dividing", "--n-sequences", "1", "--frames", other["--frames"],
                 "--size", other["--size"], "--out", str(tmp_path / "other"), "--quiet"]) == 0
    capsys.readouterr()
    before = listing(run)
    assert main(["fit", "--run", str(run), "--data", str(tmp_path / "other"), "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
    one_line_error(capsys, needle, value)
    assert not (tmp_path / "o").exists() and listing(run) == before


def test_fit_refuses_a_run_without_a_latent_model(tiny_run, tmp_path, capsys):
    import shutil

    run, data = tiny_run
    copy = RunDir(tmp_path / "run")
    shutil.copytree(run, copy.root)
    copy.latent_model.unlink()
    assert main(["fit", "--run", str(copy.root), "--data", str(data / "heldout"), "--quiet"]) == 2
    one_line_error(capsys, "no latent model", "05_shape_descriptors", "cellnb run")
    assert not copy.fitted_set("heldout").root.exists()
    with pytest.raises(FileNotFoundError, match="latent.npz"):
        fit_run(copy, data / "heldout", progress=False)
    # before the evaluation (notebook 03) a named strategy is fitted now, and the summary says so
    summary = fit_run(copy, data / "heldout", iterations=5, latent="gaussian", progress=False)
    assert summary["latent_model"] == {"strategy": "gaussian", "source": "a gaussian model fitted now to the run's codes"}


def test_generate_from_fitted_codes(tiny_run, tmp_path, capsys):
    run, data = tiny_run
    fitted = tmp_path / "fitted"
    assert main(["fit", "--run", str(run), "--data", str(data / "heldout"), "--out", str(fitted),
                 "--iterations", "50", "--quiet"]) == 0
    _, code = read_codes(fitted / "codes.npz")
    decoder, learned, names, _ = load_trained(run, device="cpu")
    common = ["generate", "--run", str(run), "--from-codes", str(fitted / "codes.npz"), "--frames", str(FRAMES),
              "--size", str(SIZE), "--method", "dense", "--quiet"]
    assert main([*common, "--strategy", "interpolate", "--n", "3", "--towards", names[1],
                 "--out", str(tmp_path / "interp")]) == 0
    summary = json.loads((tmp_path / "interp" / "summary.json").read_text())
    assert [r["weight"] for r in summary["sequences"]] == [0.0, 0.5, 1.0]
    assert {r["from"] for r in summary["sequences"]} == {"dividing_000"}
    assert {r["towards"] for r in summary["sequences"]} == {names[1]}
    sdf, _ = read_sdf_h5(tmp_path / "interp" / "sdf" / "interpolate000.h5")
    direct = evaluate_dense(decoder, torch.from_numpy(code[0]), shape=SIZE, times=time_coords(FRAMES))
    np.testing.assert_allclose(sdf, direct, atol=1e-5)  # weight 0 is the fitted code itself
    generated = np.load(tmp_path / "interp" / "codes.npy")
    np.testing.assert_allclose(generated[-1], learned[1].numpy(), atol=1e-6)
    assert main([*common, "--strategy", "perturb", "--n", "2", "--seed", "3"]) == 0
    perturbed = np.load(run / "generated" / "perturb-from-fitted" / "codes.npy")
    sigma = json.loads((run / "generated" / "perturb-from-fitted" / "summary.json").read_text())[
        "latent_model"]["sigma"]
    assert perturbed.shape == (2, TINY_MODEL["code_length"])
    assert np.abs(perturbed - code).max() < 5 * sigma and not np.allclose(perturbed, code)
    # a set started from given codes is no sample of the latent model: realism and microscopy leave it out
    assert "perturb-from-fitted" in RunDir(run).generated_sets()
    assert "perturb-from-fitted" not in RunDir(run).sampled_sets()
    capsys.readouterr()
    assert main([*common, "--strategy", "gaussian", "--out", str(tmp_path / "bad")]) == 2
    assert "perturb or interpolate" in capsys.readouterr().err
    assert main([*common, "--strategy", "interpolate", "--towards", "nobody", "--out", str(tmp_path / "bad")]) == 2
    assert "nobody" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_codes_around_bad_input():
    learned = np.eye(3)
    with pytest.raises(ValueError, match="cannot start from given codes"):
        codes_around("kde", learned[:1], learned, 2)
    with pytest.raises(ValueError, match="entries"):
        codes_around("perturb", np.zeros((1, 2)), learned, 2)
    codes, weights, model = codes_around("interpolate", np.zeros((2, 3)) + [[0.9, 0, 0], [0, 0, 0.8]], learned, 2)
    np.testing.assert_allclose(codes[[1, 3]], learned[[0, 2]])  # each goes to its nearest learned code
    assert model is None and list(weights) == [0.0, 1.0, 0.0, 1.0]


def test_the_run_latent_model_is_used_on_the_code_entries(tiny_run, tmp_path):
    """A latent model with a size column (L + 1 entries) scores fitted codes by its marginal on the L code entries."""
    import shutil

    from scipy.stats import multivariate_normal

    run, data = tiny_run
    copy = RunDir(tmp_path / "run")
    shutil.copytree(run, copy.root)
    _, learned, _, _ = load_trained(run, device="cpu")
    length = TINY_MODEL["code_length"]
    with_size = np.column_stack([learned.numpy(), [0.1, -0.2, 0.3]])
    model = fit_latent_model("gaussian", with_size)
    model.save(copy.latent_model)
    summary = fit_run(copy, data / "heldout", out=tmp_path / "out", iterations=20, progress=False)
    _, code = read_codes(tmp_path / "out" / "codes.npz")
    truth = multivariate_normal(model.means[0, :length], model.covariances[0, :length, :length]).logpdf(code[0])
    assert summary["sequences"][0]["log_likelihood"] == pytest.approx(truth, rel=1e-6)
    assert str(copy.latent_model) in summary["latent_model"]["source"]
