"""``edgewalk plot FILE``: the figures of any file edgewalk writes."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from .. import io, plots
from ..errors import InputError
from ..study import TopologyStudy
from .common import dumps, plots_beside


def add_commands(commands) -> None:
    command = commands.add_parser(
        "plot", help="draw the figures of a study, run or training file",
        description="Draw PNG figures from a file written by edgewalk: a study file (`edgewalk "
        "sweep`) gives the K plots and histograms of `edgewalk sweep`; a training file (`edgewalk "
        "train`) the hitting time and a, b, c, d against iteration; a run file (`edgewalk run`) one "
        "hitting-time histogram per run. Prints the paths written. In Python: "
        "edgewalk.load(FILE) gives the results as an xarray Dataset.",
    )
    command.add_argument("file", metavar="FILE", help="an HDF5 file written by edgewalk sweep, run or train")
    command.add_argument("--out", default=None, metavar="DIR",
                         help="directory for the PNGs, created if missing (default: FILE without its "
                         "suffix + '-plots', beside FILE)")
    command.add_argument("--json", action="store_true",
                         help="print one JSON object: file, kind, out, plots")
    command.add_argument("--overwrite", action="store_true",
                         help="replace PNGs of the same names in the directory (default: refuse)")
    command.set_defaults(handler=_plot)


def plot(path: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None,
         overwrite: bool = False) -> list[Path]:
    """Draw the figures of any edgewalk file into ``directory`` (created if missing; its parent
    must exist; default :func:`plots_beside` the file) and return the paths written."""
    kind = io.file_kind(path)
    directory = plots_beside(path) if directory is None else Path(directory)
    if kind == "study":
        study = io.read_study(path)
        if isinstance(study, TopologyStudy):
            plots.claim(directory, plots.topology_plot_names(study.parameters["parameters"]), overwrite, "--out")
            return plots.write_topology_plots(study, directory, overwrite)
        plots.claim(directory, plots.study_plot_names(study.parameters["variants"]), overwrite, "--out")
        return plots.write_plots(study, directory, overwrite)
    if kind == "training":
        run = io.read_training(path)
        plots.claim(directory, plots.training_plot_names(run.method, run.parametrisation == "transformer"), overwrite, "--out")
        optimum = io.read_training_summary(path).get("optimum")
        optimum = float(optimum) if isinstance(optimum, (int, float)) and math.isfinite(optimum) else None
        return plots.write_training_plots(run, directory, optimum, overwrite)
    runs = io.read(path)
    if not runs:
        raise InputError(f"FILE {path}: a run file that holds no runs; nothing to plot")
    plots.claim(directory, plots.run_plot_names(runs), overwrite, "--out")
    return plots.write_run_plots(runs, directory, overwrite)


def _plot(args: argparse.Namespace) -> int:
    kind = io.file_kind(args.file)
    directory = plots_beside(args.file) if args.out is None else Path(args.out)
    written = [str(p) for p in plot(args.file, directory, args.overwrite)]
    if args.json:
        print(dumps({"file": str(args.file), "kind": kind, "out": str(directory), "plots": written}))
        return 0
    print("\n".join(written))
    return 0
