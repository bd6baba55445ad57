"""Graph propagation: SybilSCAR-style linearised belief propagation as a scipy.sparse kernel.

With hatted values ``p̂ = p − 0.5`` the iteration is ``p̂ ← clip(q̂ + 2·W·p̂, −0.5, 0.5)`` (Wang, Zhang,
Gong, INFOCOM 2017), where ``q̂`` is the prior (+ for spam seeds, − for clean seeds, 0 otherwise) and
``W`` a symmetric non-negative edge-weight matrix.

Which edges (see :func:`build_edges`):

- **reciprocated** direct conversations (both accounts wrote to each other on a platform; strength
  grows with the smaller direction's message count up to ``FULL_RECIPROCITY``). One-way
  edges are *never* used: a recipient is never tainted for having received spam (the message-graph
  failure of random-walk defences, and Íntegro's lesson).
- **campaign** co-membership (lockstep groups: one operator).
- **template** co-membership (accounts sending near-copies of the same text), weaker, and only for
  templates shared by few enough accounts that the clique stays small.

Edge weights are normalised so that the iteration is a contraction: with ``s_uv`` the raw strength and
``D_u = Σ_v s_uv``, ``w_uv = ρ · s_uv / (2 · max(D_u, D_v))``; every row of ``2W`` then sums to at most
``ρ < 1``, so the linear iteration converges geometrically for any prior, and (when the clip does not
bind) the result is the linear map ``p̂ = (I − 2W)⁻¹ q̂`` — which lets the scoring stage attribute the
propagated belief to the kinds of evidence that seeded it.

Example
-------
>>> import scipy.sparse as sp
>>> W = normalise_edges(np.array([0, 1]), np.array([1, 2]), np.array([1.0, 1.0]), 3)
>>> p, it = linearized_bp(W, np.array([0.5, 0.0, 0.0]))
>>> bool(p[0] > p[1] > p[2] > 0)
True
"""

from __future__ import annotations

import duckdb
import numpy as np
import scipy.sparse as sp

from .._prefetch import l2_cache_bytes
from . import _kernels as _k

#: Spectral bound of 2W (row sums), < 1 so that the iteration contracts.
DEFAULT_RHO = 0.9
#: The unclipped solve prefetches its gathers once the propagated vector (float64) is larger than this: the
#: machine's per-core L2 cache (:func:`reputation._prefetch.l2_cache_bytes`; 1 MiB on the AMD EPYC and
#: 2 MiB on the Intel Xeon the benchmarks have run on). Below it, prefetching only costs time.
PREFETCH_MIN_BYTES = l2_cache_bytes()
#: How many stored entries ahead the sweeps prefetch (10M world, co-behaviour graph: 64 ~17% faster than no
#: prefetch, 32 ~12%, 8–16 no gain; its conversation graph, 5 entries per row, ~3% slower either way).
PREFETCH_AHEAD = 64
#: Raw strength of each edge kind. A template edge is divided by (n − 1) for a template that n accounts
#: share (the strongest template of a pair counts), so that one template gives an account the same total
#: weight however many share it: a common phrase shared with 30 strangers is one piece of co-behaviour
#: evidence, not 30. With a flat 0.5 per pair, a compromised account's honest history (its texts shared
#: with ~30 honest accounts) outweighed its ~16 campaign mates; at 10M messages dividing by n − 1 raised
#: compromised-account recall from 0.80 to 0.91 (spam recall 0.980 → 0.982, honest false positives 3 → 4
#: of 102,657).
EDGE_STRENGTH = {"reciprocated": 1.0, "campaign": 1.0, "template": 0.5}
#: Messages each way at which a conversation counts as a full-strength reciprocated edge: a victim who
#: wrote back once ("who is this?") ties a spammer to the honest region only weakly.
FULL_RECIPROCITY = 3
#: Templates shared by more accounts than this add no co-membership edges (quadratic clique, weak signal).
MAX_TEMPLATE_ACCOUNTS = 100
#: Campaigns with more accounts than this add no clique edges (their carry-over still applies).
MAX_CAMPAIGN_ACCOUNTS = 300


class ConvergenceError(RuntimeError):
    """The propagation did not converge within ``max_iter`` iterations.

    Attributes
    ----------
    iterations
        Iterations run.
    delta
        Largest absolute change in the last iteration.
    """

    def __init__(self, iterations: int, delta: float, tol: float):
        super().__init__(f"belief propagation did not converge in {iterations} iterations "
                         f"(last change {delta:.3g} > tol {tol:.3g}); lower the edge weights (rho) "
                         f"or raise max_iter")
        self.iterations = iterations
        self.delta = delta


