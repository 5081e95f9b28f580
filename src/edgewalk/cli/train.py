"""``edgewalk train``, ``edgewalk signs`` and ``edgewalk supervision``: post-training of the
policies (docs/model.md section 5) from the command line."""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from .. import checks, kernels, targets as target_sets, training
from ..errors import InputError
from ..graph import PathStar, in_words
from ..io import check_new_output, check_not_an_input, read_training, write_training
from ..policy import pretrained
from ..training import METHODS, PARAMETRISATIONS
from ..training.methods import HORIZON_FACTOR, RFT_INNER_ITERATIONS
from ..plots import claim, training_plot_names
from .common import (add_graph_options, build_graph, dumps, iteration_bar, named_policy, plots_beside,
                     refuse_graph_options, training_progress)


def _defaults(field: str) -> str:
    return ", ".join(f"{name} {getattr(m, field):g}" for name, m in METHODS.items()
                     if getattr(m, field) is not None)


TRAIN_DESCRIPTION = """\
Train a policy from the pretrained (uniform) one and write its whole history (exact hitting time
per iteration with the leaves as targets, a, b, c, d per depth, final logits) to HDF5, with PNG
plots. The trained policy can then be simulated: edgewalk run --policy-file PATH.

""" + "\n".join(f"  {name:<8} {m.summary}" for name, m in METHODS.items()) + """

sft takes --supervise-backward P (a random fraction P of backward states is also supervised)
and --mix-traces SOURCE --mix-fraction EPS (a fraction EPS of the traces comes from SOURCE:
pretrained, or a training FILE whose policy's traces the engine samples); distill takes
--teacher FILE (a training file), or trains an exact RLVR teacher for --teacher-iterations
first; rft keeps the traces that hit within --horizon-factor times the current E[T]. Every
method starts from --init: pretrained (default), random, or a training FILE, so that
pretrained -> SFT -> RLVR is one command after another (the file records the chain).

ppo --model transformer trains a single-layer transformer over the trajectory's edge states
(paper Fig. 7; needs pip install 'edgewalk[transformer]') that starts exactly at a table:
--init rlvr (converged, its default), pretrained or a training file. --window K lets it see the
last K states (default: the whole trajectory); --train-rows trained keeps the rows tabular training
never changes (the fork) at the table's. Defaults for it: lr 0.003, 100 iterations, 4096 rollouts.
"""


# The defaults of options whose argparse default is None, so that _refuse_unused can tell
# whether the user gave them.
UNSET_DEFAULTS = {
    "parametrisation": "tabular",
    "supervise_backward": 0.0,
    "teacher_iterations": METHODS["rlvr"].iterations,
    "detour_rate": 0.1,
    "mix_fraction": 0.0,
    "inner_iterations": RFT_INNER_ITERATIONS,
    "train_rows": "all",
}


