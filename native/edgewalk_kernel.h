/* The edgewalk rollout kernel, shared by the Cython backend (and mirrored line for line by the
 * Numba backend in src/edgewalk/_numba_kernel.py).
 *
 * Random numbers: rollout r has its own SplitMix64 stream, seeded with
 *   key_r = mix64(seed_key + (r + 1) * GAMMA),
 * and its n-th draw (n = 1, 2, ...) is mix64(key_r + n * GAMMA). A rollout's path therefore
 * depends only on (seed, r): not on blocks, lanes or threads, and all accumulation is integer,
 * so every backend and thread count gives the same histogram bit for bit.
 *
 * One step from state s with one 64-bit draw z (alias layout, see edgewalk.policy.AliasTables):
 *   k = row_start[s] + (((z >> 32) * deg) >> 32);  s' = (z & 0xffffffff) <= threshold[k] ? primary[k] : alias[k]
 */
#ifndef EDGEWALK_KERNEL_H
#define EDGEWALK_KERNEL_H

#include <stdint.h>

#define EW_GAMMA 0x9E3779B97F4A7C15ULL

enum { EW_HITS = 0, EW_SUM = 1, EW_SUMSQ_LO = 2, EW_SUMSQ_HI = 3, EW_CENSORED = 4, EW_STEPS = 5,
       EW_DRAWS_SUM = 6, EW_DRAWS_SUMSQ_LO = 7, EW_DRAWS_SUMSQ_HI = 8, EW_NSTATS = 9 };
enum { EW_SEARCH_MASK = 1, EW_SEARCH_REJECT = 2 };

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

/* One step of one interleaved rollout (state s, steps t, random counter x): on a hit or at
 * max_steps the rollout is recorded and the lane takes the next rollout of the block, or stops
 * (s = -1) when none is left. */
#define EW_LANE_STEP(s, t, x)                                                              \
    if (s >= 0) {                                                                          \
        x += EW_GAMMA;                                                                     \
        uint64_t z = ew_mix64(x);                                                          \
        int64_t k = ew_column(row_start, s, z);                                            \
        int32_t take_primary = primary[k], take_alias = alias[k];                          \
        s = ((uint32_t)z <= threshold[k]) ? take_primary : take_alias;                     \
        t++;                                                                               \
        if (is_target[s] | (t == max_steps)) {                                             \
            if (is_target[s]) ew_record_hit(t, bin_width, hist, stats);                    \
            else { stats[EW_CENSORED] += 1; stats[EW_STEPS] += (uint64_t)t; }              \
            if (next_rollout < last) { s = 0; t = 0; x = ew_rollout_key(seed_key, next_rollout++); } \
            else { s = -1; live--; }                                                       \
        }                                                                                  \
    }

/* Runs rollouts first..last-1 from the start state 0 until a state with is_target set is entered
 * or max_steps transitions are made (censored), four rollouts interleaved so that their memory
 * loads overlap (lanes are plain locals so that they stay in registers). Requires
 * bin_width * (number of bins) > max_steps. */
static inline void ew_run_block(const int64_t *row_start, const uint32_t *threshold,
                                const int32_t *primary, const int32_t *alias,
                                const uint8_t *is_target, uint64_t seed_key, int64_t first,
                                int64_t last, int64_t max_steps, int64_t bin_width,
                                int64_t *hist, uint64_t *stats) {
    if (is_target[0] || max_steps == 0) {
        for (int64_t r = first; r < last; r++) {
            if (is_target[0]) ew_record_hit(0, bin_width, hist, stats);
            else stats[EW_CENSORED] += 1;
        }
        return;
    }
    int64_t next_rollout = first;
    int live = 0;
    int32_t s0 = -1, s1 = -1, s2 = -1, s3 = -1;
    int64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    uint64_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
#define EW_LANE_START(s, x) if (next_rollout < last) { s = 0; x = ew_rollout_key(seed_key, next_rollout++); live++; }
    EW_LANE_START(s0, x0) EW_LANE_START(s1, x1) EW_LANE_START(s2, x2) EW_LANE_START(s3, x3)
    while (live > 0) {
        EW_LANE_STEP(s0, t0, x0)
        EW_LANE_STEP(s1, t1, x1)
        EW_LANE_STEP(s2, t2, x2)
        EW_LANE_STEP(s3, t3, x3)
    }
}

