"""Linearised belief propagation: vectorised kernel vs a pure-Python reference, convergence, edges."""

from __future__ import annotations

from pathlib import Path

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


def _jacobi(W: sp.spmatrix, q: np.ndarray, tol: float) -> tuple[np.ndarray, int]:
    """The plain unclipped Jacobi iteration p <- q + 2Wp (the kernel before Chebyshev acceleration)."""
    two_w = 2.0 * sp.csr_matrix(W)
    p = q.copy()
    for it in range(1, 100_000):
        new = q + two_w @ p
        delta = np.max(np.abs(new - p))
        p = new
        if delta < tol:
            return p, it
    raise AssertionError("no convergence")


def _random_graph(seed: int, n: int, m: int, mode: str) -> tuple[sp.csr_matrix, np.ndarray]:
    """A normalised random graph of n nodes and m edges (rho 0.9) and a centred prior on it."""
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    W = normalise_edges(src, dst, rng.uniform(0.5, 2.0, m), n, rho=0.9, mode=mode)
    return W, rng.normal(size=n) * 0.2


@pytest.mark.parametrize("mode", ["symmetric", "row"])
@pytest.mark.parametrize("seed", [0, 1])
def test_unclipped_solve_reaches_the_jacobi_fixed_point_in_fewer_matvecs(seed: int, mode: str) -> None:
    W, q = _random_graph(seed, 400, 3000, mode)
    n = W.shape[0]
    exact = np.linalg.solve(np.eye(n) - 2.0 * W.toarray(), q)
    got, it = linearized_bp(W, q, clip=None, tol=1e-7)
    ref, it_ref = _jacobi(W, q, tol=1e-7)
    # Both stop when a Jacobi step changes nothing by tol; both are then within tol·rho/(1−rho) of the solution.
    assert np.max(np.abs(got - exact)) < 1e-7 * 0.9 / 0.1
    assert np.max(np.abs(ref - exact)) < 1e-7 * 0.9 / 0.1
    # Row-normalised (the stage's graphs), the spectral radius is rho itself: ~4x fewer mat-vecs.
    assert it < (it_ref / 2 if mode == "row" else it_ref)
    # And with a tight tolerance both agree with the exact solve to rounding.
    tight, _ = linearized_bp(W, q, clip=None, tol=1e-13, max_iter=1000)
    np.testing.assert_allclose(tight, exact, atol=1e-11)


def test_unclipped_solve_falls_back_to_jacobi_on_a_complex_spectrum() -> None:
    # A directed 3-cycle: 2W has eigenvalues 0.9·(cube roots of 1), off the real axis, where the
    # Chebyshev rate does not hold; the solve must still reach the fixed point.
    W = sp.csr_matrix((np.full(3, 0.45), ([0, 1, 2], [1, 2, 0])), shape=(3, 3))
    q = np.array([0.3, -0.1, 0.0])
    got, it = linearized_bp(W, q, clip=None, tol=1e-10, max_iter=2000)
    exact = np.linalg.solve(np.eye(3) - 2.0 * W.toarray(), q)
    np.testing.assert_allclose(got, exact, atol=1e-8)


