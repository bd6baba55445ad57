"""Ingest: mapping, typing, hashing, and every kind of bad input (quarantine or a clear error)."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from reputation import ingest
from reputation.config import parse_config
from reputation.hashing import hmac_hex
from reputation.ingest import InputError, build_accounts, build_identifiers, ingest_sources

KEY = b"test-key"


def _config(tmp_path: Path, sources: str, settings: str = "") -> object:
    text = f"[output]\ndatabase = 'out/r.duckdb'\n[settings]\n{settings}\n{sources}"
    return parse_config(text, tmp_path / "pipeline.toml")


def _messages_source(name: str, path: str, fmt: str, extra: str = "", columns: str | None = None) -> str:
    columns = columns or 'sender = "from"\nrecipient = "to"\nsent_at = "ts"\ntext = "body"\nmessage_id = "id"'
    return f"""
[[sources]]
name = "{name}"
table = "messages"
path = "{path}"
format = "{fmt}"
platform = "p1"
{extra}
[sources.columns]
{columns}
"""


def _csv_source(name: str, table: str, path: str, columns: dict[str, str], platform: str | None = None) -> str:
    """A [[sources]] entry for a CSV file of ``table`` (canonical column = file column)."""
    mapped = "".join(f'{k} = "{v}"\n' for k, v in columns.items())
    constant = f'platform = "{platform}"\n' if platform else ""
    return (f'\n[[sources]]\nname = "{name}"\ntable = "{table}"\npath = "{path}"\nformat = "csv"\n{constant}'
            f"[sources.columns]\n{mapped}")


def _ingest(tmp_path: Path, sources: str, settings: str = ""):
    cfg = _config(tmp_path, sources, settings)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    counts = ingest_sources(con, cfg, "r1", KEY)
    return con, counts


def _quarantine(con) -> list[tuple]:
    return con.execute("SELECT row_number, field, reason FROM quarantine ORDER BY file, row_number").fetchall()


def test_csv_rows_are_typed_and_reconciled(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "from,to,ts,body,id\n"
        "a,b,2026-01-02T03:04:05.250Z,hello,1\n"
        "b,a,2026-01-02 03:05:00,hi back,2\n"
        "c,,2026-01-02T03:06:00+02:00,nobody,3\n"
    )
    con, counts = _ingest(tmp_path, _messages_source("m", "m.csv", "csv"))
    rows = con.execute("SELECT sender, recipient, sent_at::VARCHAR, text, source_row FROM messages "
                       "ORDER BY source_row").fetchall()
    assert rows == [("a", "b", "2026-01-02 03:04:05.25", "hello", 1), ("b", "a", "2026-01-02 03:05:00", "hi back", 2)]
    assert _quarantine(con) == [(3, "recipient", "message has neither recipient nor channel")]
    (c,) = counts
    assert (c.rows_read, c.rows_stored, c.rows_quarantined) == (3, 2, 1)


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("epoch_s", "1767225600", "2026-01-01 00:00:00"),
        ("epoch_s", "1767225600.5", "2026-01-01 00:00:00.5"),
        ("epoch_ms", "1767225600123", "2026-01-01 00:00:00.123"),
        ("iso8601", "2026-01-01T00:00:00Z", "2026-01-01 00:00:00"),
        ("auto", "1767225600123", "2026-01-01 00:00:00.123"),
        ("auto", "1767225600", "2026-01-01 00:00:00"),
        ("auto", "10000000000", "1970-04-26 17:46:40"),  # 11 digits: milliseconds
        ("auto", "2026-01-01T01:00:00+01:00", "2026-01-01 00:00:00"),
    ],
)
def test_timestamp_formats(tmp_path: Path, fmt: str, value: str, expected: str) -> None:
    (tmp_path / "m.csv").write_text(f"from,to,ts\na,b,{value}\n")
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    src += f'[sources.timestamps]\nsent_at = "{fmt}"\n'
    con, _ = _ingest(tmp_path, src)
    assert con.execute("SELECT sent_at::VARCHAR FROM messages").fetchone()[0] == expected


def test_unparseable_timestamp_is_quarantined_with_field(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("from,to,ts\na,b,yesterday\na,b,1767225600\n")
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    con, counts = _ingest(tmp_path, src + '[sources.timestamps]\nsent_at = "epoch_s"\n')
    assert _quarantine(con) == [(1, "sent_at", "unparseable timestamp in field sent_at: yesterday")]
    assert counts[0].rows_stored == 1


@pytest.mark.parametrize("fmt", ["auto", "iso8601"])
def test_infinite_timestamps_are_quarantined(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "m.csv").write_text("from,to,ts\na,b,infinity\na,b,-infinity\na,b,2026-01-01T00:00:00\n")
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    con, counts = _ingest(tmp_path, src + f'[sources.timestamps]\nsent_at = "{fmt}"\n')
    assert [(r, f) for r, f, _ in _quarantine(con)] == [(1, "sent_at"), (2, "sent_at")]
    # as text, an infinite time is out of range; "auto" reads it as the number inf, no epoch time
    assert all("outside 1970..2100" in reason or "unparseable timestamp" in reason
               for _, _, reason in _quarantine(con))
    assert counts[0].rows_stored == 1


def test_a_timestamp_from_the_future_is_quarantined(tmp_path: Path) -> None:
    # one message from 2099 would make the run's as-of time 2099 and expire every flag
    (tmp_path / "m.csv").write_text("from,to,ts\na,b,2099-01-01T00:00:00Z\na,b,2026-01-01T00:00:00Z\n"
                                    "a,b,2026-12-02T12:00:00Z\n")
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    cfg = _config(tmp_path, src)
    con = duckdb.connect()
    counts = ingest_sources(con, cfg, "r1", KEY, started=datetime(2026, 12, 1, 18, 0))  # a day of slack
    (row, field, reason), = _quarantine(con)
    assert (row, field) == (1, "sent_at") and "in the future" in reason
    assert counts[0].rows_stored == 2


def test_empty_sender_nul_bytes_and_long_text(tmp_path: Path) -> None:
    long_text = "x" * 2_000_000
    (tmp_path / "m.csv").write_bytes(
        b"from,to,ts,body,id\n"
        b" ,b,1767225600,empty sender,1\n"
        b"a,b,1767225600,nul\x00byte,2\n"
        + f"a,b,1767225600,{long_text},3\n".encode()
        + b"a,b,1767225600,fine,4\n"
    )
    con, counts = _ingest(tmp_path, _messages_source("m", "m.csv", "csv"))
    q = _quarantine(con)
    assert [(r, f) for r, f, _ in q] == [(1, "sender"), (2, "text"), (3, "text")]
    assert q[0][2] == "missing required field sender"
    assert q[1][2] == "NUL byte in field text"
    assert "2000000 characters long" in q[2][2]
    assert con.execute("SELECT max(length(raw)) FROM quarantine").fetchone()[0] < 5_000
    assert (counts[0].rows_stored, counts[0].rows_quarantined) == (1, 3)


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_a_line_over_the_size_limit_is_quarantined_with_its_reason(tmp_path: Path, fmt: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "MAX_LINE_BYTES", 4096)  # 64 MiB in production
    big = "x" * 10_000
    if fmt == "csv":
        body = f"from,to,ts,body,id\na,b,1767225600,ok,1\na,b,1767225600,{big},2\na,b,1767225600,ok,3\n"
    else:
        body = "".join(json.dumps({"from": "a", "to": "b", "ts": 1767225600, "body": t, "id": str(i)}) + "\n"
                       for i, t in enumerate(["ok", big, "ok"], 1))
    (tmp_path / f"m.{fmt}").write_text(body)
    con, counts = _ingest(tmp_path, _messages_source("m", f"m.{fmt}", fmt))
    (row, _field, reason), = _quarantine(con)
    assert row == 2 and reason == "line longer than 4096 bytes"
    assert (counts[0].rows_stored, counts[0].rows_quarantined) == (2, 1)
    assert con.execute("SELECT source_row FROM messages ORDER BY 1").fetchall() == [(1,), (3,)]


def test_non_utf8_and_ragged_csv_lines_keep_their_row_numbers(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_bytes(
        b"from,to,ts\n"
        b"a,b,1767225600\n"
        b"a,\xff\xfe,1767225600\n"
        b"a,b\n"
        b"c,d,1767225600\n"
        b"e,f,bad-time\n"
    )
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    con, counts = _ingest(tmp_path, src)
    q = _quarantine(con)
    assert [r for r, _, _ in q] == [2, 3, 5]
    assert "UTF-8" in q[0][2]
    assert "missing columns" in q[1][2]
    assert q[2][1] == "sent_at"
    assert con.execute("SELECT source_row, sender FROM messages ORDER BY 1").fetchall() == [(1, "a"), (4, "c")]
    assert (counts[0].rows_read, counts[0].rows_stored, counts[0].rows_quarantined) == (5, 2, 3)


def test_duplicate_message_ids_keep_the_first(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "from,to,ts,body,id\na,b,1767225600,one,7\nb,a,1767225601,two,7\nb,a,1767225602,x,8\n")
    con, counts = _ingest(tmp_path, _messages_source("m", "m.csv", "csv"))
    assert con.execute("SELECT text FROM messages ORDER BY source_row").fetchall() == [("one",), ("x",)]
    (row, field, reason), = _quarantine(con)
    assert (row, field) == (2, "message_id") and reason.startswith("duplicate message_id 7") and "row 1" in reason
    assert (counts[0].rows_read, counts[0].rows_stored, counts[0].rows_quarantined) == (3, 2, 1)


@pytest.mark.parametrize("order", [("daily", "backfill"), ("backfill", "daily")])
def test_two_sources_reading_one_file_keep_one_copy_of_each_message(tmp_path: Path, order: tuple[str, str]) -> None:
    (tmp_path / "m.csv").write_text("from,to,ts,body,id\n" + "".join(
        f"a,b,{1767225600 + i},m{i},{i}\n" for i in range(50)))
    src = "".join(_messages_source(name, "m.csv", "csv") for name in order)
    con, counts = _ingest(tmp_path, src)
    assert con.execute("SELECT count(*), count(DISTINCT message_id) FROM messages").fetchall() == [(50, 50)]
    # the first source in config order keeps the messages, and each source's counts say so
    assert con.execute("SELECT DISTINCT source FROM messages").fetchall() == [(order[0],)]
    assert [(c.source, c.rows_stored, c.rows_quarantined) for c in counts] == [(order[0], 50, 0), (order[1], 0, 50)]
    assert con.execute("SELECT count(*) FROM quarantine WHERE source = ? AND reason LIKE ?",
                       [order[1], f"%source {order[0]})"]).fetchall() == [(50,)]


FLAGS = """
[[sources]]
name = "flags"
table = "flags"
path = "flags.csv"
format = "csv"
platform = "p1"
[sources.columns]
account = "who"
label = "label"
confidence = "conf"
"""


def test_flags_unknown_label_and_confidence_range(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("from,to,ts\na,b,1767225600\n")
    (tmp_path / "flags.csv").write_text("who,label,conf\na,SPAM,0.9\nb,ham,0.5\nc,spam,1.5\nd,clean,\ne,spam,abc\n")
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"') + FLAGS
    con, _ = _ingest(tmp_path, src)
    assert con.execute("SELECT account, label, confidence FROM flags ORDER BY account").fetchall() == [
        ("a", "spam", 0.9), ("d", "clean", None)]
    q = _quarantine(con)
    assert [(r, f) for r, f, _ in q] == [(2, "label"), (3, "confidence"), (5, "confidence")]
    assert q[0][2] == "unknown label ham (expected one of spam, clean)"
    assert q[1][2] == "confidence 1.5 is outside 0..1"


def test_ndjson_malformed_lines_and_missing_keys(tmp_path: Path) -> None:
    lines = [
        {"user": "a", "to": "b", "time": 1767225600.5, "message": "hi"},
        "this is not json",
        {"user": "b", "thread": "t1", "time": 1767225601, "message": "post"},
        "",
        {"user": "", "to": "b", "time": 1767225602},
    ]
    text = "\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n"
    (tmp_path / "m.ndjson").write_text(text)
    src = _messages_source("m", "m.ndjson", "ndjson",
                           columns='sender = "user"\nrecipient = "to"\nchannel = "thread"\nsent_at = "time"\n'
                                   'text = "message"')
    con, counts = _ingest(tmp_path, src)
    stored = con.execute("SELECT sender, recipient, channel, source_row FROM messages ORDER BY source_row").fetchall()
    assert stored == [("a", "b", None, 1), ("b", None, "t1", 3)]
    assert [(r, f, reason) for r, f, reason in _quarantine(con)] == [
        (2, None, "line is not a JSON object"), (5, "sender", "missing required field sender")]
    assert (counts[0].rows_read, counts[0].rows_stored, counts[0].rows_quarantined) == (4, 2, 2)


def test_parquet_rows_and_identifier_hashing(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT * FROM (VALUES ('a', 'b', TIMESTAMP '2026-01-01 10:00:00', ' 10.0.0.1 ', 'DEV-1'),
                                                ('b', 'a', TIMESTAMP '2026-01-01 11:00:00', '::ffff:10.0.0.1', NULL))
                       t(s, r, ts, ip, dev)) TO '{tmp_path / "m.parquet"}' (FORMAT parquet)""")
    src = _messages_source("m", "m.parquet", "parquet",
                           columns='sender = "s"\nrecipient = "r"\nsent_at = "ts"\nip = "ip"\ndevice = "dev"')
    con, _ = _ingest(tmp_path, src)
    rows = con.execute("SELECT ip_hash, device_hash, source_row FROM messages ORDER BY source_row").fetchall()
    expected_ip = hmac_hex(KEY, "ip", "10.0.0.1")
    assert rows == [(expected_ip, hmac_hex(KEY, "device", "dev-1"), 1), (expected_ip, None, 2)]
    build_accounts(con, "r1")
    build_identifiers(con, "r1")
    assert con.execute("SELECT account, uses, accounts_sharing FROM identifiers WHERE kind = 'ip' ORDER BY 1"
                       ).fetchall() == [("a", 1, 2), ("b", 1, 2)]
    stored = " ".join(str(v) for row in con.execute("SELECT * FROM messages").fetchall() for v in row)
    assert "10.0.0.1" not in stored and "DEV-1" not in stored


