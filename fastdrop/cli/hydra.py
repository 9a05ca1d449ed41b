"""`fastdrop run` and `fastdrop bench` as Hydra apps over conf/: Hydra's own errors (unknown option or
key, bad value) become one `fastdrop: error:` line and exit 2 instead of Hydra's multi-line exit 1."""
from __future__ import annotations

import sys
from pathlib import Path

from ..config import CONF_DIR, added_unknown_keys, register_configs, unknown_key_message
from ..errors import print_error
from . import session


def _hydra_app(task):
    """Wrap `task(cfg, run_dir, experiment)` as a Hydra app over conf/."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    register_configs()

    @hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
    def app(cfg):
        hc = HydraConfig.get()
        return task(cfg, hc.runtime.output_dir, hc.runtime.choices.get("experiment"), hc.mode.name == "MULTIRUN")

    return app


def _argv_problem(rest: list[str]) -> str | None:
    """What Hydra's own argument parser or a `+key` the schema lacks would reject, as one line."""
    try:
        from hydra._internal.utils import get_args_parser
    except ImportError:  # a Hydra without it: its own messages then
        return None
    parser = get_args_parser()

    def error(message):
        raise ValueError(message)

    parser.error = error
    try:
        args = parser.parse_args(rest)
        groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
        bad = added_unknown_keys(args.overrides, groups)
    except Exception as e:  # noqa: BLE001 - a parse error of any kind is the user's input
        return hydra_error_line(e)
    return unknown_key_message(bad[0]) if bad else None


def hydra_error_line(e: BaseException) -> str:
    """Hydra's multi-line composition errors as one line (options listed inline, no search path)."""
    import re

    from omegaconf.errors import OmegaConfBaseException

    text, cause = str(e), e.__cause__
    override = getattr(e, "override", None)
    if override and override not in text:
        text = f"bad override '{override}': {text}"
    m = re.search(r"Could not override '([^']+)'", text)
    if m and cause is not None and " not in " in str(cause):
        return unknown_key_message(m.group(1))
    if isinstance(cause, OmegaConfBaseException):
        text += "\n" + str(cause)
    parts: list[str] = []
    for line in text.splitlines():
        if line.startswith("Config search path"):
            break
        if not line.strip() or re.match(r"\s*(full_key:|object_type=|See https://)", line):
            continue
        if line.startswith("\t") and parts and parts[-1].endswith((":", ",")):
            parts[-1] += (" " if parts[-1].endswith(":") else " ") + line.strip() + ","
        else:
            parts.append(line.strip())
    return "; ".join(p.rstrip(",") for p in parts) or type(e).__name__


def hydra_main(task, name: str, rest: list[str]) -> int:
    """Run a Hydra app; Hydra's own errors (unknown option or key, bad value) become one
    `fastdrop: error:` line and exit 2 instead of Hydra's exit 1."""
    import os

    from .callbacks import print_stopped_sweep

    problem = _argv_problem(rest)
    if problem:
        print_error(problem)
        return 2
    sys.argv = [f"{Path(sys.argv[0]).name} {name}"] + rest
    user_full = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us instead of printing and exiting 1
    state = session.start()
    try:
        _hydra_app(task)()
    except KeyboardInterrupt as e:  # between the jobs of a sweep (a job's own is handled in run_task)
        import signal

        signum = getattr(e, "signum", signal.SIGINT)
        if state.sweep_dir is None:
            raise
        print_stopped_sweep(signal.Signals(signum).name)
        return 128 + signum
    except Exception as e:
        if state.task_raised or user_full:
            raise
        print_error(hydra_error_line(e))
        return 2
    finally:
        if user_full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    return state.sweep_exit