def normalise_edges(src: np.ndarray, dst: np.ndarray, strength: np.ndarray, n: int,
                    rho: float = DEFAULT_RHO, mode: str = "symmetric") -> sp.csr_matrix:
    """Weight matrix W from undirected edges, normalised so that every row of 2W sums to ≤ rho.

    Duplicate edges (either orientation) add their strengths; self-loops are dropped.

    ``mode="symmetric"``: ``w_uv = rho · s_uv / (2 · max(D_u, D_v))`` (symmetric, as in SybilSCAR).
    ``mode="row"``: ``w_uv = rho · s_uv / (2 · D_u)``: every row of 2W sums to exactly rho, so an
    account's neighbours push their strength-weighted *average* belief into it (label spreading), and a
    well-connected neighbour does not drown a small identity's edges.

    Parameters
    ----------
    src, dst
        Node indices 0..n-1 of each edge.
    strength
        Raw strength of each edge (> 0).
    n
        Number of nodes.
    rho
        Bound on the row sums of 2W; must be < 1 for guaranteed convergence.
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    strength = np.asarray(strength, dtype=np.float64)
    keep = src != dst
    src, dst, strength = src[keep], dst[keep], strength[keep]
    rows = np.concatenate([src, dst])
    cols = np.concatenate([dst, src])
    vals = np.concatenate([strength, strength])
    S = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()  # sums duplicates, sorted indices
    S.sum_duplicates()
    deg = np.asarray(S.sum(axis=1)).ravel()
    if mode not in ("symmetric", "row"):
        raise ValueError(f"mode must be 'symmetric' or 'row', got {mode!r}")
    row = np.repeat(np.arange(n, dtype=S.indices.dtype), np.diff(S.indptr))
    denom = 2.0 * (np.maximum(deg[row], deg[S.indices]) if mode == "symmetric" else deg[row])
    W = sp.csr_matrix((rho * S.data / denom, S.indices, S.indptr), shape=(n, n))
    return W


def linearized_bp(W: sp.spmatrix, prior_hat: np.ndarray, max_iter: int = 200, tol: float = 1e-7,
                  clip: float | None = 0.5) -> tuple[np.ndarray, int]:
    """Solve ``p̂ = clip(q̂ + 2·W·p̂)`` from ``p̂ = q̂`` until the largest change of a Jacobi step is below ``tol``.

    Clipped (the SybilSCAR iteration), or with several prior columns, each iteration is one Jacobi step
    ``p̂ ← clip(q̂ + 2·W·p̂)``. Unclipped with one column (what the reputation stage runs), the fixed
    point is the linear solve ``(I − 2W)·p̂ = q̂``, reached by Chebyshev semi-iteration on the Jacobi
    splitting (:func:`_chebyshev`): with ``ρ`` the largest row sum of ``|2W|`` (< 1), the error shrinks
    by about ``ρ / (1 + √(1 − ρ²))`` per mat-vec instead of ``ρ`` — at ρ = 0.9, 0.63 instead of 0.9,
    i.e. ~4x fewer mat-vecs for the same tolerance. That rate needs a real spectrum of ``2W`` (W
    symmetric, or a row normalisation ``D⁻¹S`` of a symmetric S, as :func:`normalise_edges` builds);
    should the solve not converge within twice its expected number of mat-vecs, it restarts with plain
    Jacobi steps (which converge for any ``ρ < 1``).

    The stopping rule is the same for both: the returned ``p̂`` is the Jacobi update ``q̂ + 2·W·p`` of
    an iterate ``p`` that it differs from by less than ``tol`` everywhere (so it is within
    ``tol · ρ / (1 − ρ)`` of the exact fixed point, whichever method reached it).

    Parameters
    ----------
    W
        (n, n) sparse weights, symmetric or row-normalised symmetric.
    prior_hat
        (n,) or (n, m) centred priors q̂ (m independent columns propagate at once; with ``clip=None``
        the map is linear, so columns add up to the propagation of their sum).
    max_iter
        Mat-vecs allowed before :class:`ConvergenceError`.
    tol
        Convergence threshold on the largest absolute change of a Jacobi step.
    clip
        Bound of |p̂| (0.5 in SybilSCAR); None for the unclipped linear map.

    Returns
    -------
    (p_hat, iterations)
        ``iterations`` counts the mat-vecs.

    Raises
    ------
    ConvergenceError
        When the change is still above ``tol`` after ``max_iter`` mat-vecs.
    """
    W = sp.csr_matrix(W)
    q = np.asarray(prior_hat, dtype=np.float64)
    if clip is None and q.ndim == 1 and q.size and W.nnz:
        solved = _chebyshev(W, np.ascontiguousarray(q), max_iter, tol)
        if solved is not None:
            return solved
    two_w = 2.0 * W
    p = q.copy()
    if clip is not None:
        p = np.clip(p, -clip, clip)
    delta = np.inf
    for it in range(1, max_iter + 1):
        new = q + two_w @ p
        if clip is not None:
            np.clip(new, -clip, clip, out=new)
        delta = float(np.max(np.abs(new - p))) if new.size else 0.0
        p = new
        if delta < tol:
            return p, it
    raise ConvergenceError(max_iter, delta, tol)


def _unsigned(a: np.ndarray) -> np.ndarray:
    """A CSR index array (non-negative by construction) viewed as unsigned, for the compiled kernels."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype.itemsize == 4 else np.uint64)


