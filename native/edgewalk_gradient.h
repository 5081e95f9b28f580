/* Policy-gradient statistics without storing trajectories, on the random streams of
 * edgewalk_kernel.h; mirrored by gradient_block in src/edgewalk/_numba_kernel.py.
 *
 * Rollout r aims at target r % n_targets and draws exactly as ew_plain_block does (same stream,
 * same alias step). The tables are laid out (edgewalk.kernels.gradient_tables) so that the
 * states of each target node have consecutive rows: target g's states are exactly those whose
 * row base lies in [targets[2g], targets[2g] + targets[2g + 1]), and a rollout aiming at g ends on
 * entering one, a test of the row word a step loads anyway. Statistics are kept per alias slot:
 * slot 2k is column k's primary, slot 2k + 1 its alias (edgewalk.engine maps slots to CSR
 * entries). For every slot taken at step t (1-based) of a rollout of length T:
 *   slot_sums[2 * slot] += 1 (visits),  slot_sums[2 * slot + 1] += T - t + 1 (steps remaining,
 *   this one included),  censored_visits[slot] += 1 if the rollout did not hit.
 * EW_GRADIENT_LANES rollouts are interleaved as in ew_plain_block; each lane records the slots it
 * takes in its buffer (buffer_steps entries) and folds them in when its rollout ends, T known:
 * with one addition a step into packed[slot], visits << 40 | steps remaining, on graphs of at
 * most EW_GRADIENT_PACK_SLOTS slots (else straight into the sums). The stats words
 * EW_GRADIENT_PACKED_STEPS / _REMAINING bound what packed holds since it was last emptied into the
 * sums, which happens before a fold could overflow a field (visits < 2**24, remaining < 2**40);
 * the caller adds what is left in packed at the end. A rollout that outgrows its buffer is
 * finished by ew_gradient_finish alone, a buffer at a time, with per-rollout counts
 * (rollout_count, zero between rollouts, and touched, its slots). Per-thread scratch: buffers
 * (EW_GRADIENT_LANES * buffer_steps), packed, rollout_count and touched (one per slot). Sums wrap
 * modulo 2**64 in between; the totals are exact. */
#ifndef EDGEWALK_GRADIENT_H
#define EDGEWALK_GRADIENT_H

#include "edgewalk_kernel.h"

/* Rollouts a gradient block interleaves: fewer than the plain kernel's, since each lane also
 * keeps its buffer pointer and target range (paper graph, pretrained: 4, 6 and 8 lanes took
 * 3.47, 3.18 and 3.42 ns a step; four leave the table loads' latency exposed, eight spill). */
enum { EW_GRADIENT_LANES = 6 };
enum { EW_GRADIENT_PACKED_STEPS = EW_NSTATS, EW_GRADIENT_PACKED_REMAINING = EW_NSTATS + 1,
       EW_GRADIENT_STATS = EW_NSTATS + 2, EW_GRADIENT_PACKED_SHIFT = 40,
       EW_GRADIENT_PACK_SLOTS = 1 << 20, EW_GRADIENT_MAX_BUFFER = 1 << 20 };
#define EW_GRADIENT_FOR_LANES(STEP) STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5)

typedef struct {
    const ew_alias_column *columns; /* laid out by target (see above); no row word is 0; thread
                                       i reads copy i % column_copies, column_stride apart */
    int64_t column_copies, column_stride;
    const uint64_t *targets;        /* per target: first row base, number of bases */
    uint64_t start_row;
    int64_t n_targets;
    uint64_t seed_key;
    int64_t max_steps, buffer_steps;
    uint64_t *stats, *slot_sums, *packed, *censored_visits, *rollout_count;
    int32_t *touched;
    uint32_t *buffers;
    int64_t stats_stride, slots_stride, buffers_stride;
} ew_gradient_args;

/* The per-thread arrays of one thread, and its copy of the columns. */
typedef struct {
    const ew_alias_column *columns;
    uint64_t *stats, *slot_sums, *packed, *censored_visits, *rollout_count;
    int32_t *touched;
} ew_gradient_sums;

/* Whether row word `row` is a state of the target whose rows start at base `first` and number
 * `count` (unsigned wrap-around makes one comparison of both bounds). */
static inline int ew_in_target(uint64_t row, uint64_t first, uint64_t count) {
    return (uint32_t)row - (uint32_t)first < (uint32_t)count;
}

/* Finishes a rollout aiming at the target of rows [first, first + count) after t steps, now at
 * row word `row` with random counter x, whose slots are buf[0..t-1], and records it. */
