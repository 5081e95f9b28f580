"""Bad input, faults and interruptions, as a careful user would try them: every case is refused
before any work with a one-line message naming the parameter or file and a documented exit
status, and leaves no output (or the previous output untouched). One row per case."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest

import edgewalk
from edgewalk import io
from edgewalk.cli import main
from edgewalk.errors import CorruptFileError

SMALL = ["-W", "3", "-K", "2", "-L", "2"]


@dataclass
class Case:
    """``argv(tmp_path)`` gives the command line (after preparing files); the command must exit
    with ``status`` and print ``words`` on stderr; ``untouched`` files keep their bytes and
    ``absent`` files do not appear."""

    name: str
    argv: Callable[[Path], list[str]]
    status: int
    words: str
    absent: tuple[str, ...] = ("out.h5",)
    untouched: tuple[str, ...] = ()


def _edge_list(tmp: Path) -> Path:
    path = tmp / "line.edges"
    path.write_text("a b\nb c\n")
    return path


def _text(tmp: Path, name: str = "notes.txt") -> Path:
    path = tmp / name
    path.write_text("not an edgewalk file\n")
    return path


def _run_file(tmp: Path, name: str = "runs.h5") -> Path:
    path = tmp / name
    assert main(["run", *SMALL, "--policy", "rlvr", "--rollouts", "200", "--out", str(path)]) == 0
    return path


def _versioned(tmp: Path, version) -> Path:
    """A run file with no runs whose root says format_version ``version``."""
    path = tmp / f"v{version}.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "edgewalk.hitting_times"
        f.attrs["format_version"] = version
        f.create_group("runs")
    return path


def _training_file(tmp: Path, name: str = "trained.h5") -> Path:
    path = tmp / name
    assert main(["train", "--method", "rlvr", *SMALL, "--iterations", "3", "--no-plots",
                 "--out", str(path)]) == 0
    return path


def _truncated(tmp: Path) -> Path:
    source = _training_file(tmp)
    path = tmp / "truncated.h5"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    return path


def _npy(tmp: Path, name: str, array) -> Path:
    path = tmp / name
    np.save(path, array)
    return path


def _study_file(tmp: Path, name: str = "study.h5") -> Path:
    path = tmp / name
    assert main(["sweep", "--W", "2", "--K", "1-2", "--L", "2", "--base", "2,1,2", "--variants", "rlvr",
                 "--rollouts", "200", "--no-plots", "--out", str(path)]) == 0
    return path


def _study_without_cells(tmp: Path) -> Path:
    path = _study_file(tmp, "broken-study.h5")
    with h5py.File(path, "r+") as f:
        del f["study/cells"]
    return path


def _shards(tmp: Path) -> tuple[Path, Path]:
    config = tmp / "s.toml"
    config.write_text('rollouts = 200\nvariants = ["rlvr"]\nblock_rollouts = 100\noutput = "s.h5"\n'
                      "[grid]\nW = [2]\nK = [1]\nL = [2]\nbase = [2, 1, 2]\n")
    here = os.getcwd()
    os.chdir(tmp)
    try:
        for i in range(2):
            assert main(["sweep", str(config), "--shard", f"{i}/2"]) == 0
    finally:
        os.chdir(here)
    return tmp / "s.shard-0-of-2.h5", tmp / "s.shard-1-of-2.h5"


def _huge_sweep_file(tmp: Path) -> Path:
    path = tmp / "huge.toml"
    path.write_text('[grid]\nW = "1-100000"\nK = "1-3"\nL = "5"\nbase = [6, 3, 5]\n')
    return path


def _huge_range_file(tmp: Path) -> Path:
    path = tmp / "huge.toml"
    path.write_text('[grid]\nW = "1-100000000"\nK = "1-3"\nL = "5"\nbase = [6, 3, 5]\n')
    return path


def _png_dir(tmp: Path) -> Path:
    directory = tmp / "plots"
    directory.mkdir()
    (directory / "rlvr_W3_K2_L2.png").write_bytes(b"an older figure")
    return directory


CASES = [
    # 1. problem size
    Case("huge W", lambda t: ["run", "-W", "100000000", "-K", "2", "-L", "2", "--policy", "rlvr",
                              "--rollouts", "100", "--out", str(t / "out.h5")], 3, "W = 100000000"),
    Case("huge K", lambda t: ["run", "-W", "2", "-K", "99999999", "-L", "2", "--policy", "rlvr",
                              "--out", str(t / "out.h5")], 3, "needs about"),
    Case("huge L", lambda t: ["run", "-W", "2", "-K", "2", "-L", "1000000000", "--policy", "rlvr",
                              "--out", str(t / "out.h5")], 3, "needs about"),
    Case("graph over --max-memory", lambda t: ["run", "-W", "200", "-K", "200", "-L", "10", "--policy", "rlvr",
                                               "--rollouts", "1000", "--max-memory", "1G",
                                               "--out", str(t / "out.h5")], 3, "1 GiB allowed"),
    Case("exact over --max-memory", lambda t: ["exact", "-W", "100", "-K", "100", "-L", "10", "--policy", "sft",
                                               "--max-memory", "100M"], 3, "needs about"),
    Case("huge bins", lambda t: ["run", *SMALL, "--policy", "rlvr", "--max-steps", "10000000000",
                                 "--bins", "100000000000", "--out", str(t / "out.h5")], 3, "--bins"),
    Case("bad --max-memory", lambda t: ["run", *SMALL, "--max-memory", "lots", "--out", str(t / "out.h5")],
         2, "--max-memory"),
    Case("huge sweep file", lambda t: ["sweep", str(_huge_sweep_file(t))], 3, "huge.toml: grid"),
    Case("huge sweep grid", lambda t: ["sweep", "--W", "1-3000", "--no-plots", "--out", str(t / "out.h5")],
         3, "just to plan"),
    # a range is counted from its bounds, never expanded to find it too long
    Case("huge sweep range", lambda t: ["sweep", "--W", "1-100000000", "--K", "1", "--L", "2", "--base", "2,1,2",
                                        "--no-plots", "--out", str(t / "out.h5")],
         3, "--W '1-100000000' holds 100,000,000 values"),
    Case("huge range in a sweep file", lambda t: ["sweep", str(_huge_range_file(t))],
         3, "huge.toml: grid.W '1-100000000' holds 100,000,000 values"),
    Case("overlapping huge ranges", lambda t: ["sweep", "--K", "1-99999999999,5-800000", "--no-plots",
                                               "--out", str(t / "out.h5")], 3, "holds 99,999,999,999 values"),
    Case("huge topology range", lambda t: ["sweep", "--family", "tree", "--depth", "1-100000000", "--no-plots",
                                           "--out", str(t / "out.h5")], 3, "--depth '1-100000000' holds"),
    Case("huge nodes list", lambda t: ["sweep", "--family", "regular", "--nodes", "4-99999999999", "--no-plots",
                                       "--out", str(t / "out.h5")], 3, "--nodes '4-99999999999' holds"),
    Case("huge degree list", lambda t: ["sweep", "--family", "regular", "--degree", "1-800000", "--no-plots",
                                        "--out", str(t / "out.h5")], 3, "--degree '1-800000' holds 800,000"),
    # a size beyond a float's range is counted in whole numbers
    Case("deep tree sweep", lambda t: ["sweep", "--family", "tree", "--depth", "1-3000", "--no-plots",
                                       "--out", str(t / "out.h5")], 3, "4.92e+903 states"),
    Case("deep tree", lambda t: ["run", "--family", "tree", "--depth", "100000", "--policy", "pretrained",
                                 "--out", str(t / "out.h5")], 3, "e+30103 states"),
    # 2. nothing is overwritten silently
    Case("run over a text file", lambda t: ["run", *SMALL, "--policy", "rlvr", "--out", str(_text(t))],
         2, "not a run file", (), ("notes.txt",)),
    Case("run over a study file", lambda t: ["run", *SMALL, "--policy", "rlvr", "--out", str(_study_file(t))],
         2, "not a run file", (), ("study.h5",)),
    Case("run over a run of the same name", lambda t: ["run", *SMALL, "--policy", "rlvr",
                                                       "--out", str(_run_file(t))],
         2, "already holds run rlvr_W3_K2_L2", (), ("runs.h5",)),
    Case("train over a file", lambda t: ["train", "--method", "rlvr", *SMALL, "--iterations", "2",
                                         "--out", str(_run_file(t))], 2, "--overwrite", (), ("runs.h5",)),
    Case("merge over an existing file", lambda t: ["merge", str(_text(t)), *map(str, _shards(t))],
         2, "--overwrite", (), ("notes.txt",)),
    Case("merge onto one of its shards", lambda t: ["merge", str(_shards(t)[0]), *map(str, _shards(t)),
                                                    "--overwrite"],
         2, "also given as a shard", (), ("s.shard-0-of-2.h5",)),
    Case("plot over a figure", lambda t: ["plot", str(_run_file(t)), "--out", str(_png_dir(t))],
         2, "would replace rlvr_W3_K2_L2.png", (), ("plots/rlvr_W3_K2_L2.png",)),
    Case("run onto its --policy-file", lambda t: ["run", "--policy-file", str(_training_file(t)), "--rollouts", "10",
                                                 "--overwrite", "--out", str(t / "trained.h5")],
         2, "is also the input --policy-file", (), ("trained.h5",)),
    Case("train onto its --init", lambda t: ["train", "--method", "rlvr", "--init", str(_training_file(t)),
                                             "--iterations", "2", "--no-plots", "--overwrite",
                                             "--out", str(t / "trained.h5")],
         2, "is also the input --init", (), ("trained.h5",)),
    Case("run onto its --graph", lambda t: ["run", "--graph", str(_edge_list(t)), "--root", "a", "--policy",
                                            "pretrained", "--rollouts", "10", "--overwrite",
                                            "--out", str(t / "line.edges")],
         2, "is also the input --graph", (), ("line.edges",)),
    Case("--out a device", lambda t: ["run", *SMALL, "--policy", "rlvr", "--rollouts", "10", "--overwrite",
                                      "--out", "/dev/null"], 2, "is not a regular file"),
    Case("--plots the path of --out", lambda t: ["train", "--method", "sft", *SMALL, "--iterations", "2",
                                                 "--out", str(t / "out.h5"), "--plots", str(t / "out.h5")],
         2, "is the path of the output file too"),
    Case("--plots with --no-plots", lambda t: ["sweep", "--W", "2", "--K", "1", "--L", "2", "--base", "2,1,2",
                                               "--no-plots", "--plots", str(t / "p"), "--out", str(t / "out.h5")],
         2, "not allowed with argument"),
    Case("an option the method does not read", lambda t: ["train", "--method", "rlvr", *SMALL, "--iterations", "2",
                                                          "--supervise-backward", "0.5", "--no-plots",
                                                          "--out", str(t / "out.h5")],
         2, "--supervise-backward: --method rlvr does not use it"),
    Case("--detour-rate without detours", lambda t: ["train", "--method", "sft", *SMALL, "--iterations", "2",
                                                     "--detour-rate", "0.5", "--no-plots", "--out", str(t / "out.h5")],
         2, "--detour-rate: only with --mix-traces detours"),
    Case("graph options beside a training file", lambda t: ["run", "-W", "5", "--policy-file", str(_training_file(t)),
                                                            "--out", str(t / "out.h5")],
         2, "the file brings its own graph"),
    Case("--depths with -W", lambda t: ["run", "--depths", "2,2", "-W", "3", "--policy", "rlvr",
                                        "--out", str(t / "out.h5")], 2, "--depths: it replaces -W/--branches"),
    Case("a number that is not whole", lambda t: ["exact", "-W", "nan"], 2,
         "-W/--branches: expected a whole number, got 'nan'"),
    Case("an option without its value", lambda t: ["run", "--max-memory"], 2, "--max-memory: expected one argument"),
    # 3. a clear error, never a traceback
    Case("empty .npy", lambda t: ["run", *SMALL, "--policy-file", str(_text(t, "empty.npy")),
                                  "--out", str(t / "out.h5")], 2, "--policy-file"),
    Case("text as .npy", lambda t: ["run", *SMALL, "--policy-file", str(_text(t, "t.npy")),
                                    "--out", str(t / "out.h5")], 2, "not a readable .npy array"),
    Case(".npz policy file", lambda t: ["run", *SMALL, "--policy-file", str(_npz(t)),
                                        "--out", str(t / "out.h5")], 2, "--policy-file"),
    Case("complex table", lambda t: ["run", *SMALL, "--policy-file",
                                     str(_npy(t, "c.npy", np.eye(43, dtype=complex))),
                                     "--out", str(t / "out.h5")], 2, "real numbers"),
    Case("1-D policy vector", lambda t: ["run", *SMALL, "--policy-file", str(_npy(t, "vec.npy", np.ones(43))),
                                         "--out", str(t / "out.h5")], 2, "expected shape (43, 43) (one row of "
         "next-state probabilities per state), got shape (43,)"),
    Case("diamond lanes of the wrong shape", lambda t: ["run", "--depths", "2,2", "--diamond-lanes", "2,2;3",
                                                        "--out", str(t / "out.h5")],
         2, "--diamond-lanes must give one lane count per diamond: --depths 2,2 has 2 branches of 2 and 2 "
         "diamonds, so 2 groups of 2 and 2 counts, ';' between groups and ',' within (e.g. 2,2;2,2); "
         "got '2,2;3' (2 groups of 2 and 1)"),
    Case("diamond lanes of zero", lambda t: ["run", "--depths", "2,2", "--diamond-lanes", "2,0;3,3",
                                             "--out", str(t / "out.h5")],
         2, "--diamond-lanes: lane counts must be whole numbers >= 1, got 0 (branch 1, diamond 2)"),
    Case("plot of a newer format version", lambda t: ["plot", str(_versioned(t, 99)), "--out", str(t / "p")],
         2, "v99.h5: edgewalk file format version 99; this edgewalk", absent=("p",)),
    Case("plot of a format version that is no number", lambda t: ["plot", str(_versioned(t, "x")), "--out",
                                                                  str(t / "p")],
         2, "vx.h5: edgewalk file format version 'x'", absent=("p",)),
    Case("plot of a run file without runs", lambda t: ["plot", str(_versioned(t, 1)), "--out", str(t / "p")],
         2, "v1.h5: a run file that holds no runs; nothing to plot", absent=("p",)),
    Case("truncated training file", lambda t: ["run", "--policy-file", str(_truncated(t)),
                                               "--out", str(t / "out.h5")], 2, "--policy-file"),
    Case("truncated teacher", lambda t: ["train", "--method", "distill", *SMALL, "--teacher", str(_truncated(t)),
                                         "--out", str(t / "out.h5")], 2, "--teacher"),
    Case("missing teacher", lambda t: ["train", "--method", "distill", *SMALL, "--teacher", str(t / "nope.h5"),
                                       "--out", str(t / "out.h5")], 2, "no such file"),
    Case("infinite lr", lambda t: ["train", "--method", "rlvr", *SMALL, "--lr", "inf",
                                   "--out", str(t / "out.h5")], 2, "--lr"),
    Case("lr beyond 1e100", lambda t: ["train", "--method", "rlvr", *SMALL, "--iterations", "2", "--lr", "1e308",
                                       "--no-plots", "--out", str(t / "out.h5")], 2, "--lr must be a number in (0, 1e+100]"),
    Case("transformer lr beyond 1e100", lambda t: ["train", "--method", "ppo", "--model", "transformer", *SMALL,
                                                   "--lr", "1e101", "--no-plots", "--out", str(t / "out.h5")],
         2, "--lr must be a number in (0, 1e+100]"),
    Case("plots into a file", lambda t: ["train", "--method", "rlvr", *SMALL, "--iterations", "2",
                                         "--plots", str(_text(t)), "--out", str(t / "out.h5")],
         2, "is not a directory", ("out.h5",), ("notes.txt",)),
    Case("check a study without cells", lambda t: ["check", str(_study_without_cells(t))], 2, "damaged study file"),
    Case("plot a study without cells", lambda t: ["plot", str(_study_without_cells(t)),
                                                  "--out", str(t / "p")], 2, "damaged study file", ("p",)),
    Case("plot a text file", lambda t: ["plot", str(_text(t))], 2, "cannot read it as HDF5"),
    # 6. one rule everywhere
    Case("sweep seed -1", lambda t: ["sweep", "--seed", "-1", "--no-plots", "--out", str(t / "out.h5")],
         2, "--seed"),
    Case("sweep seed 2**70", lambda t: ["sweep", "--seed", str(2**70), "--no-plots", "--out", str(t / "out.h5")],
         2, "--seed"),
    Case("repeated variants", lambda t: ["sweep", "--variants", "rlvr,rlvr", "--no-plots",
                                         "--out", str(t / "out.h5")], 2, "--variants must not repeat"),
    Case("cython 1000 threads", lambda t: ["run", *SMALL, "--policy", "rlvr", "--backend", "cython",
                                           "--threads", "1000", "--out", str(t / "out.h5")], 2, "--threads"),
    Case("supervision 0 iterations", lambda t: ["supervision", "--iterations", "0"], 2, "--iterations"),
    Case("supervision huge draws", lambda t: ["supervision", "-W", "2", "-K", "1", "-L", "2", "--draws", "99999999999",
                                              "--iterations", "2"], 3, "--draws: 5 fractions of 99,999,999,999 draws"),
    Case("supervision huge iterations", lambda t: ["supervision", "-W", "2", "-K", "1", "-L", "2", "--iterations",
                                                   "99999999999", "--draws", "1"],
         2, "--iterations must be a whole number in [1, 1000000]"),
    Case("supervision too long", lambda t: ["supervision", "-W", "2", "-K", "1", "-L", "2", "--iterations", "1000000"],
         3, "25,000,000 SFT iterations"),
    Case("train huge iterations", lambda t: ["train", "--method", "rlvr", "-W", "2", "-K", "1", "-L", "2", "--iterations",
                                             "99999999999", "--no-plots", "--out", str(t / "out.h5")],
         2, "--iterations must be a whole number in [1, 1000000]"),
    Case("training history over --max-memory", lambda t: ["train", "--method", "rlvr", "-W", "20", "-K", "20", "-L", "3",
                                                          "--iterations", "1000000", "--max-memory", "100M",
                                                          "--no-plots", "--out", str(t / "out.h5")],
         3, "--iterations: the history of 1,000,002 recorded iterations"),
    Case("transformer window 2**31", lambda t: ["train", "--method", "ppo", "--model", "transformer", "-W", "2", "-K", "1",
                                                "-L", "2", "--iterations", "2", "-N", "16", "--no-plots", "--window",
                                                "2147483648", "--out", str(t / "out.h5")],
         3, "--window: a transformer with 2,147,483,648 age embeddings"),
    Case("transformer window 100000 in JAX", lambda t: ["train", "--method", "ppo", "--model", "transformer", "-W", "2",
                                                        "-K", "1", "-L", "2", "--iterations", "2", "-N", "16",
                                                        "--no-plots", "--window", "100000", "--out", str(t / "out.h5")],
         3, "--window: the JAX sampler's cache of 100,000 positions"),
    Case("supervision seed -1", lambda t: ["supervision", "--seed", "-1"], 2, "--seed"),
    Case("teacher iterations 0", lambda t: ["train", "--method", "distill", *SMALL, "--teacher-iterations", "0",
                                            "--out", str(t / "out.h5")], 2, "--teacher-iterations"),
    Case("exact at s0", lambda t: ["exact", *SMALL, "--target", "s0"], 2, "can never be entered"),
    # 7. any graph (docs/model.md section 7)
    Case("unknown target node", lambda t: ["exact", "--family", "tree", "--target", "nope"], 2, "no node 'nope'"),
    Case("graph file line", lambda t: ["exact", "--graph", str(_graph_file(t, "a b\nb c d\n")), "--root", "a"],
         2, "line 2: expected two node names"),
    Case("empty graph file", lambda t: ["exact", "--graph", str(_graph_file(t, "# nothing\n\n")), "--root", "a"],
         2, "the edge list is empty"),
    Case("disconnected graph", lambda t: ["run", "--graph", str(_graph_file(t, "a b\nc d\n")), "--root", "a",
                                          "--policy", "pretrained", "--out", str(t / "out.h5")],
         2, "disconnected: node 'c'"),
    Case("missing graph file", lambda t: ["exact", "--graph", str(t / "nope.txt"), "--root", "a"], 2, "no such file"),
    Case("binary graph file", lambda t: ["exact", "--graph", str(_binary(t)), "--root", "a"], 2, "not a text file"),
    Case("unreadable GraphML", lambda t: ["exact", "--graph", str(_graph_file(t, "<graphml", "g.graphml")),
                                          "--root", "a"], 2, "not readable GraphML"),
    Case("root not a node", lambda t: ["exact", "--graph", str(_graph_file(t, "a b\n")), "--root", "z"],
         2, "root: no node 'z'"),
    Case("graph without root", lambda t: ["exact", "--graph", str(_graph_file(t, "a b\n"))], 2, "--root"),
    Case("option of another family", lambda t: ["exact", "--family", "grid", "--branching", "3"],
         2, "--branching: not an option of --family grid"),
    Case("odd regular graph", lambda t: ["exact", "--family", "regular", "--nodes", "9", "--degree", "3"],
         2, "--degree: nodes * degree must be even"),
    Case("huge tree", lambda t: ["run", "--family", "tree", "--branching", "10", "--depth", "12", "--policy",
                                 "pretrained", "--out", str(t / "out.h5")], 3, "tree branching = 10, depth = 12"),
    Case("huge topology sweep", lambda t: ["sweep", "--family", "tree", "--depth", "1-14", "--no-plots",
                                           "--out", str(t / "out.h5")], 3, "would take about"),
    Case("named policy off the path-star", lambda t: ["run", "--family", "star", "--policy", "sft",
                                                      "--out", str(t / "out.h5")], 2, "--policy sft: the converged sft policy is defined on the path-star"),
    Case("converged policy on a graph file", lambda t: ["exact", "--graph", str(_edge_list(t)), "--root", "a",
                                                        "--policy", "rlvr"],
         2, "--policy rlvr: the converged rlvr policy is defined on the path-star"),
    Case("unknown target", lambda t: ["run", *SMALL, "--policy", "rlvr", "--target", "nope", "--out", str(t / "out.h5")],
         2, "--target: no node 'nope' in this graph; allowed: 'leaves' or f, t1..t3"),
    Case("run at s0", lambda t: ["run", *SMALL, "--policy", "rlvr", "--target", "s0",
                                 "--out", str(t / "out.h5")], 2, "can never be entered"),
]


def _graph_file(tmp: Path, text: str, name: str = "graph.txt") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _binary(tmp: Path) -> Path:
    path = tmp / "graph.bin"
    path.write_bytes(bytes(range(256)))
    return path


def _npz(tmp: Path) -> Path:
    path = tmp / "table.npz"
    np.savez(path, table=np.eye(3))
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_one_line_and_no_output(case, tmp_path, capsys):
    argv = case.argv(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in case.untouched}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == case.status, err
    assert case.words in err
    assert err.startswith("edgewalk: ") and err.count("\n") == 1 and "Traceback" not in err
    for name in case.absent:
        assert not (tmp_path / name).exists(), name
    for name, content in before.items():
        assert (tmp_path / name).read_bytes() == content, name
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_run_file_collects_runs(tmp_path, capsys):
    out = tmp_path / "runs.h5"
    assert main(["run", *SMALL, "--policy", "rlvr", "--rollouts", "300", "--out", str(out)]) == 0
    first = io.read(out)["rlvr_W3_K2_L2"]
    assert main(["run", *SMALL, "--policy", "sft", "--rollouts", "300", "--out", str(out)]) == 0
    both = io.read(out)
    assert set(both) == {"rlvr_W3_K2_L2", "sft_W3_K2_L2"}
    assert np.array_equal(both["rlvr_W3_K2_L2"].counts, first.counts)
    assert main(["run", *SMALL, "--policy", "rlvr", "--rollouts", "300", "--seed", "5", "--overwrite",
                 "--out", str(out)]) == 0
    replaced = io.read(out)
    assert set(replaced) == {"rlvr_W3_K2_L2", "sft_W3_K2_L2"}
    assert replaced["rlvr_W3_K2_L2"].parameters["seed"] == 5


def test_a_clash_with_the_runs_of_the_output_is_refused_before_any_planning(tmp_path, capsys, monkeypatch):
    out = _run_file(tmp_path)
    from edgewalk.cli import run as run_command

    def no_planning(*args, **kwargs):
        raise AssertionError("planned a run whose output was going to be refused")
    monkeypatch.setattr(run_command.targets, "plan", no_planning)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *SMALL, "--policy", "rlvr", "--out", str(out)])
    assert exit_info.value.code == 2
    assert "already holds run rlvr_W3_K2_L2" in capsys.readouterr().err


def test_a_full_disk_is_a_one_line_failure_with_no_file(tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("edgewalk.io.runs._write_run", full)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *SMALL, "--policy", "rlvr", "--rollouts", "100", "--out", str(tmp_path / "out.h5")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 4 and "No space left on device" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_censoring_that_is_not_negligible_is_said_and_compared_with_the_censored_law(tmp_path, capsys):
    assert main(["run", *SMALL, "--policy", "pretrained", "--max-steps", "150", "--rollouts", "1000",
                 "--out", str(tmp_path / "c.h5"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["censored"] > 300 and summary["z_against"] == "exact_mean_given_hit"
    assert 0.3 < summary["exact_censored_fraction"] < 0.4
    assert abs(summary["z"]) < 4.5  # against E[T | T <= 150], not against the exact mean 140
    assert summary["z_exact"] < 100 and "not negligible" in summary["notes"][0]
    # the same run compared with the uncensored exact mean would be far off: the criterion matters
    assert abs((summary["mean"] - summary["exact_mean"]) / summary["stderr"]) > 20


def test_every_rollout_censored_exits_1_with_nulls_not_strings(tmp_path, capsys):
    assert main(["run", *SMALL, "--policy", "pretrained", "--max-steps", "3", "--rollouts", "50",
                 "--out", str(tmp_path / "c.h5"), "--json"]) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["mean"] is None and summary["z"] is None and summary["notes"]
    assert "every rollout" in captured.err


def test_corrupt_runs_are_recognised_on_read(tmp_path):
    path = _run_file(tmp_path)
    for key, value, words in (("hits", np.int64(-1), "negative"), ("total", np.uint64(10**9), "corrupt"),
                              ("censored", np.uint64(3), "overflow")):
        broken = tmp_path / f"broken-{key}.h5"
        broken.write_bytes(path.read_bytes())
        with h5py.File(broken, "r+") as f:
            f["runs/rlvr_W3_K2_L2"].attrs[key] = value
        with pytest.raises(CorruptFileError, match=words):
            edgewalk.read(broken)
    with pytest.raises(ValueError, match="cannot read it as HDF5"):
        edgewalk.read(_text(tmp_path))
    with pytest.raises(CorruptFileError):
        edgewalk.load(_study_without_cells(tmp_path))


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sigterm_ends_a_run_at_once_and_leaves_no_file(tmp_path):
    """The signal comes once the progress bar shows simulated rollouts (not after a fixed wait,
    which a loaded machine may still spend importing and compiling)."""
    out_dir, err = tmp_path / "out", tmp_path / "stderr.txt"
    out_dir.mkdir()
    with open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgewalk.cli", "run", "-W", "15", "-K", "15", "-L", "5", "--policy",
             "pretrained", "--rollouts", "10000000", "--method", "step", "--force", "--threads", "1",
             "--progress", "--out", str(out_dir / "out.h5")],
            stderr=stderr, text=True)
        try:
            assert _wait_for(lambda: "steps/s" in err.read_text(), 120), "the run never got to simulating"
            time.sleep(1)
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        finally:
            process.kill()
    assert time.monotonic() - sent < 2.0
    assert process.returncode == 130 and "interrupted" in err.read_text()
    assert list(out_dir.iterdir()) == []


@pytest.mark.slow
def test_a_closed_pipe_is_no_traceback(tmp_path):
    command = (f"{sys.executable} -m edgewalk.cli run {' '.join(SMALL)} --rollouts 2000 "
               f"--out {tmp_path / 'o.h5'} | head -c 1")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


@pytest.mark.slow
def test_an_unreachable_dask_scheduler_is_refused(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text('rollouts = 100\nvariants = ["rlvr"]\n[grid]\nW = [2]\nK = [1]\nL = [2]\nbase = [2, 1, 2]\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(config), "--dask", "tcp://127.0.0.1:1"])
    assert exit_info.value.code == 2 and "--dask tcp://127.0.0.1:1" in capsys.readouterr().err


def test_stale_temporaries_of_a_killed_sweep_are_removed_on_the_next_start(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text('rollouts = 200\nvariants = ["rlvr"]\noutput = "s.h5"\n'
                      "[grid]\nW = [2]\nK = [1]\nL = [2]\nbase = [2, 1, 2]\n")
    parts = tmp_path / "s.partial.h5.parts"
    parts.mkdir()
    stale = [parts / ".part-000001.h5.abc.tmp", tmp_path / ".s.h5.def.tmp", tmp_path / ".s.partial.h5.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    other = tmp_path / ".someone-else.h5.ghi.tmp"
    other.write_bytes(b"not ours")
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["sweep", str(config)]) == 0
    finally:
        os.chdir(here)
    assert not any(p.exists() for p in stale) and other.exists() and not parts.exists()
