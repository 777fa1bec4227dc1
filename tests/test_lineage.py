"""A user's own cells: multi-cell label time-lapses and CTC folders, anisotropic voxels, lineages.

Truth from outside the code under test: ellipsoids drawn here in physical
units and imaged at (1.0, 0.2, 0.2) um, one of them dividing, relabelled
arbitrarily in every frame as automatic segmentations do; CTC folders written
here with tifffile and a lineage file typed by hand.
"""

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from cellnb.cli import main
from cellnb.io import read_sdf_h5
from cellnb.prepare import DataConfig, prepare
from cellnb.sdf import component_counts
from cellnb.workspace import DataDir

SPACING = (1.0, 0.2, 0.2)  # um: a z step five times the pixel size
SHAPE = (24, 150, 150)  # 24 x 30 x 30 um
FRAMES = 12
DIVISION = 6  # first frame with two daughters


def ellipsoid(center, radii):
    """Voxels of an axis-aligned ellipsoid, centre and radii in um."""
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radii)) <= 1.0


STATIC = [((12.0, 8.0, 8.0), (4.0, 3.0, 2.0)), ((12.0, 22.0, 21.0), (3.0, 4.5, 2.5))]
MOTHER = ((12.0, 15.0, 15.0), (3.5, 3.0, 3.0))


def cells_at(t):
    """The cells of frame ``t`` as (mask, track) pairs; tracks 1, 2 static, 3 mother, 4 and 5 daughters."""
    cells = [(ellipsoid(c, r), k + 1) for k, (c, r) in enumerate(STATIC)]
    (cz, cy, cx), radii = MOTHER
    if t < DIVISION:
        grow = 1 + 0.03 * t
        cells.append((ellipsoid((cz, cy, cx + 0.1 * t), [r * grow for r in radii]), 3))
    else:
        r = (2.6, 2.4, 2.4)
        for k, dx in enumerate((-3.6, 3.6)):
            cells.append((ellipsoid((cz, cy, cx + dx * (1 + 0.02 * (t - DIVISION))), r), 4 + k))
    return cells


def time_lapse(relabel: bool):
    """(T, Z, Y, X) uint16 labels; with ``relabel`` every frame numbers its cells anew, as segmenters do."""
    rng = np.random.default_rng(0)
    out = np.zeros((FRAMES, *SHAPE), np.uint16)
    for t in range(FRAMES):
        cells = cells_at(t)
        names = rng.permutation(len(cells)) + 10 * t + 1 if relabel else [track for _, track in cells]
        for (mask, _), label in zip(cells, names):
            out[t][mask] = label
    return out


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "embryo.tif"
    tifffile.imwrite(path, time_lapse(relabel=True), imagej=True, resolution=(1 / SPACING[2], 1 / SPACING[1]),
                     metadata={"spacing": SPACING[0], "unit": "um", "axes": "TZYX"})
    return path


def extents(mask, spacing):
    """Physical extent along each axis of a frame."""
    idx = np.nonzero(mask)
    return np.array([(i.max() - i.min() + 1) * s for i, s in zip(idx, spacing)])


def test_a_relabelled_anisotropic_time_lapse_gives_its_division_with_true_proportions(movie, tmp_path):
    summary = prepare(f"labels:{movie}", tmp_path / "d", DataConfig(frames=FRAMES, size=40, holdout=0.0, align=False),
                      progress=False)
    assert summary["n_sequences"] == 1  # the one division, found by overlap linking
    (path,) = DataDir(tmp_path / "d").files()
    sdf, record = read_sdf_h5(path)
    masks = sdf < 0
    assert component_counts(masks).tolist() == [1] * DIVISION + [2] * (FRAMES - DIVISION)
    spacing = record["spacing"]
    assert spacing[0] == spacing[1] == spacing[2] and spacing[0] > 0  # isotropic cube, um per voxel
    (_, _, _), radii = MOTHER
    truth = 2 * np.array(radii)  # the mother in frame 0, no growth yet
    np.testing.assert_allclose(extents(masks[0], spacing), truth, rtol=0.10)


