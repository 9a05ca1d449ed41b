"""In-memory vs streaming input path on the CIFAR-10 JPEG copy: images/s, and whether Dropping decides the same.

    python scripts/stream_bench.py DATA_ROOT [hydra overrides]

DATA_ROOT holds cifar10-jpeg/ (tar -xzf ../shared/data/cifar10-jpeg-q75.tar.gz -C DATA_ROOT). Prints, per
path: reading the training split alone (no model), an sgd run and a dropping run (cache.backend=auto:
device/host memory in memory, disk when streaming) with T, training images/s and the cut decisions, then
the largest weight difference between the two dropping runs (0 when the paths compute the same).
"""
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from tabulate import tabulate

from fastdrop.config import CONF_DIR
from fastdrop.config import register_configs
from fastdrop.data import StreamPolicy, load_data
from fastdrop.run.trainer import Trainer

DEFAULTS = ["progress=false", "model.width=0.25", "data.train_subset=10000", "data.test_subset=2000",
            "batch_size=128", "strategy.warmup=1", "optim.lr=0.02"]


def read_rate(root: str, policy: StreamPolicy, n: int, batch: int = 256) -> float:
    split = load_data("cifar10_jpeg", root, train_subset=n, stream=policy).train
    perm = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    seen = sum(len(xb) for xb in split.batches([perm[i: i + batch] for i in range(0, len(perm), batch)]))
    return seen / (time.perf_counter() - t0)


def main(root: str, overrides: list[str]) -> None:
    register_configs()
    tmp = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    rows, models = [], {}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        for path, stream in (("memory", "false"), ("stream", "true")):
            for strategy, epochs in (("sgd", 2), ("dropping", 4)):
                cfg = compose("config", overrides=[*DEFAULTS, "data=cifar10_jpeg", f"data.root={root}",
                                                   f"data.stream={stream}", f"strategy={strategy}", f"epochs={epochs}",
                                                   f"results_dir={tmp}/results", *overrides])
                t = Trainer(cfg, tmp / f"{path}-{strategy}")
                r = t.fit()
                models[(path, strategy)] = t.chain.state_dict()
                backends = sorted({h.get("cache_backend", "-") for h in r["history"]})
                rows.append([path, strategy, f"{r['T_min'] * 60:.1f}", f"{r['train_images'] * epochs / (r['T_min'] * 60):.0f}",
                             f"{r['A']:.2f}", ",".join(backends), [len(h["dropped_units"]) for h in r["history"]]])
    n = compose_n(overrides)
    reads = [[f"read only ({name})", f"{read_rate(root, p, n):.0f}"] for name, p in
             (("memory", StreamPolicy(stream=False)), ("stream, 0 workers", StreamPolicy(stream=True, workers=0)),
              ("stream, 2 workers", StreamPolicy(stream=True, workers=2)))]
    print(tabulate(reads, headers=["input path", "images/s"]))
    print(tabulate(rows, headers=["path", "strategy", "T (s)", "train images/s", "A (%)", "cache", "units cut per epoch"]))
    a, b = models[("memory", "dropping")], models[("stream", "dropping")]
    print("dropping, memory vs stream: max |weight difference| =",
          max((a[k].double() - b[k].double()).abs().max().item() for k in a))


def compose_n(overrides: list[str]) -> int:
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("data.train_subset=")]
    return int(given[-1] if given else DEFAULTS[2].split("=")[1])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
