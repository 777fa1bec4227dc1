"""Interactive 3D views of cell sequences in JupyterLab, with a static fallback.

:func:`show_cells` is the one call a notebook makes to show cells in 3D: several
cells side by side, each a sequence of surfaces (:func:`cellnb.mesh.mesh_frame`
meshes), with one time slider over the frames, a play button, and a camera
that rotates (drag) and zooms (wheel) all panels together.

The interactive view is a self-contained ``text/html`` output: the surfaces
(decimated to at most ``max_faces`` triangles per frame, vertices quantised
to 16 bits over the shared box) and a small WebGL viewer in plain JavaScript,
no library, no server and no network.  It stays in the saved notebook;
JupyterLab runs its script when the output is trusted (made in this session,
or after *Trust Notebook*), as for any HTML output with a script.

Which view is shown is decided once, by :func:`view_mode`:

* ``CELLNB_VIEW=interactive`` or ``static`` (environment variable) forces one;
* ``auto`` (the default, or ``CELLNB_VIEW`` unset) is interactive when the code
  runs in an IPython kernel started by a Jupyter server for a notebook a user
  opened (JupyterLab, Notebook 7: the server sets ``JPY_SESSION_NAME`` in
  the kernel's environment), static otherwise: papermill and nbclient start
  kernels without it, and scripts and tests run outside a kernel.

:func:`cellnb.runner.run_all` (``cellnb run``) sets ``CELLNB_VIEW=static`` for
its notebooks unless the variable is set, so a main job started from inside
a JupyterLab kernel still writes static executed notebooks.  In static mode
the view is the figure the notebook saved (or a :func:`cellnb.render.render_grid`
of the cells at evenly spread frames), shown as a PNG.
"""

from __future__ import annotations

import base64
import html
import json
import os
from importlib import resources

import matplotlib.pyplot as plt
import numpy as np
import pyvista as pv
from IPython.display import HTML, display

from cellnb.render import CELL_COLOR, render_grid
from cellnb.sdf import time_coords
from cellnb.viz.images import image_figure

__all__ = ["VIEW_ENV", "MODES", "view_mode", "scene", "scene_html", "show_cells"]

VIEW_ENV = "CELLNB_VIEW"  # environment variable that forces the view
MODES = ("static", "interactive", "auto")
MAX_FACES = 4000  # triangles per frame kept in an interactive view (a 48^3 cell has a few thousand)
STATIC_COLUMNS = 6  # frames per cell in the static fallback
_QUANT = 65535  # vertices are stored as uint16 fractions of the shared box
_PANEL = 260  # CSS pixels of one panel of the interactive view
_PANELS_PER_ROW = 4


def view_mode(mode: str | None = None) -> str:
    """Resolve the view to show: ``"interactive"`` or ``"static"``.

    Parameters
    ----------
    mode : {"static", "interactive", "auto"}, optional
        Default: the ``CELLNB_VIEW`` environment variable, else ``"auto"``.
        ``auto`` is interactive in a kernel a Jupyter server started for an
        open notebook (``JPY_SESSION_NAME`` set), static otherwise.
    """
    chosen = (mode or os.environ.get(VIEW_ENV) or "auto").strip().lower()
    if chosen not in MODES:
        raise ValueError(f"view mode (argument mode or ${VIEW_ENV}) must be one of {', '.join(MODES)}, got {chosen!r}")
    if chosen != "auto":
        return chosen
    return "interactive" if _in_jupyter_session() else "static"


def _in_jupyter_session() -> bool:
    """Whether this is a kernel that a Jupyter server started for a notebook open in a browser."""
    if not os.environ.get("JPY_SESSION_NAME"):
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _cells(cells) -> dict:
    if not isinstance(cells, dict) or not cells:
        raise ValueError("cells must be a non-empty dict {name: [mesh or None per frame]}")
    out = {str(name): list(frames) for name, frames in cells.items()}
    empty = [name for name, frames in out.items() if not frames]
    if empty:
        raise ValueError(f"cells {empty} have no frames; give each cell a list of at least one mesh (or None)")
    return out


def _triangles(mesh, max_faces: int | None) -> pv.PolyData | None:
    """The mesh as triangles, decimated to at most ``max_faces``; None when it has no surface."""
    if mesh is None or mesh.n_points == 0 or mesh.n_cells == 0:
        return None
    if not mesh.is_all_triangles:
        mesh = mesh.triangulate()
    if max_faces is not None and mesh.n_cells > max_faces:
        mesh = mesh.decimate(1.0 - max_faces / mesh.n_cells)
    return mesh


