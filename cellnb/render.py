"""Headless 3D rendering with pyvista (set up once, here).

VTK >= 9.4 wheels render off-screen through EGL (Debian packages ``libegl1``,
``libegl-mesa0``, ``libgl1-mesa-dri``); no X server is needed.  Importing this
module sets ``PYVISTA_OFF_SCREEN``, so renders (screenshots, never a
``Plotter.show()``) work the same in a terminal, under papermill and in
JupyterLab, with or without IPython installed.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")

import pyvista as pv  # noqa: E402  (after the environment variable it reads)
from vtkmodules.vtkCommonCore import vtkLogger  # noqa: E402

pv.OFF_SCREEN = True
# VTK probes X before EGL and logs a harmless "bad X server connection" warning on every render.
vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)

__all__ = ["CELL_COLOR", "render_mesh", "render_grid", "pixels_per_unit", "tile"]

CELL_COLOR = "#d9a066"  # one colour for all cell surfaces, so figures compare
_BACKGROUND = "white"
_VIEWS = {"iso": "view_isometric", "xy": "view_xy", "xz": "view_xz", "yz": "view_yz"}


def render_mesh(
    mesh: pv.PolyData | None,
    *,
    window_size=(320, 320),
    bounds=None,
    color: str = CELL_COLOR,
    camera: str = "iso",
    parallel_scale: float | None = None,
) -> np.ndarray:
    """Render one surface off-screen.

    Parameters
    ----------
    mesh : pyvista.PolyData or None
        The surface; ``None`` or an empty mesh gives a blank image.
    window_size : (width, height)
        Image size in pixels.
    bounds : 6 floats, optional
        ``(x0, x1, y0, y1, z0, z1)`` the camera frames, e.g. the grid's bounds,
        so that frames of a sequence share one scale; default: the mesh's.
    camera : {"iso", "xy", "xz", "yz"}
        Viewing direction.
    parallel_scale : float, optional
        An orthographic view whose image height spans ``2 * parallel_scale``
        world units (VTK's parallel scale), so lengths in the view plane have
        a known size in pixels (:func:`pixels_per_unit`); default a
        perspective view framing ``bounds``.

    Returns
    -------
    image : ndarray of uint8, shape (height, width, 3)
    """
    if camera not in _VIEWS:
        raise ValueError(f"unknown camera {camera!r}; choose one of {', '.join(_VIEWS)}")
    plotter = pv.Plotter(off_screen=True, window_size=tuple(window_size))
    try:
        plotter.set_background(_BACKGROUND)
        if mesh is not None and mesh.n_points > 0:
            plotter.add_mesh(mesh, color=color, smooth_shading=True, specular=0.3)
        if bounds is not None:
            # An invisible box fixes the framing to the given bounds.
            plotter.add_mesh(pv.Box(bounds=bounds), opacity=0.0)
        getattr(plotter, _VIEWS[camera])()
        plotter.reset_camera()
        if parallel_scale is not None:
            plotter.enable_parallel_projection()
            plotter.camera.parallel_scale = float(parallel_scale)
        return np.asarray(plotter.screenshot(return_img=True))
    finally:
        plotter.close()


def pixels_per_unit(parallel_scale: float, height: int) -> float:
    """Pixels per world unit of an orthographic render (:func:`render_mesh` with ``parallel_scale``)."""
    if not parallel_scale > 0:
        raise ValueError(f"parallel_scale must be positive, got {parallel_scale}")
    return float(height) / (2.0 * float(parallel_scale))


def tile(images, *, n_cols: int, pad: int = 4) -> np.ndarray:
    """Arrange equally sized RGB images row by row into one image with white gaps."""
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("images is empty; pass at least one image")
    h, w, c = images[0].shape
    n_rows = -(-len(images) // n_cols)
    out = np.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad, c), 255, dtype=np.uint8)
    for k, im in enumerate(images):
        r, col = divmod(k, n_cols)
        out[r * (h + pad) : r * (h + pad) + h, col * (w + pad) : col * (w + pad) + w] = im
    return out


def render_grid(meshes, *, window_size=(240, 240), bounds=None, camera: str = "iso") -> np.ndarray:
    """Render a grid of surfaces (rows: sequences, columns: time) into one image.

    Parameters
    ----------
    meshes : list of lists of pyvista.PolyData or None
        ``meshes[row][col]``; rows must have equal lengths.
    bounds : 6 floats, optional
        Framing shared by all panels; default: the union of the meshes' bounds,
        so sizes compare across the grid.
    """
    rows = [list(r) for r in meshes]
    if not rows or not rows[0]:
        raise ValueError("meshes must be a non-empty list of non-empty rows")
    n_cols = len(rows[0])
    if any(len(r) != n_cols for r in rows):
        raise ValueError("every row of meshes must have the same number of columns")
    if bounds is None:
        boxes = np.array([m.bounds for r in rows for m in r if m is not None and m.n_points > 0])
        if len(boxes):
            bounds = tuple(np.ravel(np.stack([boxes[:, 0::2].min(axis=0), boxes[:, 1::2].max(axis=0)], axis=1)))
    images = [render_mesh(m, window_size=window_size, bounds=bounds, camera=camera) for r in rows for m in r]
    return tile(images, n_cols=n_cols)
