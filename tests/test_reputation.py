"""Tests of the reputation stage on a small hand-built world with every contract table.

``make_world`` is imported by the other reputation test modules (tests/ is on sys.path under pytest).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from reputation.config import Settings
from reputation.context import StageContext
from reputation.schema import STORED_TABLES
from reputation.scoring.stage import build_reputation

AS_OF = datetime(2026, 3, 1)
T0 = datetime(2026, 1, 1)

HONEST = 40
SPAMMERS = 8


def _features_ddl() -> str:
    return """CREATE TABLE features (run_id VARCHAR, platform VARCHAR, account VARCHAR, messages_sent BIGINT,
        messages_received BIGINT, active_days BIGINT, fan_out BIGINT, fan_in BIGINT, channels BIGINT,
        reply_rate DOUBLE, unsolicited_rate DOUBLE, template_share DOUBLE, hour_profile DOUBLE[168],
        weekend_share DOUBLE, night_share DOUBLE, burstiness DOUBLE, dormancy_burst DOUBLE,
        account_age_days DOUBLE, direct_share DOUBLE, url_domains VARCHAR[], first_at TIMESTAMP,
        last_at TIMESTAMP)"""


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple], columns: str | None = None) -> None:
    """Bulk insert tuples (one Arrow hand-off instead of one statement per row)."""
    if not rows:
        return
    cols = [c.strip() for c in columns.split(",")] if columns else [
        r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    frame = pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate(cols)})
    con.register("_fixture_rows", frame)
    target = f"{table} ({', '.join(cols)})"
    con.execute(f"INSERT INTO {target} SELECT {', '.join(cols)} FROM _fixture_rows")
    con.unregister("_fixture_rows")


def make_world(con: duckdb.DuckDBPyConnection, identities: bool = True, seed: int = 0) -> None:
    """A two-platform world (alpha, beta).

    - ``h{i}`` honest users on both platforms (different people), chatting reciprocally in a ring.
    - ``s{i}`` spammers: alpha:s{i} and beta:s{i} are one person (identity ``spam{i}``, linked), all in one
      campaign per platform; they message honest users unsolicited (one-way) with one template.
    - ``bulk`` on alpha: a newsletter with high fan-out but replies and solicited contacts.
    - flags: alpha:s0..s3 spam, alpha:h0..h5 clean; beta has no flags at all.
    - alpha:h7 and beta:s7 carry analyst overrides.
    """
    rng = np.random.default_rng(seed)
    for t in ("messages", "accounts", "flags", "overrides", "known_links", "identifiers"):
        con.execute(STORED_TABLES[t].ddl())
    con.execute(_features_ddl())
    con.execute("""CREATE TABLE interactions (run_id VARCHAR, platform VARCHAR, sender VARCHAR, recipient VARCHAR,
        channel VARCHAR, kind VARCHAR, messages BIGINT, first_at TIMESTAMP, last_at TIMESTAMP,
        reciprocated BOOLEAN, replies BIGINT, unsolicited BOOLEAN)""")
    con.execute("""CREATE TABLE templates (run_id VARCHAR, platform VARCHAR, account VARCHAR, template_id VARCHAR,
        messages BIGINT, recipients BIGINT, first_at TIMESTAMP, last_at TIMESTAMP)""")
    con.execute("""CREATE TABLE campaigns (run_id VARCHAR, campaign_id VARCHAR, platform VARCHAR, account VARCHAR,
        template_id VARCHAR, accounts BIGINT, evidence JSON)""")
    con.execute("""CREATE TABLE links (run_id VARCHAR, platform_a VARCHAR, account_a VARCHAR, platform_b VARCHAR,
        account_b VARCHAR, probability DOUBLE, match_weight DOUBLE, evidence JSON, rules VARCHAR[],
        carry_probability DOUBLE)""")
    if identities:
        con.execute("""CREATE TABLE identities (run_id VARCHAR, identity_id VARCHAR, platform VARCHAR,
            account VARCHAR, size BIGINT, membership DOUBLE, carry_membership DOUBLE)""")
    accounts, feats, inter, tmpl, camp, links, ident, msgs = [], [], [], [], [], [], [], []
    for p in ("alpha", "beta"):
        names = [f"h{i}" for i in range(HONEST)] + [f"s{i}" for i in range(SPAMMERS)] + (["bulk"] if p == "alpha"
                                                                                         else [])
        for a in names:
            accounts.append(("r0", p, a, T0 - timedelta(days=400 if a[0] != "s" else 2), a, a, None, None, True))
        for i in range(HONEST):
            a, b = f"h{i}", f"h{(i + 1) % HONEST}"
            for x, y in ((a, b), (b, a)):
                inter.append(("r0", p, x, y, None, "direct", 3, T0, T0, True, 3, False))
                msgs.append(("r0", p, x, y, None, T0, f"hey {y} how are you"))
            n_sent = int(rng.integers(5, 30))
            feats.append(("r0", p, a, n_sent, n_sent, int(rng.integers(5, 40)), 2, 2, 1, 0.9 + 0.1 * rng.random(),
                          0.05 * rng.random(), 0.05 * rng.random(), [1 / 168] * 168, 0.2, 0.05, -0.2, 0.0, 400.0,
                          0.8, [], T0, AS_OF))
        for i in range(SPAMMERS):
            s = f"s{i}"
            victims = rng.choice(HONEST, size=15, replace=False)
            for v in victims:
                inter.append(("r0", p, s, f"h{v}", None, "direct", 1, T0, T0, False, 0, True))
                msgs.append(("r0", p, s, f"h{v}", None, T0, "cheap pills now"))
            feats.append(("r0", p, s, 15, 0, 2, 15, 0, 0, 0.0, 1.0, 1.0, [1 / 168] * 168, 0.5, 0.4, 0.5, 0.8,
                          2.0, 1.0, ["pills.example"], T0, T0 + timedelta(days=2)))
            tmpl.append(("r0", p, s, "tpl_spam", 15, 15, T0, T0))
            camp.append(("r0", f"camp_{p}", p, s, "tpl_spam", SPAMMERS, json.dumps({"windows": 1})))
        if p == "alpha":
            feats.append(("r0", p, "bulk", 40, 20, 30, 40, 20, 0, 0.5, 0.1, 1.0, [1 / 168] * 168, 0.1, 0.0, 0.1, 0.0,
                          900.0, 1.0, ["news.example"], T0, AS_OF))
            tmpl.append(("r0", p, "bulk", "tpl_news", 40, 40, T0, AS_OF))
            for v in range(0, HONEST, 2):
                inter.append(("r0", p, "bulk", f"h{v}", None, "direct", 2, T0, T0, True, 1, False))
                inter.append(("r0", p, f"h{v}", "bulk", None, "direct", 1, T0, T0, True, 2, False))
    for i in range(SPAMMERS):
        links.append(("r0", "alpha", f"s{i}", "beta", f"s{i}", 0.95, 8.0,
                      json.dumps([{"comparison": "device", "level": "exact", "weight": 8.0}]), ["shared_device"], 0.95))
    for _, p, a, *_ in accounts:
        if a.startswith("s"):
            ident.append(("r0", f"spam{a[1:]}", p, a, 2, 0.95, 0.95))
        else:
            ident.append(("r0", f"{p}:{a}", p, a, 1, 1.0, 1.0))
    flags = [("r0", "alpha", f"s{i}", "spam", AS_OF - timedelta(days=10), "moderator", 0.95) for i in range(4)]
    flags += [("r0", "alpha", f"h{i}", "clean", AS_OF - timedelta(days=10), "verified", 0.9) for i in range(6)]
    overrides = [("r0", "alpha", "h7", "spam", "caught selling followers", "ana", AS_OF),
                 ("r0", "beta", "s7", "clean", "research account", "bo", AS_OF)]
    _insert(con, "accounts", accounts)
    _insert(con, "features", feats)
    _insert(con, "interactions", inter)
    _insert(con, "messages", msgs, "run_id, platform, sender, recipient, channel, sent_at, text")
    _insert(con, "templates", tmpl)
    _insert(con, "campaigns", camp)
    _insert(con, "links", links)
    if identities:
        _insert(con, "identities", ident)
    _insert(con, "flags", flags)
    _insert(con, "overrides", overrides)


def make_ctx(**settings: object) -> StageContext:
    return StageContext(run_id="run-1", settings=Settings(**settings), as_of=AS_OF)


@pytest.fixture(scope="module")
def scored() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    make_world(con)
    build_reputation(con, make_ctx())
    return con


def _row(con: duckdb.DuckDBPyConnection, platform: str, account: str) -> dict:
    rel = con.execute("SELECT * FROM reputation WHERE platform = ? AND account = ?", [platform, account])
    names = [d[0] for d in rel.description]
    return dict(zip(names, rel.fetchall()[0], strict=True))


def test_one_row_per_account_with_run_id(scored: duckdb.DuckDBPyConnection) -> None:
    n_acc = scored.execute("SELECT count(*) FROM accounts").fetchall()[0][0]
    n, runs, dup = scored.execute(
        "SELECT count(*), count(DISTINCT run_id), count(*) - count(DISTINCT (platform, account)) FROM reputation"
    ).fetchall()[0]
    assert n == n_acc and runs == 1 and dup == 0
    assert scored.execute("SELECT min(run_id) FROM reputation").fetchall()[0][0] == "run-1"


def test_flag_carries_to_same_identity_on_other_platform(scored: duckdb.DuckDBPyConnection) -> None:
    row = _row(scored, "beta", "s0")
    assert row["verdict"] == "spam"
    kinds = {(r["kind"], r["source_platform"]) for r in json.loads(row["reasons"])}
    assert ("identity_flag", "alpha") in kinds
    assert "alpha" in row["flagged_on"]


def test_recipients_of_spam_are_not_tainted(scored: duckdb.DuckDBPyConnection) -> None:
    verdicts = scored.execute(
        "SELECT verdict, count(*) FROM reputation WHERE account LIKE 'h%' AND NOT (platform = 'alpha' "
        "AND account = 'h7') GROUP BY verdict").fetchall()
    assert dict(verdicts).get("spam", 0) == 0
    assert dict(verdicts).get("suspicious", 0) == 0


def test_bulk_sender_is_not_spam(scored: duckdb.DuckDBPyConnection) -> None:
    assert _row(scored, "alpha", "bulk")["verdict"] in ("clean", "unknown")


def test_unflagged_spammers_rank_above_honest(scored: duckdb.DuckDBPyConnection) -> None:
    lo_spam = scored.execute("SELECT min(score) FROM reputation WHERE account LIKE 's%' AND account <> 's7' "
                             "AND NOT (platform = 'alpha' AND account IN ('s0', 's1', 's2', 's3'))").fetchall()[0][0]
    hi_honest = scored.execute("SELECT max(score) FROM reputation WHERE account LIKE 'h%' AND account <> 'h7'"
                               ).fetchall()[0][0]
    assert lo_spam > hi_honest


def test_overrides_win_and_appear_in_reasons(scored: duckdb.DuckDBPyConnection) -> None:
    r = _row(scored, "alpha", "h7")
    assert (r["verdict"], r["score"], r["confidence"]) == ("spam", 1.0, 1.0)
    assert json.loads(r["reasons"])[0]["kind"] == "override"
    assert "selling followers" in r["reason_text"]
    r = _row(scored, "beta", "s7")
    assert (r["verdict"], r["score"]) == ("clean", 0.0)


def test_reasons_never_name_other_accounts(scored: duckdb.DuckDBPyConnection) -> None:
    for reasons, text in scored.execute("SELECT reasons, reason_text FROM reputation").fetchall():
        for r in json.loads(reasons):
            assert set(r) == {"kind", "source_platform", "contribution"}
            assert r["source_platform"] in ("alpha", "beta")
        assert " s0" not in text and "h1" not in text


def test_valid_until_and_schema_version(scored: duckdb.DuckDBPyConnection) -> None:
    vu, sv = scored.execute("SELECT DISTINCT valid_until, schema_version FROM reputation").fetchall()[0]
    assert vu == AS_OF + timedelta(days=30) and sv == "1.0"


def test_no_evidence_means_unknown() -> None:
    con = duckdb.connect()
    make_world(con)
    con.execute("INSERT INTO accounts VALUES ('r0', 'beta', 'ghost', NULL, NULL, NULL, NULL, NULL, false)")
    build_reputation(con, make_ctx())
    assert _row(con, "beta", "ghost")["verdict"] == "unknown"


def test_deterministic_and_order_independent() -> None:
    a, b = duckdb.connect(), duckdb.connect()
    make_world(a)
    make_world(b)
    # Same rows, different physical order in b.
    for t in ("accounts", "flags", "interactions", "features", "identities", "campaigns", "templates"):
        b.execute(f"CREATE OR REPLACE TABLE {t} AS SELECT * FROM {t} ORDER BY random()")
    build_reputation(a, make_ctx())
    build_reputation(b, make_ctx())
    q = "SELECT platform, account, round(score, 9), verdict, reasons FROM reputation ORDER BY ALL"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_works_without_optional_tables() -> None:
    con = duckdb.connect()
    make_world(con, identities=False)
    for t in ("campaigns", "templates", "links"):
        con.execute(f"DROP TABLE {t}")
    n = build_reputation(con, make_ctx())
    assert n == con.execute("SELECT count(*) FROM accounts").fetchall()[0][0]


def test_model_tables_are_readable(scored: duckdb.DuckDBPyConnection) -> None:
    feats = dict(scored.execute("SELECT feature, weight FROM prior_model").fetchall())
    assert "unsolicited_rate" in feats and "intercept" in feats
    params = dict(scored.execute("SELECT parameter, value FROM reputation_model").fetchall())
    assert 0 < params["label_frequency_c"] <= 1
    assert params["platt_slope"] >= 0 and params["propagation_iterations"] > 0
    doc = scored.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'reputation'").fetchall()[0][0]
    assert doc and "review" in doc


def test_expired_flags_do_not_count() -> None:
    con = duckdb.connect()
    make_world(con)
    build_reputation(con, make_ctx(flag_expiry_days=5.0))
    assert con.execute("SELECT count(*) FROM flag_evidence WHERE spam_flags > 0").fetchall()[0][0] == 0


def test_average_precision_matches_definition() -> None:
    from reputation.evaluate.reputation import average_precision

    rng = np.random.default_rng(3)
    score, y = rng.random(50), rng.random(50) < 0.3
    order = np.argsort(-score)
    hits = np.cumsum(y[order])
    expected = np.sum((hits / np.arange(1, 51))[y[order]]) / y.sum()
    assert average_precision(score, y) == pytest.approx(expected)
    # Ties form one step: all-equal scores give precision = base rate.
    assert average_precision(np.ones(4), np.array([1, 0, 0, 0])) == pytest.approx(0.25)


def _write_truth(con: duckdb.DuckDBPyConnection, path) -> None:
    path.mkdir()
    con.execute("""COPY (SELECT platform, account,
            CASE WHEN account LIKE 's%' THEN 1000 + CAST(substr(account, 2) AS INT)
                 ELSE hash(platform || account) % 100000 END AS person_id,
            CASE WHEN account LIKE 's%' THEN 'spammer' WHEN account = 'bulk' THEN 'bulk' ELSE 'honest' END AS role,
            NULL::BIGINT AS operator_id, false AS compromised,
            CASE WHEN account IN ('s5', 'h8', 'h9') THEN 5 WHEN account IN ('h10', 'h11') THEN 6 END AS household_id
        FROM accounts) TO '""" + str(path / "accounts.parquet") + "' (FORMAT parquet)")


