"""cellnb.sdf against analytic distances and the official conventions."""

import numpy as np
import pytest
from conftest import ball

from cellnb import sdf as S
from cellnb.sequence import MaskSequence


def analytic_ball_distance(shape, center, radius, spacing=(1.0, 1.0, 1.0)):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing))) - radius


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0)])
def test_ball_sdf_matches_analytic_distance_near_surface(spacing):
    shape, center, radius = (40, 48, 48), (20, 24, 24), 14.0
    mask = ball(shape, center, radius, spacing)
    d = S.signed_distance(mask, spacing=spacing)
    truth = analytic_ball_distance(shape, center, radius, spacing)
    near = np.abs(truth) < 3 * max(spacing)
    assert np.max(np.abs(d[near] - truth[near])) <= max(spacing)  # within one voxel
    assert np.all(d[mask] < 0) and np.all(d[~mask] > 0)  # negative inside


def test_sdf_mask_round_trip_is_exact_and_stable():
    masks = np.stack([ball((32, 32, 32), (16, 16, 16), r) for r in (6, 8, 10)])
    sdf, scale = S.sequence_to_sdf(masks)
    assert sdf.dtype == np.float32 and np.abs(sdf).max() == pytest.approx(1.0)
    assert np.array_equal(S.sdf_to_mask(sdf), masks)
    sdf2, scale2 = S.sequence_to_sdf(S.sdf_to_mask(sdf))
    assert np.array_equal(sdf, sdf2) and scale == scale2


def test_clamp_limits_outside_distance():
    masks = ball((64, 64, 64), (32, 32, 32), 5)[None]
    sdf, scale = S.sequence_to_sdf(masks, clamp=8.0)
    assert (sdf * scale).max() == pytest.approx(8.0)
    assert S.default_clamp(256) == 32.0 and S.default_clamp(64) == 8.0


def test_grid_and_time_coordinates_follow_official_mapping():
    coords = S.grid_coords((3, 4, 5))
    assert coords.shape == (60, 3)
    # row k is voxel np.unravel_index(k) in C order; c_i = linspace(-1, 1, D_i)[index_i]
    k = 37
    idx = np.unravel_index(k, (3, 4, 5))
    expected = [np.linspace(-1, 1, n)[i] for n, i in zip((3, 4, 5), idx)]
    assert np.allclose(coords[k], expected)
    assert np.allclose(S.time_coords(5), np.linspace(-1, 1, 5))


def test_largest_component_keeps_the_bigger_ball():
    m = ball((32, 32, 32), (10, 16, 16), 6) | ball((32, 32, 32), (25, 16, 16), 3)
    kept = S.largest_component(m)
    assert kept.sum() == ball((32, 32, 32), (10, 16, 16), 6).sum()


def test_crop_to_cube_centres_and_scales():
    mask = ball((60, 80, 100), (30, 40, 70), 9, spacing=(2.0, 1.0, 1.0))
    seq = MaskSequence(np.stack([mask, mask]), spacing=(2.0, 1.0, 1.0))
    cube = S.crop_to_cube(seq, 32, margin=0.15)
    assert cube.masks.shape == (2, 32, 32, 32)
    step = cube.spacing[0]
    # physical volume is preserved (within the staircase error of a small ball)
    v_in = mask.sum() * 2.0
    v_out = cube.masks[0].sum() * step**3
    assert v_out == pytest.approx(v_in, rel=0.06)
    # centred: centroid in the middle of the cube, not touching the border
    c = np.array(np.nonzero(cube.masks[0])).mean(axis=1)
    assert np.allclose(c, 15.5, atol=0.6)
    assert not cube.masks[0][[0, -1]].any()


def test_bad_input_errors():
    with pytest.raises(ValueError, match="no surface"):
        S.signed_distance(np.zeros((8, 8, 8), bool))
    with pytest.raises(ValueError, match="frame 1"):
        S.sequence_to_sdf(np.stack([ball((8, 8, 8), (4, 4, 4), 2), np.zeros((8, 8, 8), bool)]))
    with pytest.raises(ValueError, match="spacing"):
        MaskSequence(np.zeros((1, 4, 4, 4), bool), spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="size"):
        S.crop_to_cube(MaskSequence(ball((16, 16, 16), (8, 8, 8), 3)[None]), 4)


def test_overlap_scores_on_known_sets():
    a = np.zeros(10, bool)
    b = np.zeros(10, bool)
    a[:4], b[2:6] = True, True  # |A| = |B| = 4, |A∩B| = 2, |A∪B| = 6
    assert S.dice(a, b) == pytest.approx(0.5) and S.iou(a, b) == pytest.approx(2 / 6)
    assert S.dice(a, a) == 1.0 and S.iou(a, ~a) == 0.0
    assert S.dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        S.iou(a, b[:5])


def _ellipsoid(shape, center, radii, rotation, spacing=(1.0, 1.0, 1.0)):
    grids = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), -1)
    local = (grids - np.asarray(center)) @ rotation  # coordinates along the ellipsoid's axes
    return ((local / np.asarray(radii)) ** 2).sum(-1) <= 1.0


