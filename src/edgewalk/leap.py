"""Leap sampling: Monte Carlo hitting times drawn from their exact law by binary lifting over
the lumped chain (:mod:`edgewalk.lumping`), so that a rollout costs about 1 + log2(T) random
draws however long it is; and the exact law itself (CDF, quantiles, means) from the same
powers.

The powers. With Q the lumped chain's transient block and a its absorption vector, level m holds
``S_m = Q^(2^m)`` (survive 2^m steps, landing in each block) and ``A_m`` = P(absorbed within 2^m
steps | block), from ``S_0 = Q``, ``A_0 = a`` and

    A_(m+1) = A_m + S_m A_m,    S_(m+1) = S_m S_m,

additions and multiplications of non-negative numbers only (never 1 - survival), so that A_m
keeps its relative accuracy where it is 1e-14 or smaller. After each level every row of
[S_m | A_m] is divided by its sum (which is 1 in exact arithmetic): without this the float
rounding of the rows (about 1e-16 of mass created or lost per step) compounds over the 2^m
steps a level stands for; for SFT at K = 15 (E[T] = 4.3e14) plain squaring misses E[T] by 0.7%
and P(T > 1e15) by 4%. With it, the mean from the powers agrees with the subtraction-free GTH
solver of the unlumped chain to 2e-15 there.

The draws. With B = floor(log2 max_steps) and R = max_steps - 2^B, a rollout makes:

1. one draw from the start row: T = 1; or T in (2^b, 2^(b+1)] for b = 0..B-1 together with
   the block y at time 2^b (weight S_b(start, y) A_b(y)); or "no hit within 2^B steps" with the
   block at time 2^B (weight S_B(start, y));
2. in the last case, one draw per set bit m of R, from the top: "hit within the next 2^m
   steps" (weight A_m(y)) or "survive them, landing in y'" (weight S_m(y, y')); surviving every
   bit censors the rollout at max_steps;
3. once the hit is known to lie in a window of 2^l steps starting in block y, one draw per
   halving: "in the first half" (weight A_(l-1)(y)) or "in the second half, with block y' at
   the half" (weight S_(l-1)(y, y') A_(l-1)(y')), down to a window of one step.

Each draw is one integer alias row (the columns and sampling rule of
:class:`edgewalk.alias.AliasTables`, built with ``round_to_units`` and ``vose``) over the
outcomes with positive weight, each column stored with the rows its two outcomes lead to (see
native/edgewalk_leap.h); the kernels (C and ``_numba_leap``) only walk the rows. The law drawn
is the lumped chain's up to the float rounding of the powers (see above and tests/test_leap.py)
and the integer rounding of each row: per draw at most 1.5 x 2**-32 of
probability is moved by the units, plus the column pick's bias of r (d - r) / d x 2**-32 for a
row of d outcomes (r = 2**32 mod d). Summed over a rollout that is at most 1.7e-7 in total
variation for SFT on the paper's graph (mostly the start row's, d = 2227), 4e-8 for the
pretrained policy and 6e-9 for RLVR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Union

import numba
import numpy as np

from . import _native, _numba_leap, checks, kernels, memory
from .alias import AliasTables
from .errors import InputError
from .lumping import LumpedChain
from .result import HittingTimes, regular_edges

if dict(_native.LEAP_ABI) != _numba_leap.ABI:
    raise ImportError("edgewalk: the Numba leap kernel and native/edgewalk_leap.h disagree; "
                      "rebuild the extension (pip install .)")

HIT, CENSORED = _numba_leap.HIT, _numba_leap.CENSORED
MAX_STEPS = 2**62
TOP_LEVEL = 62  # powers up to Q^(2^62) answer P(T <= t) for every t <= 2^62
DEFAULT_BINS = 4096
LOG_BINS_SPAN = 1000.0  # log-spaced bins when the 1e-4 and 1 - 1e-4 quantiles differ more

# The cost model a planner should use, per thread, deliberately below the measured rates
# (see estimated_seconds). A run costs the build (squarings and alias rows) + rollouts x draws per
# rollout / (threads x PLANNING_DRAWS_PER_SECOND), draws per rollout <= 1 + log2(E[T]) (Jensen).
PLANNING_DRAWS_PER_SECOND = 2e7
PLANNING_FLOPS_PER_SECOND = 5e8  # squaring the n x n powers: 2 n^3 flops per level (and the mean)
PLANNING_SECONDS_PER_LEVEL = 2e-3  # the numpy calls of a level, whatever n
PLANNING_COLUMNS_PER_SECOND = 5e6  # building the integer alias rows
BYTES_PER_COLUMN_KEPT = 16  # threshold, the two outcomes' rows, their advances
BYTES_PER_COLUMN_BUILDING = 96  # the weights, outcomes and alias intermediates of one level

Progress = Callable[[int, int], None]  # progress(rollouts done, steps done)


@dataclass(frozen=True, eq=False)
class Powers:
    """``survive[m] = Q^(2^m)``, ``absorb[m] = A_m`` and ``truncated[m]`` = E[min(T, 2^m) |
    block] for m = 0..levels - 1, each row of [survive | absorb] normalised to sum 1."""

    survive: list[np.ndarray] = field(repr=False)
    absorb: list[np.ndarray] = field(repr=False)
    truncated: list[np.ndarray] = field(repr=False)

    @property
    def levels(self) -> int:
        return len(self.survive)

    @classmethod
    def of(cls, lumped: LumpedChain, top: int) -> "Powers":
        """Levels 0..top of the lumped chain (SizeError if they would not fit in memory)."""
        n = lumped.n_transient
        memory.require((top + 1) * (n * n + 2 * n) * 8, f"the powers of {n} lumped blocks up to Q^(2^{top})")
        survive = lumped.dense_q()
        absorb = lumped.absorb.copy()
        total = survive.sum(axis=1) + absorb
        powers = cls([survive / total[:, None]], [absorb / total], [np.ones(lumped.n_transient)])
        return powers.extended(top)

    def extended(self, top: int) -> "Powers":
        """These powers continued to level ``top`` (self if they reach it already)."""
        if top < self.levels:
            return self
        survive, absorb, truncated = list(self.survive), list(self.absorb), list(self.truncated)
        while len(survive) <= top:
            s, a, tau = survive[-1], absorb[-1], truncated[-1]
            next_absorb = a + s @ a
            next_survive = s @ s
            total = next_survive.sum(axis=1) + next_absorb
            survive.append(next_survive / total[:, None])
            absorb.append(next_absorb / total)
            truncated.append(tau + s @ tau)
        return Powers(survive, absorb, truncated)


@dataclass(frozen=True, eq=False)
class LeapTables:
    """Everything the leap kernels need for one lumped chain and ``max_steps`` (made by
    :func:`build_tables`): the alias rows, ``row_start`` and ``columns`` (uint32, four words a
    column: threshold, the primary and the alias outcome's next row, their advances; see
    native/edgewalk_leap.h), the row rollouts start from (``start_row``, or HIT when the start
    state enters the target), the powers they were built from, ``expected_draws``, the exact
    mean number of draws per rollout, and ``exact_mean``, E[T] (see :func:`mean`)."""

    lumped: LumpedChain = field(repr=False)
    max_steps: int
    powers: Powers = field(repr=False)
    row_start: np.ndarray = field(repr=False)  # int64, one more than rows
    columns: np.ndarray = field(repr=False)  # uint32, (columns, 4)
    start_row: int
    expected_draws: float
    exact_mean: float

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the tables and the powers they keep."""
        arrays = [self.row_start, self.columns, *self.powers.survive, *self.powers.absorb,
                  *self.powers.truncated]
        return sum(a.nbytes for a in arrays)


