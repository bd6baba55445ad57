"""Compiled inner loops of the template stage (numba): text normalisation, MinHash, LSH buckets and pair verification.

Each function does per shingle or per pair work that numpy can only express as many full passes over
large temporaries (one multiply, add and ``reduceat`` per hash function; a 64-byte gather and compare
per pair). Compiled, each is one pass that stays in registers and runs on both cores (``prange``).
They compute exactly what the numpy reference functions of :mod:`reputation.graph.templates` compute
(:func:`~reputation.graph.templates.minhash_signatures`, :func:`~reputation.graph.templates.band_keys`,
:func:`~reputation.graph.templates.estimated_jaccard`); the tests check that bit for bit.

Compiled code is cached on disk (``cache=True``), so only the first run on a machine pays compilation
(``cold start`` in the perf suite's results: about 19 s for all of the package's kernels on a 2-core
Xeon). The small helpers are plain ``@njit`` functions, not ``inline="always"``: the kernels run as fast
without numba's inlining (LLVM still sees the helpers' code; a 10M-message A/B: template stage 29.5 s
before, 29.1 s after, every output identical), while numba's own IR inlining typed each helper again
inside every caller and loop body, which made compiling :func:`text_hashes` and :func:`minhash_texts`
take 10.0 s instead of 4.6 s.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._prefetch import prefetch

_FNV = np.uint64(0x100000001B3)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


@njit(cache=True)
def _take_min(sig: np.ndarray, x: np.uint64, mul: np.ndarray, add: np.ndarray) -> None:  # pragma: no cover
    """Fold shingle hash ``x`` into the running minima: ``sig[i] = min(sig[i], (mul[i]·x + add[i]) mod 2^64)``."""
    for i in range(len(mul)):
        v = x * mul[i] + add[i]
        if v < sig[i]:
            sig[i] = v


@njit(cache=True)
def _finish_signature(sig: np.ndarray, bands: int, rows: int, keys: np.ndarray, low: np.ndarray,
                      row: int) -> None:  # pragma: no cover
    """Shift the minima to their top 32 bits, store their low bytes in ``low[row]`` and the band keys
    (mixed exactly as ``reputation.graph.templates.band_keys``) in ``keys[:, row]``."""
    for i in range(len(sig)):
        v = sig[i] >> np.uint64(32)
        sig[i] = v
        low[row, i] = np.uint8(v & np.uint64(0xFF))
    for b in range(bands):
        key = np.uint64(0)
        for r in range(rows):
            key = (key * _FNV) ^ sig[b * rows + r]
        key ^= key >> np.uint64(31)
        key = key * _MIX
        key ^= key >> np.uint64(29)
        keys[b, row] = key


@njit(cache=True, parallel=True, nogil=True)
def equal_fraction(low: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Share of equal columns of ``low[left[k]]`` and ``low[right[k]]`` for every pair ``k`` (float64)."""
    m = len(left)
    out = np.empty(m, dtype=np.float64)
    for k in prange(m):
        out[k] = _equal_share(low, left[k], right[k])
    return out


@njit(cache=True)
def _equal_share(low: np.ndarray, a: int, b: int) -> float:  # pragma: no cover
    """Share of equal values in rows ``a`` and ``b`` of ``low``."""
    width = low.shape[1]
    same = 0
    for i in range(width):
        if low[a, i] == low[b, i]:
            same += 1
    return same / width


@njit(cache=True, parallel=True, nogil=True)
def verify_pairs(low: np.ndarray, left: np.ndarray, right: np.ndarray, n_tokens: np.ndarray, short_tokens: int,
                 threshold: float, strict: float, ahead: int = 16) -> np.ndarray:  # pragma: no cover
    """Which candidate pairs pass verification (step 5 of :mod:`reputation.graph.templates`).

    The b-bit Jaccard estimate of ``estimated_jaccard`` (rounded to float32 as there), compared with
    ``strict`` when the shorter text has fewer than ``short_tokens`` words and with ``threshold``
    otherwise.

    Pairs come ordered by ``right``, so the ``right`` rows of ``low`` are read in order, but each
    ``left`` row (a bucket root, anywhere below) is a cache miss: ``ahead`` > 0 prefetches the ``left``
    row that many pairs ahead (both cache lines it may span), so the misses overlap. Measured on the
    79M candidate pairs of a 10M-message world: 2.0–2.2 s without, 1.1–1.2 s with 16 or 32 pairs ahead,
    1.1–1.4 s with 8 or 64.
    """
    m = len(left)
    c = 1.0 / 256.0
    width = low.shape[1]
    last = m - 1
    keep = np.empty(m, dtype=np.bool_)
    for k in prange(m):
        if ahead > 0:
            row = np.uint64(left[min(k + ahead, last)]) * np.uint64(width)
            prefetch(low, row)
            prefetch(low, row + np.uint64(width - 1))
        a = left[k]
        b = right[k]
        est = np.float64(np.float32(min(max((_equal_share(low, a, b) - c) / (1.0 - c), 0.0), 1.0)))
        limit = strict if min(n_tokens[a], n_tokens[b]) < short_tokens else threshold
        keep[k] = est >= limit
    return keep


