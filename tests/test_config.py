"""The Hydra config in conf/ and the `fastdrop run` command line around it.

Composition is checked in-process with hydra's compose API (what `fastdrop run ... --cfg job` prints);
the command line runs in this process too (conftest.cli_in_process), since each process pays 3-5 s for
the imports; one test starts the installed console script.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import cli_in_process
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ValidationError

from fastdrop.config import PRECISIONS
from fastdrop.data import LOADERS
from fastdrop.models import NAMES
from fastdrop.strategies import STRATEGIES
from fastdrop.config.validate import validate
from fastdrop.errors import ConfigError

MODELS = ["vgg11", "vgg16", "vgg19", "resnet18", "resnet50", "resnet101", "resnet152"]
DATA = ["mnist_mini", "mnist", "cifar10", "cifar10_jpeg", "imagenette", "folder"]
STRATS = ["sgd", "freezing", "dropping"]
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = ["offline", "smoke", "bench_cpu", "paper_mnist", "paper_cifar10", "paper_imagenette"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_group_options_are_the_ones_tested_here():
    # A yaml added to conf/ without a test here (or one removed) shows up as a failure, not a gap.
    assert _options("model") == sorted(MODELS) == sorted(NAMES)
    assert _options("data") == sorted(DATA) == sorted(LOADERS)
    assert _options("strategy") == sorted(STRATS) == sorted(STRATEGIES)
    assert _options("experiment") == sorted(EXPERIMENTS)


def test_defaults_are_the_offline_run(compose):
    cfg = compose([])
    assert (cfg.model.name, cfg.data.name, cfg.strategy.name) == ("vgg11", "mnist_mini", "sgd")
    assert cfg.model.width == 0.25 and cfg.epochs == 10 and cfg.precision in PRECISIONS
    validate(cfg)


# Every pair of options from two groups, each once: 42 configs, not all 126 triples (validate() costs about
# a second a config on 2 cores). A group's yaml sets only its own node (no interpolation, no defaults), so
# options meet at most pairwise, in validate()'s cross-key rules. Model i with data j takes strategy
# (i + j) mod 3, so each model and each data option also meets every strategy.
PAIRWISE = [(m, d, STRATS[(i + j) % len(STRATS)]) for (i, m), (j, d) in itertools.product(enumerate(MODELS),
                                                                                          enumerate(DATA))]


def test_pairwise_cases_cover_every_pair_of_options():
    for a, b in itertools.combinations(range(3), 2):
        pairs = {(case[a], case[b]) for case in PAIRWISE}
        assert pairs == set(itertools.product(*[(MODELS, DATA, STRATS)[k] for k in (a, b)]))


@pytest.mark.parametrize("model, data, strategy", PAIRWISE)
def test_every_model_data_strategy_composes(compose, model, data, strategy):
    cfg = compose([f"model={model}", f"data={data}", f"strategy={strategy}"])
    assert (cfg.model.name, cfg.data.name, cfg.strategy.name) == (model, data, strategy)
    assert not OmegaConf.missing_keys(cfg)
    assert cfg.model.width == 0.25  # the default experiment (offline) shrinks every model alike
    validate(cfg)
    OmegaConf.to_yaml(cfg, resolve=True)  # what --cfg job prints


PAPER_COMMON = {"batch_size": 256, "model.width": 1.0, "optim.momentum": 0.9, "optim.weight_decay": 5e-4}
PRESETS = {
    # Sect. 4.2 of the paper: batch 256 everywhere; 60 epochs, lr 0.001 fixed, warm-up 5 on MNIST; ...
    "paper_mnist": {**PAPER_COMMON, "data.name": "mnist", "epochs": 60, "optim.lr": 0.001,
                    "optim.milestones": [], "strategy.warmup": 5},
    # ... 60 epochs, lr 0.1 divided by 10 after epoch 20, warm-up 10 on CIFAR-10; ...
    "paper_cifar10": {**PAPER_COMMON, "data.name": "cifar10", "data.augment": True, "epochs": 60,
                      "optim.lr": 0.1, "optim.milestones": [20], "optim.gamma": 0.1, "strategy.warmup": 10},
    # ... 150 epochs, lr 0.01 divided by 10 after epoch 50, warm-up 25 on Imagenette (160 px release).
    "paper_imagenette": {**PAPER_COMMON, "data.name": "imagenette", "data.image_size": 160, "epochs": 150,
                         "optim.lr": 0.01, "optim.milestones": [50], "optim.gamma": 0.1, "strategy.warmup": 25},
    "offline": {"model.name": "vgg11", "model.width": 0.25, "data.name": "mnist_mini", "epochs": 10,
                "batch_size": 256, "optim.lr": 0.05, "strategy.warmup": 2},
    "smoke": {"model.width": 0.25, "data.train_subset": 4096, "data.test_subset": 512, "epochs": 4,
              "batch_size": 128, "strategy.warmup": 1},
    "bench_cpu": {"model.name": "vgg11", "model.width": 0.25, "data.name": "mnist_mini", "epochs": 16,
                  "batch_size": 256, "optim.lr": 0.05, "optim.momentum": 0.9, "optim.weight_decay": 5e-4,
                  "optim.milestones": [12], "strategy.warmup": 2},
}


def test_every_preset_is_checked():
    assert sorted(PRESETS) == sorted(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("strategy", STRATS)
def test_experiment_presets(compose, experiment, strategy):
    cfg = compose([f"experiment={experiment}", f"strategy={strategy}"])
    got = {key: OmegaConf.select(cfg, key) for key in PRESETS[experiment]}
    got = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in got.items()}
    assert got == PRESETS[experiment]
    validate(cfg)  # warm-up < epochs, so every preset runs with freezing and dropping too


def test_command_line_beats_the_preset(compose):
    cfg = compose(["experiment=paper_cifar10", "model=resnet18", "data=mnist_mini", "epochs=3",
                   "strategy.warmup=1", "model.width=0.5"])
    assert (cfg.model.name, cfg.model.width, cfg.data.name, cfg.epochs) == ("resnet18", 0.5, "mnist_mini", 3)
    assert cfg.optim.milestones == [20]  # the rest of the preset stays


@pytest.mark.parametrize("overrides, error", [
    (["model=foo"], ConfigCompositionException),
    (["foo=1"], ConfigCompositionException),
    (["model.foo=1"], ConfigCompositionException),
    (["epochs=abc"], ConfigCompositionException),
    (["model.width=wide"], ConfigCompositionException),
    (["data.download=maybe"], ConfigCompositionException),
])
def test_schema_rejects_at_compose_time(compose, overrides, error):
    with pytest.raises(error):
        compose(overrides)


def test_schema_rejects_assignment_after_compose(compose):
    cfg = compose([])
    with pytest.raises(ConfigAttributeError):
        cfg.epoch = 3  # a misspelt key never silently adds a setting
    with pytest.raises(ValidationError):
        cfg.batch_size = "big"


@pytest.mark.parametrize("overrides, message", [
    (["epochs=0"], "epochs must be > 0 (got 0)"),
    (["batch_size=-1"], "batch_size must be > 0 (got -1)"),
    (["optim.lr=0"], "optim.lr must be > 0"),
    (["strategy=dropping", "strategy.warmup=99", "epochs=2"], "strategy.warmup must be >= 0 and < epochs"),
    (["strategy=freezing", "strategy.warmup=2", "epochs=2"], "strategy.warmup must be >= 0 and < epochs"),
    (["precision=16-foo"], "precision must be one of 32-true, 64-true, bf16-mixed (got '16-foo')"),
    (["model.width=0"], "model.width must be > 0"),
    (["data.train_subset=0"], "data.train_subset must be > 0"),
    (["strategy.cache.backend=tape"], "strategy.cache.backend must be"),
])
def test_validate_rejects_values_the_schema_lets_through(compose, overrides, message):
    cfg = compose(overrides)  # composes: the type is right, only the value is wrong
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_sgd_ignores_warmup_bound(compose):
    # sgd never cuts, so a warm-up as long as the run is fine there.
    validate(compose(["strategy=sgd", "strategy.warmup=99", "epochs=2"]))


# ---------------------------------------------------------------------------- the real command line

def _fastdrop() -> list[str]:
    # The console script of this interpreter's environment, else the module it wraps.
    script = Path(sys.executable).parent / "fastdrop"
    if script.is_file():
        return [str(script)]
    found = shutil.which("fastdrop")
    return [found] if found else [sys.executable, "-m", "fastdrop.cli"]


def run_cli(tmp_path: Path, *args: str, process: bool = False) -> subprocess.CompletedProcess:
    """`fastdrop run <args>` in tmp_path (Hydra creates outputs/<date>/... under the working directory):
    in this process, or with `process` through the installed console script (the imports cost 3-5 s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYDRA_")}  # HYDRA_FULL_ERROR: tracebacks
    if not process:
        return cli_in_process(["run", *args], tmp_path, {k: None for k in os.environ if k.startswith("HYDRA_")})
    return subprocess.run(_fastdrop() + ["run", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_cfg_job_prints_the_composed_config(tmp_path, compose):
    args = ["model=resnet50", "data=cifar10", "strategy=dropping"]
    p = run_cli(tmp_path, *args, "--cfg", "job")
    assert p.returncode == 0, p.stderr
    printed = yaml.safe_load(p.stdout)
    assert printed == OmegaConf.to_container(compose(args))
    assert printed["model"]["name"] == "resnet50" and printed["strategy"]["name"] == "dropping"
    assert not (tmp_path / "outputs").exists()  # --cfg only prints: no run directory


def test_cli_help(tmp_path):
    p = run_cli(tmp_path, "--help", process=True)  # the one test here that starts the console script
    assert p.returncode == 0, p.stderr
    for group, options in (("model", MODELS), ("data", DATA), ("strategy", STRATS), ("experiment", EXPERIMENTS)):
        assert f"{group}: {', '.join(sorted(options))}" in p.stdout


@pytest.mark.parametrize("override, expected", [
    (["model=foo"], ["Could not find 'model/foo'", "Available options in 'model': " + ", ".join(sorted(MODELS))]),
    (["foo=1"], ["unknown key 'foo'"]),
    (["model.foo=1"], ["unknown key 'model.foo'"]),
    (["epoch=3"], ["unknown key 'epoch' (did you mean 'epochs'?)"]),
    # Hydra's own hint for the line above is "use +epoch=3": that must not smuggle the key in either
    (["+epoch=3"], ["unknown key 'epoch' (did you mean 'epochs'?)"]),
    (["++strategy.warmpu=1", "--cfg", "job"], ["unknown key 'strategy.warmpu' (did you mean 'strategy.warmup'?)"]),
    (["epochs=abc"], ["Value 'abc' of type 'str' could not be converted to Integer", "epochs"]),
    (["--foo"], ["unrecognized arguments: --foo"]),
    (["optim.schedule=cosine"], ["optim.milestones [7] apply to optim.schedule=step", "add optim.milestones=[]"]),
], ids=["group-option", "key", "nested-key", "misspelt", "added-key", "force-added-key", "type", "option",
        "cosine-with-milestones"])
def test_cli_config_errors_are_one_line_exit_2(tmp_path, override, expected):
    p = run_cli(tmp_path, *override)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert p.stderr.startswith("fastdrop: error: ") and len(p.stderr.strip().splitlines()) == 1, p.stderr
    for text in expected:
        assert text in p.stderr, p.stderr
    assert not p.stdout and not list(tmp_path.iterdir())  # nothing printed as a config, nothing written


def test_added_keys_are_rejected_also_when_composed_in_process(compose):
    cfg = compose(["+epoch=3", "+strategy.cache.size=1"])  # what fastdrop.api.fit composes
    with pytest.raises(ConfigError, match=r"unknown key 'strategy.cache.size'.*unknown key 'epoch'"):
        validate(cfg)
    # keys inside the free-form schedule are fine
    validate(compose(["strategy.schedule={1:2}", "strategy.policy=schedule", "strategy=dropping"]))


# Every value validate() rejects goes through the same print in cli.run_task; two processes cover the five
# values (validate() reports all problems at once), the parametrised test above covers each alone.
@pytest.mark.parametrize("overrides, messages", [
    (["epochs=0", "batch_size=-1", "optim.lr=0", "precision=16-foo"],
     ["epochs must be > 0", "batch_size must be > 0", "optim.lr must be > 0", "precision must be one of"]),
    (["strategy=dropping", "strategy.warmup=99", "epochs=2"], ["strategy.warmup must be >= 0 and < epochs"]),
], ids=["run-level-values", "warmup-too-long"])
def test_cli_rejects_bad_values_in_one_line(tmp_path, overrides, messages):
    p = run_cli(tmp_path, *overrides, f"results_dir={tmp_path / 'results'}")
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    errors = [line for line in p.stderr.splitlines() if line.startswith("fastdrop: error:")]
    assert len(errors) == 1, p.stderr
    for text in messages:
        assert text in errors[0]
    # Rejected before any work: no data loaded, no result row, no outputs/ directory left behind.
    assert not list((tmp_path / "results").glob("runs/*.json"))
    assert not (tmp_path / "outputs").exists()
