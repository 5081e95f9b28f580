/* The no-revisit search wrapper (docs/model.md section 6) around the policy and random streams of
 * edgewalk_kernel.h, mirrored by search_block in src/edgewalk/_numba_kernel.py.
 *
 * The wrapper never enters a state entered before in the rollout (start included); from a state
 * with no unvisited next state of positive weight it pops back along the path stack. Every
 * accepted move and every pop is one step.
 *   mask:   one draw picks among the unvisited next states in proportion to weight[k]:
 *           pick = ((z >> 32) * open) >> 32, then the first entry (in row order) whose running
 *           open weight exceeds it.
 *   reject: draws from the full policy (the alias step) until an unvisited state comes up; each
 *           draw counts as a policy draw. When the state has no unvisited next state of positive
 *           weight the wrapper pops without drawing.
 * A rollout that pops past the start (target unreachable) or reaches max_steps is censored.
 *
 * Positions. In an edge-state chain the next states of a state are all the states leaving its
 * head, so the states can be numbered (positions, built by edgewalk.kernels.search_tables) such
 * that every row's next states are consecutive, in row order: the next states of the state at
 * position p are positions lo(p) .. lo(p) + degree - 1. The visited set is a bitset over
 * positions, so a row's visited pattern is a bit field (ew_visited_field) and the wrapper never
 * looks up its next states one by one. Per position, four words (ew_search_state): the state's
 * row word (edgewalk_kernel.h: its alias columns, 0 for a target), lo, the index of the row's
 * first positive-weight mask (one 64-bit mask per 64 entries: bit j for entry j of positive
 * weight), and unused. The alias columns' state words hold positions.
 *
 * Lanes: EW_LANES rollouts are interleaved, each with its own visited set and path stack. */
#ifndef EDGEWALK_SEARCH_H
#define EDGEWALK_SEARCH_H

#include "edgewalk_kernel.h"

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline int ew_lowest_bit(uint64_t v) { unsigned long i; _BitScanForward64(&i, v); return (int)i; }
#else
static inline int ew_lowest_bit(uint64_t v) { return __builtin_ctzll(v); }
#endif

typedef struct {
    uint64_t row, lo, masks, unused;
} ew_search_state;

/* A lane's state, one row of EW_LANES words each in the lanes scratch: random counter, position
 * on top of the path stack, steps, policy draws, stack depth. Rows of at most EW_SEARCH_NARROW
 * entries (the weights are padded with as many zeros) take the mask step without a branch that
 * depends on the visited set; wider rows take it entry by entry. */
enum { EW_SEARCH_NARROW = 8 };
enum { EW_SEARCH_X, EW_SEARCH_TOP, EW_SEARCH_T, EW_SEARCH_DRAWS, EW_SEARCH_DEPTH,
       EW_SEARCH_LANE_WORDS };

typedef struct {
    const ew_search_state *states;   /* per position */
    const uint64_t *positive;        /* positive-weight masks */
    const ew_alias_column *columns;  /* state words are positions */
    const uint32_t *weight;          /* per alias column (= CSR entry) */
    uint64_t start;                  /* the start state's position */
    int64_t mode;
    uint64_t seed_key;
    int64_t max_steps, bin_width;
    int64_t *hist;
    uint64_t *stats;
    uint64_t *visited;   /* per thread and lane: n_words + 1 words */
    uint64_t *stack;     /* per thread and lane: n_states + 1 positions */
    uint64_t *open;      /* per thread and lane: max_degree running open weights */
    uint64_t *entry;     /* per thread and lane: max_degree entry numbers */
    uint64_t *lanes;     /* per thread: EW_SEARCH_LANE_WORDS rows of EW_LANES words */
    int64_t hist_stride, stats_stride, n_words, stack_size, max_degree;
} ew_search_args;

/* Bits first .. first + 63 of a bitset (one word of padding past its end is read). */
static inline uint64_t ew_visited_field(const uint64_t *visited, uint64_t first) {
    uint64_t word = first >> 6, shift = first & 63;
    uint64_t low = visited[word] >> shift;
    return shift ? low | visited[word + 1] << (64 - shift) : low;
}

