"""The in-memory form of a 3D+time cell segmentation: :class:`MaskSequence`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["MaskSequence", "check_spacing"]


def check_spacing(spacing, *, name: str = "spacing") -> tuple[float, float, float]:
    """A voxel size (Z, Y, X) as three positive floats; a single number applies to all three axes.

    Raises
    ------
    ValueError
        Naming ``name``, for anything but three positive finite numbers.
    """
    values = np.asarray(spacing, dtype=float)
    if values.ndim == 0:
        values = np.repeat(values, 3)
    if values.shape != (3,) or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"{name} must be three positive voxel sizes (Z, Y, X), got {spacing}")
    return tuple(float(v) for v in values)


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
        self.spacing = check_spacing(self.spacing)

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.masks.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Frame shape (Z, Y, X)."""
        return tuple(int(s) for s in self.masks.shape[1:])
