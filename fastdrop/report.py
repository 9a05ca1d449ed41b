"""Tables 1-3, the comparison with the paper and Figs. 1/3/5/6, rebuilt from the per-run JSON rows alone.

Every run leaves one self-describing row in `<results>/runs/<run_id>.json` (see `results.py`), so the
report is a pure function of those files: no run is ever re-trained or re-measured here, and a table can
be rebuilt at any time, on any machine, from whatever rows exist. Because a time saving is only
meaningful against a baseline measured under the same conditions, ΔT is computed per seed against the
SGD run with the same network, dataset, width, epochs, batch size, precision, device (and device name)
and seed; whatever cannot be paired that way is shown as "–" and explained in `warnings.txt`, never
silently mixed. Unreadable or partial rows are skipped with a warning naming the file, and runs that did
not complete are left out and listed. Text formats are written with pandas + tabulate only (LaTeX through
`tablefmt="latex_booktabs"`, so jinja2 is not needed); the PNG figures use matplotlib's object API on
the Agg canvas, so importing this module never changes the caller's matplotlib backend. Table 3 gives
forward work in MMAC and in MFLOPs (= 2 x MAC); the paper's Table 3, though headed "FLOPs", matches MACs
(the reasoning is in `compute_tables`).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd
from tabulate import tabulate

STRATEGIES = ("sgd", "freezing", "dropping")
STRATEGY_LABEL = {"sgd": "SGD", "freezing": "Freezing", "dropping": "Dropping"}
STRATEGY_COLOR = {"sgd": "tab:red", "freezing": "tab:blue", "dropping": "tab:green"}  # as in the paper's figures
# SGD and Freezing often coincide (same forward work, same parameter count): distinct styles keep both visible.
STRATEGY_STYLE = {"sgd": dict(ls="-", lw=2.8, marker="o", ms=4), "freezing": dict(ls="--", lw=1.8, marker="s", ms=3),
                  "dropping": dict(ls="-", lw=1.8, marker="^", ms=4)}
MODEL_ORDER = ["vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
DATA_ORDER = ["mnist", "mnist_mini", "cifar10", "imagenette"]
PAPER_DATASET = {"mnist": "mnist", "mnist_mini": "mnist", "cifar10": "cifar10", "imagenette": "imagenette"}

# Two runs are comparable (ΔT, accuracy drop) only if all of these match, and the seed.
GROUP_KEYS = ["model", "data", "width", "epochs", "batch_size", "precision", "device", "device_name"]
KEY_LABEL = {"model": "network", "data": "dataset", "width": "width", "epochs": "epochs",
             "batch_size": "batch size", "precision": "precision", "device": "device",
             "device_name": "device name", "seed": "seed"}
# One set of figures per (model, data, width, epochs, seed, device).
FIG_KEYS = ["model", "data", "width", "epochs", "seed", "device"]

DASH = "–"
TABLE_FILES = {"table1_vgg": "Table 1 - VGG: training time T, test accuracy A and time saved ΔT",
               "table2_resnet": "Table 2 - ResNet: training time T, test accuracy A and time saved ΔT",
               "table3_flops": "Table 3 - forward work per training sample, SGD vs Dropping",
               "paper_comparison": "Our rows beside the paper's (Tables 1-2)"}

_T12_NOTE = (
    "T: training time in minutes (training loop including feature-cache building, evaluation excluded). "
    "A: test accuracy after the last epoch. ΔT (%) = (T_SGD − T) / T_SGD × 100, computed per seed against "
    "the SGD run with the same network, dataset, width, epochs, batch size, precision, device and seed. "
    "With several seeds: mean ± sample standard deviation over seeds (ΔT over the seed pairs). "
    "\"–\": no run, or no comparable SGD run; see warnings.txt.")
NOTES = {
    "table1_vgg": _T12_NOTE,
    "table2_resnet": _T12_NOTE,
    "table3_flops": (
        "Forward work per training sample. SGD: the full model. Dropping: mean over epochs of the forward work "
        "actually executed in that epoch's training pass (dropped units are not run). MMAC = 10^6 "
        "multiply-accumulates; MFLOPs = 2 × MMAC. ΔFLOPs (%) = (SGD − Dropping) / SGD × 100, per seed, "
        "identical in either unit. The paper's Table 3 is labelled FLOPs but its values are MMAC at 224 px input "
        "(e.g. ResNet-18: paper 1987.80 vs 1813.6 MMAC / 3627.1 MFLOPs at 224 px, 555.4 MMAC at 32 px): "
        "compare its absolute values with our MMAC columns, and only at the same resolution; its VGG values "
        "match neither unit, so for VGG compare ΔFLOPs only. The paper gives one row per network, "
        "whatever the dataset."),
    "paper_comparison": (
        "Each of our Freezing/Dropping rows beside the paper's row for the same network and dataset "
        "(mnist_mini is compared with the paper's MNIST). ΔT as in Tables 1-2; accuracy drop = A_SGD − A "
        "(percentage points, per seed pair). Differences are ours − paper. Absolute times are not compared: "
        "the paper used an RTX 3090 and full-size data sets."),
}

# Keys a row must have, and their types (bool is excluded from int on purpose).
_STR, _INT, _NUM = (str,), (int,), (int, float)
REQUIRED = {"run_id": _STR, "status": _STR, "model": _STR, "data": _STR, "strategy": _STR, "seed": _INT,
            "epochs": _INT, "width": _NUM + (type(None),), "batch_size": _INT, "precision": _STR, "device": _STR,
            "T_min": None, "A": None, "history": (list,)}
COLUMNS = ["run_id", "status", "status_reason", "model", "width", "data", "strategy", "policy", "experiment", "tag",
           "seed", "epochs", "epochs_done", "batch_size", "precision", "device", "device_name", "T_min", "A",
           "train_time_s", "cache_time_s", "fwd_macs_full_per_sample", "params_total", "finished_at", "unit_names",
           "history", "file"]


# ------------------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------------------
def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _problem(row) -> Optional[str]:
    """Why `row` cannot be used, or None."""
    if not isinstance(row, dict):
        return "the file does not hold a JSON object"
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        return "missing keys: " + ", ".join(missing)
    for k, types in REQUIRED.items():
        if types is None:
            continue
        v = row[k]
        if not isinstance(v, types) or isinstance(v, bool):
            return f"key {k!r} has the wrong type ({type(v).__name__})"
    if row["strategy"] not in STRATEGIES:
        return f"unknown strategy {row['strategy']!r} (expected one of {', '.join(STRATEGIES)})"
    if not all(isinstance(h, dict) for h in row["history"]):
        return "history entries are not JSON objects"
    if row["status"] == "completed":
        for k in ("T_min", "A"):
            if not _finite(row[k]):
                return f"status is completed but {k} is {row[k]!r}"
        done = row.get("epochs_done", len(row["history"]))
        if done != row["epochs"] or len(row["history"]) != row["epochs"]:
            return (f"partial row: status is completed but it has {len(row['history'])} history entries "
                    f"(epochs_done {done}) for {row['epochs']} epochs")
    return None


def load_rows(results_dir) -> tuple[pd.DataFrame, list[str]]:
    """Every usable `<results_dir>/runs/*.json` as one DataFrame row (any status), and the warnings about
    files that were skipped (bad JSON, missing keys, partial rows), each naming the file."""
    runs = Path(results_dir) / "runs"
    warnings: list[str] = []
    records = []
    if not runs.is_dir():
        warnings.append(f"{runs}: no such directory (no runs to report)")
    else:
        seen: dict[str, str] = {}
        for path in sorted(runs.glob("*.json")):
            try:
                row = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                warnings.append(f"{path}: skipped: not valid JSON ({type(e).__name__}: {e})")
                continue
            why = _problem(row)
            if why:
                warnings.append(f"{path}: skipped: {why}")
                continue
            if row["run_id"] in seen:
                warnings.append(f"{path}: skipped: run_id {row['run_id']} already read from {seen[row['run_id']]}")
                continue
            seen[row["run_id"]] = str(path)
            rec = {k: row.get(k) for k in COLUMNS}
            rec["file"] = str(path)
            rec["device_name"] = row.get("device_name") or row["device"]
            rec["width"] = math.nan if row["width"] is None else float(row["width"])  # None: a custom model
            rec["status_reason"] = row.get("status_reason") or ""
            rec["finished_at"] = row.get("finished_at") or ""
            records.append(rec)
    df = pd.DataFrame.from_records(records, columns=COLUMNS)
    return df, warnings


# ------------------------------------------------------------------------------------------------------
# statistics and formatting helpers
# ------------------------------------------------------------------------------------------------------
def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, sample std, n); std is NaN below two values, mean NaN for none."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return math.nan, math.nan, 0
    return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else math.nan), len(v)


def fmt_pm(mean: float, std: float = math.nan, digits: int = 2, sign: bool = False) -> str:
    """'12.34', '12.34 ± 0.56' or '–'."""
    if mean is None or not math.isfinite(mean):
        return DASH
    s = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    if std is not None and math.isfinite(std):
        s += f" ± {std:.{digits}f}"
    return s


def _nan(x) -> float:
    return float(x) if x is not None and isinstance(x, (int, float)) and math.isfinite(x) else math.nan


def fmt_width(w) -> str:
    return DASH if w is None or not math.isfinite(w) else f"{w:g}"


def _wkey(w) -> float:
    return w if math.isfinite(w) else -1.0


def _same(a, b) -> bool:
    nan = [isinstance(x, float) and math.isnan(x) for x in (a, b)]
    return all(nan) or (not any(nan) and a == b)


def _order(model: str, data: str) -> tuple:
    m = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)
    d = DATA_ORDER.index(data) if data in DATA_ORDER else len(DATA_ORDER)
    return (m, model, d, data)


def _label(key: dict) -> str:
    return (f"{key['model']}/{key['data']} width {fmt_width(key['width'])} {key['epochs']} ep batch {key['batch_size']} "
            f"{key['precision']} {key['device_name']}")


def paper_numbers() -> pd.DataFrame:
    """The paper's Tables 1-2 (columns as in paper_tables.csv)."""
    return pd.read_csv(Path(__file__).parent / "paper_numbers.csv")


