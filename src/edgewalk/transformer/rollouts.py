"""A trained (or initial) transformer as a policy: tabulated over the window chain for the
native engine and the exact solver, or sampled in JAX with a key/value cache.

Random streams: rollout r (counted from 0 over the whole run) draws with the JAX key
``fold_in(fold_in(key(seed), r), t)`` at step t, so its trajectory does not depend on how the
rollouts are split into batches (up to float32 rounding of the logits, which can differ between
batch shapes on some devices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import checks, exact
from ..errors import InputError, SizeError
from ..graph import Graph
from ..history import WindowChain, window_chain
from ..policy import Policy, softmax_rows
from ..result import HittingTimes, regular_edges
from .model import (Config, Moves, age_scores, finish, keys_values, queries, tabulate_output,
                    to_device)

DEFAULT_BATCH = 4096
MAX_BINS = 4096


@dataclass(frozen=True, eq=False)
class TransformerPolicy:
    """The model of :mod:`.model` on ``graph`` with parameters ``params`` (numpy arrays) over the
    tabular logits ``table`` (one per CSR entry of ``graph``; see :func:`.model.table_logits`)."""

    graph: Graph
    config: Config
    params: dict = field(repr=False)
    table: np.ndarray = field(repr=False)
    name: str = "transformer"
    recorded_hitting_time: float = math.nan  # the last hitting time its training recorded

    def __post_init__(self) -> None:
        object.__setattr__(self, "moves", Moves.build(self.graph, self.table, self.config.rows))

    def describe(self) -> dict:
        return {"name": self.name, "model": "transformer", **self.config.describe()}

    def chain(self, max_bytes: int | None = None) -> WindowChain:
        """The window chain the model is a policy on (SizeError if it does not fit; InputError
        for the whole-trajectory model, which has none)."""
        if self.config.window is None:
            raise InputError("window: the whole-trajectory model is no policy on a finite window chain")
        return window_chain(self.graph, self.config.window, max_bytes)

    def chain_if_it_fits(self, max_bytes: int | None = None) -> WindowChain | None:
        """The model's window chain, or None for the whole-trajectory model or a chain that
        does not fit in memory."""
        if self.config.window is None:
            return None
        try:
            return self.chain(max_bytes)
        except SizeError:
            return None

    def tabulate(self, chain: WindowChain | None = None) -> Policy:
        """The model as an edge-conditioned policy on its window chain: one batched forward
        pass over every window; the softmax is taken in float64 over the table's logits plus the
        output, so an untrained model gives the table's probabilities bit for bit."""
        chain = self.chain() if chain is None else chain
        logits = self.table[chain.base_entry] + tabulate_output(self.params, self.config, self.moves, chain)
        return Policy(chain, softmax_rows(chain, logits), self.name, self.describe())

    def sample(self, rollouts: int, seed: int = 0, horizon: int = 1000, targets=None,
               first_rollout: int = 0, batch: int = DEFAULT_BATCH) -> "Samples":
        """``rollouts`` rollouts (rollout numbers first_rollout ..) of at most ``horizon``
        transitions in JAX, rollout r aiming at targets[r % len(targets)] (default the leaves)."""
        rollouts = checks.whole("rollouts", rollouts, 1)
        seed = checks.seed("seed", seed)
        horizon = checks.whole("horizon", horizon, 1, 2**30)
        batch = checks.whole("batch", batch, 1)
        first_rollout = checks.whole("first_rollout", first_rollout, 0, 2**31 - 1)
        targets = np.asarray(self.graph.leaves if targets is None else targets, np.int32)
        parts = [sample_batch(self, seed, horizon, targets, first, min(batch, first_rollout + rollouts - first))
                 for first in range(first_rollout, first_rollout + rollouts, batch)]
        return Samples(*(np.concatenate(column) for column in zip(*parts)))


