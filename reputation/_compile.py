"""Time spent compiling numba kernels, so that a slow first run says why.

numba compiles a kernel the first time it is called with new argument types and keeps the machine code in
its disk cache (``cache=True``: in ``NUMBA_CACHE_DIR`` when that is set, otherwise beside the package or,
where that cannot be written, in the user's cache folder). Only a cache miss compiles: a new install or
upgrade, a new CPU, or a run that can write none of those folders (then every run compiles). On the
project's 2-core VM a whole run's kernels take about 19 s to compile, several times what a small run
itself takes; the pipeline reports that time per stage (``stage_metrics.compile_seconds``) and says so
while it happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any


class CompileTimer:
    """Seconds numba spends compiling while the context is open, and which functions it compiled.

    Compiles are nested (a kernel compiles the helpers it calls) and serialised by numba's compiler lock,
    whatever thread triggers them, so the outermost ones are timed and named; a function compiled for two
    argument signatures is named twice. A function loaded from the disk cache is not a compile.
    ``on_start`` is called when an outermost compile begins (to tell the user why nothing moves)::

        with CompileTimer() as compiled:
            kernel(x)
        compiled.seconds, compiled.functions   # (0.0, []) once kernel is cached for x's types
    """

    def __init__(self, on_start: Callable[[str], None] | None = None) -> None:
        self.seconds = 0.0
        self.functions: list[str] = []
        self._on_start = on_start
        self._depth = 0
        self._started = 0.0
        self._stack = ExitStack()

    def __enter__(self) -> CompileTimer:
        from numba.core import event

        timer = self

        class _Listener(event.Listener):
            def on_start(self, ev: event.Event) -> None:
                if timer._depth == 0:
                    timer._started = time.perf_counter()
                    if timer._on_start is not None:
                        timer._on_start(_name(ev))
                timer._depth += 1

            def on_end(self, ev: event.Event) -> None:
                timer._depth -= 1
                if timer._depth == 0:
                    timer.seconds += time.perf_counter() - timer._started
                    timer.functions.append(_name(ev))

        self._stack.enter_context(event.install_listener("numba:compile", _Listener()))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def _name(ev: Any) -> str:
    func = ev.data["dispatcher"].py_func
    return f"{func.__module__}.{func.__qualname__}"
