"""Exceptions that carry a message for the user (the CLI prints them as one line)."""

from __future__ import annotations

__all__ = ["Interrupted"]


class Interrupted(KeyboardInterrupt):
    """A long step stopped by Ctrl-C or SIGTERM; the message says what is intact and how to go on.

    A ``KeyboardInterrupt`` so that ``except Exception`` never swallows it.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
