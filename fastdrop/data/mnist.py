"""MNIST through torchvision, from the official IDX files (the .gz archives are extracted in place).

An extracted file is trusted only while its .gz is the one it came from: the size and mtime of each
archive extracted are kept in `raw/.fastdrop-extracted.json`, and a changed (e.g. restored) archive is
extracted again. Every IDX file is checked against its own header before torchvision reads it, so a
short file is reported by name, with what to do, instead of as a reshape error.
"""
from __future__ import annotations

import gzip
import json
import logging
import math
import struct
import zlib
from pathlib import Path

from ..registry import DATASETS
from ..files import atomic_write, atomic_write_text
from .containers import DataError, Split

MNIST_STATS = ((0.1307,), (0.3081,))  # per-channel mean/std of the training set
log = logging.getLogger(__name__)

MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
RECORD = ".fastdrop-extracted.json"


def idx_problem(path: Path) -> str | None:
    """Why `path` is not a whole IDX file of unsigned bytes (None if it is one)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or not 1 <= head[3] <= 4:
            return "it is not an IDX file of unsigned bytes (bad header)"
        raw = f.read(4 * head[3])
    if len(raw) < 4 * head[3]:
        return "its header is cut short"
    dims = struct.unpack(f">{head[3]}I", raw)
    want = 4 + 4 * head[3] + math.prod(dims)
    if size != want:
        shape = " x ".join(map(str, dims))
        return f"its header says {shape} values ({want} bytes in all) but it holds {size} bytes"
    return None


def _gz_stamp(gz: Path) -> dict:
    st = gz.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _extract(raw: Path) -> None:
    """Extract every .gz whose extracted file is missing or came from another version of the archive."""
    record_path = raw / RECORD
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    changed = False
    for name in MNIST_FILES:
        gz, out = raw / f"{name}.gz", raw / name
        if not gz.exists() or (out.exists() and record.get(name) == _gz_stamp(gz)):
            continue
        try:
            data = gzip.decompress(gz.read_bytes())
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"MNIST file {gz} is corrupted ({e}); replace it with a complete copy "
                            "(or delete it and use data.download=true when online)") from None
        try:
            atomic_write(out, lambda f: f.write(data), len(data))
        except OSError as e:
            if out.exists():  # a read-only shared copy holding both: read what is there
                log.warning("cannot re-extract %s (%s); using the extracted file beside it", gz, e)
                continue
            raise DataError(f"cannot extract {gz} next to itself ({e}); copy the MNIST folder to a "
                            "writable data.root") from None
        log.info("extracted %s", gz)
        record[name], changed = _gz_stamp(gz), True
        problem = idx_problem(out)
        if problem:
            out.unlink()
            raise DataError(f"MNIST file {gz} is incomplete: {problem}; replace it with a complete copy "
                            "(or delete it and use data.download=true when online)")
    if changed:
        try:
            atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")
        except OSError:
            pass  # read-only: extracted again next time


@DATASETS.register("mnist", stats=MNIST_STATS, paper="mnist")
def _mnist(root: Path, download: bool, train: bool) -> Split:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    # torchvision reads the extracted IDX files; extract .gz files that are present ourselves, so an
    # offline copy of the official archives (like ../shared/data/MNIST) works with download=false.
    _extract(raw)
    for name in MNIST_FILES:
        out = raw / name
        problem = out.exists() and idx_problem(out)
        if problem:
            raise DataError(f"MNIST file {out} is damaged: {problem}; delete it and put the official {name}.gz "
                            "there (or use data.download=true when online)")
    try:
        ds = MNIST(str(root), train=train, download=download)
    except RuntimeError as e:
        if "not found" in str(e).lower():
            raise DataError(f"MNIST not found under {raw} (expected {', '.join(MNIST_FILES)} or their .gz); "
                            "set data.root to a folder holding MNIST/raw, or data.download=true when online") from None
        raise DataError(f"MNIST under {raw} could not be read: {e}") from None
    except (ValueError, IndexError) as e:
        raise DataError(f"MNIST files under {raw} are truncated or corrupted ({e}); delete them and fetch again") from None
    except OSError as e:
        raise DataError(f"MNIST download/read failed under {raw}: {e}; with no network, copy the files there") from None
    return Split(ds.data.unsqueeze(1).contiguous(), ds.targets.long())
