"""The Slurm launchers (conf/hydra/launcher): the paper-grid sweep and a multi-GPU single run compose with
the submitit plugin, and a task of a multi-task submitit job turns Slurm's variables into a DDP rank.
Nothing is submitted: there is no Slurm here."""
import os
import subprocess

import pytest
from conftest import REPO, compose_config

from fastdrop.run import distributed

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")

SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
# The README's Tables 1-2 sweeps (63 runs)
GRID = [["experiment=paper_mnist,paper_cifar10,paper_imagenette", "model=vgg11,vgg16,vgg19",
         "strategy=sgd,freezing,dropping"],
        ["experiment=paper_mnist,paper_cifar10,paper_imagenette", "model=resnet18,resnet50,resnet101,resnet152",
         "strategy=sgd,freezing,dropping"]]


def _jobs(sweep: list[str]) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(sweep)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def test_paper_grid_sweep_composes_under_the_slurm_launcher():
    jobs = [job for sweep in GRID for job in _jobs(sweep)]
    assert len(jobs) == 63
    seen = set()
    for job in jobs:
        cfg = compose_config(["hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu", "precision=bf16-mixed",
                              *job], return_hydra=True)
        launcher = cfg.hydra.launcher
        assert launcher._target_ == SLURM and launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1
        seen.add((cfg.data.name, cfg.model.name, cfg.strategy.name))
    assert len(seen) == 63  # every job a different run (its own row file)


def test_multi_gpu_run_composes_one_task_per_gpu():
    cfg = compose_config(["hydra/launcher=slurm_ddp", "hydra.launcher.gpus_per_node=8",
                          "hydra.launcher.tasks_per_node=8", "experiment=paper_imagenette"], return_hydra=True)
    assert cfg.hydra.launcher._target_ == SLURM and cfg.hydra.launcher.tasks_per_node == 8
    default = compose_config(["hydra/launcher=slurm_ddp"], return_hydra=True).hydra.launcher
    assert default.tasks_per_node == default.gpus_per_node > 1


def test_a_task_of_a_multi_task_submitit_job_is_a_ddp_rank(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(k, "")  # recorded, so the export below is undone after the test (a plain
        monkeypatch.delenv(k)      # delenv of an absent key is not, and WORLD_SIZE=8 would hang later tests)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    for k, v in {"SLURM_JOB_ID": "77", "SLURM_NTASKS": "8", "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1",
                 "SLURM_JOB_NODELIST": "gpu[03-04]", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}.items():
        monkeypatch.setenv(k, v)
    assert distributed.env_world_size() == 8
    assert (os.environ["RANK"], os.environ["LOCAL_RANK"], os.environ["MASTER_ADDR"]) == ("5", "1", "gpu03")
    monkeypatch.setenv("SLURM_NTASKS", "1")  # a sweep job (one task): a single process
    monkeypatch.delenv("WORLD_SIZE")
    assert distributed.env_world_size() == 1


def test_sbatch_torchrun_script_is_valid_bash():
    # (its `torchrun -m fastdrop run` is the entry point test_distributed runs; srun itself is not run here)
    p = subprocess.run(["bash", "-n", str(REPO / "scripts" / "slurm_torchrun.sbatch")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
