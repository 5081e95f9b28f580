/* The edgewalk kernels' common part, shared by the Cython backend (native/_native.pyx) and
 * mirrored by the Numba backend (src/edgewalk/_numba_kernel.py): the kernel interface, the random
 * streams, the packed tables, the driver and the plain rollout kernel. The search wrapper
 * and the gradient statistics have their own headers (edgewalk_search.h, edgewalk_gradient.h).
 *
 * Random numbers: rollout r has its own SplitMix64 stream, seeded with
 *   key_r = mix64(seed_key + (r + 1) * GAMMA),
 * and its n-th draw (n = 1, 2, ...) is mix64(key_r + n * GAMMA). A rollout's path therefore
 * depends only on (seed, r): not on lanes or threads, and all accumulation is integer,
 * so every backend and thread count gives the same histogram bit for bit.
 *
 * One step from state s with one 64-bit draw z (alias layout, see edgewalk.alias.AliasTables):
 *   k = row_start[s] + (((z >> 32) * deg) >> 32);  s' = (z & 0xffffffff) <= threshold[k] ? primary[k] : alias[k]
 *
 * Packed tables (built by edgewalk.kernels, the same arrays for both backends). A *row word*
 * stands for a state's row of alias columns, base | degree << 32 (columns base .. base +
 * degree - 1), or is 0 for a state that ends the rollout (a target), so that the target test is
 * a test of the word a step loads anyway. An ew_alias_column holds everything one step reads in
 * one 32-byte load: the row words of primary[k] and alias[k], threshold[k], and the two states
 * themselves (primary in the low half), which the search wrapper uses.
 *
 * The driver: ew_drive runs rollouts first..last-1 on an OpenMP team, calling one kernel's block
 * function once on each thread with the thread's number; the block function's lanes take
 * rollouts one at a time (ew_take_rollout) from a counter the team shares, until none is left, so
 * that no lane idles and no thread waits while rollouts remain. A block function reads its arrays
 * from the argument struct it is given and accumulates into the thread's rows of the per-thread
 * arrays. Adding a kernel is: an argument struct, a block function with the ew_block signature,
 * and a Cython function that fills the struct and calls ew_drive (docs/architecture.md).
 */
#ifndef EDGEWALK_KERNEL_H
#define EDGEWALK_KERNEL_H

#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define EW_GAMMA 0x9E3779B97F4A7C15ULL
#define EW_LOW32 0xFFFFFFFFULL

enum { EW_HITS = 0, EW_SUM = 1, EW_SUMSQ_LO = 2, EW_SUMSQ_HI = 3, EW_CENSORED = 4, EW_STEPS = 5,
       EW_DRAWS_SUM = 6, EW_DRAWS_SUMSQ_LO = 7, EW_DRAWS_SUMSQ_HI = 8, EW_NSTATS = 9 };
enum { EW_SEARCH_MASK = 1, EW_SEARCH_REJECT = 2 };
/* Rollouts a kernel interleaves per thread (lanes): more lanes overlap more loads, until the
 * lanes' state no longer fits in registers. EW_FOR_LANES(STEP) spells out STEP(i) for every lane
 * i with a constant i, so that arrays of lane state indexed by i stay in registers (a loop over
 * the lanes is not always unrolled: GCC stops at a size limit). */
enum { EW_LANES = 8 };
#define EW_FOR_LANES(STEP) STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
#if defined(__GNUC__) || defined(__clang__)
#define EW_NOINLINE __attribute__((noinline))
#define EW_UNLIKELY(condition) __builtin_expect(!!(condition), 0)
#else
#define EW_NOINLINE
#define EW_UNLIKELY(condition) (condition)
#endif

static inline uint64_t ew_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t ew_rollout_key(uint64_t seed_key, int64_t r) {
    return ew_mix64(seed_key + (uint64_t)(r + 1) * EW_GAMMA);
}

/* The alias column drawn from state s with draw z: entry ((z >> 32) * degree) >> 32 of its row. */
static inline int64_t ew_column(const int64_t *row_start, int32_t s, uint64_t z) {
    int64_t base = row_start[s];
    uint64_t degree = (uint64_t)(row_start[s + 1] - base);
    return base + (int64_t)(((z >> 32) * degree) >> 32);
}

typedef struct {
    uint64_t primary_row, alias_row, threshold, states;
} ew_alias_column;

/* The index of the column drawn with z from the row of row word `row` (the same column as
 * ew_column). */
