"""A classical baseline segmentation of fluorescence images, and the CTC SEG measure to score it.

The baseline (scikit-image): Gaussian smoothing, a global Otsu threshold,
holes filled, small objects removed, and a watershed on the distance
transform to split touching cells (markers: h-maxima of the distance, so a
neck between two cells splits them and a noisy boundary does not).  Lengths
are in micrometres and follow the images' voxel size, so the same settings
work on anisotropic stacks.

The SEG measure of the Cell Tracking Challenge (Maška et al., Bioinformatics
30:1609, 2014; Ulman et al., Nature Methods 14:1141, 2017): a reference
object R is matched by the segmented object S that covers more than half of
it (``|R & S| > |R| / 2``; at most one S can); its score is the Jaccard index
``|R & S| / |R | S|``, 0 when unmatched; SEG is the mean over all reference
objects.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import filters, morphology, segmentation

from cellnb.sdf import CONNECTIVITY_26, dice
from cellnb.sequence import check_spacing

__all__ = ["smooth", "otsu_foreground", "segment_cells", "seg_scores", "seg_score", "score_baseline"]

_DEFAULT_SIGMA_VOXELS = 1.0  # smoothing sigma, in lateral voxels, when none is given
_DEFAULT_SPLIT_VOXELS = 2.0  # h of the h-maxima markers, in lateral voxels, when none is given
_DEFAULT_MIN_VOXELS = 27  # objects smaller than a 3 x 3 x 3 cube are noise


def _image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be one 3D frame (Z, Y, X), got shape {image.shape}")
    return image.astype(np.float32)


def smooth(image, *, spacing=(1.0, 1.0, 1.0), sigma: float | None = None) -> np.ndarray:
    """Gaussian smoothing with a physical sigma (um; default one lateral voxel), per axis in voxels.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
    spacing : tuple of 3 floats
        Voxel size (um).
    sigma : float, optional
        Standard deviation in um.

    Returns
    -------
    ndarray of float32, shape (Z, Y, X)
    """
    spacing = np.asarray(check_spacing(spacing))
    sigma = _DEFAULT_SIGMA_VOXELS * spacing[2] if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be a positive length in um, got {sigma}")
    return filters.gaussian(_image(image), sigma=sigma / spacing, preserve_range=True).astype(np.float32)


def otsu_foreground(image, *, spacing=(1.0, 1.0, 1.0), sigma: float | None = None) -> np.ndarray:
    """Plain Otsu threshold of the Gaussian-smoothed image: foreground mask ``(Z, Y, X)`` bool."""
    smoothed = smooth(image, spacing=spacing, sigma=sigma)
    return smoothed > filters.threshold_otsu(smoothed)


def segment_cells(image, *, spacing=(1.0, 1.0, 1.0), sigma: float | None = None, split: float | None = None,
                  min_voxels: int = _DEFAULT_MIN_VOXELS) -> np.ndarray:
    """Baseline instance segmentation of a fluorescence frame.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
    spacing : tuple of 3 floats
        Voxel size (um).
    sigma : float, optional
        Smoothing sigma (um); default one lateral voxel.
    split : float, optional
        Watershed markers are the h-maxima of the distance transform with
        ``h = split`` (um; default two lateral voxels): two cells joined by a
        neck thinner than ``2 (r - split)`` are split.
    min_voxels : int
        Objects with fewer voxels are removed.

    Returns
    -------
    labels : ndarray of int32, shape (Z, Y, X)
        0 background, 1..n cells.
    """
    spacing = np.asarray(check_spacing(spacing))
    foreground = ndimage.binary_fill_holes(otsu_foreground(image, spacing=spacing, sigma=sigma))
    components, _ = ndimage.label(foreground, structure=CONNECTIVITY_26)
    sizes = np.bincount(components.ravel())
    foreground &= (sizes >= int(min_voxels))[components]
    if not foreground.any():
        return np.zeros(foreground.shape, dtype=np.int32)
    distance = ndimage.distance_transform_edt(foreground, sampling=spacing)
    h = _DEFAULT_SPLIT_VOXELS * spacing[2] if split is None else float(split)
    if not h > 0:
        raise ValueError(f"split must be a positive height in um, got {split}")
    markers, _ = ndimage.label(morphology.h_maxima(distance, h), structure=CONNECTIVITY_26)
    labels = segmentation.watershed(-distance, markers, mask=foreground, connectivity=3)
    return labels.astype(np.int32)


def _frames(reference, segmented) -> tuple[np.ndarray, np.ndarray]:
    reference, segmented = np.asarray(reference), np.asarray(segmented)
    if reference.shape != segmented.shape:
        raise ValueError(f"reference {reference.shape} and segmented {segmented.shape} must have one shape")
    if reference.ndim == 3:
        return reference[None], segmented[None]
    if reference.ndim != 4:
        raise ValueError(f"labels must be a frame (Z, Y, X) or a time-lapse (T, Z, Y, X), got {reference.shape}")
    return reference, segmented


def seg_scores(reference, segmented) -> np.ndarray:
    """CTC SEG score of every reference object (Jaccard index if matched, else 0).

    Parameters
    ----------
    reference, segmented : ndarray of int, shape (Z, Y, X) or (T, Z, Y, X)
        Label images (0 background); frames are scored separately.

    Returns
    -------
    ndarray of float, one score per reference object (frame by frame, in label order)
    """
    reference, segmented = _frames(reference, segmented)
    scores = []
    for ref, seg in zip(reference, segmented):
        ref = ref.astype(np.int64).ravel()
        seg = seg.astype(np.int64).ravel()
        n_seg = int(seg.max(initial=0)) + 1
        ref_ids, ref_sizes = np.unique(ref[ref > 0], return_counts=True)
        seg_sizes = np.bincount(seg, minlength=n_seg)
        both = (ref > 0) & (seg > 0)
        keys, overlap = np.unique(ref[both] * n_seg + seg[both], return_counts=True)
        best = dict.fromkeys(ref_ids.tolist(), 0.0)
        size_of = dict(zip(ref_ids.tolist(), ref_sizes.tolist()))
        for key, inter in zip(keys.tolist(), overlap.tolist()):
            r, s = divmod(key, n_seg)
            if 2 * inter > size_of[r]:
                best[r] = inter / (size_of[r] + seg_sizes[s] - inter)
        scores.extend(best[r] for r in ref_ids.tolist())
    return np.asarray(scores, dtype=float)


def seg_score(reference, segmented) -> float:
    """CTC SEG: the mean of :func:`seg_scores` over all reference objects (NaN when there are none)."""
    scores = seg_scores(reference, segmented)
    return float(scores.mean()) if scores.size else float("nan")


def score_baseline(images, reference, *, spacing=(1.0, 1.0, 1.0), sigma: float | None = None) -> dict:
    """Run the baseline on every frame of a time-lapse and score it against the ground truth.

    Parameters
    ----------
    images : ndarray, shape (T, Z, Y, X)
    reference : ndarray of int, shape (T, Z, Y, X)
        Ground-truth labels.
    spacing : tuple of 3 floats
        Voxel size (um).
    sigma : float, optional
        Smoothing sigma (um), as in :func:`segment_cells`.

    Returns
    -------
    dict
        ``seg`` (CTC SEG over all frames), ``dice_otsu`` (mean over frames of
        the Dice of :func:`otsu_foreground` with the foreground), ``labels``
        (the segmentation, int32 (T, Z, Y, X)).
    """
    images, reference = np.asarray(images), np.asarray(reference)
    if images.ndim != 4 or images.shape != reference.shape:
        raise ValueError(f"images {images.shape} and reference {reference.shape} must be (T, Z, Y, X) of one shape")
    labels = np.stack([segment_cells(img, spacing=spacing, sigma=sigma) for img in images])
    overlap = [dice(otsu_foreground(img, spacing=spacing, sigma=sigma), ref > 0) for img, ref in zip(images, reference)]
    return {"seg": seg_score(reference, labels), "dice_otsu": float(np.mean(overlap)), "labels": labels}
