"""``edgewalk train``, ``edgewalk signs`` and ``edgewalk supervision``: post-training of the
policies (MODEL.md section 5) from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

import numpy as np

from . import training
from .engine import BACKENDS
from .io import check_writable, read_training, write_training

METHODS = ("sft", "rlvr", "rlvr-mc", "ppo", "distill")
# Per method: default learning rate and iterations (the paper's lr = 0.01 for RLVR; SFT and
# distillation descend a cross-entropy that tolerates large steps; PPO uses Adam).
DEFAULTS = {
    "sft": (100.0, 500), "rlvr": (0.01, 1000), "rlvr-mc": (0.01, 200), "ppo": (0.05, 300),
    "distill": (100.0, 500),
}

TRAIN_DESCRIPTION = """\
Train a policy from the pretrained (uniform) one and write its whole history (exact hitting time
per iteration with the leaves as targets, a, b, c, d per depth, final logits) to HDF5, with PNG
plots. The trained policy can then be simulated: edgewalk run --policy-file PATH.

  sft      gradient descent on the exact cross-entropy of golden shortest paths
           (--supervise-backward P: a random fraction P of backward states is also supervised)
  rlvr     sign gradient ascent with the exact population policy gradient (beta = 1)
  rlvr-mc  the same with Monte Carlo gradients from --rollouts rollouts per iteration
  ppo      PPO, clipped surrogate, horizon twice the current hitting time, beta = 3e-4
  distill  cross-entropy on --rollouts traces of a teacher: --teacher FILE (a training file),
           or an RLVR policy trained exactly for --teacher-iterations first
