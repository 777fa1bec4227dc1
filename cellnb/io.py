"""Files: SDF data sets (HDF5, official layout), TIFF masks, meshes, checkpoints.

Every writer goes through :func:`atomic_path`: data are written to a
temporary file next to the target and renamed when complete, so a killed run
never leaves a half-written file, and an existing file is only replaced when
``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import tifffile
import torch

__all__ = [
    "SDF_DATASET",
    "atomic_path",
    "atomic_folder",
    "check_writable_file",
    "check_writable_folder",
    "temporary_folder",
    "discard_folder",
    "swap_in",
    "frame_files",
    "tiff_spacing",
    "read_label_stack",
    "write_json",
    "read_json",
    "write_sdf_h5",
    "read_sdf_h5",
    "read_sdf_frame",
    "sdf_h5_info",
    "read_mask_stack",
    "write_ctc_masks",
    "write_mesh",
    "save_checkpoint",
    "load_checkpoint",
]

SDF_DATASET = "sdf_vid"  # dataset name of the official SDF files
_RECORD_ATTR = "cellnb"  # file attribute holding our JSON record
_TIFF_SUFFIXES = (".tif", ".tiff")
_FRAME_NUMBER = re.compile(r"\d+")
_AXES = "TZYX"
_OME_SIZE = re.compile(r'PhysicalSize([XYZ])="([0-9.eE+-]+)"')
_OME_UNIT = re.compile(r'PhysicalSize([XYZ])Unit="([^"]+)"')
# Length units of TIFF metadata in micrometres (ImageJ writes micrometres as "micron" or "\u00B5m").
_TO_UM = {"um": 1.0, "µm": 1.0, "\\u00B5m": 1.0, "micron": 1.0, "microns": 1.0, "nm": 1e-3, "mm": 1e3}
_MESH_SUFFIXES = (".ply", ".stl", ".vtp", ".vtk", ".obj")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, mode: int) -> None:
    """Give a temporary file or folder the permissions a normal create would (``mode & ~umask``).

    ``tempfile`` makes them private (0600 / 0700); what cellnb writes is meant to be shared like
    any file the user makes.
    """
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = False):
    """Yield a temporary path that is renamed to ``path`` when the block succeeds.

    The file gets the permissions of an ordinary new file (the user's umask).

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If ``path`` is an existing folder.
    """
    path = check_writable_file(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        _publish_mode(tmp, 0o666)
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable_file(path, *, overwrite: bool) -> Path:
    """Refuse an output file that exists (unless ``overwrite``) or is a folder, before any work."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is an existing folder; give the path of a file to write")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    return path


def temporary_folder(dest) -> tuple[Path, list[Path]]:
    """A new hidden folder beside ``dest`` to build it in, and the parent folders created for it.

    The parents are listed innermost first, so :func:`discard_folder` can remove
    them again when the build fails.
    """
    dest = Path(dest)
    made, parent = [], dest.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    _publish_mode(tmp, 0o777)
    return tmp, made


def discard_folder(tmp, made=()) -> None:
    """Remove a failed build's temporary folder and the (empty) parents made for it."""
    shutil.rmtree(tmp, ignore_errors=True)
    for folder in made:
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()


