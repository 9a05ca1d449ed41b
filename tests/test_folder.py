"""data=folder (your own ImageFolder tree) and the fine-tuning command line: tiny folders written here,
the real Imagenette subset from ../shared/data when present; bad input is one line and exit 2."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import cli_in_process
from torchvision.io import encode_jpeg, encode_png, write_file
from torchvision.transforms.v2 import functional as F

from fastdrop.data import DataError, load_data
from fastdrop.data import folder as folder_mod

CLASSES = ["cat", "dog", "eel"]
# torchvision 0.29 deprecates its image codecs (for TorchCodec); this file writes its images with them.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


def write_folder(root: Path, n_train=4, n_val=2, test_dir="val") -> Path:
    """3 classes of small RGB JPEGs and PNGs of different shapes (one grayscale), like a user's folder."""
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), (test_dir, n_val)):
        for c, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                h, w = 20 + 4 * i, 28 + 2 * c
                img = torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=g)
                if i % 2:
                    write_file(str(d / f"{i}.png"), encode_png(img[:1] if c == 2 else img))
                else:
                    write_file(str(d / f"{i}.JPEG"), encode_jpeg(img, quality=95))
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


def test_folder_loads_every_class_resized_and_cached(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "imgs")
    d = load_data("folder", str(root), image_size=16)
    assert d.train.x.shape == (12, 3, 16, 16) and d.test.x.shape == (6, 3, 16, 16) and d.train.x.dtype == torch.uint8
    assert d.classes == tuple(CLASSES) and d.num_classes == 3
    assert d.train.y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # shorter side to 16 (antialiased), then the centre square: torchvision's own resize and crop
    from torchvision.io import decode_image
    ref = F.center_crop(F.resize(decode_image(str(root / "train/dog/0.JPEG")), 16, antialias=True), 16)
    assert torch.equal(d.train.x[4], ref)
    gray = d.train.x[9]  # eel/1.png was written with one channel: decoded as RGB
    assert torch.equal(gray[0], gray[1])
    mean, std = folder_mod.channel_stats(d.train.x)
    assert d.mean == pytest.approx(mean) and d.std == pytest.approx(std) and 0.3 < mean[0] < 0.7
    # decoded once: the second load reads the cache, not the images
    monkeypatch.setattr(folder_mod._Decoded, "__getitem__", lambda self, i: 1 / 0)
    again = load_data("folder", str(root), image_size=16, train_subset=6)
    assert torch.bincount(again.train.y).tolist() == [2, 2, 2]  # class-balanced subset, classes kept
    assert again.classes == tuple(CLASSES)
    assert load_data("folder", str(root), image_size=16, stats="imagenet").mean == (0.485, 0.456, 0.406)


def test_folder_reads_test_when_there_is_no_val(tmp_path):
    d = load_data("folder", str(write_folder(tmp_path / "imgs", test_dir="test")), image_size=8)
    assert len(d.test) == 6


def _break(case):
    def empty(r):
        for f in (r / "val" / "dog").iterdir():
            f.unlink()

    return {
        "empty class folder": (empty, "class folder .*val/dog holds no JPEG or PNG images"),
        "unreadable image": (lambda r: (r / "train" / "eel" / "0.JPEG").write_bytes(b"\xff\xd8 broken"),
                             "unreadable image .*train/eel/0.JPEG"),
        "missing test split": (lambda r: (r / "val").rename(r / "other"), "no test split .*neither val/ nor test/"),
        "missing train split": (lambda r: (r / "train").rename(r / "other"), "no training split"),
        "unknown test class": (lambda r: (r / "val" / "dog").rename(r / "val" / "fox"), "val/fox is not a class"),
        "too large": (None, r"needs 0.00 GiB as uint8, over the memory budget"),
    }[case]


@pytest.mark.parametrize("case", ["empty class folder", "unreadable image", "missing test split",
                                  "missing train split", "unknown test class", "too large"])
def test_folder_bad_input_is_one_line(tmp_path, case):
    root = write_folder(tmp_path / "imgs")
    setup, match = _break(case)
    if setup:
        setup(root)
    with pytest.raises(DataError, match=match) as e:
        load_data("folder", str(root), image_size=16, memory_budget_gb=1e-7 if case == "too large" else None)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------ command line

