"""Vouching: direct messages received from credible clean accounts lower an account's spam score.

The properties that could break: trust only enters through clean-flagged accounts and only along chains
of clean-looking senders (a ring of fresh accounts cannot vouch for itself or amplify what enters it);
receiving messages never raises a score; the vouch answers only the behavioural prior (it never cancels a
flag, and co-behaviour spam evidence discounts it); and it is explained in the reasons.
"""

from __future__ import annotations

import json
from datetime import timedelta

import duckdb
import numpy as np
import pytest
from test_reputation import AS_OF, T0, _insert, make_ctx, make_world

from reputation.explain import explain, render_text
from reputation.scoring.stage import (
    TRUST_HOP_DECAY,
    build_reputation,
    flag_logodds,
    vouch_logodds,
    voucher_credibility,
)


def _pairs(edges: list[tuple[int, int, float]]) -> tuple[np.ndarray, ...]:
    """(recipient, sender, w) arrays from (sender, recipient, w) edges."""
    return (np.array([e[1] for e in edges]), np.array([e[0] for e in edges]), np.array([e[2] for e in edges]))


def test_trust_enters_only_from_flag_grounded_accounts() -> None:
    # 0 is clean-flagged; 0 → 1 → 2 is a chain. 3 ↔ 4 ↔ 5 is a ring of clean-looking accounts nobody
    # trusted writes to: they vouch for nobody however much they write to each other.
    edges = [(0, 1, 1.0), (1, 2, 1.0), (3, 4, 1.0), (4, 5, 1.0), (5, 3, 1.0), (4, 3, 1.0), (5, 4, 1.0)]
    clean = np.ones(6)
    seed = np.array([1.0, 0, 0, 0, 0, 0])
    cred = voucher_credibility(clean, seed, _pairs(edges), 6)
    np.testing.assert_allclose(cred[:3], [1.0, TRUST_HOP_DECAY, TRUST_HOP_DECAY**2])
    np.testing.assert_array_equal(cred[3:], 0.0)


def test_a_ring_cannot_amplify_the_trust_that_enters_it() -> None:
    # One weak reply (w = 1/3) from trusted 0 into a dense ring 1..6: no ring member exceeds what entered.
    ring = list(range(1, 7))
    edges = [(0, 1, 1 / 3)] + [(a, b, 1.0) for a in ring for b in ring if a != b]
    cred = voucher_credibility(np.ones(7), np.r_[1.0, np.zeros(6)], _pairs(edges), 7)
    assert cred[1:].max() <= TRUST_HOP_DECAY / 3 + 1e-12
    assert cred[1] == pytest.approx(TRUST_HOP_DECAY / 3)


def test_trust_does_not_pass_through_a_suspicious_account() -> None:
    # 0 (trusted) → 1 (looks spammy: clean 0) → 2: 1 carries no trust on, 2 gets none.
    edges = [(0, 1, 1.0), (1, 2, 1.0)]
    cred = voucher_credibility(np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]), _pairs(edges), 3)
    np.testing.assert_array_equal(cred, [1.0, 0.0, 0.0])


def test_credibility_is_capped_by_own_clean_belief_and_order_independent() -> None:
    rng = np.random.default_rng(3)
    n, m = 60, 400
    s, r = rng.integers(0, n, m), rng.integers(0, n, m)
    w = rng.random(m)
    clean, seed = rng.random(n), (rng.random(n) < 0.1) * rng.random(n)
    cred = voucher_credibility(clean, seed, (r, s, w), n)
    assert np.all(cred <= clean + 1e-12) and np.all(cred >= 0)
    perm = rng.permutation(m)
    np.testing.assert_allclose(voucher_credibility(clean, seed, (r[perm], s[perm], w[perm]), n), cred)


