"""What one command's parts tell each other: the Hydra callbacks (which Hydra builds from the config, so
they cannot be handed an object) and the command around them, in the same process. One `Session` per
command, started by `fastdrop.cli.hydra.hydra_main`; nothing else is shared."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Session:
    run_top: Path | None = None      # the highest directory a single run is about to create for itself
    results_top: Path | None = None  # ... and for its results (kept if anything was written there)
    sweep_exit: int = 0              # exit code of the last sweep
    sweep_dir: Path | None = None    # the sweep running now, and when it started
    sweep_started: float = 0.0
    task_raised: bool = False        # the task itself raised (a bug): its traceback, not one line


_current = Session()


def start() -> Session:
    """A fresh session for the command that starts now."""
    global _current
    _current = Session()
    return _current


def current() -> Session:
    return _current
