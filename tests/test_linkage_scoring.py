"""Fellegi–Sunter scoring: EM estimation on synthetic level matrices and the build_links stage."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import numpy as np
import pytest

from reputation.config import Settings
from reputation.context import StageContext
from reputation.linkage import scoring
from reputation.linkage.stage import build_links
from reputation.schema import STORED_TABLES

T0 = datetime(2026, 1, 1)


def _simulate(rng: np.random.Generator, n: int, match_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Level matrix for n pairs drawn from a known model: matches favour high levels."""
    is_match = rng.random(n) < match_share
    k = len(scoring.COMPARISONS)
    g = np.zeros((n, k), dtype=np.int8)
    for j, levels in enumerate(scoring.N_LEVELS):
        top = levels - 1
        m = np.linspace(1, 8, levels) ** 2
        m /= m.sum()
        u = np.linspace(8, 1, levels) ** 3
        u /= u.sum()
        g[is_match, j] = rng.choice(levels, size=is_match.sum(), p=m)
        g[~is_match, j] = rng.choice(levels, size=(~is_match).sum(), p=u)
        assert top >= 1
    return g, is_match


def test_probability_is_the_logistic_of_match_weight() -> None:
    assert scoring.probability(np.array([0.0]))[0] == pytest.approx(0.5)
    assert scoring.probability(np.array([1.0]))[0] == pytest.approx(2 / 3)
    assert scoring.probability(np.array([-1e9, 1e9])).tolist() == pytest.approx([0.0, 1.0])


def test_em_separates_matches_from_non_matches() -> None:
    rng = np.random.default_rng(3)
    g_blocked, truth = _simulate(rng, 4000, 0.3)
    g_random, _ = _simulate(rng, 20000, 0.0)
    fixed = truth & (rng.random(len(truth)) < 0.1)  # a few known links
    total = 4000 / 0.3 * 10  # population pairs: candidates are a small, match-rich slice
    model = scoring.estimate(g_blocked, g_random, fixed, int(total), max_iter=60)
    p = scoring.probability(model.match_weight(g_blocked))
    predicted = p >= 0.5
    precision = (predicted & truth).sum() / predicted.sum()
    recall = (predicted & truth).sum() / truth.sum()
    assert precision > 0.9 and recall > 0.9
    # weights rise with the level for a comparison whose levels are ordered evidence
    w = model.weights()[0]
    assert w[-1] > w[0]
    assert 0 < model.lam < 0.5


def test_missing_levels_carry_no_weight() -> None:
    m = [np.arange(1, n + 1, dtype=float) / np.arange(1, n + 1).sum() for n in scoring.N_LEVELS]
    u = [x[::-1].copy() for x in m]
    model = scoring.FSModel(m, u, lam=0.01)
    g = np.full((1, len(scoring.COMPARISONS)), -1, dtype=np.int8)
    assert model.match_weight(g)[0] == pytest.approx(model.prior_weight)
    top = scoring.N_LEVELS[0] - 1
    g[0, 0] = top
    assert model.match_weight(g)[0] == pytest.approx(model.prior_weight + np.log2(m[0][top] / u[0][top]))


def _linkage_db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for t in ("accounts", "identifiers", "known_links"):
        con.execute(STORED_TABLES[t].ddl())
    people = ["ana lopez", "bo chen", "cy diaz", "di evans", "ed ford", "flo green", "gus hall", "ivy jones",
              "jo king", "kim lee", "lu moss", "max nash", "ned owen", "ora park", "pia quinn", "rex ross"]
    for i, name in enumerate(people):
        first, last = name.split()
        con.execute("INSERT INTO accounts VALUES ('r', 'alpha', ?, ?, ?, ?, ?, NULL, true)",
                    [f"a{i}", T0, f"{first}.{last}{i}", name.title(), f"mail{i}"])
        con.execute("INSERT INTO accounts VALUES ('r', 'beta', ?, ?, ?, NULL, ?, NULL, true)",
                    [f"b{i}", T0, f"{first[0]}{last}_{i}", f"mail{i}" if i % 2 else None])
        con.execute("INSERT INTO identifiers VALUES ('r', 'alpha', ?, 'email', ?, 1, ?)",
                    [f"a{i}", f"mail{i}", 2 if i % 2 else 1])
        if i % 2:
            con.execute("INSERT INTO identifiers VALUES ('r', 'beta', ?, 'email', ?, 1, 2)",
                        [f"b{i}", f"mail{i}"])
    con.execute("INSERT INTO known_links VALUES ('r', 'beta', 'b0', 'alpha', 'a0', 'test')")
    return con


