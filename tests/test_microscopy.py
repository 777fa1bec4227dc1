"""Synthetic microscopy: SNR measured on the written files by code of our own, PSF widths against the
formulas, placement, seeds, the baseline segmentation and every bad input."""

import json
import math

import nbformat
import numpy as np
import papermill
import pytest
import tifffile
from conftest import REPO
from scipy import ndimage, signal
from skimage.filters import gaussian, threshold_otsu

from cellnb import ctc, microscopy, phantoms, segmentation
from cellnb.io import write_sdf_h5
from cellnb.population import place_cells
from cellnb.sdf import sequence_to_sdf
from cellnb.viz.microscopy import plot_histograms, plot_seg_curve, plot_views

SNRS = (1.0, 2.0, 4.0, 8.0)
MASK_SPACING = (0.5, 0.5, 0.5)  # phantom voxels taken as 0.5 um: cells of about 15 um
SPACING = (1.0, 0.5, 0.5)  # images: z steps twice the pixel size
N_FRAMES = 4


def _read(folder):
    """Images, SEG and TRA frames and the lineage of a data set, read with tifffile and plain text."""
    def frames(sub, prefix):
        files = sorted((folder / sub).glob(f"{prefix}*.tif"), key=lambda p: int(p.stem[len(prefix):]))
        return np.stack([tifffile.imread(p) for p in files])

    lineage = {}
    for line in (folder / "01_GT" / "TRA" / "man_track.txt").read_text().split("\n"):
        if line:
            label, begin, end, parent = map(int, line.split())
            lineage[label] = (begin, end, parent)
    return frames("01", "t"), frames("01_GT/SEG", "man_seg"), frames("01_GT/TRA", "man_track"), lineage


def _ctc_snr(image, labels):
    """|mean(cell) - mean(background)| / sd(background) of one frame."""
    image = image.astype(np.float64)
    cell, background = image[labels > 0], image[labels == 0]
    return abs(cell.mean() - background.mean()) / background.std()


def _dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def population():
    seqs = phantoms.make_batch("dividing", 4, size=40, frames=N_FRAMES, rng=0)
    return place_cells(seqs, spacing=MASK_SPACING, drift=0.5, rng=1)


@pytest.fixture(scope="module")
def rendered(population, tmp_path_factory):
    """One data set per SNR (seed 7), confocal preset."""
    root = tmp_path_factory.mktemp("rendered")
    out = {}
    for snr in SNRS:
        summary = microscopy.render(population, root / f"snr{snr:g}", spacing=SPACING, snr=snr, preset="confocal",
                                    seed=7, progress=False)
        out[snr] = (root / f"snr{snr:g}", summary)
    return out


# ----------------------------------------------------------------------------- must show


@pytest.mark.parametrize("snr", (2.0, 4.0, 8.0))
def test_requested_snr_is_met_within_10_percent_on_the_files(rendered, snr):
    folder, summary = rendered[snr]
    images, seg, _, _ = _read(folder)
    measured = np.mean([_ctc_snr(img, gt) for img, gt in zip(images, seg)])
    assert abs(measured - snr) / snr < 0.10
    assert summary["snr"] == pytest.approx(measured, rel=1e-3)  # what the data set records is what it holds


def test_images_and_ground_truth_have_one_shape_and_agree_with_the_lineage(rendered, population):
    folder, summary = rendered[8.0]
    images, seg, tra, lineage = _read(folder)
    expected = (N_FRAMES,) + microscopy.output_shape(population.shape[1:], MASK_SPACING, SPACING)
    assert images.shape == seg.shape == tra.shape == expected == tuple(summary["shape"])
    assert images.dtype == np.uint16 and seg.dtype == tra.dtype == np.uint16
    np.testing.assert_array_equal(seg, tra)
    for label, (begin, end, parent) in lineage.items():
        assert [t for t in range(N_FRAMES) if (tra[t] == label).any()] == list(range(begin, end + 1))
        if parent:
            assert lineage[parent][1] == begin - 1
    assert sum(1 for b, e, p in lineage.values() if p) == 8  # four dividing cells, two daughters each