static inline int ew_is_visited(const uint64_t *visited, uint64_t p) {
    return (int)((visited[p >> 6] >> (p & 63)) & 1);
}

/* The masks of the unvisited positive-weight next states of state st, 64 entries at a time:
 * whether any is left. */
static inline int ew_any_open(const ew_search_args *a, const ew_search_state *st,
                              const uint64_t *visited) {
    uint64_t degree = st->row >> 32;
    for (uint64_t c = 0; 64 * c < degree; c++)
        if (~ew_visited_field(visited, st->lo + 64 * c) & a->positive[st->masks + c]) return 1;
    return 0;
}

/* The unvisited positive-weight entries of state st's row in row order, with their running open
 * weights (open[i] after entry[i]); returns their number. */
static inline int64_t ew_open_entries(const ew_search_args *a, const ew_search_state *st,
                                      const uint64_t *visited, uint64_t *open, uint64_t *entry) {
    uint64_t base = st->row & EW_LOW32, degree = st->row >> 32, total = 0;
    int64_t n = 0;
    for (uint64_t c = 0; 64 * c < degree; c++) {
        uint64_t field = ~ew_visited_field(visited, st->lo + 64 * c) & a->positive[st->masks + c];
        while (field) {
            uint64_t j = 64 * c + (uint64_t)ew_lowest_bit(field);
            total += a->weight[base + j];
            open[n] = total;
            entry[n++] = j;
            field &= field - 1;
        }
    }
    return n;
}

/* The position drawn with z from the alias columns of row word `row`. */
static inline uint64_t ew_draw_position(const ew_alias_column *columns, uint64_t row, uint64_t z) {
    const ew_alias_column *c = ew_draw(columns, row, z);
    return (c->states >> (32 * (uint64_t)!ew_takes_primary(c, z))) & EW_LOW32;
}

