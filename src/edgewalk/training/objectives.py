"""The objectives training descends or ascends, and their exact gradients per CSR logit:
the golden-path cross-entropy of SFT (and its partially supervised variant) and the RLVR return
J = 1 - beta E_x[T_x] over the leaf targets (docs/model.md section 5)."""

from __future__ import annotations

import numpy as np

from .. import checks
from ..errors import InputError
from ..exact import ExactSolver
from ..graph import Graph, PathStar, StateKind
from ..policy import CONNECTOR_KINDS, softmax_rows
from .parametrisation import BACKWARD_KINDS


def golden_counts(graph: Graph, supervised_backward: np.ndarray | None = None) -> np.ndarray:
    """n_Q per CSR entry: the expected number of times a golden path makes that move, the target
    leaf t_i uniform over branches (weight 1/W). A golden path is s0 -> f, f -> u(i,1,l), one of the
    L_ij multiedges of each diamond drawn uniformly, the connectors, and ends by entering t_i, so
    the start state and each L+ state of branch i occur once and each R+ multiedge state of
    diamond (i, j) 1/L_ij times. d_Q(s) is the row sum.

    ``supervised_backward`` (a boolean mask over states, only R- and L- states may be set) adds
    backtracking labels (paper Fig. 5 right): a supervised R- state counts 1/W times with its
    multiedges back as the label (shared equally, b -> 1); a supervised L- state of diamond
    (i, j) counts 1/(W L_ij) times with the backward connector as the label (d -> 1). These are
    the weights of the forward states of the same kind (L+ and R+) on golden paths."""
    if not isinstance(graph, PathStar):
        raise InputError(f"golden paths: defined on path-star graphs only, not on {graph.describe()}")
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


def sft_loss(graph: Graph, logits: np.ndarray, supervised_backward: np.ndarray | None = None) -> float:
    """The expected cross-entropy -sum_k n_Q[k] log pi_k of golden paths (per path, targets
    averaged)."""
    return cross_entropy(softmax_rows(graph, logits), golden_counts(graph, supervised_backward))


def sft_gradient(graph: Graph, logits: np.ndarray, supervised_backward: np.ndarray | None = None) -> np.ndarray:
    """dCE/dlogits = d_Q(s) pi(a|s) - n_Q(s, a) = d_Q(s) (pi(a|s) - p_Q(a|s)); exactly 0 in every
    row that golden paths (and backtracking labels) never condition on."""
    return cross_entropy_gradient(graph, softmax_rows(graph, logits), golden_counts(graph, supervised_backward))


def backward_supervision(graph: PathStar, p: float, rng: np.random.Generator) -> np.ndarray:
    """A mask over states selecting round(p * n) of the n backward states (R- and L-) uniformly
    without replacement."""
    p = checks.real("p", p, 0.0, 1.0)
    backward = np.flatnonzero(np.isin(graph.state_kind, BACKWARD_KINDS))
    chosen = rng.choice(backward, size=int(round(p * len(backward))), replace=False)
    mask = np.zeros(graph.n_states, bool)
    mask[chosen] = True
    return mask


def rlvr_objective(graph: Graph, logits: np.ndarray, beta: float = 1.0) -> float:
    """J = 1 - beta E_x[T_x], x a leaf drawn uniformly (the hit is certain for softmax policies)."""
    return 1.0 - beta * ExactSolver(graph).mean_hitting_time(softmax_rows(graph, logits))


def rlvr_gradient(graph: Graph, logits: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """The exact dJ/dlogits (every row, untrained ones included) of :func:`rlvr_objective`."""
    return ExactSolver(graph).rlvr_gradient(softmax_rows(graph, logits), beta)[0]
