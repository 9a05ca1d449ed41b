"""The numeric Tables 1-3 and the comparison with the paper: completed runs grouped by the comparison key,
ΔT per seed against the SGD run of the same group, NaN (and a warning) wherever a cell cannot be paired."""
from __future__ import annotations

import math
import statistics
from typing import Optional

import pandas as pd

from .common import (GROUP_KEYS, KEY_LABEL, _finite, _label, _nan, _order, _same, _wkey, baseline, family, label,
                     mean_std, network_label, paper_dataset, paper_flops, paper_numbers, strategies, table3_strategy)

# The paper's Tables 1 and 2, by model family (the `family` a network is registered with).
FAMILY_TABLES = {"table1_vgg": "vgg", "table2_resnet": "resnet"}
PAIR_COLS = ("dT", "dT_std", "dT_n", "Adrop", "Adrop_std")

def usable_runs(df: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Completed runs, one per (comparison key, seed, strategy): the most recently finished is kept."""
    bad = df[df["status"] != "completed"]
    for r in bad.itertuples():
        reason = f": {r.status_reason}" if r.status_reason else ""
        warnings.append(f"{r.file}: excluded from the tables: status {r.status}{reason}")
    ok = df[df["status"] == "completed"].sort_values(["finished_at", "run_id"], kind="stable")
    ident = GROUP_KEYS + ["seed", "strategy"]
    dup = ok.duplicated(ident, keep="last")
    kept = {tuple(r[k] for k in ident): r["file"] for _, r in ok[~dup].iterrows()}
    for _, r in ok[dup].iterrows():
        warnings.append(f"{r['file']}: superseded by {kept[tuple(r[k] for k in ident)]} (same configuration, seed "
                        "and strategy; the most recently finished run is used)")
    return ok[~dup]


def _why_no_sgd(run, all_sgd: pd.DataFrame) -> str:
    cand = all_sgd[(all_sgd["model"] == run["model"]) & (all_sgd["data"] == run["data"])]
    if cand.empty:
        return f"no completed {label(baseline())} run of {run['model']} on {run['data']}"
    best, best_diff = None, None
    for _, c in cand.iterrows():
        diff = [k for k in GROUP_KEYS[2:] + ["seed"] if not _same(c[k], run[k])]
        if best_diff is None or len(diff) < len(best_diff):
            best, best_diff = c, diff
    show = lambda v: "none" if v == "" else v  # noqa: E731  ("" = from scratch, for starting weights)
    what = ", ".join(f"{KEY_LABEL[k]} ({show(best[k])} vs {show(run[k])})" for k in best_diff)
    return f"no {label(baseline())} run with the same {', '.join(KEY_LABEL[k] for k in GROUP_KEYS + ['seed'])}; " \
           f"the closest, {best['run_id']}, differs in {what}"


def _group_records(ok: pd.DataFrame):
    """(key dict, {strategy: {seed: row Series}}) per comparison group, in table order."""
    groups = []
    for key, g in ok.groupby(GROUP_KEYS, sort=False, dropna=False):
        k = dict(zip(GROUP_KEYS, key))
        by = {s: {int(r["seed"]): r for _, r in g[g["strategy"] == s].iterrows()} for s in strategies()}
        groups.append((k, by))
    groups.sort(key=lambda kb: _order(kb[0]["model"], kb[0]["data"]) + (
        _wkey(kb[0]["width"]), kb[0]["epochs"], kb[0]["batch_size"], str(kb[0]["precision"]), str(kb[0]["device_name"])))
    return groups


SETUP_COLS = ["network", "dataset", "width", "epochs", "batch_size", "precision", "device", "device_name", "seeds"]


def _setup(k: dict, seeds) -> dict:
    return {"network": network_label(k["model"], k["weights"]), "dataset": k["data"], "width": k["width"],
            "epochs": int(k["epochs"]), "batch_size": int(k["batch_size"]), "precision": k["precision"],
            "device": k["device"], "device_name": k["device_name"], "seeds": ",".join(str(s) for s in sorted(seeds))}


def compute_tables(df: pd.DataFrame, warnings: Optional[list[str]] = None) -> dict[str, pd.DataFrame]:
    """Numeric tables (NaN where a cell cannot be computed): table1_vgg, table2_resnet, table3_flops,
    paper_comparison. Reasons for every NaN that stems from the data are appended to `warnings`.

    Table 3, MAC vs FLOP: we count multiply-accumulates per training sample (`flops.py`); FLOPs = 2 x MACs.
    The Dropping figure is the mean over epochs of the forward work actually executed in that epoch's
    training pass (history `fwd_macs_per_sample`), the SGD figure the full model
    (`fwd_macs_full_per_sample`); both are given in MMAC and in MFLOPs. The paper heads its Table 3
    columns "FLOPs" but says it measured MMAC, and its numbers agree: its ResNet-18/50/101/152 values
    (1987.80, 4704.59, 9262.2, 13823.39 M) are 1.10-1.20 x the MACs of the same torchvision networks at
    224 x 224 input (1813.6, 4087.2, 7799.4, 11511.6 MMAC as counted here; layer-counting tools add BN,
    ReLU, pooling and additions on top), while the FLOPs of those networks (3627-23023 M) are 1.7-1.8 x
    the paper's values, and at the 32 px CIFAR input ResNet-18 has only 555 MMAC / 1111 MFLOPs. So the
    paper's Table 3 corresponds to our MMAC columns, at ImageNet resolution. Its VGG values (31203.60 M
    for VGG-11 vs 7605 MMAC / 15210 MFLOPs at 224 px, with ratios that change with depth) match neither
    unit, its VGG heads must differ; only ΔFLOPs (%), a ratio and the same in either unit, is comparable
    for every network."""
    warnings = [] if warnings is None else warnings
    ok = usable_runs(df, warnings)
    base = baseline()
    all_base = ok[ok["strategy"] == base]
    pn = paper_numbers().set_index(["network", "dataset"])
    pf = paper_flops().set_index("network")
    t12, families, t3, cmp_rows = [], [], [], []
    for k, by in _group_records(ok):
        rec = _t12_record(k, by, base, all_base, warnings)
        t12.append(rec)
        first = next((r for runs in by.values() for r in runs.values()), None)
        families.append(family(k["model"], first.get("model_family") if first is not None else None))
        if by.get(table3_strategy()):
            t3.append(_t3_record(k, by, base, pf, warnings))
        cmp_rows += _comparison_records(k, by, rec, base, pn, warnings)
    setup_cols = SETUP_COLS
    t12_cols = setup_cols + [f"{s}_{m}" for s in strategies()
                             for m in ("T_min", "T_min_std", "A", "A_std", "n") + (() if s == base else PAIR_COLS)]
    t12_df = pd.DataFrame.from_records(t12, columns=t12_cols)
    fam = pd.Series(families, index=t12_df.index, dtype=object)
    for m in t12_df.loc[~fam.isin(list(FAMILY_TABLES.values())), "network"].unique():
        warnings.append(f"network {m} is neither VGG nor ResNet: not in Tables 1-2")
    d = table3_strategy()
    t3_cols = setup_cols + ["n", f"{base}_MMAC", f"{base}_MMAC_std", f"{d}_MMAC", f"{d}_MMAC_std", f"{base}_MFLOPs",
                            f"{base}_MFLOPs_std", f"{d}_MFLOPs", f"{d}_MFLOPs_std", "dFLOPs", "dFLOPs_std",
                            f"paper_{base}_M", f"paper_{d}_M", "paper_dFLOPs"]
    cmp_cols = setup_cols[:2] + ["paper_dataset"] + setup_cols[2:] + [
        "strategy", "dT", "dT_std", "dT_n", "paper_dT", "dT_diff", "Adrop", "Adrop_std", "paper_Adrop", "Adrop_diff"]
    out = {name: t12_df[fam == f].reset_index(drop=True) for name, f in FAMILY_TABLES.items()}
    out["table3_flops"] = pd.DataFrame.from_records(t3, columns=t3_cols)
    out["paper_comparison"] = pd.DataFrame.from_records(cmp_rows, columns=cmp_cols)
    return out


def _t12_record(k: dict, by: dict, base: str, all_base: pd.DataFrame, warnings: list[str]) -> dict:
    """One row of Tables 1-2: T and A per strategy, ΔT and the accuracy drop against the baseline per seed."""
    label = _label(k)
    rec = _setup(k, set().union(*[set(v) for v in by.values()]))
    for s in strategies():
        runs = by[s]
        rec[f"{s}_T_min"], rec[f"{s}_T_min_std"], rec[f"{s}_n"] = mean_std(r["T_min"] for r in runs.values())
        rec[f"{s}_A"], rec[f"{s}_A_std"], _ = mean_std(r["A"] for r in runs.values())
        if s == base:
            continue
        d_t, a_drop = [], []
        for seed, r in sorted(runs.items()):
            b = by[base].get(seed)
            if b is None:
                warnings.append(f"{label} {s} seed {seed} ({r['file']}): ΔT not computed: "
                                + _why_no_sgd(r, all_base))
                continue
            if not b["T_min"] > 0:
                warnings.append(f"{label} {s} seed {seed}: ΔT not computed: SGD time is {b['T_min']}")
                continue
            d_t.append((b["T_min"] - r["T_min"]) / b["T_min"] * 100.0)
            a_drop.append(b["A"] - r["A"])
        if runs and d_t and len(d_t) < len(runs):
            warnings.append(f"{label} {s}: ΔT is over {len(d_t)} of {len(runs)} seeds (the others have no "
                            "matching SGD run) while T and A are over all of them")
        rec[f"{s}_dT"], rec[f"{s}_dT_std"], rec[f"{s}_dT_n"] = mean_std(d_t)
        rec[f"{s}_Adrop"], rec[f"{s}_Adrop_std"], _ = mean_std(a_drop)
    return rec


def _t3_record(k: dict, by: dict, base: str, pf: pd.DataFrame, warnings: list[str]) -> dict:
    """One row of Table 3: forward work per sample, from the Dropping runs' own histories."""
    d = table3_strategy()
    full, drop, dfl = [], [], []
    for seed, r in sorted(by[d].items()):
        f = r["fwd_macs_full_per_sample"]
        per_epoch = [h.get("fwd_macs_per_sample") for h in r["history"]]
        if not _finite(f) or not f > 0 or not per_epoch or not all(_finite(x) for x in per_epoch):
            warnings.append(f"{r['file']}: left out of Table 3: fwd_macs_full_per_sample or a history "
                            "fwd_macs_per_sample is missing")
            continue
        m = statistics.fmean(per_epoch)
        full.append(f / 1e6)
        drop.append(m / 1e6)
        dfl.append((f - m) / f * 100.0)
    for seed, r in sorted(by[base].items()):
        f = r["fwd_macs_full_per_sample"]
        if full and _finite(f) and abs(f / 1e6 - full[0]) > 1e-9 * max(1.0, full[0]):
            warnings.append(f"{r['file']}: its full-model MACs ({f / 1e6:.2f} M) differ from the Dropping "
                            f"run's ({full[0]:.2f} M) in {_label(k)}")
    r3 = _setup(k, by[d].keys())
    r3[f"{base}_MMAC"], r3[f"{base}_MMAC_std"], r3["n"] = mean_std(full)
    r3[f"{d}_MMAC"], r3[f"{d}_MMAC_std"], _ = mean_std(drop)
    r3[f"{base}_MFLOPs"], r3[f"{base}_MFLOPs_std"] = 2 * r3[f"{base}_MMAC"], 2 * r3[f"{base}_MMAC_std"]
    r3[f"{d}_MFLOPs"], r3[f"{d}_MFLOPs_std"] = 2 * r3[f"{d}_MMAC"], 2 * r3[f"{d}_MMAC_std"]
    r3["dFLOPs"], r3["dFLOPs_std"], _ = mean_std(dfl)
    p = pf.loc[k["model"]] if k["model"] in pf.index else None
    r3[f"paper_{base}_M"] = _nan(p[f"{base}_fwd_flops_M"]) if p is not None else math.nan
    r3[f"paper_{d}_M"] = _nan(p[f"{d}_fwd_flops_M"]) if p is not None else math.nan
    r3["paper_dFLOPs"] = _nan(p["dFLOPs_pct"]) if p is not None else math.nan
    return r3