static inline uint64_t ew_column_index(uint64_t row, uint64_t z) {
    return (row & EW_LOW32) + (((z >> 32) * (row >> 32)) >> 32);
}

/* The column drawn with z from the row of row word `row`. */
static inline const ew_alias_column *ew_draw(const ew_alias_column *columns, uint64_t row,
                                             uint64_t z) {
    return columns + ew_column_index(row, z);
}

/* Whether draw z takes the column's primary (else its alias). */
static inline int ew_takes_primary(const ew_alias_column *c, uint64_t z) {
    return (uint32_t)z <= (uint32_t)c->threshold;
}

/* The row word a step entering column c with draw z goes to (a conditional move: keep further
 * selections on the same test arithmetic, or compilers may make them all a branch, a third
 * slower a step as measured in the gradient kernel). */
static inline uint64_t ew_next_row(const ew_alias_column *c, uint64_t z) {
    return ew_takes_primary(c, z) ? c->primary_row : c->alias_row;
}

/* Adds value v and its square to the sum at stats[sum] and the 128-bit sum at stats[sum + 1] (low
 * word), stats[sum + 2] (high word). */
static inline void ew_add_moments(uint64_t v, uint64_t *stats, int sum) {
    uint64_t square = v * v;
    stats[sum] += v;
    stats[sum + 1] += square;
    stats[sum + 2] += stats[sum + 1] < square; /* carry */
}

/* Adds hitting time t of one rollout that hit the target to the histogram and the moments. */
static inline void ew_record_hit(int64_t t, int64_t bin_width, int64_t *hist, uint64_t *stats) {
    hist[t / bin_width] += 1;
    stats[EW_HITS] += 1;
    ew_add_moments((uint64_t)t, stats, EW_SUM);
    stats[EW_STEPS] += (uint64_t)t;
}

/* Adds one rollout censored after t steps. */
static inline void ew_record_censored(int64_t t, uint64_t *stats) {
    stats[EW_CENSORED] += 1;
    stats[EW_STEPS] += (uint64_t)t;
}

