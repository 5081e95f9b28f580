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
        int64_t base = row_start[s];                                                       \
        uint64_t degree = (uint64_t)(row_start[s + 1] - base);                             \
        int64_t k = base + (int64_t)(((z >> 32) * degree) >> 32);                          \
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
                uint64_t degree = (uint64_t)(hi - lo);
                do {
                    x += EW_GAMMA;
                    uint64_t z = ew_mix64(x);
                    int64_t k = lo + (int64_t)(((z >> 32) * degree) >> 32);
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

/* Policy-gradient statistics, without storing trajectories. Rollout r aims at the target of row
 * r % n_targets of is_target and draws exactly as in ew_run_block (same stream, same alias step),
 * one rollout at a time; primary_entry/alias_entry name the CSR entry (state, move) drawn. For
 * every move k taken at step t (1-based) of a rollout of length T it adds
 *   visits[k] += 1, step_sum[k] += t, length_sum[k] += T, hit_visits[k] += 1 if the rollout hit,
 * so that, with reward -beta per step and 1 for a hit, the return-to-go summed over the visits of
 * k is hit_visits[k] - beta * (length_sum[k] - step_sum[k] + visits[k]). Per-thread scratch:
 * rollout_count (zero between rollouts) and touched (the moves of the current rollout), one entry
 * per transition each. stats gets hits, censored, steps and the hitting-time moments. */
static inline void ew_gradient_block(const int64_t *row_start, const uint32_t *threshold,
                                     const int32_t *primary, const int32_t *alias,
                                     const int32_t *primary_entry, const int32_t *alias_entry,
                                     const uint8_t *is_target,
                                     int64_t n_states, int64_t n_targets, uint64_t seed_key,
                                     int64_t first, int64_t last, int64_t max_steps,
                                     uint64_t *stats, uint64_t *visits, uint64_t *hit_visits,
                                     uint64_t *step_sum, uint64_t *length_sum,
                                     uint64_t *rollout_count, int64_t *touched) {
    for (int64_t r = first; r < last; r++) {
        const uint8_t *target = is_target + (r % n_targets) * n_states;
        uint64_t x = ew_rollout_key(seed_key, r);
        int64_t t = 0, n_touched = 0;
        int32_t s = 0;
        int hit = target[0];
        while (!hit && t < max_steps) {
            x += EW_GAMMA;
            uint64_t z = ew_mix64(x);
            int64_t base = row_start[s];
            uint64_t degree = (uint64_t)(row_start[s + 1] - base);
            int64_t k = base + (int64_t)(((z >> 32) * degree) >> 32);
            int use_primary = (uint32_t)z <= threshold[k];
            int32_t move = use_primary ? primary_entry[k] : alias_entry[k];
            s = use_primary ? primary[k] : alias[k];
            t++;
            if (rollout_count[move]++ == 0) touched[n_touched++] = move;
            step_sum[move] += (uint64_t)t;
            hit = target[s];
        }
        for (int64_t i = 0; i < n_touched; i++) {
            int64_t move = touched[i];
            uint64_t count = rollout_count[move];
            visits[move] += count;
            length_sum[move] += count * (uint64_t)t;
            if (hit) hit_visits[move] += count;
            rollout_count[move] = 0;
        }
        if (hit) {
            stats[EW_HITS] += 1;
            ew_add_moments((uint64_t)t, stats, EW_SUM);
        } else {
            stats[EW_CENSORED] += 1;
        }
        stats[EW_STEPS] += (uint64_t)t;
    }
}

#endif
