"""The Lightning callback (fastdrop.lightning, the `lightning` extra): the same cuts as `fastdrop run` on
the same seed, policy and batch order (freeze, and drop where the loop is deterministic), a run killed
and resumed from its checkpoint continues with the same cuts, Lightning's DDP with 2 CPU processes,
the README example as written, and the warning on a random training transform."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

L = pytest.importorskip("lightning")

from fastdrop.engine import Indexed  # noqa: E402
from fastdrop.lightning import LearnAndDrop, unit_param_groups  # noqa: E402
from fastdrop.models import build, build_model  # noqa: E402
from fastdrop.strategies import RunContext  # noqa: E402
from fastdrop.run.trainer import Trainer  # noqa: E402
from test_engine import readme_block  # noqa: E402


class Classifier(L.LightningModule):
    def __init__(self, model, optim, per_unit=False):
        super().__init__()
        self.model, self.optim, self.per_unit = model, optim, per_unit

    def training_step(self, batch, batch_idx):
        x, y = batch[:2]
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        o = self.optim
        params = unit_param_groups(self.model) if self.per_unit else self.parameters()
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                               nesterov=o.nesterov)


class FastdropOrder(Sampler):
    """The permutation fastdrop's trainer draws for each epoch (RunContext.generator(epoch, 0))."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning counts from 0, fastdrop from 1
        self.epoch = epoch

    def __iter__(self):
        g = RunContext(torch.device("cpu"), seed=self.seed).generator(self.epoch + 1, 0)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self):
        return self.n


def lightning_trainer(tmp_path, epochs, callbacks, **kw):
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, use_distributed_sampler=False,
                     default_root_dir=tmp_path, callbacks=callbacks, **kw)


def fastdrop_run(small_cfg, strategy, epochs=4, policy="learn_and_drop"):
    """`fastdrop run` in-process (cli.run_task's Trainer) on the bundled MNIST subset; returns the row,
    the initial weights and the training split and config it ran with."""
    cfg = small_cfg([f"strategy={strategy}", "model=resnet18"],
                    {"epochs": epochs, "data.train_subset": 192, "batch_size": 48, "strategy.policy": policy})
    t = Trainer(cfg, Path(cfg.results_dir).parent / f"run-{strategy}")
    start = copy.deepcopy(t.chain.state_dict())
    return t.fit(), start, t.data, cfg


def same_start(cfg, data, start):
    chain, _ = build(cfg.model, data.num_classes, data.in_channels, data.image_size)
    chain.load_state_dict(start)
    return chain


@pytest.mark.parametrize("strategy, mode", [("freezing", "freeze"), ("dropping", "drop")])
def test_callback_cuts_as_fastdrop_run_on_the_same_seed_policy_and_batches(small_cfg, tmp_path, strategy, mode):
    row, start, data, cfg = fastdrop_run(small_cfg, strategy)
    ds = Indexed(TensorDataset(data.normalize(data.train.x, torch.float32), data.train.y))
    loader = DataLoader(ds, batch_size=cfg.batch_size, sampler=FastdropOrder(len(ds), cfg.seed))
    cb = LearnAndDrop(policy="learn_and_drop", mode=mode, warmup=cfg.strategy.warmup, seed=cfg.seed,
                      eval_batch_size=cfg.data.eval_batch_size)
    lightning_trainer(tmp_path, cfg.epochs, [cb], enable_checkpointing=False).fit(
        Classifier(same_start(cfg, data, start), cfg.optim), loader)
    ours, theirs = cb.history, row["history"]
    assert [h["cut_units"] for h in ours] == [h["dropped_units"] for h in theirs]
    assert [h["decision_reason"] for h in ours] == [h["decision_reason"] for h in theirs]
    assert any(h["decision"] == "cut" for h in ours[1:-1])  # a cut the later epochs train after
    for a, b in zip(ours, theirs):
        assert a["scores"].keys() == b["scores"].keys()
        assert all(abs(a["scores"][k] - b["scores"][k]) < 1e-5 for k in a["scores"])
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5


def test_freezeout_through_the_callback_sets_each_units_rate_as_fastdrop_run_does(small_cfg, tmp_path):
    """FreezeOut's per-unit cosine rates reach a Lightning optimiser built from unit_param_groups: the same
    losses, cuts and final weights as `fastdrop run` on the same seed and batches (without the rates the
    losses part from the first step: every unit would train at the optimiser's flat rate)."""
    row, start, data, cfg = fastdrop_run(small_cfg, "freezing", policy="freezeout")
    ds = TensorDataset(data.normalize(data.train.x, torch.float32), data.train.y)
    loader = DataLoader(ds, batch_size=cfg.batch_size, sampler=FastdropOrder(len(ds), cfg.seed))
    cb = LearnAndDrop(policy="freezeout", mode="freeze", warmup=cfg.strategy.warmup, seed=cfg.seed)
    model = Classifier(same_start(cfg, data, start), cfg.optim, per_unit=True)
    trainer = lightning_trainer(tmp_path, cfg.epochs, [cb], enable_checkpointing=False)
    trainer.fit(model, loader)
    ours, theirs = cb.history, row["history"]
    assert [h["cut_units"] for h in ours] == [h["dropped_units"] for h in theirs]
    assert any(h["cut_units"] for h in ours[:-1])  # FreezeOut froze a unit that later epochs train after
    assert all(abs(a["train_loss"] - b["train_loss"]) < 1e-5 for a, b in zip(ours, theirs))
    # after the fit, the optimiser's groups hold the rates its own (flat) schedule gave, not FreezeOut's
    assert {g["lr"] for g in trainer.optimizers[0].param_groups} == {cfg.optim.lr}


