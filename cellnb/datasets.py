"""Readers of real segmentations into :class:`~cellnb.sequence.MaskSequence`.

* :func:`read_tiff_sequence`: one cell's 3D+t label time-lapse (a folder of
  per-frame TIFFs such as ``mask000.tif`` ..., or one multi-frame TIFF), one
  label or the foreground of a single-cell image; :func:`read_tiff_sequences`
  a folder or glob of them, one sequence each.
* :func:`labels_lineage`: a multi-cell label time-lapse with no lineage file;
  tracks are linked by overlap between consecutive frames
  (:func:`cellnb.ctc.link_by_overlap`: a label overlapping two in the next
  frame divides).
* :func:`ctc_lineage`: a Cell Tracking Challenge sequence folder (label frames
  and its ``man_track.txt`` / ``res_track.txt``).
* :func:`celegans_lineage`, :func:`celegans_divisions`: the C. elegans
  lineage segmentation of the 3DMMS paper (Cao et al., BMC Bioinformatics
  20:176, 2019; embryo ``170704plc1p2``, 95 time points); the lineage comes
  from the cells' names.

The three lineage sources give a :class:`cellnb.lineage.Frames` and a
:class:`cellnb.lineage.Lineage`, from which :func:`cellnb.lineage.sequences_from_lineage`
makes division, track or single-cell sequences: one code path for every lineage.

The C. elegans data are third-party files, not part of the package.  They are
looked up in ``$CELLNB_DATA_DIR/celegans-3dmms`` (layout: ``membSeg/T001_membSeg.mat``
... ``T095_membSeg.mat``, ``nucInformation.mat`` and, optionally, the derived
``labels.csv``) and otherwise downloaded once from their public source into a
cache, with SHA-256 checks (:func:`celegans_dir`).  Importing this module never
reads or downloads anything.

Axes: the ``.mat`` volumes are MATLAB ``(row, column, slice) = (y, x, z)``;
they are transposed with ``transpose(2, 0, 1)`` to the package's ``(Z, Y, X)``
order (see :mod:`cellnb.sdf`).  The voxel is isotropic, about 0.225 µm.
"""

from __future__ import annotations

import csv
import glob
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pooch
import scipy.io
import tifffile
from tqdm.auto import tqdm

from cellnb import ctc
from cellnb.io import read_label_stack
from cellnb.lineage import Frames, Lineage, check_arguments, sequences_from_lineage
from cellnb.sequence import MaskSequence

__all__ = [
    "CELEGANS_FOLDER",
    "CELEGANS_VOXEL_UM",
    "CELEGANS_REPOSITORY",
    "CELEGANS_COMMIT",
    "CELEGANS_BASE_URL",
    "CELEGANS_REGISTRY",
    "CACHE_ENV",
    "resolve_spacing",
    "read_tiff_sequence",
    "read_tiff_sequences",
    "labels_lineage",
    "ctc_lineage",
    "celegans_dir",
    "celegans_label_table",
    "celegans_mother",
    "celegans_lineage",
    "celegans_to_ctc",
    "celegans_divisions",
]

log = logging.getLogger(__name__)

_TIFF_SUFFIXES = (".tif", ".tiff")

CELEGANS_FOLDER = "celegans-3dmms"  # sub-folder of $CELLNB_DATA_DIR
CELEGANS_VOXEL_UM = 0.225  # isotropic voxel size in µm (3DMMS parameters, see the data README)
CELEGANS_REPOSITORY = "https://github.com/cao13jf/3DMMS_public"
# The files were deleted from the repository after this commit, so it is pinned.
CELEGANS_COMMIT = "63ca4f82a6b07647ec6776c8639e2cc6db4409d3"
CELEGANS_BASE_URL = f"https://raw.githubusercontent.com/cao13jf/3DMMS_public/{CELEGANS_COMMIT}/"
CACHE_ENV = "CELLNB_CACHE_DIR"  # overrides the download cache folder (default: the OS cache)

# Local file name -> path in the source repository at CELEGANS_COMMIT.
_SOURCE_PATHS = {
    **{
        f"membSeg/T{t:03d}_membSeg.mat": f"results/resultWithMerge/merged_membrane/170704plc1p2/T{t:03d}_membSeg.mat"
        for t in range(1, 96)
    },
    "nucInformation.mat": "getNucFromacetree/transformed/170704plc1p2/nucInformation.mat",
}