@njit(cache=True, parallel=True, nogil=True)
def band_roots(keys: np.ndarray, ids: np.ndarray | None = None,
               partition_bits: int = 8) -> np.ndarray:  # pragma: no cover
    """Each text's bucket root (smallest text id with the same key) in every LSH band.

    Per band (bands in parallel): a radix partition on the top ``partition_bits`` bits of the key,
    then, inside each partition, a small open-addressing hash table that fits in the CPU cache holding
    each key's smallest id; a second pass over the partition reads every text's root from it. Keys are
    compared in full (no truncation).

    Parameters
    ----------
    keys
        ``(bands, n)`` ``uint64`` band keys (well mixed, see ``band_keys``); ``n < 2**31``.
    ids
        Text id of each column of ``keys`` (a permutation of ``0..n-1``, ``int32``), or None for
        ``0..n-1``. Column order then only decides the order of memory reads, never the result: the
        caller can hand over its sketches in storage order and still number texts as it likes.

    Returns
    -------
    numpy.ndarray
        ``(bands, n)`` ``int32``: ``roots[b, i] <= i`` is the root of the text with id ``i`` in band ``b``.
    """
    bands, n = keys.shape
    roots = np.empty((bands, n), dtype=np.int32)
    parts = 1 << partition_bits
    part_shift = np.uint64(64 - partition_bits)
    for b in prange(bands):
        key = keys[b]
        starts = np.zeros(parts + 1, dtype=np.int64)
        for t in range(n):
            starts[(key[t] >> part_shift) + np.uint64(1)] += 1
        largest = 0
        for q in range(parts):
            largest = max(largest, starts[q + 1])
            starts[q + 1] += starts[q]
        fill = starts[:-1].copy()
        part_key = np.empty(n, dtype=np.uint64)
        part_idx = np.empty(n, dtype=np.int32)
        for t in range(n):
            q = key[t] >> part_shift
            part_key[fill[q]] = key[t]
            part_idx[fill[q]] = t if ids is None else ids[t]
            fill[q] += 1
        size = 2
        while size < 2 * largest:
            size *= 2
        table = np.empty(size, dtype=np.int64)  # position in the partition of the key's smallest id, or -1
        for q in range(parts):
            s, e = starts[q], starts[q + 1]
            if e == s:
                continue
            used = 2
            while used < 2 * (e - s):
                used *= 2
            mask = np.uint64(used - 1)
            table[:used] = -1
            for j in range(s, e):
                k = part_key[j]
                slot = k & mask
                while True:
                    at = table[slot]
                    if at < 0:
                        table[slot] = j
                        break
                    if part_key[at] == k:
                        if part_idx[j] < part_idx[at]:
                            table[slot] = j
                        break
                    slot = (slot + np.uint64(1)) & mask
            for j in range(s, e):
                k = part_key[j]
                slot = k & mask
                while part_key[table[slot]] != k:
                    slot = (slot + np.uint64(1)) & mask
                roots[b, part_idx[j]] = part_idx[table[slot]]
    return roots


