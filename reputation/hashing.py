"""Personal identifiers: normalisation and keyed hashing (HMAC-SHA256), computed inside DuckDB.

Raw e-mail addresses, phone numbers, IP addresses and device ids never reach the database or an export:
ingest normalises each value (so ``John.Doe+news@Example.com`` and ``john.doe@example.com`` agree) and
stores ``HMAC-SHA256(key, kind ":" normalised)`` as lower-case hex. The kind prefix means a phone number
can never match a device id that happens to have the same digits.

HMAC is computed in SQL with precomputed inner and outer key pads, so hashing ten million values is one
vectorised DuckDB expression rather than a Python loop; :func:`hmac_hex` is the plain-Python reference
the tests check it against.

The key
-------
The key is read from the environment variable named by ``settings.hash_key_env`` (default
``REPUTATION_HASH_KEY``). When that variable is unset and ``settings.require_hash_key`` is false, a random
32-byte key is generated once and kept beside the database in ``<database>.hashkey`` (mode 0600), so hashes
stay comparable between runs; a warning says so. Anyone who has the key can test guesses against the hashes,
so keep it out of the database and out of exports (it is never written to either). With
``require_hash_key = true`` a missing variable is a config error.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from .config import ConfigError, Settings

log = logging.getLogger("reputation")

_BLOCK = 64  # SHA-256 block size in bytes


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_hex(key: bytes, kind: str, normalised: str) -> str:
    """Reference HMAC-SHA256 of ``kind:normalised`` (what the SQL expression computes).

    >>> hmac_hex(b"k", "email", "a@b.c") == hmac_hex(b"k", "email", "a@b.c")
    True
    """
    return hmac.new(key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


def normalise_sql(kind: str, expr: str) -> str:
    """SQL expression normalising identifier ``expr`` of ``kind``; empty results become NULL.

    - email: trimmed, lower-cased, ``+tag`` removed from the local part; dots removed from the local part
      of gmail.com / googlemail.com addresses (they are ignored by that provider).
    - phone: digits only (a leading ``00`` international prefix dropped).
    - ip: trimmed, lower-cased, IPv4-mapped IPv6 (``::ffff:1.2.3.4``) reduced to the IPv4 address.
    - device: trimmed and lower-cased.
    """
    if kind == "email":
        lowered = f"lower(trim({expr}))"
        local = f"regexp_replace(split_part({lowered}, '@', 1), '\\+.*$', '')"
        domain = f"split_part({lowered}, '@', 2)"
        body = (f"CASE WHEN {domain} IN ('gmail.com', 'googlemail.com') "
                f"THEN replace({local}, '.', '') || '@gmail.com' "
                f"WHEN strpos({lowered}, '@') > 0 THEN {local} || '@' || {domain} ELSE {lowered} END")
    elif kind == "phone":
        body = f"regexp_replace(regexp_replace({expr}, '[^0-9]', '', 'g'), '^00', '')"
    elif kind == "ip":
        lowered = f"lower(trim({expr}))"
        body = (f"CASE WHEN starts_with({lowered}, '::ffff:') "
                f"THEN regexp_replace({lowered}, '^::ffff:(\\d+\\.\\d+\\.\\d+\\.\\d+)$', '\\1') ELSE {lowered} END")
    elif kind == "device":
        body = f"lower(trim({expr}))"
    else:
        raise ValueError(f"unknown identifier kind {kind!r}")
    return f"nullif({body}, '')"


def hmac_sql(kind: str, normalised_expr: str, ipad_param: str = "$ipad", opad_param: str = "$opad") -> str:
    """SQL expression of HMAC-SHA256(key, ``kind:value``) as hex; the key pads are named parameters.

    NULL stays NULL.
    """
    inner = f"unhex(sha256({ipad_param} || encode('{kind}:' || {normalised_expr})))"
    return f"CASE WHEN {normalised_expr} IS NULL THEN NULL ELSE sha256({opad_param} || {inner}) END"


def key_pads(key: bytes) -> dict[str, bytes]:
    """The named parameters ``ipad`` and ``opad`` that :func:`hmac_sql` expects."""
    ipad, opad = _pads(key)
    return {"ipad": ipad, "opad": opad}


#: Keys shorter than this (bytes) are warned about: a short key can be guessed, and every hash with it.
MIN_KEY_BYTES = 16


def key_id(key: bytes) -> str:
    """A short public name of the hashing ``key`` (an HMAC of a fixed label under it), recorded in ``runs``:
    two runs' identifier hashes are comparable exactly when their key ids are equal. Like any stored hash of
    a value someone knows, it lets a guessed key be checked, so the key must be long and random (as the
    generated one is); it tells nothing about any identifier.

    >>> key_id(b"k" * 32) == key_id(b"k" * 32) != key_id(b"j" * 32), len(key_id(b"k" * 32))
    (True, 16)
    """
    return hmac.new(key, b"reputation key id", hashlib.sha256).hexdigest()[:16]


def key_file_of(database: Path) -> Path:
    """The key file kept beside ``database`` when no key is given in the environment.

    >>> key_file_of(Path("out/r.duckdb")).name
    'r.duckdb.hashkey'
    """
    return database.with_name(database.name + ".hashkey")


def resolve_key(settings: Settings, database: Path) -> bytes:
    """The hashing key: from the environment, else a key file beside the database (created once).

    An empty key file (every hash would be an unkeyed one, open to guessing) or one that cannot be read is
    a ``ConfigError``; a key shorter than ``MIN_KEY_BYTES`` and a key file that others may read are warned
    about.
    """
    value = os.environ.get(settings.hash_key_env)
    if value is not None and value.strip():
        if len(value.encode()) < MIN_KEY_BYTES:
            log.warning("the key in %s is shorter than %d bytes: hashes made with it are easier to guess",
                        settings.hash_key_env, MIN_KEY_BYTES)
        return value.encode()
    if value is not None:
        log.warning("%s is set but empty: using the key file beside the database", settings.hash_key_env)
    if settings.require_hash_key:
        raise ConfigError("settings.hash_key_env",
                          f"environment variable {settings.hash_key_env} is not set and require_hash_key = true")
    key_file = key_file_of(database)
    if key_file.exists():
        try:
            key = key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError("settings.hash_key_env", f"cannot read the key file {key_file}: {exc}") from None
        if not key:
            raise ConfigError("settings.hash_key_env", f"the key file {key_file} is empty; restore it, or delete "
                              "it to start a new key (every hash then changes)")
        if key_file.stat().st_mode & 0o077:
            log.warning("the key file %s can be read by other users (mode %o): chmod 600 it", key_file,
                        key_file.stat().st_mode & 0o777)
        return key
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    log.warning("%s is not set: generated a hashing key in %s (keep it private; hashes are only comparable "
                "between runs that use the same key)", settings.hash_key_env, key_file)
    return key
