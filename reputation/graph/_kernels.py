"""Compiled inner loops of the template stage (numba): MinHash, LSH band keys and pair verification.

Each function does per shingle or per pair work that numpy can only express as many full passes over
large temporaries (one multiply, add and ``reduceat`` per hash function; a 64-byte gather and compare
per pair). Compiled, each is one pass that stays in registers and runs on both cores (``prange``).
They compute exactly what the numpy reference functions of :mod:`reputation.graph.templates` compute
(:func:`~reputation.graph.templates.minhash_signatures`, :func:`~reputation.graph.templates.band_keys`,
:func:`~reputation.graph.templates.estimated_jaccard`); the tests check that bit for bit.

Compiled code is cached on disk (``cache=True``), so only the first run on a machine pays the few
seconds of compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_FNV = np.uint64(0x100000001B3)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


@njit(cache=True, parallel=True, nogil=True)
def minhash_band_keys(offsets: np.ndarray, hashes: np.ndarray, mul: np.ndarray, add: np.ndarray,
                      bands: int, rows: int, keys: np.ndarray, low: np.ndarray) -> None:  # pragma: no cover
    """MinHash each text, then write its LSH band keys and the low byte of each signature value.

    Text ``t`` owns ``hashes[offsets[t]:offsets[t + 1]]`` (non-empty). Signature value ``i`` is
    ``min over shingles x of ((mul[i] * x + add[i]) mod 2^64) >> 32``; band key ``b`` mixes the
    ``rows`` values of band ``b`` exactly as :func:`reputation.graph.templates.band_keys` does.
    Results go to ``keys[b, t]`` (``uint64``) and ``low[t, i]`` (``uint8``).
    """
    n = len(offsets) - 1
    num_perm = len(mul)
    for t in prange(n):
        sig = np.full(num_perm, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        for j in range(offsets[t], offsets[t + 1]):
            x = hashes[j]
            for i in range(num_perm):
                v = x * mul[i] + add[i]
                if v < sig[i]:
                    sig[i] = v
        for i in range(num_perm):
            v = sig[i] >> np.uint64(32)
            sig[i] = v
            low[t, i] = np.uint8(v & np.uint64(0xFF))
        for b in range(bands):
            key = np.uint64(0)
            for r in range(rows):
                key = (key * _FNV) ^ sig[b * rows + r]
            key ^= key >> np.uint64(31)
            key = key * _MIX
            key ^= key >> np.uint64(29)
            keys[b, t] = key


@njit(cache=True, parallel=True, nogil=True)
def equal_fraction(low: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Share of equal columns of ``low[left[k]]`` and ``low[right[k]]`` for every pair ``k`` (float64)."""
    m = len(left)
    width = low.shape[1]
    out = np.empty(m, dtype=np.float64)
    for k in prange(m):
        a = left[k]
        b = right[k]
        same = 0
        for i in range(width):
            if low[a, i] == low[b, i]:
                same += 1
        out[k] = same / width
    return out


@njit(cache=True, nogil=True)
def distinct_row_roots(roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Pairs ``(root, t)`` for each distinct value ``root != t`` of row ``t`` of ``roots``.

    ``roots[t, b]`` is text ``t``'s bucket root in band ``b`` (never larger than ``t``). Each row is
    sorted in place (rows are short: one value per band), so pairs come out ordered by ``t``, then
    ``root``.
    """
    n, width = roots.shape
    count = 0
    for t in range(n):
        row = roots[t]
        for i in range(1, width):  # insertion sort of the row
            v = row[i]
            j = i - 1
            while j >= 0 and row[j] > v:
                row[j + 1] = row[j]
                j -= 1
            row[j + 1] = v
        for i in range(width):
            if row[i] != t and (i == 0 or row[i] != row[i - 1]):
                count += 1
    left = np.empty(count, dtype=roots.dtype)
    right = np.empty(count, dtype=roots.dtype)
    k = 0
    for t in range(n):
        row = roots[t]
        for i in range(width):
            if row[i] != t and (i == 0 or row[i] != row[i - 1]):
                left[k] = row[i]
                right[k] = t
                k += 1
    return left, right
