"""cellnb.train: training, checkpoints, resume, multi-process, reconstruction, bad input.

Tiny data (two 16^3 sequences of 4 frames) and a tiny decoder keep each
training run to about a second.  Seeds are fixed where results are compared.
"""

import json
import logging
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO, ball, celegans_available, real_data_dir

from cellnb.checkpoint import load_trained
from cellnb.field import evaluate_dense
from cellnb.io import write_sdf_h5
from cellnb.model import DecoderConfig
from cellnb.profile import load_profile
from cellnb.reconstruct import reconstruct
from cellnb.sampling import SDFDataset
from cellnb.sdf import sequence_to_sdf, time_coords
from cellnb.train import TrainConfig, Trainer, learning_rates, train
from cellnb.workspace import RunDir

SIZE, FRAMES = 16, 4
TINY_MODEL = {"code_length": 8, "dims": [32, 32, 32], "latent_in": [2], "xyz_in_all": False,
              "coord_init_bound": None}  # SIREN 1/n: learns these 16^3 balls in fewer steps than 0.25
# compile off except where a test is about it: it costs seconds per run, these runs take one
TINY_TRAIN = {"epochs": 4, "points_per_frame": 256, "frames_per_batch": 4, "checkpoint_every": 2,
              "lr_schedule": "step", "lr_step_every": 3, "lr_codes_step_every": 3, "compile": False}


def write_data(folder, *, size=SIZE, frames=FRAMES):
    """A growing ball and a ball splitting into two, as SDF files."""
    c = (size - 1) / 2
    grow = np.stack([ball((size,) * 3, [c] * 3, 3 + 0.7 * t) for t in range(frames)])
    split = []
    for t in range(frames):
        d = 1.0 + 1.6 * t
        split.append(ball((size,) * 3, [c, c, c - d], 3.2) | ball((size,) * 3, [c, c, c + d], 3.2))
    for name, masks in [("grow", grow), ("split", np.stack(split))]:
        sdf, scale = sequence_to_sdf(masks, clamp=4.0)
        write_sdf_h5(folder / f"{name}.h5", sdf, record={"name": name, "scale": scale, "meta": {}})
    return folder


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path / "data")


def tiny(run, data, **train_over):
    return train(data, run, model_config=TINY_MODEL, train_config={**TINY_TRAIN, **train_over}, device="cpu",
                 progress=False)


def weights(run):
    decoder, codes, _, _ = load_trained(run, device="cpu")
    return torch.cat([p.detach().flatten() for p in decoder.parameters()] + [codes.flatten()])


def test_config_round_trip_profiles_and_quick_preset():
    cfg = TrainConfig(epochs=7, clamp=0.2)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"unknown train parameter\(s\) \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="train.epochs must be an integer, got 'five'"):
        TrainConfig.from_dict({"epochs": "five"})
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="frames_per_batch"):
        TrainConfig(frames_per_batch=0)
    assert load_profile("quick").train == TrainConfig()  # the defaults are the quick profile's
    assert load_profile("paper").train.lr_schedule == "step"


def test_learning_rate_schedules():
    step = TrainConfig(epochs=100, lr_schedule="step", lr_decoder=1.0, lr_codes=2.0, lr_step_every=10,
                       lr_step_factor=0.5, lr_codes_step_every=20, lr_codes_step_factor=0.1)
    assert learning_rates(step, 9) == (1.0, 2.0)
    assert learning_rates(step, 10) == (0.5, 2.0)
    assert learning_rates(step, 45) == pytest.approx((0.0625, 0.02))
    cos = TrainConfig(epochs=11, lr_schedule="cosine", lr_decoder=1.0, lr_codes=1.0, lr_final_factor=0.1)
    assert learning_rates(cos, 0) == (1.0, 1.0)
    assert learning_rates(cos, 5)[0] == pytest.approx(0.55)
    assert learning_rates(cos, 10)[0] == pytest.approx(0.1)
    warm = TrainConfig(lr_schedule="constant", lr_decoder=1.0, lr_warmup_epochs=3)
    assert [learning_rates(warm, e)[0] for e in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])


