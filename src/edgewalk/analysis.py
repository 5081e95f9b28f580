"""Results as xarray Datasets (``edgewalk.load``), histograms as hist objects
(``edgewalk.load_histograms``) and ``edgewalk plot FILE``.

:func:`load` opens any file this package writes and returns one :class:`xarray.Dataset`:

* a **study file** (``edgewalk sweep``): the star grid is three lines through a base point, so a
  dense W x K x L cube would be mostly empty. The cells are therefore one dimension, ``cell``,
  whose index is a pandas MultiIndex over the levels ``W``, ``K`` and ``L``::

      dims        variant (the study's variants, in its order), cell (every star cell, sorted),
                  parameter ("W", "K", "L": the fits)
      coords      variant, cell = MultiIndex(W, K, L), parameter
      (variant, cell)
        mean, stderr             Monte Carlo mean hitting time (total / hits, exact integer
                                 sums) and its standard error; nan where no Monte Carlo ran
        mean_draws, stderr_draws policy draws per hit (differ from steps only under the search
                                 wrapper); nan where no Monte Carlo ran
        exact                    exact expected hitting time; nan under the search wrapper
        z                        (mean - exact) / stderr as ``study.compare_with_exact``
                                 computes it; nan where either is missing
        rollouts, hits, censored Monte Carlo counts (int64; 0 where no Monte Carlo ran)
        estimated_seconds        the plan's cost estimate of the cell's Monte Carlo run (given
                                 for every cell, also those over budget)
        run                      the run's name in the file ("" where no Monte Carlo ran): the
                                 key for ``edgewalk.read`` and ``edgewalk.read_hist``
      (variant)
        bound                    the stated bound, e.g. "Theta(WK)"
      (variant, parameter)       one growth fit per variant and parameter (``study.Fit``):
        fit_kind                 "linear" / "exponential" ("" where there is no fit)
        fit_estimate, fit_ci_low, fit_ci_high, fit_stated_value, fit_r2, fit_exponent,
        fit_exponent_ci_low, fit_exponent_ci_high, fit_stated_exponent   floats (nan: no fit)
        fit_stated, fit_source, fit_held, fit_verdict                    strings
        fit_points               the parameter values fitted, as a JSON list string
        fit_agrees               1.0 agrees, 0.0 disagrees, nan unknown (too few points or no fit)
      attrs                      the study's parameters (grid, base, rollouts, seed, budget, ...);
                                 dict-valued ones (``bounds``) as JSON strings; plus
                                 ``file_kind`` = "study" and ``source`` (the path)

  Selection works by label: ``ds.sel(variant="sft", W=6, K=3, L=5)`` is one cell,
  ``ds.sel(W=6, L=5)`` the K axis through the base (indexed by K), ``ds["mean"].sel(variant="rlvr")``
  every cell of one variant, ``ds.fit_estimate.sel(parameter="K")`` the fits along K.
  Read ``mean`` as ``ds["mean"]``: ``ds.mean`` is xarray's reduction method.
  ``ds.reset_index("cell")`` turns the MultiIndex back into plain W, K, L coordinates (netCDF
  writers need that).

* a **run file** (``edgewalk run``; runs only, no study): dimension ``run`` (the run names) with
  the variables mean, stderr, mean_draws, stderr_draws, exact_mean (nan where unknown), z,
  rollouts, hits, censored, steps, seconds, compile_seconds, max_steps and bin_width, and the
  coordinates policy, search, target, seed, graph (JSON), W, K and L (K and L are 0 on a
  heterogeneous graph, whose depths and lanes are in ``graph``). attrs: file_kind = "runs", source.

* a **training file** (``edgewalk train``): dimension ``iteration`` (the recorded iterations)
  with hitting_time and a, b, c, d over (iteration, depth) (or (iteration, branch, depth) on a
  heterogeneous graph; depth counts from 1), and the final logits over ``entry``. attrs:
  method, parametrisation, graph, settings and summary (JSON strings), optimum (if recorded),
  seconds_per_iteration, file_kind = "training", source.

Histograms. They are *not* put into the Dataset: an object-dtype DataArray of hist objects cannot
be written to netCDF or Zarr, chunked with dask, reduced or compared, and it would make every
numeric operation on the Dataset fragile. :func:`load_histograms` returns them as a dict instead,
keyed by the same labels as the Dataset: ``(variant, W, K, L)`` for a study (so
``load_histograms(p)["sft", 6, 3, 5]``), the run name for a run file. Each is the stored
``hist.Hist`` (Int64 storage, censored rollouts in the overflow bin), exactly as
``edgewalk.read_hist`` reads it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    import hist
    import xarray

__all__ = ["load", "load_histograms", "file_kind", "plot", "add_analysis_commands"]

PARAMETER_NAMES = ("W", "K", "L")


# --- what kind of file -----------------------------------------------------------------------

def file_kind(path: str | os.PathLike[str]) -> str:
    """"study", "training" or "runs" for a file written by ``edgewalk sweep``, ``edgewalk train``
    or ``edgewalk run`` (``edgewalk.write``). Raises ValueError naming the file otherwise."""
    import h5py

    from . import io, study

    path = Path(path)
    if not path.exists():
        raise ValueError(f"FILE {path}: no such file")
    if path.is_dir():
        raise ValueError(f"FILE {path}: is a directory")
    try:
        with h5py.File(path, "r") as f:
            group = f.get("study")
            if isinstance(group, h5py.Group) and group.attrs.get("study_format") == study.STUDY_FORMAT:
                return "study"
            group = f.get("training")
            if isinstance(group, h5py.Group) and group.attrs.get("training_format") == io.TRAINING_FORMAT:
                return "training"
            if f.attrs.get("format") == io.FORMAT and isinstance(f.get("runs"), h5py.Group):
                return "runs"
    except OSError as error:
        raise ValueError(f"FILE {path}: cannot read it as HDF5: {error}") from None
    raise ValueError(f"FILE {path}: not an edgewalk file (written by `edgewalk sweep`, "
                     "`edgewalk run` or `edgewalk train`)")


# --- load ------------------------------------------------------------------------------------

def load(path: str | os.PathLike[str]) -> "xarray.Dataset":
    """The results in ``path`` as an xarray Dataset: a study file indexed by (variant, cell) with
    the cell a MultiIndex over (W, K, L) and the fits over (variant, parameter); a run file
    indexed by run name; a training file indexed by iteration. The module docstring lists every
    variable. Histograms: :func:`load_histograms`."""
    kind = file_kind(path)
    if kind == "study":
        return _load_study(path)
    if kind == "runs":
        return _load_runs(path)
    return _load_training(path)


def _plain_attrs(values: dict) -> dict[str, Any]:
    """Attributes xarray and netCDF can keep: dicts (and lists of dicts) as JSON strings."""
    attrs = {}
    for key, value in values.items():
        if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)):
            value = json.dumps(value)
        elif value is None:
            value = "null"
        elif isinstance(value, bool):
            value = int(value)
        attrs[key] = value
    return attrs


def _load_study(path: str | os.PathLike[str]) -> "xarray.Dataset":
    import pandas as pd
    import xarray as xr

    from . import study as study_module

    study = study_module.read(path)
    variants = list(study.parameters.get("variants") or dict.fromkeys(c.variant for c in study.cells))
    points = sorted({c.point for c in study.cells})
    v_index = {v: i for i, v in enumerate(variants)}
    p_index = {p: i for i, p in enumerate(points)}
    shape = (len(variants), len(points))

    def filled(value, dtype) -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    floats = {name: filled(math.nan, float) for name in
              ("mean", "stderr", "mean_draws", "stderr_draws", "exact", "z", "estimated_seconds")}
    ints = {name: filled(0, np.int64) for name in ("rollouts", "hits", "censored")}
    runs = filled("", object)
    z_by_cell = {(c.variant, c.W, c.K, c.L): c.z for c in study_module.compare_with_exact(study)}
    for cell in study.cells:
        i, j = v_index[cell.variant], p_index[cell.point]
        floats["exact"][i, j] = cell.exact
        floats["estimated_seconds"][i, j] = cell.estimated_seconds
        result = study.mc(cell)
        if result is None:
            continue
        runs[i, j] = cell.run
        for name in ("mean", "stderr", "mean_draws", "stderr_draws"):
            floats[name][i, j] = getattr(result, name)
        floats["z"][i, j] = z_by_cell.get((cell.variant, *cell.point), math.nan)
        ints["rollouts"][i, j] = result.rollouts
        ints["hits"][i, j] = result.hits
        ints["censored"][i, j] = result.censored

    index = pd.MultiIndex.from_tuples(points, names=list(PARAMETER_NAMES))
    coords = xr.Coordinates.from_pandas_multiindex(index, "cell")
    cell_dims = ("variant", "cell")
    data: dict[str, Any] = {name: (cell_dims, values) for name, values in {**floats, **ints}.items()}
    data["run"] = (cell_dims, runs.astype(str))
    bounds = study.parameters.get("bounds", {})
    data["bound"] = ("variant", np.array([bounds.get(v, "") for v in variants], dtype=str))
    data.update(_fit_variables(study.fits, variants))
    for name, description in _STUDY_DESCRIPTIONS.items():
        data[name] = (*data[name], {"description": description})

    ds = xr.Dataset(data, coords=coords).assign_coords(
        variant=("variant", np.array(variants, dtype=str)),
        parameter=("parameter", np.array(PARAMETER_NAMES, dtype=str)))
    ds.attrs.update(_plain_attrs(study.parameters))
    ds.attrs.update(file_kind="study", source=str(path))
    return ds


_FIT_FLOATS = ("estimate", "ci_low", "ci_high", "stated_value", "r2", "exponent", "exponent_ci_low",
               "exponent_ci_high", "stated_exponent")
_FIT_STRINGS = ("kind", "stated", "source", "held", "verdict")

_STUDY_DESCRIPTIONS = {
    "mean": "Monte Carlo mean hitting time (total / hits); nan where no Monte Carlo ran",
    "stderr": "standard error of the Monte Carlo mean",
    "mean_draws": "Monte Carlo mean number of policy draws per hit",
    "stderr_draws": "standard error of mean_draws",
    "exact": "exact expected hitting time; nan under the search wrapper",
    "z": "(mean - exact) / stderr",
    "estimated_seconds": "estimated seconds of the cell's Monte Carlo run",
    "rollouts": "Monte Carlo rollouts (0 where none ran)",
    "hits": "rollouts that hit the target",
    "censored": "rollouts censored at max_steps",
    "run": "name of the Monte Carlo run in the file ('' where none ran)",
    "bound": "the paper's stated bound",
    "fit_agrees": "1 agrees with the stated bound, 0 disagrees, nan unknown",
}


def _fit_variables(fits, variants: list[str]) -> dict[str, Any]:
    shape = (len(variants), len(PARAMETER_NAMES))
    values: dict[str, np.ndarray] = {name: np.full(shape, math.nan) for name in _FIT_FLOATS}
    values.update({name: np.full(shape, "", dtype=object) for name in (*_FIT_STRINGS, "points")})
    values["agrees"] = np.full(shape, math.nan)
    for fit in fits:
        if fit.variant not in variants or fit.parameter not in PARAMETER_NAMES:
            continue
        i, j = variants.index(fit.variant), PARAMETER_NAMES.index(fit.parameter)
        for name in (*_FIT_FLOATS, *_FIT_STRINGS):
            values[name][i, j] = getattr(fit, name)
        values["points"][i, j] = json.dumps([int(v) for v in fit.points])
        values["agrees"][i, j] = math.nan if fit.agrees is None else float(fit.agrees)
    return {f"fit_{name}": (("variant", "parameter"), array.astype(str) if array.dtype == object else array)
            for name, array in values.items()}


def _graph_numbers(graph: dict) -> tuple[int, int, int]:
    if {"W", "K", "L"} <= graph.keys():
        return int(graph["W"]), int(graph["K"]), int(graph["L"])
    depths = graph.get("depths", [])
    return len(depths), 0, 0


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _load_runs(path: str | os.PathLike[str]) -> "xarray.Dataset":
    import xarray as xr

    from . import io

    results = io.read(path)
    names = list(results)
    columns: dict[str, list] = {key: [] for key in (
        "mean", "stderr", "mean_draws", "stderr_draws", "exact_mean", "z", "rollouts", "hits",
        "censored", "steps", "seconds", "compile_seconds", "max_steps", "bin_width")}
    coords: dict[str, list] = {key: [] for key in ("policy", "search", "target", "seed", "graph", "W", "K", "L")}
    for result in results.values():
        p = result.parameters
        exact_mean = _number(p.get("exact_mean"))
        stderr = result.stderr
        z = (result.mean - exact_mean) / stderr if stderr > 0 else math.nan
        row = {"mean": result.mean, "stderr": stderr, "mean_draws": result.mean_draws,
               "stderr_draws": result.stderr_draws, "exact_mean": exact_mean, "z": z,
               "rollouts": result.rollouts, "hits": result.hits, "censored": result.censored,
               "steps": result.steps, "seconds": result.seconds, "compile_seconds": result.compile_seconds,
               "max_steps": int(p.get("max_steps") or 0), "bin_width": result.bin_width}
        for key, value in row.items():
            columns[key].append(value)
        policy = p.get("policy", {})
        graph = p.get("graph", {})
        W, K, L = _graph_numbers(graph)
        for key, value in {"policy": policy.get("name", "") if isinstance(policy, dict) else str(policy),
                           "search": str(p.get("search", "none")), "target": str(p.get("target", "")),
                           "seed": int(p.get("seed", 0)), "graph": json.dumps(graph),
                           "W": W, "K": K, "L": L}.items():
            coords[key].append(value)
    ints = {"rollouts", "hits", "censored", "steps", "max_steps", "bin_width"}
    data = {key: ("run", np.array(values, dtype=np.uint64 if key == "steps" else np.int64 if key in ints else float))
            for key, values in columns.items()}
    coord_arrays: dict[str, Any] = {"run": ("run", np.array(names, dtype=str))}
    for key, values in coords.items():
        dtype = np.uint64 if key == "seed" else np.int64 if key in PARAMETER_NAMES else str
        coord_arrays[key] = ("run", np.array(values, dtype=dtype))
    ds = xr.Dataset(data, coords=coord_arrays)
    ds.attrs.update(file_kind="runs", source=str(path))
    return ds


def _training_summary(path: str | os.PathLike[str]) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        text = f["training"].attrs.get("summary")
    try:
        summary = json.loads(text) if text is not None else {}
    except (TypeError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def _load_training(path: str | os.PathLike[str]) -> "xarray.Dataset":
    import xarray as xr

    from . import io

    run = io.read_training(path)
    summary = _training_summary(path)
    depth_dims = ("iteration", "depth") if np.ndim(run.a) == 2 else ("iteration", "branch", "depth")
    data: dict[str, Any] = {"hitting_time": ("iteration", np.asarray(run.hitting_time, float),
                                             {"description": "exact expected hitting time, leaves as targets"})}
    for name in "abcd":
        data[name] = (depth_dims, np.asarray(getattr(run, name), float))
    data["logits"] = ("entry", np.asarray(run.logits, float))
    depth = np.arange(1, np.shape(run.a)[-1] + 1)
    coords: dict[str, Any] = {"iteration": np.asarray(run.iteration), "depth": depth}
    if len(depth_dims) == 3:
        coords["branch"] = np.arange(1, np.shape(run.a)[1] + 1)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(method=run.method, parametrisation=run.parametrisation, graph=json.dumps(run.graph),
                    settings=json.dumps(run.settings), summary=json.dumps(summary),
                    seconds_per_iteration=float(run.seconds_per_iteration), file_kind="training",
                    source=str(path))
    if _number(summary.get("optimum")) == _number(summary.get("optimum")):  # present and not nan
        ds.attrs["optimum"] = float(summary["optimum"])
    return ds


# --- histograms ------------------------------------------------------------------------------

def load_histograms(path: str | os.PathLike[str]) -> dict:
    """Every stored histogram in ``path`` as a ``hist.Hist`` (Int64 storage; censored rollouts in
    the overflow bin): keyed by ``(variant, W, K, L)`` for a study file (cells with Monte Carlo
    only) and by run name for a run file."""
    import h5py
    import hist
    import uhi.io.hdf5

    from . import study as study_module

    kind = file_kind(path)
    if kind == "training":
        raise ValueError(f"FILE {path}: a training file holds no histograms")
    with h5py.File(path, "r") as f:
        stored = {name: hist.Hist(uhi.io.hdf5.read(group["histogram"])) for name, group in f["runs"].items()}
    if kind == "runs":
        return stored
    found = {}
    for cell in study_module.read(path).cells:
        if cell.run and cell.run in stored:
            found[(cell.variant, cell.W, cell.K, cell.L)] = stored[cell.run]
    return found


# --- plots -----------------------------------------------------------------------------------

def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "run"


def _run_plot(name: str, h: "hist.Hist", ds_row: "xarray.Dataset", path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plots import histogram_bars

    counts = np.asarray(h.values(), dtype=float)
    edges = np.asarray(h.axes[0].edges, dtype=float)
    rollouts = int(ds_row["rollouts"])
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = figure.add_subplot()
    if counts.sum() > 0:
        left, merged, widths = histogram_bars(counts, edges)
        ax.bar(left, merged / (rollouts * widths), width=widths, align="edge", color="C1",
               alpha=0.7, label=f"{rollouts} rollouts ({int(ds_row['censored'])} censored)")
    mean, stderr, exact_mean = (float(ds_row[k]) for k in ("mean", "stderr", "exact_mean"))
    if math.isfinite(mean):
        ax.axvline(mean, color="C1", linestyle="-", linewidth=1,
                   label=f"mean {mean:.6g} +- {1.96 * stderr:.3g} (95%)")
    if math.isfinite(exact_mean):
        ax.axvline(exact_mean, color="C0", linestyle="--", linewidth=1, label=f"exact mean {exact_mean:.6g}")
    ax.set_xlabel("hitting time")
    ax.set_ylabel("probability per step")
    graph = json.loads(ds_row["graph"].item())
    described = ", ".join(f"{k} = {v}" for k, v in graph.items()) if isinstance(graph, dict) else str(graph)
    ax.set_title(f"{name}: {ds_row['policy'].item()} on {described}"
                 f"{'' if ds_row['search'].item() == 'none' else ', search ' + ds_row['search'].item()}",
                 fontsize=9)
    ax.legend(fontsize=8)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110)
    return path


def default_plot_directory(path: str | os.PathLike[str]) -> Path:
    """``<file without its suffix>-plots`` beside the file (edgewalk-study.h5 ->
    edgewalk-study-plots: the directory ``edgewalk sweep`` and ``edgewalk train`` use)."""
    path = Path(path)
    return path.with_name(f"{path.stem if path.suffix else path.name}-plots")


def plot(path: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Draw the figures of any edgewalk file into ``directory`` (created if missing; its parent
    must exist; default :func:`default_plot_directory`) and return the paths written: a study
    file's figures (``plots.write_plots``), a training file's (``plots.write_training_plots``,
    with the optimum stored in the file), or one histogram ``<run>.png`` per run of a run file."""
    kind = file_kind(path)
    directory = default_plot_directory(path) if directory is None else Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"--out {directory}: exists and is not a directory")
    if not directory.parent.is_dir():
        raise ValueError(f"--out {directory}: directory {directory.parent} does not exist")
    from . import plots

    if kind == "study":
        return plots.write_plots(path, directory)
    if kind == "training":
        from . import io

        optimum = _number(_training_summary(path).get("optimum"))
        return plots.write_training_plots(io.read_training(path), directory,
                                          optimum if math.isfinite(optimum) else None)
    directory.mkdir(exist_ok=True)
    ds = _load_runs(path)
    histograms = load_histograms(path)
    written, used = [], set()
    for name, h in histograms.items():
        stem = _safe_name(name)
        while stem in used:
            stem += "_"
        used.add(stem)
        written.append(_run_plot(name, h, ds.sel(run=name), directory / f"{stem}.png"))
    return written


# --- the command line ------------------------------------------------------------------------

def add_analysis_commands(commands, json_dumps: Callable[[object], str]) -> None:
    """``edgewalk plot FILE [--out DIR] [--json]``."""
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
    command.set_defaults(handler=lambda args: _plot(args, json_dumps))


def _plot(args: argparse.Namespace, json_dumps: Callable[[object], str]) -> int:
    kind = file_kind(args.file)
    directory = default_plot_directory(args.file) if args.out is None else Path(args.out)
    written = [str(p) for p in plot(args.file, directory)]
    if args.json:
        print(json_dumps({"file": str(args.file), "kind": kind, "out": str(directory), "plots": written}))
        return 0
    print("\n".join(written))
    return 0
