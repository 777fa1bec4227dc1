"""The generation pipeline: exports against analytic truth, seeds, sharding, bad input, atomicity.

Most tests replace the trained model by an analytic two-sphere "decoder"
(code = offset, radius), so every exported file can be checked against the
exact shape; one test trains a tiny real model with ``cellnb.train`` and
checks that two processes under torchrun write the same files as one.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest
import pyvista as pv
import tifffile
import torch
from scipy import ndimage
from scipy.spatial.transform import Rotation
from test_field import TwoSpheres, one_thread, two_spheres  # noqa: F401

import cellnb.export as export
import cellnb.generate as gen
from cellnb.generate import generate, sequence_name
from cellnb.latent import LatentModel, sample_codes
from cellnb.io import read_mask_stack, read_sdf_h5, write_sdf_h5
from cellnb.sdf import grid_axes, rotate_sdf, sequence_to_sdf, time_coords
from cellnb.workspace import RunDir

TRAIN_SIZE, TRAIN_FRAMES, TRAIN_SPACING = 24, 4, 0.5
LEARNED = torch.tensor([[0.5, 0.3], [0.6, 0.28], [0.4, 0.32]])  # (offset, radius) of each training sequence


def analytic_sdf(code, size, times):
    axes = np.meshgrid(*grid_axes(size), indexing="ij")
    return np.stack([two_spheres(np.stack([*axes, np.full_like(axes[0], t)], -1), *map(float, code)) for t in times])


@pytest.fixture
def run(tmp_path):
    """A run directory with an SDF data set of the learned shapes and a checkpoint placeholder."""
    root = RunDir(tmp_path / "run")
    for s, code in enumerate(LEARNED):
        sdf, scale = sequence_to_sdf(analytic_sdf(code, TRAIN_SIZE, time_coords(TRAIN_FRAMES)) < 0)
        record = {"name": f"s{s}", "source": "test", "spacing": [TRAIN_SPACING] * 3, "scale": scale, "clamp": 3.0,
                  "meta": {}}
        write_sdf_h5(root.data / f"s{s}.h5", sdf, record=record)
    root.checkpoints.mkdir(parents=True)
    root.latest_checkpoint.write_bytes(b"")
    return root


@pytest.fixture
def analytic(monkeypatch):
    """The analytic decoder stands in for the trained model of ``run``."""
    def load_trained(run, *, device=None):
        info = {"data": {"names": ["s0", "s1", "s2"], "n_frames": TRAIN_FRAMES, "shape": [TRAIN_SIZE] * 3}}
        return TwoSpheres().to(device), LEARNED.to(device), info["data"]["names"], info

    monkeypatch.setattr(gen, "load_trained", load_trained)


def listing(folder):
    """Every file and folder below ``folder`` but the run's lock file (not an output)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.name != ".lock")


