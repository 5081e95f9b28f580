"""The transformer (paper Fig. 7): it starts exactly at its table, its JAX sampler with the
key/value cache gives the logits of the full forward pass, its rollouts are reproducible per
rollout, agree with the native engine on the tabulated window chain and with the exact mean
there, and PPO trains it; its training file runs with ``edgewalk run``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402

from conftest import P_LIMIT, Z_LIMIT, chi_square_p_value, same_result, z_score  # noqa: E402
from edgewalk import exact, graph, io, planning, policy  # noqa: E402
from edgewalk.cli import main  # noqa: E402
from edgewalk.errors import InputError  # noqa: E402
from edgewalk.transformer import (Config, TransformerPolicy, from_training, init_parameters,  # noqa: E402
                                  table_logits, train_transformer)
from edgewalk.transformer.model import IMPOSSIBLE, sequence_output, to_device  # noqa: E402
from edgewalk.transformer.rollouts import exact_mean  # noqa: E402

# Every test uses the default shape, one graph and windows None or 2 where it can, and horizons
# of at most 64, so that the compiled functions are shared (compilation dominates their time).


def _model(g, table, window, seed=1, out_scale=0.0, **config):
    """A model whose output projection is ``out_scale`` times normal noise (0: the table)."""
    cfg = Config(window=window, **config)
    params = init_parameters(cfg, g.n_states, seed)
    rng = np.random.default_rng(seed + 100)
    params["out"] = (out_scale * rng.standard_normal(params["out"].shape)).astype(np.float32)
    return TransformerPolicy(g, cfg, params, table_logits(table))


@pytest.fixture(scope="module")
def g():
    return graph.path_star(2, 1, 2)


@pytest.mark.parametrize("name", ["pretrained", "rlvr", "random"])
@pytest.mark.parametrize("window", [2, None])
def test_the_model_starts_exactly_at_its_table(g, name, window):
    table = (policy.from_logits(g, np.random.default_rng(0).normal(size=g.n_transitions)) if name == "random"
             else policy.named(g, name))
    model = _model(g, table, window)
    if window is not None:
        tabulated = model.tabulate()
        # bit for bit the softmax of the table's logits, and the table itself to rounding
        of_logits = policy.from_logits(g, table_logits(table))
        assert np.array_equal(tabulated.probabilities, tabulated.graph.lift(of_logits).probabilities)
        assert np.allclose(tabulated.probabilities, tabulated.graph.lift(table).probabilities, rtol=1e-14, atol=0)
        if name != "random":
            assert np.array_equal(tabulated.probabilities, tabulated.graph.lift(table).probabilities)
    # the JAX sampler draws its moves with the table's log-probabilities
    samples = model.sample(200, seed=3, horizon=40)
    taken = np.arange(40)[None, :] < np.where(samples.times >= 0, samples.times, 40)[:, None]
    rows = g.row_start[samples.tokens[:, :40]] + samples.actions
    expected = np.log(table.probabilities[rows])
    assert np.abs(samples.log_probability - expected)[taken].max() < 1e-5


def test_rlvr_table_moves_the_model_cannot_make(g):
    logits = table_logits(policy.rlvr(g))
    assert logits.min() == IMPOSSIBLE and np.array_equal(policy.from_logits(g, logits).probabilities,
                                                         policy.rlvr(g).probabilities)
    model = _model(g, policy.rlvr(g), 2, out_scale=3.0)
    impossible = model.tabulate().graph.lift(policy.rlvr(g)).probabilities == 0
    assert np.all(model.tabulate().probabilities[impossible] == 0)


@pytest.mark.parametrize("window,max_age", [(None, 3), (2, 64)])
def test_cached_sampler_logits_equal_the_full_forward_pass(g, window, max_age):
    """The sampler's ring of keys and values (and, for the whole trajectory, its token counts of
    positions older than max_age - 1) gives the log-probabilities of attending to every position."""
    model = _model(g, policy.pretrained(g), window, out_scale=2.0, max_age=max_age)
    samples = model.sample(48, seed=5, horizon=50)
    forward = jax.jit(lambda p, m, t: sequence_output(p, model.config, m, t))
    out = forward(to_device(model.params), model.moves, jnp.asarray(samples.tokens))
    logp = np.asarray(jax.nn.log_softmax(model.moves.logits[samples.tokens] + out, axis=-1))[:, :50]
    recomputed = np.take_along_axis(logp, samples.actions[..., None], axis=-1)[..., 0]
    taken = np.arange(50)[None, :] < np.where(samples.times >= 0, samples.times, 50)[:, None]
    assert taken.sum() > 1000
    assert np.abs(recomputed - samples.log_probability)[taken].max() < 2e-5
    # and the model is not the table: the output changed the log-probabilities
    table = np.log(policy.pretrained(g).probabilities[g.row_start[samples.tokens[:, :50]] + samples.actions])
    assert np.abs(table - samples.log_probability)[taken].max() > 0.1


@pytest.mark.parametrize("max_age", [2, 5])
def test_counted_attention_equals_attending_to_every_position(g, max_age):
    """Long whole-trajectory sequences are scored through token counts of the positions older than
    max_age - 1 (O(T (max_age + vocabulary))): outputs and gradients equal those of scoring every
    query-key pair."""
    from edgewalk.transformer.model import _counted_output, _full_output, attention_pairs

    model = _model(g, policy.pretrained(g), None, out_scale=2.0, max_age=max_age)
    samples = model.sample(6, seed=4, horizon=5 * (g.n_states + max_age))
    tokens = jnp.asarray(samples.tokens)
    length, config, params = tokens.shape[1], model.config, to_device(model.params)
    assert attention_pairs(config, g.n_states, length) < length ** 2  # sequence_output counts
    full = np.asarray(_full_output(params, config, model.moves, tokens))
    counted = np.asarray(_counted_output(params, config, model.moves, tokens))
    assert np.abs(full).max() > 0.1 and np.abs(counted - full).max() < 1e-4

    def loss(function):
        return jax.grad(lambda p: jnp.sum(jnp.tanh(function(p, config, model.moves, tokens))))(params)

    counted_grad = loss(_counted_output)
    for name, grad in loss(_full_output).items():
        other = np.asarray(counted_grad[name])
        assert np.abs(other - np.asarray(grad)).max() <= 1e-3 * max(1.0, np.abs(np.asarray(grad)).max()), name


def test_rollout_streams_do_not_depend_on_the_batches(g):
    model = _model(g, policy.pretrained(g), None, out_scale=1.0)
    whole = model.sample(256, seed=9, horizon=60)
    parts = model.sample(256, seed=9, horizon=60, batch=100)  # batches of 100, 100 and 56
    assert np.array_equal(whole.times, parts.times) and np.array_equal(whole.tokens, parts.tokens)
    tail = model.sample(56, seed=9, horizon=60, first_rollout=200)
    assert np.array_equal(tail.times, whole.times[200:])
    assert not np.array_equal(model.sample(256, seed=10, horizon=60).times, whole.times)
    assert model.sample(256, seed=2**64 - 1, horizon=60).times.shape == (256,)  # any 64-bit seed


def test_a_batch_that_narrows_as_its_rollouts_end_gives_the_same_rollouts(g, monkeypatch):
    """A batch of 1024 is gathered into narrower ones as its rollouts end (at most a quarter still
    walking); every rollout is the same as in batches of 64, which never narrow."""
    from edgewalk.transformer import rollouts
    model = _model(g, policy.pretrained(g), None, out_scale=0.5)
    gathered = []
    gather = rollouts._gather
    monkeypatch.setattr(rollouts, "_gather", lambda carry, which: gathered.append(len(which)) or gather(carry, which))
    wide = model.sample(1024, seed=3, horizon=500)
    assert gathered[:2] == [256, 64]  # it did narrow, twice
    gathered.clear()
    narrow = model.sample(1024, seed=3, horizon=500, batch=64)
    assert not gathered and np.array_equal(wide.times, narrow.times)
    assert (wide.times >= 0).mean() > 0.99 and wide.times.max() > 100
    for field in ("tokens", "actions", "log_probability"):
        a, b = getattr(wide, field), getattr(narrow, field)
        steps = np.arange(a.shape[1])[None, :] < np.where(wide.times < 0, 500, wide.times)[:, None] + (field == "tokens")
        a, b = np.where(steps, a, 0), np.where(steps, b, 0)
        if field == "log_probability":  # float32 logits may round differently in another batch shape
            assert np.allclose(a, b, rtol=1e-5, atol=1e-6)
        else:
            assert np.array_equal(a, b), field


def _two_sample_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Chi-square homogeneity of two samples of hitting times (cells merged until each expects
    at least 5 of either sample)."""
    from scipy import stats

    top = int(max(a.max(), b.max()))
    ca, cb = np.bincount(a, minlength=top + 1), np.bincount(b, minlength=top + 1)
    cells, acc = [], np.zeros(2)
    for x, y in zip(ca, cb):
        acc += (x, y)
        if acc.min() >= 5 * max(1.0, len(a) / len(b), len(b) / len(a)):
            cells.append(acc)
            acc = np.zeros(2)
    if acc.sum():
        cells[-1] = cells[-1] + acc
    return float(stats.chi2_contingency(np.array(cells).T)[1])


