"""Tests of behavioural features (reputation.graph.features)."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from reputation.config import Settings
from reputation.context import StageContext
from reputation.graph.features import COLUMN_DOCS, build_features
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
