"""Ingest: read every configured source into the canonical tables, or into quarantine with a reason.

Each file is read by DuckDB (Parquet natively; CSV with every column as text; NDJSON line by line, so
that one malformed line is one quarantined row rather than a failed file), mapped onto canonical
columns, validated and typed in one set-wise SQL pass. A row that fails any check goes to
``quarantine`` with the source, file, row number, field, reason and the raw row (identifier fields as
hashes, text cut to 1,000 characters); every other row is stored. Per source, rows read = rows stored +
rows quarantined, which ``run_sources`` records.

Whole-file problems — a missing file, an unreadable Parquet file, a mapped column the file does not
have — raise :class:`InputError`, which names the file and the column; the run fails and the
previously published results stay as they were.
"""

from __future__ import annotations

import csv
import glob
import gzip
import itertools
import json
import logging
import os
import re
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import duckdb

from .config import MAX_PLATFORM_BYTES, Config, Source
from .hashing import hmac_sql, key_pads, normalise_sql
from .schema import INPUT_TABLES, LABEL_VOCABULARY, STORED_TABLES, InputColumn
from .store import comment_table

log = logging.getLogger("reputation")

MAX_ID_CHARS = 1_000
RAW_TEXT_CHARS = 1_000
MAX_LINE_BYTES = 64 * 1024 * 1024
#: How far past the run's start an input time may lie before it counts as a clock error.
FUTURE_SLACK = timedelta(days=1)
# Canonical input table → stored table name (known same-person links are stored as known_links, since
# `links` is the scored output of linkage).
STORED_NAME = {"messages": "messages", "accounts": "_accounts_directory", "flags": "flags",
               "links": "known_links", "overrides": "overrides"}
_PROVENANCE = ("source", "source_file", "source_row")
_STAGE = "_ingest_stage"  # in-memory catalog holding files read ahead (see ingest_sources)
#: Files read, typed and checked ahead of the one being stored (each waits in memory, in ``_STAGE``), and
#: the input bytes they may add up to (beyond the first): big files are read ahead one at a time.
READ_AHEAD_FILES = 8
READ_AHEAD_BYTES = 256 * 2**20
#: Rows at most that one INSERT stores (several files of a source that are already read ahead). Ingest
#: alone at 10M messages, four runs each, alternating: one file per INSERT 24.8–28.6 s; 4 files ahead and
#: 1M rows 21.5–26.4 s; 8 files and 2M rows 20.4–24.7 s.
STORE_BATCH_ROWS = 2_000_000
_REDACT = (  # best-effort masking of identifiers in raw lines that could not be parsed into fields
    (r"[^\s@,;\"'<>]+@[^\s@,;\"'<>]+", "[email]"),
    (r"\b\d{1,3}(\.\d{1,3}){3}\b", "[ip]"),
    (r"[0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){4,7}", "[ip]"),  # IPv6, full form (a time has 3 groups)
    (r"[0-9A-Fa-f:]*::[0-9A-Fa-f:]*", "[ip]"),  # IPv6 with a :: gap
    (r"\+?\d[\d ().-]{7,}\d", "[number]"),
)
#: What an identifier field's value becomes in the raw line of a row that could not be parsed.
MASKED = "[identifier]"


_REDACT_TEXT = (  # the same shapes for messages, delimited so that paths, dates and times stay as they are
    (re.compile(r"[^\s@,;\"'<>/]+@[^\s@,;\"'<>]+"), "[email]"),
    (re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])"), "[ip]"),
    (re.compile(r"(?<![\w:])[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){4,7}(?![\w:])"), "[ip]"),
    (re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?::"
                r"(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?(?![\w:])"), "[ip]"),
    (re.compile(r"(?<![\w/.:-])\+?\d[\d ().-]{7,}\d(?![\w/.:-])"), "[number]"),
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def redact(text: str) -> str:
    """``text`` with anything that looks like an e-mail address, IP address or phone number masked.

    For messages that quote input values (a header that turns out to be a data row, say) before they
    reach the ``runs`` table or a log; paths, dates and times in the message stay readable.

    >>> redact("columns are ['ann@example.com', '10.0.0.7', '2001:db8::7334', '+1 (555) 010-9999']")
    "columns are ['[email]', '[ip]', '[ip]', '[number]']"
    >>> redact("/data/2026-03-31/x.csv at 2026-03-31 23:59:44 by feed::reader")
    '/data/2026-03-31/x.csv at 2026-03-31 23:59:44 by feed::reader'
    """
    for pattern, token in _REDACT_TEXT:
        text = pattern.sub(lambda m, t=token: m.group(0) if _DATE.match(m.group(0)) else t, text)
    return text


def _not_the_files_fault(exc: duckdb.Error) -> bool:
    """Whether a DuckDB error raised while reading a file is the machine's (memory, disk, an interrupt),
    not the file's: it then fails the stage (exit 1), rather than being reported as bad input (exit 3)."""
    return (isinstance(exc, (duckdb.OutOfMemoryException, duckdb.InterruptException))
            or "No space left on device" in str(exc))


class InputError(RuntimeError):
    """An input file cannot be used at all; the message names the source, file and field."""


@dataclass
class SourceCounts:
    """Row accounting of one source: rows_read = rows_stored + rows_quarantined."""

    source: str
    table: str
    files: int = 0
    rows_read: int = 0
    rows_stored: int = 0
    rows_quarantined: int = 0


