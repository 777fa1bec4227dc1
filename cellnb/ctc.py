"""The Cell Tracking Challenge (CTC) layout: label frames, lineage files, data set folders.

The one module that knows the CTC conventions (Ulman et al., Nature Methods
14:1141, 2017; "Naming and file content conventions" of
celltrackingchallenge.net).  A sequence ``01`` of a data set is::

    DATASET/
      01/t000.tif, t001.tif, ...                  images, one 3D frame (Z, Y, X) per file
      01_GT/SEG/man_seg000.tif, ...               segmentation ground truth (labels)
      01_GT/TRA/man_track000.tif, ...             tracking ground truth (labels)
      01_GT/TRA/man_track.txt                     lineage
    RESULT/01_RES/mask000.tif, ..., res_track.txt a method's result

Frame numbers have three digits (four from 1000 frames on) and are read in
numeric order.  A lineage file has one line ``L B E P`` per track: its label
``L`` (> 0), first and last frame ``B`` <= ``E``, and the label of its parent
track ``P`` (0: none).  A track's label is present in every frame from ``B``
to ``E`` and in no other; a parent ends before its daughters begin (a
dividing cell's mother ends at the frame before its two daughters start).

In memory a sequence is a labels array ``(T, Z, Y, X)`` of uint16 and a tracks
table: a :class:`pandas.DataFrame` with integer columns ``label, begin, end,
parent`` (:data:`TRACK_COLUMNS`), one row per track, sorted by label.

Writers build the whole data set in :func:`cellnb.io.atomic_folder` (every file
through :func:`cellnb.io.atomic_path`), so a failed or refused write leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage

from cellnb.io import atomic_folder, atomic_path, tiff_spacing
from cellnb.sdf import CONNECTIVITY_26

__all__ = [
    "TRACK_COLUMNS",
    "LABEL_DTYPE",
    "as_tracks",
    "labels_present",
    "read_lineage",
    "write_lineage",
    "read_label_frames",
    "read_spacing",
    "read_sequence",
    "tracks_from_labels",
    "check_lineage",
    "link_by_overlap",
    "DatasetWriter",
    "dataset_writer",
    "write_dataset",
    "read_dataset",
]

log = logging.getLogger(__name__)

TRACK_COLUMNS = ("label", "begin", "end", "parent")
LABEL_DTYPE = np.uint16  # CTC label frames are 16-bit
_LABEL_MAX = np.iinfo(LABEL_DTYPE).max
_FRAME_NAME = re.compile(r"^(man_track|mask)(\d+)\.tiff?$", re.IGNORECASE)
_LINEAGE_NAMES = {"man_track": "man_track.txt", "mask": "res_track.txt"}
_MIN_DIGITS = 3  # t000.tif ... ; more digits only when the sequence needs them
_ZLIB_LEVEL = 1  # label frames are mostly background: the fastest level compresses them well


# ----------------------------------------------------------------------------- tracks tables


def _tracks_frame(rows) -> pd.DataFrame:
    table = pd.DataFrame(list(rows), columns=list(TRACK_COLUMNS), dtype=np.int64)
    return table.sort_values("label", ignore_index=True)


def as_tracks(tracks) -> pd.DataFrame:
    """A tracks table (columns ``label, begin, end, parent``, sorted by label) from a DataFrame or an
    (N, 4) array of ``L B E P`` rows."""
    if isinstance(tracks, pd.DataFrame):
        missing = [c for c in TRACK_COLUMNS if c not in tracks.columns]
        if missing:
            raise ValueError(f"tracks lacks columns {missing}; a tracks table has columns {list(TRACK_COLUMNS)}")
        values = tracks[list(TRACK_COLUMNS)].to_numpy()
    else:
        values = np.asarray(tracks)
        if values.size == 0:
            values = values.reshape(0, 4)
        if values.ndim != 2 or values.shape[1] != 4:
            raise ValueError(f"tracks must have one row 'L B E P' per track (shape (N, 4)), got shape {values.shape}")
    if values.size and not np.all(np.equal(np.mod(values, 1), 0)):
        raise ValueError("tracks must hold integers (label, begin, end, parent)")
    return _tracks_frame(values.astype(np.int64))


def _check_tracks(table: pd.DataFrame, where: str) -> None:
    """Labels positive and unique, begin <= end, parents known and ending before their daughters begin."""
    fix = "fix the lineage"
    if (table["label"] <= 0).any() or (table["label"] > _LABEL_MAX).any():
        bad = table.loc[(table["label"] <= 0) | (table["label"] > _LABEL_MAX), "label"].tolist()
        raise ValueError(f"{where}: labels {bad} are not in 1..{_LABEL_MAX}; {fix} (0 is background)")
    dup = table.loc[table["label"].duplicated(), "label"].tolist()
    if dup:
        raise ValueError(f"{where}: labels {sorted(set(dup))} have more than one line; keep one line per track")
    bad = table[(table["begin"] < 0) | (table["end"] < table["begin"])]
    if len(bad):
        row = bad.iloc[0]
        raise ValueError(
            f"{where}: track {row.label} runs from frame {row.begin} to {row.end}; "
            "frames must satisfy 0 <= begin <= end"
        )
    ends = dict(zip(table["label"], table["end"]))
    for row in table[table["parent"] != 0].itertuples(index=False):
        if row.parent == row.label:
            raise ValueError(f"{where}: track {row.label} names itself as parent; set its parent to 0")
        if row.parent not in ends:
            raise ValueError(
                f"{where}: track {row.label} names parent {row.parent}, which has no line; "
                f"add the parent's line or set the parent to 0"
            )
        if ends[row.parent] >= row.begin:
            raise ValueError(
                f"{where}: parent {row.parent} ends at frame {ends[row.parent]}, not before its daughter "
                f"{row.label} begins at frame {row.begin}; a mother must end before her daughters begin"
            )


def read_lineage(path) -> pd.DataFrame:
    """Read a CTC lineage file (``man_track.txt`` / ``res_track.txt``).

    Parameters
    ----------
    path : path-like
        Text file with one line ``L B E P`` (four integers) per track; blank
        lines are ignored.

    Returns
    -------
    tracks : DataFrame
        Columns ``label, begin, end, parent`` (int64), sorted by label.

    Raises
    ------
    ValueError
        For a malformed line (naming file and line number), duplicate labels,
        ``B > E``, an unknown parent or a parent that does not end before its
        daughter begins.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"lineage file {path} does not exist; a CTC sequence needs man_track.txt or res_track.txt"
        )
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [int(v) for v in fields]
        except ValueError:
            values = []
        if len(values) != 4 or min(values) < 0:
            raise ValueError(
                f"{path}, line {number}: expected four non-negative integers 'L B E P' "
                f"(label, first frame, last frame, parent or 0), got {line.strip()!r}"
            )
        rows.append(values)
    table = _tracks_frame(rows)
    _check_tracks(table, str(path))
    return table


