"""Attack-edge experiment: a real honest region, a synthetic spam region, and N edges between them.

The honest region is the real CollegeMsg private-message log (UC Irvine online community, SNAP:
``../shared/data/real/collegemsg/CollegeMsg.txt``, 1,899 users, 59,835 messages). Attached to it:

- a **spam region** of ``spammers`` accounts (default 200) that message each other a little (each writes
  to ``internal_degree`` other spammers, 1–3 messages, and gets 1–3 back);
- **N attack edges**: distinct (spammer, honest user) pairs, chosen uniformly; on each the spammer sends
  1–2 unsolicited messages, and the honest user replies once with probability ``reply_rate`` (rare);
- **flags**: ``spam_flag_rate`` (10%) of spammers flagged ``spam``, ``clean_flag_rate`` (2%) of honest
  senders flagged ``clean``.

Spam messages carry no text (CollegeMsg has none): this is the pure interaction-graph setting of the
Sybil-defence literature, so what separates the regions is who writes to whom, when, and who replies.
Spam timestamps are uniform over the log's span (honest users have daily rhythms — a signal the
engine's behavioural features can use and graph-only baselines cannot).

The world is written as files plus a ``pipeline.toml`` (the CollegeMsg file itself is read in place)
and a ``truth/accounts.parquet`` in the generator's format; the real pipeline runs on it, and the
engine's score and every baseline's (:mod:`benchmarks.baselines`) are scored with the same metric code
(ROC-AUC and PR-AUC over accounts never flagged). ``N`` sweeps a range: ``quick`` 3 values, ``full`` 8
values up to 16× the spam region size. Plot: ``benchmarks/attack_edges.png``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.common import BENCHMARK_HASH_KEY, HERE, ROOT, best_method, md_table

COLLEGEMSG = (ROOT.parent / "shared" / "data" / "real" / "collegemsg" / "CollegeMsg.txt").resolve()
PLATFORM = "collegemsg"
QUICK_N = (100, 400, 1600)
FULL_N = (25, 50, 100, 200, 400, 800, 1600, 3200)
QUICK_SEEDS = (0,)
FULL_SEEDS = (0, 1)


def load_honest(path: Path = COLLEGEMSG) -> pl.DataFrame:
    """CollegeMsg as (sender, recipient, ts) with string account ids and epoch-second times."""
    df = pl.read_csv(path, separator=" ", has_header=True)
    return df.select(
        pl.col("Source").cast(pl.Int64).alias("sender"),
        pl.col("Destination").cast(pl.Int64).alias("recipient"),
        pl.col("Timestamp").cast(pl.Int64).alias("ts"),
    )


def build_world(
    out: Path,
    attack_edges: int,
    seed: int = 0,
    spammers: int = 200,
    internal_degree: int = 3,
    reply_rate: float = 0.05,
    spam_flag_rate: float = 0.10,
    clean_flag_rate: float = 0.02,
    honest_path: Path = COLLEGEMSG,
) -> dict[str, Any]:
    """Write the CollegeMsg + spam-region world into ``out``; returns counts and the config path.

    Parameters
    ----------
    out
        Directory to write (created).
    attack_edges
        Number of distinct (spammer → honest user) pairs that carry spam.
    seed
        Random seed (same arguments ⇒ identical files).
    spammers
        Size of the spam region.
    internal_degree
        Other spammers each spammer writes to (and hears back from).
    reply_rate
        Probability that an honest user answers a spammer once.
    spam_flag_rate, clean_flag_rate
        Share of spammers flagged spam and of honest senders flagged clean.
    honest_path
        The honest region's log (CollegeMsg format).
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    honest = load_honest(honest_path)
    t0, t1 = int(honest["ts"].min()), int(honest["ts"].max())
    honest_ids = np.unique(np.r_[honest["sender"].to_numpy(), honest["recipient"].to_numpy()])
    h = len(honest_ids)
    base = int(honest_ids.max()) + 1000
    spam_ids = base + np.arange(spammers, dtype=np.int64)

    # Spam region: each spammer writes to internal_degree others, 1-3 messages, and gets 1-3 back.
    src = np.repeat(np.arange(spammers), internal_degree)
    dst = (src + rng.integers(1, spammers, size=len(src))) % spammers  # never itself
    pairs = np.unique(np.column_stack([np.minimum(src, dst), np.maximum(src, dst)]), axis=0)
    parts = []
    for a, b in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 1], pairs[:, 0])):
        k = rng.integers(1, 4, size=len(a))
        parts.append(
            (np.repeat(spam_ids[a], k), np.repeat(spam_ids[b], k), rng.integers(t0, t1, size=int(k.sum())))
        )

    # Attack edges: distinct (spammer, honest) pairs; 1-2 messages within a day; a rare single reply.
    n_edges = min(attack_edges, spammers * h)
    flat = rng.choice(spammers * h, size=n_edges, replace=False)
    s_idx, h_idx = flat // h, flat % h
    k = rng.integers(1, 3, size=n_edges)
    start = rng.integers(t0, t1 - 86_400, size=n_edges)
    rep_s, rep_h, rep_t = np.repeat(s_idx, k), np.repeat(h_idx, k), np.repeat(start, k)
    offset = np.where(
        np.r_[True, rep_s[1:] != rep_s[:-1]] | np.r_[True, rep_h[1:] != rep_h[:-1]],
        0,
        rng.integers(60, 86_400, size=len(rep_s)),
    )
    parts.append((spam_ids[rep_s], honest_ids[rep_h], rep_t + offset))
    replied = rng.random(n_edges) < reply_rate
    parts.append(
        (
            honest_ids[h_idx[replied]],
            spam_ids[s_idx[replied]],
            start[replied] + rng.integers(3_600, 48 * 3_600, size=int(replied.sum())),
        )
    )
    spam = pl.DataFrame(
        {
            "Source": np.concatenate([p[0] for p in parts]),
            "Destination": np.concatenate([p[1] for p in parts]),
            "Timestamp": np.concatenate([p[2] for p in parts]),
        }
    ).sort("Timestamp", "Source")
    spam.write_csv(out / "spam_region.txt", separator=" ")

    # Flags.
    flagged_spam = spam_ids[rng.random(spammers) < spam_flag_rate]
    senders = np.unique(honest["sender"].to_numpy())
    flagged_clean = senders[rng.random(len(senders)) < clean_flag_rate]
    flags = pl.DataFrame(
        {
            "account": np.r_[flagged_spam, flagged_clean].astype(str),
            "label": ["spam"] * len(flagged_spam) + ["clean"] * len(flagged_clean),
            "flagged_at": [t1] * (len(flagged_spam) + len(flagged_clean)),
        }
    )
    flags.write_csv(out / "flags.csv")

    # Truth in the generator's format (what reputation.evaluate reads).
    truth = out / "truth"
    truth.mkdir(exist_ok=True)
    ids = np.r_[honest_ids, spam_ids]
    flagged = np.isin(ids, np.r_[flagged_spam, flagged_clean])
    pl.DataFrame(
        {
            "platform": [PLATFORM] * len(ids),
            "account": ids.astype(str),
            "person_id": ids,
            "role": ["honest"] * h + ["spammer"] * spammers,
            "operator_id": [None] * h + [0] * spammers,
            "compromised": [False] * len(ids),
            "flagged": flagged,
            "wrongly_flagged": [False] * len(ids),
        },
        schema_overrides={"operator_id": pl.Int64},
    ).write_parquet(truth / "accounts.parquet")

    source = """
[[sources]]
name = "{name}"
table = "messages"
path = "{path}"
format = "csv"
platform = "{platform}"
[sources.csv]
delimiter = " "
header = true
[sources.columns]
sender = "Source"
recipient = "Destination"
sent_at = "Timestamp"
[sources.timestamps]
sent_at = "epoch_s"
"""
    config = "\n".join(
        [
            "# CollegeMsg (honest, read in place) + a synthetic spam region: see benchmarks/attack_edges.py",
            "[output]",
            'database = "out/reputation.duckdb"',
            'exports = "out/exports"',
            source.format(name="collegemsg", path=str(honest_path), platform=PLATFORM),
            source.format(name="spam_region", path="spam_region.txt", platform=PLATFORM),
            "[[sources]]",
            'name = "flags"',
            'table = "flags"',
            'path = "flags.csv"',
            'format = "csv"',
            f'platform = "{PLATFORM}"',
            "[sources.columns]",
            'account = "account"',
            'label = "label"',
            'flagged_at = "flagged_at"',
            "[sources.timestamps]",
            'flagged_at = "epoch_s"',
            "",
        ]
    )
    (out / "pipeline.toml").write_text(config)
    return {
        "config": str(out / "pipeline.toml"),
        "honest_accounts": int(h),
        "spammers": int(spammers),
        "attack_edges": int(n_edges),
        "replied_attack_edges": int(replied.sum()),
        "internal_pairs": int(len(pairs)),
        "spam_messages": int(spam.height),
        "honest_messages": int(honest.height),
        "spam_flags": int(len(flagged_spam)),
        "clean_flags": int(len(flagged_clean)),
    }


