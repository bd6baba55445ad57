"""Shared helpers of the benchmark suite: timing, peak memory, machine facts, results files.

Every suite returns a JSON-able dict; :func:`update_results` merges it into ``benchmarks/results.json``
under ``<suite>:<mode>`` (so a quick run of one suite does not erase another's figures), and
``benchmarks.__main__.render`` turns the whole file into ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"
#: Packages whose versions are recorded beside the figures.
PACKAGES = (
    "reputation",
    "duckdb",
    "polars",
    "numpy",
    "scipy",
    "networkx",
    "pyarrow",
    "python-igraph",
    "matplotlib",
)

#: Key the benchmarks hash identifiers with unless ``REPUTATION_HASH_KEY`` is set (the figures need a key,
#: not a secret one; 32 bytes, so that the runs do not warn about a short key).
BENCHMARK_HASH_KEY = "reputation-benchmarks-public-key"


def hash_key_env() -> dict[str, str]:
    """``REPUTATION_HASH_KEY`` for a measured child process: the caller's, else :data:`BENCHMARK_HASH_KEY`."""
    return {"REPUTATION_HASH_KEY": os.environ.get("REPUTATION_HASH_KEY", BENCHMARK_HASH_KEY)}


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident set size of this process (or of its waited-for children), in MiB.

    ``ru_maxrss`` is a high-water mark for the whole life of the process, which is why every size of
    the performance suite runs in a fresh subprocess.
    """
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """Context manager measuring wall time: ``with timer() as t: ...; t["seconds"]``."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - t0


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (CPU contention while measuring)."""
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str | None:
    """Short commit of the checkout, ``+N`` when N files differ from it (the tree a measurement measured)."""
    commit, dirty = _git_commit(), _git_dirty()
    return f"{commit}+{dirty}" if commit and dirty else commit


#: The suite's own outputs (and the hand-written history): changed by every run, so not counted as changes
#: to the code a run measured.
_RESULT_FILES = re.compile(r"^benchmarks/(RESULTS\.md|results\.json|HISTORY\.md|[^/]+\.png)$")


def _git_dirty() -> int | None:
    """Files changed or untracked in the working tree, the suite's result files aside (the figures measure
    the tree, not the commit).

    >>> _RESULT_FILES.match("benchmarks/results.json") is not None, _RESULT_FILES.match("benchmarks/perf.py")
    (True, None)
    """
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if out.returncode != 0:
            return None
        paths = [line[3:].split(" -> ")[-1].strip('"') for line in out.stdout.splitlines()]
        return sum(not _RESULT_FILES.match(p) for p in paths)
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    """Machine, interpreter and package versions, recorded with every result."""
    return {
        "nproc": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "cpu": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "git_commit": _git_commit(),
        "git_uncommitted_files": _git_dirty(),
    }


def now_utc() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_line() -> str:
    """The command that produced the results (as typed, modulo quoting)."""
    return (
        "python -m benchmarks " + " ".join(sys.argv[1:])
        if sys.argv[0].endswith("__main__.py")
        else " ".join([Path(sys.executable).name, *sys.argv])
    )


def update_results(suite: str, result: dict[str, Any], path: Path = RESULTS_JSON) -> dict[str, Any]:
    """Merge ``result`` into the results file under ``suite`` (with machine facts and date) and return all."""
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}
    data[suite] = {
        "date": now_utc(),
        "command": command_line(),
        "load_average": load_average(),
        "machine": machine_info(),
        **result,
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")
    return data


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def best_method(scores: dict[str, float]) -> str:
    """The method with the highest score; ties go to the first name in alphabetical order.

    Not the first in the dict's order: results.json is written with sorted keys, so a suite run (methods
    in the order they ran) and a later ``report`` (sorted) would otherwise name different ones of two
    baselines tied at 1.0.

    >>> best_method({"sybilscar": 1.0, "badrank": 1.0, "sybilrank": 0.9})
    'badrank'
    """
    return min(scores, key=lambda m: (-scores[m], m))


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats rounded, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 1000 or (value.is_integer() and abs(value) >= 1):
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def md_table(header: list[str], rows: list[list[Any]], digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (floats to ``digits`` decimals)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c, digits) for c in row) + " |" for row in rows]
    return "\n" + "\n".join(lines) + "\n"  # blank lines around: a table must not touch a paragraph


class SubprocessFailed(RuntimeError):
    """A measured child process failed or timed out; ``log`` is its stderr so far."""

    def __init__(self, message: str, log: str, problem: str = ""):
        super().__init__(message)
        self.log = log
        self.problem = problem or message


def run_json_subprocess(
    args: list[str],
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    stderr_path: Path | None = None,
    max_rss_mib: float | None = None,
    cwd: Path = ROOT,
) -> dict[str, Any]:
    """Run ``python args...`` in a fresh interpreter (in ``cwd``); parse its last stdout line as JSON.

    A fresh process per measurement keeps peak RSS (a process-lifetime high-water mark) per run.
    The child's stderr goes to ``stderr_path`` (kept, so progress survives a timeout) or a temp file.
    ``max_rss_mib`` is a memory guard for a shared machine: the child is killed when its resident set
    exceeds it (checked every second). Raises :class:`SubprocessFailed` with the child's stderr when it
    fails, runs past ``timeout`` seconds, or trips the memory guard.
    """
    import tempfile

    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        path = stderr_path or Path(tmp) / "stderr.log"
        out_path = Path(tmp) / "stdout.txt"
        with open(path, "w") as err, open(out_path, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, *args],
                cwd=cwd,
                stdout=out,
                stderr=err,
                text=True,
                env={**os.environ, **(env or {})},
            )
            t0, problem, max_seen = time.monotonic(), None, 0.0
            watch = psutil.Process(proc.pid)
            while proc.poll() is None:
                with suppress(psutil.Error):
                    max_seen = max(max_seen, watch.memory_info().rss / 2**20)
                if max_rss_mib is not None and max_seen > max_rss_mib:
                    problem = f"killed by the memory guard: RSS {max_seen:.0f} MiB > {max_rss_mib:.0f} MiB"
                elif timeout is not None and time.monotonic() - t0 > timeout:
                    problem = f"timed out after {timeout:.0f} s"
                if problem:
                    proc.kill()
                    proc.wait()
                    break
                time.sleep(1.0)
            if problem is None and proc.returncode != 0:
                problem = f"exited with {proc.returncode}"
        log = Path(path).read_text(errors="replace")
        stdout = out_path.read_text(errors="replace")
    if problem:
        tail = "\n".join(log.strip().splitlines()[-15:])
        raise SubprocessFailed(f"{' '.join(args)} {problem}:\n{tail}", log, problem)
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    if not lines:
        raise SubprocessFailed(f"{' '.join(args)} printed no result", log)
    return json.loads(lines[-1])


def quiet_logging(stage_log: bool = False) -> None:
    """Keep the pipeline's INFO logs out of benchmark output (warnings still show).

    ``stage_log``: log INFO (one line per finished stage) to stderr instead, for child processes whose
    stderr is kept so that a run that times out still shows how far it got.
    """
    import logging

    logger = logging.getLogger("reputation")
    if stage_log:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    else:
        logger.setLevel(logging.WARNING)
