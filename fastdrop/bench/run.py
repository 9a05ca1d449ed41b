"""A speed-up that drift cannot explain: every variant several times, interleaved, on one config and seed.

`fastdrop bench` runs `bench.variants` (sgd, freezing, dropping with the paper's rule, dropping with our
noise_level policy) `bench.repeats` times in turn (sgd, freezing, dropping, ..., sgd, freezing, ...), so
machine drift hits every variant alike, and reports the median and range of T. The sgd baseline runs
without score accumulation (the fastest plain SGD; the price of scoring is measured apart, in one
process, on alternated blocks of steps). Before any cut a variant does the same work as sgd plus
scoring, so per repeat the median epoch time over those *identical-work* epochs is compared with sgd's
of the same repeat; where the median ratio is off by more than `bench.max_drift` (5 %), the table says
the measurement is invalid instead of printing a ΔT. Beside each cutting variant: an *equal-time SGD*
run (sgd for as many epochs as fit in the variant's median T, LR milestones scaled alike) and its
accuracy, and *time-to-accuracy* (training seconds until the test accuracy first reached sgd's final A
minus `bench.target_drop` points). The FLOP-predicted ΔT counts per epoch the forward MACs of the units
that ran plus the backward MACs of the units trained (fastdrop.strategies.policy.backward_work);
efficiency = measured / predicted time saved. Output: <results_dir>/bench/<name>.{md,json}, rows in
<results_dir>/bench/runs.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from tabulate import tabulate

from .bench_reference import reference_epoch_times
from .bench_scoring import scoring_cost
from .results import atomic_write_text
from .strategies import STRATEGIES, baseline, table3_strategy
from .strategies.policies import POLICIES
from .strategies.policy import backward_work
from .trainer import USER_ERRORS, Trainer


def run_work(row: dict) -> float:
    """Forward + backward MACs per sample summed over the epochs, as executed."""
    macs = row["unit_macs_per_sample"]
    total, cut_before = 0.0, 0
    for h in row["history"]:
        total += h["fwd_macs_per_sample"] + backward_work(macs, cut_before)
        cut_before = len(h["dropped_units"])
    return total


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


def _train(overrides: list[str], run_dir: Path, experiment) -> dict:
    c = compose("config", overrides=overrides)
    return Trainer(c, run_dir, experiment=experiment).fit()


def _reference(base: list[str], run_dir: Path, experiment, epochs: int) -> list[float]:
    tr = Trainer(compose("config", overrides=base + variant_overrides(baseline())), run_dir, experiment=experiment)
    return reference_epoch_times(tr.cfg, tr.data, tr.device, epochs)


def reference_line(sgd_rows: list[dict], ref_epochs: list[float]) -> dict:
    """The fastest epoch of sgd against the fastest of the hand-written loop (the floor sgd is held to)."""
    sgd = min(h["train_time_s"] for r in sgd_rows for h in r["history"])
    ref = min(ref_epochs)
    return {"reference_epoch_s": ref, "sgd_epoch_s": sgd, "sgd_over_reference": sgd / ref}


def bench_task(cfg, run_dir, experiment, multirun):
    b = cfg.bench
    task = HydraConfig.get().overrides.task
    base = [o for o in task if not o.startswith(("strategy=", "strategy.policy=", "strategy.scores="))]
    out_dir = Path(cfg.results_dir) / "bench"
    base += [f"results_dir={out_dir}", "progress=false"]
    variants = list(b.variants) or default_variants()
    if variants[0] != baseline():
        print(f"fastdrop: error: bench.variants must start with {baseline()} (the baseline)", file=sys.stderr)
        sys.exit(2)
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    ref_epochs: list[float] = []  # the hand-written loop's epochs, run right after each sgd repeat
    equal_time: dict[str, dict] = {}
    total = b.repeats * len(variants)
    try:
        for i in range(b.repeats):
            for j, v in enumerate(variants):
                k = i * len(variants) + j + 1
                print(f"fastdrop bench: [{k}/{total}] repeat {i + 1} {v} ...", file=sys.stderr, flush=True)
                runs[v].append(_train(base + variant_overrides(v), Path(run_dir) / f"{v}-r{i}", experiment))
                if v == baseline():
                    ref_epochs += _reference(base, Path(run_dir) / f"reference-r{i}", experiment, min(3, cfg.epochs))
        t_sgd = statistics.median(r["train_time_s"] for r in runs[baseline()])
        for v in variants[1:]:
            if not any(r["history"][-1]["dropped_units"] for r in runs[v]):
                continue
            e = equal_time_epochs(statistics.median(r["train_time_s"] for r in runs[v]), t_sgd, cfg.epochs)
            ms = scaled_milestones(cfg.optim.milestones, e, cfg.epochs)
            print(f"fastdrop bench: equal-time sgd for {v}: {e} epochs ...", file=sys.stderr, flush=True)
            row = _train(base + variant_overrides(baseline()) + [f"epochs={e}", f"optim.milestones=[{','.join(map(str, ms))}]"],
                         Path(run_dir) / f"equal-time-{v}", experiment)
            equal_time[v] = {"epochs": e, "milestones": ms, "A": round(row["A"], 2), "T_s": round(row["train_time_s"], 1)}
        print("fastdrop bench: price of scoring ...", file=sys.stderr, flush=True)
        cost = scoring_cost(Trainer(compose("config", overrides=base + [f"strategy={baseline()}"]), Path(run_dir) / "scoring",
                                    experiment=experiment))
    except USER_ERRORS as e:
        print(f"fastdrop: error: {e}", file=sys.stderr)
        sys.exit(2)
    table = summarise(runs, equal_time, b.max_drift, b.target_drop)
    ref = reference_line(runs[baseline()], ref_epochs)
    s0 = runs[baseline()][0]
    ident = f"{cfg.model.name}-w{cfg.model.width}-{s0['data']}-e{cfg.epochs}-s{cfg.seed}-{s0['device']}"
    target = accuracy_target(runs[baseline()], b.target_drop)
    md = (f"# fastdrop bench: {ident}\n\n"
          f"- command: `fastdrop bench {' '.join(task)}`\n"
          f"- device: {s0['device_name']}, torch {s0['torch_version']}, commit {s0['git_commit']}\n"
          f"- {b.repeats} repeats, interleaved ({', '.join(variants)}, then again); T = median; ΔT against sgd's "
          f"median T (sgd without score accumulation); refused where the identical-work epochs (before the first "
          f"cut) differ from sgd's by more than {100 * b.max_drift:g} %\n"
          f"- time to target: training seconds until test accuracy >= {target:.2f} % (sgd's median A − "
          f"{b.target_drop:g})\n"
          f"- price of scoring (sgd steps with vs without score accumulation, medians of 5 alternated blocks): "
          f"{cost['scoring_cost_pct']:+.2f} % of a step ({1e3 * cost['step_s_without_scores']:.1f} ms -> "
          f"{1e3 * cost['step_s_with_scores']:.1f} ms)\n"
          f"- reference loop (hand-written SGD on the same module, data and optimiser, 3 epochs after each sgd repeat): "
          f"fastest epoch {ref['reference_epoch_s']:.2f} s, sgd's fastest {ref['sgd_epoch_s']:.2f} s: sgd / reference "
          f"= {ref['sgd_over_reference']:.3f} (target <= 1.05)\n\n"
          + tabulate(table, headers="keys", tablefmt="github") + "\n")
    atomic_write_text(out_dir / f"{ident}.md", md)
    atomic_write_text(out_dir / f"{ident}.json", json.dumps(
        {"config": ident, "rows": table, "equal_time": equal_time, "scoring": cost, "reference": ref,
         "run_ids": {v: [r["run_id"] for r in rs] for v, rs in runs.items()}}, indent=1) + "\n")
    print(md)
    return table
