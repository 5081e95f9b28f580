"""``edgewalk run`` (the main job and single runs) and ``edgewalk exact``."""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from .. import checks, engine, exact, kernels, planning
from ..engine import RunPlan
from ..errors import InputError
from ..graph import Graph, path_star
from ..io import check_writable, read_training, write
from ..policy import NAMED, Policy, from_table, named, pretrained
from ..result import HittingTimes
from .common import add_graph_options, build_graph, dumps, progress_bar

MAIN_JOB_POLICIES = ("pretrained", "sft", "rlvr")
# In the main job SFT runs on the deepest graph whose estimate stays under this (SFT's hitting
# time grows about 7x per unit of depth at L = 5; at K = 15 it is about 4e14 steps).
MAIN_JOB_SECONDS_PER_RUN = 30.0


def add_commands(commands) -> None:
    run = commands.add_parser(
        "run", help="simulate rollouts and write hitting-time histograms to HDF5",
        description="Simulate rollouts from s0 -> f until the target is entered, write the "
        "histograms and exact moments to HDF5 and print a summary. With no --policy, runs the "
        "main job: pretrained, SFT and RLVR (SFT on a depth small enough to finish).",
    )
    add_graph_options(run)
    run.add_argument("--policy", choices=sorted(NAMED), default=None,
                     help="policy to simulate (default: the main job's three)")
    run.add_argument("--policy-file", default=None, metavar="PATH",
                     help="simulate the policy in a training file of `edgewalk train` (its graph replaces "
                     "-W/-K/-L/--depths), or a table pi(next | state) saved with numpy.save as an "
                     "n_states x n_states array (.npy) on the graph given by -W/-K/-L/--depths; rows must "
                     "sum to 1 with no mass on invalid moves")
    run.add_argument("--rollouts", "-N", type=int, default=100_000, help="rollouts per policy N >= 1 (default 100000)")
    run.add_argument("--seed", type=int, default=0, help="seed in [0, 2**64 - 1] (default 0)")
    run.add_argument("--max-steps", type=int, default=None,
                     help="censor rollouts after this many transitions (default: 50x the exact mean, at least 1000)")
    run.add_argument("--bins", type=int, default=None, help="histogram bins (default min(max_steps + 1, 4096))")
    run.add_argument("--search", choices=tuple(kernels.SEARCH_MODES), default="none",
                     help="no-revisit search wrapper (docs/model.md section 6): mask renormalises over "
                     "unvisited moves, reject redraws and counts every policy draw (default none)")
    run.add_argument("--backend", choices=kernels.BACKENDS, default="numba", help="simulation kernel (default numba)")
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
        "exact", help="exact expected hitting time (GTH state reduction on the edge-state chain)",
        description="Expected hitting time of a named policy from s0 -> f, solved exactly on the "
        "edge-state chain by state reduction without subtractions (accurate to near machine "
        "precision even at 1e14). Reaches depths no simulation can (SFT at K = 15).",
    )
    add_graph_options(exact_cmd)
    exact_cmd.add_argument("--policy", choices=sorted(NAMED), default="pretrained", help="policy (default pretrained)")
    exact_cmd.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    exact_cmd.set_defaults(handler=_exact)


def _policy_file(path: str, graph: Graph):
    """The policy of a .npy table or a training file; for a transformer's training file, its
    tabulated window-chain policy if the chain fits, else the model itself (sampled in JAX)."""
    if path.endswith(".npy"):
        try:
            table = np.load(path)
        except (OSError, ValueError) as error:
            raise InputError(f"--policy-file {path}: not a readable .npy array ({error})") from None
        try:
            return from_table(graph, table, name="table")
        except InputError as error:
            raise InputError(f"--policy-file {path}: {error}") from None
    trained = read_training(path)
    if not trained.model:
        return trained.policy
    try:
        from ..transformer import from_training
    except ImportError as error:
        raise InputError(f"--policy-file {path}: a transformer's training file; {error}") from None
    model = from_training(trained, name=f"transformer-{trained.method}")
    chain = model.chain_if_it_fits()
    return model if chain is None else model.tabulate(chain)


def _plans(args: argparse.Namespace) -> list[RunPlan]:
    """The plans of the runs the arguments ask for: every check and cost estimate before any
    simulation."""
    graph = build_graph(args)
    options = dict(rollouts=args.rollouts, seed=args.seed, max_steps=args.max_steps, bins=args.bins,
                   backend=args.backend, threads=args.threads, search=args.search)
    if args.policy_file is not None:
        if args.policy is not None:
            raise InputError("--policy-file and --policy: give one of them")
        policy = _policy_file(args.policy_file, graph)
        if not isinstance(policy, Policy):  # a whole-trajectory transformer: no plan, see _run_model
            return [policy]
        return [planning.plan(policy, args.target, force=args.force, **options)]
    if args.policy is not None:
        return [planning.plan(named(graph, args.policy), args.target, force=args.force, **options)]
    plans = {name: planning.plan(named(graph, name), args.target, force=args.force, **options)
             for name in MAIN_JOB_POLICIES if name != "sft"}
    if args.depths is not None:
        plans["sft"] = planning.plan(named(graph, "sft"), args.target, force=args.force, **options)
    else:  # SFT on the deepest symmetric graph that finishes in time
        for depth in range(args.depth, 0, -1):
            plans["sft"] = planning.plan(named(path_star(args.branches, depth, args.lanes), "sft"),
                                         args.target, force=True, **options)
            if plans["sft"].estimated_seconds <= MAIN_JOB_SECONDS_PER_RUN:
                break
    return [plans[name] for name in MAIN_JOB_POLICIES]


