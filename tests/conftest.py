"""Shared test fixtures: the real Hydra config from conf/, a shrinker that makes any composed config cheap
enough for a 2-core CPU, and the optional real data beside the project (../shared/data)."""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from fastdrop.config import register_configs

# The test machines share their few cores with timing benchmarks; intra-op threads that spin-wait for a
# busy core made tiny forward passes 100x slower (7 s instead of 0.06 s for a ResNet-101 at width 1/8).
# The tests check results, not speed, so one thread unless FASTDROP_TEST_THREADS says otherwise.
torch.set_num_threads(int(os.environ.get("FASTDROP_TEST_THREADS", "1")))

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
# Real datasets some developers and CI machines have next to the checkout; never required.
SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"

# What `shrink` applies. warmup must stay below epochs or validate() rejects freezing/dropping.
TINY = {
    "model.width": 0.125,
    "data.train_subset": 256,
    "data.test_subset": 64,
    "epochs": 2,
    "batch_size": 64,
    "strategy.warmup": 1,
    "progress": False,
    "device": "cpu",
}


def compose_config(overrides: list[str] | None = None, return_hydra: bool = False) -> DictConfig:
    """The config `fastdrop run <overrides>` would run with (same files, same schema); with
    `return_hydra` also its `hydra` node (launcher, sweeper)."""
    register_configs()
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return hydra.compose("config", overrides=list(overrides or []), return_hydra_config=return_hydra)


def tiny_overrides(tmp_path: Path) -> list[str]:
    """`TINY` as command-line overrides, for subprocess runs of the real CLI."""
    ov = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in TINY.items()]
    return ov + [f"results_dir={tmp_path / 'results'}"]


def shrink(cfg: DictConfig, tmp_path: Path, extra: dict | None = None) -> DictConfig:
    """Make a composed config cheap: tiny width, subsets and epochs; results under tmp_path. `extra`
    ({"epochs": 3, ...}) wins over the tiny values.

    Goes through OmegaConf.update so the schema still type-checks every value."""
    values = {**TINY, "results_dir": str(tmp_path / "results"), **(extra or {})}
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


@pytest.fixture
def compose():
    """compose(overrides) -> the real composed config."""
    return compose_config


@pytest.fixture
def small_cfg(tmp_path):
    """small_cfg(overrides, extra) -> composed config already shrunk into tmp_path."""

    def make(overrides: list[str] | None = None, extra: dict | None = None) -> DictConfig:
        return shrink(compose_config(overrides), tmp_path, extra)

    return make


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no real data at {SHARED_DATA} (optional: see ../shared/data/README.md)")
    return SHARED_DATA


# ------------------------------------------------------------------------------ the CLI in this process

def _default_warning_filters() -> None:
    """The filters a fresh `python` starts with (no -W, no PYTHONWARNINGS): what a user's terminal shows."""
    import warnings

    warnings.resetwarnings()
    for action, category, module in (("ignore", ResourceWarning, ""), ("ignore", ImportWarning, ""),
                                     ("ignore", PendingDeprecationWarning, ""), ("ignore", DeprecationWarning, ""),
                                     ("default", DeprecationWarning, "__main__")):
        warnings.filterwarnings(action, category=category, module=module)


@contextlib.contextmanager
def _process_kept(cwd: Path, env: dict | None):
    """Run a CLI command as if in its own process and leave this one as it was: Hydra's logging setup
    (root handlers, levels), the SIGINT/SIGTERM handlers, sys.argv, cwd and the environment come back."""
    import logging
    import signal
    import sys
    import warnings

    def loggers():
        return {name: lg for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)}

    root = logging.getLogger()
    saved = {lg: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in [root, *loggers().values()]}
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    argv, raise_exceptions, old_cwd, old_env = sys.argv[:], logging.raiseExceptions, os.getcwd(), dict(os.environ)
    for key, value in (env or {}).items():  # None: unset
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            _default_warning_filters()
            warnings.showwarning = warnings._showwarning_orig  # to sys.stderr, not pytest's record
            yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        sys.argv[:], logging.raiseExceptions = argv, raise_exceptions
        for s, h in handlers.items():
            if h is not None:  # None: a handler not set from Python, which nothing here replaced
                signal.signal(s, h)
        for lg in [root, *loggers().values()]:
            keep, level, propagate, disabled = saved.get(lg, ([], logging.NOTSET, True, False))
            for h in lg.handlers:
                if h not in keep:
                    h.close()
            lg.handlers[:], lg.propagate, lg.disabled = keep, propagate, disabled
            lg.setLevel(level)


def cli_in_process(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`fastdrop <args>` run in this process, returned as a subprocess.run result (exit code, stdout,
    stderr), for tests of what the CLI prints and exits with that need no process of their own (signals
    and kills do): it saves the 3-5 s of imports each new process pays. An exception that would end the
    process prints its traceback to stderr and exits 1, as it would there."""
    import io
    import sys
    import traceback

    from fastdrop.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _process_kept(Path(cwd), env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
        except Exception:  # noqa: BLE001 - what an uncaught exception does to a process
            traceback.print_exc()
            code = 1
        if isinstance(code, str):  # sys.exit("message")
            print(code, file=sys.stderr)
            code = 1
    return subprocess.CompletedProcess(["fastdrop", *map(str, args)], code or 0, out.getvalue(), err.getvalue())
