"""The statistical criteria every Monte Carlo check uses (edgewalk.statistics), against scipy
computed independently."""

import math

import numpy as np
import pytest
from scipy import stats

from edgewalk import statistics


def test_chi_square_equals_pearsons_test_where_no_cell_is_merged():
    counts = np.array([30, 52, 18])
    censored = 20
    mass_below = np.array([0.0, 0.3, 0.7, 0.8])  # P(T < edge) at the 4 edges of 3 bins
    expected = np.array([0.3, 0.4, 0.1, 0.2]) * 120
    observed = np.array([30, 52, 18, 20])
    assert statistics.chi_square_p_value(counts, censored, mass_below) == pytest.approx(
        stats.chisquare(observed, expected).pvalue, rel=1e-12)


def test_an_observation_where_nothing_is_expected_gives_zero():
    # the law puts all its mass below the last edge, yet 5 rollouts were censored
    assert statistics.chi_square_p_value(np.array([30, 70]), 5, np.array([0.0, 0.3, 1.0])) == 0.0


def test_a_histogram_whose_law_fills_one_cell_has_no_test():
    # one bin holds the whole law (nothing beyond it): observed equals expected whatever happened
    assert math.isnan(statistics.chi_square_p_value(np.array([100]), 0, np.array([0.0, 1.0])))
    # the second bin expects 2 of 100 rollouts, so it is merged into the first
    assert math.isnan(statistics.chi_square_p_value(np.array([90, 10]), 0, np.array([0.0, 0.98, 1.0])))
    assert math.isnan(statistics.chi_square_p_value(np.array([3]), 0, np.array([0.0, 1.0])))


def test_cells_expecting_fewer_than_five_are_merged_from_the_left():
    counts = np.array([1, 2, 40, 57])
    mass_below = np.array([0.0, 0.01, 0.03, 0.45, 1.0])  # expects 1, 2, 42, 55 of 100, none beyond
    merged_observed = [1 + 2 + 40, 57]
    merged_expected = [1 + 2 + 42, 55]
    assert statistics.chi_square_p_value(counts, 0, mass_below) == pytest.approx(
        stats.chisquare(merged_observed, merged_expected).pvalue, rel=1e-12)
    with pytest.raises(ValueError, match="one value per bin edge"):
        statistics.chi_square_p_value(counts, 0, mass_below[:-1])


def test_chi_square_rejects_a_histogram_from_another_law():
    rng = np.random.default_rng(0)
    draws = rng.geometric(0.1, 100_000)  # T >= 1
    edges = np.arange(0, 201)  # integer bins [t, t + 1), t < 200; T >= 200 censored
    counts = np.bincount(draws[draws < 200], minlength=200)
    censored = int((draws >= 200).sum())
    right = stats.geom.cdf(edges - 1, 0.1)  # P(T < edge)
    wrong = stats.geom.cdf(edges - 1, 0.103)
    assert statistics.chi_square_p_value(counts, censored, right) > 1e-4
    assert statistics.chi_square_p_value(counts, censored, wrong) < 1e-4


def test_z_score_and_bonferroni_threshold():
    assert statistics.z_score(11.0, 10.0, 0.5) == 2.0
    assert statistics.z_score(10.0, 10.0, 0.0) == 0.0
    assert statistics.z_score(10.5, 10.0, 0.0) == math.inf
    assert statistics.bonferroni_threshold(1) == pytest.approx(stats.norm.isf(5e-4))
    assert statistics.bonferroni_threshold(132) == pytest.approx(stats.norm.isf(1e-3 / 264))
