"""Synthetic fluorescence microscopy of label time-lapses, with Cell Tracking Challenge ground truth.

The paper's application of the shape model (Wiesner et al. 2022/2024): generated
shapes are the ground truth, an image formation model makes the images.  Each
step is one function, applied frame by frame in this order:

1. **Stain** (:func:`stain_density`): fluorophore density on the masks' grid.
   ``cytoplasm`` (default) fills each cell, brighter toward the interior, with
   a band-limited noise texture; ``membrane`` stains a shell at the boundary;
   ``nucleus`` takes the masks as nuclei (flatter profile, finer texture).
   The texture is a sum of random plane waves seeded per lineage (a mother and
   her daughters share one), anchored at the cell's centroid and drifting
   slowly in phase, so it moves with the cell and stays coherent over time.
2. **Optics** (:func:`gaussian_psf_sigma`, :func:`gaussian_psf`, :func:`blur`):
   FFT convolution (``scipy.signal.fftconvolve``) with a 3D PSF, either the
   Gaussian approximation of a widefield, confocal or light-sheet PSF from NA,
   wavelengths and refractive index, or a PSF array the user gives.
3. **Acquisition** (:func:`resample`, :func:`background_field`,
   :func:`bleaching`, :func:`acquire`): sampling at the detector's voxel size
   (axial steps usually coarser than lateral), background with a slow spatial
   variation, photobleaching over time, Poisson photon noise, Gaussian read
   noise, gain, offset and clipping to uint8 or uint16.
4. **Signal level from a requested SNR** (:func:`calibrate_signal`): the
   photon count of the stain is set so that the Cell Tracking Challenge's
   SNR, ``|mean(cell) - mean(background)| / sd(background)`` on the ground
   truth masks (Ulman et al., Nature Methods 14:1141, 2017, Supplementary
   Note), averaged over the frames, lands on the requested value; the
   achieved SNR and contrast ratio ``CR = mean(cell) / mean(background)`` are
   measured on the images written (:func:`snr_and_cr`) and recorded.

Label time-lapses come from a CTC folder or from a population of generated
cells placed in one field (:func:`cellnb.population.place_cells`).
:func:`render` writes a label time-lapse as a CTC data set (via
:mod:`cellnb.ctc`); :func:`render_folder` does so from a CTC folder or a
folder of generated ``.h5`` SDF sequences (the entry point for a
``cellnb microscopy`` command).

Named instruments are in :data:`PRESETS`, each saying which real data it
imitates and where its numbers come from.

Units: lengths in micrometres, intensities in photoelectrons before the
detector's gain and in ADU after it.  Arrays are C order, a frame (Z, Y, X).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
from scipy import ndimage, optimize, signal, special
from tqdm.auto import tqdm

from cellnb import ctc
from cellnb.io import read_sdf_h5
from cellnb.population import Population, place_cells
from cellnb.sequence import MaskSequence, check_spacing

__all__ = [
    "Stain",
    "STAINS",
    "Microscope",
    "PRESETS",
    "microscope",
    "lineage_roots",
    "stain_density",
    "gaussian_psf_sigma",
    "gaussian_psf",
    "check_psf",
    "blur",
    "output_shape",
    "resample",
    "background_field",
    "bleaching",
    "acquire",
    "snr_and_cr",
    "FrameStats",
    "frame_stats",
    "predicted_snr",
    "calibrate_signal",
    "load_sdf_sequences",
    "render",
    "render_folder",
]

log = logging.getLogger(__name__)

# Independent random streams of one seed: np.random.default_rng([seed, STREAM, ...]).
_TEXTURE_STREAM = 1
_BACKGROUND_STREAM = 2
_NOISE_STREAM = 3
_PLACEMENT_STREAM = 4  # seeds cellnb.population.place_cells in render_folder

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM of a Gaussian in units of its sigma
_AIRY_RADIUS = 0.61  # first zero of the Airy disk, in units of lambda / NA (Born & Wolf, Principles of Optics)
_SMALL_PINHOLE = 0.01  # Airy units; below, the pinhole formulas lose digits and their r -> 0 limit is used
_PSF_TRUNCATE = 4.0  # PSF arrays extend to 4 sigma each side (>99.99% of a Gaussian's mass)
_BACKGROUND_NODES = 4  # control points per axis of the slowly varying background (a few per field)
_MAX_UPSAMPLING = 4.0  # output voxels may be at most this much finer than the masks' voxels
_QUANTISATION_VARIANCE = 1.0 / 12.0  # variance of rounding to whole ADU (uniform error on [-1/2, 1/2])
_CALIBRATION_FRAMES = 3  # frames rendered noise-free to calibrate the signal (first, middle, last)
_SNR_HEADROOM = 0.98  # a requested SNR must stay below this share of the highest reachable one
_CLIP_SIGMAS = 5.0  # expected values plus this many noise sd must fit the detector's range
_GAIN_ROUNDS = 4  # rounds of lowering the gain against clipping and re-solving the signal
_GAIN_MARGIN = 0.9  # a lowered gain leaves this share of the detector's range to the brightest voxels
_ROUNDING = 1e-9  # voxel counts n * a / b within this of a whole number are that number (float round-off)


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Stain:
    """How the fluorophore fills a cell (all lengths in micrometres).

    Parameters
    ----------
    kind : {"cytoplasm", "membrane", "nucleus"}
    depth : float
        ``cytoplasm``/``nucleus``: brightness rises from ``edge`` at the
        boundary to 1 inside as ``edge + (1 - edge) (1 - exp(-d / depth))``
        with the distance ``d`` from the boundary; ``membrane``: the stained
        shell falls off as ``exp(-d^2 / (2 depth^2))``.
    edge : float
        Relative brightness at the boundary (``cytoplasm``/``nucleus``).
    texture : float
        Relative amplitude (standard deviation) of the texture.
    wavelengths : (float, float)
        Shortest and longest wavelength of the texture's plane waves.
    waves : int
        Number of plane waves summed (their sum is close to Gaussian noise).
    change : float
        Standard deviation of each wave's phase drift per frame (radians).
    """

    kind: str = "cytoplasm"
    depth: float = 1.5
    edge: float = 0.5
    texture: float = 0.25
    wavelengths: tuple[float, float] = (2.0, 6.0)
    waves: int = 24
    change: float = 0.15


# Illustrative stains: model choices (not measurements), sized for cells of about 10-30 um.
STAINS = {
    "cytoplasm": Stain("cytoplasm", depth=1.5, edge=0.5, texture=0.25, wavelengths=(2.0, 6.0)),
    "membrane": Stain("membrane", depth=0.4, edge=1.0, texture=0.15, wavelengths=(2.0, 6.0)),
    "nucleus": Stain("nucleus", depth=0.5, edge=0.7, texture=0.35, wavelengths=(0.6, 2.0)),
}


@dataclass(frozen=True)
class Microscope:
    """An instrument: optics, sampling and detector (lengths in um, intensities in photoelectrons).

    Parameters
    ----------
    name, description : str
    modality : {"widefield", "confocal", "lightsheet"}
        Chooses the PSF formula of :func:`gaussian_psf_sigma`.
    na : float
        Numerical aperture of the (detection) objective.
    refractive_index : float
        Of the immersion medium.
    wavelength_ex, wavelength_em : float
        Excitation and emission wavelengths (um).
    pinhole : float
        Confocal pinhole diameter in Airy units (1 AU = 1.22 lambda_em / NA).
    sheet_fwhm : float
        Light-sheet thickness (FWHM, um).
    spacing : (float, float, float)
        Voxel size (Z, Y, X) of the images.
    background : float
        Mean background per voxel (photoelectrons).
    background_variation : float
        Relative amplitude of the background's slow spatial variation.
    read_noise : float
        Gaussian read noise (photoelectrons rms).
    gain : float
        ADU per photoelectron.
    offset : float
        ADU added to every voxel.
    bit_depth : {8, 16}
        Images are clipped to ``[0, 2**bit_depth - 1]``.
    bleaching : float
        Share of the fluorescence lost per frame (mono-exponential).
    stain : str
        Default stain, a key of :data:`STAINS`.
    snr : float
        Default SNR (CTC definition).
    """

    name: str
    description: str
    modality: str
    na: float
    refractive_index: float
    wavelength_ex: float
    wavelength_em: float
    spacing: tuple[float, float, float]
    pinhole: float = 1.0
    sheet_fwhm: float = 3.0
    background: float = 20.0
    background_variation: float = 0.2
    read_noise: float = 1.5
    gain: float = 1.0
    offset: float = 100.0
    bit_depth: int = 16
    bleaching: float = 0.005
    stain: str = "cytoplasm"
    snr: float = 8.0


# The named presets.  "typical" marks a value typical of the kind of instrument, not
# taken from a publication.  widefield, confocal and lightsheet imitate no particular data
# set and match no published statistics: they are typical instruments of their kind;
# fluo-n3dh-ce imitates one CTC data set (see its comment).  EGFP peaks: excitation 488 nm, emission 507 nm (Tsien,
# Annu. Rev. Biochem. 67:509, 1998).  Detector noise follows the Poisson-Gaussian model
# of raw data (Foi et al., IEEE Trans. Image Process. 17:1737, 2008).
PRESETS = {
    "widefield": Microscope(
        name="widefield",
        description="widefield epifluorescence, 40x/0.75 dry objective, EGFP, sCMOS camera",
        modality="widefield", na=0.75, refractive_index=1.0, wavelength_ex=0.488, wavelength_em=0.507,
        # 6.5 um camera pixels (a common sCMOS pixel) / 40x = 0.1625 um; 1 um z steps: typical.
        spacing=(1.0, 0.1625, 0.1625),
        # Out-of-focus light makes widefield backgrounds high; 1.5 e- rms read noise: typical sCMOS.
        background=50.0, background_variation=0.2, read_noise=1.5, gain=0.5, offset=100.0, bit_depth=16,
        bleaching=0.005, stain="cytoplasm", snr=8.0,
    ),
    "confocal": Microscope(
        name="confocal",
        description="point-scanning confocal, 63x/1.4 oil objective, 1 AU pinhole, EGFP",
        modality="confocal", na=1.4, refractive_index=1.518, wavelength_ex=0.488, wavelength_em=0.507,
        pinhole=1.0,
        spacing=(0.5, 0.1, 0.1),  # typical confocal sampling
        # Few background photons and a high detector gain (photomultiplier): typical.
        background=5.0, background_variation=0.2, read_noise=1.0, gain=4.0, offset=100.0, bit_depth=16,
        bleaching=0.01, stain="cytoplasm", snr=8.0,
    ),
    "lightsheet": Microscope(
        name="lightsheet",
        description="light-sheet, 20x/1.0 water detection objective, 3 um sheet, EGFP, sCMOS camera",
        modality="lightsheet", na=1.0, refractive_index=1.333, wavelength_ex=0.488, wavelength_em=0.507,
        sheet_fwhm=3.0,  # typical Gaussian light-sheet thickness
        spacing=(1.0, 0.325, 0.325),  # 6.5 um camera pixels / 20x; 1 um z steps: typical
        background=10.0, background_variation=0.3, read_noise=1.5, gain=0.5, offset=100.0, bit_depth=16,
        bleaching=0.002, stain="cytoplasm", snr=8.0,
    ),
    # Imitates the Cell Tracking Challenge data set Fluo-N3DH-CE (C. elegans developing
    # embryo, nuclei; celltrackingchallenge.net, Ulman et al. 2017).  Matched: the voxel size
    # 0.09 x 0.09 x 1.0 um of the data set description, a nuclear stain, and a confocal
    # PSF of the 63x/1.4 oil objective named there (Zeiss LSM 510 Meta, Plan-Apochromat
    # 63x/1.4).  Not matched: SNR and CR (the CTC publishes them per data set; this preset's
    # snr is typical), the fluorophore (EGFP-like wavelengths: typical) and the 8-bit depth
    # (typical of such confocal exports).
    "fluo-n3dh-ce": Microscope(
        name="fluo-n3dh-ce",
        description="like CTC Fluo-N3DH-CE: confocal, 63x/1.4 oil, nuclei, 0.09 x 0.09 x 1.0 um voxels",
        modality="confocal", na=1.4, refractive_index=1.518, wavelength_ex=0.488, wavelength_em=0.507,
        pinhole=1.0, spacing=(1.0, 0.09, 0.09),
        background=5.0, background_variation=0.2, read_noise=1.0, gain=1.0, offset=5.0, bit_depth=8,
        bleaching=0.002, stain="nucleus", snr=6.0,
    ),
}


def microscope(preset="confocal", **overrides) -> Microscope:
    """A preset of :data:`PRESETS` (or a :class:`Microscope`) with fields replaced, checked.

    Examples
    --------
    >>> microscope("widefield", na=1.0).na
    1.0
    """
    if isinstance(preset, Microscope):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    try:
        scope = dataclasses.replace(base, **overrides)
    except TypeError as err:
        known = [f.name for f in dataclasses.fields(Microscope)]
        raise ValueError(f"unknown microscope parameter ({err}); known: {', '.join(known)}") from None
    _check_microscope(scope)
    return scope


def _positive(name: str, value) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


def _check_microscope(m: Microscope) -> None:
    if m.modality not in ("widefield", "confocal", "lightsheet"):
        raise ValueError(f"modality must be 'widefield', 'confocal' or 'lightsheet', got {m.modality!r}")
    for name in ("na", "refractive_index", "wavelength_ex", "wavelength_em", "sheet_fwhm", "gain", "snr"):
        _positive(name, getattr(m, name))
    if m.na >= m.refractive_index:
        raise ValueError(f"na ({m.na}) must be below the refractive index ({m.refractive_index}) of the medium")
    check_spacing(m.spacing)
    for name in ("pinhole", "background", "background_variation", "read_noise", "offset"):
        value = float(getattr(m, name))
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be zero or positive, got {value}")
    if m.background_variation >= 1:
        raise ValueError(f"background_variation must be below 1 (a relative amplitude), got {m.background_variation}")
    if not 0 <= m.bleaching < 1:
        raise ValueError(f"bleaching must be a share in [0, 1) lost per frame, got {m.bleaching}")
    if m.bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {m.bit_depth}")
    if m.stain not in STAINS:
        raise ValueError(f"stain must be one of {', '.join(STAINS)}, got {m.stain!r}")


def _stain_params(value) -> Stain:
    if isinstance(value, Stain):
        params = value
    elif value in STAINS:
        params = STAINS[value]
    else:
        raise ValueError(f"stain must be one of {', '.join(STAINS)} or a Stain, got {value!r}")
    if params.kind not in STAINS:
        raise ValueError(f"Stain.kind must be one of {', '.join(STAINS)}, got {params.kind!r}")
    _positive("Stain.depth", params.depth)
    lo, hi = params.wavelengths
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"Stain.wavelengths must be (shortest, longest) > 0, got {params.wavelengths}")
    if params.texture < 0 or params.change < 0 or int(params.waves) < 1 or not 0 <= params.edge <= 1:
        raise ValueError("Stain.texture and Stain.change must be >= 0, Stain.edge in [0, 1], Stain.waves >= 1")
    return params


# ----------------------------------------------------------------------------- 1. stain


def lineage_roots(tracks) -> dict[int, int]:
    """The founder of each track: follow parents up to a track with parent 0.

    Parameters
    ----------
    tracks : DataFrame
        Columns ``label, begin, end, parent`` (:mod:`cellnb.ctc`).

    Returns
    -------
    dict
        ``{label: root label}``.
    """
    parent = dict(zip(tracks["label"].tolist(), tracks["parent"].tolist()))
    roots: dict[int, int] = {}
    for label in parent:
        chain = [label]
        while parent.get(chain[-1], 0) and chain[-1] not in roots:
            chain.append(parent[chain[-1]])  # parents end before daughters begin, so no cycles
        root = roots.get(chain[-1], chain[-1])
        roots.update(dict.fromkeys(chain, root))
    return roots


def _texture(coords, root: int, t: int, params: Stain, seed: int) -> np.ndarray:
    """Unit-variance band-limited noise: a sum of random plane waves (complex64 products per axis)."""
    rng = np.random.default_rng([seed, _TEXTURE_STREAM, root])
    n = int(params.waves)
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    lo, hi = params.wavelengths
    wavenumber = 2.0 * np.pi / rng.uniform(lo, hi, size=n)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n) + params.change * t * rng.normal(size=n)
    kz, ky, kx = (direction * wavenumber[:, None]).T
    z, y, x = coords
    out = np.zeros((len(z), len(y), len(x)), dtype=np.float32)
    for i in range(n):
        wave = (np.exp(1j * (kz[i] * z + phase[i])).astype(np.complex64)[:, None, None]
                * np.exp(1j * ky[i] * y).astype(np.complex64)[None, :, None]
                * np.exp(1j * kx[i] * x).astype(np.complex64)[None, None, :])
        out += wave.real
    out *= np.float32(math.sqrt(2.0 / n))  # each cosine has variance 1/2
    return out


def stain_density(labels, *, spacing=(1.0, 1.0, 1.0), kind="cytoplasm", t: int = 0, seed: int = 0,
                  roots: dict | None = None) -> np.ndarray:
    """Fluorophore density of one label frame (step 1 of the image formation).

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        One frame; 0 is background.
    spacing : tuple of 3 floats
        Voxel size (um) of the frame.
    kind : str or Stain
        ``"cytoplasm"``, ``"membrane"``, ``"nucleus"`` (:data:`STAINS`) or a :class:`Stain`.
    t : int
        Frame index (the texture's phases drift with it).
    seed : int
        Seeds the texture together with the lineage root of each label.
    roots : dict, optional
        ``{label: root}`` (:func:`lineage_roots`): labels of one root share a
        texture anchored at their joint centroid, so a dividing cell keeps its
        texture; default every label its own root.

    Returns
    -------
    density : ndarray of float32, shape (Z, Y, X)
        0 outside cells; inside, the profile of the stain (rising to 1 in the
        interior) times ``1 + texture * noise``, clipped at 0.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be one frame (Z, Y, X), got shape {labels.shape}")
    params = _stain_params(kind)
    spacing = np.asarray(check_spacing(spacing))
    density = np.zeros(labels.shape, dtype=np.float32)
    objects = ndimage.find_objects(labels)
    present = [i + 1 for i, sl in enumerate(objects) if sl is not None]
    if not present:
        return density
    roots = roots or {}
    root_of = {label: int(roots.get(label, label)) for label in present}
    crops = {}
    weight_sum: dict[int, float] = {}
    moment: dict[int, np.ndarray] = {}
    for label in present:
        sl = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(objects[label - 1], labels.shape))
        region = labels[sl] == label
        crops[label] = (sl, region)
        idx = np.nonzero(region)
        centre = np.array([(i.mean() + s.start) for i, s in zip(idx, sl)]) * spacing
        root = root_of[label]
        weight_sum[root] = weight_sum.get(root, 0.0) + len(idx[0])
        moment[root] = moment.get(root, 0.0) + centre * len(idx[0])
    for label in present:
        sl, region = crops[label]
        root = root_of[label]
        anchor = moment[root] / weight_sum[root]
        padded = np.pad(region, 1)
        depth_map = ndimage.distance_transform_edt(padded, sampling=spacing)[1:-1, 1:-1, 1:-1]
        if params.kind == "membrane":
            profile = np.exp(-0.5 * (depth_map / params.depth) ** 2)
        else:
            profile = params.edge + (1.0 - params.edge) * (1.0 - np.exp(-depth_map / params.depth))
        coords = [np.arange(s.start, s.stop) * d - a for s, d, a in zip(sl, spacing, anchor)]
        noise = _texture(coords, root, t, params, seed)
        value = profile * np.maximum(1.0 + params.texture * noise, 0.0)
        density[sl][region] = value[region]
    return density


