"""Shape descriptors checked against analytic geometry and scikit-image's regionprops."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import tifffile
from scipy.special import ellipeinc, ellipkinc
from skimage.measure import regionprops

from cellnb.descriptors import (
    DESCRIPTOR_COLUMNS,
    TABLE_COLUMNS,
    describe_frame,
    describe_path,
    describe_sequence,
)
from cellnb.io import write_ctc_masks, write_sdf_h5
from cellnb.sdf import component_counts, principal_axes, sequence_to_sdf

OFFSET = (0.31, -0.17, 0.23)  # voxels: keeps analytic shapes off the grid's symmetry planes


def ellipsoid(semi, *, spacing=(1.0, 1.0, 1.0), margin=6, rotation=None, center_shift=OFFSET):
    """Solid ellipsoid, physical semi-axes ``semi`` (along Z, Y, X before ``rotation``), sampled at voxel centres."""
    spacing = np.asarray(spacing, float)
    reach = np.max(semi) if rotation is not None else np.asarray(semi, float)
    shape = tuple(int(n) for n in np.ceil(2 * np.broadcast_to(reach, (3,)) / spacing) + 2 * margin)
    centre = (np.array(shape) - 1) / 2.0 + np.asarray(center_shift)
    points = (np.indices(shape).reshape(3, -1).T - centre) * spacing
    if rotation is not None:
        points = points @ rotation  # coordinates in the ellipsoid's own frame
    return ((points / np.asarray(semi, float)) ** 2).sum(axis=1).reshape(shape) <= 1.0


def ellipsoid_area(a, b, c):
    """Exact surface area of an ellipsoid with semi-axes a >= b >= c (Legendre's elliptic-integral form)."""
    a, b, c = sorted((a, b, c), reverse=True)
    if math.isclose(a, c):
        return 4 * math.pi * a**2
    phi = math.acos(c / a)
    m = (a**2 * (b**2 - c**2)) / (b**2 * (a**2 - c**2))
    s = math.sin(phi)
    integrals = ellipeinc(phi, m) * s**2 + ellipkinc(phi, m) * math.cos(phi) ** 2
    return 2 * math.pi * c**2 + 2 * math.pi * a * b / s * integrals


def rotation_matrix(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def ball(shape, centre, radius):
    points = np.indices(shape).reshape(3, -1).T - np.asarray(centre, float)
    return ((points**2).sum(axis=1) <= radius**2).reshape(shape)


def body_with_arms(k, *, size=64, radius=13.0, arm_radius=2.0, arm_length=12.0):
    """A ball with ``k`` straight cylindrical arms of ``arm_length`` voxels beyond its surface, along +-X, +-Y, +-Z."""
    rel = np.indices((size,) * 3).reshape(3, -1).T - (size - 1) / 2.0
    mask = (rel**2).sum(axis=1) <= radius**2
    for d in np.array([(0, 0, 1), (0, 0, -1), (0, 1, 0), (0, -1, 0), (1, 0, 0), (-1, 0, 0)], float)[:k]:
        along = rel @ d
        across = np.linalg.norm(rel - along[:, None] * d, axis=1)
        mask |= (along >= 0) & (along <= radius + arm_length) & (across <= arm_radius)
    return mask.reshape((size,) * 3)


# --- volume, area, sphericity --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("radius", "spacing"),
    [(20.0, (1.0, 1.0, 1.0)), (24.0, (1.0, 1.0, 1.0)), (30.0, (1.5, 1.0, 1.0)), (21.0, (0.7, 1.05, 1.0))],
)
def test_ball_volume_area_sphericity_within_2_percent(radius, spacing):
    # Physical radius; at least 20 voxels along every axis.
    assert min(radius / s for s in spacing) >= 20
    d = describe_frame(ellipsoid((radius,) * 3, spacing=spacing), spacing=spacing)
    assert d["volume"] == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.02)
    assert d["surface_area"] == pytest.approx(4 * math.pi * radius**2, rel=0.02)
    assert d["sphericity"] == pytest.approx(1.0, abs=0.02)
    assert d["equivalent_diameter"] == pytest.approx(2 * radius, rel=0.01)
    assert d["elongation"] == pytest.approx(1.0, abs=0.02)
    assert d["flatness"] == pytest.approx(1.0, abs=0.02)
    assert d["solidity"] == pytest.approx(1.0, abs=0.01)
    assert (d["n_components"], d["euler_characteristic"], d["n_protrusions"]) == (1, 1, 0)


