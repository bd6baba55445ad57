"""Seed-and-extend: candidate pairs and structural matches from contacts that are already linked.

After a first scoring, pairs that are the same person *without* contact evidence (probability ≥
``seed_threshold`` from the other comparisons) plus the known links form the *seed* pairs. Two accounts
whose contacts map onto each other through seeds (``a`` talks to ``x``, ``b`` talks to ``y``, and
``x``–``y`` is a seed) may be the same person too (Narayanan & Shmatikov, 2009).

- :func:`contact_overlap_sql` proposes such pairs (the ``contact_overlap`` blocking rule); the scoring
  model's ``contacts`` comparison weighs how many contacts they share.
- :func:`structural_match` runs one-to-one percolation matching from the seeds — each round accepts the
  pairs that are each other's unique best partner by shared matched contacts, then repeats with them
  as further seeds — and the ``contact_match`` comparison records whether a pair was matched so.

Contacts are reciprocated direct-message partners; every round is one set-wise SQL statement. The EM
decides how much contact evidence is worth: on the Douban networks it carries everything, on a world
whose people keep different friends per platform it is worth nothing.
"""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from .blocking import ACCOUNTS, CONTACTS, RULES, LinkageSettings, refresh_candidates
from .scoring import SEED_LINKS, STRUCTURAL

log = logging.getLogger("reputation")

CONTACT_RULE = "contact_overlap"
CONTACT_RULE_ORDER = len(RULES)
MAX_PARTNERS = 10
"""Contact-overlap candidates kept per account (the best by shared linked contacts)."""


def contact_overlap_sql() -> str:
    """Pairs sharing at least ``$min_shared`` contacts mapped onto each other by seed links.

    Named parameters: ``$cap`` (contacts with more partners are ignored) and ``$min_shared``. Each
    account keeps at most ``MAX_PARTNERS`` such pairs (those with the most shared contacts).
    """
    return f"""
        WITH c AS (SELECT x, y FROM {CONTACTS} WHERE contact_degree <= $cap),
        pq AS (
            SELECT least(c1.x, c2.x) AS a, greatest(c1.x, c2.x) AS b, count(DISTINCT (s.a, s.b)) AS n
            FROM {SEED_LINKS} s JOIN c c1 ON c1.y = s.a JOIN c c2 ON c2.y = s.b
            WHERE c1.x <> c2.x
            GROUP BY ALL
        ), ranked AS (
            SELECT a, b, n,
                   row_number() OVER (PARTITION BY a ORDER BY n DESC, b) AS ra,
                   row_number() OVER (PARTITION BY b ORDER BY n DESC, a) AS rb
            FROM pq WHERE n >= $min_shared
        )
        SELECT a, b FROM ranked WHERE ra <= {MAX_PARTNERS} AND rb <= {MAX_PARTNERS}
    """


