"""GTH-LU: a subtraction-free sparse LU factorisation of A = I - Q for absorbing Markov chains.

Q is the transient block of a chain (CSR over local states 0..n-1, entries >= 0) and ``absorb[i]``
the probability that state i leaves the transient set in one step. Eliminating the states in a
fixed order is Gaussian elimination without pivoting, except that every U diagonal entry is the
Grassmann-Taksar-Heyman pivot

    pivot_k = absorb_k^(k) + sum over not-yet-eliminated j != k of Q_kj^(k),

the reduced chain's probability of leaving k, instead of ``1 - Q_kk^(k)``. The diagonal of Q is
never read; all other steps add non-negative numbers. So the factors, and the solutions of
``(I - Q) x = b`` and ``(I - Q)^T x = b`` for ``b >= 0``, keep near machine relative accuracy in
every component however ill-conditioned I - Q is (hitting times of 1e14 and more).

Exactly, the pivots make the factors those of ``D - Q_offdiag`` with
``D_i = absorb_i + sum_{j != i} Q_ij``: this equals ``I - Q`` when every row of ``[Q | absorb]``
sums to 1. If the rows are only approximately stochastic, this is the system that is solved.

Two phases:

- :meth:`Pattern.build` (symbolic, once per sparsity pattern and order): the patterns of L and U
  in elimination order and the map from Q's CSR entries into them.
- :meth:`Pattern.factorise` (numeric, any number of times): new ``data``/``absorb`` on the same
  pattern; no symbolic work, one pass over the factors.

The factors are stored by rows in elimination positions: row p of L holds the multipliers
``Q_pk^(k) / pivot_k`` (k < p), row p of U the reduced ``Q_pj^(p)`` (j > p). Both triangular solves
and both transposed solves then add non-negative terms when b >= 0.

This module is a numeric kernel: numpy and Numba only, nothing from the rest of edgewalk. The
compiled kernels release the GIL, and Pattern and Factors are immutable, so several targets can
be factorised from threads at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

__all__ = ["Pattern", "Factors", "elimination_order", "estimated_bytes", "factorise"]

# --------------------------------------------------------------------------- elimination order


@njit(cache=True)
def _transpose(indptr, indices):  # pragma: no cover - compiled
    """The pattern of Q^T (rows sorted)."""
    n = indptr.shape[0] - 1
    t_ptr = np.zeros(n + 1, np.int64)
    for e in range(indices.shape[0]):
        t_ptr[indices[e] + 1] += 1
    for i in range(n):
        t_ptr[i + 1] += t_ptr[i]
    fill = t_ptr[:-1].copy()
    t_idx = np.empty(indices.shape[0], np.int32)
    for i in range(n):
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            t_idx[fill[j]] = i
            fill[j] += 1
    return t_ptr, t_idx


@njit(cache=True)
def _bfs(indptr, indices, t_ptr, t_idx, first):  # pragma: no cover - compiled
    """Breadth-first order from ``first`` over the pattern: the successors of a state in stored
    order (as scipy.sparse.csgraph.breadth_first_order visits them), then, if ``t_ptr`` is not
    empty, its predecessors. Also the reached mask."""
    n = indptr.shape[0] - 1
    undirected = t_ptr.shape[0] == n + 1
    seen = np.zeros(n, np.bool_)
    queue = np.empty(n, np.int64)
    queue[0] = first
    seen[first] = True
    head, tail = 0, 1
    while head < tail:
        i = queue[head]
        head += 1
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            if not seen[j]:
                seen[j] = True
                queue[tail] = j
                tail += 1
        if undirected:
            for e in range(t_ptr[i], t_ptr[i + 1]):
                j = t_idx[e]
                if not seen[j]:
                    seen[j] = True
                    queue[tail] = j
                    tail += 1
    return queue[:tail].copy(), seen


def elimination_order(indptr: np.ndarray, indices: np.ndarray, first: int | None,
                      undirected: bool = True) -> np.ndarray:
    """A fill-reducing elimination order for :meth:`Pattern.build`: the states not reached from
    ``first`` in increasing index, then the reached ones in reverse breadth-first order (farthest
    from ``first`` first, ``first`` last). Explicit zeros count as moves (the order is a property
    of the pattern). ``first=None`` (or < 0) gives the natural order 0..n-1. Deterministic; an
    int64 permutation of 0..n-1.

    ``undirected=False`` is the rule of ``edgewalk.exact._state_reduction``: the search follows
    moves i -> j only; for a pattern without explicit zeros and with sorted column indices it is
    that very order. The default ``undirected=True`` follows moves both ways (the distance from
    ``first`` in the pattern of Q + Q^T). On the path-star both give the same fill when every
    move is possible, but where policies remove moves (SFT, RLVR) the directed distance sends the
    backward states near the fork to the far end of the order and the fill grows with K^2: at
    W = K = 100, L = 10, SFT, 1.4e8 factor entries directed against 3.5e6 undirected."""
    indptr, indices = _check_pattern(indptr, indices)
    n = len(indptr) - 1
    if first is None or first < 0:
        return np.arange(n, dtype=np.int64)
    if first >= n:
        raise ValueError(f"first: state {first} is out of range for {n} states")
    if undirected:
        t_ptr, t_idx = _transpose(indptr, indices)
    else:
        t_ptr, t_idx = np.zeros(0, np.int64), np.zeros(0, np.int32)
    reached_order, seen = _bfs(indptr, indices, t_ptr, t_idx, np.int64(first))
    return np.concatenate([np.flatnonzero(~seen).astype(np.int64), reached_order[::-1]])


# --------------------------------------------------------------------------- symbolic phase


@njit(cache=True)
def _grow(buffer, needed):  # pragma: no cover - compiled
    if needed <= buffer.shape[0]:
        return buffer
    bigger = np.empty(max(needed, 2 * buffer.shape[0]), buffer.dtype)
    bigger[: buffer.shape[0]] = buffer
    return bigger


@njit(cache=True, nogil=True)
def _permuted_entries(indptr, indices, order, position):  # pragma: no cover - compiled
    """The off-diagonal entries of Q by elimination position: row p holds the positions of
    state order[p]'s successors (sorted) and the index into Q's data of each."""
    n = indptr.shape[0] - 1
    a_ptr = np.zeros(n + 1, np.int64)
    for p in range(n):
        i = order[p]
        c = 0
        for e in range(indptr[i], indptr[i + 1]):
            if indices[e] != i:
                c += 1
        a_ptr[p + 1] = a_ptr[p] + c
    a_pos = np.empty(a_ptr[n], np.int32)
    a_src = np.empty(a_ptr[n], np.int64)
    for p in range(n):
        i = order[p]
        c = a_ptr[p]
        for e in range(indptr[i], indptr[i + 1]):
            if indices[e] != i:
                a_pos[c] = position[indices[e]]
                a_src[c] = e
                c += 1
        lo, hi = a_ptr[p], a_ptr[p + 1]
        if hi - lo > 1:
            perm = np.argsort(a_pos[lo:hi], kind="mergesort")
            a_pos[lo:hi] = a_pos[lo:hi][perm]
            a_src[lo:hi] = a_src[lo:hi][perm]
    return a_ptr, a_pos, a_src


@njit(cache=True, nogil=True)
def _symbolic(indptr, indices, order, position, count_only):  # pragma: no cover - compiled
    """Row patterns of L (positions < p) and U (positions > p) of the permuted matrix, row by row
    in elimination position p: the closure of row p of A under 'k < p brings in U row k'. With
    ``count_only`` the L indices are counted, not stored (only U's pattern is held)."""
    n = indptr.shape[0] - 1
    l_ptr = np.zeros(n + 1, np.int64)
    u_ptr = np.zeros(n + 1, np.int64)
    l_idx = np.empty(max(16, indices.shape[0]) if not count_only else 1, np.int32)
    u_idx = np.empty(max(16, indices.shape[0]), np.int32)
    mark = np.full(n, -1, np.int64)
    stack = np.empty(n, np.int64)
    row_l = np.empty(n, np.int32)
    row_u = np.empty(n, np.int32)
    flops = np.int64(0)
    max_row = 0
    for p in range(n):
        mark[p] = p  # the diagonal is never part of the pattern
        nl = 0
        nu = 0
        top = 0
        i = order[p]
        for e in range(indptr[i], indptr[i + 1]):
            j = position[indices[e]]
            if mark[j] != p:
                mark[j] = p
                if j < p:
                    row_l[nl] = j
                    nl += 1
                    stack[top] = j
                    top += 1
                else:
                    row_u[nu] = j
                    nu += 1
        while top > 0:
            top -= 1
            k = stack[top]
            flops += u_ptr[k + 1] - u_ptr[k]
            for f in range(u_ptr[k], u_ptr[k + 1]):
                j = u_idx[f]
                if mark[j] != p:
                    mark[j] = p
                    if j < p:
                        row_l[nl] = j
                        nl += 1
                        stack[top] = j
                        top += 1
                    else:
                        row_u[nu] = j
                        nu += 1
        l_ptr[p + 1] = l_ptr[p] + nl
        u_ptr[p + 1] = u_ptr[p] + nu
        if nl + nu > max_row:
            max_row = nl + nu
        if not count_only:
            l_idx = _grow(l_idx, l_ptr[p + 1])
            l_idx[l_ptr[p]: l_ptr[p + 1]] = np.sort(row_l[:nl])
        u_idx = _grow(u_idx, u_ptr[p + 1])
        u_idx[u_ptr[p]: u_ptr[p + 1]] = np.sort(row_u[:nu])
    if not count_only:
        l_idx = l_idx[: l_ptr[n]].copy()
        u_idx = u_idx[: u_ptr[n]].copy()
    return l_ptr, l_idx, u_ptr, u_idx, flops, max_row


# --------------------------------------------------------------------------- numeric phase


@njit(cache=True, nogil=True)
def _numeric(order, a_ptr, a_pos, a_src, l_ptr, l_idx, u_ptr, u_idx, data, absorb,
             l_val, u_val, pivot, reduced_absorb):  # pragma: no cover - compiled
    """Up-looking (row by row) GTH elimination into preallocated arrays. Returns -1, or the
    first elimination position whose pivot is not positive and finite."""
    n = order.shape[0]
    w = np.zeros(n)  # row p of the partially reduced matrix, scattered by position
    for p in range(n):
        for e in range(l_ptr[p], l_ptr[p + 1]):
            w[l_idx[e]] = 0.0
        for e in range(u_ptr[p], u_ptr[p + 1]):
            w[u_idx[e]] = 0.0
        for e in range(a_ptr[p], a_ptr[p + 1]):
            w[a_pos[e]] += data[a_src[e]]
        a = absorb[order[p]]
        for e in range(l_ptr[p], l_ptr[p + 1]):
            k = l_idx[e]
            m = w[k] / pivot[k]
            l_val[e] = m
            if m != 0.0:
                a += m * reduced_absorb[k]
                for f in range(u_ptr[k], u_ptr[k + 1]):
                    w[u_idx[f]] += m * u_val[f]  # u_idx[f] == p lands on w[p], never read
        s = a
        for e in range(u_ptr[p], u_ptr[p + 1]):
            v = w[u_idx[e]]
            u_val[e] = v
            s += v
        reduced_absorb[p] = a
        pivot[p] = s
        if not (s > 0.0 and s < np.inf):
            return p
    return -1


@njit(cache=True, nogil=True)
def _solve(order, l_ptr, l_idx, u_ptr, u_idx, l_val, u_val, pivot, b):  # pragma: no cover
    """(I - Q) x = b: L y = b (y_p = b_p + sum l_pk y_k), then U x = y
    (x_p = (y_p + sum u_pj x_j) / pivot_p)."""
    n = order.shape[0]
    y = np.empty(n)
    for p in range(n):
        acc = b[order[p]]
        for e in range(l_ptr[p], l_ptr[p + 1]):
            acc += l_val[e] * y[l_idx[e]]
        y[p] = acc
    for p in range(n - 1, -1, -1):
        acc = y[p]
        for e in range(u_ptr[p], u_ptr[p + 1]):
            acc += u_val[e] * y[u_idx[e]]
        y[p] = acc / pivot[p]
    x = np.empty(n)
    for p in range(n):
        x[order[p]] = y[p]
    return x


@njit(cache=True, nogil=True)
def _solve_transposed(order, l_ptr, l_idx, u_ptr, u_idx, l_val, u_val, pivot, b):  # pragma: no cover
    """(I - Q)^T x = b = U^T L^T x: U^T z = b by columns of U^T (rows of U, scattered forward),
    then L^T x = z (rows of L, scattered backward)."""
    n = order.shape[0]
    y = np.empty(n)
    for p in range(n):
        y[p] = b[order[p]]
    for p in range(n):
        z = y[p] / pivot[p]
        y[p] = z
        if z != 0.0:
            for e in range(u_ptr[p], u_ptr[p + 1]):
                y[u_idx[e]] += u_val[e] * z
    for p in range(n - 1, -1, -1):
        xp = y[p]
        if xp != 0.0:
            for e in range(l_ptr[p], l_ptr[p + 1]):
                y[l_idx[e]] += l_val[e] * xp
    x = np.empty(n)
    for p in range(n):
        x[order[p]] = y[p]
    return x


# --------------------------------------------------------------------------- Python API


def _check_pattern(indptr, indices) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    if indptr.ndim != 1 or len(indptr) < 1 or indptr[0] != 0 or indptr[-1] != len(indices):
        raise ValueError("indptr: expected CSR row pointers from 0 to len(indices)")
    if np.any(np.diff(indptr) < 0):
        raise ValueError("indptr: row pointers must not decrease")
    n = len(indptr) - 1
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"indices: column indices must lie in 0..{n - 1}")
    return indptr, indices


