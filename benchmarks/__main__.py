"""Benchmark suite of the reputation engine: ``python -m benchmarks quick|full``.

Usage
-----
::

    pip install -e ".[dev,bench]"                 # matplotlib and python-igraph for plots and kernels
    python -m benchmarks quick                    # every suite, small (about a minute on 2 cores)
    python -m benchmarks full                     # every suite at full size (perf: 1M, 10M, 30M messages;
                                                  # about 20 min on 2 cores: 1M + 10M 5 min, 30M 10 min)
    python -m benchmarks full --suites quality,attack          # ~1–2 min (51–75 s measured)
    python -m benchmarks full --suites perf --sizes 1000000,10000000
    python -m benchmarks full --suites perf --sizes 10000000 --repeat 3  # median of 3 runs (~7 min)
    python -m benchmarks full --suites perf --sizes 30000000 --timeout 3600 --max-rss-gib 17  # ~6 min a run
    python -m benchmarks report                   # re-render RESULTS.md from results.json
    python -m benchmarks.profile_stages DB --config CONFIG STAGE...  # where a stage's time goes
    python -m benchmarks.ab BASE [--head REV] [--messages N]  # a change timed against BASE, runs interleaved

Suites (``--suites``, comma-separated; default all):

- ``quality`` (:mod:`benchmarks.quality`): generated worlds at difficulty easy, default and adversarial;
  every metric of ``reputation evaluate``; the baselines of :mod:`benchmarks.baselines` side by side on
  the same database.
- ``attack`` (:mod:`benchmarks.attack_edges`): the real CollegeMsg log as the honest region plus a
  synthetic spam region joined by N attack edges; ROC-AUC of the engine and every baseline vs N
  (``benchmarks/attack_edges.png``).
- ``perf`` (:mod:`benchmarks.perf`, :mod:`benchmarks.kernels`): the whole pipeline on 5-platform worlds
  (quick: 200k messages; full: 1M, 10M, 30M), wall time, CPU seconds and peak RSS per stage, each run in a fresh
  process; the floor (one DuckDB scan + GROUP BY sender of the same files) and the store floor (the same
  rows written into a DuckDB table, nothing else); the propagation kernel vs raw
  scipy.sparse mat-vecs, networkx and igraph personalised PageRank (``benchmarks/perf_scaling.png``);
  and the cold start: a 20k-message world run first with an empty numba cache (a new install compiling
  every kernel), then again with the kernels cached.

``--timeout`` and ``--max-rss-gib`` bound each perf pipeline run (a shared machine): a run past either is
killed and reported with the stages it finished. ``--repeat K`` measures the floor and the pipeline K
times per size on the same world and reports the median run, with every run's seconds beside it (on a
shared VM the same code has run 88 s and 139 s at 10M within half an hour). Perf sizes can be measured
one command at a time; each size keeps its latest measurement.

Results are merged into ``benchmarks/results.json`` under ``<suite>:<mode>`` (a quick run does not
erase full figures) and rendered to ``benchmarks/RESULTS.md`` with the command, machine, package
versions, date and load average (the figures are only as clean as the machine was idle).
Worlds are generated under ``--workdir`` (default ``/tmp/reputation-bench``) and deleted after use.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import PACKAGES, RESULTS_JSON, RESULTS_MD, load_average, md_table, update_results

SUITES = ("quality", "attack", "perf")
#: Hand-written history (before/after figures of optimisation work), included in RESULTS.md as is.
HISTORY_MD = Path(__file__).with_name("HISTORY.md")
#: Standing caveats printed under the targets.
CAVEATS = (
    "Wall times were measured on a shared 2-CPU machine; every section records the load average before "
    "and after (a 1-minute load of 4 on 2 CPUs means roughly half the CPU was available). Peak RSS and "
    "the floor ratio's direction are far less sensitive to contention than absolute seconds.",
    "Peak RSS per stage is the process high-water mark up to that stage (ru_maxrss), so a stage's figure "
    "is an upper bound of its own use; the pipeline's overall peak is exact for the run.",
    "The quality suite's worlds come from the project's own generator: the engine was developed against "
    "it, so its margins there are an optimistic estimate; the attack-edge experiment's honest region is "
    "real (CollegeMsg) and its spam region synthetic.",
    "Baselines use only flags and the raw interaction graph or identifiers (benchmarks/baselines.py); "
    "they see no text, timing or cross-platform links. SybilRank and SybilSCAR on every message edge score "
    "below 0.5 on generated worlds for a known reason (a spammer's one-way messages carry its victims' "
    "trust back to it); the `_mutual` variants run them on reciprocated conversations, the graph they "
    "assume. Why each baseline scores as it does: the docstring of benchmarks/baselines.py.",
)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(
    mode: str,
    suites: tuple[str, ...],
    workdir: Path,
    sizes: list[int] | None = None,
    keep: bool = False,
    timeout: float | None = None,
    max_rss_mib: float | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Run the chosen suites in ``mode`` ('quick' or 'full'), saving each suite's results as it finishes."""
    data: dict[str, Any] = {}
    for suite in suites:
        load_before = load_average()
        if suite == "quality":
            from benchmarks.quality import run_quality

            res = run_quality(mode, workdir, keep=keep, log=_log)
        elif suite == "attack":
            from benchmarks.attack_edges import run_attack_edges

            res = run_attack_edges(mode, workdir, keep=keep, log=_log)
        elif suite == "perf":
            from benchmarks.perf import run_perf

            res = run_perf(
                mode, workdir, sizes=sizes, keep=keep, timeout=timeout, max_rss_mib=max_rss_mib,
                repeat=repeat, log=_log,
            )
        else:
            raise ValueError(f"unknown suite {suite!r}; choose from {SUITES}")
        res["load_average_before"] = load_before
        if suite == "perf":
            res = _merge_perf(res, mode)
        data = update_results(f"{suite}:{mode}", res)
        if suite == "perf":
            _plot_all_perf(data)
        render(data)
        _log(f"[{suite}] done; results in {RESULTS_JSON} and {RESULTS_MD}")
    return data


