"""Latent codes: distributions fitted to the learned codes, sampling, likelihood, interpolation.

A trained auto-decoder holds one learned code per training sequence (a
matrix ``(M, L)``).  New time-evolving shapes come from new codes, drawn from
a distribution fitted to the learned ones.  Every strategy but
``interpolate`` is a Gaussian mixture (:class:`LatentModel`), so all sample
the same way, report the log-likelihood of any code (e.g. a code fitted to
an unseen cell), and take one knob, the temperature ``scale`` (every
component's standard deviation times ``scale``):

``random``
    i.i.d. ``N(0, sigma^2)`` entries, sigma the spread of the learned codes
    (Wiesner et al. 2022, Sec. 3);
``gaussian``
    one full-covariance normal, the covariance shrunk towards a scaled
    identity by the Ledoit & Wolf (2004) estimate so it stays well conditioned
    with few codes (``sklearn.covariance.LedoitWolf``);
``gmm``
    a Gaussian mixture whose number of components and covariance type are
    chosen by the cross-validated log-likelihood of held-out codes
    (``sklearn.mixture.GaussianMixture``, ``GridSearchCV``);
``kde``
    a kernel density: one Gaussian kernel per learned code with the shape of
    the codes' covariance and a bandwidth chosen by 5-fold
    cross-validated log-likelihood of held-out codes (``sklearn.neighbors.KernelDensity``
    on whitened codes, ``GridSearchCV``), sampled the variance-preserving way
    (Silverman 1986: the samples have the codes' covariance, not that plus the kernels');
``perturb``
    learned codes plus isotropic noise of :data:`PERTURB_FRACTION` times their
    spread (the journal version's recipe for the filopodial cells): a kernel
    density with a small fixed bandwidth, so its samples stay close to
    training codes;
``interpolate``
    a random point on the segment between two different learned codes.

:func:`codes_around` starts ``perturb`` and ``interpolate`` from given codes
instead (e.g. codes fitted to a lab's own cells, :mod:`cellnb.fit`): noise of
the learned codes' scale around each, or evenly spaced steps from each
towards a learned code.

When a model cannot be fitted to so few codes, a simpler one is used and a
warning names it (``kde``/``gmm`` -> ``gaussian`` -> ``random``); the model
records it in ``fallback``.  Sampling takes ``rng`` (a seed or
``numpy.random.Generator``): the same seed gives the same codes.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.special import logsumexp
from sklearn.covariance import LedoitWolf
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity

from cellnb.io import atomic_path

__all__ = [
    "STRATEGIES",
    "DENSITIES",
    "PERTURB_FRACTION",
    "LatentModel",
    "fit_latent_model",
    "interpolate_codes",
    "sample_codes",
    "codes_around",
    "AROUND",
]

log = logging.getLogger(__name__)

DENSITIES = ("random", "gaussian", "gmm", "kde", "perturb")
STRATEGIES = (*DENSITIES, "interpolate")
# Default noise of ``perturb`` relative to the spread of the learned codes: small enough that a
# perturbed code stays near its sequence, large enough to change the details.
PERTURB_FRACTION = 0.25
GMM_MAX_COMPONENTS = 6  # largest mixture the cross-validation may choose
GMM_CODES_PER_COMPONENT = 8  # ... and at most one component per this many codes
GMM_COVARIANCES = ("spherical", "diag", "tied")  # a full covariance per component needs far more codes than cells
KDE_FOLDS = 5  # cross-validation folds of the KDE bandwidth
KDE_BANDWIDTHS = np.geomspace(0.05, 2.0, 24)  # candidates, in units of the whitened codes' spread
COVARIANCE_RIDGE = 1e-6  # of the mean code variance, added to the Ledoit-Wolf covariance (few codes)
KDE_RIDGE = 1e-3  # of the mean code variance, added to the kernels' covariance to keep it invertible
_MIN_CODES = {"random": 1, "gaussian": 2, "gmm": 2 * KDE_FOLDS, "kde": 2 * KDE_FOLDS, "perturb": 1}
_FALLBACK = {"gmm": "gaussian", "kde": "gaussian", "gaussian": "random"}
AROUND = ("perturb", "interpolate")  # the strategies :func:`codes_around` starts from given codes


def _as_codes(learned, *, at_least: int = 1) -> np.ndarray:
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


def _spread(codes: np.ndarray) -> float:
    spread = float(codes.std())
    if spread <= 0:
        raise ValueError("the learned codes are all equal; there is no spread to sample from")
    return spread


@dataclass
class LatentModel:
    """A Gaussian mixture over codes: ``sum_k w_k N(means_k, scale^2 covariances_k)``.

    Attributes
    ----------
    strategy : str
        The strategy it was fitted for (one of :data:`DENSITIES`).
    weights : ndarray, shape (K,)
    means : ndarray, shape (K, D)
    covariances : ndarray, shape (K, D, D)
    scale : float
        Temperature: every component's standard deviation is multiplied by it.
    info : dict
        How it was fitted (chosen components, covariance type, bandwidth,
        shrinkage, ``fallback`` when a simpler model was used).
    """

    strategy: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    scale: float = 1.0
    info: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def _factors(self) -> np.ndarray:
        """Cholesky factors of the scaled covariances, (K, D, D)."""
        return np.linalg.cholesky(self.covariances) * self.scale

    def sample(self, n: int, *, rng=None) -> np.ndarray:
        """``n`` codes, float32 ``(n, D)``; the same seed gives the same codes."""
        n, rng = _count(n), np.random.default_rng(rng)
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        noise = rng.standard_normal((n, self.dim))
        factors = self._factors()
        out = self.means[component] + np.einsum("nij,nj->ni", factors[component], noise)
        return out.astype(np.float32)

    def log_likelihood(self, codes) -> np.ndarray:
        """Log density of each of ``codes`` ``(n, D)`` under the model, ``(n,)``."""
        x = _as_codes(codes)
        if x.shape[1] != self.dim:
            raise ValueError(f"codes have {x.shape[1]} entries, the model {self.dim}")
        factors = self._factors()
        parts = []
        for w, mean, chol in zip(self.weights, self.means, factors):
            z = np.linalg.solve(chol, (x - mean).T)  # (D, n)
            log_det = 2.0 * np.log(np.diag(chol)).sum()
            parts.append(math.log(w) - 0.5 * (np.sum(z * z, axis=0) + log_det + self.dim * math.log(2 * math.pi)))
        return logsumexp(np.stack(parts), axis=0)

    def marginal(self, dims: int) -> "LatentModel":
        """The distribution of the first ``dims`` entries (e.g. the code without a size column)."""
        if int(dims) != dims or not 1 <= dims <= self.dim:
            raise ValueError(f"dims must be between 1 and the model's {self.dim} entries, got {dims}")
        d = int(dims)
        return LatentModel(self.strategy, self.weights, self.means[:, :d], self.covariances[:, :d, :d], self.scale,
                           dict(self.info))

    def with_scale(self, scale: float) -> "LatentModel":
        """The same model at another temperature."""
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive temperature, got {scale}")
        return LatentModel(self.strategy, self.weights, self.means, self.covariances, float(scale), dict(self.info))

    def save(self, path, *, overwrite: bool = True) -> Path:
        """Write the model as arrays (``.npz``, no pickles: a model file is data, never code)."""
        with atomic_path(path, overwrite=overwrite) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, weights=self.weights, means=self.means, covariances=self.covariances,
                         scale=np.float64(self.scale), strategy=np.str_(self.strategy),
                         info=np.str_(json.dumps(self.info)))
        return Path(path)

    @classmethod
    def load(cls, path) -> "LatentModel":
        """Read a model written by :meth:`save` (with ``allow_pickle=False``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"latent model {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(str(z["strategy"]), z["weights"], z["means"], z["covariances"], float(z["scale"]),
                           json.loads(str(z["info"])))
        except (KeyError, ValueError, OSError) as err:
            raise ValueError(f"{path} is not a latent model written by cellnb ({err})") from None


