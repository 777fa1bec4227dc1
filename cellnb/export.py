"""Exports of a generated (or any) SDF sequence: HDF5, label TIFFs, meshes, animations.

One function per format, and :func:`export_sequence` that writes the chosen
formats of one sequence into a generated set's folder
(:class:`cellnb.workspace.GeneratedDir`).  Labels of a mask frame are its
26-connected components (:func:`cellnb.sdf.label_components`: 1, 2, ... in
scan order).  A frame with no inside voxel has no mesh file.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from cellnb.io import atomic_path, write_ctc_masks, write_mesh, write_sdf_h5
from cellnb.mesh import mesh_frame
from cellnb.render import render_mesh
from cellnb.sdf import label_components
from cellnb.workspace import GeneratedDir

__all__ = ["FORMATS", "GIF_WINDOW", "check_formats", "save_gif", "label_sequence", "export_sequence"]

FORMATS = ("h5", "tiff", "mesh", "gif")
GIF_WINDOW = (320, 320)  # pixels of each animation frame
GIF_FPS = 6.0  # frames per second of the animations


def check_formats(formats) -> tuple[str, ...]:
    """The chosen formats as a tuple without repeats; a ValueError names unknown ones."""
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown format(s) {unknown or list(formats)}; use one or more of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(formats))


def save_gif(images, path, *, fps: float = GIF_FPS, overwrite: bool = False) -> Path:
    """Write RGB frames as a looping animated GIF, atomically."""
    frames = [np.asarray(im, dtype=np.uint8) for im in images]
    if not frames:
        raise ValueError("images is empty; nothing to animate")
    with atomic_path(path, overwrite=overwrite) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    return Path(path)


def label_sequence(sdf: np.ndarray) -> np.ndarray:
    """Label masks of an SDF sequence: the 26-connected components of ``sdf < 0`` per frame, uint16."""
    return np.stack([label_components(frame < 0)[0] for frame in sdf]).astype(np.uint16)


def _bounds(shape, spacing) -> tuple[float, ...]:
    extent = [(n - 1) * s for n, s in zip(shape, spacing)]
    return (0.0, extent[0], 0.0, extent[1], 0.0, extent[2])


def export_sequence(folder: GeneratedDir, name: str, sdf: np.ndarray, *, formats, record: dict) -> None:
    """Write one SDF sequence in each of ``formats`` into a generated set's folder.

    Parameters
    ----------
    folder : GeneratedDir
        Where the files go (see :mod:`cellnb.workspace` for the layout).
    name : str
        Sequence name (file stem).
    sdf : ndarray of float32, shape (T, D0, D1, D2)
        Negative inside.
    formats : iterable of {"h5", "tiff", "mesh", "gif"}
    record : dict
        The JSON record of the HDF5 file (``spacing``, ``scale``, ``clamp``,
        ``source``, ``meta``); ``spacing`` also sets the physical size of
        meshes and renders (1 per voxel when missing).
    """
    formats = check_formats(formats)
    spacing = record.get("spacing") or (1.0, 1.0, 1.0)
    if "h5" in formats:
        write_sdf_h5(folder.sdf_path(name), sdf, record={"name": name, **record})
    if "tiff" in formats:
        write_ctc_masks(folder.masks(name), label_sequence(sdf))
    if "mesh" in formats or "gif" in formats:
        meshes = [mesh_frame(frame, spacing=spacing) for frame in sdf]
        if "mesh" in formats:
            for k, mesh in enumerate(meshes):
                if mesh.n_points > 0:
                    write_mesh(folder.mesh_path(name, k), mesh)
        if "gif" in formats:
            bounds = _bounds(sdf.shape[1:], spacing)
            save_gif([render_mesh(m, window_size=GIF_WINDOW, bounds=bounds) for m in meshes], folder.gif_path(name))
