"""Real-data readers: TIFF time-lapses and C. elegans division sequences.

The C. elegans tests need the shared data folder (``$CELLNB_DATA_DIR`` or
``../shared/data/real`` next to the repository) and are skipped without it.
"""

import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
import scipy.io
import tifffile
from scipy import ndimage

from cellnb import datasets
from cellnb.sdf import dice
from conftest import ball, celegans_available, real_data_dir

FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity
DATA_ROOT = real_data_dir()
CELEGANS = DATA_ROOT / "celegans-3dmms"
needs_data = pytest.mark.skipif(not celegans_available(), reason=f"no C. elegans data in {CELEGANS}")


def n_components(frame):
    return ndimage.label(frame, FULL)[1]


@pytest.fixture
def labels():
    """Two labelled boxes over 3 frames, shape (3, 6, 7, 8)."""
    lab = np.zeros((3, 6, 7, 8), dtype=np.uint16)
    lab[:, 1:3, 1:3, 1:4] = 1
    lab[:, 3:5, 4:6, 4:7] = 5
    lab[2, 1, 1, 1] = 0
    return lab


def test_tiff_folder_round_trip(tmp_path, labels):
    folder = tmp_path / "movie"
    folder.mkdir()
    for t, frame in enumerate(labels):
        tifffile.imwrite(folder / f"mask{t:03d}.tif", frame)
    with pytest.raises(ValueError, match=r"holds 2 labels \(1, 5\), i.e. several cells; pick one cell with label=N"):
        datasets.read_tiff_sequence(folder)  # never merged into one cell silently
    one = datasets.read_tiff_sequence(folder, label=5, name="cell5", spacing=(2.0, 0.5, 0.5))
    assert np.array_equal(one.masks, labels == 5) and one.name == "cell5" and one.meta["label"] == 5
    assert one.spacing == (2.0, 0.5, 0.5)
    only = tmp_path / "only"
    only.mkdir()
    for t, frame in enumerate(labels):
        tifffile.imwrite(only / f"mask{t:03d}.tif", (frame == 1).astype(np.uint8))
    seq = datasets.read_tiff_sequence(only)
    assert np.array_equal(seq.masks, labels == 1) and seq.name == "only"


def test_frames_are_read_in_numeric_order_not_string_order(tmp_path):
    """mask0 ... mask11: string order would put mask10 and mask11 before mask2."""
    folder = tmp_path / "movie"
    folder.mkdir()
    for t in range(12):
        frame = np.zeros((4, 5, 6), np.uint8)
        frame[1:3, 1:3, 1 : 2 + t % 5] = 1
        frame[0, 0, 0] = t  # the frame number, read back below
        tifffile.imwrite(folder / f"mask{t}.tif", frame, photometric="minisblack")
    from cellnb.io import read_mask_stack

    stack = read_mask_stack(folder)
    assert stack[:, 0, 0, 0].tolist() == list(range(12))
    (folder / "notes.tif").write_bytes((folder / "mask0.tif").read_bytes())
    with pytest.raises(ValueError, match="notes.tif has no frame number"):
        read_mask_stack(folder)


def test_colour_volumes_are_refused(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((20, 20, 20, 3), np.uint8), photometric="rgb")
    with pytest.raises(ValueError, match=r"colour \(RGB\) image"):
        datasets.read_tiff_sequence(path)


def test_multiframe_tiff_round_trip(tmp_path, labels):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, labels)
    seq = datasets.read_tiff_sequence(path, label=1)
    assert np.array_equal(seq.masks, labels == 1)
    assert seq.name == "stack" and seq.masks.shape == (3, 6, 7, 8)


def test_absent_label_lists_labels_present(tmp_path, labels):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, labels)
    with pytest.raises(ValueError, match=r"label 3 does not occur.*labels present: 1, 5"):
        datasets.read_tiff_sequence(path, label=3)
    with pytest.raises(ValueError, match="label must be an integer"):
        datasets.read_tiff_sequence(path, label=1.5)


