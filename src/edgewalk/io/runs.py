"""Run files: hitting-time results as HDF5, one group per run.

Layout of a file written by :func:`write`::

    /                               attrs: format="edgewalk.hitting_times", format_version=1
    /runs/<name>/                   one group per run, attributes below
    /runs/<name>/histogram/         the histogram in the UHI HDF5 format (uhi.io.hdf5): a Regular
                                    axis for equal integer bins, else a Variable one; its
                                    overflow bin holds the censored rollouts
    /runs/<name>/edges              (Variable axes only) the exact integer bin edges, int64

Attributes of ``/runs/<name>``:

* ``parameters``: the whole ``HittingTimes.parameters`` dict as JSON (what :func:`read` uses).
* one attribute per parameter key, for direct inspection: nested dicts and lists as JSON strings,
  non-negative ints as uint64 (so a seed up to 2**64 - 1 survives), other values as they are.
* ``bin_width`` (equal bins only), ``hits``, ``censored``: uint64.
* ``steps``, ``total``, ``draws_total``: exact, uint64 where below 2**64, else decimal strings
  (leap runs of deep SFT sum past 2**64).
* ``total_of_squares``, ``draws_total_of_squares``: exact decimal strings (they can exceed 2**64);
  ``total_of_squares_float``: the first as a float, for convenience.
* ``/runs/<name>/exact_mass_below`` (where the exact law is known): P(T < edge) per bin edge.
* ``mean``, ``variance``, ``stderr``, ``mean_draws``, ``stderr_draws``, ``seconds``,
  ``compile_seconds``: floats (policy draws differ from steps only under the search wrapper).
* ``edgewalk_version`` and ``versions`` (JSON: edgewalk, python, numpy, scipy, numba, h5py, hist,
  boost-histogram, uhi).

Reading checks the invariants of every run (counts non-negative, the histogram's total equal to
the hits, moments consistent) and raises :class:`edgewalk.errors.CorruptFileError` naming the
file and run where one fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import h5py
import hist
import numpy as np
import uhi.io.hdf5

from ..errors import CorruptFileError, InputError
from ..result import HittingTimes
from .hdf5 import FORMAT, atomic_file, attr_value, check_format_version, check_writable, stamp, to_json

_MOMENT_ATTRS = frozenset({
    "bin_width", "hits", "censored", "steps", "total", "total_of_squares",
    "total_of_squares_float", "draws_total", "draws_total_of_squares", "mean", "variance",
    "stderr", "mean_draws", "stderr_draws", "seconds", "compile_seconds",
})
RESERVED_ATTRS = _MOMENT_ATTRS | {"parameters", "edgewalk_version", "versions"}


def write(path: str | os.PathLike[str], runs: Mapping[str, HittingTimes]) -> None:
    """Write ``runs`` to one HDF5 file at ``path``, replacing it atomically: either the complete
    new file is at ``path`` afterwards, or (on any error or interrupt) the previous file, if any,
    is left untouched and no temporary file remains."""
    check_run_names(runs)
    with atomic_file(path) as f:
        write_runs(f, runs)


def is_run_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a plain run file (written by :func:`write`; not a study, training or
    shard file, which hold runs too). False for a file that is not HDF5 at all."""
    try:
        with open_results(path) as f:
            return (f.attrs.get("format") == FORMAT and isinstance(f.get("runs"), h5py.Group)
                    and not any(name in f for name in ("study", "training", "batch")))
    except InputError:
        return False


def check_runs_output(path: str | os.PathLike[str], names, option: str = "--out",
                      overwrite: bool = False) -> None:
    """Check, before any work, that runs of these ``names`` can be added to ``path``: a new file,
    or a run file that holds none of them (unless ``overwrite``). Any other existing file is
    refused unless ``overwrite``."""
    check_writable(path, option)
    if not os.path.exists(path) or overwrite:
        return
    if not is_run_file(path):
        raise InputError(f"{option} {path}: exists and is not a run file; give --overwrite to replace "
                         "it, or choose another file")
    with open_results(path) as f:
        clashes = [n for n in names if n in f["runs"]]
    if clashes:
        raise InputError(f"{option} {path}: already holds run {', '.join(clashes)}; give --overwrite "
                         "to replace it, or choose another file")


