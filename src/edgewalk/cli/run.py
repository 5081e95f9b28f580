"""``edgewalk run`` (the main job and single runs) and ``edgewalk exact``."""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from .. import checks, kernels, memory, planning, statistics, targets
from ..errors import InputError
from ..graph import Graph, PathStar, in_words, path_star, short_name
from ..io import add_runs, check_not_an_input, check_runs_output, read_training
from ..policy import NAMED, Policy, from_table, named
from ..result import HittingTimes
from ..targets import TargetsPlan
from .common import (BIG_CHAIN, add_graph_options, build_graph, dumps, named_policy, progress_bar,
                     refuse_graph_options, stage)

MAIN_JOB_POLICIES = ("pretrained", "sft", "rlvr")
# If SFT is run step by step (--method step), the main job runs it on the deepest graph whose
# estimate stays under this (its hitting time grows about 7x per unit of depth at L = 5; at
# K = 15 it is about 4e14 steps); the leap method runs it on the paper's graph itself.
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
    run.add_argument("--method", choices=planning.METHODS, default="auto",
                     help="step walks every transition; leap draws each hitting time from its exact law "
                     "(binary lifting over the lumped chain: a rollout costs about log2 T draws); auto "
                     "leaps wherever it can (no search wrapper, a lumped chain of at most "
                     f"{planning.AUTO_LEAP_BLOCKS} blocks) (default auto)")
    run.add_argument("--backend", choices=kernels.BACKENDS, default="numba", help="simulation kernel (default numba)")
    run.add_argument("--threads", type=int, default=None, help="threads (default: all cores this process may use)")
    run.add_argument("--out", default="edgewalk-results.h5", metavar="PATH", help="HDF5 output (default edgewalk-results.h5)")
    run.add_argument("--json", action="store_true",
                     help="print the summary as one JSON object on stdout (with several policies: "
                     "{\"runs\": [...]}); mean/stderr count steps, mean_draws/stderr_draws policy draws")
    run.add_argument("--force", action="store_true", help="run even if the cost estimate exceeds an hour")
    run.add_argument("--overwrite", action="store_true",
                     help="replace runs of the same name in --out (other runs in it are always kept), or "
                     "replace --out if it is not a run file")
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
    exact_cmd.add_argument("--policy-file", default=None, metavar="PATH",
                           help="the policy of a training file of `edgewalk train` (its graph replaces the graph "
                           "options), or an n_states x n_states table saved with numpy.save (.npy), as in run")
    exact_cmd.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    exact_cmd.set_defaults(handler=_exact)


def _policy_file(path: str, graph: Graph, args: argparse.Namespace):
    """The policy of a .npy table (on ``graph``) or of a training file (on its own graph); for a
    transformer's training file, its tabulated window-chain policy if the chain fits, else the
    model itself (sampled in JAX)."""
    try:
        if path.endswith(".npy"):
            try:
                table = np.load(path, allow_pickle=False)
            except FileNotFoundError:
                raise InputError(f"{path}: no such file") from None
            except (OSError, ValueError, EOFError) as error:
                raise InputError(f"{path}: not a readable .npy array ({error})") from None
            return from_table(graph, table, name="table")
        trained = read_training(path)
    except InputError as error:
        raise type(error)(f"--policy-file: {error}") from None
    refuse_graph_options(args, f"--policy-file {path}", trained.policy.graph,
                         ", or give a .npy table for the graph they describe", described=graph)
    if not trained.model:
        return trained.policy
    try:
        from ..transformer import from_training
    except ImportError as error:
        raise InputError(f"--policy-file {path}: a transformer's training file; {error}") from None
    model = from_training(trained, name=f"transformer-{trained.method}")
    chain = model.chain_if_it_fits()
    return model if chain is None else model.tabulate(chain)


def _names(runs: list, search: str) -> list[str]:
    """The run names of policies or plans (a whole-trajectory transformer has no search)."""
    return [run_name(r.policy, r.search) if isinstance(r, TargetsPlan)
            else run_name(r, search if isinstance(r, Policy) else "none") for r in runs]


