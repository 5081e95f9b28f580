"""Results as xarray Datasets (``edgewalk.load``), histograms as hist objects
(``edgewalk.load_histograms``).

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

* a **topology study** (``edgewalk sweep --family``): the same layout over the family's size
  parameters. Dimensions variant, cell (a MultiIndex over the family's parameters, e.g.
  ``branching`` and ``depth`` for trees), series (the fitted series: the variants and
  ``separation``) and parameter. (variant, cell): mean, stderr, mean_draws, stderr_draws, exact
  (for ``separation`` the ratio E[T_sft] / E[T_rlvr]), z, estimated_seconds, training_seconds,
  rollouts, hits, censored, run. (series, parameter): fit_rate (growth per unit of the parameter)
  with fit_rate_ci_low/high and fit_rate_r2, fit_power (log-log slope) with its interval and
  fit_power_r2, fit_growth, fit_verdict, fit_held, fit_source, fit_points. attrs: the study's
  parameters, file_kind = "topology study", source.

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

import json
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from . import exact, io, statistics
from .errors import InputError
from .graph import PathStar, StateKind
from .policy import Policy
from .result import HittingTimes, TrainingRun
from .study import Study, compare_with_exact
from .study.topology import TopologyStudy

if TYPE_CHECKING:
    import xarray

__all__ = ["load", "load_histograms", "study_dataset", "topology_dataset", "runs_dataset",
           "training_dataset", "visits_by_kind"]

PARAMETER_NAMES = ("W", "K", "L")


# --- load ------------------------------------------------------------------------------------

def load(path: str | os.PathLike[str]) -> "xarray.Dataset":
    """The results in ``path`` as an xarray Dataset: a study file indexed by (variant, cell) with
    the cell a MultiIndex over (W, K, L) and the fits over (variant, parameter); a run file
    indexed by run name; a training file indexed by iteration. The module docstring lists every
    variable. Histograms: :func:`load_histograms`."""
    kind = io.file_kind(path)
    if kind == "study":
        study = io.read_study(path)
        if isinstance(study, TopologyStudy):
            return topology_dataset(study, str(path))
        return study_dataset(study, str(path))
    if kind == "runs":
        return runs_dataset(io.read(path), str(path))
    return training_dataset(io.read_training(path), io.read_training_summary(path), str(path))


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


_MEAN_FIELDS = ("mean", "stderr", "mean_draws", "stderr_draws")
_COUNT_FIELDS = ("rollouts", "hits", "censored")


def _cell_arrays(shape: tuple[int, int], cell_floats: tuple[str, ...]):
    """The (variant, cell) arrays of a study's Dataset: floats (Monte Carlo means, then
    ``cell_floats``) nan, counts 0 and run names "" where nothing is stored."""
    floats = {name: np.full(shape, math.nan) for name in (*_MEAN_FIELDS, *cell_floats)}
    ints = {name: np.zeros(shape, np.int64) for name in _COUNT_FIELDS}
    return floats, ints, np.full(shape, "", dtype=object)


def _put_result(floats: dict, ints: dict, runs: np.ndarray, at: tuple[int, int], run: str,
                result: HittingTimes) -> None:
    """One cell's Monte Carlo run into the arrays of :func:`_cell_arrays`."""
    runs[at] = run
    for name in _MEAN_FIELDS:
        floats[name][at] = getattr(result, name)
    for name in _COUNT_FIELDS:
        ints[name][at] = getattr(result, name)


