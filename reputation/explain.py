"""Why an account got its score: evidence gathered from the run's tables, for a terminal, JSON or GraphML.

:func:`explain` returns a JSON-serialisable dict (direct flags, override, linked accounts and why they are
linked, campaigns, standout behaviour vs the platform's typical account, the log-odds contribution of
each kind of evidence). :func:`render_text` formats it for a terminal; :func:`evidence_graph` builds the
account's evidence neighbourhood as a networkx graph and :func:`write_graphml` saves it for Gephi or
yEd. Explanations are for analysts of the run's database: unlike exports, they name linked accounts.

Example
-------
>>> import duckdb
>>> con = duckdb.connect()
>>> try:
...     explain(con, "p", "nobody")
... except AccountNotFound as exc:
...     print(exc)
'p:nobody' is not in the reputation table; run the pipeline first or check PLATFORM:ACCOUNT
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import networkx as nx

from .scoring.propagation import table_exists

#: Numeric features compared with the platform's median account: (column, description).
STANDOUT_FEATURES: tuple[tuple[str, str], ...] = (
    ("messages_sent", "messages sent"),
    ("fan_out", "distinct recipients"),
    ("fan_in", "distinct senders to it"),
    ("reply_rate", "share of recipients who wrote back"),
    ("unsolicited_rate", "share of contacts opened unsolicited"),
    ("template_share", "share of near-copy messages"),
    ("weekend_share", "share of messages at the weekend"),
    ("night_share", "share of messages at night (UTC)"),
    ("burstiness", "burstiness of sending"),
    ("dormancy_burst", "dormancy then burst"),
    ("account_age_days", "account age at first message, days"),
    ("direct_share", "share of direct messages"),
)
#: A feature stands out when |value − median| exceeds this many interquartile ranges.
STANDOUT_IQRS = 1.0
#: Smallest spread used when the interquartile range is (near) zero.
MIN_SPREAD = 0.05


class AccountNotFound(KeyError):
    """The account has no row in ``reputation``."""

    def __str__(self) -> str:
        return str(self.args[0])


def _rows(con: duckdb.DuckDBPyConnection, q: str, params: list | dict | None = None) -> list[dict[str, Any]]:
    res = con.execute(q, params)
    names = [d[0] for d in res.description]
    return [{k: _jsonable(v) for k, v in zip(names, row, strict=True)} for row in res.fetchall()]


def _jsonable(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, float):
        return round(v, 6)
    return v


def _loads(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def explain(con: duckdb.DuckDBPyConnection, platform: str, account: str) -> dict[str, Any]:
    """Gather the evidence behind ``platform:account``'s reputation.

    Parameters
    ----------
    con
        Connection to a run's database (read-only is enough).
    platform, account
        The account to explain.

    Returns
    -------
    dict
        Keys: ``account`` (platform, account, score, verdict, confidence, identity_id, reason_text,
        valid_until, run_id), ``reasons`` (list of {kind, source_platform, contribution}),
        ``contributions`` (log-odds per evidence kind, ``base`` included), ``direct_flags``,
        ``override``, ``linked_accounts`` (with link probability, the probability a spam flag carries
        over — names left out —, evidence and their own verdicts),
        ``campaigns``, ``standout_features``, ``propagated`` (graph contribution, log-odds) and
        ``after_as_of`` (when the run replayed a pinned as_of: that time and how many of the account's flags
        and overrides, dated after it, it did not count; None otherwise). The flags and override shown
        are the ones the run counted.

    Raises
    ------
    AccountNotFound
        When the account has no reputation row.
    """
    if not table_exists(con, "reputation"):
        raise AccountNotFound(f"'{platform}:{account}' is not in the reputation table; run the pipeline first "
                              "or check PLATFORM:ACCOUNT")
    key = [platform, account]
    rep = _rows(con, "SELECT platform, account, score, verdict, confidence, identity_id, reasons, reason_text, "
                     "flagged_on, first_seen, last_seen, valid_until, run_id FROM reputation "
                     "WHERE platform = ? AND account = ?", key)
    if not rep:
        raise AccountNotFound(f"'{platform}:{account}' is not in the reputation table; run the pipeline first "
                              "or check PLATFORM:ACCOUNT")
    head = rep[0]
    out: dict[str, Any] = {"account": {k: v for k, v in head.items() if k != "reasons"},
                           "reasons": _loads(head["reasons"]) or []}
    out["contributions"] = {}
    if table_exists(con, "account_evidence"):
        # c_graph includes the vouch (directed clean evidence), shown as a line of its own; databases
        # written before the vouch existed have no c_vouch column
        has_vouch = bool(con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'account_evidence' "
                                     "AND column_name = 'c_vouch'").fetchall()[0][0])
        graph = "c_graph - c_vouch AS graph, c_vouch AS vouch, vouch AS vouch_noisy_or" if has_vouch else \
            "c_graph AS graph, NULL AS vouch, NULL AS vouch_noisy_or"
        ev = _rows(con, "SELECT c_base AS base, c_direct AS direct_flag, c_identity AS identity_flag, "
                        f"c_campaign AS campaign_flag, c_behaviour AS behaviour, {graph}, logit AS total, "
                        "direct_evidence, identity_carry, campaign_carry, behaviour AS behaviour_prior_logodds, "
                        "graph_push_cobehaviour, graph_push_conversation "
                        "FROM account_evidence WHERE platform = ? AND account = ?", key)
        if ev:
            e = ev[0]
            kinds = ("base", "direct_flag", "identity_flag", "campaign_flag", "behaviour", "graph",
                     *(("vouch",) if has_vouch else ()), "total")
            out["contributions"] = {k: e[k] for k in kinds}
            out["evidence"] = {k: e[k] for k in ("direct_evidence", "identity_carry", "campaign_carry",
                                                 "behaviour_prior_logodds", "graph_push_cobehaviour",
                                                 "graph_push_conversation",
                                                 *(("vouch_noisy_or",) if has_vouch else ()))}
    out["propagated"] = out["contributions"].get("graph")
    # a run that replayed a pinned as_of did not count what was dated after it: neither is shown as counted
    cutoff = _replay_cutoff(con, head["run_id"])
    counted = "CAST($cut AS TIMESTAMP) IS NULL OR {col} IS NULL OR {col} <= $cut AS counted"
    bind = {"p": platform, "a": account, "cut": cutoff}
    flags = _rows(con, f"SELECT label, flagged_at, source, confidence, {counted.format(col='flagged_at')} "
                       "FROM flags WHERE platform = $p AND account = $a "
                       "ORDER BY flagged_at DESC NULLS LAST, label, source", bind) if table_exists(con, "flags") else []
    overrides = _rows(con, f"SELECT decision, reason, author, decided_at, {counted.format(col='decided_at')} "
                           "FROM overrides WHERE platform = $p AND account = $a AND decision IN ('spam', 'clean') "
                           "ORDER BY decided_at DESC NULLS LAST, decision, reason, author",
                      bind) if table_exists(con, "overrides") else []
    out["direct_flags"] = [{k: v for k, v in f.items() if k != "counted"} for f in flags if f["counted"]]
    used = [{k: v for k, v in o.items() if k != "counted"} for o in overrides if o["counted"]]
    out["override"] = used[0] if used else None  # the latest, as the run chose it
    later = {"flags": len(flags) - len(out["direct_flags"]), "overrides": len(overrides) - len(used)}
    out["after_as_of"] = {"as_of": _jsonable(cutoff), **later} if any(later.values()) else None
    out["linked_accounts"] = _linked(con, platform, account, head["identity_id"])
    out["campaigns"] = _campaigns(con, platform, account)
    out["standout_features"] = _standout(con, platform, account)
    return out


def _replay_cutoff(con: duckdb.DuckDBPyConnection, run_id: str) -> datetime | None:
    """The run's as_of when its config pinned it (flags and overrides after it were not counted), else None."""
    if not (table_exists(con, "reputation_model") and table_exists(con, "runs")):
        return None
    rows = con.execute("SELECT r.as_of FROM runs r JOIN reputation_model m ON m.run_id = r.run_id "
                       "WHERE r.run_id = ? AND m.parameter = 'as_of_pinned' AND m.value = 1", [run_id]).fetchall()
    return rows[0][0] if rows else None


