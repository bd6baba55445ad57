"""Profile pipeline stages: re-run them on a copy of a finished database and time every SQL statement.

Where a stage's time goes is the first question before changing it (issue: "profile before changing
anything"). The per-stage log line says how long a stage took; this says which of its statements, and
how much of it is Python (numpy and the compiled kernels) between them::

    python -m benchmarks.profile_stages DB --config pipeline.toml templates links
    python -m benchmarks.profile_stages DB --config pipeline.toml reputation --cprofile 15

The database is copied first (the original is never written) and opened with the pipeline's own
connection settings (:func:`reputation.pipeline.open_build_connection`); the stages run with the run id
and reference time of the database's latest complete run, in the order given. A stage reads the tables
of the stages before it, which a finished database has, so any stage after ingest can be re-run alone.

Every ``execute``/``executemany`` and every relation from ``sql`` (timed when it is fetched) is charged
to the line of the ``reputation`` package that issued it. ``SQL s`` sums those; the rest of the stage's
time is Python. A statement found here can then be looked at with DuckDB's ``EXPLAIN ANALYZE`` on the
kept copy (``--keep``). ``--cprofile N`` adds the N functions with the most own time (cProfile; its
overhead inflates pure-Python code, not the SQL or numpy).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

#: Methods of a DuckDB relation that run its query.
_RUNS_QUERY = ("fetchnumpy", "fetchall", "fetchone", "fetchmany", "fetchdf", "df", "pl", "arrow",
               "to_arrow_table", "fetch_arrow_table", "execute", "show")


@dataclass
class StatementTimes:
    """Seconds and calls per call site, with the first line of the SQL last seen there."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sql: dict[str, str] = field(default_factory=dict)

    def add(self, site: str, sql: str, seconds: float, runs: bool = True) -> None:
        """Charge ``seconds`` to ``site``; ``runs`` counts one more statement run there."""
        self.seconds[site] += seconds
        self.calls[site] += runs
        self.sql[site] = " ".join(str(sql).split())[:110]

    def total(self) -> float:
        return sum(self.seconds.values())

    def top(self, n: int) -> list[tuple[str, float, int, str]]:
        order = sorted(self.seconds, key=lambda s: -self.seconds[s])[:n]
        return [(s, self.seconds[s], self.calls[s], self.sql[s]) for s in order]


def call_site() -> str:
    """``path:line function`` of the innermost frame in the ``reputation`` package (else ``?``)."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        marker = "/reputation/"
        if marker in frame.filename and "/benchmarks/" not in frame.filename:
            return f"{frame.filename.rsplit(marker, 1)[1]}:{frame.lineno} {frame.name}"
    return "?"


class _TimedRelation:
    """A DuckDB relation whose query-running methods are timed and charged to ``site``."""

    def __init__(self, rel: Any, site: str, sql: str, times: StatementTimes):
        self._rel, self._site, self._sql, self._times = rel, site, sql, times

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._rel, name)
        if name not in _RUNS_QUERY:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._times.add(self._site, self._sql, time.perf_counter() - t)

        return timed


class TimedConnection:
    """Wraps a DuckDB connection: statements are timed per call site (see the module docs).

    >>> times = StatementTimes()
    >>> con = TimedConnection(duckdb.connect(), times)
    >>> con.execute("SELECT 42").fetchall()
    [(42,)]
    >>> con.sql("SELECT 1 AS x").fetchnumpy()["x"].tolist()
    [1]
    >>> sum(times.calls.values())
    2
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, times: StatementTimes):
        self._con, self._times = con, times

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._con, name)
        if name in ("execute", "executemany"):
            def timed(sql: str, *args: Any, **kwargs: Any) -> Any:
                site, t = call_site(), time.perf_counter()
                try:
                    return attr(sql, *args, **kwargs)
                finally:
                    self._times.add(site, sql, time.perf_counter() - t)

            return timed
        if name == "sql":
            def relation(sql: str, *args: Any, **kwargs: Any) -> Any:
                site, t = call_site(), time.perf_counter()
                rel = attr(sql, *args, **kwargs)
                # binding only: the statement runs, and is counted, when the relation is fetched
                self._times.add(site, sql, time.perf_counter() - t, runs=False)
                return _TimedRelation(rel, site, sql, self._times)

            return relation
        if name == "cursor":
            return lambda *a, **k: TimedConnection(attr(*a, **k), self._times)
        return attr


