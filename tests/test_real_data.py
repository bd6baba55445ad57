"""The real datasets in ../shared/data/real ingest through the configs in pipelines/ with no code."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from reputation.config import load_config
from reputation.pipeline import run_pipeline

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


@pytest.mark.parametrize(
    ("config", "messages", "accounts"),
    [("collegemsg.toml", 59_835, 1_899), ("bitcoin-alpha.toml", 24_186, 3_783)],
)
def test_real_config_ingests_and_reconciles(tmp_path: Path, config: str, messages: int, accounts: int) -> None:
    cfg = load_config(ROOT / "pipelines" / config)
    if not Path(cfg.sources[0].pattern).exists():
        pytest.skip(f"real data not present at {REAL}")
    result = run_pipeline(cfg, database=tmp_path / "r.duckdb", exports=tmp_path / "exports", stages=[])
    con = duckdb.connect(str(result.database), read_only=True)
    try:
        (read, stored, quarantined), = con.execute(
            "SELECT rows_read, rows_stored, rows_quarantined FROM runs WHERE status = 'complete'").fetchall()
        assert (read, stored, quarantined) == (messages, messages, 0)
        assert con.execute("SELECT count(*) FROM messages WHERE sent_at IS NULL").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM accounts").fetchone()[0] == accounts
        lo, hi = con.execute("SELECT min(sent_at), max(sent_at) FROM messages").fetchone()
        assert lo.year >= 2003 and hi.year <= 2016
    finally:
        con.close()


def test_nightly_config_parses() -> None:
    cfg = load_config(ROOT / "pipelines" / "nightly.toml")
    assert {s.table for s in cfg.sources} == {"messages", "accounts", "flags", "links", "overrides"}
    assert cfg.settings.validity_days == 7 and cfg.settings.memory_limit == "16GB"
