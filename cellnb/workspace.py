"""The on-disk layouts of cellnb's folders (the only module that names their files).

A run directory::

    runs/<name>/
      config.json       resolved parameters of every step that ran
      metrics.json      numbers each step reports, one section per step
      train_log.csv     one row per training epoch
      latent.npz        the latent model the evaluation recommends (what generate draws from)
      data/             SDF data set (a :class:`DataDir`)
      checkpoints/      latest.pt and epoch snapshots
      generated/        one :class:`GeneratedDir` per generated set (e.g. gaussian/, export/)
      fitted/           one :class:`FittedDir` per set of unseen sequences codes were fitted to (``cellnb fit``)
      descriptors/      descriptor tables (CSV) of real and generated sequences
      user_data/        notebook 01: a CTC folder of the C. elegans data and its preparation
      microscopy/snr<S>/ synthetic microscopy of generated cells, CTC layout (cellnb.synthesis)
      figures/          figures of the last ``cellnb run`` of this data set
      executed/         the executed notebooks
      .lock             held while a cellnb process writes into the run

A data set folder (``cellnb prepare --out``)::

    <data>/
      <sequence>.h5     one training SDF sequence each (official layout, see cellnb.io)
      heldout/<s>.h5    the sequences held out from training
      dataset.json      source, parameters, split and per-sequence summary

A generated set::

    <out>/
      summary.json               parameters, per-sequence timings and component counts
      codes.npy                  the codes, (n, L) float32, row k = sequence k
      latent.npz                 the latent model they were drawn from
      sdf/<name>.h5              SDF in the official HDF5 layout       (format "h5")
      masks/<name>/mask000.tif   label masks, Cell Tracking Challenge  (format "tiff")
      meshes/<name>/frame000.ply zero level set per frame            (format "mesh")
      gif/<name>.gif             3D render over time                   (format "gif")
      mp4/<name>.mp4             the same with a time stamp and a scale bar (format "mp4")
      ctc/field000/01_GT/        SEG and TRA label frames, man_track.txt (format "ctc", a few cells a field)

A fitted set (``cellnb fit``: codes fitted to sequences the model never saw)::

    <run>/fitted/<name>/
      codes.npz                  names (n,) and codes (n, L) float32: what `generate --from-codes` reads
      table.csv                  per sequence: name, Dice, component counts, log-likelihood, nearest training code
      summary.json               run, data, point rule, latent model, the table and the scales to read it by
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from cellnb.io import read_json, write_json

__all__ = ["RunDir", "DataDir", "GeneratedDir", "FittedDir", "RunInUse"]


class RunInUse(RuntimeError):
    """Another cellnb process holds the run directory's lock."""


class _Folder:
    """A folder with a summary file; ``root`` is its path (subclasses name the rest)."""

    SUMMARY = "summary.json"

    def __init__(self, root):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    @property
    def summary_path(self) -> Path:
        return self.root / self.SUMMARY

    def read_summary(self) -> dict:
        return read_json(self.summary_path)


class DataDir(_Folder):
    """A prepared SDF data set folder.

    Parameters
    ----------
    root : path-like
    """

    SUMMARY = "dataset.json"

    @property
    def heldout(self) -> Path:
        """Sequences held out from training (realism is judged on them)."""
        return self.root / "heldout"

    def sequence_path(self, name: str) -> Path:
        return self.root / f"{name}.h5"

    def heldout_path(self, name: str) -> Path:
        return self.heldout / f"{name}.h5"

    def files(self) -> list[Path]:
        """The training SDF files, sorted by name (may be empty)."""
        return sorted(self.root.glob("*.h5"))

    def heldout_files(self) -> list[Path]:
        """The held-out SDF files, sorted by name (may be empty)."""
        return sorted(self.heldout.glob("*.h5"))

    def family(self, default: str) -> str:
        """The cell family its sequences record (``meta.family``), else ``default``."""
        rows = self.read_summary().get("sequences") or [{}]
        return (rows[0].get("meta") or {}).get("family", default)


class GeneratedDir(_Folder):
    """A folder of generated sequences (``cellnb generate --out``).

    Parameters
    ----------
    root : path-like
    """

    CODES = "codes.npy"
    LATENT = "latent.npz"

    @property
    def codes_path(self) -> Path:
        return self.root / self.CODES

    @property
    def latent_model_path(self) -> Path:
        """The latent model the set was drawn from (:class:`cellnb.latent.LatentModel`)."""
        return self.root / self.LATENT

    @property
    def sdf(self) -> Path:
        return self.root / "sdf"

    def sdf_path(self, name: str) -> Path:
        return self.sdf / f"{name}.h5"

    def masks(self, name: str) -> Path:
        return self.root / "masks" / name

    def mesh_path(self, name: str, frame: int) -> Path:
        return self.root / "meshes" / name / f"frame{frame:03d}.ply"

    def gif_path(self, name: str) -> Path:
        return self.root / "gif" / f"{name}.gif"

    def mp4_path(self, name: str) -> Path:
        return self.root / "mp4" / f"{name}.mp4"

    def ctc_field(self, index: int) -> Path:
        """A Cell Tracking Challenge ground-truth folder of a few generated cells (format "ctc")."""
        return self.root / "ctc" / f"field{index:03d}"

    def sdf_files(self) -> list[Path]:
        return sorted(self.sdf.glob("*.h5"))


class FittedDir(_Folder):
    """Codes fitted to sequences the model never saw (``cellnb fit --out``).

    Parameters
    ----------
    root : path-like
    """

    CODES = "codes.npz"
    TABLE = "table.csv"

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def codes_path(self) -> Path:
        return self.root / self.CODES

    @property
    def table_path(self) -> Path:
        return self.root / self.TABLE


