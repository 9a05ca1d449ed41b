"""`fastdrop suite`: the held-out suite in the paper's regime (issue 19). Each config is trained as the
paper trains (an LR drop after the first third of the epochs, lr / 10), sized for a 2-core CPU, and per
config runs sgd (the fast baseline, no scores), the SGD frontier (sgd for 1/2 and 1/4 of the epochs, the
milestone scaled alike), the paper's rule, ours (`drift`) and each peer (`freezeout`, `autofreeze`,
`linear`), all as Dropping. Runs are in-process, one at a time, seed by seed in variant order, and sgd
runs again after the variants: ΔT is against the mean of the two, and their difference says how far the
machine drifted meanwhile (`sgd_after_drift_pct`). A completed run already in <out>/runs is reused: a stopped suite
continues where it stopped.

Per row: T, A, ΔT and ΔA against the same seed's sgd, time-to-accuracy (sgd's A - 1), whether the point
lies above the frontier (A at least the frontier's A interpolated at the run's T; below the 1/4 run's T
the frontier is that run's A), the training work saved (forward + backward MACs, which machine drift
cannot touch), the cuts, and the LR schedule the row used. Per config: sgd's test-accuracy rise over the
last quarter of its epochs (converged: < 1 point). Output: <out>/README.md table, suite.csv and one figure
per config (accuracy against training time, every variant a point, the frontier a line).

    fastdrop suite --data-root DIR [--out results/suite] [--seeds 0 1] [--configs ...] [--table-only]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ..config.schema import SCHEDULES
from ..files import RUNS
from .analysis import cuts, robust_time, run_work, scaled_milestones, time_to_accuracy, variant_overrides
from .suite_configs import ALL_CONFIGS, COMMON, CONFIGS, DESIGNED_ON, SOURCE, SOURCE_TAG

# the bench's spelling of a variant: the baseline without scores, every policy as Dropping
VARIANTS = {label: variant_overrides(v) for label, v in [
    ("paper", "dropping"), ("drift (ours)", "dropping:drift"), ("freezeout", "dropping:freezeout"),
    ("autofreeze", "dropping:autofreeze"), ("linear", "dropping:linear")]}
SGD = variant_overrides("sgd")


def _fmt(ov: list[str], **kw) -> list[str]:
    return [o.format(**kw) for o in ov]


class NotRun(Exception):
    pass


def completed_row(out: Path, tag: str) -> dict | None:
    """The completed row tagged `tag` in <out>/runs (a stopped study continues from what it holds)."""
    runs = out / RUNS
    for f in sorted(runs.glob("*.json")) if runs.is_dir() else []:
        r = json.loads(f.read_text())
        if r.get("tag") == tag and r.get("status") == "completed":
            return r
    return None


def _run(out: Path, tag: str, overrides: list[str], table_only: bool, force: bool = False) -> dict:
    """The completed row tagged `tag` in <out>/runs, trained now if absent (or if `force`)."""
    done = None if force else completed_row(out, tag)
    if done is not None:
        return done
    if table_only:
        raise NotRun(tag)
    from ..config import compose_config
    from ..run.trainer import Trainer

    print(f"fastdrop suite: {tag} ...", file=sys.stderr, flush=True)
    cfg = compose_config(overrides + [f"tag={tag}", f"results_dir={out}"])
    row = Trainer(cfg, out / "tmp" / tag, experiment="suite").fit()
    print(f"fastdrop suite: {tag}: T {row['train_time_s']:.1f} s, A {row['A']:.2f} %", file=sys.stderr, flush=True)
    return row


def schedule_words(row: dict) -> str:
    if row.get("policy") == "freezeout":
        return "per-unit cosine (FreezeOut)"
    optim = row.get("config", {}).get("optim", {})
    if optim.get("schedule") == "cosine":
        return "cosine"
    ms = row.get("milestones") or optim.get("milestones")
    return f"step /10 after {ms}" if ms is not None else "step"


def frontier_acc(points: list[tuple[float, float]], t: float) -> float:
    """The SGD frontier's accuracy at training time t: piecewise linear through (T, A) of sgd at 1/4, 1/2
    and all of the epochs; below the shortest run, that run's A; beyond the longest, its A."""
    pts = sorted(points)
    if t <= pts[0][0]:
        return pts[0][1]
    for (t0, a0), (t1, a1) in zip(pts, pts[1:]):
        if t <= t1:
            return a0 + (a1 - a0) * (t - t0) / (t1 - t0)
    return pts[-1][1]


