"""Sweep files: a whole sweep described by a TOML file, checked before any work.

The TOML file (every key but ``[grid]`` optional; defaults shown)::

    rollouts = 50000           # Monte Carlo rollouts per cell
    seed = 0                   # each cell draws from study.cell_seed(seed, run name)
    budget = 20.0              # Monte Carlo only in cells whose run is estimated at
                               # <= budget seconds on ONE thread (the same choice on every machine)
    variants = ["pretrained", "sft", "sft+search", "rlvr", "rlvr+search", "distilled"]
    policies = "converged"     # or "trained"
    target = "leaves"          # each rollout's target drawn from the leaves, or a node name (t1)
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

The *configuration hash* covers what determines the results (grid, variants, policies, target,
rollouts, seed, budget, tail, block_rollouts), not where or how they are computed (output,
plots, backend, threads).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import checks, kernels, study
from ..errors import InputError
from ..study import DEFAULT_VARIANTS, VARIANTS, Grid

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_KEYS = ("grid", "variants", "policies", "target", "rollouts", "seed", "budget", "tail",
               "block_rollouts", "output", "backend", "threads", "plots")
RESULT_KEYS = ("grid", "variants", "policies", "target", "rollouts", "seed", "budget", "tail",
               "block_rollouts")
GRID_KEYS = ("W", "K", "L", "base")


@dataclass(frozen=True)
class SweepConfig:
    """A batch sweep, checked: see the module docstring for the meaning of each field."""

    grid: Grid
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    policies: str = "converged"
    target: str = "leaves"
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
            "variants": list(self.variants), "policies": self.policies, "target": self.target,
            "rollouts": self.rollouts,
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
    """The sweep described by the TOML file at ``path``. Raises InputError naming the file and the
    offending key (with what is allowed) before any work."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise InputError(f"{path}: cannot read the sweep file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML: {error}") from None
    return config_from_mapping(data, str(path))


def _axis(key: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        return study.parse_list(value, f"grid.{key}")
    if isinstance(value, list) and value:
        return tuple(checks.whole(f"grid.{key}", v, 1) for v in value)
    raise InputError(f"grid.{key} must be a non-empty list of whole numbers >= 1 or a "
                     f"string like \"2,4,6\" or \"1-6\", got {value!r}")


def config_from_mapping(data: Mapping[str, Any], source: str = "sweep file") -> SweepConfig:
    """Check a parsed TOML mapping and return the sweep it describes. Raises InputError naming
    ``source`` and the offending key, with what is allowed."""
    try:
        return _config(data)
    except InputError as error:
        raise type(error)(f"{source}: {error}") from None


def _config(data: Mapping[str, Any]) -> SweepConfig:
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(CONFIG_KEYS)}")
    grid_data = data.get("grid")
    if not isinstance(grid_data, Mapping):
        raise InputError("a [grid] table with W, K, L and base is required")
    unknown = sorted(set(grid_data) - set(GRID_KEYS))
    missing = [k for k in GRID_KEYS if k not in grid_data]
    if unknown or missing:
        raise InputError(f"[grid] needs exactly the keys {', '.join(GRID_KEYS)}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                         + (f"; missing: {', '.join(missing)}" if missing else ""))
    base = grid_data["base"]
    if not (isinstance(base, list) and len(base) == 3):
        raise InputError(f"grid.base must be a list of three whole numbers [W0, K0, L0], got {base!r}")
    base = tuple(checks.whole("grid.base", v, 1) for v in base)
    grid = Grid(*(_axis(k, grid_data[k]) for k in "WKL"), base)
    variants = data.get("variants", list(DEFAULT_VARIANTS))
    if not isinstance(variants, list):
        raise InputError(f"variants must be a list of names from {', '.join(VARIANTS)}, got {variants!r}")
    strings = {}
    for key, default in (("output", "edgewalk-study.h5"), ("backend", "numba"), ("plots", None),
                         ("target", "leaves")):
        value = data.get(key, default)
        if value is not None and not (isinstance(value, str) and value):
            raise InputError(f"{key} must be a non-empty string, got {value!r}")
        strings[key] = value
    threads = data.get("threads")
    variants = study.check_variants(variants)
    study.check_grid_size(grid, variants)
    return SweepConfig(
        grid=grid,
        variants=variants,
        policies=checks.choice("policies", data.get("policies", "converged"), study.POLICY_SOURCES),
        target=strings["target"],
        rollouts=checks.whole("rollouts", data.get("rollouts", 50_000), 1),
        seed=checks.seed("seed", data.get("seed", 0)),
        budget=checks.real("budget (seconds)", data.get("budget", 20.0), 0.0),
        tail=checks.whole("tail", data.get("tail", 4), 3),
        block_rollouts=checks.whole("block_rollouts", data.get("block_rollouts", 10_000), 1),
        output=strings["output"],
        backend=checks.choice("backend", strings["backend"], kernels.BACKENDS),
        threads=None if threads is None else kernels.check_threads(threads),
        plots=strings["plots"],
    )


def parse_shard(text: str) -> tuple[int, int]:
    """(I, N) from ``"I/N"`` with 0 <= I < N. Raises InputError naming --shard."""
    try:
        index, count = (int(v) for v in text.split("/"))
        if not 0 <= index < count:
            raise ValueError
    except ValueError:
        raise InputError(f"--shard must be I/N with whole numbers 0 <= I < N (e.g. 0/4), got {text!r}") from None
    return index, count


def shard_path(output: str | os.PathLike[str], index: int, count: int) -> Path:
    """Where shard I of N of a sweep with this output writes: ``<stem>.shard-I-of-N.h5``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.shard-{index}-of-{count}.h5")


def checkpoint_path(output: str | os.PathLike[str]) -> Path:
    """The units file an unsharded sweep with this output checkpoints to (its checkpoints are
    the files of ``<stem>.partial.h5.parts/``, see :mod:`edgewalk.io.units`)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.partial.h5")