def add_runs(path: str | os.PathLike[str], runs: Mapping[str, HittingTimes], replace: bool = False) -> None:
    """Write ``runs`` into the run file at ``path``, keeping the runs it already holds (a run of
    the same name is replaced only if ``replace``; an existing file that is not a run file only
    if ``replace``). Atomic, as :func:`write`."""
    kept: dict[str, HittingTimes] = {}
    if os.path.exists(path) and is_run_file(path):
        kept = read(path)
        clashes = [n for n in runs if n in kept]
        if clashes and not replace:
            raise InputError(f"{path}: already holds run {', '.join(clashes)}")
    elif os.path.exists(path) and not replace:
        raise InputError(f"{path}: exists and is not a run file")
    write(path, {**{n: r for n, r in kept.items() if n not in runs}, **runs})


def write_runs(f: h5py.File, runs: Mapping[str, HittingTimes], for_people: bool = True) -> None:
    """Add ``runs`` as groups /runs/<name> of an open file (see :func:`atomic_file`). Without
    ``for_people`` (units files, which only edgewalk reads back) a run keeps what
    :func:`read_run` needs, its histogram as one ``counts`` dataset (censored last) instead of
    the UHI group, and drops the copies made for people and other tools: one attribute per
    parameter, the float summaries and the versions. That cuts a checkpoint of many small units
    to about a third of its cost."""
    check_run_names(runs)
    group = f.require_group("runs")
    for name, result in runs.items():
        _write_run(group.create_group(name), result, for_people)


def check_run_names(runs: Mapping[str, HittingTimes]) -> None:
    for name in runs:
        if not name or "/" in name or name in (".", ".."):
            raise InputError(f"run name {name!r} cannot be an HDF5 group name")
        clashes = RESERVED_ATTRS & runs[name].parameters.keys()
        if clashes:
            raise InputError(f"run {name!r}: parameter names {sorted(clashes)} are reserved")


def _write_run(group: h5py.Group, result: HittingTimes, for_people: bool = True) -> None:
    if for_people:
        uhi.io.hdf5.write(group.create_group("histogram"), result.to_hist())
    else:  # the histogram's values, censored last, as the UHI storage holds them
        group.create_dataset("counts", data=np.append(result.counts, result.censored).astype(np.int64))
    attrs = group.attrs
    attrs["parameters"] = to_json(result.parameters)
    for key, value in result.parameters.items() if for_people else ():
        attrs[key] = attr_value(value)
    if result.bin_width is not None:
        attrs["bin_width"] = np.uint64(result.bin_width)
    else:
        group.create_dataset("edges", data=result.edges.astype(np.int64))
    for key in ("hits", "censored"):
        attrs[key] = np.uint64(getattr(result, key))
    for key in ("steps", "total", "draws_total"):
        value = getattr(result, key)
        attrs[key] = np.uint64(value) if 0 <= value < 2**64 else str(value)
    if result.exact_mass_below is not None:
        group.create_dataset("exact_mass_below", data=np.asarray(result.exact_mass_below, float))
    attrs["total_of_squares"] = str(result.total_of_squares)
    attrs["draws_total_of_squares"] = str(result.draws_total_of_squares)
    for key in ("seconds", "compile_seconds"):
        attrs[key] = float(getattr(result, key))
    if not for_people:
        return
    attrs["total_of_squares_float"] = float(result.total_of_squares)
    for key in ("mean", "variance", "stderr", "mean_draws", "stderr_draws"):
        attrs[key] = float(getattr(result, key))
    stamp(attrs)


def open_results(path: str | os.PathLike[str]) -> h5py.File:
    """``path`` opened for reading; InputError naming it if it is missing, not HDF5, or an
    edgewalk file of a format version this edgewalk does not read (:func:`check_format_version`)."""
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read it as HDF5 (not an HDF5 file, or a truncated or damaged one: "
                         f"{type(error).__name__})") from None
    try:
        check_format_version(f, path)
    except BaseException:
        f.close()
        raise
    return f


