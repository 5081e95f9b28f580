"""``edgewalk sweep`` (the scaling study, also from a sweep file, sharded or on Dask),
``edgewalk merge`` and ``edgewalk check``."""

from __future__ import annotations

import argparse
import math
import sys
import time

from .. import checks, kernels, statistics, study
from ..errors import InputError
from ..io import check_new_output, check_not_an_input, read_study, write_study
from ..plots import claim, study_plot_names, topology_plot_names, write_plots, write_topology_plots
from ..graph import FAMILIES, FAMILY_PARAMETERS
from ..study import DEFAULT_VARIANTS, VARIANTS, topology
from .common import dumps, plots_beside, progress_bars

# The topology study's default axes and base per family (small enough to train in minutes).
FAMILY_SWEEP = {
    "path-star": ({"W": "2,4,6", "K": "1-6", "L": "2-5"}, "4,3,3"),
    "star": ({"degree": "2-8", "length": "1-10"}, "4,4"),
    "tree": ({"branching": "2-4", "depth": "1-6"}, "2,4"),
    "grid": ({"rows": "2-8", "columns": "2-8"}, "4,4"),
    "regular": ({"nodes": "8,16,32,64", "degree": "3-5"}, "16,3"),
}


SWEEP_DESCRIPTION = """\
Hitting times of six variants (pretrained, sft, sft+search, rlvr, rlvr+search, distilled) over a
star grid: each of W, K and L varies over its list while the other two stay at --base. Every cell
gets the exact expected hitting time where the exact solver applies (all but the +search variants)
and Monte Carlo where the run is estimated to take at most --budget seconds. For each variant and
parameter the growth is fitted (exponential base where the stated bound is exponential in the
parameter, else the slope) with a 95% interval and set beside the paper's bound: Theta(W L^K) for
SFT, Theta(WKL) for SFT + search, Theta(WK) for RLVR, RLVR + search and distilled, and the exact
formula (2W-1)(1+K+K/L)(1+K(L+1)) for pretrained. "distilled" is the converged distilled policy of
docs/model.md section 3 (a = b = c = d = 1, the same table as RLVR). Writes one HDF5 file (every
histogram, cell and fit), prints the fits and writes PNG plots.
"""