def _merge_perf(res: dict[str, Any], mode: str) -> dict[str, Any]:
    """Keep earlier perf runs of sizes not measured this time (sizes can be measured one at a time)."""
    if not RESULTS_JSON.exists():
        return res
    old = json.loads(RESULTS_JSON.read_text()).get(f"perf:{mode}", {})
    measured = {r["target_messages"] for r in res["runs"]}
    kept = [r for r in old.get("runs", []) if r["target_messages"] not in measured]
    res["runs"] = sorted(kept + res["runs"], key=lambda r: r["target_messages"])
    res["plot"] = "perf_scaling.png"
    return res


def _plot_all_perf(data: dict[str, Any]) -> None:
    """The scaling plot over every measured size, quick and full (full wins for a size measured in both)."""
    from benchmarks.perf import HERE, plot_scaling

    runs: dict[int, dict[str, Any]] = {}
    for mode in ("quick", "full"):
        for r in data.get(f"perf:{mode}", {}).get("runs", []):
            if "pipeline" in r:
                runs[r["target_messages"]] = r
    plot_scaling(list(runs.values()), HERE / "perf_scaling.png")


def _targets(data: dict[str, Any]) -> list[list[str]]:
    from benchmarks import attack_edges, perf, quality

    rows: list[list[str]] = []
    for mode in ("full", "quick"):
        if f"perf:{mode}" in data:
            rows += [[f"perf ({mode}): {t}", m, ok] for t, m, ok in perf.targets(data[f"perf:{mode}"])]
            break
    for mode in ("full", "quick"):
        if f"quality:{mode}" in data:
            rows += [
                [f"quality ({mode}): engine ROC-AUC ahead of every baseline, {d}", m, ok]
                for d, m, ok in quality.engine_ahead(data[f"quality:{mode}"].get("summary", {}))
            ]
            break
    for mode in ("full", "quick"):
        if f"attack:{mode}" in data:
            rows += [
                [f"attack edges ({mode}): engine ROC-AUC ahead, {n}", m, ok]
                for n, m, ok in attack_edges.engine_ahead(data[f"attack:{mode}"])
            ]
            break
    return rows


def _package_order(packages: dict[str, str]) -> list[str]:
    """The recorded packages in :data:`benchmarks.common.PACKAGES` order, then any others by name."""
    return [p for p in PACKAGES if p in packages] + sorted(set(packages) - set(PACKAGES))


