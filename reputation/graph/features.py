"""Behavioural features: one row per account, the signals the design brief names.

Computed from ``messages``, ``interactions``, ``message_templates`` and ``template_clusters`` (so
:func:`build_interactions` and :func:`build_templates` must run first), in two parts:

- per message (counts, hour-of-week profile, active days, burstiness, dormancy): one scan of
  ``messages`` fetched into numpy, messages grouped by sender and each sender's send times sorted
  and walked once in a compiled kernel (:func:`_timeline_kernel`) — far cheaper than SQL windows and
  ``count(DISTINCT ...)`` over every message;
- per edge (fan-out/in, channels, direct messages, reply and unsolicited rates): aggregates of the
  ``interactions`` rows, which already hold one row per sender→recipient and sender→channel.

One SQL statement joins both onto ``accounts``. An account that never sent a message gets zero
counts and null rates/profiles (a rate of nothing is unknown, not zero).

Conventions (documented on every column through ``COMMENT ON``):

- Times are UTC. Local time is unknown, so "night" is UTC hours 0–5 and the weekend is UTC Saturday
  and Sunday; a sender far from UTC shifts these, which is why the full hour-of-week profile is kept too.
- Hour of week: Monday 00:00–00:59 UTC = 0 … Sunday 23:00 = 167.
- Rates over direct contacts (reply_rate, unsolicited_rate) count distinct recipients (edges), not
  messages, so one chatty friend does not mask a thousand cold contacts.
- Burstiness (Goh & Barabási): B = (σ − μ)/(σ + μ) of the gaps between consecutive dated sent messages;
  −1 perfectly regular, 0 Poisson-like, → 1 bursty. Null with fewer than 3 dated messages; 1 when all
  gaps are zero.
- dormancy_burst: the largest number of messages sent within 24 h after a silence of at least
  :data:`DORMANCY_DAYS` days (silence = time since the account's previous sent message, or since
  ``created_at`` for its first message), divided by the account's median messages per active day.
  0 when no such awakening exists; null when the account has no dated sent message. A sleeper account
  that wakes up to blast 200 messages scores ≫ 1; a person back from holiday scores about 1.

Example
-------
>>> import duckdb
>>> from datetime import datetime
>>> from reputation.config import Settings
>>> from reputation.context import StageContext
>>> from reputation.schema import STORED_TABLES
>>> from reputation.graph.interactions import build_interactions
>>> from reputation.graph.templates import build_templates
>>> con = duckdb.connect()
>>> for t in ("messages", "accounts"):
...     _ = con.execute(STORED_TABLES[t].ddl())
>>> _ = con.execute("INSERT INTO accounts (platform, account) VALUES ('p', 'a'), ('p', 'b')")
>>> _ = con.execute("INSERT INTO messages (platform, sender, recipient, sent_at) VALUES "
...                 "('p', 'a', 'b', '2026-01-03 01:00'), ('p', 'a', 'b', '2026-01-05 10:00')")
>>> ctx = StageContext("r1", Settings(), datetime(2026, 1, 6))
>>> _ = build_interactions(con, ctx); _ = build_templates(con, ctx)
>>> build_features(con, ctx)
2
>>> con.sql("SELECT account, messages_sent, fan_out, fan_in, weekend_share, night_share "
...         "FROM features ORDER BY account").fetchall()
[('a', 2, 1, 0, 0.5, 0.5), ('b', 0, 0, 1, None, None)]
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from numba import njit, prange

from ..context import StageContext
from ..store import comment_table

TABLE = "features"
DORMANCY_DAYS = 14
BURST_HOURS = 24
MAX_URL_DOMAINS = 20

TABLE_DOC = (
    "Behavioural features, one row per account in accounts. Times are UTC (local time is unknown): "
    "night = UTC hours 0-5, weekend = UTC Saturday and Sunday, hour of week 0 = Monday 00:00 UTC. "
    "Accounts that never sent have zero counts and null rates and profiles."
)

COLUMN_DOCS: dict[str, str] = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform.",
    "account": "Account id.",
    "messages_sent": "Messages sent (direct and channel), count.",
    "messages_received": "Direct messages received from other accounts, count (a note to self is no contact).",
    "active_days": "Distinct UTC calendar days with at least one sent message, days.",
    "fan_out": "Distinct direct-message recipients other than the account itself, count.",
    "fan_in": "Distinct accounts that sent this account a direct message, count.",
    "channels": "Distinct channels posted in, count.",
    "reply_rate": "Share (0..1) of the account's direct recipients who ever wrote back; null without "
    "direct messages sent.",
    "unsolicited_rate": "Share (0..1) of the account's direct recipients contacted unsolicited (first "
    "contact before any message from them); null without direct messages sent.",
    "template_share": "Share (0..1) of sent messages with text whose text belongs to a template cluster "
    "with ≥ 2 messages from any sender (near-copies, see templates); null when the account sent no "
    "message with text.",
    "hour_profile": "Share (0..1) of dated sent messages per UTC hour of week (168 values, Monday "
    "00:00 UTC = index 0, sums to 1); null without dated sent messages.",
    "weekend_share": "Share (0..1) of dated sent messages on UTC Saturday or Sunday; null without dated "
    "sent messages.",
    "night_share": "Share (0..1) of dated sent messages in UTC hours 0-5 (local time unknown); null "
    "without dated sent messages.",
    "burstiness": "(σ−μ)/(σ+μ) of gaps between consecutive dated sent messages, in -1..1 (−1 regular, "
    "0 random, →1 bursty); 1 when all gaps are 0; null with fewer than 3 dated sent messages.",
    "dormancy_burst": f"Largest number of messages sent within {BURST_HOURS} h after a silence of at "
    f"least {DORMANCY_DAYS} days (since the previous sent message, or since created_at for the first), "
    "divided by the median messages per active day (ratio, ≥ 0); 0 when no such awakening; null "
    "without dated sent messages.",
    "account_age_days": "Days from created_at to the first dated sent message (negative when the "
    "directory's created_at is later); null when either is unknown.",
    "direct_share": "Share (0..1) of sent messages that were direct messages (to another account); null "
    "without sent messages.",
    "url_domains": f"Distinct URL domains in sent messages, most used first (at most {MAX_URL_DOMAINS}); "
    "empty list when none.",
    "first_at": "First dated message the account sent or received (UTC).",
    "last_at": "Last dated message the account sent or received (UTC).",
}

# Everything per message is computed once in a compiled pass over the sorted send times
# (:func:`_timeline_kernel`, registered as ``_feature_timelines``); everything per edge comes from
# ``interactions`` (one direct row per sender→recipient, one channel row per sender→channel), so no
# count(DISTINCT ...) and no window over ``messages`` is needed. This statement only joins.
_SQL = f"""
CREATE OR REPLACE TABLE {TABLE} AS
WITH sent_edges AS (
    SELECT platform, sender AS account,
           count(*) FILTER (WHERE kind = 'direct') AS fan_out,
           count(*) FILTER (WHERE kind = 'channel') AS channels,
           sum(messages) FILTER (WHERE kind = 'direct') AS direct_sent,
           avg(CAST(reciprocated AS DOUBLE)) FILTER (WHERE kind = 'direct') AS reply_rate,
           avg(CAST(unsolicited AS DOUBLE)) FILTER (WHERE kind = 'direct') AS unsolicited_rate
    FROM interactions
    GROUP BY platform, sender
),
received AS (
    SELECT platform, recipient AS account,
           sum(messages) AS messages_received,
           count(*) AS fan_in,
           min(first_at) AS first_received,
           max(last_at) AS last_received
    FROM interactions
    WHERE kind = 'direct'
    GROUP BY platform, recipient
),
templated AS (
    SELECT m.platform, m.sender AS account, count(*) AS template_messages
    FROM message_templates m
    JOIN template_clusters c ON c.template_id = m.template_id
    WHERE c.messages >= 2
    GROUP BY m.platform, m.sender
),
domains AS (
    SELECT platform, account,
           list(url_domain ORDER BY n DESC, url_domain)[1:{MAX_URL_DOMAINS}] AS url_domains
    FROM (SELECT platform, sender AS account, url_domain, count(*) AS n
          FROM messages WHERE url_domain IS NOT NULL
          GROUP BY platform, sender, url_domain)
    GROUP BY platform, account
)
SELECT CAST($run_id AS VARCHAR) AS run_id,
       a.platform, a.account,
       coalesce(s.messages_sent, 0)::BIGINT AS messages_sent,
       coalesce(r.messages_received, 0)::BIGINT AS messages_received,
       coalesce(s.active_days, 0)::BIGINT AS active_days,
       coalesce(e.fan_out, 0)::BIGINT AS fan_out,
       coalesce(r.fan_in, 0)::BIGINT AS fan_in,
       coalesce(e.channels, 0)::BIGINT AS channels,
       e.reply_rate,
       e.unsolicited_rate,
       coalesce(t.template_messages, 0) / nullif(s.with_text, 0) AS template_share,
       CAST(s.hour_profile AS DOUBLE[168]) AS hour_profile,
       s.weekend_sent / nullif(s.dated, 0) AS weekend_share,
       s.night_sent / nullif(s.dated, 0) AS night_share,
       s.burstiness,
       CASE WHEN s.dated > 0 THEN s.awakening / s.median_daily END AS dormancy_burst,
       epoch(s.first_sent - a.created_at) / 86400.0 AS account_age_days,
       coalesce(e.direct_sent, 0) / s.messages_sent AS direct_share,
       coalesce(d.url_domains, CAST([] AS VARCHAR[])) AS url_domains,
       least(s.first_sent, r.first_received) AS first_at,
       greatest(s.last_sent, r.last_received) AS last_at
