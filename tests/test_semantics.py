"""What the whole pipeline concludes on tiny hand-made worlds: the promises of the README, one at a time."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from reputation.pipeline import run_pipeline

SOURCES = """
[output]
database = "out/r.duckdb"
exports = "out/exports"
[[sources]]
name = "messages"
table = "messages"
path = "messages.csv"
format = "csv"
[sources.columns]
platform = "platform"
sender = "sender"
recipient = "recipient"
sent_at = "sent_at"
text = "text"
[[sources]]
name = "flags"
table = "flags"
path = "flags.csv"
format = "csv"
[sources.columns]
platform = "platform"
account = "account"
label = "label"
[[sources]]
name = "links"
table = "links"
path = "links.csv"
format = "csv"
[sources.columns]
platform_a = "platform_a"
account_a = "account_a"
platform_b = "platform_b"
account_b = "account_b"
[[sources]]
name = "overrides"
table = "overrides"
path = "overrides.csv"
format = "csv"
[sources.columns]
platform = "platform"
account = "account"
decision = "decision"
"""


def _conversations(pairs: int, platform: str = "p1", prefix: str = "u") -> list[str]:
    """``pairs`` two-person conversations, 10 messages each way, who starts alternating: alike accounts."""
    rows = []
    for k in range(pairs):
        a, b = f"{prefix}{2 * k}", f"{prefix}{2 * k + 1}"
        first, second = (a, b) if k % 2 else (b, a)
        for i in range(10):
            rows.append(f"{platform},{first},{second},2026-01-{1 + i:02d}T10:00:00Z,hello there friend {i}")
            rows.append(f"{platform},{second},{first},2026-01-{1 + i:02d}T11:00:00Z,hi back to you {i}")
    return rows


def _run(tmp_path: Path, messages: list[str], flags: list[str] = (), links: list[str] = (),
         overrides: list[str] = ()) -> duckdb.DuckDBPyConnection:
    os.environ.setdefault("REPUTATION_HASH_KEY", "semantics-test-key")
    (tmp_path / "messages.csv").write_text("platform,sender,recipient,sent_at,text\n" + "\n".join(messages) + "\n")
    (tmp_path / "flags.csv").write_text("platform,account,label\n" + "".join(f"{f}\n" for f in flags))
    (tmp_path / "links.csv").write_text("platform_a,account_a,platform_b,account_b\n"
                                        + "".join(f"{x}\n" for x in links))
    (tmp_path / "overrides.csv").write_text("platform,account,decision\n" + "".join(f"{o}\n" for o in overrides))
    (tmp_path / "pipeline.toml").write_text(SOURCES)
    result = run_pipeline(tmp_path / "pipeline.toml")
    return duckdb.connect(str(result.database), read_only=True)


def _verdicts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT verdict, count(*) FROM reputation GROUP BY 1").fetchall())


def test_a_few_random_flags_do_not_make_everyone_spam(tmp_path: Path) -> None:
    # 400 accounts that all behave alike; 4 of them flagged at random: behaviour cannot tell spam apart
    flags = [f"p1,u{k},spam" for k in (3, 101, 202, 333)]
    con = _run(tmp_path, _conversations(200), flags)
    verdicts = _verdicts(con)
    assert verdicts.get("spam", 0) <= 4 + 4  # the flagged and at most their conversation partners
    params = dict(con.execute("SELECT parameter, value FROM reputation_model").fetchall())
    assert params["prior_learned"] == 0.0 and params["prior_separation_p"] > 0.05
    base = con.execute("SELECT c_base FROM account_evidence LIMIT 1").fetchall()[0][0]
    assert base < 0  # the base rate is a minority share, not logit(0.9)


def test_a_declared_known_link_holds_however_many_accounts_there_are(tmp_path: Path) -> None:
    messages = _conversations(300)  # 600 unrelated accounts make random pairs many
    messages += ["p1,s1,u0,2026-01-02T09:00:00Z,buy cheap watches now", "p2,s2,v0,2026-01-03T09:00:00Z,hi",
                 "p2,v0,s2,2026-01-03T10:00:00Z,hello"]
    con = _run(tmp_path, messages, flags=["p1,s1,spam"], links=["p1,s1,p2,s2"])
    link = con.execute("SELECT probability FROM links WHERE account_a = 's1' AND account_b = 's2'").fetchall()
    assert link == [(1.0,)]
    same = con.execute("SELECT count(DISTINCT identity_id) FROM identities WHERE account IN ('s1', 's2')"
                       ).fetchall()[0][0]
    assert same == 1
    carried = con.execute("SELECT c_identity FROM account_evidence WHERE platform = 'p2' AND account = 's2'"
                          ).fetchall()[0][0]
    assert carried > 0


def test_an_analyst_override_carries_to_the_same_persons_other_accounts(tmp_path: Path) -> None:
    messages = _conversations(20)
    messages += [f"{p},{a},u{i},2026-01-0{1 + i % 5}T09:00:00Z,note {i}"
                 for i, (p, a) in enumerate([("p1", "z"), ("p2", "w"), ("p1", "x"), ("p2", "y")] * 3)]
    con = _run(tmp_path, messages, flags=["p1,z,spam"], links=["p1,z,p2,w", "p1,x,p2,y"],
               overrides=["p1,z,clean", "p1,x,spam"])
    rows = dict(con.execute("SELECT account, c_identity FROM account_evidence WHERE account IN ('w', 'y')"
                            ).fetchall())
    assert rows["w"] < 0  # z's flag was overruled: its clean name carries, not the flag
    assert rows["y"] > 0  # x was confirmed as spam by an analyst, with no flag at all


def test_a_message_to_oneself_is_no_reply(tmp_path: Path) -> None:
    messages = ["p1,me,me,2026-01-07T09:00:00Z,note to self"] * 3
    messages += [f"p1,me,t{i},2026-01-0{1 + i}T09:00:00Z,buy cheap watches now" for i in range(5)]
    con = _run(tmp_path, messages)
    assert con.execute("SELECT count(*) FROM interactions WHERE sender = recipient").fetchall() == [(0,)]
    reply_rate, unsolicited, fan_in = con.execute(
        "SELECT reply_rate, unsolicited_rate, fan_in FROM features WHERE account = 'me'").fetchall()[0]
    assert reply_rate == 0 and unsolicited == 1 and fan_in == 0



def _truth(tmp_path: Path, accounts: list[str], spammers: set[str], compromised: dict | None = None) -> Path:
    """A generated world's truth/ folder for ``accounts`` of platform p1 (``compromised``: account → time)."""
    import polars as pl

    compromised = compromised or {}
    truth = tmp_path / "truth"
    truth.mkdir()
    n = len(accounts)
    pl.DataFrame({"platform": ["p1"] * n, "account": accounts, "person_id": list(range(n)),
                  "role": ["spammer" if a in spammers else "honest" for a in accounts],
                  "operator_id": pl.Series([None] * n, dtype=pl.Int64),
                  "compromised": [a in compromised for a in accounts],
                  "compromised_at": pl.Series([compromised.get(a) for a in accounts], dtype=pl.Datetime("us", "UTC")),
                  "evasion": pl.Series([[]] * n, dtype=pl.List(pl.String)),
                  "flagged": [False] * n, "wrongly_flagged": [False] * n}).write_parquet(truth / "accounts.parquet")
    return truth


