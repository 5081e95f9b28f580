"""Helpers the tests share: the statistical criteria every Monte Carlo check uses, and equality
of results bit for bit."""

from __future__ import annotations

import numpy as np

from edgewalk import statistics
from edgewalk.statistics import z_score  # the one definition of z, also the package's
from edgewalk.kernels import MASK64, mix64, seed_key

Z_LIMIT = 4.5  # two-sided P(|z| > 4.5) = 7e-6 for a correct engine
P_LIMIT = 1e-4  # chi-square p-value below which a histogram is declared inconsistent

__all__ = ["P_LIMIT", "Z_LIMIT", "chi_square_p_value", "chi_square_p_value_below",
           "reference_statistics", "same_result", "z_score"]


def same_result(a, b) -> bool:
    """Two results equal bit for bit: histogram, edges and every exact moment."""
    return (np.array_equal(a.counts, b.counts) and np.array_equal(a.edges, b.edges) and (
        a.hits, a.censored, a.total, a.total_of_squares, a.steps, a.draws_total,
        a.draws_total_of_squares) == (
        b.hits, b.censored, b.total, b.total_of_squares, b.steps, b.draws_total,
        b.draws_total_of_squares))


def chi_square_p_value(result, pmf: np.ndarray) -> float:
    """Pearson chi-square of a result's histogram (any integer bin edges) against the exact PMF
    P(T = t), t = 0..len(pmf) - 1 (see :func:`chi_square_p_value_below`)."""
    cumulative = np.concatenate(([0.0], np.cumsum(pmf)))
    edges = np.asarray(result.edges, np.int64)
    return chi_square_p_value_below(result, cumulative[np.minimum(edges, len(pmf))])  # P(T < edge)


def chi_square_p_value_below(result, mass_below: np.ndarray) -> float:
    """Pearson chi-square of a result's histogram against the exact law given as
    mass_below[i] = P(T < edges[i]) at each bin edge, with the censored rollouts as one more
    cell: the package's test (:func:`edgewalk.statistics.chi_square_p_value`), which
    tests/test_statistics.py checks on its own."""
    return statistics.chi_square_p_value(result.counts, result.censored, mass_below)


def reference_statistics(policy, targets, seed, rollouts, max_steps):
    """Visits, hit visits and summed steps remaining per CSR entry, replaying each rollout's
    documented random stream (native/edgewalk_kernel.h) in plain Python integers."""
    tables = policy.alias
    graph = policy.graph
    visits, hit_visits, remaining = (np.zeros(graph.n_transitions, object) for _ in range(3))
    for r in range(rollouts):
        is_target = graph.target_states(targets[r % len(targets)])
        x = mix64((seed_key(seed) + (r + 1) * 0x9E3779B97F4A7C15) & MASK64)
        s, moves = 0, []
        while not is_target[s] and len(moves) < max_steps:
            x = (x + 0x9E3779B97F4A7C15) & MASK64
            z = mix64(x)
            base = int(tables.row_start[s])
            k = base + (((z >> 32) * (int(tables.row_start[s + 1]) - base)) >> 32)
            primary = (z & 0xFFFFFFFF) <= int(tables.threshold[k])
            moves.append(int(tables.primary_entry[k] if primary else tables.alias_entry[k]))
            s = int(tables.primary[k] if primary else tables.alias[k])
        for step, move in enumerate(moves, start=1):
            visits[move] += 1
            hit_visits[move] += int(is_target[s])
            remaining[move] += len(moves) - step + 1
    return visits, hit_visits, remaining
