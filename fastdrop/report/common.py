"""What the row loader, the tables and the figures share: strategy labels and styles, the comparison keys,
the display order, number formatting and the paper's own numbers (fastdrop/paper_*.csv)."""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

STRATEGIES = ("sgd", "freezing", "dropping")
STRATEGY_LABEL = {"sgd": "SGD", "freezing": "Freezing", "dropping": "Dropping"}
STRATEGY_COLOR = {"sgd": "tab:red", "freezing": "tab:blue", "dropping": "tab:green"}  # as in the paper's figures
# SGD and Freezing often coincide (same forward work, same parameter count): distinct styles keep both visible.
STRATEGY_STYLE = {"sgd": dict(ls="-", lw=2.8, marker="o", ms=4), "freezing": dict(ls="--", lw=1.8, marker="s", ms=3),
                  "dropping": dict(ls="-", lw=1.8, marker="^", ms=4)}
MODEL_ORDER = ["vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
DATA_ORDER = ["mnist", "mnist_mini", "cifar10", "imagenette"]
PAPER_DATASET = {"mnist": "mnist", "mnist_mini": "mnist", "cifar10": "cifar10", "imagenette": "imagenette"}

# Two runs are comparable (ΔT, accuracy drop) only if all of these match, and the seed.
GROUP_KEYS = ["model", "data", "width", "epochs", "batch_size", "precision", "device", "device_name"]
KEY_LABEL = {"model": "network", "data": "dataset", "width": "width", "epochs": "epochs",
             "batch_size": "batch size", "precision": "precision", "device": "device",
             "device_name": "device name", "seed": "seed"}
# One set of figures per (model, data, width, epochs, seed, device).
FIG_KEYS = ["model", "data", "width", "epochs", "seed", "device"]

DASH = "–"


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
    m = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)
    d = DATA_ORDER.index(data) if data in DATA_ORDER else len(DATA_ORDER)
    return (m, model, d, data)


def _label(key: dict) -> str:
    return (f"{key['model']}/{key['data']} width {fmt_width(key['width'])} {key['epochs']} ep batch {key['batch_size']} "
            f"{key['precision']} {key['device_name']}")


def paper_numbers() -> pd.DataFrame:
    """The paper's Tables 1-2 (columns as in paper_tables.csv)."""
    return pd.read_csv(Path(__file__).parent.parent / "paper_numbers.csv")


def paper_flops() -> pd.DataFrame:
    """The paper's Table 3 (network, sgd_fwd_flops_M, dropping_fwd_flops_M, dFLOPs_pct)."""
    return pd.read_csv(Path(__file__).parent.parent / "paper_flops.csv")


def paper_dataset(data: str) -> Optional[str]:
    if data in PAPER_DATASET:
        return PAPER_DATASET[data]
    head = data.split("_")[0]
    return PAPER_DATASET.get(head)
