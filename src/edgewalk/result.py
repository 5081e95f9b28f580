"""Hitting-time results: a histogram plus exact integer moments that do not depend on binning."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import hist
import numpy as np


@dataclass(frozen=True, eq=False)
class HittingTimes:
    """The outcome of N rollouts. Bin i of ``counts`` holds hitting times in
    [i * bin_width, (i + 1) * bin_width); censored rollouts (no hit within max_steps) are counted
    apart and never as hits. ``total`` and ``total_of_squares`` are exact sums over hits."""

    counts: np.ndarray = field(repr=False)
    bin_width: int
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
        return np.arange(len(self.counts) + 1, dtype=np.int64) * self.bin_width

    def to_hist(self) -> hist.Hist:
        """The histogram as a hist.Hist (Int64 storage); censored rollouts are its overflow."""
        edges = self.bin_edges
        h = hist.Hist(
            hist.axis.Regular(
                len(self.counts), 0, int(edges[-1]), underflow=False, overflow=True,
                name="hitting_time", label="hitting time (transitions after s0 -> f)",
            ),
            storage=hist.storage.Int64(),
        )
        view = h.view(flow=True)
        view[:-1] = self.counts
        view[-1] = self.censored
        return h

    def __add__(self, other: "HittingTimes") -> "HittingTimes":
        """Pool two results with the same binning (for example two disjoint rollout ranges)."""
        if self.bin_width != other.bin_width or len(self.counts) != len(other.counts):
            raise ValueError("only results with the same histogram binning can be added")
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
