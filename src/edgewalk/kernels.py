"""The interface between the engine and its two compiled backends.

The C header ``native/edgewalk_kernel.h`` declares the kernel interface once (the indices of the
per-thread counters, the search codes, the stream constant, the lane count); the Cython extension
exports it as ``_native.ABI`` and the Numba mirror ``_numba_kernel`` states the same values,
which this module checks at import. ``parallel_call`` runs a kernel of either backend over a range
of rollouts on a given number of threads; both backends take the same tuple of arrays. The packed
tables the kernels read (row words and alias columns, see the header) are built here.
"""

from __future__ import annotations

import os
from typing import Callable

import numba
import numpy as np

from . import _native, _numba_kernel, checks
from .alias import AliasTables
from .errors import SizeError

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
# Per-thread counter rows are padded to this many words (two cache lines) so that no two threads
# write to one line.
STATS_STRIDE = 16


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


def row_words(tables: AliasTables, ends: np.ndarray | None = None) -> np.ndarray:
    """Per state, the row word of its alias columns, base | degree << 32 (edgewalk_kernel.h), or
    0 where ``ends`` (a boolean mask of states) is set: entering such a state ends a rollout."""
    if len(tables.next_state) >= 2**32:
        raise SizeError(f"graph: {len(tables.next_state)} transitions; the kernels address at "
                        f"most 2**32 - 1")
    base = tables.row_start[:-1].astype(np.uint64)
    words = base | np.diff(tables.row_start).astype(np.uint64) << np.uint64(32)
    if ends is not None:
        words[ends] = 0
    return words


def alias_columns(tables: AliasTables, rows: np.ndarray) -> np.ndarray:
    """The ew_alias_column of every alias column k, four uint64 words each (a flat array, column
    k at 4k): the row words (from ``rows``, see row_words) of primary[k] and alias[k],
    threshold[k], and primary[k] | alias[k] << 32."""
    columns = np.empty((len(tables.threshold), 4), np.uint64)
    columns[:, 0] = rows[tables.primary]
    columns[:, 1] = rows[tables.alias]
    columns[:, 2] = tables.threshold
    columns[:, 3] = (tables.primary.astype(np.uint64)
                     | tables.alias.astype(np.uint64) << np.uint64(32))
    return columns.ravel()


def parallel_call(backend: str, threads: int, kernel: str, args: tuple
                  ) -> Callable[[int, int, int], None]:
    """``call(first, last, block_size)`` runs rollouts first..last-1 through ``kernel`` with the
    arrays ``args`` in blocks of block_size rollouts on ``threads`` threads of ``backend``;
    thread i accumulates into row i of the per-thread arrays. A kernel is ``_native.<kernel>``
    (Cython, it runs the C block driver) and ``_numba_kernel.<kernel>_block`` (its Numba block
    function, run by the Numba driver); both take the same ``args``."""
    if backend == "cython":
        function = getattr(_native, kernel)

        def call(first: int, last: int, block_size: int) -> None:
            function(args, first, last, block_size, threads)

        return call
    run = _numba_kernel.driver(getattr(_numba_kernel, kernel + "_block"), args)

    def call(first: int, last: int, block_size: int) -> None:
        numba.set_num_threads(threads)
        with numba.parallel_chunksize(1):
            run(first, last, block_size)

    return call