class RunDir:
    """A run directory; folders are created when first written to.

    Parameters
    ----------
    root : path-like
        The run directory, e.g. ``runs/dividing``.
    """

    EXPORT = "export"  # generated/ sub-folder of the one sequence notebook 03 exports in every format

    def __init__(self, root):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def data_dir(self) -> DataDir:
        return DataDir(self.data)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def generated(self) -> Path:
        return self.root / "generated"

    def generated_set(self, name: str) -> GeneratedDir:
        """The generated set ``generated/<name>`` (a strategy, or :data:`EXPORT`)."""
        return GeneratedDir(self.generated / name)

    def generated_sets(self) -> list[str]:
        """Names of the generated sets that hold SDF files, sorted."""
        if not self.generated.is_dir():
            return []
        return sorted(p.name for p in self.generated.iterdir() if GeneratedDir(p).sdf_files())

    def sampled_sets(self) -> list[str]:
        """The generated sets drawn from a latent model: not the export, not those started from given codes."""
        def sampled(name: str) -> bool:
            folder = self.generated_set(name)
            return name != self.EXPORT and not (folder.summary_path.is_file() and folder.read_summary().get("from_codes"))
        return [name for name in self.generated_sets() if sampled(name)]

    @property
    def fitted(self) -> Path:
        return self.root / "fitted"

    def fitted_set(self, name: str) -> FittedDir:
        """Codes fitted to the sequences of one data folder, ``fitted/<name>`` (``cellnb fit``)."""
        return FittedDir(self.fitted / name)

    @property
    def descriptors(self) -> Path:
        return self.root / "descriptors"

    def descriptor_table(self, name: str) -> Path:
        """CSV of the descriptors of ``real`` or of a generated set."""
        return self.descriptors / f"{name}.csv"

    @property
    def user_data(self) -> Path:
        """Notebook 01's example of a user's own tracked data (a CTC folder) and what prepare makes of it."""
        return self.root / "user_data"

    def microscopy(self, snr: float) -> Path:
        """The synthetic microscopy data set (CTC layout) of notebook 06 at one SNR."""
        return self.root / "microscopy" / f"snr{snr:g}"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def executed(self) -> Path:
        return self.root / "executed"

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.json"

    @property
    def latent_model(self) -> Path:
        """The latent model the run's evaluation recommends: what ``generate`` draws from by default."""
        return self.root / "latent.npz"

    @property
    def train_log(self) -> Path:
        return self.root / "train_log.csv"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    @property
    def latest_checkpoint(self) -> Path:
        return self.checkpoints / "latest.pt"

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch{epoch:05d}.pt"

    def training_data(self) -> Path:
        """The data folder the run's model was trained on (``config.json``), else ``data/``.

        A folder inside the run is recorded relative to it, so a run directory
        can be moved or copied and still finds its data.
        """
        recorded = self.read_config().get("train", {}).get("data")
        return self.root / recorded if recorded else self.data

    def record_path(self, path) -> str:
        """How ``config.json`` records ``path``: relative to the run when inside it, else absolute."""
        path = Path(path).resolve()
        try:
            return str(path.relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def data_files(self) -> list[Path]:
        """The SDF files of the run's data set, sorted by name.

        Raises
        ------
        FileNotFoundError
            If there are none, saying which step makes them.
        """
        files = self.data_dir.files()
        if not files:
            raise FileNotFoundError(
                f"no SDF data set in {self.data}; run notebook 01_data_preparation "
                f"or `cellnb prepare --out {self.data}` first"
            )
        return files

    def require_checkpoint(self) -> Path:
        """Path of the latest checkpoint, or a clear error naming the step that makes it."""
        if not self.latest_checkpoint.is_file():
            raise FileNotFoundError(
                f"no trained model in {self.root} (missing {self.latest_checkpoint}); "
                f"run notebook 02_training or `cellnb train --run {self.root}` first"
            )
        return self.latest_checkpoint

    @contextlib.contextmanager
    def lock(self, step: str):
        """Hold the run's lock for the ``with`` block; refuse if another process holds it.

        An advisory ``fcntl`` lock on ``.lock``: released by the OS when the
        process ends, however it ends, so a killed run never leaves the
        directory locked.

        Raises
        ------
        RunInUse
            If another process is writing into this run (its step and pid are named).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                raise RunInUse(
                    f"run {self.root} is in use by {holder}; wait for it to finish or use another --run"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"cellnb {step} (pid {os.getpid()})".encode(), 0)
            try:
                yield self
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def read_metrics(self) -> dict:
        return read_json(self.metrics_path)

    def update_metrics(self, section: str, values: dict) -> dict:
        """Replace one section of ``metrics.json`` (atomically) and return the whole object."""
        return self._update(self.metrics_path, section, values)

    def drop_metrics(self, sections) -> None:
        """Remove sections of ``metrics.json`` that no longer describe the run (e.g. after retraining)."""
        content = self.read_metrics()
        if any(s in content for s in sections):
            write_json(self.metrics_path, {k: v for k, v in content.items() if k not in sections}, overwrite=True)

    def read_config(self) -> dict:
        return read_json(self.config_path)

    def update_config(self, section: str, values: dict) -> dict:
        """Record the resolved parameters of one step in ``config.json``."""
        return self._update(self.config_path, section, values)

    @staticmethod
    def _update(path: Path, section: str, values: dict) -> dict:
        content = read_json(path)
        content[section] = values
        write_json(path, content, overwrite=True)
        return content