def _slider(cells: dict) -> tuple[np.ndarray, dict]:
    """Slider times (the union of the cells' network times) and, per cell, the frame shown at each."""
    times = {name: time_coords(len(frames)) for name, frames in cells.items()}
    union = np.unique(np.round(np.concatenate(list(times.values())).astype(float), 6))
    shown = {name: np.abs(t[None, :] - union[:, None]).argmin(axis=1) for name, t in times.items()}
    return union, shown


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def scene(cells, *, title: str | None = None, max_faces: int | None = MAX_FACES, color: str = CELL_COLOR) -> dict:
    """The data of an interactive view: cells side by side, one time slider.

    Parameters
    ----------
    cells : dict
        ``{name: [pyvista.PolyData or None, ...]}``, one surface per frame of
        each cell, in physical units; ``None`` or an empty mesh is a frame
        without a surface.  Frame ``k`` of a cell with ``T`` frames is at
        network time ``linspace(-1, 1, T)[k]`` (:func:`cellnb.sdf.time_coords`),
        so cells with different frame counts share one slider.
    title : str, optional
    max_faces : int or None
        Triangles kept per frame (quadric decimation above it); None keeps all.
    color : str
        Surface colour.

    Returns
    -------
    dict
        ``times``: the slider's network times, sorted, the union of the
        cells'; ``bounds``: ``[lo, hi]``, the shared box (3 floats each);
        ``cells``: per cell ``name``, ``shown`` (the frame shown at each
        slider position, the one nearest in time) and ``frames``, each with
        ``n_points``, ``n_faces``, ``points`` (base64 of little-endian uint16,
        shape ``(n_points, 3)``, fractions ``q / 65535`` of the box) and
        ``faces`` (base64 of uint16 or uint32 vertex indices, ``(n_faces, 3)``,
        ``index_bytes`` 2 or 4).
    """
    cells = _cells(cells)
    if max_faces is not None and max_faces < 1:
        raise ValueError(f"max_faces must be a positive number of triangles or None, got {max_faces}")
    meshes = {name: [_triangles(m, max_faces) for m in frames] for name, frames in cells.items()}
    present = [m for frames in meshes.values() for m in frames if m is not None]
    if present:
        boxes = np.array([m.bounds for m in present], dtype=float)
        lo, hi = boxes[:, 0::2].min(axis=0), boxes[:, 1::2].max(axis=0)
    else:
        lo, hi = np.zeros(3), np.ones(3)
    extent = np.maximum(hi - lo, 1e-9)
    times, shown = _slider(meshes)
    out_cells = []
    for name, frames in meshes.items():
        encoded = []
        for mesh in frames:
            if mesh is None:
                encoded.append({"n_points": 0, "n_faces": 0, "points": "", "faces": "", "index_bytes": 2})
                continue
            q = np.clip(np.round((np.asarray(mesh.points, dtype=float) - lo) / extent * _QUANT), 0, _QUANT)
            faces = np.asarray(mesh.faces).reshape(-1, 4)[:, 1:]
            index = np.dtype("<u2") if mesh.n_points <= np.iinfo(np.uint16).max else np.dtype("<u4")
            encoded.append({"n_points": int(mesh.n_points), "n_faces": int(len(faces)),
                            "points": _b64(q.astype("<u2")), "faces": _b64(faces.astype(index)),
                            "index_bytes": index.itemsize})
        out_cells.append({"name": name, "shown": shown[name].tolist(), "frames": encoded})
    return {"title": title or "", "color": color, "times": times.tolist(),
            "bounds": [lo.tolist(), hi.tolist()], "cells": out_cells}


def scene_html(cells, *, title: str | None = None, max_faces: int | None = MAX_FACES, color: str = CELL_COLOR) -> str:
    """The interactive view as one self-contained HTML fragment (the scene of :func:`scene` and its viewer).

    The fragment is a ``<div class="cellnb-view">`` holding the scene as JSON
    in ``<script type="application/json">`` and the viewer script; the
    viewer draws every panel into one WebGL canvas and records what it drew
    in the div's ``data-frame`` and ``data-triangles`` attributes.
    """
    data = scene(cells, title=title, max_faces=max_faces, color=color)
    n_cells = len(data["cells"])
    cols = min(n_cells, _PANELS_PER_ROW)
    rows = -(-n_cells // cols)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    viewer = resources.files("cellnb").joinpath("view.js").read_text()
    return (
        f'<div class="cellnb-view" data-cells="{n_cells}" data-slider="{len(data["times"])}" '
        f'data-panel="{_PANEL}" data-cols="{cols}" data-rows="{rows}" '
        'style="font:12px sans-serif;color:#222;display:inline-block">'
        f'<div class="cellnb-title" style="font-weight:bold;margin:2px 0">{html.escape(data["title"])}</div>'
        f'<script type="application/json" class="cellnb-scene">{payload}</script>'
        f"<script>{viewer}</script></div>"
    )


def _static_figure(cells: dict, title: str | None):
    """The cells at evenly spread slider positions, rendered off-screen (rows: cells)."""
    times, shown = _slider(cells)
    picks = np.unique(np.linspace(0, len(times) - 1, min(STATIC_COLUMNS, len(times))).round().astype(int))
    image = render_grid([[cells[name][shown[name][k]] for k in picks] for name in cells])
    return image_figure(image, title=title, row_labels=list(cells), col_labels=[f"t = {times[k]:+.2f}" for k in picks])


def show_cells(cells, *, static=None, title: str | None = None, mode: str | None = None,
               max_faces: int | None = MAX_FACES) -> None:
    """Show cells in 3D: the interactive view in JupyterLab, a static PNG headless.

    Parameters
    ----------
    cells : dict
        ``{name: [pyvista.PolyData or None per frame]}``, as for :func:`scene`.
    static : matplotlib.figure.Figure, optional
        The figure shown in static mode, e.g. the one the notebook just
        saved; default a :func:`cellnb.render.render_grid` of the cells at
        up to six evenly spread times.  It is closed either way, so the
        inline backend does not show it a second time.
    title : str, optional
        Heading of the interactive view (and of the default static figure).
    mode : {"static", "interactive", "auto"}, optional
        Default ``$CELLNB_VIEW``, else ``auto`` (see :func:`view_mode`).
    max_faces : int or None
        Triangles kept per frame in the interactive view.
    """
    cells = _cells(cells)
    if view_mode(mode) == "interactive":
        display(HTML(scene_html(cells, title=title, max_faces=max_faces)))
    else:
        if static is None:
            static = _static_figure(cells, title)
        display(static)
    if static is not None:
        plt.close(static)
