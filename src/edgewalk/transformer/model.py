"""The single-layer causal transformer over edge-state tokens, started at a tabular policy.

A trajectory is the sequence of its edge states ``s_0, s_1, ..., s_t`` (one token per state of the
base graph). At position t the model sees the last ``window`` tokens (all of them when
``window`` is None) and gives logits over the valid next states of ``s_t``:

    logits(s' | history) = table_logits(s_t -> s') + out(history)[s'],

``table_logits`` the tabular policy's logits (log of its probabilities, :data:`IMPOSSIBLE` where
it has none; invalid moves have no entry at all and are masked), ``out`` the transformer: token embedding, one pre-norm
attention layer whose scores carry a learned embedding of each key's age ``t - j`` (its relative
position; ages past ``max_age`` - 1 share the last one), a pre-norm MLP, a final norm and a linear
projection onto the next-state tokens that starts at zero. So at initialisation the model is the
table, exactly. With ``rows = "trained"`` the output is added only in rows whose current state
is trainable (the rows tabular training changes); with ``"all"``, in every row.

Because the input of every position is its token alone, a position's key and value depend only
on its token; a windowed model is therefore a function of the window's tokens and their order,
i.e. an edge-conditioned policy on the window chain (:mod:`edgewalk.history`), which
:func:`tabulate_output` computes in one batched forward pass. The whole-trajectory model has no
such chain; it is sampled in JAX (:mod:`.rollouts`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import checks
from ..errors import InputError
from ..graph import Graph
from ..history import WindowChain
from ..policy import Policy

ROWS = ("all", "trained")


@dataclass(frozen=True)
class Config:
    """The transformer's shape. ``window`` None means the whole trajectory."""

    d_model: int = 32
    heads: int = 2
    mlp: int = 128
    window: int | None = None
    max_age: int = 64
    rows: str = "all"

    def __post_init__(self) -> None:
        checks.whole("d_model", self.d_model, 1)
        checks.whole("heads", self.heads, 1)
        if self.d_model % self.heads:
            raise InputError(f"heads must divide d_model ({self.d_model}), got {self.heads}")
        checks.whole("mlp", self.mlp, 1)
        if self.window is not None:
            checks.whole("window", self.window, 1)
        checks.whole("max_age", self.max_age, 2)
        checks.choice("rows", self.rows, ROWS)

    @property
    def ages(self) -> int:
        """Number of age embeddings: the window, or max_age for the whole trajectory."""
        return self.window if self.window is not None else self.max_age

    def describe(self) -> dict:
        return asdict(self)