# SHA-256 of every downloadable file (from the SHA256SUMS of the shared copy).
CELEGANS_REGISTRY = {
    "membSeg/T001_membSeg.mat": "0313a613afa76bd43c3566aa66f6581bbd1ea998d4eb1c2789bff33d0a84e111",
    "membSeg/T002_membSeg.mat": "119452624f856e3d5c67b0548ed1347436535520aef8d721a244080bda732b44",
    "membSeg/T003_membSeg.mat": "6f17e1cb347e0803609cc0d434d5d6fe35f7148fb5ffb78ee94a6851b73363cf",
    "membSeg/T004_membSeg.mat": "73582085f3ae8a3aa48f05de7abe2335ee4ae7c53dbc83ddf61399a99877c6f2",
    "membSeg/T005_membSeg.mat": "358e38aa7aef4b5ca2ef2bb910fab620f86a560b60b4374a3643394f22ed4169",
    "membSeg/T006_membSeg.mat": "3e7430a0faaf85adaedd017589a350a080f79d5bdaf88695f81a9a40612324e3",
    "membSeg/T007_membSeg.mat": "454fb5c5b418db0a1bd9e44eadfe792bdd0d3e0bde7ca0562303371c66d4dc30",
    "membSeg/T008_membSeg.mat": "46a8b7d6b211b29193db7f127a0d419172159e1f90e9b60535866d3fb0fc8370",
    "membSeg/T009_membSeg.mat": "67ceb43c23aded399c4f4524f14d408d7e01998223982bda0700e52e1a615b09",
    "membSeg/T010_membSeg.mat": "1bc4a42082b2e62ac3b8ccc3dd2ef8d5dd9b502e7ad51f79f32e82be41d506fa",
    "membSeg/T011_membSeg.mat": "06bcea098b6476ff34034d6d06c1067fbceeede686774849e9a838997299b689",
    "membSeg/T012_membSeg.mat": "dbf5520fb7b6e3a9f21267eef97bfd7193e73932d0cf14c908c3ccbba5ad982c",
    "membSeg/T013_membSeg.mat": "84aecff2088c92205ca61c7da17e0136588f895716aded80cfa96775585ce4f9",
    "membSeg/T014_membSeg.mat": "c64d4c1870dbb21cbc286b8bc6617281fe2aafd19c9f3a49972b2718e0904fbe",
    "membSeg/T015_membSeg.mat": "177e284f83efad1725e4859914bebdb5348f2376cac4df4fd589301d4d52ad33",
    "membSeg/T016_membSeg.mat": "6d280c20bb128951dcd333e800a829158d6fa695515b5a03239fcae78cee272c",
    "membSeg/T017_membSeg.mat": "bcc40cb49d2834ecf204bd71b4be92cf5c1595dc1169bc4bb5225cd5dd3b9133",
    "membSeg/T018_membSeg.mat": "ef7a017cebe606be985769d0ee1437f762778fed3f27216809a7f36226415f0b",
    "membSeg/T019_membSeg.mat": "f38765a2a66c07c24832132f39b2a6b09cbe2f439b728ad3a49aafdf030f1b51",
    "membSeg/T020_membSeg.mat": "c52438ecbb0cc77085e8a6cb1a84696945118943d5ff092443bc311626ee3337",
    "membSeg/T021_membSeg.mat": "a5062e8b317303a5f609da9b4f500d70a7b070dc90ce99068a22286349ee76ea",
    "membSeg/T022_membSeg.mat": "e88caf4190ee2cba4eeb1ed7a2a9a3e92db57c993059d0872cb4833b3afd4117",
    "membSeg/T023_membSeg.mat": "2a218ad4c4a1ca9af8bfceda6e9ce0902260ee3c992d38bbaf5ec1cc72a360f9",
    "membSeg/T024_membSeg.mat": "1b823755f9d9562a5871a002bf806c740e238951a293cb2774d4950e53a33888",
    "membSeg/T025_membSeg.mat": "9fdd2fe0be86e4b1b47eefe534a382c557eb13237035534a415a6a8a565dc7d0",
    "membSeg/T026_membSeg.mat": "b3bb6c1c63897f6499462d15d888813fbd20c87276747ff577c293f781e1bc05",
    "membSeg/T027_membSeg.mat": "3c6a63384b81d18468ff1f720869cb1e0870f494328b57d35385f7751348b4fe",
    "membSeg/T028_membSeg.mat": "2d1b047e67ec234ffe175e2ac2f5eeaf93c4ed0e746fa9577cf3f8e3d6822475",
    "membSeg/T029_membSeg.mat": "f380c4f4cd97f28b15a0b1e17d51f38ce4427acab43cee4236e8db2e6b7420f9",
    "membSeg/T030_membSeg.mat": "7a11d106f8c5d843fc0a9cb1810dd36f308ce750b9a00df8f8e5ce0013019a0d",
    "membSeg/T031_membSeg.mat": "f81a0ffb3032904b3cf8df6ebb04b00a6a6ffdc9277c926c64800bf836d121a5",
    "membSeg/T032_membSeg.mat": "7329c60e74aace76d9040e9b8fe05cccc5df6678dc318f8c0d85fb299a1e1c8d",
    "membSeg/T033_membSeg.mat": "6b3983e8ac0addb6f68c0c2c912cc9d77bf4445b6a8bccda2eef9b0b0bf230a2",
    "membSeg/T034_membSeg.mat": "3124ebed2513f58b49b362d629c46a9f463c46a231139564faeacec063f569ae",
    "membSeg/T035_membSeg.mat": "ae0338c86f601aa3cdfb01ebc6e14bc19a397d3b8ddaae9f471d8c9fc9dbea75",
    "membSeg/T036_membSeg.mat": "b4665b5b572d56b4f379175d380179cb93c75032a2b59d64457b2e94358eb6d4",
    "membSeg/T037_membSeg.mat": "506c5cc26910ff9c23ec20d0a7574153f6bc771a3b53e481790ec12dd0233a8f",
    "membSeg/T038_membSeg.mat": "c90b10b05711ad4273bb443bd4d40616a12c0bcc1658e693888b62cd3364e93e",
    "membSeg/T039_membSeg.mat": "37e239c761f28c6e0245f4d17a6778595ae25f3e352e9c971267f149e4871fe1",
    "membSeg/T040_membSeg.mat": "8ffc82342e6bba9221ed718c1180d3177db0d540da8889826467f669c6cb55a6",
    "membSeg/T041_membSeg.mat": "8177d9cbaad332396a310297646a55ca67c01606f772b2b092c417fc1dcfaac9",
    "membSeg/T042_membSeg.mat": "68770ae377ce06a7a4f6e56082ff803bcc0dc2d161549b79e88ce963cd13f051",
    "membSeg/T043_membSeg.mat": "a71d49c08dd79ab9dc80a4fa2b7018a32a588f47522256d30e11b9fea9aadb23",
    "membSeg/T044_membSeg.mat": "ed3bbc04a29dcbc55bc505d4733b3cb3338772f152dc07b760cd2649bf79c602",
    "membSeg/T045_membSeg.mat": "df291caa1f742a4026202b06dc20d8e81da7957ee4fdd1e24064ce0a2efa8958",
    "membSeg/T046_membSeg.mat": "c400ad16fcb9dd81d9e42e5504493f487d51188e31d47ccad01029e1e81d07fb",
    "membSeg/T047_membSeg.mat": "f217c138fccead0842963dfb70d2ddea4d4732039f58f7c66ed20654f5c5a8f6",
    "membSeg/T048_membSeg.mat": "87c4c960c32eea2134b49aae433a9c3ae088cd3aecebd1499efa1e47473c8e4e",
    "membSeg/T049_membSeg.mat": "a5fdb596bbec94e322986a0a210a942fe0e95b184d9f6bdc9e4fe2b7cb39ab66",
    "membSeg/T050_membSeg.mat": "93be0bb96c48e94988d4cd6fbae1f575679fb5dd290a4469dc01168bbe929102",
    "membSeg/T051_membSeg.mat": "095c166e1da6136a60f6e1566efa8081c498a128e0ab57cadaf3c966d22c8fab",
    "membSeg/T052_membSeg.mat": "3b240e71837196ed9b0ecdc85d53304904e87b9509bcbbb1b8113fb94bae7cf6",
    "membSeg/T053_membSeg.mat": "d075f64ff79d1143f5ac6c05b6fb632b8b8175bf540efe015faf10f9661b9a84",
    "membSeg/T054_membSeg.mat": "857e82df968967e3ec5f017551b3cad8c5157b79f3cd9a3e423e088877dcdcb1",
    "membSeg/T055_membSeg.mat": "af4f3540bd9f878d5e415aaa18a9edc0b48bb32ba1e7acfb0e303614f2cf7c8a",
    "membSeg/T056_membSeg.mat": "ce34a0e6ef5c57f27f74f0904ce9c322c5d205698814213d5d563d5e4d82040c",
    "membSeg/T057_membSeg.mat": "fc09023ade92eee5093c71546f6621dd9be52859ce587748f1e1f5f48b175601",
    "membSeg/T058_membSeg.mat": "47297548bf56623457f850277c9b6cb52b40e031adfe3df0d7f28044a220feed",
    "membSeg/T059_membSeg.mat": "79c240e1bf4db4f2b34179c60498b48022e2f69b7b3273117a90b8e99f985d37",
    "membSeg/T060_membSeg.mat": "17bdc43e8f3657246a00e15db9f95c57fa6102f52f26c9bbc3706482c7d9291a",
    "membSeg/T061_membSeg.mat": "052ac35ec027320bacb632799c5caaf3c8afb83ed92c13f79f8c8f317d3d35d3",
    "membSeg/T062_membSeg.mat": "6315bc0c4a42dde61710ac66ca099cbd2e583da5c764a1cdd77deff66f570f42",
    "membSeg/T063_membSeg.mat": "d8e03444c0ded6145bc5fccff4f2147c18794ecb0c562236c889020087d6ba85",
    "membSeg/T064_membSeg.mat": "aeaf546d002ed261748513ddd2e638b03e174b9b7ed851ec34d2dd0ce772c3dc",
    "membSeg/T065_membSeg.mat": "deb02436887dae141f252e68a6de4c465977fc43dc2e0b7dad58fdbb2a528317",
    "membSeg/T066_membSeg.mat": "3bc427c1b8a885eb91e175e5588747ac2035a05fc56f0c0ea5e2242a21489625",
    "membSeg/T067_membSeg.mat": "7b48038b831e53eb4262963939f12ca8eb50cba9fbef5626a91fd0b14b83ad97",
    "membSeg/T068_membSeg.mat": "100dce4fbf03cb85482e0596f49af7a486977607c2b884155d28efb6470b2ba7",
    "membSeg/T069_membSeg.mat": "63141dcdc98745be0f34de5072bb4496fa98bd5acf710ef73e9c2880768d0648",
    "membSeg/T070_membSeg.mat": "b4b397f4a068de98b58b557a8f23e353a01aa7d1d0570c355b9022122144aa55",
    "membSeg/T071_membSeg.mat": "76448560340b497db5fbeeae3a7b392f7b86635763ebe45c80c34c0ed26a69aa",
    "membSeg/T072_membSeg.mat": "68667ea5865558b573c116ced9d2a4e08c8b17a961511ad3cd8810f2331da82f",
    "membSeg/T073_membSeg.mat": "28a4cbc836d75e75756512558558a8d028feff70b60102019e6c2763ce211acc",
    "membSeg/T074_membSeg.mat": "6906f77029a9744ac52d13b83b9d19fff63f9e4dc929ad61658b660333dbec87",
    "membSeg/T075_membSeg.mat": "5d3d146dcf3d3e0c57df8fb7a95ca3b6bedb36bd327b19f3eef9e584a4e1c7d1",
    "membSeg/T076_membSeg.mat": "89f4d43f7c6f8bc1bca4a8f3979a1a9cd55a9d729cfa30a754921eb50bc0bd37",
    "membSeg/T077_membSeg.mat": "28fcc92d6e3aabb9b6457b596aa24d99a58f64c180333ec1d2b4b64767984d00",
    "membSeg/T078_membSeg.mat": "ed6f8caca2b1ba755d0a73e3a13c0837f19311bf686f3412f4b280bc003ead0c",
    "membSeg/T079_membSeg.mat": "457a1ea8d408d592b6bf742a45f821b632ce0711e9d0bade72d2c788f750ac91",
    "membSeg/T080_membSeg.mat": "74c25888107f7032d97f965971c4ca7b8058d2a6636c51d5d0d38420c4f8ee71",
    "membSeg/T081_membSeg.mat": "680cc7d7a411a07a313cd0fa3a76c06fd33d744d67f6e1448e6be18c886150b1",
    "membSeg/T082_membSeg.mat": "e9ea263ea64e6aeee86275b3df092b3a81229e0c45b960fd9754b21327b6c43f",
    "membSeg/T083_membSeg.mat": "923a74b3390ae5a938ffde296c6774ec4af6d6d2b7c646f237ee4145f1dcb763",
    "membSeg/T084_membSeg.mat": "811233004e22067c0da4f971a70e469192dad8fc082b8e056eb9142de03ccd46",
    "membSeg/T085_membSeg.mat": "2cdef31867e0fab9f250f7f2451c0021b9e9c06793c796124bdabed80abb8e99",
    "membSeg/T086_membSeg.mat": "c3187fd67ac809722d2d304f919dde190dd1fad9644d2077827b2133f7f14e4f",
    "membSeg/T087_membSeg.mat": "eb3b187fecfccb43f85b4de806c60670c3e4baaab9733d1fdd73aeb56e20ca8d",
    "membSeg/T088_membSeg.mat": "990d677853a0c8a688f81ee8ff98a228a00223161d8aa8801c10207c5749d4c9",
    "membSeg/T089_membSeg.mat": "560a5d8ab1471021bb97e3d9b7dec13bcae38a34cd7d1f96bfc98bdfedaf1b2f",
    "membSeg/T090_membSeg.mat": "5442e03fce9e669c9dd93d06808f50fca74a48a2214fec6864868cbadbcf7056",
    "membSeg/T091_membSeg.mat": "873a3e400590036458d66d4425d42c325754d1e4e7103a9309f8a51f36fe713a",
    "membSeg/T092_membSeg.mat": "ec7148649d5720ba32a310fd5da4c7f7f8a5ace274cd014cedd0e16f1951b8d9",
    "membSeg/T093_membSeg.mat": "314fed50372ad6455781718df4e3c892212982ef8bd17ad5d1717c65ea86d291",
    "membSeg/T094_membSeg.mat": "909210c4c993866a567658dee1627c9fa8463df9208b6c3c7b06a4e140466871",
    "membSeg/T095_membSeg.mat": "419713ab6c8290c33cce1010e716f51f1210e3bdfc4187574506b417e82b76e7",
    "nucInformation.mat": "420374337ebcc3970556efd4cf308e3c4d08f3de71a77d9fb7f59873ae36fb47",
}

