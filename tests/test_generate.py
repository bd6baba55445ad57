"""Tests of the synthetic world generator (reputation.generate).

Worlds are small (at most 50k messages) so that the whole file runs in a few seconds. Behavioural
checks are measured from the written files through the generated ``pipeline.toml``, the way the
pipeline itself will read them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import tomllib
from pathlib import Path

import duckdb
import pytest

from reputation.generate import EVASION_KINDS, WorldSummary, generate_world, platform_names

CANONICAL = {
    "messages": {
        "platform", "sender", "recipient", "channel", "sent_at", "text", "message_id", "device", "ip", "url",
    },
    "accounts": {"platform", "account", "created_at", "handle", "display_name", "email", "phone"},
    "flags": {"platform", "account", "label", "flagged_at", "source", "confidence"},
    "links": {"platform_a", "account_a", "platform_b", "account_b", "source"},
}  # fmt: skip


def _relation(root: Path, src: dict, all_varchar: bool = False) -> str:
    path = str(root / src["path"]).replace("'", "''")
    if src["format"] == "parquet":
        return f"read_parquet('{path}')"
    if src["format"] == "csv":
        opts = src.get("csv", {})
        delim = opts.get("delimiter", ",")
        header = "true" if opts.get("header", True) else "false"
        extra = ", all_varchar=true" if all_varchar else ""
        return f"read_csv('{path}', delim='{delim}', header={header}{extra})"
    return f"read_json('{path}', format='newline_delimited')"


def _canonical_select(root: Path, src: dict) -> str:
    cols = []
    if "platform" in src:
        cols.append(f"'{src['platform']}' AS platform")
    for canon, col in src["columns"].items():
        expr = f'"{col}"'
        kind = src.get("timestamps", {}).get(canon)
        if kind == "epoch_ms":
            expr = f"make_timestamp(CAST({expr} AS BIGINT) * 1000)"
        elif kind == "epoch_s":
            expr = f"make_timestamp(CAST(CAST({expr} AS DOUBLE) * 1000000 AS BIGINT))"
        elif kind == "iso8601":
            expr = f"CAST(CAST({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"
        elif canon == "confidence":
            expr = f"CAST({expr} AS DOUBLE)"
        else:
            expr = f"CAST({expr} AS VARCHAR)"
        cols.append(f"{expr} AS {canon}")
    return f"SELECT {', '.join(cols)} FROM {_relation(root, src, all_varchar=True)}"


def _load(root: Path) -> duckdb.DuckDBPyConnection:
    """Load a world into canonical tables (messages, accounts, flags, links) plus truth tables."""
    cfg = tomllib.loads((root / "pipeline.toml").read_text())
    con = duckdb.connect()
    by_table: dict[str, list[str]] = {}
    for src in cfg["sources"]:
        by_table.setdefault(src["table"], []).append(_canonical_select(root, src))
    for table, selects in by_table.items():
        con.execute(f"CREATE TABLE {table} AS " + " UNION ALL BY NAME ".join(selects))
    for name in ("accounts", "people", "operators"):
        con.execute(f"CREATE TABLE truth_{name} AS SELECT * FROM read_parquet('{root}/truth/{name}.parquet')")
    con.execute(
        """CREATE TABLE m AS SELECT m.*, t.role, t.compromised, t.person_id
           FROM messages m JOIN truth_accounts t ON t.platform = m.platform AND t.account = m.sender"""
    )
    return con


def _one(con: duckdb.DuckDBPyConnection, sql: str):  # noqa: ANN202
    return con.execute(sql).fetchone()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldSummary]:
    root = tmp_path_factory.mktemp("world")
    return root, generate_world(root, seed=3, platforms=5, messages=50_000)


@pytest.fixture(scope="module")
def con(world: tuple[Path, WorldSummary]) -> duckdb.DuckDBPyConnection:
    return _load(world[0])


@pytest.fixture(scope="module")
def difficulty_worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, WorldSummary]]:
    out = {}
    for d in ("easy", "default", "adversarial"):
        root = tmp_path_factory.mktemp(d)
        out[d] = (root, generate_world(root, seed=5, platforms=3, messages=12_000, difficulty=d))
    return out


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- API, determinism, layout --------------------------------------------------------------------


def test_platform_names_cycle() -> None:
    assert platform_names(3) == ["linkup", "chirp", "forum"]
    assert platform_names(6)[-1] == "linkup2"


@pytest.mark.parametrize(
    "kwargs",
    [{"difficulty": "hard"}, {"platforms": 0}, {"days": 0}, {"messages": 10}, {"accounts": 5}],
)
def test_invalid_arguments_raise(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate_world(tmp_path, **kwargs)


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = generate_world(tmp_path / "a", seed=11, platforms=5, messages=6000)
    b = generate_world(tmp_path / "b", seed=11, platforms=5, messages=6000)
    c = generate_world(tmp_path / "c", seed=12, platforms=5, messages=6000)
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db
    assert a.to_dict() | {"config_path": ""} == b.to_dict() | {"config_path": ""}
    assert c.messages > 0
    parts_a = {v for k, v in da.items() if "/messages/" in k}
    parts_c = {v for k, v in dc.items() if "/messages/" in k}
    assert not parts_a & parts_c
    assert da["truth/accounts.parquet"] != dc["truth/accounts.parquet"]


def test_rerun_into_same_directory_replaces_parts(tmp_path: Path) -> None:
    generate_world(tmp_path, seed=1, messages=8000)
    first = _digest(tmp_path)
    generate_world(tmp_path, seed=2, messages=3000)
    generate_world(tmp_path, seed=1, messages=8000)
    assert _digest(tmp_path) == first


def test_summary_matches_files(world: tuple[Path, WorldSummary], con: duckdb.DuckDBPyConnection) -> None:
    root, summary = world
    assert Path(summary.config_path) == (root / "pipeline.toml").resolve()
    assert _one(con, "SELECT count(*) FROM messages")[0] == summary.messages
    assert _one(con, "SELECT count(*) FROM accounts")[0] == summary.accounts
    assert _one(con, "SELECT count(*) FROM truth_accounts")[0] == summary.accounts
    assert _one(con, "SELECT count(*) FROM truth_people")[0] == summary.people
    assert _one(con, "SELECT count(*) FROM truth_operators")[0] == summary.operators
    assert _one(con, "SELECT count(*) FROM flags")[0] == summary.flags
    assert _one(con, "SELECT count(*) FROM links")[0] == summary.known_links
    assert _one(con, "SELECT count(*) FROM truth_people WHERE role = 'spammer'")[0] == summary.spammers
    assert _one(con, "SELECT count(*) FROM truth_people WHERE role = 'bulk'")[0] == summary.bulk_senders
    assert _one(con, "SELECT count(*) FROM truth_accounts WHERE compromised")[0] == summary.compromised
    doc = json.loads((root / "world.json").read_text())
    assert doc["arguments"]["messages"] == 50_000
    assert doc["summary"]["messages"] == summary.messages
    assert set(summary.to_dict()) >= {"people", "accounts", "messages", "flags", "known_links", "config_path"}
    assert (root / "truth" / "README.md").read_text().count("|") > 20


@pytest.mark.parametrize("target", [3000, 30_000])
def test_messages_target_respected(tmp_path: Path, target: int) -> None:
    for seed in (0, 1):
        s = generate_world(tmp_path / str(seed), seed=seed, messages=target)
        assert 0.85 * target <= s.messages <= 1.15 * target


def test_difficulty_worlds_hit_target(difficulty_worlds: dict) -> None:
    for _root, s in difficulty_worlds.values():
        assert 0.85 * 12_000 <= s.messages <= 1.15 * 12_000


# -- config and file formats ---------------------------------------------------------------------


def test_config_parses_and_every_glob_matches(world: tuple[Path, WorldSummary]) -> None:
    root, _ = world
    cfg = tomllib.loads((root / "pipeline.toml").read_text())
    assert cfg["output"]["database"] == "out/reputation.duckdb"
    assert cfg["settings"]["hash_key_env"] == "REPUTATION_HASH_KEY"
    names = [s["name"] for s in cfg["sources"]]
    assert len(names) == len(set(names))
    tables = {s["table"] for s in cfg["sources"]}
    assert tables == {"messages", "accounts", "flags", "links"}
    for src in cfg["sources"]:
        assert not Path(src["path"]).is_absolute()
        assert glob.glob(str(root / src["path"])), src["path"]
        assert src["format"] in ("parquet", "csv", "ndjson")
        assert set(src["columns"]) <= CANONICAL[src["table"]]
        assert set(src.get("timestamps", {}).values()) <= {"iso8601", "epoch_s", "epoch_ms"}
        if src["table"] != "links":
            assert src["platform"] in platform_names(5)
    per_platform = {s["platform"] for s in cfg["sources"] if s["table"] == "messages"}
    assert per_platform == set(platform_names(5))


def test_files_readable_with_declared_columns(world: tuple[Path, WorldSummary]) -> None:
    root, _ = world
    cfg = tomllib.loads((root / "pipeline.toml").read_text())
    con = duckdb.connect()
    for src in cfg["sources"]:
        rel = _relation(root, src)
        names = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}
        assert set(src["columns"].values()) <= names, (src["name"], names)
        n = con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0]
        if src["table"] in ("messages", "accounts"):
            assert n > 0, src["name"]


def test_platform_specific_formats(world: tuple[Path, WorldSummary]) -> None:
    root, _ = world
    con = duckdb.connect()
    ts = con.execute(f"SELECT ts FROM read_parquet('{root}/linkup/messages/*.parquet') LIMIT 50").fetchall()
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t) for (t,) in ts)
    sent = con.execute(
        f"SELECT sent FROM read_csv('{root}/picshare/messages/*.csv', all_varchar=true) LIMIT 50"
    )
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", t) for (t,) in sent.fetchall())
    header = sorted((root / "chirp" / "messages").glob("part-*.csv"))[0].read_text().splitlines()[0]
    assert header == "author;target;epoch_ms;content;id"
    lo, hi = con.execute(
        f"SELECT min(epoch_ms), max(epoch_ms) FROM read_csv('{root}/chirp/messages/*.csv', delim=';')"
    ).fetchone()
    assert 1_767_225_600_000 <= lo < hi < 1_767_225_600_000 + 60 * 86_400_000
    forum = f"read_json('{root}/forum/messages/*.ndjson', format='newline_delimited')"
    t_type = con.execute(f"SELECT typeof(time) FROM {forum} LIMIT 1").fetchone()[0]
    assert t_type == "DOUBLE"
    assert (
        con.execute(f'SELECT count(*) FROM {forum} WHERE ("to" IS NULL) = (thread IS NULL)').fetchone()[0]
        == 0
    )
    assert con.execute(f"SELECT count(*) FROM {forum} WHERE thread IS NOT NULL").fetchone()[0] > 0
    vid = f"read_parquet('{root}/vidtube/messages/*.parquet')"
    assert con.execute(f"SELECT typeof(created) FROM {vid} LIMIT 1").fetchone()[0] == "BIGINT"
    neither, both = con.execute(
        f"""SELECT count(*) FILTER (WHERE channel_id IS NULL AND reply_to_user IS NULL),
                   count(*) FILTER (WHERE channel_id IS NOT NULL AND reply_to_user IS NOT NULL) FROM {vid}"""
    ).fetchone()
    assert neither == 0
    assert both > 0  # replies inside a video's comment section
    # Message ids are unique per platform.
    for rel in (
        f"SELECT msg_id AS id FROM read_parquet('{root}/linkup/messages/*.parquet')",
        f"SELECT id FROM read_csv('{root}/chirp/messages/*.csv', delim=';')",
    ):
        assert con.execute(f"SELECT count(*) - count(DISTINCT id) FROM ({rel})").fetchone()[0] == 0
    flags = (root / "flags" / "linkup.csv").read_text().splitlines()[0]
    assert flags == "account,label,flagged_at,source,confidence"


# -- truth consistency ---------------------------------------------------------------------------


def test_messages_reference_existing_accounts(con: duckdb.DuckDBPyConnection) -> None:
    orphans = _one(
        con,
        """SELECT count(*) FROM messages m WHERE NOT EXISTS
           (SELECT 1 FROM accounts a WHERE a.platform = m.platform AND a.account = m.sender)
           OR (m.recipient IS NOT NULL AND NOT EXISTS
           (SELECT 1 FROM accounts a WHERE a.platform = m.platform AND a.account = m.recipient))""",
    )[0]
    assert orphans == 0
    assert _one(con, "SELECT count(*) FROM messages WHERE recipient IS NULL AND channel IS NULL")[0] == 0
    # Nobody writes before their account exists, and everything is inside the window.
    early = _one(
        con,
        """SELECT count(*) FROM messages m JOIN accounts a ON a.platform = m.platform AND a.account = m.sender
           WHERE m.sent_at < a.created_at""",
    )[0]
    assert early == 0
    lo, hi = _one(con, "SELECT min(sent_at), max(sent_at) FROM messages")
    assert lo.year == 2026 and (hi - lo).days <= 60


def test_accounts_match_truth(con: duckdb.DuckDBPyConnection) -> None:
    diff = _one(
        con,
        """SELECT count(*) FROM (SELECT platform, account FROM accounts
           EXCEPT SELECT platform, account FROM truth_accounts)""",
    )[0]
    assert diff == 0
    assert _one(con, "SELECT count(*) - count(DISTINCT (platform, account)) FROM accounts")[0] == 0
    # Handles are unique per platform; the same id string may exist on two platforms.
    assert _one(con, "SELECT count(*) - count(DISTINCT (platform, handle)) FROM accounts")[0] == 0


def test_roles_operators_and_compromise(con: duckdb.DuckDBPyConnection) -> None:
    bad = _one(
        con,
        """SELECT count(*) FROM truth_accounts WHERE
           (role = 'spammer' AND operator_id IS NULL)
           OR (compromised AND (operator_id IS NULL OR compromised_at IS NULL OR role <> 'honest'))
           OR (role <> 'spammer' AND NOT compromised AND operator_id IS NOT NULL)
           OR (role <> 'spammer' AND len(evasion) > 0)""",
    )[0]
    assert bad == 0
    # Operators run 2-6 personas; truth tables agree with each other.
    assert _one(con, "SELECT min(n_personas), max(n_personas) FROM truth_operators") >= (2, 2)
    assert _one(con, "SELECT max(n_personas) FROM truth_operators")[0] <= 6
    mismatch = _one(
        con,
        """SELECT count(*) FROM truth_operators o JOIN (SELECT operator_id, count(*) n FROM truth_people
           WHERE role = 'spammer' GROUP BY 1) p USING (operator_id) WHERE p.n <> o.n_personas""",
    )[0]
    assert mismatch == 0
    # Compromised accounts send spam only after the takeover (their owner keeps chatting).
    after = _one(
        con,
        """SELECT count(*) FILTER (WHERE m.url LIKE 'https://%' AND m.sent_at >= t.compromised_at::TIMESTAMP)
           FROM m JOIN truth_accounts t ON t.platform = m.platform AND t.account = m.sender
           WHERE t.compromised""",
    )[0]
    assert after > 0


def test_same_person_accounts_span_platforms(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        """SELECT role, person_id, count(DISTINCT platform) np, count(*) na FROM truth_accounts
           GROUP BY ALL"""
    ).fetchall()
    spam = [r for r in rows if r[0] == "spammer"]
    assert spam and all(r[2] >= 2 for r in spam)
    assert any(r[3] > r[2] for r in spam)  # re-registrations on the same platform
    honest = [r for r in rows if r[0] == "honest"]
    assert all(r[2] == r[3] for r in honest)  # honest people: one account per platform
    assert sum(r[2] >= 2 for r in honest) > 0.3 * len(honest)
    # Evasion "fresh_account" covers every re-registration.
    missing = _one(
        con,
        """SELECT count(*) FROM (SELECT *, row_number() OVER (PARTITION BY person_id, platform
           ORDER BY a.created_at) k FROM truth_accounts t JOIN accounts a USING (platform, account)
           WHERE role = 'spammer') WHERE k > 1 AND NOT list_contains(evasion, 'fresh_account')""",
    )[0]
    assert missing == 0


def test_flags_and_links(con: duckdb.DuckDBPyConnection) -> None:
    # Truth "flagged" agrees with the spam flags in the files.
    mismatch = _one(
        con,
        """SELECT count(*) FROM truth_accounts t LEFT JOIN (SELECT DISTINCT platform, account FROM flags
           WHERE label = 'spam') f USING (platform, account) WHERE t.flagged <> (f.account IS NOT NULL)""",
    )[0]
    assert mismatch == 0
    # Every flagged persona is flagged on one account (so one platform) only.
    assert _one(
        con,
        """SELECT coalesce(max(n), 0) FROM (SELECT person_id, count(*) n FROM truth_accounts
           WHERE flagged AND role = 'spammer' GROUP BY 1)""",
    )[0] == 1  # fmt: skip
    # Wrong flags are on legitimate, non-compromised accounts; right ones come after the first spam.
    assert _one(
        con,
        """SELECT count(*) FROM truth_accounts WHERE wrongly_flagged
           AND (NOT flagged OR role = 'spammer' OR compromised)""",
    )[0] == 0  # fmt: skip
    assert _one(con, "SELECT count(*) FROM truth_accounts WHERE wrongly_flagged")[0] >= 1
    early = _one(
        con,
        """SELECT count(*) FROM flags f JOIN truth_accounts t USING (platform, account)
           JOIN (SELECT platform, sender AS account, min(sent_at) first_t FROM messages GROUP BY ALL) s
           USING (platform, account)
           WHERE f.label = 'spam' AND NOT t.wrongly_flagged AND f.flagged_at < s.first_t""",
    )[0]
    assert early == 0
    lo, hi = _one(con, "SELECT min(confidence), max(confidence) FROM flags")
    assert 0 <= lo <= hi <= 1
    assert {r[0] for r in con.execute("SELECT DISTINCT label FROM flags").fetchall()} == {"spam", "clean"}
    # Known links: only legitimate people, both accounts of the same person, on two platforms.
    bad = _one(
        con,
        """SELECT count(*) FROM links l
           JOIN truth_accounts a ON a.platform = l.platform_a AND a.account = l.account_a
           JOIN truth_accounts b ON b.platform = l.platform_b AND b.account = l.account_b
           WHERE a.person_id <> b.person_id OR a.role = 'spammer' OR l.platform_a = l.platform_b""",
    )[0]
    assert bad == 0
    assert _one(con, "SELECT count(*) FROM links")[0] > 0


def test_flag_share_and_evasion_rates_follow_difficulty(difficulty_worlds: dict) -> None:
    rates, flag_share = {}, {}
    for d, (root, _s) in difficulty_worlds.items():
        con = duckdb.connect()
        t = f"read_parquet('{root}/truth/accounts.parquet')"
        sql = f"SELECT avg(list_contains(evasion, ?)::INT) FROM {t} WHERE role = 'spammer'"
        rates[d] = {k: con.execute(sql, [k]).fetchone()[0] for k in EVASION_KINDS}
        flag_share[d] = con.execute(
            f"""SELECT avg(f::INT) FROM (SELECT person_id, bool_or(flagged) f FROM {t}
                WHERE role = 'spammer' GROUP BY 1)"""
        ).fetchone()[0]
    for k in EVASION_KINDS:
        assert rates["easy"][k] < rates["default"][k] < rates["adversarial"][k], (k, rates)
    assert 0.35 <= rates["default"]["handle_variation"] <= 0.65
    assert flag_share["easy"] > flag_share["default"] > flag_share["adversarial"]


def test_character_tricks_follow_difficulty_and_normalise_away(difficulty_worlds: dict) -> None:
    import pyarrow as pa

    from reputation.graph.templates import normalise_texts
    # invisible characters, Cyrillic lookalikes of Latin letters, full-width forms
    trick = r"[\x{200B}-\x{200D}\x{2060}\x{AD}\x{FEFF}\x{FF01}-\x{FF5E}асеорхуі]"
    share = {}
    for d, (root, _s) in difficulty_worlds.items():
        con = _load(root)
        by_role = dict(con.execute("SELECT role, avg(regexp_matches(text, ?)::INT) FROM m WHERE NOT compromised "
                                   "GROUP BY 1", [trick]).fetchall())
        assert by_role["honest"] == by_role["bulk"] == 0.0  # only spam plays tricks
        share[d] = by_role["spammer"]
        tricked = [r[0] for r in con.execute("SELECT text FROM m WHERE regexp_matches(text, ?)", [trick]).fetchall()]
        # the spam texts are English: once normalised, no trick is left
        assert tricked and all(t.isascii() for t in normalise_texts(pa.array(tricked)).to_pylist()), d
    assert 0 < share["easy"] < share["default"] < share["adversarial"], share


# -- behaviour measured from the files -----------------------------------------------------------


@pytest.fixture(scope="module")
def pair_stats(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[float, float, int]]:
    """Per role: (share of DM pairs the recipient answered, share of pairs with no earlier contact)."""
    con.execute(
        """CREATE TABLE pairs AS SELECT platform, sender, recipient, min(sent_at) first_t, count(*) n
           FROM messages WHERE recipient IS NOT NULL GROUP BY ALL"""
    )
    rows = con.execute(
        """SELECT CASE WHEN t.compromised THEN 'compromised' ELSE t.role END r, count(*),
             avg((b.sender IS NOT NULL)::INT) replied,
             avg((b.sender IS NULL OR b.first_t > p.first_t)::INT) unsolicited
           FROM pairs p JOIN truth_accounts t ON t.platform = p.platform AND t.account = p.sender
           LEFT JOIN pairs b ON b.platform = p.platform AND b.sender = p.recipient AND b.recipient = p.sender
           GROUP BY 1"""
    ).fetchall()
    return {r: (replied, unsolicited, n) for r, n, replied, unsolicited in rows}


def test_reply_rates(pair_stats: dict) -> None:
    honest, spam, bulk = pair_stats["honest"], pair_stats["spammer"], pair_stats["bulk"]
    assert honest[0] > 0.8
    assert spam[0] < 0.1  # ~2% per message; a pair may receive several spam messages
    assert honest[0] > 8 * spam[0]
    assert 0.05 < bulk[0] < honest[0]  # bulk senders: high fan-out, yet some replies


def test_unsolicited_contact(pair_stats: dict, con: duckdb.DuckDBPyConnection) -> None:
    assert pair_stats["spammer"][1] > 0.97
    assert pair_stats["honest"][1] < 0.65  # one side of each conversation necessarily writes first
    never_answered = dict(
        con.execute(
            """SELECT t.role, avg((b.sender IS NULL)::INT) FROM pairs p
               JOIN truth_accounts t ON t.platform = p.platform AND t.account = p.sender
               LEFT JOIN pairs b
                 ON b.platform = p.platform AND b.sender = p.recipient AND b.recipient = p.sender
               WHERE NOT t.compromised GROUP BY 1"""
        ).fetchall()
    )
    assert never_answered["spammer"] > 10 * never_answered["honest"]


def test_bulk_senders_fan_out(con: duckdb.DuckDBPyConnection) -> None:
    fan = dict(
        con.execute(
            """SELECT role, median(n) FROM (SELECT m.role, m.platform, m.sender, count(DISTINCT recipient) n
               FROM m WHERE recipient IS NOT NULL AND NOT compromised GROUP BY ALL) GROUP BY 1"""
        ).fetchall()
    )
    assert fan["bulk"] > 5 * fan["honest"]
    # The same issue text reaches many recipients, personalised with the recipient's first name.
    top = _one(
        con,
        """SELECT max(n) FROM (SELECT sender, regexp_replace(text, '^\\w+ \\w+, ', '') body, count(*) n
           FROM m WHERE role = 'bulk' GROUP BY ALL)""",
    )[0]
    assert top >= 20
    first_contact = _one(
        con,
        """SELECT count(*) FROM m JOIN truth_accounts b ON b.platform = m.platform AND b.account = m.recipient
           WHERE b.role = 'bulk' AND m.role = 'honest'""",
    )[0]
    assert first_contact > 0


def test_spam_timing_and_texts(con: duckdb.DuckDBPyConnection) -> None:
    share = dict(
        con.execute(
            """SELECT role, avg((hour(sent_at) < 5 OR dayofweek(sent_at) = 0)::INT) FROM m
               WHERE NOT compromised GROUP BY 1"""
        ).fetchall()
    )
    assert share["spammer"] > 1.5 * share["honest"]
    # Honest texts are varied; spam repeats templates (exact or near duplicates).
    dup = dict(
        con.execute(
            """SELECT role, 1 - count(DISTINCT text) / count(*) FROM m
               WHERE NOT compromised AND length(text) > 40 GROUP BY 1"""
        ).fetchall()
    )
    assert dup["honest"] < 0.02
    assert dup["spammer"] > 0.3
    urls = _one(con, "SELECT count(DISTINCT url) FROM m WHERE role = 'spammer' AND url IS NOT NULL")[0]
    assert urls > 0


def test_shared_ips_are_not_same_person(con: duckdb.DuckDBPyConnection) -> None:
    top = con.execute(
        """SELECT ip, count(DISTINCT person_id) n FROM m WHERE ip IS NOT NULL AND role <> 'spammer'
           GROUP BY ip ORDER BY n DESC LIMIT 3"""
    ).fetchall()
    assert top[0][1] >= 25  # a carrier-NAT / office IP is shared by many unrelated people
    # Personas of an operator share proxy IPs; the operator's personas stay distinct people.
    shared = _one(
        con,
        """SELECT count(*) FROM (SELECT m.ip, count(DISTINCT m.person_id) n FROM m
           JOIN truth_accounts t ON t.platform = m.platform AND t.account = m.sender
           WHERE t.role = 'spammer' AND m.ip IS NOT NULL GROUP BY 1) WHERE n >= 2""",
    )[0]
    assert shared > 0


def test_lockstep_campaigns(con: duckdb.DuckDBPyConnection) -> None:
    # Different personas of one operator send the same URL host within the same hour.
    n = _one(
        con,
        """SELECT count(*) FROM (SELECT t.operator_id, regexp_extract(m.url, 'https://([^/]+)/', 1) host,
             date_trunc('hour', m.sent_at) h, count(DISTINCT t.person_id) personas
           FROM m JOIN truth_accounts t ON t.platform = m.platform AND t.account = m.sender
           WHERE t.role = 'spammer' AND m.url IS NOT NULL GROUP BY ALL) WHERE personas >= 2""",
    )[0]
    assert n > 0


# -- households ------------------------------------------------------------------------------------


def test_households_share_home_ip_and_family_devices(con: duckdb.DuckDBPyConnection) -> None:
    """Household members are different people who send from one home IP, some from one family device."""
    sizes = con.execute(
        """SELECT household_id, count(*) AS n, count(*) FILTER (WHERE role = 'spammer') AS spam
           FROM truth_people WHERE household_id IS NOT NULL GROUP BY 1"""
    ).fetchall()
    assert sizes and all(2 <= n <= 4 for _, n, _ in sizes)
    people = _one(con, "SELECT count(*) FROM truth_people")[0]
    share = sum(n for _, n, _ in sizes) / people
    assert 0.15 <= share <= 0.32, share  # default difficulty: 25% of people, spam personas at half that
    # A network value a household shares: used by several of its people and by nobody outside it.
    shared = """
        WITH u AS (SELECT DISTINCT m.{col} AS v, p.person_id, p.household_id
                   FROM m JOIN truth_people p USING (person_id) WHERE m.{col} IS NOT NULL),
        v AS (SELECT v, count(DISTINCT person_id) AS people, count(DISTINCT household_id) AS households,
                     count(*) FILTER (WHERE household_id IS NULL) AS loners
              FROM u GROUP BY v)
        SELECT count(*) FROM v WHERE people >= 2 AND households = 1 AND loners = 0"""
    home_ips = _one(con, shared.format(col="ip"))[0]
    family_devices = _one(con, shared.format(col="device"))[0]
    assert home_ips >= 0.4 * len(sizes)  # a home line seen with two people (some send only from NAT or work)
    assert 0.25 * len(sizes) <= family_devices <= 0.75 * len(sizes)  # a family device in half of them
    # Outside households, a device is never used by two people.
    assert _one(con, """SELECT count(*) FROM (
        SELECT m.device FROM m JOIN truth_people p USING (person_id)
        WHERE m.device IS NOT NULL AND p.household_id IS NULL AND m.role <> 'spammer'
        GROUP BY 1 HAVING count(DISTINCT m.person_id) > 1)""")[0] == 0


def test_household_spammers_send_from_the_home_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spam persona in a household sends part of its spam from the IP its family uses (unless it keeps its
    own network identifiers, the ``no_shared_identifier`` evasion)."""
    import dataclasses

    import reputation.generate as gen

    crowded = dataclasses.replace(gen._DIFFICULTY["default"], household_share=0.9)
    monkeypatch.setitem(gen._DIFFICULTY, "default", crowded)
    generate_world(tmp_path, seed=2, platforms=2, messages=20_000)
    con = _load(tmp_path)
    from_home, total = _one(con, """
        WITH home AS (SELECT DISTINCT m.ip, p.household_id FROM m JOIN truth_people p USING (person_id)
                      WHERE p.role <> 'spammer' AND p.household_id IS NOT NULL AND m.ip IS NOT NULL)
        SELECT count(*) FILTER (WHERE h.ip IS NOT NULL), count(*)
        FROM m JOIN truth_people p USING (person_id)
        LEFT JOIN home h ON h.household_id = p.household_id AND h.ip = m.ip
        JOIN truth_accounts t ON t.platform = m.platform AND t.account = m.sender
        WHERE m.role = 'spammer' AND p.household_id IS NOT NULL AND m.url IS NOT NULL AND m.ip IS NOT NULL
          AND NOT list_contains(t.evasion, 'no_shared_identifier')""")
    assert total > 0
    assert 0.2 <= from_home / total <= 0.6, (from_home, total)


