"""The reference point for throughput: a plain Numba loop with ``np.random``.

Straightforward code, no tricks: one rollout at a time from state 0, one ``np.random.random()``
per step and a linear scan over the cumulative probabilities of the current CSR row.
"""

from __future__ import annotations

import numba
import numpy as np

from edgewalk.policy import Policy


def row_cumulative(policy: Policy) -> np.ndarray:
    """Cumulative probabilities within each CSR row, aligned with ``graph.next_state``."""
    g = policy.graph
    out = np.empty_like(policy.probabilities, dtype=np.float64)
    for s in range(g.n_states):
        lo, hi = g.row_start[s], g.row_start[s + 1]
        out[lo:hi] = np.cumsum(policy.probabilities[lo:hi])
    return out


@numba.njit(nogil=True)
def plain_rollouts(row_start: np.ndarray, next_state: np.ndarray, cumulative: np.ndarray,
                   is_target: np.ndarray, rollouts: int, seed: int) -> int:
    """Run ``rollouts`` rollouts from state 0 until a target state is entered; return the total
    number of transitions made."""
    np.random.seed(seed)
    total = 0
    for _ in range(rollouts):
        s = 0
        while not is_target[s]:
            u = np.random.random()
            k = row_start[s]
            last = row_start[s + 1] - 1
            while k < last and u >= cumulative[k]:  # falls back to the last entry on round-off
                k += 1
            s = next_state[k]
            total += 1
    return total


class Baseline:
    """The plain loop bound to one policy and target; ``run(rollouts)`` returns total steps."""

    def __init__(self, policy: Policy, target: int, seed: int = 0) -> None:
        g = policy.graph
        self.args = (g.row_start, g.next_state, row_cumulative(policy),
                     g.target_states(target).astype(np.uint8))
        self.seed = seed
        self.run(1)  # compile before anything is timed

    def run(self, rollouts: int) -> int:
        return int(plain_rollouts(*self.args, rollouts, self.seed))
