"""What the row loader, the tables and the figures share: strategy labels and styles, the display order
and the model families (all read from the registries), the comparison keys, number formatting and the
paper's own numbers (fastdrop/paper_*.csv)."""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from ..data import DATASETS
from ..models import MODELS
from ..strategies import STRATEGIES, baseline, table3_strategy  # noqa: F401  (baseline: re-exported)

# Two runs are comparable (ΔT, accuracy drop) only if all of these match, and the seed.
# `weights` (the starting weights; "" from scratch) keeps a fine-tuned run from being compared with a
# run trained from scratch.
GROUP_KEYS = ["model", "data", "width", "epochs", "batch_size", "precision", "device", "device_name", "weights"]
KEY_LABEL = {"model": "network", "data": "dataset", "width": "width", "epochs": "epochs",
             "batch_size": "batch size", "precision": "precision", "device": "device",
             "device_name": "device name", "weights": "starting weights", "seed": "seed"}
# One set of figures per (model, data, width, epochs, seed, device).
FIG_KEYS = ["model", "data", "width", "epochs", "seed", "device", "weights"]

DASH = "–"


def strategies() -> list[str]:
    """Registered strategies in table/figure order."""
    return STRATEGIES.names()


def label(strategy: str) -> str:
    return STRATEGIES.attr(strategy, "label", strategy)


def color(strategy: str):
    return STRATEGIES.attr(strategy, "color")


def style(strategy: str) -> dict:
    return STRATEGIES.attr(strategy, "style", {})


def family(model: str, stored: Optional[str] = None) -> Optional[str]:
    """A network's family (vgg, resnet, ...): as the row stored it, else from the model registry."""
    return stored if isinstance(stored, str) and stored else MODELS.attr(model, "family")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, sample std, n); std is NaN below two values, mean NaN for none."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return math.nan, math.nan, 0
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else math.nan), len(v)


def fmt_pm(mean: float, std: float = math.nan, digits: int = 2, sign: bool = False) -> str:
    """'12.34', '12.34 ± 0.56' or '–'."""
    if mean is None or not math.isfinite(mean):
        return DASH
    s = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    if std is not None and math.isfinite(std):
        s += f" ± {std:.{digits}f}"
    return s


def _nan(x) -> float:
    return float(x) if x is not None and isinstance(x, (int, float)) and math.isfinite(x) else math.nan


def fmt_width(w) -> str:
    return DASH if w is None or not math.isfinite(w) else f"{w:g}"


def _wkey(w) -> float:
    return w if math.isfinite(w) else -1.0


def _same(a, b) -> bool:
    nan = [isinstance(x, float) and math.isnan(x) for x in (a, b)]
    return all(nan) or (not any(nan) and a == b)


def _order(model: str, data: str) -> tuple:
    return (MODELS.order(model), model, DATASETS.order(data), data)


def weights_label(weights) -> str:
    """Starting weights as a table shows them: '' from scratch, a torchvision name, or a file's name."""
    return Path(weights).name if weights and ("/" in weights or "\\" in weights) else (weights or "")


def network_label(model: str, weights) -> str:
    w = weights_label(weights)
    return f"{model} (from {w})" if w else model


def _label(key: dict) -> str:
    return (f"{network_label(key['model'], key.get('weights'))}/{key['data']} width {fmt_width(key['width'])} "
            f"{key['epochs']} ep batch {key['batch_size']} {key['precision']} {key['device_name']}")


def paper_numbers() -> pd.DataFrame:
    """The paper's Tables 1-2 (columns as in paper_tables.csv)."""
    return pd.read_csv(Path(__file__).parent.parent / "paper_numbers.csv")


def paper_flops() -> pd.DataFrame:
    """The paper's Table 3 (network, sgd_fwd_flops_M, dropping_fwd_flops_M, dFLOPs_pct)."""
    return pd.read_csv(Path(__file__).parent.parent / "paper_flops.csv")


def paper_dataset(data: str) -> Optional[str]:
    """The paper's dataset a registered dataset stands for (its `paper` attribute; mnist_mini -> mnist)."""
    if data in DATASETS:
        return DATASETS.attr(data, "paper")
    head = data.split("_")[0]  # rows of a dataset no longer registered
    return DATASETS.attr(head, "paper") if head in DATASETS else None
