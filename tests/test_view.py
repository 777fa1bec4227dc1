"""Interactive 3D views: the scene holds the input meshes, the switch picks the view, a kernel and a browser show it."""

import base64
import json
import re
import shutil
import subprocess

import nbformat
import numpy as np
import pytest
import pyvista as pv
from nbclient import NotebookClient

from cellnb.runner import _run_notebooks
from cellnb.sdf import time_coords
from cellnb.view import VIEW_ENV, scene, scene_html, view_mode
from cellnb.workspace import RunDir

_SCENE = re.compile(r'<script type="application/json" class="cellnb-scene">(.*?)</script>', re.S)


def _spheres(radii, center=(10.0, 12.0, 14.0)):
    return [pv.Sphere(radius=r, center=center, theta_resolution=16, phi_resolution=16) if r else None for r in radii]


def _decode(frame, bounds):
    lo, hi = (np.array(b) for b in bounds)
    q = np.frombuffer(base64.b64decode(frame["points"]), "<u2").reshape(-1, 3)
    faces = np.frombuffer(base64.b64decode(frame["faces"]), f"<u{frame['index_bytes']}").reshape(-1, 3)
    return lo + q / 65535 * (hi - lo), faces


def _parse(html):
    return json.loads(_SCENE.search(html).group(1))


def test_scene_holds_every_cell_and_frame_as_the_input_meshes():
    cells = {"small": _spheres([2.0, 3.0, 4.0]), "large": _spheres([5.0, 6.0, 7.0], center=(20.0, 12.0, 14.0))}
    data = scene(cells, max_faces=None)
    assert [c["name"] for c in data["cells"]] == ["small", "large"]
    assert data["times"] == pytest.approx(list(time_coords(3)))
    every = np.concatenate([m.points for frames in cells.values() for m in frames])
    np.testing.assert_allclose(data["bounds"], [every.min(axis=0), every.max(axis=0)], atol=1e-5)
    step = (np.array(data["bounds"][1]) - data["bounds"][0]) / 65535
    for cell, frames in zip(data["cells"], cells.values()):
        assert cell["shown"] == [0, 1, 2] and len(cell["frames"]) == 3
        for frame, mesh in zip(cell["frames"], frames):
            points, faces = _decode(frame, data["bounds"])
            assert frame["n_faces"] == mesh.n_cells == len(faces)
            np.testing.assert_allclose(points, mesh.points, atol=float(step.max()))  # 16-bit quantisation
            np.testing.assert_array_equal(faces, mesh.faces.reshape(-1, 4)[:, 1:])


def test_empty_frames_have_no_triangles_and_do_not_crash():
    cells = {"appears": [None, pv.PolyData(), *_spheres([3.0])]}
    data = scene(cells)
    assert [f["n_faces"] for f in data["cells"][0]["frames"]] == [0, 0, cells["appears"][2].n_cells]
    assert 'data-slider="3"' in scene_html(cells)
    nothing = scene({"gone": [None, None]})  # no surface anywhere: an empty scene, not an error
    assert [f["n_faces"] for f in nothing["cells"][0]["frames"]] == [0, 0]


def test_cells_with_different_frame_counts_share_one_slider_at_the_nearest_frame():
    cells = {"coarse": _spheres([2.0, 3.0, 4.0]), "fine": _spheres([2.0, 2.5, 3.0, 3.5, 4.0])}
    data = scene(cells)
    slider = np.linspace(-1.0, 1.0, 5)  # linspace(-1, 1, 3) lies on linspace(-1, 1, 5)
    assert data["times"] == pytest.approx(list(slider))
    coarse, fine = data["cells"]
    assert fine["shown"] == [0, 1, 2, 3, 4]
    t3 = np.linspace(-1.0, 1.0, 3)
    assert [abs(t3[k] - s) for k, s in zip(coarse["shown"], slider)] == pytest.approx(
        [np.abs(t3 - s).min() for s in slider])


def test_frames_above_max_faces_are_decimated():
    mesh = pv.Sphere(theta_resolution=60, phi_resolution=60)
    frame = scene({"c": [mesh]}, max_faces=500)["cells"][0]["frames"][0]
    assert 0 < frame["n_faces"] <= 500 < mesh.n_cells
    with pytest.raises(ValueError, match="max_faces"):
        scene({"c": [mesh]}, max_faces=0)
    with pytest.raises(ValueError, match="cells"):
        scene({"c": []})


