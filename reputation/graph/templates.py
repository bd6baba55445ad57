"""Near-duplicate message templates: MinHash + LSH banding over normalised message texts.

Spam is one text sent many times, usually lightly varied so that exact matching misses it
("Hi Anna, ..." personalisation, synonym spinning, random tokens). This stage gives every message
whose text is long enough a ``template_id`` shared by all its near-copies on every platform:

1. **Normalise** each *distinct* raw text (:func:`normalise_texts`, polars' Rust regex, in chunks; the
   same result as the SQL expression :data:`NORMALISE_SQL`): lower case, URLs → ``url``, digit runs →
   ``0``, punctuation and whitespace runs → one space. Messages are joined back once, at the end, by
   the 64-bit hash of their raw text.
2. Work on the **distinct** normalised texts only. Texts with fewer than ``min_tokens`` words ("ok",
   "thanks, see you") get no template: short phrases are said by everyone and must not form clusters.
3. **MinHash**: each text's shingle set (its words, optionally plus word bigrams) is hashed in SQL and
   arrives as Arrow lists; numpy applies ``num_perm`` multiply-add-shift hash functions and takes the
   per-text minimum (``np.minimum.reduceat``), a cache-sized block of texts at a time. Signatures
   are made chunk by chunk and reduced at once to what later steps need: the LSH band keys and the
   low byte of each value (:func:`band_keys`), so memory stays about 200 bytes per distinct text.
4. **LSH banding**: ``bands × rows`` signature values; texts whose band values agree in at least one
   band are candidates. Each bucket is linked as a star to its smallest text id.
5. **Verification**: a candidate pair is kept only when its estimated Jaccard similarity is at least
   ``threshold`` (b-bit MinHash estimate from the low byte of each value), and at least
   ``short_threshold`` when the shorter text has fewer than ``short_tokens`` words. This is the guard
   against chaining unrelated texts into a giant cluster: short generic chat ("agree with the above,
   baked my cake on the way home") differs in a word or two from thousands of other messages, and the
   more messages, the more such bridges. Measured on generated worlds: with one threshold of 0.5 the
   honest chat of a 200k-message world chained into one 9,000-text cluster; at 0.6 it chained again at
   5M messages (one cluster of 512,000 texts from 57,000 senders); with the short-text rule no honest
   giant cluster forms, while spun spam (35% of its phrases re-drawn per copy) and personalised
   newsletters, which are long, still cluster.
6. **Clusters** are the connected components of the kept pairs (``scipy.sparse.csgraph``), or, with
   ``clustering="hub"``, stars around hub texts (:func:`hub_clusters`; no chaining at all, but spun
   templates split into more clusters). A cluster's ``template_id`` is ``'t'`` + the hex of the smallest
   64-bit hash of its member texts: deterministic and independent of row order.

Word unigrams are the default shingles: spinning swaps words inside fixed sentence frames, which keeps
most unigrams but breaks many bigrams (bigrams split one operator's spun template into hundreds of
clusters on the generated world).

Tables written
--------------
``templates``
    One row per (platform, account, template_id) with message counts, targets and times (the contract).
``message_templates``
    One row per message that has a template: the message's edge columns, ``sent_at``, ``url_domain``
    and its ``template_id``. Later stages (features, campaigns) join on it instead of normalising texts
    again.
``template_clusters``
    One row per template: distinct texts, messages, senders and platforms, so analysts can see which
    clusters are mass mailings.

Example
-------
>>> sig = minhash_signatures(np.array([0, 0, 1, 1], dtype=np.int64),
...                          np.array([1, 2, 1, 2], dtype=np.uint64), n_texts=2, num_perm=8)
>>> bool((sig[0] == sig[1]).all())
True
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..context import StageContext
from ..store import comment_table
from ._kernels import distinct_row_roots, equal_fraction, minhash_band_keys

TABLE = "templates"
MESSAGE_TABLE = "message_templates"
CLUSTER_TABLE = "template_clusters"

#: SQL expression normalising a column named ``text`` (see module docs): URLs → ``url``, digit runs →
#: ``0``, then every run of characters that are neither letters nor digits (punctuation and whitespace
#: alike) → one space. ``\pL``/``\pN`` keep letters and digits of every script (RE2's ``\w`` is ASCII).
NORMALISE_SQL = (
    "trim(regexp_replace(regexp_replace(regexp_replace(lower(text), "
    r"'(https?://|www\.)\S+', ' url ', 'g'), "
    r"'\pN+', '0', 'g'), "
    r"'[^\pL\pN]+', ' ', 'g'))"
)


#: Distinct raw texts normalised per chunk (bounds the memory of the string copies).
NORMALISE_CHUNK = 1_000_000

#: Patterns of :func:`normalise_texts`, the same normalisation as :data:`NORMALISE_SQL`. The last one
#: matches only runs of non-alphanumerics that are not already one plain space (a run containing a
#: character other than a space, or several spaces): replacing the single spaces between words too
#: would give the same text, but costs one replacement per word.
_URL_RE = r"(https?://|www\.)\S+"
_DIGITS_RE = r"\pN+"
_SEPARATOR_RE = r" *[^\pL\pN ][^\pL\pN]*| {2,}"


def normalise_texts(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Normalise many texts at once, exactly as :data:`NORMALISE_SQL` does, with polars' Rust regex.

    Lower case, URLs → ``url``, digit runs → ``0``, runs of characters that are neither letters nor
    digits → one space, trimmed. About five times faster than the three RE2 passes in DuckDB, which
    were the largest single cost of the stage.

    Parameters
    ----------
    texts
        Arrow string array (nulls stay null).

    Returns
    -------
    pyarrow.Array
        The normalised texts, aligned with ``texts``.

    Example
    -------
    >>> normalise_texts(pa.array(["Héllo,  WÖRLD!! Call 555-1234: https://x.example/a?b=1 now."])).to_pylist()
    ['héllo wörld call 0 0 url now']
    """
    s = pl.Series("text", texts).cast(pl.String)
    out = (s.str.to_lowercase()
           .str.replace_all(_URL_RE, " url ")
           .str.replace_all(_DIGITS_RE, "0")
           .str.replace_all(_SEPARATOR_RE, " ")
           .str.strip_chars(" "))
    return out.to_arrow()