Law = Union[LumpedChain, LeapTables]


def _top_level(max_steps: int) -> int:
    return max_steps.bit_length() - 1


def estimated_bytes(n_transient: int, max_steps: int) -> int:
    """An upper bound on the memory :func:`build_tables` needs at its peak for a lumped chain of
    ``n_transient`` transient blocks (every outcome counted as if its weight were positive)."""
    n, top = n_transient, _top_level(max_steps)
    remainder_bits = bin(max_steps - (1 << top)).count("1")
    powers = (top + 1) * (n * n + 2 * n) * 8
    columns = _column_bound(n, top, remainder_bits)
    largest_level = max(n * (n + 1), 2 + top * n)
    return powers + columns * BYTES_PER_COLUMN_KEPT + largest_level * BYTES_PER_COLUMN_BUILDING


def _column_bound(n: int, top: int, remainder_bits: int) -> int:
    start = 2 + max(top - 1, 0) * n + n
    descent = (2 * n if top >= 2 else 0) + max(top - 2, 0) * n * (n + 1)
    return start + descent + remainder_bits * n * (n + 1)


def estimated_seconds(n_transient: int, max_steps: int, rollouts: int, threads: int,
                      mean: float | None = None) -> float:
    """The planning estimate of a leap run's seconds: building the tables (a fixed cost per
    level, the squarings, the mean and the alias rows) plus the rollouts at
    PLANNING_DRAWS_PER_SECOND per thread, with 1 + log2(mean) draws per rollout (an upper bound
    on the exact mean number by Jensen's inequality) when the exact mean is given, else the
    most a rollout can take."""
    n, top = n_transient, _top_level(max_steps)
    remainder_bits = bin(max_steps - (1 << top)).count("1")
    build = ((top + 1) * PLANNING_SECONDS_PER_LEVEL
             + (top + 2) * 2.0 * n**3 / PLANNING_FLOPS_PER_SECOND
             + _column_bound(n, top, remainder_bits) / PLANNING_COLUMNS_PER_SECOND)
    if mean is not None and math.isfinite(mean):
        draws = 1.0 + math.log2(max(mean, 1.0))
    else:
        draws = 1.0 + top + remainder_bits
    return build + rollouts * draws / (threads * PLANNING_DRAWS_PER_SECOND)


