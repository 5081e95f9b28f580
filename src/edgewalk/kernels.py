"""The interface between the engine and its two compiled backends.

The C header ``native/edgewalk_kernel.h`` declares the kernel interface once (the indices of the
per-thread counters, the search codes, the stream constant); the Cython extension exports it as
``_native.ABI`` and the Numba mirror ``_numba_kernel`` states the same values, which this module
checks at import. ``parallel_call`` runs a kernel of either backend over a range of rollouts on a
given number of threads; both backends take the same arrays in the same order.
"""

from __future__ import annotations

import os
from typing import Callable

import numba

from . import _native, _numba_kernel, checks

ABI: dict[str, int] = dict(_native.ABI)
if ABI != _numba_kernel.ABI:
    differing = sorted(k for k in ABI.keys() | _numba_kernel.ABI.keys()
                       if ABI.get(k) != _numba_kernel.ABI.get(k))
    raise ImportError(f"edgewalk: the Numba kernel and native/edgewalk_kernel.h disagree on "
                      f"{', '.join(differing)}; rebuild the extension (pip install .)")

HITS, SUM, SUMSQ, CENSORED, STEPS = ABI["HITS"], ABI["SUM"], ABI["SUMSQ_LO"], ABI["CENSORED"], ABI["STEPS"]
DRAWS_SUM, DRAWS_SUMSQ, NSTATS = ABI["DRAWS_SUM"], ABI["DRAWS_SUMSQ_LO"], ABI["NSTATS"]
SEARCH_MODES = {"none": 0, "mask": ABI["SEARCH_MASK"], "reject": ABI["SEARCH_REJECT"]}
BACKENDS = ("numba", "cython")
GAMMA = ABI["GAMMA"]
MASK64 = (1 << 64) - 1


def mix64(z: int) -> int:
    """SplitMix64's finaliser, as the kernels compute it."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def seed_key(seed: int) -> int:
    """The 64-bit key from which every rollout's random stream is derived."""
    return mix64((seed + GAMMA) & MASK64)


def available_cores() -> int:
    """Cores this process may run on (respects cpusets such as SLURM's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def max_threads() -> int:
    """The most threads a run may use on either backend: Numba's thread pool size
    (NUMBA_NUM_THREADS, by default the machine's CPU count)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def check_threads(threads: int | None) -> int:
    """The thread count of a run: all cores this process may use by default, else a whole number
    in [1, max_threads()], the same rule for both backends."""
    if threads is None:
        return min(available_cores(), max_threads())
    return checks.whole("threads", threads, 1, max_threads())


def parallel_call(backend: str, threads: int, kernel: str, leading: tuple, trailing: tuple
                  ) -> Callable[[int, int, int], None]:
    """``call(first, last, block_size)`` runs rollouts first..last-1 through ``kernel`` (a
    function of that name in both backends) as ``kernel(*leading, first, last, block_size,
    *trailing)`` in blocks of block_size rollouts on ``threads`` threads of ``backend``; thread i
    accumulates into row i of the per-thread arrays."""
    if backend == "cython":
        function = getattr(_native, kernel)

        def call(first: int, last: int, block_size: int) -> None:
            function(*leading, first, last, block_size, *trailing, threads)

        return call
    function = getattr(_numba_kernel, kernel)

    def call(first: int, last: int, block_size: int) -> None:
        numba.set_num_threads(threads)
        with numba.parallel_chunksize(1):
            function(*leading, first, last, block_size, *trailing)

    return call