@pytest.mark.parametrize("name", ["file_row_number", "File_Row_Number"])
def test_parquet_file_with_a_column_named_like_duckdbs_row_number(tmp_path: Path, name: str) -> None:
    # DuckDB's row-number column has that fixed name; such a file's rows are numbered in scan order, and the
    # file's own column may even be one of the mapped ones
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'a' || range AS s, 'b' AS r, 'm' || (range * 7) AS {name},
                              CASE WHEN range = 2 THEN 'not a time' ELSE '2026-01-01 10:00:00' END AS ts
                          FROM range(5)) TO '{tmp_path / "m.parquet"}' (FORMAT parquet)""")
    src = _messages_source("m", "m.parquet", "parquet",
                           columns=f'sender = "s"\nrecipient = "r"\nsent_at = "ts"\nmessage_id = "{name}"')
    con, counts = _ingest(tmp_path, src)
    assert con.execute("SELECT source_row, sender, message_id FROM messages ORDER BY source_row").fetchall() == [
        (1, "a0", "m0"), (2, "a1", "m7"), (4, "a3", "m21"), (5, "a4", "m28")]
    [(row, field, reason)] = _quarantine(con)
    assert (row, field) == (3, "sent_at") and "unparseable timestamp" in reason
    assert (counts[0].rows_read, counts[0].rows_stored, counts[0].rows_quarantined) == (5, 4, 1)


@pytest.mark.parametrize("value", ["{'n': range}", "[range]"])
def test_parquet_file_with_a_nested_column_named_like_duckdbs_row_number(tmp_path: Path, value: str) -> None:
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'a' || range AS s, 'b' AS r, '2026-01-01 10:00:00' AS ts, {value} AS file_row_number
                          FROM range(3)) TO '{tmp_path / "m.parquet"}' (FORMAT parquet)""")
    src = _messages_source("m", "m.parquet", "parquet", columns='sender = "s"\nrecipient = "r"\nsent_at = "ts"')
    con, counts = _ingest(tmp_path, src)
    assert con.execute("SELECT source_row, sender FROM messages ORDER BY 1").fetchall() == [
        (1, "a0"), (2, "a1"), (3, "a2")]


