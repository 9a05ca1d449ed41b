"""The package installs like any other: a wheel built offline from the checkout carries conf/, and the
installed (non-editable) `fastdrop` runs from an empty directory with no source tree in sight."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["fastdrop", "conf", "pyproject.toml", "setup.py", "README.md"]


def _run(cmd, cwd, env, timeout=180):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p.stdout


@pytest.mark.slow
def test_wheel_ships_conf_and_runs_from_an_empty_directory(tmp_path):
    # Build from a copy, so the checkout gets no build/ or egg-info from the test.
    src = tmp_path / "src"
    for name in SOURCES:
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(
            REPO / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                         if (REPO / name).is_dir() else {}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
          src], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("fastdrop-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    conf = {p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml")}
    assert conf and {f"fastdrop/conf/{c}" for c in conf} <= set(names)

    # A fresh environment that reuses the installed dependencies (torch, hydra, ...), not the checkout.
    venv.create(tmp_path / "venv", system_site_packages=True, with_pip=False)
    py = tmp_path / "venv" / "bin" / "python"
    if sys.prefix != sys.base_prefix:
        # Run from a virtualenv (as users install): system_site_packages sees the base interpreter's
        # packages, not this environment's, so point the new one at this environment's site-packages too.
        site_dir = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                             env).strip())
        here = sysconfig.get_paths()["purelib"]
        (site_dir / "_fastdrop_test_parent_env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    _run([py, "-m", "pip", "install", "--no-deps", "-q", wheel], tmp_path, env)
    work = tmp_path / "empty"
    work.mkdir()
    where = _run([py, "-c", "import fastdrop, fastdrop.config as c; print(fastdrop.__file__); print(c.CONF_DIR)"],
                 work, env).split()
    assert all(str(tmp_path / "venv") in w for w in where), where  # the wheel's copy, its own conf

    fastdrop = tmp_path / "venv" / "bin" / "fastdrop"
    job = _run([fastdrop, "run", "--cfg", "job"], work, env)
    assert "name: vgg11" in job and "name: mnist_mini" in job
    out = _run([fastdrop, "run", "experiment=smoke", "epochs=1", "data.train_subset=256", "data.test_subset=64",
                "progress=false", "device=cpu", f"hydra.run.dir={work / 'run'}"], work, env, timeout=300)
    (row_file,) = (work / "results" / "runs").glob("*.json")
    row = json.loads(row_file.read_text())
    assert row["status"] == "completed" and row["epochs_done"] == 1 and str(row_file.name) in out