def test_canonical_pose_undoes_a_rotation():
    """An egg shape and a rotated copy come out the same in the canonical pose; its axes are the egg's."""
    from scipy.spatial.transform import Rotation

    turn = Rotation.from_euler("zyx", [35, -50, 20], degrees=True).as_matrix()
    def egg(rotation):
        body = _ellipsoid((56, 56, 56), (28, 28, 28), (18, 10, 7), rotation)
        tip = _ellipsoid((56, 56, 56), np.array([28, 28, 28]) + rotation @ [14, 0, 0], (8, 6, 5), rotation)
        return body | tip  # one end heavier: the third moment fixes the sign of the long axis
    plain, turned = (S.crop_to_cube(MaskSequence(egg(r)[None]), 32, align=True) for r in (np.eye(3), turn))
    assert S.iou(plain.masks, turned.masks) > 0.9
    axes = np.array(turned.meta["rotation"])  # rows: the cube's axes in the source frame
    np.testing.assert_allclose(np.abs(axes @ turn[:, 0]), [1, 0, 0], atol=0.05)  # longest first
    assert np.linalg.det(axes) == pytest.approx(1.0)
    lengths = [np.ptp(np.nonzero(plain.masks[0].any(axis=tuple(a for a in range(3) if a != k)))[0]) for k in range(3)]
    assert lengths[0] > lengths[1] > lengths[2]


def test_turning_a_canonical_crop_by_its_recorded_rotation_restores_the_source_pose():
    """crop_to_cube(align) records the rotation; rotate_sdf with it turns the canonical shape back."""
    from scipy.spatial.transform import Rotation

    turn = Rotation.from_euler("zyx", [35, -50, 20], degrees=True).as_matrix()
    source = _ellipsoid((48, 48, 48), (24, 24, 24), (16, 9, 6), turn)
    plain = S.crop_to_cube(MaskSequence(source[None]), 48, margin=0.1)  # the source pose
    canonical = S.crop_to_cube(MaskSequence(source[None]), 48, margin=0.1, align=True)
    back = S.rotate_sdf(S.signed_distance(canonical.masks[0]), canonical.meta["rotation"]) < 0
    _, lengths, axes = S.principal_axes(back)
    np.testing.assert_allclose(np.abs(np.sum(axes * turn, axis=0)), 1.0, atol=0.02)  # the ellipsoid's axes again
    assert lengths[0] / lengths[2] == pytest.approx(16 / 6, rel=0.1)
    _, _, canonical_axes = S.principal_axes(canonical.masks[0])
    np.testing.assert_allclose(np.abs(np.diag(canonical_axes)), 1.0, atol=0.02)  # before: along the array axes
    sdf = S.signed_distance(plain.masks[0])
    there_and_back = S.rotate_sdf(S.rotate_sdf(sdf, turn), turn.T)
    assert S.iou(there_and_back < 0, plain.masks[0]) > 0.95
    np.testing.assert_array_equal(S.rotate_sdf(sdf, np.eye(3)), sdf)
    assert S.rotate_sdf(np.stack([sdf, sdf]), turn).shape == (2, 48, 48, 48)
    with pytest.raises(ValueError, match="orthonormal"):
        S.rotate_sdf(sdf, 2 * np.eye(3))


def test_crop_without_alignment_is_the_bounding_box_crop():
    mask = np.zeros((1, 30, 20, 10), bool)
    mask[0, 5:25, 4:16, 2:8] = True
    seq = S.crop_to_cube(MaskSequence(mask, spacing=(0.5, 1.0, 2.0)), 16, margin=0.0)
    assert "rotation" not in seq.meta and seq.spacing == pytest.approx((12 / 16,) * 3)  # 12 um: the Y and X extent


def test_time_resampling_moves_a_surface_smoothly_and_keeps_the_ends():
    """A ball growing linearly in radius: linear interpolation of the distances gives the radius between."""
    from conftest import ball

    radii = [4.0, 8.0, 12.0]
    masks = np.stack([ball((32, 32, 32), (15.5, 15.5, 15.5), r) for r in radii])
    five = S.resample_time(masks, 5)
    np.testing.assert_array_equal(five[0], masks[0])
    np.testing.assert_array_equal(five[-1], masks[-1])
    np.testing.assert_array_equal(five[2], masks[1])
    middle = five[1].sum()  # radius 6: between balls of 5.5 and 6.5
    assert ball((32, 32, 32), (15.5,) * 3, 5.5).sum() < middle < ball((32, 32, 32), (15.5,) * 3, 6.5).sum()
    assert S.resample_time(masks, 1).sum() == masks[1].sum()
    with pytest.raises(ValueError, match="frames must be"):
        S.resample_time(masks, 0)
    empty = masks.copy()
    empty[1] = False
    with pytest.raises(ValueError, match="frame 1: mask has no surface"):
        S.resample_time(empty, 4)