@pytest.fixture(scope="module")
def linked() -> duckdb.DuckDBPyConnection:
    con = _linkage_db()
    build_links(con, StageContext("run1", Settings(), T0))
    return con


def test_links_have_contract_columns_and_ordered_pairs(linked: duckdb.DuckDBPyConnection) -> None:
    cols = [r[0] for r in linked.sql("SELECT column_name FROM duckdb_columns() WHERE table_name = 'links' "
                                     "ORDER BY column_index").fetchall()]
    assert cols == ["run_id", "platform_a", "account_a", "platform_b", "account_b", "probability",
                    "match_weight", "evidence", "rules", "carry_probability"]
    assert linked.sql("SELECT count(*) FROM links WHERE (platform_a, account_a) >= (platform_b, account_b) "
                      "OR run_id <> 'run1' OR probability < 0.5").fetchall()[0][0] == 0


def test_same_people_are_linked_across_platforms(linked: duckdb.DuckDBPyConnection) -> None:
    pairs = set(linked.sql("SELECT account_a, account_b FROM links").fetchall())
    same = {(f"a{i}", f"b{i}") for i in range(16)}
    assert len(pairs & same) >= 14
    assert len(pairs - same) <= 1


def test_evidence_explains_the_match_weight(linked: duckdb.DuckDBPyConnection) -> None:
    prior = linked.sql("SELECT weight FROM linkage_model WHERE comparison = 'prior'").fetchall()[0][0]
    for evidence, weight in linked.sql("SELECT evidence, match_weight FROM links").fetchall():
        items = json.loads(evidence)
        assert {"comparison", "level", "weight"} <= set(items[0])
        assert prior + sum(i["weight"] for i in items) == pytest.approx(weight, abs=1e-2)


def test_a_flag_carries_over_what_links_two_accounts_beyond_their_names(linked: duckdb.DuckDBPyConnection) -> None:
    rows = linked.sql("SELECT evidence, match_weight, probability, carry_probability FROM links").fetchall()
    named = 0
    for evidence, weight, p, carry in rows:
        names = sum(max(0.0, i["weight"]) for i in json.loads(evidence)
                    if i["comparison"] in ("handle_name", "handle_digits"))
        named += names > 0
        declared = any(i["comparison"] == "known_link" and i["level"] == "declared" for i in json.loads(evidence))
        expected = 1.0 if declared else min(p, 2 ** (weight - names) / (1 + 2 ** (weight - names)))
        assert carry == pytest.approx(expected, abs=1e-3)
    assert named  # the test world's pairs do share names


def test_model_and_rule_tables(linked: duckdb.DuckDBPyConnection) -> None:
    comps = {r[0] for r in linked.sql("SELECT DISTINCT comparison FROM linkage_model").fetchall()}
    assert {"prior", "email", "handle_name", "platform"} <= comps
    bad = linked.sql("SELECT count(*) FROM linkage_model WHERE comparison <> 'prior' "
                     "AND (m <= 0 OR m > 1 OR u <= 0 OR u > 1)").fetchall()[0][0]
    assert bad == 0
    rules = dict(linked.sql("SELECT rule, pairs FROM blocking_rules").fetchall())
    assert rules["known_link"] == 1 and rules["identifier"] >= 8
    assert linked.sql("SELECT count(*) FROM candidate_pairs").fetchall()[0][0] >= \
        linked.sql("SELECT count(*) FROM links").fetchall()[0][0]


