"""What the commands share: the graph options, strict JSON, progress bars and output checks."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..errors import InputError
from ..graph import Graph, heterogeneous, path_star


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


def build_graph(args: argparse.Namespace) -> Graph:
    if args.depths is None:
        return path_star(args.branches, args.depth, args.lanes)
    try:
        depths = [int(k) for k in args.depths.split(",")]
    except ValueError:
        raise InputError(f"--depths must be comma-separated whole numbers >= 1, got {args.depths!r}") from None
    return heterogeneous(depths, args.lanes)


def dumps(value: object) -> str:
    """Strict JSON: values that are undefined (nan, such as the exact mean under the search
    wrapper) become null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else str(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), allow_nan=False)


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


def check_plot_directory(directory: str | Path, option: str = "--plots") -> Path:
    """A directory that exists or can be created (its parent exists); InputError otherwise."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{option} {directory}: exists and is not a directory")
    if not directory.parent.is_dir():
        raise InputError(f"{option} {directory}: directory {directory.parent} does not exist")
    return directory


def iteration_bar(total: int, label: str, enabled: bool | None):
    """A tqdm bar over training iterations on stderr (default: shown when stderr is a terminal)
    and the ``progress(iteration, hitting_time)`` callback that advances it."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="it", disable=None if enabled is None else not enabled,
               file=sys.stderr, leave=False)

    def update(iteration: int, hitting_time: float) -> None:
        bar.update(iteration - bar.n)
        bar.set_postfix_str(f"E[T] {hitting_time:.4g}", refresh=False)

    return bar, update
