"""Speed you can trust: sgd, freezing and dropping on one config and seed, back to back, in one table.

Besides T and accuracy it reports what the FLOPs allow. The work of one training step is taken as the
forward MACs of the units that run, plus the backward MACs of the units that train: a weight gradient
(= the unit's forward MACs) for every trained unit and an input gradient (again its forward MACs) for
every trained unit except the first, whose input needs none. The FLOP-predicted ΔT is 1 - work/work_sgd
over the whole run, and efficiency = measured time saved / predicted time saved (1.0: the saving is
all that the removed work allows). A fourth run, sgd without score accumulation, prices the scoring.
Rows go to <results_dir>/bench/runs, the table to <results_dir>/bench/<name>.{json,md}.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from tabulate import tabulate

from .results import atomic_write_text

RUNS = [("sgd", []), ("freezing", []), ("dropping", []), ("sgd-noscore", ["strategy.scores=false"])]


def run_work(row: dict) -> float:
    """Forward + backward MACs per sample summed over the epochs, as executed."""
    macs = row["unit_macs_per_sample"]
    total, cut_before = 0.0, 0
    for h in row["history"]:
        trained = macs[cut_before:]
        total += h["fwd_macs_per_sample"] + 2 * sum(trained) - trained[0]
        cut_before = len(h["dropped_units"])
    return total


def summarise(rows: dict[str, dict]) -> list[dict]:
    sgd = rows["sgd"]
    t_sgd, w_sgd = sgd["train_time_s"], run_work(sgd)
    out = []
    for name, r in rows.items():
        h = r["history"]
        first = next((i for i, e in enumerate(h) if e["dropped_units"]), None)
        before = [e["train_time_s"] for e in h[: (first + 1 if first is not None else len(h))]]
        after = [e["train_time_s"] for e in h[first + 2:]] if first is not None else []
        pred = 1 - run_work(r) / w_sgd
        meas = (t_sgd - r["train_time_s"]) / t_sgd
        out.append({
            "run": name, "T_s": round(r["train_time_s"], 2), "dT_pct": round(100 * meas, 1),
            "A": r["A"], "epoch_s_before_drop": round(statistics.median(before), 3) if before else None,
            "epoch_s_after_drop": round(statistics.median(after), 3) if after else None,
            "images_per_s": round(r["train_images"] * len(h) / r["train_time_s"], 1),
            "cache_time_s": round(r["cache_time_s"], 3),
            "cache_pct_of_T": round(100 * r["cache_time_s"] / r["train_time_s"], 2),
            "first_drop_epoch": h[first]["epoch"] if first is not None else None,
            "units_cut": len(h[-1]["dropped_units"]),
            "pred_dT_pct": round(100 * pred, 1),
            "efficiency": round(meas / pred, 3) if pred > 0.005 else None,
            "run_id": r["run_id"],
        })
    if "sgd-noscore" in rows:
        med = lambda r: statistics.median(e["train_time_s"] for e in r["history"])  # noqa: E731
        cost = (med(rows["sgd"]) - med(rows["sgd-noscore"])) / med(rows["sgd-noscore"])
        for o in out:
            o["scoring_cost_pct_of_sgd_epoch"] = round(100 * cost, 2) if o["run"] == "sgd" else None
    return out


def bench_task(cfg, run_dir, experiment, multirun):
    from .trainer import USER_ERRORS, Trainer

    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("strategy=")]
    out_dir = Path(cfg.results_dir) / "bench"
    rows = {}
    for name, extra in RUNS:
        strategy = name.split("-")[0]
        c = compose("config", overrides=overrides + [f"strategy={strategy}", f"results_dir={out_dir}", *extra])
        print(f"fastdrop bench: {name} ...", file=sys.stderr, flush=True)
        try:
            t = Trainer(c, Path(run_dir) / name, experiment=experiment)
            rows[name] = t.fit()
        except USER_ERRORS as e:
            print(f"fastdrop: error: {e}", file=sys.stderr)
            sys.exit(2)
    table = summarise(rows)
    ident = f"{cfg.model.name}-w{cfg.model.width}-{rows['sgd']['data']}-e{cfg.epochs}-s{cfg.seed}-{rows['sgd']['device']}"
    md = (f"# fastdrop bench: {ident}\n\n"
          f"- command: `fastdrop bench {' '.join(HydraConfig.get().overrides.task)}`\n"
          f"- device: {rows['sgd']['device_name']}, torch {rows['sgd']['torch_version']}, "
          f"commit {rows['sgd']['git_commit']}\n\n"
          + tabulate(table, headers="keys", tablefmt="github") + "\n")
    atomic_write_text(out_dir / f"{ident}.md", md)
    atomic_write_text(out_dir / f"{ident}.json", json.dumps({"config": ident, "rows": table}, indent=1) + "\n")
    print(md)
    return table
