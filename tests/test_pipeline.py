"""The runner: atomic publish, failed runs leave results intact, run records reconcile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from reputation.config import ConfigError
from reputation.ingest import InputError
from reputation.pipeline import RunFailed, read_exports_marker, run_pipeline

CONFIG = """
[output]
database = "out/r.duckdb"
exports = "out/exports"
[[sources]]
name = "m"
table = "messages"
path = "m.csv"
format = "csv"
platform = "p1"
[sources.columns]
sender = "from"
recipient = "to"
sent_at = "ts"
"""


def _count_stage(con: duckdb.DuckDBPyConnection, ctx) -> int:
    con.execute("CREATE TABLE senders AS SELECT $r AS run_id, sender, count(*) AS n FROM messages GROUP BY ALL",
                {"r": ctx.run_id})
    return con.execute("SELECT count(*) FROM senders").fetchone()[0]


def _boom(con: duckdb.DuckDBPyConnection, ctx) -> int:
    raise ValueError("stage exploded")


def _world(tmp_path: Path, rows: str = "a,b,1767225600\nb,a,1767225700\nc,a,bad\n") -> Path:
    (tmp_path / "m.csv").write_text("from,to,ts\n" + rows)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG)
    return cfg


def _read(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_stages_learn_whether_as_of_was_pinned(tmp_path: Path) -> None:
    seen = []

    def _ctx_stage(con: duckdb.DuckDBPyConnection, ctx) -> int:
        seen.append((str(ctx.as_of), ctx.as_of_pinned))
        return 0

    cfg = _world(tmp_path)
    run_pipeline(cfg, stages=[("ctx", _ctx_stage)])
    cfg.write_text(CONFIG + '[settings]\nas_of = "2026-01-01T00:00:50Z"\n')
    run_pipeline(cfg, stages=[("ctx", _ctx_stage)])
    assert seen == [("2026-01-01 00:01:40", False), ("2026-01-01 00:00:50", True)]


def test_run_records_and_reconciles(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    result = run_pipeline(cfg, stages=[("senders", _count_stage)])
    db = result.database
    assert result.status == "complete" and db == tmp_path / "out" / "r.duckdb"
    (status, read, stored, quarantined, as_of), = _read(
        db, "SELECT status, rows_read, rows_stored, rows_quarantined, as_of::VARCHAR FROM runs")
    assert (status, read, stored, quarantined) == ("complete", 3, 2, 1)
    assert as_of == "2026-01-01 00:01:40"  # latest message time: reproducible without a clock
    assert _read(db, "SELECT source, rows_read, rows_stored + rows_quarantined FROM run_sources") == [("m", 3, 3)]
    # every output row carries the run id
    assert _read(db, "SELECT DISTINCT run_id FROM senders") == [(result.run_id,)]
    assert _read(db, "SELECT DISTINCT run_id FROM quarantine") == [(result.run_id,)]
    stages = [r[0] for r in _read(db, "SELECT stage FROM stage_metrics ORDER BY stage")]
    assert stages == ["accounts", "ingest", "senders"]
    # tables carry documentation
    comments = dict(_read(db, "SELECT table_name, comment FROM duckdb_tables()"))
    assert comments["messages"] and comments["runs"] and comments["quarantine"]


def test_failed_stage_leaves_published_results_and_records_failure(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    first = run_pipeline(cfg, stages=[("senders", _count_stage)])
    before = _read(first.database, "SELECT * FROM senders ORDER BY sender")
    (tmp_path / "m.csv").write_text("from,to,ts\nz,y,1767225600\n")
    with pytest.raises(RunFailed, match="stage exploded") as info:
        run_pipeline(cfg, stages=[("senders", _count_stage), ("boom", _boom)])
    assert info.value.stage == "boom"
    assert _read(first.database, "SELECT * FROM senders ORDER BY sender") == before
    runs = _read(first.database, "SELECT run_id, status, error FROM runs ORDER BY started_at, status")
    assert [r[1] for r in runs] == ["complete", "failed"]
    assert runs[1][2].startswith("stage boom: stage exploded")
    leftovers = [p.name for p in first.database.parent.iterdir() if ".build-" in p.name]
    assert leftovers == []


def test_corrupt_input_fails_and_keeps_previous(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    first = run_pipeline(cfg, stages=[("senders", _count_stage)])
    (tmp_path / "m.csv").unlink()
    with pytest.raises(InputError, match="does not exist"):
        run_pipeline(cfg, stages=[("senders", _count_stage)])
    assert _read(first.database, "SELECT count(*) FROM senders") == [(2,)]
    assert [r[0] for r in _read(first.database, "SELECT status FROM runs ORDER BY started_at")] == [
        "complete", "failed"]


def test_empty_input_refuses_to_publish(tmp_path: Path) -> None:
    cfg = _world(tmp_path, rows="")
    with pytest.raises(InputError, match="no messages were ingested"):
        run_pipeline(cfg, stages=[])
    # the failure is recorded even though nothing was ever published
    assert _read(tmp_path / "out" / "r.duckdb", "SELECT status FROM runs") == [("failed",)]


def test_a_run_whose_every_row_is_quarantined_says_why(tmp_path: Path) -> None:
    cfg = _world(tmp_path, rows="a,b,yesterday\nb,a,yesterday\nc,,1767225600\n")
    with pytest.raises(InputError) as info:
        run_pipeline(cfg, stages=[])
    message = str(info.value)  # the build and its quarantine table are gone: the error is all there is
    assert "3 row(s) read, 3 quarantined" in message
    assert ("2 × source m, field sent_at: unparseable timestamp in field sent_at: yesterday "
            f"(first at {tmp_path / 'm.csv'} row 1)") in message
    assert "1 × source m, field recipient" in message and "row 3)" in message
    error = _read(tmp_path / "out" / "r.duckdb", "SELECT error FROM runs")[0][0]
    assert "2 × source m, field sent_at" in error


def test_rerun_gives_identical_results_and_keeps_history(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    first = run_pipeline(cfg, stages=[("senders", _count_stage)])
    a = _read(first.database, "SELECT * EXCLUDE (run_id) FROM messages ORDER BY ALL")
    second = run_pipeline(cfg, stages=[("senders", _count_stage)])
    assert second.run_id != first.run_id
    assert _read(second.database, "SELECT * EXCLUDE (run_id) FROM messages ORDER BY ALL") == a
    assert len(_read(second.database, "SELECT * FROM runs WHERE status = 'complete'")) == 2
    previous = second.database.with_name("r.duckdb.previous")
    assert _read(previous, "SELECT DISTINCT run_id FROM messages") == [(first.run_id,)]


def test_reader_keeps_a_consistent_view_during_publish(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    first = run_pipeline(cfg, stages=[("senders", _count_stage)])
    reader = duckdb.connect(str(first.database), read_only=True)
    try:
        second = run_pipeline(cfg, stages=[("senders", _count_stage)])
        # the open reader still sees the first run; another process opening the path sees the second
        assert reader.execute("SELECT DISTINCT run_id FROM senders").fetchall() == [(first.run_id,)]
        code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
                "print(c.execute('SELECT DISTINCT run_id FROM senders').fetchone()[0])")
        out = subprocess.run([sys.executable, "-c", code, str(second.database)], capture_output=True, text=True,
                             check=True).stdout.strip()
        assert out == second.run_id
    finally:
        reader.close()


KILLED_RUN = """
import sys, time
from pathlib import Path
from reputation.pipeline import run_pipeline