def test_training_writes_checkpoints_log_config_and_metrics(tmp_path, data):
    run = RunDir(tmp_path / "run")
    threads = torch.get_num_threads()
    summary = tiny(run, data, epochs=6, num_threads=1)
    assert torch.get_num_threads() == threads  # restored
    assert summary["epochs"] == 6 and summary["n_sequences"] == 2 and summary["points_per_second"] > 0
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["epoch00002.pt", "epoch00004.pt", "epoch00006.pt",
                                                                 "latest.pt"]
    rows = (run.root / "train_log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss,code_reg") and len(rows) == 7
    losses = [float(r.split(",")[1]) for r in rows[1:]]
    assert losses[-1] < losses[0]
    config = run.read_config()
    assert config["model"] == {**DecoderConfig.from_dict(TINY_MODEL).to_dict()}
    assert config["train"]["epochs"] == 6 and config["train"]["world_size"] == 1
    assert run.read_metrics()["train"]["n_parameters"] == summary["n_parameters"]
    decoder, codes, names, info = load_trained(run)
    assert names == ["grow", "split"] and codes.shape == (2, 8) and info["epoch"] == 6
    assert not decoder.training


def test_codes_start_with_the_deepsdf_spread(tmp_path, data):
    wide_codes = {**TINY_MODEL, "code_length": 4000, "latent_in": []}
    train(data, tmp_path / "run", model_config=wide_codes, device="cpu", progress=False,
          train_config={**TINY_TRAIN, "epochs": 1, "lr_codes": 1e-12, "code_reg": 0.0})
    _, codes, _, _ = load_trained(tmp_path / "run")
    assert codes.std().item() == pytest.approx(1 / np.sqrt(4000), rel=0.05)


def test_variational_codes_kl_matches_torch_distributions_and_training_resumes_bit_for_bit(tmp_path, data):
    from torch.distributions import Normal, kl_divergence

    from cellnb.model import Decoder
    from cellnb.train import AutoDecoder

    module = AutoDecoder(Decoder(DecoderConfig(**TINY_MODEL)), 3, init_std=0.2, variational=True)
    with torch.no_grad():
        module.log_var.weight.uniform_(-6, 0)
    seq = torch.tensor([0, 2])
    mu, sd = module.codes(seq), torch.exp(0.5 * module.log_var(seq))
    expected = kl_divergence(Normal(mu, sd), Normal(torch.zeros_like(mu), torch.full_like(mu, 0.2))).sum(dim=1)
    torch.testing.assert_close(module.kl(seq), expected)
    xyzt = torch.rand(2, 5, 4) * 2 - 1
    module.eval()
    assert torch.equal(module(seq, xyzt)[1], mu)  # evaluation decodes the means
    module.train()
    assert not torch.equal(module(seq, xyzt)[1], mu)  # training decodes draws
    full, killed = RunDir(tmp_path / "full"), RunDir(tmp_path / "killed")
    tiny(full, data, epochs=4, variational=True)
    ckpt = torch.load(full.latest_checkpoint, weights_only=True)
    assert ckpt["code_log_var"].shape == ckpt["codes"].shape
    assert (ckpt["code_log_var"] != ckpt["code_log_var"][0, 0]).any()  # learned, not left at the start
    killed.checkpoints.mkdir(parents=True)
    shutil.copy(full.epoch_checkpoint(2), killed.latest_checkpoint)
    train(data, killed, model_config=TINY_MODEL, train_config={**TINY_TRAIN, "epochs": 4, "variational": True},
          resume=True, device="cpu", progress=False)
    assert torch.equal(weights(full), weights(killed))
    point = RunDir(tmp_path / "point")
    tiny(point, data, epochs=2)
    with pytest.raises(ValueError, match="'variational': .False, True."):
        train(data, point, model_config=TINY_MODEL, train_config={**TINY_TRAIN, "epochs": 4, "variational": True},
              resume=True, device="cpu", progress=False)