class Samples(NamedTuple):
    """Rollouts sampled in JAX: ``times[r]`` the hitting time, -1 if censored at the horizon;
    ``tokens[r, t]`` the state at step t (``tokens[r, 0]`` the start); ``actions[r, t]`` the
    column of the move taken at step t in the padded row; ``log_probability[r, t]`` its
    log-probability; ``targets[r]`` the target node. Entries past a rollout's end are
    meaningless."""

    times: np.ndarray
    tokens: np.ndarray
    actions: np.ndarray
    log_probability: np.ndarray
    targets: np.ndarray

    def hitting_times(self, parameters: dict | None = None, bins: int | None = None,
                      seconds: float = 0.0) -> HittingTimes:
        """The rollouts as a result record (histogram over [0, horizon], censored apart;
        ``parameters`` gain the number of bins)."""
        horizon = self.actions.shape[1]
        bins = min(horizon + 1, MAX_BINS) if bins is None else min(checks.whole("bins", bins, 1), horizon + 1)
        width = -(-(horizon + 1) // bins)
        bins = -(-(horizon + 1) // width)
        hit = self.times[self.times >= 0].astype(np.int64)
        counts = np.bincount(hit // width, minlength=bins)
        total = int(hit.sum())
        return HittingTimes(counts=counts, edges=regular_edges(bins, width), hits=len(hit),
                            censored=int((self.times < 0).sum()), total=total,
                            total_of_squares=int((hit.astype(object) ** 2).sum()) if len(hit) else 0,
                            steps=total + horizon * int((self.times < 0).sum()), draws_total=total,
                            draws_total_of_squares=int((hit.astype(object) ** 2).sum()) if len(hit) else 0,
                            seconds=seconds, parameters={**(parameters or {}), "bins": bins})


def jax_key(seed: int) -> jax.Array:
    """A JAX key from a 64-bit seed."""
    return jax.random.fold_in(jax.random.key(np.uint32(seed & 0xFFFFFFFF)), np.uint32(seed >> 32))


_SAMPLERS: dict = {}


MIN_BATCH = 64  # the narrowest batch


def batch_width(count: int) -> int:
    """The rollouts a batch of ``count`` is padded to: a power of two, at least MIN_BATCH (few
    shapes to compile)."""
    return max(MIN_BATCH, 1 << max(0, (count - 1).bit_length()))


def sample_batch(model: TransformerPolicy, seed: int, horizon: int, targets: np.ndarray, first: int,
                 count: int) -> Samples:
    """One batch of rollouts first .. first + count - 1 (see :meth:`TransformerPolicy.sample`).

    The batch walks until its rollouts have all ended or reached the horizon; whenever at most a
    quarter of it is still walking (and it is wider than the narrowest batch), the rollouts that
    walk on are gathered into a batch a quarter as wide, so that a long tail of hitting times
    is not paid for at the full width. A rollout's steps do not depend on its batch."""
    capacity = max(64, 1 << max(0, (horizon - 1).bit_length()))  # one compilation per power of two
    begin, advance = _sampler(model.config, capacity, model.graph.n_states)
    width = batch_width(count)
    numbers = np.arange(first, first + width)
    target = targets[numbers % len(targets)]
    head = jnp.asarray(model.graph.state_head)
    params = to_device(model.params)
    carry = begin(params, head, jax_key(seed), jnp.asarray(numbers, jnp.uint32), jnp.asarray(target),
                  jnp.int32(count))
    times = np.full(width, -1, np.int32)
    tokens = np.zeros((width, horizon + 1), np.int32)
    actions = np.zeros((width, horizon), np.int32)
    logp = np.zeros((width, horizon), np.float32)
    rows = np.where(np.arange(width) < count, np.arange(width), -1)  # each row's rollout; -1: padding

    def keep(which: np.ndarray, c) -> None:  # the trajectories of the carry's rows `which`
        which = which[rows[which] >= 0]
        t = int(c[0])
        at = jnp.asarray(which)
        times[rows[which]] = np.asarray(c[3][at])
        tokens[rows[which], :t + 1] = np.asarray(c[9][:t + 1, at]).T
        actions[rows[which], :t] = np.asarray(c[10][:t, at]).T
        logp[rows[which], :t] = np.asarray(c[11][:t, at]).T

    while True:
        narrowest = len(rows) <= MIN_BATCH
        carry = advance(params, model.moves, head, carry, jnp.int32(horizon),
                        jnp.int32(0 if narrowest else len(rows) // 4))
        done = np.asarray(carry[2])
        if narrowest or int(carry[0]) >= horizon or done.all():
            keep(np.arange(len(rows)), carry)
            break
        ended, walking = np.flatnonzero(done), np.flatnonzero(~done)
        keep(ended, carry)
        # rows that pad the narrower batch: copies of an ended rollout
        which = np.concatenate((walking, np.full(batch_width(len(walking)) - len(walking), ended[0])))
        carry = _gather(carry, jnp.asarray(which))
        rows = np.where(np.arange(len(which)) < len(walking), rows[which], -1)  # fillers: -1
    return Samples(times[:count], tokens[:count], actions[:count], logp[:count], target[:count])


def _gather(carry: tuple, which: jax.Array) -> tuple:
    """The carry of the rows ``which`` (the ring's positions and the step are shared)."""
    t, token, done, time, ring_k, ring_v, position, ring_token, counts, tokens, actions, logps, keys, target = carry
    return (t, token[which], done[which], time[which], ring_k[which], ring_v[which], position,
            ring_token[which], counts[which], tokens[:, which], actions[:, which], logps[:, which],
            keys[which], target[which])


def _sampler(config: Config, capacity: int, vocabulary: int):
    """The jitted sampler of one shape (compiled once per config, buffer capacity and
    vocabulary; the horizon, at most the capacity, is an argument): ``begin`` makes a batch's
    carry (rows from ``count`` on pad it: ended from the start), ``advance`` walks it until the
    horizon or until at most ``enough`` rollouts are still walking (0: until every one has
    ended).

    The key/value cache is a ring of the last ``window`` positions (windowed model; at most the
    capacity + 1 positions a rollout has) or of the last ``max_age - 1`` (whole trajectory).
    Older positions all carry the last age embedding, and a position's key and value depend only
    on its token, so the whole-trajectory model summarises them exactly by per-rollout token
    counts: their share of the attention is ``sum_v count[v] exp(score(v))`` over the
    vocabulary. A step therefore costs the same at any trajectory length."""
    key = (config, capacity, vocabulary)
    if key in _SAMPLERS:
        return _SAMPLERS[key]
    # a window longer than the buffer sees every position: its ring needs no more room
    ring = min(config.window, capacity + 1) if config.window is not None else config.max_age - 1
    counting = config.window is None
    heads, width = config.heads, config.d_model // config.heads
    scale = 1.0 / math.sqrt(width)

    def begin(params, head, base_key, numbers, target, count):
        batch = numbers.shape[0]
        keys = jax.vmap(lambda r: jax.random.fold_in(base_key, r))(numbers)
        start = jnp.zeros(batch, jnp.int32)
        done0 = (head[start] == target) | (jnp.arange(batch) >= count)  # rows past count pad the batch
        # the ring is (batch, heads, ring, e); the trajectory buffers are time-major
        return (jnp.int32(0), start, done0, jnp.where(done0, 0, -1).astype(jnp.int32),
                jnp.zeros((batch, heads, ring, width)), jnp.zeros((batch, heads, ring, width)),
                jnp.full(ring, -1, jnp.int32), jnp.zeros((batch, ring), jnp.int32),
                jnp.zeros((batch, vocabulary) if counting else (batch, 0)),
                jnp.zeros((capacity + 1, batch), jnp.int32), jnp.zeros((capacity, batch), jnp.int32),
                jnp.zeros((capacity, batch)), keys, target)

    def advance(params, moves, head, carry, horizon, enough):
        vocabulary_k, vocabulary_v = keys_values(params, jnp.arange(vocabulary), heads)  # V H e

        def step(c):
            t, token, done, time, ring_k, ring_v, position, ring_token, counts, tokens, actions, logps, keys, target = c
            slot = t % ring
            if counting:  # the position leaving the ring joins the counts
                leaving = jax.nn.one_hot(ring_token[:, slot], vocabulary) * (position[slot] >= 0)
                counts = counts + leaving
            k, v = keys_values(params, token, heads)
            ring_k = jax.lax.dynamic_update_slice(ring_k, k[:, :, None], (0, 0, slot, 0))
            ring_v = jax.lax.dynamic_update_slice(ring_v, v[:, :, None], (0, 0, slot, 0))
            position = position.at[slot].set(t)
            ring_token = ring_token.at[:, slot].set(token)
            visible = position >= 0
            x, q = queries(params, token, heads)  # B d, B H e
            by_age = age_scores(params, q, heads)  # B H A
            scores = jnp.einsum("bhe,bhre->bhr", q, ring_k)
            scores = (scores + jnp.take(by_age, jnp.clip(t - position, 0, config.ages - 1), axis=-1)) * scale
            scores = jnp.where(visible, scores, -jnp.inf)
            top = scores.max(-1, keepdims=True)
            if counting:
                old = (jnp.einsum("bhe,vhe->bhv", q, vocabulary_k) + by_age[..., -1:]) * scale
                old = jnp.where(counts[:, None] > 0, old, -jnp.inf)
                top = jnp.maximum(top, old.max(-1, keepdims=True))
            weight = jnp.exp(scores - top)
            mixed = jnp.einsum("bhr,bhre->bhe", weight, ring_v)
            total = weight.sum(-1)
            if counting:
                old_weight = counts[:, None] * jnp.exp(old - top)
                mixed = mixed + jnp.einsum("bhv,vhe->bhe", old_weight, vocabulary_v)
                total = total + old_weight.sum(-1)
            mixed = (mixed / total[..., None]).reshape(x.shape)
            logits = moves.logits[token] + finish(params, moves, token, x, mixed)
            step_keys = jax.vmap(lambda kk: jax.random.fold_in(kk, t))(keys)
            action = jax.vmap(jax.random.categorical)(step_keys, logits).astype(jnp.int32)
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
            following = jnp.take_along_axis(moves.next_state[token], action[:, None], axis=1)[:, 0]
            hit = head[following] == target
            time = jnp.where(hit & ~done, t + 1, time)
            return (t + 1, following, done | hit, time, ring_k, ring_v, position, ring_token, counts,
                    jax.lax.dynamic_update_index_in_dim(tokens, following, t + 1, 0),
                    jax.lax.dynamic_update_index_in_dim(actions, action, t, 0),
                    jax.lax.dynamic_update_index_in_dim(logps, logp, t, 0), keys, target)

        def going(c):
            return (c[0] < horizon) & (jnp.sum(~c[2]) > enough)

        return jax.lax.while_loop(going, step, carry)

    _SAMPLERS[key] = (jax.jit(begin), jax.jit(advance, donate_argnums=3))  # the carry's buffers are reused
    return _SAMPLERS[key]


def exact_mean(policy: Policy, targets=None) -> float:
    """The exact hitting time averaged over ``targets`` (default the leaves), each solved on the
    moves the policy can make."""
    targets = policy.graph.leaves if targets is None else targets
    return float(np.mean([exact.expected_hitting_time(policy, t) for t in targets]))


def from_training(run, name: str = "transformer") -> TransformerPolicy:
    """The trained model of a transformer's TrainingRun (``edgewalk.io.read_training``)."""
    from ..graph import from_description

    if not run.model:
        raise InputError("run: not a transformer's training run (it has no model)")
    config = Config(**run.model["config"])
    return TransformerPolicy(from_description(run.graph), config, dict(run.model["parameters"]),
                             np.asarray(run.logits, float), name, float(run.hitting_time[-1]))
