"""Ctrl-C and SIGTERM on the command line: raised as ``KeyboardInterrupt``, and never lost.

Inside :func:`handled` (what ``cellnb``'s commands run in) both signals raise
a ``KeyboardInterrupt`` (SIGTERM a :class:`Terminated`), so that every
``finally`` cleans up.  Such an exception can be swallowed: Python prints and
drops one raised in a finaliser or weakref callback, and compiled code that
calls back into Python (torch's dynamo guards) may clear it.  So each signal
is also recorded, and

- the long loops (training steps, fitting iterations, generated sequences)
  call :func:`check_interrupt` at each step, which raises a recorded signal
  that was swallowed;
- one dropped in a finaliser is sent again a moment later, unless a loop has
  raised it meanwhile.

Outside :func:`handled` (a notebook, a script) nothing is recorded and
:func:`check_interrupt` does nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

__all__ = ["Terminated", "check_interrupt", "handled"]

_RESEND_DELAY = 0.01  # seconds before a signal dropped in a finaliser is sent again
_pending: list[int] = []  # signals received inside handled() whose exception may have been swallowed


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` cleans up."""


def _raise(signum: int):
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, frame):
    _pending.append(signum)
    _raise(signum)


def check_interrupt() -> None:
    """Raise a Ctrl-C or SIGTERM that arrived inside :func:`handled` but whose exception was swallowed.

    Called between the steps of long loops.  Code that runs there is not
    unwinding from the signal (that would have skipped it), so a recorded
    signal means its exception was lost.
    """
    if _pending:
        signum = _pending[-1]
        _pending.clear()
        _raise(signum)


def _resend(signum: int) -> None:
    if _pending:  # not raised by a loop's check_interrupt meanwhile
        _pending.clear()
        os.kill(os.getpid(), signum)


def _on_unraisable(hook_args) -> None:
    """A signal's exception dropped in a finaliser or weakref callback: sent again instead of printed.

    Sent from another thread a moment later, so that the handler runs after
    this hook has returned (raised here, it would be dropped again); should it
    land in a finaliser again, so does this.
    """
    err = hook_args.exc_value
    if isinstance(err, KeyboardInterrupt):  # Terminated is one
        signum = signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT
        threading.Timer(_RESEND_DELAY, _resend, (signum,)).start()
        return
    sys.__unraisablehook__(hook_args)


@contextmanager
def handled():
    """Ctrl-C and SIGTERM raise (and are recorded) inside the block; the previous handlers come back after."""
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    previous_hook, sys.unraisablehook = sys.unraisablehook, _on_unraisable
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook
        _pending.clear()
