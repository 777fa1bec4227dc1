"""Repair of division windows: re-timing and rebuilding glitch frames, on synthetic spans of known truth."""

import numpy as np
import pytest
from conftest import ball
from scipy import ndimage

from cellnb import repair as datasets
from cellnb.sdf import dice

FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


def n_components(frame):
    return ndimage.label(frame, FULL)[1]


SPAN_SHAPE = (24, 24, 48)
DRIFT = 0.8  # voxels a frame: the synthetic cells move, so a copied neighbour is not the truth


def mother_truth(t):
    """The mother at span frame t: a ball drifting along the last axis and growing."""
    return ball(SPAN_SHAPE, (12, 12, 14 + DRIFT * t), 6.0 + 0.1 * t)


def daughter_truth(t, division):
    """Both daughters at span frame t >= division: balls moving apart along the last axis and growing."""
    shift = 5.5 + 2 * DRIFT * (t - division)
    radius = 4.8 + 0.08 * (t - division)
    return tuple(ball(SPAN_SHAPE, (12, 12, 14 + DRIFT * t + sign * shift), radius) for sign in (-1, 1))


def span(n_mother, n_daughter, division=None):
    """Truth of a span: the masks per frame, the cell divides at span frame ``division`` (default n_mother)."""
    division = n_mother if division is None else division
    return [mother_truth(t) if t < division else daughter_truth(t, division) for t in range(n_mother + n_daughter)]


def as_recorded(frames, n_mother):
    """Split a span's frames as a lineage records them: mother frames, then daughter pairs.

    A frame where the truth is still one cell but the lineage has the daughters becomes
    (the cell less one voxel, that voxel): the late split of the C. elegans data.
    """
    mother = [f for f in frames[:n_mother]]
    daughters = []
    for f in frames[n_mother:]:
        if isinstance(f, tuple):
            daughters.append(f)
        else:
            speck = np.zeros_like(f)
            speck[tuple(np.argwhere(f)[0])] = True
            daughters.append((f & ~speck, speck))
    return mother, daughters


def test_clean_window_is_left_as_is():
    truth = span(5, 6)
    mother, daughters = as_recorded(truth, 5)
    cells, repair = datasets.repair_division_window(mother, daughters, before=4, after=4)
    assert repair.rejected is None and not repair.repaired and repair.notes == ()
    assert (repair.start, repair.division, repair.stop) == (1, 5, 9)
    assert len(cells) == 8
    for k, frame in enumerate(cells):
        expected = (truth[1 + k],) if k < 4 else truth[1 + k]
        assert len(frame) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(frame, expected))


@pytest.mark.parametrize("late", [1, 2])
def test_late_split_is_retimed_to_the_mother(late):
    truth = span(5, 7, division=5 + late)  # the cell divides `late` frames after the lineage says
    mother, daughters = as_recorded(truth, 5)
    cells, repair = datasets.repair_division_window(mother, daughters, before=4, after=4)
    assert repair.retimed == tuple(range(5, 5 + late)) and repair.division == 5 + late
    assert repair.fills == () and sum("re-timed" in n for n in repair.notes) == late
    window = truth[repair.start : repair.stop]
    assert [len(c) for c in cells] == [1] * 4 + [2] * 4
    for frame, expected in zip(cells, window):
        expected = expected if isinstance(expected, tuple) else (expected,)
        assert all(np.array_equal(a, b) for a, b in zip(frame, expected))


def leak(mask):
    """The mask spilled two voxels into its surroundings: more than twice its volume."""
    return ndimage.binary_dilation(mask, iterations=2)


def speck(mask):
    """A few voxels of the mask: a label that almost vanished."""
    out = np.zeros_like(mask)
    out[tuple(np.argwhere(mask)[:3].T)] = True
    return out


