"""Experiment loggers (`logger=none|csv|tensorboard`): live per-epoch curves while a run trains.

Each epoch's record is written as soon as the epoch ends (and flushed), so a long run can be watched
and a killed one keeps its curves: training loss, test accuracy, learning rate, training / cache /
evaluation time (s), trained parameters, forward MACs per sample and the number of units cut. `csv`
appends one line per epoch to `<run dir>/metrics.csv`; `tensorboard` writes event files under
`<run dir>/tensorboard` through `torch.utils.tensorboard` (the optional `tensorboard` extra, which
`.[test]` installs), readable with `tensorboard --logdir outputs`. The JSON result row stays the record
of truth; loggers are for watching.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import ConfigError
from ..files import METRICS_CSV, writing
from ..registry import LOGGERS

# Metric name -> how to read it from an epoch record (trainer.train_epoch).
METRICS = {
    "train/loss": lambda r: r["train_loss"],
    "test/accuracy": lambda r: r["test_acc"],
    "train/lr": lambda r: r["lr"],
    "time/train_time_s": lambda r: r["train_time_s"],
    "time/cache_time_s": lambda r: r["cache_time_s"],
    "time/eval_time_s": lambda r: r["eval_time_s"],
    "model/trained_params": lambda r: r["trained_params"],
    "model/fwd_macs_per_sample": lambda r: r["fwd_macs_per_sample"],
    "model/units_cut": lambda r: len(r["dropped_units"]),
}


def metrics(rec: dict) -> dict[str, float]:
    return {k: float(get(rec)) for k, get in METRICS.items()}


@LOGGERS.register("none")
class NoLogger:
    def __init__(self, run_dir: Path, rank: int = 0):
        self.run_dir = Path(run_dir)

    def log_epoch(self, rec: dict) -> None:
        pass

    def close(self) -> None:
        pass


@LOGGERS.register("csv")
class CSVLogger(NoLogger):
    """`<run dir>/metrics.csv`, one row per epoch (appended, so a resumed run continues the file)."""

    def __init__(self, run_dir: Path, rank: int = 0):
        super().__init__(run_dir)
        self.path = self.run_dir / METRICS_CSV

    def log_epoch(self, rec: dict) -> None:
        new = not self.path.exists()
        with writing(self.path), open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["epoch", *METRICS])
            w.writerow([rec["epoch"], *metrics(rec).values()])


@LOGGERS.register("tensorboard")
class TensorBoardLogger(NoLogger):
    """Scalars per epoch under `<run dir>/tensorboard` (step = epoch)."""

    def __init__(self, run_dir: Path, rank: int = 0):
        super().__init__(run_dir)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("logger=tensorboard needs the tensorboard package: pip install 'fastdrop[tensorboard]'"
                              ) from None
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def log_epoch(self, rec: dict) -> None:
        for k, v in metrics(rec).items():
            self.writer.add_scalar(k, v, rec["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_logger(name: str, run_dir: Path, rank: int = 0):
    """The configured logger; ranks other than 0 of a distributed run log nothing."""
    cls = LOGGERS.get_or_fail(name)
    return (cls if rank == 0 else NoLogger)(run_dir, rank)
