"""Exact hitting times on the edge-state chain: the Monte Carlo engine's reference values."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

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
    # A transient state hits the target surely iff, in Q's graph, it can reach a state with r > 0:
    # search backwards from a virtual node that points at all of those.
    n = len(transient)
    backwards = sp.bmat([[Q.T, None], [sp.csr_matrix((r > 0)[None, :].astype(float)), None]])
    backwards = sp.hstack([backwards, sp.csr_matrix((n + 1, 1))]).tocsr()
    can_finish = np.zeros(n + 1, bool)
    can_finish[csgraph.breadth_first_order(backwards, n, return_predecessors=False)] = True
    can_finish = can_finish[:n]
    if not can_finish.all():
        values[transient] = np.inf
        return values
    values[transient] = spla.spsolve((sp.identity(n, format="csc") - Q), np.ones(n))
    return values


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
