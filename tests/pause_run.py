"""Test helper (never part of the package): `python tests/pause_run.py SECONDS run <overrides>` runs the
real `fastdrop` CLI with a trainer callback that sleeps SECONDS after each epoch, so that a run is
surely still going while a test starts another process on its directory."""
import sys
import time

from fastdrop.run.hooks import CALLBACKS
from fastdrop.cli import main

PAUSE = float(sys.argv.pop(1))
CALLBACKS.append(lambda t, epoch, rec: time.sleep(PAUSE))
sys.exit(main())
