"""Reputation exports for platform trust-and-safety teams: Parquet, CSV, JSON Lines and STIX 2.1.

An export for platform P holds only P's accounts, with score, verdict, confidence, reasons, validity
window and provenance (run id, schema version). It never holds another platform's account ids or any
raw personal identifier: reasons name other platforms' evidence by platform name and kind only (the
``reputation`` table is built that way, and :func:`export_platform` selects a fixed column list).
Identity ids are not exported either — they would let two platforms join their users.

Every export is a lead for human review, not proof; the STIX bundle says so in each indicator.

Example
-------
>>> EXPORT_COLUMNS[:3]
('platform', 'account', 'score')
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb

from .config import EXPORT_FORMATS
from .scoring.propagation import table_exists

ExportFormat = Literal["parquet", "csv", "jsonl", "stix"]
FORMATS: tuple[str, ...] = EXPORT_FORMATS

#: Columns of every export, in order.
EXPORT_COLUMNS: tuple[str, ...] = ("platform", "account", "score", "verdict", "confidence", "reasons", "reason_text",
                                   "flagged_on", "first_seen", "last_seen", "valid_until", "run_id",
                                   "schema_version")
#: Namespace of the deterministic STIX ids (uuid5 over platform, account and run id).
STIX_NAMESPACE = uuid.UUID("6f1c4b0e-8a54-4f0e-9d1c-2b7f3a6e5c11")
PRODUCER_NAME = "reputation (cross-platform spammer reputation engine)"
#: The STIX 2.1 property extension that carries the engine's own fields on each Indicator (STIX 2.1 §7.3:
#: an extension-definition object in the bundle, its properties under ``extensions``), so that a strict
#: STIX parser accepts the bundle as it is; custom ``x_`` properties need the parser's allow-custom mode.
STIX_EXTENSION_ID = f"extension-definition--{uuid.uuid5(STIX_NAMESPACE, 'reputation-indicator-properties')}"
STIX_EXTENSION_SCHEMA = (
    "Properties of an Indicator for one account: score (0..1, the calibrated probability that the account "
    "is spam; the Indicator's confidence is round(100 × score)), confidence (0..1, how much evidence the "
    "score rests on), reasons (list of {kind, source_platform, contribution in log-odds}), flagged_on "
    "(platforms where the account's identity was flagged as spam), run_id (the run that scored it) and "
    "schema_version (of the reputation table).")
REVIEW_NOTE = ("A lead for human review, not proof: the score combines moderation flags, cross-platform "
               "account linkage and behaviour.")

EXPORT_SQL = f"""
SELECT {', '.join(EXPORT_COLUMNS)}
FROM reputation
WHERE platform = $platform AND ($min_score IS NULL OR score >= $min_score)
ORDER BY account
"""


class ExportWriteError(OSError):
    """The export file could not be written (its folder cannot be made, it is a folder, a full disk...).

    Nothing is left behind: an export is written to a temporary file beside ``out_path`` and renamed into
    place only when complete, so a failed write never leaves half a file or replaces the previous one.
    """


def _export_rows(con: duckdb.DuckDBPyConnection, platform: str, min_score: float | None):
    return con.sql(EXPORT_SQL, params={"platform": platform, "min_score": min_score}).to_arrow_table()


def export_platform(con: duckdb.DuckDBPyConnection, platform: str, fmt: ExportFormat, out_path: str | Path,
                    min_score: float | None = None) -> int:
    """Write platform ``platform``'s reputation rows to ``out_path`` in format ``fmt``.

    Parameters
    ----------
    con
        Connection to a run's database.
    platform
        The platform whose accounts are exported (no other platform's accounts are written).
    fmt
        ``parquet``, ``csv`` (reasons as a JSON string, flagged_on as ``a;b``), ``jsonl`` (one JSON object
        per line, reasons nested) or ``stix`` (a STIX 2.1 bundle: one Indicator per account whose verdict is
        spam or suspicious).
    out_path
        File to write (parent folders are created).
    min_score
        Only accounts with score ≥ this (None: all).

    Returns
    -------
    int
        Accounts written (for STIX: indicators).

    Raises
    ------
    KeyError
        When ``platform`` has no account in the database (the message lists the platforms it has).
    LookupError
        When the database has no ``reputation`` table.
    ExportWriteError
        When ``out_path`` cannot be written; the file there before, if any, is unchanged.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {list(FORMATS)}")
    if not table_exists(con, "reputation"):
        raise LookupError("the database has no reputation table: is it a run's published database?")
    known = [p for (p,) in con.execute("SELECT DISTINCT platform FROM reputation ORDER BY 1").fetchall()]
    if platform not in known:  # a misspelt platform would otherwise write an empty export
        raise KeyError(f"unknown platform {platform!r}; the database has {', '.join(known) or 'none'}")
    out = Path(out_path)
    rows = _export_rows(con, platform, min_score)
    if out.is_dir():
        raise ExportWriteError(f"cannot write {out}: it is a folder; give a file name")
    # a pipe or a device (/dev/stdout) is written as it is: there is nothing to rename into place
    direct = out.exists() and not out.is_file()
    real = out if direct else Path(os.path.realpath(out))  # through a symbolic link, to the file it names
    # beside the target, under a short name with the same suffixes (COPY infers compression from them)
    partial = real if direct else real.with_name(f".partial-{os.getpid()}{''.join(real.suffixes[-2:])}")
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "stix":
            written = _write_stix(con, rows.to_pylist(), partial)
        else:
            _copy_rows(con, rows, fmt, partial)
            written = rows.num_rows
        if not direct:
            os.replace(partial, real)
    except (OSError, duckdb.IOException) as exc:
        if not direct:
            with contextlib.suppress(OSError):
                partial.unlink()
        reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror
                  else str(exc).splitlines()[0].replace(str(partial), str(out)))
        raise ExportWriteError(f"cannot write {out}: {reason}") from exc
    return written