def study_dataset(study: Study, source: str = "") -> "xarray.Dataset":
    """A study as the Dataset the module docstring describes."""
    import pandas as pd
    import xarray as xr

    variants = list(study.parameters.get("variants") or dict.fromkeys(c.variant for c in study.cells))
    points = sorted({c.point for c in study.cells})
    v_index = {v: i for i, v in enumerate(variants)}
    p_index = {p: i for i, p in enumerate(points)}
    shape = (len(variants), len(points))

    floats, ints, runs = _cell_arrays(shape, ("exact", "z", "estimated_seconds"))
    z_by_cell = {(c.variant, c.W, c.K, c.L): c.z for c in compare_with_exact(study)}
    for cell in study.cells:
        i, j = v_index[cell.variant], p_index[cell.point]
        floats["exact"][i, j] = cell.exact
        floats["estimated_seconds"][i, j] = cell.estimated_seconds
        result = study.mc(cell)
        if result is None:
            continue
        _put_result(floats, ints, runs, (i, j), cell.run, result)
        floats["z"][i, j] = z_by_cell.get((cell.variant, *cell.point), math.nan)

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
    ds.attrs.update(file_kind="study", source=source)
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


def topology_dataset(study: TopologyStudy, source: str = "") -> "xarray.Dataset":
    """A topology study (``edgewalk sweep --family``) as the Dataset the module docstring describes."""
    import pandas as pd
    import xarray as xr

    names = list(study.parameters["parameters"])
    variants = list(dict.fromkeys(c.variant for c in study.cells))
    points = sorted({c.point for c in study.cells})
    v_index = {v: i for i, v in enumerate(variants)}
    p_index = {p: i for i, p in enumerate(points)}
    shape = (len(variants), len(points))
    cell_floats = ("exact", "z", "estimated_seconds", "training_seconds")
    floats, ints, runs = _cell_arrays(shape, cell_floats)
    for cell in study.cells:
        i, j = v_index[cell.variant], p_index[cell.point]
        for name in cell_floats:
            floats[name][i, j] = getattr(cell, name)
        result = study.mc(cell)
        if result is not None:
            _put_result(floats, ints, runs, (i, j), cell.run, result)
    index = pd.MultiIndex.from_tuples(points, names=names)
    coords = xr.Coordinates.from_pandas_multiindex(index, "cell")
    cell_dims = ("variant", "cell")
    data: dict[str, Any] = {name: (cell_dims, values) for name, values in {**floats, **ints}.items()}
    data["run"] = (cell_dims, runs.astype(str))

    series = list(dict.fromkeys(f.series for f in study.fits))
    fit_shape = (len(series), len(names))
    fit_floats = ("rate", "rate_ci_low", "rate_ci_high", "rate_r2", "power", "power_ci_low", "power_ci_high",
                  "power_r2")
    fit_values: dict[str, np.ndarray] = {name: np.full(fit_shape, math.nan) for name in fit_floats}
    fit_values.update({name: np.full(fit_shape, "", dtype=object)
                       for name in ("held", "source", "growth", "verdict", "points")})
    for fit in study.fits:
        if fit.parameter not in names:
            continue
        i, j = series.index(fit.series), names.index(fit.parameter)
        for name in fit_floats + ("held", "source", "growth", "verdict"):
            fit_values[name][i, j] = getattr(fit, name)
        fit_values["points"][i, j] = json.dumps([int(v) for v in fit.points])
    for name, array in fit_values.items():
        data[f"fit_{name}"] = (("series", "parameter"), array.astype(str) if array.dtype == object else array)

    ds = xr.Dataset(data, coords=coords).assign_coords(
        variant=("variant", np.array(variants, dtype=str)),
        series=("series", np.array(series, dtype=str)),
        parameter=("parameter", np.array(names, dtype=str)))
    ds.attrs.update(_plain_attrs(study.parameters))
    ds.attrs.update(file_kind="topology study", source=source)
    return ds


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


