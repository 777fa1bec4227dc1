"""Latent models: fitted mixtures recover known distributions, sample with their temperature, round-trip.

Truth from outside: samples of known Gaussians and mixtures, scipy's
multivariate normal density, and the geometry of interpolation.
"""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from cellnb.latent import (
    DENSITIES,
    PERTURB_FRACTION,
    STRATEGIES,
    LatentModel,
    fit_latent_model,
    interpolate_codes,
    sample_codes,
)


def test_random_model_has_the_spread_of_the_codes_and_follows_the_seed():
    learned = np.random.default_rng(0).normal(0.0, 0.3, (40, 4))
    model = fit_latent_model("random", learned)
    codes = model.sample(20000, rng=1)
    assert codes.shape == (20000, 4) and codes.dtype == np.float32
    np.testing.assert_allclose(codes.std(axis=0), learned.std(), rtol=0.03)
    np.testing.assert_allclose(codes.mean(axis=0), 0.0, atol=0.01)
    np.testing.assert_array_equal(model.sample(5, rng=7), model.sample(5, rng=7))
    assert not np.array_equal(model.sample(5, rng=7), model.sample(5, rng=8))


def test_gaussian_recovers_mean_and_covariance_and_its_density_is_scipys():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T / 5 + 0.1 * np.eye(5)
    mean = rng.normal(size=5)
    learned = rng.multivariate_normal(mean, cov, size=5000)
    model = fit_latent_model("gaussian", learned)
    assert model.info["shrinkage"] < 0.02  # plenty of samples: almost no shrinkage
    np.testing.assert_allclose(model.means[0], mean, atol=0.05)
    np.testing.assert_allclose(model.covariances[0], cov, atol=0.08)
    new = model.sample(20000, rng=1)
    np.testing.assert_allclose(np.cov(new.T), cov, atol=0.1)
    x = learned[:7]
    np.testing.assert_allclose(model.log_likelihood(x),
                               multivariate_normal(model.means[0], model.covariances[0]).logpdf(x), rtol=1e-9)
    hot = model.with_scale(2.0)
    np.testing.assert_allclose(np.cov(hot.sample(20000, rng=1).T), 4 * model.covariances[0], rtol=0.08, atol=0.1)
    np.testing.assert_allclose(hot.log_likelihood(x),
                               multivariate_normal(model.means[0], 4 * model.covariances[0]).logpdf(x), rtol=1e-9)


def test_shrinkage_makes_few_codes_usable_and_closer_to_the_truth():
    # 6 codes of length 16 from N(0, I): the empirical covariance is singular (rank 5).
    errors, shrunk = [], []
    for seed in range(20):
        learned = np.random.default_rng(seed).normal(size=(6, 16))
        cov = fit_latent_model("gaussian", learned).covariances[0]
        assert np.linalg.eigvalsh(cov).min() > 0
        errors.append(np.linalg.norm(np.cov(learned.T, bias=True) - np.eye(16)))
        shrunk.append(np.linalg.norm(cov - np.eye(16)))
    assert np.mean(shrunk) < 0.7 * np.mean(errors)


def test_gmm_finds_the_clusters_of_the_codes():
    rng = np.random.default_rng(3)
    one = rng.normal(0.0, 1.0, (60, 6))
    two = np.concatenate([rng.normal(-3.0, 0.5, (30, 6)), rng.normal(3.0, 0.5, (30, 6))])
    assert fit_latent_model("gmm", one).info["components"] == 1
    model = fit_latent_model("gmm", two)
    assert model.info["components"] == 2
    np.testing.assert_allclose(np.sort(model.means[:, 0]), [-3.0, 3.0], atol=0.3)
    new = model.sample(4000, rng=0)
    assert 0.4 < np.mean(new[:, 0] > 0) < 0.6  # both clusters, evenly
    assert np.abs(np.abs(new[:, 0]) - 3.0).mean() < 0.6


