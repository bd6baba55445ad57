"""A/B timing of two versions of the pipeline on one world, runs interleaved, outputs compared.

On a shared VM the same code has run a 10M world in 88 s and in 139 s half an hour apart, so a fix's
before/after figures mean something only when the two versions run on the same input, in the same
minutes, alternately. This does that, and also says whether the two versions wrote the same results
(a speed-up should change no output; a quality change should say how much it changed)::

    python -m benchmarks.ab HEAD                          # the working tree (uncommitted changes) vs HEAD
    python -m benchmarks.ab 630e475 --messages 10000000 --rounds 5
    python -m benchmarks.ab 630e475 --head 9a689d0 --config /tmp/w/w10/pipeline.toml

``BASE`` and ``--head`` are git revisions of this repository (their ``reputation/`` package is extracted
with ``git archive`` under ``--workdir``) or directories holding a ``reputation/`` package; ``--head``
defaults to the working tree as it is. Both versions run this checkout's harness
(``python -m benchmarks.perf pipeline``, one fresh process per run), so a revision must have the
pipeline API that harness calls (``run_pipeline(..., progress=...)``; every revision since the perf suite
has). The world is generated once by this checkout's generator (``--messages``), or an existing pipeline
config is reused (``--config``). Each version first runs once on a small world, untimed, so that neither
pays for compiling its kernels (numba caches them beside an extracted tree's sources) inside the timing.
Rounds alternate the order (base, head; head, base; ...), so a machine that slows down over the minutes
burdens both alike.

The report: per stage the seconds of every run, the medians and head ÷ base; pipeline wall, CPU seconds
and peak RSS; and per output table whether the two versions' first runs wrote the same rows (row count and
an order-independent checksum of every column but ``run_id``), with the largest score difference and the
verdicts that changed in ``reputation``. A timed run that had to compile a kernel (a type the warm-up did
not meet) is named in the report, since its compile time is in its seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.common import (
    ROOT,
    SubprocessFailed,
    command_line,
    git_commit,
    hash_key_env,
    load_average,
    machine_info,
    md_table,
    now_utc,
    run_json_subprocess,
)

#: Messages of the untimed warm-up world each version runs first (compiles its kernels).
WARMUP_MESSAGES = 20_000
#: Tables that record the run itself rather than its results: not compared.
RUN_TABLES = ("runs", "run_sources", "stage_metrics")


def resolve_tree(spec: str | None, workdir: Path, repo: Path = ROOT) -> tuple[Path, str]:
    """The directory whose ``reputation/`` package a version runs, and a label for it.

    ``None`` is the working tree ``repo`` as it is (labelled with its commit, ``+N`` for N changed files);
    a directory holding ``reputation/`` is used as is; anything else is a git revision of ``repo``, whose
    ``reputation/`` is extracted (``git archive``) into ``workdir/trees/<commit>`` (reused when there).

    Raises ``ValueError`` when ``spec`` is neither such a directory nor a revision of ``repo``.
    """
    if spec is None:
        return repo, f"working tree ({git_commit() or 'no git'})"
    path = Path(spec)
    if (path / "reputation" / "__init__.py").is_file():
        return path.resolve(), str(path)
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        raise ValueError(f"{spec!r} is neither a directory holding reputation/ nor a git revision of {repo}") from exc
    tree = workdir / "trees" / commit[:12]
    if not (tree / "reputation" / "__init__.py").is_file():
        archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit, "reputation"],
                                 capture_output=True, check=True).stdout
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            tar.extractall(tree, filter="data")
    return tree, commit[:7] if commit.startswith(spec) else f"{spec} ({commit[:7]})"


def kernel_cache(tree: Path) -> dict[str, int]:
    """Numba's cached compilations of the package in ``tree`` (``*.nbc`` files, path → mtime in ns).

    Looked in beside the sources and in ``NUMBA_CACHE_DIR`` when that is set.
    """
    roots = [tree / "reputation"] + ([Path(os.environ["NUMBA_CACHE_DIR"])] if os.environ.get("NUMBA_CACHE_DIR") else [])
    return {str(f): f.stat().st_mtime_ns for root in roots if root.is_dir() for f in root.rglob("*.nbc")}


def compiled_between(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """Kernels compiled (cache files written) between two :func:`kernel_cache` snapshots, as ``module.function``.

    >>> compiled_between({}, {"/t/reputation/graph/__pycache__/features._dense_ids-294.py311.2.nbc": 1})
    ['features._dense_ids']
    """
    return sorted({Path(f).name.split("-")[0] for f, t in after.items() if before.get(f) != t})


def run_version(tree: Path, config: str, db: Path, timeout: float | None = None,
                max_rss_mib: float | None = None) -> dict[str, Any]:
    """One pipeline run of the ``reputation/`` package in ``tree``, in a fresh process, into a fresh ``db``.

    The child starts in ``tree`` (so ``reputation`` is imported from there, ahead of any installed copy)
    with this checkout on ``PYTHONPATH`` (for the harness); the package it really imported is checked.
    ``compiled`` in the result lists the kernels the run had to compile (their time is in the run's, and in
    ``compile_seconds`` where the version times its compiles, :mod:`reputation._compile`): a
    kernel is compiled again for argument types it has not met, e.g. the read-only array a small
    database's single Arrow chunk gives, where a large one's several chunks give a writable copy.
    """
    shutil.rmtree(db.parent, ignore_errors=True)
    db.parent.mkdir(parents=True)
    env = {**hash_key_env(),
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    before = kernel_cache(tree)
    out = run_json_subprocess(["-m", "benchmarks.perf", "pipeline", config, str(db)], env=env, cwd=tree,
                              timeout=timeout, max_rss_mib=max_rss_mib)
    # from the cache files the run wrote, which every version writes; the harness's own list (and its
    # compile_seconds) may come from the installed package's timer instead of the tree's
    out["compiled"] = compiled_between(before, kernel_cache(tree))
    imported = Path(out.get("package", "")).resolve()
    if imported != (tree / "reputation").resolve():
        raise RuntimeError(f"the run imported reputation from {imported}, not from {tree / 'reputation'}")
    return out


def table_digests(db: Path) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent checksum (sum of row hashes, ``run_id`` left out) per result table."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary "
                                           "ORDER BY table_name").fetchall() if r[0] not in RUN_TABLES]
        out = {}
        for name in names:
            cols = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                              "AND NOT internal ORDER BY column_index", [name]).fetchall()]
            keep = ", ".join(f'"{c}"' for c in cols if c != "run_id") or "1"
            n, digest = con.execute(
                f'SELECT count(*), coalesce(sum(hash(x)::HUGEINT), 0) FROM (SELECT {keep} FROM "{name}") x'
            ).fetchall()[0]
            out[name] = (int(n), int(digest))
        return out
    finally:
        con.close()


def compare_outputs(base_db: Path, head_db: Path) -> dict[str, Any]:
    """Which result tables the two databases hold alike, and how far apart their reputation scores are.

    Returns ``{"tables": {name: "same" | "differs" | "base only" | "head only"}, "rows": {name: [base, head]},
    "reputation": {"max_score_diff", "verdicts_changed", "accounts_compared"}}`` (``reputation`` only
    when both have the table).
    """
    a, b = table_digests(base_db), table_digests(head_db)
    tables, rows = {}, {}
    for name in sorted(set(a) | set(b)):
        if name not in b:
            tables[name] = "base only"
        elif name not in a:
            tables[name] = "head only"
        else:
            tables[name] = "same" if a[name] == b[name] else "differs"
            rows[name] = [a[name][0], b[name][0]]
    out: dict[str, Any] = {"tables": tables, "rows": rows}
    if "reputation" in a and "reputation" in b:
        con = duckdb.connect()
        try:
            con.execute("ATTACH ? AS base (READ_ONLY)", [str(base_db)])
            con.execute("ATTACH ? AS head (READ_ONLY)", [str(head_db)])
            n, diff, changed = con.execute(
                """SELECT count(*), max(abs(x.score - y.score)), count(*) FILTER (WHERE x.verdict <> y.verdict)
                   FROM base.reputation x JOIN head.reputation y USING (platform, account)"""
            ).fetchall()[0]
        finally:
            con.close()
        out["reputation"] = {"accounts_compared": int(n), "max_score_diff": float(diff or 0.0),
                             "verdicts_changed": int(changed)}
    return out


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per version and head ÷ base, per stage and for the whole pipeline.

    ``runs`` maps ``"base"`` and ``"head"`` to their pipeline results (``benchmarks.perf.pipeline``).

    >>> r = lambda s, t: {"seconds": s, "cpu_seconds": s, "peak_rss_mib": 100.0,
    ...                   "stages": [{"stage": "ingest", "seconds": t}]}
    >>> out = summarise({"base": [r(10.0, 4.0), r(12.0, 6.0)], "head": [r(8.0, 2.0), r(8.0, 3.0)]})
    >>> out["pipeline"]["base"]["median"], out["pipeline"]["ratio"], out["stages"]["ingest"]["ratio"]
    (11.0, 0.7272727272727273, 0.5)
    """
    def stat(values: list[float]) -> dict[str, Any]:
        return {"runs": values, "median": statistics.median(values)}

    def pair(key_of) -> dict[str, Any]:
        base = stat([key_of(r) for r in runs["base"]])
        head = stat([key_of(r) for r in runs["head"]])
        ratio = head["median"] / base["median"] if base["median"] else None
        return {"base": base, "head": head, "ratio": ratio}

    stages: list[str] = []
    for r in runs["base"] + runs["head"]:
        stages += [s["stage"] for s in r["stages"] if s["stage"] not in stages]

    def stage_seconds(name: str):
        return lambda r: next((s["seconds"] for s in r["stages"] if s["stage"] == name), 0.0)

    return {
        "pipeline": pair(lambda r: r["seconds"]),
        "cpu_seconds": pair(lambda r: r.get("cpu_seconds") or 0.0),
        "peak_rss_mib": pair(lambda r: r["peak_rss_mib"]),
        "stages": {name: pair(stage_seconds(name)) for name in stages},
    }


