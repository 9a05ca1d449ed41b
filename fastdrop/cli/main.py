"""Command line: `fastdrop run [hydra overrides]` (train one run, or a sweep with -m), `fastdrop tables`
(rebuild Tables 1-3 from result rows), `fastdrop figures` and `fastdrop bench` (three strategies side by
side). `run` is a Hydra app, so --help, --cfg job, -m and Hydra's own error messages work as usual."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from .config import conf_dir

CONF_DIR = conf_dir()  # inside the package when installed from a wheel, else the checkout's conf/

USAGE = """usage: fastdrop {run,tables,figures,bench,suite} [args]

  run      train one configuration (Hydra overrides, e.g. model=resnet18 strategy=dropping; -m for sweeps)
  tables   rebuild the paper's Tables 1-3 from results/runs/*.json  (--results DIR --out DIR)
  figures  draw Figs. 1/3/5/6 from result rows                         (--results DIR --out DIR)
  bench    run sgd, freezing and dropping back to back and compare     (Hydra overrides)
  suite    the held-out suite: sgd, its frontier, the paper's rule, ours and the peers on 5 configs
"""


def _hydra_app(task):
    """Wrap `task(cfg, run_dir, experiment)` as a Hydra app over conf/."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from .config import register_configs

    register_configs()

    @hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
    def app(cfg):
        hc = HydraConfig.get()
        return task(cfg, hc.runtime.output_dir, hc.runtime.choices.get("experiment"), hc.mode.name == "MULTIRUN")

    return app


def run_task(cfg, run_dir, experiment, multirun):
    """Train one run. Bad input: one `fastdrop: error:` line, exit 2 (a run rejected before training
    leaves no directory behind). Divergence: exit 3. A write without space or permission: one line, exit 4.
    Ctrl-C / SIGTERM: one line with the row and the resume command, exit 130 / 143. In a sweep nothing
    exits: the outcome goes to the sweep summary (a sweep stopped by a signal prints that of the jobs so far)."""
    from . import distributed
    from .callbacks import remove_created
    from .results import WriteError
    from .signals import raise_on_sigterm
    from .trainer import Trainer
    from .validate import USER_ERRORS

    log = logging.getLogger("fastdrop")
    logging.raiseExceptions = False  # a log file on a full disk: no "--- Logging error ---" tracebacks
    raise_on_sigterm()
    trainer = None
    try:
        trainer = Trainer(cfg, run_dir, experiment=experiment)
        row = trainer.fit()
    except USER_ERRORS as e:
        print(f"fastdrop: error: {e}", file=sys.stderr, flush=True)
        if trainer is None and not multirun:
            remove_created()
        return _outcome(trainer, "failed", str(e), multirun, 2)
    except WriteError as e:  # no space or permission: the last whole checkpoint stays, to resume
        print(f"fastdrop: error: {e}", file=sys.stderr, flush=True)
        return _outcome(trainer, "failed", str(e), multirun, 4)
    except KeyboardInterrupt as e:
        _stopped(e, trainer, run_dir, multirun)
    except Exception as e:
        if not multirun:
            _STATE["task_raised"] = True
            raise
        log.exception("job failed")  # the sweep goes on; its summary names this job
        return _outcome(trainer, "failed", f"{type(e).__name__}: {e}", multirun, 1)
    finally:
        distributed.shutdown()
    if trainer.row_path is None:  # a rank other than 0 under torchrun: rank 0 reports
        return row
    a = f"{row['A']:.2f}%" if row["A"] is not None else "n/a"
    msg = (f"fastdrop: {row['status']}: {row['model']} {row['data']} {row['strategy']} seed {row['seed']}: "
           f"A={a} T={row['T_min']:.2f} min -> {trainer.row_path}")
    print(msg, flush=True)
    log.debug(msg)
    if row["status"] != "completed":
        print(f"fastdrop: {row['status_reason']}", file=sys.stderr)
        return _outcome(trainer, row["status"], row["status_reason"], multirun, 3)
    return _outcome(trainer, "completed", "", multirun, 0)


def _outcome(trainer, status: str, reason: str, multirun: bool, code: int) -> dict:
    if code and not multirun:
        sys.exit(code)
    row_path = getattr(trainer, "row_path", None)
    return {"status": status, "reason": reason, "row": str(row_path) if row_path else None}


