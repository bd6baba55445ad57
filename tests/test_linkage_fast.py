"""The vectorised parts of linkage agree with the set-wise SQL definitions they replace."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from reputation.linkage.blocking import LinkageSettings, activity_profiles, prepare_peak_hours
from reputation.linkage.scoring import activity_levels, compress_patterns
from reputation.linkage.seed_extend import structural_match, structural_match_sql


def _contact_world(seed: int, people: int = 120) -> duckdb.DuckDBPyConnection:
    """Three platforms; each person has an account on each with probability 0.8, and keeps most of their
    friendships (a random graph over people) on every platform. Seeds: a third of the true pairs."""
    rng = np.random.default_rng(seed)
    rows, owner = [], []
    for p, platform in enumerate(("a", "b", "c")):
        for person in range(people):
            if rng.random() < 0.8:
                rows.append((platform, f"{platform}{person}"))
                owner.append((p, person))
    order = sorted(range(len(rows)), key=lambda i: rows[i])
    aid = {rows[i]: k + 1 for k, i in enumerate(order)}
    acc_of = {owner[i]: aid[rows[i]] for i in range(len(rows))}
    friends = {(u, v) for u in range(people) for v in rng.choice(people, 4, replace=False) if u != v}
    edges = set()
    for p in range(3):
        for u, v in friends:
            if (p, u) in acc_of and (p, v) in acc_of and rng.random() < 0.85:
                x, y = acc_of[(p, u)], acc_of[(p, v)]
                edges |= {(x, y), (y, x)}
    con = duckdb.connect()
    con.register("acc", pa.table({"aid": [aid[r] for r in rows], "platform": [r[0] for r in rows]}))
    con.execute("CREATE TEMP TABLE _lk_accounts AS SELECT aid::INTEGER AS aid, platform FROM acc")
    e = np.array(sorted(edges), dtype=np.int32)
    con.register("e", pa.table({"x": e[:, 0], "y": e[:, 1]}))
    con.execute("CREATE TEMP TABLE _lk_contacts AS "
                "SELECT x, y, count(*) OVER (PARTITION BY y) AS contact_degree FROM e")
    seeds = [(min(acc_of[(0, q)], acc_of[(1, q)]), max(acc_of[(0, q)], acc_of[(1, q)]))
             for q in range(0, people, 3) if (0, q) in acc_of and (1, q) in acc_of]
    con.register("s", pa.table({"a": [s[0] for s in seeds], "b": [s[1] for s in seeds]}))
    con.execute("CREATE TEMP TABLE seeds AS SELECT a::INTEGER AS a, b::INTEGER AS b FROM s")
    return con


def test_sparse_structural_matching_equals_sql_rounds() -> None:
    for seed in (0, 1, 2):
        con = _contact_world(seed)
        s = LinkageSettings(contact_degree_cap=12)
        got = {}
        for f in (structural_match, structural_match_sql):
            added = f(con, "SELECT a, b FROM seeds", s)
            got[f.__name__] = (added, sorted(con.execute("SELECT a, b, round FROM _lk_structural").fetchall()))
        assert got["structural_match"] == got["structural_match_sql"]
        assert got["structural_match"][0] > 10  # the world does extend beyond the seeds


def test_compress_patterns_round_trips() -> None:
    rng = np.random.default_rng(0)
    g = rng.integers(-1, 3, size=(500, 13)).astype(np.int8)
    g[250:] = g[:250]
    flag = rng.random(500) < 0.1
    pat, pflag, count, inverse = compress_patterns(g, flag)
    assert (pat[inverse] == g).all() and (pflag[inverse] == flag).all()
    assert count.sum() == 500 and len(pat) < 500
    assert len({(tuple(r), f) for r, f in zip(pat.tolist(), pflag.tolist(), strict=True)}) == len(pat)
    for p in range(len(pat)):  # each count is how many input rows carry that pattern and flag
        assert count[p] == ((g == pat[p]).all(axis=1) & (flag == pflag[p])).sum()
    again = compress_patterns(g[::-1], flag[::-1])  # numbered by pattern, not by where it first appears
    assert (again[0] == pat).all() and (again[2] == count).all()


def _profile_db(profiles: np.ndarray, sent: list[int]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("p", pa.table({"aid": np.arange(1, len(profiles) + 1, dtype=np.int32),
                                "platform": ["x", "y"] * (len(profiles) // 2),
                                "messages_sent": sent,
                                "hour_profile": [list(r) for r in profiles]}))
    con.execute("CREATE TEMP TABLE _lk_accounts AS SELECT aid, platform, 'u' || aid AS account, messages_sent "
                "FROM p")
    con.execute("CREATE TABLE features AS SELECT platform, 'u' || aid AS account, "
                "hour_profile::DOUBLE[168] AS hour_profile FROM p")
    return con


def test_activity_levels_match_sql_cosine() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(168)
    prof = np.array([base + rng.random(168) * s for s in np.linspace(0, 3, 40)])
    con = _profile_db(prof, [50] * 38 + [3, 50])
    a, b = np.triu_indices(40, 1)
    a, b = (a + 1).astype(np.int32), (b + 1).astype(np.int32)
    row, unit = activity_profiles(con, 10, unit=True)
    got = activity_levels(a, b, row, unit)
    con.register("pairs", pa.table({"a": a, "b": b}))
    want = con.execute("""
        SELECT CASE WHEN A.messages_sent < 10 OR B.messages_sent < 10 THEN -1
                    WHEN list_cosine_similarity(A.hour_profile, B.hour_profile) >= 0.95 THEN 3
                    WHEN list_cosine_similarity(A.hour_profile, B.hour_profile) >= 0.85 THEN 2
                    WHEN list_cosine_similarity(A.hour_profile, B.hour_profile) >= 0.6 THEN 1 ELSE 0 END
        FROM pairs p
        JOIN (SELECT * FROM _lk_accounts JOIN features USING (platform, account)) A ON A.aid = p.a
        JOIN (SELECT * FROM _lk_accounts JOIN features USING (platform, account)) B ON B.aid = p.b
        ORDER BY p.a, p.b""").fetchnumpy()
    assert (got == np.asarray(list(want.values())[0])).all()
    assert {-1, 1, 2, 3} <= set(got.tolist())


def test_peak_hours_break_ties_towards_earlier_hours() -> None:
    prof = np.zeros((4, 168))
    prof[0, [5, 9, 100, 150]] = 1.0          # four-way tie: the first three hours win
    prof[1, [7, 8]] = 2.0
    prof[1, [3, 160]] = 1.0                   # 7, 8 then the earlier of 3 / 160
    prof[2] = 1.0                             # flat: hours 0, 1, 2
    prof[3, 167] = 1.0
    con = _profile_db(prof, [20, 20, 20, 20])
    prepare_peak_hours(con, LinkageSettings(activity_min_messages=10))
    got = con.execute("SELECT aid, h1, h2, h3 FROM _lk_peak_hours ORDER BY aid").fetchall()
    assert got == [(1, 5, 9, 100), (2, 3, 7, 8), (3, 0, 1, 2), (4, 0, 1, 167)]
