"""The ``edgewalk`` command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Sequence

from . import __version__, exact
from .engine import BACKENDS, SEARCH_MODES, CostError, plan, simulate
from .graph import Graph, heterogeneous, path_star
from .io import check_writable, write
from .policy import NAMED, Policy, named
from .result import HittingTimes

MAIN_JOB_POLICIES = ("pretrained", "sft", "rlvr")
# In the main job SFT runs on the deepest graph whose estimate stays under this (SFT's hitting
# time grows about 7x per unit of depth at L = 5; at K = 15 it is about 4e14 steps).
MAIN_JOB_SECONDS_PER_RUN = 30.0

DESCRIPTION = """\
Monte Carlo hitting times of edge-conditioned policies on the path-star graph of Wei & Kim,
"Provable Benefits of RLVR over SFT for Reasoning Models" (ICML 2026).

  edgewalk run                  the main job: pretrained, SFT and RLVR on the paper's graph
                                (W = K = 15, L = 5; SFT on the deepest graph that finishes in
                                about a minute), written to edgewalk-results.h5
  edgewalk run --policy rlvr --rollouts 1000000
                                one policy; prints mean, standard error, exact value, steps/s
  edgewalk exact -K 15 --policy sft
                                the exact expected hitting time (a sparse linear solve)
"""


def _add_graph_options(parser: argparse.ArgumentParser) -> None:
    graph = parser.add_argument_group("graph (MODEL.md section 1)")
    graph.add_argument("-W", "--branches", type=int, default=15, help="branches W >= 1 (default 15)")
    graph.add_argument("-K", "--depth", type=int, default=15, help="diamonds per branch K >= 1 (default 15)")
    graph.add_argument("-L", "--lanes", type=int, default=5, help="parallel edges per diamond L >= 1 (default 5)")
    graph.add_argument(
        "--depths", type=str, default=None, metavar="K1,K2,...",
        help="heterogeneous graph: comma-separated depth per branch (replaces -W and -K), e.g. 6,5,4,3,3",
    )
    parser.add_argument(
        "--target", default=None, metavar="NODE",
        help="node whose entry ends a rollout: t1..tW (leaves), f, or u(i,j,l|r) (default t1)",
    )


def _build_graph(args: argparse.Namespace) -> Graph:
    if args.depths is None:
        return path_star(args.branches, args.depth, args.lanes)
    try:
        depths = [int(k) for k in args.depths.split(",")]
    except ValueError:
        raise ValueError(f"--depths must be comma-separated whole numbers >= 1, got {args.depths!r}")
    return heterogeneous(depths, args.lanes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgewalk", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"edgewalk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="simulate rollouts and write hitting-time histograms to HDF5",
        description="Simulate rollouts from s0 -> f until the target is entered, write the "
        "histograms and exact moments to HDF5 and print a summary. With no --policy, runs the "
        "main job: pretrained, SFT and RLVR (SFT on a depth small enough to finish).",
    )
    _add_graph_options(run)
    run.add_argument("--policy", choices=sorted(NAMED), default=None,
                     help="policy to simulate (default: the main job's three)")
    run.add_argument("--rollouts", "-N", type=int, default=100_000, help="rollouts per policy N >= 1 (default 100000)")
    run.add_argument("--seed", type=int, default=0, help="seed in [0, 2**64 - 1] (default 0)")
    run.add_argument("--max-steps", type=int, default=None,
                     help="censor rollouts after this many transitions (default: 50x the exact mean, at least 1000)")
    run.add_argument("--bins", type=int, default=None, help="histogram bins (default min(max_steps + 1, 4096))")
    run.add_argument("--search", choices=tuple(SEARCH_MODES), default="none",
                     help="no-revisit search wrapper (MODEL.md section 6): mask renormalises over unvisited "
                     "moves, reject redraws and counts every policy draw (default none)")
    run.add_argument("--backend", choices=BACKENDS, default="numba", help="simulation kernel (default numba)")
    run.add_argument("--threads", type=int, default=None, help="threads (default: all cores this process may use)")
    run.add_argument("--out", default="edgewalk-results.h5", metavar="PATH", help="HDF5 output (default edgewalk-results.h5)")
    run.add_argument("--json", action="store_true",
                     help="print the summary as one JSON object on stdout (with several policies: "
                     "{\"runs\": [...]}); mean/stderr count steps, mean_draws/stderr_draws policy draws")
    run.add_argument("--force", action="store_true", help="run even if the cost estimate exceeds an hour")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    run.set_defaults(handler=_run)

    exact_cmd = commands.add_parser(
        "exact", help="exact expected hitting time by a sparse linear solve",
        description="Expected hitting time of a named policy from s0 -> f, solved exactly on the "
        "edge-state chain. Reaches depths no simulation can (SFT at K = 15).",
    )
    _add_graph_options(exact_cmd)
    exact_cmd.add_argument("--policy", choices=sorted(NAMED), default="pretrained", help="policy (default pretrained)")
    exact_cmd.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    exact_cmd.set_defaults(handler=_exact)
    return parser


def _main_job_policies(args: argparse.Namespace, graph: Graph) -> list[Policy]:
    if args.policy is not None:
        return [named(graph, args.policy)]
    policies = [named(graph, name) for name in MAIN_JOB_POLICIES]
    if args.depths is None:  # SFT on the deepest symmetric graph that finishes in time
        for depth in range(args.depth, 0, -1):
            candidate = named(path_star(args.branches, depth, args.lanes), "sft")
            cost = plan(candidate, args.target, args.rollouts, args.seed, args.max_steps,
                        args.backend, args.threads, args.bins, force=True, search=args.search)
            if cost.estimated_seconds <= MAIN_JOB_SECONDS_PER_RUN:
                break
        policies[1] = candidate
    return policies


def _run_name(policy: Policy, search: str) -> str:
    graph = policy.graph.describe()
    shape = (f"W{graph['W']}_K{graph['K']}_L{graph['L']}" if "W" in graph
             else "depths" + "-".join(map(str, graph["depths"])))
    wrapper = "" if search == "none" else f"+search-{search}"
    return f"{policy.name}{wrapper}_{shape}"


def _summary(result: HittingTimes) -> dict[str, object]:
    p = result.parameters
    z = (result.mean - p["exact_mean"]) / result.stderr if result.stderr > 0 else math.nan
    return {
        "policy": p["policy"]["name"], "graph": p["graph"], "target": p["target"], "search": p["search"],
        "mean": result.mean, "stderr": result.stderr, "exact_mean": p["exact_mean"], "z": z,
        "mean_draws": result.mean_draws, "stderr_draws": result.stderr_draws,
        "rollouts": result.rollouts, "hits": result.hits, "censored": result.censored,
        "max_steps": p["max_steps"], "steps": result.steps, "seconds": result.seconds,
        "steps_per_second": result.steps_per_second, "compile_seconds": result.compile_seconds,
        "backend": p["backend"], "threads": p["threads"], "seed": p["seed"],
    }


def _json(value: object) -> str:
    """Strict JSON: values that are undefined (nan, such as the exact mean under the search
    wrapper) become null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else str(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), allow_nan=False)