def _stopped(e: KeyboardInterrupt, trainer, run_dir, multirun: bool = False) -> None:
    """One line for Ctrl-C / SIGTERM: where the row is and the exact command that resumes the run; in a
    sweep, then the summary of the jobs that ended."""
    import signal

    from hydra.core.hydra_config import HydraConfig

    from .callbacks import print_stopped_sweep, remove_created, resume_command

    signum = getattr(e, "signum", signal.SIGINT)
    signame = signal.Signals(signum).name
    what = f"fastdrop: stopped by {signame}"
    row_path = getattr(trainer, "row_path", None)
    if trainer is not None and not trainer.world.is_main:
        sys.exit(128 + signum)  # rank 0 says it
    if multirun:
        done = len(trainer.history) if trainer is not None else 0
        epochs = f" after epoch {done}/{trainer.cfg.epochs}" if trainer is not None else " before training started"
        print(f"{what}{epochs}" + (f"; row (status failed): {row_path}" if row_path else ""), file=sys.stderr)
        print_stopped_sweep(signame, run_dir, f"stopped by {signame}{epochs}")
        sys.exit(128 + signum)
    if trainer is None or row_path is None:
        remove_created()
        print(f"{what} before training started; nothing was written", file=sys.stderr, flush=True)
    elif not trainer.history or not (Path(run_dir) / "checkpoint.pt").exists():
        print(f"{what} before a checkpoint was written; row (status failed): {row_path}; start the run again",
              file=sys.stderr, flush=True)
    else:
        cmd = resume_command(list(HydraConfig.get().overrides.task), run_dir)
        print(f"{what} after epoch {len(trainer.history)}/{trainer.cfg.epochs}; row (status failed): {row_path}; "
              f"resume with: {cmd}", file=sys.stderr, flush=True)
    sys.exit(128 + signum)


_STATE = {"task_raised": False}


def _argv_problem(rest: list[str]) -> str | None:
    """What Hydra's own argument parser or a `+key` the schema lacks would reject, as one line."""
    from .config import added_unknown_keys, unknown_key_message

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

    from .config import unknown_key_message

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


def _hydra_main(task, name: str, rest: list[str]) -> int:
    """Run a Hydra app; Hydra's own errors (unknown option or key, bad value) become one
    `fastdrop: error:` line and exit 2 instead of Hydra's exit 1."""
    import os

    from .callbacks import STATE, print_stopped_sweep

    problem = _argv_problem(rest)
    if problem:
        print(f"fastdrop: error: {problem}", file=sys.stderr)
        return 2
    sys.argv = [f"{Path(sys.argv[0]).name} {name}"] + rest
    user_full = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us instead of printing and exiting 1
    _STATE["task_raised"], STATE.sweep_exit, STATE.sweep_dir = False, 0, None
    try:
        _hydra_app(task)()
    except KeyboardInterrupt as e:  # between the jobs of a sweep (a job's own is handled in run_task)
        import signal

        signum = getattr(e, "signum", signal.SIGINT)
        if STATE.sweep_dir is None:
            raise
        print_stopped_sweep(signal.Signals(signum).name)
        return 128 + signum
    except Exception as e:
        if _STATE["task_raised"] or user_full:
            raise
        print(f"fastdrop: error: {hydra_error_line(e)}", file=sys.stderr)
        return 2
    finally:
        if user_full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    return STATE.sweep_exit


def _torchrun_overrides(args: list[str]) -> list[str]:
    """Under torchrun every rank runs this CLI. Give all ranks rank 0's run directory (Hydra's default
    name holds a timestamp that may differ between ranks), and let only rank 0 write .hydra/ and the
    main log (rank r logs to <job>.rank<r>.log)."""
    from . import distributed

    if distributed.env_world_size() <= 1:
        return args
    if any(a in ("-m", "--multirun") for a in args):
        raise ValueError("a sweep (-m) under torchrun is not supported: launch one torchrun per run "
                         "(see README, Scaling out)")
    last = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
    world = distributed.init(last.get("device", "auto"), last.get("dist.backend", "auto"),
                             float(last.get("dist.timeout_min", 30.0)))
    out = list(args)
    if "hydra.run.dir" not in last:
        import re
        from datetime import datetime

        from omegaconf import OmegaConf

        pattern = str(OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))["hydra"]["run"]["dir"])
        now = distributed.gather(world, datetime.now())[0]
        out.append("hydra.run.dir=" + re.sub(r"\$\{now:([^}]*)\}", lambda m: now.strftime(m.group(1)), pattern))
    if not world.is_main:
        out += ["hydra.output_subdir=null",
                f"hydra.job_logging.handlers.file.filename=${{hydra.runtime.output_dir}}/${{hydra.job.name}}.rank{world.rank}.log"]
    return out


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        try:
            rest = _torchrun_overrides(rest)
        except ValueError as e:
            print(f"fastdrop: error: {e}", file=sys.stderr)
            return 2
        return _hydra_main(run_task, "run", rest)
    if cmd == "bench":
        from .bench import bench_task

        return _hydra_main(bench_task, "bench", rest)
    if cmd == "suite":
        from .suite import main as suite_main

        return suite_main(rest)
    if cmd == "tables":
        from .report import tables_main

        return tables_main(rest)
    if cmd == "figures":
        from .report import figures_main

        return figures_main(rest)
    print(f"fastdrop: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