def build_tables(lumped: LumpedChain, max_steps: int, *, max_bytes: int | None = None) -> LeapTables:
    """The powers and alias rows that draw hitting times up to ``max_steps`` (1..2**62;
    longer rollouts are censored there). Raises SizeError, before any work, if
    :func:`estimated_bytes` exceeds ``max_bytes`` (default ``memory.limit()``)."""
    if not isinstance(lumped, LumpedChain):
        raise InputError(f"lumped must be a LumpedChain (lumping.lump), got {type(lumped).__name__}")
    max_steps = checks.whole("max_steps", max_steps, 1, MAX_STEPS)
    n = lumped.n_transient
    max_bytes = None if max_bytes is None else checks.whole("max_bytes", max_bytes, 1)
    memory.require(estimated_bytes(n, max_steps),
                   f"leap tables for {n} lumped blocks up to max_steps = {max_steps}", allowed=max_bytes)
    if lumped.start == lumped.target_block:  # T = 0 surely; the kernels need no rows
        return LeapTables(lumped, max_steps, Powers([], [], []), np.zeros(2, np.int64),
                          np.zeros((1, 4), np.uint32), HIT, 0.0, 0.0)
    powers = Powers.of(lumped, _top_level(max_steps))
    groups, expected_draws = _rows(powers, lumped.start, n, max_steps)
    row_start, columns = _alias_rows(groups)
    return LeapTables(lumped, max_steps, powers, row_start, columns, 0, expected_draws, mean(lumped))


@dataclass
class _Group:
    """Consecutive rows: outcome weights, next rows and advance codes, one row per line."""

    first_row: int
    weights: np.ndarray
    next_row: np.ndarray
    advance: np.ndarray


