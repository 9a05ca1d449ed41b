"""One flat JSON row per run under `<results_dir>/runs/`, written atomically (temp file + rename), so
concurrent runs of a sweep never corrupt each other and a crash never leaves half a row."""
from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from pathlib import Path

import torch


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


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Write through `write(binary_file)` to a temp file beside `path`, then rename: readers see the old
    file or the new one, never half of one. The file gets the mode a plain open() would (0666 minus the
    umask), not mkstemp's 0600, so files in a shared data folder stay readable by the others."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def remove_empty_dirs(*dirs: Path) -> None:
    """Remove each directory that exists and is empty (in the order given: innermost first)."""
    for d in dirs:
        try:
            Path(d).rmdir()
        except OSError:
            pass  # missing, or not empty


def write_row(results_dir: str | Path, row: dict) -> Path:
    path = Path(results_dir) / "runs" / f"{row['run_id']}.json"
    atomic_write_text(path, json.dumps(_clean(row), indent=1, allow_nan=False) + "\n")
    return path
