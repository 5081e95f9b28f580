# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython backend: each kernel fills its argument struct from the arrays of ``args`` (the same
tuple, in the same order, as the Numba backend's block function takes) and runs
``ew_drive`` (native/edgewalk_kernel.h), OpenMP threads taking rollouts from one counter. Thread i
accumulates into row i of every per-thread array."""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

cdef extern from "edgewalk_kernel.h" nogil:
    enum:
        EW_HITS, EW_SUM, EW_SUMSQ_LO, EW_SUMSQ_HI, EW_CENSORED, EW_STEPS, EW_DRAWS_SUM,
        EW_DRAWS_SUMSQ_LO, EW_DRAWS_SUMSQ_HI, EW_NSTATS, EW_SEARCH_MASK, EW_SEARCH_REJECT,
        EW_LANES
    const unsigned long long EW_GAMMA
    ctypedef struct ew_rollouts:
        pass
    ctypedef void (*ew_block)(const void *args, int thread, ew_rollouts *rollouts) noexcept nogil
    void ew_drive(ew_block block, const void *args, int64_t first_rollout, int64_t last_rollout,
                  int threads)
    ctypedef struct ew_alias_column:
        pass
    ctypedef struct ew_plain_args:
        const ew_alias_column *columns
        int64_t column_copies, column_stride
        uint64_t start_row, seed_key
        int64_t max_steps, bin_width
        int64_t *hist
        uint64_t *stats
        int64_t hist_stride, stats_stride
    void ew_plain_block(const void *args, int thread, ew_rollouts *rollouts)

cdef extern from "edgewalk_search.h" nogil:
    enum:
        EW_SEARCH_LANE_WORDS, EW_SEARCH_NARROW
    ctypedef struct ew_search_state:
        pass
    ctypedef struct ew_search_args:
        const ew_search_state *states
        const uint64_t *positive
        const ew_alias_column *columns
        const uint32_t *weight
        uint64_t start
        int64_t mode
        uint64_t seed_key
        int64_t max_steps, bin_width
        int64_t *hist
        uint64_t *stats
        uint64_t *visited
        uint64_t *stack
        uint64_t *open
        uint64_t *entry
        uint64_t *lanes
        int64_t hist_stride, stats_stride, n_words, stack_size, max_degree
    void ew_search_block(const void *args, int thread, ew_rollouts *rollouts)

cdef extern from "edgewalk_gradient.h" nogil:
    ctypedef struct ew_gradient_args:
        const ew_alias_column *columns
        int64_t column_copies, column_stride
        const uint64_t *targets
        uint64_t start_row
        int64_t n_targets
        uint64_t seed_key
        int64_t max_steps, buffer_steps
        uint64_t *stats
        uint64_t *slot_sums
        uint64_t *packed
        uint64_t *censored_visits
        uint64_t *rollout_count
        int32_t *touched
        uint32_t *buffers
        int64_t stats_stride, slots_stride, buffers_stride
    void ew_gradient_block(const void *args, int thread, ew_rollouts *rollouts)
    enum: EW_GRADIENT_LANES, EW_GRADIENT_STATS, EW_GRADIENT_PACKED_SHIFT, EW_GRADIENT_PACK_SLOTS
    enum: EW_GRADIENT_MAX_BUFFER

cdef extern from *:
    """
    #ifndef EW_MARCH_NATIVE
    #define EW_MARCH_NATIVE 0
    #endif
    """
    int EW_MARCH_NATIVE

# How the extension was compiled: "native" (EDGEWALK_NATIVE=1, -march=native) or "portable".
BUILD = "native" if EW_MARCH_NATIVE else "portable"

# The kernel interface as the C header declares it; edgewalk.kernels checks at import that the
# Numba mirror declares the same.
ABI = {
    "HITS": EW_HITS, "SUM": EW_SUM, "SUMSQ_LO": EW_SUMSQ_LO, "SUMSQ_HI": EW_SUMSQ_HI,
    "CENSORED": EW_CENSORED, "STEPS": EW_STEPS, "DRAWS_SUM": EW_DRAWS_SUM,
    "DRAWS_SUMSQ_LO": EW_DRAWS_SUMSQ_LO, "DRAWS_SUMSQ_HI": EW_DRAWS_SUMSQ_HI,
    "NSTATS": EW_NSTATS, "SEARCH_MASK": EW_SEARCH_MASK, "SEARCH_REJECT": EW_SEARCH_REJECT,
    "GAMMA": EW_GAMMA, "LANES": EW_LANES, "SEARCH_LANE_WORDS": EW_SEARCH_LANE_WORDS,
    "SEARCH_NARROW": EW_SEARCH_NARROW, "GRADIENT_LANES": EW_GRADIENT_LANES,
    "GRADIENT_STATS": EW_GRADIENT_STATS, "GRADIENT_PACKED_SHIFT": EW_GRADIENT_PACKED_SHIFT,
    "GRADIENT_PACK_SLOTS": EW_GRADIENT_PACK_SLOTS, "GRADIENT_MAX_BUFFER": EW_GRADIENT_MAX_BUFFER,
}


cdef _check_rows(int threads, per_thread):
    for name, rows in per_thread.items():
        if rows < threads:
            raise ValueError(f"{name} needs one row per thread ({threads}), has {rows}")


def plain(tuple args, int64_t first, int64_t last, int threads):
    """Plain rollouts (ew_plain_block); args = (columns, start_row, seed_key, max_steps,
    bin_width, hist, stats), columns (copies, words)."""
    cdef const uint64_t[:, ::1] columns = args[0]
    cdef int64_t[:, ::1] hist = args[5]
    cdef uint64_t[:, ::1] stats = args[6]
    _check_rows(threads, {"hist": hist.shape[0], "stats": stats.shape[0]})
    if columns.shape[1] % 8 != 0 or stats.shape[1] < EW_NSTATS:
        raise ValueError("columns need rows of a multiple of 8 words and stats EW_NSTATS")
    cdef ew_plain_args a
    a.columns = <const ew_alias_column *>&columns[0, 0]
    a.column_copies, a.column_stride = columns.shape[0], columns.shape[1] // 4
    a.start_row, a.seed_key = args[1], args[2]
    a.max_steps, a.bin_width = args[3], args[4]
    a.hist, a.hist_stride = &hist[0, 0], hist.shape[1]
    a.stats, a.stats_stride = &stats[0, 0], stats.shape[1]
    with nogil:
        ew_drive(ew_plain_block, &a, first, last, threads)


def search(tuple args, int64_t first, int64_t last, int threads):
    """Rollouts under the no-revisit search wrapper (ew_search_block); args = (states,
    positive, columns, weight, start, mode, seed_key, max_steps, bin_width, hist, stats,
    visited, stack, open, entry, lanes), the last five per-thread scratch: (threads, EW_LANES,
    ...) and lanes (threads, EW_SEARCH_LANE_WORDS, EW_LANES)."""
    cdef const uint64_t[::1] states = args[0], positive = args[1], columns = args[2]
    cdef const uint32_t[::1] weight = args[3]
    cdef int64_t[:, ::1] hist = args[9]
    cdef uint64_t[:, ::1] stats = args[10]
    cdef uint64_t[:, :, ::1] visited = args[11], stack = args[12], open_ = args[13], entry = args[14]
    cdef uint64_t[:, :, ::1] lanes = args[15]
    _check_rows(threads, {"hist": hist.shape[0], "stats": stats.shape[0],
                          "visited": visited.shape[0], "stack": stack.shape[0],
                          "open": open_.shape[0], "entry": entry.shape[0], "lanes": lanes.shape[0]})
    if lanes.shape[1] != EW_SEARCH_LANE_WORDS or lanes.shape[2] != EW_LANES:
        raise ValueError("lanes needs (threads, EW_SEARCH_LANE_WORDS, EW_LANES)")
    if min(visited.shape[1], stack.shape[1], open_.shape[1], entry.shape[1]) != EW_LANES:
        raise ValueError("the search scratch needs EW_LANES lanes per thread")
    if (stack.shape[2] < states.shape[0] // 4 + 1
            or visited.shape[2] < (states.shape[0] // 4 + 63) // 64 + 1
            or open_.shape[2] < EW_SEARCH_NARROW or weight.shape[0] < columns.shape[0] // 4 + EW_SEARCH_NARROW):
        raise ValueError("the search scratch or the padded weights are too small for the graph")
    cdef ew_search_args a
    a.states = <const ew_search_state *>&states[0]
    a.positive, a.columns = &positive[0], <const ew_alias_column *>&columns[0]
    a.weight = &weight[0]
    a.start, a.mode, a.seed_key, a.max_steps, a.bin_width = args[4], args[5], args[6], args[7], args[8]
    a.hist, a.hist_stride = &hist[0, 0], hist.shape[1]
    a.stats, a.stats_stride = &stats[0, 0], stats.shape[1]
    a.visited, a.n_words = &visited[0, 0, 0], visited.shape[2] - 1
    a.stack, a.stack_size = &stack[0, 0, 0], stack.shape[2]
    a.open, a.entry, a.max_degree = &open_[0, 0, 0], &entry[0, 0, 0], open_.shape[2]
    a.lanes = &lanes[0, 0, 0]
    with nogil:
        ew_drive(ew_search_block, &a, first, last, threads)


def gradient(tuple args, int64_t first, int64_t last, int threads):
    """Policy-gradient statistics (ew_gradient_block); args = (columns, targets, start_row,
    seed_key, max_steps, stats, slot_sums, packed, censored_visits, rollout_count, touched,
    buffers), columns (copies, words), targets (n_targets, 2), the last seven per thread, stats
    EW_GRADIENT_STATS words a thread, buffers (threads, EW_GRADIENT_LANES, buffer_steps)."""
    cdef const uint64_t[:, ::1] columns = args[0]
    cdef const uint64_t[:, ::1] targets = args[1]
    cdef uint64_t[:, ::1] stats = args[5]
    cdef uint64_t[:, :, ::1] slot_sums = args[6]
    cdef uint64_t[:, ::1] packed = args[7], censored_visits = args[8], rollout_count = args[9]
    cdef int32_t[:, ::1] touched = args[10]
    cdef uint32_t[:, :, ::1] buffers = args[11]
    _check_rows(threads, {"stats": stats.shape[0], "slot_sums": slot_sums.shape[0],
                          "packed": packed.shape[0], "censored_visits": censored_visits.shape[0],
                          "rollout_count": rollout_count.shape[0], "touched": touched.shape[0],
                          "buffers": buffers.shape[0]})
    cdef int64_t n_slots = slot_sums.shape[1]
    if (buffers.shape[1] != EW_GRADIENT_LANES or buffers.shape[2] > EW_GRADIENT_MAX_BUFFER
            or columns.shape[1] < 2 * n_slots or columns.shape[1] % 8 != 0 or targets.shape[1] != 2
            or stats.shape[1] < EW_GRADIENT_STATS
            or min(packed.shape[1], censored_visits.shape[1], rollout_count.shape[1],
                   touched.shape[1]) != n_slots):
        raise ValueError("buffers need EW_GRADIENT_LANES lanes of at most EW_GRADIENT_MAX_BUFFER "
                         "steps, targets two words each, stats EW_GRADIENT_STATS and every "
                         "per-slot array two slots a column")
    cdef ew_gradient_args a
    a.columns, a.targets = <const ew_alias_column *>&columns[0, 0], &targets[0, 0]
    a.column_copies, a.column_stride = columns.shape[0], columns.shape[1] // 4
    a.n_targets = targets.shape[0]
    a.start_row, a.seed_key, a.max_steps = args[2], args[3], args[4]
    a.buffer_steps = buffers.shape[2]
    a.stats, a.stats_stride = &stats[0, 0], stats.shape[1]
    a.slot_sums, a.slots_stride = &slot_sums[0, 0, 0], n_slots
    a.packed = &packed[0, 0]
    a.censored_visits, a.rollout_count = &censored_visits[0, 0], &rollout_count[0, 0]
    a.touched = &touched[0, 0]
    a.buffers, a.buffers_stride = &buffers[0, 0, 0], buffers.shape[1] * buffers.shape[2]
    with nogil:
        ew_drive(ew_gradient_block, &a, first, last, threads)


cdef extern from "edgewalk_leap.h" nogil:
    enum:
        EW_LEAP_HIT, EW_LEAP_CENSORED, EW_LEAP_IDLE, EW_LEAP_HITS, EW_LEAP_SUM, EW_LEAP_SUMSQ,
        EW_LEAP_CENSORED_COUNT, EW_LEAP_STEPS, EW_LEAP_NSTATS
    ctypedef struct ew_leap_args:
        const int64_t *row_start
        const uint32_t *columns
        int32_t start_row
        uint64_t seed_key
        const int64_t *edges
        int64_t n_bins
        int64_t *hist
        uint64_t *stats
        int64_t hist_stride, stats_stride
    void ew_leap_block(const void *args, int thread, ew_rollouts *rollouts)

# The leap kernel's interface as edgewalk_leap.h declares it (edgewalk.leap checks the Numba
# mirror against it).
LEAP_ABI = {
    "HIT": EW_LEAP_HIT, "CENSORED": EW_LEAP_CENSORED, "IDLE": EW_LEAP_IDLE, "HITS": EW_LEAP_HITS,
    "SUM": EW_LEAP_SUM, "SUMSQ": EW_LEAP_SUMSQ, "CENSORED_COUNT": EW_LEAP_CENSORED_COUNT,
    "STEPS": EW_LEAP_STEPS, "NSTATS": EW_LEAP_NSTATS,
}


def leap(tuple args, int64_t first, int64_t last, int threads):
    """Leap rollouts (ew_leap_block); args = (row_start, columns, start_row, seed_key, edges,
    hist, stats), columns (n, 4), hist (threads, bins), stats (threads, EW_LEAP_NSTATS)."""
    cdef const int64_t[::1] row_start = args[0], edges = args[4]
    cdef const uint32_t[:, ::1] columns = args[1]
    cdef int64_t[:, ::1] hist = args[5]
    cdef uint64_t[:, ::1] stats = args[6]
    _check_rows(threads, {"hist": hist.shape[0], "stats": stats.shape[0]})
    if stats.shape[1] != EW_LEAP_NSTATS or hist.shape[1] != edges.shape[0] - 1 or columns.shape[1] != 4:
        raise ValueError("columns need 4 words, stats EW_LEAP_NSTATS and hist one per bin")
    cdef ew_leap_args a
    a.row_start, a.columns = &row_start[0], &columns[0, 0]
    a.start_row, a.seed_key = args[2], args[3]
    a.edges, a.n_bins = &edges[0], edges.shape[0] - 1
    a.hist, a.hist_stride = &hist[0, 0], hist.shape[1]
    a.stats, a.stats_stride = &stats[0, 0], stats.shape[1]
    with nogil:
        ew_drive(ew_leap_block, &a, first, last, threads)
