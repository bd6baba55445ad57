"""Command-line interface: ``reputation run | demo | generate | evaluate | explain | export | query``.

Exit codes (for schedulers):

====  ==============================================================================
0     success
1     the run failed in a stage (published results unchanged; see the runs table)
2     usage or config error (the message names the key or option), or an output path that cannot be written
3     input error: a missing or unreadable file (a database that is not one), a mapped column a file lacks,
      no messages
====  ==============================================================================

Progress goes to stderr, and only when stderr is a terminal; logs stay quiet otherwise.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import click

from . import __version__
from .config import ConfigError

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_INPUT = 0, 1, 2, 3
log = logging.getLogger("reputation")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    if quiet:
        level = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger("reputation")
    root.handlers[:] = [handler]
    root.setLevel(level)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


#: How long a reader waits for a write lock on a published database to go (a failed run writing its record
#: into the ``runs`` table holds one for a moment; nothing else writes a published database).
LOCK_WAIT_SECONDS = 10.0


def _open_database(db: Path, **options):  # noqa: ANN003, ANN202 - duckdb's connect options and connection
    """``db`` opened read-only, or a clean error (exit 3) when it is not a DuckDB database or cannot be read.

    A write lock held on it (a failed run recording itself) is waited out for up to ``LOCK_WAIT_SECONDS``.
    """
    import time

    import duckdb

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return duckdb.connect(str(db), read_only=True, **options)
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            if "Could not set lock" not in message:
                _fail(f"{db}: cannot open it as a DuckDB database: {message}", EXIT_INPUT)
            if time.monotonic() > deadline:
                _fail(f"{db}: another process has held a write lock on it for over {LOCK_WAIT_SECONDS:g} s "
                      f"({message})", EXIT_INPUT)
            time.sleep(0.05)


def _cannot_write(path: Path, exc: BaseException) -> None:
    """A clean error (exit 2, as for any bad option value) for an output file that cannot be written."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
    _fail(f"cannot write {path}: {reason}", EXIT_USAGE)


class _Progress:
    """A spinner with the current stage on an interactive stderr; nothing otherwise."""

    def __init__(self) -> None:
        self.status = None
        if sys.stderr.isatty():
            from rich.console import Console

            self.status = Console(stderr=True).status("starting")

    def __enter__(self) -> _Progress:
        if self.status:
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status:
            self.status.__exit__(*exc)

    def __call__(self, message: str) -> None:
        if self.status:
            self.status.update(message)


def _execute_run(config: Path, db: Path | None, exports: Path | None):  # noqa: ANN202 - RunResult
    from .ingest import InputError
    from .pipeline import RunFailed, RunLocked, run_pipeline

    try:
        with _Progress() as progress:
            return run_pipeline(config, db, exports, progress=progress)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except InputError as exc:
        _fail(f"{exc}\nThe run failed; the previously published results are unchanged.", EXIT_INPUT)
    except RunLocked as exc:
        _fail(f"{exc}\nNothing was run or recorded; the published results are unchanged.", EXIT_RUN_FAILED)
    except RunFailed as exc:
        _fail(f"{exc}\nThe run failed (run id {exc.run_id}); the previously published results are unchanged. "
              "Re-run with -v for the full log.", EXIT_RUN_FAILED)


def _print_summary(result, top: int = 10) -> None:  # noqa: ANN001
    import duckdb

    click.echo(f"run {result.run_id}: {result.status}")
    click.echo(f"  rows read {result.rows_read:,}, quarantined {result.rows_quarantined:,}")
    click.echo("  stages:")
    for name, seconds, rows, peak in result.stages:
        click.echo(f"    {name:<13} {rows:>12,} rows {seconds:8.2f} s  peak {peak:,.0f} MiB")
    if result.compile_seconds >= 0.05:
        click.echo(f"  of which compiling numba kernels: {result.compile_seconds:.1f} s (the first run of this "
                   "version on this machine; later runs load them from numba's cache)")
    con = duckdb.connect(str(result.database), read_only=True)
    try:
        has_rep = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reputation'").fetchall()[0][0]
        if has_rep:
            click.echo("  verdicts: " + ", ".join(
                f"{v} {n:,}" for v, n in con.execute(
                    "SELECT verdict, count(*) FROM reputation GROUP BY verdict ORDER BY verdict").fetchall()))
            rows = con.execute("""
                SELECT identity_id, count(*) AS accounts, count(DISTINCT platform) AS platforms, max(score) AS score,
                       string_agg(DISTINCT platform, ',' ORDER BY platform) AS on_platforms,
                       list_distinct(flatten(list(flagged_on))) AS flagged_on
                FROM reputation WHERE verdict = 'spam' GROUP BY identity_id
                ORDER BY platforms DESC, score DESC, accounts DESC, identity_id LIMIT ?""", [top]).fetchall()
            if rows:
                click.echo("  top spam identities across platforms:")
                for ident, n, _k, score, plats, flagged in rows:
                    click.echo(f"    {ident:<22} {n:>3} accounts on {plats:<28} score {score:.3f} "
                               f"flagged on {','.join(flagged or []) or '-'}")
    finally:
        con.close()
    click.echo(f"  database: {result.database}")
    click.echo(f"  exports:  {result.exports}")
    click.echo(f"  query it: reputation query --db {result.database} \"SELECT * FROM reputation LIMIT 10\"")
    click.echo(f"  explain:  reputation explain --db {result.database} PLATFORM:ACCOUNT")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reputation")
