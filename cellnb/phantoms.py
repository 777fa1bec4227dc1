"""Built-in synthetic 3D+time cells: three seeded phantom families.

Each family is an implicit function ``f(p, s)`` of a point ``p`` in network
coordinates (each axis in [-1, 1], see :mod:`cellnb.sdf`) and a time fraction
``s`` in [0, 1]; the cell is ``f < 0``.  A sequence of ``T`` frames samples
``s = linspace(0, 1, T)`` and voxelises each frame on a ``size^3`` grid, so
different grid sizes and frame counts sample the same continuous motion, and
the masks go through the same mask -> SDF path as real data.

Families (modelled on the cell types of Wiesner et al. 2022):

``dividing`` (C. elegans-like)
    A rough sphere grows, elongates into two lobes joined by a narrowing
    furrow, and at the division time splits into two daughters that stay
    close but at least two voxels apart, so the masks have exactly one
    26-connected component before ``meta["division_frame"]`` and exactly two
    from it on.  The furrow never narrows below 1.5 voxels before the split.
``filopodial`` (A549-like)
    An irregular body with several thin protrusions (capsules, radius >= 1
    voxel on any grid, about 1.6-2.2 voxels at 48^3) that grow, retract,
    wobble and sometimes branch; every protrusion starts inside the body, so
    each frame is one 26-connected component.
``deforming`` (Platynereis-like)
    A blob whose surface ripples and whose elongation axis swings quickly and
    smoothly; the continuous volume is held constant (voxelised volumes vary
    by a few percent).

Every family draws its size, shape, orientation, timing and surface roughness
from ``rng``.  Shapes stay within a sphere of radius 0.8 around the grid
centre, so the border voxels are always background.  The few lengths that are
floored in voxels (furrow width, daughter gap, protrusion radius) make very
small grids (16^3) keep the topology at the cost of slightly thicker shapes.
"""

from __future__ import annotations

import numpy as np

from cellnb.sdf import grid_axes
from cellnb.sequence import MaskSequence

__all__ = ["FAMILIES", "make_sequence", "make_batch"]

FAMILIES = ("dividing", "filopodial", "deforming")

MIN_SIZE = 16  # smallest grid side that keeps the families' topology
EXTENT = 0.8  # every shape stays within this radius of the grid centre (network units)
_TIME_SAMPLES = np.linspace(0.0, 1.0, 65)  # fine time grid for frame-count-independent bounds
_DAUGHTER_VOLUME = 2.0 ** (-1.0 / 3.0)  # radius ratio daughter / mother for half the volume


def _sphere_directions(n: int = 2048) -> np.ndarray:
    """Near-uniform unit vectors (Fibonacci sphere), shape (n, 3)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (1.0 + 5.0**0.5) * k
    r = np.sqrt(1.0 - z * z)
    return np.stack([z, r * np.cos(phi), r * np.sin(phi)], axis=1)


_DIRECTIONS = _sphere_directions()


def _unit(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    v = rng.normal(size=(3,) if n is None else (n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _perpendicular(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random unit vector perpendicular to unit vector ``a``."""
    v = _unit(rng)
    v = v - np.dot(v, a) * a
    return v / np.linalg.norm(v)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth union of two implicit functions (<= min(a, b)), blend width ``k``."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _capsule(points: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance to the capsule of ``radius`` around segment ``a``-``b``; points (N, 3)."""
    pa = points - a
    ba = b - a
    denom = float(np.dot(ba, ba))
    h = np.clip(pa @ ba / denom, 0.0, 1.0)[:, None] if denom > 0 else 0.0
    return np.linalg.norm(pa - h * ba, axis=1) - radius