def _policies(args: argparse.Namespace, graph: Graph) -> list:
    """The policies the arguments ask for (a whole-trajectory transformer stands for itself)."""
    if args.policy_file is not None:
        if args.policy is not None:
            raise InputError("--policy-file and --policy: give one of them")
        return [_policy_file(args.policy_file, graph, args)]
    if args.policy is not None:
        return [named_policy(graph, "--policy", args.policy)]
    if not isinstance(graph, PathStar):
        raise InputError("--policy: the main job (pretrained, sft, rlvr) is defined on the path-star; on "
                         "another graph run --policy pretrained, or train a policy (edgewalk train) and run "
                         "it with --policy-file")
    return [named(graph, name) for name in MAIN_JOB_POLICIES]


def _plans(args: argparse.Namespace, policies: list) -> list:
    """The plans of the runs: every check and cost estimate before any simulation. The main job
    forces SFT (its cost is known to be large) and, by the step method, runs it on the deepest
    graph that finishes in its share of time."""
    options = dict(rollouts=args.rollouts, seed=args.seed, max_steps=args.max_steps, bins=args.bins,
                   backend=args.backend, threads=args.threads, search=args.search, method=args.method)
    main_job = args.policy_file is None and args.policy is None
    plans = [p if not isinstance(p, Policy) else  # a whole-trajectory transformer: see _run_model
             targets.plan(p, args.target, force=args.force or (main_job and p.name == "sft"), **options)
             for p in policies]
    if not main_job:
        return plans
    sft = MAIN_JOB_POLICIES.index("sft")
    graph = policies[sft].graph
    if plans[sft].estimated_seconds > MAIN_JOB_SECONDS_PER_RUN and "W" in graph.describe():
        W, K, L = (graph.describe()[k] for k in "WKL")
        for depth in range(K - 1, 0, -1):
            plans[sft] = targets.plan(named(path_star(W, depth, L), "sft"), args.target, force=True, **options)
            if plans[sft].estimated_seconds <= MAIN_JOB_SECONDS_PER_RUN:
                break
    return plans


def run_name(policy: Policy, search: str) -> str:
    wrapper = "" if search == "none" else f"+search-{search}"
    return f"{policy.name}{wrapper}_{short_name(policy.graph)}"


def summary(plan: TargetsPlan, result: HittingTimes, chosen: targets.Targets) -> dict[str, object]:
    """The run's summary: what --json prints (undefined numbers null, with a note saying why).
    ``plan`` is a whole-trajectory transformer where the run was sampled in JAX (nothing exact
    to compare with)."""
    p = result.parameters
    if isinstance(plan, TargetsPlan):
        comparison = targets.compare_with_exact(plan, result)
    else:
        comparison = planning.ExactComparison(
            "", math.nan, math.nan, math.nan, result.censored / result.rollouts, math.nan,
            "a whole-trajectory transformer has no exact law (sampled in JAX)")
    exact_mean = p["exact_mean"]
    notes = []
    if exact_mean == math.inf:
        notes.append("the target is not hit surely from the start: the exact mean is infinite")
    if comparison.note:
        notes.append(comparison.note)
    if (isinstance(plan, TargetsPlan) and result.rollouts and math.isnan(comparison.chi2_p)
            and comparison.reference != "all_equal"
            and targets.mixture_mass_below(plan) is not None):
        notes.append(f"no chi-square test: the exact law leaves these bins fewer than two cells of at least "
                     f"{statistics.EXPECTED_PER_CELL:g} expected rollouts")
    return {
        "policy": p["policy"]["name"], "graph": p["graph"], "target": p["target"],
        "targets": list(chosen.names), "search": p["search"],
        "method": p["method"], "lumped_blocks": p["lumped_blocks"],
        "mean": result.mean, "stderr": result.stderr,
        "exact_mean": exact_mean if math.isfinite(exact_mean) else math.nan,
        "z": comparison.z, "z_against": comparison.reference or None, "z_exact": comparison.exact,
        "chi2_p": comparison.chi2_p,
        "mean_draws": result.mean_draws, "stderr_draws": result.stderr_draws,
        "rollouts": result.rollouts, "hits": result.hits, "censored": result.censored,
        "censored_fraction": comparison.censored_fraction,
        "exact_censored_fraction": comparison.exact_censored_fraction,
        "max_steps": p["max_steps"], "bins": len(result.counts), "bin_width": result.bin_width,
        "steps": result.steps, "seconds": result.seconds,
        "steps_per_second": result.steps_per_second, "compile_seconds": result.compile_seconds,
        "backend": p["backend"], "threads": p["threads"], "seed": p["seed"],
        "notes": notes,
    }


