"""Fine-tuning inputs: a user's torchvision / interface / Sequential network as a chain, and starting
weights (torchvision's cache, state_dict files, earlier fastdrop runs), each failure one clear line."""
from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import compose_config
from torch import nn

from fastdrop.api import fit
from fastdrop.data import ImageData, Split
from fastdrop.models import ACCEPTED, WeightsError, build, chain_of, default_name
from fastdrop.models.chain import Unit
from fastdrop.models.weights import cached_file, torchvision_weights


def toy_data(n=64, size=16, channels=3, classes=10):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (n, channels, size, size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return ImageData("toy", Split(x, y), Split(x[:32], y[:32]), (0.5,) * channels, (0.25,) * channels,
                     num_classes=classes)


def quick(tmp_path, *extra):
    schedule = [] if any(e.startswith("strategy.schedule=") for e in extra) else ["strategy.schedule={1:3}"]
    return ["progress=false", f"results_dir={tmp_path}/results", "epochs=2", "batch_size=32", "device=cpu",
            "strategy.policy=schedule", *schedule, *extra]


# ---------------------------------------------------------------------------------------- networks

def test_torchvision_instances_are_cut_like_the_builtins():
    torch.manual_seed(0)
    for module, n_conv in [(torchvision.models.resnet18(num_classes=10), 17),
                           (torchvision.models.vgg11_bn(num_classes=10), 8)]:
        chain = chain_of(module)
        assert chain.n_conv == n_conv
        module.eval(), chain.eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(chain(x), module(x), atol=1e-5, rtol=0)


def test_fit_takes_a_torchvision_resnet18_and_names_its_rows(tmp_path):
    torch.manual_seed(0)
    row = fit(torchvision.models.resnet18(num_classes=10), toy_data(), "strategy=dropping",
              *quick(tmp_path, "model.name=my-resnet"), run_dir=tmp_path / "run")
    assert row["status"] == "completed" and row["model"] == "my-resnet" and row["width"] is None
    assert row["history"][-1]["dropped_units"] == ["stem", "layer1.0.conv1", "layer1.0.conv2"]
    assert row["history"][-1]["fwd_macs_per_sample"] < row["fwd_macs_full_per_sample"]


class TwoConvNet(nn.Module):
    """A network that lists its units itself (the documented interface)."""

    def __init__(self, c=8):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))

    def forward(self, x):
        return self.head(self.b(self.a(x)))

    def fastdrop_units(self):
        return [("a", self.a), ("b", self.b), ("head", self.head)]


def test_units_interface_and_default_names(tmp_path):
    net = TwoConvNet()
    chain = chain_of(net)
    assert chain.names == ["a", "b", "head"]
    x = torch.randn(2, 3, 8, 8)
    net.eval(), chain.eval()
    torch.testing.assert_close(chain(x), net(x))
    # equal architectures share the default name, different ones do not
    assert default_name(net, chain) == default_name(TwoConvNet(), chain_of(TwoConvNet()))
    assert default_name(net, chain) != default_name(TwoConvNet(16), chain_of(TwoConvNet(16)))
    row = fit(net, toy_data(size=8), "strategy=freezing", *quick(tmp_path, "strategy.schedule={1:1}"),
              run_dir=tmp_path / "run")
    assert row["model"].startswith("twoconvnet-") and row["history"][-1]["dropped_units"] == ["a"]


class Bad(nn.Module):
    def fastdrop_units(self):
        return [("head", nn.Linear(2, 2))]


@pytest.mark.parametrize("module, error, match", [
    (nn.Linear(4, 2), TypeError, "torchvision ResNet or VGG"),
    (Bad(), ValueError, "at least one conv unit"),
])
def test_what_cannot_be_cut_is_refused_saying_what_is_accepted(tmp_path, module, error, match):
    with pytest.raises(error, match=match):
        fit(module, toy_data(), *quick(tmp_path))
    assert "nn.Sequential" in ACCEPTED and "fastdrop_units" in ACCEPTED


# ----------------------------------------------------------------------------------------- weights

def model_cfg(*overrides):
    return compose_config(["model=resnet18", *overrides]).model


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torchvision cache, and no network: downloads fail at once instead of hanging."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    return tmp_path / "torch"


def fake_imagenet_file(model="resnet18") -> tuple:
    """What torchvision would have downloaded: the right keys and shapes (1000 classes), random values."""
    torch.manual_seed(1)
    sd = torchvision.models.get_model(model).state_dict()
    path = cached_file(torchvision_weights(model, "IMAGENET1K_V1"))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return sd, path