def test_same_seed_gives_byte_identical_images(population, rendered, tmp_path):
    folder, _ = rendered[4.0]
    microscopy.render(population, tmp_path / "again", spacing=SPACING, snr=4.0, preset="confocal", seed=7,
                      progress=False)
    microscopy.render(population, tmp_path / "other", spacing=SPACING, snr=4.0, preset="confocal", seed=8,
                      progress=False)
    for t in range(N_FRAMES):
        name = f"01/t{t:03d}.tif"
        assert (tmp_path / "again" / name).read_bytes() == (folder / name).read_bytes()
        assert (tmp_path / "other" / name).read_bytes() != (folder / name).read_bytes()


def test_otsu_of_the_smoothed_image_recovers_the_ground_truth_at_snr_8(rendered):
    images, seg, _, _ = _read(rendered[8.0][0])
    for image, gt in zip(images, seg):
        smoothed = gaussian(image.astype(float), sigma=(0.5, 1.0, 1.0), preserve_range=True)  # one pixel, in um
        assert _dice(smoothed > threshold_otsu(smoothed), gt > 0) >= 0.85


def test_baseline_seg_score_falls_as_snr_falls(rendered):
    scores = []
    for snr in SNRS:
        images, seg, _, _ = _read(rendered[snr][0])
        labels = np.stack([segmentation.segment_cells(img, spacing=SPACING) for img in images])
        scores.append(segmentation.seg_score(seg, labels))
    # SNR 1 -> 2 -> 4: noise limits the baseline, SEG rises at each step; 4 -> 8: a plateau, where the
    # watershed's discrete split decisions (e.g. a mother with a deep furrow) move SEG by a few hundredths
    assert scores[0] < scores[1] < scores[2], scores
    assert scores[3] >= scores[2] - 0.03, scores
    assert scores[3] - scores[0] > 0.4 and scores[3] > 0.75, scores


# ----------------------------------------------------------------------------- optics


def test_psf_formulas_of_zhang_2007():
    k = 2 * np.pi / 0.5
    sz, sy, sx = microscopy.gaussian_psf_sigma(modality="widefield", na=1.2, wavelength_em=0.5, refractive_index=1.33)
    assert sy == sx == pytest.approx(math.sqrt(2) / (k * 1.2))  # about 0.21 lambda / NA
    assert sy == pytest.approx(0.225 * 0.5 / 1.2, rel=0.01)
    assert sz == pytest.approx(2 * math.sqrt(6) * 1.33 / (k * 1.2**2))
    args = dict(modality="confocal", na=1.4, wavelength_em=0.52, wavelength_ex=0.49, refractive_index=1.518)
    k_ex, k_em = 2 * np.pi / 0.49, 2 * np.pi / 0.52
    tiny = microscopy.gaussian_psf_sigma(**args, pinhole=0.02)  # product of excitation and emission Gaussians
    assert tiny[1] == pytest.approx(math.sqrt(2) / (1.4 * math.hypot(k_ex, k_em)), rel=1e-3)
    assert tiny[0] == pytest.approx(2 * math.sqrt(6) * 1.518 / (1.4**2 * math.hypot(k_ex, k_em)), rel=1e-3)
    wide = microscopy.gaussian_psf_sigma(**args, pinhole=500.0)  # open pinhole: the excitation PSF alone
    assert wide[1] == pytest.approx(math.sqrt(2) / (1.4 * k_ex), rel=1e-3)
    assert wide[0] == pytest.approx(2 * math.sqrt(6) * 1.518 / (1.4**2 * k_ex), rel=1e-3)
    one = microscopy.gaussian_psf_sigma(**args, pinhole=1.0)
    assert tiny[0] < one[0] < wide[0]
    sheet = microscopy.gaussian_psf_sigma(modality="lightsheet", na=0.5, wavelength_em=0.5, refractive_index=1.33,
                                          sheet_fwhm=2.0)
    wf = microscopy.gaussian_psf_sigma(modality="widefield", na=0.5, wavelength_em=0.5, refractive_index=1.33)
    s_sheet = 2.0 / (2 * math.sqrt(2 * math.log(2)))
    assert sheet[0] == pytest.approx((wf[0] ** -2 + s_sheet**-2) ** -0.5)
    assert sheet[1] == wf[1]


