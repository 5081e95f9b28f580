"""The ``edgewalk`` command line."""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
from typing import Sequence

from . import __version__, exact
from .engine import BACKENDS, SEARCH_MODES, CostError, plan, simulate
from .graph import Graph, heterogeneous, path_star
from .analysis import add_analysis_commands
from .cli_train import add_training_commands
from .io import check_writable, read_training, write
from .policy import NAMED, Policy, from_table, named
from .result import HittingTimes

MAIN_JOB_POLICIES = ("pretrained", "sft", "rlvr")
# In the main job SFT runs on the deepest graph whose estimate stays under this (SFT's hitting
# time grows about 7x per unit of depth at L = 5; at K = 15 it is about 4e14 steps).
MAIN_JOB_SECONDS_PER_RUN = 30.0

DESCRIPTION = """\
Monte Carlo hitting times of edge-conditioned policies on the path-star graph of Wei & Kim,
"Provable Benefits of RLVR over SFT for Reasoning Models" (ICML 2026).

  edgewalk run                  the main job: pretrained, SFT and RLVR on the paper's graph
                                (W = K = 15, L = 5; SFT on the deepest graph that fits the
                                budget), written to edgewalk-results.h5
  edgewalk run --policy rlvr --rollouts 1000000
                                one policy; prints mean, standard error, exact value, steps/s
  edgewalk exact -K 15 --policy sft
                                the exact expected hitting time (GTH state reduction)
  edgewalk train --method rlvr  post-train a policy; simulate it with run --policy-file
  edgewalk sweep                the scaling study against the paper's bounds; check its file
                                with edgewalk check
  edgewalk sweep study.toml --shard 0/4
                                a quarter of a sweep file's work (SLURM arrays); edgewalk merge
                                joins the shards; --dask runs it on a Dask cluster
  edgewalk plot FILE            the figures of a study, run or training file

Every command explains its options with --help.
"""


def _add_graph_options(parser: argparse.ArgumentParser, target: bool = True) -> None:
    graph = parser.add_argument_group("graph (MODEL.md section 1)")
    graph.add_argument("-W", "--branches", type=int, default=15, help="branches W >= 1 (default 15)")
    graph.add_argument("-K", "--depth", type=int, default=15, help="diamonds per branch K >= 1 (default 15)")
    graph.add_argument("-L", "--lanes", type=int, default=5, help="parallel edges per diamond L >= 1 (default 5)")
    graph.add_argument(
        "--depths", type=str, default=None, metavar="K1,K2,...",
        help="heterogeneous graph: comma-separated depth per branch (replaces -W and -K), e.g. 6,5,4,3,3",
    )
    if target:
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
        "exact", help="exact expected hitting time (GTH state reduction on the edge-state chain)",
        description="Expected hitting time of a named policy from s0 -> f, solved exactly on the "
        "edge-state chain by state reduction without subtractions (accurate to near machine "
        "precision even at 1e14). Reaches depths no simulation can (SFT at K = 15).",
    )
    _add_graph_options(exact_cmd)
    exact_cmd.add_argument("--policy", choices=sorted(NAMED), default="pretrained", help="policy (default pretrained)")
    exact_cmd.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    exact_cmd.set_defaults(handler=_exact)
    _add_study_commands(commands)
    add_training_commands(commands, _add_graph_options, _json)
    add_analysis_commands(commands, _json)
    return parser


def _main_job_policies(args: argparse.Namespace, graph: Graph) -> list[Policy]:
    if args.policy_file is not None:
        if args.policy is not None:
            raise ValueError("--policy-file and --policy: give one of them")
        if args.policy_file.endswith(".npy"):
            try:
                table = np.load(args.policy_file)
            except (OSError, ValueError) as error:
                raise ValueError(f"--policy-file {args.policy_file}: not a readable .npy array ({error})") from None
            try:
                return [from_table(graph, table, name="table")]
            except ValueError as error:
                raise ValueError(f"--policy-file {args.policy_file}: {error}") from None
        return [read_training(args.policy_file).policy]
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
    policies = _main_job_policies(args, _build_graph(args))
    plans = [plan(policy, args.target, args.rollouts, args.seed, args.max_steps, args.backend,
                  args.threads, args.bins, args.force, args.search)
             for policy in policies]  # every check and cost estimate before any simulation
    check_writable(args.out)

    results: dict[str, HittingTimes] = {}
    for policy, planned in zip(policies, plans):
        name = _run_name(policy, args.search)
        bar, update = _progress_bar(args.rollouts, name, args.progress)
        with bar:
            results[name] = simulate(policy, args.target, args.rollouts, args.seed, args.max_steps,
                                     args.backend, args.threads, args.bins, args.force, update,
                                     args.search, known_mean=planned.exact_mean)
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


