"""Monte Carlo training (RLVR with estimated gradients, PPO, distillation), training files and
the `edgewalk train` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgewalk as ew
from edgewalk import training as tr
from edgewalk.cli import main
from edgewalk.io import read_training, write_training


def test_rlvr_mc_improves_and_is_the_same_on_either_backend():
    graph = ew.path_star(3, 2, 2)
    runs = [tr.train_rlvr_mc(graph, iterations=40, lr=0.05, rollouts=2000, seed=3, backend=b, threads=t)
            for b, t in (("numba", 1), ("cython", 2))]
    assert np.array_equal(runs[0].logits, runs[1].logits)
    assert runs[0].hitting_time[-1] < 0.7 * runs[0].hitting_time[0]


def test_rlvr_mc_follows_the_exact_gradient_signs_early():
    """With many rollouts the estimated signs agree with the exact ones on most trained entries."""
    graph = ew.path_star(3, 2, 2)
    exact = tr.rlvr_gradient(graph, tr.pretrained_logits(graph)) * tr.trained_entries(graph)
    from edgewalk.planning import gradient_statistics

    estimate = gradient_statistics(ew.pretrained(graph), rollouts=100_000, seed=1).gradient()
    big = np.abs(exact) > 0.05 * np.abs(exact).max()
    assert np.mean(np.sign(estimate[big]) == np.sign(exact[big])) > 0.95


def test_ppo_approaches_the_optimum():
    graph = ew.path_star(3, 2, 2)
    optimum = tr.rlvr_optimum(graph)  # (2K+1)(2W-1) = 25
    run = tr.train_ppo(graph, iterations=60, rollouts=4000, seed=2, threads=2)
    assert run.hitting_time[0] > 2 * optimum
    assert run.hitting_time[-1] < 1.15 * optimum


def test_distillation_recovers_the_teacher():
    graph = ew.path_star(4, 3, 2)
    teacher = ew.rlvr(graph)
    run = tr.train_distill(graph, teacher, iterations=200, rollouts=5000, seed=4, threads=2)
    assert run.hitting_time[0] > 3 * tr.rlvr_optimum(graph)
    assert run.hitting_time[-1] == pytest.approx(tr.rlvr_optimum(graph), rel=0.02)


def test_training_file_round_trip_and_run_policy_file(tmp_path, capsys):
    graph = ew.path_star(3, 2, 2)
    run = tr.train_rlvr(graph, iterations=50, lr=0.05)
    path = tmp_path / "t.h5"
    write_training(path, run, optimum=25.0)
    back = read_training(path)
    for name in ("iteration", "hitting_time", "a", "b", "c", "d", "logits"):
        assert np.array_equal(getattr(back, name), getattr(run, name))
    assert np.allclose(back.policy.probabilities, run.policy.probabilities, rtol=0, atol=0)
    assert main(["run", "--policy-file", str(path), "--rollouts", "2000", "--seed", "5", "--json",
                 "--out", str(tmp_path / "r.h5")]) == 0
    summary = json.loads(capsys.readouterr().out)
    # the default target is the leaves, as in training: one sub-run per leaf
    direct = ew.targets.simulate(run.policy, "leaves", rollouts=2000, seed=5)
    assert summary["mean"] == direct.mean and summary["target"] == "leaves"
    means = [ew.expected_hitting_time(run.policy, leaf) for leaf in graph.leaves]
    assert summary["exact_mean"] == pytest.approx((667 * means[0] + 667 * means[1] + 666 * means[2]) / 2000)


def test_train_command_json(tmp_path, capsys):
    assert main(["train", "--method", "rlvr", "-W", "3", "-K", "3", "-L", "2", "--lr", "0.05",
                 "--iterations", "300", "--json", "--out", str(tmp_path / "t.h5"),
                 "--plots", str(tmp_path / "plots")]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("method", "iterations", "final_hitting_time", "first_iteration_within_1pct",
                "seconds_per_iteration"):
        assert key in summary
    assert summary["optimum"] == pytest.approx(35.0)  # (2K+1)(2W-1)
    assert summary["first_iteration_within_1pct"] is not None
    assert all((tmp_path / "plots" / name).exists() for name in ("rlvr_hitting_time.png", "rlvr_abcd.png"))


@pytest.mark.parametrize("argv,words", [(["--lr", "0"], "--lr"), (["--iterations", "0"], "--iterations"),
                                        (["--supervise-backward", "1.5"], "--supervise-backward")])
def test_train_refuses_bad_input(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--method", "sft", "-W", "2", "-K", "1", "-L", "1", "--out", str(tmp_path / "x.h5"), *argv])
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