def _progress_bar(total: int, label: str, enabled: bool | None):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="rollout", unit_scale=True, disable=None if enabled is None else not enabled,
               file=sys.stderr, leave=False)

    def update(done: int, steps: int) -> None:
        bar.update(done - bar.n)
        if bar.format_dict["elapsed"] > 0:
            bar.set_postfix_str(f"{steps / bar.format_dict['elapsed']:.3g} steps/s", refresh=False)

    return bar, update


def _run(args: argparse.Namespace) -> int:
    graph = _build_graph(args)
    policies = _main_job_policies(args, graph)
    for policy in policies:  # every check and cost estimate before any simulation
        plan(policy, args.target, args.rollouts, args.seed, args.max_steps, args.backend,
             args.threads, args.bins, args.force, args.search)
    check_writable(args.out)

    results: dict[str, HittingTimes] = {}
    for policy in policies:
        name = _run_name(policy, args.search)
        bar, update = _progress_bar(args.rollouts, name, args.progress)
        with bar:
            results[name] = simulate(policy, args.target, args.rollouts, args.seed, args.max_steps,
                                     args.backend, args.threads, args.bins, args.force, update,
                                     args.search)
    write(args.out, results)

    summaries = [{"run": name, **_summary(r)} for name, r in results.items()]
    if args.json:
        print(_json(summaries[0] if len(summaries) == 1 else {"runs": summaries}))
        return 0
    print(f"{'run':<32} {'mean':>12} {'stderr':>9} {'exact':>12} {'z':>6} {'draws':>12} {'censored':>8} {'steps/s':>9}")
    for s in summaries:
        print(f"{s['run']:<32} {s['mean']:>12.6g} {s['stderr']:>9.3g} {s['exact_mean']:>12.6g} "
              f"{s['z']:>6.2f} {s['mean_draws']:>12.6g} {s['censored']:>8d} {s['steps_per_second']:>9.3g}")
    print(f"{len(results)} run(s) of {args.rollouts} rollouts, seed {args.seed}, "
          f"{summaries[0]['backend']} on {summaries[0]['threads']} thread(s), written to {args.out}")
    return 0


def _exact(args: argparse.Namespace) -> int:
    policy = named(_build_graph(args), args.policy)
    target = policy.graph.leaf(1) if args.target is None else policy.graph.node(args.target)
    value = exact.expected_hitting_time(policy, target)
    if args.json:
        print(_json({"policy": policy.name, "graph": policy.graph.describe(),
                          "target": policy.graph.node_names[target], "exact_mean": value}))
    else:
        print(f"{policy.name} on {policy.graph.describe()}, target {policy.graph.node_names[target]}: "
              f"expected hitting time {value:.10g}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except CostError as error:
        parser.exit(3, f"edgewalk: refused: {error}\n")
    except ValueError as error:
        parser.exit(2, f"edgewalk: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(130, "edgewalk: interrupted; no output was written\n")


if __name__ == "__main__":
    sys.exit(main())
