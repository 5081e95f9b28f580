"""Exact-gradient training of softmax policies: SFT and RLVR of MODEL.md section 5.

A policy is parametrised by one logit per CSR entry (``graph.next_state[k]`` from the state whose
row holds k): ``pi(.|s) = softmax(logits[row s])``. Invalid moves are not in the CSR rows, which is
the paper's ``-inf``; the pretrained policy has every logit 0. A *tied* parametrisation shares one
logit across branches and parallel edges per (state kind, depth, kind and depth of the next state),
which is the per-depth a/b/c/d family of MODEL.md section 3.

Only rows of the four trained state kinds (R+, R-, L+, L-) ever change. The start state and the
fork-incoming states stay uniform and the leaf-incoming states deterministic (MODEL.md section 3);
the gradient functions still return the full gradient, the training loops mask it.

- SFT: gradient descent on the exact expected cross-entropy of golden shortest paths,
  ``dCE/dTheta[s, a] = d_Q(s) pi(a|s) - n_Q(s, a)`` with ``n_Q(s, a)`` the expected number of golden
  moves ``s -> a`` (targets averaged) and ``d_Q(s) = sum_a n_Q(s, a)``.
- RLVR: sign gradient ascent on ``J = 1 - beta E_x[T_x]`` with the exact population gradient
  ``E_x[d_x(s) pi(a|s) A_x(s, a)]``, one sparse LU factorisation per target per iteration.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla
from scipy import optimize

from .exact import START_STATE, _transient_system, expected_hitting_time
from .graph import Graph, StateKind, path_star
from .policy import _CONNECTOR_KINDS, Policy, pretrained, rlvr

Parametrisation = Literal["tabular", "tied"]

TRAINED_KINDS = (StateKind.R_PLUS, StateKind.R_MINUS, StateKind.L_PLUS, StateKind.L_MINUS)
BACKWARD_KINDS = (StateKind.R_MINUS, StateKind.L_MINUS)

# Per trained kind: (name of the parameter, whether the desired move crosses a connector).
# a = connector at R+, b = multiedges at R-, c = multiedges at L+, d = connector at L-.
_PARAMETER_OF_KIND = {
    StateKind.R_PLUS: ("a", True),
    StateKind.R_MINUS: ("b", False),
    StateKind.L_PLUS: ("c", False),
    StateKind.L_MINUS: ("d", True),
}


# --------------------------------------------------------------------------- logits and policies


def pretrained_logits(graph: Graph) -> np.ndarray:
    """The pretrained (uniform) policy's logits: 0 on every CSR entry."""
    return np.zeros(graph.n_transitions)


def _rows(graph: Graph) -> np.ndarray:
    """The state (row) of every CSR entry."""
    return np.repeat(np.arange(graph.n_states), np.diff(graph.row_start))


