"""What watches a run without steering it: the per-epoch log line, the progress bar, the experiment
logger (fastdrop.results.loggers) and `CALLBACKS`, the tests' fault injection. Only rank 0 shows a bar
and logs curves."""
from __future__ import annotations

import logging

from ..results.loggers import make_logger

log = logging.getLogger("fastdrop")

# Called as cb(trainer, epoch, record) after each epoch's checkpoint is on disk. Empty in production; the
# tests put fault injection here (tests/kill_run.py SIGKILLs a real CLI run after a chosen epoch).
CALLBACKS: list = []


class Hooks:
    def __init__(self, cfg, run_dir, world):
        self.cfg = cfg
        self.logger = make_logger(cfg.logger.name, run_dir, world.rank)

    @staticmethod
    def progress_bar(cfg, epoch: int, total: int, world):
        """A progress bar over the epoch's `total` images (rank 0, progress=true), else None."""
        if not (cfg.progress and world.is_main):
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=f"epoch {epoch}/{cfg.epochs} {cfg.strategy.name}", unit="img", leave=False,
                    dynamic_ncols=True, mininterval=1.0)

    def epoch_done(self, rec: dict, n_conv: int) -> None:
        log.info("epoch %d/%d  loss %.4f  acc %.2f%%  train %.1fs (cache %.1fs)  eval %.1fs  cut %d/%d",
                 rec["epoch"], self.cfg.epochs, rec["train_loss"], rec["test_acc"], rec["train_time_s"],
                 rec["cache_time_s"], rec["eval_time_s"], len(rec["dropped_units"]), n_conv)

    def epoch_saved(self, trainer, rec: dict) -> None:
        """After the epoch's checkpoint is on disk."""
        self.logger.log_epoch(rec)
        for cb in CALLBACKS:
            cb(trainer, rec["epoch"], rec)

    def close(self) -> None:
        self.logger.close()
