"""Pipeline stages of cross-account linkage: ``build_links`` and ``build_identities``.

``build_links`` (blocking → Fellegi–Sunter scoring → seed-and-extend rounds) writes

- ``blocking_rules``: pairs each blocking rule produced, and how many no earlier rule had produced;
- ``linkage_model``: the fitted model, m, u and weight of every comparison level plus the prior λ;
- ``candidate_pairs``: every scored candidate pair with its comparison levels;
- ``links``: pairs with probability ≥ ``LinkageSettings.link_threshold`` (0.5), with evidence.

``build_identities`` clusters ``links`` into ``identities`` (every account gets one row).

Settings: ``ctx.extras["linkage"]`` may hold a :class:`~reputation.linkage.blocking.LinkageSettings`.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from ..context import StageContext
from ..store import comment_table
from . import clustering
from .blocking import (
    ACCOUNTS,
    CANDIDATES,
    LinkageSettings,
    blocking_rule_counts,
    build_candidates,
    prepare_accounts,
    rules_sql,
    table_exists,
)
from .scoring import (
    COMPARISONS,
    KNOWN,
    FSModel,
    compress_patterns,
    compute_levels,
    estimate,
    forget_profiles,
    level_matrix,
    level_totals,
    model_rows,
    probability,
    sample_random_pairs,
)
from .seed_extend import extend, set_seed_links

CONTACT_COLUMNS = [i for i, c in enumerate(COMPARISONS) if c.name in ("contacts", "contact_match")]
"""Comparisons that use contacts through already-linked pairs (excluded when choosing seeds)."""
NAME_COLUMNS = [i for i, c in enumerate(COMPARISONS) if c.name in ("handle_name", "handle_digits")]
"""The comparisons of names (handle, display name, the numbers in a handle): anyone can copy them, an
impersonator or a namesake. Their positive weight links accounts (for analysts, and to cluster identities),
but carries no spam flag: a link's ``carry_probability`` leaves it out (see :func:`build_links`)."""


def linkage_settings(ctx: StageContext) -> LinkageSettings:
    """The linkage settings of a run: ``ctx.extras["linkage"]`` or the defaults."""
    s = ctx.extras.get("linkage") if ctx.extras else None
    return s if isinstance(s, LinkageSettings) else LinkageSettings()


def _register(con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, np.ndarray]) -> None:
    con.register(name, pa.table(columns))


