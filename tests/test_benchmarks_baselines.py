"""Baselines on hand-built message graphs: each runs its paper's way round (benchmarks/baselines.py)."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from benchmarks import baselines

SPAMMERS = ("s_flagged", "s_other")
VICTIMS = tuple(f"v{i}" for i in range(6))
HONEST = tuple(f"h{i}" for i in range(6))


def _db(one_way: list[tuple[str, str]], mutual: list[tuple[str, str]], flags: dict[str, str],
        identifiers: list[tuple[str, str, str]] = ()) -> duckdb.DuckDBPyConnection:
    """In-memory database with the tables the baselines read (one platform ``p``)."""
    con = duckdb.connect()
    names = sorted({a for e in one_way + mutual for a in e} | set(flags) | {a for a, _, _ in identifiers})
    con.execute("CREATE TABLE accounts (platform VARCHAR, account VARCHAR)")
    con.executemany("INSERT INTO accounts VALUES ('p', ?)", [[a] for a in names])
    con.execute("CREATE TABLE interactions (platform VARCHAR, sender VARCHAR, recipient VARCHAR, kind VARCHAR, "
                "reciprocated BOOLEAN)")
    rows = [[u, v, False] for u, v in one_way] + [[u, v, True] for a, b in mutual for u, v in ((a, b), (b, a))]
    if rows:
        con.executemany("INSERT INTO interactions VALUES ('p', ?, ?, 'direct', ?)", rows)
    con.execute("CREATE TABLE flags (platform VARCHAR, account VARCHAR, label VARCHAR)")
    con.executemany("INSERT INTO flags VALUES ('p', ?, ?)", [[a, lab] for a, lab in flags.items()])
    con.execute("CREATE TABLE identifiers (platform VARCHAR, account VARCHAR, kind VARCHAR, value_hash VARCHAR)")
    if identifiers:
        con.executemany("INSERT INTO identifiers VALUES ('p', ?, ?, ?)", [list(r) for r in identifiers])
    return con


def _scores(table) -> dict[str, float]:
    return dict(zip(table.column("account").to_pylist(), table.column("score").to_pylist(), strict=True))


@pytest.fixture()
def spam_world() -> duckdb.DuckDBPyConnection:
    """Two spammers writing one-way to the same victims; victims and honest users converse; clean seed h0."""
    one_way = [(s, v) for s in SPAMMERS for v in VICTIMS]
    ring = HONEST + VICTIMS
    mutual = [(ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))] + [("h0", "h3"), ("v0", "v3")]
    return _db(one_way, mutual, {"s_flagged": "spam", "h0": "clean"})


def test_badrank_blames_senders_not_victims(spam_world: duckdb.DuckDBPyConnection) -> None:
    s = _scores(baselines.badrank(spam_world))
    # Distrust flows back along messages: the unflagged spammer (who writes to the same victims as the
    # flagged one and is written to by nobody trusted) ranks above every victim and every honest user.
    assert all(s["s_other"] > s[a] for a in VICTIMS + HONEST if a != "h0")


@pytest.mark.parametrize("fn", [baselines.sybilrank, baselines.sybilscar])
def test_mutual_graph_ignores_one_way_messages(spam_world: duckdb.DuckDBPyConnection, fn) -> None:
    s = _scores(fn(spam_world, graph="mutual"))
    # On reciprocated edges only, the spammers' one-way messages neither taint the victims nor carry
    # trust to the spammers: the unflagged spammer is at least as suspicious as any honest user or victim.
    assert all(s["s_other"] >= s[a] for a in VICTIMS + HONEST)
    with pytest.raises(ValueError):
        fn(spam_world, graph="both")


def test_every_baseline_scores_every_account(spam_world: duckdb.DuckDBPyConnection) -> None:
    n = spam_world.execute("SELECT count(*) FROM accounts").fetchall()[0][0]
    for name, fn in baselines.BASELINES.items():
        t = fn(spam_world)
        assert t.num_rows == n, name
        assert np.all(np.isfinite(np.asarray(t.column("score")))), name


def test_identifier_carry_without_evidence_is_the_base_rate() -> None:
    crowd = [f"c{i}" for i in range(98)]
    ids = [("spam1", "ip", "nat")] + [(c, "ip", "nat") for c in crowd]  # one NAT address, 99 accounts
    ids += [("spam1", "email", "e1"), ("mate", "email", "e1")]  # a value shared by two accounts
    flags = {f"spam{i}": "spam" for i in range(1, 6)}
    con = _db([], [], flags, ids + [("loner", "email", "e2")])
    s = _scores(baselines.identifier_carry(con))
    n = con.execute("SELECT count(*) FROM accounts").fetchall()[0][0]
    assert s["spam1"] == 1.0
    assert s["loner"] == pytest.approx(5 / n)  # no evidence: the base rate of spam flags (5 of 105)
    # 1/2 > base rate > 1/99: a NAT address shared with one flagged account is weaker than no evidence.
    assert s["mate"] > s["loner"] > s["c0"] == pytest.approx(1 / 99)
