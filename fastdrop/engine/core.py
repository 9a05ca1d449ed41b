"""`LearnAndDrop`: the Learn&Drop engine for a training loop of your own.

It is a small typed front to the objects fastdrop's own trainer drives, and decides nothing itself: a
strategy from `fastdrop.strategies` (Freezing for mode="freeze", Dropping for mode="drop") scores the
units from their gradients (Eq. 2), asks its cut policy (`fastdrop.policies`, by name),
freezes the cut units, and in drop mode builds and serves the feature cache. The strategy's config is
the `strategy` node `fastdrop run strategy=<freezing|dropping> strategy.policy=<policy>` composes, with
the keyword options over it (warmup=2, drift_floor=0.05, ...), so the same seed, policy and batches
give the same cuts as `fastdrop run`. The Lightning callback (fastdrop.lightning) drives this class.

    ld = LearnAndDrop(model, policy="learn_and_drop", mode="freeze")
    for epoch in range(epochs):
        ld.begin_epoch()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(); loss.backward()
            ld.after_backward(loss, len(y))
            opt.step()
        print(ld.end_epoch(optimizer=opt)["decision_reason"])

In drop mode the loop reads sample indices too (`fastdrop.engine.Indexed(train_set)`) and calls
`ld(x, index)` instead of `model(x)`: once units are cut, their cached outputs feed the head.
"""
from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..config import StrategyConfig, conf_dir
from ..models import Chain, chain_of
from ..strategies import STRATEGIES, RunContext
from .datasets import as_data
from .rates import UnitRates, epoch_lr

MODES = {"freeze": "freezing", "drop": "dropping"}  # engine mode -> fastdrop strategy


def strategy_config(mode: str, policy: str, epochs: int = 0, **options) -> DictConfig:
    """The strategy node `fastdrop run` composes for `mode` and `policy`, with `options` over it; checked
    by the schema (a misspelt key fails) and by the CLI's own strategy checks."""
    from ..config.validate import ConfigError, _strategy_problems

    if mode not in MODES:
        raise ValueError(f"mode must be 'freeze' or 'drop' (got {mode!r})")
    name = MODES[mode]
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(StrategyConfig), OmegaConf.load(conf_dir() / "strategy" / f"{name}.yaml"),
                              {"policy": policy}, options)
    except Exception as e:  # omegaconf's key and type errors: one line
        raise ValueError(f"LearnAndDrop options: {str(e).splitlines()[0]}") from None
    if cfg.grow_batch:
        raise ValueError("grow_batch is fastdrop's own loop feature: the batch size is your loop's")
    problems = _strategy_problems(OmegaConf.create({"strategy": cfg, "epochs": epochs or 2 ** 31}))
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg


def prune(optimizer: torch.optim.Optimizer, params) -> int:
    """Take `params` (and their state) out of `optimizer`. Its groups keep their number and order, so a
    resumed run that prunes the same parameters first loads the optimiser's state dict (the resume that
    breaks after freezing in Composer, mosaicml/composer#1002). Returns how many parameters left."""
    cut = {id(p) for p in params}
    removed = 0
    for g in optimizer.param_groups:
        keep = [p for p in g["params"] if id(p) not in cut]
        removed, g["params"] = removed + len(g["params"]) - len(keep), keep
    for p in [p for p in optimizer.state if id(p) in cut]:
        del optimizer.state[p]
    return removed