TINY = dict(d_model=8, heads=1, mlp=16)  # 20000 rollouts in JAX on a CPU in seconds


@pytest.mark.slow
def test_jax_and_native_rollouts_agree_with_each_other_and_the_exact_mean(g):
    model = _model(g, policy.pretrained(g), 2, out_scale=0.5, **TINY)
    tabulated = model.tabulate()
    leaf = g.leaves[0]
    mean = exact.expected_hitting_time(tabulated, leaf)
    assert abs(mean - exact.expected_hitting_time(policy.pretrained(g), leaf)) > 1  # the output matters
    horizon = 40 * math.ceil(mean)
    jax_times = model.sample(20000, seed=1, horizon=horizon, targets=[leaf], batch=20000).times
    assert (jax_times >= 0).all()
    native = planning.simulate(tabulated, leaf, rollouts=20000, seed=1, max_steps=horizon, bins=horizon + 1)
    native_times = np.repeat(np.arange(len(native.counts)), native.counts)
    assert _two_sample_p_value(jax_times, native_times) > P_LIMIT
    assert abs(z_score(jax_times.mean(), mean, jax_times.std(ddof=1) / math.sqrt(len(jax_times)))) < Z_LIMIT
    pmf = exact.hitting_time_pmf(tabulated, leaf, horizon)
    assert chi_square_p_value(native, pmf) > P_LIMIT
    # power: both criteria reject a slightly different model (its output 10% larger)
    other = TransformerPolicy(g, model.config, {**model.params, "out": 1.1 * model.params["out"]}, model.table)
    assert abs(exact.expected_hitting_time(other.tabulate(), leaf) - mean) < 0.1 * mean
    other_times = other.sample(20000, seed=1, horizon=horizon, targets=[leaf], batch=20000).times
    assert _two_sample_p_value(other_times, native_times) < P_LIMIT
    assert abs(z_score(other_times.mean(), mean, other_times.std(ddof=1) / math.sqrt(len(other_times)))) > Z_LIMIT