def _check_order(order, n: int) -> np.ndarray:
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(f"order: expected a permutation of 0..{n - 1}")
    return order


@dataclass(frozen=True, eq=False)
class Pattern:
    """The symbolic GTH-LU of one sparsity pattern in one elimination order. Build once with
    :meth:`build`; :meth:`factorise` then takes any ``data`` (aligned with the ``indices`` the
    pattern was built from) and ``absorb`` without redoing symbolic work."""

    n: int
    nnz_q: int  # stored entries of Q (diagonal and explicit zeros included)
    order: np.ndarray = field(repr=False)  # int64: order[p] = state eliminated at step p
    position: np.ndarray = field(repr=False)  # int64: inverse of order
    a_ptr: np.ndarray = field(repr=False)  # permuted off-diagonal entries of Q, by position
    a_pos: np.ndarray = field(repr=False)
    a_src: np.ndarray = field(repr=False)  # index into data of each permuted entry
    l_ptr: np.ndarray = field(repr=False)
    l_idx: np.ndarray = field(repr=False)  # int32 positions < p, sorted
    u_ptr: np.ndarray = field(repr=False)
    u_idx: np.ndarray = field(repr=False)  # int32 positions > p, sorted
    flops: int = 0  # multiply-adds of one numeric factorisation (pattern-wise)

    @classmethod
    def build(cls, indptr: np.ndarray, indices: np.ndarray, order: np.ndarray | None = None
              ) -> "Pattern":
        """Symbolic factorisation of the CSR pattern (``indptr``, ``indices``) in ``order``
        (default: natural order; see :func:`elimination_order`). Diagonal entries are dropped
        from the pattern; duplicate entries are summed by :meth:`factorise`."""
        indptr, indices = _check_pattern(indptr, indices)
        n = len(indptr) - 1
        order = _check_order(np.arange(n) if order is None else order, n)
        position = np.empty(n, np.int64)
        position[order] = np.arange(n)
        a_ptr, a_pos, a_src = _permuted_entries(indptr, indices, order, position)
        l_ptr, l_idx, u_ptr, u_idx, flops, _ = _symbolic(indptr, indices, order, position, False)
        return cls(n, len(indices), order, position, a_ptr, a_pos, a_src, l_ptr, l_idx,
                   u_ptr, u_idx, int(flops))

    @property
    def nnz_l(self) -> int:
        return int(self.l_ptr[-1])

    @property
    def nnz_u(self) -> int:
        return int(self.u_ptr[-1])

    @property
    def nnz_factors(self) -> int:
        """Stored entries of L + U (off-diagonal; the n pivots are extra)."""
        return self.nnz_l + self.nnz_u

    def pattern_bytes(self) -> int:
        """Bytes the symbolic structure holds (shared by every factorisation)."""
        return sum(a.nbytes for a in (self.order, self.position, self.a_ptr, self.a_pos,
                                      self.a_src, self.l_ptr, self.l_idx, self.u_ptr, self.u_idx))

    def factors_bytes(self) -> int:
        """Bytes one :class:`Factors` adds on top of the pattern (values, pivots, reduced
        absorption), plus the length-n work vector the factorisation uses while it runs."""
        return 8 * (self.nnz_factors + 3 * self.n)

    def memory_bytes(self) -> int:
        """What a factorisation on this pattern holds: pattern plus one set of factors."""
        return self.pattern_bytes() + self.factors_bytes()

    def factorise(self, data: np.ndarray, absorb: np.ndarray, check: bool = True) -> "Factors":
        """Numeric GTH-LU for Q's ``data`` (aligned with the pattern's ``indices``, >= 0; the
        diagonal entries are never read) and ``absorb`` (length n, >= 0). Raises ValueError if a
        state's pivot is 0 (it cannot leave the states not yet eliminated: it cannot be
        absorbed), naming that state. ``check=False`` skips the O(nnz) input validation."""
        data = np.ascontiguousarray(data, dtype=np.float64)
        absorb = np.ascontiguousarray(absorb, dtype=np.float64)
        if data.shape != (self.nnz_q,):
            raise ValueError(f"data: expected {self.nnz_q} values, got shape {data.shape}")
        if absorb.shape != (self.n,):
            raise ValueError(f"absorb: expected {self.n} values, got shape {absorb.shape}")
        if check:
            if not (np.all(data >= 0) and np.all(np.isfinite(data))):
                raise ValueError("data: every entry of Q must be finite and >= 0")
            if not (np.all(absorb >= 0) and np.all(np.isfinite(absorb))):
                raise ValueError("absorb: every absorption probability must be finite and >= 0")
        l_val = np.empty(self.nnz_l)
        u_val = np.empty(self.nnz_u)
        pivot = np.empty(self.n)
        reduced = np.empty(self.n)
        bad = _numeric(self.order, self.a_ptr, self.a_pos, self.a_src, self.l_ptr, self.l_idx,
                       self.u_ptr, self.u_idx, data, absorb, l_val, u_val, pivot, reduced)
        if bad >= 0:
            state = int(self.order[bad])
            raise ValueError(
                f"GTH-LU: zero pivot at state {state} (elimination step {bad}, pivot "
                f"{float(pivot[bad])!r}): it cannot leave the states eliminated after it, so it is "
                "never absorbed; remove the states that cannot reach absorption first")
        return Factors(self, l_val, u_val, pivot[self.position], reduced[self.position])


