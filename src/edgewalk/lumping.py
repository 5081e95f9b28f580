"""Exact lumping of a policy's edge-state chain for one target: the coarsest partition of the
states into blocks such that the sequence of blocks visited is itself a Markov chain with the
same hitting-time law (an *ordinarily lumpable* partition).

The law that is lumped is the one the step kernel samples, not the policy's floating-point
table: a step from state s draws column ``k`` of its row with probability ``span(k) / 2**32``
(``span(k)`` high halves of the draw map to column k, see :mod:`edgewalk.alias`) and then takes
``primary[k]`` with probability ``(threshold[k] + 1) / 2**32``, else ``alias[k]``. So every
move's probability is an exact rational ``units / 2**64`` with ``units`` a whole number
(:func:`sampled_units`), and the rows of all states share that one denominator. Two states are
put in the same block exactly when, for every block, the sums of their units into it are equal
as integers: the comparisons are exact, with no tolerance, and the lumped chain has the
hitting-time law of the step kernel itself (its column-pick bias included). The lumped chain's
probabilities are those integer sums divided by 2**64, rounded once to float64.

Blocks: the states entering the target form one absorbing block; every other state the start
reaches without entering the target (by moves of positive probability) is in a transient block;
states it never reaches are dropped. Transient blocks are numbered in the order of their
smallest state, so the start state's block is 0 unless the start state itself enters the
target.

The partition is found by splitter-based refinement (Hopcroft's "process all but the largest
part", as in Valmari and Franceschinis, TACAS 2010): O(transitions x log states) in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph

from . import checks
from .alias import ALIAS_UNITS, AliasTables
from .graph import START_STATE
from .policy import Policy

UNREACHED = -1  # block of a state the start never reaches (before entering the target)


@dataclass(frozen=True, eq=False)
class LumpedChain:
    """The lumped chain of ``policy`` and ``target`` (a node index). ``block[s]`` is state s's
    block: ``0 .. n_transient - 1`` for a transient block, ``n_transient`` (``target_block``) for
    a state that enters the target, ``UNREACHED`` (-1) for a state the start never reaches.
    ``q`` (n_transient x n_transient, CSR) and ``absorb`` (n_transient) are the probabilities of
    moving from a block into each transient block and into the target; together they sum to 1
    in every row (to float rounding; exactly in the integer law). ``start`` is the start state's
    block (``target_block`` if the start state enters the target, then T = 0)."""

    policy: Policy = field(repr=False)
    target: int
    block: np.ndarray = field(repr=False)  # int32 per state
    q: sp.csr_matrix = field(repr=False)
    absorb: np.ndarray = field(repr=False)
    start: int

    @property
    def n_transient(self) -> int:
        return self.q.shape[0]

    @property
    def n_blocks(self) -> int:
        """Blocks in all: the transient ones and the target's."""
        return self.n_transient + 1

    @property
    def target_block(self) -> int:
        return self.n_transient

    def dense_q(self) -> np.ndarray:
        return self.q.toarray()


