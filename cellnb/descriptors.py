"""Shape descriptors of binary 3D frames and mask sequences, in physical units.

Every descriptor is measured on one frame ``(Z, Y, X)`` with its voxel
``spacing`` ``(dz, dy, dx)``; lengths come out in the units of ``spacing``,
areas in units squared and volumes in units cubed.

Methods
-------
volume
    Voxel count times the voxel volume.
surface_area
    Area of a marching-cubes mesh of the mask smoothed with a Gaussian of
    sigma = 1 voxel, at level 0.5, plus a first-order correction of the
    smoothing's shrinkage.  Marching cubes on the raw mask overestimates a
    ball's area by 8.5% (the voxel staircase); the smoothing removes the
    staircase but moves the level set inwards by about ``sigma**2 * H`` (mean
    curvature ``H``), which loses ``2 sigma**2 * W`` of area, ``W`` being the
    surface's Willmore energy (the integral of ``H**2``).  ``W = 4 pi`` for a
    sphere of any radius and ``W >= 4 pi`` for every closed surface, so
    ``8 pi sigma**2`` per closed surface of the mesh is added back: exact to
    first order for balls, a lower bound of the loss otherwise.  Balls of
    radius 4 to 24 voxels then read within 0.6% (uncorrected: -13% at 4,
    -3.2% at 8, -0.1% at 24 voxels).  With anisotropic spacing ``sigma**2`` is
    the mean over the axes of ``(1 voxel * spacing)**2``.  The mask is padded
    first, so a cell touching the grid border still gets a closed surface.
sphericity
    ``pi**(1/3) * (6 V)**(2/3) / A``: 1 for a ball, smaller for any other shape.
equivalent_diameter
    Diameter of the ball of the same volume, ``(6 V / pi)**(1/3)``.
elongation, flatness
    From the covariance of the voxel centres (physical coordinates), whose
    eigenvalues ``l1 >= l2 >= l3`` give axis lengths ``a, b, c = 2 sqrt(5 l)``
    (exact full axis lengths for a solid ellipsoid; the same lengths as
    scikit-image's ``regionprops`` ``axis_major_length``/``axis_minor_length``).
    ``elongation = b / a`` and ``flatness = c / b``, both in (0, 1], 1 for a
    ball; a cigar has small elongation, a pancake small flatness.
solidity
    Volume enclosed by the surface mesh divided by the volume of its convex
    hull (``scipy.spatial.ConvexHull`` of the mesh vertices).  Both are
    measured on the same smoothed surface, so a convex cell reads 1 and any
    concavity less.
n_components
    Number of 26-connected foreground components (:func:`cellnb.sdf.component_counts`).
euler_characteristic
    ``skimage.measure.euler_number`` with 26-connectivity for the foreground:
    components + cavities - tunnels (1 for a ball, 0 for a solid torus).
n_protrusions, protrusion_length
    The cell body is the morphological opening of the mask with a ball of
    radius ``PROTRUSION_OPENING_FRACTION`` times the equivalent radius (at
    least ``MIN_OPENING_VOXELS`` voxels), computed exactly with two Euclidean
    distance transforms.  Components of the residue (mask minus body) that
    touch the body and reach at least one opening radius away from it are the
    protrusions; shorter residue is the rim the opening shaves off bumps and
    necks.  A protrusion's length is the length of its skeleton
    (``skimage.morphology.skeletonize`` on the component's bounding box): the
    minimum spanning tree of its 26-connected skeleton voxels, with edges
    measured in physical units, so diagonal and anisotropic steps count at
    their true length.  The skeleton of a cut-off protrusion stops short of
    both ends by about the protrusion's radius, so the length reads slightly
    short.  Where ``skeletonize`` thins an arm to nothing (it can do so for
    some even-width bars, scikit-image issue #3757), the arm's reach (its
    largest distance from the body) is used instead.

An empty frame has no shape: its descriptors are NaN (``n_components`` 0) and
a ``RuntimeWarning`` is issued.

Time convention: the ``t`` column of a sequence's table is the network time of
:func:`cellnb.sdf.time_coords`, ``linspace(-1, 1, T)``; first frame -1, last +1.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial import ConvexHull, QhullError, cKDTree
from skimage.measure import euler_number, marching_cubes, mesh_surface_area
from skimage.morphology import skeletonize
from tqdm.auto import tqdm

from cellnb.io import read_mask_stack, read_sdf_h5
from cellnb.sdf import (
    CONNECTIVITY_26,
    component_counts,
    label_components,
    principal_axes,
    sdf_to_mask,
    time_coords,
)
from cellnb.sequence import check_spacing

__all__ = [
    "DESCRIPTOR_COLUMNS",
    "TABLE_COLUMNS",
    "SMOOTHING_SIGMA_VOXELS",
    "PROTRUSION_OPENING_FRACTION",
    "MIN_OPENING_VOXELS",
    "describe_frame",
    "describe_sequence",
    "describe_path",
]

logger = logging.getLogger(__name__)

DESCRIPTOR_COLUMNS = [
    "volume",
    "surface_area",
    "sphericity",
    "equivalent_diameter",
    "elongation",
    "flatness",
    "solidity",
    "n_components",
    "euler_characteristic",
    "n_protrusions",
    "protrusion_length",
]
TABLE_COLUMNS = ["sequence", "frame", "t", *DESCRIPTOR_COLUMNS]

SMOOTHING_SIGMA_VOXELS = 1.0  # Gaussian before marching cubes: removes the +8.5% staircase error (NOTES.md)
PROTRUSION_OPENING_FRACTION = 0.35  # opening radius / equivalent radius: keeps the body, removes thin arms
MIN_OPENING_VOXELS = 2.0  # an opening radius below two voxels only shaves the voxel staircase

_PAD = int(np.ceil(4 * SMOOTHING_SIGMA_VOXELS)) + 1  # room for the Gaussian tail (truncate=4) and a closed mesh
_SUFFIXES_SDF = (".h5", ".hdf5")
_SUFFIXES_TIFF = (".tif", ".tiff")


def _frame(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must be one 3D frame (Z, Y, X), got shape {mask.shape}; index a sequence by frame")
    return mask.astype(bool, copy=False)


def _surface(padded: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Marching-cubes mesh of a padded frame smoothed with sigma = 1 voxel, and its corrected area.

    Returns the vertices (physical units), the faces and the surface area with
    the smoothing's first-order loss added back (module docstring).  A frame
    too thin to survive the smoothing is meshed raw, without correction.
    """
    field = ndimage.gaussian_filter(padded.astype(np.float32), SMOOTHING_SIGMA_VOXELS)
    smoothed = field.max() > 0.5
    if not smoothed:
        logger.debug("frame too thin to survive smoothing; meshing the raw mask")
        field = padded.astype(np.float32)
    verts, faces, _, _ = marching_cubes(field, level=0.5, spacing=tuple(spacing))
    area = float(mesh_surface_area(verts, faces))
    if smoothed:
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
        graph = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(verts),) * 2)
        n_surfaces = connected_components(graph, directed=False)[0]
        sigma2 = SMOOTHING_SIGMA_VOXELS**2 * float(np.mean(spacing**2))  # sphere-averaged over normal directions
        area += 8.0 * np.pi * sigma2 * n_surfaces
    return verts, faces, area


