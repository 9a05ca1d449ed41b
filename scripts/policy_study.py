"""Policy study (issue 10): the paper's rule and our noise_level policy against sgd on configs the policy
was not designed on. Single runs per (config, seed): decisions and accuracy do not depend on timing, so
ΔFLOPs (training forward + backward work, fastdrop.bench.run_work) is the speed measure here; it is a
work prediction, not a benchmarked ΔT. Beside each noise_level run: an equal-time SGD run (sgd for the
epochs whose *work* matches the run's, LR milestones scaled alike) and its accuracy.

    python scripts/policy_study.py --out results/policy --data-root <dir holding cifar10-jpeg> [--seeds 1 2]

Rows go to <out>/runs (a run already there is reused, so a stopped study continues), the table to the top of
<out>/README.md (its hand-written `## ` sections below the table are kept) and to <out>/study.csv.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastdrop.bench.analysis import cuts, equal_time_epochs, run_work, scaled_milestones  # noqa: E402
from fastdrop.bench.suite import completed_row  # noqa: E402

MILESTONES = [7]
COMMON = ["model.width=0.25", "epochs=10", "batch_size=128", "optim.lr=0.05", f"optim.milestones={MILESTONES}",
          "strategy.warmup=2", "progress=false", "data.train_subset=5000", "data.test_subset=1000"]
CONFIGS = {
    "vgg11-mnist": ["model=vgg11", "data=mnist_mini"],
    "resnet18-mnist": ["model=resnet18", "data=mnist_mini"],
    "vgg11-cifar10jpeg": ["model=vgg11", "data=cifar10_jpeg", "data.augment=false"],
    "resnet18-cifar10jpeg": ["model=resnet18", "data=cifar10_jpeg", "data.augment=false"],
}
VARIANTS = {"sgd": ["strategy=sgd"], "paper": ["strategy=dropping"],
            "noise_level": ["strategy=dropping", "strategy.policy=noise_level"]}


class NotRun(Exception):
    pass


def run(out: Path, tag: str, overrides: list[str], table_only: bool = False) -> dict:
    done = completed_row(out, tag)
    if done is not None:
        return done
    if table_only:
        raise NotRun(tag)
    cmd = [sys.executable, "-m", "fastdrop", "run", *overrides, f"tag={tag}", f"results_dir={out}",
           f"hydra.run.dir={out / 'tmp' / tag}"]
    print("+", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return run(out, tag, [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/policy")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--table-only", action="store_true", help="run nothing; tabulate the (config, seed) pairs done")
    a = ap.parse_args()
    out = Path(a.out)
    lines, missing = [], []
    for seed in a.seeds:
        for name in a.configs:
            base = CONFIGS[name] + COMMON + [f"seed={seed}", f"data.root={a.data_root}"]
            try:
                lines += study_pair(out, name, seed, base, a.table_only)
            except NotRun:
                missing.append(f"{name} seed {seed}")
    df = pd.DataFrame(lines)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "study.csv", index=False)
    md = ["# Policy study: the paper's rule vs our noise_level policy (issue 10)", "",
          f"Command: `python scripts/policy_study.py --out {a.out} --data-root <data> --seeds "
          f"{' '.join(map(str, a.seeds))}`", "",
          f"Common settings: {' '.join(COMMON)}. ΔFLOPs is the training work (forward + backward MACs) saved "
          "against sgd, a prediction, not a timed ΔT. Equal-work SGD: sgd for the epochs whose work matches the "
          "noise_level run's (LR milestone scaled alike).", "", df.to_markdown(index=False), "",
          "Not run: " + (", ".join(missing) if missing else "none"), ""]
    readme = out / "README.md"
    old = readme.read_text() if readme.is_file() else ""
    notes = old[old.find("\n## "):] if "\n## " in old else ""  # hand-written sections below the table stay
    readme.write_text("\n".join(md) + notes)
    print("\n".join(md))
    return 0


def study_pair(out: Path, name: str, seed: int, base: list[str], table_only: bool) -> list[dict]:
    lines = []
    rows = {v: run(out, f"study-{name}-s{seed}-{v}", base + ov, table_only) for v, ov in VARIANTS.items()}
    sgd = rows["sgd"]
    w_sgd = run_work(sgd)
    e = equal_time_epochs(run_work(rows["noise_level"]), w_sgd, sgd["epochs"])
    ms = scaled_milestones(MILESTONES, e, sgd["epochs"])
    # When the run saved less than an epoch of work, equal-work sgd *is* the sgd run: do not train it twice.
    eq = sgd if e == sgd["epochs"] else run(
        out, f"study-{name}-s{seed}-equal-work-sgd-e{e}",
        base + VARIANTS["sgd"] + [f"epochs={e}", f"optim.milestones=[{','.join(map(str, ms))}]"], table_only)
    for v in ("paper", "noise_level"):
        r = rows[v]
        lines.append({"config": name, "seed": seed, "policy": v, "cuts (epoch:units)": cuts(r),
                      "units": len(r["unit_names"]) - 1,
                      "dFLOPs_pct (work-predicted)": round(100 * (1 - run_work(r) / w_sgd), 1),
                      "A": round(r["A"], 2), "A_sgd": round(sgd["A"], 2), "dA": round(r["A"] - sgd["A"], 2),
                      "equal_work_sgd_epochs": e if v == "noise_level" else None,
                      "equal_work_sgd_A": round(eq["A"], 2) if v == "noise_level" else None,
                      "warnings": len(r.get("warnings") or [])})
    return lines


if __name__ == "__main__":
    sys.exit(main())
