"""Exact hitting times on the edge-state chain: the Monte Carlo engine's reference values."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph

from .policy import Policy

START_STATE = 0


def _transient_system(policy: Policy, target: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Q restricted to the non-target states reachable from the start, the one-step hitting
    probabilities r of those states, and their indices into the full state space."""
    graph = policy.graph
    P = policy.transition_matrix()
    absorbing = graph.target_states(target)
    P_open = P.multiply(~absorbing[:, None]).tocsr()  # nothing leaves an absorbing state
    P_open.eliminate_zeros()
    reachable = csgraph.breadth_first_order(P_open, START_STATE, return_predecessors=False)
    transient = np.sort(reachable[~absorbing[reachable]])
    Q = P[transient][:, transient].tocsc()
    Q.eliminate_zeros()  # a stored zero is not a move: graph searches would treat it as one
    r = np.asarray(P[transient][:, np.flatnonzero(absorbing)].sum(axis=1)).ravel()
    return Q, r, transient


def expected_hitting_time(policy: Policy, target: int) -> float:
    """E[number of transitions after s0 -> f until a state whose head is ``target``], or inf if
    some state reachable from the start cannot reach the target."""
    values = hitting_time_by_state(policy, target)
    return float(values[START_STATE])


def hitting_time_by_state(policy: Policy, target: int) -> np.ndarray:
    """Expected hitting time from every state (0 at target states, inf where the target is
    not reached with probability 1, nan where the state is not reachable from the start)."""
    graph = policy.graph
    values = np.full(graph.n_states, np.nan)
    values[graph.target_states(target)] = 0.0
    if graph.target_states(target)[START_STATE]:
        return values
    Q, r, transient = _transient_system(policy, target)
    # A state hits the target surely iff it cannot reach a state from which the target is
    # unreachable ("stuck"); the expected time is finite exactly there, and those states form a
    # closed system, so I - Q restricted to them is non-singular.
    stuck = ~_reaches(Q, r > 0)
    sure = ~_reaches(Q, stuck)
    values[transient[~sure]] = np.inf
    first = np.flatnonzero(transient[sure] == START_STATE)  # empty if the start is not sure
    values[transient[sure]] = _state_reduction(Q[sure][:, sure], r[sure], first)
    return values


def _state_reduction(Q: sp.spmatrix, r: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Expected steps to absorption from every state of a chain with transient block Q and
    one-step absorption probabilities r, by Grassmann-Taksar-Heyman state reduction.

    Eliminating state k folds its paths into its predecessors: P(i,j) += P(i,k) P(k,j) / s_k,
    with s_k = 1 - P(k,k) computed as r_k + sum of P(k,j) over j != k, so no step subtracts.
    Back-substitution in reverse order is as positive. Every value keeps near machine relative
    accuracy even where I - Q is ill-conditioned (SFT at K = 15: E[T] ~ 1e14, where a sparse LU
    solve is off by 0.2 %). States are eliminated farthest from the states in ``first`` first."""
    n = Q.shape[0]
    if n == 0:
        return np.empty(0)
    Q = Q.tocsr()
    out = [dict(zip(Q.indices[Q.indptr[i]:Q.indptr[i + 1]].tolist(),
                    Q.data[Q.indptr[i]:Q.indptr[i + 1]].tolist())) for i in range(n)]
    into: list[dict[int, float]] = [{} for _ in range(n)]
    for i in range(n):
        for j, p in out[i].items():
            into[j][i] = p
    exit_probability = r.astype(float).tolist()
    cost = [1.0] * n  # expected steps spent before leaving the states eliminated into i
    near_first = (csgraph.breadth_first_order(Q, int(first[0]), return_predecessors=False)
                  if len(first) else np.empty(0, int))
    unreached = np.setdiff1d(np.arange(n), near_first)
    order = np.concatenate([unreached, near_first[::-1]]).tolist()
    leave = [0.0] * n
    for k in order:
        row = out[k]
        row.pop(k, None)
        into[k].pop(k, None)
        leave[k] = exit_probability[k] + sum(row.values())
        for i, p_ik in into[k].items():
            weight = p_ik / leave[k]
            out_i = out[i]
            del out_i[k]
            cost[i] += weight * cost[k]
            exit_probability[i] += weight * exit_probability[k]
            for j, p_kj in row.items():
                out_i[j] = out_i.get(j, 0.0) + weight * p_kj
                into[j][i] = out_i[j]
        for j in row:
            del into[j][k]
        into[k] = {}
    values = np.empty(n)
    for k in reversed(order):  # out[k] now holds only states eliminated after k
        values[k] = (cost[k] + sum(p * values[j] for j, p in out[k].items())) / leave[k]
    return values


def _reaches(Q: sp.spmatrix, goal: np.ndarray) -> np.ndarray:
    """Which states have a path of positive-probability moves in Q to a state in ``goal``
    (a backward search from a virtual node pointing at every goal state)."""
    n = len(goal)
    if not goal.any():
        return goal.copy()
    backwards = sp.bmat([[Q.T, None], [sp.csr_matrix(goal[None, :].astype(float)), None]])
    backwards = sp.hstack([backwards, sp.csr_matrix((n + 1, 1))]).tocsr()
    found = np.zeros(n + 1, bool)
    found[csgraph.breadth_first_order(backwards, n, return_predecessors=False)] = True
    return found[:n]


def hitting_time_pmf(policy: Policy, target: int, t_max: int) -> np.ndarray:
    """P(T = t) for t = 0..t_max, by propagating the start distribution through Q."""
    if t_max < 0:
        raise ValueError(f"t_max must be >= 0, got {t_max}")
    pmf = np.zeros(t_max + 1)
    if policy.graph.target_states(target)[START_STATE]:
        pmf[0] = 1.0
        return pmf
    Q, r, transient = _transient_system(policy, target)
    QT = Q.T.tocsr()
    p = (transient == START_STATE).astype(float)
    for t in range(1, t_max + 1):
        pmf[t] = p @ r
        p = QT @ p
    return pmf


def hitting_time_cdf(policy: Policy, target: int, t_max: int) -> np.ndarray:
    """P(T <= t) for t = 0..t_max."""
    return np.cumsum(hitting_time_pmf(policy, target, t_max))
