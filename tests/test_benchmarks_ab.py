"""The A/B harness: which code each side runs, the interleaving, the summary and the output comparison."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from benchmarks import ab
from benchmarks.common import ROOT


def _git_ok() -> bool:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not _git_ok(), reason="needs git and this checkout's history")
def test_a_revision_is_extracted_once_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    tree, label = ab.resolve_tree("HEAD", tmp_path)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert tree == tmp_path / "trees" / head[:12] and head[:7] in label
    committed = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:reputation/pipeline.py"],
                               capture_output=True, text=True).stdout
    assert (tree / "reputation" / "pipeline.py").read_text() == committed
    assert not (tree / "benchmarks").exists()  # the harness is always this checkout's
    stamp = (tree / "reputation" / "pipeline.py").stat().st_mtime_ns
    assert ab.resolve_tree("HEAD", tmp_path)[0] == tree
    assert (tree / "reputation" / "pipeline.py").stat().st_mtime_ns == stamp  # reused, not extracted again
    with pytest.raises(ValueError, match="neither a directory"):
        ab.resolve_tree("no-such-revision-xyz", tmp_path)


def test_a_directory_is_used_as_is_and_none_is_the_working_tree(tmp_path: Path) -> None:
    (tmp_path / "v1" / "reputation").mkdir(parents=True)
    (tmp_path / "v1" / "reputation" / "__init__.py").write_text("")
    assert ab.resolve_tree(str(tmp_path / "v1"), tmp_path / "work")[0] == (tmp_path / "v1").resolve()
    assert ab.resolve_tree(None, tmp_path)[0] == ROOT


_STUB_PIPELINE = '''
from pathlib import Path
from types import SimpleNamespace

def run_pipeline(config_path, database, exports, progress=None):
    Path(database).write_bytes(b"stub")
    cache = Path(__file__).parent / "__pycache__"
    cache.mkdir(exist_ok=True)
    kernel = cache / "_kernels.solve-12.py311.1.nbc"
    if not kernel.exists():  # as numba does: compile (and write the cache) on a miss only
        kernel.write_bytes(b"")
    return SimpleNamespace(status="complete", rows_read=7, rows_quarantined=0,
                           tables={"messages": 7, "accounts": 2}, stages=[("ingest", 0.25, 7, 10.0)])
'''


def test_each_side_imports_its_own_package_not_the_installed_one(tmp_path: Path) -> None:
    stub = tmp_path / "stub"
    (stub / "reputation").mkdir(parents=True)
    (stub / "reputation" / "__init__.py").write_text("")
    (stub / "reputation" / "pipeline.py").write_text(_STUB_PIPELINE)
    out = ab.run_version(stub, "unused.toml", tmp_path / "db" / "r.duckdb")
    # the stub's one stage came back through this checkout's harness (benchmarks.perf pipeline)
    assert out["package"] == str((stub / "reputation").resolve())
    assert [s["stage"] for s in out["stages"]] == ["ingest"] and out["messages"] == 7
    assert out["compiled"] == ["_kernels.solve"]  # the run wrote a kernel cache file: it compiled
    assert ab.run_version(stub, "unused.toml", tmp_path / "db" / "r.duckdb")["compiled"] == []  # a warm cache


def test_versions_alternate_and_the_report_gives_medians_and_ratios(tmp_path: Path, tiny_run: tuple[Path, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, db = tiny_run
    order: list[str] = []
    seconds = {"base": iter([10.0, 12.0, 14.0]), "head": iter([8.0, 9.0, 7.0])}

    def fake_run(tree: Path, config: str, target: Path, **_: object) -> dict:
        side = "base" if tree.name == "b" else "head"
        order.append(side)
        assert Path(config).is_absolute() and target.is_absolute()  # the child runs in another directory
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(db, target)  # both sides "write" the same results
        s = next(seconds[side])
        return {"seconds": s, "cpu_seconds": 2 * s, "peak_rss_mib": 100.0, "messages": 5,
                "compiled": ["features._dense_ids"] if s in (14.0, 9.0) else [],
                "compile_seconds": 4.25 if s == 14.0 else None,  # 9 s: a version without the compile timer
                "stages": [{"stage": "ingest", "seconds": s / 2}, {"stage": "templates", "seconds": s / 4}]}

    for name in ("b", "h"):
        (tmp_path / name / "reputation").mkdir(parents=True)
        (tmp_path / name / "reputation" / "__init__.py").write_text("")
    monkeypatch.setattr(ab, "run_version", fake_run)
    res = ab.run_ab(str(tmp_path / "b"), str(tmp_path / "h"), tmp_path / "work", config="w.toml", rounds=3,
                    warmup=False, log=lambda m: None)
    assert "error" not in res, res.get("error")
    assert order == ["base", "head", "head", "base", "base", "head"]  # ABBA…: drift burdens both sides
    s = res["summary"]
    assert s["pipeline"]["base"]["median"] == 12.0 and s["pipeline"]["head"]["median"] == 8.0
    assert s["pipeline"]["ratio"] == pytest.approx(8.0 / 12.0)
    assert s["stages"]["templates"]["ratio"] == pytest.approx(2.0 / 3.0)
    assert set(res["outputs"]["tables"].values()) == {"same"}
    text = ab.markdown(res)
    assert "| pipeline s | 10.0 / 12.0 / 14.0 | 8.0 / 9.0 / 7.0 | 12.0 | 8.0 | 0.667 |" in text
    assert "result tables identical" in text
    assert "Kernels compiled inside timed runs" in text and "base run 3: features._dense_ids (4.2 s)" in text
    assert "head run 2: features._dense_ids." in text  # no time where the version did not measure it
    assert not list((tmp_path / "work").glob("db_*"))  # databases removed unless --keep


def test_outputs_compared_table_by_table_with_the_score_change(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, db = tiny_run
    base, head = tmp_path / "base.duckdb", tmp_path / "head.duckdb"
    shutil.copy(db, base)
    shutil.copy(db, head)
    con = duckdb.connect(str(head))
    # a different run id alone is no difference
    con.execute("UPDATE links SET run_id = 'another run'")
    account, verdict = con.execute("SELECT account, verdict FROM reputation ORDER BY score DESC LIMIT 1").fetchall()[0]
    con.execute("UPDATE reputation SET score = score - 0.25, verdict = 'clean' WHERE account = ?", [account])
    con.execute("DROP TABLE campaign_pairs")
    con.close()
    out = ab.compare_outputs(base, head)
    assert out["tables"]["reputation"] == "differs"
    assert out["tables"]["campaign_pairs"] == "base only"
    assert out["tables"]["links"] == "same" and out["tables"]["templates"] == "same"
    assert "runs" not in out["tables"]  # bookkeeping of the run itself is not a result
    assert out["reputation"]["max_score_diff"] == pytest.approx(0.25)
    assert out["reputation"]["verdicts_changed"] == (verdict != "clean")
    text = ab.markdown({"versions": {"base": {"label": "a"}, "head": {"label": "b"}}, "command": "c", "date": "d",
                        "machine": {}, "load_average_before": [0], "config": "w", "messages": 1, "rounds": 1,
                        "summary": ab.summarise({k: [{"seconds": 1.0, "peak_rss_mib": 1.0, "stages": []}]
                                                 for k in ("base", "head")}), "outputs": out})
    assert "reputation differs" in text and "campaign_pairs base only" in text and "0.25" in text
