"""Graphs and their edge-state chains (docs/model.md sections 1, 2 and 7).

A state is a directed edge ``u -> v``. State 0 is the start state, the directed edge from a
virtual source into the root (``s0 -> f`` on the path-star); undirected edge ``e`` (numbered from
0) gives state ``1 + 2e`` (traversed from its first end to its second) and state ``2 + 2e`` (the
other way). From ``u -> v`` the valid next states are all states leaving ``v``, the U-turn
included, so the chain is stored once as CSR rows: ``next_state[row_start[s]:row_start[s + 1]]``
are the states that may follow ``s``. Nothing leaves the source, so no state enters it again.

:class:`Graph` holds any such chain; :class:`PathStar` adds what the paper's path-star graph gives
each state (its kind, branch and depth), which the named policies and the a, b, c, d readouts use.

Any undirected multigraph with a root becomes a :class:`Graph` through :func:`from_edges` (or
:func:`from_networkx`); the families :func:`star`, :func:`tree`, :func:`grid` and :func:`regular`
are built that way, and every graph's ``description`` rebuilds it (:func:`from_description`).
On every graph the default targets (``leaves``) are the nodes of degree 1 other than the root or,
where there are none, the nodes farthest from the root; training may change the rows of the
states that have more than one move and do not enter the root (docs/model.md section 7).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph

from . import checks, memory
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
            raise InputError(f"target: no node {name!r} in this graph; allowed: 'leaves' or "
                             f"{self._allowed_names()}", "target") from None

    def _canonical(self, name: str) -> str:
        return name.strip()  # node names hold no white space (_node_name)

    def _allowed_names(self) -> str:
        """The node names a target may be: nodes some state enters (the source is none)."""
        entered = np.unique(self.state_head)
        shown = ", ".join(self.node_names[v] for v in entered[:6])
        return f"one of the {len(entered)} node names it enters ({shown}{', ...' if len(entered) > 6 else ''})"

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
        depths = f"K = {self.depths[0]}" if len(set(self.depths)) == 1 else "K_i the depth of branch i"
        return (f"f, t1..t{self.branches}, or u(i,j,l) / u(i,j,r) with 1 <= i <= {self.branches} "
                f"and 1 <= j <= K_i ({depths})")


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


def path_star_size(depths: Sequence[int], lanes: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(n_states, n_transitions) of the path-star with these depths and lanes, without building
    it: a state entering node v has deg(v) next states, and v has deg(v) entering states (the
    fork one more, s0 -> f): W (W + 1) at the fork, (L + 1)^2 at each diamond node, 1 at a leaf."""
    n_edges = sum(k + sum(row) + 1 for k, row in zip(depths, lanes))
    w = len(depths)
    return 1 + 2 * n_edges, (w + 1) * w + sum(2 * (n + 1) ** 2 for row in lanes for n in row) + w


def symmetric_size(branches: int, depth: int, lanes: int) -> tuple[int, int]:
    """:func:`path_star_size` of the symmetric path-star, in closed form."""
    w, k, n = branches, depth, lanes
    return 1 + 2 * w * (k * n + k + 1), (w + 1) * w + 2 * w * k * (n + 1) ** 2 + w


def _require_memory(n_states: int, n_transitions: int, what: str, parameter: str) -> None:
    memory.require(memory.chain_bytes(n_states, n_transitions),
                   f"{what}: the graph has {memory.format_count(n_states)} states and {memory.format_count(n_transitions)} transitions and",
                   parameter)


def path_star(branches: int, depth: int, lanes: int) -> PathStar:
    """The symmetric path-star graph with W = branches, K = depth and L = lanes."""
    branches = checks.whole("W (branches)", branches, 1)
    depth = checks.whole("K (depth)", depth, 1)
    lanes = checks.whole("L (lanes)", lanes, 1)
    _require_memory(*symmetric_size(branches, depth, lanes), f"W = {branches}, K = {depth}, L = {lanes}", "W")
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
        given = [len(row) if isinstance(row, (Sequence, np.ndarray)) else "not a list" for row in lanes]
        raise InputError("lanes must give one lane count per diamond, len(lanes[i]) == depths[i]: depths "
                         f"{list(depths)}, got lanes of {len(lanes)} branch(es) with {given} counts")
    lanes_t = tuple(tuple(checks.whole(f"lanes[{i}][{j}] (L)", n, 1) for j, n in enumerate(row))
                    for i, row in enumerate(lanes))
    _require_memory(*path_star_size(depths, lanes_t), f"depths {_short(depths)}", "depths")

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


