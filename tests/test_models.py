"""The chains Learn&Drop cuts must be the torchvision networks, cut into one unit per convolution.

Everything runs at width 0.125 on batches of 2-4 images, so the whole file stays well under a minute on
a shared 2-core CPU even for ResNet-152 (151 conv units).
"""
from __future__ import annotations

import copy
import functools

import pytest
import torch
import torchvision
from torch import nn

from fastdrop.models import NAMES, Chain, as_chain, build_model, build_torchvision, chain_of

WIDTH = 0.125
# (in_channels, image size): MNIST, CIFAR-10, and one above 64 px, which takes torchvision's large stem.
KINDS = [(1, 28), (3, 32), (3, 96)]
KIND_IDS = ["1ch28", "3ch32", "3ch96"]

CONV_UNITS = {"vgg11": 8, "vgg16": 13, "vgg19": 16, "resnet18": 17, "resnet50": 49, "resnet101": 100,
              "resnet152": 151}
# Cuts inside a residual block: (convs per block - 1) per block. BasicBlock has 2 convs, Bottleneck 3.
BLOCKS = {"resnet18": (8, 2), "resnet50": (16, 3), "resnet101": (33, 3), "resnet152": (50, 3)}
INNER_CUTS = {name: blocks * (convs - 1) for name, (blocks, convs) in BLOCKS.items()}

NETS = pytest.mark.parametrize("name", NAMES)


def nets_and_inputs(test):
    return NETS(pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)(test))


def test_registry_covers_the_paper_networks():
    assert set(NAMES) == set(CONV_UNITS)


def _randomise_bn(module: nn.Module, seed: int = 0) -> None:
    # Fresh BN layers (weight 1, bias 0, mean 0, var 1) are near-identities in eval mode: a chain that
    # skipped or reordered one would still match. Random affine parameters and statistics expose that.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


@functools.lru_cache(maxsize=None)
def _built(name: str, in_channels: int, size: int, width: float = WIDTH):
    """(torchvision module, its chain), built once per session: VGG construction alone takes ~0.6 s.
    Tests that change weights must deep-copy the pair (together, so the chain keeps sharing layers)."""
    torch.manual_seed(0)
    module = build_torchvision(name, 10, in_channels, size, width)
    _randomise_bn(module)
    return module, chain_of(module)


