"""Files fastdrop writes: the names of the run directory's and results folder's files, spelt once, and
atomic writes (temp file + rename), so concurrent runs of a sweep never corrupt each other and a crash
never leaves half a file. A write that fails for lack of space or permission raises `WriteError`: one
line naming the file, the bytes it needed where known and the free space there (the CLI prints it and
exits 4)."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch


# Names in a run directory (<hydra.run.dir>) and in a results folder (<results_dir>).
RUNS = "runs"                      # <results_dir>/runs/<run_id>.json: one result row per run
CKPT = "checkpoint.pt"             # the run's last whole checkpoint (rewritten after every epoch)
WEIGHTS = "weights.pt"             # a completed run's final weights under checkpoint=last
LOCK = ".fastdrop.lock"            # one process per run directory (fastdrop.run.lock)
JOB_FILE = "fastdrop-job.json"     # a sweep job's overrides and outcome (fastdrop.cli.callbacks)
METRICS_CSV = "metrics.csv"        # logger=csv
HYDRA_OVERRIDES = ".hydra/overrides.yaml"  # what Hydra keeps of the command line


def epoch_checkpoint(epoch: int) -> str:
    """The copy of epoch `epoch`'s checkpoint that checkpoint=every keeps."""
    return f"checkpoint-epoch{epoch}.pt"


def human_bytes(n: float) -> str:
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"]:
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024


# Why a write can fail that the user, not fastdrop, must mend: no space (or quota), no permission, read-only.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


class WriteError(OSError):
    """A write fastdrop makes failed for lack of space or permission; str() is the one line to print."""

    def __str__(self) -> str:
        return self.strerror


def write_error(exc: BaseException, path: str | Path, needed: int | None = None) -> WriteError | None:
    """`exc` as a WriteError about `path` when it (or what it was raised from: torch.save turns a failed
    write into a RuntimeError) is an OSError of WRITE_ERRNOS; None otherwise."""
    seen = exc
    while seen is not None and not (isinstance(seen, OSError) and seen.errno in WRITE_ERRNOS):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    if isinstance(seen, WriteError):
        return seen
    where = Path(path).resolve()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = f"{human_bytes(shutil.disk_usage(where).free)} free in {where}"
    except OSError:
        free = f"free space in {where} unknown"
    need = f"it needs about {human_bytes(needed)}, " if needed else ""
    return WriteError(seen.errno, f"cannot write {path}: {seen.strerror or os.strerror(seen.errno)} ({need}{free})")


@contextmanager
def writing(path: str | Path, needed: int | None = None):
    """Turn a failed write to `path` (no space, no permission) into a WriteError; other errors pass."""
    try:
        yield
    except Exception as e:
        err = write_error(e, path, needed)
        if err is None:
            raise
        raise err from None


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: Path, write, needed: int | None = None) -> None:
    """Write through `write(binary_file)` to a temp file beside `path`, then rename: readers see the old
    file or the new one, never half of one (a full disk leaves the old one whole, and raises WriteError
    with the `needed` bytes). The file gets the mode a plain open() would (0666 minus the umask), not
    mkstemp's 0600, so files in a shared data folder stay readable by the others."""
    with writing(path, needed):
        _atomic_write(Path(path), write)


def _atomic_write(path: Path, write) -> None:
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
    data = text.encode()
    atomic_write(path, lambda f: f.write(data), len(data))


def _tensor_bytes(obj) -> int:
    """The bytes of the tensors in `obj` (dicts, lists, tuples): about what torch.save writes."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f), _tensor_bytes(obj) or None)


def remove_empty_dirs(*dirs: Path) -> None:
    """Remove each directory that exists and is empty (in the order given: innermost first)."""
    for d in dirs:
        try:
            Path(d).rmdir()
        except OSError:
            pass  # missing, or not empty
