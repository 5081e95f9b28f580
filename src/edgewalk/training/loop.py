"""The loop every gradient method shares: parametrise, take the gradient, step, record; and the
progress every training loop reports."""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator, Sequence
from typing import Callable

import numpy as np

from .. import checks, memory
from ..errors import InputError
from ..exact import ExactSolver
from ..graph import Graph
from ..policy import from_logits, softmax_rows
from ..result import TrainingRun
from .parametrisation import DepthParameters, Parametrisation, pretrained_logits, trained_entries, tying

Gradient = Callable[[np.ndarray, ExactSolver], tuple[np.ndarray, "float | None"]]
_reporter: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar(
    "training_progress", default=None)


@contextlib.contextmanager
def reporting(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Within the block, every training loop calls ``callback(done, total)`` after each of its
    iterations (a progress bar; the command line shows one)."""
    token = _reporter.set(callback)
    try:
        yield
    finally:
        _reporter.reset(token)


def report(done: int, total: int) -> None:
    """Tell the reporter of :func:`reporting`, if any, that ``done`` of ``total`` are done."""
    callback = _reporter.get()
    if callback is not None:
        callback(done, total)


class Recorder:
    """Keeps the hitting time and a, b, c, d of every ``every``-th iteration and of the last.
    With the run's ``solver``, on a path-star whose policy differs between the branches or lanes
    of a depth at some recorded iteration, it also keeps the metrics ``<x>_visit_weighted``,
    ``<x>_branch_low`` and ``<x>_branch_high`` for x in a, b, c, d (one value per depth per row;
    see :meth:`DepthParameters.visit_weighted`, the visits averaged over the solver's targets)."""

    def __init__(self, graph: Graph, every: int, last: int, solver: ExactSolver | None = None) -> None:
        self.every = checks.whole("record_every", every, 1)
        self.depths = DepthParameters.build(graph)
        self.last = last
        # Each recorded row keeps a, b, c, d (and, on an asymmetric path-star, three times as many
        # visit-weighted readouts) as numpy arrays in lists, plus a few floats.
        readout = sum(112 + v.nbytes for v in self.depths.record(np.full(graph.n_transitions, 0.5)).values())
        rows = last // self.every + 2
        memory.require(rows * (4 * readout + 200), f"iterations: the history of {rows:,} recorded iterations "
                       f"(iterations {last:,} / record_every {self.every:,})", "iterations")
        self.solver = solver
        self.iteration: list[int] = []
        self.time: list[float] = []
        self.values: dict[str, list[np.ndarray]] = {name: [] for name in "abcd"}
        self.metrics: dict[str, list[float]] = {}
        self.weighted: list[dict[str, np.ndarray]] = []
        self.asymmetric = False

    def wants(self, n: int) -> bool:
        return n % self.every == 0 or n == self.last

    def add(self, n: int, probabilities: np.ndarray, hitting_time: float,
            metrics: dict[str, float] | None = None) -> None:
        self.iteration.append(n)
        self.time.append(hitting_time)
        for name, v in self.depths.record(probabilities).items():
            self.values[name].append(v)
        for name, v in (metrics or {}).items():
            self.metrics.setdefault(name, []).append(float(v))
        if self.solver is not None:
            called = []

            def visits() -> np.ndarray:
                called.append(True)
                return np.mean([s.solve(probabilities, visits=True)[1] for s in self.solver.systems], axis=0)

            weighted = self.depths.visit_weighted(probabilities, visits)
            if weighted is not None:
                self.weighted.append(weighted)
                self.asymmetric = self.asymmetric or bool(called)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {name: np.array(v) for name, v in self.values.items()}
        out["iteration"] = np.array(self.iteration, np.int64)
        out["hitting_time"] = np.array(self.time)
        return out

    def all_metrics(self) -> dict[str, np.ndarray]:
        """The recorded metrics, with the visit-weighted a, b, c, d where the policy was not
        symmetric at some recorded iteration."""
        out = {name: np.array(v) for name, v in self.metrics.items()}
        if self.asymmetric:
            for name in "abcd":
                rows = np.array([w[name] for w in self.weighted])
                for index, suffix in enumerate(("visit_weighted", "branch_low", "branch_high")):
                    out[f"{name}_{suffix}"] = rows[:, index]
        return out


def target_settings(graph: Graph, targets: Sequence[int] | None) -> dict:
    """What a training record says about its targets: {} for the leaves (the default), else the
    target node names."""
    return {} if targets is None else {"targets": [graph.node_names[t] for t in targets]}


def training_run(graph: Graph, method: str, parametrisation: str, settings: dict,
                 recorder: Recorder, logits: np.ndarray, seconds_per_iteration: float) -> TrainingRun:
    """The record of a finished run whose final logits are ``logits``; ``settings["chain"]``
    (the methods before this one, if the run started from another's result) gains ``method``."""
    arrays = recorder.arrays()
    settings = {**settings, "chain": [*settings.get("chain", []), method]}
    return TrainingRun(
        method=method, graph=graph.describe(), parametrisation=parametrisation, settings=settings,
        iteration=arrays["iteration"], hitting_time=arrays["hitting_time"],
        a=arrays["a"], b=arrays["b"], c=arrays["c"], d=arrays["d"], logits=logits,
        policy=from_logits(graph, logits, method, settings),
        seconds_per_iteration=seconds_per_iteration,
        metrics=recorder.all_metrics(),
    )


def run(graph: Graph, method: str, iterations: int, optimiser, parametrisation: Parametrisation,
        record_every: int, logits: np.ndarray | None, settings: dict, gradient: Gradient,
        objective: Callable[[np.ndarray], float] | None = None,
        readouts: Callable[[np.ndarray], dict[str, float]] | None = None,
        every_row: bool = False, targets: Sequence[int] | None = None) -> TrainingRun:
    """``iterations`` steps of ``optimiser`` from the pretrained logits (or ``logits``), the
    recorded hitting time averaged over ``targets`` (node indices; default the leaves).
    ``gradient(probabilities, solver)`` returns the objective's gradient per CSR entry (masked
    here to the trainable rows, then pulled back to the parameters) and the policy's mean hitting
    time if it came for free (else None: it is then solved for outside the timed part, when
    recorded). ``objective(probabilities)``, if given, is the value a line search compares, and
    is recorded as the metric ``objective``; ``readouts(probabilities)`` gives more metrics to
    record. Only the graph's trainable rows change, or with ``every_row`` all of them
    (pretraining learns the whole world model)."""
    iterations = checks.iterations("iterations", iterations, 0)
    train_mask = np.ones(graph.n_transitions, bool) if every_row else trained_entries(graph)
    tie = tying(graph, parametrisation)
    start = pretrained_logits(graph) if logits is None else np.asarray(logits, float)
    if parametrisation == "tied" and logits is not None:
        if not np.array_equal(tie.logits(tie.parameters_of(start)), start):
            raise InputError("logits: a tied run needs logits that are equal within every group")
    theta = tie.parameters_of(start) if parametrisation == "tied" else start.copy()
    solver = ExactSolver(graph, targets)
    recorder = Recorder(graph, record_every, iterations, solver)
    seconds = 0.0
    for n in range(iterations + 1):
        p = softmax_rows(graph, tie.logits(theta))
        metrics = {}
        if recorder.wants(n):
            metrics = {**({} if objective is None else {"objective": objective(p)}),
                       **({} if readouts is None else readouts(p))}
        if n == iterations:
            if recorder.wants(n):
                recorder.add(n, p, solver.mean_hitting_time(p), metrics)
            break
        began = time.perf_counter()
        g, hitting_time = gradient(p, solver)
        value = None if objective is None else (lambda th: objective(softmax_rows(graph, tie.logits(th))))
        theta = optimiser.step(theta, tie.pull_back(g * train_mask), value)
        seconds += time.perf_counter() - began
        report(n + 1, iterations)
        if recorder.wants(n):
            if hitting_time is None:
                hitting_time = solver.mean_hitting_time(p)
            recorder.add(n, p, hitting_time, metrics)
    settings = {"lr": optimiser.lr, **settings, "iterations": iterations, "record_every": record_every,
                **target_settings(graph, targets)}
    return training_run(graph, method, tie.name, settings, recorder, tie.logits(theta),
                        seconds / iterations if iterations else 0.0)
