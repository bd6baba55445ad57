"""Exports: formats, platform isolation (no other platform's account ids, no raw identifiers), STIX."""

from __future__ import annotations

import csv
import errno
import json

import duckdb
import pytest
import stix2
from test_reputation import make_ctx, make_world

from reputation.export import EXPORT_COLUMNS, export_platform, platform_file_name, write_exports
from reputation.scoring.stage import build_reputation

# Account ids that exist only on alpha: they must never appear in a beta export.
ALPHA_ONLY = ("bulk",)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    make_world(c)
    # Make alpha's ids distinguishable from beta's: rename alpha's accounts everywhere.
    for table, cols in (("accounts", ("account",)), ("flags", ("account",)), ("overrides", ("account",)),
                        ("features", ("account",)), ("templates", ("account",)), ("campaigns", ("account",)),
                        ("identities", ("account",)), ("interactions", ("sender", "recipient")),
                        ("messages", ("sender", "recipient")), ("links", ("account_a",))):
        for col in cols:
            plat = "platform_a" if col == "account_a" else "platform"
            c.execute(f"UPDATE {table} SET {col} = 'A-' || {col} WHERE {plat} = 'alpha' AND {col} IS NOT NULL")
    c.execute("CREATE TABLE raw_secrets AS SELECT 'alice@example.com' AS email")
    build_reputation(c, make_ctx())
    return c


def _assert_beta_only(text: str) -> None:
    assert "A-" not in text, "an alpha account id leaked into a beta export"
    assert "@" not in text
    assert "spam0" not in text, "identity ids must not be exported"


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "stix"])
def test_platform_export_holds_only_that_platform(con: duckdb.DuckDBPyConnection, tmp_path, fmt: str) -> None:
    path = tmp_path / f"beta.{fmt}"
    n = export_platform(con, "beta", fmt, path)
    assert n > 0
    if fmt == "parquet":
        rows = con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        cols = [d[0] for d in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()]
        assert tuple(cols) == EXPORT_COLUMNS
        assert {r[0] for r in rows} == {"beta"}
        text = json.dumps(rows, default=str)
    else:
        text = path.read_text()
    _assert_beta_only(text)
    if fmt == "csv":
        rows = list(csv.DictReader(path.open()))
        assert len(rows) == n and {r["platform"] for r in rows} == {"beta"}
        s0 = next(r for r in rows if r["account"] == "s0")
        assert {x["kind"] for x in json.loads(s0["reasons"])} >= {"identity_flag"}
        assert s0["flagged_on"] == "alpha"
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        assert len(rows) == n and all(r["platform"] == "beta" for r in rows)
        assert all(isinstance(r["reasons"], list) for r in rows)


def test_min_score_filters(con: duckdb.DuckDBPyConnection, tmp_path) -> None:
    total = export_platform(con, "beta", "csv", tmp_path / "all.csv")
    high = export_platform(con, "beta", "csv", tmp_path / "high.csv", min_score=0.8)
    expected = con.execute("SELECT count(*) FROM reputation WHERE platform = 'beta' AND score >= 0.8"
                           ).fetchall()[0][0]
    assert high == expected < total