class Rates(L.Callback):
    """The rates each optimiser step runs with (after the fastdrop callback set them)."""

    def __init__(self):
        self.seen = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.seen.append([g["lr"] for g in optimizer.param_groups])


class Scheduled(Classifier):
    def configure_optimizers(self):
        opt = torch.optim.SGD(unit_param_groups(self.model), lr=0.05, momentum=0.9)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]


def two_conv_units_on_mnist():
    """Two conv units and a classifier (three units), seeded, and 96 bundled MNIST images."""
    from fastdrop.data import load_data

    data = load_data("mnist_mini", train_subset=96)
    ds = TensorDataset(data.normalize(data.train.x, torch.float32), data.train.y)
    torch.manual_seed(0)
    block = lambda i, o: torch.nn.Sequential(torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
    return torch.nn.Sequential(block(1, 4), block(4, 4), torch.nn.Flatten(), torch.nn.Linear(4 * 7 * 7, 10)), ds


def test_per_unit_rates_start_from_the_initial_rate_and_the_scheduler_never_sees_them(tmp_path):
    from fastdrop.policies.rules import freezeout_lr, freezeout_times

    model, ds = two_conv_units_on_mnist()
    rates = Rates()
    trainer = lightning_trainer(tmp_path, 2, [LearnAndDrop(policy="freezeout"), rates], enable_checkpointing=False)
    trainer.fit(Scheduled(model, None), DataLoader(ds, batch_size=48))
    times = freezeout_times(3, 0.8, "cubic")  # two conv units and the classifier
    assert rates.seen[0] == pytest.approx([freezeout_lr(0.0, r, 0.05, True) for r in times])
    # epoch 2: StepLR had halved the groups' rates; FreezeOut's cosines start from the initial one
    assert rates.seen[2] == pytest.approx([freezeout_lr(0.5, r, 0.05, True) for r in times])
    # StepLR multiplies the rate it finds: it found its own each time, not FreezeOut's
    assert [g["lr"] for g in trainer.optimizers[0].param_groups] == pytest.approx([0.05 * 0.5 ** 2] * 3)


def test_the_policy_sees_each_epochs_scheduled_rate_not_the_next_ones(tmp_path, monkeypatch):
    """drift's stall test reads the epoch's LR: Lightning steps an epoch-wise scheduler before the last
    batch's end, where the callback decides, so the rate must be read at the epoch's start."""
    from fastdrop.strategies.base import Strategy

    seen, end_epoch = [], Strategy.end_epoch
    monkeypatch.setattr(Strategy, "end_epoch", lambda self, e, loss=float("nan"), lr=float("nan"):
                        seen.append(lr) or end_epoch(self, e, loss, lr))
    model, ds = two_conv_units_on_mnist()
    trainer = lightning_trainer(tmp_path, 3, [LearnAndDrop(policy="none")], enable_checkpointing=False)
    trainer.fit(Scheduled(model, None), DataLoader(ds, batch_size=48))
    assert seen == pytest.approx([0.05, 0.025, 0.0125])


def test_a_per_unit_rate_policy_refuses_an_optimiser_group_that_mixes_units(tmp_path):
    from fastdrop.data import load_data

    data = load_data("mnist_mini", train_subset=96)
    ds = TensorDataset(data.normalize(data.train.x, torch.float32), data.train.y)
    optim = type("O", (), dict(lr=0.05, momentum=0.9, weight_decay=0.0, nesterov=False))
    model = build_model("vgg11", 10, 1, 28, width=0.25)
    with pytest.raises(ValueError, match="unit_param_groups"):
        lightning_trainer(tmp_path, 2, [LearnAndDrop(policy="freezeout")], enable_checkpointing=False).fit(
            Classifier(model, optim), DataLoader(ds, batch_size=48))


class Killed(RuntimeError):
    pass


class KillAt(L.Callback):
    """Dies at the start of epoch `epoch` (1-based), after the previous epoch's checkpoint is on disk."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epoch:
            raise Killed(f"killed before epoch {self.epoch}")


class Validated(Classifier):
    """With a validation loop: Lightning's checkpoint is then written at validation end, before
    on_train_epoch_end; the callback's cut must already be in it."""

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", F.cross_entropy(self.model(batch[0]), batch[1]))


@pytest.mark.parametrize("mode", ["freeze", "drop"])
def test_a_killed_and_resumed_run_continues_with_the_same_cuts(small_cfg, tmp_path, mode):
    cfg = small_cfg(["model=resnet18"], {"data.train_subset": 192, "batch_size": 48})
    from fastdrop.data import load_data

    data = load_data("mnist_mini", train_subset=192, test_subset=48)
    torch.manual_seed(0)
    start = build(cfg.model, 10, 1, 28)[0].state_dict()
    ds = Indexed(TensorDataset(data.normalize(data.train.x, torch.float32), data.train.y))
    val = DataLoader(TensorDataset(data.normalize(data.test.x, torch.float32), data.test.y), batch_size=48)

    def run(name, kill=None, resume=False):
        cb = LearnAndDrop(policy="learn_and_drop", mode=mode, warmup=1)
        # saved at validation end, before on_train_epoch_end: the epoch's cut must be decided by then
        ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / name, save_last=True, save_on_train_epoch_end=False)
        model = Validated(same_start(cfg, data, start), cfg.optim)
        trainer = lightning_trainer(tmp_path / name, 5, [cb, ckpt] + ([KillAt(kill)] if kill else []))
        loader = DataLoader(ds, batch_size=48, sampler=FastdropOrder(len(ds), 0))
        trainer.fit(model, loader, val, ckpt_path=tmp_path / name / "last.ckpt" if resume else None)
        return cb, model, trainer

    whole, whole_model, _ = run("whole")
    cuts = whole.cut_history
    assert cuts and cuts[0][0] < 5  # a cut that later epochs train after
    kill = cuts[0][0] + 1  # die right after the checkpoint that holds the first cut
    with pytest.raises(Killed):
        run("killed", kill=kill)
    assert torch.load(tmp_path / "killed" / "last.ckpt", weights_only=False)["epoch"] == kill - 2  # 0-based
    resumed, resumed_model, trainer = run("killed", resume=True)
    assert resumed.cut_history == cuts
    assert [h["decision_reason"] for h in resumed.history] == [h["decision_reason"] for h in whole.history]
    a, b = whole_model.model.state_dict(), resumed_model.model.state_dict()
    assert max((a[k].double() - b[k].double()).abs().max().item() for k in a) < 1e-6
    n = resumed.engine.n_cut
    in_opt = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in resumed.engine.trainable_parameters()}
    assert all(not m.training for u in resumed.engine.chain.units[:n] for m in u.modules()
               if isinstance(m, torch.nn.BatchNorm2d))