def test_household_share_follows_difficulty_and_can_be_zero(
    difficulty_worlds: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = {}
    for d, (root, _s) in difficulty_worlds.items():
        share[d] = duckdb.connect().execute(
            f"SELECT avg((household_id IS NOT NULL)::INT) FROM read_parquet('{root}/truth/people.parquet')"
        ).fetchone()[0]
    assert share["easy"] < share["default"] < share["adversarial"], share
    import dataclasses

    import reputation.generate as gen

    alone = dataclasses.replace(gen._DIFFICULTY["default"], household_share=0.0)
    monkeypatch.setitem(gen._DIFFICULTY, "default", alone)
    generate_world(tmp_path, seed=1, platforms=2, messages=5_000)
    assert duckdb.connect().execute(
        f"SELECT count(household_id) FROM read_parquet('{tmp_path}/truth/accounts.parquet')"
    ).fetchone()[0] == 0


def test_a_household_lives_in_its_peoples_time_zone(tmp_path: Path) -> None:
    """The head of a household (whose home IP, time zone and friends the others share) is never a spam persona
    where the household has someone else: honest people keep honest time zones, a persona takes the family's."""
    import numpy as np

    import reputation.generate as gen

    world = gen._World(tmp_path, 7, 20_000, 3, 30, "adversarial", None)
    world.make_people()
    honest_tz = world.tz[world.role != gen._SPAMMER].copy()
    world.make_households()
    legit = world.role != gen._SPAMMER
    assert np.isin(world.tz[legit], honest_tz).all()
    assert world.tz[legit].min() >= -3 and world.tz[legit].max() <= 3
    in_household = np.flatnonzero(world.household >= 0)
    head_is_spam = world.role[world.home[in_household]] == gen._SPAMMER
    has_legit = np.zeros(world.household.max() + 1, dtype=bool)
    has_legit[world.household[in_household[legit[in_household]]]] = True
    assert not (head_is_spam & has_legit[world.household[in_household]]).any()
    spam_members = in_household[~legit[in_household]]
    assert len(spam_members) > 0 and (world.home[spam_members] != spam_members).any()
