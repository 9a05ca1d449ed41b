"""Hydra callbacks of `fastdrop run` (registered in conf/config.yaml under hydra.callbacks).

- Before a single run, Hydra creates the run directory and writes its .hydra/ files; `on_run_start`
  comes first, so a run that can be rejected from its config alone (unknown key, bad value, a resume
  that cannot continue) is rejected there and changes nothing on disk. It also notes which
  directories the run is about to create, so a run rejected later (missing data) can remove them.
- In a sweep every job writes `fastdrop-job.json` (its overrides and outcome) into its own directory
  (`on_job_end`, which runs where the job runs, also on a Slurm node); `on_multirun_end` reads them
  back and prints one summary, and the command exits 1 if any job did not complete. A sweep stopped by
  Ctrl-C or SIGTERM prints the summary of the jobs that ended (`print_stopped_sweep`).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ..config import unknown_key_message, unknown_keys
from ..errors import print_error, user_errors
from ..files import HYDRA_OVERRIDES, JOB_FILE, RUNS
from ..run.checkpoint import check_resume
from . import session


def reject(msg: str, code: int = 2):
    print_error(msg)
    sys.exit(code)


def task_config(cfg: DictConfig) -> DictConfig:
    """The config the task sees: `cfg` without its hydra node."""
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def _missing_top(path: Path) -> Path | None:
    """The highest ancestor of `path` (itself included) that does not exist yet."""
    path, top = path.resolve(), None
    while not path.exists():
        top, path = path, path.parent
    return top


def remove_created() -> None:
    """Remove what a rejected single run created: its run directory (only Hydra's files are in it yet)
    and result folders it made that hold no file."""
    state = session.current()
    top, state.run_top = state.run_top, None
    if top is not None:
        shutil.rmtree(top, ignore_errors=True)
    top, state.results_top = state.results_top, None
    if top is not None and top.is_dir() and not any(p.is_file() for p in top.rglob("*")):
        shutil.rmtree(top, ignore_errors=True)


def lock_run_dir(cfg: DictConfig, run_dir: Path) -> None:
    """Take the run directory's lock (fastdrop.run.lock) before Hydra writes .hydra/ and the log into it:
    a second process on it is refused here and changes nothing. Held until this process ends."""
    from ..run import distributed
    from ..run.lock import RunDirBusy, acquire_for_world

    world = distributed.init(cfg.device, cfg.dist.backend, cfg.dist.timeout_min)
    try:
        acquire_for_world(run_dir, world)
    except RunDirBusy as e:
        if world.is_main:
            reject(str(e))
        sys.exit(2)  # rank 0 says it


def _record(job_return, cfg: DictConfig) -> dict:
    value = job_return._return_value
    if job_return.status.name != "COMPLETED":
        return {"status": "failed", "reason": f"{type(value).__name__}: {value}"}
    if isinstance(value, dict) and "status" in value:
        return {k: value[k] for k in ("status", "reason", "row") if k in value}
    return {"status": "completed"}


class FastdropCallback(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from ..config.validate import validate

        cfg = task_config(config)
        run_dir = Path(config.hydra.run.dir)
        try:
            validate(cfg)  # unknown keys (added with +) included; the run's only check
            if cfg.resume:
                check_resume(cfg, run_dir)  # the checkpoint's fingerprint only, before run_dir is touched
        except user_errors() as e:
            reject(str(e))
        state = session.current()
        state.run_top, state.results_top = _missing_top(run_dir), _missing_top(Path(cfg.results_dir) / RUNS)
        lock_run_dir(cfg, run_dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        state = session.current()
        self.started = state.sweep_started = time.time()
        state.sweep_dir = Path(config.hydra.sweep.dir)
        bad = unknown_keys(task_config(config))
        if bad:
            reject(unknown_key_message(bad[0]))

    def on_job_end(self, config: DictConfig, job_return, **kwargs: Any) -> None:
        if HydraConfig.get().mode.name != "MULTIRUN":
            return
        rec = {"overrides": list(job_return.overrides or []), **_record(job_return, config)}
        out = Path(config.hydra.runtime.output_dir) / JOB_FILE
        try:
            out.write_text(json.dumps(rec, default=str) + "\n")
        except OSError as e:
            print(f"fastdrop: cannot record the job's outcome in {out}: {e}", file=sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        lines, code = sweep_summary(Path(config.hydra.sweep.dir), getattr(self, "started", 0.0))
        session.current().sweep_exit = code
        stream = sys.stdout if code == 0 else sys.stderr
        print("\n".join(lines), file=stream, flush=True)


def print_stopped_sweep(signame: str, job_dir: Path | None = None, reason: str = "") -> None:
    """After a signal stopped a sweep: record the stopped job's outcome (in `job_dir`), then print the
    summary of the jobs that started; jobs after it never start."""
    state = session.current()
    if state.sweep_dir is None:
        return
    if job_dir is not None:
        rec = {"overrides": list(HydraConfig.get().overrides.task), "status": "failed", "reason": reason}
        try:
            (Path(job_dir) / JOB_FILE).write_text(json.dumps(rec) + "\n")
        except OSError:
            pass  # the summary then says it left no outcome
    lines, _ = sweep_summary(state.sweep_dir, state.sweep_started)
    lines[0] += f"; stopped by {signame}, later jobs did not start"
    print("\n".join(lines), file=sys.stderr, flush=True)


def sweep_summary(sweep_dir: Path, since: float) -> tuple[list[str], int]:
    """One line `fastdrop: sweep: N jobs: a completed, b failed, c diverged`, then one line per job that
    did not complete with the overrides that set it apart; exit code 1 if there is such a job. A job that started (Hydra
    wrote its .hydra/overrides.yaml) but left no outcome (killed) counts as failed."""
    jobs: dict[Path, dict] = {}
    for f in sweep_dir.rglob(HYDRA_OVERRIDES):
        if f.stat().st_mtime >= since - 1:
            jobs[f.parent.parent] = {"overrides": list(OmegaConf.load(f)), "status": "failed",
                                     "reason": "the job left no outcome (killed?)"}
    for f in sweep_dir.rglob(JOB_FILE):
        if f.stat().st_mtime >= since - 1:
            try:
                jobs[f.parent] = json.loads(f.read_text())
            except (OSError, ValueError):
                pass
    counts = {s: sum(j["status"] == s for j in jobs.values()) for s in ("completed", "failed", "diverged")}
    lines = [f"fastdrop: sweep: {len(jobs)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items())
             + f" ({sweep_dir})"]
    # name each job by what the sweep varied, not by the overrides all its jobs share
    common = set.intersection(*(set(j["overrides"]) for j in jobs.values())) if len(jobs) > 1 else set()
    for d, j in sorted(jobs.items()):
        if j["status"] != "completed":
            own = " ".join(o for o in j["overrides"] if o not in common) or "(no overrides)"
            lines.append(f"fastdrop: {j['status']}: {own}: {j.get('reason', '')} ({d})")
    return lines, int(len(jobs) == 0 or counts["completed"] < len(jobs))