_LABEL_COLUMNS = ("label", "first_frame", "last_frame", "n_frames", "median_voxels", "min_voxels", "max_voxels")

# Founder cells whose mother is not their name minus its last letter (C. elegans lineage naming).
_FOUNDER_MOTHERS = {
    "AB": "P0",
    "P1": "P0",
    "ABa": "AB",
    "ABp": "AB",
    "EMS": "P1",
    "P2": "P1",
    "MS": "EMS",
    "E": "EMS",
    "C": "P2",
    "P3": "P2",
    "D": "P3",
    "P4": "P3",
    "Z2": "P4",
    "Z3": "P4",
}


def _label_summary(labels: np.ndarray, limit: int = 20) -> str:
    shown = ", ".join(str(int(v)) for v in labels[:limit])
    return shown + (f", ... ({labels.size} labels)" if labels.size > limit else "")


def resolve_spacing(given, found, *, where: str) -> tuple[float, float, float]:
    """The voxel size to use: the one given (``--spacing``), else the metadata's, else 1 um with a warning.

    Raises
    ------
    ValueError
        A given spacing that is not three positive numbers.
    """
    if given is not None:
        values = tuple(float(v) for v in np.broadcast_to(np.asarray(given, dtype=float), (3,)))
        if not all(np.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"spacing must be three positive voxel sizes Z Y X in um, got {list(given)}; "
                             "e.g. --spacing 1.0 0.2 0.2")
        return values
    if found is not None:
        return tuple(float(v) for v in found)
    log.warning("%s records no voxel size and none was given: assuming 1 x 1 x 1 um, so a stack with a coarser "
                "z step comes out flattened; give --spacing Z Y X", where)
    return (1.0, 1.0, 1.0)