static inline int ew_is_visited(const uint64_t *visited, int32_t s) {
    return (int)((visited[s >> 6] >> (s & 63)) & 1);
}

/* The no-revisit search wrapper (MODEL.md section 6) around the same policy and random streams:
 * rollouts first..last-1 one after another. The wrapper never enters a state entered before in
 * the rollout (start included); from a state with no unvisited next state of positive weight it
 * pops back along the path stack. Every accepted move and every pop is one step.
 *   mask:   one draw picks among the unvisited next states in proportion to weight[k]:
 *           pick = ((z >> 32) * open) >> 32, then the first entry whose running weight exceeds it.
 *   reject: draws from the full policy (the alias step above) until an unvisited state comes up;
 *           each draw counts as a policy draw.
 * A rollout that pops past the start (target unreachable) or reaches max_steps is censored.
 * Scratch per thread: visited (ceil(n_states / 64) words) and stack (n_states entries). */
static inline void ew_search_block(const int64_t *row_start, const int32_t *next_state,
                                   const uint32_t *weight, const uint32_t *threshold,
                                   const int32_t *primary, const int32_t *alias,
                                   const uint8_t *is_target, int64_t n_states, int mode,
                                   uint64_t seed_key, int64_t first, int64_t last,
                                   int64_t max_steps, int64_t bin_width, int64_t *hist,
                                   uint64_t *stats, uint64_t *visited, int32_t *stack) {
    int64_t n_words = (n_states + 63) / 64;
    for (int64_t r = first; r < last; r++) {
        if (is_target[0]) {
            ew_record_hit(0, bin_width, hist, stats);
            continue;
        }
        for (int64_t w = 0; w < n_words; w++) visited[w] = 0;
        uint64_t x = ew_rollout_key(seed_key, r);
        int64_t depth = 1, t = 0, draws = 0;
        int hit = 0;
        stack[0] = 0;
        visited[0] = 1;
        while (t < max_steps) {
            int32_t s = stack[depth - 1];
            int64_t lo = row_start[s], hi = row_start[s + 1];
            uint64_t open = 0;
            for (int64_t k = lo; k < hi; k++)
                if (!ew_is_visited(visited, next_state[k])) open += weight[k];
            t++;
            if (open == 0) {
                if (--depth == 0) break; /* popped past the start: nothing left to search */
                continue;
            }
            int32_t chosen = -1;
            if (mode == EW_SEARCH_MASK) {
                x += EW_GAMMA;
                uint64_t pick = ((ew_mix64(x) >> 32) * open) >> 32;
                draws++;
                for (int64_t k = lo; k < hi; k++) {
                    if (ew_is_visited(visited, next_state[k])) continue;
                    if (pick < weight[k]) { chosen = next_state[k]; break; }
                    pick -= weight[k];
                }
            } else {
                do {
                    x += EW_GAMMA;
                    uint64_t z = ew_mix64(x);
                    int64_t k = ew_column(row_start, s, z);
                    chosen = ((uint32_t)z <= threshold[k]) ? primary[k] : alias[k];
                    draws++;
                } while (ew_is_visited(visited, chosen));
            }
            visited[chosen >> 6] |= 1ULL << (chosen & 63);
            stack[depth++] = chosen;
            if (is_target[chosen]) { hit = 1; break; }
        }
        if (hit) {
            ew_record_hit(t, bin_width, hist, stats);
            ew_add_moments((uint64_t)draws, stats, EW_DRAWS_SUM);
        } else {
            stats[EW_CENSORED] += 1;
            stats[EW_STEPS] += (uint64_t)t;
        }
    }
}

