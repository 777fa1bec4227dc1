"""Named parameter profiles (``quick``, ``standard``, ``paper``) and overrides on top of them.

A profile is a JSON file in ``cellnb/profiles/`` with one object per section
(``data``, ``model``, ``train``, ``generate``, ``resample``, ``evaluate``, ``microscopy``) holding only the
parameters that differ from the section's defaults, which live in one place:
the fields of the section's frozen config dataclass (:data:`SECTIONS`), or, for
a profile that names another under ``"extends"``, from that profile's values.  Any
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
EXTENDS = "extends"  # the key of a profile file that names the profile it changes
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


def _read(name: str) -> dict:
    """The nested dicts of ``cellnb/profiles/<name>.json`` as written."""
    return json.loads(resources.files("cellnb").joinpath("profiles", f"{name}.json").read_text())


def _profile_values(name: str, *, _seen: tuple[str, ...] = ()) -> dict:
    """A profile's file as nested dicts, on top of the profile it ``"extends"`` (if it names one).

    ``{"extends": "quick", "model": {...}}`` holds only what differs from the
    ``quick`` profile: each value has one source.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    values = _read(name)
    base = values.pop(EXTENDS, None)
    if base is None:
        return values
    if base in _seen + (name,):
        raise ValueError(f"profiles extend each other in a loop: {' -> '.join(_seen + (name, base))}; "
                         f"remove one \"{EXTENDS}\"")
    return merge(_profile_values(base, _seen=_seen + (name,)), values, where=f"profile {name!r}")


def load_profile(name: str = "quick", overrides: dict | None = None) -> Profile:
    """The resolved parameters of a profile, with ``overrides`` applied and every value checked.

    Parameters
    ----------
    name : {"quick", "standard", "paper"}
        ``quick``: CPU, minutes, small grids (what CI and a newcomer run);
        ``standard``: ``quick`` with a decoder twice as wide (CPU, training
        1.7 times as long: 429 s against 253 s on the C. elegans divisions);
        ``paper``: GPU, the published settings.
    overrides : dict, optional
        Nested dict, e.g. ``{"train": {"epochs": 50}}``.

    Raises
    ------
    ValueError
        Unknown profile, section or parameter, or a value of the wrong type or range.
    """
    values = merge(_profile_values(name), overrides or {}, where=f"profile {name!r}")
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown profile section(s) {unknown}; known: {', '.join(SECTIONS)}")
    return Profile(name=name, **{s: cls.from_dict(values.get(s, {})) for s, cls in SECTIONS.items()})
