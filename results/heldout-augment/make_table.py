"""Tabulate results/heldout-augment (augmented CIFAR-10, held-out runs): one table per test-set size, rows by seed.

    python results/heldout-augment/make_table.py results/heldout-augment
"""
import json, glob, statistics as st, sys
from fastdrop.bench.analysis import run_work, cuts
import os
files = {os.path.basename(f): f for d in sys.argv[1:] for f in sorted(glob.glob(d + "/runs/*.json"))}
rows = [json.load(open(f)) for f in files.values()]
LABEL = {"aug-sgd": "sgd", "aug-sgd2": "sgd (again)", "aug-drift": "drift, strategy.drift_stall_lr=1 (stall at any rate: the rule before 2026-12-04)",
         "new-aug-drift": "drift, default (on an augmented split: the stall test after the LR drop)",
         "aug-drift-v4": "drift, stall at any rate, strategy.cache.views=4",
         "aug-drift-freeze": "drift, stall at any rate, as Freezing (fresh augmentation)",
         "aug-drift-flooronly": "drift, floor only (strategy.drift_settle=0)",
         "aug-sched-pre": "schedule {12:2, 15:4} (its two pre-drop cuts, nothing after)",
         "aug-sgd-half": "sgd, 15 epochs, drop at 7 (frontier 1/2)",
         "aug-drift-floor05": "drift, default, strategy.drift_floor=0.05"}
def label(tag):
    base = tag.rsplit("-s", 1)[0] if tag.rsplit("-s", 1)[-1].isdigit() else tag
    return LABEL.get(base, base)
for ts in sorted({r["config"]["data"]["test_subset"] or 0 for r in rows}):
    sel = [r for r in rows if (r["config"]["data"]["test_subset"] or 0) == ts]
    print(f"\n### test images: {ts or 'all 10000'}\n")
    print("| seed | variant | T_s | ΔT % | work saved % | A | ΔA | A, mean of the last 5 epochs | Δ | train loss at the end | cuts (epoch:units) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for seed in sorted({r["seed"] for r in sel}):
        rs = [r for r in sel if r["seed"] == seed]
        sgd = [r for r in rs if label(r["tag"]) in ("sgd", "sgd (again)")]
        T0 = st.mean(r["train_time_s"] for r in sgd); W0 = run_work(sgd[0]); A0 = sgd[0]["A"]
        L0 = st.mean(e["test_acc"] for e in sgd[0]["history"][-5:])
        for r in sorted(rs, key=lambda r: (not label(r["tag"]).startswith("sgd"), r["tag"])):
            h = r["history"]; l5 = st.mean(e["test_acc"] for e in h[-5:])
            print(f"| {seed} | {label(r['tag'])} | {r['train_time_s']:.1f} | {100*(1-r['train_time_s']/T0):.1f} | "
                  f"{100*(1-run_work(r)/W0):.1f} | {r['A']:.2f} | {r['A']-A0:+.2f} | {l5:.2f} | {l5-L0:+.2f} | "
                  f"{h[-1]['train_loss']:.3f} | {cuts(r)} |")