def run_ab(base: str, head: str | None, workdir: Path, messages: int = 1_000_000, config: str | None = None,
           rounds: int = 3, warmup: bool = True, keep: bool = False, timeout: float | None = None,
           max_rss_mib: float | None = None, log=print) -> dict[str, Any]:
    """Time ``base`` and ``head`` alternately on one world ``rounds`` times each; compare their outputs.

    See the module docstring for what ``base`` and ``head`` may be. Returns the JSON-able result
    (:func:`markdown` renders it).
    """
    workdir = workdir.resolve()  # the children run in the versions' trees: every path they get is absolute
    workdir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        config = str(Path(config).resolve())
    trees = {"base": resolve_tree(base, workdir), "head": resolve_tree(head, workdir)}
    res: dict[str, Any] = {"date": now_utc(), "command": command_line(), "machine": machine_info(),
                           "versions": {k: {"label": label, "tree": str(tree)} for k, (tree, label) in trees.items()},
                           "load_average_before": load_average(), "rounds": rounds}
    generated: list[Path] = []
    try:
        if warmup:
            small = workdir / "warmup_world"
            generated.append(small)
            shutil.rmtree(small, ignore_errors=True)
            cfg = run_json_subprocess(["-m", "benchmarks.perf", "generate", str(small), str(WARMUP_MESSAGES)])["config"]
            for key, (tree, label) in trees.items():
                log(f"[ab] warm-up of {label} ({WARMUP_MESSAGES:,} messages, untimed)")
                run_version(tree, cfg, workdir / f"warmup_{key}" / "reputation.duckdb", timeout=timeout)
        if config is None:
            world = workdir / f"world_{messages}"
            generated.append(world)
            shutil.rmtree(world, ignore_errors=True)
            log(f"[ab] generating {messages:,} messages into {world}")
            gen = run_json_subprocess(["-m", "benchmarks.perf", "generate", str(world), str(messages)])
            config, res["messages"] = gen["config"], gen["messages"]
        res["config"] = config
        runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
        first_db: dict[str, Path] = {}
        for k in range(rounds):
            for key in (("base", "head") if k % 2 == 0 else ("head", "base")):
                tree, label = trees[key]
                db = workdir / f"db_{key}_{k}" / "reputation.duckdb"
                out = run_version(tree, config, db, timeout=timeout, max_rss_mib=max_rss_mib)
                runs[key].append(out)
                first_db.setdefault(key, db)
                log(f"[ab] round {k + 1} of {rounds}, {key} ({label}): {out['seconds']:.1f} s, "
                    f"peak RSS {out['peak_rss_mib']:.0f} MiB")
                if k > 0 and not keep:
                    shutil.rmtree(db.parent, ignore_errors=True)
        res["messages"] = res.get("messages") or runs["base"][0].get("messages")
        res["runs"] = runs
        res["summary"] = summarise(runs)
        res["outputs"] = compare_outputs(first_db["base"], first_db["head"])
    except (RuntimeError, ValueError, OSError) as exc:
        res["error"] = str(exc)
        if isinstance(exc, SubprocessFailed):
            res["error_log"] = exc.log[-4000:]
    finally:
        res["load_average_after"] = load_average()
        if not keep:
            for path in generated + sorted(workdir.glob("db_*")) + sorted(workdir.glob("warmup_*")):
                shutil.rmtree(path, ignore_errors=True)
    return res


