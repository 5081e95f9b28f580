"""Study files: a whole sweep (every run, the cells and the fits) in one HDF5 file.

Version 1 is the path-star study (cells W, K, L); version 2 the topology study of any family
(``edgewalk sweep --family``): its cells have one column per size parameter of the family and
its fits are growth fits (:class:`edgewalk.study.GrowthFit`). :func:`read_study` reads both."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

from ..errors import CorruptFileError, InputError
from ..study import Cell, Fit, GrowthFit, Study, TopologyCell, TopologyStudy
from .hdf5 import atomic_file
from .runs import open_results, read, write_runs

STUDY_FORMAT = "edgewalk.study"
STUDY_FORMAT_VERSION = 1
TOPOLOGY_FORMAT_VERSION = 2


_CELL_COLUMNS = [("variant", "str"), ("W", "i8"), ("K", "i8"), ("L", "i8"), ("exact", "f8"),
                 ("run", "str"), ("estimated_seconds", "f8")]
_FIT_COLUMNS = [("variant", "str"), ("parameter", "str"), ("kind", "str"), ("estimate", "f8"),
                ("ci_low", "f8"), ("ci_high", "f8"), ("stated", "str"), ("stated_value", "f8"),
                ("r2", "f8"), ("exponent", "f8"), ("exponent_ci_low", "f8"),
                ("exponent_ci_high", "f8"), ("stated_exponent", "f8"), ("source", "str"),
                ("points", "str"), ("held", "str"), ("agrees", "i1"), ("verdict", "str")]


def _table(columns) -> np.dtype:
    return np.dtype([(name, h5py.string_dtype() if kind == "str" else kind) for name, kind in columns])


def _write_table(group: h5py.Group, name: str, columns, rows: list[tuple]) -> None:
    group.create_dataset(name, data=np.array(rows, dtype=_table(columns)), dtype=_table(columns))


def _read_table(dataset: h5py.Dataset) -> list[dict]:
    data = dataset[()]
    rows = []
    for record in data:
        row = {}
        for name in data.dtype.names:
            value = record[name]
            row[name] = value.decode() if isinstance(value, bytes) else value.item()
        rows.append(row)
    return rows


_GROWTH_COLUMNS = [("series", "str"), ("parameter", "str"), ("held", "str"), ("points", "str"),
                   ("source", "str"), ("rate", "f8"), ("rate_ci_low", "f8"), ("rate_ci_high", "f8"),
                   ("rate_r2", "f8"), ("power", "f8"), ("power_ci_low", "f8"), ("power_ci_high", "f8"),
                   ("power_r2", "f8"), ("growth", "str"), ("verdict", "str")]


def _topology_cell_columns(parameters: list[str]):
    return [("variant", "str"), *[(p, "i8") for p in parameters], ("exact", "f8"), ("run", "str"),
            ("estimated_seconds", "f8"), ("training_seconds", "f8"), ("z", "f8")]


def write_topology_study(path: str | os.PathLike[str], study: TopologyStudy) -> None:
    """Write a topology study atomically (as :func:`write_study`), study_format_version 2::

        /runs/<variant>_<family>_<p1><v1>_...   every Monte Carlo run
        /study                                 attrs: study_format, study_format_version = 2,
                                               parameters (JSON, with kind = "topology")
        /study/cells    table: variant (or "separation"), one column per size parameter of the
                        family, exact, run, estimated_seconds, training_seconds, z (the
                        Monte Carlo run against the exact law, nan if none)
        /study/growth   table: one row per GrowthFit (points as JSON)
    """
    names = list(study.parameters["parameters"])
    with atomic_file(path) as f:
        write_runs(f, study.runs)
        group = f.create_group("study")
        group.attrs["study_format"] = STUDY_FORMAT
        group.attrs["study_format_version"] = TOPOLOGY_FORMAT_VERSION
        group.attrs["parameters"] = json.dumps(study.parameters)
        _write_table(group, "cells", _topology_cell_columns(names), [
            (c.variant, *c.point, c.exact, c.run, c.estimated_seconds, c.training_seconds, c.z) for c in study.cells])
        _write_table(group, "growth", _GROWTH_COLUMNS, [
            (g.series, g.parameter, g.held, json.dumps(list(g.points)), g.source, g.rate, g.rate_ci_low,
             g.rate_ci_high, g.rate_r2, g.power, g.power_ci_low, g.power_ci_high, g.power_r2, g.growth,
             g.verdict) for g in study.fits])


def _read_topology(group: h5py.Group) -> tuple[dict, list, list]:
    parameters = json.loads(group.attrs["parameters"])
    names = list(parameters["parameters"])
    cells = []
    for row in _read_table(group["cells"]):
        point = tuple(int(row.pop(p)) for p in names)
        cells.append(TopologyCell(point=point, **row))
    fits = []
    for row in _read_table(group["growth"]):
        row["points"] = tuple(json.loads(row["points"]))
        fits.append(GrowthFit(**row))
    return parameters, cells, fits


def write_study(path: str | os.PathLike[str], study: Study | TopologyStudy) -> None:
    """Write the study to one HDF5 file at ``path``, atomically (the complete file, or on any
    error the previous one untouched and no temporary file left). Layout::

        /runs/<variant>_W<W>_K<K>_L<L>   every Monte Carlo run, exactly as edgewalk.write stores it
                                         (edgewalk.read opens the file)
        /study                           attrs: study_format, study_format_version, parameters (JSON)
        /study/cells                     table: variant, W, K, L, exact (nan: no exact solver),
                                         run ("" : over budget), estimated_seconds
        /study/fits                      table: one row per Fit (points as JSON, agrees 1/0/-1 for
                                         yes/no/unknown)

    A :class:`TopologyStudy` is written by :func:`write_topology_study` (version 2).
    """
    if isinstance(study, TopologyStudy):
        return write_topology_study(path, study)
    with atomic_file(path) as f:
        write_runs(f, study.runs)
        group = f.create_group("study")
        group.attrs["study_format"] = STUDY_FORMAT
        group.attrs["study_format_version"] = STUDY_FORMAT_VERSION
        group.attrs["parameters"] = json.dumps(study.parameters)
        _write_table(group, "cells", _CELL_COLUMNS, [
            (c.variant, c.W, c.K, c.L, c.exact, c.run, c.estimated_seconds) for c in study.cells])
        _write_table(group, "fits", _FIT_COLUMNS, [
            (f.variant, f.parameter, f.kind, f.estimate, f.ci_low, f.ci_high, f.stated,
             f.stated_value, f.r2, f.exponent, f.exponent_ci_low, f.exponent_ci_high,
             f.stated_exponent, f.source, json.dumps(list(f.points)), f.held,
             -1 if f.agrees is None else int(f.agrees), f.verdict) for f in study.fits])


def read_study(path: str | os.PathLike[str]) -> Study | TopologyStudy:
    """The study in a file written by :func:`write_study` (runs through edgewalk.read): a Study
    (version 1) or a TopologyStudy (version 2)."""
    with open_results(path) as f:
        if not is_study_file(f):
            raise InputError(f"{path}: not an edgewalk study file (written by `edgewalk sweep`)")
        group = f["study"]
        version = group.attrs.get("study_format_version")
        if version not in (STUDY_FORMAT_VERSION, TOPOLOGY_FORMAT_VERSION):
            raise CorruptFileError(f"{path}: study format version {version!r}; this edgewalk reads versions "
                                   f"{STUDY_FORMAT_VERSION} and {TOPOLOGY_FORMAT_VERSION}")
        try:
            if version == TOPOLOGY_FORMAT_VERSION:
                parameters, cells, fits = _read_topology(group)
            else:
                parameters, cells, fits = _read_path_star(group)
        except (KeyError, TypeError, ValueError, OSError) as error:
            raise CorruptFileError(f"{path}: a damaged study file ({type(error).__name__}: {error})") from None
    runs = read(path)
    missing = sorted({c.run for c in cells if c.run and c.run not in runs})
    if missing:
        raise CorruptFileError(f"{path}: cells name runs the file lacks ({', '.join(missing[:3])}); the file is corrupt")
    if version == TOPOLOGY_FORMAT_VERSION:
        return TopologyStudy(parameters, cells, fits, runs)
    return Study(parameters, cells, fits, runs)


def _read_path_star(group: h5py.Group) -> tuple[dict, list, list]:
    parameters = json.loads(group.attrs["parameters"])
    cells = [Cell(**row) for row in _read_table(group["cells"])]
    fits = []
    for row in _read_table(group["fits"]):
        row["points"] = tuple(json.loads(row["points"]))
        row["agrees"] = None if row["agrees"] < 0 else bool(row["agrees"])
        fits.append(Fit(**row))
    return parameters, cells, fits


def is_study_file(f: h5py.File) -> bool:
    group = f.get("study")
    return isinstance(group, h5py.Group) and group.attrs.get("study_format") == STUDY_FORMAT
