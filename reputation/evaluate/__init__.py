"""Evaluation of a run's database against a generated world's ground truth (``truth/``).

``reputation evaluate --db DB --truth DIR`` prints one JSON object with one part per capability:
``linkage`` (same-person pairs), ``campaigns`` (operators) and ``reputation`` (scores and verdicts).
Each part is computed by its own module; a part whose tables are missing reports ``{"error": ...}``
instead of failing the whole report.
"""

from __future__ import annotations

import importlib
import logging
import math
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger("reputation")

PARTS = (
    ("linkage", "reputation.evaluate.linkage", "evaluate_linkage"),
    ("campaigns", "reputation.evaluate.campaigns", "evaluate_campaigns"),
    ("reputation", "reputation.evaluate.reputation", "evaluate_reputation"),
)


class EvaluationInputError(ValueError):
    """The truth folder or the database cannot be evaluated (the CLI exits with 3, an input error)."""


def _check_inputs(con: duckdb.DuckDBPyConnection, truth: Path) -> None:
    """Refuse a truth folder that is not one, a database that is not a run's, or a pair that do not match
    (scoring a database against another world's truth gives metrics that mean nothing)."""
    accounts = truth / "accounts.parquet"
    if not accounts.exists():
        raise EvaluationInputError(f"{truth} has no accounts.parquet: is it a generated world's truth/ folder?")
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if not {"runs", "accounts"} <= tables:
        raise EvaluationInputError("the database has no runs or accounts table: is it a run's published database?")
    matched = con.execute("""SELECT count(*) FROM read_parquet(?) t
                             SEMI JOIN accounts a ON a.platform = t.platform AND a.account = t.account""",
                          [str(accounts)]).fetchall()[0][0]
    if not matched:
        raise EvaluationInputError(f"none of the accounts in {accounts} is in the database: "
                                   "is it the truth of the world this database was built from?")


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float (a metric undefined on the data) replaced by None,
    so that the JSON report is valid JSON (``null``), as strict parsers require.

    >>> finite_or_none({"auc": float("nan"), "n": [1, 2.5, float("inf")]})
    {'auc': None, 'n': [1, 2.5, None]}
    """
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate_connection(con: duckdb.DuckDBPyConnection, truth_dir: Path | str) -> dict[str, Any]:
    """Every evaluation part for the database open on ``con``.

    Raises ``EvaluationInputError`` when ``truth_dir`` is not a truth folder, the database is not a run's,
    or no account of the truth is in the database.
    """
    truth = Path(truth_dir)
    _check_inputs(con, truth)
    report: dict[str, Any] = {}
    run = next(iter(con.execute("SELECT run_id FROM runs WHERE status = 'complete' ORDER BY finished_at DESC "
                                "LIMIT 1").fetchall()), None)
    report["run_id"] = run[0] if run else None
    for part, module, function in PARTS:
        try:
            fn = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as exc:
            report[part] = {"error": f"not available: {exc}"}
            continue
        cursor = con.cursor()  # each part on its own cursor: one part's unfetched result cannot block another
        try:
            report[part] = fn(cursor, truth)
        except duckdb.CatalogException as exc:
            report[part] = {"error": f"missing table: {str(exc).splitlines()[0]}"}
        finally:
            cursor.close()
    return report


def evaluate_database(db: Path | str, truth_dir: Path | str) -> dict[str, Any]:
    """Open ``db`` read-only and evaluate it against ``truth_dir``."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return evaluate_connection(con, truth_dir)
    finally:
        con.close()


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, float):
        out.append((prefix, f"{value:.4f}"))
    else:
        out.append((prefix, str(value)))


def render_table(report: dict[str, Any]) -> str:
    """The report as an aligned two-column table for people."""
    rows: list[tuple[str, str]] = []
    _flatten("", report, rows)
    width = max((len(k) for k, _ in rows), default=10)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
