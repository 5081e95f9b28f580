"""Graphs and their edge-state chains (docs/model.md sections 1, 2 and 7).

A state is a directed edge ``u -> v``. State 0 is the start state, the directed edge from a
virtual source into the root (``s0 -> f`` on the path-star); undirected edge ``e`` (numbered from
0) gives state ``1 + 2e`` (traversed from its first end to its second) and state ``2 + 2e`` (the
other way). From ``u -> v`` the valid next states are all states leaving ``v``, the U-turn
included, so the chain is stored once as CSR rows: ``next_state[row_start[s]:row_start[s + 1]]``
are the states that may follow ``s``. Nothing leaves the source, so no state enters it again.

:class:`Graph` holds any such chain; :class:`PathStar` adds what the paper's path-star graph gives
each state (its kind, branch and depth), which the named policies and the a, b, c, d readouts use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Sequence

import numpy as np

from . import checks
from .errors import InputError

START_STATE = 0


class StateKind(IntEnum):
    """The role a state of the path-star plays in the named policies (docs/model.md section 3)."""

    START = 0  # s0 -> f
    FORK_IN = 1  # u(i,1,l) -> f
    LEAF_IN = 2  # u(i,K,r) -> t_i
    R_PLUS = 3  # u(j,l) -> u(j,r) over a multiedge
    R_MINUS = 4  # u(j+1,l) -> u(j,r), or t_i -> u(K,r): arrived by the connector from the right
    L_PLUS = 5  # u(j-1,r) -> u(j,l), or f -> u(1,l): arrived by the connector from the left
    L_MINUS = 6  # u(j,r) -> u(j,l) over a multiedge


TRAINED_KINDS = (StateKind.R_PLUS, StateKind.R_MINUS, StateKind.L_PLUS, StateKind.L_MINUS)


@dataclass(frozen=True, eq=False)
class Graph:
    """An edge-state chain: nodes by name, the tail and head node of every state, the CSR rows of
    next states, the default targets (``leaves``, node indices, in order) and which states' rows
    training may change (``trainable``)."""

    node_names: tuple[str, ...]
    state_tail: np.ndarray = field(repr=False)  # int32: node each state leaves
    state_head: np.ndarray = field(repr=False)  # int32: node each state enters
    row_start: np.ndarray = field(repr=False)  # int64, length n_states + 1
    next_state: np.ndarray = field(repr=False)  # int32
    leaves: tuple[int, ...]
    trainable: np.ndarray = field(repr=False)  # bool per state
    description: dict = field(repr=False)

    @property
    def n_states(self) -> int:
        return len(self.state_head)

    @property
    def n_transitions(self) -> int:
        return len(self.next_state)

    @property
    def n_nodes(self) -> int:
        return len(self.node_names)

    @property
    def entry_state(self) -> np.ndarray:
        """The state (row) of every CSR entry."""
        return np.repeat(np.arange(self.n_states), np.diff(self.row_start))

    def describe(self) -> dict[str, object]:
        """The parameters that determine the graph, as plain JSON-able values
        (:func:`from_description` rebuilds it)."""
        return dict(self.description)

    def node(self, name: str) -> int:
        """The index of the node called ``name``."""
        try:
            return self.node_names.index(self._canonical(name))
        except ValueError:
            raise InputError(f"target: no node {name!r} in this graph; allowed: {self._allowed_names()}") from None

    def _canonical(self, name: str) -> str:
        return name

    def _allowed_names(self) -> str:
        shown = ", ".join(self.node_names[:6])
        return f"one of its {self.n_nodes} node names ({shown}{', ...' if self.n_nodes > 6 else ''})"

    def leaf(self, number: int) -> int:
        """The ``number``-th default target (1-based): the leaf t_number on the path-star."""
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or not 1 <= number <= len(self.leaves):
            raise InputError(f"target: no leaf {number!r}; this graph's leaves are numbered 1..{len(self.leaves)}")
        return self.leaves[number - 1]

    def target_states(self, target: int) -> np.ndarray:
        """Boolean mask of the states whose head is ``target``: entering one ends a rollout."""
        return self.state_head == target

    def next_states(self, state: int) -> np.ndarray:
        return self.next_state[self.row_start[state] : self.row_start[state + 1]]


@dataclass(frozen=True, eq=False)
class PathStar(Graph):
    """The path-star multigraph: ``depths[i]`` diamonds on branch i and ``lanes[i][j]`` parallel
    edges in diamond j (both 0-based here, 1-based in node names), with every state's kind,
    branch (0-based, -1 at the start) and depth (1-based depth of its kind, 0 if none)."""

    depths: tuple[int, ...]
    lanes: tuple[tuple[int, ...], ...]
    state_kind: np.ndarray = field(repr=False)  # int8 StateKind
    state_branch: np.ndarray = field(repr=False)  # int32
    state_depth: np.ndarray = field(repr=False)  # int32

    @property
    def branches(self) -> int:
        return len(self.depths)

    @property
    def is_symmetric(self) -> bool:
        return len(set(self.depths)) == 1 and len({n for row in self.lanes for n in row}) == 1

    def _canonical(self, name: str) -> str:
        canonical = re.sub(r"\s+", "", name)
        return re.sub(r"^t_(\d+)$", r"t\1", canonical)

    def _allowed_names(self) -> str:
        return (f"s0, f, t1..t{self.branches}, or u(i,j,l) / u(i,j,r) with 1 <= i <= {self.branches} "
                "and 1 <= j <= K_i")


def edge_state_chain(n_nodes: int, ends: np.ndarray, source: int, root: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(state_tail, state_head, row_start, next_state) of the chain of an undirected multigraph
    with edges ``ends[e] = (a, b)`` and the start state ``source -> root`` (see the module
    docstring for the numbering). The states leaving a node are listed in state order."""
    ends = np.asarray(ends, np.int64).reshape(-1, 2)
    n_states = 1 + 2 * len(ends)
    tail = np.empty(n_states, np.int32)
    head = np.empty(n_states, np.int32)
    tail[0], head[0] = source, root
    tail[1::2], head[1::2] = ends[:, 0], ends[:, 1]
    tail[2::2], head[2::2] = ends[:, 1], ends[:, 0]
    leaving_order = np.argsort(tail[1:], kind="stable") + 1
    leaving_count = np.bincount(tail[1:], minlength=n_nodes)
    leaving_start = np.concatenate(([0], np.cumsum(leaving_count)))
    degree = leaving_count[head]
    row_start = np.concatenate(([0], np.cumsum(degree))).astype(np.int64)
    offset = np.arange(row_start[-1]) - np.repeat(row_start[:-1], degree)
    next_state = leaving_order[np.repeat(leaving_start[head], degree) + offset].astype(np.int32)
    return tail, head, row_start, next_state


