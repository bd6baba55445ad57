"""Interaction graph: aggregate messages into sender→recipient and sender→channel edges.

One row per directed edge and kind:

- ``direct``: a message with a recipient, keyed by (platform, sender, recipient). ``channel`` is null.
- ``channel``: a message posted in a channel, keyed by (platform, sender, channel). ``recipient`` is null.

A message that carries both a recipient and a channel (a reply addressed to someone inside a thread)
counts on both edges: it is a contact with that person *and* a post in that channel. A message to oneself
(a note, a test) is no contact: it makes no direct edge, so it can neither answer itself nor count as a
recipient who wrote back.

Reciprocity is the signal the design brief names first ("writes to people they have no relationship
with"): a direct edge is ``reciprocated`` when the recipient ever sent a direct message back to the
sender on the same platform, and ``unsolicited`` when the sender's first message came before any
message in the other direction.

Messages without ``sent_at`` are treated conservatively, never to the sender's disadvantage: an edge
is unsolicited only when the recipient never wrote back at all, or when both directions are fully
dated and the sender's first message is strictly earlier than the recipient's first reply. When a
reply exists but either direction contains an undated message (or the first times tie), the order is
unknown and the edge is *not* unsolicited.

Example
-------
>>> import duckdb
>>> from datetime import datetime
>>> from reputation.config import Settings
>>> from reputation.context import StageContext
>>> from reputation.schema import STORED_TABLES
>>> con = duckdb.connect()
>>> _ = con.execute(STORED_TABLES["messages"].ddl())
>>> _ = con.execute("INSERT INTO messages (platform, sender, recipient, sent_at) VALUES "
...                 "('p', 'a', 'b', '2026-01-01 10:00'), ('p', 'b', 'a', '2026-01-01 11:00')")
>>> ctx = StageContext("r1", Settings(), datetime(2026, 1, 2))
>>> build_interactions(con, ctx)
2
>>> con.sql("SELECT sender, reciprocated, unsolicited FROM interactions ORDER BY sender").fetchall()
[('a', True, True), ('b', True, False)]
"""

from __future__ import annotations

import duckdb

from ..context import StageContext
from ..store import comment_table

TABLE = "interactions"

TABLE_DOC = (
    "Interaction graph: one row per directed edge. kind = 'direct' for sender→recipient direct messages "
    "(channel null), kind = 'channel' for sender→channel posts (recipient null). A message with both a "
    "recipient and a channel counts on both edges; a message to oneself makes no direct edge. Reciprocity and "
    "unsolicited first contact are defined "
    "for direct edges only; undated messages never make an edge unsolicited when a reply exists."
)

COLUMN_DOCS: dict[str, str] = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform of both endpoints.",
    "sender": "Sending account id.",
    "recipient": "Receiving account id (kind = 'direct'), null for channel edges.",
    "channel": "Channel / thread / group (kind = 'channel'), null for direct edges.",
    "kind": "'direct' (sender→recipient) or 'channel' (sender→channel).",
    "messages": "Messages on this edge, count.",
    "first_at": "First dated message on the edge (UTC); null when no message was dated.",
    "last_at": "Last dated message on the edge (UTC); null when no message was dated.",
    "reciprocated": "Direct edges: true when the recipient ever sent a direct message back to the sender "
    "on the same platform. Null for channel edges.",
    "replies": "Direct edges: messages recipient→sender, count (0 when never). Null for channel edges.",
    "unsolicited": "Direct edges: true when the sender's first message precedes any message in the other "
    "direction (true when there is none; false when a reply exists and the order is unknown because of "
    "undated messages or equal times). Null for channel edges.",
}

# Direct edges: aggregate each direction once, then join an edge with its reverse.
_SQL = f"""
CREATE OR REPLACE TABLE {TABLE} AS
WITH direct AS (
    SELECT platform, sender, recipient,
           count(*) AS messages,
           min(sent_at) AS first_at,
           max(sent_at) AS last_at,
           count(*) FILTER (WHERE sent_at IS NULL) AS undated
    FROM messages
    WHERE recipient IS NOT NULL AND recipient <> sender
    GROUP BY platform, sender, recipient
),
channel_edges AS (
    SELECT platform, sender, channel,
           count(*) AS messages,
           min(sent_at) AS first_at,
           max(sent_at) AS last_at
    FROM messages
    WHERE channel IS NOT NULL
    GROUP BY platform, sender, channel
)
SELECT CAST($run_id AS VARCHAR) AS run_id,
       d.platform, d.sender, d.recipient, CAST(NULL AS VARCHAR) AS channel,
       'direct' AS kind,
       d.messages, d.first_at, d.last_at,
       r.messages IS NOT NULL AS reciprocated,
       coalesce(r.messages, 0)::BIGINT AS replies,
       CASE
           WHEN r.messages IS NULL THEN true
           WHEN d.undated > 0 OR r.undated > 0 THEN false
           ELSE d.first_at < r.first_at
       END AS unsolicited
FROM direct d
LEFT JOIN direct r
  ON r.platform = d.platform AND r.sender = d.recipient AND r.recipient = d.sender
UNION ALL
SELECT CAST($run_id AS VARCHAR) AS run_id,
       platform, sender, CAST(NULL AS VARCHAR) AS recipient, channel,
       'channel' AS kind,
       messages, first_at, last_at,
       CAST(NULL AS BOOLEAN) AS reciprocated,
       CAST(NULL AS BIGINT) AS replies,
       CAST(NULL AS BOOLEAN) AS unsolicited
FROM channel_edges
"""


def build_interactions(con: duckdb.DuckDBPyConnection, ctx: StageContext) -> int:
    """Build the ``interactions`` table from ``messages``.

    Parameters
    ----------
    con
        Connection holding the canonical ``messages`` table.
    ctx
        Run context; every row carries ``ctx.run_id``.

    Returns
    -------
    int
        Number of edges written (direct plus channel).
    """
    con.execute(_SQL, {"run_id": ctx.run_id})
    comment_table(con, TABLE, TABLE_DOC, COLUMN_DOCS)
    n = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0]
    ctx.info("interactions: %d edges", n)
    return int(n)
