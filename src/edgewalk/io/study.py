"""Study files: a whole sweep (every run, the cells and the fits) in one HDF5 file."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

from ..errors import CorruptFileError, InputError
from ..study import Cell, Fit, Study
from .hdf5 import atomic_file
from .runs import open_results, read, write_runs

STUDY_FORMAT = "edgewalk.study"
STUDY_FORMAT_VERSION = 1


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


def write_study(path: str | os.PathLike[str], study: Study) -> None:
    """Write the study to one HDF5 file at ``path``, atomically (the complete file, or on any
    error the previous one untouched and no temporary file left). Layout::

        /runs/<variant>_W<W>_K<K>_L<L>   every Monte Carlo run, exactly as edgewalk.write stores it
                                         (edgewalk.read opens the file)
        /study                           attrs: study_format, study_format_version, parameters (JSON)
        /study/cells                     table: variant, W, K, L, exact (nan: no exact solver),
                                         run ("" : over budget), estimated_seconds
        /study/fits                      table: one row per Fit (points as JSON, agrees 1/0/-1 for
                                         yes/no/unknown)
    """
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


def read_study(path: str | os.PathLike[str]) -> Study:
    """The study in a file written by :func:`write` (runs through edgewalk.read)."""
    with open_results(path) as f:
        if not is_study_file(f):
            raise InputError(f"{path}: not an edgewalk study file (written by `edgewalk sweep`)")
        group = f["study"]
        try:
            parameters = json.loads(group.attrs["parameters"])
            cells = [Cell(**row) for row in _read_table(group["cells"])]
            fits = []
            for row in _read_table(group["fits"]):
                row["points"] = tuple(json.loads(row["points"]))
                row["agrees"] = None if row["agrees"] < 0 else bool(row["agrees"])
                fits.append(Fit(**row))
        except (KeyError, TypeError, ValueError, OSError) as error:
            raise CorruptFileError(f"{path}: a damaged study file ({type(error).__name__}: {error})") from None
    runs = read(path)
    missing = sorted({c.run for c in cells if c.run and c.run not in runs})
    if missing:
        raise CorruptFileError(f"{path}: cells name runs the file lacks ({', '.join(missing[:3])}); the file is corrupt")
    return Study(parameters, cells, fits, runs)


def is_study_file(f: h5py.File) -> bool:
    group = f.get("study")
    return isinstance(group, h5py.Group) and group.attrs.get("study_format") == STUDY_FORMAT
