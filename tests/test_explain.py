"""explain(): evidence for one account; render_text(); evidence_graph() and GraphML; analyst views."""

from __future__ import annotations

import json
import math

import duckdb
import networkx as nx
import pytest
from test_reputation import AS_OF, make_ctx, make_world

from reputation.explain import AccountNotFound, evidence_graph, explain, render_text, write_graphml
from reputation.scoring.stage import build_reputation
from reputation.views import create_views


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    make_world(c)
    build_reputation(c, make_ctx())
    return c


def test_explain_carried_account(con: duckdb.DuckDBPyConnection) -> None:
    e = explain(con, "beta", "s0")
    assert e["account"]["verdict"] == "spam"
    linked = {(r["platform"], r["account"]): r for r in e["linked_accounts"]}
    mate = linked[("alpha", "s0")]
    assert mate["same_identity"] and mate["probability"] == pytest.approx(0.95)
    assert mate["carry_probability"] == pytest.approx(0.95)  # a device, not a name: the flag carries in full
    assert mate["evidence"][0]["comparison"] == "device"
    assert e["campaigns"][0]["campaign_id"] == "camp_beta"
    assert e["contributions"]["identity_flag"] > 0
    # The contributions add up to the total log-odds.
    parts = sum(v for k, v in e["contributions"].items() if k != "total")
    assert parts == pytest.approx(e["contributions"]["total"], abs=1e-4)
    standout = {f["feature"] for f in e["standout_features"]}
    assert {"unsolicited_rate", "fan_out"} <= standout
    json.dumps(e)  # JSON-serialisable for --format json


def test_explain_direct_flags_and_override(con: duckdb.DuckDBPyConnection) -> None:
    e = explain(con, "alpha", "s1")
    assert [f["label"] for f in e["direct_flags"]] == ["spam"]
    assert e["override"] is None
    e = explain(con, "alpha", "h7")
    assert e["override"]["decision"] == "spam" and e["account"]["verdict"] == "spam"