static void ew_search_block(const void *args, int thread, ew_rollouts *q) {
    const ew_search_args *a = (const ew_search_args *)args;
    int64_t *hist = a->hist + thread * a->hist_stride;
    uint64_t *stats = a->stats + thread * a->stats_stride;
    const ew_search_state *states = a->states;
    if (states[a->start].row == 0 || a->max_steps == 0) {
        while (ew_take_rollout(q) >= 0) {
            if (states[a->start].row == 0) ew_record_hit(0, a->bin_width, hist, stats);
            else ew_record_censored(0, stats);
        }
        return;
    }
    const int64_t lane_words = a->n_words + 1;
    uint64_t *visited = a->visited + (int64_t)thread * EW_LANES * lane_words;
    uint64_t *stack = a->stack + (int64_t)thread * EW_LANES * a->stack_size;
    uint64_t *open = a->open + (int64_t)thread * EW_LANES * a->max_degree;
    uint64_t *entry = a->entry + (int64_t)thread * EW_LANES * a->max_degree;
    uint64_t *lane = a->lanes + (int64_t)thread * EW_SEARCH_LANE_WORDS * EW_LANES;
    uint64_t *x = lane + EW_SEARCH_X * EW_LANES, *top = lane + EW_SEARCH_TOP * EW_LANES;
    uint64_t *t = lane + EW_SEARCH_T * EW_LANES, *draws = lane + EW_SEARCH_DRAWS * EW_LANES;
    uint64_t *depth = lane + EW_SEARCH_DEPTH * EW_LANES;
    unsigned idle = 0;
    int64_t live = 0;
    for (int i = 0; i < EW_LANES; i++) {
        int64_t r = ew_take_rollout(q);
        if (r >= 0) {
            x[i] = ew_rollout_key(a->seed_key, r);
            live++;
        } else {
            x[i] = 0;
            idle |= 1u << i;
        }
        uint64_t *v = visited + i * lane_words;
        for (int64_t w = 0; w < lane_words; w++) v[w] = 0;
        v[a->start >> 6] |= 1ULL << (a->start & 63);
        stack[i * a->stack_size] = top[i] = a->start;
        depth[i] = 1;
        t[i] = draws[i] = 0;
    }
    while (live > 0) {
        for (int i = 0; i < EW_LANES; i++) {
            if ((idle >> i) & 1) continue;
            uint64_t *v = visited + i * lane_words, *path = stack + i * a->stack_size;
            uint64_t *lane_open = open + i * a->max_degree;
            const ew_search_state *st = &states[top[i]];
            /* the draw a move would take, computed before knowing whether there is a move,
             * off the chain of loads that leads from one step to the next */
            uint64_t chosen = 0, moved = 0, z = ew_mix64(x[i] + EW_GAMMA);
            t[i]++;
            if (a->mode == EW_SEARCH_MASK && (st->row >> 32) <= EW_SEARCH_NARROW) {
                const uint32_t *w = a->weight + (st->row & EW_LOW32);
                uint64_t field = ~ew_visited_field(v, st->lo) & a->positive[st->masks], total = 0;
                uint64_t open[EW_SEARCH_NARROW];
                for (int j = 0; j < EW_SEARCH_NARROW; j++) {
                    total += w[j] & (0 - ((field >> j) & 1));
                    open[j] = total;
                }
                moved = total != 0;
                uint64_t pick = ((z >> 32) * total) >> 32, k = 0;
                x[i] += EW_GAMMA & (0 - moved);
                draws[i] += moved;
                for (int j = 0; j < EW_SEARCH_NARROW; j++) k += open[j] <= pick;
                chosen = st->lo + k;
            } else if (a->mode == EW_SEARCH_MASK) {
                uint64_t *lane_entry = entry + i * a->max_degree;
                int64_t n = ew_open_entries(a, st, v, lane_open, lane_entry);
                if (n > 0) {
                    x[i] += EW_GAMMA;
                    draws[i]++;
                    uint64_t pick = ((z >> 32) * lane_open[n - 1]) >> 32;
                    int64_t k = 0;
                    for (int64_t q = 0; q < n; q++) k += lane_open[q] <= pick;
                    chosen = st->lo + lane_entry[k];
                    moved = 1;
                }
            } else {
                chosen = ew_draw_position(a->columns, st->row, z);
                moved = !ew_is_visited(v, chosen) || ew_any_open(a, st, v);
                if (moved) {
                    while (ew_is_visited(v, chosen)) { /* a rejected draw */
                        x[i] += EW_GAMMA;
                        draws[i]++;
                        chosen = ew_draw_position(a->columns, st->row, ew_mix64(x[i] + EW_GAMMA));
                    }
                    x[i] += EW_GAMMA;
                    draws[i]++;
                }
            }
            /* The move (push `chosen`) or the pop, without a branch: a pop marks and stores the
             * top again, above the stack, and goes back to the state below it. */
            uint64_t c = moved ? chosen : top[i], d = depth[i];
            v[c >> 6] |= 1ULL << (c & 63);
            path[d] = c;
            d = d + 2 * moved - 1;
            depth[i] = d;
            uint64_t below = path[d - (d != 0)];
            top[i] = moved ? c : below;
            int hit = states[top[i]].row == 0; /* a state on the stack below is no target */
            int ended = hit | (d == 0) | (t[i] == (uint64_t)a->max_steps);
            if (ended) {
                if (hit) {
                    ew_record_hit((int64_t)t[i], a->bin_width, hist, stats);
                    ew_add_moments(draws[i], stats, EW_DRAWS_SUM);
                } else {
                    ew_record_censored((int64_t)t[i], stats);
                }
                int64_t r = ew_take_rollout(q);
                if (r >= 0) {
                    x[i] = ew_rollout_key(a->seed_key, r);
                    for (int64_t w = 0; w < lane_words; w++) v[w] = 0;
                    v[a->start >> 6] |= 1ULL << (a->start & 63);
                    path[0] = top[i] = a->start;
                    depth[i] = 1;
                    t[i] = draws[i] = 0;
                } else {
                    idle |= 1u << i;
                    live--;
                }
            }
        }
    }
}

#endif