@pytest.mark.parametrize("radius", [6.0, 10.0])
def test_small_balls_keep_their_area(radius):
    # The smoothing's curvature shrinkage (-6% of the area at radius 6 voxels) is added back.
    d = describe_frame(ellipsoid((radius,) * 3))
    assert d["volume"] == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.01)
    assert d["surface_area"] == pytest.approx(4 * math.pi * radius**2, rel=0.015)
    assert d["sphericity"] == pytest.approx(1.0, abs=0.02)


def test_area_correction_counts_each_closed_surface():
    shape = (24, 24, 48)
    two = ball(shape, (11.6, 11.3, 11.8), 8) | ball(shape, (11.6, 11.3, 35.8), 8)
    assert describe_frame(two)["surface_area"] == pytest.approx(2 * 4 * math.pi * 8**2, rel=0.015)


@pytest.mark.parametrize(
    ("semi", "spacing"),
    [((20.0, 26.0, 34.0), (1.0, 1.0, 1.0)), ((30.0, 44.0, 36.0), (1.5, 1.0, 1.0))],
)
def test_ellipsoid_volume_area_and_axis_ratios(semi, spacing):
    d = describe_frame(ellipsoid(semi, spacing=spacing), spacing=spacing)
    a, b, c = sorted(semi, reverse=True)
    assert d["volume"] == pytest.approx(4 / 3 * math.pi * a * b * c, rel=0.02)
    assert d["surface_area"] == pytest.approx(ellipsoid_area(a, b, c), rel=0.02)
    assert d["sphericity"] == pytest.approx(
        math.pi ** (1 / 3) * (6 * 4 / 3 * math.pi * a * b * c) ** (2 / 3) / ellipsoid_area(a, b, c), abs=0.02
    )
    assert d["elongation"] == pytest.approx(b / a, rel=0.03)
    assert d["flatness"] == pytest.approx(c / b, rel=0.03)


def test_rotated_ellipsoid_axes_follow_the_shape():
    # Seeded random rotation (seed 5): axis lengths and their directions do not depend on the grid axes.
    rotation = rotation_matrix(np.random.default_rng(5))
    semi = (12.0, 18.0, 26.0)
    mask = ellipsoid(semi, rotation=rotation)
    _, lengths, axes = principal_axes(mask)
    np.testing.assert_allclose(lengths, 2 * np.array([26.0, 18.0, 12.0]), rtol=0.03)
    # The longest axis is the ellipsoid's own third axis, rotated into grid coordinates.
    assert abs(axes[:, 0] @ rotation[:, 2]) == pytest.approx(1.0, abs=1e-3)
    d = describe_frame(mask)
    assert d["elongation"] == pytest.approx(18 / 26, rel=0.03)
    assert d["flatness"] == pytest.approx(12 / 18, rel=0.03)


def test_descriptors_do_not_depend_on_position():
    shape = (48, 48, 48)
    a = describe_frame(ball(shape, (20.3, 22.0, 19.6), 11))
    b = describe_frame(ball(shape, (27.3, 25.0, 24.6), 11))  # translated by whole voxels
    for name in DESCRIPTOR_COLUMNS:
        assert a[name] == pytest.approx(b[name], rel=1e-6), name


def test_cell_cut_by_the_grid_border_gets_a_closed_surface():
    # Half a ball whose flat face lies on the grid's outer voxel boundary: area = 2 pi r^2 + pi r^2.
    r = 20.0
    half = ball((24, 48, 48), (-0.5, 23.7, 24.2), r)
    d = describe_frame(half)
    assert d["volume"] == pytest.approx(2 / 3 * math.pi * r**3, rel=0.02)
    # Without the flat face (an open mesh) the area would be 2 pi r^2, a third less.  The smoothing
    # rounds the sharp rim, which costs about one voxel^2 per voxel of rim length (-3.4% here).
    assert d["surface_area"] == pytest.approx(3 * math.pi * r**2, rel=0.05)


# --- cross-check with scikit-image regionprops -----------------------------------------------------


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.8, 1.1)])
@pytest.mark.parametrize("shape", ["ellipsoid", "arms"])
def test_volume_centroid_and_axes_match_regionprops(shape, spacing):
    if shape == "ellipsoid":
        mask = ellipsoid((16.0, 22.0, 28.0), spacing=spacing, margin=3)
    else:
        mask = body_with_arms(3, size=48, radius=10)
    props = regionprops(mask.astype(np.uint8), spacing=spacing)[0]
    centroid, lengths, _ = principal_axes(mask, spacing=spacing)
    np.testing.assert_allclose(centroid, props.centroid, rtol=1e-9)
    # regionprops' inertia tensor eigenvalues ev (descending) give the axis lengths sqrt(10 (ev_i + ev_j - ev_k)).
    ev = props.inertia_tensor_eigvals
    mid = math.sqrt(10 * (ev[0] - ev[1] + ev[2]))
    np.testing.assert_allclose(lengths, [props.axis_major_length, mid, props.axis_minor_length], rtol=1e-6)
    assert describe_frame(mask, spacing=spacing)["volume"] == pytest.approx(props.area, rel=1e-12)