def markdown(res: dict[str, Any]) -> str:
    """The A/B report: versions, machine, seconds per stage (every run, medians, ratio), outputs compared."""
    v = res["versions"]
    lines = [f"A/B: base = {v['base']['label']}, head = {v['head']['label']}",
             "",
             f"Command: `{res['command']}` · {res['date']} · {res['machine'].get('cpu', '')}, "
             f"load average before {res['load_average_before']}, after {res.get('load_average_after')}",
             ""]
    if "error" in res:
        return "\n".join([*lines, f"FAILED: {res['error']}"])
    runs_of = f"{res['rounds']} run{'s' if res['rounds'] != 1 else ''}"
    lines.append(f"World: {res['config']} ({res['messages']:,} messages); {runs_of} of each version, alternating.")
    s = res["summary"]

    def runs(x: dict[str, Any], digits: int = 1) -> str:
        return " / ".join(f"{t:.{digits}f}" for t in x["runs"])

    def row(name: str, p: dict[str, Any], digits: int = 1) -> list[Any]:
        ratio = "–" if p["ratio"] is None else f"{p['ratio']:.3f}"
        return [name, runs(p["base"], digits), runs(p["head"], digits), f"{p['base']['median']:.{digits}f}",
                f"{p['head']['median']:.{digits}f}", ratio]

    header = ["", "base runs", "head runs", "base median", "head median", "head ÷ base"]
    body = [row("pipeline s", s["pipeline"]), row("CPU s", s["cpu_seconds"]),
            row("peak RSS MiB", s["peak_rss_mib"], 0)]
    body += [row(f"stage {name} s", p, 2) for name, p in s["stages"].items()]
    lines.append(md_table(header, body))
    out = res["outputs"]
    differs = [t for t, st in out["tables"].items() if st != "same"]
    if not differs:
        lines.append(f"Outputs: all {len(out['tables'])} result tables identical (rows and checksums).")
    else:
        lines.append(f"Outputs: {len(out['tables']) - len(differs)} of {len(out['tables'])} result tables identical; "
                     + "; ".join(f"{t} {out['tables'][t]}" + (f" (rows {out['rows'][t][0]:,} → {out['rows'][t][1]:,})"
                                                              if t in out["rows"] else "") for t in differs) + ".")
    cold = [f"{key} run {k + 1}: {', '.join(r['compiled'])}"
            + (f" ({r['compile_seconds']:.1f} s)" if r.get("compile_seconds") else "")
            for key in ("base", "head") for k, r in enumerate(res.get("runs", {}).get(key, [])) if r.get("compiled")]
    if cold:
        lines.append("Kernels compiled inside timed runs (their compile time is in that run's seconds; the medians "
                     "of 3 or more rounds absorb one such run): " + "; ".join(cold) + ".")
    rep = out.get("reputation")
    if rep:
        lines.append(f"Reputation: {rep['accounts_compared']:,} accounts in both, largest score difference "
                     f"{rep['max_score_diff']:.3g}, {rep['verdicts_changed']:,} verdicts changed.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="git revision or directory holding reputation/ (the 'before')")
    ap.add_argument("--head", default=None, help="git revision or directory (default: the working tree as it is)")
    ap.add_argument("--messages", type=int, default=1_000_000, help="size of the generated world")
    ap.add_argument("--config", default=None, help="an existing world's pipeline config instead of generating one")
    ap.add_argument("--rounds", type=int, default=3, help="timed runs of each version (alternating)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/reputation-ab"))
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed small run of each version")
    ap.add_argument("--keep", action="store_true", help="keep the generated worlds and databases")
    ap.add_argument("--timeout", type=float, default=None, help="seconds allowed per pipeline run")
    ap.add_argument("--max-rss-gib", type=float, default=None, help="kill a run whose RSS exceeds this")
    ap.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    try:
        res = run_ab(args.base, args.head, args.workdir, messages=args.messages, config=args.config,
                     rounds=args.rounds, warmup=not args.no_warmup, keep=args.keep, timeout=args.timeout,
                     max_rss_mib=args.max_rss_gib * 1024 if args.max_rss_gib else None,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(markdown(res))
    return 1 if "error" in res else 0


if __name__ == "__main__":
    sys.exit(main())