@pytest.mark.parametrize("compile", [False, True])
def test_resume_after_a_kill_continues_bit_for_bit(tmp_path, data, compile):
    full = RunDir(tmp_path / "full")
    tiny(full, data, epochs=4, lr_schedule="cosine", compile=compile)
    # a run killed after epoch 2 has the epoch-2 checkpoint as latest.pt
    killed = RunDir(tmp_path / "killed")
    killed.checkpoints.mkdir(parents=True)
    shutil.copy(full.epoch_checkpoint(2), killed.latest_checkpoint)
    train(data, killed, model_config=TINY_MODEL,
          train_config={**TINY_TRAIN, "epochs": 4, "lr_schedule": "cosine", "compile": compile},
          resume=True, device="cpu", progress=False)
    assert torch.equal(weights(full), weights(killed))
    assert [r["loss"] for r in load_trained(killed)[3]["log"]] == [r["loss"] for r in load_trained(full)[3]["log"]]


def test_n_epochs_then_resume_n_more_equals_2n_epochs(tmp_path, data):
    straight = tmp_path / "straight"
    tiny(straight, data, epochs=4)
    split = tmp_path / "split"
    tiny(split, data, epochs=2)
    train(data, split, model_config=TINY_MODEL, train_config={**TINY_TRAIN, "epochs": 4}, resume=True,
          device="cpu", progress=False)
    assert torch.equal(weights(straight), weights(split))
    log = load_trained(split)[3]["log"]
    assert [row["epoch"] for row in log] == [1, 2, 3, 4]


def test_existing_checkpoints_are_never_overwritten_by_a_refused_or_failed_run(tmp_path, data):
    run = RunDir(tmp_path / "run")
    tiny(run, data)
    latest = run.latest_checkpoint.read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        tiny(run, data)
    with pytest.raises(ValueError, match="lr_decoder"):
        train(data, run, model_config=TINY_MODEL, train_config={**TINY_TRAIN, "lr_decoder": 1e-2}, resume=True,
              device="cpu", progress=False)
    with pytest.raises(ValueError, match="different model config"):
        train(data, run, model_config={**TINY_MODEL, "dims": [32, 32, 48]}, train_config=TINY_TRAIN, resume=True,
              device="cpu", progress=False)
    other = write_data(tmp_path / "other", frames=FRAMES + 1)
    with pytest.raises(ValueError, match="other data"):
        train(other, run, model_config=TINY_MODEL, train_config=TINY_TRAIN, resume=True, device="cpu",
              progress=False)
    nan_data = write_data(tmp_path / "nan")
    with h5py.File(nan_data / "split.h5", "r+") as f:
        values = f["sdf_vid"][...]
        values[0, 0, 0, 1] = np.nan
        f["sdf_vid"][...] = values
    with pytest.raises(ValueError, match="split.h5 frame 1 contains NaN"):
        train(nan_data, run, model_config=TINY_MODEL, train_config=TINY_TRAIN, overwrite=True, device="cpu",
              progress=False)
    assert run.latest_checkpoint.read_bytes() == latest


def test_bad_data_folders(tmp_path, data):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .h5"):
        tiny(tmp_path / "run", tmp_path / "empty")
    shutil.copy(write_data(tmp_path / "long", frames=FRAMES + 2) / "grow.h5", data / "long.h5")
    with pytest.raises(ValueError, match="different frame counts: grow.h5: 4, long.h5: 6"):
        tiny(tmp_path / "run", data)
    assert not (tmp_path / "run").exists()