def test_native_rollouts_of_the_tabulated_model_are_backend_independent(g):
    tabulated = _model(g, policy.pretrained(g), 2, out_scale=1.0).tabulate()
    a = planning.simulate(tabulated, rollouts=5000, seed=4, threads=1)
    b = planning.simulate(tabulated, rollouts=5000, seed=4, backend="cython", threads=2)
    assert same_result(a, b)


def test_ppo_from_rlvr_learns_to_avoid_explored_branches_and_the_row_mask_holds(g):
    """From converged RLVR only the fork rows can shorten the search; with every row free the
    model learns to leave the branch it came from alone (towards (2K+1)W = 6 at W = 2, K = 1),
    while with the rows tabular training trains it can change nothing that matters: E[T] stays
    (2K+1)(2W-1) = 9 exactly (it trains the lane choices only)."""
    free = train_transformer(g, policy.rlvr(g), Config(window=2), iterations=6, rollouts=2000, seed=1)
    assert free.hitting_time[0] == pytest.approx(9, rel=1e-12)
    assert free.hitting_time[-1] < 8 and free.metrics["exact"].all()
    fixed = train_transformer(g, policy.rlvr(g), Config(window=2, rows="trained"), iterations=3, rollouts=2000,
                              seed=1)
    assert np.allclose(fixed.hitting_time, 9, rtol=1e-9)
    assert not np.array_equal(fixed.model["parameters"]["out"], 0)