def read_tiff_sequence(
    path, *, label: int | None = None, spacing=None, name: str | None = None, axes: str | None = None
) -> MaskSequence:
    """Read one cell's 3D+t label time-lapse from TIFF into a mask sequence.

    Parameters
    ----------
    path : path-like
        A folder of per-frame 3D TIFFs (numeric order, e.g. ``mask000.tif``,
        ``mask001.tif``, ...), or one multi-frame TIFF; see :func:`cellnb.io.read_label_stack`.
    label : int, optional
        Keep only this label; default the foreground of an image with one
        label (an image holding several labels, i.e. several cells, is refused).
    spacing : tuple of 3 floats, optional
        Voxel size along Z, Y, X in um; default the file's ImageJ/OME metadata
        (:func:`resolve_spacing`).
    name : str, optional
        Sequence name; default the folder name or the file stem.
    axes : str, optional
        Axis order of the file when its metadata are wrong, e.g. ``"TZYX"``.

    Returns
    -------
    MaskSequence
        ``masks`` bool of shape (T, Z, Y, X); ``meta`` holds ``"source"``
        (the path) and ``"label"``.

    Raises
    ------
    ValueError
        If ``label`` never occurs (the message lists the labels present), or
        a frame has no foreground or no background.
    """
    path = Path(path)
    labels, found = read_label_stack(path, axes=axes)
    spacing = resolve_spacing(spacing, found, where=str(path))
    if label is None:
        present = np.unique(labels)
        present = present[present != 0]
        if present.size > 1:
            raise ValueError(
                f"{path} holds {present.size} labels ({_label_summary(present)}), i.e. several cells; "
                "pick one cell with label=N, or read them all as cells with --source labels:PATH"
            )
        masks = labels > 0
        what = "the foreground"
    else:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"label must be an integer label value or None (all foreground), got {label!r}")
        present = np.unique(labels)
        present = present[present != 0]
        if label not in present:
            raise ValueError(
                f"label {label} does not occur in {path}; labels present: {_label_summary(present)}. "
                "Pass one of them, or label=None for all foreground"
            )
        masks = labels == label
        what = f"label {label}"
    empty = np.flatnonzero(~masks.any(axis=(1, 2, 3)))
    if empty.size:
        raise ValueError(
            f"{what} is empty in frame(s) {empty.tolist()} of {path}; every frame needs the cell "
            "(choose a label present in all frames, or cut the time-lapse to the frames that hold it)"
        )
    full = np.flatnonzero(masks.all(axis=(1, 2, 3)))
    if full.size:
        raise ValueError(
            f"{what} fills the whole volume in frame(s) {full.tolist()} of {path}; "
            "a cell mask needs background around it"
        )
    return MaskSequence(
        masks,
        spacing,
        name or (path.name if path.is_dir() else path.stem),
        {"source": str(path), "label": None if label is None else int(label)},
    )