def paper_flops() -> pd.DataFrame:
    """The paper's Table 3 (network, sgd_fwd_flops_M, dropping_fwd_flops_M, dFLOPs_pct)."""
    return pd.read_csv(Path(__file__).parent / "paper_flops.csv")


def paper_dataset(data: str) -> Optional[str]:
    if data in PAPER_DATASET:
        return PAPER_DATASET[data]
    head = data.split("_")[0]
    return PAPER_DATASET.get(head)


# ------------------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------------------
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
        return f"no completed SGD run of {run['model']} on {run['data']}"
    best, best_diff = None, None
    for _, c in cand.iterrows():
        diff = [k for k in GROUP_KEYS[2:] + ["seed"] if not _same(c[k], run[k])]
        if best_diff is None or len(diff) < len(best_diff):
            best, best_diff = c, diff
    what = ", ".join(f"{KEY_LABEL[k]} ({best[k]} vs {run[k]})" for k in best_diff)
    return f"no SGD run with the same {', '.join(KEY_LABEL[k] for k in GROUP_KEYS + ['seed'])}; " \
           f"the closest, {best['run_id']}, differs in {what}"


def _group_records(ok: pd.DataFrame):
    """(key dict, {strategy: {seed: row Series}}) per comparison group, in table order."""
    groups = []
    for key, g in ok.groupby(GROUP_KEYS, sort=False, dropna=False):
        k = dict(zip(GROUP_KEYS, key))
        by = {s: {int(r["seed"]): r for _, r in g[g["strategy"] == s].iterrows()} for s in STRATEGIES}
        groups.append((k, by))
    groups.sort(key=lambda kb: _order(kb[0]["model"], kb[0]["data"]) + (
        _wkey(kb[0]["width"]), kb[0]["epochs"], kb[0]["batch_size"], str(kb[0]["precision"]), str(kb[0]["device_name"])))
    return groups


