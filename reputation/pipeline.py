"""The pipeline runner: every stage of a run, built aside and published atomically.

A run writes a fresh DuckDB file beside the published one (``.<name>.build-<run_id>``), carries the run
history over, runs the stages, writes the exports into a fresh folder, and then publishes both by atomic
rename, keeping the previous database as ``<name>.previous``. Readers never wait on a run and never see
half a run. A run that fails — killed, or fed a corrupt file — leaves the published database and exports
untouched; the failure is appended to the published database's ``runs`` table (created if there is none).

Example
-------
>>> from reputation.pipeline import run_pipeline          # doctest: +SKIP
>>> result = run_pipeline("pipelines/demo.toml")          # doctest: +SKIP
>>> result.status, result.database                        # doctest: +SKIP
('complete', PosixPath('.../out/reputation.duckdb'))
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import resource
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from . import __version__
from ._compile import CompileTimer
from ._memory import block_allocator_bytes, parse_bytes, physical_memory_bytes, retain_freed_memory
from .config import Config, ConfigError, Settings, load_config
from .context import StageContext
from .export import write_exports
from .hashing import key_file_of, key_id, resolve_key
from .ingest import (
    InputError,
    SourceCounts,
    build_accounts,
    build_identifiers,
    finish_input_tables,
    first_line,
    ingest_sources,
    redact,
)
from .schema import STORED_TABLES
from .store import comment_table
from .views import create_views

log = logging.getLogger("reputation")

StageFn = Callable[[duckdb.DuckDBPyConnection, StageContext], int]


#: The record of a failed run in ``runs`` (also for the records a locked database made wait in a file).
FAILED_RUN_FIELDS = ("run_id", "started_at", "finished_at", "config_path", "config_hash", "error", "tool_version")
FAILED_RUN_SQL = """
    INSERT INTO runs (run_id, started_at, finished_at, status, config_path, config_hash, error, tool_version)
    SELECT $run_id, $started_at::TIMESTAMP, $finished_at::TIMESTAMP, 'failed', $config_path, $config_hash, $error,
           $tool_version
    WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_id = $run_id)"""
#: The file that marks a folder as a run's exports (the folder is replaced whole at publish).
EXPORTS_MARKER = ".reputation-exports"
#: What an exports folder of an earlier version, without the marker, may hold.
EXPORT_LAYOUT = frozenset({"reputation", "csv", "jsonl", "stix"})


def exports_marker_text(run_id: str, database: Path) -> str:
    """What a run writes in its exports folder's marker (read back by :func:`read_exports_marker`)."""
    return f"written by reputation run {run_id}\nfor the database {database}\n"


def read_exports_marker(folder: Path) -> tuple[str | None, str | None]:
    """The run id and the database an exports folder's marker names (None where it does not: no marker, or
    one an earlier version wrote, which names the run only).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / EXPORTS_MARKER).write_text(exports_marker_text("R1", Path("/x/r.duckdb")))
    >>> read_exports_marker(d), read_exports_marker(d / "none")
    (('R1', '/x/r.duckdb'), (None, None))
    """
    try:
        lines = (folder / EXPORTS_MARKER).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None, None
    run = next((ln.split()[-1] for ln in lines if ln.startswith("written by reputation run ")), None)
    database = next((ln[len("for the database "):] for ln in lines if ln.startswith("for the database ")), None)
    return run, database


class RunFailed(RuntimeError):
    """A run failed; the published results are unchanged. ``stage`` names where it failed."""

    def __init__(self, message: str, stage: str, run_id: str):
        super().__init__(message)
        self.stage = stage
        self.run_id = run_id


class RunLocked(RunFailed):
    """Another run holds the output's lock; nothing was changed."""


