"""The price of scoring (Eqs. 1-2 accumulated after every backward), measured in one process: blocks of
sgd steps on the same batches with and without the score accumulation, alternated, medians compared.
Whole-run comparisons on a shared machine drift by more than the few per cent being measured."""
from __future__ import annotations

import itertools
import statistics
import time

from ..strategies.base import synchronize


def scoring_cost(trainer, steps: int = 10, repeats: int = 5) -> dict:
    """Median time of a block of sgd steps with and without score accumulation, in one process."""
    strat, dev = trainer.strategy, trainer.device
    batches = list(itertools.islice(strat.batches(1), steps))
    strat.begin_epoch(1)

    def block(score: bool) -> float:
        synchronize(dev)
        t0 = time.perf_counter()
        for state, y in batches:
            trainer.step(state, y, score)
        synchronize(dev)
        return time.perf_counter() - t0

    block(True)  # warm-up
    with_s, without = [], []
    for _ in range(repeats):
        with_s.append(block(True))
        without.append(block(False))
    a, b = statistics.median(with_s), statistics.median(without)
    return {"step_s_with_scores": a / steps, "step_s_without_scores": b / steps,
            "scoring_cost_pct": 100 * (a - b) / b}
