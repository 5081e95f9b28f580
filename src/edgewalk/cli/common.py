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
from ..graph import Graph, heterogeneous, path_star, symmetric_size


def add_graph_options(parser: argparse.ArgumentParser, target: bool = True) -> None:
    graph = parser.add_argument_group("graph (docs/model.md section 1)")
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
    if args.depths is None:
        big = checks_size(args.branches, args.depth, args.lanes) >= BIG_CHAIN
        with stage(f"building the graph W = {args.branches}, K = {args.depth}, L = {args.lanes}", big):
            return path_star(args.branches, args.depth, args.lanes)
    try:
        depths = [int(k) for k in args.depths.split(",")]
    except ValueError:
        raise InputError(f"--depths must be comma-separated whole numbers >= 1, got {args.depths!r}") from None
    return heterogeneous(depths, args.lanes)


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