def write_lineage(path, tracks, *, overwrite: bool = False) -> Path:
    """Write a tracks table as a CTC lineage file, one line ``L B E P`` per track (atomically).

    Parameters
    ----------
    path : path-like
        Target ``man_track.txt`` / ``res_track.txt``.
    tracks : DataFrame or array-like of shape (N, 4)
        Checked as by :func:`read_lineage` before anything is written.
    overwrite : bool
        Replace an existing file.
    """
    table = as_tracks(tracks)
    _check_tracks(table, "tracks")
    text = "".join(f"{r.label} {r.begin} {r.end} {r.parent}\n" for r in table.itertuples(index=False))
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)


# ----------------------------------------------------------------------------- label frames


def _labels_array(labels, what: str = "labels") -> np.ndarray:
    """Check a label time-lapse (T, Z, Y, X) of non-negative integers; a 2D time-lapse is refused."""
    labels = np.asarray(labels)
    if labels.ndim == 3:
        raise ValueError(
            f"{what} has shape {labels.shape}, 3 axes: a 2D time-lapse (T, Y, X) or one 3D frame? "
            "Give a 3D time-lapse (T, Z, Y, X); add a time axis with labels[None] for one frame"
        )
    if labels.ndim != 4:
        raise ValueError(f"{what} must have shape (T, Z, Y, X), got {labels.ndim} axes {labels.shape}")
    if labels.shape[1] < 2:
        raise ValueError(
            f"{what} has shape {labels.shape}: one Z slice per frame is a 2D time-lapse given as 3D; "
            "cellnb models 3D cells, give frames of at least 2 slices"
        )
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"{what} holds {labels.dtype} values; label frames must be integers")
    return labels


