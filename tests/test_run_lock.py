"""One process per run directory (issue 22): a second process on a locked run directory is refused at
once with one line naming the holder, exit 2, and changes no file; two resumes of one killed run started
together leave what one resume leaves."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import cli_in_process, compose_config, shrink, tiny_overrides

from fastdrop.files import CKPT, WEIGHTS
from fastdrop.run.checkpoint import config_fingerprint
from fastdrop.files import LOCK
from fastdrop.run.lock import RunDirBusy
from fastdrop.run.trainer import Trainer

TESTS = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
HOLD = "import sys, time; from fastdrop.run import lock; lock.acquire(sys.argv[1]); print('locked', flush=True); time.sleep(120)"


def snapshot(d: Path) -> dict:
    return {f.relative_to(d): (f.read_bytes(), f.stat().st_mtime_ns) for f in d.rglob("*") if f.is_file()}


def test_a_locked_run_directory_is_refused_and_left_as_it_was(tmp_path):
    cfg = shrink(compose_config(["resume=true"]), tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"fingerprint": config_fingerprint(cfg), "epoch": 1}, run_dir / CKPT)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run_dir)
        t0 = time.monotonic()
        p = cli_in_process(["run", *tiny_overrides(tmp_path), "resume=true", f"hydra.run.dir={run_dir}"], tmp_path)
        print(f"refused in {time.monotonic() - t0:.1f} s")
        assert p.returncode == 2, p.stderr[-2000:]
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"fastdrop: error: run directory {run_dir.resolve()} is in use by "
                                                       f"process {holder.pid} on "), p.stderr
        assert snapshot(run_dir) == before
        assert not (tmp_path / "results").exists()
        with pytest.raises(RunDirBusy, match=f"process {holder.pid}"):  # the Python API alike
            Trainer(cfg, run_dir)
    finally:
        holder.kill()
        holder.wait()
    Trainer(shrink(compose_config(), tmp_path), run_dir)  # a killed holder leaves no stale lock
    assert (run_dir / LOCK).read_text().startswith(f"pid {os.getpid()} on ")


def _cli(tmp_path, helper, arg, *args):
    return [sys.executable, str(TESTS / helper), str(arg), "run", *tiny_overrides(tmp_path), "epochs=2", *args]


@pytest.mark.slow
def test_two_resumes_of_one_killed_run_started_together(tmp_path):
    killed, alone = tmp_path / "killed", tmp_path / "alone"
    p = subprocess.run(_cli(tmp_path, "kill_run.py", 1, f"hydra.run.dir={killed}"), cwd=tmp_path,
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == -9, p.stderr[-2000:]
    shutil.copytree(killed, alone)

    # both start at once; the winner pauses 4 s after each epoch, so the loser meets a held lock
    both = [subprocess.Popen(_cli(tmp_path, "pause_run.py", 4, "resume=true", f"hydra.run.dir={killed}"),
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
            for _ in range(2)]
    out = [(q, *q.communicate(timeout=300)) for q in both]
    codes = sorted(q.returncode for q, _, _ in out)
    assert codes == [0, 2], [(q.returncode, e[-1500:]) for q, _, e in out]
    _, _, err = next(o for o in out if o[0].returncode == 2)
    winner = next(o for o in out if o[0].returncode == 0)[0]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"is in use by process {winner.pid} on " in lines[0], err

    rows = [json.loads(f.read_text()) for f in (tmp_path / "results" / "runs").glob("*.json")]
    assert [(Path(r["run_dir"]).resolve(), r["status"]) for r in rows] == [(killed.resolve(), "completed")]

    # the copy resumed alone (its row has the same run id, so it replaces that one)
    p = subprocess.run(_cli(tmp_path, "pause_run.py", 0, "resume=true", f"hydra.run.dir={alone}"), cwd=tmp_path,
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert sorted(snapshot(killed)) == sorted(snapshot(alone))
    got, want = torch.load(killed / WEIGHTS, weights_only=True), torch.load(alone / WEIGHTS, weights_only=True)
    assert all(torch.equal(got[k], want[k]) for k in want)
