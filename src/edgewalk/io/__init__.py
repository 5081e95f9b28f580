"""Every file edgewalk writes and reads (HDF5 through h5py; histograms in the UHI layout).

- :mod:`.hdf5`: atomic writes, output checks, versions;
- :mod:`.runs`: run files (``edgewalk run``, ``edgewalk.write``/``read``);
- :mod:`.training`: training files (``edgewalk train``);
- :mod:`.study`: study files (``edgewalk sweep``);
- :mod:`.units`: the units files of sharded and resumable sweeps.
"""

from .hdf5 import FORMAT, atomic_file, check_new_output, check_not_an_input, check_writable, same_file, versions
from .runs import add_runs, check_runs_output, is_run_file, read, read_hist, write, write_runs
from .study import STUDY_FORMAT, read_study, write_study
from .training import TRAINING_FORMAT, read_training, read_training_summary, write_training

__all__ = ["FORMAT", "STUDY_FORMAT", "TRAINING_FORMAT", "add_runs", "atomic_file", "check_new_output", "check_not_an_input",
           "check_runs_output", "check_writable", "file_kind", "is_run_file", "read", "same_file",
           "read_hist", "read_study", "read_training", "read_training_summary", "versions",
           "write", "write_runs", "write_study", "write_training"]


def file_kind(path) -> str:
    """"study", "training" or "runs" for a file written by ``edgewalk sweep``, ``edgewalk train``
    or ``edgewalk run`` (``edgewalk.write``). Raises InputError naming the file otherwise."""
    import os

    import h5py

    from ..errors import InputError
    from .runs import open_results
    from .study import is_study_file
    from .training import is_training_file

    if os.path.isdir(path):
        raise InputError(f"FILE {path}: is a directory")
    if not os.path.exists(path):
        raise InputError(f"FILE {path}: no such file")
    with open_results(path) as f:
        if is_study_file(f):
            return "study"
        if is_training_file(f):
            return "training"
        if f.attrs.get("format") == FORMAT and isinstance(f.get("runs"), h5py.Group):
            return "runs"
    raise InputError(f"FILE {path}: not an edgewalk file (written by `edgewalk sweep`, "
                     "`edgewalk run` or `edgewalk train`)")
