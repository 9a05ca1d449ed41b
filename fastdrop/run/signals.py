"""Stopping a run from outside: SIGTERM (a cluster's time limit, `kill`) unwinds like Ctrl-C.

Both raise a KeyboardInterrupt (for SIGTERM the subclass `Stopped`, which carries the signal), so the
trainer writes the row with status failed on the way out (the last checkpoint is already on disk) and
the command line prints one line with the resume command and exits 128 + the signal number.
"""
from __future__ import annotations

import signal
import threading


class Stopped(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises `Stopped` in the main thread (signal handlers can only be set there)."""
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise Stopped(signum)

        signal.signal(signal.SIGTERM, handler)
