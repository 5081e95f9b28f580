"""Experiments on the training rules: the partial-supervision sweep (paper Fig. 5 right), the
initial gradient signs of b_j and d_j (the confused middle) and the best tabular RLVR policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import optimize

from .. import checks, memory
from ..errors import CostError, InputError
from ..exact import expected_hitting_time
from ..graph import PathStar, path_star
from ..policy import rlvr
from . import loop
from .methods import train_sft
from .objectives import backward_supervision, rlvr_gradient
from .parametrisation import PARAMETER_OF_KIND, DepthParameters, Parametrisation, pretrained_logits


@dataclass(frozen=True)
class SupervisionSweep:
    """Final exact hitting times (averaged over leaves) of SFT with a fraction p of backward
    states supervised toward backtracking: ``times[i, r]`` for ``p[i]`` and draw r."""

    graph: dict
    p: np.ndarray
    times: np.ndarray
    iterations: int
    lr: float
    seed: int

    @property
    def mean(self) -> np.ndarray:
        return self.times.mean(axis=1)


def partial_supervision_sweep(
    p: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    draws: int = 5,
    W: int = 6,
    K: int = 6,
    L: int = 5,
    iterations: int = 500,
    lr: float = 100.0,
    seed: int = 0,
) -> SupervisionSweep:
    """Paper Fig. 5 (right): for each p and each of ``draws`` draws of the supervised backward
    states (one seeded numpy Generator for the whole sweep), train SFT for ``iterations`` steps
    and record the final exact hitting time averaged over the leaves."""
    graph = path_star(W, K, L)
    fractions = np.array([checks.real("p", f, 0.0, 1.0) for f in p])
    if not len(fractions):
        raise InputError("p must name at least one fraction")
    draws = checks.whole("draws", draws, 1)
    iterations = checks.iterations("iterations", iterations)
    memory.require(8 * len(fractions) * draws, f"draws: {len(fractions)} fractions of {draws:,} draws (their "
                   "hitting times)", "draws")
    trainings = len(fractions) * draws * iterations
    if trainings > checks.MAX_ITERATIONS:
        raise CostError(f"draws: {len(fractions)} fractions of {draws:,} draws of {iterations:,} iterations are "
                        f"{trainings:,} SFT iterations, more than the {checks.MAX_ITERATIONS:,} a training may take; "
                        "choose fewer draws, fractions or iterations", "draws")
    rng = np.random.default_rng(checks.seed("seed", seed))
    times = np.empty((len(fractions), draws))
    for i, fraction in enumerate(fractions):
        for r in range(draws):
            mask = backward_supervision(graph, fraction, rng)
            with loop.reporting(lambda done, total: None):  # the draws are the progress
                run = train_sft(graph, iterations, lr, supervised_backward=mask, record_every=iterations)
            times[i, r] = run.hitting_time[-1]
            loop.report(i * draws + r + 1, len(fractions) * draws)
    return SupervisionSweep(graph.describe(), fractions, times, iterations, lr, seed)


# --------------------------------------------------------------------------- the confused middle


@dataclass(frozen=True)
class GradientSigns:
    """dJ/d(desired-move logit) at a policy, summed over the states of each kind and depth and
    over branches: ``da[j-1]`` at R+_j, ``db`` at R-_j, ``dc`` at L+_j, ``dd`` at L-_j. Each has the
    sign of the derivative of J with respect to the per-depth parameter (a_j, ..., d_j) of the
    tied family, since d(desired mass)/d(desired logit) = mass (1 - mass) > 0."""

    graph: dict
    depth: np.ndarray
    da: np.ndarray
    db: np.ndarray
    dc: np.ndarray
    dd: np.ndarray

    @property
    def sign_b(self) -> np.ndarray:
        return np.sign(self.db).astype(int)

    @property
    def sign_d(self) -> np.ndarray:
        return np.sign(self.dd).astype(int)

    def table(self) -> list[dict]:
        """One row per depth: depth, sign of db, sign of dd and the raw values."""
        return [{"depth": int(j), "sign_b": int(sb), "sign_d": int(sd), "db": float(b), "dd": float(d)}
                for j, sb, sd, b, d in zip(self.depth, self.sign_b, self.sign_d, self.db, self.dd)]

    @property
    def confused_depths(self) -> list[int]:
        """Depths where db or dd is negative."""
        return [int(j) for j, b, d in zip(self.depth, self.db, self.dd) if b < 0 or d < 0]


def initial_gradient_signs(graph: PathStar, beta: float = 1.0, logits: np.ndarray | None = None) -> GradientSigns:
    """The RLVR gradient of the desired moves per depth at the pretrained policy (or ``logits``):
    where db_j or dd_j < 0, the first RLVR steps push b_j or d_j the wrong way."""
    start = pretrained_logits(graph) if logits is None else logits
    gradient = rlvr_gradient(graph, start, beta)
    per_state = DepthParameters.build(graph).per_state(gradient)
    sums = {}
    for kind, (name, _) in PARAMETER_OF_KIND.items():
        states = np.flatnonzero(graph.state_kind == kind)
        sums[name] = np.bincount(graph.state_depth[states] - 1, weights=per_state[states],
                                 minlength=max(graph.depths))
    return GradientSigns(graph.describe(), np.arange(1, max(graph.depths) + 1),
                         sums["a"], sums["b"], sums["c"], sums["d"])


def rlvr_optimum(graph: PathStar, parametrisation: Parametrisation = "tabular") -> float:
    """The smallest mean hitting time (leaves as targets) RLVR can reach in a parametrisation.
    Tied: the a = b = c = d = 1 policy. Tabular (derived by hand, checked against the exact
    solver in tests/test_training.py): with
    a = b = d = 1 and c_j = 1 for j >= 2, let g_i = c_1 of branch i (go into branch i rather than
    U-turn back to the fork). Per fork visit the walker picks a branch uniformly; entering a wrong
    branch costs 4K_i + 2 steps back to the fork, a U-turn 2, a successful entry 1 + 2K_x. Wald's
    identity over the W / g_x fork visits gives
        E_x[T] = (2W + 4 sum_{i != x} K_i g_i) / g_x + 2K_x - 1, so
        mean_x E_x[T] = (2W + 4 S) H / W - 2 mean(K) - 1,  S = sum K_i g_i, H = sum 1 / g_i,
    minimised by g_i = min(1, lam / sqrt(K_i)). With every g_i = 1 it is the a = b = c = d = 1
    value, which shallow-and-deep mixtures beat by entering deep branches less often."""
    if parametrisation == "tied" or graph.is_symmetric:
        return float(np.mean([expected_hitting_time(rlvr(graph), x) for x in graph.leaves]))
    K = np.asarray(graph.depths, float)
    W = len(K)

    def time(lam: float) -> float:
        g = np.minimum(1.0, lam / np.sqrt(K))
        return (2 * W + 4 * (K * g).sum()) * (1 / g).sum() / W - 2 * K.mean() - 1

    best = optimize.minimize_scalar(time, bounds=(1e-3, np.sqrt(K.max())), method="bounded",
                           options={"xatol": 1e-12})
    return float(best.fun)


# --------------------------------------------------------------------------- Monte Carlo methods
