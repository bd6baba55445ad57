"""Smoke test of the benchmark harness on a tiny generated world (one pipeline run, < 30 s)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from benchmarks import attack_edges, kernels, perf, quality
from benchmarks.__main__ import render
from benchmarks.common import md_table


def test_floor_reads_every_message_row(tiny_run: tuple[Path, Path]) -> None:
    world, db = tiny_run
    out = perf.floor(str(world / "pipeline.toml"))
    con = duckdb.connect(str(db), read_only=True)
    read = con.execute("SELECT sum(rows_read) FROM run_sources WHERE target_table = 'messages'").fetchone()[0]
    con.close()
    # The floor scans the same files as ingest: every row read (stored or quarantined) is counted once.
    assert out["messages"] == read
    assert out["senders"] > 0 and out["seconds"] > 0
    # the store floor writes those same rows into a DuckDB table, in a scratch file it removes again
    assert out["store_rows"] == read and out["store_seconds"] > 0
    assert not (world / "_store_floor").exists()


def test_perf_pipeline_records_cpu_and_kernel_work_per_stage(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    world, _ = tiny_run
    out = perf.pipeline(str(world / "pipeline.toml"), str(tmp_path / "db" / "r.duckdb"))
    assert out["status"] == "complete"
    stages = {s["stage"]: s for s in out["stages"]}
    assert {"ingest", "templates", "reputation"} <= set(stages)
    for s in stages.values():
        # kernel time is part of the stage's CPU time; a stage that allocates touches fresh pages
        assert 0 <= s["system_seconds"] <= s["cpu_seconds"] + 0.02, s
    assert sum(s["page_faults"] for s in stages.values()) > 0
    # the session's first run has compiled (or loaded) every kernel this world needs: a second run of it
    # compiles nothing (a kernel compiled again for a new argument type would be timed inside the run)
    assert out["compile_seconds"] == 0.0 and out["compiled"] == []
    text = perf.markdown({"runs": [{"target_messages": out["messages"], "messages": out["messages"],
                                    "pipeline": out, "floor": {"seconds": 1.0}, "floor_ratio": 1.0,
                                    "messages_per_s": 1.0, "generate": {"seconds": 1.0, "bytes": 1}}]})
    assert "| stage | seconds | CPU s | of which kernel CPU s | page faults |" in text


def test_kernel_benchmark_rebuilds_the_stage_graph(tiny_run: tuple[Path, Path]) -> None:
    _, db = tiny_run
    out = kernels.bench_database(str(db), networkx_max_edges=10**9)
    con = duckdb.connect(str(db), read_only=True)
    stage_iters = dict(
        con.execute(
            "SELECT parameter, value FROM reputation_model WHERE parameter LIKE 'propagation_iterations%'"
        ).fetchall()
    )
    con.close()
    # Same graphs and prior as the reputation stage ⇒ the same number of iterations to converge.
    for family, res in out["families"].items():
        key = f"propagation_iterations_{family}" if family != "all" else "propagation_iterations"
        assert res["iterations"] == int(stage_iters[key]), family
    assert out["kernel_vs_raw"] > 0 and out["networkx_pagerank_s"] > 0
    assert out["networkx_default_tol_s"] > 0 and out["networkx_default_tol_error"] >= 0
    for res in out["families"].values():  # networkx best of its repeats, every run's seconds kept
        runs = res["networkx_pagerank_runs_s"]
        assert kernels.NETWORKX_REPEATS <= len(runs) <= kernels.MAX_RUNS
        # more runs only while the runs so far add up to less than the minimum
        assert len(runs) == kernels.NETWORKX_REPEATS or sum(runs[:-1]) < kernels.MIN_TIMED_SECONDS
        assert res["networkx_pagerank_s"] == min(res["networkx_pagerank_runs_s"])


def test_timed_runs_repeat_fast_calls_up_to_the_time_budget() -> None:
    calls = []
    runs, out = kernels._timed_runs(lambda: calls.append(1) or len(calls), 3, min_seconds=0.0)
    assert len(runs) == 3 and out == 3  # the minimum repeats, and the last call's result
    # a call far below the budget is repeated until the budget or MAX_RUNS, whichever comes first
    runs, _ = kernels._timed_runs(lambda: None, 3, min_seconds=60.0)
    assert len(runs) == kernels.MAX_RUNS
    runs, _ = kernels._timed_runs(lambda: time.sleep(0.01), 1, min_seconds=0.05)
    assert sum(runs[:-1]) < 0.05 <= sum(runs)  # stops at the first call that reaches the budget


def test_networkx_is_timed_to_an_accuracy_like_the_kernels() -> None:
    import networkx as nx
    import scipy.sparse as sp

    # a weighted graph without dangling nodes; the exact personalised PageRank by a dense solve
    rng = np.random.default_rng(0)
    n = 300
    A = sp.random(n, n, density=0.02, random_state=1, data_rvs=lambda k: rng.uniform(0.1, 1.0, k))
    A = (A + A.T + sp.diags(np.ones(n - 1), 1) + sp.diags(np.ones(n - 1), -1)).tocsr()
    pers = np.zeros(n)
    pers[:5] = 0.2
    P = np.asarray(A.todense()) / np.asarray(A.sum(axis=1))
    exact = np.linalg.solve(np.eye(n) - 0.85 * P.T, 0.15 * pers)
    G = nx.from_scipy_sparse_array(A)
    x = nx.pagerank(G, alpha=0.85, personalization=dict(enumerate(pers)), weight="weight", tol=kernels.NETWORKX_TOL,
                    max_iter=10_000)
    got = np.array([x[i] for i in range(n)])
    # the kernel's own error bound is ~2e-6 of its largest entry; networkx's default tolerance misses this
    assert np.abs(got - exact).max() / exact.max() < 1e-6


def test_quality_compares_engine_and_baselines(tiny_run: tuple[Path, Path]) -> None:
    world, db = tiny_run
    methods = quality.compare_methods(db, world / "truth")
    assert "engine" in methods and len(methods) >= 2
    for name, metrics in methods.items():
        auc = metrics.get("roc_auc")
        assert auc is None or 0.0 <= auc <= 1.0, name


def test_attack_report_explains_where_the_engine_is_behind() -> None:
    def run(seed: int, engine: float, errors: dict) -> dict:
        methods = {"engine": {"roc_auc": engine}, "badrank": {"roc_auc": 1.0}}
        world = {"honest_accounts": 10, "honest_messages": 50, "spammers": 5, "internal_pairs": 4, "spam_flags": 1,
                 "clean_flags": 1}
        return {"attack_edges": 200, "seed": seed, "methods": methods, "engine_errors": errors, **world}

    errors = [
        {"misordered_pairs": 30.0, "pairs": 1000, "honest_accounts_misordered": 2, "positives_misordered": 5,
         "by_cause": {"own_behaviour": 27.0, "graph": 3.0}, "roc_auc_without_own_behaviour": 0.99},
        {"misordered_pairs": 10.0, "pairs": 1000, "honest_accounts_misordered": 1, "positives_misordered": 4,
         "by_cause": {"own_behaviour": 3.0, "graph": 5.0, "identity_carry": 2.0},
         "roc_auc_without_own_behaviour": 0.97},
    ]
    res = {"values": [200], "runs": [run(0, 0.97, errors[0]), run(1, 0.99, errors[1])]}
    res["roc_auc"] = attack_edges.mean_curve(res["runs"], (200,), "roc_auc")
    summed = attack_edges.errors_by_n(res)[200]
    assert summed["misordered_pairs"] == 40.0 and summed["pairs"] == 2000
    assert summed["by_cause"] == {"own_behaviour": 30.0, "graph": 8.0, "identity_carry": 2.0}
    assert summed["roc_auc_without_own_behaviour"] == pytest.approx(0.98)
    [(n, measured, ok)] = attack_edges.engine_ahead(res)
    assert ok == "NO" and "40 misordered pairs" in measured and "75% from honest accounts" in measured
    assert measured.startswith("engine 0.9800 vs badrank 1.0000")
    res["roc_auc"]["engine"]["200"] = 0.999991  # rounds to 1.0000: printed with the digits that differ
    assert attack_edges.engine_ahead(res)[0][1].startswith("engine 0.99999 vs badrank 1.00000")
    res["roc_auc"]["engine"]["200"] = 1.0
    assert attack_edges.engine_ahead(res)[0][2] == "level (both 1)"
    # a second baseline tied at the top: the same one is named whatever order the methods come in
    # (a suite run keeps the order they ran in, results.json sorts them)
    for order in (["sybilscar", "badrank"], ["badrank", "sybilscar"]):
        curve = {"engine": res["roc_auc"]["engine"], **{m: {"200": 1.0} for m in order}}
        assert "vs badrank 1.0000" in attack_edges.engine_ahead({**res, "roc_auc": curve})[0][1]
    # the table row: shares of own behaviour, graph and the rest
    assert "| 200 | 40 of 2,000 | 3 | 9 | 75% | 20% | 5% | 0.9800 |" in attack_edges.markdown(res)


def test_attack_plot_draws_the_ranking_error_on_a_log_axis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at
    curve = {"engine": {"100": 0.9997, "25": 1.0}, "badrank": {"100": 0.9998, "25": None}}
    png = attack_edges.plot(curve, tmp_path / "attack.png")
    assert png is not None and png.stat().st_size > 0
    [fig] = figures
    roc, err = fig.axes
    assert err.get_yscale() == "log"
    lines = {line.get_label(): line for line in roc.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"engine", "badrank"}
    engine_err = [line for line in err.get_lines() if line.get_color() == lines["engine"].get_color()][0]
    # sorted by N; a perfect ROC-AUC sits on the floor line instead of vanishing from the log axis
    assert list(engine_err.get_xdata()) == [25, 100]
    assert engine_err.get_ydata()[0] == attack_edges.ERROR_FLOOR
    assert engine_err.get_ydata()[1] == pytest.approx(3e-4)


def test_attack_world_has_the_requested_attack_edges(tmp_path: Path) -> None:
    honest = tmp_path / "honest.txt"
    rng = np.random.default_rng(0)
    src, dst = rng.integers(1, 60, 500), rng.integers(1, 60, 500)
    keep = src != dst
    pl.DataFrame(
        {
            "Source": src[keep],
            "Destination": dst[keep],
            "Timestamp": 1_082_000_000 + np.sort(rng.integers(0, 5_000_000, keep.sum())),
        }
    ).write_csv(honest, separator=" ")
    info = attack_edges.build_world(tmp_path / "w", attack_edges=70, seed=1, spammers=20, honest_path=honest)
    spam = pl.read_csv(tmp_path / "w" / "spam_region.txt", separator=" ")
    truth = pl.read_parquet(tmp_path / "w" / "truth" / "accounts.parquet")
    spam_ids = set(truth.filter(pl.col("role") == "spammer")["account"].cast(pl.Int64).to_list())
    to_honest = spam.filter(pl.col("Source").is_in(spam_ids) & ~pl.col("Destination").is_in(spam_ids))
    assert to_honest.select("Source", "Destination").unique().height == info["attack_edges"] == 70
    assert truth.height == info["honest_accounts"] + 20
    assert (tmp_path / "w" / "pipeline.toml").exists()


def test_report_renders_targets(tmp_path: Path) -> None:
    data = {
        "perf:quick": {
            "date": "2026-01-01T00:00:00Z",
            "command": "python -m benchmarks quick",
            "load_average": [0.1] * 3,
            "machine": {
                "nproc": 2,
                "cpu": "x",
                "ram_gib": 1,
                "os": "linux",
                "python": "3.11",
                "packages": {"duckdb": "2", "extra": "1", "numpy": None, "reputation": "0.1"},  # json order
                "git_commit": "abc1234",
                "git_uncommitted_files": 2,
            },
            "platforms": 5,
            "days": 60,
            "runs": [
                {
                    "target_messages": 10_000_000,
                    "messages": 10_000_000,
                    "messages_per_s": 1e5,
                    "floor_ratio": 25.0,
                    "generate": {"seconds": 1.0, "bytes": 2**20},
                    "floor": {"seconds": 4.0},
                    "pipeline": {"seconds": 100.0, "peak_rss_mib": 7000.0, "accounts": 5, "stages": []},
                }
            ],
        }
    }
    text = render(json.loads(json.dumps(data)), path=tmp_path / "R.md")
    assert "| perf (quick): 10M messages end to end ≤ 120 s | 100 s | yes |" in text
    assert "| perf (quick): 10M messages peak RSS ≤ 6 GiB | 6.84 GiB | NO |" in text
    assert "25.0× | NO" in text
    assert "· git abc1234 + 2 uncommitted files ·" in text  # each section names the tree it measured
    assert "Packages: reputation 0.1, duckdb 2, extra 1." in text  # the project first, unknown versions left out
    assert md_table(["a"], [[None]]).strip().endswith("| – |")


def test_scaling_exponents_of_wall_and_cpu_seconds() -> None:
    def run(messages: int, wall: float, cpu: float) -> dict:
        stages = [{"stage": "templates", "seconds": wall, "cpu_seconds": cpu},
                  {"stage": "views", "seconds": 0.05, "cpu_seconds": 0.04}]  # sub-second: left out
        return {"messages": messages, "load_average_before": [1.0],
                "pipeline": {"seconds": wall + 1, "cpu_seconds": cpu + 1, "peak_rss_mib": 100.0, "stages": stages}}

    # 4× the messages: wall 8× (k = 1.5, a slower machine), CPU 4× (k = 1.0)
    runs = [run(1_000_000, 10.0, 20.0), run(4_000_000, 80.0, 80.0)]
    exp = perf.scaling_exponents(runs)
    assert exp is not None and set(exp["stages"]) == {"templates"}
    assert exp["stages"]["templates"] == pytest.approx(1.5)
    assert exp["stages_cpu"]["templates"] == pytest.approx(1.0)
    assert exp["pipeline_cpu"] == pytest.approx(np.log(81 / 21) / np.log(4))
    text = " ".join(perf.observations({"runs": runs}))
    assert "per stage, of wall (and CPU) seconds, templates 1.50 (1.00)." in text
    # runs recorded before CPU seconds were: wall exponents only
    for r in runs:
        del r["pipeline"]["cpu_seconds"]
    assert "pipeline_cpu" not in perf.scaling_exponents(runs)


def test_repeated_perf_runs_report_the_median(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline_s = iter([130.0, 90.0, 100.0])
    floor_s = iter([2.0, 1.0, 3.0])
    fresh_db: list[bool] = []

    def fake(args: list[str], **_: object) -> dict:
        cmd = args[2]
        if cmd == "generate":
            return {"config": str(tmp_path / "w" / "pipeline.toml"), "messages": 10_000_000, "seconds": 1.0,
                    "bytes": 1}
        if cmd == "floor":
            return {"seconds": next(floor_s), "full_scan_seconds": 5.0, "store_seconds": 20.0, "messages": 10_000_000}
        db = Path(args[4])
        fresh_db.append(not db.parent.exists())
        db.parent.mkdir(parents=True)
        db.write_bytes(b"x")  # what a run leaves behind
        seconds = next(pipeline_s)
        return {"seconds": seconds, "peak_rss_mib": 7000.0 if seconds == 130.0 else 4000.0,
                "messages": 10_000_000, "accounts": 5, "stages": [{"stage": "ingest", "seconds": seconds / 4, "rows": 1,
                                                                       "peak_rss_mib": 1.0, "cpu_seconds": 1.0}],
                "cpu_seconds": 1.0}

    monkeypatch.setattr(perf, "run_json_subprocess", fake)
    res = perf.measure_size(10_000_000, tmp_path, kernels=False, repeat=3, keep=True, log=lambda _: None)
    assert fresh_db == [True, True, True]  # every pipeline run starts from an empty database
    assert res["pipeline"]["seconds"] == 100.0 and res["floor"]["seconds"] == 2.0
    assert res["floor_ratio"] == 50.0
    # the store floor: the median run's pipeline (100 s, ingest 25 s) against it
    assert res["store_ratio"] == 5.0 and res["ingest_store_ratio"] == 1.25
    assert [r["pipeline_s"] for r in res["repeats"]] == [130.0, 90.0, 100.0]
    rows = {t: (m, ok) for t, m, ok in perf.targets({"runs": [res]})}
    assert rows["pipeline ≤ 20× floor (10,000,000 messages)"] == (
        "50.0×; writing the input into a DuckDB table alone takes 10.0× the floor, the pipeline 5.0× that "
        "(its ingest stage 1.2×)", "NO")
    assert rows["10M messages end to end ≤ 120 s"] == ("100 s (median of 3 runs, 90–130 s; 1 of 3 over 120 s)", "yes")
    # memory does not average out: the largest run decides
    assert rows["10M messages peak RSS ≤ 6 GiB"] == ("6.84 GiB (largest of 3 runs)", "NO")
    assert "10,000,000: pipeline 130.0 / 90.0 / 100.0 s" in perf.markdown({"runs": [res]})
    # the networkx target: judged on the equal-accuracy solve, networkx's default shown beside it
    res["kernels"] = {"kernel_vs_raw": 1.0, "networkx_over_kernel": 52.4, "networkx_total_over_kernel": 120.0,
                      "families": {"conversation": {"networkx_tol": 1e-12}}, "networkx_default_tol_over_kernel": 45.2,
                      "networkx_default_tol_error": 0.42}
    rows = {t: (m, ok) for t, m, ok in perf.targets({"runs": [res]})}
    measured, ok = rows["kernel ≥ 50× faster than networkx pagerank (10,000,000)"]
    assert ok == "yes" and measured.startswith("52× (solve only, networkx to tol 1e-12")
    assert "45× at networkx's default tol 1e-6, whose answer is 42% off" in measured


def test_profile_stages_times_statements_on_a_copy(tiny_run: tuple[Path, Path]) -> None:
    from benchmarks import profile_stages

    world, db = tiny_run
    before = db.read_bytes()
    results = profile_stages.profile_stages(db, world / "pipeline.toml", ["identities", "reputation"], top=50)
    assert db.read_bytes() == before  # the original database is never written
    assert not list(db.parent.glob("profile-*"))  # the copy is removed
    con = duckdb.connect(str(db), read_only=True)
    accounts = con.execute("SELECT count(*) FROM reputation").fetchone()[0]
    con.close()
    rep = results[1]
    assert [r["stage"] for r in results] == ["identities", "reputation"] and rep["rows"] == accounts
    sites = [site for site, *_ in rep["statements"]]
    assert any(s.startswith("scoring/stage.py:") for s in sites)  # charged to the issuing line
    assert any("edge_list" in s for s in sites)  # relations from con.sql are timed when fetched
    assert 0 < rep["sql_seconds"] <= rep["seconds"]
    assert "stage reputation:" in profile_stages.render(results)
    with pytest.raises(ValueError, match="unknown stage"):
        profile_stages.profile_stages(db, world / "pipeline.toml", ["nope"])


def test_quality_rows_run_from_easy_to_adversarial_whatever_the_stored_key_order() -> None:
    """results.json sorts its keys (adversarial, default, easy); the report lists levels by difficulty."""
    def level(auc: float) -> dict:
        return {"reputation": {"engine": {"roc_auc": auc}, "sybilrank": {"roc_auc": auc - 0.1}}}

    stored = {"adversarial": level(0.97), "default": level(0.98), "easy": level(0.99)}
    assert [row[0] for row in quality.engine_ahead(stored)] == ["easy", "default", "adversarial"]
    assert quality.engine_ahead(stored)[0][1] == "engine 0.9900 vs best baseline sybilrank 0.8900"


def test_cold_start_runs_twice_on_one_fresh_cache_and_reports_both(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    caches: list[str] = []
    compile_s = iter([18.0, 0.0])

    def fake(args: list[str], env: dict | None = None, **_: object) -> dict:
        if args[2] == "generate":
            return {"config": str(tmp_path / "c.toml"), "messages": 20_123}
        cache = Path(env["NUMBA_CACHE_DIR"])
        caches.append(str(cache))
        first = not cache.exists()
        cache.mkdir(parents=True, exist_ok=True)
        (cache / f"k{len(caches)}.nbc").write_bytes(b"x" * 2**20)
        return {"seconds": 23.0 if first else 5.0, "cpu_seconds": 1.0, "peak_rss_mib": 1.0,
                "compile_seconds": next(compile_s), "compiled": ["m.a", "m.b"] if first else []}

    monkeypatch.setattr(perf, "run_json_subprocess", fake)
    res = perf.cold_start(tmp_path, log=lambda _: None)
    assert len(caches) == 2 and caches[0] == caches[1]  # one cache: the second run loads what the first left
    assert res["cold"]["seconds"] == 23.0 and res["warm"]["compile_seconds"] == 0.0
    assert res["messages"] == 20_123 and res["cache_mib"] == 2.0
    assert not (tmp_path / "cold_start").exists()  # the world and its cache are removed
    text = perf.markdown({"runs": [], "cold_start": res})
    assert "23.0 s for a 20,123-message world, of which 18.0 s compiling 2 functions" in text
    assert "kernels cached: 5.0 s" in text
