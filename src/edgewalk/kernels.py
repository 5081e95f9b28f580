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
import time
from typing import Callable

import numba
import numpy as np

from . import _native, _numba_kernel, _numba_leap, checks
from .alias import AliasTables
from .errors import InputError, SizeError

ABI: dict[str, int] = dict(_native.ABI)
if ABI != _numba_kernel.ABI:
    differing = sorted(k for k in ABI.keys() | _numba_kernel.ABI.keys()
                       if ABI.get(k) != _numba_kernel.ABI.get(k))
    raise ImportError(f"edgewalk: the Numba kernel and native/edgewalk_kernel.h disagree on "
                      f"{', '.join(differing)}; rebuild the extension (pip install .)")

HITS, SUM, SUMSQ, CENSORED, STEPS = ABI["HITS"], ABI["SUM"], ABI["SUMSQ_LO"], ABI["CENSORED"], ABI["STEPS"]
DRAWS_SUM, DRAWS_SUMSQ, NSTATS = ABI["DRAWS_SUM"], ABI["DRAWS_SUMSQ_LO"], ABI["NSTATS"]
LANES, SEARCH_LANE_WORDS, SEARCH_NARROW = ABI["LANES"], ABI["SEARCH_LANE_WORDS"], ABI["SEARCH_NARROW"]
GRADIENT_LANES, GRADIENT_PACKED_SHIFT = ABI["GRADIENT_LANES"], ABI["GRADIENT_PACKED_SHIFT"]
SEARCH_MODES = {"none": 0, "mask": ABI["SEARCH_MASK"], "reject": ABI["SEARCH_REJECT"]}
BACKENDS = ("numba", "cython")
# One parallel kernel call does about this much work at the planning rate: it bounds how long a
# run takes to notice an interrupt (signals are handled between calls) and the progress interval.
CHUNK_SECONDS = 0.25
# The Numba module holding each kernel's block function <kernel>_block.
_NUMBA_MODULES = {"plain": _numba_kernel, "search": _numba_kernel, "gradient": _numba_kernel,
                  "leap": _numba_leap}
GAMMA = ABI["GAMMA"]
MASK64 = (1 << 64) - 1
# Per-thread counter rows are padded to this many words, so that the counters two threads write are
# more than a cache line apart whatever the array's alignment.
STATS_STRIDE = NSTATS + 16


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


def _require_addressable(tables: AliasTables) -> None:
    """SizeError unless the kernels' 32-bit column numbers reach every transition."""
    if len(tables.next_state) >= 2**32:
        raise SizeError(f"graph: {len(tables.next_state)} transitions; the kernels address at "
                        f"most 2**32 - 1")


def row_words(tables: AliasTables, ends: np.ndarray | None = None) -> np.ndarray:
    """Per state, the row word of its alias columns, base | degree << 32 (edgewalk_kernel.h), or
    0 where ``ends`` (a boolean mask of states) is set: entering such a state ends a rollout."""
    _require_addressable(tables)
    degree = np.diff(tables.row_start)
    dead_ends = np.flatnonzero((degree == 0) & (True if ends is None else ~ends))
    if dead_ends.size:
        raise InputError(f"graph: state {dead_ends[0]} has no next state")
    words = tables.row_start[:-1].astype(np.uint64) | degree.astype(np.uint64) << np.uint64(32)
    if ends is not None:
        words[ends] = 0
    return words