@dataclass(frozen=True, eq=False)
class Factors:
    """One numeric GTH-LU of I - Q. ``pivots[i]`` and ``reduced_absorb[i]`` are indexed by state
    (the reduced chain's probability of leaving i, and of being absorbed from i, when i is
    eliminated)."""

    pattern: Pattern = field(repr=False)
    l_val: np.ndarray = field(repr=False)
    u_val: np.ndarray = field(repr=False)
    pivots: np.ndarray = field(repr=False)
    reduced_absorb: np.ndarray = field(repr=False)
    _pivot_by_position: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pivot_by_position",
                           np.ascontiguousarray(self.pivots[self.pattern.order]))

    def _rhs(self, b) -> np.ndarray:
        b = np.asarray(b, dtype=np.float64)
        if b.shape[:1] != (self.pattern.n,) or b.ndim > 2:
            raise ValueError(f"b: expected shape ({self.pattern.n},) or ({self.pattern.n}, m), "
                             f"got {b.shape}")
        return b

    def _run(self, kernel, b) -> np.ndarray:
        b = self._rhs(b)
        p = self.pattern
        args = (p.order, p.l_ptr, p.l_idx, p.u_ptr, p.u_idx, self.l_val, self.u_val,
                self._pivot_by_position)
        if b.ndim == 1:
            return kernel(*args, np.ascontiguousarray(b))
        return np.stack([kernel(*args, np.ascontiguousarray(b[:, c])) for c in range(b.shape[1])],
                        axis=1)

    def solve(self, b) -> np.ndarray:
        """x with (I - Q) x = b (b of shape (n,) or (n, m)). Subtraction-free for b >= 0:
        solve(ones) are the expected steps to absorption from every state."""
        return self._run(_solve, b)

    def solve_transposed(self, b) -> np.ndarray:
        """x with (I - Q)^T x = b. Subtraction-free for b >= 0: solve_transposed(e_s) are the
        expected visits to every state before absorption, starting from s."""
        return self._run(_solve_transposed, b)


