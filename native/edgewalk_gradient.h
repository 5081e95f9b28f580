/* Policy-gradient statistics without storing trajectories, on the random streams of
 * edgewalk_kernel.h; mirrored by gradient_block in src/edgewalk/_numba_kernel.py.
 *
 * Rollout r aims at target r % n_targets and draws exactly as ew_plain_block does (same stream,
 * same alias step). The alias columns' state words hold *labels* instead of states: a rollout
 * aiming at target g ends on entering a state whose label is targets[g] (edgewalk.engine labels
 * each state with its head node and each target with its node). Statistics are kept per alias
 * slot: slot 2k is column k's primary, slot 2k + 1 its alias (edgewalk.engine maps slots to CSR
 * entries). For every slot taken at step t (1-based) of a rollout of length T:
 *   slot_sums[2 * slot] += 1 (visits),  slot_sums[2 * slot + 1] += T - t + 1 (steps remaining,
 *   this one included),  censored_visits[slot] += 1 if the rollout did not hit.
 * EW_LANES rollouts are interleaved as in ew_plain_block; each lane records the slots it takes in
 * its buffer (buffer_steps entries) and folds them into the sums when its rollout ends, T known.
 * A rollout that outgrows its buffer is finished by ew_gradient_finish alone, a buffer at a time,
 * with per-rollout counts (rollout_count, zero between rollouts, and touched, its slots).
 * Per-thread scratch: buffers (EW_LANES * buffer_steps), rollout_count and touched (one per
 * slot). Sums wrap modulo 2**64 in between; the totals are exact. */
#ifndef EDGEWALK_GRADIENT_H
#define EDGEWALK_GRADIENT_H

#include "edgewalk_kernel.h"

typedef struct {
    const ew_alias_column *columns; /* state words: labels; no row word is 0 */
    const uint64_t *targets;        /* per target: its label */
    uint64_t start_row, start_label;
    int64_t n_targets;
    uint64_t seed_key;
    int64_t max_steps, buffer_steps;
    uint64_t *stats, *slot_sums, *censored_visits, *rollout_count;
    int32_t *touched;
    uint32_t *buffers;
    int64_t stats_stride, slots_stride, buffers_stride;
} ew_gradient_args;

/* The per-thread arrays of one thread. */
typedef struct {
    uint64_t *stats, *slot_sums, *censored_visits, *rollout_count;
    int32_t *touched;
} ew_gradient_sums;

/* Finishes a rollout aiming at `target` after t steps, now at row word `row` with label `label`
 * and random counter x, whose slots are buf[0..t-1], and records it. */