def test_label_missing_in_a_frame_or_filling_it(tmp_path, labels):
    labels[1][labels[1] == 5] = 0
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, labels)
    with pytest.raises(ValueError, match=r"empty in frame\(s\) \[1\]"):
        datasets.read_tiff_sequence(path, label=5)
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, np.ones((2, 4, 4, 4), dtype=np.uint8), photometric="minisblack")
    with pytest.raises(ValueError, match="fills the whole volume"):
        datasets.read_tiff_sequence(full)


def test_lineage_naming():
    assert datasets.celegans_mother("ABala") == "ABal"
    assert datasets.celegans_mother("Eal") == "Ea"
    assert datasets.celegans_mother("MS") == "EMS" and datasets.celegans_mother("E") == "EMS"
    assert datasets.celegans_mother("C") == "P2" and datasets.celegans_mother("P3") == "P2"
    assert datasets.celegans_mother("D") == "P3" and datasets.celegans_mother("Z3") == "P4"
    assert datasets.celegans_mother("ABp") == "AB" and datasets.celegans_mother("P0") is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"frames": 1}, "frames"),
        ({"size": 4}, "size"),
        ({"frames": 6, "before": 6}, "before"),
        ({"before": 0}, "before"),
        ({"max_sequences": 0}, "max_sequences"),
    ],
)
def test_division_arguments_checked_before_reading(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        datasets.celegans_divisions(tmp_path, **kwargs)


def test_missing_folder_and_failed_download(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="holds no C. elegans data"):
        datasets.celegans_dir(tmp_path)
    monkeypatch.setenv("CELLNB_DATA_DIR", str(tmp_path))  # no celegans-3dmms inside
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "CELEGANS_BASE_URL", "http://127.0.0.1:9/")  # discard port: refused
    with pytest.raises(FileNotFoundError, match="set CELLNB_DATA_DIR"):
        datasets.celegans_dir(progress=False)


@needs_data
def test_registry_matches_the_data_checksums():
    listed = {}
    for line in (CELEGANS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        listed[name.removeprefix("./")] = digest
    listed.pop("labels.csv")  # derived locally, not downloadable
    assert datasets.CELEGANS_REGISTRY == listed
    for name in ("membSeg/T001_membSeg.mat", "membSeg/T095_membSeg.mat", "nucInformation.mat"):
        assert hashlib.sha256((CELEGANS / name).read_bytes()).hexdigest() == listed[name]


@needs_data
def test_download_from_source_layout_and_derived_label_table(tmp_path, monkeypatch):
    # Serve the files under their paths in the source repository (data README) over local HTTP.
    site = tmp_path / "site"
    seg = site / "results/resultWithMerge/merged_membrane/170704plc1p2"
    nuc = site / "getNucFromacetree/transformed/170704plc1p2"
    seg.mkdir(parents=True)
    nuc.mkdir(parents=True)
    for f in (CELEGANS / "membSeg").glob("T*_membSeg.mat"):
        (seg / f.name).symlink_to(f)
    (nuc / "nucInformation.mat").symlink_to(CELEGANS / "nucInformation.mat")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.delenv("CELLNB_DATA_DIR", raising=False)
        monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "cache"))
        monkeypatch.setattr(datasets, "CELEGANS_BASE_URL", f"http://127.0.0.1:{server.server_port}/")
        folder = datasets.celegans_dir(progress=False)
    finally:
        server.shutdown()
        thread.join()
    assert folder == tmp_path / "cache" / "celegans-3dmms"
    assert len(list((folder / "membSeg").glob("T*_membSeg.mat"))) == 95
    assert not (folder / "labels.csv").exists()
    # Without labels.csv the table is derived from the volumes: it must equal the shipped labels.csv.
    derived = datasets.celegans_label_table(folder, progress=False)
    assert derived == datasets.celegans_label_table(CELEGANS)


