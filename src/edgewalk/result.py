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
        if self.hits < 2:
            return math.nan
        n = self.hits
        return (self.total_of_squares - self.total * self.total / n) / (n - 1)

    @property
    def stderr(self) -> float:
        return math.sqrt(self.variance / self.hits) if self.hits >= 2 else math.nan

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
            seconds=self.seconds + other.seconds,
        )
