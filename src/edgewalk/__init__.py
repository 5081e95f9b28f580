"""edgewalk: Monte Carlo and exact hitting times of edge-conditioned policies on path-star graphs.

Layers: graph (``path_star``, ``heterogeneous``) -> policy (``pretrained``, ``sft``, ``rlvr``,
``parametric``, ``from_table``) -> engine (``simulate``) -> result (``HittingTimes``) -> file
(``write``, ``read``). ``expected_hitting_time`` and ``hitting_time_pmf`` give exact values.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgewalk")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from .analysis import load, load_histograms
from .engine import simulate
from .exact import expected_hitting_time, hitting_time_cdf, hitting_time_pmf
from .graph import Graph, heterogeneous, path_star
from .io import read, read_hist, write
from .policy import Policy, from_table, parametric, pretrained, rlvr, sft
from .result import HittingTimes

__all__ = [
    "Graph", "HittingTimes", "Policy", "__version__", "expected_hitting_time", "from_table",
    "heterogeneous", "hitting_time_cdf", "hitting_time_pmf", "load", "load_histograms",
    "parametric", "path_star",
    "pretrained", "read", "read_hist", "rlvr", "sft", "simulate", "write",
]