def test_evaluate_reputation_on_the_fixture(scored: duckdb.DuckDBPyConnection, tmp_path) -> None:
    from reputation.evaluate.reputation import evaluate_reputation

    _write_truth(scored, tmp_path / "truth")
    m = evaluate_reputation(scored, tmp_path / "truth")
    # beta:s0..s3 are the carry population (their person is flagged on alpha only).
    assert m["carry_accounts"] == 4
    assert m["carry_recall"] == 1.0 and m["carry_precision"] == 1.0
    assert m["bulk_accounts"] == 1 and m["bulk_sender_fpr"] == 0.0
    # The only honest "spam" verdict is alpha:h7, which an analyst override made spam: the analyst's decision,
    # left out with the flagged accounts, as is beta:s7 (an override to clean)
    assert m["victim_fpr"] == 0.0
    # h8 and h9 live with the spammer s5 (on both platforms); h10 and h11 with nobody who spams
    assert m["housemate_accounts"] == 4
    verdicts = dict(scored.execute("SELECT platform || ':' || account, verdict FROM reputation").fetchall())
    housemates = [f"{p}:{a}" for p in ("alpha", "beta") for a in ("h8", "h9")]
    assert m["housemate_fpr"] == sum(verdicts[k] == "spam" for k in housemates) / 4
    assert m["roc_auc"] == 1.0
    # Directly flagged or decided accounts are excluded: 2 platforms x 48 (+ bulk) - 10 flagged - 2 overrides.
    assert m["accounts_never_flagged"] == 97 - 12
    # Where the ROC-AUC goes: the misordered pairs are exactly 1 − ROC-AUC of the pairs, every one charged.
    errors = m["ranking_errors"]
    positives = m["positives_never_flagged"]
    assert errors["pairs"] == positives * (m["accounts_never_flagged"] - positives)
    assert errors["misordered_pairs"] == pytest.approx((1.0 - m["roc_auc"]) * errors["pairs"], abs=1e-6)
    assert sum(errors["by_cause"].values()) == pytest.approx(errors["misordered_pairs"])
    assert 0.0 <= errors["roc_auc_without_own_behaviour"] <= 1.0