def set_seed_links(con: duckdb.DuckDBPyConnection, select_sql: str, params: list | dict | None = None) -> int:
    """Replace the seed links with the (a, b) pairs selected by ``select_sql``; returns their count."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SEED_LINKS} AS SELECT DISTINCT a, b FROM ({select_sql})",
                params or [])
    return con.execute(f"SELECT count(*) FROM {SEED_LINKS}").fetchall()[0][0]


def extend(con: duckdb.DuckDBPyConnection, settings: LinkageSettings) -> int:
    """Add one round of contact-overlap pairs to the candidates; returns the new candidate total."""
    structural_match(con, f"SELECT a, b FROM {SEED_LINKS}", settings)
    con.execute(f"INSERT INTO _lk_rule_pairs SELECT $rule, $order, a, b FROM ({contact_overlap_sql()}) "
                f"UNION SELECT $rule, $order, a, b FROM {STRUCTURAL} WHERE round > 0",
                {"rule": CONTACT_RULE, "order": CONTACT_RULE_ORDER, "cap": settings.contact_degree_cap,
                 "min_shared": settings.contact_min_shared})
    return refresh_candidates(con)





def structural_match_round_sql() -> str:
    """One round of one-to-one structural matching (named parameters ``$cap``, ``$min_shared``, ``$margin``).

    Scores every cross-platform pair of accounts not yet matched towards each other's platform by the
    number of its contact pairs already matched (seeds plus earlier rounds), and selects pairs that are
    each other's best partner on that platform by at least ``$margin`` shared contacts (the
    eccentricity test of Narayanan & Shmatikov in its percolation form), with at least ``$min_shared``.
    """
    return f"""
        WITH c AS (SELECT x, y FROM {CONTACTS} WHERE contact_degree <= $cap),
        m AS (SELECT a AS x, b AS y FROM {STRUCTURAL} UNION ALL SELECT b, a FROM {STRUCTURAL}),
        mp AS (SELECT DISTINCT m.x, acc.platform FROM m JOIN {ACCOUNTS} acc ON acc.aid = m.y),
        pq AS (
            SELECT c1.x AS a, c2.x AS b, count(*) AS n
            FROM m JOIN c c1 ON c1.y = m.x JOIN c c2 ON c2.y = m.y
            WHERE c1.x <> c2.x
            GROUP BY ALL
        ), f AS (
            SELECT pq.a, pq.b, pq.n, B.platform AS pb
            FROM pq JOIN {ACCOUNTS} A ON A.aid = pq.a JOIN {ACCOUNTS} B ON B.aid = pq.b
            WHERE A.platform <> B.platform
              AND NOT EXISTS (SELECT 1 FROM mp WHERE mp.x = pq.a AND mp.platform = B.platform)
              AND NOT EXISTS (SELECT 1 FROM mp WHERE mp.x = pq.b AND mp.platform = A.platform)
        ), r AS (
            SELECT a, b, n,
                   row_number() OVER (PARTITION BY a, pb ORDER BY n DESC, b) AS rk,
                   coalesce(nth_value(n, 2) OVER (PARTITION BY a, pb ORDER BY n DESC, b
                            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING), 0) AS second
            FROM f
        ), ok AS (SELECT a, b FROM r WHERE rk = 1 AND n >= $min_shared AND n - second >= $margin)
        SELECT x.a, x.b FROM ok x JOIN ok y ON y.a = x.b AND y.b = x.a WHERE x.a < x.b
    """


def _best_partners(pq: sp.csr_matrix, rows: np.ndarray, plat: np.ndarray, n_plat: int,
                   matched_to: np.ndarray, min_shared: int, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b), a in ``rows``, where b is a's clear best partner on b's platform.

    The rule of :func:`structural_match_round_sql` over the entries of ``pq`` (shared matched contacts
    per account pair): cross-platform, neither side matched towards the other's platform yet; per
    (a, platform of b) the entry with the most shared contacts (ties: lower b) when it has at least
    ``min_shared`` and leads the runner-up by ``margin``.
    """
    sub = pq[rows]
    a = np.repeat(rows.astype(np.int64), np.diff(sub.indptr))
    b, n = sub.indices.astype(np.int64), sub.data.astype(np.int64)
    keep = (n > 0) & (a != b) & (plat[a] != plat[b]) & ~matched_to[a, plat[b]] & ~matched_to[b, plat[a]]
    a, b, n = a[keep], b[keep], n[keep]
    if len(a) == 0:
        return a, b
    key = a * n_plat + plat[b]
    n_nodes = len(plat)
    top = int(n.max()) + 1
    if (int(key.max()) + 1) * top * n_nodes < 2**62:
        order = np.argsort(key * (top * n_nodes) + (top - n) * n_nodes + b, kind="stable")
    else:
        order = np.lexsort((b, -n, key))
    key, a, b, n = key[order], a[order], b[order], n[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    idx = np.flatnonzero(first)
    second = np.zeros(len(idx), dtype=np.int64)
    has2 = idx + 1 < len(key)
    has2[has2] = key[idx[has2] + 1] == key[idx[has2]]
    second[has2] = n[idx[has2] + 1]
    ok = (n[idx] >= min_shared) & (n[idx] - second >= margin)
    return a[idx[ok]], b[idx[ok]]


def structural_match(con: duckdb.DuckDBPyConnection, seeds_sql: str, settings: LinkageSettings,
                     min_shared: int = 1, margin: int = 1, max_rounds: int = 100) -> int:
    """Seed-and-extend one-to-one matching from the seed pairs selected by ``seeds_sql``.

    Each round accepts the pairs that are each other's clear best partner by shared matched contacts
    (the rule of :func:`structural_match_round_sql`), until no pair is added (or ``max_rounds``).
    The shared-contact counts are the sparse product C · M · Cᵀ (C the capped contact matrix, M the
    symmetric matched-pair matrix), updated each round by the newly matched pairs only; and only the
    accounts whose counts or candidates changed get their best partners recomputed, so later rounds
    cost little. Writes ``_lk_structural`` (a, b, round; round 0 = seeds) and returns the number of
    pairs matched beyond the seeds. Requires :func:`~reputation.linkage.blocking.prepare_accounts`.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {STRUCTURAL} AS "
                f"SELECT DISTINCT least(a, b) AS a, greatest(a, b) AS b, 0 AS round FROM ({seeds_sql})")
    acc = con.sql(f"SELECT aid, platform FROM {ACCOUNTS} ORDER BY aid").fetchnumpy()
    aid = np.asarray(acc["aid"], dtype=np.int64)
    n_nodes = int(aid.max()) + 1 if len(aid) else 1
    codes, plat_of = np.unique(np.asarray(acc["platform"], dtype=object).astype(str), return_inverse=True)
    n_plat = max(len(codes), 1)
    plat = np.zeros(n_nodes, dtype=np.int64)
    plat[aid] = plat_of
    c = con.execute(f"SELECT x, y FROM {CONTACTS} WHERE contact_degree <= ?",
                    [settings.contact_degree_cap]).fetchnumpy()
    cx, cy = np.asarray(c["x"], dtype=np.int64), np.asarray(c["y"], dtype=np.int64)
    cmat = sp.csr_matrix((np.ones(len(cx), dtype=np.int64), (cx, cy)), shape=(n_nodes, n_nodes))
    cmat.sum_duplicates()
    cmat.data[:] = 1
    cmat_t = cmat.T.tocsr()
    seeds = con.sql(f"SELECT a, b FROM {STRUCTURAL}").fetchnumpy()
    new_a, new_b = np.asarray(seeds["a"], dtype=np.int64), np.asarray(seeds["b"], dtype=np.int64)
    matched_to = np.zeros((n_nodes, n_plat), dtype=bool)
    best = np.full(n_nodes * n_plat, -1, dtype=np.int64)
    pq = sp.csr_matrix((n_nodes, n_nodes), dtype=np.int64)
    added = 0
    rnd = 0
    found: list[tuple[np.ndarray, np.ndarray, int]] = []
    for rnd in range(1, max_rounds + 1):
        # fold the pairs matched last round (the seeds in round 1) into the counts
        ends = np.concatenate([new_a, new_b])
        dm = sp.csr_matrix((np.ones(len(ends), dtype=np.int64), (ends, np.concatenate([new_b, new_a]))),
                           shape=(n_nodes, n_nodes))
        delta = cmat @ dm @ cmat_t
        pq = pq + delta
        pq.sort_indices()
        matched_to[new_a, plat[new_b]] = True
        matched_to[new_b, plat[new_a]] = True
        # rows whose best partners may change: new counts, newly matched, neighbours of newly matched
        touched = np.zeros(n_nodes, dtype=bool)
        touched[np.diff(delta.indptr) > 0] = True
        touched[ends] = True
        touched[pq[np.unique(ends)].indices] = True
        rows = np.flatnonzero(touched)
        best.reshape(n_nodes, n_plat)[rows] = -1
        a, b = _best_partners(pq, rows, plat, n_plat, matched_to, min_shared, margin)
        best[a * n_plat + plat[b]] = b
        mutual = best[b * n_plat + plat[a]] == a
        # a pair found from both ends appears twice; an end whose row was not touched keeps last round's
        # best partner, so the pair is found from one end only
        lo, hi = np.minimum(a[mutual], b[mutual]), np.maximum(a[mutual], b[mutual])
        pair = np.unique(lo * n_nodes + hi)
        new_a, new_b = pair // n_nodes, pair % n_nodes
        if len(new_a) == 0:
            break
        found.append((new_a, new_b, rnd))
        added += len(new_a)
    if found:
        con.register("_lk_structural_arrow", pa.table({
            "a": np.concatenate([f[0] for f in found]).astype(np.int32),
            "b": np.concatenate([f[1] for f in found]).astype(np.int32),
            "round": np.concatenate([np.full(len(f[0]), f[2], dtype=np.int32) for f in found])}))
        con.execute(f"INSERT INTO {STRUCTURAL} SELECT a, b, round FROM _lk_structural_arrow")
        con.unregister("_lk_structural_arrow")
    log.info("structural matching: %d pairs in %d rounds", added, rnd)
    return added


def structural_match_sql(con: duckdb.DuckDBPyConnection, seeds_sql: str, settings: LinkageSettings,
                         min_shared: int = 1, margin: int = 1, max_rounds: int = 100) -> int:
    """Reference implementation of :func:`structural_match`: one SQL statement per round (slower, kept for
    the tests that check the sparse version against it)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {STRUCTURAL} AS "
                f"SELECT DISTINCT least(a, b) AS a, greatest(a, b) AS b, 0 AS round FROM ({seeds_sql})")
    added = 0
    sql = structural_match_round_sql()
    params = {"cap": settings.contact_degree_cap, "min_shared": min_shared, "margin": margin}
    for rnd in range(1, max_rounds + 1):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _lk_structural_new AS {sql}", params)
        n = con.execute("SELECT count(*) FROM _lk_structural_new").fetchall()[0][0]
        if n == 0:
            break
        con.execute(f"INSERT INTO {STRUCTURAL} SELECT a, b, ? FROM _lk_structural_new", [rnd])
        added += n
    log.info("structural matching: %d pairs in %d rounds", added, rnd)
    return added