@needs_data
def test_division_sequences_fast():
    seqs, _ = datasets.celegans_divisions(DATA_ROOT, frames=6, size=24, max_sequences=2, progress=False)
    assert len(seqs) == 2
    table = datasets.celegans_label_table(DATA_ROOT)
    for seq in seqs:
        meta = seq.meta
        assert seq.masks.shape == (6, 24, 24, 24) and seq.name == f"celegans_{meta['mother']}"
        assert meta["family"] == "dividing" and meta["source"] == "celegans-3dmms"
        assert meta["division_frame"] == 3 and len(meta["source_frames"]) == 6
        assert np.array_equal(np.diff(meta["source_frames"]), np.ones(5))
        # The division may be re-timed later than the lineage says (never earlier), and then the
        # raw volume shows why: one daughter label holds the mother, the other almost nothing.
        assert meta["source_frames"][2] == table[meta["mother"]]["last_frame"] + meta["retimed"]
        for t in meta["source_frames"][3 - meta["retimed"] : 3] if meta["retimed"] else []:
            raw = scipy.io.loadmat(CELEGANS / f"membSeg/T{t:03d}_membSeg.mat")["membSeg"]
            small, large = sorted((raw == table[d]["label"]).sum() for d in meta["daughters"])
            assert small < 0.01 * large
        assert [n_components(m) for m in seq.masks] == [1, 1, 1, 2, 2, 2]
        m = seq.masks
        assert not (m[:, [0, -1]].any() or m[:, :, [0, -1]].any() or m[:, :, :, [0, -1]].any())
        # Physical scale and axis order against the raw .mat volume (axes y, x, z, voxel 0.225 um).
        t = meta["source_frames"][-1]
        raw = scipy.io.loadmat(CELEGANS / f"membSeg/T{t:03d}_membSeg.mat")["membSeg"]
        raw_a, raw_b = (np.array(ndimage.center_of_mass(raw == table[d]["label"])) for d in meta["daughters"])
        raw_axis = (raw_b - raw_a)[[2, 0, 1]] * datasets.CELEGANS_VOXEL_UM  # -> (z, y, x) in um
        comp, _ = ndimage.label(seq.masks[-1], FULL)
        ours_a, ours_b = (np.array(ndimage.center_of_mass(comp == i)) for i in (1, 2))
        ours_axis = (ours_b - ours_a) * np.array(seq.spacing)
        cosine = abs(raw_axis @ ours_axis) / np.linalg.norm(raw_axis) / np.linalg.norm(ours_axis)
        assert cosine > 0.97
        np.testing.assert_allclose(np.linalg.norm(ours_axis), np.linalg.norm(raw_axis), rtol=0.15)
        raw_volume = sum((raw == table[d]["label"]).sum() for d in meta["daughters"]) * 0.225**3
        np.testing.assert_allclose(m[-1].sum() * np.prod(seq.spacing), raw_volume, rtol=0.15)


@needs_data
def test_division_window_split():
    seqs, _ = datasets.celegans_divisions(DATA_ROOT, frames=5, size=20, before=2, max_sequences=1, progress=False)
    assert seqs[0].meta["division_frame"] == 2
    assert [n_components(m) for m in seqs[0].masks] == [1, 1, 2, 2, 2]


@needs_data
@pytest.mark.slow
def test_at_least_20_division_sequences_of_16_frames():
    seqs, skipped = datasets.celegans_divisions(DATA_ROOT, frames=16, size=48, progress=False)
    assert len(seqs) >= 20
    assert len({s.name for s in seqs}) == len(seqs)
    for seq in seqs:
        assert seq.masks.shape == (16, 48, 48, 48)
        assert n_components(seq.masks[0]) == 1 and n_components(seq.masks[-1]) == 2
    reasons = {reason.split(":")[0] for _, reason in skipped}
    assert reasons <= {"missing daughter", "not contiguous", "too few frames", "implausible volume", "topology"}