def add_commands(commands) -> None:
    train = commands.add_parser("train", help="post-train a policy (" + ", ".join(METHODS) + ")",
                                description=TRAIN_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--method", choices=tuple(METHODS), required=True, help="training method")
    add_graph_options(train)
    train.add_argument("--lr", type=float, default=None, help=f"learning rate, in (0, 1e100] (default: {_defaults('lr')})")
    train.add_argument("--iterations", type=int, default=None,
                       help=f"iterations (default: {_defaults('iterations')})")
    train.add_argument("--rollouts", "-N", type=int, default=None,
                       help=f"rollouts per iteration or traces (default: {_defaults('rollouts')})")
    train.add_argument("--beta", type=float, default=None, help=f"cost per step (default: {_defaults('beta')})")
    train.add_argument("--parametrisation", choices=PARAMETRISATIONS, default=None,
                       help="one logit per transition, or per (kind, depth) shared by branches and lanes "
                       "(sft, rlvr, rlvr-mc, distill; default tabular)")
    train.add_argument("--supervise-backward", type=float, default=None, metavar="P",
                       help="sft: fraction of backward states also supervised toward backtracking "
                       f"(default {UNSET_DEFAULTS['supervise_backward']:g})")
    train.add_argument("--teacher", default=None, metavar="FILE",
                       help="distill: the teacher's training file (it brings its graph: no graph options)")
    train.add_argument("--teacher-iterations", type=int, default=None,
                       help=f"distill without --teacher: exact RLVR iterations for the teacher "
                       f"(default {UNSET_DEFAULTS['teacher_iterations']})")
    train.add_argument("--init", default=None, metavar="FILE|pretrained|random|rlvr",
                       help="where training starts: the pretrained logits, random logits N(0, 1) drawn from "
                       "--seed, or the final logits of a training FILE (it brings its graph: no graph options); "
                       "a transformer starts at pretrained, the converged rlvr table or a FILE's "
                       "(default pretrained; rlvr for --model transformer)")
    train.add_argument("--mix-traces", default=None, metavar="SOURCE",
                       help="sft: mix in golden paths with detours (exact), traces of pretrained, or of the "
                       "policy in a training FILE (both sampled by the engine, --rollouts of them)")
    train.add_argument("--detour-rate", type=float, default=None, metavar="R",
                       help="--mix-traces detours: the chance of a wrong move (undone at once) before each "
                       f"golden move (default {UNSET_DEFAULTS['detour_rate']:g})")
    train.add_argument("--mix-fraction", type=float, default=None, metavar="EPS",
                       help=f"sft with --mix-traces: the fraction of traces from SOURCE (default {UNSET_DEFAULTS['mix_fraction']:g})")
    train.add_argument("--horizon-factor", type=float, default=None, metavar="H",
                       help="rollouts are cut at H times the current E[T] (default: " +
                       ", ".join(f"{m} {h:g}" for m, h in HORIZON_FACTOR.items()) + ")")
    train.add_argument("--inner-iterations", type=int, default=None,
                       help=f"rft: cross-entropy steps per round (default {UNSET_DEFAULTS['inner_iterations']})")
    transformer = train.add_argument_group("ppo --model transformer (docs/model.md section 8)")
    transformer.add_argument("--model", choices=("table", "transformer"), default="table",
                             help="ppo: train the table (default) or a transformer started at a table")
    transformer.add_argument("--window", type=int, default=None, metavar="K",
                             help="the transformer sees the last K states (default: the whole trajectory)")
    transformer.add_argument("--train-rows", choices=("all", "trained"), default=None,
                             help="rows whose moves it may change: all (default) or those tabular training trains")
    transformer.add_argument("--sampler", choices=("native", "jax"), default=None,
                             help="rollouts from the native engine on the tabulated window chain (default with "
                             "--window when the chain fits) or from the JAX sampler")
    train.add_argument("--record-every", type=int, default=1, help="keep every n-th iteration in the history (default 1)")
    train.add_argument("--seed", type=int, default=0, help="seed in [0, 2**64 - 1] (default 0)")
    train.add_argument("--backend", choices=kernels.BACKENDS, default="numba", help="simulation kernel (default numba)")
    train.add_argument("--threads", type=int, default=None, help="threads (default: all cores this process may use)")
    train.add_argument("--out", default="edgewalk-training.h5", metavar="PATH",
                       help="HDF5 output (default edgewalk-training.h5)")
    drawn = train.add_mutually_exclusive_group()
    drawn.add_argument("--plots", default=None, metavar="DIR",
                       help="directory for the PNG plots (default: --out without its suffix + '-plots')")
    drawn.add_argument("--no-plots", action="store_true", help="write no plots")
    train.add_argument("--overwrite", action="store_true",
                       help="replace --out and the plots if they exist (default: refuse)")
    train.add_argument("--json", action="store_true",
                       help="print one JSON object: method, iterations, final_hitting_time, optimum, "
                       "first_iteration_within_1pct (of the exact RLVR optimum), seconds_per_iteration, out")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar on stderr (default: when stderr is a terminal)")
    train.set_defaults(handler=_train)

    signs = commands.add_parser(
        "signs", help="initial gradient signs of b_j and d_j (the 'confused middle')",
        description="The sign of the exact RLVR gradient of every b_j and d_j at the pretrained "
        "policy: where it is negative, early RLVR training makes backtracking less likely at "
        "that depth (the paper's confused middle).")
    add_graph_options(signs, target=False)
    signs.add_argument("--json", action="store_true", help="print one JSON object")
    signs.set_defaults(handler=_signs)

    supervision = commands.add_parser(
        "supervision", help="SFT with a fraction p of backward states supervised (paper Fig. 5 right)",
        description="Final exact hitting time of SFT when a random fraction p of backward states "
        "is also supervised toward backtracking, averaged over draws.")
    supervision.add_argument("-W", "--branches", type=int, default=6, help="W (default 6)")
    supervision.add_argument("-K", "--depth", type=int, default=6, help="K (default 6)")
    supervision.add_argument("-L", "--lanes", type=int, default=5, help="L (default 5)")
    supervision.add_argument("--p", default="0,0.25,0.5,0.75,1", help="fractions (default 0,0.25,0.5,0.75,1)")
    supervision.add_argument("--draws", type=int, default=5, help="draws per fraction (default 5)")
    supervision.add_argument("--iterations", type=int, default=METHODS["sft"].iterations,
                             help=f"SFT steps (default {METHODS['sft'].iterations})")
    supervision.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    supervision.add_argument("--json", action="store_true", help="print one JSON object")
    supervision.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                             help="progress bar on stderr (default: when stderr is a terminal)")
    supervision.set_defaults(handler=_supervision)


