"""The study's variants: a policy, whether it runs inside the no-revisit search wrapper, and the
bound the paper states for its expected hitting time.

    pretrained    uniform world model; stated curve: the paper's exact formula
                  (2W-1)(1+K+K/L)(1+K(L+1))
    sft           converged SFT; stated Theta(W L^K)
    sft+search    converged SFT in the no-revisit wrapper (mask); stated Theta(WKL)
    rlvr          converged RLVR; stated Theta(WK)
    rlvr+search   converged RLVR in the wrapper; stated Theta(WK) (the wrapper cannot make it worse)
    distilled     the converged distilled policy (a = b = c = d = 1: the same table as RLVR);
                  stated Theta(WK)

With ``policies = "trained"`` the SFT, RLVR and distilled variants (with and without the wrapper)
use policies trained on each graph by ``edgewalk.training`` with the defaults of
``training.METHODS`` instead of the converged limits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import checks
from ..graph import Graph, path_star
from ..policy import Policy, distilled, pretrained, rlvr, sft
from .grid import cell_seed

DISTILLED_NOTE = ("distilled = the converged distilled policy of docs/model.md section 3 "
                  "(a = b = c = d = 1, the same table as RLVR); policies = trained uses the trained one")


@dataclass(frozen=True)
class Bound:
    """A stated growth law. ``shape(W, K, L)`` is the bound without its constant (or, if
    ``is_formula``, the exact stated value); ``exponential_in`` names the parameter, if any, in
    which the bound grows exponentially."""

    label: str
    shape: Callable[[float, float, float], float]
    exponential_in: str | None = None
    is_formula: bool = False


def _pretrained_formula(W: float, K: float, L: float) -> float:
    return (2 * W - 1) * (1 + K + K / L) * (1 + K * (L + 1))


THETA_WK = Bound("Theta(WK)", lambda W, K, L: W * K)
THETA_WKL = Bound("Theta(WKL)", lambda W, K, L: W * K * L)
THETA_W_L_K = Bound("Theta(W L^K)", lambda W, K, L: W * float(L) ** K, exponential_in="K")
PRETRAINED_FORMULA = Bound("(2W-1)(1+K+K/L)(1+K(L+1))", _pretrained_formula, is_formula=True)


@dataclass(frozen=True)
class Variant:
    """A policy, whether it runs inside the no-revisit search wrapper, and its stated bound."""

    policy: Callable[[Graph], Policy]
    search: str  # "none" or "mask"
    bound: Bound
    trained_by: str | None = None  # with policies = "trained": the training that replaces policy


VARIANTS: dict[str, Variant] = {
    "pretrained": Variant(pretrained, "none", PRETRAINED_FORMULA),
    "sft": Variant(sft, "none", THETA_W_L_K, "sft"),
    "sft+search": Variant(sft, "mask", THETA_WKL, "sft"),
    "rlvr": Variant(rlvr, "none", THETA_WK, "rlvr"),
    "rlvr+search": Variant(rlvr, "mask", THETA_WK, "rlvr"),
    "distilled": Variant(distilled, "none", THETA_WK, "distill"),
}

POLICY_SOURCES = ("converged", "trained")


def training_settings() -> dict[str, dict[str, float]]:
    """The trainings of policies = "trained": the defaults of ``training.METHODS``."""
    from ..training import METHODS

    return {name: {"iterations": METHODS[name].iterations, "lr": METHODS[name].lr,
                   **({"rollouts": METHODS[name].rollouts} if METHODS[name].rollouts else {})}
            for name in ("sft", "rlvr", "distill")}


def variant_policies(point: tuple[int, int, int], variants: Sequence[str], policies: str = "converged",
                     seed: int = 0, threads: int | None = None, target: str = "leaves") -> dict[str, Policy]:
    """The policy of each variant on ``path_star(*point)``. ``converged``: the limits of
    docs/model.md section 3. ``trained``: SFT trained by exact gradient descent, RLVR by exact
    sign gradient ascent, and the distilled policy by cross-entropy on traces of that RLVR policy
    (seeded from ``seed``), each trained once per graph with the defaults of
    ``training.METHODS``, for ``target`` ("leaves" or a node name); the pretrained policy is the
    same either way."""
    policies = checks.choice("policies", policies, POLICY_SOURCES)
    graph = path_star(*point)
    if policies == "converged":
        return {v: VARIANTS[v].policy(graph) for v in variants}
    from .. import targets as target_sets, training

    chosen = target_sets.resolve(graph, target)
    nodes = None if chosen.label == target_sets.LEAVES else list(chosen.nodes)
    trained: dict[str, Policy] = {}

    def get(method: str) -> Policy:
        if method not in trained:
            defaults = training.METHODS[method]
            if method == "sft":
                run = training.train_sft(graph, record_every=defaults.iterations, targets=nodes)
            elif method == "rlvr":
                run = training.train_rlvr(graph, record_every=defaults.iterations, targets=nodes)
            else:
                run = training.train_distill(
                    graph, get("rlvr"),
                    seed=cell_seed(seed, f"distill_W{point[0]}_K{point[1]}_L{point[2]}"),
                    threads=threads, record_every=defaults.iterations, targets=nodes)
            trained[method] = run.policy
        return trained[method]

    return {v: get(VARIANTS[v].trained_by) if VARIANTS[v].trained_by else VARIANTS[v].policy(graph)
            for v in variants}