# ----------------------------------------------------------------------------- 2. optics


def gaussian_psf_sigma(*, modality: str, na: float, wavelength_em: float, wavelength_ex: float | None = None,
                       refractive_index: float = 1.0, pinhole: float = 1.0,
                       sheet_fwhm: float | None = None) -> tuple[float, float, float]:
    """Standard deviations (Z, Y, X) in um of the Gaussian approximation of a microscope's PSF.

    Formulas of Zhang, Zerubia & Olivo-Marin, "Gaussian approximations of
    fluorescence microscope point-spread function models", Applied Optics
    46(10):1819-1829, 2007 (paraxial, Tables 2 and 3), with ``k = 2 pi /
    lambda`` and the medium's refractive index ``n``:

    * widefield: ``sigma_r = sqrt(2) / (k_em NA)``,
      ``sigma_z = 2 sqrt(6) n / (k_em NA^2)``;
    * confocal (laser scanning) with a pinhole of radius ``r`` (back-projected
      to the object), ``c1 = k_ex r NA``, ``c2 = k_em r NA``, ``J0``, ``J1``
      Bessel functions evaluated at ``c2``, and
      ``D = J0^2 + J1^2 - 1``:
      ``sigma_r = sqrt(2) / sqrt(c1^2 / r^2 + (4 c2 J0 J1 - 8 J1^2) / (r^2 D))``,
      ``sigma_z = 2 sqrt(6) / sqrt(c1^2 NA^2 / (r^2 n^2) - (48 c2^2 (J0^2 + J1^2) - 192 J1^2) / (n^2 k_em^2 r^4 D))``;
      for ``r -> 0`` these tend to the product of the excitation and emission
      widefield Gaussians, ``sigma_r = sqrt(2) / (NA sqrt(k_ex^2 + k_em^2))``,
      ``sigma_z = 2 sqrt(6) n / (NA^2 sqrt(k_ex^2 + k_em^2))`` (used below
      0.01 AU, where the general formulas lose digits);
    * light-sheet: the detection objective's widefield PSF times the sheet's
      Gaussian profile along Z (the system PSF is the product of illumination
      and detection PSFs; Engelbrecht & Stelzer, Optics Letters 31:1477, 2006):
      ``sigma_r`` as widefield, ``1 / sigma_z^2 = 1 / sigma_z,wf^2 + 1 / sigma_sheet^2``
      with ``sigma_sheet = sheet_fwhm / 2.355``.

    Parameters
    ----------
    modality : {"widefield", "confocal", "lightsheet"}
    na : float
        Numerical aperture.
    wavelength_em, wavelength_ex : float
        Emission and excitation wavelengths (um); ``wavelength_ex`` is needed for confocal.
    refractive_index : float
        Of the immersion medium.
    pinhole : float
        Confocal pinhole diameter in Airy units: radius ``r = pinhole * 0.61 lambda_em / NA``.
    sheet_fwhm : float
        Light-sheet thickness (FWHM, um), for ``lightsheet``.

    Returns
    -------
    (sigma_z, sigma_y, sigma_x) : tuple of float
        In um; ``sigma_y = sigma_x = sigma_r``.
    """
    na = _positive("na", na)
    n = _positive("refractive_index", refractive_index)
    if na >= n:
        raise ValueError(f"na ({na}) must be below the refractive index ({n})")
    k_em = 2.0 * np.pi / _positive("wavelength_em", wavelength_em)
    if modality in ("widefield", "lightsheet"):
        sigma_r = math.sqrt(2.0) / (k_em * na)
        sigma_z = 2.0 * math.sqrt(6.0) * n / (k_em * na**2)
        if modality == "lightsheet":
            sheet = _positive("sheet_fwhm", sheet_fwhm) / _FWHM_PER_SIGMA
            sigma_z = 1.0 / math.sqrt(1.0 / sigma_z**2 + 1.0 / sheet**2)
        return sigma_z, sigma_r, sigma_r
    if modality != "confocal":
        raise ValueError(f"modality must be 'widefield', 'confocal' or 'lightsheet', got {modality!r}")
    k_ex = 2.0 * np.pi / _positive("wavelength_ex", wavelength_ex)
    pinhole = float(pinhole)
    if not (math.isfinite(pinhole) and pinhole >= 0):
        raise ValueError(f"pinhole must be zero or a positive number of Airy units, got {pinhole}")
    r = pinhole * _AIRY_RADIUS * float(wavelength_em) / na
    if pinhole < _SMALL_PINHOLE:
        k = math.hypot(k_ex, k_em)
        return 2.0 * math.sqrt(6.0) * n / (na**2 * k), math.sqrt(2.0) / (na * k), math.sqrt(2.0) / (na * k)
    c1, c2 = k_ex * r * na, k_em * r * na
    j0, j1 = special.j0(c2), special.j1(c2)
    d = j0**2 + j1**2 - 1.0
    sigma_r = math.sqrt(2.0) / math.sqrt(c1**2 / r**2 + (4 * c2 * j0 * j1 - 8 * j1**2) / (r**2 * d))
    sigma_z = 2.0 * math.sqrt(6.0) / math.sqrt(
        c1**2 * na**2 / (r**2 * n**2) - (48 * c2**2 * (j0**2 + j1**2) - 192 * j1**2) / (n**2 * k_em**2 * r**4 * d)
    )
    return float(sigma_z), float(sigma_r), float(sigma_r)


