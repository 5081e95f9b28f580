"""Saving and loading hitting-time results as HDF5 files.

Layout of a file written by :func:`write` (one group per run)::

    /                               attrs: format="edgewalk.hitting_times", format_version=1
    /runs/<name>/                   one group per run, attributes below
    /runs/<name>/histogram/         the histogram in the UHI HDF5 format (uhi.io.hdf5); its
                                    overflow bin holds the censored rollouts

Attributes of ``/runs/<name>``:

* ``parameters``: the whole ``HittingTimes.parameters`` dict as JSON (what :func:`read` uses).
* one attribute per parameter key, for direct inspection: nested dicts and lists as JSON strings,
  non-negative ints as uint64 (so a seed up to 2**64 - 1 survives), other values as they are.
* ``bin_width``, ``hits``, ``censored``, ``steps``, ``total``, ``draws_total``: uint64, exact
  (write raises OverflowError, leaving no file, if one is 2**64 or more).
* ``total_of_squares``, ``draws_total_of_squares``: exact decimal strings (they can exceed 2**64);
  ``total_of_squares_float``: the first as a float, for convenience.
* ``mean``, ``variance``, ``stderr``, ``mean_draws``, ``stderr_draws``, ``seconds``,
  ``compile_seconds``: floats (policy draws differ from steps only under the search wrapper).
* ``edgewalk_version``: the version of this package;
  ``versions``: JSON dict of the versions of edgewalk, python, numpy, scipy, numba, h5py, hist,
  boost-histogram and uhi (null for any that is not installed).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import hist
import numpy as np
import uhi.io.hdf5

from .result import HittingTimes

if TYPE_CHECKING:
    from .training import TrainingRun

__all__ = ["atomic_file", "write", "write_runs", "read", "read_hist", "check_writable", "versions",
           "write_training", "read_training"]

FORMAT = "edgewalk.hitting_times"
FORMAT_VERSION = 1

_DEPENDENCIES = ("numpy", "scipy", "numba", "h5py", "hist", "boost-histogram", "uhi")
_MOMENT_ATTRS = frozenset({
    "bin_width", "hits", "censored", "steps", "total", "total_of_squares",
    "total_of_squares_float", "draws_total", "draws_total_of_squares", "mean", "variance",
    "stderr", "mean_draws", "stderr_draws", "seconds", "compile_seconds",
})
_RESERVED_ATTRS = _MOMENT_ATTRS | {"parameters", "edgewalk_version", "versions"}


def versions() -> dict[str, str | None]:
    """The versions of edgewalk, python and the libraries that produce or read a result."""
    found: dict[str, str | None] = {"edgewalk": _version("edgewalk"), "python": platform.python_version()}
    for name in _DEPENDENCIES:
        found[name] = _version(name)
    return found


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise ValueError (naming ``--out`` and the reason) unless a file can be created at
    ``path``. Leaves nothing behind."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise ValueError(f"--out {path}: is a directory")
    if not parent.exists():
        raise ValueError(f"--out {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise ValueError(f"--out {path}: {parent} is not a directory")
    # Creating a file is the only reliable test (permissions, root, read-only mounts, ACLs).
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as error:
        raise ValueError(f"--out {path}: cannot create a file in {parent}: {error.strerror}") from None
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """An HDF5 file open for writing that appears at ``path`` only when the block completes:
    it is written as a temporary file beside ``path``, synced and renamed over it. On any error or
    interrupt the temporary file is removed and a previous file at ``path`` is left untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.close(fd)
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            yield f
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write(path: str | os.PathLike[str], runs: Mapping[str, HittingTimes]) -> None:
    """Write ``runs`` to one HDF5 file at ``path``, replacing it atomically: either the complete
    new file is at ``path`` afterwards, or (on any error or interrupt) the previous file, if any,
    is left untouched and no temporary file remains."""
    _check_run_names(runs)
    with atomic_file(path) as f:
        write_runs(f, runs)


def write_runs(f: h5py.File, runs: Mapping[str, HittingTimes]) -> None:
    """Add ``runs`` as groups /runs/<name> of an open file (see :func:`atomic_file`)."""
    _check_run_names(runs)
    group = f.require_group("runs")
    for name, result in runs.items():
        _write_run(group.create_group(name), result)


def _check_run_names(runs: Mapping[str, HittingTimes]) -> None:
    for name in runs:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"run name {name!r} cannot be an HDF5 group name")
        clashes = _RESERVED_ATTRS & runs[name].parameters.keys()
        if clashes:
            raise ValueError(f"run {name!r}: parameter names {sorted(clashes)} are reserved")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_run(group: h5py.Group, result: HittingTimes) -> None:
    uhi.io.hdf5.write(group.create_group("histogram"), result.to_hist())
    attrs = group.attrs
    attrs["parameters"] = _to_json(result.parameters)
    for key, value in result.parameters.items():
        attrs[key] = _attr_value(value)
    for key in ("bin_width", "hits", "censored", "steps", "total", "draws_total"):
        attrs[key] = np.uint64(getattr(result, key))
    attrs["total_of_squares"] = str(result.total_of_squares)
    attrs["total_of_squares_float"] = float(result.total_of_squares)
    attrs["draws_total_of_squares"] = str(result.draws_total_of_squares)
    for key in ("mean", "variance", "stderr", "mean_draws", "stderr_draws", "seconds", "compile_seconds"):
        attrs[key] = float(getattr(result, key))
    attrs["edgewalk_version"] = _version("edgewalk") or "unknown"
    attrs["versions"] = _to_json(versions())


