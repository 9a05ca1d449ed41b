"""The bench's arithmetic on result rows, pure (no torch, no runs): the work a run did, its cuts, the
identical-work check, time to accuracy, equal-time SGD and the summary line per variant."""
from __future__ import annotations

import statistics

from ..policies import POLICIES
from ..policies.rules import backward_work
from ..strategies import STRATEGIES, baseline, table3_strategy


def run_work(row: dict) -> float:
    """Forward + backward MACs per sample summed over the epochs, as executed."""
    macs = row["unit_macs_per_sample"]
    total, cut_before = 0.0, 0
    for h in row["history"]:
        total += h["fwd_macs_per_sample"] + backward_work(macs, cut_before)
        cut_before = len(h["dropped_units"])
    return total


def robust_time(row: dict) -> float:
    """T with each epoch's training time replaced by the median over the run's epochs of the same work
    (the same units cut while it ran), plus the epoch's own cache building. On a shared machine, bursts
    of interference make epochs of identical work 2-3x apart; they fall out, what a cut saves stays."""
    hist = row["history"]
    level = [0] + [len(h["dropped_units"]) for h in hist[:-1]]  # units cut during each epoch
    same: dict[int, list[float]] = {}
    for lv, h in zip(level, hist):
        same.setdefault(lv, []).append(h["train_time_s"] - (h.get("cache_time_s") or 0.0))
    return sum(statistics.median(same[lv]) + (h.get("cache_time_s") or 0.0) for lv, h in zip(level, hist))


def first_cut_epoch(row: dict) -> int | None:
    """The epoch at whose end the first cut was made (its own work was still the full network's)."""
    return next((h["epoch"] for h in row["history"] if h["dropped_units"]), None)


def cuts(row: dict) -> str:
    """The run's cuts as 'epoch:units cut by then' ('3:1 5:4'), or 'none'."""
    out, before = [], 0
    for h in row["history"]:
        n = len(h["dropped_units"])
        if n > before:
            out.append(f"{h['epoch']}:{n}")
        before = n
    return " ".join(out) or "none"


def identical_work_ratio(row: dict, base: dict) -> float | None:
    """Median epoch time of `row` over the epochs in which it did the full network's work, divided by
    the median of `base` over the same epochs (None when there are none)."""
    last = first_cut_epoch(row) or len(row["history"])
    epochs = range(1, min(last, len(base["history"])) + 1)
    t = lambda r: statistics.median(r["history"][e - 1]["train_time_s"] for e in epochs)  # noqa: E731
    return t(row) / t(base) if len(epochs) else None


def time_to_accuracy(row: dict, target: float) -> float | None:
    """Training seconds until the test accuracy first reached `target` (None if it never did)."""
    t = 0.0
    for h in row["history"]:
        t += h["train_time_s"]
        if h["test_acc"] >= target:
            return t
    return None


def equal_time_epochs(t_variant: float, t_sgd: float, epochs: int) -> int:
    return max(1, min(epochs, round(epochs * t_variant / t_sgd)))


def scaled_milestones(milestones, e: int, epochs: int) -> list[int]:
    """LR milestones of an `epochs`-epoch schedule scaled to `e` epochs (those that still fall inside)."""
    return sorted({max(1, round(m * e / epochs)) for m in milestones if round(m * e / epochs) < e})


def accuracy_target(base_rows: list[dict], drop: float) -> float:
    """Time-to-accuracy target: the baseline's median final accuracy minus `drop` points."""
    return statistics.median(r["A"] for r in base_rows) - drop


def default_variants() -> list[str]:
    """What `fastdrop bench` runs by default, read from the registries: the baseline, every other
    strategy (with its default policy, the paper's rule), then the Table-3 strategy with every policy
    registered as `benched` (ours)."""
    others = [s for s in STRATEGIES if s != baseline()]
    return [baseline(), *others, *(f"{table3_strategy()}:{p}" for p in POLICIES if POLICIES[p].benched)]


