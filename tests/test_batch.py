"""Batch sweeps: the TOML file, shards and merge, resume, Dask, progress and the SLURM docs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pytest

import edgewalk
from edgewalk import batch, io, study
from edgewalk.cli import main
from edgewalk.kernels import available_cores

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cluster.md"

# 3 grid points x 3 variants = 9 runs of 4 units each (the search wrapper included).
CONFIG = {
    "rollouts": 600, "seed": 7, "budget": 20.0, "block_rollouts": 150, "threads": 2,
    "variants": ["pretrained", "sft+search", "rlvr"], "output": "study.h5",
    "grid": {"W": [2, 3], "K": "1-2", "L": [2], "base": [2, 1, 2]},
}
UNITS = 36


def toml_text(data: dict) -> str:
    """A TOML document for a mapping of scalars, lists and one level of tables."""
    def value(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for table, entries in ((k, v) for k, v in data.items() if isinstance(v, dict)):
        lines += [f"[{table}]", *(f"{k} = {value(v)}" for k, v in entries.items())]
    return "\n".join(lines) + "\n"


def write_config(directory: Path, **changes) -> Path:
    data = {**CONFIG, "output": str(directory / "study.h5"), **changes}
    path = directory / "study.toml"
    path.write_text(toml_text({k: v for k, v in data.items() if v is not None}))
    return path


@pytest.fixture(scope="module")
def reference():
    """The same study from study.sweep: one simulate call per cell, no units."""
    grid = study.Grid((2, 3), (1, 2), (2,), (2, 1, 2))
    return study.sweep(grid, CONFIG["variants"], CONFIG["rollouts"], CONFIG["seed"], CONFIG["budget"],
                       threads=1)


def assert_same_study(got: study.Study, expected: study.Study) -> None:
    """Same cells, bit-identical histograms and exact moments of every run, same fits."""
    assert [json.dumps(asdict(c)) for c in got.cells] == [json.dumps(asdict(c)) for c in expected.cells]
    assert set(got.runs) == set(expected.runs) and got.runs
    for name, a in got.runs.items():
        b = expected.runs[name]
        assert np.array_equal(a.counts, b.counts), name
        assert (a.bin_width, a.hits, a.censored, a.total, a.total_of_squares, a.steps, a.draws_total,
                a.draws_total_of_squares) == (b.bin_width, b.hits, b.censored, b.total,
                                              b.total_of_squares, b.steps, b.draws_total,
                                              b.draws_total_of_squares), name
        assert (a.parameters["rollouts"], a.parameters["first_rollout"], a.parameters["seed"]) == (
            b.parameters["rollouts"], 0, b.parameters["seed"])
    assert [json.dumps(f.to_json()) for f in got.fits] == [json.dumps(f.to_json()) for f in expected.fits]


class CountingSimulate:
    """Stands in for batch.units.compute in the runner: counts calls, optionally interrupts."""

    def __init__(self, interrupt_at: int | None = None):
        self.calls = 0
        self.interrupt_at = interrupt_at
        self.real = batch.units.compute

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


# --- the file -------------------------------------------------------------------------------

def test_the_toml_file_is_read_and_hashed_by_what_determines_results(tmp_path):
    config = batch.load_config(write_config(tmp_path))
    assert config.grid == study.Grid((2, 3), (1, 2), (2,), (2, 1, 2))
    assert (config.rollouts, config.seed, config.block_rollouts, config.threads) == (600, 7, 150, 2)
    assert batch.config_from_mapping(config.to_dict()) == config
    elsewhere = batch.config_from_mapping({**config.to_dict(), "output": "x.h5", "threads": 1,
                                           "backend": "cython", "plots": "p"})
    assert elsewhere.hash == config.hash
    assert batch.config_from_mapping({**config.to_dict(), "seed": 8}).hash != config.hash
    defaults = batch.config_from_mapping({"grid": CONFIG["grid"]})
    assert (defaults.rollouts, defaults.variants, defaults.block_rollouts) == (50_000, study.DEFAULT_VARIANTS, 10_000)


@pytest.mark.parametrize("changes,words", [
    ({"rollout": 5}, "unknown key(s) rollout"),
    ({"rollouts": 0}, "rollouts must be a whole number >= 1"),
    ({"variants": ["sft", "greedy"]}, "variants must be"),
    ({"grid": {"W": [2], "K": "0-3", "L": [2], "base": [2, 1, 2]}}, "grid.K"),
    ({"grid": {"W": [2], "K": [1], "L": [2]}}, "missing: base"),
    ({"backend": "gpu"}, "backend must be one of numba, cython"),
    ({"budget": -1}, "budget (seconds) must be a number >= 0"),
    ({"block_rollouts": 1.5}, "block_rollouts must be a whole number"),
])
def test_a_bad_file_is_refused_naming_the_key_before_any_work(tmp_path, capsys, changes, words):
    path = write_config(tmp_path, **changes)
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert words in error and str(path) in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]


@pytest.mark.parametrize("argv,words", [
    (["--rollouts", "5"], "instead of --rollouts, give the key rollouts"),
    (["--shard", "3/3"], "--shard must be I/N"),
    (["--shard", "x"], "--shard must be I/N"),
])
def test_bad_batch_options_are_refused(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(write_config(tmp_path)), *argv])
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "--shard", "0/2", "--no-plots"])  # no FILE
    assert "--shard needs a sweep FILE" in capsys.readouterr().err


# --- one process, shards, merge -------------------------------------------------------------

def test_the_sweep_file_equals_study_sweep_bit_for_bit(tmp_path, reference, capsys):
    path = write_config(tmp_path)
    assert main(["sweep", str(path), "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] == str(tmp_path / "study.h5")
    written = io.read_study(tmp_path / "study.h5")
    assert_same_study(written, reference)
    assert written.parameters["block_rollouts"] == 150
    assert written.parameters["config_hash"] == batch.load_config(path).hash
    assert not batch.checkpoint_path(tmp_path / "study.h5").exists()
    assert main(["check", str(tmp_path / "study.h5")]) == 0


def test_three_shards_merge_to_the_single_process_sweep(tmp_path, reference, capsys):
    config = batch.load_config(write_config(tmp_path))
    outcomes = [batch.run_sweep(config, shard=(i, 3)) for i in range(3)]
    assert [o.units for o in outcomes] == [12, 12, 12] and all(o.study is None for o in outcomes)
    paths = [str(o.path) for o in outcomes]
    assert paths[1].endswith("study.shard-1-of-3.h5")
    with h5py.File(paths[1]) as f:
        assert f["batch"].attrs["complete"] and f["batch"].attrs["config_hash"] == config.hash
        assert len(f["runs"]) == 12 and "pretrained_W2_K1_L2@150" in f["runs"]
    merged = tmp_path / "merged.h5"
    assert main(["merge", str(merged), *reversed(paths)]) == 0
    assert "written to" in capsys.readouterr().out
    assert_same_study(io.read_study(merged), reference)
    assert main(["check", str(merged)]) == 0


def test_merge_refuses_mixed_duplicated_missing_and_incomplete_shards(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config = batch.load_config(write_config(tmp_path / "a"))
    other_seed = batch.load_config(write_config(tmp_path / "b", seed=8))
    shards = [batch.run_sweep(config, shard=(i, 3)).path for i in range(3)]
    stranger = batch.run_sweep(other_seed, shard=(2, 3)).path
    out = tmp_path / "merged.h5"

    with pytest.raises(ValueError) as error:
        batch.merge(out, [shards[0], shards[1], stranger])
    message = str(error.value)
    assert "different seeds" in message and "seed 8: " + str(stranger) in message
    assert "different configurations (differing in seed)" in message

    with pytest.raises(ValueError) as error:
        batch.merge(out, [shards[0], shards[0], shards[2]])
    message = str(error.value)
    assert f"shard 0/3 given more than once: {shards[0]}, {shards[0]}" in message
    assert "missing shard(s) 1/3" in message

    two = batch.run_sweep(config, shard=(0, 2)).path
    with pytest.raises(ValueError, match="different shard counts"):
        batch.merge(out, [*shards, two])

    with h5py.File(shards[1], "r+") as f:  # an unfinished array task
        del f["runs"][sorted(f["runs"])[0]]
    with pytest.raises(ValueError, match=r"shard 1/3 \(.*\) lacks 1 of its 12 units"):
        batch.merge(out, shards)
    edgewalk.write(tmp_path / "plain.h5", {})
    with pytest.raises(ValueError, match="plain.h5: not an edgewalk shard file"):
        batch.merge(out, [shards[0], tmp_path / "plain.h5"])
    with pytest.raises(ValueError, match="study.toml: cannot read it as HDF5"):
        batch.merge(out, [shards[0], tmp_path / "a" / "study.toml"])
    assert not out.exists()


# --- resume ---------------------------------------------------------------------------------

def test_an_interrupted_sweep_resumes_without_recomputing_finished_units(tmp_path, reference, monkeypatch):
    config = batch.load_config(write_config(tmp_path))
    interrupted = CountingSimulate(interrupt_at=11)
    monkeypatch.setattr(batch.runner, "compute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batch.run_sweep(config, checkpoint_seconds=0)
    parts = Path(f"{batch.checkpoint_path(config.output)}.parts")
    assert not Path(config.output).exists()
    stored = []
    for part in sorted(parts.glob("part-*.h5")):
        with h5py.File(part) as f:
            assert not f["batch"].attrs["complete"]
            stored.append(len(f["runs"]))
    assert stored == [1] * 10  # each checkpoint holds only the unit finished since the last one

    resumed = CountingSimulate()
    monkeypatch.setattr(batch.runner, "compute", resumed)
    outcome = batch.run_sweep(config)
    assert (resumed.calls, outcome.reused, outcome.computed) == (UNITS - 10, 10, UNITS - 10)
    assert_same_study(io.read_study(config.output), reference)
    assert not parts.exists()

    again = CountingSimulate()
    monkeypatch.setattr(batch.runner, "compute", again)
    assert batch.run_sweep(config).computed == 0 and again.calls == 0  # complete: nothing to do
    assert_same_study(io.read_study(config.output), reference)


def test_a_grown_sweep_computes_only_its_new_cells(tmp_path, monkeypatch):
    small = batch.load_config(write_config(tmp_path, variants=["pretrained", "rlvr"]))
    batch.run_sweep(small)
    grown = batch.load_config(write_config(tmp_path, variants=["pretrained", "rlvr", "distilled"]))
    counting = CountingSimulate()
    monkeypatch.setattr(batch.runner, "compute", counting)
    outcome = batch.run_sweep(grown)
    assert counting.calls == outcome.computed == 3 * 4  # distilled at 3 grid points, 4 units each
    runs = io.read_study(grown.output).runs
    assert {name.split("_")[0] for name in runs} == {"pretrained", "rlvr", "distilled"}


def test_a_shard_resumes_from_its_own_file(tmp_path, monkeypatch):
    config = batch.load_config(write_config(tmp_path))
    monkeypatch.setattr(batch.runner, "compute", CountingSimulate(interrupt_at=5))
    with pytest.raises(KeyboardInterrupt):
        batch.run_sweep(config, shard=(1, 3), checkpoint_seconds=0)
    counting = CountingSimulate()
    monkeypatch.setattr(batch.runner, "compute", counting)
    outcome = batch.run_sweep(config, shard=(1, 3))
    assert (outcome.reused, outcome.computed, counting.calls) == (4, 8, 8)


# --- Dask -----------------------------------------------------------------------------------

def test_local_cluster_shape_never_oversubscribes():
    assert batch.local_cluster_shape(2, None) == (2, 1)
    assert batch.local_cluster_shape(8, 2) == (4, 2)
    assert batch.local_cluster_shape(1, 4) == (1, 1)
    for cores in range(1, 9):
        for threads in (None, 1, 2, 3):
            workers, per = batch.local_cluster_shape(cores, threads)
            assert workers * per <= cores


@pytest.mark.slow
def test_a_two_worker_local_cluster_gives_the_single_process_result(tmp_path, reference):
    distributed = pytest.importorskip("distributed")
    config = batch.load_config(write_config(tmp_path, threads=None))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        outcome = batch.run_sweep(config, dask=cluster.scheduler_address)
        with distributed.Client(cluster) as client:
            environments = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert len(environments) == 2 and set(environments.values()) == {"1"}
    assert outcome.computed == UNITS
    assert_same_study(io.read_study(config.output), reference)
    assert {r.parameters["threads"] for r in outcome.study.runs.values()} == {1}


@pytest.mark.slow
def test_dask_local_from_the_command_line(tmp_path, reference, capsys):
    pytest.importorskip("distributed")
    path = write_config(tmp_path, threads=None)
    assert main(["sweep", str(path), "--dask", "local", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(tmp_path / "study.h5")
    assert_same_study(io.read_study(tmp_path / "study.h5"), reference)


def test_an_unwritable_output_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    counting = CountingSimulate()
    monkeypatch.setattr(batch.runner, "compute", counting)
    path = write_config(tmp_path, output=str(tmp_path / "nowhere" / "study.h5"))
    with pytest.raises(SystemExit):
        main(["sweep", str(path)])
    assert "output: " in capsys.readouterr().err and counting.calls == 0


# --- progress -------------------------------------------------------------------------------

def test_progress_shows_cells_and_rollouts_per_second(tmp_path, capsys, monkeypatch):
    import functools

    import tqdm

    monkeypatch.setattr(tqdm, "tqdm", functools.partial(tqdm.tqdm, mininterval=0))  # draw every update
    config = batch.load_config(write_config(tmp_path, variants=["rlvr"]))
    batch.run_sweep(config, progress=True)
    err = capsys.readouterr().err
    assert "cells 3/3" in err and "rollout/s" in err and "1.80k/1.80k" in err
    batch.run_sweep(batch.load_config(write_config(tmp_path, variants=["rlvr"], seed=1)))
    assert capsys.readouterr().err == ""  # stderr is not a terminal: no bar by default


# --- the docs -------------------------------------------------------------------------------

def _script_commands(name: str) -> tuple[str, str]:
    """(the whole script, its command lines between the markers) of a script in docs/cluster.md."""
    text = DOCS.read_text()
    script = re.search(rf"`{re.escape(name)}`:\n\n```bash\n(.*?)```", text, re.S).group(1)
    commands = re.search(r"# --- begin commands.*?\n(.*?)# --- end commands", script, re.S).group(1)
    return script, commands


def test_the_docs_example_sweep_file_is_valid():
    block = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.S).group(1)
    config = batch.config_from_mapping(batch.config.tomllib.loads(block), "docs/cluster.md")
    assert config.output == "study.h5" and config.grid.K == tuple(range(1, 16))


@pytest.mark.slow
def test_the_slurm_scripts_in_the_docs_run_locally(tmp_path, reference):
    array_script, sweep_commands = _script_commands("sweep.sbatch")
    _, merge_commands = _script_commands("merge.sbatch")
    low, high = map(int, re.search(r"#SBATCH --array=(\d+)-(\d+)", array_script).groups())
    assert "edgewalk sweep study.toml --shard" in sweep_commands
    assert f"-of-{high - low + 1}.h5" in merge_commands
    config = {k: v for k, v in CONFIG.items() if k != "threads"}  # all cores of the task
    (tmp_path / "study.toml").write_text(toml_text(config))  # output = "study.h5", relative
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SLURM_CPUS_PER_TASK": str(available_cores())}  # as SLURM sets it: the task's CPU set
    for task in range(low, high + 1):
        subprocess.run(["bash", "-euc", sweep_commands], cwd=tmp_path, check=True, timeout=120,
                       env={**env, "SLURM_ARRAY_TASK_ID": str(task)}, capture_output=True)
    assert len(list(tmp_path.glob("study.shard-*-of-4.h5"))) == 4
    done = subprocess.run(["bash", "-euc", merge_commands], cwd=tmp_path, timeout=120, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "all agree" in done.stdout
    assert_same_study(io.read_study(tmp_path / "study.h5"), reference)


def test_trained_policies_batch_equals_the_sweep_and_trains_once_per_graph(tmp_path, monkeypatch):
    """policies = "trained": the units carry the trained policy (workers do not retrain) and the
    batch equals study.sweep with the same setting bit for bit."""
    from edgewalk import training

    grid = study.Grid((2, 3), (1, 2), (2,), (2, 1, 2))
    variants = ["sft", "rlvr+search", "distilled"]
    expected = study.sweep(grid, variants, 600, 7, 20.0, threads=1, policies="trained")
    assert expected.parameters["policies"] == "trained"
    calls = []
    original = training.train_rlvr
    monkeypatch.setattr(training, "train_rlvr", lambda *a, **k: calls.append(1) or original(*a, **k))
    config = batch.load_config(write_config(tmp_path, variants=variants, policies="trained"))
    got = batch.run_sweep(config)
    assert len(calls) == len(grid.cells())  # one RLVR training per graph, shared by three uses
    assert_same_study(io.read_study(got.path), expected)


@pytest.mark.slow
def test_sigterm_ends_a_sweep_within_seconds_keeping_its_finished_units(tmp_path):
    """SLURM's SIGTERM at the time limit: the sweep checkpoints the units finished since the last
    checkpoint (hundreds of small ones here) and exits 130 at once; a rerun resumes from them.
    Before units files dropped their per-run copies for people and the version lookups were
    cached, this checkpoint took over 10 s."""
    path = write_config(tmp_path, rollouts=1000000, seed=0, budget=600.0, block_rollouts=10000, threads=1,
                        variants=["sft+search", "rlvr+search"],  # step by step: no leap
                        grid={"W": [2, 4, 6, 8], "K": "1-8", "L": "2-6", "base": [6, 3, 5]})
    process = subprocess.Popen([sys.executable, "-m", "edgewalk.cli", "sweep", str(path), "--no-progress"],
                               cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "study.partial.h5.parts"
    time.sleep(12)  # planned, and well into the units, with no checkpoint yet (every 30 s)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert time.monotonic() - sent < 5.0
    assert process.returncode == 130 and "interrupted" in process.stderr.read()
    stored = sorted(parts.iterdir())
    assert len(stored) == 1 and not (tmp_path / "study.h5").exists()
    with h5py.File(stored[0]) as f:
        assert len(f["runs"]) > 50
