"""Any classifier cut automatically (fastdrop/models/traced.py): torchvision and timm models traced with
torch.fx, cut at single-tensor points, computing the model's own function with its own parameters;
what cannot be traced is refused with one line. (Freezing == Dropping for these: test_strategies.py.)"""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fastdrop.run.flops import unit_macs
from fastdrop.models import chain_of
from fastdrop.models.traced import TraceRefused, TracedUnit


def tiny_vit():
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                hidden_dim=16, mlp_dim=32, num_classes=10)


def timm_model(name):
    timm = pytest.importorskip("timm")
    return timm.create_model(name, num_classes=10)


# name -> (builder, expected conv units); all built without weights, at the model's own width
MODELS = {
    "convnext_tiny": (lambda: torchvision.models.convnext_tiny(num_classes=10), 22),
    "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(num_classes=10), 38),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(num_classes=10), 26),
    "vit": (tiny_vit, 5),  # patch embedding + (attention, MLP) residual halves of 2 encoder layers
    "timm_resnet18": (lambda: timm_model("resnet18"), 9),  # stem + 8 residual blocks, each whole
    "timm_convnext_atto": (lambda: timm_model("convnext_atto"), 16),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_traced_chain_is_the_model_cut_between_blocks(name):
    build, n_conv = MODELS[name]
    torch.manual_seed(0)
    model = build().double()
    chain = chain_of(model)
    assert chain.n_conv == n_conv and chain.names[-1] == "classifier" and len(set(chain.names)) == len(chain.names)
    assert all(isinstance(u, TracedUnit) and u.conv_weights() for u in chain.units[:-1])
    own = {id(p) for p in model.parameters()}  # the chain trains the model's own parameters, each once
    assert sorted(id(p) for p in chain.unit_parameters()) == sorted(own)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    model.eval(), chain.eval()
    with torch.no_grad():
        torch.testing.assert_close(chain(x), model(x), rtol=0, atol=1e-12)
        state = (x,)
        for u in chain.units:  # every boundary is one tensor
            state = u(state)
            assert len(state) == 1 and isinstance(state[0], torch.Tensor)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x[:1])
    assert sum(unit_macs(chain, x[:1])) == fc.get_total_flops() // 2  # the same counter, split per unit


def test_residual_blocks_stay_whole_and_hand_written_chains_win():
    pytest.importorskip("timm")
    chain = chain_of(timm_model("resnet18"))
    assert chain.names[1:5] == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]
    # torchvision's ResNet keeps its hand-written chain, which cuts inside blocks (one unit per conv)
    assert chain_of(torchvision.models.resnet18(num_classes=10)).n_conv == 17


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:  # control flow on a tensor: torch.fx cannot trace it
            x = x * 2
        return self.fc(x.mean((2, 3)))


class ModeDependent(DataDependent):
    def forward(self, x):
        x = self.conv(x)
        x = x * 2 if self.training else x  # a mode test outside leaf layers: tracing would bake one in
        return self.fc(x.mean((2, 3)))


class NoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("module, match", [
    (DataDependent(), "torch.fx cannot trace it"),
    (ModeDependent(), "differs between train and eval mode"),
    (NoConv(), "holds no convolution"),
])
def test_what_cannot_be_traced_is_refused_in_one_line(module, match):
    with pytest.raises(TraceRefused, match=match) as e:
        chain_of(module)
    assert "\n" not in str(e.value) and "fastdrop_units()" in str(e.value)


def test_fit_takes_a_timm_resnet18(tmp_path):
    timm = pytest.importorskip("timm")
    from fastdrop.api import fit
    from fastdrop.data import ImageData, Split

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(16) % 10
    data = ImageData("toy", Split(x, y), Split(x[:4], y[:4]), (0.5,) * 3, (0.25,) * 3)
    torch.manual_seed(0)
    row = fit(timm.create_model("resnet18", num_classes=10), data, "strategy=dropping", "epochs=2", "batch_size=8",
              "progress=false", "device=cpu", "checkpoint=none", "strategy.policy=schedule", "strategy.schedule={1:3}",
              f"results_dir={tmp_path}/results", run_dir=tmp_path / "run")
    assert row["status"] == "completed" and row["model"].startswith("resnet-")
    assert row["history"][-1]["dropped_units"] == ["conv1", "layer1.0", "layer1.1"]
    assert row["history"][-1]["fwd_macs_per_sample"] < row["fwd_macs_full_per_sample"]
