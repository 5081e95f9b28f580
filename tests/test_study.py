"""The scaling study: growth fits, the SFT-in-K disagreement, `edgewalk sweep` and `edgewalk check`."""

from __future__ import annotations

import json
import math
import shutil

import h5py
import numpy as np
import pytest

import edgewalk
from edgewalk import io, study
from edgewalk.cli import main
from edgewalk.exact import expected_hitting_time
from edgewalk.graph import StateKind, path_star

FIT_KEYS = {"variant", "parameter", "kind", "estimate", "ci_low", "ci_high", "stated"}


# --- the fits on synthetic data -------------------------------------------------------------

def test_linear_fit_recovers_a_known_slope_and_its_interval_covers_it():
    rng = np.random.default_rng(1)
    x = np.arange(1, 11)
    sigma = np.full(len(x), 0.5)
    covered = 0
    for _ in range(200):
        y = 3.0 + 2.0 * x + rng.normal(0, sigma)
        slope, low, high, r2 = study.fit_growth(x, y, sigma, "linear")
        assert abs(slope - 2.0) < 0.3 and r2 > 0.95
        covered += low <= 2.0 <= high
    assert 180 <= covered <= 200  # a 95% interval: about 190 of 200


def test_exponential_fit_recovers_a_known_base_per_unit():
    rng = np.random.default_rng(2)
    x = np.arange(2, 9)
    truth = 5.0 * 1.7**x
    sigma = 0.01 * truth
    base, low, high, r2 = study.fit_growth(x, truth + rng.normal(0, sigma), sigma, "exponential")
    assert base == pytest.approx(1.7, rel=0.01)
    assert low <= 1.7 <= high and high - low < 0.05
    # Exact (noiseless) data: the interval collapses onto the value.
    base, low, high, _ = study.fit_growth(x, truth, None, "exponential")
    assert low == pytest.approx(1.7, rel=1e-9) and high == pytest.approx(1.7, rel=1e-9)


def test_a_monte_carlo_mean_with_zero_standard_error_is_fitted_not_a_singular_matrix():
    """A sweep of 5 rollouts per cell can draw one hitting time 5 times (standard error 0): its
    weight is then some 1e24 times its neighbour's, and the normal equations were singular
    (`edgewalk sweep --W 2 --K 1-2 --L 2 --base 2,1,2 --rollouts 5` exited 'Singular matrix')."""
    slope, _, _, _ = study.fit_growth([1, 2], [20.0, 14.2], [0.0, 4.7], "linear")
    assert slope == pytest.approx(-5.8)
    base, _, _, _ = study.fit_growth([1, 2], [20.0, 14.2], [0.0, 4.7], "exponential")
    assert base == pytest.approx(14.2 / 20.0)
    slope, low, high, _ = study.fit_growth([1, 2, 3], [20.0, 14.2, 9.0], [0.0, 4.7, 3.0], "linear")
    assert math.isfinite(slope) and low <= slope <= high


def test_a_sweep_of_few_rollouts_per_cell_writes_its_study_and_figures(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["sweep", "--W", "2", "--K", "1-2", "--L", "2", "--base", "2,1,2", "--rollouts", "5",
                 "--out", str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "s-plots").iterdir())
    assert "histograms.png" in names and len(names) == 11


def test_power_fit_finds_the_exponent_behind_a_constant_offset():
    x = np.arange(2, 9)
    fit = study.fit_power(x, 40.0 + 3.0 * x**2.0)
    assert fit.exponent == pytest.approx(2.0, abs=1e-6)
    assert fit.a == pytest.approx(40.0, rel=1e-6) and fit.b == pytest.approx(3.0, rel=1e-6)
    rng = np.random.default_rng(3)
    sigma = np.full(len(x), 1.0)
    noisy = study.fit_power(x, 40.0 + 3.0 * x + rng.normal(0, sigma), sigma)
    assert noisy.ci_low <= 1.0 <= noisy.ci_high


def test_bonferroni_threshold():
    assert study.bonferroni_threshold(1) == pytest.approx(3.2905, abs=1e-4)
    assert study.bonferroni_threshold(100) > study.bonferroni_threshold(10)


@pytest.mark.parametrize("text,values", [("2,4,6", (2, 4, 6)), ("1-4", (1, 2, 3, 4)), ("5,1-3,3", (1, 2, 3, 5))])
def test_grid_lists(text, values):
    assert study.parse_list(text, "--K") == values