/* ------------------------------------------------------------------------------ the driver */

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline int64_t ew_atomic_load(int64_t *p) { return *(volatile int64_t *)p; }
static inline int64_t ew_fetch_add(int64_t *p, int64_t v) {
    return _InterlockedExchangeAdd64((volatile long long *)p, v);
}
#else
static inline int64_t ew_atomic_load(int64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline int64_t ew_fetch_add(int64_t *p, int64_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
#endif

/* The rollouts of one ew_drive call as one thread sees them: the team's shared counter (the first
 * rollout no thread has taken) and the run of rollouts this thread took, next..stop-1. */
typedef struct {
    int64_t *shared_next;
    int64_t last, threads, next, stop;
} ew_rollouts;

/* The number of the next rollout for one of this thread's lanes, or -1 when every rollout of the
 * call is taken. A thread takes a run of 1 / (4 threads) of the rollouts left (guided
 * scheduling): a few shared-counter operations a call, and runs of one rollout at the end, so
 * that the threads run out of work together. */
static inline int64_t ew_take_rollout(ew_rollouts *q) {
    if (q->next == q->stop) {
        int64_t left = q->last - ew_atomic_load(q->shared_next);
        if (left <= 0) return -1;
        int64_t run = left / (4 * q->threads);
        run = run > 1 ? run : 1;
        int64_t first = ew_fetch_add(q->shared_next, run);
        if (first >= q->last) return -1;
        q->next = first;
        q->stop = first + run < q->last ? first + run : q->last;
    }
    return q->next++;
}

typedef void (*ew_block)(const void *args, int thread, ew_rollouts *rollouts);

/* Runs rollouts first_rollout..last_rollout-1: block(args, thread, rollouts) once on each of
 * `threads` OpenMP threads, all taking rollouts from one counter. */
static void ew_drive(ew_block block, const void *args, int64_t first_rollout,
                     int64_t last_rollout, int threads) {
    int64_t shared_next = first_rollout;
    threads = threads > 1 ? threads : 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        ew_rollouts q = {&shared_next, last_rollout, threads, 0, 0};
        block(args, omp_get_thread_num(), &q);
    }
#else
    ew_rollouts q = {&shared_next, last_rollout, 1, 0, 0};
    block(args, 0, &q);
    (void)threads;
#endif
}

/* ------------------------------------------------------------------------- the plain kernel */

typedef struct {
    const ew_alias_column *columns; /* target states' rows folded to 0; thread i reads copy
                                       i % column_copies, column_stride columns apart */
    int64_t column_copies, column_stride;
    uint64_t start_row;             /* the row word of the start state 0 */
    uint64_t seed_key;
    int64_t max_steps, bin_width;   /* bin_width * (number of bins) > max_steps */
    int64_t *hist;                  /* per thread: the histogram of hitting times */
    uint64_t *stats;                /* per thread: EW_NSTATS counters */
    int64_t hist_stride, stats_stride;
} ew_plain_args;

/* Ends lane i's rollout at round n, a hit or censored at max_steps: records it unless the lane is
 * idle, and starts the lane on the next rollout (idle if there is none). */
static inline void ew_plain_end(const ew_plain_args *a, int i, int hit, int64_t n, uint64_t *row,
                                uint64_t *x, int64_t *start, ew_rollouts *q, unsigned *idle,
                                int64_t *live, int64_t *hist, uint64_t *stats) {
    if (!((*idle >> i) & 1)) {
        if (hit) ew_record_hit(n - start[i], a->bin_width, hist, stats);
        else ew_record_censored(a->max_steps, stats);
        int64_t r = ew_take_rollout(q);
        if (r >= 0) x[i] = ew_rollout_key(a->seed_key, r);
        else { *idle |= 1u << i; (*live)--; }
    }
    row[i] = a->start_row;
    start[i] = n;
}

/* The rollouts taken from q, from the start state until a target state is entered or max_steps
 * transitions are made (censored). EW_LANES rollouts are interleaved so that their loads overlap:
 * every round each lane takes one step, with no test but whether it entered a target; a lane's
 * steps are counted by the round number n and the round its rollout started, and censoring is
 * tested once a round against the earliest lane's deadline. Lanes left without a rollout walk on
 * unrecorded until the thread's last rollout ends. */
static void ew_plain_block(const void *args, int thread, ew_rollouts *q) {
    const ew_plain_args *a = (const ew_plain_args *)args;
    const ew_alias_column *columns = a->columns + (thread % a->column_copies) * a->column_stride;
    const int64_t max_steps = a->max_steps;
    int64_t *hist = a->hist + thread * a->hist_stride;
    uint64_t *stats = a->stats + thread * a->stats_stride;
    if (a->start_row == 0 || max_steps == 0) {
        while (ew_take_rollout(q) >= 0) {
            if (a->start_row == 0) ew_record_hit(0, a->bin_width, hist, stats);
            else ew_record_censored(0, stats);
        }
        return;
    }
    uint64_t row[EW_LANES], x[EW_LANES], z[EW_LANES];
    int64_t start[EW_LANES];
    unsigned idle = 0; /* bit i: lane i has no rollout left */
    int64_t live = 0, n = 0, deadline = max_steps;
    for (int i = 0; i < EW_LANES; i++) {
        row[i] = a->start_row;
        start[i] = 0;
        x[i] = 0;
        int64_t r = ew_take_rollout(q);
        if (r >= 0) { x[i] = ew_rollout_key(a->seed_key, r); live++; }
        else idle |= 1u << i;
    }
#define EW_PLAIN_DRAW(i) x[i] += EW_GAMMA; z[i] = ew_mix64(x[i]);
#define EW_PLAIN_STEP(i)                                                                   \
    {                                                                                      \
        row[i] = ew_next_row(ew_draw(columns, row[i], z[i]), z[i]);                      \
        if (EW_UNLIKELY(row[i] == 0)) {                                                    \
            ew_plain_end(a, i, 1, n, row, x, start, q, &idle, &live, hist, stats); \
            restarted = 1;                                                                 \
        }                                                                                  \
    }
    while (live > 0) {
        n++;
        EW_FOR_LANES(EW_PLAIN_DRAW)
        int restarted = 0;
        EW_FOR_LANES(EW_PLAIN_STEP)
        if (EW_UNLIKELY(restarted | (n == deadline))) {
            for (int i = 0; i < EW_LANES; i++)
                if (n - start[i] == max_steps)
                    ew_plain_end(a, i, 0, n, row, x, start, q, &idle, &live, hist, stats);
            deadline = start[0];
            for (int i = 1; i < EW_LANES; i++) deadline = start[i] < deadline ? start[i] : deadline;
            deadline += max_steps;
        }
    }
}

#endif
