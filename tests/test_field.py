"""Field evaluation: dense vs per-point vs narrow band, coordinates, bad input.

Truth comes from outside the code under test: analytic SDFs (two spheres that
separate over time), the per-point ``Decoder.forward`` route, a tiny decoder
trained here on the analytic shapes.
"""

import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from cellnb.field import (
    MIN_GRID_SIZE,
    compare_methods,
    default_coarse,
    evaluate,
    evaluate_dense,
    evaluate_narrow_band,
)
from cellnb.model import Decoder, DecoderConfig
from cellnb.sdf import grid_axes, grid_coords, time_coords

CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def two_spheres(xyzt, offset, radius):
    """SDF of two spheres of ``radius`` at ``c0 = +-offset * (t + 1) / 2`` (touching at t = -1)."""
    sep = offset * (xyzt[..., 3] + 1) / 2
    lateral = xyzt[..., 1] ** 2 + xyzt[..., 2] ** 2
    d1 = ((xyzt[..., 0] - sep) ** 2 + lateral) ** 0.5 - radius
    d2 = ((xyzt[..., 0] + sep) ** 2 + lateral) ** 0.5 - radius
    return np.minimum(d1, d2) if isinstance(d1, np.ndarray) else torch.minimum(d1, d2)


class TwoSpheres(nn.Module):
    """An analytic "decoder" with the Decoder interface; code = (offset, radius), exact SDF (slope 1)."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device
        self.config = SimpleNamespace(code_length=2, dims=(8,))

    def forward_grouped(self, codes, xyzt):
        return two_spheres(xyzt, codes[:, 0, None], codes[:, 1, None]) + 0 * self.anchor


TINY = DecoderConfig(code_length=8, dims=(64, 64, 64), latent_in=(2,), xyz_in_all=False)
TINY_PARAMS = [(0.6, 0.3), (0.45, 0.33), (0.7, 0.27), (0.5, 0.3)]
TINY_CLAMP, TINY_SCALE = 0.25, 4.0  # clamp (network units) and factor of the training targets


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a small shared CPU, two threads spin against other jobs (5x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_tiny(params=TINY_PARAMS, *, steps=100, points=2000, seed=0):
    """A tiny auto-decoder fitted to analytic two-sphere sequences (one code per parameter pair).

    Targets are ``min(SDF, TINY_CLAMP) * TINY_SCALE`` at uniform points in
    [-1, 1]^4: a clamped, rescaled SDF like the training data.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    decoder = Decoder(TINY)
    codes = nn.Parameter(torch.randn(len(params), TINY.code_length) * 0.01)
    optimizer = torch.optim.Adam([*decoder.parameters(), codes], lr=1e-3)
    for _ in range(steps):
        xyzt = rng.uniform(-1, 1, (len(params), points, 4)).astype(np.float32)
        target = np.stack([np.minimum(two_spheres(xyzt[i], *p), TINY_CLAMP) * TINY_SCALE for i, p in enumerate(params)])
        loss = (decoder.forward_grouped(codes, torch.from_numpy(xyzt)) - torch.from_numpy(target)).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    decoder.eval()
    return decoder, codes.detach()


@pytest.fixture(scope="module")
def tiny():
    return train_tiny()


def components(masks):
    return [ndimage.label(m, structure=CONNECTIVITY)[1] for m in masks]


def test_dense_matches_analytic_sdf_with_axis_conventions():
    shape, times = (9, 12, 15), [-1.0, 0.25, 1.0]
    sdf = evaluate_dense(TwoSpheres(), torch.tensor([0.5, 0.3]), shape=shape, times=times)
    c0, c1, c2 = np.meshgrid(*grid_axes(shape), indexing="ij")
    for k, t in enumerate(times):
        xyzt = np.stack([c0, c1, c2, np.full_like(c0, t)], axis=-1)
        np.testing.assert_allclose(sdf[k], two_spheres(xyzt, 0.5, 0.3), atol=1e-6)
    assert sdf.dtype == np.float32 and sdf.shape == (3, *shape)


def test_folded_code_equals_per_point_forward():
    torch.manual_seed(1)
    config = DecoderConfig(code_length=16, dims=(32, 48, 32, 40, 32), latent_in=(2, 4), xyz_in_all=True)
    decoder = Decoder(config)
    code = torch.randn(16) * 0.5
    shape, times = (8, 10, 9), time_coords(3)
    sdf = evaluate_dense(decoder, code, shape=shape, times=times, chunk_points=100)
    coords = torch.from_numpy(grid_coords(shape))
    for k, t in enumerate(times):
        xyzt = torch.cat([coords, torch.full((len(coords), 1), float(t))], dim=1)
        with torch.no_grad():
            ref = decoder(code.expand(len(coords), -1), xyzt)[:, 0].numpy()
        np.testing.assert_allclose(sdf[k].ravel(), ref, atol=1e-5)