def _rows(powers: Powers, start: int, n: int, max_steps: int) -> tuple[list[_Group], float]:
    """The rows of the module docstring, in row order: the start row (row 0), the descent rows
    of windows 2^l (l = 1..B-1, n rows each) and the rows of the set bits of R (n rows each);
    and the exact mean number of draws per rollout."""
    S, A = powers.survive, powers.absorb
    top = _top_level(max_steps)
    bits = [m for m in range(top - 1, -1, -1) if (max_steps - (1 << top)) >> m & 1]
    blocks = np.arange(n)

    def descent_row(level: int) -> np.ndarray:  # rows of windows of 2^level steps, level >= 1
        return 1 + (level - 1) * n + blocks

    def bit_row(j: int) -> np.ndarray:  # rows of the j-th set bit of R
        return 1 + max(top - 1, 0) * n + j * n + blocks

    groups: dict[int, _Group] = {}
    # total weight of every row built so far (rows are built after the rows they lead to); an
    # outcome leading to a row of no weight (possible only through float underflow) is dropped,
    # so that no drawn outcome ends in an empty row
    row_total = np.ones(1 + max(top - 1, 0) * n + len(bits) * n)

    def add(first_row: int, weights: np.ndarray, next_row: np.ndarray, advance: np.ndarray) -> None:
        weights = np.where((next_row >= 0) & (row_total[np.maximum(next_row, 0)] == 0), 0.0, weights)
        groups[first_row] = _Group(first_row, weights, next_row.astype(np.int32), advance.astype(np.uint8))
        row_total[first_row:first_row + len(weights)] = weights.sum(axis=1)

    for level in range(1, top):  # windows of 2^level steps: first half or second half
        a, s = A[level - 1], S[level - 1]
        if level == 1:
            weights = np.column_stack([a, s @ a])
            next_row = np.full((n, 2), HIT)
            advance = np.broadcast_to([1, 2], (n, 2))  # the hit at t + 1 or t + 2
        else:
            weights = np.column_stack([a, s * a[None, :]])
            lower = descent_row(level - 1)
            next_row = np.column_stack([lower, np.broadcast_to(lower, (n, n))])
            advance = np.column_stack([np.zeros(n), np.full((n, n), level)])  # 0 or 2^(level-1)
        add(int(descent_row(level)[0]), weights, next_row, advance)

    # the set bits of R, from the lowest up (each row leads to the next lower bit's rows)
    draws_after = np.zeros(n)  # mean draws from the rows of bit j on
    for j in range(len(bits) - 1, -1, -1):
        m = bits[j]
        absorbed_row = descent_row(m) if m >= 1 else np.full(n, HIT)
        absorbed_advance = 0 if m >= 1 else 1
        if j == len(bits) - 1:  # surviving the last bit censors
            weights = np.column_stack([A[m], S[m].sum(axis=1)])
            next_row = np.column_stack([absorbed_row, np.full(n, CENSORED)])
            advance = np.column_stack([np.full(n, absorbed_advance), np.full(n, m + 1)])
        else:
            weights = np.column_stack([A[m], S[m]])
            next_row = np.column_stack([absorbed_row, np.broadcast_to(bit_row(j + 1), (n, n))])
            advance = np.column_stack([np.full(n, absorbed_advance), np.full((n, n), m + 1)])
        add(int(bit_row(j)[0]), weights, next_row, advance)
        draws_after = 1.0 + A[m] * m + (S[m] @ draws_after if j < len(bits) - 1 else 0.0)

    # the start row: T = 1, T = 2, T in (2^b, 2^(b+1)] for b = 1..B-1, or beyond 2^B
    weights = [A[0][start]]
    next_row = [HIT]
    advance = [1]
    draws = [1.0]
    if top >= 1:
        weights.append((S[0] @ A[0])[start])
        next_row.append(HIT)
        advance.append(2)
        draws.append(1.0)
    for b in range(1, top):
        weights.extend(S[b][start] * A[b])
        next_row.extend(descent_row(b))
        advance.extend([b + 1] * n)
        draws.extend([1.0 + b] * n)
    if bits:
        weights.extend(S[top][start])
        next_row.extend(bit_row(0))
        advance.extend([top + 1] * n)
        draws.extend(1.0 + draws_after)
    else:
        weights.append(S[top][start].sum())
        next_row.append(CENSORED)
        advance.append(top + 1)
        draws.append(1.0)
    weights = np.array(weights)
    add(0, weights[None, :], np.array(next_row)[None, :], np.array(advance)[None, :])
    expected_draws = float(groups[0].weights[0] @ np.array(draws) / groups[0].weights[0].sum())
    return [groups[k] for k in sorted(groups)], expected_draws


