"""Shared set-up for the benchmarks: the paper's graph and a summary printed at the end of the
run. Run with ``pytest bench/`` (bench/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from edgewalk import graph, policy
from edgewalk.policy import Policy

BENCH_DIR = Path(__file__).resolve().parent
PAPER_GRAPH = (15, 15, 5)  # W, K, L
_SUMMARY: list[str] = []


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Keep the benches out of a run that did not name bench/ (or a file in it) explicitly,
    e.g. a plain ``pytest`` that falls back to the repository root when tests/ is missing."""
    named = (Path(arg.split("::")[0]).resolve() for arg in config.args)
    if any(p == BENCH_DIR or BENCH_DIR in p.parents for p in named):
        return None
    return True


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print every figure the benches reported, one readable line each."""
    if _SUMMARY:
        terminalreporter.section("edgewalk benchmark figures")
        for line in _SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def report() -> Callable[[str], None]:
    """Add a line to the end-of-run summary."""
    return _SUMMARY.append


@pytest.fixture(scope="session")
def pretrained() -> Policy:
    """The pretrained (uniform) policy on the paper's graph W = K = 15, L = 5."""
    return policy.pretrained(graph.path_star(*PAPER_GRAPH))
