"""Evaluation of reputation scores and verdicts against a generated world's ground truth.

Truth comes from ``truth/accounts.parquet`` (platform, account, person_id, role honest|bulk|spammer,
compromised, ...). An account is *spam* (positive) when its role is ``spammer`` or it was compromised
(it then sends an operator's spam). Every metric is computed on accounts **never flagged directly**
(no row in ``flags`` or ``overrides`` for that account), because the verdict of an account flagged or
decided by an analyst is no test of the engine — except where stated.

Metrics (the same code scores the baselines in ``benchmarks/baselines.py``):

- ``roc_auc``, ``pr_auc``: of the score, positives vs the rest.
- ``carry_precision``, ``carry_recall``: of the ``spam`` verdict on accounts whose person has a spam flag
  on another platform but none on this account.
- ``evasion_recall``: ``spam`` verdicts among spam accounts that share no identifier hash (email, phone, ip,
  device) with any spam-flagged account.
- ``bulk_sender_fpr``: ``spam`` verdicts among legitimate bulk senders.
- ``compromised_recall``: ``spam`` verdicts among compromised accounts.
- ``victim_fpr``: ``spam`` verdicts among honest accounts that received a message from a spam account (from
  a compromised account: one sent after ``compromised_at``).
- ``housemate_fpr``: ``spam`` verdicts among legitimate accounts (honest or bulk, not compromised) of people who
  live in a household with a spam persona (truth ``household_id``): they share its home IP and often its
  device, the evidence that most looks like one person.
- ``ranking_errors``: where the ROC-AUC goes — the misordered (legitimate, spam) pairs, charged to the
  legitimate account's strongest evidence (:func:`ranking_errors`).
- ``wrongly_flagged_spam_rate`` (directly flagged accounts, the one exception): ``spam`` verdicts among
  legitimate accounts whose spam flag is wrong (truth ``wrongly_flagged``) — how well noisy flags are
  outweighed.

Example
-------
>>> round(average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 0, 1])), 3)
0.833
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ..scoring.prior import roc_auc
from ..scoring.propagation import table_exists


def average_precision(score: np.ndarray, y: np.ndarray) -> float | None:
    """Area under the precision–recall curve as average precision (tied scores form one step)."""
    y = np.asarray(y).astype(bool)
    if not y.any():
        return None
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    s, t = np.asarray(score)[order], y[order]
    # Last index of each run of tied scores: precision and recall are read there.
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / t.sum()
    return float(np.sum(precision * recall_gain))


def _decided_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The accounts flagged directly or decided by an analyst (a database without ``overrides``: flags only)."""
    return ("SELECT platform, account FROM flags"
            + (" UNION SELECT platform, account FROM overrides" if table_exists(con, "overrides") else ""))


POPULATION_SQL = """
WITH truth AS (
    SELECT platform, account, person_id, role, {household} AS household_id,
           coalesce(compromised, false) AS compromised,
           (role = 'spammer' OR coalesce(compromised, false)) AS positive,
           {compromised_at} AS compromised_at
    FROM read_parquet($truth)
),
flagged AS ({decided}),
spam_flagged AS (SELECT DISTINCT platform, account FROM flags WHERE label = 'spam'),
person_flag_platforms AS (
    SELECT t.person_id, list(DISTINCT t.platform) AS platforms
    FROM truth t JOIN spam_flagged f USING (platform, account) GROUP BY t.person_id
),
shared AS (  -- accounts sharing an identifier hash with a spam-flagged account (other than itself)
    SELECT DISTINCT i.platform, i.account
    FROM identifiers i
    JOIN identifiers j ON j.kind = i.kind AND j.value_hash = i.value_hash
    JOIN spam_flagged f ON f.platform = j.platform AND f.account = j.account
    WHERE NOT (i.platform = j.platform AND i.account = j.account)
),
spam_households AS (SELECT DISTINCT household_id FROM truth WHERE role = 'spammer' AND household_id IS NOT NULL),
victims AS (  -- a compromised account's messages from before it was taken over are its owner's, no spam
    SELECT DISTINCT m.platform, m.recipient AS account
    FROM messages m JOIN truth s ON s.platform = m.platform AND s.account = m.sender AND s.positive
    WHERE m.recipient IS NOT NULL
      AND (s.role = 'spammer' OR s.compromised_at IS NULL OR m.sent_at >= s.compromised_at)
)
SELECT t.platform, t.account, t.role, t.compromised, t.positive,
       s.score, s.verdict,
       (pf.platforms IS NOT NULL AND len(list_filter(pf.platforms, lambda x: x <> t.platform)) > 0) AS carry,
       (sh.account IS NULL) AS no_shared_identifier,
       (v.account IS NOT NULL) AS victim,
       (sh2.household_id IS NOT NULL) AS spam_household
FROM truth t
JOIN _scores s ON s.platform = t.platform AND s.account = t.account
LEFT JOIN flagged f ON f.platform = t.platform AND f.account = t.account
LEFT JOIN person_flag_platforms pf ON pf.person_id = t.person_id
LEFT JOIN shared sh ON sh.platform = t.platform AND sh.account = t.account
LEFT JOIN victims v ON v.platform = t.platform AND v.account = t.account
LEFT JOIN spam_households sh2 ON sh2.household_id = t.household_id
WHERE f.account IS NULL
ORDER BY t.platform, t.account
"""


