"""The Douban structure-only linkage benchmark, on a small synthetic pair of graphs (fast)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.douban_linkage import (
    DEFAULT_DATA,
    Douban,
    load,
    narayanan_shmatikov,
    pipeline_linkage,
    score,
    split,
)


def _synthetic(seed: int = 0, n: int = 300, keep: float = 0.7) -> Douban:
    """A random graph and a noisy, relabelled copy of a subset of its nodes (the 'offline' network)."""
    rng = np.random.default_rng(seed)
    # preferential-attachment-like graph: each node links to 3 earlier nodes
    edges = []
    for v in range(1, n):
        for u in rng.choice(v, size=min(3, v), replace=False):
            edges.append((u, v))
    online = np.array(edges, dtype=np.int64)
    members = np.sort(rng.choice(n, size=n // 2, replace=False))
    new_id = np.full(n, -1)
    new_id[members] = rng.permutation(len(members))
    both = (new_id[online[:, 0]] >= 0) & (new_id[online[:, 1]] >= 0) & (rng.random(len(online)) < keep)
    offline = new_id[online[both]]
    truth = np.column_stack([members, new_id[members]])
    return Douban(online, offline, truth, n, len(members))


def test_split_is_seeded_and_disjoint() -> None:
    truth = np.column_stack([np.arange(10), np.arange(10)])
    s1, t1 = split(truth, seed=5)
    s2, _ = split(truth, seed=5)
    assert (s1 == s2).all() and len(s1) == len(t1) == 5
    assert not set(s1[:, 0]) & set(t1[:, 0])


def test_score_ignores_seed_nodes() -> None:
    seeds = np.array([[0, 0]])
    test = np.array([[1, 1], [2, 2]])
    r = score(np.array([[0, 0], [1, 1], [2, 3]]), test, seeds)
    assert r == {"predicted": 2, "correct": 1, "precision": 0.5, "recall": 0.5}


def test_seed_and_extend_beats_baseline_on_synthetic_graphs() -> None:
    data = _synthetic()
    seeds, test = split(data.truth, seed=0)
    ours = score(pipeline_linkage(data, seeds), test, seeds)
    base = score(narayanan_shmatikov(data, seeds, theta=0.5), test, seeds)
    assert ours["precision"] >= 0.9
    assert ours["recall"] > 0.3
    assert ours["recall"] >= base["recall"] or base["precision"] < 0.9


@pytest.mark.skipif(not (DEFAULT_DATA / "groundtruth").exists(), reason="real Douban data not present")
def test_real_douban_files_load() -> None:
    data = load()
    assert (data.n_online, data.n_offline, len(data.truth)) == (3906, 1118, 1118)
    assert len(data.online) == 8164 and len(data.offline) == 1511
