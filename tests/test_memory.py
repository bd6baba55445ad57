"""Freed memory kept for reuse: glibc's malloc (process-wide) and DuckDB's block allocator (per database)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from reputation._memory import block_allocator_bytes, parse_bytes
from reputation.config import ConfigError, Settings
from reputation.pipeline import open_build_connection

# Allocates, frees and allocates again a 256 MiB array; prints the page faults of the second allocation.
_REFAULTS = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from reputation._memory import retain_freed_memory
    applied = retain_freed_memory() if sys.argv[1] == "retain" else None
    a = np.ones(1 << 25); del a
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = np.ones(1 << 25)
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _refaults(mode: str) -> tuple[str, int]:
    # without transparent huge pages, so that one page fault is one 4 KiB page
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}
    out = subprocess.run([sys.executable, "-c", _REFAULTS, mode], capture_output=True, text=True, check=True,
                         env=env)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retained_memory_is_reused_without_faulting_pages_in_again() -> None:
    applied, retained = _refaults("retain")
    _, default = _refaults("default")
    if applied != "True":
        pytest.skip("not glibc")
    pages = (8 << 25) // 4096
    assert default > pages // 2  # by default the freed array was unmapped: every page faults again
    assert retained < pages // 20


def test_sizes_parse_as_duckdb_writes_them() -> None:
    assert parse_bytes("18.8 GiB") == int(18.8 * 2**30)
    assert parse_bytes("512.0 MiB") == 512 * 2**20
    assert parse_bytes("4GB") == 4 * 10**9 and parse_bytes("123B") == 123 and parse_bytes("0") == 0
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes("4 parsecs")
    assert block_allocator_bytes("auto", 8 * 2**30) == 2 * 2**30
    assert block_allocator_bytes("AUTO ", 0) == 0 and block_allocator_bytes("1MiB", 8 * 2**30) == 2**20
    # an unlimited memory limit reads as 16383.9 PiB: auto then takes a quarter of the physical memory
    assert parse_bytes("16383.9 PiB") > 2**63
    assert block_allocator_bytes("auto", parse_bytes("16383.9 PiB"), physical_bytes=16 * 2**30) == 4 * 2**30


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> int:
    return parse_bytes(con.execute("SELECT current_setting($n)", {"n": name}).fetchall()[0][0])


def test_build_connection_sizes_the_block_allocator_and_never_lowers_it(tmp_path: Path) -> None:
    con = open_build_connection(tmp_path / "a.duckdb", Settings(memory_limit="2GB"))
    limit = _setting(con, "memory_limit")
    assert _setting(con, "block_allocator_memory") == pytest.approx(limit / 4, rel=0.01)
    # the same file again in this process is the same instance: a smaller size must not fail or lower it
    again = open_build_connection(tmp_path / "a.duckdb", Settings(memory_limit="2GB", block_allocator_memory="1MB"))
    assert _setting(again, "block_allocator_memory") == pytest.approx(limit / 4, rel=0.01)
    bigger = open_build_connection(tmp_path / "a.duckdb", Settings(memory_limit="2GB", block_allocator_memory="1GB"))
    assert _setting(bigger, "block_allocator_memory") == pytest.approx(10**9, rel=0.01)
    off = open_build_connection(tmp_path / "b.duckdb", Settings(block_allocator_memory="0"))
    assert _setting(off, "block_allocator_memory") == 0
    for c in (con, again, bigger, off):
        c.close()


def test_unlimited_memory_works_and_a_refused_size_is_a_config_error(tmp_path: Path) -> None:
    con = open_build_connection(tmp_path / "a.duckdb", Settings(memory_limit="-1"))
    assert 0 < _setting(con, "block_allocator_memory") < 2**50
    con.close()
    with pytest.raises(ConfigError, match="settings.block_allocator_memory") as info:
        open_build_connection(tmp_path / "b.duckdb", Settings(memory_limit="1GB", block_allocator_memory="50TB"))
    assert "DuckDB refuses '50TB'" in str(info.value)