def _psf_sigma_of(m: Microscope) -> tuple[float, float, float]:
    return gaussian_psf_sigma(modality=m.modality, na=m.na, wavelength_em=m.wavelength_em,
                              wavelength_ex=m.wavelength_ex, refractive_index=m.refractive_index,
                              pinhole=m.pinhole, sheet_fwhm=m.sheet_fwhm)


def gaussian_psf(sigma, spacing, *, truncate: float = _PSF_TRUNCATE) -> np.ndarray:
    """A separable Gaussian PSF sampled on a voxel grid, voxel-integrated, summing to 1.

    Each voxel holds the Gaussian's integral over it (differences of ``erf``),
    so the PSF keeps its mass even when sigma is smaller than a voxel; its
    variance along an axis is ``sigma^2 + spacing^2 / 12`` (the Gaussian's plus
    the uniform voxel's, exactly up to truncation).

    Parameters
    ----------
    sigma : tuple of 3 floats
        Standard deviations (Z, Y, X) in um (:func:`gaussian_psf_sigma`).
    spacing : tuple of 3 floats
        Voxel size (um).
    truncate : float
        Half-width in sigmas (at least one voxel each side).

    Returns
    -------
    psf : ndarray of float32, odd shape (2 h + 1 per axis)
    """
    sigma = check_spacing(sigma, name="sigma")
    spacing = check_spacing(spacing)
    factors = []
    for s, d in zip(sigma, spacing):
        half = max(1, math.ceil(truncate * s / d))
        edges = (np.arange(-half, half + 2) - 0.5) * d / (s * math.sqrt(2.0))
        mass = np.diff(special.erf(edges)) / 2.0
        factors.append(mass / mass.sum())
    psf = factors[0][:, None, None] * factors[1][None, :, None] * factors[2][None, None, :]
    return psf.astype(np.float32)