class _Ripples:
    """Smooth random function on the unit sphere that evolves in time.

    ``h(n, s) = sum_j w_j cos(omega_j n.u_j + phi_j + 2 pi nu_j s)`` with
    ``sum_j |w_j| = 1``, so ``|h| <= 1``; ``omega`` sets the angular
    frequency of the bumps, ``nu`` their speed in cycles per sequence.
    """

    def __init__(self, rng, n_waves: int, omega: tuple[float, float], nu: tuple[float, float]):
        self.u = _unit(rng, n_waves)
        self.omega = rng.uniform(*omega, size=n_waves)
        self.phase = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
        self.nu = rng.uniform(*nu, size=n_waves) * rng.choice([-1.0, 1.0], size=n_waves)
        w = rng.uniform(0.3, 1.0, size=n_waves)
        self.w = w / w.sum()

    def __call__(self, directions: np.ndarray, s: float) -> np.ndarray:
        arg = self.omega * (directions @ self.u.T) + self.phase + 2.0 * np.pi * self.nu * s
        return np.cos(arg) @ self.w


def _star(points: np.ndarray, center: np.ndarray, radius: float, amplitude: float, ripples: _Ripples, s: float):
    """Implicit rough sphere: ``|p - c| - radius * exp(amplitude * h(direction, s))``."""
    v = points - center
    r = np.linalg.norm(v, axis=1)
    n = v / np.maximum(r, 1e-9)[:, None]
    return r - radius * np.exp(amplitude * ripples(n, s))


