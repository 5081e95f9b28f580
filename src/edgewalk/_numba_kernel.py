"""Numba backend: the kernel of native/edgewalk_kernel.h, line for line (same random streams,
same integer arithmetic), parallel over blocks of rollouts with prange."""

from __future__ import annotations

import numba
import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_ONE = np.uint64(1)
HITS, SUM, SUMSQ_LO, SUMSQ_HI, CENSORED, STEPS, DRAWS_SUM, DRAWS_SUMSQ_LO, DRAWS_SUMSQ_HI, NSTATS = range(10)
SEARCH_MASK, SEARCH_REJECT = 1, 2
# The kernel interface this mirror assumes; edgewalk.kernels checks it against the C header's.
ABI = {
    "HITS": HITS, "SUM": SUM, "SUMSQ_LO": SUMSQ_LO, "SUMSQ_HI": SUMSQ_HI, "CENSORED": CENSORED,
    "STEPS": STEPS, "DRAWS_SUM": DRAWS_SUM, "DRAWS_SUMSQ_LO": DRAWS_SUMSQ_LO,
    "DRAWS_SUMSQ_HI": DRAWS_SUMSQ_HI, "NSTATS": NSTATS, "SEARCH_MASK": SEARCH_MASK,
    "SEARCH_REJECT": SEARCH_REJECT, "GAMMA": int(GAMMA),
}

# error_model="numpy" drops the zero-division checks; array indices are cast to unsigned below
# because Numba adds a negative-index wraparound check to every signed index.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_jit
def mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@_jit
def rollout_key(seed_key, r):
    return mix64(seed_key + np.uint64(r + 1) * GAMMA)


@_jit
def _column(row_start, row, z):
    """ew_column: the alias column drawn from state ``row`` (unsigned) with draw z."""
    base = np.uint64(row_start[row])
    degree = np.uint64(row_start[row + _ONE]) - base
    return base + (((z >> np.uint64(32)) * degree) >> np.uint64(32))


@_jit
def _add_moments(v, stats, total):
    v = np.uint64(v)
    square = v * v
    stats[total] += v
    stats[total + 1] += square
    if stats[total + 1] < square:
        stats[total + 2] += _ONE