def _short(values: Sequence[int]) -> str:
    return ",".join(map(str, values)) if len(values) <= 8 else f"{values[0]},...,{values[-1]} ({len(values)} branches)"


def in_words(description: dict) -> str:
    """A graph's description (:meth:`Graph.describe`) as a reader would say it."""
    if {"W", "K", "L"} <= description.keys():
        return f"the path-star W = {description['W']}, K = {description['K']}, L = {description['L']}"
    if {"depths", "lanes"} <= description.keys():
        lanes = {n for row in description["lanes"] for n in row}
        lanes_text = f"L = {lanes.pop()}" if len(lanes) == 1 else "lanes varying per diamond"
        return f"the path-star with depths {_short(description['depths'])} and {lanes_text}"
    if "family" in description:
        size = ", ".join(f"{k} {v}" for k, v in description.items() if k != "family")
        return f"the {description['family']} graph ({size})"
    if "edges" in description:
        edges = len(description["edges"])
        return f"a graph of {edges:,} edge{'' if edges == 1 else 's'}, root {description['root']!r}"
    return ", ".join(f"{k} = {v}" for k, v in description.items())


# --------------------------------------------------------------------------- any graph

SOURCE_NAME = "s0"  # the virtual source's name, unless the graph has a node of that name
MAX_EDGES = 2**31 // 2 - 1  # state numbers are int32


def chain_size(degree: np.ndarray, root: int) -> tuple[int, int]:
    """(n_states, n_transitions) of the chain of a multigraph with these node degrees: a state
    entering v has deg(v) next states and v is entered by deg(v) states (the root by one more,
    the start state)."""
    degree = np.asarray(degree, np.int64)
    return 1 + int(degree.sum()), int((degree * degree).sum()) + int(degree[root])


def _node_name(node: Any, parameter: str) -> str:
    if isinstance(node, (bool, np.bool_)) or not isinstance(node, (str, int, np.integer)):
        raise InputError(f"{parameter}: node names must be strings or whole numbers, got {node!r}")
    name = str(node).strip()
    if not name or any(c.isspace() for c in name) or name.startswith("#"):
        raise InputError(f"{parameter}: node name {str(node)!r} is not allowed (it must be non-empty, "
                         "without white space and not start with #)")
    return name


def from_edges(edges: Iterable[Sequence[Hashable]], root: Hashable, *,
               leaves: Sequence[Hashable] | None = None) -> Graph:
    """The graph of an undirected multigraph given by its edges, pairs of node names (strings or
    whole numbers; a repeated pair is a parallel edge, a distinct lane), with the start state
    ``s0 -> root`` from a virtual source (named ``s0``, or ``<source>`` if a node is called s0).
    Nodes are numbered in order of first appearance after the source; edge e gives states 1 + 2e
    (first end to second) and 2 + 2e. ``leaves`` names the default targets; by default the nodes
    of degree 1 other than the root or, if there are none, the nodes farthest from the root.
    Refuses (InputError) an empty edge list, a self-loop, a root or leaf that is not a node, a
    graph in which some node cannot be reached from the root, and (SizeError) a chain too large
    for memory, before building anything large."""
    if isinstance(edges, np.ndarray):
        edges = edges.tolist()
    pairs = []
    for number, edge in enumerate(edges):
        if isinstance(edge, (str, bytes)) or not isinstance(edge, (Sequence, np.ndarray)) or len(edge) != 2:
            raise InputError(f"edges: edge {number} must be a pair of node names, got {edge!r}")
        a, b = (_node_name(v, f"edges (edge {number})") for v in edge)
        if a == b:
            raise InputError(f"edges: edge {number} is a self-loop at node {a!r}; every edge must join two "
                             "distinct nodes")
        pairs.append((a, b))
    if not pairs:
        raise InputError("edges: the edge list is empty; a graph needs at least one edge")
    if len(pairs) > MAX_EDGES:
        raise InputError(f"edges: {len(pairs):,} edges are more than the {MAX_EDGES:,} the chain can number")
    index: dict[str, int] = {}
    for pair in pairs:
        for name in pair:
            if name not in index:
                index[name] = len(index) + 1
    source = SOURCE_NAME if SOURCE_NAME not in index else "<source>"
    names = (source, *index)
    root_name = _node_name(root, "root")
    if root_name not in index:
        raise InputError(f"root: no node {root_name!r} in the edge list ({len(index):,} nodes: "
                         f"{', '.join(list(index)[:5])}{', ...' if len(index) > 5 else ''})")
    ends = np.array([(index[a], index[b]) for a, b in pairs], np.int64)
    return _build(names, ends, index[root_name], leaves, None)