def check_psf(psf) -> np.ndarray:
    """A user's PSF array, checked and normalised to sum 1.

    Raises
    ------
    ValueError
        Not 3D, NaN or infinite values, an even size along an axis (its
        centre would fall between voxels), negative values, or zero sum.
    """
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 3:
        raise ValueError(f"psf must be a 3D array (Z, Y, X), got shape {psf.shape}")
    if not np.all(np.isfinite(psf)):
        raise ValueError("psf contains NaN or infinite values; give a finite PSF array")
    if any(n % 2 == 0 for n in psf.shape):
        raise ValueError(f"psf has even size {psf.shape}; give an odd size along every axis so its centre is a voxel")
    if psf.min() < 0:
        raise ValueError("psf has negative values; a PSF is an intensity (>= 0)")
    total = psf.sum()
    if total <= 0:
        raise ValueError("psf sums to zero; give a PSF with positive values")
    return (psf / total).astype(np.float32)


def blur(density: np.ndarray, psf: np.ndarray, *, labels: np.ndarray | None = None,
         workers: int | None = None) -> np.ndarray:
    """Convolve a frame with a PSF by FFT (``scipy.signal.fftconvolve``, same shape, zero outside).

    Parameters
    ----------
    density : ndarray of float32, shape (Z, Y, X)
    psf : ndarray, odd shape
        Sampled on the same grid (:func:`gaussian_psf` or :func:`check_psf`).
    labels : ndarray of int, shape (Z, Y, X), optional
        Where ``density`` is nonzero only inside labelled objects, each
        object's part is convolved in its own box (grown by the PSF) and the
        parts are summed: the same result by linearity, and faster when the
        boxes cover less than the frame.
    workers : int, optional
        Threads of ``scipy.fft`` (default: all cores).

    Returns
    -------
    ndarray of float32, shape (Z, Y, X), >= 0 (FFT round-off below 0 is clipped)
    """
    density = np.asarray(density, dtype=np.float32)
    psf = np.asarray(psf, dtype=np.float32)
    half = [n // 2 for n in psf.shape]
    boxes = []
    if labels is not None:
        for label, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is not None:
                boxes.append((label, box, tuple(slice(max(b.start - h, 0), min(b.stop + h, n))
                                                for b, h, n in zip(box, half, density.shape))))
    by_box = sum(math.prod(g.stop - g.start for g in grown) for _, _, grown in boxes)
    with scipy.fft.set_workers(workers if workers is not None else -1):
        if labels is None or by_box >= density.size:
            out = signal.fftconvolve(density, psf, mode="same")
        else:
            out = np.zeros(density.shape, dtype=np.float32)
            for label, box, grown in boxes:
                part = np.where(labels[grown] == label, density[grown], np.float32(0.0))
                out[grown] += signal.fftconvolve(part, psf, mode="same")
    return np.maximum(out, 0.0, out=out).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- 3. acquisition


def output_shape(shape, mask_spacing, spacing) -> tuple[int, int, int]:
    """Frame shape after sampling the masks' field of view at voxel size ``spacing``.

    The field's physical extent ``n * mask_spacing`` is kept; along each axis
    the output has ``floor(n * mask_spacing / spacing)`` voxels.
    """
    mask_spacing = check_spacing(mask_spacing, name="mask_spacing")
    spacing = check_spacing(spacing)
    return tuple(math.floor(n * a / b + _ROUNDING) for n, a, b in zip(shape, mask_spacing, spacing))


def _check_sampling(shape, mask_spacing, spacing) -> tuple[int, int, int]:
    out = output_shape(shape, mask_spacing, spacing)
    for axis, (n, a, b, m) in enumerate(zip(shape, mask_spacing, spacing, out)):
        if m < 2:
            raise ValueError(
                f"spacing {tuple(spacing)} does not fit the masks: along axis {'ZYX'[axis]} the field is "
                f"{n * a:g} um, fewer than 2 voxels of {b:g} um; use a finer spacing"
            )
        if a / b > _MAX_UPSAMPLING:
            raise ValueError(
                f"spacing {tuple(spacing)} does not fit the masks: {b:g} um along {'ZYX'[axis]} is more than "
                f"{_MAX_UPSAMPLING:g}x finer than the masks' {a:g} um voxels, which hold no such detail; "
                "use a coarser spacing or finer masks"
            )
    return out


def resample(volume: np.ndarray, mask_spacing, spacing, *, order: int = 1) -> np.ndarray:
    """Sample a frame on the detector's grid (voxel centres at ``(i + 1/2) * spacing``).

    Parameters
    ----------
    volume : ndarray, shape (Z, Y, X)
        On the masks' grid (voxel size ``mask_spacing``).
    mask_spacing, spacing : tuple of 3 floats
        Voxel sizes (um) of the input and of the output.
    order : int
        Spline order: 1 (linear) for intensities, 0 (nearest) for labels.

    Returns
    -------
    ndarray, shape :func:`output_shape`, same dtype
    """
    volume = np.asarray(volume)
    shape = output_shape(volume.shape, mask_spacing, spacing)
    ratio = np.asarray(spacing, dtype=float) / np.asarray(mask_spacing, dtype=float)
    if np.allclose(ratio, 1.0) and shape == volume.shape:
        return volume
    offset = 0.5 * ratio - 0.5
    return ndimage.affine_transform(volume, ratio, offset=offset, output_shape=shape, order=order, mode="nearest",
                                    prefilter=False, output=volume.dtype)


def background_field(shape, *, level: float, variation: float, rng=None) -> np.ndarray:
    """Expected background per voxel (photoelectrons) with a slow spatial variation.

    ``level * (1 + variation * f)``, where ``f`` in [-1, 1] is a cubic spline
    through random values on a coarse grid of a few nodes per axis (uneven
    illumination, out-of-focus and autofluorescent light).

    Parameters
    ----------
    shape : tuple of 3 ints
    level : float
        Mean background (>= 0).
    variation : float
        Relative amplitude, in [0, 1).
    rng : int or numpy.random.Generator, optional

    Returns
    -------
    ndarray of float32, shape ``shape``
    """
    rng = np.random.default_rng(rng)
    nodes = rng.uniform(-1.0, 1.0, size=(_BACKGROUND_NODES,) * 3)
    # The tensor-product spline is separable: interpolate each axis's unit vectors in 1D
    # (what ndimage.zoom does along each axis) and contract the nodes with them.
    basis = [ndimage.zoom(np.eye(_BACKGROUND_NODES), (n / _BACKGROUND_NODES, 1), order=3, mode="reflect",
                          grid_mode=True)[:n] for n in shape]
    smooth = np.einsum("ijk,zi,yj,xk->zyx", nodes, *basis, optimize=True).astype(np.float32)
    smooth /= max(float(np.abs(smooth).max()), 1e-12)
    return (level * (1.0 + variation * smooth)).astype(np.float32)


def bleaching(t, rate: float) -> np.ndarray:
    """Remaining fluorescence at frame ``t``: ``(1 - rate) ** t``.

    Mono-exponential photobleaching, the usual first-order approximation
    (e.g. Song et al., Biophys. J. 68:2588, 1995), with ``rate`` the share
    lost per frame.
    """
    return (1.0 - float(rate)) ** np.asarray(t, dtype=float)


def acquire(expected: np.ndarray, *, read_noise: float, gain: float, offset: float, bit_depth: int,
            rng=None) -> np.ndarray:
    """Detector: Poisson photon noise, Gaussian read noise, gain, offset, rounding and clipping.

    ``ADU = round(gain * (Poisson(expected) + Normal(0, read_noise)) + offset)``,
    clipped to ``[0, 2**bit_depth - 1]`` (the Poisson-Gaussian model of raw
    data; Foi et al., IEEE Trans. Image Process. 17:1737, 2008).

    Parameters
    ----------
    expected : ndarray, shape (Z, Y, X)
        Expected photoelectrons per voxel (>= 0).
    read_noise : float
        Read noise, photoelectrons rms.
    gain : float
        ADU per photoelectron.
    offset : float
        ADU.
    bit_depth : {8, 16}
    rng : int or numpy.random.Generator, optional

    Returns
    -------
    ndarray of uint8 or uint16, shape (Z, Y, X)
    """
    rng = np.random.default_rng(rng)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    adu = rng.poisson(np.maximum(expected, 0.0)).astype(np.float32)
    if read_noise > 0:
        noise = rng.standard_normal(adu.shape, dtype=np.float32)
        noise *= np.float32(read_noise)
        adu += noise
    adu *= np.float32(gain)
    adu += np.float32(offset)
    np.rint(adu, out=adu)
    np.clip(adu, 0, np.iinfo(dtype).max, out=adu)
    return adu.astype(dtype)


def snr_and_cr(image, labels) -> tuple[float, float]:
    """The CTC's SNR and contrast ratio of one frame, on its ground-truth masks.

    ``SNR = |mean(cell) - mean(background)| / sd(background)``,
    ``CR = mean(cell) / mean(background)`` (cell: ``labels > 0``; background:
    ``labels == 0``; Ulman et al. 2017, Supplementary Note).

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
    labels : ndarray of int, shape (Z, Y, X)
    """
    image = np.asarray(image)
    if image.shape != np.shape(labels):
        raise ValueError(f"image {image.shape} and labels {np.shape(labels)} must have one shape")
    cell = np.asarray(labels).ravel() > 0
    n_cell = int(np.count_nonzero(cell))
    n_bg = cell.size - n_cell
    if not (n_cell and n_bg):
        return float("nan"), float("nan")
    values = image.ravel().astype(np.float64)
    inside = values[cell]
    sum_bg = values.sum() - inside.sum()
    mean_bg, fg = sum_bg / n_bg, inside.mean()
    sd_bg = math.sqrt(max((values @ values - inside @ inside) / n_bg - mean_bg**2, 0.0))
    snr = abs(fg - mean_bg) / sd_bg if sd_bg > 0 else float("inf")
    cr = fg / mean_bg if mean_bg > 0 else float("inf")
    return float(snr), float(cr)


# ----------------------------------------------------------------------------- 4. SNR calibration


@dataclass(frozen=True)
class FrameStats:
    """Noise-free statistics of one frame on the detector grid (photoelectrons, unit stain signal).

    ``b`` is the blurred, sampled stain at signal 1 and no bleaching; ``B`` the
    expected background; ``c``/``g`` cell and background voxels of the ground
    truth.
    """

    cell_b: float  # mean of b over cells
    cell_B: float  # mean of B over cells
    bg_b: float  # mean of b over background
    bg_B: float  # mean of B over background
    var_b: float  # variance of b over background
    var_B: float  # variance of B over background
    cov_bB: float  # covariance of b and B over background


def frame_stats(b: np.ndarray, background: np.ndarray, labels: np.ndarray) -> FrameStats:
    """:class:`FrameStats` of a noise-free frame ``b`` (unit signal), background map and ground truth."""
    cell = labels > 0
    if not cell.any() or cell.all():
        raise ValueError("a calibration frame needs both cell and background voxels; check the masks and the spacing")
    bb, BB = b[~cell].astype(np.float64), background[~cell].astype(np.float64)
    n = bb.size
    bg_b, bg_B = bb.sum() / n, BB.sum() / n
    return FrameStats(
        cell_b=float(b[cell].mean(dtype=np.float64)), cell_B=float(background[cell].mean(dtype=np.float64)),
        bg_b=float(bg_b), bg_B=float(bg_B), var_b=float(max(bb @ bb / n - bg_b**2, 0.0)),
        var_B=float(max(BB @ BB / n - bg_B**2, 0.0)), cov_bB=float(bb @ BB / n - bg_b * bg_B),
    )


def predicted_snr(signal_level, stats: FrameStats, *, remaining: float, read_noise: float, gain: float) -> float:
    """Expected CTC SNR of a frame at stain signal ``signal_level`` (photoelectrons).

    With ``s = signal_level * remaining`` (after bleaching), the expected image
    is ``s b + B``; over the background, its variance is the spatial variance
    ``s^2 var(b) + 2 s cov(b, B) + var(B)`` plus the Poisson variance (its
    mean) plus the read noise and the rounding to ADU (``1/12 / gain^2``), so
    ``SNR = |s (b_c - b_g) + B_c - B_g| / sqrt(variance)``.
    """
    s = float(signal_level) * float(remaining)
    diff = s * (stats.cell_b - stats.bg_b) + stats.cell_B - stats.bg_B
    variance = (s**2 * stats.var_b + 2 * s * stats.cov_bB + stats.var_B + s * stats.bg_b + stats.bg_B
                + read_noise**2 + _QUANTISATION_VARIANCE / gain**2)
    return abs(diff) / math.sqrt(variance)


def calibrate_signal(snr: float, stats: list[FrameStats], remaining, *, read_noise: float, gain: float) -> float:
    """Stain signal (photoelectrons) whose SNR, averaged over frames, is ``snr``.

    Parameters
    ----------
    snr : float
        Requested SNR (CTC definition), > 0.
    stats : list of FrameStats
        One per frame (frames between calibration frames take the nearest one's).
    remaining : array-like
        Bleaching factor of each frame (:func:`bleaching`).

    Raises
    ------
    ValueError
        When the SNR cannot be reached: below what the background alone gives,
        or above what the PSF's halo in the background allows at any signal.
    """
    snr = _positive("snr", snr)
    remaining = np.asarray(remaining, dtype=float)

    def mean_snr(level):
        return float(np.mean([predicted_snr(level, st, remaining=a, read_noise=read_noise, gain=gain)
                              for st, a in zip(stats, remaining)]))

    floor = mean_snr(0.0)
    ceiling = float(np.mean([(st.cell_b - st.bg_b) / math.sqrt(st.var_b) if st.var_b > 0 else math.inf
                             for st in stats]))
    if snr <= floor:
        raise ValueError(f"snr {snr:g} is at or below the SNR of the background alone ({floor:.3g}); "
                         "ask for a higher snr or lower the background variation")
    if snr >= _SNR_HEADROOM * ceiling:
        raise ValueError(f"snr {snr:g} cannot be reached: the blur's halo in the background limits the SNR to "
                         f"{ceiling:.3g} at any signal; ask for a lower snr or use a sharper PSF")
    high = 1.0
    while mean_snr(high) < snr:
        high *= 2.0
    return float(optimize.brentq(lambda level: mean_snr(level) - snr, 0.0, high, xtol=1e-6, rtol=1e-10))


# ----------------------------------------------------------------------------- rendering


def _frame_count_and_shape(labels) -> tuple[int, tuple[int, int, int]]:
    shape = tuple(int(s) for s in np.shape(labels)) if not isinstance(labels, Population) else labels.shape
    if len(shape) == 3:
        raise ValueError(f"labels has shape {shape}, 3 axes: a 2D time-lapse (T, Y, X)? give (T, Z, Y, X)")
    if len(shape) != 4:
        raise ValueError(f"labels must have shape (T, Z, Y, X), got {shape}")
    if shape[1] < 2:
        raise ValueError(f"labels has shape {shape}: one Z slice is a 2D time-lapse given as 3D; give 3D frames")
    return shape[0], shape[1:]


class _Renderer:
    """Noise-free frames on the detector grid, and their ground truth (one per call, cached for calibration)."""

    def __init__(self, labels, *, mask_spacing, spacing, psf, stain_params, seed, roots):
        self.labels = labels
        self.mask_spacing = mask_spacing
        self.spacing = spacing
        self.psf = psf
        self.stain = stain_params
        self.seed = seed
        self.roots = roots
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        if t in self.cache:
            return self.cache.pop(t)
        frame = np.asarray(self.labels[t])
        density = stain_density(frame, spacing=self.mask_spacing, kind=self.stain, t=t, seed=self.seed,
                                roots=self.roots)
        b = resample(blur(density, self.psf, labels=frame), self.mask_spacing, self.spacing, order=1)
        gt = resample(frame.astype(ctc.LABEL_DTYPE), self.mask_spacing, self.spacing, order=0)
        if gt.shape == frame.shape:
            return b, gt  # the masks' own grid: nothing can vanish
        for label in np.setdiff1d(ctc.labels_present(frame), ctc.labels_present(gt)):
            if not _keep_thin_label(gt, frame, int(label), self.mask_spacing, self.spacing):
                raise ValueError(
                    f"spacing {self.spacing} does not fit the masks: label {int(label)} of frame {t} is thinner than "
                    f"one voxel, vanishes when sampled and has no free voxel to keep; use a finer spacing"
                )
        return b, gt


def _keep_thin_label(gt: np.ndarray, frame: np.ndarray, label: int, mask_spacing, spacing) -> bool:
    """Give a label that nearest-neighbour sampling lost the free detector voxel that holds most of it.

    A cell part thinner than one detector voxel (a thin protrusion cut off, a small fragment) falls
    between voxel centres; the ground truth keeps it in the background voxel its mask voxels
    fall into most often, so that every tracked label stays in the frame.  False when all
    those voxels belong to other labels.
    """
    ratio = np.asarray(spacing, dtype=float) / np.asarray(mask_spacing, dtype=float)
    where = np.argwhere(frame == label)
    cells = np.clip(np.floor((where + 0.5) / ratio).astype(int), 0, np.asarray(gt.shape) - 1)
    cells, counts = np.unique(cells, axis=0, return_counts=True)
    for index in np.argsort(-counts, kind="stable"):
        voxel = tuple(cells[index])
        if gt[voxel] == 0:
            gt[voxel] = label
            return True
    return False


def render(labels, out, *, tracks=None, mask_spacing=None, spacing=None, snr: float | None = None,
           preset="confocal", stain=None, psf=None, seed: int = 0, overwrite: bool = False,
           progress: bool = True, **microscope_overrides) -> dict:
    """Render a label time-lapse into a synthetic microscopy data set in the CTC layout.

    Writes ``out/01/tNNN.tif`` (images), ``out/01_GT/SEG/man_segNNN.tif``,
    ``out/01_GT/TRA/man_trackNNN.tif``, ``out/01_GT/TRA/man_track.txt`` and
    ``out/microscopy.json`` (parameters, requested and achieved SNR and CR),
    frame by frame (memory: a few frames), in a temporary folder swapped in
    only when complete.

    Parameters
    ----------
    labels : array-like of int (T, Z, Y, X) or Population
        Label time-lapse on the masks' grid; labels persistent over each track.
    out : path-like
        The data set folder.
    tracks : DataFrame, optional
        Lineage; default ``labels.tracks`` for a Population, else derived
        from the labels with no parents.
    mask_spacing : tuple of 3 floats, optional
        Voxel size (um) of ``labels``; default a Population's own, else 1 um.
    spacing : tuple of 3 floats, optional
        Voxel size (um) of the images; default the preset's.  Must give at
        least 2 voxels per axis, be at most 4x finer than ``mask_spacing`` and
        keep every cell at least one voxel thick.
    snr : float, optional
        Requested SNR (CTC definition, mean over frames); default the preset's.
    preset : str or Microscope
        Instrument (:data:`PRESETS`); ``microscope_overrides`` replace its fields.
    stain : str or Stain, optional
        ``"cytoplasm"``, ``"membrane"``, ``"nucleus"`` or a :class:`Stain`; default the preset's.
    psf : ndarray, optional
        PSF array on the masks' grid (odd shape), instead of the preset's Gaussian.
    seed : int
        Same seed, byte-identical images.
    overwrite : bool
        Replace an existing ``out``.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    dict
        The content of ``microscopy.json`` plus ``"out"``.

    Raises
    ------
    ValueError
        snr <= 0 or unreachable, a PSF with NaNs or of even size, a spacing
        that does not fit the masks, bad labels or lineage.
    FileExistsError
        ``out`` exists and ``overwrite`` is False.  In every case nothing is written.
    """
    start = time.perf_counter()
    scope = microscope(preset, **microscope_overrides)
    if snr is not None:
        scope = dataclasses.replace(scope, snr=_positive("snr", snr))
    stain_params = _stain_params(stain if stain is not None else scope.stain)
    n_frames, frame_shape = _frame_count_and_shape(labels)
    if isinstance(labels, Population):
        mask_spacing = labels.spacing if mask_spacing is None else mask_spacing
        tracks = labels.tracks if tracks is None else tracks
    mask_spacing = check_spacing((1.0, 1.0, 1.0) if mask_spacing is None else mask_spacing, name="mask_spacing")
    spacing = check_spacing(scope.spacing if spacing is None else spacing)
    shape_out = _check_sampling(frame_shape, mask_spacing, spacing)
    if psf is None:
        sigma = _psf_sigma_of(scope)
        kernel = gaussian_psf(sigma, mask_spacing)
    else:
        kernel, sigma = check_psf(psf), None
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    table = None if tracks is None else ctc.as_tracks(tracks)
    if table is not None and not isinstance(labels, Population):
        ctc.check_lineage(labels, table, source="tracks")
    roots = lineage_roots(table) if table is not None else None

    renderer = _Renderer(labels, mask_spacing=mask_spacing, spacing=spacing, psf=kernel,
                         stain_params=stain_params, seed=seed, roots=roots)
    background = background_field(shape_out, level=scope.background, variation=scope.background_variation,
                                  rng=np.random.default_rng([seed, _BACKGROUND_STREAM]))
    remaining = bleaching(np.arange(n_frames), scope.bleaching)
    # The SNR is defined on frames with cells; frames without any (cells may leave the field) are
    # rendered as background and not calibrated on.
    occupied = [t for t in range(n_frames) if np.asarray(labels[t]).any()]
    if not occupied:
        raise ValueError("labels hold no cell in any frame; there is nothing to render")
    picks = sorted({min(occupied, key=lambda o: abs(o - round(x)))
                    for x in np.linspace(0, n_frames - 1, min(_CALIBRATION_FRAMES, n_frames))})
    sampled = {}
    for t in picks:
        b, gt = renderer(t)
        renderer.cache[t] = (b, gt)
        sampled[t] = frame_stats(b, background, gt)
    nearest = [sampled[min(picks, key=lambda p: abs(p - t))] for t in occupied]
    remaining_occupied = remaining[occupied]
    gain = scope.gain
    level = calibrate_signal(scope.snr, nearest, remaining_occupied, read_noise=scope.read_noise, gain=gain)
    top = np.iinfo(np.uint8 if scope.bit_depth == 8 else np.uint16).max
    b_max = max(float(renderer.cache[t][0].max()) for t in picks)
    for _ in range(_GAIN_ROUNDS):
        peak = level * b_max + float(background.max())
        highest = gain * (peak + _CLIP_SIGMAS * math.sqrt(peak + scope.read_noise**2)) + scope.offset
        if highest <= top:
            break
        gain *= _GAIN_MARGIN * (top - scope.offset) / (highest - scope.offset)
        log.warning("gain lowered to %.4g ADU/e- so that the brightest voxels fit %d bits", gain, scope.bit_depth)
        level = calibrate_signal(scope.snr, nearest, remaining_occupied, read_noise=scope.read_noise, gain=gain)

    frame_snr, frame_cr = [], []
    with ctc.dataset_writer(out, n_frames=n_frames, spacing=spacing, overwrite=overwrite) as writer:
        for t in tqdm(range(n_frames), desc="rendering", unit="frame", disable=not progress):
            b, gt = renderer(t)
            expected = b * np.float32(level * remaining[t]) + background
            image = acquire(expected, read_noise=scope.read_noise, gain=gain, offset=scope.offset,
                            bit_depth=scope.bit_depth, rng=np.random.default_rng([seed, _NOISE_STREAM, t]))
            s, c = snr_and_cr(image, gt)
            frame_snr.append(s)
            frame_cr.append(c)
            writer.write_frame(t, image, gt)
        summary = {
            "requested_snr": scope.snr,
            "snr": float(np.nanmean(frame_snr)),
            "cr": float(np.nanmean(frame_cr)),
            "frame_snr": [round(v, 4) for v in frame_snr],
            "frame_cr": [round(v, 4) for v in frame_cr],
            "signal_photons": level,
            "gain": gain,
            "microscope": dataclasses.asdict(dataclasses.replace(scope, gain=gain, spacing=spacing)),
            "stain": dataclasses.asdict(stain_params),
            "psf_sigma_um": None if sigma is None else list(sigma),
            "psf_shape": list(kernel.shape),
            "mask_spacing": list(mask_spacing),
            "spacing": list(spacing),
            "shape": [n_frames, *shape_out],
            "seed": int(seed),
        }
        writer.write_json("microscopy.json", summary)
        writer.finish(table)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    summary["out"] = str(out)
    log.info("rendered %d frames %s into %s: SNR %.2f (requested %.2f), CR %.3f",
             n_frames, shape_out, out, summary["snr"], scope.snr, summary["cr"])
    return summary


def load_sdf_sequences(files, *, spacing=None) -> list[MaskSequence]:
    """Cell masks (SDF < 0) of SDF sequence files (``cellnb generate`` / ``prepare``).

    Parameters
    ----------
    files : list of path-like
        ``.h5`` files read by :func:`cellnb.io.read_sdf_h5`.
    spacing : tuple of 3 floats, optional
        Voxel size (um) given to the masks; default each file's recorded
        spacing (1 um, with a warning, when it records none).

    Returns
    -------
    list of MaskSequence
        Named after the files.
    """
    sequences = []
    for path in files:
        sdf, record = read_sdf_h5(path)
        own = spacing if spacing is not None else record.get("spacing")
        if not own:
            log.warning("%s records no voxel size; taking 1 um voxels", path)
            own = (1.0, 1.0, 1.0)
        sequences.append(MaskSequence(sdf < 0, check_spacing(own), Path(path).stem))
    return sequences


def _default_spacing(mask_spacing, scope: Microscope) -> tuple[float, float, float]:
    """Anisotropic masks: their own grid.  Isotropic masks: their lateral step, the preset's axial-to-lateral ratio."""
    dz, dy, dx = mask_spacing
    if not math.isclose(dz, dx, rel_tol=1e-6):
        return tuple(mask_spacing)
    ratio = scope.spacing[0] / scope.spacing[2]
    return (dx * ratio, dy, dx)


def render_folder(source, out, *, snr: float | None = None, spacing=None, seed: int = 0, preset: str = "confocal",
                  overwrite: bool = False) -> dict:
    """Render a CTC folder or a folder of generated SDF sequences into a microscopy data set.

    The function behind ``cellnb microscopy --from DIR --out DIR [--snr S]
    [--spacing Z Y X] [--seed N] [--preset P] [--overwrite]``.

    Parameters
    ----------
    source : path-like
        A folder of ``.h5`` SDF sequences (``cellnb generate``/``prepare``;
        mask = SDF < 0, voxel size from each file's record), placed side by
        side in one field (:func:`place_cells`); or a CTC folder (``XX_GT``,
        ``XX_GT/TRA``, a result folder, or a data set root with ``01_GT``)
        read by :func:`cellnb.ctc.read_sequence` (voxel size from its ImageJ
        metadata, else the preset's spacing).
    out : path-like
        Data set folder written by :func:`render`.
    snr : float, optional
        Default the preset's.
    spacing : tuple of 3 floats, optional
        Image voxel size (um); default: anisotropic masks keep their grid,
        isotropic masks keep their lateral step and get the preset's
        axial-to-lateral ratio.
    seed : int
    preset : str
        A key of :data:`PRESETS`.
    overwrite : bool

    Returns
    -------
    dict
        :func:`render`'s summary.
    """
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"--from {source} is not a folder; give a CTC folder or a folder of .h5 sequences")
    scope = microscope(preset)
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    h5 = sorted(source.glob("*.h5")) or sorted(source.glob("sdf/*.h5"))
    if h5:
        population = place_cells(load_sdf_sequences(h5), rng=np.random.default_rng([seed, _PLACEMENT_STREAM]))
        mask_spacing = population.spacing
        labels, tracks = population, population.tracks
    else:
        folder = source / "01_GT" if (source / "01_GT").is_dir() else source
        labels, tracks = ctc.read_sequence(folder)
        mask_spacing = ctc.read_spacing(folder) or (tuple(spacing) if spacing is not None else scope.spacing)
    out_spacing = _default_spacing(mask_spacing, scope) if spacing is None else spacing
    return render(labels, out, tracks=tracks, mask_spacing=mask_spacing, spacing=out_spacing, snr=snr,
                  preset=scope, seed=seed, overwrite=overwrite)
