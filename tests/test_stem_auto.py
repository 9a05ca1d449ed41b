"""`model.stem=auto` reads the weights it is given (fastdrop.models.choose_stem): a torchvision resnet18
state_dict on 64-px images gets torchvision's stem, a small-stem file the small one, and a file that
fits neither stem still fails with the mismatch it has."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import SHARED_DATA, compose_config
from test_folder import cli, write_folder

from fastdrop.models import WeightsError, build, build_torchvision

IMAGENETTE = next((p for p in (SHARED_DATA / "imagenette-mini", Path("/tmp/data/imagenette-mini"))
                   if (p / "train").is_dir()), None)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


def model_cfg(*overrides):
    return compose_config(["model=resnet18", "model.width=1.0", *overrides]).model


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def test_auto_stem_follows_the_weights_file(tmp_path, torchvision_file):
    chain, info = build(model_cfg(f"model.weights={torchvision_file}"), 10, 3, 64)
    assert info["stem"] == "imagenet" and chain.units[0].body[0].kernel_size == (7, 7)
    small = tmp_path / "small.pt"  # a small-stem file on large images: the small stem, not the size's default
    torch.save(build_torchvision("resnet18", 10, 3, 32, 1.0).state_dict(), small)
    assert build(model_cfg(f"model.weights={small}"), 10, 3, 224)[1]["stem"] == "small"
    assert build(model_cfg(), 10, 3, 64)[1]["stem"] == "small"  # no weights: by image size, as before


def test_a_real_mismatch_keeps_its_error(torchvision_file):
    with pytest.raises(WeightsError, match=r"conv1.weight has shape \[64, 3, 7, 7\] in the file but \[32, 3, 3, 3\] "
                                           r"in the model \(check model.width and model.stem\)"):
        build(model_cfg(f"model.weights={torchvision_file}", "model.width=0.5"), 10, 3, 64)


def test_cli_fine_tunes_a_torchvision_state_dict_without_naming_a_stem(tmp_path, torchvision_file):
    """On the Imagenette subset where it is present, else on a small folder written here."""
    root = IMAGENETTE or write_folder(tmp_path / "imgs")
    p = cli(tmp_path, "data=folder", f"data.root={root}", "data.image_size=64", "model=resnet18", "model.width=1.0",
            f"model.weights={torchvision_file}", "strategy=dropping", "strategy.policy=schedule",
            "strategy.schedule={1:3}", "data.train_subset=40", "data.test_subset=20", "checkpoint=none")
    assert p.returncode == 0, p.stderr[-2000:]
    (row_file,) = (tmp_path / "results" / "runs").glob("*.json")
    row = json.loads(row_file.read_text())
    assert row["status"] == "completed" and row["stem"] == "imagenet" and row["weights"] == str(torchvision_file)
    assert row["classifier"].startswith("replaced: 1000 classes in the weights")
    assert row["history"][-1]["dropped_units"] == ["stem", "layer1.0.conv1", "layer1.0.conv2"]
