"""Running a sweep file: in one process (resumable), as one shard of N (SLURM job arrays) or on a
Dask cluster, and merging shards into the study file. Every route writes the same study file
as :func:`study.sweep` with the same parameters and ``threads=1``, bit for bit.

Files. ``edgewalk sweep FILE`` writes the study file ``output``; while it runs it keeps a
checkpoint ``<output stem>.partial.h5`` (rewritten atomically every ``checkpoint_seconds`` and on
an interrupt, removed at the end). ``--shard I/N`` writes ``<output stem>.shard-I-of-N.h5``
instead, rewritten the same way while it runs. Both are units files (:mod:`edgewalk.io.units`).

Resume. Rerunning a sweep keeps every unit already in its units file and, without ``--shard``,
every run already complete in its output file, and computes the rest. A stored result is kept
only if its recorded graph, policy, target, seed, max_steps, bins, search mode and rollout range
are exactly those the unit needs (so results from another configuration are never mixed in).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io import check_writable, same_file, write_study
from ..io.units import (UnitsHeader, append_units, parts_directory, read_header, remove_parts,
                        remove_stale_temporaries, stored_runs, stored_units, write_units)
from ..kernels import available_cores
from ..result import HittingTimes
from ..study import Study
from .config import RESULT_KEYS, SweepConfig, checkpoint_path, config_from_mapping, shard_path
from .units import Unit, assemble, compute, plan

DASK_CONNECT_SECONDS = 10
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


def local_cluster_shape(cores: int, threads: int | None) -> tuple[int, int]:
    """(workers, threads per simulate call) of ``--dask local``: each worker runs one task at a
    time on ``threads`` threads (default 1), and workers * threads <= cores."""
    per = max(1, min(threads or 1, cores))
    return max(1, cores // per), per


def _thread_environment(threads: int) -> dict[str, str]:
    return {name: str(threads) for name in THREAD_VARIABLES}


def _limit_threads(threads: int) -> None:
    """Run on each Dask worker: thread pools not yet started use ``threads`` threads (the
    simulation itself is told its thread count explicitly in every call)."""
    for name, value in _thread_environment(threads).items():
        if name != "NUMBA_NUM_THREADS" or "numba" not in sys.modules:
            os.environ[name] = value


@contextlib.contextmanager
def _dask_client(address: str, threads: int) -> Iterator[Any]:
    """A Client of the cluster at ``address``, or of a new LocalCluster for "local"."""
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if address == "local":
            workers, _ = local_cluster_shape(available_cores(), threads)
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                env=_thread_environment(threads)))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(address, timeout=DASK_CONNECT_SECONDS))
            except (OSError, TimeoutError, ValueError) as error:
                raise InputError(f"--dask {address}: cannot reach a Dask scheduler there within "
                                 f"{DASK_CONNECT_SECONDS} s ({type(error).__name__}: {error})") from None
        client.run(_limit_threads, threads)
        yield client


def _run_units(pending: Sequence[Unit], config: SweepConfig, dask: str | None,
               on_result: Callable[[Unit, HittingTimes], None]) -> None:
    """Compute ``pending`` in this process or on Dask, calling ``on_result`` as each finishes."""
    if dask is None:
        for unit in pending:
            on_result(unit, compute(unit.plan(config.backend, config.threads)))
        return
    from distributed import as_completed

    threads = config.threads or 1
    with _dask_client(dask, threads) as client:
        futures = {client.submit(compute, unit.plan(config.backend, threads),
                                 key=f"edgewalk-unit-{config.hash}-{unit.index}", pure=False): unit
                   for unit in pending}
        for future, result in as_completed(futures, with_results=True):
            on_result(futures[future], result)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (what SLURM sends at the time limit) raises KeyboardInterrupt, so the checkpoint
    is written before the process ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Progress:
    """A tqdm bar over the rollouts to compute, with cells done; tqdm adds rollouts per second
    and the time left. Disabled when ``enabled`` is False, or None and stderr is not a terminal."""

    def __init__(self, label: str, pending: Sequence[Unit], cells: int, cells_done: int,
                 enabled: bool | None) -> None:
        from tqdm import tqdm

        self.remaining: dict[str, int] = {}
        for unit in pending:
            self.remaining[unit.cell.name] = self.remaining.get(unit.cell.name, 0) + 1
        self.cells, self.cells_done = cells, cells_done
        self.bar = tqdm(total=sum(u.count for u in pending), desc=label, unit="rollout",
                        unit_scale=True, file=sys.stderr, leave=False, dynamic_ncols=True,
                        disable=None if enabled is None else not enabled)
        self.bar.set_postfix_str(self._cells(), refresh=False)

    def _cells(self) -> str:
        return f"cells {self.cells_done}/{self.cells}"

    def update(self, unit: Unit) -> None:
        self.remaining[unit.cell.name] -= 1
        if not self.remaining[unit.cell.name]:
            self.cells_done += 1
        self.bar.set_postfix_str(self._cells(), refresh=False)
        self.bar.update(unit.count)

    def close(self) -> None:
        self.bar.close()


@dataclass(frozen=True)
class Outcome:
    """What :func:`run_sweep` did: the file it wrote, the study (None for a shard), the units of
    its share, how many were reused from earlier runs and how many it computed."""

    path: Path
    study: Study | None
    units: int
    reused: int
    computed: int
    seconds: float


def run_sweep(config: SweepConfig, shard: tuple[int, int] | None = None, dask: str | None = None,
              progress: bool | None = None, checkpoint_seconds: float = 30.0) -> Outcome:
    """Run the sweep, or with ``shard`` = (I, N) its units numbered I mod N, in this process or
    with ``dask`` ("local" or a scheduler address) on a Dask cluster.

    Without ``shard``: writes the study file ``config.output`` (:func:`io.write_study`), equal bit
    for bit in every histogram and moment to :func:`study.sweep` with the same parameters and
    ``threads=1``. With ``shard``: writes the shard's units file; ``edgewalk merge`` makes the
    study. Either way the units finished so far are checkpointed at most every
    ``checkpoint_seconds`` and on an interrupt (KeyboardInterrupt or SIGTERM, which is re-raised),
    each checkpoint holding only the units finished since the last one, and a rerun resumes from
    them (and, unsharded, from the runs complete in the output). Temporary files a killed run
    left are removed first. Every parameter and the output location are checked before any work."""
    start = time.perf_counter()
    cells, units = plan(config)
    index, count = shard if shard is not None else (0, 1)
    mine = [u for u in units if u.index % count == index]
    output = Path(config.output)
    target = shard_path(output, index, count) if shard is not None else output
    stored_in = target if shard is not None else checkpoint_path(output)
    check_writable(target, "output:")
    remove_stale_temporaries(target, stored_in)

    whole = {} if shard is not None else stored_runs(output, cells, config.rollouts)
    mine_open = [u for u in mine if u.cell.name not in whole]
    results = stored_units(stored_in, mine_open)
    pending = [u for u in mine_open if u.key not in results]
    reused = len(mine) - len(pending)

    simulated = {c.name for c in cells if c.simulated}
    open_cells = {u.cell.name for u in pending}
    label = f"shard {index}/{count}" if shard is not None else "sweep"
    bar = _Progress(label, pending, len(simulated), len(simulated) - len(open_cells), progress)
    unsaved: dict[str, HittingTimes] = {}
    saved_at = [time.monotonic()]

    def checkpoint() -> None:
        if unsaved:
            append_units(stored_in, config, (index, count), len(mine_open), unsaved)
            unsaved.clear()
        saved_at[0] = time.monotonic()

    def on_result(unit: Unit, result: HittingTimes) -> None:
        results[unit.key] = unsaved[unit.key] = result
        bar.update(unit)
        if time.monotonic() - saved_at[0] >= checkpoint_seconds:
            checkpoint()

    try:
        with _sigterm_interrupts():
            _run_units(pending, config, dask, on_result)
    except BaseException:
        checkpoint()
        raise
    finally:
        bar.close()

    if shard is not None:
        if pending or not target.exists() or parts_directory(target).is_dir():
            write_units(target, config, (index, count), len(mine_open), results)
        remove_parts(target)
        return Outcome(target, None, len(mine), reused, len(pending), time.perf_counter() - start)
    result = assemble(config, cells, units, results, whole)
    write_study(output, result)
    remove_parts(stored_in)
    return Outcome(output, result, len(mine), reused, len(pending), time.perf_counter() - start)


def merge(output: str | os.PathLike[str], shards: Sequence[str | os.PathLike[str]]) -> Study:
    """Combine the shard files of one sweep into the study file ``output`` (what the unsharded
    sweep writes, bit for bit in every histogram and moment). Refuses, naming the files and
    shard indices, shards of different configurations or seeds or shard counts, duplicated or
    missing shard indices, and shards lacking units; nothing is written then."""
    if not shards:
        raise InputError("merge: give the shard files to merge")
    inputs = [p for p in shards if same_file(output, p)]
    if inputs:
        raise InputError(f"OUT {output}: is also given as a shard to merge; write the study to another file")
    headers = [read_header(Path(p)) for p in shards]
    check_writable(output, "OUT")
    problems = []
    by_hash: dict[str, list[UnitsHeader]] = {}
    for h in headers:
        by_hash.setdefault(h.config_hash, []).append(h)
    if len(by_hash) > 1:
        seeds = {h.seed for h in headers}
        if len(seeds) > 1:
            problems.append("different seeds: " + "; ".join(
                f"seed {s}: {_names(h for h in headers if h.seed == s)}" for s in sorted(seeds)))
        first = headers[0].config
        differing = sorted({k for h in headers for k in RESULT_KEYS if h.config.get(k) != first.get(k)})
        problems.append("different configurations (differing in " + ", ".join(differing) + "): " + "; ".join(
            f"config {digest}: {_names(group)}" for digest, group in by_hash.items()))
    counts = {h.shards for h in headers}
    if len(counts) > 1:
        problems.append("different shard counts: " + "; ".join(
            f"N = {n}: {_names(h for h in headers if h.shards == n)}" for n in sorted(counts)))
    else:
        n = counts.pop()
        for i in range(n):
            given = [h for h in headers if h.shard == i]
            if len(given) > 1:
                problems.append(f"shard {i}/{n} given more than once: {_names(given)}")
        missing = [i for i in range(n) if not any(h.shard == i for h in headers)]
        if missing:
            problems.append(f"missing shard(s) {', '.join(f'{i}/{n}' for i in missing)}: no file given")
    if problems:
        raise InputError("cannot merge: " + "\n  ".join(problems))

    config = config_from_mapping(headers[0].config, str(headers[0].path))
    cells, units = plan(config)
    n = headers[0].shards
    results: dict[str, HittingTimes] = {}
    for h in sorted(headers, key=lambda h: h.shard):
        share = [u for u in units if u.index % n == h.shard]
        found = stored_units(h.path, share)
        lacking = [u.key for u in share if u.key not in found]
        if lacking:
            problems.append(f"shard {h.shard}/{n} ({h.path}) lacks {len(lacking)} of its {len(share)} units "
                            f"(e.g. {lacking[0]}): it is incomplete; rerun its `edgewalk sweep FILE "
                            f"--shard {h.shard}/{n}`")
        results.update(found)
    if problems:
        raise InputError("cannot merge: " + "\n  ".join(problems))
    result = assemble(config, cells, units, results, {})
    write_study(output, result)
    return result


def load_header_variants(shards: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """The variants of the sweep the first shard file belongs to (for checking plot names
    before a merge)."""
    if not shards:
        raise InputError("merge: give the shard files to merge")
    return tuple(read_header(Path(shards[0])).config.get("variants", ()))


def _names(headers: Iterator[UnitsHeader] | Sequence[UnitsHeader]) -> str:
    return ", ".join(str(h.path) for h in headers)