def softmax_rows(graph: Graph, logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the CSR rows (the row maximum is subtracted first, so large logits
    never overflow). All-zero logits give exactly ``1 / degree``, bit for bit the pretrained policy."""
    logits = np.asarray(logits, dtype=float)
    if logits.shape != (graph.n_transitions,):
        raise ValueError(
            f"logits: expected one per CSR entry ({graph.n_transitions}), got shape {logits.shape}"
        )
    starts = graph.row_start[:-1]
    degree = np.diff(graph.row_start)
    weights = np.exp(logits - np.repeat(np.maximum.reduceat(logits, starts), degree))
    return weights / np.repeat(np.add.reduceat(weights, starts), degree)


def policy_from_logits(
    graph: Graph, logits: np.ndarray, name: str = "logits", parameters: dict | None = None
) -> Policy:
    """The softmax policy ``pi(.|s) = softmax(logits[row s])``."""
    return Policy(graph, softmax_rows(graph, logits), name, dict(parameters or {}))


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
    """``tabular``: one parameter per CSR entry. ``tied``: in rows of the trained kinds, one
    parameter per (state kind, state depth, next state's kind, next state's depth), shared by all
    branches and parallel edges; every other entry keeps a parameter of its own (never trained)."""
    n = graph.n_transitions
    if parametrisation == "tabular":
        return Tying("tabular", np.arange(n), n)
    if parametrisation != "tied":
        raise ValueError(f"parametrisation must be 'tabular' or 'tied', got {parametrisation!r}")
    rows = _rows(graph)
    nxt = graph.next_state
    trained = np.isin(graph.state_kind[rows], TRAINED_KINDS)
    key = np.stack([
        graph.state_kind[rows].astype(np.int64), graph.state_depth[rows].astype(np.int64),
        graph.state_kind[nxt].astype(np.int64), graph.state_depth[nxt].astype(np.int64),
        np.where(trained, -1, np.arange(n)),  # untrained entries: a group each
    ], axis=1)
    _, group = np.unique(key, axis=0, return_inverse=True)
    group = group.ravel().astype(np.int64)
    return Tying("tied", group, int(group.max()) + 1)


def trained_entries(graph: Graph) -> np.ndarray:
    """Boolean mask of the CSR entries in rows of the trained kinds (R+, R-, L+, L-)."""
    return np.isin(graph.state_kind[_rows(graph)], TRAINED_KINDS)


# --------------------------------------------------------------------------- a, b, c, d per depth


@dataclass(frozen=True, eq=False)
class _DepthParameters:
    """Reads a, b, c, d per (branch, depth) off the CSR probabilities."""

    graph: Graph
    rows: np.ndarray  # the state of every CSR entry
    desired: np.ndarray  # entry is the kind's desired move (a, b, c or d)

    @classmethod
    def build(cls, graph: Graph) -> "_DepthParameters":
        rows = _rows(graph)
        crosses = np.isin(graph.state_kind[graph.next_state], _CONNECTOR_KINDS)
        desired = np.zeros(graph.n_transitions, bool)
        for kind, (_, on_connector) in _PARAMETER_OF_KIND.items():
            in_kind = graph.state_kind[rows] == kind
            desired |= in_kind & (crosses if on_connector else ~crosses)
        return cls(graph, rows, desired)

    def per_branch(self, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        """name -> (W, max K) mean over the states of that kind at (branch, depth); nan where a
        branch is shorter."""
        g = self.graph
        per_state = np.bincount(self.rows, weights=probabilities * self.desired, minlength=g.n_states)
        w, k = g.branches, max(g.depths)
        out = {}
        for kind, (name, _) in _PARAMETER_OF_KIND.items():
            states = np.flatnonzero(g.state_kind == kind)
            flat = g.state_branch[states] * k + g.state_depth[states] - 1
            total = np.bincount(flat, weights=per_state[states], minlength=w * k)
            count = np.bincount(flat, minlength=w * k)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = (total / count).reshape(w, k)
        return out

    def record(self, probabilities: np.ndarray) -> dict[str, np.ndarray]:
        """(K,) averaged over branches on a symmetric graph, else (W, max K) per branch."""
        values = self.per_branch(probabilities)
        if self.graph.is_symmetric:
            return {name: v.mean(axis=0) for name, v in values.items()}
        return values


# --------------------------------------------------------------------------- exact solves


@dataclass(frozen=True, eq=False)
class _TargetSystem:
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
    def build(cls, graph: Graph, target: int) -> "_TargetSystem":
        # Softmax policies give every valid move positive probability, so the transient set is the
        # one exact.py finds for the pretrained policy (reachable from the start, not a target).
        Q, _, transient = _transient_system(pretrained(graph), target)
        n = len(transient)
        # Number the transient states in reverse Cuthill-McKee order: a banded, fill-light layout
        # the LU can take as it is (no ordering pass, no pivoting: I - Q is a nonsingular M-matrix,
        # so every Schur complement is one too).
        pattern = (Q + Q.T + sp.identity(n)).tocsr()
        order_rcm = csgraph.reverse_cuthill_mckee(pattern, symmetric_mode=True)
        local = np.full(graph.n_states, -1, np.int64)
        local[transient[order_rcm]] = np.arange(n)
        row, col = local[_rows(graph)], local[graph.next_state]
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


def _leaves(graph: Graph) -> list[int]:
    return [graph.leaf(i) for i in range(1, graph.branches + 1)]


class ExactSolver:
    """Exact hitting times and the exact RLVR gradient of softmax policies on one graph, the
    targets being the leaves drawn uniformly. Per call, one LU factorisation per target serves
    both the hitting-time and the visit solve. The transient sets are fixed at construction,
    which is right while every valid move has positive probability (finite logits less than
    about 700 apart within a row)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.systems = [_TargetSystem.build(graph, x) for x in _leaves(graph)]
        self.rows = _rows(graph)

    def mean_hitting_time(self, probabilities: np.ndarray) -> float:
        """E_x[T_x] for the policy with these CSR probabilities."""
        n = self.graph.n_states
        return float(np.mean([s.solve(probabilities, n, False)[0][START_STATE] for s in self.systems]))

    def rlvr_gradient(self, probabilities: np.ndarray, beta: float = 1.0) -> tuple[np.ndarray, float]:
        """(dJ/dlogits per CSR entry, E_x[T_x]) for J = 1 - beta E_x[T_x]: the mean over targets
        of d_x(s) pi(a|s) A_x(s, a), A_x = Q_x - V_x with Q_x(s, a) = -beta (1 + h_x(a)) and
        V_x(s) = sum_a pi(a|s) Q_x(s, a) (= -beta h_x(s) by Bellman; taken as the row mean so that
        every row sums to 0 and one-move rows get exactly 0). Rows of target states and of states
        unreachable from the start get 0 (d_x = 0 there)."""
        g = self.graph
        starts = g.row_start[:-1]
        gradient = np.zeros(g.n_transitions)
        times = []
        for system in self.systems:
            h, d = system.solve(probabilities, g.n_states, True)
            q = -beta * (1.0 + h[g.next_state])
            v = np.add.reduceat(probabilities * q, starts)
            gradient += d[self.rows] * probabilities * (q - v[self.rows])
            times.append(h[START_STATE])
        return gradient / len(self.systems), float(np.mean(times))


def rlvr_objective(graph: Graph, logits: np.ndarray, beta: float = 1.0) -> float:
    """J = 1 - beta E_x[T_x], x a leaf drawn uniformly (the hit is certain for softmax policies)."""
    return 1.0 - beta * ExactSolver(graph).mean_hitting_time(softmax_rows(graph, logits))


def rlvr_gradient(graph: Graph, logits: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """The exact dJ/dlogits (every row, untrained kinds included) of :func:`rlvr_objective`."""
    return ExactSolver(graph).rlvr_gradient(softmax_rows(graph, logits), beta)[0]


# --------------------------------------------------------------------------- SFT targets


def golden_counts(graph: Graph, supervised_backward: np.ndarray | None = None) -> np.ndarray:
    """n_Q per CSR entry: the expected number of times a golden path makes that move, the target
    leaf t_i uniform over branches (weight 1/W). A golden path is s0 -> f, f -> u(i,1,l), one of the
    L_ij multiedges of each diamond drawn uniformly, the connectors, and ends by entering t_i, so
    the start state and each L+ state of branch i occur once and each R+ multiedge state of
    diamond (i, j) 1/L_ij times. d_Q(s) is the row sum.

    ``supervised_backward`` (a boolean mask over states, only R- and L- states may be set) adds
    backtracking labels (MODEL.md section 5, paper Fig. 5 right): a supervised R- state counts 1/W
    times with its multiedges back as the label (shared equally, b -> 1); a supervised L- state of
    diamond (i, j) counts 1/(W L_ij) times with the backward connector as the label (d -> 1). These
    are the weights of the forward states of the same kind (L+ and R+) on golden paths."""
    g = graph
    rows = _rows(g)
    kind = g.state_kind[rows]
    next_kind = g.state_kind[g.next_state]
    crosses = np.isin(next_kind, _CONNECTOR_KINDS)
    degree = np.diff(g.row_start)[rows].astype(float)
    w = 1.0 / g.branches
    counts = np.zeros(g.n_transitions)
    counts[kind == StateKind.START] = w  # each next state is f -> u(i,1,l) for one branch i
    l_plus = (kind == StateKind.L_PLUS) & ~crosses  # the multiedges forward
    counts[l_plus] = w / (degree[l_plus] - 1)
    r_plus = (kind == StateKind.R_PLUS) & crosses  # the connector forward (or into the leaf)
    counts[r_plus] = w / (degree[r_plus] - 1)
    if supervised_backward is not None:
        mask = np.asarray(supervised_backward, bool)
        if mask.shape != (g.n_states,):
            raise ValueError(f"supervised_backward: expected a mask over {g.n_states} states")
        if np.any(mask & ~np.isin(g.state_kind, BACKWARD_KINDS)):
            raise ValueError("supervised_backward: only R- and L- states can be supervised")
        on = mask[rows]
        r_minus = on & (kind == StateKind.R_MINUS) & ~crosses
        counts[r_minus] = w / (degree[r_minus] - 1)
        l_minus = on & (kind == StateKind.L_MINUS) & crosses
        counts[l_minus] = w / (degree[l_minus] - 1)
    return counts


def sft_loss(graph: Graph, logits: np.ndarray, supervised_backward: np.ndarray | None = None) -> float:
    """The expected cross-entropy -sum_k n_Q[k] log pi_k of golden paths (per path, targets
    averaged)."""
    counts = golden_counts(graph, supervised_backward)
    p = softmax_rows(graph, logits)
    on = counts > 0
    return float(-(counts[on] * np.log(p[on])).sum())


def _sft_gradient(graph: Graph, probabilities: np.ndarray, counts: np.ndarray) -> np.ndarray:
    d_q = np.add.reduceat(counts, graph.row_start[:-1])
    return np.repeat(d_q, np.diff(graph.row_start)) * probabilities - counts


def sft_gradient(graph: Graph, logits: np.ndarray, supervised_backward: np.ndarray | None = None) -> np.ndarray:
    """dCE/dlogits = d_Q(s) pi(a|s) - n_Q(s, a) = d_Q(s) (pi(a|s) - p_Q(a|s)); exactly 0 in every
    row that golden paths (and backtracking labels) never condition on."""
    return _sft_gradient(graph, softmax_rows(graph, logits), golden_counts(graph, supervised_backward))


def backward_supervision(graph: Graph, p: float, rng: np.random.Generator) -> np.ndarray:
    """A mask over states selecting round(p * n) of the n backward states (R- and L-) uniformly
    without replacement."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a fraction in [0, 1], got {p!r}")
    backward = np.flatnonzero(np.isin(graph.state_kind, BACKWARD_KINDS))
    chosen = rng.choice(backward, size=int(round(p * len(backward))), replace=False)
    mask = np.zeros(graph.n_states, bool)
    mask[chosen] = True
    return mask


# --------------------------------------------------------------------------- training runs


@dataclass(frozen=True, eq=False)
class TrainingRun:
    """One training run. Row r of ``hitting_time`` and of a, b, c, d belongs to iteration
    ``iteration[r]`` (0 = the pretrained policy). a, b, c, d have shape (rows, K) on a symmetric
    graph (averaged over branches and over the states of each kind) and (rows, W, max K) per
    branch otherwise (nan beyond a branch's depth). ``hitting_time`` is the exact expected
    hitting time averaged over the leaves as targets."""

    method: str  # "sft" or "rlvr"
    graph: dict
    parametrisation: str
    settings: dict  # lr, beta, steps, ...
    iteration: np.ndarray
    hitting_time: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    logits: np.ndarray = field(repr=False)
    policy: Policy = field(repr=False)
    seconds_per_iteration: float = 0.0

    def first_within(self, value: float, relative: float = 0.01) -> int | None:
        """The first recorded iteration whose hitting time is within ``relative`` of ``value``."""
        close = np.flatnonzero(np.abs(self.hitting_time - value) <= relative * abs(value))
        return int(self.iteration[close[0]]) if close.size else None

    def to_dict(self) -> dict:
        """Plain values and numpy arrays (the Policy is left out: rebuild it from ``logits``)."""
        return {
            "method": self.method, "graph": dict(self.graph), "parametrisation": self.parametrisation,
            "settings": dict(self.settings), "iteration": self.iteration,
            "hitting_time": self.hitting_time, "a": self.a, "b": self.b, "c": self.c, "d": self.d,
            "logits": self.logits, "seconds_per_iteration": self.seconds_per_iteration,
        }


class _Recorder:
    def __init__(self, graph: Graph, every: int, last: int) -> None:
        if every < 1:
            raise ValueError(f"record_every must be >= 1, got {every}")
        self.depths = _DepthParameters.build(graph)
        self.every, self.last = every, last
        self.iteration: list[int] = []
        self.time: list[float] = []
        self.values: dict[str, list[np.ndarray]] = {name: [] for name in "abcd"}

    def wants(self, n: int) -> bool:
        return n % self.every == 0 or n == self.last

    def add(self, n: int, probabilities: np.ndarray, hitting_time: float) -> None:
        self.iteration.append(n)
        self.time.append(hitting_time)
        for name, v in self.depths.record(probabilities).items():
            self.values[name].append(v)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {name: np.array(v) for name, v in self.values.items()}
        out["iteration"] = np.array(self.iteration, np.int64)
        out["hitting_time"] = np.array(self.time)
        return out


def train_sft(
    graph: Graph,
    steps: int = 500,
    lr: float = 100.0,
    supervised_backward: np.ndarray | None = None,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
) -> TrainingRun:
    """Gradient descent ``theta -= lr * dCE/dtheta`` on the exact golden-path cross-entropy from
    the pretrained logits (or ``logits``). Rows golden paths never condition on (all R- and L-
    states unless supervised) keep their logits, so their probabilities stay bit for bit those of
    the starting policy. From the pretrained logits every update moves each trained row
    monotonically toward its label (a vertex, or uniform over moves the policy treats alike), so
    no lr > 0 overshoots; larger lr only moves faster (the logit gaps grow like log(lr * steps)).
    The tied gradient sums over a group's entries, so it wants a smaller lr than tabular."""
    counts = golden_counts(graph, supervised_backward)
    supervised = 0 if supervised_backward is None else int(np.sum(supervised_backward))
    return _train(graph, "sft", steps, lr, parametrisation, record_every, logits,
                  {"supervised_backward": supervised},
                  lambda p, solver: (_sft_gradient(graph, p, counts), None), sign_ascent=False)


def train_rlvr(
    graph: Graph,
    iterations: int = 1000,
    lr: float = 0.01,
    beta: float = 1.0,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
) -> TrainingRun:
    """Sign gradient ascent ``theta += lr * sign(dJ/dtheta)`` (sign(0) = 0) on J = 1 - beta E_x[T_x]
    with the exact population policy gradient, from the pretrained logits (or ``logits``). Only
    rows of R+, R-, L+ and L- states are updated. The hitting time of every iteration comes free
    with its gradient, so ``record_every`` only thins the stored rows."""
    return _train(graph, "rlvr", iterations, lr, parametrisation, record_every, logits,
                  {"beta": beta}, lambda p, solver: solver.rlvr_gradient(p, beta), sign_ascent=True)


def _train(
    graph: Graph,
    method: str,
    steps: int,
    lr: float,
    parametrisation: Parametrisation,
    record_every: int,
    logits: np.ndarray | None,
    settings: dict,
    gradient: Callable[[np.ndarray, ExactSolver], tuple[np.ndarray, float | None]],
    sign_ascent: bool,
) -> TrainingRun:
    """The shared loop. ``gradient(probabilities, solver)`` returns the objective's gradient per
    CSR entry (masked here to the trained rows) and the policy's mean hitting time if it came
    for free (else None: it is then solved for outside the timed part, when recorded).
    Cross-entropy methods descend, ``theta -= lr * g``; RLVR ascends by signs,
    ``theta += lr * sign(g)`` (``sign_ascent``), with g the gradient pulled back to theta."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    train_mask = trained_entries(graph)
    tie = tying(graph, parametrisation)
    start = pretrained_logits(graph) if logits is None else np.asarray(logits, float)
    if parametrisation == "tied" and logits is not None:
        if not np.array_equal(tie.logits(tie.parameters_of(start)), start):
            raise ValueError("logits: a tied run needs logits that are equal within every group")
    theta = tie.parameters_of(start) if parametrisation == "tied" else start.copy()
    solver = ExactSolver(graph)
    recorder = _Recorder(graph, record_every, steps)
    seconds = 0.0
    for n in range(steps + 1):
        current = tie.logits(theta)
        p = softmax_rows(graph, current)
        if n == steps:
            if recorder.wants(n):
                recorder.add(n, p, solver.mean_hitting_time(p))
            break
        began = time.perf_counter()
        g, hitting_time = gradient(p, solver)
        pulled = tie.pull_back(g * train_mask)
        theta = theta + lr * np.sign(pulled) if sign_ascent else theta - lr * pulled
        seconds += time.perf_counter() - began
        if recorder.wants(n):
            if hitting_time is None:
                hitting_time = solver.mean_hitting_time(p)
            recorder.add(n, p, hitting_time)
    final = tie.logits(theta)
    arrays = recorder.arrays()
    settings = {"lr": lr, **settings, "iterations": steps, "record_every": record_every}
    return TrainingRun(
        method=method, graph=graph.describe(), parametrisation=tie.name, settings=settings,
        iteration=arrays["iteration"], hitting_time=arrays["hitting_time"],
        a=arrays["a"], b=arrays["b"], c=arrays["c"], d=arrays["d"], logits=final,
        policy=policy_from_logits(graph, final, method, settings),
        seconds_per_iteration=seconds / steps if steps else 0.0,
    )


# --------------------------------------------------------------------------- partial supervision


@dataclass(frozen=True)
class SupervisionSweep:
    """Final exact hitting times (averaged over leaves) of SFT with a fraction p of backward
    states supervised toward backtracking: ``times[i, r]`` for ``p[i]`` and draw r."""

    graph: dict
    p: np.ndarray
    times: np.ndarray
    steps: int
    lr: float
    seed: int

    @property
    def mean(self) -> np.ndarray:
        return self.times.mean(axis=1)


def partial_supervision_sweep(
    p: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    draws: int = 5,
    W: int = 6,
    K: int = 6,
    L: int = 5,
    steps: int = 500,
    lr: float = 100.0,
    seed: int = 0,
) -> SupervisionSweep:
    """Paper Fig. 5 (right): for each p and each of ``draws`` draws of the supervised backward
    states (one seeded numpy Generator for the whole sweep), train SFT for ``steps`` steps and
    record the final exact hitting time averaged over the leaves."""
    graph = path_star(W, K, L)
    rng = np.random.default_rng(seed)
    fractions = np.asarray(p, float)
    times = np.empty((len(fractions), draws))
    for i, fraction in enumerate(fractions):
        for r in range(draws):
            mask = backward_supervision(graph, fraction, rng)
            run = train_sft(graph, steps, lr, supervised_backward=mask, record_every=max(steps, 1))
            times[i, r] = run.hitting_time[-1]
    return SupervisionSweep(graph.describe(), fractions, times, steps, lr, seed)


# --------------------------------------------------------------------------- the confused middle


@dataclass(frozen=True)
class GradientSigns:
    """dJ/d(desired-move logit) at a policy, summed over the states of each kind and depth and
    over branches: ``da[j-1]`` at R+_j, ``db`` at R-_j, ``dc`` at L+_j, ``dd`` at L-_j. Each has the
    sign of the derivative of J with respect to the per-depth parameter (a_j, ..., d_j) of the
    tied family, since d(desired mass)/d(desired logit) = mass (1 - mass) > 0."""

    graph: dict
    depth: np.ndarray
    da: np.ndarray
    db: np.ndarray
    dc: np.ndarray
    dd: np.ndarray

    @property
    def sign_b(self) -> np.ndarray:
        return np.sign(self.db).astype(int)

    @property
    def sign_d(self) -> np.ndarray:
        return np.sign(self.dd).astype(int)

    def table(self) -> list[dict]:
        """One row per depth: depth, sign of db, sign of dd and the raw values."""
        return [{"depth": int(j), "sign_b": int(sb), "sign_d": int(sd), "db": float(b), "dd": float(d)}
                for j, sb, sd, b, d in zip(self.depth, self.sign_b, self.sign_d, self.db, self.dd)]

    @property
    def confused_depths(self) -> list[int]:
        """Depths where db or dd is negative."""
        return [int(j) for j, b, d in zip(self.depth, self.db, self.dd) if b < 0 or d < 0]


def initial_gradient_signs(graph: Graph, beta: float = 1.0, logits: np.ndarray | None = None) -> GradientSigns:
    """The RLVR gradient of the desired moves per depth at the pretrained policy (or ``logits``):
    where db_j or dd_j < 0, the first RLVR steps push b_j or d_j the wrong way."""
    start = pretrained_logits(graph) if logits is None else logits
    gradient = rlvr_gradient(graph, start, beta)
    depths = _DepthParameters.build(graph)
    per_state = np.bincount(depths.rows, weights=gradient * depths.desired, minlength=graph.n_states)
    sums = {}
    for kind, (name, _) in _PARAMETER_OF_KIND.items():
        states = np.flatnonzero(graph.state_kind == kind)
        sums[name] = np.bincount(graph.state_depth[states] - 1, weights=per_state[states],
                                 minlength=max(graph.depths))
    return GradientSigns(graph.describe(), np.arange(1, max(graph.depths) + 1),
                         sums["a"], sums["b"], sums["c"], sums["d"])


def rlvr_optimum(graph: Graph, parametrisation: Parametrisation = "tabular") -> float:
    """The smallest mean hitting time (leaves as targets) RLVR can reach in a parametrisation.
    Tied: the a = b = c = d = 1 policy. Tabular (derived by hand, checked against the exact
    solver in tests/test_training.py): with
    a = b = d = 1 and c_j = 1 for j >= 2, let g_i = c_1 of branch i (go into branch i rather than
    U-turn back to the fork). Per fork visit the walker picks a branch uniformly; entering a wrong
    branch costs 4K_i + 2 steps back to the fork, a U-turn 2, a successful entry 1 + 2K_x. Wald's
    identity over the W / g_x fork visits gives
        E_x[T] = (2W + 4 sum_{i != x} K_i g_i) / g_x + 2K_x - 1, so
        mean_x E_x[T] = (2W + 4 S) H / W - 2 mean(K) - 1,  S = sum K_i g_i, H = sum 1 / g_i,
    minimised by g_i = min(1, lam / sqrt(K_i)). With every g_i = 1 it is the a = b = c = d = 1
    value, which shallow-and-deep mixtures beat by entering deep branches less often."""
    if parametrisation == "tied" or graph.is_symmetric:
        return float(np.mean([expected_hitting_time(rlvr(graph), x) for x in _leaves(graph)]))
    K = np.asarray(graph.depths, float)
    W = len(K)

    def time(lam: float) -> float:
        g = np.minimum(1.0, lam / np.sqrt(K))
        return (2 * W + 4 * (K * g).sum()) * (1 / g).sum() / W - 2 * K.mean() - 1

    best = optimize.minimize_scalar(time, bounds=(1e-3, np.sqrt(K.max())), method="bounded",
                           options={"xatol": 1e-12})
    return float(best.fun)


# --------------------------------------------------------------------------- Monte Carlo methods


def _iteration_seed(seed: int, iteration: int) -> int:
    """A seed per training iteration, so that iterations draw independent rollouts."""
    from .engine import GAMMA, MASK64, mix64

    return mix64((seed + (iteration + 1) * GAMMA) & MASK64)


def _horizon(mean_hitting_time: float, factor: float) -> int:
    return max(1, math.ceil(factor * mean_hitting_time))


def train_rlvr_mc(
    graph: Graph,
    iterations: int = 200,
    lr: float = 0.01,
    beta: float = 1.0,
    rollouts: int = 100_000,
    seed: int = 0,
    backend: str = "numba",
    threads: int | None = None,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
    horizon_factor: float = 50.0,
) -> TrainingRun:
    """RLVR as :func:`train_rlvr`, with the gradient estimated by ``rollouts`` rollouts of the
    native engine per iteration (edgewalk.engine.gradient_statistics, REINFORCE with the
    return-to-go; targets cycle through the leaves) instead of the exact population gradient.
    Rollouts are cut at ``horizon_factor`` times the current expected hitting time (censoring is
    then negligible). The recorded hitting times are exact."""
    from .engine import gradient_statistics

    iteration = itertools.count()

    def step(p: np.ndarray, solver: ExactSolver) -> tuple[np.ndarray, float]:
        mean = solver.mean_hitting_time(p)
        stats = gradient_statistics(
            Policy(graph, p), rollouts=rollouts, seed=_iteration_seed(seed, next(iteration)),
            max_steps=_horizon(mean, horizon_factor), backend=backend, threads=threads,
            known_mean=mean)
        return stats.gradient(beta), mean

    return _train(graph, "rlvr-mc", iterations, lr, parametrisation, record_every, logits,
                  {"beta": beta, "rollouts": rollouts, "seed": seed, "backend": backend,
                   "horizon_factor": horizon_factor}, step, sign_ascent=True)


def train_ppo(
    graph: Graph,
    iterations: int = 100,
    lr: float = 0.05,
    beta: float = 3e-4,
    clip: float = 0.2,
    epochs: int = 10,
    rollouts: int = 20_000,
    seed: int = 0,
    backend: str = "numba",
    threads: int | None = None,
    record_every: int = 1,
    horizon_factor: float = 2.0,
) -> TrainingRun:
    """PPO on the tabular policy (paper Fig. 6): each iteration draws ``rollouts`` rollouts of the
    current policy cut at ``horizon_factor`` times its expected hitting time, with reward 1 for a
    hit and -beta per step, and takes ``epochs`` Adam steps of size ``lr`` on the clipped surrogate

        L(theta) = sum over (s, a) of N(s, a) min(rho A, clip(rho, 1 - clip, 1 + clip) A) / rollouts

    where rho = pi_theta(a|s) / pi_old(a|s), N(s, a) the visits of the move and A(s, a) its mean
    return-to-go less the mean return-to-go of its state (the per-move sufficient statistics of
    the native engine stand in for the individual samples). Only R+, R-, L+, L- rows train."""
    from .engine import gradient_statistics

    train_mask = trained_entries(graph)
    rows = _rows(graph)
    starts = graph.row_start[:-1]
    logits = pretrained_logits(graph)
    solver = ExactSolver(graph)
    recorder = _Recorder(graph, record_every, iterations)
    adam_m = np.zeros_like(logits)
    adam_v = np.zeros_like(logits)
    adam_t = 0
    seconds = 0.0
    for n in range(iterations + 1):
        old = softmax_rows(graph, logits)
        mean = solver.mean_hitting_time(old)
        if recorder.wants(n):
            recorder.add(n, old, mean)
        if n == iterations:
            break
        began = time.perf_counter()
        stats = gradient_statistics(
            Policy(graph, old), rollouts=rollouts, seed=_iteration_seed(seed, n),
            max_steps=_horizon(mean, horizon_factor), backend=backend, threads=threads,
            known_mean=mean)
        visits = stats.visits.astype(float)
        move_returns = stats.returns(beta)
        state_visits = np.add.reduceat(visits, starts)[rows]
        state_returns = np.add.reduceat(move_returns, starts)[rows]
        taken = visits > 0
        advantage = np.zeros_like(visits)
        advantage[taken] = move_returns[taken] / visits[taken] - state_returns[taken] / state_visits[taken]
        weight = visits / rollouts
        for _ in range(epochs):
            current = softmax_rows(graph, logits)
            ratio = current / old
            unclipped = np.where(advantage >= 0, ratio < 1 + clip, ratio > 1 - clip)
            per_move = np.where(unclipped & taken, weight * advantage * ratio, 0.0)
            gradient = (per_move - current * np.add.reduceat(per_move, starts)[rows]) * train_mask
            adam_t += 1
            adam_m = 0.9 * adam_m + 0.1 * gradient
            adam_v = 0.999 * adam_v + 0.001 * gradient**2
            step = (adam_m / (1 - 0.9**adam_t)) / (np.sqrt(adam_v / (1 - 0.999**adam_t)) + 1e-8)
            logits = logits + lr * step
        seconds += time.perf_counter() - began
    arrays = recorder.arrays()
    settings = {"lr": lr, "beta": beta, "clip": clip, "epochs": epochs, "rollouts": rollouts,
                "seed": seed, "backend": backend, "horizon_factor": horizon_factor,
                "steps": iterations, "record_every": record_every}
    return TrainingRun(
        method="ppo", graph=graph.describe(), parametrisation="tabular", settings=settings,
        iteration=arrays["iteration"], hitting_time=arrays["hitting_time"], a=arrays["a"],
        b=arrays["b"], c=arrays["c"], d=arrays["d"], logits=logits,
        policy=policy_from_logits(graph, logits, "ppo", {"iterations": iterations}),
        seconds_per_iteration=seconds / iterations if iterations else 0.0,
    )


def train_distill(
    graph: Graph,
    teacher: Policy,
    steps: int = 500,
    lr: float = 100.0,
    rollouts: int = 100_000,
    seed: int = 0,
    backend: str = "numba",
    threads: int | None = None,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
) -> TrainingRun:
    """Distillation (paper Thm 5): sample ``rollouts`` traces of ``teacher`` with the native engine
    (targets cycling through the leaves) and train the pretrained model by gradient descent on
    the cross-entropy of the traces' moves, ``dCE/dTheta[s, a] = N(s) pi(a|s) - N(s, a)`` per
    rollout, N the teacher's visit counts. States the teacher never visits keep their pretrained
    probabilities."""
    from .engine import gradient_statistics

    if teacher.graph is not graph and teacher.graph.describe() != graph.describe():
        raise ValueError("teacher: the teacher policy must live on the same graph")
    stats = gradient_statistics(teacher, rollouts=rollouts, seed=_iteration_seed(seed, 0),
                                backend=backend, threads=threads)
    counts = stats.visits.astype(float) / rollouts
    return _train(graph, "distill", steps, lr, parametrisation, record_every, None,
                  {"rollouts": rollouts, "seed": seed, "backend": backend,
                   "teacher": teacher.name, "teacher_steps": stats.steps},
                  lambda p, solver: (_sft_gradient(graph, p, counts), None), sign_ascent=False)