def test_chunk_size_does_not_change_values(tiny):
    decoder, codes = tiny
    whole = evaluate_dense(decoder, codes[0], shape=12, times=[0.0])
    chunked = evaluate_dense(decoder, codes[0], shape=12, times=[0.0], chunk_points=77)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    narrow, _ = evaluate_narrow_band(decoder, codes[0], shape=24, times=[0.0], chunk_points=333)
    narrow_whole, _ = evaluate_narrow_band(decoder, codes[0], shape=24, times=[0.0])
    np.testing.assert_allclose(narrow, narrow_whole, atol=1e-6)


def test_any_time_sampling_and_grid_size_from_one_code(tiny):
    decoder, codes = tiny
    coarse = evaluate_dense(decoder, codes[1], shape=9, times=time_coords(5))
    fine = evaluate_dense(decoder, codes[1], shape=17, times=time_coords(9))
    # Frame k of 5 is frame 2k of 9; voxel i of 9 is voxel 2i of 17 (same network coordinates).
    np.testing.assert_allclose(fine[::2, ::2, ::2, ::2], coarse, atol=1e-5)


@pytest.mark.parametrize("size", [64, 128])
def test_narrow_band_equals_dense_on_analytic_field(size):
    decoder, code, times = TwoSpheres(), torch.tensor([0.6, 0.3]), [-1.0, -0.2, 1.0]
    dense = evaluate_dense(decoder, code, shape=size, times=times)
    narrow, n_eval = evaluate_narrow_band(decoder, code, shape=size, times=times)
    np.testing.assert_array_equal(narrow < 0, dense < 0)
    assert components(narrow < 0) == components(dense < 0) == [1, 1, 2]
    assert dense.size / n_eval >= (12 if size == 64 else 30)  # measured 15.9 and 39.7
    # Near the surface the values are the network's own, not interpolated.
    near = np.abs(dense) < 2.0 / size
    np.testing.assert_allclose(narrow[near], dense[near], atol=1e-6)


@pytest.mark.parametrize("size", [64, 128])
def test_narrow_band_equals_dense_on_trained_field(tiny, size):
    decoder, codes = tiny
    times = [-1.0, 1.0]  # one cell, then two
    dense = evaluate_dense(decoder, codes[0], shape=size, times=times)
    narrow, n_eval = evaluate_narrow_band(decoder, codes[0], shape=size, times=times)
    np.testing.assert_array_equal(narrow < 0, dense < 0)
    assert components(narrow < 0) == components(dense < 0)
    assert components(dense < 0)[-1] == 2, "the tiny model should have learned the division"
    assert dense.size / n_eval >= (10 if size == 64 else 25)  # measured 14.9 and 36.3
    near = np.abs(dense) < 2.0 / size
    np.testing.assert_allclose(narrow[near], dense[near], atol=1e-6)


@pytest.mark.parametrize("shape", [(40, 48, 57), (33, 64, 50)])
def test_narrow_band_equals_dense_on_uneven_grids(tiny, shape):
    # sides that are not 2^k + 1 or 2^k: the last cell of a level is narrower than the others
    decoder, codes = tiny
    times = [-1.0, 0.3, 1.0]
    for dec, code in [(TwoSpheres(), torch.tensor([0.6, 0.3])), (decoder, codes[1])]:
        dense = evaluate_dense(dec, code, shape=shape, times=times)
        narrow, n_eval = evaluate_narrow_band(dec, code, shape=shape, times=times, coarse=4)
        np.testing.assert_array_equal(narrow < 0, dense < 0)
        assert n_eval < dense.size / 3