def _chebyshev(W: sp.csr_matrix, q: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, int] | None:
    """Unclipped solve of ``p = q + 2W·p`` by Chebyshev semi-iteration (see :func:`linearized_bp`).

    With ``ρ`` the largest absolute row sum of ``2W``: ``x₁ = q + 2W·x₀``, then
    ``x_{k+1} = x_{k−1} + ω_{k+1}·(q + 2W·x_k − x_{k−1})`` with ``ω₂ = 1 / (1 − ρ²/2)`` and
    ``ω_{k+1} = 1 / (1 − ρ²·ω_k / 4)`` (Varga, *Matrix Iterative Analysis*, §5.1). The whole loop is
    compiled (:func:`reputation.scoring._kernels.chebyshev_solve`), each iteration one pass over the
    matrix that also does the vector update (:func:`reputation.scoring._kernels.chebyshev_sweep`; ``ρ``
    comes out of the first one): measured against a scipy CSR mat-vec plus a separate compiled update,
    it saves the per-call overhead and allocation of the product (~40 calls of each per solve) and runs
    the row sums faster (unsigned indices, two accumulators). ``2W`` is never formed: the kernels scale
    by 2 (exact in floating point). Once the vector outgrows ``PREFETCH_MIN_BYTES`` the sweeps prefetch
    their gathers ``PREFETCH_AHEAD`` entries ahead (see :func:`reputation.scoring._kernels.chebyshev_sweep`).

    Returns None when ``ρ ≥ 1`` (the Chebyshev rate bound does not hold; the caller runs Jacobi steps).

    Raises
    ------
    ConvergenceError
        When the change is still above ``tol`` after ``max_iter`` mat-vecs (or is not finite).
    """
    data = np.ascontiguousarray(W.data, dtype=np.float64)
    ahead = PREFETCH_AHEAD if q.nbytes > PREFETCH_MIN_BYTES else 0
    y, it, delta, _, status = _k.chebyshev_solve(_unsigned(W.indptr), _unsigned(W.indices), data, 2.0, q,
                                                 max_iter, tol, ahead)
    if status == _k.NOT_CONTRACTING:
        return None
    if status != _k.CONVERGED:
        raise ConvergenceError(it, delta, tol)
    return y, it