# The options each method reads (dest -> methods; "transformer": ppo --model transformer). An
# option given to a method that does not read it is refused, not ignored.
USED_BY = {
    "beta": {"rlvr", "rlvr-mc", "ppo", "transformer"},
    "rollouts": {"pretrain", "sft", "rlvr-mc", "ppo", "distill", "rft", "transformer"},
    "parametrisation": {"pretrain", "sft", "rlvr", "rlvr-mc", "ppo", "distill", "rft"},  # ppo: tabular only
    "supervise_backward": {"sft"},
    "teacher": {"distill"},
    "teacher_iterations": {"distill"},
    "mix_traces": {"sft"},
    "detour_rate": {"sft"},
    "mix_fraction": {"sft"},
    "horizon_factor": {"rlvr-mc", "ppo", "rft"},
    "inner_iterations": {"rft"},
    "target": {"pretrain", "sft", "rlvr", "rlvr-mc", "ppo", "distill", "rft"},
    "train_rows": {"transformer"},
}


def _refuse_unused(args: argparse.Namespace) -> None:
    """InputError naming the first option given that the chosen method does not read."""
    method = "transformer" if args.model == "transformer" else args.method
    for dest, methods in USED_BY.items():
        if getattr(args, dest) is not None and method not in methods:
            takers = ", ".join(sorted(m if m != "transformer" else "ppo --model transformer" for m in methods))
            raise InputError(f"--{dest.replace('_', '-')}: --method {args.method}"
                             f"{' --model transformer' if method == 'transformer' else ''} does not use it "
                             f"(it is for {takers})")
    if args.method == "sft" and args.rollouts is not None and args.mix_traces in (None, "detours"):
        raise InputError("--rollouts: sft samples traces only with --mix-traces pretrained or FILE")
    if args.detour_rate is not None and args.mix_traces != "detours":
        raise InputError("--detour-rate: only with --mix-traces detours")
    if args.teacher is not None and args.teacher_iterations is not None:
        raise InputError("--teacher-iterations: only without --teacher (it trains the exact RLVR teacher)")


def _train(args: argparse.Namespace) -> int:
    _refuse_unused(args)
    for dest, default in UNSET_DEFAULTS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    if args.model == "transformer":
        return _train_transformer(args)
    args.init = args.init or "pretrained"
    if args.init == "rlvr":
        raise InputError("--init rlvr: only a transformer starts at the converged RLVR table; a table method "
                         "starts from pretrained, random or a training FILE")
    for option in ("window", "sampler"):
        if getattr(args, option) is not None:
            raise InputError(f"--{option}: only with --model transformer")
    method = METHODS[args.method]
    try:
        teacher = read_training(args.teacher).policy if args.teacher else None
    except InputError as error:
        raise type(error)(f"--teacher: {error}") from None
    graph = _graph_of(args, teacher)
    lr = checks.learning_rate("--lr", method.lr if args.lr is None else args.lr)
    iterations = checks.iterations("--iterations", method.iterations if args.iterations is None else args.iterations)
    rollouts = checks.whole("--rollouts", (method.rollouts or 1) if args.rollouts is None else args.rollouts, 1)
    beta = checks.real("--beta", (method.beta or 0.0) if args.beta is None else args.beta, 0.0)
    supervise = checks.real("--supervise-backward", args.supervise_backward, 0.0, 1.0)
    checks.whole("--record-every", args.record_every, 1)
    checks.iterations("--teacher-iterations", args.teacher_iterations)
    seed = checks.seed("--seed", args.seed)
    threads = kernels.check_threads(args.threads)
    if args.method == "ppo" and args.parametrisation != "tabular":
        raise InputError("--parametrisation: ppo trains the tabular policy only")
    logits, chain = _start(args.init, graph, seed)
    mix_fraction = checks.real("--mix-fraction", args.mix_fraction, 0.0, 1.0)
    if args.mix_traces is None and mix_fraction > 0:
        raise InputError("--mix-fraction needs --mix-traces SOURCE")
    if args.mix_traces is not None and args.method != "sft":
        raise InputError("--mix-traces: only sft mixes traces")
    mix_policy = None if args.mix_traces in (None, "detours") else (
        pretrained(graph) if args.mix_traces == "pretrained" else _policy_of(args.mix_traces, graph, "--mix-traces").policy)
    detour_rate = checks.real("--detour-rate", args.detour_rate, 0.0, 1.0)
    horizon = None if args.horizon_factor is None else checks.real("--horizon-factor", args.horizon_factor, 0.0, low_open=True)
    _check_outputs(args, training_plot_names(args.method))

    chosen = target_sets.resolve(graph, args.target)
    nodes = None if chosen.label == target_sets.LEAVES else list(chosen.nodes)
    start = {"logits": logits, "chain": chain, "targets": nodes}
    common = {"parametrisation": args.parametrisation, "record_every": args.record_every, **start}
    mc = {"rollouts": rollouts, "seed": seed, "backend": args.backend, "threads": threads}
    horizons = {} if horizon is None else {"horizon_factor": horizon}
    with training_progress(args.method, args.progress):
        run = _dispatch(args, graph, iterations, lr, beta, supervise, seed, threads, teacher, mix_policy,
                        mix_fraction, detour_rate, start, common, mc, horizons)
    return _report(args, graph, run, iterations, chosen, nodes)