@pytest.mark.parametrize("preset", sorted(microscopy.PRESETS))
def test_psf_array_has_the_stated_width(preset):
    scope = microscopy.PRESETS[preset]
    sigma = microscopy.gaussian_psf_sigma(modality=scope.modality, na=scope.na, wavelength_em=scope.wavelength_em,
                                          wavelength_ex=scope.wavelength_ex, refractive_index=scope.refractive_index,
                                          pinhole=scope.pinhole, sheet_fwhm=scope.sheet_fwhm)
    grid = tuple(s / 4 for s in sigma)  # fine voxels: four per sigma
    psf = microscopy.gaussian_psf(sigma, grid)
    assert psf.sum() == pytest.approx(1.0, rel=1e-5) and all(n % 2 for n in psf.shape)
    for axis in range(3):
        profile = psf.sum(axis=tuple(a for a in range(3) if a != axis)).astype(float)
        x = (np.arange(len(profile)) - len(profile) // 2) * grid[axis]
        variance = (profile * x**2).sum()
        assert math.sqrt(variance) == pytest.approx(math.sqrt(sigma[axis] ** 2 + grid[axis] ** 2 / 12), rel=0.01)


def test_fft_blur_equals_direct_convolution():
    rng = np.random.default_rng(0)
    volume = rng.random((12, 20, 18)).astype(np.float32)
    psf = microscopy.gaussian_psf((0.6, 0.3, 0.3), (0.25, 0.2, 0.2))
    direct = ndimage.convolve(volume, psf, mode="constant", cval=0.0)
    np.testing.assert_allclose(microscopy.blur(volume, psf), direct, atol=1e-5)
    np.testing.assert_allclose(signal.oaconvolve(volume, psf, mode="same"), direct, atol=1e-5)


def test_blur_cell_by_cell_equals_the_whole_frame():
    labels = np.zeros((30, 40, 40), dtype=np.uint16)
    labels[3:10, 3:12, 3:12] = 1
    labels[8:20, 10:30, 12:35] = 2  # its box overlaps the first one's
    labels[25:29, 35:39, 0:4] = 3  # at the border
    density = np.random.default_rng(0).random(labels.shape).astype(np.float32) * (labels > 0)
    psf = microscopy.gaussian_psf((0.8, 0.4, 0.4), (0.25, 0.25, 0.25))
    np.testing.assert_allclose(microscopy.blur(density, psf, labels=labels), microscopy.blur(density, psf), atol=1e-5)


def test_resampling_keeps_the_physical_positions():
    z = np.arange(20, dtype=np.float32)
    ramp = np.broadcast_to(z[:, None, None], (20, 4, 4)).copy()  # value = voxel index along Z (0.25 um voxels)
    out = microscopy.resample(ramp, (0.25, 0.25, 0.25), (1.0, 0.25, 0.25))
    assert out.shape == (5, 4, 4)
    centres_um = (np.arange(5) + 0.5) * 1.0
    np.testing.assert_allclose(out[:, 0, 0], centres_um / 0.25 - 0.5, atol=1e-5)


# ----------------------------------------------------------------------------- stain, detector


def _ball(shape, centre, radius):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre)) <= radius**2


