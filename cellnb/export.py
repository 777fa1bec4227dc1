"""Exports of a generated (or any) SDF sequence: HDF5, label TIFFs, meshes, animations, CTC fields.

Animations are a looping GIF (``gif``) or an H.264 MP4 (``mp4``, through
imageio's ffmpeg plugin and the ``imageio-ffmpeg`` wheel).  The MP4 is an
orthographic render, so its frames carry a time stamp (``frame k / T``, or
minutes when the record gives ``minutes_per_frame``) and, when the record
gives the voxel size in micrometres (``spacing``), a scale bar of a round
length (:func:`bar_length`) whose pixels are its micrometres over the
micrometres per pixel (:func:`scale_bar_pixels`).

One function per format, and :func:`export_sequence` that writes the chosen
per-sequence formats of one sequence into a generated set's folder
(:class:`cellnb.workspace.GeneratedDir`); :func:`export_ctc` writes a whole
set as Cell Tracking Challenge ground truth, a few cells per field of view.  Labels of a mask frame are its
26-connected components (:func:`cellnb.sdf.label_components`: 1, 2, ... in
scan order).  A frame with no inside voxel has no mesh file.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cellnb import ctc
from cellnb.io import (
    atomic_path,
    read_sdf_h5,
    write_ctc_masks,
    write_mesh,
    write_sdf_h5,
)
from cellnb.mesh import mesh_frame
from cellnb.population import place_cells
from cellnb.render import pixels_per_unit, render_mesh
from cellnb.sdf import label_components, resample_to_cube
from cellnb.workspace import GeneratedDir

__all__ = ["FORMATS", "GIF_WINDOW", "check_formats", "save_gif", "save_mp4", "scale_bar_pixels", "bar_length",
           "time_label", "annotate_frame", "animation_frames", "label_sequence", "export_sequence", "to_spacing",
           "export_ctc"]

FORMATS = ("h5", "tiff", "mesh", "gif", "mp4", "ctc")
GIF_WINDOW = (320, 320)  # pixels of each animation frame (even sides: H.264's 4:2:0 colour needs them)
GIF_FPS = 6.0  # frames per second of the animations
BAR_FRACTION = 0.25  # the scale bar is the longest round length up to this share of the frame's width
FRAME_MARGIN = 1.05  # the orthographic view spans the box's diagonal times this, so no orientation is cut
_INK = (0, 0, 0)
_FONT_PX = 14


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


def save_mp4(images, path, *, fps: float = GIF_FPS, overwrite: bool = False) -> Path:
    """Write RGB frames (all of one even size) as an H.264 MP4, atomically."""
    frames = [np.asarray(im, dtype=np.uint8) for im in images]
    if not frames:
        raise ValueError("images is empty; nothing to animate")
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"an MP4 frame needs even sides, got {w} x {h} pixels")
    with atomic_path(path, overwrite=overwrite) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".mp4", plugin="FFMPEG", fps=fps, codec="libx264",
                    macro_block_size=1)
    return Path(path)


def scale_bar_pixels(length_um: float, um_per_pixel: float) -> int:
    """Pixels of a scale bar of ``length_um`` micrometres on an image of ``um_per_pixel``: their ratio, rounded."""
    if not (length_um > 0 and um_per_pixel > 0):
        raise ValueError(f"length_um and um_per_pixel must be positive, got {length_um} and {um_per_pixel}")
    return int(round(length_um / um_per_pixel))


def bar_length(max_um: float) -> float:
    """The longest round length (1, 2 or 5 times a power of ten) up to ``max_um`` micrometres."""
    if not max_um > 0:
        raise ValueError(f"max_um must be positive, got {max_um}")
    power = 10.0 ** math.floor(math.log10(max_um))
    return max(m * power for m in (1.0, 2.0, 5.0) if m * power <= max_um * (1 + 1e-9))


def time_label(k: int, n_frames: int, *, minutes_per_frame: float | None = None) -> str:
    """The time stamp of frame ``k``: ``"frame k+1 / T"``, or ``"t = M min"`` when the time step is known."""
    if minutes_per_frame:
        return f"t = {k * float(minutes_per_frame):g} min"
    return f"frame {k + 1} / {n_frames}"


def _font() -> ImageFont.FreeTypeFont:
    """Matplotlib's DejaVu Sans (it has the micro sign), else Pillow's default font."""
    from matplotlib import font_manager

    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=False), _FONT_PX)
    except (OSError, ValueError):
        return ImageFont.load_default(size=_FONT_PX)


def annotate_frame(image, *, text: str, bar_pixels: int | None = None, bar_text: str | None = None) -> np.ndarray:
    """An RGB frame with ``text`` at the top left and, given ``bar_pixels``, a scale bar at the bottom right."""
    im = Image.fromarray(np.asarray(image, dtype=np.uint8))
    draw, font = ImageDraw.Draw(im), _font()
    pad = _FONT_PX // 2
    draw.text((pad, pad), text, fill=_INK, font=font)
    if bar_pixels:
        w, h = im.size
        x1, y = w - pad, h - pad - _FONT_PX - pad
        draw.rectangle((x1 - int(bar_pixels), y, x1 - 1, y + pad // 2), fill=_INK)
        if bar_text:
            draw.text((x1 - int(bar_pixels), y + pad), bar_text, fill=_INK, font=font)
    return np.asarray(im)


def animation_frames(meshes, *, shape, record: dict, window_size=GIF_WINDOW) -> list[np.ndarray]:
    """Orthographic renders of a sequence's meshes with time stamps and, when the spacing is known, a scale bar.

    Parameters
    ----------
    meshes : list of pyvista.PolyData
        One surface per frame, in physical units (micrometres when ``record`` has a ``spacing``).
    shape : 3 ints
        The grid of the frames: the view frames its box.
    record : dict
        ``spacing`` (micrometres per voxel, else no scale bar), ``minutes_per_frame`` (else frame numbers).
    """
    spacing = record.get("spacing")
    bounds = _bounds(shape, spacing or (1.0, 1.0, 1.0))
    half = FRAME_MARGIN * 0.5 * math.dist(bounds[0::2], bounds[1::2])
    bar = None
    if spacing:
        um_per_pixel = 1.0 / pixels_per_unit(half, window_size[1])
        length = bar_length(BAR_FRACTION * window_size[0] * um_per_pixel)
        bar = (scale_bar_pixels(length, um_per_pixel), f"{length:g} µm")
    out = []
    for k, mesh in enumerate(meshes):
        image = render_mesh(mesh, window_size=window_size, bounds=bounds, parallel_scale=half)
        text = time_label(k, len(meshes), minutes_per_frame=record.get("minutes_per_frame"))
        out.append(annotate_frame(image, text=text, bar_pixels=bar and bar[0], bar_text=bar and bar[1]))
    return out


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
    formats : iterable of {"h5", "tiff", "mesh", "gif", "mp4"}
    record : dict
        The JSON record of the HDF5 file (``spacing``, ``scale``, ``clamp``,
        ``source``, ``meta``); ``spacing`` also sets the physical size of
        meshes and renders (1 per voxel when missing) and the MP4's scale
        bar, ``minutes_per_frame`` its time stamps.
    """
    formats = check_formats(formats)
    spacing = record.get("spacing") or (1.0, 1.0, 1.0)
    if "h5" in formats:
        write_sdf_h5(folder.sdf_path(name), sdf, record={"name": name, **record})
    if "tiff" in formats:
        write_ctc_masks(folder.masks(name), label_sequence(sdf))
    if {"mesh", "gif", "mp4"} & set(formats):
        meshes = [mesh_frame(frame, spacing=spacing) for frame in sdf]
        if "mesh" in formats:
            for k, mesh in enumerate(meshes):
                if mesh.n_points > 0:
                    write_mesh(folder.mesh_path(name, k), mesh)
        if "gif" in formats:
            bounds = _bounds(sdf.shape[1:], spacing)
            save_gif([render_mesh(m, window_size=GIF_WINDOW, bounds=bounds) for m in meshes], folder.gif_path(name))
        if "mp4" in formats:
            save_mp4(animation_frames(meshes, shape=sdf.shape[1:], record=record), folder.mp4_path(name))


