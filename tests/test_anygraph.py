"""Any graph (docs/model.md section 7): from_edges, from_networkx, the families and their
descriptions; exact means against a dense solve on every family; Monte Carlo against exact
(z-score and chi-square) for one target and for the leaves as a target distribution, with power
checks; both backends bit for bit whatever the thread count."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import P_LIMIT, Z_LIMIT, chi_square_p_value, same_result, z_score
from edgewalk import exact, graph as graphs, targets
from edgewalk.errors import InputError, SizeError
from edgewalk.graph import family_size, from_description, from_edges
from edgewalk.io.graphs import read_edge_list, read_graph
from edgewalk.policy import Policy, pretrained, rlvr, sft

FAMILY_GRAPHS = {
    "star": lambda: graphs.star(3, 2),
    "tree": lambda: graphs.tree(2, 3),
    "grid": lambda: graphs.grid(3, 4),
    "regular": lambda: graphs.regular(10, 3, seed=4),
    "path-star": lambda: graphs.heterogeneous([2, 1], [[2, 3], [1]]),
    "edges": lambda: from_edges([("r", "a"), ("r", "b"), ("a", "c"), ("a", "c"), ("b", "d"), ("c", "e"),
                                 ("d", "e"), ("e", "f")], "r"),
}


def perturbed(graph, seed: int = 1, spread: float = 1.0) -> Policy:
    """A softmax policy with random logits: every valid move possible, no symmetry left."""
    from edgewalk.policy import from_logits

    rng = np.random.default_rng(seed)
    return from_logits(graph, rng.normal(0.0, spread, graph.n_transitions), "perturbed")


def dense_hitting_time(policy: Policy, target: int) -> float:
    """E[T] from the start by a dense solve of (I - Q) h = 1 over every non-target state (all
    reach the target under a softmax policy on a connected graph)."""
    g = policy.graph
    P = policy.transition_matrix().toarray()
    keep = np.flatnonzero(~g.target_states(target))
    Q = P[np.ix_(keep, keep)]
    h = np.linalg.solve(np.eye(len(keep)) - Q, np.ones(len(keep)))
    return float(h[np.flatnonzero(keep == 0)[0]]) if 0 in keep else 0.0


# --------------------------------------------------------------------------- graphs


def test_from_edges_numbers_states_and_rows_as_documented():
    g = from_edges([("r", "a"), ("a", "b"), ("a", "b")], "r")
    assert g.node_names == ("s0", "r", "a", "b")
    # state 0 = s0 -> r; edge e gives 1 + 2e (first end to second) and 2 + 2e
    assert list(zip(g.state_tail, g.state_head)) == [(0, 1), (1, 2), (2, 1), (2, 3), (3, 2), (2, 3), (3, 2)]
    assert list(g.next_states(1)) == [2, 3, 5]  # from r -> a: back to r, or either lane
    assert list(g.next_states(3)) == [4, 6]  # from a -> b (lane 1): either lane back, the U-turn first
    assert g.leaves == (3,)  # b has degree 2 (two lanes) but is the node farthest from r
    # trainable: more than one move and not entering the root
    assert list(g.trainable) == [False, True, False, True, True, True, True]


def test_a_path_star_rebuilt_from_its_edges_is_the_same_chain():
    ps = graphs.heterogeneous([3, 1, 2], [[2, 1, 3], [4], [1, 2]])
    edges = [(ps.node_names[a], ps.node_names[b]) for a, b in zip(ps.state_tail[1::2], ps.state_head[1::2])]
    g = from_edges(edges, "f")
    assert g.node_names == ps.node_names and g.leaves == ps.leaves
    for name in ("state_tail", "state_head", "row_start", "next_state", "trainable"):
        assert np.array_equal(getattr(g, name), getattr(ps, name)), name


def test_a_node_called_s0_keeps_its_name():
    g = from_edges([("s0", "x"), ("x", "y")], "x")
    assert g.node_names[0] == "<source>" and g.node("s0") == 1


@pytest.mark.parametrize("name", sorted(FAMILY_GRAPHS))
def test_descriptions_rebuild_the_graph(name):
    g = FAMILY_GRAPHS[name]()
    again = from_description(g.describe())
    assert again.describe() == g.describe() and again.node_names == g.node_names
    assert np.array_equal(again.next_state, g.next_state) and again.leaves == g.leaves


@pytest.mark.parametrize("name,size", [("star", (3, 2)), ("star", (1, 1)), ("tree", (2, 3)), ("tree", (1, 4)),
                                       ("tree", (3, 1)), ("grid", (3, 4)), ("grid", (1, 5)), ("grid", (5, 1)),
                                       ("grid", (2, 2)), ("regular", (10, 3)), ("regular", (7, 2))])
def test_family_sizes_are_counted_before_building(name, size):
    g = graphs.family(name, **dict(zip(graphs.FAMILY_PARAMETERS[name], size)))
    assert family_size(name, *size) == (g.n_states, g.n_transitions)


def test_the_families_have_their_documented_shape():
    star = graphs.star(4, 3)
    assert [star.node_names[v] for v in star.leaves] == ["v(1,3)", "v(2,3)", "v(3,3)", "v(4,3)"]
    tree = graphs.tree(3, 2)
    assert len(tree.leaves) == 9 and tree.node_names[tree.leaves[0]] == "r.1.1"
    grid = graphs.grid(3, 4)
    assert [grid.node_names[v] for v in grid.leaves] == ["(3,4)"]  # no leaves: the far corner
    regular = graphs.regular(20, 3, seed=2)
    degree = np.bincount(np.concatenate([regular.state_tail[1::2], regular.state_head[1::2]]))
    assert set(degree[1:]) == {3}
    pairs = {tuple(sorted(p)) for p in zip(regular.state_tail[1::2], regular.state_head[1::2])}
    assert len(pairs) == 30  # simple: no repeated edge
    distance = graphs.node_distances(regular, regular.node("0"))
    assert all(distance[v] == distance.max() for v in regular.leaves)
    assert graphs.regular(20, 3, seed=2).describe() == regular.describe()  # seeded
    assert graphs.regular(20, 3, seed=3).describe() != regular.describe()


def test_networkx_graphs_and_graph_files(tmp_path):
    nx = pytest.importorskip("networkx")
    G = nx.MultiGraph()
    G.add_edges_from([(0, 1), (0, 1), (1, 2)])
    g = graphs.from_networkx(G, 0)
    assert g.describe() == {"edges": [["0", "1"], ["0", "1"], ["1", "2"]], "root": "0"}
    with pytest.raises(InputError, match="directed"):
        graphs.from_networkx(nx.DiGraph([(0, 1)]), 0)
    path = tmp_path / "g.txt"
    path.write_text("# comment\n0 1\n0 1  # a second lane\n\n1 2\n")
    assert read_edge_list(path) == [("0", "1"), ("0", "1"), ("1", "2")]
    assert read_graph(path, "0").describe() == g.describe()
    nx.write_graphml(nx.path_graph(4), tmp_path / "p.graphml")
    assert read_graph(tmp_path / "p.graphml", "0").describe()["edges"] == [["0", "1"], ["1", "2"], ["2", "3"]]


@pytest.mark.parametrize("build,words", [
    (lambda: from_edges([], "a"), "empty"),
    (lambda: from_edges([("a", "b"), ("c", "d")], "a"), "disconnected: node 'c'"),
    (lambda: from_edges([("a", "b")], "z"), "root: no node 'z'"),
    (lambda: from_edges([("a", "a")], "a"), "self-loop"),
    (lambda: from_edges([("a", "b", "c")], "a"), "pair of node names"),
    (lambda: from_edges([("a", "b")], "a", leaves=["q"]), "leaves: no node 'q'"),
    (lambda: graphs.regular(9, 3), "even"),
    (lambda: graphs.grid(1, 1), "no edge"),
    (lambda: graphs.tree(0, 3), "branching"),
])
def test_invalid_graphs_are_refused_naming_the_problem(build, words):
    with pytest.raises(InputError, match=words):
        build()


def test_a_graph_too_large_is_refused_with_its_size_before_it_is_built():
    with pytest.raises(SizeError, match="tree branching = 10, depth = 12: the graph has 2,222,222,222,221 states"):
        graphs.tree(10, 12)
    with pytest.raises(SizeError, match="grid rows = 100000"):
        graphs.grid(100_000, 100_000)


def test_targets_resolve_by_name_and_as_leaves():
    g = graphs.tree(2, 2)
    leaves = targets.resolve(g, "leaves")
    assert leaves.label == "leaves" and leaves.names == ("r.1.1", "r.1.2", "r.2.1", "r.2.2")
    assert targets.resolve(g, None) == leaves
    one = targets.resolve(g, "r.2")
    assert one.nodes == (g.node("r.2"),) and one.describe() == "r.2"
    with pytest.raises(InputError, match="no node 'x'"):
        targets.resolve(g, "x")
    with pytest.raises(InputError, match="can never be entered"):
        targets.resolve(g, "s0")


# --------------------------------------------------------------------------- exact means


@pytest.mark.parametrize("name", sorted(FAMILY_GRAPHS))
def test_exact_means_match_a_dense_solve_on_every_family(name):
    g = FAMILY_GRAPHS[name]()
    for policy in (pretrained(g), perturbed(g)):
        for target in (*g.leaves, g.n_nodes - 1):
            assert exact.expected_hitting_time(policy, target) == pytest.approx(
                dense_hitting_time(policy, target), rel=1e-10)


def test_the_target_distribution_averages_the_per_target_means():
    g = graphs.star(3, 2)
    policy = perturbed(g, 3)
    per_target = [dense_hitting_time(policy, t) for t in g.leaves]
    assert targets.mean_hitting_time(policy, targets.resolve(g)) == pytest.approx(np.mean(per_target), rel=1e-12)


def test_pretrained_on_a_star_graph_is_the_random_walk_formula():
    # simple random walk from the centre of d arms of length l to one arm's end:
    # E = l (2 d l - l) = l^2 (2d - 1) (resistance identity with unit resistances)
    for d, l in ((2, 3), (4, 2), (5, 5)):
        g = graphs.star(d, l)
        assert exact.expected_hitting_time(pretrained(g), g.leaves[0]) == pytest.approx(l * l * (2 * d - 1))


# --------------------------------------------------------------------------- Monte Carlo


def _mixture_pmf(policy: Policy, plan, t_max: int) -> np.ndarray:
    weights = [p.rollouts / plan.rollouts for p in plan.plans]
    return sum(w * exact.hitting_time_pmf(policy, p.target, t_max) for w, p in zip(weights, plan.plans))


@pytest.mark.parametrize("name", ["tree", "grid", "regular", "edges"])
def test_monte_carlo_agrees_with_exact_over_the_leaves(name):
    g = FAMILY_GRAPHS[name]()
    policy = perturbed(g, 5, 0.5)
    plan = targets.plan(policy, "leaves", rollouts=40_001, seed=11)
    result = targets.execute(plan)
    assert result.rollouts == 40_001 and result.parameters["target"] == "leaves"
    assert result.parameters["targets"] == [g.node_names[t] for t in g.leaves][: len(plan.plans)]
    assert abs(z_score(result.mean, plan.exact_mean, result.stderr)) < Z_LIMIT
    assert chi_square_p_value(result, _mixture_pmf(policy, plan, plan.max_steps)) > P_LIMIT


def test_monte_carlo_agrees_with_exact_for_one_target_and_the_criteria_have_power():
    g = graphs.grid(3, 3)
    policy = perturbed(g, 7, 0.5)
    target = g.node("(2,3)")
    result = targets.simulate(policy, "(2,3)", rollouts=60_000, seed=3)
    exact_mean = exact.expected_hitting_time(policy, target)
    assert abs(z_score(result.mean, exact_mean, result.stderr)) < Z_LIMIT
    assert chi_square_p_value(result, exact.hitting_time_pmf(policy, target, result.parameters["max_steps"])) > P_LIMIT
    # a slightly wrong policy (the first move of every row 20% more likely before
    # renormalising) fails both criteria
    from edgewalk.policy import from_logits

    logits = np.random.default_rng(7).normal(0.0, 0.5, g.n_transitions)
    logits[g.row_start[:-1]] += np.log(1.2)
    wrong = from_logits(g, logits)
    assert abs(z_score(result.mean, exact.expected_hitting_time(wrong, target), result.stderr)) > Z_LIMIT
    assert chi_square_p_value(result, exact.hitting_time_pmf(wrong, target, result.parameters["max_steps"])) < P_LIMIT


def test_a_mixture_compared_with_the_wrong_weights_is_rejected():
    # power of the leaves criterion: the run over the star's arms against the mean of one arm
    g = graphs.star(3, 3)
    policy = perturbed(g, 2, 1.0)
    plan = targets.plan(policy, "leaves", rollouts=60_000, seed=9)
    result = targets.execute(plan)
    assert abs(z_score(result.mean, plan.exact_mean, result.stderr)) < Z_LIMIT
    per_target = [p.exact_mean for p in plan.plans]
    assert max(abs(z_score(result.mean, m, result.stderr)) for m in per_target) > Z_LIMIT


def test_parts_of_a_run_over_targets_add_up_and_backends_agree_bit_for_bit():
    g = graphs.tree(2, 2)
    policy = perturbed(g, 4)
    plan = targets.plan(policy, "leaves", rollouts=10_003, seed=5)
    whole = targets.execute(plan.on("numba", 1))
    for backend, threads in (("numba", 2), ("cython", 1), ("cython", 2)):
        assert same_result(targets.execute(plan.on(backend, threads)), whole), (backend, threads)
    halves = targets.execute(plan.part(0, 4_000)) + targets.execute(plan.part(4_000, 6_003))
    assert same_result(halves, whole)
    # with one named target it is exactly the single-target plan of planning.plan
    from edgewalk import planning

    single = targets.execute(targets.plan(policy, "r.1.2", rollouts=2_000, seed=5))
    assert same_result(single, planning.simulate(policy, g.node("r.1.2"), rollouts=2_000, seed=5))


def test_the_search_wrapper_runs_on_any_graph():
    g = graphs.grid(4, 4)
    result = targets.simulate(pretrained(g), "leaves", rollouts=5_000, seed=1, search="mask")
    # the wrapper enters each state at most once: never more steps than twice the states
    assert result.hits == 5_000 and result.counts[2 * g.n_states + 1:].sum() == 0


def test_path_star_policies_are_refused_elsewhere_in_one_line():
    with pytest.raises(InputError, match="path-star graphs only, not on tree_branching2_depth2"):
        sft(graphs.tree(2, 2))
    with pytest.raises(InputError, match="path-star"):
        rlvr(graphs.grid(2, 2))


def test_the_core_imports_and_builds_graphs_without_networkx():
    import subprocess
    import sys

    code = ("import sys; sys.modules['networkx'] = None\n"
            "import edgewalk as ew\n"
            "g = ew.tree(2, 3); h = ew.from_edges([('a', 'b')], 'a')\n"
            "print(ew.expected_hitting_time(ew.pretrained(g), g.leaves[0]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == 65.0


def test_a_run_without_sample_variance_is_judged_by_the_exact_law_of_its_one_value():
    from edgewalk import training

    g = graphs.grid(3, 3)
    corner = [g.node("(3,3)")]
    taught = training.train_rlvr(g, iterations=1000, record_every=1000, targets=corner).policy
    plan = targets.plan(taught, "leaves", rollouts=20_000, seed=2)
    result = targets.execute(plan)
    assert result.variance == 0 and result.mean == 4  # every rollout takes a shortest path
    comparison = targets.compare_with_exact(plan, result)
    assert comparison.reference == "all_equal" and comparison.z < Z_LIMIT
    # power: the same sample claimed to come from a policy that leaves a shortest path with
    # probability about 1e-3 per move
    from edgewalk.policy import from_logits

    worse = from_logits(g, np.log(np.maximum(taught.probabilities, 1e-3)))
    claimed = targets.plan(worse, "leaves", rollouts=20_000, seed=2)
    assert targets.compare_with_exact(claimed, result).z > Z_LIMIT


def test_the_command_line_builds_every_family_and_lanes_per_diamond(capsys):
    import json

    from edgewalk.cli import main

    cases = [
        (["--depths", "2,1", "--diamond-lanes", "2,3;1"], graphs.heterogeneous([2, 1], [[2, 3], [1]])),
        (["--family", "star", "--degree", "3", "--length", "2"], graphs.star(3, 2)),
        (["--family", "tree", "--branching", "3", "--depth", "2"], graphs.tree(3, 2)),
        (["--family", "grid", "--rows", "3", "--columns", "2"], graphs.grid(3, 2)),
        (["--family", "regular", "--nodes", "12", "--degree", "3", "--graph-seed", "5"], graphs.regular(12, 3, 5)),
    ]
    for argv, g in cases:
        capsys.readouterr()
        assert main(["exact", *argv, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["graph"] == g.describe() and out["target"] == "leaves"
        assert out["exact_mean"] == pytest.approx(targets.mean_hitting_time(pretrained(g), targets.resolve(g)))
