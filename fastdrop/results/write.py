"""One flat JSON row per run under `<results_dir>/runs/`, written atomically (fastdrop.files), with the
commit of the code that wrote it."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

from ..files import RUNS, atomic_write_text


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def _clean(o):
    # JSON has no NaN/inf: store them as null rather than emitting invalid JSON.
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def write_row(results_dir: str | Path, row: dict) -> Path:
    path = Path(results_dir) / RUNS / f"{row['run_id']}.json"
    atomic_write_text(path, json.dumps(_clean(row), indent=1, allow_nan=False) + "\n")
    return path