def _accounts(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [a for (a,) in con.execute("SELECT account FROM accounts ORDER BY 1").fetchall()]


def test_evaluate_leaves_out_accounts_an_analyst_decided(tmp_path: Path) -> None:
    from reputation.evaluate import evaluate_database

    messages = _conversations(5) + [f"p1,s{i},u{i},2026-01-02T09:00:00Z,buy cheap watches now" for i in range(3)]
    con = _run(tmp_path, messages, flags=["p1,s0,spam"], overrides=["p1,s1,spam"])
    accounts = _accounts(con)
    con.close()
    truth = _truth(tmp_path, accounts, {a for a in accounts if a.startswith("s")})
    report = evaluate_database(tmp_path / "out" / "r.duckdb", truth)
    assert report["reputation"]["accounts_never_flagged"] == len(accounts) - 2  # s0 (flag) and s1 (override)


def test_only_messages_after_a_takeover_make_victims(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from reputation.evaluate import evaluate_database

    messages = _conversations(5) + ["p1,c,v1,2026-01-02T09:00:00Z,lunch tomorrow at noon then",
                                    "p1,c,v2,2026-01-06T09:00:00Z,buy cheap watches now"]
    con = _run(tmp_path, messages)
    accounts = _accounts(con)
    con.close()
    truth = _truth(tmp_path, accounts, set(), compromised={"c": datetime(2026, 1, 5, tzinfo=UTC)})
    report = evaluate_database(tmp_path / "out" / "r.duckdb", truth)
    assert report["reputation"]["victim_accounts"] == 1  # v2; v1 heard from the owner, before the takeover


def test_a_person_declared_as_a_star_of_links_is_one_identity(tmp_path: Path) -> None:
    # one person's four accounts, declared as links from the first to each other one (a star)
    messages = _conversations(10) + [f"{p},{a},u{i},2026-01-0{1 + i}T09:00:00Z,note number {i}"
                                     for i, (p, a) in enumerate([("p1", "a"), ("p2", "b"), ("p3", "c"), ("p4", "d")])]
    con = _run(tmp_path, messages, links=["p1,a,p2,b", "p1,a,p3,c", "p1,a,p4,d"])
    ids = con.execute("SELECT count(DISTINCT identity_id), max(size) FROM identities WHERE account IN "
                      "('a', 'b', 'c', 'd')").fetchall()
    assert ids == [(1, 4)]
