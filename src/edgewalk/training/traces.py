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
from ..graph import Graph
from ..policy import Policy, pretrained
from ..result import GradientStatistics
from .objectives import golden_counts


def golden(graph: Graph) -> np.ndarray:
    """Golden shortest paths (what SFT learns from)."""
    return golden_counts(graph)


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
            threads: int | None = None) -> tuple[np.ndarray, GradientStatistics]:
    """Monte Carlo: the move counts of ``rollouts`` traces of ``policy`` sampled by the engine
    (targets cycling through the leaves; rollouts as ``planning.gradient_statistics`` runs them),
    per trace, and the statistics they came from."""
    stats = planning.gradient_statistics(policy, rollouts=rollouts, seed=seed, backend=backend,
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
