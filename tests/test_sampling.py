"""cellnb.sampling: point rules, the checked data set and the per-frame point pool."""

import h5py
import numpy as np
import pytest
import torch
from conftest import ball

from cellnb.io import write_sdf_h5
from cellnb.sampling import (
    GAP_RADIUS,
    FramePoints,
    SDFDataset,
    gap_voxels,
    sample_frame,
    sample_indices,
)
from cellnb.sdf import grid_coords, sequence_to_sdf, time_coords
from cellnb.train import TrainConfig


def sphere_sdf(size=24, radius=6.0, center=None):
    """Analytic normalised sphere SDF on a cube grid (no EDT involved)."""
    center = np.full(3, (size - 1) / 2) if center is None else np.asarray(center, float)
    grids = np.meshgrid(*[np.arange(size)] * 3, indexing="ij")
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, center))) - radius
    return (dist / np.abs(dist).max()).astype(np.float32)


def write_balls(folder, *, n_seq=2, frames=3, size=16):
    """Growing balls, one file per sequence; returns the SDF arrays written."""
    out = []
    for s in range(n_seq):
        masks = np.stack([ball((size,) * 3, [(size - 1) / 2] * 3, 3 + t + s) for t in range(frames)])
        sdf, scale = sequence_to_sdf(masks, clamp=4.0)
        write_sdf_h5(folder / f"ball{s}.h5", sdf, record={"name": f"ball{s}", "scale": scale})
        out.append(sdf)
    return out


@pytest.mark.parametrize("mode", ["official", "band"])
def test_points_are_voxel_centres_with_their_sdf_and_the_requested_split(mode):
    sdf = sphere_sdf()
    coords, values = sample_frame(sdf, 1000, near_fraction=0.7, threshold=0.1, mode=mode, rng=0)
    assert coords.shape == (1000, 3) and values.shape == (1000,)
    assert coords.dtype == np.float32 and values.dtype == np.float32
    # every point is a row of the grid, and its value is the SDF there (index from the coordinate)
    idx = np.rint((coords + 1) / 2 * (sdf.shape[0] - 1)).astype(int)
    np.testing.assert_array_equal(grid_coords(sdf.shape).reshape(*sdf.shape, 3)[tuple(idx.T)], coords)
    np.testing.assert_array_equal(sdf[tuple(idx.T)], values)
    near = values <= 0.1 if mode == "official" else np.abs(values) <= 0.1
    assert near.sum() == 700  # the first 700 come from the near part, the rest from the other
    assert near[:700].all() and not near[700:].any()


def test_far_points_spread_uniformly_over_the_rest():
    sdf = sphere_sdf(size=20, radius=9.0)  # the near part is a large share: rejection route
    idx = sample_indices(sdf, 60_000, near_fraction=0.0, threshold=0.1, mode="official", rng=1)
    far = np.flatnonzero(sdf.ravel() > 0.1)
    assert np.isin(idx, far).all()
    counts = np.bincount(np.searchsorted(far, idx), minlength=far.size)
    expected = idx.size / far.size
    assert counts.min() > 0 and abs(counts.mean() - expected) < 1e-9
    assert counts.std() < 2 * np.sqrt(expected)  # Poisson spread, no favoured voxels


def test_same_seed_same_points_and_empty_parts():
    sdf = sphere_sdf()
    a = sample_frame(sdf, 200, rng=5)
    b = sample_frame(sdf, 200, rng=np.random.default_rng(5))
    c = sample_frame(sdf, 200, rng=6)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    _, values = sample_frame(np.ones((8, 8, 8), np.float32), 50, rng=0)  # no near voxel: all from the rest
    assert values.shape == (50,)
    _, values = sample_frame(-np.ones((8, 8, 8), np.float32), 50, rng=0)  # all near
    assert (values == -1).all()


