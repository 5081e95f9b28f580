"""The training methods and the one table of their defaults (``METHODS``), read by the library,
the command line and the study alike.

- ``pretrain``: cross-entropy on random walks of the world model (the paper's warm-up).
- ``sft``: cross-entropy on golden paths, optionally mixed with a fraction of other traces.
- ``rlvr``: sign gradient ascent with the exact population policy gradient.
- ``rlvr-mc``: the same with REINFORCE estimates from the native engine.
- ``ppo``: PPO on the tabular policy (paper Fig. 6).
- ``distill``: cross-entropy on a teacher's traces sampled by the engine.
- ``rft``: rejection-sampling fine-tuning (expert iteration): cross-entropy on the policy's own
  traces that hit the target within a horizon, resampled every round.

Every method takes ``targets`` (node indices, drawn uniformly; default the graph's leaves): the
exact methods average over them, the Monte Carlo ones cycle through them (rollout r aims at
``targets[r % len(targets)]``), and the recorded hitting time is the exact average over them.
Only the graph's trainable rows change (``Graph.trainable``).

Cross-entropy methods step by gradient descent with backtracking (``BacktrackingDescent``), so
no step increases the cross-entropy whatever the scale of the traces; on golden paths the full
step always decreases it, so SFT takes plain gradient steps. Every method may start from another
run's logits (``logits`` and ``chain``: the methods that made them), as pretrained -> SFT -> RLVR.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import checks, kernels, planning
from ..errors import InputError
from ..exact import ExactSolver
from ..graph import Graph
from ..policy import Policy, pretrained, softmax_rows
from ..result import TrainingRun
from . import loop
from . import traces
from .objectives import cross_entropy, cross_entropy_gradient, golden_counts
from .optimisers import AdamAscent, BacktrackingDescent, SignAscent
from .parametrisation import Parametrisation, pretrained_logits, trained_entries, tying


@dataclass(frozen=True)
class Method:
    """A training method and its defaults. ``rollouts`` is None for exact methods; ``beta`` is
    None where the objective has no step cost."""

    name: str
    summary: str
    lr: float
    iterations: int
    rollouts: int | None = None
    beta: float | None = None
    monte_carlo: bool = False


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("pretrain", "cross-entropy on random walks of the world model (uniform moves)", 100.0, 500),
    Method("sft", "cross-entropy on golden shortest paths (optionally mixed with other traces)", 100.0, 500),
    Method("rlvr", "sign gradient ascent with the exact population policy gradient (beta = 1)",
           0.01, 1000, beta=1.0),
    Method("rlvr-mc", "the same with Monte Carlo gradients from the native engine", 0.01, 200,
           rollouts=20_000, beta=1.0, monte_carlo=True),
    Method("ppo", "PPO, clipped surrogate, horizon twice the current hitting time", 0.05, 300,
           rollouts=20_000, beta=3e-4, monte_carlo=True),
    Method("distill", "cross-entropy on a teacher's traces sampled by the engine", 100.0, 500,
           rollouts=20_000, monte_carlo=True),
    Method("rft", "rejection-sampling fine-tuning: cross-entropy on the policy's own hitting traces",
           100.0, 30, rollouts=20_000, monte_carlo=True),
)}
HORIZON_FACTOR = {"rlvr-mc": 50.0, "ppo": 2.0, "rft": 1.0}  # rollouts are cut at this times E[T]
RFT_INNER_ITERATIONS = 20


def iteration_seed(seed: int, iteration: int) -> int:
    """A seed per training iteration, so that iterations draw independent rollouts."""
    return kernels.mix64((seed + (iteration + 1) * kernels.GAMMA) & kernels.MASK64)


def _horizon(mean_hitting_time: float, factor: float) -> int:
    return max(1, math.ceil(factor * mean_hitting_time))


def cross_entropy_run(graph: Graph, method: str, counts: np.ndarray, iterations: int, lr: float,
                      parametrisation: Parametrisation, record_every: int, logits: np.ndarray | None,
                      settings: dict, readouts=None, every_row: bool = False,
                      targets: Sequence[int] | None = None) -> TrainingRun:
    """``iterations`` steps of backtracking gradient descent on the exact cross-entropy of the
    move ``counts`` (see :mod:`.traces`), from ``logits`` (default pretrained). Rows the counts
    never condition on keep their logits bit for bit; the recorded ``objective`` is the
    cross-entropy per trace."""
    return loop.run(graph, method, iterations, BacktrackingDescent(_lr(lr)), parametrisation,
                    record_every, logits, settings,
                    lambda p, solver: (cross_entropy_gradient(graph, p, counts), None),
                    lambda p: cross_entropy(p, counts), readouts, every_row, targets)


def train_sft(
    graph: Graph,
    iterations: int = METHODS["sft"].iterations,
    lr: float = METHODS["sft"].lr,
    supervised_backward: np.ndarray | None = None,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
    mix_traces: np.ndarray | None = None,
    mix_fraction: float = 0.0,
    mix_label: str = "",
    chain: Sequence[str] = (),
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """Gradient descent on the exact golden-path cross-entropy from the pretrained logits (or
    ``logits``). Rows golden paths never condition on (all R- and L- states unless supervised)
    keep their logits, so their probabilities stay bit for bit those of the starting policy.
    From the pretrained logits every update moves each trained row monotonically toward its
    label (a vertex, or uniform over moves the policy treats alike), so no lr > 0 overshoots and
    the backtracking never shortens a step; larger lr only moves faster (the logit gaps grow like
    log(lr * steps)). The tied gradient sums over a group's entries, so it wants a smaller lr.

    Mixture SFT: with ``mix_traces`` (move counts per trace of another source, see
    :mod:`.traces`; ``mix_label`` names it), a fraction ``mix_fraction`` of the traces comes from
    it instead of the golden paths; fraction 0 is SFT exactly."""
    counts = golden_counts(graph, supervised_backward, targets)
    supervised = 0 if supervised_backward is None else int(np.sum(supervised_backward))
    settings = {"supervised_backward": supervised, "chain": list(chain)}
    if mix_traces is not None:
        counts = traces.mixture(counts, mix_traces, mix_fraction)
        settings.update(mix_traces=mix_label, mix_fraction=mix_fraction)
    return cross_entropy_run(graph, "sft", counts, iterations, lr, parametrisation, record_every,
                             logits, settings, targets=targets)


def train_pretrain(
    graph: Graph,
    iterations: int = METHODS["pretrain"].iterations,
    lr: float = METHODS["pretrain"].lr,
    rollouts: int | None = None,
    seed: int = 0,
    backend: str = "numba",
    threads: int | None = None,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
    chain: Sequence[str] = (),
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """Pretraining (the paper's warm-up): cross-entropy on random walks of the world model
    (uniform moves) from the start until a leaf, from ``logits`` (for example random ones); every
    row learns, the start and fork rows too. The walks' move counts are exact (``rollouts`` None) or sampled by the engine (``rollouts``
    walks). Every row the walks visit converges to the pretrained (uniform) policy; the record's
    ``distance_to_pretrained`` metric is the largest gap in probability at each recorded step."""
    if rollouts is None:
        counts, source = traces.world(graph, targets), "exact"
    else:
        counts, _ = traces.sampled(pretrained(graph), rollouts, iteration_seed(checks.seed("seed", seed), 0),
                                   backend, threads, targets)
        source = f"{rollouts} sampled walks"
    uniform = pretrained(graph).probabilities
    visited = (np.add.reduceat(counts, graph.row_start[:-1]) > 0)[graph.entry_state]

    def distance(p: np.ndarray) -> dict[str, float]:
        return {"distance_to_pretrained": float(np.abs(p - uniform)[visited].max(initial=0.0))}

    return cross_entropy_run(graph, "pretrain", counts, iterations, lr, parametrisation, record_every,
                             logits, {"walks": source, "seed": seed, "chain": list(chain)}, distance,
                             every_row=True, targets=targets)


def train_rlvr(
    graph: Graph,
    iterations: int = METHODS["rlvr"].iterations,
    lr: float = METHODS["rlvr"].lr,
    beta: float = METHODS["rlvr"].beta,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
    chain: Sequence[str] = (),
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """Sign gradient ascent ``theta += lr * sign(dJ/dtheta)`` (sign(0) = 0) on J = 1 - beta E_x[T_x]
    with the exact population policy gradient, from the pretrained logits (or ``logits``). Only
    trainable rows are updated. The hitting time of every iteration comes free with its
    gradient, so ``record_every`` only thins the stored rows."""
    beta = checks.real("beta", beta, 0.0)
    return loop.run(graph, "rlvr", iterations, SignAscent(_lr(lr)), parametrisation, record_every,
                    logits, {"beta": beta, "chain": list(chain)},
                    lambda p, solver: solver.rlvr_gradient(p, beta), targets=targets)


def train_rlvr_mc(
    graph: Graph,
    iterations: int = METHODS["rlvr-mc"].iterations,
    lr: float = METHODS["rlvr-mc"].lr,
    beta: float = METHODS["rlvr-mc"].beta,
    rollouts: int = METHODS["rlvr-mc"].rollouts,
    seed: int = 0,
    backend: str = "numba",
    threads: int | None = None,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
    horizon_factor: float = HORIZON_FACTOR["rlvr-mc"],
    chain: Sequence[str] = (),
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """RLVR as :func:`train_rlvr`, with the gradient estimated by ``rollouts`` rollouts of the
    native engine per iteration (REINFORCE with the return-to-go; targets cycle through the
    leaves) instead of the exact population gradient. Rollouts are cut at ``horizon_factor``
    times the current expected hitting time (censoring is then negligible). The recorded hitting
    times are exact."""
    beta = checks.real("beta", beta, 0.0)
    seed = checks.seed("seed", seed)
    horizon_factor = checks.real("horizon_factor", horizon_factor, 0.0, low_open=True)
    iteration = itertools.count()

    def step(p: np.ndarray, solver: ExactSolver) -> tuple[np.ndarray, float]:
        mean = solver.mean_hitting_time(p)
        stats = planning.gradient_statistics(
            Policy(graph, p), solver.targets, rollouts=rollouts, seed=iteration_seed(seed, next(iteration)),
            max_steps=_horizon(mean, horizon_factor), backend=backend, threads=threads,
            expected_steps=mean)
        return stats.gradient(beta), mean

    return loop.run(graph, "rlvr-mc", iterations, SignAscent(_lr(lr)), parametrisation,
                    record_every, logits,
                    {"beta": beta, "rollouts": rollouts, "seed": seed, "backend": backend,
                     "horizon_factor": horizon_factor, "chain": list(chain)}, step, targets=targets)


def train_ppo(
    graph: Graph,
    iterations: int = METHODS["ppo"].iterations,
    lr: float = METHODS["ppo"].lr,
    beta: float = METHODS["ppo"].beta,
    clip: float = 0.2,
    epochs: int = 10,
    rollouts: int = METHODS["ppo"].rollouts,
    seed: int = 0,
    backend: str = "numba",
    threads: int | None = None,
    record_every: int = 1,
    horizon_factor: float = HORIZON_FACTOR["ppo"],
    logits: np.ndarray | None = None,
    chain: Sequence[str] = (),
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """PPO on the tabular policy (paper Fig. 6): each iteration draws ``rollouts`` rollouts of the
    current policy cut at ``horizon_factor`` times its expected hitting time, with reward 1 for a
    hit and -beta per step, and takes ``epochs`` Adam steps of size ``lr`` on the clipped surrogate

        L(theta) = sum over (s, a) of N(s, a) min(rho A, clip(rho, 1 - clip, 1 + clip) A) / rollouts

    where rho = pi_theta(a|s) / pi_old(a|s), N(s, a) the visits of the move and A(s, a) its mean
    return-to-go less the mean return-to-go of its state (the per-move sufficient statistics of
    the native engine stand in for the individual samples). Only trainable rows change. Starts
    from the pretrained logits, or ``logits``."""
    iterations = checks.iterations("iterations", iterations, 0)
    beta = checks.real("beta", beta, 0.0)
    clip = checks.real("clip", clip, 0.0, low_open=True)
    epochs = checks.whole("epochs", epochs, 1)
    seed = checks.seed("seed", seed)
    train_mask = trained_entries(graph)
    rows = graph.entry_state
    starts = graph.row_start[:-1]
    logits = pretrained_logits(graph) if logits is None else np.asarray(logits, float).copy()
    solver = ExactSolver(graph, targets)
    recorder = loop.Recorder(graph, record_every, iterations, solver)
    adam = AdamAscent(_lr(lr))
    seconds = 0.0
    for n in range(iterations + 1):
        old = softmax_rows(graph, logits)
        mean = solver.mean_hitting_time(old)
        if recorder.wants(n):
            recorder.add(n, old, mean)
        if n == iterations:
            break
        began = time.perf_counter()
        stats = planning.gradient_statistics(
            Policy(graph, old), solver.targets, rollouts=rollouts, seed=iteration_seed(seed, n),
            max_steps=_horizon(mean, horizon_factor), backend=backend, threads=threads,
            expected_steps=mean)
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
            # a move of probability 0 under the old policy is never taken: its ratio is unused
            ratio = np.divide(current, old, out=np.ones_like(current), where=old > 0)
            unclipped = np.where(advantage >= 0, ratio < 1 + clip, ratio > 1 - clip)
            per_move = np.where(unclipped & taken, weight * advantage * ratio, 0.0)
            gradient = (per_move - current * np.add.reduceat(per_move, starts)[rows]) * train_mask
            logits = adam.step(logits, gradient)
        seconds += time.perf_counter() - began
        loop.report(n + 1, iterations)
    settings = {"lr": lr, "beta": beta, "clip": clip, "epochs": epochs, "rollouts": rollouts,
                "seed": seed, "backend": backend, "horizon_factor": horizon_factor,
                "iterations": iterations, "record_every": record_every, "chain": list(chain),
                **loop.target_settings(graph, targets)}
    return loop.training_run(graph, "ppo", "tabular", settings, recorder, logits,
                             seconds / iterations if iterations else 0.0)


def train_distill(
    graph: Graph,
    teacher: Policy,
    iterations: int = METHODS["distill"].iterations,
    lr: float = METHODS["distill"].lr,
    rollouts: int = METHODS["distill"].rollouts,
    seed: int = 0,
    backend: str = "numba",
    threads: int | None = None,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
    chain: Sequence[str] = (),
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """Distillation (paper Thm 5): sample ``rollouts`` traces of ``teacher`` with the native engine
    (targets cycling through the leaves; :func:`teacher_traces`) and train the pretrained model
    (or ``logits``) on the cross-entropy of the traces' moves, ``dCE/dTheta[s, a] = N(s) pi(a|s)
    - N(s, a)`` per trace, N the teacher's visit counts. States the teacher never visits keep
    their probabilities. Stable for any teacher, however long its traces: the step backtracks."""
    counts, stats = teacher_traces(graph, teacher, rollouts, seed, backend, threads, targets)
    return cross_entropy_run(graph, "distill", counts, iterations, lr, parametrisation, record_every,
                             logits, {"rollouts": rollouts, "seed": seed, "backend": backend,
                                      "teacher": teacher.name, "teacher_steps": stats.steps,
                                      "chain": list(chain)}, targets=targets)


def teacher_traces(graph: Graph, teacher: Policy, rollouts: int, seed: int, backend: str = "numba",
                   threads: int | None = None, targets: Sequence[int] | None = None):
    """The move counts per trace of ``rollouts`` traces of ``teacher`` as distillation samples
    them (and mixture SFT with a teacher, so that a mixture of fraction 1 is distillation)."""
    if teacher.graph is not graph and teacher.graph.describe() != graph.describe():
        raise InputError("teacher: the teacher policy must live on the same graph")
    return traces.sampled(teacher, rollouts, iteration_seed(checks.seed("seed", seed), 0), backend, threads,
                          targets)


def train_rft(
    graph: Graph,
    iterations: int = METHODS["rft"].iterations,
    lr: float = METHODS["rft"].lr,
    rollouts: int = METHODS["rft"].rollouts,
    horizon_factor: float = HORIZON_FACTOR["rft"],
    inner_iterations: int = RFT_INNER_ITERATIONS,
    seed: int = 0,
    backend: str = "numba",
    threads: int | None = None,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
    chain: Sequence[str] = (),
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """Rejection-sampling fine-tuning (expert iteration, STaR): each of ``iterations`` rounds
    samples ``rollouts`` traces of the current policy (targets cycling through the leaves), cut
    at ``horizon_factor`` times its exact expected hitting time; the traces that hit within the
    horizon are kept (their move counts come from the engine's statistics: the censored rollouts
    are the rejected ones), and ``inner_iterations`` backtracking cross-entropy steps of size
    ``lr`` train the policy toward them. The recorded hitting times (one per round) are exact;
    the metric ``kept`` is the fraction of traces kept."""
    iterations = checks.iterations("iterations", iterations, 0)
    inner_iterations = checks.iterations("inner_iterations", inner_iterations)
    horizon_factor = checks.real("horizon_factor", horizon_factor, 0.0, low_open=True)
    seed = checks.seed("seed", seed)
    tie = tying(graph, parametrisation)
    theta = (pretrained_logits(graph) if logits is None else np.asarray(logits, float)).copy()
    solver = ExactSolver(graph, targets)
    recorder = loop.Recorder(graph, record_every, iterations, solver)
    seconds = 0.0
    for n in range(iterations + 1):
        p = softmax_rows(graph, theta)
        mean = solver.mean_hitting_time(p)
        if n == iterations:
            if recorder.wants(n):
                recorder.add(n, p, mean)
            break
        began = time.perf_counter()
        stats = planning.gradient_statistics(
            Policy(graph, p), solver.targets, rollouts=rollouts, seed=iteration_seed(seed, n),
            max_steps=_horizon(mean, horizon_factor), backend=backend, threads=threads,
            expected_steps=mean)
        if recorder.wants(n):
            recorder.add(n, p, mean, {"kept": stats.hits / stats.rollouts})
        if stats.hits:
            with loop.reporting(lambda done, total: None):  # the rounds are the progress
                inner = cross_entropy_run(graph, "rft", traces.kept(stats), inner_iterations, lr,
                                          parametrisation, inner_iterations, theta, {}, targets=targets)
            theta = inner.logits
        seconds += time.perf_counter() - began
        loop.report(n + 1, iterations)
    settings = {"lr": lr, "rollouts": rollouts, "horizon_factor": horizon_factor,
                "inner_iterations": inner_iterations, "seed": seed, "backend": backend,
                "iterations": iterations, "record_every": record_every, "chain": list(chain),
                **loop.target_settings(graph, targets)}
    return loop.training_run(graph, "rft", tie.name, settings, recorder, theta,
                             seconds / iterations if iterations else 0.0)


def _lr(lr: float) -> float:
    return checks.learning_rate("lr", lr)


TRAINERS: dict[str, Callable[..., TrainingRun]] = {
    "pretrain": train_pretrain, "sft": train_sft, "rlvr": train_rlvr, "rlvr-mc": train_rlvr_mc,
    "ppo": train_ppo, "distill": train_distill, "rft": train_rft,
}