def labels_present(frame) -> np.ndarray:
    """The labels (> 0) present in a frame, sorted (a histogram for unsigned labels, fast on large frames)."""
    frame = np.asarray(frame)
    if frame.dtype == bool:
        return np.array([1]) if frame.any() else np.array([], dtype=int)
    if frame.dtype.kind == "u":
        counts = np.bincount(frame.ravel())
        return np.flatnonzero(counts[1:]) + 1
    values = np.unique(frame)
    return values[values > 0]


def _present(frame: np.ndarray) -> set[int]:
    return set(labels_present(frame).tolist())


def _frame_files(folder: Path) -> tuple[str, list[Path]]:
    """The label frame files of a folder in numeric order, and their prefix (``man_track`` or ``mask``)."""
    found: dict[str, dict[int, Path]] = {}
    for p in folder.iterdir():
        m = _FRAME_NAME.match(p.name)
        if m:
            found.setdefault(m.group(1).lower(), {})[int(m.group(2))] = p
    if not found:
        raise ValueError(
            f"{folder} holds no CTC label frames; expected man_track000.tif ... (XX_GT/TRA) or mask000.tif ... "
            "(a result folder)"
        )
    if len(found) > 1:
        raise ValueError(f"{folder} mixes man_trackNNN.tif and maskNNN.tif frames; keep one kind per folder")
    prefix, numbered = next(iter(found.items()))
    numbers = sorted(numbered)
    missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
    if missing:
        name = f"{prefix}{missing[0]:0{_MIN_DIGITS}d}.tif"
        raise ValueError(
            f"{folder}: frame {missing[0]} ({name}) is missing ({len(missing)} missing in all); "
            "CTC frames are numbered 0, 1, 2, ... without gaps"
        )
    return prefix, [numbered[n] for n in numbers]


def _read_label_frame(path: Path) -> np.ndarray:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            data = series.asarray()
    except Exception as err:  # tifffile raises several types for corrupt files
        raise ValueError(f"{path} is not a readable TIFF file ({err})") from None
    if not np.issubdtype(data.dtype, np.integer):
        raise ValueError(f"{path} holds {data.dtype} values; label frames must be integers")
    if data.ndim == 2:
        raise ValueError(
            f"{path} is a 2D image {data.shape}: a 2D time-lapse given as 3D? cellnb needs 3D frames (Z, Y, X)"
        )
    if data.ndim == 3 and "T" in axes and "Z" not in axes:
        raise ValueError(
            f"{path} holds a 2D time-lapse (axes {axes}, shape {data.shape}), not one 3D frame; "
            "a CTC frame file holds one 3D volume (Z, Y, X)"
        )
    if data.ndim != 3:
        raise ValueError(f"{path} holds a {data.ndim}D image {data.shape}; a CTC frame file holds one volume (Z, Y, X)")
    if data.min(initial=0) < 0 or data.max(initial=0) > _LABEL_MAX:
        raise ValueError(f"{path} holds labels outside 0..{_LABEL_MAX}; CTC label frames are 16-bit")
    return data