@dataclass
class RunResult:
    """What a finished run reports back."""

    run_id: str
    status: str
    database: Path
    exports: Path
    as_of: datetime | None
    sources: list[SourceCounts]
    stages: list[tuple[str, float, int, float]] = field(default_factory=list)  # name, s, rows, peak MiB
    tables: dict[str, int] = field(default_factory=dict)
    compile_seconds: float = 0.0  # of the stages' seconds, compiling numba kernels (0 once they are cached)

    @property
    def rows_read(self) -> int:
        return sum(s.rows_read for s in self.sources)

    @property
    def rows_quarantined(self) -> int:
        return sum(s.rows_quarantined for s in self.sources)


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus 6 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def analysis_stages() -> list[tuple[str, StageFn]]:
    """The stages after ingest, in order."""
    from .graph.campaigns import build_campaigns
    from .graph.features import build_features
    from .graph.interactions import build_interactions
    from .graph.templates import build_templates
    from .linkage.stage import build_identities, build_links
    from .scoring.stage import build_reputation

    return [
        ("interactions", build_interactions),
        ("templates", build_templates),
        ("features", build_features),
        ("campaigns", build_campaigns),
        ("links", build_links),
        ("identities", build_identities),
        ("reputation", build_reputation),
    ]


def wal_of(path: Path) -> Path:
    """DuckDB's write-ahead log of the database file at ``path``."""
    return path.with_name(path.name + ".wal")


def spill_folder(path: Path) -> Path:
    """Where DuckDB spills for the database at ``path``: a hidden folder of its own beside it, so that the
    files a killed run left there can be removed by the next run of the same database (under its lock)
    without touching another database's.

    >>> spill_folder(Path("out/r.duckdb")).name, spill_folder(Path("out/.r.duckdb.build-X")).name
    ('.r.duckdb.tmp', '.r.duckdb.build-X.tmp')
    """
    return path.with_name(("" if path.name.startswith(".") else ".") + path.name + ".tmp")


def open_build_connection(path: Path, settings: Settings) -> duckdb.DuckDBPyConnection:
    """Open (or create) the database at ``path`` with the settings every pipeline run uses.

    UTC session time, spill files beside the database (:func:`spill_folder`), no automatic checkpoints or
    vacuum (see the comments), and the configured memory limit and threads. :mod:`benchmarks.profile_stages` opens its
    copies the same way, so that a profiled stage runs as it does in the pipeline.
    """
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET temp_directory = ?", [str(spill_folder(path))])
    # The build file is checkpointed once at the end; automatic checkpoints every 16 MB of WAL would
    # recompress the growing tables again and again (measured: ingest 13.6 s -> 8.1 s per 1M rows).
    con.execute("SET checkpoint_threshold = '64GB'")
    # Every input file's INSERT ends in a part-filled row group; by default that CHECKPOINT merges them
    # by rewriting the whole table (measured: 14 CPU-s of the final checkpoint at 10M messages, for
    # nothing the readers need). Without vacuum the part-filled row groups stay as they are.
    con.execute("SET max_vacuum_tasks = 0")
    if settings.memory_limit:
        con.execute("SET memory_limit = ?", [settings.memory_limit])
    if settings.threads:
        con.execute("SET threads = ?", [settings.threads])
    _keep_block_memory(con, settings.block_allocator_memory)
    return con


def _keep_block_memory(con: duckdb.DuckDBPyConnection, setting: str) -> None:
    """Let DuckDB's block allocator keep the memory it touches (see :mod:`reputation._memory`).

    The setting cannot be lowered once set on a database instance, and a file opened twice in one process
    is one instance: it is only ever raised. A size DuckDB refuses (more than its memory limit) is a
    config error.
    """
    def current(name: str) -> int:
        return parse_bytes(con.execute("SELECT current_setting($n)", {"n": name}).fetchall()[0][0])

    wanted = block_allocator_bytes(setting, current("memory_limit"), physical_memory_bytes())
    if wanted > current("block_allocator_memory"):
        try:
            con.execute("SET block_allocator_memory = ?", [f"{wanted}B"])
        except duckdb.InvalidInputException as e:
            raise ConfigError("settings.block_allocator_memory", f"DuckDB refuses {setting!r}: {e}") from None


