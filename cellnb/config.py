"""Typed, frozen configuration sections: the one place each parameter's default lives.

Every step's parameters are a frozen dataclass deriving from :class:`Config`
(``DataConfig`` in :mod:`cellnb.prepare`, ``DecoderConfig`` in
:mod:`cellnb.model`, ``TrainConfig`` in :mod:`cellnb.train`, ...).  Its field
defaults are the documented defaults; a profile (:mod:`cellnb.profile`) holds
only what differs from them.  Values are checked against the field's type
annotation when the section is built, so ``{"epochs": "five"}`` is a one-line
``ValueError`` naming the key and the type it needs, never a crash later.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from importlib import resources

__all__ = ["Config", "coerce", "merge", "profile_names"]


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if hint is type(None):
        return "null"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def coerce(value, hint, key: str):
    """``value`` converted to the annotated type ``hint``, or a ValueError naming ``key``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return coerce(value, arg, key)
            except ValueError:
                continue
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            item = typing.get_args(hint)[0]
            return tuple(coerce(v, item, key) for v in value)
    elif hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ValueError(f"{key} must be {_type_name(hint)}, got {value!r}")


class Config:
    """Base of the frozen config dataclasses: type checks, dict round trip, validation hook.

    Subclasses are ``@dataclass(frozen=True)`` with annotated fields and
    defaults, and may define ``validate()`` for checks beyond the types
    (ranges, choices); it runs after every construction.
    """

    SECTION = "config"  # name of the section in profiles and messages

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = coerce(getattr(self, f.name), hints[f.name], f"{self.SECTION}.{f.name}")
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Checks beyond the types; raise ``ValueError`` naming the key and the fix."""

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        """Build from a dict, refusing keys the section does not know."""
        if not isinstance(d, dict):
            raise ValueError(f"{cls.SECTION} must be a JSON object of parameters, got {d!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown {cls.SECTION} parameter(s) {unknown}; known: {', '.join(known)}")
        return cls(**d)

    def replace(self, **changes):
        """A copy with some fields changed (checked like any construction)."""
        return self.from_dict({**self.to_dict(), **changes})


def merge(base: dict, overrides: dict, *, where: str = "config") -> dict:
    """Deep-merge ``overrides`` into a copy of ``base``; nested dicts merge, other values replace."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = merge(out[key], value, where=f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def profile_names() -> tuple[str, ...]:
    """Names of the profiles shipped in ``cellnb/profiles/`` (one JSON file each), sorted."""
    folder = resources.files("cellnb").joinpath("profiles")
    return tuple(sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json")))