SETUP_COLS = ["network", "dataset", "width", "epochs", "batch_size", "precision", "device", "device_name", "seeds"]


def _setup(k: dict, seeds) -> dict:
    return {"network": k["model"], "dataset": k["data"], "width": k["width"], "epochs": int(k["epochs"]),
            "batch_size": int(k["batch_size"]), "precision": k["precision"], "device": k["device"],
            "device_name": k["device_name"], "seeds": ",".join(str(s) for s in sorted(seeds))}


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
    all_sgd = ok[ok["strategy"] == "sgd"]
    pn = paper_numbers().set_index(["network", "dataset"])
    pf = paper_flops().set_index("network")
    t12, t3, cmp_rows = [], [], []
    for k, by in _group_records(ok):
        seeds = set().union(*[set(v) for v in by.values()])
        label = _label(k)
        rec = _setup(k, seeds)
        for s in STRATEGIES:
            runs = by[s]
            rec[f"{s}_T_min"], rec[f"{s}_T_min_std"], rec[f"{s}_n"] = mean_std(r["T_min"] for r in runs.values())
            rec[f"{s}_A"], rec[f"{s}_A_std"], _ = mean_std(r["A"] for r in runs.values())
            if s == "sgd":
                continue
            d_t, a_drop = [], []
            for seed, r in sorted(runs.items()):
                base = by["sgd"].get(seed)
                if base is None:
                    warnings.append(f"{label} {s} seed {seed} ({r['file']}): ΔT not computed: "
                                    + _why_no_sgd(r, all_sgd))
                    continue
                if not base["T_min"] > 0:
                    warnings.append(f"{label} {s} seed {seed}: ΔT not computed: SGD time is {base['T_min']}")
                    continue
                d_t.append((base["T_min"] - r["T_min"]) / base["T_min"] * 100.0)
                a_drop.append(base["A"] - r["A"])
            if runs and d_t and len(d_t) < len(runs):
                warnings.append(f"{label} {s}: ΔT is over {len(d_t)} of {len(runs)} seeds (the others have no "
                                "matching SGD run) while T and A are over all of them")
            rec[f"{s}_dT"], rec[f"{s}_dT_std"], rec[f"{s}_dT_n"] = mean_std(d_t)
            rec[f"{s}_Adrop"], rec[f"{s}_Adrop_std"], _ = mean_std(a_drop)
        t12.append(rec)

        # Table 3: forward work, from the Dropping runs' own histories.
        if by["dropping"]:
            full, drop, dfl = [], [], []
            for seed, r in sorted(by["dropping"].items()):
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
            for seed, r in sorted(by["sgd"].items()):
                f = r["fwd_macs_full_per_sample"]
                if full and _finite(f) and abs(f / 1e6 - full[0]) > 1e-9 * max(1.0, full[0]):
                    warnings.append(f"{r['file']}: its full-model MACs ({f / 1e6:.2f} M) differ from the Dropping "
                                    f"run's ({full[0]:.2f} M) in {label}")
            r3 = _setup(k, by["dropping"].keys())
            r3["sgd_MMAC"], r3["sgd_MMAC_std"], r3["n"] = mean_std(full)
            r3["dropping_MMAC"], r3["dropping_MMAC_std"], _ = mean_std(drop)
            r3["sgd_MFLOPs"], r3["sgd_MFLOPs_std"] = 2 * r3["sgd_MMAC"], 2 * r3["sgd_MMAC_std"]
            r3["dropping_MFLOPs"], r3["dropping_MFLOPs_std"] = 2 * r3["dropping_MMAC"], 2 * r3["dropping_MMAC_std"]
            r3["dFLOPs"], r3["dFLOPs_std"], _ = mean_std(dfl)
            p = pf.loc[k["model"]] if k["model"] in pf.index else None
            r3["paper_sgd_M"] = _nan(p["sgd_fwd_flops_M"]) if p is not None else math.nan
            r3["paper_dropping_M"] = _nan(p["dropping_fwd_flops_M"]) if p is not None else math.nan
            r3["paper_dFLOPs"] = _nan(p["dFLOPs_pct"]) if p is not None else math.nan
            t3.append(r3)

        # Comparison with the paper's Tables 1-2.
        pdata = paper_dataset(k["data"])
        prow = pn.loc[(k["model"], pdata)] if (k["model"], pdata) in pn.index else None
        for s in ("freezing", "dropping"):
            if not by[s]:
                continue
            if prow is None:
                warnings.append(f"{label} {s}: the paper has no row for {k['model']} on {pdata or k['data']}")
            c = _setup(k, by[s].keys())
            c["paper_dataset"] = pdata if prow is not None else ""
            c["strategy"] = s
            c["dT"], c["dT_std"], c["dT_n"] = rec[f"{s}_dT"], rec[f"{s}_dT_std"], rec[f"{s}_dT_n"]
            c["paper_dT"] = _nan(prow[f"{s}_dT"]) if prow is not None else math.nan
            c["dT_diff"] = c["dT"] - c["paper_dT"]
            c["Adrop"], c["Adrop_std"] = rec[f"{s}_Adrop"], rec[f"{s}_Adrop_std"]
            c["paper_Adrop"] = (_nan(prow["sgd_A"]) - _nan(prow[f"{s}_A"])) if prow is not None else math.nan
            c["Adrop_diff"] = c["Adrop"] - c["paper_Adrop"]
            cmp_rows.append(c)

    setup_cols = SETUP_COLS
    pair_cols = ("dT", "dT_std", "dT_n", "Adrop", "Adrop_std")
    t12_cols = setup_cols + [f"{s}_{m}" for s in STRATEGIES
                             for m in ("T_min", "T_min_std", "A", "A_std", "n") + (() if s == "sgd" else pair_cols)]
    t12_df = pd.DataFrame.from_records(t12, columns=t12_cols)
    is_vgg = t12_df["network"].astype(str).str.startswith("vgg")
    is_resnet = t12_df["network"].astype(str).str.startswith("resnet")
    for m in t12_df.loc[~(is_vgg | is_resnet), "network"].unique():
        warnings.append(f"network {m} is neither VGG nor ResNet: not in Tables 1-2")
    t3_cols = setup_cols + ["n", "sgd_MMAC", "sgd_MMAC_std", "dropping_MMAC", "dropping_MMAC_std", "sgd_MFLOPs",
                            "sgd_MFLOPs_std", "dropping_MFLOPs", "dropping_MFLOPs_std", "dFLOPs", "dFLOPs_std",
                            "paper_sgd_M", "paper_dropping_M", "paper_dFLOPs"]
    cmp_cols = setup_cols[:2] + ["paper_dataset"] + setup_cols[2:] + [
        "strategy", "dT", "dT_std", "dT_n", "paper_dT", "dT_diff", "Adrop", "Adrop_std", "paper_Adrop", "Adrop_diff"]
    return {"table1_vgg": t12_df[is_vgg].reset_index(drop=True),
            "table2_resnet": t12_df[is_resnet].reset_index(drop=True),
            "table3_flops": pd.DataFrame.from_records(t3, columns=t3_cols),
            "paper_comparison": pd.DataFrame.from_records(cmp_rows, columns=cmp_cols)}