def _dispatch(args, graph, iterations, lr, beta, supervise, seed, threads, teacher, mix_policy,
              mix_fraction, detour_rate, start, common, mc, horizons):
    """Run the training method the arguments name."""
    if args.method == "pretrain":
        sampled = {} if args.rollouts is None else {**mc}  # without --rollouts: the exact walk counts
        run = training.train_pretrain(graph, iterations, lr, **sampled, **common)
    elif args.method == "sft":
        supervised = (training.backward_supervision(graph, supervise, np.random.default_rng(seed))
                      if supervise > 0 else None)
        mix = {}
        if args.mix_traces == "detours":
            mix = {"mix_traces": training.traces.detours(graph, detour_rate, start["targets"]),
                   "mix_fraction": mix_fraction,
                   "mix_label": f"detours (rate {detour_rate:g})"}
        elif mix_policy is not None:
            counts, _ = training.teacher_traces(graph, mix_policy, args.rollouts or METHODS["distill"].rollouts,
                                                seed, args.backend, threads, start["targets"])
            mix = {"mix_traces": counts, "mix_fraction": mix_fraction, "mix_label": args.mix_traces}
        run = training.train_sft(graph, iterations, lr, supervised, **common, **mix)
    elif args.method == "rlvr":
        run = training.train_rlvr(graph, iterations, lr, beta, **common)
    elif args.method == "rlvr-mc":
        run = training.train_rlvr_mc(graph, iterations, lr, beta, **mc, **common, **horizons)
    elif args.method == "ppo":
        run = training.train_ppo(graph, iterations, lr, beta, record_every=args.record_every, **mc,
                                 **start, **horizons)
    elif args.method == "rft":
        run = training.train_rft(graph, iterations, lr, inner_iterations=checks.iterations(
            "--inner-iterations", args.inner_iterations), **mc, **common, **horizons)
    else:
        if teacher is None:
            print(f"training the teacher: exact RLVR, {args.teacher_iterations} iterations", file=sys.stderr)
            teacher = training.train_rlvr(graph, args.teacher_iterations, record_every=args.teacher_iterations,
                                          targets=start["targets"]).policy
        run = training.train_distill(graph, teacher, iterations, lr, **mc, **common)
    return run


