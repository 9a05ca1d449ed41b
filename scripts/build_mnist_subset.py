"""Build the offline default dataset shipped inside the package.

The bundled split is the first 10,000 training and first 2,000 test images of the official MNIST files,
in their original order, stored as uint8 in a compressed .npz (fastdrop/data/assets/mnist_mini.npz).
The source .gz files are checked against the official SHA-256 sums before use, and the sums are written
into the archive so a reader can tell where it came from. Re-running the script reproduces the file
byte for byte (np.savez_compressed is deterministic for the same arrays).

    python scripts/build_mnist_subset.py --src ../shared/data/MNIST/raw
"""
import argparse
import gzip
import hashlib
from pathlib import Path

import numpy as np

OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
OUT = Path(__file__).resolve().parents[1] / "fastdrop" / "data" / "assets" / "mnist_mini.npz"


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=Path("../shared/data/MNIST/raw"))
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--n-test", type=int, default=2_000)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    for name, want in OFFICIAL_SHA256.items():
        got = hashlib.sha256((a.src / name).read_bytes()).hexdigest()
        if got != want:
            raise SystemExit(f"checksum mismatch for {a.src / name}: {got} != official {want}")
    arrays = {
        "x_train": read_idx(a.src / "train-images-idx3-ubyte.gz")[: a.n_train],
        "y_train": read_idx(a.src / "train-labels-idx1-ubyte.gz")[: a.n_train],
        "x_test": read_idx(a.src / "t10k-images-idx3-ubyte.gz")[: a.n_test],
        "y_test": read_idx(a.src / "t10k-labels-idx1-ubyte.gz")[: a.n_test],
        "source_sha256": np.array([f"{k} {v}" for k, v in OFFICIAL_SHA256.items()]),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, **arrays)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.2f} MB): "
          f"{len(arrays['x_train'])} train / {len(arrays['x_test'])} test images")


if __name__ == "__main__":
    main()