@click.option("-v", "--verbose", count=True, help="Log stages (-v) or everything (-vv) to stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(verbose: int, quiet: bool) -> None:
    """Cross-platform spammer reputation graph engine."""
    _setup_logging(verbose, quiet)


@main.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--db", type=click.Path(path_type=Path),
              help="Output database (overrides the config; alone, its exports go to NAME-exports beside it).")
@click.option("--exports", type=click.Path(path_type=Path), help="Exports folder (overrides the config).")
@click.option("--summary/--no-summary", default=True, help="Print a summary when done.")
def run(config: Path, db: Path | None, exports: Path | None, summary: bool) -> None:
    """Run every stage for CONFIG and publish the results atomically."""
    result = _execute_run(config, db, exports)
    if summary:
        _print_summary(result)


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option("--accounts", type=click.IntRange(min=1), default=3000, show_default=True,
              help="Approximate number of accounts.")
@click.option("--platforms", type=click.IntRange(min=1), default=3, show_default=True, help="Number of platforms.")
@click.option("--days", type=click.IntRange(min=1), default=60, show_default=True, help="Days of activity.")
@click.option("--difficulty", type=click.Choice(["easy", "default", "adversarial"]), default="default",
              show_default=True)
@click.option("--messages", type=click.IntRange(min=1), default=None,
              help="Target message count (overrides --accounts).")
def generate(out_dir: Path, seed: int, accounts: int, platforms: int, days: int, difficulty: str,
             messages: int | None) -> None:
    """Write a synthetic multi-platform world with ground truth and a ready pipeline.toml."""
    from .generate import WorldArgumentError, generate_world

    try:
        summary = generate_world(out_dir, seed=seed, accounts=accounts, platforms=platforms, days=days,
                                 difficulty=difficulty, messages=messages)
    except WorldArgumentError as exc:
        _fail(str(exc), EXIT_USAGE)
    click.echo(json.dumps(summary.to_dict(), indent=2, default=str))


@main.command()
@click.option("--dir", "out_dir", default="demo", show_default=True, type=click.Path(path_type=Path),
              help="Folder for the generated world and the database.")
@click.option("--seed", default=1, show_default=True)
@click.option("--accounts", default=3000, show_default=True)
def demo(out_dir: Path, seed: int, accounts: int) -> None:
    """Generate a small world, run the whole pipeline on it, and print a summary."""
    from .generate import WorldArgumentError, generate_world

    click.echo(f"generating a synthetic world in {out_dir} ...")
    try:
        world = generate_world(out_dir, seed=seed, accounts=accounts)
    except WorldArgumentError as exc:
        _fail(str(exc), EXIT_USAGE)
    click.echo(f"  {world.messages:,} messages, {world.accounts:,} accounts on {world.to_dict().get('platforms', 3)} "
               f"platforms; ground truth in {out_dir / 'truth'}")
    result = _execute_run(Path(world.config_path), None, None)
    _print_summary(result)
    click.echo(f"  evaluate: reputation evaluate --db {result.database} --truth {out_dir / 'truth'}")


@main.command()
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--truth", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="json", show_default=True)
def evaluate(db: Path, truth: Path, fmt: str) -> None:
    """Score a run's database against a generated world's ground truth."""
    from .evaluate import EvaluationInputError, evaluate_connection, finite_or_none, render_table

    con = _open_database(db)
    try:
        report = evaluate_connection(con, truth)
    except EvaluationInputError as exc:
        _fail(str(exc), EXIT_INPUT)
    finally:
        con.close()
    if fmt == "json":  # an undefined metric (no positives, say) is null: bare NaN is not JSON
        click.echo(json.dumps(finite_or_none(report), indent=2, default=float, allow_nan=False))
    else:
        click.echo(render_table(report))


@main.command()
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--graph", "graph_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the evidence subgraph as GraphML.")
def explain(db: Path, target: str, fmt: str, graph_file: Path | None) -> None:
    """Print the evidence behind TARGET's score (TARGET is PLATFORM:ACCOUNT)."""
    from . import explain as ex

    if ":" not in target:
        _fail(f"expected PLATFORM:ACCOUNT, got {target!r}", EXIT_USAGE)
    platform, account = target.split(":", 1)
    con = _open_database(db)
    try:
        try:
            expl = ex.explain(con, platform, account)
        except KeyError as exc:
            _fail(str(exc.args[0]) if exc.args else f"unknown account {target}", EXIT_USAGE)
        if fmt == "json":
            click.echo(json.dumps(expl, indent=2, default=str))
        else:
            click.echo(ex.render_text(expl, width=shutil.get_terminal_size((120, 24)).columns))
        if graph_file:
            try:
                ex.write_graphml(ex.evidence_graph(con, platform, account), graph_file)
            except OSError as exc:
                _cannot_write(graph_file, exc)
            click.echo(f"evidence graph written to {graph_file}", err=True)
    finally:
        con.close()