def slow(con, ctx):
    Path(sys.argv[2]).write_text(ctx.run_id)
    time.sleep(60)
    return 0

run_pipeline(sys.argv[1], stages=[("slow", slow)])
"""


def test_killed_run_leaves_results_and_is_recorded_as_abandoned(tmp_path: Path) -> None:
    import os
    import signal
    import time

    cfg = _world(tmp_path)
    first = run_pipeline(cfg, stages=[("senders", _count_stage)])
    before = _read(first.database, "SELECT * FROM senders ORDER BY sender")
    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(cfg), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the run never reached its slow stage"
        # while it runs, a second run is refused rather than racing it
        with pytest.raises(RunFailed, match="another run is writing"):
            run_pipeline(cfg, stages=[])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _read(first.database, "SELECT * FROM senders ORDER BY sender") == before
    killed_id = marker.read_text()
    run_pipeline(cfg, stages=[("senders", _count_stage)])
    runs = dict(_read(first.database, "SELECT run_id, error FROM runs WHERE status = 'failed'"))
    assert killed_id in runs and "abandoned" in runs[killed_id]
    assert not [p for p in first.database.parent.iterdir() if ".build-" in p.name]


def test_message_bodies_are_stored_with_zstd(tmp_path: Path) -> None:
    # zstd halves the stored bodies and costs less CPU to write than DuckDB's own pick for short strings
    (tmp_path / "m.csv").write_text("from,to,ts,body\n" + "".join(
        f"u{i % 7},u{(i + 1) % 7},{1767225600 + i},hello number {i} from the test\n" for i in range(3000)))
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG + 'text = "body"\n')
    db = run_pipeline(cfg, stages=[("senders", _count_stage)]).database
    methods = {m for (m,) in _read(db, "SELECT DISTINCT compression FROM pragma_storage_info('messages') "
                                       "WHERE column_name = 'text' AND segment_type = 'VARCHAR'")}
    assert methods == {"ZSTD"}
    assert _read(db, "SELECT count(*), count(DISTINCT text) FROM messages") == [(3000, 3000)]


@pytest.mark.parametrize("stuck", ["database", "exports"])
def test_a_failed_publish_puts_the_previous_results_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         stuck: str) -> None:
    import os

    import reputation.pipeline as pipeline

    cfg = _world(tmp_path)
    first = run_pipeline(cfg)  # every stage: a database and an exports folder
    exports = sorted(p.relative_to(first.exports) for p in first.exports.rglob("*"))
    assert exports
    real_replace = os.replace

    def replace(src, dst):  # noqa: ANN001 - one of the two cannot be swapped in (a full disk, a busy mount)
        if Path(dst) == getattr(first, stuck) and ".build-" in str(src):
            raise OSError("no space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(pipeline.os, "replace", replace)
    with pytest.raises(RunFailed, match="no space left"):
        run_pipeline(cfg)
    monkeypatch.setattr(pipeline.os, "replace", real_replace)
    runs = _read(first.database, "SELECT run_id, status FROM runs ORDER BY started_at")
    assert [r[1] for r in runs] == ["complete", "failed"] and runs[0][0] == first.run_id
    # whichever step failed, both are the previous run's
    assert sorted(p.relative_to(first.exports) for p in first.exports.rglob("*")) == exports
    assert _read(first.database, "SELECT DISTINCT run_id FROM reputation") == [(first.run_id,)]
    assert {tuple(r) for r in duckdb.sql(
        f"SELECT DISTINCT run_id FROM read_parquet('{first.exports}/**/*.parquet')").fetchall()} == {(first.run_id,)}
    assert not [p for p in tmp_path.rglob("*") if ".build-" in p.name or ".old-" in p.name]


def test_a_failure_while_a_reader_holds_the_database_is_recorded_later(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    first = run_pipeline(cfg, stages=[("senders", _count_stage)])
    reader = duckdb.connect(str(first.database), read_only=True)  # an analyst's session
    try:
        (tmp_path / "m.csv").unlink()
        with pytest.raises(InputError):
            run_pipeline(cfg, stages=[("senders", _count_stage)])
    finally:
        reader.close()
    pending = first.database.with_name(first.database.name + ".pending-runs.jsonl")
    assert pending.exists() and "does not exist" in pending.read_text()
    _world(tmp_path)
    last = run_pipeline(cfg, stages=[("senders", _count_stage)])
    runs = _read(first.database, "SELECT run_id, status, error FROM runs ORDER BY started_at")
    assert [r[1] for r in runs] == ["complete", "failed", "complete"] and runs[2][0] == last.run_id
    assert "does not exist" in runs[1][2]
    assert not pending.exists()


def test_a_failure_record_never_holds_a_raw_identifier(tmp_path: Path) -> None:
    def leaky(con: duckdb.DuckDBPyConnection, ctx) -> int:
        raise ValueError("cannot parse 'ann@example.com' from 10.0.0.7 in /feeds/2026-03-31/x.csv at 23:59:44")

    cfg = _world(tmp_path)
    first = run_pipeline(cfg, stages=[("senders", _count_stage)])
    with pytest.raises(RunFailed):
        run_pipeline(cfg, stages=[("leaky", leaky)])
    (error,), = _read(first.database, "SELECT error FROM runs WHERE status = 'failed'")
    assert error == "stage leaky: cannot parse '[email]' from [ip] in /feeds/2026-03-31/x.csv at 23:59:44"


def test_a_run_writes_the_export_formats_its_config_names(tmp_path: Path) -> None:
    import stix2

    cfg = _world(tmp_path)
    cfg.write_text(CONFIG.replace('exports = "out/exports"',
                                  'exports = "out/exports"\nformats = ["parquet", "csv", "stix"]'))
    result = run_pipeline(cfg)
    names = sorted(str(p.relative_to(result.exports)) for p in result.exports.rglob("*") if p.is_file())
    assert "csv/p1.csv" in names and "stix/p1.stix.json" in names
    assert any(n.startswith("reputation/platform=p1/") and n.endswith(".parquet") for n in names)
    assert not any(n.startswith("jsonl/") for n in names)
    stix2.parse((result.exports / "stix" / "p1.stix.json").read_text())


def test_a_leftover_build_is_cleaned_up_whatever_the_database_is_called(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    db = tmp_path / "out" / "r [1].duckdb"  # brackets: a glob pattern, if taken as one
    run_pipeline(cfg, database=db, stages=[("senders", _count_stage)])
    leftover = db.with_name(f".{db.name}.build-20260101T000000Z-dead00")
    leftover.write_bytes(b"half a database")
    run_pipeline(cfg, database=db, stages=[("senders", _count_stage)])
    assert not leftover.exists()
    runs = _read(db, "SELECT run_id, error FROM runs WHERE status = 'failed'")
    assert [r[0] for r in runs] == ["20260101T000000Z-dead00"] and "abandoned" in runs[0][1]


def test_a_folder_of_someone_elses_files_is_not_taken_as_the_exports_folder(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files that no run wrote"):
        run_pipeline(cfg, exports=reports)
    assert (reports / "notes.txt").read_text() == "mine"
    first = run_pipeline(cfg)  # its own folder: written, marked, and replaced by the next run
    assert (first.exports / ".reputation-exports").exists()
    run_pipeline(cfg)
    assert (first.exports / ".reputation-exports").exists()


def test_a_stage_that_compiles_a_kernel_says_so_and_records_the_time(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    from numba import njit

    @njit
    def fresh_kernel(x: int) -> int:  # never compiled before this run: numba compiles it inside the stage
        return x * 7

    def _compiling_stage(con: duckdb.DuckDBPyConnection, ctx) -> int:
        return fresh_kernel(6) - 42

    cfg = _world(tmp_path)
    said: list[str] = []
    with caplog.at_level("INFO", logger="reputation"):
        first = run_pipeline(cfg, stages=[("senders", _count_stage), ("kernel", _compiling_stage)],
                             progress=said.append)
    assert "kernel: compiling numba kernels (first run of this version on this machine)" in said
    assert any("stage kernel compiled 1 numba kernels" in m for m in caplog.messages)
    recorded = dict(_read(first.database, "SELECT stage, compile_seconds FROM stage_metrics"))
    assert recorded["kernel"] > 0 and recorded["senders"] == 0.0
    assert first.compile_seconds == pytest.approx(sum(recorded.values()))
    # the next run finds the kernel compiled: nothing to say, nothing recorded
    said.clear()
    second = run_pipeline(cfg, stages=[("senders", _count_stage), ("kernel", _compiling_stage)], progress=said.append)
    assert second.compile_seconds == 0.0 and not any("compiling" in m for m in said)
    rows = _read(second.database, "SELECT run_id, compile_seconds FROM stage_metrics WHERE stage = 'kernel'")
    assert dict(rows)[second.run_id] == 0.0 and dict(rows)[first.run_id] > 0  # the history carries over


def test_the_run_history_of_a_database_from_before_compile_seconds_carries_over(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    first = run_pipeline(cfg, stages=[("senders", _count_stage)])
    con = duckdb.connect(str(first.database))
    con.execute("ALTER TABLE stage_metrics DROP COLUMN compile_seconds")  # as an older version wrote it
    con.close()
    second = run_pipeline(cfg, stages=[("senders", _count_stage)])
    rows = _read(second.database, "SELECT run_id, count(*), count(compile_seconds) FROM stage_metrics GROUP BY run_id")
    # the old run's stages are kept (without a compile time), the new run's have one each
    assert sorted(rows) == sorted([(first.run_id, 3, 0), (second.run_id, 3, 3)])


def _leave_a_failure_record_in_the_log(db: Path) -> None:
    """A failure record that could not be checkpointed (a full disk, a kill): it stays in the database's log."""
    con = duckdb.connect(str(db))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("SET checkpoint_threshold = '1GB'")
    con.execute("INSERT INTO runs (run_id, status, error) VALUES ('20260101T000000Z-walwal', 'failed', 'disk full')")
    con.close()


