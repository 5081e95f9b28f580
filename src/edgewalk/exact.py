"""The one exact layer: expected hitting times, per-state values, expected visits, the hitting
time's distribution, and the repeated solves training needs, all on the edge-state chain.

Linear systems ``(I - Q) h = 1`` and ``(I - Q)^T d = e_start`` are solved by GTH-LU
(:mod:`edgewalk._gth`): sparse Gaussian elimination whose pivots are the reduced chain's exit
probabilities, so that no step subtracts and every value keeps near machine relative accuracy,
also where hitting times reach 1e14 and beyond (SFT at K = 15). A :class:`TransientSystem` holds
the symbolic factorisation of one target's chain and refactorises it for any policy on the
same pattern; the functions taking a policy solve once on the moves that policy can make.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph

from . import _gth, checks, memory
from .errors import InputError
from .graph import START_STATE, Graph
from .policy import Policy


@dataclass(frozen=True, eq=False)
class TransientSystem:
    """The chain of one target restricted to a set of transient states, laid out once:
    ``probabilities[q_entries]`` are the data of Q in the pattern's CSR order, and
    ``absorb[i]`` is the sum of ``probabilities[absorb_entries]`` over i's moves into the target.
    :meth:`factorise` takes any policy's CSR probabilities on the same graph."""

    graph: Graph = field(repr=False)
    target: int
    states: np.ndarray = field(repr=False)  # the transient states, increasing (global indices)
    start: int  # local index of the start state, -1 if it is not in the set
    q_entries: np.ndarray = field(repr=False)  # CSR entry of each Q entry
    absorb_rows: np.ndarray = field(repr=False)  # local row of each move into the target
    absorb_entries: np.ndarray = field(repr=False)
    pattern: _gth.Pattern = field(repr=False)

    @classmethod
    def build(cls, graph: Graph, target: int, states: np.ndarray | None = None,
              entries: np.ndarray | None = None) -> "TransientSystem":
        """The system over ``states`` (default: every state the start can reach without entering
        the target, the target's states excluded) with the moves ``entries`` (a boolean mask
        over CSR entries; default all)."""
        is_target = graph.target_states(target)
        rows = graph.entry_state
        moves = np.ones(graph.n_transitions, bool) if entries is None else entries
        if states is None:
            states = _reachable(graph, moves, is_target)
        local = np.full(graph.n_states, -1, np.int64)
        local[states] = np.arange(len(states))
        inside = moves & (local[rows] >= 0)
        q = np.flatnonzero(inside & (local[graph.next_state] >= 0))  # CSR order: rows increasing
        absorbing = np.flatnonzero(inside & is_target[graph.next_state])
        indptr = np.concatenate(([0], np.cumsum(np.bincount(local[rows[q]], minlength=len(states))))).astype(np.int64)
        indices = local[graph.next_state[q]].astype(np.int32)
        start = int(local[START_STATE])
        order = _gth.elimination_order(indptr, indices, start if start >= 0 else None)
        if len(q) > 1_000_000:  # count the factorisation's size before allocating it
            memory.require(_gth.estimated_bytes(indptr, indices, order) + 16.0 * len(q),
                           f"the exact solve of {len(states):,} states ({len(q):,} moves)")
        return cls(graph, target, states, start, q, local[rows[absorbing]], absorbing,
                   _gth.Pattern.build(indptr, indices, order))

    @property
    def memory_bytes(self) -> int:
        return self.pattern.memory_bytes() + 8 * (len(self.q_entries) + len(self.absorb_entries))

    def factorise(self, probabilities: np.ndarray) -> _gth.Factors:
        """GTH-LU of I - Q for the policy with these CSR probabilities. Raises InputError if a
        state cannot reach the target under them."""
        absorb = np.bincount(self.absorb_rows, weights=probabilities[self.absorb_entries],
                             minlength=len(self.states))
        try:
            return self.pattern.factorise(probabilities[self.q_entries], absorb, check=False)
        except ValueError as error:
            raise InputError(f"exact: some state never reaches the target ({error})") from None

    def solve(self, probabilities: np.ndarray, visits: bool = False
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Per state of the graph: h, the expected steps to the target (0 outside the system),
        and if asked d, the expected visits before the hit from the start state (0 outside)."""
        factors = self.factorise(probabilities)
        n_states = self.graph.n_states
        h = np.zeros(n_states)
        h[self.states] = factors.solve(np.ones(len(self.states)))
        if not visits:
            return h, None
        d = np.zeros(n_states)
        if self.start >= 0:
            e = np.zeros(len(self.states))
            e[self.start] = 1.0
            d[self.states] = factors.solve_transposed(e)
        return h, d


def _reachable(graph: Graph, moves: np.ndarray, is_target: np.ndarray) -> np.ndarray:
    """The non-target states the start reaches by ``moves`` without entering a target state."""
    rows = graph.entry_state
    keep = moves & ~is_target[rows]
    P = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], graph.next_state[keep])),
                      shape=(graph.n_states, graph.n_states))
    reached = csgraph.breadth_first_order(P, START_STATE, return_predecessors=False)
    return np.sort(reached[~is_target[reached]])


def _reaches(graph: Graph, moves: np.ndarray, states: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Which of ``states`` have a path of ``moves`` within ``states`` to one in ``goal`` (a
    boolean mask over states)."""
    inside = np.zeros(graph.n_states, bool)
    inside[states] = True
    rows = graph.entry_state
    keep = moves & inside[rows] & inside[graph.next_state]
    goals = np.flatnonzero(goal & inside)
    virtual = graph.n_states  # a node with an edge to every goal: one search from it finds all
    tails = np.concatenate([graph.next_state[keep], np.full(len(goals), virtual)])
    heads = np.concatenate([rows[keep], goals])
    backwards = sp.csr_matrix((np.ones(len(tails)), (tails, heads)), shape=(virtual + 1, virtual + 1))
    found = np.zeros(virtual + 1, bool)
    found[csgraph.breadth_first_order(backwards, virtual, return_predecessors=False)] = True
    return found[states]


def _surely_hitting(policy: Policy, target: int) -> tuple[np.ndarray, np.ndarray]:
    """(transient, sure): the non-target states the start reaches under the policy, and which
    of them hit the target with probability 1 (those that cannot reach a state from which the
    target is unreachable)."""
    graph = policy.graph
    moves = policy.probabilities > 0
    is_target = graph.target_states(target)
    transient = _reachable(graph, moves, is_target)
    rows = graph.entry_state
    exits = np.zeros(graph.n_states, bool)
    exits[rows[moves & is_target[graph.next_state]]] = True
    stuck_mask = np.zeros(graph.n_states, bool)
    stuck_mask[transient[~_reaches(graph, moves, transient, exits)]] = True
    return transient, ~_reaches(graph, moves, transient, stuck_mask)


def _system(policy: Policy, target: int) -> tuple[np.ndarray, TransientSystem | None]:
    """The policy's values mask (nan unreachable, inf where not hit surely, 0 at targets) and
    the system of its surely-hitting states (None if there are none)."""
    graph = policy.graph
    target = checks.whole("target", target, 0, graph.n_nodes - 1)
    values = np.full(graph.n_states, np.nan)
    values[graph.target_states(target)] = 0.0
    if graph.target_states(target)[START_STATE]:
        return values, None
    transient, sure = _surely_hitting(policy, target)
    values[transient[~sure]] = np.inf
    if not sure.any():
        return values, None
    return values, TransientSystem.build(graph, target, transient[sure], policy.probabilities > 0)


@dataclass(frozen=True)
class Solution:
    """Expected hitting times from every state (see :func:`hitting_time_by_state`), with what
    the solve cost: the bytes its factorisation held and the seconds it took."""

    values: np.ndarray
    memory_bytes: int
    seconds: float


def solve(policy: Policy, target: int) -> Solution:
    """The expected hitting time from every state, and the solve's cost."""
    began = time.perf_counter()
    values, system = _system(policy, target)
    if system is not None:
        values[system.states] = system.solve(policy.probabilities)[0][system.states]
    return Solution(values, 0 if system is None else system.memory_bytes, time.perf_counter() - began)


def hitting_time_by_state(policy: Policy, target: int) -> np.ndarray:
    """Expected hitting time from every state (0 at target states, inf where the target is
    not reached with probability 1, nan where the state is not reachable from the start)."""
    return solve(policy, target).values


def expected_hitting_time(policy: Policy, target: int) -> float:
    """E[number of transitions after the start state until a state whose head is ``target``],
    or inf if some state reachable from the start cannot reach the target."""
    return float(hitting_time_by_state(policy, target)[START_STATE])


def expected_visits(policy: Policy, target: int) -> np.ndarray:
    """Expected number of visits to every state before the hit, from the start state (the start
    counts once; 0 at states never visited). Requires the target to be hit surely."""
    values, system = _system(policy, target)
    if values[START_STATE] == 0:  # the start state enters the target
        return np.zeros(policy.graph.n_states)
    if system is None or system.start < 0:
        raise InputError("target: not hit surely from the start, so visits are unbounded")
    return system.solve(policy.probabilities, visits=True)[1]


def _transient_matrix(policy: Policy, target: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Q over the non-target states the start reaches, the one-step hitting probabilities r of
    those states, and their indices into the full state space."""
    graph = policy.graph
    moves = policy.probabilities > 0
    is_target = graph.target_states(target)
    transient = _reachable(graph, moves, is_target)
    P = policy.transition_matrix()
    Q = P[transient][:, transient].tocsr()
    Q.eliminate_zeros()
    r = np.asarray(P[transient][:, np.flatnonzero(is_target)].sum(axis=1)).ravel()
    return Q, r, transient


def hitting_time_pmf(policy: Policy, target: int, t_max: int) -> np.ndarray:
    """P(T = t) for t = 0..t_max, by propagating the start distribution through Q."""
    t_max = checks.whole("t_max", t_max, 0)
    pmf = np.zeros(t_max + 1)
    if policy.graph.target_states(target)[START_STATE]:
        pmf[0] = 1.0
        return pmf
    Q, r, transient = _transient_matrix(policy, target)
    QT = Q.T.tocsr()
    p = (transient == START_STATE).astype(float)
    for t in range(1, t_max + 1):
        pmf[t] = p @ r
        p = QT @ p
    return pmf


def hitting_time_cdf(policy: Policy, target: int, t_max: int) -> np.ndarray:
    """P(T <= t) for t = 0..t_max."""
    return np.cumsum(hitting_time_pmf(policy, target, t_max))


def propagation_cost(policy: Policy, t_max: int) -> float:
    """Multiply-adds :func:`hitting_time_pmf` needs up to ``t_max``."""
    return float(t_max) * policy.graph.n_transitions


def censored_law(policy: Policy, target: int, max_steps: int) -> tuple[float, float]:
    """(P(T > max_steps), E[T | T <= max_steps]): the exact law of a run censored at max_steps,
    whose mean over hits estimates the second (nan if no hit is possible)."""
    pmf = hitting_time_pmf(policy, target, max_steps)
    hit = pmf.sum()
    mean = float((np.arange(max_steps + 1) * pmf).sum() / hit) if hit > 0 else float("nan")
    return max(0.0, 1.0 - float(hit)), mean


class ExactSolver:
    """Repeated exact solves for softmax policies on one graph (every valid move possible), the
    targets drawn uniformly from ``targets`` (default: the graph's leaves). One symbolic
    factorisation per target is built once; each call refactorises it, and one factorisation
    serves both the hitting-time and the visit solve."""

    def __init__(self, graph: Graph, targets: Sequence[int] | None = None) -> None:
        self.graph = graph
        self.targets = tuple(graph.leaves if targets is None else targets)
        if not self.targets:
            raise InputError("targets must name at least one node")
        self.systems = [TransientSystem.build(graph, t) for t in self.targets]

    @property
    def memory_bytes(self) -> int:
        return sum(s.memory_bytes for s in self.systems)

    def mean_hitting_time(self, probabilities: np.ndarray) -> float:
        """E_x[T_x] for the policy with these CSR probabilities."""
        return float(np.mean([s.solve(probabilities)[0][START_STATE] for s in self.systems]))

    def rlvr_gradient(self, probabilities: np.ndarray, beta: float = 1.0) -> tuple[np.ndarray, float]:
        """(dJ/dlogits per CSR entry, E_x[T_x]) for J = 1 - beta E_x[T_x]: the mean over targets
        of d_x(s) pi(a|s) A_x(s, a), A_x = Q_x - V_x with Q_x(s, a) = -beta (1 + h_x(a)) and
        V_x(s) = sum_a pi(a|s) Q_x(s, a) (= -beta h_x(s) by Bellman; taken as the row mean so that
        every row sums to 0 and one-move rows get exactly 0). Rows of target states and of states
        unreachable from the start get 0 (d_x = 0 there)."""
        g = self.graph
        rows = g.entry_state
        starts = g.row_start[:-1]
        gradient = np.zeros(g.n_transitions)
        times = []
        for system in self.systems:
            h, d = system.solve(probabilities, visits=True)
            q = -beta * (1.0 + h[g.next_state])
            v = np.add.reduceat(probabilities * q, starts)
            gradient += d[rows] * probabilities * (q - v[rows])
            times.append(h[START_STATE])
        return gradient / len(self.systems), float(np.mean(times))