def variant_overrides(variant: str) -> list[str]:
    """'dropping:noise_level' -> strategy=dropping strategy.policy=noise_level; a strategy that never cuts
    (the sgd baseline) runs without scores, so the baseline is the fastest plain SGD."""
    strategy, _, pol = variant.partition(":")
    ov = [f"strategy={strategy}"] + ([f"strategy.policy={pol}"] if pol else [])
    return ov + (["strategy.scores=false"] if strategy in STRATEGIES and not STRATEGIES[strategy].cuts else [])


def _spread(values: list[float], nd: int = 1) -> str:
    return f"{min(values):.{nd}f}-{max(values):.{nd}f}"


def summarise(runs: dict[str, list[dict]], equal_time: dict[str, dict], max_drift: float,
              target_drop: float) -> list[dict]:
    """One line per variant from its repeats (runs[v][i] is repeat i)."""
    sgd = runs[baseline()]
    t_sgd = statistics.median(r["train_time_s"] for r in sgd)
    w_sgd = run_work(sgd[0])
    target = accuracy_target(sgd, target_drop)
    out = []
    for v, rows in runs.items():
        T = [r["train_time_s"] for r in rows]
        ratios = [identical_work_ratio(r, b) for r, b in zip(rows, sgd)]
        ratio = statistics.median(x for x in ratios if x is not None) if v != baseline() else 1.0
        valid = abs(ratio - 1) <= max_drift
        meas = (t_sgd - statistics.median(T)) / t_sgd
        pred = 1 - statistics.median(run_work(r) for r in rows) / w_sgd
        tta = [time_to_accuracy(r, target) for r in rows]
        tta_ok = [x for x in tta if x is not None]
        eq = equal_time.get(v)
        h, first = rows[0]["history"], first_cut_epoch(rows[0])
        before = [e["train_time_s"] for e in h[: first or len(h)]]
        after = [e["train_time_s"] for e in h[first + 1:]] if first else []  # the cache-building epoch excluded
        out.append({
            "variant": v, "repeats": len(rows), "T_s": round(statistics.median(T), 1), "T_range_s": _spread(T),
            "identical_work_ratio": round(ratio, 3),
            "dT_pct": (round(100 * meas, 1) if valid else f"invalid: identical-work epochs differ {100 * (ratio - 1):+.1f} %"),
            "A": round(statistics.median(r["A"] for r in rows), 2), "A_range": _spread([r["A"] for r in rows], 2),
            "time_to_target_s": round(statistics.median(tta_ok), 1) if len(tta_ok) == len(tta) else "not reached",
            "units_cut": statistics.median(len(r["history"][-1]["dropped_units"]) for r in rows),
            "first_cut_epoch": first_cut_epoch(rows[0]),
            "epoch_s_before_cut": round(statistics.median(before), 3) if before else None,
            "epoch_s_after_cut": round(statistics.median(after), 3) if after else None,
            "cache_time_s": round(statistics.median(r["cache_time_s"] for r in rows), 2),
            "cache_pct_of_T": round(100 * statistics.median(r["cache_time_s"] / r["train_time_s"] for r in rows), 2),
            "pred_dT_pct": round(100 * pred, 1),
            "efficiency": round(meas / pred, 2) if pred > 0.005 and valid else None,
            "equal_time_sgd_epochs": eq["epochs"] if eq else None,
            "equal_time_sgd_A": eq["A"] if eq else None,
        })
    return out


def reference_line(sgd_rows: list[dict], ref_epochs: list[float]) -> dict:
    """The fastest epoch of sgd against the fastest of the hand-written loop (the floor sgd is held to)."""
    sgd = min(h["train_time_s"] for r in sgd_rows for h in r["history"])
    ref = min(ref_epochs)
    return {"reference_epoch_s": ref, "sgd_epoch_s": sgd, "sgd_over_reference": sgd / ref}