static void ew_gradient_finish(const ew_gradient_args *a, const ew_gradient_sums *g, uint32_t *buf,
                               uint64_t target, uint64_t row, uint64_t label, int64_t t,
                               uint64_t x) {
    uint64_t *slot_sums = g->slot_sums;
    int hit = label == target;
    if (hit || t == a->max_steps) {
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
            if (hit || t == a->max_steps) break;
            buffer_start = t;
            int64_t limit = a->max_steps - t < a->buffer_steps ? a->max_steps : t + a->buffer_steps;
            do {
                x += EW_GAMMA;
                uint64_t z = ew_mix64(x);
                const ew_alias_column *c = ew_draw(a->columns, row, z);
                uint32_t took_alias = !ew_takes_primary(c, z);
                row = took_alias ? c->alias_row : c->primary_row;
                label = took_alias ? c->states >> 32 : c->states & EW_LOW32;
                buf[t - buffer_start] = (uint32_t)(2 * (c - a->columns)) + took_alias;
                t++;
                hit = label == target;
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

/* A lane's rollout, and the block's progress. */
typedef struct {
    uint64_t row, x, target;
    int64_t t;
} ew_gradient_lane;
typedef struct {
    int64_t next_rollout, last, live;
    unsigned idle;
} ew_gradient_progress;

/* The lane's next rollout of the block that takes a step; rollouts that take none (start on their
 * target, or max_steps = 0) are recorded on the way. Marks the lane idle if none is left (it then
 * walks on aiming at no label). */
static ew_gradient_lane ew_gradient_start(const ew_gradient_args *a, const ew_gradient_sums *g,
                                          int i, uint32_t *buf, ew_gradient_progress *p) {
    ew_gradient_lane lane = {a->start_row, 0, ~(uint64_t)0, 0};
    while (p->next_rollout < p->last) {
        lane.target = a->targets[p->next_rollout % a->n_targets];
        lane.x = ew_rollout_key(a->seed_key, p->next_rollout++);
        if (a->start_label != lane.target && a->max_steps > 0) return lane;
        ew_gradient_finish(a, g, buf, lane.target, a->start_row, a->start_label, 0, lane.x);
    }
    lane.target = ~(uint64_t)0;
    if (!((p->idle >> i) & 1)) {
        p->idle |= 1u << i;
        p->live--;
    }
    return lane;
}

/* Lane i's rollout ended at label `label` (a hit, or its buffer is full): finishes it unless the
 * lane is idle, and starts the next. */
/* (Kept out of line: the lane step that calls it is spelled out once per lane.) */
static EW_NOINLINE ew_gradient_lane ew_gradient_end(const ew_gradient_args *a, const ew_gradient_sums *g, int i,
                                        uint32_t *buf, ew_gradient_lane lane, uint64_t label,
                                        ew_gradient_progress *p) {
    if (!((p->idle >> i) & 1))
        ew_gradient_finish(a, g, buf, lane.target, lane.row, label, lane.t, lane.x);
    return ew_gradient_start(a, g, i, buf, p);
}

static void ew_gradient_block(const void *args, int thread, int64_t first, int64_t last) {
    const ew_gradient_args *a = (const ew_gradient_args *)args;
    const ew_alias_column *columns = a->columns;
    ew_gradient_sums g = {a->stats + thread * a->stats_stride,
                          a->slot_sums + 2 * thread * a->slots_stride,
                          a->censored_visits + thread * a->slots_stride,
                          a->rollout_count + thread * a->slots_stride,
                          a->touched + thread * a->slots_stride};
    const int64_t lane_steps = a->buffer_steps < a->max_steps ? a->buffer_steps : a->max_steps;
    ew_gradient_progress p = {first, last, EW_LANES, 0};
    /* per lane: row word, random counter and the next free entry of its buffer in registers;
     * target, buffer and its end only compared with or read at a rollout's end */
    uint64_t row[EW_LANES], x[EW_LANES], z[EW_LANES], target[EW_LANES];
    uint32_t *buf[EW_LANES], *at[EW_LANES], *end[EW_LANES];
    for (int i = 0; i < EW_LANES; i++) {
        buf[i] = a->buffers + thread * a->buffers_stride + i * a->buffer_steps;
        end[i] = buf[i] + lane_steps;
        ew_gradient_lane lane = ew_gradient_start(a, &g, i, buf[i], &p);
        row[i] = lane.row; x[i] = lane.x; target[i] = lane.target; at[i] = buf[i];
    }
#define EW_GRADIENT_DRAW(i) x[i] += EW_GAMMA; z[i] = ew_mix64(x[i]);
#define EW_GRADIENT_STEP(i)                                                                \
    {                                                                                      \
        const ew_alias_column *c = ew_draw(columns, row[i], z[i]);                         \
        uint64_t took_alias = !ew_takes_primary(c, z[i]);                                  \
        row[i] = ew_next_row(c, z[i]);                                                     \
        uint64_t label = (c->states >> (32 * took_alias)) & EW_LOW32;                      \
        *at[i]++ = (uint32_t)(2 * (uint64_t)(c - columns) + took_alias);                   \
        if (EW_UNLIKELY((label == target[i]) | (at[i] == end[i]))) {                       \
            ew_gradient_lane lane = {row[i], x[i], target[i], at[i] - buf[i]};             \
            lane = ew_gradient_end(a, &g, i, buf[i], lane, label, &p);                     \
            row[i] = lane.row; x[i] = lane.x; target[i] = lane.target; at[i] = buf[i];     \
        }                                                                                  \
    }
    while (p.live > 0) {
        EW_FOR_LANES(EW_GRADIENT_DRAW)
        EW_FOR_LANES(EW_GRADIENT_STEP)
    }
}

#endif