def factorise(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, absorb: np.ndarray,
              first: int | None = None) -> Factors:
    """One-shot: Pattern.build(indptr, indices, elimination_order(indptr, indices, first))
    followed by factorise(data, absorb)."""
    order = elimination_order(indptr, indices, first)
    return Pattern.build(indptr, indices, order).factorise(data, absorb)


def estimated_bytes(indptr: np.ndarray, indices: np.ndarray, order: np.ndarray) -> int:
    """Exactly :meth:`Pattern.memory_bytes` of Pattern.build(indptr, indices, order), counted
    before anything of that size is allocated: the count holds only U's pattern (4 bytes per
    entry, up to twice that while its buffer grows) and O(n), a quarter to a third of what the
    factorisation holds, and takes about 0.6-0.9 times a build.
    The figure is ``12 nnz(L+U) + 12 nnz_offdiag(Q) + 64 n + 24`` bytes."""
    indptr, indices = _check_pattern(indptr, indices)
    n = len(indptr) - 1
    order = _check_order(order, n)
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    l_ptr, _, u_ptr, _, _, _ = _symbolic(indptr, indices, order, position, True)
    nnz = int(l_ptr[-1] + u_ptr[-1])
    return 12 * nnz + 12 * int(_count_offdiagonal(indptr, indices)) + 64 * n + 24


@njit(cache=True)
def _count_offdiagonal(indptr, indices):  # pragma: no cover - compiled
    c = 0
    for i in range(indptr.shape[0] - 1):
        for e in range(indptr[i], indptr[i + 1]):
            if indices[e] != i:
                c += 1
    return c