def swap_in(tmp, dest) -> Path:
    """Move the finished folder ``tmp`` to ``dest``; an old ``dest`` is deleted only after the move."""
    tmp, dest = Path(tmp), Path(dest)
    if not dest.exists():
        os.replace(tmp, dest)
        return dest
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.replace(dest, old / dest.name)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(old / dest.name, dest)  # the old folder goes back where it was
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def check_writable_folder(dest, *, overwrite: bool) -> Path:
    """Refuse an output folder that exists (unless ``overwrite``) or is a file, before any work."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"{dest} is an existing file; give the path of a folder to write")
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} already exists; pass overwrite=True (--overwrite) or choose another folder")
    return dest


@contextlib.contextmanager
def atomic_folder(dest, *, overwrite: bool = False):
    """Build a whole output folder in a temporary folder beside ``dest``; swap it in on success.

    The one meaning of ``--overwrite`` for every writer of a folder: an
    existing ``dest`` is refused unless ``overwrite``, and replaced only when
    the new one is complete, so a failure (or Ctrl-C) leaves the old folder
    exactly as it was and no temporary folder behind.

    Yields
    ------
    tmp : pathlib.Path
        The folder to write into.
    """
    dest = check_writable_folder(dest, overwrite=overwrite)
    tmp, made = temporary_folder(dest)
    try:
        yield tmp
        swap_in(tmp, dest)
    except BaseException:
        discard_folder(tmp, made)
        raise


def write_json(path, obj, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    return Path(path)


def read_json(path) -> dict:
    """Read a JSON file; a missing file reads as an empty dict.

    Raises
    ------
    ValueError
        If the file is not valid JSON (naming the file).
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); restore it or delete it and rerun the step that wrote it") from None


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_sdf_h5(path, sdf: np.ndarray, *, record: dict | None = None, overwrite: bool = False) -> Path:
    """Write one SDF sequence in the official HDF5 layout.

    The dataset ``sdf_vid`` holds ``sdf.transpose(3, 2, 1, 0)`` (float32, one
    gzip chunk per frame), so the official reader expression
    ``numpy.asarray(f["sdf_vid"]).transpose(3, 2, 1, 0)`` gives back ``sdf``.

    Parameters
    ----------
    path : path-like
        Target ``.h5`` file.
    sdf : ndarray, shape (T, D0, D1, D2)
    record : dict, optional
        JSON-serialisable facts kept in the file attribute ``cellnb``: name,
        source, spacing (physical voxel size), scale (voxels per SDF unit),
        clamp (voxels) and meta.
    overwrite : bool
        Replace an existing file.
    """
    sdf = np.asarray(sdf, dtype=np.float32)
    if sdf.ndim != 4:
        raise ValueError(f"sdf must have shape (T, D0, D1, D2), got {sdf.shape}")
    if not np.all(np.isfinite(sdf)):
        raise ValueError("sdf contains NaN or infinite values; fix the source masks before writing")
    stored = sdf.transpose(3, 2, 1, 0)
    with atomic_path(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset(SDF_DATASET, data=stored, chunks=stored.shape[:3] + (1,), compression="gzip")
            f.attrs[_RECORD_ATTR] = json.dumps(record or {}, default=_json_default)
    return Path(path)


def _open_sdf(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SDF file {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file ({err})") from None
    if SDF_DATASET not in f or f[SDF_DATASET].ndim != 4:
        f.close()
        raise ValueError(f"{path} has no 4D dataset {SDF_DATASET!r}; is it an SDF file from `cellnb prepare`?")
    return f


def _record(f) -> dict:
    raw = f.attrs.get(_RECORD_ATTR)
    if raw is None:
        return {}
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(
            f"{f.filename}: its {_RECORD_ATTR!r} record is not valid JSON ({err}); rebuild the file with `cellnb prepare`"
        ) from None
    if not isinstance(record, dict):
        raise ValueError(f"{f.filename}: its {_RECORD_ATTR!r} record is not a JSON object; rebuild the file")
    return record


def read_sdf_h5(path) -> tuple[np.ndarray, dict]:
    """Read an SDF sequence written by :func:`write_sdf_h5` or by the official code.

    Returns
    -------
    sdf : ndarray of float32, shape (T, D0, D1, D2)
    record : dict
        Our JSON record, or ``{}`` for official files.
    """
    with _open_sdf(path) as f:
        sdf = np.asarray(f[SDF_DATASET], dtype=np.float32).transpose(3, 2, 1, 0)
        return np.ascontiguousarray(sdf), _record(f)


def read_sdf_frame(path, t: int) -> np.ndarray:
    """Read frame ``t`` of an SDF file without loading the others: ``(D0, D1, D2)`` float32."""
    with _open_sdf(path) as f:
        n = f[SDF_DATASET].shape[3]
        if not -n <= t < n:
            raise IndexError(f"frame {t} out of range for {path} with {n} frames")
        return np.ascontiguousarray(np.asarray(f[SDF_DATASET][..., t], dtype=np.float32).transpose(2, 1, 0))


def sdf_h5_info(path) -> tuple[int, tuple[int, int, int], dict]:
    """Frame count, frame shape ``(D0, D1, D2)`` and record of an SDF file, without reading the data."""
    with _open_sdf(path) as f:
        d2, d1, d0, t = f[SDF_DATASET].shape
        return int(t), (int(d0), int(d1), int(d2)), _record(f)


def tiff_spacing(path) -> tuple[float, float, float] | None:
    """Voxel size (Z, Y, X) in micrometres from a TIFF's ImageJ or OME metadata, or None.

    ImageJ hyperstacks keep the Z step as ``spacing`` and the pixel size as the
    X/Y resolution tags (pixels per unit); OME-TIFFs keep ``PhysicalSizeX|Y|Z``
    (micrometres unless a ``PhysicalSize*Unit`` says otherwise).
    """
    with tifffile.TiffFile(path) as tif:
        if tif.ome_metadata:
            sizes = {k: float(v) for k, v in _OME_SIZE.findall(tif.ome_metadata)}
            units = dict(_OME_UNIT.findall(tif.ome_metadata))
            if {"X", "Y", "Z"} <= set(sizes):
                factor = {k: _TO_UM.get(units.get(k, "um"), 1.0) for k in "ZYX"}
                return tuple(sizes[k] * factor[k] for k in "ZYX")
        meta = tif.imagej_metadata or {}
        tags = tif.pages[0].tags
        if "spacing" in meta and "XResolution" in tags and "YResolution" in tags:
            (xn, xd), (yn, yd) = tags["XResolution"].value, tags["YResolution"].value
            if xn and yn:
                factor = _TO_UM.get(str(meta.get("unit", "um")), 1.0)
                return tuple(v * factor for v in (float(meta["spacing"]), float(yd) / float(yn), float(xd) / float(xn)))
    return None


def _reorder(data: np.ndarray, axes: str, path) -> np.ndarray:
    """``data`` with axes named by ``axes`` (letters of TZYX, any order) as ``(T, Z, Y, X)``."""
    axes = axes.upper()
    if len(axes) != data.ndim or len(set(axes)) != len(axes) or set(axes) - set(_AXES):
        raise ValueError(
            f"axes {axes!r} do not fit {path}, which holds a {data.ndim}D image of shape {data.shape}; give one "
            f"letter of {_AXES} per dimension, e.g. --axes {'TZYX'[-data.ndim:]}"
        )
    if "Z" not in axes:
        raise ValueError(f"{path} has no Z axis (axes {axes}, shape {data.shape}): a 2D time-lapse given as 3D? "
                         "cellnb needs 3D frames (Z, Y, X)")
    if "T" not in axes:
        data, axes = data[None], "T" + axes
    return np.transpose(data, [axes.index(a) for a in _AXES])


def frame_files(folder) -> list[Path]:
    """The TIFF frames of a folder in time order: by the number in each name (``mask2`` before ``mask10``).

    Raises
    ------
    ValueError
        If the folder holds no TIFF, a file name has no frame number, or two
        files have the same number (the order in time would be a guess).
    """
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.suffix.lower() in _TIFF_SUFFIXES and not p.name.startswith(".")]
    if not files:
        raise ValueError(f"folder {folder} holds no .tif/.tiff files; expected mask000.tif, mask001.tif, ...")
    numbers = {}
    for p in files:
        found = _FRAME_NUMBER.findall(p.stem)
        if not found:
            raise ValueError(
                f"{p} has no frame number in its name, so its place in time is unknown; "
                "name the frames with their number, e.g. mask000.tif, mask001.tif, ..."
            )
        number = int(found[-1])
        if number in numbers:
            raise ValueError(f"{numbers[number].name} and {p.name} in {folder} have the same frame number {number}")
        numbers[number] = p
    return [numbers[n] for n in sorted(numbers)]


def read_label_stack(path, *, axes: str | None = None) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """Read a label time-lapse and the voxel size its metadata record.

    Parameters
    ----------
    path : path-like
        A folder of per-frame 3D TIFFs, ordered by the number in their names
        (:func:`frame_files`: Cell Tracking Challenge ``mask000.tif``, ...,
        and ``mask2`` before ``mask10``), or one multi-frame TIFF.
    axes : str, optional
        The axis order of a file (or of each frame of a folder) when its
        metadata are wrong or missing, letters of ``TZYX``, e.g. ``"TZYX"``
        or ``"ZYX"``; default what tifffile reads (``Q`` and ``I`` axes of
        files without metadata are read as T then Z).  Colour (RGB) images
        are refused: a label mask has one integer value per voxel.

    Returns
    -------
    labels : ndarray of int, shape (T, Z, Y, X)
    spacing : tuple of 3 floats or None
        Voxel size (Z, Y, X) in micrometres from ImageJ/OME metadata (:func:`tiff_spacing`).
    """
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        frames = [_read_tiff(p, axes=axes, frame=True) for p in files]
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"frames in {path} must all be 3D volumes of one shape, got shapes {sorted(shapes)}")
        return np.concatenate(frames), tiff_spacing(files[0])
    if path.is_file() and path.suffix.lower() in _TIFF_SUFFIXES:
        return _read_tiff(path, axes=axes, frame=False), tiff_spacing(path)
    raise ValueError(f"{path} is neither a folder of TIFF frames nor a .tif/.tiff file")


def read_mask_stack(path) -> np.ndarray:
    """The labels of :func:`read_label_stack`, without the spacing: ``(T, Z, Y, X)``."""
    return read_label_stack(path)[0]


def _read_tiff(path: Path, *, axes: str | None, frame: bool) -> np.ndarray:
    """One TIFF as ``(T, Z, Y, X)`` (a frame file: T = 1)."""
    try:
        with tifffile.TiffFile(path) as tif:
            found = tif.series[0].axes
            data = tif.asarray()
    except Exception as err:  # tifffile raises several types for corrupt files
        raise ValueError(f"{path} is not a readable TIFF file ({err})") from None
    if "S" in found and axes is None:
        raise ValueError(
            f"{path} holds a colour (RGB) image (axes {found}, shape {data.shape}); label masks need one integer "
            "label per voxel: export the segmentation as a single-channel label image"
        )
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        raise ValueError(f"{path} holds {data.dtype} values; label masks must be integer or boolean")
    if axes is None:
        if data.ndim == 2:
            raise ValueError(f"{path} is a 2D image {data.shape}: a 2D time-lapse given as 3D? cellnb needs 3D "
                             "frames (Z, Y, X)")
        if frame and data.ndim != 3:
            raise ValueError(f"{path} holds a {data.ndim}D image {data.shape}; a frame file holds one volume (Z, Y, X)")
        if data.ndim not in (3, 4):
            raise ValueError(f"{path} holds a {data.ndim}D image; expected (Z, Y, X) or (T, Z, Y, X), or give --axes")
        axes = "ZYX" if data.ndim == 3 else "TZYX"
    stack = _reorder(data, axes, path)
    if frame and stack.shape[0] != 1:
        raise ValueError(f"{path} holds {stack.shape[0]} time points; a frame file of a folder holds one")
    return stack


def write_ctc_masks(folder, labels: np.ndarray, *, overwrite: bool = False) -> list[Path]:
    """Write a label time-lapse as Cell Tracking Challenge TIFFs ``mask000.tif`` ...

    Parameters
    ----------
    folder : path-like
        Created if missing; must not hold masks already unless ``overwrite``.
    labels : ndarray of int or bool, shape (T, Z, Y, X)
        Written as uint16.
    """
    labels = np.asarray(labels)
    if labels.ndim != 4:
        raise ValueError(f"labels must have shape (T, Z, Y, X), got {labels.shape}")
    folder = Path(folder)
    paths = [folder / f"mask{t:03d}.tif" for t in range(labels.shape[0])]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{folder} already holds {existing[0].name}; pass overwrite=True (--overwrite)")
    for p, frame in zip(paths, labels):
        with atomic_path(p, overwrite=True) as tmp:
            tifffile.imwrite(tmp, frame.astype(np.uint16), compression="zlib", photometric="minisblack")
    return paths


def write_mesh(path, mesh, *, overwrite: bool = False) -> Path:
    """Save a pyvista mesh as PLY, STL, VTP, VTK or OBJ, chosen by the suffix."""
    path = Path(path)
    if path.suffix.lower() not in _MESH_SUFFIXES:
        raise ValueError(f"mesh file {path} must end in one of {', '.join(_MESH_SUFFIXES)}")
    with atomic_path(path, overwrite=overwrite) as tmp:
        mesh.save(tmp)
    return path


def save_checkpoint(path, obj: dict, *, overwrite: bool = True) -> Path:
    """Save a checkpoint dict of tensors and plain values atomically with ``torch.save``."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_checkpoint(path, *, map_location="cpu") -> dict:
    """Load a checkpoint as data only (``weights_only=True``).

    Raises
    ------
    FileNotFoundError
        If there is no file.
    ValueError
        If the file is truncated or corrupt, or holds anything but tensors and
        plain values (e.g. a pickle that would run code), which is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train first (`cellnb train`)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} was refused by safe loading (weights_only=True): it holds objects other than "
            f"tensors and plain values, which could run code. Only load checkpoints written by cellnb. ({err})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path} is truncated or not a checkpoint ({err}); use an earlier snapshot") from None
