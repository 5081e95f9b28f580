"""Edge-conditioned policies: row-stochastic tables over the CSR transitions of a graph
(MODEL.md section 3), and the alias tables both simulation backends sample from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np
import scipy.sparse as sp

from .graph import Graph, StateKind

ParameterLike = Union[float, np.ndarray, list, None]

# Next states that cross a connector (single edge) rather than a multiedge.
_CONNECTOR_KINDS = np.array(
    [StateKind.L_PLUS, StateKind.LEAF_IN, StateKind.FORK_IN, StateKind.R_MINUS], dtype=np.int8
)

ROW_SUM_TOLERANCE = 1e-9
ALIAS_UNITS = 1 << 32  # each alias column holds 2**32 probability units


@dataclass(frozen=True, eq=False)
class Policy:
    """``probabilities[k]`` is pi(graph.next_state[k] | s) for the state s whose CSR row holds k."""

    graph: Graph
    probabilities: np.ndarray = field(repr=False)
    name: str = "table"
    parameters: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate_rows(self.graph, self.probabilities)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, **self.parameters}

    def transition_matrix(self) -> sp.csr_matrix:
        """The policy as a sparse n_states x n_states row-stochastic matrix."""
        g = self.graph
        return sp.csr_matrix(
            (self.probabilities, g.next_state, g.row_start), shape=(g.n_states, g.n_states)
        )

    def connector_probability(self) -> np.ndarray:
        """Per state, the total probability of crossing a connector next: a_j at R+_j,
        1 - b_j at R-_j, 1 - c_j at L+_j and d_j at L-_j."""
        g = self.graph
        crosses = np.isin(g.state_kind[g.next_state], _CONNECTOR_KINDS)
        rows = np.repeat(np.arange(g.n_states), np.diff(g.row_start))
        return np.bincount(rows, weights=self.probabilities * crosses, minlength=g.n_states)

    def alias_tables(self) -> "AliasTables":
        return AliasTables.build(self)


def _validate_rows(graph: Graph, probabilities: np.ndarray) -> None:
    if probabilities.shape != (graph.n_transitions,):
        raise ValueError(
            f"policy: expected {graph.n_transitions} transition probabilities, "
            f"got shape {probabilities.shape}"
        )
    if not np.all(np.isfinite(probabilities)) or probabilities.min() < 0:
        raise ValueError("policy: probabilities must be finite and in [0, 1]")
    sums = np.add.reduceat(probabilities, graph.row_start[:-1])
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if bad.size:
        s = int(bad[0])
        raise ValueError(
            f"policy: row of state {s} sums to {sums[s]!r}; every row must sum to 1 "
            f"(tolerance {ROW_SUM_TOLERANCE}); {bad.size} rows are off"
        )


def pretrained(graph: Graph) -> Policy:
    """The world model: uniform over the valid next states of every state."""
    degree = np.diff(graph.row_start)
    return Policy(graph, np.repeat(1.0 / degree, degree), "pretrained")


def _per_depth(graph: Graph, name: str, value: ParameterLike) -> np.ndarray | None:
    """Broadcast a parameter to shape (W, max K): a scalar, one value per depth, or per branch
    and depth. None means 'keep the pretrained value'."""
    if value is None:
        return None
    w, k = graph.branches, max(graph.depths)
    array = np.asarray(value, dtype=float)
    if array.ndim == 1 and array.shape[0] != k:
        raise ValueError(f"{name}: expected one value per depth ({k}), got {array.shape[0]}")
    try:
        array = np.broadcast_to(array, (w, k))
    except ValueError:
        raise ValueError(f"{name}: shape {array.shape} does not broadcast to (W, K) = {(w, k)}")
    if not np.all((array >= 0) & (array <= 1)):
        raise ValueError(f"{name}: every value must be a probability in [0, 1]")
    return array


def parametric(
    graph: Graph,
    a: ParameterLike = None,
    b: ParameterLike = None,
    c: ParameterLike = None,
    d: ParameterLike = None,
    name: str = "parametric",
) -> Policy:
    """The per-depth family of MODEL.md section 3. ``a[j-1]`` is the probability of the forward
    connector from R+_j, ``b`` of the multiedges back from R-_j, ``c`` of the multiedges forward
    from L+_j and ``d`` of the backward connector from L-_j; the remaining mass of a row is
    shared equally by the other moves. Each may be a scalar, per depth or per (branch, depth);
    None keeps the pretrained (uniform) value."""
    g = graph
    base = pretrained(g).probabilities.copy()
    connector_mass = {
        StateKind.R_PLUS: (_per_depth(g, "a", a), False),
        StateKind.R_MINUS: (_per_depth(g, "b", b), True),
        StateKind.L_PLUS: (_per_depth(g, "c", c), True),
        StateKind.L_MINUS: (_per_depth(g, "d", d), False),
    }
    crosses = np.isin(g.state_kind[g.next_state], _CONNECTOR_KINDS)
    for kind, (values, is_complement) in connector_mass.items():
        if values is None:
            continue
        for s in np.flatnonzero(g.state_kind == kind):
            p = values[g.state_branch[s], g.state_depth[s] - 1]
            p_connector = 1.0 - p if is_complement else p
            lo, hi = g.row_start[s], g.row_start[s + 1]
            row_crosses = crosses[lo:hi]
            lanes = hi - lo - 1
            base[lo:hi] = np.where(row_crosses, p_connector, (1.0 - p_connector) / lanes)
    parameters = {k: np.asarray(v).tolist() for k, v in zip("abcd", (a, b, c, d)) if v is not None}
    return Policy(g, base, name, parameters)


def sft(graph: Graph) -> Policy:
    """Converged SFT (paper Thm 2): a = c = 1; b and d keep their pretrained values."""
    return parametric(graph, a=1.0, c=1.0, name="sft")


def rlvr(graph: Graph) -> Policy:
    """Converged RLVR (paper Thm 3), also the distilled policy (Thm 5): a = b = c = d = 1."""
    return parametric(graph, a=1.0, b=1.0, c=1.0, d=1.0, name="rlvr")


def from_table(graph: Graph, table: np.ndarray | sp.spmatrix, name: str = "table") -> Policy:
    """A user's n_states x n_states table pi(next | state), dense or sparse. Refused if any mass
    lies on an invalid transition or any row does not sum to 1."""
    n = graph.n_states
    matrix = sp.csr_matrix(table, dtype=float)
    if matrix.shape != (n, n):
        raise ValueError(f"policy table: expected shape ({n}, {n}), got {matrix.shape}")
    rows = np.repeat(np.arange(n), np.diff(graph.row_start))
    on_pattern = np.asarray(matrix[rows, graph.next_state]).ravel()
    entries = matrix.tocoo()
    valid_keys = rows.astype(np.int64) * n + graph.next_state
    invalid = (entries.data != 0) & ~np.isin(entries.row.astype(np.int64) * n + entries.col, valid_keys)
    if invalid.any():
        first = np.flatnonzero(invalid)[0]
        raise ValueError(
            f"policy table: mass {entries.data[invalid].sum():.3g} on invalid transitions, first at "
            f"state {entries.row[first]} -> {entries.col[first]}; only moves from u -> v to v -> w "
            "are allowed"
        )
    return Policy(graph, on_pattern, name)


NAMED = {"pretrained": pretrained, "sft": sft, "rlvr": rlvr}


def named(graph: Graph, name: str) -> Policy:
    """One of the named converged policies: pretrained, sft or rlvr."""
    if name not in NAMED:
        raise ValueError(f"policy: unknown policy {name!r}; allowed: {', '.join(NAMED)}")
    return NAMED[name](graph)


@dataclass(frozen=True, eq=False)
class AliasTables:
    """Walker alias tables in integer units, the sampling layout shared by both backends.

    A step from state s draws one 64-bit word z; column ``k = row_start[s] + ((z >> 32) * deg) >> 32``
    and the next state is ``primary[k]`` if ``(z & 0xffffffff) <= threshold[k]`` else ``alias[k]``.
    Column k keeps ``threshold[k] + 1`` of its 2**32 units for ``primary[k]``, so the sampled
    probabilities equal the policy's rounded to units of 2**-32 / deg (a positive probability
    never rounds to zero). ``weight[k]`` is the probability of moving to ``next_state[k]`` in units
    of about 2**-31 (positive exactly where the alias tables can draw it), for the search
    wrapper's mask mode, which samples among the unvisited entries of a row in proportion to it.
    """

    row_start: np.ndarray  # int64
    next_state: np.ndarray  # int32
    threshold: np.ndarray  # uint32
    primary: np.ndarray  # int32: next_state[primary_entry]
    alias: np.ndarray  # int32: next_state[alias_entry]
    primary_entry: np.ndarray  # int32: the CSR entry (state, move) a draw of primary stands for
    alias_entry: np.ndarray  # int32
    weight: np.ndarray  # uint32

    @classmethod
    def build(cls, policy: Policy) -> "AliasTables":
        g = policy.graph
        threshold = np.empty(g.n_transitions, np.uint32)
        weight = np.empty(g.n_transitions, np.uint32)
        primary_entry = np.arange(g.n_transitions, dtype=np.int32)
        alias_entry = primary_entry.copy()
        for s in range(g.n_states):
            lo, hi = int(g.row_start[s]), int(g.row_start[s + 1])
            degree = hi - lo
            units = _round_to_units(policy.probabilities[lo:hi] * degree * ALIAS_UNITS)
            weight[lo:hi] = -(-units // (2 * degree))
            keep, alias_column = _vose(units)
            empty = keep == 0  # a column with no own mass hands all of it to its alias
            primary_entry[lo:hi] = lo + np.where(empty, alias_column, np.arange(degree))
            alias_entry[lo:hi] = lo + alias_column
            threshold[lo:hi] = np.where(empty, ALIAS_UNITS, keep) - 1
        return cls(g.row_start, g.next_state, threshold, g.next_state[primary_entry],
                   g.next_state[alias_entry], primary_entry, alias_entry, weight)


def _round_to_units(scaled: np.ndarray) -> np.ndarray:
    """Integers proportional to ``scaled`` whose sum is exactly len(scaled) * 2**32
    (largest-remainder rounding), positive wherever ``scaled`` is."""
    total = len(scaled) * ALIAS_UNITS
    scaled = scaled * (total / scaled.sum())
    units = np.floor(scaled).astype(np.int64)
    short = total - int(units.sum())
    if short:
        units[np.argsort(-(scaled - units), kind="stable")[:short]] += 1
    lost = (scaled > 0) & (units == 0)
    units[lost] = 1
    units[np.argmax(units)] -= int(lost.sum())
    return units


def _vose(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method on integer weights summing to len(units) * 2**32: returns the units
    each column keeps for itself and the column its remainder goes to."""
    n = len(units)
    units = units.copy()
    keep = np.full(n, ALIAS_UNITS, np.int64)
    alias_column = np.arange(n)
    small = [k for k in range(n) if units[k] < ALIAS_UNITS]
    large = [k for k in range(n) if units[k] >= ALIAS_UNITS]
    while small and large:
        s, l = small.pop(), large[-1]
        keep[s] = units[s]
        alias_column[s] = l
        units[l] -= ALIAS_UNITS - units[s]
        if units[l] < ALIAS_UNITS:
            small.append(large.pop())
    return keep, alias_column
