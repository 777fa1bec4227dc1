"""The main job: every notebook, for every data set, through papermill.

Each data set gets its own run directory ``<runs>/<name>/``; the notebooks run
in order with the same parameters, executed copies go to
``<runs>/<name>/executed/`` and figures to ``<runs>/<name>/figures/``.  When
every data set has run, the figures are copied to ``<figures>/<name>_*.png`` (and ``.mp4``)
and the README's results section is regenerated from the runs'
``metrics.json`` (:mod:`cellnb.report`).

Nothing a user made is lost: every parameter is checked before anything is
touched, and existing run directories are moved aside (hidden, beside them)
rather than deleted; if any notebook fails or the job is interrupted, the new
run directories are removed and the old ones put back, byte for byte, and
``figures/`` and the README are not touched.

Data sets run side by side, each in a process of its own (``jobs``, default
one per core): the quick profile trains on one thread, so two data sets on two
cores take about the time of one.  Their numbers do not depend on ``jobs``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import papermill

from cellnb import datasets
from cellnb.config import merge
from cellnb.io import atomic_path
from cellnb.profile import load_profile
from cellnb.report import update_readme
from cellnb.signals import handled
from cellnb.view import VIEW_ENV
from cellnb.workspace import RunDir

__all__ = ["DATASETS", "NOTEBOOKS", "NOTEBOOK_PARAMETERS", "celegans_problem", "default_jobs", "run_all"]

log = logging.getLogger(__name__)

# Data set name -> (source, its own profile settings), in the order the main job starts them (the
# longest first, so that side by side they end together).  A data set's own settings win over the
# profile and over --set (a static population has one frame).
DATASETS = {
    # Real daughters touch (gaps of one or two voxels): gap sampling with a wider band keeps them apart
    # (16 C. elegans divisions: 13/16 reconstructions keep one-becomes-two, 0/16 without; on the
    # phantoms, whose daughters separate, it costs 0.015-0.02 Dice and gains nothing).
    "celegans": ("celegans", {"train": {"gap_fraction": 0.1, "threshold": 0.3}}),
    "dividing": ("phantoms:dividing", {}),
    "filopodial": ("phantoms:filopodial", {}),
    "celegans-cells": ("celegans", {"data": {"kind": "cells", "frames": 1}, "generate": {"frames": 1},
                                    "resample": {"time_samplings": [1]}}),
}
FIGURE_SUFFIXES = (".png", ".mp4")  # what the main job copies to figures/: images and animations
_NEEDS_CELEGANS = tuple(name for name, (source, _) in DATASETS.items() if source == "celegans")
_STOP_SECONDS = 60  # how long a data set stopped early gets to shut its kernel down before it is killed

NOTEBOOKS = (
    "01_data_preparation",
    "02_training",
    "03_latent_sampling",
    "04_temporal_resampling",
    "05_shape_descriptors",
    "06_synthetic_microscopy",
)

_COMMON = ("profile", "run_dir", "figures_dir", "name", "overrides")
# The parameters the runner passes to each notebook (each notebook must declare them).
NOTEBOOK_PARAMETERS = {
    "01_data_preparation": _COMMON + ("source", "data_dir", "overwrite"),
    "02_training": _COMMON + ("overwrite",),
    "03_latent_sampling": _COMMON,
    "04_temporal_resampling": _COMMON,
    "05_shape_descriptors": _COMMON,
    "06_synthetic_microscopy": _COMMON,
}


def celegans_problem(data_dir=None) -> str | None:
    """Why the C. elegans data cannot be had (locally or by download), or None when it can."""
    try:
        datasets.celegans_dir(data_dir)
    except (FileNotFoundError, ValueError, OSError) as err:
        return f"no C. elegans data: {err}"
    return None


def _move_aside(root: Path) -> Path | None:
    """Move an existing run directory to a hidden folder beside it; returns where (None if there was none)."""
    if not root.exists():
        return None
    backup = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
    os.replace(root, backup / root.name)
    return backup


def _restore(root: Path, backup: Path | None) -> None:
    """Put a moved-aside run directory back, removing what a failed run made in its place."""
    shutil.rmtree(root, ignore_errors=True)
    if backup is not None:
        os.replace(backup / root.name, root)
        backup.rmdir()


def _figure_files(folder: Path, name: str) -> list[Path]:
    return sorted(p for suffix in FIGURE_SUFFIXES for p in folder.glob(f"{name}_*{suffix}"))


def _publish_figures(run: RunDir, figures: Path, name: str) -> None:
    """Replace ``figures/<name>_*.png`` (and ``.mp4``) by the run's new figures."""
    for old in _figure_files(figures, name):
        old.unlink()
    for new in _figure_files(run.figures, name):
        with atomic_path(figures / new.name, overwrite=True) as tmp:
            shutil.copyfile(new, tmp)


