"""Tests of behavioural features (reputation.graph.features)."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pytest

from reputation.config import Settings
from reputation.context import StageContext
from reputation.graph.features import BURST_HOURS, COLUMN_DOCS, DORMANCY_DAYS, MAX_URL_DOMAINS, build_features
from reputation.graph.interactions import build_interactions
from reputation.graph.templates import build_templates
from reputation.schema import STORED_TABLES

CTX = StageContext("run-1", Settings(), datetime(2026, 3, 1))
MON = datetime(2026, 1, 5)  # a Monday
SPAM = "win a free gift card now just click the link below today"


def _build(messages: list[tuple], accounts: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for t in ("messages", "accounts"):
        con.execute(STORED_TABLES[t].ddl())
    con.executemany(
        "INSERT INTO messages (platform, sender, recipient, channel, sent_at, text, url_domain) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", messages)
    con.executemany("INSERT INTO accounts (platform, account, created_at) VALUES (?, ?, ?)", accounts)
    build_interactions(con, CTX)
    build_templates(con, CTX)
    build_features(con, CTX)
    return con


def _row(con: duckdb.DuckDBPyConnection, account: str) -> dict:
    rel = con.sql("SELECT * FROM features WHERE account = $a", params={"a": account})
    cols = rel.columns
    rows = rel.fetchall()
    assert len(rows) == 1
    return dict(zip(cols, rows[0], strict=True))


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    msgs: list[tuple] = []
    # spammer: 10 DMs of one template to 10 strangers on Sunday night, one replies
    for i in range(10):
        msgs.append(("p", "spam", f"v{i}", None, MON + timedelta(days=6, hours=1, minutes=i), SPAM, "x.top"))
    msgs.append(("p", "v0", "spam", None, MON + timedelta(days=7), "who is this and why are you writing me",
                 None))
    # friend: weekday daytime chat with b, who answers; one channel post
    chat = ["what do you think about the garden project", "our trip to the coast was lovely, thanks again",
            "that strange movie kept me awake all night", "have you tried the new bakery in town yet"]
    for d, text in enumerate(chat):
        msgs.append(("p", "friend", "b", None, MON + timedelta(days=d, hours=14), text, None))
        msgs.append(("p", "b", "friend", None, MON + timedelta(days=d, hours=15), "sure sounds good", None))
    msgs.append(("p", "friend", None, "general", MON + timedelta(days=1, hours=10), "hello all", "news.org"))
    # sleeper: created long ago, one message, 30 days silence, then 20 messages within an hour
    msgs.append(("p", "sleeper", "z", None, MON, "first ever message from me to you", None))
    for i in range(20):
        at = MON + timedelta(days=30, minutes=i)
        msgs.append(("p", "sleeper", f"w{i}", None, at, SPAM + f" {i}", None))
    accounts = [("p", a, datetime(2025, 12, 1)) for a in ("spam", "friend", "b", "sleeper", "z")]
    accounts += [("p", f"v{i}", None) for i in range(10)] + [("p", f"w{i}", None) for i in range(20)]
    accounts += [("p", "silent", datetime(2026, 1, 1))]
    return _build(msgs, accounts)


def test_one_row_per_account_with_documented_columns(con):
    assert con.execute("SELECT count(*), count(DISTINCT (platform, account)) FROM features").fetchall() == [
        (36, 36)]
    cols = dict(con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'features'").fetchall())
    assert set(cols) == set(COLUMN_DOCS)
    assert all(cols.values())


def test_spammer_features(con):
    r = _row(con, "spam")
    assert (r["messages_sent"], r["fan_out"], r["fan_in"], r["messages_received"]) == (10, 10, 1, 1)
    assert r["reply_rate"] == pytest.approx(0.1)
    assert r["unsolicited_rate"] == 1.0
    assert r["template_share"] == 1.0
    assert r["weekend_share"] == 1.0 and r["night_share"] == 1.0
    assert r["direct_share"] == 1.0
    assert r["url_domains"] == ["x.top"]
    profile = r["hour_profile"]
    assert len(profile) == 168 and profile[6 * 24 + 1] == 1.0  # Sunday 01:00 UTC
    assert r["account_age_days"] == pytest.approx(41 + 1 / 24)  # 2025-12-01 → 2026-01-11 01:00


def test_friend_features(con):
    r = _row(con, "friend")
    assert r["messages_sent"] == 5 and r["channels"] == 1 and r["active_days"] == 4
    assert r["reply_rate"] == 1.0 and r["unsolicited_rate"] == 1.0  # friend wrote first
    assert _row(con, "b")["unsolicited_rate"] == 0.0
    assert r["template_share"] == 0.0
    assert r["weekend_share"] == 0.0 and r["night_share"] == 0.0
    assert r["direct_share"] == pytest.approx(0.8)
    assert sum(r["hour_profile"]) == pytest.approx(1.0)
    assert r["first_at"] == MON + timedelta(hours=14)
    assert r["last_at"] == MON + timedelta(days=3, hours=15)  # last message received


def test_burstiness_and_dormancy(con):
    sleeper = _row(con, "sleeper")
    friend = _row(con, "friend")
    # one 30-day gap and 19 one-minute gaps: σ/μ ≈ √19 → B ≈ 0.63
    assert sleeper["burstiness"] == pytest.approx(0.6266, abs=1e-3)
    assert friend["burstiness"] < 0.0  # roughly daily
    # 20 messages in 24 h after 30 silent days; median per active day = (1 + 20) / 2 → 20 / 10.5
    assert sleeper["dormancy_burst"] == pytest.approx(20 / 10.5)
    # created 2025-12-01, first message 35 days later, 3 messages in the next 24 h, median 1 a day
    assert friend["dormancy_burst"] == pytest.approx(3.0)
    assert _row(con, "spam")["dormancy_burst"] == pytest.approx(1.0)  # 10 in 24 h after 41 days / 10
    assert _row(con, "v1")["dormancy_burst"] is None  # never sent


def test_account_that_never_sent(con):
    r = _row(con, "silent")
    assert (r["messages_sent"], r["fan_out"], r["active_days"]) == (0, 0, 0)
    for key in ("reply_rate", "template_share", "hour_profile", "burstiness", "dormancy_burst",
                "account_age_days", "direct_share", "first_at"):
        assert r[key] is None, key
    assert r["url_domains"] == []


# The straightforward set-wise SQL the stage used before its time features moved to a compiled pass
# (windows and count(DISTINCT) over messages); kept as the reference the fast version must match.
_REFERENCE_SQL = f"""
CREATE OR REPLACE TABLE features_reference AS
WITH sent AS (
    SELECT platform, sender AS account,
           count(*) AS messages_sent,
           count(DISTINCT CAST(sent_at AS DATE)) AS active_days,
           count(DISTINCT recipient) FILTER (WHERE recipient <> sender) AS fan_out,  -- a note to self: no contact
           count(DISTINCT channel) AS channels,
           count(sent_at) AS dated,
           count(*) FILTER (WHERE recipient IS NOT NULL AND recipient <> sender) AS direct_sent,
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
    WHERE recipient IS NOT NULL AND recipient <> sender
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


def _random_world(seed: int) -> duckdb.DuckDBPyConnection:
    """Messages with ties, undated and textless messages, channel posts, long silences, senders
    missing from accounts and accounts without created_at."""
    rng = np.random.default_rng(seed)
    users = [f"u{i}" for i in range(30)]
    base = datetime(2025, 6, 1)
    msgs: list[tuple] = []
    for _ in range(700):
        platform = ["p", "q"][int(rng.integers(2))]
        sender = users[int(rng.integers(len(users)))] if rng.random() < 0.97 else "ghost"
        recipient = users[int(rng.integers(len(users)))] if rng.random() < 0.7 else None
        channel = f"c{int(rng.integers(4))}" if recipient is None or rng.random() < 0.1 else None
        # clustered times: a random day (some far apart, for dormancy), then minutes or exact ties
        day = int(rng.choice([0, 1, 2, 40, 41, 90, 200, 201]))
        at = base + timedelta(days=day, minutes=int(rng.integers(0, 3000)) if rng.random() < 0.8 else 0,
                              milliseconds=int(rng.integers(0, 3)))
        sent_at = at if rng.random() < 0.95 else None
        text = ([SPAM, "hello there friend how are you", "see the report attached please"][int(rng.integers(3))]
                + ("" if rng.random() < 0.5 else f" {int(rng.integers(5))}")) if rng.random() < 0.9 else None
        domain = ["a.com", "b.org", "c.top", None][int(rng.integers(4))]
        msgs.append((platform, sender, recipient, channel, sent_at, text, domain))
    accounts = [(p, u, None if rng.random() < 0.2 else base - timedelta(days=int(rng.integers(-30, 400))))
                for p in ("p", "q") for u in users]
    accounts.append(("p", "nobody", None))
    return _build(msgs, accounts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_reference_sql(seed):
    con = _random_world(seed)
    con.execute(_REFERENCE_SQL, {"run_id": CTX.run_id})
    cols = [c for c in con.sql("SELECT * FROM features").columns if c != "burstiness"]
    diff = con.sql(f"SELECT {', '.join(cols)} FROM features EXCEPT ALL "
                   f"SELECT {', '.join(cols)} FROM features_reference").fetchall()
    diff += con.sql(f"SELECT {', '.join(cols)} FROM features_reference EXCEPT ALL "
                    f"SELECT {', '.join(cols)} FROM features").fetchall()
    assert diff == []
    # burstiness: the reference uses exact integer moments, the kernel a two-pass float variance
    pairs = con.sql("SELECT f.burstiness, r.burstiness FROM features f JOIN features_reference r "
                    "USING (platform, account)").fetchall()
    assert sum(b is not None for b, _ in pairs) > 10
    for new, ref in pairs:
        assert (new is None) == (ref is None)
        if new is not None:
            assert new == pytest.approx(ref, abs=1e-12)
    assert con.sql("SELECT count(*) FROM features WHERE dormancy_burst > 0").fetchall()[0][0] > 0


@pytest.mark.parametrize("messages", [1_000, 300_000])
def test_sender_keys_reach_the_kernel_read_only_however_many_chunks(messages: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """One Arrow chunk converts read-only, several into a writable copy: the kernel must see one type."""
    from reputation.graph import features

    con = duckdb.connect()
    for t in ("messages", "accounts"):
        con.execute(STORED_TABLES[t].ddl())
    con.execute("""INSERT INTO messages (platform, sender, sent_at, text)
                   SELECT 'p', 'a' || (i % 997), TIMESTAMP '2026-01-05' + INTERVAL (i) SECOND, 'hi'
                   FROM range($n) r(i)""", {"n": messages})
    seen = []
    kernel = features._dense_ids

    def recording(keys: np.ndarray):
        seen.append(keys.flags.writeable)
        return kernel(keys)

    monkeypatch.setattr(features, "_dense_ids", recording)
    out = features._timelines(con)
    assert seen == [False]
    assert out.num_rows == 997 and sum(out.column("messages_sent").to_pylist()) == messages