def test_the_star_grid_holds_two_parameters_at_the_base():
    grid = study.Grid((2, 4), (1, 2), (3,), (4, 2, 5))  # the base values join their axes
    assert grid.W == (2, 4) and grid.L == (3, 5)
    assert grid.axis("W") == [(2, 2, 5), (4, 2, 5)]
    assert grid.axis("L") == [(4, 2, 3), (4, 2, 5)]
    assert len(grid.cells()) == 4  # (2,2,5) (4,1,5) (4,2,5) (4,2,3): the base counted once


# --- SFT in K: the exact growth disagrees with the stated base L ----------------------------

def test_sft_grows_by_about_7_2_per_depth_not_by_L():
    grid = study.Grid((6,), tuple(range(1, 16)), (5,), (6, 3, 5))
    result = study.sweep(grid, ["sft"], budget=0)  # exact only: no cell is simulated
    assert not result.runs
    fit = next(f for f in result.fits if f.parameter == "K")
    assert (fit.kind, fit.source, fit.points) == ("exponential", "exact", (12, 13, 14, 15))
    assert fit.estimate == pytest.approx(36 / 5, abs=0.03)  # (L+1)^2/L = 7.2
    assert not fit.ci_low <= 5 <= fit.ci_high
    assert fit.stated_value == pytest.approx(5.0)
    assert fit.agrees is False
    assert "disagrees" in fit.verdict and "+44" in fit.verdict
    assert "Theta(W L^K)" in fit.stated


# --- the command line: sweep, the file, check -----------------------------------------------

