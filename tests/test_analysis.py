"""`edgewalk.load` (results as xarray Datasets), `edgewalk.load_histograms` and `edgewalk plot`."""

from __future__ import annotations

import json
import math

import h5py
import hist
import numpy as np
import pytest

import edgewalk
from edgewalk import analysis, io, study
from edgewalk.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny study, a run file (two runs, one under the search wrapper) and a training file."""
    root = tmp_path_factory.mktemp("analysis")
    paths = {"study": root / "study.h5", "runs": root / "runs.h5", "single": root / "single.h5",
             "training": root / "training.h5"}
    assert main(["sweep", "--W", "2,3", "--K", "1-3", "--L", "2", "--base", "2,2,2", "--rollouts", "300",
                 "--no-plots", "--out", str(paths["study"]), "--json"]) == 0
    graph = edgewalk.path_star(2, 2, 2)
    edgewalk.write(paths["runs"], {
        "rlvr_W2_K2_L2": edgewalk.simulate(edgewalk.rlvr(graph), rollouts=400, seed=1),
        "sft+search-mask_W2_K2_L2": edgewalk.simulate(edgewalk.sft(graph), rollouts=400, seed=2, search="mask"),
    })
    assert main(["run", "--policy", "pretrained", "-W", "2", "-K", "1", "-L", "2", "-N", "200",
                 "--out", str(paths["single"]), "--json"]) == 0
    assert main(["train", "--method", "rlvr", "-W", "2", "-K", "1", "-L", "1", "--iterations", "20",
                 "--no-plots", "--out", str(paths["training"]), "--json"]) == 0
    return paths


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# --- the study Dataset -----------------------------------------------------------------------

def test_load_is_exported():
    assert edgewalk.load is analysis.load and "load" in edgewalk.__all__
    assert edgewalk.load_histograms is analysis.load_histograms


def test_study_dataset_layout(files):
    ds = edgewalk.load(files["study"])
    s = io.read_study(files["study"])
    assert ds.attrs["file_kind"] == "study"
    assert list(ds["variant"].values) == s.parameters["variants"]
    assert dict(ds.sizes) == {"variant": 6, "cell": len(study.grid_of(s).cells()), "parameter": 3}
    assert list(ds.indexes["cell"].names) == ["W", "K", "L"]
    assert sorted(zip(ds["W"].values.tolist(), ds["K"].values.tolist(), ds["L"].values.tolist())) == \
        study.grid_of(s).cells()
    for name in ("mean", "stderr", "mean_draws", "exact", "z", "rollouts", "censored", "estimated_seconds", "run"):
        assert ds[name].dims == ("variant", "cell"), name
    for name in ("fit_kind", "fit_estimate", "fit_ci_low", "fit_ci_high", "fit_stated", "fit_agrees"):
        assert ds[name].dims == ("variant", "parameter"), name
    # The study's parameters as attributes (dicts as JSON strings).
    assert ds.attrs["rollouts"] == 300 and list(ds.attrs["base"]) == [2, 2, 2]
    assert json.loads(ds.attrs["bounds"]) == s.parameters["bounds"]
    assert ds["bound"].sel(variant="sft").item() == "Theta(W L^K)"


def test_study_values_equal_those_of_study_read(files):
    ds = edgewalk.load(files["study"])
    s = io.read_study(files["study"])
    z = {(c.variant, c.W, c.K, c.L): c.z for c in study.compare_with_exact(s)}
    simulated = 0
    for cell in s.cells:
        row = ds.sel(variant=cell.variant, W=cell.W, K=cell.K, L=cell.L)
        assert _same(row["exact"].item(), cell.exact)
        assert row["estimated_seconds"].item() == cell.estimated_seconds
        assert row["run"].item() == cell.run
        result = s.mc(cell)
        if result is None:
            assert math.isnan(row["mean"].item()) and row["rollouts"].item() == 0
            continue
        simulated += 1
        assert row["mean"].item() == result.total / result.hits
        assert row["stderr"].item() == result.stderr
        assert row["mean_draws"].item() == result.draws_total / result.hits
        assert row["rollouts"].item() == result.rollouts == 300
        assert row["hits"].item() == result.hits and row["censored"].item() == result.censored
        assert _same(row["z"].item(), z.get((cell.variant, *cell.point), math.nan))
    assert simulated > 0
    # Exact values where the solver applies, nan under the search wrapper.
    assert np.isfinite(ds["exact"].sel(variant="rlvr")).all()
    assert np.isnan(ds["exact"].sel(variant="sft+search")).all()
    assert ds["exact"].sel(variant="pretrained", W=2, K=1, L=2).item() == 30.0


def test_selection_along_an_axis(files):
    ds = edgewalk.load(files["study"])
    along_k = ds.sel(W=2, L=2)
    assert along_k["K"].values.tolist() == [1, 2, 3]
    sft = along_k["exact"].sel(variant="sft").values
    assert np.all(np.diff(sft) > 0)
    along_w = ds.sel(K=2, L=2)["exact"].sel(variant="pretrained")
    assert along_w["W"].values.tolist() == [2, 3]
    assert along_w.sel(W=3).item() == pytest.approx((2 * 3 - 1) * (1 + 2 + 1) * (1 + 2 * 3))


def test_fits_are_present_and_equal_to_the_study(files):
    ds = edgewalk.load(files["study"])
    s = io.read_study(files["study"])
    assert s.fits
    for fit in s.fits:
        row = ds.sel(variant=fit.variant, parameter=fit.parameter)
        assert row["fit_kind"].item() == fit.kind
        for name in ("estimate", "ci_low", "ci_high", "stated_value", "r2", "exponent"):
            assert _same(row[f"fit_{name}"].item(), getattr(fit, name)), name
        assert row["fit_stated"].item() == fit.stated and row["fit_verdict"].item() == fit.verdict
        assert json.loads(row["fit_points"].item()) == list(fit.points)
        assert _same(row["fit_agrees"].item(), math.nan if fit.agrees is None else float(fit.agrees))
    fitted = {(f.variant, f.parameter) for f in s.fits}
    for variant in ds["variant"].values:
        for parameter in "WKL":
            if (variant, parameter) not in fitted:  # L has one value here: no fit along it
                row = ds.sel(variant=variant, parameter=parameter)
                assert row["fit_kind"].item() == "" and math.isnan(row["fit_estimate"].item())
    assert ds["fit_kind"].sel(variant="sft", parameter="K").item() == "exponential"


def test_study_histograms_are_the_stored_hist_objects(files):
    histograms = edgewalk.load_histograms(files["study"])
    s = io.read_study(files["study"])
    names = {(c.variant, c.W, c.K, c.L): c.run for c in s.cells if c.run}
    assert histograms.keys() == names.keys()
    for key, h in histograms.items():
        result = s.runs[names[key]]
        assert isinstance(h, hist.Hist)
        assert h.sum(flow=True) == result.rollouts == 300
        assert h.values().tolist() == result.counts.tolist()
        assert h.view(flow=True)[-1] == result.censored
        assert h == io.read_hist(files["study"], names[key])


# --- run and training files ------------------------------------------------------------------

def test_load_run_file(files):
    ds = edgewalk.load(files["runs"])
    runs = edgewalk.read(files["runs"])
    assert ds.attrs["file_kind"] == "runs"
    assert ds["run"].values.tolist() == list(runs)
    for name, result in runs.items():
        row = ds.sel(run=name)
        assert row["mean"].item() == result.total / result.hits
        assert row["stderr"].item() == result.stderr
        assert row["rollouts"].item() == 400 and row["censored"].item() == result.censored
        assert (row["W"].item(), row["K"].item(), row["L"].item()) == (2, 2, 2)
    plain = ds.sel(run="rlvr_W2_K2_L2")
    graph = edgewalk.path_star(2, 2, 2)
    exact_mean = edgewalk.expected_hitting_time(edgewalk.rlvr(graph), graph.leaf(1))
    assert plain["exact_mean"].item() == pytest.approx(exact_mean)
    assert plain["z"].item() == pytest.approx((plain["mean"].item() - exact_mean) / plain["stderr"].item())
    assert plain["policy"].item() == "rlvr" and plain["search"].item() == "none"
    searched = ds.sel(run="sft+search-mask_W2_K2_L2")
    assert searched["search"].item() == "mask"
    result = runs["sft+search-mask_W2_K2_L2"]
    assert searched["mean_draws"].item() == result.draws_total / result.hits
    assert math.isnan(searched["exact_mean"].item()) and math.isnan(searched["z"].item())

    histograms = edgewalk.load_histograms(files["runs"])
    assert histograms.keys() == runs.keys()
    assert all(isinstance(h, hist.Hist) and h.sum(flow=True) == 400 for h in histograms.values())

    single = edgewalk.load(files["single"])
    assert single.sizes["run"] == 1 and single["policy"].item() == "pretrained"
    assert single["exact_mean"].item() == pytest.approx(30.0)


def test_load_training_file(files):
    ds = edgewalk.load(files["training"])
    run = io.read_training(files["training"])
    assert ds.attrs["file_kind"] == "training" and ds.attrs["method"] == "rlvr"
    assert ds["hitting_time"].values.tolist() == run.hitting_time.tolist()
    assert ds["iteration"].values.tolist() == run.iteration.tolist()
    assert ds["a"].dims == ("iteration", "depth") and ds["depth"].values.tolist() == [1]
    assert ds.attrs["optimum"] == pytest.approx(json.loads(ds.attrs["summary"])["optimum"])
    with pytest.raises(ValueError, match="no histograms"):
        edgewalk.load_histograms(files["training"])


def test_load_rejects_other_files(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        edgewalk.load(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(ValueError, match="not an edgewalk file"):
        edgewalk.load(tmp_path / "other.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="cannot read it as HDF5"):
        edgewalk.load(tmp_path / "text.h5")


# --- edgewalk plot ---------------------------------------------------------------------------

def _pngs(paths) -> None:
    assert paths
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == PNG, path


@pytest.mark.slow
def test_plot_study_file(files, tmp_path, capsys):
    out = tmp_path / "study-plots"
    assert main(["plot", str(files["study"]), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "study" and report["out"] == str(out)
    names = sorted(p.split("/")[-1] for p in report["plots"])
    assert names == sorted([f"K_{v.replace('+', '_')}.png" for v in study.DEFAULT_VARIANTS]
                           + ["histograms.png", "compute_by_depth.png", "headline_K.png", "headline_W.png",
                              "headline_L.png"])
    _pngs(report["plots"])


def test_plot_run_file(files, tmp_path, capsys):
    out = tmp_path / "run-plots"
    assert main(["plot", str(files["runs"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(p.split("/")[-1] for p in printed) == ["rlvr_W2_K2_L2.png", "sft_search-mask_W2_K2_L2.png"]
    _pngs(printed)


def test_plot_training_file_with_the_default_directory(files, capsys):
    assert main(["plot", str(files["training"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "training"
    assert report["out"] == str(files["training"].with_name("training-plots"))
    assert sorted(p.split("/")[-1] for p in report["plots"]) == ["rlvr_abcd.png", "rlvr_hitting_time.png"]
    _pngs(report["plots"])


def test_plot_errors_name_the_parameter(files, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(tmp_path / "missing.h5")])
    assert exit_info.value.code == 2 and "FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(files["study"]), "--out", str(tmp_path / "no" / "such")])
    assert exit_info.value.code == 2 and "--out" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(files["study"]), "--out", str(tmp_path / "a-file")])
    assert exit_info.value.code == 2 and "--out" in capsys.readouterr().err
