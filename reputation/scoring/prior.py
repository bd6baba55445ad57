"""Behavioural prior: a readable logistic model of "spam" learned from flags and behavioural features.

Flags are sparse and noisy, and most accounts carry none. The model is fitted in the
positive-unlabelled (PU) setting: accounts with spam evidence are positives (weighted by the
evidence), accounts with clean evidence are negatives, and unflagged accounts are *weak* negatives
(weight ``unlabelled_weight`` each, because nearly all unflagged accounts are honest but some are
unflagged spammers). The features are transformed so that a linear model can read them (log counts,
rates, and two interactions that separate spammers from the false-positive trap — legitimate bulk
senders have a high fan-out but also replies and solicited contacts).

Cross-validation is by *group* (the account's identity): the prior of an account is always predicted
by a model fitted without its own flag and without any flag of its identity's other accounts, so the
prior never leaks the labels it is later combined with. The model fitted on all data is persisted in
``prior_model`` (one row per feature: standardised weight, mean, scale, and the spread of the weight over
the folds) so that analysts can read what was learned.

Example
-------
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 2)); y = (X[:, 0] > 0).astype(float)
>>> m = fit_logistic(X, y, np.ones(400), l2=1e-3)
>>> bool(m.coef[0] > 3 * abs(m.coef[1]))
True
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import numpy as np
from scipy.special import expit

from ._kernels import logistic_loss, logistic_terms

#: Pseudo-count of inter-message gaps in the shrinkage of burstiness (see ``PRIOR_FEATURES``).
#:
#: Burstiness B = (σ − μ)/(σ + μ) of an account's m gaps between sent messages is a very noisy measure
#: when m is small: for Poisson (memoryless) timing its sampling variance is about 1/(4m) (delta method
#: on σ/μ of exponential gaps), and with m gaps it cannot exceed (√(m−1) − 1)/(√(m−1) + 1) (Kim & Jo,
#: Phys. Rev. E 94, 032311, 2016) — 0 for two gaps — so a three-message account can only look
#: "regular", never bursty. The logistic prior, linear in B, read such chance regularity as strong
#: evidence (an honest user's three evenly spaced messages scored like an automated sender's). The model
#: therefore sees B shrunk toward 0 (Poisson timing) by m / (m + K), the empirical-Bayes reliability of
#: a mean of m noisy readings: K = sampling variance per gap (1/4) / variance of B between accounts
#: (about 0.03, a standard deviation of 0.17–0.18 among accounts with many gaps) ≈ 8. Below 8 gaps B
#: counts less than half.
BURSTINESS_PRIOR_GAPS = 8
_GAPS = "greatest(coalesce(f.messages_sent, 0) - 1, 0)"

#: Pseudo-count of messages in the shrinkage of the weekend and night shares (see ``PRIOR_FEATURES``).
#:
#: A share of n messages is a binomial proportion with sampling variance p(1 − p)/n, so three messages
#: all sent on a Saturday night (chance (2/7)³ ≈ 2% for weekend alone) say little, yet the linear prior
#: read them as a share of 1, the most extreme value there is (an honest CollegeMsg user with three such
#: messages scored +6 log-odds from behaviour). The model therefore sees the share shrunk toward the
#: platform's mean by n / (n + K), the empirical-Bayes reliability: K = p(1 − p) / (variance of the true
#: share between accounts), measured on accounts with ≥ 50 messages as 9.9 (weekend) and 5.5 (night) on a
#: generated 10M-message world, 9.3 and 14.1 on CollegeMsg; one K of 8 (as for burstiness) serves both.
SHARE_PRIOR_MESSAGES = 8


def _shrunk_share(column: str) -> str:
    """SQL for ``features.column`` shrunk toward its platform mean by n/(n + SHARE_PRIOR_MESSAGES)."""
    n = "coalesce(f.messages_sent, 0)"
    # rounded: a parallel sum's last bits depend on row order, and the fit would carry them into the scores
    platform_mean = f"coalesce(round(avg(f.{column}) OVER (PARTITION BY a.platform), 9), 0)"
    return (f"CASE WHEN {n} = 0 THEN 0 ELSE (coalesce(f.{column}, 0) * {n} + {SHARE_PRIOR_MESSAGES} * "
            f"{platform_mean}) / ({n} + {SHARE_PRIOR_MESSAGES}) END")


#: (name, SQL expression over ``features f``, description). Order is the model's column order.
PRIOR_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("log_messages_sent", "ln(1 + coalesce(f.messages_sent, 0))", "log(1 + messages sent)"),
    ("log_messages_received", "ln(1 + coalesce(f.messages_received, 0))", "log(1 + messages received)"),
    ("log_active_days", "ln(1 + coalesce(f.active_days, 0))", "log(1 + active days)"),
    ("log_fan_out", "ln(1 + coalesce(f.fan_out, 0))", "log(1 + distinct recipients)"),
    ("log_fan_in", "ln(1 + coalesce(f.fan_in, 0))", "log(1 + distinct senders to the account)"),
    ("log_channels", "ln(1 + coalesce(f.channels, 0))", "log(1 + channels posted in)"),
    ("reply_rate", "coalesce(f.reply_rate, 0)", "share of contacted recipients who wrote back"),
    ("unsolicited_rate", "coalesce(f.unsolicited_rate, 0)", "share of contacts opened unsolicited"),
    ("template_share", "coalesce(f.template_share, 0)", "share of messages that are near-copies"),
    ("weekend_share", _shrunk_share("weekend_share"),
     f"share of messages on Sat/Sun (UTC), shrunk to the platform mean by n/(n + {SHARE_PRIOR_MESSAGES})"),
    ("night_share", _shrunk_share("night_share"),
     f"share of messages 00-06 UTC, shrunk to the platform mean by n/(n + {SHARE_PRIOR_MESSAGES})"),
    ("burstiness", f"coalesce(f.burstiness, 0) * {_GAPS} / ({_GAPS} + {BURSTINESS_PRIOR_GAPS})",
     f"(sd - mean)/(sd + mean) of the m inter-message gaps, times m/(m + {BURSTINESS_PRIOR_GAPS}) (few gaps: noisy)"),
    ("dormancy_burst", "coalesce(f.dormancy_burst, 0)", "long silence followed by a burst"),
    ("log_account_age_days", "ln(1 + greatest(0, coalesce(f.account_age_days, 0)))",
     "log(1 + account age at first message, days)"),
    ("age_unknown", "CASE WHEN f.account_age_days IS NULL THEN 1 ELSE 0 END", "account age unknown"),
    ("direct_share", "coalesce(f.direct_share, 0)", "share of messages that are direct messages"),
    ("log_url_domains", "ln(1 + coalesce(len(f.url_domains), 0))", "log(1 + distinct URL domains)"),
    ("silent", "CASE WHEN coalesce(f.messages_sent, 0) = 0 THEN 1 ELSE 0 END", "never sent a message"),
    ("fan_out_x_unsolicited", "ln(1 + coalesce(f.fan_out, 0)) * coalesce(f.unsolicited_rate, 0)",
     "log fan-out x unsolicited rate (cold mass contact)"),
    ("fan_out_x_no_reply", "ln(1 + coalesce(f.fan_out, 0)) * (1 - coalesce(f.reply_rate, 0))",
     "log fan-out x share never answered"),
    ("template_x_unsolicited", "coalesce(f.template_share, 0) * coalesce(f.unsolicited_rate, 0)",
     "copy-paste texts sent cold"),
)


#: Unlabelled accounts used to fit the prior at most (a fixed-seed sample beyond this).
MAX_UNLABELLED_TRAIN = 200_000
#: Newton iterations allowed in :func:`fit_logistic` (it typically needs 5-15).
MAX_NEWTON_STEPS = 100


@dataclass(frozen=True)
class LogisticModel:
    """A logistic model on standardised inputs: ``p = expit(intercept + ((x - mean)/scale)·coef)``."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray

    def decision(self, X: np.ndarray) -> np.ndarray:
        """Log-odds for the rows of ``X`` (raw, unstandardised features)."""
        return self.intercept + ((X - self.mean) / self.scale) @ self.coef

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probabilities for the rows of ``X``."""
        return expit(self.decision(X))


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1.0,
                 nonneg: bool = False, standardise: bool = True) -> LogisticModel:
    """Weighted L2-regularised logistic regression (Newton's method with a line search).

    Parameters
    ----------
    X
        (n, d) raw features; standardised inside with weighted-free column mean and sd.
    y
        (n,) targets in 0..1 (soft labels allowed).
    w
        (n,) non-negative sample weights.
    l2
        Ridge penalty on the standardised coefficients (not on the intercept), relative to the total weight.
    nonneg
        Constrain the coefficients to be ≥ 0 (evidence that may only raise the score).
    standardise
        Standardise the columns (False: keep raw units, mean 0 and scale 1).
    """
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
    scale = X.std(axis=0) if len(X) else np.ones(X.shape[1])
    scale = np.where(scale > 1e-9, scale, 1.0)
    if not standardise:
        mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
    Z = (X - mean) / scale
    total = max(float(w.sum()), 1e-12)
    A = np.column_stack([np.ones(len(Z)), Z])
    penalty = np.full(A.shape[1], l2)
    penalty[0] = 0.0  # the intercept is not penalised

    y = np.ascontiguousarray(y, dtype=np.float64)
    w = np.ascontiguousarray(w, dtype=np.float64)

    def loss(theta: np.ndarray) -> float:
        return logistic_loss(A, y, w, theta) / total + 0.5 * float(np.dot(penalty * theta, theta))

    # Newton's method with a backtracking line search (d is small: the d×d Hessian is cheap and the
    # iteration count does not grow with n, unlike first-order methods on ill-conditioned features).
    # The per-row sums (loss, gradient, Hessian) are compiled single passes over A (_kernels).
    theta = np.zeros(A.shape[1])
    current = loss(theta)
    g_raw, h_raw = np.zeros(A.shape[1]), np.zeros((A.shape[1], A.shape[1]))
    for _ in range(MAX_NEWTON_STEPS):
        logistic_terms(A, y, w, theta, g_raw, h_raw)
        grad = g_raw / total + penalty * theta
        H = h_raw / total + np.diag(penalty) + 1e-10 * np.eye(A.shape[1])
        step = np.linalg.solve(H, grad)
        t, decrease = 1.0, float(grad @ step)
        while True:
            cand = theta - t * step
            if nonneg:
                cand[1:] = np.maximum(cand[1:], 0.0)
            value = loss(cand)
            if value <= current - 1e-4 * t * decrease or t < 1e-8:
                break
            t *= 0.5
        moved = float(np.max(np.abs(cand - theta)))
        theta, current = cand, value
        if moved < 1e-9:
            break
    return LogisticModel(coef=theta[1:].copy(), intercept=float(theta[0]), mean=mean, scale=scale)


def load_feature_matrix(con: duckdb.DuckDBPyConnection, index_table: str) -> np.ndarray:
    """Feature matrix aligned with ``index_table``(idx, platform, account), rows ordered by idx.

    Accounts without a ``features`` row get the features of a silent account.
    """
    exprs = ", ".join(f"CAST({expr} AS DOUBLE) AS {name}" for name, expr, _ in PRIOR_FEATURES)
    # A missing features row behaves like a silent account (all coalesces above).
    q = (f"SELECT {exprs} FROM {index_table} a "
         "LEFT JOIN features f ON f.platform = a.platform AND f.account = a.account ORDER BY a.idx")
    cols = con.execute(q).fetchnumpy()
    return np.column_stack([np.asarray(cols[name], dtype=np.float64) for name, _, _ in PRIOR_FEATURES])


@dataclass(frozen=True)
class PriorResult:
    """Out-of-fold prior probabilities and the readable full-data model."""

    oof_logit: np.ndarray
    model: LogisticModel
    fold_coefs: np.ndarray
    cv_auc: float | None


def fit_prior(X: np.ndarray, evidence: np.ndarray, folds: np.ndarray,
              unlabelled_weight: float = 0.05, l2: float = 0.01) -> PriorResult:
    """Fit the behavioural prior with grouped K-fold cross-validation.

    Parameters
    ----------
    X
        (n, d) features (``PRIOR_FEATURES`` order).
    evidence
        (n,) direct flag evidence in −1..1 (0 = unflagged).
    folds
        (n,) fold number 0..k-1 per account, computed from the account's identity so that folds never
        split an identity (see ``INDEX_SQL`` in :mod:`reputation.scoring.stage`).
    unlabelled_weight
        Weight of each unflagged account as a negative, relative to a flag of evidence 1.
    l2
        Ridge penalty.

    Returns
    -------
    PriorResult
        ``oof_logit[i]`` comes from a model that saw no flag of ``i``'s group.
    """
    n = len(evidence)
    labelled = evidence != 0
    y = (evidence > 0).astype(np.float64)
    w = np.where(labelled, np.abs(evidence), unlabelled_weight)
    # At scale, train on every labelled account and a fixed-seed sample of the unlabelled ones (weights
    # scaled up to keep their total): the fit's cost then stays bounded however many accounts there are.
    in_train = np.ones(n, dtype=bool)
    n_unlabelled = int((~labelled).sum())
    if n_unlabelled > MAX_UNLABELLED_TRAIN:
        keep = np.random.default_rng(0).choice(np.flatnonzero(~labelled), MAX_UNLABELLED_TRAIN, replace=False)
        in_train = labelled.copy()
        in_train[keep] = True
        w = np.where(labelled, w, w * n_unlabelled / MAX_UNLABELLED_TRAIN)
    oof = np.zeros(n)
    # The fold fits and the full fit are independent: two at a time on two threads (the compiled passes
    # release the GIL, and so do numpy's). Each fit is deterministic, so the results do not depend on it.
    trains = [(f, (folds != f) & in_train) for f in np.unique(folds)]
    trains = [(f, t) for f, t in trains if np.any(t & (y == 1)) and np.any(t & (y == 0))]
    fit_all = bool(np.any(y == 1) and np.any(y == 0))
    jobs = [t for _, t in trains] + ([in_train] if fit_all else [])
    with ThreadPoolExecutor(max_workers=2) as pool:
        models = list(pool.map(lambda t: fit_logistic(X[t], y[t], w[t], l2=l2), jobs))
    coefs = []
    for (f, _), m in zip(trains, models, strict=False):
        oof[folds == f] = m.decision(X[folds == f])
        coefs.append(m.coef)
    if fit_all:
        full = models[-1]
    else:
        full = LogisticModel(np.zeros(X.shape[1]), 0.0, np.zeros(X.shape[1]), np.ones(X.shape[1]))
    if not coefs:
        oof = full.decision(X)
    auc = roc_auc(oof[labelled], y[labelled]) if labelled.any() else None
    fold_coefs = np.array(coefs) if coefs else np.zeros((0, X.shape[1]))
    return PriorResult(oof_logit=oof, model=full, fold_coefs=fold_coefs, cv_auc=auc)


def roc_auc(score: np.ndarray, y: np.ndarray) -> float | None:
    """ROC-AUC by the rank-sum (Mann–Whitney) formula, ties counted half; None without both classes."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return None
    r = rankdata(score)
    return float((r[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


PRIOR_MODEL_DOC = (
    "The behavioural prior's logistic model (fitted on all flags; positive-unlabelled: unflagged accounts "
    "are weak negatives). log-odds = intercept + sum(weight * (value - mean) / scale)."
)
PRIOR_MODEL_COLUMNS = {
    "run_id": "Run that wrote this row (see runs).",
    "feature": "Model input (see description); 'intercept' for the constant term.",
    "description": "What the input measures.",
    "weight": "Coefficient on the standardised input, log-odds per standard deviation (positive = spammy).",
    "mean": "Mean of the input over all accounts (standardisation).",
    "scale": "Standard deviation of the input over all accounts (standardisation).",
    "weight_fold_sd": "Standard deviation of the weight over the cross-validation folds (stability).",
}


def write_prior_model(con: duckdb.DuckDBPyConnection, run_id: str, result: PriorResult) -> int:
    """Persist ``result.model`` as the readable table ``prior_model``; returns rows written."""
    from ..store import comment_table

    m = result.model
    sd = result.fold_coefs.std(axis=0) if len(result.fold_coefs) > 1 else np.zeros(len(m.coef))
    rows = [(run_id, "intercept", "constant term", float(m.intercept), None, None, None)]
    rows += [(run_id, name, desc, float(m.coef[i]), float(m.mean[i]), float(m.scale[i]), float(sd[i]))
             for i, (name, _, desc) in enumerate(PRIOR_FEATURES)]
    con.execute("CREATE OR REPLACE TABLE prior_model (run_id VARCHAR, feature VARCHAR, description VARCHAR, "
                "weight DOUBLE, mean DOUBLE, scale DOUBLE, weight_fold_sd DOUBLE)")
    con.executemany("INSERT INTO prior_model VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    comment_table(con, "prior_model", PRIOR_MODEL_DOC, PRIOR_MODEL_COLUMNS)
    return len(rows)