def runs_dataset(results: dict[str, HittingTimes], source: str = "") -> "xarray.Dataset":
    """Runs by name as the Dataset the module docstring describes."""
    import xarray as xr

    names = list(results)
    columns: dict[str, list] = {key: [] for key in (
        "mean", "stderr", "mean_draws", "stderr_draws", "exact_mean", "z", "rollouts", "hits",
        "censored", "steps", "seconds", "compile_seconds", "max_steps", "bin_width")}
    coords: dict[str, list] = {key: [] for key in ("policy", "search", "target", "seed", "graph", "W", "K", "L")}
    for result in results.values():
        p = result.parameters
        exact_mean = _number(p.get("exact_mean"))
        stderr = result.stderr
        z = statistics.z_score(result.mean, exact_mean, stderr)
        row = {"mean": result.mean, "stderr": stderr, "mean_draws": result.mean_draws,
               "stderr_draws": result.stderr_draws, "exact_mean": exact_mean, "z": z,
               "rollouts": result.rollouts, "hits": result.hits, "censored": result.censored,
               "steps": result.steps, "seconds": result.seconds, "compile_seconds": result.compile_seconds,
               "max_steps": int(p.get("max_steps") or 0), "bin_width": result.bin_width or 0}
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
    ints = {"rollouts", "hits", "censored", "max_steps", "bin_width"}  # steps: float (it can pass 2**64)
    data = {key: ("run", np.array(values, dtype=float if key == "steps" else np.int64 if key in ints else float))
            for key, values in columns.items()}
    coord_arrays: dict[str, Any] = {"run": ("run", np.array(names, dtype=str))}
    for key, values in coords.items():
        dtype = np.uint64 if key == "seed" else np.int64 if key in PARAMETER_NAMES else str
        coord_arrays[key] = ("run", np.array(values, dtype=dtype))
    ds = xr.Dataset(data, coords=coord_arrays)
    ds.attrs.update(file_kind="runs", source=source)
    return ds


def training_dataset(run: TrainingRun, summary: dict | None = None, source: str = "") -> "xarray.Dataset":
    """A training run (and the summary its file recorded) as the Dataset the module docstring
    describes."""
    import xarray as xr

    summary = summary or {}
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
                    source=source)
    if _number(summary.get("optimum")) == _number(summary.get("optimum")):  # present and not nan
        ds.attrs["optimum"] = float(summary["optimum"])
    return ds


# --- histograms ------------------------------------------------------------------------------

def load_histograms(path: str | os.PathLike[str]) -> dict:
    """Every stored histogram in ``path`` as a ``hist.Hist`` (Int64 storage; censored rollouts in
    the overflow bin): keyed by ``(variant, W, K, L)`` for a study file and by ``(variant,
    *point)`` (the family's size parameters in order) for a topology study (cells with Monte
    Carlo only), by run name for a run file."""
    kind = io.file_kind(path)
    if kind == "training":
        raise InputError(f"FILE {path}: a training file holds no histograms")
    if kind == "runs":
        return {name: result.to_hist() for name, result in io.read(path).items()}
    study = io.read_study(path)
    if isinstance(study, TopologyStudy):
        return {(c.variant, *c.point): study.runs[c.run].to_hist() for c in study.cells if c.run}
    return {(c.variant, c.W, c.K, c.L): study.runs[c.run].to_hist() for c in study.cells if c.run}


# --- where the compute goes ------------------------------------------------------------------

VISIT_KINDS = {"R+": StateKind.R_PLUS, "R-": StateKind.R_MINUS, "L+": StateKind.L_PLUS,
               "L-": StateKind.L_MINUS}


def visits_by_kind(policy: Policy, targets=None) -> dict[str, np.ndarray]:
    """Expected visits before the hit to the states of each kind (R+, R-, L+, L-) at each depth
    1..max K, summed over branches and lanes, the target drawn uniformly from ``targets``
    (default the leaves); exact. Where the policy spends its steps: RLVR's few visits sit where
    the decisions are, SFT's many deep in the wrong branches."""
    graph = policy.graph
    if not isinstance(graph, PathStar):
        raise InputError("visits by kind: defined on path-star graphs only")
    targets = tuple(graph.leaves if targets is None else targets)
    visits = sum(exact.expected_visits(policy, t) for t in targets) / len(targets)
    depth = max(graph.depths)
    return {name: np.bincount(graph.state_depth[graph.state_kind == kind] - 1,
                              weights=visits[graph.state_kind == kind], minlength=depth)
            for name, kind in VISIT_KINDS.items()}
