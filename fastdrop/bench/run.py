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
that ran plus the backward MACs of the units trained (fastdrop.policies.rules.backward_work);
efficiency = measured / predicted time saved. Output: <results_dir>/bench/<name>.{md,json}, rows in
<results_dir>/bench/runs.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig

from ..errors import print_error, user_errors
from ..run.trainer import Trainer
from .analysis import (accuracy_target, baseline, default_variants, equal_time_epochs, reference_line,
                       scaled_milestones, summarise, variant_overrides)
from .reference import alternated_blocks, reference_epoch_times
from .render import write_report
from .scoring import scoring_cost


def _train(overrides: list[str], run_dir: Path, experiment) -> dict:
    c = compose("config", overrides=overrides)
    return Trainer(c, run_dir, experiment=experiment).fit()


def _reference(base: list[str], run_dir: Path, experiment, epochs: int) -> list[float]:
    tr = Trainer(compose("config", overrides=base + variant_overrides(baseline())), run_dir, experiment=experiment)
    return reference_epoch_times(tr.cfg, tr.data, tr.device, epochs)


def _repeats(base: list[str], variants: list[str], repeats: int, run_dir: Path, experiment,
             epochs: int) -> tuple[dict[str, list[dict]], list[float]]:
    """Every variant `repeats` times, interleaved; the hand-written loop's epochs after each sgd repeat."""
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    ref_epochs: list[float] = []
    total = repeats * len(variants)
    for i in range(repeats):
        for j, v in enumerate(variants):
            k = i * len(variants) + j + 1
            print(f"fastdrop bench: [{k}/{total}] repeat {i + 1} {v} ...", file=sys.stderr, flush=True)
            runs[v].append(_train(base + variant_overrides(v), Path(run_dir) / f"{v}-r{i}", experiment))
            if v == baseline():
                ref_epochs += _reference(base, Path(run_dir) / f"reference-r{i}", experiment, min(3, epochs))
    return runs, ref_epochs


def _equal_time(base: list[str], runs: dict[str, list[dict]], cfg, run_dir: Path, experiment) -> dict[str, dict]:
    """Beside each variant that cut: sgd for as many epochs as fit in its median T, milestones scaled."""
    equal_time: dict[str, dict] = {}
    t_sgd = statistics.median(r["train_time_s"] for r in runs[baseline()])
    for v in list(runs)[1:]:
        if not any(r["history"][-1]["dropped_units"] for r in runs[v]):
            continue
        e = equal_time_epochs(statistics.median(r["train_time_s"] for r in runs[v]), t_sgd, cfg.epochs)
        ms = scaled_milestones(cfg.optim.milestones, e, cfg.epochs)
        print(f"fastdrop bench: equal-time sgd for {v}: {e} epochs ...", file=sys.stderr, flush=True)
        row = _train(base + variant_overrides(baseline()) + [f"epochs={e}", f"optim.milestones=[{','.join(map(str, ms))}]"],
                     Path(run_dir) / f"equal-time-{v}", experiment)
        equal_time[v] = {"epochs": e, "milestones": ms, "A": round(row["A"], 2), "T_s": round(row["train_time_s"], 1)}
    return equal_time


def bench_task(cfg, run_dir, experiment, multirun):
    b = cfg.bench
    task = HydraConfig.get().overrides.task
    base = [o for o in task if not o.startswith(("strategy=", "strategy.policy=", "strategy.scores="))]
    out_dir = Path(cfg.results_dir) / "bench"
    base += [f"results_dir={out_dir}", "progress=false"]
    variants = list(b.variants) or default_variants()
    if variants[0] != baseline():
        print_error(f"bench.variants must start with {baseline()} (the baseline)")
        sys.exit(2)
    try:
        runs, ref_epochs = _repeats(base, variants, b.repeats, run_dir, experiment, cfg.epochs)
        equal_time = _equal_time(base, runs, cfg, run_dir, experiment)
        print("fastdrop bench: price of scoring ...", file=sys.stderr, flush=True)
        cost = scoring_cost(Trainer(compose("config", overrides=base + [f"strategy={baseline()}"]), Path(run_dir) / "scoring",
                                    experiment=experiment))
        print("fastdrop bench: reference loop, alternated blocks ...", file=sys.stderr, flush=True)
        alt = alternated_blocks(Trainer(compose("config", overrides=base + variant_overrides(baseline())),
                                        Path(run_dir) / "reference-alternated", experiment=experiment))
    except user_errors() as e:
        print_error(str(e))
        sys.exit(2)
    table = summarise(runs, equal_time, b.max_drift, b.target_drop)
    ref = {**reference_line(runs[baseline()], ref_epochs), "alternated": alt}
    s0 = runs[baseline()][0]
    ident = f"{cfg.model.name}-w{cfg.model.width}-{s0['data']}-e{cfg.epochs}-s{cfg.seed}-{s0['device']}"
    target = accuracy_target(runs[baseline()], b.target_drop)
    md = write_report(out_dir, ident, task, cfg, s0, variants, target, cost, ref, table, equal_time, runs)
    print(md)
    return table