def _setup_display(r) -> dict:
    return {"Network": r["network"], "Dataset": r["dataset"], "Width": fmt_width(r["width"]), "Epochs": str(r["epochs"]),
            "Batch": str(r["batch_size"]), "Precision": str(r["precision"]), "Device": str(r["device_name"]),
            "Seeds": str(r["seeds"]).replace(",", ", ")}


def format_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The numeric tables as display strings: 'mean ± std' (std only with two seeds or more), '–' for none."""
    out = {}
    for name in ("table1_vgg", "table2_resnet"):
        rows = []
        for _, r in tables[name].iterrows():
            d = _setup_display(r)
            for s in STRATEGIES:
                L = STRATEGY_LABEL[s]
                d[f"{L} T (min)"] = fmt_pm(r[f"{s}_T_min"], r[f"{s}_T_min_std"])
                d[f"{L} A (%)"] = fmt_pm(r[f"{s}_A"], r[f"{s}_A_std"])
                if s != "sgd":
                    d[f"{L} ΔT (%)"] = fmt_pm(r[f"{s}_dT"], r[f"{s}_dT_std"])
            rows.append(d)
        cols = list(_setup_display(_BLANK_SETUP)) + [
            c for s in STRATEGIES for c in ([f"{STRATEGY_LABEL[s]} T (min)", f"{STRATEGY_LABEL[s]} A (%)"]
                                            + ([] if s == "sgd" else [f"{STRATEGY_LABEL[s]} ΔT (%)"]))]
        out[name] = pd.DataFrame(rows, columns=cols)
    rows = []
    for _, r in tables["table3_flops"].iterrows():
        d = _setup_display(r)
        d["SGD (MMAC)"] = fmt_pm(r["sgd_MMAC"], r["sgd_MMAC_std"])
        d["Dropping (MMAC)"] = fmt_pm(r["dropping_MMAC"], r["dropping_MMAC_std"])
        d["SGD (MFLOPs)"] = fmt_pm(r["sgd_MFLOPs"], r["sgd_MFLOPs_std"])
        d["Dropping (MFLOPs)"] = fmt_pm(r["dropping_MFLOPs"], r["dropping_MFLOPs_std"])
        d["ΔFLOPs (%)"] = fmt_pm(r["dFLOPs"], r["dFLOPs_std"])
        d["Paper SGD (M)"] = fmt_pm(r["paper_sgd_M"])
        d["Paper Dropping (M)"] = fmt_pm(r["paper_dropping_M"])
        d["Paper ΔFLOPs (%)"] = fmt_pm(r["paper_dFLOPs"])
        rows.append(d)
    out["table3_flops"] = pd.DataFrame(rows, columns=list(_setup_display(_BLANK_SETUP)) + [
        "SGD (MMAC)", "Dropping (MMAC)", "SGD (MFLOPs)", "Dropping (MFLOPs)", "ΔFLOPs (%)", "Paper SGD (M)",
        "Paper Dropping (M)", "Paper ΔFLOPs (%)"])
    rows = []
    for _, r in tables["paper_comparison"].iterrows():
        d = _setup_display(r)
        d = {"Network": d.pop("Network"), "Dataset": d.pop("Dataset"), "Paper dataset": r["paper_dataset"] or DASH,
             **d, "Strategy": STRATEGY_LABEL[r["strategy"]]}
        d["ΔT ours (%)"] = fmt_pm(r["dT"], r["dT_std"])
        d["ΔT paper (%)"] = fmt_pm(r["paper_dT"])
        d["ΔT ours − paper (pp)"] = fmt_pm(r["dT_diff"], sign=True)
        d["Acc. drop ours (pp)"] = fmt_pm(r["Adrop"], r["Adrop_std"])
        d["Acc. drop paper (pp)"] = fmt_pm(r["paper_Adrop"])
        d["Acc. drop ours − paper (pp)"] = fmt_pm(r["Adrop_diff"], sign=True)
        rows.append(d)
    setup = list(_setup_display(_BLANK_SETUP))
    out["paper_comparison"] = pd.DataFrame(rows, columns=setup[:2] + ["Paper dataset"] + setup[2:] + [
        "Strategy", "ΔT ours (%)", "ΔT paper (%)", "ΔT ours − paper (pp)", "Acc. drop ours (pp)",
        "Acc. drop paper (pp)", "Acc. drop ours − paper (pp)"])
    return out


_BLANK_SETUP = {"network": "", "dataset": "", "width": 0.0, "epochs": 0, "batch_size": 0, "precision": "",
                "device_name": "", "seeds": ""}


def build_tables(df: pd.DataFrame, warnings: Optional[list[str]] = None) -> dict[str, pd.DataFrame]:
    """Display tables (strings, '–' where not computable) keyed table1_vgg, table2_resnet, table3_flops,
    paper_comparison; reasons for '–' cells and excluded runs are appended to `warnings`."""
    return format_tables(compute_tables(df, warnings))


_LATEX_UNICODE = {"±": r"$\pm$", "–": "--", "−": "$-$", "Δ": r"$\Delta$", "×": r"$\times$"}


def to_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "(no runs)\n"
    return tabulate(table.values.tolist(), headers=list(table.columns), tablefmt="github",
                    disable_numparse=True) + "\n"


def _latex_unicode(text: str) -> str:
    for u, tex in _LATEX_UNICODE.items():
        text = text.replace(u, tex)
    return text


def to_latex(table: pd.DataFrame) -> str:
    return _latex_unicode(tabulate(table.values.tolist(), headers=list(table.columns), tablefmt="latex_booktabs",
                                   disable_numparse=True)) + "\n"


def write_tables(results_dir, out_dir) -> tuple[list[Path], list[str]]:
    """Read the rows, write every table as .md, .csv and .tex plus warnings.txt; returns (paths, warnings)."""
    df, warnings = load_rows(results_dir)
    numeric = compute_tables(df, warnings)
    display = format_tables(numeric)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, title in TABLE_FILES.items():
        note = NOTES[name]
        md = f"# {title}\n\n{to_markdown(display[name])}\n{note}\n"
        tex = _latex_unicode("".join(f"% {line}\n" for line in [title, *_wrap(note)])) + to_latex(display[name])
        for suffix, text in ((".md", md), (".tex", tex)):
            p = out / f"{name}{suffix}"
            p.write_text(text, encoding="utf-8")
            written.append(p)
        p = out / f"{name}.csv"
        numeric[name].to_csv(p, index=False, float_format="%.6g")
        written.append(p)
    p = out / "warnings.txt"
    p.write_text("".join(w + "\n" for w in warnings), encoding="utf-8")
    written.append(p)
    return written, warnings


def _wrap(text: str, width: int = 100) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return lines + ([cur] if cur else [])


def _print_warnings(prog: str, warnings: list[str]) -> None:
    for w in warnings:
        print(f"{prog}: warning: {w}", file=sys.stderr)


def tables_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="fastdrop tables", description="Rebuild Tables 1-3 and the comparison with "
                                 "the paper from <results>/runs/*.json (markdown, CSV, LaTeX).")
    ap.add_argument("--results", default="results", help="results directory holding runs/ (default: results)")
    ap.add_argument("--out", default=None, help="output directory (default: <results>/tables)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.results) / "tables"
    if not (Path(args.results) / "runs").is_dir():
        print(f"fastdrop tables: error: {Path(args.results) / 'runs'} does not exist (pass --results DIR)",
              file=sys.stderr)
        return 1
    written, warnings = write_tables(args.results, out)
    _print_warnings("fastdrop tables", warnings)
    n_tables = sum(1 for p in written if p.suffix == ".md")
    print(f"fastdrop tables: wrote {n_tables} tables (.md, .csv, .tex) to {out}"
          + (f"; {len(warnings)} warning(s) in {out / 'warnings.txt'}" if warnings else ""))
    return 0


# ------------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------------
def _slug(x) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", str(x)).strip("-")


def figure_groups(df: pd.DataFrame, warnings: list[str], run_ids: Optional[list[str]] = None):
    """[(key dict, {strategy: row}, primary row for Figs. 1/3)] per (model, data, width, epochs, seed, device).

    Without `run_ids` only completed runs are drawn; with them, the groups holding those runs (any
    status) and, for Figs. 1/3, the named run itself."""
    if df.empty:
        return []
    if run_ids:
        missing = sorted(set(run_ids) - set(df["run_id"]))
        for r in missing:
            warnings.append(f"--run-id {r}: no such run among the readable rows")
        pool = df[(df["status"] == "completed") | df["run_id"].isin(run_ids)]
    else:
        for r in df[df["status"] != "completed"].itertuples():
            warnings.append(f"{r.file}: not drawn: status {r.status} (name it with --run-id to draw it)")
        pool = df[df["status"] == "completed"]
    out = []
    for key, g in pool.groupby(FIG_KEYS, sort=False, dropna=False):
        if run_ids and not g["run_id"].isin(run_ids).any():
            continue
        k = dict(zip(FIG_KEYS, key))
        g = g.sort_values(["finished_at", "run_id"], kind="stable")
        runs = {}
        for s in STRATEGIES:
            gs = g[g["strategy"] == s]
            if run_ids and gs["run_id"].isin(run_ids).any():
                gs = gs[gs["run_id"].isin(run_ids)]
            if len(gs) > 1:
                warnings.append(f"{k['model']}/{k['data']} seed {k['seed']} {s}: {len(gs)} runs in one figure group; "
                                f"drawing the latest, {gs['run_id'].iloc[-1]} (others: "
                                f"{', '.join(gs['run_id'].iloc[:-1])})")
            if len(gs):
                runs[s] = gs.iloc[-1]
        primary = None
        if run_ids:
            named = [r for r in runs.values() if r["run_id"] in run_ids]
            primary = named[0] if named else None
        if primary is None:
            primary = runs.get("sgd", next(iter(runs.values())))
        out.append((k, runs, primary))
    out.sort(key=lambda t: _order(t[0]["model"], t[0]["data"]) + (_wkey(t[0]["width"]), t[0]["epochs"], t[0]["seed"]))
    return out


def _fig_stem(k: dict) -> str:
    w = f"_w{k['width']:g}" if math.isfinite(k["width"]) else ""
    return f"{_slug(k['model'])}_{_slug(k['data'])}{w}_e{k['epochs']}_s{k['seed']}_{_slug(k['device'])}"


def _identity(k: dict, runs: dict) -> str:
    any_run = next(iter(runs.values()))
    return (f"{k['model']} on {k['data']} (width {fmt_width(k['width'])}, {k['epochs']} epochs, seed {k['seed']}, "
            f"{any_run['device_name']})")


def _epochs(run, field: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for i, h in enumerate(run["history"]):
        v = h.get(field)
        xs.append(int(h.get("epoch", i + 1)))
        ys.append(float(v) if _finite(v) else math.nan)
    return xs, ys


def _new_figure(ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5 if ncols == 1 else 13, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


def _unit_figure(k, runs, run, metric: str, ylabel: str, title: str, log_y: bool, path: Path) -> bool:
    """One curve per scored unit, coloured input (purple) -> output (red/orange) along plasma."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    hist = run["history"]
    present = {u for h in hist for u in (h.get(metric) or {})}
    names = [u for u in (run["unit_names"] or []) if u in present] + sorted(present - set(run["unit_names"] or []))
    if not names:
        return False
    cmap = matplotlib.colormaps["plasma"]
    lo, hi = 0.0, 0.78  # plasma from purple to orange-red, like the paper's purple -> red
    fig, (ax,) = _new_figure()
    n = len(names)
    for i, u in enumerate(names):
        xs = [int(h.get("epoch", j + 1)) for j, h in enumerate(hist) if _finite((h.get(metric) or {}).get(u))]
        ys = [float(h[metric][u]) for h in hist if _finite((h.get(metric) or {}).get(u))]
        if log_y:
            xs, ys = zip(*[(x, y) for x, y in zip(xs, ys) if y > 0]) if any(y > 0 for y in ys) else ((), ())
        color = cmap(lo + (hi - lo) * (i / max(n - 1, 1)))
        ax.plot(xs, ys, color=color, lw=1.6, marker="o" if len(xs) <= 30 else None, ms=3, label=u)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n{_identity(k, runs)} - {STRATEGY_LABEL[run['strategy']]} run", fontsize=10)
    if n <= 12:
        ax.legend(title="unit (input → output)", fontsize=8, title_fontsize=8, loc="best", ncols=1 if n <= 6 else 2)
    sm = ScalarMappable(norm=Normalize(-0.5, n - 0.5), cmap=matplotlib.colors.ListedColormap(
        [cmap(lo + (hi - lo) * (i / max(n - 1, 1))) for i in range(n)]))
    cb = fig.colorbar(sm, ax=ax, pad=0.01)
    cb.set_ticks([0, n - 1] if n > 1 else [0])
    cb.set_ticklabels([f"{names[0]}\n(input)", f"{names[-1]}\n(output)"] if n > 1 else [names[0]])
    cb.set_label("unit depth")
    fig.savefig(path, dpi=110)
    return True