def _bind(sql: str, params: dict[str, object]) -> dict[str, object]:
    """The subset of ``params`` that ``sql`` names (DuckDB rejects unused named parameters)."""
    return {k: v for k, v in params.items() if re.search(r"\$" + re.escape(k) + r"\b", sql)}


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_input_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the canonical tables ingest writes into, and ``quarantine``."""
    con.execute(STORED_TABLES["quarantine"].ddl())
    con.execute(STORED_TABLES["messages"].ddl())
    for name in ("flags", "known_links", "overrides"):
        con.execute(STORED_TABLES[name].ddl())
    # Directory rows before merging into `accounts` (one row per account seen anywhere).
    con.execute("""CREATE TABLE _accounts_directory (run_id VARCHAR, platform VARCHAR, account VARCHAR,
        created_at TIMESTAMP, handle VARCHAR, display_name VARCHAR, email_hash VARCHAR, phone_hash VARCHAR,
        source VARCHAR, source_file VARCHAR, source_row BIGINT, source_seq INTEGER)""")


# ---------------------------------------------------------------------------------------------------
# SQL expressions per column kind. `s` is the column as read (VARCHAR).

def _time_sql(s: str, fmt: str) -> str:
    iso = f"TRY_CAST({s} AS TIMESTAMPTZ)::TIMESTAMP"
    num = f"TRY_CAST({s} AS DOUBLE)"
    epoch_s = f"make_timestamp(CAST(round({num} * 1e6) AS BIGINT))"
    epoch_ms = f"make_timestamp(CAST(round({num} * 1e3) AS BIGINT))"
    if fmt == "iso8601":
        return iso
    if fmt == "epoch_s":
        return f"CASE WHEN abs({num}) < 1e13 THEN {epoch_s} END"
    if fmt == "epoch_ms":
        return f"CASE WHEN abs({num}) < 1e16 THEN {epoch_ms} END"
    # auto: numbers of 11+ digits are milliseconds (as seconds they would be past the year 2286), smaller
    # numbers seconds, anything else ISO 8601.
    return (f"CASE WHEN {num} IS NULL THEN {iso} WHEN abs({num}) >= 1e10 AND abs({num}) < 1e16 THEN {epoch_ms} "
            f"WHEN abs({num}) < 1e10 THEN {epoch_s} END")


def _typed_sql(table: str, col: InputColumn, s: str, fmt: str) -> str:
    if col.kind == "id":
        return f"nullif(trim({s}), '')"
    if col.kind == "text":
        return s
    if col.kind == "time":
        return _time_sql(s, fmt)
    if col.kind == "number":
        return f"TRY_CAST({s} AS DOUBLE)"
    if col.kind == "identifier":
        # Normalised only: the keyed hash is computed once per distinct value when rows are stored
        # (see _FileIngest._store), which is far cheaper than hashing every row.
        return normalise_sql(col.name, s)
    if col.kind == "label":
        return f"lower(trim({s}))"
    raise AssertionError(col.kind)


def _checks(table: str, col: InputColumn, s: str, typed: str, max_text: int) -> list[tuple[str, str]]:
    """(condition, reason SQL) pairs for one column, in the order they are tested."""
    name = col.name
    out: list[tuple[str, str]] = []
    if col.required:
        out.append((f"nullif(trim({s}), '') IS NULL", f"'missing required field {name}'"))
    out.append((f"strpos({s}, chr(0)) > 0", f"'NUL byte in field {name}'"))
    if name in ("platform", "platform_a", "platform_b"):  # it names export files: too long for them, the run
        out.append((f"strlen({s}) > {MAX_PLATFORM_BYTES}",  # would fail at its very end
                    f"'field {name} is longer than {MAX_PLATFORM_BYTES} bytes (UTF-8), too long to name its "
                    "export files'"))
    if col.kind == "id":
        out.append((f"strlen({s}) > {MAX_ID_CHARS} AND length({s}) > {MAX_ID_CHARS}",
                    f"'field {name} is longer than {MAX_ID_CHARS} characters'"))
    if col.kind == "text":
        out.append((f"strlen({s}) > {max_text} AND length({s}) > {max_text}",
                    f"'field {name} is ' || length({s}) || ' characters long, over settings.max_text_chars = "
                    f"{max_text}'"))
    if col.kind in ("time", "number"):
        what = "timestamp" if col.kind == "time" else "number"
        out.append((f"nullif(trim({s}), '') IS NOT NULL AND {typed} IS NULL",
                    f"'unparseable {what} in field {name}: ' || left({s}, 60)"))
    if col.kind == "time":
        out.append((f"{typed} IS NOT NULL AND (NOT isfinite({typed}) OR year({typed}) < 1970 OR year({typed}) > 2100)",
                    f"'timestamp in field {name} is outside 1970..2100: ' || left({s}, 60)"))
        # a clock error: one message from 2099 would become the run's as-of time and expire every flag
        out.append((f"{typed} > $not_after",
                    f"'timestamp in field {name} is in the future (more than a day after the run started): ' "
                    f"|| left({s}, 60)"))
    if col.name == "confidence":
        out.append((f"{typed} IS NOT NULL AND ({typed} < 0 OR {typed} > 1 OR isnan({typed}))",
                    f"'confidence ' || {s} || ' is outside 0..1'"))
    vocab = LABEL_VOCABULARY.get((table, name))
    if vocab:
        allowed = ", ".join(vocab)
        listed = ", ".join(f"'{v}'" for v in vocab)
        out.append((f"{typed} IS NOT NULL AND {typed} NOT IN ({listed})",
                    f"'unknown {name} ' || left({s}, 60) || ' (expected one of {allowed})'"))
    return out


def _row_checks(table: str, typed: dict[str, str]) -> list[tuple[str, str, str]]:
    """Whole-row checks: (condition, field, reason SQL)."""
    if table == "messages":
        return [(f"{typed['recipient']} IS NULL AND {typed['channel']} IS NULL", "recipient",
                 "'message has neither recipient nor channel'")]
    if table == "links":
        return [(f"{typed['platform_a']} = {typed['platform_b']} AND {typed['account_a']} = {typed['account_b']}",
                 "account_b", "'link joins an account to itself'")]
    return []


# ---------------------------------------------------------------------------------------------------
# Readers: each returns SQL selecting __row (1-based data row) and one VARCHAR column per mapped field.

def _delimiter(source: Source) -> str:
    """The CSV delimiter of ``source`` as a character (the config spells a tab ``\\t``)."""
    return "\t" if source.csv.delimiter == "\\t" else source.csv.delimiter


def _csv_options(source: Source) -> str:
    """read_csv options; the column names and types come from the $cols parameter (see _csv_header)."""
    delim = _delimiter(source)
    return (f"columns = $cols, auto_detect = false, header = {str(source.csv.header).lower()}, "
            f"delim = {_sql_str(delim)}, quote = {_sql_str(source.csv.quote)}, escape = {_sql_str(source.csv.quote)}, "
            f"max_line_size = {MAX_LINE_BYTES}")


def _csv_header(source: Source, path: str) -> list[str]:
    """Column names of a CSV file from its first record (column0, column1, ... without a header).

    Read with Python's csv module rather than DuckDB's sniffer, so that a bad byte or a ragged line
    further down quarantines that row instead of failing the whole file.
    """
    delim = _delimiter(source)
    opener = gzip.open if path.endswith(".gz") else open  # DuckDB's reader decompresses .gz files by name
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig", errors="replace") as fh:  # -sig: drops a BOM
            first = next(csv.reader(fh, delimiter=delim, quotechar=source.csv.quote), [])
    except (OSError, EOFError, zlib.error) as exc:  # not gzip after all, or cut off
        raise InputError(f"source {source.name!r}: cannot read the header of {path}: {first_line(exc)}") from None
    if not source.csv.header:
        return [f"column{i}" for i in range(len(first))]
    names = [n.strip() or f"column{i}" for i, n in enumerate(first)]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(redact(f"source {source.name!r}: file {path} has the column {dup!r} twice in its header"))
    return names


def _sql_str(text: str) -> str:
    # Reader options are our own config values of one character, quoted as literals (DuckDB table
    # functions take named options as constants).
    return "'" + text.replace("'", "''") + "'"


def _file_columns(con: duckdb.DuckDBPyConnection, source: Source, path: str) -> list[str]:
    if source.format == "parquet":
        q = "SELECT name, num_children FROM parquet_schema($f)"
        try:
            schema = con.execute(q, {"f": glob.escape(path)}).fetchall()
        except duckdb.Error as exc:
            if _not_the_files_fault(exc):
                raise
            raise InputError(f"source {source.name!r}: cannot read Parquet file {path}: {first_line(exc)}") from None
        names = parquet_top_level_columns(schema)
        folded = [n.lower() for n in names]
        for column in source.columns.values():
            same = [n for n, f in zip(names, folded, strict=True) if f == column.lower()]
            if len(same) > 1:  # SQL names are case-insensitive: the file's own names, not DuckDB's renaming
                raise InputError(redact(f"source {source.name!r}: file {path} has the columns {same}, which differ "
                                        "only in case; SQL cannot tell them apart"))
        return names
    return _csv_header(source, path)


def parquet_top_level_columns(schema: list[tuple[str, int | None]]) -> list[str]:
    """The top-level column names of a Parquet file, from its ``parquet_schema`` rows (name, num_children)
    in schema order: the root's children, each with its nested fields skipped. These are the names as the
    file stores them (DuckDB's ``DESCRIBE`` renames duplicates and empty names and adds hive partition
    columns from the folder names).

    >>> parquet_top_level_columns([("schema", 2), ("s", 2), ("a", None), ("b", None), ("t", None)])
    ['s', 't']
    """
    def past(i: int) -> int:  # the row after the subtree starting at row i
        n = schema[i][1] or 0
        i += 1
        for _ in range(n):
            i = past(i)
        return i

    names, i = [], 1
    for _ in range(schema[0][1] or 0 if schema else 0):
        names.append(schema[i][0])
        i = past(i)
    return names


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), for one-line errors."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


#: Leading bytes of compressed files, and the names DuckDB's readers decompress them by.
_COMPRESSED = {b"\x1f\x8b": ("gzip", ".gz"), b"\x28\xb5\x2f\xfd": ("zstd", ".zst")}


def _check_compression(source: Source, path: str) -> None:
    """Refuse a compressed CSV or NDJSON file that would be read as its compressed bytes.

    DuckDB decompresses a text file by its name (``.gz``, ``.zst``); one whose name says nothing would
    otherwise be quarantined line by line as garbage. A CSV header is read here in Python, which reads
    ``.gz`` but not ``.zst``.
    """
    if source.format == "parquet":
        return
    with open(path, "rb") as fh:
        head = fh.read(4)
    for magic, (kind, suffix) in _COMPRESSED.items():
        if head.startswith(magic) and not path.endswith(suffix):
            raise InputError(f"source {source.name!r}: file {path} is {kind}-compressed but not named *{suffix}; "
                             f"rename it so that it is read decompressed")
    if source.format == "csv" and path.endswith(".zst"):
        raise InputError(f"source {source.name!r}: file {path}: zstd-compressed CSV is not supported "
                         "(gzip, *.gz, is)")


def _check_mapped(source: Source, path: str, available: list[str]) -> None:
    if source.format == "csv" and source.columns and not set(source.columns.values()) & set(available):
        # not one mapped column in the first line: it is most likely a data row (a file without its header,
        # or the wrong delimiter), whose values (a device id, say) have no shape to mask; not shown
        raise InputError(
            f"source {source.name!r}: file {path} has none of the mapped columns "
            f"{sorted(source.columns.values())} in its first line, which splits into {len(available)} "
            f"field(s) at {_delimiter(source)!r}: is its header missing, or is its delimiter another one? "
            "(the line is not shown: it may be a data row)")
    for canonical, column in source.columns.items():
        if column not in available:
            # the "columns" may be a data row (a file without its header): masked, and at most 40 shown
            shown = [name[:60] for name in available[:40]] + (["..."] if len(available) > 40 else [])
            raise InputError(redact(
                f"source {source.name!r}: file {path} has no column {column!r} (mapped to {canonical}); "
                f"its columns are {shown}"))


def _reader_sql(source: Source, file_columns: list[str] | None = None) -> str:
    """SQL over parameter $fread (the file, glob-escaped) yielding __row and s_<canonical> VARCHAR columns.

    NDJSON is read as text lines (so one malformed line is one quarantined row) and also yields
    ``line`` and ``__ok`` (the line is a JSON object). ``file_columns`` are the file's own columns (Parquet:
    a file column named ``file_row_number`` takes the name of DuckDB's row-number column, and such a file's
    rows are numbered in scan order instead, as a CSV's are).
    """
    if source.format == "ndjson":
        # One parse per line: extract every mapped key at once into a list, then pick the elements.
        cols = [f"__vals[{i + 1}] AS s_{c}" for i, c in enumerate(source.columns)]
        lines = ("SELECT line, row_number() OVER () AS __row FROM read_csv($fread, columns = {'line': 'VARCHAR'}, "
                 "header = false, delim = chr(31), quote = '', escape = '', auto_detect = false, "
                 f"max_line_size = {MAX_LINE_BYTES}, store_rejects = true, rejects_table = '_rej_errors', "
                 "rejects_scan = '_rej_scans')")
        # Malformed lines are replaced by '{}' before extraction (json_extract errors on them even
        # inside a CASE), and flagged by __ok for quarantine.
        valid = "coalesce(json_valid(line) AND starts_with(ltrim(line), '{'), false)"
        objects = (f"SELECT *, {valid} AS __ok, CASE WHEN {valid} THEN line ELSE '{{}}' END AS __js "
                   f"FROM ({lines}) WHERE line IS NOT NULL AND trim(line) <> ''")
        extracted = f"SELECT *, json_extract_string(__js, $paths) AS __vals FROM ({objects})"
        return f"SELECT {', '.join(['__row', 'line', '__ok', *cols])} FROM ({extracted})"
    # the scan itself names its outputs (the mapped columns and __row only), so that a file column that
    # happens to be called __row or s_text can neither clash with them nor stand in for them
    cols = ", ".join(f"CAST({_qi(column)} AS VARCHAR) AS s_{c}" for c, column in source.columns.items())
    names = ", ".join(["__row", *(f"s_{c}" for c in source.columns)])
    if source.format == "parquet" and any(c.lower() == "file_row_number" for c in file_columns or []):
        scan = f"SELECT {cols}, row_number() OVER () AS __row FROM read_parquet($fread, hive_partitioning = false)"
    elif source.format == "parquet":
        scan = (f"SELECT {cols}, file_row_number + 1 AS __row "
                "FROM read_parquet($fread, file_row_number = true, hive_partitioning = false)")
    else:
        scan = (f"SELECT {cols}, row_number() OVER () AS __row FROM read_csv($fread, {_csv_options(source)}, "
                "store_rejects = true, rejects_table = '_rej_errors', rejects_scan = '_rej_scans')")
    return f"SELECT {names} FROM ({scan})"


def _redact_sql(expr: str) -> str:
    for pattern, token in _REDACT:
        expr = f"regexp_replace({expr}, {_sql_str(pattern)}, {_sql_str(token)}, 'g')"
    return expr


#: Parts of a column or key name that say it holds a personal identifier (matched in any case; see also
#: ``_IDENTIFIER_TOKENS``). An unmapped column or key so named has its value masked in the raw line of a row
#: that could not be parsed, like a mapped identifier.
_IDENTIFIER_NAME_TERMS = (r"mail|phone|mobile|msisdn|device|imei|imsi|iccid|idfa|gaid|udid|android_?id|fingerprint"
                          r"|mac_?addr|ip_?addr|ipv[46]")
#: Short names that are identifiers only as a whole word: ``ip``, ``ips``, ``mac`` (``client_ip``, ``srcIPs``,
#: ``IPAddress``, ``mac``; not ``zip``, ``tips`` or ``machine``).
_IDENTIFIER_TOKENS = r"(?:[iI][pP][sS]?|[mM][aA][cC])"
_CAMEL_TOKENS = r"(?:I[pP][sS]?|Mac)"  # the same words inside a camelCase name
_IDENTIFIER_NAME = re.compile(rf"(?i:{_IDENTIFIER_NAME_TERMS})|(?:^|[^A-Za-z]){_IDENTIFIER_TOKENS}(?:$|[^a-z])"
                              rf"|[a-z]{_CAMEL_TOKENS}(?:$|[^a-z])")
#: The same names as a double-quoted JSON key with its colon (RE2 has no look-around: the quotes stand in for
#: ^ and $, and the colon tells a key from a string value that mentions an e-mail).
_IDENTIFIER_KEY_RE2 = (rf'"(?:[^"]*(?i:{_IDENTIFIER_NAME_TERMS})[^"]*'
                       rf'|(?:[^"]*[^A-Za-z"])?{_IDENTIFIER_TOKENS}(?:[^a-z"][^"]*)?'
                       rf'|[^"]*[a-z]{_CAMEL_TOKENS}(?:[^a-z"][^"]*)?)"\s*:')


def looks_like_identifier_name(name: str) -> bool:
    """Whether a column or key called ``name`` likely holds a personal identifier (see ``_IDENTIFIER_NAME``).

    >>> [n for n in ("device_id", "E-Mail", "client_ip", "clientIp", "IPv6", "ipaddress", "srcIPs", "mac", "udid",
    ...              "zip", "tips", "machine", "recipient", "text") if looks_like_identifier_name(n)]
    ['device_id', 'E-Mail', 'client_ip', 'clientIp', 'IPv6', 'ipaddress', 'srcIPs', 'mac', 'udid']
    """
    return bool(_IDENTIFIER_NAME.search(name))


def _mask_json_keys_sql(expr: str, keys: list[str]) -> str:
    """``expr`` (a line that is not valid JSON) with the value after each of ``keys`` masked, quoted or not,
    complete or cut off by the end of the line: an identifier of any shape (a device id has none). The
    value of any other key whose name looks like an identifier's (:func:`looks_like_identifier_name`,
    an unmapped ``device_id``, say) is masked too.

    A key may be spelt as is or JSON-escaped, in double or single quotes. A line that is not even
    object-shaped (an array, say) and holds none of the keys is withheld: its identifiers have no key to
    be found by.
    """
    # a key as the line may spell it: as is, or JSON-escaped (a quote or backslash in it, non-ASCII as \\u)
    spellings = dict.fromkeys(form for key in keys
                              for form in (key, json.dumps(key)[1:-1], json.dumps(key, ensure_ascii=False)[1:-1]))
    key_re = "(" + "|".join([*(q + re.escape(k) + q for k in spellings for q in ('"', "'")), _IDENTIFIER_KEY_RE2]) + ")"
    value_re = r"""("([^"\\]|\\.)*("|$)|'([^'\\]|\\.)*('|$)|[^,}\s]*)"""
    pattern = key_re + r"(\s*:?\s*)" + value_re
    replacement = "\\1\\2" + '"' + MASKED + '"'  # the key as it was, then the masked value
    masked = f"regexp_replace({expr}, {_sql_str(pattern)}, {_sql_str(replacement)}, 'g')"
    withheld = _sql_str("[line withheld: it is not a JSON object and holds none of the identifier keys, so "
                        "its identifiers cannot be found]")
    return (f"CASE WHEN regexp_matches({expr}, {_sql_str(key_re)}) THEN {masked} "
            f"WHEN starts_with(ltrim({expr}), '{{') THEN {expr} ELSE {withheld if keys else expr} END")


def _mask_csv_fields_sql(expr: str, delimiter: str, quote: str, n_fields: int, positions: list[int]) -> str:
    """``expr`` (a CSV line the reader rejected) with the fields at ``positions`` (1-based) masked.

    Only a line without the quote character splits at every delimiter unambiguously; one with it, or one
    that does not split into the header's ``n_fields`` fields, leaves unknown where its identifiers are,
    and is withheld (the row number still points at it in the file).
    """
    if not positions:
        return expr
    d = _sql_str(delimiter)
    parts = f"string_split({expr}, {d})"
    masked = (f"array_to_string(list_transform({parts}, lambda x, i: CASE WHEN list_contains({positions}, i) "
              f"THEN {_sql_str(MASKED)} ELSE x END), {d})")
    withheld = _sql_str(f"[line withheld: it does not split unambiguously into the header's {n_fields} fields, "
                        "so its identifier fields cannot be masked]")
    return (f"CASE WHEN len({parts}) = {n_fields} AND NOT contains({expr}, {_sql_str(quote)}) THEN {masked} "
            f"ELSE {withheld} END")


@dataclass
class _Prepared:
    """A file read, typed and checked into table ``v``, waiting to be quarantined and stored."""

    path: str
    v: str
    params: dict[str, object]
    reader: str
    field_case: str
    reason_case: str
    raw_json: str
    n_read: int
    n_bad: int
    rejected: int


class _FileIngest:
    """Validate one file of one source and write its rows to the stored table or to quarantine."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: Source, seq: int, run_id: str, key: bytes,
                 max_text: int, not_after: datetime):
        self.con, self.source, self.seq, self.run_id, self.max_text = con, source, seq, run_id, max_text
        self.not_after = not_after
        self.pads = key_pads(key)
        self.table = INPUT_TABLES[source.table]
        self.filled: dict[str, int] = {}  # NDJSON: stored lines with a value, per optional mapped key
        self.lock = threading.Lock()

    def params(self, path: str) -> dict[str, object]:
        # $f names the file in the rows it writes; $fread is the same path for DuckDB's readers, which
        # expand glob patterns: a file named "x?.csv" must not also read "xa.csv"
        p: dict[str, object] = {"f": path, "fread": glob.escape(path), "run_id": self.run_id,
                                "source": self.source.name, "not_after": self.not_after}
        if self.source.format == "ndjson":
            p["paths"] = ['$."' + column.replace('"', '\\"') + '"' for column in self.source.columns.values()]
        for canonical, value in self.source.constants.items():
            p[f"c_{canonical}"] = value
        p.update(self.pads)
        return p

    def prepare(self, con: duckdb.DuckDBPyConnection, path: str, v: str) -> _Prepared | None:
        """Read, type and check ``path`` into table ``v`` (None for an empty file).

        Writes nothing but ``v`` and ``v``_rej (the rows the CSV reader rejected, as quarantine rows), so it
        can run on another connection while :meth:`finish` stores the previous file; ``v`` is in a catalog
        both connections see (see :func:`ingest_sources`).
        """
        source = self.source
        if os.path.getsize(path) == 0:
            if source.format == "parquet":  # not even a footer: a write that never finished, say
                raise InputError(f"source {source.name!r}: cannot read Parquet file {path}: the file is empty "
                                 "(0 bytes)")
            log.warning("source %s: file %s is empty", source.name, path)
            return None
        _check_compression(source, path)
        params = self.params(path)
        available: list[str] = []
        if source.format in ("parquet", "csv"):
            available = _file_columns(con, source, path)
            _check_mapped(source, path, available)
            params["cols"] = {name: "VARCHAR" for name in available}
        string_of: dict[str, str] = {}
        for col in self.table.columns:
            if col.name in source.columns:
                string_of[col.name] = f"s_{col.name}"
            elif col.name in source.constants:
                string_of[col.name] = f"CAST($c_{col.name} AS VARCHAR)"
            else:
                string_of[col.name] = "CAST(NULL AS VARCHAR)"
        typed = {c.name: _typed_sql(self.table.name, c, string_of[c.name], source.timestamp_format(c.name))
                 for c in self.table.columns}
        conditions: list[tuple[str, str, str]] = []
        if source.format == "ndjson":
            conditions.append(("NOT __ok", "", "'line is not a JSON object'"))
        for c in self.table.columns:
            if c.name in source.columns or c.name in source.constants or c.required:
                for cond, reason in _checks(self.table.name, c, string_of[c.name], typed[c.name], self.max_text):
                    conditions.append((cond, c.name, reason))
        conditions += _row_checks(self.table.name, typed)
        # Fast path: one scan computes the typed columns and the index of the first failed check.
        # Reasons, fields and raw rows are computed in a second scan over the failed rows only.
        check_case = "CASE " + " ".join(f"WHEN {c} THEN {i}" for i, (c, _, _) in enumerate(conditions)) + " END"
        reason_case = "CASE __check " + " ".join(f"WHEN {i} THEN {r}"
                                                 for i, (_, _, r) in enumerate(conditions)) + " END"
        field_case = "CASE __check " + " ".join(f"WHEN {i} THEN {_sql_str(f) if f else 'NULL'}"
                                                for i, (_, f, _) in enumerate(conditions)) + " END"
        mapped = [c for c in self.table.columns if c.name in source.columns or c.name in source.constants]
        raw_parts = []
        for c in mapped:
            value = (hmac_sql(c.name, typed[c.name]) if c.kind == "identifier"
                     else f"left({string_of[c.name]}, {RAW_TEXT_CHARS})")
            key = c.name + ("_hash" if c.kind == "identifier" else "")
            raw_parts += [_sql_str(key), value]
        raw_json = f"json_object({', '.join(raw_parts)})::VARCHAR" if raw_parts else "'{}'"
        if source.format == "ndjson":
            line = _mask_json_keys_sql("line", [source.columns[c.name] for c in mapped if c.kind == "identifier"
                                                and c.name in source.columns])
            raw_json = f"CASE WHEN __ok THEN {raw_json} ELSE left({_redact_sql(line)}, {RAW_TEXT_CHARS}) END"
        reader = _reader_sql(source, available)
        con.execute(f"DROP TABLE IF EXISTS _rej_errors; DROP TABLE IF EXISTS _rej_scans; DROP TABLE IF EXISTS {v}; "
                    f"DROP TABLE IF EXISTS {v}_rej")
        select_typed = ", ".join(f"{typed[c.name]} AS {_qi('t_' + c.name)}" for c in self.table.columns)
        sql = (f"CREATE TABLE {v} AS SELECT __row AS __k, __row, {select_typed}, {check_case} AS __check "
               f"FROM ({reader})")
        try:
            con.execute(sql, _bind(sql, params))
        except duckdb.Error as exc:
            if _not_the_files_fault(exc):
                raise
            raise InputError(f"source {source.name!r}: cannot read {source.format} file {path}: "
                             f"{first_line(exc)}") from None
        rejected = self._rejects(con, path, v, list(params.get("cols", {}))) if source.format != "parquet" else 0
        n_read, n_bad = con.execute(f"SELECT count(*), count(__check) FROM {v}").fetchall()[0]
        if source.format == "ndjson" and n_read > n_bad:
            self._count_filled_keys(con, v)
        return _Prepared(path, v, params, reader, field_case, reason_case, raw_json, n_read, n_bad, rejected)

    def _count_filled_keys(self, con: duckdb.DuckDBPyConnection, v: str) -> None:
        """Count, per optional mapped NDJSON key, the stored lines of file table ``v`` that have a value."""
        optional = [c for c in self.source.columns if not self.table.column(c).required]
        if not optional:
            return
        filled = ", ".join(f"count({_qi('t_' + c)})" for c in optional)
        counts = con.execute(f"SELECT {filled} FROM {v} WHERE __check IS NULL").fetchall()[0]
        with self.lock:  # prepared on the read-ahead thread
            for canonical, n in zip(optional, counts, strict=True):
                self.filled[canonical] = self.filled.get(canonical, 0) + int(n)

    def warn_absent_keys(self) -> None:
        """Warn about mapped NDJSON keys that no line of any file of the source has a value for.

        A CSV or Parquet file without a mapped column is an input error; NDJSON has no header to check, and
        writers that leave out null keys are common (one file of a day may hold no thread posts), so a key
        absent from the whole source (a misspelt mapping, most often) is a warning that names it.
        """
        for canonical, n in self.filled.items():
            if not n:
                log.warning("source %s: no line of its files has a value for key %r (mapped to %s); check the "
                            "mapping", self.source.name, self.source.columns[canonical], canonical)

    def finish(self, preps: list[_Prepared | None]) -> tuple[int, int, int]:
        """Quarantine the failed rows of prepared files of this source and store the others, all files in one
        INSERT; drops their tables. Returns rows (read, stored, quarantined) over the files.

        One INSERT per several files instead of one per file: every INSERT is a commit that ends in a
        part-filled row group, and file by file storing cost about twice as much (measured: six files of
        856k rows stored in 2.0–2.1 s one by one plus 0.25 s of final checkpoint, in 1.0–1.2 s together).
        """
        ready = [prep for prep in preps if prep is not None]
        con, source = self.con, self.source
        for prep in ready:
            v = prep.v
            if prep.rejected:
                con.execute(f"INSERT INTO quarantine SELECT * FROM {v}_rej")
                con.execute(f"DROP TABLE {v}_rej")
            if prep.n_bad:
                con.execute("DROP TABLE IF EXISTS _rej_errors; DROP TABLE IF EXISTS _rej_scans")
                failed = (f"SELECT *, (SELECT __check FROM {v} _v WHERE _v.__k = r.__row) AS __check "
                          f"FROM ({prep.reader}) r WHERE r.__row IN (SELECT __k FROM {v} WHERE __check IS NOT NULL)")
                sql = (f"INSERT INTO quarantine SELECT $run_id, $source, $f, "
                       f"(SELECT __row FROM {v} _v WHERE _v.__k = b.__row), {prep.field_case}, {prep.reason_case}, "
                       f"{prep.raw_json} FROM ({failed}) b ORDER BY 4")
                con.execute(sql, _bind(sql, {**prep.params, "run_id": self.run_id, "source": source.name}))
        if ready:
            self._store(ready)
        for prep in ready:
            con.execute(f"DROP TABLE {prep.v}")
        return (sum(p.n_read + p.rejected for p in ready), sum(p.n_read - p.n_bad for p in ready),
                sum(p.n_bad + p.rejected for p in ready))

    def _rejects(self, con: duckdb.DuckDBPyConnection, path: str, v: str, file_columns: list[str]) -> int:
        """Stage quarantine rows (table ``v``_rej) for lines the CSV reader rejected; renumber rows past them.

        A stray quote that is never closed makes the reader take the rest of the file as one value and
        reject it as one line: each line it swallowed is quarantined as a row of its own, naming the row
        with the quote (so the counts add up and nothing is lost). Identifier fields of a rejected line are
        masked by their position in the header (CSV) or their key (NDJSON); see ``_mask_csv_fields_sql``.
        """
        exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_rej_errors'").fetchall()[0][0]
        if not exists:
            return 0
        source = self.source
        header = 1 if (source.format == "csv" and source.csv.header) else 0
        # min over column_idx: DuckDB leaves column_idx NULL for some errors (a line over the size limit)
        con.execute("""CREATE OR REPLACE TEMP TABLE _rej1 AS
            SELECT line - $header AS rec, arg_min(error_type, coalesce(column_idx, 0)) AS error_type,
                   arg_min(column_name, coalesce(column_idx, 0)) AS column_name,
                   arg_min(error_message, coalesce(column_idx, 0)) AS msg,
                   arg_min(csv_line, coalesce(column_idx, 0)) AS csv_line
            FROM _rej_errors GROUP BY line""", {"header": header})
        con.execute("""CREATE OR REPLACE TEMP TABLE _rej AS
            SELECT rec, rec AS origin, error_type, column_name, msg, csv_line FROM _rej1
            WHERE NOT (contains(msg, 'unterminated quote') AND contains(csv_line, chr(10)))
            UNION ALL
            SELECT rec + i - 1, rec, CASE WHEN i = 1 THEN error_type ELSE 'SWALLOWED' END,
                   CASE WHEN i = 1 THEN column_name END, msg, part
            FROM (SELECT rec, error_type, column_name, msg, unnest(parts) AS part,
                         generate_subscripts(parts, 1) AS i
                  -- the line as DuckDB keeps it: in a CRLF file it may begin with the previous line's LF
                  FROM (SELECT *, list_transform(string_split(trim(csv_line, chr(10) || chr(13)), chr(10)),
                                                 lambda x: rtrim(x, chr(13))) AS parts FROM _rej1
                        WHERE contains(msg, 'unterminated quote') AND contains(csv_line, chr(10))))""")
        n = con.execute("SELECT count(*) FROM _rej").fetchall()[0][0]
        if not n:
            return 0
        field_of = {column: canonical for canonical, column in source.columns.items()}
        identifier_columns = [column for canonical, column in source.columns.items()
                              if self.table.column(canonical).kind == "identifier"]
        if source.format == "ndjson":
            line = _mask_json_keys_sql("csv_line", identifier_columns)
        else:
            delim = _delimiter(source)
            positions = [i + 1 for i, name in enumerate(file_columns)
                         if name in identifier_columns or looks_like_identifier_name(name)]
            line = _mask_csv_fields_sql("rtrim(csv_line, chr(13))", delim, source.csv.quote, len(file_columns),
                                        positions)
        # NDJSON lines are read split at chr(31), which JSON allows only escaped: a raw one splits the line
        unit_separator = ("WHEN 'TOO MANY COLUMNS' THEN 'malformed JSON: a raw control character 0x1F in the line "
                          "(JSON allows it only escaped, as \\u001f)'" if source.format == "ndjson" else "")
        con.execute(f"""CREATE TABLE {v}_rej AS
            SELECT $run_id, $source, $f, rec, $canon[list_position($file_cols, column_name)],
                   CASE error_type WHEN 'INVALID ENCODING' THEN 'invalid UTF-8 bytes (file must be UTF-8)'
                        WHEN 'LINE SIZE OVER MAXIMUM' THEN 'line longer than {MAX_LINE_BYTES} bytes'
                        WHEN 'SWALLOWED' THEN 'not read: the unterminated quote in row ' || origin
                                              || ' took the rest of the file as one value'
                        {unit_separator}
                        ELSE lower(coalesce(error_type, 'unreadable line')) || ': ' || coalesce(msg, 'no details')
                   END,
                   left({_redact_sql(line)}, {RAW_TEXT_CHARS})
            FROM _rej""", {"run_id": self.run_id, "source": source.name, "f": path,
                           "file_cols": [*field_of, ""], "canon": [*field_of.values(), ""]})
        # Good rows were numbered among good rows only; shift each past the rejected records before it.
        con.execute("""CREATE OR REPLACE TEMP TABLE _rej_g AS
            SELECT g, max(i) AS i FROM (SELECT rec - row_number() OVER (ORDER BY rec) AS g,
                                               row_number() OVER (ORDER BY rec) AS i FROM _rej) GROUP BY g""")
        con.execute(f"""CREATE OR REPLACE TABLE {v} AS
            SELECT v.* REPLACE (v.__row + coalesce(r.i, 0) AS __row)
            FROM {v} v ASOF LEFT JOIN _rej_g r ON v.__row > r.g ORDER BY v.__k""")
        return n

    def _store(self, preps: list[_Prepared]) -> None:
        """Store the rows of ``preps`` that passed every check with one INSERT (each row keeps its file and row
        number; the files' rows may interleave in storage, row group by row group)."""
        con, table = self.con, self.table
        p: dict[str, object] = {"run_id": self.run_id, "source": self.source.name}
        files = []
        for i, prep in enumerate(preps):
            p[f"f{i}"] = prep.path
            files.append(f"SELECT *, CAST($f{i} AS VARCHAR) AS __file FROM {prep.v}")
        rows = f"({' UNION ALL '.join(files)})"
        stored = STORED_NAME[table.name]
        cols = [("t_" + c.name) for c in table.columns]
        names = [c.name + ("_hash" if c.kind == "identifier" else "") for c in table.columns]
        if table.name == "messages":
            extra_names = ["url_domain", *_PROVENANCE]
            extra = [_domain_sql(), "$source", "__file", "__row"]
        elif table.name == "accounts":
            extra_names = [*_PROVENANCE, "source_seq"]
            extra = ["$source", "__file", "__row", str(self.seq)]
        else:
            extra_names, extra = [], []
        joins = []
        for c in table.columns:
            if c.kind == "identifier" and (c.name in self.source.columns or c.name in self.source.constants):
                lookup = f"_hmac_{c.name}"
                sql = (f"CREATE OR REPLACE TEMP TABLE {lookup} AS SELECT v, {hmac_sql(c.name, 'v')} AS h "
                       f"FROM (SELECT DISTINCT t_{c.name} AS v FROM {rows} WHERE t_{c.name} IS NOT NULL)")
                con.execute(sql, _bind(sql, {**self.pads, **p}))
                joins.append(f"LEFT JOIN {lookup} ON {lookup}.v = _v.t_{c.name}")
                cols[cols.index("t_" + c.name)] = f"{lookup}.h"
            elif c.kind == "identifier":
                cols[cols.index("t_" + c.name)] = "NULL"
        select = ", ".join(["$run_id", *[c if c.endswith(".h") or c == "NULL" else _qi(c) for c in cols], *extra])
        target = ", ".join(["run_id", *names, *extra_names])
        sql = (f"INSERT INTO {stored} ({target}) SELECT {select} FROM {rows} _v {' '.join(joins)} "
               f"WHERE __check IS NULL")
        con.execute(sql, _bind(sql, p))


def _domain_sql() -> str:
    """Lower-cased host of the url column, else of the first URL in the text.

    The pattern's optional ``user@`` part can only match where the value contains '@'; elsewhere the
    same match is found by the pattern without it, which RE2 runs about three times faster (no
    backtracking over the optional group). Values without '://' cannot match at all and skip the regex.
    """
    return f"lower(coalesce({_host_sql('t_url')}, {_host_sql('t_text')}))"


def _host_sql(col: str) -> str:
    full = _sql_str(r"https?://(?:[^@/\s]*@)?([A-Za-z0-9.-]+)")
    plain = _sql_str(r"https?://([A-Za-z0-9.-]+)")
    return (f"CASE WHEN contains({col}, '://') THEN nullif(CASE WHEN contains({col}, '@') "
            f"THEN regexp_extract({col}, {full}, 1) ELSE regexp_extract({col}, {plain}, 1) END, '') END")


def expand_files(source: Source) -> list[str]:
    """The files a source's path or glob matches, sorted; InputError when there are none."""
    pattern = source.pattern
    matched = glob.glob(pattern, recursive=True)
    broken = sorted(f for f in matched if os.path.islink(f) and not os.path.exists(f))
    if broken:  # a file the glob names but nobody can read: its rows would be lost without a word
        raise InputError(f"source {source.name!r}: {broken[0]} is a broken symbolic link (to "
                         f"{os.readlink(broken[0])})" + (f", as are {len(broken) - 1} more" if len(broken) > 1 else ""))
    files = sorted(f for f in matched if os.path.isfile(f))
    if not files:
        if not glob.has_magic(source.path) and os.path.isdir(source.full_path):
            raise InputError(f"source {source.name!r}: input {source.full_path} is a folder; give the files in it "
                             f"with a pattern, such as path = \"{Path(source.path) / '*'}\"")
        what = "matches no file" if glob.has_magic(source.path) else "does not exist"
        raise InputError(f"source {source.name!r}: input {source.full_path} {what}")
    return files


class _Queued(NamedTuple):
    """A file being read ahead: its source's counts and worker, its path and size, and the read's future."""

    counts: SourceCounts
    worker: _FileIngest
    path: str
    size: int
    future: Future[_Prepared | None]


def ingest_sources(con: duckdb.DuckDBPyConnection, config: Config, run_id: str, key: bytes,
                   on_file: Callable[[str, str], None] | None = None,
                   started: datetime | None = None) -> list[SourceCounts]:
    """Read every source of ``config`` into the canonical tables; returns per-source row accounting.

    Files are stored in config and file order, while the next ones (up to :data:`READ_AHEAD_FILES`) are
    already being read, typed and checked on a second connection (reading CSV and NDJSON with row numbers
    is single-threaded in DuckDB, so this keeps the other core busy). Prepared files wait in an in-memory
    catalog that both connections see. The files of one source that are ready when the store comes to
    them are stored by one INSERT (up to :data:`STORE_BATCH_ROWS` rows): a commit per file costs as much
    as its rows.
    """
    create_input_tables(con)
    counts: list[SourceCounts] = []
    # times later than this are clock errors (UTC, as stored; a day of slack for skewed clocks)
    not_after = (started or datetime.now(UTC).replace(tzinfo=None)) + FUTURE_SLACK

    def files() -> Iterator[tuple[SourceCounts, _FileIngest, str]]:
        for seq, source in enumerate(config.sources):
            paths = expand_files(source)
            sc = SourceCounts(source=source.name, table=source.table, files=len(paths))
            counts.append(sc)
            worker = _FileIngest(con, source, seq, run_id, key, config.settings.max_text_chars, not_after)
            for path in paths:
                yield sc, worker, path

    con.execute(f"ATTACH ':memory:' AS {_STAGE}")
    reader_con = con.cursor()
    pool = ThreadPoolExecutor(max_workers=1)
    jobs = files()
    queue: deque[_Queued] = deque()

    staged = itertools.count()  # names of the staged files' tables

    def read_ahead() -> None:
        while len(queue) < READ_AHEAD_FILES and (not queue or sum(q.size for q in queue) < READ_AHEAD_BYTES):
            job = next(jobs, None)
            if job is None:
                return
            sc, worker, path = job
            v = f"{_STAGE}._v{next(staged)}"
            queue.append(_Queued(sc, worker, path, os.path.getsize(path),
                                 pool.submit(worker.prepare, reader_con, path, v)))

    try:
        _copy_session_settings(con, reader_con)
        read_ahead()
        while queue:
            first = queue.popleft()
            sc, worker = first.counts, first.worker
            if on_file:
                on_file(sc.source, first.path)
            batch = [first.future.result()]
            rows = batch[0].n_read if batch[0] else 0
            # the files of the same source that are already read join this INSERT, up to a row budget
            while queue and queue[0].worker is worker and queue[0].future.done() and rows < STORE_BATCH_ROWS:
                nxt = queue.popleft()
                if on_file:
                    on_file(sc.source, nxt.path)
                batch.append(nxt.future.result())
                rows += batch[-1].n_read if batch[-1] else 0
            read_ahead()
            read, stored, quarantined = worker.finish(batch)
            sc.rows_read += read
            sc.rows_stored += stored
            sc.rows_quarantined += quarantined
            if not queue or queue[0].counts is not sc:
                log.info("source %s: %d files, %d rows read, %d stored, %d quarantined", sc.source, sc.files,
                         sc.rows_read, sc.rows_stored, sc.rows_quarantined)
                worker.warn_absent_keys()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        reader_con.close()
        con.execute(f"DETACH {_STAGE}")
    moved = _quarantine_duplicate_messages(con, [source.name for source in config.sources])
    if moved:
        by_source = dict(con.execute(
            "SELECT source, count(*) FROM quarantine WHERE reason LIKE 'duplicate message_id%' GROUP BY source"
        ).fetchall())
        for sc in counts:
            n = by_source.get(sc.source, 0)
            sc.rows_stored -= n
            sc.rows_quarantined += n
    return counts


def _copy_session_settings(con: duckdb.DuckDBPyConnection, other: duckdb.DuckDBPyConnection) -> None:
    """Give ``other`` the connection-local settings of ``con`` that change how values are typed.

    That is the time zone: ISO 8601 times with an offset are converted to the session's local time.
    (Other settings the pipeline makes, such as threads and memory_limit, are database-wide.)
    """
    q = "SELECT name, value FROM duckdb_settings() WHERE scope = 'LOCAL' AND name IN ('TimeZone', 'Calendar')"
    mine = dict(other.execute(q).fetchall())
    for name, value in con.execute(q).fetchall():
        if mine.get(name) != value:
            other.execute(f"SET {_qi(name)} = $v", {"v": value})


def _quarantine_duplicate_messages(con: duckdb.DuckDBPyConnection, source_order: list[str]) -> int:
    """Move every repeat of a (platform, message_id) after its first occurrence to quarantine.

    First means first in config source order, then file and row order: two sources that read the same
    file (a backfill beside the daily feed) keep one copy, the first source's.
    """
    dup_keys = con.execute("""CREATE OR REPLACE TEMP TABLE _dup_keys AS
        SELECT platform, message_id FROM messages WHERE message_id IS NOT NULL
        GROUP BY ALL HAVING count(*) > 1""").fetchall()
    del dup_keys
    if not con.execute("SELECT count(*) FROM _dup_keys").fetchall()[0][0]:
        return 0
    con.execute("""CREATE OR REPLACE TEMP TABLE _dups AS
        SELECT m.*, first_value(m.source) OVER w AS first_source, first_value(m.source_file) OVER w AS first_file,
               first_value(m.source_row) OVER w AS first_row, row_number() OVER w AS k
        FROM messages m SEMI JOIN _dup_keys d ON m.platform = d.platform AND m.message_id = d.message_id
        WINDOW w AS (PARTITION BY m.platform, m.message_id
                     ORDER BY list_position($order, m.source), m.source_file, m.source_row
                     ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)""", {"order": source_order})
    con.execute("""INSERT INTO quarantine
        SELECT run_id, source, source_file, source_row, 'message_id',
               'duplicate message_id ' || message_id || ' (first seen in ' || first_file || ' row ' || first_row
                   || CASE WHEN first_source <> source THEN ', source ' || first_source ELSE '' END || ')',
               json_object('platform', platform, 'sender', sender, 'recipient', recipient, 'channel', channel,
                           'sent_at', sent_at, 'text', left(text, 1000), 'message_id', message_id,
                           'device_hash', device_hash, 'ip_hash', ip_hash)::VARCHAR
        FROM _dups WHERE k > 1""")
    n = con.execute("SELECT count(*) FROM _dups WHERE k > 1").fetchall()[0][0]
    con.execute("""DELETE FROM messages m USING _dups d
        WHERE d.k > 1 AND m.source = d.source AND m.source_file = d.source_file AND m.source_row = d.source_row""")
    return n


def build_accounts(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """Create ``accounts``: one row per (platform, account) seen anywhere, directory fields merged.

    When several directory rows describe one account, each field takes the first non-null value in
    config source order, then file and row order.
    """
    order = "(source_seq, source_file, source_row)"
    merged = ", ".join(f"arg_min({f}, {order}) FILTER ({f} IS NOT NULL) AS {f}"
                       for f in ("created_at", "handle", "display_name", "email_hash", "phone_hash"))
    con.execute(f"""CREATE TABLE accounts AS
        WITH dir AS (
            SELECT platform, account, {merged}
            FROM _accounts_directory GROUP BY platform, account),
        seen AS (
            SELECT platform, sender AS account FROM messages
            UNION SELECT platform, recipient FROM messages WHERE recipient IS NOT NULL
            UNION SELECT platform, account FROM flags
            UNION SELECT platform, account FROM overrides
            UNION SELECT platform_a, account_a FROM known_links
            UNION SELECT platform_b, account_b FROM known_links
            UNION SELECT platform, account FROM dir)
        SELECT $run_id AS run_id, s.platform, s.account, d.created_at, d.handle, d.display_name, d.email_hash,
               d.phone_hash, d.account IS NOT NULL AS in_directory
        FROM seen s LEFT JOIN dir d ON s.platform = d.platform AND s.account = d.account
        ORDER BY s.platform, s.account""", {"run_id": run_id})
    con.execute("DROP TABLE _accounts_directory")
    _document(con, "accounts")
    _warn_unseen_overrides(con)
    return con.execute("SELECT count(*) FROM accounts").fetchall()[0][0]


def _warn_unseen_overrides(con: duckdb.DuckDBPyConnection) -> None:
    """Warn when analyst overrides name accounts no message of the run was sent by or to.

    Such an account still gets a reputation row (the override decides it: a pre-emptive block, say), but
    more often the override names a mistyped account or a platform the run does not read.
    """
    if not con.execute("SELECT count(*) FROM overrides").fetchall()[0][0]:
        return
    unseen = con.execute("""
        WITH o AS (SELECT DISTINCT platform, account FROM overrides),
        seen AS (SELECT m.platform, m.sender AS account FROM messages m SEMI JOIN o
                     ON o.platform = m.platform AND o.account = m.sender
                 UNION SELECT m.platform, m.recipient FROM messages m SEMI JOIN o
                     ON o.platform = m.platform AND o.account = m.recipient)
        SELECT platform || ':' || account FROM o ANTI JOIN seen USING (platform, account) ORDER BY 1""").fetchall()
    if unseen:
        names = ", ".join(u for (u,) in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        log.warning("overrides name %d account(s) that no message of this run was sent by or to (%s); each gets "
                    "a reputation row from its override alone: check the platform and account", len(unseen), names)


def build_identifiers(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """Create ``identifiers``: each account's identifier hashes and how many accounts share each value."""
    con.execute("""CREATE TABLE identifiers AS
        WITH uses AS (
            SELECT platform, sender AS account, 'device' AS kind, device_hash AS value_hash, count(*) AS uses
            FROM messages WHERE device_hash IS NOT NULL GROUP BY ALL
            UNION ALL
            SELECT platform, sender, 'ip', ip_hash, count(*) FROM messages WHERE ip_hash IS NOT NULL GROUP BY ALL
            UNION ALL
            SELECT platform, account, 'email', email_hash, 1 FROM accounts WHERE email_hash IS NOT NULL
            UNION ALL
            SELECT platform, account, 'phone', phone_hash, 1 FROM accounts WHERE phone_hash IS NOT NULL)
        SELECT $run_id AS run_id, platform, account, kind, value_hash, uses,
               count(*) OVER (PARTITION BY kind, value_hash) AS accounts_sharing
        FROM uses ORDER BY platform, account, kind, value_hash""", {"run_id": run_id})
    _document(con, "identifiers")
    return con.execute("SELECT count(*) FROM identifiers").fetchall()[0][0]


def _document(con: duckdb.DuckDBPyConnection, name: str) -> None:
    t = STORED_TABLES[name]
    comment_table(con, name, t.doc, {c: d for c, _, d in t.columns})


def finish_input_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Document the ingested tables."""
    for name in ("quarantine", "messages", "flags", "known_links", "overrides"):
        _document(con, name)


def source_path_for_display(path: str, base: Path) -> str:
    """``path`` relative to ``base`` when below it (for short log lines)."""
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return path
