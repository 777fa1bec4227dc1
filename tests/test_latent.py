"""Latent codes: sampling statistics, seeds, interpolation, fitting codes to unseen sequences.

Truth from outside: known Gaussians, analytic two-sphere fields whose code is
(offset, radius), and a tiny decoder trained here on analytic sequences.
"""

import numpy as np
import pytest
import torch

from cellnb.field import evaluate_dense
from cellnb.latent import (
    PERTURB_FRACTION,
    STRATEGIES,
    default_sigma,
    fit_gaussian,
    gaussian_codes,
    interpolate_codes,
    perturbed_codes,
    random_codes,
    sample_codes,
)
from cellnb.reconstruct import fit_code
from cellnb.sdf import grid_axes, time_coords
from test_field import TINY_CLAMP, TINY_PARAMS, TINY_SCALE, TwoSpheres, one_thread, train_tiny, two_spheres  # noqa: F401


def test_random_codes_have_the_requested_spread_and_follow_the_seed():
    codes = random_codes(20000, 4, sigma=0.3, rng=1)
    assert codes.shape == (20000, 4) and codes.dtype == np.float32
    np.testing.assert_allclose(codes.std(axis=0), 0.3, rtol=0.03)
    np.testing.assert_allclose(codes.mean(axis=0), 0.0, atol=0.01)
    np.testing.assert_array_equal(random_codes(5, 4, sigma=0.3, rng=7), random_codes(5, 4, sigma=0.3, rng=7))
    assert not np.array_equal(random_codes(5, 4, sigma=0.3, rng=7), random_codes(5, 4, sigma=0.3, rng=8))


def test_gaussian_fit_recovers_mean_and_covariance_of_many_samples():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T / 5 + 0.1 * np.eye(5)
    mean = rng.normal(size=5)
    learned = rng.multivariate_normal(mean, cov, size=5000)
    fitted_mean, fitted_cov, shrinkage = fit_gaussian(learned)
    assert shrinkage < 0.02  # plenty of samples: almost no shrinkage
    np.testing.assert_allclose(fitted_mean, mean, atol=0.05)
    np.testing.assert_allclose(fitted_cov, cov, atol=0.08)
    new = gaussian_codes(learned, 20000, rng=1)
    np.testing.assert_allclose(new.mean(axis=0), mean, atol=0.05)
    np.testing.assert_allclose(np.cov(new.T), cov, atol=0.1)
    np.testing.assert_array_equal(gaussian_codes(learned, 3, rng=2), gaussian_codes(learned, 3, rng=2))


def test_shrinkage_makes_few_codes_usable_and_closer_to_the_truth():
    # 6 codes of length 16 from N(0, I): the empirical covariance is singular (rank 5).
    errors, shrunk_errors = [], []
    for seed in range(20):
        learned = np.random.default_rng(seed).normal(size=(6, 16))
        _, cov, shrinkage = fit_gaussian(learned)
        assert 0 < shrinkage <= 1
        assert np.linalg.eigvalsh(cov).min() > 0
        _, empirical, _ = fit_gaussian(learned, shrinkage=0.0)
        errors.append(np.linalg.norm(empirical - np.eye(16)))
        shrunk_errors.append(np.linalg.norm(cov - np.eye(16)))
    assert np.mean(shrunk_errors) < 0.7 * np.mean(errors)
    assert np.isfinite(gaussian_codes(learned, 4, rng=0)).all()
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_codes(learned[:1], 4, rng=0)
    with pytest.raises(ValueError, match="shrinkage"):
        fit_gaussian(learned, shrinkage=1.5)


def test_perturbed_codes_cycle_through_the_learned_codes():
    learned = np.arange(12, dtype=float).reshape(3, 4) * 10
    codes = perturbed_codes(learned, 3000, sigma=0.2, rng=0)
    noise = codes - learned[np.arange(3000) % 3]
    assert np.abs(noise).max() < 2.0
    np.testing.assert_allclose(noise.std(), 0.2, rtol=0.05)
    np.testing.assert_array_equal(perturbed_codes(learned, 4, sigma=0.2, rng=3), perturbed_codes(learned, 4, sigma=0.2, rng=3))


def test_interpolation_is_linear_between_the_two_codes():
    a, b = np.array([0.0, 1.0, 2.0]), np.array([2.0, 1.0, 0.0])
    codes = interpolate_codes(a, b, 5)
    np.testing.assert_allclose(codes[0], a)
    np.testing.assert_allclose(codes[-1], b)
    np.testing.assert_allclose(codes[2], (a + b) / 2)
    np.testing.assert_allclose(np.diff(codes, axis=0), np.tile((b - a) / 4, (4, 1)), atol=1e-6)
    with pytest.raises(ValueError, match="steps"):
        interpolate_codes(a, b, 1)
    with pytest.raises(ValueError, match="same length"):
        interpolate_codes(a, b[:2], 3)


def test_sample_codes_every_strategy_seeded_and_on_its_support():
    learned = np.eye(3) * 2.0  # three codes: interpolations lie on the edges of a triangle
    for strategy in STRATEGIES:
        codes = sample_codes(strategy, learned, 6, rng=5)
        assert codes.shape == (6, 3) and codes.dtype == np.float32
        np.testing.assert_array_equal(codes, sample_codes(strategy, learned, 6, rng=5))
    mixed = sample_codes("interpolate", learned, 50, rng=0)
    np.testing.assert_allclose(mixed.sum(axis=1), 2.0, atol=1e-6)  # on a segment between two learned codes
    assert ((mixed > 1e-6).sum(axis=1) <= 2).all() and (mixed >= -1e-6).all()
    assert default_sigma("random", learned) == pytest.approx(learned.std())
    assert default_sigma("perturb", learned) == pytest.approx(PERTURB_FRACTION * learned.std())


def test_sample_codes_bad_input():
    learned = np.eye(3)
    with pytest.raises(ValueError, match="unknown strategy"):
        sample_codes("sideways", learned, 2)
    for sigma in (0.0, -1.0):
        with pytest.raises(ValueError, match="sigma"):
            sample_codes("random", learned, 2, sigma=sigma)
        with pytest.raises(ValueError, match="sigma"):
            perturbed_codes(learned, 2, sigma=sigma)
    with pytest.raises(ValueError, match="n must be"):
        sample_codes("gaussian", learned, 0)
    with pytest.raises(ValueError, match="at least 2"):
        sample_codes("interpolate", learned[:1], 2)


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
