"""Dropping (Learn&Drop, Sect. 3.2-3.3): the cut units leave the training loop altogether.

At the first epoch after a cut, the newly dropped units run once over the training split (eval mode, no
grad) and their output states go into a feature cache; the head then trains on cached states, batched by
the same index permutation the images would have used. A later cut runs only the newly dropped units
over the cached states (incremental), never the whole tail from the images. Evaluation always uses the
full chain. The time spent building caches is reported as `cache_time_s` and counted in T.

Augmentation: cached states cannot be re-augmented. With `cache.views=1` (default) the cache holds the
un-augmented split and the head sees the same tail output of each image every epoch. With K views the
cache holds, per image, view 0 = the image, view 1 = its horizontal flip, views 2.. = random crops (with
random flips); each epoch one view per sample is drawn, so augmentation survives at K x cache memory.

Cost-aware cut (`cache.cost_aware=true`): a cheap first layer can cost more to read back from a cache
than to recompute (its maps are larger than the images). At each epoch with uncached cut units, one
batch of both is timed; while recomputing is cheaper the cut units stay in the forward pass, frozen
(no grad, frozen BN statistics: Freezing's computation), and caching starts once it pays. The decisions,
and so the weights, are the paper's either way.
"""
from __future__ import annotations

import logging
import time

import torch

from ..registry import STRATEGIES
from ..files import human_bytes, remove_empty_dirs
from .base import Strategy, synchronize
from .cache import DTYPES, CacheDamaged, FeatureCache

log = logging.getLogger(__name__)


