"""Analyst views over a run's database (documented with ``COMMENT ON VIEW``).

- ``spam_identities_multi_platform``: people (identities) judged spam on several platforms.
- ``carried_over_verdicts``: accounts whose spam/suspicious verdict rests only on other platforms' flags.
- ``campaign_accounts``: campaigns with their accounts and verdicts.
- ``review_queue_false_positives``: likely false positives to review first — high score, no direct
  flag, many reciprocated conversations that are most of its contacts (people rarely keep talking to
  spammers).

Example
-------
>>> import duckdb
>>> con = duckdb.connect()
>>> create_views(con)  # no reputation table yet: nothing to create
[]
"""

from __future__ import annotations

import duckdb

from .scoring.propagation import table_exists
from .store import comment_table

#: Reciprocated conversation partners from which a high score without a direct flag is worth a review.
REVIEW_MIN_RECIPROCATED = 3
#: ... and at least this share of its direct contacts wrote back (spammers get the odd reply from a victim).
REVIEW_MIN_RECIPROCATED_SHARE = 0.5

VIEWS: dict[str, tuple[tuple[str, ...], str, str, dict[str, str]]] = {
    # name: (required tables, SQL, doc, column docs)
    "spam_identities_multi_platform": (
        ("reputation",),
        """
        SELECT identity_id, count(*) AS accounts, count(*) FILTER (WHERE verdict = 'spam') AS spam_accounts,
               list(DISTINCT platform ORDER BY platform) AS platforms,
               list(DISTINCT platform ORDER BY platform) FILTER (WHERE verdict = 'spam') AS spam_platforms,
               max(score) AS max_score, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
               any_value(run_id) AS run_id
        FROM reputation
        WHERE identity_id IS NOT NULL
        GROUP BY identity_id
        HAVING count(DISTINCT platform) FILTER (WHERE verdict = 'spam') >= 2
        ORDER BY spam_accounts DESC, identity_id
        """,
        "Identities (people) with accounts judged spam on two or more platforms.",
        {"identity_id": "Identity.", "accounts": "Accounts of the identity.",
         "spam_accounts": "Accounts judged spam.", "platforms": "Platforms the identity is on.",
         "spam_platforms": "Platforms where it is judged spam.", "max_score": "Highest score, 0..1.",
         "first_seen": "Earliest activity (UTC).", "last_seen": "Latest activity (UTC).",
         "run_id": "Run that wrote the rows."},
    ),
    "carried_over_verdicts": (
        ("reputation",),
        """
        SELECT platform, account, verdict, score, confidence, flagged_on, reason_text, identity_id, run_id
        FROM reputation
        WHERE verdict IN ('spam', 'suspicious') AND len(flagged_on) > 0
          AND NOT list_contains(flagged_on, platform)
        ORDER BY score DESC, platform, account
        """,
        "Accounts judged spam or suspicious whose flags all come from other platforms (carry-over).",
        {"platform": "Platform.", "account": "Account.", "verdict": "spam or suspicious.",
         "score": "Score 0..1.", "confidence": "Confidence 0..1.",
         "flagged_on": "Platforms whose flags carried over (never this one).",
         "reason_text": "Why.", "identity_id": "Identity.", "run_id": "Run that wrote the row."},
    ),
    "campaign_accounts": (
        ("reputation", "campaigns"),
        """
        SELECT c.campaign_id, count(DISTINCT (c.platform, c.account)) AS accounts,
               count(DISTINCT (c.platform, c.account)) FILTER (WHERE r.verdict = 'spam') AS spam_accounts,
               list(DISTINCT c.platform ORDER BY c.platform) AS platforms,
               list(DISTINCT c.template_id ORDER BY c.template_id) AS templates,
               list(DISTINCT c.platform || ':' || c.account ORDER BY c.platform || ':' || c.account) AS members,
               avg(r.score) AS mean_score, any_value(c.run_id) AS run_id
        FROM campaigns c
        LEFT JOIN reputation r ON r.platform = c.platform AND r.account = c.account
        GROUP BY c.campaign_id
        ORDER BY accounts DESC, c.campaign_id
        """,
        "Campaigns (lockstep groups: one operator) with their accounts and how many are judged spam.",
        {"campaign_id": "Campaign.", "accounts": "Member accounts.", "spam_accounts": "Members judged spam.",
         "platforms": "Platforms of the members.", "templates": "Template ids they sent in lockstep.",
         "members": "platform:account of every member.", "mean_score": "Mean score of the members.",
         "run_id": "Run that wrote the campaign."},
    ),
    "review_queue_false_positives": (
        ("reputation", "interactions"),
        f"""
        WITH partners AS (
            SELECT platform, sender AS account, count(DISTINCT recipient) FILTER (WHERE reciprocated)
                       AS reciprocated_partners,
                   count(DISTINCT recipient) AS contacts
            FROM interactions WHERE kind = 'direct' GROUP BY platform, sender
        )
        SELECT r.platform, r.account, r.verdict, r.score, r.confidence, p.reciprocated_partners, p.contacts,
               r.flagged_on, r.reason_text, r.run_id
        FROM reputation r
        JOIN partners p ON p.platform = r.platform AND p.account = r.account
        WHERE r.verdict IN ('spam', 'suspicious')
          AND p.reciprocated_partners >= {REVIEW_MIN_RECIPROCATED}
          AND p.reciprocated_partners >= {REVIEW_MIN_RECIPROCATED_SHARE} * p.contacts
          AND NOT EXISTS (SELECT 1 FROM json_each(r.reasons) j
                          WHERE j.value->>'kind' IN ('override', 'direct_flag'))
        ORDER BY p.reciprocated_partners DESC, r.score DESC, r.platform, r.account
        """,
        "Review queue of likely false positives: judged spam/suspicious without a direct flag on their "
        f"platform, yet with at least {REVIEW_MIN_RECIPROCATED} reciprocated conversation partners who are "
        f"at least {REVIEW_MIN_RECIPROCATED_SHARE:.0%} of its direct contacts.",
        {"platform": "Platform.", "account": "Account.", "verdict": "spam or suspicious.", "score": "Score.",
         "confidence": "Confidence.", "reciprocated_partners": "Distinct partners who wrote back, count.",
         "contacts": "Distinct accounts it sent direct messages to, count.",
         "flagged_on": "Platforms whose flags contributed.", "reason_text": "Why it scored high.",
         "run_id": "Run that wrote the row."},
    ),
}


def create_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create (or replace) the analyst views whose input tables exist; returns the names created."""
    made = []
    for name, (needs, sql, doc, cols) in VIEWS.items():
        if not all(table_exists(con, t) for t in needs):
            continue
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        comment_table(con, name, doc, cols, kind="VIEW")
        made.append(name)
    return made
