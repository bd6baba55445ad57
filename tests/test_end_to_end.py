"""The whole job on a small generated world, driven through the CLI as a scheduler or analyst would."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from reputation.cli import main
from reputation.generate import generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("world")
    summary = generate_world(root, seed=7, accounts=600, platforms=3, days=21)
    runner = CliRunner()
    result = runner.invoke(main, ["run", str(summary.config_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {"root": root, "db": root / "out" / "reputation.duckdb", "exports": root / "out" / "exports",
            "output": result.output, "summary": summary}


def _con(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def test_run_writes_every_table_with_the_run_id(world: dict) -> None:
    con = _con(world["db"])
    try:
        run_id, status = con.execute("SELECT run_id, status FROM runs").fetchone()
        assert status == "complete"
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        for required in ("runs", "quarantine", "messages", "interactions", "features", "templates", "links",
                         "identities", "campaigns", "reputation"):
            assert required in tables
            assert con.execute(f"SELECT count(*) FROM {required} WHERE run_id IS DISTINCT FROM ?",
                               [run_id]).fetchone()[0] == 0, required
        undocumented = con.execute("SELECT table_name FROM duckdb_tables() WHERE comment IS NULL").fetchall()
        assert undocumented == []
        undocumented = con.execute("SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal "
                                   "AND schema_name = 'main' AND comment IS NULL ORDER BY ALL").fetchall()
        assert undocumented == []  # COMMENT ON every column of every table and view
        n_accounts = con.execute("SELECT count(*) FROM accounts").fetchone()[0]
        assert con.execute("SELECT count(*) FROM reputation").fetchone()[0] == n_accounts
        assert con.execute("SELECT count(*) FROM identities").fetchone()[0] == n_accounts
        verdicts = {r[0] for r in con.execute("SELECT DISTINCT verdict FROM reputation").fetchall()}
        assert "spam" in verdicts and "clean" in verdicts
    finally:
        con.close()
    assert "top spam identities across platforms" in world["output"]


def test_no_raw_identifier_reaches_the_database_or_exports(world: dict) -> None:
    root = world["root"]
    raw: set[str] = set()
    for f in root.glob("*/accounts.*"):
        df = {"parquet": pl.read_parquet, "csv": lambda p: pl.read_csv(p, separator=";" if "chirp" in str(p) else ",",
                                                                        infer_schema=False),
              "ndjson": pl.read_ndjson}[f.suffix[1:]](f)
        for col in df.columns:
            if col in ("email", "phone", "mail"):
                raw |= {v for v in df[col].cast(pl.String).drop_nulls().to_list() if v}
    assert len(raw) > 50
    con = _con(world["db"])
    try:
        text_cols = con.execute("""SELECT table_name, column_name FROM duckdb_columns()
                                   WHERE data_type = 'VARCHAR' AND NOT internal""").fetchall()
        for table, column in text_cols:
            hits = con.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" IN (SELECT unnest(?))',
                               [sorted(raw)]).fetchone()[0]
            assert hits == 0, (table, column)
    finally:
        con.close()
    blob = b"".join(p.read_bytes() for p in world["exports"].rglob("*") if p.is_file())
    assert not any(e.encode() in blob for e in sorted(raw)[:200])


def test_exports_are_partitioned_by_platform(world: dict) -> None:
    parts = sorted(p.name for p in (world["exports"] / "reputation").iterdir())
    assert parts == ["platform=chirp", "platform=forum", "platform=linkup"]


def test_rerun_is_identical(world: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    db2 = tmp_path / "again.duckdb"
    result = runner.invoke(main, ["run", str(world["summary"].config_path), "--db", str(db2), "--exports",
                                  str(tmp_path / "ex"), "--no-summary"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    q = ("SELECT * EXCLUDE (run_id) FROM {t} ORDER BY ALL")
    a, b = _con(world["db"]), _con(db2)
    try:
        for table in ("identities", "links", "campaigns", "reputation"):
            assert a.execute(q.format(t=table)).fetchall() == b.execute(q.format(t=table)).fetchall(), table
    finally:
        a.close()
        b.close()


def test_explain_export_and_evaluate_commands(world: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    con = _con(world["db"])
    try:
        platform, account = con.execute("SELECT platform, account FROM reputation WHERE verdict = 'spam' "
                                        "ORDER BY score DESC, platform, account LIMIT 1").fetchone()
    finally:
        con.close()
    db = str(world["db"])
    out = runner.invoke(main, ["explain", "--db", db, f"{platform}:{account}", "--format", "json",
                               "--graph", str(tmp_path / "g.graphml")])
    assert out.exit_code == 0, out.output
    expl = json.loads(out.stdout)
    assert expl["account"]["verdict"] == "spam" and (tmp_path / "g.graphml").stat().st_size > 0
    assert runner.invoke(main, ["explain", "--db", db, "nosuch:account"]).exit_code == 2
    csv_path = tmp_path / "e.csv"
    out = runner.invoke(main, ["export", "--db", db, "--platform", platform, "--format", "csv", "--out",
                               str(csv_path), "--min-score", "0.5"])
    assert out.exit_code == 0, out.output
    exported = pl.read_csv(csv_path)
    assert exported.height > 0 and exported["score"].min() >= 0.5 and set(exported["platform"]) == {platform}
    out = runner.invoke(main, ["evaluate", "--db", db, "--truth", str(world["root"] / "truth")])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert {"linkage", "campaigns", "reputation"} <= set(report)
    assert "error" not in report["linkage"] and "error" not in report["reputation"]
    # the world has households; most of their pairs of different people stay apart
    assert report["linkage"]["household_pairs"] > 0 and report["linkage"]["household_link_rate"] < 0.3
    assert {"housemate_accounts", "housemate_fpr"} <= set(report["reputation"])
    # a misspelt platform is refused with the platforms the database has, not written as an empty file
    out = runner.invoke(main, ["export", "--db", db, "--platform", platform.upper(), "--format", "stix", "--out",
                               str(tmp_path / "x.json")])
    assert out.exit_code == 2 and platform in out.output and not (tmp_path / "x.json").exists()


def test_evaluate_refuses_a_truth_that_does_not_match_and_writes_strict_json(world: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(world["db"])
    truth = pl.read_parquet(world["root"] / "truth" / "accounts.parquet")
    other = tmp_path / "other"
    other.mkdir()
    truth.with_columns(pl.lit("elsewhere").alias("platform")).write_parquet(other / "accounts.parquet")
    out = runner.invoke(main, ["evaluate", "--db", db, "--truth", str(other)])
    assert out.exit_code == 3 and "none of the accounts" in out.output
    out = runner.invoke(main, ["evaluate", "--db", db, "--truth", str(tmp_path)])  # no accounts.parquet
    assert out.exit_code == 3 and "accounts.parquet" in out.output
    # one account per person: no true same-person pair, so linkage recall is undefined, and the report
    # says null (bare NaN is not JSON)
    single = tmp_path / "single"
    single.mkdir()
    truth.unique("person_id", keep="first", maintain_order=True).write_parquet(single / "accounts.parquet")
    out = runner.invoke(main, ["evaluate", "--db", db, "--truth", str(single)])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert report["linkage"]["pairwise_recall"] is None


def test_query_command_binds_parameters_and_never_writes(world: dict) -> None:
    runner = CliRunner()
    db = str(world["db"])
    con = _con(world["db"])
    try:
        platform = con.execute("SELECT min(platform) FROM reputation").fetchall()[0][0]
        expected = dict(con.execute("SELECT verdict, count(*) FROM reputation WHERE platform = ? GROUP BY 1",
                                    [platform]).fetchall())
    finally:
        con.close()
    sql = "SELECT verdict, count(*) AS n FROM reputation WHERE platform = ? GROUP BY 1 ORDER BY 1"
    out = runner.invoke(main, ["query", "--db", db, sql, "-p", platform, "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert dict(pl.read_csv(out.stdout.encode()).iter_rows()) == expected
    out = runner.invoke(main, ["query", "--db", db, "SELECT account FROM reputation ORDER BY account",
                               "--limit", "2"])
    assert out.exit_code == 0 and "2 of" in out.stdout
    out = runner.invoke(main, ["query", "--db", db, "SELECT ? AS p", "-p", "x' OR '1'='1", "--format", "jsonl"])
    assert json.loads(out.stdout) == {"p": "x' OR '1'='1"}  # a value, never SQL
    out = runner.invoke(main, ["query", "--db", db, "DELETE FROM reputation"])
    assert out.exit_code == 2 and "read-only" in out.output
    # nothing but the database: no file written or read, no other database attached, no setting changed
    target = world["root"] / "written.csv"
    secret = world["root"] / "secret.txt"  # as the hashing key file beside the database would be
    secret.write_text("k")
    for sql in (f"COPY (SELECT 1) TO '{target}'", f"SELECT * FROM read_text('{secret}')",
                f"ATTACH '{world['db']}.previous' AS p", "SET enable_external_access = true"):
        out = runner.invoke(main, ["query", "--db", db, sql])
        assert out.exit_code == 2, sql
    assert not target.exists()
    con = _con(world["db"])
    try:
        assert con.execute("SELECT count(*) FROM reputation").fetchall()[0][0] > 0
    finally:
        con.close()
    assert runner.invoke(main, ["query", "--db", db, "SELEC 1"]).exit_code == 2


def test_query_command_writes_nested_columns_and_long_values_whole(world: dict) -> None:
    runner = CliRunner()
    db = str(world["db"])
    # a list and a struct column in CSV: their JSON text, one cell each
    sql = ("SELECT account, flagged_on, {'n': 1, 'tags': ['a', 'b']} AS s FROM reputation "
           "WHERE len(flagged_on) > 0 ORDER BY account LIMIT 3")
    out = runner.invoke(main, ["query", "--db", db, sql, "--format", "csv"])
    assert out.exit_code == 0, out.output
    rows = pl.read_csv(out.stdout.encode())
    assert rows.height == 3
    assert all(isinstance(json.loads(v), list) and v for v in rows["flagged_on"])
    assert json.loads(rows["s"][0]) == {"n": 1, "tags": ["a", "b"]}
    # values print as they are, never as markup
    out = runner.invoke(main, ["query", "--db", db, "SELECT ? AS v", "-p", "evil[/b] [b]x[/b] :smile:"])
    assert out.exit_code == 0 and "evil[/b] [b]x[/b] :smile:" in out.stdout
    # piped, a table is as wide as its widest value: nothing is cut short with an ellipsis
    long_value = "x" * 300
    out = runner.invoke(main, ["query", "--db", db, "SELECT ? AS v, 'short' AS w", "-p", long_value])
    assert out.exit_code == 0 and long_value in out.stdout and "…" not in out.stdout
    # rows beyond --limit are counted, not shown
    n = len(runner.invoke(main, ["query", "--db", db, "SELECT account FROM reputation",
                                 "--format", "jsonl"]).stdout.splitlines())
    out = runner.invoke(main, ["query", "--db", db, "SELECT account FROM reputation", "--limit", "3"])
    assert f"3 of {n:,} rows shown" in out.stdout


def test_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sources]]\nname = 'm'\ntable = 'messages'\nformat = 'csv'\n")
    result = runner.invoke(main, ["run", str(bad)])
    assert result.exit_code == 2 and "sources[0].path" in result.output
    missing = tmp_path / "missing.toml"
    missing.write_text("[[sources]]\nname = 'm'\ntable = 'messages'\nformat = 'csv'\npath = 'none.csv'\n"
                       "platform = 'p'\n[sources.columns]\nsender = 's'\nrecipient = 'r'\n")
    result = runner.invoke(main, ["run", str(missing)])
    assert result.exit_code == 3 and "none.csv does not exist" in result.output
    # a config error found once the run has started (no key in the environment) is still exit 2
    (tmp_path / "m.csv").write_text("s,r\na,b\n")
    keyless = tmp_path / "keyless.toml"
    keyless.write_text("[settings]\nhash_key_env = 'REPUTATION_TEST_UNSET_KEY'\nrequire_hash_key = true\n"
                       "[[sources]]\nname = 'm'\ntable = 'messages'\nformat = 'csv'\npath = 'm.csv'\n"
                       "platform = 'p'\n[sources.columns]\nsender = 's'\nrecipient = 'r'\n")
    result = runner.invoke(main, ["run", str(keyless)], env={"REPUTATION_TEST_UNSET_KEY": None})
    assert result.exit_code == 2 and "settings.hash_key_env" in result.output
    # a usage error of generate is exit 2 with a message, not a traceback
    result = runner.invoke(main, ["generate", "--out", str(tmp_path / "g"), "--platforms", "0"])
    assert result.exit_code == 2 and "--platforms" in result.output
    result = runner.invoke(main, ["generate", "--out", str(tmp_path / "g"), "--accounts", "10"])
    assert result.exit_code == 2 and "accounts must be >= 50" in result.output and result.exception.code == 2


def test_a_file_that_is_not_a_database_gets_a_clean_error_from_every_reader(tmp_path: Path) -> None:
    runner = CliRunner()
    fake = tmp_path / "notes.duckdb"
    fake.write_text("not a database\n")
    for args in (["explain", "--db", str(fake), "p:a"], ["query", "--db", str(fake), "SELECT 1"],
                 ["export", "--db", str(fake), "--platform", "p", "--format", "csv", "--out", str(tmp_path / "x")],
                 ["evaluate", "--db", str(fake), "--truth", str(tmp_path)]):
        result = runner.invoke(main, args)
        assert result.exit_code == 3, (args[0], result.output)
        assert isinstance(result.exception, SystemExit), (args[0], result.exception)
        assert f"{fake}: cannot open it as a DuckDB database" in result.output, args[0]
    assert not (tmp_path / "x").exists()


def test_output_paths_that_cannot_be_written_get_a_clean_error(world: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    blocker = tmp_path / "a-file"  # a path under a regular file cannot be made, whoever runs the test
    blocker.write_text("x")
    account = _con(world["db"]).execute(
        "SELECT platform || ':' || account FROM reputation ORDER BY score DESC LIMIT 1").fetchall()[0][0]
    platform = account.split(":")[0]
    cases = [
        (["export", "--db", str(world["db"]), "--platform", platform, "--format", "csv",
          "--out", str(blocker / "x.csv")], str(blocker / "x.csv")),
        (["export", "--db", str(world["db"]), "--platform", platform, "--format", "stix", "--out", str(tmp_path)],
         str(tmp_path)),
        (["explain", "--db", str(world["db"]), account, "--graph", str(blocker / "g.graphml")],
         str(blocker / "g.graphml")),
        (["run", str(world["summary"].config_path), "--db", str(blocker / "r.duckdb")], str(blocker / "r.duckdb")),
        (["run", str(world["summary"].config_path), "--db", str(tmp_path / "r.duckdb"),
          "--exports", str(blocker / "ex")], str(blocker / "ex")),
    ]
    for args, named in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert f"cannot write {named}" in result.output, (args, result.output)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("r.duckdb")) == ["a-file"]


def test_a_run_to_another_database_writes_its_exports_beside_it(world: dict, tmp_path: Path) -> None:
    marker = world["exports"] / ".reputation-exports"
    before = marker.read_text()
    trial = tmp_path / "trial.duckdb"
    result = CliRunner().invoke(main, ["run", str(world["summary"].config_path), "--db", str(trial),
                                       "--no-summary"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert marker.read_text() == before  # the config's database keeps its own exports
    run_id = _con(trial).execute("SELECT run_id FROM runs WHERE status = 'complete'").fetchall()[0][0]
    marker = (tmp_path / "trial-exports" / ".reputation-exports").read_text()
    assert marker == f"written by reputation run {run_id}\nfor the database {trial}\n"
    # a folder that holds another database's exports is refused, not replaced
    result = CliRunner().invoke(main, ["run", str(world["summary"].config_path), "--db", str(tmp_path / "other.duckdb"),
                                       "--exports", str(tmp_path / "trial-exports"), "--no-summary"])
    assert result.exit_code == 2 and f"holds the exports of another database, {trial}" in result.output
    assert (tmp_path / "trial-exports" / ".reputation-exports").read_text() == marker


def test_readers_wait_out_a_short_write_lock_and_name_a_long_one(world: dict, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import subprocess
    import sys

    from reputation import cli

    db = tmp_path / "r.duckdb"
    shutil.copy(world["db"], db)
    holder = subprocess.Popen(  # a failed run recording itself holds the database read-write for a moment
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                               "time.sleep(float(sys.argv[2])); c.close()", str(db), "1.0"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = CliRunner().invoke(main, ["query", "--db", str(db), "SELECT count(*) AS n FROM reputation",
                                           "--format", "csv"])
        assert result.exit_code == 0, result.output
        assert int(result.output.splitlines()[-1]) > 0
    finally:
        holder.wait(timeout=30)
    monkeypatch.setattr(cli, "LOCK_WAIT_SECONDS", 0.2)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                               "time.sleep(float(sys.argv[2])); c.close()", str(db), "3.0"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = CliRunner().invoke(main, ["query", "--db", str(db), "SELECT 1"])
        assert result.exit_code == 3 and "held a write lock on it for over" in result.output, result.output
    finally:
        holder.kill()
        holder.wait(timeout=30)
