"""The study's grid: a *star* of three lines through a base point (W0, K0, L0), each varying one
parameter with the other two held at the base, and the names and seeds of its cells."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .. import checks, planning
from ..errors import CostError, InputError

PARAMETERS = ("W", "K", "L")


# Planning a cell builds its graph and policies and solves each variant exactly: at least this
# many seconds per cell and variant (measured on a 2-core machine), so a list of more than
# MAX_VALUES values could not even be planned within planning.MAX_PLANNED_SECONDS.
PLANNING_SECONDS_PER_CELL = 5e-3
MAX_VALUES = int(planning.MAX_PLANNED_SECONDS / PLANNING_SECONDS_PER_CELL)


def parse_list(text: str, option: str) -> tuple[int, ...]:
    """Whole numbers >= 1 from ``"2,4,6"``, ``"1-6"`` or a mix (``"1-3,5"``), sorted and
    deduplicated. Raises InputError naming ``option``, and CostError (counting the values from
    the ranges' bounds, before expanding any) if it holds more than MAX_VALUES values."""
    ranges: list[tuple[int, int]] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            low_value = int(low)
            high_value = int(high) if high else low_value
            if low_value < 1 or high_value < low_value:
                raise ValueError
            ranges.append((low_value, high_value))
    except ValueError:
        raise InputError(f"{option} must be comma-separated whole numbers >= 1 or ranges a-b "
                         f"(e.g. 2,4,6 or 1-6), got {_shown(text)}") from None
    count, reached = 0, 0  # distinct values, counted over the ranges sorted by their low bound
    for low_value, high_value in sorted(ranges):
        if high_value > reached:
            count += high_value - max(low_value, reached + 1) + 1
            reached = high_value
    if count > MAX_VALUES:
        raise CostError(f"{option} {_shown(text)} holds {count:,} values, more than the {MAX_VALUES:,} a sweep "
                        f"can plan within {planning.MAX_PLANNED_SECONDS / 3600:g} hour (about "
                        f"{PLANNING_SECONDS_PER_CELL * 1e3:g} ms per cell); choose fewer values")
    values: set[int] = set()
    for low_value, high_value in ranges:
        values.update(range(low_value, high_value + 1))
    return tuple(sorted(values))


def _shown(text: str) -> str:
    """``text`` quoted, shortened if long (a list given on the command line can be huge)."""
    return repr(text) if len(text) <= 60 else repr(text[:40] + "...") + f" ({len(text):,} characters)"


@dataclass(frozen=True)
class Grid:
    """A star design: ``W``, ``K`` and ``L`` are the values each parameter takes while the other
    two are held at ``base`` = (W0, K0, L0). The base values are always part of their axis."""

    W: tuple[int, ...]
    K: tuple[int, ...]
    L: tuple[int, ...]
    base: tuple[int, int, int]

    def __post_init__(self) -> None:
        if len(self.base) != 3:
            raise InputError(f"base must be three whole numbers (W0, K0, L0), got {self.base!r}")
        for name, values, base in zip(PARAMETERS, (self.W, self.K, self.L), self.base):
            checks.whole(f"base: {name}0", base, 1)
            for v in values:
                checks.whole(f"{name}: every value", v, 1)
            object.__setattr__(self, name, tuple(sorted(set(values) | {base})))

    def axis(self, parameter: str) -> list[tuple[int, int, int]]:
        """The cells (W, K, L) along one parameter, in increasing order of it."""
        i = PARAMETERS.index(parameter)
        cells = []
        for value in getattr(self, parameter):
            cell = list(self.base)
            cell[i] = value
            cells.append(tuple(cell))
        return cells

    def cells(self) -> list[tuple[int, int, int]]:
        """Every cell of the star, each once, sorted."""
        return sorted({cell for p in PARAMETERS for cell in self.axis(p)})


def cell_seed(seed: int, run: str) -> int:
    """The seed of one Monte Carlo cell: the first 8 bytes (little-endian) of
    sha256(f"{seed}/{run}"). Cells draw independent streams, and a cell's seed does not depend on
    the rest of the grid."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{run}".encode()).digest()[:8], "little") 


def run_name(variant: str, cell: tuple[int, int, int]) -> str:
    W, K, L = cell
    return f"{variant}_W{W}_K{K}_L{L}"