FROM accounts a
LEFT JOIN _feature_timelines s ON s.key = hash(a.platform, a.account)
LEFT JOIN sent_edges e ON e.platform = a.platform AND e.account = a.account
LEFT JOIN received r ON r.platform = a.platform AND r.account = a.account
LEFT JOIN templated t ON t.platform = a.platform AND t.account = a.account
LEFT JOIN domains d ON d.platform = a.platform AND d.account = a.account
"""

_US_HOUR = 3_600_000_000
_US_DAY = 24 * _US_HOUR
_NO_TIME = np.iinfo(np.int64).min  # stands for a null timestamp in the int64 arrays below


@njit(cache=True, parallel=True, nogil=True)
def _timeline_kernel(offsets: np.ndarray, t: np.ndarray, created: np.ndarray, profile: np.ndarray,
                     stats: np.ndarray, burstiness: np.ndarray, median_daily: np.ndarray) -> None:  # pragma: no cover
    """Per-account time features from the dated send times, grouped by account.

    Account ``a`` owns ``t[offsets[a]:offsets[a + 1]]`` (epoch microseconds, sorted here in place; may be empty)
    and ``created[a]`` (its ``created_at`` in epoch microseconds, or ``_NO_TIME``). Writes, per account:
    ``profile[a, h]`` = share of its messages in UTC hour of week ``h``; ``stats[a]`` = (active days,
    weekend messages, night messages, awakening); ``burstiness[a]`` (NaN when null);
    ``median_daily[a]`` (median messages per active day, NaN without messages).

    Floor division everywhere, as DuckDB's ``epoch_ms``, ``hour`` and ``CAST(... AS DATE)`` do.
    Burstiness uses the two-pass variance; the awakening burst counts the messages in
    [t, t + BURST_HOURS] after a silence ≥ DORMANCY_DAYS (a window ``RANGE`` frame starting at the
    current row, whose peers — equal times — are all included).
    """
    n_acc = len(offsets) - 1
    dormancy = np.int64(DORMANCY_DAYS) * np.int64(86_400_000_000)
    burst_span = np.int64(BURST_HOURS) * np.int64(3_600_000_000)
    for a in prange(n_acc):
        s = offsets[a]
        e = offsets[a + 1]
        n = e - s
        burstiness[a] = np.nan
        median_daily[a] = np.nan
        if n == 0:
            continue
        t[s:e].sort()
        # hour-of-week histogram, weekend/night counts, active days
        weekend = 0
        night = 0
        days = 0
        prev_day = np.int64(0)
        for i in range(s, e):
            hours = t[i] // np.int64(3_600_000_000)
            day = hours // 24
            hod = hours - day * 24
            how = ((day + 3) % 7) * 24 + hod  # 1970-01-01 was a Thursday; Monday 00:00 = 0
            profile[a, how] += 1.0
            if how >= 120:
                weekend += 1
            if hod < 6:
                night += 1
            if i == s or day != prev_day:
                days += 1
                prev_day = day
        for h in range(168):
            profile[a, h] = profile[a, h] / n
        # messages per active day (times are sorted, so days come in runs) and their median
        per_day = np.empty(days, dtype=np.int64)
        k = -1
        for i in range(s, e):
            day = (t[i] // np.int64(3_600_000_000)) // 24
            if i == s or day != prev_day:
                k += 1
                per_day[k] = 0
                prev_day = day
            per_day[k] += 1
        per_day.sort()
        if days % 2 == 1:
            median_daily[a] = float(per_day[days // 2])
        else:
            lo = float(per_day[days // 2 - 1])
            median_daily[a] = lo + (float(per_day[days // 2]) - lo) * 0.5
        # burstiness over the n - 1 gaps in whole milliseconds
        m = n - 1
        if m >= 2:
            total = np.int64(0)
            for i in range(s + 1, e):
                total += t[i] // np.int64(1000) - t[i - 1] // np.int64(1000)
            if total == 0:
                burstiness[a] = 1.0
            else:
                mu = total / m
                ss = 0.0
                for i in range(s + 1, e):
                    d = (t[i] // np.int64(1000) - t[i - 1] // np.int64(1000)) - mu
                    ss += d * d
                sd_n = np.sqrt(ss * m)  # = sqrt(n·Σg² − (Σg)²) of the old exact formula
                burstiness[a] = (sd_n - total) / (sd_n + total)
        # awakening: largest burst after a long silence (two pointers, O(n))
        awakening = 0
        hi = s
        for i in range(s, e):
            if i == s:
                if created[a] == _NO_TIME:
                    continue
                silence = t[i] - created[a]
            else:
                silence = t[i] - t[i - 1]
            if silence >= dormancy:  # silence > 0 for i > s: row i is the first of its peers
                if hi < i:
                    hi = i
                while hi < e and t[hi] <= t[i] + burst_span:
                    hi += 1
                if hi - i > awakening:
                    awakening = hi - i
        stats[a, 0] = days
        stats[a, 1] = weekend
        stats[a, 2] = night
        stats[a, 3] = awakening


@njit(cache=True, nogil=True)
def _dense_ids(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Number distinct ``uint64`` keys 0, 1, … in order of first appearance; return (ids, distinct keys).

    An open-addressing hash table (linear probing, at most half full), one pass over ``keys``:
    what ``np.unique(..., return_inverse=True)`` computes up to the numbering, without its sort of
    every row. The keys are already hashes, so their low bits index the table directly.
    """
    n = len(keys)
    size = 1 << 16  # doubled whenever it would get more than half full
    slot_key = np.zeros(size, dtype=np.uint64)
    slot_id = np.full(size, -1, dtype=np.int64)
    distinct = np.empty(1024, dtype=np.uint64)
    count = 0
    ids = np.empty(n, dtype=np.int64)
    mask = np.uint64(size - 1)
    for i in range(n):
        k = keys[i]
        j = np.int64(k & mask)
        while slot_id[j] >= 0 and slot_key[j] != k:
            j = (j + 1) & (size - 1)
        if slot_id[j] < 0:
            if 2 * (count + 1) > size:  # grow the table and re-insert the distinct keys
                size *= 2
                mask = np.uint64(size - 1)
                slot_key = np.zeros(size, dtype=np.uint64)
                slot_id = np.full(size, -1, dtype=np.int64)
                for c in range(count):
                    jj = np.int64(distinct[c] & mask)
                    while slot_id[jj] >= 0:
                        jj = (jj + 1) & (size - 1)
                    slot_key[jj] = distinct[c]
                    slot_id[jj] = c
                j = np.int64(k & mask)
                while slot_id[j] >= 0:
                    j = (j + 1) & (size - 1)
            if count == len(distinct):
                grown = np.empty(2 * count, dtype=np.uint64)
                grown[:count] = distinct
                distinct = grown
            slot_key[j] = k
            slot_id[j] = count
            distinct[count] = k
            count += 1
        ids[i] = slot_id[j]
    return ids, distinct[:count].copy()


