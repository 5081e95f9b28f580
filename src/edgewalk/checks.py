"""One validator per kind of parameter, used by every route (library, command line, sweep files).

Each returns the value in its canonical type or raises :class:`errors.InputError` with a one-line
message that names the parameter and what is allowed, e.g.
``rollouts must be a whole number >= 1, got 0``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import InputError

MAX_SEED = 2**64 - 1
# The largest learning rate: logits move by lr times a gradient or an Adam step (about 1) each
# iteration, and must stay far inside a float's range (1.8e308) over any number of iterations.
MAX_LR = 1e100
# The most iterations a training may take: a million steps of the smallest problem already take
# minutes to hours, and a count beyond it is a typing error, not a training.
MAX_ITERATIONS = 10**6


def whole(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """A whole number (an int, not a bool or a float) in [low, high]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or (
        low is not None and value < low) or (high is not None and value > high):
        raise InputError(f"{name} must be a whole number {_range(low, high)}, got {value!r}", _parameter(name))
    return int(value)


def real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in the interval given (closed unless ``low_open``/``high_open``)."""
    ok = (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)) and math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        if low is not None and high is not None:
            allowed = f"in {left}{low:g}, {high:g}{right}"
        elif low is not None:
            allowed = f"{'>' if low_open else '>='} {low:g}"
        elif high is not None:
            allowed = f"{'<' if high_open else '<='} {high:g}"
        else:
            allowed = "finite"
        raise InputError(f"{name} must be a number {allowed}, got {value!r}", _parameter(name))
    return float(value)


def learning_rate(name: str, value: Any) -> float:
    """A learning rate: a number in (0, MAX_LR]."""
    return real(name, value, 0.0, MAX_LR, low_open=True)


def iterations(name: str, value: Any, low: int = 1) -> int:
    """A number of training iterations: a whole number in [low, MAX_ITERATIONS]."""
    return whole(name, value, low, MAX_ITERATIONS)


def seed(name: str, value: Any) -> int:
    """A seed: a whole number in [0, 2**64 - 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not (
        0 <= value <= MAX_SEED):
        raise InputError(f"{name} must be a whole number in [0, 2**64 - 1], got {value!r}", _parameter(name))
    return int(value)


def choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """One of ``allowed``."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}", _parameter(name))
    return value


def distinct(name: str, values: Iterable[Any]) -> tuple:
    """A non-empty sequence without repeats."""
    values = tuple(values)
    if not values:
        raise InputError(f"{name} must name at least one value", _parameter(name))
    repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
    if repeated:
        raise InputError(f"{name} must not repeat a value, got {', '.join(map(str, repeated))} twice",
                         _parameter(name))
    return values


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"in [{_number(low)}, {_number(high)}]"
    if low is not None:
        return f">= {_number(low)}"
    if high is not None:
        return f"<= {_number(high)}"
    return ""


def _number(value: int) -> str:
    """Large powers of two as 2**k (2**62, not 4611686018427387904)."""
    if value >= 2**20 and value & (value - 1) == 0:
        return f"2**{value.bit_length() - 1}"
    return str(value)


def _parameter(name: str) -> str | None:
    """The parameter a message about ``name`` starts with ("tail" for "tail (points ...)")."""
    found = re.match(r"[A-Za-z_][A-Za-z0-9_]*", name)
    return found.group(0) if found else None