@contextmanager
def _static_views():
    """Static 3D views (:mod:`cellnb.view`) in the kernels started meanwhile, unless ``$CELLNB_VIEW`` is set.

    A kernel inherits the environment, including the ``JPY_SESSION_NAME`` of a
    JupyterLab kernel that runs the main job, which would make its views interactive.
    """
    if VIEW_ENV in os.environ:
        yield
        return
    os.environ[VIEW_ENV] = "static"
    try:
        yield
    finally:
        del os.environ[VIEW_ENV]


def default_jobs(n_datasets: int) -> int:
    """Data sets run at once by default: one per CPU core, at most all of them.

    The quick profile trains on one thread (``train.num_threads``), so on two
    cores two data sets train side by side in the time of one.
    """
    return max(1, min(n_datasets, os.cpu_count() or 1))


def _lane(run: RunDir, values: dict, notebooks: Path, report, threads: int) -> None:
    """One data set's notebooks, in a process of its own; a failure is reported as one text through ``report``.

    Its kernels get ``threads`` threads (``$OMP_NUM_THREADS``, unless set):
    lanes that each took every core would slow each other down several-fold
    (generation 5x, measured with two lanes on two cores).
    """
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        with handled():  # SIGTERM (the job stopping it) raises, so papermill shuts its kernel down
            _run_notebooks(run, values, notebooks, progress=False)
    except BaseException as err:
        report.send(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__)
        raise SystemExit(1) from None


def _finished(name: str, start: float, seconds: dict) -> None:
    """Record and log how long data set ``name``, started at ``perf_counter()`` ``start``, took."""
    seconds[name] = round(time.perf_counter() - start, 1)
    log.info("%s: done in %.0f s", name, seconds[name])


