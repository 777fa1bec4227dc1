"""Shared test helpers: where the real data lives, small analytic shapes."""

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    """``$CELLNB_DATA_DIR``, or the workspace copy beside the repository."""
    return Path(os.environ.get("CELLNB_DATA_DIR") or REPO.parent / "shared" / "data" / "real").resolve()


def celegans_available() -> bool:
    """Whether the C. elegans data (``celegans-3dmms/membSeg``) is under :func:`real_data_dir`."""
    return (real_data_dir() / "celegans-3dmms" / "membSeg").is_dir()


def ball(shape, center, radius, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Voxelised ball: voxel centres within ``radius`` (physical units) of ``center`` (voxel indices)."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing))
    return d2 <= radius**2
