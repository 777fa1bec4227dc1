"""cellnb.io: file round trips, the official layout, atomic and safe writes."""


import h5py
import numpy as np
import pytest
import tifffile
import torch

from cellnb import io


def test_sdf_file_is_read_by_the_official_expression(tmp_path):
    rng = np.random.default_rng(0)
    sdf = rng.uniform(-1, 1, size=(3, 5, 6, 7)).astype(np.float32)
    path = io.write_sdf_h5(tmp_path / "a.h5", sdf, record={"name": "a", "scale": 2.5})
    with h5py.File(path, "r") as f:
        official = np.asarray(f["sdf_vid"]).transpose(3, 2, 1, 0)  # the official reader
        assert f["sdf_vid"].chunks == (7, 6, 5, 1)  # one chunk per frame
    assert np.array_equal(official, sdf)
    back, record = io.read_sdf_h5(path)
    assert np.array_equal(back, sdf) and record == {"name": "a", "scale": 2.5}
    assert np.array_equal(io.read_sdf_frame(path, 1), sdf[1])
    assert io.sdf_h5_info(path) == (3, (5, 6, 7), record)


def test_official_file_without_record_reads(tmp_path):
    sdf = np.zeros((2, 4, 4, 4), np.float32)
    with h5py.File(tmp_path / "off.h5", "w") as f:
        f.create_dataset("sdf_vid", data=sdf.transpose(3, 2, 1, 0))
    back, record = io.read_sdf_h5(tmp_path / "off.h5")
    assert back.shape == (2, 4, 4, 4) and record == {}


def test_writers_refuse_to_overwrite_and_leave_nothing_partial(tmp_path):
    sdf = np.zeros((1, 4, 4, 4), np.float32)
    path = io.write_sdf_h5(tmp_path / "a.h5", sdf)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        io.write_sdf_h5(path, sdf + 1)
    with pytest.raises(ValueError, match="NaN"):
        io.write_sdf_h5(tmp_path / "b.h5", np.full((1, 4, 4, 4), np.nan, np.float32))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]  # no temporary or partial files


def test_tiff_folder_and_stack_round_trip(tmp_path):
    labels = np.zeros((3, 4, 5, 6), np.uint16)
    labels[:, 1:3, 1:4, 2:5] = 2
    labels[1, 0, 0, 0] = 7
    paths = io.write_ctc_masks(tmp_path / "seq", labels)
    assert [p.name for p in paths] == ["mask000.tif", "mask001.tif", "mask002.tif"]
    assert np.array_equal(io.read_mask_stack(tmp_path / "seq"), labels)
    tifffile.imwrite(tmp_path / "stack.tif", labels, photometric="minisblack")
    assert np.array_equal(io.read_mask_stack(tmp_path / "stack.tif"), labels)
    with pytest.raises(FileExistsError):
        io.write_ctc_masks(tmp_path / "seq", labels)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .tif"):
        io.read_mask_stack(tmp_path / "empty")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="not a readable TIFF"):
        io.read_mask_stack(tmp_path / "junk.tif")


class Payload:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_checkpoint_round_trip_and_refusals(tmp_path):
    ckpt = {"epoch": 3, "weights": torch.arange(4.0), "config": {"dims": [8, 8]}}
    path = io.save_checkpoint(tmp_path / "latest.pt", ckpt)
    back = io.load_checkpoint(path)
    assert back["epoch"] == 3 and torch.equal(back["weights"], ckpt["weights"])
    # a pickle that contains code is refused by weights_only loading
    evil = tmp_path / "evil.pt"
    torch.save({"payload": Payload()}, evil)
    with pytest.raises(ValueError, match="weights_only"):
        io.load_checkpoint(evil)
    # a truncated file is reported as such
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="truncated"):
        io.load_checkpoint(trunc)
    with pytest.raises(FileNotFoundError, match="train first"):
        io.load_checkpoint(tmp_path / "missing.pt")


def test_mesh_writer_checks_suffix(tmp_path):
    pv = pytest.importorskip("pyvista")
    path = io.write_mesh(tmp_path / "s.ply", pv.Sphere())
    assert pv.read(path).n_points == pv.Sphere().n_points
    with pytest.raises(ValueError, match="must end in"):
        io.write_mesh(tmp_path / "s.txt", pv.Sphere())


def test_voxel_size_from_imagej_and_ome_metadata(tmp_path):
    import tifffile

    labels = np.zeros((3, 4, 5, 6), np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", labels, imagej=True, resolution=(1 / 0.2, 1 / 0.25),
                     metadata={"spacing": 1.5, "unit": "um", "axes": "TZYX"})
    assert io.tiff_spacing(tmp_path / "ij.tif") == pytest.approx((1.5, 0.25, 0.2))
    tifffile.imwrite(tmp_path / "ome.ome.tif", labels, ome=True,
                     metadata={"axes": "TZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeY": 0.5, "PhysicalSizeX": 0.4,
                               "PhysicalSizeZUnit": "µm"})
    assert io.tiff_spacing(tmp_path / "ome.ome.tif") == pytest.approx((2.0, 0.5, 0.4))
    tifffile.imwrite(tmp_path / "plain.tif", labels, photometric="minisblack")
    assert io.tiff_spacing(tmp_path / "plain.tif") is None
    stack, spacing = io.read_label_stack(tmp_path / "ij.tif")
    assert stack.shape == (3, 4, 5, 6) and spacing == pytest.approx((1.5, 0.25, 0.2))


def test_axis_order_override_and_bad_axes(tmp_path):
    import tifffile

    truth = np.random.default_rng(0).integers(0, 3, (3, 4, 5, 6)).astype(np.uint16)  # (T, Z, Y, X)
    tifffile.imwrite(tmp_path / "zt.tif", truth.transpose(1, 0, 2, 3), photometric="minisblack")  # stored Z, T, Y, X
    stack, _ = io.read_label_stack(tmp_path / "zt.tif", axes="ZTYX")
    np.testing.assert_array_equal(stack, truth)
    one, _ = io.read_label_stack(tmp_path / "zt.tif", axes="TZYX")
    assert one.shape == (4, 3, 5, 6)
    with pytest.raises(ValueError, match="axes 'TYX' do not fit"):
        io.read_label_stack(tmp_path / "zt.tif", axes="TYX")
    with pytest.raises(ValueError, match="give one letter of TZYX per dimension"):
        io.read_label_stack(tmp_path / "zt.tif", axes="TCYX")
    tifffile.imwrite(tmp_path / "movie2d.tif", truth[:, 0], photometric="minisblack")
    with pytest.raises(ValueError, match="no Z axis .* a 2D time-lapse given as 3D"):
        io.read_label_stack(tmp_path / "movie2d.tif", axes="TYX")
