"""PPO for the transformer (paper Figs. 6 and 7), from a tabular policy.

Each iteration draws ``rollouts`` rollouts of the current model ``pi_old``, cut at
``horizon_factor`` (2) times its current expected hitting time, with reward 1 for a hit and
-beta per step, and takes ``epochs`` Adam steps (optax) on the clipped surrogate

    L(theta) = sum over moves of min(rho A, clip(rho, 1 - clip, 1 + clip) A) / rollouts,
    rho = pi_theta(move) / pi_old(move).

Two samplers give the moves:

- ``native`` (windowed models whose window chain fits): the model is tabulated over the window
  chain (one batched forward pass) and the native engine's policy-gradient statistics give, per
  move of the chain, its visits N and mean return-to-go; A is that mean less the mean of its
  window, and the move enters L with weight N, as in tabular PPO
  (:func:`edgewalk.training.train_ppo`).
- ``jax`` (any model; the only one for the whole trajectory): rollouts sampled in JAX with a
  key/value cache; every move is a sample, A its return-to-go less the mean return-to-go of the
  moves from the same edge state in the batch.

Only positions with a choice enter L: rows where the output is added and the table can make
more than one move. The hitting time recorded is the exact mean over the leaves where the window
chain allows it (every iteration for chains of at most ``EXACT_STATES`` states, else at the first
and the last); otherwise a Monte Carlo mean of ``evaluation_rollouts`` rollouts cut at
``EVALUATION_FACTOR`` times the previous value (the native engine on the window chain every
iteration, or the JAX sampler for the whole trajectory at the recorded iterations only, the
horizon in between following the last value), and ``metrics["exact"]`` says which.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import checks, memory, planning
from ..errors import InputError, SizeError
from ..graph import Graph
from ..history import WindowChain, reference_values
from ..policy import Policy, from_logits
from ..result import TrainingRun
from ..training import METHODS, iteration_seed
from .model import (IMPOSSIBLE, Config, Moves, attention_pairs, init_parameters, sequence_output,
                    table_logits, to_device, to_host)
from .rollouts import DEFAULT_BATCH, Samples, TransformerPolicy, batch_width, exact_mean

EXACT_STATES = 20_000
EVALUATION_FACTOR = 20.0
DEFAULT_LR = 3e-3
DEFAULT_ITERATIONS = 100
DEFAULT_ROLLOUTS = 4096
SAMPLERS = ("native", "jax")
CHUNK_TOKENS = 2**23  # query-key pairs per chunk of the JAX path's surrogate (bounds its memory)
EVALUATION_SEED = 0x5DEECE66D  # evaluation rollouts draw from other streams than training's

# progress(iterations done, hitting time, what the next one is doing: "" or e.g. "epoch 3/10")
Progress = Callable[[int, float, str], None]


def train_transformer(
    graph: Graph,
    table: Policy | np.ndarray,
    config: Config = Config(),
    iterations: int = DEFAULT_ITERATIONS,
    lr: float = DEFAULT_LR,
    beta: float = METHODS["ppo"].beta,
    clip: float = 0.2,
    epochs: int = 10,
    rollouts: int = DEFAULT_ROLLOUTS,
    seed: int = 0,
    sampler: str | None = None,
    backend: str = "numba",
    threads: int | None = None,
    record_every: int = 1,
    horizon_factor: float = 2.0,
    evaluation_rollouts: int = 4096,
    parameters: dict | None = None,
    max_bytes: int | None = None,
    progress: Progress | None = None,
) -> TrainingRun:
    """PPO on the transformer of ``config`` started at ``table`` (a policy on ``graph`` or its
    logits, one per CSR entry): see the module docstring. ``parameters`` default to
    :func:`.model.init_parameters` with ``seed`` (the output projection zero, so iteration 0 is
    the table). ``sampler`` defaults to ``native`` for a windowed model whose chain fits in
    ``max_bytes`` and to ``jax`` otherwise. Returns a TrainingRun whose ``model`` holds the
    config and the final parameters and whose ``logits`` are the table's. ``progress`` hears of
    every iteration done and, within one, of each phase as it starts (sampling, each epoch of the
    surrogate, evaluation), which a whole-trajectory iteration can spend minutes in."""
    def report(done: int, value: float, phase: str = "") -> None:
        if progress is not None:
            progress(done, value, phase)

    iterations = checks.iterations("iterations", iterations, 0)
    lr = checks.learning_rate("lr", lr)
    beta = checks.real("beta", beta, 0.0)
    clip = checks.real("clip", clip, 0.0, low_open=True)
    epochs = checks.whole("epochs", epochs, 1)
    rollouts = checks.whole("rollouts", rollouts, 1)
    seed = checks.seed("seed", seed)
    horizon_factor = checks.real("horizon_factor", horizon_factor, 0.0, low_open=True)
    evaluation_rollouts = checks.whole("evaluation_rollouts", evaluation_rollouts, 1)
    record_every = checks.whole("record_every", record_every, 1)
    if sampler is not None:
        checks.choice("sampler", sampler, SAMPLERS)
    logits = table_of(graph, table)
    if config.window is not None:
        # The age embeddings (window x d_model floats) are held about six times over (host, device,
        # Adam's two moments, the gradient, the update), before anything else is allocated.
        memory.require(6 * 4 * config.window * config.d_model,
                       f"window: a transformer with {config.window:,} age embeddings of {config.d_model}", "window")
    params = init_parameters(config, graph.n_states, seed) if parameters is None else dict(parameters)
    model = TransformerPolicy(graph, config, params, logits)
    chain = None
    if config.window is not None:
        try:
            chain = model.chain(max_bytes)
        except SizeError:
            if sampler == "native":
                raise
    sampler = sampler or ("native" if chain is not None else "jax")
    if sampler == "jax" and config.window is not None:
        # The JAX sampler keeps a ring of the last `window` keys and values, and the scores of every
        # age, per rollout of a batch (padded as the sampler pads it).
        width = batch_width(min(DEFAULT_BATCH, max(rollouts, evaluation_rollouts)))
        ring = (2 * config.d_model + config.heads) * 4 * width * config.window
        memory.require(ring, f"window: the JAX sampler's cache of {config.window:,} positions for "
                       f"{width:,} rollouts at a time (the larger of {rollouts:,} training and "
                       f"{evaluation_rollouts:,} evaluation rollouts, at most {DEFAULT_BATCH:,} a batch)",
                       "window")
    if sampler == "native" and chain is None:
        raise InputError("sampler: native needs a windowed model (--window K); the whole trajectory uses jax")
    exact_every_iteration = chain is not None and chain.n_states <= EXACT_STATES
    optimiser = optax.adam(lr)
    state = optimiser.init(to_device(params))
    names = ("iteration", "hitting_time", "exact", "horizon", "censored", "seconds")
    record: dict[str, list] = {name: [] for name in names}
    estimate, is_exact = exact_mean(from_logits(graph, logits)), True
    if not math.isfinite(estimate):
        raise InputError("table: some leaf is not hit surely from the start under it; PPO needs a finite hitting time")
    seconds = 0.0
    for n in range(iterations + 1):
        tabulated = model.tabulate(chain) if chain is not None else None
        wanted = n % record_every == 0 or n == iterations
        if n > 0 and (chain is not None or wanted):
            estimate, is_exact = _estimate(
                model, tabulated, estimate, n == iterations, exact_every_iteration, evaluation_rollouts,
                iteration_seed(seed ^ EVALUATION_SEED, n), backend, threads,
                lambda: report(n - 1, estimate, f"evaluating {evaluation_rollouts:,} rollouts"))
        if wanted:
            for name, value in zip(names, (n, estimate, is_exact, 0, math.nan, seconds)):
                record[name].append(value)
        report(n, estimate)
        if n == iterations:
            break
        began = time.perf_counter()
        horizon = max(1, math.ceil(horizon_factor * estimate))
        rollout_seed = iteration_seed(seed, n)
        report(n, estimate, f"sampling {rollouts:,} rollouts")
        if sampler == "native":
            stats = planning.gradient_statistics(tabulated, rollouts=rollouts, seed=rollout_seed,
                                                 max_steps=horizon, backend=backend, threads=threads,
                                                 expected_steps=estimate)
            batches, surrogate = _window_batch(model, chain, stats, beta)
            censored = stats.censored / rollouts
        else:
            samples = model.sample(rollouts, seed=rollout_seed, horizon=horizon)
            batches, surrogate = _sequence_batch(model, samples, beta)
            censored = float((samples.times < 0).mean())
        params, state = _ascend(model, params, batches, surrogate, optimiser, state, epochs, clip, rollouts,
                                lambda epoch: report(n, estimate, f"epoch {epoch}/{epochs}"))
        model = TransformerPolicy(graph, config, params, logits, model.name)
        seconds += time.perf_counter() - began
        if wanted:
            record["horizon"][-1], record["censored"][-1], record["seconds"][-1] = horizon, censored, seconds
    settings = {"lr": lr, "beta": beta, "clip": clip, "epochs": epochs, "rollouts": rollouts, "seed": seed,
                "sampler": sampler, "backend": backend, "horizon_factor": horizon_factor,
                "evaluation_rollouts": evaluation_rollouts, "iterations": iterations,
                "record_every": record_every, **_references(graph)}
    empty = np.empty((len(record["iteration"]), 0))
    return TrainingRun(
        method="ppo", graph=graph.describe(), parametrisation="transformer", settings=settings,
        iteration=np.array(record["iteration"], np.int64), hitting_time=np.array(record["hitting_time"]),
        a=empty, b=empty, c=empty, d=empty, logits=logits, policy=from_logits(graph, logits, "table"),
        seconds_per_iteration=seconds / iterations if iterations else 0.0,
        model={"config": config.describe(), "parameters": to_host(params)},
        metrics={name: np.array(record[name]) for name in ("exact", "horizon", "censored", "seconds")})


def table_of(graph: Graph, table: Policy | np.ndarray) -> np.ndarray:
    """The logits of the table a model starts at (see :func:`.model.table_logits`)."""
    if isinstance(table, Policy):
        if table.graph is not graph and table.graph.describe() != graph.describe():
            raise InputError(f"table: lives on {table.graph.describe()}, not on {graph.describe()}")
        return table_logits(table)
    logits = np.asarray(table, float)
    if logits.shape != (graph.n_transitions,) or not np.isfinite(logits).all():
        raise InputError(f"table: expected {graph.n_transitions} finite logits, got shape {logits.shape}")
    return logits


def _references(graph: Graph) -> dict:
    try:
        return {f"reference_{k}": v for k, v in reference_values(graph).items()}
    except InputError:
        return {}


def _estimate(model: TransformerPolicy, tabulated: Policy | None, previous: float, last: bool,
              exact_every_iteration: bool, evaluation_rollouts: int, seed: int, backend: str,
              threads: int | None, sampling: Callable[[], None]) -> tuple[float, bool]:
    """The current mean hitting time over the leaves and whether it is exact (else a Monte Carlo
    mean with rollouts cut at EVALUATION_FACTOR times the ``previous`` value, ``sampling()``
    called before the rollouts start)."""
    if tabulated is not None and (exact_every_iteration or last):
        return exact_mean(tabulated), True
    sampling()
    horizon = max(1, math.ceil(EVALUATION_FACTOR * previous))
    if tabulated is not None:
        stats = planning.gradient_statistics(tabulated, rollouts=evaluation_rollouts, seed=seed,
                                             max_steps=horizon, backend=backend, threads=threads,
                                             expected_steps=previous)
        return stats.steps / stats.rollouts, False
    samples = model.sample(evaluation_rollouts, seed=seed, horizon=horizon)
    return float(np.where(samples.times >= 0, samples.times, horizon).mean()), False


def _bucket(n: int) -> int:
    """n rounded up to a multiple of 32 up to 512, and beyond to m * 2**k with m <= 16 (at most
    an eighth more): few shapes, so few compilations (each new one compiles the surrogate's
    gradient again: whole-trajectory rollouts from the pretrained policy at W = K = 6, L = 5 met
    new multiples of 32 every iteration), and little padding."""
    if n <= 512:
        return max(1, -(-n // 32)) * 32
    shift = n.bit_length() - 4
    return -(-n >> shift) << shift


def choice_states(moves: Moves) -> np.ndarray:
    """Per base state: whether its row has a choice the output can change (output added, and the
    table makes more than one move)."""
    possible = np.asarray(moves.valid) & (np.asarray(moves.logits) > IMPOSSIBLE / 2)
    return np.asarray(moves.free) & (possible.sum(axis=1) > 1)


def _window_batch(model: TransformerPolicy, chain: WindowChain, stats, beta: float):
    """The surrogate's data from the native engine's statistics on the window chain: per visited
    window with a choice, its tokens, the padded weights N / rollouts and advantages."""
    visits = stats.visits.astype(float)
    move_returns = stats.returns(beta)
    starts = chain.row_start[:-1]
    degree = np.diff(chain.row_start)
    state_visits = np.add.reduceat(visits, starts)
    state_returns = np.add.reduceat(move_returns, starts)
    rows = np.flatnonzero((state_visits > 0) & choice_states(model.moves)[chain.last_state])
    width = model.moves.valid.shape[1]
    column = np.arange(width)
    valid = column[None, :] < degree[rows, None]
    entry = np.where(valid, starts[rows, None] + column[None, :], 0)
    taken = valid & (visits[entry] > 0)
    advantage = np.where(taken, move_returns[entry] / np.maximum(visits[entry], 1)
                         - (state_returns[rows] / state_visits[rows])[:, None], 0.0)
    weight = np.where(taken, visits[entry], 0.0)
    size = 1 << max(0, int(len(rows) - 1).bit_length())
    pad = size - len(rows)
    tokens = np.pad(np.where(chain.windows[rows] >= 0, chain.windows[rows], 0), ((0, pad), (0, 0)))
    last = np.pad(chain.length[rows] - 1, (0, pad))
    batch = tuple(jnp.asarray(a) for a in (
        tokens.astype(np.int32), last[:, None].astype(np.int32),
        np.pad(weight, ((0, pad), (0, 0))).astype(np.float32)[:, None],
        np.pad(advantage, ((0, pad), (0, 0))).astype(np.float32)[:, None]))
    return [batch], _window_surrogate(model.config)


def _sequence_batch(model: TransformerPolicy, samples: Samples, beta: float):
    """The surrogate's data from JAX rollouts: per rollout its tokens and, at its positions with
    a choice, the move taken, its old log-probability and its advantage."""
    rollouts, horizon = samples.actions.shape
    hit = samples.times >= 0
    length = np.where(hit, samples.times, horizon)
    step = np.arange(horizon)
    tokens = samples.tokens[:, :horizon]
    chosen = (step[None, :] < length[:, None]) & choice_states(model.moves)[tokens]
    returns = hit[:, None] - beta * (length[:, None] - step[None, :])
    count = np.bincount(tokens[chosen], minlength=model.graph.n_states)
    baseline = np.bincount(tokens[chosen], weights=returns[chosen], minlength=model.graph.n_states) / np.maximum(count, 1)
    advantage = returns - baseline[tokens]
    # Rollouts sorted by length, in chunks padded to their own longest (rounded by _bucket), of
    # a number of rows fixed by that span: few shapes to compile and little padding.
    order = np.argsort(length, kind="stable")
    spans = np.array([_bucket(int(n) + 1) for n in length[order]])
    arrays = (samples.tokens, samples.actions, samples.log_probability * chosen, advantage * chosen,
              chosen.astype(np.float32))
    dtypes = (np.int32, np.int32, np.float32, np.float32, np.float32)
    batches, first = [], 0
    while first < rollouts:
        best = (0, 0, 0)
        for span in np.unique(spans[first:]):  # the span that takes the most rollouts at once
            pairs = attention_pairs(model.config, model.graph.n_states, int(span)) * model.config.heads
            rows = 1 << max(0, (CHUNK_TOKENS // pairs).bit_length() - 1)
            take = min(rows, int(np.searchsorted(spans, span, side="right")) - first)
            if take > best[0]:
                best = (take, int(span), rows)
        take, span, rows = best
        members = order[first:first + take]
        chunk = []
        for a, dtype in zip(arrays, dtypes):
            out = np.zeros((rows, span), dtype)
            width = min(span, a.shape[1])
            out[:len(members), :width] = a[members, :width]
            chunk.append(jnp.asarray(out))
        batches.append(tuple(chunk))
        first += len(members)
    return batches, _sequence_surrogate(model.config)


_SURROGATES: dict = {}


def _window_surrogate(config: Config):
    key = ("window", config)
    if key not in _SURROGATES:
        def surrogate(params, moves, old, batch, clip):
            """sum over (window, move) of N min(rho A, clip(rho) A); old = None gives the
            log-probabilities instead."""
            tokens, last, weight, advantage = batch
            out = jnp.take_along_axis(sequence_output(params, config, moves, tokens), last[..., None], axis=1)
            current = jnp.take_along_axis(tokens, last, axis=1)
            logp = jax.nn.log_softmax(moves.logits[current] + out, axis=-1)
            return _clipped(logp, old, weight, advantage, clip)

        _SURROGATES[key] = surrogate
    return _SURROGATES[key]


def _sequence_surrogate(config: Config):
    key = ("sequence", config)
    if key not in _SURROGATES:
        def surrogate(params, moves, old, batch, clip):
            tokens, actions, logp_old, advantage, mask = batch
            logp = jax.nn.log_softmax(moves.logits[tokens] + sequence_output(params, config, moves, tokens), axis=-1)
            logp = jnp.sum(jnp.where(jax.nn.one_hot(actions, logp.shape[-1], dtype=bool), logp, 0.0), axis=-1)
            return _clipped(logp, logp_old if old is None else old, mask, advantage, clip)

        _SURROGATES[key] = surrogate
    return _SURROGATES[key]


def _clipped(logp, old, weight, advantage, clip):
    """The clipped surrogate summed with ``weight`` (0 on pads and moves not taken, whose
    log-probabilities may be -inf and are kept out of the ratio), or ``logp`` if ``old`` is None."""
    if old is None:
        return logp
    used = weight > 0
    ratio = jnp.exp(jnp.where(used, logp, 0.0) - jnp.where(used, old, 0.0))
    pessimistic = jnp.minimum(ratio * advantage, jnp.clip(ratio, 1 - clip, 1 + clip) * advantage)
    return jnp.sum(jnp.where(used, weight * pessimistic, 0.0))


_STEPS: dict = {}


def _ascend(model: TransformerPolicy, params: dict, batches: list, surrogate, optimiser, state,
            epochs: int, clip: float, rollouts: int, starting: Callable[[int], None]
            ) -> tuple[dict, object]:
    """``epochs`` Adam steps up the surrogate (summed over the batches, divided by the rollouts),
    calling ``starting(epoch)`` (1-based) as each begins. Returns the new parameters and optimiser
    state."""
    key = (id(surrogate), id(optimiser))
    if key not in _STEPS:
        log_probabilities = jax.jit(lambda p, m, b: surrogate(p, m, None, b, 0.0))
        gradient = jax.jit(jax.grad(lambda p, m, old, b, c, n: -surrogate(p, m, old, b, c) / n))

        @jax.jit
        def update(p, s, g):
            updates, s = optimiser.update(g, s, p)
            return optax.apply_updates(p, updates), s

        _STEPS[key] = (log_probabilities, gradient, update)
    log_probabilities, gradient, update = _STEPS[key]
    p = to_device(params)
    sequence = len(batches[0]) == 5
    olds = [None if sequence else log_probabilities(p, model.moves, b) for b in batches]
    for epoch in range(1, epochs + 1):
        starting(epoch)
        total = None
        for old, b in zip(olds, batches):
            g = gradient(p, model.moves, old, b, clip, float(rollouts))
            total = g if total is None else jax.tree_util.tree_map(jnp.add, total, g)
        p, state = jax.block_until_ready(update(p, state, total))  # so that the next report is timely
    return to_host(p), state
