"""Blocking rules of cross-account linkage: which pairs each rule proposes and how they are counted."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from reputation.linkage.blocking import (
    LinkageSettings,
    blocking_rule_counts,
    build_candidates,
    prepare_accounts,
)
from reputation.schema import STORED_TABLES

T0 = datetime(2026, 1, 1)


def _db(accounts: list[tuple], identifiers: list[tuple] = (),
        known: list[tuple] = ()) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for t in ("accounts", "identifiers", "known_links"):
        con.execute(STORED_TABLES[t].ddl())
    for platform, account, handle, name in accounts:
        con.execute("INSERT INTO accounts VALUES ('r', ?, ?, ?, ?, ?, NULL, NULL, true)",
                    [platform, account, T0, handle, name])
    for platform, account, kind, value, sharing in identifiers:
        con.execute("INSERT INTO identifiers VALUES ('r', ?, ?, ?, ?, 1, ?)",
                    [platform, account, kind, value, sharing])
    for pa, aa, pb, ab in known:
        con.execute("INSERT INTO known_links VALUES ('r', ?, ?, ?, ?, 'test')", [pa, aa, pb, ab])
    return con


def _pairs(con: duckdb.DuckDBPyConnection, rule: str | None = None) -> set[tuple[str, str]]:
    where = "WHERE r.rule = ?" if rule else ""
    rows = con.execute(f"""
        SELECT DISTINCT x.platform || ':' || x.account, y.platform || ':' || y.account
        FROM _lk_rule_pairs r JOIN _lk_accounts x ON x.aid = r.a JOIN _lk_accounts y ON y.aid = r.b {where}
    """, [rule] if rule else []).fetchall()
    return {tuple(sorted(r)) for r in rows}


@pytest.fixture
def world() -> duckdb.DuckDBPyConnection:
    accounts = [
        ("p1", "a1", "j.smith", "John Smith"),
        ("p2", "b1", "jsmith82", None),
        ("p1", "a2", "pena.james1973", None),
        ("p3", "c2", "j.pena1973", None),
        ("p2", "b3", "nsimpson_x", None),
        ("p1", "a3", "nora_s", "Nora Simpson"),
        ("p1", "a4", "zed", "Zed Q"),
        ("p2", "b4", "yolanda", "Yolanda Ray"),
        ("p3", "c5", "jp_official", "James Pena"),  # puts "james" and "pena" in the name vocabulary
    ] + [(f"p{1 + i % 3}", f"nat{i}", f"user{i}x", None) for i in range(12)]
    identifiers = [
        ("p1", "a4", "email", "e-zed", 2), ("p2", "b4", "email", "e-zed", 2),  # a rare shared email
    ] + [(f"p{1 + i % 3}", f"nat{i}", "ip", "nat-ip", 12) for i in range(12)]  # one NAT address
    known = [("p3", "c2", "p1", "a2")]
    con = _db(accounts, identifiers, known)
    prepare_accounts(con)
    build_candidates(con, LinkageSettings(identifier_block_cap=8))
    return con


def test_identifier_rule_skips_values_shared_by_many(world: duckdb.DuckDBPyConnection) -> None:
    ident = _pairs(world, "identifier")
    assert ("p1:a4", "p2:b4") in ident
    assert not any("nat" in a or "nat" in b for a, b in ident)  # the NAT address is no blocking key


def test_handle_normalisation_links_re_registrations(world: duckdb.DuckDBPyConnection) -> None:
    assert ("p1:a1", "p2:b1") in _pairs(world, "handle")  # j.smith / jsmith82 → jsmith


def test_name_keys_from_handles_and_display_names(world: duckdb.DuckDBPyConnection) -> None:
    keys = _pairs(world, "name_key")
    assert ("p1:a2", "p3:c2") in keys  # pena.james1973 / j.pena1973 share pena:j
    assert ("p1:a2", "p3:c5") in keys  # ... and with the display name James Pena
    assert ("p1:a3", "p2:b3") in keys  # nsimpson_x split with vocabulary word "simpson" from "Nora Simpson"
    parts = world.sql("""
        SELECT list(part ORDER BY part) FROM _lk_name_parts JOIN _lk_accounts USING (aid) WHERE account = 'b3'
    """).fetchall()[0][0]
    assert {"n", "simpson"} <= set(parts)  # "nsimpson" split; one-letter tokens are kept as initials


def test_known_links_are_candidates_and_pairs_are_ordered(world: duckdb.DuckDBPyConnection) -> None:
    assert ("p1:a2", "p3:c2") in _pairs(world, "known_link")
    assert world.sql("SELECT count(*) FROM _lk_rule_pairs WHERE a >= b").fetchall()[0][0] == 0
    # aid order is (platform, account) order, so a < b means (platform_a, account_a) < (platform_b, account_b)
    bad = world.sql("""
        SELECT count(*) FROM _lk_candidates c
        JOIN _lk_accounts x ON x.aid = c.a JOIN _lk_accounts y ON y.aid = c.b
        WHERE (x.platform, x.account) >= (y.platform, y.account)
    """).fetchall()[0][0]
    assert bad == 0


def test_rule_counts_add_up(world: duckdb.DuckDBPyConnection) -> None:
    counts = blocking_rule_counts(world)
    total = world.sql("SELECT count(*) FROM _lk_candidates").fetchall()[0][0]
    assert sum(new for _, _, new in counts) == total
    for rule, pairs, new in counts:
        assert 0 <= new <= pairs, rule
    assert counts[0][0] == "known_link" and counts[0][2] == counts[0][1]  # the first rule's pairs are all new


def test_unrelated_accounts_are_not_paired(world: duckdb.DuckDBPyConnection) -> None:
    cands = _pairs(world)
    assert not any({a, b} == {"p1:a4", "p1:a1"} for a, b in cands)
    assert ("p1:a4", "p2:b4") in cands


def test_name_pair_and_digit_rules_keep_common_name_keys_blockable() -> None:
    # "smith:j" is held by six accounts (over name_key_cap=3): the name-key rule skips it, but the rarer
    # full-name pair (james + smith) and the name key × handle digits (smith:j + 1985) still block.
    accounts = [
        ("p1", "a1", "james.smith", "James Smith"),
        ("p2", "b1", "smithjames", None),
        ("p1", "a2", "j.smith1985", None),
        ("p2", "b2", "smith_j1985", None),
        ("p1", "a3", "john_smith", "John Smith"),
        ("p2", "b3", "jack.smith", "Jack Smith"),
    ]
    con = _db(accounts)
    prepare_accounts(con)
    build_candidates(con, LinkageSettings(name_key_cap=3, name_pair_cap=3, name_digits_cap=3,
                                          handle_block_cap=1, qgram_df_cap=1))
    assert ("p1:a2", "p2:b2") not in _pairs(con, "name_key")
    assert _pairs(con, "name_pair") == {("p1:a1", "p2:b1")}
    assert _pairs(con, "name_digits") == {("p1:a2", "p2:b2")}
    # a cap below the key's holders drops it
    build_candidates(con, LinkageSettings(name_key_cap=3, name_pair_cap=1, name_digits_cap=1))
    assert not _pairs(con, "name_pair") and not _pairs(con, "name_digits")


def test_campaign_name_rule_pairs_common_name_keys_inside_a_campaign() -> None:
    accounts = [("p1", "a1", "j.dunn", "Jordan Dunn"), ("p2", "b1", "dunn_j7", None),
                ("p1", "a2", "jdunn_x", "Jill Dunn"), ("p3", "c2", "dunn_j", None), ("p2", "b2", "jdunn", None)]
    con = _db(accounts)
    con.execute("CREATE TABLE campaigns (platform VARCHAR, account VARCHAR, campaign_id VARCHAR)")
    for platform, account, campaign in [("p1", "a1", "c1"), ("p2", "b1", "c1"), ("p1", "a2", "c2"),
                                        ("p3", "c2", "c3")]:
        con.execute("INSERT INTO campaigns VALUES (?, ?, ?)", [platform, account, campaign])
    prepare_accounts(con)
    build_candidates(con, LinkageSettings(name_key_cap=3))
    assert _pairs(con, "name_key") == set()  # dunn:j is held by five accounts: too common on its own
    # inside campaign c1 it is rare: only its two members (different campaigns and no campaign pair nothing)
    assert _pairs(con, "campaign_name") == {("p1:a1", "p2:b1")}
