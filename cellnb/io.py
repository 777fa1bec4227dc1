"""Files: SDF data sets (HDF5, official layout), TIFF masks, meshes, checkpoints.

Every writer goes through :func:`atomic_path`: data are written to a
temporary file next to the target and renamed when complete, so a killed run
never leaves a half-written file, and an existing file is only replaced when
``overwrite=True``.  A writer of a whole folder (e.g. a Cell Tracking
Challenge data set) builds it in :func:`atomic_folder`, a temporary folder
beside the destination that replaces it only when the block succeeds.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
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
    "load_official",
]

SDF_DATASET = "sdf_vid"  # dataset name of the official SDF files
_RECORD_ATTR = "cellnb"  # file attribute holding our JSON record
_TIFF_SUFFIXES = (".tif", ".tiff")
_MESH_SUFFIXES = (".ply", ".stl", ".vtp", ".vtk", ".obj")


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = False):
    """Yield a temporary path that is renamed to ``path`` when the block succeeds.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(dest, *, overwrite: bool = False):
    """Yield a temporary folder that replaces the folder ``dest`` when the block succeeds.

    The temporary folder is created beside ``dest`` (same file system, so the
    final rename is atomic).  If the block raises, the temporary folder is
    removed and ``dest`` is left as it was; on success an existing ``dest`` is
    moved aside, the new folder renamed into place, and the old one deleted.

    Raises
    ------
    FileExistsError
        If ``dest`` exists and ``overwrite`` is False (checked before anything is written).
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} already exists; pass overwrite=True (--overwrite) to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            os.replace(dest, old / dest.name)
            try:
                os.replace(tmp, dest)
            except OSError:
                os.replace(old / dest.name, dest)
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(path, obj, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    return Path(path)


def read_json(path) -> dict:
    """Read a JSON file; a missing file reads as an empty dict."""
    path = Path(path)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


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
    return json.loads(raw) if raw is not None else {}


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


def read_mask_stack(path) -> np.ndarray:
    """Read a label time-lapse: a folder of per-frame TIFFs or one multi-frame TIFF.

    A folder's ``*.tif``/``*.tiff`` files are frames in name order (Cell
    Tracking Challenge ``mask000.tif``, ``mask001.tif``, ...); each is one 3D
    volume ``(Z, Y, X)``.  A single file holds ``(T, Z, Y, X)``, or one frame
    ``(Z, Y, X)``.

    Returns
    -------
    labels : ndarray of int, shape (T, Z, Y, X)
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _TIFF_SUFFIXES)
        if not files:
            raise ValueError(f"folder {path} holds no .tif/.tiff files; expected mask000.tif, mask001.tif, ...")
        frames = [_read_tiff(p) for p in files]
        shapes = {f.shape for f in frames}
        if any(f.ndim != 3 for f in frames) or len(shapes) != 1:
            raise ValueError(f"frames in {path} must all be 3D volumes of one shape, got shapes {sorted(shapes)}")
        return np.stack(frames)
    if path.is_file() and path.suffix.lower() in _TIFF_SUFFIXES:
        stack = _read_tiff(path)
        if stack.ndim == 3:
            return stack[None]
        if stack.ndim == 4:
            return stack
        raise ValueError(f"{path} holds a {stack.ndim}D image; expected (Z, Y, X) or (T, Z, Y, X)")
    raise ValueError(f"{path} is neither a folder of TIFF frames nor a .tif/.tiff file")


def _read_tiff(path: Path) -> np.ndarray:
    try:
        data = tifffile.imread(path)
    except Exception as err:  # tifffile raises several types for corrupt files
        raise ValueError(f"{path} is not a readable TIFF file ({err})") from None
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        raise ValueError(f"{path} holds {data.dtype} values; label masks must be integer or boolean")
    return data


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