def test_exports_match_the_analytic_shapes(run, analytic):
    size, frames = 40, 4
    summary = generate(run.root, n=2, strategy="perturb", scale=0.4, frames=frames, size=size, seed=3,
                       formats=("h5", "tiff", "mesh", "gif"), progress=False)
    out = run.generated / "perturb@0.4"  # a temperature other than 1 is part of the set name
    assert summary["out"] == str(out) and summary["n"] == 2
    codes = np.load(out / "codes.npy")
    nearest = np.abs(codes[:, None] - LEARNED.numpy()[None]).max(axis=2).min(axis=1)
    assert (nearest < 0.05).all()  # perturbed learned codes (noise sd 0.25 * 0.4 of the codes' spread)
    assert summary["latent_model"]["strategy"] == "perturb" and (out / "latent.npz").is_file()
    spacing = TRAIN_SPACING * (TRAIN_SIZE - 1) / (size - 1)  # the training box, sampled more finely
    assert summary["record"]["spacing"] == pytest.approx([spacing] * 3)
    times = time_coords(frames)
    for k in range(2):
        name = sequence_name("perturb", k)
        truth = analytic_sdf(codes[k], size, times) < 0
        sdf, record = read_sdf_h5(out / "sdf" / f"{name}.h5")
        assert sdf.shape == (frames, size, size, size)
        np.testing.assert_array_equal(sdf < 0, truth)
        assert record["source"] == "generated:perturb" and record["name"] == name
        assert record["spacing"] == pytest.approx([spacing] * 3) and record["meta"]["index"] == k
        labels = read_mask_stack(out / "masks" / name)
        np.testing.assert_array_equal(labels > 0, truth)
        counts = [ndimage.label(m, structure=np.ones((3, 3, 3)))[1] for m in truth]
        assert [int(f.max()) for f in labels] == counts == summary["sequences"][k]["components"]
        assert counts[0] == 1 and counts[-1] == 2  # the analytic cell divides
        last = pv.read(out / "meshes" / name / f"frame{frames - 1:03d}.ply")
        radius = codes[k][1] * (TRAIN_SIZE - 1) * TRAIN_SPACING / 2  # network units -> physical
        assert last.volume == pytest.approx(2 * 4 / 3 * np.pi * radius**3, rel=0.05)
        assert (out / "gif" / f"{name}.gif").stat().st_size > 0
        assert len(listing(out / "meshes" / name)) == frames
    saved = json.loads((out / "summary.json").read_text())
    assert [s["n_evaluations"] > 0 for s in saved["sequences"]] == [True, True]
    assert run.read_metrics()["generate"]["perturb@0.4"]["n"] == 2


def test_any_frames_and_size_and_the_dense_route_agree(run, analytic):
    narrow = generate(run.root, n=1, strategy="gaussian", frames=7, size=33, seed=0, out=run.root / "narrow",
                      progress=False)
    dense = generate(run.root, n=1, strategy="gaussian", frames=7, size=33, seed=0, out=run.root / "dense",
                     method="dense", progress=False)
    a, _ = read_sdf_h5(run.root / "narrow" / "sdf" / "gaussian000.h5")
    b, _ = read_sdf_h5(run.root / "dense" / "sdf" / "gaussian000.h5")
    assert a.shape == (7, 33, 33, 33)
    np.testing.assert_array_equal(a < 0, b < 0)
    assert dense["sequences"][0]["n_evaluations"] == 7 * 33**3 > narrow["sequences"][0]["n_evaluations"]


def test_same_seed_same_sequences(run, analytic):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        generate(run.root, n=3, strategy="random", frames=2, size=12, seed=seed, out=run.root / name,
                 progress=False)
    a, b, c = (np.load(run.root / n / "codes.npy") for n in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with h5py.File(run.root / "a" / "sdf" / "random002.h5") as fa, h5py.File(run.root / "b" / "sdf" / "random002.h5") as fb:
        np.testing.assert_array_equal(fa["sdf_vid"][...], fb["sdf_vid"][...])


def test_frames_without_a_cell_get_no_mesh(run, analytic):
    # Codes ~ N(0, 0.001^2) (the codes' spread 0.1 at temperature 0.01): spheres of almost zero radius.
    summary = generate(run.root, n=1, strategy="random", scale=0.01, frames=2, size=12, formats=("mesh", "gif"),
                       progress=False)
    out = run.generated / "random@0.01"
    assert summary["sequences"][0]["empty_frames"] == [0, 1] and summary["sequences"][0]["components"] == [0, 0]
    assert not (out / "meshes").exists() and (out / "gif" / "random000.gif").is_file()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"size": 4}, ValueError, "at least 8"),
        ({"size": 8192}, ValueError, r"needs about [\d.]+ GiB"),
        ({"frames": 0}, ValueError, "frames must be at least 1"),
        ({"scale": 0.0}, ValueError, "temperature"),
        ({"scale": -1.0, "strategy": "perturb"}, ValueError, "temperature"),
        ({"strategy": "sideways"}, ValueError, "unknown strategy"),
        ({"formats": ("h5", "obj")}, ValueError, "unknown format"),
        ({"method": "sparse"}, ValueError, "unknown method"),
        ({"n": 0}, ValueError, "n must be"),
        ({"orientation": "upside-down"}, ValueError, "unknown orientation"),
        ({"orientation": "training"}, ValueError, "aligned to a canonical pose"),
        ({"redraws": -1}, ValueError, "redraws must be"),
        ({"strategy": "perturb", "from_codes": "codes.npz", "plausible": True}, ValueError, "leave plausible off"),
    ],
)
def test_bad_input_fails_before_writing_anything(run, analytic, kwargs, error, match):
    before = listing(run.root)
    with pytest.raises(error, match=match):
        generate(run.root, **{"n": 1, "frames": 2, "size": 12, "strategy": "random", **kwargs}, progress=False)
    assert listing(run.root) == before


