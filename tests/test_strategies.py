"""Freezing and Dropping are the same computation (Sect. 3.2 vs [8]) - proved in float64 - plus the
strategies' bookkeeping, the feature cache backends and Dropping on a user's own nn.Sequential."""
import json
from pathlib import Path

import pytest
import torch
from conftest import compose_config
from torch import nn

from fastdrop.data import ImageData, Split
from fastdrop.models import as_chain
from fastdrop.strategies.cache import FeatureCache
from fastdrop.run.trainer import Trainer

def make_cfg(tmp_path, *overrides):
    return compose_config(["progress=false", f"results_dir={tmp_path}/results", "model.width=0.125",
                           "data.train_subset=512", "data.test_subset=128", "batch_size=64", *overrides])


def fit(tmp_path, *overrides, **kw):
    cfg = make_cfg(tmp_path, *overrides)
    t = Trainer(cfg, tmp_path / f"run-{cfg.strategy.name}", **kw)
    return t.fit(), t


def assert_same_run(tmp_path, *overrides, tol=1e-9, make_kw=dict):
    """`make_kw()` gives each of the two runs its own Trainer keywords (e.g. a fresh user module)."""
    rf, tf = fit(tmp_path, "strategy=freezing", "precision=64-true", *overrides, **make_kw())
    rd, td = fit(tmp_path, "strategy=dropping", "precision=64-true", *overrides, **make_kw())
    hf, hd = rf["history"], rd["history"]
    assert [h["dropped_units"] for h in hf] == [h["dropped_units"] for h in hd]
    assert [h["test_acc"] for h in hf] == [h["test_acc"] for h in hd]
    for a, b in zip(hf, hd):
        assert abs(a["train_loss"] - b["train_loss"]) <= tol
    sf, sd = tf.chain.state_dict(), td.chain.state_dict()
    diff = max((sf[k].double() - sd[k].double()).abs().max().item() for k in sf)
    assert diff <= tol
    assert hd[-1]["fwd_macs_per_sample"] < hf[-1]["fwd_macs_per_sample"]  # dropping really skipped the tail
    return rf, rd


def test_dropping_equals_freezing_vgg_schedule(tmp_path):
    rf, rd = assert_same_run(tmp_path, "model=vgg11", "epochs=4", "strategy.policy=schedule",
                             "strategy.schedule={1:2,2:5}")
    assert rd["history"][-1]["dropped_units"] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    # the incremental cut at epoch 2 built a cache again (from the cached states, see _build)
    assert [h["cache_time_s"] > 0 for h in rd["history"]] == [False, True, True, False]


def test_dropping_equals_freezing_resnet_cut_inside_block(tmp_path):
    # unit 2 = layer1.0.conv1: cutting after it leaves (branch, skip) in the cache (Fig. 4); 4 also mid-block
    rf, rd = assert_same_run(tmp_path, "model=resnet18", "model.width=0.0625", "epochs=3",
                             "data.train_subset=256", "strategy.policy=schedule", "strategy.schedule={1:2,2:4}")
    assert rd["history"][-1]["dropped_units"][-1] == "layer1.1.conv1"


def test_dropping_equals_freezing_torchvision_resnet18_instance(tmp_path):
    """A user's torchvision resnet18 object (full width, torchvision's stem), cut inside a block."""
    import torchvision

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (32, 3, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (32,), generator=g)

    def make_kw():
        torch.manual_seed(0)
        data = ImageData("toy", Split(x, y), Split(x[:16], y[:16]), (0.5,) * 3, (0.25,) * 3)
        return {"chain": torchvision.models.resnet18(num_classes=10), "data": data, "name": "my-resnet18"}

    rf, rd = assert_same_run(tmp_path, "epochs=2", "batch_size=16", "strategy.policy=schedule",
                             "strategy.schedule={1:4}", make_kw=make_kw)
    assert rd["model"] == rf["model"] == "my-resnet18" and rd["width"] is None
    assert rd["history"][-1]["dropped_units"][-1] == "layer1.1.conv1"  # mid-block: (branch, skip) cached


def test_dropping_equals_freezing_auto_policy(tmp_path):
    rf, rd = assert_same_run(tmp_path, "model=vgg11", "model.width=0.0625", "epochs=5", "strategy.warmup=1",
                             "data.train_subset=1024", "optim.lr=0.02")
    assert rd["history"][-1]["dropped_units"], "the automatic policy made no cut: the test proves nothing"


