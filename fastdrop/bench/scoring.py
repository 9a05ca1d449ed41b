"""The price of scoring (Eqs. 1-2 accumulated after every backward), measured in one process: blocks of
sgd steps on the same batches with and without the score accumulation, alternated, medians compared.
Whole-run comparisons on a shared machine drift by more than the few per cent being measured."""
from __future__ import annotations

import itertools
import statistics
import time

from ..strategies.base import synchronize


def time_steps(trainer, batches, score: bool) -> float:
    """Seconds for `trainer.step` over `batches`, the device synchronised on both sides (so queued GPU work
    is neither left out nor billed to the next block)."""
    synchronize(trainer.device)
    t0 = time.perf_counter()
    for state, y in batches:
        trainer.step(state, y, score)
    synchronize(trainer.device)
    return time.perf_counter() - t0


def scoring_cost(trainer, steps: int = 10, repeats: int = 5) -> dict:
    """Median time of a block of sgd steps with and without score accumulation, in one process."""
    strat = trainer.strategy
    batches = list(itertools.islice(strat.batches(1), steps))
    strat.begin_epoch(1)
    time_steps(trainer, batches, True)  # warm-up
    with_s, without = [], []
    for _ in range(repeats):
        with_s.append(time_steps(trainer, batches, True))
        without.append(time_steps(trainer, batches, False))
    a, b = statistics.median(with_s), statistics.median(without)
    return {"step_s_with_scores": a / steps, "step_s_without_scores": b / steps,
            "scoring_cost_pct": 100 * (a - b) / b}