def test_new_cells_turned_to_a_drawn_pose_are_the_canonical_ones_rotated(run, analytic, tmp_path):
    turns = [Rotation.from_euler("z", a, degrees=True).as_matrix().tolist() for a in (30, 60, 90)]
    for k, path in enumerate(sorted(run.data.glob("*.h5"))):  # cells aligned at preparation record their pose
        sdf, record = read_sdf_h5(path)
        write_sdf_h5(path, sdf, record={**record, "meta": {"rotation": turns[k]}}, overwrite=True)
    common = dict(n=3, frames=2, size=20, strategy="random", seed=4, progress=False)
    plain = generate(run.root, out=tmp_path / "plain", **common)
    for orientation, allowed in (("training", turns), ("uniform", None)):
        turned = generate(run.root, out=tmp_path / orientation, orientation=orientation, **common)
        assert turned["orientation"] == orientation
        for row in plain["sequences"]:
            canonical, _ = read_sdf_h5(tmp_path / "plain" / "sdf" / f"{row['name']}.h5")
            sdf, record = read_sdf_h5(tmp_path / orientation / "sdf" / f"{row['name']}.h5")
            rotation = np.asarray(record["meta"]["rotation"])
            np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)
            if allowed is not None:
                assert rotation.tolist() in allowed
            np.testing.assert_allclose(sdf, rotate_sdf(canonical, rotation), atol=1e-6)
    again = generate(run.root, out=tmp_path / "again", orientation="uniform", **common)
    first = json.loads((tmp_path / "uniform" / "summary.json").read_text())
    assert [r["components"] for r in again["sequences"]] == [r["components"] for r in first["sequences"]]
    a, _ = read_sdf_h5(tmp_path / "again" / "sdf" / f"{plain['sequences'][0]['name']}.h5")
    b, _ = read_sdf_h5(tmp_path / "uniform" / "sdf" / f"{plain['sequences'][0]['name']}.h5")
    np.testing.assert_array_equal(a, b)  # same seed, same poses


def _dividing(run):
    """Record the training cells of ``run`` as a dividing family (the analytic spheres separate)."""
    for path in sorted(run.data.glob("*.h5")):
        sdf, record = read_sdf_h5(path)
        write_sdf_h5(path, sdf, record={**record, "meta": {"family": "dividing"}}, overwrite=True)


def _divides(code, size, times) -> bool:
    """One component, then two, never back: counted on the analytic shape with scipy's labelling."""
    counts = [ndimage.label(m, structure=np.ones((3, 3, 3)))[1] for m in analytic_sdf(code, size, times) < 0]
    return counts[0] == 1 and counts[-1] == 2 and all(b >= a and b in (1, 2) for a, b in zip(counts, counts[1:]))


