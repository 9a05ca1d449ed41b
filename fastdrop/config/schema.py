"""Typed schemas behind the YAML in conf/ (Hydra structured configs): a misspelt key or a value of the
wrong type fails when the config is composed, before anything runs. Group nodes mirror the code:
`model` -> fastdrop.models, `data` -> fastdrop.data, `strategy` -> fastdrop.strategies, `optim` -> the
trainer's optimiser and LR schedule. Run-level keys (seed, epochs, batch_size, precision, ...) are top level.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

SCHEDULES = ("step", "cosine")  # optim.schedule (fastdrop/run/lr.py)
PRECISIONS = ("32-true", "64-true", "bf16-mixed")


@dataclass
class ModelConfig:
    name: str = MISSING
    width: float = 1.0
    # Starting weights: a torchvision weights name (IMAGENET1K_V1), a state_dict file or a fastdrop run
    # directory (fastdrop/models/weights.py). None: random initialisation.
    weights: Optional[str] = None
    stem: str = "auto"  # auto | imagenet | small (3x3 stride-1 first conv, no max-pool)
    new_classifier: bool = False  # start the last Linear layer afresh even when the class counts agree


@dataclass
class DataConfig:
    name: str = MISSING
    root: str = "data"
    download: bool = False
    train_subset: Optional[int] = None
    test_subset: Optional[int] = None
    subset_seed: int = 0  # which class-balanced rows a subset draws (independent of the training seed)
    augment: bool = False
    image_size: Optional[int] = None  # imagenette: 160 (the 160 px release) or 320; folder: any (shorter side + centre crop)
    memory_budget_gb: Optional[float] = None  # folder: most a split may take as uint8 (default: half the RAM)
    eval_batch_size: int = 1024
    # Folder datasets larger than memory (fastdrop.data.streaming): stream from a memory-mapped file
    # when true, or (null) when the decoded split exceeds memory_budget_gb.
    stream: Optional[bool] = None
    workers: int = 2                  # DataLoader workers of a streamed split


@dataclass
class CacheConfig:
    backend: str = "auto"  # auto | device | host | disk
    dtype: str = "auto"    # auto (compute dtype; bf16 under bf16-mixed) | fp32 | fp16 | bf16
    views: int = 1         # stored augmented views per image (1 = un-augmented only)
    cost_aware: bool = False  # cache a cut only once reading it is cheaper than recomputing it


@dataclass
class StrategyConfig:
    name: str = MISSING
    policy: str = "learn_and_drop"    # learn_and_drop (the paper) | drift (ours) | noise_level | freezeout | autofreeze | linear | schedule | none
    candidates: str = "eq4"           # eq4 | max_prefix_sum (learn_and_drop)
    # "started learning" = epoch train loss <= start_loss x ln(classes). The paper's rule warns (and
    # marks the row) when it cuts before that (guard=warn), waits (block) or says nothing (off).
    start_loss: float = 0.5
    guard: str = "warn"
    tolerance: float = 0.0            # noise_level: cut units with P >= 1 - 1/sqrt(steps) - tolerance
    max_cut_fraction: float = 0.5     # noise_level: at most this share of the cuttable head per decision
    rise_tolerance: float = 0.5       # noise_level: stop cutting if the loss after a cut rose by more
    warmup: int = 5
    # epoch -> leading units cut from then on (policy=schedule), e.g. '{2:3,4:6}'. Typed Any because
    # OmegaConf cannot merge a command-line dict into a typed Dict node; validate() checks it.
    schedule: Any = None
    # The peers (fastdrop/policies/freezeout.py, autofreeze.py, linear.py): FreezeOut's freeze times and per-unit cosine rates, and
    # Composer's linear freezing from this share of the run.
    freezeout_t0: float = 0.8
    freezeout_shape: str = "cubic"    # linear | squared | cubic
    freezeout_scale_lr: bool = True   # lr0 of unit i = lr / r_i
    linear_start: float = 0.5
    # Ours (fastdrop/policies/drift.py): cut a unit once its output on a fixed probe stops moving.
    drift_probe: int = 128            # probe images
    drift_floor: float = 0.1          # settled: the output moved by at most this share in the epoch
    drift_settle: float = 0.5         # ... or fell to this share of its first epoch's drift
    drift_stall: float = 0.9          #     and no longer falls (>= this share of the previous epoch's)
    drift_stall_lr: Optional[float] = None  # ... the latter only at an LR <= this share of its peak (None: 0.5
    #                                   where the training split is augmented, 1 = at any rate where it is not)
    drift_fit: float = 0.0            # fit gate: train loss <= this share of epoch 1's (0: off) ...
    drift_fit_share: float = 0.25     # ... then cut this share of the cuttable head per epoch
    drift_cool: float = 0.0           # ... or, when > 0, cool that share instead (its LR x this) and cut it once settled
    scores: bool = True               # gradient scores: sgd (for the figures) and score-driven policies pay for them; off: only to price them
    # Future work of the paper (Sect. 6), off by default:
    warmup_settle: Optional[float] = None  # end warm-up early once max |P_k - P_{k-1}| < this
    grow_batch: bool = False          # grow the batch (and lr, linearly) as the head gets cheaper
    max_batch_size: int = 2048
    cache: CacheConfig = field(default_factory=CacheConfig)


@dataclass
class OptimConfig:
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    milestones: List[int] = field(default_factory=list)  # epochs after which lr *= gamma
    gamma: float = 0.1
    schedule: str = "step"            # step (milestones x gamma) | cosine (per epoch, lr towards 0 over the run)


@dataclass
class BenchConfig:
    """`fastdrop bench` (fastdrop/bench/run.py): variants are strategy[:policy], the baseline first."""
    repeats: int = 3
    # empty: every registered strategy, then the Table-3 strategy with each policy marked `benched`
    # (today: sgd, freezing, dropping, dropping:noise_level); see fastdrop.bench.default_variants
    variants: List[str] = field(default_factory=list)
    max_drift: float = 0.05   # identical-work epochs may differ by this much before ΔT is refused
    target_drop: float = 1.0  # time-to-accuracy target: sgd's A minus this many points


@dataclass
class DistConfig:
    """Data-parallel runs under torchrun (fastdrop.run.distributed); ignored by a single process."""
    backend: str = "auto"     # auto (nccl on GPUs, gloo on CPU) | nccl | gloo
    sync_bn: bool = False     # SyncBatchNorm: BN statistics over the global batch (GPU only)
    timeout_min: float = 30.0  # how long a collective waits for a slow or dead rank


@dataclass
class LoggerConfig:
    name: str = "csv"  # none | csv | tensorboard (fastdrop/results/loggers.py)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    seed: int = 0
    epochs: int = 10
    batch_size: int = 256
    precision: str = "32-true"        # 32-true | 64-true | bf16-mixed (PyTorch Lightning's names)
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    channels_last: Optional[bool] = None  # default: on for CUDA
    results_dir: str = "results"
    resume: bool = False
    checkpoint: str = "last"          # last (removed once the run completes) | keep | every | none
    progress: bool = True
    tag: str = ""                     # free text stored in the row (e.g. which data copy was used)


RETENTIONS = ("last", "keep", "every", "none")  # the values of `checkpoint`: which checkpoints stay
