# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython backend: OpenMP threads over blocks of rollouts, each block run by the C kernel in
edgewalk_kernel.h. Thread i accumulates into row i of ``hist`` and ``stats``."""

from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
cimport openmp

cdef extern from "edgewalk_kernel.h" nogil:
    enum:
        EW_HITS, EW_SUM, EW_SUMSQ_LO, EW_SUMSQ_HI, EW_CENSORED, EW_STEPS, EW_DRAWS_SUM,
        EW_DRAWS_SUMSQ_LO, EW_DRAWS_SUMSQ_HI, EW_NSTATS, EW_SEARCH_MASK, EW_SEARCH_REJECT
    const unsigned long long EW_GAMMA
    void ew_run_block(const int64_t *row_start, const uint32_t *threshold,
                      const int32_t *primary, const int32_t *alias,
                      const uint8_t *is_target, uint64_t seed_key, int64_t first,
                      int64_t last, int64_t max_steps, int64_t bin_width,
                      int64_t *hist, uint64_t *stats)
    void ew_search_block(const int64_t *row_start, const int32_t *next_state,
                         const uint32_t *weight, const uint32_t *threshold,
                         const int32_t *primary, const int32_t *alias,
                         const uint8_t *is_target, int64_t n_states, int mode,
                         uint64_t seed_key, int64_t first, int64_t last,
                         int64_t max_steps, int64_t bin_width, int64_t *hist,
                         uint64_t *stats, uint64_t *visited, int32_t *stack)
    void ew_gradient_block(const int64_t *row_start, const uint32_t *threshold,
                           const int32_t *primary, const int32_t *alias,
                           const uint8_t *is_target, int64_t n_states,
                           int64_t n_targets, uint64_t seed_key, int64_t first,
                           int64_t last, int64_t max_steps, int64_t buffer_steps,
                           uint64_t *stats, uint64_t *slot_sums,
                           uint64_t *censored_visits, uint64_t *rollout_count,
                           int32_t *touched, uint32_t *buffers)

# The kernel interface as the C header declares it; edgewalk.kernels checks at import that the
# Numba mirror declares the same.
ABI = {
    "HITS": EW_HITS, "SUM": EW_SUM, "SUMSQ_LO": EW_SUMSQ_LO, "SUMSQ_HI": EW_SUMSQ_HI,
    "CENSORED": EW_CENSORED, "STEPS": EW_STEPS, "DRAWS_SUM": EW_DRAWS_SUM,
    "DRAWS_SUMSQ_LO": EW_DRAWS_SUMSQ_LO, "DRAWS_SUMSQ_HI": EW_DRAWS_SUMSQ_HI,
    "NSTATS": EW_NSTATS, "SEARCH_MASK": EW_SEARCH_MASK, "SEARCH_REJECT": EW_SEARCH_REJECT,
    "GAMMA": EW_GAMMA,
}


def run_blocks(const int64_t[::1] row_start, const uint32_t[::1] threshold,
               const int32_t[::1] primary, const int32_t[::1] alias,
               const uint8_t[::1] is_target, uint64_t seed_key,
               int64_t first_rollout, int64_t last_rollout, int64_t block_size,
               int64_t max_steps, int64_t bin_width,
               int64_t[:, ::1] hist, uint64_t[:, ::1] stats, int threads):
    """Run rollouts first_rollout..last_rollout-1 in blocks of block_size on ``threads`` threads."""
    cdef int64_t n_blocks = (last_rollout - first_rollout + block_size - 1) // block_size
    cdef int64_t b, first, last
    cdef int thread
    if hist.shape[0] < threads or stats.shape[0] < threads:
        raise ValueError("hist and stats need one row per thread")
    for b in prange(n_blocks, nogil=True, schedule="dynamic", num_threads=threads):
        thread = openmp.omp_get_thread_num()
        first = first_rollout + b * block_size
        last = first + block_size
        if last > last_rollout:
            last = last_rollout
        ew_run_block(&row_start[0], &threshold[0], &primary[0], &alias[0], &is_target[0],
                     seed_key, first, last, max_steps, bin_width,
                     &hist[thread, 0], &stats[thread, 0])


def run_search_blocks(const int64_t[::1] row_start, const int32_t[::1] next_state,
                      const uint32_t[::1] weight, const uint32_t[::1] threshold,
                      const int32_t[::1] primary, const int32_t[::1] alias,
                      const uint8_t[::1] is_target, int mode, uint64_t seed_key,
                      int64_t first_rollout, int64_t last_rollout, int64_t block_size,
                      int64_t max_steps, int64_t bin_width,
                      int64_t[:, ::1] hist, uint64_t[:, ::1] stats,
                      uint64_t[:, ::1] visited, int32_t[:, ::1] stack, int threads):
    """Like run_blocks, under the no-revisit search wrapper (mode 1 = mask, 2 = reject); visited
    and stack are per-thread scratch rows."""
    cdef int64_t n_blocks = (last_rollout - first_rollout + block_size - 1) // block_size
    cdef int64_t n_states = is_target.shape[0]
    cdef int64_t b, first, last
    cdef int thread
    if min(hist.shape[0], stats.shape[0], visited.shape[0], stack.shape[0]) < threads:
        raise ValueError("hist, stats, visited and stack need one row per thread")
    for b in prange(n_blocks, nogil=True, schedule="dynamic", num_threads=threads):
        thread = openmp.omp_get_thread_num()
        first = first_rollout + b * block_size
        last = first + block_size
        if last > last_rollout:
            last = last_rollout
        ew_search_block(&row_start[0], &next_state[0], &weight[0], &threshold[0], &primary[0],
                        &alias[0], &is_target[0], n_states, mode, seed_key, first, last,
                        max_steps, bin_width, &hist[thread, 0], &stats[thread, 0],
                        &visited[thread, 0], &stack[thread, 0])


def run_gradient_blocks(const int64_t[::1] row_start, const uint32_t[::1] threshold,
                        const int32_t[::1] primary, const int32_t[::1] alias,
                        const uint8_t[:, ::1] is_target, uint64_t seed_key,
                        int64_t first_rollout, int64_t last_rollout, int64_t block_size,
                        int64_t max_steps, uint64_t[:, ::1] stats, uint64_t[:, :, ::1] slot_sums,
                        uint64_t[:, ::1] censored_visits, uint64_t[:, ::1] rollout_count,
                        int32_t[:, ::1] touched, uint32_t[:, :, ::1] buffers, int threads):
    """Policy-gradient statistics of rollouts first_rollout..last_rollout-1 (see
    ew_gradient_block); per thread: stats, slot_sums (visits and steps remaining per alias slot),
    censored_visits, and scratch rollout_count, touched and buffers (four lanes)."""
    cdef int64_t n_blocks = (last_rollout - first_rollout + block_size - 1) // block_size
    cdef int64_t n_targets = is_target.shape[0], n_states = is_target.shape[1]
    cdef int64_t buffer_steps = buffers.shape[2]
    cdef int64_t b, first, last
    cdef int thread
    if min(stats.shape[0], slot_sums.shape[0], censored_visits.shape[0], rollout_count.shape[0],
           touched.shape[0], buffers.shape[0]) < threads:
        raise ValueError("stats, slot_sums, censored_visits and the scratch need one row per thread")
    if buffers.shape[1] != 4:
        raise ValueError("buffers need four lanes per thread")
    for b in prange(n_blocks, nogil=True, schedule="dynamic", num_threads=threads):
        thread = openmp.omp_get_thread_num()
        first = first_rollout + b * block_size
        last = first + block_size
        if last > last_rollout:
            last = last_rollout
        ew_gradient_block(&row_start[0], &threshold[0], &primary[0], &alias[0],
                          &is_target[0, 0], n_states, n_targets, seed_key, first, last,
                          max_steps, buffer_steps, &stats[thread, 0], &slot_sums[thread, 0, 0],
                          &censored_visits[thread, 0], &rollout_count[thread, 0],
                          &touched[thread, 0], &buffers[thread, 0, 0])


cdef extern from "edgewalk_leap.h" nogil:
    enum:
        EW_LEAP_HIT, EW_LEAP_CENSORED, EW_LEAP_IDLE, EW_LEAP_HITS, EW_LEAP_SUM, EW_LEAP_SUMSQ,
        EW_LEAP_CENSORED_COUNT, EW_LEAP_STEPS, EW_LEAP_NSTATS
    void ew_leap_block(const int64_t *row_start, const uint32_t *columns,
                       int32_t start_row, uint64_t seed_key, int64_t first,
                       int64_t last, const int64_t *edges, int64_t n_bins,
                       int64_t *hist, uint64_t *stats)

# The leap kernel's interface as edgewalk_leap.h declares it (edgewalk.leap checks the Numba
# mirror against it).
LEAP_ABI = {
    "HIT": EW_LEAP_HIT, "CENSORED": EW_LEAP_CENSORED, "IDLE": EW_LEAP_IDLE, "HITS": EW_LEAP_HITS,
    "SUM": EW_LEAP_SUM, "SUMSQ": EW_LEAP_SUMSQ, "CENSORED_COUNT": EW_LEAP_CENSORED_COUNT,
    "STEPS": EW_LEAP_STEPS, "NSTATS": EW_LEAP_NSTATS,
}


def run_leap_blocks(const int64_t[::1] row_start, const uint32_t[:, ::1] columns,
                    int32_t start_row, uint64_t seed_key, int64_t first_rollout, int64_t last_rollout,
                    int64_t block_size, const int64_t[::1] edges,
                    int64_t[:, ::1] hist, uint64_t[:, ::1] stats, int threads):
    """Leap rollouts first_rollout..last_rollout-1 (see ew_leap_block) in blocks of block_size on
    ``threads`` threads; thread i accumulates into row i of hist and stats."""
    cdef int64_t n_blocks = (last_rollout - first_rollout + block_size - 1) // block_size
    cdef int64_t n_bins = edges.shape[0] - 1
    cdef int64_t b, first, last
    cdef int thread
    if hist.shape[0] < threads or stats.shape[0] < threads:
        raise ValueError("hist and stats need one row per thread")
    if stats.shape[1] != EW_LEAP_NSTATS or hist.shape[1] != n_bins or columns.shape[1] != 4:
        raise ValueError("columns need 4 words, stats EW_LEAP_NSTATS and hist one per bin")
    for b in prange(n_blocks, nogil=True, schedule="dynamic", num_threads=threads):
        thread = openmp.omp_get_thread_num()
        first = first_rollout + b * block_size
        last = first + block_size
        if last > last_rollout:
            last = last_rollout
        ew_leap_block(&row_start[0], &columns[0, 0], start_row, seed_key, first, last,
                      &edges[0], n_bins, &hist[thread, 0], &stats[thread, 0])
