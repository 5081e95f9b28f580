"""Cycles and instructions per step of the C kernels, where the machine lets us count them.

- ``test_cycles_per_step``: ``perf stat -e cycles,instructions`` (Debian package linux-perf) on
  two child processes that run the same kernel for R and 2R rollouts; the difference divided by
  the difference in steps is the kernel's cost per step (start-up and compilation cancel).
  Skipped where perf is missing or the machine exposes no hardware counters (virtual machines
  often do not).
- ``test_instructions_per_step``: ``valgrind --tool=callgrind`` counts the instructions executed
  inside each C block function (``--toggle-collect``) of one child process; deterministic for a
  given compiler and build, so successive runs compare exactly. Skipped without valgrind.

Both report figures only; they check that the counted runs gave the same results as the same runs
outside the counter (the measurement measured the intended work).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from typing import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

Report = Callable[[str], None]

# (name, policy, search mode or "gradient", rollouts): each a few million steps.
CASES = [
    ("plain-pretrained", "pretrained", "none", 300),
    ("plain-rlvr", "rlvr", "none", 3000),
    ("search-mask-sft", "sft", "mask", 3000),
    ("search-reject-sft", "sft", "reject", 3000),
    ("gradient-pretrained", "pretrained", "gradient", 300),
    ("gradient-rlvr", "rlvr", "gradient", 3000),
]
BLOCK = {"none": "ew_plain_block", "mask": "ew_search_block", "reject": "ew_search_block",
         "gradient": "ew_gradient_block"}
CHILD = """
import json, sys
from edgewalk import graph, policy
from edgewalk.planning import gradient_statistics, simulate
name, mode, rollouts = sys.argv[1], sys.argv[2], int(sys.argv[3])
pol = getattr(policy, name)(graph.path_star(15, 15, 5))
if mode == "gradient":
    r = gradient_statistics(pol, rollouts=rollouts, backend="cython", threads=1)
else:
    r = simulate(pol, rollouts=rollouts, backend="cython", threads=1, search=mode, method="step")
print(json.dumps({"steps": r.steps, "hits": r.hits}))
"""


def run_child(prefix: list[str], name: str, mode: str, rollouts: int) -> tuple[dict, str]:
    """The child's result and its stderr (where perf and valgrind report)."""
    out = subprocess.run([*prefix, sys.executable, "-c", CHILD, name, mode, str(rollouts)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def perf_counts(stderr: str) -> dict[str, float] | None:
    """cycles and instructions from ``perf stat -x,`` output, None if either is unsupported."""
    counts = {}
    for line in stderr.splitlines():
        fields = line.split(",")
        event = fields[2].split(":")[0] if len(fields) > 2 else ""
        if event in ("cycles", "instructions"):
            try:
                counts[event] = float(fields[0])
            except ValueError:  # "<not supported>", "<not counted>"
                return None
    return counts if set(counts) == {"cycles", "instructions"} else None


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cycles_per_step(benchmark: BenchmarkFixture, case: tuple, report: Report) -> None:
    name, policy_name, mode, rollouts = case
    if shutil.which("perf") is None:
        pytest.skip("perf is not installed (Debian: linux-perf)")
    prefix = ["perf", "stat", "-x,", "-e", "cycles,instructions"]
    probe = perf_counts(run_child(prefix, policy_name, mode, 1)[1])
    if probe is None:
        pytest.skip("this machine exposes no hardware counters to perf (cycles <not supported>)")
    runs = []
    benchmark.pedantic(lambda: runs.extend(run_child(prefix, policy_name, mode, r)
                                           for r in (rollouts, 2 * rollouts)),
                       rounds=1, iterations=1)
    (small, small_err), (large, large_err) = runs
    counts = [perf_counts(small_err), perf_counts(large_err)]
    steps = large["steps"] - small["steps"]
    per_step = {k: (counts[1][k] - counts[0][k]) / steps for k in ("cycles", "instructions")}
    benchmark.extra_info.update(cycles_per_step=per_step["cycles"],
                                instructions_per_step=per_step["instructions"], steps=steps)
    report(f"cython {name}: {per_step['cycles']:.1f} cycles, {per_step['instructions']:.1f} "
           f"instructions per step (perf stat)")
    assert steps > 0 and per_step["instructions"] > 0


def test_instructions_per_step(benchmark: BenchmarkFixture, tmp_path, report: Report) -> None:
    """Instructions per step inside every C block function (callgrind), one child per case."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        pytest.skip("valgrind is not installed")
    results: dict[str, tuple[dict, float]] = {}

    def count_all() -> None:
        for name, policy_name, mode, rollouts in CASES:
            out = str(tmp_path / f"callgrind-{name}.out")
            result, _ = run_child(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                   f"--toggle-collect={BLOCK[mode]}"], policy_name, mode, rollouts)
            totals = subprocess.run(["callgrind_annotate", out], check=True,
                                    capture_output=True, text=True).stdout
            match = re.search(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", totals, re.MULTILINE)
            results[name] = result, int(match.group(1).replace(",", ""))

    benchmark.pedantic(count_all, rounds=1, iterations=1)
    for name, policy_name, mode, rollouts in CASES:
        result, instructions = results[name]
        expected, _ = run_child([], policy_name, mode, rollouts)
        assert result == expected, f"{name}: the counted run differs from the same run uncounted"
        per_step = instructions / result["steps"]
        benchmark.extra_info[f"{name}_instructions_per_step"] = per_step
        report(f"cython {name}: {per_step:.1f} instructions per step (callgrind)")
