"""PNG figures of a study, of runs and of a training run (matplotlib's Agg canvas; no display and
no pyplot state needed). Every ``*_figure`` function takes result objects and returns a Figure;
the ``write_*`` functions save them. The figures are drawn in ``.scaling`` (growth,
visits, topology), ``.distributions`` (histograms and survival) and ``.training``; ``.style``
holds what they share.

A study (``edgewalk sweep``) gives, in this order:

* ``headline_K.png``, ``headline_W.png``, ``headline_L.png``: E[T] of pretrained, SFT, SFT +
  search, RLVR and RLVR + search against one parameter (the others at the base) on one log axis
  (K: log-y; W and L: log-log), exact values as lines, Monte Carlo means as points with 95%
  error bars (1.96 standard errors), the stated bounds as dashed guides (a + b x bound fitted; a
  bound exponential in the parameter through the value at the base; the pretrained formula as it is).
* ``K_<variant>.png``: one variant against K on the axes its claim needs: log-y where the bound
  is exponential in K, linear axes where it is linear in K, log-log otherwise; the fit in words.
* ``histograms.png``: per variant, at the base cell, the hitting-time histogram on bars that hold
  whole numbers of the values T can take (:func:`lattice_bars`), the exact law overlaid where the
  run carries it, and beside it the survival P(T > t) against t / E[T] on a log axis.
* ``compute_by_depth.png``: exact expected visits per depth and state kind before the hit for
  pretrained, SFT and RLVR on the deepest graph of the K axis (``analysis.visits_by_kind``).

A run file gives ``<run>.png`` per run (histogram and survival), a training run
``<method>_hitting_time.png`` and ``<method>_abcd.png``, a topology study ``growth_<parameter>.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import InputError, RunError
from ..io import same_file
from ..result import HittingTimes, TrainingRun
from ..study import Study, TopologyStudy
from .distributions import Bars, distribution_figure, lattice, lattice_bars, run_title, study_distribution_rows
from .scaling import compute_figure, headline_figure, study_compute_figure, topology_figure, variant_figure
from .style import as_number
from .training import training_figures

__all__ = ["Bars", "claim", "compute_figure", "distribution_figure", "headline_figure", "lattice",
           "lattice_bars", "run_plot_names", "study_plot_names", "topology_figure", "topology_plot_names",
           "training_figures", "training_plot_names", "variant_figure", "write_plots", "write_run_plots",
           "write_topology_plots", "write_training_plots"]


def study_plot_names(variants) -> list[str]:
    """The files :func:`write_plots` writes for a study of these variants, in order."""
    return ([f"headline_{p}.png" for p in "KWL"] + [f"K_{_file_name(v)}.png" for v in variants]
            + ["histograms.png", "compute_by_depth.png"])


def run_plot_names(names) -> list[str]:
    """The files :func:`write_run_plots` writes for runs of these names."""
    stems, used = [], set()
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "run"
        while stem in used:
            stem += "_"
        used.add(stem)
        stems.append(f"{stem}.png")
    return stems


def training_plot_names(method: str, transformer: bool = False) -> list[str]:
    """The files :func:`write_training_plots` writes for a run of this method (of a transformer:
    its hitting time only)."""
    if transformer:
        return [f"{method}_transformer_hitting_time.png"]
    return [f"{method}_hitting_time.png", f"{method}_abcd.png"]


def topology_plot_names(parameters: list[str]) -> list[str]:
    """The PNGs :func:`write_topology_plots` writes: ``growth_<parameter>.png`` per size parameter."""
    return [f"growth_{p}.png" for p in parameters]


def claim(directory: str | os.PathLike[str], names, overwrite: bool = False,
          option: str = "--plots", output: str | os.PathLike[str] | None = None) -> Path:
    """Check, before any work, that ``names`` can be written into ``directory``: it is a directory
    or can be created (its parent exists), it is not the path of the command's ``output`` file,
    files can be created in it, and no file of those names is there already unless
    ``overwrite``. InputError naming ``option`` otherwise."""
    directory = Path(directory)
    if output is not None and same_file(directory, output):
        raise InputError(f"{option} {directory}: is the path of the output file too; give the plots "
                         "another directory")
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{option} {directory}: exists and is not a directory")
    if not directory.parent.is_dir():
        raise InputError(f"{option} {directory}: directory {directory.parent} does not exist")
    probe_in = directory if directory.is_dir() else directory.parent
    if not os.access(probe_in, os.W_OK | os.X_OK):
        raise InputError(f"{option} {directory}: cannot create files in {probe_in} (permission denied)")
    existing = [n for n in names if (directory / n).exists()]
    if existing and not overwrite:
        raise InputError(f"{option} {directory}: would replace {', '.join(existing[:3])}"
                         f"{' and more' if len(existing) > 3 else ''}; give --overwrite to replace them "
                         "or choose another directory")
    return directory


def _file_name(variant: str) -> str:
    return variant.replace("+", "_")


def _save(figure: Figure, path: Path) -> Path:
    """Save as a temporary file beside ``path``, renamed over it once complete."""
    FigureCanvasAgg(figure)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        figure.savefig(temporary, dpi=110, format="png")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _write(directory: Path, names: list[str], figures) -> list[Path]:
    """Write every figure or, on a failure (a full disk), none of those that were new: the
    figures written so far that replaced nothing are removed, and RunError says so."""
    created_directory = not directory.exists()
    directory.mkdir(exist_ok=True)
    new: list[Path] = []  # a figure that replaced another (--overwrite) cannot be taken back
    try:
        for name, figure in zip(names, figures):
            path = directory / name
            if not path.exists():
                new.append(path)
            _save(figure, path)
    except OSError as error:
        for path in new:
            path.unlink(missing_ok=True)
        if created_directory and not any(directory.iterdir()):
            directory.rmdir()
        raise RunError(f"writing the plots into {directory}: {error.strerror or error} (the files written "
                       "before the plots are complete; no partial plot was left)") from None
    return [directory / name for name in names]


def write_plots(study: Study, directory: str | os.PathLike[str], overwrite: bool = False) -> list[Path]:
    """Write the figures of ``study`` (:func:`study_plot_names`, headline_K.png first) into
    ``directory`` (created if missing; its parent must exist; see :func:`claim`) and return their
    paths."""
    variants = study.parameters["variants"]
    directory = claim(directory, study_plot_names(variants), overwrite)
    figures = ([headline_figure(study, p) for p in "KWL"] + [variant_figure(study, v) for v in variants]
               + [distribution_figure(study_distribution_rows(study)), study_compute_figure(study)])
    return _write(directory, study_plot_names(variants), figures)


def write_run_plots(runs: Mapping[str, HittingTimes], directory: str | os.PathLike[str],
                    overwrite: bool = False) -> list[Path]:
    """One figure ``<run>.png`` per run (:func:`distribution_figure` of that run) in ``directory``
    (created if missing; see :func:`claim`)."""
    names = run_plot_names(runs)
    directory = claim(directory, names, overwrite, "--out")
    figures = [distribution_figure([(run_title(name, r), r, as_number(r.parameters.get("exact_mean")))])
               for name, r in runs.items()]
    return _write(directory, names, figures)


def write_training_plots(run: TrainingRun, directory: str | os.PathLike[str],
                         optimum: float | None = None, overwrite: bool = False) -> list[Path]:
    """``<method>_hitting_time.png`` and ``<method>_abcd.png`` (:func:`training_figures`; a
    transformer's ``<method>_transformer_hitting_time.png``) in ``directory`` (created if
    missing; see :func:`claim`)."""
    names = training_plot_names(run.method, run.parametrisation == "transformer")
    directory = claim(directory, names, overwrite)
    return _write(directory, names, training_figures(run, optimum))


def write_topology_plots(study: TopologyStudy, directory: str | os.PathLike[str],
                         overwrite: bool = False) -> list[Path]:
    """``growth_<parameter>.png`` per size parameter (:func:`topology_figure`) in ``directory``
    (created if missing; see :func:`claim`)."""
    parameters = list(study.parameters["parameters"])
    directory = claim(directory, topology_plot_names(parameters), overwrite)
    return _write(directory, topology_plot_names(parameters), [topology_figure(study, p) for p in parameters])