def read_tiff_sequences(pattern, *, spacing=None, axes: str | None = None) -> list[MaskSequence]:
    """One single-cell sequence per TIFF time-lapse of a folder or glob (``cells/*.tif``).

    A folder of per-frame TIFFs is one time-lapse (:func:`read_tiff_sequence`);
    a folder holding multi-frame TIFFs or folders of frames gives one
    sequence each; a glob gives one per match.  Names are the file stems
    (or folder names) and must be unique.
    """
    text = str(pattern)
    path = Path(text)
    if glob.has_magic(text):
        sources = sorted(Path(p) for p in glob.glob(text))
        if not sources:
            raise FileNotFoundError(f"no file matches {text}; check the pattern (e.g. 'cells/*.tif')")
    elif path.is_dir():
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        tiffs = [p for p in entries if p.is_file() and p.suffix.lower() in _TIFF_SUFFIXES]
        if tiffs and all(_is_stack(p) is False for p in tiffs):
            sources = [path]  # a folder of frames: one time-lapse
        else:
            sources = tiffs + [p for p in entries if p.is_dir()]
    else:
        sources = [path]
    if not sources:
        raise ValueError(f"{path} holds no TIFF time-lapses")
    sequences = [read_tiff_sequence(p, spacing=spacing, axes=axes) for p in sources]
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise ValueError(f"time-lapses in {text} share names ({sorted(n for n in names if names.count(n) > 1)}); "
                         "rename them, each becomes a file of the data set")
    return sequences


