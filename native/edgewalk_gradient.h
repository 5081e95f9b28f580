/* Policy-gradient statistics on the random streams of edgewalk_kernel.h. */
#ifndef EDGEWALK_GRADIENT_H
#define EDGEWALK_GRADIENT_H

#include "edgewalk_kernel.h"

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


typedef struct {
    const int64_t *row_start;
    const uint32_t *threshold;
    const int32_t *primary, *alias;
    const uint8_t *is_target;
    int64_t n_states, n_targets;
    uint64_t seed_key;
    int64_t max_steps, buffer_steps;
    uint64_t *stats, *slot_sums, *censored_visits, *rollout_count;
    int32_t *touched;
    uint32_t *buffers;
    int64_t stats_stride, slots_stride, touched_stride, buffers_stride;
} ew_gradient_args;

static void ew_gradient(const void *args, int thread, int64_t first, int64_t last) {
    const ew_gradient_args *a = (const ew_gradient_args *)args;
    ew_gradient_block(a->row_start, a->threshold, a->primary, a->alias, a->is_target, a->n_states,
                      a->n_targets, a->seed_key, first, last, a->max_steps, a->buffer_steps,
                      a->stats + thread * a->stats_stride, a->slot_sums + 2 * thread * a->slots_stride,
                      a->censored_visits + thread * a->slots_stride,
                      a->rollout_count + thread * a->slots_stride,
                      a->touched + thread * a->touched_stride,
                      a->buffers + thread * a->buffers_stride);
}

#endif