#: One query per edge kind: (input table, SQL returning u, v, s over ``acc_index`` indices).
EDGE_QUERIES: dict[str, tuple[str, str]] = {
    "reciprocated": ("interactions", f"""
        SELECT least(a.idx, b.idx) AS u, greatest(a.idx, b.idx) AS v,
               {EDGE_STRENGTH['reciprocated']} * least(least(i.messages, i.replies), {FULL_RECIPROCITY})
                   / {FULL_RECIPROCITY}.0 AS s
        FROM interactions i
        JOIN acc_index a ON a.platform = i.platform AND a.account = i.sender
        JOIN acc_index b ON b.platform = i.platform AND b.account = i.recipient
        WHERE i.kind = 'direct' AND i.reciprocated AND i.sender < i.recipient
    """),
    "campaign": ("campaigns", f"""
        WITH members AS (
            SELECT DISTINCT c.campaign_id, a.idx
            FROM campaigns c JOIN acc_index a ON a.platform = c.platform AND a.account = c.account
        ),
        sizes AS (SELECT campaign_id, count(*) AS n FROM members GROUP BY campaign_id)
        SELECT DISTINCT x.idx AS u, y.idx AS v, {EDGE_STRENGTH['campaign']} AS s
        FROM members x
        JOIN members y ON x.campaign_id = y.campaign_id AND x.idx < y.idx
        JOIN sizes z ON z.campaign_id = x.campaign_id
        WHERE z.n <= $max_accounts
    """),
    # Most templates have a single account: the hash pre-filter drops them before the (string) join and
    # de-duplication (a hash collision only lets an extra template through, which then adds no pair).
    "template": ("templates", f"""
        WITH shared AS (
            SELECT hash(template_id) AS h FROM templates GROUP BY 1 HAVING count(*) >= 2
        ),
        members AS (
            SELECT DISTINCT t.template_id, a.idx
            FROM templates t SEMI JOIN shared s ON s.h = hash(t.template_id)
            JOIN acc_index a ON a.platform = t.platform AND a.account = t.account
        ),
        sizes AS (SELECT template_id, count(*) AS n FROM members GROUP BY template_id)
        SELECT x.idx AS u, y.idx AS v, max({EDGE_STRENGTH['template']} / (z.n - 1)) AS s
        FROM members x
        JOIN members y ON x.template_id = y.template_id AND x.idx < y.idx
        JOIN sizes z ON z.template_id = x.template_id
        WHERE z.n <= $max_accounts
        GROUP BY x.idx, y.idx
    """),
}


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True when a table or view ``name`` exists in the connection's catalog."""
    q = ("SELECT count(*) FROM (SELECT table_name AS n FROM duckdb_tables() "
         "UNION ALL SELECT view_name FROM duckdb_views()) WHERE n = ?")
    return bool(con.execute(q, [name]).fetchall()[0][0])


def edge_list(con: duckdb.DuckDBPyConnection, max_template_accounts: int = MAX_TEMPLATE_ACCOUNTS,
              max_campaign_accounts: int = MAX_CAMPAIGN_ACCOUNTS) -> dict[str, tuple[np.ndarray, ...]]:
    """Raw undirected edges (u, v, strength) of each kind over the temp table ``acc_index``.

    Reads ``interactions``, ``campaigns`` and ``templates``; an absent table contributes no edges.
    """
    caps = {"campaign": max_campaign_accounts, "template": max_template_accounts}
    out: dict[str, tuple[np.ndarray, ...]] = {}
    for kind, (table, q) in EDGE_QUERIES.items():
        if not table_exists(con, table):
            out[kind] = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
            continue
        params = {"max_accounts": caps[kind]} if kind in caps else None
        # ordered, so that the matrix sums its terms in the same order on every run (a join's row order
        # depends on DuckDB's threads)
        cols = con.execute(f"SELECT u, v, s FROM ({q}) ORDER BY u, v, s", params).fetchnumpy()
        out[kind] = (np.asarray(cols["u"], np.int64), np.asarray(cols["v"], np.int64),
                     np.asarray(cols["s"], np.float64))
    return out


def build_edges(con: duckdb.DuckDBPyConnection, n: int, rho: float = DEFAULT_RHO,
                max_template_accounts: int = MAX_TEMPLATE_ACCOUNTS,
                max_campaign_accounts: int = MAX_CAMPAIGN_ACCOUNTS,
                extra: dict[str, tuple[np.ndarray, ...]] | None = None,
                mode: str = "symmetric") -> tuple[sp.csr_matrix, dict[str, int]]:
    """The propagation graph W over the accounts of the temp table ``acc_index``(idx, platform, account).

    ``extra`` adds edges of further kinds (kind → (u, v, strength)), e.g. identity edges; ``mode`` is the
    normalisation (see :func:`normalise_edges`).

    Returns
    -------
    (W, counts)
        The normalised weight matrix and the number of edges of each kind.
    """
    edges = edge_list(con, max_template_accounts, max_campaign_accounts)
    edges.update(extra or {})
    src = np.concatenate([e[0] for e in edges.values()])
    dst = np.concatenate([e[1] for e in edges.values()])
    s = np.concatenate([e[2] for e in edges.values()])
    counts = {k: len(e[0]) for k, e in edges.items()}
    return normalise_edges(src, dst, s, n, rho=rho, mode=mode), counts