@dataclass(frozen=True)
class TemplateParams:
    """Tuning of the template clustering.

    Attributes
    ----------
    min_tokens
        Texts with fewer words (after normalisation) get no template.
    num_perm
        MinHash functions; must equal ``bands * rows``.
    bands, rows
        LSH banding: a pair with Jaccard ``s`` becomes a candidate with probability
        ``1 - (1 - s**rows)**bands``: with 16 × 4, 0.89 at s = 0.6, 0.98 at s = 0.8, but only 0.12 at
        s = 0.3, so chance collisions of unrelated chat stay few. A near-duplicate family is connected
        through many pairs, so a per-pair recall below 1 rarely splits it.
    threshold
        Minimum estimated Jaccard similarity of a kept pair.
    short_tokens, short_threshold
        A pair whose shorter text has fewer than ``short_tokens`` words needs an estimated Jaccard of
        at least ``short_threshold`` (near-identical), so that short generic chat cannot chain.
    bigrams
        Add word bigrams to the shingle set (stricter on word order; less tolerant of spinning).
    chunk_texts
        Texts per MinHash chunk (memory bound: about 8 bytes × shingles per text × chunk).
    seed
        Seed of the hash family (fixed for reproducibility).
    clustering
        ``"components"`` (connected components of the kept pairs) or ``"hub"`` (:func:`hub_clusters`).
    """

    min_tokens: int = 5
    num_perm: int = 64
    bands: int = 16
    rows: int = 4
    threshold: float = 0.6
    bigrams: bool = False
    chunk_texts: int = 500_000
    clustering: Literal["hub", "components"] = "components"
    short_tokens: int = 12
    short_threshold: float = 0.8
    seed: int = 20260101