def _rate(mask: np.ndarray, hit: np.ndarray) -> float | None:
    n = int(mask.sum())
    return float(hit[mask].sum() / n) if n else None


def metrics_from_scores(con: duckdb.DuckDBPyConnection, truth_dir: str | Path, scores: pa.Table) -> dict[str, Any]:
    """All metrics for ``scores`` (an Arrow table: platform, account, score, verdict) against the truth.

    The connection must hold ``flags``, ``identifiers`` and ``messages`` of the run.
    """
    truth = str(Path(truth_dir) / "accounts.parquet")
    con.register("_scores", scores)
    try:
        columns = {r[0] for r in con.execute("SELECT name FROM parquet_schema(?)", [truth]).fetchall()}
        has_time = "compromised_at" in columns
        # worlds generated before households have no household_id: nobody lives with a spammer there
        household = "household_id" if "household_id" in columns else "CAST(NULL AS BIGINT)"
        # UTC wall time, as messages.sent_at is stored (truth has a time zone; a plain cast would use the
        # session's); a truth without the column counts every message of a compromised account
        compromised_at = "timezone('UTC', compromised_at)" if has_time else "CAST(NULL AS TIMESTAMP)"
        cols = con.execute(POPULATION_SQL.format(decided=_decided_sql(con), compromised_at=compromised_at,
                                               household=household),
                           {"truth": truth}).fetchnumpy()
    finally:
        con.unregister("_scores")
    score = np.asarray(cols["score"], dtype=np.float64)
    spam = np.asarray(cols["verdict"], dtype=object) == "spam"
    pos = np.asarray(cols["positive"], dtype=bool)
    role = np.asarray(cols["role"], dtype=object)
    compromised = np.asarray(cols["compromised"], dtype=bool)
    carry = np.asarray(cols["carry"], dtype=bool)
    no_shared = np.asarray(cols["no_shared_identifier"], dtype=bool)
    victim = np.asarray(cols["victim"], dtype=bool)
    housemate = np.asarray(cols["spam_household"], dtype=bool) & (role != "spammer") & ~compromised
    honest = (role == "honest") & ~compromised
    return {
        "accounts_never_flagged": int(len(score)),
        "positives_never_flagged": int(pos.sum()),
        "roc_auc": roc_auc(score, pos),
        "pr_auc": average_precision(score, pos),
        "spam_precision": _rate(spam, pos),
        "spam_recall": _rate(pos, spam),
        "carry_accounts": int(carry.sum()),
        "carry_precision": _rate(carry & spam, pos),
        "carry_recall": _rate(carry & pos, spam),
        "evasion_accounts": int((pos & no_shared & (role == "spammer")).sum()),
        "evasion_recall": _rate(pos & no_shared & (role == "spammer"), spam),
        "bulk_accounts": int((role == "bulk").sum()),
        "bulk_sender_fpr": _rate(role == "bulk", spam),
        "compromised_accounts": int(compromised.sum()),
        "compromised_recall": _rate(compromised, spam),
        "victim_accounts": int((honest & victim).sum()),
        "victim_fpr": _rate(honest & victim, spam),
        "honest_fpr": _rate(honest, spam),
        "housemate_accounts": int(housemate.sum()),
        "housemate_fpr": _rate(housemate, spam),
    }


WRONG_FLAGS_SQL = """
SELECT count(*) AS n, count(*) FILTER (WHERE s.verdict = 'spam') AS spam
FROM read_parquet($truth) t
JOIN _scores s ON s.platform = t.platform AND s.account = t.account
WHERE coalesce(t.wrongly_flagged, false)
  AND EXISTS (SELECT 1 FROM flags f WHERE f.platform = t.platform AND f.account = t.account AND f.label = 'spam')
"""


def wrongly_flagged_spam_rate(con: duckdb.DuckDBPyConnection, truth_dir: str | Path,
                              scores: pa.Table) -> tuple[int, float | None]:
    """(count, share judged spam) of legitimate accounts that carry a wrong spam flag (noisy flags)."""
    truth = str(Path(truth_dir) / "accounts.parquet")
    names = set(con.execute("SELECT name FROM parquet_schema(?)", [truth]).fetchnumpy()["name"].tolist())
    if "wrongly_flagged" not in names:
        return 0, None
    con.register("_scores", scores)
    try:
        n, spam = con.execute(WRONG_FLAGS_SQL, {"truth": truth}).fetchall()[0]
    finally:
        con.unregister("_scores")
    return int(n), (spam / n if n else None)