/* Policy-gradient statistics, without storing trajectories.
 *
 * Rollout r aims at the target of row r % n_targets of is_target and draws exactly as in
 * ew_run_block (same stream, same alias step). Statistics are kept per alias slot: slot 2k is
 * column k's primary, slot 2k + 1 its alias (edgewalk.engine maps slots to CSR entries). For every
 * slot taken at step t (1-based) of a rollout of length T:
 *   slot_sums[2 * slot] += 1 (visits),  slot_sums[2 * slot + 1] += T - t + 1 (steps remaining,
 *   this one included),  censored_visits[slot] += 1 if the rollout did not hit.
 * Four rollouts are interleaved as in ew_run_block; each lane records the slots it takes in its
 * buffer (buffer_steps entries) and folds them into the sums when its rollout ends, T known. A
 * rollout that outgrows its buffer is finished by ew_gradient_finish alone, a buffer at a time,
 * with per-rollout counts (rollout_count, zero between rollouts, and touched, its slots).
 * Per-thread scratch: buffers (4 * buffer_steps), rollout_count and touched (one per slot).
 * Sums wrap modulo 2**64 in between; the totals are exact. */
typedef struct {
    const int64_t *row_start;
    const uint32_t *threshold;
    const int32_t *primary, *alias;
    int64_t max_steps, buffer_steps;
    uint64_t *stats, *slot_sums, *censored_visits, *rollout_count;
    int32_t *touched;
} ew_gradient_scratch;

/* Finishes a rollout at state s after t steps whose slots are buf[0..t-1] and records it. */
static void ew_gradient_finish(const ew_gradient_scratch *g, uint32_t *buf, const uint8_t *target,
                               int32_t s, int64_t t, uint64_t x) {
    uint64_t *slot_sums = g->slot_sums;
    int hit = target[s];
    if (hit || t == g->max_steps) {
        for (int64_t i = 0; i < t; i++) {
            uint64_t *sums = slot_sums + 2 * (uint64_t)buf[i];
            sums[0] += 1;
            sums[1] += (uint64_t)(t - i);
        }
        if (!hit)
            for (int64_t i = 0; i < t; i++) g->censored_visits[buf[i]] += 1;
    } else {
        /* steps remaining = (1 - step) now, plus T per visit once T is known */
        uint64_t *count = g->rollout_count;
        int32_t *touched = g->touched;
        int64_t n_touched = 0, buffer_start = 0;
        for (;;) {
            for (int64_t i = 0; i < t - buffer_start; i++) {
                uint32_t slot = buf[i];
                uint64_t *sums = slot_sums + 2 * (uint64_t)slot;
                sums[0] += 1;
                sums[1] -= (uint64_t)(buffer_start + i);
                uint64_t n = count[slot];
                count[slot] = n + 1;
                touched[n_touched] = (int32_t)slot;
                n_touched += (n == 0);
            }
            if (hit || t == g->max_steps) break;
            buffer_start = t;
            int64_t limit = g->max_steps - t < g->buffer_steps ? g->max_steps : t + g->buffer_steps;
            do {
                x += EW_GAMMA;
                uint64_t z = ew_mix64(x);
                int64_t k = ew_column(g->row_start, s, z);
                uint32_t took_alias = (uint32_t)z > g->threshold[k];
                s = took_alias ? g->alias[k] : g->primary[k];
                buf[t - buffer_start] = (uint32_t)(2 * k) + took_alias;
                t++;
                hit = target[s];
            } while (!hit && t < limit);
        }
        for (int64_t i = 0; i < n_touched; i++) {
            uint32_t slot = (uint32_t)touched[i];
            slot_sums[2 * (uint64_t)slot + 1] += count[slot] * (uint64_t)t;
            if (!hit) g->censored_visits[slot] += count[slot];
            count[slot] = 0;
        }
    }
    if (hit) {
        g->stats[EW_HITS] += 1;
        ew_add_moments((uint64_t)t, g->stats, EW_SUM);
    } else {
        g->stats[EW_CENSORED] += 1;
    }
    g->stats[EW_STEPS] += (uint64_t)t;
}