def profile_stages(database: Path, config_path: Path, stages: list[str], scratch: Path | None = None,
                   keep: bool = False, cprofile_top: int = 0, top: int = 12) -> list[dict[str, Any]]:
    """Re-run ``stages`` on a copy of ``database``; per stage its seconds, SQL seconds and top statements.

    Raises ``ValueError`` for an unknown stage or a database without a complete run.
    """
    from reputation.config import load_config
    from reputation.context import StageContext
    from reputation.pipeline import analysis_stages, open_build_connection

    known = dict(analysis_stages())
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(known)}")
    config = load_config(config_path)
    workdir = None
    if scratch is None:
        workdir = Path(tempfile.mkdtemp(prefix="profile-", dir=database.parent))
        scratch = workdir / database.name
    shutil.copy(database, scratch)
    out = []
    raw = open_build_connection(scratch, config.settings)
    try:
        found = raw.execute("SELECT run_id, as_of FROM runs WHERE status = 'complete' "
                            "ORDER BY started_at DESC LIMIT 1").fetchall()
        if not found:
            raise ValueError(f"{database} has no complete run to profile")
        run_id, as_of = found[0]
        ctx = StageContext(run_id=run_id, settings=replace(config.settings, as_of=as_of), as_of=as_of,
                           as_of_pinned=config.settings.as_of is not None)
        for name in stages:
            out.append(_profile_stage(raw, ctx, name, known[name], cprofile_top, top))
    finally:
        raw.close()
        if not keep and workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not keep:
            for path in (scratch, scratch.with_name(scratch.name + ".wal")):
                path.unlink(missing_ok=True)
    return out


def _profile_stage(raw: duckdb.DuckDBPyConnection, ctx: Any, name: str, fn: Any, cprofile_top: int,
                   top: int) -> dict[str, Any]:
    """Run one stage on ``raw`` with every statement timed (and cProfile when ``cprofile_top``)."""
    times = StatementTimes()
    prof = cProfile.Profile() if cprofile_top else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    rows = fn(TimedConnection(raw, times), ctx)
    if prof:
        prof.disable()
    res: dict[str, Any] = {"stage": name, "rows": rows, "seconds": time.perf_counter() - t,
                           "sql_seconds": times.total(), "statements": times.top(top)}
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(cprofile_top)
        res["cprofile"] = buf.getvalue()
    return res


def render(results: list[dict[str, Any]]) -> str:
    """Plain-text report of :func:`profile_stages`' results."""
    lines = []
    for r in results:
        py = r["seconds"] - r["sql_seconds"]
        lines.append(f"stage {r['stage']}: {r['rows']:,} rows in {r['seconds']:.2f} s — SQL {r['sql_seconds']:.2f} s, "
                     f"Python (numpy, compiled kernels) {py:.2f} s")
        for site, seconds, calls, sql in r["statements"]:
            lines.append(f"  {seconds:7.2f} s {calls:4d}×  {site}")
            lines.append(f"                    {sql}")
        if r.get("cprofile"):
            lines.append(r["cprofile"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile_stages", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("database", type=Path, help="a finished run's database (copied, never written)")
    ap.add_argument("stages", nargs="+", help="stages to re-run, in order (e.g. templates links reputation)")
    ap.add_argument("--config", type=Path, required=True, help="the pipeline config the database was built with")
    ap.add_argument("--scratch", type=Path, default=None, help="where to put the copy (default: beside DB)")
    ap.add_argument("--keep", action="store_true", help="keep the copy (for EXPLAIN ANALYZE)")
    ap.add_argument("--top", type=int, default=12, help="statements listed per stage")
    ap.add_argument("--cprofile", type=int, default=0, metavar="N", help="also list the N top functions")
    args = ap.parse_args(argv)
    try:
        results = profile_stages(args.database, args.config, args.stages, scratch=args.scratch, keep=args.keep,
                                 cprofile_top=args.cprofile, top=args.top)
    except (ValueError, FileNotFoundError, duckdb.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