def test_resume_without_checkpoint_and_unreadable_checkpoints(tmp_path, data):
    run = RunDir(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no trained model"):
        train(data, run, model_config=TINY_MODEL, train_config=TINY_TRAIN, resume=True, device="cpu")
    tiny(run, data)
    good = run.latest_checkpoint.read_bytes()
    run.latest_checkpoint.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_trained(run)
    with pytest.raises(ValueError, match="truncated"):
        train(data, run, model_config=TINY_MODEL, train_config={**TINY_TRAIN, "epochs": 6}, resume=True,
              device="cpu")
    assert run.latest_checkpoint.read_bytes() == good[: len(good) // 2]

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo this checkpoint runs code",))

    torch.save({"format": "cellnb.train/1", "decoder": RunsCode()}, run.latest_checkpoint)
    with pytest.raises(ValueError, match="weights_only"):
        load_trained(run)
    # a checkpoint whose weights do not fit its own model config
    run.latest_checkpoint.write_bytes(good)
    ckpt = torch.load(run.latest_checkpoint, weights_only=True)
    ckpt["model_config"]["dims"] = [32, 32, 40]
    torch.save(ckpt, run.latest_checkpoint)
    with pytest.raises(ValueError, match="do not match the saved model config"):
        load_trained(run)


def test_compiled_training_follows_eager_training(tmp_path, data, monkeypatch, caplog):
    tiny(tmp_path / "eager", data, epochs=3)
    monkeypatch.setattr("cellnb.train.COMPILE_SECONDS", -1.0)  # any saving pays: compile this short run
    with caplog.at_level(logging.INFO, logger="cellnb.train"):
        tiny(tmp_path / "compiled", data, epochs=3, compile=True)
    assert "compiling the training step" in caplog.text
    eager, compiled = (load_trained(tmp_path / name)[3]["log"] for name in ("eager", "compiled"))
    assert [r["loss"] for r in compiled] == pytest.approx([r["loss"] for r in eager], rel=1e-3)
    assert torch.allclose(weights(tmp_path / "compiled"), weights(tmp_path / "eager"), atol=2e-3)


def test_a_run_too_short_for_the_compile_to_pay_trains_eagerly(tmp_path, data, caplog):
    with caplog.at_level(logging.INFO, logger="cellnb.train"):
        tiny(tmp_path / "run", data, epochs=2, compile=True)
    assert "not compiling (the run is too short)" in caplog.text
    assert "compiling the training step" not in caplog.text


def test_compile_cache_is_kept_across_runs_unless_set(monkeypatch):
    from cellnb import train as train_module

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setattr(torch, "compile", lambda model: model)
    train_module._compiled(torch.nn.Linear(2, 2), torch.device("cpu"))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(train_module.COMPILE_CACHE)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    train_module._compiled(torch.nn.Linear(2, 2), torch.device("cpu"))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/elsewhere"


def test_compile_without_a_cpu_compiler_warns_and_trains_eagerly(tmp_path, data, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.warns(UserWarning, match="no-such-compiler.*train.compile to false"):
        summary = tiny(tmp_path / "run", data, epochs=1, compile=True)
    assert summary["epochs"] == 1


_MEASURE_STEP = """
import json, sys
import torch
from cellnb.model import PAPER
from cellnb.sampling import SDFDataset
from cellnb.train import TrainConfig, Trainer

def kib(field):  # from Linux's /proc/self/status: VmRSS (now) or VmHWM (peak since the last reset)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

tc = TrainConfig.from_dict(json.loads(sys.argv[2]))
trainer = Trainer(SDFDataset(sys.argv[1]), PAPER, tc)
torch.set_num_threads(1)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident set size to the current one
before = kib("VmRSS:")
trainer.run_epoch(0)
print(json.dumps({"measured": (kib("VmHWM:") - before) * 1024, "model": trainer.memory}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc (Linux)")
def test_memory_model_matches_the_measured_peak_of_a_training_step(data):
    # One step of 4 frames x 16384 points on the paper decoder keeps ~650 MB for its backward pass:
    # the growth of the peak resident memory of a fresh process over its first epoch must match the
    # model's activations within 15% (measured 4-9% above: allocator slack, MKL's and h5py's buffers).
    config = {**TINY_TRAIN, "epochs": 1, "points_per_frame": 16384, "frames_per_batch": 4, "num_threads": 1}
    done = subprocess.run([sys.executable, "-c", _MEASURE_STEP, str(data), json.dumps(config)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    model, measured = result["model"], result["measured"]
    assert model["step_points"] == 4 * 16384
    assert measured == pytest.approx(model["activations"], rel=0.15)
    assert model["total"] == model["points"] + model["data_cache"] + model["activations"] + model["parameters"]
    assert model["points"] == 2 * FRAMES * 16384 * 8 and model["data_cache"] == 2 * FRAMES * SIZE**3 * 4


def test_memory_model_at_paper_scale_splits_between_processes():
    from cellnb.model import PAPER
    from cellnb.train import training_memory

    paper = load_profile("paper").train
    one = training_memory(PAPER, paper, n_sequences=33, n_frames=30, shape=256)
    four = training_memory(PAPER, paper, n_sequences=33, n_frames=30, shape=256, world=4)
    # 990 frames x 32768 points x 8 bytes; the 66 GB of frames do not fit cache_mb: one frame at a time
    assert one["points"] == 990 * 32768 * 8 and one["data_cache"] == 256**3 * 4
    assert one["step_points"] == 16 * 32768 and four["step_points"] == 4 * 32768
    assert four["activations"] == pytest.approx(one["activations"] / 4)
    assert four["points"] == pytest.approx(one["points"] / 4, rel=1e-2)  # 248 of the 990 frames


def test_amp_on_cpu_is_ignored_with_a_warning(tmp_path, data, caplog):
    with caplog.at_level(logging.WARNING, logger="cellnb.train"):
        tiny(tmp_path / "run", data, epochs=1, amp="bf16")
    assert "needs CUDA" in caplog.text
    assert all(p.dtype == torch.float32 for p in load_trained(tmp_path / "run")[0].parameters())


def test_reconstruct_scores_match_a_second_route_and_other_sizes_are_not_scored(tmp_path, data):
    run = RunDir(tmp_path / "run")
    tiny(run, data, epochs=30, points_per_frame=512, lr_decoder=1e-3, lr_step_every=20)
    m = reconstruct(run, progress=False)
    decoder, codes, names, _ = load_trained(run)
    dice = []
    for s, name in enumerate(names):
        with h5py.File(data / f"{name}.h5") as f:
            true_mask = np.asarray(f["sdf_vid"]).transpose(3, 2, 1, 0) < 0
        rec = evaluate_dense(decoder, codes[s], shape=SIZE, times=time_coords(FRAMES)) < 0
        np.testing.assert_array_equal(m["masks"][name], rec)
        dice.append(2 * (rec & true_mask).sum() / (rec.sum() + true_mask.sum()))
    assert m["dice"] == pytest.approx(dict(zip(names, dice)))
    assert m["dice_mean"] == pytest.approx(np.mean(dice)) and m["dice_mean"] > 0.6
    assert 0 < m["iou_mean"] <= m["dice_mean"]
    assert m["components"]["split"][0] == [1, 1, 2, 2] and m["topology_sequences"] == 1
    assert m["components_match"] == sum(true == rec for true, rec in m["components"].values())
    assert run.read_metrics()["train"]["dice_mean"] == m["dice_mean"]
    trained = load_trained(run)[3]  # the fit's own numbers survive scoring
    assert m["final_loss"] == trained["log"][-1]["loss"] and m["epochs"] == 30
    assert m["points_per_second"] == pytest.approx(trained["stats"]["points"] / trained["stats"]["seconds"])
    bigger = reconstruct(run, size=20, frames=7, progress=False)
    assert bigger["masks"]["grow"].shape == (7, 20, 20, 20) and "dice_mean" not in bigger
    assert run.read_metrics()["train"]["dice_mean"] == m["dice_mean"]


def test_frames_per_batch_must_split_evenly_between_processes(data):
    config = TrainConfig.from_dict({**TINY_TRAIN, "frames_per_batch": 3})
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        Trainer(SDFDataset(data), DecoderConfig.from_dict(TINY_MODEL), config, world=2)


@pytest.mark.parametrize("compile", [False, True])
def test_two_processes_match_one(tmp_path, data, compile):
    overrides = {"model": TINY_MODEL, "train": {**TINY_TRAIN, "compile": compile}}
    one = RunDir(tmp_path / "one")
    profile = load_profile("quick", overrides)
    train(data, one, model_config=profile.model, train_config=profile.train, device="cpu", progress=False)
    two = RunDir(tmp_path / "two")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # "--" keeps torchrun from reading the CLI's --run as an abbreviation of its own --run-path
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cellnb", "--",
           "train", "--data", str(data), "--run", str(two.root), "--device", "cpu", "--quiet",
           "--set", json.dumps(overrides)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_trained(two)[3]["stats"]["world_size"] == 2
    torch.testing.assert_close(weights(two), weights(one), rtol=0, atol=1e-5)
    log_one, log_two = load_trained(one)[3]["log"], load_trained(two)[3]["log"]
    assert [r["loss"] for r in log_two] == pytest.approx([r["loss"] for r in log_one], rel=1e-5)


def test_training_figures(tmp_path, data):
    import matplotlib

    matplotlib.use("Agg")
    from cellnb.viz.training import plot_loss, plot_reconstruction

    run = RunDir(tmp_path / "run")
    tiny(run, data, epochs=2)
    fig = plot_loss(run.train_log)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [r["loss"] for r in load_trained(run)[3]["log"]],
                               rtol=1e-6)
    rng = np.random.default_rng(0)
    gt = {"a": rng.random((5, 6, 7, 8)) > 0.5, "b": rng.random((5, 6, 7, 8)) > 0.5}
    rec = {"b": ~gt["b"], "a": ~gt["a"]}
    fig = plot_reconstruction(gt, rec, frames=[1, 4], axis=1)
    assert len(fig.axes) == 2 * 2 * 2
    np.testing.assert_array_equal(fig.axes[4 * 1 + 3].images[0].get_array(), rec["b"][4].max(axis=1))
    with pytest.raises(ValueError, match="same"):
        plot_reconstruction(gt, [rec["a"]])


QUALITY = [("phantoms:dividing", 0.90), ("phantoms:filopodial", 0.90), ("celegans", 0.85)]


@pytest.mark.slow
@pytest.mark.parametrize("source,target", QUALITY, ids=[s for s, _ in QUALITY])
def test_quick_profile_reconstructs_its_training_sequences(tmp_path, source, target):
    """Issue 3 quality targets: mean Dice >= 0.90 (phantoms) / 0.85 (C. elegans) on the quick profile."""
    from cellnb.prepare import prepare

    profile = load_profile("quick")
    kwargs = {"n_sequences": 8}  # the fit is tested, not the split: a quarter of the profile's sequences
    if source == "celegans":
        if not celegans_available():
            pytest.skip("C. elegans data not available (set CELLNB_DATA_DIR)")
        kwargs.update(data_dir=real_data_dir(), frames=16)
    prepare(source, tmp_path / "data", profile.data, progress=False, **kwargs)
    run = RunDir(tmp_path / "run")
    summary = train(tmp_path / "data", run, model_config=profile.model, train_config=profile.train, device="cpu",
                    progress=False)
    m = reconstruct(run, progress=False)
    print(f"{source}: {summary['seconds']:.0f} s, Dice {m['dice_mean']:.3f}, "
          f"topology kept {m['topology_kept']}/{m['topology_sequences']}")
    assert m["dice_mean"] >= target  # training time is reported above, never asserted (machines are noisy)

