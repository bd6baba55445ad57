"""Tests of lockstep campaign detection (reputation.graph.campaigns)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pytest

from reputation.config import Settings
from reputation.context import StageContext
from reputation.graph.campaigns import build_campaigns, cluster_pairs
from reputation.graph.templates import build_templates
from reputation.schema import STORED_TABLES

CTX = StageContext("run-1", Settings(), datetime(2026, 3, 1))
T0 = datetime(2026, 1, 5, 8)
INSERT = ("INSERT INTO messages (platform, sender, recipient, channel, sent_at, text, url_domain) "
          "VALUES (?, ?, ?, ?, ?, ?, ?)")
OPERATOR_A = ("{Earn|Make} up to {5000|3000} USD a {week|month} with our {crypto|bitcoin} {bot|system}. "
              "{Join|Start with} thousands of {investors|traders} already {profiting|earning}. Visit {url}")
OPERATOR_B = ("{Cheap|Discount} {meds|pills} {without|with no} {prescription|doctor visit}. {Fast|Discreet} "
              "{shipping|delivery} {worldwide|anywhere}. {Order|Buy} now and get a free {sample|trial}.")
NEWSLETTERS = {
    "garden_news": "Hi {name}, this week in the gardening newsletter: spring bulbs, composting tips "
                   "and photos from our readers' gardens.",
    "chess_weekly": "Hello {name}! Chess weekly: two opening traps, an endgame puzzle and the club "
                    "results from the city league.",
}


def spin(template: str, rng: random.Random, **values: str) -> str:
    out, i = [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            body = template[i + 1:j]
            out.append(values[body] if body in values else rng.choice(body.split("|")))
            i = j + 1
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def world() -> list[tuple]:
    rng = random.Random(7)
    rows: list[tuple] = []

    def send(platform, sender, recipient, at, text, domain=None, channel=None):
        rows.append((platform, sender, recipient, channel, at, text, domain))

    def crypto(url: str) -> str:
        return spin(OPERATOR_A, rng, url=f"http://{url}/x")

    # operator A: 3 personas on 3 platforms + one compromised honest account, 10 days of lockstep
    personas_a = [("p", "crypto1"), ("q", "crypto_2"), ("r", "cr7pto")]
    for day in range(10):
        for k, (plat, acc) in enumerate(personas_a):
            for j in range(5):
                at = T0 + timedelta(days=day, hours=j, minutes=rng.randint(0, 59))
                send(plat, acc, f"victim{day}_{k}_{j}", at, crypto("profit.top"), "profit.top")
        if day >= 4:  # compromised from day 4: a small blast each day
            for j in range(3):
                send("p", "alice", f"friend_of_alice{day}_{j}", T0 + timedelta(days=day, hours=3, minutes=j),
                     crypto("profit.top"), "profit.top")
    # a fresh persona of operator A: one debut burst weeks later, when no other persona is active
    for j in range(6):
        at = T0 + timedelta(days=20, minutes=5 * j)
        send("p", "crypto_new", f"late_victim{j}", at, crypto("profit.top"), "profit.top")
    # operator C copies operator A's text on the same days but links its own domain: a separate campaign
    for day in range(10):
        for k, (plat, acc) in enumerate([("p", "coin1"), ("q", "coin2")]):
            for j in range(3):
                at = T0 + timedelta(days=day, hours=2 + j)
                send(plat, acc, f"mark{day}_{k}_{j}", at, crypto("cash.top"), "cash.top")
    # operator B: 2 personas, same platform, posting into the same channel, no links
    for day in range(6):
        for acc in ("pharma1", "pharma2"):
            for j in range(3):
                send("q", acc, None, T0 + timedelta(days=day, hours=10 + j), spin(OPERATOR_B, rng),
                     channel="deals")
    # two legitimate newsletters, daily on the same days, each its own account and domain
    for day in range(10):
        for acc, text in NEWSLETTERS.items():
            for name in ("anna", "bob", "carla", "dmitri"):
                send("p", acc, f"sub_{name}", T0 + timedelta(days=day, hours=7), spin(text, rng, name=name),
                     f"{acc}.example")
    # honest people asking to subscribe with the same stock phrase on the same days: one message each
    for day in range(3):
        for who in ("sub_anna", "sub_bob", "sub_carla"):
            send("p", who, "garden_news", T0 + timedelta(days=day, hours=9),
                 "please add me to your mailing list")
    # alice's normal life and other honest chat
    for day in range(10):
        send("p", "alice", "bob", T0 + timedelta(days=day, hours=18),
             f"dinner plan number {day} with the family tonight?")
        send("p", "bob", "alice", T0 + timedelta(days=day, hours=19), "yes lets do the usual place then")
    return rows


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(STORED_TABLES["messages"].ddl())
    con.executemany(INSERT, world())
    build_templates(con, CTX)
    build_campaigns(con, CTX)
    return con


def _groups(con: duckdb.DuckDBPyConnection) -> set[frozenset]:
    rows = con.execute("SELECT campaign_id, platform, account FROM campaigns").fetchall()
    out: dict[str, set] = {}
    for cid, plat, acc in rows:
        out.setdefault(cid, set()).add((plat, acc))
    return {frozenset(v) for v in out.values()}


def test_operators_found_and_bulk_senders_left_alone(con):
    groups = _groups(con)
    assert groups == {
        frozenset({("p", "crypto1"), ("q", "crypto_2"), ("r", "cr7pto"), ("p", "alice"),
                   ("p", "crypto_new")}),
        frozenset({("p", "coin1"), ("q", "coin2")}),
        frozenset({("q", "pharma1"), ("q", "pharma2")}),
    }


def test_campaign_rows_and_evidence(con):
    rows = con.execute(
        "SELECT campaign_id, template_id, accounts, evidence, run_id FROM campaigns WHERE account = 'alice'"
    ).fetchall()
    assert len(rows) == 1
    cid, template, size, evidence, run_id = rows[0]
    assert cid.startswith("c") and len(cid) == 17 and run_id == "run-1"
    assert size == 5
    ev = json.loads(evidence)
    assert ev["windows"] == 6 and ev["window_hours"] == 24
    assert ev["attached"] in (None, "wave")
    assert template in ev["templates"]
    late = con.execute("SELECT evidence FROM campaigns WHERE account = 'crypto_new'").fetchall()[0][0]
    late = json.loads(late)
    assert late["attached"] == "fingerprint" and late["windows"] == 0
    shared = con.execute(
        "SELECT max(shared_targets) FROM campaign_pairs WHERE account_a LIKE 'pharma%'").fetchall()[0][0]
    assert shared == 1  # both posted the template in channel 'deals'


def test_deterministic_ids(con):
    other = duckdb.connect()
    other.execute(STORED_TABLES["messages"].ddl())
    other.executemany(
        INSERT,
        list(reversed(world())),
    )
    build_templates(other, CTX)
    build_campaigns(other, CTX)
    q = "SELECT campaign_id, platform, account, template_id, accounts, evidence FROM campaigns ORDER BY ALL"
    assert con.execute(q).fetchall() == other.execute(q).fetchall()


def test_no_campaign_without_lockstep():
    con = duckdb.connect()
    con.execute(STORED_TABLES["messages"].ddl())
    # the same template by two accounts, but on different days: not lockstep
    rng = random.Random(1)
    rows = [("p", "a", f"x{i}{j}", None, T0 + timedelta(days=i, hours=j), spin(OPERATOR_B, rng), None)
            for i in range(3) for j in range(3)]
    rows += [("p", "b", f"y{i}{j}", None, T0 + timedelta(days=10 + i, hours=j), spin(OPERATOR_B, rng), None)
             for i in range(3) for j in range(3)]
    con.executemany(INSERT, rows)
    build_templates(con, CTX)
    assert build_campaigns(con, CTX) == 0
    assert con.execute("SELECT count(*) FROM campaign_pairs").fetchall() == [(0,)]


def test_lockstep_across_midnight_is_found_on_the_half_day_grid():
    # four irregular nights; one account sends before UTC midnight, the other just after: on UTC days they
    # never share a window, on the windows from noon to noon they share all four
    con = duckdb.connect()
    con.execute(STORED_TABLES["messages"].ddl())
    rng = random.Random(2)
    nights = [0, 3, 7, 12]
    rows = [("p", "early", f"x{d}_{j}", None, T0.replace(hour=22) + timedelta(days=d, minutes=20 * j),
             spin(OPERATOR_A, rng, url="http://profit.top/x"), "profit.top") for d in nights for j in range(3)]
    rows += [("q", "late", f"y{d}_{j}", None, T0.replace(hour=0) + timedelta(days=d + 1, minutes=15 + 20 * j),
              spin(OPERATOR_A, rng, url="http://profit.top/x"), "profit.top") for d in nights for j in range(3)]
    con.executemany(INSERT, rows)
    build_templates(con, CTX)
    assert build_campaigns(con, CTX) == 2
    assert con.execute("SELECT shared_windows, jaccard FROM campaign_pairs").fetchall() == [(4, 1.0)]
    ev = json.loads(con.execute("SELECT evidence FROM campaigns WHERE account = 'early'").fetchall()[0][0])
    assert ev["windows"] == 4
    assert (ev["first_window"], ev["last_window"]) == ("2026-01-05 12:00:00", "2026-01-17 12:00:00")


def test_size_guard_splits_weakly_chained_component():
    # two triangles joined by one weak pair; the size guard (max 4) drops the weak pair
    left = np.array([0, 1, 0, 3, 4, 3, 2])
    right = np.array([1, 2, 2, 4, 5, 5, 3])
    strong = np.array([True] * 6 + [False])
    labels = cluster_pairs(6, left, right, strong, max_size=4)
    assert labels.tolist() == [0, 0, 0, 3, 3, 3]
    assert cluster_pairs(6, left, right, strong, max_size=6).tolist() == [0] * 6


def test_evaluate_campaigns_bcubed(con, tmp_path):
    from reputation.evaluate.campaigns import evaluate_campaigns

    truth = tmp_path / "truth"
    truth.mkdir()
    src = duckdb.connect()
    src.execute(
        """CREATE TABLE t AS SELECT * FROM (VALUES
           ('p', 'crypto1', 'spammer', 'opA', false, NULL::TIMESTAMP),
           ('q', 'crypto_2', 'spammer', 'opA', false, NULL),
           ('r', 'cr7pto', 'spammer', 'opA', false, NULL),
           ('p', 'alice', 'honest', 'opA', true, TIMESTAMP '2026-01-09 00:00'),
           ('q', 'pharma1', 'spammer', 'opB', false, NULL),
           ('q', 'pharma2', 'spammer', 'opC', false, NULL),
           ('p', 'garden_news', 'bulk', NULL, false, NULL),
           ('p', 'silent_persona', 'spammer', 'opB', false, NULL),
           ('p', 'crypto_new', 'spammer', 'opA', false, NULL),
           ('p', 'coin1', 'spammer', 'opD', false, NULL),
           ('q', 'coin2', 'spammer', 'opD', false, NULL)
        ) AS v(platform, account, role, operator_id, compromised, compromised_at)""")
    src.execute(f"COPY t TO '{truth / 'accounts.parquet'}' (FORMAT parquet)")
    result = evaluate_campaigns(con, truth)
    # items: opA (5 accounts, one campaign), opD (2, one campaign), pharma1 + pharma2 (one campaign, two
    # operators); silent_persona never sent, so it is not scored.
    # precision: opA 5 × 1, opD 2 × 1, pharma 2 × 1/2 → 8/9; recall: all 1 → F1 = 16/17
    assert result["items"] == 9
    assert result["bcubed_precision"] == pytest.approx(8 / 9, abs=1e-4)
    assert result["bcubed_recall"] == pytest.approx(1.0)
    assert result["bcubed_f1"] == pytest.approx(16 / 17, abs=1e-4)
    assert result["operators"] == 4 and result["operators_detected"] == 2
    assert result["compromised_in_operator_campaign"] == 1
    assert result["campaigns"] == 3 and result["campaign_accounts"] == 9


def test_empty_input_writes_empty_documented_tables():
    con = duckdb.connect()
    con.execute(STORED_TABLES["messages"].ddl())
    assert build_templates(con, CTX) == 0
    assert build_campaigns(con, CTX) == 0
    for table in ("templates", "message_templates", "template_clusters", "campaigns", "campaign_pairs"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)]
        doc = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = ?", [table]).fetchall()
        assert doc[0][0]


def test_mailing_lists_sharing_a_platform_domain_are_not_a_campaign():
    from reputation.graph.campaigns import CampaignParams

    con = duckdb.connect()
    con.execute(STORED_TABLES["messages"].ddl())
    rng = random.Random(3)
    text = ("Hi {name}, issue {n} of our {topic} letter is out: three stories we loved and a reader "
            "question answered. Read it at https://letters.example/{n}")
    rows = []
    for day in range(6):  # same days, same frame text, same newsletter-platform domain, own subscribers
        for acc, topic in (("garden_letter", "gardening"), ("chess_letter", "chess")):
            for name in ("anna", "bob", "carla"):
                at = T0 + timedelta(days=day, hours=9)
                rows.append(("p", acc, f"{acc}_sub_{name}", None, at,
                             spin(text, rng, name=name, n=str(day), topic=topic), "letters.example"))
    con.executemany(INSERT, rows)
    build_templates(con, CTX)
    assert con.execute("SELECT count(DISTINCT template_id) FROM templates").fetchall() == [(1,)]
    assert build_campaigns(con, CTX) == 0  # every issue goes to the same subscribers again
    # without the mailing-list rule the two would look like lockstep
    assert build_campaigns(con, CTX, CampaignParams(max_repeat_share=1.01)) == 2


def test_mean_jaccard_is_the_same_however_the_rows_fall_among_threads() -> None:
    """``avg`` of doubles depends on how the rows were split among threads; the evidence's mean must not."""
    import math

    from reputation.graph.campaigns import exact_mean_sql

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT i % 3 AS g, (1 + i % 97) / (100 + i % 13) AS j FROM range(3000000) r(i)")
    query = f"SELECT g, {exact_mean_sql('j')} AS m FROM t GROUP BY g ORDER BY g"
    runs = []
    for threads in (1, 2, 2):
        con.execute(f"SET threads = {threads}")
        runs.append([m.hex() for _, m in con.execute(query).fetchall()])
    assert runs[0] == runs[1] == runs[2]  # avg(j) differs between these in the last bits
    # and it is the mean, up to the 1e-12 units it sums in (group 0's values, summed exactly in Python)
    i = np.arange(0, 3000000, 3)
    assert abs(float.fromhex(runs[0][0]) - math.fsum((1 + i % 97) / (100 + i % 13)) / len(i)) < 1e-12