@pytest.mark.parametrize("glitch", [speck, leak, lambda mask: None], ids=["speck", "leak", "missing"])
@pytest.mark.parametrize("cell, frame", [(0, 3), (1, 7), (2, 6)])
def test_glitch_frame_is_rebuilt_between_its_neighbours(glitch, cell, frame):
    truth = span(5, 6)
    mother, daughters = as_recorded(truth, 5)
    if cell == 0:
        mother[frame] = glitch(mother[frame])
    else:
        pair = list(daughters[frame - 5])
        pair[cell - 1] = glitch(pair[cell - 1])
        daughters[frame - 5] = tuple(pair)
    cells, repair = datasets.repair_division_window(mother, daughters, before=4, after=4)
    assert repair.rejected is None and repair.retimed == ()
    assert repair.fills == ((frame, cell, frame - 1, frame + 1),)
    rebuilt = cells[frame - repair.start][0 if cell == 0 else cell - 1]
    true = truth[frame] if cell == 0 else truth[frame][cell - 1]
    # Closer to the truth than a copy of either neighbour (the cells move and grow).
    neighbours = [truth[i] if cell == 0 else truth[i][cell - 1] for i in (frame - 1, frame + 1)]
    assert dice(rebuilt, true) > max(0.9, *(dice(n, true) for n in neighbours))
    np.testing.assert_allclose(rebuilt.sum(), true.sum(), rtol=0.1)
    # every other cell of the window is passed through untouched
    for k, i in enumerate(range(repair.start, repair.stop)):
        expected = truth[i] if isinstance(truth[i], tuple) else (truth[i],)
        for c, (got, want) in enumerate(zip(cells[k], expected)):
            if (i, 0 if i < 5 else c + 1) != (frame, cell):
                assert np.array_equal(got, want)


def test_glitch_at_the_span_end_is_copied_and_at_the_window_start_uses_the_margin():
    truth = span(5, 5)  # no daughter frame beyond the window
    mother, daughters = as_recorded(truth, 5)
    mother[1] = speck(mother[1])  # first window frame: the margin frame 0 is its previous neighbour
    daughters[4] = (daughters[4][0], None)  # last span frame: only a previous neighbour
    cells, repair = datasets.repair_division_window(mother, daughters, before=4, after=5)
    assert repair.fills == ((1, 0, 0, 2), (9, 2, 8, None))
    assert any("interpolated between frame 0 and frame 2" in n for n in repair.notes)
    assert any("copied from frame 8" in n for n in repair.notes)
    assert dice(cells[0][0], truth[1]) > 0.95
    assert np.array_equal(cells[-1][1], truth[8][1])  # the copy
    assert dice(cells[-1][1], truth[9][1]) > 0.5  # a copy lags one frame behind the truth
    daughter_inputs = {(i, c) for i in range(5, 10) for c in (1, 2)} - {(9, 2)}
    assert set(repair.inputs()) == {(i, 0) for i in (0, 2, 3, 4)} | daughter_inputs


def test_too_many_glitches_or_too_few_frames_reject_the_window():
    truth = span(9, 4)
    mother, daughters = as_recorded(truth, 9)
    for i in (3, 4, 5):  # three frames in a row: more than MAX_FILLED_RUN
        mother[i] = speck(mother[i])
    cells, repair = datasets.repair_division_window(mother, daughters, before=8, after=4)
    assert cells is None and repair.rejected.startswith("implausible volume") and "in a row" in repair.rejected
    # Glitches in most frames of a cell: its median is no reference, nothing is rebuilt.
    repair = datasets.plan_division_repair([100, 100, 1000, 2000, 2000], [[500, 500]] * 3, before=5, after=3)
    assert repair.rejected.startswith("implausible volume")
    truth = span(5, 4, division=6)  # a late split, and no daughter frame to spare
    cells, repair = datasets.repair_division_window(*as_recorded(truth, 5), before=4, after=4)
    assert cells is None and repair.rejected.startswith("too few frames")
    cells, repair = datasets.repair_division_window(*as_recorded(truth, 5), before=4, after=4, max_retimed=0)
    # Without re-timing both labels of that frame are glitches: rebuilt from the next frame.
    assert cells is not None and repair.retimed == ()
    assert repair.fills == ((5, 1, None, 6), (5, 2, None, 6))