def _score_round(con: duckdb.DuckDBPyConnection, s: LinkageSettings, n_accounts: int
                 ) -> tuple[FSModel, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Level the candidates and random pairs, fit the model; returns (model, a, b, match weight without
    the contact comparisons, match weight, match weight without the names' positive weight, declared) with
    one entry per candidate pair (ordered by a, b); ``declared`` marks the known links of the input."""
    compute_levels(con, CANDIDATES, "_lk_levels", s)
    compute_levels(con, "_lk_random", "_lk_random_levels", s)
    a, b, g = level_matrix(con, "_lk_levels")
    _, _, gr = level_matrix(con, "_lk_random_levels")
    known = con.sql("SELECT a, b FROM _lk_rule_pairs WHERE rule = 'known_link'").fetchnumpy()
    key = a.astype(np.int64) * (n_accounts + 1) + b
    kkey = np.asarray(known["a"], dtype=np.int64) * (n_accounts + 1) + np.asarray(known["b"], dtype=np.int64)
    fixed = np.isin(key, kkey)
    total = n_accounts * (n_accounts - 1) // 2
    model = estimate(g, gr, fixed, total, max_iter=s.em_iterations, level_totals=level_totals(con, s))
    # weights per distinct level pattern, spread to the pairs (millions of pairs, thousands of patterns)
    pat, _, _, inverse = compress_patterns(g)
    lw = model.level_weights(pat)
    mw = (model.prior_weight + lw.sum(axis=1))[inverse]
    mw_no_contacts = (model.prior_weight + lw.sum(axis=1) - lw[:, CONTACT_COLUMNS].sum(axis=1))[inverse]
    mw_no_names = (model.prior_weight + lw.sum(axis=1) - np.maximum(lw[:, NAME_COLUMNS], 0).sum(axis=1))[inverse]
    return model, a, b, mw_no_contacts, mw, mw_no_names, fixed


def build_links(con: duckdb.DuckDBPyConnection, ctx: StageContext) -> int:
    """Block, score and link accounts; write blocking_rules, linkage_model, candidate_pairs and links.

    Rows are ordered by account id pair, which is the order of (platform_a, account_a, platform_b,
    account_b) because ``aid`` numbers accounts in that order.

    Returns the number of rows written to ``links``.
    """
    s = linkage_settings(ctx)
    n = prepare_accounts(con)
    build_candidates(con, s)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {KNOWN} AS "
                "SELECT DISTINCT a, b FROM _lk_rule_pairs WHERE rule = 'known_link'")
    sample_random_pairs(con, n, s.random_pairs, s.seed)
    set_seed_links(con, "SELECT a, b FROM _lk_rule_pairs WHERE rule = 'known_link'")
    for rnd in range(s.seed_rounds + 1):
        model, a, b, mw_no_contacts, mw, mw_no_names, declared = _score_round(con, s, n)
        # a declared known link is a same-person pair by the input's word, whatever the comparisons say
        # (its match weight is kept, to show how much the data agree): EM holds it at posterior 1, and so
        # does the published probability
        p = np.where(declared, 1.0, probability(mw))
        ctx.info("linkage round %d: %d candidates, %d above %.2f, λ=%.3g, EM %d iterations (%s)",
                 rnd, len(a), int((p >= s.seed_threshold).sum()), s.seed_threshold, model.lam,
                 model.iterations, "converged" if model.converged else "stopped at the iteration cap")
        if rnd == s.seed_rounds:
            break
        # Seeds must not rest on contact evidence (that would feed seed-and-extend its own output).
        p_seed = probability(mw_no_contacts)
        keep = p_seed >= s.seed_threshold
        _register(con, "_lk_seed_arrow", {"a": a[keep], "b": b[keep]})
        set_seed_links(con, f"SELECT a, b FROM _lk_seed_arrow UNION SELECT a, b FROM {KNOWN}")
        con.unregister("_lk_seed_arrow")
        extend(con, s)

    _write_blocking_rules(con, ctx)
    _write_model(con, ctx, model)
    # what a spam flag carries over the link: its probability without the names' positive weight (NAME_COLUMNS)
    carry = np.where(declared, 1.0, probability(mw_no_names))
    _register(con, "_lk_score_arrow", {"a": a, "b": b, "probability": p, "match_weight": mw,
                                       "carry_probability": carry})
    level_cols = ", ".join(f"l.{c.name} AS {c.name}_level" for c in COMPARISONS)
    con.execute(f"""
        CREATE OR REPLACE TABLE candidate_pairs AS
        SELECT $run_id AS run_id, A.platform AS platform_a, A.account AS account_a,
               B.platform AS platform_b, B.account AS account_b,
               s.probability, s.match_weight, {rules_sql('c.rule_mask')} AS rules, l.shared AS shared_contacts,
               {level_cols}
        FROM _lk_score_arrow s
        JOIN _lk_levels l USING (a, b)
        JOIN {CANDIDATES} c USING (a, b)
        JOIN {ACCOUNTS} A ON A.aid = s.a
        JOIN {ACCOUNTS} B ON B.aid = s.b
        ORDER BY s.a, s.b
    """, {"run_id": ctx.run_id})
    unpivot_cols = ", ".join(c.name for c in COMPARISONS)
    con.execute(f"""
        CREATE OR REPLACE TABLE links AS
        WITH linked AS (SELECT * FROM _lk_score_arrow WHERE probability >= $threshold),
        lv AS (
            UNPIVOT (SELECT l.* FROM _lk_levels l SEMI JOIN linked USING (a, b))
            ON {unpivot_cols} INTO NAME comparison VALUE level
        ),
        ev AS (
            SELECT lv.a, lv.b,
                   list(struct_pack(comparison := lv.comparison, level := m.level,
                                    weight := round(m.weight, 4)) ORDER BY m.weight DESC, lv.comparison
                   )::JSON AS evidence
            FROM lv JOIN linkage_model m ON m.comparison = lv.comparison AND m.level_code = lv.level
            GROUP BY lv.a, lv.b
        )
        SELECT $run_id AS run_id, A.platform AS platform_a, A.account AS account_a,
               B.platform AS platform_b, B.account AS account_b,
               s.probability, s.match_weight, coalesce(ev.evidence, '[]'::JSON) AS evidence,
               {rules_sql('c.rule_mask')} AS rules, s.carry_probability
        FROM linked s
        LEFT JOIN ev USING (a, b)
        JOIN {CANDIDATES} c USING (a, b)
        JOIN {ACCOUNTS} A ON A.aid = s.a
        JOIN {ACCOUNTS} B ON B.aid = s.b
        ORDER BY s.a, s.b
    """, {"run_id": ctx.run_id, "threshold": s.link_threshold})
    con.unregister("_lk_score_arrow")
    forget_profiles(con)
    _document(con)
    _drop_working_tables(con)
    return con.execute("SELECT count(*) FROM links").fetchall()[0][0]


def _drop_working_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the stage's temporary ``_lk_*`` tables (they hold the candidate matrices in memory)."""
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND starts_with(table_name, '_lk_')"
    ).fetchall()]
    for name in names:
        con.execute(f'DROP TABLE IF EXISTS "{name}"')