def render(data: dict[str, Any] | None = None, path: Path = RESULTS_MD) -> str:
    """Write RESULTS.md from the results (default: results.json) and return its text."""
    from benchmarks import attack_edges, perf, quality

    if data is None:
        data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
        _plot_all_perf(data)
    doc = (__doc__ or "").strip().splitlines()
    parts = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks` (see `benchmarks/__main__.py`); machine-readable figures in "
        "`results.json` beside this file. Regenerate this page with `python -m benchmarks report`.",
        "",
        "```text",
        *doc[2:],
        "```",
        "",
    ]
    if data:
        latest = max(data.values(), key=lambda r: r.get("date", ""))
        m = latest["machine"]
        parts += [
            "## Machine",
            "",
            f"{m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, {m['os']}, Python {m['python']} "
            "(as of the latest run; each section names the commit it measured).",
            "",
            # in PACKAGES' order (results.json stores the keys sorted), then any others
            "Packages: " + ", ".join(f"{k} {m['packages'][k]}" for k in _package_order(m["packages"])
                                     if m["packages"][k]) + ".",
            "",
        ]
    rows = _targets(data)
    if rows:
        parts += ["## Targets", "", md_table(["target", "measured", "met"], rows), ""]
    if HISTORY_MD.exists():  # hand-written before/after records of optimisation work, kept across re-renders
        parts += [HISTORY_MD.read_text().rstrip(), ""]
    notes = []
    for mode in ("full", "quick"):
        if f"perf:{mode}" in data:
            notes += [f"- Performance ({mode}): {o}" for o in perf.observations(data[f"perf:{mode}"])]
            break
    notes += [f"- {n}" for n in CAVEATS]
    parts += ["## Reading these figures", "", *notes, ""]
    sections = (
        ("perf", "Performance", perf.markdown),
        ("quality", "Quality", quality.markdown),
        ("attack", "Attack edges", attack_edges.markdown),
    )
    for key, title, fn in sections:
        for mode in ("full", "quick"):
            res = data.get(f"{key}:{mode}")
            if not res:
                continue
            if key == "attack" and res.get("roc_auc"):  # one plot per mode
                name = "attack_edges.png" if mode == "full" else "attack_edges_quick.png"
                if attack_edges.plot(res["roc_auc"], attack_edges.HERE / name):
                    res["plot"] = name
            parts += [
                f"## {title} ({mode})",
                "",
                f"Command: `{res['command']}` · date {res['date']} · {_commit(res.get('machine', {}))} · "
                "load average before "
                f"{res.get('load_average_before')}, after {res['load_average']} (1/5/15 min; 2 CPUs)",
                "",
                fn(res),
                "",
            ]
    text = "\n".join(parts).rstrip() + "\n"
    path.write_text(text)
    return text


def _commit(machine: dict[str, Any]) -> str:
    """``git <commit>`` of a run, with its uncommitted files when there were any.

    >>> _commit({"git_commit": "abc1234", "git_uncommitted_files": 0})
    'git abc1234'
    >>> _commit({"git_commit": "abc1234", "git_uncommitted_files": 2})
    'git abc1234 + 2 uncommitted files'
    """
    commit = machine.get("git_commit") or "unknown"
    dirty = machine.get("git_uncommitted_files")
    return f"git {commit}" + (f" + {dirty} uncommitted files" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks quick|full|report [--suites ...] [--sizes N,...]``."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of the reputation engine.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("mode", choices=("quick", "full", "report"))
    ap.add_argument(
        "--suites", default=",".join(SUITES), help=f"comma-separated subset of {', '.join(SUITES)}"
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/reputation-bench"),
        help="where worlds are generated (deleted after use)",
    )
    ap.add_argument(
        "--sizes", default=None, help="perf sizes in messages, comma-separated (overrides the mode's)"
    )
    ap.add_argument("--timeout", type=float, default=None, help="perf: seconds allowed per pipeline run")
    ap.add_argument(
        "--max-rss-gib", type=float, default=None, help="perf: kill a pipeline run whose RSS exceeds this"
    )
    ap.add_argument(
        "--repeat", type=int, default=1,
        help="perf: run the floor and the pipeline this many times per size and report the median run",
    )
    ap.add_argument("--keep", action="store_true", help="keep generated worlds and databases")
    args = ap.parse_args(argv)
    if args.mode == "report":
        render()
        return 0
    suites = tuple(s.strip() for s in args.suites.split(",") if s.strip())
    bad = [s for s in suites if s not in SUITES]
    if bad:
        ap.error(f"unknown suite(s) {bad}; choose from {', '.join(SUITES)}")
    sizes = [int(x.replace("_", "")) for x in args.sizes.split(",")] if args.sizes else None
    max_rss = args.max_rss_gib * 1024 if args.max_rss_gib else None
    run(
        args.mode,
        suites,
        args.workdir,
        sizes=sizes,
        keep=args.keep,
        timeout=args.timeout,
        max_rss_mib=max_rss,
        repeat=args.repeat,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
