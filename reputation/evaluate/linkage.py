"""Evaluate cross-account linkage against the generator's ground truth.

Truth same-person pairs are accounts with the same ``person_id`` in ``truth/accounts.parquet``, limited
to accounts present in the database's ``accounts`` table. Predicted same-person pairs are accounts
sharing an ``identity_id`` in ``identities`` (the clustered result the reputation stage uses).
"""

from __future__ import annotations

from pathlib import Path

import duckdb


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if (p + r) > 0 else 0.0


def evaluate_linkage(con: duckdb.DuckDBPyConnection, truth_dir: str | Path) -> dict:
    """Linkage quality of the run in ``con`` against ``truth_dir/accounts.parquet``.

    Returns a dict with ``pairwise_precision``, ``pairwise_recall``, ``pairwise_f1`` (identity pairs),
    ``bcubed_precision``, ``bcubed_recall``, ``bcubed_f1``, ``links_precision`` and ``links_recall``
    (pairs in ``links``), ``blocking_recall`` (truth pairs among ``candidate_pairs``),
    ``candidate_pairs_per_account`` (candidate pairs ÷ accounts), ``cross_platform_recall``,
    ``no_shared_identifier_recall`` (truth pairs sharing no identifier hash), ``by_evasion`` (recall of
    truth pairs where either account used that evasion), ``household_link_rate`` (of the
    ``household_pairs``, accounts of different people in one household, the share put in one identity:
    ``household_linked_pairs``), and the counts ``true_pairs``,
    ``predicted_pairs``, ``accounts``.
    """
    path = str(Path(truth_dir) / "accounts.parquet")
    cur = con.cursor()
    columns = {r[0] for r in cur.execute("SELECT name FROM parquet_schema(?)", [path]).fetchall()}
    household = "t.household_id::VARCHAR" if "household_id" in columns else "NULL::VARCHAR"
    cur.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ev_truth AS
        SELECT t.platform, t.account, t.person_id::VARCHAR AS person_id, {household} AS household_id,
               coalesce(t.evasion::VARCHAR[], []::VARCHAR[]) AS evasion
        FROM read_parquet(?) t SEMI JOIN accounts a USING (platform, account)
    """, [path])
    cur.execute("""
        CREATE OR REPLACE TEMP TABLE _ev_true_pairs AS
        SELECT x.platform AS platform_a, x.account AS account_a,
               y.platform AS platform_b, y.account AS account_b,
               list_distinct(list_concat(x.evasion, y.evasion)) AS evasion
        FROM _ev_truth x JOIN _ev_truth y ON x.person_id = y.person_id
         AND (x.platform, x.account) < (y.platform, y.account)
    """)
    cur.execute("""
        CREATE OR REPLACE TEMP TABLE _ev_pred_pairs AS
        SELECT x.platform AS platform_a, x.account AS account_a,
               y.platform AS platform_b, y.account AS account_b
        FROM identities x JOIN identities y ON x.identity_id = y.identity_id
         AND (x.platform, x.account) < (y.platform, y.account)
        WHERE x.size > 1
    """)
    keys = "platform_a, account_a, platform_b, account_b"
    n_true = cur.execute("SELECT count(*) FROM _ev_true_pairs").fetchall()[0][0]
    n_pred = cur.execute("SELECT count(*) FROM _ev_pred_pairs").fetchall()[0][0]
    n_both = cur.execute(f"SELECT count(*) FROM _ev_pred_pairs SEMI JOIN _ev_true_pairs USING ({keys})"
                         ).fetchall()[0][0]
    precision, recall = _ratio(n_both, n_pred), _ratio(n_both, n_true)

    n_links, links_tp = cur.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE t.platform_a IS NOT NULL)
        FROM links l LEFT JOIN _ev_true_pairs t USING ({keys})
    """).fetchall()[0]
    n_accounts = cur.execute("SELECT count(*) FROM accounts").fetchall()[0][0]
    n_cand, blocked = cur.execute(f"""
        SELECT (SELECT count(*) FROM candidate_pairs),
               (SELECT count(*) FROM _ev_true_pairs SEMI JOIN candidate_pairs USING ({keys}))
    """).fetchall()[0]

    n_household, household_linked = cur.execute(f"""
        WITH h AS (
            SELECT x.platform AS platform_a, x.account AS account_a,
                   y.platform AS platform_b, y.account AS account_b
            FROM _ev_truth x JOIN _ev_truth y ON x.household_id = y.household_id
             AND x.person_id <> y.person_id AND (x.platform, x.account) < (y.platform, y.account)
        )
        SELECT count(*), count(p.platform_a) FROM h LEFT JOIN _ev_pred_pairs p USING ({keys})
    """).fetchall()[0]

    bp, br = cur.execute("""
        WITH c AS (SELECT t.platform, t.account, t.person_id, i.identity_id
                   FROM _ev_truth t JOIN identities i USING (platform, account)),
        per AS (
            SELECT x.platform, x.account,
                   count(*) FILTER (WHERE x.identity_id = y.identity_id
                                      AND x.person_id = y.person_id) AS n_both,
                   count(*) FILTER (WHERE x.identity_id = y.identity_id) AS in_cluster,
                   count(*) FILTER (WHERE x.person_id = y.person_id) AS in_truth
            FROM c x JOIN c y ON x.identity_id = y.identity_id OR x.person_id = y.person_id
            GROUP BY ALL
        )
        SELECT avg(n_both / in_cluster), avg(n_both / in_truth) FROM per
    """).fetchall()[0]

    recall_rows = cur.execute(f"""
        WITH shared AS (
            SELECT DISTINCT tp.platform_a, tp.account_a, tp.platform_b, tp.account_b
            FROM _ev_true_pairs tp
            JOIN identifiers x ON x.platform = tp.platform_a AND x.account = tp.account_a
            JOIN identifiers y ON y.platform = tp.platform_b AND y.account = tp.account_b
             AND y.kind = x.kind AND y.value_hash = x.value_hash
        ), t AS (
            SELECT tp.*, p.platform_a IS NOT NULL AS found, s.platform_a IS NOT NULL AS shares_identifier
            FROM _ev_true_pairs tp
            LEFT JOIN _ev_pred_pairs p USING ({keys})
            LEFT JOIN shared s USING ({keys})
        )
        SELECT 'cross_platform', count(*) FILTER (WHERE found), count(*) FROM t WHERE platform_a <> platform_b
        UNION ALL
        SELECT 'no_shared_identifier', count(*) FILTER (WHERE found), count(*)
        FROM t WHERE NOT shares_identifier
        UNION ALL
        SELECT 'evasion:' || e, count(*) FILTER (WHERE found), count(*)
        FROM (SELECT unnest(evasion) AS e, found FROM t) GROUP BY e
    """).fetchall()
    rec = {name: _ratio(hit, total) for name, hit, total in recall_rows}
    by_evasion = {name.split(":", 1)[1]: v for name, v in sorted(rec.items()) if name.startswith("evasion:")}
    bcubed_p, bcubed_r = float(bp or 0.0), float(br or 0.0)
    cur.close()
    return {
        "pairwise_precision": precision,
        "pairwise_recall": recall,
        "pairwise_f1": _f1(precision, recall),
        "bcubed_precision": bcubed_p,
        "bcubed_recall": bcubed_r,
        "bcubed_f1": _f1(bcubed_p, bcubed_r),
        "links_precision": _ratio(links_tp, n_links),
        "links_recall": _ratio(links_tp, n_true),
        "blocking_recall": _ratio(blocked, n_true),
        "candidate_pairs_per_account": _ratio(n_cand, n_accounts),
        "cross_platform_recall": rec.get("cross_platform", float("nan")),
        "no_shared_identifier_recall": rec.get("no_shared_identifier", float("nan")),
        "by_evasion": by_evasion,
        "household_pairs": int(n_household),
        "household_linked_pairs": int(household_linked),
        "household_link_rate": _ratio(household_linked, n_household),
        "true_pairs": int(n_true),
        "predicted_pairs": int(n_pred),
        "accounts": int(n_accounts),
    }
