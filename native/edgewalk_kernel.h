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
#define EW_LANES 8

enum { EW_HITS = 0, EW_SUM = 1, EW_SUMSQ_LO = 2, EW_SUMSQ_HI = 3, EW_CENSORED = 4, EW_STEPS = 5, EW_NSTATS = 6 };

static inline uint64_t ew_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t ew_rollout_key(uint64_t seed_key, int64_t r) {
    return ew_mix64(seed_key + (uint64_t)(r + 1) * EW_GAMMA);
}

/* Adds hitting time t of one rollout that hit the target to the histogram and the moments. */
static inline void ew_record_hit(int64_t t, int64_t bin_width, int64_t *hist, uint64_t *stats) {
    uint64_t square = (uint64_t)t * (uint64_t)t;
    hist[t / bin_width] += 1;
    stats[EW_HITS] += 1;
    stats[EW_SUM] += (uint64_t)t;
    stats[EW_SUMSQ_LO] += square;
    stats[EW_SUMSQ_HI] += stats[EW_SUMSQ_LO] < square; /* carry */
    stats[EW_STEPS] += (uint64_t)t;
}

/* Runs rollouts first..last-1 from the start state 0 until a state with is_target set is entered
 * or max_steps transitions are made (censored), EW_LANES rollouts interleaved so that their
 * memory loads overlap. Requires bin_width * (number of bins) > max_steps. */
static inline void ew_run_block(const int64_t *row_start, const uint32_t *threshold,
                                const int32_t *primary, const int32_t *alias,
                                const uint8_t *is_target, uint64_t seed_key, int64_t first,
                                int64_t last, int64_t max_steps, int64_t bin_width,
                                int64_t *hist, uint64_t *stats) {
    int32_t state[EW_LANES];
    int64_t steps[EW_LANES];
    uint64_t rng[EW_LANES];
    int64_t next_rollout = first;
    int live = 0;

    if (is_target[0] || max_steps == 0) {
        for (int64_t r = first; r < last; r++) {
            if (is_target[0]) ew_record_hit(0, bin_width, hist, stats);
            else stats[EW_CENSORED] += 1;
        }
        return;
    }
    for (int lane = 0; lane < EW_LANES; lane++) {
        if (next_rollout < last) {
            state[lane] = 0;
            steps[lane] = 0;
            rng[lane] = ew_rollout_key(seed_key, next_rollout++);
            live++;
        } else {
            state[lane] = -1;
        }
    }
    while (live > 0) {
        for (int lane = 0; lane < EW_LANES; lane++) {
            int32_t s = state[lane];
            if (s < 0) continue;
            uint64_t x = rng[lane] + EW_GAMMA;
            rng[lane] = x;
            uint64_t z = ew_mix64(x);
            int64_t base = row_start[s];
            uint64_t degree = (uint64_t)(row_start[s + 1] - base);
            int64_t k = base + (int64_t)(((z >> 32) * degree) >> 32);
            int32_t take_primary = primary[k], take_alias = alias[k]; /* both loaded: a select, not a branch */
            s = ((uint32_t)z <= threshold[k]) ? take_primary : take_alias;
            int64_t t = steps[lane] + 1;
            steps[lane] = t;
            state[lane] = s;
            if (is_target[s] | (t == max_steps)) {
                if (is_target[s]) {
                    ew_record_hit(t, bin_width, hist, stats);
                } else {
                    stats[EW_CENSORED] += 1;
                    stats[EW_STEPS] += (uint64_t)t;
                }
                if (next_rollout < last) {
                    state[lane] = 0;
                    steps[lane] = 0;
                    rng[lane] = ew_rollout_key(seed_key, next_rollout++);
                } else {
                    state[lane] = -1;
                    live--;
                }
            }
        }
    }
}

#endif
