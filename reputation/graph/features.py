"""Behavioural features: one row per account, the signals the design brief names.

Every feature is computed set-wise in one SQL statement over ``messages``, ``interactions``,
``message_templates`` and ``template_clusters`` (so :func:`build_interactions` and
:func:`build_templates` must run first). An account that never sent a message gets zero counts and
null rates/profiles (a rate of nothing is unknown, not zero).

Conventions (documented on every column through ``COMMENT ON``):

- Times are UTC. Local time is unknown, so "night" is UTC hours 0–5 and the weekend is UTC Saturday
  and Sunday; a sender far from UTC shifts these, which is why the full hour-of-week profile is kept too.
- Hour of week: Monday 00:00–00:59 UTC = 0 … Sunday 23:00 = 167.
- Rates over direct contacts (reply_rate, unsolicited_rate) count distinct recipients (edges), not
  messages, so one chatty friend does not mask a thousand cold contacts.
- Burstiness (Goh & Barabási): B = (σ − μ)/(σ + μ) of the gaps between consecutive dated sent messages;
  −1 perfectly regular, 0 Poisson-like, → 1 bursty. Null with fewer than 3 dated messages; 1 when all
  gaps are zero.
- dormancy_burst: the largest number of messages sent within 24 h after a silence of at least
  :data:`DORMANCY_DAYS` days (silence = time since the account's previous sent message, or since
  ``created_at`` for its first message), divided by the account's median messages per active day.
  0 when no such awakening exists; null when the account has no dated sent message. A sleeper account
  that wakes up to blast 200 messages scores ≫ 1; a person back from holiday scores about 1.

Example
-------
>>> import duckdb
>>> from datetime import datetime
>>> from reputation.config import Settings
>>> from reputation.context import StageContext
>>> from reputation.schema import STORED_TABLES
>>> from reputation.graph.interactions import build_interactions
>>> from reputation.graph.templates import build_templates
>>> con = duckdb.connect()
>>> for t in ("messages", "accounts"):
...     _ = con.execute(STORED_TABLES[t].ddl())
>>> _ = con.execute("INSERT INTO accounts (platform, account) VALUES ('p', 'a'), ('p', 'b')")
>>> _ = con.execute("INSERT INTO messages (platform, sender, recipient, sent_at) VALUES "
...                 "('p', 'a', 'b', '2026-01-03 01:00'), ('p', 'a', 'b', '2026-01-05 10:00')")
>>> ctx = StageContext("r1", Settings(), datetime(2026, 1, 6))
>>> _ = build_interactions(con, ctx); _ = build_templates(con, ctx)
>>> build_features(con, ctx)
2
>>> con.sql("SELECT account, messages_sent, fan_out, fan_in, weekend_share, night_share "
...         "FROM features ORDER BY account").fetchall()
[('a', 2, 1, 0, 0.5, 0.5), ('b', 0, 0, 1, None, None)]
"""

from __future__ import annotations

import duckdb

from ..context import StageContext
from ..store import comment_table

TABLE = "features"
DORMANCY_DAYS = 14
BURST_HOURS = 24
MAX_URL_DOMAINS = 20

TABLE_DOC = (
    "Behavioural features, one row per account in accounts. Times are UTC (local time is unknown): "
    "night = UTC hours 0-5, weekend = UTC Saturday and Sunday, hour of week 0 = Monday 00:00 UTC. "
    "Accounts that never sent have zero counts and null rates and profiles."
)

