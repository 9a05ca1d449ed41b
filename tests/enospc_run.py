"""Test helper (fault injection, never part of the package): `python tests/enospc_run.py N run <overrides>`
runs the real `fastdrop` CLI with a disk that fills up while the N-th torch.save of fastdrop.files
(the checkpoint of epoch N) writes: after 4 KiB the file's writes fail with ENOSPC, as on a full disk."""
import errno
import sys

from fastdrop import files as results
from fastdrop.cli import main

FAIL_AT = int(sys.argv.pop(1))
real_save, calls = results.torch.save, []


class FullDisk:
    def __init__(self, f):
        self.f, self.n = f, 0

    def write(self, b):
        self.n += len(b)
        if self.n > 4096:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(b)

    def flush(self):
        self.f.flush()


def save(obj, f, *args, **kwargs):
    calls.append(1)
    return real_save(obj, FullDisk(f) if len(calls) == FAIL_AT else f, *args, **kwargs)


results.torch.save = save
sys.exit(main())
