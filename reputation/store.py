"""DuckDB store helpers: documentation of tables and columns (``COMMENT ON``)."""

from __future__ import annotations

import duckdb


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    # COMMENT ON does not take prepared parameters in DuckDB; the comment text is our own
    # documentation (never input data), escaped as a SQL string literal.
    return "'" + text.replace("'", "''") + "'"


def comment_table(con: duckdb.DuckDBPyConnection, table: str, doc: str, columns: dict[str, str] | None = None,
                  kind: str = "TABLE") -> None:
    """Attach documentation to ``table`` (or view, with ``kind="VIEW"``) and its columns.

    Example
    -------
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE t (x INT)")
    >>> comment_table(con, "t", "A table.", {"x": "A column."})
    >>> con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 't'").fetchall()
    [('A column.',)]
    """
    con.execute(f"COMMENT ON {kind} {_quote_ident(table)} IS {_quote_literal(doc)}")
    for column, text in (columns or {}).items():
        con.execute(f"COMMENT ON COLUMN {_quote_ident(table)}.{_quote_ident(column)} IS {_quote_literal(text)}")
