"""Batch runs of the scaling study: a sweep described by a TOML file, cut into units of work that
shards (SLURM job arrays), resumed runs and Dask workers compute, merged bit for bit.

A *unit* is one rollout block of one Monte Carlo run: rollouts ``first .. first + count - 1`` of
the run's seed (:func:`study.cell_seed`), simulated with the cell's planned ``max_steps`` and
``bins`` so that every unit of a run has the same histogram layout. The units of a run add up
(``+``, exact integer sums) to the run a single ``simulate`` call gives, bit for bit
(``engine.simulate(first_rollout=...)``), so a study assembled from units equals
:func:`study.sweep` with the same parameters and ``threads=1`` (the thread count at which the
budget is judged, see below). Units are numbered over the whole sweep (cells sorted, variants in
the file's order, blocks in rollout order); shard I of N computes the units whose number is
I mod N. Exact values and fits need no Monte Carlo: they are computed when the study is written.

The TOML file (every key but ``[grid]`` optional; defaults shown)::

    rollouts = 50000           # Monte Carlo rollouts per cell
    seed = 0                   # each cell draws from study.cell_seed(seed, run name)
    budget = 20.0              # Monte Carlo only in cells whose run engine.plan estimates at
                               # <= budget seconds on ONE thread (the same choice on every machine)
    variants = ["pretrained", "sft", "sft+search", "rlvr", "rlvr+search", "distilled"]
    tail = 4                   # points of the exponential fits
    block_rollouts = 10000     # rollouts per unit
    output = "edgewalk-study.h5"
    backend = "numba"          # or "cython"; does not change results
    threads = 4                # threads per simulate call (default: all cores of the process;
                               # on Dask: 1); does not change results
    plots = "plots"            # directory for the PNG plots (default: none)

    [grid]                     # a star around base: lists [2, 4, 6] or ranges "1-6", "1-3,5"
    W = [2, 4, 6, 8]
    K = "1-15"
    L = "2-6"
    base = [6, 3, 5]

The *configuration hash* covers what determines the results (grid, variants, rollouts, seed,
budget, tail, block_rollouts), not where or how they are computed (output, plots, backend,
threads).

Files. ``edgewalk sweep FILE`` writes the study file ``output`` (:func:`study.write`); while it
runs it keeps a checkpoint ``<output stem>.partial.h5`` (rewritten atomically every
``checkpoint_seconds`` and on an interrupt, removed at the end). ``--shard I/N`` writes
``<output stem>.shard-I-of-N.h5`` instead, rewritten the same way while it runs. Both are *units
files*::

    /                      attrs format="edgewalk.hitting_times" (edgewalk.read opens the file)
    /batch                 attrs batch_format="edgewalk.batch", batch_format_version=1,
                           config (the whole configuration as JSON), config_hash, seed,
                           shard (I), shards (N), units (the shard's share), complete (bool)
    /runs/<run>@<first>    one unit: rollouts first .. first + count - 1 of run <run>, stored as
                           edgewalk.write stores a run (parameters first_rollout and rollouts)

Resume. Rerunning a sweep keeps every unit already in its units file and, without ``--shard``,
every run already complete in its output file, and computes the rest. A stored result is kept
only if its recorded graph, policy, target, seed, max_steps, bins, search mode and rollout range
are exactly those the unit needs (so results from another configuration are never mixed in).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import operator
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import io, study
from .engine import BACKENDS, MASK64, available_cores, simulate
from .graph import path_star
from .policy import Policy
from .result import HittingTimes
from .study import VARIANTS, Grid, PlannedCell, Study

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "SweepConfig", "Unit", "UnitTask", "Outcome", "load_config", "config_from_mapping",
    "parse_shard", "plan", "compute_unit", "run_sweep", "merge", "shard_path", "checkpoint_path",
    "local_cluster_shape",
]

BATCH_FORMAT = "edgewalk.batch"
BATCH_FORMAT_VERSION = 1
CONFIG_KEYS = ("grid", "variants", "policies", "rollouts", "seed", "budget", "tail", "block_rollouts",
               "output", "backend", "threads", "plots")
RESULT_KEYS = ("grid", "variants", "policies", "rollouts", "seed", "budget", "tail", "block_rollouts")
GRID_KEYS = ("W", "K", "L", "base")
BUDGET_THREADS = 1  # the budget is judged at this many threads: the same cells on every machine
# What a stored unit must record, equal to what the unit needs, to be reused.
SIGNATURE_KEYS = ("graph", "policy", "target", "seed", "max_steps", "bins", "search",
                  "first_rollout", "rollouts")
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


# --- the configuration ----------------------------------------------------------------------

@dataclass(frozen=True)
class SweepConfig:
    """A batch sweep, checked: see the module docstring for the meaning of each field."""

    grid: Grid
    variants: tuple[str, ...] = tuple(VARIANTS)
    policies: str = "converged"
    rollouts: int = 50_000
    seed: int = 0
    budget: float = 20.0
    tail: int = 4
    block_rollouts: int = 10_000
    output: str = "edgewalk-study.h5"
    backend: str = "numba"
    threads: int | None = None
    plots: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The configuration as the mapping :func:`config_from_mapping` reads (unset keys left out)."""
        data: dict[str, Any] = {
            "grid": {"W": list(self.grid.W), "K": list(self.grid.K), "L": list(self.grid.L),
                     "base": list(self.grid.base)},
            "variants": list(self.variants), "policies": self.policies, "rollouts": self.rollouts,
            "seed": self.seed,
            "budget": self.budget, "tail": self.tail, "block_rollouts": self.block_rollouts,
            "output": self.output, "backend": self.backend, "threads": self.threads,
            "plots": self.plots,
        }
        return {k: v for k, v in data.items() if v is not None}

    @property
    def hash(self) -> str:
        """16 hex digits of sha256 over the canonical JSON of the keys that determine results."""
        data = self.to_dict()
        canonical = json.dumps({k: data[k] for k in RESULT_KEYS}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_config(path: str | os.PathLike[str]) -> SweepConfig:
    """The sweep described by the TOML file at ``path``. Raises ValueError naming the file and the
    offending key (with what is allowed) before any work."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the sweep file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    return config_from_mapping(data, str(path))


def _whole(source: str, key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{source}: {key} must be a whole number {allowed}, got {value!r}")
    return value


def _axis(source: str, key: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        return study.parse_list(value, f"{source}: grid.{key}")
    if isinstance(value, list) and value:
        return tuple(_whole(source, f"grid.{key}", v, 1) for v in value)
    raise ValueError(f"{source}: grid.{key} must be a non-empty list of whole numbers >= 1 or a "
                     f"string like \"2,4,6\" or \"1-6\", got {value!r}")


def config_from_mapping(data: Mapping[str, Any], source: str = "sweep file") -> SweepConfig:
    """Check a parsed TOML mapping and return the sweep it describes. Raises ValueError naming
    ``source`` and the offending key, with what is allowed."""
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(CONFIG_KEYS)}")
    grid_data = data.get("grid")
    if not isinstance(grid_data, Mapping):
        raise ValueError(f"{source}: a [grid] table with W, K, L and base is required")
    unknown = sorted(set(grid_data) - set(GRID_KEYS))
    missing = [k for k in GRID_KEYS if k not in grid_data]
    if unknown or missing:
        raise ValueError(f"{source}: [grid] needs exactly the keys {', '.join(GRID_KEYS)}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                         + (f"; missing: {', '.join(missing)}" if missing else ""))
    base = grid_data["base"]
    if not (isinstance(base, list) and len(base) == 3):
        raise ValueError(f"{source}: grid.base must be a list of three whole numbers [W0, K0, L0], got {base!r}")
    base = tuple(_whole(source, "grid.base", v, 1) for v in base)
    grid = Grid(*(_axis(source, k, grid_data[k]) for k in "WKL"), base)

    variants = data.get("variants", list(VARIANTS))
    if (not isinstance(variants, list) or not variants or any(v not in VARIANTS for v in variants)
            or len(set(variants)) != len(variants)):
        raise ValueError(f"{source}: variants must be a non-empty list of distinct names from "
                         f"{', '.join(VARIANTS)}, got {variants!r}")
    budget = data.get("budget", 20.0)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not (math.isfinite(budget) and budget >= 0):
        raise ValueError(f"{source}: budget must be a number of seconds >= 0, got {budget!r}")
    strings = {}
    for key, default in (("output", "edgewalk-study.h5"), ("backend", "numba"), ("plots", None)):
        value = data.get(key, default)
        if value is not None and not (isinstance(value, str) and value):
            raise ValueError(f"{source}: {key} must be a non-empty string, got {value!r}")
        strings[key] = value
    if strings["backend"] not in BACKENDS:
        raise ValueError(f"{source}: backend must be one of {', '.join(BACKENDS)}, got {strings['backend']!r}")
    threads = data.get("threads")
    policies = data.get("policies", "converged")
    if policies not in study.POLICY_SOURCES:
        raise ValueError(f"{source}: policies must be one of {', '.join(study.POLICY_SOURCES)}, got {policies!r}")
    return SweepConfig(
        grid=grid,
        variants=tuple(variants),
        policies=policies,
        rollouts=_whole(source, "rollouts", data.get("rollouts", 50_000), 1),
        seed=_whole(source, "seed", data.get("seed", 0), 0, MASK64),
        budget=float(budget),
        tail=_whole(source, "tail", data.get("tail", 4), 3),
        block_rollouts=_whole(source, "block_rollouts", data.get("block_rollouts", 10_000), 1),
        output=strings["output"],
        backend=strings["backend"],
        threads=None if threads is None else _whole(source, "threads", threads, 1),
        plots=strings["plots"],
    )


def parse_shard(text: str) -> tuple[int, int]:
    """(I, N) from ``"I/N"`` with 0 <= I < N. Raises ValueError naming --shard."""
    try:
        index, count = (int(v) for v in text.split("/"))
        if not 0 <= index < count:
            raise ValueError
    except ValueError:
        raise ValueError(f"--shard must be I/N with whole numbers 0 <= I < N (e.g. 0/4), got {text!r}") from None
    return index, count


def shard_path(output: str | os.PathLike[str], index: int, count: int) -> Path:
    """Where shard I of N of a sweep with this output writes: ``<stem>.shard-I-of-N.h5``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.shard-{index}-of-{count}.h5")


def checkpoint_path(output: str | os.PathLike[str]) -> Path:
    """The checkpoint of an unsharded sweep with this output: ``<stem>.partial.h5``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.partial.h5")


# --- units ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnitTask:
    """Everything a worker needs to compute one unit (small and picklable)."""

    variant: str
    point: tuple[int, int, int]
    probabilities: np.ndarray  # the cell's policy (trained policies are not retrained per unit)
    policy_name: str
    policy_parameters: dict
    exact_mean: float  # solved once when the cell was planned, not again per unit
    seed: int
    max_steps: int
    bins: int
    first: int
    count: int
    backend: str
    threads: int | None


@dataclass(frozen=True)
class Unit:
    """Rollouts ``first .. first + count - 1`` of the Monte Carlo run of ``cell``; ``index``
    numbers the unit over the whole sweep."""

    index: int
    cell: PlannedCell
    first: int
    count: int

    @property
    def key(self) -> str:
        """The unit's name in a units file: ``<run>@<first>``."""
        return f"{self.cell.name}@{self.first}"

    def task(self, backend: str, threads: int | None) -> UnitTask:
        run = self.cell.run
        policy = self.cell.policy
        return UnitTask(self.cell.variant, self.cell.point, policy.probabilities, policy.name,
                        dict(policy.parameters), run.exact_mean, run.seed, run.max_steps, run.bins,
                        self.first, self.count, backend, threads)

    def signature(self) -> str:
        """What a stored result must record to stand for this unit (see SIGNATURE_KEYS)."""
        return _signature(self.cell, self.first, self.count)


def _signature(cell: PlannedCell, first: int, count: int) -> str:
    run = cell.run
    values = {"graph": cell.policy.graph.describe(), "policy": cell.policy.describe(),
              "target": run.target_name, "seed": run.seed, "max_steps": run.max_steps,
              "bins": run.bins, "search": run.search, "first_rollout": first, "rollouts": count}
    return _canonical(values)


def _canonical(values: Mapping[str, Any]) -> str:
    return json.dumps({k: values.get(k) for k in SIGNATURE_KEYS}, sort_keys=True,
                      default=lambda x: x.tolist())


def plan(config: SweepConfig) -> tuple[list[PlannedCell], list[Unit]]:
    """Every cell of the sweep planned (the budget judged at one thread, so every machine makes
    the same choice) and every unit of the simulated cells, numbered in order. Checks every
    parameter before any work."""
    cells = study.plan_cells(config.grid, config.variants, config.rollouts, config.seed,
                             config.budget, config.backend, BUDGET_THREADS, config.tail,
                             config.policies)
    units: list[Unit] = []
    for cell in cells:
        if cell.simulated:
            for first in range(0, config.rollouts, config.block_rollouts):
                units.append(Unit(len(units), cell, first, min(config.block_rollouts, config.rollouts - first)))
    return cells, units


def compute_unit(task: UnitTask) -> HittingTimes:
    """Simulate one unit: the result of rollouts ``task.first .. task.first + task.count - 1`` of
    its cell's run. Depends only on the task, not on where it runs, its backend or threads."""
    variant = VARIANTS[task.variant]
    policy = Policy(path_star(*task.point), task.probabilities, task.policy_name, task.policy_parameters)
    return simulate(policy, None, task.count, task.seed, task.max_steps, task.backend, task.threads,
                    task.bins, True, None, variant.search, task.first, task.exact_mean)


def _combine(cell: PlannedCell, parts: Sequence[HittingTimes]) -> HittingTimes:
    """The run of ``cell`` from its parts in rollout order (exact integer sums); its parameters
    are those of one simulate call over all rollouts (threads: the most any part used)."""
    total = functools.reduce(operator.add, parts)
    parameters = dict(parts[0].parameters)
    parameters.update(rollouts=cell.run.rollouts, first_rollout=0,
                      threads=max(int(p.parameters.get("threads", 1)) for p in parts))
    return replace(total, parameters=parameters)


def _assemble(config: SweepConfig, cells: Sequence[PlannedCell], units: Sequence[Unit],
              results: Mapping[str, HittingTimes], whole: Mapping[str, HittingTimes]) -> Study:
    """The study from unit results (by unit key) and whole runs (by run name)."""
    parts: dict[str, list[HittingTimes]] = {}
    for unit in units:
        if unit.cell.name not in whole:
            parts.setdefault(unit.cell.name, []).append(results[unit.key])
    by_name = {c.name: c for c in cells}
    runs = dict(whole)
    runs.update({name: _combine(by_name[name], p) for name, p in parts.items()})
    threads = max((int(r.parameters.get("threads", 1)) for r in runs.values()), default=1)
    parameters = study.study_parameters(config.grid, config.variants, config.rollouts, config.seed,
                                        config.budget, config.backend, threads, config.tail,
                                        config.policies)
    parameters.update(budget_threads=BUDGET_THREADS, block_rollouts=config.block_rollouts,
                      config_hash=config.hash)
    return study.assemble(cells, runs, config.grid, parameters, config.tail)


# --- units files ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Header:
    path: Path
    config: dict[str, Any]
    config_hash: str
    seed: int
    shard: int
    shards: int
    units: int
    complete: bool


def _write_units(path: Path, config: SweepConfig, shard: tuple[int, int], expected: int,
                 results: Mapping[str, HittingTimes]) -> None:
    """Write a units file atomically (see the module docstring)."""
    with io.atomic_file(path) as f:
        io.write_runs(f, results)
        group = f.create_group("batch")
        group.attrs["batch_format"] = BATCH_FORMAT
        group.attrs["batch_format_version"] = BATCH_FORMAT_VERSION
        group.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
        group.attrs["config_hash"] = config.hash
        group.attrs["seed"] = str(config.seed)
        group.attrs["shard"], group.attrs["shards"] = shard
        group.attrs["units"] = expected
        group.attrs["complete"] = len(results) == expected


def _read_header(path: Path) -> _Header:
    try:
        with h5py.File(path, "r") as f:
            group = f.get("batch")
            if group is None or group.attrs.get("batch_format") != BATCH_FORMAT:
                raise ValueError(f"{path}: not an edgewalk shard file (written by `edgewalk sweep FILE --shard I/N`)")
            a = group.attrs
            return _Header(path, json.loads(a["config"]), str(a["config_hash"]), int(a["seed"]),
                           int(a["shard"]), int(a["shards"]), int(a["units"]), bool(a["complete"]))
    except OSError as error:
        raise ValueError(f"{path}: cannot read an HDF5 file: {error}") from None


def _matching(stored: Mapping[str, HittingTimes], wanted: Mapping[str, str]) -> dict[str, HittingTimes]:
    """The stored results whose name is in ``wanted`` and whose parameters match its signature."""
    return {name: result for name, result in stored.items()
            if name in wanted and _canonical(result.parameters) == wanted[name]}


def _stored_units(path: Path, units: Sequence[Unit]) -> dict[str, HittingTimes]:
    """The results in a units file at ``path`` (if any) that stand for ``units``."""
    if not path.exists():
        return {}
    _read_header(path)  # refuse anything but a units file
    return _matching(io.read(path), {u.key: u.signature() for u in units})


def _stored_runs(path: Path, cells: Sequence[PlannedCell], rollouts: int) -> dict[str, HittingTimes]:
    """The complete runs in a study file at ``path`` (if any) that stand for simulated ``cells``."""
    if not path.exists():
        return {}
    try:
        stored = study.read(path).runs
    except ValueError:
        raise ValueError(f"{path}: the output exists and is not an edgewalk study file; "
                         "move it away or choose another output") from None
    return _matching(stored, {c.name: _signature(c, 0, rollouts) for c in cells if c.simulated})


# --- running --------------------------------------------------------------------------------

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
            client = stack.enter_context(Client(address))
        client.run(_limit_threads, threads)
        yield client


def _run_units(pending: Sequence[Unit], config: SweepConfig, dask: str | None,
               on_result: Callable[[Unit, HittingTimes], None]) -> None:
    """Compute ``pending`` in this process or on Dask, calling ``on_result`` as each finishes."""
    if dask is None:
        for unit in pending:
            on_result(unit, compute_unit(unit.task(config.backend, config.threads)))
        return
    from distributed import as_completed

    threads = config.threads or 1
    with _dask_client(dask, threads) as client:
        futures = {client.submit(compute_unit, unit.task(config.backend, threads),
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
    its share, how many were reused from earlier runs and how many it computed, and the plots
    it wrote."""

    path: Path
    study: Study | None
    units: int
    reused: int
    computed: int
    seconds: float
    plots: tuple[str, ...] = ()


def run_sweep(config: SweepConfig, shard: tuple[int, int] | None = None, dask: str | None = None,
              progress: bool | None = None, checkpoint_seconds: float = 30.0) -> Outcome:
    """Run the sweep, or with ``shard`` = (I, N) its units numbered I mod N, in this process or
    with ``dask`` ("local" or a scheduler address) on a Dask cluster.

    Without ``shard``: writes the study file ``config.output`` (:func:`study.write`; plots too
    if ``config.plots``), equal bit for bit in every histogram and moment to :func:`study.sweep`
    with the same parameters and ``threads=1``. Runs already complete in the output and units in
    the checkpoint are kept; the checkpoint is rewritten atomically at most every
    ``checkpoint_seconds`` while units finish and on an interrupt (KeyboardInterrupt or SIGTERM,
    which is re-raised), and removed at the end. With ``shard``: writes (and keeps resuming from)
    the shard's units file; ``edgewalk merge`` makes the study. Every parameter and the output
    location are checked before any work."""
    start = time.perf_counter()
    cells, units = plan(config)
    index, count = shard if shard is not None else (0, 1)
    mine = [u for u in units if u.index % count == index]
    output = Path(config.output)
    target = shard_path(output, index, count) if shard is not None else checkpoint_path(output)
    for path in (target, output) if shard is None else (target,):
        try:
            io.check_writable(path)
        except ValueError as error:
            raise ValueError(str(error).replace("--out ", "output: ", 1)) from None

    whole = {} if shard is not None else _stored_runs(output, cells, config.rollouts)
    mine_open = [u for u in mine if u.cell.name not in whole]
    results = _stored_units(target, mine_open)
    pending = [u for u in mine_open if u.key not in results]
    reused = len(mine) - len(pending)

    simulated = {c.name for c in cells if c.simulated}
    open_cells = {u.cell.name for u in pending}
    label = f"shard {index}/{count}" if shard is not None else "sweep"
    bar = _Progress(label, pending, len(simulated), len(simulated) - len(open_cells), progress)
    written = {"at": time.monotonic(), "units": len(results)}

    def checkpoint() -> None:
        if len(results) > written["units"]:
            _write_units(target, config, (index, count), len(mine_open), results)
            written.update(at=time.monotonic(), units=len(results))

    def on_result(unit: Unit, result: HittingTimes) -> None:
        results[unit.key] = result
        bar.update(unit)
        if time.monotonic() - written["at"] >= checkpoint_seconds:
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
        if pending or not target.exists():
            _write_units(target, config, (index, count), len(mine_open), results)
        return Outcome(target, None, len(mine), reused, len(pending), time.perf_counter() - start)
    result = _assemble(config, cells, units, results, whole)
    study.write(output, result)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    plots: tuple[str, ...] = ()
    if config.plots:
        from .plots import write_plots

        plots = tuple(str(p) for p in write_plots(output, config.plots))
    return Outcome(output, result, len(mine), reused, len(pending), time.perf_counter() - start, plots)


# --- merging --------------------------------------------------------------------------------

def merge(output: str | os.PathLike[str], shards: Sequence[str | os.PathLike[str]]) -> Study:
    """Combine the shard files of one sweep into the study file ``output`` (what the unsharded
    sweep writes, bit for bit in every histogram and moment). Refuses, naming the files and
    shard indices, shards of different configurations or seeds or shard counts, duplicated or
    missing shard indices, and shards lacking units; nothing is written then."""
    if not shards:
        raise ValueError("merge: give the shard files to merge")
    headers = [_read_header(Path(p)) for p in shards]
    io.check_writable(output)
    problems = []
    by_hash: dict[str, list[_Header]] = {}
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
        raise ValueError("cannot merge: " + "\n  ".join(problems))

    config = config_from_mapping(headers[0].config, str(headers[0].path))
    cells, units = plan(config)
    n = headers[0].shards
    results: dict[str, HittingTimes] = {}
    for h in sorted(headers, key=lambda h: h.shard):
        share = [u for u in units if u.index % n == h.shard]
        found = _stored_units(h.path, share)
        lacking = [u.key for u in share if u.key not in found]
        if lacking:
            problems.append(f"shard {h.shard}/{n} ({h.path}) lacks {len(lacking)} of its {len(share)} units "
                            f"(e.g. {lacking[0]}): it is incomplete; rerun its `edgewalk sweep FILE "
                            f"--shard {h.shard}/{n}`")
        results.update(found)
    if problems:
        raise ValueError("cannot merge: " + "\n  ".join(problems))
    result = _assemble(config, cells, units, results, {})
    study.write(output, result)
    return result


def _names(headers: Iterator[_Header] | Sequence[_Header]) -> str:
    return ", ".join(str(h.path) for h in headers)