@needs_data
@pytest.mark.slow
def test_at_least_64_division_sequences_of_12_frames():
    seqs, skipped = datasets.celegans_divisions(DATA_ROOT, frames=12, size=48, progress=False)
    assert len(seqs) >= 64
    table = datasets.celegans_label_table(DATA_ROOT)
    for seq in seqs:
        assert [n_components(m) for m in seq.masks] == [1] * 6 + [2] * 6
        frames = seq.meta["source_frames"]
        assert frames == list(range(frames[0], frames[0] + 12))
        assert frames[5] == table[seq.meta["mother"]]["last_frame"] + seq.meta["retimed"]
        assert (len(seq.meta["repairs"]) > 0) == (seq.meta["retimed"] > 0 or any(
            "interpolated" in note or "copied" in note for note in seq.meta["repairs"]))
    assert sum(bool(seq.meta["repairs"]) for seq in seqs) >= 1
    reasons = {reason.split(":")[0] for _, reason in skipped}
    assert reasons <= {"missing daughter", "not contiguous", "too few frames", "implausible volume", "topology"}


# --- Division windows of any lineage: re-timing and glitch repair (synthetic truth) ---------------

SPAN_SHAPE = (24, 24, 48)
DRIFT = 0.8  # voxels a frame: the synthetic cells move, so a copied neighbour is not the truth


def mother_truth(t):
    """The mother at span frame t: a ball drifting along the last axis and growing."""
    return ball(SPAN_SHAPE, (12, 12, 14 + DRIFT * t), 6.0 + 0.1 * t)


def daughter_truth(t, division):
    """Both daughters at span frame t >= division: balls moving apart along the last axis and growing."""
    shift = 5.5 + 2 * DRIFT * (t - division)
    radius = 4.8 + 0.08 * (t - division)
    return tuple(ball(SPAN_SHAPE, (12, 12, 14 + DRIFT * t + sign * shift), radius) for sign in (-1, 1))


def span(n_mother, n_daughter, division=None):
    """Truth of a span: the masks per frame, the cell divides at span frame ``division`` (default n_mother)."""
    division = n_mother if division is None else division
    return [mother_truth(t) if t < division else daughter_truth(t, division) for t in range(n_mother + n_daughter)]


def as_recorded(frames, n_mother):
    """Split a span's frames as a lineage records them: mother frames, then daughter pairs.

    A frame where the truth is still one cell but the lineage has the daughters becomes
    (the cell less one voxel, that voxel): the late split of the C. elegans data.
    """
    mother = [f for f in frames[:n_mother]]
    daughters = []
    for f in frames[n_mother:]:
        if isinstance(f, tuple):
            daughters.append(f)
        else:
            speck = np.zeros_like(f)
            speck[tuple(np.argwhere(f)[0])] = True
            daughters.append((f & ~speck, speck))
    return mother, daughters


def test_clean_window_is_left_as_is():
    truth = span(5, 6)
    mother, daughters = as_recorded(truth, 5)
    cells, repair = datasets.repair_division_window(mother, daughters, before=4, after=4)
    assert repair.rejected is None and not repair.repaired and repair.notes == ()
    assert (repair.start, repair.division, repair.stop) == (1, 5, 9)
    assert len(cells) == 8
    for k, frame in enumerate(cells):
        expected = (truth[1 + k],) if k < 4 else truth[1 + k]
        assert len(frame) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(frame, expected))


@pytest.mark.parametrize("late", [1, 2])
def test_late_split_is_retimed_to_the_mother(late):
    truth = span(5, 7, division=5 + late)  # the cell divides `late` frames after the lineage says
    mother, daughters = as_recorded(truth, 5)
    cells, repair = datasets.repair_division_window(mother, daughters, before=4, after=4)
    assert repair.retimed == tuple(range(5, 5 + late)) and repair.division == 5 + late
    assert repair.fills == () and sum("re-timed" in n for n in repair.notes) == late
    window = truth[repair.start : repair.stop]
    assert [len(c) for c in cells] == [1] * 4 + [2] * 4
    for frame, expected in zip(cells, window):
        expected = expected if isinstance(expected, tuple) else (expected,)
        assert all(np.array_equal(a, b) for a, b in zip(frame, expected))


def leak(mask):
    """The mask spilled two voxels into its surroundings: more than twice its volume."""
    return ndimage.binary_dilation(mask, iterations=2)


def speck(mask):
    """A few voxels of the mask: a label that almost vanished."""
    out = np.zeros_like(mask)
    out[tuple(np.argwhere(mask)[:3].T)] = True
    return out


