/* The edgewalk leap kernel: hitting times drawn from their exact law by binary lifting over the
 * lumped chain, without walking every step (mirrored line for line by the Numba backend in
 * src/edgewalk/_numba_leap.py; the tables are built by edgewalk.leap.build_tables).
 *
 * Tables: rows of integer alias columns (the columns of edgewalk.alias.AliasTables, drawn by the
 * same rule) over *outcomes* rather than next states, each column stored as four 32-bit words so
 * that one draw reads one cache line: columns[4k] is the threshold, columns[4k + 1] and
 * columns[4k + 2] the rows that the primary and the alias outcome lead to, and columns[4k + 3]
 * their time advances (primary in the low byte, alias in the next). A rollout is a walk through
 * rows: from row `row` one draw z picks the column k = ew_column(row_start, row, z), the primary
 * outcome if (z & 0xffffffff) <= threshold, else the alias; its time grows by
 * ((uint64_t)1 << advance) >> 1 (0, or a power of two) and it goes on to the outcome's row. A
 * negative row ends the rollout: EW_LEAP_HIT as a hit at the time reached, EW_LEAP_CENSORED as
 * censored at max_steps. The rows say, of a window of 2**l steps known to contain the hit,
 * whether it lies in the first half or the second (and the block at the half), so a rollout of
 * length T takes about 1 + log2(T) draws.
 *
 * Random numbers: exactly the step kernel's streams (edgewalk_kernel.h): rollout r has key
 * ew_rollout_key(seed_key, r) and its n-th draw is mix64(key + n * GAMMA). Rollout r uses only
 * its own stream and all accumulation is integer, so results do not depend on the backend, the
 * thread count or which thread runs which rollout.
 *
 * Hitting times reach 2**62, so the per-thread counters are wider than the step kernel's: stats
 * holds EW_LEAP_NSTATS words, the sum of hitting times over hits in 128 bits, the sum of their
 * squares in 192 bits and the sum of every rollout's time (hits and censored) in 128 bits. The
 * histogram has arbitrary increasing int64 bin edges (edges[0] <= every time < edges[n_bins]);
 * each hit is placed by binary search, so log-spaced bins cost no more than regular ones.
 */
#ifndef EDGEWALK_LEAP_H
#define EDGEWALK_LEAP_H

#include "edgewalk_kernel.h"

enum { EW_LEAP_HIT = -1, EW_LEAP_CENSORED = -2, EW_LEAP_IDLE = -3 };
enum { EW_LEAP_HITS = 0, EW_LEAP_SUM = 1, EW_LEAP_SUMSQ = 3, EW_LEAP_CENSORED_COUNT = 6,
       EW_LEAP_STEPS = 7, EW_LEAP_NSTATS = 9 };

/* Adds v to the 128-bit number w[0] (low word), w[1]. */
static inline void ew_leap_add128(uint64_t *w, uint64_t v) {
    w[0] += v;
    w[1] += w[0] < v;
}

/* Adds t * t (t < 2**63) to the 192-bit number w[0] (low word), w[1], w[2]. */
static inline void ew_leap_add_square(uint64_t *w, uint64_t t) {
    uint64_t a = t >> 32, b = t & 0xffffffffULL;
    uint64_t low = b * b, middle = (a * b) << 1, high = a * a; /* a < 2**31: no overflow */
    uint64_t lo = low + (middle << 32);
    uint64_t hi = high + (middle >> 32) + (lo < low);
    w[0] += lo;
    uint64_t carry = w[0] < lo;
    w[1] += hi;
    uint64_t carry2 = w[1] < hi;
    w[1] += carry;
    carry2 += w[1] < carry;
    w[2] += carry2;
}

/* The bin i with edges[i] <= t < edges[i + 1], by a binary search without branches on the data
 * (edges[lo] <= t < edges[lo + n] throughout). */
static inline int64_t ew_leap_bin(const int64_t *edges, int64_t n_bins, int64_t t) {
    int64_t lo = 0, n = n_bins;
    while (n > 1) {
        int64_t half = n >> 1;
        lo += (edges[lo + half] <= t) ? half : 0;
        n -= half;
    }
    return lo;
}

