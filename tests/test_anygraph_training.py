"""Training on any graph (docs/model.md section 7): golden-path counts (equal to the path-star's
closed form there), SFT's frozen states on a tree, RLVR against an independent optimiser and an
exhaustive search over deterministic policies, and one target convention for train, run and
exact."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy import optimize

from conftest import Z_LIMIT, z_score
from edgewalk import graph as graphs, targets, training
from edgewalk.cli import main
from edgewalk.graph import from_edges
from edgewalk.policy import Policy, from_logits, pretrained
from edgewalk.training.objectives import golden_path_counts, path_star_golden_counts


@pytest.mark.parametrize("graph", [graphs.path_star(3, 2, 3), graphs.path_star(1, 1, 1),
                                   graphs.heterogeneous([3, 1, 2], [[2, 1, 3], [4], [1, 2]])],
                         ids=["symmetric", "smallest", "heterogeneous"])
def test_golden_paths_on_a_path_star_are_todays_closed_form(graph):
    assert np.array_equal(golden_path_counts(graph, graph.leaves), path_star_golden_counts(graph))
    # and on the same graph built from its edge list (a plain Graph, no state kinds)
    edges = [(graph.node_names[a], graph.node_names[b]) for a, b in zip(graph.state_tail[1::2], graph.state_head[1::2])]
    plain = from_edges(edges, "f")
    assert np.allclose(training.golden_counts(plain), path_star_golden_counts(graph), rtol=1e-15, atol=0)


def test_golden_paths_are_uniform_over_node_paths_then_over_lanes():
    # two shortest node paths to x: r-a-x with two lanes r-a, and r-b-x with one. Uniform over
    # node paths gives each path 1/2 and each r-a lane 1/4 (uniform over edge paths would give 1/3)
    g = from_edges([("r", "a"), ("r", "a"), ("a", "x"), ("r", "b"), ("b", "x")], "r")
    counts = golden_path_counts(g, [g.node("x")])
    rows = g.entry_state
    head = g.state_head[g.next_state]
    start = rows == 0
    assert counts[start & (head == g.node("a"))].tolist() == [0.25, 0.25]
    assert counts[start & (head == g.node("b"))].tolist() == [0.5]
    # each r -> a lane then a -> x: 1/4 each; the path conditions on 3 states... in all, 2 moves per path
    assert counts.sum() == pytest.approx(2.0)
    into_x = (head == g.node("x"))
    assert counts[into_x].sum() == pytest.approx(1.0)


def test_golden_path_counts_survive_path_counts_beyond_floating_point():
    # a 600 x 600 grid has binomial(1198, 599) ~ 1e359 shortest paths corner to corner
    g = graphs.grid(600, 600)
    counts = golden_path_counts(g, g.leaves)
    assert np.all(np.isfinite(counts)) and counts.sum() == pytest.approx(1198.0)


def _golden_states_of_tree(g) -> set[int]:
    """Every state a root-to-leaf path passes through and moves on from, enumerated by
    depth-first search over the tree's downward states (independent of golden_path_counts)."""
    found = set()
    leaves = set(g.leaves)

    def down(state: int) -> None:
        if g.state_head[state] in leaves:
            return
        found.add(state)
        for nxt in g.next_states(state):
            if g.state_head[nxt] != g.state_tail[state]:  # away from the root
                down(int(nxt))

    down(0)
    return found


def test_sft_freezes_exactly_the_states_off_every_golden_path_on_a_tree():
    g = graphs.tree(3, 3)
    run = training.train_sft(g, iterations=50, record_every=50)
    before = pretrained(g).probabilities
    changed = set()
    for s in range(g.n_states):
        row = slice(g.row_start[s], g.row_start[s + 1])
        if not np.array_equal(run.policy.probabilities[row], before[row]):
            changed.add(s)
    golden = _golden_states_of_tree(g)
    # the start state lies on every golden path but enters the root, whose rows never train;
    # its label (uniform over the children) is its pretrained row anyway
    assert changed == {s for s in golden if g.trainable[s]}
    assert 0 in golden and not g.trainable[0]
    assert len(changed) == (3 ** 3 - 1) // 2 - 1  # every inner node but the root, entered from above


def _dense_mean(g, probabilities: np.ndarray) -> float:
    """mean over the leaves of E[T] by dense solves (inf where a leaf is not hit surely)."""
    P = Policy(g, probabilities).transition_matrix().toarray()
    total = 0.0
    for leaf in g.leaves:
        keep = np.flatnonzero(g.state_head != leaf)
        A = np.eye(len(keep)) - P[np.ix_(keep, keep)]
        try:
            h = np.linalg.solve(A, np.ones(len(keep)))
        except np.linalg.LinAlgError:
            return np.inf
        if not np.all(np.isfinite(h)) or h.min() < 0 or np.abs(A @ h - 1).max() > 1e-6:
            return np.inf
        total += h[0]
    return total / len(g.leaves)