def test_tracks_and_static_cells_keep_their_physical_proportions(movie, tmp_path):
    prepare(f"labels:{movie}", tmp_path / "t", DataConfig(frames=6, size=32, kind="tracks", holdout=0.0, align=False),
            progress=False)
    files = DataDir(tmp_path / "t").files()
    assert len(files) == 5  # two static cells, the mother, two daughters
    prepare(f"labels:{movie}", tmp_path / "c", DataConfig(frames=1, size=32, kind="cells", holdout=0.0, align=False),
            progress=False)
    measured = []
    for path in DataDir(tmp_path / "c").files():
        sdf, record = read_sdf_h5(path)
        assert sdf.shape == (1, 32, 32, 32)
        measured.append(extents(sdf[0] < 0, record["spacing"]))
    for _, radii in STATIC:  # the linked labels need not keep the drawing's order: match by shape
        errors = [np.max(np.abs(m / (2 * np.array(radii)) - 1)) for m in measured]
        assert min(errors) < 0.10, (radii, measured)
    flattened = tmp_path / "flat"  # taken as 1 x 1 x 1 um: the cells come out flattened five times in z
    prepare(f"labels:{movie}", flattened, DataConfig(frames=1, size=32, kind="cells", holdout=0.0, align=False,
                                                    spacing=(1.0, 1.0, 1.0)), progress=False)
    flat = [extents(read_sdf_h5(p)[0][0] < 0, read_sdf_h5(p)[1]["spacing"]) for p in DataDir(flattened).files()]
    assert all(z / x < 0.5 * (2 * 4.0) / (2 * 2.5) for z, _, x in flat)  # truth: z / x >= 8 / 5 for every cell


def oblique_division(shape=(44, 44, 44)):
    """(T, Z, Y, X) labels of one division along an oblique axis, daughters of radii 7 and 4.5 voxels.

    Returns the labels, the division axis (unit, pointing from the larger
    daughter to the smaller) and the frame of the division.  The gap between
    the daughters lies well off the middle of the cells' extent, which is
    where a crop centred on the cells would put it.
    """
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    grid = np.indices(shape).transpose(1, 2, 3, 0).astype(float)
    centre = np.array(shape) / 2.0
    ball = lambda c, r: np.linalg.norm(grid - c, axis=-1) <= r  # noqa: E731
    out = np.zeros((8, *shape), np.uint16)
    for t in range(4):
        out[t][ball(centre + 1.0 * axis, 8.0 + 0.2 * t)] = 1
    for t in range(4, 8):
        out[t][ball(centre - (8.0 + 0.2 * t) * axis, 7.0)] = 2
        out[t][ball(centre + (4.0 + 0.2 * t) * axis, 4.5)] = 3
    return out, axis, 4


def daughters_along_first_axis(frame):
    """The larger and the smaller daughter of a frame: (cube indices along axis 0, physical volume in voxels)."""
    parts, _ = ndimage.label(frame, np.ones((3, 3, 3)))
    sizes = np.bincount(parts.ravel())[1:]
    return [(np.argwhere(parts == k + 1)[:, 0], sizes[k]) for k in np.argsort(sizes)[::-1]]


def test_a_division_is_aligned_on_its_daughters_with_the_gap_in_the_middle_of_the_cube(tmp_path):
    """With align, every division's daughters lie along the cube's first axis, the larger one first, and
    the plane between them is the cube's middle plane: the gap sits at one place in every sequence."""
    labels, axis, division = oblique_division()
    tra = write_ctc(tmp_path / "ctc", labels, [(1, 0, 3, 0), (2, 4, 7, 1), (3, 4, 7, 1)])
    config = DataConfig(frames=8, size=40, holdout=0.0, spacing=(1.0, 1.0, 1.0), align=True, daughter_shift=0.0)
    prepare(f"ctc:{tra}", tmp_path / "d", config, progress=False)
    (path,) = DataDir(tmp_path / "d").files()
    sdf, record = read_sdf_h5(path)
    masks = sdf < 0
    assert component_counts(masks).tolist() == [1] * division + [2] * (8 - division)
    rotation = np.asarray(record["meta"]["rotation"])  # rows: the cube's axes in the source's (Z, Y, X) frame
    assert abs(rotation[0] @ axis) > 0.999
    for frame in masks[division:]:
        (big, _), (small, _) = daughters_along_first_axis(frame)
        assert big.mean() < small.mean()  # the larger daughter on the low side of the first axis
        gap = 0.5 * (big.max() + small.min())  # cube index of the plane between the daughters
        assert abs(gap - (40 - 1) / 2.0) <= 1.0, gap


