"""Test helper (fault injection, never part of the package): `python tests/kill_run.py N run <overrides>`
runs the real `fastdrop` CLI with a trainer callback that SIGKILLs the process right after epoch N's
checkpoint is written, as a cluster's OOM killer or a power cut would."""
import os
import signal
import sys

from fastdrop.run.hooks import CALLBACKS
from fastdrop.cli import main

KILL_AFTER = int(sys.argv.pop(1))


def kill_after(t, epoch: int, rec: dict) -> None:
    if epoch == KILL_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)


CALLBACKS.append(kill_after)
sys.exit(main())