def test_build_links_is_deterministic(linked: duckdb.DuckDBPyConnection) -> None:
    again = _linkage_db()
    build_links(again, StageContext("run1", Settings(), T0))
    q = "SELECT * EXCLUDE (evidence), evidence::VARCHAR FROM links ORDER BY ALL"
    assert linked.sql(q).fetchall() == again.sql(q).fetchall()


def _campaign_levels(campaigns: list[tuple[str, str]], identifiers: list[tuple[str, str]] = (),
                     sent: tuple[int, ...] = (50, 50, 50, 50)) -> dict:
    """Campaign level of every pair of four accounts x0..x3 (platform 'p') given campaign memberships
    (account, campaign), shared identifiers (account, value; a value shared by two accounts) and the
    number of messages each account sent."""
    from reputation.linkage.blocking import LinkageSettings, prepare_accounts
    from reputation.linkage.scoring import compute_levels, level_totals
    from reputation.linkage.stage import linkage_settings

    con = duckdb.connect()
    for t in ("accounts", "identifiers"):
        con.execute(STORED_TABLES[t].ddl())
    names = ["ann", "bob", "cat", "dan"]
    for i, n in enumerate(names):
        con.execute("INSERT INTO accounts VALUES ('r', 'p', ?, ?, ?, NULL, NULL, NULL, true)", [f"x{i}", T0, n])
    for account, value in identifiers:
        con.execute("INSERT INTO identifiers VALUES ('r', 'p', ?, 'ip', ?, 1, 2)", [account, value])
    con.execute("CREATE TABLE features (platform VARCHAR, account VARCHAR, messages_sent BIGINT, "
                "first_at TIMESTAMP, last_at TIMESTAMP, hour_profile DOUBLE[168])")
    for i, n in enumerate(sent):
        con.execute("INSERT INTO features VALUES ('p', ?, ?, ?, ?, NULL)", [f"x{i}", n, T0, T0])
    con.execute("CREATE TABLE campaigns (platform VARCHAR, account VARCHAR, campaign_id VARCHAR)")
    for account, campaign in campaigns:
        con.execute("INSERT INTO campaigns VALUES ('p', ?, ?)", [account, campaign])
    prepare_accounts(con)
    con.execute("CREATE TEMP TABLE _t_pairs AS SELECT x.aid AS a, y.aid AS b FROM _lk_accounts x "
                "JOIN _lk_accounts y ON x.aid < y.aid")
    compute_levels(con, "_t_pairs", "_t_levels", linkage_settings(StageContext("r", Settings(), T0)))
    rows = con.sql("SELECT x.account, y.account, l.campaign FROM _t_levels l JOIN _lk_accounts x ON x.aid = l.a "
                   "JOIN _lk_accounts y ON y.aid = l.b").fetchall()
    k = [c.name for c in scoring.COMPARISONS].index("campaign")
    totals = level_totals(con, LinkageSettings())[scoring.OFFSETS[k]:scoring.OFFSETS[k] + scoring.N_LEVELS[k]]
    return {(a, b): lv for a, b, lv in rows}, totals


def test_campaign_comparison_levels() -> None:
    levels, totals = _campaign_levels([("x0", "c1"), ("x1", "c1"), ("x2", "c2")])
    assert levels[("x0", "x1")] == 2  # same campaign
    assert levels[("x0", "x2")] == 1  # different campaigns
    assert levels[("x0", "x3")] == 0  # only one of the two in a campaign
    # ... but an account that sent (almost) nothing could not have been seen in a campaign: no level
    levels, _ = _campaign_levels([("x0", "c1"), ("x1", "c1"), ("x2", "c2")], sent=(50, 50, 50, 2))
    assert levels[("x0", "x3")] == -1 and levels[("x0", "x2")] == 1
    assert totals[2] == 1 and np.isnan(totals[:2]).all()  # one same-campaign pair, counted exactly
    # A shared identifier (operator infrastructure) already carries the operator evidence: no campaign level.
    levels, _ = _campaign_levels([("x0", "c1"), ("x1", "c1")], identifiers=[("x0", "ip1"), ("x1", "ip1")])
    assert levels[("x0", "x1")] == -1
    # Without campaigns every pair is "not comparable" (weight 0), so the stage runs before campaigns exist.
    levels, totals = _campaign_levels([])
    assert set(levels.values()) == {-1} and totals[2] == 0


