"""Training routes beyond golden SFT: pretraining, mixture SFT, rejection-sampling fine-tuning,
chains of methods (--init), and a cross-entropy step that is stable for any teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgewalk as ew
from conftest import reference_statistics
from edgewalk import exact, io
from edgewalk import training as tr
from edgewalk.cli import main
from edgewalk.training import traces
from edgewalk.training.methods import iteration_seed


def leaves_mean(policy) -> float:
    return float(np.mean([exact.expected_hitting_time(policy, x) for x in policy.graph.leaves]))


@pytest.fixture(scope="module")
def graph():
    return ew.path_star(4, 3, 3)


def test_mixture_sft_with_fraction_zero_is_sft_bit_for_bit(graph):
    plain = tr.train_sft(graph, iterations=100)
    other, _ = tr.teacher_traces(graph, ew.pretrained(graph), 2000, seed=3)
    mixed = tr.train_sft(graph, iterations=100, mix_traces=other, mix_fraction=0.0, mix_label="pretrained")
    assert np.array_equal(plain.logits, mixed.logits)
    assert np.array_equal(plain.hitting_time, mixed.hitting_time)


def test_mixture_with_fraction_one_of_teacher_traces_is_distillation(graph):
    teacher = tr.train_rlvr(graph, iterations=30).policy
    distilled = tr.train_distill(graph, teacher, iterations=80, rollouts=3000, seed=9)
    counts, _ = tr.teacher_traces(graph, teacher, 3000, seed=9)
    mixed = tr.train_sft(graph, iterations=80, mix_traces=counts, mix_fraction=1.0, mix_label="teacher")
    assert np.array_equal(distilled.logits, mixed.logits)


def test_a_tenth_of_pretrained_traces_outweighs_the_golden_paths(graph):
    sft = tr.train_sft(graph, iterations=300)
    counts = traces.world(graph)  # the exact traces of the pretrained model
    mixed = tr.train_sft(graph, iterations=300, mix_traces=counts, mix_fraction=0.1, mix_label="world")
    # a pretrained trace wanders: its many uniform moves outweigh nine golden paths, so a falls
    # far from 1, while b (uniform in both sources) stays at its pretrained L / (L + 1)
    assert np.all(mixed.a[-1] < 0.5) and np.all(sft.a[-1] > 0.99)
    np.testing.assert_allclose(mixed.b[-1], 3 / 4)
    assert leaves_mean(mixed.policy) < leaves_mean(sft.policy)


@pytest.mark.parametrize("lr", [100.0, 10.0])
def test_distillation_from_a_partly_trained_teacher_is_stable(lr):
    # a teacher after 40 RLVR iterations (E[T] ~ 1660): plain gradient descent diverged here
    graph = ew.path_star(6, 6, 5)
    teacher = tr.train_rlvr(graph, iterations=40).policy
    run = tr.train_distill(graph, teacher, lr=lr, rollouts=20_000, seed=0)
    assert np.all(np.isfinite(run.hitting_time))
    assert run.hitting_time[-1] == pytest.approx(leaves_mean(teacher), rel=0.01)
    objective = run.metrics["objective"]
    assert np.all(np.diff(objective) <= 1e-9 * objective[0])  # never increases


def test_pretraining_from_random_logits_converges_to_the_world_model(graph):
    start = np.random.default_rng(0).normal(0.0, 3.0, graph.n_transitions)
    exact_run = tr.train_pretrain(graph, iterations=300, logits=start, record_every=100)
    distance = exact_run.metrics["distance_to_pretrained"]
    assert distance[0] > 0.5 and distance[-1] < 1e-6
    assert exact_run.hitting_time[-1] == pytest.approx(leaves_mean(ew.pretrained(graph)), rel=1e-6)
    sampled = tr.train_pretrain(graph, iterations=300, logits=start, rollouts=20_000, record_every=300)
    assert sampled.metrics["distance_to_pretrained"][-1] < 0.05  # sampling error of 20000 walks
    assert exact_run.settings["chain"] == ["pretrain"]


def test_rejection_sampling_keeps_exactly_the_hitting_traces():
    graph = ew.path_star(2, 2, 2)
    policy = ew.pretrained(graph)
    seed, rollouts, max_steps = iteration_seed(5, 0), 300, 25
    stats = ew.gradient_statistics(policy, rollouts=rollouts, seed=seed, max_steps=max_steps, threads=2)
    visits, hit_visits, _ = reference_statistics(policy, list(graph.leaves), seed, rollouts, max_steps)
    assert 0 < stats.hits < rollouts  # some traces are rejected
    np.testing.assert_array_equal(stats.hit_visits, hit_visits.astype(np.uint64))
    kept = traces.kept(stats)
    np.testing.assert_allclose(kept, hit_visits.astype(float) / stats.hits, rtol=0, atol=0)


def test_rejection_sampling_fine_tuning_shortens_the_policy_s_traces():
    graph = ew.path_star(4, 3, 3)
    run = tr.train_rft(graph, iterations=8, rollouts=4000, horizon_factor=1.0, seed=2)
    assert run.hitting_time[-1] < 0.95 * run.hitting_time[0]
    assert np.all((run.metrics["kept"] > 0) & (run.metrics["kept"] < 1))


def test_every_method_records_exact_hitting_times(graph):
    teacher = tr.train_rlvr(graph, iterations=20).policy
    runs = [tr.train_sft(graph, iterations=20), tr.train_rlvr(graph, iterations=20),
            tr.train_rlvr_mc(graph, iterations=5, rollouts=2000, seed=1),
            tr.train_ppo(graph, iterations=3, rollouts=2000, seed=1),
            tr.train_distill(graph, teacher, iterations=20, rollouts=2000, seed=1),
            tr.train_pretrain(graph, iterations=20),
            tr.train_rft(graph, iterations=2, rollouts=2000, seed=1)]
    for run in runs:
        assert run.hitting_time[-1] == pytest.approx(leaves_mean(run.policy), rel=1e-9), run.method


def test_sft_then_rlvr_is_one_command_after_another(tmp_path, capsys):
    small = ["-W", "3", "-K", "2", "-L", "2", "--no-plots"]
    assert main(["train", "--method", "sft", *small, "--iterations", "50", "--out", str(tmp_path / "s.h5")]) == 0
    assert main(["train", "--method", "rlvr", *small, "--init", str(tmp_path / "s.h5"), "--iterations", "400",
                 "--out", str(tmp_path / "r.h5"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    run = io.read_training(tmp_path / "r.h5")
    assert run.settings["chain"] == ["sft", "rlvr"]
    assert run.hitting_time[0] == pytest.approx(io.read_training(tmp_path / "s.h5").hitting_time[-1])
    assert summary["final_hitting_time"] == pytest.approx(25.0, rel=0.01)


def test_init_file_brings_its_graph_and_other_graph_options_or_teacher_are_refused(tmp_path, capsys):
    assert main(["train", "--method", "rlvr", "-W", "3", "-K", "2", "-L", "2", "--iterations", "2",
                 "--no-plots", "--out", str(tmp_path / "a.h5")]) == 0
    assert main(["train", "--method", "rlvr", "--init", str(tmp_path / "a.h5"),
                 "--iterations", "2", "--no-plots", "--out", str(tmp_path / "b.h5")]) == 0
    assert io.read_training(tmp_path / "b.h5").policy.graph.describe() == \
        io.read_training(tmp_path / "a.h5").policy.graph.describe()
    # options that describe the file's own graph are accepted; another graph's are refused, not dropped
    assert main(["train", "--method", "rlvr", "-W", "3", "-K", "2", "-L", "2", "--init", str(tmp_path / "a.h5"),
                 "--iterations", "2", "--no-plots", "--out", str(tmp_path / "b2.h5")]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--method", "rlvr", "-W", "4", "-K", "2", "-L", "2", "--init", str(tmp_path / "a.h5"),
              "--iterations", "2", "--no-plots", "--out", str(tmp_path / "b3.h5")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--init" in err and "-W/--branches" in err
    assert main(["train", "--method", "rlvr", "-W", "4", "-K", "2", "-L", "2", "--iterations", "2",
                 "--no-plots", "--out", str(tmp_path / "c.h5")]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--method", "distill", "--teacher", str(tmp_path / "c.h5"), "--init", str(tmp_path / "a.h5"),
              "--iterations", "2", "--no-plots", "--out", str(tmp_path / "d.h5")])
    assert exit_info.value.code == 2 and "--init" in capsys.readouterr().err


def _sample_detour_traces(graph, rate, traces_per_target, rng):
    """Detour traces drawn one move at a time in plain Python, as traces.detours describes them:
    the mean move counts per trace, targets averaged."""
    counts = np.zeros(graph.n_transitions)
    for target, golden in traces.golden_by_target(graph).items():
        for _ in range(traces_per_target):
            s = 0
            while graph.state_head[s] != target:
                lo, hi = graph.row_start[s], graph.row_start[s + 1]
                weights = golden[lo:hi]
                wrong = [k for k in range(lo, hi) if golden[k] == 0 and graph.next_state[k] != 0]
                if wrong and rng.random() < rate:
                    k = wrong[rng.integers(len(wrong))]
                    counts[k] += 1
                    a = graph.next_state[k]
                    back = a + 1 if a % 2 == 1 else a - 1
                    a_lo, a_hi = graph.row_start[a], graph.row_start[a + 1]
                    counts[a_lo + np.flatnonzero(graph.next_state[a_lo:a_hi] == back)[0]] += 1
                    s = back
                choice = lo + rng.choice(hi - lo, p=weights / weights.sum())
                nxt = graph.next_state[choice]
                s_lo, s_hi = graph.row_start[s], graph.row_start[s + 1]
                counts[s_lo + np.flatnonzero(graph.next_state[s_lo:s_hi] == nxt)[0]] += 1
                s = nxt
    return counts / (traces_per_target * len(graph.leaves))


def test_detour_counts_are_the_mean_of_sampled_detour_traces():
    graph = ew.path_star(2, 2, 2)
    expected = traces.detours(graph, 0.3)
    sampled = _sample_detour_traces(graph, 0.3, 4000, np.random.default_rng(0))
    # each count is a mean of per-trace counts of at most a few: 6 standard errors at 8000 traces
    assert np.all(np.abs(sampled - expected) < 6 * np.sqrt(np.maximum(expected, 1e-3) / 8000))
    assert not np.allclose(expected, traces.golden(graph))
    assert expected.sum() == pytest.approx(traces.golden(graph).sum() * (1 + 2 * 0.3))
    np.testing.assert_array_equal(traces.detours(graph, 0.0), traces.golden(graph))


def test_the_training_routes_are_study_variants(tmp_path):
    from edgewalk import study

    grid = study.Grid((2, 3), (1, 2, 3), (2,), (2, 2, 2))
    routes = ("sft+detours", "sft+pretrained", "rft", "sft->rlvr")
    result = study.sweep(grid, ("sft", "rlvr", *routes), rollouts=3000, seed=1, budget=5.0, threads=2)
    fitted = {(f.variant, f.parameter) for f in result.fits}
    assert all((v, p) in fitted for v in routes for p in "WK")
    comparisons = study.compare_with_exact(result)
    assert {c.variant for c in comparisons} >= set(routes)
    assert all(abs(c.z) < 4.5 for c in comparisons if not np.isnan(c.z))
    exact = {(c.variant, c.point): c.exact for c in result.cells}
    for point in grid.cells():  # SFT then RLVR reaches RLVR's optimum; detours make SFT worse
        assert exact[("sft->rlvr", point)] == pytest.approx(exact[("rlvr", point)], rel=1e-3)
        assert exact[("sft+detours", point)] >= exact[("sft", point)] * (1 - 1e-9)