def _hash_family(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mul = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    add = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return mul, add


def minhash_signatures(text_ids: np.ndarray, shingle_hashes: np.ndarray, n_texts: int, num_perm: int = 64,
                       seed: int = 20260101) -> np.ndarray:
    """MinHash signatures of many shingle sets at once.

    The hash family is multiply-add-shift, ``h_i(x) = ((a_i · x + b_i) mod 2^64) >> 32`` with random odd
    ``a_i`` (Dietzfelbinger et al.), applied to 64-bit shingle hashes: a few vectorised passes per
    function over all shingles, then a per-text minimum with ``np.minimum.reduceat``.

    Parameters
    ----------
    text_ids
        Text index (0..n_texts-1) of each shingle, sorted ascending; every text has ≥ 1 shingle.
    shingle_hashes
        64-bit hash of each shingle (``uint64``), aligned with ``text_ids``.
    n_texts
        Number of texts.
    num_perm
        Number of hash functions.
    seed
        Seed of the hash family; the same seed gives the same signatures.

    Returns
    -------
    numpy.ndarray
        ``(n_texts, num_perm)`` ``uint32`` array; row i is text i's signature. Two texts agree in a
        column with probability (about) the Jaccard similarity of their shingle sets.
    """
    starts = np.flatnonzero(np.r_[True, text_ids[1:] != text_ids[:-1]])
    if len(starts) != n_texts:
        raise ValueError(f"expected {n_texts} texts with shingles, got {len(starts)}")
    return _minhash(starts, shingle_hashes, num_perm, seed)


def _minhash(starts: np.ndarray, shingle_hashes: np.ndarray, num_perm: int, seed: int,
             block: int = 2048) -> np.ndarray:
    """MinHash of consecutive runs of ``shingle_hashes`` beginning at ``starts`` (all non-empty).

    Works through ``block`` texts at a time (about 30,000 shingles, a quarter MiB), so that all
    ``num_perm`` passes over a block run in the CPU cache instead of streaming the whole array from
    memory once per hash function: about twice as fast. Per hash function: multiply, add, per-text
    minimum; the ``>> 32`` is monotone, so it is applied to the minima only.
    """
    mul, add = _hash_family(num_perm, seed)
    n = len(starts)
    sig = np.empty((n, num_perm), dtype=np.uint32)
    h = np.ascontiguousarray(shingle_hashes, dtype=np.uint64)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.r_[starts[1:], len(h)]
    buf = np.empty(len(h), dtype=np.uint64)
    shift = np.uint64(32)
    with np.errstate(over="ignore"):
        for s in range(0, n, block):
            e = min(s + block, n)
            lo, hi = int(starts[s]), int(ends[e - 1])
            hh, bb, st = h[lo:hi], buf[:hi - lo], starts[s:e] - lo
            out = sig[s:e]
            for i in range(num_perm):
                np.multiply(hh, mul[i], out=bb)
                np.add(bb, add[i], out=bb)
                out[:, i] = np.minimum.reduceat(bb, st) >> shift
    return sig


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """64-bit key of each LSH band of each signature: a mixed hash of the band's ``rows`` values.

    Computed chunk by chunk right after the MinHash (see :func:`cluster_texts`), so the full
    ``n × num_perm`` signatures of all texts are never held at once: per text only the band keys
    (``8 × bands`` bytes) and the low bytes of the signature (``num_perm`` bytes) are kept. Texts with
    equal band values get equal keys. (32-bit keys would halve that memory, but a chance collision
    merges two buckets, and the star linking to the merged bucket's root then loses true pairs: at
    10M messages that changed a few clusters.)

    Returns
    -------
    numpy.ndarray
        ``(bands, n)`` ``uint64`` array, band-major so that each band is contiguous.
    """
    n = sig.shape[0]
    if bands * rows > sig.shape[1]:
        raise ValueError(f"bands × rows = {bands * rows} exceeds the signature length {sig.shape[1]}")
    keys = np.empty((bands, n), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            key = keys[b]
            key[:] = 0
            for r in range(rows):
                key *= np.uint64(0x100000001B3)
                key ^= sig[:, b * rows + r]
            key ^= key >> np.uint64(31)  # mix, so that the high bits depend on every row's value
            key *= np.uint64(0xBF58476D1CE4E5B9)
            key ^= key >> np.uint64(29)
    return keys


def _bucket_roots(key: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Group texts by band key; return the texts in key order and each one's bucket root (smallest index).

    For up to 2^26 texts the index is packed into the low ``bits`` bits of the key and the packed values
    are sorted directly (about twice as fast as ``argsort``): equal (truncated) keys then sit together in
    index order, so a bucket's first entry is its root. Truncating the key to ``64 - bits`` bits adds a
    few chance collisions, which verification removes.
    """
    n = len(key)
    if bits > 26:
        order = np.argsort(key)
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        root = np.repeat(np.minimum.reduceat(order, starts), np.diff(np.r_[starts, n]))
        return order, root
    shift = np.uint64(bits)
    packed = ((key >> shift) << shift) | np.arange(n, dtype=np.uint64)
    packed.sort()
    order = (packed & np.uint64((1 << bits) - 1)).astype(np.int64)
    group = packed >> shift
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    root = np.repeat(order[starts], np.diff(np.r_[starts, n]))
    return order, root


def lsh_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs from band keys (see :func:`band_keys`): texts with equal keys in some band.

    Per band, texts are grouped by key (:func:`_bucket_roots`) and each bucket is linked as a star to
    its root (smallest index), so there are at most ``n × bands`` pairs.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``left`` and ``right`` text indices, ``left < right``, duplicates removed, ordered by ``right``.
    """
    bands, n = keys.shape
    bits = max((n - 1).bit_length(), 1)
    index_type = np.int32 if n < 2**31 else np.int64
    roots = np.empty((n, bands), dtype=index_type)  # each text's bucket root, per band

    def group_band(b: int) -> None:
        order, root = _bucket_roots(keys[b], bits)
        roots[order, b] = root

    # numpy's sort releases the GIL: two bands at a time on two cores
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(group_band, range(bands)))
    # distinct roots per text (compiled: sort each text's few roots), without a global sort of all pairs
    return distinct_row_roots(roots)


def lsh_candidates(sig: np.ndarray, bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs from LSH banding: texts that agree on every row of some band.

    :func:`band_keys` then :func:`lsh_pairs`; see there.
    """
    return lsh_pairs(band_keys(sig, bands, rows))


def estimated_jaccard(sig: np.ndarray, left: np.ndarray, right: np.ndarray,
                      chunk: int = 4_000_000) -> np.ndarray:
    """MinHash Jaccard estimate of each pair, from the lowest 8 bits of the signature values.

    ``sig`` may be the full signatures or only their low bytes (``uint8``, see :func:`cluster_texts`).

    b-bit MinHash (Li & König 2010): comparing only the low byte of each value moves 4× less memory;
    two unequal values still agree in it with probability 1/256, which the estimate corrects for:
    ``J ≈ (share_equal − 1/256) / (1 − 1/256)`` (clipped to 0..1).
    """
    low = sig if sig.dtype == np.uint8 else sig.astype(np.uint8)  # low byte of each value
    low = np.ascontiguousarray(low)
    c = 1.0 / 256.0
    out = np.empty(len(left), dtype=np.float32)
    for s in range(0, len(left), chunk):
        e = min(s + chunk, len(left))
        equal = equal_fraction(low, np.ascontiguousarray(left[s:e]), np.ascontiguousarray(right[s:e]))
        out[s:e] = np.clip((equal - c) / (1.0 - c), 0.0, 1.0)
    return out


def hub_clusters(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cluster a similarity graph around hubs, so that clusters cannot chain.

    Every node joins its best neighbour — the one with the most neighbours (ties: smallest index) — or
    stays alone when it is itself better than all its neighbours; a node that some other node joined
    is a hub and keeps itself. Every member is therefore directly similar to its cluster's hub, and
    unlike connected components, a path of pairwise-similar texts (a → b → c → …) cannot merge
    thousands of unrelated chat messages into one cluster as the data grows.

    Parameters
    ----------
    n
        Number of nodes.
    left, right
        Edges (node indices).

    Returns
    -------
    numpy.ndarray
        The hub (a node index) of each node.

    Example
    -------
    >>> hub_clusters(5, np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])).tolist()  # a chain is cut
    [1, 1, 2, 3, 3]
    >>> hub_clusters(4, np.array([0, 0, 0]), np.array([1, 2, 3])).tolist()  # a star stays whole
    [0, 0, 0, 0]
    """
    idx = np.arange(n, dtype=np.int64)
    deg = np.bincount(left, minlength=n) + np.bincount(right, minlength=n)
    score = deg.astype(np.int64) * np.int64(n) + (n - 1 - idx)  # more neighbours first, then lower index
    best = score.copy()
    np.maximum.at(best, left, score[right])
    np.maximum.at(best, right, score[left])
    hub = n - 1 - best % n
    is_hub = np.zeros(n, dtype=bool)
    is_hub[hub[hub != idx]] = True
    hub[is_hub] = idx[is_hub]
    return hub


def cluster_texts(con: duckdb.DuckDBPyConnection, params: TemplateParams) -> np.ndarray:
    """Cluster the eligible texts of the temp table ``_tpl_text``; return each text's component label.

    ``_tpl_text`` has ``id`` (0..n-1), ``norm`` and ``eligible``; only eligible texts are hashed.
    Ineligible texts keep their own singleton label.
    """
    n = con.execute("SELECT count(*) FROM _tpl_text").fetchall()[0][0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    eligible = con.execute("SELECT id FROM _tpl_text WHERE eligible ORDER BY id").fetchnumpy()["id"]
    eligible = eligible.astype(np.int64)
    if len(eligible) < 2:
        return np.arange(n, dtype=np.int64)
    # duplicate shingles do not change a minimum, so the lists need no list_distinct
    shingles = "string_split(norm, ' ')"
    if params.bigrams:
        shingles = (
            "list_concat(string_split(norm, ' '), "
            "list_transform(range(1, len(string_split(norm, ' '))), "
            "lambda i: string_split(norm, ' ')[i] || ' ' || string_split(norm, ' ')[i + 1]))"
        )
    m = len(eligible)
    if params.bands * params.rows > params.num_perm:
        raise ValueError("TemplateParams: bands × rows exceeds num_perm")
    mul, add = _hash_family(params.num_perm, params.seed)
    keys = np.empty((params.bands, m), dtype=np.uint64)
    low = np.empty((m, params.num_perm), dtype=np.uint8)  # low byte of each MinHash value
    n_tokens = np.empty(m, dtype=np.int32)
    # chunk over eligible texts by position; the eligible ids are sorted, so a chunk is an id range.
    # Each text's shingle hashes arrive as one Arrow list: its offsets delimit the texts, no sort needed.
    # Only the band keys and low bytes of each chunk's signatures are kept (see band_keys).
    for s in range(0, m, params.chunk_texts):
        e = min(s + params.chunk_texts, m)
        lo, hi = int(eligible[s]), int(eligible[e - 1])
        col = con.sql(
            f"""SELECT list_transform({shingles}, lambda x: hash(x)) AS hs FROM _tpl_text
                WHERE eligible AND id BETWEEN $lo AND $hi ORDER BY id""",
            params={"lo": lo, "hi": hi},
        ).to_arrow_table().column("hs").combine_chunks()
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False).astype(np.int64)
        values = np.ascontiguousarray(pc.list_flatten(col).to_numpy(zero_copy_only=False), dtype=np.uint64)
        del col
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # compiled: the same values as band_keys(minhash_signatures(...)) and their low bytes
        minhash_band_keys(offsets, values, mul, add, params.bands, params.rows, keys[:, s:e], low[s:e])
        del values
        n_tokens[s:e] = (lengths + 1) // 2 if params.bigrams else lengths  # words (n words, n-1 bigrams)
    left, right = lsh_pairs(keys)
    del keys
    if len(left):
        sim = estimated_jaccard(low, left, right)
        # short texts must be near-identical: they are where generic chat chains together
        short = np.minimum(n_tokens[left], n_tokens[right]) < params.short_tokens
        # compare in float64 (a float32 threshold could round below the configured value)
        strict = np.float64(max(params.short_threshold, params.threshold))
        keep = np.where(short, sim >= strict, sim >= np.float64(params.threshold))
        del sim, short
        left, right = left[keep], right[keep]
    del low
    m = len(eligible)
    if params.clustering == "components":
        graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(m, m)).tocsr()
        _, comp = connected_components(graph, directed=False)
        # component label → smallest text id in it, so labels are text ids (stable, order-free)
        first = np.full(comp.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, comp, eligible)
        cluster = first[comp]
    else:
        cluster = eligible[hub_clusters(m, left, right)]
    labels = np.arange(n, dtype=np.int64)
    labels[eligible] = cluster
    return labels


TABLE_DOC = (
    "Near-duplicate text templates per account: one row per (platform, account, template_id). "
    "template_id is global across platforms: messages whose normalised texts are near-copies "
    "(MinHash/LSH, estimated Jaccard of word sets ≥ threshold, connected) share it. Texts shorter "
    "than the minimum word count have no template and are not counted here."
)
COLUMN_DOCS: dict[str, str] = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform of the sending account.",
    "account": "Sending account id.",
    "template_id": "Near-duplicate cluster id ('t' + 16 hex digits), the same on every platform.",
    "messages": "Messages the account sent with this template, count.",
    "recipients": "Distinct targets the account sent this template to (the direct recipient, or the "
    "channel for posts without a recipient), count.",
    "first_at": "First send of this template by the account (UTC).",
    "last_at": "Last send of this template by the account (UTC).",
}
MESSAGE_DOC = (
    "Per-message template assignment: one row per message whose text has a template (≥ the minimum "
    "word count). Used by features and campaigns; join key is the message's edge and time."
)
MESSAGE_COLUMN_DOCS: dict[str, str] = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform.",
    "sender": "Sending account id.",
    "recipient": "Recipient (direct message) or null.",
    "channel": "Channel or null.",
    "sent_at": "Send time (UTC), may be null.",
    "url_domain": "URL domain the message carried (see messages), or null.",
    "template_id": "Template of the message text (see templates).",
}
CLUSTER_DOC = "One row per template: how widely it was sent. Mass mailings have many messages and targets."
CLUSTER_COLUMN_DOCS: dict[str, str] = {
    "run_id": "Run that wrote this row (see runs).",
    "template_id": "Template id (see templates).",
    "texts": "Distinct normalised texts in the cluster, count.",
    "messages": "Messages with this template, count.",
    "senders": "Distinct sending accounts (platform, account), count.",
    "platforms": "Distinct platforms it was sent on, count.",
    "example": "One normalised member text (the one the template id is derived from), for analysts.",
    "first_at": "First send (UTC).",
    "last_at": "Last send (UTC).",
}