/* One step of one interleaved gradient rollout (state s, steps t, counter x, target row, buffer). */
#define EW_GRADIENT_LANE_STEP(s, t, x, target, buf)                                        \
    if (s >= 0) {                                                                          \
        x += EW_GAMMA;                                                                     \
        uint64_t z = ew_mix64(x);                                                          \
        int64_t k = ew_column(row_start, s, z);                                            \
        uint32_t took_alias = (uint32_t)z > threshold[k];                                  \
        int32_t take_primary = primary[k], take_alias = alias[k];                          \
        s = took_alias ? take_alias : take_primary;                                        \
        buf[t++] = (uint32_t)(2 * k) + took_alias;                                         \
        if (target[s] | (t == lane_steps)) {                                               \
            ew_gradient_finish(&scratch, buf, target, s, t, x);                            \
            s = -1;                                                                        \
            EW_GRADIENT_LANE_START(s, t, x, target, buf)                                   \
            if (s < 0) live--;                                                             \
        }                                                                                  \
    }

/* Starts the lane on the next rollout of the block that takes a step; rollouts that take none
 * (start on the target, or max_steps = 0) are recorded on the way. Leaves s = -1 if none is left. */
#define EW_GRADIENT_LANE_START(s, t, x, target, buf)                                       \
    while (next_rollout < last) {                                                          \
        target = is_target + (next_rollout % n_targets) * n_states;                        \
        x = ew_rollout_key(seed_key, next_rollout++);                                      \
        t = 0;                                                                             \
        if (!target[0] && max_steps > 0) { s = 0; break; }                                 \
        ew_gradient_finish(&scratch, buf, target, 0, 0, x);                                \
    }

static inline void ew_gradient_block(const int64_t *row_start, const uint32_t *threshold,
                                     const int32_t *primary, const int32_t *alias,
                                     const uint8_t *is_target, int64_t n_states,
                                     int64_t n_targets, uint64_t seed_key, int64_t first,
                                     int64_t last, int64_t max_steps, int64_t buffer_steps,
                                     uint64_t *stats, uint64_t *slot_sums,
                                     uint64_t *censored_visits, uint64_t *rollout_count,
                                     int32_t *touched, uint32_t *buffers) {
    ew_gradient_scratch scratch = {row_start, threshold, primary, alias, max_steps, buffer_steps,
                                   stats, slot_sums, censored_visits, rollout_count, touched};
    int64_t lane_steps = buffer_steps < max_steps ? buffer_steps : max_steps;
    int64_t next_rollout = first;
    int live = 0;
    int32_t s0 = -1, s1 = -1, s2 = -1, s3 = -1;
    int64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    uint64_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
    const uint8_t *g0 = is_target, *g1 = is_target, *g2 = is_target, *g3 = is_target;
    uint32_t *b0 = buffers, *b1 = b0 + buffer_steps, *b2 = b1 + buffer_steps, *b3 = b2 + buffer_steps;
    EW_GRADIENT_LANE_START(s0, t0, x0, g0, b0) live += s0 >= 0;
    EW_GRADIENT_LANE_START(s1, t1, x1, g1, b1) live += s1 >= 0;
    EW_GRADIENT_LANE_START(s2, t2, x2, g2, b2) live += s2 >= 0;
    EW_GRADIENT_LANE_START(s3, t3, x3, g3, b3) live += s3 >= 0;
    while (live > 0) {
        EW_GRADIENT_LANE_STEP(s0, t0, x0, g0, b0)
        EW_GRADIENT_LANE_STEP(s1, t1, x1, g1, b1)
        EW_GRADIENT_LANE_STEP(s2, t2, x2, g2, b2)
        EW_GRADIENT_LANE_STEP(s3, t3, x3, g3, b3)
    }
}

#endif