def add_commands(commands) -> None:
    sweep = commands.add_parser(
        "sweep", help="the scaling study: hitting times over W, K, L, growth fits against the paper's bounds",
        description=SWEEP_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grid = sweep.add_argument_group("grid (a star around --base; lists like 2,4,6 or ranges like 1-15)")
    grid.add_argument("--W", default="2,4,6,8", metavar="LIST", help="branches W (default 2,4,6,8)")
    grid.add_argument("--K", default="1-15", metavar="LIST", help="depths K (default 1-15)")
    grid.add_argument("--L", default="2-6", metavar="LIST", help="lanes L (default 2-6)")
    grid.add_argument("--base", default=None, metavar="W0,K0,L0",
                      help="where the other parameters are held when one varies (default 6,3,5; with --family "
                      "one value per size parameter of the family, in the order of its options below)")
    topology = sweep.add_argument_group(
        "topology study (--family: SFT, RLVR and distilled trained on every graph, the separation "
        "E[T_sft] / E[T_rlvr] and its growth; docs/model.md section 7)")
    topology.add_argument("--family", choices=FAMILIES, default=None,
                          help="sweep this family's size parameters instead of the path-star study of W, K, L")
    for option, family_name in (("degree", "star, regular"), ("length", "star"), ("branching", "tree"),
                                ("depth", "tree"), ("rows", "grid"), ("columns", "grid"), ("nodes", "regular")):
        defaults = "; ".join(f"{f} {axes[option]}" for f, (axes, _) in FAMILY_SWEEP.items() if option in axes)
        topology.add_argument(f"--{option}", default=None, metavar="LIST",
                              help=f"{family_name}: values of {option} (default {defaults})")
    topology.add_argument("--graph-seed", type=int, default=0, help="regular: the graphs' seed (default 0)")
    sweep.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), metavar="NAMES",
                       help=f"comma-separated names from {','.join(VARIANTS)} (default {','.join(DEFAULT_VARIANTS)})")
    sweep.add_argument("--policies", choices=("converged", "trained"), default="converged",
                       help="converged: the limits of docs/model.md section 3; trained: SFT, RLVR and distilled "
                       "policies trained on every graph by edgewalk.training (slower: minutes) (default converged)")
    sweep.add_argument("--target", default="leaves", metavar="NODE",
                       help="'leaves' (default: each rollout's target uniform over the leaves, what training "
                       "optimises) or a node every graph of the grid has (t1)")
    sweep.add_argument("--rollouts", "-N", type=int, default=50_000, help="Monte Carlo rollouts per cell (default 50000)")
    sweep.add_argument("--budget", type=float, default=20.0, metavar="SECONDS",
                       help="Monte Carlo only in cells whose run is estimated (engine.plan, at a deliberately "
                       "low speed) to take at most this long; others get the exact value only (default 20)")
    sweep.add_argument("--seed", type=int, default=0,
                       help="seed in [0, 2**64 - 1]; each cell draws from its own seed derived from it (default 0)")
    sweep.add_argument("--tail", type=int, default=4,
                       help="exponential fits and local exponents use the last TAIL points of an axis (default 4)")
    sweep.add_argument("--backend", choices=kernels.BACKENDS, default="numba", help="simulation kernel (default numba)")
    sweep.add_argument("--threads", type=int, default=None, help="threads (default: all cores this process may use)")
    sweep.add_argument("--out", default="edgewalk-study.h5", metavar="PATH", help="HDF5 output (default edgewalk-study.h5)")
    drawn = sweep.add_mutually_exclusive_group()
    drawn.add_argument("--plots", default=None, metavar="DIR",
                       help="directory for the PNG plots, created if missing (default: --out without its "
                       "suffix + '-plots')")
    drawn.add_argument("--no-plots", action="store_true", help="write no plots")
    sweep.add_argument("--overwrite", action="store_true",
                       help="replace --out and the plots if they exist (default: refuse)")
    sweep.add_argument("--json", action="store_true",
                       help="print one JSON object: fits [{variant, parameter, kind, estimate, ci_low, ci_high, "
                       "stated, ...}], cells, threshold, out, plots, seconds, parameters")
    sweep.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar on stderr (default: when stderr is a terminal)")
    option_defaults = {a.dest: a.default for a in sweep._actions if a.option_strings and a.dest not in
                       ("help", "json", "progress", "overwrite", "max_memory")}
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
    merge.add_argument("--overwrite", action="store_true",
                       help="replace OUT and the plots if they exist (default: refuse; OUT can never be one of "
                       "the shards)")
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
        raise InputError(f"--base must be three whole numbers W0,K0,L0, got {text!r}") from None
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
    z = statistics.z_score(mean, cell.exact, stderr)
    return {"variant": cell.variant, "W": cell.W, "K": cell.K, "L": cell.L, "exact": cell.exact,
            "mc_mean": mean, "mc_stderr": stderr, "z": z,
            "rollouts": result.rollouts if result else 0, "censored": result.censored if result else 0,
            "run": cell.run or None, "estimated_seconds": cell.estimated_seconds}


def _criteria(comparisons, alpha: float) -> tuple[float, float, int]:
    """(|z| threshold, p-value limit, number of tests): Bonferroni over every z-score and every
    chi-square test in the file, at family-wise two-sided ``alpha``."""
    tests = sum((not math.isnan(c.z)) + (not math.isnan(c.chi2_p)) for c in comparisons)
    return statistics.bonferroni_threshold(tests, alpha), alpha / max(tests, 1), tests