"""


def add_training_commands(commands, add_graph_options: Callable[..., None], json_dumps: Callable[[object], str]) -> None:
    train = commands.add_parser("train", help="post-train a policy (sft, rlvr, rlvr-mc, ppo, distill)",
                                description=TRAIN_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--method", choices=METHODS, required=True, help="training method")
    add_graph_options(train, target=False)
    train.add_argument("--lr", type=float, default=None,
                       help="learning rate (default: sft 100, rlvr 0.01, rlvr-mc 0.01, ppo 0.05, distill 100)")
    train.add_argument("--iterations", type=int, default=None,
                       help="iterations (default: sft 500, rlvr 1000, rlvr-mc 200, ppo 300, distill 500)")
    train.add_argument("--rollouts", "-N", type=int, default=20_000,
                       help="rollouts per iteration (rlvr-mc, ppo) or traces (distill) (default 20000)")
    train.add_argument("--beta", type=float, default=None, help="cost per step (default 1; ppo 3e-4)")
    train.add_argument("--parametrisation", choices=("tabular", "tied"), default="tabular",
                       help="one logit per transition, or per (kind, depth) shared by branches and lanes "
                       "(sft, rlvr, rlvr-mc, distill; default tabular)")
    train.add_argument("--supervise-backward", type=float, default=0.0, metavar="P",
                       help="sft: fraction of backward states also supervised toward backtracking (default 0)")
    train.add_argument("--teacher", default=None, metavar="FILE", help="distill: the teacher's training file")
    train.add_argument("--teacher-iterations", type=int, default=1000,
                       help="distill without --teacher: exact RLVR iterations for the teacher (default 1000)")
    train.add_argument("--record-every", type=int, default=1, help="keep every n-th iteration in the history (default 1)")
    train.add_argument("--seed", type=int, default=0, help="seed in [0, 2**64 - 1] (default 0)")
    train.add_argument("--backend", choices=BACKENDS, default="numba", help="simulation kernel (default numba)")
    train.add_argument("--threads", type=int, default=None, help="threads (default: all cores this process may use)")
    train.add_argument("--out", default="edgewalk-training.h5", metavar="PATH",
                       help="HDF5 output (default edgewalk-training.h5)")
    train.add_argument("--plots", default="edgewalk-training-plots", metavar="DIR",
                       help="directory for the PNG plots (default edgewalk-training-plots)")
    train.add_argument("--no-plots", action="store_true", help="write no plots")
    train.add_argument("--json", action="store_true",
                       help="print one JSON object: method, iterations, final_hitting_time, optimum, "
                       "first_iteration_within_1pct (of the exact RLVR optimum), seconds_per_iteration, out")
    train.set_defaults(handler=lambda args: _train(args, json_dumps))

    signs = commands.add_parser(
        "signs", help="initial gradient signs of b_j and d_j (the 'confused middle')",
        description="The sign of the exact RLVR gradient of every b_j and d_j at the pretrained "
        "policy: where it is negative, early RLVR training makes backtracking less likely at "
        "that depth (the paper's confused middle).")
    add_graph_options(signs, target=False)
    signs.add_argument("--json", action="store_true", help="print one JSON object")
    signs.set_defaults(handler=lambda args: _signs(args, json_dumps))

    supervision = commands.add_parser(
        "supervision", help="SFT with a fraction p of backward states supervised (paper Fig. 5 right)",
        description="Final exact hitting time of SFT when a random fraction p of backward states "
        "is also supervised toward backtracking, averaged over draws.")
    supervision.add_argument("-W", "--branches", type=int, default=6, help="W (default 6)")
    supervision.add_argument("-K", "--depth", type=int, default=6, help="K (default 6)")
    supervision.add_argument("-L", "--lanes", type=int, default=5, help="L (default 5)")
    supervision.add_argument("--p", default="0,0.25,0.5,0.75,1", help="fractions (default 0,0.25,0.5,0.75,1)")
    supervision.add_argument("--draws", type=int, default=5, help="draws per fraction (default 5)")
    supervision.add_argument("--iterations", type=int, default=500, help="SFT steps (default 500)")
    supervision.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    supervision.add_argument("--json", action="store_true", help="print one JSON object")
    supervision.set_defaults(handler=lambda args: _supervision(args, json_dumps))


def _check(name: str, value: float, low: float, high: float | None = None) -> None:
    if not (value >= low and (high is None or value <= high)):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")


def _train(args: argparse.Namespace, json_dumps: Callable[[object], str]) -> int:
    from .cli import _build_graph

    graph = _build_graph(args)
    default_lr, default_iterations = DEFAULTS[args.method]
    lr = default_lr if args.lr is None else args.lr
    iterations = default_iterations if args.iterations is None else args.iterations
    beta = (3e-4 if args.method == "ppo" else 1.0) if args.beta is None else args.beta
    _check("--lr", lr, np.nextafter(0, 1))
    _check("--iterations", iterations, 1)
    _check("--rollouts", args.rollouts, 1)
    _check("--beta", beta, 0.0)
    _check("--supervise-backward", args.supervise_backward, 0.0, 1.0)
    _check("--record-every", args.record_every, 1)
    _check("--seed", args.seed, 0, 2**64 - 1)
    if args.method == "ppo" and args.parametrisation != "tabular":
        raise ValueError("--parametrisation: ppo trains the tabular policy only")
    teacher = read_training(args.teacher).policy if args.teacher else None
    if teacher is not None and teacher.graph.describe() != graph.describe():
        raise ValueError(f"--teacher {args.teacher}: trained on {teacher.graph.describe()}, not {graph.describe()}")
    check_writable(args.out)

    common = {"parametrisation": args.parametrisation, "record_every": args.record_every}
    mc = {"rollouts": args.rollouts, "seed": args.seed, "backend": args.backend, "threads": args.threads}
    if args.method == "sft":
        supervised = (training.backward_supervision(graph, args.supervise_backward, np.random.default_rng(args.seed))
                      if args.supervise_backward > 0 else None)
        run = training.train_sft(graph, iterations, lr, supervised, **common)
    elif args.method == "rlvr":
        run = training.train_rlvr(graph, iterations, lr, beta, **common)
    elif args.method == "rlvr-mc":
        run = training.train_rlvr_mc(graph, iterations, lr, beta, **mc, **common)
    elif args.method == "ppo":
        run = training.train_ppo(graph, iterations, lr, beta, record_every=args.record_every, **mc)
    else:
        if teacher is None:
            print(f"training the teacher: exact RLVR, {args.teacher_iterations} iterations", file=sys.stderr)
            teacher = training.train_rlvr(graph, args.teacher_iterations, record_every=args.teacher_iterations).policy
        run = training.train_distill(graph, teacher, iterations, lr, **mc, **common)

    optimum = training.rlvr_optimum(graph, args.parametrisation)
    first = run.first_within(optimum, 0.01)
    summary = {"method": run.method, "graph": run.graph, "iterations": iterations,
               "final_hitting_time": float(run.hitting_time[-1]), "optimum": optimum,
               "first_iteration_within_1pct": first,
               "seconds_per_iteration": run.seconds_per_iteration, "out": args.out}
    write_training(args.out, run, **{k: v for k, v in summary.items() if k != "out"})
    plots = [] if args.no_plots else [str(p) for p in _plots(run, args.plots, optimum)]
    summary["plots"] = plots
    if args.json:
        print(json_dumps(summary))
        return 0
    print(f"{run.method} on {run.graph}: E[T] {run.hitting_time[0]:.6g} -> {run.hitting_time[-1]:.6g} "
          f"after {iterations} iterations ({run.seconds_per_iteration * 1e3:.3g} ms each); "
          f"RLVR optimum {optimum:.6g}, first within 1% at iteration {first}")
    print(f"history written to {args.out}" + (f", plots to {args.plots}" if plots else ""))
    return 0


def _plots(run, directory: str, optimum: float):
    from .plots import write_training_plots

    return write_training_plots(run, directory, optimum)


def _signs(args: argparse.Namespace, json_dumps: Callable[[object], str]) -> int:
    from .cli import _build_graph

    signs = training.initial_gradient_signs(_build_graph(args))
    table = signs.table()
    if args.json:
        print(json_dumps({"graph": _build_graph(args).describe(), "depths": table,
                          "confused_depths": list(signs.confused_depths)}))
        return 0
    print(f"{'depth':>5} {'dJ/db':>12} {'sign':>5} {'dJ/dd':>12} {'sign':>5}")
    for row in table:
        print(f"{row['depth']:>5} {row['db']:>12.4g} {row['sign_b']:>5} {row['dd']:>12.4g} {row['sign_d']:>5}")
    confused = list(signs.confused_depths)
    print(f"confused middle (a negative sign) at depths {confused}" if confused else "no negative sign: no confused middle")
    return 0


def _supervision(args: argparse.Namespace, json_dumps: Callable[[object], str]) -> int:
    try:
        fractions = [float(p) for p in args.p.split(",")]
    except ValueError:
        raise ValueError(f"--p must be comma-separated fractions in [0, 1], got {args.p!r}") from None
    for p in fractions:
        _check("--p", p, 0.0, 1.0)
    _check("--draws", args.draws, 1)
    sweep = training.partial_supervision_sweep(fractions, args.draws, args.branches, args.depth, args.lanes,
                                               args.iterations, seed=args.seed)
    if args.json:
        print(json_dumps({"p": fractions, "mean_hitting_time": sweep.mean.tolist(), "times": sweep.times.tolist()}))
        return 0
    for p, mean in zip(fractions, sweep.mean):
        print(f"p = {p:<5g} mean E[T] = {mean:.6g}")
    return 0
