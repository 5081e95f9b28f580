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

and, on request, the training routes of docs/model.md section 5.8, trained on every graph and
set beside the bound of the method they start from or aim at:

    sft+detours     SFT with 10% of traces golden paths with detours (rate 0.1); as SFT
    sft+pretrained  SFT with 10% of traces the pretrained model's (exact); as SFT
    rft             rejection-sampling fine-tuning from pretrained (10 rounds of 5000 traces,
                    horizon E[T]); as RLVR
    sft->rlvr       RLVR (exact, 1000 iterations) started from SFT; as RLVR

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
    """A policy, whether it runs inside the no-revisit search wrapper, and its stated bound.
    ``policy(graph)`` gives the converged limit; ``trained_by`` names the training that replaces
    it with policies = "trained"; a variant with ``route`` (graph, targets, seed, threads ->
    policy) has no converged limit and is trained on every graph in either mode."""

    policy: Callable[[Graph], Policy] | None
    search: str  # "none" or "mask"
    bound: Bound
    trained_by: str | None = None
    route: Callable[..., Policy] | None = None


AS_SFT = Bound("as SFT: Theta(W L^K)", lambda W, K, L: W * float(L) ** K, exponential_in="K")
AS_RLVR = Bound("as RLVR: Theta(WK)", lambda W, K, L: W * K)
MIX_FRACTION = 0.1  # the training-route variants' fraction of other traces, and detour rate
RFT_ROUNDS, RFT_ROLLOUTS = 10, 5000


def _sft_with_detours(graph: Graph, targets, seed: int, threads) -> Policy:
    from ..training import traces, train_sft

    return train_sft(graph, mix_traces=traces.detours(graph, MIX_FRACTION, targets),
                     mix_fraction=MIX_FRACTION, mix_label="detours", targets=targets,
                     record_every=500).policy


def _sft_with_pretrained(graph: Graph, targets, seed: int, threads) -> Policy:
    from ..training import traces, train_sft

    return train_sft(graph, mix_traces=traces.world(graph, targets), mix_fraction=MIX_FRACTION,
                     mix_label="pretrained (exact)", targets=targets, record_every=500).policy


def _rft(graph: Graph, targets, seed: int, threads) -> Policy:
    from ..training import train_rft

    return train_rft(graph, iterations=RFT_ROUNDS, rollouts=RFT_ROLLOUTS, seed=seed, threads=threads,
                     targets=targets, record_every=RFT_ROUNDS).policy


def _sft_then_rlvr(graph: Graph, targets, seed: int, threads) -> Policy:
    from ..training import train_rlvr, train_sft

    start = train_sft(graph, targets=targets, record_every=500)
    return train_rlvr(graph, logits=start.logits, chain=["sft"], targets=targets, record_every=1000).policy


VARIANTS: dict[str, Variant] = {
    "pretrained": Variant(pretrained, "none", PRETRAINED_FORMULA),
    "sft": Variant(sft, "none", THETA_W_L_K, "sft"),
    "sft+search": Variant(sft, "mask", THETA_WKL, "sft"),
    "rlvr": Variant(rlvr, "none", THETA_WK, "rlvr"),
    "rlvr+search": Variant(rlvr, "mask", THETA_WK, "rlvr"),
    "distilled": Variant(distilled, "none", THETA_WK, "distill"),
    # training routes beyond golden SFT (docs/model.md section 5.8), trained on every graph
    "sft+detours": Variant(None, "none", AS_SFT, route=_sft_with_detours),
    "sft+pretrained": Variant(None, "none", AS_SFT, route=_sft_with_pretrained),
    "rft": Variant(None, "none", AS_RLVR, route=_rft),
    "sft->rlvr": Variant(None, "none", AS_RLVR, route=_sft_then_rlvr),
}
# what a sweep runs unless told otherwise: the paper's six
DEFAULT_VARIANTS = ("pretrained", "sft", "sft+search", "rlvr", "rlvr+search", "distilled")

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
    from .. import targets as target_sets, training

    chosen = target_sets.resolve(graph, target)
    nodes = None if chosen.label == target_sets.LEAVES else list(chosen.nodes)
    routed = {v: VARIANTS[v].route(graph, nodes, cell_seed(seed, f"{v}_W{point[0]}_K{point[1]}_L{point[2]}"),
                                   threads) for v in variants if VARIANTS[v].route is not None}
    if policies == "converged":
        return {v: routed[v] if v in routed else VARIANTS[v].policy(graph) for v in variants}
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

    return {v: routed[v] if v in routed else get(VARIANTS[v].trained_by) if VARIANTS[v].trained_by
            else VARIANTS[v].policy(graph) for v in variants}
