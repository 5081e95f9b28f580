"""The cost of a sweep's checkpoints (edgewalk.batch.run_sweep): the seconds spent writing units
files against the seconds of the whole sweep, measured in the same run, on a sweep of many small
units (the search-wrapper variants run step by step; each unit takes milliseconds), which is
where checkpoints cost the most. Run with ``pytest bench/test_checkpoint.py -s``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from pytest_benchmark.fixture import BenchmarkFixture

from edgewalk import batch
from edgewalk.batch import runner

# Goal (issue "Hardening"): checkpoints cost a small fraction of the run; we read "small" as
# at most this share of the sweep's wall time, with a checkpoint every CHECKPOINT_SECONDS.
MAX_CHECKPOINT_SHARE = 0.10
CHECKPOINT_SECONDS = 5.0
CONFIG = {"rollouts": 200_000, "seed": 0, "budget": 600.0, "block_rollouts": 10_000, "threads": 1,
          "variants": ["sft+search", "rlvr+search"],
          "grid": {"W": [2, 4, 6, 8], "K": "1-8", "L": "2-6", "base": [6, 3, 5]}}


def test_checkpoint_share_of_a_sweep_of_small_units(benchmark: BenchmarkFixture, tmp_path: Path,
                                                     monkeypatch, report: Callable[[str], None]) -> None:
    written: list[tuple[float, int]] = []
    append = runner.append_units

    def timed(path, config, shard, expected, results):
        start = time.perf_counter()
        append(path, config, shard, expected, results)
        written.append((time.perf_counter() - start, len(results)))
    monkeypatch.setattr(runner, "append_units", timed)
    rounds: list[float] = []

    def sweep() -> None:
        config = batch.config_from_mapping({**CONFIG, "output": str(tmp_path / f"s{len(rounds)}.h5")}, "bench")
        start = time.perf_counter()
        runner.run_sweep(config, progress=False, checkpoint_seconds=CHECKPOINT_SECONDS)
        rounds.append(time.perf_counter() - start)

    benchmark.pedantic(sweep, rounds=2, iterations=1)
    seconds = sum(s for s, _ in written)
    units = sum(n for _, n in written)
    share = seconds / sum(rounds)
    benchmark.extra_info.update(checkpoint_seconds=seconds, checkpointed_units=units,
                                ms_per_unit=1e3 * seconds / max(units, 1), sweep_seconds=sum(rounds),
                                checkpoint_share=share)
    report(f"checkpoints: {len(written)} of {units} units in {seconds:.2f} s "
           f"({1e3 * seconds / max(units, 1):.2f} ms per unit), {share:.1%} of the sweeps' "
           f"{sum(rounds):.1f} s (goal: <= {MAX_CHECKPOINT_SHARE:.0%})")
    assert written, "no checkpoint was written: the sweep finished within CHECKPOINT_SECONDS"
    assert share <= MAX_CHECKPOINT_SHARE
