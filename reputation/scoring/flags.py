"""Direct evidence: moderation flags (with confidence, time decay and expiry) and analyst overrides.

A flag is read as evidence of strength ``w = confidence · 0.5 ** (age_days / half_life_days)``, where
``age_days`` is the flag's age at the run's reference time ``ctx.as_of`` (a flag without ``flagged_at``
counts as raised at ``as_of``). A flag dated after ``as_of`` counts as age 0 when ``as_of`` is the latest
message time (a moderator's verdict the morning after the last message), and not at all when the config
pins ``as_of`` (``ctx.as_of_pinned``: a replay of a past moment must not see the verdicts that came
later); an override decided after a pinned ``as_of`` is left out likewise. Flags older than
``flag_expiry_days`` carry no weight. Several flags of one label combine by noisy-or,
``1 − Π(1 − w_i)``, so repeated reports strengthen the evidence without ever exceeding 1. ``clean``
flags are negative evidence: ``evidence = spam_evidence − clean_evidence`` in −1..1.

Overrides (analyst decisions) are kept beside the flag evidence; the scoring stage lets them win over
all evidence. When an account has several overrides the latest one (by ``decided_at``) holds.

Example
-------
>>> import duckdb
>>> from datetime import datetime
>>> from reputation.config import Settings
>>> from reputation.context import StageContext
>>> from reputation.schema import STORED_TABLES
>>> con = duckdb.connect()
>>> for t in ("flags", "overrides"):
...     _ = con.execute(STORED_TABLES[t].ddl())
>>> _ = con.execute("INSERT INTO flags VALUES ('r', 'p', 'a', 'spam', TIMESTAMP '2026-01-01', 'mod', 1.0)")
>>> ctx = StageContext("r1", Settings(flag_half_life_days=30), datetime(2026, 1, 31))
>>> build_flag_evidence(con, ctx)
1
>>> round(con.execute("SELECT evidence FROM flag_evidence").fetchall()[0][0], 3)
0.5
"""

from __future__ import annotations

import duckdb

from ..context import StageContext, log
from ..store import comment_table
from .propagation import table_exists

FLAG_EVIDENCE_TABLE = "flag_evidence"

#: Evidence of one flag is capped below 1 so that ln(1 − w) stays finite in the noisy-or.
MAX_FLAG_WEIGHT = 0.999

FLAG_EVIDENCE_SQL = """
CREATE OR REPLACE TABLE flag_evidence AS
WITH weighted AS (
    SELECT platform, account, label, flagged_at, source,
           greatest(0.0, date_diff('second', coalesce(flagged_at, $as_of), $as_of) / 86400.0) AS age_days,
           least($max_w, greatest(0.0, coalesce(confidence, 1.0))) AS confidence
    FROM flags
    WHERE label IN ('spam', 'clean') AND NOT ($pinned AND coalesce(flagged_at > $as_of, false))
),
live AS (
    SELECT *, confidence * pow(0.5, age_days / $half_life) AS weight
    FROM weighted
    WHERE age_days <= $expiry
),
per_account AS (
    SELECT platform, account,
           1 - exp(sum(CASE WHEN label = 'spam' THEN ln(1 - least($max_w, weight)) ELSE 0 END))
               AS spam_evidence,
           1 - exp(sum(CASE WHEN label = 'clean' THEN ln(1 - least($max_w, weight)) ELSE 0 END))
               AS clean_evidence,
           count(*) FILTER (WHERE label = 'spam') AS spam_flags,
           count(*) FILTER (WHERE label = 'clean') AS clean_flags,
           max(flagged_at) AS last_flagged_at,
           list(DISTINCT source ORDER BY source) FILTER (WHERE source IS NOT NULL) AS flag_sources
    FROM live
    GROUP BY platform, account
),
latest_override AS (
    SELECT platform, account, decision, reason, author, decided_at
    FROM overrides
    WHERE decision IN ('spam', 'clean') AND NOT ($pinned AND coalesce(decided_at > $as_of, false))
    QUALIFY row_number() OVER (PARTITION BY platform, account
                               ORDER BY decided_at DESC NULLS LAST, decision, reason, author) = 1
)
SELECT $run_id AS run_id,
       coalesce(f.platform, o.platform) AS platform,
       coalesce(f.account, o.account) AS account,
       coalesce(f.spam_evidence, 0.0) AS spam_evidence,
       coalesce(f.clean_evidence, 0.0) AS clean_evidence,
       coalesce(f.spam_evidence, 0.0) - coalesce(f.clean_evidence, 0.0) AS evidence,
       coalesce(f.spam_flags, 0) AS spam_flags,
       coalesce(f.clean_flags, 0) AS clean_flags,
       f.last_flagged_at,
       coalesce(f.flag_sources, []::VARCHAR[]) AS flag_sources,
       o.decision AS override,
       o.reason AS override_reason,
       o.author AS override_author
FROM per_account f
FULL OUTER JOIN latest_override o ON f.platform = o.platform AND f.account = o.account
ORDER BY platform, account
"""