def _mesh_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume of a closed triangle mesh (divergence theorem)."""
    tri = verts[faces]
    return abs(float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum())) / 6.0


def _skeleton_length(component: np.ndarray, spacing: np.ndarray) -> float:
    """Physical length of the minimum spanning tree of a component's 26-connected skeleton voxels."""
    points = np.argwhere(skeletonize(np.pad(component, 1)))
    if len(points) < 2:
        return 0.0
    pairs = cKDTree(points).query_pairs(np.sqrt(3.0) + 1e-6, output_type="ndarray")
    if len(pairs) == 0:
        return 0.0
    weights = np.linalg.norm((points[pairs[:, 0]] - points[pairs[:, 1]]) * spacing, axis=1)
    graph = sparse.coo_matrix((weights, (pairs[:, 0], pairs[:, 1])), shape=(len(points),) * 2)
    return float(minimum_spanning_tree(graph.tocsr()).sum())


def _protrusions(padded: np.ndarray, spacing: np.ndarray, radius: float) -> tuple[int, float]:
    """Count and total skeleton length of the arms an opening of radius ``radius`` (physical) removes."""
    eroded = ndimage.distance_transform_edt(padded, sampling=spacing) > radius
    if not eroded.any():
        return 0, 0.0
    to_core = ndimage.distance_transform_edt(~eroded, sampling=spacing)
    body = to_core <= radius  # the opening: the eroded core dilated by the same ball
    residue = padded & ~body
    labels, n = label_components(residue)
    if n == 0:
        return 0, 0.0
    index = np.arange(1, n + 1)
    component = labels[residue]  # per-component maxima over the residue voxels only (fast)
    touches = np.asarray(ndimage.maximum(ndimage.binary_dilation(body, structure=CONNECTIVITY_26)[residue], component, index)) > 0
    # distance to the body = distance to the core minus the radius (the body is the core grown by the ball)
    reach = np.asarray(ndimage.maximum(to_core[residue], component, index)) - radius
    keep = touches & (reach >= radius)
    boxes = ndimage.find_objects(labels)
    length = 0.0
    for i in np.flatnonzero(keep):
        skeleton = _skeleton_length(labels[boxes[i]] == i + 1, spacing)
        # skeletonize can thin some even-width bars to nothing (scikit-image issue #3757):
        # then the arm's reach from the body stands in for its length.
        length += skeleton if skeleton > 0 else float(reach[i])
    return int(keep.sum()), length