def test_plausible_keeps_the_first_drawn_codes_whose_cells_divide(run, analytic, tmp_path):
    _dividing(run)
    n, redraws, size, frames, seed = 3, 5, 16, 3, 1
    common = dict(n=n, strategy="gaussian", scale=3.0, frames=frames, size=size, seed=seed, progress=False)
    summary = generate(run.root, plausible=True, redraws=redraws, **common)
    assert summary["out"] == str(run.generated / "gaussian@3+plausible") and summary["plausible"] is True
    drawn, _ = sample_codes("gaussian", LEARNED.numpy().astype(np.float64), n * (1 + redraws), scale=3.0, rng=seed)
    truth = [_divides(c.astype(np.float32), size, time_coords(frames)) for c in drawn]
    kept = [i for i, ok in enumerate(truth) if ok][:n]
    assert len(kept) == n and not all(truth[: kept[-1] + 1])  # some drawn cells were given up
    assert [r["draw"] for r in summary["sequences"]] == kept
    np.testing.assert_allclose(np.load(run.generated / "gaussian@3+plausible" / "codes.npy"), drawn[kept], rtol=1e-6)
    assert summary["topology_plausible"] == 1.0
    screen = summary["screen"]
    assert screen["drawn"] >= kept[-1] + 1 and screen["filled"] == 0
    assert screen["acceptance"] == pytest.approx(np.mean(truth[: screen["drawn"]]))
    plain = generate(run.root, **common)
    assert plain["screen"] is None and plain["out"] == str(run.generated / "gaussian@3")
    assert run.read_metrics()["generate"]["gaussian@3+plausible"]["drawn_plausible"] == screen["acceptance"]
    # Recommended by an evaluation, the set's latent model brings its redrawing along.
    shutil.copyfile(run.generated / "gaussian@3+plausible" / "latent.npz", run.latent_model)
    again = generate(run.root, n=n, frames=frames, size=size, seed=seed, redraws=redraws, out=tmp_path / "again",
                     progress=False)
    redrawn = LatentModel.load(run.latent_model).sample(n * (1 + redraws), rng=seed)
    truth = [_divides(c, size, time_coords(frames)) for c in redrawn]
    assert again["plausible"] is True
    assert [r["draw"] for r in again["sequences"]] == [i for i, ok in enumerate(truth) if ok][:n]
    assert again["scale"] == 3.0  # bug: a recommended set at another temperature was drawn at temperature 1
    off = generate(run.root, n=n, frames=frames, size=size, seed=seed, plausible=False, out=tmp_path / "off",
                   progress=False)
    assert off["plausible"] is False and off["screen"] is None


def test_too_few_plausible_cells_fill_the_set_and_say_so(run, analytic, caplog):
    _dividing(run)
    # Codes ~ N(0, 0.001^2): spheres of almost zero radius, no cell in any frame, nothing plausible.
    summary = generate(run.root, n=2, strategy="random", scale=0.01, frames=2, size=12, plausible=True, redraws=1,
                       progress=False)
    assert summary["n"] == 2 and summary["topology_plausible"] == 0.0
    assert summary["screen"] == {"drawn": 4, "plausible": 0, "acceptance": 0.0, "filled": 2, "frames_decoded": 4,
                                 "redraws": 1}
    assert [r["draw"] for r in summary["sequences"]] == [0, 1]
    assert "raise redraws" in caplog.text


def test_set_specs():
    assert gen.parse_set("kde@0.5+plausible") == {"strategy": "kde", "scale": 0.5, "plausible": True}
    assert gen.parse_set("gmm") == {"strategy": "gmm", "scale": 1.0, "plausible": False}
    assert gen.set_name(**gen.parse_set("kde@0.5+plausible")) == "kde@0.5+plausible"
    with pytest.raises(ValueError, match=r"\+plausible"):
        gen.parse_set("kde+sure")


def test_missing_checkpoint_and_existing_output(run, analytic, tmp_path):
    with pytest.raises(FileNotFoundError, match="cellnb train"):
        generate(tmp_path / "untrained", n=1, frames=2, size=12, progress=False)
    assert not (tmp_path / "untrained").exists()
    out = run.root / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(run.root, n=1, frames=2, size=12, out=out, progress=False)
    assert listing(out) == ["keep.txt"]
    generate(run.root, n=1, frames=2, size=12, out=out, overwrite=True, progress=False)
    assert "keep.txt" not in listing(out) and "sdf/gaussian000.h5" in listing(out)
    assert [p.name for p in run.root.iterdir() if p.name.startswith(".")] == [".lock"]


def test_a_failure_midway_leaves_nothing_behind(run, analytic, monkeypatch):
    calls = []

    def failing(folder, labels, **kwargs):
        calls.append(folder)
        if len(calls) == 2:
            raise OSError("disk full")
        return write_ctc(folder, labels, **kwargs)

    write_ctc = export.write_ctc_masks
    monkeypatch.setattr(export, "write_ctc_masks", failing)
    before = listing(run.root)
    with pytest.raises(OSError, match="disk full"):
        generate(run.root, n=3, frames=2, size=12, formats=("h5", "tiff"), progress=False)
    assert len(calls) == 2
    assert listing(run.root) == before


