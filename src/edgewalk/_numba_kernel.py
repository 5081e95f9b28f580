"""Numba backend: the kernels of native/edgewalk_kernel.h, edgewalk_search.h and
edgewalk_gradient.h, statement for statement (same random streams, same integer arithmetic), and
one parallel driver that runs any kernel's block function on every thread.

A kernel is a block function ``block(args, thread, queue)``: it runs the rollouts it takes with
:func:`take_rollout` from ``queue[0]`` (shared by the threads) and ``queue[thread + 1]`` (its
own run) with the arrays of the tuple ``args``, and accumulates into row ``thread`` of the
per-thread arrays. :func:`driver` compiles it for the types of ``args`` and hands it to
:func:`drive` as a first-class function, so that one compiled driver (cached on disk, like the
block functions) serves every kernel whose arguments have the same types.
"""

from __future__ import annotations

from typing import Callable

import numba
import numpy as np
from numba import types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
HITS, SUM, SUMSQ_LO, SUMSQ_HI, CENSORED, STEPS, DRAWS_SUM, DRAWS_SUMSQ_LO, DRAWS_SUMSQ_HI, NSTATS = range(10)
SEARCH_MASK, SEARCH_REJECT = 1, 2
LANES, SEARCH_LANE_WORDS, SEARCH_NARROW, GRADIENT_LANES = 8, 5, 8, 6
GRADIENT_PACKED_STEPS, GRADIENT_PACKED_REMAINING, GRADIENT_STATS = NSTATS, NSTATS + 1, NSTATS + 2
GRADIENT_PACKED_SHIFT, GRADIENT_PACK_SLOTS, GRADIENT_MAX_BUFFER = 40, 1 << 20, 1 << 20
# The kernel interface this mirror assumes; edgewalk.kernels checks it against the C header's.
ABI = {
    "HITS": HITS, "SUM": SUM, "SUMSQ_LO": SUMSQ_LO, "SUMSQ_HI": SUMSQ_HI, "CENSORED": CENSORED,
    "STEPS": STEPS, "DRAWS_SUM": DRAWS_SUM, "DRAWS_SUMSQ_LO": DRAWS_SUMSQ_LO,
    "DRAWS_SUMSQ_HI": DRAWS_SUMSQ_HI, "NSTATS": NSTATS, "SEARCH_MASK": SEARCH_MASK,
    "SEARCH_REJECT": SEARCH_REJECT, "GAMMA": int(GAMMA), "LANES": LANES,
    "SEARCH_LANE_WORDS": SEARCH_LANE_WORDS, "SEARCH_NARROW": SEARCH_NARROW,
    "GRADIENT_LANES": GRADIENT_LANES, "GRADIENT_STATS": GRADIENT_STATS,
    "GRADIENT_PACKED_SHIFT": GRADIENT_PACKED_SHIFT, "GRADIENT_PACK_SLOTS": GRADIENT_PACK_SLOTS,
    "GRADIENT_MAX_BUFFER": GRADIENT_MAX_BUFFER,
}

# error_model="numpy" drops the zero-division checks; array indices are cast to unsigned below
# because Numba adds a negative-index wraparound check to every signed index.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
# Block functions are compiled on their own (the driver calls them through a pointer) and without
# reference counting: they allocate nothing, and counting the arrays they hand to the helpers
# below costs an atomic operation per call (tens of nanoseconds a step).
_block = numba.njit(cache=True, nogil=True, error_model="numpy", _nrt=False)


# ------------------------------------------------------------------------------ the driver


@intrinsic
def _atomic_load(typingctx, array):
    """array[0], read atomically (relaxed order)."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.load_atomic(data, "monotonic", 8)
    return types.int64(array), codegen


@intrinsic
def _fetch_add(typingctx, array, value):
    """Adds value to array[0] atomically (relaxed order) and returns what it held before."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("add", data, args[1], "monotonic")
    return types.int64(array, types.int64), codegen