class _Dividing:
    """Grow, elongate into two lobes with a furrow, split into two daughters at ``s_div``."""

    def __init__(self, rng, voxel: float):
        self.axis0 = _unit(rng)
        self.turn_axis = _perpendicular(self.axis0, rng)
        self.turn = rng.uniform(-0.6, 0.6)  # radians of axis rotation over the sequence
        self.center0 = rng.uniform(-0.03, 0.03, size=3)
        self.drift = _unit(rng) * rng.uniform(0.0, 0.04)
        self.radius0 = rng.uniform(0.3, 0.4)  # shrunk below to fit inside EXTENT
        self.growth = rng.uniform(0.05, 0.15)  # relative radius growth over the sequence
        self.s_div = rng.uniform(0.38, 0.62)
        self.s_elong = self.s_div - rng.uniform(0.2, 0.3)
        self.separation = rng.uniform(0.02, 0.08)  # daughters drift apart after division
        self.roughness = rng.uniform(0.01, 0.06)
        self.ripples = _Ripples(rng, 6, omega=(1.5, 4.0), nu=(0.2, 1.0))
        self.neck_min = 1.5 * voxel  # furrow radius just before the split
        self.gap = 2.2 * voxel  # > sqrt(3) voxels: daughters never 26-touch
        while self._extent() > EXTENT:
            self.radius0 *= 0.95

    def _frame(self, s: float):
        """Centre, axis and lobe geometry at time ``s``: (center, axis, lobe radius, half distance)."""
        center = self.center0 + self.drift * (s - 0.5)
        angle = self.turn * s
        axis = np.cos(angle) * self.axis0 + np.sin(angle) * np.cross(self.turn_axis, self.axis0)
        grow = 1.0 + self.growth * s
        if s < self.s_div:
            e = float(_smoothstep((s - self.s_elong) / (self.s_div - self.s_elong)))
            r_lobe = self.radius0 * grow * (1.0 - (1.0 - _DAUGHTER_VOLUME) * e)
            r_min = r_lobe * np.exp(-self.roughness)
            neck = max(0.3 * r_lobe, self.neck_min)
            half = e * np.sqrt(max(r_min**2 - neck**2, 0.0))
        else:
            grow_div = 1.0 + self.growth * self.s_div
            r_lobe = self.radius0 * grow_div * _DAUGHTER_VOLUME * (1.0 + 0.5 * self.growth * (s - self.s_div))
            half = r_lobe * np.exp(self.roughness) + 0.5 * self.gap + self.separation * (s - self.s_div)
        return center, axis, r_lobe, half

    def _reach(self, s: float) -> tuple[np.ndarray, float]:
        """Centre and radius of a ball holding the cell at ``s`` (the smooth union adds <= k/4)."""
        center, _, r_lobe, half = self._frame(s)
        return center, half + r_lobe * (np.exp(self.roughness) + 0.05)

    def _extent(self) -> float:
        return max(np.linalg.norm(c) + r for c, r in map(self._reach, _TIME_SAMPLES))

    def bounds(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        center, reach = self._reach(s)
        return center - reach, center + reach

    def mask(self, points: np.ndarray, s: float) -> np.ndarray:
        center, axis, r_lobe, half = self._frame(s)
        lobes = [
            _star(points, center + sign * half * axis, r_lobe, self.roughness, self.ripples, s)
            for sign in (-1.0, 1.0)
        ]
        if s < self.s_div:
            return _smooth_min(lobes[0], lobes[1], 0.2 * r_lobe) < 0
        return (lobes[0] < 0) | (lobes[1] < 0)

    def meta(self, times: np.ndarray) -> dict:
        return {
            "division_frame": int(np.argmax(times >= self.s_div)),
            "division_time": float(self.s_div),
        }


class _Filopodial:
    """Irregular body with capsule protrusions that grow, retract, wobble and branch."""

    BLEND = 0.04  # smooth-union width between body and protrusions (network units)

    def __init__(self, rng, voxel: float):
        self.center = rng.uniform(-0.04, 0.04, size=3)
        self.radius = rng.uniform(0.24, 0.32)
        self.roughness = rng.uniform(0.25, 0.45)  # exp(-0.45) > 0.5: protrusion bases stay inside
        self.ripples = _Ripples(rng, 5, omega=(1.0, 2.5), nu=(0.0, 0.6))
        # Radius 1.6-2.2 voxels at 48^3, never below one voxel (> sqrt(3)/2 keeps a capsule connected).
        self.r_tube = max(rng.uniform(0.068, 0.094), voxel)
        base_depth = 0.5 * self.radius  # protrusions start well inside the body
        reach = (EXTENT - self.r_tube - np.linalg.norm(self.center) - base_depth) / 1.05
        self.tubes = []
        n_tubes = int(rng.integers(4, 10))
        for k in range(n_tubes):
            u = _unit(rng)
            e1 = _perpendicular(u, rng)
            tube = {
                "base": self.center + base_depth * u,
                "u": u,
                "e1": e1,
                "e2": np.cross(u, e1),
                "length": rng.uniform(0.8, 1.0) * reach,
                # grows from start, holds, retracts by start + duration; starts are stratified
                # over [-0.7, 0.7] so that some protrusions are out at any time
                "start": -0.7 + 1.4 * (k + rng.uniform()) / n_tubes,
                "duration": rng.uniform(0.6, 1.4),
                "wobble": rng.uniform(0.1, 0.35),
                "wobble_rate": rng.uniform(0.3, 1.2),
                "wobble_phase": rng.uniform(0.0, 2.0 * np.pi),
                "branch": None,
            }
            if rng.random() < 0.4:
                tube["branch"] = {
                    "at": 0.6,
                    "normal": _perpendicular(u, rng),
                    "angle": rng.uniform(0.5, 0.9),
                    "ratio": rng.uniform(0.3, 0.45),
                }
            self.tubes.append(tube)

    @staticmethod
    def _direction(tube: dict, s: float) -> np.ndarray:
        w = 2.0 * np.pi * tube["wobble_rate"] * s + tube["wobble_phase"]
        d = tube["u"] + tube["wobble"] * (np.sin(w) * tube["e1"] + np.cos(w) * tube["e2"])
        return d / np.linalg.norm(d)

    def _segments(self, s: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Axis segments (start, end) of all protrusions and branches at ``s``."""
        segments = []
        for tube in self.tubes:
            phase = (s - tube["start"]) / tube["duration"]
            grown = _smoothstep(phase / 0.3) * _smoothstep((1.0 - phase) / 0.3)
            length = tube["length"] * grown
            d = self._direction(tube, s)
            segments.append((tube["base"], tube["base"] + length * d))
            branch = tube["branch"]
            if branch is not None and length > 0:
                n = branch["normal"] - np.dot(branch["normal"], d) * d
                n /= np.linalg.norm(n)
                bd = np.cos(branch["angle"]) * d + np.sin(branch["angle"]) * n
                root = tube["base"] + branch["at"] * length * d
                segments.append((root, root + branch["ratio"] * length * bd))
        return segments

    def bounds(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        ends = np.array([p for seg in self._segments(s) for p in seg])
        body = self.radius * np.exp(self.roughness) + self.BLEND
        lo = np.minimum(self.center - body, ends.min(axis=0) - self.r_tube - self.BLEND)
        hi = np.maximum(self.center + body, ends.max(axis=0) + self.r_tube + self.BLEND)
        return lo, hi

    def mask(self, points: np.ndarray, s: float) -> np.ndarray:
        f = _star(points, self.center, self.radius, self.roughness, self.ripples, s)
        for start, end in self._segments(s):
            f = _smooth_min(f, _capsule(points, start, end, self.r_tube), self.BLEND)
        return f < 0

    def meta(self, times: np.ndarray) -> dict:
        return {
            "n_protrusions": len(self.tubes),
            "n_branches": sum(t["branch"] is not None for t in self.tubes),
        }


class _Deforming:
    """Rippling blob with a swinging, volume-preserving elongation and constant volume."""

    def __init__(self, rng, voxel: float):
        self.center0 = rng.uniform(-0.03, 0.03, size=3)
        self.drift = _unit(rng) * rng.uniform(0.0, 0.05)
        self.drift_rate = rng.uniform(0.5, 1.5)
        self.amplitude = rng.uniform(0.2, 0.35)
        self.ripples = _Ripples(rng, 6, omega=(1.5, 3.5), nu=(0.5, 2.0))
        self.axis0 = _unit(rng)
        self.axis1 = _perpendicular(self.axis0, rng)
        self.swing = rng.uniform(0.5, 1.5) * np.pi * rng.choice([-1.0, 1.0])  # radians over the sequence
        self.stretch = rng.uniform(0.1, 0.3)  # log of the largest elongation factor
        self.stretch_rate = rng.uniform(0.5, 1.5)
        self.stretch_phase = rng.uniform(0.0, 2.0 * np.pi)
        self.radius0 = 1.0  # the shape's reach scales with radius0; fit it inside EXTENT
        reach = max(self._reach(s) for s in _TIME_SAMPLES)
        room = EXTENT - np.linalg.norm(self.center0) - np.linalg.norm(self.drift)
        self.radius0 = min(rng.uniform(0.36, 0.46), room / reach)

    def _center(self, s: float) -> np.ndarray:
        return self.center0 + self.drift * np.sin(2.0 * np.pi * self.drift_rate * s)

    def _stretch(self, s: float) -> tuple[np.ndarray, float]:
        angle = self.swing * s
        axis = np.cos(angle) * self.axis0 + np.sin(angle) * self.axis1
        lam = float(np.exp(self.stretch * np.sin(2.0 * np.pi * self.stretch_rate * s + self.stretch_phase)))
        return axis, lam

    def _radius(self, s: float) -> float:
        """Base radius at ``s`` that keeps the volume of ``4/3 pi radius0^3``.

        The volume of a star body ``r(n)`` is ``(1/3) integral r^3 dOmega``,
        evaluated on near-uniform directions; the stretch has determinant 1.
        """
        mean_cube = np.mean(np.exp(3.0 * self.amplitude * self.ripples(_DIRECTIONS, s)))
        return self.radius0 / mean_cube ** (1.0 / 3.0)

    def _reach(self, s: float) -> float:
        """Largest distance of the surface from the shape's centre at ``s`` (3% slack for sampling)."""
        _, lam = self._stretch(s)
        r_max = self._radius(s) * np.exp(self.amplitude * self.ripples(_DIRECTIONS, s).max())
        return 1.03 * r_max * max(lam, lam**-0.5)

    def bounds(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        center, reach = self._center(s), self._reach(s)
        return center - reach, center + reach

    def mask(self, points: np.ndarray, s: float) -> np.ndarray:
        axis, lam = self._stretch(s)
        v = points - self._center(s)
        along = v @ axis
        # Inverse of the stretch S = lam^-1/2 I + (lam - lam^-1/2) a a^T (det S = 1).
        q = v * lam**0.5 + np.outer(along * (1.0 / lam - lam**0.5), axis)
        return _star(q, np.zeros(3), self._radius(s), self.amplitude, self.ripples, s) < 0

    def meta(self, times: np.ndarray) -> dict:
        return {"volume": float(4.0 / 3.0 * np.pi * self.radius0**3)}


def _voxelise(cell, size: int, s: float) -> np.ndarray:
    """Evaluate ``cell.mask`` at the voxel centres of a ``size^3`` grid inside the cell's bounding box."""
    axes = grid_axes(size)
    lo, hi = cell.bounds(s)
    frame = np.zeros((size,) * 3, dtype=bool)
    span = []
    for a, l, h in zip(axes, lo, hi):
        i0, i1 = np.searchsorted(a, l), np.searchsorted(a, h, side="right")
        span.append(slice(int(i0), int(i1)))
    sub = np.meshgrid(*[a[sl].astype(np.float64) for a, sl in zip(axes, span)], indexing="ij")
    points = np.stack([g.ravel() for g in sub], axis=1)
    frame[tuple(span)] = cell.mask(points, s).reshape(sub[0].shape)
    return frame


_BUILDERS = {"dividing": _Dividing, "filopodial": _Filopodial, "deforming": _Deforming}


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")


def _check_grid(size: int, frames: int) -> None:
    if int(size) != size or size < MIN_SIZE:
        raise ValueError(f"size must be an integer of at least {MIN_SIZE} voxels, got {size}")
    if int(frames) != frames or frames < 2:
        raise ValueError(f"frames must be an integer of at least 2, got {frames}")


def make_sequence(
    family: str, *, size: int = 48, frames: int = 12, rng=None, name: str | None = None
) -> MaskSequence:
    """Draw one phantom cell sequence.

    Parameters
    ----------
    family : {"dividing", "filopodial", "deforming"}
        Phantom family (see the module docstring).
    size : int
        Grid side in voxels (>= 16); frames are ``(size, size, size)``.
    frames : int
        Number of frames T (>= 2), sampling time fractions ``linspace(0, 1, T)``.
    rng : int or numpy.random.Generator, optional
        Seed or generator; the same seed gives identical masks.
    name : str, optional
        Sequence name; default the family name.

    Returns
    -------
    MaskSequence
        ``masks`` bool of shape (T, size, size, size), spacing (1, 1, 1)
        (arbitrary units), ``meta`` with ``"family"`` and family facts:
        ``dividing``: ``"division_frame"`` (first frame with two components)
        and ``"division_time"`` (its time fraction); ``filopodial``:
        ``"n_protrusions"``, ``"n_branches"``; ``deforming``: ``"volume"``
        (continuous volume in network units^3).
    """
    _check_family(family)
    _check_grid(size, frames)
    size, frames = int(size), int(frames)
    rng = np.random.default_rng(rng)
    voxel = 2.0 / (size - 1)  # network units per voxel
    cell = _BUILDERS[family](rng, voxel)
    times = np.linspace(0.0, 1.0, frames)
    masks = np.stack([_voxelise(cell, size, float(s)) for s in times])
    meta = {"family": family, **cell.meta(times)}
    return MaskSequence(masks, (1.0, 1.0, 1.0), name or family, meta)


def make_batch(family: str, n: int, *, size: int = 48, frames: int = 12, rng=None) -> list[MaskSequence]:
    """Draw ``n`` phantom sequences of one family, reproducibly.

    Each sequence gets its own seed drawn from ``rng`` (stored as
    ``meta["seed"]``, so ``make_sequence(family, rng=meta["seed"], ...)``
    rebuilds it alone); names are ``f"{family}_{i:03d}"``.

    Parameters
    ----------
    family : {"dividing", "filopodial", "deforming"}
    n : int
        Number of sequences (>= 1).
    size, frames :
        As in :func:`make_sequence`.
    rng : int or numpy.random.Generator, optional
        Seed of the whole batch.

    Returns
    -------
    list of MaskSequence
    """
    _check_family(family)
    _check_grid(size, frames)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer number of sequences, got {n}")
    seeds = np.random.default_rng(rng).integers(0, 2**63 - 1, size=int(n), dtype=np.int64)
    batch = []
    for i, seed in enumerate(seeds):
        seq = make_sequence(family, size=size, frames=frames, rng=int(seed), name=f"{family}_{i:03d}")
        seq.meta["seed"] = int(seed)
        batch.append(seq)
    return batch
