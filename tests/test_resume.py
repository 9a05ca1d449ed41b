"""A run killed with SIGKILL and resumed ends exactly where the uninterrupted run ends (issue: runs that
survive). The kill is real: the child process SIGKILLs itself right after writing its checkpoint."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cli_in_process, compose_config

from fastdrop.files import CKPT
from fastdrop.run.trainer import Trainer

KILL_RUN = Path(__file__).with_name("kill_run.py")  # the CLI, SIGKILLed after a chosen epoch

BASE = ["progress=false", "model.width=0.125", "data.train_subset=384", "data.test_subset=64", "batch_size=64",
        "epochs=4", "strategy.policy=schedule", "strategy.schedule={2:2}"]


def cfg_for(tmp_path, *extra):
    return compose_config([*BASE, f"results_dir={tmp_path}/results", "checkpoint=keep", *extra])


def cli(tmp_path, *args, kill_after=None):
    """The CLI in a child that SIGKILLs itself after epoch `kill_after`; without it, in this process
    (conftest.cli_in_process: the resume needs no process of its own, and skips 3-5 s of imports)."""
    args = ["run", *BASE, f"results_dir={tmp_path}/results", *args]
    if kill_after is None:
        return cli_in_process(args, tmp_path)
    # The child uses as many threads as this process, so both compute bit-identical results.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.run([sys.executable, str(KILL_RUN), str(kill_after), *args], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """uninterrupted(strategy) -> (Trainer, row) of the run a killed one must end like; trained once per
    strategy for all the kill points below."""
    runs = {}

    def get(strategy):
        if strategy not in runs:
            tmp = tmp_path_factory.mktemp(f"ref-{strategy}")
            ref = Trainer(cfg_for(tmp, f"strategy={strategy}"), tmp / "ref")
            runs[strategy] = ref, ref.fit()
        return runs[strategy]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("strategy, kill_after", [("sgd", 2), ("freezing", 1), ("freezing", 3), ("dropping", 1),
                                                  ("dropping", 3)])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, strategy, kill_after, uninterrupted):
    ref, ref_row = uninterrupted(strategy)

    run_dir = tmp_path / "killed"
    p = cli(tmp_path, f"strategy={strategy}", f"hydra.run.dir={run_dir}", kill_after=kill_after)
    assert p.returncode == -9, p.stderr[-2000:]
    assert torch.load(run_dir / CKPT, weights_only=False)["epoch"] == kill_after
    assert not list((tmp_path / "results" / "runs").glob("*.json"))  # a kill writes no row

    # killed under the default policy (checkpoint=last); kept at the end here only to compare the weights
    p = cli(tmp_path, f"strategy={strategy}", f"hydra.run.dir={run_dir}", "resume=true", "checkpoint=keep")
    assert p.returncode == 0, p.stderr[-2000:]
    got = torch.load(run_dir / CKPT, weights_only=False)
    want = torch.load(ref.run_dir / CKPT, weights_only=False)
    for k in want["model"]:
        assert torch.equal(got["model"][k], want["model"][k]), k
    keys = ("epoch", "train_loss", "test_acc", "dropped_units", "trained_params", "fwd_macs_per_sample")
    assert [{k: h[k] for k in keys} for h in got["history"]] == [{k: h[k] for k in keys} for h in ref_row["history"]]
    rows = [json.loads(f.read_text()) for f in (tmp_path / "results" / "runs").glob("*.json")]
    resumed = [r for r in rows if r["run_dir"] == str(run_dir)]
    assert len(resumed) == 1 and resumed[0]["status"] == "completed"
    # T of a resumed run counts the training time of both parts
    assert resumed[0]["train_time_s"] == pytest.approx(sum(h["train_time_s"] for h in resumed[0]["history"]))
    assert resumed[0]["A"] == ref_row["A"]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    p = cli(tmp_path, f"hydra.run.dir={tmp_path / 'nothing'}", "resume=true")
    assert p.returncode != 0
    assert "fastdrop: error:" in p.stderr and "Traceback" not in p.stderr and "checkpoint" in p.stderr


def test_resume_with_other_overrides_is_refused(tmp_path):
    t = Trainer(cfg_for(tmp_path, "epochs=2"), tmp_path / "run")
    t.fit()
    with pytest.raises(Exception, match="different overrides"):
        Trainer(cfg_for(tmp_path, "epochs=2", "seed=7", "resume=true"), tmp_path / "run").fit()