def init_parameters(config: Config, vocabulary: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random parameters (normal, scaled by 1/sqrt(fan-in)), the output projection zero."""
    seed = checks.seed("seed", seed)
    rng = np.random.default_rng(seed)
    d, m, a = config.d_model, config.mlp, config.ages

    def normal(*shape: int, fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(np.float32)

    ones, zeros = np.ones(d, np.float32), np.zeros(d, np.float32)
    return {
        "token": normal(vocabulary, d, fan_in=1), "age": normal(a, d, fan_in=1),
        "norm1_scale": ones, "norm1_bias": zeros,
        "query": normal(d, d, fan_in=d), "key": normal(d, d, fan_in=d), "value": normal(d, d, fan_in=d),
        "attention_out": normal(d, d, fan_in=d),
        "norm2_scale": ones.copy(), "norm2_bias": zeros.copy(),
        "mlp_in": normal(d, m, fan_in=d), "mlp_in_bias": np.zeros(m, np.float32),
        "mlp_out": normal(m, d, fan_in=m), "mlp_out_bias": zeros.copy(),
        "norm3_scale": ones.copy(), "norm3_bias": zeros.copy(),
        "out": np.zeros((d, vocabulary), np.float32), "out_bias": np.zeros(vocabulary, np.float32),
    }


# The logit of a move the table cannot make: finite, so that every route taking logits takes it,
# and so negative that its probability is exactly 0 in float32 and float64 alike.
IMPOSSIBLE = -1e30


def table_logits(policy: Policy) -> np.ndarray:
    """A tabular policy's logits per CSR entry: log of its probabilities, IMPOSSIBLE where zero
    (``edgewalk.policy.from_logits`` gives the policy back)."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(policy.probabilities), IMPOSSIBLE)


class Moves(NamedTuple):
    """The base graph's rows padded to its largest degree, on the device (a pytree): per state
    its next states, CSR entries, which pads are real moves, the table's logits (-inf on pads and
    on moves the table cannot make) and whether the transformer's output is added in its row."""

    next_state: jax.Array
    entry: jax.Array
    valid: jax.Array
    logits: jax.Array
    free: jax.Array

    @classmethod
    def build(cls, graph: Graph, logits: np.ndarray, rows: str) -> "Moves":
        """The padded rows of ``graph`` with the table's ``logits`` (one per CSR entry)."""
        logits = np.asarray(logits, float)
        if logits.shape != (graph.n_transitions,):
            raise InputError(f"logits: expected one per CSR entry ({graph.n_transitions}), got {logits.shape}")
        if not np.isfinite(logits).all():
            raise InputError("logits: every logit must be finite (IMPOSSIBLE for a move never made)")
        degree = np.diff(graph.row_start)
        starts = graph.row_start[:-1]
        if (np.maximum.reduceat(logits, starts) <= IMPOSSIBLE / 2).any():
            raise InputError("logits: every row needs a possible move (a logit above IMPOSSIBLE)")
        width = int(degree.max())
        column = np.arange(width)
        valid = column[None, :] < degree[:, None]
        entry = np.where(valid, starts[:, None] + column[None, :], 0)
        padded = np.where(valid, logits[entry], -np.inf)  # pads are never drawn
        free = graph.trainable if rows == "trained" else np.ones(graph.n_states, bool)
        return cls(jnp.asarray(graph.next_state[entry]), jnp.asarray(entry, jnp.int32),
                   jnp.asarray(valid), jnp.asarray(padded, jnp.float32), jnp.asarray(free & (degree > 1)))


def _norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(variance + 1e-5) * scale + bias


def _split(x: jax.Array, heads: int) -> jax.Array:
    return x.reshape(*x.shape[:-1], heads, x.shape[-1] // heads)


def keys_values(params: dict, tokens: jax.Array, heads: int) -> tuple[jax.Array, jax.Array]:
    """The attention keys and values of tokens (any leading shape) -> (..., heads, d / heads)."""
    h = _norm(params["token"][tokens], params["norm1_scale"], params["norm1_bias"])
    return _split(h @ params["key"], heads), _split(h @ params["value"], heads)


def queries(params: dict, tokens: jax.Array, heads: int) -> tuple[jax.Array, jax.Array]:
    """(embedding, attention query (..., heads, d / heads)) of tokens (any leading shape)."""
    x = params["token"][tokens]
    h = _norm(x, params["norm1_scale"], params["norm1_bias"])
    return x, _split(h @ params["query"], heads)


def age_scores(params: dict, q: jax.Array, heads: int) -> jax.Array:
    """q . (embedding of age a) for every age: (..., heads, ages)."""
    return jnp.einsum("...he,ahe->...ha", q, _split(params["age"], heads))


def finish(params: dict, moves: Moves, tokens: jax.Array, x: jax.Array, mixed: jax.Array) -> jax.Array:
    """From a position's embedding ``x`` and its attention mix (heads concatenated) to the output
    over the padded next states of its token: residual, MLP, norm, the output projection (0 in
    rows where the output is not added and on pads)."""
    x = x + mixed @ params["attention_out"]
    h = _norm(x, params["norm2_scale"], params["norm2_bias"])
    x = x + jax.nn.gelu(h @ params["mlp_in"] + params["mlp_in_bias"]) @ params["mlp_out"] + params["mlp_out_bias"]
    h = _norm(x, params["norm3_scale"], params["norm3_bias"])
    following = moves.next_state[tokens]
    out = jnp.einsum("...e,...de->...d", h, params["out"].T[following]) + params["out_bias"][following]
    return jnp.where(moves.free[tokens][..., None] & moves.valid[tokens], out, 0.0)


# Counting pays once sequences are this many times longer than the scores a query then needs
# (2 (max_age - 1) + vocabulary): measured on CPU at W = K = 6, L = 5 (571 scores a query), the
# gradient of a batch of two took 0.028 s counted against 0.021 s with every pair at 512 tokens,
# 0.062 / 0.078 s at 1,024 and 0.126 / 0.292 s at 2,048 (0.57 s counted at 8,192).
COUNTED_FROM = 2


def attention_pairs(config: Config, vocabulary: int, length: int) -> int:
    """Query-key scores :func:`sequence_output` computes for one sequence of ``length`` tokens:
    every pair, or for the whole-trajectory model of long sequences, per query the 2 (max_age -
    1) keys of its block and the one before (:func:`_counted_output`) and one score per
    vocabulary token (the older positions)."""
    per_query = 2 * (config.ages - 1) + vocabulary
    if config.window is None and length > COUNTED_FROM * per_query:
        return length * per_query
    return length * length


def sequence_output(params: dict, config: Config, moves: Moves, tokens: jax.Array) -> jax.Array:
    """The output at every position of the sequences ``tokens`` (B, T), each position attending
    to itself and the positions before it within the window: (B, T, max degree).

    The age term of the scores is laid out with the relative-position "skew" (pad, reshape,
    drop a row) rather than a gather, so that neither pass scatters. The whole-trajectory model
    takes long sequences by :func:`_counted_output` instead (see :func:`attention_pairs`)."""
    length = tokens.shape[1]
    if attention_pairs(config, params["token"].shape[0], length) < length * length:
        return _counted_output(params, config, moves, tokens)
    return _full_output(params, config, moves, tokens)


def _full_output(params: dict, config: Config, moves: Moves, tokens: jax.Array) -> jax.Array:
    """:func:`sequence_output` with every query-key pair scored."""
    heads, ages = config.heads, config.ages
    length = tokens.shape[1]
    x, q = queries(params, tokens, heads)
    keys, values = keys_values(params, tokens, heads)
    q, keys, values = (jnp.swapaxes(a, 1, 2) for a in (q, keys, values))  # B H T e: batch axes lead
    scores = jnp.einsum("bhqe,bhte->bhqt", q, keys)
    by_age = jnp.einsum("bhqe,ahe->bhqa", q, _split(params["age"], heads))
    # relative[..., q, m] = score of age min(length - 1 - m, ages - 1), for m = 0 .. length - 1
    if length >= ages:
        old = jnp.broadcast_to(by_age[..., ages - 1:], by_age.shape[:-1] + (length - ages + 1,))
        relative = jnp.concatenate([old, by_age[..., ages - 2::-1]], axis=-1) if ages > 1 else old
    else:
        relative = by_age[..., length - 1::-1]
    padded = jnp.pad(relative, [(0, 0)] * 3 + [(1, 0)])
    scores = scores + padded.reshape(*padded.shape[:2], length + 1, length)[:, :, 1:]
    age = np.arange(length)[:, None] - np.arange(length)[None, :]
    visible = (age >= 0) & (age < (config.window or length + 1))
    scores = jnp.where(visible, scores / math.sqrt(q.shape[-1]), -jnp.inf)
    attention = jax.nn.softmax(scores, axis=-1)
    mixed = jnp.einsum("bhqt,bhte->bqhe", attention, values).reshape(x.shape)
    return finish(params, moves, tokens, x, mixed)


def _counted_output(params: dict, config: Config, moves: Moves, tokens: jax.Array) -> jax.Array:
    """:func:`sequence_output` of the whole-trajectory model, in O(T (max_age - 1 + vocabulary))
    per sequence instead of O(T^2), as the sampler computes it: a query attends to each of its
    last max_age - 1 positions (ages 0 .. max_age - 2) one by one, and to the older ones, which
    share the last age embedding and whose keys and values depend only on their tokens, through
    the counts of each token among them.

    The recent positions are scored in blocks: the queries of a block of S = max_age - 1
    positions against the keys of that block and the one before (two small matrix products a
    block, where a stack of max_age - 1 shifted copies of the keys and values cost seven times
    as long), the age term laid into the same (S, 2S) layout by the relative-position skew (pad,
    reshape: no gather, so no scatter in the gradient)."""
    heads, ages = config.heads, config.ages
    recent = size = ages - 1  # block size S
    length = tokens.shape[1]
    vocabulary = params["token"].shape[0]
    x, q = queries(params, tokens, heads)  # B T d, B T H e
    keys, values = keys_values(params, tokens, heads)
    scale = 1.0 / math.sqrt(q.shape[-1])
    by_age = jnp.swapaxes(age_scores(params, q, heads), 1, 2)  # B H T A
    q, keys, values = (jnp.swapaxes(a, 1, 2) for a in (q, keys, values))  # B H T e
    batch, blocks = tokens.shape[0], -(-length // size)
    padded = blocks * size

    def in_blocks(a: jax.Array, before: int) -> jax.Array:  # B H T ... -> B H blocks S ...
        a = jnp.pad(a, [(0, 0), (0, 0), (before, padded - length)] + [(0, 0)] * (a.ndim - 3))
        return a.reshape(batch, heads, -1, size, *a.shape[3:])

    def window(a: jax.Array) -> jax.Array:  # keys or values of blocks j - 1 and j: B H blocks 2S e
        a = in_blocks(a, size)
        return jnp.concatenate([a[:, :, :-1], a[:, :, 1:]], axis=3)

    # query u of block j (position jS + u) against key w of its window (position (j - 1)S + w):
    # age S + u - w; the age term at [u, w] is by_age[u, S + u - w], laid out by the skew
    near = jnp.einsum("bhnse,bhnwe->bhnsw", in_blocks(q, 0), window(keys))
    aged = in_blocks(by_age[..., :recent], 0)  # B H blocks S S: [u, a]
    aged = jnp.pad(aged, [(0, 0)] * 4 + [(0, size - 1)]).reshape(batch, heads, blocks, -1)
    aged = jnp.pad(aged, [(0, 0)] * 3 + [(size - 1, 1)]).reshape(batch, heads, blocks, size, 2 * size)
    near = (near + aged[..., ::-1]) * scale
    u, w = np.arange(size)[:, None], np.arange(2 * size)[None, :]
    position = (np.arange(blocks)[:, None, None] - 1) * size + w[None]
    visible = (w > u) & (w <= size + u) & (position >= 0)  # ages 0 .. S - 1 of positions >= 0
    near = jnp.where(visible, near, -jnp.inf)
    # counts[b, t, v]: positions t' <= t - recent holding token v
    seen = jnp.cumsum(jax.nn.one_hot(tokens, vocabulary, dtype=jnp.float32), axis=1)
    counts = jnp.pad(seen, [(0, 0), (recent, 0), (0, 0)])[:, None, :length]  # B 1 T V
    vocabulary_keys, vocabulary_values = (jnp.swapaxes(a, 0, 1) for a in keys_values(
        params, jnp.arange(vocabulary), heads))  # H V e
    old = (jnp.einsum("bhte,hve->bhtv", q, vocabulary_keys) + by_age[..., recent:recent + 1]) * scale
    old = jnp.where(counts > 0, old, -jnp.inf)
    near_top = near.max(-1).reshape(batch, heads, padded)[:, :, :length]
    top = jax.lax.stop_gradient(jnp.maximum(near_top, old.max(-1)))  # B H T
    near_weight = jnp.exp(near - in_blocks(top[..., None], 0))
    old_weight = counts * jnp.exp(old - top[..., None])
    mixed = jnp.einsum("bhnsw,bhnwe->bhnse", near_weight, window(values))
    mixed = mixed.reshape(batch, heads, padded, -1)[:, :, :length]
    mixed = mixed + jnp.einsum("bhtv,hve->bhte", old_weight, vocabulary_values)
    total = near_weight.sum(-1).reshape(batch, heads, padded)[:, :, :length] + old_weight.sum(-1)
    mixed = jnp.swapaxes(mixed / total[..., None], 1, 2)  # B T H e
    return finish(params, moves, tokens, x, mixed.reshape(x.shape))


def tabulate_output(params: dict, config: Config, moves: Moves, chain: WindowChain,
                    batch: int = 16384) -> np.ndarray:
    """The output at the last state of every window of ``chain``, one value per CSR entry of
    the chain (float64): one batched forward pass over the windows (in batches of ``batch``)."""
    if config.window is None or chain.window != config.window:
        raise InputError(f"window: the model's window is {config.window}, the chain's {chain.window}")
    windows = np.where(chain.windows >= 0, chain.windows, 0).astype(np.int32)
    last = (chain.length - 1).astype(np.int32)
    function = _tabulate_function(config)
    pieces = []
    jparams = to_device(params)
    for first in range(0, chain.n_states, batch):
        part = slice(first, first + batch)
        pieces.append(np.asarray(function(jparams, moves, jnp.asarray(windows[part]),
                                          jnp.asarray(last[part]))))
    padded = np.concatenate(pieces).astype(np.float64)
    degree = np.diff(chain.row_start)
    column = np.arange(chain.n_transitions) - np.repeat(chain.row_start[:-1], degree)
    return padded[np.repeat(np.arange(chain.n_states), degree), column]


_TABULATE: dict = {}


def _tabulate_function(config: Config):
    if config not in _TABULATE:
        def function(params, moves, windows, last):
            out = sequence_output(params, config, moves, windows)
            return jnp.take_along_axis(out, last[:, None, None], axis=1)[:, 0]
        _TABULATE[config] = jax.jit(function)
    return _TABULATE[config]


def to_device(params: dict) -> dict:
    return {name: jnp.asarray(value) for name, value in params.items()}


def to_host(params: dict) -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in params.items()}
