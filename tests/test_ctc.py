"""The CTC layout: writers checked by a reader of our own (tifffile + text), readers on hand-made folders."""

import re

import numpy as np
import pytest
import tifffile

from cellnb import ctc
from cellnb.io import atomic_folder


def _own_lineage(path):
    """Parse a lineage file by hand: {label: (begin, end, parent)}."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            label, begin, end, parent = (int(v) for v in line.split())
            rows[label] = (begin, end, parent)
    return rows


def _own_frames(folder, prefix):
    """Frames of a folder sorted by the number in their names."""
    files = [p for p in folder.iterdir() if re.fullmatch(rf"{prefix}\d+\.tif", p.name)]
    files.sort(key=lambda p: int(re.search(r"\d+", p.name).group()))
    return [tifffile.imread(p) for p in files], files


def _dividing_labels():
    """A cell (label 1) for frames 0-2 that divides into labels 2 and 3 for frames 3-5, and a cell 4 in frames 1-5."""
    labels = np.zeros((6, 6, 24, 24), dtype=np.uint16)
    labels[:3, 1:5, 4:12, 4:12] = 1
    labels[3:, 1:5, 2:7, 4:12] = 2
    labels[3:, 1:5, 9:14, 4:12] = 3
    labels[1:, 1:5, 16:22, 16:22] = 4
    tracks = np.array([[1, 0, 2, 0], [2, 3, 5, 1], [3, 3, 5, 1], [4, 1, 5, 0]])
    return labels, tracks


def _write_by_hand(folder, labels, lines, prefix="man_track", lineage="man_track.txt"):
    folder.mkdir(parents=True)
    for t, frame in enumerate(labels):
        tifffile.imwrite(folder / f"{prefix}{t:03d}.tif", frame)
    (folder / lineage).write_text("".join(f"{line}\n" for line in lines))
    return folder


# ----------------------------------------------------------------------------- atomic_folder


def test_atomic_folder_appears_only_when_complete(tmp_path):
    dest = tmp_path / "out"
    with atomic_folder(dest) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not dest.exists()
    assert (dest / "a.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left


def test_atomic_folder_leaves_nothing_when_the_block_fails(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_folder(dest) as tmp:
            (tmp / "a.txt").write_text("1")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_refuses_or_replaces_an_existing_folder(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"):
        with atomic_folder(dest):
            pass
    assert (dest / "old.txt").read_text() == "old"
    with pytest.raises(RuntimeError):
        with atomic_folder(dest, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("killed")
    assert sorted(p.name for p in dest.iterdir()) == ["old.txt"]  # a failed replacement keeps the old folder
    with atomic_folder(dest, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ----------------------------------------------------------------------------- writing


def test_written_data_set_agrees_frame_by_frame_with_its_lineage(tmp_path):
    labels, tracks = _dividing_labels()
    images = (labels * 40 + 10).astype(np.uint8)
    out = ctc.write_dataset(tmp_path / "ds", images, labels, tracks, spacing=(1.0, 0.2, 0.2))
    got_images, image_files = _own_frames(out / "01", "t")
    assert [p.name for p in image_files] == [f"t{t:03d}.tif" for t in range(6)]
    np.testing.assert_array_equal(np.stack(got_images), images)
    tra, _ = _own_frames(out / "01_GT" / "TRA", "man_track")
    seg, _ = _own_frames(out / "01_GT" / "SEG", "man_seg")
    np.testing.assert_array_equal(np.stack(tra), labels)
    np.testing.assert_array_equal(np.stack(seg), labels)
    lineage = _own_lineage(out / "01_GT" / "TRA" / "man_track.txt")
    assert lineage == {1: (0, 2, 0), 2: (3, 5, 1), 3: (3, 5, 1), 4: (1, 5, 0)}
    for label, (begin, end, parent) in lineage.items():
        present = [t for t, frame in enumerate(tra) if (frame == label).any()]
        assert present == list(range(begin, end + 1))
        if parent:
            assert lineage[parent][1] == begin - 1  # the mother ends the frame before her daughters begin
    with tifffile.TiffFile(out / "01" / "t000.tif") as tif:
        assert tif.imagej_metadata["spacing"] == 1.0
        assert tif.pages[0].tags["XResolution"].value == (5, 1)  # 5 pixels per um


def test_lineage_is_derived_from_labels_when_not_given(tmp_path):
    labels, _ = _dividing_labels()
    out = ctc.write_dataset(tmp_path / "ds", labels.astype(np.uint8), labels)
    assert _own_lineage(out / "01_GT" / "TRA" / "man_track.txt") == {
        1: (0, 2, 0), 2: (3, 5, 0), 3: (3, 5, 0), 4: (1, 5, 0)
    }


def test_writer_refuses_an_existing_folder_and_leaves_nothing_on_bad_input(tmp_path):
    labels, tracks = _dividing_labels()
    (tmp_path / "ds").mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        ctc.write_dataset(tmp_path / "ds", labels.astype(np.uint8), labels, tracks)
    assert list((tmp_path / "ds").iterdir()) == []
    wrong = tracks.copy()
    wrong[3] = [4, 2, 5, 0]  # label 4 starts at frame 1, not 2
    with pytest.raises(ValueError, match="label 4 is in frames 1..5 but its line says 2..5"):
        ctc.write_dataset(tmp_path / "new", labels.astype(np.uint8), labels, wrong)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_frame_digits_grow_for_long_sequences(tmp_path):
    labels = np.zeros((1001, 2, 2, 2), dtype=np.uint16)
    labels[:, 0, 0, 0] = 1
    with ctc.dataset_writer(tmp_path / "ds", n_frames=len(labels)) as writer:
        writer.write_frame(1000, labels[0].astype(np.uint8), labels[0])
        with pytest.raises(ValueError, match="never written"):
            writer.finish()
        for t in range(1000):
            writer.write_frame(t, labels[t].astype(np.uint8), labels[t])
    names = sorted(p.name for p in (tmp_path / "ds" / "01").iterdir())
    assert names[0] == "t0000.tif" and names[-1] == "t1000.tif"
    assert _own_lineage(tmp_path / "ds" / "01_GT" / "TRA" / "man_track.txt") == {1: (0, 1000, 0)}


# ----------------------------------------------------------------------------- reading


def test_read_sequence_of_a_hand_made_folder(tmp_path):
    labels, tracks = _dividing_labels()
    _write_by_hand(tmp_path / "01_GT" / "TRA", labels, ["1 0 2 0", "2 3 5 1", "", "3 3 5 1", "4 1 5 0  "])
    got, table = ctc.read_sequence(tmp_path / "01_GT")
    np.testing.assert_array_equal(got, labels)
    assert got.dtype == np.uint16
    assert table.to_numpy().tolist() == tracks.tolist()
    assert list(table.columns) == list(ctc.TRACK_COLUMNS)


def test_result_folders_read_res_track(tmp_path):
    labels, _ = _dividing_labels()
    folder = _write_by_hand(tmp_path / "01_RES", labels, ["1 0 2 0", "2 3 5 1", "3 3 5 1", "4 1 5 0"],
                            prefix="mask", lineage="res_track.txt")
    got, table = ctc.read_sequence(folder)
    np.testing.assert_array_equal(got, labels)
    assert len(table) == 4


def test_frames_are_read_in_numeric_order(tmp_path):
    folder = tmp_path / "res"
    folder.mkdir()
    for t in range(12):  # mask10.tif sorts before mask2.tif as a string
        tifffile.imwrite(folder / f"mask{t}.tif", np.full((2, 3, 3), t + 1, dtype=np.uint16))
    labels = ctc.read_label_frames(folder)
    assert [int(frame.max()) for frame in labels] == list(range(1, 13))


def test_tracks_from_labels_and_link_by_overlap():
    labels, tracks = _dividing_labels()
    assert ctc.tracks_from_labels(labels, parents={2: 1, 3: 1}).to_numpy().tolist() == tracks.tolist()
    relabelled, table = ctc.link_by_overlap(labels > 0)  # components of a boolean sequence, linked by overlap
    rows = {r.label: (r.begin, r.end, r.parent) for r in table.itertuples()}
    assert len(rows) == 4
    mother = relabelled[0, 2, 8, 8]
    daughters = {relabelled[3, 2, 4, 8], relabelled[3, 2, 11, 8]}
    other = relabelled[1, 2, 18, 18]
    assert rows[mother] == (0, 2, 0) and rows[other] == (1, 5, 0)
    assert all(rows[d] == (3, 5, mother) for d in daughters)
    np.testing.assert_array_equal(relabelled > 0, labels > 0)
    ctc.check_lineage(relabelled, table)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "lines, message",
    [
        (["1 0 2 0", "2 3 5 1", "3 3 5 1"], r"frames hold labels \[4\] that the lineage lacks"),
        (["1 0 2 0", "2 3 5 1", "3 3 5 1", "4 1 5 0", "9 0 1 0"], r"names labels \[9\] that no frame holds"),
        (["1 0 3 0", "2 3 5 1", "3 3 5 1", "4 1 5 0"], "parent 1 ends at frame 3, not before its daughter 2"),
        (["1 0 2 0", "2 3 5 1", "3 3 5", "4 1 5 0"], r"line 3: expected four non-negative integers"),
        (["1 0 2 0", "2 3 5 1", "3 3 5 x", "4 1 5 0"], r"line 3: expected four non-negative integers"),
        (["1 0 2 0", "2 3 5 7", "3 3 5 1", "4 1 5 0"], "names parent 7, which has no line"),
    ],
)
def test_bad_lineage_files_are_refused_naming_file_and_fix(tmp_path, lines, message):
    labels, _ = _dividing_labels()
    folder = _write_by_hand(tmp_path / "TRA", labels, lines)
    with pytest.raises(ValueError, match=message) as err:
        ctc.read_sequence(folder)
    assert "man_track.txt" in str(err.value) and "\n" not in str(err.value)


def test_frames_of_different_shapes_are_refused(tmp_path):
    labels, _ = _dividing_labels()
    folder = _write_by_hand(tmp_path / "TRA", labels, ["1 0 2 0", "2 3 5 1", "3 3 5 1", "4 1 5 0"])
    tifffile.imwrite(folder / "man_track004.tif", np.zeros((6, 24, 20), dtype=np.uint16))
    with pytest.raises(ValueError, match=r"man_track004.tif has shape \(6, 24, 20\).*one shape"):
        ctc.read_label_frames(folder)


def test_a_2d_time_lapse_given_as_3d_is_refused(tmp_path):
    folder = tmp_path / "TRA"
    folder.mkdir()
    for t in range(3):
        tifffile.imwrite(folder / f"man_track{t:03d}.tif", np.ones((8, 8), dtype=np.uint16))
    with pytest.raises(ValueError, match="2D time-lapse"):
        ctc.read_label_frames(folder)
    with pytest.raises(ValueError, match="2D time-lapse"):
        ctc.write_dataset(tmp_path / "a", np.ones((3, 8, 8), np.uint8), np.ones((3, 8, 8), np.uint16))
    with pytest.raises(ValueError, match="2D time-lapse given as 3D"):
        ctc.write_dataset(tmp_path / "b", np.ones((3, 1, 8, 8), np.uint8), np.ones((3, 1, 8, 8), np.uint16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TRA"]


def test_missing_frames_and_gaps_are_refused(tmp_path):
    labels, _ = _dividing_labels()
    folder = _write_by_hand(tmp_path / "TRA", labels, ["1 0 2 0", "2 3 5 1", "3 3 5 1", "4 1 5 0"])
    (folder / "man_track002.tif").unlink()
    with pytest.raises(ValueError, match=r"frame 2 \(man_track002.tif\) is missing"):
        ctc.read_label_frames(folder)
    gappy = labels.copy()
    gappy[3][gappy[3] == 4] = 0
    with pytest.raises(ValueError, match=r"label 4 is missing from frames \[3\]"):
        ctc.check_lineage(gappy, [[1, 0, 2, 0], [2, 3, 5, 1], [3, 3, 5, 1], [4, 1, 5, 0]])
    ctc.check_lineage(gappy, [[1, 0, 2, 0], [2, 3, 5, 1], [3, 3, 5, 1], [4, 1, 5, 0]], allow_gaps=True)