def _write_blocking_rules(con: duckdb.DuckDBPyConnection, ctx: StageContext) -> None:
    rows = blocking_rule_counts(con)
    con.execute("CREATE OR REPLACE TABLE blocking_rules (run_id VARCHAR, rule VARCHAR, pairs BIGINT, "
                "new_pairs BIGINT)")
    if rows:
        con.executemany("INSERT INTO blocking_rules VALUES (?, ?, ?, ?)", [(ctx.run_id, *r) for r in rows])


def _write_model(con: duckdb.DuckDBPyConnection, ctx: StageContext, model: FSModel) -> None:
    rows = model_rows(model)
    con.execute("CREATE OR REPLACE TABLE linkage_model (run_id VARCHAR, comparison VARCHAR, level VARCHAR, "
                "level_code INTEGER, m DOUBLE, u DOUBLE, weight DOUBLE)")
    con.executemany("INSERT INTO linkage_model VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(ctx.run_id, *r) for r in rows])


def _document(con: duckdb.DuckDBPyConnection) -> None:
    pair_cols = {
        "run_id": "Run that wrote this row (see runs).",
        "platform_a": "Platform of the first account; (platform_a, account_a) < (platform_b, account_b).",
        "account_a": "First account id.",
        "platform_b": "Platform of the second account.",
        "account_b": "Second account id.",
        "probability": "Fellegi–Sunter match probability 2^M / (1 + 2^M), 0..1; 1 for a declared known link.",
        "match_weight": "Match weight M in bits: log2 prior odds + sum of comparison weights.",
        "rules": "Blocking rules that proposed the pair (see blocking_rules).",
    }
    comment_table(con, "blocking_rules",
                  "Candidate pairs per blocking rule of the linkage stage; new_pairs counts pairs no earlier "
                  "rule (in table order) had produced.",
                  {"run_id": pair_cols["run_id"], "rule": "Blocking rule name.",
                   "pairs": "Distinct account pairs the rule produced.",
                   "new_pairs": "Of those, pairs no earlier rule produced."})
    comment_table(con, "linkage_model",
                  "Fitted Fellegi–Sunter model: per comparison level m = P(level | same person), "
                  "u = P(level | different people), weight = log2(m/u) bits. The 'prior' row holds λ (m) "
                  "and its weight.",
                  {"run_id": pair_cols["run_id"], "comparison": "Comparison name.", "level": "Level label.",
                   "level_code": "Level code as stored in candidate_pairs.<comparison>_level.",
                   "m": "P(level | same person).", "u": "P(level | different people).",
                   "weight": "log2(m/u) in bits (prior row: log2(λ/(1−λ)))."})
    level_docs = {f"{c.name}_level": "Level code of comparison " + c.name + " (-1 not comparable; "
                  + ", ".join(f"{k} {v}" for k, v in sorted(c.labels.items(), reverse=True)) + ")."
                  for c in COMPARISONS}
    comment_table(con, "candidate_pairs", "Every candidate pair the linkage stage scored, with its levels.",
                  {**pair_cols, **level_docs,
                   "shared_contacts": "Contacts of account_a that are linked (seed links) to contacts of account_b "
                                      "(each contact of degree at most the contact cap counted once)."})
    comment_table(con, "links",
                  "Account pairs that may be the same person (match probability ≥ 0.5), with the evidence; "
                  "identities clusters them.",
                  {**pair_cols,
                   "evidence": "JSON list of {comparison, level, weight (bits)}, strongest first.",
                   "carry_probability": "The probability without the positive weight of the name comparisons "
                                        "(handle_name, handle_digits), which an impersonator or a namesake "
                                        "shares: what a flag carries over this link; 1 for a declared link."})


def build_identities(con: duckdb.DuckDBPyConnection, ctx: StageContext) -> int:
    """Cluster ``links`` into ``identities``: one row for every account in ``accounts``.

    Links are clustered by average linkage (:func:`reputation.linkage.clustering.cluster`): clusters
    merge while the mean link probability over all their cross pairs is at least
    ``identity_threshold`` (0.5), up to ``max_identity_size`` accounts; then a silent singleton (no
    message sent) joins the one identity it is linked into with probability ≥ ``attach_silent_probability``
    (:func:`reputation.linkage.clustering.attach_silent`). ``identity_id`` is a hash of
    the sorted members, so it is the same whenever the members are. Returns the number of rows written.
    """
    s = linkage_settings(ctx)
    n = con.execute("SELECT count(*) FROM (SELECT DISTINCT platform, account FROM accounts)").fetchall()[0][0]
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _lk_nodes AS
        SELECT (row_number() OVER (ORDER BY platform, account) - 1)::INTEGER AS node, platform, account
        FROM (SELECT DISTINCT platform, account FROM accounts)
    """)
    if table_exists(con, "links"):
        edges = con.sql("""
            SELECT x.node AS a, y.node AS b, l.probability, l.carry_probability
            FROM links l
            JOIN _lk_nodes x ON x.platform = l.platform_a AND x.account = l.account_a
            JOIN _lk_nodes y ON y.platform = l.platform_b AND y.account = l.account_b
            ORDER BY a, b
        """).fetchnumpy()
    else:
        edges = {"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64), "probability": np.zeros(0),
                 "carry_probability": np.zeros(0)}
    a, b = np.asarray(edges["a"], np.int64), np.asarray(edges["b"], np.int64)
    prob = np.asarray(edges["probability"], np.float64)
    carry_a, carry_b, carry = a, b, np.asarray(edges["carry_probability"], np.float64)
    if table_exists(con, "known_links"):  # declared same-person groups stay whole (chains, stars)
        declared = con.sql("""
            SELECT x.node AS a, y.node AS b
            FROM known_links k
            JOIN _lk_nodes x ON x.platform = k.platform_a AND x.account = k.account_a
            JOIN _lk_nodes y ON y.platform = k.platform_b AND y.account = k.account_b
            ORDER BY a, b
        """).fetchnumpy()
        a, b, prob = clustering.with_declared_cliques(n, a, b, prob, declared["a"], declared["b"],
                                                      max_size=s.max_identity_size)
        carry_a, carry_b, carry = clustering.with_declared_cliques(n, carry_a, carry_b, carry, declared["a"],
                                                                   declared["b"], max_size=s.max_identity_size)
    labels = clustering.cluster(n, a, b, prob, threshold=s.identity_threshold, max_size=s.max_identity_size)
    if s.attach_silent_probability <= 1.0 and table_exists(con, "features"):
        silent = con.sql("""
            SELECT coalesce(f.messages_sent, 0) = 0 AS silent
            FROM _lk_nodes n LEFT JOIN features f ON f.platform = n.platform AND f.account = n.account
            ORDER BY n.node
        """).fetchnumpy()["silent"]
        labels = clustering.attach_silent(labels, a, b, prob, np.asarray(silent, dtype=bool),
                                          min_probability=s.attach_silent_probability,
                                          max_size=s.max_identity_size)
    memb = clustering.membership(labels, a, b, prob)
    carry_memb = clustering.membership(labels, carry_a, carry_b, carry)
    _register(con, "_lk_label_arrow", {"node": np.arange(n, dtype=np.int32), "label": labels.astype(np.int64),
                                       "membership": memb, "carry_membership": carry_memb})
    con.execute("""
        CREATE OR REPLACE TABLE identities AS
        WITH m AS (
            SELECT n.platform, n.account, l.label, l.membership, l.carry_membership,
                   count(*) OVER (PARTITION BY l.label) AS size
            FROM _lk_nodes n JOIN _lk_label_arrow l USING (node)
        ), ids AS (
            SELECT label, 'id_' || left(md5(string_agg(platform || chr(31) || account, chr(30)
                                                       ORDER BY platform, account)), 20) AS identity_id
            FROM m GROUP BY label
        )
        SELECT $run_id AS run_id, ids.identity_id, m.platform, m.account, m.size,
               CASE WHEN m.size = 1 THEN 1.0 ELSE m.membership END AS membership,
               CASE WHEN m.size = 1 THEN 1.0 ELSE m.carry_membership END AS carry_membership
        FROM m JOIN ids USING (label)
        ORDER BY platform, account
    """, {"run_id": ctx.run_id})
    con.unregister("_lk_label_arrow")
    _drop_working_tables(con)
    comment_table(con, "identities",
                  "Accounts believed to be one person: every account has exactly one row (singletons "
                  "included). Clustered from links by average linkage (guard against chaining: "
                  "clusters merge only when their mean cross-pair link probability is at least "
                  f"{s.identity_threshold}; at most {s.max_identity_size} accounts); an account that "
                  "never sent a message also joins the one identity it is linked into with probability "
                  f"at least {s.attach_silent_probability}.",
                  {"run_id": "Run that wrote this row (see runs).",
                   "identity_id": "Identity id: hash of the sorted (platform, account) members.",
                   "platform": "Platform.", "account": "Account id.",
                   "size": "Accounts in the identity.",
                   "membership": "Mean link probability between the account and the other members "
                                 "(unlinked members count 0), 0..1; 1 for a singleton.",
                   "carry_membership": "The same over the links' carry_probability (names left out): how "
                                       "strongly flags of members it has no link with carry to it."})
    return n
