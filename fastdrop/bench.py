"""Speed you can trust: sgd, freezing and dropping on one config and seed, back to back, in one table.

Besides T and accuracy it reports what the FLOPs allow. The work of one training step is taken as the
forward MACs of the units that run, plus the backward MACs of the units that train: a weight gradient
(= the unit's forward MACs) for every trained unit and an input gradient (again its forward MACs) for
every trained unit except the first, whose input needs none. The FLOP-predicted ΔT is 1 - work/work_sgd
over the whole run, and efficiency = measured time saved / predicted time saved (1.0: the saving is
all that the removed work allows). The price of scoring is measured apart, in one process: blocks of
sgd steps on the same config with and without the score accumulation, alternated, medians compared
(whole-run comparisons on a shared machine drift by more than the few per cent being measured).
Rows go to <results_dir>/bench/runs, the table to <results_dir>/bench/<name>.{json,md}.
"""
from __future__ import annotations

import itertools
import json
import statistics
import sys
import time
from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from tabulate import tabulate

from .results import atomic_write_text
from .strategies import STRATEGIES
from .strategies.base import synchronize
from .strategies.policy import backward_work
from .trainer import USER_ERRORS, Trainer

RUNS = STRATEGIES.names()  # every registered strategy, the baseline first


def run_work(row: dict) -> float:
    """Forward + backward MACs per sample summed over the epochs, as executed."""
    macs = row["unit_macs_per_sample"]
    total, cut_before = 0.0, 0
    for h in row["history"]:
        total += h["fwd_macs_per_sample"] + backward_work(macs, cut_before)
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
    return out


def scoring_cost(trainer, steps: int = 10, repeats: int = 5) -> dict:
    """Median time of a block of sgd steps with and without score accumulation, in one process."""
    strat, opt, dev = trainer.strategy, trainer.optimizer, trainer.device
    batches = list(itertools.islice(strat.batches(1), steps))
    strat.begin_epoch(1)

    def block(score: bool) -> float:
        synchronize(dev)
        t0 = time.perf_counter()
        for state, y in batches:
            with trainer.ctx.autocast_ctx():
                loss = trainer.loss_fn(strat.forward(state), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if score:
                strat.after_backward()
            opt.step()
        synchronize(dev)
        return time.perf_counter() - t0

    block(True)  # warm-up
    with_s, without = [], []
    for _ in range(repeats):
        with_s.append(block(True))
        without.append(block(False))
    a, b = statistics.median(with_s), statistics.median(without)
    return {"step_s_with_scores": a / steps, "step_s_without_scores": b / steps,
            "scoring_cost_pct": 100 * (a - b) / b}


def bench_task(cfg, run_dir, experiment, multirun):

    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("strategy=")]
    out_dir = Path(cfg.results_dir) / "bench"
    rows = {}
    try:
        for name in RUNS:
            c = compose("config", overrides=overrides + [f"strategy={name}", f"results_dir={out_dir}"])
            print(f"fastdrop bench: {name} ...", file=sys.stderr, flush=True)
            rows[name] = Trainer(c, Path(run_dir) / name, experiment=experiment).fit()
        print("fastdrop bench: price of scoring ...", file=sys.stderr, flush=True)
        c = compose("config", overrides=overrides + ["strategy=sgd", f"results_dir={out_dir}"])
        cost = scoring_cost(Trainer(c, Path(run_dir) / "scoring", experiment=experiment))
    except USER_ERRORS as e:
        print(f"fastdrop: error: {e}", file=sys.stderr)
        sys.exit(2)
    table = summarise(rows)
    ident = f"{cfg.model.name}-w{cfg.model.width}-{rows['sgd']['data']}-e{cfg.epochs}-s{cfg.seed}-{rows['sgd']['device']}"
    md = (f"# fastdrop bench: {ident}\n\n"
          f"- command: `fastdrop bench {' '.join(HydraConfig.get().overrides.task)}`\n"
          f"- device: {rows['sgd']['device_name']}, torch {rows['sgd']['torch_version']}, "
          f"commit {rows['sgd']['git_commit']}\n"
          f"- price of scoring (sgd steps with vs without score accumulation, medians of 5 alternated blocks): "
          f"{cost['scoring_cost_pct']:+.2f} % of a step ({1e3 * cost['step_s_without_scores']:.1f} ms -> "
          f"{1e3 * cost['step_s_with_scores']:.1f} ms)\n\n"
          + tabulate(table, headers="keys", tablefmt="github") + "\n")
    atomic_write_text(out_dir / f"{ident}.md", md)
    atomic_write_text(out_dir / f"{ident}.json", json.dumps({"config": ident, "rows": table, "scoring": cost}, indent=1) + "\n")
    print(md)
    return table
