"""The path-star multigraph and its edge-state chain (MODEL.md sections 1 and 2).

A state is a directed edge ``u -> v``. State 0 is the start state ``s0 -> f``; every undirected
edge ``e`` (numbered from 0) gives state ``1 + 2e`` (traversed away from the fork) and state
``2 + 2e`` (traversed towards the fork). From ``u -> v`` the valid next states are all states
leaving ``v``, the U-turn included, so the chain is stored once as CSR rows:
``next_state[row_start[s]:row_start[s + 1]]`` are the states that may follow ``s``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Sequence

import numpy as np


class StateKind(IntEnum):
    """The role a state plays in the named policies (MODEL.md section 3)."""

    START = 0  # s0 -> f
    FORK_IN = 1  # u(i,1,l) -> f
    LEAF_IN = 2  # u(i,K,r) -> t_i
    R_PLUS = 3  # u(j,l) -> u(j,r) over a multiedge
    R_MINUS = 4  # u(j+1,l) -> u(j,r), or t_i -> u(K,r): arrived by the connector from the right
    L_PLUS = 5  # u(j-1,r) -> u(j,l), or f -> u(1,l): arrived by the connector from the left
    L_MINUS = 6  # u(j,r) -> u(j,l) over a multiedge


@dataclass(frozen=True, eq=False)
class Graph:
    """A path-star multigraph with ``depths[i]`` diamonds on branch i and ``lanes[i][j]``
    parallel edges in diamond j (both 0-based here, 1-based in node names)."""

    depths: tuple[int, ...]
    lanes: tuple[tuple[int, ...], ...]
    node_names: tuple[str, ...] = field(repr=False)
    state_tail: np.ndarray = field(repr=False)  # node each state leaves
    state_head: np.ndarray = field(repr=False)  # node each state enters
    state_kind: np.ndarray = field(repr=False)  # StateKind per state
    state_branch: np.ndarray = field(repr=False)  # 0-based branch, -1 at the start state
    state_depth: np.ndarray = field(repr=False)  # 1-based depth j of the StateKind, 0 if none
    row_start: np.ndarray = field(repr=False)  # CSR row pointers, int64, length n_states + 1
    next_state: np.ndarray = field(repr=False)  # CSR column indices, int32

    @property
    def branches(self) -> int:
        return len(self.depths)

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
    def is_symmetric(self) -> bool:
        return len(set(self.depths)) == 1 and len({n for row in self.lanes for n in row}) == 1

    def describe(self) -> dict[str, object]:
        """The parameters that determine the graph, as plain JSON-able values."""
        if self.is_symmetric:
            return {"W": self.branches, "K": self.depths[0], "L": self.lanes[0][0]}
        return {"depths": list(self.depths), "lanes": [list(row) for row in self.lanes]}

    def node(self, name: str) -> int:
        """The index of a node named ``s0``, ``f``, ``t1`` (or ``t_1``) or ``u(i,j,l|r)``."""
        canonical = re.sub(r"\s+", "", name)
        canonical = re.sub(r"^t_(\d+)$", r"t\1", canonical)
        try:
            return self.node_names.index(canonical)
        except ValueError:
            raise ValueError(
                f"target: no node {name!r} in this graph; allowed: s0, f, t1..t{self.branches}, "
                f"or u(i,j,l) / u(i,j,r) with 1 <= i <= {self.branches} and 1 <= j <= K_i"
            ) from None

    def leaf(self, branch: int) -> int:
        """The leaf node t_branch (1-based branch)."""
        return self.node(f"t{branch}")

    def target_states(self, target: int) -> np.ndarray:
        """Boolean mask of the states whose head is ``target``: entering one ends a rollout."""
        return self.state_head == target

    def next_states(self, state: int) -> np.ndarray:
        return self.next_state[self.row_start[state] : self.row_start[state + 1]]


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def path_star(branches: int, depth: int, lanes: int) -> Graph:
    """The symmetric path-star graph with W = branches, K = depth and L = lanes."""
    branches = _check_positive("W (branches)", branches)
    depth = _check_positive("K (depth)", depth)
    lanes = _check_positive("L (lanes)", lanes)
    return heterogeneous([depth] * branches, [[lanes] * depth for _ in range(branches)])


def heterogeneous(depths: Sequence[int], lanes: int | Sequence[Sequence[int]]) -> Graph:
    """A path-star graph with depth ``depths[i]`` on branch i and ``lanes[i][j]`` parallel edges
    in diamond j of branch i (or one lane count for every diamond)."""
    depths = tuple(_check_positive(f"depths[{i}]", k) for i, k in enumerate(depths))
    if not depths:
        raise ValueError("depths must name at least one branch (W >= 1)")
    if not isinstance(lanes, (Sequence, np.ndarray)):
        lanes = [[_check_positive("L (lanes)", lanes)] * k for k in depths]
    if len(lanes) != len(depths) or any(len(row) != k for row, k in zip(lanes, depths)):
        raise ValueError("lanes must give one lane count per diamond: len(lanes[i]) == depths[i]")
    lanes_t = tuple(
        tuple(_check_positive(f"lanes[{i}][{j}] (L)", n) for j, n in enumerate(row))
        for i, row in enumerate(lanes)
    )

    names = ["s0", "f"]
    # Undirected edges as (left node, right node, kind of the forward state, kind of the
    # backward state, branch, depth of forward kind, depth of backward kind).
    edges: list[tuple[int, int, int, int, int, int, int]] = []
    fork = 1
    for i, k in enumerate(depths):
        left_of_diamond = []
        for j in range(1, k + 1):
            names.append(f"u({i + 1},{j},l)")
            names.append(f"u({i + 1},{j},r)")
            left_of_diamond.append(len(names) - 2)
        names.append(f"t{i + 1}")
        leaf = len(names) - 1
        previous = fork
        for j in range(1, k + 1):
            ul = left_of_diamond[j - 1]
            ur = ul + 1
            back_kind = StateKind.FORK_IN if j == 1 else StateKind.R_MINUS
            edges.append((previous, ul, StateKind.L_PLUS, back_kind, i, j, 0 if j == 1 else j - 1))
            for _ in range(lanes_t[i][j - 1]):
                edges.append((ul, ur, StateKind.R_PLUS, StateKind.L_MINUS, i, j, j))
            previous = ur
        edges.append((previous, leaf, StateKind.LEAF_IN, StateKind.R_MINUS, i, k, k))

    n_states = 1 + 2 * len(edges)
    tail = np.empty(n_states, np.int32)
    head = np.empty(n_states, np.int32)
    kind = np.empty(n_states, np.int8)
    branch = np.empty(n_states, np.int32)
    depth = np.empty(n_states, np.int32)
    tail[0], head[0], kind[0], branch[0], depth[0] = 0, fork, StateKind.START, -1, 0
    for e, (a, b, fwd_kind, back_kind, i, fwd_depth, back_depth) in enumerate(edges):
        tail[1 + 2 * e], head[1 + 2 * e] = a, b
        tail[2 + 2 * e], head[2 + 2 * e] = b, a
        kind[1 + 2 * e], kind[2 + 2 * e] = fwd_kind, back_kind
        branch[1 + 2 * e] = branch[2 + 2 * e] = i
        depth[1 + 2 * e], depth[2 + 2 * e] = fwd_depth, back_depth
    depth[kind == StateKind.LEAF_IN] = 0
    depth[kind == StateKind.FORK_IN] = 0

    # States leaving each node (s0 -> f is directed, so nothing leaves s0 after the start).
    leaving_order = np.argsort(tail[1:], kind="stable") + 1
    leaving_count = np.bincount(tail[1:], minlength=len(names))
    leaving_start = np.concatenate(([0], np.cumsum(leaving_count)))
    degree = leaving_count[head]
    row_start = np.concatenate(([0], np.cumsum(degree))).astype(np.int64)
    next_state = np.concatenate(
        [leaving_order[leaving_start[v] : leaving_start[v + 1]] for v in head]
    ).astype(np.int32)

    return Graph(
        depths=depths,
        lanes=lanes_t,
        node_names=tuple(names),
        state_tail=tail,
        state_head=head,
        state_kind=kind,
        state_branch=branch,
        state_depth=depth,
        row_start=row_start,
        next_state=next_state,
    )


def from_description(description: dict) -> Graph:
    """The graph that :meth:`Graph.describe` described."""
    if "W" in description:
        return path_star(description["W"], description["K"], description["L"])
    return heterogeneous(description["depths"], description["lanes"])