@pytest.mark.parametrize("glitch", [speck, leak, lambda mask: None], ids=["speck", "leak", "missing"])
@pytest.mark.parametrize("cell, frame", [(0, 3), (1, 7), (2, 6)])
def test_glitch_frame_is_rebuilt_between_its_neighbours(glitch, cell, frame):
    truth = span(5, 6)
    mother, daughters = as_recorded(truth, 5)
    if cell == 0:
        mother[frame] = glitch(mother[frame])
    else:
        pair = list(daughters[frame - 5])
        pair[cell - 1] = glitch(pair[cell - 1])
        daughters[frame - 5] = tuple(pair)
    cells, repair = datasets.repair_division_window(mother, daughters, before=4, after=4)
    assert repair.rejected is None and repair.retimed == ()
    assert repair.fills == ((frame, cell, frame - 1, frame + 1),)
    rebuilt = cells[frame - repair.start][0 if cell == 0 else cell - 1]
    true = truth[frame] if cell == 0 else truth[frame][cell - 1]
    # Closer to the truth than a copy of either neighbour (the cells move and grow).
    neighbours = [truth[i] if cell == 0 else truth[i][cell - 1] for i in (frame - 1, frame + 1)]
    assert dice(rebuilt, true) > max(0.9, *(dice(n, true) for n in neighbours))
    np.testing.assert_allclose(rebuilt.sum(), true.sum(), rtol=0.1)
    # every other cell of the window is passed through untouched
    for k, i in enumerate(range(repair.start, repair.stop)):
        expected = truth[i] if isinstance(truth[i], tuple) else (truth[i],)
        for c, (got, want) in enumerate(zip(cells[k], expected)):
            if (i, 0 if i < 5 else c + 1) != (frame, cell):
                assert np.array_equal(got, want)


def test_glitch_at_the_span_end_is_copied_and_at_the_window_start_uses_the_margin():
    truth = span(5, 5)  # no daughter frame beyond the window
    mother, daughters = as_recorded(truth, 5)
    mother[1] = speck(mother[1])  # first window frame: the margin frame 0 is its previous neighbour
    daughters[4] = (daughters[4][0], None)  # last span frame: only a previous neighbour
    cells, repair = datasets.repair_division_window(mother, daughters, before=4, after=5)
    assert repair.fills == ((1, 0, 0, 2), (9, 2, 8, None))
    assert any("interpolated between frame 0 and frame 2" in n for n in repair.notes)
    assert any("copied from frame 8" in n for n in repair.notes)
    assert dice(cells[0][0], truth[1]) > 0.95
    assert np.array_equal(cells[-1][1], truth[8][1])  # the copy
    assert dice(cells[-1][1], truth[9][1]) > 0.5  # a copy lags one frame behind the truth
    daughter_inputs = {(i, c) for i in range(5, 10) for c in (1, 2)} - {(9, 2)}
    assert set(repair.inputs()) == {(i, 0) for i in (0, 2, 3, 4)} | daughter_inputs


def test_too_many_glitches_or_too_few_frames_reject_the_window():
    truth = span(9, 4)
    mother, daughters = as_recorded(truth, 9)
    for i in (3, 4, 5):  # three frames in a row: more than MAX_FILLED_RUN
        mother[i] = speck(mother[i])
    cells, repair = datasets.repair_division_window(mother, daughters, before=8, after=4)
    assert cells is None and repair.rejected.startswith("implausible volume") and "in a row" in repair.rejected
    # Glitches in most frames of a cell: its median is no reference, nothing is rebuilt.
    repair = datasets.plan_division_repair([100, 100, 1000, 2000, 2000], [[500, 500]] * 3, before=5, after=3)
    assert repair.rejected.startswith("implausible volume")
    truth = span(5, 4, division=6)  # a late split, and no daughter frame to spare
    cells, repair = datasets.repair_division_window(*as_recorded(truth, 5), before=4, after=4)
    assert cells is None and repair.rejected.startswith("too few frames")
    cells, repair = datasets.repair_division_window(*as_recorded(truth, 5), before=4, after=4, max_retimed=0)
    # Without re-timing both labels of that frame are glitches: rebuilt from the next frame.
    assert cells is not None and repair.retimed == ()
    assert repair.fills == ((5, 1, None, 6), (5, 2, None, 6))