def cli(tmp_path, *args, env=None):
    # In this process (conftest.cli_in_process): the imports of a new process would cost more than the run.
    return cli_in_process(["run", "progress=false", "device=cpu", "epochs=2", "batch_size=8", "strategy.warmup=0",
                           f"results_dir={tmp_path / 'results'}", f"hydra.run.dir={tmp_path / 'run'}", *args],
                          tmp_path, env)


def one_error_line(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr[-1500:])
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("fastdrop: error:")]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-1500:]
    return lines[0]


def test_cli_fine_tunes_a_state_dict_on_a_folder(tmp_path):
    """Done-when: data=folder + model=resnet18 + model.weights=<a state_dict> + dropping writes its row."""
    from fastdrop.models import build_torchvision

    root = write_folder(tmp_path / "imgs")
    torch.manual_seed(0)
    sd = tmp_path / "yesterday.pt"
    torch.save(build_torchvision("resnet18", 10, 3, 16, 0.125).state_dict(), sd)  # 10 classes, today 3
    p = cli(tmp_path, "data=folder", f"data.root={root}", "data.image_size=16", "model=resnet18",
            "model.width=0.125", f"model.weights={sd}", "strategy=dropping", "strategy.policy=schedule",
            "strategy.schedule={1:4}")
    assert p.returncode == 0, p.stderr[-2000:]
    (row_file,) = (tmp_path / "results" / "runs").glob("*.json")
    row = json.loads(row_file.read_text())
    assert row["status"] == "completed" and row["classes"] == CLASSES and row["stem"] == "small"
    assert row["weights"] == str(sd) and len(row["weights_sha256"]) == 64
    assert row["classifier"].startswith("replaced: 10 classes in the weights, 3 in the data")
    assert row["history"][-1]["dropped_units"][-1] == "layer1.1.conv1"
    assert "classifier fc replaced" in p.stdout + p.stderr


def test_cli_torchvision_weights_offline_then_cached(tmp_path):
    import torchvision

    root = write_folder(tmp_path / "imgs")
    home = tmp_path / "torch"
    env = {"TORCH_HOME": str(home), "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    args = ["data=folder", f"data.root={root}", "data.image_size=16", "model=resnet18", "model.width=1.0",
            "model.weights=IMAGENET1K_V1", "strategy=sgd", "epochs=1"]
    file = home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(file) in one_error_line(cli(tmp_path, *args, env=env))
    file.parent.mkdir(parents=True, exist_ok=True)  # the failed download may have made it
    torch.save(torchvision.models.resnet18().state_dict(), file)  # fake: right keys and shapes
    p = cli(tmp_path, *args, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    (row_file,) = (tmp_path / "results" / "runs").glob("*.json")
    row = json.loads(row_file.read_text())
    assert row["weights_file"] == str(file) and row["stem"] == "imagenet"
    assert row["normalisation"]["mean"] == [0.485, 0.456, 0.406]  # ImageNet's, as the weights expect


def test_cli_bad_folder_is_one_line(tmp_path):
    root = write_folder(tmp_path / "imgs")
    (root / "train" / "eel" / "0.JPEG").write_bytes(b"garbage")
    line = one_error_line(cli(tmp_path, "data=folder", f"data.root={root}", "data.image_size=16"))
    assert "unreadable image" in line and "eel/0.JPEG" in line


@pytest.mark.slow
def test_real_imagenette_subset_as_a_folder(shared_data, tmp_path):
    tar = shared_data / "imagenette2-224-mini.tar.gz"
    if not tar.exists():
        pytest.skip(f"{tar} not present")
    with tarfile.open(tar) as t:
        t.extractall(tmp_path, filter="data")
    d = load_data("folder", str(tmp_path / "imagenette-mini"), image_size=32)
    assert (len(d.train), len(d.test), d.num_classes) == (1000, 500, 10)
    assert d.classes[0] == "n01440764" and torch.bincount(d.test.y).tolist() == [50] * 10
    assert all(0.3 < m < 0.6 for m in d.mean) and all(0.2 < s < 0.35 for s in d.std)