def test_view_mode_override_and_detection(monkeypatch):
    monkeypatch.delenv(VIEW_ENV, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert view_mode() == "static"
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/u/02_training.ipynb")
    assert view_mode() == "static"  # a Jupyter session's variable, but no kernel: a test or script
    assert view_mode("interactive") == "interactive"
    monkeypatch.setenv(VIEW_ENV, "Interactive")
    assert view_mode() == "interactive" and view_mode("static") == "static"
    monkeypatch.setenv(VIEW_ENV, "browser")
    with pytest.raises(ValueError, match=VIEW_ENV):
        view_mode()


def test_the_runner_runs_notebooks_with_static_views_unless_told(tmp_path, monkeypatch):
    import cellnb.runner as runner

    seen = []
    monkeypatch.setattr(runner.papermill, "execute_notebook", lambda *a, **k: seen.append(runner.os.environ.get(VIEW_ENV)))
    values = {k: "x" for k in ("profile", "run_dir", "figures_dir", "name", "overrides", "source", "data_dir")}
    monkeypatch.delenv(VIEW_ENV, raising=False)
    _run_notebooks(RunDir(tmp_path / "run"), {**values, "overwrite": True}, tmp_path, False)
    assert set(seen) == {"static"} and VIEW_ENV not in runner.os.environ
    monkeypatch.setenv(VIEW_ENV, "interactive")
    seen.clear()
    _run_notebooks(RunDir(tmp_path / "run"), {**values, "overwrite": True}, tmp_path, False)
    assert set(seen) == {"interactive"}


_CELLS = """
import os
import pyvista as pv
from cellnb.view import show_cells
cells = {name: [pv.Sphere(radius=r, center=(8.0, 8.0, 8.0)) if r else None for r in radii]
         for name, radii in {"a": [2, 3, 4, 5], "b": [0, 4, 3, 2], "c": [5, 5, 4, 0]}.items()}
"""


def test_an_executed_notebook_holds_the_interactive_scene_or_the_png(tmp_path, monkeypatch):
    """One show_cells call per cell, run in a real kernel under each setting of the switch."""
    monkeypatch.delenv(VIEW_ENV, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)  # a kernel as papermill starts it
    settings = {
        "auto": "",
        "auto in a Jupyter session": "os.environ['JPY_SESSION_NAME'] = 'x.ipynb'\n",
        "forced static": f"os.environ['{VIEW_ENV}'] = 'static'\n",
        "forced interactive": f"os.environ.pop('JPY_SESSION_NAME')\nos.environ['{VIEW_ENV}'] = 'interactive'\n",
    }
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_CELLS)] + [
        nbformat.v4.new_code_cell(f"{code}show_cells(cells, title={label!r})") for label, code in settings.items()])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = dict(zip(settings, (cell.outputs for cell in nb.cells[1:])))
    for label in ("auto", "forced static"):
        (out,) = outputs[label]
        assert "image/png" in out.data and "text/html" not in out.data
    for label in ("auto in a Jupyter session", "forced interactive"):
        (out,) = outputs[label]
        html = out.data["text/html"]
        assert 'data-cells="3"' in html and 'data-slider="4"' in html and "getContext" in html
        data = _parse(html)
        assert data["title"] == label and [len(c["frames"]) for c in data["cells"]] == [4, 4, 4]
        assert [[f["n_faces"] > 0 for f in c["frames"]] for c in data["cells"]][1:] == [
            [False, True, True, True], [True, True, True, False]]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs a headless Chromium (Debian package chromium)")
def test_a_browser_draws_the_triangles_of_the_frame_the_slider_is_at(tmp_path):
    cells = {"grows": _spheres([2.0, 3.0, 4.0]), "shrinks": _spheres([4.0, 0.0, 2.0])}
    page = tmp_path / "view.html"
    page.write_text(f"<!doctype html><html><body>{scene_html(cells, max_faces=None)}</body></html>")
    for frame in (0, 1, 2):
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             "--virtual-time-budget=5000", "--dump-dom", f"{page.as_uri()}#cellnb-frame={frame}"],
            capture_output=True, text=True, timeout=120, check=True).stdout
        root = re.search(r'<div class="cellnb-view"[^>]*>', dom).group(0)
        expected = sum(m.n_cells for m in (cells["grows"][frame], cells["shrinks"][frame]) if m is not None)
        assert f'data-frame="{frame}"' in root and f'data-triangles="{expected}"' in root
