"""``edgewalk plot FILE``: the figures of any file edgewalk writes."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from .. import io, plots
from .common import check_plot_directory, dumps


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
    command.set_defaults(handler=_plot)


def default_plot_directory(path: str | os.PathLike[str]) -> Path:
    """``<file without its suffix>-plots`` beside the file (edgewalk-study.h5 ->
    edgewalk-study-plots: the directory ``edgewalk sweep`` and ``edgewalk train`` use)."""
    path = Path(path)
    return path.with_name(f"{path.stem if path.suffix else path.name}-plots")


def plot(path: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Draw the figures of any edgewalk file into ``directory`` (created if missing; its parent
    must exist; default :func:`default_plot_directory`) and return the paths written."""
    kind = io.file_kind(path)
    directory = check_plot_directory(default_plot_directory(path) if directory is None else directory, "--out")
    if kind == "study":
        return plots.write_plots(io.read_study(path), directory)
    if kind == "training":
        optimum = io.read_training_summary(path).get("optimum")
        optimum = float(optimum) if isinstance(optimum, (int, float)) and math.isfinite(optimum) else None
        return plots.write_training_plots(io.read_training(path), directory, optimum)
    return plots.write_run_plots(io.read(path), directory)


def _plot(args: argparse.Namespace) -> int:
    kind = io.file_kind(args.file)
    directory = default_plot_directory(args.file) if args.out is None else Path(args.out)
    written = [str(p) for p in plot(args.file, directory)]
    if args.json:
        print(dumps({"file": str(args.file), "kind": kind, "out": str(directory), "plots": written}))
        return 0
    print("\n".join(written))
    return 0