def _empty_descriptors() -> dict:
    values = {name: float("nan") for name in DESCRIPTOR_COLUMNS}
    values["n_components"] = 0
    return values


def describe_frame(mask, *, spacing=(1.0, 1.0, 1.0)) -> dict:
    """Shape descriptors of one binary frame (methods in the module docstring).

    Parameters
    ----------
    mask : ndarray of bool, shape (Z, Y, X)
        Foreground is any non-zero voxel; the cell may touch the grid border.
    spacing : tuple of 3 floats
        Voxel size (dz, dy, dx) in physical units.

    Returns
    -------
    descriptors : dict
        One value per name in :data:`DESCRIPTOR_COLUMNS`: volume (units^3),
        surface_area (units^2), sphericity, equivalent_diameter (units),
        elongation, flatness, solidity (ratios), n_components,
        euler_characteristic, n_protrusions (counts), protrusion_length
        (units).  An empty frame gives NaN everywhere but ``n_components = 0``,
        with a ``RuntimeWarning``.
    """
    mask = _frame(mask)
    spacing = np.asarray(check_spacing(spacing))
    if not mask.any():
        warnings.warn("empty frame: shape descriptors are NaN", RuntimeWarning, stacklevel=2)
        return _empty_descriptors()
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    padded = np.pad(mask[box], _PAD, constant_values=False)

    volume = float(padded.sum()) * float(np.prod(spacing))
    verts, faces, area = _surface(padded, spacing)
    try:
        solidity = _mesh_volume(verts, faces) / ConvexHull(verts).volume
    except QhullError:  # a flat surface has no 3D hull
        solidity = float("nan")
    _, lengths, _ = principal_axes(padded, spacing=spacing)
    a, b, c = lengths
    radius = (3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0)
    opening = max(PROTRUSION_OPENING_FRACTION * radius, MIN_OPENING_VOXELS * float(spacing.max()))
    n_protrusions, protrusion_length = _protrusions(padded, spacing, opening)
    return {
        "volume": volume,
        "surface_area": area,
        "sphericity": float(np.pi ** (1.0 / 3.0) * (6.0 * volume) ** (2.0 / 3.0) / area),
        "equivalent_diameter": 2.0 * radius,
        "elongation": float(b / a) if a > 0 else float("nan"),
        "flatness": float(c / b) if b > 0 else float("nan"),
        "solidity": float(solidity),
        "n_components": int(component_counts(padded)[0]),
        "euler_characteristic": int(euler_number(padded, connectivity=3)),
        "n_protrusions": n_protrusions,
        "protrusion_length": protrusion_length,
    }


def describe_sequence(
    masks, *, spacing=(1.0, 1.0, 1.0), name: str = "sequence", progress: bool = False
) -> pd.DataFrame:
    """Descriptors of every frame of a mask sequence as a tidy table.

    Parameters
    ----------
    masks : ndarray of bool, shape (T, Z, Y, X)
    spacing : tuple of 3 floats
        Voxel size (dz, dy, dx) in physical units.
    name : str
        Written to the ``sequence`` column.
    progress : bool
        Show a tqdm bar over frames.

    Returns
    -------
    table : pandas.DataFrame
        One row per frame, columns :data:`TABLE_COLUMNS`: ``sequence``,
        ``frame`` (0-based), ``t`` (``linspace(-1, 1, T)``, see
        :func:`cellnb.sdf.time_coords`), then :data:`DESCRIPTOR_COLUMNS`.
    """
    masks = np.asarray(masks)
    if masks.ndim != 4 or masks.shape[0] == 0:
        raise ValueError(
            f"masks must have shape (T, Z, Y, X) with T >= 1, got {masks.shape}; use masks[None] for one frame"
        )
    spacing = np.asarray(check_spacing(spacing))
    times = time_coords(masks.shape[0])
    rows = []
    for k, frame in enumerate(tqdm(masks, desc=f"describe {name}", disable=not progress, leave=False)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            row = describe_frame(frame, spacing=spacing)
        for w in caught:
            warnings.warn(f"sequence {name!r} frame {k}: {w.message}", w.category, stacklevel=2)
        rows.append({"sequence": name, "frame": k, "t": float(times[k]), **row})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _tiff_is_sequence(path: Path) -> bool:
    """Whether a TIFF file holds a (T, Z, Y, X) stack rather than one (Z, Y, X) frame."""
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.series[0].shape) >= 4
    except Exception as err:  # tifffile raises several types for corrupt files
        raise ValueError(f"{path} is not a readable TIFF file ({err})") from None


