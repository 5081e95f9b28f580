"""How training parametrises a policy: one logit per CSR entry (``pi(.|s) = softmax(logits[row
s])``; invalid moves are absent from the rows, which is the paper's -inf; the pretrained policy
has every logit 0), optionally tied across branches and parallel edges, and the per-depth
a, b, c, d that a path-star policy's table shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .. import checks
from ..errors import InputError
from ..graph import Graph, PathStar, StateKind
from ..policy import CONNECTOR_KINDS

Parametrisation = Literal["tabular", "tied"]
PARAMETRISATIONS = ("tabular", "tied")

# Per trained kind: (name of the parameter, whether the desired move crosses a connector).
# a = connector at R+, b = multiedges at R-, c = multiedges at L+, d = connector at L-.
PARAMETER_OF_KIND = {
    StateKind.R_PLUS: ("a", True),
    StateKind.R_MINUS: ("b", False),
    StateKind.L_PLUS: ("c", False),
    StateKind.L_MINUS: ("d", True),
}
BACKWARD_KINDS = (StateKind.R_MINUS, StateKind.L_MINUS)
# Values of one kind and depth closer than this are the same: the policy is symmetric there.
SYMMETRIC_TOLERANCE = 1e-12


def pretrained_logits(graph: Graph) -> np.ndarray:
    """The pretrained (uniform) policy's logits: 0 on every CSR entry."""
    return np.zeros(graph.n_transitions)


def trained_entries(graph: Graph) -> np.ndarray:
    """Boolean mask of the CSR entries training may change: the rows of the graph's trainable
    states (on the path-star the R+, R-, L+ and L- states; the start, fork-incoming and
    leaf-incoming rows never change)."""
    return graph.trainable[graph.entry_state]


@dataclass(frozen=True, eq=False)
class Tying:
    """How free parameters map to CSR logits: ``logits = theta[group]``. The gradient with respect
    to theta is the sum of the logit gradients over each group (``pull_back``)."""

    name: str
    group: np.ndarray  # int64, one parameter index per CSR entry
    n_parameters: int

    def logits(self, theta: np.ndarray) -> np.ndarray:
        return theta[self.group]

    def pull_back(self, logit_gradient: np.ndarray) -> np.ndarray:
        return np.bincount(self.group, weights=logit_gradient, minlength=self.n_parameters)

    def parameters_of(self, logits: np.ndarray) -> np.ndarray:
        """theta for logits that are constant on every group (read off each group's first entry)."""
        groups, first = np.unique(self.group, return_index=True)
        theta = np.zeros(self.n_parameters)
        theta[groups] = logits[first]
        return theta


def tying(graph: Graph, parametrisation: Parametrisation = "tabular") -> Tying:
    """``tabular``: one parameter per CSR entry. ``tied`` (path-star only): in trainable rows, one
    parameter per (state kind, state depth, next state's kind, next state's depth), shared by all
    branches and parallel edges; every other entry keeps a parameter of its own (never trained)."""
    n = graph.n_transitions
    checks.choice("parametrisation", parametrisation, PARAMETRISATIONS)
    if parametrisation == "tabular":
        return Tying("tabular", np.arange(n), n)
    if not isinstance(graph, PathStar):
        raise InputError("parametrisation: tied is defined on path-star graphs only; use tabular")
    rows = graph.entry_state
    nxt = graph.next_state
    key = np.stack([
        graph.state_kind[rows].astype(np.int64), graph.state_depth[rows].astype(np.int64),
        graph.state_kind[nxt].astype(np.int64), graph.state_depth[nxt].astype(np.int64),
        np.where(trained_entries(graph), -1, np.arange(n)),  # untrained entries: a group each
    ], axis=1)
    _, group = np.unique(key, axis=0, return_inverse=True)
    group = group.ravel().astype(np.int64)
    return Tying("tied", group, int(group.max()) + 1)