def _to_json(value: Any) -> str:
    def plain(x: Any) -> Any:
        if isinstance(x, (np.generic, np.ndarray)):
            return x.tolist()
        raise TypeError(f"{type(x).__name__} is not JSON serializable")

    return json.dumps(value, default=plain)


def _attr_value(value: Any) -> Any:
    """One parameter as an HDF5 attribute value (for inspection; read() uses the JSON copy)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        if 0 <= value < 2**64:
            return np.uint64(value)
        if -(2**63) <= value < 0:
            return np.int64(value)
        return str(value)
    if isinstance(value, (float, str)):
        return value
    return _to_json(value)


def read(path: str | os.PathLike[str]) -> dict[str, HittingTimes]:
    """Every run in a file written by :func:`write`, by name. Counts, hits, censored, total,
    total_of_squares, steps and parameters equal those written; seconds are as written."""
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not an edgewalk results file")
        return {name: _read_run(group, f"{path}:{name}") for name, group in f["runs"].items()}


def _read_run(group: h5py.Group, where: str) -> HittingTimes:
    values = np.asarray(uhi.io.hdf5.read(group["histogram"])["storage"]["values"], dtype=np.int64)
    attrs = group.attrs
    censored = int(values[-1])
    if censored != int(attrs["censored"]):
        raise ValueError(f"{where}: histogram overflow {censored} != censored {attrs['censored']}")
    return HittingTimes(
        counts=values[:-1].copy(),
        bin_width=int(attrs["bin_width"]),
        hits=int(attrs["hits"]),
        censored=censored,
        total=int(attrs["total"]),
        total_of_squares=int(attrs["total_of_squares"]),
        steps=int(attrs["steps"]),
        draws_total=int(attrs["draws_total"]),
        draws_total_of_squares=int(attrs["draws_total_of_squares"]),
        seconds=float(attrs["seconds"]),
        compile_seconds=float(attrs["compile_seconds"]),
        parameters=json.loads(attrs["parameters"]),
    )


def read_hist(path: str | os.PathLike[str], name: str) -> hist.Hist:
    """The histogram of run ``name`` (censored rollouts in its overflow bin)."""
    with h5py.File(path, "r") as f:
        if name not in f.get("runs", {}):
            raise KeyError(f"no run {name!r} in {path}")
        return hist.Hist(uhi.io.hdf5.read(f["runs"][name]["histogram"]))


TRAINING_FORMAT = "edgewalk.training"
_TRAINING_ARRAYS = ("iteration", "hitting_time", "a", "b", "c", "d", "logits")


def write_training(path: str | os.PathLike[str], run: "TrainingRun", **summary: Any) -> None:
    """Write a training run atomically: group /training with datasets iteration, hitting_time
    (exact, leaves as targets), a, b, c, d (per recorded iteration and depth) and the final
    logits (one per CSR entry), and attributes method, graph, parametrisation, settings (JSON),
    seconds_per_iteration, versions and any ``summary`` values (such as the optimum)."""
    with atomic_file(path) as f:
        group = f.create_group("training")
        group.attrs["training_format"] = TRAINING_FORMAT
        for name in _TRAINING_ARRAYS:
            group.create_dataset(name, data=getattr(run, name))
        group.attrs["method"] = run.method
        group.attrs["parametrisation"] = run.parametrisation
        group.attrs["graph"] = _to_json(run.graph)
        group.attrs["settings"] = _to_json(run.settings)
        group.attrs["seconds_per_iteration"] = run.seconds_per_iteration
        group.attrs["summary"] = _to_json(summary)
        group.attrs["edgewalk_version"] = _version("edgewalk") or "unknown"
        group.attrs["versions"] = _to_json(versions())


def read_training(path: str | os.PathLike[str]) -> "TrainingRun":
    """The training run in a file written by :func:`write_training`, its policy rebuilt from the
    stored logits."""
    from .graph import from_description
    from .training import TrainingRun, policy_from_logits

    with h5py.File(path, "r") as f:
        group = f.get("training")
        if group is None or group.attrs.get("training_format") != TRAINING_FORMAT:
            raise ValueError(f"{path} is not an edgewalk training file (written by `edgewalk train`)")
        arrays = {name: np.asarray(group[name]) for name in _TRAINING_ARRAYS}
        method = str(group.attrs["method"])
        graph_description = json.loads(group.attrs["graph"])
        settings = json.loads(group.attrs["settings"])
        graph = from_description(graph_description)
        return TrainingRun(
            method=method, graph=graph_description, parametrisation=str(group.attrs["parametrisation"]),
            settings=settings, **arrays,
            policy=policy_from_logits(graph, arrays["logits"], f"{method}-trained",
                                      {"trained_by": method, "file": str(path)}),
            seconds_per_iteration=float(group.attrs["seconds_per_iteration"]),
        )