def test_exact_level_totals_replace_the_sampled_u() -> None:
    rng = np.random.default_rng(5)
    g_blocked, truth = _simulate(rng, 3000, 0.3)
    g_random, _ = _simulate(rng, 20000, 0.0)
    total = 3000 / 0.3 * 10
    k = [c.name for c in scoring.COMPARISONS].index("campaign")
    totals = np.full(scoring.TOTAL_LEVELS + 1, np.nan)
    totals[scoring.OFFSETS[k] + 2] = 50.0  # the level is rarer among all pairs than the sample says
    plain = scoring.estimate(g_blocked, g_random, truth & (rng.random(len(truth)) < 0.1), int(total))
    exact = scoring.estimate(g_blocked, g_random, truth & (rng.random(len(truth)) < 0.1), int(total),
                             level_totals=totals)
    assert exact.u[k][2] < plain.u[k][2]
    assert exact.u[k][2] <= 50.01 / (total - exact.lam * total) * (1 + 1e-9)  # (count + 0.01) / non-matches
    assert exact.u[k].sum() == pytest.approx(1.0)


def test_common_name_keys_have_their_own_level_counted_over_all_pairs() -> None:
    from reputation.linkage.blocking import LinkageSettings, prepare_accounts
    from reputation.linkage.scoring import compute_levels, level_totals

    def levels(cap: int) -> tuple[set[int], float]:
        con = duckdb.connect()
        for t in ("accounts", "identifiers"):
            con.execute(STORED_TABLES[t].ddl())
        for i, (handle, name) in enumerate([("j.dunn", "Jill Dunn"), ("dunn_j7", None), ("jdunn_x", None)]):
            con.execute("INSERT INTO accounts VALUES ('r', 'p', ?, ?, ?, ?, NULL, NULL, true)",
                        [f"x{i}", T0, handle, name])
        prepare_accounts(con)
        con.execute("CREATE TEMP TABLE _t_pairs AS SELECT x.aid AS a, y.aid AS b FROM _lk_accounts x "
                    "JOIN _lk_accounts y ON x.aid < y.aid")
        s = LinkageSettings(name_key_cap=cap, rare_name_accounts=1)
        compute_levels(con, "_t_pairs", "_t_levels", s)
        k = [c.name for c in scoring.COMPARISONS].index("handle_name")
        return ({r[0] for r in con.sql("SELECT handle_name FROM _t_levels").fetchall()},
                level_totals(con, s)[scoring.OFFSETS[k] + 3])

    # dunn:j is held by three accounts: blockable under a cap of 25, "common" (not blocked) under a cap of 2
    assert levels(25) == ({4}, 0.0)
    assert levels(2) == ({3}, 3.0)  # its three pairs are counted without enumerating them