@njit(cache=True, parallel=True, nogil=True)
def distinct_row_roots(roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Pairs ``(root, t)`` for each distinct value ``root != t`` among ``roots[:, t]``.

    ``roots[b, t]`` is text ``t``'s bucket root in band ``b`` (never larger than ``t``). Pairs come out
    ordered by ``t``; a text's roots in the order of the band they first appear in (nothing downstream
    needs them sorted: verification is per pair, components and hubs are order-free). Each value is kept
    when no earlier band of the text has it, by a fixed number of compares with no data-dependent branch:
    on the 7.1M texts × 16 bands of a 10M-message world 0.7–1.1 s (0.75 s typical), against 1.3–1.7 s
    (1.35 s) for the insertion sort this replaced. Two passes over blocks of texts in parallel: count
    each block's pairs, then write them at the block's offset.
    """
    width, n = roots.shape
    block = 65536
    blocks = (n + block - 1) // block
    counts = np.zeros(blocks + 1, dtype=np.int64)
    for phase in range(2):
        if phase == 1:
            for q in range(blocks):
                counts[q + 1] += counts[q]
            left = np.empty(counts[blocks], dtype=roots.dtype)
            right = np.empty(counts[blocks], dtype=roots.dtype)
        for q in prange(blocks):
            row = np.empty(width, dtype=roots.dtype)
            k = counts[q] if phase == 1 else 0
            for t in range(q * block, min(n, (q + 1) * block)):
                for i in range(width):
                    row[i] = roots[i, t]
                for i in range(width):
                    v = row[i]
                    new = v != t
                    for j in range(i):  # first appearance of v among the text's bands
                        new &= row[j] != v
                    if new:
                        if phase == 1:
                            left[k] = v
                            right[k] = t
                        k += 1
            if phase == 0:
                counts[q + 1] = k
    return left, right


@njit(cache=True, parallel=True, nogil=True)
def compact_representatives(keys: np.ndarray, low: np.ndarray, eligible: np.ndarray, rank: np.ndarray,
                            m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Keep one sketch per distinct text: its first occurrence, in storage order.

    ``eligible`` are the positions (ascending) of the texts with a sketch and ``rank[e]`` the id of the
    distinct text at ``eligible[e]`` (``0..m-1``). The band keys of each id's first occurrence are moved to
    the front of ``keys`` in place, in storage order (streaming, band by band in parallel); their ids are
    returned, and ``low`` is returned re-ordered by id. A gather in id order instead would read the
    ``(bands, n)`` keys at random: about 7M × 16 cache misses at 10M messages.

    Returns ``(ids, rep, low_by_id)``: ``ids[k]`` is the id of the sketch now at column ``k`` of
    ``keys``; ``rep[i]`` the position of id ``i``'s first occurrence; ``low_by_id[i] = low[rep[i]]``.
    """
    seen = np.zeros(m, dtype=np.bool_)
    take = np.empty(m, dtype=np.int64)
    ids = np.empty(m, dtype=np.int32)
    k = 0
    for e in range(len(eligible)):
        r = rank[e]
        if not seen[r]:
            seen[r] = True
            take[k] = eligible[e]
            ids[k] = r
            k += 1
    for b in prange(keys.shape[0]):
        row = keys[b]
        for i in range(m):  # take[i] >= i: a forward-moving copy in place
            row[i] = row[take[i]]
    rep = np.empty(m, dtype=np.int64)
    out = np.empty((m, low.shape[1]), dtype=low.dtype)
    for i in prange(m):
        rep[ids[i]] = take[i]
        out[ids[i]] = low[take[i]]
    return ids, rep, out


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_SPACE = np.uint8(32)