static void ew_gradient_finish(const ew_gradient_args *a, const ew_gradient_sums *g, uint32_t *buf,
                               uint64_t first, uint64_t count, uint64_t row, int64_t t,
                               uint64_t x) {
    uint64_t *slot_sums = g->slot_sums;
    int hit = ew_in_target(row, first, count);
    if (hit || t == a->max_steps) {
        if (a->slots_stride <= EW_GRADIENT_PACK_SLOTS) {
            uint64_t *steps = g->stats + EW_GRADIENT_PACKED_STEPS;
            uint64_t *remaining = g->stats + EW_GRADIENT_PACKED_REMAINING;
            uint64_t triangle = (uint64_t)t * (uint64_t)(t + 1) / 2; /* the fold's remaining */
            if (*steps + (uint64_t)t >= 1ULL << (64 - EW_GRADIENT_PACKED_SHIFT)
                    || *remaining + triangle >= 1ULL << EW_GRADIENT_PACKED_SHIFT) {
                const uint64_t low = (1ULL << EW_GRADIENT_PACKED_SHIFT) - 1;
                for (int64_t s = 0; s < a->slots_stride; s++) {
                    slot_sums[2 * s] += g->packed[s] >> EW_GRADIENT_PACKED_SHIFT;
                    slot_sums[2 * s + 1] += g->packed[s] & low;
                    g->packed[s] = 0;
                }
                *steps = *remaining = 0;
            }
            *steps += (uint64_t)t;
            *remaining += triangle;
            uint64_t visit = (1ULL << EW_GRADIENT_PACKED_SHIFT) + (uint64_t)t;
            for (int64_t i = 0; i < t; i++) g->packed[buf[i]] += visit - (uint64_t)i;
        } else {
            for (int64_t i = 0; i < t; i++) {
                uint64_t *sums = slot_sums + 2 * (uint64_t)buf[i];
                sums[0] += 1;
                sums[1] += (uint64_t)(t - i);
            }
        }
        if (!hit)
            for (int64_t i = 0; i < t; i++) g->censored_visits[buf[i]] += 1;
    } else {
        /* steps remaining = (1 - step) now, plus T per visit once T is known */
        uint64_t *n_visits = g->rollout_count;
        int32_t *touched = g->touched;
        int64_t n_touched = 0, buffer_start = 0;
        for (;;) {
            for (int64_t i = 0; i < t - buffer_start; i++) {
                uint32_t slot = buf[i];
                uint64_t *sums = slot_sums + 2 * (uint64_t)slot;
                sums[0] += 1;
                sums[1] -= (uint64_t)(buffer_start + i);
                uint64_t n = n_visits[slot];
                n_visits[slot] = n + 1;
                touched[n_touched] = (int32_t)slot;
                n_touched += (n == 0);
            }
            if (hit || t == a->max_steps) break;
            buffer_start = t;
            int64_t limit = a->max_steps - t < a->buffer_steps ? a->max_steps : t + a->buffer_steps;
            do {
                x += EW_GAMMA;
                uint64_t z = ew_mix64(x);
                const ew_alias_column *c = ew_draw(g->columns, row, z);
                uint32_t took_alias = !ew_takes_primary(c, z);
                row = ew_next_row(c, z);
                buf[t - buffer_start] = (uint32_t)(2 * (c - g->columns)) + took_alias;
                t++;
                hit = ew_in_target(row, first, count);
            } while (!hit && t < limit);
        }
        for (int64_t i = 0; i < n_touched; i++) {
            uint32_t slot = (uint32_t)touched[i];
            slot_sums[2 * (uint64_t)slot + 1] += n_visits[slot] * (uint64_t)t;
            if (!hit) g->censored_visits[slot] += n_visits[slot];
            n_visits[slot] = 0;
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

/* A lane's rollout: row word, random counter, its target's rows and steps taken. */
typedef struct {
    uint64_t row, x, first, count;
    int64_t t;
} ew_gradient_lane;
/* The thread's progress: its rollouts, and its lanes that have one. */
typedef struct {
    ew_rollouts *rollouts;
    int64_t live;
    unsigned idle;
} ew_gradient_progress;

/* The lane's next rollout that takes a step; rollouts that take none (start on their
 * target, or max_steps = 0) are recorded on the way. Marks the lane idle if none is left (it then
 * walks on aiming at no rows). */
static ew_gradient_lane ew_gradient_start(const ew_gradient_args *a, const ew_gradient_sums *g,
                                          int i, uint32_t *buf, ew_gradient_progress *p) {
    ew_gradient_lane lane = {a->start_row, 0, 0, 0, 0};
    for (int64_t r; (r = ew_take_rollout(p->rollouts)) >= 0;) {
        const uint64_t *target = a->targets + 2 * (r % a->n_targets);
        lane.first = target[0];
        lane.count = target[1];
        lane.x = ew_rollout_key(a->seed_key, r);
        if (!ew_in_target(a->start_row, lane.first, lane.count) && a->max_steps > 0) return lane;
        ew_gradient_finish(a, g, buf, lane.first, lane.count, a->start_row, 0, lane.x);
    }
    lane.first = lane.count = 0;
    if (!((p->idle >> i) & 1)) {
        p->idle |= 1u << i;
        p->live--;
    }
    return lane;
}

/* Lane i's rollout ended (a hit, or its buffer is full): finishes it unless the lane is idle, and
 * starts the next. (Kept out of line: the lane step that calls it is spelled out once per lane.) */
static EW_NOINLINE ew_gradient_lane ew_gradient_end(const ew_gradient_args *a,
                                                    const ew_gradient_sums *g, int i,
                                                    uint32_t *buf, ew_gradient_lane lane,
                                                    ew_gradient_progress *p) {
    if (!((p->idle >> i) & 1))
        ew_gradient_finish(a, g, buf, lane.first, lane.count, lane.row, lane.t, lane.x);
    return ew_gradient_start(a, g, i, buf, p);
}

static void ew_gradient_block(const void *args, int thread, ew_rollouts *q) {
    const ew_gradient_args *a = (const ew_gradient_args *)args;
    const ew_alias_column *columns = a->columns + (thread % a->column_copies) * a->column_stride;
    ew_gradient_sums g = {columns, a->stats + thread * a->stats_stride,
                          a->slot_sums + 2 * thread * a->slots_stride,
                          a->packed + thread * a->slots_stride,
                          a->censored_visits + thread * a->slots_stride,
                          a->rollout_count + thread * a->slots_stride,
                          a->touched + thread * a->slots_stride};
    const int64_t lane_steps = a->buffer_steps < a->max_steps ? a->buffer_steps : a->max_steps;
    ew_gradient_progress p = {q, EW_GRADIENT_LANES, 0};
    /* Every target's rows come first (gradient_tables): a row base below any_target is a state of
     * some target, a test against one value for all lanes; only then is the lane's own target
     * tested (on the path-star the other leaves, a few times a rollout). */
    uint32_t any_target = 0;
    for (int64_t target = 0; target < a->n_targets; target++) {
        uint64_t end = a->targets[2 * target] + a->targets[2 * target + 1];
        any_target = end > any_target ? (uint32_t)end : any_target;
    }
    /* Lane i's state in scalars (row_i, x_i, at_i: its next free buffer entry), which compilers
     * keep in registers; its target's rows and its buffer are only read at a rollout's end. Every
     * lane takes one step a round, so a full buffer is tested once a round against the earliest
     * lane's deadline, as ew_plain_block tests max_steps. */
#define EW_GRADIENT_DECLARE(i)                                                                 \
    uint64_t row_##i, x_##i, z_##i, first_##i, count_##i;                                      \
    uint32_t *buf_##i = a->buffers + thread * a->buffers_stride + i * a->buffer_steps;         \
    uint32_t *at_##i = buf_##i;                                                                \
    {                                                                                          \
        ew_gradient_lane lane = ew_gradient_start(a, &g, i, buf_##i, &p);                      \
        row_##i = lane.row; x_##i = lane.x; first_##i = lane.first; count_##i = lane.count;    \
    }
#define EW_GRADIENT_END(i)                                                                     \
    {                                                                                          \
        ew_gradient_lane lane = {row_##i, x_##i, first_##i, count_##i, at_##i - buf_##i};      \
        lane = ew_gradient_end(a, &g, i, buf_##i, lane, &p);                                   \
        row_##i = lane.row; x_##i = lane.x; first_##i = lane.first; count_##i = lane.count;    \
        at_##i = buf_##i;                                                                      \
    }
#define EW_GRADIENT_DRAW(i) x_##i += EW_GAMMA; z_##i = ew_mix64(x_##i);
#define EW_GRADIENT_STEP(i)                                                                    \
    {                                                                                          \
        uint64_t k = ew_column_index(row_##i, z_##i);                                          \
        uint32_t took_alias = !ew_takes_primary(columns + k, z_##i);                           \
        row_##i = ew_next_row(columns + k, z_##i);                                             \
        *at_##i++ = (uint32_t)(2 * k) + took_alias;                                            \
        if (EW_UNLIKELY((uint32_t)row_##i < any_target)                                        \
            && ew_in_target(row_##i, first_##i, count_##i)) {                                  \
            EW_GRADIENT_END(i)                                                                 \
            restarted = 1;                                                                     \
        }                                                                                      \
    }
#define EW_GRADIENT_IF_FULL(i) if (at_##i - buf_##i == lane_steps) EW_GRADIENT_END(i)
#define EW_GRADIENT_ROOM(i) room = at_##i - buf_##i > room ? at_##i - buf_##i : room;
    EW_GRADIENT_FOR_LANES(EW_GRADIENT_DECLARE)
    int64_t n = 0, deadline = lane_steps;
    while (p.live > 0) {
        n++;
        EW_GRADIENT_FOR_LANES(EW_GRADIENT_DRAW)
        int restarted = 0;
        EW_GRADIENT_FOR_LANES(EW_GRADIENT_STEP)
        if (EW_UNLIKELY(restarted | (n == deadline))) {
            EW_GRADIENT_FOR_LANES(EW_GRADIENT_IF_FULL)
            int64_t room = 0; /* the most steps any lane has buffered */
            EW_GRADIENT_FOR_LANES(EW_GRADIENT_ROOM)
            deadline = n + lane_steps - room;
        }
    }
}

#endif
