"""Ctrl-C that is never lost.

Python turns Ctrl-C into ``KeyboardInterrupt`` wherever the main thread happens to be, and a
library that wraps some step in a bare ``except:`` swallows it there: the run then goes on as if
nothing was pressed (seen once in about ten tries, at start-up and as the first loader workers
started). The ``transtailor`` command installs :func:`install`: a Ctrl-C also leaves a flag, and
:func:`check`, called at every step of every loop (:func:`transtailor.progress.progress`), raises
``KeyboardInterrupt`` again until the command has stopped.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_pending = False


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through :func:`_handler` (main thread only; a no-op elsewhere)."""
    global _pending
    _pending = False
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since :func:`install`, even if it was swallowed."""
    if _pending:
        raise KeyboardInterrupt
