"""The traces cross-entropy training learns from, as expected move counts: one number per CSR
entry, the expected number of times one trace makes that move (targets averaged). The gradient
of the cross-entropy of any such counts is ``objectives.cross_entropy_gradient``; it is exact
where the counts are (golden paths, a policy's traces solved exactly) and a Monte Carlo estimate
where the traces are sampled by the engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import checks, exact, planning
from ..graph import START_STATE, Graph
from ..policy import Policy, pretrained
from ..result import GradientStatistics
from .objectives import golden_counts, golden_path_counts


def golden(graph: Graph, targets: Sequence[int] | None = None) -> np.ndarray:
    """Golden shortest paths (what SFT learns from)."""
    return golden_counts(graph, None, targets)


def policy_traces(policy: Policy, targets: Sequence[int] | None = None) -> np.ndarray:
    """Exact: the traces of ``policy`` from the start until it hits the target, the target drawn
    uniformly from ``targets`` (default the graph's leaves): expected visits times the policy's
    move probabilities."""
    graph = policy.graph
    targets = tuple(graph.leaves if targets is None else targets)
    visits = sum(exact.expected_visits(policy, t) for t in targets) / len(targets)
    return visits[graph.entry_state] * policy.probabilities


def world(graph: Graph, targets: Sequence[int] | None = None) -> np.ndarray:
    """Exact: random walks of the world model (uniform moves) from the start until a target:
    the data of pretraining."""
    return policy_traces(pretrained(graph), targets)


def sampled(policy: Policy, rollouts: int, seed: int, backend: str = "numba",
            threads: int | None = None, targets: Sequence[int] | None = None
            ) -> tuple[np.ndarray, GradientStatistics]:
    """Monte Carlo: the move counts of ``rollouts`` traces of ``policy`` sampled by the engine
    (targets cycling through ``targets``, default the leaves; rollouts as
    ``planning.gradient_statistics`` runs them), per trace, and the statistics they came from."""
    stats = planning.gradient_statistics(policy, targets, rollouts=rollouts, seed=seed, backend=backend,
                                         threads=threads)
    return stats.visits.astype(float) / stats.rollouts, stats


def kept(stats: GradientStatistics) -> np.ndarray:
    """The move counts of the traces that hit their target (the censored ones are rejected),
    per kept trace: what rejection-sampling fine-tuning learns from. Zero if none hit."""
    return stats.hit_visits.astype(float) / max(stats.hits, 1)


def mixture(base: np.ndarray, other: np.ndarray, fraction: float) -> np.ndarray:
    """Traces drawn from ``other`` with probability ``fraction``, else from ``base``."""
    fraction = checks.real("mix_fraction", fraction, 0.0, 1.0)
    if fraction == 0:
        return base.copy()
    return (1.0 - fraction) * base + fraction * other


def golden_by_target(graph: Graph, targets: Sequence[int] | None = None) -> dict[int, np.ndarray]:
    """The golden-path move counts of each target on its own (their mean is :func:`golden`)."""
    return {int(x): golden_path_counts(graph, [x]) for x in (graph.leaves if targets is None else targets)}


def detours(graph: Graph, rate: float, targets: Sequence[int] | None = None) -> np.ndarray:
    """Golden paths with detours: before each golden move, with probability ``rate`` the trace
    first makes a wrong move (uniform over the moves that are not golden there) and undoes it at
    once by the U-turn, then makes the golden move from where the U-turn left it; targets
    averaged. The counts are exact. Rate 0 gives :func:`golden`."""
    rate = checks.real("detour_rate", rate, 0.0, 1.0)
    rows = graph.entry_state
    reverse = np.where(graph.next_state % 2 == 1, graph.next_state + 1, graph.next_state - 1)
    total = np.zeros(graph.n_transitions)
    per_target = golden_by_target(graph, targets)
    for counts in per_target.values():
        decisions = np.bincount(rows, weights=counts, minlength=graph.n_states)  # c(s)
        golden_move = counts > 0
        wrong = (decisions[rows] > 0) & ~golden_move & (graph.next_state != START_STATE)
        n_wrong = np.bincount(rows, weights=wrong, minlength=graph.n_states)
        detoured = rate * np.where(n_wrong > 0, decisions, 0.0)  # expected detours at each state
        out = (counts * (1 - rate * (n_wrong > 0)[rows])).copy()
        share = np.where(wrong, detoured[rows] / np.maximum(n_wrong[rows], 1), 0.0)
        out += share  # the wrong moves
        for k in np.flatnonzero(wrong):
            a = int(graph.next_state[k])  # the wrong state v -> w
            back = int(reverse[k])  # its U-turn w -> v
            lo, hi = graph.row_start[a], graph.row_start[a + 1]
            out[lo + int(np.flatnonzero(graph.next_state[lo:hi] == back)[0])] += share[k]
            # from w -> v, the golden moves of the state the detour left
            s = int(rows[k])
            g_lo, g_hi = graph.row_start[s], graph.row_start[s + 1]
            b_lo, b_hi = graph.row_start[back], graph.row_start[back + 1]
            for e in range(g_lo, g_hi):
                if counts[e] > 0:
                    target_state = graph.next_state[e]
                    j = b_lo + int(np.flatnonzero(graph.next_state[b_lo:b_hi] == target_state)[0])
                    out[j] += share[k] * counts[e] / decisions[s]
        total += out
    return total / len(per_target)