@njit(cache=True)
def _fmix64(h: np.uint64) -> np.uint64:  # pragma: no cover
    """MurmurHash3's 64-bit finaliser: every output bit depends on every input bit."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB93FE53B1A85)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True)
def _char_at(data: np.ndarray, j: int, end: int) -> tuple[int, int]:  # pragma: no cover
    """The code point starting at byte ``j`` of valid UTF-8 and its length in bytes (1 to 4)."""
    c = int(data[j])
    if c < 0x80:
        return c, 1
    if c < 0xE0:
        return ((c & 0x1F) << 6) | (int(data[j + 1]) & 0x3F), 2
    if c < 0xF0:
        return ((c & 0x0F) << 12) | ((int(data[j + 1]) & 0x3F) << 6) | (int(data[j + 2]) & 0x3F), 3
    return (((c & 0x07) << 18) | ((int(data[j + 1]) & 0x3F) << 12) | ((int(data[j + 2]) & 0x3F) << 6)
            | (int(data[j + 3]) & 0x3F)), 4


@njit(cache=True)
def _is_unspaced(cp: int) -> bool:  # pragma: no cover
    """Whether code point ``cp`` belongs to a script written without spaces between words: Thai, Lao,
    Myanmar, Khmer, Japanese kana, CJK ideographs (the ranges of
    :data:`reputation.graph.templates.UNSPACED_RANGES`)."""
    if cp < 0x0E00:
        return False
    return ((0x0E00 <= cp <= 0x0EFF) or (0x1000 <= cp <= 0x109F) or (0x1780 <= cp <= 0x17FF)
            or (0x3005 <= cp <= 0x3007) or (0x3040 <= cp <= 0x30FF) or (0x31F0 <= cp <= 0x31FF)
            or (0x3400 <= cp <= 0x4DBF) or (0x4E00 <= cp <= 0x9FFF) or (0xF900 <= cp <= 0xFAFF)
            or (0xFF66 <= cp <= 0xFF9F) or (0x1B000 <= cp <= 0x1B16F) or (0x20000 <= cp <= 0x3FFFF))


@njit(cache=True)
def _has_unspaced(data: np.ndarray, start: int, end: int) -> bool:  # pragma: no cover
    """Whether ``data[start:end]`` holds a character of :func:`_is_unspaced` (all of them take 3 or 4
    bytes, so shorter characters are skipped undecoded)."""
    j = start
    while j < end:
        c = data[j]
        if c < 0xE0:
            j += 1
            continue
        cp, n = _char_at(data, j, end)
        if _is_unspaced(cp):
            return True
        j += n
    return False


@njit(cache=True)
def _bytes_hash(data: np.ndarray, a: int, b: int) -> np.uint64:  # pragma: no cover
    h = _FNV_OFFSET
    for j in range(a, b):
        h = (h ^ np.uint64(data[j])) * _FNV
    return _fmix64(h)


@njit(cache=True)
def _unspaced_tokens(data: np.ndarray, start: int, end: int, sig: np.ndarray, mul: np.ndarray,
                     add: np.ndarray, bigrams: bool, count_only: bool) -> int:  # pragma: no cover
    """The tokens of :func:`reputation.graph.templates.text_tokens` in ``data[start:end]``: counted, and
    unless ``count_only`` folded into ``sig`` as :func:`minhash_texts` folds words (with ``bigrams``,
    each pair of consecutive tokens too).

    A word is cut into runs of :func:`_is_unspaced` characters and runs of other characters; a run of
    the second kind is one token, a run of the first its overlapping two-character bigrams (a lone
    character is a token of its own). Returns the number of tokens.
    """
    count = 0
    prev = np.uint64(0)
    other_start = -1  # start of the open run of other characters, or -1
    char_start = 0  # start of the last character of the open unspaced run
    run = 0  # characters in the open unspaced run (an open run of other characters resets it to 0)
    j = start
    while True:
        # at most one token ends at each character: [a, b) is its bytes
        a = -1
        b = -1
        n = 1
        if j >= end or data[j] == _SPACE:  # a word ends
            if other_start >= 0:
                a, b = other_start, j
            elif run == 1:
                a, b = char_start, j
            other_start = -1
            run = 0
        else:
            cp, n = _char_at(data, j, end)
            if _is_unspaced(cp):
                if other_start >= 0:
                    a, b = other_start, j
                    other_start = -1
                elif run >= 1:
                    a, b = char_start, j + n  # a bigram: the previous character and this one
                run += 1
                char_start = j
            else:
                if run == 1:
                    a, b = char_start, j
                run = 0
                if other_start < 0:
                    other_start = j
        if a >= 0:
            count += 1
            if not count_only:
                x = _bytes_hash(data, a, b)
                _take_min(sig, x, mul, add)
                if bigrams and count > 1:
                    _take_min(sig, _fmix64(prev * _FNV ^ x), mul, add)
                prev = x
        if j >= end:
            return count
        j += n


@njit(cache=True, parallel=True, nogil=True)
def text_hashes(data: np.ndarray, starts: np.ndarray,
                ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """64-bit hash, token count and whether it holds a script written without spaces, of each normalised
    text in a byte buffer.

    Text ``t`` is ``data[starts[t]:ends[t]]`` (UTF-8 bytes; words separated by single spaces, no
    leading or trailing space, as :func:`reputation.graph.templates.normalise_texts` leaves them; for an
    Arrow string buffer ``starts, ends = offsets[:-1], offsets[1:]``). The hash is FNV-1a over the
    bytes, finalised with :func:`_fmix64`. The tokens are the words, except in scripts written without
    spaces (:func:`_is_unspaced`), whose runs count as their character bigrams
    (:func:`reputation.graph.templates.text_tokens`); the empty text has 0 tokens. The third array says
    which texts hold such a script, for :func:`minhash_texts`.
    """
    n = len(starts)
    hashes = np.empty(n, dtype=np.uint64)
    words = np.empty(n, dtype=np.int32)
    unspaced = np.zeros(n, dtype=np.bool_)
    none = np.empty(0, dtype=np.uint64)
    for t in prange(n):
        h = _FNV_OFFSET
        spaces = 0
        bits = np.uint8(0)  # >= 0xE0 if the text may hold a 3- or 4-byte character (a script without spaces)
        for j in range(starts[t], ends[t]):
            c = data[j]
            h = (h ^ np.uint64(c)) * _FNV
            bits |= c
            if c == _SPACE:
                spaces += 1
        hashes[t] = _fmix64(h)
        if bits >= 0xE0 and _has_unspaced(data, starts[t], ends[t]):
            unspaced[t] = True
            words[t] = _unspaced_tokens(data, starts[t], ends[t], none, none, none, False, True)
        else:
            words[t] = spaces + 1 if ends[t] > starts[t] else 0
    return hashes, words, unspaced


@njit(cache=True, parallel=True, nogil=True)
def minhash_texts(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, unspaced: np.ndarray,
                  positions: np.ndarray,
                  out_rows: np.ndarray,
                  mul: np.ndarray, add: np.ndarray, bands: int, rows: int, bigrams: bool,
                  keys: np.ndarray, low: np.ndarray) -> None:  # pragma: no cover
    """MinHash the word sets of selected normalised texts straight from an Arrow string buffer.

    For each ``k``, text ``positions[k]`` (see :func:`text_hashes` for the layout) is split at spaces;
    each word's bytes are hashed (FNV-1a + :func:`_fmix64`), and with ``bigrams`` each pair of
    consecutive words adds the mixed hash of the two. A text holding a script written without spaces
    (``unspaced``, per text, as :func:`text_hashes` returns it) is split into the tokens of
    :func:`reputation.graph.templates.text_tokens` instead (character bigrams of those scripts' runs,
    words elsewhere; :func:`_unspaced_tokens`), each hashed the same way.
    Signature value ``i`` is the minimum over the shingle hashes ``x`` of ``((mul[i]·x + add[i]) mod 2^64)
    >> 32`` (the family of ``reputation.graph.templates.minhash_signatures``); its band keys go to column
    ``out_rows[k]`` of ``keys`` and its low bytes to row ``out_rows[k]`` of ``low`` (see
    :func:`_finish_signature`). Every selected text must have at least one word.
    """
    num_perm = len(mul)
    n = len(positions)
    blocks = (n + 4095) // 4096
    for blk in prange(blocks):  # one signature buffer per block of texts, not per text
        sig = np.empty(num_perm, dtype=np.uint64)
        for k in range(blk * 4096, min(n, (blk + 1) * 4096)):
            t = positions[k]
            sig[:] = np.uint64(0xFFFFFFFFFFFFFFFF)
            start = starts[t]
            end = ends[t]
            if unspaced[t]:
                _unspaced_tokens(data, start, end, sig, mul, add, bigrams, False)
                _finish_signature(sig, bands, rows, keys, low, out_rows[k])
                continue
            h = _FNV_OFFSET
            prev = np.uint64(0)
            first = True
            for j in range(start, end + 1):
                if j < end and data[j] != _SPACE:
                    h = (h ^ np.uint64(data[j])) * _FNV
                    continue
                word = _fmix64(h)  # end of a word
                h = _FNV_OFFSET
                _take_min(sig, word, mul, add)
                if bigrams and not first:
                    _take_min(sig, _fmix64(prev * _FNV ^ word), mul, add)
                prev = word
                first = False
            _finish_signature(sig, bands, rows, keys, low, out_rows[k])


@njit(cache=True)
def _is_space(c: np.uint8) -> bool:  # pragma: no cover
    """ASCII white space as Unicode defines it (tab, LF, VT, FF, CR, space): what a regex ``\\s`` matches."""
    return c == 32 or (c >= 9 and c <= 13)


@njit(cache=True)
def _byte_is(data: np.ndarray, k: int, end: int, byte: int) -> bool:  # pragma: no cover
    """``data[k] == byte`` within the text (``k < end``)."""
    return k < end and data[k] == byte


@njit(cache=True)
def _url_end(data: np.ndarray, i: int, end: int) -> int:  # pragma: no cover
    """End of the URL match ``(https?://|www\\.)\\S+`` starting at ``i`` (compared case-blind), or -1.

    As the regex does: ``https://`` is tried before ``http://`` (``s?`` is greedy), and the prefix needs
    at least one non-space byte after it. ``| 32`` lower-cases an ASCII letter.
    """
    j = -1
    if (data[i] | 32) == 104 and i + 3 < end and (data[i + 1] | 32) == 116 and (data[i + 2] | 32) == 116 \
            and (data[i + 3] | 32) == 112:  # 'http'
        k = i + 4
        if k < end and (data[k] | 32) == 115 and _byte_is(data, k + 1, end, 58) and _byte_is(data, k + 2, end, 47) \
                and _byte_is(data, k + 3, end, 47) and k + 4 < end and not _is_space(data[k + 4]):
            j = k + 4  # https://
        elif _byte_is(data, k, end, 58) and _byte_is(data, k + 1, end, 47) and _byte_is(data, k + 2, end, 47) \
                and k + 3 < end and not _is_space(data[k + 3]):
            j = k + 3  # http://
    elif (data[i] | 32) == 119 and i + 4 < end and (data[i + 1] | 32) == 119 and (data[i + 2] | 32) == 119 \
            and data[i + 3] == 46 and not _is_space(data[i + 4]):
        j = i + 4  # www.
    if j < 0:
        return -1
    while j < end and not _is_space(data[j]):
        j += 1
    return j


@njit(cache=True, parallel=True, nogil=True)
def normalise_ascii(data: np.ndarray,
                    offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Normalise every all-ASCII text exactly as ``reputation.graph.templates.normalise_texts`` does.

    Lower case; a URL (``(https?://|www\\.)\\S+``) becomes the word ``url``; a run of digits becomes
    ``0``; the words (maximal runs of letters and digits) are joined by single spaces. Texts with a byte
    of 0x80 or more (UTF-8 beyond ASCII: Unicode case folding and letter classes) are left to the
    caller: their output is empty and their flag in the returned mask is False.

    Returns ``(out, lengths, ascii)``: text ``t``'s output is ``out[offsets[t]:offsets[t] + lengths[t]]``.
    It is never longer than the input (a URL of at least five bytes becomes three, so there is room for
    the space before it), so each text is written into its own input slot and nothing is packed.
    """
    n = len(offsets) - 1
    scratch = np.empty(max(len(data), 1), dtype=np.uint8)
    lengths = np.zeros(n, dtype=np.int64)
    ascii_ = np.zeros(n, dtype=np.bool_)
    for t in prange(n):
        start, end = offsets[t], offsets[t + 1]
        ok = True
        for i in range(start, end):
            if data[i] >= 128:
                ok = False
                break
        if not ok:
            continue
        ascii_[t] = True
        w = start  # write position in scratch
        pending = False  # a word ended: a space goes before the next one
        i = start
        while i < end:
            c = data[i]
            if c == 104 or c == 72 or c == 119 or c == 87:  # h H w W: maybe a URL
                u = _url_end(data, i, end)
                if u >= 0:
                    # the URL's ' url ' always stands alone: it ends the current word
                    if w > start:
                        scratch[w] = 32
                        w += 1
                    scratch[w] = 117
                    scratch[w + 1] = 114
                    scratch[w + 2] = 108
                    w += 3
                    pending = True
                    i = u
                    continue
            if c >= 48 and c <= 57:  # a digit run -> '0'
                if pending:
                    scratch[w] = 32
                    w += 1
                    pending = False
                scratch[w] = 48
                w += 1
                while i < end and data[i] >= 48 and data[i] <= 57:
                    i += 1
                continue
            if (c >= 97 and c <= 122) or (c >= 65 and c <= 90):
                if pending:
                    scratch[w] = 32
                    w += 1
                    pending = False
                scratch[w] = c | np.uint8(32)
                w += 1
            elif w > start:
                pending = True
            i += 1
        lengths[t] = w - start
    return scratch, lengths, ascii_


@njit(cache=True, parallel=True, nogil=True)
def place_strings(out: np.ndarray, starts: np.ndarray, lengths: np.ndarray, room: np.ndarray, at: np.ndarray,
                  other: np.ndarray, other_offsets: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Write string ``k`` of ``(other, other_offsets)`` as text ``at[k]`` into its slot of ``out``.

    Text ``t``'s slot starts at ``starts[t]`` and has ``room[t]`` bytes; ``lengths`` is updated. Returns
    the mask of the strings that did not fit (longer than their slot: the caller places those elsewhere).
    """
    misfit = np.zeros(len(at), dtype=np.bool_)
    for k in prange(len(at)):
        t = at[k]
        size = other_offsets[k + 1] - other_offsets[k]
        if size > room[t]:
            misfit[k] = True
            continue
        for i in range(size):
            out[starts[t] + i] = other[other_offsets[k] + i]
        lengths[t] = size
    return misfit
