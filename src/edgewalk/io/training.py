"""Training files: the whole history of one training run (``edgewalk train``)."""

from __future__ import annotations

import json
import os
from typing import Any

import h5py
import numpy as np

from ..errors import CorruptFileError, InputError
from ..graph import from_description
from ..policy import from_logits
from ..result import TrainingRun
from .hdf5 import atomic_file, stamp, to_json
from .runs import open_results

TRAINING_FORMAT = "edgewalk.training"
_TRAINING_ARRAYS = ("iteration", "hitting_time", "a", "b", "c", "d", "logits")


def write_training(path: str | os.PathLike[str], run: TrainingRun, **summary: Any) -> None:
    """Write a training run atomically: group /training with datasets iteration, hitting_time
    (exact, the targets averaged), a, b, c, d (per recorded iteration and depth), the final
    logits (one per CSR entry) and metrics/<name> (other per-iteration series), and attributes
    method, graph, parametrisation, settings (JSON), seconds_per_iteration, versions and any
    ``summary`` values (such as the optimum). A run of a model beyond the table (``run.model``)
    adds group /training/model (attribute config, JSON; one dataset per parameter in
    /training/model/parameters)."""
    with atomic_file(path) as f:
        group = f.create_group("training")
        group.attrs["training_format"] = TRAINING_FORMAT
        for name in _TRAINING_ARRAYS:
            group.create_dataset(name, data=getattr(run, name))
        metrics = group.create_group("metrics")
        for name, values in run.metrics.items():
            metrics.create_dataset(name, data=np.asarray(values))
        group.attrs["method"] = run.method
        group.attrs["parametrisation"] = run.parametrisation
        group.attrs["graph"] = to_json(run.graph)
        group.attrs["settings"] = to_json(run.settings)
        group.attrs["seconds_per_iteration"] = run.seconds_per_iteration
        group.attrs["summary"] = to_json(summary)
        if run.model:
            model = group.create_group("model")
            model.attrs["config"] = to_json(run.model["config"])
            parameters = model.create_group("parameters")
            for name, value in run.model["parameters"].items():
                parameters.create_dataset(name, data=np.asarray(value))
        stamp(group.attrs)


def is_training_file(f: h5py.File) -> bool:
    group = f.get("training")
    return isinstance(group, h5py.Group) and group.attrs.get("training_format") == TRAINING_FORMAT


def read_training(path: str | os.PathLike[str]) -> TrainingRun:
    """The training run in a file written by :func:`write_training`, its policy rebuilt from the
    stored logits. InputError if it is no training file, CorruptFileError if it is a damaged one."""
    with open_results(path) as f:
        if not is_training_file(f):
            raise InputError(f"{path}: not an edgewalk training file (written by `edgewalk train`)")
        group = f["training"]
        try:
            arrays = {name: np.asarray(group[name]) for name in _TRAINING_ARRAYS}
            metrics = {name: np.asarray(d) for name, d in group["metrics"].items()} if "metrics" in group else {}
            method = str(group.attrs["method"])
            graph_description = json.loads(group.attrs["graph"])
            settings = json.loads(group.attrs["settings"])
            parametrisation = str(group.attrs["parametrisation"])
            seconds = float(group.attrs["seconds_per_iteration"])
            model = {}
            if "model" in group:
                model = {"config": json.loads(group["model"].attrs["config"]),
                         "parameters": {name: np.asarray(data) for name, data in group["model/parameters"].items()}}
        except (KeyError, TypeError, ValueError, OSError) as error:
            raise CorruptFileError(f"{path}: a damaged training file ({type(error).__name__}: {error})") from None
    try:
        graph = from_description(graph_description)
        policy = from_logits(graph, arrays["logits"], f"{method}-trained",
                             {"trained_by": method, "file": str(path)})
    except InputError as error:
        raise CorruptFileError(f"{path}: a damaged training file ({error})") from None
    if len(arrays["iteration"]) != len(arrays["hitting_time"]):
        raise CorruptFileError(f"{path}: iteration and hitting_time differ in length; the file is corrupt")
    return TrainingRun(method=method, graph=graph_description, parametrisation=parametrisation,
                       settings=settings, **arrays, policy=policy, seconds_per_iteration=seconds,
                       metrics=metrics, model=model)


def read_training_summary(path: str | os.PathLike[str]) -> dict:
    """The ``summary`` a training file recorded (the optimum, ...), {} if none."""
    with open_results(path) as f:
        text = f["training"].attrs.get("summary") if is_training_file(f) else None
    try:
        summary = json.loads(text) if text is not None else {}
    except (TypeError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}
