"""The Learn&Drop engine in a plain PyTorch loop (fastdrop.engine): the README example as written, drop
mode serving the head from the cache (the same weights as freeze mode, in float64), resume with a pruned
optimiser, and what it refuses."""
import copy
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from fastdrop.data import load_data
from fastdrop.engine import Indexed, LearnAndDrop, transform_is_random, unit_param_groups
from fastdrop.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The ```python block of the README that contains `marker`."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"expected one README python block containing {marker!r}, found {len(found)}"
    return found[0]


def test_readme_plain_pytorch_example_runs_as_written_in_at_most_10_added_lines():
    code = readme_block("from fastdrop.engine import LearnAndDrop")
    added = [line for line in code.splitlines() if line.rstrip().endswith("# Learn&Drop")]
    assert 1 <= len(added) <= 10
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    ld, model = ns["ld"], ns["model"]
    assert [h["epoch"] for h in ld.history] == [1, 2, 3, 4]
    assert ld.history[-1]["train_loss"] < ld.history[0]["train_loss"]  # it trained
    assert ld.n_cut >= 1 and ld.history[-1]["cut_units"] == ld.cut_units
    assert not any(p.requires_grad for p in ld.chain.unit_parameters(0, ld.n_cut))
    in_opt = {id(p) for g in ns["opt"].param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in ld.trainable_parameters()}  # the cut parameters left the optimiser


def block(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))


def tiny_cnn(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(block(1, 4), block(4, 8), block(8, 8), nn.Flatten(), nn.Linear(8 * 3 * 3, 10)).to(dtype)


@pytest.fixture(scope="module")
def mnist():
    d = load_data("mnist_mini", train_subset=192)
    return d.normalize(d.train.x, torch.float64), d.train.y


def train(model, ds, mode, epochs=3, lrs=None, **kw):
    """A plain loop in the README's shape (drop mode reads indices), batches in a seeded order; `lrs`: the
    optimiser's rate in each epoch (default 0.05 throughout), as a scheduler would set it."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    ld = LearnAndDrop(model, mode=mode, data=ds, eval_batch_size=64, **kw)
    g = torch.Generator().manual_seed(1)
    for e in range(epochs):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[e]
        ld.begin_epoch()
        for x, y, i in DataLoader(Indexed(ds), batch_size=48, shuffle=True, generator=g):
            loss = F.cross_entropy(ld(x, i), y)
            opt.zero_grad()
            loss.backward()
            ld.after_backward(loss, len(y))
            opt.step()
        ld.end_epoch(optimizer=opt)
    return ld, opt


def test_drop_mode_serves_the_head_from_the_cache_and_equals_freeze_mode_in_float64(mnist):
    ds = TensorDataset(*mnist)
    sched = dict(policy="schedule", schedule={1: 1, 2: 2})
    fz, _ = train(tiny_cnn(torch.float64), ds, "freeze", **sched)
    model = tiny_cnn(torch.float64)
    calls = []
    model[0][0].register_forward_hook(lambda *a: calls.append(1))  # the first conv: cut after epoch 1
    dr, _ = train(model, ds, "drop", **sched)
    assert fz.cut_history == dr.cut_history == [(1, 1), (2, 2)]
    assert dr.strategy.cache is not None and dr.strategy.cache_units == 2
    # epoch 1 trains it (4 batches), then it runs once more to fill the cache (3 chunks of 64): no more
    assert len(calls) == 4 + 3
    a, b = fz.chain.state_dict(), dr.chain.state_dict()
    assert max((a[k].double() - b[k].double()).abs().max().item() for k in a) < 1e-10
    with pytest.raises(ValueError, match="by sample index"):
        dr(mnist[0][:4])


def test_resume_prunes_the_new_optimiser_like_the_old_one(mnist):
    ds = TensorDataset(*mnist)
    ld, opt = train(tiny_cnn(torch.float64), ds, "freeze", epochs=2, policy="schedule", schedule={1: 2})
    assert sum(len(g["params"]) for g in opt.param_groups) == len(ld.trainable_parameters()) == 6
    model = tiny_cnn(torch.float64)
    opt2 = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt2.load_state_dict(opt.state_dict())  # Composer's resume after freezing (mosaicml/composer#1002)
    ld2 = LearnAndDrop(model, mode="freeze", policy="schedule", schedule={1: 2})
    ld2.load_state_dict(ld.state_dict())
    ld2.prune(opt2)
    opt2.load_state_dict(opt.state_dict())
    assert ld2.cut_history == ld.cut_history and ld2.epoch == 2
    assert not model[0][1].training and not model[1][1].training  # the cut units' BN: eval from the load on
    model.train()
    model(mnist[0][:2])
    assert not model[0][1].training and not model[1][1].training and model[2][1].training


def test_a_per_unit_rate_policy_steps_at_its_rates_and_gives_the_schedules_back():
    from fastdrop.policies.rules import freezeout_lr, freezeout_times

    model = tiny_cnn(torch.float32)
    opt = torch.optim.SGD(unit_param_groups(model), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    ld = LearnAndDrop(model, mode="freeze", policy="freezeout", epochs=2)
    assert ld.sets_unit_lrs and len(opt.param_groups) == len(ld.chain.units)
    times = freezeout_times(len(ld.chain.units), 0.8, "cubic")
    seen = []
    opt.register_step_pre_hook(lambda o, *_: seen.append([g["lr"] for g in o.param_groups]))
    for progress in (0.0, 0.5):
        with ld.unit_rates(opt, progress):
            opt.step()
        sched.step()
    # each unit at FreezeOut's cosine from the initial rate, whatever StepLR had made of the group's
    assert seen == [pytest.approx([freezeout_lr(p, r, 0.05, True) for r in times]) for p in (0.0, 0.5)]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05 * 0.25] * len(times))  # StepLR's own
    mixed = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.raises(ValueError, match="unit_param_groups"):
        ld.set_unit_lrs(mixed, 0.0)
    flat = LearnAndDrop(tiny_cnn(torch.float32), mode="freeze", policy="learn_and_drop")
    assert not flat.sets_unit_lrs  # and set_unit_lrs leaves any optimiser alone
    flat.set_unit_lrs(mixed, 0.0)
    assert [g["lr"] for g in mixed.param_groups] == [0.05]


def test_end_epoch_hands_the_policy_the_optimisers_rate_or_the_one_given(monkeypatch):
    from fastdrop.strategies.base import Strategy

    seen, end_epoch = [], Strategy.end_epoch
    monkeypatch.setattr(Strategy, "end_epoch", lambda self, e, loss=math.nan, lr=math.nan:
                        seen.append(lr) or end_epoch(self, e, loss, lr))
    model = tiny_cnn(torch.float32)
    opt = torch.optim.SGD(unit_param_groups(model), lr=0.1)
    opt.param_groups[-1]["lr"] = 0.2
    ld = LearnAndDrop(model, mode="freeze", policy="none")
    for kw in (dict(optimizer=opt), dict(optimizer=opt, lr=0.01), {}):
        ld.begin_epoch()
        ld.end_epoch(loss=1.0, **kw)
    assert seen[:2] == [0.2, 0.01] and math.isnan(seen[2])  # the highest group's; the given; unknown


def test_unit_rates_give_each_group_its_units_rate_from_its_own_scheduled_rate():
    """drift's cooling scales the epoch's rate: each group passes its own (a classifier at 2x keeps it)."""
    from fastdrop.engine.rates import UnitRates
    from fastdrop.models import chain_of

    model = tiny_cnn(torch.float32)
    opt = torch.optim.SGD(unit_param_groups(model), lr=0.1)
    opt.param_groups[-1]["lr"] = 0.2
    calls = []

    def cooled(progress, base, epoch_lr):  # the first unit at a tenth, as drift_cool=0.1 with one unit cooled
        calls.append((progress, base, epoch_lr))
        return [epoch_lr * 0.1] + [epoch_lr] * 3

    rates = UnitRates(chain_of(model), "drift", cooled)
    rates.set(opt, 0.3)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01, 0.1, 0.1, 0.2])
    assert calls[0] == (0.3, 0.1, 0.1) and calls[-1] == (0.3, 0.2, 0.2)
    rates.restore()
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1, 0.1, 0.2]
    # a step AMP skipped runs no post-step hook; a chainable scheduler then scales the rate set() left
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    rates.set(opt, 0.4)
    sched.step()
    rates.restore()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.05, 0.05, 0.1])  # the decay survives


@pytest.mark.parametrize("kw, error, match", [
    (dict(mode="prune"), ValueError, "mode must be"),
    (dict(warmpu=2), ValueError, "warmpu"),
    (dict(policy="schedule"), ConfigError, "needs strategy.schedule"),
    (dict(policy="nope"), ConfigError, "strategy.policy must be one of"),
    (dict(policy="drift"), ValueError, "needs the training images"),
])
def test_bad_options_are_refused_in_one_line(kw, error, match):
    with pytest.raises(error, match=match):
        LearnAndDrop(tiny_cnn(), **kw)


class Flipping(Dataset):
    def __init__(self, x, random):
        self.x, self.random = x, random

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i]
        return (x.flip(-1) if self.random and torch.rand(()) < 0.5 else x), 0


def test_a_random_transform_is_recognised_without_touching_the_callers_rng(mnist):
    x = mnist[0][:8]
    state = torch.get_rng_state()
    assert transform_is_random(Flipping(x, True)) and not transform_is_random(Flipping(x, False))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("augmented", [False, True])
def test_a_loop_that_augments_says_so_and_drift_waits_for_the_lr_drop(mnist, augmented):
    """augmented=True is the engine's copy of fastdrop run's data.augment: at the peak rate only drift's floor
    may cut, so the stall test (the only one these options leave: floor 0, every drift 'settled and stalled')
    cuts at epoch 2 where the loop does not augment and waits where it does, until the rate is lowered."""
    x, y = mnist
    ld, _ = train(tiny_cnn(torch.float32), TensorDataset(x.float(), y), "freeze", lrs=[0.05, 0.05, 0.005],
                  policy="drift", warmup=0, drift_floor=0.0, drift_settle=100.0, drift_stall=0.0, augmented=augmented)
    cuts = [h["decision"] for h in ld.history]
    # epoch 1 has no previous drift to stall against; un-augmented, epoch 2 cuts both cuttable units at once
    assert cuts == (["keep", "keep", "cut"] if augmented else ["keep", "cut", "keep"])
    assert ld.n_cut == 2
