"""The objectives training descends or ascends, and their exact gradients per CSR logit:
the golden-path cross-entropy of SFT (and its partially supervised variant) and the RLVR return
J = 1 - beta E_x[T_x] over the targets, by default the leaves (docs/model.md sections 5 and 7)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import checks
from ..errors import InputError
from ..exact import ExactSolver
from ..graph import START_STATE, Graph, PathStar, StateKind, node_distances
from ..policy import CONNECTOR_KINDS, softmax_rows
from .parametrisation import BACKWARD_KINDS


def golden_counts(graph: Graph, supervised_backward: np.ndarray | None = None,
                  targets: Sequence[int] | None = None) -> np.ndarray:
    """n_Q per CSR entry: the expected number of times a golden path makes that move, the target
    drawn uniformly from ``targets`` (default the graph's leaves). On a path-star with its leaves
    as targets this is the closed form of :func:`path_star_golden_counts` (which also takes
    ``supervised_backward``); on any other graph or target set it is
    :func:`golden_path_counts`."""
    nodes = tuple(graph.leaves) if targets is None else tuple(int(t) for t in targets)
    if isinstance(graph, PathStar) and nodes == tuple(graph.leaves):
        return path_star_golden_counts(graph, supervised_backward)
    if supervised_backward is not None:
        raise InputError("supervised_backward: defined on path-star graphs with their leaves as targets only")
    return golden_path_counts(graph, nodes)


def golden_path_counts(graph: Graph, targets: Sequence[int]) -> np.ndarray:
    """n_Q per CSR entry on any graph: golden paths to target x are the shortest node paths from
    the root to x, drawn uniformly, and each of their steps uses one of the parallel edges
    between its two nodes, drawn uniformly (docs/model.md section 7); x is drawn uniformly from
    ``targets``. A move from state u -> v to v -> w lies on a golden path when u, v, w are
    consecutive nodes of one, and is made with probability
    paths(root..u) paths(w..x) / paths(root..x) / (lanes(u, v) lanes(v, w)), the start state
    counting as the source -> root edge with one path and one lane. Path counts are kept as
    logarithms, so grids whose path counts overflow floating point are fine."""
    targets = tuple(int(t) for t in targets)
    if not targets:
        raise InputError("targets must name at least one node")
    g = graph
    tail, head = g.state_tail.astype(np.int64), g.state_head.astype(np.int64)
    root = int(head[START_STATE])
    rows, nxt = g.entry_state, g.next_state.astype(np.int64)
    # lanes of each state: how many states share its (tail, head) pair
    pair = tail * g.n_nodes + head
    _, inverse, multiplicity = np.unique(pair, return_inverse=True, return_counts=True)
    lanes = multiplicity[inverse.ravel()].astype(float)
    lanes[START_STATE] = 1.0
    from_root = node_distances(g, root)
    counts = np.zeros(g.n_transitions)
    for x in targets:
        length = int(from_root[x])
        if length <= 0:  # the target is the root: the start state enters it, no move is made
            continue
        to_x = node_distances(g, x)
        on = (from_root + to_x == length) & (from_root >= 0)
        # the edges of the shortest-path DAG (one per node pair, states 1..), root side first
        forward = on[tail] & on[head] & (from_root[head] == from_root[tail] + 1)
        forward[START_STATE] = False
        first = np.unique(pair[forward], return_index=True)[1]
        dag = np.flatnonzero(forward)[first]
        log_from_root = _log_path_counts(g.n_nodes, tail[dag], head[dag], from_root, root)
        log_to_x = _log_path_counts(g.n_nodes, head[dag], tail[dag], to_x, x)
        v = head[rows]
        u, w = tail[rows], head[nxt]
        valid = on[v] & on[w] & (from_root[w] == from_root[v] + 1)
        valid &= (rows == START_STATE) | (on[u] & (from_root[u] + 1 == from_root[v]))
        log_u = np.where(rows == START_STATE, 0.0, log_from_root[u])
        entries = np.flatnonzero(valid)
        counts[entries] += (np.exp(log_u[entries] + log_to_x[w[entries]] - log_from_root[x])
                            / (lanes[rows[entries]] * lanes[nxt[entries]]))
    return counts / len(targets)


def _log_path_counts(n_nodes: int, tails: np.ndarray, heads: np.ndarray, level: np.ndarray,
                     start: int) -> np.ndarray:
    """log of the number of paths from ``start`` to every node along the DAG edges
    tails -> heads, each going from one ``level`` to the next (-inf where there is none)."""
    log = np.full(n_nodes, -np.inf)
    log[start] = 0.0
    order = np.argsort(level[heads], kind="stable")
    tails, heads = tails[order], heads[order]
    bounds = np.searchsorted(level[heads], np.arange(level[start] + 1, level.max() + 2))
    for low, high in zip(bounds[:-1], bounds[1:]):
        np.logaddexp.at(log, heads[low:high], log[tails[low:high]])
    return log


def path_star_golden_counts(graph: PathStar, supervised_backward: np.ndarray | None = None) -> np.ndarray:
    """n_Q per CSR entry on a path-star, the target leaf t_i uniform over branches (weight 1/W),
    in closed form. A golden path is s0 -> f, f -> u(i,1,l), one of the
    L_ij multiedges of each diamond drawn uniformly, the connectors, and ends by entering t_i, so
    the start state and each L+ state of branch i occur once and each R+ multiedge state of
    diamond (i, j) 1/L_ij times. d_Q(s) is the row sum.

    ``supervised_backward`` (a boolean mask over states, only R- and L- states may be set) adds
    backtracking labels (paper Fig. 5 right): a supervised R- state counts 1/W times with its
    multiedges back as the label (shared equally, b -> 1); a supervised L- state of diamond
    (i, j) counts 1/(W L_ij) times with the backward connector as the label (d -> 1). These are
    the weights of the forward states of the same kind (L+ and R+) on golden paths."""
    g = graph
    rows = g.entry_state
    kind = g.state_kind[rows]
    next_kind = g.state_kind[g.next_state]
    crosses = np.isin(next_kind, CONNECTOR_KINDS)
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
            raise InputError(f"supervised_backward: expected a mask over {g.n_states} states")
        if np.any(mask & ~np.isin(g.state_kind, BACKWARD_KINDS)):
            raise InputError("supervised_backward: only R- and L- states can be supervised")
        on = mask[rows]
        r_minus = on & (kind == StateKind.R_MINUS) & ~crosses
        counts[r_minus] = w / (degree[r_minus] - 1)
        l_minus = on & (kind == StateKind.L_MINUS) & crosses
        counts[l_minus] = w / (degree[l_minus] - 1)
    return counts


def cross_entropy_gradient(graph: Graph, probabilities: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """dCE/dlogits of the cross-entropy -sum_k counts[k] log pi_k: N(s) pi(a|s) - N(s, a), with
    N(s) the row sum of the counts. Exactly 0 in every row the counts never condition on."""
    row_total = np.add.reduceat(counts, graph.row_start[:-1])
    return np.repeat(row_total, np.diff(graph.row_start)) * probabilities - counts


def cross_entropy(probabilities: np.ndarray, counts: np.ndarray) -> float:
    """-sum_k counts[k] log pi_k over the entries with counts > 0 (inf where such a move has
    probability 0)."""
    on = counts > 0
    with np.errstate(divide="ignore"):
        return float(-(counts[on] * np.log(probabilities[on])).sum())


def sft_loss(graph: Graph, logits: np.ndarray, supervised_backward: np.ndarray | None = None,
             targets: Sequence[int] | None = None) -> float:
    """The expected cross-entropy -sum_k n_Q[k] log pi_k of golden paths (per path, targets
    averaged)."""
    return cross_entropy(softmax_rows(graph, logits), golden_counts(graph, supervised_backward, targets))


def sft_gradient(graph: Graph, logits: np.ndarray, supervised_backward: np.ndarray | None = None,
                 targets: Sequence[int] | None = None) -> np.ndarray:
    """dCE/dlogits = d_Q(s) pi(a|s) - n_Q(s, a) = d_Q(s) (pi(a|s) - p_Q(a|s)); exactly 0 in every
    row that golden paths (and backtracking labels) never condition on."""
    return cross_entropy_gradient(graph, softmax_rows(graph, logits),
                                  golden_counts(graph, supervised_backward, targets))


def backward_supervision(graph: PathStar, p: float, rng: np.random.Generator) -> np.ndarray:
    """A mask over states selecting round(p * n) of the n backward states (R- and L-) uniformly
    without replacement."""
    p = checks.real("p", p, 0.0, 1.0)
    backward = np.flatnonzero(np.isin(graph.state_kind, BACKWARD_KINDS))
    chosen = rng.choice(backward, size=int(round(p * len(backward))), replace=False)
    mask = np.zeros(graph.n_states, bool)
    mask[chosen] = True
    return mask


def rlvr_objective(graph: Graph, logits: np.ndarray, beta: float = 1.0,
                   targets: Sequence[int] | None = None) -> float:
    """J = 1 - beta E_x[T_x], x drawn uniformly from ``targets`` (default the leaves; the hit is
    certain for softmax policies)."""
    return 1.0 - beta * ExactSolver(graph, targets).mean_hitting_time(softmax_rows(graph, logits))


def rlvr_gradient(graph: Graph, logits: np.ndarray, beta: float = 1.0,
                  targets: Sequence[int] | None = None) -> np.ndarray:
    """The exact dJ/dlogits (every row, untrained ones included) of :func:`rlvr_objective`."""
    return ExactSolver(graph, targets).rlvr_gradient(softmax_rows(graph, logits), beta)[0]