def test_plan_on_voxel_counts_of_real_glitches():
    # ABal in the C. elegans data: ABala is a speck in the first two frames, ABalp holds the mother.
    repair = datasets.plan_division_repair(
        [265976, 267350, 267895, 271026, 273676, 274713, 270000],
        [[25, 272430], [2, 263948], [110122, 144947], [112451, 139284], [113148, 138961], [113044, 143444],
         [112000, 140000], [112500, 141000], [113000, 141500]],
        before=6, after=6, names=("ABal", "ABala", "ABalp"), times=range(11, 27))
    assert repair.retimed == (7, 8) and (repair.start, repair.division, repair.stop) == (3, 9, 15)
    assert repair.fills == () and "ABalp holds it" in repair.notes[0] and repair.notes[0].startswith("frame 18")
    # Cap: the mother vanishes for two frames; rebuilt from the frames either side.
    repair = datasets.plan_division_repair(
        [31000, 31986, 4, 8, 36749, 38480, 40167],
        [[20809, 19030], [18361, 18635], [17514, 20200], [18440, 18285], [18436, 17931], [18300, 18000]],
        before=6, after=6)
    assert repair.retimed == () and repair.fills == ((2, 0, 1, 4), (3, 0, 1, 4))
    assert "interpolated between frame 1 and frame 4" in repair.notes[0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"before": 0}, "before"),
        ({"after": 7}, "daughter_voxels"),
        ({"mother_voxels": [5, -1, 5]}, "0 or more"),
        ({"ratio_range": (1.2, 1.4)}, "ratio_range"),
        ({"names": ("a", "b")}, "names"),
        ({"times": [1, 2]}, "times"),
    ],
)
def test_plan_arguments_checked(kwargs, match):
    args = {"mother_voxels": [5, 5, 5], "daughter_voxels": [[2, 3]] * 3, "before": 2, "after": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        datasets.plan_division_repair(args.pop("mother_voxels"), args.pop("daughter_voxels"), **args)


def test_shape_interpolation_moves_and_grows_the_shape():
    a = ball(SPAN_SHAPE, (12, 12, 14), 5.0)
    b = ball(SPAN_SHAPE, (12, 12, 17), 7.0)
    assert np.array_equal(datasets.interpolate_masks(a, b, 0.0), a)
    for weight in (0.25, 0.5, 0.75):
        truth = ball(SPAN_SHAPE, (12, 12, 14 + 3 * weight), 5.0 + 2 * weight)
        mid = datasets.interpolate_masks(a, b, weight)
        assert dice(mid, truth) > 0.9
        np.testing.assert_allclose(mid.sum(), truth.sum(), rtol=0.2)
    # A cell that moves by its own radius keeps its size (an unaligned blend would thin it).
    moved = ball(SPAN_SHAPE, (12, 12, 26), 5.0)
    mid = datasets.interpolate_masks(a, moved, 0.5)
    assert dice(mid, ball(SPAN_SHAPE, (12, 12, 20), 5.0)) > 0.95
    with pytest.raises(ValueError, match="weight"):
        datasets.interpolate_masks(a, b, 1.5)


def test_repair_checks_masks_against_the_plan():
    truth = span(5, 6)
    mother, daughters = as_recorded(truth, 5)
    repair = datasets.plan_division_repair([m.sum() for m in mother], [[a.sum(), b.sum()] for a, b in daughters],
                                           before=4, after=4)
    mother[2] = None  # read by the plan
    with pytest.raises(ValueError, match="is None"):
        datasets.repair_division_window(mother, daughters, before=4, after=4, repair=repair)
    with pytest.raises(ValueError, match="planned for"):
        datasets.repair_division_window(mother[1:], daughters, before=3, after=4, repair=repair)
    mother[2] = np.zeros((8, 8, 8), dtype=bool)
    with pytest.raises(ValueError, match="one shape"):
        datasets.repair_division_window(mother, daughters, before=4, after=4)