def test_a_log_left_beside_the_published_database_goes_with_it_to_previous(tmp_path: Path) -> None:
    cfg = _world(tmp_path)
    db = run_pipeline(cfg, stages=[("senders", _count_stage)]).database
    _leave_a_failure_record_in_the_log(db)
    assert db.with_name(db.name + ".wal").exists()
    run_pipeline(cfg, stages=[("senders", _count_stage)])
    assert not db.with_name(db.name + ".wal").exists()
    runs = _read(db, "SELECT run_id, status FROM runs ORDER BY started_at NULLS FIRST")
    assert ("20260101T000000Z-walwal", "failed") in runs and runs[-1][1] == "complete"  # readable, history kept
    assert ("20260101T000000Z-walwal", "failed") in _read(db.with_name(db.name + ".previous"), "SELECT run_id, status "
                                                                                                "FROM runs")


@pytest.mark.parametrize("killed_at", ["between the exports renames", "after the exports swap",
                                       "after the database swap", "in a recovery, the marker gone"])
def test_a_run_killed_while_publishing_leaves_exports_in_step_with_the_database(tmp_path: Path,
                                                                                killed_at: str) -> None:
    import shutil

    from reputation.config import load_config
    from reputation.pipeline import EXPORTS_MARKER, _Runner

    cfg = _world(tmp_path)
    first = run_pipeline(cfg)
    exports, marker = first.exports, first.exports / EXPORTS_MARKER
    published = marker.read_text()
    killed = "20261231T000000Z-k1ll3d"
    aside = exports.with_name(f".{exports.name}.old-{killed}")
    shutil.copytree(exports, aside)  # what a killed run's _publish leaves, by the step it reached
    if killed_at == "between the exports renames":
        shutil.rmtree(exports)
    elif killed_at == "after the exports swap":
        marker.write_text(f"written by reputation run {killed}\n")
    elif killed_at == "in a recovery, the marker gone":  # a recovery that was removing the killed run's exports
        marker.unlink()
    else:  # its database went out too: its exports are the published ones, the folder aside is the old one
        first_id = published.splitlines()[0].split()[-1]
        con = duckdb.connect(str(first.database))
        con.execute("UPDATE runs SET run_id = ? WHERE run_id = ?", [killed, first_id])
        con.close()
        marker.write_text(f"written by reputation run {killed}\n")
        published = marker.read_text()
    runner = _Runner(load_config(cfg), first.database, exports, None)
    runner._recover_interrupted_publish()
    assert marker.read_text() == published and not aside.exists()
    assert sorted(p.name for p in exports.iterdir()) == sorted(p.name for p in first.exports.iterdir())


