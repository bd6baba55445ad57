"""The reputation stage: direct flags, carry-over, behavioural prior and propagation → a calibrated score.

The score is a sum of log-odds, one term per kind of evidence, so that every reason says how much it
contributed. Every step is vectorised: the per-account arithmetic is numpy / scipy.sparse over arrays
pulled from DuckDB; the text and JSON assembly is SQL.

1. **Base rate** ``c_base``: the estimated share of spam accounts in the population (mean calibrated
   behavioural probability, step 3) — the log-odds before any evidence.
2. **Flags as likelihood ratios.** Direct evidence ``d`` per account (:mod:`reputation.scoring.flags`):
   decayed, confidence-weighted flags, ``spam − clean`` in −1..1, read as odds ``(1 + d) : (1 − d)``,
   i.e. ``logit(0.5 + 0.5·d)`` log-odds bounded by ±logit(0.99) (:func:`flag_logodds`), so that a flag of
   confidence c counts as odds c : 1−c and strong contrary evidence can still outweigh a noisy flag.
   An analyst override carries to the account's identity mates as a flag of full strength would
   (``±0.999``: a confirmed spammer's other accounts, a false positive's clean name), and a spam override
   to its campaign mates too (clearing one lockstep account says nothing of the others); it is not a
   label the behavioural prior learns from. The same reading applies to carried flags:

   - ``identity_carry``: noisy-or over the account's identity mates (every platform) of ``w · d_mate``,
     with ``w`` the pair's link probability (``links.probability``) or else the product of the two
     accounts' identity memberships; spam and clean parts combine separately (:func:`noisy_or_carry`).
     A mate's spam evidence carries with the weight its link has beyond names
     (``links.carry_probability``, ``identities.carry_membership``): a namesake or an impersonator
     shares a handle, and must not be smeared by it; clean evidence carries with the whole link.
   - ``campaign_carry``: the same over campaign mates with weight ``CAMPAIGN_CARRY`` < 1 (one operator,
     not necessarily one person).

   These weights are the stated reading of a flag, not learned: an identity's accounts are rarely
   flagged on two platforms, so the data cannot teach them.
3. **Behavioural prior, calibrated (positive-unlabelled).** The prior (:mod:`reputation.scoring.prior`)
   is a logistic model predicted out of fold by identity. Its log-odds are Platt-scaled against the
   flags (``g = P(flagged spam | prior)``, unflagged accounts count as "not flagged"), then corrected
   for the unlabelled spammers following Elkan & Noto (KDD 2008): ``P(spam | x) = g / c`` with
   ``c = P(flagged | spam)`` estimated as the mean ``g`` of the spam-flagged accounts; a smooth cap keeps
   it below 1 and strictly increasing (:func:`pu_probability`), and it is bounded to
   [MIN_BEHAVIOUR_P, MAX_BEHAVIOUR_P]: on the spam side 9 : 1 odds, a tenth of one flag's (the
   correction saturates there, where spammers and extreme honest senders look alike), on the clean side
   99.9%. An account that never sent anything has no behaviour to judge: its behavioural term is 0
   (silent accounts are never flagged, which the prior would otherwise misread as honesty).
4. **Graph propagation** (:mod:`reputation.scoring.propagation`): each account's local belief (steps
   1–3) is centred on the base rate, ``q̂ = expit(local − base) − 0.5`` (no evidence ⇒ 0, as for an
   unlabelled node in SybilSCAR), and propagated with ``p̂ ← q̂ + 2·W·p̂`` over reciprocated
   conversations, campaign and template co-membership and identity edges — never one-way edges, so a
   recipient is never tainted for having received spam. W is row-normalised (rows of 2W sum to
   ρ = 0.9): an account's neighbours push their weighted average belief. Two graphs are propagated apart —
   co-behaviour (campaign, template, identity) and conversation (reciprocated) — so that many honest
   conversations cannot average away a compromised account's co-behaviour. The push ``p̂ − q̂`` minus
   the account's own echo, rescaled by (1 − ρ)/ρ so that a neighbourhood of uniform belief q pushes q,
   is read as flag evidence of strength 2·push: fully when spammy (``GRAPH_WEIGHT``), weakly when clean
   (``GRAPH_CLEAN_WEIGHT``), because spammers talk to honest people too.
5. **Vouching** (directed, clean only): a direct message is evidence about its *recipient* that a
   spammer cannot forge — it cannot make honest people write to it, bar a rare reply — so messages
   received from credible clean accounts vouch for an account (as in TrustRank / the trust half of
   BadRank; never the reverse: receiving spam taints no one). A sender's credibility
   (:func:`voucher_credibility`) is its own clean belief (step 4's ``q̂``) capped by its *trust*: the
   strongest chain of messages reaching it from a clean-flagged account, discounted ``TRUST_HOP_DECAY``
   per hop, every link of which looks clean — so a ring of fresh accounts writing to each other vouches
   for nobody (no trust enters it but honest replies). ``vouch = −noisy-or over senders of
   VOUCH_WEIGHT · min(messages, VOUCH_FULL_MESSAGES)/VOUCH_FULL_MESSAGES · credibility``, read as a
   carried clean flag (:func:`vouch_logodds`). It says the account is real and known, which answers the
   behavioural prior (does it act like a fake?) but not co-behaviour: it is discounted by the
   co-behaviour spam evidence (identity / campaign spam carry, co-behaviour push: a compromised account
   is real and known too), is void for a campaign member (lockstep sending with other accounts, flagged
   or not), and cancels at most the positive behavioural term.
6. **Score, confidence, verdict.** ``score = expit(total log-odds)``; ``confidence = 1 − Π(1 − s_k)``
   over the strengths ``s_k`` of the pieces of evidence (own flag |d|, carries, graph push, vouch, and the
   behavioural prior in proportion to how much the account did); ``unknown`` when confidence is below
   ``verdict.min_confidence``, else spam / suspicious / clean by the score thresholds. Overrides set score
   1 or 0, confidence 1, and the override's verdict, and are listed first in the reasons.

Reasons: a JSON list of ``{kind, source_platform, contribution}`` (contribution in log-odds of the score,
largest first; carry-over is split by the platform the flags came from), never another platform's account
id; ``reason_text`` is a short sentence. The learned and fixed parameters are in ``reputation_model``,
the prior's weights in ``prior_model``, every account's terms in ``account_evidence``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from scipy.special import expit, logit
from scipy.stats import mannwhitneyu

from ..context import StageContext
from ..schema import SCHEMA_VERSION
from ..store import comment_table
from .flags import MAX_FLAG_WEIGHT, build_flag_evidence
from .prior import PRIOR_FEATURES, LogisticModel, fit_logistic, fit_prior, load_feature_matrix, write_prior_model
from .propagation import DEFAULT_RHO, edge_list, linearized_bp, normalise_edges, table_exists

log = logging.getLogger("reputation")

#: How surely the flagged accounts must rank above the rest on the behavioural prior for it to count
#: (one-sided Mann-Whitney p-value): random flags pass 1 time in 20.
MAX_SEPARATION_P = 0.05
#: Folds for the out-of-fold prior (by identity) and the held-out calibration (by account).
FOLDS = 5
#: Weight of a campaign mate's flag relative to an identity mate's (same operator, not same person).
CAMPAIGN_CARRY = 0.7
#: Own-flag log-odds bound (|logit(0.99)|).
MAX_FLAG_LOGODDS = float(logit(0.99))
#: Weight of one unflagged account as a negative in the behavioural prior.
UNLABELLED_WEIGHT = 0.05
#: Messages sent at which the behavioural prior reaches its full strength in the confidence.
BEHAVIOUR_FULL_STRENGTH_MESSAGES = 10.0
#: Strength (0..1) of the behavioural prior in the confidence when it has full data.
BEHAVIOUR_MAX_STRENGTH = 0.6
#: Contributions smaller than this (log-odds) are left out of the reasons.
MIN_REASON_CONTRIBUTION = 0.05
#: Names of the indirect-evidence columns the calibrator weighs, in order.
#: Strength of an identity edge in the propagation graph, per unit of link probability.
IDENTITY_STRENGTH = 2.0
#: Weight of the propagated neighbour belief (read as flag evidence of strength 2·push) when it is spammy.
#: Tuned, not learned: 2 (a neighbourhood of several accounts counts as two readings) was chosen on
#: generated worlds seed 1 and a 1M-message world (1 and 3 compared) and checked on seeds 2 and 3.
GRAPH_WEIGHT = 2.0
#: Weight of a clean neighbour belief: honest contacts are weak evidence (spammers write to honest people).
GRAPH_CLEAN_WEIGHT = 0.25
#: Weight of one credible sender's vouch, read like a carried clean flag (an identity mate counts 1, a
#: campaign mate 0.7): a message is a lighter tie than either.
VOUCH_WEIGHT = 0.5
#: Direct messages from one sender at which its vouch has full weight: one reply ("who is this?") is a
#: third of a vouch, as a single reply is a third of a reciprocated edge in propagation.
VOUCH_FULL_MESSAGES = 3
#: Discount per message hop of the trust that makes a voucher credible (trust fades along a chain).
TRUST_HOP_DECAY = 0.9
#: Hops of the trust chain followed at most (it stops earlier when nothing changes).
TRUST_MAX_HOPS = 50
#: Upper bound of the calibrated behavioural probability: behaviour alone claims at most 9 : 1 odds of spam,
#: a tenth of the odds of one flag (MAX_FLAG_LOGODDS = logit(0.99)), and still more than the default spam
#: threshold (0.8), so an account that sends like a spammer and has no other evidence is still called spam.
#: The PU correction saturates (every account at least as flag-like as the flagged spammers gets g/c ≥ 1,
#: i.e. p ≈ 1), so the bound is where the flagged spammers' look-alikes sit, spammers and extreme but honest
#: senders (a newsletter, a never-answered broadcaster) alike, and other evidence has to order them. At 0.99
#: (one flag's worth) real CollegeMsg users who write to many people and are never answered scored 0.99 on
#: behaviour alone and outranked spammers with milder behaviour and spam neighbours: 83–98% of the engine's
#: misordered pairs at 200–1600 attack edges (``ranking_errors`` of ``reputation evaluate``). At 0.9 the
#: attack-edge ROC-AUC rose in 10 of the 16 worlds and fell in none (mean 0.99978 → 0.99991, lowest 0.99918
#: → 0.99953), every verdict-based metric of the six quality worlds was unchanged, and at 10M spam recall went
#: 0.98216 → 0.98208 (3 of 35,376 accounts) and compromised recall 0.9096 → 0.9082 (1 of 697). 0.8 and 0.85
#: gained more on attack edges but cost spam precision and recall on generated worlds (the bound then sits
#: at or just above the spam threshold).
MAX_BEHAVIOUR_P = 0.9
#: Lower bound: the clean side is estimated from the many unflagged accounts and does not saturate; behaviour
#: alone never claims more than 99.9% honesty.
MIN_BEHAVIOUR_P = 0.001
#: Edge kinds of the two propagation graphs.
GRAPH_FAMILIES = {"cobehaviour": ("campaign", "template", "identity"), "conversation": ("reciprocated",)}
#: Share of spam accounts assumed when the flags teach nothing (no spam flags, or no features).
UNLEARNED_SPAM_SHARE = 0.05
#: Column of PRIOR_FEATURES that marks accounts that never sent a message.
SILENT_COLUMN = [name for name, _, _ in PRIOR_FEATURES].index("silent")
#: Sharpness of the soft cap min(g/c, 1) of the PU correction.
SOFT_CAP_POWER = 8.0

#: The parameters of ``INDEX_SQL``.
INDEX_PARAMS = {"folds": FOLDS, "override_w": MAX_FLAG_WEIGHT}
INDEX_SQL = """
CREATE OR REPLACE TEMP TABLE acc_index AS
SELECT (row_number() OVER (ORDER BY a.platform, a.account) - 1)::BIGINT AS idx,
       a.platform, a.account,
       coalesce(fe.evidence, 0.0) AS evidence,
       -- what carries to identity mates: an analyst's decision is the strongest direct evidence there
       -- is (but not a label the behavioural prior learns from: an account confirmed as spam on other
       -- evidence may send like anyone); to campaign mates only a spam decision does (clearing one
       -- lockstep account, a research account say, says nothing of the others)
       CASE fe.override WHEN 'spam' THEN $override_w WHEN 'clean' THEN -$override_w
                        ELSE coalesce(fe.evidence, 0.0) END AS identity_evidence,
       CASE fe.override WHEN 'spam' THEN $override_w ELSE coalesce(fe.evidence, 0.0) END AS campaign_evidence,
       fe.override,
       {identity} AS identity_id,
       {membership} AS membership,
       {carry_membership} AS carry_membership,
       hash('prior:' || {identity}) % $folds AS fold_prior
