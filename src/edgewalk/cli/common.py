"""What the commands share: the graph options, strict JSON, progress bars and output checks."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError
from ..graph import (FAMILIES, Graph, PathStar, family_size, grid, heterogeneous, in_words, path_star, regular,
                     star, symmetric_size, tree)
from ..policy import Policy, named


# Each family's size options (argparse dest) and their defaults; -K/--depth serves the path-star
# (K) and the tree (h), --degree the star and the regular graph.
FAMILY_OPTIONS = {
    "path-star": {"branches": 15, "depth": 15, "lanes": 5},
    "star": {"degree": 5, "length": 5},
    "tree": {"branching": 2, "depth": 4},
    "grid": {"rows": 10, "columns": 10},
    "regular": {"nodes": 100, "degree": 3, "graph_seed": 0},
}
FAMILY_ONLY = {"depths": "path-star", "diamond_lanes": "path-star"}


def add_graph_options(parser: argparse.ArgumentParser, target: bool = True) -> None:
    graph = parser.add_argument_group("graph (docs/model.md sections 1 and 7)")
    graph.add_argument("--family", choices=FAMILIES, default=None,
                       help="a built-in family (default path-star); each has its size options below")
    graph.add_argument("-W", "--branches", type=int, default=None, help="path-star: branches W >= 1 (default 15)")
    graph.add_argument("-K", "--depth", type=int, default=None,
                       help="path-star: diamonds per branch K >= 1 (default 15); tree: depth h (default 4)")
    graph.add_argument("-L", "--lanes", type=int, default=None, help="path-star: parallel edges per diamond L >= 1 (default 5)")
    graph.add_argument(
        "--depths", type=str, default=None, metavar="K1,K2,...",
        help="heterogeneous path-star: comma-separated depth per branch (replaces -W and -K), e.g. 6,5,4,3,3",
    )
    graph.add_argument("--diamond-lanes", type=str, default=None, metavar="L11,L12;L21,...",
                       help="heterogeneous path-star: lanes per diamond, branches separated by ';' (with "
                       "--depths, replacing -L), e.g. 5,4;3,3")
    graph.add_argument("--degree", type=int, default=None, help="star: arms d (default 5); regular: degree d (default 3)")
    graph.add_argument("--length", type=int, default=None, help="star: arm length l (default 5)")
    graph.add_argument("--branching", type=int, default=None, help="tree: children per inner node b (default 2)")
    graph.add_argument("--rows", type=int, default=None, help="grid: rows m (default 10)")
    graph.add_argument("--columns", type=int, default=None, help="grid: columns n (default 10)")
    graph.add_argument("--nodes", type=int, default=None, help="regular: nodes n (default 100)")
    graph.add_argument("--graph-seed", type=int, default=None, help="regular: the graph's seed (default 0)")
    graph.add_argument("--graph", default=None, metavar="FILE",
                       help="any undirected multigraph: an edge list (two node names per line, '#' comments; "
                       "a repeated pair is a parallel edge) or GraphML (.graphml, needs networkx); with --root")
    graph.add_argument("--root", default=None, metavar="NODE", help="--graph: the node the start state enters")
    if target:
        parser.add_argument(
            "--target", default=None, metavar="NODE",
            help="'leaves' (default: uniform over the graph's leaves, what training optimises) or the node "
            "whose entry ends a rollout, by name: t1..tW, f or u(i,j,l|r) on the path-star ('node:NAME' for a "
            "node called leaves)",
        )


BIG_CHAIN = 2_000_000  # transitions from which building and solving take seconds: say so


@contextlib.contextmanager
def stage(label: str, shown: bool) -> Iterator[None]:
    """Tell a person at a terminal what a long set-up step is doing and how long it took."""
    shown = shown and sys.stderr.isatty()
    began = time.perf_counter()
    if shown:
        print(f"edgewalk: {label} ...", file=sys.stderr, flush=True)
    yield
    if shown:
        print(f"edgewalk: {label}: done in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)


def build_graph(args: argparse.Namespace) -> Graph:
    """The graph the options describe (--graph FILE, or a --family with its size options), each
    option checked to belong to it."""
    given = {dest for dest in (*{d for o in FAMILY_OPTIONS.values() for d in o}, *FAMILY_ONLY)
             if getattr(args, dest, None) is not None}
    if args.graph is not None:
        if args.family is not None or given:
            extra = ["--family"] if args.family is not None else []
            extra += [_option(dest) for dest in sorted(given)]
            raise InputError(f"--graph: a graph file replaces {', '.join(extra)}; give one or the other")
        if args.root is None:
            raise InputError("--root: give the node of --graph FILE the start state enters")
        from ..io.graphs import read_graph

        return read_graph(args.graph, args.root)
    if args.root is not None:
        raise InputError("--root: only with --graph FILE (a family has its own root)")
    name = args.family or "path-star"
    allowed = set(FAMILY_OPTIONS[name]) | {d for d, f in FAMILY_ONLY.items() if f == name}
    wrong = sorted(given - allowed)
    if wrong:
        raise InputError(f"{_option(wrong[0])}: not an option of --family {name} (its options: "
                         f"{', '.join(_option(d) for d in sorted(allowed))})")
    value = {dest: default if getattr(args, dest) is None else getattr(args, dest)
             for dest, default in FAMILY_OPTIONS[name].items()}
    if name == "path-star":
        return _path_star(args, value)
    size = {"star": ("degree", "length"), "tree": ("branching", "depth"), "grid": ("rows", "columns"),
            "regular": ("nodes", "degree")}[name]
    if all(isinstance(value[d], int) and value[d] >= 1 for d in size) and (
            family_size(name, *(value[d] for d in size))[1] >= BIG_CHAIN):
        with stage(f"building the {name} graph", True):
            return _family(name, value)
    return _family(name, value)


def graph_options_given(args: argparse.Namespace) -> list[str]:
    """The graph options the user typed (as typed), for commands whose input file brings its
    own graph and must refuse them rather than drop them."""
    dests = ["family", *dict.fromkeys(d for o in FAMILY_OPTIONS.values() for d in o), *FAMILY_ONLY, "graph", "root"]
    return [_option(d) for d in dests if getattr(args, d, None) is not None]


def refuse_graph_options(args: argparse.Namespace, source: str, brought: Graph, otherwise: str = "",
                         described: Graph | None = None) -> None:
    """InputError if graph options were given beside ``source``, an input that brings its graph
    ``brought``, and describe another graph (``described``, the options' graph if the command
    built it already; ``otherwise``: what else the user may do)."""
    given = graph_options_given(args)
    if given and (described or build_graph(args)).describe() != brought.describe():
        raise InputError(f"{source}: the file brings its own graph ({in_words(brought.describe())}), not the one "
                         f"{', '.join(given)} describe; drop them{otherwise}")


def _family(name: str, value: dict) -> Graph:
    if name == "star":
        return star(value["degree"], value["length"])
    if name == "tree":
        return tree(value["branching"], value["depth"])
    if name == "grid":
        return grid(value["rows"], value["columns"])
    return regular(value["nodes"], value["degree"], value["graph_seed"])


def _option(dest: str) -> str:
    return {"branches": "-W/--branches", "depth": "-K/--depth", "lanes": "-L/--lanes"}.get(
        dest, "--" + dest.replace("_", "-"))


def _path_star(args: argparse.Namespace, value: dict) -> Graph:
    if args.depths is not None and (args.branches is not None or args.depth is not None):
        raise InputError("--depths: it replaces -W/--branches and -K/--depth (one depth per branch); "
                         "give one or the other")
    if args.depths is None:
        if args.diamond_lanes is not None:
            raise InputError("--diamond-lanes: give --depths too (one depth per branch)")
        big = checks_size(value["branches"], value["depth"], value["lanes"]) >= BIG_CHAIN
        with stage(f"building the graph W = {value['branches']}, K = {value['depth']}, L = {value['lanes']}", big):
            return path_star(value["branches"], value["depth"], value["lanes"])
    try:
        depths = [int(k) for k in args.depths.split(",")]
    except ValueError:
        raise InputError(f"--depths must be comma-separated whole numbers >= 1, got {args.depths!r}") from None
    if args.diamond_lanes is None:
        return heterogeneous(depths, value["lanes"])
    try:
        lanes = [[int(n) for n in branch.split(",")] for branch in args.diamond_lanes.split(";")]
    except ValueError:
        raise InputError("--diamond-lanes must be whole numbers, commas between the diamonds of a branch and "
                         f"';' between branches (e.g. 5,4;3,3), got {args.diamond_lanes!r}") from None
    if args.lanes is not None:
        raise InputError("--diamond-lanes: it replaces -L/--lanes; give one or the other")
    # checked here, so that the message names --diamond-lanes (the library's names lanes[i][j])
    if any(k < 1 for k in depths):
        return heterogeneous(depths, lanes)  # its message names --depths
    shape = [len(branch) for branch in lanes]
    if shape != depths:
        example = ";".join(",".join(["2"] * k) for k in depths)
        plural = lambda n, word: f"{n} {word}{'' if n == 1 else 'es' if word.endswith('h') else 's'}"  # noqa: E731
        of = " and ".join(map(str, depths))
        raise InputError(f"--diamond-lanes must give one lane count per diamond: --depths {args.depths} has "
                         f"{plural(len(depths), 'branch')} of {of} diamonds, so {plural(len(depths), 'group')} "
                         f"of {of} counts, ';' between groups and ',' within (e.g. {example}); got "
                         f"{args.diamond_lanes!r} ({plural(len(shape), 'group')} of {' and '.join(map(str, shape))})")
    for i, branch in enumerate(lanes):
        for j, n in enumerate(branch):
            if n < 1:
                raise InputError(f"--diamond-lanes: lane counts must be whole numbers >= 1, got {n} "
                                 f"(branch {i + 1}, diamond {j + 1})")
    return heterogeneous(depths, lanes)


def checks_size(branches, depth, lanes) -> int:
    """The transitions of the symmetric graph (0 for parameters the builder will refuse)."""
    if not all(isinstance(v, int) and v >= 1 for v in (branches, depth, lanes)):
        return 0
    return symmetric_size(branches, depth, lanes)[1]


def dumps(value: object) -> str:
    """Strict JSON: numbers that are not finite (nan, such as the exact mean under the search
    wrapper, or inf) become null; the summaries carry a note saying why."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), allow_nan=False)


