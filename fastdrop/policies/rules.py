"""The Learn&Drop decision rule as pure functions of score vectors (paper Sect. 3.1-3.2, Algorithm 1).

- `layer_score`: P_l = 1 - sum_i |S_i| / sum_i A_i with S_i = sum_j g_ij and A_i = sum_j |g_ij| (Eq. 2).
  A layer whose gradients were all zero did not move at all: P = 1 (it has stopped learning).
- `standardise`: P'_l = (P_l - mean) / std over the head's units (Eq. 3); population std. With fewer
  than two units, or all scores equal (std 0), every P' is 0 (no unit stands out, nothing is dropped).
  A NaN anywhere makes every P' NaN, and NaN never satisfies a comparison below, so it never drops.
- `candidates_eq4`: n* = min t in [0, n-2] with P'_t > 0 and P'_{t+1} < 0 (Eq. 4); candidates are units
  0..n*; none if P'_0 <= 0 or no such t. Index n-1 (the last conv) is never a candidate.
- `candidates_max_prefix`: the paper's other wording, "the sub-vector of maximum sum starting from the
  first element": the shortest prefix (ending at most at n-2) with the largest positive sum, again only
  when P'_0 > 0. It differs
  from Eq. 4 when a negative dip is followed by larger positives: [1, -0.5, 2, -2.5] gives 1 unit under
  Eq. 4 but 3 under the prefix sum; and it ignores exact zeros that stop Eq. 4.
- `median_rule`: drop iff median(candidates' P') >= median(P' stored for units dropped before); the
  first drop has no previous median.
- `learning_started`: a network that has learned nothing scores a train loss of ln K (K classes, a
  uniform guess); it has started once the epoch's loss is at most `frac` x ln K.
- `noise_level` / `candidates_at_noise` / `group_cap` (the `noise_level` policy): the P of pure noise
  over N steps, 1 - 1/sqrt(N); the leading units with P >= that level (the last conv never); and at most
  ceil(frac x (n - 1)) of the n head units per decision.
- `parse_schedule` / `schedule_cut`: the fixed schedule of the paper's reference [8], {epoch: leading
  units cut}; an entry for epoch 0 cuts before training starts, and a schedule may cut every conv unit
  (a linear probe).
- `scores_settled` / `batch_growth`: the paper's future work (Sect. 6), as options: end the warm-up
  once no unit's score moves by more than a tolerance between two epochs, and grow the batch as the
  head gets cheaper (by the ratio of full to head training work, in powers of two, up to a cap).
All counts are relative to the first unit of the current head.
"""
from __future__ import annotations

import math
from statistics import median
from typing import Mapping, Sequence


def layer_score(sum_abs_s: float, sum_a: float) -> float:
    if not (math.isfinite(sum_abs_s) and math.isfinite(sum_a)):
        return math.nan
    if sum_a <= 0.0:
        return 1.0
    return min(1.0, max(0.0, 1.0 - sum_abs_s / sum_a))


def aapd(sum_a: float, n_weights: int) -> float:
    return sum_a / n_weights


def standardise(p: Sequence[float]) -> list[float]:
    n = len(p)
    if any(not math.isfinite(v) for v in p):
        return [math.nan] * n
    if n < 2:
        return [0.0] * n
    mean = sum(p) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in p) / n)
    if std == 0.0:
        return [0.0] * n
    return [(v - mean) / std for v in p]


def candidates_eq4(z: Sequence[float]) -> int:
    if len(z) < 2 or not z[0] > 0:
        return 0
    for t in range(len(z) - 1):
        if z[t] > 0 and z[t + 1] < 0:
            return t + 1
    return 0


def candidates_max_prefix(z: Sequence[float]) -> int:
    if len(z) < 2 or not z[0] > 0:
        return 0
    best, best_k, s = 0.0, 0, 0.0
    for k in range(len(z) - 1):
        s += z[k]
        if not math.isfinite(s):
            return 0
        if s > best:
            best, best_k = s, k + 1
    return best_k


CANDIDATE_RULES = {"eq4": candidates_eq4, "max_prefix_sum": candidates_max_prefix}


def median_rule(candidate_z: Sequence[float], dropped_z: Sequence[float]) -> bool:
    if not candidate_z or any(not math.isfinite(v) for v in candidate_z):
        return False
    if not dropped_z:
        return True
    return median(candidate_z) >= median(dropped_z)