# --- topology ---------------------------------------------------------------------------------------


def test_touching_and_separated_balls():
    shape = (40, 40, 64)
    # Centres 20 voxels apart along X, radius 10: the balls share the voxels of the plane between them.
    touching = ball(shape, (20, 20, 22), 10) | ball(shape, (20, 20, 42), 10)
    separated = ball(shape, (20, 20, 18), 10) | ball(shape, (20, 20, 46), 10)
    np.testing.assert_array_equal(component_counts(np.stack([touching, separated])), [1, 2])
    a, b = describe_frame(touching), describe_frame(separated)
    assert (a["n_components"], a["euler_characteristic"]) == (1, 1)
    assert (b["n_components"], b["euler_characteristic"]) == (2, 2)
    assert b["volume"] == pytest.approx(2 * 4 / 3 * math.pi * 10**3, rel=0.03)


def test_diagonal_neighbours_are_one_component():
    mask = np.zeros((5, 5, 5), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # 26-connected through a corner only
    assert component_counts(mask).tolist() == [1]


def test_solid_torus_has_euler_characteristic_zero():
    big, small = 16.0, 6.0
    rel = np.indices((24, 48, 48)).reshape(3, -1).T - np.array([11.7, 23.6, 23.3])
    ring = np.hypot(rel[:, 1], rel[:, 2]) - big
    torus = (ring**2 + rel[:, 0] ** 2 <= small**2).reshape(24, 48, 48)
    d = describe_frame(torus)
    assert (d["n_components"], d["euler_characteristic"]) == (1, 0)
    assert d["volume"] == pytest.approx(2 * math.pi**2 * big * small**2, rel=0.02)
    assert d["solidity"] < 0.7  # the hole is inside the hull


def test_hollow_ball_has_euler_characteristic_two():
    shape = (40, 40, 40)
    shell = ball(shape, (19.6, 19.7, 19.4), 15) & ~ball(shape, (19.6, 19.7, 19.4), 9)
    assert describe_frame(shell)["euler_characteristic"] == 2


# --- protrusions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [63, 64])  # arms 5 voxels wide (skeleton) and 4 wide (skeleton empty, reach used)
@pytest.mark.parametrize("k", [0, 2, 4])
def test_protrusion_count_and_length(k, size):
    arm_length = 12.0
    d = describe_frame(body_with_arms(k, size=size, arm_length=arm_length))
    assert d["n_protrusions"] == k
    # The skeleton of a cut-off arm stops short of its ends by about the arm radius (2 voxels).
    assert k * 0.6 * arm_length <= d["protrusion_length"] <= k * 1.1 * arm_length
    assert d["n_components"] == 1


def test_protrusion_length_scales_with_spacing():
    mask = body_with_arms(2)
    iso = describe_frame(mask)
    scaled = describe_frame(mask, spacing=(0.5, 0.5, 0.5))
    assert scaled["n_protrusions"] == iso["n_protrusions"] == 2
    assert scaled["protrusion_length"] == pytest.approx(0.5 * iso["protrusion_length"], rel=1e-6)
    assert scaled["surface_area"] == pytest.approx(0.25 * iso["surface_area"], rel=1e-5)


def test_smooth_shapes_have_no_protrusions():
    shape = (48, 48, 80)
    dividing = ball(shape, (23.6, 23.4, 26.0), 13) | ball(shape, (23.6, 23.4, 50.0), 13)  # joined by a neck
    assert component_counts(dividing).tolist() == [1]
    assert describe_frame(dividing)["n_protrusions"] == 0
    assert describe_frame(ellipsoid((12.0, 16.0, 28.0)))["n_protrusions"] == 0


# --- empty frames and sequences ---------------------------------------------------------------------


def test_empty_frame_is_nan_with_a_warning():
    with pytest.warns(RuntimeWarning, match="empty frame"):
        d = describe_frame(np.zeros((16, 16, 16), bool))
    assert d["n_components"] == 0
    assert all(math.isnan(d[name]) for name in DESCRIPTOR_COLUMNS if name != "n_components")


def test_describe_sequence_table():
    shape = (32, 32, 32)
    masks = np.stack([ball(shape, (15.6, 15.4, 15.7), r) for r in (6, 8, 10)] + [np.zeros(shape, bool)])
    with pytest.warns(RuntimeWarning, match="frame 3"):
        table = describe_sequence(masks, spacing=(2.0, 2.0, 2.0), name="grow")
    assert list(table.columns) == TABLE_COLUMNS
    assert table["sequence"].tolist() == ["grow"] * 4
    np.testing.assert_allclose(table["t"], np.linspace(-1, 1, 4))
    assert table["volume"].iloc[:3].is_monotonic_increasing
    assert table["volume"].iloc[2] == pytest.approx(4 / 3 * math.pi * 20.0**3, rel=0.05)  # radius 10 voxels * 2
    assert np.isnan(table["volume"].iloc[3]) and table["n_components"].iloc[3] == 0


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match="spacing"):
        describe_frame(np.ones((4, 4, 4), bool), spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="3D frame"):
        describe_frame(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="masks"):
        describe_sequence(np.ones((4, 4, 4), bool))


