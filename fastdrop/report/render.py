"""The tables as display strings ('mean ± std', '–') and as markdown, CSV and LaTeX files with their notes."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
from tabulate import tabulate

from .common import DASH, baseline, fmt_pm, fmt_width, label, strategies, table3_strategy
from .read import load_rows
from .tables import compute_tables

TABLE_FILES = {"table1_vgg": "Table 1 - VGG: training time T, test accuracy A and time saved ΔT",
               "table2_resnet": "Table 2 - ResNet: training time T, test accuracy A and time saved ΔT",
               "table3_flops": "Table 3 - forward work per training sample, SGD vs Dropping",
               "paper_comparison": "Our rows beside the paper's (Tables 1-2)"}

_T12_NOTE = (
    "T: training time in minutes (training loop including feature-cache building, evaluation excluded). "
    "A: test accuracy after the last epoch. ΔT (%) = (T_SGD − T) / T_SGD × 100, computed per seed against "
    "the SGD run with the same network, dataset, width, epochs, batch size, precision, device, starting "
    "weights and seed. "
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


def _setup_display(r) -> dict:
    return {"Network": r["network"], "Dataset": r["dataset"], "Width": fmt_width(r["width"]), "Epochs": str(r["epochs"]),
            "Batch": str(r["batch_size"]), "Precision": str(r["precision"]), "Device": str(r["device_name"]),
            "Seeds": str(r["seeds"]).replace(",", ", ")}


def format_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The numeric tables as display strings: 'mean ± std' (std only with two seeds or more), '–' for none."""
    out = {name: _format_t12(tables[name]) for name in ("table1_vgg", "table2_resnet")}
    out["table3_flops"] = _format_t3(tables["table3_flops"])
    rows = []
    for _, r in tables["paper_comparison"].iterrows():
        d = _setup_display(r)
        d = {"Network": d.pop("Network"), "Dataset": d.pop("Dataset"), "Paper dataset": r["paper_dataset"] or DASH,
             **d, "Strategy": label(r["strategy"])}
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


def _format_t12(table: pd.DataFrame) -> pd.DataFrame:
    base = baseline()
    rows = []
    for _, r in table.iterrows():
        d = _setup_display(r)
        for s in strategies():
            L = label(s)
            d[f"{L} T (min)"] = fmt_pm(r[f"{s}_T_min"], r[f"{s}_T_min_std"])
            d[f"{L} A (%)"] = fmt_pm(r[f"{s}_A"], r[f"{s}_A_std"])
            if s != base:
                d[f"{L} ΔT (%)"] = fmt_pm(r[f"{s}_dT"], r[f"{s}_dT_std"])
        rows.append(d)
    cols = list(_setup_display(_BLANK_SETUP)) + [
        c for s in strategies() for c in ([f"{label(s)} T (min)", f"{label(s)} A (%)"]
                                          + ([] if s == base else [f"{label(s)} ΔT (%)"]))]
    return pd.DataFrame(rows, columns=cols)


def _format_t3(table: pd.DataFrame) -> pd.DataFrame:
    b, d = baseline(), table3_strategy()
    B, D = label(b), label(d)
    rows = []
    for _, r in table.iterrows():
        row = _setup_display(r)
        row[f"{B} (MMAC)"] = fmt_pm(r[f"{b}_MMAC"], r[f"{b}_MMAC_std"])
        row[f"{D} (MMAC)"] = fmt_pm(r[f"{d}_MMAC"], r[f"{d}_MMAC_std"])
        row[f"{B} (MFLOPs)"] = fmt_pm(r[f"{b}_MFLOPs"], r[f"{b}_MFLOPs_std"])
        row[f"{D} (MFLOPs)"] = fmt_pm(r[f"{d}_MFLOPs"], r[f"{d}_MFLOPs_std"])
        row["ΔFLOPs (%)"] = fmt_pm(r["dFLOPs"], r["dFLOPs_std"])
        row[f"Paper {B} (M)"] = fmt_pm(r[f"paper_{b}_M"])
        row[f"Paper {D} (M)"] = fmt_pm(r[f"paper_{d}_M"])
        row["Paper ΔFLOPs (%)"] = fmt_pm(r["paper_dFLOPs"])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(_setup_display(_BLANK_SETUP)) + [
        f"{B} (MMAC)", f"{D} (MMAC)", f"{B} (MFLOPs)", f"{D} (MFLOPs)", "ΔFLOPs (%)", f"Paper {B} (M)",
        f"Paper {D} (M)", "Paper ΔFLOPs (%)"])


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