FLAG_EVIDENCE_DOC = (
    "Direct evidence per account: live moderation flags (confidence x time decay, noisy-or per label; "
    "expired flags dropped) and the latest analyst override. Input of the reputation stage."
)
FLAG_EVIDENCE_COLUMNS = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform of the account.",
    "account": "Account id.",
    "spam_evidence": "Noisy-or of live spam flags' weights (confidence x 0.5^(age/half-life)), 0..1.",
    "clean_evidence": "Noisy-or of live clean flags' weights, 0..1.",
    "evidence": "spam_evidence - clean_evidence, -1..1 (positive = spam).",
    "spam_flags": "Live (unexpired) spam flags, count.",
    "clean_flags": "Live (unexpired) clean flags, count.",
    "last_flagged_at": "Latest flag time among live flags (UTC).",
    "flag_sources": "Distinct sources of the live flags.",
    "override": "Latest analyst decision (spam/clean) or null; wins over all evidence.",
    "override_reason": "The analyst's reason for the override.",
    "override_author": "Who decided the override.",
}


def build_flag_evidence(con: duckdb.DuckDBPyConnection, ctx: StageContext) -> int:
    """Write ``flag_evidence``: one row per account with a live flag or an override.

    Parameters
    ----------
    con
        Connection holding ``flags`` and ``overrides``.
    ctx
        Run context; uses ``settings.flag_half_life_days``, ``settings.flag_expiry_days``, ``as_of`` and
        ``as_of_pinned``.

    Returns
    -------
    int
        Rows written.
    """
    s = ctx.settings
    con.execute(FLAG_EVIDENCE_SQL, {
        "run_id": ctx.run_id,
        "as_of": ctx.as_of,
        "half_life": float(s.flag_half_life_days),
        "expiry": float(s.flag_expiry_days),
        "max_w": MAX_FLAG_WEIGHT,
        "pinned": ctx.as_of_pinned,
    })
    if ctx.as_of_pinned:
        messages = "(SELECT count(*) FROM messages WHERE sent_at > $a)" if table_exists(con, "messages") else "0"
        later = con.execute(
            "SELECT (SELECT count(*) FROM flags WHERE flagged_at > $a), "
            f"(SELECT count(*) FROM overrides WHERE decided_at > $a), {messages}", {"a": ctx.as_of}).fetchall()[0]
        if later[0] or later[1]:
            log.warning("as_of is pinned to %s: %d flag(s) and %d override(s) dated after it are left out",
                        ctx.as_of, later[0], later[1])
        if later[2]:
            log.warning("as_of is pinned to %s, but %d message(s) are dated after it; they are scored as input "
                        "like the rest (give a replay only the input up to as_of)", ctx.as_of, later[2])
    comment_table(con, FLAG_EVIDENCE_TABLE, FLAG_EVIDENCE_DOC, FLAG_EVIDENCE_COLUMNS)
    return int(con.execute("SELECT count(*) FROM flag_evidence").fetchall()[0][0])
