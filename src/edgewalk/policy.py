"""Edge-conditioned policies: one probability per CSR entry of a graph's chain (docs/model.md
section 3), the named policies of the paper, tables given by a user, and softmax policies over
logits (what training learns)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Union

import numpy as np
import scipy.sparse as sp

from . import checks
from .alias import AliasTables
from .errors import InputError
from .graph import Graph, PathStar, StateKind, short_name

ParameterLike = Union[float, np.ndarray, list, None]

# Next states that cross a connector (single edge) rather than a multiedge.
CONNECTOR_KINDS = np.array(
    [StateKind.L_PLUS, StateKind.LEAF_IN, StateKind.FORK_IN, StateKind.R_MINUS], dtype=np.int8
)

ROW_SUM_TOLERANCE = 1e-9


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
        """Per state of a path-star, the total probability of crossing a connector next: a_j at
        R+_j, 1 - b_j at R-_j, 1 - c_j at L+_j and d_j at L-_j."""
        g = _path_star(self.graph, "connector_probability")
        crosses = np.isin(g.state_kind[g.next_state], CONNECTOR_KINDS)
        return np.bincount(g.entry_state, weights=self.probabilities * crosses, minlength=g.n_states)

    @functools.cached_property
    def alias(self) -> AliasTables:
        """The alias tables both backends sample from (built once per policy)."""
        return AliasTables.build(self.graph.row_start, self.graph.next_state, self.probabilities)


def _validate_rows(graph: Graph, probabilities: np.ndarray) -> None:
    if not isinstance(probabilities, np.ndarray) or probabilities.dtype.kind not in "fiu":
        kind = getattr(probabilities, "dtype", type(probabilities))
        raise InputError(f"policy: probabilities must be real numbers, got {kind}")
    if probabilities.shape != (graph.n_transitions,):
        raise InputError(
            f"policy: expected {graph.n_transitions} transition probabilities, "
            f"got shape {probabilities.shape}"
        )
    if not np.all(np.isfinite(probabilities)) or probabilities.min(initial=0.0) < 0:
        raise InputError("policy: probabilities must be finite and in [0, 1]")
    sums = np.add.reduceat(probabilities, graph.row_start[:-1])
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if bad.size:
        s = int(bad[0])
        raise InputError(
            f"policy: row of state {s} sums to {sums[s]!r}; every row must sum to 1 "
            f"(tolerance {ROW_SUM_TOLERANCE}); {bad.size} rows are off"
        )


def _path_star(graph: Graph, what: str) -> PathStar:
    if not isinstance(graph, PathStar):
        raise InputError(f"{what}: defined on path-star graphs only, not on {short_name(graph)}")
    return graph


def pretrained(graph: Graph) -> Policy:
    """The world model: uniform over the valid next states of every state."""
    degree = np.diff(graph.row_start)
    return Policy(graph, np.repeat(1.0 / degree, degree), "pretrained")


def _per_depth(graph: PathStar, name: str, value: ParameterLike) -> np.ndarray | None:
    """Broadcast a parameter to shape (W, max K): a scalar, one value per depth, or per branch
    and depth. None means 'keep the pretrained value'."""
    if value is None:
        return None
    w, k = graph.branches, max(graph.depths)
    array = np.asarray(value, dtype=float)
    if array.ndim == 1 and array.shape[0] != k:
        raise InputError(f"{name}: expected one value per depth ({k}), got {array.shape[0]}")
    try:
        array = np.broadcast_to(array, (w, k))
    except ValueError:
        raise InputError(f"{name}: shape {array.shape} does not broadcast to (W, K) = {(w, k)}") from None
    if not np.all((array >= 0) & (array <= 1)):
        raise InputError(f"{name}: every value must be a probability in [0, 1]")
    return array


def parametric(
    graph: PathStar,
    a: ParameterLike = None,
    b: ParameterLike = None,
    c: ParameterLike = None,
    d: ParameterLike = None,
    name: str = "parametric",
) -> Policy:
    """The per-depth family of docs/model.md section 3. ``a[j-1]`` is the probability of the
    forward connector from R+_j, ``b`` of the multiedges back from R-_j, ``c`` of the multiedges
    forward from L+_j and ``d`` of the backward connector from L-_j; the remaining mass of a row
    is shared equally by the other moves. Each may be a scalar, per depth or per (branch, depth);
    None keeps the pretrained (uniform) value."""
    g = _path_star(graph, "parametric")
    probabilities = pretrained(g).probabilities.copy()
    rows = g.entry_state
    crosses = np.isin(g.state_kind[g.next_state], CONNECTOR_KINDS)
    lanes = (np.diff(g.row_start) - 1)[rows]
    for kind, value, is_complement in ((StateKind.R_PLUS, a, False), (StateKind.R_MINUS, b, True),
                                       (StateKind.L_PLUS, c, True), (StateKind.L_MINUS, d, False)):
        values = _per_depth(g, "abcd"[kind - StateKind.R_PLUS], value)
        if values is None:
            continue
        entries = np.flatnonzero(g.state_kind[rows] == kind)
        s = rows[entries]
        p = values[g.state_branch[s], g.state_depth[s] - 1]
        p_connector = 1.0 - p if is_complement else p
        probabilities[entries] = np.where(crosses[entries], p_connector,
                                          (1.0 - p_connector) / lanes[entries])
    parameters = {k: np.asarray(v).tolist() for k, v in zip("abcd", (a, b, c, d)) if v is not None}
    return Policy(g, probabilities, name, parameters)


def sft(graph: PathStar) -> Policy:
    """Converged SFT (paper Thm 2): a = c = 1; b and d keep their pretrained values."""
    return parametric(graph, a=1.0, c=1.0, name="sft")


def rlvr(graph: PathStar) -> Policy:
    """Converged RLVR (paper Thm 3): a = b = c = d = 1."""
    return parametric(graph, a=1.0, b=1.0, c=1.0, d=1.0, name="rlvr")


def distilled(graph: PathStar) -> Policy:
    """The converged distilled policy (paper Thm 5): the same table as converged RLVR."""
    return parametric(graph, a=1.0, b=1.0, c=1.0, d=1.0, name="distilled")


def from_table(graph: Graph, table: np.ndarray | sp.spmatrix, name: str = "table") -> Policy:
    """A user's n_states x n_states table pi(next | state), dense or sparse, of real numbers.
    Refused if any mass lies on an invalid transition or any row does not sum to 1."""
    n = graph.n_states
    dtype = getattr(table, "dtype", None)
    if dtype is None or dtype.kind not in "fiub":
        raise InputError(f"policy table: expected real numbers, got {dtype or type(table).__name__}")
    shape = tuple(getattr(table, "shape", ()))
    if shape != (n, n):  # checked before sparse conversion, which would report a 1-D array as (1, m)
        raise InputError(f"policy table: expected shape ({n}, {n}) (one row of next-state probabilities "
                         f"per state), got shape {shape}")
    matrix = sp.csr_matrix(table, dtype=float)
    rows = graph.entry_state
    on_pattern = np.asarray(matrix[rows, graph.next_state]).ravel()
    entries = matrix.tocoo()
    valid_keys = rows.astype(np.int64) * n + graph.next_state
    invalid = (entries.data != 0) & ~np.isin(entries.row.astype(np.int64) * n + entries.col, valid_keys)
    if invalid.any():
        first = np.flatnonzero(invalid)[0]
        raise InputError(
            f"policy table: mass {entries.data[invalid].sum():.3g} on invalid transitions, first at "
            f"state {entries.row[first]} -> {entries.col[first]}; only moves from u -> v to v -> w "
            "are allowed"
        )
    return Policy(graph, on_pattern, name)


def softmax_rows(graph: Graph, logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the CSR rows (the row maximum is subtracted first, so large logits
    never overflow, and logits further apart than the largest float give the smaller weight 0). All-zero logits give exactly ``1 / degree``, bit for bit the pretrained
    policy."""
    logits = np.asarray(logits, dtype=float)
    if logits.shape != (graph.n_transitions,):
        raise InputError(
            f"logits: expected one per CSR entry ({graph.n_transitions}), got shape {logits.shape}"
        )
    if not np.all(np.isfinite(logits)):
        raise InputError("logits: every logit must be finite")
    starts = graph.row_start[:-1]
    degree = np.diff(graph.row_start)
    # Two finite logits can differ by more than the largest float: such a difference is -inf
    # (the smaller one's weight is 0 either way), not an overflow warning.
    with np.errstate(over="ignore"):
        weights = np.exp(logits - np.repeat(np.maximum.reduceat(logits, starts), degree))
    return weights / np.repeat(np.add.reduceat(weights, starts), degree)


def from_logits(graph: Graph, logits: np.ndarray, name: str = "logits",
                parameters: dict | None = None) -> Policy:
    """The softmax policy ``pi(.|s) = softmax(logits[row s])``."""
    return Policy(graph, softmax_rows(graph, logits), name, dict(parameters or {}))


NAMED = {"pretrained": pretrained, "sft": sft, "rlvr": rlvr, "distilled": distilled}


def named(graph: Graph, name: str) -> Policy:
    """One of the named converged policies: pretrained, sft, rlvr or distilled."""
    return NAMED[checks.choice("policy", name, NAMED)](graph)