def _report(args, graph, run, iterations: int, chosen, nodes) -> int:
    """Write the training file and plots, print the summary."""
    has_optimum = isinstance(graph, PathStar) and nodes is None
    optimum = training.rlvr_optimum(graph, args.parametrisation) if has_optimum else math.nan
    first = run.first_within(optimum, 0.01) if has_optimum else None
    result = {"method": run.method, "graph": run.graph, "target": chosen.label, "targets": list(chosen.names),
              "iterations": iterations,
              "final_hitting_time": float(run.hitting_time[-1]), "optimum": optimum,
              "first_iteration_within_1pct": first,
              "seconds_per_iteration": run.seconds_per_iteration, "out": args.out}
    write_training(args.out, run, **{k: v for k, v in result.items() if k != "out"})
    plots = []
    if not args.no_plots:
        from ..plots import write_training_plots

        plots = [str(p) for p in write_training_plots(run, args.plots_directory, optimum if has_optimum else None,
                                                      args.overwrite)]
    result["plots"] = plots
    if args.json:
        print(dumps(result))
        return 0
    print(f"{run.method} on {in_words(run.graph)}, target {chosen.describe()}: E[T] {run.hitting_time[0]:.6g} -> "
          f"{run.hitting_time[-1]:.6g} after {iterations} iteration{'' if iterations == 1 else 's'} ({run.seconds_per_iteration * 1e3:.3g} ms each); "
          + ((f"RLVR optimum {optimum:.6g}, " + (f"first within 1% of it at iteration {first}" if first is not None
                                                 else "never within 1% of it")) if has_optimum else
             "no closed-form RLVR optimum on this graph or target"))
    print(f"history written to {args.out}" + (f", plots to {args.plots_directory}" if plots else ""))
    return 0


def _check_outputs(args: argparse.Namespace, plot_names) -> None:
    """Check --out and --plots before any work (neither may be an input file; --out is new
    unless --overwrite), and keep the plots directory (None with --no-plots) in
    ``args.plots_directory``."""
    check_not_an_input(args.out, {"--init": args.init, "--teacher": args.teacher, "--mix-traces": args.mix_traces,
                                  "--graph": args.graph})
    check_new_output(args.out, overwrite=args.overwrite)
    args.plots_directory = None if args.no_plots else claim(
        args.plots or plots_beside(args.out), plot_names, args.overwrite, output=args.out)


def _graph_of(args: argparse.Namespace, teacher):
    """The graph to train on: the teacher's (--teacher FILE) or the starting file's (--init FILE),
    as run --policy-file takes its graph from the file, else the graph options'."""
    if teacher is not None:
        refuse_graph_options(args, f"--teacher {args.teacher}", teacher.graph)
        return teacher.graph
    if args.init not in ("pretrained", "random", "rlvr"):
        graph = _policy_of(args.init, None, "--init").policy.graph
        refuse_graph_options(args, f"--init {args.init}", graph)
        return graph
    return build_graph(args)


def _policy_of(path: str, graph, option: str):
    """The policy in a training file, which must live on ``graph``."""
    try:
        run = read_training(path)
    except InputError as error:
        raise type(error)(f"{option}: {error}") from None
    if graph is not None and run.policy.graph.describe() != graph.describe():
        raise InputError(f"{option} {path}: trained on {in_words(run.policy.graph.describe())}, not on "
                         f"{in_words(graph.describe())}")
    return run


def _start(init: str, graph, seed: int):
    """(logits, chain) where training starts (see --init)."""
    if init == "pretrained":
        return None, []
    if init == "random":
        return np.random.default_rng(seed).normal(0.0, 1.0, graph.n_transitions), ["random"]
    run = _policy_of(init, graph, "--init")
    return run.logits, list(run.settings.get("chain", [run.method]))