def test_bad_arguments_are_refused():
    sdf = sphere_sdf(size=8, radius=2)
    with pytest.raises(ValueError, match="mode"):
        sample_frame(sdf, 10, mode="surface")
    with pytest.raises(ValueError, match="near_fraction"):
        sample_frame(sdf, 10, near_fraction=1.5)
    with pytest.raises(ValueError, match="n_points"):
        sample_frame(sdf, 0)
    with pytest.raises(ValueError, match="one frame"):
        sample_frame(sdf[None], 10)
    bad = sdf.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sample_frame(bad, 10)


def test_dataset_checks_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .h5"):
        SDFDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SDFDataset(tmp_path / "missing")
    sdfs = write_balls(tmp_path)
    ds = SDFDataset(tmp_path)
    assert (ds.n_sequences, ds.n_frames, ds.shape, ds.names) == (2, 3, (16, 16, 16), ["ball0", "ball1"])
    np.testing.assert_array_equal(ds.frame(4), sdfs[1][1])  # frame 4 = sequence 1, frame 1
    np.testing.assert_array_equal(ds.sequence(0), sdfs[0])


def test_dataset_names_files_of_different_size_or_length(tmp_path):
    write_balls(tmp_path, n_seq=1, frames=3, size=16)
    other = np.stack([np.where(ball((18,) * 3, [8.5] * 3, 4), -0.5, 0.5)] * 3).astype(np.float32)
    write_sdf_h5(tmp_path / "big.h5", other)
    with pytest.raises(ValueError, match=r"different grid sizes: ball0.h5: \(16, 16, 16\), big.h5: \(18, 18, 18\)"):
        SDFDataset(tmp_path)
    (tmp_path / "big.h5").unlink()
    write_sdf_h5(tmp_path / "long.h5", np.concatenate([other[:, :16, :16, :16]] * 2))
    with pytest.raises(ValueError, match="different frame counts: ball0.h5: 3, long.h5: 6"):
        SDFDataset(tmp_path)


def test_nan_in_a_file_is_reported_with_its_frame(tmp_path):
    write_balls(tmp_path, n_seq=1)
    with h5py.File(tmp_path / "ball0.h5", "r+") as f:
        data = f["sdf_vid"][...]
        data[3, 3, 3, 2] = np.nan  # stored transposed: frame 2
        f["sdf_vid"][...] = data
    ds = SDFDataset(tmp_path)
    ds.frame(0)
    with pytest.raises(ValueError, match="ball0.h5 frame 2 contains NaN"):
        ds.frame(2)


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_pool_points_equal_sample_frame_with_the_frame_seed(tmp_path, cache_bytes):
    sdfs = write_balls(tmp_path)
    ds = SDFDataset(tmp_path)
    pool = FramePoints(ds, frames=[1, 4, 5], points_per_frame=64, mode="band", threshold=0.2, seed=9,
                       cache_bytes=cache_bytes)
    assert pool.cached == bool(cache_bytes)
    pool.resample(3)
    seq, xyzt, values = pool.batch([5, 1])
    assert seq.tolist() == [1, 0] and xyzt.shape == (2, 64, 4) and values.shape == (2, 64)
    for row, (s, t) in enumerate([(1, 2), (0, 1)]):
        coords, expected = sample_frame(sdfs[s][t], 64, mode="band", threshold=0.2, rng=(9, 3, s * 3 + t))
        np.testing.assert_array_equal(xyzt[row, :, :3].numpy(), coords)
        np.testing.assert_array_equal(values[row].numpy(), expected)
        assert (xyzt[row, :, 3] == float(time_coords(3)[t])).all()
    before = pool.index.clone()
    pool.resample(4)
    assert not torch.equal(before, pool.index)
    assert pool.nbytes == 3 * 64 * 8 + (3 * 16**3 * 4 if cache_bytes else 0)


def facing_boxes(gap, size=24, side=8):
    """Two equal boxes facing each other across ``gap`` background voxels along axis 0; returns (mask, gap)."""
    mask = np.zeros((size,) * 3, dtype=bool)
    lo = (size - side) // 2
    first = lo - (gap + 1) // 2 - 4
    mask[first : first + 4, lo : lo + side, lo : lo + side] = True
    mask[first + 4 + gap : first + 8 + gap, lo : lo + side, lo : lo + side] = True
    between = np.zeros_like(mask)
    between[first + 4 : first + 4 + gap, lo : lo + side, lo : lo + side] = True
    return mask, between


