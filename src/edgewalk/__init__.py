"""edgewalk: Monte Carlo and exact hitting times of edge-conditioned policies on graphs.

Layers, each importing only those before it:
errors, checks -> model (graph, alias, policy) -> engine (kernels, result, engine) -> exact ->
planning -> training -> study, batch planning -> io -> batch runner -> analysis, plots -> cli.

``plan`` checks a run and ``engine.execute`` runs it; ``simulate`` does both (one target);
``targets.simulate`` runs over a target distribution (by default uniform over the leaves).
Graphs: ``path_star``, ``heterogeneous``, the families ``star``, ``tree``, ``grid``, ``regular``,
and any multigraph through ``from_edges`` or ``from_networkx``.
``expected_hitting_time`` and ``hitting_time_pmf`` give exact values.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgewalk")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from .analysis import load, load_histograms
from .engine import RunPlan, execute
from .errors import CorruptFileError, CostError, InputError, SizeError
from .exact import expected_hitting_time, hitting_time_cdf, hitting_time_pmf
from . import targets
from .graph import (Graph, PathStar, family, from_description, from_edges, from_networkx, grid,
                    heterogeneous, path_star, regular, star, tree)
from .io import read, read_hist, write
from .planning import gradient_statistics, plan, simulate
from .policy import Policy, distilled, from_logits, from_table, parametric, pretrained, rlvr, sft
from .result import HittingTimes

__all__ = [
    "CorruptFileError", "CostError", "Graph", "HittingTimes", "InputError", "PathStar", "Policy",
    "RunPlan", "SizeError", "__version__", "distilled", "execute", "expected_hitting_time", "family",
    "from_description", "from_edges", "from_logits", "from_networkx", "from_table", "gradient_statistics",
    "grid", "heterogeneous", "hitting_time_cdf", "regular", "star", "targets", "tree",
    "hitting_time_pmf", "load", "load_histograms", "parametric", "path_star", "plan",
    "pretrained", "read", "read_hist", "rlvr", "sft", "simulate", "write",
]
