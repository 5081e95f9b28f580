"""What every edgewalk file shares: atomic writes, the output checks, attribute encoding and the
versions recorded beside every result."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import InputError

FORMAT = "edgewalk.hitting_times"
FORMAT_VERSION = 1
FORMAT_VERSIONS = (1,)  # the root format_version values this edgewalk reads
_DEPENDENCIES = ("numpy", "scipy", "numba", "h5py", "hist", "boost-histogram", "uhi")


def versions() -> dict[str, str | None]:
    """The versions of edgewalk, python and the libraries that produce or read a result."""
    return dict(_versions())


@functools.cache
def _versions() -> tuple[tuple[str, str | None], ...]:
    # looked up once per process: each lookup scans the installed distributions (tens of ms),
    # and a checkpoint stamps every unit it writes
    found: dict[str, str | None] = {"edgewalk": version("edgewalk"), "python": platform.python_version()}
    for name in _DEPENDENCIES:
        found[name] = version(name)
    return tuple(found.items())


@functools.cache
def version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def stamp(attrs: h5py.AttributeManager) -> None:
    """Record the package version and its dependencies' versions."""
    attrs["edgewalk_version"] = version("edgewalk") or "unknown"
    attrs["versions"] = to_json(versions())


def check_format_version(f: h5py.File, path: str | os.PathLike[str]) -> None:
    """Refuse (InputError naming the file, its version and the versions read) an edgewalk file
    whose root ``format_version`` this edgewalk does not know, such as one written by a newer
    edgewalk. Files of another format, and files without a version, are left to the readers."""
    if f.attrs.get("format") != FORMAT or "format_version" not in f.attrs:
        return
    found = f.attrs["format_version"]
    try:
        known = int(found) in FORMAT_VERSIONS and float(found) == int(found)
    except (TypeError, ValueError):
        known = False
    if known:
        return
    shown = found.item() if isinstance(found, np.generic) else found
    newer = isinstance(shown, int) and shown > max(FORMAT_VERSIONS)
    supported = " and ".join(map(str, FORMAT_VERSIONS))
    raise InputError(f"{path}: edgewalk file format version {shown!r}; this edgewalk "
                     f"({version('edgewalk') or 'unknown version'}) reads format version{'s' if len(FORMAT_VERSIONS) > 1 else ''} "
                     f"{supported}" + ("; it was written by a newer edgewalk: upgrade edgewalk to read it" if newer else ""))


def check_writable(path: str | os.PathLike[str], option: str = "--out") -> None:
    """Raise InputError (naming ``option`` and the reason) unless a file can be created at
    ``path``. Leaves nothing behind."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory")
    if path.exists() and not path.is_file():
        raise InputError(f"{option} {path}: is not a regular file (a device, pipe or socket); choose a file")
    if not parent.exists():
        raise InputError(f"{option} {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is not a directory")
    # Creating a file is the only reliable test (permissions, root, read-only mounts, ACLs).
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as error:
        raise InputError(f"{option} {path}: cannot create a file in {parent}: {error.strerror}") from None
    os.close(fd)
    os.unlink(probe)


def check_new_output(path: str | os.PathLike[str], option: str = "--out", overwrite: bool = False) -> None:
    """:func:`check_writable`, and refuse an existing file unless ``overwrite``."""
    check_writable(path, option)
    if Path(path).exists() and not overwrite:
        raise InputError(f"{option} {path}: exists; give --overwrite to replace it, or choose another file")


def check_not_an_input(path: str | os.PathLike[str], inputs: dict[str, str | os.PathLike[str] | None],
                       option: str = "--out") -> None:
    """Refuse an output at ``path`` that is one of the ``inputs`` (option -> path, None for
    options not given), whatever --overwrite says: writing it would destroy what is read. Only
    inputs that are existing files count (an option such as --init also takes names)."""
    for input_option, input_path in inputs.items():
        if input_path is not None and os.path.isfile(input_path) and same_file(path, input_path):
            raise InputError(f"{option} {path}: is also the input {input_option}; write to another file")


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file (as far as the file system can tell)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def to_json(value: Any) -> str:
    def plain(x: Any) -> Any:
        if isinstance(x, (np.generic, np.ndarray)):
            return x.tolist()
        raise TypeError(f"{type(x).__name__} is not JSON serializable")

    return json.dumps(value, default=plain)


def attr_value(value: Any) -> Any:
    """One parameter as an HDF5 attribute value (for inspection; readers use the JSON copy)."""
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
    return to_json(value)
