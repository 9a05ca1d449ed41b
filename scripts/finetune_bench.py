"""Fine-tuning benchmark on real data: when does Learn&Drop pay when the network starts pretrained?

(1) Train a source model with fastdrop (VGG-11 at width 0.25, from scratch, plain SGD) on a CIFAR-10
JPEG subset at 32 px; its run directory (checkpoint.pt) is the "yesterday's model". (2) Fine-tune it
on the Imagenette subset (data=folder, 64 px, 10 classes, a fresh classifier) with: full fine-tuning
(sgd), a linear probe (dropping with every conv unit cut and cached before epoch 1, so only the
classifier trains), freezing and dropping with the paper's rule (learn_and_drop), and dropping with the
noise_level policy. The fine-tuning runs are repeated, interleaved (sgd, probe, freezing, dropping, ...
then again), and the table gives per strategy the median T, A, ΔT vs full fine-tuning and the cut.
Outputs: <out>/finetune.{md,json} and the rows in <out>/runs/. The data come from ../shared/data
(extracted to a temporary folder) unless --data names a folder that holds cifar10-jpeg/ and
imagenette-mini/.

    python scripts/finetune_bench.py [--repeats 3] [--epochs 10] [--out results/finetune]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fastdrop.config import CONF_DIR  # noqa: E402
from fastdrop.config import register_configs  # noqa: E402
from fastdrop.files import atomic_write_text  # noqa: E402
from fastdrop.run.trainer import Trainer  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
MODEL = ["model=vgg11", "model.width=0.25"]
SOURCE = ["data=cifar10_jpeg", "data.train_subset=10000", "data.test_subset=2000", "data.augment=true",
          "strategy=sgd", "batch_size=128", "optim.lr=0.05"]
FINETUNE = ["data=folder", "data.image_size=64", "data.augment=false", "model.new_classifier=true",
            "batch_size=64", "optim.lr=0.01", "strategy.warmup=2"]
STRATEGIES = {
    "sgd (full fine-tuning)": ["strategy=sgd"],
    "linear probe": ["strategy=dropping", "strategy.policy=schedule", "strategy.schedule={0:99}"],
    "freezing (paper's rule)": ["strategy=freezing"],
    "dropping (paper's rule)": ["strategy=dropping"],
    "dropping (noise_level)": ["strategy=dropping", "strategy.policy=noise_level"],
}


def run(overrides: list[str], run_dir: Path) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("config", overrides=overrides)
    t0 = time.perf_counter()
    row = Trainer(cfg, run_dir, experiment="finetune_bench").fit()
    print(f"  {run_dir.name}: T {row['train_time_s']:.1f} s  A {row['A']:.1f} %  cut {len(row['history'][-1]['dropped_units'])}"
          f"  ({time.perf_counter() - t0:.0f} s wall)", flush=True)
    return row


def data_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    root = Path(tempfile.mkdtemp(prefix="fastdrop-finetune-"))
    for tar in ("cifar10-jpeg-q75.tar.gz", "imagenette2-224-mini.tar.gz"):
        with tarfile.open(SHARED / tar) as t:
            t.extractall(root, filter="data")
    return root


def summarise(rows: dict[str, list[dict]]) -> list[dict]:
    t_sgd = statistics.median(r["train_time_s"] for r in rows["sgd (full fine-tuning)"])
    out = []
    for name, rs in rows.items():
        t = statistics.median(r["train_time_s"] for r in rs)
        last = rs[0]["history"][-1]
        first_cut = next((h["epoch"] for h in rs[0]["history"] if h["dropped_units"]), None)
        out.append({"strategy": name, "T_s": round(t, 1), "A": round(statistics.median(r["A"] for r in rs), 1),
                    "dT_pct": round(100 * (t_sgd - t) / t_sgd, 1),
                    "T_s_runs": [round(r["train_time_s"], 1) for r in rs], "A_runs": [r["A"] for r in rs],
                    "units_cut": f"{len(last['dropped_units'])}/{len(rs[0]['unit_names']) - 1}",
                    "first_cut_epoch": 0 if first_cut == 1 and "probe" in name else first_cut,
                    "trained_params_end": last["trained_params"],
                    "cache_time_s": round(statistics.median(r["cache_time_s"] for r in rs), 2)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="folder holding cifar10-jpeg/ and imagenette-mini/ (default: extract ../shared/data)")
    ap.add_argument("--out", default=str(REPO / "results" / "finetune"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--source-epochs", type=int, default=6)
    args = ap.parse_args(argv)
    register_configs()
    root, out = data_root(args.data), Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="fastdrop-finetune-runs-"))
    common = ["progress=false", "device=cpu", f"results_dir={out}", "seed=0"]
    print(f"source: {' '.join(MODEL + SOURCE)} epochs={args.source_epochs}", flush=True)
    src = run(common + MODEL + SOURCE + [f"data.root={root}", f"epochs={args.source_epochs}",
                                         f"optim.milestones=[{max(1, args.source_epochs - 2)}]"],
              work / "source")  # fine-tuned from the weights.pt the completed run leaves
    ft = common + MODEL + FINETUNE + [f"data.root={root / 'imagenette-mini'}", f"model.weights={work / 'source'}",
                                      f"epochs={args.epochs}", f"optim.milestones=[{max(1, args.epochs - 3)}]"]
    rows: dict[str, list[dict]] = {k: [] for k in STRATEGIES}
    for rep in range(args.repeats):  # interleaved: drift on a shared machine hits every strategy alike
        print(f"repeat {rep + 1}/{args.repeats}", flush=True)
        for name, ov in STRATEGIES.items():
            rows[name].append(run(ft + ov, work / f"{rep}-{ov[-1].split('=')[-1]}-{len(rows[name])}"))
    table = summarise(rows)
    cols = ["strategy", "T_s", "dT_pct", "A", "units_cut", "first_cut_epoch", "trained_params_end", "cache_time_s"]
    md = tabulate([[r[c] for c in cols] for r in table],
                  headers=["strategy", "T (s)", "ΔT vs sgd (%)", "A (%)", "units cut", "first cut (epoch)",
                           "trained params (end)", "cache (s)"], tablefmt="github")
    cmd = "python scripts/finetune_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"Fine-tuning {' '.join(MODEL)} from a CIFAR-10 JPEG source ({args.source_epochs} epochs, "
              f"A {src['A']:.1f} %, T {src['train_time_s']:.0f} s) on the Imagenette subset (1000 train / 500 val, "
              f"64 px), {args.epochs} epochs, median of {args.repeats} interleaved repeats; device "
              f"{src['device_name']}.\nCommand: `{cmd.strip()}`\nFine-tuning overrides: `{' '.join(FINETUNE)}`\n")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "finetune.md", header + "\n" + md + "\n")
    atomic_write_text(out / "finetune.json", json.dumps({"command": cmd.strip(), "source": {
        k: src[k] for k in ("run_id", "A", "train_time_s", "epochs")}, "finetune_overrides": FINETUNE,
        "epochs": args.epochs, "repeats": args.repeats, "table": table}, indent=1))
    print(header + "\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
