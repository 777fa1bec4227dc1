"""The in-memory form of a 3D+time cell segmentation: :class:`MaskSequence`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["MaskSequence"]


@dataclass
class MaskSequence:
    """One cell (or one dividing cell and its daughters) over time.

    Parameters
    ----------
    masks : ndarray of bool, shape (T, Z, Y, X)
        Foreground of each frame, C order (see :mod:`cellnb.sdf` for axes).
    spacing : tuple of 3 floats
        Physical size of a voxel along Z, Y, X (micrometres for real data,
        arbitrary units for phantoms).
    name : str
        Identifier, used as the file stem when the sequence is saved.
    meta : dict
        JSON-serialisable facts about the sequence, e.g. ``{"family":
        "dividing", "division_frame": 7}`` (first frame with two components).
    """

    masks: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    name: str = "sequence"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        masks = np.asarray(self.masks)
        if masks.ndim != 4:
            raise ValueError(
                f"masks must have shape (T, Z, Y, X), got {masks.ndim} dimensions {masks.shape}; "
                "add a time axis with masks[None] for a single frame"
            )
        if masks.shape[0] == 0:
            raise ValueError("masks has no frames; pass at least one frame")
        self.masks = masks.astype(bool, copy=False)
        spacing = tuple(float(s) for s in np.broadcast_to(np.asarray(self.spacing, dtype=float), (3,)))
        if not all(np.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"spacing must be three positive numbers (Z, Y, X), got {self.spacing}")
        self.spacing = spacing

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.masks.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Frame shape (Z, Y, X)."""
        return tuple(int(s) for s in self.masks.shape[1:])