def build_templates(con: duckdb.DuckDBPyConnection, ctx: StageContext,
                    params: TemplateParams | None = None) -> int:
    """Cluster message texts into near-duplicate templates; write ``templates``, ``message_templates``
    and ``template_clusters``.

    Parameters
    ----------
    con
        Connection holding ``messages``.
    ctx
        Run context.
    params
        Clustering parameters; defaults to :class:`TemplateParams` (or ``ctx.extras['template_params']``).

    Returns
    -------
    int
        Rows written to ``templates``.
    """
    if params is None:
        params = ctx.extras.get("template_params") or TemplateParams()  # type: ignore[assignment]
    assert isinstance(params, TemplateParams)
    if params.bands * params.rows != params.num_perm:
        raise ValueError("TemplateParams: bands × rows must equal num_perm")
    # 1. distinct raw texts (many messages repeat a text verbatim), keyed by their 64-bit hash: the
    #    messages are joined back by hash(text) at the end, so nothing per message is kept meanwhile
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tpl_raw AS
           SELECT hash(text) AS rh, text FROM (SELECT DISTINCT text FROM messages WHERE text IS NOT NULL)"""
    )
    # 2. normalise the distinct texts in chunks with polars (Rust regex: about 5× faster than the
    #    three RE2 passes of NORMALISE_SQL, same result); chunks bound the memory of the string copies
    con.execute("CREATE OR REPLACE TEMP TABLE _tpl_norm (rh UBIGINT, nh UBIGINT, norm VARCHAR, words INTEGER)")
    n_raw = con.execute("SELECT count(*) FROM _tpl_raw").fetchall()[0][0]
    for lo in range(0, n_raw, NORMALISE_CHUNK):
        raw = con.sql("SELECT rh, text FROM _tpl_raw WHERE rowid >= $lo AND rowid < $hi",
                      params={"lo": lo, "hi": lo + NORMALISE_CHUNK}).to_arrow_table()
        norm = normalise_texts(raw.column("text"))
        # words = spaces + 1 (the normalised text has single spaces between words; '' has none)
        words = pl.Series(norm).str.count_matches(" ", literal=True) + 1
        words = pl.Series(norm).str.len_bytes().gt(0).cast(pl.Int32) * words.cast(pl.Int32)
        con.register("_tpl_chunk_view", pa.table({"rh": raw.column("rh"), "norm": norm,
                                                  "words": words.to_arrow()}))
        try:
            con.execute("INSERT INTO _tpl_norm SELECT rh, hash(norm), norm, words FROM _tpl_chunk_view")
        finally:
            con.unregister("_tpl_chunk_view")
        del raw, norm
    con.execute("DROP TABLE _tpl_raw")
    # 3. one row per normalised-text hash (two texts with equal 64-bit hashes would count as one text),
    #    ids in hash order: deterministic and independent of input row order
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tpl_text AS
           SELECT (row_number() OVER (ORDER BY nh) - 1)::BIGINT AS id, norm, nh AS norm_hash,
                  words >= $min_tokens AS eligible
           FROM (SELECT nh, min(norm) AS norm, min(words) AS words FROM _tpl_norm GROUP BY nh)""",
        {"min_tokens": params.min_tokens},
    )
    # the normalised strings now live in _tpl_text; keep only raw hash → normalised hash per raw text
    con.execute("CREATE OR REPLACE TEMP TABLE _tpl_norm AS SELECT rh, nh FROM _tpl_norm")
    labels = cluster_texts(con, params)
    n_text = len(labels)
    ids = np.arange(n_text, dtype=np.int64)
    texts_per_label = np.bincount(labels, minlength=n_text) if n_text else np.zeros(0, dtype=np.int64)
    con.register("_tpl_labels_view", pa.table({"id": ids, "label": labels, "texts": texts_per_label}))
    try:
        # raw text hash → template id (eligible texts only); integer keys throughout
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _tpl_label AS
               SELECT t.norm_hash AS nh, l.label FROM _tpl_text t JOIN _tpl_labels_view l ON l.id = t.id
               WHERE t.eligible"""
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _tpl_cluster AS
               SELECT l.id AS label, 't' || lpad(lower(to_hex(t.norm_hash)), 16, '0') AS template_id,
                      l.texts, t.norm AS example
               FROM _tpl_labels_view l JOIN _tpl_text t ON t.id = l.id
               WHERE t.eligible AND l.texts > 0"""
        )
    finally:
        con.unregister("_tpl_labels_view")
    con.execute("DROP TABLE _tpl_text")
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tpl_map AS
           SELECT n.rh, c.template_id
           FROM _tpl_norm n JOIN _tpl_label l ON l.nh = n.nh JOIN _tpl_cluster c ON c.label = l.label"""
    )
    con.execute("DROP TABLE _tpl_norm")
    con.execute("DROP TABLE _tpl_label")
    # 4. one pass over messages: join by the raw text's hash
    con.execute(
        f"""CREATE OR REPLACE TABLE {MESSAGE_TABLE} AS
            SELECT CAST($run_id AS VARCHAR) AS run_id, m.platform, m.sender, m.recipient, m.channel,
                   m.sent_at, m.url_domain, p.template_id
            FROM messages m
            JOIN _tpl_map p ON p.rh = hash(m.text)
            WHERE m.text IS NOT NULL""",
        {"run_id": ctx.run_id},
    )
    con.execute("DROP TABLE _tpl_map")
    # targets are keyed as (recipient, channel-when-no-recipient): the same keys as 'r:' || recipient /
    # 'c:' || channel, without building a string per message; a message with neither has no target
    con.execute(
        f"""CREATE OR REPLACE TABLE {TABLE} AS
            SELECT CAST($run_id AS VARCHAR) AS run_id, platform, sender AS account, template_id,
                   sum(n)::BIGINT AS messages,
                   count(*) FILTER (WHERE recipient IS NOT NULL OR ch IS NOT NULL) AS recipients,
                   min(first_at) AS first_at, max(last_at) AS last_at
            FROM (SELECT platform, sender, template_id, recipient,
                         CASE WHEN recipient IS NULL THEN channel END AS ch,
                         count(*) AS n, min(sent_at) AS first_at, max(sent_at) AS last_at
                  FROM {MESSAGE_TABLE}
                  GROUP BY platform, sender, template_id, recipient, ch)
            GROUP BY platform, sender, template_id""",
        {"run_id": ctx.run_id},
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE {CLUSTER_TABLE} AS
            SELECT CAST($run_id AS VARCHAR) AS run_id, t.template_id, c.texts,
                   t.messages, t.senders, t.platforms, c.example, t.first_at, t.last_at
            FROM (SELECT template_id, sum(messages)::BIGINT AS messages, sum(senders)::BIGINT AS senders,
                         count(*) AS platforms, min(first_at) AS first_at, max(last_at) AS last_at
                  -- per (template, platform) first: cheaper than count(DISTINCT platform)
                  FROM (SELECT template_id, platform, sum(messages) AS messages, count(*) AS senders,
                               min(first_at) AS first_at, max(last_at) AS last_at
                        FROM {TABLE} GROUP BY template_id, platform)
                  GROUP BY template_id) t
            JOIN _tpl_cluster c ON c.template_id = t.template_id""",
        {"run_id": ctx.run_id},
    )
    for t in ("_tpl_raw", "_tpl_norm", "_tpl_text", "_tpl_label", "_tpl_cluster", "_tpl_map"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    comment_table(con, TABLE, TABLE_DOC, COLUMN_DOCS)
    comment_table(con, MESSAGE_TABLE, MESSAGE_DOC, MESSAGE_COLUMN_DOCS)
    comment_table(con, CLUSTER_TABLE, CLUSTER_DOC, CLUSTER_COLUMN_DOCS)
    n = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0]
    ctx.info("templates: %d (account, template) rows", n)
    return int(n)
