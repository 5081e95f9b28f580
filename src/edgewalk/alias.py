"""Walker alias tables in integer units: the sampling layout both simulation backends share.

A step from state s draws one 64-bit word z. Its high half picks the column
``k = row_start[s] + ((z >> 32) * degree(s)) >> 32`` of the state's row; its low half picks
``primary[k]`` if ``(z & 0xffffffff) <= threshold[k]``, else ``alias[k]``. Column k keeps
``threshold[k] + 1`` of its 2**32 units for ``primary[k]``, so the sampled probabilities are the
policy's rounded to multiples of 2**-32 / degree (largest-remainder rounding; a positive
probability never rounds to zero). The tables are built once, in numpy, for all rows of one
degree at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

ALIAS_UNITS = 1 << 32  # each alias column holds 2**32 probability units


@dataclass(frozen=True, eq=False)
class AliasTables:
    """The alias layout of one policy (see the module docstring). ``primary_entry[k]`` and
    ``alias_entry[k]`` are the CSR entries (state, move) that a draw of ``primary[k]`` or
    ``alias[k]`` stands for; ``weight[k]`` is the probability of ``next_state[k]`` in units of
    about 2**-31, positive exactly where the tables can draw it (the search wrapper's mask mode
    samples the unvisited entries of a row in proportion to it)."""

    row_start: np.ndarray  # int64
    next_state: np.ndarray  # int32
    threshold: np.ndarray  # uint32
    primary: np.ndarray  # int32: next_state[primary_entry]
    alias: np.ndarray  # int32: next_state[alias_entry]
    primary_entry: np.ndarray  # int32
    alias_entry: np.ndarray  # int32
    weight: np.ndarray  # uint32

    @classmethod
    def build(cls, row_start: np.ndarray, next_state: np.ndarray, probabilities: np.ndarray
              ) -> "AliasTables":
        """The tables of the CSR rows ``row_start``/``next_state`` with one probability per entry."""
        n_entries = len(next_state)
        threshold = np.empty(n_entries, np.uint32)
        weight = np.empty(n_entries, np.uint32)
        primary_entry = np.empty(n_entries, np.int32)
        alias_entry = np.empty(n_entries, np.int32)
        degree_of_row = np.diff(row_start)
        for degree in np.unique(degree_of_row[degree_of_row > 0]):
            rows = np.flatnonzero(degree_of_row == degree)
            entries = row_start[rows][:, None] + np.arange(degree)
            units = round_to_units(probabilities[entries] * int(degree) * ALIAS_UNITS)
            keep, alias_column = vose(units)
            empty = keep == 0  # a column with no own mass hands all of it to its alias
            columns = np.where(empty, alias_column, np.arange(degree))
            primary_entry[entries] = row_start[rows][:, None] + columns
            alias_entry[entries] = row_start[rows][:, None] + alias_column
            threshold[entries] = np.where(empty, ALIAS_UNITS, keep) - 1
            weight[entries] = -(-units // (2 * int(degree)))
        return cls(row_start, next_state, threshold, next_state[primary_entry],
                   next_state[alias_entry], primary_entry, alias_entry, weight)


def round_to_units(scaled: np.ndarray) -> np.ndarray:
    """Per row of ``scaled`` (rows x d), integers proportional to it whose sum is exactly
    d * 2**32 (largest-remainder rounding, ties to the first column), positive wherever
    ``scaled`` is (a lost unit is taken from the row's largest entry)."""
    rows, d = scaled.shape
    total = d * ALIAS_UNITS
    scaled = scaled * (total / scaled.sum(axis=1))[:, None]
    units = np.floor(scaled).astype(np.int64)
    short = total - units.sum(axis=1)
    order = np.argsort(-(scaled - units), axis=1, kind="stable")
    gets_one = np.arange(d)[None, :] < short[:, None]
    units[np.nonzero(gets_one)[0], order[gets_one]] += 1
    lost = (scaled > 0) & (units == 0)
    units[lost] = 1
    units[np.arange(rows), np.argmax(units, axis=1)] -= lost.sum(axis=1)
    return units


@numba.njit(cache=True)
def vose(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method per row of integer weights summing to d * 2**32: the units each
    column keeps for itself and the column its remainder goes to. Columns are paired in a fixed
    order (the last small column with the last large one), so the tables are reproducible."""
    rows, d = units.shape
    keep = np.full((rows, d), ALIAS_UNITS, np.int64)
    alias_column = np.empty((rows, d), np.int64)
    small = np.empty(d, np.int64)
    large = np.empty(d, np.int64)
    for row in range(rows):
        left = units[row].copy()
        n_small = n_large = 0
        for k in range(d):
            alias_column[row, k] = k
            if left[k] < ALIAS_UNITS:
                small[n_small] = k
                n_small += 1
            else:
                large[n_large] = k
                n_large += 1
        while n_small > 0 and n_large > 0:
            n_small -= 1
            s = small[n_small]
            big = large[n_large - 1]
            keep[row, s] = left[s]
            alias_column[row, s] = big
            left[big] -= ALIAS_UNITS - left[s]
            if left[big] < ALIAS_UNITS:
                n_large -= 1
                small[n_small] = big
                n_small += 1
    return keep, alias_column