def sampled_units(tables: AliasTables) -> tuple[np.ndarray, np.ndarray]:
    """Per CSR entry, the probability that one step of the step kernel takes that move, times
    2**64, as (units modulo 2**64 in uint64, positive). A move taken surely has units 2**64,
    stored as 0 with ``positive`` True; a move never taken has 0 and ``positive`` False."""
    row_start = tables.row_start
    degree = np.diff(row_start)
    rows = np.repeat(np.arange(len(degree)), degree)
    d = degree[rows]
    column = np.arange(len(rows), dtype=np.int64) - row_start[rows]
    # high halves h with ((h * d) >> 32) == column: ceil(column 2**32 / d) <= h < ceil((column + 1) 2**32 / d)
    span = (-(-(column + 1) * ALIAS_UNITS // d) - (-(-column * ALIAS_UNITS // d))).astype(np.uint64)
    keep = tables.threshold.astype(np.uint64) + np.uint64(1)  # low halves that take primary
    rest = np.uint64(ALIAS_UNITS) - keep
    units = np.zeros(len(rows), np.uint64)
    np.add.at(units, tables.primary_entry, span * keep)  # wraps modulo 2**64, exact in total
    np.add.at(units, tables.alias_entry, span * rest)
    positive = np.zeros(len(rows), bool)
    positive[tables.primary_entry] = True  # every column keeps at least one unit for primary
    positive[tables.alias_entry[rest > 0]] = True
    return units, positive


def units_to_probability(units: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """The float64 probabilities of integer sums in units of 2**-64 (0 with positive = 2**64)."""
    p = units.astype(np.float64) * 2.0**-64
    p[positive & (units == 0)] = 1.0
    return p


def sampled_probabilities(policy: Policy) -> np.ndarray:
    """Per CSR entry, the probability with which the step kernel takes that move (the policy
    after alias rounding and the column pick), rounded once to float64."""
    return units_to_probability(*sampled_units(policy.alias))


def lump(policy: Policy, target: int) -> LumpedChain:
    """The coarsest ordinarily lumpable partition of ``policy``'s chain with respect to the
    target node ``target`` and the start state, and the lumped chain (see the module docstring
    for the exact comparison). Its hitting-time law from ``start`` is the step kernel's."""
    graph = policy.graph
    target = checks.whole("target", target, 0, graph.n_nodes - 1)
    is_target = graph.target_states(target)
    units, positive = sampled_units(policy.alias)
    block = np.full(graph.n_states, UNREACHED, np.int32)
    if is_target[START_STATE]:
        block[is_target] = 0
        return LumpedChain(policy, target, block, sp.csr_matrix((0, 0)), np.zeros(0), 0)

    rows = graph.entry_state
    moves = positive & ~is_target[rows]
    reach = sp.csr_matrix((np.ones(int(moves.sum())), (rows[moves], graph.next_state[moves])),
                          shape=(graph.n_states, graph.n_states))
    reached = csgraph.breadth_first_order(reach, START_STATE, return_predecessors=False)
    transient = np.sort(reached[~is_target[reached]])
    n = len(transient)
    local = np.full(graph.n_states, -1, np.int64)
    local[transient] = np.arange(n)
    local[is_target] = n  # every target state is the one virtual node n

    kept = np.flatnonzero(positive & (local[rows] >= 0) & ~is_target[rows])
    source = local[rows[kept]]
    destination = local[graph.next_state[kept]]
    order = np.argsort(destination, kind="stable")
    pred_start = np.concatenate(([0], np.cumsum(np.bincount(destination, minlength=n + 1))))
    local_block = _refine(n, pred_start.astype(np.int64), source[order].astype(np.int32),
                          units[kept][order])

    # number blocks in the order of their smallest state (the start, local 0, gets block 0)
    _, first_member = np.unique(local_block, return_index=True)
    rank = np.empty(len(first_member), np.int64)
    rank[np.argsort(first_member)] = np.arange(len(first_member))
    local_block = rank[local_block]
    blocks = len(first_member)

    # the lumped rows, from one representative per block (every member has the same sums)
    representative = np.zeros(n, bool)
    representative[np.sort(first_member)] = True
    from_rep = representative[source]
    b_from = local_block[source[from_rep]]
    b_to = np.append(local_block, blocks)[destination[from_rep]]
    key = b_from * (blocks + 1) + b_to
    keys, inverse = np.unique(key, return_inverse=True)
    sums = np.zeros(len(keys), np.uint64)
    np.add.at(sums, inverse, units[kept][from_rep])
    p = units_to_probability(sums, np.ones(len(keys), bool))
    i, j = keys // (blocks + 1), keys % (blocks + 1)
    into_target = j == blocks
    q = sp.csr_matrix((p[~into_target], (i[~into_target], j[~into_target])), shape=(blocks, blocks))
    absorb = np.zeros(blocks)
    absorb[i[into_target]] = p[into_target]

    block[transient] = local_block
    block[is_target] = blocks  # the target block comes after the transient ones
    return LumpedChain(policy, target, block, q, absorb, 0)


@numba.njit(cache=True)
def _refine(n, pred_start, pred_state, pred_units):
    """The coarsest stable refinement of {all n transient states} (with the target as the
    virtual node n) under the weights w(s, C) = sum of s's units into C, compared exactly
    modulo 2**64 (a state with no move into C is told apart from one with all its mass in C,
    whose sum wraps to 0, by whether it was touched). ``pred_*`` list, per node v = 0..n, the
    states with a move into v and the move's units. Returns each state's block."""
    elements = np.arange(n).astype(np.int32)  # the states, grouped by block
    location = np.arange(n)  # position of each state in elements
    block_of = np.zeros(n, np.int32)
    first = np.zeros(n + 1, np.int64)
    end = np.zeros(n + 1, np.int64)
    end[0] = n
    n_blocks = 1
    stack = np.empty(n + 1, np.int64)  # splitters still to process; n is the target
    stack[0] = n
    depth = 1
    acc = np.zeros(n, np.uint64)
    marked = np.zeros(n, np.bool_)
    touched = np.empty(n, np.int32)
    moved = np.zeros(n, np.int64)  # per block, touched members moved to its front
    touched_blocks = np.empty(n, np.int32)
    members = np.empty(max(n, 1), np.int32)
    while depth > 0:
        depth -= 1
        c = stack[depth]
        if c == n:
            n_members = 1
            members[0] = n
        else:
            n_members = end[c] - first[c]
            members[:n_members] = elements[first[c]:end[c]]
        n_touched = 0
        for i in range(n_members):
            v = members[i]
            for e in range(pred_start[v], pred_start[v + 1]):
                p = pred_state[e]
                if not marked[p]:
                    marked[p] = True
                    acc[p] = 0
                    touched[n_touched] = p
                    n_touched += 1
                acc[p] += pred_units[e]
        n_touched_blocks = 0
        for i in range(n_touched):
            p = touched[i]
            b = block_of[p]
            if moved[b] == 0:
                touched_blocks[n_touched_blocks] = b
                n_touched_blocks += 1
            here, there = location[p], first[b] + moved[b]
            other = elements[there]
            elements[there], elements[here] = p, other
            location[p], location[other] = there, here
            moved[b] += 1
        for i in range(n_touched_blocks):
            b = touched_blocks[i]
            lo, hi, count = first[b], end[b], moved[b]
            moved[b] = 0
            part = elements[lo:lo + count].copy()
            keys = acc[part]
            order = np.argsort(keys)
            for j in range(count):
                elements[lo + j] = part[order[j]]
                location[part[order[j]]] = lo + j
            # parts: runs of equal sums among the touched, then the untouched rest
            n_parts = 1 if count == hi - lo else 2
            for j in range(1, count):
                if acc[elements[lo + j]] != acc[elements[lo + j - 1]]:
                    n_parts += 1
            if n_parts == 1:
                continue
            bounds = np.empty(n_parts + 1, np.int64)
            bounds[0] = lo
            k = 1
            for j in range(1, count):
                if acc[elements[lo + j]] != acc[elements[lo + j - 1]]:
                    bounds[k] = lo + j
                    k += 1
            if count < hi - lo:
                bounds[k] = lo + count
                k += 1
            bounds[k] = hi
            largest = 0
            for j in range(1, n_parts):
                if bounds[j + 1] - bounds[j] > bounds[largest + 1] - bounds[largest]:
                    largest = j
            # the largest part keeps the block's number; every other part is a new splitter
            for j in range(n_parts):
                if j == largest:
                    first[b], end[b] = bounds[j], bounds[j + 1]
                    continue
                nb = n_blocks
                n_blocks += 1
                first[nb], end[nb] = bounds[j], bounds[j + 1]
                for pos in range(bounds[j], bounds[j + 1]):
                    block_of[elements[pos]] = nb
                stack[depth] = nb
                depth += 1
        for i in range(n_touched):
            marked[touched[i]] = False
    return block_of
