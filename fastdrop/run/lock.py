"""One process per run directory: an advisory lock (`fcntl.flock`) on `<run dir>/.fastdrop.lock`, taken
before anything in the directory is written and held until the run ends. The kernel drops it when the
process ends however it ends (SIGKILL, OOM, a node's crash on NFS v4 once its lease expires), so a
killed run never leaves a stale lock; the file itself stays (removing it would let two processes lock
two different files of one name). After locking, the holder writes `pid <pid> on <host>` into it, which
the refusal quotes. Within one process the lock is re-entrant (the CLI takes it before Hydra writes
.hydra/, the Trainer takes it again). Under torchrun the ranks of one run share the directory: rank 0
alone takes the lock and tells the other ranks, so every rank of a refused run stops before writing.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
from pathlib import Path

from ..errors import user_error
from ..files import LOCK

_HELD: dict[Path, list] = {}  # resolved run dir -> [fd, how many holders in this process]


@user_error
class RunDirBusy(RuntimeError):
    """Another process holds the run directory's lock (a user error: exit 2, nothing written)."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return f"process {text.removeprefix('pid ')}" if text else "another process"


def acquire(run_dir: str | Path) -> Path:
    """Lock `run_dir` (created if missing) for this process, or raise RunDirBusy naming the holder."""
    key = Path(run_dir).resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        return key
    key.mkdir(parents=True, exist_ok=True)
    path = key / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # no flock here (Lustre noflock)
            logging.getLogger("fastdrop").warning("run directory %s cannot be locked (%s): nothing stops a second "
                                                  "process on it", key, e.strerror)
            return key
        raise RunDirBusy(f"run directory {key} is in use by {_holder(path)} (lock {path}); wait for that run "
                         "to end, or pick another hydra.run.dir") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
    _HELD[key] = [fd, 1]
    return key


def release(run_dir: str | Path) -> None:
    """Undo one `acquire` of this process; the last one unlocks."""
    key = Path(run_dir).resolve()
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        del _HELD[key]
        os.close(held[0])  # closing the descriptor drops the flock


def acquire_for_world(run_dir: str | Path, world) -> bool:
    """`acquire` on rank 0 of `world` (a fastdrop.run.distributed.World); every rank raises RunDirBusy when
    rank 0 could not lock (a collective: all ranks call it). True where this process took the lock."""
    refused = None
    if world.is_main:
        try:
            acquire(run_dir)
        except RunDirBusy as e:
            refused = str(e)
    refused = world.gather(refused)[0]
    if refused:
        raise RunDirBusy(refused)
    return world.is_main