/* Records one finished rollout: a hit at time t (end == EW_LEAP_HIT) or censored at t. */
static inline void ew_leap_record(int32_t end, int64_t t, const int64_t *edges, int64_t n_bins,
                                  int64_t *hist, uint64_t *stats) {
    if (end == EW_LEAP_HIT) {
        hist[ew_leap_bin(edges, n_bins, t)] += 1;
        stats[EW_LEAP_HITS] += 1;
        ew_leap_add128(stats + EW_LEAP_SUM, (uint64_t)t);
        ew_leap_add_square(stats + EW_LEAP_SUMSQ, (uint64_t)t);
    } else {
        stats[EW_LEAP_CENSORED_COUNT] += 1;
    }
    ew_leap_add128(stats + EW_LEAP_STEPS, (uint64_t)t);
}

/* One draw of one interleaved rollout (row, time t, random counter x); a finished rollout is
 * recorded and the lane takes the next rollout, or idles when none is left. */
#define EW_LEAP_LANE_STEP(row, t, x)                                                       \
    if (row >= 0) {                                                                        \
        x += EW_GAMMA;                                                                     \
        uint64_t z = ew_mix64(x);                                                          \
        const uint32_t *column = columns + 4 * ew_column(row_start, row, z);               \
        uint32_t took_alias = (uint32_t)z > column[0];                                     \
        row = (int32_t)column[1 + took_alias];                                             \
        t += (int64_t)(((uint64_t)1 << ((column[3] >> (8 * took_alias)) & 0xff)) >> 1);    \
        if (row < 0) {                                                                     \
            ew_leap_record(row, t, edges, n_bins, hist, stats);                            \
            int64_t r = ew_take_rollout(q);                                                \
            if (r >= 0) {                                                                  \
                row = start_row; t = 0; x = ew_rollout_key(seed_key, r);                   \
            } else {                                                                       \
                row = EW_LEAP_IDLE; live--;                                                \
            }                                                                              \
        }                                                                                  \
    }

/* Runs the rollouts taken from q from row start_row, four interleaved so that their table loads
 * overlap. start_row == EW_LEAP_HIT means the start state enters the target: every rollout is a
 * hit at time 0. */
static inline void ew_leap_rollouts(const int64_t *row_start, const uint32_t *columns,
                                    int32_t start_row, uint64_t seed_key, ew_rollouts *q,
                                    const int64_t *edges, int64_t n_bins,
                                    int64_t *hist, uint64_t *stats) {
    if (start_row < 0) {
        while (ew_take_rollout(q) >= 0) ew_leap_record(EW_LEAP_HIT, 0, edges, n_bins, hist, stats);
        return;
    }
    int live = 0;
    int32_t row0 = EW_LEAP_IDLE, row1 = EW_LEAP_IDLE, row2 = EW_LEAP_IDLE, row3 = EW_LEAP_IDLE;
    int64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    uint64_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
#define EW_LEAP_LANE_START(row, x)                                                              \
    {                                                                                           \
        int64_t r = ew_take_rollout(q);                                                         \
        if (r >= 0) { row = start_row; x = ew_rollout_key(seed_key, r); live++; }               \
    }
    EW_LEAP_LANE_START(row0, x0) EW_LEAP_LANE_START(row1, x1)
    EW_LEAP_LANE_START(row2, x2) EW_LEAP_LANE_START(row3, x3)
    while (live > 0) {
        EW_LEAP_LANE_STEP(row0, t0, x0)
        EW_LEAP_LANE_STEP(row1, t1, x1)
        EW_LEAP_LANE_STEP(row2, t2, x2)
        EW_LEAP_LANE_STEP(row3, t3, x3)
    }
}

typedef struct {
    const int64_t *row_start;
    const uint32_t *columns;        /* four words a column */
    int32_t start_row;
    uint64_t seed_key;
    const int64_t *edges;           /* n_bins + 1 bin edges */
    int64_t n_bins;
    int64_t *hist;                  /* per thread: n_bins counts */
    uint64_t *stats;                /* per thread: EW_LEAP_NSTATS counters */
    int64_t hist_stride, stats_stride;
} ew_leap_args;

/* The leap kernel's block function for ew_drive. */
static void ew_leap_block(const void *args, int thread, ew_rollouts *q) {
    const ew_leap_args *a = (const ew_leap_args *)args;
    ew_leap_rollouts(a->row_start, a->columns, a->start_row, a->seed_key, q, a->edges,
                     a->n_bins, a->hist + thread * a->hist_stride, a->stats + thread * a->stats_stride);
}

#endif
