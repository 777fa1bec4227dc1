"""Named parameter profiles (``quick``, ``paper``) and overrides on top of them.

A profile is a JSON file in ``cellnb/profiles/`` with one section per step
(``data``, ``model``, ``train``, ``generate``).  Any parameter can
be overridden with a nested dict of the same shape; unknown keys are an error,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import json
from dataclasses import fields
from importlib import resources

__all__ = ["PROFILES", "load_profile", "merge", "dataclass_from_dict"]

PROFILES = ("quick", "paper")


def load_profile(name: str = "quick", overrides: dict | None = None) -> dict:
    """The resolved parameters of a profile, with ``overrides`` applied.

    Parameters
    ----------
    name : {"quick", "paper"}
        ``quick``: CPU, minutes, small grids (what CI and a newcomer run);
        ``paper``: GPU, the published settings.
    overrides : dict, optional
        Nested dict, e.g. ``{"train": {"epochs": 50}}``.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    text = resources.files("cellnb").joinpath("profiles", f"{name}.json").read_text()
    return merge(json.loads(text), overrides or {}, where=f"profile {name!r}")


def merge(base: dict, overrides: dict, *, where: str = "config") -> dict:
    """Deep-merge ``overrides`` into a copy of ``base``; keys must already exist in ``base``."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if key not in out:
            raise ValueError(f"unknown parameter {key!r} in {where}; known: {', '.join(sorted(out))}")
        if isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = merge(out[key], value, where=f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def dataclass_from_dict(cls, d: dict, *, what: str):
    """Build a config dataclass from a dict, refusing keys it does not know (named ``what`` in the error)."""
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; known: {sorted(known)}")
    return cls(**d)