def last_quarter_rise(row: dict) -> float:
    acc = [h["test_acc"] for h in row["history"]]
    q = max(1, len(acc) // 4)
    return acc[-1] - acc[-1 - q]


def schedule_overrides(schedule: str, epochs: int, full_epochs: int) -> list[str]:
    """The LR schedule of a run of `epochs` out of the config's `full_epochs`: step drops lr / 10 after the
    first third of the full run (scaled alike for a shorter one), cosine runs its own course."""
    if schedule == "cosine":
        return ["optim.schedule=cosine", "optim.milestones=[]"]
    ms = scaled_milestones([full_epochs // 3], epochs, full_epochs)
    return [f"optim.milestones=[{','.join(map(str, ms))}]"]


def tag_prefix(name: str, schedule: str) -> str:
    return f"suite-{name}" + ("" if schedule == "step" else f"-{schedule}")  # the step rows keep their old tags


def recorded_seeds(out: Path, name: str, schedule: str) -> set[int]:
    """The seeds whose sgd row of config `name` is in <out>/runs: a later call for other seeds keeps them
    in the table instead of rewriting it without them."""
    pat = re.compile(rf"{re.escape(tag_prefix(name, schedule))}-s(\d+)-sgd")
    runs = out / RUNS
    tags = (json.loads(f.read_text()).get("tag") or "" for f in runs.glob("*.json")) if runs.is_dir() else ()
    return {int(m.group(1)) for t in tags if (m := pat.fullmatch(t))}


def base_overrides(name: str, root: str, source: str, schedule: str = "step") -> list[str]:
    """Config `name`'s full-length run: COMMON, then the config's own overrides (its values win), its epochs
    and the schedule."""
    ov, epochs = ALL_CONFIGS[name]
    return COMMON + _fmt(ov, root=root, source=source) + [f"epochs={epochs}"] + schedule_overrides(schedule, epochs, epochs)


def config_lines(out: Path, name: str, seeds: list[int], root: str, table_only: bool,
                 schedule: str = "step") -> tuple[list[dict], dict]:
    ov, epochs = ALL_CONFIGS[name]
    source = ""
    if "{source}" in " ".join(ov):
        source = str(out / "tmp" / SOURCE_TAG)  # its weights.pt: a completed run leaves it
        # <out>/tmp is scratch (not committed): where the weights are gone, train the source again. CPU training
        # from one seed repeats itself, and each fine-tuning row records the weights' sha256, so a source that
        # came out different is visible in the rows.
        gone = not table_only and not (Path(source) / "weights.pt").is_file()
        _run(out, SOURCE_TAG, COMMON + _fmt(SOURCE, root=root), table_only, force=gone)
    base = base_overrides(name, root, source, schedule)
    pre = tag_prefix(name, schedule)
    lines, fig = [], {"frontier": [], "points": []}
    for seed in seeds:
        s = [f"seed={seed}"]
        sgd = _run(out, f"{pre}-s{seed}-sgd", base + s + SGD, table_only)
        front = [(sgd["train_time_s"], sgd["A"])]
        if seed == seeds[0]:
            for frac in (2, 4):
                e = epochs // frac
                r = _run(out, f"{pre}-s{seed}-sgd-1_{frac}", base + s + SGD + [f"epochs={e}"] + schedule_overrides(
                    schedule, e, epochs), table_only)
                front.append((r["train_time_s"], r["A"]))
                lines.append(_line(name, f"sgd 1/{frac} (frontier)", seed, r, sgd, None))
            fig["frontier"] = sorted(front)
        done = []
        for v, vo in VARIANTS.items():
            try:
                done.append((v, _run(out, f"{pre}-s{seed}-{v.split()[0]}", base + s + vo, table_only)))
            except NotRun:
                continue
        try:  # sgd again after the variants: how far the machine drifted while they ran
            after = _run(out, f"{pre}-s{seed}-sgd-after", base + s + SGD, table_only)
        except NotRun:  # rows from before the drift check
            after = None
        both = [sgd] if after is None else [sgd, after]
        t0 = [sum(f(r) for r in both) / len(both) for f in (lambda r: r["train_time_s"], robust_time)]
        lines.append(_line(name, "sgd", seed, sgd, sgd, None, t0, after))
        for v, r in done:
            lines.append(_line(name, v, seed, r, sgd, fig["frontier"], t0))
            fig["points"].append((v, seed, r["train_time_s"], r["A"]))
    return lines, fig


def _line(name: str, variant: str, seed: int, r: dict, sgd: dict, frontier, t0: list[float] | None = None,
          after: dict | None = None) -> dict:
    """One table row; ΔT against t0 (sgd's T and robust T, or their means over sgd before and after the
    variants)."""
    T, R, (T0, R0) = r["train_time_s"], robust_time(r), t0 or (sgd["train_time_s"], robust_time(sgd))
    tta = time_to_accuracy(r, sgd["A"] - 1.0)
    above = None
    if frontier:
        above = "yes" if r["A"] >= frontier_acc(frontier, T) else "no"
    # only ours was designed on anything: its rows say where; the peers and the paper's rule are published rules
    schedule = schedule_words(r)
    designed = (name, seed) in DESIGNED_ON and schedule.startswith("step")  # designed under the step LR
    held = ("design" if designed else "held out") if "ours" in variant else "-"
    return {"config": name, "held out": held,
            "variant": variant, "seed": seed, "schedule": schedule, "T_s": round(T, 1),
            "dT_pct": round(100 * (1 - T / T0), 1), "T_robust_s": round(R, 1),
            "dT_robust_pct": round(100 * (1 - R / R0), 1), "A": round(r["A"], 2),
            "dA": round(r["A"] - sgd["A"], 2),
            "time_to_A-1_s": round(tta, 1) if tta is not None else "not reached", "above_frontier": above,
            "work_saved_pct": round(100 * (1 - run_work(r) / run_work(sgd)), 1), "cuts (epoch:units)": cuts(r),
            "sgd_last_quarter_rise": round(last_quarter_rise(sgd), 2) if variant == "sgd" else None,
            "sgd_after_drift_pct": round(100 * (after["train_time_s"] / sgd["train_time_s"] - 1), 1) if after else None}


def run_config(out: Path, name: str, seeds: list[int], root: str, table_only: bool, schedule: str):
    """Train what is missing of `seeds`, then tabulate them with every seed already run under `out`;
    returns (table lines, figure points, the seeds tabulated)."""
    if not table_only:
        config_lines(out, name, seeds, root, False, schedule)
    every = sorted(set(seeds) | recorded_seeds(out, name, schedule))
    try:
        return (*config_lines(out, name, every, root, True, schedule), every)
    except NotRun as e:  # an earlier seed's study stopped part-way: the seeds asked for
        if every == sorted(seeds):
            raise
        print(f"fastdrop suite: {name}: earlier seeds not complete ({e}); tabulating --seeds only", file=sys.stderr)
        return (*config_lines(out, name, seeds, root, True, schedule), seeds)


def figure(path: Path, name: str, fig: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f, ax = plt.subplots(figsize=(5.5, 4))
    if fig["frontier"]:
        t, a = zip(*fig["frontier"])
        ax.plot(t, a, "k-o", ms=4, label="SGD frontier (1/4, 1/2, all epochs)")
    for i, v in enumerate(VARIANTS):
        pts = [(t, a) for vv, _, t, a in fig["points"] if vv == v]
        if pts:
            t, a = zip(*pts)
            ax.scatter(t, a, s=30, marker="os^vD"[i % 5], label=v, zorder=3)
    ax.set_xlabel("training time T (s)")
    ax.set_ylabel("test accuracy A (%)")
    ax.set_title(name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="fastdrop suite", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/suite")
    ap.add_argument("--data-root", required=True, help="a folder holding cifar10-jpeg/ and imagenette-mini/")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                    help="the seeds to run; the table holds them and every seed already run under --out")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(ALL_CONFIGS),
                    help=f"default: the five of issue 19; also held out: {', '.join(c for c in ALL_CONFIGS if c not in CONFIGS)}")
    ap.add_argument("--schedule", default="step", choices=SCHEDULES,
                    help="every row's LR schedule: step (lr / 10 after the first third: the paper's) or cosine "
                         "(FreezeOut's shape, for every variant alike); use its own --out")
    ap.add_argument("--table-only", action="store_true", help="run nothing; tabulate the runs already done")
    a = ap.parse_args(argv)
    out = Path(a.out)
    import pandas as pd

    from ..files import atomic_write_text

    lines, missing, tabulated = [], [], set()
    for name in a.configs:
        try:
            ls, fig, seeds = run_config(out, name, a.seeds, a.data_root, a.table_only, a.schedule)
            tabulated.update(seeds)
        except NotRun as e:
            missing.append(str(e))
            continue
        lines += ls
        (out / "figures").mkdir(parents=True, exist_ok=True)
        figure(out / "figures" / f"{name}.png", name, fig)
    df = pd.DataFrame(lines)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "suite.csv", index=False)
    lr_words = ("LR / 10 after epochs // 3." if a.schedule == "step" else
                "LR per epoch on a cosine from optim.lr towards 0 (FreezeOut: its own per-unit cosine).")
    md = ["# fastdrop suite (issue 19)", "",
          f"Command: `fastdrop suite --out {a.out} --data-root <data> --seeds {' '.join(map(str, sorted(tabulated) or a.seeds))}"
          + (f" --configs {' '.join(a.configs)}" if a.configs != list(CONFIGS) else "")
          + (f" --schedule {a.schedule}" if a.schedule != "step" else "") + "`", "",
          f"Common: {' '.join(COMMON)}; {lr_words} ΔA against the same seed's sgd (no scores); ΔT "
          "against the mean T of that sgd run and its second run after the variants (sgd_after_drift_pct: the second "
          "against the first; empty for rows from before that check). work_saved: training forward + backward MACs. "
          "above_frontier: A >= the SGD frontier at the run's T.", "",
          df.to_markdown(index=False) if len(df) else "(no runs)", "",
          "Not run: " + (", ".join(missing) if missing else "none"), ""]
    readme = out / "README.md"
    old = readme.read_text() if readme.is_file() else ""
    notes = old[old.find("\n## "):] if "\n## " in old else ""  # hand-written sections below the table stay
    atomic_write_text(readme, "\n".join(md) + notes)
    print("\n".join(md))
    return 0
