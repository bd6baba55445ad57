"""The canonical schema: input tables, stored tables and output tables, in one place.

Every other module takes table and column names from here, and the store writes ``COMMENT ON``
documentation from the docs below, so an analyst running ``duckdb_columns()`` reads the same text.

Input tables (DESIGN.md §3) are what a config maps file columns onto. ``INPUT_TABLES[name].columns``
lists the canonical columns with their logical kind; ingest validates each kind:

- ``id``: non-empty text after trimming (account ids, platform names, channels).
- ``text``: free text, may be empty; NUL bytes and over-long values are quarantined.
- ``time``: parsed to a UTC ``TIMESTAMP`` (ISO 8601, epoch seconds or milliseconds).
- ``number``: a ``DOUBLE``.
- ``identifier``: a personal identifier (email, phone, ip, device): normalised, then stored only as a
  keyed hash in a column named ``<name>_hash``.
- ``label``: one of a closed vocabulary.

Example
-------
>>> INPUT_TABLES["flags"].required
('platform', 'account', 'label')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnKind = Literal["id", "text", "time", "number", "identifier", "label"]
SourceTable = Literal["messages", "accounts", "flags", "links", "overrides"]

SCHEMA_VERSION = "1.0"
FLAG_LABELS = ("spam", "clean")
OVERRIDE_DECISIONS = ("spam", "clean")
VERDICTS = ("spam", "suspicious", "clean", "unknown")
IDENTIFIER_KINDS = ("email", "phone", "ip", "device")


@dataclass(frozen=True)
class InputColumn:
    """One canonical column of an input table."""

    name: str
    kind: ColumnKind
    required: bool
    doc: str


@dataclass(frozen=True)
class InputTable:
    """A canonical input table that sources in a config feed."""

    name: SourceTable
    doc: str
    columns: tuple[InputColumn, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> InputColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name: str, kind: ColumnKind, required: bool, doc: str) -> InputColumn:
    return InputColumn(name, kind, required, doc)


INPUT_TABLES: dict[str, InputTable] = {
    "messages": InputTable(
        "messages",
        "Messages sent on a platform: a direct message (recipient), a post (channel), or both.",
        (
            _c("platform", "id", True, "Platform the message was sent on."),
            _c("sender", "id", True, "Sending account id on that platform."),
            _c("recipient", "id", False, "Receiving account id for a direct message."),
            _c("channel", "id", False, "Group, thread or video the message was posted in."),
            _c("sent_at", "time", False, "When the message was sent (UTC)."),
            _c("text", "text", False, "Message body."),
            _c("message_id", "id", False, "Platform message id; unique per platform."),
            _c("device", "identifier", False, "Device id of the sender (stored hashed)."),
            _c("ip", "identifier", False, "IP address of the sender (stored hashed)."),
            _c("url", "text", False, "A URL the message carried."),
        ),
    ),
    "accounts": InputTable(
        "accounts",
        "Account directory of a platform.",
        (
            _c("platform", "id", True, "Platform of the account."),
            _c("account", "id", True, "Account id on that platform."),
            _c("created_at", "time", False, "When the account was registered (UTC)."),
            _c("handle", "text", False, "Public handle / username."),
            _c("display_name", "text", False, "Display name."),
            _c("email", "identifier", False, "E-mail address (stored hashed)."),
            _c("phone", "identifier", False, "Phone number (stored hashed)."),
        ),
    ),
    "flags": InputTable(
        "flags",
        "Moderation labels: an account judged spam (or verified clean) on one platform.",
        (
            _c("platform", "id", True, "Platform whose moderators or users flagged the account."),
            _c("account", "id", True, "Flagged account id."),
            _c("label", "label", True, "spam or clean."),
            _c("flagged_at", "time", False, "When the flag was raised (UTC)."),
            _c("source", "text", False, "Who raised it (user_reports, moderator, ...)."),
            _c("confidence", "number", False, "Confidence of the flag in 0..1 (default 1)."),
        ),
    ),
    "links": InputTable(
        "links",
        "Known same-person account pairs (user-declared connected accounts, investigations).",
        (
            _c("platform_a", "id", True, "Platform of the first account."),
            _c("account_a", "id", True, "First account id."),
            _c("platform_b", "id", True, "Platform of the second account."),
            _c("account_b", "id", True, "Second account id."),
            _c("source", "text", False, "Where the link comes from."),
        ),
    ),
    "overrides": InputTable(
        "overrides",
        "Analyst decisions that win over all evidence.",
        (
            _c("platform", "id", True, "Platform of the account."),
            _c("account", "id", True, "Account id."),
            _c("decision", "label", True, "spam or clean."),
            _c("reason", "text", False, "Why the analyst decided so."),
            _c("author", "text", False, "Who decided."),
            _c("decided_at", "time", False, "When (UTC)."),
        ),
    ),
}

LABEL_VOCABULARY: dict[tuple[str, str], tuple[str, ...]] = {
    ("flags", "label"): FLAG_LABELS,
    ("overrides", "decision"): OVERRIDE_DECISIONS,
}


@dataclass(frozen=True)
class StoredTable:
    """A table the pipeline writes, with its DDL columns and documentation."""

    name: str
    doc: str
    columns: tuple[tuple[str, str, str], ...]  # (name, duckdb type, doc)
    compression: tuple[tuple[str, str], ...] = ()
    """(column, DuckDB compression method) where the automatic choice is the worse one: message bodies
    compress to about half the size with zstd and cost about 40% less CPU to store than with the
    dictionary + FSST DuckDB picks for short strings, and scan as fast (measured on 2M messages)."""

    def ddl(self) -> str:
        """``CREATE TABLE`` statement of the table (with any column compression it asks for).

        >>> STORED_TABLES["messages"].ddl().count("USING COMPRESSION zstd")
        1
        """
        method = dict(self.compression)
        cols = ",\n  ".join(f"{n} {t}" + (f" USING COMPRESSION {method[n]}" if n in method else "")
                             for n, t, _ in self.columns)
        return f"CREATE TABLE {self.name} (\n  {cols}\n)"


RUN_ID = ("run_id", "VARCHAR", "Run that wrote this row (see runs).")

STORED_TABLES: dict[str, StoredTable] = {
    t.name: t
    for t in (
        StoredTable(
            "runs",
            "One row per pipeline run, published or failed. Only rows with status = 'complete' are "
            "trusted; the published database's results were written by its latest complete run.",
            (
                RUN_ID,
                ("started_at", "TIMESTAMP", "When the run started (UTC)."),
                ("finished_at", "TIMESTAMP", "When it finished (UTC), null while running."),
                ("status", "VARCHAR", "running, complete or failed."),
                ("config_path", "VARCHAR", "Config file the run read."),
                ("config_hash", "VARCHAR", "SHA-256 of the config file and its resolved settings."),
                ("as_of", "TIMESTAMP", "Reference time for decay and validity (UTC)."),
                ("rows_read", "BIGINT", "Input rows read over all sources."),
                ("rows_stored", "BIGINT", "Input rows stored in canonical tables."),
                ("rows_quarantined", "BIGINT", "Input rows sent to quarantine."),
                ("error", "VARCHAR", "Error message of a failed run."),
                ("tool_version", "VARCHAR", "reputation package version."),
                ("key_id", "VARCHAR", "Names the hashing key (an HMAC of a fixed label under it): identifier "
                 "hashes of two runs are comparable exactly when their key ids are equal."),
            ),
        ),
        StoredTable(
            "run_sources",
            "Per run and source: rows read = rows stored + rows quarantined.",
            (
                RUN_ID,
                ("source", "VARCHAR", "Source name from the config."),
                ("target_table", "VARCHAR", "Canonical table the source feeds."),
                ("files", "BIGINT", "Files matched by the source's path."),
                ("rows_read", "BIGINT", "Rows read from the files."),
                ("rows_stored", "BIGINT", "Rows stored."),
                ("rows_quarantined", "BIGINT", "Rows quarantined."),
            ),
        ),
        StoredTable(
            "stage_metrics",
            "Wall time, output rows, peak memory and kernel compile time of every stage of a run.",
            (
                RUN_ID,
                ("stage", "VARCHAR", "Stage name."),
                ("seconds", "DOUBLE", "Wall time in seconds."),
                ("rows_out", "BIGINT", "Rows the stage wrote."),
                ("peak_rss_mb", "DOUBLE", "Peak resident memory of the process so far, MiB."),
                ("compile_seconds", "DOUBLE", "Of those seconds, compiling numba kernels: 0 once they are cached "
                 "on the machine; the first run of a version (or on a new CPU) compiles them."),
            ),
        ),
        StoredTable(
            "quarantine",
            "Input rows that failed validation, with the reason. Nothing is dropped silently.",
            (
                RUN_ID,
                ("source", "VARCHAR", "Source name from the config."),
                ("file", "VARCHAR", "Input file."),
                ("row_number", "BIGINT", "1-based data row in the file (header excluded)."),
                ("field", "VARCHAR", "Canonical field that failed, or null for a whole-row problem."),
                ("reason", "VARCHAR", "Why the row was not stored."),
                ("raw", "VARCHAR", "The raw row (identifier fields masked)."),
            ),
        ),
        StoredTable(
            "messages",
            "Canonical messages. Personal identifiers only as keyed hashes.",
            (
                RUN_ID,
                ("platform", "VARCHAR", "Platform."),
                ("sender", "VARCHAR", "Sending account id."),
                ("recipient", "VARCHAR", "Receiving account id (direct message) or null."),
                ("channel", "VARCHAR", "Channel / thread / group or null."),
                ("sent_at", "TIMESTAMP", "Send time (UTC)."),
                ("text", "VARCHAR", "Message body."),
                ("message_id", "VARCHAR", "Platform message id."),
                ("device_hash", "VARCHAR", "HMAC-SHA256 of the normalised device id."),
                ("ip_hash", "VARCHAR", "HMAC-SHA256 of the normalised IP address."),
                ("url", "VARCHAR", "URL carried by the message."),
                ("url_domain", "VARCHAR", "Lower-cased host of url (or of the first URL in text)."),
                ("source", "VARCHAR", "Config source the row came from."),
                ("source_file", "VARCHAR", "Input file the row came from."),
                ("source_row", "BIGINT", "1-based data row in that file."),
            ),
            compression=(("text", "zstd"),),
        ),
        StoredTable(
            "accounts",
            "Every account seen anywhere (directory, messages, flags, links): one row per "
            "(platform, account).",
            (
                RUN_ID,
                ("platform", "VARCHAR", "Platform."),
                ("account", "VARCHAR", "Account id."),
                ("created_at", "TIMESTAMP", "Registration time (UTC), if known."),
                ("handle", "VARCHAR", "Handle / username."),
                ("display_name", "VARCHAR", "Display name."),
                ("email_hash", "VARCHAR", "HMAC-SHA256 of the normalised e-mail."),
                ("phone_hash", "VARCHAR", "HMAC-SHA256 of the normalised phone number."),
                ("in_directory", "BOOLEAN", "True when an accounts source listed it."),
            ),
        ),
        StoredTable(
            "flags",
            "Moderation labels as ingested.",
            (
                RUN_ID,
                ("platform", "VARCHAR", "Platform that flagged."),
                ("account", "VARCHAR", "Flagged account."),
                ("label", "VARCHAR", "spam or clean."),
                ("flagged_at", "TIMESTAMP", "When (UTC)."),
                ("source", "VARCHAR", "Who raised it."),
                ("confidence", "DOUBLE", "Confidence 0..1."),
            ),
        ),
        StoredTable(
            "known_links",
            "Known same-person pairs as ingested (input, not scored).",
            (
                RUN_ID,
                ("platform_a", "VARCHAR", "Platform of the first account."),
                ("account_a", "VARCHAR", "First account."),
                ("platform_b", "VARCHAR", "Platform of the second account."),
                ("account_b", "VARCHAR", "Second account."),
                ("source", "VARCHAR", "Where the link comes from."),
            ),
        ),
        StoredTable(
            "overrides",
            "Analyst decisions, which win over all evidence.",
            (
                RUN_ID,
                ("platform", "VARCHAR", "Platform."),
                ("account", "VARCHAR", "Account."),
                ("decision", "VARCHAR", "spam or clean."),
                ("reason", "VARCHAR", "Why."),
                ("author", "VARCHAR", "Who."),
                ("decided_at", "TIMESTAMP", "When (UTC)."),
            ),
        ),
        StoredTable(
            "identifiers",
            "Personal identifier hashes per account, with how many accounts share each value.",
            (
                RUN_ID,
                ("platform", "VARCHAR", "Platform."),
                ("account", "VARCHAR", "Account."),
                ("kind", "VARCHAR", "email, phone, ip or device."),
                ("value_hash", "VARCHAR", "HMAC-SHA256 of the normalised value."),
                ("uses", "BIGINT", "Messages or directory rows in which the account used it."),
                ("accounts_sharing", "BIGINT", "Distinct accounts (all platforms) using this value."),
            ),
        ),
    )
}


def input_table(name: str) -> InputTable:
    """The canonical input table ``name``; raises ``KeyError`` with the valid names."""
    try:
        return INPUT_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; expected one of {sorted(INPUT_TABLES)}") from None
