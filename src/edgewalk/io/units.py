"""Units files: the rollout blocks a shard (``--shard I/N``) or an unsharded sweep's checkpoint
holds. While a sweep runs, every checkpoint adds one small units file (only the blocks finished
since the last one) to a ``<file>.parts`` directory beside its output, so a checkpoint costs in
proportion to the new work; the shard file itself is written once, at the end. A units file::

    /                      attrs format="edgewalk.hitting_times" (edgewalk.read opens the file)
    /batch                 attrs batch_format="edgewalk.batch", batch_format_version=2,
                           config (the whole configuration as JSON), config_hash, seed,
                           shard (I), shards (N), units (the shard's share), complete (bool)
    /runs/<run>@<first>    one unit: rollouts first .. first + count - 1 of run <run>, stored as
                           a run file stores a run (parameters first_rollout and rollouts) but
                           with its histogram as one dataset ``counts`` and without the
                           attributes kept for people (io.runs.write_runs)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from ..batch.config import SweepConfig
from ..batch.units import Unit, canonical, signature
from ..errors import CorruptFileError, InputError
from ..result import HittingTimes
from ..study import PlannedCell
from .hdf5 import atomic_file
from .runs import open_results, read, write_runs
from .study import read_study

BATCH_FORMAT = "edgewalk.batch"
BATCH_FORMAT_VERSION = 2  # 2: histograms as one counts dataset; version 1 files (UHI groups) still read


@dataclass(frozen=True)
class UnitsHeader:
    path: Path
    config: dict[str, Any]
    config_hash: str
    seed: int
    shard: int
    shards: int
    units: int
    complete: bool


def write_units(path: Path, config: SweepConfig, shard: tuple[int, int], expected: int,
                results: Mapping[str, HittingTimes]) -> None:
    """Write a units file atomically (see the module docstring)."""
    with atomic_file(path) as f:
        write_runs(f, results, for_people=False)
        group = f.create_group("batch")
        group.attrs["batch_format"] = BATCH_FORMAT
        group.attrs["batch_format_version"] = BATCH_FORMAT_VERSION
        group.attrs["config"] = json.dumps(config.to_dict(), sort_keys=True)
        group.attrs["config_hash"] = config.hash
        group.attrs["seed"] = str(config.seed)
        group.attrs["shard"], group.attrs["shards"] = shard
        group.attrs["units"] = expected
        group.attrs["complete"] = len(results) == expected


def read_header(path: Path) -> UnitsHeader:
    """The header of a units file; InputError naming the file if it is not one."""
    with open_results(path) as f:
        group = f.get("batch")
        if not isinstance(group, h5py.Group) or group.attrs.get("batch_format") != BATCH_FORMAT:
            raise InputError(f"{path}: not an edgewalk shard file (written by `edgewalk sweep FILE --shard I/N`)")
        a = group.attrs
        try:
            return UnitsHeader(path, json.loads(a["config"]), str(a["config_hash"]), int(a["seed"]),
                               int(a["shard"]), int(a["shards"]), int(a["units"]), bool(a["complete"]))
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptFileError(f"{path}: a damaged shard file ({type(error).__name__}: {error})") from None


def matching(stored: Mapping[str, HittingTimes], wanted: Mapping[str, str]) -> dict[str, HittingTimes]:
    """The stored results whose name is in ``wanted`` and whose parameters match its signature."""
    return {name: result for name, result in stored.items()
            if name in wanted and canonical(result.parameters) == wanted[name]}


def parts_directory(path: Path) -> Path:
    """Where the checkpoints of the units file or study file ``path`` are kept while it runs."""
    return path.with_name(path.name + ".parts")


def stored_units(path: Path, units: Sequence[Unit]) -> dict[str, HittingTimes]:
    """The results in the units file at ``path`` and in its checkpoints (if any) that stand
    for ``units``."""
    wanted = {u.key: u.signature() for u in units}
    found: dict[str, HittingTimes] = {}
    parts = parts_directory(path)
    files = ([path] if path.exists() else []) + (sorted(parts.glob("part-*.h5")) if parts.is_dir() else [])
    for file in files:
        read_header(file)  # refuse anything but a units file
        found.update(matching(read(file), wanted))
    return found


def append_units(path: Path, config: SweepConfig, shard: tuple[int, int], expected: int,
                 results: Mapping[str, HittingTimes]) -> Path:
    """Add ``results`` as one more checkpoint of the units file ``path`` (a new file in its
    parts directory, written atomically) and return its path."""
    parts = parts_directory(path)
    parts.mkdir(exist_ok=True)
    number = 1 + max((int(p.stem.split("-")[1]) for p in parts.glob("part-*.h5")), default=0)
    part = parts / f"part-{number:06d}.h5"
    write_units(part, config, shard, expected, results)
    return part


def remove_parts(path: Path) -> None:
    """Remove the checkpoints of ``path`` (once its complete file is written)."""
    parts = parts_directory(path)
    if parts.is_dir():
        for file in parts.iterdir():
            file.unlink()
        parts.rmdir()


def remove_stale_temporaries(*paths: Path) -> list[Path]:
    """Remove temporary files that an atomic write of one of ``paths`` (or of their checkpoints)
    left behind when its process was killed; return what was removed."""
    removed = []
    for path in paths:
        candidates = list(path.parent.glob(f".{path.name}.*.tmp"))
        parts = parts_directory(path)
        if parts.is_dir():
            candidates += list(parts.glob(".part-*.tmp"))
        for file in candidates:
            file.unlink(missing_ok=True)
            removed.append(file)
    return removed


def stored_runs(path: Path, cells: Sequence[PlannedCell], rollouts: int) -> dict[str, HittingTimes]:
    """The complete runs in a study file at ``path`` (if any) that stand for simulated ``cells``."""
    if not path.exists():
        return {}
    try:
        stored = read_study(path).runs
    except InputError:
        raise InputError(f"{path}: the output exists and is not an edgewalk study file; "
                         "move it away or choose another output") from None
    return matching(stored, {c.name: signature(c, 0, rollouts) for c in cells if c.simulated})
