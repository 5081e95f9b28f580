"""The GTH-LU exact solver (edgewalk._gth): cost of the symbolic build, the numeric factorisation
and the solves on a large path-star (W = K = 100, L = 10, about 220,000 states), an RLVR training
iteration at paper scale (exact.ExactSolver) against a SuperLU solve measured in the same run, and how
fill grows with the graph (path-star and a grid-like chain).

Run with ``pytest bench/test_exact_solver.py``; timings go into ``benchmark.extra_info`` and the
end-of-run summary. Only ratios measured in the same run are asserted (plus correctness). For the
hand-run tables: ``python bench/test_exact_solver.py [--grid-max M]``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import pytest

import scipy.sparse as sp
import scipy.sparse.linalg as spla

from edgewalk import exact, graph as graphs, policy as policies
from edgewalk._gth import Pattern, elimination_order, estimated_bytes

LARGE = (100, 100, 10)  # W, K, L
PAPER = (15, 15, 5)
Report = Callable[[str], None]


# --------------------------------------------------------------------------- measuring helpers


def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def _vm(field: str) -> int:
    """A /proc/self/status figure in bytes (0 where unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak_rss() -> int:
    """Hand freed heap pages back to the system (glibc malloc_trim), then reset the peak-RSS
    counter (Linux: 5 > /proc/self/clear_refs); returns the current RSS. Numba allocates outside
    tracemalloc's view, so the peak resident set is the memory figure."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _vm("VmRSS")


def peak_rss() -> int:
    return _vm("VmHWM")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def warm() -> None:
    """Compile (or load) every kernel on a two-state chain, outside any timing."""
    indptr, indices = np.array([0, 1, 2]), np.array([1, 0], np.int32)
    for undirected in (True, False):
        order = elimination_order(indptr, indices, 0, undirected)
    estimated_bytes(indptr, indices, order)
    f = Pattern.build(indptr, indices, order).factorise(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    f.solve(np.ones(2))
    f.solve_transposed(np.ones(2))


def best_of(fn, rounds: int) -> float:
    return min(timed(fn)[1] for _ in range(rounds))


# --------------------------------------------------------------------------- systems


def chain_system(pol: policies.Policy, target: int):
    """Q (CSR, zeros eliminated), r and the start's local index, as exact.py builds them."""
    Q, r, transient = exact._transient_matrix(pol, target)
    Q = Q.tocsr()
    first = int(np.flatnonzero(transient == exact.START_STATE)[0])
    return Q, r, first


def superlu_rlvr_gradient(g: graphs.Graph, p: np.ndarray, beta: float = 1.0) -> tuple[np.ndarray, float]:
    """The baseline: the same exact RLVR gradient with scipy's SuperLU on I - Q (what training
    used before GTH-LU, here rebuilding Q on every call as a one-shot solve does; inaccurate
    where hitting times reach 1e14)."""
    rows, starts = g.entry_state, g.row_start[:-1]
    gradient = np.zeros(g.n_transitions)
    times = []
    for target in g.leaves:
        Q, _, transient = exact._transient_matrix(policies.Policy(g, p), target)
        n = len(transient)
        lu = spla.splu(sp.csc_matrix(sp.identity(n) - Q), permc_spec="COLAMD")
        h, d = np.zeros(g.n_states), np.zeros(g.n_states)
        h[transient] = lu.solve(np.ones(n))
        e = (transient == exact.START_STATE).astype(float)
        d[transient] = lu.solve(e, trans="T")
        q = -beta * (1.0 + h[g.next_state])
        v = np.add.reduceat(p * q, starts)
        gradient += d[rows] * p * (q - v[rows])
        times.append(h[exact.START_STATE])
    return gradient / len(g.leaves), float(np.mean(times))


def grid_chain(m: int):
    """The edge-state chain of the m x m grid graph: states are directed edges u -> v between
    4-neighbours, the next states of u -> v are all v -> w (U-turn included), uniform. Target
    corner (m-1, m-1) absorbs; start state (0,0) -> (1,0). Returns CSR (indptr, indices, data),
    absorb and the start's index."""
    def node(x, y):
        return x * m + y
    edges = []
    for x in range(m):
        for y in range(m):
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                if 0 <= x + dx < m and 0 <= y + dy < m:
                    edges.append((node(x, y), node(x + dx, y + dy)))
    edges = np.array(edges, np.int64)
    target = node(m - 1, m - 1)
    transient = np.flatnonzero(edges[:, 1] != target)
    local = np.full(len(edges), -1, np.int64)
    local[transient] = np.arange(len(transient))
    by_tail = np.argsort(edges[:, 0], kind="stable")
    tail_start = np.searchsorted(edges[by_tail, 0], np.arange(m * m + 1))
    indptr, indices, data = [0], [], []
    absorb = np.zeros(len(transient))
    for i, e in enumerate(transient):
        v = edges[e, 1]
        nxt = by_tail[tail_start[v]:tail_start[v + 1]]
        for f in nxt:
            if local[f] >= 0:
                indices.append(local[f])
                data.append(1.0 / len(nxt))
            else:
                absorb[i] += 1.0 / len(nxt)
        indptr.append(len(indices))
    start = int(local[np.flatnonzero((edges[:, 0] == node(0, 0)) & (edges[:, 1] == node(1, 0)))[0]])
    return (np.array(indptr, np.int64), np.array(indices, np.int32), np.array(data), absorb, start)


# --------------------------------------------------------------------------- 1. large path-star


@pytest.fixture(scope="module")
def large_graph() -> graphs.Graph:
    return graphs.path_star(*LARGE)


LARGE_EXPECTED = {
    "pretrained": (2 * LARGE[0] - 1) * (1 + LARGE[1] + LARGE[1] / LARGE[2]) * (1 + LARGE[1] * (LARGE[2] + 1)),
    "rlvr": (2 * LARGE[1] + 1) * (2 * LARGE[0] - 1),
}


def measure_large(g: graphs.Graph, name: str) -> dict:
    pol = policies.named(g, name)
    (Q, r, first), setup = timed(lambda: chain_system(pol, g.leaf(1)))
    warm()
    base = reset_peak_rss()
    order, t_order = timed(lambda: elimination_order(Q.indptr, Q.indices, first))
    pattern, t_build = timed(lambda: Pattern.build(Q.indptr, Q.indices, order))
    factors, t_fact_first = timed(lambda: pattern.factorise(Q.data, r))
    h, t_solve = timed(lambda: factors.solve(np.ones(pattern.n)))
    e = np.zeros(pattern.n)
    e[first] = 1.0
    d, t_solve_t = timed(lambda: factors.solve_transposed(e))
    peak = peak_rss() - base
    t_fact = best_of(lambda: pattern.factorise(Q.data, r), 2)
    return dict(policy=name, n=pattern.n, nnz_q=pattern.nnz_q, nnz_factors=pattern.nnz_factors,
                fill=pattern.nnz_factors / pattern.nnz_q, flops=pattern.flops,
                setup_s=setup, order_s=t_order, build_s=t_build, factorise_first_s=t_fact_first,
                factorise_s=t_fact, solve_s=t_solve, solve_transposed_s=t_solve_t,
                total_s=t_order + t_build + t_fact_first + t_solve + t_solve_t,
                memory_bytes=pattern.memory_bytes(), peak_rss_bytes=peak,
                process_peak_rss_bytes=peak_rss(), rss_before_bytes=base,
                hitting_time=float(h[first]), visits_sum=float(d.sum()), load=load())


def measure_large_fresh(name: str) -> dict:
    """measure_large in a fresh interpreter, so that the peak-RSS figure is this policy's alone
    (a process reuses the pages it freed, hiding a second factorisation's memory)."""
    out = subprocess.run([sys.executable, __file__, "--large-one", name], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def _large_line(m: dict) -> str:
    return (f"GTH-LU W,K,L={LARGE} {m['policy']:>10}: n {m['n']}, fill {m['fill']:.2f} "
            f"(L+U {m['nnz_factors']:.3g}), order {m['order_s']:.3f} s, build {m['build_s']:.3f} s, "
            f"factorise {m['factorise_first_s']:.3f} s (again {m['factorise_s']:.3f} s), solve {m['solve_s']:.3f} s, "
            f"solve_T {m['solve_transposed_s']:.3f} s, total {m['total_s']:.2f} s, "
            f"memory_bytes {m['memory_bytes'] / 2**20:.0f} MiB, peak RSS +"
            f"{m['peak_rss_bytes'] / 2**20:.0f} MiB over {m['rss_before_bytes'] / 2**20:.0f} MiB, "
            f"E[T] {m['hitting_time']:.6g} ({m['load']})")


@pytest.mark.parametrize("name", ["pretrained", "sft", "rlvr"])
def test_large_path_star(benchmark, large_graph, name: str, report: Report) -> None:
    m = measure_large_fresh(name)
    benchmark.extra_info.update(m)
    pol = policies.named(large_graph, name)
    Q, r, first = chain_system(pol, large_graph.leaf(1))
    pattern = Pattern.build(Q.indptr, Q.indices, elimination_order(Q.indptr, Q.indices, first))
    benchmark.pedantic(lambda: pattern.factorise(Q.data, r), rounds=3, iterations=1,
                       warmup_rounds=0)
    report(_large_line(m))
    print(_large_line(m))
    if name in LARGE_EXPECTED:
        assert m["hitting_time"] == pytest.approx(LARGE_EXPECTED[name], rel=1e-10)
    assert m["visits_sum"] == pytest.approx(m["hitting_time"], rel=1e-9)  # steps = visits


# --------------------------------------------------------------------------- 2. RLVR iteration


def measure_rlvr_iteration(rounds: int = 15) -> dict:
    g = graphs.path_star(*PAPER)
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 1.0, g.n_transitions)  # a generic point of training
    points = {"pretrained": policies.pretrained(g).probabilities,
              "random-logits": policies.softmax_rows(g, logits)}
    solver, t_patterns = timed(lambda: exact.ExactSolver(g))
    out = {"patterns_s": t_patterns, "n_per_target": len(solver.systems[0].states),
           "nnz_factors_per_target": solver.systems[0].pattern.nnz_factors,
           "memory_bytes_15_targets": solver.memory_bytes}
    for label, p in points.items():
        solver.rlvr_gradient(p)  # warm
        ref_grad, ref_time = superlu_rlvr_gradient(g, p)
        grad, mean_time = solver.rlvr_gradient(p)
        scale = np.abs(ref_grad).max()
        out[f"{label}_max_gradient_difference"] = float(np.abs(grad - ref_grad).max() / scale)
        out[f"{label}_mean_time_relative_difference"] = mean_time / ref_time - 1
        # interleave the measurements so that load hits them alike
        t_solves, t_grad, t_lu = [], [], []
        for _ in range(rounds):
            t_solves.append(timed(lambda: [s.solve(p, visits=True) for s in solver.systems])[1])
            t_grad.append(timed(lambda: solver.rlvr_gradient(p))[1])
            t_lu.append(timed(lambda: superlu_rlvr_gradient(g, p))[1])
        out[f"{label}_gth_15_solves_s"] = min(t_solves)
        out[f"{label}_gth_gradient_s"] = min(t_grad)
        out[f"{label}_superlu_gradient_s"] = min(t_lu)
        out[f"{label}_ratio_solves_to_superlu"] = min(t_solves) / min(t_lu)
        out[f"{label}_ratio_gradient_to_superlu"] = min(t_grad) / min(t_lu)
    out["load"] = load()
    return out


def test_rlvr_iteration_against_superlu(benchmark, report: Report) -> None:
    m = measure_rlvr_iteration()
    benchmark.extra_info.update(m)
    g = graphs.path_star(*PAPER)
    solver = exact.ExactSolver(g)
    p = policies.pretrained(g).probabilities
    benchmark.pedantic(lambda: solver.rlvr_gradient(p), rounds=10, iterations=1, warmup_rounds=1)
    for label in ("pretrained", "random-logits"):
        line = (f"RLVR iteration W,K,L={PAPER}, {label}: 15 x (factorise + solve + solve_T) "
                f"{1e3 * m[f'{label}_gth_15_solves_s']:.2f} ms, whole GTH gradient "
                f"{1e3 * m[f'{label}_gth_gradient_s']:.2f} ms, SuperLU rlvr_gradient "
                f"{1e3 * m[f'{label}_superlu_gradient_s']:.2f} ms: ratio "
                f"{m[f'{label}_ratio_solves_to_superlu']:.3f} (solves) / "
                f"{m[f'{label}_ratio_gradient_to_superlu']:.3f} (gradient) ({m['load']})")
        report(line)
        print(line)
        assert m[f"{label}_max_gradient_difference"] < 1e-8
        # the goal: no slower than SuperLU, both measured here
        assert m[f"{label}_ratio_gradient_to_superlu"] < 1.0


# --------------------------------------------------------------------------- 3. fill growth


def measure_path_star(W: int, K: int, L: int, name: str = "pretrained",
                      undirected: bool = True) -> dict:
    g = graphs.path_star(W, K, L)
    Q, r, first = chain_system(policies.named(g, name), g.leaf(1))
    order = elimination_order(Q.indptr, Q.indices, first, undirected)
    pattern, t_build = timed(lambda: Pattern.build(Q.indptr, Q.indices, order))
    t_fact = best_of(lambda: pattern.factorise(Q.data, r), 3)
    f = pattern.factorise(Q.data, r)
    t_solve = best_of(lambda: f.solve(np.ones(pattern.n)), 3)
    row_nnz = np.diff(pattern.l_ptr) + np.diff(pattern.u_ptr)
    return dict(W=W, K=K, L=L, policy=name, n=pattern.n, nnz_q=pattern.nnz_q,
                nnz_factors=pattern.nnz_factors, fill=pattern.nnz_factors / pattern.nnz_q,
                max_row=int(row_nnz.max()), flops=pattern.flops, build_s=t_build,
                factorise_s=t_fact, solve_s=t_solve)


def measure_grid(m: int) -> dict:
    indptr, indices, data, absorb, start = grid_chain(m)
    order = elimination_order(indptr, indices, start)
    pattern, t_build = timed(lambda: Pattern.build(indptr, indices, order))
    t_fact = best_of(lambda: pattern.factorise(data, absorb), 3)
    row_nnz = np.diff(pattern.l_ptr) + np.diff(pattern.u_ptr)
    return dict(m=m, n=pattern.n, nnz_q=pattern.nnz_q, nnz_factors=pattern.nnz_factors,
                fill=pattern.nnz_factors / pattern.nnz_q, max_row=int(row_nnz.max()),
                flops=pattern.flops, build_s=t_build, factorise_s=t_fact)


FILL_SIZES = [(15, 15, 5), (30, 15, 5), (15, 30, 5), (15, 15, 10), (60, 15, 5), (15, 60, 5),
              (15, 15, 20)]


def test_fill_growth(benchmark, report: Report) -> None:
    rows = [measure_path_star(*size) for size in FILL_SIZES]
    grids = [measure_grid(m) for m in (10, 20, 40)]
    benchmark.extra_info.update(path_star=rows, grid=grids, load=load())
    benchmark.pedantic(lambda: measure_path_star(15, 15, 5), rounds=1, iterations=1)
    for row in rows:
        report("fill W,K,L={W},{K},{L}: n {n}, nnz(Q) {nnz_q}, L+U {nnz_factors}, "
               "fill {fill:.2f}, factorise {factorise_s:.4f} s".format(**row))
    for row in grids:
        report("fill grid {m}x{m}: n {n}, nnz(Q) {nnz_q}, L+U {nnz_factors}, fill {fill:.2f}, "
               "max row {max_row}, factorise {factorise_s:.4f} s".format(**row))
    # on the path-star the fill ratio stays bounded as W, K, L grow (local fill)
    assert max(r["fill"] for r in rows) < 3 * rows[0]["fill"]


# --------------------------------------------------------------------------- 4. memory estimate


def test_estimated_bytes_matches_pattern(large_graph, report: Report) -> None:
    Q, r, first = chain_system(policies.pretrained(large_graph), large_graph.leaf(1))
    order = elimination_order(Q.indptr, Q.indices, first)
    estimate, t_estimate = timed(lambda: estimated_bytes(Q.indptr, Q.indices, order))
    pattern, t_build = timed(lambda: Pattern.build(Q.indptr, Q.indices, order))
    report(f"estimated_bytes W,K,L={LARGE} pretrained: {estimate / 2**20:.1f} MiB in "
           f"{t_estimate:.3f} s (Pattern.build {t_build:.3f} s)")
    assert estimate == pattern.memory_bytes()


# --------------------------------------------------------------------------- by hand


def _table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    cells = [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--grid-max", type=int, default=80)
    parser.add_argument("--large-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_one:
        print(json.dumps(measure_large(graphs.path_star(*LARGE), args.large_one)))
        return
    print(load())
    warm()
    if not args.skip_large:
        large = [measure_large_fresh(name) for name in ("pretrained", "sft", "rlvr")]
        for m in large:
            m["memory_MiB"] = m["memory_bytes"] / 2**20
            m["peak_rss_MiB"] = m["peak_rss_bytes"] / 2**20
        print(f"\n1. path_star{LARGE}, target t1 ({load()})")
        print(_table(large, ["policy", "n", "nnz_q", "nnz_factors", "fill", "setup_s", "order_s",
                             "build_s", "factorise_first_s", "factorise_s", "solve_s",
                             "solve_transposed_s",
                             "total_s", "memory_MiB", "peak_rss_MiB", "hitting_time"]))
    m = measure_rlvr_iteration()
    print(f"\n2. RLVR iteration at {PAPER} (15 leaf targets; patterns built once in "
          f"{m['patterns_s']:.3f} s) ({m['load']})")
    for k, v in m.items():
        if k not in ("load",):
            print(f"   {k}: {v:.4g}" if isinstance(v, float) else f"   {k}: {v}")
    print(f"\n3a. fill growth on the path-star, pretrained (undirected reverse BFS) ({load()})")
    sizes = FILL_SIZES + [(100, 15, 5), (15, 100, 5), (15, 15, 40), (100, 100, 10)]
    print(_table([measure_path_star(*s) for s in sizes],
                 ["W", "K", "L", "n", "nnz_q", "nnz_factors", "fill", "max_row", "flops",
                  "build_s", "factorise_s", "solve_s"]))
    print(f"\n3b. order rule on the positive patterns of SFT and RLVR ({load()})")
    rows = []
    for s in [(15, 15, 5), (15, 60, 5), (60, 15, 5), (50, 50, 10)]:
        for name in ("sft", "rlvr"):
            for undirected in (True, False):
                r = measure_path_star(*s, name=name, undirected=undirected)
                r["order"] = "undirected" if undirected else "directed"
                rows.append(r)
    print(_table(rows, ["W", "K", "L", "policy", "order", "n", "nnz_q", "nnz_factors", "fill",
                        "max_row", "build_s", "factorise_s"]))
    print(f"\n3c. grid edge-state chain (m x m grid, uniform, target corner) ({load()})")
    sizes = [m for m in (10, 20, 40, 80, 120, 160) if m <= args.grid_max]
    print(_table([measure_grid(s) for s in sizes],
                 ["m", "n", "nnz_q", "nnz_factors", "fill", "max_row", "flops", "build_s",
                  "factorise_s"]))


if __name__ == "__main__":
    main()
