"""cellnb.division: the gap between two daughters, against analytic balls and a tiny trained run."""

import numpy as np
import pytest
from test_train import tiny, write_data

from cellnb.division import division_gaps, division_section

N = 40


def two_balls(d, r, *, bridge=0.0):
    """Exact SDF (voxel units) of two balls of radius ``r`` whose centres are ``d`` apart along a tilted line.

    ``bridge`` > 0 joins them with a rod of that radius (a bridged division).
    """
    c = (N - 1) / 2
    grid = np.stack(np.meshgrid(*[np.arange(N, dtype=float)] * 3, indexing="ij"), -1)
    axis = np.array([1.0, 0.5, 0.2]) / np.linalg.norm([1.0, 0.5, 0.2])
    c1, c2 = c - axis * d / 2, c + axis * d / 2
    sdf = np.minimum(np.linalg.norm(grid - c1, axis=-1), np.linalg.norm(grid - c2, axis=-1)) - r
    if bridge:
        along = np.clip((grid - c1) @ axis, 0, d)
        rod = np.linalg.norm(grid - (c1 + along[..., None] * axis), axis=-1) - bridge
        sdf = np.minimum(sdf, rod)
    return sdf.astype(np.float32)


@pytest.mark.parametrize("gap", [1.5, 3.0])
def test_the_gap_on_the_line_through_the_centroids_is_the_analytic_one(gap):
    r = 7.0
    true = two_balls(2 * r + gap, r)
    g = division_section(true, two_balls(2 * r + gap, r, bridge=2.0))
    assert g["gap_true"] == pytest.approx(gap, abs=0.25)
    assert g["gap_rec"] == 0.0  # the rod bridges it
    assert g["profile_true"].max() == pytest.approx(gap / 2, abs=0.1)  # the SDF peaks mid-gap at half its width
    section = g["section_true"] < 0
    assert section.shape == (N + 1, N + 1)
    assert section[N // 2 - int(r) + 1 : N // 2 - 1].any() and section[N // 2 + 2 : N // 2 + int(r)].any()
    assert not section[N // 2].any()  # the middle row (perpendicular to the line) lies in the gap
    same = division_section(true, true)
    assert same["gap_rec"] == same["gap_true"]
    np.testing.assert_array_equal(same["profile_rec"], same["profile_true"])


def test_a_frame_without_two_daughters_is_refused():
    one = two_balls(0.0, 7.0)
    with pytest.raises(ValueError, match="exactly two daughters"):
        division_section(one, one)
    with pytest.raises(ValueError, match="one shape"):
        division_section(two_balls(17, 7), one[:-1])


def test_division_gaps_of_a_trained_run_take_the_first_frame_with_two_daughters(tmp_path):
    from cellnb.viz.training import plot_division_gap

    data = write_data(tmp_path / "data")
    tiny(tmp_path / "run", data, epochs=40)
    gaps = division_gaps(tmp_path / "run")
    assert [g["name"] for g in gaps] == ["split"]  # the growing ball never divides
    # balls of radius 3.2 whose centres are 2 (1 + 1.6 t) apart: they touch until frame 2, 8.4 apart, a gap of 2
    assert gaps[0]["frame"] == 2 and gaps[0]["gap_true"] == pytest.approx(2.0, abs=1.0)
    assert isinstance(gaps[0]["components_rec"], int)  # a 40-epoch model may not hold the frame yet
    fig = plot_division_gap(gaps)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="no training sequence divides"):
        plot_division_gap([])
