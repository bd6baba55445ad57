"""Compiled inner loops of graph propagation (numba): the whole unclipped solve, one pass per iteration.

The solve (:func:`chebyshev_solve`) runs its loop compiled, and each iteration is one pass over the
matrix that does the CSR mat-vec and the Chebyshev vector update together (:func:`chebyshev_sweep`).
Measured on the stage's graphs (1M-message world, 80k–200k entries, 5–14 per row) against a scipy CSR
mat-vec plus a separate compiled update per iteration, it is 1.4–2.5x faster: no per-iteration Python
calls or allocation of the product, unsigned indices (numba's negative-index wraparound cost a compare and
two conditional moves per entry: with signed indices the same loop was ~2x *slower* than scipy), and two
accumulators per row. Serial on purpose: each sweep is short, and a parallel region (``prange``) on a
shared 2-core machine loses whenever the other core is busy (every sweep waits for the slower thread).
(The echo weights ``(2W ∘ 2Wᵀ)·1`` of :func:`reputation.scoring.stage.neighbour_push` stay in scipy:
a compiled binary-search version measured 2-3x slower.)

Compiled code is cached on disk (``cache=True``): only the first run on a machine pays compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._prefetch import prefetch as _prefetch


@njit(cache=True, nogil=True)
def chebyshev_sweep(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, scale: float, q: np.ndarray,
                    p: np.ndarray, nxt: np.ndarray, y: np.ndarray, omega: float,
                    jacobi: bool, ahead: int = 0) -> float:  # pragma: no cover
    """One mat-vec and the iteration's vector update in a single pass; returns ``max |y − p|``.

    Row by row: ``y_u = q_u + scale·(A·p)_u`` (the Jacobi update of the iterate ``p``; ``A`` is the CSR
    matrix ``(data, indices, indptr)``), and the next iterate ``nxt_u ← nxt_u + omega·(y_u − nxt_u)``
    (Chebyshev; ``nxt`` holds the previous iterate on entry), or ``nxt_u = y_u`` when ``jacobi``. ``p``
    must not share memory with ``nxt`` or ``y`` (its entries are gathered while those are written).

    ``indptr`` and ``indices`` must be *unsigned* views (``uint32``/``uint64``) of the CSR index arrays:
    numba then indexes without its negative-index wraparound, which otherwise costs a compare and two
    conditional moves per stored entry (the mat-vec measured ~2x slower than scipy's with signed indices).
    Each row is summed with two interleaved accumulators (even and odd entries, added at the end), which
    halves the chain of dependent floating-point additions that bounds a row's throughput; it differs from
    the sequential sum by rounding only (~1e-16 relative) and is the same on every run.

    ``ahead > 0`` prefetches the gather ``p[indices[k + ahead]]`` (once per pair of entries) while entry
    ``k`` is summed. When ``p`` outgrows the core's L2 cache the sweep waits on those gathers, not on
    memory bandwidth (storing the matrix as float32, or half of it by symmetry, did not help there;
    reordering the accounts did, but costs more to compute than it saves): on the 10M-message world's
    co-behaviour graph (147k rows, 31 entries per row, a 1.18 MB vector) ``ahead = 64`` made the solve
    12–19% faster on an AMD EPYC with 1 MiB of L2 per core (its conversation graph, 5 entries per row:
    ~3% slower). With ``p`` in cache the prefetches are pure overhead (~30% slower on the 1M world's
    graphs; on an Intel Xeon with 2 MiB of L2, where the 10M vector fits, 6–15% slower): pass 0.
    """
    one, two = np.uint64(1), np.uint64(2)
    dist = np.uint64(ahead)
    last = np.uint64(len(indices) - 1) if len(indices) else np.uint64(0)
    worst = 0.0
    for u in range(len(q)):
        k, end = np.uint64(indptr[u]), np.uint64(indptr[u + 1])
        a0 = 0.0
        a1 = 0.0
        if ahead > 0:
            while k + one < end:
                _prefetch(p, np.uint64(indices[min(k + dist, last)]))
                a0 += data[k] * p[indices[k]]
                a1 += data[k + one] * p[indices[k + one]]
                k += two
        else:
            while k + one < end:
                a0 += data[k] * p[indices[k]]
                a1 += data[k + one] * p[indices[k + one]]
                k += two
        if k < end:
            a0 += data[k] * p[indices[k]]
        yu = q[u] + scale * (a0 + a1)
        y[u] = yu
        d = abs(yu - p[u])
        if d > worst or d != d:  # NaN propagates
            worst = d
        if jacobi:
            nxt[u] = yu
        else:
            nxt[u] += omega * (yu - nxt[u])
    return worst


@njit(cache=True, nogil=True)
def first_sweep(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, scale: float, q: np.ndarray,
                nxt: np.ndarray, y: np.ndarray) -> tuple[float, float]:  # pragma: no cover
    """:func:`chebyshev_sweep` from the iterate ``p = q`` with ``omega = 1``, and the ∞-norm of ``scale·A``.

    Returns ``(max |y − q|, scale · max_u Σ_k |A_uk|)``: the row sums of ``|A|`` are summed as the row is
    read for the mat-vec, which saves a separate pass over ``data`` (3–4% of a solve on the 1M world's
    graphs). Same index requirements as :func:`chebyshev_sweep`; ``nxt`` holds ``q`` on entry.
    """
    one, two = np.uint64(1), np.uint64(2)
    worst = 0.0
    norm = 0.0
    for u in range(len(q)):
        k, end = np.uint64(indptr[u]), np.uint64(indptr[u + 1])
        a0 = 0.0
        a1 = 0.0
        s0 = 0.0
        s1 = 0.0
        while k + one < end:
            a0 += data[k] * q[indices[k]]
            a1 += data[k + one] * q[indices[k + one]]
            s0 += abs(data[k])
            s1 += abs(data[k + one])
            k += two
        if k < end:
            a0 += data[k] * q[indices[k]]
            s0 += abs(data[k])
        s = s0 + s1
        if s > norm or s != s:
            norm = s
        yu = q[u] + scale * (a0 + a1)
        y[u] = yu
        d = abs(yu - q[u])
        if d > worst or d != d:  # NaN propagates
            worst = d
        nxt[u] += yu - nxt[u]
    return worst, scale * norm


#: :func:`chebyshev_solve` outcomes.
CONVERGED, NOT_CONVERGED, NOT_CONTRACTING = 0, 1, 2


@njit(cache=True, nogil=True)
def chebyshev_solve(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, scale: float, q: np.ndarray,
                    max_iter: int, tol: float,
                    ahead: int = 0) -> tuple[np.ndarray, int, float, float, int]:  # pragma: no cover
    """Solve ``p = q + scale·A·p`` by Chebyshev semi-iteration, with a Jacobi fallback; the whole loop compiled.

    The iteration of :func:`reputation.scoring.propagation._chebyshev` (see there for the recurrence, the
    mat-vec budget and the stopping rule): the first step is :func:`first_sweep`, which also yields
    ``rho``, the largest absolute row sum of ``scale·A`` (a bound on its spectral radius); each further
    step is one :func:`chebyshev_sweep` (prefetching ``ahead`` entries ahead). Returns ``(y, iterations,
    delta, rho, status)``: ``y`` the Jacobi update of the last iterate, ``iterations`` the mat-vecs run,
    ``delta`` the last ``max |y − p|`` and ``status`` one of ``CONVERGED``, ``NOT_CONVERGED``
    (``max_iter`` reached, or a non-finite change) or ``NOT_CONTRACTING`` (``rho ≥ 1``: stopped after
    the first mat-vec, the rate bound does not hold).
    """
    nxt = q.copy()
    y = np.empty_like(q)
    if max_iter < 1:
        return y, 0, np.inf, np.nan, NOT_CONVERGED
    delta, rho = first_sweep(indptr, indices, data, scale, q, nxt, y)
    if not rho < 1.0:
        return y, 1, delta, rho, NOT_CONTRACTING
    if delta < tol:
        return y, 1, delta, rho, CONVERGED
    if not np.isfinite(delta):
        return y, 1, delta, rho, NOT_CONVERGED
    rate = rho / (1.0 + np.sqrt(1.0 - rho * rho))
    # twice the expected mat-vecs (real spectrum), plus slack; then plain Jacobi
    budget = int(2.0 * np.log(tol / delta) / np.log(rate)) + 10 if rate > 0.0 else 10
    p, nxt = nxt, q.copy()
    omega = 1.0 / (1.0 - 0.5 * rho * rho)
    for it in range(2, max_iter + 1):
        if it == budget + 1:  # not converging at the real-spectrum rate: Jacobi, restarting from q (the
            p[:] = q          # Chebyshev iterate may have grown)
        jacobi = it > budget
        delta = chebyshev_sweep(indptr, indices, data, scale, q, p, nxt, y, omega, jacobi, ahead)
        p, nxt = nxt, p
        if delta < tol:  # the iterate has converged: return its Jacobi update, as the Jacobi iteration does
            return y, it, delta, rho, CONVERGED
        if not np.isfinite(delta):
            return y, it, delta, rho, NOT_CONVERGED
        omega = 1.0 / (1.0 - 0.25 * rho * rho * omega)
    return y, max_iter, delta, rho, NOT_CONVERGED


@njit(cache=True, nogil=True)
def logistic_terms(A: np.ndarray, y: np.ndarray, w: np.ndarray, theta: np.ndarray,
                   grad: np.ndarray, H: np.ndarray) -> None:  # pragma: no cover
    """Unnormalised gradient and Hessian of the weighted logistic loss at ``theta``, in one pass over ``A``.

    ``grad = Aᵀ·(w ∘ (p − y))`` and ``H = Aᵀ·diag(w ∘ p ∘ (1 − p))·A`` with ``p = expit(A·theta)``
    (written into ``grad`` and ``H``). numpy needs four passes and an (n, d) temporary for the same;
    serial, it does not compete with other threads for the machine's two cores.
    """
    n, d = A.shape
    grad[:] = 0.0
    H[:, :] = 0.0
    for i in range(n):
        row = A[i]
        s = 0.0
        for j in range(d):
            s += row[j] * theta[j]
        if s >= 0.0:
            p = 1.0 / (1.0 + np.exp(-s))
        else:
            e = np.exp(s)
            p = e / (1.0 + e)
        r = w[i] * (p - y[i])
        h = w[i] * p * (1.0 - p)
        for j in range(d):
            grad[j] += r * row[j]
            hj = h * row[j]
            out = H[j]
            for k in range(d):  # the full square (not a triangle): a fixed-length loop that vectorises
                out[k] += hj * row[k]


@njit(cache=True, nogil=True)
def logistic_loss(A: np.ndarray, y: np.ndarray, w: np.ndarray, theta: np.ndarray) -> float:  # pragma: no cover
    """Unnormalised weighted logistic loss ``Σ w·(log(1 + e^s) − y·s)`` with ``s = A·theta``, one pass."""
    n, d = A.shape
    total = 0.0
    for i in range(n):
        s = 0.0
        for j in range(d):
            s += A[i, j] * theta[j]
        total += w[i] * (max(s, 0.0) + np.log1p(np.exp(-abs(s))) - y[i] * s)
    return total