def read(path: str | os.PathLike[str]) -> dict[str, HittingTimes]:
    """Every run in a file written by :func:`write` (or any edgewalk file holding runs), by name.
    Counts, hits, censored, total, total_of_squares, steps and parameters equal those written."""
    with open_results(path) as f:
        if f.attrs.get("format") != FORMAT:
            raise InputError(f"{path}: not an edgewalk results file")
        runs = f.get("runs")
        if not isinstance(runs, h5py.Group):
            raise CorruptFileError(f"{path}: has no /runs group")
        return {name: read_run(group, f"{path}:{name}") for name, group in runs.items()}


def read_run(group: h5py.Group, where: str) -> HittingTimes:
    """One run group, its invariants checked (CorruptFileError naming ``where`` otherwise)."""
    try:
        attrs = group.attrs
        if "counts" in group:
            values = np.asarray(group["counts"], dtype=np.int64)
        else:
            values = np.asarray(uhi.io.hdf5.read(group["histogram"])["storage"]["values"], dtype=np.int64)
        if "edges" in group:
            edges = np.asarray(group["edges"], dtype=np.int64)
        else:
            width = int(attrs["bin_width"])
            edges = np.arange(len(values), dtype=np.int64) * width
        result = HittingTimes(
            counts=values[:-1].copy(),
            edges=edges,
            hits=int(attrs["hits"]),
            censored=int(attrs["censored"]),
            total=int(attrs["total"]),
            total_of_squares=int(attrs["total_of_squares"]),
            steps=int(attrs["steps"]),
            draws_total=int(attrs["draws_total"]),
            draws_total_of_squares=int(attrs["draws_total_of_squares"]),
            seconds=float(attrs["seconds"]),
            compile_seconds=float(attrs["compile_seconds"]),
            parameters=json.loads(attrs["parameters"]),
            exact_mass_below=np.asarray(group["exact_mass_below"]) if "exact_mass_below" in group else None,
        )
        overflow = int(values[-1])
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise CorruptFileError(f"{where}: not a readable edgewalk run ({type(error).__name__}: {error})") from None
    problem = _inconsistency(result, overflow)
    if problem:
        raise CorruptFileError(f"{where}: {problem}; the file is corrupt")
    return result


def _inconsistency(r: HittingTimes, overflow: int) -> str | None:
    """What is impossible about a stored result, or None."""
    if len(r.edges) != len(r.counts) + 1 or np.any(np.diff(r.edges) <= 0) or (len(r.edges) and r.edges[0] != 0):
        return f"histogram of {len(r.counts)} bins does not match its {len(r.edges)} edges"
    if min(r.hits, r.censored, r.total, r.total_of_squares, r.steps, r.draws_total,
           r.draws_total_of_squares) < 0 or np.any(r.counts < 0):
        return "a count or moment is negative"
    if int(r.counts.sum()) != r.hits:
        return f"the histogram holds {int(r.counts.sum())} hits, the moments {r.hits}"
    if overflow != r.censored:
        return f"histogram overflow {overflow} != censored {r.censored}"
    if r.hits and r.total_of_squares * r.hits < r.total * r.total:
        return "its sums of hitting times and of their squares are inconsistent (negative variance)"
    if r.steps < r.total:
        return f"steps {r.steps} < total hitting time {r.total}"
    if r.hits and not (int(r.edges[0]) * r.hits <= r.total <= int(r.edges[-1]) * r.hits):
        return "the total hitting time lies outside the histogram's range"
    if r.exact_mass_below is not None and (len(r.exact_mass_below) != len(r.edges) or np.any(
            np.diff(r.exact_mass_below) < -1e-12) or np.any(r.exact_mass_below < 0)
            or np.any(r.exact_mass_below > 1 + 1e-12)):
        return "its exact law at the bin edges is not a distribution function"
    return None


def read_hist(path: str | os.PathLike[str], name: str) -> hist.Hist:
    """The histogram of run ``name`` (censored rollouts in its overflow bin)."""
    with open_results(path) as f:
        if name not in f.get("runs", {}):
            raise InputError(f"no run {name!r} in {path}")
        return hist.Hist(uhi.io.hdf5.read(f["runs"][name]["histogram"]))