def _bins_note(asked: int, result: HittingTimes) -> str:
    """Why a run has another number of bins than --bins asked: bins have whole widths and do not
    reach past max_steps."""
    return (f"--bins {asked:,} gave {len(result.counts):,} bins of whole width {result.bin_width:,} over "
            f"[0, max_steps = {result.parameters['max_steps']:,}]")


def _run(args: argparse.Namespace) -> int:
    check_not_an_input(args.out, {"--policy-file": args.policy_file, "--graph": args.graph})
    graph = build_graph(args)
    policies = _policies(args, graph)
    asked = _names(policies, args.search)
    check_runs_output(args.out, asked, overwrite=args.overwrite)
    with stage(f"solving exactly on {graph.n_states:,} states", graph.n_transitions >= BIG_CHAIN):
        plans = _plans(args, policies)
    names = _names(plans, args.search)
    if names != asked:  # the step method ran SFT on a shallower graph
        check_runs_output(args.out, names, overwrite=args.overwrite)
    results: dict[str, HittingTimes] = {}
    for name, plan in zip(names, plans):
        if not isinstance(plan, TargetsPlan):
            results[name] = _run_model(plan, args)
            continue
        bar, update = progress_bar(plan.rollouts, name, args.progress)
        with bar:
            results[name] = targets.execute(plan, update)
    add_runs(args.out, results, replace=args.overwrite)

    chosen = [plan.targets if isinstance(plan, TargetsPlan) else targets.resolve(plan.graph, args.target)
              for plan in plans]
    summaries = [{"run": name, **summary(plan, r, c)} for (name, r), plan, c in zip(results.items(), plans, chosen)]
    for s, r in zip(summaries, results.values()):
        if args.bins is not None and len(r.counts) != args.bins:
            s["notes"].append(_bins_note(args.bins, r))
    all_censored = [s["run"] for s in summaries if s["hits"] == 0]
    if args.json:
        print(dumps(summaries[0] if len(summaries) == 1 else {"runs": summaries}))
    else:
        print("\n".join(_table(summaries)))
        for s in summaries:
            for note in s["notes"]:
                print(f"note: {s['run']}: {note}")
        for described in dict.fromkeys(c.describe() for c in chosen):
            print(f"target: {described}")
        print(f"{len(results)} run(s) of {args.rollouts} rollouts, seed {args.seed}, "
              f"{summaries[0]['backend']} on {summaries[0]['threads']} thread(s), written to {args.out}")
    if all_censored:
        print(f"edgewalk: every rollout of {', '.join(all_censored)} was censored at max_steps; "
              "raise --max-steps", file=sys.stderr)
        return 1
    return 0


