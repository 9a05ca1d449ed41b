"""The decision figure: why a run cut where it did. Per epoch, for a run with scores, the standardised
score P'_l of every unit still trained (Eq. 3, the scale the paper's rule decides on) and the stored
median Md of the units dropped before (the median rule's bar); for a policy with a `trace` (noise_level:
raw P against the noise level; drift: each unit's output drift against the floor), what it decided on;
cut epochs are marked with what was cut and why. README: "Reading the decision figure"."""
from __future__ import annotations

import textwrap
from pathlib import Path

from ..registry import POLICIES
from .common import _finite
from .style import new_figure


def _unit_lines(ax, hist: list, names: list, key: str, cmap, labels: bool) -> None:
    """One line per unit of history[key] (P' or P) over the epochs it was trained, input side first."""
    for i, u in enumerate(names):
        pts = [(h["epoch"], h[key][u]) for h in hist if _finite((h.get(key) or {}).get(u))]
        if pts:
            ax.plot(*zip(*pts), color=cmap(0.78 * i / max(len(names) - 1, 1)), lw=1.2, marker="o", ms=3,
                    label=u if labels else None)


def _score_panel(ax, hist: list, names: list, cmap) -> None:
    """P'_l of the units still trained and the median rule's bar Md."""
    _unit_lines(ax, hist, names, "scores_std", cmap, labels=True)
    md = [(h["epoch"], h["Md"]) for h in hist if _finite(h.get("Md"))]
    if md:
        ax.step(*zip(*md), where="mid", color="black", lw=2, ls="--", label="Md (median rule's bar)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("standardised score P' (Eq. 3) of the units still trained")
    ax.legend(fontsize=7, loc="lower left", ncols=2)


def _trace_panel(ax, hist: list, names: list, cmap, trace: tuple, labels: bool) -> None:
    """What the policy decided on (its `trace` key per unit) against its level."""
    key, ylabel, level_label = trace
    _unit_lines(ax, hist, names, key, cmap, labels=labels)
    lv = [(h["epoch"], h["level"]) for h in hist if _finite(h.get("level"))]
    if lv:
        ax.plot(*zip(*lv), color="black", lw=2, ls="--", label=level_label)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7 if labels else 8, loc="best", ncols=2 if labels else 1)


def decision_figure(run: dict, title: str, path: Path) -> bool:
    hist = run.get("history") or []
    if not any(h.get("decision") for h in hist):
        return False
    trace = getattr(POLICIES.get(run.get("policy") or ""), "trace", None)
    # a policy that does not decide on the scores (drift, the peers) runs without them: its trace panel alone
    scored = any(h.get("scores_std") for h in hist)
    traced = trace is not None and any(h.get(trace[0]) for h in hist)
    keys = ["scores_std"] + ([trace[0]] if traced else [])
    names = [u for u in (run.get("unit_names") or []) if any(u in (h.get(k) or {}) for h in hist for k in keys)]
    fig, axes = new_figure(max(1, scored + traced))
    import matplotlib

    cmap = matplotlib.colormaps["plasma"]
    if scored:
        _score_panel(axes[0], hist, names, cmap)
    if traced:
        _trace_panel(axes[-1], hist, names, cmap, trace, labels=not scored)
    for a in axes:
        a.set_xlabel("epoch")
        for h in hist:
            if h.get("decision") == "cut":
                a.axvline(h["epoch"], color="red", alpha=0.5, lw=1.5)
                a.annotate(h["decision_reason"].split(" (")[0], (h["epoch"], 1.0), xycoords=("data", "axes fraction"),
                           rotation=90, va="top", ha="right", fontsize=7, color="red")
    fig.suptitle("\n".join(textwrap.wrap(title, 90)) + "\nred lines: cuts (at the end of the epoch)", fontsize=9)
    fig.savefig(path, dpi=110)
    return True