def _num_classes(chain: Chain) -> int | None:
    linears = [m for m in chain.units[-1].modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


class LearnAndDrop:
    """Learn&Drop on `model` (anything `fastdrop.models.chain_of` cuts; it shares the model's layers).

    data: the training set, needed by the drift policy (its probe) and by drop mode (the cache): a
      map-style Dataset whose items start with the normalised image tensor, without random augmentation
      (its index order is the one `ld(x, index)` refers to), or a fastdrop ImageData on the model's device.
    num_classes: for the policies' loss test (ln K); default: the classifier's last Linear.
    epochs: the run's length, for the policies that place their cuts by share of it.
    views: drop mode's cached views per image (1: un-augmented; K: plain, flip, K-2 random crops).
    augmented: your loop trains on randomly augmented images (`data` stays the plain set): `drift` then
      cuts a stalled unit only once the schedule has lowered the LR, as `fastdrop run` does with augmentation.
    seed, batch_size, eval_batch_size, cache_dir: the run context of the strategy (view draws, chunk
      size when building the cache, where a disk cache goes).
    options: any other `strategy.*` key of the config (warmup, start_loss, drift_floor, schedule, ...).
    """

    def __init__(self, model: nn.Module, policy: str = "learn_and_drop", mode: str = "freeze", *, data=None,
                 num_classes: int | None = None, epochs: int = 0, views: int = 1, seed: int = 0,
                 batch_size: int = 256, eval_batch_size: int = 256, cache_dir: str | Path | None = None,
                 augmented: bool = False, **options):
        self.model, self.chain, self.mode = model, chain_of(model), mode
        options["cache"] = {"views": views, **options.get("cache", {})}
        cfg = strategy_config(mode, policy, epochs, **options)
        p = next(self.chain.parameters())
        k = num_classes or _num_classes(self.chain)
        if k is None:
            raise ValueError("pass num_classes=: the model's classifier has no nn.Linear to read it from")
        run_dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / f"fastdrop-engine-{os.getpid()}-{id(self)}"
        ctx = RunContext(device=p.device, dtype=p.dtype, seed=seed, batch_size=batch_size,
                         eval_batch_size=eval_batch_size, run_dir=run_dir, epochs=epochs, loop_augments=bool(augmented))
        self.strategy = STRATEGIES[MODES[mode]](cfg, self.chain, as_data(data, k, p.device), ctx)
        self.epoch = 0              # the epoch begun last (1-based)
        self.history: list[dict] = []  # end_epoch's records
        self._in_epoch = False
        self._loss_sum, self._loss_n = 0.0, 0
        self._rows = None           # drop mode: the cache row of each sample this epoch
        self._held: list[nn.Module] = []
        self._rates = UnitRates(self.chain, cfg.policy, self.unit_lrs)
        self._hooks = [m.register_forward_pre_hook(self._hold_cut_units_eval) for m in {id(model): model,
                                                                                      id(self.chain): self.chain}.values()]

    # -- the loop's calls -------------------------------------------------------------------------
    def begin_epoch(self, epoch: int | None = None) -> None:
        """Start epoch `epoch` (default: the next): reset the scores, train mode for the units that train,
        and in drop mode build the cache of units cut at the last decision. Called for you by the first
        after_backward() or ld(x, index) of an epoch if you do not."""
        self.epoch = self.epoch + 1 if epoch is None else int(epoch)
        self._loss_sum, self._loss_n = 0.0, 0
        self.cache_seconds = self.strategy.begin_epoch(self.epoch)
        cache = getattr(self.strategy, "cache", None)
        self._rows = self.strategy.cache_rows(self.epoch).to(cache.index_device) if cache is not None else None
        self._in_epoch = True
        self._after_cut()

    def after_backward(self, loss: torch.Tensor | float | None = None, batch_size: int = 1) -> None:
        """Add this step's gradients to the epoch's scores (call after backward, before the optimiser
        step); with `loss`, also the batch's mean loss, weighted by `batch_size`, to the epoch's loss."""
        self._begin_if_needed()
        self.strategy.after_backward()
        if loss is not None:
            self._loss_sum = self._loss_sum + (loss.detach().double() if torch.is_tensor(loss) else loss) * batch_size
            self._loss_n += batch_size

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """The model's output for the batch: the cut units run frozen (no graph), or in drop mode, once
        their outputs are cached, the head runs on the cached outputs of the samples `index`."""
        self._begin_if_needed()
        cache = getattr(self.strategy, "cache", None)
        if cache is None:
            state = (x,)
        elif index is None:
            raise ValueError("drop mode serves the cut units' cached outputs by sample index: call ld(x, index) "
                             "with the batch's dataset indices (wrap the dataset in fastdrop.engine.Indexed)")
        else:
            state = cache.gather(self._rows[torch.as_tensor(index).to(self._rows.device)], self.strategy.ctx.dtype)
        self._hold_cut_units_eval()
        return self.strategy.forward(state)

    __call__ = forward

    def end_epoch(self, loss: float | None = None, optimizer: torch.optim.Optimizer | None = None,
                  lr: float | None = None) -> dict:
        """Score the epoch, ask the policy, cut. `loss`: the epoch's mean training loss (default: the mean
        of the losses given to after_backward). With `optimizer`, newly cut parameters leave it (`prune`).
        `lr`: the epoch's scheduled learning rate (default: the optimiser's highest group rate, so call this
        before the scheduler steps); `drift` cuts a stalled unit only once the schedule has lowered it.
        Returns the epoch's record: scores, decision, decision_reason, cut_units, ..."""
        if loss is None:
            loss = float(self._loss_sum / self._loss_n) if self._loss_n else math.nan
        if lr is None:
            lr = epoch_lr(optimizer)
        rec = {"epoch": self.epoch, "train_loss": float(loss),
               **self.strategy.end_epoch(self.epoch, float(loss), float(lr))}
        rec["cut_units"] = self.cut_units
        self.history.append(rec)
        self._in_epoch = False
        self._after_cut(optimizer)
        return rec

    # -- what is cut ------------------------------------------------------------------------------
    @property
    def n_cut(self) -> int:
        """Leading conv units cut so far."""
        return self.strategy.n_cut

    @property
    def cut_units(self) -> list[str]:
        return self.chain.names[: self.n_cut]

    @property
    def cut_history(self) -> list[tuple[int, int]]:
        """(epoch, units cut after it) for every cut."""
        return list(self.strategy.cut_history)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters of the units that still train (for an optimiser built after a cut)."""
        return list(self.chain.unit_parameters(self.n_cut))

    def param_groups(self) -> list[dict]:
        """Optimiser groups as fastdrop's trainer builds them (one per unit for per-unit rates: FreezeOut)."""
        return self.strategy.param_groups()

    @property
    def sets_unit_lrs(self) -> bool:
        """Whether the policy sets a learning rate per unit: the optimiser then needs a group per unit
        (`param_groups()`, or `fastdrop.engine.unit_param_groups(model)` before the engine exists)."""
        return self.strategy.sets_unit_lrs

    def unit_lrs(self, progress: float, base_lr: float, epoch_lr: float | None = None) -> list[float] | None:
        """Per-group learning rates at `progress` (share of the run done) for a per-unit-rate policy, else None;
        `epoch_lr`: the rate your schedule gives this epoch (`drift`'s cooling scales it; base_lr if omitted)."""
        return self.strategy.unit_lrs(progress, base_lr, epoch_lr)

    def unit_groups(self, optimizer: torch.optim.Optimizer) -> list[tuple[dict, int, float]]:
        """(group, its unit, its initial rate) per group of `optimizer`; a group mixing units is refused."""
        return self._rates.groups(optimizer)

    def set_unit_lrs(self, optimizer: torch.optim.Optimizer, progress: float) -> None:
        """Give each group of `optimizer` its unit's rate for the coming step (`progress`: the share of the
        run done; fastdrop.engine.rates); restore_lrs() puts the scheduled rates back after the step."""
        if self.sets_unit_lrs:
            self._rates.set(optimizer, progress)

    def restore_lrs(self) -> None:
        """Put back the rates the last set_unit_lrs replaced, so a scheduler only ever sees its own."""
        self._rates.restore()

    @contextmanager
    def unit_rates(self, optimizer: torch.optim.Optimizer, progress: float):
        """`with ld.unit_rates(opt, progress): opt.step()`: the step runs at the per-unit rates."""
        self.set_unit_lrs(optimizer, progress)
        try:
            yield
        finally:
            self.restore_lrs()

    def prune(self, optimizer: torch.optim.Optimizer) -> int:
        """Take the cut units' parameters out of `optimizer` (see `prune`); returns how many left."""
        return prune(optimizer, self.chain.unit_parameters(0, self.n_cut))

    # -- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What a resumed run needs: the cuts, the policy's memory, the drift probe, the epoch."""
        return {"mode": self.mode, "policy": self.strategy.cfg.policy, "epoch": self.epoch,
                "strategy": self.strategy.state_dict(), "history": self.history}

    def load_state_dict(self, sd: dict) -> None:
        """Restore into a fresh engine (before training resumes); re-applies the cuts. To resume an
        optimiser that was pruned, call prune(optimizer) before optimizer.load_state_dict."""
        if (sd["mode"], sd["policy"]) != (self.mode, self.strategy.cfg.policy):
            raise ValueError(f"the state is of mode={sd['mode']!r}, policy={sd['policy']!r}; this engine has "
                             f"mode={self.mode!r}, policy={self.strategy.cfg.policy!r}")
        if self.strategy.cut_history:
            raise RuntimeError("load_state_dict needs a fresh engine (this one has cut already)")
        self.strategy.load_state_dict(sd["strategy"])
        self.epoch, self.history = int(sd["epoch"]), list(sd.get("history", []))
        self._after_cut()

    def close(self) -> None:
        """Free the feature cache (a disk cache's files go too) and remove the hooks."""
        self.strategy.close()
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # -- internals --------------------------------------------------------------------------------
    def _begin_if_needed(self) -> None:
        if not self._in_epoch:
            self.begin_epoch()

    def _after_cut(self, optimizer=None) -> None:
        self._held = [m for u in self.chain.units[: self.n_cut] for m in u.modules()]
        self._hold_cut_units_eval()
        if optimizer is not None:
            self.prune(optimizer)

    def _hold_cut_units_eval(self, *_) -> None:
        # A cut unit runs with frozen BN statistics (and no dropout) even after the loop's model.train().
        for m in self._held:
            m.training = False