def test_unknown_account_raises(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(AccountNotFound):
        explain(con, "beta", "nobody")


def test_render_text_mentions_the_evidence(con: duckdb.DuckDBPyConnection) -> None:
    text = render_text(explain(con, "beta", "s0"))
    assert "beta:s0" in text and "alpha:s0" in text and "human review" in text
    assert "device" in text and "carries spam" in text
    # a database from before links.carry_probability still explains (the column is left empty)
    con.execute("CREATE TEMP TABLE _links_now AS SELECT * FROM links")
    con.execute("ALTER TABLE links DROP COLUMN carry_probability")
    try:
        assert {r["carry_probability"] for r in explain(con, "beta", "s0")["linked_accounts"]} == {None}
    finally:
        con.execute("DROP TABLE links")
        con.execute("CREATE TABLE links AS SELECT * FROM _links_now")


def test_render_text_cuts_nothing_short_at_any_width(con: duckdb.DuckDBPyConnection) -> None:
    e = explain(con, "beta", "s0")
    levels = [str(ev["level"]) for r in e["linked_accounts"]  # the four strongest comparisons of each link
              for ev in sorted((x for x in r["evidence"] if x["weight"] > 0), key=lambda x: -x["weight"])[:4]]
    assert levels
    assert "…" not in render_text(e, width=60)  # narrow: cells wrap, nothing is cut off with an ellipsis
    for width in (100, 200):
        text = render_text(e, width=width)
        assert "…" not in text and all(level in text for level in levels)
    assert "valid until " in text and "." not in text.split("valid until ")[1].split()[0]  # to the second


def test_render_text_prints_data_as_it_is(con: duckdb.DuckDBPyConnection) -> None:
    e = explain(con, "beta", "s0")
    e["account"] = {**e["account"], "account": "evil[/b]", "reason_text": "[link=http://x]click[/link] :smile:"}
    text = render_text(e)
    assert "beta:evil[/b]" in text and "[link=http://x]click[/link] :smile:" in text


def test_render_text_says_an_override_set_the_score(con: duckdb.DuckDBPyConnection) -> None:
    e = explain(con, "alpha", "h7")
    text = render_text(e)
    model = 1.0 / (1.0 + math.exp(-e["contributions"]["total"]))
    assert "override: spam" in text and f"the evidence below alone gives {model:.3f}" in text


def test_evidence_graph_and_graphml(con: duckdb.DuckDBPyConnection, tmp_path) -> None:
    g = evidence_graph(con, "beta", "s0")
    assert g.nodes["beta:s0"]["focus"]
    assert g.edges["beta:s0", "alpha:s0"]["kind"] == "link"
    assert g.edges["beta:s0", "beta:s1"]["kind"] == "campaign"
    # Spam recipients are not in the evidence graph: one-way edges carry no evidence.
    assert not any(n.startswith("beta:h") for n in g.nodes)
    path = write_graphml(g, tmp_path / "g.graphml")
    back = nx.read_graphml(path)
    assert set(back.nodes) == set(g.nodes)
    assert back.nodes["alpha:s0"]["verdict"] == "spam"


def test_honest_evidence_graph_has_reciprocated_contacts(con: duckdb.DuckDBPyConnection) -> None:
    g = evidence_graph(con, "alpha", "h3")
    kinds = {d["kind"] for _, _, d in g.edges(data=True)}
    assert kinds == {"reciprocated"}


def test_views(con: duckdb.DuckDBPyConnection) -> None:
    made = create_views(con)
    assert set(made) == {"spam_identities_multi_platform", "carried_over_verdicts", "campaign_accounts",
                         "review_queue_false_positives"}
    multi = con.execute("SELECT identity_id, spam_platforms FROM spam_identities_multi_platform").fetchall()
    assert ("spam0", ["alpha", "beta"]) in multi
    carried = {r[0] for r in con.execute("SELECT account FROM carried_over_verdicts WHERE platform = 'beta'"
                                         ).fetchall()}
    assert "s0" in carried
    camp = dict(con.execute("SELECT campaign_id, accounts FROM campaign_accounts").fetchall())
    assert camp["camp_alpha"] == 8
    docs = con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal AND comment IS NOT NULL"
                       ).fetchall()[0][0]
    assert docs == 4


def test_review_queue_picks_high_score_with_conversations() -> None:
    c = duckdb.connect()
    make_world(c)
    # alpha:h20, a busy talker, is tied to a flagged spammer by a (wrong) identity link and campaign.
    c.execute("UPDATE identities SET identity_id = 'spam0', membership = 0.99 WHERE platform = 'alpha' "
              "AND account = 'h20'")
    c.execute("INSERT INTO campaigns VALUES ('r0', 'camp_alpha', 'alpha', 'h20', 'tpl_spam', 8, '{}')")
    for partner in ("h10", "h11", "h12"):
        c.execute("INSERT INTO interactions VALUES ('r0', 'alpha', 'h20', ?, NULL, 'direct', 5, NULL, NULL, true, "
                  "5, false)", [partner])
    build_reputation(c, make_ctx())
    create_views(c)
    assert c.execute("SELECT verdict FROM reputation WHERE platform = 'alpha' AND account = 'h20'"
                     ).fetchall()[0][0] == "spam"
    rows = c.execute("SELECT platform, account, reciprocated_partners FROM review_queue_false_positives"
                     ).fetchall()
    # Spammers (one-way contacts) never qualify; the talker does.
    assert rows == [("alpha", "h20", 6)]  # h19, h21 (ring), bulk, h10-h12



def test_graphml_holds_any_account_id_and_makes_its_folder(tmp_path) -> None:
    g = nx.Graph()
    g.add_node("p:bell\x07id", account="bell\x07id", score=0.5, note=None)
    g.add_edge("p:bell\x07id", "p:other", kind="link", weight=0.9)
    out = write_graphml(g, tmp_path / "new" / "folder" / "g.graphml")
    back = nx.read_graphml(out)  # valid XML
    assert "p:bell\ufffdid" in back.nodes and back.nodes["p:bell\ufffdid"]["account"] == "bell\ufffdid"