FROM accounts a
LEFT JOIN flag_evidence fe ON fe.platform = a.platform AND fe.account = a.account
{identity_join}
"""


def create_account_index(con: duckdb.DuckDBPyConnection) -> bool:
    """Create ``acc_index`` (one row per account: its dense index, flag evidence, identity and memberships)
    from ``accounts``, ``flag_evidence`` and, when there is one, ``identities``; returns whether there is."""
    has_identities = table_exists(con, "identities")
    if has_identities:
        parts = {"identity": "coalesce(i.identity_id, a.platform || ':' || a.account)",
                 "membership": "coalesce(i.membership, 1.0)", "carry_membership": "coalesce(i.carry_membership, 1.0)",
                 "identity_join": "LEFT JOIN identities i ON i.platform = a.platform AND i.account = a.account"}
    else:
        parts = {"identity": "a.platform || ':' || a.account", "membership": "1.0", "carry_membership": "1.0",
                 "identity_join": ""}
    con.execute(INDEX_SQL.format(**parts), INDEX_PARAMS)
    return has_identities


IDENTITY_PAIRS_SQL = """
WITH pair_links AS (
    SELECT platform_a AS pa, account_a AS aa, platform_b AS pb, account_b AS ab, max(probability) AS p,
           max(carry_probability) AS p_spam
    FROM links GROUP BY ALL
)
SELECT x.idx AS i, y.idx AS j,
       greatest(0.0, least(1.0, coalesce(l1.p, l2.p, x.membership * y.membership))) AS w,
       -- a spam flag carries over what links two accounts beyond their names (see links.carry_probability)
       greatest(0.0, least(1.0, coalesce(l1.p_spam, l2.p_spam, x.carry_membership * y.carry_membership))) AS w_spam