def test_plan_on_voxel_counts_of_real_glitches():
    # ABal in the C. elegans data: ABala is a speck in the first two frames, ABalp holds the mother.
    repair = datasets.plan_division_repair(
        [265976, 267350, 267895, 271026, 273676, 274713, 270000],
        [[25, 272430], [2, 263948], [110122, 144947], [112451, 139284], [113148, 138961], [113044, 143444],
         [112000, 140000], [112500, 141000], [113000, 141500]],
        before=6, after=6, names=("ABal", "ABala", "ABalp"), times=range(11, 27))
    assert repair.retimed == (7, 8) and (repair.start, repair.division, repair.stop) == (3, 9, 15)
    assert repair.fills == () and "ABalp holds it" in repair.notes[0] and repair.notes[0].startswith("frame 18")
    # Cap: the mother vanishes for two frames; rebuilt from the frames either side.
    repair = datasets.plan_division_repair(
        [31000, 31986, 4, 8, 36749, 38480, 40167],
        [[20809, 19030], [18361, 18635], [17514, 20200], [18440, 18285], [18436, 17931], [18300, 18000]],
        before=6, after=6)
    assert repair.retimed == () and repair.fills == ((2, 0, 1, 4), (3, 0, 1, 4))
    assert "interpolated between frame 1 and frame 4" in repair.notes[0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"before": 0}, "before"),
        ({"after": 7}, "daughter_voxels"),
        ({"mother_voxels": [5, -1, 5]}, "0 or more"),
        ({"ratio_range": (1.2, 1.4)}, "ratio_range"),
        ({"names": ("a", "b")}, "names"),
        ({"times": [1, 2]}, "times"),
    ],
)
def test_plan_arguments_checked(kwargs, match):
    args = {"mother_voxels": [5, 5, 5], "daughter_voxels": [[2, 3]] * 3, "before": 2, "after": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        datasets.plan_division_repair(args.pop("mother_voxels"), args.pop("daughter_voxels"), **args)


def test_shape_interpolation_moves_and_grows_the_shape():
    a = ball(SPAN_SHAPE, (12, 12, 14), 5.0)
    b = ball(SPAN_SHAPE, (12, 12, 17), 7.0)
    assert np.array_equal(datasets.interpolate_masks(a, b, 0.0), a)
    for weight in (0.25, 0.5, 0.75):
        truth = ball(SPAN_SHAPE, (12, 12, 14 + 3 * weight), 5.0 + 2 * weight)
        mid = datasets.interpolate_masks(a, b, weight)
        assert dice(mid, truth) > 0.9
        np.testing.assert_allclose(mid.sum(), truth.sum(), rtol=0.2)
    # A cell that moves by its own radius keeps its size (an unaligned blend would thin it).
    moved = ball(SPAN_SHAPE, (12, 12, 26), 5.0)
    mid = datasets.interpolate_masks(a, moved, 0.5)
    assert dice(mid, ball(SPAN_SHAPE, (12, 12, 20), 5.0)) > 0.95
    with pytest.raises(ValueError, match="weight"):
        datasets.interpolate_masks(a, b, 1.5)


def test_repair_checks_masks_against_the_plan():
    truth = span(5, 6)
    mother, daughters = as_recorded(truth, 5)
    repair = datasets.plan_division_repair([m.sum() for m in mother], [[a.sum(), b.sum()] for a, b in daughters],
                                           before=4, after=4)
    mother[2] = None  # read by the plan
    with pytest.raises(ValueError, match="is None"):
        datasets.repair_division_window(mother, daughters, before=4, after=4, repair=repair)
    with pytest.raises(ValueError, match="planned for"):
        datasets.repair_division_window(mother[1:], daughters, before=3, after=4, repair=repair)
    mother[2] = np.zeros((8, 8, 8), dtype=bool)
    with pytest.raises(ValueError, match="one shape"):
        datasets.repair_division_window(mother, daughters, before=4, after=4)