def _is_stack(path: Path) -> bool | None:
    """Whether a TIFF holds a whole time-lapse (4D) rather than one frame; None if unreadable as one."""
    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.series[0].shape) >= 4
    except Exception:  # tifffile raises several types for files that are not TIFFs
        return None


def labels_lineage(path, *, spacing=None, axes: str | None = None, name: str | None = None) -> tuple[Frames, Lineage]:
    """A multi-cell label time-lapse without lineage file, its tracks linked by overlap.

    Parameters
    ----------
    path : path-like
        A multi-label TIFF ``(T, Z, Y, X)`` or a folder of label frames.
    spacing, axes :
        As in :func:`read_tiff_sequence`.
    name : str, optional
        Prefix of the sequence names; default the file stem or folder name.
    """
    path = Path(path)
    labels, found = read_label_stack(path, axes=axes)
    linked, tracks = ctc.link_by_overlap(labels)
    prefix = f"{name or (path.name if path.is_dir() else path.stem)}_"
    return Frames.from_array(linked, resolve_spacing(spacing, found, where=str(path))), Lineage(tracks, prefix=prefix)


def ctc_lineage(path, *, spacing=None) -> tuple[Frames, Lineage]:
    """A Cell Tracking Challenge sequence folder: label frames and their lineage file.

    Parameters
    ----------
    path : path-like
        ``XX_GT/TRA`` (``man_trackNNN.tif``, ``man_track.txt``), ``XX_GT``, or a
        result folder (``maskNNN.tif``, ``res_track.txt``).
    spacing : tuple of 3 floats, optional
        Voxel size Z Y X in um; default the frames' metadata.
    """
    path = Path(path)
    labels, tracks = ctc.read_sequence(path)
    gt = path.parent if path.name == "TRA" else path  # XX_GT, or a result folder
    prefix = f"{gt.parent.name}_{gt.name.removesuffix('_GT')}_" if gt.name.endswith("_GT") else f"{gt.name}_"
    found = ctc.read_spacing(path)
    return Frames.from_array(labels, resolve_spacing(spacing, found, where=str(path))), Lineage(tracks, prefix=prefix)


def _is_celegans_folder(folder: Path) -> bool:
    return (folder / "membSeg" / "T001_membSeg.mat").is_file() and (
        (folder / "labels.csv").is_file() or (folder / "nucInformation.mat").is_file()
    )


def celegans_dir(data_dir=None, *, progress: bool = True) -> Path:
    """Folder of the C. elegans 3DMMS data, downloading it if needed.

    Resolution order:

    1. ``data_dir`` when given: the data folder itself (holding ``membSeg/``)
       or a folder that holds ``celegans-3dmms/``;
    2. ``$CELLNB_DATA_DIR/celegans-3dmms``;
    3. a download cache (``$CELLNB_CACHE_DIR`` or the OS cache folder of
       ``cellnb``, sub-folder ``celegans-3dmms``) filled from
       :data:`CELEGANS_BASE_URL` with pooch, each file checked against
       :data:`CELEGANS_REGISTRY` (SHA-256).  ``labels.csv`` is not part of the
       source; without it :func:`celegans_label_table` derives the table.

    Parameters
    ----------
    data_dir : path-like, optional
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` holds no data, or the download fails (no internet,
        checksum mismatch); the message says to set ``CELLNB_DATA_DIR``.
    """
    if data_dir is not None:
        data_dir = Path(data_dir)
        for folder in (data_dir, data_dir / CELEGANS_FOLDER):
            if _is_celegans_folder(folder):
                return folder
        raise FileNotFoundError(
            f"{data_dir} holds no C. elegans data: expected {data_dir}/membSeg/T001_membSeg.mat ... "
            f"or {data_dir}/{CELEGANS_FOLDER}/membSeg/T001_membSeg.mat ..."
        )
    env = os.environ.get("CELLNB_DATA_DIR")
    if env:
        folder = Path(env) / CELEGANS_FOLDER
        if _is_celegans_folder(folder):
            return folder
        log.info("%s holds no C. elegans data; downloading it", folder)
    return _download_celegans(progress)