def _agreement(comparisons, threshold: float, p_limit: float, variant: str, show_all: bool
               ) -> tuple[str, list[str], bool]:
    """(summary, per-cell lines, ok) of one variant's Monte Carlo results against the exact
    means (z) and the exact laws (chi-square p-values)."""
    mine = [c for c in comparisons if c.variant == variant]
    if not mine:
        reason = ("no exact solver under the search wrapper" if VARIANTS[variant].search != "none"
                  else "no cell with both")
        return f"none compared ({reason})", [], True

    def untested(c) -> bool:  # censored (no z) and its histogram leaves one chi-square cell
        return math.isnan(c.z) and math.isnan(c.chi2_p)

    def fails(c) -> bool:  # a cell that could not be checked fails the check too
        return abs(c.z) > threshold or c.chi2_p < p_limit or untested(c)

    judged = [c for c in mine if not math.isnan(c.z)] or mine
    worst = max(judged, key=lambda c: abs(c.z) if not math.isnan(c.z) else -1)
    laws = [c.chi2_p for c in mine if not math.isnan(c.chi2_p)]
    bad = [c for c in mine if fails(c)]
    censored = sum(1 for c in mine if math.isnan(c.z))
    unchecked = sum(1 for c in mine if untested(c))
    summary = (f"{len(mine)} cells, max |z| = {abs(worst.z):.2f} at W={worst.W} K={worst.K} L={worst.L}"
               + (f" ({censored} censored runs judged by their law alone)" if censored else "")
               + (f", smallest chi-square p {min(laws):.2g} of {len(laws)}" if laws else "")
               + (f", {unchecked} untested (censored, and a histogram of one chi-square cell)" if unchecked else "")
               + f": {'FAIL' if bad else 'ok'}")
    details = [f"    W={c.W:<3} K={c.K:<3} L={c.L:<3} mean {c.mean:>14.7g} +- {c.stderr:<10.3g} "
               f"exact {c.exact:>14.7g}  z {c.z:>7.2f}  chi2 p {c.chi2_p:>8.2g}  censored {c.censored}"
               f"{'  <-- untested' if untested(c) else '  <-- beyond threshold' if fails(c) else ''}"
               for c in (mine if show_all else bad)]
    return summary, details, not bad


def _sweep(args: argparse.Namespace) -> int:
    if args.file is not None:
        return _sweep_file(args)
    for option in ("shard", "dask"):
        if getattr(args, option) is not None:
            raise InputError(f"--{option} needs a sweep FILE (a TOML description of the sweep; see docs/cluster.md)")
    if args.family is not None:
        return _sweep_family(args)
    stray = [f"--{o}" for o in ("degree", "length", "branching", "depth", "rows", "columns", "nodes")
             if getattr(args, o) is not None]
    if stray:
        raise InputError(f"{stray[0]}: an option of the topology study; give --family too")
    grid = study.Grid(study.parse_list(args.W, "--W"), study.parse_list(args.K, "--K"),
                      study.parse_list(args.L, "--L"), _parse_base(args.base or "6,3,5"))
    variants = study.check_variants([v.strip() for v in args.variants.split(",") if v.strip()])
    check_new_output(args.out, overwrite=args.overwrite)
    plots = None if args.no_plots else claim(args.plots or plots_beside(args.out),
                                             study_plot_names(variants), args.overwrite, output=args.out)

    progress = progress_bars(args.progress)

    start = time.perf_counter()
    result = study.sweep(grid, variants, args.rollouts, args.seed, args.budget, args.backend,
                         args.threads, args.tail, progress, args.policies, args.target)
    write_study(args.out, result)
    written = [] if plots is None else [str(p) for p in write_plots(result, plots, args.overwrite)]
    _print_study(result, args.out, written, plots, time.perf_counter() - start, args.json)
    return 0


def _print_study(result, out: str, written: list[str], plots: str | None, seconds: float, as_json: bool) -> None:
    """The report of `edgewalk sweep` and `edgewalk merge`: the fits and Monte Carlo against exact."""
    comparisons = study.compare_with_exact(result)
    threshold, p_limit, _ = _criteria(comparisons, 1e-3)
    if as_json:
        print(dumps({"fits": [f.to_json() for f in result.fits],
                     "cells": [_cell_json(result, c) for c in result.cells],
                     "threshold": threshold, "p_limit": p_limit, "out": str(out), "plots": written, "seconds": seconds,
                     "parameters": result.parameters}))
        return
    variants = result.parameters["variants"]
    print("\n".join(_fits_table(result.fits)))
    print()
    print(f"Monte Carlo against exact (Bonferroni: |z| <= {threshold:.2f}, chi-square p >= {p_limit:.2g}; "
          f"`edgewalk check {out}` lists cells):")
    for variant in variants:
        summary, details, _ = _agreement(comparisons, threshold, p_limit, variant, False)
        print("\n".join([f"{variant:<12} {summary}", *details]))
    mc_cells = sum(1 for c in result.cells if c.run)
    print(f"target: {result.parameters.get('target', 't1')}")
    rest = len(result.cells) - mc_cells
    monte_carlo = (f"all with {result.parameters['rollouts']} Monte Carlo rollouts" if rest == 0 else
                   f"{mc_cells} with {result.parameters['rollouts']} Monte Carlo rollouts, {rest} exact only "
                   "or over budget")
    print(f"\n{len(result.cells)} cells ({monte_carlo}), base W,K,L = {','.join(map(str, result.parameters['base']))}, "
          f"{seconds:.1f} s; written to {out}" + (f" and {len(written)} plots in {plots}" if written else ""))
    if "distilled" in variants and result.parameters.get("policies", "converged") == "converged":
        print(f"note: {study.DISTILLED_NOTE}")