def decide(p_head: Sequence[float], dropped_z: Sequence[float], rule: str = "eq4") -> tuple[int, list[float], bool]:
    """The paper's decision on the head's raw scores: the candidates n* (Eq. 4, or `rule`), the
    standardised scores P' they were found on (Eq. 3), and whether the median rule lets them be dropped."""
    z = standardise(p_head)
    n = CANDIDATE_RULES[rule](z)
    return n, z, bool(n) and median_rule(z[:n], dropped_z)


def learning_started(train_loss: float, num_classes: int, frac: float) -> bool:
    return math.isfinite(train_loss) and train_loss <= frac * math.log(max(num_classes, 2))


def noise_level(steps: int) -> float:
    return 1.0 - 1.0 / math.sqrt(steps) if steps > 0 else math.inf


def candidates_at_noise(p: Sequence[float], level: float) -> int:
    n = 0
    while n < len(p) - 1 and p[n] >= level:  # NaN compares False: never a candidate
        n += 1
    return n


def group_cap(n_head: int, frac: float) -> int:
    return max(1, math.ceil(frac * (n_head - 1)))


def parse_schedule(schedule) -> dict[int, int]:
    """`strategy.schedule` ({epoch: units}, keys and values as Hydra gives them; None: empty) as ints."""
    return {int(k): int(v) for k, v in dict(schedule or {}).items()}


def schedule_cut(schedule: Mapping[int, int], epoch: int, n_cut: int, n_conv: int) -> int:
    """Units cut from the end of `epoch` on (epoch 0: before training starts): the schedule's entry if it
    asks for more than already cut, at most every conv unit ({0: n_conv} is a linear probe)."""
    want = schedule.get(epoch)
    if want is None:
        return n_cut
    return max(n_cut, min(int(want), n_conv))


def scores_settled(prev: Sequence[float] | None, cur: Sequence[float], tol: float) -> bool:
    """True when every unit's P moved by less than `tol` since the previous epoch."""
    if prev is None or len(prev) != len(cur) or not cur:
        return False
    diffs = [abs(a - b) for a, b in zip(prev, cur)]
    return all(math.isfinite(d) for d in diffs) and max(diffs) < tol


def backward_work(unit_macs: Sequence[float], first_trained: int) -> float:
    """Backward MACs per sample when units [first_trained:] train: a weight gradient for each (its
    forward MACs) and an input gradient for each but the first, whose input needs none."""
    trained = unit_macs[first_trained:]
    return 2 * sum(trained) - trained[0]


def batch_growth(full_work: float, head_work: float, batch_size: int, max_batch_size: int) -> int:
    """Factor (a power of two) by which the batch may grow when a step costs head_work instead of
    full_work: the largest 2^k <= full_work / head_work with batch_size * 2^k <= max_batch_size."""
    if head_work <= 0 or full_work <= head_work:
        return 1
    k = int(math.floor(math.log2(full_work / head_work)))
    f = 2 ** max(0, k)
    while f > 1 and batch_size * f > max_batch_size:
        f //= 2
    return f


# -- the peers' rules (fastdrop.policies.freezeout, autofreeze, linear) ----------------------------------------------------

FREEZEOUT_SHAPES = {"linear": lambda x: x, "squared": lambda x: x ** 2, "cubic": lambda x: x ** 3}


def freezeout_times(n_units: int, t0: float, shape: str) -> list[float]:
    """FreezeOut (Brock et al. 2017): unit i of units 0..L (L = the classifier) freezes at the share
    r_i = f(t0 + (1 - t0) i / L) of the run, f linear, squared or cubic; the classifier at r_L = 1."""
    last = max(n_units - 1, 1)
    f = FREEZEOUT_SHAPES[shape]
    return [f(t0 + (1.0 - t0) * i / last) for i in range(n_units)]


def freezeout_lr(progress: float, r: float, lr0: float, scaled: bool) -> float:
    """A unit's learning rate at `progress` (share of the run done): a cosine from lr0 / r (scaled) or
    lr0 down to 0 at its freeze time r, 0 after it."""
    if progress >= r:
        return 0.0
    start = lr0 / r if scaled else lr0
    return 0.5 * start * (1.0 + math.cos(math.pi * progress / r))


def freezeout_cut(times: Sequence[float], progress: float, n_conv: int) -> int:
    """Leading conv units whose freeze time has come by `progress` (the times rise with depth)."""
    n = 0
    while n < n_conv and times[n] <= progress + 1e-9:
        n += 1
    return n