@pytest.mark.parametrize("shape", [(9, 9, 9), (8, 11, 10)])
def test_filling_between_nodes_is_trilinear_whatever_the_frame_held(shape):
    """Bug: the filling summed lanes of a frame made by np.empty (inf bits: 'invalid value' warnings).

    A linear function is reproduced exactly by trilinear interpolation from
    its values at the nodes, in a frame that held +inf and -inf before.
    """
    from cellnb.field import _fill_between_nodes, _nodes

    nodes = [_nodes(n, 2) for n in shape]
    linear = lambda i, j, k: 0.5 + 2.0 * i - 1.0 * j + 0.25 * k  # noqa: E731
    out = np.full(shape, np.inf, dtype=np.float32)
    out[::4] = -np.inf  # rows 0 and 2 of a lane: inf - inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fill_between_nodes(out, linear(*np.meshgrid(*nodes, indexing="ij")).astype(np.float32), nodes)
    np.testing.assert_allclose(out, linear(*np.indices(shape)), atol=1e-5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc (Linux)")
def test_narrow_band_work_memory_is_a_fraction_of_the_frame():
    # A 256^3 frame: the output takes 64 MiB; the coarse-to-fine work (levels of at most 1/8 of the
    # grid, the voxels of the band at the last one) adds at most 1.5 frames (measured 1.1; it was 4-5).
    decoder, code = TwoSpheres(), torch.tensor([0.6, 0.3])
    evaluate_narrow_band(decoder, code, shape=32, times=[0.5])  # libraries warmed up

    def kib(field):
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size to the current one
    before = kib("VmRSS:")
    sdf, _ = evaluate_narrow_band(decoder, code, shape=256, times=[0.5])
    work = (kib("VmHWM:") - before) * 1024 - sdf.nbytes
    assert work <= 1.5 * sdf.nbytes


def test_narrow_band_catches_a_shape_smaller_than_the_coarse_cells():
    # Two spheres of radius 1.5 voxels centred at voxels (40, 31.5, 31.5) and (23, 31.5, 31.5):
    # at least 7 voxels from every node of the 16-voxel coarsest level.
    decoder = TwoSpheres()
    voxel = 2 / 63
    code = torch.tensor([2 * (40 * voxel - 1), 1.5 * voxel])
    dense = evaluate_dense(decoder, code, shape=64, times=[0.0])
    narrow, _ = evaluate_narrow_band(decoder, code, shape=64, times=[0.0], coarse=16)
    assert (dense < 0).sum() > 0
    np.testing.assert_array_equal(narrow < 0, dense < 0)


def test_compare_methods_reports_both_routes():
    r = compare_methods(TwoSpheres(), torch.tensor([0.6, 0.3]), shape=32, times=[-1.0, 1.0])
    assert r["dense_evaluations"] == 2 * 32**3 and 0 < r["narrow_evaluations"] < r["dense_evaluations"]
    assert r["evaluations_ratio"] == pytest.approx(r["dense_evaluations"] / r["narrow_evaluations"])
    assert r["iou"] == 1.0 and r["voxels_differing"] == 0
    assert r["components_dense"] == r["components_narrow"] == [1, 2]


def test_evaluate_by_name_and_default_coarse():
    decoder, code = TwoSpheres(), torch.tensor([0.5, 0.3])
    dense, n_dense = evaluate(decoder, code, shape=16, times=[0.0], method="dense")
    narrow, n_narrow = evaluate(decoder, code, shape=16, times=[0.0])
    assert n_dense == 16**3 and n_narrow <= n_dense
    np.testing.assert_array_equal(narrow < 0, dense < 0)
    assert [default_coarse(s) for s in (8, 64, 128, 256)] == [1, 4, 8, 16]
    with pytest.raises(ValueError, match="unknown method"):
        evaluate(decoder, code, shape=16, times=[0.0], method="sparse")


def test_bad_input_is_refused_clearly():
    decoder, code = TwoSpheres(), torch.tensor([0.5, 0.3])
    with pytest.raises(ValueError, match=f"at least {MIN_GRID_SIZE}"):
        evaluate_dense(decoder, code, shape=MIN_GRID_SIZE - 1, times=[0.0])
    with pytest.raises(ValueError, match="at least one frame"):
        evaluate_narrow_band(decoder, code, shape=16, times=[])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        evaluate_dense(decoder, code, shape=16, times=[1.5])
    with pytest.raises(ValueError, match=r"needs about [\d.]+ GiB"):
        evaluate_dense(decoder, code, shape=8192, times=[0.0])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        evaluate_dense(decoder, torch.zeros(3), shape=16, times=[0.0])
    with pytest.raises(ValueError, match="power of two"):
        evaluate_narrow_band(decoder, code, shape=16, times=[0.0], coarse=3)
    with pytest.raises(ValueError, match="margin"):
        evaluate_narrow_band(decoder, code, shape=16, times=[0.0], margin=0.5)
