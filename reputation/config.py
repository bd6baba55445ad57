"""Pipeline configuration: one TOML file describes the inputs, the output and the settings.

The config is the only place that knows a platform's file layout, so a new platform needs no code.
Every error names the offending key and says what is wrong (``ConfigError``; the CLI exits with 2).

Example
-------
.. code-block:: toml

    [output]
    database = "out/reputation.duckdb"     # relative to this file
    exports = "out/exports"
    formats = ["parquet", "stix"]          # parquet | csv | jsonl | stix (default: parquet)

    [settings]
    flag_half_life_days = 90
    hash_key_env = "REPUTATION_HASH_KEY"

    [[sources]]
    name = "linkup_messages"
    table = "messages"                     # messages | accounts | flags | links | overrides
    path = "linkup/messages/*.parquet"     # glob, relative to this file
    format = "parquet"                     # parquet | csv | ndjson
    platform = "linkup"                    # constant; or map it: columns.platform = "network"
    [sources.columns]                      # canonical name = column in the file
    sender = "from_user"
    sent_at = "ts"
    [sources.timestamps]                   # iso8601 | epoch_s | epoch_ms | auto (default)
    sent_at = "iso8601"
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ._memory import parse_bytes
from .schema import INPUT_TABLES

SourceFormat = Literal["parquet", "csv", "ndjson"]
TimestampFormat = Literal["auto", "iso8601", "epoch_s", "epoch_ms"]
FORMATS: tuple[str, ...] = ("parquet", "csv", "ndjson")
#: Formats a run can write its exports in (see :mod:`reputation.export`).
EXPORT_FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl", "stix")
#: Longest platform name (UTF-8 bytes). Each platform names its export files (``platform=P/``,
#: ``stix/P.stix.json``), percent-encoded at up to 3 bytes per byte, and a file name holds 255 bytes.
MAX_PLATFORM_BYTES = 80
#: The longest half-life, expiry or validity window a config may give (a century).
MAX_DAYS = 36_500
TIMESTAMP_FORMATS: tuple[str, ...] = ("auto", "iso8601", "epoch_s", "epoch_ms")


class ConfigError(ValueError):
    """A config file is unreadable or wrong; the message names the key and the problem."""

    def __init__(self, key: str, problem: str, path: Path | str | None = None):
        where = f"{path}: " if path else ""
        super().__init__(f"{where}config key '{key}': {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class CsvOptions:
    """CSV reading options."""

    delimiter: str = ","
    header: bool = True
    quote: str = '"'


@dataclass(frozen=True)
class Source:
    """One input source: a file set mapped onto a canonical table."""

    name: str
    table: str
    path: str
    format: SourceFormat
    base_dir: Path
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    timestamps: dict[str, TimestampFormat] = field(default_factory=dict)
    csv: CsvOptions = field(default_factory=CsvOptions)

    @property
    def full_path(self) -> str:
        """``path`` made absolute against the config's folder, as written (for messages)."""
        return os.path.normpath(os.path.join(self.base_dir.resolve(), self.path))

    @property
    def pattern(self) -> str:
        """The absolute path or glob of the source's files; the config's folder is taken literally (a
        folder named ``data [2]`` is no pattern), only ``path`` may hold glob patterns."""
        if Path(self.path).is_absolute():
            return str(Path(self.path))
        return os.path.normpath(os.path.join(glob.escape(str(self.base_dir.resolve())), self.path))

    def timestamp_format(self, column: str) -> TimestampFormat:
        return self.timestamps.get(column, "auto")


@dataclass(frozen=True)
class VerdictThresholds:
    """Score thresholds of the verdicts: score ≥ spam → spam, ≥ suspicious → suspicious."""

    spam: float = 0.8
    suspicious: float = 0.5
    min_confidence: float = 0.2


