"""Fellegi–Sunter scoring of candidate pairs: comparison levels in SQL, m/u by EM in numpy.

Each comparison maps a pair of accounts to a small integer *level* (``-1`` = not comparable, e.g. one
side has no e-mail; it contributes weight 0). For level ``l`` of comparison ``k``,
``m = P(level | same person)`` and ``u = P(level | different people)``; the pair's match weight is

    M = log2(λ / (1 − λ)) + Σ_k log2(m_k,l / u_k,l),     probability = 2^M / (1 + 2^M)

where λ is the prior probability that two accounts drawn at random are the same person.

Estimation (:func:`estimate`): u from a deterministic sample of random account pairs and m from the
blocked candidate pairs, by expectation–maximisation. Both sets are scored with the current model in
every iteration: m is the posterior-weighted level distribution over the candidates (each comparison
weighted by the posterior that leaves its own evidence group out, so no comparison vouches for
itself); u of the levels blocking finds completely (shared rare e-mail / phone / device, equal
handles, shared name keys) is counted over the candidates by the method of moments — pairs at the
level minus its expected matches (m × expected matches), ÷ all non-matching pairs — which resolves u
far below what 10^5 random pairs can without letting a level vouch for itself; u of the other levels
is the (1 − posterior)-weighted distribution over the random pairs (so the few true matches among
random pairs do not make a shared value look common); λ = expected matches among candidates ÷ all
pairs (blocking keeps nearly all true pairs). Known links are fixed at posterior 1 (the training
signal). IP levels are sampled, not counted: households and offices share addresses. A shared device's
non-matches are counted directly, as Σ (1 − leave-group-out posterior) over its candidates, and the device
and the IP are one evidence group: the people of one household share both (see
:data:`COUNTED_NON_MATCHES`). The
``same_campaign`` level is neither: its count over all pairs follows from the campaign sizes
(:func:`level_totals`), so its u is that count by the same method of moments.

Term-frequency adjustment: a shared identifier's level is the bucket of how many accounts share the
value (2, ≤ 5, ≤ 20, more), so a NAT'd IP shared by hundreds of accounts gets the u of common values;
likewise a shared name key held by few accounts (``rare_name_accounts``) and an equal handle of nine
or more letters have levels of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from .._arrays import dense_rank
from .blocking import (
    ACCOUNTS,
    CONTACTS,
    IDENTS,
    NAME_KEYS,
    NAME_PAIRS,
    NAME_PARTS,
    TEMPLATE_SOLO,
    TEMPLATES,
    UNIT_PROFILES,
    LinkageSettings,
    activity_profiles,
    table_exists,
)

SEED_LINKS = "_lk_seed_links"
STRUCTURAL = "_lk_structural"
"""Pairs matched one-to-one from contacts by seed-and-extend (see seed_extend.structural_match)."""
KNOWN = "_lk_known"
"""Known same-person pairs (a, b) by account id."""


@dataclass(frozen=True)
class Comparison:
    """One comparison: its name, the SQL computing its level, and the level labels."""

    name: str
    sql: str
    labels: dict[int, str]


_KIND_BIT = {"email": 1, "phone": 2, "device": 4, "ip": 8}
"""Bit of each identifier kind in the per-account kind mask of the identifier comparisons."""
_IDENT_LABELS = {4: "shared_unique", 3: "shared_few", 2: "shared_some", 1: "shared_common", 0: "differ"}


IP_AFTER_DEVICE_SHARE = 5
"""The IP comparison is not comparable for a pair that shares a device held by at most this many accounts (the
device's ``shared_few`` level and above, which blocking finds completely).

The people behind one device live behind one line: a same-person pair that shares a device shares the IP
mostly, and a household that shares the family computer always does. So the IP adds next to nothing once
the device is shared, but its weight against random pairs (+10 to +13 bits) counted a household's home
twice: device and IP together gave a household pair +25 bits or more. The IP still counts where no device
is shared (a home line seen from two phones). Measured on the quality suite (3,000-account worlds with
households): pairwise precision 0.957 → 0.965 (easy), 0.959 → 0.970 (default), 0.960 → 0.984
(adversarial); household pairs put in one identity 7.6% → 4.6%, 7.4% → 4.8%, 5.6% → 1.2%; the cost, spam
recall 0.9882 → 0.9867 in the adversarial worlds (every other verdict metric equal)."""


def _ident_cmp(kind: str) -> Comparison:
    col = f"{kind}_share"
    guard = f"WHEN idw.device_share <= {IP_AFTER_DEVICE_SHARE} THEN -1\n             " if kind == "ip" else ""
    return Comparison(kind, f"""CASE {guard}WHEN {col} IS NOT NULL THEN
                 CASE WHEN {col} <= 2 THEN 4 WHEN {col} <= 5 THEN 3 WHEN {col} <= 20 THEN 2 ELSE 1 END
             WHEN ka.kinds & {_KIND_BIT[kind]} <> 0 AND kb.kinds & {_KIND_BIT[kind]} <> 0 THEN 0
             ELSE -1 END""", _IDENT_LABELS)


CAMPAIGN_INFRA_SHARE = 20
"""The campaign comparison is not comparable for pairs sharing a rare template or an identifier held by at most
this many accounts (the ``shared_some`` level and above); see :data:`COMPARISONS`."""

COMPARISONS: tuple[Comparison, ...] = (
    _ident_cmp("email"),
    _ident_cmp("phone"),
    _ident_cmp("device"),
    _ident_cmp("ip"),
    Comparison("handle_name", """CASE
             WHEN (A.handle_norm IS NULL OR B.handle_norm IS NULL)
                  AND (na.aid IS NULL OR nb.aid IS NULL) THEN -1
             WHEN A.handle_norm = B.handle_norm AND length(A.handle_norm) >= 9 THEN 9
             WHEN coalesce(ns.full_shared, 0) >= 2 AND coalesce(ks.keys_shared, 0) >= 2
                  AND (ks.key_df <= $rare OR coalesce(ps.pair_df, $rarepair + 1) <= $rarepair) THEN 8
             WHEN A.handle_norm = B.handle_norm THEN 7
             WHEN coalesce(ns.full_shared, 0) >= 2 AND coalesce(ks.keys_shared, 0) >= 2 THEN 6
             WHEN coalesce(ks.keys_shared, 0) >= 1 AND ks.key_df <= $rare THEN 5
             WHEN coalesce(ks.keys_shared, 0) >= 1 AND ks.key_df <= $keycap THEN 4
             WHEN coalesce(ks.keys_shared, 0) >= 1 THEN 3
             WHEN coalesce(ns.full_shared, 0) >= 1 THEN 2
             WHEN jaro_winkler_similarity(A.handle_norm, B.handle_norm) >= 0.85 THEN 1
             ELSE 0 END""", {9: "handle_equal_long", 8: "first_and_last_rare", 7: "handle_equal_short",
                             6: "first_and_last", 5: "part_and_initial_rare", 4: "part_and_initial",
                             3: "part_and_initial_common", 2: "one_part", 1: "similar_handle",
                             0: "different"}),
    Comparison("handle_digits", """CASE WHEN len(A.handle_digits) = 0 OR len(B.handle_digits) = 0
                  OR A.handle_digits IS NULL OR B.handle_digits IS NULL THEN -1
             WHEN len(list_intersect(A.handle_digits, B.handle_digits)) > 0 THEN 1
             ELSE 0 END""", {1: "shared_number", 0: "different_numbers"}),
    Comparison("template", """CASE WHEN ta.w IS NULL OR tb.w IS NULL THEN -1
             WHEN coalesce(ts.shared_w, 0) = 0 THEN 0
             WHEN ts.shared_w / (ta.w + tb.w - ts.shared_w) >= 0.5 THEN 3
             WHEN ts.shared_w / (ta.w + tb.w - ts.shared_w) >= 0.15 THEN 2
             ELSE 1 END""", {3: "jaccard_0.5", 2: "jaccard_0.15", 1: "some_shared", 0: "none_shared"}),
    Comparison("campaign", f"""CASE WHEN A.campaign IS NULL AND B.campaign IS NULL THEN -1
             WHEN coalesce(ts.shared_w, 0) > 0
                  OR least(idw.email_share, idw.phone_share, idw.device_share, idw.ip_share)
                     <= {CAMPAIGN_INFRA_SHARE} THEN -1
             WHEN (A.campaign IS NULL AND coalesce(A.messages_sent, 0) < $actmin)
                  OR (B.campaign IS NULL AND coalesce(B.messages_sent, 0) < $actmin) THEN -1
             WHEN A.campaign IS NULL OR B.campaign IS NULL THEN 0
             WHEN A.campaign <> B.campaign THEN 1
             ELSE 2 END""", {2: "same_campaign", 1: "different_campaigns", 0: "one_in_campaign"}),
    Comparison("activity", "p.activity", {3: "cosine_0.95", 2: "cosine_0.85", 1: "cosine_0.6", 0: "dissimilar"}),
    Comparison("contacts", """CASE WHEN ca.n IS NULL OR cb.n IS NULL THEN -1
             WHEN coalesce(cs.shared, 0) = 0 THEN 0
             WHEN cs.shared >= 4 AND cs.shared >= 0.3 * least(ca.n, cb.n) THEN 4
             WHEN cs.shared >= 2 AND cs.shared >= 0.3 * least(ca.n, cb.n) THEN 3
             WHEN cs.shared >= 2 THEN 2
             ELSE 1 END""", {4: "overlap_strong", 3: "overlap_most", 2: "overlap_some", 1: "overlap_one",
                             0: "none"}),
    Comparison("contact_match", """CASE WHEN ca.n IS NULL OR cb.n IS NULL OR sm.round = 0 THEN -1
             WHEN sm.a IS NOT NULL THEN 1 ELSE 0 END""", {1: "structural_match", 0: "no_match"}),
    Comparison("known_link", "CASE WHEN kl.a IS NOT NULL THEN 1 ELSE 0 END",
               {1: "declared", 0: "not_declared"}),
    Comparison("platform", "CASE WHEN A.platform = B.platform THEN 0 ELSE 1 END",
               {1: "cross_platform", 0: "same_platform"}),
    Comparison("creation", """CASE
             WHEN coalesce(A.first_at, A.created_at) IS NULL OR coalesce(B.first_at, B.created_at) IS NULL
                  OR A.last_at IS NULL OR B.last_at IS NULL THEN -1
             WHEN coalesce(B.created_at, B.first_at) >= A.last_at - INTERVAL 1 DAY
                  AND coalesce(B.created_at, B.first_at) <= A.last_at + INTERVAL 30 DAY THEN 2
             WHEN coalesce(A.created_at, A.first_at) >= B.last_at - INTERVAL 1 DAY
                  AND coalesce(A.created_at, A.first_at) <= B.last_at + INTERVAL 30 DAY THEN 2
             WHEN B.first_at > A.last_at OR A.first_at > B.last_at THEN 1
             ELSE 0 END""", {2: "successor", 1: "sequential", 0: "overlapping"}),
)
"""The comparisons of the model, in column order of the level matrix.

``campaign`` compares the accounts' campaigns (lockstep groups of one operator, from the campaigns stage):
both in the same one, in different ones, or only one in any. A persona's accounts on several platforms and
its re-registrations send its operator's campaigns, so "same campaign" is what separates them from the
namesakes that share their handle pattern in a large world (name similarity alone no longer beats the prior
there). Campaign membership, a shared rare template and shared operator infrastructure (proxy IPs, bot
devices) are one piece of evidence seen three ways: among *different* people they occur together (personas
of one operator share all three), so adding their weights would count the operator three times and link
an operator's personas to each other. The campaign comparison is therefore only made where the other two
say nothing: it is not comparable (-1) for a pair that shares a rare template or an identifier held by at
most :data:`CAMPAIGN_INFRA_SHARE` accounts, or when neither account is in a campaign. Nor is it when an
account outside every campaign sent fewer than ``activity_min_messages`` messages: a silent account (a
persona's re-registration that has not started yet) could not have been seen acting in lockstep, so its
missing campaign says nothing.
"""

N_LEVELS = [max(c.labels) + 1 for c in COMPARISONS]
KNOWN_INDEX = [c.name for c in COMPARISONS].index("known_link")


def ensure_seed_links(con: duckdb.DuckDBPyConnection) -> None:
    """Create the (empty) helper tables of the contact comparisons if missing."""
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {SEED_LINKS} (a INTEGER, b INTEGER)")
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {KNOWN} (a INTEGER, b INTEGER)")
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STRUCTURAL} (a INTEGER, b INTEGER, round INTEGER)")


DYNAMIC = ("contacts", "contact_match")
"""Comparisons that change between seed-and-extend rounds (they read the seed links); the others are
computed once per pair and cached in ``_lk_static_levels``."""
STATIC_LEVELS = "_lk_static_levels"
ACTIVITY_BOUNDS = (0.6, 0.85, 0.95)
"""Cosine similarity of hour-of-week profiles at which the activity level steps to 1, 2, 3."""


_TSHARED_BY_TEMPLATE = f"""
        SELECT x.aid AS a, y.aid AS b, sum(1.0 / log2(1 + x.accounts_with)) AS shared_w
        FROM {TEMPLATES} x JOIN {TEMPLATES} y ON y.template_id = x.template_id AND x.aid < y.aid
        SEMI JOIN p ON p.a = x.aid AND p.b = y.aid
        WHERE x.accounts_with <= $tcap AND x.accounts_with > 1
        GROUP BY ALL"""
_TSHARED_BY_PAIR = f"""
        SELECT p.a, p.b, sum(1.0 / log2(1 + x.accounts_with)) AS shared_w
        FROM p JOIN {TEMPLATES} x ON x.aid = p.a
        JOIN {TEMPLATES} y ON y.aid = p.b AND y.template_id = x.template_id
        WHERE x.accounts_with <= $tcap AND x.accounts_with > 1
        GROUP BY ALL"""


def static_sql(pairs: str, by_pair: bool = False, name_pairs: bool = True) -> str:
    """SQL selecting ``a, b`` and the level of every comparison not in :data:`DYNAMIC`.

    ``pairs`` must hold distinct ``(a, b, activity)`` rows: the activity level is computed in numpy
    (:func:`activity_levels`) because joining two 168-value profiles onto every pair costs more than
    all the other comparisons together. Named parameters ``$tcap``, ``$rare``, ``$actmin``, ``$keycap``.
    ``by_pair`` computes the shared templates from the pairs' template lists (cheaper for a few pairs)
    instead of joining every rare template's accounts (cheaper for millions of pairs).
    ``name_pairs=False`` skips the full-name pair join (``$rarepair`` is then unused: the
    ``first_and_last_rare`` level rests on name keys only).
    """
    tshared = _TSHARED_BY_PAIR if by_pair else _TSHARED_BY_TEMPLATE
    pshared = f"""
        SELECT p.a, p.b, min(x.accounts_with) AS pair_df
        FROM p JOIN {NAME_PAIRS} x ON x.aid = p.a
        JOIN {NAME_PAIRS} y ON y.aid = p.b AND y.p1 = x.p1 AND y.p2 = x.p2
        GROUP BY ALL""" if name_pairs else "SELECT NULL::INTEGER AS a, NULL::INTEGER AS b, NULL::BIGINT AS pair_df"
    levels = ",\n  ".join(f"({c.sql})::TINYINT AS {c.name}" for c in COMPARISONS if c.name not in DYNAMIC)
    kinds = ", ".join(f"min(share) FILTER (WHERE kind = '{k}') AS {k}_share"
                      for k in ("email", "phone", "device", "ip"))
    return f"""
    WITH p AS (SELECT a, b, activity FROM {pairs}),
    ident AS (
        SELECT p.a, p.b, x.kind, min(x.accounts_sharing) AS share
        FROM p JOIN {IDENTS} x ON x.aid = p.a
        JOIN {IDENTS} y ON y.aid = p.b AND y.vid = x.vid
        GROUP BY ALL
    ),
    idw AS (SELECT a, b, {kinds} FROM ident GROUP BY a, b),
    kinds AS (SELECT aid, bit_or(CASE kind {" ".join(f"WHEN '{k}' THEN {v}" for k, v in _KIND_BIT.items())}
                                 ELSE 0 END) AS kinds
              FROM {IDENTS} GROUP BY aid),
    tw AS (SELECT aid, sum(w) AS w
           FROM (SELECT aid, 1.0 / log2(1 + accounts_with) AS w FROM {TEMPLATES} WHERE accounts_with <= $tcap
                 UNION ALL  -- one-account templates weigh 1 / log2(2) = 1 each
                 SELECT aid, solo::DOUBLE FROM {TEMPLATE_SOLO} WHERE $tcap >= 1)
           GROUP BY aid),
    tshared AS ({tshared}),
    nhas AS (SELECT DISTINCT aid FROM {NAME_PARTS} WHERE "full"),
    nshared AS (
        SELECT p.a, p.b, count(*) FILTER (WHERE x."full") AS full_shared
        FROM p JOIN {NAME_PARTS} x ON x.aid = p.a JOIN {NAME_PARTS} y ON y.aid = p.b AND y.pid = x.pid
        GROUP BY ALL
    ),
    kshared AS (
        SELECT p.a, p.b, count(*) AS keys_shared, min(x.accounts_with) AS key_df
        FROM p JOIN {NAME_KEYS} x ON x.aid = p.a JOIN {NAME_KEYS} y ON y.aid = p.b AND y.kid = x.kid
        GROUP BY ALL
    ),
    pshared AS ({pshared}),
    acc AS (SELECT aid, platform, handle_norm, handle_digits, created_at, first_at, last_at, campaign,
                   messages_sent FROM {ACCOUNTS})
    SELECT p.a, p.b,
      {levels}
    FROM p
    JOIN acc A ON A.aid = p.a
    JOIN acc B ON B.aid = p.b
    LEFT JOIN idw ON idw.a = p.a AND idw.b = p.b
    LEFT JOIN kinds ka ON ka.aid = p.a
    LEFT JOIN kinds kb ON kb.aid = p.b
    LEFT JOIN tw ta ON ta.aid = p.a
    LEFT JOIN tw tb ON tb.aid = p.b
    LEFT JOIN tshared ts ON ts.a = p.a AND ts.b = p.b
    LEFT JOIN nhas na ON na.aid = p.a
    LEFT JOIN nhas nb ON nb.aid = p.b
    LEFT JOIN nshared ns ON ns.a = p.a AND ns.b = p.b
    LEFT JOIN kshared ks ON ks.a = p.a AND ks.b = p.b
    LEFT JOIN pshared ps ON ps.a = p.a AND ps.b = p.b
    LEFT JOIN (SELECT DISTINCT a, b FROM {KNOWN}) kl ON kl.a = p.a AND kl.b = p.b
    """


def comparison_sql(pairs: str) -> str:
    """SQL selecting ``a, b``, ``shared`` and one level column per comparison for the (distinct) pairs in
    ``pairs``.

    The static levels come from ``_lk_static_levels`` (every pair of ``pairs`` must be in it, see
    :func:`compute_levels`); the :data:`DYNAMIC` contact comparisons are computed from the current seed
    links. Named parameter ``$cap`` (contact degree cap).
    """
    cols = ",\n      ".join(f"({c.sql})::TINYINT AS {c.name}" if c.name in DYNAMIC else f"st.{c.name}"
                           for c in COMPARISONS)
    return f"""
    WITH p AS (SELECT a, b FROM {pairs}),
    cdeg AS (SELECT x AS aid, count(*) AS n FROM {CONTACTS} GROUP BY x),
    cmap AS (SELECT a AS x, b AS y FROM {SEED_LINKS} UNION SELECT b, a FROM {SEED_LINKS}),
    cshared AS (
        SELECT p.a, p.b, count(DISTINCT cx.y)::BIGINT AS shared
        FROM p JOIN (SELECT x, y FROM {CONTACTS} WHERE contact_degree <= $cap) cx ON cx.x = p.a
        JOIN cmap m ON m.x = cx.y
        JOIN (SELECT x, y FROM {CONTACTS} WHERE contact_degree <= $cap) cy ON cy.x = p.b AND cy.y = m.y
        WHERE cx.y <> p.b AND cy.y <> p.a
        GROUP BY ALL
    )
    SELECT p.a, p.b, coalesce(cs.shared, 0) AS shared,
      {cols}
    FROM p
    JOIN {STATIC_LEVELS} st ON st.a = p.a AND st.b = p.b
    LEFT JOIN cdeg ca ON ca.aid = p.a
    LEFT JOIN cdeg cb ON cb.aid = p.b
    LEFT JOIN cshared cs ON cs.a = p.a AND cs.b = p.b
    LEFT JOIN (SELECT a, b, min(round) AS round FROM {STRUCTURAL} GROUP BY a, b) sm
           ON sm.a = p.a AND sm.b = p.b
    """


def activity_levels(a: np.ndarray, b: np.ndarray, row: np.ndarray, prof: np.ndarray,
                    chunk: int = 8192) -> np.ndarray:
    """Activity level of every pair: cosine similarity of the two hour-of-week profiles, bucketed at
    :data:`ACTIVITY_BOUNDS`; -1 when either account has too few messages (not in ``row``).

    ``prof`` holds unit-length profiles (float64). Similarities are computed in float32 in cache-sized
    chunks and recomputed in float64 where they fall within 1e-4 of a bound, so the levels are those of
    the exact computation.
    """
    out = np.full(len(a), -1, dtype=np.int8)
    ra, rb = row[a], row[b]
    ok = np.flatnonzero((ra >= 0) & (rb >= 0))
    p32 = prof.astype(np.float32)
    bounds = np.asarray(ACTIVITY_BOUNDS)
    for i in range(0, len(ok), chunk):
        sel = ok[i:i + chunk]
        cos = np.einsum("ij,ij->i", p32[ra[sel]], p32[rb[sel]]).astype(np.float64)
        near = np.flatnonzero(np.abs(cos[:, None] - bounds).min(axis=1) < 1e-4)
        if len(near):
            cos[near] = np.einsum("ij,ij->i", prof[ra[sel[near]]], prof[rb[sel[near]]])
        cos[np.isnan(cos)] = -1.0  # an all-zero profile is similar to nothing (as in SQL)
        out[sel] = np.searchsorted(bounds, cos, side="right").astype(np.int8)
    return out


SMALL_PAIR_SET = 300_000
"""Up to this many new pairs, shared templates are counted pair by pair (see static_sql)."""
def forget_profiles(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the cached activity profiles of ``con`` (at the end of the stage)."""
    UNIT_PROFILES.pop(id(con), None)


def compute_levels(con: duckdb.DuckDBPyConnection, pairs: str, out: str, settings: LinkageSettings) -> int:
    """Create table ``out`` (a, b, shared, one TINYINT level per comparison) for the pairs in ``pairs``.

    Static levels are computed only for pairs not yet in ``_lk_static_levels`` (seed-and-extend rounds
    re-score the same candidates and random pairs; only the contact comparisons change).
    """
    ensure_seed_links(con)
    cols = ", ".join(f"{c.name} TINYINT" for c in COMPARISONS if c.name not in DYNAMIC)
    if not table_exists(con, STATIC_LEVELS):
        con.execute(f"CREATE TEMP TABLE {STATIC_LEVELS} (a INTEGER, b INTEGER, {cols})")
    new = con.execute(f"SELECT DISTINCT a, b FROM {pairs} p WHERE NOT EXISTS "
                      f"(SELECT 1 FROM {STATIC_LEVELS} s WHERE s.a = p.a AND s.b = p.b) ORDER BY a, b"
                      ).fetchnumpy()
    a = np.asarray(new["a"], dtype=np.int32)
    b = np.asarray(new["b"], dtype=np.int32)
    if len(a):
        if id(con) not in UNIT_PROFILES:  # left by prepare_peak_hours, else read once per run
            UNIT_PROFILES[id(con)] = activity_profiles(con, settings.activity_min_messages, unit=True)
        row, prof = UNIT_PROFILES[id(con)]
        con.register("_lk_new_pairs", pa.table({"a": a, "b": b,
                                                "activity": activity_levels(a, b, row, prof)}))
        by_pair = len(a) <= SMALL_PAIR_SET
        sql = static_sql("_lk_new_pairs", by_pair, settings.rare_pair_accounts > 0)
        con.execute(f"INSERT INTO {STATIC_LEVELS} {sql}",
                    {"tcap": settings.template_compare_cap, "rare": settings.rare_name_accounts,
                     "rarepair": settings.rare_pair_accounts, "actmin": settings.activity_min_messages,
                     "keycap": settings.name_key_cap})
        con.unregister("_lk_new_pairs")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS {comparison_sql(pairs)} ORDER BY a, b",
                {"cap": settings.contact_degree_cap})
    return con.execute(f"SELECT count(*) FROM {out}").fetchall()[0][0]


def sample_random_pairs(con: duckdb.DuckDBPyConnection, n_accounts: int, n_pairs: int, seed: int,
                        out: str = "_lk_random") -> int:
    """Write ``n_pairs`` distinct random account pairs (a < b) to table ``out``, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    total = n_accounts * (n_accounts - 1) // 2
    n_pairs = int(min(n_pairs, total))
    if n_pairs <= 0:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {out} (a INTEGER, b INTEGER)")
        return 0
    a = rng.integers(1, n_accounts + 1, size=2 * n_pairs + 16, dtype=np.int64)
    b = rng.integers(1, n_accounts + 1, size=2 * n_pairs + 16, dtype=np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keep = lo < hi
    key = np.unique(lo[keep] * (n_accounts + 1) + hi[keep])
    key = rng.permutation(key)[:n_pairs]
    tbl = pa.table({"a": (key // (n_accounts + 1)).astype(np.int32),
                    "b": (key % (n_accounts + 1)).astype(np.int32)})
    con.register("_lk_random_arrow", tbl)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT * FROM _lk_random_arrow")
    con.unregister("_lk_random_arrow")
    return len(key)


def level_matrix(con: duckdb.DuckDBPyConnection, table: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, levels) arrays of a level table; levels is int8 (pairs × comparisons)."""
    cols = con.sql(f"SELECT * FROM {table} ORDER BY a, b").fetchnumpy()
    g = np.column_stack([np.asarray(cols[c.name], dtype=np.int8) for c in COMPARISONS]) if len(cols["a"]) \
        else np.zeros((0, len(COMPARISONS)), dtype=np.int8)
    return np.asarray(cols["a"]), np.asarray(cols["b"]), g


@dataclass
class FSModel:
    """A fitted Fellegi–Sunter model: per comparison arrays of m and u over its levels, and λ."""

    m: list[np.ndarray]
    u: list[np.ndarray]
    lam: float
    iterations: int = 0
    converged: bool = False

    def weights(self) -> list[np.ndarray]:
        """log2(m/u) per comparison and level."""
        return [np.log2(m / u) for m, u in zip(self.m, self.u, strict=True)]

    @property
    def prior_weight(self) -> float:
        return float(np.log2(self.lam / (1.0 - self.lam)))

    def level_weights(self, g: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Weight of each pair's level for each comparison (0 where not comparable).

        ``idx`` is ``flat_index(g)`` when the caller has it already.
        """
        wvec = np.concatenate([*self.weights(), [0.0]])
        return wvec[flat_index(g) if idx is None else idx]

    def match_weight(self, g: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Total match weight M (bits) of each pair."""
        return self.prior_weight + self.level_weights(g, idx).sum(axis=1)


OFFSETS = np.concatenate([[0], np.cumsum(N_LEVELS)[:-1]]).astype(np.int64)
TOTAL_LEVELS = int(sum(N_LEVELS))


def flat_index(g: np.ndarray) -> np.ndarray:
    """Index of each (pair, comparison) level into the concatenated level vector; missing → the last slot."""
    idx = g.astype(np.int64) + OFFSETS
    idx[g < 0] = TOTAL_LEVELS
    return idx


def _dists(idx: np.ndarray, w: np.ndarray, pseudo: float) -> list[np.ndarray]:
    """Per comparison, the w-weighted level distribution (with ``pseudo`` counts per level)."""
    counts = np.bincount(idx.ravel(), weights=np.repeat(w, idx.shape[1]), minlength=TOTAL_LEVELS + 1)
    counts = counts[:TOTAL_LEVELS] + pseudo
    out = np.split(counts, OFFSETS[1:])
    return [c / c.sum() for c in out]


def probability(match_weight: np.ndarray) -> np.ndarray:
    """2^M / (1 + 2^M), computed stably."""
    return 1.0 / (1.0 + np.exp2(-np.clip(match_weight, -200, 200)))


def _known_link_dist(m: np.ndarray, n_random: int) -> tuple[np.ndarray, np.ndarray]:
    """m and u of the ``known_link`` comparison (levels not_declared, declared).

    u is fixed (one in 2 × random pairs: declarations between different people are rare); m is EM's
    share of declared pairs among the expected matches, capped at one half so that the declared pairs
    (EM's training signal) never make "not declared" evidence against a match on their own.
    """
    u_declared = 1.0 / (2.0 * max(n_random, 1))
    declared = float(min(m[1], 0.5))
    return np.array([1.0 - declared, declared]), np.array([1.0 - u_declared, u_declared])


EVIDENCE_GROUPS = {"device": "home", "ip": "home",
                   "contacts": "contacts", "contact_match": "contacts", "handle_digits": "handle",
                   "handle_name": "handle", "template": "operator", "campaign": "operator"}
"""Comparisons that read the same evidence; the m-step leaves a whole group out (see estimate)."""
_GROUP_OF = [EVIDENCE_GROUPS.get(c.name, c.name) for c in COMPARISONS]
_GROUP_MEMBERS = {g: [k for k, x in enumerate(_GROUP_OF) if x == g] for g in dict.fromkeys(_GROUP_OF)}
FULL_POSTERIOR = ("campaign",)
"""Comparisons whose m the m-step estimates with the full posterior (plain EM), not the leave-group-out one.

The leave-out guards against a level vouching for itself by shrinking its own u or raising its own m
until a cluster of correlated non-matches becomes the match class. The campaign comparison's strong level
cannot do that: its u is the exact same-campaign pair count (:func:`level_totals`), not a sample or a count
over the candidates, and the personas of one operator, the correlated non-matches it could capture, mostly
share a rare template or operator infrastructure and so are not comparable on it. What the leave-out costs
it is large: without the campaign, the many namesake pairs that rest on handle similarity alone sit near
posterior 0.5 in a large world, and since those are mostly a spammer and an honest account, or spammers of
different operators, they would make "one in a campaign" and "different campaigns" look like what matches
usually show. Measured on a 147,000-account generated world: m of "one in a campaign" 0.47 with the
leave-out, 0.003 with the full posterior, against 0.01 for the truly same-person candidate pairs (a
15,000-account world: 0.009 against 0.02)."""
_FULL_POSTERIOR = [k for k, c in enumerate(COMPARISONS) if c.name in FULL_POSTERIOR]


def _leave_group_out(lw: np.ndarray, total: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Posterior of every pair computed without each comparison's evidence group (pairs × comparisons).

    Plain EM lets a comparison vouch for itself: pairs that agree on it look like matches, so its m
    rises, so they look more like matches. A cluster of correlated non-matches (friends who share
    contacts, personas of one operator) can then become "the match class". Estimating comparison k's
    m with the posterior computed *without* k's group breaks that loop; under conditional
    independence it estimates the same quantity.
    """
    out = np.empty(lw.shape, dtype=np.float64)
    for ks in _GROUP_MEMBERS.values():
        p = probability(total - lw[:, ks].sum(axis=1))
        p[fixed] = 1.0
        out[:, ks] = p[:, None]
    if _FULL_POSTERIOR:  # see FULL_POSTERIOR
        p = probability(total)
        p[fixed] = 1.0
        out[:, _FULL_POSTERIOR] = p[:, None]
    return out


def _m_step(idx: np.ndarray, p_loo: np.ndarray, pseudo: float = 0.01,
            count: np.ndarray | None = None) -> list[np.ndarray]:
    """m of every comparison: its level distribution weighted by the leave-group-out posteriors.

    ``count`` is the number of pairs each row of ``idx`` stands for (None: one each).
    """
    m = []
    for k in range(idx.shape[1]):
        w = p_loo[:, k] if count is None else p_loo[:, k] * count
        counts = np.bincount(idx[:, k], weights=w, minlength=TOTAL_LEVELS + 1)
        c = counts[OFFSETS[k]:OFFSETS[k] + N_LEVELS[k]] + pseudo
        m.append(c / c.sum())
    return m


COMPLETE_LEVELS: dict[str, tuple[int, ...]] = {
    "email": (4, 3), "phone": (4, 3), "device": (4, 3),
    "handle_name": (9, 8, 7, 6, 5, 4),
}
"""Levels whose pairs the blocking rules propose (nearly) all of: shared e-mail / phone / device held by
≤ 5 accounts (identifier rule), equal normalised handles (handle rule) and shared name keys held by at most
``name_key_cap`` accounts (name_key rule). Their u is counted over the candidates instead of sampled (see
:func:`_u_step`). A shared name key held by more accounts (``part_and_initial_common``) is not blocked, so
counting it over the candidates would see a sliver of its pairs and make it look rare: its count comes
from :func:`level_totals` instead."""
_COMPLETE = np.zeros(TOTAL_LEVELS + 1, dtype=bool)
for _k, _c in enumerate(COMPARISONS):
    for _level in COMPLETE_LEVELS.get(_c.name, ()):
        _COMPLETE[OFFSETS[_k] + _level] = True


COUNTED_NON_MATCHES = ("device",)
"""Comparisons whose complete levels count their non-matching candidate pairs directly (see :func:`_u_step`).

A shared device is the one piece of evidence whose non-matches are mostly one kind of pair: people of one
household, who share the family computer, the home IP and often a last name, friends and a time zone. The
method of moments takes the matches at a level to be m_l × M, with m_l a share of the leave-group-out
posterior mass, i.e. of the pairs that look like one person *without* the evidence. Those are the pairs
with other evidence, and among pairs sharing a device the households have more of it (a family name,
shared friends) than the same-person pairs do, so m_l comes out several times too high, m_l × M exceeds
the pairs at the level and u falls to its floor: on a 20,000-account world with households, u of a device
shared by at most five accounts was 4.3e-8 against a true 2.7e-6 (six bits too much weight) and 3% of the
household pairs were put in one identity. Counting the level's non-matches as Σ (1 − leave-group-out
posterior) over its candidates gives 2.7e-6; the device and the IP are one evidence group
(:data:`EVIDENCE_GROUPS`), so a household's home IP cannot vouch for its shared device."""
_COUNTED_COLUMNS = [k for k, c in enumerate(COMPARISONS) if c.name in COUNTED_NON_MATCHES]
_COUNTED_NON_MATCHES = np.zeros(TOTAL_LEVELS + 1, dtype=bool)
for _k in _COUNTED_COLUMNS:
    _COUNTED_NON_MATCHES[OFFSETS[_k]:OFFSETS[_k] + N_LEVELS[_k]] = _COMPLETE[OFFSETS[_k]:OFFSETS[_k] + N_LEVELS[_k]]


def _non_matching_counts(idx: np.ndarray, p_loo: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Σ count × (1 − leave-group-out posterior) of the candidate patterns at each level of the
    :data:`COUNTED_NON_MATCHES` comparisons (concatenated levels; 0 elsewhere)."""
    out = np.zeros(TOTAL_LEVELS + 1)
    for k in _COUNTED_COLUMNS:
        out += np.bincount(idx[:, k], weights=(1.0 - p_loo[:, k]) * count, minlength=TOTAL_LEVELS + 1)
    return out


def _u_step(idx_b: np.ndarray, w_b: np.ndarray | None, idx_r: np.ndarray, w_r: np.ndarray,
            all_pairs: float, pseudo: float = 0.5, m: list[np.ndarray] | None = None,
            matches: float = 0.0, totals: np.ndarray | None = None,
            non_matching: np.ndarray | None = None) -> list[np.ndarray]:
    """u of every comparison level.

    Levels in :data:`COMPLETE_LEVELS` occur (almost) only among the candidates, so their u is counted,
    not sampled: a random sample of 10^5 pairs cannot resolve u ≈ 10^-7 (a shared rare name among
    20,000 accounts); the count can. By the method of moments, the n_l candidate pairs at level l are
    m_l · M matches and u_l · (T − M) non-matches (M expected matches, T all pairs), so
    u_l = (n_l − m_l · M) / (T − M), floored at 1% of n_l. m_l comes from the leave-group-out m-step,
    so no level shrinks its own u (weighting the count by 1 − posterior would: pairs at a level look
    like matches → u shrinks → they look more like matches; namesakes then become one person). The
    other levels share the remaining probability in proportion to the (non-match-weighted) random-pair
    sample ``w_r``. ``w_b`` weights candidate pairs (None: all 1).

    ``totals`` (one entry per level of the concatenated level vector, NaN = unknown) gives, for levels
    whose number of pairs among *all* account pairs is known without enumerating them (pairs in the same
    campaign: Σ n_c (n_c − 1) / 2), that count; it takes the place of the candidate count n_l above.

    ``non_matching`` (concatenated levels, from :func:`_non_matching_counts`) gives, for the complete levels
    of :data:`COUNTED_NON_MATCHES`, the non-matching pairs counted directly: u_l = that ÷ (T − M), the count
    kept between 1% of n_l and min(n_l, T − M). Where the complete levels' u add up to more than 1 (a tiny
    world in which most pairs share one value), they are scaled to leave the other levels 1e-9.
    """
    k = idx_b.shape[1]
    counts = np.zeros(TOTAL_LEVELS + 1)
    for j in range(k):
        counts += np.bincount(idx_b[:, j], weights=None if w_b is None else w_b[:, j],
                              minlength=TOTAL_LEVELS + 1)
    rand = np.bincount(idx_r.ravel(), weights=np.repeat(w_r, k), minlength=TOTAL_LEVELS + 1)
    complete = _COMPLETE[:TOTAL_LEVELS].copy()
    if totals is not None:
        known = ~np.isnan(totals[:TOTAL_LEVELS])
        counts[:TOTAL_LEVELS][known] = totals[:TOTAL_LEVELS][known]
        complete |= known
    non_matches = max(all_pairs - matches, 1.0)
    out = []
    for j in range(k):
        sl = slice(OFFSETS[j], OFFSETS[j] + N_LEVELS[j])
        comp = complete[sl]
        n_l = counts[sl]
        expected_matches = m[j] * matches if m is not None else 0.0
        non_matching_l = np.maximum(n_l - expected_matches, 0.01 * n_l)
        if non_matching is not None:  # counted, within the same bounds: 1% of the level's pairs, and all of them
            counted = np.clip(non_matching[sl], 0.01 * n_l, np.minimum(n_l, non_matches))
            non_matching_l = np.where(_COUNTED_NON_MATCHES[sl], counted, non_matching_l)
        exact = np.where(comp, (non_matching_l + 0.01) / non_matches, 0.0)
        if exact.sum() > 1.0 - 1e-9:
            exact *= (1.0 - 1e-9) / exact.sum()
        rest = np.where(comp, 0.0, rand[sl] + pseudo)
        out.append(exact + rest / rest.sum() * max(1.0 - exact.sum(), 1e-9))
    return out


def compress_patterns(g: np.ndarray, flag: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of a level matrix (plus an optional flag column) with their counts.

    Every EM quantity of a pair is a function of its level pattern (and whether it is a known link), so
    EM over the few thousand distinct patterns weighted by their counts is the same computation as EM
    over the (up to millions of) pairs. Returns (patterns, flag per pattern, count per pattern, the
    pattern index of every input row).
    """
    g = np.asarray(g, dtype=np.int8)
    n, k = g.shape
    if flag is None:
        flag = np.zeros(n, dtype=bool)
    if n == 0:
        return g.copy(), flag.copy(), np.zeros(0), np.zeros(0, dtype=np.int64)
    # levels are -1..14: four bits each; k <= 15 comparisons plus the flag fit in an int64 key
    key = flag.astype(np.int64)
    for j in range(k):
        key = (key << 4) | (g[:, j].astype(np.int64) + 1)
    # patterns in key order, as np.unique numbers them (on both cores); any row of a pattern represents
    # it, since every row with the same key has the same levels and flag
    inverse = dense_rank(key)
    counts = np.bincount(inverse)
    rep = np.empty(len(counts), dtype=np.int64)
    rep[inverse] = np.arange(n, dtype=np.int64)
    return g[rep], flag[rep], counts.astype(np.float64), inverse


def estimate(g_blocked: np.ndarray, g_random: np.ndarray, fixed_match: np.ndarray, total_pairs: int,
             max_iter: int = 40, tol: float = 1e-5, level_totals: np.ndarray | None = None) -> FSModel:
    """Fit m, u and λ by expectation–maximisation (see the module docstring).

    Runs over the distinct level patterns weighted by their counts (:func:`compress_patterns`), which
    gives the same fit as iterating over every pair at a fraction of the cost.

    Parameters
    ----------
    g_blocked : int8 array (candidate pairs × comparisons) of levels, -1 = not comparable.
    g_random : the same for random pairs (estimates u).
    fixed_match : bool array over candidate pairs; True = known link, posterior fixed at 1.
    total_pairs : number of all account pairs, N (N − 1) / 2 (scales λ).
    level_totals : optional exact level counts over all pairs (see :func:`_u_step` and
        :func:`level_totals`).
    """
    assert max(N_LEVELS) <= 15 and len(N_LEVELS) <= 15
    n_random = len(g_random)
    n_blocked = len(g_blocked)
    g_blocked, fixed_match, cnt_b, _ = compress_patterns(g_blocked, np.asarray(fixed_match, dtype=bool))
    g_random, _, cnt_r, _ = compress_patterns(g_random)
    idx_b, idx_r = flat_index(g_blocked), flat_index(g_random)
    w_count = np.broadcast_to(cnt_b[:, None], idx_b.shape)
    # u starts from raw counts (complete levels) and the random pairs; m from the known links.
    u = _u_step(idx_b, w_count, idx_r, cnt_r, max(total_pairs, 1), totals=level_totals)
    n_fixed = float(cnt_b[fixed_match].sum())
    if n_fixed >= 10:
        # start from the level distribution of the known same-person pairs (anchors the match class)
        m = _dists(idx_b[fixed_match], cnt_b[fixed_match], 0.5)
    else:
        m = [np.exp(np.arange(n, dtype=np.float64)) / np.exp(np.arange(n, dtype=np.float64)).sum()
             for n in N_LEVELS]
    lam = min(0.5, max(1.0, 0.1 * n_blocked) / max(total_pairs, 1))
    m[KNOWN_INDEX], u[KNOWN_INDEX] = _known_link_dist(np.array([0.5, 0.5]), n_random)
    model = FSModel(m, u, lam)
    p_prev = None
    for it in range(1, max_iter + 1):
        lw = model.level_weights(g_blocked, idx_b)
        total = model.prior_weight + lw.sum(axis=1)
        p = probability(total)
        p[fixed_match] = 1.0
        pr = probability(model.match_weight(g_random, idx_r))
        p_loo = _leave_group_out(lw, total, fixed_match)
        m = _m_step(idx_b, p_loo, count=cnt_b)
        u = _u_step(idx_b, w_count, idx_r, (1.0 - pr) * cnt_r, max(total_pairs, 1), m=m,
                    matches=float((p * cnt_b).sum()), totals=level_totals,
                    non_matching=_non_matching_counts(idx_b, p_loo, cnt_b))
        m[KNOWN_INDEX], u[KNOWN_INDEX] = _known_link_dist(m[KNOWN_INDEX], n_random)
        lam = float(np.clip((p * cnt_b).sum() / max(total_pairs, 1), 1e-12, 0.5))
        model = FSModel(m, u, lam, iterations=it)
        if p_prev is not None and np.max(np.abs(p - p_prev), initial=0.0) < tol:
            model.converged = True
            break
        p_prev = p
    return model


def level_totals(con: duckdb.DuckDBPyConnection, settings: LinkageSettings) -> np.ndarray:
    """Levels whose count over all account pairs follows from group sizes (NaN elsewhere), for :func:`estimate`.

    - ``campaign`` ``same_campaign``: pairs of accounts in one campaign, Σ n_c (n_c − 1) / 2 over campaigns
      (an upper bound: the level also excludes pairs sharing a rare template or identifier). Sampling it
      would not do: a few tens of thousands of same-campaign pairs among 10^10 give 100,000 random pairs
      a handful of hits, and the weight of the level would swing by bits from one sample to the next.
    - ``handle_name`` ``part_and_initial_common``: pairs sharing a name key held by more than
      ``name_key_cap`` accounts, Σ n_k (n_k − 1) / 2 over those keys (an upper bound: a pair sharing two
      such keys counts twice, and pairs at the higher name levels are in it). Blocking skips these keys,
      so the candidates hold only the few such pairs another rule proposed.
    """
    out = np.full(TOTAL_LEVELS + 1, np.nan)
    names = [c.name for c in COMPARISONS]
    same = con.execute(f"SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM "
                       f"(SELECT count(*) AS n FROM {ACCOUNTS} WHERE campaign IS NOT NULL GROUP BY campaign)"
                       ).fetchall()[0][0]
    out[OFFSETS[names.index("campaign")] + 2] = float(same)
    common = con.execute(f"SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM "
                         f"(SELECT any_value(accounts_with) AS n FROM {NAME_KEYS} GROUP BY kid) WHERE n > ?",
                         [settings.name_key_cap]).fetchall()[0][0]
    out[OFFSETS[names.index("handle_name")] + 3] = float(common)
    return out


def model_rows(model: FSModel) -> list[tuple[str, str, int, float, float, float]]:
    """(comparison, level label, level, m, u, weight) rows, plus the prior λ row."""
    rows = [("prior", "lambda", 0, model.lam, None, model.prior_weight)]
    for c, m, u, w in zip(COMPARISONS, model.m, model.u, model.weights(), strict=True):
        for level in sorted(c.labels, reverse=True):
            rows.append((c.name, c.labels[level], level, float(m[level]), float(u[level]), float(w[level])))
    return rows