def test_sgd_scores_every_unit_and_never_cuts(tmp_path):
    row, t = fit(tmp_path, "strategy=sgd", "epochs=2", "strategy.warmup=0")
    for h in row["history"]:
        assert h["dropped_units"] == []
        assert list(h["scores"]) == t.chain.names[:-1]
        assert all(0.0 <= v <= 1.0 for v in h["scores"].values())
        assert h["trained_params"] == row["params_total"]
        assert h["fwd_macs_per_sample"] == row["fwd_macs_full_per_sample"]
    saved = json.loads(Path(t.row_path).read_text())
    assert saved["run_id"] == row["run_id"] and saved["status"] == "completed"


def test_freezing_stops_gradients_and_keeps_tail_fixed(tmp_path):
    row, t = fit(tmp_path, "strategy=freezing", "epochs=3", "strategy.policy=schedule", "strategy.schedule={1:3}")
    tail = list(t.chain.unit_parameters(0, 3))
    assert all(not p.requires_grad and p.grad is None for p in tail)
    assert row["history"][-1]["trained_params"] < row["params_total"]
    assert row["history"][-1]["fwd_macs_per_sample"] == row["fwd_macs_full_per_sample"]  # frozen still runs


def test_frozen_batchnorm_statistics_do_not_move(tmp_path):
    cfg = make_cfg(tmp_path, "strategy=freezing", "epochs=3", "strategy.policy=schedule", "strategy.schedule={1:2}")
    t = Trainer(cfg, tmp_path / "run")
    t.history.append(t.train_epoch(1))
    bn = [m for m in t.chain.units[0].modules() if isinstance(m, nn.BatchNorm2d)][0]
    before = bn.running_mean.clone()
    t.train_epoch(2)
    assert torch.equal(before, bn.running_mean)