def _sources(path: Path) -> list[Path]:
    """The sequences under ``path``: SDF files, multi-frame TIFFs and folders of TIFF frames."""
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.is_file():
        if path.suffix.lower() not in _SUFFIXES_SDF + _SUFFIXES_TIFF:
            raise ValueError(f"{path} is neither a TIFF mask (.tif/.tiff) nor an SDF file (.h5); "
                             "pass masks or SDFs from `cellnb prepare`")
        return [path]
    sources = []
    for p in sorted(p for p in path.iterdir() if not p.name.startswith(".")):
        if p.is_dir() and not any(q.suffix.lower() in _SUFFIXES_TIFF for q in p.iterdir()):
            logger.info("skipping folder %s: it holds no TIFF frames (describe it on its own)", p)
        elif p.is_dir() or p.suffix.lower() in _SUFFIXES_SDF + _SUFFIXES_TIFF:
            sources.append(p)
        elif p.suffix.lower() != ".json":  # the summaries `cellnb prepare` and `generate` write beside their files
            logger.warning("skipping %s: neither a TIFF mask, an SDF file nor a folder of frames", p)
    if not sources:
        raise ValueError(f"folder {path} holds no TIFF masks, SDF .h5 files or folders of TIFF frames")
    if all(p.is_file() and p.suffix.lower() in _SUFFIXES_TIFF for p in sources) and not any(
        _tiff_is_sequence(p) for p in sources
    ):
        return [path]  # one sequence: a folder of frames mask000.tif, mask001.tif, ...
    return sources


def _load(source: Path) -> tuple[np.ndarray, tuple | None, str]:
    """Masks (T, Z, Y, X), recorded spacing or None, and name of one sequence source."""
    if source.is_file() and source.suffix.lower() in _SUFFIXES_SDF:
        sdf, record = read_sdf_h5(source)
        bad = np.flatnonzero(~np.isfinite(sdf).all(axis=(1, 2, 3)))
        if bad.size:
            raise ValueError(f"{source} holds NaN or infinite SDF values in frame(s) {bad.tolist()}; "
                             "its shapes are undefined there: rebuild or regenerate the file")
        spacing = record.get("spacing")
        name = str(record.get("name") or source.stem)
        return sdf_to_mask(sdf), (tuple(spacing) if spacing is not None else None), name
    name = source.resolve().name if source.is_dir() else source.stem
    return read_mask_stack(source) > 0, None, name


def describe_path(path, *, spacing=None, progress: bool = False) -> pd.DataFrame:
    """Descriptors of the sequences stored at ``path`` (the ``cellnb describe`` input).

    Parameters
    ----------
    path : path-like
        One of: a folder of TIFF frames (one sequence, frames in name order,
        ``mask000.tif``, ...); a multi-frame TIFF ``(T, Z, Y, X)``; an SDF
        ``.h5`` file (mask = ``sdf < 0``); or a folder holding several of these,
        one sequence each (grid sizes may differ: descriptors are physical).
        Label images count every non-zero voxel as foreground.  Hidden files
        are ignored; other files in a folder are skipped with a warning.
    spacing : tuple of 3 floats, optional
        Voxel size (dz, dy, dx) for inputs that do not record one (TIFFs, SDF
        files without ``spacing`` in their record).  An SDF file's recorded
        spacing always wins.  Without either, (1, 1, 1) is used, a warning is
        logged and the note is kept in ``table.attrs["spacing_note"]``.
    progress : bool
        Show a tqdm bar over frames.

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`, the sequences stacked in name order.
        A sequence is named by its SDF record's ``name``, its folder or its
        file stem; a name already taken gets the file name appended.
        ``table.attrs["spacing_note"]`` is set when a default spacing was used.

    Raises
    ------
    ValueError
        For a file that is neither a TIFF mask nor an SDF file (naming it).
    """
    path = Path(path)
    given = check_spacing(spacing) if spacing is not None else None
    tables, defaulted, names = [], [], set()
    for source in _sources(path):
        masks, recorded, name = _load(source)
        if name in names:  # e.g. cell.tif next to cell.h5: keep the sequences apart
            name = f"{name} ({source.name})"
        names.add(name)
        if recorded is not None:
            if given is not None and not np.allclose(recorded, given):
                logger.info("%s records spacing %s; ignoring the given %s", source, recorded, given)
            used = recorded
        elif given is not None:
            used = given
        else:
            used = (1.0, 1.0, 1.0)
            defaulted.append(name)
        tables.append(describe_sequence(masks, spacing=used, name=name, progress=progress))
    table = pd.concat(tables, ignore_index=True)
    if defaulted:
        note = (f"no voxel spacing known for {', '.join(defaulted)}: assumed (1, 1, 1), so sizes are in voxels; "
                "pass spacing (--spacing DZ DY DX) for physical units")
        logger.warning(note)
        table.attrs["spacing_note"] = note
    return table