def test_parquet_columns_are_the_files_own_names(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder = tmp_path / "date=2026-01-01"  # a hive-style folder name adds no column
    folder.mkdir()
    pq.write_table(pa.table({"s": ["a"], "r": ["b"], "ts": ["2026-01-01 10:00:00"], "body": ["x"], "Body": ["y"]}),
                   folder / "m.parquet")
    cols = 'sender = "s"\nrecipient = "r"\nsent_at = "ts"\n'
    with pytest.raises(InputError, match=r"columns \['body', 'Body'\], which differ only in case"):
        _ingest(tmp_path, _messages_source("m", "date=2026-01-01/m.parquet", "parquet", columns=cols + 'text = "Body"'))
    with pytest.raises(InputError, match="has no column 'date'"):
        _ingest(tmp_path, _messages_source("m", "date=2026-01-01/m.parquet", "parquet",
                                           columns=cols + 'message_id = "date"'))
    con, counts = _ingest(tmp_path, _messages_source("m", "date=2026-01-01/m.parquet", "parquet", columns=cols))
    assert con.execute("SELECT sender FROM messages").fetchall() == [("a",)] and counts[0].rows_stored == 1


def test_files_stored_together_hash_every_files_identifiers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # one INSERT for both files: one hash lookup over the values of both, each row keeps its own file
    monkeypatch.setattr(ingest, "ThreadPoolExecutor", _ReadAtOnce)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "1.csv").write_text("s,r,ip\na,b,10.0.0.1\nb,a,10.0.0.2\n")
    (tmp_path / "m" / "2.csv").write_text("s,r,ip\nc,a,10.0.0.2\nd,a,\nd,a,10.0.0.3\n")
    con, counts = _ingest(tmp_path, _messages_source("m", "m/*.csv", "csv", columns='sender = "s"\nrecipient = "r"\n'
                                                                              'ip = "ip"'))
    rows = con.execute("SELECT source_file[-5:], source_row, sender, ip_hash FROM messages ORDER BY 1, 2").fetchall()
    ip = {v: hmac_hex(KEY, "ip", v) for v in ("10.0.0.1", "10.0.0.2", "10.0.0.3")}
    assert rows == [("1.csv", 1, "a", ip["10.0.0.1"]), ("1.csv", 2, "b", ip["10.0.0.2"]),
                    ("2.csv", 1, "c", ip["10.0.0.2"]), ("2.csv", 2, "d", None), ("2.csv", 3, "d", ip["10.0.0.3"])]
    assert [(c.files, c.rows_read, c.rows_stored) for c in counts] == [(2, 5, 5)]


