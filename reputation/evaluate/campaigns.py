"""Evaluate detected campaigns against the generator's ground truth (B-cubed precision / recall / F1).

Truth comes from ``truth/accounts.parquet`` of a generated world (:mod:`reputation.generate`):
``operator_id`` names the spam operation an account worked for (its personas and the honest accounts it
compromised). Only accounts that actually took part are scored: an account with an operator that is a
spammer persona, or a compromised account, and that sent at least one message (after ``compromised_at``
for a compromised one).

Items are those truth accounts plus every account the detector put in a campaign. Each item's truth
cluster is its operator (accounts without an operator are singletons); its predicted cluster is its
campaign (accounts in no campaign are singletons). B-cubed (Bagga & Baldwin 1998; Amigó et al. 2009):

- precision_i = |pred(i) ∩ truth(i)| / |pred(i)|, recall_i = |pred(i) ∩ truth(i)| / |truth(i)|,
- precision and recall are the means over items, F1 their harmonic mean.

So an honest or bulk account wrongly placed in a campaign lowers precision, and an operator split over
several campaigns (or missed) lowers recall.
"""

from __future__ import annotations

from pathlib import Path

import duckdb


def evaluate_campaigns(con: duckdb.DuckDBPyConnection, truth_dir: str | Path) -> dict:
    """B-cubed precision, recall and F1 of ``campaigns`` against truth operators, plus counts.

    Parameters
    ----------
    con
        Connection holding ``campaigns`` and ``messages`` of a run over a generated world.
    truth_dir
        The world's ``truth`` directory (containing ``accounts.parquet``).

    Returns
    -------
    dict
        ``bcubed_precision``, ``bcubed_recall``, ``bcubed_f1`` (0..1), ``items`` (accounts scored),
        ``truth_accounts`` (operator accounts that sent), ``operators``, ``campaigns``,
        ``campaign_accounts``, ``campaign_accounts_without_operator`` (by truth role, in
        ``campaign_accounts_by_role``), ``operators_detected`` (operators with ≥ 2 accounts together in
        one campaign), ``operator_accounts_in_campaigns``, ``compromised_in_operator_campaign``.
    """
    path = str(Path(truth_dir) / "accounts.parquet")
    cur = con.cursor()
    try:
        cur.execute("CREATE OR REPLACE TEMP TABLE _ev_truth AS SELECT * FROM read_parquet($p)", {"p": path})
        cur.execute(
            """CREATE OR REPLACE TEMP TABLE _ev_active AS
               SELECT t.platform, t.account, t.operator_id, t.role,
                      coalesce(t.compromised, false) AS compromised
               FROM _ev_truth t
               WHERE t.operator_id IS NOT NULL
                 AND (t.role = 'spammer' OR coalesce(t.compromised, false))
                 AND EXISTS (SELECT 1 FROM messages m
                             WHERE m.platform = t.platform AND m.sender = t.account
                               AND (NOT coalesce(t.compromised, false) OR t.compromised_at IS NULL
                                    OR m.sent_at >= t.compromised_at))"""
        )
        cur.execute(
            """CREATE OR REPLACE TEMP TABLE _ev_items AS
               WITH members AS (SELECT DISTINCT platform, account, campaign_id FROM campaigns),
               keys AS (SELECT platform, account FROM _ev_active
                        UNION SELECT platform, account FROM members)
               SELECT k.platform, k.account,
                      coalesce('o:' || a.operator_id, 'a:' || k.platform || chr(31) || k.account) AS truth,
                      coalesce('c:' || m.campaign_id, 'a:' || k.platform || chr(31) || k.account) AS pred,
                      a.operator_id IS NOT NULL AS has_operator,
                      coalesce(a.compromised, false) AS compromised
               FROM keys k
               LEFT JOIN _ev_active a USING (platform, account)
               LEFT JOIN members m USING (platform, account)"""
        )
        row = cur.execute(
            """WITH sized AS (
                   SELECT *, count(*) OVER (PARTITION BY pred) AS np,
                          count(*) OVER (PARTITION BY truth) AS nt,
                          count(*) OVER (PARTITION BY pred, truth) AS nb
                   FROM _ev_items
               )
               SELECT avg(nb / np), avg(nb / nt), count(*),
                      count(*) FILTER (WHERE has_operator),
                      count(DISTINCT truth) FILTER (WHERE has_operator),
                      count(DISTINCT truth) FILTER (
                          WHERE has_operator AND starts_with(pred, 'c:') AND nb >= 2),
                      count(*) FILTER (WHERE has_operator AND starts_with(pred, 'c:')),
                      count(*) FILTER (WHERE compromised AND starts_with(pred, 'c:') AND nb >= 2),
                      count(*) FILTER (WHERE compromised)
               FROM sized"""
        ).fetchall()[0]
        counts = cur.execute(
            "SELECT count(DISTINCT campaign_id), count(*) "
            "FROM (SELECT DISTINCT campaign_id, platform, account FROM campaigns)"
        ).fetchall()[0]
        by_role = dict(cur.execute(
            """SELECT coalesce(t.role, 'unknown') ||
                      CASE WHEN a.operator_id IS NULL AND coalesce(t.compromised, false)
                           THEN '(compromised, inactive)' ELSE '' END AS role, count(*)
               FROM (SELECT DISTINCT platform, account FROM campaigns) c
               LEFT JOIN _ev_truth t USING (platform, account)
               LEFT JOIN _ev_active a USING (platform, account)
               GROUP BY ALL ORDER BY ALL"""
        ).fetchall())
        without = cur.execute(
            """SELECT count(*) FROM (SELECT DISTINCT platform, account FROM campaigns) c
               ANTI JOIN _ev_active a USING (platform, account)"""
        ).fetchall()[0][0]
        for t in ("_ev_truth", "_ev_active", "_ev_items"):
            cur.execute(f"DROP TABLE IF EXISTS {t}")
    finally:
        cur.close()
    precision = float(row[0] or 0.0)
    recall = float(row[1] or 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "bcubed_precision": round(precision, 4),
        "bcubed_recall": round(recall, 4),
        "bcubed_f1": round(f1, 4),
        "items": int(row[2]),
        "truth_accounts": int(row[3]),
        "operators": int(row[4]),
        "operators_detected": int(row[5]),
        "operator_accounts_in_campaigns": int(row[6]),
        "compromised_in_operator_campaign": int(row[7]),
        "compromised_active": int(row[8]),
        "campaigns": int(counts[0]),
        "campaign_accounts": int(counts[1]),
        "campaign_accounts_without_operator": int(without),
        "campaign_accounts_by_role": {str(k): int(v) for k, v in by_role.items()},
    }