def _alias_rows(groups: list[_Group]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the groups' rows, keeping only outcomes of positive weight, build each row's
    integer alias columns (``AliasTables.build`` over outcome numbers) and resolve every
    column's two outcomes to their next rows and advances: (row_start, columns)."""
    row_starts, columns = [np.zeros(1, np.int64)], []
    offset = 0
    for group in groups:
        positive = group.weights > 0
        degree = positive.sum(axis=1)
        local_start = np.concatenate(([0], np.cumsum(degree))).astype(np.int64)
        weights = group.weights[positive]
        row_of = np.repeat(np.arange(len(degree)), degree)
        sums = np.bincount(row_of, weights=weights, minlength=len(degree))
        tables = AliasTables.build(local_start, np.arange(len(weights), dtype=np.int32),
                                   weights / sums[row_of])
        next_row = group.next_row[positive].view(np.uint32)
        advance = group.advance[positive].astype(np.uint32)
        primary, alias = tables.primary_entry, tables.alias_entry
        columns.append(np.column_stack([tables.threshold, next_row[primary], next_row[alias],
                                        advance[primary] | advance[alias] << 8]))
        row_starts.append(local_start[1:] + offset)
        offset += len(weights)
    return np.concatenate(row_starts), np.ascontiguousarray(np.concatenate(columns), dtype=np.uint32)


def _law(law: Law, top: int) -> tuple[LumpedChain, Powers | None]:
    """The lumped chain of ``law`` and its powers up to level ``top`` (None if T = 0 surely)."""
    if isinstance(law, LeapTables):
        lumped, powers = law.lumped, law.powers
    elif isinstance(law, LumpedChain):
        lumped, powers = law, None
    else:
        raise InputError(f"law must be a LumpedChain or LeapTables, got {type(law).__name__}")
    if lumped.start == lumped.target_block:
        return lumped, None
    return lumped, (Powers.of(lumped, top) if powers is None else powers.extended(top))


def _times(name: str, t) -> np.ndarray:
    values = np.asarray(t)
    if values.dtype.kind not in "iu" or values.size == 0 or values.min() < 0 or values.max() > MAX_STEPS:
        raise InputError(f"{name} must be whole numbers in [0, 2**62], got {t!r}")
    return values.astype(np.int64)


def cdf(law: Law, t) -> np.ndarray | float:
    """P(T <= t) for a whole number t or an array of them (0 <= t <= 2**62), from the binary
    expansion of t: additions and multiplications of non-negative numbers only."""
    times = _times("t", t)
    flat = times.ravel()
    lumped, powers = _law(law, max(int(flat.max()).bit_length() - 1, 0))
    if powers is None:
        out = np.ones(flat.shape)
    else:
        alive = np.zeros((len(flat), lumped.n_transient))
        alive[:, lumped.start] = 1.0
        out = np.zeros(len(flat))
        for m in range(powers.levels - 1, -1, -1):
            on = (flat >> m) & 1 == 1
            if on.any():
                out[on] += alive[on] @ powers.absorb[m]
                alive[on] = alive[on] @ powers.survive[m]
    out = out.reshape(times.shape)
    return float(out) if out.ndim == 0 else out


def truncated_mean(law: Law, t: int) -> float:
    """E[min(T, t)] for a whole number 0 <= t <= 2**62 (the mean steps of a run censored at t)."""
    t = int(_times("t", t))
    lumped, powers = _law(law, max(t.bit_length() - 1, 0))
    if powers is None:
        return 0.0
    alive = np.zeros(lumped.n_transient)
    alive[lumped.start] = 1.0
    total = 0.0
    for m in range(powers.levels - 1, -1, -1):
        if t >> m & 1:
            total += alive @ powers.truncated[m]
            alive = alive @ powers.survive[m]
    return float(total)


def quantile(law: Law, q):
    """The smallest t with P(T <= t) >= q, for q in (0, 1] or an array of them; None (or -1 in
    an array) where no t <= 2**62 reaches q."""
    qs = np.asarray(q, dtype=float)
    if qs.size == 0 or not np.all((qs > 0) & (qs <= 1)):
        raise InputError(f"q must be probabilities in (0, 1], got {q!r}")
    flat = qs.ravel()
    lumped, powers = _law(law, TOP_LEVEL - 1)
    if powers is None:
        out = np.zeros(len(flat), np.int64)
    else:
        # descend: keep the largest t with P(T <= t) < q, one level at a time
        alive = np.zeros((len(flat), lumped.n_transient))
        alive[:, lumped.start] = 1.0
        below = np.zeros(len(flat))
        t = np.zeros(len(flat), np.int64)
        for m in range(TOP_LEVEL - 1, -1, -1):
            reached = below + alive @ powers.absorb[m]
            short = reached < flat
            below[short] = reached[short]
            alive[short] = alive[short] @ powers.survive[m]
            t[short] += 1 << m
        out = t + 1
        at_max = out == MAX_STEPS
        if at_max.any():
            never = below[at_max] + alive[at_max] @ powers.absorb[0] < flat[at_max]
            out[np.flatnonzero(at_max)[never]] = -1
    if qs.ndim == 0:
        return None if out[0] < 0 else int(out[0])
    return out.reshape(qs.shape)


def mean(law: Law) -> float:
    """The exact expected hitting time of the lumped chain (inf if some block it reaches never
    reaches the target), by subtraction-free GTH state reduction of the dense chain. It agrees
    with ``exact.expected_hitting_time`` on the law the step kernel samples
    (``lumping.sampled_probabilities``) to rounding (5e-15 relative for SFT at W = K = 15,
    L = 5, where E[T] = 4.3e14), and with it on the policy's own float table to the alias
    rounding (1.3e-8 there; 3e-9 for the pretrained and RLVR policies)."""
    if isinstance(law, LeapTables):
        return law.exact_mean
    lumped = law
    if not isinstance(lumped, LumpedChain):
        raise InputError(f"law must be a LumpedChain or LeapTables, got {type(law).__name__}")
    if lumped.start == lumped.target_block:
        return 0.0
    n = lumped.n_transient
    memory.require(n * n * 8, f"the dense chain of {n} lumped blocks")
    order = np.concatenate([np.delete(np.arange(lumped.n_transient), lumped.start), [lumped.start]])
    return float(_gth_mean(lumped.dense_q(), lumped.absorb.copy(), order))


@numba.njit(cache=True)
def _gth_mean(p, absorb, order):
    """Eliminate the blocks in ``order`` (the start last) from the chain p (modified), carrying
    each block's expected time to leave: c_i += p_ik c_k / s_k, where s_k, the probability of
    leaving k for another block or the target, is a sum of non-negative terms."""
    n = p.shape[0]
    c = np.ones(n)
    alive = np.ones(n, np.bool_)
    for k in order:
        s = absorb[k]
        for j in range(n):
            if alive[j] and j != k:
                s += p[k, j]
        alive[k] = False
        if s == 0.0:  # k is closed: it never reaches the target
            return np.inf
        for i in range(n):
            if alive[i] and p[i, k] > 0.0:
                f = p[i, k] / s
                c[i] += f * c[k]
                absorb[i] += f * absorb[k]
                for j in range(n):
                    if alive[j]:
                        p[i, j] += f * p[k, j]
                p[i, k] = 0.0
    return c[order[-1]] / s


def suggest_edges(law: Law, max_steps: int, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Histogram bin edges decided by the law: if its 1e-4 and 1 - 1e-4 quantiles are more than
    LOG_BINS_SPAN apart, about ``bins`` log-spaced integer edges from 1 to max_steps + 1 (after
    0; the narrow ones at small t merged into unit bins), else ``bins`` equal integer bins over
    [0, max_steps] as the step method makes them."""
    max_steps = checks.whole("max_steps", max_steps, 1, MAX_STEPS)
    bins = checks.whole("bins", bins, 1)
    low, high = quantile(law, np.array([1e-4, 1 - 1e-4]))
    if low > 0 and high > 0 and high > LOG_BINS_SPAN * low:
        inner = np.unique(np.round(np.geomspace(1, max_steps + 1, bins)[:-1]).astype(np.int64))
        return np.concatenate(([0], inner[inner <= max_steps], [max_steps + 1]))
    bins = min(bins, max_steps + 1)
    width = -(-(max_steps + 1) // bins)
    return regular_edges(-(-(max_steps + 1) // width), width)


def check_edges(edges, max_steps: int) -> np.ndarray:
    """Bin edges as the leap kernels need them: whole numbers, strictly increasing, from 0, the
    last beyond max_steps."""
    array = np.asarray(edges)
    if (array.ndim != 1 or len(array) < 2 or array.dtype.kind not in "iu" or array[0] != 0
            or np.any(np.diff(array) <= 0) or array[-1] <= max_steps):
        raise InputError(f"edges must be strictly increasing whole numbers from 0 with the last "
                         f"> max_steps = {max_steps}")
    return array.astype(np.int64)


def run(tables: LeapTables, *, rollouts: int, seed: int = 0, first_rollout: int = 0,
        edges=None, backend: str = "numba", threads: int | None = None,
        progress: Progress | None = None) -> HittingTimes:
    """Rollouts ``first_rollout .. first_rollout + rollouts - 1`` of the seed's sequence, each a
    hitting time drawn from the tables' law (censored at max_steps), histogrammed over
    ``edges`` (default :func:`suggest_edges`). The result is the same bit for bit on either
    backend and any thread count, results of disjoint rollout ranges add up, and memory does
    not grow with the number of rollouts. ``progress(done, steps)`` is called after each chunk."""
    if not isinstance(tables, LeapTables):
        raise InputError(f"tables must be LeapTables (leap.build_tables), got {type(tables).__name__}")
    rollouts = checks.whole("rollouts", rollouts, 1)
    seed = checks.seed("seed", seed)
    first_rollout = checks.whole("first_rollout", first_rollout, 0, MAX_STEPS)
    backend = checks.choice("backend", backend, kernels.BACKENDS)
    threads = kernels.check_threads(threads)
    edges = suggest_edges(tables, tables.max_steps) if edges is None else check_edges(edges, tables.max_steps)
    n_bins = len(edges) - 1
    hist = np.zeros((threads, n_bins), np.int64)
    stats = np.zeros((threads, _numba_leap.NSTATS), np.uint64)
    call = kernels.parallel_call(backend, threads, "leap", (
        tables.row_start, tables.columns, np.int32(tables.start_row), np.uint64(kernels.seed_key(seed)),
        edges, hist, stats))
    on_chunk = None if progress is None else \
        (lambda done: progress(done, _words(stats, _numba_leap.STEPS, 2)))
    seconds, compile_seconds = kernels.run_in_chunks(
        call, threads, first_rollout, rollouts,
        max(tables.expected_draws, 1.0) / PLANNING_DRAWS_PER_SECOND, on_chunk)
    total = _words(stats, _numba_leap.SUM, 2)
    squares = _words(stats, _numba_leap.SUMSQ, 3)
    lumped = tables.lumped
    graph = lumped.policy.graph
    return HittingTimes(
        counts=hist.sum(axis=0), edges=edges.copy(),
        hits=int(stats[:, _numba_leap.HITS].sum()),
        censored=int(stats[:, _numba_leap.CENSORED_COUNT].sum()),
        total=total, total_of_squares=squares, steps=_words(stats, _numba_leap.STEPS, 2),
        draws_total=total, draws_total_of_squares=squares,  # one policy draw per step, as in step runs
        seconds=seconds, compile_seconds=compile_seconds,
        parameters={
            "graph": graph.describe(), "policy": lumped.policy.describe(),
            "target": graph.node_names[lumped.target], "rollouts": rollouts,
            "first_rollout": first_rollout, "seed": seed, "max_steps": tables.max_steps,
            "bins": n_bins, "backend": backend, "threads": threads, "search": "none",
            "exact_mean": tables.exact_mean, "method": "leap", "lumped_blocks": lumped.n_blocks,
        })


def _words(stats: np.ndarray, at: int, count: int) -> int:
    """A multi-word counter (low word first) summed over the threads' rows, exactly."""
    return sum(int(stats[:, at + i].sum(dtype=object)) << (64 * i) for i in range(count))