def test_vouch_cancels_only_positive_behaviour_and_is_discounted_by_cobehaviour() -> None:
    v = np.array([-0.9, -0.9, -0.9, -0.9, 0.0])
    c_behaviour = np.array([10.0, 1.0, -2.0, 10.0, 10.0])
    co = np.array([0.0, 0.0, 0.0, 1.0, 0.0])
    c = vouch_logodds(v, c_behaviour, co)
    assert c[0] == pytest.approx(flag_logodds(np.array([-0.9]))[0])
    assert c[1] == pytest.approx(-1.0)  # no more than the behavioural evidence
    assert c[2] == 0.0  # behaviour already says clean: nothing to answer
    assert c[3] == 0.0  # in lockstep with spam: a real, known account can still be compromised
    assert c[4] == 0.0
    assert np.all(vouch_logodds(np.array([0.5]), np.array([5.0]), np.array([0.0])) == 0.0)  # never positive


def _vouched_world(con: duckdb.DuckDBPyConnection) -> None:
    """``make_world`` plus, on alpha: ``mass`` (an honest mass-messager that looks like a spammer) whom
    clean-flagged h0..h5 write to; ``fake`` (same behaviour) written to only by ``ring0..ring4``, fresh
    clean-looking accounts that also write to each other; ``s0`` gets messages from h0..h5 too."""
    make_world(con)
    spam_feat = [15, 0, 2, 15, 0, 0, 0.0, 1.0, 1.0, [1 / 168] * 168, 0.5, 0.4, 0.5, 0.8, 2.0, 1.0,
                 ["pills.example"], T0, T0 + timedelta(days=2)]
    ok_feat = [10, 10, 20, 2, 2, 1, 0.95, 0.02, 0.02, [1 / 168] * 168, 0.2, 0.05, -0.2, 0.0, 30.0, 0.8, [],
               T0, AS_OF]
    accounts, feats, inter = [], [], []
    for a in ["mass", "fake", *[f"ring{i}" for i in range(5)]]:
        accounts.append(("r0", "alpha", a, T0 - timedelta(days=30), a, a, None, None, True))
        feats.append(("r0", "alpha", a, *(spam_feat if a in ("mass", "fake") else ok_feat)))
    for i in range(6):
        inter.append(("r0", "alpha", f"h{i}", "mass", None, "direct", 3, T0, T0, False, 0, False))
        inter.append(("r0", "alpha", f"h{i}", "s0", None, "direct", 3, T0, T0, False, 0, False))
    for i in range(5):
        inter.append(("r0", "alpha", f"ring{i}", "fake", None, "direct", 3, T0, T0, False, 0, False))
        inter.append(("r0", "alpha", f"ring{i}", f"ring{(i + 1) % 5}", None, "direct", 3, T0, T0, False, 0, False))
    for v in range(10, 25):  # both broadcast to honest users, unanswered
        for a in ("mass", "fake"):
            inter.append(("r0", "alpha", a, f"h{v}", None, "direct", 1, T0, T0, False, 0, True))
    _insert(con, "accounts", accounts)
    _insert(con, "features", feats)
    _insert(con, "interactions", inter)


@pytest.fixture(scope="module")
def vouched() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    _vouched_world(con)
    build_reputation(con, make_ctx())
    return con


def _ev(con: duckdb.DuckDBPyConnection, account: str, platform: str = "alpha") -> dict:
    rel = con.execute("SELECT * FROM account_evidence WHERE platform = ? AND account = ?", [platform, account])
    return dict(zip([d[0] for d in rel.description], rel.fetchall()[0], strict=True))


def test_honest_mass_messager_is_vouched_for_and_the_ring_fake_is_not(vouched: duckdb.DuckDBPyConnection) -> None:
    mass, fake = _ev(vouched, "mass"), _ev(vouched, "fake")
    assert mass["c_behaviour"] > 0 and fake["c_behaviour"] > 0
    assert mass["c_vouch"] < -1.0
    assert fake["c_vouch"] == 0.0
    assert mass["score"] < fake["score"]
    reasons = json.loads(vouched.execute(
        "SELECT reasons FROM reputation WHERE platform = 'alpha' AND account = 'mass'").fetchall()[0][0])
    vouch = [r for r in reasons if r["kind"] == "vouch"]
    assert vouch and vouch[0]["contribution"] < 0
    text = vouched.execute("SELECT reason_text FROM reputation WHERE platform = 'alpha' AND account = 'mass'"
                           ).fetchall()[0][0]
    assert "written to by accounts trusted as clean" in text


