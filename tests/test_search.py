"""The no-revisit search wrapper (docs/model.md section 6): Monte Carlo on both backends against an
exact enumeration of every wrapper trajectory, the documented random stream, identities with
the plain engine, bit identity across backends and threads, and censoring when the target is
unreachable. Every criterion here can fail; see the power checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgewalk import (
    Policy,
    heterogeneous,
    parametric,
    path_star,
    pretrained,
    rlvr,
    sft,
    simulate,
)
from edgewalk.kernels import seed_key

from conftest import P_LIMIT, Z_LIMIT, chi_square_p_value, same_result, z_score
from enumerate_search import enumerate_search, reference_search_rollout

MODES = ("mask", "reject")
BACKENDS = ("numba", "cython")


# ---------------------------------------------------------------------------------------------
# Helpers


def criteria(result, exact, mode: str) -> dict[str, float]:
    """The three statistics used to compare a run with the enumeration."""
    exact_draws = exact.mean_moves if mode == "mask" else exact.mean_reject_draws
    return {
        "z_steps": z_score(result.mean, exact.mean_steps, result.stderr),
        "z_draws": z_score(result.mean_draws, exact_draws, result.stderr_draws),
        "chi2_p": chi_square_p_value(result, exact.pmf),
    }


def run(policy, target, mode, **kwargs):
    """A search run with unit-width bins covering the default max_steps (2 * n_states)."""
    max_steps = kwargs.pop("max_steps", 2 * policy.graph.n_states)
    return simulate(policy, target, max_steps=max_steps, bins=max_steps + 1, search=mode, **kwargs)


def reachable_states(policy) -> set[int]:
    """States reachable from the start over positive-probability transitions."""
    g = policy.graph
    seen, todo = {0}, [0]
    while todo:
        s = todo.pop()
        for k in range(int(g.row_start[s]), int(g.row_start[s + 1])):
            n = int(g.next_state[k])
            if policy.probabilities[k] > 0 and n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def random_policy(graph, seed: int, zero_fraction: float = 0.3) -> Policy:
    """A tabular policy with Dirichlet rows, some entries zero (at least one positive per row):
    unequal multiedges and CSR order matter to the mask-mode selection loop."""
    rng = np.random.default_rng(seed)
    probabilities = np.empty(graph.n_transitions)
    for s in range(graph.n_states):
        lo, hi = int(graph.row_start[s]), int(graph.row_start[s + 1])
        row = rng.dirichlet(np.full(hi - lo, 0.7))
        zero = rng.random(hi - lo) < zero_fraction
        if zero.all():
            zero[rng.integers(hi - lo)] = False
        row[zero] = 0.0
        probabilities[lo:hi] = row / row.sum()
    return Policy(graph, probabilities, f"random{seed}")


INTERIOR = dict(a=0.7, b=0.6, c=0.8, d=0.3)
GRAPHS = {
    "W2K1L1": lambda: path_star(2, 1, 1),
    "W2K1L2": lambda: path_star(2, 1, 2),
    "W3K1L1": lambda: path_star(3, 1, 1),
    "W2K2L1": lambda: path_star(2, 2, 1),
    "het21": lambda: heterogeneous([2, 1], 1),
    "het21-lanes": lambda: heterogeneous([2, 1], [[2, 1], [1]]),
    "het21-lanes3": lambda: heterogeneous([2, 1], [[2, 1], [3]]),
}
POLICIES = {
    "pretrained": pretrained,
    "sft": sft,
    "rlvr": rlvr,
    "parametric": lambda g: parametric(g, **INTERIOR),
    "random0": lambda g: random_policy(g, 0),
    "random5": lambda g: random_policy(g, 5),
}


# ---------------------------------------------------------------------------------------------
# 1. The enumerator itself, against values derived by hand


def test_enumerator_matches_hand_derived_values():
    # RLVR: no pops; branches are tried in a uniformly random order, each wrong one costs
    # 2 (2K + 1) moves, so E[T] = (2K + 1) W. In reject mode only the fork rejects: after j
    # wrong branches it costs W / (W - j) draws, which adds (W - 1) / 2 in expectation.
    for w, k, lanes in [(2, 1, 1), (3, 1, 1), (2, 2, 1), (2, 1, 2), (3, 2, 2)]:
        e = enumerate_search(rlvr(path_star(w, k, lanes)), path_star(w, k, lanes).leaf(1))
        assert e.p_hit == pytest.approx(1.0)
        assert e.mean_steps == pytest.approx((2 * k + 1) * w)
        assert e.mean_moves == pytest.approx((2 * k + 1) * w)
        assert e.mean_reject_draws == pytest.approx((2 * k + 1) * w + (w - 1) / 2)
    # SFT on W = 2, K = 1, L = 1: the wrong branch is a loop f, u_l, u_r, t2, u_r, u_l, f of
    # 6 moves without pops; in reject mode R-, L- and the fork each reject half the mass, so
    # the wrong-branch-first path (prob 1/2) costs 9 moves but 6 + 3 * 2 = 12 draws.
    e = enumerate_search(sft(path_star(2, 1, 1)), path_star(2, 1, 1).leaf(1))
    assert e.mean_steps == pytest.approx(6.0)
    assert e.mean_moves == pytest.approx(6.0)
    assert e.mean_reject_draws == pytest.approx(0.5 * 3 + 0.5 * 12)
    assert np.allclose(e.pmf[[3, 9]], [0.5, 0.5]) and e.pmf.sum() == pytest.approx(1.0)
    # Pretrained, W = K = L = 1 (states s0>f, f>l, l>f, l>r, r>l, r>t, t>r), all worked out:
    #   f>l, l>r, r>t                                 T = 3, 3 moves, 3 reject draws
    #   f>l, l>r, r>l, l>f, pop, pop, r>t             T = 7, 5 moves, 1+1+1+2+2 = 7 draws
    #   f>l, l>f, pop, l>r, r>t                       T = 5, 4 moves, 1+1+2+1 = 5 draws
    #   f>l, l>f, pop, l>r, r>l, pop, r>t             T = 7, 5 moves, 1+1+2+1+2 = 7 draws
    # each with probability 1/4.
    g = path_star(1, 1, 1)
    e = enumerate_search(pretrained(g), g.leaf(1))
    assert e.p_hit == pytest.approx(1.0)
    assert np.allclose(e.pmf[[3, 5, 7]], [0.25, 0.25, 0.5]) and e.pmf.sum() == pytest.approx(1.0)
    assert e.mean_steps == pytest.approx(5.5)
    assert e.mean_moves == pytest.approx(17 / 4)
    assert e.mean_reject_draws == pytest.approx(22 / 4)


def test_enumerator_brute_force_agrees_on_a_tiny_graph():
    """The memoised enumeration against a direct Monte Carlo of the definition in Python."""
    g = path_star(2, 1, 1)
    policy = parametric(g, **INTERIOR)
    target = g.leaf(1)
    e = enumerate_search(policy, target)
    rng = np.random.default_rng(3)
    is_target = g.target_states(target)
    times = []
    n = 8000
    for _ in range(n):
        stack, visited, t = [0], {0}, 0
        while True:
            s = stack[-1]
            lo, hi = int(g.row_start[s]), int(g.row_start[s + 1])
            moves = [(int(g.next_state[k]), policy.probabilities[k]) for k in range(lo, hi)
                     if policy.probabilities[k] > 0 and int(g.next_state[k]) not in visited]
            t += 1
            if not moves:
                stack.pop()
                assert stack
                continue
            p = np.array([m[1] for m in moves])
            chosen = moves[rng.choice(len(moves), p=p / p.sum())][0]
            visited.add(chosen)
            stack.append(chosen)
            if is_target[chosen]:
                times.append(t)
                break
    times = np.array(times)
    assert abs((times.mean() - e.mean_steps) / (times.std(ddof=1) / math.sqrt(n))) < Z_LIMIT


# ---------------------------------------------------------------------------------------------
# 2. Monte Carlo against the enumeration, both modes, both backends

NAMED = ("pretrained", "sft", "rlvr", "parametric")
CASES = [(f"{gn}-{pn}", gn, pn, "t1") for gn in GRAPHS for pn in NAMED] + [
    ("W2K2L1-pretrained-inner-target", "W2K2L1", "pretrained", "u(2,1,r)"),
    ("het21-lanes-parametric-t2", "het21-lanes", "parametric", "t2"),
    ("W2K2L1-sft-target-u(1,2,l)", "W2K2L1", "sft", "u(1,2,l)"),
    ("het21-lanes3-random0", "het21-lanes3", "random0", "t1"),
    ("het21-lanes3-random5", "het21-lanes3", "random5", "t1"),
]


_ENUMERATED: dict = {}


def case_policy_and_exact(graph_name: str, policy_name: str, target: str):
    """The case's policy and its enumeration, computed once for both backends."""
    key = (graph_name, policy_name, target)
    if key not in _ENUMERATED:
        graph = GRAPHS[graph_name]()
        policy = POLICIES[policy_name](graph)
        _ENUMERATED[key] = policy, enumerate_search(policy, graph.node(target))
    return _ENUMERATED[key]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case_id,graph_name,policy_name,target", CASES, ids=[c[0] for c in CASES])
def test_monte_carlo_matches_enumeration(case_id, graph_name, policy_name, target, backend):
    policy, exact = case_policy_and_exact(graph_name, policy_name, target)
    assert exact.p_hit == pytest.approx(1.0)
    seed = 1000 + [c[0] for c in CASES].index(case_id)
    failures = []
    for mode in MODES:
        result = run(policy, target, mode, rollouts=40_000, seed=seed, backend=backend, threads=2)
        assert result.censored == 0 and result.hits == 40_000
        c = criteria(result, exact, mode)
        if not (abs(c["z_steps"]) < Z_LIMIT and abs(c["z_draws"]) < Z_LIMIT and c["chi2_p"] > P_LIMIT):
            failures.append(
                f"{mode}: mean steps {result.mean:.4f} vs exact {exact.mean_steps:.4f} "
                f"(z {c['z_steps']:.2f}); mean draws {result.mean_draws:.4f} vs exact "
                f"{exact.mean_moves if mode == 'mask' else exact.mean_reject_draws:.4f} "
                f"(z {c['z_draws']:.2f}); chi-square p {c['chi2_p']:.3g}"
            )
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("mode", MODES)
def test_the_criteria_detect_a_slightly_different_policy(mode):
    """Power check: a run of one policy fails every criterion against the enumeration of a
    policy whose a differs by 0.1 (and by the exact reject-vs-mask draw counts)."""
    graph = path_star(2, 2, 1)
    simulated = parametric(graph, a=0.6, b=0.6, c=0.8, d=0.3)
    claimed = parametric(graph, a=0.7, b=0.6, c=0.8, d=0.3)
    target = graph.leaf(1)
    result = run(simulated, target, mode, rollouts=40_000, seed=99, threads=2)
    right = criteria(result, enumerate_search(simulated, target), mode)
    assert abs(right["z_steps"]) < Z_LIMIT and abs(right["z_draws"]) < Z_LIMIT
    assert right["chi2_p"] > P_LIMIT
    wrong = criteria(result, enumerate_search(claimed, target), mode)
    assert abs(wrong["z_steps"]) > Z_LIMIT
    assert abs(wrong["z_draws"]) > Z_LIMIT
    assert wrong["chi2_p"] < P_LIMIT


def test_the_draws_criterion_tells_the_modes_apart():
    """Counting reject-mode draws as mask-mode draws (or the reverse) fails the z-test."""
    graph = path_star(2, 1, 2)
    policy = pretrained(graph)
    exact = enumerate_search(policy, graph.leaf(1))
    for mode, other in (("mask", exact.mean_reject_draws), ("reject", exact.mean_moves)):
        result = run(policy, "t1", mode, rollouts=40_000, seed=5, threads=2)
        assert abs(z_score(result.mean_draws, other, result.stderr_draws)) > Z_LIMIT


@pytest.mark.parametrize("backend", BACKENDS)
def test_censoring_by_max_steps_matches_the_enumerated_survival(backend):
    """With max_steps below the longest search, the censored fraction is P(T > max_steps) and
    a hit at exactly t == max_steps still counts."""
    graph = path_star(2, 1, 2)
    policy = pretrained(graph)
    exact = enumerate_search(policy, graph.leaf(1))
    max_steps = 13  # hitting times are odd here
    assert exact.pmf[max_steps] > 0.01
    n = 40_000
    for mode in MODES:
        result = run(policy, "t1", mode, rollouts=n, seed=77, max_steps=max_steps, backend=backend,
                     threads=2)
        p = exact.survival(max_steps)
        z = (result.censored / n - p) / math.sqrt(p * (1 - p) / n)
        assert abs(z) < Z_LIMIT, (mode, result.censored / n, p)
        assert result.counts[max_steps] > 0
        assert chi_square_p_value(result, exact.pmf[: max_steps + 1]) > P_LIMIT
        assert result.steps == result.total + max_steps * result.censored


# ---------------------------------------------------------------------------------------------
# The documented random stream, rollout by rollout


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_rollouts_follow_the_documented_random_stream(backend, mode):
    graph = path_star(3, 2, 2)
    policy = parametric(graph, a=0.7, b=0.4, c=0.9, d=0.2)
    target = graph.leaf(2)
    seed = 2**64 - 5
    max_steps = 40  # some rollouts are censored by max_steps
    tables = policy.alias
    is_target = graph.target_states(target)
    rollouts = 300
    expected = [reference_search_rollout(tables, is_target, mode, seed_key(seed), r, max_steps)
                for r in range(rollouts)]
    result = simulate(policy, target, rollouts=rollouts, seed=seed, max_steps=max_steps,
                      bins=max_steps + 1, backend=backend, threads=2, search=mode)
    hits = [(t, d, p) for hit, t, d, p in expected if hit]
    assert 0 < result.censored < rollouts
    assert result.censored == rollouts - len(hits)
    assert result.hits == len(hits)
    assert result.total == sum(t for t, _, _ in hits)
    assert result.total_of_squares == sum(t * t for t, _, _ in hits)
    assert result.draws_total == sum(d for _, d, _ in hits)
    assert result.draws_total_of_squares == sum(d * d for _, d, _ in hits)
    assert result.steps == sum(t for _, t, _, _ in expected)
    assert np.array_equal(result.counts, np.bincount([t for t, _, _ in hits], minlength=max_steps + 1))
    if mode == "mask":  # one draw per accepted move; every other step is a pop
        assert result.draws_total == result.total - sum(p for _, _, p in hits)
        assert sum(p for _, _, p in hits) > 0


# ---------------------------------------------------------------------------------------------
# 3. Identities: where the wrapper changes nothing, and draws versus steps


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "policy_name,make",
    [
        ("rlvr", rlvr),
        ("sft", sft),
        ("a=c=1", lambda g: parametric(g, a=1.0, b=0.3, c=1.0, d=0.6)),
    ],
)
@pytest.mark.parametrize("target", ["t1", "u(1,2,r)"])
def test_single_branch_never_revisiting_policy_equals_plain_engine(policy_name, make, mode, target):
    graph = path_star(1, 3, 2)
    policy = make(graph)
    max_steps = 2 * graph.n_states
    kwargs = dict(rollouts=5000, seed=3, max_steps=max_steps, bins=max_steps + 1, threads=2)
    plain = simulate(policy, target, **kwargs)
    searched = simulate(policy, target, search=mode, **kwargs)
    assert searched.hits == plain.hits == 5000 and searched.censored == plain.censored == 0
    assert np.array_equal(searched.counts, plain.counts)
    assert (searched.total, searched.total_of_squares, searched.steps) == (
        plain.total, plain.total_of_squares, plain.steps)
    assert searched.draws_total == searched.total
    assert searched.draws_total_of_squares == searched.total_of_squares
    exact = enumerate_search(policy, graph.node(target))
    assert searched.mean == pytest.approx(exact.mean_steps)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "make", [pretrained, sft, lambda g: parametric(g, **INTERIOR)], ids=["pretrained", "sft", "parametric"]
)
def test_mask_draws_never_exceed_steps_and_reject_draws_exceed_mask(make, backend):
    """Per rollout, mask draws = steps - pops <= steps, so the sums and sums of squares are
    ordered; reject mode costs more draws in mean, and exactly as many more as enumerated."""
    graph = path_star(2, 1, 2)
    policy = make(graph)
    exact = enumerate_search(policy, graph.leaf(1))
    assert exact.mean_pops > 0 and exact.mean_reject_draws > exact.mean_moves
    mask = run(policy, "t1", "mask", rollouts=30_000, seed=11, backend=backend, threads=2)
    reject = run(policy, "t1", "reject", rollouts=30_000, seed=11, backend=backend, threads=2)
    assert mask.draws_total < mask.total  # some pops happened
    assert mask.draws_total_of_squares < mask.total_of_squares
    assert reject.draws_total > reject.total
    # Pops per hit = steps - draws: sd(T - M) <= sd(T) + sd(M), a conservative standard error.
    pops_per_hit = (mask.total - mask.draws_total) / mask.hits
    pops_stderr = mask.stderr + mask.stderr_draws
    assert abs(z_score(pops_per_hit, exact.mean_pops, pops_stderr)) < Z_LIMIT
    gap = reject.mean_draws - mask.mean_draws
    gap_stderr = math.hypot(reject.stderr_draws, mask.stderr_draws)
    assert gap > 0
    assert abs((gap - (exact.mean_reject_draws - exact.mean_moves)) / gap_stderr) < Z_LIMIT


@pytest.mark.parametrize("backend", BACKENDS)
def test_rlvr_on_the_paper_graph_matches_the_closed_form(backend):
    """RLVR never pops: mask draws equal steps exactly, E[T] = (2K + 1) W, and reject mode adds
    (W - 1) / 2 expected draws at the fork."""
    w, k, lanes = 15, 15, 5
    policy = rlvr(path_star(w, k, lanes))
    mask = run(policy, "t1", "mask", rollouts=20_000, seed=21, backend=backend, threads=2)
    reject = run(policy, "t1", "reject", rollouts=20_000, seed=22, backend=backend, threads=2)
    assert mask.draws_total == mask.total and mask.draws_total_of_squares == mask.total_of_squares
    for result in (mask, reject):
        assert result.hits == 20_000
        assert abs(z_score(result.mean, (2 * k + 1) * w, result.stderr)) < Z_LIMIT
        # Hitting times are (2K + 1)(2N + 1) with N ~ uniform{0..W-1}, wrong branches first.
        support = np.flatnonzero(result.counts)
        assert set(support) <= {(2 * k + 1) * (2 * n + 1) for n in range(w)}
    assert abs(z_score(reject.mean_draws, (2 * k + 1) * w + (w - 1) / 2, reject.stderr_draws)) < Z_LIMIT


# ---------------------------------------------------------------------------------------------
# 4. Bit identity across backends and thread counts


@pytest.mark.parametrize("mode", MODES)
def test_backends_and_threads_agree_bit_for_bit_on_the_paper_graph(mode):
    policy = sft(path_star(15, 15, 5))
    runs = [
        simulate(policy, rollouts=3000, seed=2024, backend=backend, threads=threads, search=mode)
        for backend in BACKENDS
        for threads in (1, 2)
    ]
    assert runs[0].hits == 3000
    for other in runs[1:]:
        assert same_result(runs[0], other)
    other_seed = simulate(policy, rollouts=3000, seed=2025, threads=2, search=mode)
    assert not np.array_equal(other_seed.counts, runs[0].counts)


def test_search_modes_and_plain_engine_give_different_draws():
    policy = sft(path_star(4, 2, 3))
    mask = simulate(policy, rollouts=2000, seed=1, threads=2, search="mask")
    reject = simulate(policy, rollouts=2000, seed=1, threads=2, search="reject")
    assert mask.draws_total != reject.draws_total
    assert mask.draws_total < reject.draws_total


# ---------------------------------------------------------------------------------------------
# 5. Censoring when the target is unreachable


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "graph_args,parameters",
    [((3, 2, 2), dict(c=0.0)), ((3, 2, 2), dict(a=0.0)), ((2, 3, 2), dict(a=[1.0, 1.0, 0.0]))],
    ids=["c=0", "a=0", "a=0-at-depth-3"],
)
def test_unreachable_target_is_censored_after_an_exhaustive_search(graph_args, parameters, mode,
                                                                   backend):
    graph = path_star(*graph_args)
    policy = parametric(graph, **parameters)
    reachable = reachable_states(policy)
    assert not graph.target_states(graph.leaf(1))[sorted(reachable)].any()
    if parameters == dict(c=0.0):
        assert enumerate_search(policy, graph.leaf(1)).p_hit == 0.0
    result = simulate(policy, rollouts=500, seed=4, backend=backend, threads=2, search=mode)
    assert result.censored == 500 and result.hits == 0
    assert result.counts.sum() == 0 and result.total == 0 and result.draws_total == 0
    # The DFS enters every reachable state once and pops each once (the start included).
    assert result.steps == 500 * (2 * len(reachable) - 1)
    if parameters == dict(c=0.0):
        assert result.steps == 500 * (4 * graph.branches + 1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_random_policy_with_unreachable_target_is_censored(mode, backend):
    graph = GRAPHS["het21-lanes3"]()
    policy = random_policy(graph, 1)
    assert enumerate_search(policy, graph.leaf(1)).p_hit == 0.0
    result = simulate(policy, rollouts=500, seed=8, backend=backend, threads=2, search=mode)
    assert result.censored == 500 and result.hits == 0 and result.counts.sum() == 0
    assert result.steps == 500 * (2 * len(reachable_states(policy)) - 1)


def test_target_entered_by_the_start_state_hits_at_zero():
    policy = pretrained(path_star(2, 1, 1))
    for mode in MODES:
        result = simulate(policy, "f", rollouts=10, search=mode)
        assert result.hits == 10 and result.total == 0 and result.draws_total == 0
        assert result.counts[0] == 10


# ---------------------------------------------------------------------------------------------
# 6. Validation


def test_unknown_search_mode_is_refused():
    policy = pretrained(path_star(2, 1, 1))
    with pytest.raises(ValueError, match="search"):
        simulate(policy, rollouts=10, search="bogus")
