"""The command line: `main` (the commands and their usage), `hydra` (run and bench as Hydra apps, one
error line), `train` (the task of `fastdrop run`), `callbacks` (Hydra's pre-run checks and the sweep
summary), `torchrun` (one run directory for all ranks), `session` (what those parts tell each other)."""
from .main import main

__all__ = ["main"]