def _random_csr(rng: np.random.Generator, n: int, nnz: int, index_dtype: type) -> sp.csr_matrix:
    """A random CSR matrix with empty rows, one long row, rows of odd and even length and stored zeros."""
    rows, cols = rng.integers(0, n - n // 10, nnz), rng.integers(0, n, nnz)  # the last tenth of rows empty
    rows[: n // 5] = 0  # one long row
    rows[rows % 17 == 5] = 1  # and more empty rows in between
    A = sp.coo_matrix((rng.normal(size=nnz), (rows, cols)), shape=(n, n)).tocsr()
    A.data[rng.random(A.nnz) < 0.1] = 0.0
    A.indices, A.indptr = A.indices.astype(index_dtype), A.indptr.astype(index_dtype)
    return A


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("jacobi", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chebyshev_sweep_matches_scipy(seed: int, jacobi: bool, index_dtype: type) -> None:
    from reputation.scoring._kernels import chebyshev_sweep
    from reputation.scoring.propagation import _unsigned

    rng = np.random.default_rng(seed)
    n = 300
    A = _random_csr(rng, n, 2500, index_dtype)
    assert np.diff(A.indptr).min() == 0 and A.indices.dtype == index_dtype
    q, p, prev = (rng.normal(size=n) for _ in range(3))
    y, nxt = np.full(n, np.nan), prev.copy()
    delta = chebyshev_sweep(_unsigned(A.indptr), _unsigned(A.indices), A.data, 2.0, q, p, nxt, y, 1.3, jacobi)
    want_y = q + 2.0 * (A @ p)
    np.testing.assert_allclose(y, want_y, rtol=0, atol=1e-13)  # two accumulators: rounding only
    np.testing.assert_allclose(nxt, want_y if jacobi else prev + 1.3 * (want_y - prev), rtol=0, atol=1e-13)
    assert delta == np.max(np.abs(y - p))


@pytest.mark.parametrize("ahead", [1, 32, 10_000])
def test_chebyshev_sweep_with_prefetch_is_the_same_sweep(ahead: int) -> None:
    from reputation.scoring._kernels import chebyshev_sweep
    from reputation.scoring.propagation import _unsigned

    rng = np.random.default_rng(4)
    n = 300
    A = _random_csr(rng, n, 2500, np.int32)
    q, p, prev = (rng.normal(size=n) for _ in range(3))
    args = (_unsigned(A.indptr), _unsigned(A.indices), A.data, 2.0, q, p)
    y0, n0, y1, n1 = np.zeros(n), prev.copy(), np.zeros(n), prev.copy()
    d0 = chebyshev_sweep(*args, n0, y0, 1.3, False, 0)
    d1 = chebyshev_sweep(*args, n1, y1, 1.3, False, ahead)  # ahead past the last entry: clamped
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(n1, n0)
    assert d1 == d0


def test_unclipped_solve_with_prefetch_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import reputation.scoring.propagation as prop

    rng = np.random.default_rng(5)
    n = 2000
    W = normalise_edges(rng.integers(0, n, 20000), rng.integers(0, n, 20000), rng.uniform(0.5, 2.0, 20000), n,
                        mode="row")
    q = rng.normal(size=n) * 0.2
    assert q.nbytes < prop.PREFETCH_MIN_BYTES
    plain, it = linearized_bp(W, q, clip=None)
    monkeypatch.setattr(prop, "PREFETCH_MIN_BYTES", 0)
    prefetched, it_pf = linearized_bp(W, q, clip=None)
    assert it_pf == it
    np.testing.assert_array_equal(prefetched, plain)


def test_chebyshev_sweep_propagates_nan() -> None:
    from reputation.scoring._kernels import chebyshev_sweep
    from reputation.scoring.propagation import _unsigned

    A = sp.csr_matrix(np.array([[0.0, 0.5], [0.5, 0.0]]))
    p = np.array([np.nan, 0.0])
    y, nxt = np.zeros(2), np.zeros(2)
    assert np.isnan(chebyshev_sweep(_unsigned(A.indptr), _unsigned(A.indices), A.data, 2.0, np.zeros(2), p, nxt,
                                    y, 1.0, False))


@pytest.mark.parametrize("seed", [0, 1])
def test_first_sweep_matches_scipy_and_returns_the_inf_norm(seed: int) -> None:
    from reputation.scoring._kernels import first_sweep
    from reputation.scoring.propagation import _unsigned

    rng = np.random.default_rng(seed)
    n = 300
    A = _random_csr(rng, n, 2500, np.int32)
    q = rng.normal(size=n)
    y, nxt = np.full(n, np.nan), q.copy()
    delta, norm = first_sweep(_unsigned(A.indptr), _unsigned(A.indices), A.data, 2.0, q, nxt, y)
    np.testing.assert_allclose(y, q + 2.0 * (A @ q), rtol=0, atol=1e-13)
    np.testing.assert_allclose(nxt, y, rtol=0, atol=1e-13)
    assert delta == np.max(np.abs(y - q))
    assert norm == pytest.approx(2.0 * np.max(np.abs(A).sum(axis=1)), rel=1e-14)


def test_unclipped_solve_without_a_contraction_bound_runs_jacobi() -> None:
    # Rows of 2W sum to 1.2 (no Chebyshev rate), but 2W is nilpotent: Jacobi reaches q + 2W·q exactly.
    W = sp.csr_matrix(np.array([[0.0, 0.6, 0.0], [0.0, 0.0, 0.6], [0.0, 0.0, 0.0]]))
    q = np.array([0.1, -0.2, 0.3])
    got, it = linearized_bp(W, q, clip=None)
    exact = np.linalg.solve(np.eye(3) - 2.0 * W.toarray(), q)
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-15)
    assert it == 3  # Jacobi from q: two steps to the fixed point, a third that changes nothing


def _chebyshev_scipy(W: sp.csr_matrix, q: np.ndarray, tol: float = 1e-7) -> tuple[np.ndarray, int]:
    """The Chebyshev semi-iteration with scipy mat-vecs and numpy updates (the compiled solve's reference)."""
    two_w = 2.0 * W
    rho = float(np.max(np.abs(two_w).sum(axis=1)))
    p, prev, omega = q.copy(), q.copy(), 1.0
    for it in range(1, 500):
        y = q + two_w @ p
        delta = np.max(np.abs(y - p))
        prev, p = p, prev + omega * (y - prev)
        if delta < tol:
            return y, it
        omega = 1.0 / (1.0 - 0.5 * rho * rho) if it == 1 else 1.0 / (1.0 - 0.25 * rho * rho * omega)
    raise AssertionError("no convergence")


@pytest.mark.parametrize("mode", ["symmetric", "row"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_solve_matches_the_scipy_chebyshev(seed: int, mode: str) -> None:
    W, q = _random_graph(seed, 500, 4000, mode)
    got, it = linearized_bp(W, q, clip=None)
    ref, it_ref = _chebyshev_scipy(W, q)
    assert it == it_ref  # the same iterates up to rounding, hence the same stopping step
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    W64 = sp.csr_matrix((W.data, W.indices.astype(np.int64), W.indptr.astype(np.int64)), shape=W.shape)
    got64, it64 = linearized_bp(W64, q, clip=None)
    assert it64 == it
    np.testing.assert_array_equal(got64, got)


def test_compiled_solve_raises_convergence_error() -> None:
    n = 50  # a path: Chebyshev needs more than 5 mat-vecs (on 3 nodes it is exact after 3)
    W = normalise_edges(np.arange(n - 1), np.arange(1, n), np.ones(n - 1), n, rho=0.9)
    q = np.zeros(n)
    q[0] = 0.5
    with pytest.raises(ConvergenceError):
        linearized_bp(W, q, clip=None, max_iter=5)


def test_template_edges_skip_single_account_templates_cap_large_ones_and_share_one_weight() -> None:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE acc_index AS SELECT i AS idx, 'p' AS platform, 'a' || i AS account "
                "FROM range(6) t(i)")
    # t1: accounts 0, 1, 2 (account 0 twice); t2: account 3 alone; t3: accounts 1 and 2 again (one edge
    # per pair however many templates they share); t4: accounts 3, 4, 5 (above a cap of 2).
    con.execute("""CREATE TABLE templates AS SELECT * FROM (VALUES
        ('p', 'a0', 't1'), ('p', 'a0', 't1'), ('p', 'a1', 't1'), ('p', 'a2', 't1'), ('p', 'a3', 't2'),
        ('p', 'a1', 't3'), ('p', 'a2', 't3'), ('p', 'a3', 't4'), ('p', 'a4', 't4'), ('p', 'a5', 't4'),
        ('p', 'ghost', 't2')) t(platform, account, template_id)""")
    from reputation.scoring.propagation import edge_list

    u, v, s = edge_list(con, max_template_accounts=3)["template"]
    # strength 0.5 / (n − 1) for a template of n accounts, the pair's strongest template: a template
    # gives each of its accounts a total of 0.5 however many share it (1, 2 share t3 as a pair: 0.5)
    assert sorted(zip(u.tolist(), v.tolist(), s.tolist(), strict=True)) == [
        (0, 1, 0.25), (0, 2, 0.25), (1, 2, 0.5), (3, 4, 0.25), (3, 5, 0.25), (4, 5, 0.25)]
    u, v, _ = edge_list(con, max_template_accounts=2)["template"]
    assert sorted(zip(u.tolist(), v.tolist(), strict=True)) == [(1, 2)]


def test_l2_cache_size_is_read_from_sysfs(tmp_path: Path) -> None:
    from reputation._prefetch import DEFAULT_L2_BYTES, l2_cache_bytes

    def index(name: str, level: str, kind: str, size: str) -> None:
        d = tmp_path / name
        d.mkdir()
        (d / "level").write_text(level + "\n")
        (d / "type").write_text(kind + "\n")
        (d / "size").write_text(size + "\n")

    index("index0", "1", "Data", "48K")
    index("index1", "1", "Instruction", "32K")
    index("index2", "2", "Unified", "2048K")
    index("index3", "3", "Unified", "480M")
    assert l2_cache_bytes(tmp_path) == 2 << 20
    (tmp_path / "index2" / "size").write_text("1M\n")
    assert l2_cache_bytes(tmp_path) == 1 << 20
    (tmp_path / "index2" / "size").write_text("unknown\n")  # unreadable: the default, not an error
    assert l2_cache_bytes(tmp_path) == DEFAULT_L2_BYTES
    assert l2_cache_bytes(tmp_path / "missing") == DEFAULT_L2_BYTES
