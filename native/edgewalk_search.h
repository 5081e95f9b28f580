/* The no-revisit search wrapper (docs/model.md section 6), on the random streams of
 * edgewalk_kernel.h. */
#ifndef EDGEWALK_SEARCH_H
#define EDGEWALK_SEARCH_H

#include "edgewalk_kernel.h"

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


typedef struct {
    const int64_t *row_start;
    const int32_t *next_state;
    const uint32_t *weight, *threshold;
    const int32_t *primary, *alias;
    const uint8_t *is_target;
    int64_t n_states;
    int mode;
    uint64_t seed_key;
    int64_t max_steps, bin_width;
    int64_t *hist;
    uint64_t *stats, *visited;
    int32_t *stack;
    int64_t hist_stride, stats_stride, visited_stride, stack_stride;
} ew_search_args;

static void ew_search(const void *args, int thread, int64_t first, int64_t last) {
    const ew_search_args *a = (const ew_search_args *)args;
    ew_search_block(a->row_start, a->next_state, a->weight, a->threshold, a->primary, a->alias,
                    a->is_target, a->n_states, a->mode, a->seed_key, first, last, a->max_steps,
                    a->bin_width, a->hist + thread * a->hist_stride,
                    a->stats + thread * a->stats_stride, a->visited + thread * a->visited_stride,
                    a->stack + thread * a->stack_stride);
}

#endif
