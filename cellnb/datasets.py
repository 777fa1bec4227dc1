"""Readers of real segmentations into :class:`~cellnb.sequence.MaskSequence`.

* :func:`read_tiff_sequence`: a time-lapse of 3D label volumes (a folder of
  per-frame TIFFs such as the Cell Tracking Challenge ``mask000.tif`` ..., or
  one multi-frame TIFF), one label or all foreground.
* :func:`celegans_divisions`: division sequences from the C. elegans lineage
  segmentation of the 3DMMS paper (Cao et al., BMC Bioinformatics 20:176,
  2019; embryo ``170704plc1p2``, 95 time points).  For a mother cell whose two
  daughters both exist, a window of frames around the division holds the
  mother before and the union of the daughters after, separated by at least
  one background voxel, cropped into a cube around the shape and resampled
  isotropically.
* :func:`plan_division_repair`, :func:`repair_division_window`: the division
  windows of any lineage, given as voxel counts or masks per frame and cell,
  re-timed where the lineage splits a cell before it divides, and with short
  runs of glitch frames (a label of a few voxels, a leak, a missing label)
  rebuilt from their neighbours in time (:func:`interpolate_masks`).

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
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pooch
import scipy.io
from scipy import ndimage
from tqdm.auto import tqdm

from cellnb.io import read_mask_stack
from cellnb.sdf import CONNECTIVITY_26, component_counts, resample_to_cube, signed_distance
from cellnb.sequence import MaskSequence

__all__ = [
    "CELEGANS_FOLDER",
    "CELEGANS_VOXEL_UM",
    "CELEGANS_REPOSITORY",
    "CELEGANS_COMMIT",
    "CELEGANS_BASE_URL",
    "CELEGANS_REGISTRY",
    "CACHE_ENV",
    "VOLUME_RATIO_RANGE",
    "CROP_MARGIN",
    "MAX_RETIMED_FRAMES",
    "MAX_FILLED_RUN",
    "FILL_MARGIN",
    "DivisionRepair",
    "plan_division_repair",
    "interpolate_masks",
    "repair_division_window",
    "read_tiff_sequence",
    "celegans_dir",
    "celegans_label_table",
    "celegans_mother",
    "celegans_divisions",
]

log = logging.getLogger(__name__)

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

# Plausible voxel count of a label in a frame / its median in the window: daughters of a few
# voxels and leaks into a neighbour (1.4-2.5x) are segmentation glitches.
VOLUME_RATIO_RANGE = (0.6, 1.4)
CROP_MARGIN = 0.15  # cube side = the window's extent around its centroid, enlarged this much on each side
_CROP_PAD = 2  # background voxels kept around a label's bounding box for its distance transform
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


def read_tiff_sequence(
    path, *, label: int | None = None, spacing=(1.0, 1.0, 1.0), name: str | None = None
) -> MaskSequence:
    """Read a 3D+t label time-lapse from TIFF into a mask sequence.

    Parameters
    ----------
    path : path-like
        A folder of per-frame 3D TIFFs read in name order (e.g. Cell
        Tracking Challenge ``mask000.tif``, ``mask001.tif``, ...), or one
        multi-frame TIFF of shape (T, Z, Y, X); see :func:`cellnb.io.read_mask_stack`.
    label : int, optional
        Keep only this label; default the foreground of an image with one
        label (an image holding several labels, i.e. several cells, is refused).
    spacing : tuple of 3 floats
        Voxel size along Z, Y, X (e.g. µm).
    name : str, optional
        Sequence name; default the folder name or the file stem.

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
    labels = read_mask_stack(path)
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


# ---------------------------------------------------------------------------------------------
# Division windows of any lineage: re-timing and repair of glitch frames.
#
# A *span* is a run of consecutive frames around one division, as a lineage records it: first
# frames of the mother, then frames of its two daughters.  Cells are numbered 0 (mother), 1 and
# 2 (daughters).  The functions below take voxel counts or masks per frame and per cell, nothing
# specific to a data set, so that any lineage reader (C. elegans, Cell Tracking Challenge
# folders, label time-lapses) can share them.

