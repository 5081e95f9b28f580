"""Policies that see their history: the k-window chain (docs/model.md section 8).

A k-window policy chooses the next state from the last k states of the trajectory. It is an
edge-conditioned policy on the *window chain*, a :class:`~edgewalk.graph.Graph` whose states are
runs of consecutive edge states of a base graph: ``(s_0, ..., s_t)`` for the first k - 1 steps,
then ``(s_{t-k+1}, ..., s_t)``. A window is followed by the window shifted by one valid next state
of its last state, its head is the head of its last state (so a rollout stops when the last state
enters the target), and state 0 is the window ``(s_0,)``. The engine, the exact solver and the
gradient statistics therefore run on it unchanged, and a policy on it is an ordinary
:class:`~edgewalk.policy.Policy`.

The windows are numbered in lexicographic order of their states (oldest first, a shorter run
before its extensions), so every CSR row lists its next windows in increasing order and in the
order of the base row of its last state: entry ``j`` of window ``w``'s row is the move to
``base.next_state[base.row_start[last_state[w]] + j]``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph

from . import checks, memory
from .errors import InputError, SizeError
from .graph import START_STATE, Graph, PathStar
from .graph import from_description as graph_from_description
from .policy import Policy

# Bytes a window chain holds per window state and per transition beyond its window array, and the
# construction's temporaries (the next windows' keys and their sort), for the size refusal.
BYTES_PER_STATE = 4 + 4 + 8 + 1 + 4
BYTES_PER_TRANSITION = 4 + 8
BYTES_PER_TRANSITION_AND_SLOT = 4 + 4 + 8  # a key slot, its padded copy and the sort's indices
EXACT_COUNT_WINDOW = 1024


@dataclass(frozen=True, eq=False)
class WindowChain(Graph):
    """The k-window chain of ``base`` (see the module docstring). ``windows[w]`` holds window w's
    edge states oldest first, padded with -1 after its ``length[w]`` states; ``last_state[w]`` is
    its last (current) edge state; ``base_entry[i]`` is the base CSR entry of transition i (the
    move from the last state of the row's window to the last state of the next window).
    ``trainable`` is the base graph's flag of the last state."""

    base: Graph = field(repr=False)
    window: int
    windows: np.ndarray = field(repr=False)  # int32 (n_states, window)
    length: np.ndarray = field(repr=False)  # int32
    last_state: np.ndarray = field(repr=False)  # int32
    base_entry: np.ndarray = field(repr=False)  # int64, one per transition

    def node(self, name: str) -> int:
        return self.base.node(name)

    def leaf(self, number: int) -> int:
        return self.base.leaf(number)

    def lift(self, policy: Policy) -> Policy:
        """The edge-conditioned ``policy`` of the base graph as a k-window policy: every window
        moves as its last state does."""
        if policy.graph is not self.base and policy.graph.describe() != self.base.describe():
            raise InputError(f"policy: lives on {policy.graph.describe()}, not on this chain's base "
                             f"graph {self.base.describe()}")
        return Policy(self, policy.probabilities[self.base_entry], policy.name, dict(policy.parameters))

    def windows_ending_at(self, state: int) -> np.ndarray:
        """The window states whose last state is the base ``state`` (increasing): the rows of a
        k-window policy that refine that state's row of an edge-conditioned one."""
        state = checks.whole("state", state, 0, self.base.n_states - 1)
        return np.flatnonzero(self.last_state == state)

    def window_of(self, states) -> int:
        """The index of the window whose states are ``states`` (oldest first)."""
        states = [int(s) for s in states]
        if not 1 <= len(states) <= self.window:
            raise InputError(f"states: a window holds 1..{self.window} states, got {len(states)}")
        row = np.full(self.window, -1, np.int64)
        row[: len(states)] = states
        keys = _keys(self.windows)
        key = _keys(row[None, :].astype(np.int32))[0]
        at = int(np.searchsorted(keys, key))
        if at == len(keys) or keys[at] != key:
            raise InputError(f"states: {states} is no window of this chain")
        return at


def chain_size(base: Graph, window: int, stop_above: float | None = None) -> tuple[int, int, int]:
    """(window states, transitions, bytes) of the ``window``-window chain of ``base``, counted
    without building it (walks are counted by repeated sparse products, kept in log space so that
    no count overflows; whole numbers of any size come back). With ``stop_above``, the counting
    stops as soon as the bytes exceed it, and the three values are then lower bounds (the bytes
    above ``stop_above``): a huge window is never counted to its end."""
    window = checks.whole("window", window, 1)
    A = sp.csr_matrix((np.ones(base.n_transitions), base.next_state, base.row_start),
                      shape=(base.n_states, base.n_states)).T.tocsr()
    degree = np.diff(base.row_start).astype(float)
    per_state = math.log(BYTES_PER_STATE + 4 * window)
    per_transition = math.log(BYTES_PER_TRANSITION + BYTES_PER_TRANSITION_AND_SLOT * window)
    log_states = log_transitions = -math.inf
    log_stop = math.inf if stop_above is None else math.log(stop_above)

    def log_size(states: float, transitions: float) -> float:
        return float(np.logaddexp(states + per_state, transitions + per_transition))

    def add(log_total: float, vector: np.ndarray, scale: float) -> float:
        total = float(vector.sum())
        return log_total if total <= 0 else float(np.logaddexp(log_total, scale + math.log(total)))

    def power(vector: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
        vector = A @ vector  # rescaled to a largest entry of 1, its log scale kept apart
        top = float(vector.max()) if len(vector) else 0.0
        return (vector / top, scale + math.log(top)) if top > 0 else (vector, scale)

    prefix = np.zeros(base.n_states)
    prefix[START_STATE] = 1.0  # walks from the start, by last state
    scale = 0.0
    stopped = False
    for _ in range(window - 1):
        if not prefix.any():
            break
        log_states, log_transitions = add(log_states, prefix, scale), add(log_transitions, prefix * degree, scale)
        if log_size(log_states, log_transitions) > log_stop:
            stopped = True
            break
        prefix, scale = power(prefix, scale)
    if not stopped:
        walks, scale = _reachable(base).astype(float), 0.0  # walks of `window` states, by last state
        for _ in range(window - 1):
            if not walks.any():
                break
            walks, scale = power(walks, scale)
        log_states, log_transitions = add(log_states, walks, scale), add(log_transitions, walks * degree, scale)
    return _whole(log_states), _whole(log_transitions), _whole(log_size(log_states, log_transitions))


def _whole(log_value: float) -> int:
    """The whole number exp(log_value) (to a float's precision, of any size)."""
    if log_value == -math.inf:
        return 0
    bits = log_value / math.log(2)
    if bits < 62:
        return int(round(math.exp(log_value)))
    shift = math.floor(bits) - 52
    return int(round(2 ** (bits - shift))) << shift


def default_max_bytes() -> int:
    """Half the memory available now (a window chain larger than that is refused)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def window_chain(base: Graph, window: int, max_bytes: int | None = None) -> WindowChain:
    """The ``window``-window chain of ``base`` (window = 1 is the base chain itself, renumbered
    as windows). Raises SizeError, with the size it would need, if the chain would take more than
    ``max_bytes`` (default: half the memory available) to build."""
    window = checks.whole("window", window, 1)
    limit = default_max_bytes() if max_bytes is None else checks.whole("max_bytes", max_bytes, 1)
    # Windows up to EXACT_COUNT_WINDOW are counted to the end (the message gives the chain's size);
    # a longer one only until it is known to be too large (its size is then a lower bound).
    counted = window <= EXACT_COUNT_WINDOW
    n_states, n_transitions, size = chain_size(base, window, stop_above=None if counted else limit)
    if size > limit:
        count = lambda n: f"{float(n):.3g}" if n < 10**300 else memory.format_count(n)  # noqa: E731
        more, about = ("", "about") if counted else (" or more", "at least")
        raise SizeError(
            f"window: the {window:,}-window chain of {base.describe()} has {count(n_states)} states and "
            f"{count(n_transitions)} transitions{more} and needs {about} {memory.format_bytes(size)}, over the "
            f"limit of {memory.format_bytes(limit)} (max_bytes, by default half the memory available); use a "
            "smaller window", "window")
    degree = np.diff(base.row_start)
    runs = [np.array([[START_STATE]], np.int32)]  # walks from the start, one array per length
    for _ in range(window - 1):
        runs.append(_extend(base, runs[-1], degree)[0])
    full = _reachable(base).nonzero()[0].astype(np.int32)[:, None]
    for _ in range(window - 1):
        full = _extend(base, full, degree)[0]
    padded = [np.pad(r, ((0, 0), (0, window - r.shape[1])), constant_values=-1) for r in runs[:-1]]
    windows = np.concatenate(padded + [full]) if window > 1 else full
    keys = _keys(windows)
    order = np.argsort(keys, kind="stable")
    windows, keys = windows[order], keys[order]
    length = (windows >= 0).sum(axis=1).astype(np.int32)
    last = windows[np.arange(len(windows)), length - 1]
    row_start = np.concatenate(([0], np.cumsum(degree[last]))).astype(np.int64)

    # Next windows: a short window grows by one state, a full one drops its oldest.
    entry_window = np.repeat(np.arange(len(windows)), degree[last])
    offset = np.arange(row_start[-1]) - row_start[entry_window]
    base_entry = base.row_start[last[entry_window]] + offset
    following = windows[entry_window].copy()
    short = length[entry_window] < window
    following[short, length[entry_window][short]] = base.next_state[base_entry[short]]
    following[~short] = np.concatenate([following[~short, 1:], base.next_state[base_entry[~short], None]], axis=1)
    next_state = np.searchsorted(keys, _keys(following)).astype(np.int32)
    assert np.array_equal(keys[next_state], _keys(following)), "a next window is missing"
    del following
    return WindowChain(
        node_names=base.node_names, state_tail=base.state_tail[last], state_head=base.state_head[last],
        row_start=row_start, next_state=next_state, leaves=base.leaves, trainable=base.trainable[last],
        description={"window": window, "graph": base.describe()}, base=base, window=window,
        windows=windows, length=length, last_state=last.astype(np.int32), base_entry=base_entry)


def _reachable(base: Graph) -> np.ndarray:
    """Boolean mask of the base states the start reaches."""
    P = sp.csr_matrix((np.ones(base.n_transitions), base.next_state, base.row_start),
                      shape=(base.n_states, base.n_states))
    mask = np.zeros(base.n_states, bool)
    mask[csgraph.breadth_first_order(P, START_STATE, return_predecessors=False)] = True
    return mask


def _extend(base: Graph, walks: np.ndarray, degree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every walk of ``walks`` (rows) extended by each next state of its last state."""
    last = walks[:, -1]
    count = degree[last]
    parent = np.repeat(np.arange(len(walks)), count)
    entry = base.row_start[last[parent]] + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    return np.concatenate([walks[parent], base.next_state[entry, None]], axis=1), entry


def _keys(windows: np.ndarray) -> np.ndarray:
    """One sortable key per row: its states + 1 as big-endian unsigned bytes, so that byte order
    is the lexicographic order of the states with the padding (-1) first."""
    big_endian = np.ascontiguousarray((windows.astype(np.int64) + 1).astype(">u4"))
    return big_endian.view(np.dtype((np.void, 4 * windows.shape[1]))).ravel()


def from_description(description: dict) -> Graph:
    """The graph (a base graph or a window chain) that ``describe()`` described."""
    if isinstance(description, dict) and "window" in description:
        base = description.get("graph")
        return window_chain(graph_from_description(base), description["window"])
    return graph_from_description(description)


def reference_values(graph: Graph) -> dict[str, float]:
    """The exact reference values of target-blind search on the symmetric path-star with a
    uniform leaf target (docs/model.md section 8):

    - ``edge_conditioned``, (2K + 1)(2W - 1): the best edge-conditioned policy whose fork rows stay
      uniform (as tabular training keeps them), converged RLVR;
    - ``history_aware``, (2K + 1) W: the bound no policy goes below; never re-entering an
      explored branch attains it, and so does an edge-conditioned policy whose fork rows may
      change (from the fork, entered from branch i, always take branch i + 1 mod W);
    - ``history_aware_uniform_fork``, (2K + 1) W + W - 1: the best history policy whose fork rows
      stay uniform: it explores each new branch and leaves an explored one at once (2 steps);
      with n branches explored, n / (W - n) such returns are expected before a new one, and
      summed over the n = 1 .. W - 1 reached with probability (W - n) / W that is (W - 1) / 2."""
    if not isinstance(graph, PathStar) or not graph.is_symmetric:
        raise InputError(f"graph: the reference values are those of the symmetric path-star, not of "
                         f"{graph.describe()}")
    W, K = graph.branches, graph.depths[0]
    return {"edge_conditioned": float((2 * K + 1) * (2 * W - 1)), "history_aware": float((2 * K + 1) * W),
            "history_aware_uniform_fork": float((2 * K + 1) * W + W - 1)}