def test_graph_node_ids_are_one_per_account() -> None:
    from reputation.explain import graph_node_id
    accounts = [("a:b", "c"), ("a", "b:c"), ("a%3Ab", "c"), ("p", "x\x01"), ("p", "x\x02"), ("p", "x\ufffd")]
    ids = [graph_node_id(p, a) for p, a in accounts]
    assert len(set(ids)) == len(ids)
    assert graph_node_id("mail", "bob:1") == "mail:bob:1"  # readable where nothing needs escaping
    assert all(i.split(":", 1)[0] == graph_node_id(p, "")[:-1] for i, (p, _) in zip(ids, accounts, strict=True))


def test_evidence_graph_keeps_accounts_apart_whose_plain_ids_collide(tmp_path, monkeypatch) -> None:
    c = duckdb.connect()
    c.execute("CREATE TABLE reputation (platform VARCHAR, account VARCHAR, score DOUBLE, verdict VARCHAR)")
    c.execute("INSERT INTO reputation VALUES ('a:b', 'c', 0.9, 'spam'), ('a', 'b:c', 0.1, 'clean')")
    c.execute("CREATE TABLE interactions (platform VARCHAR, sender VARCHAR, recipient VARCHAR, kind VARCHAR, "
              "reciprocated BOOLEAN, messages BIGINT)")
    c.execute("INSERT INTO interactions VALUES ('a', 'b:c', 'd', 'direct', true, 3)")
    # a link from a:b:c's point of view; the rest of explain() needs tables this test does not build
    monkeypatch.setattr("reputation.explain.explain", lambda con, p, a: {
        "linked_accounts": [{"platform": "a:b", "account": "c", "probability": 0.9}]})
    g = evidence_graph(c, "a", "b:c")
    assert g.number_of_nodes() == 3
    me, mate = g.nodes["a:b:c"], g.nodes["a%3Ab:c"]
    assert (me["verdict"], me["focus"], mate["verdict"], mate["focus"]) == ("clean", True, "spam", False)
    back = nx.read_graphml(write_graphml(g, tmp_path / "g.graphml"))
    assert back.nodes["a%3Ab:c"]["platform"] == "a:b"


@pytest.mark.parametrize("pinned", [True, False])
def test_explain_of_a_replay_shows_only_what_the_run_counted(pinned: bool) -> None:
    from datetime import timedelta

    from reputation.context import StageContext
    c = duckdb.connect()
    make_world(c)
    later = AS_OF + timedelta(days=2)
    c.execute("INSERT INTO overrides VALUES ('r0', 'alpha', 'h3', 'spam', 'later appeal lost', 'ana', ?)", [later])
    c.execute("INSERT INTO flags VALUES ('r0', 'alpha', 'h3', 'spam', ?, 'moderator', 0.9)", [later])
    c.execute("CREATE TABLE runs AS SELECT 'run-1' AS run_id, ?::TIMESTAMP AS as_of", [AS_OF])
    ctx = make_ctx()
    build_reputation(c, StageContext(ctx.run_id, ctx.settings, AS_OF, as_of_pinned=pinned))
    e = explain(c, "alpha", "h3")
    if pinned:
        assert e["override"] is None and e["account"]["verdict"] != "spam"
        assert [f["label"] for f in e["direct_flags"]] == ["clean"]
        assert e["after_as_of"] == {"as_of": AS_OF.isoformat(), "flags": 1, "overrides": 1}
        assert "1 flag(s) and 1 override(s) dated after it were not counted" in render_text(e)
    else:
        assert e["override"]["reason"] == "later appeal lost" and e["account"]["verdict"] == "spam"
        assert sorted(f["label"] for f in e["direct_flags"]) == ["clean", "spam"] and e["after_as_of"] is None
    json.dumps(e)