def test_daughter_shift_widens_the_gap_by_twice_the_shift_and_keeps_the_daughters(tmp_path):
    """The gap between the daughters widens by 2 x 2 cube voxels at daughter_shift 2; each keeps its volume."""
    labels, _, division = oblique_division()
    tra = write_ctc(tmp_path / "ctc", labels, [(1, 0, 3, 0), (2, 4, 7, 1), (3, 4, 7, 1)])
    found = {}
    for shift in (0.0, 2.0):
        config = DataConfig(frames=8, size=40, holdout=0.0, spacing=(1.0, 1.0, 1.0), align=True,
                            daughter_shift=shift)
        prepare(f"ctc:{tra}", tmp_path / str(shift), config, progress=False)
        (path,) = DataDir(tmp_path / str(shift)).files()
        sdf, record = read_sdf_h5(path)
        step = record["spacing"][0]  # um per cube voxel (the source is 1 um per voxel)
        daughters = [daughters_along_first_axis(frame) for frame in (sdf < 0)[division:]]
        found[shift] = (np.mean([(small.min() - big.max() - 1) * step for (big, _), (small, _) in daughters]),
                        np.array([[big_n, small_n] for (_, big_n), (_, small_n) in daughters]) * step**3, step)
    (gap0, volumes0, _), (gap2, volumes2, step) = found[0.0], found[2.0]
    assert abs(gap2 - gap0 - 4.0 * step) <= 0.5 * step, (gap0, gap2, step)  # physical, frames averaged
    np.testing.assert_allclose(volumes2, volumes0, rtol=0.05)  # resampled at another step


def write_ctc(folder, labels, lines):
    tra = folder / "01_GT" / "TRA"
    tra.mkdir(parents=True)
    for t, frame in enumerate(labels):
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", frame, photometric="minisblack")
    (tra / "man_track.txt").write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in lines))
    return tra


LINEAGE = [(1, 0, 11, 0), (2, 0, 11, 0), (3, 0, DIVISION - 1, 0), (4, DIVISION, 11, 3), (5, DIVISION, 11, 3)]


def test_a_ctc_folder_gives_divisions_tracks_and_cells(tmp_path):
    tra = write_ctc(tmp_path / "ctc", time_lapse(relabel=False), LINEAGE)
    args = ["prepare", "--source", f"ctc:{tra}", "--spacing", *map(str, SPACING), "--frames", "12", "--size", "40",
            "--quiet"]
    assert main(args + ["--out", str(tmp_path / "div")]) == 0
    (path,) = DataDir(tmp_path / "div").files()
    sdf, record = read_sdf_h5(path)
    assert component_counts(sdf < 0).tolist() == [1] * 6 + [2] * 6 and record["meta"]["division_frame"] == 6
    assert main(args[:-5] + ["--kind", "tracks", "--frames", "8", "--size", "24", "--out", str(tmp_path / "tr"),
                             "--quiet"]) == 0
    assert len(DataDir(tmp_path / "tr").files()) + len(DataDir(tmp_path / "tr").heldout_files()) == 5


