"""The on-disk layout of a run directory (the only module that knows it).

::

    runs/<name>/
      config.json       resolved parameters of every step that ran
      data/             SDF data set: one <sequence>.h5 per sequence
      checkpoints/      latest.pt and epoch snapshots
      generated/        synthetic sequences (h5 / tif / meshes / gif)
      executed/         the executed notebooks
      metrics.json      numbers each step reports, one section per step
"""

from __future__ import annotations

from pathlib import Path

from cellnb.io import read_json, write_json

__all__ = ["RunDir"]


class RunDir:
    """A run directory; folders are created when first written to.

    Parameters
    ----------
    root : path-like
        The run directory, e.g. ``runs/dividing``.
    """

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
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def generated(self) -> Path:
        return self.root / "generated"

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
    def latest_checkpoint(self) -> Path:
        return self.checkpoints / "latest.pt"

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch{epoch:05d}.pt"

    def data_files(self) -> list[Path]:
        """The SDF files of the run's data set, sorted by name.

        Raises
        ------
        FileNotFoundError
            If there are none, saying which step makes them.
        """
        files = sorted(self.data.glob("*.h5"))
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

    def read_metrics(self) -> dict:
        return read_json(self.metrics_path)

    def update_metrics(self, section: str, values: dict) -> dict:
        """Replace one section of ``metrics.json`` (atomically) and return the whole object."""
        return self._update(self.metrics_path, section, values)

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