def to_spacing(masks: np.ndarray, spacing: float, target: float) -> np.ndarray:
    """A cubic mask sequence ``(T, n, n, n)`` of voxel size ``spacing`` resampled to voxels of ``target``.

    The physical size is kept: the new side is ``round(n * spacing / target)`` voxels.
    """
    n = masks.shape[1]
    size = max(2, int(round(n * spacing / target)))
    center = [(n - 1) / 2.0] * 3
    return np.stack([resample_to_cube(frame, center=center, side=n * spacing, size=size, spacing=spacing)
                     for frame in masks])


def export_ctc(folder: GeneratedDir, names, *, cells_per_field: int = 1, rng=0) -> list:
    """Write a generated set's sequences as CTC tracking ground truth, ``cells_per_field`` cells a field.

    Each field is a folder ``ctc/fieldNNN/`` with ``01_GT/SEG``, ``01_GT/TRA``
    (label frames, labels persistent over a cell's life) and
    ``01_GT/TRA/man_track.txt`` (a dividing cell's mother ends the frame
    before her two daughters begin; parent = mother), from the SDF files
    ``sdf/<name>.h5`` already in ``folder``.  Cells of one field are brought to
    one voxel size (the finest of them, physical sizes kept) and placed
    without overlap (:func:`cellnb.population.place_cells`).  Render images
    from a field with ``cellnb microscopy --from .../ctc/fieldNNN``.  Sequences with no cell in any
    frame (an undertrained model) are left out with a warning.

    Returns
    -------
    list of dict
        Per field: ``field``, ``sequences``, ``shape``, ``spacing`` and ``tracks`` (rows).
    """
    if int(cells_per_field) != cells_per_field or cells_per_field < 1:
        raise ValueError(f"cells_per_field must be a positive integer, got {cells_per_field}")
    read_all = {name: read_sdf_h5(folder.sdf_path(name)) for name in names}
    empty = [name for name, (sdf, _) in read_all.items() if not (sdf < 0).any()]
    names = [name for name in read_all if name not in empty]
    if empty:
        if not names:
            raise ValueError(f"every generated sequence is empty (no cell in any frame): {', '.join(empty)}; "
                             f"train the model longer or check its reconstructions")
        warnings.warn(f"{len(empty)} generated sequence(s) are empty (no cell in any frame) and left out of the "
                      f"CTC fields: {', '.join(empty)}", stacklevel=2)
    rng = np.random.default_rng(rng)
    fields = []
    for k, start in enumerate(range(0, len(names), int(cells_per_field))):
        group = names[start : start + int(cells_per_field)]
        read = [read_all[name] for name in group]
        spacings = [float((rec.get("spacing") or [1.0])[0]) for _, rec in read]
        target = min(spacings)
        cells = [to_spacing(sdf < 0, s, target) for (sdf, _), s in zip(read, spacings)]
        population = place_cells(cells, spacing=(target,) * 3, rng=rng)
        dest = folder.ctc_field(k)
        with ctc.dataset_writer(dest, n_frames=len(population), spacing=(target,) * 3, images=False) as writer:
            for t in range(len(population)):
                writer.write_frame(t, None, population[t])
            writer.finish(population.tracks)
        fields.append({"field": dest.name, "sequences": group, "shape": list(population.shape),
                       "spacing": [target] * 3, "tracks": population.tracks.to_numpy().tolist()})
    return fields