# First daughter frames that may still show the undivided mother, one daughter label holding it
# and the other a few voxels (the lineage splits one or two frames before the membranes do; in
# the C. elegans data of 3DMMS this is what most rejected windows show, never more than two frames).
MAX_RETIMED_FRAMES = 2
# Consecutive glitch frames of one cell that may be rebuilt from its neighbours in time; longer
# runs are rejected, since an interpolation across them would invent shape.
MAX_FILLED_RUN = 2
# Frames read beyond each end of a window, so that a glitch in its first or last frame is
# interpolated between two real frames instead of copied from one.
FILL_MARGIN = 1
_CELL_NAMES = ("mother", "daughter 1", "daughter 2")
_TIE_TOLERANCE = 1e-4  # |blended SDF| in voxels below which interpolate_masks breaks a tie
_TIE_SIGMA = 0.5  # voxels: the Gaussian that breaks ties (the half-voxel step of a voxel SDF)


@dataclass(frozen=True)
class DivisionRepair:
    """How a division window is taken from a span of frames, and which of its masks are rebuilt.

    The span holds ``n_mother`` frames of the mother followed by ``n_span -
    n_mother`` frames of the two daughters, as the lineage records them; all
    indices here are span indices.  Made by :func:`plan_division_repair`,
    applied by :func:`repair_division_window`.

    Attributes
    ----------
    n_mother, n_span : int
        Mother frames and all frames of the span.
    start, division, stop : int
        The window is span frames ``start .. stop - 1``; ``division`` is its
        first two-cell frame, after re-timing (``division - start`` equals
        ``before``).
    retimed : tuple of int
        Daughter frames of the span that still show the undivided mother (one
        daughter label holds the mother, the other is implausibly small): in
        the window they are mother frames, the union of both daughter labels.
    fills : tuple of (int, int, int or None, int or None)
        ``(frame, cell, previous, next)`` for every glitch entry of the window
        (cell 0 the mother, 1 and 2 the daughters): a voxel count outside
        :data:`VOLUME_RATIO_RANGE` times that cell's median in the window, or
        none at all.  It is rebuilt from the nearest plausible frames of the
        same cell, ``previous`` and ``next`` (None where the cell has none on
        that side within the span).
    notes : tuple of str
        One line per repair, for logs and sequence metadata.
    rejected : str or None
        Why the window cannot be used (then the other fields are not meaningful).
    """

    n_mother: int
    n_span: int
    start: int = 0
    division: int = 0
    stop: int = 0
    retimed: tuple[int, ...] = ()
    fills: tuple[tuple[int, int, int | None, int | None], ...] = ()
    notes: tuple[str, ...] = ()
    rejected: str | None = None

    @property
    def repaired(self) -> bool:
        """Whether the window was re-timed or has rebuilt masks."""
        return bool(self.retimed or self.fills)

    def cells_at(self, i: int) -> tuple[int, ...]:
        """Cells of span frame ``i`` in the window: ``(0,)`` before the division, ``(1, 2)`` from it on."""
        return (0,) if i < self.division else (1, 2)

    def inputs(self) -> tuple[tuple[int, int], ...]:
        """The ``(frame, cell)`` masks that :func:`repair_division_window` reads, in span order.

        Cell 0 of a mother frame, cells 1 and 2 of a daughter frame (both for
        a re-timed frame, whose mother is their union).  Every other entry,
        glitches included, may be left out (None).
        """
        filled = {(i, c) for i, c, _, _ in self.fills}
        needed = {(i, c) for i in range(self.start, self.stop) for c in self.cells_at(i)} - filled
        needed |= {(n, c) for _, c, p, q in self.fills for n in (p, q) if n is not None}
        entries = set()
        for i, c in needed:
            entries |= {(i, 1), (i, 2)} if c == 0 and i >= self.n_mother else {(i, c)}
        return tuple(sorted(entries))


def _longest_run(indices: list[int]) -> int:
    """Length of the longest run of consecutive integers in a sorted list."""
    best = run = 0
    for k, i in enumerate(indices):
        run = run + 1 if k and i == indices[k - 1] + 1 else 1
        best = max(best, run)
    return best


