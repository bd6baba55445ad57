"""Config parsing: every error names the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from reputation.config import ConfigError, load_config, parse_config

GOOD = """
[output]
database = "out/r.duckdb"
[settings]
flag_half_life_days = 30
as_of = "2026-02-01T00:00:00Z"
[settings.verdict]
spam = 0.9
[[sources]]
name = "m"
table = "messages"
path = "data/*.csv"
format = "csv"
platform = "p"
[sources.csv]
delimiter = ";"
[sources.columns]
sender = "a"
recipient = "b"
[sources.timestamps]
"""


def test_good_config_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    cfg = parse_config(GOOD, tmp_path / "sub" / "p.toml")
    assert cfg.database == (tmp_path / "sub" / "out" / "r.duckdb").resolve()
    (src,) = cfg.sources
    assert src.pattern == str((tmp_path / "sub" / "data" / "*.csv").resolve())
    assert src.constants == {"platform": "p"} and src.csv.delimiter == ";"
    assert cfg.settings.flag_half_life_days == 30.0 and cfg.settings.verdict.spam == 0.9
    assert str(cfg.settings.as_of) == "2026-02-01 00:00:00"
    assert len(cfg.config_hash) == 64


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (("table = \"messages\"", "table = \"mesages\""), "sources[0] (m).table", "unknown table 'mesages'"),
        (("format = \"csv\"", "format = \"xlsx\""), "sources[0] (m).format", "unknown format 'xlsx'"),
        (("platform = \"p\"\n", ""), "sources[0] (m).columns.platform", "required column"),
        (("sender = \"a\"", "snder = \"a\""), "sources[0] (m).columns.snder", "not a column of table 'messages'"),
        (("flag_half_life_days = 30", "flag_half_life_days = -1"), "settings.flag_half_life_days", "must be > 0"),
        (("flag_half_life_days = 30", "flag_half_life_days = \"x\""), "settings.flag_half_life_days",
         "expected a number"),
        (("spam = 0.9", "spam = 1.9"), "settings.verdict.spam", "must be in 0..1"),
        (("as_of = \"2026-02-01T00:00:00Z\"", "as_of = \"soon\""), "settings.as_of", "not an ISO 8601 time"),
        (("[sources.timestamps]", "[sources.timestamps]\nsender = \"iso8601\""), "sources[0] (m).timestamps.sender",
         "not a time column"),
        (("delimiter = \";\"", "delimiter = \";;\""), "sources[0] (m).csv.delimiter", "must be one character"),
        (("[settings]", "[settings]\nbogus = 1"), "settings.bogus", "unknown key"),
        (("[settings]", "[settings]\nblock_allocator_memory = \"lots\""), "settings.block_allocator_memory",
         "not a size"),
        (("[settings]", "[settings]\nblock_allocator_memory = 4"), "settings.block_allocator_memory",
         "expected a size"),
        (("[settings]", "[settings]\nretain_freed_memory = 1"), "settings.retain_freed_memory",
         "expected true or false"),
        (("[settings]", "[settings]\nmemory_limit = \"lots\""), "settings.memory_limit",
         "not a memory size DuckDB accepts"),
        (("[settings]", "[settings]\nmemory_limit = 8"), "settings.memory_limit", "expected a size"),
        (("[settings]", "formats = [\"parquet\", \"xml\"]\n[settings]"), "output.formats[1]",
         "unknown export format 'xml'"),
        (("flag_half_life_days = 30", "flag_half_life_days = nan"), "settings.flag_half_life_days",
         "must be > 0 and at most"),
        (("flag_half_life_days = 30", "validity_days = 1e300"), "settings.validity_days", "at most 36500 days"),
        (("delimiter = \";\"", "delimiter = \";\"\nquote = \"\""), "sources[0] (m).csv.quote",
         "must be one character"),
        (("delimiter = \";\"", "delimiter = \";\"\nquote = \";\""), "sources[0] (m).csv.quote",
         "must differ from the delimiter"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, change: tuple[str, str], key: str, problem: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "p.toml")
    assert info.value.key == key
    assert problem in str(info.value)


@pytest.mark.parametrize("limit", ["8GB", "4 GiB", "75%", "-1"])
def test_memory_limits_duckdb_accepts_are_kept(tmp_path: Path, limit: str) -> None:
    cfg = parse_config(GOOD.replace("[settings]", f"[settings]\nmemory_limit = \"{limit}\""), tmp_path / "p.toml")
    assert cfg.settings.memory_limit == limit


def test_missing_config_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[output\n", tmp_path / "p.toml")


def test_duplicate_source_names_and_no_messages(tmp_path: Path) -> None:
    src = GOOD[GOOD.index("[[sources]]"):]
    with pytest.raises(ConfigError, match="duplicate source name 'm'"):
        parse_config(GOOD + src, tmp_path / "p.toml")
    flags_only = GOOD.replace('table = "messages"', 'table = "flags"').replace(
        'sender = "a"\nrecipient = "b"', 'account = "a"\nlabel = "b"')
    with pytest.raises(ConfigError, match="no source feeds table 'messages'"):
        parse_config(flags_only, tmp_path / "p.toml")
