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
    row = np.uint64(s)
    base = np.uint64(row_start[row])
    degree = np.uint64(row_start[row + _ONE]) - base
    k = base + (((z >> np.uint64(32)) * degree) >> np.uint64(32))
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
                degree = hi - lo
                while True:
                    x += GAMMA
                    z = mix64(x)
                    k = lo + (((z >> np.uint64(32)) * degree) >> np.uint64(32))
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


@_jit
def gradient_block(row_start, threshold, primary, alias, primary_entry, alias_entry, is_target,
                   seed_key, first, last, max_steps, stats, visits, hit_visits, step_sum,
                   length_sum, rollout_count, touched):
    n_targets = is_target.shape[0]
    for r in range(first, last):
        target = is_target[np.uint64(r % n_targets)]
        x = rollout_key(seed_key, r)
        t, n_touched, s = 0, 0, np.uint64(0)
        hit = target[0] != 0
        while not hit and t < max_steps:
            x += GAMMA
            z = mix64(x)
            base = np.uint64(row_start[s])
            degree = np.uint64(row_start[s + _ONE]) - base
            k = base + (((z >> np.uint64(32)) * degree) >> np.uint64(32))
            if np.uint32(z & _LOW32) <= threshold[k]:
                move, s = np.uint64(primary_entry[k]), np.uint64(primary[k])
            else:
                move, s = np.uint64(alias_entry[k]), np.uint64(alias[k])
            t += 1
            if rollout_count[move] == 0:
                touched[np.uint64(n_touched)] = move
                n_touched += 1
            rollout_count[move] += _ONE
            step_sum[move] += np.uint64(t)
            hit = target[s] != 0
        for i in range(n_touched):
            move = np.uint64(touched[i])
            count = rollout_count[move]
            visits[move] += count
            length_sum[move] += count * np.uint64(t)
            if hit:
                hit_visits[move] += count
            rollout_count[move] = 0
        if hit:
            stats[HITS] += _ONE
            _add_moments(t, stats, SUM)
        else:
            stats[CENSORED] += _ONE
        stats[STEPS] += np.uint64(t)


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def run_gradient_blocks(row_start, threshold, primary, alias, primary_entry, alias_entry, is_target,
                        seed_key, first_rollout, last_rollout, block_size, max_steps, stats, sums,
                        rollout_count, touched):
    """Policy-gradient statistics (see ew_gradient_block); sums[thread] holds visits,
    hit_visits, step_sum and length_sum per transition."""
    n_blocks = (last_rollout - first_rollout + block_size - 1) // block_size
    for b in numba.prange(n_blocks):
        thread = numba.get_thread_id()
        first = first_rollout + b * block_size
        last = min(first + block_size, last_rollout)
        gradient_block(row_start, threshold, primary, alias, primary_entry, alias_entry, is_target,
                       seed_key, first, last, max_steps, stats[thread], sums[thread, 0],
                       sums[thread, 1], sums[thread, 2], sums[thread, 3], rollout_count[thread],
                       touched[thread])