def test_raw_identifiers_never_reach_quarantine(tmp_path: Path) -> None:
    (tmp_path / "acc.csv").write_text(
        "id,mail,created\n,john@example.com,2026-01-01\nx,jane@example.com,not-a-date\ny,\"bad,row@example.com\n")
    (tmp_path / "m.csv").write_text("from,to,ts\na,b,1767225600\n")
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    src += _csv_source("acc", "accounts", "acc.csv", {"account": "id", "email": "mail", "created_at": "created"},
                       platform="p1")
    con, counts = _ingest(tmp_path, src)
    raw = " ".join(r[0] for r in con.execute("SELECT raw FROM quarantine").fetchall())
    assert counts[1].rows_quarantined == 3
    assert "@example.com" not in raw and hmac_hex(KEY, "email", "john@example.com") in raw


def test_unparseable_lines_mask_identifier_fields_of_any_shape(tmp_path: Path) -> None:
    cols = 'sender = "from"\nrecipient = "to"\nsent_at = "ts"\nip = "ip"\ndevice = "dev"'
    # CSV: a ragged line (its fields still line up with the header) and a line that does not split
    (tmp_path / "m.csv").write_text("from,to,ts,ip,dev\n"
                                    "a,b,1767225600,2001:db8:85a3::8a2e:370:7334,d-8bae9c026850f833\n"
                                    "a,b,1767225600,2001:db8::1,d-aaaa1111,extra\n"
                                    "a,b,1767225600,\"fe80::1,d-bbbb2222\n")
    # NDJSON: a line cut off inside the device value, and one with a quote missing
    (tmp_path / "m.ndjson").write_text('{"from": "a", "to": "b", "ts": 1767225600, "ip": "fe80::2", "dev": "d-ok"}\n'
                                       '{"from": "a", "ip": "2001:db8::2", "dev": "d-cccc3333\n'
                                       '{"from": "a", "dev": d-dddd4444, "ip": "10.1.2.3"}\n'
                                       "{'from': 'a', 'dev': 'd-eeee5555'}\n"  # single quotes: not JSON
                                       '["a", "d-ffff6666"]\n')  # valid JSON, but no object and no key
    src = _messages_source("c", "m.csv", "csv", columns=cols) + _messages_source("n", "m.ndjson", "ndjson",
                                                                               columns=cols)
    con, counts = _ingest(tmp_path, src)
    raw = con.execute("SELECT source, row_number, raw FROM quarantine ORDER BY ALL").fetchall()
    assert [(r[0], r[1]) for r in raw] == [("c", 2), ("c", 3), ("n", 2), ("n", 3), ("n", 4), ("n", 5)]
    text = " ".join(r[2] for r in raw)
    for secret in ("2001:db8", "fe80", "d-aaaa", "d-bbbb", "d-cccc", "d-dddd", "10.1.2.3", "d-eeee", "d-ffff"):
        assert secret not in text, secret
    assert "a,b,1767225600,[identifier],[identifier],extra" not in text  # 6 fields: withheld, not guessed
    assert "withheld" in raw[0][2] or "withheld" in raw[1][2]
    assert '"from": "a"' in raw[2][2]  # what is not an identifier stays readable
    assert [(c.rows_read, c.rows_stored, c.rows_quarantined) for c in counts] == [(3, 1, 2), (5, 1, 4)]


