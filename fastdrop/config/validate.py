"""Checks on a composed config that its typed schema cannot express (ranges, known names, cross-key rules),
all reported at once as one `ConfigError` line before anything is built or loaded."""
from __future__ import annotations

from omegaconf import DictConfig

from ..errors import ConfigError
from ..policies import POLICIES, CutPolicy
from ..policies.rules import CANDIDATE_RULES, parse_schedule
from ..registry import CACHE_BACKENDS, LOGGERS, either
from ..results import loggers  # noqa: F401  (fills LOGGERS)
from ..strategies import STRATEGIES
from ..strategies.cache import DTYPES
from .keys import unknown_key_message, unknown_keys
from .schema import PRECISIONS, RETENTIONS, SCHEDULES


def validate(cfg: DictConfig) -> None:
    problems = [unknown_key_message(k) for k in unknown_keys(cfg)]
    if cfg.epochs <= 0:
        problems.append(f"epochs must be > 0 (got {cfg.epochs})")
    if cfg.batch_size <= 0:
        problems.append(f"batch_size must be > 0 (got {cfg.batch_size})")
    if cfg.optim.lr <= 0:
        problems.append(f"optim.lr must be > 0 (got {cfg.optim.lr})")
    if cfg.optim.schedule not in SCHEDULES:
        problems.append(f"optim.schedule must be one of {', '.join(SCHEDULES)} (got {cfg.optim.schedule!r})")
    elif cfg.optim.schedule == "cosine" and cfg.optim.milestones:
        problems.append(f"optim.milestones {list(cfg.optim.milestones)} apply to optim.schedule=step; the cosine schedule "
                        "uses none: add optim.milestones=[]")
    if cfg.precision not in PRECISIONS:
        problems.append(f"precision must be one of {', '.join(PRECISIONS)} (got {cfg.precision!r})")
    if cfg.model.width <= 0:
        problems.append(f"model.width must be > 0 (got {cfg.model.width})")
    problems += _strategy_problems(cfg)
    if cfg.checkpoint not in RETENTIONS:
        problems.append(f"checkpoint must be one of {', '.join(RETENTIONS)} (got {cfg.checkpoint!r})")
    elif cfg.resume and cfg.checkpoint == "none":
        problems.append("resume=true needs a checkpoint: drop checkpoint=none")
    for sub in ("train_subset", "test_subset"):
        v = cfg.data[sub]
        if v is not None and v <= 0:
            problems.append(f"data.{sub} must be > 0 (got {v})")
    if cfg.logger.name not in LOGGERS:
        problems.append(f"logger must be {LOGGERS.choices()} (got {cfg.logger.name!r})")
    if cfg.data.workers < 0:
        problems.append(f"data.workers must be >= 0 (got {cfg.data.workers})")
    if cfg.data.memory_budget_gb is not None and cfg.data.memory_budget_gb <= 0:
        problems.append(f"data.memory_budget_gb must be > 0 (got {cfg.data.memory_budget_gb})")
    if problems:
        raise ConfigError("; ".join(problems))


def _strategy_problems(cfg: DictConfig) -> list[str]:
    """The `strategy.*` checks: names from the registries, the policies' numbers, the cache, the schedule."""
    problems: list[str] = []
    s = cfg.strategy
    if s.name not in STRATEGIES:
        problems.append(f"strategy.name must be one of {', '.join(STRATEGIES)} (got {s.name!r})")
    cuts = s.name in STRATEGIES and STRATEGIES[s.name].cuts
    if s.policy not in POLICIES:
        problems.append(f"strategy.policy must be one of {', '.join(POLICIES)} (got {s.policy!r})")
    if s.guard not in ("warn", "block", "off"):
        problems.append(f"strategy.guard must be warn, block or off (got {s.guard!r})")
    if not (s.start_loss > 0 and s.tolerance >= -1 and 0 < s.max_cut_fraction <= 1 and s.rise_tolerance >= 0):
        problems.append("strategy.start_loss must be > 0, tolerance >= -1, max_cut_fraction in (0, 1], "
                        f"rise_tolerance >= 0 (got {s.start_loss}, {s.tolerance}, {s.max_cut_fraction}, "
                        f"{s.rise_tolerance})")
    if s.candidates not in CANDIDATE_RULES:
        problems.append(f"strategy.candidates must be {either(CANDIDATE_RULES)} (got {s.candidates!r})")
    if s.warmup < 0 or (POLICIES.get(s.policy, CutPolicy).uses_warmup and cuts and s.warmup >= cfg.epochs):
        problems.append(f"strategy.warmup must be >= 0 and < epochs (got warmup {s.warmup}, epochs {cfg.epochs})")
    if s.cache.backend != "auto" and s.cache.backend not in CACHE_BACKENDS:
        problems.append(f"strategy.cache.backend must be auto, {CACHE_BACKENDS.choices()} (got {s.cache.backend!r})")
    if s.cache.dtype != "auto" and s.cache.dtype not in DTYPES:
        problems.append(f"strategy.cache.dtype must be auto, {either(DTYPES)} (got {s.cache.dtype!r})")
    if s.schedule is not None:
        try:
            bad = not all(int(k) == k and int(v) == v and k >= 0 and v >= 0 for k, v in dict(s.schedule).items())
        except (TypeError, ValueError):
            bad = True
        if bad:
            problems.append(f"strategy.schedule must map epochs (>= 0) to unit counts (>= 0), e.g. '{{2:3,4:6}}' "
                            f"(got {s.schedule})")
    if cuts and s.policy in POLICIES:
        problems += POLICIES[s.policy].config_problems(s)
    if s.cache.views < 1:
        problems.append(f"strategy.cache.views must be >= 1 (got {s.cache.views})")
    return problems


def cut_schedule_warnings(cfg: DictConfig, n_conv: int) -> list[str]:
    """Legal `strategy.schedule` (cut schedule) settings that do not do what they say (a sweep over policies or models
    may mean them): each becomes a warning in the log and the row. Call after validate()."""
    s = cfg.strategy
    if s.schedule is None:
        return []
    if s.name in STRATEGIES and not STRATEGIES[s.name].cuts:
        return [f"strategy.schedule is ignored: strategy={s.name} never cuts"]
    if not POLICIES.get(s.policy, CutPolicy).uses_schedule:
        return [f"strategy.schedule is ignored: strategy.policy is {s.policy} (add strategy.policy=schedule to use it)"]
    out, most = [], 0
    for epoch, n in sorted(parse_schedule(s.schedule).items()):
        if epoch >= cfg.epochs:
            out.append(f"strategy.schedule entry {epoch}:{n} has no effect: a cut from the end of epoch {epoch} "
                       f"needs a later epoch (epochs={cfg.epochs})")
        elif n > n_conv:  # a schedule may cut every conv unit ({0: n_conv} is a linear probe)
            out.append(f"strategy.schedule entry {epoch}:{n} asks for more units than can be cut: the model has "
                       f"{n_conv} conv units, so {n_conv} are cut")
        elif n <= most:
            out.append(f"strategy.schedule entry {epoch}:{n} has no effect: {most} units are already cut by then")
        most = max(most, min(n, n_conv))
    return out