def _comparison_records(k: dict, by: dict, rec: dict, base: str, pn: pd.DataFrame, warnings: list[str]) -> list:
    """Our ΔT and accuracy drop beside the paper's (Tables 1-2), for every strategy the paper reports."""
    pdata = paper_dataset(k["data"])
    prow = pn.loc[(k["model"], pdata)] if (k["model"], pdata) in pn.index else None
    out = []
    for s in strategies():
        if s == base or f"{s}_dT" not in pn.columns or not by[s]:
            continue
        if prow is None:
            warnings.append(f"{_label(k)} {s}: the paper has no row for {k['model']} on {pdata or k['data']}")
        c = _setup(k, by[s].keys())
        c["paper_dataset"] = pdata if prow is not None else ""
        c["strategy"] = s
        c["dT"], c["dT_std"], c["dT_n"] = rec[f"{s}_dT"], rec[f"{s}_dT_std"], rec[f"{s}_dT_n"]
        c["paper_dT"] = _nan(prow[f"{s}_dT"]) if prow is not None else math.nan
        c["dT_diff"] = c["dT"] - c["paper_dT"]
        c["Adrop"], c["Adrop_std"] = rec[f"{s}_Adrop"], rec[f"{s}_Adrop_std"]
        c["paper_Adrop"] = (_nan(prow[f"{base}_A"]) - _nan(prow[f"{s}_A"])) if prow is not None else math.nan
        c["Adrop_diff"] = c["Adrop"] - c["paper_Adrop"]
        out.append(c)
    return out