def test_stains_brighter_inside_at_the_membrane_and_coherent_over_time():
    labels = _ball((40, 40, 40), (20, 20, 20), 15).astype(np.uint16)
    depth = ndimage.distance_transform_edt(labels) * 0.5  # um
    inner, rim = labels.astype(bool) & (depth > 4), labels.astype(bool) & (depth <= 0.5)
    cyto = microscopy.stain_density(labels, spacing=0.5, kind="cytoplasm", t=0, seed=3)
    assert (cyto[labels == 0] == 0).all()
    assert cyto[inner].mean() > 1.5 * cyto[rim].mean()
    membrane = microscopy.stain_density(labels, spacing=0.5, kind="membrane")
    assert membrane[rim].mean() > 5 * membrane[inner].mean()
    texture = cyto[inner] / cyto[inner].mean()
    assert 0.1 < texture.std() < 0.5
    later = microscopy.stain_density(labels, spacing=0.5, kind="cytoplasm", t=1, seed=3)[inner]
    other_seed = microscopy.stain_density(labels, spacing=0.5, kind="cytoplasm", t=0, seed=4)[inner]
    assert np.corrcoef(cyto[inner], later)[0, 1] > 0.8  # coherent from frame to frame
    assert abs(np.corrcoef(cyto[inner], other_seed)[0, 1]) < 0.5  # seeded per cell
    moved = np.roll(labels, 4, axis=2)  # the texture moves with the cell (which stays inside the box)
    shifted = microscopy.stain_density(moved, spacing=0.5, kind="cytoplasm", t=0, seed=3)
    np.testing.assert_allclose(np.roll(cyto, 4, axis=2), shifted, atol=1e-4)


def test_daughters_keep_their_mothers_texture():
    labels = np.zeros((20, 20, 40), dtype=np.uint16)
    labels[4:16, 4:16, 4:19] = 2
    labels[4:16, 4:16, 21:36] = 3
    tracks = ctc.as_tracks([[1, 0, 0, 0], [2, 1, 1, 1], [3, 1, 1, 1]])
    assert microscopy.lineage_roots(tracks) == {1: 1, 2: 1, 3: 1}
    shared = microscopy.stain_density(labels, spacing=0.5, roots=microscopy.lineage_roots(tracks), seed=1)
    merged = microscopy.stain_density(np.where(labels > 0, 1, 0).astype(np.uint16), spacing=0.5, seed=1)
    inside = (labels > 0) & (ndimage.distance_transform_edt(labels > 0) > 3)
    np.testing.assert_allclose(shared[inside] / merged[inside], 1.0, rtol=0.05)  # one texture for the family


def test_detector_noise_gain_offset_and_clipping():
    rng = np.random.default_rng(0)
    expected = np.full((20, 50, 50), 30.0, dtype=np.float32)
    image = microscopy.acquire(expected, read_noise=2.0, gain=2.0, offset=100.0, bit_depth=16, rng=rng)
    values = image.astype(float)
    assert values.mean() == pytest.approx(2.0 * 30 + 100, rel=0.01)
    assert values.var() == pytest.approx(4.0 * (30 + 2.0**2) + 1 / 12, rel=0.05)  # gain^2 (Poisson + read) + rounding
    saturated = microscopy.acquire(expected * 100, read_noise=0, gain=1, offset=0, bit_depth=8, rng=rng)
    assert saturated.dtype == np.uint8 and saturated.max() == 255
    assert microscopy.bleaching([0, 1, 2], 0.1) == pytest.approx([1.0, 0.9, 0.81])


def test_background_varies_slowly():
    field = microscopy.background_field((16, 64, 64), level=20.0, variation=0.3, rng=0)
    assert field.mean() == pytest.approx(20.0, rel=0.15)
    assert field.min() >= 20.0 * 0.7 - 1e-4 and field.max() <= 20.0 * 1.3 + 1e-4
    assert np.abs(np.diff(field, axis=2)).max() < 0.05 * 20.0  # no jumps between neighbouring voxels


def test_bleaching_lowers_the_snr_over_time(population, tmp_path):
    summary = microscopy.render(population, tmp_path / "bleach", spacing=SPACING, snr=4.0, preset="confocal",
                                bleaching=0.2, progress=False)
    assert all(a > b for a, b in zip(summary["frame_snr"], summary["frame_snr"][1:]))
    assert summary["snr"] == pytest.approx(4.0, rel=0.1)


# ----------------------------------------------------------------------------- populations


