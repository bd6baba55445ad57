"""Flag evidence: confidence, half-life decay, expiry, clean flags as negative evidence, overrides."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from reputation.config import Settings
from reputation.context import StageContext
from reputation.schema import STORED_TABLES
from reputation.scoring.flags import build_flag_evidence

AS_OF = datetime(2026, 3, 1)


def _con(flags: list[tuple], overrides: list[tuple] = ()) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(STORED_TABLES["flags"].ddl())
    con.execute(STORED_TABLES["overrides"].ddl())
    con.executemany("INSERT INTO flags VALUES ('r', ?, ?, ?, ?, ?, ?)", flags)
    if overrides:
        con.executemany("INSERT INTO overrides VALUES ('r', ?, ?, ?, ?, ?, ?)", list(overrides))
    return con


def _evidence(con: duckdb.DuckDBPyConnection, half_life: float = 90.0, expiry: float = 365.0) -> dict:
    ctx = StageContext("run", Settings(flag_half_life_days=half_life, flag_expiry_days=expiry), AS_OF)
    build_flag_evidence(con, ctx)
    rows = con.execute("SELECT account, spam_evidence, clean_evidence, evidence, override FROM flag_evidence"
                       ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_half_life_halves_the_weight() -> None:
    con = _con([("p", "fresh", "spam", AS_OF, "mod", 0.8),
                ("p", "old", "spam", AS_OF - timedelta(days=90), "mod", 0.8)])
    ev = _evidence(con, half_life=90)
    assert ev["fresh"][0] == pytest.approx(0.8)
    assert ev["old"][0] == pytest.approx(0.4)


def test_expired_flags_are_dropped_and_missing_time_counts_as_fresh() -> None:
    con = _con([("p", "ancient", "spam", AS_OF - timedelta(days=400), "mod", 1.0),
                ("p", "undated", "spam", None, "mod", None)])
    ev = _evidence(con, expiry=365)
    assert "ancient" not in ev
    assert ev["undated"][0] == pytest.approx(0.999)  # confidence defaults to 1, capped below 1


def test_repeated_flags_combine_by_noisy_or_and_clean_is_negative() -> None:
    con = _con([("p", "a", "spam", AS_OF, "u1", 0.5), ("p", "a", "spam", AS_OF, "u2", 0.5),
                ("p", "b", "clean", AS_OF, "mod", 0.6), ("p", "c", "spam", AS_OF, "mod", 0.5),
                ("p", "c", "clean", AS_OF, "mod", 0.5)])
    ev = _evidence(con)
    assert ev["a"][0] == pytest.approx(0.75)
    assert ev["b"][2] == pytest.approx(-0.6)
    assert ev["c"][2] == pytest.approx(0.0)


def test_future_flag_is_not_amplified() -> None:
    con = _con([("p", "a", "spam", AS_OF + timedelta(days=30), "mod", 0.7)])
    assert _evidence(con)["a"][0] == pytest.approx(0.7)


def test_a_pinned_as_of_leaves_out_flags_and_overrides_dated_after_it(caplog: pytest.LogCaptureFixture) -> None:
    # a replay of AS_OF must not see the verdicts that came later; the latest message time as as_of does
    flags = [("p", "later", "spam", AS_OF + timedelta(hours=1), "mod", 0.7),
             ("p", "before", "spam", AS_OF - timedelta(days=1), "mod", 0.7),
             ("p", "undated", "spam", None, "mod", 0.7)]
    overrides = [("p", "before", "clean", "appeal upheld", "y", AS_OF + timedelta(days=3)),
                 ("p", "undated", "clean", "reviewed", "y", None)]
    con = _con(flags, overrides)
    build_flag_evidence(con, StageContext("run", Settings(), AS_OF, as_of_pinned=True))
    ev = {r[0]: r[1:] for r in con.execute("SELECT account, spam_evidence, override FROM flag_evidence").fetchall()}
    assert set(ev) == {"before", "undated"}
    assert ev["before"] == (pytest.approx(0.7 * 0.5 ** (1 / 90)), None)  # the later appeal is not yet known
    assert ev["undated"] == (pytest.approx(0.7), "clean")  # undated: counts as at as_of, as always
    assert "1 flag(s) and 1 override(s) dated after it are left out" in caplog.text
    unpinned = _evidence(_con(flags, overrides))
    assert unpinned["later"][0] == pytest.approx(0.7) and unpinned["before"][3] == "clean"


def test_latest_override_is_kept_even_without_flags() -> None:
    con = _con([("p", "a", "spam", AS_OF, "mod", 0.9)],
               [("p", "a", "spam", "first look", "x", AS_OF - timedelta(days=2)),
                ("p", "a", "clean", "appeal upheld", "y", AS_OF - timedelta(days=1)),
                ("p", "z", "spam", "seen it", "x", AS_OF)])
    ev = _evidence(con)
    assert ev["a"][3] == "clean"
    assert ev["z"] == (0.0, 0.0, 0.0, "spam")


def test_platform_is_part_of_the_key() -> None:
    con = _con([("p", "a", "spam", AS_OF, "mod", 0.9), ("q", "a", "clean", AS_OF, "mod", 0.9)])
    build_flag_evidence(con, StageContext("run", Settings(), AS_OF))
    rows = con.execute("SELECT platform, evidence FROM flag_evidence ORDER BY platform").fetchall()
    assert [(p, round(e, 2)) for p, e in rows] == [("p", 0.9), ("q", -0.9)]
