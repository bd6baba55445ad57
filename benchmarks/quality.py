"""Quality suite: every metric of ``reputation evaluate`` on generated worlds, with the baselines beside.

For each difficulty (easy, default, adversarial) and seed, the suite generates a world, runs the whole
pipeline on it, evaluates the database against the world's truth
(:func:`reputation.evaluate.evaluate_database`: linkage, campaigns and reputation metrics), and
scores every baseline of :mod:`benchmarks.baselines`
(SybilRank, SybilSCAR, personalised-PageRank BadRank, identifier carry-over) on *the same database* with
the same metric code (:func:`benchmarks.baselines.compare_baselines`).

Sizes: ``quick`` one seed of 1,200 accounts over 30 days; ``full`` two seeds of the generator's default
size (3,000 accounts, 60 days). Results are the per-seed figures and their mean.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BENCHMARK_HASH_KEY, best_method, fmt, md_table

DIFFICULTIES = ("easy", "default", "adversarial")
SIZES = {
    "quick": {"accounts": 1200, "days": 30, "seeds": (0,)},
    "full": {"accounts": 3000, "days": 60, "seeds": (0, 1)},
}
#: Reputation metrics shown in the side-by-side table (all are in results.json).
REPUTATION_KEYS = (
    "roc_auc",
    "pr_auc",
    "spam_precision",
    "spam_recall",
    "carry_precision",
    "carry_recall",
    "evasion_recall",
    "bulk_sender_fpr",
    "compromised_recall",
    "victim_fpr",
    "honest_fpr",
    "housemate_fpr",
)
#: Metrics where lower is better.
LOWER_IS_BETTER = {"bulk_sender_fpr", "victim_fpr", "honest_fpr", "housemate_fpr"}


def compare_methods(db: str | Path, truth: str | Path) -> dict[str, dict[str, Any]]:
    """Reputation metrics of the engine and of every baseline on one database.

    Returns ``{"engine": {...}, "<baseline>": {...}}``; when ``benchmarks.baselines`` cannot be
    imported, ``{"engine": ..., "baselines_error": {"error": ...}}``.
    """
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        try:
            from benchmarks.baselines import compare_baselines
        except ImportError as exc:
            from reputation.evaluate.reputation import evaluate_reputation

            return {
                "engine": evaluate_reputation(con, truth),
                "baselines_error": {"error": f"benchmarks.baselines unavailable: {exc}"},
            }
        return compare_baselines(con, str(truth))
    finally:
        con.close()


def run_world(
    difficulty: str, seed: int, accounts: int, days: int, workdir: Path, keep: bool = False
) -> dict[str, Any]:
    """Generate a world, run the pipeline, evaluate it and the baselines; delete it unless ``keep``."""
    from benchmarks.common import quiet_logging
    from reputation.evaluate import evaluate_database
    from reputation.generate import generate_world
    from reputation.pipeline import run_pipeline

    quiet_logging()
    os.environ.setdefault("REPUTATION_HASH_KEY", BENCHMARK_HASH_KEY)
    world = workdir / f"quality_{difficulty}_{seed}"
    shutil.rmtree(world, ignore_errors=True)
    try:
        summary = generate_world(
            world, seed=seed, accounts=accounts, platforms=3, days=days, difficulty=difficulty
        )
        db = world / "out" / "reputation.duckdb"
        t0 = time.perf_counter()
        run_pipeline(summary.config_path, database=db, exports=world / "out" / "exports")
        seconds = time.perf_counter() - t0
        report = evaluate_database(db, world / "truth")
        methods = compare_methods(db, world / "truth")
        return {
            "difficulty": difficulty,
            "seed": seed,
            "accounts": summary.accounts,
            "messages": summary.messages,
            "spammer_accounts": summary.spammer_accounts,
            "flags": summary.flags,
            "pipeline_s": seconds,
            "evaluate": report,
            "methods": methods,
        }
    finally:
        if not keep:
            shutil.rmtree(world, ignore_errors=True)


def _mean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(vals) / len(vals) if vals else None


def run_quality(
    mode: str, workdir: Path, difficulties: tuple[str, ...] = DIFFICULTIES, keep: bool = False, log=print
) -> dict[str, Any]:
    """The quality suite; returns per-world results and per-difficulty means of every method's metrics."""
    size = SIZES[mode]
    workdir.mkdir(parents=True, exist_ok=True)
    worlds = []
    for difficulty in difficulties:
        for seed in size["seeds"]:
            log(f"[quality] {difficulty} seed {seed}: {size['accounts']} accounts, {size['days']} days")
            try:
                worlds.append(run_world(difficulty, seed, size["accounts"], size["days"], workdir, keep))
            except Exception as exc:  # noqa: BLE001 — one failed world must not lose the others' figures
                worlds.append(
                    {"difficulty": difficulty, "seed": seed, "error": f"{type(exc).__name__}: {exc}"}
                )
                log(f"[quality] {difficulty} seed {seed}: FAILED: {exc}")
    summary: dict[str, Any] = {}
    for difficulty in difficulties:
        ok = [w for w in worlds if w["difficulty"] == difficulty and "methods" in w]
        if not ok:
            continue
        methods = {m for w in ok for m in w["methods"] if "error" not in w["methods"][m]}
        summary[difficulty] = {
            "reputation": {
                m: {k: _mean([w["methods"][m].get(k) for w in ok]) for k in REPUTATION_KEYS}
                for m in sorted(methods)
            },
            "linkage": _mean_tree([w["evaluate"].get("linkage", {}) for w in ok]),
            "campaigns": _mean_tree([w["evaluate"].get("campaigns", {}) for w in ok]),
            "worlds": len(ok),
        }
    return {
        "mode": mode,
        "size": {k: list(v) if isinstance(v, tuple) else v for k, v in size.items()},
        "worlds": worlds,
        "summary": summary,
    }


