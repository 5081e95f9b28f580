"""Reference solvers the tests measure the exact layer against: the dict-based GTH state
reduction edgewalk used before its GTH-LU (slow, independent code, subtraction-free) and the
SuperLU solve its training used (fast, inaccurate where hitting times reach 1e14: a witness)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from edgewalk.graph import Graph
from edgewalk.policy import Policy, pretrained

START_STATE = 0


def transient_system(policy: Policy, target: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
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


def state_reduction(Q: sp.spmatrix, r: np.ndarray, first: np.ndarray) -> np.ndarray:
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


def reaches(Q: sp.spmatrix, goal: np.ndarray) -> np.ndarray:
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


@dataclass(frozen=True, eq=False)
class SuperLUSystem:
    """The transient system of one target, laid out so that ``I - Q`` can be refilled from the
    CSR probabilities without any sparse bookkeeping: ``matrix.data = values[order]``."""

    target: int
    transient: np.ndarray  # states (the set exact.py solves for), in local (RCM) order
    start: int  # local index of the start state
    inner: np.ndarray  # CSR entries between two transient states
    indptr: np.ndarray
    indices: np.ndarray
    order: np.ndarray  # CSC data = concat(-p[inner], ones)[order]

    @classmethod
    def build(cls, graph: Graph, target: int) -> "SuperLUSystem":
        # Softmax policies give every valid move positive probability, so the transient set is the
        # one exact.py finds for the pretrained policy (reachable from the start, not a target).
        Q, _, transient = transient_system(pretrained(graph), target)
        n = len(transient)
        # Number the transient states in reverse Cuthill-McKee order: a banded, fill-light layout
        # the LU can take as it is (no ordering pass, no pivoting: I - Q is a nonsingular M-matrix,
        # so every Schur complement is one too).
        pattern = (Q + Q.T + sp.identity(n)).tocsr()
        order_rcm = csgraph.reverse_cuthill_mckee(pattern, symmetric_mode=True)
        local = np.full(graph.n_states, -1, np.int64)
        local[transient[order_rcm]] = np.arange(n)
        row, col = local[graph.entry_state], local[graph.next_state]
        inner = np.flatnonzero((row >= 0) & (col >= 0))
        m = len(inner)
        coo = sp.coo_matrix(
            (np.arange(1, m + n + 1, dtype=float),
             (np.concatenate([row[inner], np.arange(n)]), np.concatenate([col[inner], np.arange(n)]))),
            shape=(n, n),
        )
        csc = coo.tocsc()  # no duplicates: no self-loops, and next states in a row are distinct
        order = csc.data.astype(np.int64) - 1
        return cls(target, transient[order_rcm], int(local[START_STATE]), inner,
                   csc.indptr, csc.indices, order)

    def factorise(self, probabilities: np.ndarray) -> spla.SuperLU:
        """Sparse LU of I - Q for the policy with these CSR probabilities."""
        n = len(self.transient)
        values = np.concatenate([-probabilities[self.inner], np.ones(n)])
        matrix = sp.csc_matrix((values[self.order], self.indices, self.indptr), shape=(n, n))
        return spla.splu(matrix, permc_spec="NATURAL", diag_pivot_thresh=0.0, panel_size=4,
                         options={"SymmetricMode": True})

    def solve(self, probabilities: np.ndarray, n_states: int, visits: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Per state: h, the expected remaining steps ((I - Q) h = 1; 0 at target and unreachable
        states), and if asked d, the expected visits before the hit from s0 -> f
        ((I - Q)^T d = e_start; 0 at target and unreachable states). One factorisation."""
        lu = self.factorise(probabilities)
        h = np.zeros(n_states)
        h[self.transient] = lu.solve(np.ones(len(self.transient)))
        if not visits:
            return h, None
        e = np.zeros(len(self.transient))
        e[self.start] = 1.0
        d = np.zeros(n_states)
        d[self.transient] = lu.solve(e, trans="T")
        return h, d