def test_ranking_errors_charge_each_honest_account_to_its_strongest_term(tmp_path) -> None:
    import polars as pl

    from reputation.evaluate.reputation import ranking_errors

    truth = tmp_path / "accounts.parquet"
    pl.DataFrame(
        {
            "platform": ["p"] * 6,
            "account": ["s1", "s2", "h1", "h2", "h3", "hf"],
            "role": ["spammer", "spammer", "honest", "honest", "honest", "honest"],
            "compromised": [False] * 6,
        }
    ).write_parquet(truth)
    con = duckdb.connect()
    con.execute("CREATE TABLE flags AS SELECT 'p' AS platform, 'hf' AS account, 'clean' AS label")
    # s1 0.9, s2 0.5; h1 (behaviour) 0.95 outranks both, h2 (graph) ties s2, h3 is below both;
    # hf outranks everything but is flagged, so it is not counted.
    rows = [
        ("s1", 0.9, 1.0, 1.0),
        ("s2", 0.5, 0.0, 0.0),
        ("h1", 0.95, 3.0, 0.5),
        ("h2", 0.5, -1.0, 2.0),
        ("h3", 0.1, 0.0, 0.0),
        ("hf", 0.99, 5.0, 0.0),
    ]
    con.execute("CREATE TABLE reputation (platform VARCHAR, account VARCHAR, score DOUBLE)")
    con.execute(
        "CREATE TABLE account_evidence (platform VARCHAR, account VARCHAR, logit DOUBLE, c_behaviour DOUBLE, "
        "c_graph DOUBLE, c_identity DOUBLE, c_campaign DOUBLE, c_direct DOUBLE)"
    )
    for account, score, beh, graph in rows:
        con.execute("INSERT INTO reputation VALUES ('p', ?, ?)", [account, score])
        logit = float(np.log(score / (1 - score)))
        con.execute("INSERT INTO account_evidence VALUES ('p', ?, ?, ?, ?, 0, 0, 0)", [account, logit, beh, graph])
    errors = ranking_errors(con, tmp_path)
    assert errors["pairs"] == 2 * 3
    assert errors["misordered_pairs"] == 2.5  # h1 over s1 and s2, h2 tied with s2
    assert {k: v for k, v in errors["by_cause"].items() if v} == {"own_behaviour": 2.0, "graph": 0.5}
    assert errors["honest_accounts_misordered"] == 2
    assert errors["positives_misordered"] == 2


