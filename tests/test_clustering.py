"""Identity clustering (average linkage with a chaining guard), build_identities and evaluate_linkage."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import networkx as nx
import numpy as np
import polars as pl
import pytest

from reputation.config import Settings
from reputation.context import StageContext
from reputation.evaluate.linkage import evaluate_linkage
from reputation.linkage.blocking import LinkageSettings
from reputation.linkage.clustering import attach_silent, average_linkage, cluster, membership
from reputation.linkage.stage import build_identities
from reputation.schema import STORED_TABLES


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for node, lab in enumerate(labels.tolist()):
        groups.setdefault(lab, set()).add(node)
    return {frozenset(g) for g in groups.values()}


def _cliques(rng: np.random.Generator, n_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint groups of 1–6 nodes, every pair inside a group linked with probability ≥ 0.6."""
    sizes = []
    while sum(sizes) < n_nodes:
        sizes.append(int(rng.integers(1, 7)))
    sizes[-1] -= sum(sizes) - n_nodes
    a, b, start = [], [], 0
    for size in sizes:
        nodes = rng.permutation(np.arange(start, start + size))
        for i in range(size):
            for j in range(i + 1, size):
                a.append(nodes[i])
                b.append(nodes[j])
        start += size
    perm = rng.permutation(n_nodes)  # shuffle node ids so groups are not contiguous
    a, b = perm[np.array(a, dtype=np.int64)], perm[np.array(b, dtype=np.int64)]
    return a, b, rng.uniform(0.6, 1.0, size=len(a))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_networkx_components_when_the_guard_does_not_bite(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    a, b, p = _cliques(rng, n)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(a.tolist(), b.tolist(), strict=True))
    expected = {frozenset(c) for c in nx.connected_components(g)}
    assert _partition(cluster(n, a, b, p, threshold=0.5, max_size=12)) == expected
    assert _partition(cluster(n, a, b, p, threshold=0.5, guard=False)) == expected


def test_one_wrong_link_does_not_chain_two_people() -> None:
    # two people with three accounts each, fully linked; one wrong link between them
    a = np.array([0, 0, 1, 3, 3, 4, 2])
    b = np.array([1, 2, 2, 4, 5, 5, 3])
    p = np.array([0.99, 0.95, 0.97, 0.99, 0.96, 0.98, 0.9])
    guarded = _partition(cluster(6, a, b, p))
    assert guarded == {frozenset({0, 1, 2}), frozenset({3, 4, 5})}
    assert _partition(cluster(6, a, b, p, guard=False)) == {frozenset(range(6))}


def test_chain_of_links_is_cut() -> None:
    # a path 0-1-2-3-4: neighbours linked, nothing else: clusters stay small
    a, b = np.arange(4), np.arange(1, 5)
    labels = average_linkage(5, a, b, np.full(4, 0.95), tau=0.5)
    assert max(len(g) for g in _partition(labels)) <= 2


def test_size_cap() -> None:
    n = 20
    a, b = np.triu_indices(n, 1)
    labels = cluster(n, a, b, np.full(len(a), 0.99), max_size=8)
    assert max(len(g) for g in _partition(labels)) <= 8


def test_membership_is_mean_probability_to_other_members() -> None:
    labels = np.array([0, 0, 0, 3])
    m = membership(labels, np.array([0, 1]), np.array([1, 2]), np.array([0.9, 0.6]))
    assert m.tolist() == pytest.approx([0.45, 0.75, 0.3, 1.0])