@dataclass(frozen=True)
class Settings:
    """Run settings. ``as_of`` None means: the latest message time in the input (reproducible); a pinned
    ``as_of`` replays that moment (flags and overrides dated after it are left out)."""

    as_of: datetime | None = None
    flag_half_life_days: float = 90.0
    flag_expiry_days: float = 365.0
    validity_days: float = 30.0
    hash_key_env: str = "REPUTATION_HASH_KEY"
    require_hash_key: bool = False
    max_text_chars: int = 100_000
    allow_empty: bool = False
    verdict: VerdictThresholds = field(default_factory=VerdictThresholds)
    memory_limit: str | None = None
    threads: int | None = None
    block_allocator_memory: str = "auto"
    retain_freed_memory: bool = True


@dataclass(frozen=True)
class Config:
    """A parsed, validated pipeline config."""

    path: Path
    database: Path
    exports: Path
    settings: Settings
    sources: tuple[Source, ...]
    text: str
    export_formats: tuple[str, ...] = ("parquet",)

    @property
    def config_hash(self) -> str:
        """SHA-256 over the config text and the resolved settings."""
        h = hashlib.sha256(self.text.encode())
        h.update(json.dumps(asdict(self.settings), default=str, sort_keys=True).encode())
        return h.hexdigest()


def _expect(value: Any, typ: type | tuple[type, ...], key: str, what: str, path: Path) -> Any:
    if not isinstance(value, typ) or (isinstance(value, bool) and bool not in _as_tuple(typ)):
        raise ConfigError(key, f"expected {what}, got {type(value).__name__} {value!r}", path)
    return value


def _as_tuple(typ: type | tuple[type, ...]) -> tuple[type, ...]:
    return typ if isinstance(typ, tuple) else (typ,)


def _check_keys(table: dict[str, Any], allowed: set[str], prefix: str, path: Path) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{prefix}{key}", f"unknown key; expected one of {sorted(allowed)}", path)


