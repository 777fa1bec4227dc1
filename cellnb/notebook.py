"""Checking a notebook's papermill parameters like CLI options.

papermill injects parameters as plain assignments after the tagged
``parameters`` cell, and from its command line (``-p overwrite no``) they
arrive as strings.  :func:`check_parameters` types them by the annotations of
the parameters cell (``overwrite: bool = False``), so ``"no"`` is False and
``"five"`` for an int is a one-line error naming the parameter, instead of a
string that reads as true.
"""

from __future__ import annotations

from cellnb.config import coerce

__all__ = ["check_parameters"]

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


def _from_text(value, hint):
    """A string from papermill's command line read as the annotated bool, int or float."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if hint is bool and text in _TRUE + _FALSE:
        return text in _TRUE
    if hint in (int, float):
        try:
            return hint(value)
        except ValueError:
            return value
    return value


def check_parameters(namespace: dict) -> dict:
    """Type and check the parameters of a notebook, in place; returns them.

    Parameters
    ----------
    namespace : dict
        The notebook's ``globals()``; its ``__annotations__`` (from the
        parameters cell) name the parameters and their types.

    Raises
    ------
    ValueError
        A parameter whose value does not fit its type, e.g.
        ``parameter overwrite must be true or false, got 'maybe'``.
    """
    hints = dict(namespace.get("__annotations__", {}))
    checked = {}
    for name, hint in hints.items():
        checked[name] = coerce(_from_text(namespace[name], hint), hint, f"parameter {name}")
    namespace.update(checked)
    return checked