COLUMN_DOCS: dict[str, str] = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform.",
    "account": "Account id.",
    "messages_sent": "Messages sent (direct and channel), count.",
    "messages_received": "Direct messages received, count.",
    "active_days": "Distinct UTC calendar days with at least one sent message, days.",
    "fan_out": "Distinct direct-message recipients, count.",
    "fan_in": "Distinct accounts that sent this account a direct message, count.",
    "channels": "Distinct channels posted in, count.",
    "reply_rate": "Share (0..1) of the account's direct recipients who ever wrote back; null without "
    "direct messages sent.",
    "unsolicited_rate": "Share (0..1) of the account's direct recipients contacted unsolicited (first "
    "contact before any message from them); null without direct messages sent.",
    "template_share": "Share (0..1) of sent messages with text whose text belongs to a template cluster "
    "with ≥ 2 messages from any sender (near-copies, see templates); null when the account sent no "
    "message with text.",
    "hour_profile": "Share (0..1) of dated sent messages per UTC hour of week (168 values, Monday "
    "00:00 UTC = index 0, sums to 1); null without dated sent messages.",
    "weekend_share": "Share (0..1) of dated sent messages on UTC Saturday or Sunday; null without dated "
    "sent messages.",
    "night_share": "Share (0..1) of dated sent messages in UTC hours 0-5 (local time unknown); null "
    "without dated sent messages.",
    "burstiness": "(σ−μ)/(σ+μ) of gaps between consecutive dated sent messages, in -1..1 (−1 regular, "
    "0 random, →1 bursty); 1 when all gaps are 0; null with fewer than 3 dated sent messages.",
    "dormancy_burst": f"Largest number of messages sent within {BURST_HOURS} h after a silence of at "
    f"least {DORMANCY_DAYS} days (since the previous sent message, or since created_at for the first), "
    "divided by the median messages per active day (ratio, ≥ 0); 0 when no such awakening; null "
    "without dated sent messages.",
    "account_age_days": "Days from created_at to the first dated sent message (negative when the "
    "directory's created_at is later); null when either is unknown.",
    "direct_share": "Share (0..1) of sent messages that were direct messages (had a recipient); null "
    "without sent messages.",
    "url_domains": f"Distinct URL domains in sent messages, most used first (at most {MAX_URL_DOMAINS}); "
    "empty list when none.",
    "first_at": "First dated message the account sent or received (UTC).",
    "last_at": "Last dated message the account sent or received (UTC).",
}