def _build(names: Sequence[str], ends: np.ndarray, root: int, leaves: Sequence[Hashable] | None,
           description: dict | None) -> Graph:
    """The Graph of nodes ``names`` (0 the source), edges ``ends`` (node indices >= 1) and
    ``root``; ``description`` None means the edge list itself (from_edges)."""
    n_nodes = len(names)
    degree = np.bincount(ends.ravel(), minlength=n_nodes)
    n_states, n_transitions = chain_size(degree, root)
    memory.require(memory.chain_bytes(n_states, n_transitions),
                   f"graph: {n_nodes - 1:,} nodes and {len(ends):,} edges make {memory.format_count(n_states)} states and "
                   f"{memory.format_count(n_transitions)} transitions and", "graph")
    distance = _distances(n_nodes, ends, root)
    unreached = np.flatnonzero(distance[1:] < 0) + 1
    if unreached.size:
        raise InputError(f"edges: the graph is disconnected: node {names[unreached[0]]!r}"
                         f"{f' and {unreached.size - 1:,} other node' + ('s' if unreached.size > 2 else '') if unreached.size > 1 else ''} "
                         f"cannot be reached from the root {names[root]!r}")
    if leaves is None:
        candidates = np.flatnonzero(degree == 1)
        candidates = candidates[candidates != root]
        if not candidates.size:
            candidates = np.flatnonzero(distance == distance.max())
        leaf_nodes = tuple(int(v) for v in candidates)
    else:
        lookup = {name: i for i, name in enumerate(names) if i > 0}
        leaf_nodes = []
        for leaf in leaves:
            name = _node_name(leaf, "leaves")
            if name not in lookup:
                raise InputError(f"leaves: no node {name!r} in the graph")
            leaf_nodes.append(lookup[name])
        leaf_nodes = tuple(checks.distinct("leaves", leaf_nodes))
    tail, head, row_start, next_state = edge_state_chain(n_nodes, ends, 0, root)
    trainable = (degree[head] > 1) & (head != root)
    if description is None:
        description = {"edges": [[names[a], names[b]] for a, b in ends.tolist()], "root": names[root]}
        if leaves is not None:
            description["leaves"] = [names[v] for v in leaf_nodes]
    return Graph(node_names=tuple(names), state_tail=tail, state_head=head, row_start=row_start,
                 next_state=next_state, leaves=leaf_nodes, trainable=trainable,
                 description=description)


def _distances(n_nodes: int, ends: np.ndarray, root: int) -> np.ndarray:
    """Edges from ``root`` to every node of the undirected graph (-1 where unreachable)."""
    adjacency = sp.coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(n_nodes, n_nodes)).tocsr()
    distance = csgraph.shortest_path(adjacency, directed=False, unweighted=True, indices=root)
    return np.where(np.isfinite(distance), distance, -1).astype(np.int64)


def node_distances(graph: Graph, node: int) -> np.ndarray:
    """Edges from ``node`` to every node of the graph (the source -1: nothing enters it)."""
    ends = np.stack([graph.state_tail[1::2], graph.state_head[1::2]], axis=1).astype(np.int64)
    return _distances(graph.n_nodes, ends, node)


