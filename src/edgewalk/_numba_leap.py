"""Numba backend of the leap kernel: native/edgewalk_leap.h, line for line (same random streams,
same integer arithmetic); its block function ``leap_block`` runs on the Numba driver of
``_numba_kernel`` (``kernels.parallel_call(backend, threads, "leap", args)``)."""

from __future__ import annotations

import numpy as np

from ._numba_kernel import GAMMA, _block, _column, _jit, mix64, rollout_key, take_rollout

HIT, CENSORED, IDLE = -1, -2, -3
HITS, SUM, SUMSQ, CENSORED_COUNT, STEPS, NSTATS = 0, 1, 3, 6, 7, 9
# The interface this mirror assumes; edgewalk.leap checks it against the C header's.
ABI = {"HIT": HIT, "CENSORED": CENSORED, "IDLE": IDLE, "HITS": HITS, "SUM": SUM, "SUMSQ": SUMSQ,
       "CENSORED_COUNT": CENSORED_COUNT, "STEPS": STEPS, "NSTATS": NSTATS}

_LOW32 = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
_32 = np.uint64(32)


@_jit
def _add128(stats, at, v):
    v = np.uint64(v)
    stats[at] += v
    if stats[at] < v:
        stats[at + 1] += _ONE


@_jit
def _add_square(stats, at, t):
    t = np.uint64(t)
    a, b = t >> _32, t & _LOW32
    low, middle, high = b * b, (a * b) << _ONE, a * a
    lo = low + (middle << _32)
    hi = high + (middle >> _32) + np.uint64(lo < low)
    stats[at] += lo
    carry = np.uint64(stats[at] < lo)
    stats[at + 1] += hi
    carry2 = np.uint64(stats[at + 1] < hi)
    stats[at + 1] += carry
    carry2 += np.uint64(stats[at + 1] < carry)
    stats[at + 2] += carry2


@_jit
def _bin(edges, n_bins, t):
    lo, n = 0, n_bins
    while n > 1:
        half = n >> 1
        lo += half if edges[lo + half] <= t else 0
        n -= half
    return lo


@_jit
def _record(end, t, edges, n_bins, hist, stats):
    if end == HIT:
        hist[_bin(edges, n_bins, t)] += 1
        stats[HITS] += _ONE
        _add128(stats, SUM, t)
        _add_square(stats, SUMSQ, t)
    else:
        stats[CENSORED_COUNT] += _ONE
    _add128(stats, STEPS, t)


@_jit
def _lane_step(row, t, x, shared, mine, live, row_start, columns, start_row, seed_key,
               edges, n_bins, hist, stats):
    """EW_LEAP_LANE_STEP: returns the lane's new (row, t, x) and the thread's live lanes."""
    if row < 0:
        return row, t, x, live
    x += GAMMA
    z = mix64(x)
    k = _column(row_start, np.uint64(row), z)
    took_alias = np.uint64(np.uint32(z & _LOW32) > columns[k, 0])
    row = np.int32(columns[k, _ONE + took_alias])
    advance = (np.uint64(columns[k, 3]) >> (np.uint64(8) * took_alias)) & np.uint64(0xFF)
    t += np.int64((_ONE << advance) >> _ONE)
    if row < 0:
        _record(row, t, edges, n_bins, hist, stats)
        r = take_rollout(shared, mine)
        if r >= 0:
            row, t, x = start_row, np.int64(0), rollout_key(seed_key, r)
        else:
            row = np.int32(IDLE)
            live -= 1
    return row, t, x, live


@_jit
def _lane_start(shared, mine, live, start_row, seed_key):
    r = take_rollout(shared, mine)
    if r >= 0:
        return start_row, rollout_key(seed_key, r), live + 1
    return np.int32(IDLE), np.uint64(0), live


@_jit
def _leap_rollouts(row_start, columns, start_row, seed_key, shared, mine, edges, n_bins, hist,
                   stats):
    """ew_leap_rollouts: four rollouts interleaved, each lane's (row, time, counter) in locals."""
    if start_row < 0:
        while take_rollout(shared, mine) >= 0:
            _record(HIT, 0, edges, n_bins, hist, stats)
        return
    live = 0
    t0 = t1 = t2 = t3 = np.int64(0)
    row0, x0, live = _lane_start(shared, mine, live, start_row, seed_key)
    row1, x1, live = _lane_start(shared, mine, live, start_row, seed_key)
    row2, x2, live = _lane_start(shared, mine, live, start_row, seed_key)
    row3, x3, live = _lane_start(shared, mine, live, start_row, seed_key)
    while live > 0:
        row0, t0, x0, live = _lane_step(
            row0, t0, x0, shared, mine, live, row_start, columns, start_row, seed_key,
            edges, n_bins, hist, stats)
        row1, t1, x1, live = _lane_step(
            row1, t1, x1, shared, mine, live, row_start, columns, start_row, seed_key,
            edges, n_bins, hist, stats)
        row2, t2, x2, live = _lane_step(
            row2, t2, x2, shared, mine, live, row_start, columns, start_row, seed_key,
            edges, n_bins, hist, stats)
        row3, t3, x3, live = _lane_step(
            row3, t3, x3, shared, mine, live, row_start, columns, start_row, seed_key,
            edges, n_bins, hist, stats)


@_block
def leap_block(args, thread, queue):
    """ew_leap_block; args = (row_start, columns, start_row, seed_key, edges, hist, stats)."""
    row_start, columns, start_row, seed_key, edges, hist, stats = args
    _leap_rollouts(row_start, columns, start_row, seed_key, queue[0], queue[thread + 1], edges,
                   len(edges) - 1, hist[thread], stats[thread])