@dataclass(frozen=True, eq=False)
class DepthParameters:
    """Reads a, b, c, d per (branch, depth) off the CSR probabilities of a path-star policy; on
    any other graph there are none (every readout is empty)."""

    graph: Graph
    desired: np.ndarray  # entry is the kind's desired move (a, b, c or d)

    @classmethod
    def build(cls, graph: Graph) -> "DepthParameters":
        desired = np.zeros(graph.n_transitions, bool)
        if isinstance(graph, PathStar):
            rows = graph.entry_state
            crosses = np.isin(graph.state_kind[graph.next_state], CONNECTOR_KINDS)
            for kind, (_, on_connector) in PARAMETER_OF_KIND.items():
                in_kind = graph.state_kind[rows] == kind
                desired |= in_kind & (crosses if on_connector else ~crosses)
        return cls(graph, desired)

    def per_state(self, values: np.ndarray) -> np.ndarray:
        """Per state, the sum of ``values`` (one per CSR entry) over its desired move."""
        g = self.graph
        return np.bincount(g.entry_state, weights=values * self.desired, minlength=g.n_states)

    def per_branch(self, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        """name -> (W, max K) mean over the states of that kind at (branch, depth); nan where a
        branch is shorter."""
        g = self.graph
        if not isinstance(g, PathStar):
            return {name: np.empty((0, 0)) for name in "abcd"}
        per_state = self.per_state(probabilities)
        w, k = g.branches, max(g.depths)
        out = {}
        for kind, (name, _) in PARAMETER_OF_KIND.items():
            states = np.flatnonzero(g.state_kind == kind)
            flat = g.state_branch[states] * k + g.state_depth[states] - 1
            total = np.bincount(flat, weights=per_state[states], minlength=w * k)
            count = np.bincount(flat, minlength=w * k)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = (total / count).reshape(w, k)
        return out

    def record(self, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        """(K,) averaged over branches on a symmetric graph, else (W, max K) per branch (empty
        off the path-star)."""
        values = self.per_branch(probabilities)
        if isinstance(self.graph, PathStar) and self.graph.is_symmetric:
            return {name: v.mean(axis=0) for name, v in values.items()}
        return values

    def visit_weighted(self, probabilities: np.ndarray, visits: Callable[[], np.ndarray]
                       ) -> dict[str, np.ndarray] | None:
        """name -> (3, max K): per depth, the mean of the kind's parameter over all its states
        (every branch and lane) weighted by ``visits()`` (expected visits per state before the
        hit), and the smallest and largest of the per-branch weighted means (nan where no state
        of a depth is visited). None off the path-star. Where every state of each kind and depth
        has the same value, that value fills all three rows and ``visits`` is not called."""
        g = self.graph
        if not isinstance(g, PathStar):
            return None
        per_state = self.per_state(probabilities)
        w, k = g.branches, max(g.depths)
        chosen = {name: np.flatnonzero(g.state_kind == kind) for kind, (name, _) in PARAMETER_OF_KIND.items()}

        def spread(states: np.ndarray) -> float:
            depth = g.state_depth[states] - 1
            values = per_state[states]
            high = np.full(k, -np.inf)
            low = np.full(k, np.inf)
            np.maximum.at(high, depth, values)
            np.minimum.at(low, depth, values)
            present = np.isfinite(high)
            return float(np.max(high[present] - low[present], initial=0.0))

        if all(spread(states) <= SYMMETRIC_TOLERANCE for states in chosen.values()):
            plain = self.per_branch(probabilities)
            return {name: np.tile(np.nanmax(plain[name], axis=0), (3, 1)) for name in chosen}
        weights = visits()
        out = {}
        for name, states in chosen.items():
            depth = g.state_depth[states] - 1
            flat = g.state_branch[states] * k + depth
            v, n = per_state[states], weights[states]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.bincount(depth, n * v, k) / np.bincount(depth, n, k)
                branch = (np.bincount(flat, n * v, w * k) / np.bincount(flat, n, w * k)).reshape(w, k)
            visited = np.isfinite(branch)
            low = np.min(np.where(visited, branch, np.inf), axis=0)
            high = np.max(np.where(visited, branch, -np.inf), axis=0)
            out[name] = np.where(visited.any(axis=0), np.stack([mean, low, high]), np.nan)
        return out
