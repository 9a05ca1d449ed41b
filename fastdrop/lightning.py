"""Learn&Drop as a PyTorch Lightning callback (`pip install fastdrop[lightning]`):

    Trainer(callbacks=[fastdrop.lightning.LearnAndDrop(policy="learn_and_drop", mode="freeze")])

on a LightningModule whose network is `self.model` (`module=` names another attribute; anything
`fastdrop.models.chain_of` cuts). The callback drives the engine a plain loop drives
(fastdrop.engine.LearnAndDrop, hence fastdrop's strategies and policies): it scores after every backward
(after the optimiser's last micro-batch under gradient accumulation) and decides after the last training
batch of each epoch, before the epoch's validation and checkpoint, so a checkpoint holds the epoch's cut.

Freeze: the cut units' BN (and dropout) run in eval mode and their parameters leave every optimiser
(fastdrop.engine.prune). The callback's state (cuts, policy memory, drift probe) goes into the checkpoint;
on resume it prunes the freshly configured optimisers the same way before Lightning loads their state, so
the group sizes match (the failure of mosaicml/composer#1002). Under DDP the wrapper is rebuilt over the
units that still train after a cut, as fastdrop's own trainer does; every rank checks it cut alike.

Per-unit rates (FreezeOut's cosines, drift's cooling): before each optimiser step the callback sets each
group's rate to its unit's, from the group's own rate (its scheduler's, put back by a post-step hook on
the optimiser, so the scheduler never sees them) and its initial rate; build the optimiser from
`fastdrop.engine.unit_param_groups(self.model)` (one group per unit), a group that mixes units is refused.

Drop: from the epoch after a cut the cut units' outputs come from a feature cache, built once over the
training set, and the network's training forward runs only the head on them. The cache is looked up by
sample index: wrap the training set in fastdrop.engine.Indexed (batches (x, y, index); unpack
`x, y = batch[:2]` in training_step). Cached outputs are of one fixed view per image (`views=K`: K views);
where the training transform is random the callback says so. `data=` gives the images to cache (and to
the drift policy's probe) when the training set's own transform is random.
"""
from __future__ import annotations

import gc
import logging
import math
import os
import warnings
from pathlib import Path

import torch
from torch import nn

try:
    from lightning.pytorch import Callback
except ImportError as e:  # an optional extra: the base install does not bring it
    raise ImportError(f"fastdrop.lightning needs the lightning package: pip install 'fastdrop[lightning]' ({e})") from None
from torch.nn.parallel import DistributedDataParallel

from .engine import LearnAndDrop as Engine
from .engine import prune, transform_is_random, unit_param_groups
from .engine.rates import epoch_lr
from .engine.datasets import Indexed
from .models import chain_of
from .registry import POLICIES

log = logging.getLogger(__name__)


def _batch_index(batch) -> torch.Tensor:
    if isinstance(batch, dict) and "index" in batch:
        return batch["index"]
    if isinstance(batch, (tuple, list)) and len(batch) >= 3:
        return batch[-1]
    raise ValueError("LearnAndDrop(mode='drop') needs each batch's sample indices: wrap the training dataset in "
                     "fastdrop.engine.Indexed (items (x, y, index)) and unpack `x, y = batch[:2]` in training_step")


def _batch_size(batch) -> int:
    if torch.is_tensor(batch):
        return len(batch)
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (tuple, list)) else []
    return next((_batch_size(b) for b in items if torch.is_tensor(b) or isinstance(b, (tuple, list, dict))), 1)