@main.command()
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--platform", required=True)
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "jsonl", "stix"]), required=True)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--min-score", type=float, default=None, help="Only accounts with at least this score.")
def export(db: Path, platform: str, fmt: str, out: Path, min_score: float | None) -> None:
    """Write one platform's reputation export."""
    from .export import ExportWriteError, export_platform

    con = _open_database(db)
    try:
        n = export_platform(con, platform, fmt, out, min_score=min_score)
    except ExportWriteError as exc:
        _fail(str(exc), EXIT_USAGE)
    except KeyError as exc:
        _fail(str(exc.args[0]) if exc.args else f"unknown platform {platform}", EXIT_USAGE)
    except LookupError as exc:
        _fail(f"{db}: {exc}", EXIT_INPUT)
    finally:
        con.close()
    click.echo(f"{n:,} rows written to {out}", err=True)


#: Rows per Arrow batch streamed out of a ``query`` (the result is never held whole).
QUERY_BATCH_ROWS = 65_536
_NESTED_TYPES = ("list", "struct", "map", "array", "union")


def _flat_for_csv(rel):  # noqa: ANN001, ANN202 - duckdb relations
    """``rel`` with each nested column (list, struct, map) as its JSON text: CSV cells hold scalars only."""
    if not any(t.id in _NESTED_TYPES for t in rel.types):
        return rel
    exprs = []
    for name, t in zip(rel.columns, rel.types, strict=True):
        ident = '"' + name.replace('"', '""') + '"'  # an identifier of the result, quoted (not a value)
        exprs.append(f"CAST(to_json({ident}) AS VARCHAR) AS {ident}" if t.id in _NESTED_TYPES else ident)
    return rel.project(", ".join(exprs))


def _print_table(reader, limit: int) -> None:  # noqa: ANN001 - a pyarrow RecordBatchReader
    """Render the first ``limit`` rows (0: all) as a table; the rest are counted, not kept.

    In a terminal a long value wraps inside its cell; piped or redirected, the table is as wide as its
    widest row, so no value is ever cut short (an account id can be copied into ``explain``).
    """
    from rich.console import Console
    from rich.table import Table

    out = Table(show_lines=False)
    for name in reader.schema.names:
        out.add_column(name, overflow="fold")
    shown = total = 0
    for batch in reader:
        total += batch.num_rows
        if limit > 0 and shown >= limit:
            continue
        take = batch if limit <= 0 else batch.slice(0, limit - shown)
        for row in take.to_pylist():
            out.add_row(*("NULL" if v is None else str(v) for v in row.values()))
        shown += take.num_rows
    plain = {"markup": False, "emoji": False, "highlight": False}  # values print as they are ("[b]", ":x:")
    console = Console(**plain)
    if not console.is_terminal:
        console = Console(width=max(80, Console(width=1_000_000, **plain).measure(out).maximum), **plain)
    console.print(out)
    if shown < total:
        console.print(f"{shown} of {total:,} rows shown (--limit 0 shows all)")


@main.command()
@click.option("--db", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("sql")
@click.option("-p", "--param", "params", multiple=True,
              help="A value for the next ? placeholder in SQL (repeat in order); values are never pasted in.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "jsonl"]), default="table", show_default=True)
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Rows shown by --format table (0: all).")
def query(db: Path, sql: str, params: tuple[str, ...], fmt: str, limit: int) -> None:
    """Run SQL against a run's database, read-only (no DuckDB CLI needed).

    Example: ``reputation query --db out/reputation.duckdb "SELECT verdict, count(*) FROM reputation
    WHERE platform = ? GROUP BY 1" -p chirp``. The database is opened read-only, and the query sees
    nothing else: no file read or written (``COPY ... TO``, ``read_csv``), no other database attached
    (the ``.previous`` copy, say), no setting changed. So a query can neither change the published results
    nor read the hashing key beside them, and never blocks the next run's publish. Results stream out in
    batches (a query over every message needs no memory for the whole result); in CSV a list or struct
    column is written as its JSON text.
    """
    import duckdb

    con = _open_database(db, config={"enable_external_access": False})
    con.execute("SET lock_configuration = true")
    try:
        try:
            rel = con.sql(sql, params=list(params) or None)
            if fmt == "csv":
                import pyarrow.csv as pacsv

                reader = _flat_for_csv(rel).to_arrow_reader(QUERY_BATCH_ROWS)
                sink = sys.stdout.buffer
                with pacsv.CSVWriter(sink, reader.schema) as writer:
                    for batch in reader:
                        writer.write_batch(batch)
                sink.flush()
            elif fmt == "jsonl":
                for batch in rel.to_arrow_reader(QUERY_BATCH_ROWS):
                    for row in batch.to_pylist():
                        click.echo(json.dumps(row, default=str))
            else:
                _print_table(rel.to_arrow_reader(QUERY_BATCH_ROWS), limit)
        except duckdb.Error as exc:
            _fail(f"query failed: {exc}", EXIT_USAGE)
    finally:
        con.close()


if __name__ == "__main__":
    main()