TINY = ["--W", "2-4", "--K", "1-4", "--L", "2-4", "--base", "3,2,3", "--rollouts", "3000",
        "--threads", "2", "--no-progress"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny sweep through the CLI: (its JSON, the file, the plot directory)."""
    directory = tmp_path_factory.mktemp("study")
    out, plots = directory / "study.h5", directory / "plots"
    import contextlib
    import io as stdio

    buffer = stdio.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["sweep", *TINY, "--out", str(out), "--plots", str(plots), "--json"]) == 0
    return json.loads(buffer.getvalue()), out, plots


def test_sweep_json_has_a_fit_per_variant_and_parameter(tiny):
    summary, out, plots = tiny
    fits = summary["fits"]
    assert {(f["variant"], f["parameter"]) for f in fits} == {
        (v, p) for v in study.DEFAULT_VARIANTS for p in "WKL"}
    for f in fits:
        assert FIT_KEYS <= f.keys()
        assert f["kind"] in ("linear", "exponential")
        assert isinstance(f["stated"], str) and f["stated"]
    kinds = {(f["variant"], f["parameter"]): f["kind"] for f in fits}
    assert kinds[("sft", "K")] == "exponential" and kinds[("rlvr", "K")] == "linear"
    rlvr_k = next(f for f in fits if (f["variant"], f["parameter"]) == ("rlvr", "K"))
    # every cell has Monte Carlo (leap), so the fits are on the means, with statistical intervals
    assert rlvr_k["source"] == "monte carlo"
    assert rlvr_k["ci_low"] <= 2 * (2 * 3 - 1) <= rlvr_k["ci_high"]  # d/dK of (2K+1)(2W-1) at W = 3
    assert rlvr_k["agrees"] is True
    assert {c["variant"] for c in summary["cells"]} == set(study.DEFAULT_VARIANTS)
    search_cells = [c for c in summary["cells"] if c["variant"].endswith("+search")]
    assert all(c["exact"] is None and c["mc_mean"] > 0 for c in search_cells)
    assert summary["out"] == str(out)
    names = sorted(p.name for p in plots.iterdir())
    assert "histograms.png" in names and "K_sft_search.png" in names and "headline_K.png" in names
    assert len(names) == 11
    assert all(p.stat().st_size > 1000 for p in plots.iterdir())


def test_the_file_round_trips(tiny):
    summary, out, _ = tiny
    stored = io.read_study(out)
    for written, read in zip(summary["fits"], stored.fits):
        for key, value in written.items():
            got = read.to_json()[key]
            if value is None and isinstance(got, float):
                assert math.isnan(got)
            else:
                assert got == value, key
    assert len(stored.cells) == len(summary["cells"])
    runs = edgewalk.read(out)  # the runs are an ordinary edgewalk results file
    assert set(runs) == {c["run"] for c in summary["cells"] if c["run"]}
    for cell in summary["cells"]:
        if cell["run"]:
            assert runs[cell["run"]].mean == cell["mc_mean"]
    with h5py.File(out) as f:
        assert f["study"].attrs["study_format"] == "edgewalk.study"
        assert json.loads(f["study"].attrs["parameters"])["base"] == [3, 2, 3]


def test_check_passes_a_good_file_and_fails_a_tampered_one(tiny, tmp_path, capsys):
    _, out, _ = tiny
    assert main(["check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "== sft (stated: Theta(W L^K))" in text and "all agree" in text

    tampered = tmp_path / "tampered.h5"
    shutil.copy(out, tampered)
    with h5py.File(tampered, "r+") as f:
        group = f["runs/pretrained_W3_K2_L3"]
        hits, stderr = int(group.attrs["hits"]), float(group.attrs["stderr"])
        shift = round(20 * stderr * hits)  # a consistent file whose mean is 20 standard errors off
        group.attrs["total"] = np.uint64(int(group.attrs["total"]) + shift)
        group.attrs["steps"] = np.uint64(int(group.attrs["steps"]) + shift)
    assert main(["check", str(tampered)]) == 1
    text = capsys.readouterr().out
    assert "beyond threshold" in text and "DISAGREEMENT" in text


def test_check_refuses_a_file_that_is_not_a_study(tmp_path, capsys):
    plain = tmp_path / "runs.h5"
    edgewalk.write(plain, {})
    with pytest.raises(SystemExit) as exit_info:
        main(["check", str(plain)])
    assert exit_info.value.code == 2
    assert "not an edgewalk study file" in capsys.readouterr().err


@pytest.mark.parametrize("argv,words", [
    (["--K", "0-3"], "--K"),
    (["--W", "x"], "--W"),
    (["--base", "3,2"], "--base"),
    (["--variants", "sft,greedy"], "--variants"),
    (["--rollouts", "0"], "rollouts"),
    (["--tail", "2"], "--tail"),
])
def test_bad_sweep_input_is_refused_before_any_work(tmp_path, capsys, argv, words):
    out = tmp_path / "x.h5"
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", *TINY, "--out", str(out), "--no-plots", *argv])
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err
    assert not out.exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tiny, tmp_path):
    _, out, _ = tiny
    target = tmp_path / "s.h5"
    shutil.copy(out, target)
    good = io.read_study(target)
    broken = study.Study(good.parameters, good.cells, good.fits, {"a/b": next(iter(good.runs.values()))})
    with pytest.raises(ValueError):
        io.write_study(target, broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    assert len(io.read_study(target).cells) == len(good.cells)


def test_trained_policies_replace_the_converged_limits():
    """With policies = "trained" the variants use policies trained by edgewalk.training: trained
    RLVR and distilled come within 1% of the converged RLVR value, trained SFT keeps its backward
    states at their pretrained values (b = L/(L+1)) and differs from the converged SFT table."""
    point = (3, 2, 2)
    trained = study.variant_policies(point, ["sft", "rlvr", "distilled", "pretrained"], "trained", seed=1)
    converged = study.variant_policies(point, ["sft", "rlvr"], "converged")
    graph = path_star(*point)
    leaf = graph.leaf(1)
    optimum = expected_hitting_time(converged["rlvr"], leaf)
    for name in ("rlvr", "distilled"):
        assert expected_hitting_time(trained[name], leaf) == pytest.approx(optimum, rel=0.01)
        assert not np.array_equal(trained[name].probabilities, converged["rlvr"].probabilities)
    minus = graph.state_kind == StateKind.R_MINUS
    assert np.allclose(1 - trained["sft"].connector_probability()[minus], 2 / 3, rtol=0, atol=1e-12)
    assert not np.array_equal(trained["sft"].probabilities, converged["sft"].probabilities)
    with pytest.raises(ValueError, match="policies must be one of"):
        study.variant_policies(point, ["sft"], "finetuned")


def test_a_cell_that_cannot_be_checked_fails_the_check_and_says_untested():
    """A censored cell (no z) whose histogram leaves one chi-square cell (no p) is not a pass."""
    from edgewalk.cli.study import _agreement
    from edgewalk.study.sweep import Comparison
    good = Comparison("sft", 3, 2, 3, 10.0, 0.1, 10.05, 0.5, 0, 0.4)
    unchecked = Comparison("sft", 3, 3, 3, 9.0, 0.2, 12.0, math.nan, 7, math.nan)
    summary, details, ok = _agreement([good, unchecked], 3.0, 1e-3, "sft", show_all=False)
    assert not ok and "1 untested" in summary and summary.endswith("FAIL")
    assert len(details) == 1 and details[0].endswith("<-- untested") and "K=3" in details[0]
    assert _agreement([good], 3.0, 1e-3, "sft", show_all=False)[2]
