"""Fixtures shared by the benchmark-harness tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny generated world and the database of one pipeline run over it (one run for the session)."""
    from reputation.generate import generate_world
    from reputation.pipeline import run_pipeline

    os.environ.setdefault("REPUTATION_HASH_KEY", "smoke-test-key")
    world = tmp_path_factory.mktemp("world")
    summary = generate_world(world, seed=3, accounts=200, platforms=3, days=10)
    db = world / "out" / "reputation.duckdb"
    run_pipeline(summary.config_path, database=db, exports=world / "out" / "exports")
    return world, db
