"""Linearised belief propagation: vectorised kernel vs a pure-Python reference, convergence, edges."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
import scipy.sparse as sp

from reputation.scoring.propagation import ConvergenceError, build_edges, linearized_bp, normalise_edges


def reference_bp(n: int, edges: dict[tuple[int, int], float], prior: list[float], max_iter: int = 500,
                 tol: float = 1e-10, directed: bool = False) -> list[float]:
    """Plain-Python SybilSCAR: p_u <- clip(q_u + 2 * sum_v w_uv p_v, -0.5, 0.5), synchronous updates.

    ``edges`` holds w_uv per undirected pair, or per ordered pair (u, v) when ``directed``.
    """
    nbrs: dict[int, list[tuple[int, float]]] = {u: [] for u in range(n)}
    for (u, v), w in edges.items():
        nbrs[u].append((v, w))
        if not directed:
            nbrs[v].append((u, w))
    p = [max(-0.5, min(0.5, q)) for q in prior]
    for _ in range(max_iter):
        new = []
        for u in range(n):
            s = prior[u] + 2 * sum(w * p[v] for v, w in nbrs[u])
            new.append(max(-0.5, min(0.5, s)))
        done = max(abs(a - b) for a, b in zip(new, p, strict=True)) < tol
        p = new
        if done:
            break
    return p


@pytest.mark.parametrize("mode", ["symmetric", "row"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_random_graphs(seed: int, mode: str) -> None:
    rng = np.random.default_rng(seed)
    n = 30
    src = rng.integers(0, n, 80)
    dst = rng.integers(0, n, 80)
    W = normalise_edges(src, dst, rng.uniform(0.5, 2.0, 80), n, rho=0.95, mode=mode)
    prior = np.zeros(n)
    prior[rng.choice(n, 6, replace=False)] = rng.choice([-0.4, 0.4], 6)
    coo = W.tocoo()
    edges = {(int(u), int(v)): float(w) for u, v, w in zip(coo.row, coo.col, coo.data, strict=True)}
    expected = reference_bp(n, edges, prior.tolist(), directed=True)
    got, _ = linearized_bp(W, prior, tol=1e-12, max_iter=2000)
    np.testing.assert_allclose(got, expected, atol=1e-8)


def test_clipping_binds_with_strong_weights() -> None:
    # Unnormalised, strong weights: the clip keeps beliefs in [-0.5, 0.5] and the reference agrees.
    W = sp.csr_matrix(np.array([[0, 0.6], [0.6, 0]]))
    got, _ = linearized_bp(W, np.array([0.4, 0.0]), max_iter=500)
    ref = reference_bp(2, {(0, 1): 0.6}, [0.4, 0.0])
    np.testing.assert_allclose(got, ref, atol=1e-9)
    assert got.max() == pytest.approx(0.5)


def test_rows_of_2w_are_bounded_and_w_is_symmetric() -> None:
    W = normalise_edges(np.array([0, 0, 0, 1, 1]), np.array([1, 2, 3, 2, 0]), np.ones(5), 4, rho=0.9)
    assert (abs(W - W.T) > 1e-12).nnz == 0
    assert np.max(np.asarray((2 * W).sum(axis=1))) <= 0.9 + 1e-12
    assert W.diagonal().sum() == 0
    R = normalise_edges(np.array([0, 0, 0, 1, 1]), np.array([1, 2, 3, 2, 0]), np.ones(5), 4, rho=0.9, mode="row")
    np.testing.assert_allclose(np.asarray((2 * R).sum(axis=1)).ravel(), 0.9)
    assert ((R > 0) != (W > 0)).nnz == 0  # same edges, different weights


def test_linear_map_is_additive_without_clip() -> None:
    rng = np.random.default_rng(5)
    W = normalise_edges(rng.integers(0, 20, 50), rng.integers(0, 20, 50), np.ones(50), 20)
    a, b = rng.normal(size=20) * 0.2, rng.normal(size=20) * 0.2
    pa, _ = linearized_bp(W, a, clip=None, tol=1e-13, max_iter=5000)
    pb, _ = linearized_bp(W, b, clip=None, tol=1e-13, max_iter=5000)
    pab, _ = linearized_bp(W, np.column_stack([a, b]), clip=None, tol=1e-13, max_iter=5000)
    np.testing.assert_allclose(pab[:, 0] + pab[:, 1], pa + pb, atol=1e-9)


def test_raises_convergence_error() -> None:
    W = sp.csr_matrix(np.array([[0, 1.0], [1.0, 0]]))  # 2W has spectral radius 2: diverges unclipped
    with pytest.raises(ConvergenceError) as err:
        linearized_bp(W, np.array([0.1, 0.0]), max_iter=20, clip=None)
    assert err.value.iterations == 20


def test_one_way_edges_never_carry_belief() -> None:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE acc_index AS SELECT * FROM (VALUES (0, 'p', 'spammer'), (1, 'p', 'victim'), "
                "(2, 'p', 'friend')) t(idx, platform, account)")
    con.execute("""CREATE TABLE interactions AS SELECT * FROM (VALUES
        ('p', 'spammer', 'victim', 'direct', false, 5, 0), ('p', 'victim', 'friend', 'direct', true, 4, 3),
        ('p', 'friend', 'victim', 'direct', true, 3, 4)) t(platform, sender, recipient, kind, reciprocated,
        messages, replies)""")
    W, counts = build_edges(con, 3)
    assert counts == {"reciprocated": 1, "campaign": 0, "template": 0}
    p, _ = linearized_bp(W, np.array([0.5, 0.0, 0.0]))
    assert p[1] == 0.0 and p[2] == 0.0


def test_neighbour_push_removes_own_echo() -> None:
    from reputation.scoring.stage import neighbour_push

    # Two accounts: all of account 0's push would be its own belief coming back; none of it counts.
    W = normalise_edges(np.array([0]), np.array([1]), np.ones(1), 2, mode="row")
    push, _ = neighbour_push(W, np.array([0.5, 0.0]))
    assert push[0] == pytest.approx(0.0, abs=1e-6)
    assert push[1] > 0.4
