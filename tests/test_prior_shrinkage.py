"""Regression tests for the attack-edge diagnosis: timing measured on few messages must not read as strong
evidence (burstiness from few gaps; weekend and night shares of few messages).

On the CollegeMsg attack-edge world the engine's worst errors were honest users with three to seven
messages whose two to six gaps happened to be evenly spaced (burstiness ≈ −0.85): the behavioural prior,
linear in burstiness, scored them as automated senders. The prior now sees burstiness shrunk by
m / (m + K) for m gaps (:data:`reputation.scoring.prior.BURSTINESS_PRIOR_GAPS`). The next worst were honest
users whose three messages all fell on a weekend night: the weekend and night shares are shrunk toward the
platform's mean by n / (n + K) (:data:`reputation.scoring.prior.SHARE_PRIOR_MESSAGES`).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from reputation.scoring.prior import BURSTINESS_PRIOR_GAPS, PRIOR_FEATURES, SHARE_PRIOR_MESSAGES, load_feature_matrix

COLUMNS = ("messages_sent", "messages_received", "active_days", "fan_out", "fan_in", "channels", "reply_rate",
           "unsolicited_rate", "template_share", "weekend_share", "night_share", "burstiness", "dormancy_burst",
           "account_age_days", "direct_share")


def _features(rows: list[tuple[str, int, float | None]]) -> np.ndarray:
    """Prior feature matrix of accounts given as (account, messages_sent, burstiness)."""
    con = duckdb.connect()
    cols = ", ".join(f"{c} DOUBLE" for c in COLUMNS)
    con.execute(f"CREATE TABLE features (platform VARCHAR, account VARCHAR, {cols}, url_domains VARCHAR[])")
    for account, sent, b in rows:
        con.execute("INSERT INTO features (platform, account, messages_sent, burstiness) VALUES ('p', ?, ?, ?)",
                    [account, sent, b])
    con.execute("CREATE TABLE ix AS SELECT row_number() OVER (ORDER BY account) - 1 AS idx, platform, account "
                "FROM features")
    return load_feature_matrix(con, "ix")


def test_burstiness_from_few_gaps_is_shrunk_toward_poisson() -> None:
    col = [name for name, _, _ in PRIOR_FEATURES].index("burstiness")
    X = _features([("a_three_messages", 3, -0.84), ("b_many_messages", 201, -0.84), ("c_silent", 0, None),
                   ("d_one_message", 1, None)])
    b = X[:, col]
    k = BURSTINESS_PRIOR_GAPS
    assert b[0] == pytest.approx(-0.84 * 2 / (2 + k))  # two gaps: mostly chance
    assert b[1] == pytest.approx(-0.84 * 200 / (200 + k))  # two hundred gaps: nearly the measured value
    assert abs(b[0]) < 0.25 * abs(b[1])
    assert b[2] == 0.0 and b[3] == 0.0  # no gaps: no timing evidence


def test_weekend_and_night_shares_of_few_messages_are_shrunk_toward_the_platform_mean() -> None:
    con = duckdb.connect()
    cols = ", ".join(f"{c} DOUBLE" for c in COLUMNS)
    con.execute(f"CREATE TABLE features (platform VARCHAR, account VARCHAR, {cols}, url_domains VARCHAR[])")
    rows = [("p", "a_three", 3, 1.0), ("p", "b_many", 300, 1.0), ("p", "c", 50, 0.1), ("p", "d", 50, 0.1),
            ("q", "e_three", 3, 1.0), ("q", "f", 40, 0.5), ("p", "g_silent", 0, None)]
    for platform, account, sent, share in rows:
        con.execute("INSERT INTO features (platform, account, messages_sent, weekend_share, night_share) "
                    "VALUES (?, ?, ?, ?, ?)", [platform, account, sent, share, share])
    con.execute("CREATE TABLE ix AS SELECT row_number() OVER (ORDER BY account) - 1 AS idx, platform, account "
                "FROM features")
    X = load_feature_matrix(con, "ix")
    names = [name for name, _, _ in PRIOR_FEATURES]
    k = SHARE_PRIOR_MESSAGES
    mean_p, mean_q = (1.0 + 1.0 + 0.1 + 0.1) / 4, (1.0 + 0.5) / 2  # silent accounts have no share
    for col in ("weekend_share", "night_share"):
        x = X[:, names.index(col)]
        assert x[0] == pytest.approx((3 * 1.0 + k * mean_p) / (3 + k))  # three messages: mostly the mean
        assert x[1] == pytest.approx((300 * 1.0 + k * mean_p) / (300 + k))  # many: nearly the measured share
        assert x[4] == pytest.approx((3 * 1.0 + k * mean_q) / (3 + k))  # its own platform's mean
        assert x[6] == 0.0  # silent
        assert abs(x[0] - mean_p) < abs(x[0] - 1.0) and x[1] > 0.95
