"""Keep freed memory inside the process for reuse, instead of handing it back to the kernel.

A pipeline run allocates and frees arrays of hundreds of megabytes stage after stage: numpy's through the C
library's ``malloc``, DuckDB's buffer blocks through its own allocator. By default both give large freed
blocks straight back to the kernel (glibc serves every allocation above 32 MiB with its own ``mmap``
and unmaps it on ``free``), so the next array of that size is mapped afresh and the kernel zeroes every
4 KiB page of it on first touch. On a 10M-message world that was 4.2M page faults and 17 s of the run's
system time.

Two switches keep the memory for reuse within the run:

- :func:`retain_freed_memory`: glibc's ``mallopt`` serves large allocations from the heap and stops
  trimming freed memory off its top, process-wide (a batch run owns its process);
- :func:`block_allocator_bytes`: DuckDB's ``block_allocator_memory`` (physical memory its block allocator
  keeps once touched, per database instance), sized from the memory limit.

Measured together on the 10M world (``benchmarks/HISTORY.md``, eighth pass): page faults 4.2M → 2.0M,
system time 17 → 12 s, wall 76 → 71 s; peak RSS +0.5 GiB (+1.2 GiB at 30M messages).
"""

from __future__ import annotations

import ctypes
import os
import re

# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: ``mallopt`` takes an ``int``: freed memory at the heap's top is returned only beyond 2 GiB.
_TRIM_THRESHOLD_BYTES = 2**31 - 1

# DuckDB's units, and the bare K, M, G of Linux sysfs (cache sizes such as "2048K"), which are binary
_UNITS = {"": 1, "B": 1, "BYTES": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "PB": 1000**5, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40, "PIB": 1 << 50,
          "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")

#: The fraction of DuckDB's memory limit its block allocator may keep when the setting is ``"auto"``.
AUTO_BLOCK_ALLOCATOR_SHARE = 0.25


def retain_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse in this process; False where it cannot (no glibc).

    Large allocations then come from the heap instead of a fresh ``mmap`` each, and the heap is trimmed
    only when more than 2 GiB lie free at its top. The process's peak RSS can grow by what the heap keeps
    between stages (with the DuckDB block allocator's share, +0.5 GiB at 10M messages); nothing is lost,
    the memory is reused by the next allocation. Idempotent.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl and macOS have other allocators)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES))


def parse_bytes(size: str) -> int:
    """Bytes in a DuckDB-style size (``"16GB"``, ``"18.7 GiB"``, ``"512.0 MiB"``, ``"0 bytes"``), or a sysfs
    one (``"2048K"``, binary).

    >>> parse_bytes("1.5 KiB"), parse_bytes("2GB"), parse_bytes("0 bytes"), parse_bytes("2048K")
    (1536, 2000000000, 0, 2097152)
    """
    m = _SIZE.match(size)
    unit = _UNITS.get(m.group(2).upper()) if m else None
    if m is None or unit is None:
        raise ValueError(f"not a size: {size!r} (expected a number and a unit such as MB, GB, MiB or GiB)")
    return int(float(m.group(1)) * unit)


def physical_memory_bytes() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def block_allocator_bytes(setting: str, memory_limit_bytes: int, physical_bytes: int | None = None) -> int:
    """The ``block_allocator_memory`` to give DuckDB for the config's setting.

    ``"auto"`` is :data:`AUTO_BLOCK_ALLOCATOR_SHARE` of the memory limit, or of the physical memory
    where that is smaller (an unlimited ``memory_limit = "-1"`` reads as 16383.9 PiB); ``"0"`` turns the
    block allocator off (DuckDB's default); anything else is a size.

    >>> block_allocator_bytes("auto", 16 * 2**30) == 4 * 2**30, block_allocator_bytes("1GB", 0)
    (True, 1000000000)
    >>> block_allocator_bytes("auto", 2**60, physical_bytes=8 * 2**30) == 2 * 2**30
    True
    """
    if setting.strip().lower() == "auto":
        base = min(memory_limit_bytes, physical_bytes) if physical_bytes else memory_limit_bytes
        return int(base * AUTO_BLOCK_ALLOCATOR_SHARE)
    return parse_bytes(setting)
