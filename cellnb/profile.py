"""Named parameter profiles (``quick``, ``paper``) and overrides on top of them.

A profile is a JSON file in ``cellnb/profiles/`` with one object per section
(``data``, ``model``, ``train``, ``generate``, ``resample``, ``evaluate``, ``microscopy``) holding only the
parameters that differ from the section's defaults, which live in one place:
the fields of the section's frozen config dataclass (:data:`SECTIONS`).  Any
parameter can be overridden with a nested dict of the same shape; unknown
sections or keys and values of the wrong type are one-line errors naming the
key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from cellnb.config import merge, profile_names
from cellnb.evaluate import EvaluateConfig
from cellnb.generate import GenerateConfig
from cellnb.model import DecoderConfig
from cellnb.prepare import DataConfig
from cellnb.reconstruct import ResampleConfig
from cellnb.synthesis import MicroscopyConfig
from cellnb.train import TrainConfig

__all__ = ["PROFILES", "SECTIONS", "Profile", "load_profile", "parse_overrides"]

PROFILES = profile_names()
SECTIONS = {
    "data": DataConfig,
    "model": DecoderConfig,
    "train": TrainConfig,
    "generate": GenerateConfig,
    "resample": ResampleConfig,
    "evaluate": EvaluateConfig,
    "microscopy": MicroscopyConfig,
}


@dataclass(frozen=True)
class Profile:
    """The resolved parameters of every step: one frozen config per section."""

    name: str
    data: DataConfig
    model: DecoderConfig
    train: TrainConfig
    generate: GenerateConfig
    resample: ResampleConfig
    evaluate: EvaluateConfig
    microscopy: MicroscopyConfig

    def to_dict(self) -> dict:
        """``{"profile": name, section: {...}, ...}``: what a run records in ``config.json``."""
        return {"profile": self.name, **{s: getattr(self, s).to_dict() for s in SECTIONS}}


def parse_overrides(text: str) -> dict:
    """Overrides given as JSON text (CLI ``--set``, the notebooks' ``overrides``), checked to be an object."""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"overrides are not valid JSON ({err}); e.g. '{{\"train\": {{\"epochs\": 5}}}}'") from None
    if not isinstance(value, dict):
        raise ValueError(f"overrides must be a JSON object, e.g. '{{\"train\": {{\"epochs\": 5}}}}', got {text!r}")
    return value


def load_profile(name: str = "quick", overrides: dict | None = None) -> Profile:
    """The resolved parameters of a profile, with ``overrides`` applied and every value checked.

    Parameters
    ----------
    name : {"quick", "paper"}
        ``quick``: CPU, minutes, small grids (what CI and a newcomer run);
        ``paper``: GPU, the published settings.
    overrides : dict, optional
        Nested dict, e.g. ``{"train": {"epochs": 50}}``.

    Raises
    ------
    ValueError
        Unknown profile, section or parameter, or a value of the wrong type or range.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    text = resources.files("cellnb").joinpath("profiles", f"{name}.json").read_text()
    values = merge(json.loads(text), overrides or {}, where=f"profile {name!r}")
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown profile section(s) {unknown}; known: {', '.join(SECTIONS)}")
    return Profile(name=name, **{s: cls.from_dict(values.get(s, {})) for s, cls in SECTIONS.items()})