def _linked(con: duckdb.DuckDBPyConnection, platform: str, account: str, identity_id: str | None
            ) -> list[dict[str, Any]]:
    """Accounts of the same identity, and any scored link touching the account, with why they are linked."""
    has_links = table_exists(con, "links")
    has_ident = table_exists(con, "identities") and identity_id is not None
    if not (has_links or has_ident):
        return []
    parts = []
    if has_ident:
        parts.append("SELECT platform, account FROM identities WHERE identity_id = $iid "
                     "AND NOT (platform = $p AND account = $a)")
    if has_links:
        parts.append("SELECT platform_b, account_b FROM links WHERE platform_a = $p AND account_a = $a")
        parts.append("SELECT platform_a, account_a FROM links WHERE platform_b = $p AND account_b = $a")
    link_join = ("LEFT JOIN links l ON (l.platform_a = $p AND l.account_a = $a AND l.platform_b = m.platform "
                 "AND l.account_b = m.account) OR (l.platform_b = $p AND l.account_b = $a "
                 "AND l.platform_a = m.platform AND l.account_a = m.account)") if has_links else ""
    has_carry = has_links and bool(con.execute(  # a database from before carry_probability has none
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'links' AND column_name = 'carry_probability'"
    ).fetchall()[0][0])
    link_cols = "l.probability, l.match_weight, l.evidence, l.rules" if has_links else \
        "NULL AS probability, NULL AS match_weight, NULL AS evidence, NULL AS rules"
    link_cols += ", l.carry_probability" if has_carry else ", NULL::DOUBLE AS carry_probability"
    same = ("(SELECT count(*) > 0 FROM identities i WHERE i.identity_id = $iid AND i.platform = m.platform "
            "AND i.account = m.account)") if has_ident else "false"
    q = f"""
        WITH mates AS ({' UNION '.join(parts)})
        SELECT m.platform, m.account, {same} AS same_identity, {link_cols},
               r.score, r.verdict, r.flagged_on
        FROM (SELECT DISTINCT * FROM mates) m(platform, account)
        {link_join}
        LEFT JOIN reputation r ON r.platform = m.platform AND r.account = m.account
        ORDER BY probability DESC NULLS LAST, m.platform, m.account
    """
    rows = _rows(con, q, {"p": platform, "a": account, **({"iid": identity_id} if has_ident else {})})
    for r in rows:
        r["evidence"] = _loads(r["evidence"])
    return rows