def from_networkx(G: Any, root: Hashable, *, leaves: Sequence[Hashable] | None = None) -> Graph:
    """The graph of a networkx Graph or MultiGraph (undirected; a MultiGraph's parallel edges are
    lanes) with the start state into ``root``; node names are ``str(node)``. networkx itself is
    not needed to call this (``pip install 'edgewalk[graphs]'`` installs it)."""
    if not (hasattr(G, "edges") and hasattr(G, "is_directed")):
        raise InputError(f"G: expected a networkx graph, got {type(G).__name__}")
    if G.is_directed():
        raise InputError("G: a directed graph; the model's graphs are undirected (use G.to_undirected())")
    names = {str(v) for v in G.nodes}
    if len(names) != G.number_of_nodes():
        raise InputError("G: two nodes have the same name as strings; rename them")
    isolated = [v for v in G.nodes if G.degree(v) == 0]
    if isolated and G.number_of_edges():
        raise InputError(f"edges: the graph is disconnected: node {str(isolated[0])!r} has no edge")
    return from_edges([(str(a), str(b)) for a, b in G.edges()], str(root), leaves=leaves)


# --------------------------------------------------------------------------- families

FAMILIES = ("path-star", "star", "tree", "grid", "regular")
# Each family's size parameters, in the order of its builder's arguments.
FAMILY_PARAMETERS = {
    "path-star": ("W", "K", "L"),
    "star": ("degree", "length"),
    "tree": ("branching", "depth"),
    "grid": ("rows", "columns"),
    "regular": ("nodes", "degree"),
}


def _star_degrees(d: int, n: int) -> tuple[int, int, int]:
    """(sum of squared degrees, sum of degrees, root degree) of star(d, n)."""
    return d * d + d * ((n - 1) * 4 + 1), 2 * d * n, d


def _tree_degrees(b: int, h: int) -> tuple[int, int, int]:
    # inner = b**0 + ... + b**(h - 1) (in closed form: h can be huge); the root has degree b,
    # other inner nodes b + 1, leaves 1
    inner = (b**h - 1) // (b - 1) if b > 1 else h
    return b * b + (inner - 1) * (b + 1) ** 2 + b**h, 2 * (inner + b**h - 1), b


def _grid_degrees(m: int, n: int) -> tuple[int, int, int]:
    # a node's degree is its neighbours in its column plus those in its row
    def line(k: int) -> tuple[int, int]:  # along a path of k nodes: sum of neighbours, of squares
        return 2 * (k - 1), 0 if k == 1 else 2 + 4 * (k - 2)

    (r1, r2), (c1, c2) = line(m), line(n)
    return n * r2 + m * c2 + 2 * r1 * c1, n * r1 + m * c1, (m > 1) + (n > 1)


def _regular_degrees(n: int, d: int) -> tuple[int, int, int]:
    return n * d * d, n * d, d


_DEGREES = {"star": _star_degrees, "tree": _tree_degrees, "grid": _grid_degrees, "regular": _regular_degrees}


def family_size(name: str, *size: int) -> tuple[int, int]:
    """(n_states, n_transitions) of a family's graph from its size parameters (in the order of
    FAMILY_PARAMETERS), without building it."""
    if name == "path-star":
        return symmetric_size(*size)
    squares, degrees, root_degree = _DEGREES[name](*size)
    return 1 + degrees, squares + root_degree


def _require_family(name: str, *size: int) -> None:
    """The memory check of a family's chain, before any node is made."""
    n_states, n_transitions = family_size(name, *size)
    parameters = FAMILY_PARAMETERS[name]
    what = f"{name} " + ", ".join(f"{p} = {v}" for p, v in zip(parameters, size))
    _require_memory(n_states, n_transitions, what, parameters[0])


def _family(names: Sequence[str], ends: Iterable[tuple[int, int]], root: int, description: dict) -> Graph:
    return _build(names, np.array(list(ends), np.int64).reshape(-1, 2), root, None, description)


