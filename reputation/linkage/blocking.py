"""Candidate pairs for cross-account linkage (blocking), set-wise in DuckDB.

Comparing every account with every other is quadratic; blocking keeps only pairs that share at least one
cheap key. Each *blocking rule* below is a small pure function returning a ``SELECT a, b`` over the
integer account ids of :func:`prepare_accounts` (always ``a < b``). :func:`build_candidates` runs the
rules in order, records every (rule, pair) in ``_lk_rule_pairs`` and counts, per rule, the pairs it
produced and the pairs no earlier rule had produced (``blocking_rules``).

Keys that many accounts share carry little information and blow up the pair count (a NAT'd IP shared
by 300 accounts alone gives 45,000 pairs), so every rule skips keys held by more than a cap of
accounts; the scoring model still compares such values as weak evidence.

Rules (in order):

``known_link``
    Known same-person pairs from the ``known_links`` input.
``identifier``
    A shared email / phone / device / IP hash held by at most ``identifier_block_cap`` accounts.
``handle``
    Equal normalised handle (lower case, digits and punctuation stripped: ``j.smith`` and
    ``jsmith82`` both become ``jsmith``).
``handle_qgram``
    Handles sharing most of their rare character 3-grams (``johnsmith`` / ``smithjohn``).
``display_name``
    Equal display-name token set (``John Smith`` / ``smith john``).
``name_key``
    A shared name key: a name part found in the handle or display name plus the initial of another
    (``j.pena1973``, ``James Pena`` and ``pena_james`` all give ``pena:j``); see
    :func:`prepare_name_parts`.
``template``
    Accounts sending the same near-duplicate text cluster (``templates.template_id``) when the
    template is rare (at most ``template_block_cap`` accounts).
``activity``
    Cross-platform accounts whose three busiest hours of the week coincide (coarse bucket of the
    hour-of-week profile), in buckets of at most ``activity_block_cap`` accounts.
``name_pair``
    Two shared full name parts (``james`` + ``pena``) held together by at most ``name_pair_cap``
    accounts: far rarer than a name key, so common last names stay blockable as the world grows.
``name_digits``
    A shared name key together with a shared handle digit group (``pena:j`` + ``1973``), for name keys
    too common for the ``name_key`` rule.
``campaign_name``
    Accounts in the same campaign (``campaigns``: lockstep groups of one operator) sharing a name key, however
    common the key: the campaign is the block, so a name key too common for the ``name_key`` rule in a large
    world (``dunn:j``) still pairs a persona's accounts inside its operator's campaign.
``contact_overlap``
    Added by seed-and-extend (:mod:`reputation.linkage.seed_extend`): pairs whose contacts are
    already-linked pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

ACCOUNTS = "_lk_accounts"
IDENTS = "_lk_ident"
TEMPLATES = "_lk_templates"
#: Per account: how many of its templates no other account sent (``aid``, ``solo``).
TEMPLATE_SOLO = "_lk_template_solo"
CONTACTS = "_lk_contacts"
RULE_PAIRS = "_lk_rule_pairs"
CANDIDATES = "_lk_candidates"
NAME_PARTS = "_lk_name_parts"
NAME_KEYS = "_lk_name_keys"
NAME_PAIRS = "_lk_name_pairs"
PEAK_HOURS = "_lk_peak_hours"


@dataclass(frozen=True)
class LinkageSettings:
    """Tunable parameters of blocking, scoring and clustering.

    The defaults were tuned on generated default worlds (seeds 0–2) and checked on a 20,000-account
    world; a pipeline can override them through ``ctx.extras["linkage"]``.
    """

    identifier_block_cap: int = 8
    """Identifier values shared by more accounts are not blocking keys (still compared, weakly)."""
    handle_block_cap: int = 30
    """Normalised handles held by more accounts are not blocking keys."""
    qgram_df_cap: int = 60
    """Handle 3-grams held by more accounts are ignored by the q-gram rule."""
    qgram_min_share: float = 0.7
    """Share of the shorter handle's rare 3-grams the pair must have in common."""
    name_block_cap: int = 30
    """Display-name token sets held by more accounts are not blocking keys."""
    rare_name_accounts: int = 4
    """A name key held by at most this many accounts counts as rare (term-frequency adjustment)."""
    rare_pair_accounts: int = 0
    """Two full name parts (``james|pena``) held together by at most this many accounts count as a rare
    name too (level ``first_and_last_rare``); 0 = off. Name keys (last name × initial) grow common as the
    world grows, full-name pairs far more slowly. Measured on a 1M-message world (15k accounts): 6 raises
    pairwise recall 0.86 → 0.89 but costs precision 0.984 → 0.958 (4: 0.85 / 0.972), so it is off."""
    name_key_cap: int = 25
    """Name keys (name part + initial of another part) held by more accounts are not blocking keys (for the
    ``campaign_name`` rule: held by more accounts of one campaign)."""
    name_pair_cap: int = 40
    """Full-name pairs (two name parts of ≥ 2 letters, e.g. ``james|pena``) held by more accounts are not
    blocking keys. Far rarer than name keys (first × last name rather than last name × initial), so the
    rule keeps common names blockable as the world grows."""
    name_digits_cap: int = 0
    """Name keys combined with a handle digit group (``pena:j#1973``) held by more accounts are skipped;
    0 = rule off. Off by default: on a 10M-message world (147k accounts) a cap of 25 raised pairwise recall
    0.59 → 0.67 but cut precision 0.984 → 0.898 (cap 5: 0.64 / 0.916), and on 1M and the default world it
    changed nothing measurable."""
    template_block_cap: int = 5
    """Templates sent by more accounts are not blocking keys (templates shared by more accounts are
    campaign texts: they explode the pair count as the world grows and add almost no true links)."""
    template_compare_cap: int = 100
    """Templates sent by more accounts are ignored by the template comparison (weight ≤ 1/log2(101))."""
    activity_block_cap: int = 20
    """Peak-hour buckets holding more accounts are skipped."""
    activity_min_messages: int = 10
    """Accounts with fewer sent messages have no meaningful activity profile."""
    contact_degree_cap: int = 60
    """Contacts with more distinct partners (hubs, spam targets) are ignored by contact overlap."""
    contact_min_shared: int = 2
    """Linked contacts a pair must share to become a contact-overlap candidate."""
    seed_rounds: int = 1
    """Seed-and-extend rounds after the first scoring."""
    random_pairs: int = 100_000
    """Random account pairs used to estimate u probabilities."""
    em_iterations: int = 40
    """Maximum expectation-maximisation iterations."""
    link_threshold: float = 0.5
    """Pairs with at least this match probability are written to ``links``."""
    identity_threshold: float = 0.5
    """Clusters merge into one identity while their mean cross-pair link probability is at least this."""
    seed_threshold: float = 0.9
    """Pairs at least this probable without contact evidence seed seed-and-extend."""
    max_identity_size: int = 12
    """Upper bound on accounts in one identity (guard against chaining)."""
    attach_silent_probability: float = 0.9
    """An account that never sent a message, alone after clustering, joins the one identity it is linked
    into with at least this probability (its behaviour cannot link it to the other members); > 1 turns
    it off."""
    seed: int = 0
    """Seed of the random-pair sample (the stage is deterministic for a given seed)."""


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? "
        "UNION ALL SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [table, table]
    ).fetchall()
    return sum(r[0] for r in row) > 0


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` (or a view of that name) exists on ``con``."""
    return _exists(con, table)


def prepare_accounts(con: duckdb.DuckDBPyConnection) -> int:
    """Create the linkage working tables and return the number of accounts.

    ``_lk_accounts`` gives every (platform, account) a dense integer id ``aid`` (ordered by platform,
    account, so deterministic), normalised handle and name keys, the activity columns of
    ``features`` and the ``campaign`` (an integer per ``campaigns.campaign_id``, NULL if none) when those
    tables exist.
    ``_lk_ident`` holds the identifier hashes by ``aid``,
    ``_lk_templates`` the template sets with their account counts, ``_lk_contacts`` the undirected
    *reciprocated* direct-message contacts (real conversations; unanswered spam is no relationship),
    with each contact's degree (hubs above the degree cap are excluded later).
    """
    # level cache of the previous run on this connection (see scoring.compute_levels)
    con.execute("DROP TABLE IF EXISTS _lk_static_levels")
    UNIT_PROFILES.pop(id(con), None)
    has_features = _exists(con, "features")
    feat_cols = (
        "f.messages_sent, f.first_at, f.last_at"
        if has_features else
        "NULL::BIGINT AS messages_sent, NULL::TIMESTAMP AS first_at, NULL::TIMESTAMP AS last_at"
    )
    feat_join = "LEFT JOIN features f ON f.platform = a.platform AND f.account = a.account" if has_features \
        else ""
    # Campaign membership as a small integer (the campaigns stage puts an account in at most one campaign;
    # min() keeps one should a future campaigns stage allow more).
    if _exists(con, "campaigns"):
        camp_col = "c.campaign"
        camp_join = ("LEFT JOIN (SELECT platform, account, dense_rank() OVER (ORDER BY campaign_id)::INTEGER "
                     "AS campaign FROM (SELECT platform, account, min(campaign_id) AS campaign_id FROM campaigns "
                     "GROUP BY ALL)) c ON c.platform = a.platform AND c.account = a.account")
    else:
        camp_col, camp_join = "NULL::INTEGER AS campaign", ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ACCOUNTS} AS
        WITH base AS (
            SELECT a.platform, a.account, a.created_at,
                   nullif(lower(trim(a.handle)), '') AS handle_lower,
                   nullif(regexp_replace(lower(a.handle), '[^\\pL]', '', 'g'), '') AS handle_norm,
                   nullif(trim(regexp_replace(regexp_replace(lower(a.display_name), '[^\\pL ]', ' ', 'g'),
                                              ' +', ' ', 'g')), '') AS name_clean,
                   {feat_cols}, {camp_col}
            FROM (SELECT DISTINCT ON (platform, account) * FROM accounts ORDER BY platform, account) a
            {feat_join}
            {camp_join}
        )
        SELECT row_number() OVER (ORDER BY platform, account)::INTEGER AS aid, *,
               regexp_extract_all(handle_lower, '[0-9]{{2,}}') AS handle_digits,
               CASE WHEN name_clean IS NOT NULL
                    THEN array_to_string(list_sort(list_distinct(string_split(name_clean, ' '))), ' ')
               END AS name_key
        FROM base
    """)
    if _exists(con, "identifiers"):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {IDENTS} AS
            SELECT *, dense_rank() OVER (ORDER BY kind, value_hash)::INTEGER AS vid FROM (
                SELECT a.aid, i.kind, i.value_hash, max(i.accounts_sharing) AS accounts_sharing
                FROM identifiers i JOIN {ACCOUNTS} a USING (platform, account)
                WHERE i.value_hash IS NOT NULL
                GROUP BY ALL)
        """)
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {IDENTS} (aid INTEGER, kind VARCHAR, value_hash VARCHAR, "
                    "accounts_sharing BIGINT, vid INTEGER)")
    if _exists(con, "templates"):
        # Only templates two or more accounts sent can pair accounts; the one-account templates (most of
        # them: every one-off text is its own template) only count towards each account's template
        # weight, so they are kept as a count per account instead of a row each.
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _lk_tshare AS
            SELECT template_id, count(*) AS accounts_with FROM templates GROUP BY template_id HAVING count(*) >= 2
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {TEMPLATES} AS
            SELECT a.aid, t.template_id, t.messages, s.accounts_with
            FROM templates t JOIN _lk_tshare s USING (template_id) JOIN {ACCOUNTS} a USING (platform, account)
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {TEMPLATE_SOLO} AS
            SELECT a.aid, x.solo
            FROM (SELECT t.platform, t.account, count(*) FILTER (WHERE s.template_id IS NULL) AS solo
                  FROM templates t LEFT JOIN _lk_tshare s USING (template_id)
                  GROUP BY t.platform, t.account) x
            JOIN {ACCOUNTS} a USING (platform, account)
            WHERE x.solo > 0
        """)
        con.execute("DROP TABLE _lk_tshare")
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {TEMPLATES} (aid INTEGER, template_id VARCHAR, "
                    "messages BIGINT, accounts_with BIGINT)")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {TEMPLATE_SOLO} (aid INTEGER, solo BIGINT)")
    if _exists(con, "interactions"):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {CONTACTS} AS
            WITH e AS (
                SELECT s.aid AS x, r.aid AS y
                FROM interactions i
                JOIN {ACCOUNTS} s ON s.platform = i.platform AND s.account = i.sender
                JOIN {ACCOUNTS} r ON r.platform = i.platform AND r.account = i.recipient
                WHERE i.kind = 'direct' AND i.reciprocated AND s.aid <> r.aid
            ), u AS (SELECT x, y FROM e UNION SELECT y, x FROM e)
            SELECT x, y, count(*) OVER (PARTITION BY y) AS contact_degree FROM u
        """)
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {CONTACTS} (x INTEGER, y INTEGER, contact_degree BIGINT)")
    prepare_name_parts(con)
    return con.execute(f"SELECT count(*) FROM {ACCOUNTS}").fetchall()[0][0]


def prepare_name_parts(con: duckdb.DuckDBPyConnection) -> None:
    """Derive name parts from handles and display names: ``_lk_name_parts`` and ``_lk_name_keys``.

    Handles are usually built from the owner's name (``j.pena1973``, ``lauren_meyer``, ``nsimpson_x``,
    ``walterjohansson20``). The vocabulary of name words is every display-name token (any platform);
    a handle contributes its tokens (split on digits and punctuation) that are vocabulary words, its
    one-letter tokens as initials, and its other tokens split in two where both halves are vocabulary
    words or one is a single letter (``nsimpson`` → ``n`` + ``simpson``). Handle decorations
    (``_biz``, ``_x``) are no name words and drop out. ``_lk_name_parts`` (aid, part, full) holds full
    parts (≥ 2 letters) and initials; ``_lk_name_keys`` (aid, key, accounts_with) holds
    ``part:initial-of-another-part`` keys, e.g. ``pena:j`` for both ``j.pena1973`` and ``James Pena``;
    ``_lk_name_pairs`` (aid, p1, p2, accounts_with) every pair of an account's full parts (part ids
    ``p1 < p2``), e.g. ``james|pena``.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _lk_vocab AS
        SELECT DISTINCT tok FROM (SELECT unnest(string_split(name_clean, ' ')) AS tok FROM {ACCOUNTS})
        WHERE length(tok) >= 2
    """)
    con.execute(rf"""
        CREATE OR REPLACE TEMP TABLE {NAME_PARTS} AS
        WITH htok AS (
            SELECT aid, tok FROM (
                SELECT aid, unnest(regexp_split_to_array(handle_lower, '[^\pL]+')) AS tok FROM {ACCOUNTS}
                WHERE handle_lower IS NOT NULL)
            WHERE length(tok) >= 1
        ), dtok AS (
            SELECT aid, unnest(string_split(name_clean, ' ')) AS tok
            FROM {ACCOUNTS} WHERE name_clean IS NOT NULL
        ), whole AS (
            SELECT aid, tok AS part FROM htok SEMI JOIN _lk_vocab USING (tok)
            UNION ALL SELECT aid, tok FROM htok WHERE length(tok) = 1
            UNION ALL SELECT aid, tok FROM dtok WHERE length(tok) >= 1
        ), splits AS (
            SELECT aid, left(tok, i) AS x, substr(tok, i + 1) AS y
            FROM (SELECT aid, tok, unnest(range(1, length(tok))) AS i
                  FROM htok ANTI JOIN _lk_vocab USING (tok) WHERE length(tok) >= 3)
        ), good AS (
            SELECT s.aid, s.x, s.y FROM splits s
            LEFT JOIN _lk_vocab vx ON vx.tok = s.x
            LEFT JOIN _lk_vocab vy ON vy.tok = s.y
            WHERE (vx.tok IS NOT NULL OR length(s.x) = 1) AND (vy.tok IS NOT NULL OR length(s.y) = 1)
              AND length(s.x) + length(s.y) > 2
        ), parts AS (
            SELECT aid, part FROM whole
            UNION ALL SELECT aid, x FROM good UNION ALL SELECT aid, y FROM good
        )
        SELECT *, dense_rank() OVER (ORDER BY part)::INTEGER AS pid
        FROM (SELECT DISTINCT aid, part, length(part) >= 2 AS "full" FROM parts)
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {NAME_KEYS} AS
        WITH k AS (
            SELECT DISTINCT p.aid, p.part || ':' || left(q.part, 1) AS key
            FROM {NAME_PARTS} p JOIN {NAME_PARTS} q ON q.aid = p.aid AND q.part <> p.part
            WHERE p."full"
        )
        SELECT aid, key, count(*) OVER (PARTITION BY key) AS accounts_with,
               dense_rank() OVER (ORDER BY key)::INTEGER AS kid
        FROM k
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {NAME_PAIRS} AS
        WITH k AS (
            SELECT DISTINCT p.aid, p.pid AS p1, q.pid AS p2
            FROM {NAME_PARTS} p JOIN {NAME_PARTS} q ON q.aid = p.aid AND p.pid < q.pid
            WHERE p."full" AND q."full"
        )
        SELECT *, count(*) OVER (PARTITION BY p1, p2) AS accounts_with FROM k
    """)


# --- blocking rules: each returns (sql, params) selecting distinct (a, b) with a < b -----------------

def rule_known_link(s: LinkageSettings) -> tuple[str, list]:
    """Known same-person pairs (either order in the input)."""
    return f"""
        SELECT DISTINCT least(x.aid, y.aid) AS a, greatest(x.aid, y.aid) AS b
        FROM known_links k
        JOIN {ACCOUNTS} x ON x.platform = k.platform_a AND x.account = k.account_a
        JOIN {ACCOUNTS} y ON y.platform = k.platform_b AND y.account = k.account_b
        WHERE x.aid <> y.aid
    """, []


def rule_identifier(s: LinkageSettings) -> tuple[str, list]:
    """A shared identifier hash held by few accounts (NAT IPs and shared devices skipped)."""
    return f"""
        SELECT DISTINCT x.aid AS a, y.aid AS b
        FROM {IDENTS} x JOIN {IDENTS} y
          ON x.vid = y.vid AND x.aid < y.aid
        WHERE x.accounts_sharing <= ?
    """, [s.identifier_block_cap]


def _group_rule(column: str, cap: int, min_len: int = 3) -> tuple[str, list]:
    return f"""
        WITH k AS (
            SELECT aid, {column} AS key, count(*) OVER (PARTITION BY {column}) AS n
            FROM {ACCOUNTS} WHERE length({column}) >= ?
        )
        SELECT x.aid AS a, y.aid AS b
        FROM k x JOIN k y ON x.key = y.key AND x.aid < y.aid
        WHERE x.n <= ?
    """, [min_len, cap]


def rule_handle(s: LinkageSettings) -> tuple[str, list]:
    """Equal normalised handle (digits and punctuation stripped, lower case)."""
    return _group_rule("handle_norm", s.handle_block_cap)


def rule_display_name(s: LinkageSettings) -> tuple[str, list]:
    """Equal set of display-name tokens."""
    return _group_rule("name_key", s.name_block_cap)


def rule_handle_qgram(s: LinkageSettings) -> tuple[str, list]:
    """Handles sharing at least ``qgram_min_share`` of the shorter handle's rare 3-grams."""
    return f"""
        WITH g AS (
            SELECT aid, unnest(list_distinct([substr(handle_norm, i, 3)
                                              FOR i IN range(1, length(handle_norm) - 1)])) AS gram
            FROM {ACCOUNTS} WHERE length(handle_norm) >= 5
        ), gn AS (SELECT *, count(*) OVER (PARTITION BY aid) AS grams,
                            count(*) OVER (PARTITION BY gram) AS df FROM g),
        shared AS (
            SELECT x.aid AS a, y.aid AS b, count(*) AS n, min(least(x.grams, y.grams)) AS shorter
            FROM gn x JOIN gn y ON x.gram = y.gram AND x.aid < y.aid
            WHERE x.df <= ?
            GROUP BY ALL
        )
        SELECT a, b FROM shared WHERE n >= greatest(2, ceil(? * shorter))
    """, [s.qgram_df_cap, s.qgram_min_share]


def rule_name_key(s: LinkageSettings) -> tuple[str, list]:
    """A shared name key (a name part plus the initial of another, e.g. ``pena:j``) held by few accounts."""
    return f"""
        SELECT DISTINCT x.aid AS a, y.aid AS b
        FROM {NAME_KEYS} x JOIN {NAME_KEYS} y ON x.kid = y.kid AND x.aid < y.aid
        WHERE x.accounts_with <= ?
    """, [s.name_key_cap]


def rule_name_pair(s: LinkageSettings) -> tuple[str, list]:
    """Two shared full name parts (``james`` and ``pena`` from ``jamespena82``, ``pena.james`` or ``James Pena``).

    A first-name × last-name pair is far rarer than a name key (last name × initial), so it stays a useful
    key when common name keys exceed ``name_key_cap`` in large worlds.
    """
    return f"""
        SELECT DISTINCT x.aid AS a, y.aid AS b
        FROM {NAME_PAIRS} x JOIN {NAME_PAIRS} y ON x.p1 = y.p1 AND x.p2 = y.p2 AND x.aid < y.aid
        WHERE x.accounts_with <= ?
    """, [s.name_pair_cap]


def rule_name_digits(s: LinkageSettings) -> tuple[str, list]:
    """A shared name key together with a shared handle digit group (``j.pena1973`` / ``pena_j1973``)."""
    return f"""
        WITH k AS (
            SELECT DISTINCT n.aid, n.kid, d.digits
            FROM {NAME_KEYS} n
            JOIN (SELECT aid, unnest(handle_digits) AS digits FROM {ACCOUNTS}) d USING (aid)
        ), kn AS (SELECT *, count(*) OVER (PARTITION BY kid, digits) AS n FROM k)
        SELECT DISTINCT x.aid AS a, y.aid AS b
        FROM kn x JOIN kn y ON x.kid = y.kid AND x.digits = y.digits AND x.aid < y.aid
        WHERE x.n <= ?
    """, [s.name_digits_cap]


def rule_campaign_name(s: LinkageSettings) -> tuple[str, list]:
    """A shared name key inside one campaign (keys held by more than ``name_key_cap`` of the campaign's
    accounts are skipped; campaigns are small, so that is rare)."""
    return f"""
        WITH k AS (
            SELECT n.aid, n.kid, a.campaign, count(*) OVER (PARTITION BY a.campaign, n.kid) AS n
            FROM {NAME_KEYS} n JOIN {ACCOUNTS} a USING (aid) WHERE a.campaign IS NOT NULL
        )
        SELECT DISTINCT x.aid AS a, y.aid AS b
        FROM k x JOIN k y ON x.campaign = y.campaign AND x.kid = y.kid AND x.aid < y.aid
        WHERE x.n <= ?
    """, [s.name_key_cap]


def rule_template(s: LinkageSettings) -> tuple[str, list]:
    """Accounts sharing a rare near-duplicate text cluster."""
    return f"""
        SELECT DISTINCT x.aid AS a, y.aid AS b
        FROM {TEMPLATES} x JOIN {TEMPLATES} y ON x.template_id = y.template_id AND x.aid < y.aid
        WHERE x.accounts_with <= ?
    """, [s.template_block_cap]


def activity_profiles(con: duckdb.DuckDBPyConnection, min_messages: int, unit: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Hour-of-week profiles of the accounts with at least ``min_messages`` sent messages.

    Returns (row of every ``aid`` in the matrix, or -1; profile matrix accounts × 168, scaled to unit
    length when ``unit``). Read through Arrow in one piece: no per-account Python work.
    """
    n = con.execute(f"SELECT coalesce(max(aid), 0) FROM {ACCOUNTS}").fetchall()[0][0]
    row = np.full(n + 1, -1, dtype=np.int64)
    if not _exists(con, "features"):
        return row, np.zeros((0, 168))
    # read from features, not copied into _lk_accounts (168 doubles per account)
    t = con.sql(f"""
        SELECT a.aid, f.hour_profile::DOUBLE[] AS hour_profile
        FROM {ACCOUNTS} a JOIN features f ON f.platform = a.platform AND f.account = a.account
        WHERE a.messages_sent >= ? AND f.hour_profile IS NOT NULL ORDER BY a.aid
    """, params=[min_messages]).to_arrow_table()
    if t.num_rows == 0:
        return row, np.zeros((0, 168))
    aid = t.column("aid").to_numpy()
    lists = t.column("hour_profile").combine_chunks()
    lengths = np.diff(lists.offsets.to_numpy())
    if len(set(lengths.tolist())) != 1:
        raise ValueError("hour_profile must have the same length for every account")
    prof = lists.flatten().to_numpy(zero_copy_only=False).astype(np.float64, copy=False).reshape(len(aid), -1)
    if unit:
        with np.errstate(invalid="ignore", divide="ignore"):
            prof = prof / np.sqrt(np.einsum("ij,ij->i", prof, prof))[:, None]
    row[aid] = np.arange(len(aid))
    return row, prof


UNIT_PROFILES: dict[int, tuple[np.ndarray, np.ndarray]] = {}
"""Unit-length activity profiles per connection (id), left by :func:`prepare_peak_hours` for the activity
comparison of the same run (read once: 168 values per account)."""


def prepare_peak_hours(con: duckdb.DuckDBPyConnection, s: LinkageSettings) -> int:
    """``_lk_peak_hours`` (aid, platform, h1 < h2 < h3): each active account's three busiest hours of the week.

    Ties go to the earlier hour. Three vectorised argmax passes over the profile matrix (sorting 168
    values per account in SQL cost more than the rest of blocking). Returns the number of accounts.
    """
    row, prof = activity_profiles(con, s.activity_min_messages)
    aid = np.flatnonzero(row >= 0).astype(np.int32)
    with np.errstate(invalid="ignore", divide="ignore"):
        UNIT_PROFILES[id(con)] = (row, prof / np.sqrt(np.einsum("ij,ij->i", prof, prof))[:, None])
    prof = prof.copy()
    top = np.empty((len(aid), 3), dtype=np.int16)
    r = np.arange(len(aid))
    for j in range(3):
        top[:, j] = np.argmax(prof, axis=1) if len(aid) else 0
        prof[r, top[:, j]] = -np.inf
    top.sort(axis=1)
    con.register("_lk_peak_arrow", pa.table({"aid": aid, "h1": top[:, 0], "h2": top[:, 1], "h3": top[:, 2]}))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {PEAK_HOURS} AS
        SELECT p.aid, a.platform, p.h1, p.h2, p.h3 FROM _lk_peak_arrow p JOIN {ACCOUNTS} a USING (aid)
    """)
    con.unregister("_lk_peak_arrow")
    return len(aid)


def rule_activity(s: LinkageSettings) -> tuple[str, list]:
    """Cross-platform accounts with the same three busiest hours of the week (see :func:`prepare_peak_hours`)."""
    return f"""
        WITH k AS (SELECT *, count(*) OVER (PARTITION BY h1, h2, h3) AS n FROM {PEAK_HOURS})
        SELECT x.aid AS a, y.aid AS b
        FROM k x JOIN k y ON x.h1 = y.h1 AND x.h2 = y.h2 AND x.h3 = y.h3 AND x.aid < y.aid
                         AND x.platform <> y.platform
        WHERE x.n <= ?
    """, [s.activity_block_cap]


RULES: tuple[tuple[str, Callable[[LinkageSettings], tuple[str, list]]], ...] = (
    ("known_link", rule_known_link),
    ("identifier", rule_identifier),
    ("handle", rule_handle),
    ("handle_qgram", rule_handle_qgram),
    ("display_name", rule_display_name),
    ("name_key", rule_name_key),
    ("template", rule_template),
    ("activity", rule_activity),
    ("name_pair", rule_name_pair),
    ("name_digits", rule_name_digits),
    ("campaign_name", rule_campaign_name),
)
"""Blocking rules in the order their ``new_pairs`` are counted."""

CONTACT_RULE = "contact_overlap"


def add_rule_pairs(con: duckdb.DuckDBPyConnection, rule: str, order: int, sql: str, params: list) -> None:
    """Append the pairs selected by ``sql`` to ``_lk_rule_pairs`` under ``rule``."""
    con.execute(f"INSERT INTO {RULE_PAIRS} SELECT ?, ?, a, b FROM ({sql}) WHERE a < b",
                [rule, order, *params])


def rule_names() -> list[str]:
    """Every rule name by its ``rule_order`` (the blocking rules, then contact overlap)."""
    return [name for name, _ in RULES] + [CONTACT_RULE]


def rules_sql(mask: str) -> str:
    """SQL turning the rule bit mask column ``mask`` of ``_lk_candidates`` into the sorted list of rule names."""
    items = ", ".join(f"{{'name': '{name}', 'bit': {1 << order}}}"
                      for order, name in sorted(enumerate(rule_names()), key=lambda x: x[1]))
    return f"[r.name FOR r IN [{items}] IF ({mask} & r.bit) <> 0]"


def refresh_candidates(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild ``_lk_candidates`` (a, b, rule_mask, first_rule) from ``_lk_rule_pairs``; returns its size.

    ``rule_mask`` has bit ``rule_order`` set for every rule that proposed the pair (an integer
    aggregate is far cheaper than a list of names per pair; :func:`rules_sql` spells it out).
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {CANDIDATES} AS
        SELECT a, b, bit_or(1 << rule_order) AS rule_mask, min(rule_order) AS first_rule
        FROM {RULE_PAIRS} GROUP BY a, b
    """)
    return con.execute(f"SELECT count(*) FROM {CANDIDATES}").fetchall()[0][0]


def build_candidates(con: duckdb.DuckDBPyConnection, settings: LinkageSettings) -> int:
    """Run every blocking rule (except contact overlap) and build ``_lk_candidates``.

    Requires :func:`prepare_accounts`. Returns the number of distinct candidate pairs.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {RULE_PAIRS} "
                "(rule VARCHAR, rule_order INTEGER, a INTEGER, b INTEGER)")
    prepare_peak_hours(con, settings)
    for order, (name, rule) in enumerate(RULES):
        if name == "known_link" and not _exists(con, "known_links"):
            continue
        sql, params = rule(settings)
        add_rule_pairs(con, name, order, sql, params)
    return refresh_candidates(con)


def blocking_rule_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int]]:
    """Per rule that produced pairs: (rule, pairs it produced, pairs no earlier rule produced), in rule order.

    Counted in one pass over ``_lk_candidates`` from the rule bit masks.
    """
    names = rule_names()
    cols = ", ".join(f"count(*) FILTER (WHERE rule_mask & {1 << o} <> 0), count(*) FILTER (WHERE first_rule = {o})"
                     for o in range(len(names)))
    row = con.execute(f"SELECT {cols} FROM {CANDIDATES}").fetchall()[0]
    return [(name, row[2 * o], row[2 * o + 1]) for o, name in enumerate(names) if row[2 * o] > 0]
