"""``edgewalk sweep`` (the scaling study, also from a sweep file, sharded or on Dask),
``edgewalk merge`` and ``edgewalk check``."""

from __future__ import annotations

import argparse
import math
import contextlib
import sys
import time

from .. import checks, kernels, statistics, study
from ..errors import InputError
from ..io import check_new_output, read_study, write_study
from ..plots import claim, study_plot_names, write_plots
from ..study import VARIANTS
from .common import dumps, plots_beside, progress_bar


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
    grid.add_argument("--base", default="6,3,5", metavar="W0,K0,L0",
                      help="where the other parameters are held when one varies (default 6,3,5)")
    sweep.add_argument("--variants", default=",".join(VARIANTS), metavar="NAMES",
                       help=f"comma-separated subset of {','.join(VARIANTS)} (default all)")
    sweep.add_argument("--policies", choices=("converged", "trained"), default="converged",
                       help="converged: the limits of docs/model.md section 3; trained: SFT, RLVR and distilled "
                       "policies trained on every graph by edgewalk.training (slower: minutes) (default converged)")
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
    sweep.add_argument("--plots", default=None, metavar="DIR",
                       help="directory for the PNG plots, created if missing (default: --out without its "
                       "suffix + '-plots')")
    sweep.add_argument("--no-plots", action="store_true", help="write no plots")
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
    tests = len(comparisons) + sum(1 for c in comparisons if not math.isnan(c.chi2_p))
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

    def fails(c) -> bool:
        return not abs(c.z) <= threshold or c.chi2_p < p_limit

    worst = max(mine, key=lambda c: abs(c.z))
    laws = [c.chi2_p for c in mine if not math.isnan(c.chi2_p)]
    bad = [c for c in mine if fails(c)]
    summary = (f"{len(mine)} cells, max |z| = {abs(worst.z):.2f} at W={worst.W} K={worst.K} L={worst.L}"
               + (f", smallest chi-square p {min(laws):.2g} of {len(laws)}" if laws else "")
               + f": {'FAIL' if bad else 'ok'}")
    details = [f"    W={c.W:<3} K={c.K:<3} L={c.L:<3} mean {c.mean:>14.7g} +- {c.stderr:<10.3g} "
               f"exact {c.exact:>14.7g}  z {c.z:>7.2f}  chi2 p {c.chi2_p:>8.2g}  censored {c.censored}"
               f"{'  <-- beyond threshold' if fails(c) else ''}"
               for c in (mine if show_all else bad)]
    return summary, details, not bad


def _sweep(args: argparse.Namespace) -> int:
    if args.file is not None:
        return _sweep_file(args)
    for option in ("shard", "dask"):
        if getattr(args, option) is not None:
            raise InputError(f"--{option} needs a sweep FILE (a TOML description of the sweep; see docs/cluster.md)")
    grid = study.Grid(study.parse_list(args.W, "--W"), study.parse_list(args.K, "--K"),
                      study.parse_list(args.L, "--L"), _parse_base(args.base))
    variants = study.check_variants([v.strip() for v in args.variants.split(",") if v.strip()])
    check_new_output(args.out, overwrite=args.overwrite)
    plots = None if args.no_plots else claim(args.plots or plots_beside(args.out),
                                             study_plot_names(variants), args.overwrite)

    @contextlib.contextmanager
    def progress(name: str, total: int):
        bar, update = progress_bar(total, name, args.progress)
        with bar:
            yield update

    start = time.perf_counter()
    result = study.sweep(grid, variants, args.rollouts, args.seed, args.budget, args.backend,
                         args.threads, args.tail, progress, args.policies)
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
    print(f"\n{len(result.cells)} cells ({mc_cells} with {result.parameters['rollouts']} Monte Carlo rollouts, "
          f"the rest exact only or over budget), base W,K,L = {','.join(map(str, result.parameters['base']))}, "
          f"{seconds:.1f} s; written to {out}" + (f" and {len(written)} plots in {plots}" if written else ""))
    if "distilled" in variants and result.parameters.get("policies", "converged") == "converged":
        print(f"note: {study.DISTILLED_NOTE}")


def _sweep_file(args: argparse.Namespace) -> int:
    """`edgewalk sweep FILE [--shard I/N] [--dask ADDRESS]`: the batch sweep of edgewalk.batch."""
    from .. import batch

    given = [f"--{dest.replace('_', '-')}" for dest, default in args.sweep_option_defaults.items()
             if dest not in ("shard", "dask") and getattr(args, dest) != default]
    if given:
        raise InputError(f"with FILE the file alone describes the sweep: put {', '.join(given)} in {args.file} instead")
    config = batch.load_config(args.file)
    shard = batch.parse_shard(args.shard) if args.shard is not None else None
    plots = None if not config.plots or shard else claim(config.plots, study_plot_names(config.variants),
                                                         args.overwrite, "plots")
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
        plots = claim(args.plots, study_plot_names(batch.load_header_variants(args.shards)), args.overwrite)
    result = batch.merge(args.out, args.shards)
    written = [] if plots is None else [str(p) for p in write_plots(result, plots, args.overwrite)]
    _print_study(result, args.out, written, plots, time.perf_counter() - start, args.json)
    return 0


def _check(args: argparse.Namespace) -> int:
    alpha = checks.real("--alpha", args.alpha, 0.0, 1.0, low_open=True, high_open=True)
    result = read_study(args.file)
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
    print(f"{tests} tests of Monte Carlo against exact ({len(comparisons)} means, {tests - len(comparisons)} "
          f"laws), Bonferroni |z| <= {threshold:.2f} and p >= {p_limit:.2g} (family-wise alpha {alpha:g}): "
          f"{'all agree' if ok else 'DISAGREEMENT beyond chance'}; "
          f"{disagreements} of {len(result.fits)} fits disagree with the stated bound")
    return 0 if ok else 1