def test_spill_folders_of_killed_runs_are_removed_by_the_next_run(tmp_path: Path) -> None:
    from reputation.pipeline import spill_folder

    cfg = _world(tmp_path)
    db = run_pipeline(cfg, stages=[("senders", _count_stage)]).database
    leftover = spill_folder(db.with_name(f".{db.name}.build-20260101T000000Z-dead01"))
    leftover.mkdir()
    (leftover / "duckdb_temp_storage_DEFAULT-0.tmp").write_bytes(b"\0" * 4096)
    run_pipeline(cfg, stages=[("senders", _count_stage)])
    assert not leftover.exists()
    assert not [p for p in db.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_changed_hashing_key_is_recorded_and_warned_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    cfg = _world(tmp_path)
    first = run_pipeline(cfg, stages=[("senders", _count_stage)])  # a generated key file
    run_pipeline(cfg, stages=[("senders", _count_stage)])
    assert "hashing key is not the one" not in caplog.text
    monkeypatch.setenv("REPUTATION_HASH_KEY", "another-key-of-32-bytes-or-so-....")
    last = run_pipeline(cfg, stages=[("senders", _count_stage)])
    assert "hashing key is not the one the published results were made with" in caplog.text
    ids = dict(_read(last.database, "SELECT run_id, key_id FROM runs"))
    assert ids[first.run_id] != ids[last.run_id] and len(ids[last.run_id]) == 16
    # a database from before key ids: the old runs have none, and no warning is made up
    con = duckdb.connect(str(last.database))
    con.execute("ALTER TABLE runs DROP COLUMN key_id")
    con.close()
    caplog.clear()
    monkeypatch.delenv("REPUTATION_HASH_KEY")
    again = run_pipeline(cfg, stages=[("senders", _count_stage)])
    assert "hashing key is not the one" not in caplog.text
    assert _read(again.database, "SELECT count(key_id) FROM runs") == [(1,)]


def test_a_log_moved_aside_by_a_run_killed_before_its_swap_is_put_back(tmp_path: Path) -> None:
    import os

    from reputation.config import load_config
    from reputation.pipeline import _Runner

    cfg = _world(tmp_path)
    db = run_pipeline(cfg, stages=[("senders", _count_stage)]).database
    _leave_a_failure_record_in_the_log(db)
    previous = db.with_name(db.name + ".previous")
    previous.unlink(missing_ok=True)
    os.link(db, previous)  # what _publish did before it was killed: the old file linked, its log moved
    os.replace(db.with_name(db.name + ".wal"), previous.with_name(previous.name + ".wal"))
    _Runner(load_config(cfg), db, db.with_name("exports"), None)._recover_interrupted_publish()
    assert ("20260101T000000Z-walwal",) in _read(db, "SELECT run_id FROM runs")


def test_the_configs_own_database_by_another_path_keeps_the_configs_exports(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    cfg = _world(tmp_path)
    cfg.write_text(cfg.read_text().replace('database = "out/r.duckdb"', f'database = "{tmp_path}/link/r.duckdb"')
                   .replace('exports = "out/exports"', f'exports = "{tmp_path}/link/exports"'))  # absolute
    run_pipeline(cfg)
    second = run_pipeline(cfg, database=tmp_path / "real" / "r.duckdb")
    assert second.exports.resolve() == (tmp_path / "real" / "exports").resolve()
    assert not (tmp_path / "real" / "r-exports").exists()
    assert read_exports_marker(tmp_path / "real" / "exports")[0] == second.run_id