def _mean_tree(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every numeric leaf over the reports (nested dicts kept; non-numeric leaves from the first)."""
    if not reports:
        return {}
    out: dict[str, Any] = {}
    for key, first in reports[0].items():
        if isinstance(first, dict):
            out[key] = _mean_tree([r.get(key, {}) for r in reports if isinstance(r.get(key), dict)])
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            out[key] = _mean([r.get(key) for r in reports])
        else:
            out[key] = first
    return out


def _flat(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.append((prefix, value))


def _by_difficulty(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """``summary``'s items from easy to adversarial (results.json stores its keys sorted by name)."""
    rank = {d: i for i, d in enumerate(DIFFICULTIES)}
    return sorted(summary.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))


def engine_ahead(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(difficulty, ROC-AUC engine vs best baseline, ahead?) rows."""
    rows = []
    for difficulty, s in _by_difficulty(summary):
        rep = s["reputation"]
        eng = rep.get("engine", {}).get("roc_auc")
        others = {
            m: v.get("roc_auc") for m, v in rep.items() if m != "engine" and v.get("roc_auc") is not None
        }
        if eng is None or not others:
            rows.append((difficulty, "not measured", "–"))
            continue
        best = best_method(others)
        rows.append(
            (
                difficulty,
                f"engine {eng:.4f} vs best baseline {best} {others[best]:.4f}",
                "yes" if eng > others[best] else "NO",
            )
        )
    return rows


def markdown(res: dict[str, Any]) -> str:
    """RESULTS.md section of the quality suite."""
    size = res.get("size", {})
    lines = [
        f"Worlds: 3 platforms, {size.get('accounts')} accounts, {size.get('days')} days, seeds "
        f"{size.get('seeds')}; metrics on accounts never flagged directly (see `reputation.evaluate`). "
        "Means over seeds."
    ]
    for w in res.get("worlds", []):
        if "error" in w:
            lines.append(f"\n**{w['difficulty']} seed {w['seed']} failed:** {w['error'][:300]}")
    for difficulty, s in _by_difficulty(res.get("summary", {})):
        rep = s["reputation"]
        names = ["engine", *[m for m in rep if m != "engine"]]
        lines.append(f"\n#### {difficulty} ({s['worlds']} world(s))\n")
        rows = [
            [k + (" ↓" if k in LOWER_IS_BETTER else ""), *[rep[m].get(k) for m in names]]
            for k in REPUTATION_KEYS
        ]
        lines.append(md_table(["reputation metric", *names], rows))
        flat: list[tuple[str, Any]] = []
        _flat("linkage", s.get("linkage", {}), flat)
        _flat("campaigns", s.get("campaigns", {}), flat)
        if flat:
            lines.append("\nLinkage and campaigns (engine only):\n")
            half = (len(flat) + 1) // 2
            left, right = flat[:half], flat[half:] + [("", None)] * (half - len(flat[half:]))
            lines.append(
                md_table(
                    ["metric", "value", "metric", "value"],
                    [[a, fmt(x), b, fmt(y)] for (a, x), (b, y) in zip(left, right, strict=True)],
                )
            )
    return "\n".join(lines)
