"""Meshes of SDF frames: analytic sphere volumes and areas, closed cut shapes, volume curves."""

import numpy as np
import pytest

from cellnb.mesh import mesh_frame, volume_curve


def _sphere_sdf(shape, center, radius, spacing):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, center))) - radius


def test_mesh_of_a_sphere_has_its_volume_area_and_outward_faces():
    spacing, radius = (1.0, 0.5, 2.0), 11.7
    center = (31.0, 16.0, 30.0)
    mesh = mesh_frame(_sphere_sdf((64, 64, 32), center, radius, spacing), spacing=spacing)
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.015)
    assert mesh.area == pytest.approx(4 * np.pi * radius**2, rel=0.015)
    np.testing.assert_allclose(mesh.center, center, atol=0.05)
    normals = mesh.compute_normals(cell_normals=True, point_normals=False, auto_orient_normals=False)["Normals"]
    outward = np.einsum("ij,ij->i", mesh.cell_centers().points - np.array(center), normals)
    assert (outward > 0).all()


def test_mesh_of_a_cut_shape_is_closed_and_of_an_empty_frame_is_empty():
    half = mesh_frame(_sphere_sdf((32, 48, 48), (0.0, 24.0, 24.0), 15.0, (1, 1, 1)))
    assert half.n_open_edges == 0
    assert half.volume == pytest.approx(2 / 3 * np.pi * 15.0**3, rel=0.03)
    assert mesh_frame(np.ones((8, 8, 8), np.float32)).n_points == 0
    with pytest.raises(ValueError, match="3D frame"):
        mesh_frame(np.ones((2, 8, 8, 8)))


def test_volume_curve_matches_voxel_counts_and_analytic_volume():
    spacing = (0.5, 0.5, 0.5)
    radii = [6.0, 8.0, 10.0]
    seq = np.stack([_sphere_sdf((64, 64, 64), (16.0, 16.0, 16.0), r, spacing) for r in radii])
    volumes = volume_curve(seq, spacing=spacing)
    np.testing.assert_allclose(volumes, (seq < 0).sum(axis=(1, 2, 3)) * 0.125)
    np.testing.assert_allclose(volumes, [4 / 3 * np.pi * r**3 for r in radii], rtol=0.02)
    by_mesh = volume_curve(seq, spacing=spacing, method="mesh")
    np.testing.assert_allclose(by_mesh, [4 / 3 * np.pi * r**3 for r in radii], rtol=0.01)
    with pytest.raises(ValueError, match="unknown method"):
        volume_curve(seq, method="count")