def run_name(policy: Policy, search: str) -> str:
    graph = policy.graph.describe()
    window = ""
    if "window" in graph:
        window, graph = f"_window{graph['window']}", graph["graph"]
    shape = (f"W{graph['W']}_K{graph['K']}_L{graph['L']}" if "W" in graph
             else "depths" + "-".join(map(str, graph["depths"]))) + window
    wrapper = "" if search == "none" else f"+search-{search}"
    return f"{policy.name}{wrapper}_{shape}"


def summary(result: HittingTimes) -> dict[str, object]:
    p = result.parameters
    return {
        "policy": p["policy"]["name"], "graph": p["graph"], "target": p["target"], "search": p["search"],
        "mean": result.mean, "stderr": result.stderr, "exact_mean": p["exact_mean"],
        "z": checks.z_score(result.mean, p["exact_mean"], result.stderr),
        "mean_draws": result.mean_draws, "stderr_draws": result.stderr_draws,
        "rollouts": result.rollouts, "hits": result.hits, "censored": result.censored,
        "max_steps": p["max_steps"], "steps": result.steps, "seconds": result.seconds,
        "steps_per_second": result.steps_per_second, "compile_seconds": result.compile_seconds,
        "backend": p["backend"], "threads": p["threads"], "seed": p["seed"],
    }


def _run(args: argparse.Namespace) -> int:
    plans = _plans(args)
    check_writable(args.out)
    results: dict[str, HittingTimes] = {}
    for plan in plans:
        if not isinstance(plan, RunPlan):
            results.update(_run_model(plan, args))
            continue
        name = run_name(plan.policy, plan.search)
        bar, update = progress_bar(plan.rollouts, name, args.progress)
        with bar:
            results[name] = engine.execute(plan, update)
    write(args.out, results)

    summaries = [{"run": name, **summary(r)} for name, r in results.items()]
    if args.json:
        print(dumps(summaries[0] if len(summaries) == 1 else {"runs": summaries}))
        return 0
    print(f"{'run':<32} {'mean':>12} {'stderr':>9} {'exact':>12} {'z':>6} {'draws':>12} {'censored':>8} {'steps/s':>9}")
    for s in summaries:
        print(f"{s['run']:<32} {s['mean']:>12.6g} {s['stderr']:>9.3g} {s['exact_mean']:>12.6g} "
              f"{s['z']:>6.2f} {s['mean_draws']:>12.6g} {s['censored']:>8d} {s['steps_per_second']:>9.3g}")
    print(f"{len(results)} run(s) of {args.rollouts} rollouts, seed {args.seed}, "
          f"{summaries[0]['backend']} on {summaries[0]['threads']} thread(s), written to {args.out}")
    return 0


def _run_model(model, args: argparse.Namespace) -> dict[str, HittingTimes]:
    """Rollouts of a whole-trajectory transformer, sampled in JAX (no exact mean exists).
    ``max_steps`` defaults to 50 times its last recorded hitting time (at least 1000)."""
    if args.search != "none":
        raise InputError("--search: the wrapper runs tables; a transformer's file runs without it")
    graph = model.graph
    target = planning.resolve_target(pretrained(graph), args.target)
    rollouts = checks.whole("--rollouts", args.rollouts, 1)
    seed = checks.seed("--seed", args.seed)
    default = max(1000, 50 * math.ceil(model.recorded_hitting_time))
    max_steps = checks.whole("--max-steps", default if args.max_steps is None else args.max_steps, 1)
    began = time.perf_counter()
    samples = model.sample(rollouts, seed=seed, horizon=max_steps, targets=[target])
    seconds = time.perf_counter() - began
    parameters = {"graph": graph.describe(), "policy": model.describe(), "target": graph.node_names[target],
                  "rollouts": rollouts, "first_rollout": 0, "seed": seed, "max_steps": max_steps,
                  "backend": "jax", "threads": 0, "search": "none", "exact_mean": math.nan}
    result = samples.hitting_times(parameters, args.bins, seconds)
    graph_name = graph.describe()
    shape = (f"W{graph_name['W']}_K{graph_name['K']}_L{graph_name['L']}" if "W" in graph_name
             else "depths" + "-".join(map(str, graph_name["depths"])))
    return {f"{model.name}_{shape}": result}


def _exact(args: argparse.Namespace) -> int:
    policy = named(build_graph(args), args.policy)
    target = planning.resolve_target(policy, args.target)
    value = exact.expected_hitting_time(policy, target)
    if args.json:
        print(dumps({"policy": policy.name, "graph": policy.graph.describe(),
                     "target": policy.graph.node_names[target], "exact_mean": value}))
    else:
        print(f"{policy.name} on {policy.graph.describe()}, target {policy.graph.node_names[target]}: "
              f"expected hitting time {value:.10g}")
    return 0