def star(degree: int, length: int) -> Graph:
    """Bachmann & Nagarajan's star graph: ``degree`` arms of ``length`` edges from the root ``r``;
    node j of arm i is ``v(i,j)`` (1-based, j = length at the arm's end, a leaf). It is the
    path-star with one lane per diamond and no diamonds: every node has one edge each way."""
    d = checks.whole("degree", degree, 1)
    n = checks.whole("length", length, 1)
    _require_family("star", d, n)
    names = [SOURCE_NAME, "r"] + [f"v({i},{j})" for i in range(1, d + 1) for j in range(1, n + 1)]
    ends = []
    for i in range(d):
        first = 2 + i * n
        ends.append((1, first))
        ends.extend((first + j, first + j + 1) for j in range(n - 1))
    return _family(names, ends, 1, {"family": "star", "degree": d, "length": n})


def tree(branching: int, depth: int) -> Graph:
    """The balanced tree of ``depth`` levels below the root ``r``, every inner node with
    ``branching`` children; a node is named by its path of 1-based child numbers (``r.2.1``), and
    the b^h nodes at depth h are the leaves."""
    b = checks.whole("branching", branching, 1)
    h = checks.whole("depth", depth, 1)
    _require_family("tree", b, h)
    names = [SOURCE_NAME, "r"]
    ends = []
    level = [1]
    for _ in range(h):
        below = []
        for parent in level:
            for c in range(1, b + 1):
                names.append(f"{names[parent]}.{c}")
                ends.append((parent, len(names) - 1))
                below.append(len(names) - 1)
        level = below
    return _family(names, ends, 1, {"family": "tree", "branching": b, "depth": h})


def grid(rows: int, columns: int) -> Graph:
    """The ``rows`` x ``columns`` grid graph, nodes ``(i,j)`` (1-based), the root the corner
    ``(1,1)``; it has no leaves, so its default target is the far corner ``(rows,columns)``."""
    m = checks.whole("rows", rows, 1)
    n = checks.whole("columns", columns, 1)
    if m * n < 2:
        raise InputError("rows: a 1 x 1 grid has no edge; give rows * columns >= 2", "rows")
    _require_family("grid", m, n)
    names = [SOURCE_NAME] + [f"({i},{j})" for i in range(1, m + 1) for j in range(1, n + 1)]
    node = np.arange(1, m * n + 1).reshape(m, n)
    ends = np.concatenate([np.stack([node[:, :-1].ravel(), node[:, 1:].ravel()], axis=1),
                           np.stack([node[:-1, :].ravel(), node[1:, :].ravel()], axis=1)])
    return _build(names, ends.astype(np.int64), 1, None, {"family": "grid", "rows": m, "columns": n})


REGULAR_ATTEMPTS = 1000


def regular(nodes: int, degree: int, seed: int = 0) -> Graph:
    """A random connected simple ``degree``-regular graph on ``nodes`` nodes named ``0`` ..
    ``nodes - 1``, the root ``0``, drawn from ``seed`` (numpy's PCG64) by pairing the nodes' edge
    ends at random, never pairing a node with itself or a neighbour, and starting again when stuck
    or when the graph is disconnected (a connected 2-regular graph is a random cycle). It has no
    leaves, so its default targets are the nodes farthest from the root."""
    n = checks.whole("nodes", nodes, 2)
    d = checks.whole("degree", degree, 1, n - 1)
    seed = checks.seed("seed", seed)
    if n * d % 2:
        raise InputError(f"degree: nodes * degree must be even for a {d}-regular graph on {n} nodes", "degree")
    if d == 1 and n > 2:
        raise InputError(f"degree: a 1-regular graph on {n} nodes is disconnected; give degree >= 2 "
                         "(or nodes = 2)", "degree")
    _require_family("regular", n, d)
    rng = np.random.default_rng(seed)
    names = [SOURCE_NAME] + [str(v) for v in range(n)]
    description = {"family": "regular", "nodes": n, "degree": d, "seed": seed}
    if d == 2:
        order = rng.permutation(n)
        return _family(names, zip(order + 1, np.roll(order, -1) + 1), 1, description)
    for _ in range(REGULAR_ATTEMPTS):
        ends = _pairing(n, d, rng)
        if ends is not None and (_distances(n + 1, ends + 1, 1)[1:] >= 0).all():
            return _family(names, ends + 1, 1, description)
    raise InputError(f"degree: no connected {d}-regular graph on {n} nodes found in {REGULAR_ATTEMPTS} "
                     "attempts; choose a smaller degree", "degree")


