"""Ctrl-C at safe points.

A ``KeyboardInterrupt`` raised while a compiled step runs lands wherever Python code happens to
run at that moment: inside a host callback (CLEVR-Robot's and Meta-World's C-engine steps run
through ``jax.pure_callback``), where XLA turns it into a runtime error with a long traceback, or
while MuJoCo's threads still write into the arrays being unwound. :func:`deferred` installs a
SIGINT handler that only records the request; long loops call :func:`check` where stopping is
safe (after a checkpoint), which raises ``KeyboardInterrupt`` there. A second Ctrl-C stops the
process at once with exit status 130: every file the pipeline writes is written to a temporary
name and renamed, so what was finished is kept and a rerun resumes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

_requested = threading.Event()


def requested() -> bool:
    """Whether Ctrl-C was pressed inside :func:`deferred` and not yet acted on."""
    return _requested.is_set()


def check() -> None:
    """Raises ``KeyboardInterrupt`` if Ctrl-C was pressed inside :func:`deferred` (a safe point)."""
    if _requested.is_set():
        _requested.clear()
        raise KeyboardInterrupt


def _handler(signum, frame) -> None:  # noqa: ARG001 - the signal module's signature
    if _requested.is_set():
        print("\ninterrupted again: stopping now; rerun the same command to resume", file=sys.stderr, flush=True)
        os._exit(130)  # every output is written atomically; nothing half-written is left behind
    _requested.set()
    print("\ninterrupt: stopping after the current step's checkpoint (Ctrl-C again to stop at once)",
          file=sys.stderr, flush=True)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block, Ctrl-C takes effect at the next :func:`check` (or at the block's end),
    never inside a compiled step. Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    previous = signal.signal(signal.SIGINT, _handler)
    try:
        yield
        check()  # a request that came after the last safe point
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
