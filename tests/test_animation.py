"""MP4 animations: frames read back, time stamps, and a scale bar of the right length.

Truth from outside the code under test: the orthographic render of a ball
of known diameter is that many micrometres times the pixels per micrometre
wide, and a scale bar of L micrometres on an image of s micrometres per
pixel is L / s pixels long.
"""

import imageio.v3 as iio
import numpy as np
import pytest
import pyvista as pv
from conftest import ball

from cellnb.export import (
    annotate_frame,
    bar_length,
    export_sequence,
    scale_bar_pixels,
    time_label,
)
from cellnb.render import pixels_per_unit, render_mesh
from cellnb.sdf import sequence_to_sdf
from cellnb.workspace import GeneratedDir

SPACING = 0.5  # micrometres per voxel


def test_scale_bar_pixels_are_micrometres_over_spacing():
    assert scale_bar_pixels(10.0, SPACING) == 20
    assert scale_bar_pixels(5.0, 0.3) == round(5.0 / 0.3)
    assert [bar_length(x) for x in (0.7, 1.0, 3.9, 9.99, 12.0, 74.0)] == [0.5, 1.0, 2.0, 5.0, 10.0, 50.0]
    with pytest.raises(ValueError, match="positive"):
        scale_bar_pixels(10.0, 0.0)


def test_the_drawn_bar_has_its_length_in_pixels():
    image = annotate_frame(np.full((120, 160, 3), 255, np.uint8), text="frame 1 / 4", bar_pixels=37)
    dark = (image.sum(axis=2) < 100)
    rows = dark[60:].sum(axis=1)  # below the time stamp: the bar alone
    assert rows.max() == 37
    assert dark[:30].any()  # the time stamp at the top
    assert time_label(2, 4) == "frame 3 / 4" and time_label(2, 4, minutes_per_frame=1.5) == "t = 3 min"


def test_an_orthographic_render_has_the_pixels_per_micrometre_it_says():
    diameter, half, height = 10.0, 12.0, 240
    image = render_mesh(pv.Sphere(radius=diameter / 2, theta_resolution=60, phi_resolution=60),
                        window_size=(height, height), parallel_scale=half, camera="xy")
    cols = np.flatnonzero((image < 250).any(axis=2).any(axis=0))
    assert cols[-1] - cols[0] + 1 == pytest.approx(diameter * pixels_per_unit(half, height), abs=2)


def test_mp4_reads_back_with_its_frame_count_and_size(tmp_path):
    size, frames = 16, 5
    c = (size - 1) / 2
    masks = np.stack([ball((size,) * 3, [c] * 3, 3 + 0.5 * t) for t in range(frames)])
    sdf, scale = sequence_to_sdf(masks)
    folder = GeneratedDir(tmp_path / "set")
    export_sequence(folder, "cell", sdf, formats=("mp4", "gif"), record={"spacing": [SPACING] * 3, "scale": scale})
    video = iio.imread(folder.mp4_path("cell"), plugin="FFMPEG")
    assert video.shape == (frames, 320, 320, 3)
    assert len(iio.imread(folder.gif_path("cell"))) == frames
    # Without a spacing there is no scale bar: the bottom right corner stays background.
    export_sequence(folder, "plain", sdf, formats=("mp4",), record={})
    plain = iio.imread(folder.mp4_path("plain"), plugin="FFMPEG")
    assert plain.shape == video.shape
    corner = (slice(None), slice(280, 310), slice(200, 312))
    assert video[corner].min() < 60 and plain[corner].min() > 200