@pytest.mark.parametrize("backend", ["device", "host", "disk"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cache_backends_round_trip(tmp_path, backend, dtype):
    shapes = [(3, 4, 4), (5, 2, 2)]
    src = [torch.randn(10, *s).to(dtype) for s in shapes]
    c = FeatureCache(10, shapes, dtype, torch.device("cpu"), backend, tmp_path / "cache")
    assert c.backend == backend
    c.write(0, tuple(t[:6] for t in src))
    c.write(6, tuple(t[6:] for t in src))
    rows = torch.tensor([9, 0, 3])
    got = c.gather(rows, dtype)
    for g, s in zip(got, src):
        assert torch.equal(g, s[rows])  # exact: no conversion on the way
    c.close()
    assert not (tmp_path / "cache").exists()


def test_disk_cache_is_removed_at_the_end_of_the_run(tmp_path):
    row, t = fit(tmp_path, "strategy=dropping", "epochs=3", "strategy.policy=schedule", "strategy.schedule={1:2}",
                 "strategy.cache.backend=disk")
    assert row["history"][-1]["cache_backend"] == "disk"
    assert not (t.run_dir / "feature_cache").exists() or not any((t.run_dir / "feature_cache").rglob("*.bin"))


def test_cache_views_keep_augmentation(tmp_path, monkeypatch):
    seen = []  # (rows, gathered states) of every batch the head trained on from the cache
    real = FeatureCache.gather

    def gather(self, rows, dtype):
        out = real(self, rows, dtype)
        seen.append((rows.cpu(), out[0].detach().cpu()))
        return out

    monkeypatch.setattr(FeatureCache, "gather", gather)
    row, t = fit(tmp_path, "strategy=dropping", "epochs=3", "strategy.policy=schedule", "strategy.schedule={1:2}",
                 "strategy.cache.views=3", "data.augment=true")
    h = row["history"][-1]
    assert h["cache_bytes"] > 0 and "3 cached views" in row["cache_note"]
    # The head really sees the three views: rows from every view, and one image's views are different inputs.
    n = len(t.data.train)
    rows = torch.cat([r for r, _ in seen])
    states = torch.cat([s for _, s in seen])
    assert set((rows // n).tolist()) == {0, 1, 2}
    by_sample = {}
    for r, s in zip(rows.tolist(), states):
        by_sample.setdefault(r % n, {})[r // n] = s
    pairs = [v for v in by_sample.values() if len(v) > 1]
    # Two random crops/flips of one image coincide now and then (about 1 in 160 draws), so not *every* pair
    # differs; with the views ignored none would.
    differ = sum(not torch.equal(*list(v.values())[:2]) for v in pairs)
    assert pairs and differ >= 0.9 * len(pairs), (differ, len(pairs))


def test_dropping_on_a_users_sequential(tmp_path):
    """The fine-tuning use case: any nn.Sequential of conv blocks, no registry entry needed."""
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()), nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    chain = as_chain(seq)
    assert chain.n_conv == 3
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (256, 1, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    data = ImageData("toy", Split(x, y), Split(x[:64], y[:64]), (0.5,), (0.25,))
    row, t = fit(tmp_path, "strategy=dropping", "epochs=3", "strategy.policy=schedule", "strategy.schedule={1:2}",
                 chain=chain, data=data)
    assert row["history"][-1]["dropped_units"] == ["conv0", "conv1"]
    assert row["history"][-1]["fwd_macs_per_sample"] < row["fwd_macs_full_per_sample"]


def test_grow_batch_option_keeps_freezing_equal_to_dropping(tmp_path):
    rf, rd = assert_same_run(tmp_path, "model=vgg11", "epochs=3", "strategy.policy=schedule",
                             "strategy.schedule={1:6}", "strategy.grow_batch=true", "strategy.max_batch_size=256")
    sizes = [h["batch_size"] for h in rd["history"]]
    assert sizes[0] == 64 and sizes[-1] > 64
    assert rd["history"][-1]["lr"] == pytest.approx(rd["history"][0]["lr"] * sizes[-1] / 64)


def test_warmup_ends_when_scores_settle(tmp_path):
    # A huge tolerance: the scores "settle" at epoch 2, long before the fixed warm-up of 4 would end.
    row, t = fit(tmp_path, "strategy=freezing", "epochs=5", "strategy.warmup=4", "strategy.warmup_settle=1.0")
    assert t.strategy.policy.warm_since == 2


@pytest.mark.parametrize("pays", [[False, False, True], [True]])
def test_cost_aware_cut_defers_caching_and_stays_equal_to_freezing(tmp_path, monkeypatch, pays):
    from fastdrop.strategies.dropping import Dropping

    answers = iter(pays + [True] * 10)
    monkeypatch.setattr(Dropping, "caching_pays", lambda self: (next(answers), 1.0, 0.5))
    rf, rd = assert_same_run(tmp_path, "model=resnet18", "model.width=0.0625", "epochs=4", "data.train_subset=256",
                             "strategy.policy=schedule", "strategy.schedule={1:2}", "strategy.cache.cost_aware=true")
    run_units = [h["fwd_macs_per_sample"] for h in rd["history"]]
    full = rd["fwd_macs_full_per_sample"]
    if pays[0]:
        assert run_units[1:] == [run_units[1]] * 3 and run_units[1] < full
    else:  # epochs 2 and 3 still run the cut units, epoch 4 reads them from the cache
        assert run_units[:3] == [full] * 3 and run_units[3] < full


def _traced_models():
    """Classifiers cut automatically (fastdrop/models/traced.py), full width (ConvNeXt narrowed), tiny inputs;
    name -> (build, units to cut after epoch 1)."""
    import torchvision

    def timm_model(name):
        return pytest.importorskip("timm").create_model(name, num_classes=10)

    tv = torchvision.models
    return {
        # convnext_tiny's layout (3, 3, 9, 3 blocks: the same 22 traced units) at 1/12 of its width: full width
        # in float64 took 12 s of the suite; the full-width model's cut is checked in test_traced
        "convnext_tiny_narrow": (lambda: tv.convnext.ConvNeXt([tv.convnext.CNBlockConfig(c, n, b) for c, n, b in (
            (8, 16, 3), (16, 32, 3), (32, 64, 9), (64, None, 3))], num_classes=10), 5),
        "efficientnet_b0": (lambda: tv.efficientnet_b0(num_classes=10), 9),
        "mobilenet_v3_small": (lambda: tv.mobilenet_v3_small(num_classes=10), 8),
        "vit": (lambda: tv.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                             mlp_dim=32, num_classes=10), 3),
        "timm_resnet18": (lambda: timm_model("resnet18"), 3),
        "timm_convnext_atto": (lambda: timm_model("convnext_atto"), 4),
    }


@pytest.mark.parametrize("name", ["convnext_tiny_narrow", "efficientnet_b0", "mobilenet_v3_small", "vit",
                                  "timm_resnet18", "timm_convnext_atto"])
def test_dropping_equals_freezing_traced_classifiers(tmp_path, name):
    """torchvision and timm classifiers, cut at traced boundaries: the same computation in float64."""
    build, k = _traced_models()[name]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(8) % 10

    def make_kw():
        torch.manual_seed(0)
        data = ImageData("toy", Split(x, y), Split(x[:4], y[:4]), (0.5,) * 3, (0.25,) * 3)
        return {"chain": build(), "data": data, "name": name}

    rf, rd = assert_same_run(tmp_path, "epochs=2", "batch_size=8", "checkpoint=none", "strategy.policy=schedule",
                             f"strategy.schedule={{1:{k}}}", make_kw=make_kw)
    assert len(rd["history"][-1]["dropped_units"]) == k