def test_vouch_never_outweighs_flags_or_campaign_evidence(vouched: duckdb.DuckDBPyConnection) -> None:
    # s0 is flagged spam, in a campaign, and written to by six clean-flagged accounts.
    s0 = _ev(vouched, "s0")
    assert s0["c_vouch"] >= -max(s0["c_behaviour"], 0.0) - 1e-12
    assert s0["c_vouch"] > -0.5  # campaign co-behaviour discounts it
    assert s0["score"] > 0.9


def test_receiving_spam_never_raises_a_score(vouched: duckdb.DuckDBPyConnection) -> None:
    c = vouched.execute("SELECT min(c_vouch), max(c_vouch) FROM account_evidence").fetchall()[0]
    assert c[1] <= 0.0 and c[0] < 0.0
    # honest recipients of spam: their vouch is ≤ 0 and their verdict stays clean
    rows = vouched.execute("SELECT r.verdict FROM reputation r JOIN account_evidence e USING (platform, account) "
                           "WHERE r.platform = 'beta' AND r.account LIKE 'h%'").fetchall()
    assert {v for (v,) in rows} <= {"clean", "unknown"}


def test_vouch_parameters_are_recorded(vouched: duckdb.DuckDBPyConnection) -> None:
    params = dict(vouched.execute("SELECT parameter, value FROM reputation_model").fetchall())
    assert params["vouch_weight"] > 0 and 0 < params["trust_hop_decay"] < 1
    assert params["vouched_accounts"] >= 1


def test_contributions_still_add_up_to_the_logit(vouched: duckdb.DuckDBPyConnection) -> None:
    # c_graph holds all graph evidence, the vouch included, so explain's contributions sum to the total.
    gap = vouched.execute("SELECT max(abs(logit - (c_base + c_direct + c_identity + c_campaign + c_behaviour "
                          "+ c_graph))) FROM account_evidence").fetchall()[0][0]
    assert gap < 1e-9
    e = _ev(vouched, "mass")
    reasons = json.loads(vouched.execute(
        "SELECT reasons FROM reputation WHERE platform = 'alpha' AND account = 'mass'").fetchall()[0][0])
    by_kind = {r["kind"]: r["contribution"] for r in reasons}
    assert by_kind["vouch"] == pytest.approx(e["c_vouch"], abs=1e-3)
    assert by_kind.get("graph", 0.0) == pytest.approx(e["c_graph"] - e["c_vouch"], abs=0.05)


def test_explain_shows_the_vouch_apart_from_the_graph(vouched: duckdb.DuckDBPyConnection) -> None:
    platform, account, c_graph, c_vouch = vouched.execute(
        "SELECT platform, account, c_graph, c_vouch FROM account_evidence ORDER BY c_vouch, platform, account LIMIT 1"
    ).fetchone()
    assert c_vouch < 0  # the fixture's honest mass-messager is vouched for
    e = explain(vouched, platform, account)
    assert e["contributions"]["vouch"] == pytest.approx(c_vouch)
    assert e["contributions"]["graph"] == pytest.approx(c_graph - c_vouch)
    parts = sum(v for k, v in e["contributions"].items() if k != "total")
    assert parts == pytest.approx(e["contributions"]["total"], abs=1e-4)
    assert "vouch" in render_text(e)


def test_a_campaign_member_is_not_vouched_for_even_without_flagged_mates() -> None:
    # the same honest-looking vouchers write to `mass`, but `mass` now sends in lockstep with `fake`
    # (a campaign nobody in it is flagged): lockstep sending is co-behaviour evidence a vouch never answers
    con = duckdb.connect()
    _vouched_world(con)
    _insert(con, "campaigns", [("r0", "camp_x", "alpha", a, "tx", 2, None) for a in ("mass", "fake")])
    build_reputation(con, make_ctx())
    assert _ev(con, "mass")["c_vouch"] == 0.0
    assert _ev(con, "mass")["score"] > 0.5
