"""The bench's report: <results_dir>/bench/<name>.md (the table and how it was measured) and .json."""
from __future__ import annotations

import json
from pathlib import Path

from tabulate import tabulate

from ..files import atomic_write_text


def write_report(out_dir: Path, ident: str, task, cfg, s0: dict, variants: list[str], target: float, cost: dict,
                 ref: dict, table: list[dict], equal_time: dict, runs: dict) -> str:
    """Write the bench's markdown and JSON; returns the markdown."""
    b = cfg.bench
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
          f"- reference loop (hand-written SGD on the same module, data and optimiser), 3 epochs after each sgd repeat: "
          f"fastest epoch {ref['reference_epoch_s']:.2f} s, sgd's fastest {ref['sgd_epoch_s']:.2f} s: sgd / reference "
          f"= {ref['sgd_over_reference']:.3f}\n"
          + _alternated(ref.get("alternated")) + "\n"
          + tabulate(table, headers="keys", tablefmt="github") + "\n")
    atomic_write_text(out_dir / f"{ident}.md", md)
    atomic_write_text(out_dir / f"{ident}.json", json.dumps(
        {"config": ident, "rows": table, "equal_time": equal_time, "scoring": cost, "reference": ref,
         "run_ids": {v: [r["run_id"] for r in rs] for v, rs in runs.items()}}, indent=1) + "\n")
    return md


def _alternated(alt: dict | None) -> str:
    """The reference line that drift cannot explain (both loops in turn, one process): the target's measure."""
    if not alt:
        return ""
    lo, hi = alt["ratio_range"]
    return (f"- reference loop, in one process ({alt['blocks']} alternated pairs of {alt['steps_per_block']}-step blocks): "
            f"sgd step {1e3 * alt['sgd_step_s']:.1f} ms, reference step {1e3 * alt['reference_step_s']:.1f} ms: sgd / "
            f"reference = **{alt['sgd_over_reference']:.3f}** (pairs {lo:.3f}-{hi:.3f}; target <= 1.05)\n")