FROM acc_index x
JOIN acc_index y ON x.identity_id = y.identity_id AND x.idx <> y.idx
LEFT JOIN pair_links l1 ON l1.pa = x.platform AND l1.aa = x.account AND l1.pb = y.platform AND l1.ab = y.account
LEFT JOIN pair_links l2 ON l2.pa = y.platform AND l2.aa = y.account AND l2.pb = x.platform AND l2.ab = x.account
"""

IDENTITY_PAIRS_NO_LINKS_SQL = """
SELECT x.idx AS i, y.idx AS j, x.membership * y.membership AS w, x.carry_membership * y.carry_membership AS w_spam
FROM acc_index x JOIN acc_index y ON x.identity_id = y.identity_id AND x.idx <> y.idx
"""

VOUCH_PAIRS_SQL = """
SELECT b.idx AS i, a.idx AS j, least(i.messages, $full)::DOUBLE / $full AS w
FROM interactions i
JOIN acc_index a ON a.platform = i.platform AND a.account = i.sender
JOIN acc_index b ON b.platform = i.platform AND b.account = i.recipient
WHERE i.kind = 'direct' AND a.idx <> b.idx
"""

CAMPAIGN_PAIRS_SQL = """
WITH members AS (
    SELECT DISTINCT c.campaign_id, a.idx
    FROM campaigns c JOIN acc_index a ON a.platform = c.platform AND a.account = c.account
)
SELECT DISTINCT x.idx AS i, y.idx AS j, $w AS w
FROM members x JOIN members y ON x.campaign_id = y.campaign_id AND x.idx <> y.idx
"""


def _pairs(con: duckdb.DuckDBPyConnection, q: str, params: dict | None = None,
           extra: tuple[str, ...] = ()) -> tuple[np.ndarray, ...]:
    """The (i, j, w, *extra) arrays of a pair query, in (i, j, w) order.

    A join's output order depends on DuckDB's threads, and the carries sum floating-point terms in row
    order (``np.bincount``), so unordered pairs made re-runs differ in the last bit of a score.
    """
    names = ", ".join(("i", "j", "w", *extra))
    cols = con.execute(f"SELECT {names} FROM ({q}) ORDER BY i, j, w", params).fetchnumpy()
    return (np.asarray(cols["i"], np.int64), np.asarray(cols["j"], np.int64), np.asarray(cols["w"], np.float64),
            *(np.asarray(cols[c], np.float64) for c in extra))


def noisy_or_carry(d: np.ndarray, pairs: tuple[np.ndarray, ...], n: int) -> np.ndarray:
    """Carry-over of evidence ``d`` along directed pairs (i ← j, weight w): noisy-or of spam minus clean.

    ``carry_i = (1 − Π_j (1 − w_ij·max(d_j, 0))) − (1 − Π_j (1 − w_ij·max(−d_j, 0)))``.

    Example
    -------
    >>> pairs = (np.array([0, 0]), np.array([1, 2]), np.array([0.5, 0.5]))
    >>> float(noisy_or_carry(np.array([0.0, 1.0, 1.0]), pairs, 3)[0])
    0.75
    """
    i, j, w = pairs
    if len(i) == 0:
        return np.zeros(n)
    x = np.clip(w * d[j], -0.999, 0.999)
    log_not_spam = np.bincount(i, weights=np.log1p(-np.maximum(x, 0.0)), minlength=n)
    log_not_clean = np.bincount(i, weights=np.log1p(-np.maximum(-x, 0.0)), minlength=n)
    return (1.0 - np.exp(log_not_spam)) - (1.0 - np.exp(log_not_clean))


def _platform_shares(d: np.ndarray, pairs: tuple[np.ndarray, ...], plat: np.ndarray, n_plat: int,
                     n: int) -> np.ndarray:
    """(n, n_plat) share of each source platform in an account's carry-over (rows sum to 1 or 0).

    A platform's share is proportional to the summed ``|w·d|`` of the mates on it.
    """
    i, j, w = pairs
    if len(i) == 0:
        return np.zeros((n, n_plat))
    key = i * n_plat + plat[j]
    mag = np.bincount(key, weights=np.abs(w * d[j]), minlength=n * n_plat).reshape(n, n_plat)
    norm = mag.sum(axis=1, keepdims=True)
    return np.divide(mag, norm, out=np.zeros_like(mag), where=norm > 0)


def flag_logodds(evidence: np.ndarray) -> np.ndarray:
    """Log-odds of flag evidence e in −1..1 read as odds (1 + e) : (1 − e), bounded by ±logit(0.99).

    Example
    -------
    >>> [round(float(x), 3) for x in flag_logodds(np.array([0.0, 0.8, -1.0]))]
    [0.0, 2.197, -4.595]
    """
    e = np.clip(np.asarray(evidence, dtype=np.float64), -0.98, 0.98)
    return np.clip(np.log1p(e) - np.log1p(-e), -MAX_FLAG_LOGODDS, MAX_FLAG_LOGODDS)


def pu_probability(g: np.ndarray, c: float) -> np.ndarray:
    """Elkan–Noto correction P(spam | x) = g(x) / c with a smooth cap below 1.

    ``r / (1 + r^m)^(1/m)`` with ``r = g / c``: equals ``g / c`` when it is small, approaches 1 when
    ``g ≥ c``, and stays strictly increasing (so the ranking of ``g`` is kept).
    """
    r = np.asarray(g, dtype=np.float64) / c
    p = r / np.power(1.0 + np.power(r, SOFT_CAP_POWER), 1.0 / SOFT_CAP_POWER)
    return np.clip(p, 1e-9, 1 - 1e-9)


def voucher_credibility(clean: np.ndarray, seed: np.ndarray, pairs: tuple[np.ndarray, ...], n: int) -> np.ndarray:
    """How far (0..1) each account can vouch for the accounts it writes to: clean *and* reached by trust.

    ``clean`` is the account's own clean belief in 0..1 (behaviour included: it can be faked), ``seed``
    its flag-grounded clean evidence (own and carried clean flags: an analyst's word, which it cannot).
    Credibility is ``cred_i = min(clean_i, t_i)`` with the trust ``t_i = max(seed_i, max_j TRUST_HOP_DECAY ·
    w_ij · cred_j)`` over the senders j that wrote to i (``pairs`` = (recipient i, sender j, w in 0..1)):
    the strongest chain of messages from a clean-flagged account, every link of which looks clean itself
    (a widest path, so a ring of accounts cannot amplify trust by writing to each other: none of them
    exceeds the trust that entered the ring, and only honest accounts' messages carry it in).

    Example
    -------
    >>> pairs = (np.array([1, 2, 3]), np.array([0, 1, 2]), np.array([1.0, 1.0, 1.0]))  # 0 → 1 → 2 → 3
    >>> [round(float(x), 3) for x in voucher_credibility(np.array([1.0, 1.0, 0.0, 1.0]),
    ...                                                  np.array([1.0, 0.0, 0.0, 0.0]), pairs, 4)]
    [1.0, 0.9, 0.0, 0.0]
    """
    i, j, w = (np.asarray(x) for x in pairs)
    clean = np.clip(np.asarray(clean, np.float64), 0.0, 1.0)
    seed = np.clip(np.asarray(seed, np.float64), 0.0, 1.0)
    cred = np.minimum(clean, seed)
    if len(i) == 0:
        return cred
    order = np.argsort(i, kind="stable")
    i, j, w = i[order], j[order], TRUST_HOP_DECAY * np.clip(w[order], 0.0, 1.0)
    starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
    heads = i[starts]
    for _ in range(TRUST_MAX_HOPS):
        trust = seed.copy()
        trust[heads] = np.maximum(seed[heads], np.maximum.reduceat(w * cred[j], starts))
        new = np.minimum(clean, trust)
        if np.max(np.abs(new - cred)) < 1e-9:
            return new
        cred = new
    return cred


def vouch_logodds(vouch: np.ndarray, c_behaviour: np.ndarray, cobehaviour_spam: np.ndarray) -> np.ndarray:
    """Log-odds (≤ 0) of the vouch: ``flag_logodds(vouch) · (1 − cobehaviour_spam)``, no larger than the
    behavioural evidence it answers.

    Honest people writing to an account say it is a real, known account: evidence against the fake
    account the behavioural prior suspects (``c_behaviour > 0``), not against an account seen sending in
    concert with spam (a compromised account is real and known too). So the vouch is discounted by the
    strength ``cobehaviour_spam`` (0..1) of the co-behaviour spam evidence, and it can cancel at most the
    positive behavioural term: never a flag, a carry-over or a graph push.

    Example
    -------
    >>> [round(float(x), 3) for x in vouch_logodds(np.array([-0.8, -0.8, -0.8]), np.array([5.0, 1.0, 5.0]),
    ...                                              np.array([0.0, 0.0, 0.5]))]
    [-2.197, -1.0, -1.099]
    """
    c = flag_logodds(np.minimum(np.asarray(vouch, np.float64), 0.0)) * (1.0 - np.clip(cobehaviour_spam, 0.0, 1.0))
    return -np.minimum(-c, np.maximum(np.asarray(c_behaviour, np.float64), 0.0))


def neighbour_push(W: sp.spmatrix, q: np.ndarray) -> tuple[np.ndarray, int]:
    """What an account's neighbours push into it: ``p̂ − q̂`` of the unclipped propagation, minus the echo.

    The echo is the account's own belief returning over the same edge (u → v → u), which would otherwise
    count an account's own evidence twice: ``Σ_v (2w_uv)(2w_vu) · p̂_u``.
    """
    if W.nnz == 0:
        return np.zeros_like(q), 0
    p, it = linearized_bp(W, q, clip=None)
    two_w = 2.0 * sp.csr_matrix(W)
    echo = np.asarray(two_w.multiply(two_w.T).sum(axis=1)).ravel() * p
    return p - q - echo, it


def propagation_graphs(con: duckdb.DuckDBPyConnection, n: int, id_pairs: tuple[np.ndarray, ...]
                       ) -> tuple[dict[str, sp.csr_matrix], dict[str, int]]:
    """The stage's propagation matrices, one per family of ``GRAPH_FAMILIES``, over ``acc_index``.

    Each is row-normalised (rows of 2W sum to ``DEFAULT_RHO``). ``id_pairs`` are the directed identity
    pairs (i, j, w) of the carry-over; each undirected pair becomes an identity edge of strength
    ``IDENTITY_STRENGTH · w``. Returns the matrices and the number of edges of each kind. (Benchmarks
    rebuild the stage's graphs with this function.)
    """
    upper = id_pairs[0] < id_pairs[1]
    edges = edge_list(con)
    edges["identity"] = (id_pairs[0][upper], id_pairs[1][upper], IDENTITY_STRENGTH * id_pairs[2][upper])
    graphs = {}
    for name, family in GRAPH_FAMILIES.items():
        parts = [edges[k] for k in family]
        graphs[name] = normalise_edges(np.concatenate([e[0] for e in parts]), np.concatenate([e[1] for e in parts]),
                                       np.concatenate([e[2] for e in parts]), n, rho=DEFAULT_RHO, mode="row")
    return graphs, {k: len(e[0]) for k, e in edges.items()}


def build_reputation(con: duckdb.DuckDBPyConnection, ctx: StageContext) -> int:
    """Write ``flag_evidence``, ``prior_model``, ``reputation_model``, ``account_evidence`` and ``reputation``.

    Parameters
    ----------
    con
        Connection with the canonical tables and, when present, ``features``, ``interactions``,
        ``templates``, ``campaigns``, ``links`` and ``identities`` (each is optional: a missing one
        contributes no evidence).
    ctx
        Run context (settings: flag decay, verdict thresholds, validity).

    Returns
    -------
    int
        Rows written to ``reputation`` (one per account).
    """
    build_flag_evidence(con, ctx)
    if not con.execute("SELECT count(*) FROM flag_evidence WHERE spam_flags > 0").fetchall()[0][0]:
        log.warning("no live spam flag in the input: there is nothing to learn what spam looks like from, so "
                    "scores stay near the base rate and most verdicts are 'unknown'; add a flags source "
                    "(table = \"flags\") with moderation decisions")
    has_identities = create_account_index(con)
    idx = con.execute("SELECT evidence, identity_evidence, campaign_evidence, fold_prior, platform FROM acc_index "
                      "ORDER BY idx").fetchnumpy()
    n = len(idx["evidence"])
    d = np.asarray(idx["evidence"], np.float64)
    d_identity = np.asarray(idx["identity_evidence"], np.float64)  # flags, and overrides at full strength
    d_campaign = np.asarray(idx["campaign_evidence"], np.float64)  # flags, and spam overrides
    fold_prior = np.asarray(idx["fold_prior"], np.int64)
    platforms, plat = np.unique(np.asarray(idx["platform"], dtype=object).astype(str), return_inverse=True)
    n_plat = len(platforms)

    # Behavioural prior, out of fold by identity.
    has_features = table_exists(con, "features")
    X = load_feature_matrix(con, "acc_index") if has_features else np.zeros((n, len(PRIOR_FEATURES)))
    prior = fit_prior(X, d, fold_prior, unlabelled_weight=UNLABELLED_WEIGHT)
    write_prior_model(con, ctx.run_id, prior)
    behaviour = prior.oof_logit

    # Calibration of the prior (Platt on the out-of-fold logit, flagged spam vs the rest), PU-corrected.
    s_label = (d > 0).astype(np.float64)
    weights = np.where(d > 0, d, 1.0)
    learned = bool(s_label.any() and (s_label == 0).any() and np.ptp(behaviour) > 0)
    separation_p = np.nan
    if learned:
        # The PU correction g / c reads a calibration that does not tell flagged from unflagged accounts
        # apart (random flags, too few of them) as "everyone is spam, a few are flagged": every account
        # would sit at the cap. Behaviour counts only when the flagged rank above the rest beyond chance
        # (one-sided Mann-Whitney on the out-of-fold prior; a rank test, so a population that is mostly
        # spam, whose unflagged accounts look spammy too, still passes).
        separation_p = float(mannwhitneyu(behaviour[d > 0], behaviour[d <= 0], alternative="greater").pvalue)
        learned = separation_p < MAX_SEPARATION_P
    if learned:
        cal = fit_logistic(behaviour[:, None], s_label, weights, l2=1e-6, nonneg=True, standardise=False)
        g = cal.predict(behaviour[:, None])
        c = float(np.average(g[d > 0], weights=d[d > 0]))
    else:
        cal = LogisticModel(np.zeros(1), 0.0, np.zeros(1), np.ones(1))
        g, c = cal.predict(behaviour[:, None]), 1.0
    c = min(max(c, 1e-6), 1.0)
    p_behaviour = np.clip(pu_probability(g, c), MIN_BEHAVIOUR_P, MAX_BEHAVIOUR_P)
    # The prior before any evidence: the estimated share of spam accounts in the population.
    # Without spam flags (or without behaviour) nothing can be learned: an assumed share, no behaviour term.
    share = p_behaviour.mean() if (learned and n) else UNLEARNED_SPAM_SHARE
    base = float(logit(np.clip(share, 1e-6, 1 - 1e-6)))
    # A silent account has no behaviour to judge (and silent accounts are never flagged, which the
    # prior would otherwise misread as honesty): its behavioural evidence is neutral.
    silent = (X[:, SILENT_COLUMN] > 0.5) | (not learned)
    behaviour_logit = np.where(silent, base, logit(p_behaviour))
    c_behaviour = behaviour_logit - base

    # Carry-over from identity and campaign mates' flags (as likelihood ratios).
    if has_identities:
        id_sql = IDENTITY_PAIRS_SQL if table_exists(con, "links") else IDENTITY_PAIRS_NO_LINKS_SQL
        i, j, w, w_spam = _pairs(con, id_sql, extra=("w_spam",))
        id_pairs = (i, j, w)
        # a mate's spam flag carries over its spam weight, its clean evidence over the whole link: a name
        # alone (a namesake, an impersonator) must not smear an account, but may vouch for it
        carry_pairs = (i, j, np.where(d_identity[j] > 0, w_spam, w))
    else:
        id_pairs = carry_pairs = (np.zeros(0, np.int64),) * 2 + (np.zeros(0),)
    camp_pairs = (_pairs(con, CAMPAIGN_PAIRS_SQL, {"w": CAMPAIGN_CARRY}) if table_exists(con, "campaigns")
                  else (np.zeros(0, np.int64),) * 2 + (np.zeros(0),))
    ic = noisy_or_carry(d_identity, carry_pairs, n)
    cc = noisy_or_carry(d_campaign, camp_pairs, n)
    direct, c_identity, c_campaign = flag_logodds(d), flag_logodds(ic), flag_logodds(cc)
    local = behaviour_logit + direct + c_identity + c_campaign

    # Propagation of the local belief over reciprocated, co-behaviour and identity edges.
    graphs, edge_counts = propagation_graphs(con, n, id_pairs)
    seeds = expit(local - base) - 0.5
    pushes, iterations = [], {}
    # Two graphs: co-behaviour (campaign, template, identity: who acts like or is whom) and conversation
    # (reciprocated). Propagated apart, so that many honest conversations cannot average away the
    # co-behaviour of a compromised account, nor one shared template a lifetime of conversations.
    for family, W in graphs.items():
        push_f, iterations[family] = neighbour_push(W, seeds)
        # p̂ sums the geometric series Σ (2W)^k q̂: a neighbourhood of uniform belief q pushes
        # ρ/(1−ρ)·q. Rescaled, the push is the neighbours' (discounted) average belief in q̂'s units.
        pushes.append(push_f * (1.0 - DEFAULT_RHO) / DEFAULT_RHO)
    push = np.column_stack(pushes)
    # Spammy neighbours count fully; clean neighbours weakly: spammers talk to honest people too.
    c_graph = (flag_logodds(2.0 * push) * np.where(push > 0, GRAPH_WEIGHT, GRAPH_CLEAN_WEIGHT)).sum(axis=1)
    # Vouching: direct messages received from credible clean accounts (a spammer cannot make honest people
    # write to it, bar a rare reply). Never the reverse: receiving spam taints no one.
    vouch_pairs = (_pairs(con, VOUCH_PAIRS_SQL, {"full": VOUCH_FULL_MESSAGES}) if table_exists(con, "interactions")
                   else (np.zeros(0, np.int64),) * 2 + (np.zeros(0),))
    flag_clean = np.maximum(0.0, 1.0 - 2.0 * expit(direct + c_identity + c_campaign))
    cred = voucher_credibility(np.maximum(0.0, -2.0 * seeds), flag_clean, vouch_pairs, n)
    vouch = noisy_or_carry(-cred, (vouch_pairs[0], vouch_pairs[1], VOUCH_WEIGHT * vouch_pairs[2]), n)
    # Sending in lockstep with other accounts (a campaign member) is co-behaviour evidence in itself,
    # whether or not a mate is flagged: a vouch never answers it (a compromised account is real and known
    # too; at 10M messages vouching campaign members cost a sixth of the compromised accounts).
    in_campaign = np.zeros(n, dtype=bool)
    in_campaign[camp_pairs[0]] = True
    cobehaviour_spam = np.where(in_campaign, 1.0,
                                1.0 - ((1.0 - np.maximum(ic, 0.0)) * (1.0 - np.maximum(cc, 0.0))
                                       * (1.0 - np.minimum(1.0, 2.0 * np.maximum(push[:, 0], 0.0)))))
    c_vouch = vouch_logodds(vouch, c_behaviour, cobehaviour_spam)
    total = local + c_graph + c_vouch
    score = expit(total)

    sent = np.zeros(n)
    if has_features:
        sent = np.asarray(con.execute(
            "SELECT coalesce(f.messages_sent, 0)::DOUBLE AS m FROM acc_index a LEFT JOIN features f "
            "ON f.platform = a.platform AND f.account = a.account ORDER BY a.idx").fetchnumpy()["m"], np.float64)
    strengths = np.column_stack([
        np.abs(d), np.abs(ic), np.abs(cc), np.minimum(1.0, 2.0 * np.abs(push).max(axis=1)),
        np.abs(np.tanh(c_vouch / 2.0)),  # the evidence e whose flag_logodds is c_vouch
        BEHAVIOUR_MAX_STRENGTH * learned * np.minimum(1.0, sent / BEHAVIOUR_FULL_STRENGTH_MESSAGES),
    ])
    confidence = 1.0 - np.prod(1.0 - np.clip(strengths, 0.0, 1.0), axis=1)

    # Carry-over split by source platform, for reasons and flagged_on.
    id_by_plat = _platform_shares(d_identity, carry_pairs, plat, n_plat, n) * c_identity[:, None]
    camp_by_plat = _platform_shares(d_campaign, camp_pairs, plat, n_plat, n) * c_campaign[:, None]

    evidence_tbl = pa.table({
        "idx": np.arange(n, dtype=np.int64),
        "direct_evidence": d, "identity_carry": ic, "campaign_carry": cc, "behaviour": behaviour,
        "graph_push_cobehaviour": push[:, 0], "graph_push_conversation": push[:, 1],
        "c_base": np.full(n, base), "c_direct": direct, "c_identity": c_identity, "c_campaign": c_campaign,
        # c_graph is all graph evidence (so that logit = c_base + c_direct + c_identity + c_campaign +
        # c_behaviour + c_graph still holds); c_vouch, its directed part, is a reason of its own.
        "c_behaviour": c_behaviour, "c_graph": c_graph + c_vouch, "vouch": vouch, "c_vouch": c_vouch,
        "logit": total, "score": score, "confidence": confidence,
    })
    ii, pp = np.nonzero((np.abs(id_by_plat) > 0) | (np.abs(camp_by_plat) > 0))
    carry_tbl = pa.table({
        "idx": ii.astype(np.int64), "source_platform": platforms[pp].astype(str).tolist(),
        "identity": id_by_plat[ii, pp], "campaign": camp_by_plat[ii, pp],
    })
    con.register("_evidence_arrow", evidence_tbl)
    con.register("_carry_arrow", carry_tbl)
    try:
        _write_tables(con, ctx, has_features=table_exists(con, "features"))
    finally:
        con.unregister("_evidence_arrow")
        con.unregister("_carry_arrow")

    model_rows = [
        ("platt_intercept", float(cal.intercept), "Platt intercept: log-odds of being flagged spam at prior 0."),
        ("platt_slope", float(cal.coef[0]), "Platt slope on the out-of-fold prior log-odds (>= 0)."),
        ("prior_learned", float(learned), "1 when the behavioural prior could be learned from the flags."),
        ("prior_separation_p", separation_p, "One-sided Mann-Whitney p-value of the out-of-fold prior, flagged "
                                             f"spam above the rest; the prior counts only below {MAX_SEPARATION_P:g}."),
        ("label_frequency_c", c, "Elkan-Noto c = P(flagged | spam): mean Platt probability of spam-flagged accounts."),
        ("base_logodds", base, "Log-odds before any evidence: logit of the mean calibrated spam probability."),
        ("prior_cv_auc", prior.cv_auc, "ROC-AUC of the out-of-fold behavioural prior vs flag label (flagged only)."),
        ("folds", float(FOLDS), "Cross-validation folds (by identity)."),
        ("campaign_carry", CAMPAIGN_CARRY, "Weight of a campaign mate's flag."),
        ("identity_edge_strength", IDENTITY_STRENGTH, "Strength of an identity edge per unit link probability."),
        ("graph_weight", GRAPH_WEIGHT, "Weight of a spammy propagated neighbour belief, read as flag evidence."),
        ("graph_clean_weight", GRAPH_CLEAN_WEIGHT, "Weight of a clean propagated neighbour belief."),
        ("vouch_weight", VOUCH_WEIGHT, "Weight of one credible sender's vouch (as a carried clean flag)."),
        ("vouch_full_messages", float(VOUCH_FULL_MESSAGES), "Direct messages at which a vouch has full weight."),
        ("trust_hop_decay", TRUST_HOP_DECAY, "Discount per hop of the trust that makes a voucher credible."),
        ("vouched_accounts", float(np.count_nonzero(c_vouch < 0)), "Accounts whose score a vouch lowered."),
        ("as_of_pinned", 1.0 if ctx.as_of_pinned else 0.0,
         "1 when the config pinned as_of (a replay): flags and overrides dated after it were left out."),
        ("rho", DEFAULT_RHO, "Row-sum bound of 2W in propagation."),
        ("propagation_iterations", float(max(iterations.values())), "Most iterations a propagation needed."),
        *[(f"propagation_iterations_{f}", float(v), f"Iterations of the {f} propagation.")
          for f, v in iterations.items()],
        *[(f"edges_{k}", float(v), f"Propagation edges of kind {k}.") for k, v in edge_counts.items()],
    ]
    con.execute("CREATE OR REPLACE TABLE reputation_model (run_id VARCHAR, parameter VARCHAR, value DOUBLE, "
                "description VARCHAR)")
    con.executemany("INSERT INTO reputation_model VALUES (?, ?, ?, ?)",
                    [(ctx.run_id, p, None if v is None else float(v), doc) for p, v, doc in model_rows])
    comment_table(con, "reputation_model", "Parameters the reputation stage learned or used in this run.", {
        "run_id": "Run that wrote this row (see runs).", "parameter": "Parameter name.",
        "value": "Value (log-odds units for weights).", "description": "What it is."})
    con.execute("DROP TABLE IF EXISTS acc_index")
    return int(con.execute("SELECT count(*) FROM reputation").fetchall()[0][0])


ACCOUNT_EVIDENCE_SQL = """
CREATE OR REPLACE TABLE account_evidence AS
SELECT $run_id AS run_id, a.platform, a.account, a.identity_id, e.* EXCLUDE (idx)
FROM _evidence_arrow e JOIN acc_index a USING (idx)
ORDER BY a.platform, a.account
"""

CARRY_SOURCES_SQL = """
CREATE OR REPLACE TABLE evidence_sources AS
SELECT $run_id AS run_id, a.platform, a.account, c.source_platform,
       c.identity AS identity_contribution, c.campaign AS campaign_contribution
FROM _carry_arrow c JOIN acc_index a USING (idx)
ORDER BY a.platform, a.account, c.source_platform
"""

REPUTATION_SQL = """
CREATE OR REPLACE TABLE reputation AS
WITH parts AS (
    SELECT platform, account, 'direct_flag' AS kind, platform AS source_platform, c_direct AS contribution
    FROM account_evidence
    UNION ALL SELECT platform, account, 'identity_flag', source_platform, identity_contribution
    FROM evidence_sources
    UNION ALL SELECT platform, account, 'campaign_flag', source_platform, campaign_contribution
    FROM evidence_sources
    UNION ALL SELECT platform, account, 'behaviour', platform, c_behaviour FROM account_evidence
    UNION ALL SELECT platform, account, 'graph', platform, c_graph - c_vouch FROM account_evidence
    UNION ALL SELECT platform, account, 'vouch', platform, c_vouch FROM account_evidence
),
-- rank: the reasons' order. Lists are built unordered and sorted by rank (list_sort of structs sorts by
-- their first field), which costs far less than ordered aggregates (list(... ORDER BY ...)).
kept AS (
    SELECT *, row_number() OVER (PARTITION BY platform, account
                                 ORDER BY abs(contribution) DESC, kind, source_platform) AS rank
    FROM parts WHERE abs(contribution) >= $min_contrib
),
reasons AS (
    SELECT platform, account,
           list_transform(list_sort(list({'rank': rank, 'kind': kind, 'source_platform': source_platform,
                                          'contribution': round(contribution, 3)})),
                          lambda r: {'kind': r.kind, 'source_platform': r.source_platform,
                                     'contribution': r.contribution}) AS reasons,
           list_sort(list_distinct(list(source_platform)
               FILTER (WHERE kind IN ('direct_flag', 'identity_flag', 'campaign_flag')))) AS flagged_on,
           array_to_string(list_transform(list_sort(list({'rank': rank, 'text': CASE kind
                   WHEN 'direct_flag' THEN CASE WHEN contribution > 0 THEN 'flagged as spam on ' || source_platform
                                                ELSE 'marked clean on ' || source_platform END
                   WHEN 'identity_flag' THEN CASE WHEN contribution > 0
                                                  THEN 'same person as an account flagged as spam on '
                                                  ELSE 'same person as an account marked clean on ' END
                                             || source_platform
                   WHEN 'campaign_flag' THEN CASE WHEN contribution > 0
                                                  THEN 'sends in lockstep with accounts flagged as spam on '
                                                  ELSE 'sends in lockstep with accounts marked clean on ' END
                                             || source_platform
                   WHEN 'behaviour' THEN CASE WHEN contribution > 0 THEN 'behaves like flagged spammers'
                                              ELSE 'behaves like ordinary users' END
                   WHEN 'graph' THEN CASE WHEN contribution > 0 THEN 'close to spam accounts in the graph'
                                          ELSE 'close to clean accounts in the graph' END
                   WHEN 'vouch' THEN 'written to by accounts trusted as clean'
               END})), lambda r: r.text), '; ') AS text
    FROM kept GROUP BY platform, account
),
seen AS (
    SELECT a.platform, a.account, __FIRST_SEEN__ AS first_seen, __LAST_SEEN__ AS last_seen
    FROM accounts a __FEATURES_JOIN__
),
scored AS (
    SELECT e.platform, e.account, e.identity_id, e.score, e.confidence, fe.override, fe.override_reason,
           r.reasons, r.flagged_on, r.text
    FROM account_evidence e
    LEFT JOIN flag_evidence fe ON fe.platform = e.platform AND fe.account = e.account
    LEFT JOIN reasons r ON r.platform = e.platform AND r.account = e.account
)
SELECT $run_id AS run_id, s.platform, s.account,
       CASE s.override WHEN 'spam' THEN 1.0 WHEN 'clean' THEN 0.0 ELSE s.score END AS score,
       CASE WHEN s.override IS NOT NULL THEN s.override
            WHEN s.confidence < $min_confidence THEN 'unknown'
            WHEN s.score >= $spam THEN 'spam'
            WHEN s.score >= $suspicious THEN 'suspicious'
            ELSE 'clean' END AS verdict,
       CASE WHEN s.override IS NOT NULL THEN 1.0 ELSE s.confidence END AS confidence,
       s.identity_id,
       to_json(CASE WHEN s.override IS NOT NULL
                    THEN list_prepend({'kind': 'override', 'source_platform': s.platform,
                                       'contribution': NULL::DOUBLE}, coalesce(s.reasons, []))
                    ELSE coalesce(s.reasons, []) END) AS reasons,
       CASE WHEN s.override IS NOT NULL
            THEN 'analyst override: ' || s.override || coalesce(' (' || s.override_reason || ')', '')
                 || coalesce('; evidence: ' || s.text, '')
            ELSE coalesce(upper(s.text[1]) || s.text[2:], 'no evidence') END AS reason_text,
       coalesce(s.flagged_on, []::VARCHAR[]) AS flagged_on,
       v.first_seen, v.last_seen,
       $valid_until AS valid_until,
       $schema_version AS schema_version
FROM scored s LEFT JOIN seen v ON v.platform = s.platform AND v.account = s.account
ORDER BY s.platform, s.account
"""

ACCOUNT_EVIDENCE_COLUMNS = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform.", "account": "Account id.", "identity_id": "Identity of the account (identities).",
    "direct_evidence": "Own flags: spam - clean evidence, -1..1.",
    "identity_carry": "Noisy-or carry-over of identity mates' flag evidence (all platforms), -1..1.",
    "campaign_carry": "Noisy-or carry-over of campaign mates' flag evidence, -1..1.",
    "behaviour": "Out-of-fold behavioural prior, log-odds of the prior model.",
    "graph_push_cobehaviour": "Belief pushed in by co-behaviour neighbours (campaign, template, identity): "
                              "p_hat - q_hat - echo, hatted units -0.5..0.5.",
    "graph_push_conversation": "Belief pushed in by reciprocated-conversation partners, hatted units.",
    "c_base": "Log-odds before any evidence (population share of spam, estimated).",
    "c_direct": "Log-odds contributed by own flags.",
    "c_identity": "Log-odds contributed by identity carry-over.",
    "c_campaign": "Log-odds contributed by campaign carry-over.",
    "c_behaviour": "Log-odds contributed by the behavioural prior.",
    "c_graph": "Log-odds contributed by the graph: neighbours' propagated belief read as flag evidence, "
               "plus the vouch (c_vouch, listed apart in the reasons).",
    "vouch": "Noisy-or of the direct messages received from credible clean accounts (trusted through a chain "
             "of messages from a clean-flagged account), -1..0.",
    "c_vouch": "Log-odds contributed by the vouch (<= 0, included in c_graph): discounted by co-behaviour "
               "spam evidence, never more than the behavioural term.",
    "logit": "Total log-odds = c_base + c_direct + c_identity + c_campaign + c_behaviour + c_graph.",
    "score": "expit(logit), before overrides.",
    "confidence": "1 - prod(1 - strength) over the pieces of evidence, 0..1.",
}

REPUTATION_COLUMNS = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform.",
    "account": "Account id.",
    "score": "Calibrated probability that the account is a spammer, 0..1 (1/0 under an override).",
    "verdict": "spam / suspicious / clean by settings.verdict thresholds; unknown when confidence is too low.",
    "confidence": "How much evidence backs the score, 0..1 (1 under an override).",
    "identity_id": "Identity of the account (same person across platforms).",
    "reasons": "JSON list of {kind, source_platform, contribution (log-odds)}, largest first; kind in "
               "override, direct_flag, identity_flag, campaign_flag, behaviour, graph, vouch.",
    "reason_text": "The reasons as a short sentence.",
    "flagged_on": "Platforms whose flags contributed (own and carried over).",
    "first_seen": "First message time (or registration) of the account (UTC).",
    "last_seen": "Last message time of the account (UTC).",
    "valid_until": "as_of + validity_days: re-check after this time (UTC).",
    "schema_version": "Version of this table's schema.",
}


def _write_tables(con: duckdb.DuckDBPyConnection, ctx: StageContext, has_features: bool) -> None:
    run = {"run_id": ctx.run_id}
    con.execute(ACCOUNT_EVIDENCE_SQL, run)
    comment_table(con, "account_evidence", "Per-account evidence components and their log-odds contributions "
                  "to the reputation score (see reputation.scoring.stage).", ACCOUNT_EVIDENCE_COLUMNS)
    con.execute(CARRY_SOURCES_SQL, run)
    comment_table(con, "evidence_sources", "Carried-over contributions per account and source platform "
                  "(log-odds); no source account ids.", {
                      "run_id": "Run that wrote this row (see runs).", "platform": "Platform.",
                      "account": "Account id.", "source_platform": "Platform the flags came from.",
                      "identity_contribution": "Log-odds from flags of identity mates on that platform.",
                      "campaign_contribution": "Log-odds from flags of campaign mates on that platform."})
    if has_features:
        first, last = "coalesce(f.first_at, a.created_at)", "f.last_at"
        join = "LEFT JOIN features f ON f.platform = a.platform AND f.account = a.account"
    else:
        first, last, join = "a.created_at", "NULL::TIMESTAMP", ""
    v = ctx.settings.verdict
    q = (REPUTATION_SQL.replace("__FIRST_SEEN__", first).replace("__LAST_SEEN__", last)
         .replace("__FEATURES_JOIN__", join))
    con.execute(q, {
        **run,
        "min_contrib": MIN_REASON_CONTRIBUTION,
        "min_confidence": v.min_confidence, "spam": v.spam, "suspicious": v.suspicious,
        "valid_until": ctx.as_of + timedelta(days=ctx.settings.validity_days),
        "schema_version": SCHEMA_VERSION,
    })
    comment_table(con, "reputation", "Spam reputation of every account: calibrated score, verdict, confidence "
                  "and reasons. A lead for human review, not proof.", REPUTATION_COLUMNS)
