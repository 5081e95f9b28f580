"""First-call cost of the Numba backend, each round in a fresh Python subprocess: compiling into
an empty NUMBA_CACHE_DIR (cold) against loading the compiled kernel from a populated one
(cached). The figure quoted is simulate()'s ``compile_seconds`` reported by the child; the
benchmark's own time is the whole subprocess (interpreter start, imports, one short run)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

# Goal (issue): a second process reusing the cache is "much faster" than the first one that
# compiles; we read "much" as at least this factor on compile_seconds.
MIN_CACHE_SPEEDUP = 3.0

COLD_ROUNDS = 2
CACHED_ROUNDS = 3
Report = Callable[[str], None]
CHILD = """
import json
from edgewalk import graph, policy
from edgewalk.planning import simulate
pol = policy.pretrained(graph.path_star(15, 15, 5))
r = simulate(pol, rollouts=1, backend="numba", threads=1, method="step")
print(json.dumps({"compile_seconds": r.compile_seconds}))
"""


def first_call(cache_dir: Path) -> float:
    """simulate()'s compile_seconds in a fresh interpreter using ``cache_dir`` as the Numba
    cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(json.loads(out.splitlines()[-1])["compile_seconds"])


@pytest.fixture(scope="module")
def compile_seconds() -> dict[str, list[float]]:
    """compile_seconds of every child run in this module, by kind ("cold" or "cached")."""
    return {"cold": [], "cached": []}


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory,
               compile_seconds: dict[str, list[float]]) -> Path:
    """A cache directory populated by one cold child (whose figure counts as a cold round)."""
    cache = tmp_path_factory.mktemp("numba-cache-warm")
    compile_seconds["cold"].append(first_call(cache))
    assert any(cache.rglob("*.nbi")), "the cold run wrote no Numba cache index"
    return cache


def test_compile_cold(benchmark: BenchmarkFixture, tmp_path: Path,
                      compile_seconds: dict[str, list[float]], report: Report) -> None:
    """First call in a fresh process with an empty NUMBA_CACHE_DIR: full compilation."""
    fresh = iter(range(COLD_ROUNDS))

    def setup() -> tuple[tuple[Path], dict]:
        cache = tmp_path / f"cache-{next(fresh)}"
        cache.mkdir()
        return (cache,), {}

    def run(cache: Path) -> None:
        compile_seconds["cold"].append(first_call(cache))

    benchmark.pedantic(run, setup=setup, rounds=COLD_ROUNDS, iterations=1)
    cold = compile_seconds["cold"]
    benchmark.extra_info.update(compile_seconds=statistics.median(cold), compile_rounds=cold)
    report(f"numba first call, cold cache: {statistics.median(cold):.3f} s compile "
           f"(rounds: {', '.join(f'{s:.3f}' for s in cold)})")


def test_compile_cached(benchmark: BenchmarkFixture, warm_cache: Path,
                        compile_seconds: dict[str, list[float]], report: Report) -> None:
    """First call in a fresh process whose NUMBA_CACHE_DIR already holds the compiled kernel."""
    cached = compile_seconds["cached"]
    benchmark.pedantic(lambda: cached.append(first_call(warm_cache)), rounds=CACHED_ROUNDS,
                       iterations=1)
    cold = statistics.median(compile_seconds["cold"])
    speedup = cold / statistics.median(cached)
    benchmark.extra_info.update(compile_seconds=statistics.median(cached), compile_rounds=cached,
                                cold_compile_seconds=cold, speedup=speedup)
    report(f"numba first call, cached: {statistics.median(cached):.3f} s load, "
           f"{speedup:.1f}x faster than cold {cold:.3f} s (goal: >= {MIN_CACHE_SPEEDUP:g}x)")
    assert speedup >= MIN_CACHE_SPEEDUP
