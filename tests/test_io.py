import json
import os
from importlib import metadata

import boost_histogram as bh
import h5py
import hist
import numpy as np
import pytest
import uhi.io.hdf5

import edgewalk
from edgewalk import io
from edgewalk.errors import InputError
from edgewalk.planning import simulate
from edgewalk.graph import path_star
from edgewalk.policy import pretrained
from edgewalk.result import HittingTimes


@pytest.fixture(scope="module")
def simulated() -> HittingTimes:
    # A short max_steps so that some rollouts are censored (the histogram's overflow).
    r = simulate(pretrained(path_star(3, 2, 2)), rollouts=200, seed=7, threads=1, max_steps=30, bins=8)
    assert r.censored > 0 and r.hits > 0
    return r


@pytest.fixture()
def big() -> HittingTimes:
    """A hand-made result whose sum of squares exceeds 2**64 and whose seed is 2**64 - 1."""
    return HittingTimes(
        counts=np.array([0, 3, 1, 0], dtype=np.int64), edges=np.arange(5, dtype=np.int64) * 2**30, hits=4, censored=2,
        total=3 * 2**31 + 2**32, total_of_squares=2**70 + 12345, steps=2**40,
        seconds=1.5, compile_seconds=0.25,
        parameters={"graph": {"depths": [2, 1], "lanes": [[2, 3], [1]]},
                    "policy": {"name": "parametric", "a": [0.5, 0.9]}, "target": "t2",
                    "rollouts": 6, "seed": 2**64 - 1, "max_steps": 2**32, "bins": 4,
                    "backend": "cython", "threads": 3, "exact_mean": 1.25e9},
    )


def assert_same(a: HittingTimes, b: HittingTimes) -> None:
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.counts.dtype == np.int64
    for key in ("bin_width", "hits", "censored", "total", "total_of_squares", "steps", "parameters"):
        assert getattr(a, key) == getattr(b, key), key
        assert type(getattr(a, key)) is type(getattr(b, key)), key


def test_round_trip(tmp_path, simulated, big):
    path = tmp_path / "runs.h5"
    io.write(path, {"sim": simulated, "big": big})
    back = io.read(path)
    assert sorted(back) == ["big", "sim"]
    assert_same(back["sim"], simulated)
    assert_same(back["big"], big)
    assert back["big"].total_of_squares == 2**70 + 12345
    assert back["big"].parameters["seed"] == 2**64 - 1
    assert back["sim"].seconds == simulated.seconds
    assert back["sim"].mean == simulated.mean


def test_histogram_opens_with_hist_and_boost_histogram(tmp_path, simulated):
    path = tmp_path / "runs.h5"
    io.write(path, {"sim": simulated})
    with h5py.File(path, "r") as f:
        group = f["runs/sim/histogram"]
        opened = [hist.Hist(uhi.io.hdf5.read(group)), bh.Histogram(uhi.io.hdf5.read(group))]
    opened.append(io.read_hist(path, "sim"))
    for h in opened:
        np.testing.assert_array_equal(h.values(), simulated.counts)
        assert h.view(flow=True)[-1] == simulated.censored
        np.testing.assert_array_equal(h.axes[0].edges, simulated.bin_edges)
    with pytest.raises(ValueError, match="nope"):
        io.read_hist(path, "nope")


def test_attributes_record_the_run(tmp_path, simulated, big):
    path = tmp_path / "runs.h5"
    io.write(path, {"sim": simulated, "big": big})
    with h5py.File(path, "r") as f:
        sim, large = f["runs/sim"].attrs, f["runs/big"].attrs
        assert sim["edgewalk_version"] == metadata.version("edgewalk")
        versions = json.loads(sim["versions"])
        assert versions["edgewalk"] == metadata.version("edgewalk")
        assert versions["numpy"] == np.__version__ and versions["h5py"] == h5py.__version__
        assert set(versions) >= {"python", "scipy", "numba", "hist", "boost-histogram", "uhi"}
        assert sim["seed"] == 7 and sim["backend"] == "numba" and sim["threads"] == 1
        assert json.loads(sim["graph"]) == {"W": 3, "K": 2, "L": 2}
        assert json.loads(sim["policy"]) == {"name": "pretrained"}
        assert sim["hits"] == simulated.hits and sim["censored"] == simulated.censored
        assert sim["mean"] == pytest.approx(simulated.mean)
        assert large["seed"].dtype == np.uint64 and int(large["seed"]) == 2**64 - 1
        assert large["backend"] == "cython" and large["threads"] == 3
        assert large["total_of_squares"] == str(2**70 + 12345)
        assert large["total_of_squares_float"] == float(2**70)


def test_written_file_has_umask_permissions(tmp_path, simulated):
    path = tmp_path / "runs.h5"
    io.write(path, {"sim": simulated})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, simulated, big, error):
    path = tmp_path / "runs.h5"
    io.write(path, {"good": simulated})
    before = path.read_bytes()
    real_write = uhi.io.hdf5.write
    calls = []

    def fail_on_second_histogram(group, histogram, **kwargs):
        calls.append(group.name)
        if len(calls) == 2:
            raise error("interrupted")
        real_write(group, histogram, **kwargs)

    monkeypatch.setattr(uhi.io.hdf5, "write", fail_on_second_histogram)
    with pytest.raises(error):
        io.write(path, {"first": big, "second": simulated})
    assert len(calls) == 2  # the failure happened midway, after one run was written
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["runs.h5"]
    assert list(io.read(path)) == ["good"]


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch, simulated):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(uhi.io.hdf5, "write", fail)
    with pytest.raises(KeyboardInterrupt):
        io.write(tmp_path / "runs.h5", {"sim": simulated})
    assert os.listdir(tmp_path) == []


def test_bad_run_names_are_rejected_before_writing(tmp_path, simulated):
    with pytest.raises(ValueError, match="group name"):
        io.write(tmp_path / "runs.h5", {"a/b": simulated})
    assert os.listdir(tmp_path) == []


def test_check_writable_accepts_a_good_path_and_leaves_nothing(tmp_path):
    io.check_writable(tmp_path / "runs.h5")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: d / "missing" / "runs.h5", "does not exist"),
        (lambda d: (d / "file").touch() or d / "file" / "runs.h5", "not a directory"),
        (lambda d: d, "is a directory"),
    ],
)
def test_check_writable_rejects(tmp_path, make, reason):
    path = make(tmp_path)
    entries = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=f"--out.*{reason}"):
        io.check_writable(path)
    assert sorted(os.listdir(tmp_path)) == entries


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only directories")
def test_check_writable_rejects_read_only_directory(tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="--out.*cannot create"):
            io.check_writable(readonly / "runs.h5")
    finally:
        readonly.chmod(0o700)
    assert os.listdir(readonly) == []


def test_a_format_version_newer_than_the_reader_is_refused_by_every_reader(tmp_path, simulated):
    """Every reader goes through io.runs.open_results, which refuses a root format_version it
    does not know, naming the file, the version found and the versions it reads."""
    path = tmp_path / "newer.h5"
    edgewalk.write(path, {"a": simulated})
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    words = f"{path}: edgewalk file format version 99; this edgewalk .* reads format version 1; .*newer edgewalk"
    for reader in (edgewalk.read, io.file_kind, io.read_study, io.read_training):
        with pytest.raises(InputError, match=words):
            reader(path)
    assert not io.is_run_file(path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 1
    assert edgewalk.read(path)["a"].hits == simulated.hits
