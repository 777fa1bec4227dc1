"""Annotated synthetic microscopy from a run's generated cells (notebook 06).

The paper's use of the model: generated shapes are the ground truth of
segmentation and tracking data.  :func:`synthesize_run` places a run's
generated cells in one field (:func:`cellnb.population.place_cells`),
renders it at several SNRs (:func:`cellnb.microscopy.render`, CTC layout), and
scores a classical baseline segmentation against the ground truth at each
SNR (:func:`cellnb.segmentation.score_baseline`); the numbers go to the
``microscopy`` section of ``metrics.json``.  Parameters are the profile
section ``microscopy`` (:class:`MicroscopyConfig`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from cellnb import phantoms
from cellnb.config import Config
from cellnb.ctc import read_dataset
from cellnb.microscopy import PRESETS, load_sdf_sequences, render
from cellnb.population import place_cells
from cellnb.segmentation import score_baseline
from cellnb.workspace import RunDir

__all__ = ["MicroscopyConfig", "synthesize_run"]


@dataclass(frozen=True)
class MicroscopyConfig(Config):
    """Parameters of :func:`synthesize_run` (profile section ``microscopy``).

    Parameters
    ----------
    preset : str
        Microscope preset (:data:`cellnb.microscopy.PRESETS`).
    snrs : tuple of float
        SNRs (CTC definition) rendered and shown.
    curve_snrs : tuple of float
        Further SNRs rendered for the SEG-against-SNR curve only.
    n_cells : int
        Cells placed in the field.
    mask_spacing_um : float
        Voxel size given to the generated masks (um).
    z_step_um : float
        Axial step of the images (um); pixels keep the masks' lateral voxel size.
    drift_um : float
        Drift of each cell per frame (um).
    seed : int
        Seeds the placement, the texture and the noise.
    """

    preset: str = "confocal"
    snrs: tuple[float, ...] = (8.0, 4.0, 2.0)
    curve_snrs: tuple[float, ...] = (1.0, 1.5, 3.0)
    n_cells: int = 4
    mask_spacing_um: float = 0.5
    z_step_um: float = 1.0
    drift_um: float = 0.3
    seed: int = 0

    SECTION = "microscopy"

    def validate(self):
        if self.preset not in PRESETS:
            raise ValueError(f"microscopy.preset {self.preset!r} is not a preset; use one of {', '.join(PRESETS)}")
        if not self.snrs or min(self.snrs + self.curve_snrs) <= 0:
            raise ValueError("microscopy.snrs must list positive SNRs (and curve_snrs too)")
        for name in ("n_cells",):
            if getattr(self, name) < 1:
                raise ValueError(f"microscopy.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("mask_spacing_um", "z_step_um"):
            if not getattr(self, name) > 0:
                raise ValueError(f"microscopy.{name} must be positive, got {getattr(self, name)}")
        if self.drift_um < 0 or self.seed < 0:
            raise ValueError("microscopy.drift_um and microscopy.seed must be non-negative")


def _cells(run: RunDir, config: MicroscopyConfig, frames: int, size: int):
    """The cells to image: the run's recommended (else first) generated set, or phantoms when it has none."""
    sets = run.sampled_sets()
    if sets:
        chosen = run.read_metrics().get("evaluate", {}).get("recommended")
        name = chosen if chosen in sets else sets[0]
        cells = [c for c in load_sdf_sequences(run.generated_set(name).sdf_files(), spacing=(config.mask_spacing_um,) * 3)
                 if c.masks.any(axis=(1, 2, 3)).all()][: config.n_cells]  # a cell in every frame
        if cells:
            return cells, f"generated sequences ({name} codes)"
    moving = max(frames, 2)  # phantoms move; a static data set (one frame) images their first frame
    cells = phantoms.make_batch("dividing", config.n_cells, size=size, frames=moving, rng=config.seed)
    if frames < moving:
        cells = [dataclasses.replace(c, masks=c.masks[:frames]) for c in cells]
    return cells, "phantom cells (the run has no generated sequence with a cell in every frame)"


def synthesize_run(run, config: MicroscopyConfig | None = None, *, frames: int = 12, size: int = 48) -> dict:
    """Render a field of the run's generated cells at each SNR and score a baseline segmentation.

    Parameters
    ----------
    run : RunDir or path-like
    config : MicroscopyConfig, optional
    frames, size : int
        Frames and grid of the phantoms used when the run has no generated cells.

    Returns
    -------
    dict
        ``source``, ``population``, ``spacing`` (of the images), ``summaries``
        ({snr: what :func:`cellnb.microscopy.render` recorded}), ``data``
        ({snr: (images, SEG labels, tracks) read back}), ``scores`` ({snr:
        {"seg", "dice_otsu"}}) and ``seconds``.  The CTC data sets are in
        ``RUN/microscopy/snr<S>/``.
    """
    config = config or MicroscopyConfig()
    run = run if isinstance(run, RunDir) else RunDir(run)
    start = time.perf_counter()
    cells, source = _cells(run, config, frames, size)
    population = place_cells(cells, spacing=(config.mask_spacing_um,) * 3, drift=config.drift_um, rng=config.seed)
    spacing = (config.z_step_um, config.mask_spacing_um, config.mask_spacing_um)
    summaries, data, scores = {}, {}, {}
    with run.lock("microscopy"):
        for snr in sorted(set(config.snrs) | set(config.curve_snrs), reverse=True):
            summaries[snr] = render(population, run.microscopy(snr), spacing=spacing, snr=snr, preset=config.preset,
                                    seed=config.seed, overwrite=True, progress=False)
            data[snr] = read_dataset(summaries[snr]["out"])
            score = score_baseline(data[snr][0], data[snr][1], spacing=spacing)
            scores[snr] = {"seg": score["seg"], "dice_otsu": score["dice_otsu"]}
        seconds = time.perf_counter() - start
        curve = sorted(scores)
        run.update_metrics("microscopy", {
            "preset": config.preset, "source": source, "n_cells": len(cells),
            "shape": summaries[config.snrs[0]]["shape"], "spacing": list(spacing), "requested_snr": curve,
            "achieved_snr": [summaries[s]["snr"] for s in curve], "cr": [summaries[s]["cr"] for s in curve],
            "seg": [scores[s]["seg"] for s in curve], "dice_otsu": [scores[s]["dice_otsu"] for s in curve],
            "seconds": round(seconds, 2),
        })
    return {"source": source, "population": population, "spacing": spacing, "summaries": summaries, "data": data,
            "scores": scores, "seconds": seconds}
