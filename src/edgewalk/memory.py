"""How much memory a problem needs, and the limit it is held to: the machine's available memory,
or a smaller one the user sets (``--max-memory``, ``EDGEWALK_MAX_MEMORY`` or :func:`set_limit`).
Every large allocation is estimated from the parameters first and refused with the estimate
(``SizeError``) when it would not fit, instead of being left to exhaust the machine."""

from __future__ import annotations

import math
import os
import re

from .errors import InputError, SizeError

_limit: int | None = None
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def available_bytes() -> int:
    """Memory the machine can give now (MemAvailable on Linux, else the physical memory)."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_size(text: str, name: str = "--max-memory") -> int:
    """Bytes from ``"512M"``, ``"4G"``, ``"1.5T"`` or a plain number of bytes."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not found or float(found.group(1)) <= 0:
        raise InputError(f"{name} must be a size such as 512M, 4G or 1.5T, got {text!r}")
    return int(float(found.group(1)) * _UNITS[found.group(2).upper()])


def set_limit(limit: int | str | None) -> None:
    """Hold every later estimate to ``limit`` bytes (or a size such as "4G"); None restores the
    default (the machine's available memory)."""
    global _limit
    _limit = None if limit is None else parse_size(limit) if isinstance(limit, str) else int(limit)


def limit() -> int:
    """The number of bytes a problem may need: the limit set, else EDGEWALK_MAX_MEMORY, else the
    memory available now."""
    if _limit is not None:
        return _limit
    if os.environ.get("EDGEWALK_MAX_MEMORY"):
        return parse_size(os.environ["EDGEWALK_MAX_MEMORY"], "EDGEWALK_MAX_MEMORY")
    return available_bytes()


def format_bytes(n: float) -> str:
    if isinstance(n, int) and n >= 2**70:  # beyond float range possibly: counted in EiB exactly
        return f"{format_count(n >> 60)} EiB"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(n) < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"


def format_count(n: int) -> str:
    """A count for a message: ``1,234,567``, or ``1.23e+4567`` when long (counts computed from
    size parameters can have more digits than a float or ``str`` can take)."""
    n = int(n)
    if n < 10**15:
        return f"{n:,}"
    shift = max(0, n.bit_length() - 53)
    exponent = math.log10(n >> shift) + shift * math.log10(2)
    power = math.floor(exponent)
    mantissa = 10 ** (exponent - power)
    if round(mantissa, 2) >= 10:
        mantissa, power = mantissa / 10, power + 1
    return f"{mantissa:.3g}e+{power}"


def require(needed: float, what: str, parameter: str | None = None, allowed: int | None = None) -> None:
    """Raise SizeError naming ``what`` (it starts with the parameter that sets the size) and the
    estimate if ``needed`` bytes exceed ``allowed`` (default :func:`limit`)."""
    allowed = limit() if allowed is None else allowed
    if needed > allowed:
        raise SizeError(f"{what} needs about {format_bytes(needed)} of memory, more than the "
                        f"{format_bytes(allowed)} allowed (the memory available, or --max-memory); "
                        "choose a smaller problem", parameter)


def chain_bytes(n_states: int, n_transitions: int) -> float:
    """What building a graph's chain and one policy on it holds at its peak (the construction's
    temporaries, the CSR rows, the probabilities and the alias tables). Whole numbers in, a whole
    number out: sizes counted from parameters may be beyond the range of a float."""
    return 150 * n_transitions + 400 * n_states