def test_cells_are_placed_without_overlap_and_drift(population):
    labels = np.asarray(population)
    assert labels.shape == population.shape
    ctc.check_lineage(labels, population.tracks)
    seqs = phantoms.make_batch("dividing", 4, size=40, frames=N_FRAMES, rng=0)
    for t in range(N_FRAMES):
        # every cell keeps all its voxels: none is overwritten by another
        assert (labels[t] > 0).sum() == sum(int(s.masks[t].sum()) for s in seqs)
    grown = ndimage.binary_dilation(labels[0] == 1, iterations=1)
    assert set(np.unique(labels[0][grown])) <= {0, 1}  # at least one free voxel around a cell
    still = place_cells(seqs, spacing=MASK_SPACING, drift=0.0, rng=1)
    for pop, moved in ((still, 0.0), (population, 0.5 * (N_FRAMES - 1) / MASK_SPACING[0])):
        field = np.asarray(pop)
        roots = microscopy.lineage_roots(pop.tracks)
        for i, root in enumerate(sorted(set(roots.values()))):  # one root per sequence, in sequence order
            family = np.isin(field, [label for label, r in roots.items() if r == root])
            shift = [np.array(ndimage.center_of_mass(family[t])) - ndimage.center_of_mass(seqs[i].masks[t])
                     for t in (0, N_FRAMES - 1)]
            assert np.linalg.norm(shift[1] - shift[0]) == pytest.approx(moved, abs=1.0)


