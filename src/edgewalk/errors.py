"""The errors edgewalk raises on purpose, and the exit status the command line gives each.

Every one is a ValueError, so ``except ValueError`` catches them all. The command line prints the
message on one line, prefixed ``edgewalk: error:`` or ``edgewalk: refused:``, and exits with
``EXIT_STATUS`` of the class (the first class in the MRO that has one).
"""

from __future__ import annotations


class InputError(ValueError):
    """A parameter or an input file that is not allowed; the message names it and what is.
    ``parameter`` is the name of the parameter the message starts with, if it starts with one
    (the command line then names the option instead, e.g. ``--max-steps`` for ``max_steps``)."""

    exit_status = 2

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class CorruptFileError(InputError):
    """A file that claims to be an edgewalk file but whose contents are inconsistent or missing."""


class RefusedError(InputError):
    """A run that is allowed but too big: the message gives the estimate and the way out."""

    exit_status = 3


class CostError(RefusedError):
    """A run estimated to take far too long: use the exact solver, run less, or force it."""


class SizeError(RefusedError):
    """A problem whose memory estimate exceeds what the machine (or --max-memory) allows."""


class RunError(RuntimeError):
    """A failure while running that no check could have caught (a full disk, a lost cluster)."""

    exit_status = 4


EXIT_STATUS = {
    0: "success",
    1: "a check failed (edgewalk check found a disagreement; every rollout was censored)",
    2: "bad input: a parameter or file that is not allowed (nothing was written)",
    3: "refused: the run is too big or too slow for the limits (nothing was written)",
    4: "the run failed while running (for example a full disk); no partial output was left",
    130: "interrupted (SIGINT or SIGTERM); no partial output was left",
    141: "stdout was closed by its reader (a broken pipe)",
}
