"""Exact enumeration of the no-revisit search wrapper (docs/model.md section 6) on tiny graphs.

Independent of the kernels: it walks every wrapper trajectory from the definition, branching on
each unvisited next state of positive policy probability with its renormalised probability, and
memoises on (path stack, visited set), which is all the future of a rollout depends on.

Per rollout, with T the hitting time in steps (accepted moves plus pops), M the number of accepted
moves (= policy draws in mask mode) and D the policy draws in reject mode (each accepted move out
of a state whose unvisited next states carry policy mass m costs a Geometric(m) number of draws,
mean 1/m), it gives the exact PMF of T, P(hit), E[T | hit], E[M | hit] and E[D | hit]. It also has
a plain-integer reference implementation of one kernel rollout (the documented random stream).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class SearchExact:
    pmf: np.ndarray  # pmf[t] = P(hit at step t); sums to p_hit
    p_hit: float
    mean_steps: float  # E[T | hit]
    mean_moves: float  # E[M | hit]: mask-mode draws
    mean_reject_draws: float  # E[D | hit]: reject-mode draws
    variance_steps: float  # Var[T | hit]
    states_explored: int  # memo size, to keep the enumeration small

    @property
    def mean_pops(self) -> float:
        return self.mean_steps - self.mean_moves

    def survival(self, max_steps: int) -> float:
        """P(no hit within max_steps steps), censoring by exhaustion included."""
        return 1.0 - float(self.pmf[: max_steps + 1].sum())


def _successors(policy):
    g = policy.graph
    rows = []
    for s in range(g.n_states):
        lo, hi = int(g.row_start[s]), int(g.row_start[s + 1])
        rows.append(
            tuple(
                (int(g.next_state[k]), float(policy.probabilities[k]))
                for k in range(lo, hi)
                if policy.probabilities[k] > 0
            )
        )
    return rows


def enumerate_search(policy, target: int) -> SearchExact:
    """Exact law of the wrapper's hitting time and draws for ``policy`` and target node index."""
    graph = policy.graph
    is_target = graph.target_states(target)
    successors = _successors(policy)
    memo: dict = {}

    # solve(stack, visited) -> (dist, p_hit, E[M 1{hit}], E[D 1{hit}]) of the remaining rollout,
    # dist mapping remaining steps to probability (hits only).
    def solve(stack: tuple, visited: frozenset):
        key = (stack, visited)
        if key in memo:
            return memo[key]
        s = stack[-1]
        open_moves = [(n, p) for n, p in successors[s] if n not in visited]
        if not open_moves:  # pop: one step
            if len(stack) == 1:
                result = ({}, 0.0, 0.0, 0.0)  # popped past the start: censored
            else:
                dist, p_hit, moves, draws = solve(stack[:-1], visited)
                result = ({t + 1: q for t, q in dist.items()}, p_hit, moves, draws)
            memo[key] = result
            return result
        m = sum(p for _, p in open_moves)
        dist: dict = {}
        p_hit = moves = draws = 0.0
        for n, p in open_moves:
            q = p / m
            if is_target[n]:
                dist[1] = dist.get(1, 0.0) + q
                p_hit += q
                moves += q
                draws += q / m
                continue
            c_dist, c_hit, c_moves, c_draws = solve(stack + (n,), visited | {n})
            for t, w in c_dist.items():
                dist[t + 1] = dist.get(t + 1, 0.0) + q * w
            p_hit += q * c_hit
            moves += q * (c_hit + c_moves)
            draws += q * (c_hit / m + c_draws)
        result = (dist, p_hit, moves, draws)
        memo[key] = result
        return result

    if is_target[0]:
        pmf = np.array([1.0])
        return SearchExact(pmf, 1.0, 0.0, 0.0, 0.0, 0.0, 0)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * graph.n_states + 1000))
    try:
        dist, p_hit, moves, draws = solve((0,), frozenset((0,)))
    finally:
        sys.setrecursionlimit(limit)
    pmf = np.zeros(2 * graph.n_states + 1)
    for t, q in dist.items():
        pmf[t] += q
    if p_hit > 0:
        ts = np.arange(len(pmf))
        mean = float((ts * pmf).sum() / p_hit)
        var = float(((ts - mean) ** 2 * pmf).sum() / p_hit)
        return SearchExact(pmf, p_hit, mean, moves / p_hit, draws / p_hit, var, len(memo))
    nan = float("nan")
    return SearchExact(pmf, 0.0, nan, nan, nan, nan, len(memo))


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def reference_search_rollout(tables, is_target, mode: str, seed_key: int, r: int, max_steps: int):
    """One wrapper rollout as native/edgewalk_kernel.h documents it, in plain Python integers.
    Returns (hit, steps, draws, pops)."""
    x = _mix64((seed_key + (r + 1) * GAMMA) & MASK64)
    stack, visited = [0], {0}
    t = draws = pops = 0
    if is_target[0]:
        return True, 0, 0, 0
    while t < max_steps:
        s = stack[-1]
        lo, hi = int(tables.row_start[s]), int(tables.row_start[s + 1])
        entries = [(int(tables.next_state[k]), int(tables.weight[k])) for k in range(lo, hi)]
        open_weight = sum(w for n, w in entries if n not in visited)
        t += 1
        if open_weight == 0:
            pops += 1
            stack.pop()
            if not stack:
                return False, t, draws, pops
            continue
        if mode == "mask":
            x = (x + GAMMA) & MASK64
            pick = ((_mix64(x) >> 32) * open_weight) >> 32
            draws += 1
            chosen = None
            for n, w in entries:
                if n in visited:
                    continue
                if pick < w:
                    chosen = n
                    break
                pick -= w
        else:
            degree = hi - lo
            while True:
                x = (x + GAMMA) & MASK64
                z = _mix64(x)
                k = lo + (((z >> 32) * degree) >> 32)
                if (z & 0xFFFFFFFF) <= int(tables.threshold[k]):
                    chosen = int(tables.primary[k])
                else:
                    chosen = int(tables.alias[k])
                draws += 1
                if chosen not in visited:
                    break
        visited.add(chosen)
        stack.append(chosen)
        if is_target[chosen]:
            return True, t, draws, pops
    return False, t, draws, pops