def _run_model(model, args: argparse.Namespace) -> HittingTimes:
    """Rollouts of a whole-trajectory transformer, sampled in JAX (no exact mean exists), rollout
    r aiming at the r-th of the --target nodes in turn. ``max_steps`` defaults to 50 times its
    last recorded hitting time (at least 1000)."""
    if args.search != "none":
        raise InputError("--search: the wrapper runs tables; a transformer's file runs without it")
    graph = model.graph
    chosen = targets.resolve(graph, args.target)
    rollouts = checks.whole("--rollouts", args.rollouts, 1)
    seed = checks.seed("--seed", args.seed)
    default = max(1000, 50 * math.ceil(model.recorded_hitting_time))
    max_steps = checks.whole("--max-steps", default if args.max_steps is None else args.max_steps, 1)
    began = time.perf_counter()
    samples = model.sample(rollouts, seed=seed, horizon=max_steps, targets=list(chosen.nodes))
    seconds = time.perf_counter() - began
    parameters = {"graph": graph.describe(), "policy": model.describe(), "target": chosen.label,
                  "rollouts": rollouts, "first_rollout": 0, "seed": seed, "max_steps": max_steps,
                  "backend": "jax", "threads": 0, "search": "none", "exact_mean": math.nan,
                  "method": "jax", "lumped_blocks": 0}
    return samples.hitting_times(parameters, args.bins, seconds)


def _table(summaries: list[dict]) -> list[str]:
    """The printed summary, one row per run: the policy draws only where a search wrapper made
    them differ from the steps; the exact column is what z compares with."""
    draws = any(s["search"] != "none" for s in summaries)
    width = max(32, *(len(s["run"]) for s in summaries))
    lines = [f"{'run':<{width}} {'method':<6} {'mean':>12} {'stderr':>9} {'exact':>12} {'z':>6} "
             f"{'chi2 p':>7}{' ' + format('draws', '>12') if draws else ''} {'censored':>8} {'steps/s':>9}"]

    def number(value: float, spec: str, width: int) -> str:
        return format("-", f">{width}") if not math.isfinite(value) else format(value, f">{width}{spec}")

    for s in summaries:
        lines.append(
            f"{s['run']:<{width}} {s['method']:<6} {number(s['mean'], '.6g', 12)} {number(s['stderr'], '.3g', 9)} "
            f"{number(s['z_exact'], '.6g', 12)} {number(s['z'], '.2f', 6)} {number(s['chi2_p'], '.2g', 7)}"
            + (f" {number(s['mean_draws'], '.6g', 12)}" if draws else "")
            + f" {s['censored']:>8d} {number(s['steps_per_second'], '.3g', 9)}")
    if any(s["method"] == "leap" for s in summaries):
        lines.append("(leap runs draw T from its exact law: their steps/s counts the transitions the "
                     "rollouts stand for)")
    return lines


def _exact(args: argparse.Namespace) -> int:
    graph = build_graph(args)
    policy = (named_policy(graph, "--policy", args.policy) if args.policy_file is None
              else _policy_file(args.policy_file, graph, args))
    if not isinstance(policy, Policy):
        raise InputError(f"--policy-file {args.policy_file}: a whole-trajectory transformer has no exact solve "
                         "(its window chain would not fit); edgewalk run --policy-file samples it")
    chosen = targets.resolve(policy.graph, args.target)
    solutions = targets.solutions(policy, chosen.nodes)
    values = [float(solution.values[0]) for solution in solutions]
    value = float(np.mean(values))
    seconds = sum(solution.seconds for solution in {id(s): s for s in solutions}.values())
    held = max(solution.memory_bytes for solution in solutions)
    described = {"policy": policy.name, "graph": policy.graph.describe(), "target": chosen.label,
                 "targets": list(chosen.names), "exact_mean": value, "exact_means": values,
                 "states": policy.graph.n_states, "solve_seconds": seconds, "solve_memory_bytes": held}
    if not math.isfinite(value):
        described["notes"] = ["the target is not hit surely from the start: the exact mean is infinite"]
    if args.json:
        print(dumps(described))
    else:
        print(f"{policy.name} on {in_words(policy.graph.describe())}, "
              f"target {chosen.describe()}: expected hitting time {value:.10g} "
              f"({policy.graph.n_states:,} states, solved in {seconds:.2g} s holding {memory.format_bytes(held)})")
    return 0
