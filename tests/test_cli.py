"""The ``edgewalk`` command: options, JSON summary, output file and refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import edgewalk
from edgewalk.cli import main

SMALL = ["-W", "3", "-K", "2", "-L", "2"]
JSON_KEYS = {"mean", "stderr", "exact_mean", "rollouts", "censored", "steps", "seconds",
             "steps_per_second", "backend", "threads", "seed"}


def run_json(capsys, *argv):
    assert main(["run", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_prints_one_json_object_and_writes_the_file(tmp_path, capsys):
    out = tmp_path / "r.h5"
    summary = run_json(capsys, *SMALL, "--policy", "pretrained", "--rollouts", "5000", "--seed", "9",
                       "--backend", "cython", "--threads", "2", "--out", str(out))
    assert JSON_KEYS <= summary.keys()
    assert (summary["rollouts"], summary["seed"], summary["backend"], summary["threads"]) == (5000, 9, "cython", 2)
    assert summary["exact_mean"] == pytest.approx(edgewalk.expected_hitting_time(
        edgewalk.pretrained(edgewalk.path_star(3, 2, 2)), edgewalk.path_star(3, 2, 2).leaf(1)))
    assert summary["steps_per_second"] == pytest.approx(summary["steps"] / summary["seconds"])
    stored = edgewalk.read(out)["pretrained_W3_K2_L2"]
    assert stored.mean == pytest.approx(summary["mean"])
    assert stored.parameters["seed"] == 9


def test_the_same_seed_gives_the_same_numbers_on_either_backend(tmp_path, capsys):
    a = run_json(capsys, *SMALL, "--policy", "sft", "--rollouts", "3000", "--backend", "numba",
                 "--threads", "1", "--out", str(tmp_path / "a.h5"))
    b = run_json(capsys, *SMALL, "--policy", "sft", "--rollouts", "3000", "--backend", "cython",
                 "--threads", "2", "--out", str(tmp_path / "b.h5"))
    assert (a["mean"], a["stderr"], a["steps"]) == (b["mean"], b["stderr"], b["steps"])


def test_bins_that_cannot_be_had_as_asked_get_a_note(tmp_path, capsys):
    """Bins have whole widths and end at max_steps: --bins 1000 over [0, 100] gives 101 bins of
    width 1, --bins 30 gives 26 of width 4, and each run says so; --bins 101 gets no note."""
    for asked, got, width in ((1000, 101, 1), (30, 26, 4)):
        summary = run_json(capsys, *SMALL, "--policy", "rlvr", "--rollouts", "100", "--max-steps", "100",
                           "--bins", str(asked), "--out", str(tmp_path / f"{asked}.h5"))
        assert f"--bins {asked:,} gave {got} bins of whole width {width} over [0, max_steps = 100]" in summary["notes"]
        assert (summary["bins"], summary["bin_width"]) == (got, width)
        assert len(edgewalk.read(tmp_path / f"{asked}.h5")["rlvr_W3_K2_L2"].counts) == got
    summary = run_json(capsys, *SMALL, "--policy", "rlvr", "--rollouts", "100", "--max-steps", "100",
                       "--bins", "101", "--out", str(tmp_path / "101.h5"))
    assert not any(note.startswith("--bins") for note in summary["notes"])


def test_a_run_whose_bins_leave_nothing_to_test_reports_no_chi_square_and_says_why(tmp_path, capsys):
    """One bin holds the whole exact law: no chi-square p-value (null, not 1) and a note; with
    enough bins the same run has one."""
    one = run_json(capsys, *SMALL, "--policy", "rlvr", "--rollouts", "1000", "--bins", "1",
                   "--out", str(tmp_path / "one.h5"))
    assert one["chi2_p"] is None and any(n.startswith("no chi-square test") for n in one["notes"])
    many = run_json(capsys, *SMALL, "--policy", "rlvr", "--rollouts", "1000", "--out", str(tmp_path / "many.h5"))
    assert 0 <= many["chi2_p"] <= 1 and not any(n.startswith("no chi-square") for n in many["notes"])


@pytest.mark.slow
def test_main_job_runs_three_policies_with_sft_on_a_depth_that_finishes(tmp_path, capsys):
    # the leap method runs SFT on the graph itself; step by step, on the deepest that finishes
    leaped = run_json(capsys, "-W", "4", "-K", "12", "-L", "3", "--rollouts", "300",
                      "--out", str(tmp_path / "m.h5"))
    assert [r["policy"] for r in leaped["runs"]] == ["pretrained", "sft", "rlvr"]
    assert leaped["runs"][1]["graph"]["K"] == 12 and leaped["runs"][1]["method"] == "leap"
    assert set(edgewalk.read(tmp_path / "m.h5")) == {r["run"] for r in leaped["runs"]}
    stepped = run_json(capsys, "-W", "4", "-K", "12", "-L", "3", "--rollouts", "300", "--method", "step",
                       "--out", str(tmp_path / "s.h5"))
    sft_depth = stepped["runs"][1]["graph"]["K"]
    assert 1 <= sft_depth < 12 and stepped["runs"][1]["method"] == "step"


@pytest.mark.parametrize(
    "argv,words",
    [
        (["-W", "0"], "--branches must be a whole number"),
        (["-L", "0"], "--lanes must be a whole number"),
        (["--depths", "3,x"], "--depths"),
        (["--rollouts", "0"], "rollouts"),
        (["--max-steps", "-5"], "--max-steps"),
        (["--threads", "0"], "threads"),
        (["--target", "t7"], "target"),
        (["--out", "/no/such/dir/x.h5"], "--out"),
    ],
)
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *SMALL, "--policy", "rlvr", "--out", str(tmp_path / "x.h5"), *argv])
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("argv", [["--policy", "greedy"], ["--backend", "fortran"]])
def test_unknown_choices_are_refused_with_the_allowed_ones(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *argv])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_hopeless_run_is_refused_with_the_exact_value(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--policy", "sft", "--rollouts", "10", "--method", "step", "--out", str(tmp_path / "x.h5")])
    assert exit_info.value.code == 3
    assert "exact expected hitting time is 4.318" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_exact_command(capsys):
    assert main(["exact", "-W", "6", "-K", "3", "-L", "5", "--policy", "sft", "--json"]) == 0
    assert round(json.loads(capsys.readouterr().out)["exact_mean"]) == 7942


@pytest.mark.slow
def test_help_explains_the_options():
    text = subprocess.run([sys.executable, "-m", "edgewalk.cli", "run", "--help"],
                          capture_output=True, text=True, check=True).stdout
    for option in ("--branches", "--depth", "--lanes", "--depths", "--policy", "--target", "--rollouts",
                   "--seed", "--max-steps", "--backend", "--threads", "--out", "--json"):
        assert option in text


def test_a_user_table_runs_and_a_bad_one_is_refused(tmp_path, capsys):
    graph = edgewalk.path_star(3, 2, 2)
    table = edgewalk.pretrained(graph).transition_matrix().toarray()
    good, bad = tmp_path / "good.npy", tmp_path / "bad.npy"
    import numpy as np

    np.save(good, table)
    summary = run_json(capsys, *SMALL, "--policy-file", str(good), "--rollouts", "2000",
                       "--out", str(tmp_path / "g.h5"))
    assert summary["exact_mean"] == pytest.approx(
        edgewalk.expected_hitting_time(edgewalk.pretrained(graph), graph.leaf(1)))
    table[5] *= 0.9
    np.save(bad, table)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *SMALL, "--policy-file", str(bad), "--out", str(tmp_path / "b.h5")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--policy-file" in err and "sums to" in err
    assert not (tmp_path / "b.h5").exists()