def _train_transformer(args: argparse.Namespace) -> int:
    """``edgewalk train --method ppo --model transformer``."""
    if args.method != "ppo":
        raise InputError("--model: a transformer is trained with --method ppo only")
    try:
        from ..transformer import Config
        from ..transformer.ppo import DEFAULT_ITERATIONS, DEFAULT_LR, DEFAULT_ROLLOUTS, train_transformer
    except ImportError as error:
        hint = "" if "pip install" in str(error) else " (pip install 'edgewalk[transformer]')"
        raise InputError(f"--model transformer: {error}{hint}") from None
    args.init = args.init or "rlvr"
    if args.init == "random":
        raise InputError("--init random: a transformer starts at a table: pretrained, rlvr or a training FILE")
    graph = build_graph(args) if args.init in ("pretrained", "rlvr") else _graph_of(args, None)
    lr = checks.learning_rate("--lr", DEFAULT_LR if args.lr is None else args.lr)
    iterations = checks.iterations("--iterations", DEFAULT_ITERATIONS if args.iterations is None else args.iterations)
    rollouts = checks.whole("--rollouts", DEFAULT_ROLLOUTS if args.rollouts is None else args.rollouts, 1)
    beta = checks.real("--beta", METHODS["ppo"].beta if args.beta is None else args.beta, 0.0)
    checks.whole("--record-every", args.record_every, 1)
    seed = checks.seed("--seed", args.seed)
    threads = kernels.check_threads(args.threads)
    config = Config(window=None if args.window is None else checks.whole("--window", args.window, 1), rows=args.train_rows)
    if args.init in ("pretrained", "rlvr"):
        table = named_policy(graph, "--init", args.init)
    else:
        started = _policy_of(args.init, graph, "--init")
        if started.model:
            raise InputError(f"--init {args.init}: a transformer's training file; give a table's")
        table = started.logits
    _check_outputs(args, training_plot_names("ppo", transformer=True))

    bar, update = iteration_bar(iterations, f"ppo transformer window {args.window or 'all'}", args.progress)
    with bar:
        run = train_transformer(graph, table, config, iterations, lr, beta, rollouts=rollouts, seed=seed,
                                sampler=args.sampler, backend=args.backend, threads=threads,
                                record_every=args.record_every, progress=update)
    optimum = training.rlvr_optimum(graph, "tabular")
    references = {k.removeprefix("reference_"): v for k, v in run.settings.items() if k.startswith("reference_")}
    exact = run.metrics["exact"]
    result = {"method": "ppo", "model": "transformer", "graph": run.graph, "window": args.window, "rows": args.train_rows,
              "init": args.init, "iterations": iterations, "initial_hitting_time": float(run.hitting_time[0]),
              "final_hitting_time": float(run.hitting_time[-1]), "final_is_exact": bool(exact[-1]),
              "best_hitting_time": float(run.hitting_time.min()), "optimum": optimum, "references": references,
              "sampler": run.settings["sampler"], "seconds_per_iteration": run.seconds_per_iteration,
              "out": args.out}
    write_training(args.out, run, **{k: v for k, v in result.items() if k != "out"})
    plots = []
    if not args.no_plots:
        from ..plots import write_training_plots

        plots = [str(p) for p in write_training_plots(run, args.plots_directory, optimum, args.overwrite)]
    result["plots"] = plots
    if args.json:
        print(dumps(result))
        return 0
    kind = "exact" if exact[-1] else "Monte Carlo"
    shown = ", ".join(f"{k.replace('_', ' ')} {v:.6g}" for k, v in references.items())
    print(f"ppo transformer (window {args.window or 'whole trajectory'}, rows {args.train_rows}) from {args.init} on "
          f"{in_words(run.graph)}: E[T] {run.hitting_time[0]:.6g} -> {run.hitting_time[-1]:.6g} ({kind}) after {iterations} "
          f"iteration{'' if iterations == 1 else 's'} ({run.seconds_per_iteration:.3g} s each); tabular optimum {optimum:.6g}; {shown}")
    print(f"history written to {args.out}" + (f", plots to {args.plots_directory}" if plots else ""))
    return 0


def _signs(args: argparse.Namespace) -> int:
    graph = build_graph(args)
    signs = training.initial_gradient_signs(graph)
    table = signs.table()
    if args.json:
        print(dumps({"graph": graph.describe(), "depths": table, "confused_depths": list(signs.confused_depths)}))
        return 0
    print(f"{'depth':>5} {'dJ/db':>12} {'sign':>5} {'dJ/dd':>12} {'sign':>5}")
    for row in table:
        print(f"{row['depth']:>5} {row['db']:>12.4g} {row['sign_b']:>5} {row['dd']:>12.4g} {row['sign_d']:>5}")
    confused = list(signs.confused_depths)
    print(f"confused middle (a negative sign) at depths {confused}" if confused else "no negative sign: no confused middle")
    return 0


def _supervision(args: argparse.Namespace) -> int:
    try:
        fractions = [float(p) for p in args.p.split(",")]
    except ValueError:
        raise InputError(f"--p must be comma-separated fractions in [0, 1], got {args.p!r}") from None
    with training_progress("supervision", args.progress):
        sweep = training.partial_supervision_sweep(fractions, args.draws, args.branches, args.depth,
                                                   args.lanes, args.iterations, seed=args.seed)
    if args.json:
        print(dumps({"p": fractions, "mean_hitting_time": sweep.mean.tolist(), "times": sweep.times.tolist()}))
        return 0
    for p, mean in zip(fractions, sweep.mean):
        print(f"p = {p:<5g} mean E[T] = {mean:.6g}")
    return 0