def test_households_sharing_a_device_count_as_non_matches_of_the_device() -> None:
    """u of a shared device is the share of *non-matching* pairs that share one, counted directly.

    Synthetic candidates: same-person pairs sharing an e-mail (and some a device), same-person pairs sharing a
    device and an IP only (most of them), and household pairs sharing the family device, the home IP and a
    last name.
    The method of moments takes the device's matches from the pairs that look like matches without it (the
    households, by their last name) and scales them up to all matches, most of which only the device shows,
    so u falls far below the household share; counting non-matches directly finds it.
    """
    names = [c.name for c in scoring.COMPARISONS]
    col = {n: names.index(n) for n in names}
    rng = np.random.default_rng(11)

    def pairs(n: int, **levels: int) -> np.ndarray:
        g = np.full((n, len(names)), -1, dtype=np.int8)
        g[:, col["known_link"]] = 0
        g[:, col["platform"]] = 1
        for name in ("email", "phone", "device", "ip"):
            g[:, col[name]] = 0
        g[:, col["handle_name"]] = 0
        for name, level in levels.items():
            g[:, col[name]] = level
        return g

    email_matches = pairs(3000, email=4, handle_name=9)
    email_matches[rng.random(3000) < 0.3, col["device"]] = 3
    device_matches = pairs(300, device=3, ip=4)
    phone_matches = pairs(6000, device=4, ip=4)  # most matches are seen through their device alone
    households = pairs(600, device=3, ip=4, handle_name=2)
    namesakes = pairs(20000, handle_name=2)
    g_blocked = np.vstack([email_matches, device_matches, phone_matches, households, namesakes])
    truth = np.r_[np.ones(9300, bool), np.zeros(20600, bool)]
    g_random = pairs(50000)
    g_random[rng.random(50000) < 0.01, col["handle_name"]] = 2
    total = 10_000_000
    fixed = truth & (rng.random(len(truth)) < 0.05)

    def device_u(model: scoring.FSModel) -> float:
        return float(model.u[col["device"]][3])

    counted = scoring.estimate(g_blocked, g_random, fixed, total, max_iter=80)
    true_u = 600 / (total - 9300)
    assert true_u / 2 < device_u(counted) < 2 * true_u
    plain_flags = np.zeros_like(scoring._COUNTED_NON_MATCHES)
    original = scoring._COUNTED_NON_MATCHES
    try:
        scoring._COUNTED_NON_MATCHES = plain_flags
        moments = scoring.estimate(g_blocked, g_random, fixed, total, max_iter=80)
    finally:
        scoring._COUNTED_NON_MATCHES = original
    assert device_u(moments) < true_u / 4  # what the method of moments gives on the same pairs


def test_counted_device_u_stays_a_distribution_in_a_tiny_world() -> None:
    """Ten accounts, 44 of their 45 pairs share a device and an IP, 4 are known links with an e-mail too: the
    counted non-matches cannot exceed the pairs at the level, nor push the other levels' u below zero."""
    names = [c.name for c in scoring.COMPARISONS]

    def pairs(n: int, **levels: int) -> np.ndarray:
        g = np.full((n, len(names)), -1, dtype=np.int8)
        g[:, names.index("known_link")] = 0
        for name, level in levels.items():
            g[:, names.index(name)] = level
        return g

    g = np.vstack([pairs(40, device=4, ip=4), pairs(4, device=4, ip=4, email=4)])
    fixed = np.r_[np.zeros(40, dtype=bool), np.ones(4, dtype=bool)]
    model = scoring.estimate(g, pairs(45, device=0, ip=0), fixed, total_pairs=45)
    for name, u in zip(names, model.u, strict=True):
        assert np.all((u > 0) & (u <= 1)), (name, u)
        assert u.sum() == pytest.approx(1.0), (name, u)


def test_a_shared_ip_adds_nothing_to_a_shared_device() -> None:
    """The people behind one device live behind one line: a pair sharing a device is not compared on the IP
    (it would count the home twice), a pair sharing only the IP is."""
    con = _linkage_db()
    for i, kinds in ((2, ("device", "ip")), (3, ("device", "ip")), (4, ("ip",)), (5, ("ip",))):
        for platform, account in (("alpha", f"a{i}"), ("beta", f"b{i}")):
            for kind in kinds:
                con.execute("INSERT INTO identifiers VALUES ('r', ?, ?, ?, ?, 3, 2)",
                            [platform, account, kind, f"{kind}{i}"])
    build_links(con, StageContext("run1", Settings(), T0))
    evidence = {
        (a, b): {e["comparison"] for e in json.loads(ev)}
        for a, b, ev in con.execute("SELECT account_a, account_b, evidence FROM links").fetchall()
    }

    def compared(i: int) -> set[str]:
        return evidence.get((f"a{i}", f"b{i}"), evidence.get((f"b{i}", f"a{i}"), set()))

    for i in (2, 3):
        assert "device" in compared(i) and "ip" not in compared(i), compared(i)
    for i in (4, 5):
        assert "ip" in compared(i), compared(i)