def path_star(branches: int, depth: int, lanes: int) -> PathStar:
    """The symmetric path-star graph with W = branches, K = depth and L = lanes."""
    branches = checks.whole("W (branches)", branches, 1)
    depth = checks.whole("K (depth)", depth, 1)
    lanes = checks.whole("L (lanes)", lanes, 1)
    return heterogeneous([depth] * branches, [[lanes] * depth for _ in range(branches)])


def heterogeneous(depths: Sequence[int], lanes: int | Sequence[Sequence[int]]) -> PathStar:
    """A path-star graph with depth ``depths[i]`` on branch i and ``lanes[i][j]`` parallel edges
    in diamond j of branch i (or one lane count for every diamond)."""
    depths = tuple(checks.whole(f"depths[{i}]", k, 1) for i, k in enumerate(depths))
    if not depths:
        raise InputError("depths must name at least one branch (W >= 1)")
    if not isinstance(lanes, (Sequence, np.ndarray)):
        lanes = [[checks.whole("L (lanes)", lanes, 1)] * k for k in depths]
    if len(lanes) != len(depths) or any(len(row) != k for row, k in zip(lanes, depths)):
        raise InputError("lanes must give one lane count per diamond: len(lanes[i]) == depths[i]")
    lanes_t = tuple(tuple(checks.whole(f"lanes[{i}][{j}] (L)", n, 1) for j, n in enumerate(row))
                    for i, row in enumerate(lanes))

    names = ["s0", "f"]
    fork = 1
    # Per undirected edge: its ends (left, right), the kind, branch and depth of the state that
    # traverses it left to right, and the kind and depth of the state that traverses it back.
    ends: list[tuple[int, int]] = []
    annotations: list[tuple[int, int, int, int, int]] = []
    leaves = []
    for i, k in enumerate(depths):
        first = len(names)
        for j in range(1, k + 1):
            names += [f"u({i + 1},{j},l)", f"u({i + 1},{j},r)"]
        names.append(f"t{i + 1}")
        leaves.append(len(names) - 1)
        previous = fork
        for j in range(1, k + 1):
            ul = first + 2 * (j - 1)
            back_kind = StateKind.FORK_IN if j == 1 else StateKind.R_MINUS
            ends.append((previous, ul))
            annotations.append((StateKind.L_PLUS, back_kind, i, j, 0 if j == 1 else j - 1))
            for _ in range(lanes_t[i][j - 1]):
                ends.append((ul, ul + 1))
                annotations.append((StateKind.R_PLUS, StateKind.L_MINUS, i, j, j))
            previous = ul + 1
        ends.append((previous, leaves[-1]))
        annotations.append((StateKind.LEAF_IN, StateKind.R_MINUS, i, 0, k))

    tail, head, row_start, next_state = edge_state_chain(len(names), np.array(ends), 0, fork)
    a = np.array(annotations, np.int64).reshape(-1, 5)
    n_states = len(tail)
    kind = np.empty(n_states, np.int8)
    branch = np.empty(n_states, np.int32)
    depth = np.empty(n_states, np.int32)
    kind[0], branch[0], depth[0] = StateKind.START, -1, 0
    kind[1::2], kind[2::2] = a[:, 0], a[:, 1]
    branch[1::2] = branch[2::2] = a[:, 2]
    depth[1::2], depth[2::2] = a[:, 3], a[:, 4]
    depth[kind == StateKind.FORK_IN] = 0

    symmetric = len(set(depths)) == 1 and len({n for row in lanes_t for n in row}) == 1
    description = ({"W": len(depths), "K": depths[0], "L": lanes_t[0][0]} if symmetric
                   else {"depths": list(depths), "lanes": [list(row) for row in lanes_t]})
    return PathStar(
        node_names=tuple(names), state_tail=tail, state_head=head, row_start=row_start,
        next_state=next_state, leaves=tuple(leaves), trainable=np.isin(kind, TRAINED_KINDS),
        description=description, depths=depths, lanes=lanes_t, state_kind=kind,
        state_branch=branch, state_depth=depth)


def from_description(description: dict) -> Graph:
    """The graph that :meth:`Graph.describe` described."""
    if not isinstance(description, dict):
        raise InputError(f"graph description must be a mapping, got {description!r}")
    if {"window", "graph"} <= description.keys():  # a window chain (edgewalk.history)
        from .history import from_description as window_from_description

        return window_from_description(description)
    if {"W", "K", "L"} <= description.keys():
        return path_star(description["W"], description["K"], description["L"])
    if {"depths", "lanes"} <= description.keys():
        return heterogeneous(description["depths"], description["lanes"])
    raise InputError(f"graph description {description!r}: expected W, K, L or depths, lanes")