def test_stix_bundle_is_valid(con: duckdb.DuckDBPyConnection, tmp_path) -> None:
    path = tmp_path / "beta.json"
    n = export_platform(con, "beta", "stix", path)
    bundle = stix2.parse(path.read_text())  # strict: no custom properties, the engine's fields are an extension
    indicators = [o for o in bundle.objects if o.type == "indicator"]
    identities = [o for o in bundle.objects if o.type == "identity"]
    (extension,) = [o for o in bundle.objects if o.type == "extension-definition"]
    assert len(indicators) == n and len(identities) == 1
    scores = dict(con.execute("SELECT account, score FROM reputation WHERE platform = 'beta'").fetchall())
    expected = con.execute("SELECT count(*) FROM reputation WHERE platform = 'beta' AND verdict IN "
                           "('spam', 'suspicious')").fetchall()[0][0]
    assert n == expected
    for ind in indicators:
        assert ind.created_by_ref == identities[0].id
        assert 0 <= ind.confidence <= 100
        assert ind.valid_until > ind.valid_from
        assert "human review" in ind.description
        assert "account_type = 'beta'" in ind.pattern
        props = ind.extensions[extension.id]
        assert props["extension_type"] == "property-extension"
        account = ind.pattern.split("user_id = '")[1].split("'")[0]
        assert props["score"] == pytest.approx(scores[account], abs=1e-6)
        assert ind.confidence == round(100 * scores[account])
        assert {r["kind"] for r in props["reasons"]} and props["run_id"]
    # Deterministic ids: exporting again gives the same bundle.
    export_platform(con, "beta", "stix", tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == path.read_text()


def test_write_exports_hive_partitioned(con: duckdb.DuckDBPyConnection, tmp_path) -> None:
    written = write_exports(con, tmp_path, formats=("parquet", "stix"))
    assert written["reputation/platform=beta"] == con.execute(
        "SELECT count(*) FROM reputation WHERE platform = 'beta'").fetchall()[0][0]
    back = con.execute("SELECT platform, count(*) FROM read_parquet(?, hive_partitioning = true) GROUP BY ALL "
                       "ORDER BY ALL", [str(tmp_path / "reputation" / "**" / "*.parquet")]).fetchall()
    assert back == con.execute("SELECT platform, count(*) FROM reputation GROUP BY ALL ORDER BY ALL").fetchall()
    beta_files = list((tmp_path / "reputation" / "platform=beta").glob("*.parquet"))
    assert beta_files
    # each file says whose accounts it holds, read on its own (no partition folder to go by)
    assert con.execute("SELECT DISTINCT platform FROM read_parquet(?, hive_partitioning = false)",
                       [[str(f) for f in beta_files]]).fetchall() == [("beta",)]
    for f in beta_files:
        _assert_beta_only(json.dumps(con.execute("SELECT * FROM read_parquet(?)", [str(f)]).fetchall(), default=str))
    _assert_beta_only((tmp_path / "stix" / "beta.stix.json").read_text())


def test_unknown_format_is_rejected(con: duckdb.DuckDBPyConnection, tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        export_platform(con, "beta", "xml", tmp_path / "x")  # type: ignore[arg-type]


def test_platforms_whose_names_differ_only_in_punctuation_get_their_own_files(tmp_path) -> None:
    c = duckdb.connect()
    c.execute("CREATE TABLE reputation AS SELECT * FROM (VALUES "
              "('a_b', 'x1'), ('a~b', 'y1'), ('a/b', 'z1')) t(platform, account)")
    for col in EXPORT_COLUMNS[2:]:
        c.execute(f"ALTER TABLE reputation ADD COLUMN {col} VARCHAR")
    written = write_exports(c, tmp_path, formats=("parquet", "csv"))
    files = sorted(k for k in written if k.startswith("csv/"))
    assert len(files) == 3 and all(written[f] == 1 for f in files)
    for f in files:
        rows = list(csv.DictReader((tmp_path / f).open()))
        assert len(rows) == 1 and f == f"csv/{platform_file_name(rows[0]['platform'])}.csv"
    assert not (tmp_path / "csv" / "a").exists()  # no folder made out of a platform's "/"


@pytest.mark.parametrize("fmt", ["csv", "stix"])
def test_a_failed_export_write_leaves_the_previous_file_and_no_partial_one(
        con: duckdb.DuckDBPyConnection, tmp_path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    from reputation import export as export_module

    out = tmp_path / f"beta.{fmt}"
    assert export_platform(con, "beta", fmt, out) > 0
    before = out.read_bytes()

    def full_disk(*args):  # the write gets halfway, then the disk is full
        partial = args[-1]  # both writers take the file to write last
        assert partial.parent == out.parent and partial != out
        partial.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_module, "_write_stix" if fmt == "stix" else "_copy_rows", full_disk)
    with pytest.raises(export_module.ExportWriteError, match=r"cannot write .*beta\.\w+: No space left on device"):
        export_platform(con, "beta", fmt, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_an_export_onto_a_folder_is_refused_and_the_folder_is_untouched(con: duckdb.DuckDBPyConnection,
                                                                      tmp_path) -> None:
    from reputation.export import ExportWriteError

    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine")
    with pytest.raises(ExportWriteError, match="reports"):
        export_platform(con, "beta", "parquet", folder)
    assert [p.name for p in folder.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


def test_an_export_goes_through_a_symbolic_link_and_into_a_pipe(con: duckdb.DuckDBPyConnection, tmp_path) -> None:
    import os
    import threading

    target = tmp_path / "real.csv"
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    n = export_platform(con, "beta", "csv", link)
    assert link.is_symlink() and len(target.read_text().splitlines()) == n + 1  # the link kept, its file written
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    export_platform(con, "beta", "jsonl", fifo)  # a pipe (as /dev/stdout may be) is written as it is
    reader.join(timeout=30)
    assert len(got[0].decode().splitlines()) == n and fifo.exists() and not fifo.is_file()