def test_placement_refuses_what_cannot_be_placed():
    seqs = phantoms.make_batch("dividing", 2, size=32, frames=2, rng=0)
    with pytest.raises(ValueError, match="masks overlap when placed"):
        place_cells(seqs, shape=(40, 80, 80), positions=[(20, 40, 40), (20, 45, 45)])
    with pytest.raises(ValueError, match="could not place cell"):
        place_cells(seqs * 3, shape=(22, 30, 30), rng=0)
    with pytest.raises(ValueError, match="more than the field"):
        place_cells(seqs, shape=(10, 80, 80))
    with pytest.raises(ValueError, match="frame count"):
        place_cells([seqs[0], phantoms.make_sequence("dividing", size=32, frames=3)])


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"snr": 0.0}, ValueError, "snr must be a positive number"),
        ({"snr": -2.0}, ValueError, "snr must be a positive number"),
        ({"snr": 1e6}, ValueError, "cannot be reached"),
        ({"psf": np.full((3, 3, 3), np.nan)}, ValueError, "NaN"),
        ({"psf": np.ones((3, 4, 3))}, ValueError, "even size"),
        ({"spacing": (40.0, 0.5, 0.5)}, ValueError, "does not fit the masks.*fewer than 2 voxels"),
        ({"spacing": (1.0, 0.05, 0.05)}, ValueError, "does not fit the masks.*finer"),
        ({"spacing": (0.0, 0.5, 0.5)}, ValueError, "three positive voxel sizes"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, kwargs, error, message):
    labels = np.zeros((2, 16, 40, 40), dtype=np.uint16)
    labels[:, 4:12, 5:20, 5:20] = 1
    labels[:, 6:8, 33:35, 33:35] = 2  # a small cell: 1 um thick
    options = {"mask_spacing": MASK_SPACING, "spacing": SPACING, "progress": False, **kwargs}
    with pytest.raises(error, match=message) as err:
        microscopy.render(labels, tmp_path / "out", **options)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_2d_time_lapse_given_as_3d_is_refused(tmp_path):
    with pytest.raises(ValueError, match="2D time-lapse"):
        microscopy.render(np.ones((2, 40, 40), dtype=np.uint16), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="2D time-lapse given as 3D"):
        microscopy.render(np.ones((2, 1, 40, 40), dtype=np.uint16), tmp_path / "b", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_folder_needs_overwrite(tmp_path, population):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        microscopy.render(population, tmp_path / "out", spacing=SPACING, progress=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    microscopy.render(population, tmp_path / "out", spacing=SPACING, overwrite=True, progress=False)
    assert not (tmp_path / "out" / "keep.txt").exists() and (tmp_path / "out" / "01_GT" / "TRA").is_dir()


def test_unknown_preset_and_parameters_are_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        microscopy.microscope("spinning-disk")
    with pytest.raises(ValueError, match="unknown microscope parameter"):
        microscopy.microscope("confocal", colour="green")
    with pytest.raises(ValueError, match="na .* below the refractive index"):
        microscopy.microscope("widefield", na=1.2)


# ----------------------------------------------------------------------------- from folders


def test_render_folder_from_generated_h5_and_from_a_ctc_folder(tmp_path):
    seqs = phantoms.make_batch("dividing", 2, size=32, frames=3, rng=2)
    for seq in seqs:
        sdf, _ = sequence_to_sdf(seq.masks)
        write_sdf_h5(tmp_path / "gen" / "sdf" / f"{seq.name}.h5", sdf, record={"spacing": [0.5, 0.5, 0.5]})
    summary = microscopy.render_folder(tmp_path / "gen", tmp_path / "from_h5", snr=5.0, seed=1, preset="widefield")
    images, seg, _, lineage = _read(tmp_path / "from_h5")
    assert images.shape == seg.shape and len(images) == 3
    assert summary["mask_spacing"] == [0.5, 0.5, 0.5]
    assert summary["spacing"][0] > summary["spacing"][2]  # the preset's anisotropy
    assert len(lineage) == 6  # two dividing cells
    assert abs(np.mean([_ctc_snr(i, g) for i, g in zip(images, seg)]) - 5.0) < 0.5
    again = microscopy.render_folder(tmp_path / "from_h5", tmp_path / "from_ctc", snr=3.0, seed=1,
                                     spacing=summary["spacing"])
    _, seg2, _, lineage2 = _read(tmp_path / "from_ctc")
    np.testing.assert_array_equal(seg2, seg)  # same grid: the ground truth is kept as it is
    assert lineage2 == lineage and again["mask_spacing"] == summary["spacing"]
    with pytest.raises(FileExistsError):
        microscopy.render_folder(tmp_path / "gen", tmp_path / "from_h5")


# ----------------------------------------------------------------------------- SEG measure


def test_seg_score_follows_the_ctc_definition():
    reference = np.zeros((1, 4, 10), dtype=int)
    reference[0, 0, :] = 1  # 10 voxels
    reference[0, 2, :4] = 2  # 4 voxels
    segmented = np.zeros_like(reference)
    segmented[0, 0, :6] = 5  # covers 6 of 10: matched, J = 6 / 10
    segmented[0, 1, :2] = 5  # 2 extra voxels of the same object: J = 6 / 12
    segmented[0, 2, :2] = 7  # covers exactly half of object 2: not matched
    scores = segmentation.seg_scores(reference, segmented)
    assert scores.tolist() == [0.5, 0.0]
    assert segmentation.seg_score(reference, segmented) == 0.25
    assert segmentation.seg_score(reference, reference) == 1.0


def test_baseline_splits_touching_cells():
    spacing = (1.0, 1.0, 1.0)
    cells = (_ball((30, 30, 50), (15, 15, 15), 9) | _ball((30, 30, 50), (15, 15, 32), 9)).astype(float)
    image = ndimage.gaussian_filter(cells, 1.0) * 100 + np.random.default_rng(0).normal(0, 5, cells.shape)
    labels = segmentation.segment_cells(image, spacing=spacing)
    assert labels.max() == 2
    truth = np.where(cells > 0, np.where(np.arange(50) < 24, 1, 2), 0)  # the balls meet at x = 23.5
    assert segmentation.seg_score(truth, labels) > 0.8


def test_score_baseline_and_read_dataset(rendered):
    folder, _ = rendered[8.0]
    images, labels, tracks = ctc.read_dataset(folder)
    own_images, own_seg, _, lineage = _read(folder)
    np.testing.assert_array_equal(images, own_images)
    np.testing.assert_array_equal(labels, own_seg)
    assert {r.label: (r.begin, r.end, r.parent) for r in tracks.itertuples()} == lineage
    scores = segmentation.score_baseline(images, labels, spacing=SPACING)
    assert scores["labels"].shape == labels.shape
    assert scores["seg"] == pytest.approx(segmentation.seg_score(labels, scores["labels"]))
    assert scores["dice_otsu"] > 0.85


def test_figures_of_the_notebook(rendered):
    frames = {snr: ctc.read_dataset(rendered[snr][0])[0][1] for snr in (2.0, 8.0)}
    labels = ctc.read_dataset(rendered[8.0][0])[1][1]
    assert len(plot_views(frames, labels, spacing=SPACING).axes) == 9  # 2 SNRs + ground truth, 3 views each
    assert len(plot_histograms(frames, labels).axes) == 2
    assert len(plot_seg_curve([2, 4, 8], [0.5, 0.7, 0.8], dice=[0.6, 0.8, 0.9]).axes[0].lines) == 2


def test_notebook_06_is_clean_and_declares_the_common_parameters():
    path = REPO / "notebooks" / "06_synthetic_microscopy.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    declared = papermill.inspect_notebook(str(path))
    assert {"profile", "run_dir", "figures_dir", "name", "overrides"} <= set(declared)
    assert all(p["help"] for p in declared.values())


@pytest.mark.slow
def test_notebook_06_runs_on_phantoms(tmp_path):
    papermill.execute_notebook(
        str(REPO / "notebooks" / "06_synthetic_microscopy.ipynb"), str(tmp_path / "06.ipynb"),
        parameters={"run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path / "figures"), "name": "x",
                    "overrides": json.dumps({"microscopy": {"curve_snrs": [], "n_cells": 2}})},
        kernel_name="python3", progress_bar=False, cwd=str(REPO / "notebooks"),
    )
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "x_microscopy_histogram.png", "x_microscopy_seg.png", "x_microscopy_views.png"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["microscopy"]
    assert metrics["requested_snr"] == [2.0, 4.0, 8.0]
    assert all(abs(a - r) / r < 0.1 for a, r in zip(metrics["achieved_snr"], metrics["requested_snr"]))


def test_frames_without_cells_render_as_background(population, tmp_path):
    """Bug: a time-lapse with an empty frame (every cell gone) failed to calibrate its SNR."""
    labels = np.stack([np.asarray(population[t]) for t in range(N_FRAMES)])
    labels[0] = 0  # the first frame, a calibration frame, holds no cell
    summary = microscopy.render(labels, tmp_path / "gap", mask_spacing=MASK_SPACING, spacing=SPACING, snr=4.0,
                                preset="confocal", seed=7, progress=False)
    images, seg, _, _ = _read(tmp_path / "gap")
    assert not seg[0].any() and images[0].std() > 0  # background and noise only
    assert math.isnan(summary["frame_snr"][0])
    measured = np.mean([_ctc_snr(img, gt) for img, gt in zip(images[1:], seg[1:])])
    assert abs(measured - 4.0) / 4.0 < 0.10 and summary["snr"] == pytest.approx(measured, rel=1e-3)
    with pytest.raises(ValueError, match="no cell in any frame"):
        microscopy.render(np.zeros_like(labels), tmp_path / "none", mask_spacing=MASK_SPACING, spacing=SPACING,
                          progress=False)
    assert not (tmp_path / "none").exists()


def test_a_cell_thinner_than_a_detector_voxel_keeps_its_label(tmp_path):
    """Bug: a filopodial cell's small part, thinner than one z step, made the main job's notebook 06 fail."""
    labels = np.zeros((2, 16, 40, 40), dtype=np.uint16)
    labels[:, 4:12, 5:20, 5:20] = 1
    labels[:, 6:8, 33:35, 33:35] = 2  # a small cell: 1 um wide, between the centres of 6 um voxels
    microscopy.render(labels, tmp_path / "out", mask_spacing=MASK_SPACING, spacing=(1.0, 6.0, 6.0), progress=False)
    _, seg, tra, lineage = _read(tmp_path / "out")
    for t in range(2):
        assert set(np.unique(tra[t])) == {0, 1, 2}
        # the voxel it falls into: z 6-7 of 0.5 um -> 3.0-4.0 um -> z index 3; y, x 33-34 -> 16.5-17.5 um -> 2
        assert tra[t][3, 2, 2] == 2 and (tra[t] == 2).sum() == 1
    assert set(lineage) == {1, 2}
