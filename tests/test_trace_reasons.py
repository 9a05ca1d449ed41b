"""Every decision_reason tells the truth about the numbers it quotes (issue 22: `noise_level` logged
"conv8 still learning: P 0.900 < noise level 0.887" when conv8 was kept as the last conv unit). A property
test: random score / loss sequences through every registered policy, with its config from the real
composed one, and each reason checked against the Observation and the Decision it came with."""
from __future__ import annotations

import copy
import functools
import math
import random
import re

import pytest
from conftest import compose_config
from omegaconf import OmegaConf

from fastdrop.registry import POLICIES
from fastdrop.policies import Observation, make_policy

NUM = r"(-?(?:\d+\.\d+|\d+|nan|inf))"
NAMES = [f"conv{i}" for i in range(1, 13)]
# a comparison the reason states: "<a> <op> [words] <b>", where b may be spelt out: "0.5 x ln 10 = 1.151"
CLAIM = re.compile(NUM + r" (<|<=|>=|>) (?:[A-Za-z' ]+ )?" + NUM + r"(?: x ln \d+ = " + NUM + ")?")
OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
LOOSE = {"<": "<=", ">": ">=", "<=": "<=", ">=": ">="}  # what survives rounding both sides alike


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def _same(quoted: str, true: float | None) -> bool:
    """`quoted` is `true` printed with as many decimals as `quoted` has."""
    if true is None:
        return False
    if math.isnan(true) or math.isinf(true):
        return quoted == f"{true}"
    return abs(float(quoted) - true) <= 0.5 * 10 ** -_decimals(quoted) + 1e-12


def check(reason: str, obs: Observation, d, cfg) -> None:
    what = f"{reason!r} for {obs} -> {d}"
    fields = {"Mc": d.Mc, "Md": d.Md, "noise level": d.level, "train loss": obs.train_loss}
    for name, true in fields.items():
        for m in re.finditer(rf"\b{name} {NUM}", reason):
            assert _same(m.group(1), true), f"{name} quoted wrong: {what}"
    for m in re.finditer(rf"\bP {NUM}", reason):
        assert any(_same(m.group(1), v) for v in obs.p), f"P quoted wrong: {what}"
    for m in CLAIM.finditer(reason):
        a, op, b = m.group(1), m.group(2), m.group(4) or m.group(3)
        assert OPS[LOOSE[op]](float(a), float(b)), f"{a} {op} {b} is false: {what}"
    pairs = {"Mc": d.Mc, "P": obs.p[0], "train loss": obs.train_loss}
    for left, lv in pairs.items():  # the unrounded values behind "Mc x < Md y", "P x < noise level y", ...
        m = re.search(rf"\b{left} {NUM} (<|<=|>=|>) (Md|noise level|{NUM} x ln (\d+)) ", reason + " ")
        if m:
            rv = {"Md": d.Md, "noise level": d.level}.get(m.group(3))
            if rv is None:
                rv = float(m.group(4)) * math.log(int(m.group(5)))
            assert OPS[m.group(2)](lv, rv), f"{lv} {m.group(2)} {rv} is false: {what}"
    for m in re.finditer(rf"\({NUM} -> {NUM}\)", reason):
        if "rose" in reason:
            assert float(m.group(2)) >= float(m.group(1)), f"no rise: {what}"
    k = d.n_cut - obs.n_cut
    assert k >= 0 and d.n_cut <= obs.n_cut + len(obs.p), what
    assert (d.decision == "cut") == (k > 0), what
    if k:
        span = obs.names[0] if k == 1 else f"{obs.names[0]}-{obs.names[k - 1]}"
        assert re.search(rf"\bcut {span}\b", reason), f"the cut units are not named: {what}"
        if "P >= noise level" in reason:
            assert all(v >= d.level for v in obs.p[:k]), what
    if "last conv unit is never cut" in reason:
        assert len(obs.p) == 1 and k == 0, what


def _score(rng: random.Random, level: float) -> float:
    r = rng.random()
    if r < 0.03:
        return math.nan
    if r < 0.3:  # on or next to the noise level of 100 steps
        return min(1.0, max(0.0, level + rng.choice([-1e-4, 0.0, 1e-4, 4e-4])))
    return rng.random() ** rng.choice([0.2, 1.0, 3.0])


@functools.lru_cache(maxsize=None)
def _composed(name: str):
    return compose_config(["strategy=dropping", f"strategy.policy={name}"]).strategy


def _config(name: str, rng: random.Random):
    s = copy.deepcopy(_composed(name))  # the real composed config, composed once per policy
    settings = {"warmup": rng.randint(0, 2), "guard": rng.choice(["warn", "block", "off"]),
                "tolerance": rng.choice([0.0, 0.0, 0.01, -0.05]), "max_cut_fraction": rng.choice([0.25, 0.5, 1.0]),
                "rise_tolerance": rng.choice([0.0, 0.5]), "start_loss": rng.choice([0.5, 1.0]),
                "schedule": {rng.randint(0, 5): rng.randint(1, 6), rng.randint(3, 9): rng.randint(2, 11)}}
    for k, v in settings.items():
        OmegaConf.update(s, k, v, merge=False)
    problems = POLICIES[name].config_problems(s)
    assert not problems, f"policy {name} needs more config here (set it in _config): {problems}"
    return s


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_reason_matches_the_numbers_it_quotes(name):
    rng = random.Random(f"trace-{name}")
    for _ in range(300):
        cfg = _config(name, rng) if _ == 0 or rng.random() < 0.1 else cfg
        pol = make_policy(cfg)
        n_conv, n_cut = rng.randint(2, 10), 0
        n_cut = pol.before_training(n_cut, n_conv) if rng.random() < 0.5 else 0
        loss = rng.choice([0.05, 0.5, 2.3])
        for epoch in range(1, rng.randint(2, 14)):
            if n_cut >= n_conv:
                break
            steps = rng.choice([0, 1, 4, 100, 100, 100, 400])
            level = 1 - 1 / math.sqrt(steps) if steps else 0.9
            p = [_score(rng, level) for _ in range(n_conv - n_cut)]
            if rng.random() < 0.15:
                p = [p[0]] * len(p)  # all equal: Eq. 3 has no spread
            loss = rng.choice([loss * rng.uniform(0.5, 1.7), rng.uniform(0.01, 3.0), 1.1513, math.nan])
            k = n_conv - n_cut  # the peers' and ours' inputs: run length, AutoFreeze's G, the probe's drift
            g = [rng.choice([rng.uniform(0.1, 10.0), 0.0, math.nan]) for _ in range(k)]
            drift = [rng.choice([rng.uniform(0.0, 0.2), rng.uniform(0.2, 1.0), math.nan]) for _ in range(k)]
            obs = Observation(epoch, p, NAMES[n_cut:n_conv], n_cut, loss, 10, steps, rng.randint(epoch, 16), g, drift)
            d = pol.decide(obs)
            check(d.decision_reason, obs, d, cfg)
            n_cut = d.n_cut


def test_the_last_conv_unit_is_kept_with_a_true_reason():
    """The trace of issue 22: conv1-conv7 cut, conv8 alone in the head at P 0.900 >= level 0.887."""
    s = compose_config(["strategy=dropping", "strategy.policy=noise_level", "strategy.warmup=0"]).strategy
    pol = make_policy(s)
    obs = Observation(20, [0.9], ["conv8"], 7, 0.1, 10, 78)  # 1 - 1/sqrt(78) = 0.887
    d = pol.decide(obs)
    assert d.decision == "keep" and d.decision_reason == "conv8 kept: the last conv unit is never cut"
    check(d.decision_reason, obs, d, s)