@pytest.mark.parametrize("gap", [1, 2, 3, 4])
def test_gap_voxels_are_the_background_between_two_facing_surfaces(gap):
    mask, between = facing_boxes(gap)
    sdf = np.where(mask, -1.0, 1.0).astype(np.float32)
    np.testing.assert_array_equal(gap_voxels(sdf, radius=2), between)  # gaps up to 2 * radius voxels wide


def test_convex_cells_and_wide_gaps_have_no_gap_voxels():
    assert not gap_voxels(sphere_sdf(radius=8.0)).any()
    mask, _ = facing_boxes(6)
    assert not gap_voxels(np.where(mask, -1.0, 1.0), radius=2).any()
    assert gap_voxels(np.where(mask, -1.0, 1.0), radius=3).sum() == 6 * 8 * 8


def test_gap_points_come_from_the_gap_and_from_the_near_share():
    mask, between = facing_boxes(1)
    sdf, _ = sequence_to_sdf(mask[None], clamp=4.0)
    sdf = sdf[0]
    idx = sample_indices(sdf, 1000, near_fraction=0.7, threshold=0.2, mode="band", gap_fraction=0.2, rng=3)
    near = np.abs(sdf.ravel()[idx]) <= 0.2
    assert np.isin(idx[-200:], np.flatnonzero(between)).all()  # the gap points come last
    assert near[:500].all() and not near[500:800].any() and near.sum() == 700  # gap voxels are near too
    # No gap fraction: exactly the points of the rule without it (same seed, same stream).
    np.testing.assert_array_equal(
        sample_indices(sdf, 300, threshold=0.2, mode="band", gap_fraction=0.0, rng=4),
        sample_indices(sdf, 300, threshold=0.2, mode="band", rng=4),
    )
    # A frame without gap voxels draws its gap share from the band.
    sphere = sphere_sdf()
    np.testing.assert_array_equal(
        sample_indices(sphere, 300, mode="band", gap_fraction=0.3, rng=4),
        sample_indices(sphere, 300, mode="band", rng=4),
    )
    with pytest.raises(ValueError, match="gap_fraction"):
        sample_indices(sdf, 10, near_fraction=0.3, gap_fraction=0.4)
    with pytest.raises(ValueError, match="gap_radius"):
        sample_indices(sdf, 10, gap_fraction=0.1, gap_radius=0)


def test_pool_draws_gap_points_like_sample_frame(tmp_path):
    mask, between = facing_boxes(1, size=16, side=6)
    sdf, scale = sequence_to_sdf(np.stack([mask, np.roll(mask, 1, axis=2)]), clamp=4.0)
    write_sdf_h5(tmp_path / "pair.h5", sdf, record={"name": "pair", "scale": scale})
    pool = FramePoints(SDFDataset(tmp_path), points_per_frame=50, mode="band", threshold=0.2, gap_fraction=0.2,
                       seed=2)
    pool.resample(0)
    for f in (0, 1):
        coords, expected = sample_frame(sdf[f], 50, mode="band", threshold=0.2, gap_fraction=0.2, rng=(2, 0, f))
        np.testing.assert_array_equal(pool.batch([f])[2][0].numpy(), expected)
    gaps = [np.flatnonzero(between), np.flatnonzero(np.roll(between, 1, axis=2))]
    assert all(np.isin(pool.index[f, -10:].numpy(), gaps[f]).all() for f in (0, 1))
    assert pool.nbytes == 2 * 50 * 8 + 2 * sdf[0].size * 4 + sum(g.size * 4 for g in gaps)


def test_training_options_of_the_gap_rule_are_checked():
    assert TrainConfig().gap_fraction == 0.0 and TrainConfig().gap_radius == GAP_RADIUS
    with pytest.raises(ValueError, match="gap_fraction"):
        TrainConfig(near_fraction=0.5, gap_fraction=0.6)
    with pytest.raises(ValueError, match="gap_radius"):
        TrainConfig(gap_radius=0)