def run_one(attack_edges: int, seed: int, workdir: Path, keep: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Build one world, run the pipeline, score the engine and every baseline; delete unless ``keep``."""
    from benchmarks.common import quiet_logging
    from benchmarks.quality import compare_methods
    from reputation.pipeline import run_pipeline

    quiet_logging()
    os.environ.setdefault("REPUTATION_HASH_KEY", BENCHMARK_HASH_KEY)
    out = workdir / f"attack_{attack_edges}_{seed}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        info = build_world(out, attack_edges, seed, **kwargs)
        t0 = time.perf_counter()
        db = out / "out" / "reputation.duckdb"
        run_pipeline(info["config"], database=db, exports=out / "out" / "exports")
        info["pipeline_s"] = time.perf_counter() - t0
        methods = compare_methods(db, out / "truth")
        info["engine_errors"] = methods["engine"]["ranking_errors"]  # part of the engine's evaluate metrics
        info["methods"] = {
            m: {
                k: v.get(k)
                for k in (
                    "roc_auc",
                    "pr_auc",
                    "spam_precision",
                    "spam_recall",
                    "victim_fpr",
                    "honest_fpr",
                    "positives_never_flagged",
                )
            }
            for m, v in methods.items()
        }
        info["seed"] = seed
        return info
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)


def run_attack_edges(
    mode: str,
    workdir: Path,
    values: tuple[int, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
    keep: bool = False,
    log=print,
) -> dict[str, Any]:
    """The experiment over N attack edges; per-N mean ROC-AUC of every method and a plot."""
    values = values or (QUICK_N if mode == "quick" else FULL_N)
    seeds = seeds or (QUICK_SEEDS if mode == "quick" else FULL_SEEDS)
    workdir.mkdir(parents=True, exist_ok=True)
    runs = []
    for n in values:
        for seed in seeds:
            log(f"[attack-edges] N={n} seed {seed}")
            try:
                runs.append(run_one(n, seed, workdir, keep))
            except Exception as exc:  # noqa: BLE001 — keep the other points
                runs.append({"attack_edges": n, "seed": seed, "error": f"{type(exc).__name__}: {exc}"})
                log(f"[attack-edges] N={n} seed {seed}: FAILED: {exc}")
    curve, pr_curve = mean_curve(runs, values, "roc_auc"), mean_curve(runs, values, "pr_auc")
    out = {
        "mode": mode,
        "values": list(values),
        "seeds": list(seeds),
        "runs": runs,
        "roc_auc": curve,
        "pr_auc": pr_curve,
        "honest_source": str(COLLEGEMSG),
    }
    png = plot(curve, HERE / ("attack_edges.png" if mode == "full" else "attack_edges_quick.png"))
    if png:
        out["plot"] = png.name
    return out


def mean_curve(runs: list[dict[str, Any]], values: tuple[int, ...], metric: str) -> dict[str, dict[str, Any]]:
    """method → {str(N): mean of ``metric`` over the seeds that ran}."""
    curve: dict[str, dict[str, float | None]] = {}
    for n in values:
        ok = [r for r in runs if r["attack_edges"] == n and "methods" in r]
        for m in {m for r in ok for m in r["methods"]}:
            vals = [r["methods"][m].get(metric) for r in ok if m in r["methods"]]
            vals = [v for v in vals if v is not None]
            curve.setdefault(m, {})[str(n)] = sum(vals) / len(vals) if vals else None
    return curve


#: Where a ranking error of 0 (a perfect ROC-AUC) is drawn on the error panel's log axis.
ERROR_FLOOR = 1e-6


def plot(curve: dict[str, dict[str, float | None]], path: Path) -> Path | None:
    """ROC-AUC vs number of attack edges (log x) for every method; None without matplotlib or data.

    Two panels: ROC-AUC itself, where the methods near 1 overlap, and the ranking error 1 − ROC-AUC on
    a log axis, where 0.9997 and 0.9998 are a visible factor apart (a perfect ranking is drawn at
    ``ERROR_FLOOR``, the panel's bottom line).
    """
    if not curve:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax, err) = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in ["engine", *sorted(k for k in curve if k != "engine")]:
        if m not in curve:
            continue
        pts = sorted((int(n), v) for n, v in curve[m].items() if v is not None)
        if not pts:
            continue
        style = {"lw": 2.5 if m == "engine" else 1.2, "zorder": 3 if m == "engine" else 2}
        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=m, **style)
        err.plot([p[0] for p in pts], [max(1.0 - p[1], ERROR_FLOOR) for p in pts], "o-",
                 color=line.get_color(), **style)
    for a in (ax, err):
        a.set_xscale("log")
        a.set_xlabel("attack edges (spammer → honest pairs)")
        a.grid(True, alpha=0.3)
    ax.set_ylabel("ROC-AUC (accounts never flagged)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_title("ROC-AUC")
    err.set_yscale("log")
    err.set_ylim(ERROR_FLOOR / 2, 1.0)
    err.axhline(ERROR_FLOOR, color="grey", lw=0.8, ls=":")
    err.text(err.get_xlim()[1], ERROR_FLOOR, "0 (perfect) ", va="top", ha="right", fontsize=7, color="grey")
    err.set_ylabel("1 − ROC-AUC (log; lower is better)")
    err.set_title("ranking error")
    fig.suptitle("CollegeMsg + 200-account spam region")
    fig.legend(*ax.get_legend_handles_labels(), loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(res: dict[str, Any]) -> str:
    """RESULTS.md section of the attack-edge experiment."""
    curve = res.get("roc_auc", {})
    names = ["engine", *sorted(m for m in curve if m != "engine")]
    names = [m for m in names if m in curve]
    ok = [r for r in res.get("runs", []) if "methods" in r]
    lines = []
    if ok:
        r = ok[0]
        lines.append(
            f"Honest region: CollegeMsg ({r['honest_accounts']:,} accounts, {r['honest_messages']:,} "
            f"messages). Spam region: {r['spammers']} accounts, {r['internal_pairs']} internal pairs; "
            f"{r['spam_flags']} spammers flagged spam, {r['clean_flags']} honest users flagged clean "
            f"(seed {r['seed']}). Seeds per N: {res.get('seeds')}. ROC-AUC over accounts never flagged."
        )
    rows = [[n, *[curve[m].get(str(n)) for m in names]] for n in res.get("values", [])]
    lines.append("\nROC-AUC (mean over seeds):")
    lines.append(md_table(["attack edges", *names], rows, digits=4))
    pr = res.get("pr_auc") or mean_curve(res.get("runs", []), tuple(res.get("values", [])), "pr_auc")
    if pr:
        rows = [[n, *[pr.get(m, {}).get(str(n)) for m in names]] for n in res.get("values", [])]
        lines.append("PR-AUC (mean over seeds; positives are ~9% of the never-flagged accounts):")
        lines.append(md_table(["attack edges", *names], rows, digits=4))
    errors = errors_by_n(res)
    if errors:
        lines.append(
            "Where the engine's ROC-AUC goes (sums over the seeds): misordered (honest, spammer) pairs, i.e. "
            "1 − ROC-AUC times the pairs; the honest accounts that outrank a spammer and the spammers they "
            "outrank; each honest account's pairs charged to its largest positive term in `account_evidence` "
            "(*own behaviour*: its own sending looks like spam; *graph*: its neighbours' belief pushed it "
            "up, a victim who wrote back to spammers); and ROC-AUC ranked without the account's own "
            "behavioural term (`ranking_errors` of `reputation evaluate`):"
        )
        rows = [
            [
                n,
                f"{e['misordered_pairs']:g} of {e['pairs']:,}",
                e["honest_accounts_misordered"],
                e["positives_misordered"],
                *[_share(e, c) for c in ("own_behaviour", "graph")],
                _share(e, None),
                e["roc_auc_without_own_behaviour"],
            ]
            for n, e in errors.items()
        ]
        lines.append(
            md_table(
                [
                    "attack edges",
                    "misordered pairs",
                    "honest accounts",
                    "spammers outranked",
                    "own behaviour",
                    "graph",
                    "other",
                    "ROC-AUC without own behaviour",
                ],
                rows,
                digits=4,
            )
        )
    for r in res.get("runs", []):
        if "error" in r:
            lines.append(f"\nN={r['attack_edges']} seed {r['seed']} failed: {r['error'][:300]}")
    if res.get("plot"):
        lines.append(f"\n![ROC-AUC vs attack edges]({res['plot']})")
    return "\n".join(lines)


def errors_by_n(res: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """N → the engine's ``ranking_errors`` (:mod:`reputation.evaluate.reputation`) summed over the seeds.

    Counts and causes are summed; the ROC-AUC without the own-behaviour term is averaged.
    """
    out: dict[int, dict[str, Any]] = {}
    for n in res.get("values", []):
        runs = [r["engine_errors"] for r in res.get("runs", []) if r["attack_edges"] == n and "engine_errors" in r]
        if not runs:
            continue
        causes: dict[str, float] = {}
        for e in runs:
            for k, v in e["by_cause"].items():
                causes[k] = causes.get(k, 0.0) + v
        ablation = [e["roc_auc_without_own_behaviour"] for e in runs if e["roc_auc_without_own_behaviour"] is not None]
        out[n] = {
            **{
                k: sum(e[k] for e in runs)
                for k in ("misordered_pairs", "pairs", "honest_accounts_misordered", "positives_misordered")
            },
            "by_cause": causes,
            "roc_auc_without_own_behaviour": sum(ablation) / len(ablation) if ablation else None,
        }
    return out


def _share(errors: dict[str, Any], cause: str | None) -> str:
    """Share of the misordered pairs charged to ``cause`` (None: every cause but own behaviour and graph)."""
    total = errors["misordered_pairs"]
    if not total:
        return "–"
    by = errors["by_cause"]
    part = by.get(cause, 0.0) if cause else sum(v for k, v in by.items() if k not in ("own_behaviour", "graph"))
    return f"{100 * part / total:.0f}%"


def engine_ahead(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(N, engine vs best baseline, ahead?) rows; a perfect ranking that a baseline matches is "level"."""
    curve = res.get("roc_auc", {})
    errors = errors_by_n(res)
    rows = []
    for n in res.get("values", []):
        eng = curve.get("engine", {}).get(str(n))
        others = {m: c.get(str(n)) for m, c in curve.items() if m != "engine" and c.get(str(n)) is not None}
        if eng is None or not others:
            rows.append((f"N={n}", "not measured", "–"))
            continue
        best = best_method(others)
        digits = 4  # more where four decimals would print a difference as a tie
        while digits < 6 and f"{eng:.{digits}f}" == f"{others[best]:.{digits}f}" and eng != others[best]:
            digits += 1
        measured = f"engine {eng:.{digits}f} vs {best} {others[best]:.{digits}f}"
        e = errors.get(n)
        if eng <= others[best] and e and e["misordered_pairs"]:
            measured += (
                f" ({e['misordered_pairs']:g} misordered pairs over the seeds, {_share(e, 'own_behaviour')} from"
                f" honest accounts whose own behaviour scores as spam, {_share(e, 'graph')} from graph push)"
            )
        verdict = "yes" if eng > others[best] else "level (both 1)" if eng == others[best] == 1.0 else "NO"
        rows.append((f"N={n}", measured, verdict))
    return rows