BAD = {
    "absent label": (LINEAGE + [(9, 0, 3, 0)], None, "9"),
    "parent after daughter": ([(1, 0, 11, 0), (2, 0, 11, 0), (3, 0, 7, 0), (4, 6, 11, 3), (5, 6, 11, 3)], None,
                              "parent"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_lineages_are_one_line_errors(tmp_path, case):
    lines, _, match = BAD[case]
    tra = write_ctc(tmp_path / "ctc", time_lapse(relabel=False), lines)
    proc = subprocess.run([sys.executable, "-m", "cellnb", "prepare", "--source", f"ctc:{tra}", "--out",
                           str(tmp_path / "out"), "--spacing", "1", "0.2", "0.2"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("cellnb prepare: error:") and match in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_frames_spacing_and_axes_are_one_line_errors(tmp_path, movie):
    labels = time_lapse(relabel=False)
    tra = write_ctc(tmp_path / "ctc", labels, LINEAGE)
    tifffile.imwrite(tra / "man_track005.tif", labels[5, :, :100], photometric="minisblack")  # another shape
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, labels[:, 12], photometric="minisblack")  # a 2D time-lapse (T, Y, X)
    cases = [
        (["--source", f"ctc:{tra}"], "one shape"),
        (["--source", f"labels:{movie}", "--spacing", "0", "0.2", "0.2"], "spacing must be three positive"),
        (["--source", f"labels:{movie}", "--spacing", "-1", "0.2", "0.2"], "spacing must be three positive"),
        (["--source", f"labels:{flat}", "--axes", "TYX"], "2D time-lapse given as 3D"),
        (["--source", f"labels:{movie}", "--axes", "TZY"], "do not fit"),
    ]
    for args, match in cases:
        proc = subprocess.run([sys.executable, "-m", "cellnb", "prepare", *args, "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert match in proc.stderr.strip().splitlines()[-1], (args, proc.stderr)
        assert not (tmp_path / "out").exists()


def test_cells_cut_by_the_border_are_counted_and_strict_refuses_them(tmp_path):
    labels = time_lapse(relabel=False)
    labels[:, :, :, :3][labels[:, :, :, :3] == 0] = 0
    labels[:, 10:14, 5:10, 0:4] = 1  # cell 1 reaches the volume's edge in every frame
    tra = write_ctc(tmp_path / "ctc", labels, LINEAGE)
    config = DataConfig(frames=1, size=24, kind="cells", holdout=0.0, spacing=SPACING)
    summary = prepare(f"ctc:{tra}", tmp_path / "warn", config, progress=False)
    assert any("cut by the field of view" in w and w.startswith("1 of 5 sequences") for w in summary["warnings"])
    with pytest.raises(ValueError, match="strict.*cut by the field of view"):
        prepare(f"ctc:{tra}", tmp_path / "strict", config.replace(strict=True), progress=False)
    assert not (tmp_path / "strict").exists()


@pytest.mark.slow
def test_a_ctc_folder_of_the_first_60_celegans_frames_gives_30_divisions(tmp_path):
    """Issue 11: prepare --source ctc:... --kind divisions --spacing 0.225 x3 --frames 12 --size 48."""
    from conftest import celegans_available, real_data_dir

    if not celegans_available():
        pytest.skip("C. elegans data not available (set CELLNB_DATA_DIR)")
    from cellnb.datasets import celegans_to_ctc

    celegans_to_ctc(tmp_path / "embryo", real_data_dir(), frames=60, progress=False)
    tra = tmp_path / "embryo" / "01_GT" / "TRA"
    lines = [list(map(int, line.split())) for line in (tra / "man_track.txt").read_text().splitlines()]
    assert max(end for _, _, end, _ in lines) == 59 and len(list(tra.glob("man_track*.tif"))) == 60
    assert main(["prepare", "--source", f"ctc:{tra}", "--kind", "divisions", "--spacing", "0.225", "0.225", "0.225",
                 "--frames", "12", "--size", "48", "--n-sequences", "1000", "--out", str(tmp_path / "d"),
                 "--quiet"]) == 0
    data = DataDir(tmp_path / "d")
    files = data.files() + data.heldout_files()
    assert len(files) >= 30
    kept = [component_counts(read_sdf_h5(f)[0] < 0).tolist() == [1] * 6 + [2] * 6 for f in files]
    assert np.mean(kept) >= 0.9
    spacing = [read_sdf_h5(f)[1]["spacing"] for f in files]
    assert all(s[0] == s[1] == s[2] and 0.225 < s[0] < 2.0 for s in spacing)  # um per cube voxel, recorded
