"""Compiled inner loops of graph propagation (numba): the per-iteration vector update of the solve.

The mat-vecs of the propagation stay with scipy's CSR product: measured on this 2-core machine, a numba
CSR mat-vec is no faster on one core, and a parallel one (``prange``) loses whenever the other core is
busy (every sweep waits for the slower thread). What numba replaces is the vector work around each
mat-vec — four numpy passes and temporaries per iteration, as costly as the mat-vec itself on graphs
with ~10 entries per row — by one serial pass (:func:`chebyshev_update`). Serial on purpose: each call
is short, and a parallel region on a shared 2-core machine costs more in stragglers than it saves.
(The echo weights ``(2W ∘ 2Wᵀ)·1`` of :func:`reputation.scoring.stage.neighbour_push` stay in scipy:
a compiled binary-search version measured 2-3x slower.)

Compiled code is cached on disk (``cache=True``): only the first run on a machine pays compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def chebyshev_update(y: np.ndarray, q: np.ndarray, p: np.ndarray, prev: np.ndarray,
                     omega: float) -> float:  # pragma: no cover
    """One Chebyshev step around the mat-vec ``y = 2W·p``; returns the residual ``max |q + 2W·p − p|``.

    In place: ``y += q`` (the Jacobi update of the iterate ``p``) and ``prev = prev + omega·(y − prev)``
    (the next iterate).
    """
    worst = 0.0
    for u in range(len(y)):
        yu = y[u] + q[u]
        y[u] = yu
        d = abs(yu - p[u])
        if d > worst or d != d:  # NaN propagates
            worst = d
        prev[u] += omega * (yu - prev[u])
    return worst


@njit(cache=True, nogil=True)
def max_abs_row_sum(indptr: np.ndarray, data: np.ndarray) -> float:  # pragma: no cover
    """``max_u Σ_k |data[k]|`` over the rows of a CSR matrix (its ∞-norm)."""
    best = 0.0
    for u in range(len(indptr) - 1):
        acc = 0.0
        for k in range(indptr[u], indptr[u + 1]):
            acc += abs(data[k])
        best = max(best, acc)
    return best


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