@STRATEGIES.register(label="Dropping", color="tab:green", style=dict(ls="-", lw=1.8, marker="^", ms=4), table3=True)
class Dropping(Strategy):
    name = "dropping"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.cache: FeatureCache | None = None
        self.cache_units = 0  # units the cached states have passed through

    # -- cache ------------------------------------------------------------------------------------
    def _cache_dtype(self) -> torch.dtype:
        d = self.cfg.cache.dtype
        if d == "auto":
            return torch.bfloat16 if self.ctx.autocast == "bf16" else self.ctx.dtype
        return DTYPES[d]

    def _views(self) -> int:
        return max(1, int(self.cfg.cache.views))

    def _source_states(self, rows: torch.Tensor) -> tuple:
        """States feeding the units being dropped now: images (views drawn on the fly) or the old cache."""
        if self.cache is not None:
            return self.cache.gather(rows.to(self.cache.index_device), self.ctx.dtype)
        n = len(self.data.train)
        view, sample = rows // n, rows % n
        dev = self.ctx.device
        view, sample = view.to(dev), sample.to(self.data.train.y.device)
        v = int(view[0])  # chunks never straddle views (see _build)
        if v == 1:
            view_of = lambda x: x.flip(-1)  # noqa: E731
        elif v >= 2:
            view_of = lambda x: self.data.random_crop_flip(x, self.ctx.generator(v, 2, device=dev))  # noqa: E731
        else:
            view_of = None
        return (self.ctx.inputs(self.data, self.data.train.fetch(sample), view_of),)

    def _build(self, upto: int) -> None:
        n, k = len(self.data.train), self._views()
        rows_total = n * k
        chunk = self.ctx.eval_batch_size
        start_unit = self.cache_units
        for u in self.chain.units[start_unit:upto]:
            u.eval()
        new = None
        with torch.no_grad(), self.ctx.autocast_ctx():
            for v in range(k):
                for s in range(0, n, chunk):
                    rows = torch.arange(v * n + s, v * n + min(s + chunk, n))
                    state = self.chain.run(self._source_states(rows), start_unit, upto)
                    if new is None:
                        new = FeatureCache(rows_total, [tuple(t.shape[1:]) for t in state], self._cache_dtype(),
                                           self.ctx.device, self._backend(), self._disk_dir(upto))
                    new.write(int(rows[0]), state)
        new.seal()
        if self.cache is not None:
            self.cache.close()
        self.cache, self.cache_units = new, upto
        log.info("cached the output of %s: %d state(s) x %d rows, %s on %s", self.chain.names[upto - 1],
                 len(new.shapes), rows_total, human_bytes(new.nbytes), new.backend)

    def _backend(self) -> str:
        # A split streamed from disk (larger than memory) gets its feature cache on disk as well.
        b = self.cfg.cache.backend
        return "disk" if b == "auto" and self.data.streaming else b

    def _disk_dir(self, upto: int):
        return self.ctx.cache_dir / f"cut{upto}"

    def _reopen(self) -> None:
        """After a resume: reuse the disk cache the killed run left, if it checks out."""
        d = self._disk_dir(self.n_cut)
        if self.cache is not None or not (d / "meta.json").exists():
            return
        try:
            self.cache = FeatureCache.open_disk(d, len(self.data.train) * self._views(), self._cache_dtype(),
                                                self.ctx.device)
            self.cache_units = self.n_cut
            log.info("reusing the disk feature cache in %s", d)
        except CacheDamaged as e:
            log.warning("feature cache not trustworthy, rebuilding it from the tail: %s", e)

    def _best_of(self, fn, repeats: int = 3) -> float:
        best = float("inf")
        for _ in range(repeats):
            synchronize(self.ctx.device)
            t0 = time.perf_counter()
            fn()
            synchronize(self.ctx.device)
            best = min(best, time.perf_counter() - t0)
        return best

    def caching_pays(self) -> tuple[bool, float, float]:
        """Cost-aware cut: is reading the newly cut units' output from a cache cheaper than recomputing
        it (reading their input and running them forward, frozen)? Both are timed on one batch; the read
        of the new cache is timed on a stand-in buffer of its per-sample shape."""
        bs = min(self.ctx.batch_size * self.growth, len(self.data.train))
        dev = self.cache.index_device if self.cache is not None else self.data.train.y.device
        rows = torch.randperm(len(self.data.train), generator=self.ctx.generator(0, 4))[:bs].to(dev)
        units = (self.cache_units, self.n_cut)

        def recompute():
            with torch.no_grad(), self.ctx.autocast_ctx():
                return self.chain.run(self._source_states(rows), *units)

        for u in self.chain.units[units[0]:units[1]]:
            u.eval()
        out = recompute()
        probe = [torch.empty((min(4 * bs, len(self.data.train)), *t.shape[1:]), dtype=self._cache_dtype(),
                             device=self.ctx.device) for t in out]
        pick = torch.randperm(len(probe[0]), device=self.ctx.device)[:bs]
        t_read = self._best_of(lambda: [p.index_select(0, pick).to(self.ctx.dtype) for p in probe])
        t_recompute = self._best_of(recompute)
        return t_read < t_recompute, t_read, t_recompute

    def _prepare(self, epoch: int) -> float:
        if self.cache_units == self.n_cut:
            return 0.0
        synchronize(self.ctx.device)
        t0 = time.perf_counter()
        self._reopen()
        build = self.cache_units < self.n_cut
        if build and self.cfg.cache.cost_aware:
            build, t_read, t_recompute = self.caching_pays()
            if not build:
                log.info("epoch %d: reading cached %s would cost %.1f ms per batch, recomputing it %.1f ms: "
                         "kept frozen in the forward pass for now", epoch, self.chain.names[self.n_cut - 1],
                         1e3 * t_read, 1e3 * t_recompute)
        if build:
            # Replay the cuts in order so a resumed run rebuilds exactly the cache it had (same rounding).
            for _, n in self.cut_history:
                if n > self.cache_units:
                    self._build(n)
        synchronize(self.ctx.device)
        return time.perf_counter() - t0

    # -- training ---------------------------------------------------------------------------------
    def cache_rows(self, epoch: int) -> torch.Tensor:
        """The cache row serving each sample at `epoch`: the sample's own row, or with K views one view per
        sample, drawn afresh each epoch (also what fastdrop.engine serves a loop's batches by)."""
        n, k = len(self.data.train), self._views()
        if k == 1:
            return torch.arange(n)
        return torch.randint(0, k, (n,), generator=self.ctx.generator(epoch, 3)) * n + torch.arange(n)

    def batches(self, epoch: int):
        if self.cache is None:
            yield from super().batches(epoch)
            return
        n = len(self.data.train)
        perm = self._permutation(epoch)
        rows_all = self.cache_rows(epoch)[perm].to(self.cache.index_device)
        perm = perm.to(self.data.train.y.device)
        for s in self._batch_slices(n):
            yield self.cache.gather(rows_all[s], self.ctx.dtype), self.data.train.y[perm[s]]

    @property
    def first_run_unit(self) -> int:
        return self.cache_units  # units cut but not cached yet (cost-aware cut) run frozen

    def epoch_stats(self) -> dict:
        out = super().epoch_stats()
        if self.cache is not None:
            out["cache_backend"] = self.cache.backend
            out["cache_bytes"] = self.cache.nbytes  # this rank's: each rank caches only its own rows
            out["cache_rows"] = self.cache.rows
        return out

    @classmethod
    def cache_note(cls, cfg, augment: bool) -> str:
        if not augment:
            return ""
        k = cfg.cache.views
        if k == 1:
            return "head trained on cached un-augmented tail outputs (augmentation stops at the first drop)"
        return f"head trained on {k} cached views per image (plain, flip, {k - 2} random crops)"

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None
        # a disk cache leaves its (now empty) folders behind otherwise
        remove_empty_dirs(self.ctx.cache_dir, self.ctx.run_dir / "feature_cache")