def _download_celegans(progress: bool) -> Path:
    cache = Path(os.environ.get(CACHE_ENV) or pooch.os_cache("cellnb")) / CELEGANS_FOLDER
    fetcher = pooch.create(
        path=cache,
        base_url=CELEGANS_BASE_URL,
        registry={name: f"sha256:{digest}" for name, digest in CELEGANS_REGISTRY.items()},
        urls={name: CELEGANS_BASE_URL + source for name, source in _SOURCE_PATHS.items()},
    )
    try:
        for name in tqdm(CELEGANS_REGISTRY, desc="C. elegans download", unit="file", disable=not progress):
            fetcher.fetch(name)
    except Exception as err:  # network, HTTP and checksum failures all mean: no usable copy here
        raise FileNotFoundError(
            f"the C. elegans data could not be downloaded from {CELEGANS_BASE_URL} into {cache} ({err}); "
            f"set CELLNB_DATA_DIR to a folder that contains {CELEGANS_FOLDER}/ "
            "(membSeg/T001_membSeg.mat ... T095_membSeg.mat, nucInformation.mat)"
        ) from err
    return cache


def _frame_files(folder: Path) -> dict[int, Path]:
    """Time point (1-based, from the file name ``TNNN_membSeg.mat``) -> file."""
    return {int(p.name[1:4]): p for p in sorted((folder / "membSeg").glob("T[0-9][0-9][0-9]_membSeg.mat"))}


def _load_frame(path: Path) -> np.ndarray:
    """One label volume, uint16, shape (Z, Y, X): a view of the file's (y, x, z) array."""
    return scipy.io.loadmat(path, variable_names=["membSeg"])["membSeg"].transpose(2, 0, 1)


def celegans_label_table(data_dir=None, *, derive: bool = False, progress: bool = True) -> dict[str, dict]:
    """Lineage name, frames and voxel counts of every label in the C. elegans data.

    Parameters
    ----------
    data_dir : path-like, optional
        See :func:`celegans_dir`.
    derive : bool
        Compute the table from the volumes and ``nucInformation.mat`` (one
        pass over all frames, about 10 s) instead of reading ``labels.csv``;
        done anyway when ``labels.csv`` is absent (a downloaded copy).
    progress : bool
        Progress bar while deriving.

    Returns
    -------
    dict
        Cell name -> ``{"label", "first_frame", "last_frame", "n_frames",
        "median_voxels", "min_voxels", "max_voxels"}`` (ints; frames are the
        1-based time points of the files), the columns of ``labels.csv``.
    """
    folder = celegans_dir(data_dir, progress=progress)
    table_file = folder / "labels.csv"
    if table_file.is_file() and not derive:
        with open(table_file, newline="") as f:
            return {row["cell_name"]: {k: int(float(row[k])) for k in _LABEL_COLUMNS} for row in csv.DictReader(f)}
    info = scipy.io.loadmat(folder / "nucInformation.mat", variable_names=["nucNameLabel"])
    names = [str(np.ravel(v)[0]) for v in info["nucNameLabel"][0]]
    counts: dict[int, dict[int, int]] = {}
    files = _frame_files(folder)
    for t in tqdm(sorted(files), desc="C. elegans labels", unit="frame", disable=not progress):
        per_label = np.bincount(_load_frame(files[t]).ravel())
        for lab in np.flatnonzero(per_label[1:]) + 1:
            counts.setdefault(int(lab), {})[t] = int(per_label[lab])
    table = {}
    for lab in sorted(counts):
        frames = sorted(counts[lab])
        voxels = np.array([counts[lab][t] for t in frames])
        table[names[lab - 1]] = {
            "label": lab,
            "first_frame": frames[0],
            "last_frame": frames[-1],
            "n_frames": len(frames),
            "median_voxels": int(np.median(voxels)),
            "min_voxels": int(voxels.min()),
            "max_voxels": int(voxels.max()),
        }
    return table


def celegans_mother(name: str) -> str | None:
    """Mother of a C. elegans cell by lineage naming (``ABala`` -> ``ABal``, ``MS`` -> ``EMS``).

    A daughter's name is its mother's plus one lower-case letter, except for
    the founder cells (``AB``/``P1`` of ``P0``, ``EMS``/``P2`` of ``P1``,
    ``MS``/``E`` of ``EMS``, ``C``/``P3`` of ``P2``, ``D``/``P4`` of ``P3``,
    ``Z2``/``Z3`` of ``P4``, ``ABa``/``ABp`` of ``AB``).  None for ``P0``
    and unknown names.
    """
    if name in _FOUNDER_MOTHERS:
        return _FOUNDER_MOTHERS[name]
    if len(name) > 1 and name[-1].islower():
        return name[:-1]
    return None