def _sweep_file(args: argparse.Namespace) -> int:
    """`edgewalk sweep FILE [--shard I/N] [--dask ADDRESS]`: the batch sweep of edgewalk.batch."""
    from .. import batch

    given = [dest for dest, default in args.sweep_option_defaults.items()
             if dest not in ("shard", "dask") and getattr(args, dest) != default]
    if given:
        as_keys = ["no key plots (a file writes plots only where it names a directory)" if d == "no_plots"
                   else f"the key {'output' if d == 'out' else d}" for d in given]
        raise InputError(f"with FILE the file alone describes the sweep: instead of "
                         f"{', '.join('--' + d.replace('_', '-') for d in given)}, give {', '.join(as_keys)} "
                         f"in {args.file}")
    family_data = _family_file(args.file)
    if family_data is not None:
        return _sweep_family_file(args, family_data)
    config = batch.load_config(args.file)
    check_not_an_input(config.output, {"FILE": args.file}, "output:")
    shard = batch.parse_shard(args.shard) if args.shard is not None else None
    plots = None if not config.plots or shard else claim(config.plots, study_plot_names(config.variants),
                                                         args.overwrite, "plots", output=config.output)
    try:
        outcome = batch.run_sweep(config, shard, args.dask, args.progress)
    except KeyboardInterrupt:
        kept = batch.shard_path(config.output, *shard) if shard else batch.checkpoint_path(config.output)
        print(f"edgewalk: interrupted; finished rollout blocks are kept in {kept}.parts: "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    if outcome.study is None:
        summary = {"shard": args.shard, "out": str(outcome.path), "units": outcome.units,
                   "reused": outcome.reused, "computed": outcome.computed, "seconds": outcome.seconds}
        if args.json:
            print(dumps(summary))
        else:
            print(f"shard {args.shard}: {outcome.computed} rollout blocks computed, {outcome.reused} kept from "
                  f"earlier runs, of {outcome.units}; {outcome.seconds:.1f} s; written to {outcome.path}")
        return 0
    written = [] if plots is None else [str(p) for p in write_plots(outcome.study, plots, args.overwrite)]
    _print_study(outcome.study, config.output, written, plots, outcome.seconds, args.json)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from .. import batch

    start = time.perf_counter()
    check_new_output(args.out, "OUT", args.overwrite)
    plots = None
    if args.plots:
        plots = claim(args.plots, study_plot_names(batch.load_header_variants(args.shards)), args.overwrite,
                      output=args.out)
    result = batch.merge(args.out, args.shards)
    written = [] if plots is None else [str(p) for p in write_plots(result, plots, args.overwrite)]
    _print_study(result, args.out, written, plots, time.perf_counter() - start, args.json)
    return 0


def _check(args: argparse.Namespace) -> int:
    alpha = checks.real("--alpha", args.alpha, 0.0, 1.0, low_open=True, high_open=True)
    result = read_study(args.file)
    if isinstance(result, topology.TopologyStudy):
        return _check_topology(result, alpha, args.all)
    comparisons = study.compare_with_exact(result)
    threshold, p_limit, tests = _criteria(comparisons, alpha)
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
        summary, details, variant_ok = _agreement(comparisons, threshold, p_limit, variant, args.all)
        ok = ok and variant_ok
        print("\n".join([f"  Monte Carlo against exact: {summary}", *details]))
    disagreements = sum(1 for f in result.fits if f.agrees is False)
    means = sum(1 for c in comparisons if not math.isnan(c.z))
    print(f"{tests} tests of Monte Carlo against exact ({means} means, {tests - means} "
          f"laws), Bonferroni |z| <= {threshold:.2f} and p >= {p_limit:.2g} (family-wise alpha {alpha:g}): "
          f"{'all agree' if ok else 'DISAGREEMENT beyond chance'}; "
          f"{disagreements} of {len(result.fits)} fits disagree with the stated bound")
    return 0 if ok else 1


def _sweep_family(args: argparse.Namespace) -> int:
    """`edgewalk sweep --family FAMILY`: the topology study (edgewalk.study.topology)."""
    name = args.family
    parameters = FAMILY_PARAMETERS[name]
    axes_default, base_default = FAMILY_SWEEP[name]
    defaults = args.sweep_option_defaults
    given = lambda dest: getattr(args, dest) != defaults.get(dest)  # noqa: E731
    for dest in ("degree", "length", "branching", "depth", "rows", "columns", "nodes", "W", "K", "L"):
        if dest not in parameters and given(dest):
            raise InputError(f"--{dest}: not a size parameter of --family {name} (its parameters: "
                             f"{', '.join('--' + p for p in parameters)})")
    axes = {p: study.parse_list(getattr(args, p) if given(p) else axes_default[p], f"--{p}") for p in parameters}
    text = args.base or base_default
    try:
        base_values = [int(v) for v in text.split(",")]
        if len(base_values) != len(parameters):
            raise ValueError
    except ValueError:
        raise InputError(f"--base must be {len(parameters)} whole numbers {','.join(parameters)} for --family "
                         f"{name}, got {text!r}") from None
    fixed = {"seed": checks.seed("--graph-seed", args.graph_seed)} if name == "regular" else {}
    grid = topology.FamilyGrid(name, axes, dict(zip(parameters, base_values)), fixed)
    variants = (topology.VARIANTS if not given("variants")
                else tuple(v.strip() for v in args.variants.split(",") if v.strip()))
    check_new_output(args.out, overwrite=args.overwrite)
    plots = None if args.no_plots else claim(args.plots or plots_beside(args.out),
                                             topology_plot_names(list(parameters)), args.overwrite, output=args.out)

    progress = progress_bars(args.progress)

    def announce(text: str) -> None:
        if args.progress or (args.progress is None and sys.stderr.isatty()):
            print(f"edgewalk: training and running {text}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    result = topology.sweep_family(grid, variants, args.rollouts, args.seed, args.budget, args.backend,
                                   args.threads, args.tail, args.target, progress, announce)
    write_study(args.out, result)
    written = [] if plots is None else [str(p) for p in write_topology_plots(result, plots, args.overwrite)]
    _print_topology(result, args.out, written, plots, time.perf_counter() - start, args.json)
    return 0


def _topology_cell_json(result, cell) -> dict[str, object]:
    run = result.mc(cell)
    return {"variant": cell.variant, **dict(zip(result.parameters["parameters"], cell.point)),
            "exact": cell.exact, "mc_mean": run.mean if run else math.nan,
            "mc_stderr": run.stderr if run else math.nan, "z": cell.z,
            "run": cell.run or None, "estimated_seconds": cell.estimated_seconds,
            "training_seconds": cell.training_seconds}


def _print_topology(result, out: str, written: list[str], plots, seconds: float, as_json: bool) -> None:
    """The report of `edgewalk sweep --family`: the separation per point, the growth fits and
    Monte Carlo against exact."""
    comparisons = topology.compare_with_exact(result)
    threshold = study.bonferroni_threshold(len(comparisons))
    bad = [c for c in comparisons if not abs(c.z) <= threshold]
    if as_json:
        print(dumps({"fits": [f.to_json() for f in result.fits],
                     "cells": [_topology_cell_json(result, c) for c in result.cells],
                     "threshold": threshold, "out": str(out), "plots": written, "seconds": seconds,
                     "parameters": result.parameters}))
        return
    names = result.parameters["parameters"]
    series = list(dict.fromkeys(c.variant for c in result.cells))
    print(f"{result.parameters['family']}, target {result.parameters['target']}: exact E[T] per point "
          "(sft+search: Monte Carlo mean)")
    print(" ".join(f"{p:>9}" for p in names) + " " + " ".join(f"{v:>12}" for v in series))
    points = sorted({c.point for c in result.cells})
    by_key = {(c.variant, c.point): c for c in result.cells}
    for point in points:
        row = []
        for v in series:
            cell = by_key.get((v, point))
            value = math.nan if cell is None else cell.exact
            if cell is not None and not math.isfinite(value) and result.mc(cell) is not None:
                value = result.mc(cell).mean
            row.append(f"{value:>12.6g}")
        print(" ".join(f"{x:>9}" for x in point) + " " + " ".join(row))
    print()
    print(f"{'series':<11} {'param':<9} {'growth':<12} fit (last {result.parameters['tail']} points, 95% intervals)")
    for f in result.fits:
        print(f"{f.series:<11} {f.parameter:<9} {f.growth or '-':<12} {f.verdict} [{f.source}; {f.held}]")
    print()
    worst = max(comparisons, key=lambda c: abs(c.z), default=None)
    print(f"Monte Carlo against exact: {len(comparisons)} runs, max |z| = "
          f"{abs(worst.z) if worst else math.nan:.2f} (Bonferroni threshold {threshold:.2f}): "
          f"{'FAIL ' + ', '.join(f'{c.variant} {c.point}' for c in bad) if bad else 'ok'}")
    print(f"{len(points)} graphs, {len(result.runs)} Monte Carlo runs, {seconds:.1f} s; written to {out}"
          + (f" and {len(written)} plots in {plots}" if written else ""))


def _check_topology(result, alpha: float, show_all: bool) -> int:
    comparisons = topology.compare_with_exact(result)
    threshold = study.bonferroni_threshold(len(comparisons), alpha)
    for f in result.fits:
        print(f"{f.series} along {f.parameter} at {f.held} ({f.source}): {f.verdict}")
    bad = [c for c in comparisons if not abs(c.z) <= threshold]
    for c in (comparisons if show_all else bad):
        print(f"  {c.variant:<11} {c.point} mean {c.mean:.7g} +- {c.stderr:.3g} exact {c.exact:.7g} z {c.z:.2f}"
              f"{'  <-- beyond threshold' if c in bad else ''}")
    print(f"{len(comparisons)} Monte Carlo means against exact, Bonferroni |z| threshold {threshold:.2f} "
          f"(two-sided alpha {alpha:g}): {'all agree' if not bad else 'DISAGREEMENT beyond chance'}")
    return 1 if bad else 0


def _family_file(path: str) -> dict | None:
    """The parsed sweep file if it describes a topology study (has a ``family`` key), else None
    (the batch sweep reads it, and reports any problem with it)."""
    from ..batch.config import tomllib

    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return data if "family" in data else None


def _sweep_family_file(args: argparse.Namespace, data: dict) -> int:
    """`edgewalk sweep FILE` of a file with ``family = ...``: the topology study in one process."""
    for option in ("shard", "dask"):
        if getattr(args, option) is not None:
            raise InputError(f"--{option}: a family sweep file runs in one process (shards and Dask are for "
                             "the path-star study)")
    config = topology.family_sweep_from_mapping(data, str(args.file))
    check_not_an_input(config.output, {"FILE": args.file}, "output:")
    check_new_output(config.output, "output:", overwrite=args.overwrite)
    plots = None if not config.plots else claim(config.plots, topology_plot_names(list(config.grid.parameters)),
                                                 args.overwrite, "plots", output=config.output)

    progress = progress_bars(args.progress)

    start = time.perf_counter()
    result = topology.sweep_family(config.grid, config.variants, config.rollouts, config.seed, config.budget,
                                   config.backend, config.threads, config.tail, config.target, progress)
    write_study(config.output, result)
    written = [] if plots is None else [str(p) for p in write_topology_plots(result, plots, args.overwrite)]
    _print_topology(result, config.output, written, plots, time.perf_counter() - start, args.json)
    return 0