@njit(cache=True, nogil=True)
def _bucket_by_account(ids: np.ndarray, t: np.ndarray, dated: np.ndarray,
                       n_acc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Count messages per account and group the dated send times by account (a counting sort).

    Returns ``(messages_sent, offsets, grouped)``: account ``a``'s dated times are
    ``grouped[offsets[a]:offsets[a + 1]]``, in input order (:func:`_timeline_kernel` sorts each
    account's few times itself, which is cheaper than one sort of all messages).
    """
    messages_sent = np.zeros(n_acc, dtype=np.int64)
    offsets = np.zeros(n_acc + 1, dtype=np.int64)
    for i in range(len(ids)):
        a = ids[i]
        messages_sent[a] += 1
        if dated[i]:
            offsets[a + 1] += 1
    for a in range(n_acc):
        offsets[a + 1] += offsets[a]
    fill = offsets[:-1].copy()
    grouped = np.empty(offsets[n_acc], dtype=np.int64)
    for i in range(len(ids)):
        if dated[i]:
            a = ids[i]
            grouped[fill[a]] = t[i]
            fill[a] += 1
    return messages_sent, offsets, grouped


def _timelines(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per-sender counts and time features, keyed by ``hash(platform, sender)``.

    One scan of ``messages`` fetches the sender hash and the send time (epoch µs), a second one the
    senders of messages without text (a null filter, which does not read the texts; fetching
    ``text IS NOT NULL`` for every row does, and cost ~1 s CPU at 10M messages).
    Senders get dense ids (:func:`_dense_ids`), the dated times are grouped by account
    (:func:`_bucket_by_account`) and :func:`_timeline_kernel` sorts each account's times and
    computes the rest. No sort of all messages, no window over ``messages``. Two distinct accounts
    whose 64-bit hashes collide would be merged; the odds are ≈ n²/2⁶⁵, below 10⁻⁷ for 10⁶ senders.
    """
    tbl = con.sql(
        "SELECT hash(platform, sender) AS key, epoch_us(sent_at) AS t FROM messages").to_arrow_table()
    keys_all = tbl.column("key").to_numpy()
    # read-only whatever the chunking (one Arrow chunk converts zero-copy and read-only, several into a
    # writable copy): one compiled specialisation of the kernel for small and large databases alike, not
    # a second compile (~5 s) on the first run over a database of more than one chunk (~123k messages)
    keys_all.flags.writeable = False
    t_col = tbl.column("t")
    dated_mask = t_col.is_valid().to_numpy(zero_copy_only=False)
    t_all = t_col.fill_null(0).to_numpy()
    del tbl, t_col
    ids, keys = _dense_ids(keys_all)
    del keys_all
    n_acc = len(keys)
    messages_sent, offsets, t_d = _bucket_by_account(ids, t_all, dated_mask, n_acc)
    del ids, t_all, dated_mask
    dated = np.diff(offsets)
    by_key = np.argsort(keys)
    textless = con.sql("SELECT hash(platform, sender) AS key FROM messages WHERE text IS NULL").to_arrow_table()
    textless_ids = by_key[np.searchsorted(keys, textless.column("key").to_numpy(), sorter=by_key)]
    with_text = messages_sent - np.bincount(textless_ids, minlength=n_acc)
    # created_at per sender (null when unknown or not in accounts)
    acc = con.sql("SELECT hash(platform, account) AS key, epoch_us(created_at) AS c FROM accounts "
                      "WHERE created_at IS NOT NULL").to_arrow_table()
    created = np.full(n_acc, _NO_TIME, dtype=np.int64)
    akeys = acc.column("key").to_numpy()
    pos = np.minimum(np.searchsorted(keys, akeys, sorter=by_key), max(n_acc - 1, 0))
    hit = keys[by_key[pos]] == akeys if n_acc else np.zeros(len(akeys), dtype=bool)
    created[by_key[pos[hit]]] = acc.column("c").to_numpy()[hit]
    profile = np.zeros((n_acc, 168), dtype=np.float64)
    stats = np.zeros((n_acc, 4), dtype=np.int64)
    burstiness = np.empty(n_acc, dtype=np.float64)
    median_daily = np.empty(n_acc, dtype=np.float64)
    _timeline_kernel(offsets, t_d, created, profile, stats, burstiness, median_daily)
    no_time = dated == 0
    first = np.zeros(n_acc, dtype=np.int64)
    last = np.zeros(n_acc, dtype=np.int64)
    first[~no_time] = t_d[offsets[:-1][~no_time]]  # each account's times are sorted now
    last[~no_time] = t_d[offsets[1:][~no_time] - 1]
    ts = pa.timestamp("us")
    return pa.table({
        "key": pa.array(keys, type=pa.uint64()),
        "messages_sent": messages_sent,
        "with_text": with_text,
        "dated": dated,
        "first_sent": pa.array(first, type=ts, mask=no_time),
        "last_sent": pa.array(last, type=ts, mask=no_time),
        "active_days": stats[:, 0],
        "weekend_sent": stats[:, 1],
        "night_sent": stats[:, 2],
        "awakening": stats[:, 3],
        # handed over as a LIST and cast to DOUBLE[168] in SQL: DuckDB 2.0 failed to store an Arrow
        # fixed-size list that went through the LEFT JOIN ("Cannot cast list with length 0 to array")
        "hour_profile": pa.FixedSizeListArray.from_arrays(
            pa.array(profile.reshape(-1)), 168, mask=pa.array(no_time)).cast(pa.list_(pa.float64())),
        "burstiness": pa.array(burstiness, mask=np.isnan(burstiness)),
        "median_daily": pa.array(median_daily, mask=np.isnan(median_daily)),
    })


def build_features(con: duckdb.DuckDBPyConnection, ctx: StageContext) -> int:
    """Build the ``features`` table: one row per account in ``accounts``.

    Requires ``messages``, ``accounts``, ``interactions`` (from :func:`build_interactions`) and
    ``message_templates`` / ``template_clusters`` (from :func:`build_templates`).

    Parameters
    ----------
    con
        Connection holding the tables above.
    ctx
        Run context; every row carries ``ctx.run_id``.

    Returns
    -------
    int
        Rows written (= accounts).
    """
    con.register("_feature_timelines", _timelines(con))
    try:
        con.execute(_SQL, {"run_id": ctx.run_id})
    finally:
        con.unregister("_feature_timelines")
    comment_table(con, TABLE, TABLE_DOC, COLUMN_DOCS)
    n = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0]
    ctx.info("features: %d accounts", n)
    return int(n)