# --- describe_path ------------------------------------------------------------------------------------


@pytest.fixture
def grown():
    """Three frames of a growing ball, (3, 32, 32, 32) bool."""
    shape = (32, 32, 32)
    return np.stack([ball(shape, (15.6, 15.4, 15.7), r) for r in (6, 8, 10)])


def test_describe_path_tiff_folder(tmp_path, grown):
    write_ctc_masks(tmp_path / "cell01", grown.astype(np.uint16) * 3)  # labels: any non-zero value is the cell
    (tmp_path / "cell01" / "README.txt").write_text("skipped with a warning, not read as a mask")
    table = describe_path(tmp_path / "cell01")
    assert "spacing_note" in table.attrs
    expected = describe_sequence(grown, name="cell01")
    np.testing.assert_allclose(table[DESCRIPTOR_COLUMNS].to_numpy(float), expected[DESCRIPTOR_COLUMNS].to_numpy(float))
    assert table["sequence"].unique().tolist() == ["cell01"]

    given = describe_path(tmp_path / "cell01", spacing=(2.0, 1.0, 1.0))
    assert "spacing_note" not in given.attrs
    np.testing.assert_allclose(given["volume"], 2 * table["volume"])


def test_describe_path_multiframe_tiff_h5_and_mixed_folder(tmp_path, grown, caplog):
    tifffile.imwrite(tmp_path / "stack.tif", grown.astype(np.uint8))
    stack = describe_path(tmp_path / "stack.tif")
    assert stack["sequence"].tolist() == ["stack"] * 3

    small = grown[:, ::2, ::2, ::2]  # another grid size: 16^3 with 2x the voxel size
    sdf, _ = sequence_to_sdf(small)
    write_sdf_h5(tmp_path / "cellA.h5", sdf, record={"name": "cellA", "spacing": [2.0, 2.0, 2.0]})
    h5 = describe_path(tmp_path / "cellA.h5")
    assert "spacing_note" not in h5.attrs
    assert h5["sequence"].tolist() == ["cellA"] * 3
    np.testing.assert_allclose(h5["volume"], 8 * small.reshape(3, -1).sum(axis=1))
    # Physical sizes agree across the two grids (the coarse one to within its resolution).
    np.testing.assert_allclose(h5["volume"], stack["volume"], rtol=0.35)

    write_ctc_masks(tmp_path / "frames", grown)
    (tmp_path / "dataset.json").write_text("{}")  # what `cellnb prepare` writes beside its files: skipped quietly
    (tmp_path / "notes.txt").write_text("not a mask")  # anything else: skipped with a warning
    with caplog.at_level(logging.WARNING, logger="cellnb.descriptors"):
        table = describe_path(tmp_path)
    assert "notes.txt" in caplog.text and "dataset.json" not in caplog.text
    assert sorted(table["sequence"].unique()) == ["cellA", "frames", "stack"]
    assert len(table) == 9
    assert "stack" in table.attrs["spacing_note"] and "cellA" not in table.attrs["spacing_note"]


def test_describe_path_rejects_files_that_are_not_masks(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a mask")
    with pytest.raises(ValueError, match="notes.txt"):
        describe_path(notes)
    bad_tiff = tmp_path / "broken.tif"
    bad_tiff.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="broken.tif"):
        describe_path(bad_tiff)
    bad_h5 = tmp_path / "broken.h5"
    bad_h5.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="broken.h5"):
        describe_path(bad_h5)
    with pytest.raises(FileNotFoundError):
        describe_path(tmp_path / "missing")