def test_lightning_ddp_with_two_cpu_processes(tmp_path):
    """Lightning's own DDP launcher (strategy="ddp", gloo): both modes, both ranks cut alike, agree on the
    scores and end with the same weights (the DDP wrapper is rebuilt after each cut)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    subprocess.run([sys.executable, str(REPO / "tests" / "lightning_ddp_run.py"), str(tmp_path)], cwd=tmp_path,
                   env=env, check=True, timeout=300)
    for mode in ("freeze", "drop"):
        ranks = [json.loads((tmp_path / f"{mode}-rank{r}.json").read_text()) for r in (0, 1)]
        assert ranks[0] == ranks[1]  # cuts, scores, weights
        assert ranks[0]["world_size"] == 2
        assert ranks[0]["cut_history"] == [[1, 1], [2, 2]] and ranks[0]["wrapped_at"] == 2
        # the schedule reads no scores, so none are paid for; in freeze mode the script makes it read them,
        # and the ranks above agreed on every epoch's scores
        if mode == "drop":
            assert not any(ranks[0]["scores"])
        else:
            assert all(ranks[0]["scores"]) and len(ranks[0]["scores"]) == 3


def test_readme_lightning_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # its checkpoints go to ./checkpoints
    ns = {}
    exec(compile(readme_block("from fastdrop.lightning import LearnAndDrop"), "README.md", "exec"), ns)
    cb = ns["learn_and_drop"]
    assert [h["epoch"] for h in cb.history] == [1, 2, 3, 4]
    assert cb.engine.n_cut >= 1 and cb.engine.strategy.cache_units >= 1  # drop mode built its cache


class RandomFlip(Dataset):
    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return (x.flip(-1) if torch.rand(()) < 0.5 else x), y


def test_drop_mode_says_when_the_training_transform_is_random_and_drift_waits_for_the_lr_drop(tmp_path):
    from fastdrop.data import load_data

    data = load_data("mnist_mini", train_subset=96)
    ds = Indexed(RandomFlip(TensorDataset(data.normalize(data.train.x, torch.float32), data.train.y)))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))
    cb = LearnAndDrop(policy="schedule", mode="drop", schedule={1: 1})
    optim = type("O", (), dict(lr=0.05, momentum=0.9, weight_decay=0.0, nesterov=False))
    with pytest.warns(UserWarning, match="views=K") as seen:
        lightning_trainer(tmp_path, 2, [cb], enable_checkpointing=False).fit(
            Classifier(model, optim), DataLoader(ds, batch_size=48))
    assert any("data=" in str(w.message) for w in seen)
    assert cb.cut_history == [(1, 1)]
    # a random transform: the engine is told the loop augments (drift's stall test then waits for the LR drop)
    assert cb.engine.strategy.augmented and cb.engine.strategy.cfg.drift_stall_lr is None