class LearnAndDrop(Callback):
    """policy, mode: as fastdrop.engine.LearnAndDrop. module: the LightningModule's attribute holding the
    network (the module itself if it has none). data: the un-augmented training set (see the module
    docstring). options: the engine's keywords (views, warmup, seed, drift_floor, ...); seed defaults to
    Lightning's seed_everything seed."""

    def __init__(self, policy: str = "learn_and_drop", mode: str = "freeze", *, module: str = "model", data=None,
                 **options):
        self.policy, self.mode, self.module, self.data, self.options = policy, mode, module, data, options
        self.engine: Engine | None = None
        self._pending: dict | None = None  # state loaded before the engine exists
        self._model: nn.Module | None = None
        self._wrapped_at = 0                # n_cut the DDP wrapper was built for
        self._index = None
        self._loss = [0.0, 0]
        self._lr = math.nan  # the epoch's scheduled learning rate, for the policy
        self._batch_idx = 0
        self._step_hooks: list = []  # post-step hooks that restore the scheduled rates (per-unit policies)

    @property
    def history(self) -> list[dict]:
        """The engine's record of every epoch (scores, decision, decision_reason, cut_units)."""
        return self.engine.history if self.engine is not None else list((self._pending or {}).get("history", []))

    @property
    def cut_history(self) -> list[tuple[int, int]]:
        return self.engine.cut_history if self.engine is not None else []

    # -- set-up -----------------------------------------------------------------------------------
    def on_fit_start(self, trainer, pl_module) -> None:
        m = getattr(pl_module, self.module, None)
        self._model = m if isinstance(m, nn.Module) else pl_module
        chain = chain_of(self._model)  # refuses what cannot be cut, before any training
        self._score_on_step = trainer.accumulate_grad_batches > 1
        if self._pending:  # resuming: the optimisers were configured whole, their saved state is pruned
            n = self._pending["strategy"]["n_cut"]
            for opt in trainer.optimizers:
                prune(opt, chain.unit_parameters(0, n))

    def on_train_start(self, trainer, pl_module) -> None:
        loader = trainer.train_dataloader
        needs_images = self.mode == "drop" or POLICIES.get(self.policy) is not None and POLICIES[self.policy].uses_drift
        train_set = getattr(loader, "dataset", None)
        data = self.data if self.data is not None or not needs_images else train_set
        augmented = needs_images and train_set is not None and transform_is_random(train_set)
        if needs_images:
            self._check_transforms(train_set, data, augmented)
        # augmented: drift's stall test waits for the LR drop, as fastdrop run's does
        opts = {"seed": int(os.environ.get("PL_GLOBAL_SEED", 0)), "batch_size": getattr(loader, "batch_size", None) or 256,
                "augmented": augmented, **self.options}
        self.engine = Engine(self._model, self.policy, self.mode, data=data,
                             epochs=trainer.max_epochs if (trainer.max_epochs or 0) > 0 else 0,
                             cache_dir=Path(trainer.default_root_dir) / "feature_cache", **opts)
        if self._pending:
            self.engine.load_state_dict(self._pending)
            self._pending = None
        if self.mode == "drop":
            self._serve_head_from_cache()
        if self.engine.sets_unit_lrs:
            if not (trainer.max_epochs or 0) > 0:
                raise ValueError(f"LearnAndDrop(policy={self.policy!r}) sets each unit's learning rate by the share "
                                 "of the run done: give the Trainer max_epochs")
            for opt in trainer.optimizers:
                self.engine.unit_groups(opt)  # refuses a group that mixes units, before the first step
            # the schedule's rates go back as soon as the step is done: Lightning steps an epoch-wise
            # scheduler before on_train_batch_end, and a chainable one (StepLR) multiplies the rate it finds
            self._step_hooks = [opt.register_step_post_hook(lambda *_: self.engine.restore_lrs())
                                for opt in trainer.optimizers]

    def _check_transforms(self, train_set, data, random_train: bool) -> None:
        """Say where a random training transform meets what the cache or the drift probe holds."""
        if random_train:
            views = int(self.options.get("views", 1))
            if self.mode == "drop" and views == 1:
                warnings.warn("LearnAndDrop(mode='drop'): the training transform is random, but the feature cache "
                              "holds one fixed view per image, so the head trains without augmentation after the "
                              "first drop; pass views=K (K cached views per image: plain, flip, K-2 random crops) "
                              "or use mode='freeze'", stacklevel=2)
            if data is train_set:
                warnings.warn("LearnAndDrop: the cache and the drift probe read the training set, whose transform "
                              "is random; pass data=<the training set with a deterministic transform>", stacklevel=2)
        if data is not None and data is not train_set and transform_is_random(data):
            warnings.warn("LearnAndDrop: data= has a random transform; it should give the un-augmented images",
                          stacklevel=2)

    def _serve_head_from_cache(self) -> None:
        """Drop mode: the network's training forward runs the head on cached outputs once units are cut."""
        model, engine, original = self._model, self.engine, self._model.forward

        def forward(x, *args, **kwargs):
            if model.training and engine.n_cut and not args and not kwargs:
                return engine(x, self._index)
            return original(x, *args, **kwargs)

        model.forward = forward

    # -- the epoch --------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._loss = [0.0, 0]
        # the epoch's scheduled rate, read before its steps: Lightning steps an epoch-wise scheduler
        # before the last batch's end, where the decision is made
        self._lr = epoch_lr(trainer.optimizers[0] if trainer.optimizers else None)
        self.engine.begin_epoch(trainer.current_epoch + 1)
        self._sync(trainer)
        self._rewrap_ddp(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_idx = batch_idx
        if self.mode == "drop":
            self._index = _batch_index(batch)

    def on_after_backward(self, trainer, pl_module) -> None:
        if not self._score_on_step:
            self.engine.after_backward()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._score_on_step:  # the accumulated gradient of the step, as fastdrop scores it
            self.engine.after_backward()
        if self._step_hooks:  # per-unit rates: the epoch's batches before this one count as done
            n = trainer.num_training_batches
            done = self._batch_idx / n if 0 < n < math.inf else 0.0
            self.engine.set_unit_lrs(optimizer, (trainer.current_epoch + done) / trainer.max_epochs)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._step_hooks:
            self.engine.restore_lrs()  # a step the optimiser skipped (AMP's inf check) ran no post-step hook
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if torch.is_tensor(loss):  # Lightning divides it by the micro-batches a step accumulates
            n = _batch_size(batch)
            self._loss = [self._loss[0] + loss.detach().double() * trainer.accumulate_grad_batches * n,
                          self._loss[1] + n]
        last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch or batch_idx + 1 >= trainer.num_training_batches
        if last:  # before the epoch's validation, so the checkpoint it may trigger holds this epoch's cut
            self._decide(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.engine.history or self.engine.history[-1]["epoch"] != self.engine.epoch:
            self._decide(trainer)  # an epoch whose last batch was not recognised

    def _decide(self, trainer) -> None:
        dev = next(self.engine.chain.parameters()).device
        t = torch.stack([torch.as_tensor(self._loss[0], dtype=torch.float64, device=dev),
                         torch.tensor(float(self._loss[1]), dtype=torch.float64, device=dev)])
        t = trainer.strategy.reduce(t, reduce_op="sum")  # the global batch's loss: every rank decides alike
        loss = (t[0] / t[1]).item() if t[1] > 0 else math.nan
        self.engine.end_epoch(loss=loss, lr=self._lr)
        n0 = trainer.strategy.broadcast(self.engine.n_cut, src=0)
        if n0 != self.engine.n_cut:
            raise RuntimeError(f"LearnAndDrop: ranks disagree on the cut after epoch {self.engine.epoch} "
                               f"(rank 0: {n0} units, this rank: {self.engine.n_cut})")
        self._sync(trainer)

    def _sync(self, trainer) -> None:
        for opt in trainer.optimizers:
            self.engine.prune(opt)

    def _rewrap_ddp(self, trainer) -> None:
        """A DDP wrapper built before a cut still waits for the cut units' gradients: rebuild it (between
        steps) over the parameters that still train."""
        s = trainer.strategy
        if self._wrapped_at == self.engine.n_cut or not isinstance(s.model, DistributedDataParallel):
            return
        old = s.model
        s.model = s._setup_model(old.module)
        del old
        gc.collect()  # the old reducer, and its gradient hooks, go now
        self._wrapped_at = self.engine.n_cut

    # -- checkpoint -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return self.engine.state_dict() if self.engine is not None else dict(self._pending or {})

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            self._pending = dict(state_dict)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for h in self._step_hooks:
            h.remove()
        self._step_hooks = []
        if self._model is not None and "forward" in self._model.__dict__:
            del self._model.forward
        if self.engine is not None:
            self.engine.close()


__all__ = ["Indexed", "LearnAndDrop", "unit_param_groups"]