def read_label_frames(folder) -> np.ndarray:
    """Read the label frames of a CTC folder in numeric frame order.

    Parameters
    ----------
    folder : path-like
        ``XX_GT/TRA`` (``man_trackNNN.tif``) or a result folder (``maskNNN.tif``);
        frames numbered from 0 without gaps, each one 3D volume.

    Returns
    -------
    labels : ndarray of uint16, shape (T, Z, Y, X)

    Raises
    ------
    ValueError
        No frames, missing frame numbers, unreadable or non-integer files, a
        2D frame, or frames of different shapes (naming the first odd file).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give a CTC XX_GT/TRA or result folder")
    _, files = _frame_files(folder)
    first = _read_label_frame(files[0])
    labels = np.empty((len(files),) + first.shape, dtype=LABEL_DTYPE)
    labels[0] = first
    for t, path in enumerate(files[1:], start=1):
        frame = _read_label_frame(path)
        if frame.shape != first.shape:
            raise ValueError(
                f"{path} has shape {frame.shape} but {files[0].name} has {first.shape}; "
                "all label frames of a sequence must have one shape"
            )
        labels[t] = frame
    return labels


def read_spacing(folder) -> tuple[float, float, float] | None:
    """Voxel size (Z, Y, X) in micrometres from the metadata of a CTC folder's first label frame.

    Returns None when the frame carries no ImageJ or OME voxel size (most CTC
    files do not; the data set description gives it), see :func:`cellnb.io.tiff_spacing`.
    """
    folder = Path(folder)
    if (folder / "TRA").is_dir():
        folder = folder / "TRA"
    _, files = _frame_files(folder)
    return tiff_spacing(files[0])


def read_sequence(folder) -> tuple[np.ndarray, pd.DataFrame]:
    """Read a CTC sequence: label frames and lineage, checked against each other.

    Parameters
    ----------
    folder : path-like
        ``XX_GT/TRA`` with ``man_trackNNN.tif`` and ``man_track.txt``, a result
        folder with ``maskNNN.tif`` and ``res_track.txt``, or ``XX_GT`` (its
        ``TRA`` is read).

    Returns
    -------
    labels : ndarray of uint16, shape (T, Z, Y, X)
    tracks : DataFrame
        Columns ``label, begin, end, parent``.

    Raises
    ------
    ValueError
        As :func:`read_label_frames` and :func:`read_lineage`, and when the
        lineage and the frames disagree (:func:`check_lineage`).
    """
    folder = Path(folder)
    if (folder / "TRA").is_dir():
        folder = folder / "TRA"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give a CTC XX_GT/TRA or result folder")
    prefix, _ = _frame_files(folder)
    lineage = folder / _LINEAGE_NAMES[prefix]
    tracks = read_lineage(lineage)
    labels = read_label_frames(folder)
    check_lineage(labels, tracks, source=str(lineage))
    return labels, tracks


# ----------------------------------------------------------------------------- lineage vs labels


def tracks_from_labels(labels, *, parents: dict | None = None) -> pd.DataFrame:
    """The tracks table of a label time-lapse: first and last frame of each label.

    Parameters
    ----------
    labels : array-like of int, shape (T, Z, Y, X)
        Labels persistent over time (0 is background).
    parents : dict, optional
        ``{daughter label: parent label}``; other tracks get parent 0.

    Returns
    -------
    tracks : DataFrame
        Columns ``label, begin, end, parent``.  Gaps are not checked here;
        :func:`check_lineage` does.
    """
    labels = _labels_array(labels)
    parents = parents or {}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t, frame in enumerate(labels):
        for label in _present(frame):
            first.setdefault(label, t)
            last[label] = t
    unknown = sorted(set(parents) - set(first))
    if unknown:
        raise ValueError(f"parents names daughters {unknown} that no frame holds; remove them from parents")
    rows = [(label, first[label], last[label], int(parents.get(label, 0))) for label in first]
    table = _tracks_frame(rows)
    _check_tracks(table, "tracks derived from labels")
    return table


def _check_presence(present: list[set[int]], table: pd.DataFrame, source: str, *, allow_gaps: bool) -> None:
    """Check per-frame label sets against a tracks table (the core of :func:`check_lineage`)."""
    frames_of: dict[int, list[int]] = {}
    for t, labels in enumerate(present):
        for label in labels:
            frames_of.setdefault(label, []).append(t)
    known = set(table["label"].tolist())
    extra = sorted(set(frames_of) - known)
    if extra:
        t = frames_of[extra[0]][0]
        raise ValueError(
            f"{source}: frames hold labels {extra[:10]}{' ...' if len(extra) > 10 else ''} that the lineage lacks "
            f"(label {extra[0]} first in frame {t}); add a line 'L B E P' for each or remove them from the frames"
        )
    absent = sorted(known - set(frames_of))
    if absent:
        raise ValueError(
            f"{source}: the lineage names labels {absent[:10]}{' ...' if len(absent) > 10 else ''} that no frame "
            "holds; remove their lines or add them to the frames"
        )
    n_frames = len(present)
    for row in table.itertuples(index=False):
        frames = frames_of[row.label]
        if row.end >= n_frames:
            raise ValueError(
                f"{source}: track {row.label} ends at frame {row.end} but the sequence has {n_frames} frames; "
                "fix its line"
            )
        if frames[0] != row.begin or frames[-1] != row.end:
            raise ValueError(
                f"{source}: label {row.label} is in frames {frames[0]}..{frames[-1]} but its line says "
                f"{row.begin}..{row.end}; fix the line to '{row.label} {frames[0]} {frames[-1]} {row.parent}'"
            )
        if len(frames) != row.end - row.begin + 1:
            gaps = sorted(set(range(row.begin, row.end + 1)) - set(frames))
            if not allow_gaps:
                raise ValueError(
                    f"{source}: label {row.label} is missing from frames {gaps[:10]} between its first and last "
                    "frame; a CTC track is present in every frame from B to E (split it into two tracks)"
                )
            log.warning("%s: track %d has a gap (missing from frames %s)", source, row.label, gaps[:10])


def check_lineage(labels, tracks, *, source: str = "lineage", allow_gaps: bool = False) -> None:
    """Check that a lineage agrees, frame by frame, with its label frames.

    Parameters
    ----------
    labels : array-like of int, shape (T, Z, Y, X)
    tracks : DataFrame or array-like of shape (N, 4)
        ``L B E P`` rows.
    source : str
        Named in error messages (e.g. the lineage file's path).
    allow_gaps : bool
        Accept a track absent from some frames between its first and last
        (logged as a warning) instead of refusing it.

    Raises
    ------
    ValueError
        Labels in the frames that the lineage lacks, lineage labels in no
        frame, a track whose frames differ from its ``B..E``, and the
        tracks-table errors of :func:`read_lineage`.
    """
    labels = _labels_array(labels)
    table = as_tracks(tracks)
    _check_tracks(table, source)
    _check_presence([_present(frame) for frame in labels], table, source, allow_gaps=allow_gaps)


def link_by_overlap(labels) -> tuple[np.ndarray, pd.DataFrame]:
    """Persistent track labels and a lineage from per-frame labels, linked by overlap.

    Each object of frame ``t`` continues the track of frame ``t - 1`` that it
    overlaps most; a track that two or more objects continue divides (it ends
    at ``t - 1`` and each of them starts a daughter track with that parent);
    an object that overlaps nothing starts a new track (parent 0).  When two
    tracks merge into one object, the one it overlaps most continues.

    Parameters
    ----------
    labels : array-like of int or bool, shape (T, Z, Y, X)
        Objects of each frame, labelled independently per frame (a boolean
        sequence is split into 26-connected components first).

    Returns
    -------
    tracks_labels : ndarray of uint16, shape (T, Z, Y, X)
        Labels persistent over each track's life (1, 2, ... in order of appearance).
    tracks : DataFrame
        Columns ``label, begin, end, parent``; consistent with ``tracks_labels``.
    """
    labels = _labels_array(labels)
    out = np.zeros(labels.shape, dtype=LABEL_DTYPE)
    begin: dict[int, int] = {}
    end: dict[int, int] = {}
    parent: dict[int, int] = {}
    next_label = 1
    previous = None
    for t, frame in enumerate(labels):
        if frame.dtype == bool:
            frame, _ = ndimage.label(frame, structure=CONNECTIVITY_26)
        objects = sorted(_present(frame))
        source: dict[int, int] = {}
        if previous is not None and objects:
            inside = (frame > 0) & (previous > 0)
            base = int(previous.max()) + 1
            keys, counts = np.unique(frame[inside].astype(np.int64) * base + previous[inside], return_counts=True)
            for key in keys[np.argsort(counts, kind="stable")].tolist():
                source[key // base] = key % base  # ascending overlap: the largest is written last
        children: dict[int, list[int]] = {}
        for obj in objects:
            if obj in source:
                children.setdefault(source[obj], []).append(obj)
        assigned: dict[int, int] = {}
        for obj in objects:
            prev = source.get(obj)
            if prev is not None and len(children[prev]) == 1:
                assigned[obj] = prev
                continue
            if next_label > _LABEL_MAX:
                raise ValueError(f"more than {_LABEL_MAX} tracks; CTC label frames are 16-bit")
            assigned[obj] = next_label
            begin[next_label] = t
            parent[next_label] = prev if prev is not None else 0
            next_label += 1
        lut = np.zeros(int(frame.max(initial=0)) + 1, dtype=LABEL_DTYPE)
        for obj, label in assigned.items():
            lut[obj] = label
            end[label] = t
        out[t] = lut[frame]
        previous = out[t]
    rows = [(label, begin[label], end[label], parent[label]) for label in begin]
    return out, _tracks_frame(rows)


# ----------------------------------------------------------------------------- writing data sets


def _digits(n_frames: int) -> int:
    return max(_MIN_DIGITS, len(str(max(n_frames - 1, 0))))


def _imagej_kwargs(spacing) -> dict:
    """ImageJ hyperstack metadata for a physical voxel size (Z, Y, X) in micrometres."""
    if spacing is None:
        return {}
    dz, dy, dx = (float(s) for s in spacing)
    metadata = {"spacing": dz, "unit": "um", "axes": "ZYX"}
    return {"imagej": True, "resolution": (1.0 / dx, 1.0 / dy), "metadata": metadata}


class DatasetWriter:
    """Writes one CTC sequence frame by frame into a temporary folder (see :func:`dataset_writer`).

    Frames may be written in any order; when the block ends, every frame must
    have been written, and the lineage (given or derived) is checked against the
    labels written before the folder is swapped into place.
    """

    def __init__(self, root: Path, *, sequence: str, n_frames: int, spacing, compress_images: bool,
                 images: bool = True):
        self.root = root
        self.with_images = images
        self.sequence = sequence
        self.n_frames = int(n_frames)
        self._digits = _digits(self.n_frames)
        self._tiff = _imagej_kwargs(spacing)
        self._compress_images = compress_images
        self._present: list[set[int] | None] = [None] * self.n_frames
        self._shape: tuple[int, ...] | None = None
        self.tracks: pd.DataFrame | None = None
        self.images = root / sequence
        self.seg = root / f"{sequence}_GT" / "SEG"
        self.tra = root / f"{sequence}_GT" / "TRA"
        for folder in (self.images, self.seg, self.tra) if images else (self.seg, self.tra):
            folder.mkdir(parents=True)

    def _write_tiff(self, path: Path, data: np.ndarray, *, compress: bool) -> None:
        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, data, photometric="minisblack", compression="zlib" if compress else None,
                             compressionargs={"level": _ZLIB_LEVEL} if compress else None, **self._tiff)

    def write_frame(self, t: int, image: np.ndarray | None, labels: np.ndarray, *,
                    seg: np.ndarray | None = None) -> None:
        """Write frame ``t``: the image ``(Z, Y, X)`` (uint8 or uint16), its TRA labels and SEG labels.

        ``seg`` defaults to ``labels`` (every frame fully segmented, as in the
        CTC's synthetic data sets).  ``image`` is None for a writer of ground
        truth only (``images=False``).
        """
        if not 0 <= t < self.n_frames:
            raise ValueError(f"frame {t} is outside 0..{self.n_frames - 1}")
        if self._present[t] is not None:
            raise ValueError(f"frame {t} was written twice")
        if (image is None) == self.with_images:
            raise ValueError(f"frame {t}: give an image exactly when the writer writes images ({self.with_images})")
        labels = np.asarray(labels)
        image = None if image is None else np.asarray(image)
        seg = labels if seg is None else np.asarray(seg)
        if image is not None and image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"image frame {t} is {image.dtype}; CTC images are uint8 or uint16")
        shape = self._shape or labels.shape
        arrays = (("image", image), ("labels", labels), ("seg", seg)) if image is not None else (("labels", labels),
                                                                                                 ("seg", seg))
        for name, array in arrays:
            if array.ndim != 3 or array.shape != shape:
                raise ValueError(
                    f"{name} of frame {t} has shape {array.shape}; every frame must be 3D of shape {shape}"
                )
            if name != "image" and (array.min(initial=0) < 0 or array.max(initial=0) > _LABEL_MAX):
                raise ValueError(f"{name} of frame {t} holds labels outside 0..{_LABEL_MAX}")
        self._shape = shape
        n = f"{t:0{self._digits}d}"
        if image is not None:
            self._write_tiff(self.images / f"t{n}.tif", image, compress=self._compress_images)
        self._write_tiff(self.seg / f"man_seg{n}.tif", seg.astype(LABEL_DTYPE), compress=True)
        self._write_tiff(self.tra / f"man_track{n}.tif", labels.astype(LABEL_DTYPE), compress=True)
        self._present[t] = _present(labels)

    def write_json(self, name: str, obj: dict) -> Path:
        """Write a JSON file beside the sequence, ``<root>/<name>``."""
        path = self.root / name
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(obj, indent=2) + "\n")
        return path

    def finish(self, tracks=None) -> pd.DataFrame:
        """Check the frames and write ``man_track.txt`` (derived from the labels when ``tracks`` is None)."""
        missing = [t for t, p in enumerate(self._present) if p is None]
        if missing:
            raise ValueError(f"frames {missing[:10]} were never written; write all {self.n_frames} frames")
        present = [p for p in self._present if p is not None]
        if tracks is None:
            labels = sorted(set().union(*present))
            rows = []
            for label in labels:
                frames = [t for t, p in enumerate(present) if label in p]
                rows.append((label, frames[0], frames[-1], 0))
            table = _tracks_frame(rows)
        else:
            table = as_tracks(tracks)
        source = f"lineage of {self.sequence}"
        _check_tracks(table, source)
        _check_presence(present, table, source, allow_gaps=False)
        write_lineage(self.tra / "man_track.txt", table)
        self.tracks = table
        return table


@contextlib.contextmanager
def dataset_writer(dest, *, n_frames: int, sequence: str = "01", spacing=None, overwrite: bool = False,
                   compress_images: bool = False, images: bool = True):
    """Write one CTC sequence frame by frame; the data set appears at ``dest`` only when complete.

    Parameters
    ----------
    dest : path-like
        The data set folder (``dest/01``, ``dest/01_GT/...``).  Built in a
        temporary folder beside it (:func:`cellnb.io.atomic_folder`) and
        swapped in when the block succeeds; nothing is left if it fails.
    n_frames : int
        Number of frames T (sets the digits of the file names).
    sequence : str
        Sequence name, ``"01"`` by default.
    spacing : tuple of 3 floats, optional
        Voxel size (Z, Y, X) in micrometres, stored as ImageJ metadata.
    overwrite : bool
        Replace an existing ``dest``.
    compress_images : bool
        zlib-compress the images too (label frames always are).
    images : bool
        False writes the ground truth only (``01_GT/SEG``, ``01_GT/TRA``),
        e.g. generated cells that a microscopy model renders later.

    Yields
    ------
    DatasetWriter
        Call ``write_frame(t, image, labels)`` for every frame, optionally
        ``write_json(name, obj)``, and ``finish(tracks)``; ``finish`` is
        called with ``tracks=None`` (derived from the labels) if the block
        did not call it.

    Raises
    ------
    FileExistsError
        ``dest`` exists and ``overwrite`` is False (before anything is written).
    """
    if int(n_frames) != n_frames or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames}")
    if not re.fullmatch(r"\d{2,}", str(sequence)):
        raise ValueError(f"sequence must be a CTC sequence number such as '01', got {sequence!r}")
    with atomic_folder(dest, overwrite=overwrite) as root:
        writer = DatasetWriter(root, sequence=str(sequence), n_frames=n_frames, spacing=spacing,
                               compress_images=compress_images, images=images)
        yield writer
        if writer.tracks is None:
            writer.finish()


def write_dataset(dest, images, labels, tracks=None, *, seg=None, sequence: str = "01", spacing=None,
                  overwrite: bool = False) -> Path:
    """Write a whole CTC sequence: images, SEG and TRA ground truth, lineage.

    Parameters
    ----------
    dest : path-like
        Data set folder; see :func:`dataset_writer`.
    images : array-like of uint8 or uint16, shape (T, Z, Y, X)
    labels : array-like of int, shape (T, Z, Y, X)
        TRA labels, persistent over each track's life.
    tracks : DataFrame or (N, 4) array, optional
        Lineage; derived from ``labels`` with no parents when omitted.
    seg : array-like of int, shape (T, Z, Y, X), optional
        SEG labels; default ``labels``.
    sequence, spacing, overwrite :
        As in :func:`dataset_writer`.

    Returns
    -------
    Path
        ``dest``.
    """
    labels = _labels_array(labels)
    images = np.asarray(images)
    if images.shape != labels.shape:
        raise ValueError(f"images have shape {images.shape} but labels {labels.shape}; give one image per label frame")
    if seg is not None and np.shape(seg) != labels.shape:
        raise ValueError(f"seg has shape {np.shape(seg)} but labels {labels.shape}")
    if tracks is not None:
        check_lineage(labels, tracks, source="tracks")
    with dataset_writer(dest, n_frames=len(labels), sequence=sequence, spacing=spacing, overwrite=overwrite) as w:
        for t in range(len(labels)):
            w.write_frame(t, images[t], labels[t], seg=None if seg is None else np.asarray(seg[t]))
        w.finish(tracks)
    return Path(dest)


def read_dataset(dest, *, sequence: str = "01") -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Read one sequence of a CTC data set: images, TRA labels and lineage.

    Parameters
    ----------
    dest : path-like
        Data set folder holding ``01/tNNN.tif`` and ``01_GT/TRA``.
    sequence : str

    Returns
    -------
    images : ndarray, shape (T, Z, Y, X)
        In the files' dtype.
    labels : ndarray of uint16, shape (T, Z, Y, X)
    tracks : DataFrame
    """
    dest = Path(dest)
    folder = dest / str(sequence)
    files = {int(m.group(1)): p for p in folder.glob("t*.tif*") if (m := re.fullmatch(r"t(\d+)\.tiff?", p.name))}
    if not files:
        raise FileNotFoundError(f"{folder} holds no images t000.tif ...; is {dest} a CTC data set?")
    labels, tracks = read_sequence(dest / f"{sequence}_GT")
    if sorted(files) != list(range(len(labels))):
        raise ValueError(f"{folder} holds frames {sorted(files)[:5]}...; expected t000 ... for {len(labels)} frames")
    images = np.stack([tifffile.imread(files[t]) for t in range(len(labels))])
    if images.shape != labels.shape:
        raise ValueError(f"images {images.shape} and labels {labels.shape} of {dest} differ in shape")
    return images, labels, tracks