@_jit
def _record_hit(t, bin_width, hist, stats):
    hist[t // bin_width] += 1
    stats[HITS] += _ONE
    _add_moments(t, stats, SUM)
    stats[STEPS] += np.uint64(t)


@_jit
def _lane_step(s, t, x, next_rollout, live, last, row_start, threshold, primary, alias,
               is_target, seed_key, max_steps, bin_width, hist, stats):
    """EW_LANE_STEP: one step of one interleaved rollout; returns the lane's new (s, t, x) and the
    block's new (next_rollout, live)."""
    if s < 0:
        return s, t, x, next_rollout, live
    x += GAMMA
    z = mix64(x)
    k = _column(row_start, np.uint64(s), z)
    s = primary[k] if np.uint32(z & _LOW32) <= threshold[k] else alias[k]
    t += 1
    entered_target = is_target[np.uint64(s)]
    if entered_target or t == max_steps:
        if entered_target:
            _record_hit(t, bin_width, hist, stats)
        else:
            stats[CENSORED] += _ONE
            stats[STEPS] += np.uint64(t)
        if next_rollout < last:
            s, t, x = 0, 0, rollout_key(seed_key, next_rollout)
            next_rollout += 1
        else:
            s = -1
            live -= 1
    return s, t, x, next_rollout, live


@_jit
def _lane_start(next_rollout, last, live, seed_key):
    if next_rollout < last:
        return np.int32(0), rollout_key(seed_key, next_rollout), next_rollout + 1, live + 1
    return np.int32(-1), np.uint64(0), next_rollout, live


@_jit
def run_block(row_start, threshold, primary, alias, is_target, seed_key, first, last,
              max_steps, bin_width, hist, stats):
    """ew_run_block: four rollouts interleaved, each lane's (state, steps, counter) in locals."""
    if is_target[0] or max_steps == 0:
        for _ in range(first, last):
            if is_target[0]:
                _record_hit(0, bin_width, hist, stats)
            else:
                stats[CENSORED] += _ONE
        return
    live = 0
    t0 = t1 = t2 = t3 = 0
    s0, x0, next_rollout, live = _lane_start(first, last, live, seed_key)
    s1, x1, next_rollout, live = _lane_start(next_rollout, last, live, seed_key)
    s2, x2, next_rollout, live = _lane_start(next_rollout, last, live, seed_key)
    s3, x3, next_rollout, live = _lane_start(next_rollout, last, live, seed_key)
    while live > 0:
        s0, t0, x0, next_rollout, live = _lane_step(
            s0, t0, x0, next_rollout, live, last, row_start, threshold, primary, alias, is_target,
            seed_key, max_steps, bin_width, hist, stats)
        s1, t1, x1, next_rollout, live = _lane_step(
            s1, t1, x1, next_rollout, live, last, row_start, threshold, primary, alias, is_target,
            seed_key, max_steps, bin_width, hist, stats)
        s2, t2, x2, next_rollout, live = _lane_step(
            s2, t2, x2, next_rollout, live, last, row_start, threshold, primary, alias, is_target,
            seed_key, max_steps, bin_width, hist, stats)
        s3, t3, x3, next_rollout, live = _lane_step(
            s3, t3, x3, next_rollout, live, last, row_start, threshold, primary, alias, is_target,
            seed_key, max_steps, bin_width, hist, stats)


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def run_blocks(row_start, threshold, primary, alias, is_target, seed_key, first_rollout,
               last_rollout, block_size, max_steps, bin_width, hist, stats):
    """Run rollouts first_rollout..last_rollout-1 in blocks of block_size; the calling thread
    count is numba.get_num_threads() and thread i accumulates into row i of hist and stats."""
    n_blocks = (last_rollout - first_rollout + block_size - 1) // block_size
    for b in numba.prange(n_blocks):
        thread = numba.get_thread_id()
        first = first_rollout + b * block_size
        last = min(first + block_size, last_rollout)
        run_block(row_start, threshold, primary, alias, is_target, seed_key, first, last,
                  max_steps, bin_width, hist[thread], stats[thread])


@_jit
def _is_visited(visited, s):
    return (visited[np.uint64(s) >> np.uint64(6)] >> (np.uint64(s) & np.uint64(63))) & _ONE


@_jit
def search_block(row_start, next_state, weight, threshold, primary, alias, is_target, mode,
                 seed_key, first, last, max_steps, bin_width, hist, stats, visited, stack):
    for r in range(first, last):
        if is_target[0]:
            _record_hit(0, bin_width, hist, stats)
            continue
        visited[:] = 0
        x = rollout_key(seed_key, r)
        depth, t, draws, hit = 1, 0, 0, False
        stack[0] = 0
        visited[0] = _ONE
        while t < max_steps:
            s = np.uint64(stack[depth - 1])
            lo, hi = np.uint64(row_start[s]), np.uint64(row_start[s + _ONE])
            open_weight = np.uint64(0)
            for k in range(lo, hi):
                if not _is_visited(visited, next_state[k]):
                    open_weight += np.uint64(weight[k])
            t += 1
            if open_weight == 0:
                depth -= 1
                if depth == 0:
                    break
                continue
            chosen = np.int32(-1)
            if mode == SEARCH_MASK:
                x += GAMMA
                pick = ((mix64(x) >> np.uint64(32)) * open_weight) >> np.uint64(32)
                draws += 1
                for k in range(lo, hi):
                    if _is_visited(visited, next_state[k]):
                        continue
                    if pick < weight[k]:
                        chosen = next_state[k]
                        break
                    pick -= np.uint64(weight[k])
            else:
                while True:
                    x += GAMMA
                    z = mix64(x)
                    k = _column(row_start, s, z)
                    chosen = primary[k] if np.uint32(z & _LOW32) <= threshold[k] else alias[k]
                    draws += 1
                    if not _is_visited(visited, chosen):
                        break
            c = np.uint64(chosen)
            visited[c >> np.uint64(6)] |= _ONE << (c & np.uint64(63))
            stack[depth] = chosen
            depth += 1
            if is_target[c]:
                hit = True
                break
        if hit:
            _record_hit(t, bin_width, hist, stats)
            _add_moments(draws, stats, DRAWS_SUM)
        else:
            stats[CENSORED] += _ONE
            stats[STEPS] += np.uint64(t)


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def run_search_blocks(row_start, next_state, weight, threshold, primary, alias, is_target, mode,
                      seed_key, first_rollout, last_rollout, block_size, max_steps, bin_width,
                      hist, stats, visited, stack):
    """Like run_blocks, under the no-revisit search wrapper (mode 1 = mask, 2 = reject); visited
    and stack are per-thread scratch rows."""
    n_blocks = (last_rollout - first_rollout + block_size - 1) // block_size
    for b in numba.prange(n_blocks):
        thread = numba.get_thread_id()
        first = first_rollout + b * block_size
        last = min(first + block_size, last_rollout)
        search_block(row_start, next_state, weight, threshold, primary, alias, is_target, mode,
                     seed_key, first, last, max_steps, bin_width, hist[thread], stats[thread],
                     visited[thread], stack[thread])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _gradient_finish(row_start, threshold, primary, alias, max_steps, buffer_steps, stats,
                     slot_sums, censored_visits, rollout_count, touched, buf, target, s, t, x):
    """ew_gradient_finish: finishes a rollout at state s after t steps whose slots are
    buf[:t] and records it."""
    hit = target[np.uint64(s)] != 0
    if hit or t == max_steps:
        for i in range(t):
            slot = np.uint64(buf[i])
            slot_sums[slot, 0] += _ONE
            slot_sums[slot, 1] += np.uint64(t - i)
        if not hit:
            for i in range(t):
                censored_visits[np.uint64(buf[i])] += _ONE
    else:
        n_touched, buffer_start, row = 0, 0, np.uint64(s)
        while True:
            for i in range(t - buffer_start):
                slot = np.uint64(buf[i])
                slot_sums[slot, 0] += _ONE
                slot_sums[slot, 1] -= np.uint64(buffer_start + i)
                n = rollout_count[slot]
                rollout_count[slot] = n + _ONE
                touched[n_touched] = slot
                n_touched += n == 0
            if hit or t == max_steps:
                break
            buffer_start = t
            limit = max_steps if max_steps - t < buffer_steps else t + buffer_steps
            while True:
                x += GAMMA
                z = mix64(x)
                k = _column(row_start, row, z)
                took_alias = np.uint32(z & _LOW32) > threshold[k]
                row = np.uint64(alias[k] if took_alias else primary[k])
                buf[t - buffer_start] = np.uint32(k + k + took_alias)
                t += 1
                hit = target[row] != 0
                if hit or t >= limit:
                    break
        for i in range(n_touched):
            slot = np.uint64(touched[i])
            slot_sums[slot, 1] += rollout_count[slot] * np.uint64(t)
            if not hit:
                censored_visits[slot] += rollout_count[slot]
            rollout_count[slot] = 0
    if hit:
        stats[HITS] += _ONE
        _add_moments(t, stats, SUM)
    else:
        stats[CENSORED] += _ONE
    stats[STEPS] += np.uint64(t)


@_jit
def _gradient_lane_start(t, x, g, lane, next_rollout, last, is_target, seed_key, max_steps,
                         buffer_steps, row_start, threshold, primary, alias, stats, slot_sums,
                         censored_visits, rollout_count, touched, buffers):
    """EW_GRADIENT_LANE_START: the lane's (s, t, x, g) for the next rollout of the block that
    takes a step (g: its target row), s = -1 if none is left; returns them and next_rollout."""
    n_targets = is_target.shape[0]
    while next_rollout < last:
        g = np.uint64(next_rollout % n_targets)
        x = rollout_key(seed_key, next_rollout)
        next_rollout += 1
        t = 0
        if is_target[g, 0] == 0 and max_steps > 0:
            return np.int32(0), t, x, g, next_rollout
        _gradient_finish(row_start, threshold, primary, alias, max_steps, buffer_steps, stats,
                         slot_sums, censored_visits, rollout_count, touched, buffers[lane],
                         is_target[g], 0, 0, x)
    return np.int32(-1), t, x, g, next_rollout


@_jit
def _gradient_lane_step(s, t, x, g, lane, next_rollout, live, last, lane_steps, is_target,
                        seed_key, max_steps, buffer_steps, row_start, threshold, primary, alias,
                        stats, slot_sums, censored_visits, rollout_count, touched, buffers):
    """EW_GRADIENT_LANE_STEP: one step of one interleaved gradient rollout."""
    if s < 0:
        return s, t, x, g, next_rollout, live
    x += GAMMA
    z = mix64(x)
    k = _column(row_start, np.uint64(s), z)
    took_alias = np.uint32(z & _LOW32) > threshold[k]
    s = alias[k] if took_alias else primary[k]
    buffers[lane, np.uint64(t)] = np.uint32(k + k + took_alias)
    t += 1
    if is_target[g, np.uint64(s)] or t == lane_steps:
        _gradient_finish(row_start, threshold, primary, alias, max_steps, buffer_steps, stats,
                         slot_sums, censored_visits, rollout_count, touched, buffers[lane],
                         is_target[g], s, t, x)
        s, t, x, g, next_rollout = _gradient_lane_start(
            t, x, g, lane, next_rollout, last, is_target, seed_key, max_steps, buffer_steps,
            row_start, threshold, primary, alias, stats, slot_sums, censored_visits,
            rollout_count, touched, buffers)
        if s < 0:
            live -= 1
    return s, t, x, g, next_rollout, live


@_jit
def gradient_block(row_start, threshold, primary, alias, is_target, seed_key, first, last,
                   max_steps, stats, slot_sums, censored_visits, rollout_count, touched, buffers):
    """ew_gradient_block: four gradient rollouts interleaved, each lane's state in locals."""
    buffer_steps = buffers.shape[1]
    lane_steps = min(buffer_steps, max_steps)
    live, next_rollout = 0, first
    t0 = t1 = t2 = t3 = 0
    x0 = x1 = x2 = x3 = np.uint64(0)
    g0 = g1 = g2 = g3 = np.uint64(0)
    s0 = s1 = s2 = s3 = np.int32(-1)  # overwritten below, yet dropping it costs 6% (measured)
    s0, t0, x0, g0, next_rollout = _gradient_lane_start(
        t0, x0, g0, 0, next_rollout, last, is_target, seed_key, max_steps, buffer_steps,
        row_start, threshold, primary, alias, stats, slot_sums, censored_visits, rollout_count,
        touched, buffers)
    live += s0 >= 0
    s1, t1, x1, g1, next_rollout = _gradient_lane_start(
        t1, x1, g1, 1, next_rollout, last, is_target, seed_key, max_steps, buffer_steps,
        row_start, threshold, primary, alias, stats, slot_sums, censored_visits, rollout_count,
        touched, buffers)
    live += s1 >= 0
    s2, t2, x2, g2, next_rollout = _gradient_lane_start(
        t2, x2, g2, 2, next_rollout, last, is_target, seed_key, max_steps, buffer_steps,
        row_start, threshold, primary, alias, stats, slot_sums, censored_visits, rollout_count,
        touched, buffers)
    live += s2 >= 0
    s3, t3, x3, g3, next_rollout = _gradient_lane_start(
        t3, x3, g3, 3, next_rollout, last, is_target, seed_key, max_steps, buffer_steps,
        row_start, threshold, primary, alias, stats, slot_sums, censored_visits, rollout_count,
        touched, buffers)
    live += s3 >= 0
    while live > 0:
        s0, t0, x0, g0, next_rollout, live = _gradient_lane_step(
            s0, t0, x0, g0, 0, next_rollout, live, last, lane_steps, is_target, seed_key,
            max_steps, buffer_steps, row_start, threshold, primary, alias, stats, slot_sums,
            censored_visits, rollout_count, touched, buffers)
        s1, t1, x1, g1, next_rollout, live = _gradient_lane_step(
            s1, t1, x1, g1, 1, next_rollout, live, last, lane_steps, is_target, seed_key,
            max_steps, buffer_steps, row_start, threshold, primary, alias, stats, slot_sums,
            censored_visits, rollout_count, touched, buffers)
        s2, t2, x2, g2, next_rollout, live = _gradient_lane_step(
            s2, t2, x2, g2, 2, next_rollout, live, last, lane_steps, is_target, seed_key,
            max_steps, buffer_steps, row_start, threshold, primary, alias, stats, slot_sums,
            censored_visits, rollout_count, touched, buffers)
        s3, t3, x3, g3, next_rollout, live = _gradient_lane_step(
            s3, t3, x3, g3, 3, next_rollout, live, last, lane_steps, is_target, seed_key,
            max_steps, buffer_steps, row_start, threshold, primary, alias, stats, slot_sums,
            censored_visits, rollout_count, touched, buffers)


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def run_gradient_blocks(row_start, threshold, primary, alias, is_target, seed_key, first_rollout,
                        last_rollout, block_size, max_steps, stats, slot_sums, censored_visits,
                        rollout_count, touched, buffers):
    """Policy-gradient statistics (see ew_gradient_block); per thread: stats, slot_sums (visits
    and steps remaining per alias slot), censored_visits, and scratch rollout_count, touched and
    buffers (four lanes of buffer_steps)."""
    n_blocks = (last_rollout - first_rollout + block_size - 1) // block_size
    for b in numba.prange(n_blocks):
        thread = numba.get_thread_id()
        first = first_rollout + b * block_size
        last = min(first + block_size, last_rollout)
        gradient_block(row_start, threshold, primary, alias, is_target, seed_key, first, last,
                       max_steps, stats[thread], slot_sums[thread], censored_visits[thread],
                       rollout_count[thread], touched[thread], buffers[thread])