def _isotropic(means: np.ndarray, sigma: float) -> np.ndarray:
    return np.broadcast_to(sigma**2 * np.eye(means.shape[1]), (len(means), means.shape[1], means.shape[1])).copy()


def _ledoit_wolf(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    lw = LedoitWolf().fit(np.asarray(codes, dtype=np.float64))
    d = codes.shape[1]
    # With two or three codes the shrunk covariance can be singular (the shrinkage estimate is 0):
    # a ridge of COVARIANCE_RIDGE of the mean variance keeps it positive definite.
    floor = max(float(np.trace(lw.covariance_)) / d, np.finfo(np.float32).tiny)
    return lw.location_, lw.covariance_ + COVARIANCE_RIDGE * floor * np.eye(d), float(lw.shrinkage_)


def _fit_gmm(codes: np.ndarray, rng: int) -> LatentModel:
    """The mixture whose components and covariance type give held-out codes the highest likelihood.

    Chosen by :data:`KDE_FOLDS`-fold cross-validated log-likelihood rather
    than by BIC alone: with few codes in many dimensions, BIC rewards
    components that collapse onto a handful of codes.
    """
    m, d = codes.shape
    _, lw_cov, _ = _ledoit_wolf(codes)
    reg = 1e-3 * float(np.trace(lw_cov)) / d  # keeps components of few codes from collapsing
    grid = {"n_components": list(range(1, max(1, min(GMM_MAX_COMPONENTS, m // GMM_CODES_PER_COMPONENT)) + 1)),
            "covariance_type": list(GMM_COVARIANCES)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(GaussianMixture(reg_covar=reg, random_state=rng), grid,
                              cv=KFold(KDE_FOLDS, shuffle=True, random_state=rng)).fit(codes)
    best = search.best_estimator_
    covs = {"full": lambda g: g.covariances_,
            "tied": lambda g: np.broadcast_to(g.covariances_, (g.n_components, d, d)).copy(),
            "diag": lambda g: np.stack([np.diag(c) for c in g.covariances_]),
            "spherical": lambda g: np.stack([c * np.eye(d) for c in g.covariances_])}[best.covariance_type](best)
    info = {"components": int(best.n_components), "covariance_type": best.covariance_type,
            "cv_log_likelihood": float(search.best_score_), "bic": float(best.bic(codes))}
    return LatentModel("gmm", best.weights_, best.means_, covs, info=info)


def _fit_kde(codes: np.ndarray) -> LatentModel:
    mean, cov, shrinkage = _ledoit_wolf(codes)
    chol = np.linalg.cholesky(cov)
    white = np.linalg.solve(chol, (codes - mean).T).T  # unit covariance: one bandwidth fits every direction
    search = GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": KDE_BANDWIDTHS},
                          cv=KFold(KDE_FOLDS, shuffle=True, random_state=0)).fit(white)
    h = float(search.best_params_["bandwidth"])
    # Silverman's (1986, Sec. 6.4.1) variance-preserving ("shrunk") smoothed bootstrap: kernel centres
    # pulled towards the mean by 1 / sqrt(1 + h^2) and kernels narrowed by the same factor, so samples
    # keep the codes' covariance instead of inflating it by the kernels' (1 + h^2), which would make the
    # generated cells more varied than the real ones.
    # The kernels take the codes' own covariance (a small ridge keeps them proper), so that the
    # samples' covariance is exactly the codes'; the shrunk one only whitens for the bandwidth search.
    shrink = 1.0 / math.sqrt(1.0 + h**2)
    empirical = np.cov(codes.T, bias=True).reshape(codes.shape[1], codes.shape[1])
    empirical += KDE_RIDGE * np.trace(empirical) / codes.shape[1] * np.eye(codes.shape[1])
    weights = np.full(len(codes), 1.0 / len(codes))
    means = mean + shrink * (codes - mean)
    covs = np.broadcast_to((shrink * h) ** 2 * empirical, (len(codes), *cov.shape)).copy()
    info = {"bandwidth": h, "shrinkage": shrinkage, "cv_log_likelihood": float(search.best_score_),
            "bandwidth_at_grid_edge": bool(h in (KDE_BANDWIDTHS[0], KDE_BANDWIDTHS[-1])),
            "variance_preserving": True}
    return LatentModel("kde", weights, means, covs, info=info)


def fit_latent_model(strategy: str, learned, *, scale: float = 1.0, rng: int = 0) -> LatentModel:
    """Fit the distribution of a strategy (:data:`DENSITIES`) to codes ``(M, D)``.

    Parameters
    ----------
    strategy : {"random", "gaussian", "gmm", "kde", "perturb"}
    learned : array-like, shape (M, D)
        Learned codes (optionally with extra columns, e.g. a size, sampled jointly).
    scale : float
        Temperature of the model (1: as fitted).
    rng : int
        Seed of the mixture fit (the fit is deterministic given it).

    Returns
    -------
    LatentModel
        ``info["fallback"]`` names the reason when a simpler model was fitted.
    """
    if strategy not in DENSITIES:
        raise ValueError(f"unknown strategy {strategy!r} for a latent model; use one of {', '.join(DENSITIES)}")
    codes = _as_codes(learned)
    asked, reason = strategy, None
    while len(codes) < _MIN_CODES[strategy] and strategy in _FALLBACK:
        reason = f"{asked} needs at least {_MIN_CODES[asked]} codes, got {len(codes)}; fitted {_FALLBACK[strategy]}"
        strategy = _FALLBACK[strategy]
    if reason:
        warnings.warn(f"latent model: {reason} instead", UserWarning, stacklevel=2)
    if strategy == "random":
        means = np.zeros((1, codes.shape[1]))
        model = LatentModel("random", np.ones(1), means, _isotropic(means, _spread(codes)))
    elif strategy == "perturb":
        sigma = PERTURB_FRACTION * _spread(codes)
        model = LatentModel("perturb", np.full(len(codes), 1.0 / len(codes)), codes.copy(), _isotropic(codes, sigma),
                            info={"sigma": sigma})
    elif strategy == "gaussian":
        mean, cov, shrinkage = _ledoit_wolf(codes)
        model = LatentModel("gaussian", np.ones(1), mean[None], cov[None], info={"shrinkage": shrinkage})
    elif strategy == "gmm":
        model = _fit_gmm(codes, rng)
    else:
        model = _fit_kde(codes)
    if reason:
        model.info["fallback"] = reason
    model.info["asked"] = asked
    return model.with_scale(scale)


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


def sample_codes(strategy: str, learned, n: int, *, scale: float = 1.0, rng=None) -> tuple[np.ndarray, LatentModel | None]:
    """``n`` new codes by one of :data:`STRATEGIES` (module docstring).

    Parameters
    ----------
    strategy : str
    learned : array-like, shape (M, D)
        The trained model's codes (and any extra columns sampled with them).
    n : int
    scale : float
        Temperature (:class:`LatentModel`); for ``interpolate`` unused.
    rng : int or numpy.random.Generator, optional

    Returns
    -------
    codes : ndarray of float32, shape (n, D)
    model : LatentModel or None
        The fitted model (None for ``interpolate``).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    codes = _as_codes(learned)
    rng = np.random.default_rng(rng)
    if strategy != "interpolate":
        model = fit_latent_model(strategy, codes, scale=scale, rng=int(rng.integers(2**31)))
        return model.sample(n, rng=rng), model
    n = _count(n)
    _as_codes(codes, at_least=2)
    pairs = np.array([rng.choice(len(codes), size=2, replace=False) for _ in range(n)])
    alpha = rng.uniform(0.0, 1.0, (n, 1))
    return ((1.0 - alpha) * codes[pairs[:, 0]] + alpha * codes[pairs[:, 1]]).astype(np.float32), None


def codes_around(strategy: str, anchors, learned, n: int, *, targets=None, scale: float = 1.0,
                 rng=None) -> tuple[np.ndarray, np.ndarray, LatentModel | None]:
    """``n`` new codes from each of ``anchors`` by ``perturb`` or ``interpolate`` (:data:`AROUND`).

    Parameters
    ----------
    strategy : {"perturb", "interpolate"}
        ``perturb``: each anchor plus isotropic noise of :data:`PERTURB_FRACTION`
        times the learned codes' spread (times ``scale``);
        ``interpolate``: ``n`` codes evenly spaced from each anchor (weight 0,
        the anchor itself) to its target (weight 1), both included.
    anchors : array-like, shape (A, L)
        The codes to start from, e.g. codes fitted to unseen cells.
    learned : array-like, shape (M, L)
        The trained model's codes: the noise scale, and the default targets.
    n : int
        Codes per anchor (``interpolate``: at least 2).
    targets : array-like, shape (A, L) or (L,), optional
        ``interpolate``: where each anchor goes; default its nearest learned code.
    scale : float
        Temperature of ``perturb``.
    rng : int or numpy.random.Generator, optional

    Returns
    -------
    codes : ndarray of float32, shape (A * n, L)
        Anchor ``a``'s codes are rows ``a * n .. a * n + n - 1``.
    weights : ndarray, shape (A * n,)
        ``interpolate``: the weight of the target; ``perturb``: NaN.
    model : LatentModel or None
        ``perturb``: the mixture the codes were drawn from (one component per anchor).
    """
    if strategy not in AROUND:
        raise ValueError(f"strategy {strategy!r} cannot start from given codes; use one of {', '.join(AROUND)}")
    learned = _as_codes(learned)
    anchors = _as_codes(anchors)
    if anchors.shape[1] != learned.shape[1]:
        raise ValueError(f"the given codes have {anchors.shape[1]} entries, the model's {learned.shape[1]}")
    n = _count(n)
    if strategy == "perturb":
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive temperature, got {scale}")
        sigma = PERTURB_FRACTION * _spread(learned)
        model = LatentModel("perturb", np.full(len(anchors), 1.0 / len(anchors)), anchors.copy(),
                            _isotropic(anchors, sigma), float(scale), {"sigma": sigma, "around": "given codes"})
        noise = np.random.default_rng(rng).standard_normal((len(anchors), n, anchors.shape[1]))
        codes = anchors[:, None] + sigma * float(scale) * noise
        return codes.reshape(-1, anchors.shape[1]).astype(np.float32), np.full(len(anchors) * n, np.nan), model
    if targets is None:
        d = ((anchors[:, None] - learned[None]) ** 2).sum(axis=2)
        targets = learned[d.argmin(axis=1)]
    targets = np.broadcast_to(np.asarray(targets, dtype=np.float64), anchors.shape)
    codes = np.concatenate([interpolate_codes(a, b, n) for a, b in zip(anchors, targets)])
    return codes, np.tile(np.linspace(0.0, 1.0, n), len(anchors)), None
