"""Phantom families: topology, volume, protrusions, reproducibility (all seeded)."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import ball

from cellnb import phantoms

FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


def n_components(frame: np.ndarray) -> int:
    return ndimage.label(frame, FULL)[1]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("size, frames", [(48, 12), (24, 9)])
def test_dividing_one_component_before_and_two_from_division_frame(size, frames):
    # seed 0: a batch of 6 sequences
    for seq in phantoms.make_batch("dividing", 6, size=size, frames=frames, rng=0):
        d = seq.meta["division_frame"]
        assert 0.3 * (frames - 1) <= d <= 0.7 * (frames - 1) + 1, (seq.name, d)
        counts = [n_components(m) for m in seq.masks]
        assert counts == [1] * d + [2] * (frames - d), (seq.name, counts)


def test_dividing_timing_varies_and_cell_grows():
    batch = phantoms.make_batch("dividing", 6, size=32, frames=12, rng=1)
    assert len({s.meta["division_time"] for s in batch}) == 6
    assert len({s.meta["division_frame"] for s in batch}) >= 2
    for seq in batch:
        volumes = seq.masks.sum(axis=(1, 2, 3))
        assert volumes[-1] > volumes[0]


def test_filopodial_one_component_with_thin_protrusions_that_change():
    # seed 2: protrusions are what a ball of radius 3 cannot fit in (body radius >= 5 voxels at 48^3)
    for seq in phantoms.make_batch("filopodial", 4, size=48, frames=8, rng=2):
        thin_total, thin_largest = [], []
        for m in seq.masks:
            assert n_components(m) == 1, seq.name
            thin = m & ~ndimage.binary_opening(m, ball(3))
            labels, n = ndimage.label(thin, FULL)
            thin_total.append(int(thin.sum()))
            thin_largest.append(int(np.bincount(labels.ravel())[1:].max()) if n else 0)
        assert max(thin_largest) >= 50, (seq.name, thin_largest)
        assert max(thin_total) >= 1.3 * min(thin_total), (seq.name, thin_total)  # grow / retract
        assert seq.meta["n_protrusions"] >= 4


@pytest.mark.parametrize("size, frames", [(48, 12), (24, 10)])
def test_deforming_constant_volume_and_changing_shape(size, frames):
    for seq in phantoms.make_batch("deforming", 4, size=size, frames=frames, rng=3):
        volumes = seq.masks.sum(axis=(1, 2, 3)).astype(float)
        assert np.all(np.abs(volumes / volumes.mean() - 1.0) <= 0.15), (seq.name, volumes)
        for m in seq.masks:
            assert n_components(m) == 1
        masks = seq.masks
        assert min(iou(masks[0], m) for m in masks) < 0.85  # the shape really changes
        assert np.mean([iou(a, b) for a, b in zip(masks[:-1], masks[1:])]) > 0.6  # smoothly


def test_deforming_volume_matches_continuous_volume():
    seq = phantoms.make_sequence("deforming", size=48, frames=4, rng=4)
    voxel = 2.0 / 47  # network units per voxel
    expected = seq.meta["volume"] / voxel**3
    np.testing.assert_allclose(seq.masks.sum(axis=(1, 2, 3)), expected, rtol=0.05)


@pytest.mark.parametrize("family", phantoms.FAMILIES)
def test_small_grid_keeps_border_empty_and_topology(family):
    for seq in phantoms.make_batch(family, 4, size=16, frames=5, rng=5):
        m = seq.masks
        assert m.shape == (5, 16, 16, 16) and m.dtype == bool
        assert not (m[:, [0, -1]].any() or m[:, :, [0, -1]].any() or m[:, :, :, [0, -1]].any())
        counts = [n_components(f) for f in m]
        if family == "dividing":
            d = seq.meta["division_frame"]
            assert counts == [1] * d + [2] * (5 - d)
        else:
            assert counts == [1] * 5


@pytest.mark.parametrize("family", phantoms.FAMILIES)
def test_same_seed_same_arrays_different_seed_different(family):
    a = phantoms.make_batch(family, 2, size=24, frames=4, rng=7)
    b = phantoms.make_batch(family, 2, size=24, frames=4, rng=7)
    c = phantoms.make_batch(family, 2, size=24, frames=4, rng=8)
    for x, y, z in zip(a, b, c):
        assert np.array_equal(x.masks, y.masks) and x.meta == y.meta
        assert not np.array_equal(x.masks, z.masks)
    assert not np.array_equal(a[0].masks, a[1].masks)
    assert [s.name for s in a] == [f"{family}_000", f"{family}_001"]
    # a batch member can be rebuilt alone from its stored seed
    alone = phantoms.make_sequence(family, size=24, frames=4, rng=a[1].meta["seed"])
    assert np.array_equal(alone.masks, a[1].masks)


@pytest.mark.parametrize("family", phantoms.FAMILIES)
def test_frame_counts_sample_the_same_continuous_motion(family):
    # frames at s = 0, 1/2, 1 of a 3-frame sequence are frames 0, 2, 4 of a 5-frame one
    three = phantoms.make_sequence(family, size=24, frames=3, rng=9)
    five = phantoms.make_sequence(family, size=24, frames=5, rng=9)
    assert np.array_equal(three.masks, five.masks[::2])


def test_sequence_fields():
    seq = phantoms.make_sequence("dividing", size=20, frames=6, rng=np.random.default_rng(0), name="cell")
    assert seq.name == "cell" and seq.spacing == (1.0, 1.0, 1.0)
    assert seq.meta["family"] == "dividing" and seq.n_frames == 6 and seq.shape == (20, 20, 20)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: phantoms.make_sequence("round"), "dividing, filopodial, deforming"),
        (lambda: phantoms.make_sequence("dividing", size=15), "size"),
        (lambda: phantoms.make_sequence("dividing", size=20.5), "size"),
        (lambda: phantoms.make_sequence("dividing", frames=1), "frames"),
        (lambda: phantoms.make_batch("dividing", 0), "n must"),
        (lambda: phantoms.make_batch("blob", 2), "family"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
