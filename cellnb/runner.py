"""The main job: every notebook, for every data set, through papermill.

Each data set gets its own run directory ``<runs>/<name>/``; the notebooks
01..05 run in order with the same parameters, executed copies go to
``<runs>/<name>/executed/``, and figures to ``<figures>/<name>_*.png``.
Finally the README's results section is regenerated from the runs'
``metrics.json`` (:mod:`cellnb.report`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import papermill

from cellnb import datasets
from cellnb.report import update_readme
from cellnb.workspace import RunDir

__all__ = ["DATASETS", "NOTEBOOKS", "NOTEBOOK_PARAMETERS", "celegans_available", "run_all"]

log = logging.getLogger(__name__)

# Data set name -> source, in the order the main job runs them.
DATASETS = {
    "dividing": "phantoms:dividing",
    "filopodial": "phantoms:filopodial",
    "celegans": "celegans",
}

NOTEBOOKS = (
    "01_data_preparation",
    "02_training",
    "03_latent_sampling",
    "04_temporal_resampling",
    "05_shape_descriptors",
)

_COMMON = ("profile", "run_dir", "figures_dir", "name", "overrides")
# The parameters the runner passes to each notebook (each notebook must declare them).
NOTEBOOK_PARAMETERS = {
    "01_data_preparation": _COMMON + ("source", "data_dir", "overwrite"),
    "02_training": _COMMON + ("overwrite",),
    "03_latent_sampling": _COMMON,
    "04_temporal_resampling": _COMMON,
    "05_shape_descriptors": _COMMON,
}


def celegans_available(data_dir=None) -> bool:
    """Whether the C. elegans data can be had (locally or by download); logs one line if not."""
    try:
        datasets.celegans_dir(data_dir)
    except (FileNotFoundError, ValueError, OSError) as err:
        log.warning("C. elegans data not available, going on with the phantoms only (%s)", err)
        return False
    return True


def run_all(
    *,
    profile: str = "quick",
    runs="runs",
    figures="figures",
    datasets: list[str] | None = None,
    overrides: dict | None = None,
    notebooks="notebooks",
    readme="README.md",
    overwrite: bool = False,
    data_dir=None,
    progress: bool = True,
) -> dict:
    """Run notebooks 01..05 for each data set.

    Parameters
    ----------
    profile : {"quick", "paper"}
    runs, figures : path-like
        Parent of the run directories; folder of the figures.
    datasets : list of str, optional
        Names from :data:`DATASETS`; default all (C. elegans only if available).
    overrides : dict, optional
        Profile overrides passed to every notebook.
    notebooks : path-like
        Folder holding the ``.ipynb`` files.
    readme : path-like or None
        README whose results section is regenerated; None to skip.
    overwrite : bool
        Replace existing run directories; otherwise an existing one is an error.
    data_dir : path-like, optional
        Folder holding ``celegans-3dmms`` (default ``$CELLNB_DATA_DIR``).

    Returns
    -------
    dict
        ``{"datasets": [...], "seconds": {name: s}}``.
    """
    names = list(DATASETS) if datasets is None else list(datasets)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise ValueError(f"unknown data sets {unknown}; choose from {', '.join(DATASETS)}")
    notebooks = Path(notebooks)
    missing = [nb for nb in NOTEBOOKS if not (notebooks / f"{nb}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"notebooks {missing} not found in {notebooks}; run from the repository root")
    if "celegans" in names and not celegans_available(data_dir):
        names.remove("celegans")
    runs, figures = Path(runs).resolve(), Path(figures).resolve()
    # Notebooks run with the notebooks folder as working directory: pass absolute paths.
    data_dir = data_dir or os.environ.get("CELLNB_DATA_DIR")
    data_dir = str(Path(data_dir).resolve()) if data_dir else ""
    existing = [n for n in names if (runs / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"run directories {[str(runs / n) for n in existing]} exist; pass --overwrite to redo them")
    figures.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for name in names:
        run = RunDir(runs / name)
        if run.root.exists():
            shutil.rmtree(run.root)
        start = time.perf_counter()
        values = {
            "profile": profile,
            "run_dir": str(run.root),
            "figures_dir": str(figures),
            "name": name,
            "overrides": json.dumps(overrides or {}),
            "source": DATASETS[name],
            "data_dir": data_dir,
            "overwrite": True,
        }
        run.executed.mkdir(parents=True, exist_ok=True)
        for nb in NOTEBOOKS:
            log.info("%s: running %s", name, nb)
            papermill.execute_notebook(
                str(notebooks / f"{nb}.ipynb"),
                str(run.executed / f"{nb}.ipynb"),
                parameters={k: values[k] for k in NOTEBOOK_PARAMETERS[nb]},
                kernel_name="python3",
                progress_bar=progress,
                cwd=str(notebooks.resolve()),
            )
        seconds[name] = round(time.perf_counter() - start, 1)
        log.info("%s: done in %.0f s", name, seconds[name])
    if readme:
        update_readme(readme, runs=runs, figures=figures, names=names)
    return {"datasets": names, "seconds": seconds}
