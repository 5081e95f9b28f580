"""What every figure shares: the variants' colours, markers and names, axis words, new figures,
plain ticks and the words of titles."""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import (FixedLocator, FormatStrFormatter, LogLocator, NullFormatter, NullLocator,
                               ScalarFormatter)

from ..study import VARIANTS, Study
from ..study.fits import Fit

HEADLINE = ("pretrained", "sft", "sft+search", "rlvr", "rlvr+search")
MARKERS = {"pretrained": "s", "sft": "o", "sft+search": "D", "rlvr": "^", "rlvr+search": "v", "distilled": "P"}
COLOURS = {"pretrained": "0.45", "sft": "C3", "sft+search": "C1", "rlvr": "C0", "rlvr+search": "C9",
           "distilled": "C2", "sft+detours": "C4", "sft+pretrained": "C5", "rft": "C6", "sft->rlvr": "C8"}
WORDS = {"pretrained": "pretrained", "sft": "SFT", "sft+search": "SFT + search", "rlvr": "RLVR",
         "rlvr+search": "RLVR + search", "distilled": "distilled", "sft+detours": "SFT with detours",
         "sft+pretrained": "SFT + pretrained traces", "rft": "RFT", "sft->rlvr": "SFT then RLVR"}
AXIS_WORDS = {"W": "W (branches)", "K": "K (diamonds per branch)", "L": "L (lanes per diamond)"}
PARAMETER_WORDS = {"branching": "branching b (children per node)", "depth": "depth h (levels below the root)",
                   "degree": "degree d", "length": "arm length l (edges)", "rows": "rows m", "columns": "columns n",
                   "nodes": "nodes n", **AXIS_WORDS}
METHOD_WORDS = {"pretrain": "pretraining on world-model walks", "sft": "SFT (exact cross-entropy)",
                "rlvr": "RLVR (exact policy gradient)", "rlvr-mc": "RLVR (Monte Carlo policy gradient)",
                "ppo": "PPO (Monte Carlo)", "distill": "distillation (cross-entropy on teacher traces)",
                "rft": "rejection-sampling fine-tuning"}
TIME = "hitting time T (transitions)"
BARS = 60  # about this many histogram bars up to the 99.5% quantile


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def value_ticks(axes, values, log: bool = False) -> None:
    """x ticks at these values (thinned to at least 1/25 of the span apart), written plainly
    (log axes would print 10^0.6)."""
    values = sorted(set(values))
    position = np.log(values) if log else np.asarray(values, float)
    gap = (position[-1] - position[0]) / 25
    kept = [0]
    for i in range(1, len(values)):
        if position[i] - position[kept[-1]] >= gap:
            kept.append(i)
    if kept[-1] != len(values) - 1:
        kept[-1] = len(values) - 1
    target = axes.xaxis
    target.set_major_locator(FixedLocator([values[i] for i in kept]))
    target.set_major_formatter(ScalarFormatter())
    target.set_minor_locator(NullLocator())


def plain_log_ticks(axes) -> None:
    """Plain numbers at 1, 2 and 5 per decade (every digit within one decade) on a log y axis
    that spans less than two decades, where powers of ten alone would leave it nearly bare."""
    low, high = axes.get_ylim()
    if high / low < 100:
        subs = (1.0, 2.0, 5.0) if high / low > 4 else tuple(range(1, 10))
        axes.yaxis.set_major_locator(LogLocator(10, subs=subs))
        axes.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        axes.yaxis.set_minor_formatter(NullFormatter())


def policy_words(study: Study, variant: str) -> str:
    """``SFT (converged limit)``, ``RLVR (trained)``, ``pretrained``."""
    if variant == "pretrained":
        return "pretrained"
    trained = VARIANTS[variant].route is not None or study.parameters.get("policies") == "trained"
    return f"{WORDS.get(variant, variant)} ({'trained' if trained else 'converged limit'})"


def policies_words(study: Study) -> str:
    return "trained policies" if study.parameters.get("policies") == "trained" else "converged limits"


def target_words(target) -> str:
    return "uniform over the leaves" if target in (None, "leaves") else str(target)


def fit_words(fit: Fit | None) -> str:
    """The fitted growth in words (wrapped), with its interval only where it is statistical."""
    if fit is None:
        return "no fit (too few points)"
    name = "growth factor per unit" if fit.kind == "exponential" else "slope"
    if fit.source == "exact":
        text = f"fit to exact values: {name} {fit.estimate:.4g} (no sampling error), R^2 = {fit.r2:.6f}"
    else:
        text = f"Monte Carlo fit: {name} {fit.estimate:.4g}, 95% CI [{fit.ci_low:.4g}, {fit.ci_high:.4g}]"
    verdict = {True: ": agrees", False: ": disagrees", None: ""}[fit.agrees]
    return textwrap.fill(f"{text}; stated {fit.stated}{verdict}", 95)


def as_number(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan
