"""Leap sampling (edgewalk.leap): the exact law from the powers against independent solvers, the
Monte Carlo draws against that law (z-score of the mean, chi-square of the histogram on log
bins) and against the step kernel (two-sample tests), power checks that the same criteria reject
a policy with a off by 0.05, bit identity across backends and threads, and a pure-Python replay
of the documented random stream."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from scipy import stats

from conftest import P_LIMIT, Z_LIMIT, chi_square_p_value_below, same_result, z_score
from edgewalk import exact, leap
from edgewalk.errors import InputError, SizeError
from edgewalk.graph import heterogeneous, path_star
from edgewalk.kernels import GAMMA, MASK64, mix64, seed_key
from edgewalk.lumping import lump, sampled_probabilities
from edgewalk.planning import simulate
from edgewalk.policy import Policy, parametric, pretrained, rlvr, sft

PAPER = path_star(15, 15, 5)


def lumped_of(policy, target="t1"):
    return lump(policy, policy.graph.node(target))


def tables_of(policy, target="t1", max_steps=None):
    lumped = lumped_of(policy, target)
    return leap.build_tables(lumped, max_steps or max(1000, 50 * math.ceil(leap.mean(lumped))))


def mass_below(law, edges):
    """P(T < edge) at every edge, from the exact CDF of the powers."""
    edges = np.asarray(edges, np.int64)
    return np.concatenate(([0.0], leap.cdf(law, edges[1:] - 1)))


def two_sample_p_value(a, b) -> float:
    """Chi-square test that two results with the same edges (censored rollouts as one more
    cell) come from one law; cells are merged from the left until each expects >= 5 in both."""
    assert np.array_equal(a.edges, b.edges)
    x = np.append(a.counts, a.censored).astype(float)
    y = np.append(b.counts, b.censored).astype(float)
    share = x.sum() / (x.sum() + y.sum())
    cells, acc = [], np.zeros(2)
    for cell in zip(x, y):
        acc += cell
        if min(acc.sum() * share, acc.sum() * (1 - share)) >= 5:
            cells.append(acc)
            acc = np.zeros(2)
    if acc.sum() > 0:
        cells[-1] = cells[-1] + acc
    table = np.array(cells)
    if len(table) < 2:
        return 1.0
    return float(stats.chi2_contingency(table.T, correction=False)[1])


def two_sample_z(a, b) -> float:
    return (a.mean - b.mean) / math.hypot(a.stderr, b.stderr)


# ----------------------------------------------------------------------------- the exact law


LAW_CASES = [
    ("sft-paper", sft(PAPER), "t1"),
    ("pretrained-paper", pretrained(PAPER), "t7"),
    ("rlvr-paper", rlvr(PAPER), "t1"),
    ("heterogeneous-sft", sft(heterogeneous([6, 5, 4, 3, 3], 5)), "t2"),
    ("per-branch", parametric(heterogeneous([4, 2, 3], [[2, 1, 3, 2], [4, 4], [1, 1, 1]]),
                              a=0.8, b=np.array([[0.3] * 4, [0.5] * 4, [0.9] * 4]), c=0.6, d=0.45), "t3"),
    ("inner-node", sft(path_star(6, 8, 3)), "u(3,5,l)"),
]


@pytest.mark.parametrize("name,policy,target", LAW_CASES, ids=[c[0] for c in LAW_CASES])
def test_the_powers_give_the_exact_mean(name, policy, target):
    # E[min(T, 2**62)] from the powers against GTH-LU on the full chain (exact.py) of the law
    # the kernel samples: the survival mass kept exact level after level
    lumped = lumped_of(policy, target)
    sampled = exact.expected_hitting_time(Policy(policy.graph, sampled_probabilities(policy)),
                                          policy.graph.node(target))
    assert leap.truncated_mean(lumped, 2**62) == pytest.approx(sampled, rel=1e-12)


@pytest.mark.parametrize("name,policy,target", LAW_CASES, ids=[c[0] for c in LAW_CASES])
def test_the_cdf_is_the_propagated_distribution_at_small_t(name, policy, target):
    # P(T <= t) for t = 0..3000 against step-by-step propagation through the full chain, with
    # relative accuracy also where the probability is tiny
    node = policy.graph.node(target)
    propagated = exact.hitting_time_cdf(Policy(policy.graph, sampled_probabilities(policy)), node, 3000)
    powers = leap.cdf(lumped_of(policy, target), np.arange(3001))
    positive = propagated > 0
    assert np.array_equal(powers > 0, positive)
    assert np.allclose(powers[positive], propagated[positive], rtol=1e-11, atol=0)


@pytest.mark.skipif(np.finfo(np.longdouble).eps > 1e-18, reason="needs 80-bit or wider long double")
def test_the_cdf_at_large_t_agrees_with_extended_precision():
    """SFT at K = 15 (E[T] = 4.3e14): the powers against repeated squaring in long double
    without any normalisation (its own error is about 2^m x 1e-19 of mass, 1e-6 here). The
    same squaring in double precision misses by 1e-3: the check can fail."""
    lumped = lumped_of(sft(PAPER))
    times = [10**4, 10**10, 10**13, 10**14, 4 * 10**14, 10**15, 3 * 10**15]

    def squared(dtype):
        s, a = lumped.dense_q().astype(dtype), lumped.absorb.astype(dtype)
        levels = [(s, a)]
        for _ in range(52):
            a, s = a + s @ a, s @ s
            levels.append((s, a))
        out = []
        for t in times:
            alive, total = np.zeros(lumped.n_transient, dtype), dtype(0)
            alive[lumped.start] = 1
            for m in range(len(levels) - 1, -1, -1):
                if t >> m & 1:
                    total += alive @ levels[m][1]
                    alive = alive @ levels[m][0]
            out.append(float(total))
        return np.array(out)

    powers = leap.cdf(lumped, np.array(times))
    assert np.allclose(powers, squared(np.longdouble), rtol=1e-5, atol=0)
    assert not np.allclose(squared(np.float64), squared(np.longdouble), rtol=1e-4, atol=0)


def test_quantiles_invert_the_cdf():
    lumped = lumped_of(sft(PAPER))
    q = np.array([1e-6, 0.01, 0.0666, 0.07, 0.5, 0.9, 0.999999])
    t = leap.quantile(lumped, q)
    assert np.all(leap.cdf(lumped, t) >= q) and np.all(leap.cdf(lumped, t - 1) < q)
    assert leap.quantile(lumped, 0.5) == t[4]
    assert leap.quantile(lumped_of(pretrained(path_star(2, 1, 1)), "f"), 0.5) == 0
    trap = parametric(path_star(3, 2, 2), c=1.0, d=np.array([[0.3, 0.3], [0.0, 0.0], [0.3, 0.3]]))
    never = leap.quantile(lumped_of(trap), [0.1, 0.99])
    assert never[0] > 0 and never[1] == -1 and leap.quantile(lumped_of(trap), 0.99) is None


# ------------------------------------------------------------------- Monte Carlo against the law


MC_CASES = [
    ("sft-paper", sft(PAPER), "t1", 1_000_000),
    ("pretrained-paper", pretrained(PAPER), "t7", 200_000),
    ("rlvr-paper", rlvr(PAPER), "t1", 200_000),
    ("heterogeneous-sft", sft(heterogeneous([6, 5, 4, 3, 3], 5)), "t2", 200_000),
    ("per-branch", LAW_CASES[4][1], "t3", 200_000),
    ("inner-node", sft(path_star(6, 8, 3)), "u(3,5,l)", 200_000),
]


@pytest.mark.parametrize("name,policy,target,rollouts", MC_CASES, ids=[c[0] for c in MC_CASES])
def test_leap_matches_the_exact_mean_and_cdf(name, policy, target, rollouts):
    tables = tables_of(policy, target)
    result = leap.run(tables, rollouts=rollouts, seed=11, threads=2)
    assert result.censored == 0
    assert abs(z_score(result.mean, leap.mean(tables), result.stderr)) < Z_LIMIT
    assert chi_square_p_value_below(result, mass_below(tables, result.edges)) > P_LIMIT


def test_the_criteria_reject_sft_with_a_off_by_0_05():
    """Power check on the paper's graph: a million leap rollouts of SFT with a = 0.95 fail both
    criteria against SFT's exact law (a = 1)."""
    claimed = tables_of(sft(PAPER))
    wrong = leap.build_tables(lumped_of(parametric(PAPER, a=0.95, c=1.0, name="sft-a-0.95")),
                              claimed.max_steps)
    edges = leap.suggest_edges(claimed, claimed.max_steps)
    result = leap.run(wrong, rollouts=1_000_000, seed=11, edges=edges, threads=2)
    assert abs(z_score(result.mean, leap.mean(claimed), result.stderr)) > Z_LIMIT
    assert chi_square_p_value_below(result, mass_below(claimed, result.edges)) < P_LIMIT


def test_censoring_at_max_steps_matches_the_tail():
    # SFT on the paper's graph censored at 3 E[T] (the rows that walk the set bits of max_steps)
    # and at 2**49, about 1.3 E[T] (a single set bit: censored straight from the start row)
    lumped = lumped_of(sft(PAPER))
    mean = leap.mean(lumped)
    for max_steps in (int(3 * mean), 1 << int(math.log2(mean) + 1)):
        tables = leap.build_tables(lumped, max_steps)
        result = leap.run(tables, rollouts=200_000, seed=5, threads=2)
        tail = 1.0 - leap.cdf(lumped, max_steps)
        assert 0.005 < tail < 0.5
        sd = math.sqrt(result.rollouts * tail * (1 - tail))
        assert abs(result.censored - result.rollouts * tail) < Z_LIMIT * sd
        assert result.steps == result.total + result.censored * max_steps
        assert abs(z_score(result.mean, _hit_mean(lumped, max_steps), result.stderr)) < Z_LIMIT
        assert chi_square_p_value_below(result, mass_below(lumped, result.edges)) > P_LIMIT


def _hit_mean(lumped, max_steps):
    """E[T | T <= max_steps] = (E[min(T, m)] - m P(T > m)) / P(T <= m)."""
    hit = leap.cdf(lumped, max_steps)
    return (leap.truncated_mean(lumped, max_steps) - max_steps * (1 - hit)) / hit


def test_a_target_not_hit_surely_is_censored_with_the_right_probability():
    trap = parametric(path_star(3, 2, 2), c=1.0, d=np.array([[0.3, 0.3], [0.0, 0.0], [0.3, 0.3]]))
    tables = leap.build_tables(lumped_of(trap), 10_000)
    result = leap.run(tables, rollouts=100_000, seed=2, threads=2)
    tail = 1.0 - leap.cdf(tables, 10_000)
    assert tail > 0.3 and leap.mean(tables) == math.inf
    assert abs(result.censored - 100_000 * tail) < Z_LIMIT * math.sqrt(100_000 * tail * (1 - tail))
    assert chi_square_p_value_below(result, mass_below(tables, result.edges)) > P_LIMIT


# --------------------------------------------------------------- leap against the step kernel


STEP_CASES = [
    ("pretrained", pretrained(path_star(3, 2, 2)), "t1"),
    ("sft", sft(path_star(4, 3, 3)), "t1"),
    ("rlvr", rlvr(path_star(6, 4, 3)), "t3"),
    ("per-depth", parametric(path_star(3, 3, 2), a=[0.9, 0.5, 0.3], b=0.6, c=[0.2, 0.8, 0.5], d=0.4), "t1"),
    ("heterogeneous", pretrained(heterogeneous([3, 2, 1], [[1, 2, 3], [2, 2], [4]])), "t1"),
    ("inner-node", pretrained(path_star(3, 3, 2)), "u(2,2,r)"),
]


@pytest.mark.parametrize("name,policy,target", STEP_CASES, ids=[c[0] for c in STEP_CASES])
def test_leap_and_step_draw_the_same_law(name, policy, target):
    step = simulate(policy, target, rollouts=100_000, seed=3, bins=512, threads=2)
    tables = tables_of(policy, target, step.parameters["max_steps"])
    jumped = leap.run(tables, rollouts=100_000, seed=4, edges=step.edges, threads=2)
    assert abs(two_sample_z(jumped, step)) < Z_LIMIT
    assert two_sample_p_value(jumped, step) > P_LIMIT


def test_the_two_sample_criteria_reject_a_off_by_0_05():
    graph = path_star(3, 3, 2)
    step = simulate(parametric(graph, a=0.55, b=0.5, c=0.5, d=0.5), rollouts=100_000, seed=3,
                    bins=512, threads=2)
    tables = tables_of(parametric(graph, a=0.60, b=0.5, c=0.5, d=0.5), "t1", step.parameters["max_steps"])
    jumped = leap.run(tables, rollouts=100_000, seed=4, edges=step.edges, threads=2)
    assert abs(two_sample_z(jumped, step)) > Z_LIMIT
    assert two_sample_p_value(jumped, step) < P_LIMIT


# ------------------------------------------------------------------ streams and reproducibility


def replay(tables, seed, r):
    """One leap rollout as native/edgewalk_leap.h documents it, in Python integers:
    (hitting time or None if censored, draws)."""
    x = mix64((seed_key(seed) + (r + 1) * GAMMA) & MASK64)
    row, t, draws = tables.start_row, 0, 0
    while row >= 0:
        x = (x + GAMMA) & MASK64
        z = mix64(x)
        draws += 1
        base = int(tables.row_start[row])
        threshold, primary, alias, advances = (int(w) for w in tables.columns[
            base + (((z >> 32) * (int(tables.row_start[row + 1]) - base)) >> 32)])
        if (z & 0xFFFFFFFF) <= threshold:
            row, advance = primary, advances & 0xFF
        else:
            row, advance = alias, advances >> 8
        row = row - (1 << 32) if row >= 1 << 31 else row  # the next row is a signed 32-bit word
        t += (1 << advance) >> 1
    return (t if row == leap.HIT else None), draws


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("case", ["sft-paper", "censored", "deep"])
def test_rollouts_follow_the_documented_stream(backend, case):
    """The deep case (SFT at K = 20, E[T] = 1.2e18, max_steps = 2**62) has hitting times near
    2**62: its sums pass 2**64 and its sums of squares 2**128."""
    if case == "sft-paper":
        tables = tables_of(sft(PAPER))
    elif case == "censored":
        tables = tables_of(sft(PAPER), max_steps=5 * 10**14 + 12345)
    else:
        tables = tables_of(sft(path_star(3, 20, 5)), max_steps=2**62)
    seed, n = 2**64 - 3, 400
    replayed = [replay(tables, seed, r)[0] for r in range(n)]
    result = leap.run(tables, rollouts=n, seed=seed, backend=backend, threads=2)
    hits = [t for t in replayed if t is not None]
    assert result.censored == replayed.count(None) and (case == "sft-paper") == (result.censored == 0)
    assert result.total == sum(hits)
    assert result.total_of_squares == sum(t * t for t in hits)
    assert result.steps == sum(hits) + result.censored * tables.max_steps
    bins = np.searchsorted(result.edges, hits, side="right") - 1
    assert np.array_equal(result.counts, np.bincount(bins, minlength=len(result.counts)))
    if case == "deep":
        assert result.total > 2**64 and result.total_of_squares > 2**128


def test_the_mean_number_of_draws_is_the_tables_expected_draws():
    tables = tables_of(sft(PAPER))
    draws = np.array([replay(tables, 9, r)[1] for r in range(3000)])
    stderr = draws.std(ddof=1) / math.sqrt(len(draws))
    assert abs(z_score(draws.mean(), tables.expected_draws, stderr)) < Z_LIMIT
    assert 40 < tables.expected_draws < 1 + math.log2(leap.mean(tables))


@pytest.mark.parametrize("policy,target", [(sft(PAPER), "t1"), (pretrained(path_star(3, 2, 2)), "u(2,1,l)")])
def test_backends_threads_and_rollout_ranges_agree_bit_for_bit(policy, target):
    tables = tables_of(policy, target)
    runs = [leap.run(tables, rollouts=30_000, seed=77, backend=b, threads=t)
            for b in ("numba", "cython") for t in (1, 2)]
    assert runs[0].hits == 30_000
    for other in runs[1:]:
        assert same_result(runs[0], other)
    parts = [leap.run(tables, rollouts=n, seed=77, first_rollout=first, backend=b, threads=t)
             for first, n, b, t in ((0, 12_345, "cython", 2), (12_345, 17_655, "numba", 1))]
    assert same_result(parts[0] + parts[1], runs[0])
    assert not same_result(leap.run(tables, rollouts=30_000, seed=78, threads=2), runs[0])


def test_progress_is_reported_after_each_chunk():
    tables = tables_of(sft(PAPER))
    calls = []
    result = leap.run(tables, rollouts=300_000, seed=1, threads=2, progress=lambda *a: calls.append(a))
    assert calls[-1] == (300_000, result.steps)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})


def test_memory_does_not_grow_with_rollouts():
    tables = tables_of(sft(PAPER))
    leap.run(tables, rollouts=10, threads=2)

    def peak(rollouts):
        tracemalloc.start()
        leap.run(tables, rollouts=rollouts, seed=1, threads=2)
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    assert peak(500_000) < peak(1_000) + 256 * 1024


def test_the_start_on_the_target_is_a_hit_at_time_zero():
    tables = tables_of(pretrained(path_star(2, 1, 1)), "f", max_steps=10)
    for backend in ("numba", "cython"):
        result = leap.run(tables, rollouts=100, backend=backend, threads=1)
        assert (result.hits, result.total, result.counts[0]) == (100, 0, 100)
    assert leap.cdf(tables, 0) == 1.0 and leap.truncated_mean(tables, 10) == 0.0


# ------------------------------------------------------------------------ tables and their edges


def test_bin_edges_follow_the_law():
    sft_tables = tables_of(sft(PAPER))
    log = leap.suggest_edges(sft_tables, sft_tables.max_steps)
    assert log[0] == 0 and log[1] == 1 and log[-1] == sft_tables.max_steps + 1
    ratios = log[2000:-1] / log[1999:-2]
    assert np.allclose(ratios, ratios[0], rtol=1e-3)  # log-spaced where T spans decades
    result = leap.run(sft_tables, rollouts=1000, threads=1)
    # hist's Variable axis holds float64 edges: exact below 2**53, rounded above
    assert result.bin_width is None and np.allclose(result.to_hist().axes[0].edges, log, rtol=1e-15, atol=0)
    rlvr_tables = tables_of(rlvr(PAPER))  # T from 31 to about 9 E[T]: under three decades
    regular = leap.suggest_edges(rlvr_tables, rlvr_tables.max_steps)
    assert np.all(np.diff(regular) == regular[1]) and regular[-1] > rlvr_tables.max_steps


def test_the_memory_estimate_bounds_the_tables_and_refuses_before_building():
    lumped = lumped_of(sft(PAPER))
    tables = leap.build_tables(lumped, 2 * 10**16)
    assert tables.memory_bytes <= leap.estimated_bytes(lumped.n_transient, 2 * 10**16)
    with pytest.raises(SizeError, match=r"needs about .* MiB of memory, more than"):
        leap.build_tables(lumped, 2 * 10**16, max_bytes=tables.memory_bytes // 2)
    big = lumped_of(parametric(path_star(60, 120, 2), a=0.7, b=0.6, c=0.8, d=0.3))
    assert big.n_transient == 8 * 120 + 1
    with pytest.raises(SizeError, match="961 lumped blocks"):
        leap.build_tables(big, 2**62, max_bytes=2**30)


@pytest.mark.parametrize("call,words", [
    (lambda lumped, tables: leap.build_tables(lumped, 0), "max_steps"),
    (lambda lumped, tables: leap.build_tables(lumped, 2**62 + 1), "max_steps"),
    (lambda lumped, tables: leap.build_tables(lumped, 100, max_bytes=0), "max_bytes"),
    (lambda lumped, tables: leap.build_tables(tables, 100), "lumped"),
    (lambda lumped, tables: leap.run(tables, rollouts=0), "rollouts"),
    (lambda lumped, tables: leap.run(tables, rollouts=10, seed=-1), "seed"),
    (lambda lumped, tables: leap.run(tables, rollouts=10, backend="fortran"), "backend"),
    (lambda lumped, tables: leap.run(tables, rollouts=10, threads=0), "threads"),
    (lambda lumped, tables: leap.run(tables, rollouts=10, edges=[1, 10**9]), "edges"),
    (lambda lumped, tables: leap.run(tables, rollouts=10, edges=[0, 10]), "edges"),
    (lambda lumped, tables: leap.run(tables, rollouts=10, edges=[0, 5, 5, 10**9]), "edges"),
    (lambda lumped, tables: leap.run(tables, rollouts=10, edges=[0.0, 1e9]), "edges"),
    (lambda lumped, tables: leap.run(lumped, rollouts=10), "tables"),
    (lambda lumped, tables: leap.cdf(lumped, -1), "t"),
    (lambda lumped, tables: leap.cdf(lumped, 2**62 + 1), "t"),
    (lambda lumped, tables: leap.quantile(lumped, 0.0), "q"),
    (lambda lumped, tables: leap.quantile(tables, [0.5, 1.5]), "q"),
    (lambda lumped, tables: leap.suggest_edges(tables, 0), "max_steps"),
])
def test_bad_parameters_are_refused_by_name(call, words):
    lumped = lumped_of(pretrained(path_star(3, 2, 2)))
    tables = leap.build_tables(lumped, 10_000)
    with pytest.raises(InputError, match=rf"^{words} "):
        call(lumped, tables)
