"""Checks on a composed config that its typed schema cannot express (ranges, known names, cross-key rules),
all reported at once as one `ConfigError` line before anything is built or loaded."""
from __future__ import annotations

from omegaconf import DictConfig

from .config import PRECISIONS
from .data import DataError
from .distributed import RanksDisagree
from .models import WeightsError
from .strategies import STRATEGIES
from .strategies.cache import CacheError
from .strategies.policies import POLICIES, CutPolicy


class ConfigError(ValueError):
    pass


# What the CLI reports as one `fastdrop: error:` line with exit code 2 (the user can fix it).
USER_ERRORS = (ConfigError, DataError, CacheError, RanksDisagree, WeightsError)


def validate(cfg: DictConfig) -> None:
    problems = []
    if cfg.epochs <= 0:
        problems.append(f"epochs must be > 0 (got {cfg.epochs})")
    if cfg.batch_size <= 0:
        problems.append(f"batch_size must be > 0 (got {cfg.batch_size})")
    if cfg.optim.lr <= 0:
        problems.append(f"optim.lr must be > 0 (got {cfg.optim.lr})")
    if cfg.precision not in PRECISIONS:
        problems.append(f"precision must be one of {', '.join(PRECISIONS)} (got {cfg.precision!r})")
    if cfg.model.width <= 0:
        problems.append(f"model.width must be > 0 (got {cfg.model.width})")
    s = cfg.strategy
    if s.name not in STRATEGIES:
        problems.append(f"strategy.name must be one of {', '.join(STRATEGIES)} (got {s.name!r})")
    if s.policy not in POLICIES:
        problems.append(f"strategy.policy must be one of {', '.join(POLICIES)} (got {s.policy!r})")
    if s.guard not in ("warn", "block", "off"):
        problems.append(f"strategy.guard must be warn, block or off (got {s.guard!r})")
    if not (s.start_loss > 0 and s.tolerance >= -1 and 0 < s.max_cut_fraction <= 1 and s.rise_tolerance >= 0):
        problems.append("strategy.start_loss must be > 0, tolerance >= -1, max_cut_fraction in (0, 1], "
                        f"rise_tolerance >= 0 (got {s.start_loss}, {s.tolerance}, {s.max_cut_fraction}, "
                        f"{s.rise_tolerance})")
    if s.candidates not in ("eq4", "max_prefix_sum"):
        problems.append(f"strategy.candidates must be eq4 or max_prefix_sum (got {s.candidates!r})")
    if s.warmup < 0 or (POLICIES.get(s.policy, CutPolicy).uses_warmup and s.name != "sgd" and s.warmup >= cfg.epochs):
        problems.append(f"strategy.warmup must be >= 0 and < epochs (got warmup {s.warmup}, epochs {cfg.epochs})")
    if s.cache.backend not in ("auto", "device", "host", "disk"):
        problems.append(f"strategy.cache.backend must be auto, device, host or disk (got {s.cache.backend!r})")
    if s.cache.dtype not in ("auto", "fp32", "fp16", "bf16", "fp64"):
        problems.append(f"strategy.cache.dtype must be auto, fp32, fp16, bf16 or fp64 (got {s.cache.dtype!r})")
    if s.schedule is not None:
        try:
            bad = not all(int(k) == k and int(v) == v and k >= 0 and v >= 0 for k, v in dict(s.schedule).items())
        except (TypeError, ValueError):
            bad = True
        if bad:
            problems.append(f"strategy.schedule must map epochs (>= 0) to unit counts (>= 0), e.g. '{{2:3,4:6}}' "
                            f"(got {s.schedule})")
    if s.cache.views < 1:
        problems.append(f"strategy.cache.views must be >= 1 (got {s.cache.views})")
    for sub in ("train_subset", "test_subset"):
        v = cfg.data[sub]
        if v is not None and v <= 0:
            problems.append(f"data.{sub} must be > 0 (got {v})")
    if cfg.data.workers < 0:
        problems.append(f"data.workers must be >= 0 (got {cfg.data.workers})")
    if cfg.data.memory_budget_gb is not None and cfg.data.memory_budget_gb <= 0:
        problems.append(f"data.memory_budget_gb must be > 0 (got {cfg.data.memory_budget_gb})")
    if problems:
        raise ConfigError("; ".join(problems))