def _strategy_figure(k, runs, panels, title: str, path: Path, cache_marks: bool = False) -> bool:
    """Side-by-side panels, one curve per strategy; panels = [(history field, y label, scale)]."""
    fig, axes = _new_figure(len(panels))
    drawn = False
    for ax, (field, ylabel, scale) in zip(axes, panels):
        top = 0.0
        for s in STRATEGIES:
            if s not in runs:
                continue
            xs, ys = _epochs(runs[s], field)
            ys = [y * scale for y in ys]
            if any(math.isfinite(y) for y in ys):
                drawn = True
                top = max([top] + [y for y in ys if math.isfinite(y)])
            ax.plot(xs, ys, color=STRATEGY_COLOR[s], label=STRATEGY_LABEL[s], **STRATEGY_STYLE[s])
            if cache_marks and field == "train_time_s":
                cx, cy = _epochs(runs[s], "cache_time_s")
                pts = [(x, y) for x, y in zip(cx, cy) if math.isfinite(y) and y > 0]
                if pts:
                    ax.scatter(*zip(*pts), marker="*", s=160, color=STRATEGY_COLOR[s], edgecolor="black",
                               linewidth=0.6, zorder=5, label=f"{STRATEGY_LABEL[s]}: cache building (s)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if field != "test_acc" and top > 0:
            ax.set_ylim(0, top * 1.08)
        ax.legend(fontsize=8, loc="best")
    if not drawn:
        return False
    fig.suptitle(f"{title}\n{_identity(k, runs)}", fontsize=11)
    fig.savefig(path, dpi=110)
    return True


def draw_figures(k: dict, runs: dict, primary, out_dir) -> list[Path]:
    """Figs. 1, 3, 5 and 6 for one group; returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _fig_stem(k)
    written = []
    p = out / f"fig1_aapd_{stem}.png"
    if _unit_figure(k, runs, primary, "aapd", "AAPD: Σ over the epoch's steps of |∂L/∂w|, per weight",
                    "Fig. 1 - average absolute partial derivative per unit", True, p):
        written.append(p)
    p = out / f"fig3_scores_{stem}.png"
    if _unit_figure(k, runs, primary, "scores", "score $P_l$ (0 = learning, 1 = stopped)",
                    "Fig. 3 - layer score $P_l$ per unit", False, p):
        written.append(p)
    p = out / f"fig5_acc_time_{stem}.png"
    if _strategy_figure(k, runs, [("test_acc", "test accuracy (%)", 1.0),
                                  ("train_time_s", "training time per epoch (s, incl. cache building)", 1.0)],
                        "Fig. 5 - test accuracy and training time per epoch (★ = feature-cache building time)", p,
                        cache_marks=True):
        written.append(p)
    p = out / f"fig6_params_macs_{stem}.png"
    if _strategy_figure(k, runs, [("trained_params", "trained parameters (millions)", 1e-6),
                                  ("fwd_macs_per_sample", "forward work per sample (MMAC)", 1e-6)],
                        "Fig. 6 - trained parameters and forward MMAC per epoch", p):
        written.append(p)
    return written


def write_figures(results_dir, out_dir, run_ids: Optional[list[str]] = None) -> tuple[list[Path], list[str]]:
    df, warnings = load_rows(results_dir)
    written = []
    for k, runs, primary in figure_groups(df, warnings, run_ids):
        files = draw_figures(k, runs, primary, out_dir)
        if len(files) < 4:
            warnings.append(f"{_identity(k, runs)}: {4 - len(files)} of 4 figures had no data to draw")
        written += files
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "warnings.txt").write_text("".join(w + "\n" for w in warnings), encoding="utf-8")
    return written, warnings


def figures_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="fastdrop figures", description="Draw Figs. 1, 3, 5 and 6 (PNG) from "
                                 "<results>/runs/*.json, one set per (model, data, width, epochs, seed, device).")
    ap.add_argument("--results", default="results", help="results directory holding runs/ (default: results)")
    ap.add_argument("--out", default=None, help="output directory (default: <results>/figures)")
    ap.add_argument("--run-id", action="append", default=None, metavar="RUN_ID",
                    help="draw only the groups of these runs (repeatable); Figs. 1/3 then use the named run")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.results) / "figures"
    written, warnings = write_figures(args.results, out, args.run_id)
    _print_warnings("fastdrop figures", warnings)
    if not written:
        print(f"fastdrop figures: nothing to draw from {Path(args.results) / 'runs'}", file=sys.stderr)
        return 1
    print(f"fastdrop figures: wrote {len(written)} figures to {out}"
          + (f"; {len(warnings)} warning(s) in {out / 'warnings.txt'}" if warnings else ""))
    return 0