# --- the study: `edgewalk sweep` and `edgewalk check` ----------------------------------------

SWEEP_DESCRIPTION = """\
Hitting times of six variants (pretrained, sft, sft+search, rlvr, rlvr+search, distilled) over a
star grid: each of W, K and L varies over its list while the other two stay at --base. Every cell
gets the exact expected hitting time where the exact solver applies (all but the +search variants)
and Monte Carlo where the run is estimated to take at most --budget seconds. For each variant and
parameter the growth is fitted (exponential base where the stated bound is exponential in the
parameter, else the slope) with a 95% interval and set beside the paper's bound: Theta(W L^K) for
SFT, Theta(WKL) for SFT + search, Theta(WK) for RLVR, RLVR + search and distilled, and the exact
formula (2W-1)(1+K+K/L)(1+K(L+1)) for pretrained. "distilled" is the converged distilled policy of
MODEL.md section 3 (a = b = c = d = 1, the same table as RLVR). Writes one HDF5 file (every
histogram, cell and fit), prints the fits and writes PNG plots.
"""


def _add_study_commands(commands) -> None:
    from .study import VARIANTS

    sweep = commands.add_parser(
        "sweep", help="the scaling study: hitting times over W, K, L, growth fits against the paper's bounds",
        description=SWEEP_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grid = sweep.add_argument_group("grid (a star around --base; lists like 2,4,6 or ranges like 1-15)")
    grid.add_argument("--W", default="2,4,6,8", metavar="LIST", help="branches W (default 2,4,6,8)")
    grid.add_argument("--K", default="1-15", metavar="LIST", help="depths K (default 1-15)")
    grid.add_argument("--L", default="2-6", metavar="LIST", help="lanes L (default 2-6)")
    grid.add_argument("--base", default="6,3,5", metavar="W0,K0,L0",
                      help="where the other parameters are held when one varies (default 6,3,5)")
    sweep.add_argument("--variants", default=",".join(VARIANTS), metavar="NAMES",
                       help=f"comma-separated subset of {','.join(VARIANTS)} (default all)")
    sweep.add_argument("--policies", choices=("converged", "trained"), default="converged",
                       help="converged: the limits of MODEL.md section 3; trained: SFT, RLVR and distilled "
                       "policies trained on every graph by edgewalk.training (slower: minutes) (default converged)")
    sweep.add_argument("--rollouts", "-N", type=int, default=50_000, help="Monte Carlo rollouts per cell (default 50000)")
    sweep.add_argument("--budget", type=float, default=20.0, metavar="SECONDS",
                       help="Monte Carlo only in cells whose run is estimated (engine.plan, at a deliberately "
                       "low speed) to take at most this long; others get the exact value only (default 20)")
    sweep.add_argument("--seed", type=int, default=0,
                       help="seed in [0, 2**64 - 1]; each cell draws from its own seed derived from it (default 0)")
    sweep.add_argument("--tail", type=int, default=4,
                       help="exponential fits and local exponents use the last TAIL points of an axis (default 4)")
    sweep.add_argument("--backend", choices=BACKENDS, default="numba", help="simulation kernel (default numba)")
    sweep.add_argument("--threads", type=int, default=None, help="threads (default: all cores this process may use)")
    sweep.add_argument("--out", default="edgewalk-study.h5", metavar="PATH", help="HDF5 output (default edgewalk-study.h5)")
    sweep.add_argument("--plots", default="edgewalk-study-plots", metavar="DIR",
                       help="directory for the PNG plots, created if missing (default edgewalk-study-plots)")
    sweep.add_argument("--no-plots", action="store_true", help="write no plots")
    sweep.add_argument("--json", action="store_true",
                       help="print one JSON object: fits [{variant, parameter, kind, estimate, ci_low, ci_high, "
                       "stated, ...}], cells, threshold, out, plots, seconds, parameters")
    sweep.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar on stderr (default: when stderr is a terminal)")
    option_defaults = {a.dest: a.default for a in sweep._actions if a.option_strings and a.dest not in
                       ("help", "json", "progress")}
    sweep.add_argument("file", nargs="?", default=None, metavar="FILE",
                       help="a TOML file describing the whole sweep (grid, variants, rollouts, seed, "
                       "budget, block_rollouts, output, ...; see docs/cluster.md); it replaces the options "
                       "above. Rerunning it resumes: finished cells and rollout blocks are kept")
    batch = sweep.add_argument_group("batch runs (with FILE)")
    batch.add_argument("--shard", default=None, metavar="I/N",
                       help="run only the rollout blocks numbered I mod N (0 <= I < N), e.g. "
                       "$SLURM_ARRAY_TASK_ID/4, into <output stem>.shard-I-of-N.h5; combine the N shard "
                       "files with `edgewalk merge`")
    batch.add_argument("--dask", default=None, metavar="ADDRESS",
                       help="run the rollout blocks on the Dask cluster whose scheduler is at ADDRESS "
                       "(e.g. tcp://scheduler-host:8786), or on a new LocalCluster with 'local'")
    sweep.set_defaults(handler=_sweep, sweep_option_defaults=option_defaults)

    merge = commands.add_parser(
        "merge", help="combine the shard files of a sweep into its study file",
        description="Combine the shard files written by `edgewalk sweep FILE --shard I/N` (I = 0 .. N-1) "
        "into one study file, equal bit for bit to the unsharded sweep's, so `edgewalk check` works "
        "on it. Refuses shards of different configurations, seeds or shard counts, duplicated or "
        "missing shard indices and incomplete shards, naming them.",
    )
    merge.add_argument("out", metavar="OUT", help="the study file to write")
    merge.add_argument("shards", nargs="+", metavar="SHARD", help="the N shard files")
    merge.add_argument("--plots", default=None, metavar="DIR", help="also write the PNG plots to DIR")
    merge.add_argument("--json", action="store_true", help="print one JSON object (as `edgewalk sweep --json`)")
    merge.set_defaults(handler=_merge)

    check = commands.add_parser(
        "check", help="check a study file: Monte Carlo against exact, fits against the stated bounds",
        description="Read a file written by `edgewalk sweep` and print, per variant, the fits against "
        "the stated bounds and the Monte Carlo means against the exact values. Exits 1 if any "
        "|z| = |mean - exact| / stderr exceeds the Bonferroni threshold for a family-wise two-sided "
        "alpha over all comparisons in the file, 0 otherwise.",
    )
    check.add_argument("file", metavar="FILE", help="a study file written by `edgewalk sweep`")
    check.add_argument("--alpha", type=float, default=1e-3, help="family-wise two-sided level (default 1e-3)")
    check.add_argument("--all", action="store_true", help="list every compared cell, not only failures")
    check.set_defaults(handler=_check)


def _parse_base(text: str) -> tuple[int, int, int]:
    try:
        W0, K0, L0 = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--base must be three whole numbers W0,K0,L0, got {text!r}") from None
    return W0, K0, L0


def _fits_table(fits) -> list[str]:
    """The fits, one line of numbers each and the verdict indented below it."""
    lines = [f"{'variant':<12} {'param':<5} {'kind':<11} {'estimate':>11} {'95% CI':<25} {'R^2':>8} "
             f"{'source':<11} stated"]
    for f in fits:
        interval = f"[{f.ci_low:.5g}, {f.ci_high:.5g}]"
        lines.append(f"{f.variant:<12} {f.parameter:<5} {f.kind:<11} {f.estimate:>11.5g} {interval:<25} "
                     f"{f.r2:>8.5f} {f.source:<11} {f.stated}")
        lines.append(f"{'':<13}-> {f.verdict}")
    return lines


def _cell_json(study_result, cell) -> dict[str, object]:
    result = study_result.mc(cell)
    mean = result.mean if result else math.nan
    stderr = result.stderr if result else math.nan
    z = (mean - cell.exact) / stderr if result and stderr > 0 else math.nan
    return {"variant": cell.variant, "W": cell.W, "K": cell.K, "L": cell.L, "exact": cell.exact,
            "mc_mean": mean, "mc_stderr": stderr, "z": z,
            "rollouts": result.rollouts if result else 0, "censored": result.censored if result else 0,
            "run": cell.run or None, "estimated_seconds": cell.estimated_seconds}


def _agreement(comparisons, threshold: float, variant: str, show_all: bool) -> tuple[str, list[str], bool]:
    """(summary, per-cell lines, ok) of one variant's Monte Carlo means against exact values."""
    from .study import VARIANTS

    mine = [c for c in comparisons if c.variant == variant]
    if not mine:
        reason = ("no exact solver under the search wrapper" if VARIANTS[variant].search != "none"
                  else "no cell with both")
        return f"none compared ({reason})", [], True
    worst = max(mine, key=lambda c: abs(c.z))
    bad = [c for c in mine if not abs(c.z) <= threshold]
    summary = (f"{len(mine)} cells, max |z| = {abs(worst.z):.2f} at W={worst.W} K={worst.K} L={worst.L}: "
               f"{'FAIL' if bad else 'ok'}")
    details = [f"    W={c.W:<3} K={c.K:<3} L={c.L:<3} mean {c.mean:>14.7g} +- {c.stderr:<10.3g} "
               f"exact {c.exact:>14.7g}  z {c.z:>7.2f}  censored {c.censored}"
               f"{'  <-- beyond threshold' if not abs(c.z) <= threshold else ''}"
               for c in (mine if show_all else bad)]
    return summary, details, not bad


def _sweep(args: argparse.Namespace) -> int:
    import contextlib
    import time
    from pathlib import Path

    from . import study

    if args.file is not None:
        return _sweep_file(args)
    for option in ("shard", "dask"):
        if getattr(args, option) is not None:
            raise ValueError(f"--{option} needs a sweep FILE (a TOML description of the sweep; see docs/cluster.md)")
    grid = study.Grid(study.parse_list(args.W, "--W"), study.parse_list(args.K, "--K"),
                      study.parse_list(args.L, "--L"), _parse_base(args.base))
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    check_writable(args.out)
    if not args.no_plots:
        plots_dir = Path(args.plots)
        if plots_dir.exists() and not plots_dir.is_dir():
            raise ValueError(f"--plots {plots_dir}: exists and is not a directory")
        if not plots_dir.parent.is_dir():
            raise ValueError(f"--plots {plots_dir}: directory {plots_dir.parent} does not exist")

    @contextlib.contextmanager
    def progress(name: str, total: int):
        bar, update = _progress_bar(total, name, args.progress)
        with bar:
            yield update

    start = time.perf_counter()
    result = study.sweep(grid, variants, args.rollouts, args.seed, args.budget, args.backend,
                         args.threads, args.tail, progress, args.policies)
    study.write(args.out, result)
    written = []
    if not args.no_plots:
        from .plots import write_plots

        written = [str(p) for p in write_plots(args.out, args.plots)]
    _print_study(result, args.out, written, args.plots, time.perf_counter() - start, args.json)
    return 0


def _print_study(result, out: str, written: list[str], plots: str | None, seconds: float, as_json: bool) -> None:
    """The report of `edgewalk sweep` and `edgewalk merge`: the fits and Monte Carlo against exact."""
    from . import study

    comparisons = study.compare_with_exact(result)
    threshold = study.bonferroni_threshold(len(comparisons))
    if as_json:
        print(_json({"fits": [f.to_json() for f in result.fits],
                     "cells": [_cell_json(result, c) for c in result.cells],
                     "threshold": threshold, "out": str(out), "plots": written, "seconds": seconds,
                     "parameters": result.parameters}))
        return
    variants = result.parameters["variants"]
    print("\n".join(_fits_table(result.fits)))
    print()
    print(f"Monte Carlo against exact (Bonferroni |z| threshold {threshold:.2f}; `edgewalk check {out}` lists cells):")
    for variant in variants:
        summary, details, _ = _agreement(comparisons, threshold, variant, False)
        print("\n".join([f"{variant:<12} {summary}", *details]))
    mc_cells = sum(1 for c in result.cells if c.run)
    print(f"\n{len(result.cells)} cells ({mc_cells} with {result.parameters['rollouts']} Monte Carlo rollouts, "
          f"the rest exact only or over budget), base W,K,L = {','.join(map(str, result.parameters['base']))}, "
          f"{seconds:.1f} s; written to {out}" + (f" and {len(written)} plots in {plots}" if written else ""))
    if "distilled" in variants and result.parameters.get("policies", "converged") == "converged":
        print(f"note: {study.DISTILLED_NOTE}")


def _sweep_file(args: argparse.Namespace) -> int:
    """`edgewalk sweep FILE [--shard I/N] [--dask ADDRESS]`: the batch sweep of edgewalk.batch."""
    from . import batch

    given = [f"--{dest.replace('_', '-')}" for dest, default in args.sweep_option_defaults.items()
             if dest not in ("shard", "dask") and getattr(args, dest) != default]
    if given:
        raise ValueError(f"with FILE the file alone describes the sweep: put {', '.join(given)} in {args.file} instead")
    config = batch.load_config(args.file)
    shard = batch.parse_shard(args.shard) if args.shard is not None else None
    try:
        outcome = batch.run_sweep(config, shard, args.dask, args.progress)
    except KeyboardInterrupt:
        print(f"edgewalk: interrupted; finished rollout blocks are kept in "
              f"{batch.shard_path(config.output, *shard) if shard else batch.checkpoint_path(config.output)}: "
              f"rerun the same command to resume", file=sys.stderr)
        return 130
    if outcome.study is None:
        summary = {"shard": args.shard, "out": str(outcome.path), "units": outcome.units,
                   "reused": outcome.reused, "computed": outcome.computed, "seconds": outcome.seconds}
        if args.json:
            print(_json(summary))
        else:
            print(f"shard {args.shard}: {outcome.computed} rollout blocks computed, {outcome.reused} kept from "
                  f"earlier runs, of {outcome.units}; {outcome.seconds:.1f} s; written to {outcome.path}")
        return 0
    _print_study(outcome.study, config.output, list(outcome.plots), config.plots, outcome.seconds, args.json)
    return 0


def _merge(args: argparse.Namespace) -> int:
    import time

    from . import batch

    start = time.perf_counter()
    result = batch.merge(args.out, args.shards)
    written = []
    if args.plots:
        from .plots import write_plots

        written = [str(p) for p in write_plots(args.out, args.plots)]
    _print_study(result, args.out, written, args.plots, time.perf_counter() - start, args.json)
    return 0


def _check(args: argparse.Namespace) -> int:
    from . import study

    if not (0 < args.alpha < 1):
        raise ValueError(f"--alpha must be in (0, 1), got {args.alpha}")
    result = study.read(args.file)
    comparisons = study.compare_with_exact(result)
    threshold = study.bonferroni_threshold(len(comparisons), args.alpha)
    variants = result.parameters["variants"]
    ok = True
    for variant in variants:
        bound = result.parameters["bounds"][variant]
        print(f"== {variant} (stated: {bound})")
        for f in result.fits:
            if f.variant == variant:
                print(f"  {f.parameter} at {f.held} ({f.source}): {f.kind} {f.estimate:.6g} "
                      f"[{f.ci_low:.6g}, {f.ci_high:.6g}], R^2 {f.r2:.5f}; stated: {f.stated}\n"
                      f"      -> {f.verdict}")
        summary, details, variant_ok = _agreement(comparisons, threshold, variant, args.all)
        ok = ok and variant_ok
        print("\n".join([f"  Monte Carlo against exact: {summary}", *details]))
    disagreements = sum(1 for f in result.fits if f.agrees is False)
    print(f"{len(comparisons)} Monte Carlo means against exact, Bonferroni |z| threshold {threshold:.2f} "
          f"(two-sided alpha {args.alpha:g}): {'all agree' if ok else 'DISAGREEMENT beyond chance'}; "
          f"{disagreements} of {len(result.fits)} fits disagree with the stated bound")
    return 0 if ok else 1


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