def _pairing(n: int, d: int, rng: np.random.Generator) -> np.ndarray | None:
    """One attempt at a simple d-regular graph: shuffle the open edge ends and pair neighbours,
    keeping the pairs that make no loop or repeated edge, until all are paired (None if stuck)."""
    edges: set[tuple[int, int]] = set()
    stubs = np.repeat(np.arange(n), d)
    while stubs.size:
        stubs = rng.permutation(stubs)
        left = []
        for a, b in zip(stubs[0::2].tolist(), stubs[1::2].tolist()):
            pair = (a, b) if a < b else (b, a)
            if a == b or pair in edges:
                left += [a, b]
            else:
                edges.add(pair)
        if len(left) == stubs.size:
            return None
        stubs = np.array(left, np.int64)
    return np.array(sorted(edges), np.int64)


def family(name: str, **parameters: Any) -> Graph:
    """The graph of a family by name with its size parameters (see FAMILY_PARAMETERS; ``regular``
    also takes ``seed``, ``path-star`` also ``depths`` and ``lanes`` for a heterogeneous one)."""
    name = checks.choice("family", name, FAMILIES)
    if name == "path-star":
        if "depths" in parameters:
            return heterogeneous(parameters["depths"], parameters.get("lanes", 1))
        return path_star(parameters["W"], parameters["K"], parameters["L"])
    allowed = FAMILY_PARAMETERS[name] + (("seed",) if name == "regular" else ())
    unknown = sorted(set(parameters) - set(allowed))
    missing = [p for p in FAMILY_PARAMETERS[name] if p not in parameters]
    if unknown or missing:
        raise InputError(f"family {name} takes the parameters {', '.join(allowed)}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                         + (f"; missing: {', '.join(missing)}" if missing else ""), "family")
    return {"star": star, "tree": tree, "grid": grid, "regular": regular}[name](**parameters)


def from_description(description: dict) -> Graph:
    """The graph that :meth:`Graph.describe` described: a path-star by W, K, L or depths, lanes;
    a family by ``family`` and its parameters; any other graph by its edge list and root."""
    if not isinstance(description, dict):
        raise InputError(f"graph description must be a mapping, got {description!r}")
    if {"window", "graph"} <= description.keys():  # a window chain (edgewalk.history)
        from .history import from_description as window_from_description

        return window_from_description(description)
    if {"W", "K", "L"} <= description.keys():
        return path_star(description["W"], description["K"], description["L"])
    if {"depths", "lanes"} <= description.keys():
        return heterogeneous(description["depths"], description["lanes"])
    if "family" in description:
        parameters = {k: v for k, v in description.items() if k != "family"}
        return family(description["family"], **parameters)
    if {"edges", "root"} <= description.keys():
        return from_edges(description["edges"], description["root"], leaves=description.get("leaves"))
    raise InputError(f"graph description {str(description)[:200]}: expected W, K, L; depths, lanes; "
                     "family and its parameters; or edges and root")


def short_name(graph: Graph) -> str:
    """A short name of the graph for run names: W15_K15_L5, depths6-5-4, tree_branching2_depth3,
    or graph-<12 hex digits of the edge list's hash> for a user's graph."""
    return _short_name(graph.describe())


def _short_name(d: dict) -> str:
    if "window" in d:  # a window chain (edgewalk.history)
        return f"{_short_name(d['graph'])}_window{d['window']}"
    if "W" in d:
        return f"W{d['W']}_K{d['K']}_L{d['L']}"
    if "depths" in d:
        return "depths" + "-".join(map(str, d["depths"]))
    if "family" in d:
        return d["family"] + "".join(f"_{k}{v}" for k, v in d.items() if k != "family")
    digest = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    return f"graph-{digest}"