def test_a_rejected_line_with_quotes_or_escaped_keys_keeps_its_identifiers_hidden(tmp_path: Path) -> None:
    # a quoted delimiter shifts a naive split by one field: the line is withheld, not masked in the wrong place
    (tmp_path / "m.csv").write_text('sender;recipient;device;text\nu1;"x;y";d-secret-device-777\n')
    cols = 'sender = "sender"\nrecipient = "recipient"\ndevice = "device"\ntext = "text"'
    src = _messages_source("c", "m.csv", "csv", extra='[sources.csv]\ndelimiter = ";"', columns=cols)
    # an NDJSON key that JSON must escape (a quote, a backslash)
    key = 'de"v\\ #1'
    (tmp_path / "m.ndjson").write_text('{"from": "a", ' + json.dumps(key) + ': "d-sekrit-778", "ts": 1767225600\n')
    src += _messages_source("n", "m.ndjson", "ndjson", columns=f'sender = "from"\nsent_at = "ts"\n'
                                                             f"device = {json.dumps(key)}")
    con, _ = _ingest(tmp_path, src)
    raw = dict(con.execute("SELECT source, raw FROM quarantine").fetchall())
    assert "withheld" in raw["c"] and "secret" not in raw["c"]
    assert "sekrit" not in raw["n"] and '"from": "a"' in raw["n"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_stray_quote_quarantines_every_line_it_swallowed(tmp_path: Path, newline: str) -> None:
    lines = ["from,to,ts,ip"] + [f"a{i},b,1767225600,10.0.0.{i}" for i in range(1, 13)]
    lines[5] = 'a5,"b,1767225600,10.0.0.5'  # data row 5 opens a quote that never closes
    (tmp_path / "m.csv").write_bytes((newline.join(lines) + newline).encode())
    cols = 'sender = "from"\nrecipient = "to"\nsent_at = "ts"\nip = "ip"'
    con, counts = _ingest(tmp_path, _messages_source("m", "m.csv", "csv", columns=cols))
    assert counts[0].rows_read == 12 and counts[0].rows_stored == 4 and counts[0].rows_quarantined == 8
    q = con.execute("SELECT row_number, reason, raw FROM quarantine ORDER BY row_number").fetchall()
    assert [r[0] for r in q] == list(range(5, 13))
    assert "unterminated quote" in q[0][1]
    assert all("unterminated quote in row 5" in r[1] for r in q[1:])
    assert q[1][2].startswith("a6,b,") and q[1][2].endswith(",[identifier]")  # a line each, identifiers masked
    assert not any("10.0.0" in r[2] for r in q)


def test_header_errors_never_quote_identifiers(tmp_path: Path) -> None:
    # the header row is missing: the first data row is read as the header, and must not be echoed raw
    (tmp_path / "m.csv").write_text("a,b,1767225600,ann@example.com,10.0.0.1\n")
    with pytest.raises(InputError) as info:
        _ingest(tmp_path, _messages_source("m", "m.csv", "csv"))
    assert "has none of the mapped columns" in str(info.value) and "is its header missing" in str(info.value)
    assert "ann@example.com" not in str(info.value) and "10.0.0.1" not in str(info.value)
    # a device id has no shape to mask by: a first line with none of the mapped columns is not quoted at all
    (tmp_path / "m.csv").write_text("u100165;u100166;d-eec4ed137e6fa0df\n")
    src = _messages_source("m", "m.csv", "csv", extra='[sources.csv]\ndelimiter = ";"',
                           columns='sender = "from"\nrecipient = "to"\ndevice = "device"')
    with pytest.raises(InputError, match="splits into 3 field") as info:
        _ingest(tmp_path, src)
    assert "d-eec4ed137e6fa0df" not in str(info.value) and "u100165" not in str(info.value)


def test_file_and_folder_names_are_taken_literally_not_as_patterns(tmp_path: Path) -> None:
    folder = tmp_path / "logs [2]"  # the config's own folder, with brackets
    (folder / "in").mkdir(parents=True)
    for name, sender in (("xa.csv", "a"), ("x?.csv", "q"), ("[b].csv", "br"), ("b.csv", "b")):
        (folder / "in" / name).write_text(f"from,to,ts\n{sender},z,1767225600\n")
    src = _messages_source("m", "in/*.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    cfg = parse_config(f"[output]\ndatabase = 'out/r.duckdb'\n{src}", folder / "pipeline.toml")
    con = duckdb.connect()
    counts = ingest_sources(con, cfg, "r1", KEY)
    rows = sorted(con.execute("SELECT sender, source_file FROM messages").fetchall())
    assert [(s, Path(f).name) for s, f in rows] == [("a", "xa.csv"), ("b", "b.csv"), ("br", "[b].csv"),
                                                    ("q", "x?.csv")]
    assert (counts[0].files, counts[0].rows_read, counts[0].rows_quarantined) == (4, 4, 0)
    missing = _messages_source("m", "in/none.csv", "csv", columns='sender = "from"\nrecipient = "to"')
    with pytest.raises(InputError, match=r"input .*/logs \[2\]/in/none\.csv does not exist"):
        ingest_sources(duckdb.connect(), parse_config(f"{missing}", folder / "pipeline.toml"), "r1", KEY)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_file_columns_named_like_internal_ones_change_nothing(tmp_path: Path, fmt: str) -> None:
    rows = {"__row": ["1", "1", "1"], "s_text": ["x", "y", "z"], "from": ["a", "b", "c"], "to": ["b", "c", "a"],
            "ts": ["1767225600"] * 3}
    if fmt == "csv":
        (tmp_path / "m.csv").write_text(",".join(rows) + "\n" + "".join(
            ",".join(v[i] for v in rows.values()) + "\n" for i in range(3)))
    else:
        duckdb.sql("SELECT * FROM (VALUES ('1','x','a','b','1767225600'), ('1','y','b','c','1767225600'), "
                   "('1','z','c','a','1767225600')) t(__row, s_text, \"from\", \"to\", ts)"
                   ).write_parquet(str(tmp_path / "m.parquet"))
    src = _messages_source("m", f"m.{fmt}", fmt, columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    con, counts = _ingest(tmp_path, src)
    assert con.execute("SELECT sender, source_row, text FROM messages ORDER BY 2").fetchall() == [
        ("a", 1, None), ("b", 2, None), ("c", 3, None)]


def test_missing_file_and_missing_column_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"source 'm': input .*nope\.csv does not exist"):
        _ingest(tmp_path, _messages_source("m", "nope.csv", "csv"))
    (tmp_path / "m.csv").write_text("sender,recipient,ts\na,b,1\n")
    with pytest.raises(InputError, match=r"m\.csv has no column 'from' \(mapped to sender\); its columns are"):
        _ingest(tmp_path, _messages_source("m", "m.csv", "csv"))


def test_corrupt_parquet_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "m.parquet").write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(InputError, match=r"cannot read Parquet file .*m\.parquet"):
        _ingest(tmp_path, _messages_source("m", "m.parquet", "parquet"))


def test_empty_file_reads_no_rows(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("")
    con, counts = _ingest(tmp_path, _messages_source("m", "m.csv", "csv"))
    assert counts[0].rows_read == 0 and con.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_an_empty_parquet_file_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "m.parquet").write_bytes(b"")  # an empty CSV has no rows; an empty Parquet file is broken
    with pytest.raises(InputError, match=r"cannot read Parquet file .*m\.parquet: the file is empty"):
        _ingest(tmp_path, _messages_source("m", "m.parquet", "parquet"))


def test_a_csv_header_after_a_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_bytes("\ufefffrom,to,ts\na,b,1767225600\n".encode())
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    con, counts = _ingest(tmp_path, src)
    assert con.execute("SELECT sender, recipient FROM messages").fetchall() == [("a", "b")]


def test_an_ndjson_key_no_line_has_is_named_in_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a.ndjson").write_text('{"from": "a", "to": "b", "ts": 1767225600, "msg": "hi"}\n')
    (tmp_path / "b.ndjson").write_text('{"from": "a", "in": "t1", "ts": 1767225600, "msg": "a post"}\n')  # no "to"
    src = _messages_source("m", "*.ndjson", "ndjson", columns='sender = "from"\nrecipient = "to"\nchannel = "in"\n'
                                                              'sent_at = "ts"\ntext = "message"')
    with caplog.at_level("WARNING", logger="reputation"):
        con, counts = _ingest(tmp_path, src)
    assert counts[0].rows_stored == 2
    assert "no line of its files has a value for key 'message' (mapped to text)" in caplog.text
    assert "'to'" not in caplog.text and "'in'" not in caplog.text  # one file without it is normal


def test_accounts_table_covers_every_account_seen(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("from,to,ts\na,b,1767225600\n")
    (tmp_path / "flags.csv").write_text("who,label,conf\nz,spam,1\n")
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"') + FLAGS
    con, _ = _ingest(tmp_path, src)
    build_accounts(con, "r1")
    assert con.execute("SELECT account, in_directory FROM accounts ORDER BY 1").fetchall() == [
        ("a", False), ("b", False), ("z", False)]


def test_overrides_of_accounts_no_message_names_are_warned_about(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "m.csv").write_text("from,to,ts\na,b,1767225600\n")
    (tmp_path / "ov.csv").write_text("platform,account,decision\np1,b,clean\np1,typo,spam\np2,a,clean\n")
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    src += _csv_source("ov", "overrides", "ov.csv", {c: c for c in ("platform", "account", "decision")})
    con, _ = _ingest(tmp_path, src)
    with caplog.at_level("WARNING", logger="reputation"):
        build_accounts(con, "r1")
    assert "overrides name 2 account(s) that no message of this run was sent by or to (p1:typo, p2:a)" in caplog.text
    assert ("p1", "typo") in con.execute("SELECT platform, account FROM accounts").fetchall()  # still scored


@pytest.mark.parametrize(
    ("url", "text", "expected"),
    [
        ("", "see https://Example.COM/path", "example.com"),
        ("", "login at https://user:pw@evil.example.net:8080/x now", "evil.example.net"),
        ("", "mail a@b.org then https://site.example/x", "site.example"),
        ("", "https://a.example/x@y and more", "a.example"),
        ("", "http://_bad first, then http://good.example", "good.example"),
        ("", "http://@ https://x@ https://ok.example", "x"),
        ("", "no link here, just a@b.c", None),
        ("http://USER@Host.Example:80/p", "text https://other.example", "host.example"),
        ("ftp://files.example", "but https://web.example", "web.example"),
    ],
)
def test_url_domain_from_url_then_text(tmp_path: Path, url: str, text: str, expected: str | None) -> None:
    # The domain expression takes a faster regex when the value has no '@'; both paths must agree
    # with the documented pattern https?://(user@)?host.
    (tmp_path / "m.csv").write_text(f"from,to,body,link\na,b,{json.dumps(text)},{url}\n")
    src = _messages_source("m", "m.csv", "csv",
                           columns='sender = "from"\nrecipient = "to"\ntext = "body"\nurl = "link"')
    con, _ = _ingest(tmp_path, src)
    assert con.execute("SELECT url_domain FROM messages").fetchone()[0] == expected


class _ReadAtOnce(ThreadPoolExecutor):
    """An executor that runs each job when it is submitted: every file read ahead is ready at once."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


@pytest.mark.parametrize("reader, limit", [("thread", None), ("ready", None), ("ready", "STORE_BATCH_ROWS"),
                                           ("ready", "READ_AHEAD_BYTES")],
                         ids=["read-ahead-thread", "files-stored-together", "row-budget", "big-files-one-ahead"])
def test_many_files_are_stored_in_file_and_row_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     reader: str, limit: str | None) -> None:
    # Files are read ahead on a second connection while earlier ones are stored, several files of a
    # source in one INSERT when they are ready: rows, row numbers, quarantine and per-source counts must
    # be as if the files were ingested one after another.
    if reader == "ready":
        monkeypatch.setattr(ingest, "ThreadPoolExecutor", _ReadAtOnce)
    if limit is not None:  # one row per INSERT at most, or one byte read ahead: every file alone
        monkeypatch.setattr(ingest, limit, 1)
    inserts: list[int] = []
    store = ingest._FileIngest._store
    monkeypatch.setattr(ingest._FileIngest, "_store", lambda self, preps: (inserts.append(len(preps)),
                                                                          store(self, preps))[1])
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.csv").write_bytes(b"from,to,ts\n" + b"".join(b"s%d,r,1767225600\n" % i for i in range(300))
                                           + b"x,\xff,1767225600\n" + b"y,r\n" + b"z,r,1767225601\n")
    (tmp_path / "a" / "2.csv").write_text("from,to,ts\nq,r,1767225600\nq,r,never\n")
    (tmp_path / "a" / "3.csv").write_text("")
    (tmp_path / "b.ndjson").write_text('{"from": "n", "to": "m", "ts": 1767225600}\n{oops\n'
                                       '{"from": "o", "to": "m", "ts": 1767225600}\n')
    cols = 'sender = "from"\nrecipient = "to"\nsent_at = "ts"'
    con, counts = _ingest(tmp_path, _messages_source("a", "a/*.csv", "csv", columns=cols)
                          + _messages_source("b", "b.ndjson", "ndjson", columns=cols))
    rows = con.execute("SELECT source, source_file, source_row, sender FROM messages").fetchall()
    expected = ([("a", str(tmp_path / "a" / "1.csv"), i + 1, f"s{i}") for i in range(300)]
                + [("a", str(tmp_path / "a" / "1.csv"), 303, "z"), ("a", str(tmp_path / "a" / "2.csv"), 1, "q"),
                   ("b", str(tmp_path / "b.ndjson"), 1, "n"), ("b", str(tmp_path / "b.ndjson"), 3, "o")])
    assert rows == expected
    assert [r for r, _, _ in _quarantine(con)] == [301, 302, 2, 2]
    assert [(c.files, c.rows_read, c.rows_stored, c.rows_quarantined) for c in counts] == [(3, 305, 302, 3),
                                                                                          (1, 3, 2, 1)]
    assert not con.execute("SELECT * FROM duckdb_databases() WHERE database_name = '_ingest_stage'").fetchall()
    # the two non-empty files of source a share an INSERT when both are ready; never across sources
    if reader == "ready":
        assert inserts == ([2, 1] if limit is None else [1, 1, 1])


def test_read_ahead_connection_uses_the_session_time_zone(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("from,to,ts\na,b,2026-01-01T12:00:00Z\n")
    src = _messages_source("m", "m.csv", "csv", columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"')
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    ingest_sources(con, _config(tmp_path, src), "r1", KEY)
    assert con.execute("SELECT sent_at::VARCHAR FROM messages").fetchone()[0] == "2026-01-01 07:00:00"


def test_input_error_midway_leaves_no_stage_catalog(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("from,to\na,b\n")
    (tmp_path / "n.csv").write_text("sender,to\na,b\n")
    cols = 'sender = "from"\nrecipient = "to"'
    cfg = _config(tmp_path, _messages_source("m", "m.csv", "csv", columns=cols)
                  + _messages_source("n", "n.csv", "csv", columns=cols))
    con = duckdb.connect()
    with pytest.raises(InputError, match="has no column 'from'"):
        ingest_sources(con, cfg, "r1", KEY)
    assert not con.execute("SELECT * FROM duckdb_databases() WHERE database_name = '_ingest_stage'").fetchall()


def test_a_platform_name_too_long_for_the_export_file_names_is_quarantined(tmp_path: Path) -> None:
    from reputation.config import MAX_PLATFORM_BYTES, ConfigError

    long_name = "平" * (MAX_PLATFORM_BYTES // 3 + 1)  # 3 bytes each in UTF-8: over the limit in few characters
    (tmp_path / "m.csv").write_text(f"net,from,to\nchirp,a,b\n{long_name},a,b\n{'p' * MAX_PLATFORM_BYTES},a,c\n")
    src = _messages_source("m", "m.csv", "csv", columns='platform = "net"\nsender = "from"\nrecipient = "to"')
    con, counts = _ingest(tmp_path, src.replace('platform = "p1"\n', ""))
    assert (counts[0].rows_stored, counts[0].rows_quarantined) == (2, 1)
    assert _quarantine(con) == [(2, "platform", f"field platform is longer than {MAX_PLATFORM_BYTES} bytes (UTF-8), "
                                                "too long to name its export files")]
    (tmp_path / "k.csv").write_text(f"pa,a,pb,b\nchirp,a,{long_name},b\n")  # known links name platforms too
    src += _csv_source("k", "links", "k.csv", {"platform_a": "pa", "account_a": "a", "platform_b": "pb",
                                                "account_b": "b"})
    con, counts = _ingest(tmp_path, src.replace('platform = "p1"\n', ""))
    assert counts[1].rows_quarantined == 1
    assert con.execute("SELECT field FROM quarantine WHERE source = 'k'").fetchall() == [("platform_b",)]
    with pytest.raises(ConfigError, match=r"sources\[0\] \(m\)\.platform.: is longer than"):
        _config(tmp_path, _messages_source("m", "m.csv", "csv").replace('"p1"', f'"{long_name}"'))


def test_gzip_compressed_csv_is_read_and_a_misnamed_one_is_refused(tmp_path: Path) -> None:
    import gzip

    body = b"from,to,ts\na,b,1767225600\nc,d,1767225601\n"
    (tmp_path / "m.csv.gz").write_bytes(gzip.compress(body))
    cols = 'sender = "from"\nrecipient = "to"\nsent_at = "ts"'
    con, counts = _ingest(tmp_path, _messages_source("m", "m.csv.gz", "csv", columns=cols))
    assert (counts[0].rows_read, counts[0].rows_stored) == (2, 2)
    (tmp_path / "n.csv").write_bytes(gzip.compress(body))
    with pytest.raises(InputError, match=r"n\.csv is gzip-compressed but not named \*\.gz"):
        _ingest(tmp_path, _messages_source("m", "n.csv", "csv", columns=cols))
    for name, data in (("plain.csv.gz", body), ("cut.csv.gz", gzip.compress(body)[:20])):  # named .gz, but not
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=rf"cannot read the header of .*{name}"):
            _ingest(tmp_path, _messages_source("m", name, "csv", columns=cols))


def test_a_folder_path_and_a_broken_link_are_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.csv").write_text("from,to\na,b\n")
    cols = 'sender = "from"\nrecipient = "to"'
    with pytest.raises(InputError, match=r"logs is a folder; give the files in it with a pattern"):
        _ingest(tmp_path, _messages_source("m", "logs", "csv", columns=cols))
    (tmp_path / "logs" / "b.csv").symlink_to(tmp_path / "gone.csv")  # its rows would be lost without a word
    with pytest.raises(InputError, match=r"b\.csv is a broken symbolic link"):
        _ingest(tmp_path, _messages_source("m", "logs/*.csv", "csv", columns=cols))


def test_unit_separator_and_unmapped_identifier_keys_in_a_malformed_line(tmp_path: Path) -> None:
    (tmp_path / "m.ndjson").write_text('{"from": "a", "to": "b", "t": "x\x1fy"}\n'
                                       '{"from": "a", "to": "b", "device_id": "DEVUNMAPPED", "clientIp": "CIP", '
                                       '"text": "my email is", "zip": "12345"\n')
    (tmp_path / "m.csv").write_text("from,to,device_id\na,b,DEVCSV,extra\n")
    cols = 'sender = "from"\nrecipient = "to"'
    con, counts = _ingest(tmp_path, _messages_source("n", "m.ndjson", "ndjson", columns=cols)
                          + _messages_source("c", "m.csv", "csv", columns=cols))
    q = con.execute("SELECT source, reason, raw FROM quarantine ORDER BY source DESC, row_number").fetchall()
    assert [c.rows_quarantined for c in counts] == [2, 1]
    assert "raw control character 0x1F" in q[0][1]
    assert "DEVUNMAPPED" not in q[1][2] and "CIP" not in q[1][2] and '"device_id": "[identifier]"' in q[1][2]
    assert '"text": "my email is"' in q[1][2] and '"zip": "12345"' in q[1][2]  # other values stay readable
    assert "withheld" in q[2][2] and "DEVCSV" not in q[2][2]  # a device_id column, though unmapped


def test_running_out_of_memory_while_reading_is_not_called_bad_input(tmp_path: Path) -> None:
    with open(tmp_path / "m.csv", "w") as fh:
        fh.write("from,to,ts\n" + "".join(f"a{i},b{i},1767225600\n" for i in range(200_000)))
    cfg = _config(tmp_path, _messages_source("m", "m.csv", "csv",
                                             columns='sender = "from"\nrecipient = "to"\nsent_at = "ts"'))
    con = duckdb.connect()
    con.execute("SET memory_limit = '1MB'")
    with pytest.raises(duckdb.OutOfMemoryException):  # a stage failure (exit 1), not an InputError (exit 3)
        ingest_sources(con, cfg, "r1", KEY)
