"""The statistical criteria every Monte Carlo number is judged by, one definition each: the
z-score of a mean against its exact value, the chi-square test of a histogram against the
exact law at its bin edges, and the Bonferroni threshold of a family of tests."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

EXPECTED_PER_CELL = 5.0  # cells are merged until each expects at least this many rollouts


def z_score(mean: float, exact: float, stderr: float) -> float:
    """(mean - exact) / stderr: nan when either value is missing (nan), 0 when a zero standard
    error meets the exact value, +-inf when it misses it."""
    if math.isnan(mean) or math.isnan(exact) or math.isnan(stderr):
        return math.nan
    difference = mean - exact
    if stderr > 0:
        return difference / stderr
    return 0.0 if difference == 0 else math.copysign(math.inf, difference)


def chi_square_p_value(counts: np.ndarray, censored: int, mass_below: np.ndarray) -> float:
    """Pearson's chi-square test of a histogram (``counts`` per bin, ``censored`` rollouts beyond
    it) against the exact law, given as ``mass_below[i]`` = P(T < edges[i]) at each bin edge
    (the censored cell expects the mass beyond the last edge). Cells are merged from the left
    until each expects at least 5 rollouts; an observation where nothing is expected gives
    p = 0. Returns the p-value, or nan where there is nothing to test: no rollouts, or fewer
    than two cells (all the expected mass in one: nothing to compare)."""
    counts = np.asarray(counts, float)
    n = counts.sum() + censored
    if n == 0:
        return math.nan
    mass_below = np.asarray(mass_below, float)
    if mass_below.shape != (len(counts) + 1,):
        raise ValueError(f"mass_below needs one value per bin edge ({len(counts) + 1}), not {mass_below.shape}")
    expected = np.append(np.maximum(np.diff(mass_below), 0.0), max(0.0, 1.0 - mass_below[-1])) * n
    observed = np.append(counts, censored)
    cells_obs, cells_exp, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= EXPECTED_PER_CELL:
            cells_obs.append(acc_o)
            cells_exp.append(acc_e)
            acc_o = acc_e = 0.0
    if acc_e > 0 or acc_o > 0:
        if acc_e == 0:
            return 0.0
        if not cells_obs:
            return math.nan
        cells_obs[-1] += acc_o
        cells_exp[-1] += acc_e
    if len(cells_obs) < 2:
        return math.nan
    chi2 = sum((o - e) ** 2 / e for o, e in zip(cells_obs, cells_exp))
    return float(stats.chi2.sf(chi2, len(cells_obs) - 1))


def bonferroni_threshold(comparisons: int, alpha: float = 1e-3) -> float:
    """The |z| beyond which one of ``comparisons`` two-sided tests fails at family-wise ``alpha``."""
    return float(stats.norm.isf(alpha / (2 * max(comparisons, 1))))
