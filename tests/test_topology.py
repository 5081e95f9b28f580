"""The topology study (edgewalk sweep --family): growth fits that can tell exponential from
polynomial growth, the star graph's closed forms, the study file (version 2) and its check."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgewalk as ew
from edgewalk import io
from edgewalk.cli import main
from edgewalk.errors import CostError, InputError
from edgewalk.study import topology


def test_growth_fits_tell_exponential_from_polynomial_and_flat():
    x = np.arange(3, 9)
    kinds = {}
    for name, y in (("exp", 3.0 * 2.0 ** x), ("poly", 5.0 * x ** 2.0), ("flat", 7.0 + 0 * x),
                    ("down", 100.0 * 0.5 ** x)):
        fit = topology.fit_growth(x, y)
        kinds[name] = topology._judge(name, "x", fit)[0], fit
    assert kinds["exp"][0] == "exponential" and kinds["exp"][1][0] == pytest.approx(2.0)
    assert kinds["poly"][0] == "polynomial" and kinds["poly"][1][4] == pytest.approx(2.0)
    assert kinds["flat"][0] == "flat" and kinds["down"][0] == "decreasing"
    # noisy Monte Carlo means of a polynomial are still polynomial, with the exponent in the interval
    rng = np.random.default_rng(1)
    y = 5.0 * x ** 1.5
    sigma = 0.01 * y
    fit = topology.fit_growth(x, y + rng.normal(0, sigma), sigma)
    assert topology._judge("p", "x", fit)[0] == "polynomial" and fit[5] <= 1.5 <= fit[6]


def test_family_grids_are_checked_before_any_work():
    with pytest.raises(InputError, match="family tree has the parameters branching, depth"):
        topology.FamilyGrid("tree", {"branching": [2], "rows": [2]}, {"branching": 2, "depth": 2})
    with pytest.raises(InputError, match="depth: every value"):
        topology.FamilyGrid("tree", {"branching": [2], "depth": [0, 2]}, {"branching": 2, "depth": 2})
    grid = topology.FamilyGrid("tree", {"branching": [3], "depth": [1, 3]}, {"branching": 2, "depth": 2})
    assert grid.axes == {"branching": (2, 3), "depth": (1, 2, 3)}
    assert grid.cells() == [(2, 1), (2, 2), (2, 3), (3, 2)]
    with pytest.raises(CostError, match="would take about"):
        topology.check_grid(topology.FamilyGrid("tree", {"branching": [2], "depth": [14]},
                                                {"branching": 2, "depth": 2}), topology.VARIANTS)


def test_the_star_graph_study_has_its_closed_forms(tmp_path, capsys):
    """On Bachmann & Nagarajan's star graph (d arms of length l, target uniform over the arm ends)
    converged SFT goes forward deterministically, and getting out of a wrong arm needs l - 1
    upward moves in a row at probability 1/2 each: E_sft = l + (d - 1)(2^(l+1) - 2). RLVR walks
    each wrong arm down and back: E_rlvr = l (2d - 1). So the separation grows like 2^l / l in l
    and stays bounded in d."""
    out = tmp_path / "star.h5"
    assert main(["sweep", "--family", "star", "--degree", "2-4", "--length", "1-7", "--base", "3,4",
                 "--rollouts", "3000", "--budget", "1", "--no-plots", "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    study = io.read_study(out)
    assert isinstance(study, topology.TopologyStudy) and study.parameters["family"] == "star"
    for cell in study.cells:
        d, l = cell.point
        if cell.variant == "sft":
            assert cell.exact == pytest.approx(l + (d - 1) * (2 ** (l + 1) - 2), rel=1e-3)
        if cell.variant == "rlvr":
            assert cell.exact == pytest.approx(l * (2 * d - 1), rel=1e-6)
        if cell.variant == "separation":
            assert cell.exact == pytest.approx(study.value("sft", cell.point) / study.value("rlvr", cell.point))
    fits = {(f.series, f.parameter): f for f in study.fits}
    assert fits["sft", "length"].growth == "exponential"
    assert fits["sft", "length"].rate == pytest.approx(2.0, abs=0.01)
    assert fits["separation", "length"].growth == "exponential"
    assert fits["rlvr", "length"].growth == "polynomial"
    assert fits["rlvr", "length"].power == pytest.approx(1.0, abs=1e-6)
    assert fits["separation", "degree"].growth != "exponential"
    # the file keeps every cell, fit and run; Monte Carlo agrees with exact
    assert len(report["cells"]) == len(study.cells) and len(report["fits"]) == len(study.fits)
    assert main(["check", str(out)]) == 0
    comparisons = topology.compare_with_exact(study)
    assert len(comparisons) == 4 * 9 and all(abs(c.z) < 4.5 for c in comparisons)


def test_a_topology_study_file_reads_back_exactly(tmp_path):
    grid = topology.FamilyGrid("grid", {"rows": [2, 3], "columns": [2, 3]}, {"rows": 2, "columns": 2})
    study = topology.sweep_family(grid, ("pretrained", "sft", "rlvr"), rollouts=500, budget=1)
    path = tmp_path / "g.h5"
    io.write_study(path, study)
    back = io.read_study(path)
    assert back.parameters == json.loads(json.dumps(study.parameters))
    assert repr(back.cells) == repr(study.cells)  # repr: nan equals nan
    assert json.dumps([f.to_json() for f in back.fits]) == json.dumps([f.to_json() for f in study.fits])
    assert set(back.runs) == set(study.runs)
    # a single target (the grid's far corner): SFT and RLVR both learn a shortest path
    for cell in back.cells:
        if cell.variant in ("sft", "rlvr"):
            assert cell.exact == pytest.approx(sum(cell.point) - 2, rel=1e-3)


def test_a_topology_study_loads_as_a_dataset_indexed_by_the_family_parameters(tmp_path):
    pytest.importorskip("xarray")
    grid = topology.FamilyGrid("tree", {"branching": [2], "depth": [1, 2, 3]}, {"branching": 2, "depth": 2})
    study = topology.sweep_family(grid, ("pretrained", "sft", "rlvr"), rollouts=500, budget=1)
    path = tmp_path / "t.h5"
    io.write_study(path, study)
    ds = ew.load(path)
    assert ds.attrs["file_kind"] == "topology study"
    assert list(ds.indexes["cell"].names) == ["branching", "depth"]
    cell = next(c for c in study.cells if c.variant == "sft" and c.point == (2, 3))
    one = ds.sel(variant="sft", branching=2, depth=3)
    assert float(one["exact"]) == cell.exact and one["run"].item() == cell.run
    assert float(one["mean"]) == study.mc(cell).mean
    fit = next(f for f in study.fits if f.series == "separation" and f.parameter == "depth")
    assert float(ds.fit_rate.sel(series="separation", parameter="depth")) == fit.rate
    hists = ew.load_histograms(path)
    assert hists["sft", 2, 3].sum(flow=True) == study.mc(cell).rollouts


def test_plots_of_a_topology_study(tmp_path):
    out = tmp_path / "t.h5"
    assert main(["sweep", "--family", "tree", "--branching", "2", "--depth", "1-3", "--base", "2,2",
                 "--variants", "pretrained,sft,rlvr", "--rollouts", "500", "--out", str(out)]) == 0
    assert sorted(p.name for p in (tmp_path / "t-plots").iterdir()) == ["growth_branching.png", "growth_depth.png"]


def test_a_sweep_file_with_a_family_runs_the_topology_study(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.toml").write_text('family = "star"\nrollouts = 500\nbudget = 1.0\nvariants = ["sft", "rlvr"]\n'
                                     'output = "star.h5"\n[grid]\ndegree = [2, 3]\nlength = "1-3"\nbase = [2, 2]\n')
    assert main(["sweep", "t.toml", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    study = io.read_study(tmp_path / "star.h5")
    assert report["out"] == "star.h5" and study.parameters["axes"] == {"degree": [2, 3], "length": [1, 2, 3]}
    assert study.value("separation", (2, 3)) == pytest.approx((3 + 14) / 9, rel=1e-3)  # the closed forms
    for argv, words in ((["--shard", "0/2"], "runs in one process"), (["--dask", "local"], "runs in one process")):
        with pytest.raises(SystemExit):
            main(["sweep", "t.toml", *argv])
        assert words in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text('family = "star"\nblock_rollouts = 5\n[grid]\ndegree = [2]\nlength = [1]\nbase = [2, 1]\n')
    with pytest.raises(SystemExit):
        main(["sweep", "bad.toml"])
    assert "bad.toml: unknown key(s) block_rollouts" in capsys.readouterr().err
