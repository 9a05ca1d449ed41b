"""The command line around real runs: a sweep reports its failed jobs and exits != 0, Ctrl-C and SIGTERM
stop a run with one line that resumes it, a refused resume touches nothing. Every test starts the real
CLI (one tiny MNIST config): in a process of its own where a signal is sent to it, else in this process."""
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import cli_in_process, tiny_overrides

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "fastdrop.cli"]


def run(tmp_path, *args):
    """`fastdrop run <args>` in this process (conftest.cli_in_process); the signal tests below start theirs."""
    return cli_in_process(["run", *args], tmp_path)


def test_sweep_with_failed_jobs_exits_nonzero_with_a_summary(tmp_path):
    # three jobs: rejected (lr < 0), completed, diverged (lr 1e12 without momentum)
    p = run(tmp_path, "-m", *tiny_overrides(tmp_path), "epochs=1", "optim.momentum=0", "optim.lr=-1,0.05,1e12",
            f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert p.returncode == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("fastdrop: sweep:"))
    assert lines[i].startswith("fastdrop: sweep: 3 jobs: 1 completed, 1 failed, 1 diverged"), lines[i]
    rest = lines[i + 1:]
    assert len(rest) == 2, rest
    assert rest[0].startswith("fastdrop: failed: optim.lr=-1") and "optim.lr must be > 0" in rest[0]
    assert rest[1].startswith("fastdrop: diverged: optim.lr=1") and "nan at epoch 1" in rest[1]
    rows = [json.loads(f.read_text()) for f in (tmp_path / "results" / "runs").glob("*.json")]
    assert sorted(r["status"] for r in rows) == ["completed", "diverged"]


def test_sweep_with_an_added_unknown_key_is_rejected_before_any_job(tmp_path):
    p = run(tmp_path, "-m", "optim.lr=0.1,0.2", "+epoch=3", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert p.returncode == 2 and "unknown key 'epoch'" in p.stderr, p.stderr
    assert not (tmp_path / "sweep").exists()


def _start_and_stop(tmp_path, sig, epochs=8):
    """Start a real run, send `sig` once its first epoch line is out; (process, stdout, stderr, run_dir)."""
    run_dir = tmp_path / "run"
    args = ["experiment=smoke", "data.train_subset=512", "data.test_subset=128", f"epochs={epochs}", "progress=false",
            "device=cpu", f"results_dir={tmp_path / 'results'}", f"hydra.run.dir={run_dir}"]
    p = subprocess.Popen([*CLI, "run", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV)
    out = []
    deadline = time.time() + 60
    for line in p.stdout:
        out.append(line)
        if f"epoch 1/{epochs}" in line:
            while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline:
                time.sleep(0.01)  # the epoch line comes just before its checkpoint
            p.send_signal(sig)
            break
        assert time.time() < deadline, "".join(out)
    rest, err = p.communicate(timeout=60)
    return p, "".join(out) + rest, err, run_dir, args


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_run_with_one_line_and_the_resume_command(tmp_path, sig):
    p, out, err, run_dir, args = _start_and_stop(tmp_path, sig)
    assert p.returncode == 128 + sig, err
    assert f"run directory: {run_dir}" in out  # printed at the start
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fastdrop: stopped by {signal.Signals(sig).name} after epoch ")
    row_path = next((tmp_path / "results" / "runs").glob("*.json"))
    assert f"row (status failed): {row_path}" in lines[0]
    row = json.loads(row_path.read_text())
    assert row["status"] == "failed" and f"stopped by {signal.Signals(sig).name}" in row["status_reason"]
    cmd = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert cmd == ["fastdrop", "run", *args[:-1], "resume=true", f"hydra.run.dir={run_dir}"]
    if sig == signal.SIGTERM:  # the printed command really continues the run
        r = cli_in_process(cmd[1:], tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "resumed" in r.stdout and "epoch 8/8" in r.stdout
        assert not (run_dir / "checkpoint.pt").exists()  # completed: the default policy removes it


def test_refused_resume_changes_nothing_in_the_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    base = [*tiny_overrides(tmp_path), "epochs=1", "checkpoint=keep", f"hydra.run.dir={run_dir}"]
    assert run(tmp_path, *base).returncode == 0
    before = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in run_dir.rglob("*") if f.is_file()}
    p = run(tmp_path, *base, "seed=7", "resume=true")
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("fastdrop: error: checkpoint") and "different overrides" in p.stderr
    original = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert "seed=7" not in original
    assert shlex.join(["fastdrop", "run", *[o for o in original if not o.startswith("hydra.run.dir")]]) in p.stderr
    after = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in run_dir.rglob("*") if f.is_file()}
    assert after == before

    p = run(tmp_path, *tiny_overrides(tmp_path), f"hydra.run.dir={tmp_path / 'nothing'}", "resume=true")
    assert p.returncode == 2 and "does not exist" in p.stderr
    assert not (tmp_path / "nothing").exists()


def test_a_sweep_stopped_by_ctrl_c_prints_the_summary_of_the_jobs_that_ended(tmp_path):
    args = ["-m", "experiment=smoke", "data.train_subset=512", "data.test_subset=128", "epochs=1,8", "progress=false",
            "device=cpu", f"results_dir={tmp_path / 'results'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    p = subprocess.Popen([*CLI, "run", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV)
    deadline = time.time() + 120
    for line in p.stdout:  # job 0 (1 epoch) completes, then job 1 (8 epochs) starts its epochs
        if "epoch 1/8" in line:
            p.send_signal(signal.SIGINT)
            break
        assert time.time() < deadline
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("fastdrop: sweep:"))
    assert lines[i].startswith("fastdrop: sweep: 2 jobs: 1 completed, 1 failed, 0 diverged"), lines[i]
    assert "stopped by SIGINT, later jobs did not start" in lines[i]
    assert lines[i + 1:] == [lines[-1]] and lines[-1].startswith("fastdrop: failed: epochs=8: stopped by SIGINT")