def _run_lanes(tasks: list, notebooks: Path, jobs: int, seconds: dict) -> None:
    """Run ``tasks`` (name, run, values) with ``jobs`` at once, each in a forked process.

    A failure stops the others (SIGTERM, then a kill after :data:`_STOP_SECONDS`)
    and is raised as ``RuntimeError("<name>: <error>")``; every lane has
    exited when this returns or raises.
    """
    context = multiprocessing.get_context("fork")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    waiting, running = list(tasks), {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                name, run, values = waiting.pop(0)
                receive, send = context.Pipe(duplex=False)
                lane = context.Process(target=_lane, args=(run, values, notebooks, send, threads), name=f"cellnb-{name}")
                log.info("%s: starting", name)
                lane.start()
                send.close()
                running[lane.sentinel] = (name, lane, receive, time.perf_counter())
            for sentinel in multiprocessing.connection.wait(list(running)):
                name, lane, receive, start = running.pop(sentinel)
                lane.join()
                if lane.exitcode != 0:
                    why = receive.recv() if receive.poll() else f"stopped with exit status {lane.exitcode}"
                    raise RuntimeError(f"{name}: {why}")
                _finished(name, start, seconds)
    finally:
        for _, lane, _, _ in running.values():
            lane.terminate()
        for _, lane, _, _ in running.values():
            lane.join(_STOP_SECONDS)
            if lane.is_alive():
                lane.kill()
                lane.join()


def _run_notebooks(run: RunDir, values: dict, notebooks: Path, progress: bool) -> None:
    run.executed.mkdir(parents=True, exist_ok=True)
    run.figures.mkdir(parents=True, exist_ok=True)
    with _static_views():
        for nb in NOTEBOOKS:
            log.info("%s: running %s", values["name"], nb)
            papermill.execute_notebook(
                str(notebooks / f"{nb}.ipynb"),
                str(run.executed / f"{nb}.ipynb"),
                parameters={k: values[k] for k in NOTEBOOK_PARAMETERS[nb]},
                kernel_name="python3",
                progress_bar=progress,
                cwd=str(notebooks.resolve()),
            )


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
    jobs: int | None = None,
) -> dict:
    """Run every notebook for each data set, then publish figures and README results.

    Parameters
    ----------
    profile : str
        Profile name (see :mod:`cellnb.profile`).
    runs, figures : path-like
        Parent of the run directories; folder of the figures.
    datasets : list of str, optional
        Names from :data:`DATASETS`; default all (C. elegans only if available).
    overrides : dict, optional
        Profile overrides passed to every notebook (checked before anything runs).
    notebooks : path-like
        Folder holding the ``.ipynb`` files.
    readme : path-like or None
        README whose results section is regenerated; None to skip.
    overwrite : bool
        Replace existing run directories; otherwise an existing one is an error.
    data_dir : path-like, optional
        Folder holding ``celegans-3dmms`` (default ``$CELLNB_DATA_DIR``).
    jobs : int, optional
        Data sets run at once, each in a process of its own (default
        :func:`default_jobs`).  With more than one, papermill's progress bars
        are off and each data set logs its notebooks as it goes; the numbers
        do not depend on it.  Use 1 on one GPU.

    Returns
    -------
    dict
        ``{"datasets": [names run], "skipped": {name: why}, "seconds": {name: s}}``.
    """
    names = list(DATASETS) if datasets is None else list(datasets)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise ValueError(f"unknown data sets {unknown}; choose from {', '.join(DATASETS)}")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}; pass 1 to run the data sets one after another")
    notebooks = Path(notebooks)
    missing = [nb for nb in NOTEBOOKS if not (notebooks / f"{nb}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"notebooks {missing} not found in {notebooks}; run from the repository root")
    settings = {name: merge(overrides or {}, DATASETS[name][1]) for name in names}
    for name in names:
        load_profile(profile, settings[name])  # every override checked before anything is touched
    if readme is not None:
        Path(readme).read_text()  # a missing README fails now, not after an hour of work
    skipped = {}
    if any(name in _NEEDS_CELEGANS for name in names):
        problem = celegans_problem(data_dir)
        if problem:
            for name in [n for n in names if n in _NEEDS_CELEGANS]:
                log.warning("skipping %s: %s", name, problem)
                skipped[name] = problem
                names.remove(name)
    runs, figures = Path(runs).resolve(), Path(figures).resolve()
    # Notebooks run with the notebooks folder as working directory: pass absolute paths.
    data_dir = data_dir or os.environ.get("CELLNB_DATA_DIR")
    data_dir = str(Path(data_dir).resolve()) if data_dir else ""
    existing = [n for n in names if (runs / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"run directories {[str(runs / n) for n in existing]} exist; pass --overwrite to redo them")
    runs.mkdir(parents=True, exist_ok=True)
    jobs = default_jobs(len(names)) if jobs is None else jobs
    seconds, backups, tasks = {}, {}, []
    for name in names:
        run = RunDir(runs / name)
        tasks.append((name, run, {
            "profile": profile,
            "run_dir": str(run.root),
            "figures_dir": str(run.figures),
            "name": name,
            "overrides": json.dumps(settings[name]),
            "source": DATASETS[name][0],
            "data_dir": data_dir,
            "overwrite": True,
        }))
    try:
        for name, run, _ in tasks:
            backups[name] = _move_aside(run.root)
        if jobs > 1 and len(tasks) > 1:
            _run_lanes(tasks, notebooks, jobs, seconds)
        else:
            for name, run, values in tasks:
                start = time.perf_counter()
                _run_notebooks(run, values, notebooks, progress)
                _finished(name, start, seconds)
    except BaseException:
        for name, backup in backups.items():
            _restore(runs / name, backup)
        raise
    for backup in backups.values():
        if backup is not None:
            shutil.rmtree(backup)
    figures.mkdir(parents=True, exist_ok=True)
    for name in names:
        _publish_figures(RunDir(runs / name), figures, name)
    if readme:
        update_readme(readme, runs=runs, figures=figures, names=names)
    return {"datasets": names, "skipped": skipped, "seconds": seconds}
