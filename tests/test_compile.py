"""The compile timer: what numba compiles during a run, and what a warm cache spares."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from reputation._compile import CompileTimer


def test_compile_timer_names_the_outermost_compiles_only() -> None:
    from numba import njit

    @njit
    def helper(x: int) -> int:
        return x + 1

    @njit
    def kernel(x: int) -> int:
        return helper(x) * 2

    with CompileTimer() as compiled:
        assert kernel(3) == 8
    # the helper is compiled inside the kernel's compile: timed once, named under the kernel
    assert compiled.functions == [f"{__name__}.test_compile_timer_names_the_outermost_compiles_only.<locals>.kernel"]
    assert compiled.seconds > 0
    with CompileTimer() as again:
        kernel(4)  # the same types: dispatched, not compiled
        kernel(2.5)  # a new type: compiled again
    assert len(again.functions) == 1 and again.seconds > 0


COLD_CHILD = """
from reputation._compile import CompileTimer
with CompileTimer() as compiled:
    import cold_kernel
    cold_kernel.f(2)
print(len(compiled.functions))
"""


def test_an_empty_numba_cache_dir_makes_the_next_process_compile_and_the_one_after_load(tmp_path: Path) -> None:
    # what the cold start of benchmarks.perf relies on: NUMBA_CACHE_DIR wins over the cache beside the sources, and a
    # function loaded from the disk cache is not a compile
    source = "from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x * 3\n"
    (tmp_path / "cold_kernel.py").write_text(source)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}

    def compiles() -> int:
        out = subprocess.run([sys.executable, "-c", COLD_CHILD], env=env, capture_output=True,
                             text=True, check=True)
        return int(out.stdout.split()[-1])

    assert compiles() == 1
    assert any((tmp_path / "cache").rglob("*.nbi"))
    assert compiles() == 0
