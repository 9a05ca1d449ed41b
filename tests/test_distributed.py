"""Data-parallel runs (fastdrop.run.distributed) on CPU: gloo, 2 processes spawned by the test itself with
the environment torchrun would give them; one run of the real `torchrun ... -m fastdrop run` CLI is
killed after an epoch and resumed."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import REPO, cli_in_process, compose_config
from torch import nn

from fastdrop.run import distributed
from fastdrop.data import ImageData, Split
from fastdrop.run.distributed import World
from fastdrop.models import as_chain
from fastdrop.strategies import Strategy
from fastdrop.files import CKPT
from fastdrop.run.trainer import Trainer

N = 2
# BN-free network and random data for the exact single-process equivalence (see fastdrop.run.distributed)
SGD_OV = ["progress=false", "strategy=sgd", "precision=64-true", "epochs=2", "batch_size=32", "device=cpu"]
N_TRAIN, N_TEST = 192, 64
# The Learn&Drop runs: the real VGG-11 (train-mode BN, per rank) on the bundled MNIST subset
LD_OV = ["progress=false", "model.width=0.125", "data.train_subset=512", "data.test_subset=64", "batch_size=64",
         "epochs=4", "strategy.warmup=1", "optim.lr=0.02", "precision=64-true", "device=cpu"]
STRATS = {"freezing": ["strategy=freezing"], "dropping": ["strategy=dropping", "strategy.cache.backend=disk"]}


def bn_free_chain():
    torch.manual_seed(0)
    return as_chain(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)))


def random_data():
    g = torch.Generator().manual_seed(1)
    split = lambda n: Split(torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8),  # noqa: E731
                            torch.randint(0, 10, (n,), generator=g))
    return ImageData("random", split(N_TRAIN), split(N_TEST), mean=(0.5,) * 3, std=(0.25,) * 3)


def _worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(N))
    torch.set_num_threads(1)
    out = Path(out)
    t = Trainer(compose_config([*SGD_OV, f"results_dir={out}/results"]), out / "sgd", chain=bn_free_chain(),
                data=random_data())
    row = t.fit()
    torch.save({"row": row, "model": t.chain.state_dict()}, out / f"sgd.{rank}.pt")
    for name, ov in STRATS.items():
        t = Trainer(compose_config([*LD_OV, *ov, f"results_dir={out}/results"]), out / name)
        row = t.fit()
        torch.save({"row": row, "model": t.chain.state_dict(), "cache_dir": str(t.ctx.cache_dir),
                    "train_y": t.data.train.y.clone()}, out / f"{name}.{rank}.pt")
    try:
        distributed.agree(t.world, rank, "a value that differs on purpose")
        msg = None
    except distributed.RanksDisagree as e:
        msg = str(e)
    torch.save(msg, out / f"agree.{rank}.pt")
    distributed.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """Every 2-rank run the tests below check, spawned once: {(job, rank): saved}."""
    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(free_port(), str(out)), nprocs=N, join=True, start_method="spawn")
    return {(p.name.split(".")[0], int(p.name.split(".")[1])): torch.load(p, weights_only=False)
            for p in out.glob("*.pt")}


def test_pure_sharding_is_a_fixed_partition():
    shards = [distributed.shard(11, World(r, 3), seed=5) for r in range(3)]
    assert all(len(s) == 3 for s in shards)  # 11 // 3, two rows left out
    assert len(torch.cat(shards).unique()) == 9
    assert torch.equal(shards[1], distributed.shard(11, World(1, 3), seed=5))  # the same every epoch / resume
    order = distributed.equivalent_order([torch.tensor([10, 11, 12]), torch.tensor([20, 21, 22])],
                                         torch.tensor([2, 0, 1]), per_rank_batch=2)
    assert order.tolist() == [12, 10, 22, 20, 11, 21]  # global batch = rank 0's batch, then rank 1's


def test_sgd_ddp_matches_one_process_with_the_global_batch(ddp, tmp_path, monkeypatch):
    # One process, batch 32, over the shard-wise order the two ranks (batch 16 each) followed.
    shards = [distributed.shard(N_TRAIN, World(r, N), seed=0) for r in range(N)]
    m = N_TRAIN // N

    def order(self, epoch):
        return distributed.equivalent_order(shards, torch.randperm(m, generator=self.ctx.generator(epoch, 0)), 16)

    monkeypatch.setattr(Strategy, "_permutation", order)
    t = Trainer(compose_config([*SGD_OV, f"results_dir={tmp_path}/results"]), tmp_path / "one",
                chain=bn_free_chain(), data=random_data())
    one = t.fit()
    for rank in range(N):
        got = ddp[("sgd", rank)]
        for k, v in t.chain.state_dict().items():
            torch.testing.assert_close(got["model"][k], v, rtol=0, atol=1e-12)
        for a, b in zip(got["row"]["history"], one["history"]):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-12)
            assert a["test_acc"] == b["test_acc"]  # sharded evaluation, counts all-reduced
            # scores come from DDP's all-reduced gradients: those of the global batch, on every rank
            assert a["scores"] == pytest.approx(b["scores"], rel=1e-9)
    row = ddp[("sgd", 0)]["row"]
    assert (row["world_size"], row["per_rank_batch_size"], row["batch_size"], row["dist_backend"]) == (2, 16, 32, "gloo")
    assert (row["train_images"], row["test_images"]) == (N_TRAIN, N_TEST)


@pytest.mark.parametrize("name", list(STRATS))
def test_learn_and_drop_ranks_agree_and_hold_one_model(ddp, name):
    r0, r1 = ddp[(name, 0)], ddp[(name, 1)]
    h0, h1 = r0["row"]["history"], r1["row"]["history"]
    assert h0[-1]["dropped_units"], "no cut was made: the test proves nothing"
    assert [h["dropped_units"] for h in h0] == [h["dropped_units"] for h in h1]
    assert [h["scores"] for h in h0] == [h["scores"] for h in h1]  # bit for bit
    for k, v in r0["model"].items():
        assert torch.equal(v, r1["model"][k]), k  # weights and BN statistics identical on both ranks


def test_each_rank_caches_only_its_share_and_dropping_equals_freezing(ddp):
    for rank in range(N):
        h = ddp[("dropping", rank)]["row"]["history"]
        cached = [e for e in h if "cache_rows" in e]
        assert cached, [e["dropped_units"] for e in h]  # some epoch trained the head from the cache
        assert all(e["cache_rows"] == 512 // N and e["cache_backend"] == "disk" for e in cached)
        assert ddp[("dropping", rank)]["cache_dir"].endswith(f"rank{rank}")
    # the two shards are disjoint halves of the split (the labels a rank trained on are its shard's)
    shards = [distributed.shard(512, World(r, N), seed=0) for r in range(N)]
    assert len(torch.cat(shards).unique()) == 512
    assert not torch.equal(ddp[("dropping", 0)]["train_y"], ddp[("dropping", 1)]["train_y"])
    # Freezing == Dropping under DDP too (float64: same decisions, weights to rounding)
    f, d = ddp[("freezing", 0)], ddp[("dropping", 0)]
    assert [h["dropped_units"] for h in f["row"]["history"]] == [h["dropped_units"] for h in d["row"]["history"]]
    for k, v in f["model"].items():
        torch.testing.assert_close(d["model"][k], v, rtol=0, atol=1e-9)


def test_disagreeing_ranks_stop_with_a_clear_error(ddp):
    for rank in range(N):
        msg = ddp[("agree", rank)]
        assert msg and "ranks disagree on a value that differs on purpose" in msg and "rank 1: 1" in msg


def torchrun(tmp_path, *args, env=None, kill_after=None):
    # kill_after: every rank runs tests/kill_run.py, which SIGKILLs it after that epoch's checkpoint.
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    entry = ["-m", "fastdrop"] if kill_after is None else [str(REPO / "tests" / "kill_run.py"), str(kill_after)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={N}", *entry,
           "run", *LD_OV, *STRATS["dropping"], f"results_dir={tmp_path}/results", *args]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_torchrun_run_killed_after_an_epoch_resumes_to_the_same_weights(ddp, tmp_path):
    run_dir = tmp_path / "run"
    p = torchrun(tmp_path, f"hydra.run.dir={run_dir}", kill_after=1)
    assert p.returncode != 0
    assert torch.load(run_dir / CKPT, weights_only=False)["epoch"] == 1
    assert not list((tmp_path / "results" / "runs").glob("*.json"))
    p = torchrun(tmp_path, f"hydra.run.dir={run_dir}", "resume=true", "checkpoint=keep")  # kept to compare
    assert p.returncode == 0, p.stderr[-3000:]
    got = torch.load(run_dir / CKPT, weights_only=False)
    for k, v in ddp[("dropping", 0)]["model"].items():  # the uninterrupted 2-rank run
        assert torch.equal(got["model"][k], v), k
    rows = [json.loads(f.read_text()) for f in (tmp_path / "results" / "runs").glob("*.json")]
    assert len(rows) == 1 and rows[0]["status"] == "completed" and rows[0]["world_size"] == N
    assert (run_dir / ".hydra").is_dir() and (run_dir / "cli.rank1.log").exists()
    # one process cannot resume a 2-process run
    p = cli_in_process(["run", *LD_OV, *STRATS["dropping"], f"results_dir={tmp_path}/results",
                        f"hydra.run.dir={run_dir}", "resume=true"], tmp_path)
    assert p.returncode == 2 and "fastdrop: error:" in p.stderr and "written by 2 process" in p.stderr, p.stderr