@pytest.mark.slow
def test_ppo_on_jax_rollouts_and_its_training_file(g, tmp_path, capsys):
    heard = []
    run = train_transformer(g, policy.rlvr(g), Config(window=None), iterations=2, rollouts=256, seed=2,
                            evaluation_rollouts=256, record_every=2, epochs=3,
                            progress=lambda n, value, phase: heard.append((n, phase)))
    assert run.settings["sampler"] == "jax" and run.metrics["exact"].tolist() == [True, False]
    # each phase of an iteration is reported as it starts; evaluation only where it is recorded
    iteration = ["sampling 256 rollouts", "epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert heard == ([(0, "")] + [(0, p) for p in iteration] + [(1, "")] + [(1, p) for p in iteration]
                     + [(1, "evaluating 256 rollouts"), (2, "")])
    assert run.hitting_time[-1] < run.hitting_time[0] == pytest.approx(9.0)  # the bound is 6
    path = tmp_path / "t.h5"
    io.write_training(path, run)
    again = io.read_training(path)
    assert again.model["config"] == run.model["config"]
    for name, value in run.model["parameters"].items():
        assert np.array_equal(again.model["parameters"][name], value)
    a, b = from_training(run), from_training(again)
    assert np.array_equal(a.sample(256, seed=1, horizon=60).times, b.sample(256, seed=1, horizon=60).times)
    # edgewalk run samples it in JAX: there is no window chain, so no exact mean
    assert main(["run", "--policy-file", str(path), "-N", "256", "--max-steps", "60", "--seed", "1",
                 "--out", str(tmp_path / "r.h5"), "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert ran["exact_mean"] is None and ran["backend"] == "jax" and ran["rollouts"] == 256
    times = a.sample(256, seed=1, horizon=60, targets=list(g.leaves)).times  # --target leaves, in turn
    assert ran["mean"] == pytest.approx(times[times >= 0].mean(), rel=1e-12)
    assert io.read(tmp_path / "r.h5")[ran["run"]].hits == ran["hits"]


@pytest.mark.slow
def test_the_command_line_trains_and_runs_a_transformer(tmp_path, capsys):
    out = tmp_path / "w.h5"
    assert main(["train", "--method", "ppo", "--model", "transformer", "-W", "2", "-K", "1", "-L", "2",
                 "--window", "2", "--init", "pretrained", "--iterations", "3", "--rollouts", "500",
                 "--out", str(out), "--plots", str(tmp_path / "plots"), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["references"] == {"edge_conditioned": 9.0, "history_aware": 6.0, "history_aware_uniform_fork": 7.0}
    assert trained["final_is_exact"] and (tmp_path / "plots" / "ppo_transformer_hitting_time.png").exists()
    assert main(["run", "--policy-file", str(out), "-N", "20000", "--out", str(tmp_path / "r.h5"), "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert ran["run"].endswith("window2") and abs(ran["z"]) < Z_LIMIT
    tabulated = from_training(io.read_training(out)).tabulate()
    exact_value = np.mean([exact.expected_hitting_time(tabulated, leaf) for leaf in graph.path_star(2, 1, 2).leaves])
    assert ran["exact_mean"] == pytest.approx(exact_value, rel=1e-12)
    # --init FILE starts at a table trained before, exactly
    table_file = tmp_path / "rlvr.h5"
    assert main(["train", "--method", "rlvr", "-W", "2", "-K", "1", "-L", "2", "--iterations", "30",
                 "--out", str(table_file), "--no-plots", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert main(["train", "--method", "ppo", "--model", "transformer", "-W", "2", "-K", "1", "-L", "2",
                 "--window", "2", "--init", str(table_file), "--iterations", "1", "--rollouts", "500",
                 "--out", str(tmp_path / "from-file.h5"), "--no-plots", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["initial_hitting_time"] == pytest.approx(table["final_hitting_time"],
                                                                                     rel=1e-12)
    with pytest.raises(SystemExit) as stop:
        main(["train", "--method", "rlvr", "--model", "transformer", "-W", "2", "-K", "1", "--out", str(out)])
    assert stop.value.code == 2


def test_bad_input_is_refused():
    g = graph.path_star(2, 1, 1)
    with pytest.raises(InputError, match="heads must divide d_model"):
        Config(d_model=10, heads=3)
    with pytest.raises(InputError, match="rows must be one of all, trained"):
        Config(rows="fork")
    with pytest.raises(InputError, match="sampler: native needs a windowed model"):
        train_transformer(g, policy.rlvr(g), Config(), iterations=1, sampler="native")
    with pytest.raises(InputError, match="table: expected"):
        train_transformer(g, np.zeros(3), Config(window=1), iterations=1)


def test_exact_mean_averages_the_leaves():
    g = graph.path_star(3, 1, 2)
    assert exact_mean(policy.rlvr(g)) == pytest.approx((2 * 1 + 1) * (2 * 3 - 1), rel=1e-12)


def test_the_core_package_does_not_need_jax():
    code = ("import sys; sys.modules['jax'] = None; sys.modules['optax'] = None\n"
            "import edgewalk, edgewalk.cli, edgewalk.io, edgewalk.history, edgewalk.plots\n"
            "try:\n    import edgewalk.transformer\nexcept ImportError as e:\n    print('refused:', e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "refused: edgewalk.transformer needs JAX and optax" in done.stdout
