"""The figures (edgewalk.plots): names and overwrite rules, and the drawn data checked against
what it should be: exact lines, Monte Carlo error bars, axes of linear claims, lattice-aware
histogram bars and their exact overlay, the visits per depth, the visit-weighted training curves
and the marked confused middle."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from edgewalk import exact, io, plots, statistics, study, training
from edgewalk.analysis import visits_by_kind
from edgewalk.errors import InputError
from edgewalk.plots import distributions, style, training as plots_training
from edgewalk.graph import heterogeneous, path_star
from edgewalk.planning import simulate
from edgewalk.policy import from_logits, parametric, pretrained, rlvr, sft
from edgewalk.training.parametrisation import DepthParameters

from conftest import P_LIMIT


@pytest.fixture(scope="module")
def tiny():
    grid = study.Grid((2, 3), (1, 2, 3), (2, 3), (3, 2, 2))
    return study.sweep(grid, rollouts=4000, seed=3, budget=60, threads=2)


def _lines(axes, prefix: str) -> dict[str, object]:
    return {line.get_gid().split(":", 1)[1]: line for line in axes.get_lines()
            if (line.get_gid() or "").startswith(prefix)}


def _errorbars(axes) -> dict[str, ErrorbarContainer]:
    return {c.get_label().split(":", 1)[1]: c for c in axes.containers if isinstance(c, ErrorbarContainer)}


# --- names and directories ----------------------------------------------------------------------

def test_study_figures_are_written_headline_first_and_never_replaced_unasked(tiny, tmp_path):
    names = plots.study_plot_names(tiny.parameters["variants"])
    assert names[:3] == ["headline_K.png", "headline_W.png", "headline_L.png"]
    assert names[-2:] == ["histograms.png", "compute_by_depth.png"]
    paths = plots.write_plots(tiny, tmp_path / "plots")
    assert [p.name for p in paths] == names
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    with pytest.raises(InputError, match="would replace headline_K.png"):
        plots.write_plots(tiny, tmp_path / "plots")
    assert [p.name for p in plots.write_plots(tiny, tmp_path / "plots", overwrite=True)] == names


def test_run_and_training_figures_refuse_to_overwrite(tmp_path):
    graph = path_star(2, 2, 2)
    result = simulate(rlvr(graph), rollouts=2000, seed=1)
    assert [p.name for p in plots.write_run_plots({"a run": result}, tmp_path)] == ["a_run.png"]
    with pytest.raises(InputError, match="--out .*would replace a_run.png"):
        plots.write_run_plots({"a run": result}, tmp_path)
    run = training.train_rlvr(graph, iterations=5)
    assert [p.name for p in plots.write_training_plots(run, tmp_path)] == plots.training_plot_names("rlvr")
    with pytest.raises(InputError, match="would replace rlvr_hitting_time.png"):
        plots.write_training_plots(run, tmp_path)


# --- the headline figure and the per-variant figures ---------------------------------------------

@pytest.mark.parametrize("parameter", "KWL")
def test_headline_has_one_exact_line_per_solvable_variant_and_standard_error_bars(tiny, parameter):
    axes = plots.headline_figure(tiny, parameter).axes[0]
    i = "WKL".index(parameter)
    axis = study.grid_of(tiny).axis(parameter)
    cells = {(c.variant, c.point): c for c in tiny.cells}
    lines = _lines(axes, "exact:")
    assert set(lines) == {"pretrained", "sft", "rlvr"}  # the search variants have no exact solver
    for variant, line in lines.items():
        assert np.array_equal(line.get_xdata(), [p[i] for p in axis])
        assert np.allclose(line.get_ydata(), [cells[(variant, p)].exact for p in axis], rtol=1e-12)
    bars = _errorbars(axes)
    assert set(bars) == set(style.HEADLINE)
    for variant, container in bars.items():
        runs = [tiny.mc(cells[(variant, p)]) for p in axis]
        segments = container.lines[2][0].get_segments()
        half = [(s[1, 1] - s[0, 1]) / 2 for s in segments]
        assert np.allclose(half, [1.96 * r.stderr for r in runs], rtol=1e-9)
        assert np.allclose([s[:, 1].mean() for s in segments], [r.mean for r in runs], rtol=1e-9)
    assert axes.get_yscale() == "log"
    assert axes.get_xscale() == ("linear" if parameter == "K" else "log")
    assert axes.get_legend() is not None  # one legend


def test_linear_claims_are_drawn_on_linear_axes_and_their_guide_follows_a_straight_line(tiny):
    figure = plots.variant_figure(tiny, "rlvr", "K")
    axes = figure.axes[0]
    assert (axes.get_xscale(), axes.get_yscale()) == ("linear", "linear")
    exact_line = _lines(axes, "exact:")["rlvr"]
    guide = _lines(axes, "bound:")["rlvr"]
    # RLVR's exact E[T] = (2K+1)(2W-1) is linear in K, so a + b K fitted to it is the line itself
    at = np.interp(exact_line.get_xdata(), guide.get_xdata(), guide.get_ydata())
    assert np.allclose(at, exact_line.get_ydata(), rtol=1e-9)
    sft_axes = plots.variant_figure(tiny, "sft", "K").axes[0]
    assert (sft_axes.get_xscale(), sft_axes.get_yscale()) == ("linear", "log")
    sft_line, sft_guide = _lines(sft_axes, "exact:")["sft"], _lines(sft_axes, "bound:")["sft"]
    # power: the stated W L^K guide (base L) is not the exact growth: it drifts off the SFT values
    drift = np.interp(sft_line.get_xdata(), sft_guide.get_xdata(), sft_guide.get_ydata()) / sft_line.get_ydata()
    assert np.ptp(np.log(drift)) > 0.1
    pretrained_axes = plots.variant_figure(tiny, "pretrained", "K").axes[0]
    assert (pretrained_axes.get_xscale(), pretrained_axes.get_yscale()) == ("log", "log")


def test_titles_give_no_interval_for_a_fit_on_exact_values(tiny):
    fit = next(f for f in tiny.fits if f.variant == "rlvr" and f.parameter == "K")
    exact_fit = study.Fit(**{**fit.__dict__, "source": "exact"})
    assert "CI" not in style.fit_words(exact_fit) and "no sampling error" in style.fit_words(exact_fit)
    assert "95% CI [" in style.fit_words(study.Fit(**{**fit.__dict__, "source": "monte carlo"}))


# --- histograms ------------------------------------------------------------------------------------

def _bar_counts(result, bars):
    return np.rint(bars.mass * result.rollouts)


def _below(per_bar: np.ndarray) -> np.ndarray:
    """P(T < edge) at the bar edges, counted from the first (what lies outside is one more cell)."""
    return np.concatenate(([0.0], np.cumsum(per_bar)))


def _per_bar(cdf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """P(a <= T < b) per bar [a, b) from the CDF P(T <= t), t = 0.."""
    below = np.concatenate(([0.0], cdf))[edges]  # P(T < e) = P(T <= e - 1)
    return np.diff(below)


def test_rlvr_bars_sit_on_its_lattice_with_no_empty_interior_bar_and_the_exact_overlay_is_its_law():
    W, K = 3, 2
    graph = path_star(W, K, 2)
    result = simulate(rlvr(graph), rollouts=20_000, seed=7, method="step")
    assert result.bin_width == 1
    period, offset, share = plots.lattice(result)
    assert (period, offset, share) == (2 * (2 * K + 1), 2 * K + 1, 1.0)  # T = (2K+1)(2n+1)
    bars = plots.lattice_bars(result)
    assert np.all(bars.support == 1) and np.all(bars.mass[:-1] > 0)
    # power: unit bins (or bars of any width the lattice does not divide) have empty interior bins
    occupied = np.flatnonzero(result.counts)
    assert np.any(result.counts[occupied[0]:occupied[-1]] == 0)
    # the exact overlay: per bar the exact P(T in bar), checked against the exact PMF
    pmf = exact.hitting_time_pmf(rlvr(graph), graph.leaf(1), int(bars.edges[-1]))
    per_bar = np.add.reduceat(pmf, bars.edges[:-1])[: len(bars.mass)]
    assert np.allclose(bars.exact, per_bar, atol=1e-12)
    assert math.isclose(bars.exact.sum(), pmf[bars.edges[0]:bars.edges[-1]].sum(), rel_tol=1e-9)
    # the fork is uniform over W branches, so P(T = (2K+1)(2n+1)) is geometric with ratio (W-1)/W
    assert np.allclose(bars.exact_density[1:8] / bars.exact_density[:7], (W - 1) / W, rtol=1e-9)
    # the bars against the exact law (what lies outside them as one more cell), and its power
    outside = result.rollouts - _bar_counts(result, bars).sum()
    assert statistics.chi_square_p_value(_bar_counts(result, bars), outside, _below(bars.exact)) > P_LIMIT
    wrong = parametric(graph, a=0.97, b=1.0, c=1.0, d=1.0)
    wrong_law = _per_bar(exact.hitting_time_cdf(wrong, graph.leaf(1), int(bars.edges[-1])), bars.edges)
    assert statistics.chi_square_p_value(_bar_counts(result, bars), outside, _below(wrong_law)) < P_LIMIT


def test_bars_on_log_spaced_leap_edges_agree_with_the_exact_law():
    graph = path_star(4, 3, 3)
    policy = sft(graph)
    result = simulate(policy, rollouts=20_000, seed=11, method="leap")
    assert result.bin_width is None  # log-spaced edges: the old equal-width merge misread them
    bars = plots.lattice_bars(result)
    assert bars.period == 2 and bars.offset == 7  # T is odd: the path-star is bipartite
    assert np.all(bars.support > 0) and 40 <= len(bars.mass) <= 80
    odd = [len(range(a + 1 - a % 2, b, 2)) - (7 > a) * len(range(a + 1 - a % 2, min(b, 7), 2))
           for a, b in zip(bars.edges[:-1], bars.edges[1:])]
    assert np.array_equal(bars.support, odd)  # the odd times >= 7 in each bar
    exact_law = _per_bar(exact.hitting_time_cdf(policy, graph.leaf(1), int(bars.edges[-1])), bars.edges)
    assert np.allclose(bars.exact, exact_law, atol=1e-9)
    outside = result.rollouts - _bar_counts(result, bars).sum()
    assert statistics.chi_square_p_value(_bar_counts(result, bars), outside, _below(bars.exact)) > P_LIMIT
    wrong = parametric(graph, a=1.0, c=1.0, b=0.7)  # SFT keeps b = L/(L+1) = 0.75
    wrong_law = _per_bar(exact.hitting_time_cdf(wrong, graph.leaf(1), int(bars.edges[-1])), bars.edges)
    assert statistics.chi_square_p_value(_bar_counts(result, bars), outside, _below(wrong_law)) < P_LIMIT


def test_histograms_figure_shares_the_survival_axes_and_overlays_exact_laws_only_where_known(tiny):
    figure = plots.distribution_figure(distributions.study_distribution_rows(tiny))
    variants = tiny.parameters["variants"]
    histograms, survivals = figure.axes[0::2][: len(variants)], figure.axes[1::2][: len(variants)]
    assert all(s.get_yscale() == "log" for s in survivals)
    assert all(survivals[0].get_shared_x_axes().joined(survivals[0], s) for s in survivals[1:])
    assert all(survivals[0].get_shared_y_axes().joined(survivals[0], s) for s in survivals[1:])
    rlvr_row, distilled_row = variants.index("rlvr"), variants.index("distilled")
    assert histograms[rlvr_row].get_shared_x_axes().joined(histograms[rlvr_row], histograms[distilled_row])
    for variant, axes in zip(variants, survivals):
        has_exact = "exact" in [line.get_gid() for line in axes.get_lines()]
        assert has_exact == (study.VARIANTS[variant].search == "none")


# --- where the compute goes ----------------------------------------------------------------------

def test_compute_figure_draws_the_exact_visits_per_depth_and_kind():
    W, K, L = 3, 4, 2
    graph = path_star(W, K, L)
    policies = {"pretrained": pretrained(graph), "SFT": sft(graph), "RLVR": rlvr(graph)}
    figure = plots.compute_figure(policies)
    assert len(figure.axes) == 3
    assert all(a.get_shared_y_axes().joined(figure.axes[0], a) for a in figure.axes[1:])
    for axes, (name, policy) in zip(figure.axes, policies.items()):
        lines = _lines(axes, f"{name}:")
        expected = visits_by_kind(policy)
        assert set(lines) == set(expected)
        for kind, values in expected.items():
            assert np.allclose(lines[kind].get_ydata(), values, rtol=1e-12)
    # RLVR enters Geometric(1/W) branches, W on average, and runs every wrong one to its leaf and back:
    # per depth, W forward crossings (R+ and L+) and W - 1 backward ones (R- and L-)
    drawn = _lines(figure.axes[2], "RLVR:")
    for kind, count in {"R+": W, "L+": W, "R-": W - 1, "L-": W - 1}.items():
        assert np.allclose(drawn[kind].get_ydata(), count, rtol=1e-9)


# --- training --------------------------------------------------------------------------------------

def test_visit_weighted_mean_of_a_symmetric_policy_is_its_per_branch_value_without_visits():
    graph = path_star(3, 3, 2)
    policy = parametric(graph, a=[0.3, 0.5, 0.7], b=0.6, c=0.8, d=[0.2, 0.4, 0.9])

    def no_visits():
        raise AssertionError("a symmetric policy needs no visits")

    weighted = DepthParameters.build(graph).visit_weighted(policy.probabilities, no_visits)
    for name, value in {"a": [0.3, 0.5, 0.7], "b": [0.6] * 3, "c": [0.8] * 3, "d": [0.2, 0.4, 0.9]}.items():
        assert np.allclose(weighted[name], np.tile(value, (3, 1)), rtol=1e-12)


def test_visit_weighted_mean_of_an_asymmetric_policy_weights_every_state_by_its_visits():
    graph = path_star(2, 2, 2)
    logits = np.random.default_rng(5).normal(size=graph.n_transitions)
    policy = from_logits(graph, logits)
    visits = np.mean([exact.expected_visits(policy, t) for t in graph.leaves], axis=0)
    depths = DepthParameters.build(graph)
    weighted = depths.visit_weighted(policy.probabilities, lambda: visits)
    per_state = depths.per_state(policy.probabilities)
    from edgewalk.graph import StateKind

    states = np.flatnonzero((graph.state_kind == StateKind.R_MINUS) & (graph.state_depth == 2))
    mean = np.sum(visits[states] * per_state[states]) / np.sum(visits[states])
    branch = [np.sum(visits[s] * per_state[s]) / np.sum(visits[s])
              for s in (states[graph.state_branch[states] == i] for i in range(2))]
    assert np.isclose(weighted["b"][0, 1], mean, rtol=1e-12)
    assert np.isclose(weighted["b"][1, 1], min(branch)) and np.isclose(weighted["b"][2, 1], max(branch))
    plain = depths.per_branch(policy.probabilities)["b"][:, 1].mean()
    assert not np.isclose(mean, plain, rtol=1e-3)  # power: the plain mean is a different number


def test_training_figures_draw_the_visit_weighted_mean_of_a_monte_carlo_run():
    graph = path_star(3, 2, 3)
    run = training.train_ppo(graph, iterations=6, rollouts=3000, seed=2)
    assert {"a_visit_weighted", "d_branch_low", "d_branch_high"} <= set(run.metrics)
    hitting, abcd = plots.training_figures(run, optimum=training.rlvr_optimum(graph))
    for index, name in enumerate("abcd"):
        lines = _lines(abcd.axes[index], f"{name}:")
        assert np.allclose(lines["1"].get_ydata(), run.metrics[f"{name}_visit_weighted"][:, 0], equal_nan=True)
    assert "visit-weighted mean over branches and lanes" in " ".join(abcd.get_suptitle().split())
    # a file from before visit weights were recorded: its plain mean is not called symmetric
    _, old = plots.training_figures(dataclasses.replace(run, metrics={}))
    assert "this file records no visit weights" in " ".join(old.get_suptitle().split())
    gids = {line.get_gid(): line for line in hitting.axes[0].get_lines()}
    assert gids["optimum"].get_ydata()[0] == training.rlvr_optimum(graph)
    assert gids["history-aware"].get_ydata()[0] == (2 * 2 + 1) * 3


def test_symmetric_runs_record_no_weights_and_heterogeneous_graphs_no_history_aware_line():
    run = training.train_rlvr(path_star(2, 2, 2), iterations=5)
    assert not any(name.endswith("_visit_weighted") for name in run.metrics)
    _, abcd = plots.training_figures(run)
    assert "every branch and lane has the same value" in " ".join(abcd.get_suptitle().split())
    uneven = training.train_rlvr(heterogeneous([3, 2], 2), iterations=3)
    hitting, _ = plots.training_figures(uneven)
    assert "history-aware" not in [line.get_gid() for line in hitting.axes[0].get_lines()]


def test_the_confused_middle_is_marked_at_the_depths_whose_initial_gradient_is_negative():
    graph = path_star(2, 4, 1)
    signs = training.initial_gradient_signs(graph).table()
    run = training.train_rlvr(graph, iterations=20)
    _, abcd = plots.training_figures(run)
    for index, name in ((1, "b"), (3, "d")):
        negative = [row["depth"] for row in signs if row[f"sign_{name}"] < 0]
        assert negative  # the graph has a confused middle in both
        title = abcd.axes[index].get_title(loc="left")
        assert f"first moves down at j = {plots_training._depth_range(negative)}" in title
        thick = [int(line.get_gid().split(":")[1]) for line in abcd.axes[index].get_lines()
                 if (line.get_gid() or "").startswith(f"{name}:") and line.get_linewidth() > 2]
        assert thick == negative
    # power: where every initial sign is positive nothing is marked
    calm = training.train_rlvr(path_star(3, 4, 1), iterations=20)
    assert all("first moves down" not in a.get_title(loc="left") for a in plots.training_figures(calm)[1].axes)


# --- small runs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rollouts,search", [(1, "none"), (5, "mask"), (9, "none"), (10, "none")])
def test_the_run_figure_of_fewer_than_ten_rollouts_is_drawn(rollouts, search, tmp_path):
    """`edgewalk plot` of a run of fewer than 10 rollouts raised IndexError (the survival's x
    range looked for a t with 10 rollouts left). Any run with a hit now draws: under 20 rollouts
    the survival reaches to just before the last hit, and the title gives no nan."""
    graph = path_star(3, 2, 2)
    result = simulate(rlvr(graph), rollouts=rollouts, seed=0, search=search)
    exact_mean = style.as_number(result.parameters.get("exact_mean"))
    assert math.isfinite(exact_mean) == (search == "none")
    title = distributions.run_title("small", result)
    assert "nan" not in title and ("1 hit: no error bar" in title) == (rollouts == 1)
    figure = distributions.distribution_figure([(title, result, exact_mean)])
    mean = exact_mean if search == "none" else result.mean
    last = int(result.edges[np.flatnonzero(result.counts)[-1]]) - 1
    assert figure.axes[1].get_xlim()[1] == pytest.approx(min(12.0, 1.05 * max(1.0, last / mean)))
    labels = [t.get_text() for t in figure.axes[0].get_legend().texts]
    assert f"Monte Carlo ({rollouts} rollout{'' if rollouts == 1 else 's'})" in labels
    assert [p.name for p in plots.write_run_plots({"small": result}, tmp_path)] == ["small.png"]


def test_a_run_with_every_rollout_censored_is_drawn_as_no_hit():
    result = simulate(pretrained(path_star(3, 2, 2)), rollouts=50, seed=0, max_steps=3)
    assert result.hits == 0
    title = distributions.run_title("censored", result)
    assert "nan" not in title and "no hit, 50 censored" in title
    figure = distributions.distribution_figure([(title, result, 140.0)])
    texts = [t.get_text() for axes in figure.axes for t in axes.texts]
    assert texts == ["no hit: all 50 rollouts were censored at max_steps = 3"] * 2


def test_a_lattice_of_few_hits_is_said_of_the_hits_not_of_t():
    result = simulate(rlvr(path_star(3, 2, 2)), rollouts=9, seed=0)
    legend = distributions.distribution_figure([("r", result, 25.0)]).axes[0].get_legend()
    assert legend.get_title().get_text().startswith("the 9 hits lie on ")


def test_a_one_iteration_training_has_whole_iterations_on_its_axes():
    run = training.train_rlvr(path_star(3, 2, 2), iterations=1)
    for figure in plots.training_figures(run):
        for axes in figure.axes:
            if axes.get_xlabel() == "iteration":
                low, high = axes.get_xlim()
                ticks = [t for t in axes.get_xticks() if low <= t <= high]
                assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_a_full_disk_while_plotting_leaves_no_partial_plot_and_says_what_was_written(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    from edgewalk.cli import main

    saved = Figure.savefig
    calls = []

    def fill_the_disk(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            with open(path, "wb") as f:
                f.write(b"\x89PNG half")
            raise OSError(28, "No space left on device")
        return saved(self, path, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", fill_the_disk)
    out, plots = tmp_path / "t.h5", tmp_path / "plots"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--method", "rlvr", "-W", "3", "-K", "2", "-L", "2", "--iterations", "2",
              "--out", str(out), "--plots", str(plots)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 4 and err.count("\n") == 1
    assert "No space left on device" in err and "no partial plot was left" in err
    assert not plots.exists()  # the first figure was removed with the directory it made
    assert io.read_training(out).method == "rlvr"  # the training file is complete