def _star_identity() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nodes 0–3 one identity (all pairs linked); node 4 linked to node 3 only, at 0.95."""
    a = np.array([0, 0, 0, 1, 1, 2, 4])
    b = np.array([1, 2, 3, 2, 3, 3, 3])
    prob = np.array([0.99] * 6 + [0.95])
    labels = average_linkage(5, a, b, prob)
    return labels, a, b, prob


def test_average_linkage_keeps_a_one_link_account_out_and_attach_silent_takes_it_in() -> None:
    labels, a, b, prob = _star_identity()
    assert labels.tolist() == [0, 0, 0, 0, 4]  # 0.95 / 4 < 0.5: the guard keeps node 4 out
    silent = np.array([False] * 4 + [True])
    assert attach_silent(labels, a, b, prob, silent).tolist() == [0, 0, 0, 0, 0]
    # an account that sent messages had its behaviour compared: its unlinked pairs are evidence, it stays out
    assert attach_silent(labels, a, b, prob, ~silent).tolist() == labels.tolist()
    # a weak link is not enough
    assert attach_silent(labels, a, b, prob, silent, min_probability=0.96).tolist() == labels.tolist()


def test_attach_silent_needs_one_target_and_room() -> None:
    labels, a, b, prob = _star_identity()
    # node 5 (silent) is linked into the identity and to node 6: two targets, it stays alone
    a2, b2, p2 = np.r_[a, 5, 5], np.r_[b, 0, 6], np.r_[prob, 0.99, 0.99]
    labels2 = np.r_[labels, 5, 6]
    silent = np.array([False] * 4 + [True, True, False])
    assert attach_silent(labels2, a2, b2, p2, silent).tolist() == [0, 0, 0, 0, 0, 5, 6]
    # room for one more: the more strongly linked of two silent accounts joins
    a3, b3, p3 = np.r_[a, 5], np.r_[b, 1], np.r_[prob, 0.97]
    labels3 = np.r_[labels, 5]
    silent3 = np.array([False] * 4 + [True, True])
    assert attach_silent(labels3, a3, b3, p3, silent3, max_size=5).tolist() == [0, 0, 0, 0, 4, 0]
    assert attach_silent(labels3, a3, b3, p3, silent3, max_size=6).tolist() == [0] * 6
    # only singletons move: a silent account already in an identity stays where it is
    silent_all = np.ones(6, dtype=bool)
    assert attach_silent(labels3, a3, b3, p3, silent_all, max_size=6)[:4].tolist() == [0, 0, 0, 0]


def _db_with_links() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(STORED_TABLES["accounts"].ddl())
    for platform, account in [("x", "1"), ("y", "1"), ("z", "1"), ("x", "2"), ("y", "2"), ("x", "3")]:
        con.execute("INSERT INTO accounts (run_id, platform, account, in_directory) VALUES ('r', ?, ?, true)",
                    [platform, account])
    con.execute("""CREATE TABLE links (run_id VARCHAR, platform_a VARCHAR, account_a VARCHAR,
                   platform_b VARCHAR, account_b VARCHAR, probability DOUBLE, match_weight DOUBLE,
                   evidence JSON, rules VARCHAR[], carry_probability DOUBLE)""")
    rows = [("x", "1", "y", "1", 0.99), ("x", "1", "z", "1", 0.97), ("y", "1", "z", "1", 0.9),
            ("x", "2", "y", "2", 0.8)]
    for pa, aa, pb, ab, prob in rows:  # names carry part of x2–y2's probability
        con.execute("INSERT INTO links VALUES ('r', ?, ?, ?, ?, ?, 0, '[]', [], ?)",
                    [pa, aa, pb, ab, prob, 0.3 if aa == "2" else prob])
    return con


def test_build_identities_gives_every_account_one_row() -> None:
    con = _db_with_links()
    ctx = StageContext("run1", Settings(), datetime(2026, 1, 1))
    assert build_identities(con, ctx) == 6
    rows = con.sql("SELECT platform, account, identity_id, size, membership FROM identities").fetchall()
    assert len({(p, a) for p, a, *_ in rows}) == 6
    ids = {(p, a): (i, s, m) for p, a, i, s, m in rows}
    assert ids[("x", "1")][0] == ids[("y", "1")][0] == ids[("z", "1")][0] and ids[("x", "1")][1] == 3
    assert ids[("x", "2")][0] == ids[("y", "2")][0] != ids[("x", "1")][0]
    assert ids[("x", "3")][1] == 1 and ids[("x", "3")][2] == 1.0
    # a name-only link clusters as strongly as any, but what carries over it is its carry probability
    carry = dict(con.sql("SELECT platform || account, carry_membership FROM identities").fetchall())
    assert carry["x2"] == carry["y2"] == 0.3 and carry["x1"] == ids[("x", "1")][2] and carry["x3"] == 1.0
    # the id depends on the members only
    again = _db_with_links()
    build_identities(again, StageContext("run2", Settings(), datetime(2026, 2, 1)))
    q = "SELECT platform, account, identity_id FROM identities ORDER BY ALL"
    assert con.sql(q).fetchall() == again.sql(q).fetchall()


def test_build_identities_attaches_a_silent_account_to_the_identity_it_is_linked_into() -> None:
    con = _db_with_links()
    # x:3 is linked to z:1 only: average linkage keeps it out of {x:1, y:1, z:1} (0.92 / 3 < 0.5)
    con.execute("INSERT INTO links VALUES ('r', 'x', '3', 'z', '1', 0.92, 0, '[]', [], 0.92)")
    con.execute("CREATE TABLE features (platform VARCHAR, account VARCHAR, messages_sent BIGINT)")
    con.execute("INSERT INTO features VALUES ('x', '1', 5), ('y', '1', 3), ('z', '1', 7), ('x', '3', 4)")
    q = "SELECT platform || ':' || account, size FROM identities ORDER BY ALL"
    build_identities(con, StageContext("run1", Settings(), datetime(2026, 1, 1)))
    assert dict(con.sql(q).fetchall())["x:3"] == 1  # it sent messages: its behaviour was compared
    con.execute("UPDATE features SET messages_sent = 0 WHERE account = '3'")
    build_identities(con, StageContext("run2", Settings(), datetime(2026, 1, 1)))
    sizes = dict(con.sql(q).fetchall())
    assert sizes["x:3"] == 4 and sizes["z:1"] == 4
    off = LinkageSettings(attach_silent_probability=1.1)
    build_identities(con, StageContext("run3", Settings(), datetime(2026, 1, 1), extras={"linkage": off}))
    assert dict(con.sql(q).fetchall())["x:3"] == 1


def test_evaluate_linkage_against_truth(tmp_path: Path) -> None:
    con = _db_with_links()
    build_identities(con, StageContext("run1", Settings(), datetime(2026, 1, 1)))
    con.execute("CREATE TABLE candidate_pairs AS "
                "SELECT platform_a, account_a, platform_b, account_b FROM links")
    con.execute(STORED_TABLES["identifiers"].ddl())
    con.execute("INSERT INTO identifiers VALUES ('r', 'x', '1', 'email', 'h', 1, 2), "
                "('r', 'y', '1', 'email', 'h', 1, 2)")
    # truth: x1, y1, z1 one person; x2 and y2 different people; x3 and y2 the same person
    pl.DataFrame({
        "platform": ["x", "y", "z", "x", "y", "x"], "account": ["1", "1", "1", "2", "2", "3"],
        "person_id": [1, 1, 1, 2, 3, 3],
        "evasion": [[], [], ["handle_variation"], [], [], ["fresh_account"]],
    }).write_parquet(tmp_path / "accounts.parquet")
    r = evaluate_linkage(con, tmp_path)
    assert r["true_pairs"] == 4 and r["predicted_pairs"] == 4
    assert r["pairwise_precision"] == pytest.approx(3 / 4)
    assert r["pairwise_recall"] == pytest.approx(3 / 4)
    assert r["blocking_recall"] == pytest.approx(3 / 4)
    assert r["no_shared_identifier_recall"] == pytest.approx(2 / 3)  # x1-y1 share an email
    assert r["by_evasion"]["handle_variation"] == pytest.approx(1.0)
    assert r["by_evasion"]["fresh_account"] == pytest.approx(0.0)
    assert 0 < r["bcubed_f1"] < 1
    assert r["household_pairs"] == 0 and r["household_link_rate"] != r["household_link_rate"]  # NaN: no households
    # x2 (person 2) lives with y2 and x3 (person 3): two pairs of accounts of different people in one household
    households = pl.Series([None, None, None, 7, 7, 7], dtype=pl.Int64)
    truth = pl.read_parquet(tmp_path / "accounts.parquet").with_columns(household_id=households)
    truth.write_parquet(tmp_path / "accounts.parquet")
    linked = {tuple(sorted(r)) for r in con.execute(
        "SELECT x.platform || x.account, y.platform || y.account FROM identities x JOIN identities y "
        "USING (identity_id) WHERE x.size > 1").fetchall()}
    expected = sum(pair in linked for pair in [("x2", "y2"), ("x2", "x3")])
    assert expected == 1  # the fixture links x2 with y2 (the pairwise precision 3/4 above), not with x3
    r = evaluate_linkage(con, tmp_path)
    assert r["household_pairs"] == 2 and r["household_linked_pairs"] == expected
    assert r["household_link_rate"] == pytest.approx(expected / 2)