#: ``account_evidence`` terms a misranked honest account is charged to (its largest positive one), and the
#: names the report gives them.
EVIDENCE_TERMS = {
    "c_behaviour": "own_behaviour",
    "c_graph": "graph",
    "c_identity": "identity_carry",
    "c_campaign": "campaign_carry",
    "c_direct": "own_flags",
}

RANKING_ERRORS_SQL = """
WITH flagged AS ({decided})
SELECT (t.role = 'spammer' OR coalesce(t.compromised, false)) AS positive, r.score, e.logit,
       e.c_behaviour, e.c_graph, e.c_identity, e.c_campaign, e.c_direct
FROM read_parquet($truth) t
JOIN reputation r ON r.platform = t.platform AND r.account = t.account
JOIN account_evidence e ON e.platform = t.platform AND e.account = t.account
ANTI JOIN flagged f ON f.platform = t.platform AND f.account = t.account
ORDER BY t.platform, t.account
"""


def ranking_errors(con: duckdb.DuckDBPyConnection, truth_dir: str | Path) -> dict[str, Any]:
    """Where the score's ROC-AUC goes: misordered (legitimate, spam) pairs, by the legitimate side's evidence.

    Over the accounts never flagged (the population of every metric here), a pair of a legitimate account
    ``h`` and a positive ``s`` is misordered when ``score_h > score_s`` (a tie counts half), so
    ``1 − roc_auc = misordered_pairs / pairs``. Each legitimate account's misordered pairs are charged to
    its largest positive log-odds term in ``account_evidence`` (``EVIDENCE_TERMS``; ``"none"`` when no
    term is positive): ``own_behaviour`` means its own sending looks like spam, ``graph`` that its
    neighbours' belief pushed it up (a victim who wrote back to spammers). ``roc_auc_without_own_behaviour``
    ranks by the total log-odds less the account's own behavioural term (its neighbours' terms stay in):
    how the rest of the engine ranks on its own.

    Returns ``misordered_pairs``, ``pairs``, ``honest_accounts_misordered`` (legitimate accounts that
    outrank at least one positive), ``positives_misordered`` (positives scored no higher than the
    top legitimate account), ``by_cause`` (cause → misordered pairs) and ``roc_auc_without_own_behaviour``.
    """
    cols = con.execute(RANKING_ERRORS_SQL.format(decided=_decided_sql(con)),
                       {"truth": str(Path(truth_dir) / "accounts.parquet")}).fetchnumpy()
    positive = np.asarray(cols["positive"], dtype=bool)
    score = np.asarray(cols["score"], dtype=np.float64)
    neg = ~positive
    pos_sorted = np.sort(score[positive])
    below = np.searchsorted(pos_sorted, score[neg], side="left")
    ties = np.searchsorted(pos_sorted, score[neg], side="right") - below
    per_account = below + 0.5 * ties
    terms = np.column_stack([np.asarray(cols[t], dtype=np.float64)[neg] for t in EVIDENCE_TERMS])
    names = np.array(list(EVIDENCE_TERMS.values()), dtype=object)
    cause = np.where(terms.max(axis=1) > 0, names[np.argmax(terms, axis=1)], "none") if len(terms) else names[:0]
    by_cause = {name: float(per_account[cause == name].sum()) for name in [*EVIDENCE_TERMS.values(), "none"]}
    top_legitimate = float(score[neg].max()) if neg.any() else -np.inf
    own_removed = np.asarray(cols["logit"], dtype=np.float64) - np.asarray(cols["c_behaviour"], dtype=np.float64)
    return {
        "misordered_pairs": float(per_account.sum()),
        "pairs": int(positive.sum()) * int(neg.sum()),
        "honest_accounts_misordered": int((per_account > 0).sum()),
        "positives_misordered": int((score[positive] <= top_legitimate).sum()),
        "by_cause": by_cause,  # every cause, zeros included (means over several worlds stay right)
        "roc_auc_without_own_behaviour": roc_auc(own_removed, positive),
    }


def evaluate_reputation(con: duckdb.DuckDBPyConnection, truth_dir: str | Path) -> dict[str, Any]:
    """Metrics of the run's ``reputation`` table against ``truth_dir`` (see the module docstring).

    Returns
    -------
    dict
        roc_auc, pr_auc, carry_precision, carry_recall, evasion_recall, bulk_sender_fpr,
        compromised_recall, victim_fpr, plus population sizes and overall spam precision/recall.
    """
    scores = con.sql("SELECT platform, account, score, verdict FROM reputation").to_arrow_table()
    out = metrics_from_scores(con, truth_dir, scores)
    out["wrongly_flagged_accounts"], out["wrongly_flagged_spam_rate"] = wrongly_flagged_spam_rate(
        con, truth_dir, scores)
    out["ranking_errors"] = ranking_errors(con, truth_dir)
    return out