def test_kde_bandwidth_is_chosen_on_held_out_codes():
    """Cross-validated bandwidths fall as the codes get more numerous (like Silverman's n^(-1/(d+4)))."""
    rng = np.random.default_rng(0)
    widths = [fit_latent_model("kde", rng.normal(size=(n, 3))).info["bandwidth"] for n in (40, 400)]
    assert widths[1] < widths[0]
    assert 0.2 < widths[1] < 0.8  # Silverman's rule for n = 400, d = 3 in unit variance: 0.47
    learned = rng.normal(size=(50, 3)) * [1.0, 5.0, 0.2]
    model = fit_latent_model("kde", learned)
    kernel = model.covariances[0]  # shaped like the codes: wide along the wide axis
    assert kernel[1, 1] > 20 * kernel[2, 2]
    # samples keep the codes' spread (a plain KDE inflates the variance by 1 + h^2)
    np.testing.assert_allclose(model.sample(40000, rng=1).std(axis=0), learned.std(axis=0), rtol=0.05)
    shrink = 1 / np.sqrt(1 + model.info["bandwidth"] ** 2)
    np.testing.assert_allclose(model.means, learned.mean(0) + shrink * (learned - learned.mean(0)), rtol=0.02,
                               atol=0.02)


def test_perturb_stays_near_training_codes():
    learned = np.arange(12, dtype=float).reshape(3, 4) * 10
    model = fit_latent_model("perturb", learned)
    codes = model.sample(3000, rng=0)
    nearest = np.abs(codes[:, None, :] - learned[None]).sum(axis=2).min(axis=1)
    sigma = PERTURB_FRACTION * learned.std()
    assert np.sqrt(np.mean(nearest**2)) < 5 * sigma and model.info["sigma"] == pytest.approx(sigma)


def test_too_few_codes_fall_back_to_a_named_simpler_model():
    learned = np.random.default_rng(0).normal(size=(3, 8))
    with pytest.warns(UserWarning, match="kde needs at least 10 codes, got 3; fitted gaussian instead"):
        model = fit_latent_model("kde", learned)
    assert model.strategy == "gaussian" and "fitted gaussian" in model.info["fallback"]
    with pytest.warns(UserWarning, match="fitted random"):
        assert fit_latent_model("gaussian", learned[:1]).strategy == "random"


def test_models_save_as_data_and_load_the_same(tmp_path):
    learned = np.random.default_rng(1).normal(size=(30, 5))
    for strategy in DENSITIES:
        model = fit_latent_model(strategy, learned, scale=0.7)
        loaded = LatentModel.load(model.save(tmp_path / f"{strategy}.npz"))
        assert loaded.strategy == model.strategy and loaded.scale == 0.7 and loaded.info == model.info
        np.testing.assert_array_equal(loaded.sample(4, rng=2), model.sample(4, rng=2))
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a latent model"):
        LatentModel.load(tmp_path / "bad.npz")


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
    learned = np.random.default_rng(0).normal(size=(12, 3))
    for strategy in STRATEGIES:
        codes, model = sample_codes(strategy, learned, 6, rng=5)
        assert codes.shape == (6, 3) and codes.dtype == np.float32
        np.testing.assert_array_equal(codes, sample_codes(strategy, learned, 6, rng=5)[0])
        assert (model is None) == (strategy == "interpolate")
    tri = np.eye(3) * 2.0  # three codes: interpolations lie on the edges of a triangle
    mixed, _ = sample_codes("interpolate", tri, 50, rng=0)
    np.testing.assert_allclose(mixed.sum(axis=1), 2.0, atol=1e-6)
    assert ((mixed > 1e-6).sum(axis=1) <= 2).all() and (mixed >= -1e-6).all()


def test_sample_codes_bad_input():
    learned = np.eye(3)
    with pytest.raises(ValueError, match="unknown strategy"):
        sample_codes("sideways", learned, 2)
    with pytest.raises(ValueError, match="temperature"):
        fit_latent_model("random", learned, scale=0.0)
    with pytest.raises(ValueError, match="n must be"):
        sample_codes("gaussian", learned, 0)
    with pytest.raises(ValueError, match="at least 2"):
        sample_codes("interpolate", learned[:1], 2)
    with pytest.raises(ValueError, match="NaN"):
        fit_latent_model("gaussian", np.full((4, 2), np.nan))


@pytest.mark.parametrize("codes", [
    np.random.default_rng(1).normal(size=(2, 32)).astype(np.float32),  # two codes: shrinkage estimate 0
    np.ones((3, 8), dtype=np.float32),  # identical codes: no variance at all
])
def test_gaussian_of_two_or_identical_codes_samples(codes):
    """Bug: a run of two sequences failed with 'Matrix is not positive definite'."""
    model = fit_latent_model("gaussian", codes)
    samples = model.sample(64, rng=0)
    assert np.isfinite(samples).all() and np.isfinite(model.log_likelihood(samples)).all()
    assert np.allclose(samples.mean(axis=0), codes.mean(axis=0), atol=3 * max(codes.std(), 1e-3))
