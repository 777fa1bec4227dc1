"""Latent codes: sampling new ones and interpolating between learned ones.

A trained auto-decoder holds one learned code per training sequence (a
matrix ``(M, L)``).  New time-evolving shapes come from new codes:

``random``
    i.i.d. ``N(0, sigma^2)`` entries, as in Wiesner et al. (2022), Sec. 3;
``gaussian``
    a multivariate normal fitted to the learned codes (mean and covariance,
    the covariance shrunk towards a scaled identity, Ledoit & Wolf 2004, so it
    stays well conditioned with few sequences);
``perturb``
    learned codes plus small ``N(0, sigma^2)`` noise (the journal version's
    recipe for the filopodial cells); sample ``k`` starts from learned code
    ``k % M``;
``interpolate``
    a random point on the segment between two different learned codes.

Sampling functions return ``float32`` arrays ``(n, L)`` and take ``rng`` (a
seed or ``numpy.random.Generator``): the same seed gives the same codes.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

__all__ = [
    "STRATEGIES",
    "PERTURB_FRACTION",
    "default_sigma",
    "random_codes",
    "fit_gaussian",
    "gaussian_codes",
    "perturbed_codes",
    "interpolate_codes",
    "sample_codes",
]

log = logging.getLogger(__name__)

STRATEGIES = ("random", "gaussian", "perturb", "interpolate")
# Default noise of ``perturb`` relative to the spread of the learned codes: small enough that a
# perturbed code stays near its sequence, large enough to change the details.
PERTURB_FRACTION = 0.25


def _learned(learned, *, at_least: int = 1) -> np.ndarray:
    codes = np.asarray(learned.detach().cpu() if torch.is_tensor(learned) else learned, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[1] < 1:
        raise ValueError(f"learned codes must be a matrix (M, L), got shape {codes.shape}")
    if codes.shape[0] < at_least:
        raise ValueError(f"this needs at least {at_least} learned codes, got {codes.shape[0]}; train on more sequences")
    if not np.all(np.isfinite(codes)):
        raise ValueError("learned codes contain NaN or infinite values")
    return codes


def _count(n) -> int:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive number of codes, got {n}")
    return int(n)


def _sigma(sigma) -> float:
    if sigma is None or not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive noise scale, got {sigma}")
    return float(sigma)


def default_sigma(strategy: str, learned) -> float:
    """The noise scale used when none is given, from the spread of the learned codes.

    ``random``: the standard deviation of all learned code entries (new codes
    as spread as the learned ones); ``perturb``: :data:`PERTURB_FRACTION` of it.
    Other strategies draw no isotropic noise; their value is unused.
    """
    spread = float(_learned(learned).std())
    if spread <= 0:
        raise ValueError("the learned codes are all equal; give sigma explicitly")
    return spread * (PERTURB_FRACTION if strategy == "perturb" else 1.0)


def random_codes(n: int, code_length: int, *, sigma: float, rng=None) -> np.ndarray:
    """``n`` codes with i.i.d. ``N(0, sigma^2)`` entries: ``(n, code_length)`` float32."""
    n, sigma = _count(n), _sigma(sigma)
    if int(code_length) != code_length or code_length < 1:
        raise ValueError(f"code_length must be a positive integer, got {code_length}")
    return np.random.default_rng(rng).normal(0.0, sigma, (n, int(code_length))).astype(np.float32)


def fit_gaussian(learned, *, shrinkage: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean and shrunk covariance of codes ``(M, L)``, and the shrinkage used.

    The covariance is ``(1 - a) S + a (tr(S) / L) I`` with ``S`` the empirical
    (1/M) covariance.  By default ``a`` in [0, 1] is the Ledoit & Wolf (2004)
    estimate of the optimal shrinkage, which grows when ``M`` is small
    compared with ``L`` (and keeps the covariance invertible for ``M <= L``).

    Parameters
    ----------
    learned : array-like, shape (M, L)
        At least two codes.
    shrinkage : float in [0, 1], optional
        A fixed ``a`` instead of the estimate.

    Returns
    -------
    mean : ndarray, shape (L,)
    cov : ndarray, shape (L, L)
    shrinkage : float
    """
    x = _learned(learned, at_least=2)
    m, dim = x.shape
    mean = x.mean(axis=0)
    x = x - mean
    cov = x.T @ x / m
    mu = np.trace(cov) / dim
    target = mu * np.eye(dim)
    if shrinkage is None:
        x2 = x**2
        beta = (np.sum(x2.T @ x2) / m - np.sum(cov**2)) / m  # summed variance of the entries of S
        delta = np.sum((cov - target) ** 2)  # squared distance of S from the target
        shrinkage = 0.0 if delta == 0 else float(min(beta, delta) / delta)
    elif not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}")
    return mean, (1.0 - shrinkage) * cov + shrinkage * target, float(shrinkage)