def test_torchvision_weights_offline_missing_is_one_line(torch_home):
    with pytest.raises(WeightsError) as e:
        build(model_cfg("model.weights=IMAGENET1K_V1"), 10, 3, 64)  # (the preset's width 0.25 is said later)
    msg = str(e.value)
    assert "\n" not in msg and str(torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg


def test_torchvision_weights_load_from_the_cache_with_a_new_classifier(torch_home):
    sd, path = fake_imagenet_file()
    chain, info = build(model_cfg("model.weights=IMAGENET1K_V1", "model.width=1.0"), 10, 3, 64)
    assert info["stem"] == "imagenet" and info["weights_file"] == str(path) and len(info["weights_sha256"]) == 64
    assert "1000 classes in the weights, 10 in the data" in info["classifier"]
    assert torch.equal(chain.units[0].body[0].weight, sd["conv1.weight"])  # 7x7 stem, loaded
    assert torch.equal(chain.units[-2].conv.weight, sd["layer4.1.conv2.weight"])
    assert chain.units[-1].body[2].weight.shape == (10, 512)  # fresh classifier


@pytest.mark.parametrize("overrides, match", [
    (["model.stem=small"], "need model.stem=imagenet"),
    (["model.width=0.5"], "width 1.0"),
    (["model.weights=IMAGENET1K_V9"], "IMAGENET1K_V1"),
])
def test_torchvision_weights_refuse_what_they_cannot_fit(torch_home, overrides, match):
    fake_imagenet_file()
    with pytest.raises(WeightsError, match=match):
        build(model_cfg("model.weights=IMAGENET1K_V1", "model.width=1.0", *overrides), 10, 3, 64)


def test_weights_from_an_earlier_run_directory(tmp_path):
    """Yesterday's run directory as today's starting point; a different width names the first key."""
    from fastdrop.run.trainer import Trainer

    cfg = compose_config(["model=vgg11", "model.width=0.125", "data.train_subset=128", "data.test_subset=32",
                          "epochs=1", "progress=false", f"results_dir={tmp_path}/results", "device=cpu"])
    t = Trainer(cfg, tmp_path / "yesterday")
    t.fit()
    assert not (tmp_path / "yesterday" / "checkpoint.pt").exists()  # the default policy: only weights.pt stays
    chain, info = build(model_cfg("model=vgg11", "model.width=0.125", f"model.weights={tmp_path / 'yesterday'}"),
                        10, 1, 28)
    assert info["classifier"] == "loaded" and info["weights_file"].endswith("weights.pt")
    for (k, a), b in zip(t.chain.state_dict().items(), chain.state_dict().values()):
        assert torch.equal(a, b), k
    _, info5 = build(model_cfg("model=vgg11", "model.width=0.125", f"model.weights={tmp_path / 'yesterday'}"),
                     5, 1, 28)
    assert info5["classifier"].startswith("replaced: 10 classes in the weights, 5")
    _, same = build(model_cfg("model=vgg11", "model.width=0.125", f"model.weights={tmp_path / 'yesterday'}",
                              "model.new_classifier=true"), 10, 1, 28)
    assert same["classifier"].startswith("replaced: 10 classes in the weights, model.new_classifier")
    with pytest.raises(WeightsError, match=r"units.0.body.0.weight has shape \[8, 1, 3, 3\] in the file but \[16, 1"):
        build(model_cfg("model=vgg11", "model.width=0.25", f"model.weights={tmp_path / 'yesterday'}"), 10, 1, 28)


def test_state_dict_files_load_exactly_or_name_the_problem(tmp_path):
    torch.manual_seed(0)
    src = torchvision.models.resnet18(num_classes=10)
    good = tmp_path / "good.pt"
    torch.save(src.state_dict(), good)
    chain, info = build(model_cfg(f"model.weights={good}", "model.stem=imagenet", "model.width=1.0"), 10, 3, 32)
    assert torch.equal(chain.units[1].conv.weight, src.layer1[0].conv1.weight) and info["classifier"] == "loaded"
    sd = src.state_dict()
    sd.pop("layer2.0.bn1.running_var")
    torch.save(sd, tmp_path / "missing.pt")
    torch.save({"x": 1}, tmp_path / "notsd.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    cases = {"missing.pt": "has no layer2.0.bn1.running_var", "notsd.pt": "does not hold a state_dict",
             "junk.pt": "unreadable", "nothere.pt": "no such file", ".": "holds no checkpoint.pt or weights.pt"}
    for name, match in cases.items():
        with pytest.raises(WeightsError, match=match):
            build(model_cfg(f"model.weights={tmp_path / name}", "model.stem=imagenet", "model.width=1.0"), 10, 3, 32)
    with pytest.raises(WeightsError, match=r"conv1.weight has shape \[64, 3, 7, 7\] in the file but \[64, 3, 3, 3\]"):
        build(model_cfg(f"model.weights={good}", "model.stem=small", "model.width=1.0"), 10, 3, 32)
    # auto at 32 px would pick the small stem; it reads the file instead (issue 21) and loads it
    chain, _ = build(model_cfg(f"model.weights={good}", "model.width=1.0"), 10, 3, 32)
    assert any(p.shape == src.conv1.weight.shape and torch.equal(p, src.conv1.weight) for p in chain.units[0].parameters())


def test_linear_probe_schedule_cuts_every_conv_unit_before_training(tmp_path):
    """strategy.schedule={0: n}: every conv unit cut (and cached) before epoch 1, only the classifier trains."""
    torch.manual_seed(0)
    row = fit(TwoConvNet(), toy_data(size=8), "strategy=dropping", *quick(tmp_path, "strategy.schedule={0:99}"),
              run_dir=tmp_path / "run")
    h = row["history"]
    assert [e["dropped_units"] for e in h] == [["a", "b"], ["a", "b"]] and h[0]["cache_time_s"] > 0
    assert h[0]["trained_params"] == 8 * 10 + 10 and h[0]["fwd_macs_per_sample"] < row["fwd_macs_full_per_sample"]