_SQL = f"""
CREATE OR REPLACE TABLE {TABLE} AS
WITH sent AS (
    SELECT platform, sender AS account,
           count(*) AS messages_sent,
           count(DISTINCT CAST(sent_at AS DATE)) AS active_days,
           count(DISTINCT recipient) AS fan_out,
           count(DISTINCT channel) AS channels,
           count(sent_at) AS dated,
           count(*) FILTER (WHERE recipient IS NOT NULL) AS direct_sent,
           count(text) AS with_text,
           count(*) FILTER (WHERE isodow(sent_at) >= 6) AS weekend_sent,
           count(*) FILTER (WHERE hour(sent_at) < 6) AS night_sent,
           min(sent_at) AS first_sent,
           max(sent_at) AS last_sent
    FROM messages
    GROUP BY platform, sender
),
received AS (
    SELECT platform, recipient AS account,
           count(*) AS messages_received,
           count(DISTINCT sender) AS fan_in,
           min(sent_at) AS first_received,
           max(sent_at) AS last_received
    FROM messages
    WHERE recipient IS NOT NULL
    GROUP BY platform, recipient
),
edges AS (
    SELECT platform, sender AS account,
           avg(CAST(reciprocated AS DOUBLE)) AS reply_rate,
           avg(CAST(unsolicited AS DOUBLE)) AS unsolicited_rate
    FROM interactions
    WHERE kind = 'direct'
    GROUP BY platform, sender
),
templated AS (
    SELECT m.platform, m.sender AS account, count(*) AS template_messages
    FROM message_templates m
    JOIN template_clusters c ON c.template_id = m.template_id
    WHERE c.messages >= 2
    GROUP BY m.platform, m.sender
),
hours AS (
    SELECT platform, sender AS account,
           histogram((isodow(sent_at) - 1) * 24 + hour(sent_at)) AS hist
    FROM messages
    WHERE sent_at IS NOT NULL
    GROUP BY platform, sender
),
domains AS (
    SELECT platform, account,
           list(url_domain ORDER BY n DESC, url_domain)[1:{MAX_URL_DOMAINS}] AS url_domains
    FROM (SELECT platform, sender AS account, url_domain, count(*) AS n
          FROM messages WHERE url_domain IS NOT NULL
          GROUP BY platform, sender, url_domain)
    GROUP BY platform, account
),
timeline AS (
    SELECT m.platform, m.sender AS account, m.sent_at,
           m.sent_at - coalesce(lag(m.sent_at) OVER w, a.created_at) AS silence,
           epoch_ms(m.sent_at) - epoch_ms(lag(m.sent_at) OVER w) AS gap_ms,
           count(*) OVER (PARTITION BY m.platform, m.sender ORDER BY m.sent_at
                          RANGE BETWEEN CURRENT ROW AND INTERVAL {BURST_HOURS} HOURS FOLLOWING) AS burst
    FROM messages m
    LEFT JOIN accounts a ON a.platform = m.platform AND a.account = m.sender
    WHERE m.sent_at IS NOT NULL
    WINDOW w AS (PARTITION BY m.platform, m.sender ORDER BY m.sent_at)
),
rhythm AS (
    SELECT platform, account,
           count(gap_ms) AS gaps,
           -- exact integer moments, so the result does not depend on the summation order of threads:
           -- n·Σg² − (Σg)² = n²·σ², and Σg = n·μ
           count(gap_ms) * sum(gap_ms::HUGEINT * gap_ms) - sum(gap_ms)::HUGEINT * sum(gap_ms) AS gap_d,
           sum(gap_ms)::HUGEINT AS gap_sum,
           coalesce(max(burst) FILTER (WHERE silence >= INTERVAL {DORMANCY_DAYS} DAYS), 0) AS awakening
    FROM timeline
    GROUP BY platform, account
),
daily AS (
    SELECT platform, account, median(n) AS median_daily
    FROM (SELECT platform, sender AS account, CAST(sent_at AS DATE) AS day, count(*) AS n
          FROM messages WHERE sent_at IS NOT NULL
          GROUP BY platform, sender, day)
    GROUP BY platform, account
)
SELECT CAST($run_id AS VARCHAR) AS run_id,
       a.platform, a.account,
       coalesce(s.messages_sent, 0)::BIGINT AS messages_sent,
       coalesce(r.messages_received, 0)::BIGINT AS messages_received,
       coalesce(s.active_days, 0)::BIGINT AS active_days,
       coalesce(s.fan_out, 0)::BIGINT AS fan_out,
       coalesce(r.fan_in, 0)::BIGINT AS fan_in,
       coalesce(s.channels, 0)::BIGINT AS channels,
       e.reply_rate,
       e.unsolicited_rate,
       coalesce(t.template_messages, 0) / nullif(s.with_text, 0) AS template_share,
       CASE WHEN s.dated > 0 THEN
           CAST(list_transform(range(168), lambda h: coalesce(hr.hist[h], 0) / s.dated) AS DOUBLE[168])
       END AS hour_profile,
       s.weekend_sent / nullif(s.dated, 0) AS weekend_share,
       s.night_sent / nullif(s.dated, 0) AS night_share,
       CASE WHEN rh.gaps < 2 THEN NULL
            WHEN rh.gap_sum = 0 THEN 1.0
            ELSE (sqrt(greatest(rh.gap_d, 0)::DOUBLE) - rh.gap_sum::DOUBLE)
                 / (sqrt(greatest(rh.gap_d, 0)::DOUBLE) + rh.gap_sum::DOUBLE) END AS burstiness,
       CASE WHEN s.dated > 0 THEN rh.awakening / dl.median_daily END AS dormancy_burst,
       epoch(s.first_sent - a.created_at) / 86400.0 AS account_age_days,
       s.direct_sent / s.messages_sent AS direct_share,
       coalesce(d.url_domains, CAST([] AS VARCHAR[])) AS url_domains,
       least(s.first_sent, r.first_received) AS first_at,
       greatest(s.last_sent, r.last_received) AS last_at
FROM accounts a
LEFT JOIN sent s ON s.platform = a.platform AND s.account = a.account
LEFT JOIN received r ON r.platform = a.platform AND r.account = a.account
LEFT JOIN edges e ON e.platform = a.platform AND e.account = a.account
LEFT JOIN templated t ON t.platform = a.platform AND t.account = a.account
LEFT JOIN hours hr ON hr.platform = a.platform AND hr.account = a.account
LEFT JOIN domains d ON d.platform = a.platform AND d.account = a.account
LEFT JOIN rhythm rh ON rh.platform = a.platform AND rh.account = a.account
LEFT JOIN daily dl ON dl.platform = a.platform AND dl.account = a.account
"""


def build_features(con: duckdb.DuckDBPyConnection, ctx: StageContext) -> int:
    """Build the ``features`` table: one row per account in ``accounts``.

    Requires ``messages``, ``accounts``, ``interactions`` (from :func:`build_interactions`) and
    ``message_templates`` / ``template_clusters`` (from :func:`build_templates`).

    Parameters
    ----------
    con
        Connection holding the tables above.
    ctx
        Run context; every row carries ``ctx.run_id``.

    Returns
    -------
    int
        Rows written (= accounts).
    """
    con.execute(_SQL, {"run_id": ctx.run_id})
    comment_table(con, TABLE, TABLE_DOC, COLUMN_DOCS)
    n = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0]
    ctx.info("features: %d accounts", n)
    return int(n)
