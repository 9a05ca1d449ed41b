"""Figs. 1, 3, 5 and 6 as PNG files, one set per (model, data, width, epochs, seed, device), drawn with
matplotlib's object API on the Agg canvas so the caller's backend is never changed."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import pandas as pd

from ..strategies import STRATEGIES
from .common import (FIG_KEYS, _finite, _order, _wkey, baseline, color, fmt_width, label, network_label, strategies,
                     style, weights_label)
from .decisions import decision_figure
from .read import load_rows
from .style import new_figure

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
        for s in strategies():
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
            primary = runs.get(baseline(), next(iter(runs.values())))
        out.append((k, runs, primary))
    out.sort(key=lambda t: _order(t[0]["model"], t[0]["data"]) + (_wkey(t[0]["width"]), t[0]["epochs"], t[0]["seed"]))
    return out


def _fig_stem(k: dict) -> str:
    w = f"_w{k['width']:g}" if math.isfinite(k["width"]) else ""
    start = f"_from-{_slug(weights_label(k['weights']))}" if k.get("weights") else ""
    return f"{_slug(k['model'])}{start}_{_slug(k['data'])}{w}_e{k['epochs']}_s{k['seed']}_{_slug(k['device'])}"


def _identity(k: dict, runs: dict) -> str:
    any_run = next(iter(runs.values()))
    return (f"{network_label(k['model'], k.get('weights'))} on {k['data']} (width {fmt_width(k['width'])}, "
            f"{k['epochs']} epochs, seed {k['seed']}, {any_run['device_name']})")


def _epochs(run, field: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for i, h in enumerate(run["history"]):
        v = h.get(field)
        xs.append(int(h.get("epoch", i + 1)))
        ys.append(float(v) if _finite(v) else math.nan)
    return xs, ys


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
    fig, (ax,) = new_figure()
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
    ax.set_title(f"{title}\n{_identity(k, runs)} - {label(run['strategy'])} run", fontsize=10)
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
    fig, axes = new_figure(len(panels))
    drawn = False
    for ax, (field, ylabel, scale) in zip(axes, panels):
        top = 0.0
        for s in strategies():
            if s not in runs:
                continue
            xs, ys = _epochs(runs[s], field)
            ys = [y * scale for y in ys]
            if any(math.isfinite(y) for y in ys):
                drawn = True
                top = max([top] + [y for y in ys if math.isfinite(y)])
            ax.plot(xs, ys, color=color(s), label=label(s), **style(s))
            if cache_marks and field == "train_time_s":
                cx, cy = _epochs(runs[s], "cache_time_s")
                pts = [(x, y) for x, y in zip(cx, cy) if math.isfinite(y) and y > 0]
                if pts:
                    ax.scatter(*zip(*pts), marker="*", s=160, color=color(s), edgecolor="black",
                               linewidth=0.6, zorder=5, label=f"{label(s)}: cache building (s)")
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
    for s in runs:  # every cutting strategy makes the same decisions: one figure per group
        if s in STRATEGIES and STRATEGIES[s].cuts:
            p = out / f"fig_decisions_{stem}.png"
            if decision_figure(runs[s], f"Decisions - {_identity(k, runs)} - {label(s)} run "
                               f"(policy {runs[s].get('policy')})", p):
                written.append(p)
            break
    return written


def write_figures(results_dir, out_dir, run_ids: Optional[list[str]] = None) -> tuple[list[Path], list[str]]:
    df, warnings = load_rows(results_dir)
    written = []
    for k, runs, primary in figure_groups(df, warnings, run_ids):
        files = draw_figures(k, runs, primary, out_dir)
        n_paper = sum(not f.name.startswith("fig_decisions") for f in files)
        if n_paper < 4:
            warnings.append(f"{_identity(k, runs)}: {4 - n_paper} of 4 figures had no data to draw")
        written += files
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "warnings.txt").write_text("".join(w + "\n" for w in warnings), encoding="utf-8")
    return written, warnings