def test_baselines_score_every_account(scored: duckdb.DuckDBPyConnection, tmp_path) -> None:
    from benchmarks.baselines import BASELINES, compare_baselines

    n = scored.execute("SELECT count(*) FROM accounts").fetchall()[0][0]
    for name, fn in BASELINES.items():
        t = fn(scored)
        assert t.num_rows == n, name
    _write_truth(scored, tmp_path / "truth")
    results = compare_baselines(scored, str(tmp_path / "truth"))
    assert set(results) == {"engine", *BASELINES}
    # Plain SybilSCAR taints recipients of spam through one-way edges; the engine does not.
    assert results["engine"]["victim_fpr"] <= results["sybilscar"]["victim_fpr"]


def test_without_flags_behaviour_claims_nothing() -> None:
    con = duckdb.connect()
    make_world(con)
    con.execute("DELETE FROM flags")
    build_reputation(con, make_ctx())
    verdicts = dict(con.execute("SELECT verdict, count(*) FROM reputation GROUP BY verdict").fetchall())
    assert verdicts.get("suspicious", 0) == 0
    # Only the two overrides and what the graph carries from them are decided.
    assert verdicts["unknown"] >= 90
    params = dict(con.execute("SELECT parameter, value FROM reputation_model").fetchall())
    assert params["prior_learned"] == 0.0


