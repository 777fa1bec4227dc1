"""Fitting codes to unseen sequences with the decoder frozen (DeepSDF test-time optimisation).

Truth from outside: analytic two-sphere fields whose code is (offset, radius),
and a tiny decoder trained here on analytic sequences.
"""

import numpy as np
import pytest
import torch
from test_field import (  # noqa: F401
    TINY_CLAMP,
    TINY_PARAMS,
    TINY_SCALE,
    TwoSpheres,
    one_thread,
    train_tiny,
    two_spheres,
)

from cellnb.field import evaluate_dense
from cellnb.reconstruct import fit_code
from cellnb.sdf import grid_axes, time_coords


def test_fit_code_recovers_the_code_of_an_analytic_field():
    decoder, truth = TwoSpheres(), torch.tensor([0.5, 0.3])
    sdf = evaluate_dense(decoder, truth, shape=24, times=time_coords(4))
    code, score = fit_code(decoder, sdf, iterations=200, lr=0.02, points_per_frame=512, seed=0)
    np.testing.assert_allclose(code.numpy(), truth.numpy(), atol=0.02)
    assert score > 0.95
    again, _ = fit_code(decoder, sdf, iterations=5, lr=0.02, points_per_frame=64, seed=3)
    np.testing.assert_array_equal(again, fit_code(decoder, sdf, iterations=5, lr=0.02, points_per_frame=64, seed=3)[0])


def test_fit_code_reconstructs_a_held_out_sequence_with_the_decoder_frozen():
    decoder, codes = train_tiny()
    before = [p.detach().clone() for p in decoder.parameters()]
    held_out = (0.55, 0.31)  # between the training parameters
    assert held_out not in TINY_PARAMS
    axes = np.meshgrid(*grid_axes(32), indexing="ij")
    sdf = np.stack([np.minimum(two_spheres(np.stack([*axes, np.full_like(axes[0], t)], -1), *held_out), TINY_CLAMP)
                    for t in time_coords(5)]) * TINY_SCALE
    code, score = fit_code(decoder, sdf.astype(np.float32), iterations=150, lr=1e-2, points_per_frame=1024, seed=0,
                           init=codes.mean(dim=0))
    assert score > 0.85
    assert all(torch.equal(p, q) for p, q in zip(before, decoder.parameters()))
    assert all(p.requires_grad for p in decoder.parameters())


def test_fit_code_bad_input():
    decoder = TwoSpheres()
    with pytest.raises(ValueError, match=r"\(T, D0, D1, D2\)"):
        fit_code(decoder, np.zeros((8, 8, 8)))
    with pytest.raises(ValueError, match="iterations"):
        fit_code(decoder, np.zeros((2, 8, 8, 8)), iterations=0)
    with pytest.raises(ValueError, match="init"):
        fit_code(decoder, np.zeros((2, 8, 8, 8)), init=np.zeros(5))
