"""Evaluation of a run's database against a generated world's ground truth (``truth/``).

``reputation evaluate --db DB --truth DIR`` prints one JSON object with one part per capability:
``linkage`` (same-person pairs), ``campaigns`` (operators) and ``reputation`` (scores and verdicts).
Each part is computed by its own module; a part whose tables are missing reports ``{"error": ...}``
instead of failing the whole report.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger("reputation")

PARTS = (
    ("linkage", "reputation.evaluate.linkage", "evaluate_linkage"),
    ("campaigns", "reputation.evaluate.campaigns", "evaluate_campaigns"),
    ("reputation", "reputation.evaluate.reputation", "evaluate_reputation"),
)


def evaluate_connection(con: duckdb.DuckDBPyConnection, truth_dir: Path | str) -> dict[str, Any]:
    """Every evaluation part for the database open on ``con``."""
    truth = Path(truth_dir)
    if not (truth / "accounts.parquet").exists():
        raise FileNotFoundError(f"{truth} has no accounts.parquet: is it a generated world's truth/ folder?")
    report: dict[str, Any] = {}
    run = con.execute("SELECT run_id FROM runs WHERE status = 'complete' ORDER BY finished_at DESC LIMIT 1").fetchone()
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
