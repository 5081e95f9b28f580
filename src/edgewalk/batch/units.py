"""Units of work: a sweep cut into rollout blocks that shards, resumed runs and Dask workers
compute in any order and that add up to the single-process study bit for bit.

A *unit* is one rollout block of one Monte Carlo run: rollouts ``first .. first + count - 1`` of
the run's plan (the cell's seed, ``max_steps`` and bins, so every unit of a run has the same
histogram layout). The units of a run add up (``+``, exact integer sums) to the run one
``engine.execute`` of the whole plan gives, so a study assembled from units equals
:func:`study.sweep` with the same parameters and ``threads=1`` (the thread count at which the
budget is judged). Units are numbered over the whole sweep (cells sorted, variants in the file's
order, blocks in rollout order); shard I of N computes the units whose number is I mod N.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .. import kernels, study, targets
from ..targets import TargetsPlan
from ..result import HittingTimes
from ..study import PlannedCell, Study
from .config import SweepConfig

BUDGET_THREADS = 1  # the budget is judged at this many threads: the same cells on every machine
# What a stored unit must record, equal to what the unit needs, to be reused.
SIGNATURE_KEYS = ("graph", "policy", "target", "seed", "max_steps", "bins", "search", "method",
                  "first_rollout", "rollouts")


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

    def plan(self, backend: str, threads: int | None) -> TargetsPlan:
        """The unit as a plan the engine executes (small and picklable: a Dask task)."""
        return self.cell.run.part(self.first, self.count).on(backend, kernels.check_threads(threads))

    def signature(self) -> str:
        """What a stored result must record to stand for this unit (see SIGNATURE_KEYS)."""
        return signature(self.cell, self.first, self.count)


def signature(cell: PlannedCell, first: int, count: int) -> str:
    """The canonical parameters of rollouts first .. first + count - 1 of a cell's run."""
    return canonical(cell.run.part(first, count).describe())


def canonical(values: Mapping[str, Any]) -> str:
    return json.dumps({k: values.get(k) for k in SIGNATURE_KEYS}, sort_keys=True,
                      default=lambda x: x.tolist())


def plan(config: SweepConfig) -> tuple[list[PlannedCell], list[Unit]]:
    """Every cell of the sweep planned (the budget judged at one thread, so every machine makes
    the same choice) and every unit of the simulated cells, numbered in order. Checks every
    parameter before any work."""
    cells = study.plan_cells(config.grid, config.variants, config.rollouts, config.seed,
                             config.budget, config.backend, BUDGET_THREADS, config.tail,
                             config.policies, config.target)
    units: list[Unit] = []
    for cell in cells:
        if cell.simulated:
            for first in range(0, config.rollouts, config.block_rollouts):
                units.append(Unit(len(units), cell, first, min(config.block_rollouts, config.rollouts - first)))
    return cells, units


def compute(unit_plan: TargetsPlan) -> HittingTimes:
    """Simulate one unit. Depends only on the plan's rollouts, not on where it runs, its backend
    or threads."""
    return targets.execute(unit_plan)


def combine(cell: PlannedCell, parts: Sequence[HittingTimes]) -> HittingTimes:
    """The run of ``cell`` from its parts in rollout order (exact integer sums); its parameters
    are those of one run over all rollouts (threads: the most any part used)."""
    total = functools.reduce(operator.add, parts)
    parameters = cell.run.describe()  # a part of a run over several targets records only its own
    parameters.update(backend=parts[0].parameters["backend"],
                      threads=max(int(p.parameters.get("threads", 1)) for p in parts))
    return replace(total, parameters=parameters)


def assemble(config: SweepConfig, cells: Sequence[PlannedCell], units: Sequence[Unit],
             results: Mapping[str, HittingTimes], whole: Mapping[str, HittingTimes]) -> Study:
    """The study from unit results (by unit key) and whole runs (by run name)."""
    parts: dict[str, list[HittingTimes]] = {}
    for unit in units:
        if unit.cell.name not in whole:
            parts.setdefault(unit.cell.name, []).append(results[unit.key])
    by_name = {c.name: c for c in cells}
    runs = dict(whole)
    runs.update({name: combine(by_name[name], p) for name, p in parts.items()})
    threads = max((int(r.parameters.get("threads", 1)) for r in runs.values()), default=1)
    parameters = study.study_parameters(config.grid, config.variants, config.rollouts, config.seed,
                                        config.budget, config.backend, threads, config.tail,
                                        config.policies, config.target)
    parameters.update(budget_threads=BUDGET_THREADS, block_rollouts=config.block_rollouts,
                      config_hash=config.hash)
    return study.assemble(cells, runs, config.grid, parameters, config.tail)
