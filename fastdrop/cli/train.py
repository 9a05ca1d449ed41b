"""The task of `fastdrop run`: train one run and say how it ended, in one line and an exit code."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..errors import print_error, user_errors
from ..files import CKPT
from . import session


def run_task(cfg, run_dir, experiment, multirun):
    """Train one run. Bad input: one `fastdrop: error:` line, exit 2 (a run rejected before training
    leaves no directory behind). Divergence: exit 3. A write without space or permission: one line, exit 4.
    Ctrl-C / SIGTERM: one line with the row and the resume command, exit 130 / 143. In a sweep nothing
    exits: the outcome goes to the sweep summary (a sweep stopped by a signal prints that of the jobs so far)."""
    from ..files import WriteError
    from ..run import distributed
    from ..run.trainer import Trainer
    from .callbacks import remove_created

    log = logging.getLogger("fastdrop")
    logging.raiseExceptions = False  # a log file on a full disk: no "--- Logging error ---" tracebacks
    trainer = None
    try:
        # a single run was checked by the pre-run callback; a sweep's jobs are checked here, one by one
        trainer = Trainer(cfg, run_dir, experiment=experiment, validated=not multirun)
        row = trainer.fit()
    except user_errors() as e:
        print_error(str(e))
        if trainer is None and not multirun:
            remove_created()
        return _outcome(trainer, "failed", str(e), multirun, 2)
    except WriteError as e:  # no space or permission: the last whole checkpoint stays, to resume
        print_error(str(e))
        return _outcome(trainer, "failed", str(e), multirun, 4)
    except KeyboardInterrupt as e:
        _stopped(e, trainer, run_dir, multirun)
    except Exception as e:
        if not multirun:
            session.current().task_raised = True
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

    from ..run.checkpoint import resume_command
    from .callbacks import print_stopped_sweep, remove_created

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
    elif not trainer.history or not (Path(run_dir) / CKPT).exists():
        print(f"{what} before a checkpoint was written; row (status failed): {row_path}; start the run again",
              file=sys.stderr, flush=True)
    else:
        cmd = resume_command(list(HydraConfig.get().overrides.task), run_dir)
        print(f"{what} after epoch {len(trainer.history)}/{trainer.cfg.epochs}; row (status failed): {row_path}; "
              f"resume with: {cmd}", file=sys.stderr, flush=True)
    sys.exit(128 + signum)