def plan_division_repair(
    mother_voxels,
    daughter_voxels,
    *,
    before: int,
    after: int,
    ratio_range=VOLUME_RATIO_RANGE,
    max_retimed: int = MAX_RETIMED_FRAMES,
    max_filled_run: int = MAX_FILLED_RUN,
    names=_CELL_NAMES,
    times=None,
) -> DivisionRepair:
    """Plan a division window in a span of frames from voxel counts alone: re-time it, find its glitches.

    1. **Re-timing.**  While a first daughter frame has one daughter below
       ``ratio_range[0]`` times its median over the span and the other alone
       within ``ratio_range`` times the mother's median, the cell has not
       divided yet in that frame (the lineage split it early): it becomes a
       mother frame, at most ``max_retimed`` of them.
    2. **Window.**  ``before`` frames up to the (re-timed) division and
       ``after`` frames from it on.
    3. **Glitches.**  Per cell, a window frame whose count is outside
       ``ratio_range`` times the cell's median in the window (a few voxels, a
       leak into a neighbour, a missing label) is marked to be rebuilt from
       the nearest plausible frames of that cell (see
       :func:`repair_division_window`).  A cell with more than
       ``max_filled_run`` glitch frames in a row, or glitches in more than
       half of its window frames, rejects the window.

    Parameters
    ----------
    mother_voxels : array_like, shape (M,)
        Voxel count of the mother in each of its span frames (0: missing), M >= ``before``.
    daughter_voxels : array_like, shape (D, 2)
        Voxel counts of both daughters in each of their span frames, D >= ``after``.
    before, after : int
        Frames of the window before the division and from it on (>= 1).
    ratio_range : (float, float)
        Plausible count / median of a cell (default :data:`VOLUME_RATIO_RANGE`).
    max_retimed : int
        Most first daughter frames that may be re-timed (0: none).
    max_filled_run : int
        Most consecutive glitch frames of one cell that may be rebuilt (0: none).
    names : sequence of 3 str
        Names of the mother and the daughters, for the notes.
    times : sequence of M + D, optional
        Time point of each span frame, for the notes; default the span index.

    Returns
    -------
    DivisionRepair
        With ``rejected`` set when no usable window exists: the reason starts
        with ``"too few frames"`` or ``"implausible volume"``.
    """
    mother_voxels = np.asarray(mother_voxels, dtype=float)
    daughter_voxels = np.asarray(daughter_voxels, dtype=float)
    if isinstance(before, bool) or int(before) != before or before < 1:
        raise ValueError(f"before must be a positive number of frames, got {before}")
    if isinstance(after, bool) or int(after) != after or after < 1:
        raise ValueError(f"after must be a positive number of frames, got {after}")
    if mother_voxels.ndim != 1 or mother_voxels.size < before:
        raise ValueError(f"mother_voxels must be a 1D array of at least before={before} counts, "
                         f"got shape {mother_voxels.shape}")
    if daughter_voxels.ndim != 2 or daughter_voxels.shape[1] != 2 or len(daughter_voxels) < after:
        raise ValueError(f"daughter_voxels must have shape (D, 2) with D >= after={after}, "
                         f"got shape {daughter_voxels.shape}")
    if (mother_voxels < 0).any() or (daughter_voxels < 0).any():
        raise ValueError("voxel counts must be 0 or more; give 0 where a cell is missing")
    lo, hi = ratio_range
    if not 0 < lo <= 1 <= hi:
        raise ValueError(f"ratio_range must be (low, high) with 0 < low <= 1 <= high, got {ratio_range}")
    if int(max_retimed) < 0 or int(max_filled_run) < 0:
        raise ValueError(f"max_retimed and max_filled_run must be 0 or more, got {max_retimed}, {max_filled_run}")
    names = tuple(names)
    if len(names) != 3:
        raise ValueError(f"names must name the mother and both daughters (3 names), got {names}")
    n_mother, n_daughter = mother_voxels.size, len(daughter_voxels)
    n_span = n_mother + n_daughter
    times = list(range(n_span)) if times is None else list(times)
    if len(times) != n_span:
        raise ValueError(f"times must give one time point per span frame ({n_span}), got {len(times)}")
    empty = DivisionRepair(n_mother, n_span)

    mother_ref = float(np.median(mother_voxels))
    daughter_ref = np.median(daughter_voxels, axis=0)
    notes, k = [], 0
    while k < min(int(max_retimed), n_daughter):
        small, large = np.argsort(daughter_voxels[k], kind="stable")
        counts = daughter_voxels[k]
        if not (counts[small] < lo * daughter_ref[small] and mother_ref > 0
                and lo <= counts[large] / mother_ref <= hi):
            break
        notes.append(f"frame {times[n_mother + k]} re-timed to the mother: {names[1 + large]} holds it "
                     f"({counts[large]:.0f} voxels, mother median {mother_ref:.0f}), {names[1 + small]} has "
                     f"{counts[small]:.0f} (median {daughter_ref[small]:.0f})")
        k += 1
    division = n_mother + k
    start, stop = division - int(before), division + int(after)
    if stop > n_span:
        why = f" after re-timing the division by {k} frame(s)" if k else ""
        return replace(empty, rejected=f"too few frames: {names[1]} and {names[2]} have {n_span - division} "
                                       f"frames{why}, the window needs {after} after")

    counts = {0: {i: float(mother_voxels[i]) for i in range(n_mother)}}
    counts[0].update({i: float(daughter_voxels[i - n_mother].sum()) for i in range(n_mother, division)})
    for c in (1, 2):
        counts[c] = {i: float(daughter_voxels[i - n_mother, c - 1]) for i in range(division, n_span)}
    window = {0: range(start, division), 1: range(division, stop), 2: range(division, stop)}
    fills = []
    for c in (0, 1, 2):
        ref = float(np.median([counts[c][i] for i in window[c]]))
        good = sorted(i for i, n in counts[c].items() if ref > 0 and lo <= n / ref <= hi)
        bad = [i for i in window[c] if i not in good]
        if not bad:
            continue
        shown = ", ".join(f"{counts[c][i]:.0f} at frame {times[i]}" for i in bad)
        if _longest_run(bad) > int(max_filled_run) or 2 * len(bad) > len(window[c]):
            return replace(empty, rejected=f"implausible volume: {names[c]} has {shown} (median {ref:.0f} in "
                                           f"the window), more glitch frames than can be rebuilt "
                                           f"(at most {max_filled_run} in a row and half of the window)")
        for i in bad:
            prev = max((g for g in good if g < i), default=None)
            nxt = min((g for g in good if g > i), default=None)
            if prev is None and nxt is None:
                return replace(empty, rejected=f"implausible volume: {names[c]} has no plausible frame in the span")
            fills.append((i, c, prev, nxt))
            source = " and ".join(f"frame {times[n]}" for n in (prev, nxt) if n is not None)
            how = "interpolated between" if prev is not None and nxt is not None else "copied from"
            notes.append(f"{names[c]} at frame {times[i]} ({counts[c][i]:.0f} voxels, median {ref:.0f}) "
                         f"{how} {source}")
    return DivisionRepair(n_mother, n_span, start, division, stop, tuple(range(n_mother, division)),
                          tuple(sorted(fills)), tuple(notes))