def _batch(in_channels: int, size: int, n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, in_channels, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------ chain == torchvision

@nets_and_inputs
def test_chain_computes_the_torchvision_function(name, kind):
    module, chain = _built(name, *kind)
    module.eval()
    chain.eval()
    x = _batch(*kind)
    with torch.no_grad():
        expected = module(x)
        got = chain(x)
    assert got.shape == (2, 10)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@nets_and_inputs
def test_chain_owns_exactly_the_torchvision_parameters(name, kind):
    # A layer left out of the chain would never be trained, frozen or dropped.
    module, chain = _built(name, *kind)
    assert {id(p) for p in chain.parameters()} == {id(p) for p in module.parameters()}
    assert {id(b) for b in chain.buffers()} == {id(b) for b in module.buffers()}


def test_build_model_is_chain_of_build_torchvision():
    torch.manual_seed(0)
    a = build_model("resnet18", 10, 3, 32, WIDTH)
    torch.manual_seed(0)
    b = chain_of(build_torchvision("resnet18", 10, 3, 32, WIDTH))
    assert isinstance(a, Chain) and a.names == b.names
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(ValueError, match="resnet18"):
        build_torchvision("alexnet", 10, 3, 32)


# ------------------------------------------------------------------------------------------- cutting

@nets_and_inputs
def test_chain_can_be_cut_between_any_two_units(name, kind):
    _, chain = _built(name, *kind)
    chain.eval()
    x, other = _batch(*kind, seed=1), _batch(*kind, seed=2)
    n = len(chain.units)
    with torch.no_grad():
        full = chain(x)
        states, snapshots = [(x,)], [(x.clone(),)]
        for k in range(n):
            states.append(chain.run(states[-1], k, k + 1))
            snapshots.append(tuple(t.clone() for t in states[-1]))
        # A unit that kept a tensor on itself for a later unit (instead of passing it in the state) would
        # still look right if the suffix ran straight after the prefix; run another batch in between, and
        # take the cuts from the last to the first so every unit before the cut last saw `other`.
        chain(other)
        for k in range(n - 1, 0, -1):
            out = chain.run(states[k], k)
            assert len(out) == 1, f"cut at {k} ({chain.names[k - 1]}|{chain.names[k]})"
            torch.testing.assert_close(out[0], full, atol=1e-5, rtol=0,
                                       msg=lambda m: f"cut at {k} ({chain.names[k - 1]}|{chain.names[k]}): {m}")
    # The dropping strategy caches these states, so no unit may write into the state it was given.
    for k, (state, snap) in enumerate(zip(states, snapshots)):
        assert all(torch.equal(a, b) for a, b in zip(state, snap)), f"state {k} was modified in place"

    lengths = [len(s) for s in states[1:n]]  # states between units, i.e. at the real cut points
    assert set(lengths) <= {1, 2}
    if name.startswith("resnet"):
        # Cuts inside residual blocks carry (branch, skip): the paper's Fig. 4 cut points exist.
        assert lengths.count(2) == INNER_CUTS[name]
        inner = [k for k, s in enumerate(states[1:n], start=1) if len(s) == 2]
        assert all(chain.names[k - 1].split(".conv")[0] == chain.names[k].split(".conv")[0] for k in inner)
    else:
        assert lengths == [1] * (n - 1)


def test_cut_inside_a_residual_block_equals_the_torchvision_block():
    module, chain = _built("resnet18", 3, 32)
    module.eval()
    chain.eval()
    x = _batch(3, 32)
    with torch.no_grad():
        entry = chain.names.index("layer2.0.conv1")  # the block with a downsample shortcut
        inside = chain.run((x,), 0, entry + 1)
        assert len(inside) == 2
        branch, skip = inside
        before = chain.run((x,), 0, entry)[0]
        torch.testing.assert_close(skip, module.layer2[0].downsample(before), atol=1e-5, rtol=0)
        torch.testing.assert_close(chain.run(inside, entry + 1, entry + 2)[0], module.layer2[0](before),
                                   atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------- unit anatomy

@NETS
def test_conv_unit_count_and_names(name):
    module, chain = _built(name, 3, 32)
    assert chain.n_conv == CONV_UNITS[name] == len(chain.units) - 1
    assert len(chain.names) == len(chain.units) and len(set(chain.names)) == len(chain.names)
    assert chain.names[-1] == "classifier"


@NETS
def test_every_conv_unit_scores_its_own_convolutions(name):
    module, chain = _built(name, 3, 32)
    per_unit = [u.conv_weights() for u in chain.units]
    assert all(len(w) >= 1 for w in per_unit[:-1])
    assert per_unit[-1] == []
    for ws in per_unit[:-1]:
        assert all(isinstance(w, nn.Parameter) and w.dim() == 4 for w in ws)
    # Every convolution of the network is scored, and by exactly one unit (a downsample 1x1 conv goes
    # with its block's entry unit, not a unit of its own).
    scored = [id(w) for ws in per_unit for w in ws]
    convs = [id(m.weight) for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert sorted(scored) == sorted(convs)
    assert len(scored) == len(set(scored))
    with_downsample = sum(len(ws) == 2 for ws in per_unit)
    expected = {"resnet18": 3}.get(name, 4 if name.startswith("resnet") else 0)
    assert with_downsample == expected


@NETS
def test_width_scales_every_conv(name):
    _, narrow = _built(name, 3, 32, 0.125)
    _, wide = _built(name, 3, 32, 0.25)
    first = narrow.units[0].conv_weights()[0]
    assert first.shape[0] == 8  # 64 x 0.125
    for u_n, u_w in zip(narrow.units[:-1], wide.units[:-1]):
        for w_n, w_w in zip(u_n.conv_weights(), u_w.conv_weights()):
            assert w_w.shape[0] == 2 * w_n.shape[0]
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(p.numel() for p in narrow.parameters())


@nets_and_inputs
def test_stem_follows_the_input(name, kind):
    in_channels, size = kind
    module, chain = _built(name, *kind)
    first = chain.units[0].conv_weights()[0]
    assert first.shape[1] == in_channels
    if name.startswith("resnet"):
        # <= 64 px: CIFAR stem (3x3, stride 1, no max-pool); above: torchvision's 7x7/2 + max-pool.
        assert first.shape[-1] == (3 if size <= 64 else 7)
        assert isinstance(module.maxpool, nn.Identity) == (size <= 64)
    else:
        # <= 64 px: ceil-mode pools so 28 px does not collapse to 0, and a 1x1 average pool.
        pools = [m for m in module.features if isinstance(m, nn.MaxPool2d)]
        assert all(p.ceil_mode == (size <= 64) for p in pools)
        side = 1 if size <= 64 else 7
        assert module.avgpool.output_size in (side, (side, side))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_full_width_large_input_resnet_is_torchvision_layout(name):
    # "Inputs above 64 px use torchvision's layout unchanged": same parameter names and shapes.
    ours = build_torchvision(name, 10, 3, 224, 1.0).state_dict()
    ref = getattr(torchvision.models, name)(num_classes=10).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}


# -------------------------------------------------------------------------------------------- training

@NETS
def test_one_sgd_step_trains_every_unit(name):
    _, chain = copy.deepcopy(_built(name, 3, 32))
    chain.train()
    x = _batch(3, 32, n=4)
    y = torch.tensor([0, 1, 2, 3])
    opt = torch.optim.SGD(chain.parameters(), lr=0.1, momentum=0.9)
    before = [[w.detach().clone() for w in u.conv_weights()] for u in chain.units[:-1]]
    loss = nn.functional.cross_entropy(chain(x), y)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    for u, name_u in zip(chain.units[:-1], chain.names):
        for w in u.conv_weights():
            assert w.grad is not None and torch.isfinite(w.grad).all(), name_u
    opt.step()
    # The gradient reaches the first unit through the whole chain: every conv weight moved.
    for u, name_u, old in zip(chain.units[:-1], chain.names, before):
        assert any(not torch.equal(w, o) for w, o in zip(u.conv_weights(), old)), f"{name_u} did not change"


# ------------------------------------------------------------------------------- a user's Sequential

def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]


def _user_nets() -> dict[str, nn.Sequential]:
    torch.manual_seed(0)
    flat = nn.Sequential(*_block(1, 4), *_block(4, 8), nn.Flatten(), nn.Linear(8 * 7 * 7, 10))
    nested = nn.Sequential(nn.Sequential(*_block(1, 4)), nn.Sequential(*_block(4, 8)), nn.Dropout(0.1),
                           nn.Flatten(), nn.Linear(8 * 7 * 7, 10))
    return {"flat": flat, "nested": nested}


@pytest.mark.parametrize("kind", ["flat", "nested"])
def test_as_chain_on_a_user_sequential(kind):
    seq = _user_nets()[kind]
    _randomise_bn(seq)
    chain = as_chain(seq)
    assert chain.n_conv == 2
    assert chain.names == ["conv0", "conv1", "classifier"]
    assert {id(p) for p in chain.parameters()} == {id(p) for p in seq.parameters()}
    assert as_chain(chain) is chain
    x = _batch(1, 28)
    seq.eval()
    with torch.no_grad():
        expected = seq(x)
        torch.testing.assert_close(chain(x), expected, atol=1e-6, rtol=0)
        for k in range(1, len(chain.units)):
            torch.testing.assert_close(chain.run(chain.run((x,), 0, k), k)[0], expected, atol=1e-6, rtol=0)
    chain.train()
    opt = torch.optim.SGD(chain.parameters(), lr=0.1)
    w0 = chain.units[0].conv_weights()[0].detach().clone()
    loss = nn.functional.cross_entropy(chain(_batch(1, 28, n=4)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(w0, chain.units[0].conv_weights()[0])


def test_as_chain_custom_names():
    chain = as_chain(_user_nets()["nested"], names=["a", "b", "head"])
    assert chain.names == ["a", "b", "head"]


def test_as_chain_on_flat_vgg_cuts_like_vgg_chain():
    module = build_torchvision("vgg11", 10, 3, 32, WIDTH)
    flat = nn.Sequential(*module.features, module.avgpool, nn.Flatten(1), *module.classifier)
    ours, ref = as_chain(flat), chain_of(module)

    def leaves(unit):
        return [id(m) for m in unit.modules() if not list(m.children())]

    assert [leaves(u) for u in ours.units[:-1]] == [leaves(u) for u in ref.units[:-1]]


@pytest.mark.parametrize("seq, error, match", [
    pytest.param(lambda: nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), ValueError, "no convolution",
                 id="no-conv"),
    pytest.param(lambda: nn.Sequential(nn.Conv2d(1, 4, 3)), ValueError, "classifier", id="ends-in-conv"),
    pytest.param(lambda: nn.Sequential(nn.Sequential(*_block(1, 4))), ValueError, "classifier",
                 id="ends-in-conv-block"),
    pytest.param(lambda: nn.Sequential(*_block(1, 4)), ValueError, "classifier", id="flat-conv-block-no-head"),
    pytest.param(lambda: nn.Conv2d(1, 4, 3), TypeError, "nn.Sequential", id="not-a-sequential"),
])
def test_as_chain_rejects_what_it_cannot_cut(seq, error, match):
    with pytest.raises(error, match=match) as info:
        as_chain(seq())
    assert "\n" not in str(info.value)