def cache_aligned(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised uint64 array starting on a 64-byte boundary: a 32-byte alias column then
    never straddles two cache lines (numpy aligns to 16 bytes, which made one column in two
    cost two lines, and the kernels' speed depend on where the allocator put the table)."""
    size = int(np.prod(shape))
    raw = np.empty(size + 8, np.uint64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + size].reshape(shape)


# Alias columns of at most this many bytes get one copy per thread: two cores reading one copy
# of a table that their caches hold ran at 0.88x the speed of each reading its own (plain
# kernel, paper graph, pretrained: 5.0e8 against 5.7e8 steps/s a core).
COPY_COLUMNS_BYTES = 4 << 20


def _copies(table_bytes: int, threads: int) -> int:
    return threads if table_bytes <= COPY_COLUMNS_BYTES else 1


def per_thread_bytes(n_columns: int, threads: int) -> int:
    """The bytes :func:`per_thread` takes for n_columns alias columns on ``threads`` threads."""
    return 32 * n_columns * _copies(32 * n_columns, threads)


def per_thread(columns: np.ndarray, threads: int) -> np.ndarray:
    """The flat alias columns as (copies, words): one row per thread if they take at most
    COPY_COLUMNS_BYTES, else one row all threads share (thread i reads row i % copies); every
    row starts on a 64-byte boundary."""
    copies = _copies(columns.nbytes, threads)
    width = -(-len(columns) // 8) * 8
    out = cache_aligned((copies, width))
    out[:, :len(columns)] = columns
    out[:, len(columns):] = 0
    return out


def alias_columns(tables: AliasTables, rows: np.ndarray, numbering: np.ndarray | None = None
                  ) -> np.ndarray:
    """The ew_alias_column of every alias column k, four uint64 words each (a flat array, column
    k at 4k): the row words (from ``rows``, see row_words) of primary[k] and alias[k],
    threshold[k], and the two states as numbered by ``numbering`` (default: the states
    themselves), primary | alias << 32."""
    columns = cache_aligned((len(tables.threshold), 4))
    columns[:, 0] = rows[tables.primary]
    columns[:, 1] = rows[tables.alias]
    columns[:, 2] = tables.threshold
    primary, alias = ((tables.primary, tables.alias) if numbering is None
                      else (numbering[tables.primary], numbering[tables.alias]))
    columns[:, 3] = primary.astype(np.uint64) | alias.astype(np.uint64) << np.uint64(32)
    return columns.ravel()


def gradient_tables(tables: AliasTables, state_head: np.ndarray, targets: tuple[int, ...]
                    ) -> tuple[np.ndarray, np.ndarray, np.uint64, np.ndarray]:
    """The gradient kernel's tables (edgewalk_gradient.h): the alias columns with the rows of
    each target node's states consecutive (the states entering targets[0] first, in state order,
    then those of the next distinct target, then every other state), per target its first row
    base and number of bases, the start state's row word, and ``order``: column k of the layout
    is column order[k] of ``tables``."""
    _require_addressable(tables)
    degree = np.diff(tables.row_start)
    distinct = np.array(list(dict.fromkeys(targets)), np.int64)
    group_of_node = np.full(int(max(state_head.max(), distinct.max())) + 1, len(distinct), np.int64)
    group_of_node[distinct] = np.arange(len(distinct))
    group = group_of_node[state_head]
    states = np.argsort(group, kind="stable")
    lengths = degree[states]
    base = np.empty(len(degree), np.int64)
    base[states] = np.cumsum(lengths) - lengths
    rows = base.astype(np.uint64) | degree.astype(np.uint64) << np.uint64(32)
    offsets = np.arange(lengths.sum()) - np.repeat(base[states], lengths)
    order = np.repeat(tables.row_start[states], lengths) + offsets
    columns = alias_columns(tables, rows).reshape(-1, 4)
    columns[:] = columns[order]
    columns = columns.ravel()
    bases_of_group = np.bincount(group, weights=degree, minlength=len(distinct) + 1).astype(np.int64)
    first_of_group = np.cumsum(bases_of_group) - bases_of_group
    g = group_of_node[np.asarray(targets, np.int64)]
    target_rows = np.stack([first_of_group[g], bases_of_group[g]], axis=1).astype(np.uint64)
    return columns, target_rows, rows[0], order


def consecutive_numbering(tables: AliasTables) -> np.ndarray:
    """A numbering of the states (``position[s]``) in which the next states of every state are
    consecutive and in row order: row s is positions position[next_state[row_start[s]]] + 0, 1,
    ... It exists for every edge-state chain (the next states of a state are the states leaving
    its head, and two rows are the same or disjoint); states no row contains come last."""
    row_start, next_state = tables.row_start, tables.next_state
    n_states = len(row_start) - 1
    degree = np.diff(row_start)
    has_row = np.flatnonzero(degree > 0)
    _, first_of_row = np.unique(next_state[row_start[has_row]], return_index=True)
    representatives = np.sort(has_row[first_of_row])
    lengths = degree[representatives]
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    placed = next_state[np.repeat(row_start[representatives], lengths) + offsets]
    position = np.full(n_states, -1, np.int64)
    position[placed] = np.arange(len(placed))
    unplaced = np.flatnonzero(position < 0)
    position[unplaced] = len(placed) + np.arange(len(unplaced))
    rows = np.repeat(np.arange(n_states), degree)
    in_row = np.arange(len(next_state)) - np.repeat(row_start[:-1], degree)
    if (len(np.unique(placed)) != len(placed)
            or not np.array_equal(position[next_state],
                                  position[next_state[row_start[rows]]] + in_row)):
        raise InputError("graph: the search wrapper needs an edge-state chain (the next states "
                         "of every state are the states leaving its head)")
    return position


def search_tables(tables: AliasTables, ends: np.ndarray) -> tuple:
    """The search wrapper's tables (edgewalk_search.h): per position, four words (the state's row
    word, 0 where ``ends``; lo, the position of its first next state; the index of its first
    positive-weight mask; unused); the masks; the alias columns with positions for states; the
    weights padded with SEARCH_NARROW zeros; the start state's position; the size of the
    per-lane scratch rows (the largest degree, at least SEARCH_NARROW). Positions:
    consecutive_numbering."""
    position = consecutive_numbering(tables)
    rows = row_words(tables, ends)
    row_start = tables.row_start
    degree = np.diff(row_start)
    n_states = len(degree)
    chunks = (degree + 63) // 64
    first_mask = np.cumsum(chunks) - chunks
    states = cache_aligned((n_states, 4))
    states[:] = 0
    states[position, 0] = rows
    has_row = degree > 0
    states[position[has_row], 1] = position[tables.next_state[row_start[:-1][has_row]]]
    states[position, 2] = first_mask
    entry_state = np.repeat(np.arange(n_states), degree)
    in_row = np.arange(len(tables.next_state)) - row_start[entry_state]
    positive = np.zeros(max(1, int(chunks.sum())), np.uint64)
    taken = tables.weight > 0
    np.bitwise_or.at(positive, first_mask[entry_state[taken]] + in_row[taken] // 64,
                     np.uint64(1) << (in_row[taken] % 64).astype(np.uint64))
    columns = alias_columns(tables, rows, position)
    weight = np.concatenate((tables.weight, np.zeros(SEARCH_NARROW, np.uint32)))
    return (states.ravel(), positive, columns, weight, np.uint64(position[0]),
            max(SEARCH_NARROW, int(degree.max())))


def parallel_call(backend: str, threads: int, kernel: str, args: tuple
                  ) -> Callable[[int, int], None]:
    """``call(first, last)`` runs rollouts first..last-1 through ``kernel`` with the arrays
    ``args`` on ``threads`` threads of ``backend``, which take rollouts from one counter as their
    lanes need them; thread i accumulates into row i of the per-thread arrays. A kernel is
    ``_native.<kernel>`` (Cython, it runs the C driver ew_drive) and ``<kernel>_block`` in
    ``_numba_kernel`` or ``_numba_leap`` (its Numba block function, run by the Numba driver);
    both take the same ``args``."""
    if backend == "cython":
        function = getattr(_native, kernel)

        def call(first: int, last: int) -> None:
            function(args, first, last, threads)

        return call
    run = _numba_kernel.driver(getattr(_NUMBA_MODULES[kernel], kernel + "_block"), args)

    def call(first: int, last: int) -> None:
        numba.set_num_threads(threads)
        with numba.parallel_chunksize(1):
            run(first, last, threads)

    return call


def run_in_chunks(call: Callable[[int, int], None], threads: int, first_rollout: int,
                  rollouts: int, seconds_per_rollout: float,
                  on_chunk: Callable[[int], None] | None = None) -> tuple[float, float]:
    """Compile (or load) the kernel behind ``call`` (see :func:`parallel_call`), then run
    rollouts first_rollout .. first_rollout + rollouts - 1 in chunks of about CHUNK_SECONDS of
    work at ``seconds_per_rollout`` (one thread's planned cost of a rollout), calling
    ``on_chunk(rollouts done)`` after each. Returns the seconds spent running and the seconds
    spent compiling first. How rollouts are cut into chunks or shared among threads does not
    change a result."""
    compile_start = time.perf_counter()
    call(0, 0)  # compiles (or loads from cache) the Numba kernel; nothing is simulated
    compile_seconds = time.perf_counter() - compile_start
    chunk = int(max(threads * 1024, CHUNK_SECONDS * threads / max(seconds_per_rollout, 1e-12)))
    seconds = 0.0
    end = first_rollout + rollouts
    for first in range(first_rollout, end, chunk):
        last = min(first + chunk, end)
        start = time.perf_counter()
        call(first, last)
        seconds += time.perf_counter() - start
        if on_chunk is not None:
            on_chunk(last - first_rollout)
    return seconds, compile_seconds
