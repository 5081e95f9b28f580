"""The training methods and the one table of their defaults (``METHODS``), read by the library,
the command line and the study alike.

- ``sft``: gradient descent on the exact expected cross-entropy of golden paths.
- ``rlvr``: sign gradient ascent with the exact population policy gradient.
- ``rlvr-mc``: the same with REINFORCE estimates from the native engine.
- ``ppo``: PPO on the tabular policy (paper Fig. 6).
- ``distill``: cross-entropy on a teacher's traces sampled by the engine.

Every method takes ``targets`` (node indices, drawn uniformly; default the graph's leaves): the
exact methods average over them, the Monte Carlo ones cycle through them (rollout r aims at
``targets[r % len(targets)]``), and the recorded hitting time is the exact average over them.
Only the graph's trainable rows change (``Graph.trainable``).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Callable

import numpy as np

from .. import checks, kernels, planning
from ..errors import InputError
from ..exact import ExactSolver
from ..graph import Graph
from ..policy import Policy, softmax_rows
from ..result import TrainingRun
from . import loop
from .objectives import cross_entropy_gradient, golden_counts
from .optimisers import AdamAscent, GradientDescent, SignAscent
from .parametrisation import Parametrisation, pretrained_logits, trained_entries


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
    Method("sft", "gradient descent on the exact cross-entropy of golden shortest paths", 100.0, 500),
    Method("rlvr", "sign gradient ascent with the exact population policy gradient (beta = 1)",
           0.01, 1000, beta=1.0),
    Method("rlvr-mc", "the same with Monte Carlo gradients from the native engine", 0.01, 200,
           rollouts=20_000, beta=1.0, monte_carlo=True),
    Method("ppo", "PPO, clipped surrogate, horizon twice the current hitting time", 0.05, 300,
           rollouts=20_000, beta=3e-4, monte_carlo=True),
    Method("distill", "cross-entropy on a teacher's traces sampled by the engine", 100.0, 500,
           rollouts=20_000, monte_carlo=True),
)}


def iteration_seed(seed: int, iteration: int) -> int:
    """A seed per training iteration, so that iterations draw independent rollouts."""
    return kernels.mix64((seed + (iteration + 1) * kernels.GAMMA) & kernels.MASK64)


def _horizon(mean_hitting_time: float, factor: float) -> int:
    return max(1, math.ceil(factor * mean_hitting_time))


def train_sft(
    graph: Graph,
    iterations: int = METHODS["sft"].iterations,
    lr: float = METHODS["sft"].lr,
    supervised_backward: np.ndarray | None = None,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """Gradient descent ``theta -= lr * dCE/dtheta`` on the exact golden-path cross-entropy from
    the pretrained logits (or ``logits``). Rows golden paths never condition on (all R- and L-
    states unless supervised) keep their logits, so their probabilities stay bit for bit those of
    the starting policy. From the pretrained logits every update moves each trained row
    monotonically toward its label (a vertex, or uniform over moves the policy treats alike), so
    no lr > 0 overshoots; larger lr only moves faster (the logit gaps grow like log(lr * steps)).
    The tied gradient sums over a group's entries, so it wants a smaller lr than tabular."""
    counts = golden_counts(graph, supervised_backward, targets)
    supervised = 0 if supervised_backward is None else int(np.sum(supervised_backward))
    return loop.run(graph, "sft", iterations, GradientDescent(_lr(lr)), parametrisation,
                    record_every, logits, {"supervised_backward": supervised},
                    lambda p, solver: (cross_entropy_gradient(graph, p, counts), None), targets)