def autofreeze_rates(g_prev: Sequence[float], g: Sequence[float]) -> list[float]:
    """AutoFreeze (Liu et al. 2021): each unit's gradient-norm change rate |G_prev - G| / G_prev, with
    G = sum over the unit's weights of |sum over the interval's steps of g| (the numerator of Eq. 2)."""
    return [abs(a - b) / a if a > 0 else math.inf for a, b in zip(g_prev, g)]


def autofreeze_cut(rates: Sequence[float]) -> tuple[int, float]:
    """(leading units to cut, tau): tau = median rate over the head; cut the units before the first one
    with rate >= tau, never the last conv unit. A NaN rate stops the cut there."""
    if not rates or any(math.isnan(r) for r in rates):  # a NaN norm: no median to trust
        return 0, math.nan
    tau = median(rates)
    n = 0
    while n < len(rates) - 1 and rates[n] < tau:  # NaN compares False
        n += 1
    return n, tau


def linear_cut(progress: float, start: float, n_units: int, n_conv: int, level: float = 1.0) -> int:
    """Composer's LayerFreezing: from `start` (share of the run) a share of the units that grows linearly to
    `level` x all of them at the end, int(share x units), at most every conv unit."""
    share = min(1.0, max(0.0, (progress - start) / (1.0 - start))) * level if start < 1 else 0.0
    return min(n_conv, int(share * n_units + 1e-9))


# -- ours: feature drift (fastdrop.policies.drift) ---------------------------------------------------

def relative_drift(new, old) -> float:
    """||new - old|| / ||new||: how much a unit's output on the probe moved over the epoch (NaN-safe)."""
    n = float(new.norm())
    return float((new - old).norm()) / n if n > 0 else 0.0


def fit_gate(loss: float, first_loss: float, share: float) -> bool:
    """The network has fit its training set: the epoch's train loss is at most `share` x the first
    epoch's (a ratio of the run's own losses, so neither the class count nor the loss scale enters).
    share <= 0 turns the gate off; a NaN loss never opens it."""
    return share > 0 and first_loss > 0 and loss <= share * first_loss


AUGMENTED_STALL_LR = 0.5  # drift's stall test on an augmented split: once the LR is at most half its peak


def stall_lr_share(share: float | None, augmented: bool) -> float:
    """The share of the peak LR under which drift's stall test may cut: as configured, else
    AUGMENTED_STALL_LR for an augmented training split (there a cut at the peak rate cost up to 5 points)
    and 1 (any rate) without."""
    return share if share is not None else (AUGMENTED_STALL_LR if augmented else 1.0)


def lr_has_dropped(lr: float, peak: float, share: float) -> bool:
    """Whether the epoch's learning rate is at most `share` x the run's peak so far (the schedule has
    lowered it); an unknown rate (NaN) counts as dropped, as the rule stood before it was asked."""
    return math.isnan(lr) or lr <= share * peak


def cooled_units(cooled: int, n_cut: int, n_head: int, share: float) -> int:
    """Leading chain units cooled after one more epoch of the open fit gate: `share` of the cuttable head
    (every head conv unit but the last) on top of what is already cooled or cut, never the last conv."""
    n_conv = n_cut + n_head
    return min(n_conv - 1, max(cooled, n_cut) + math.ceil(share * (n_head - 1)))


def cooled_lrs(lr: float, n_units: int, cooled: int, factor: float) -> list[float]:
    """Per-unit rates: the leading `cooled` units at `factor` x the epoch's rate, the rest at it."""
    return [lr * factor] * cooled + [lr] * (n_units - cooled)


def drift_cut(d: Sequence[float], first: Sequence[float], prev: Sequence[float] | None, floor: float,
              settle: float, stall: float) -> int:
    """Leading head units whose features have stopped moving (the last conv never): a unit's drift d
    (relative change of its output over the epoch) is at most `floor`, or it has fallen to `settle` x
    its first epoch's drift and no longer falls (d >= `stall` x the previous epoch's; a NaN there, or
    prev None: only the floor counts)."""
    n = 0
    while n < len(d) - 1:
        x = d[n]
        stalled = prev is not None and x <= settle * first[n] and x >= stall * prev[n]
        if not (x <= floor or stalled):  # NaN: neither, so it stops the cut
            break
        n += 1
    return n