class _Runner:
    def __init__(self, config: Config, database: Path, exports: Path, progress: Callable[[str], None] | None,
                 stages: list[tuple[str, StageFn]] | None = None):
        self.config = config
        self.analysis = stages
        self.database = database
        self.exports = exports
        self.progress = progress or (lambda _msg: None)
        self.run_id = new_run_id()
        self.started = datetime.now(UTC).replace(tzinfo=None)
        self.stage = "setup"
        self.stages: list[tuple[str, float, int, float]] = []
        self.compile_seconds = 0.0
        self._told_compiling = False

    @contextlib.contextmanager
    def timed(self, con: duckdb.DuckDBPyConnection | None, name: str) -> Iterator[list[int]]:
        self.stage = name
        self.progress(name)
        rows = [0]
        t0 = time.perf_counter()
        with CompileTimer(on_start=lambda _fn: self._compiling(name)) as compiled:
            yield rows
        seconds = time.perf_counter() - t0
        peak = _peak_rss_mb()
        self.stages.append((name, seconds, rows[0], peak))
        log.info("stage %s: %d rows in %.2f s (peak RSS %.0f MiB)", name, rows[0], seconds, peak)
        if compiled.seconds:
            self.compile_seconds += compiled.seconds
            log.info("stage %s compiled %d numba kernels in %.1f s (cached for later runs)", name,
                     len(set(compiled.functions)), compiled.seconds)
        if con is not None:
            con.execute("""INSERT INTO stage_metrics (run_id, stage, seconds, rows_out, peak_rss_mb, compile_seconds)
                           VALUES ($r, $s, $t, $n, $p, $c)""",
                        {"r": self.run_id, "s": name, "t": seconds, "n": rows[0], "p": peak, "c": compiled.seconds})

    def _compiling(self, stage: str) -> None:
        """A kernel is being compiled (numba's cache missed it): say so, since the run seems to stand still."""
        self.progress(f"{stage}: compiling numba kernels (first run of this version on this machine)")
        if not self._told_compiling:
            self._told_compiling = True
            log.info("compiling numba kernels: the first run of a version on a machine compiles them once "
                     "(18–30 s in all on 2 cores, by the CPU) and caches them for later runs")

    @property
    def _previous(self) -> Path:
        """The published database before the last publish (a hard link kept by :meth:`_publish`)."""
        return self.database.with_name(self.database.name + ".previous")

    def connect(self, path: Path) -> duckdb.DuckDBPyConnection:
        return open_build_connection(path, self.config.settings)

    def run(self) -> RunResult:
        lock_path = self.database.with_name(self.database.name + ".lock")
        try:
            self.database.parent.mkdir(parents=True, exist_ok=True)
            lock = open(lock_path, "a+")  # noqa: SIM115 - held open for the whole run, closed below
        except OSError as exc:  # a folder that cannot be made or written: say which, before any work
            raise ConfigError("output.database", f"cannot write {self.database}: "
                              f"{exc.strerror or exc} ({exc.filename or lock_path})") from None
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLocked(f"another run is writing {self.database} (it holds {lock_path}); "
                                "wait for it to finish", "setup", self.run_id) from None
            self._recover_interrupted_publish()
            self._recover_abandoned_builds()
            return self._run_locked()

    def _recover_interrupted_publish(self) -> None:
        """Put the exports and the database's log back in step with the database after a run killed inside
        :meth:`_publish` (or inside this recovery).

        Publishing moves the exports folder aside to ``.<exports>.old-<run>``, moves the new one in, moves the
        database's log to ``.previous``, then swaps the database. A run killed before the database swap never
        published: the exports it set aside are the published database's and are put back (whatever is in the
        exports folder then, the killed run's or half of it, is moved aside and removed), and a log it moved
        goes back. A run killed after the swap published: what it set aside is removed. Only called while
        holding the output lock.
        """
        parent = self.exports.parent
        previous = self._previous
        wal, previous_wal = wal_of(self.database), wal_of(previous)
        if (previous_wal.exists() and not wal.exists() and previous.exists() and self.database.exists()
                and os.path.samefile(previous, self.database)):  # killed between moving the log and the swap
            os.replace(previous_wal, wal)
            log.warning("put the log %s back beside %s (a run was interrupted while publishing)", wal,
                        self.database)
        for discard in parent.glob(glob.escape(f".{self.exports.name}.discard-") + "*"):
            shutil.rmtree(discard, ignore_errors=True)
        set_aside = sorted(parent.glob(glob.escape(f".{self.exports.name}.old-") + "*"), reverse=True)
        if not set_aside:
            return
        published = self._published_runs()
        if published is None:  # the database cannot be read: leave the folders for a person to look at
            log.warning("left %s in place: cannot tell which runs %s published", set_aside[0], self.database)
            return
        for old in set_aside:  # the newest run first
            run_id = old.name.rsplit(".old-", 1)[1]
            current = read_exports_marker(self.exports)[0]
            if run_id in published or (current is not None and current in published):
                shutil.rmtree(old, ignore_errors=True)  # the exports folder is the published database's
                continue
            if self.exports.exists():  # the killed run's exports, or what is left of them: aside, then away
                discard = self.exports.with_name(f".{self.exports.name}.discard-{run_id}")
                os.replace(self.exports, discard)
                os.replace(old, self.exports)
                shutil.rmtree(discard, ignore_errors=True)
            else:
                os.replace(old, self.exports)
            log.warning("run %s was interrupted while publishing: put its predecessor's exports back in %s",
                        run_id, self.exports)

    def _published_runs(self) -> set[str] | None:
        """The run ids the published database records as complete (empty without one; None if unreadable)."""
        if not self.database.exists():
            return set()
        try:
            con = duckdb.connect(str(self.database), read_only=True)
            try:
                return {r for (r,) in con.execute("SELECT run_id FROM runs WHERE status = 'complete'").fetchall()}
            finally:
                con.close()
        except duckdb.Error:
            return None

    def _recover_abandoned_builds(self) -> None:
        """Record and remove build files of runs that were killed before they could publish.

        Only called while holding the output lock, so no live run owns these files.
        """
        pattern = glob.escape(f".{self.database.name}.build-") + "*"  # the name taken literally
        for build in sorted(self.database.parent.glob(pattern)):
            if build.is_dir():  # a killed run's spill folder (a build's is removed with it otherwise)
                shutil.rmtree(build, ignore_errors=True)
                continue
            if build.suffix == ".wal":
                continue
            run_id = build.name.rsplit(".build-", 1)[1]
            started = None
            try:
                con = duckdb.connect(str(build), read_only=True)
                try:
                    rows = con.execute("SELECT run_id, started_at FROM runs WHERE status = 'running'").fetchall()
                    row = rows[0] if rows else None
                    if row:
                        run_id, started = row
                finally:
                    con.close()
            except duckdb.Error:
                pass
            self._record_failure("abandoned: the run was interrupted (killed) before it could publish",
                                 run_id=run_id, started=started, stage="unknown")
            log.warning("removed the build file of abandoned run %s: %s", run_id, build)
            for leftover in (build, wal_of(build)):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        for folder in self.exports.parent.glob(glob.escape(f".{self.exports.name}.build-") + "*"):
            shutil.rmtree(folder, ignore_errors=True)

    def _run_locked(self) -> RunResult:
        build = self.database.with_name(f".{self.database.name}.build-{self.run_id}")
        exports_build = self.exports.with_name(f".{self.exports.name}.build-{self.run_id}")
        con: duckdb.DuckDBPyConnection | None = None
        try:
            self._check_exports_folder()
            key = resolve_key(self.config.settings, self.database)
            con = self.connect(build)
            self._create_run_tables(con)
            self._record_key(con, key)
            with self.timed(con, "ingest") as rows:
                counts = ingest_sources(con, self.config, self.run_id, key,
                                        on_file=lambda s, f: self.progress(f"ingest {s}: {Path(f).name}"),
                                        started=self.started)
                finish_input_tables(con)
                rows[0] = sum(c.rows_stored for c in counts)
            self._record_sources(con, counts)
            n_messages = con.execute("SELECT count(*) FROM messages").fetchall()[0][0]
            if n_messages == 0 and not self.config.settings.allow_empty:
                raise InputError("no messages were ingested (every source is empty or every row was quarantined); "
                                 "refusing to publish an empty result over the previous one "
                                 "(set settings.allow_empty = true to allow)" + _quarantine_summary(con, counts))
            as_of = self.config.settings.as_of or con.execute("SELECT max(sent_at) FROM messages").fetchall()[0][0]
            as_of = as_of or self.started
            con.execute("UPDATE runs SET as_of = $a WHERE run_id = $r", {"a": as_of, "r": self.run_id})
            with self.timed(con, "accounts") as rows:
                rows[0] = build_accounts(con, self.run_id)
                rows[0] += build_identifiers(con, self.run_id)
            ctx = StageContext(run_id=self.run_id, settings=replace(self.config.settings, as_of=as_of), as_of=as_of,
                               as_of_pinned=self.config.settings.as_of is not None)
            for name, fn in (analysis_stages() if self.analysis is None else self.analysis):
                with self.timed(con, name) as rows:
                    rows[0] = fn(con, ctx)
            if self.analysis is None:  # views and exports need the full set of stages
                with self.timed(con, "views") as rows:
                    rows[0] = len(create_views(con))
                with self.timed(con, "exports") as rows:
                    shutil.rmtree(exports_build, ignore_errors=True)
                    rows[0] = int(sum(write_exports(con, exports_build, self.config.export_formats).values()))
                    (exports_build / EXPORTS_MARKER).write_text(exports_marker_text(self.run_id, self.database),
                                                                encoding="utf-8")
            tables = self._table_counts(con)
            self._finish_run(con, "complete", None, counts)
            con.execute("CHECKPOINT")
            con.close()
            con = None
            shutil.rmtree(spill_folder(build), ignore_errors=True)
            self._publish(build, exports_build)
            log.info("run %s complete: published %s", self.run_id, self.database)
            return RunResult(self.run_id, "complete", self.database, self.exports, as_of, counts, self.stages, tables,
                             self.compile_seconds)
        except BaseException as exc:
            if con is not None:
                with contextlib.suppress(Exception):
                    con.close()
            for leftover in (build, wal_of(build)):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            shutil.rmtree(spill_folder(build), ignore_errors=True)
            shutil.rmtree(exports_build, ignore_errors=True)
            message = str(exc) or type(exc).__name__
            self._record_failure(message)
            if isinstance(exc, (ConfigError, InputError, KeyboardInterrupt)):  # exit codes 2 and 3, not 1
                raise
            if isinstance(exc, Exception):
                raise RunFailed(f"stage {self.stage} failed: {message}", self.stage, self.run_id) from exc
            raise

    # -- run bookkeeping --------------------------------------------------------------------------
    def _record_key(self, con: duckdb.DuckDBPyConnection, key: bytes) -> None:
        """Record the hashing key's id in ``runs``, and warn when it is not the one the published results
        were made with: every identifier hash then changes (the scores do not), which an analyst joining
        hashes across runs, or a lost key file, should hear about."""
        this = key_id(key)
        con.execute("UPDATE runs SET key_id = $k WHERE run_id = $r", {"k": this, "r": self.run_id})
        last = con.execute("SELECT key_id FROM runs WHERE status = 'complete' AND key_id IS NOT NULL "
                           "ORDER BY started_at DESC LIMIT 1").fetchall()
        if last and last[0][0] != this:
            log.warning("the hashing key is not the one the published results were made with (key id %s, now %s): "
                        "every identifier hash changes with this run; if that is not meant, restore the key "
                        "(settings.hash_key_env or %s)", last[0][0], this,
                        key_file_of(self.database))

    def _create_run_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        for name in ("runs", "run_sources", "stage_metrics"):
            con.execute(STORED_TABLES[name].ddl())
            t = STORED_TABLES[name]
            comment_table(con, name, t.doc, {c: d for c, _, d in t.columns})
        if self.database.exists():
            try:
                con.execute("ATTACH ? AS previous (READ_ONLY)", [str(self.database)])
                for name in ("runs", "run_sources", "stage_metrics"):
                    con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM previous.{name}")
                con.execute("DETACH previous")
            except duckdb.Error as exc:
                log.warning("could not carry the run history over from %s: %s", self.database, exc)
        self._merge_pending_runs(con)
        con.execute("""INSERT INTO runs (run_id, started_at, status, config_path, config_hash, tool_version)
                       VALUES ($r, $t, 'running', $p, $h, $v)""",
                    {"r": self.run_id, "t": self.started, "p": str(self.config.path), "h": self.config.config_hash,
                     "v": __version__})

    def _record_sources(self, con: duckdb.DuckDBPyConnection, counts: list[SourceCounts]) -> None:
        for c in counts:
            con.execute("INSERT INTO run_sources VALUES ($r, $s, $t, $f, $n, $k, $q)",
                        {"r": self.run_id, "s": c.source, "t": c.table, "f": c.files, "n": c.rows_read,
                         "k": c.rows_stored, "q": c.rows_quarantined})

    def _finish_run(self, con: duckdb.DuckDBPyConnection, status: str, error: str | None,
                    counts: list[SourceCounts]) -> None:
        con.execute("""UPDATE runs SET finished_at = $t, status = $s, error = $e, rows_read = $n, rows_stored = $k,
                       rows_quarantined = $q WHERE run_id = $r""",
                    {"t": datetime.now(UTC).replace(tzinfo=None), "s": status, "e": error, "r": self.run_id,
                     "n": sum(c.rows_read for c in counts), "k": sum(c.rows_stored for c in counts),
                     "q": sum(c.rows_quarantined for c in counts)})

    def _table_counts(self, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND database_name = current_database() "
            "ORDER BY table_name").fetchall()]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchall()[0][0] for n in names}

    def _publish(self, build: Path, exports_build: Path) -> None:
        """Swap the exports folder, then the database, into place; a failure at either step puts back
        what was swapped, so that the published results are either all new or all as they were."""
        previous = self._previous
        old = self.exports.with_name(f".{self.exports.name}.old-{self.run_id}")
        swapped = False
        if exports_build.exists():
            if self.exports.exists():
                os.replace(self.exports, old)
            try:
                os.replace(exports_build, self.exports)
            except BaseException:
                if old.exists():
                    os.replace(old, self.exports)
                raise
            swapped = True
        # DuckDB's log of the published file (a failure record that could not be checkpointed, say) belongs
        # to that file: it goes with it to .previous, or DuckDB would replay it into the new file and fail
        wal, previous_wal = wal_of(self.database), wal_of(previous)
        moved_wal = False
        try:
            if self.database.exists():
                for stale in (previous, previous_wal):
                    with contextlib.suppress(FileNotFoundError):
                        stale.unlink()
                os.link(self.database, previous)
                if wal.exists():
                    os.replace(wal, previous_wal)
                    moved_wal = True
            os.replace(build, self.database)
        except BaseException:
            if moved_wal:
                os.replace(previous_wal, wal)
            if swapped:
                os.replace(self.exports, exports_build)
                if old.exists():
                    os.replace(old, self.exports)
            raise
        shutil.rmtree(old, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):  # merged into the runs table just published
            self._pending_runs_file().unlink()

    def _check_exports_folder(self) -> None:
        """Refuse an exports folder that holds anything but a previous run's exports: publishing replaces
        the folder whole, and a folder of someone's own files (``--exports ~/reports``) would be lost.
        Also refuse, before any work, a folder whose parent cannot be made or written (the build goes there)."""
        parent = self.exports.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("output.exports", f"cannot write {self.exports}: {exc.strerror or exc} "
                              f"({exc.filename or parent})") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError("output.exports", f"cannot write {self.exports}: {parent} is not writable")
        if not self.exports.exists():
            return
        if not self.exports.is_dir():
            raise ConfigError("output.exports", f"{self.exports} exists and is not a folder")
        names = {p.name for p in self.exports.iterdir()}
        if names and EXPORTS_MARKER not in names and not names <= EXPORT_LAYOUT:
            raise ConfigError("output.exports", f"{self.exports} holds files that no run wrote "
                              f"({', '.join(sorted(names - EXPORT_LAYOUT)[:3])}); a run replaces its exports "
                              "folder whole, so give it a folder of its own")
        _, owner = read_exports_marker(self.exports)
        if owner and os.path.exists(owner) and os.path.realpath(owner) != os.path.realpath(self.database):
            raise ConfigError("output.exports", f"{self.exports} holds the exports of another database, {owner}; "
                              "a run replaces its exports folder whole, so give this database a folder of its own "
                              "(or delete that folder if it is no longer wanted)")

    def _pending_runs_file(self) -> Path:
        """Failed runs that could not be written into the published database (a reader held it open)."""
        return self.database.with_name(self.database.name + ".pending-runs.jsonl")

    def _merge_pending_runs(self, con: duckdb.DuckDBPyConnection) -> None:
        """Copy the failure records of :meth:`_pending_runs_file` into this build's ``runs`` table."""
        pending = self._pending_runs_file()
        if not pending.exists():
            return
        for line in pending.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            con.execute(FAILED_RUN_SQL, {k: row.get(k) for k in FAILED_RUN_FIELDS})

    def _record_failure(self, message: str, run_id: str | None = None, started: datetime | None = None,
                        stage: str | None = None) -> None:
        """Append the failed run to the published database's runs table (created if missing).

        The error is masked of anything that looks like a personal identifier (an input error may quote
        a file's values). When the database cannot be opened for writing (an analyst's read-only session
        holds it), the record goes to :meth:`_pending_runs_file` and the next run's database takes it in.
        """
        row = {"run_id": run_id or self.run_id, "started_at": started or self.started,
               "finished_at": datetime.now(UTC).replace(tzinfo=None), "config_path": str(self.config.path),
               "config_hash": self.config.config_hash, "error": redact(f"stage {stage or self.stage}: {message}"),
               "tool_version": __version__}
        try:
            con = self.connect(self.database)
        except duckdb.Error as exc:
            pending = self._pending_runs_file()
            with open(pending, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=str) + "\n")
            log.error("run %s failed; %s is in use (%s), so the failure is recorded in %s and moves into the "
                      "runs table with the next run", row["run_id"], self.database, first_line(exc), pending)
            return
        try:
            for name in ("runs", "run_sources", "stage_metrics"):
                con.execute(STORED_TABLES[name].ddl().replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
            con.execute(FAILED_RUN_SQL, row)
        finally:
            con.close()


#: Quarantine causes an input error quotes (the most frequent first).
QUARANTINE_CAUSES_SHOWN = 3


def _quarantine_summary(con: duckdb.DuckDBPyConnection, counts: list[SourceCounts]) -> str:
    """Why the rows were quarantined, for an error that throws the build (and its quarantine table) away:
    the rows read and quarantined, then the most frequent (source, field) causes, each with one reason
    and the first file and row it names.

    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE quarantine (source VARCHAR, file VARCHAR, row_number BIGINT, "
    ...                 "field VARCHAR, reason VARCHAR)")
    >>> _ = con.execute("INSERT INTO quarantine VALUES ('m', 'a.csv', 2, 'sent_at', 'unparseable timestamp: x')")
    >>> _quarantine_summary(con, [SourceCounts("m", "messages", 1, 1, 0, 1)])
    '; 1 row(s) read, 1 quarantined: 1 × source m, field sent_at: unparseable timestamp: x (first at a.csv row 2)'
    """
    read = sum(c.rows_read for c in counts)
    quarantined = sum(c.rows_quarantined for c in counts)
    if not quarantined:
        return f"; {read:,} row(s) read"
    causes = con.execute("""
        SELECT count(*) AS n, source, field, arg_min(reason, (file, row_number)), min((file, row_number))
        FROM quarantine GROUP BY source, field ORDER BY n DESC, source, field LIMIT ?""",
                         [QUARANTINE_CAUSES_SHOWN]).fetchall()
    shown = "; ".join(f"{n:,} × source {src}, field {field or '(whole row)'}: {reason} "
                      f"(first at {first[0]} row {'?' if first[1] is None else first[1]})"
                      for n, src, field, reason, first in causes)
    return redact(f"; {read:,} row(s) read, {quarantined:,} quarantined: {shown}")


def run_pipeline(config: Config | str | Path, database: Path | str | None = None, exports: Path | str | None = None,
                 progress: Callable[[str], None] | None = None,
                 stages: list[tuple[str, StageFn]] | None = None) -> RunResult:
    """Run every stage for ``config`` and publish the results atomically.

    ``database`` and ``exports`` override the config's output paths; a ``database`` other than the config's,
    given without ``exports``, gets its exports folder beside it, named after it (``trial.duckdb``:
    ``trial-exports``), so a trial run never replaces the config database's exports. Raises ``ConfigError``
    (bad config, or an output path that cannot be written), ``InputError`` (unusable input file) or
    ``RunFailed`` (a stage failed); in every case the previously
    published results are unchanged and the failure is recorded in ``runs``. ``stages`` replaces the
    analysis stages after ingest (for tests and partial runs); None runs them all.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    if cfg.settings.retain_freed_memory:
        retain_freed_memory()
    db = Path(database).resolve() if database else cfg.database
    if exports:
        ex = Path(exports).resolve()
    elif os.path.realpath(db) != os.path.realpath(cfg.database):  # another database: its exports beside it
        ex = db.with_name(f"{db.stem}-exports")
    else:
        ex = cfg.exports
    return _Runner(cfg, db, ex, progress, stages).run()