def _campaigns(con: duckdb.DuckDBPyConnection, platform: str, account: str) -> list[dict[str, Any]]:
    if not table_exists(con, "campaigns"):
        return []
    rows = _rows(con, """
        WITH mine AS (SELECT DISTINCT campaign_id FROM campaigns WHERE platform = $p AND account = $a)
        SELECT c.campaign_id, count(DISTINCT (c.platform, c.account)) AS accounts,
               list(DISTINCT c.platform ORDER BY c.platform) AS platforms,
               list(DISTINCT c.template_id ORDER BY c.template_id) AS templates,
               any_value(c.evidence) AS evidence,
               count(DISTINCT (c.platform, c.account)) FILTER (WHERE r.verdict = 'spam') AS spam_accounts
        FROM campaigns c JOIN mine USING (campaign_id)
        LEFT JOIN reputation r ON r.platform = c.platform AND r.account = c.account
        GROUP BY c.campaign_id ORDER BY c.campaign_id
    """, {"p": platform, "a": account})
    for r in rows:
        r["evidence"] = _loads(r["evidence"])
    return rows


def _standout(con: duckdb.DuckDBPyConnection, platform: str, account: str) -> list[dict[str, Any]]:
    """Features whose value is more than ``STANDOUT_IQRS`` interquartile ranges from the platform median."""
    if not table_exists(con, "features"):
        return []
    stats = ", ".join(
        f"quantile_cont({c}, 0.5) AS {c}_median, quantile_cont({c}, 0.75) - quantile_cont({c}, 0.25) AS {c}_iqr, "
        f"max({c}) FILTER (WHERE account = $a) AS {c}_value"
        for c, _ in STANDOUT_FEATURES)
    res = con.execute(f"SELECT {stats} FROM features WHERE platform = $p", {"p": platform, "a": account})
    names = [d[0] for d in res.description]
    row = dict(zip(names, res.fetchall()[0], strict=True))
    out = []
    for col, desc in STANDOUT_FEATURES:
        value, median, iqr = row[f"{col}_value"], row[f"{col}_median"], row[f"{col}_iqr"]
        if value is None or median is None:
            continue
        # A floor on the spread keeps a feature that is constant on the platform from looking infinitely odd.
        spread = max(float(iqr or 0.0), 0.1 * abs(float(median)), MIN_SPREAD)
        z = max(-99.0, min(99.0, (float(value) - float(median)) / spread))
        if abs(z) >= STANDOUT_IQRS:
            out.append({"feature": col, "description": desc, "value": _jsonable(float(value)),
                        "platform_median": _jsonable(float(median)), "iqrs_from_median": round(z, 2)})
    out.sort(key=lambda r: -abs(r["iqrs_from_median"]))
    return out[:6]