def _parse_time(value: Any, key: str, path: Path) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(key, f"not an ISO 8601 time: {value!r}", path) from None
    else:
        raise ConfigError(key, f"expected an ISO 8601 time, got {value!r}", path)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def _checked_memory_limit(value: str, key: str, path: Path) -> str:
    """``value`` if DuckDB accepts it as ``memory_limit`` (asked of a throwaway in-memory database, so
    that a typo fails here, naming the key, and not in the middle of a run)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = ?", [value])
    except duckdb.Error as exc:
        raise ConfigError(key, f"not a memory size DuckDB accepts ({exc}); e.g. \"8GB\" or \"75%\"",
                          path) from None
    finally:
        con.close()
    return value


def _parse_settings(raw: dict[str, Any], path: Path) -> Settings:
    allowed = {f for f in Settings.__dataclass_fields__}
    _check_keys(raw, allowed, "settings.", path)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        full = f"settings.{key}"
        if key == "as_of":
            kwargs[key] = _parse_time(value, full, path)
        elif key in ("flag_half_life_days", "flag_expiry_days", "validity_days"):
            _expect(value, (int, float), full, "a number of days", path)
            if not 0 < value <= MAX_DAYS:  # also refuses nan (TOML has nan and inf)
                raise ConfigError(full, f"must be > 0 and at most {MAX_DAYS} days, got {value}", path)
            kwargs[key] = float(value)
        elif key == "hash_key_env":
            kwargs[key] = _expect(value, str, full, "a string", path)
        elif key == "memory_limit":
            _expect(value, str, full, 'a size such as "8GB" or "75%"', path)
            kwargs[key] = _checked_memory_limit(value, full, path)
        elif key == "block_allocator_memory":
            _expect(value, str, full, 'a size such as "4GB", "0" or "auto"', path)
            if value.strip().lower() != "auto":
                try:
                    parse_bytes(value)
                except ValueError as e:
                    raise ConfigError(full, str(e), path) from None
            kwargs[key] = value
        elif key in ("require_hash_key", "allow_empty", "retain_freed_memory"):
            kwargs[key] = _expect(value, bool, full, "true or false", path)
        elif key in ("max_text_chars", "threads"):
            _expect(value, int, full, "an integer", path)
            if value <= 0:
                raise ConfigError(full, f"must be > 0, got {value}", path)
            kwargs[key] = value
        elif key == "verdict":
            _expect(value, dict, full, "a table", path)
            _check_keys(value, set(VerdictThresholds.__dataclass_fields__), "settings.verdict.", path)
            for k, v in value.items():
                _expect(v, (int, float), f"settings.verdict.{k}", "a number in 0..1", path)
                if not 0 <= v <= 1:
                    raise ConfigError(f"settings.verdict.{k}", f"must be in 0..1, got {v}", path)
            thresholds = VerdictThresholds(**{k: float(v) for k, v in value.items()})
            if thresholds.suspicious > thresholds.spam:
                raise ConfigError("settings.verdict.suspicious", "must not exceed settings.verdict.spam", path)
            kwargs[key] = thresholds
    return Settings(**kwargs)


def _str_map(value: Any, key: str, path: Path) -> dict[str, str]:
    _expect(value, dict, key, "a table of name = value", path)
    out = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ConfigError(f"{key}.{k}", f"expected a string, got {v!r}", path)
        out[k] = str(v)
    return out


def _parse_source(raw: Any, index: int, base_dir: Path, path: Path) -> Source:
    prefix = f"sources[{index}]"
    _expect(raw, dict, prefix, "a table", path)
    allowed = {"name", "table", "path", "format", "platform", "columns", "constants", "timestamps", "csv"}
    _check_keys(raw, allowed, f"{prefix}.", path)
    for key in ("name", "table", "path", "format"):
        if key not in raw:
            raise ConfigError(f"{prefix}.{key}", "is required", path)
        _expect(raw[key], str, f"{prefix}.{key}", "a string", path)
    name = raw["name"]
    prefix = f"sources[{index}] ({name})"
    table = raw["table"]
    if table not in INPUT_TABLES:
        raise ConfigError(f"{prefix}.table", f"unknown table {table!r}; expected one of {sorted(INPUT_TABLES)}",
                          path)
    fmt = raw["format"]
    if fmt not in FORMATS:
        raise ConfigError(f"{prefix}.format", f"unknown format {fmt!r}; expected one of {list(FORMATS)}", path)
    canon = INPUT_TABLES[table]
    columns = _str_map(raw.get("columns", {}), f"{prefix}.columns", path)
    constants = _str_map(raw.get("constants", {}), f"{prefix}.constants", path)
    if "platform" in raw:
        constants["platform"] = _expect(raw["platform"], str, f"{prefix}.platform", "a string", path)
    if len(constants.get("platform", "").encode()) > MAX_PLATFORM_BYTES:
        raise ConfigError(f"{prefix}.platform", f"is longer than {MAX_PLATFORM_BYTES} bytes (UTF-8), too long "
                          "to name its export files", path)
    for section, mapping in (("columns", columns), ("constants", constants)):
        for col in mapping:
            if col not in canon.names:
                raise ConfigError(f"{prefix}.{section}.{col}",
                                  f"not a column of table {table!r}; expected one of {list(canon.names)}", path)
    both = set(columns) & set(constants)
    if both:
        col = sorted(both)[0]
        raise ConfigError(f"{prefix}.columns.{col}", "is given both as a file column and as a constant", path)
    for col in canon.required:
        if col not in columns and col not in constants:
            hint = " (set platform = \"...\" or map columns.platform)" if col == "platform" else ""
            raise ConfigError(f"{prefix}.columns.{col}", f"required column of table {table!r} is not mapped{hint}",
                              path)
    timestamps_raw = _str_map(raw.get("timestamps", {}), f"{prefix}.timestamps", path)
    timestamps: dict[str, TimestampFormat] = {}
    for col, tfmt in timestamps_raw.items():
        if col not in canon.names or canon.column(col).kind != "time":
            times = [c.name for c in canon.columns if c.kind == "time"]
            raise ConfigError(f"{prefix}.timestamps.{col}", f"not a time column of {table!r}; expected one of {times}",
                              path)
        if tfmt not in TIMESTAMP_FORMATS:
            raise ConfigError(f"{prefix}.timestamps.{col}",
                              f"unknown timestamp format {tfmt!r}; expected one of {list(TIMESTAMP_FORMATS)}", path)
        timestamps[col] = tfmt  # type: ignore[assignment]
    csv_raw = raw.get("csv", {})
    _expect(csv_raw, dict, f"{prefix}.csv", "a table", path)
    _check_keys(csv_raw, {"delimiter", "header", "quote"}, f"{prefix}.csv.", path)
    csv = CsvOptions(
        delimiter=_expect(csv_raw.get("delimiter", ","), str, f"{prefix}.csv.delimiter", "a string", path),
        header=_expect(csv_raw.get("header", True), bool, f"{prefix}.csv.header", "true or false", path),
        quote=_expect(csv_raw.get("quote", '"'), str, f"{prefix}.csv.quote", "a string", path),
    )
    if len(csv.delimiter) != 1 and csv.delimiter != "\\t":
        raise ConfigError(f"{prefix}.csv.delimiter", f"must be one character, got {csv.delimiter!r}", path)
    if len(csv.quote) != 1:
        raise ConfigError(f"{prefix}.csv.quote", f"must be one character, got {csv.quote!r}", path)
    if csv.quote == csv.delimiter:
        raise ConfigError(f"{prefix}.csv.quote", f"must differ from the delimiter {csv.delimiter!r}", path)
    if not csv.header and fmt == "csv":
        bad = [v for v in columns.values() if not (v.startswith("column") and v[6:].isdigit())]
        if bad:
            raise ConfigError(f"{prefix}.columns", f"a CSV without header names its columns column0, column1, ...; "
                              f"got {bad[0]!r}", path)
    return Source(name=name, table=table, path=raw["path"], format=fmt, base_dir=base_dir,  # type: ignore[arg-type]
                  columns=columns, constants=constants, timestamps=timestamps, csv=csv)


def parse_config(text: str, path: Path | str) -> Config:
    """Parse and validate config ``text`` read from ``path`` (relative paths resolve against its folder)."""
    path = Path(path).resolve()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(file)", f"not valid TOML: {exc}", path) from None
    _check_keys(raw, {"output", "settings", "sources"}, "", path)
    base = path.parent
    output = raw.get("output", {})
    _expect(output, dict, "output", "a table", path)
    _check_keys(output, {"database", "exports", "formats"}, "output.", path)
    database = Path(_expect(output.get("database", "out/reputation.duckdb"), str, "output.database", "a path", path))
    exports = Path(_expect(output.get("exports", "out/exports"), str, "output.exports", "a path", path))
    formats = _expect(output.get("formats", ["parquet"]), list, "output.formats", 'a list such as ["parquet", "stix"]',
                      path)
    for i, fmt in enumerate(formats):
        if fmt not in EXPORT_FORMATS:
            raise ConfigError(f"output.formats[{i}]", f"unknown export format {fmt!r}; expected one of "
                              f"{list(EXPORT_FORMATS)}", path)
    settings = _parse_settings(_expect(raw.get("settings", {}), dict, "settings", "a table", path), path)
    sources_raw = raw.get("sources")
    if not sources_raw:
        raise ConfigError("sources", "at least one [[sources]] entry is required", path)
    _expect(sources_raw, list, "sources", "an array of tables ([[sources]])", path)
    sources = tuple(_parse_source(s, i, base, path) for i, s in enumerate(sources_raw))
    seen: set[str] = set()
    for i, s in enumerate(sources):
        if s.name in seen:
            raise ConfigError(f"sources[{i}].name", f"duplicate source name {s.name!r}", path)
        seen.add(s.name)
    if not any(s.table == "messages" for s in sources):
        raise ConfigError("sources", "no source feeds table 'messages'", path)
    return Config(
        path=path,
        database=database if database.is_absolute() else (base / database).resolve(),
        exports=exports if exports.is_absolute() else (base / exports).resolve(),
        settings=settings,
        sources=sources,
        text=text,
        export_formats=tuple(dict.fromkeys(["parquet", *formats])),  # the Parquet folders always
    )


def load_config(path: Path | str) -> Config:
    """Read and validate the config file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("(file)", "config file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("(file)", f"cannot read config: {exc}", path) from None
    return parse_config(text, path)