@numba.njit(cache=True, nogil=True, error_model="numpy")  # not inlined: called once a rollout
def take_rollout(shared, mine):
    """ew_take_rollout: the number of the next rollout for one of this thread's lanes, or -1 when
    every rollout is taken. shared = (the first rollout no thread has taken, the end of the
    range (exclusive), threads); mine = this thread's run (next, stop), which it takes a quarter
    of the rollouts left per thread at a time."""
    if mine[0] == mine[1]:
        left = shared[1] - _atomic_load(shared)
        if left <= 0:
            return np.int64(-1)
        run = max(np.int64(1), left // (4 * shared[2]))
        first = _fetch_add(shared, run)
        if first >= shared[1]:
            return np.int64(-1)
        mine[0], mine[1] = first, min(first + run, shared[1])
    r = mine[0]
    mine[0] = r + 1
    return r


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def drive(block, args, first_rollout, last_rollout, threads):
    """ew_drive: block(args, thread, queue) once on each of `threads` threads (numba's thread
    count, set by the caller), all taking rollouts first_rollout..last_rollout-1 from one
    counter."""
    queue = np.zeros((threads + 1, 8), np.int64)  # rows 64 bytes apart: no false sharing
    queue[0, 0], queue[0, 1], queue[0, 2] = first_rollout, last_rollout, threads
    for _ in numba.prange(threads):
        block(args, numba.get_thread_id(), queue)


def driver(block, args: tuple) -> Callable[[int, int, int], None]:
    """``run(first, last, threads)``: the driver running ``block`` with ``args`` on ``threads``
    threads (numba.set_num_threads(threads) first). Compiles (or loads from the cache) on the
    first call."""
    compiled = []

    def run(first: int, last: int, threads: int) -> None:
        if not compiled:
            args_type = numba.typeof(args)
            signature = types.void(args_type, types.intp, types.int64[:, ::1])
            block.compile(signature.args)
            drive_args = (types.FunctionType(signature), args_type, types.int64, types.int64,
                          types.int64)
            drive.compile(drive_args)
            compiled.append(drive.overloads[drive_args].entry_point)
        compiled[0](block, args, first, last, threads)

    return run


# ------------------------------------------------------------------------------ shared steps


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
def _record_censored(t, stats):
    stats[CENSORED] += _ONE
    stats[STEPS] += np.uint64(t)


@_jit
def _column_index(row, z):
    """ew_column_index: the index of the alias column drawn with z from row word ``row``."""
    return (row & _LOW32) + (((z >> _32) * (row >> _32)) >> _32)


@_jit
def _next_row(columns, row, z):
    """ew_draw and ew_takes_primary: the row word a step from row word ``row`` with draw z
    enters (columns: four words per alias column, see edgewalk_kernel.h)."""
    at = _column_index(row, z) << _TWO
    return columns[at] if (z & _LOW32) <= columns[at + _TWO] else columns[at + _ONE]


# ------------------------------------------------------------------------------ plain kernel


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _plain_end(lane, row, x, start, ended, n, shared, mine, idle, live, start_row,
               seed_key, max_steps, bin_width, hist, stats):
    """The end-of-rollout part of a round of ew_plain_block for one lane: if its rollout ended
    (hit, or max_steps reached) records it and starts the next. Returns the lane's (row, x,
    start) and the thread's (idle, live)."""
    hit = (ended >> lane) & 1
    if hit == 0 and n - start != max_steps:
        return row, x, start, idle, live
    if (idle >> lane) & 1 == 0:
        if hit:
            _record_hit(n - start, bin_width, hist, stats)
        else:
            _record_censored(max_steps, stats)
        r = take_rollout(shared, mine)
        if r >= 0:
            x = rollout_key(seed_key, r)
        else:
            idle |= 1 << lane
            live -= 1
    return start_row, x, n, idle, live


@_jit
def _lane_start(lane, shared, mine, idle, live, seed_key):
    r = take_rollout(shared, mine)
    if r >= 0:
        return rollout_key(seed_key, r), idle, live + 1
    return np.uint64(0), idle | (1 << lane), live


@_block
def plain_block(args, thread, queue):
    """ew_plain_block, its eight lanes spelled out; args = (columns, start_row, seed_key,
    max_steps, bin_width, hist, stats), columns (copies, words): thread i reads copy i % copies."""
    columns, start_row, seed_key, max_steps, bin_width, hist, stats = args
    columns, hist, stats = columns[thread % columns.shape[0]], hist[thread], stats[thread]
    shared, mine = queue[0], queue[thread + 1]
    if start_row == 0 or max_steps == 0:
        while take_rollout(shared, mine) >= 0:
            if start_row == 0:
                _record_hit(0, bin_width, hist, stats)
            else:
                _record_censored(0, stats)
        return
    idle, live, n, deadline = 0, 0, 0, max_steps
    r0 = r1 = r2 = r3 = r4 = r5 = r6 = r7 = start_row
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0
    x0, idle, live = _lane_start(0, shared, mine, idle, live, seed_key)
    x1, idle, live = _lane_start(1, shared, mine, idle, live, seed_key)
    x2, idle, live = _lane_start(2, shared, mine, idle, live, seed_key)
    x3, idle, live = _lane_start(3, shared, mine, idle, live, seed_key)
    x4, idle, live = _lane_start(4, shared, mine, idle, live, seed_key)
    x5, idle, live = _lane_start(5, shared, mine, idle, live, seed_key)
    x6, idle, live = _lane_start(6, shared, mine, idle, live, seed_key)
    x7, idle, live = _lane_start(7, shared, mine, idle, live, seed_key)
    while live > 0:
        n += 1
        x0, x1, x2, x3 = x0 + GAMMA, x1 + GAMMA, x2 + GAMMA, x3 + GAMMA
        x4, x5, x6, x7 = x4 + GAMMA, x5 + GAMMA, x6 + GAMMA, x7 + GAMMA
        z0, z1, z2, z3 = mix64(x0), mix64(x1), mix64(x2), mix64(x3)
        z4, z5, z6, z7 = mix64(x4), mix64(x5), mix64(x6), mix64(x7)
        r0, r1 = _next_row(columns, r0, z0), _next_row(columns, r1, z1)
        r2, r3 = _next_row(columns, r2, z2), _next_row(columns, r3, z3)
        r4, r5 = _next_row(columns, r4, z4), _next_row(columns, r5, z5)
        r6, r7 = _next_row(columns, r6, z6), _next_row(columns, r7, z7)
        ended = ((r0 == 0) | (r1 == 0) << 1 | (r2 == 0) << 2 | (r3 == 0) << 3
                 | (r4 == 0) << 4 | (r5 == 0) << 5 | (r6 == 0) << 6 | (r7 == 0) << 7)
        if ended != 0 or n == deadline:
            r0, x0, s0, idle, live = _plain_end(
                0, r0, x0, s0, ended, n, shared, mine, idle, live, start_row, seed_key,
                max_steps, bin_width, hist, stats)
            r1, x1, s1, idle, live = _plain_end(
                1, r1, x1, s1, ended, n, shared, mine, idle, live, start_row, seed_key,
                max_steps, bin_width, hist, stats)
            r2, x2, s2, idle, live = _plain_end(
                2, r2, x2, s2, ended, n, shared, mine, idle, live, start_row, seed_key,
                max_steps, bin_width, hist, stats)
            r3, x3, s3, idle, live = _plain_end(
                3, r3, x3, s3, ended, n, shared, mine, idle, live, start_row, seed_key,
                max_steps, bin_width, hist, stats)
            r4, x4, s4, idle, live = _plain_end(
                4, r4, x4, s4, ended, n, shared, mine, idle, live, start_row, seed_key,
                max_steps, bin_width, hist, stats)
            r5, x5, s5, idle, live = _plain_end(
                5, r5, x5, s5, ended, n, shared, mine, idle, live, start_row, seed_key,
                max_steps, bin_width, hist, stats)
            r6, x6, s6, idle, live = _plain_end(
                6, r6, x6, s6, ended, n, shared, mine, idle, live, start_row, seed_key,
                max_steps, bin_width, hist, stats)
            r7, x7, s7, idle, live = _plain_end(
                7, r7, x7, s7, ended, n, shared, mine, idle, live, start_row, seed_key,
                max_steps, bin_width, hist, stats)
            deadline = min(s0, s1, s2, s3, s4, s5, s6, s7) + max_steps


# ------------------------------------------------------------------------------ search wrapper

_X, _TOP, _T, _DRAWS, _DEPTH = range(SEARCH_LANE_WORDS)


@_jit
def _visited_field(visited, first):
    """ew_visited_field: bits first .. first + 63 of the bitset (one word of padding is read)."""
    word, shift = first >> np.uint64(6), first & np.uint64(63)
    low = visited[word] >> shift
    if shift == 0:
        return low
    return low | visited[word + _ONE] << (np.uint64(64) - shift)


@_jit
def _is_visited(visited, p):
    return (visited[p >> np.uint64(6)] >> (p & np.uint64(63))) & _ONE


@_jit
def _mark_visited(visited, p):
    visited[p >> np.uint64(6)] |= _ONE << (p & np.uint64(63))


@_jit
def _any_open(states, positive, visited, at):
    """ew_any_open, for the state whose four words start at ``at``."""
    degree, lo, masks = states[at] >> _32, states[at + _ONE], states[at + _TWO]
    c = np.uint64(0)
    while np.uint64(64) * c < degree:
        if ~_visited_field(visited, lo + np.uint64(64) * c) & positive[masks + c]:
            return True
        c += _ONE
    return False


@_jit
def _open_entries(states, positive, weight, visited, at, open_weight, entry):
    """ew_open_entries: the unvisited positive-weight entries of the row in row order with their
    running open weights; returns their number."""
    row, lo, masks = states[at], states[at + _ONE], states[at + _TWO]
    base, degree = row & _LOW32, row >> _32
    total, n, c = np.uint64(0), 0, np.uint64(0)
    while np.uint64(64) * c < degree:
        field = ~_visited_field(visited, lo + np.uint64(64) * c) & positive[masks + c]
        while field:
            j = np.uint64(64) * c + np.uint64(trailing_zeros(field))
            total += np.uint64(weight[base + j])
            open_weight[n] = total
            entry[n] = j
            n += 1
            field &= field - _ONE
        c += _ONE
    return n


@_jit
def _draw_position(columns, row, z):
    """ew_draw_position: the position drawn with z from the alias columns of row word ``row``."""
    at = _column_index(row, z) << _TWO
    took_alias = np.uint64((z & _LOW32) > columns[at + _TWO])
    return (columns[at + np.uint64(3)] >> (_32 * took_alias)) & _LOW32


@_jit
def _search_lane_start(lane, visited, path, start):
    visited[:] = 0
    _mark_visited(visited, start)
    path[0] = start
    lane[_TOP], lane[_T], lane[_DRAWS], lane[_DEPTH] = start, 0, 0, 1


@_block
def search_block(args, thread, queue):
    """ew_search_block; args = (states, positive, columns, weight, start, mode, seed_key,
    max_steps, bin_width, hist, stats, visited, stack, open, entry, lanes)."""
    (states, positive, columns, weight, start, mode, seed_key, max_steps, bin_width, hist, stats,
     visited, stack, open_weight, entry, lanes) = args
    hist, stats = hist[thread], stats[thread]
    shared, mine = queue[0], queue[thread + 1]
    if states[np.uint64(4) * start] == 0 or max_steps == 0:
        while take_rollout(shared, mine) >= 0:
            if states[np.uint64(4) * start] == 0:
                _record_hit(0, bin_width, hist, stats)
            else:
                _record_censored(0, stats)
        return
    visited, stack, lanes = visited[thread], stack[thread], lanes[thread]
    open_weight, entry = open_weight[thread], entry[thread]
    idle, live = 0, 0
    for i in range(LANES):
        r = take_rollout(shared, mine)
        if r >= 0:
            lanes[_X, i] = rollout_key(seed_key, r)
            live += 1
        else:
            lanes[_X, i] = 0
            idle |= 1 << i
        _search_lane_start(lanes[:, i], visited[i], stack[i], start)
    limit = np.uint64(max_steps)
    narrow = np.uint64(SEARCH_NARROW)
    while live > 0:
        for i in range(LANES):
            if (idle >> i) & 1:
                continue
            v, path, lane_open = visited[i], stack[i], open_weight[i]
            top = lanes[_TOP, i]
            at = np.uint64(4) * top
            row, lo = states[at], states[at + _ONE]
            chosen, moved = np.uint64(0), np.uint64(0)
            z = mix64(lanes[_X, i] + GAMMA)  # the draw a move would take (off the step's chain)
            lanes[_T, i] += _ONE
            if mode == SEARCH_MASK and row >> _32 <= narrow:
                base = row & _LOW32
                field = ~_visited_field(v, lo) & positive[states[at + _TWO]]
                total = np.uint64(0)
                for j in range(SEARCH_NARROW):
                    total += np.uint64(weight[base + np.uint64(j)]) & (
                        np.uint64(0) - ((field >> np.uint64(j)) & _ONE))
                    lane_open[j] = total
                moved = np.uint64(total != 0)
                pick = ((z >> _32) * total) >> _32
                lanes[_X, i] += GAMMA & (np.uint64(0) - moved)
                lanes[_DRAWS, i] += moved
                k = np.uint64(0)
                for j in range(SEARCH_NARROW):
                    k += np.uint64(lane_open[j] <= pick)
                chosen = lo + k
            elif mode == SEARCH_MASK:
                n = _open_entries(states, positive, weight, v, at, lane_open, entry[i])
                if n > 0:
                    lanes[_X, i] += GAMMA
                    lanes[_DRAWS, i] += _ONE
                    pick = ((z >> _32) * lane_open[n - 1]) >> _32
                    k = 0
                    for q in range(n):
                        k += lane_open[q] <= pick
                    chosen = lo + entry[i, k]
                    moved = _ONE
            else:
                chosen = _draw_position(columns, row, z)
                if not _is_visited(v, chosen) or _any_open(states, positive, v, at):
                    moved = _ONE
                    while _is_visited(v, chosen):  # a rejected draw
                        lanes[_X, i] += GAMMA
                        lanes[_DRAWS, i] += _ONE
                        chosen = _draw_position(columns, row, mix64(lanes[_X, i] + GAMMA))
                    lanes[_X, i] += GAMMA
                    lanes[_DRAWS, i] += _ONE
            # the move or the pop, as in edgewalk_search.h
            c = chosen if moved else top
            _mark_visited(v, c)
            depth = lanes[_DEPTH, i]
            path[depth] = c
            depth = depth + moved + moved - _ONE
            lanes[_DEPTH, i] = depth
            below = path[depth - np.uint64(depth != 0)]
            top = c if moved else below
            lanes[_TOP, i] = top
            hit = states[np.uint64(4) * top] == 0
            ended = hit or depth == 0 or lanes[_T, i] == limit
            if ended:
                if hit:
                    _record_hit(lanes[_T, i], bin_width, hist, stats)
                    _add_moments(lanes[_DRAWS, i], stats, DRAWS_SUM)
                else:
                    _record_censored(lanes[_T, i], stats)
                r = take_rollout(shared, mine)
                if r >= 0:
                    lanes[_X, i] = rollout_key(seed_key, r)
                    _search_lane_start(lanes[:, i], v, path, start)
                else:
                    idle |= 1 << i
                    live -= 1


# ------------------------------------------------------------------------------ gradient kernel


@_jit
def _gradient_step(columns, row, z):
    """One step of a gradient rollout: the row word entered and the slot taken, 2k for column k's
    primary, 2k + 1 for its alias (one select, the rest arithmetic on the same test, as in
    edgewalk_gradient.h)."""
    k = _column_index(row, z)
    at = k << _TWO
    took_alias = np.uint64((z & _LOW32) > columns[at + _TWO])
    row = columns[at + _ONE] if took_alias else columns[at]
    return row, np.uint32(k + k + took_alias)


_SHIFT = np.uint64(GRADIENT_PACKED_SHIFT)
_LOW_FIELD = np.uint64((1 << GRADIENT_PACKED_SHIFT) - 1)


@_jit
def _in_target(row, first, count):
    """ew_in_target: whether row word ``row`` is a state of the target of rows [first, first +
    count)."""
    return ((row - first) & _LOW32) < count


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _gradient_finish(columns, max_steps, buffer_steps, stats, slot_sums, packed,
                     censored_visits, rollout_count, touched, buf, first, count, row, t, x):
    """ew_gradient_finish: finishes a rollout aiming at the target of rows [first, first + count)
    after t steps (now at row word ``row``) whose slots are buf[:t], and records it."""
    hit = _in_target(row, first, count)
    if hit or t == max_steps:
        n_slots = len(packed)
        if n_slots <= GRADIENT_PACK_SLOTS:
            triangle = np.uint64(t) * np.uint64(t + 1) // _TWO  # the fold's steps remaining
            if (stats[GRADIENT_PACKED_STEPS] + np.uint64(t) >= _ONE << np.uint64(64 - GRADIENT_PACKED_SHIFT)
                    or stats[GRADIENT_PACKED_REMAINING] + triangle >= _ONE << _SHIFT):
                for s in range(n_slots):
                    slot_sums[s, 0] += packed[s] >> _SHIFT
                    slot_sums[s, 1] += packed[s] & _LOW_FIELD
                    packed[s] = 0
                stats[GRADIENT_PACKED_STEPS] = stats[GRADIENT_PACKED_REMAINING] = 0
            stats[GRADIENT_PACKED_STEPS] += np.uint64(t)
            stats[GRADIENT_PACKED_REMAINING] += triangle
            visit = (_ONE << _SHIFT) + np.uint64(t)
            for i in range(t):
                packed[np.uint64(buf[i])] += visit - np.uint64(i)
        else:
            for i in range(t):
                slot = np.uint64(buf[i])
                slot_sums[slot, 0] += _ONE
                slot_sums[slot, 1] += np.uint64(t - i)
        if not hit:
            for i in range(t):
                censored_visits[np.uint64(buf[i])] += _ONE
    else:
        n_touched, buffer_start = 0, 0
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
                row, slot32 = _gradient_step(columns, row, mix64(x))
                buf[t - buffer_start] = slot32
                t += 1
                hit = _in_target(row, first, count)
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


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _gradient_start(lane, shared, mine, idle, live, columns, targets, start_row, seed_key,
                    max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, buf):
    """ew_gradient_start: the lane's (row, x, first, count) for its next rollout that takes a
    step, recording those that take none; an idle lane (none left) aims at no rows. Returns them
    and the thread's (idle, live)."""
    n_targets = len(targets)
    x = np.uint64(0)
    r = take_rollout(shared, mine)
    while r >= 0:
        g = r % n_targets
        first, count = targets[g, 0], targets[g, 1]
        x = rollout_key(seed_key, r)
        if not _in_target(start_row, first, count) and max_steps > 0:
            return start_row, x, first, count, idle, live
        _gradient_finish(columns, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, buf, first, count, start_row, 0, x)
        r = take_rollout(shared, mine)
    if (idle >> lane) & 1 == 0:
        idle |= 1 << lane
        live -= 1
    return start_row, x, np.uint64(0), np.uint64(0), idle, live


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _gradient_end(lane, row, x, t, first, count, shared, mine, idle, live, columns,
                  targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, buf):
    """A lane's rollout ended (hit, or its buffer is full): finish it unless the lane is idle,
    and start the next."""
    if (idle >> lane) & 1 == 0:
        _gradient_finish(columns, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, buf, first, count, row, t, x)
    return _gradient_start(lane, shared, mine, idle, live, columns, targets, start_row,
                           seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, buf)


@_block
def gradient_block(args, thread, queue):
    """ew_gradient_block, its six lanes spelled out; args = (columns, targets, start_row,
    seed_key, max_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched,
    buffers). Lane i has taken n - s_i steps at round n."""
    (columns, targets, start_row, seed_key, max_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, buffers) = args
    columns, stats, slot_sums = columns[thread % columns.shape[0]], stats[thread], slot_sums[thread]
    packed = packed[thread]
    censored_visits, rollout_count = censored_visits[thread], rollout_count[thread]
    touched, buffers = touched[thread], buffers[thread]
    buffer_steps = buffers.shape[1]
    lane_steps = min(buffer_steps, max_steps)
    b0, b1, b2, b3, b4, b5 = buffers[0], buffers[1], buffers[2], buffers[3], buffers[4], buffers[5]
    shared, mine = queue[0], queue[thread + 1]
    any_target = np.uint64(0)  # every target's rows come first: see ew_gradient_block
    for target in range(len(targets)):
        any_target = max(any_target, targets[target, 0] + targets[target, 1])
    idle, live = 0, GRADIENT_LANES
    r0, x0, f0, c0, idle, live = _gradient_start(
        0, shared, mine, idle, live, columns, targets, start_row, seed_key, max_steps,
        buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b0)
    r1, x1, f1, c1, idle, live = _gradient_start(
        1, shared, mine, idle, live, columns, targets, start_row, seed_key, max_steps,
        buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b1)
    r2, x2, f2, c2, idle, live = _gradient_start(
        2, shared, mine, idle, live, columns, targets, start_row, seed_key, max_steps,
        buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b2)
    r3, x3, f3, c3, idle, live = _gradient_start(
        3, shared, mine, idle, live, columns, targets, start_row, seed_key, max_steps,
        buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b3)
    r4, x4, f4, c4, idle, live = _gradient_start(
        4, shared, mine, idle, live, columns, targets, start_row, seed_key, max_steps,
        buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b4)
    r5, x5, f5, c5, idle, live = _gradient_start(
        5, shared, mine, idle, live, columns, targets, start_row, seed_key, max_steps,
        buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b5)
    s0 = s1 = s2 = s3 = s4 = s5 = 0
    n, deadline = 0, lane_steps
    while live > 0:
        x0, x1, x2, x3, x4, x5 = x0 + GAMMA, x1 + GAMMA, x2 + GAMMA, x3 + GAMMA, x4 + GAMMA, x5 + GAMMA
        z0, z1, z2, z3, z4, z5 = mix64(x0), mix64(x1), mix64(x2), mix64(x3), mix64(x4), mix64(x5)
        restarted = False
        r0, b0[np.uint64(n - s0)] = _gradient_step(columns, r0, z0)
        if (r0 & _LOW32) < any_target and _in_target(r0, f0, c0):
            r0, x0, f0, c0, idle, live = _gradient_end(
                0, r0, x0, n + 1 - s0, f0, c0, shared, mine, idle, live, columns,
                targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b0)
            s0, restarted = n + 1, True
        r1, b1[np.uint64(n - s1)] = _gradient_step(columns, r1, z1)
        if (r1 & _LOW32) < any_target and _in_target(r1, f1, c1):
            r1, x1, f1, c1, idle, live = _gradient_end(
                1, r1, x1, n + 1 - s1, f1, c1, shared, mine, idle, live, columns,
                targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b1)
            s1, restarted = n + 1, True
        r2, b2[np.uint64(n - s2)] = _gradient_step(columns, r2, z2)
        if (r2 & _LOW32) < any_target and _in_target(r2, f2, c2):
            r2, x2, f2, c2, idle, live = _gradient_end(
                2, r2, x2, n + 1 - s2, f2, c2, shared, mine, idle, live, columns,
                targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b2)
            s2, restarted = n + 1, True
        r3, b3[np.uint64(n - s3)] = _gradient_step(columns, r3, z3)
        if (r3 & _LOW32) < any_target and _in_target(r3, f3, c3):
            r3, x3, f3, c3, idle, live = _gradient_end(
                3, r3, x3, n + 1 - s3, f3, c3, shared, mine, idle, live, columns,
                targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b3)
            s3, restarted = n + 1, True
        r4, b4[np.uint64(n - s4)] = _gradient_step(columns, r4, z4)
        if (r4 & _LOW32) < any_target and _in_target(r4, f4, c4):
            r4, x4, f4, c4, idle, live = _gradient_end(
                4, r4, x4, n + 1 - s4, f4, c4, shared, mine, idle, live, columns,
                targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b4)
            s4, restarted = n + 1, True
        r5, b5[np.uint64(n - s5)] = _gradient_step(columns, r5, z5)
        if (r5 & _LOW32) < any_target and _in_target(r5, f5, c5):
            r5, x5, f5, c5, idle, live = _gradient_end(
                5, r5, x5, n + 1 - s5, f5, c5, shared, mine, idle, live, columns,
                targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b5)
            s5, restarted = n + 1, True
        n += 1
        if restarted or n == deadline:
            if n - s0 == lane_steps:
                r0, x0, f0, c0, idle, live = _gradient_end(
                    0, r0, x0, lane_steps, f0, c0, shared, mine, idle, live,
                    columns, targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b0)
                s0 = n
            if n - s1 == lane_steps:
                r1, x1, f1, c1, idle, live = _gradient_end(
                    1, r1, x1, lane_steps, f1, c1, shared, mine, idle, live,
                    columns, targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b1)
                s1 = n
            if n - s2 == lane_steps:
                r2, x2, f2, c2, idle, live = _gradient_end(
                    2, r2, x2, lane_steps, f2, c2, shared, mine, idle, live,
                    columns, targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b2)
                s2 = n
            if n - s3 == lane_steps:
                r3, x3, f3, c3, idle, live = _gradient_end(
                    3, r3, x3, lane_steps, f3, c3, shared, mine, idle, live,
                    columns, targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b3)
                s3 = n
            if n - s4 == lane_steps:
                r4, x4, f4, c4, idle, live = _gradient_end(
                    4, r4, x4, lane_steps, f4, c4, shared, mine, idle, live,
                    columns, targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b4)
                s4 = n
            if n - s5 == lane_steps:
                r5, x5, f5, c5, idle, live = _gradient_end(
                    5, r5, x5, lane_steps, f5, c5, shared, mine, idle, live,
                    columns, targets, start_row, seed_key, max_steps, buffer_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched, b5)
                s5 = n
            deadline = min(s0, s1, s2, s3, s4, s5) + lane_steps