def _when(value: Any) -> str:
    """A time (or an ISO 8601 string of one) to the second, ``2026-03-31T23:59:44``; anything else as it is."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def render_text(expl: dict[str, Any], width: int = 100) -> str:
    """Format an :func:`explain` result for a terminal (rich tables, returned as plain text).

    Cells wrap rather than being cut short, so every comparison and account id is there to read at any
    ``width``.
    """
    from rich.console import Console
    from rich.table import Table

    def table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
        t = Table(title=title)
        for c in columns:
            t.add_column(c, overflow="fold", justify="right" if c in right else "left")
        return t

    # plain text, and the data printed as it is: no markup ("[b]" in an account id), emoji codes or
    # highlighting read into account ids, handles or reasons
    console = Console(record=True, width=width, file=open("/dev/null", "w"), color_system=None,  # noqa: SIM115
                      markup=False, emoji=False, highlight=False)
    a = expl["account"]
    console.print(f"{a['platform']}:{a['account']}  verdict {a['verdict']}  "
                  f"score {a['score']:.3f}  confidence {a['confidence']:.2f}  identity {a['identity_id']}")
    console.print(f"{a['reason_text']}")
    console.print(f"valid until {_when(a['valid_until'])}  (run {a['run_id']}) — a lead for human review, "
                  "not proof")
    total = (expl.get("contributions") or {}).get("total")
    if expl.get("override"):
        o = expl["override"]
        console.print(f"override: {o['decision']} by {o['author']} at {_when(o['decided_at'])}: {o['reason']}")
        if total is not None:
            console.print(f"  the score is the analyst's; the evidence below alone gives "
                          f"{1.0 / (1.0 + math.exp(-total)):.3f}")
    if expl.get("contributions"):
        t = table("contributions (log-odds)", "evidence", "log-odds", right=("log-odds",))
        for k, v in expl["contributions"].items():
            t.add_row(k, f"{round(v, 2) + 0.0:+.2f}" if v is not None else "")  # + 0.0: no "-0.00"
        console.print(t)
        console.print("  the contributions add up to the total; score = 1 / (1 + e^-total)")
    if expl.get("after_as_of"):
        x = expl["after_as_of"]
        console.print(f"as_of pinned to {_when(x['as_of'])}: {x['flags']} flag(s) and {x['overrides']} "
                      "override(s) dated after it were not counted and are not shown")
    if expl.get("direct_flags"):
        t = table("direct flags", "label", "flagged_at", "source", "confidence")
        for f in expl["direct_flags"]:
            t.add_row(*(_when(f[c]) for c in ("label", "flagged_at", "source", "confidence")))
        console.print(t)
    if expl.get("linked_accounts"):
        t = table("linked accounts", "account", "same identity", "probability", "carries spam", "why", "verdict")
        for r in expl["linked_accounts"]:
            items = [e for e in (r.get("evidence") or []) if isinstance(e, dict) and (e.get("weight") or 0) > 0]
            items.sort(key=lambda e: -float(e["weight"]))
            why = ", ".join(f"{e.get('comparison')}={e.get('level')} ({float(e['weight']):+.1f})" for e in items[:4])
            prob = f"{r['probability']:.3f}" if r.get("probability") is not None else ""
            carry = f"{r['carry_probability']:.3f}" if r.get("carry_probability") is not None else ""
            t.add_row(f"{r['platform']}:{r['account']}", str(r["same_identity"]), prob, carry, why,
                      str(r["verdict"]))
        console.print(t)
    for c in expl.get("campaigns", []):
        console.print(f"campaign {c['campaign_id']}: {c['accounts']} accounts on {', '.join(c['platforms'])}, "
                      f"{c['spam_accounts']} judged spam")
    if expl.get("standout_features"):
        t = table("stands out vs the platform's median account", "feature", "value", "median", "IQRs",
                  right=("value", "median", "IQRs"))
        for f in expl["standout_features"]:
            t.add_row(f["description"], f"{f['value']:.3g}", f"{f['platform_median']:.3g}",
                      f"{f['iqrs_from_median']:+.1f}")
        console.print(t)
    return console.export_text()


def evidence_graph(con: duckdb.DuckDBPyConnection, platform: str, account: str,
                   max_contacts: int = 50) -> nx.Graph:
    """The account's evidence neighbourhood: identity mates, links, campaign mates, reciprocated contacts.

    Nodes are :func:`graph_node_id` (``"platform:account"``, escaped so that no two accounts share one) with
    attributes platform, account, score, verdict, focus; edges carry
    ``kind`` (same_identity, link, campaign, reciprocated) and a ``weight`` (link probability, 1 otherwise).
    At most ``max_contacts`` reciprocated contacts (most messages first) are included.
    """
    expl = explain(con, platform, account)
    g = nx.Graph()
    me = graph_node_id(platform, account)

    def node(p: str, a: str) -> str:
        n = graph_node_id(p, a)
        if n not in g:
            g.add_node(n, platform=p, account=a, focus=(n == me))
        return n

    node(platform, account)
    for r in expl["linked_accounts"]:
        n = node(r["platform"], r["account"])
        kind = "link" if r.get("probability") is not None else "same_identity"
        g.add_edge(me, n, kind=kind, weight=float(r["probability"] if r.get("probability") is not None else 1.0))
    if table_exists(con, "campaigns"):
        for cid, p, a in con.execute(
                "SELECT DISTINCT c.campaign_id, c.platform, c.account FROM campaigns c WHERE c.campaign_id IN "
                "(SELECT campaign_id FROM campaigns WHERE platform = ? AND account = ?) ORDER BY ALL",
                [platform, account]).fetchall():
            n = node(p, a)
            if n != me and not g.has_edge(me, n):
                g.add_edge(me, n, kind="campaign", weight=1.0, campaign_id=cid)
    if table_exists(con, "interactions"):
        for p, a, msgs in con.execute(
                "SELECT platform, recipient, messages FROM interactions WHERE platform = ? AND sender = ? "
                "AND kind = 'direct' AND reciprocated ORDER BY messages DESC, recipient LIMIT ?",
                [platform, account, max_contacts]).fetchall():
            n = node(p, a)
            if not g.has_edge(me, n):
                g.add_edge(me, n, kind="reciprocated", weight=1.0, messages=int(msgs))
    if table_exists(con, "reputation"):
        nodes = list(g.nodes(data=True))
        rows = con.execute("SELECT r.platform, r.account, r.score, r.verdict FROM reputation r "
                           "SEMI JOIN (SELECT unnest(?) AS platform, unnest(?) AS account) n "
                           "USING (platform, account)",
                           [[d["platform"] for _, d in nodes], [d["account"] for _, d in nodes]]).fetchall()
        for p, a, score, verdict in rows:
            n = g.nodes[graph_node_id(p, a)]
            n["score"] = float(score)
            n["verdict"] = verdict
    return g


_NODE_ID_ESCAPE = re.compile("[%\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NODE_ID_ESCAPE_PLATFORM = re.compile("[%:\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8", "surrogatepass"))


def graph_node_id(platform: str, account: str) -> str:
    """The evidence graph's node id of an account: ``"platform:account"``, readable, and one per account.

    ``%`` is percent-encoded in both parts, ``:`` in the platform and the characters XML cannot hold in
    both, so the first ``:`` always ends the platform and no two accounts share an id (``a:b`` + ``c`` and
    ``a`` + ``b:c`` do not).

    >>> graph_node_id("mail", "bob:1"), graph_node_id("mail:eu", "bob")
    ('mail:bob:1', 'mail%3Aeu:bob')
    """
    return f"{_NODE_ID_ESCAPE_PLATFORM.sub(_percent, platform)}:{_NODE_ID_ESCAPE.sub(_percent, account)}"


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_safe(value: Any) -> Any:
    """``value`` with the characters XML 1.0 cannot hold (control characters) replaced by U+FFFD."""
    return _XML_INVALID.sub("\ufffd", value) if isinstance(value, str) else value


def write_graphml(graph: nx.Graph, path: str | Path) -> Path:
    """Write ``graph`` as GraphML, creating the folder (attributes of None are dropped, GraphML has no null;
    control characters, which an account id may hold and XML may not, become U+FFFD)."""
    path = Path(path)
    clean = nx.Graph()
    clean.add_nodes_from((_xml_safe(n), {k: _xml_safe(v) for k, v in d.items() if v is not None})
                         for n, d in graph.nodes(data=True))
    clean.add_edges_from((_xml_safe(u), _xml_safe(v), {k: _xml_safe(v2) for k, v2 in d.items() if v2 is not None})
                         for u, v, d in graph.edges(data=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    nx.write_graphml(clean, path)
    return path