def celegans_lineage(data_dir=None, *, spacing=None, progress: bool = True) -> tuple[Frames, Lineage]:
    """The C. elegans embryo as a lineage source: frames read on demand, tracks from the cells' names.

    Frame ``t`` (0-based) is time point ``T{t + 1:03d}``; a label's track runs
    over the time points it occurs in (``labels.csv``, or derived), its parent
    is the label of its mother by lineage naming (:func:`celegans_mother`).
    """
    folder = celegans_dir(data_dir, progress=progress)
    table = celegans_label_table(folder, progress=progress)
    files = _frame_files(folder)
    label_of = {name: row["label"] for name, row in table.items()}
    rows = [(row["label"], row["first_frame"] - 1, row["last_frame"] - 1,
             label_of.get(celegans_mother(name) or "", 0)) for name, row in table.items()]
    tracks = pd.DataFrame(sorted(rows), columns=list(ctc.TRACK_COLUMNS))
    names = {row["label"]: name for name, row in table.items()}
    given = resolve_spacing(spacing, (CELEGANS_VOXEL_UM,) * 3, where=str(folder))
    return Frames(max(files), lambda t: _load_frame(files[t + 1]), given), Lineage(tracks, names, "celegans_")


def celegans_to_ctc(dest, data_dir=None, *, frames: int = 60, overwrite: bool = False, progress: bool = True) -> Path:
    """Write the first ``frames`` time points of the C. elegans embryo as a Cell Tracking Challenge folder.

    ``dest/01_GT/TRA/man_trackNNN.tif`` (labels persistent over each cell's
    life, voxel size 0.225 um in their ImageJ metadata), ``man_track.txt``
    (tracks cut at the last frame; a mother ends the frame before her
    daughters begin) and ``01_GT/SEG``: what a lab's own tracked data look
    like, to try ``cellnb prepare --source ctc:DEST/01_GT/TRA`` on.
    """
    source, lineage = celegans_lineage(data_dir, progress=progress)
    if isinstance(frames, bool) or int(frames) != frames or not 2 <= frames <= source.n_frames:
        raise ValueError(f"frames must be between 2 and {source.n_frames}, got {frames}")
    tracks = lineage.tracks[lineage.tracks["begin"] < frames].copy()
    tracks["end"] = tracks["end"].clip(upper=int(frames) - 1)
    tracks.loc[~tracks["parent"].isin(tracks["label"]), "parent"] = 0
    with ctc.dataset_writer(dest, n_frames=int(frames), spacing=source.spacing, overwrite=overwrite,
                            images=False) as writer:
        for t in tqdm(range(int(frames)), desc="CTC frames", unit="frame", disable=not progress):
            writer.write_frame(t, None, np.asarray(source.read(t)).astype(ctc.LABEL_DTYPE))
        writer.finish(tracks)
    return Path(dest)


def celegans_divisions(
    data_dir=None,
    *,
    frames: int = 16,
    size: int = 48,
    before: int | None = None,
    max_sequences: int | None = None,
    align: bool = False,
    daughter_shift: float = 0.0,
    progress: bool = True,
) -> tuple[list[MaskSequence], list[tuple[str, str]]]:
    """Division sequences of the C. elegans embryo: mother, then its two daughters.

    :func:`cellnb.lineage.sequences_from_lineage` with ``kind="divisions"``
    on :func:`celegans_lineage`: for every mother whose two daughters start
    right after her last frame, a window of ``frames`` consecutive time points
    (her last ``before``, their first ``frames - before``), glitch frames
    re-timed or rebuilt (:mod:`cellnb.repair`), cropped into one cube and
    resampled isotropically to ``size^3``, the daughters apart (and moved
    ``daughter_shift`` voxels further apart, :func:`cellnb.lineage.sequences_from_lineage`).

    Returns
    -------
    sequences : list of MaskSequence
        Named ``celegans_<mother>``; masks (frames, size, size, size); spacing
        the physical voxel size in µm; ``meta`` ``{"family": "dividing",
        "mother", "daughters", "division_frame": before, "source_frames":
        [frames, 0-based], "retimed", "repairs"}``.
    skipped : list of (str, str)
        ``(name, reason)`` of every division examined and not built.
    """
    check_arguments(kind="divisions", n_frames=frames, size=size, before=before, max_sequences=max_sequences)
    source, lineage = celegans_lineage(data_dir, progress=progress)
    sequences, skipped, _ = sequences_from_lineage(source, lineage, kind="divisions", n_frames=frames, size=size,
                                                   before=before, align=align, daughter_shift=daughter_shift,
                                                   max_sequences=max_sequences,
                                                   progress=progress)
    return sequences, skipped
