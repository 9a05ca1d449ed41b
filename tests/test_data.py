"""fastdrop.data.load_data on tiny datasets written in the real on-disk formats (the ones torchvision reads
and the official archives unpack to), so the real loading code runs without the real data."""
from __future__ import annotations

import gzip
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastdrop.data import STATS, DataError, ImageData, Split, load_data

MNIST_NAMES = {  # what torchvision.datasets.MNIST looks for under <root>/MNIST/raw (plus .gz)
    (True, "x"): "train-images-idx3-ubyte", (True, "y"): "train-labels-idx1-ubyte",
    (False, "x"): "t10k-images-idx3-ubyte", (False, "y"): "t10k-labels-idx1-ubyte",
}
WNIDS = ["n01440764", "n02102040", "n02979186"]  # real Imagenette classes (torchvision looks them up)
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230)]  # one per class, so pixels tell the label


def _assert_one_line_naming(err: DataError, path: Path) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert str(path) in msg, msg


# ---------------------------------------------------------------------------------------------- MNIST

def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format of the MNIST files: big-endian magic 0x0000 0x08 (uint8) <ndim>, then the dims."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist(root: Path, n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict:
    """root/MNIST/raw/*-ubyte.gz like the official download; returns the arrays written."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for train, n in ((True, n_train), (False, n_test)):
        arrays[(train, "x")] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[(train, "y")] = rng.integers(0, 10, n, dtype=np.uint8)
    for key, arr in arrays.items():
        data = idx_bytes(arr)
        assert struct.unpack(">I", data[:4])[0] == (2051 if key[1] == "x" else 2049)
        (raw / f"{MNIST_NAMES[key]}.gz").write_bytes(gzip.compress(data))
    return arrays


def test_mnist_from_official_gz_files(tmp_path):
    arrays = write_mnist(tmp_path)
    data = load_data("mnist", str(tmp_path))
    assert isinstance(data, ImageData) and data.name == "mnist" and data.num_classes == 10
    for split, train in ((data.train, True), (data.test, False)):
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.int64
        assert split.x.shape == (len(arrays[(train, "y")]), 1, 28, 28)
        assert torch.equal(split.x[:, 0], torch.from_numpy(arrays[(train, "x")]))
        assert torch.equal(split.y, torch.from_numpy(arrays[(train, "y")]).long())
    assert data.in_channels == 1 and data.image_size == 28
    assert (data.mean, data.std) == STATS["mnist"]
    # Extracted next to the archives, so a second load skips the gzip step.
    raw = tmp_path / "MNIST" / "raw"
    assert all((raw / name).is_file() for name in MNIST_NAMES.values())
    again = load_data("mnist", str(tmp_path))
    assert torch.equal(again.train.x, data.train.x)


def _is_ordered_subsequence(sub: torch.Tensor, full: torch.Tensor) -> bool:
    """Every row of `sub` occurs in `full`, in the same order (rows compared whole)."""
    j = 0
    for row in sub:
        while j < len(full) and not torch.equal(full[j], row):
            j += 1
        if j == len(full):
            return False
        j += 1
    return True


@pytest.mark.parametrize("train_subset, test_subset, n_train, n_test", [
    (5, 3, 5, 3), (None, 2, 12, 2), (100, None, 12, 5),  # a subset above the split's size keeps it whole
])
def test_mnist_subsets_are_class_balanced_rows_in_file_order(tmp_path, train_subset, test_subset, n_train, n_test):
    arrays = write_mnist(tmp_path)
    data = load_data("mnist", str(tmp_path), train_subset=train_subset, test_subset=test_subset)
    assert (len(data.train), len(data.test)) == (n_train, n_test)
    assert data.train.x.shape[0] == n_train and data.test.x.shape[0] == n_test
    full_x = torch.from_numpy(arrays[(True, "x")])
    assert _is_ordered_subsequence(data.train.x[:, 0], full_x)
    for split, key in ((data.train, True), (data.test, False)):
        y_all = torch.from_numpy(arrays[(key, "y")]).long()
        picked = torch.bincount(split.y, minlength=10)
        avail = torch.bincount(y_all, minlength=10)
        # balanced: no class that still had rows left got 2+ fewer rows than another class
        short = [c for c in range(10) if picked[c] < avail[c]]
        assert all(picked[c] >= picked.max() - 1 for c in short)


def test_mnist_missing_names_the_folder(tmp_path):
    with pytest.raises(DataError) as info:
        load_data("mnist", str(tmp_path))
    _assert_one_line_naming(info.value, tmp_path / "MNIST" / "raw")
    assert "data.root" in str(info.value)


def test_mnist_one_file_missing(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load_data("mnist", str(tmp_path))
    _assert_one_line_naming(info.value, tmp_path / "MNIST" / "raw")


def test_mnist_truncated_gz(tmp_path):
    write_mnist(tmp_path)
    gz = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with pytest.raises(DataError) as info:
        load_data("mnist", str(tmp_path))
    _assert_one_line_naming(info.value, gz)
    assert "corrupt" in str(info.value)
    # Nothing half-written is left behind to be trusted next time.
    assert not (gz.parent / "train-images-idx3-ubyte").exists()


def test_mnist_truncated_idx_payload(tmp_path):
    # A well-formed .gz whose IDX content is cut short (e.g. an interrupted copy before compression).
    arrays = write_mnist(tmp_path)
    gz = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(idx_bytes(arrays[(True, "x")])[:-100]))
    with pytest.raises(DataError) as info:
        load_data("mnist", str(tmp_path))
    _assert_one_line_naming(info.value, tmp_path / "MNIST" / "raw")


def test_unknown_dataset():
    with pytest.raises(DataError, match="mnist_mini"):
        load_data("svhn")


def test_empty_split_after_subsetting_is_an_error(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(DataError, match="empty"):
        load_data("mnist", str(tmp_path), train_subset=0)


# ------------------------------------------------------------------------------------------ mnist_mini

def test_bundled_mnist_mini():
    data = load_data("mnist_mini", root="/nonexistent")  # root is ignored: the data ships in the package
    assert (len(data.train), len(data.test)) == (10_000, 2_000)
    assert data.train.x.shape == (10_000, 1, 28, 28) and data.test.x.shape == (2_000, 1, 28, 28)
    assert data.train.x.dtype == torch.uint8 and data.train.y.dtype == torch.int64
    assert set(data.train.y.unique().tolist()) == set(range(10)) == set(data.test.y.unique().tolist())
    assert data.train.x.float().mean().item() == pytest.approx(0.1307 * 255, rel=0.05)  # real MNIST ink
    assert (data.mean, data.std) == STATS["mnist"]
    small = load_data("mnist_mini", train_subset=250, test_subset=60)
    assert (len(small.train), len(small.test)) == (250, 60)
    assert torch.bincount(small.train.y).tolist() == [25] * 10 and torch.bincount(small.test.y).tolist() == [6] * 10
    assert _is_ordered_subsequence(small.train.x[:40], data.train.x[:2000])  # the mixed order is kept
    again = load_data("mnist_mini", train_subset=250, test_subset=60)
    assert torch.equal(again.train.x, small.train.x)  # the same rows every time (data.subset_seed)
    other = load_data("mnist_mini", train_subset=250, test_subset=60, subset_seed=1)
    assert not torch.equal(other.train.x, small.train.x)


# ------------------------------------------------------------------------------------------- CIFAR-10

class _Py2Str(bytes):
    """A Python 2 `str`, as the keys and class names of the official CIFAR-10 pickles are: it loads as a
    str with encoding='latin1' (torchvision) and as bytes with encoding='bytes' (the dataset's web page:
    dict[b'data'], dict[b'labels'])."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can be extended
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2str(self, obj):
        raw = bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def _py2_pickle(obj, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def write_cifar10(root: Path, per_batch: int = 3, n_test: int = 4, seed: int = 0) -> dict:
    """root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} as 'cifar-10-python.tar.gz'
    unpacks; returns {"train": (data, labels), "test": (data, labels)} with data uint8 [n, 3072]."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    out = {"train": ([], []), "test": ([], [])}
    files = [(f"data_batch_{i}", per_batch, "train") for i in range(1, 6)] + [("test_batch", n_test, "test")]
    for name, n, split in files:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        _py2_pickle({_Py2Str(b"batch_label"): _Py2Str(name.encode()), _Py2Str(b"data"): data,
                     _Py2Str(b"labels"): labels,
                     _Py2Str(b"filenames"): [_Py2Str(b"img_%d.png" % i) for i in range(n)]}, folder / name)
        out[split][0].append(data)
        out[split][1].extend(labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _py2_pickle({_Py2Str(b"num_cases_per_batch"): per_batch, _Py2Str(b"label_names"): [_Py2Str(n) for n in names],
                 _Py2Str(b"num_vis"): 3072}, folder / "batches.meta")
    return {k: (np.concatenate(d), np.array(y)) for k, (d, y) in out.items()}


def test_cifar10_fixture_is_in_the_official_format(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    with open(path, "rb") as f:
        as_bytes = pickle.load(f, encoding="bytes")  # the recipe on the CIFAR-10 page
    with open(path, "rb") as f:
        as_latin1 = pickle.load(f, encoding="latin1")  # what torchvision does
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (3, 3072)
    assert len(as_bytes[b"labels"]) == 3
    assert np.array_equal(as_latin1["data"], as_bytes[b"data"])


def test_cifar10_loads_batches_that_are_not_the_official_bytes(tmp_path):
    write_cifar10(tmp_path)
    data = load_data("cifar10", str(tmp_path))
    assert len(data.train) == 15


@pytest.fixture
def cifar_root(tmp_path):
    """Tiny CIFAR-10 python batches (not the official bytes: no md5 matches)."""
    return tmp_path, write_cifar10(tmp_path)


def test_cifar10_from_python_batches(cifar_root):
    root, arrays = cifar_root
    data = load_data("cifar10", str(root), augment=True)
    for split, key in ((data.train, "train"), (data.test, "test")):
        raw, labels = arrays[key]
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.int64
        assert split.x.shape == (len(raw), 3, 32, 32)
        # The batch rows are 1024 red, then green, then blue values, each row-major: exactly [3, 32, 32].
        assert torch.equal(split.x, torch.from_numpy(raw.reshape(-1, 3, 32, 32)))
        assert split.y.tolist() == labels.tolist()
    assert len(data.train) == 15  # data_batch_1..5 in order
    assert data.in_channels == 3 and data.image_size == 32 and data.augment
    assert (data.mean, data.std) == STATS["cifar10"]


def test_cifar10_subsets(cifar_root):
    root, arrays = cifar_root
    data = load_data("cifar10", str(root), train_subset=7, test_subset=2)
    assert (len(data.train), len(data.test)) == (7, 2)
    full = torch.from_numpy(arrays["train"][0].reshape(-1, 3, 32, 32))
    assert _is_ordered_subsequence(data.train.x, full)
    assert len(data.train.y.unique()) == min(7, len(np.unique(arrays["train"][1])))  # one row per class first


def test_cifar10_missing_names_the_folder(tmp_path):
    with pytest.raises(DataError) as info:
        load_data("cifar10", str(tmp_path))
    _assert_one_line_naming(info.value, tmp_path / "cifar-10-batches-py")


def test_cifar10_corrupted_batch(cifar_root):
    root, _ = cifar_root
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:200])
    with pytest.raises(DataError) as info:
        load_data("cifar10", str(root))
    _assert_one_line_naming(info.value, root / "cifar-10-batches-py")
    assert "corrupt" in str(info.value)


# ------------------------------------------------------------------------------------------ Imagenette

def write_imagenette(root: Path, folder: str = "imagenette2-160", n_train: int = 2, n_val: int = 1) -> Path:
    """root/<folder>/{train,val}/<wnid>/*.JPEG like the fast.ai archive, one flat colour per class, in
    several sizes and one greyscale image."""
    sizes = [(213, 160), (160, 240), (180, 180)]  # (W, H) around the 160 px release's shorter side
    for split, n in (("train", n_train), ("val", n_val)):
        for c, (wnid, colour) in enumerate(zip(WNIDS, COLOURS)):
            d = root / folder / split / wnid
            d.mkdir(parents=True)
            for i in range(n):
                img = Image.new("RGB", sizes[(c + i) % len(sizes)], colour)
                if split == "train" and c == 0 and i == 1:
                    img = img.convert("L")
                img.save(d / f"{wnid}_{i}.JPEG", quality=90)
    return root / folder


def _class_from_colour(x: torch.Tensor) -> torch.Tensor:
    return x.float().mean((2, 3)).argmax(1)  # red, green, blue -> 0, 1, 2


def test_imagenette_from_jpeg_folders(tmp_path):
    write_imagenette(tmp_path)
    data = load_data("imagenette", str(tmp_path), augment=True, image_size=160)
    assert data.train.x.shape == (6, 3, 160, 160) and data.test.x.shape == (3, 3, 160, 160)
    assert data.train.x.dtype == torch.uint8 and data.train.y.dtype == torch.int64
    assert data.train.y.tolist() == [0, 0, 1, 1, 2, 2]  # sorted wnids
    assert data.test.y.tolist() == [0, 1, 2]
    # Labels belong to their images (image 1, the greyscale one, has no colour to tell).
    coloured = [0, 2, 3, 4, 5]
    assert torch.equal(_class_from_colour(data.train.x[coloured]), data.train.y[coloured])
    assert torch.equal(_class_from_colour(data.test.x), data.test.y)
    grey = data.train.x[1]  # decoded to RGB like every other image
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert (data.mean, data.std) == STATS["imagenette"] and data.image_size == 160


def test_imagenette_default_size_is_the_160px_release(tmp_path):
    write_imagenette(tmp_path)
    data = load_data("imagenette", str(tmp_path), train_subset=4, test_subset=2)
    assert data.train.x.shape == (4, 3, 160, 160) and data.test.x.shape == (2, 3, 160, 160)


def test_imagenette_decode_cache(tmp_path, caplog):
    folder = write_imagenette(tmp_path)
    first = load_data("imagenette", str(tmp_path))
    cache = folder / ".fastdrop-train-160.pt"
    assert cache.is_file() and (folder / ".fastdrop-val-160.pt").is_file()
    assert torch.equal(load_data("imagenette", str(tmp_path)).train.x, first.train.x)
    # A cache from a different image set (here: fewer images) is rebuilt, never trusted.
    torch.save({"x": first.train.x[:2], "y": first.train.y[:2]}, cache)
    assert torch.equal(load_data("imagenette", str(tmp_path)).train.y, first.train.y)
    cache.write_bytes(b"not a torch file")
    assert torch.equal(load_data("imagenette", str(tmp_path)).train.x, first.train.x)
    assert "damaged decode cache" in caplog.text


@pytest.mark.parametrize("image_size, folder", [
    (None, "imagenette2-160"), (160, "imagenette2-160"), (320, "imagenette2-320"),
    (224, "imagenette2/"),
])
def test_imagenette_missing_names_the_folder(tmp_path, image_size, folder):
    with pytest.raises(DataError) as info:
        load_data("imagenette", str(tmp_path), image_size=image_size)
    _assert_one_line_naming(info.value, tmp_path)
    assert f"{folder.rstrip('/')}/train" in str(info.value)


def test_imagenette_other_size_reads_the_full_release_folder(tmp_path):
    write_imagenette(tmp_path, folder="imagenette2", n_train=1, n_val=1)
    data = load_data("imagenette", str(tmp_path), image_size=48)
    assert data.train.x.shape == (3, 3, 48, 48)
    assert torch.equal(_class_from_colour(data.train.x), data.train.y)


def test_imagenette_empty_class_folder(tmp_path):
    folder = write_imagenette(tmp_path)
    for f in (folder / "val" / WNIDS[1]).iterdir():
        f.unlink()
    with pytest.raises(DataError) as info:
        load_data("imagenette", str(tmp_path))
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


# ------------------------------------------------------------------------------- normalise and augment

def _image_data(channels: int) -> ImageData:
    stats = STATS["mnist" if channels == 1 else "cifar10"]
    x = torch.zeros(1, channels, 8, 8, dtype=torch.uint8)
    split = Split(x, torch.zeros(1, dtype=torch.long))
    return ImageData("t", split, split, *stats)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalize(channels, dtype):
    data = _image_data(channels)
    x = torch.randint(0, 256, (4, channels, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = data.normalize(x, dtype)
    assert out.shape == x.shape and out.dtype == dtype
    mean = torch.tensor(data.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float64).view(1, -1, 1, 1)
    torch.testing.assert_close(out.double(), (x.double() / 255 - mean) / std, atol=1e-5, rtol=1e-6)


def _windows(padded: torch.Tensor, h: int, w: int, pad: int) -> list[torch.Tensor]:
    return [padded[:, oy:oy + h, ox:ox + w] for oy in range(2 * pad + 1) for ox in range(2 * pad + 1)]


@pytest.mark.parametrize("shape", [(6, 1, 28, 28), (6, 3, 32, 32)])
def test_random_crop_flip(shape):
    data = _image_data(shape[1])
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))

    def aug(seed, flip=True):
        return data.random_crop_flip(x, torch.Generator().manual_seed(seed), flip=flip)

    out = aug(1)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, aug(1))  # same seed, same batch: resumed runs depend on this
    assert not torch.equal(out, aug(2))
    # Each image is a window of the zero-padded image (size/8 px per side), flipped or not.
    b, _, h, w = shape
    pad = h // 8
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    plain = aug(3, flip=False)
    for i in range(b):
        wins = _windows(padded[i], h, w, pad)
        assert any(torch.equal(plain[i], v) for v in wins)
        assert any(torch.equal(out[i], v) or torch.equal(out[i], v.flip(-1)) for v in wins)


# ------------------------------------------------------------------------------------- real MNIST (slow)

@pytest.mark.slow
def test_real_mnist_from_shared_data(shared_data, tmp_path):
    src = shared_data / "MNIST" / "raw"
    if not src.is_dir():
        pytest.skip(f"no {src}")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in src.glob("*.gz"):  # the shared copy is read-only; extraction writes next to the .gz
        shutil.copy(gz, raw / gz.name)
    data = load_data("mnist", str(tmp_path))
    assert data.train.x.shape == (60_000, 1, 28, 28) and data.test.x.shape == (10_000, 1, 28, 28)
    assert data.train.x.dtype == torch.uint8
    assert torch.bincount(data.train.y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(data.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # The bundled subset is the head of the official files (scripts/build_mnist_subset.py).
    mini = load_data("mnist_mini")
    assert torch.equal(mini.train.x, data.train.x[:10_000]) and torch.equal(mini.train.y, data.train.y[:10_000])
    assert torch.equal(mini.test.x, data.test.x[:2_000]) and torch.equal(mini.test.y, data.test.y[:2_000])


# ------------------------------------------------------------------------------- CIFAR-10 JPEG copy

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_cifar10_jpeg_copy_labels_follow_cifar_order(tmp_path):
    # The ../shared/data layout: cifar10-jpeg/{train,test}/<class>/NNNN.jpg, 32x32.
    for split in ("train", "test"):
        for c, name in enumerate(CIFAR_CLASSES[:3]):
            d = tmp_path / "cifar10-jpeg" / split / name
            d.mkdir(parents=True)
            Image.new("RGB", (32, 32), COLOURS[c]).save(d / "0000.jpg", quality=95)
    data = load_data("cifar10_jpeg", str(tmp_path))
    assert data.train.x.shape == (3, 3, 32, 32) and data.train.y.tolist() == [0, 1, 2]
    assert torch.equal(_class_from_colour(data.test.x), data.test.y)
    assert (data.mean, data.std) == STATS["cifar10"]


def test_subset_of_class_sorted_folders_holds_every_class(tmp_path):
    # Folder datasets are sorted by class: the first N rows would all be class 0.
    for split in ("train", "test"):
        for c, name in enumerate(CIFAR_CLASSES[:3]):
            d = tmp_path / "cifar10-jpeg" / split / name
            d.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (32, 32), COLOURS[c]).save(d / f"{i:04d}.jpg", quality=95)
    data = load_data("cifar10_jpeg", str(tmp_path), train_subset=6, test_subset=4)
    assert torch.bincount(data.train.y).tolist() == [2, 2, 2]
    assert sorted(torch.bincount(data.test.y).tolist()) == [1, 1, 2]
    assert torch.equal(_class_from_colour(data.train.x), data.train.y)


def test_cifar10_jpeg_missing_is_one_line(tmp_path):
    with pytest.raises(DataError) as info:
        load_data("cifar10_jpeg", str(tmp_path))
    _assert_one_line_naming(info.value, tmp_path / "cifar10-jpeg")
