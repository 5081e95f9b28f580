"""What runs produce: hitting-time results (a histogram plus exact integer moments), the policy
gradient's sufficient statistics, and training histories. Plain records; no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import hist
import numpy as np

from .policy import Policy


def regular_edges(bins: int, width: int) -> np.ndarray:
    """The edges of ``bins`` integer bins of equal ``width`` starting at 0."""
    return np.arange(bins + 1, dtype=np.int64) * width


@dataclass(frozen=True, eq=False)
class HittingTimes:
    """The outcome of N rollouts. Bin i of ``counts`` holds hitting times in
    [edges[i], edges[i + 1]); censored rollouts (no hit within max_steps) are counted apart and
    never as hits. ``total`` and ``total_of_squares`` are exact sums over hits, so means and
    variances do not depend on the binning."""

    counts: np.ndarray = field(repr=False)
    edges: np.ndarray = field(repr=False)  # int64, len(counts) + 1, increasing, from 0
    hits: int
    censored: int
    total: int
    total_of_squares: int
    steps: int  # transitions made by all rollouts, censored ones included
    draws_total: int = 0  # policy draws over hits (equal to total unless the search wrapper rejects)
    draws_total_of_squares: int = 0
    seconds: float = 0.0  # time spent in the simulation kernels
    compile_seconds: float = 0.0  # time spent compiling or loading the kernel before that
    parameters: dict = field(default_factory=dict)
    # The exact law at the bin edges where it is known: P(T < edges[i]) for every edge.
    exact_mass_below: np.ndarray | None = field(default=None, repr=False)

    @property
    def rollouts(self) -> int:
        return self.hits + self.censored

    @property
    def mean(self) -> float:
        """Mean hitting time over the rollouts that hit (nan if none did)."""
        return self.total / self.hits if self.hits else math.nan

    @property
    def variance(self) -> float:
        """Unbiased sample variance of the hitting times of the rollouts that hit."""
        return _variance(self.hits, self.total, self.total_of_squares)

    @property
    def stderr(self) -> float:
        return _stderr(self.hits, self.total, self.total_of_squares)

    @property
    def mean_draws(self) -> float:
        """Mean number of policy draws of the rollouts that hit."""
        return self.draws_total / self.hits if self.hits else math.nan

    @property
    def stderr_draws(self) -> float:
        return _stderr(self.hits, self.draws_total, self.draws_total_of_squares)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else math.nan

    @property
    def bin_edges(self) -> np.ndarray:
        return self.edges

    @property
    def bin_width(self) -> int | None:
        """The common width of the bins, or None if they are not all equal."""
        widths = np.diff(self.edges)
        return int(widths[0]) if len(widths) and np.all(widths == widths[0]) else None

    def to_hist(self) -> hist.Hist:
        """The histogram as a hist.Hist (Int64 storage; a Regular axis for equal bins, else a
        Variable one); censored rollouts are its overflow."""
        options = dict(underflow=False, overflow=True, name="hitting_time",
                       label="hitting time (transitions after the start state)")
        if self.bin_width is not None:
            axis = hist.axis.Regular(len(self.counts), 0, int(self.edges[-1]), **options)
        else:
            axis = hist.axis.Variable(self.edges.astype(float), **options)
        h = hist.Hist(axis, storage=hist.storage.Int64())
        view = h.view(flow=True)
        view[:-1] = self.counts
        view[-1] = self.censored
        return h

    def __add__(self, other: "HittingTimes") -> "HittingTimes":
        """Pool two results with the same binning and method (for example two disjoint rollout
        ranges of one run)."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("only results with the same histogram binning can be added")
        if self.parameters.get("method", "step") != other.parameters.get("method", "step"):
            raise ValueError("results of the step and the leap method draw different rollouts: "
                             "they cannot be added")
        return replace(
            self,
            counts=self.counts + other.counts,
            hits=self.hits + other.hits,
            censored=self.censored + other.censored,
            total=self.total + other.total,
            total_of_squares=self.total_of_squares + other.total_of_squares,
            steps=self.steps + other.steps,
            draws_total=self.draws_total + other.draws_total,
            draws_total_of_squares=self.draws_total_of_squares + other.draws_total_of_squares,
            seconds=self.seconds + other.seconds,
        )


def _variance(n: int, total: int, total_of_squares: int) -> float:
    """Unbiased sample variance from exact integer sums (the subtraction is done exactly)."""
    if n < 2:
        return math.nan
    return (total_of_squares * n - total * total) / (n * (n - 1))


def _stderr(n: int, total: int, total_of_squares: int) -> float:
    return math.sqrt(_variance(n, total, total_of_squares) / n) if n >= 2 else math.nan


@dataclass(frozen=True, eq=False)
class GradientStatistics:
    """Sufficient statistics of the REINFORCE policy gradient of the softmax-tabular policy, from
    rollouts whose targets cycle through ``targets`` (rollout r aims at targets[r % len]).
    Per transition k (a CSR entry: a state and a move): ``visits[k]`` times the move was taken,
    ``hit_visits[k]`` of those in rollouts that hit, and ``remaining_sum[k]`` the steps left in
    the rollout at those times, the move itself included (T - t + 1 for a move taken at step t of
    a rollout of length T)."""

    policy: Policy
    targets: tuple[int, ...]
    rollouts: int
    hits: int
    censored: int
    steps: int
    visits: np.ndarray
    hit_visits: np.ndarray
    remaining_sum: np.ndarray
    seconds: float = 0.0

    def returns(self, beta: float = 1.0) -> np.ndarray:
        """Per transition, the return-to-go summed over its visits, with reward 1 for a hit and
        -beta per step (the step taken included)."""
        return self.hit_visits - beta * self.remaining_sum.astype(float)

    def gradient(self, beta: float = 1.0) -> np.ndarray:
        """Unbiased estimate of dJ/dTheta for J = P(hit) - beta E[T] (targets averaged as
        sampled), one value per CSR entry: (R(s,a) - pi(a|s) R(s)) / rollouts."""
        graph = self.policy.graph
        move_returns = self.returns(beta)
        state_returns = np.add.reduceat(move_returns, graph.row_start[:-1])
        return (move_returns - self.policy.probabilities * state_returns[graph.entry_state]) / self.rollouts

    @property
    def mean_hitting_time(self) -> float:
        return self.steps / self.rollouts


@dataclass(frozen=True, eq=False)
class TrainingRun:
    """One training run. Row r of ``hitting_time`` and of a, b, c, d belongs to iteration
    ``iteration[r]`` (0 = the starting policy). On a path-star, a, b, c, d have shape (rows, K)
    on a symmetric graph (averaged over branches and over the states of each kind) and
    (rows, W, max K) per branch otherwise (nan beyond a branch's depth); on other graphs they
    are empty. ``hitting_time`` is the exact expected hitting time averaged over the targets;
    ``metrics`` holds any other per-row series a method records (its objective; the
    visit-weighted a, b, c, d of ``training.loop.Recorder``, one value per depth per row; for a
    transformer which rows are exact, the horizon, ...). ``settings["chain"]`` lists the methods
    that made the policy, earliest first (a run started from another run's result continues its
    chain). A run that trains a model other than the table (``parametrisation`` "transformer")
    keeps its configuration and final parameters in ``model`` ({"config": dict, "parameters":
    name -> array}), and in ``logits`` and ``policy`` the table it started from."""

    method: str
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
    metrics: dict = field(default_factory=dict, repr=False)  # name -> one value (or row) per recorded row
    model: dict = field(default_factory=dict, repr=False)

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
            "metrics": dict(self.metrics), "model": self.model,
        }
