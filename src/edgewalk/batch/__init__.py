"""Batch runs of the scaling study: a sweep described by a TOML file, cut into units of work that
shards (SLURM job arrays), resumed runs and Dask workers compute, merged bit for bit
(docs/cluster.md).

- :mod:`.config`: the sweep file and its checks;
- :mod:`.units`: cutting a sweep into rollout blocks and adding them up;
- :mod:`.runner`: running a sweep file (one process, a shard, Dask) and merging shards.
"""

from .config import (SweepConfig, checkpoint_path, config_from_mapping, load_config, parse_shard,
                     shard_path)
from .units import BUDGET_THREADS, Unit, plan
from .runner import Outcome, load_header_variants, local_cluster_shape, merge, run_sweep

__all__ = ["BUDGET_THREADS", "Outcome", "SweepConfig", "Unit", "checkpoint_path",
           "config_from_mapping", "load_config", "load_header_variants", "local_cluster_shape", "merge", "parse_shard",
           "plan", "run_sweep", "shard_path"]
