"""The hashing key: where it comes from, and the keys that are refused or warned about."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reputation.config import ConfigError, Settings
from reputation.hashing import resolve_key

ENV = "REPUTATION_TEST_HASH_KEY"


def _settings(**kwargs: object) -> Settings:
    return Settings(hash_key_env=ENV, **kwargs)  # type: ignore[arg-type]


def test_without_a_key_one_is_made_once_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    db = tmp_path / "r.duckdb"
    key = resolve_key(_settings(), db)
    key_file = tmp_path / "r.duckdb.hashkey"
    assert len(key) >= 32 and key_file.read_bytes() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert resolve_key(_settings(), db) == key


def test_the_environment_wins_and_a_short_key_is_warned_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(ENV, "a-long-enough-secret-key")
    with caplog.at_level("WARNING", logger="reputation"):
        assert resolve_key(_settings(), tmp_path / "r.duckdb") == b"a-long-enough-secret-key"
    assert not caplog.text and not (tmp_path / "r.duckdb.hashkey").exists()
    monkeypatch.setenv(ENV, "k1")
    with caplog.at_level("WARNING", logger="reputation"):
        resolve_key(_settings(), tmp_path / "r.duckdb")
    assert "shorter than 16 bytes" in caplog.text


def test_an_empty_key_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "")  # set but empty: the key file is used, and it is empty
    (tmp_path / "r.duckdb.hashkey").write_bytes(b"\n")
    with pytest.raises(ConfigError, match="is empty"):
        resolve_key(_settings(), tmp_path / "r.duckdb")


def test_a_key_file_others_can_read_is_warned_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(ENV, raising=False)
    key_file = tmp_path / "r.duckdb.hashkey"
    key_file.write_bytes(b"0123456789abcdef0123456789abcdef")
    key_file.chmod(0o644)
    with caplog.at_level("WARNING", logger="reputation"):
        assert resolve_key(_settings(), tmp_path / "r.duckdb") == b"0123456789abcdef0123456789abcdef"
    assert "can be read by other users (mode 644)" in caplog.text


def test_a_required_key_must_be_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ConfigError, match="require_hash_key = true"):
        resolve_key(_settings(require_hash_key=True), tmp_path / "r.duckdb")