def test_rlvr_on_a_tree_reaches_the_best_edge_conditioned_policy():
    # Exact sign ascent first settles near a policy symmetric between sibling leaves (11.899 from
    # about iteration 500), then breaks the symmetry and reaches the depth-first order (9) after
    # about 2000 iterations: more than the default 1000.
    g = graphs.tree(2, 2)
    trained = training.train_rlvr(g, iterations=3000, record_every=3000)
    rows = [s for s in range(g.n_states) if g.trainable[s]]
    # exhaustive search over deterministic policies: one move per trainable row
    base = pretrained(g).probabilities
    best_deterministic = np.inf
    for choice in itertools.product(*(range(g.row_start[s + 1] - g.row_start[s]) for s in rows)):
        p = base.copy()
        for s, c in zip(rows, choice):
            p[g.row_start[s]:g.row_start[s + 1]] = 0.0
            p[g.row_start[s] + c] = 1.0
        best_deterministic = min(best_deterministic, _dense_mean(g, p))
    # a direct optimiser of the exact objective over the trainable logits, from several starts
    mask = g.trainable[g.entry_state]

    def objective(theta: np.ndarray) -> float:
        logits = np.zeros(g.n_transitions)
        logits[mask] = theta
        return _dense_mean(g, from_logits(g, logits).probabilities)

    rng = np.random.default_rng(0)
    best_direct = min(optimize.minimize(objective, rng.normal(0, 1, mask.sum()), method="L-BFGS-B",
                                        bounds=[(-30, 30)] * int(mask.sum())).fun for _ in range(6))
    final = trained.hitting_time[-1]
    assert final == pytest.approx(best_deterministic, abs=1e-4) and best_deterministic == pytest.approx(9.0)
    assert final <= best_direct * (1 + 1e-4)
    assert final < trained.hitting_time[0] - 1


def test_rlvr_on_a_grid_to_one_corner_learns_a_shortest_path():
    g = graphs.grid(3, 5)
    run = training.train_rlvr(g, iterations=1000, record_every=1000, targets=[g.node("(3,5)")])
    assert run.hitting_time[-1] == pytest.approx(3 + 5 - 2, rel=1e-6)
    assert run.settings["targets"] == ["(3,5)"]


def test_monte_carlo_rlvr_and_distillation_train_on_any_graph():
    g = graphs.star(3, 3)
    mc = training.train_rlvr_mc(g, iterations=40, lr=0.05, rollouts=4000, seed=1, record_every=40)
    assert mc.hitting_time[-1] < 0.8 * mc.hitting_time[0]
    teacher = training.train_rlvr(g, iterations=400, lr=0.05, record_every=400)
    distilled = training.train_distill(g, teacher.policy, iterations=200, rollouts=5000, record_every=200)
    assert distilled.hitting_time[-1] == pytest.approx(teacher.hitting_time[-1], rel=0.05)


def _run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_train_run_and_exact_agree_on_one_target_convention(tmp_path, capsys):
    # the heterogeneous RLVR optimum: train averages over the leaves, and so do run and exact now
    path = tmp_path / "t.h5"
    trained = _run_json(capsys, "train", "--method", "rlvr", "--depths", "6,5,4,3,3", "--iterations", "1000",
                        "--no-plots", "--json", "--out", str(path))
    assert trained["target"] == "leaves" and trained["final_hitting_time"] == pytest.approx(84.0725, abs=1e-3)
    ran = _run_json(capsys, "run", "--policy-file", str(path), "--rollouts", "50000", "--json",
                    "--out", str(tmp_path / "r.h5"))
    assert ran["target"] == "leaves" and ran["targets"] == ["t1", "t2", "t3", "t4", "t5"]
    assert ran["exact_mean"] == pytest.approx(trained["final_hitting_time"], rel=1e-10)
    assert abs(z_score(ran["mean"], ran["exact_mean"], ran["stderr"])) < Z_LIMIT
    solved = _run_json(capsys, "exact", "--policy-file", str(path), "--json")
    assert solved["target"] == "leaves" and solved["exact_mean"] == pytest.approx(trained["final_hitting_time"], rel=1e-12)
    for policy in ("rlvr", "pretrained"):
        solved = _run_json(capsys, "exact", "--depths", "6,5,4,3,3", "--policy", policy, "--json")
        simulated = _run_json(capsys, "run", "--depths", "6,5,4,3,3", "--policy", policy, "--rollouts", "5000",
                              "--json", "--out", str(tmp_path / f"{policy}.h5"))
        assert solved["target"] == simulated["target"] == "leaves"
        assert solved["exact_mean"] == pytest.approx(simulated["exact_mean"], rel=1e-12)
    one = _run_json(capsys, "exact", "--depths", "6,5,4,3,3", "--policy", "rlvr", "--target", "t1", "--json")
    assert one["target"] == "t1" and one["exact_mean"] == pytest.approx(81.0)


def test_train_on_a_family_graph_from_the_command_line(tmp_path, capsys):
    out = _run_json(capsys, "train", "--method", "sft", "--family", "tree", "--branching", "2", "--depth", "3",
                    "--target", "r.2.2.1", "--iterations", "100", "--no-plots", "--json",
                    "--out", str(tmp_path / "t.h5"))
    g = graphs.tree(2, 3)
    node = g.node("r.2.2.1")
    library = training.train_sft(g, iterations=100, targets=[node], record_every=100)
    assert out["target"] == "r.2.2.1" and out["graph"] == {"family": "tree", "branching": 2, "depth": 3}
    assert out["final_hitting_time"] == library.hitting_time[-1]
    # the root's rows stay uniform: half the rollouts first enter the wrong subtree, where SFT has
    # no label, so the time lies between the golden path's 3 steps and the pretrained 65
    assert 3 < out["final_hitting_time"] < targets.mean_hitting_time(pretrained(g), targets.resolve(g, "r.2.2.1")) == 65