def interpolate_masks(first: np.ndarray, second: np.ndarray, weight: float) -> np.ndarray:
    """Shape-based interpolation between two binary frames of one cell.

    The signed distances of both masks are blended linearly and thresholded
    at zero (Raya & Udupa, IEEE Trans. Med. Imaging 9(1):32-42, 1990), so the
    shape grows or shrinks between the two instead of fading in and out.
    Each distance map is first translated (linear interpolation) so that its
    centroid sits at the blended centroid: a cell that moves by a good part
    of its size between the frames is then not thinned where the two do not
    overlap.  Voxels where the blend is exactly zero (at equal weights a
    surface voxel of one mask on the outside neighbour of the other's
    surface) take the sign of the blend smoothed by a Gaussian of half a voxel.

    Parameters
    ----------
    first, second : ndarray of bool, shape (D0, D1, D2)
        Non-empty, not full, one shape.
    weight : float
        0 gives ``first``, 1 gives ``second``.

    Returns
    -------
    ndarray of bool, shape (D0, D1, D2)
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    if np.shape(first) != np.shape(second):
        raise ValueError(f"masks must have one shape, got {np.shape(first)} and {np.shape(second)}")
    if weight in (0.0, 1.0):
        return np.array(first if weight == 0.0 else second, dtype=bool)
    centres = [np.array(ndimage.center_of_mass(m)) for m in (first, second)]
    target = (1.0 - weight) * centres[0] + weight * centres[1]
    blend = sum(
        w * ndimage.shift(signed_distance(m), target - c, order=1, mode="nearest")
        for w, m, c in zip((1.0 - weight, weight), (first, second), centres)
    )
    tie = np.abs(blend) < _TIE_TOLERANCE
    return (blend < 0) | (tie & (ndimage.gaussian_filter(blend, _TIE_SIGMA) < 0))


def _voxel_count(mask) -> int:
    return 0 if mask is None else int(np.count_nonzero(mask))


def repair_division_window(
    mother,
    daughters,
    *,
    before: int,
    after: int,
    repair: DivisionRepair | None = None,
    ratio_range=VOLUME_RATIO_RANGE,
    max_retimed: int = MAX_RETIMED_FRAMES,
    max_filled_run: int = MAX_FILLED_RUN,
) -> tuple[list[tuple[np.ndarray, ...]] | None, DivisionRepair]:
    """The masks of a division window, re-timed and with its glitch frames rebuilt.

    Plans with :func:`plan_division_repair` on the masks' voxel counts (or
    uses ``repair``, e.g. planned on counts at another resolution), then
    builds the window: a re-timed frame's mother is the union of both
    daughter labels; a glitch entry is interpolated between the nearest
    plausible frames of that cell before and after it with
    :func:`interpolate_masks` (weights by distance in frames), or copied from
    the only one there is at the end of a span.  Interpolation is preferred to
    copying a neighbour or dropping the frame: the cell keeps moving and
    growing through the rebuilt frame, and the frames stay evenly spaced in time.

    Parameters
    ----------
    mother : sequence of M ndarray of bool (D0, D1, D2) or None
        The mother in its span frames; None where missing or not needed.
    daughters : sequence of D pairs of (ndarray of bool or None)
        Both daughters in their span frames.
    before, after : int
        Window frames before the division and from it on.
    repair : DivisionRepair, optional
        A plan for this span; its :meth:`DivisionRepair.inputs` must be given.
    ratio_range, max_retimed, max_filled_run :
        The rule of :func:`plan_division_repair` (when ``repair`` is None).

    Returns
    -------
    cells : list of tuple of ndarray of bool, or None
        ``before + after`` frames: ``(mother,)`` before the division,
        ``(daughter 1, daughter 2)`` from it on; None when rejected.
    repair : DivisionRepair
        The plan used (``repair.rejected`` says why a window is unusable).

    Raises
    ------
    ValueError
        If masks differ in shape, a mask the plan reads is None, or
        ``repair`` does not fit the span.
    """
    mother = list(mother)
    daughters = [tuple(pair) for pair in daughters]
    if any(len(pair) != 2 for pair in daughters):
        raise ValueError("daughters must hold one pair of masks (daughter 1, daughter 2) per frame")
    shapes = {np.shape(m) for m in [*mother, *(m for pair in daughters for m in pair)] if m is not None}
    if len(shapes) > 1:
        raise ValueError(f"all masks of a window must have one shape, got {sorted(shapes)}")
    if repair is None:
        repair = plan_division_repair([_voxel_count(m) for m in mother],
                                      [[_voxel_count(m) for m in pair] for pair in daughters],
                                      before=before, after=after, ratio_range=ratio_range,
                                      max_retimed=max_retimed, max_filled_run=max_filled_run)
    elif (repair.n_mother, repair.n_span) != (len(mother), len(mother) + len(daughters)) or (
            not repair.rejected and (repair.division - repair.start, repair.stop - repair.division) != (before, after)):
        raise ValueError(f"repair was planned for {repair.n_mother} mother frames of {repair.n_span} with another "
                         f"window; got {len(mother)} + {len(daughters)} frames, before={before}, after={after}")
    if repair.rejected:
        return None, repair

    def given(i: int, c: int) -> np.ndarray | None:
        return mother[i] if c == 0 else daughters[i - repair.n_mother][c - 1]

    for i, c in repair.inputs():
        # a re-timed frame's mother is the union of its daughter labels: one of them may be absent
        union_given = i in repair.retimed and any(m is not None for m in daughters[i - repair.n_mother])
        if given(i, c) is None and not union_given:
            raise ValueError(f"the mask of {_CELL_NAMES[c]} at span frame {i} is None, but the repair needs it")

    def entry(i: int, c: int) -> np.ndarray:
        if c == 0 and i >= repair.n_mother:
            return np.logical_or.reduce([m for m in daughters[i - repair.n_mother] if m is not None])
        return np.asarray(given(i, c), dtype=bool)

    rebuilt = {}
    for i, c, prev, nxt in repair.fills:
        if prev is None or nxt is None:
            rebuilt[(i, c)] = entry(prev if nxt is None else nxt, c).copy()
        else:
            rebuilt[(i, c)] = interpolate_masks(entry(prev, c), entry(nxt, c), (i - prev) / (nxt - prev))
    cells = [tuple(rebuilt[(i, c)] if (i, c) in rebuilt else entry(i, c) for c in repair.cells_at(i))
             for i in range(repair.start, repair.stop)]
    return cells, repair


@dataclass
class _Window:
    """One division: the span of source frames read for it and the cropped label masks gathered so far.

    The span holds the mother's last ``before`` frames and the daughters'
    first ``after`` frames, plus up to :data:`MAX_RETIMED_FRAMES` daughter
    frames for re-timing and :data:`FILL_MARGIN` frames beyond each end where
    the data have them (see :func:`plan_division_repair`).
    """

    mother: str
    daughters: tuple[str, str]
    labels: dict[str, int]
    mother_frames: list[int]
    daughter_frames: list[int]
    before: int
    after: int
    crops: dict = field(default_factory=dict)  # (frame, cell name) -> (bool crop (Z, Y, X), offset (3,))

    @property
    def name(self) -> str:
        return f"celegans_{self.mother}"

    @property
    def frames(self) -> list[int]:
        return self.mother_frames + self.daughter_frames

    def cells_at(self, t: int) -> tuple[str, ...]:
        return (self.mother,) if t <= self.mother_frames[-1] else self.daughters

    def key(self, i: int, cell: int) -> tuple[int, str]:
        """Crop key of span frame ``i`` and cell 0 (mother), 1 or 2 (daughters)."""
        return self.frames[i], (self.mother, *self.daughters)[cell]


def _plan_windows(table: dict[str, dict], frames: int, before: int) -> tuple[list[_Window], list[tuple[str, str]]]:
    """Division windows that the label table allows, and the divisions it rules out with reasons."""
    after = frames - before
    children: dict[str, list[str]] = {}
    for cell in table:
        mother = celegans_mother(cell)
        if mother in table:
            children.setdefault(mother, []).append(cell)
    windows, skipped = [], []
    for mother in sorted(children, key=lambda m: table[m]["label"]):
        name = f"celegans_{mother}"
        daughters = tuple(sorted(children[mother]))
        if len(daughters) != 2:
            skipped.append((name, f"missing daughter: only {', '.join(daughters)} in the data"))
            continue
        m = table[mother]
        last = m["last_frame"]
        firsts = [table[d]["first_frame"] for d in daughters]
        if firsts != [last + 1, last + 1]:
            skipped.append(
                (name, f"not contiguous: daughters start at frames {firsts}, the mother ends at frame {last}")
            )
            continue
        if m["n_frames"] < before:
            skipped.append((name, f"too few frames: mother has {m['n_frames']}, the window needs {before} before"))
            continue
        short = [d for d in daughters if table[d]["last_frame"] - last < after]
        if short:
            have = min(table[d]["last_frame"] - last for d in short)
            skipped.append((name, f"too few frames: daughter {short[0]} has {have}, the window needs {after} after"))
            continue
        first = max(m["first_frame"], last - before + 1 - FILL_MARGIN)
        end = min(min(table[d]["last_frame"] for d in daughters), last + after + MAX_RETIMED_FRAMES + FILL_MARGIN)
        windows.append(
            _Window(
                mother=mother,
                daughters=daughters,
                labels={c: table[c]["label"] for c in (mother, *daughters)},
                mother_frames=list(range(first, last + 1)),
                daughter_frames=list(range(last + 1, end + 1)),
                before=before,
                after=after,
            )
        )
    return windows, skipped


def _build_window(window: _Window, size: int) -> MaskSequence | str:
    """Re-time, repair and resample a window into a division sequence, or return why it is rejected."""
    voxels = {key: int(crop.sum()) for key, (crop, _) in window.crops.items()}
    n_mother = len(window.mother_frames)
    repair = plan_division_repair(
        [voxels.get(window.key(i, 0), 0) for i in range(n_mother)],
        [[voxels.get(window.key(i, c), 0) for c in (1, 2)] for i in range(n_mother, len(window.frames))],
        before=window.before,
        after=window.after,
        names=(window.mother, *window.daughters),
        times=window.frames,
    )
    if repair.rejected:
        return repair.rejected
    inputs = [window.key(i, c) for i, c in repair.inputs() if window.key(i, c) in window.crops]
    # One cube for the whole window, centred on the centroid of all its plausible voxels.
    total, weighted = 0, np.zeros(3)
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    in_window = set(window.frames[repair.start : repair.stop])
    for key in inputs:
        if key[0] not in in_window:
            continue
        crop, offset = window.crops[key]
        n = voxels[key]
        total += n
        weighted += n * (np.array(ndimage.center_of_mass(crop)) + offset)
        lo = np.minimum(lo, offset)
        hi = np.maximum(hi, offset + np.array(crop.shape) - 1)
    center = weighted / total
    half = float(np.max(np.maximum(center - lo, hi - center))) + 0.5
    side = 2.0 * half * (1.0 + 2.0 * CROP_MARGIN)

    def cube(key) -> np.ndarray:
        crop, offset = window.crops[key]
        return resample_to_cube(
            np.pad(crop, _CROP_PAD), center=center - (offset - _CROP_PAD), side=side, size=size
        )

    cubes = {key: cube(key) for key in inputs}
    cells, _ = repair_division_window(
        [cubes.get(window.key(i, 0)) for i in range(n_mother)],
        [tuple(cubes.get(window.key(i, c)) for c in (1, 2)) for i in range(n_mother, len(window.frames))],
        before=window.before,
        after=window.after,
        repair=repair,
    )
    masks = []
    for frame_cells in cells:
        if len(frame_cells) == 1:
            masks.append(frame_cells[0])
            continue
        # Daughters are resampled apart, then the voxels where they touch or overlap become
        # background, so they stay two 26-connected components at any grid size.
        a, b = frame_cells
        touching = ndimage.binary_dilation(a, CONNECTIVITY_26) & ndimage.binary_dilation(b, CONNECTIVITY_26)
        masks.append((a | b) & ~touching)
    n_components = component_counts(np.stack(masks)).tolist()
    expected = [1] * window.before + [2] * window.after
    if n_components != expected:
        return f"topology: components per frame {n_components}, expected 1 before and 2 from the division on"
    step = side / size * CELEGANS_VOXEL_UM
    meta = {
        "family": "dividing",
        "source": CELEGANS_FOLDER,
        "mother": window.mother,
        "daughters": list(window.daughters),
        "division_frame": window.before,
        "source_frames": window.frames[repair.start : repair.stop],
        "retimed": len(repair.retimed),
        "repairs": list(repair.notes),
    }
    return MaskSequence(np.stack(masks), (step, step, step), window.name, meta)


def celegans_divisions(
    data_dir=None,
    *,
    frames: int = 16,
    size: int = 48,
    before: int | None = None,
    max_sequences: int | None = None,
    progress: bool = True,
) -> tuple[list[MaskSequence], list[tuple[str, str]]]:
    """Division sequences of the C. elegans embryo: mother, then its two daughters.

    For every mother whose two daughters exist (lineage naming, see
    :func:`celegans_mother`) and start right after the mother's last frame,
    a window of ``frames`` consecutive time points holds the mother in its
    last ``before`` frames and the union of the daughters in their first
    ``frames - before`` frames.  The window is cropped into one cube centred on
    the centroid of all its voxels (side: the largest distance from the
    centroid to the window's bounding box, doubled and enlarged by
    :data:`CROP_MARGIN` on each side) and resampled isotropically to
    ``size^3`` with :func:`cellnb.sdf.resample_to_cube`.  The daughters are
    resampled separately and the voxels where they touch are set to
    background, so a division is a change from one 26-connected component to
    two.

    Segmentation glitches are repaired with :func:`plan_division_repair` and
    :func:`repair_division_window`, planned on the voxel counts at full
    resolution and applied in the cube: first daughter frames in which one
    daughter label holds the whole undivided mother and the other a few
    voxels are re-timed to the mother (the division moves later, at most
    :data:`MAX_RETIMED_FRAMES` frames); a cell whose voxel count in a window
    frame is outside :data:`VOLUME_RATIO_RANGE` times its median in the
    window (a few voxels, a leak into a neighbour, a missing label) has that
    frame rebuilt by shape-based interpolation between its nearest plausible
    frames (read up to :data:`FILL_MARGIN` frames beyond the window), at
    most :data:`MAX_FILLED_RUN` frames in a row.  Glitch frames do not count
    towards the cube.

    A division is skipped, with a reason logged at INFO level and returned,
    when a daughter is missing, the daughters do not follow the mother
    directly, the mother or a daughter has too few frames (also after
    re-timing), a cell has more glitch frames than can be rebuilt, or the
    resampled frames do not have exactly 1 component before the division and
    2 from it on.

    Each frame file is read once; windows are built in the order they end in
    time, holding only the cropped label masks of unfinished windows.

    Parameters
    ----------
    data_dir : path-like, optional
        See :func:`celegans_dir`.
    frames : int
        Frames per window (>= 2).
    size : int
        Cube side in voxels (>= 8).
    before : int, optional
        Mother frames in the window (1 .. frames - 1); default ``frames // 2``.
    max_sequences : int, optional
        Stop after this many sequences (the earliest windows in time).
        Divisions not reached are not examined and not listed as skipped.
    progress : bool
        Show a progress bar over the frames read.

    Returns
    -------
    sequences : list of MaskSequence
        Named ``celegans_<mother>``; masks (frames, size, size, size); spacing
        the physical voxel size in µm (``side / size * 0.225``); ``meta``
        ``{"family": "dividing", "source": "celegans-3dmms", "mother",
        "daughters", "division_frame": before, "source_frames": [time points],
        "retimed": frames the division moved after the lineage's,
        "repairs": [one line per re-timed or rebuilt frame]}``.
    skipped : list of (str, str)
        ``(name, reason)`` of every division examined and not built.
    """
    if isinstance(frames, bool) or int(frames) != frames or frames < 2:
        raise ValueError(f"frames must be an integer of at least 2, got {frames}")
    if isinstance(size, bool) or int(size) != size or size < 8:
        raise ValueError(f"size must be an integer of at least 8 voxels, got {size}")
    frames, size = int(frames), int(size)
    before = frames // 2 if before is None else before
    if int(before) != before or not 1 <= before <= frames - 1:
        raise ValueError(f"before must be between 1 and frames - 1 = {frames - 1} mother frames, got {before}")
    if max_sequences is not None and (int(max_sequences) != max_sequences or max_sequences < 1):
        raise ValueError(f"max_sequences must be a positive integer or None (all), got {max_sequences}")
    folder = celegans_dir(data_dir, progress=progress)
    windows, skipped = _plan_windows(celegans_label_table(folder, progress=progress), frames, int(before))
    for name, reason in skipped:
        log.info("skip %s: %s", name, reason)
    windows.sort(key=lambda w: (w.frames[-1], w.labels[w.mother]))
    files = _frame_files(folder)
    needed = sorted({t for w in windows for t in w.frames})
    sequences: list[MaskSequence] = []
    open_windows = list(windows)
    with tqdm(total=len(needed), desc="C. elegans frames", unit="frame", disable=not progress) as bar:
        for t in needed:
            if max_sequences is not None and len(sequences) >= max_sequences:
                break
            volume = _load_frame(files[t])
            objects = ndimage.find_objects(volume)
            for w in open_windows:
                if not w.frames[0] <= t <= w.frames[-1]:
                    continue
                for cell in w.cells_at(t):
                    label = w.labels[cell]
                    box = objects[label - 1] if label <= len(objects) else None
                    if box is not None:  # a missing label is a glitch the repair may rebuild
                        w.crops[(t, cell)] = (volume[box] == label, np.array([sl.start for sl in box]))
            for w in [w for w in open_windows if w.frames[-1] == t]:
                if max_sequences is not None and len(sequences) >= max_sequences:
                    break
                open_windows.remove(w)
                result = _build_window(w, size)
                w.crops.clear()
                if isinstance(result, str):
                    log.info("skip %s: %s", w.name, result)
                    skipped.append((w.name, result))
                else:
                    sequences.append(result)
            bar.update()
            bar.set_postfix(built=len(sequences), skipped=len(skipped))
    repaired = sum(bool(seq.meta["repairs"]) for seq in sequences)
    log.info("C. elegans: %d division sequences built (%d repaired), %d skipped", len(sequences), repaired,
             len(skipped))
    return sequences, skipped