def _copy_rows(con: duckdb.DuckDBPyConnection, rows: Any, fmt: str, out: Path) -> None:
    """Write the Arrow table ``rows`` to ``out`` as Parquet, CSV or JSON Lines with DuckDB's COPY."""
    con.register("_export_rows", rows)
    try:
        target = str(out).replace("'", "''")  # our own path, escaped as a SQL literal (COPY takes no params)
        if fmt == "parquet":
            con.execute(f"COPY (SELECT * FROM _export_rows) TO '{target}' (FORMAT parquet)")
        elif fmt == "csv":
            con.execute(f"COPY (SELECT * REPLACE (CAST(reasons AS VARCHAR) AS reasons, "
                        f"array_to_string(flagged_on, ';') AS flagged_on) FROM _export_rows) "
                        f"TO '{target}' (FORMAT csv, HEADER true)")
        else:
            con.execute(f"COPY (SELECT * REPLACE (CAST(reasons AS JSON) AS reasons) FROM _export_rows) "
                        f"TO '{target}' (FORMAT json)")
    finally:
        con.unregister("_export_rows")


def _stix_time(value: Any, fallback: datetime) -> datetime:
    t = value if isinstance(value, datetime) else fallback
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _pattern_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _write_stix(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], out: Path) -> int:
    """A STIX 2.1 bundle: an Identity for the producer, the extension definition of the engine's fields and
    one Indicator per spam/suspicious account (a clean or unknown account is not an indicator of anything)."""
    import stix2

    as_of = None
    run_ids = sorted({r["run_id"] for r in rows})
    if run_ids and table_exists(con, "runs"):
        got = con.execute("SELECT max(as_of) FROM runs WHERE run_id = ?", [run_ids[0]]).fetchall()
        as_of = got[0][0] if got else None
    producer = stix2.Identity(
        id=f"identity--{uuid.uuid5(STIX_NAMESPACE, 'producer')}",
        name=PRODUCER_NAME, identity_class="system",
        created=datetime(2026, 1, 1, tzinfo=UTC), modified=datetime(2026, 1, 1, tzinfo=UTC),
        description="Open, self-hostable cross-platform spammer reputation graph engine.",
    )
    extension = stix2.ExtensionDefinition(
        id=STIX_EXTENSION_ID, created_by_ref=producer.id,
        created=datetime(2026, 1, 1, tzinfo=UTC), modified=datetime(2026, 1, 1, tzinfo=UTC),
        name="reputation indicator properties", description="The reputation engine's fields of an Indicator.",
        schema=STIX_EXTENSION_SCHEMA, version="1.0.0", extension_types=["property-extension"],
    )
    objects: list[Any] = [producer, extension]
    # One Python object per exported indicator: stix2 builds and validates objects one at a time.
    for r in rows:
        if r["verdict"] not in ("spam", "suspicious"):
            continue
        valid_until = _stix_time(r["valid_until"], datetime.now(UTC) + timedelta(days=30))
        valid_from = _stix_time(as_of or r["last_seen"], valid_until - timedelta(days=30))
        if valid_from >= valid_until:
            valid_from = valid_until - timedelta(days=1)
        reasons = json.loads(r["reasons"]) if isinstance(r["reasons"], str) else (r["reasons"] or [])
        key = f"{r['platform']}\x1f{r['account']}\x1f{r['run_id']}"
        objects.append(stix2.Indicator(
            id=f"indicator--{uuid.uuid5(STIX_NAMESPACE, key)}",
            created=valid_from, modified=valid_from,
            created_by_ref=producer.id,
            name=f"{r['verdict']} account on {r['platform']}",
            description=f"{r['reason_text'] if r.get('reason_text') else r['verdict']}. {REVIEW_NOTE}",
            indicator_types=["malicious-activity" if r["verdict"] == "spam" else "anomalous-activity"],
            pattern=(f"[user-account:user_id = {_pattern_literal(r['account'])} AND "
                     f"user-account:account_type = {_pattern_literal(r['platform'])}]"),
            pattern_type="stix",
            valid_from=valid_from, valid_until=valid_until,
            confidence=int(round(100 * float(r["score"]))),
            labels=[r["verdict"]],
            extensions={STIX_EXTENSION_ID: {
                "extension_type": "property-extension",
                "score": round(float(r["score"]), 6),
                "confidence": round(float(r["confidence"]), 6),
                "reasons": reasons,
                "flagged_on": list(r["flagged_on"] or []),
                "run_id": r["run_id"],
                "schema_version": r["schema_version"],
            }},
        ))
    bundle = stix2.Bundle(objects=objects,
                          id=f"bundle--{uuid.uuid5(STIX_NAMESPACE, 'bundle:' + ','.join(run_ids))}")
    out.write_text(bundle.serialize(pretty=True), encoding="utf-8")
    return len(objects) - 2