def gaussian_codes(learned, n: int, *, shrinkage: float | None = None, rng=None) -> np.ndarray:
    """``n`` codes from a normal distribution fitted to the learned codes (:func:`fit_gaussian`).

    Parameters
    ----------
    learned : array-like, shape (M, L)
        At least two learned codes.
    n : int
    shrinkage : float in [0, 1], optional
        Weight of the scaled-identity target in the covariance; default the
        Ledoit-Wolf estimate.
    rng : int or numpy.random.Generator, optional

    Returns
    -------
    codes : ndarray of float32, shape (n, L)
    """
    n = _count(n)
    mean, cov, used = fit_gaussian(learned, shrinkage=shrinkage)
    log.debug("Gaussian of the learned codes: shrinkage %.3f", used)
    return np.random.default_rng(rng).multivariate_normal(mean, cov, size=n, method="eigh").astype(np.float32)


def perturbed_codes(learned, n: int, *, sigma: float, rng=None) -> np.ndarray:
    """Learned codes plus ``N(0, sigma^2)`` noise; sample ``k`` starts from learned code ``k % M``.

    Returns
    -------
    codes : ndarray of float32, shape (n, L)
    """
    codes, n, sigma = _learned(learned), _count(n), _sigma(sigma)
    base = codes[np.arange(n) % len(codes)]
    return (base + np.random.default_rng(rng).normal(0.0, sigma, base.shape)).astype(np.float32)


def interpolate_codes(a, b, steps: int) -> np.ndarray:
    """``steps`` codes evenly spaced on the segment from ``a`` to ``b``, both included.

    Returns
    -------
    codes : ndarray of float32, shape (steps, L)
    """
    a, b = (np.asarray(c.detach().cpu() if torch.is_tensor(c) else c, dtype=np.float64) for c in (a, b))
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be two codes of the same length, got shapes {a.shape} and {b.shape}")
    if int(steps) != steps or steps < 2:
        raise ValueError(f"steps must be at least 2 (the two end codes), got {steps}")
    alpha = np.linspace(0.0, 1.0, int(steps))[:, None]
    return ((1.0 - alpha) * a + alpha * b).astype(np.float32)


def sample_codes(strategy: str, learned, n: int, *, sigma: float | None = None, rng=None) -> np.ndarray:
    """``n`` new codes by one of :data:`STRATEGIES` (module docstring).

    Parameters
    ----------
    strategy : {"random", "gaussian", "perturb", "interpolate"}
    learned : array-like, shape (M, L)
        The trained model's codes.
    n : int
    sigma : float, optional
        Noise scale of ``random`` and ``perturb``; default
        :func:`default_sigma`.  Ignored by the other strategies.
    rng : int or numpy.random.Generator, optional

    Returns
    -------
    codes : ndarray of float32, shape (n, L)
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    codes = _learned(learned)
    if sigma is None:
        sigma = default_sigma(strategy, codes) if strategy in ("random", "perturb") else None
    elif strategy in ("random", "perturb"):
        sigma = _sigma(sigma)
    rng = np.random.default_rng(rng)
    if strategy == "random":
        return random_codes(n, codes.shape[1], sigma=sigma, rng=rng)
    if strategy == "gaussian":
        return gaussian_codes(codes, n, rng=rng)
    if strategy == "perturb":
        return perturbed_codes(codes, n, sigma=sigma, rng=rng)
    n = _count(n)
    _learned(codes, at_least=2)
    pairs = np.array([rng.choice(len(codes), size=2, replace=False) for _ in range(n)])
    alpha = rng.uniform(0.0, 1.0, (n, 1))
    return ((1.0 - alpha) * codes[pairs[:, 0]] + alpha * codes[pairs[:, 1]]).astype(np.float32)