def _numpy_newton_terms(A: np.ndarray, y: np.ndarray, w: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, ...]:
    from scipy.special import expit

    s = A @ theta
    p = expit(s)
    loss = float(np.dot(w, np.logaddexp(0.0, s) - y * s))
    return loss, A.T @ (w * (p - y)), (A * (w * p * (1 - p))[:, None]).T @ A


def test_compiled_logistic_passes_match_numpy() -> None:
    from reputation.scoring._kernels import logistic_loss, logistic_terms

    rng = np.random.default_rng(4)
    A = np.column_stack([np.ones(500), rng.normal(size=(500, 6)) * 3])
    y, w, theta = (rng.random(500) > 0.7).astype(float), rng.uniform(0.1, 2.0, 500), rng.normal(size=7)
    loss, grad, H = _numpy_newton_terms(A, y, w, theta)
    g, h = np.zeros(7), np.zeros((7, 7))
    logistic_terms(A, y, w, theta, g, h)
    np.testing.assert_allclose(g, grad, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(h, H, rtol=1e-10, atol=1e-10)
    assert logistic_loss(A, y, w, theta) == pytest.approx(loss, rel=1e-12)


def test_prior_folds_fit_the_same_on_threads_as_one_by_one() -> None:
    from reputation.scoring import prior

    rng = np.random.default_rng(6)
    X = rng.normal(size=(3000, 4))
    evidence = np.where(rng.random(3000) < 0.1, np.where(X[:, 0] > 0, 0.8, -0.8), 0.0)
    folds = rng.integers(0, 5, 3000)
    threaded = prior.fit_prior(X, evidence, folds)
    expected = np.zeros(3000)
    for f in range(5):
        train = folds != f
        m = prior.fit_logistic(X[train], (evidence[train] > 0).astype(float),
                               np.where(evidence[train] != 0, np.abs(evidence[train]), 0.05), l2=0.01)
        expected[folds == f] = m.decision(X[folds == f])
    np.testing.assert_array_equal(threaded.oof_logit, expected)
    assert len(threaded.fold_coefs) == 5 and threaded.model.coef[0] > 0


def test_reasons_text_and_flagged_on_follow_the_contribution_order(scored: duckdb.DuckDBPyConnection) -> None:
    rows = scored.execute("SELECT reasons, reason_text, flagged_on FROM reputation").fetchall()
    multi = 0
    for reasons, text, flagged_on in rows:
        parts = [r for r in json.loads(reasons) if r["kind"] != "override"]
        sizes = [abs(r["contribution"]) for r in parts]
        assert sizes == sorted(sizes, reverse=True)
        assert flagged_on == sorted(set(flagged_on))
        if text == "No evidence" or text.startswith("analyst override"):
            continue
        phrases = text.split("; ")
        assert len(phrases) == len(parts)
        multi += len(parts) > 1
        for phrase, part in zip(phrases, parts, strict=True):
            if part["kind"] in ("direct_flag", "identity_flag", "campaign_flag"):
                assert phrase.endswith(part["source_platform"])
    assert multi > 0


def test_behaviour_alone_is_bounded_below_a_flag_above_the_spam_threshold(scored: duckdb.DuckDBPyConnection) -> None:
    from scipy.special import expit, logit

    from reputation.config import VerdictThresholds
    from reputation.scoring.stage import MAX_BEHAVIOUR_P, MAX_FLAG_LOGODDS, MIN_BEHAVIOUR_P

    assert expit(MAX_FLAG_LOGODDS) + 1e-12 >= MAX_BEHAVIOUR_P
    # ...yet enough for a spam verdict by default: a spam-like account with no other evidence is still caught
    assert VerdictThresholds().spam < MAX_BEHAVIOUR_P
    lo, hi = scored.execute("SELECT min(c_base + c_behaviour), max(c_base + c_behaviour) FROM account_evidence"
                            ).fetchall()[0]
    assert hi <= logit(MAX_BEHAVIOUR_P) + 1e-9 and lo >= logit(MIN_BEHAVIOUR_P) - 1e-9


def test_a_run_without_spam_flags_says_why_verdicts_are_unknown(caplog: pytest.LogCaptureFixture) -> None:
    c = duckdb.connect()
    make_world(c)
    c.execute("DELETE FROM flags WHERE label = 'spam'")
    c.execute("DELETE FROM overrides")
    with caplog.at_level("WARNING", logger="reputation"):
        build_reputation(c, make_ctx())
    assert "no live spam flag in the input" in caplog.text
    caplog.clear()
    c = duckdb.connect()
    make_world(c)
    with caplog.at_level("WARNING", logger="reputation"):
        build_reputation(c, make_ctx())
    assert "no live spam flag" not in caplog.text


def test_a_link_by_name_alone_vouches_but_does_not_smear() -> None:
    """A namesake or an impersonator shares a handle: the link it makes must not carry a spam flag, though
    a clean flag may still carry over it (the links' carry_probability leaves the names' weight out)."""
    def c_identity(con: duckdb.DuckDBPyConnection, account: str) -> float:
        return con.execute("SELECT c_identity FROM account_evidence WHERE platform = 'beta' AND account = ?",
                           [account]).fetchall()[0][0]

    full, named = duckdb.connect(), duckdb.connect()
    for con in (full, named):
        make_world(con)
        # honest h0's accounts on both platforms, one identity (its alpha account is clean-flagged)
        con.execute("UPDATE identities SET identity_id = 'hon0', size = 2, membership = 0.95, carry_membership = 0.95 "
                    "WHERE account = 'h0'")
        con.execute("INSERT INTO links VALUES ('r0', 'alpha', 'h0', 'beta', 'h0', 0.95, 8.0, '[]', [], 0.95)")
    # in the second world, both links rest on the handle alone
    named.execute("UPDATE links SET carry_probability = 0.01 WHERE account_a IN ('s0', 'h0')")
    named.execute("UPDATE identities SET carry_membership = 0.01 WHERE account IN ('s0', 'h0')")
    for con in (full, named):
        build_reputation(con, make_ctx())
    assert c_identity(full, "s0") > 1.0 and c_identity(named, "s0") < 0.05  # the spam flag carries no more
    assert c_identity(full, "h0") < -0.5  # the clean flag carries, over the handle alone too
    assert c_identity(named, "h0") == pytest.approx(c_identity(full, "h0"))