def platform_file_name(platform: str) -> str:
    """A file name for ``platform``'s export that no other platform name can give: every character but
    letters, digits, ``-`` and ``_`` percent-encoded (UTF-8), as the Parquet folders' ``platform=…`` are.

    >>> [platform_file_name(p) for p in ("linkup", "a_b", "a~b", "a/b", "..", "fórum")]
    ['linkup', 'a_b', 'a%7Eb', 'a%2Fb', '%2E%2E', 'f%C3%B3rum']
    """
    return "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_" else
                   "".join(f"%{b:02X}" for b in ch.encode()) for ch in platform) or "%"


def write_exports(con: duckdb.DuckDBPyConnection, exports_dir: str | Path,
                  formats: tuple[ExportFormat, ...] = ("parquet",)) -> dict[str, int]:
    """Write the run's exports under ``exports_dir``; returns rows written per output (relative path).

    ``reputation/platform=P/*.parquet``: Hive-partitioned Parquet by platform (DuckDB ``COPY ...
    PARTITION_BY``), so each platform's folder can be handed to that platform alone. Other ``formats``
    (csv, jsonl, stix) are written per platform as ``<fmt>/<platform>.<ext>``.

    Returns
    -------
    dict
        ``{"reputation/platform=P": rows, "stix/P.stix.json": indicators, ...}``.
    """
    root = Path(exports_dir)
    root.mkdir(parents=True, exist_ok=True)
    platforms = dict(con.execute("SELECT platform, count(*) FROM reputation GROUP BY platform ORDER BY platform"
                                 ).fetchall())
    written: dict[str, int] = {}
    if "parquet" in formats:
        target = root / "reputation"
        t = str(target).replace("'", "''")  # our own path, escaped (COPY takes no parameters)
        # the platform column stays in each file too: a file handed on alone still says whose accounts it has
        con.execute(f"COPY (SELECT {', '.join(EXPORT_COLUMNS)} FROM reputation ORDER BY platform, account) "
                    f"TO '{t}' (FORMAT parquet, PARTITION_BY (platform), WRITE_PARTITION_COLUMNS true, "
                    "OVERWRITE_OR_IGNORE true)")
        written.update({f"reputation/platform={p}": int(n) for p, n in platforms.items()})
    ext = {"csv": "csv", "jsonl": "jsonl", "stix": "stix.json"}
    for fmt in formats:
        if fmt == "parquet":
            continue
        for p in platforms:
            rel = f"{fmt}/{platform_file_name(p)}.{ext[fmt]}"
            written[rel] = export_platform(con, p, fmt, root / rel)
    return written