def train_rlvr(
    graph: Graph,
    iterations: int = METHODS["rlvr"].iterations,
    lr: float = METHODS["rlvr"].lr,
    beta: float = METHODS["rlvr"].beta,
    parametrisation: Parametrisation = "tabular",
    record_every: int = 1,
    logits: np.ndarray | None = None,
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """Sign gradient ascent ``theta += lr * sign(dJ/dtheta)`` (sign(0) = 0) on J = 1 - beta E_x[T_x]
    with the exact population policy gradient, from the pretrained logits (or ``logits``). Only
    trainable rows are updated. The hitting time of every iteration comes free with its
    gradient, so ``record_every`` only thins the stored rows."""
    beta = checks.real("beta", beta, 0.0)
    return loop.run(graph, "rlvr", iterations, SignAscent(_lr(lr)), parametrisation, record_every,
                    logits, {"beta": beta}, lambda p, solver: solver.rlvr_gradient(p, beta), targets)


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
    horizon_factor: float = 50.0,
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
                     "horizon_factor": horizon_factor}, step, targets)


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
    horizon_factor: float = 2.0,
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """PPO on the tabular policy (paper Fig. 6): each iteration draws ``rollouts`` rollouts of the
    current policy cut at ``horizon_factor`` times its expected hitting time, with reward 1 for a
    hit and -beta per step, and takes ``epochs`` Adam steps of size ``lr`` on the clipped surrogate

        L(theta) = sum over (s, a) of N(s, a) min(rho A, clip(rho, 1 - clip, 1 + clip) A) / rollouts

    where rho = pi_theta(a|s) / pi_old(a|s), N(s, a) the visits of the move and A(s, a) its mean
    return-to-go less the mean return-to-go of its state (the per-move sufficient statistics of
    the native engine stand in for the individual samples). Only trainable rows change."""
    iterations = checks.whole("iterations", iterations, 0)
    beta = checks.real("beta", beta, 0.0)
    clip = checks.real("clip", clip, 0.0, low_open=True)
    epochs = checks.whole("epochs", epochs, 1)
    seed = checks.seed("seed", seed)
    train_mask = trained_entries(graph)
    rows = graph.entry_state
    starts = graph.row_start[:-1]
    logits = pretrained_logits(graph)
    solver = ExactSolver(graph, targets)
    recorder = loop.Recorder(graph, record_every, iterations)
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
            ratio = current / old
            unclipped = np.where(advantage >= 0, ratio < 1 + clip, ratio > 1 - clip)
            per_move = np.where(unclipped & taken, weight * advantage * ratio, 0.0)
            gradient = (per_move - current * np.add.reduceat(per_move, starts)[rows]) * train_mask
            logits = adam.step(logits, gradient)
        seconds += time.perf_counter() - began
    settings = {"lr": lr, "beta": beta, "clip": clip, "epochs": epochs, "rollouts": rollouts,
                "seed": seed, "backend": backend, "horizon_factor": horizon_factor,
                "iterations": iterations, "record_every": record_every,
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
    targets: Sequence[int] | None = None,
) -> TrainingRun:
    """Distillation (paper Thm 5): sample ``rollouts`` traces of ``teacher`` with the native engine
    (targets cycling through the leaves) and train the pretrained model by gradient descent on
    the cross-entropy of the traces' moves, ``dCE/dTheta[s, a] = N(s) pi(a|s) - N(s, a)`` per
    rollout, N the teacher's visit counts. States the teacher never visits keep their pretrained
    probabilities."""
    if teacher.graph is not graph and teacher.graph.describe() != graph.describe():
        raise InputError("teacher: the teacher policy must live on the same graph")
    seed = checks.seed("seed", seed)
    stats = planning.gradient_statistics(teacher, targets, rollouts=rollouts, seed=iteration_seed(seed, 0),
                                         backend=backend, threads=threads)
    counts = stats.visits.astype(float) / stats.rollouts
    return loop.run(graph, "distill", iterations, GradientDescent(_lr(lr)), parametrisation,
                    record_every, None,
                    {"rollouts": rollouts, "seed": seed, "backend": backend,
                     "teacher": teacher.name, "teacher_steps": stats.steps},
                    lambda p, solver: (cross_entropy_gradient(graph, p, counts), None), targets)


def _lr(lr: float) -> float:
    return checks.real("lr", lr, 0.0, low_open=True)


TRAINERS: dict[str, Callable[..., TrainingRun]] = {
    "sft": train_sft, "rlvr": train_rlvr, "rlvr-mc": train_rlvr_mc, "ppo": train_ppo,
    "distill": train_distill,
}