def test_two_processes_write_what_one_writes(tmp_path):
    """End to end with a real (tiny, briefly trained) model; torchrun shards the sequences."""
    from cellnb.train import train

    run = RunDir(tmp_path / "run")
    for s, code in enumerate(LEARNED):
        sdf, scale = sequence_to_sdf(analytic_sdf(code, 16, time_coords(3)) < 0)
        write_sdf_h5(run.data / f"s{s}.h5", sdf, record={"name": f"s{s}", "spacing": [1.0] * 3, "scale": scale})
    train(run.data, run, model_config={"code_length": 4, "dims": [16, 16], "latent_in": []},
          train_config={"epochs": 2, "points_per_frame": 256, "frames_per_batch": 3, "checkpoint_every": 2},
          device="cpu", progress=False)
    args = [sys.executable, "-m", "cellnb", "generate", "--run", str(run.root), "--n", "3", "--frames", "2",
            "--size", "12", "--seed", "5", "--quiet", "--out"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([*args, str(tmp_path / "one")], capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    # What torchrun --nproc_per_node=2 sets up (its own parser mistakes our --run for its --run-path).
    for extra, one_out, two_out in (([], "one", "two"), (["--plausible", "--redraws", "2"], "one-p", "two-p")):
        if extra:  # redrawing implausible cells: the kept codes do not depend on the processes either
            one = subprocess.run([*args, str(tmp_path / one_out), *extra], capture_output=True, text=True, env=env,
                                 timeout=300)
            assert one.returncode == 0, one.stderr
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        group = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs = [subprocess.Popen([*args, str(tmp_path / two_out), *extra],
                                  env={**env, **group, "RANK": str(r), "LOCAL_RANK": str(r)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        assert listing(tmp_path / one_out) == listing(tmp_path / two_out)
        for k in range(3):
            a, _ = read_sdf_h5(tmp_path / one_out / "sdf" / f"gaussian{k:03d}.h5")
            b, _ = read_sdf_h5(tmp_path / two_out / "sdf" / f"gaussian{k:03d}.h5")
            np.testing.assert_allclose(a, b, atol=1e-6)
        summary = json.loads((tmp_path / two_out / "summary.json").read_text())
        assert summary["world_size"] == 2 and [s["index"] for s in summary["sequences"]] == [0, 1, 2]
        alone = json.loads((tmp_path / one_out / "summary.json").read_text())
        assert [s.get("draw") for s in summary["sequences"]] == [s.get("draw") for s in alone["sequences"]]
        assert summary["screen"] == alone["screen"] and (summary["screen"] is not None) == bool(extra)


def test_synthesis_figures():
    import matplotlib.pyplot as plt

    from cellnb.field import evaluate_codes
    from cellnb.latent import interpolate_codes
    from cellnb.mesh import volume_curve
    from cellnb.viz import synthesis

    decoder, codes = TwoSpheres(), torch.tensor([[0.6, 0.3], [0.4, 0.32]])
    sdf = evaluate_codes(decoder, codes, shape=16, times=time_coords(5))
    empty = np.ones((16, 16, 16), np.float32)
    image = synthesis.render_sdf_grid(np.stack([sdf[0, :2], [sdf[0, 0], empty]]), window_size=(64, 48))
    assert image.shape == (2 * 48 + 4, 2 * 64 + 4, 3)
    assert (image[:48, :64] < 250).any() and (image[52:, 68:] >= 250).all()  # a cell; the empty frame is blank
    figures = [
        synthesis.plot_sequence_grid(list(sdf), columns=3, names=["a", "b"], window_size=(64, 64)),
        synthesis.plot_interpolation_strip(evaluate_codes(decoder, interpolate_codes(codes[0], codes[1], 3), shape=16,
                                                          times=[0.0]), window_size=(64, 64)),
        synthesis.plot_volume_curves({n: (time_coords(n), volume_curve(evaluate_codes(decoder, codes[:1], shape=16,
                                                                                      times=time_coords(n))[0]))
                                      for n in (3, 9)}),
        synthesis.plot_super_resolution(sdf[0, 2], evaluate_codes(decoder, codes[:1], shape=31, times=[0.0])[0, 0],
                                        window_size=(64, 64)),
    ]
    assert [len(f.axes) for f in figures] == [1, 1, 1, 4]
    assert figures[0].axes[0].get_xticklabels()[0].get_text() == "t = -1.00"
    for f in figures:
        plt.close(f)
    with pytest.raises(ValueError, match="rows, cols"):
        synthesis.render_sdf_grid(sdf[0])


def _own_ctc_reader(gt):
    """Label frames and lineage of a CTC ground-truth folder, read with tifffile and plain text parsing."""
    files = sorted((gt / "TRA").glob("man_track*.tif"), key=lambda p: int(p.stem[len("man_track"):]))
    labels = np.stack([tifffile.imread(f) for f in files])
    lines = [list(map(int, line.split())) for line in (gt / "TRA" / "man_track.txt").read_text().splitlines() if line]
    return labels, lines


def test_ctc_export_lineage_agrees_with_its_label_frames(run, analytic):
    """Frame by frame: a label is present exactly from B to E; a dividing mother ends before her daughters."""
    summary = generate(run.root, n=4, strategy="perturb", scale=0.4, frames=4, size=24, seed=1, formats=("ctc",),
                       cells_per_field=2, progress=False)
    out = run.generated / "perturb@0.4"
    assert [f["field"] for f in summary["ctc"]] == ["field000", "field001"]
    for field in ("field000", "field001"):
        labels, lines = _own_ctc_reader(out / "ctc" / field / "01_GT")
        assert not (out / "ctc" / field / "01").exists()  # ground truth only: microscopy renders the images
        seg = np.stack([tifffile.imread(f) for f in sorted((out / "ctc" / field / "01_GT" / "SEG").glob("*.tif"))])
        np.testing.assert_array_equal(seg, labels)
        for label, begin, end, parent in lines:
            present = [t for t in range(len(labels)) if (labels[t] == label).any()]
            assert present == list(range(begin, end + 1)), (field, label)
            if parent:
                mother = next(row for row in lines if row[0] == parent)
                assert mother[2] == begin - 1  # the mother ends the frame before her daughter begins
                assert sum(row[3] == parent for row in lines) == 2  # two daughters
        assert sum(1 for row in lines if row[3] == 0) == 2  # two cells per field, each a root
        assert {int(v) for v in np.unique(labels)} - {0} == {row[0] for row in lines}


def test_ctc_export_leaves_out_empty_sequences_and_says_so(tmp_path):
    """Bug: one empty generated sequence (an undertrained model) made the whole CTC export fail."""
    from cellnb.workspace import GeneratedDir

    folder = GeneratedDir(tmp_path / "set")
    folder.sdf.mkdir(parents=True)
    ball = np.linalg.norm(np.stack(np.meshgrid(*[np.arange(16) - 7.5] * 3, indexing="ij")), axis=0) - 4.0
    sequences = {"cell000": np.stack([ball] * 3), "cell001": np.full((3, 16, 16, 16), 1.0), "cell002": np.stack([ball] * 3)}
    for name, sdf in sequences.items():
        write_sdf_h5(folder.sdf_path(name), (sdf / np.abs(sdf).max()).astype(np.float32), record={"spacing": [0.5] * 3})
    with pytest.warns(UserWarning, match=r"1 generated sequence\(s\) are empty .*: cell001"):
        fields = export.export_ctc(folder, list(sequences), cells_per_field=2)
    assert [f["sequences"] for f in fields] == [["cell000", "cell002"]]
    labels, lines = _own_ctc_reader(folder.ctc_field(0) / "01_GT")
    assert len(lines) == 2 and labels.shape[0] == 3
    with pytest.raises(ValueError, match="every generated sequence is empty"):
        export.export_ctc(folder, ["cell001"])
