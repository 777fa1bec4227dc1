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
from conftest import celegans_available, real_data_dir
from scipy import ndimage

from cellnb import datasets

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
        assert meta["family"] == "dividing"
        assert meta["division_frame"] == 3 and len(meta["source_frames"]) == 6
        assert np.array_equal(np.diff(meta["source_frames"]), np.ones(5))
        # The division may be re-timed later than the lineage says (never earlier), and then the
        # raw volume shows why: one daughter label holds the mother, the other almost nothing.
        # source frames count from 0; the files' time points from 1
        assert meta["source_frames"][2] == table[meta["mother"]]["last_frame"] - 1 + meta["retimed"]
        for t in meta["source_frames"][3 - meta["retimed"] : 3] if meta["retimed"] else []:
            raw = scipy.io.loadmat(CELEGANS / f"membSeg/T{t + 1:03d}_membSeg.mat")["membSeg"]
            small, large = sorted((raw == table[d]["label"]).sum() for d in meta["daughters"])
            assert small < 0.01 * large
        assert [n_components(m) for m in seq.masks] == [1, 1, 1, 2, 2, 2]
        m = seq.masks
        assert not (m[:, [0, -1]].any() or m[:, :, [0, -1]].any() or m[:, :, :, [0, -1]].any())
        # Physical scale and axis order against the raw .mat volume (axes y, x, z, voxel 0.225 um).
        t = meta["source_frames"][-1] + 1
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
        assert frames[5] == table[seq.meta["mother"]]["last_frame"] - 1 + seq.meta["retimed"]
        assert (len(seq.meta["repairs"]) > 0) == (seq.meta["retimed"] > 0 or any(
            "interpolated" in note or "copied" in note for note in seq.meta["repairs"]))
    assert sum(bool(seq.meta["repairs"]) for seq in seqs) >= 1
    reasons = {reason.split(":")[0] for _, reason in skipped}
    assert reasons <= {"missing daughter", "not contiguous", "too few frames", "implausible volume", "topology"}
