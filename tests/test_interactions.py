"""Tests of the interaction graph stage (reputation.graph.interactions)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from reputation.config import Settings
from reputation.context import StageContext
from reputation.graph.interactions import build_interactions
from reputation.schema import STORED_TABLES

CTX = StageContext("run-1", Settings(), datetime(2026, 2, 1))


def _con(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(STORED_TABLES["messages"].ddl())
    con.executemany(
        "INSERT INTO messages (platform, sender, recipient, channel, sent_at) VALUES (?, ?, ?, ?, ?)", rows
    )
    return con


def _edges(con: duckdb.DuckDBPyConnection) -> dict[tuple, tuple]:
    rows = con.execute(
        "SELECT platform, sender, coalesce(recipient, channel), kind, messages, reciprocated, replies, "
        "unsolicited, first_at, last_at, run_id FROM interactions"
    ).fetchall()
    return {r[:4]: r[4:] for r in rows}


def t(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 1, day, hour)


def test_reciprocity_and_unsolicited_direction():
    con = _con([
        ("p", "a", "b", None, t(1)), ("p", "a", "b", None, t(2)),
        ("p", "b", "a", None, t(3)),
        ("p", "s", "v", None, t(1)),  # never answered
    ])
    assert build_interactions(con, CTX) == 3
    e = _edges(con)
    assert e[("p", "a", "b", "direct")][:4] == (2, True, 1, True)
    assert e[("p", "b", "a", "direct")][:4] == (1, True, 2, False)
    assert e[("p", "s", "v", "direct")][:4] == (1, False, 0, True)
    assert e[("p", "a", "b", "direct")][4:6] == (t(1), t(2))
    assert all(v[-1] == "run-1" for v in e.values())


def test_same_ids_on_other_platform_are_other_accounts():
    con = _con([("p", "a", "b", None, t(1)), ("q", "b", "a", None, t(2))])
    build_interactions(con, CTX)
    e = _edges(con)
    assert e[("p", "a", "b", "direct")][1] is False
    assert e[("q", "b", "a", "direct")][1] is False


def test_channel_edges_and_message_with_both_targets():
    con = _con([
        ("p", "a", None, "general", t(1)),
        ("p", "a", None, "general", t(2)),
        ("p", "a", "b", "general", t(3)),
    ])
    assert build_interactions(con, CTX) == 2
    e = _edges(con)
    chan = e[("p", "a", "general", "channel")]
    assert chan[:4] == (3, None, None, None)
    assert e[("p", "a", "b", "direct")][0] == 1


@pytest.mark.parametrize(
    ("rows", "expected_a_to_b"),
    [
        # reply exists but a's message is undated: order unknown → not unsolicited
        ([("p", "a", "b", None, None), ("p", "b", "a", None, t(2))], False),
        # reply is undated: order unknown → not unsolicited
        ([("p", "a", "b", None, t(1)), ("p", "b", "a", None, None)], False),
        # no reply at all: unsolicited even when undated
        ([("p", "a", "b", None, None)], True),
        # tie: not unsolicited
        ([("p", "a", "b", None, t(1)), ("p", "b", "a", None, t(1))], False),
    ],
)
def test_undated_messages_are_conservative(rows, expected_a_to_b):
    con = _con(rows)
    build_interactions(con, CTX)
    assert _edges(con)[("p", "a", "b", "direct")][3] is expected_a_to_b


def test_table_is_documented_and_rerun_replaces():
    con = _con([("p", "a", "b", None, t(1))])
    build_interactions(con, CTX)
    build_interactions(con, CTX)
    assert con.execute("SELECT count(*) FROM interactions").fetchall()[0][0] == 1
    comments = con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'interactions'"
    ).fetchall()
    assert all(c for _, c in comments)