@contextlib.contextmanager
def training_progress(label: str, enabled: bool | None) -> Iterator[None]:
    """A tqdm bar over the iterations of the training loops run in the block (on stderr, when it
    is a terminal unless ``enabled`` says otherwise)."""
    from tqdm import tqdm

    from ..training import loop

    with tqdm(desc=label, unit="it", file=sys.stderr, leave=False,
              disable=None if enabled is None else not enabled) as bar:
        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        with loop.reporting(update):
            yield


def iteration_bar(total: int, label: str, enabled: bool | None):
    """A tqdm bar over training iterations on stderr (default: shown when stderr is a terminal)
    and the ``progress(iteration, hitting_time, phase="")`` callback that advances it (a phase,
    what the next iteration is doing, is shown at once)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="it", disable=None if enabled is None else not enabled,
               file=sys.stderr, leave=False)

    def update(iteration: int, hitting_time: float, phase: str = "") -> None:
        bar.update(iteration - bar.n)
        bar.set_postfix_str(f"E[T] {hitting_time:.4g}" + (f", {phase}" if phase else ""), refresh=bool(phase))

    return bar, update


def progress_bars(enabled: bool | None):
    """What the study's sweeps take as ``progress``: ``progress(label, total)`` opens a
    :func:`progress_bar` and yields its update callback."""
    @contextlib.contextmanager
    def progress(label: str, total: int) -> Iterator:
        bar, update = progress_bar(total, label, enabled)
        with bar:
            yield update
    return progress


def progress_bar(total: int, label: str, enabled: bool | None):
    """A tqdm bar over rollouts on stderr (default: shown when stderr is a terminal) and the
    ``progress(done, steps)`` callback that advances it."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="rollout", unit_scale=True,
               disable=None if enabled is None else not enabled, file=sys.stderr, leave=False)

    def update(done: int, steps: int) -> None:
        bar.update(done - bar.n)
        if bar.format_dict["elapsed"] > 0:
            bar.set_postfix_str(f"{steps / bar.format_dict['elapsed']:.3g} steps/s", refresh=False)

    return bar, update


def plots_beside(path: str | Path) -> Path:
    """``<file without its suffix>-plots`` beside a file (edgewalk-study.h5 -> edgewalk-study-plots):
    where a command's PNGs go unless --plots names another directory."""
    path = Path(path)
    return path.with_name(f"{path.stem if path.suffix else path.name}-plots")


def named_policy(graph: Graph, option: str, name: str) -> Policy:
    """The named converged policy ``name`` of ``option`` (--policy, --init) on ``graph``; only the
    pretrained one exists off the path-star."""
    if name != "pretrained" and not isinstance(graph, PathStar):
        raise InputError(f"{option} {name}: the converged {name} policy is defined on the path-star; on another "
                         "graph give pretrained, or train a policy (edgewalk train) and give its training file")
    return named(graph, name)