def load_official(specs_json, model_pth, lat_vecs_mat):
    """Import a model trained by the official implementation (Wiesner et al. 2022).

    Parameters
    ----------
    specs_json : path-like
        The experiment's ``specs.json``: ``CodeLength`` and ``NetworkSpecs``
        (``dims``, ``latent_in``, ``xyz_in_all``, ``use_tanh``; other keys such
        as dropout do not change the trained function and are ignored).
    model_pth : path-like
        ``model.pth``: ``{"epoch", "model_state_dict"}`` with keys
        ``module.lin{i}.weight|bias`` (``weight_g``/``weight_v`` of weight-normed
        layers are folded into one weight).  Loaded with ``weights_only=True``.
    lat_vecs_mat : path-like
        ``lat_vecs.mat`` holding the variable ``lat_vecs``, one code per row.

    Returns
    -------
    decoder : cellnb.model.Decoder
        In eval mode; ``decoder(codes[s].expand(N, -1), xyzt)`` gives the
        official output for sequence ``s``.
    codes : Tensor of float32, shape (S, L)
    """
    import scipy.io

    from cellnb.model import Decoder, DecoderConfig

    specs_path = Path(specs_json)
    if not specs_path.is_file():
        raise FileNotFoundError(f"specs file {specs_path} does not exist")
    try:
        specs = json.loads(specs_path.read_text())
        net = specs["NetworkSpecs"]
        code_length = int(specs["CodeLength"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{specs_path} is not an official specs.json with CodeLength and NetworkSpecs ({err!r})"
        ) from None
    if net.get("norm_layers") and not net.get("weight_norm"):
        raise ValueError(f"{specs_path}: layer normalisation (norm_layers without weight_norm) is not supported")
    config = DecoderConfig(
        code_length=code_length,
        dims=tuple(net["dims"]),
        latent_in=tuple(net.get("latent_in", ())),
        xyz_in_all=bool(net.get("xyz_in_all", False)),
        use_tanh=bool(net.get("use_tanh", False)),
        omega=float(net.get("omega", net.get("omega_0", 30.0))),
    )
    saved = load_checkpoint(model_pth)
    state = saved.get("model_state_dict", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{model_pth} holds no model_state_dict")
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    decoder = Decoder(config)
    with torch.no_grad():
        for i, linear in enumerate(decoder.linears()):
            if f"lin{i}.weight" in state:
                weight = state[f"lin{i}.weight"]
            elif f"lin{i}.weight_v" in state:
                v, g = state[f"lin{i}.weight_v"], state[f"lin{i}.weight_g"]
                weight = g * v / v.norm(dim=1, keepdim=True)
            else:
                raise ValueError(f"{model_pth} has no weights for layer lin{i}; does specs.json match the model?")
            bias = state.get(f"lin{i}.bias")
            if tuple(weight.shape) != tuple(linear.weight.shape) or bias is None or bias.shape != linear.bias.shape:
                raise ValueError(
                    f"{model_pth}: layer lin{i} has weight {tuple(weight.shape)}, expected "
                    f"{tuple(linear.weight.shape)} from {specs_path.name}; the specs do not match the model"
                )
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
    parts = ("weight", "weight_v", "weight_g", "bias")
    used = {f"lin{i}.{part}" for i in range(len(decoder.linears())) for part in parts}
    extra = sorted(set(state) - used)
    if extra:
        raise ValueError(f"{model_pth} has parameters {extra} that this decoder does not have")
    mat_path = Path(lat_vecs_mat)
    if not mat_path.is_file():
        raise FileNotFoundError(f"latent code file {mat_path} does not exist")
    try:
        lat = np.asarray(scipy.io.loadmat(mat_path)["lat_vecs"], dtype=np.float32)
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{mat_path} is not a .mat file with a variable lat_vecs ({err!r})") from None
    if lat.ndim != 2 or lat.shape[1] != code_length:
        raise ValueError(f"{mat_path}: lat_vecs has shape {lat.shape}, expected (sequences, {code_length})")
    return decoder.eval(), torch.from_numpy(lat)
