"""Synthetic multi-platform world generator with ground truth.

:func:`generate_world` writes a directory of message logs, account lists, flags and known links for
several fictitious platforms — each platform in its *own* file format and column names — plus a ready
``pipeline.toml`` for the project and a ``truth/`` directory with the ground truth (who is the same
person, who is a spammer, which operator runs which personas, which evasion tricks each spam account
uses, which flags are wrong). It is the development benchmark of DESIGN.md §6.

The world
---------
* **Honest users** (~85% of people) hold 1–3 accounts, live in communities of a friendship graph and
  talk with friends on platforms both are on; the recipient usually replies within hours. Activity
  follows a person-specific daily rhythm (time zone, chronotype), weekdays are busier than weekends.
  Some honest users post and reply in channels (forum threads, video comment sections).
* **Legitimate bulk senders** (newsletters, recruiters, event organisers) send one lightly
  personalised text per issue to 50–500 subscribers on a weekly or biweekly business-hours schedule;
  part of the subscribers asked to subscribe, a few reply. They are the false-positive trap.
* **Spam operators** run 2–6 *personas*; a persona is one person with accounts on several platforms
  plus later re-registrations. Personas send the operator's campaign templates (with the operator's
  URLs) in lockstep waves to recipients they never talked to, mostly at night and on Sundays, and
  almost nobody replies. Each spam account may use evasion tricks (fresh account, handle variation,
  template spinning, timing jitter, no shared identifier).
* **Compromised honest accounts** are taken over by an operator and then also send its spam.
* **Flags** are noisy (some wrong, most spammers never flagged) and each sits on one platform only.

Everything is vectorised with numpy and polars and written in chunks, so tens of millions of messages
can be generated with bounded memory. The same arguments always give byte-identical files.

Examples
--------
>>> import tempfile
>>> from reputation.generate import generate_world
>>> with tempfile.TemporaryDirectory() as tmp:
...     summary = generate_world(tmp, seed=7, accounts=300, days=14)
...     summary.accounts > 200 and summary.messages > 1000
True
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import polars as pl

from reputation import _wordlists as words

__all__ = ["Difficulty", "WorldArgumentError", "WorldSummary", "generate_world", "platform_names", "PLATFORM_STYLES"]

Difficulty = Literal["easy", "default", "adversarial"]

#: Base platform styles in the order platforms are created; beyond five they repeat with a suffix.
PLATFORM_STYLES: tuple[str, ...] = ("linkup", "chirp", "forum", "picshare", "vidtube")
#: Evasion kinds recorded per spam account in ``truth/accounts.parquet``.
EVASION_KINDS: tuple[str, ...] = (
    "fresh_account",
    "handle_variation",
    "template_spinning",
    "timing_jitter",
    "no_shared_identifier",
)
START = datetime(2026, 1, 1, tzinfo=UTC)
_START_S = int(START.timestamp())
_START_MS = _START_S * 1000
_HOUR = 3_600_000
_DAY = 24 * _HOUR
_CHANNEL_STYLES = frozenset({"forum", "vidtube"})
_CHUNK_ROWS = 1_000_000  # planned messages per generation block (bounds memory; files stay < 4M rows)
_CHIRP_EPOCH_MS = 1_288_834_974_657  # account ids of chirp are Twitter-style snowflakes
_ID_EPOCH_MS = 1_735_689_600_000  # 2025-01-01: epoch of message-id snowflakes
_ID_BITS = 26  # low bits of message ids: unique for up to 2**26 messages per platform
_HONEST, _BULK, _SPAMMER = 0, 1, 2
_ROLE_NAMES = ("honest", "bulk", "spammer")
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_PLATFORM_WEIGHTS = (1.0, 0.85, 0.6, 0.75, 0.8)
_N_VARIANTS = 12  # spun variants per spam template (variant 0 is the unspun template)

# Honest activity.
_THREAD_RATE = 0.12  # conversation threads per friendship edge per day (times tie strength)
_CONTINUE_P = 0.45  # probability that a conversation goes on after each reply
_POSTER_SHARE = 0.4  # share of channel-platform accounts that post in channels
_POST_RATE = 0.08  # channel posts per poster per day
_POST_REPLIES = 0.8  # mean replies per channel post
# Messages per account per day, used to turn a ``messages`` target into an account count; the honest
# conversation rate is then scaled so that the planned total hits the target.
_MSGS_PER_ACCOUNT_DAY = {"easy": 1.12, "default": 1.14, "adversarial": 1.11}


@dataclass(frozen=True)
class _Params:
    bulk_share: float  # share of people that are legitimate bulk senders
    spam_share: float  # share of people that are spam personas
    evasion: float  # probability of each evasion kind per spam account
    rereg_mean: float  # mean number of re-registrations per persona and platform
    flag_share: float  # share of personas with a spam flag (on exactly one account)
    wrong_share: float  # share of spam flags that are wrong
    spam_reply: float  # probability that a spam DM gets a reply
    greet_share: float  # share of spam templates personalised with the recipient's first name
    burst_mean: float  # mean messages per spam burst
    gap_s: float  # mean seconds between messages inside a burst
    char_tricks: float  # share of spun template variants with character tricks (invisible, lookalike, wide)
    household_share: float  # share of people who live with another person of the world (shared home IP)


_DIFFICULTY: dict[str, _Params] = {
    "easy": _Params(0.02, 0.10, 0.2, 0.3, 0.60, 0.02, 0.01, 0.0, 11.0, 45.0, 0.1, 0.15),
    "default": _Params(0.025, 0.10, 0.5, 0.6, 0.35, 0.04, 0.02, 0.15, 10.0, 90.0, 0.3, 0.25),
    "adversarial": _Params(0.04, 0.10, 0.8, 1.0, 0.20, 0.10, 0.03, 0.5, 8.0, 240.0, 0.6, 0.35),
}


@dataclass(frozen=True)
class WorldSummary:
    """Counts describing a generated world.

    Attributes
    ----------
    people, accounts, messages, flags, known_links
        Sizes of the world and of the written files (``flags`` counts spam and clean flags).
    spammers
        Number of spam personas (people whose role is ``spammer``).
    spammer_accounts
        Number of accounts held by spam personas (re-registrations included).
    operators
        Number of spam operators.
    bulk_senders
        Number of legitimate bulk senders (people).
    compromised
        Number of honest accounts taken over by an operator.
    config_path
        Absolute path of the written ``pipeline.toml``.
    """

    people: int
    accounts: int
    messages: int
    flags: int
    known_links: int
    spammers: int
    spammer_accounts: int
    operators: int
    bulk_senders: int
    compromised: int
    config_path: str

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a plain JSON-serialisable dict."""
        return asdict(self)


#: The smallest world :func:`generate_world` makes: enough accounts for every role to appear.
MIN_ACCOUNTS = 50
#: The smallest message target it accepts.
MIN_MESSAGES = 500


class WorldArgumentError(ValueError):
    """An argument of :func:`generate_world` is out of range (the CLI reports it as a usage error)."""


def platform_names(platforms: int) -> list[str]:
    """Return the platform names of a world with ``platforms`` platforms.

    Examples
    --------
    >>> platform_names(7)
    ['linkup', 'chirp', 'forum', 'picshare', 'vidtube', 'linkup2', 'chirp2']
    """
    names = []
    for i in range(platforms):
        base = PLATFORM_STYLES[i % len(PLATFORM_STYLES)]
        cycle = i // len(PLATFORM_STYLES)
        names.append(base if cycle == 0 else f"{base}{cycle + 1}")
    return names


def generate_world(
    out_dir: str | Path,
    seed: int = 0,
    accounts: int = 3000,
    platforms: int = 3,
    days: int = 60,
    difficulty: Difficulty = "default",
    messages: int | None = None,
) -> WorldSummary:
    """Generate a synthetic multi-platform world with ground truth into ``out_dir``.

    Parameters
    ----------
    out_dir
        Directory to write into (created if missing). Existing generated files are overwritten;
        stale message parts from an earlier, larger world are removed.
    seed
        Random seed; the same seed and arguments give byte-identical files.
    accounts
        Approximate total number of accounts across all platforms.
    platforms
        Number of platforms (names cycle through :data:`PLATFORM_STYLES` with a numeric suffix).
    days
        Length of the observed window, starting at 2026-01-01T00:00:00Z.
    difficulty
        ``"easy"``, ``"default"`` or ``"adversarial"``: evasion rates, flag coverage and noise.
    messages
        When given, overrides ``accounts`` so that the world has approximately this many messages.

    Returns
    -------
    WorldSummary
        Counts of what was written and the path of ``pipeline.toml``.

    Raises
    ------
    WorldArgumentError
        If an argument is out of range (a ``ValueError``).
    """
    if difficulty not in _DIFFICULTY:
        raise WorldArgumentError(f"difficulty must be one of {get_args(Difficulty)}, got {difficulty!r}")
    if platforms < 1:
        raise WorldArgumentError(f"platforms must be >= 1, got {platforms}")
    if days < 1:
        raise WorldArgumentError(f"days must be >= 1, got {days}")
    if messages is not None and messages < MIN_MESSAGES:
        raise WorldArgumentError(f"messages must be >= {MIN_MESSAGES}, got {messages}")
    if messages is None and accounts < MIN_ACCOUNTS:
        raise WorldArgumentError(f"accounts must be >= {MIN_ACCOUNTS}, got {accounts}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _World(out, seed, accounts, platforms, days, difficulty, messages)
    summary = world.run()
    args = {
        "seed": seed,
        "accounts": accounts,
        "platforms": platforms,
        "days": days,
        "difficulty": difficulty,
        "messages": messages,
        "start": START.isoformat().replace("+00:00", "Z"),
        "platform_names": world.names,
    }
    doc = {"summary": summary.to_dict() | {"config_path": "pipeline.toml"}, "arguments": args}
    (out / "world.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return summary


# ----------------------------------------------------------------------------------------------
# small vectorised helpers


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expand ragged counts: return (parent index, position within parent) for every child."""
    counts = np.asarray(counts, dtype=np.int64)
    parent = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(len(parent), dtype=np.int64) - np.repeat(starts, counts)
    return parent, pos


def _blocks(weights: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Split ``range(len(weights))`` into contiguous blocks whose weight sum stays near ``limit``."""
    if len(weights) == 0:
        return []
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    block = (cum // max(limit, 1)).astype(np.int64)
    cuts = np.flatnonzero(np.diff(block)) + 1
    edges = [0, *cuts.tolist(), len(weights)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _null_where(values: pl.Series, mask: np.ndarray) -> pl.Series:
    """``values`` with nulls where ``mask`` is true."""
    return pl.select(pl.when(pl.lit(pl.Series(mask))).then(None).otherwise(pl.lit(values))).to_series()


def _gather(table: pl.Series, idx: np.ndarray) -> pl.Series:
    """``table[idx]`` with ``-1`` meaning null."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) and idx.min() < 0:
        return _null_where(table.gather(np.maximum(idx, 0)), idx < 0)
    return table.gather(idx)


def _concat(*parts: pl.Series | str) -> pl.Series:
    """Concatenate string Series (and literal strings) element-wise."""
    return pl.select(pl.concat_str([pl.lit(p) for p in parts])).to_series()


def _hex(rng: np.random.Generator, n: int, width: int, alphabet: bytes = b"0123456789abcdef") -> pl.Series:
    """``n`` random fixed-width tokens over ``alphabet``."""
    if n == 0:
        return pl.Series([], dtype=pl.String)
    table = np.frombuffer(alphabet, dtype=np.uint8)
    codes = table[rng.integers(0, len(table), (n, width))]
    return pl.Series(np.ascontiguousarray(codes).view(f"S{width}").ravel().astype(f"U{width}"))


def _ip_strings(values: np.ndarray) -> pl.Series:
    """Dotted-quad strings of uint32 addresses."""
    v = pl.Series(np.asarray(values, dtype=np.int64))
    octets = [((v // (1 << s)) % 256).cast(pl.String) for s in (24, 16, 8, 0)]
    return pl.select(pl.concat_str([pl.lit(o) for o in octets], separator=".")).to_series()


def _affine_perm(rng: np.random.Generator, n: int, modulus: int) -> np.ndarray:
    """``n`` distinct pseudo-random integers in ``[0, modulus)``: ``(a * i + b) mod modulus``.

    ``modulus`` must be a power of two (an odd ``a`` is then invertible) and at least ``n``.
    """
    if modulus & (modulus - 1) or modulus < n:
        raise ValueError(f"modulus must be a power of two >= n, got {modulus} for n={n}")
    a = int(rng.integers(0, modulus // 2)) * 2 + 1
    b = int(rng.integers(0, modulus))
    i = np.arange(n, dtype=np.int64)
    return (a * i + b) % modulus


def _weighted_day_cdf(days: int, weekday_weights: tuple[float, ...]) -> np.ndarray:
    day = np.arange(days)
    weekday = (day + 3) % 7  # 2026-01-01 is a Thursday; Monday = 0
    return np.cumsum(np.asarray(weekday_weights)[weekday])


def _diurnal(
    rng: np.random.Generator,
    n: int,
    span: int,
    day_cdf: np.ndarray,
    tz: np.ndarray | float,
    peak: np.ndarray | float,
    sd: float,
    uniform_p: float,
) -> np.ndarray:
    """Sample ``n`` times (ms since the start) from a local daily rhythm.

    The local day is drawn with the weekday weights of ``day_cdf``, the local hour from a normal
    around ``peak`` (or uniformly with probability ``uniform_p``); ``tz`` converts local to UTC.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    day = np.searchsorted(day_cdf, rng.random(n) * day_cdf[-1], side="right")
    hour = rng.normal(peak, sd, n)
    hour = np.where(rng.random(n) < uniform_p, rng.random(n) * 24.0, hour) % 24.0
    t = ((day * 24.0 + hour - tz) * _HOUR).astype(np.int64)
    return np.mod(t, span)


def _night_sunday(
    rng: np.random.Generator, n: int, span: int, lo: np.ndarray, hi: np.ndarray, tz: np.ndarray
) -> np.ndarray:
    """Sample burst start times in ``[lo, hi)`` biased to local nights and Sundays."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    t = lo + (rng.random(n) * np.maximum(hi - lo, 1)).astype(np.int64)
    # Move a share of starts to the next local Sunday, then re-draw the hour, night-heavy.
    local = t + (tz * _HOUR).astype(np.int64)
    day = local // _DAY
    weekday = (day + 3) % 7
    to_sunday = rng.random(n) < 0.3
    day = np.where(to_sunday, day + (6 - weekday), day)
    night = rng.random(n) < 0.55
    hour = np.where(night, rng.random(n) * 6.0, 6.0 + rng.random(n) * 18.0)
    t2 = day * _DAY + (hour * _HOUR).astype(np.int64) - (tz * _HOUR).astype(np.int64)
    ok = (t2 >= lo) & (t2 < hi) & (t2 < span)
    return np.where(ok, t2, t)


def _scramble(x: np.ndarray, bits: int, key: int) -> np.ndarray:
    """A keyed bijection of ``[0, 2**bits)`` (xor-shift-multiply rounds), applied element-wise."""
    mask = np.uint64((1 << bits) - 1)
    v = (np.asarray(x, dtype=np.uint64) ^ np.uint64(key & ((1 << bits) - 1))) & mask
    for mult in (0x9E3779B1, 0x85EBCA77):
        v ^= v >> np.uint64(bits // 2)
        v = (v * np.uint64(mult)) & mask  # odd multiplier: invertible modulo 2**bits
    v ^= v >> np.uint64(bits // 2)
    return v.astype(np.int64)


def _rounds(x: float) -> int:
    return int(math.floor(x + 0.5))


# ----------------------------------------------------------------------------------------------
# text banks (built once from a fixed seed; the world seed only chooses among them)


@lru_cache(maxsize=1)
def _phrase_pool() -> pl.Series:
    """60k honest phrases ("baked the spicy cake last night"); the last entry is the empty phrase."""
    rng = np.random.default_rng(20260101)
    n = 60_000
    verbs = np.array(words.HONEST_VERBS)[rng.integers(0, len(words.HONEST_VERBS), n)]
    dets = np.array(words.HONEST_DETS)[rng.integers(0, len(words.HONEST_DETS), n)]
    adjs = np.array(words.HONEST_ADJS)[rng.integers(0, len(words.HONEST_ADJS), n)]
    nouns = np.array(words.HONEST_NOUNS)[rng.integers(0, len(words.HONEST_NOUNS), n)]
    tails = np.array(words.HONEST_TAILS)[rng.integers(0, len(words.HONEST_TAILS), n)]
    use_adj = rng.random(n) < 0.6
    use_tail = rng.random(n) < 0.5
    pool = [
        f"{v} {d} {a + ' ' if ua else ''}{o}{' ' + t if ut else ''}"
        for v, d, a, o, t, ua, ut in zip(verbs, dets, adjs, nouns, tails, use_adj, use_tail, strict=True)
    ]
    pool.append("")  # the empty phrase (index -1)
    return pl.Series(pool)


@lru_cache(maxsize=1)
def _small_banks() -> dict[str, pl.Series]:
    rng = np.random.default_rng(777)
    tokens = _hex(rng, 4096, 6, b"abcdefghijkmnpqrstuvwxyz23456789")
    return {
        "opener": pl.Series([*words.HONEST_OPENERS]),
        "reply_opener": pl.Series([*words.REPLY_OPENERS]),
        "channel_opener": pl.Series([*words.CHANNEL_OPENERS]),
        "closer": pl.Series([*words.HONEST_CLOSERS]),
        "connector": pl.Series([*words.HONEST_CONNECTORS, "\n", ""]),
        "url_domain": pl.Series([*words.HONEST_URL_DOMAINS]),
        "spam_reply": pl.Series([*words.SPAM_REPLIES]),
        "subscribe": pl.Series([*words.SUBSCRIBE_TEXTS]),
        "bulk_reply": pl.Series([*words.BULK_REPLY_TEXTS]),
        "token": tokens,
        "first_title": pl.Series([f.title() for f in words.FIRST_NAMES]),
        "first": pl.Series([*words.FIRST_NAMES]),
        "last": pl.Series([*words.LAST_NAMES]),
    }


_GROUP = re.compile(r"\{([^{}]*)\}")


@cache
def _parse_pattern(sentence: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Split ``"a {x|y} b"`` into literal pieces ``("a ", " b")`` and option groups ``(("x", "y"),)``."""
    pieces = _GROUP.split(sentence)
    return tuple(pieces[0::2]), tuple(tuple(g.split("|")) for g in pieces[1::2])


#: Characters that render as nothing, slipped into a word to break word filters ("fr\u200bee").
_INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff")
#: Latin letters and the Cyrillic letters that look like them ("сheap" with a Cyrillic с).
_LOOKALIKES = str.maketrans({"a": "а", "c": "с", "e": "е", "o": "о", "p": "р", "x": "х", "y": "у", "i": "і"})


def _char_tricks(text: str, rng: np.random.Generator) -> str:
    """One kind of character trick on 1–3 words of four or more characters of ``text``.

    The kinds spam uses to get a known text past word filters while it reads the same: an invisible
    character inside the word, Cyrillic lookalikes for its Latin letters, or full-width forms of the
    whole word. Words holding the URL placeholder (``\x00``) are left alone.
    """
    words = text.split(" ")
    cand = [i for i, w in enumerate(words) if len(w) >= 4 and "\x00" not in w]
    if not cand:
        return text
    kind = int(rng.integers(0, 3))
    for i in rng.choice(cand, size=min(len(cand), int(rng.integers(1, 4))), replace=False).tolist():
        w = words[i]
        if kind == 0:
            at = int(rng.integers(1, len(w)))
            words[i] = w[:at] + _INVISIBLE[int(rng.integers(0, len(_INVISIBLE)))] + w[at:]
        elif kind == 1:
            words[i] = w.translate(_LOOKALIKES)
        else:
            words[i] = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in w)
    return " ".join(words)


def _spin(
    sentence: str, rng: np.random.Generator, base: list[int] | None, resample: float
) -> tuple[str, list[int]]:
    """Fill the ``{a|b|c}`` groups of ``sentence``: keep ``base`` choices except a ``resample`` share.

    Returns the text and the list of choices.
    """
    lits, groups = _parse_pattern(sentence)
    n = len(groups)
    fresh = (rng.random(n) * np.array([len(g) for g in groups])).astype(int).tolist() if n else []
    if base is not None:
        keep = (rng.random(n) >= resample).tolist()
        choices = [b if k else f for b, k, f in zip(base, keep, fresh, strict=True)]
    else:
        choices = fresh
    out = [lits[0]]
    for g, c, lit in zip(groups, choices, lits[1:], strict=True):
        out.append(g[c])
        out.append(lit)
    return "".join(out), choices


# ----------------------------------------------------------------------------------------------
# the world


@dataclass(slots=True)
class _Block:
    """A chunk of messages in the internal representation."""

    plat: np.ndarray  # platform index
    snd: np.ndarray  # sender account index
    rcp: np.ndarray  # recipient account index, -1 for none
    ch: np.ndarray  # channel index, -1 for none
    t: np.ndarray  # ms since START
    ip: np.ndarray  # index into the IP table, -1 for none
    dev: np.ndarray  # index into the device table, -1 for none
    text: pl.Series
    url: pl.Series  # nullable

    @staticmethod
    def concat(blocks: list[_Block]) -> _Block:
        blocks = [b for b in blocks if len(b.t)]
        if not blocks:
            z = np.zeros(0, dtype=np.int64)
            return _Block(z, z, z, z, z, z, z, pl.Series([], dtype=pl.String), pl.Series([], dtype=pl.String))
        cat = np.concatenate
        return _Block(
            cat([b.plat for b in blocks]),
            cat([b.snd for b in blocks]),
            cat([b.rcp for b in blocks]),
            cat([b.ch for b in blocks]),
            cat([b.t for b in blocks]),
            cat([b.ip for b in blocks]),
            cat([b.dev for b in blocks]),
            pl.concat([b.text for b in blocks]),
            pl.concat([b.url for b in blocks]),
        )


class _World:
    """State of one world while it is generated.

    Phases run in order (see :meth:`run`): people, accounts, identifiers, social graph; then planning of
    every message-count-determining draw (channels, bulk, spam, honest conversations, scaled to hit a
    ``messages`` target); then message emission in blocks; then flags, links, account files and truth.
    Every phase draws from its own seeded stream, so phases do not perturb each other.
    People, accounts, channels, IPs and devices are integer indexes into arrays; strings are only built
    when written.
    """

    def __init__(
        self,
        out: Path,
        seed: int,
        accounts: int,
        platforms: int,
        days: int,
        difficulty: str,
        messages: int | None,
    ) -> None:
        self.out = out
        self.seed = int(seed) % (1 << 63)
        self.P = platforms
        self.days = days
        self.span = days * _DAY
        self.difficulty = difficulty
        self.prm = _DIFFICULTY[difficulty]
        self.target_messages = messages
        if messages is not None:
            accounts = max(50, _rounds(messages / (_MSGS_PER_ACCOUNT_DAY[difficulty] * days)))
        self.target_accounts = accounts
        self.names = platform_names(platforms)
        self.styles = [PLATFORM_STYLES[i % len(PLATFORM_STYLES)] for i in range(platforms)]
        self.has_channels = np.array([s in _CHANNEL_STYLES for s in self.styles])
        self.honest_cdf = _weighted_day_cdf(days, (1.0, 1.0, 1.0, 1.0, 0.95, 0.7, 0.6))

    def rng(self, name: str, *extra: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(name.encode()), *extra]))

    # -- orchestration ------------------------------------------------------------------------

    def run(self) -> WorldSummary:
        self.make_people()
        self.make_households()
        self.make_accounts()
        self.make_identifiers()
        self.make_graph()
        self.plan_channels()
        self.plan_bulk()
        self.plan_spam()
        self.plan_honest()
        self.sink = _MessageSink(self)
        self.emit_honest()
        self.emit_channels()
        self.emit_bulk()
        self.emit_spam()
        self.sink.finish()
        self.make_flags()
        self.make_links()
        self.write_accounts()
        self.write_flags_links()
        self.write_truth()
        config = self.write_config()
        return WorldSummary(
            people=self.N,
            accounts=self.A,
            messages=self.sink.total,
            flags=self.n_flags,
            known_links=self.n_links,
            spammers=int((self.role == _SPAMMER).sum()),
            spammer_accounts=int((self.acc_role == _SPAMMER).sum()),
            operators=self.n_ops,
            bulk_senders=int((self.role == _BULK).sum()),
            compromised=int(self.comp_acc.size),
            config_path=str(config.resolve()),
        )

    # -- people -------------------------------------------------------------------------------

    def _honest_k_probs(self) -> np.ndarray:
        probs = np.zeros(max(self.P, 3) + 1)
        probs[1:4] = (0.4, 0.35, 0.25)
        capped = np.zeros(self.P + 1)
        for k in range(1, 4):
            capped[min(k, self.P)] += probs[k]
        return capped

    def make_people(self) -> None:
        prm, P = self.prm, self.P
        rng = self.rng("people")
        hk = self._honest_k_probs()
        acc_honest = float((np.arange(P + 1) * hk).sum())
        k_lo = min(2, P)
        acc_spam = (k_lo + P) / 2 * (1 + prm.rereg_mean * 0.95)
        per_person = (1 - prm.spam_share) * acc_honest + prm.spam_share * acc_spam
        N = max(40, _rounds(self.target_accounts / per_person))
        self.N = N
        n_bulk = max(1, _rounds(N * prm.bulk_share))
        n_spam = max(4, _rounds(N * prm.spam_share))
        perm = rng.permutation(N)
        role = np.zeros(N, dtype=np.int8)
        role[perm[:n_bulk]] = _BULK
        spam_people = perm[n_bulk : n_bulk + n_spam]
        role[spam_people] = _SPAMMER
        self.role = role
        # Operators: groups of 2..6 personas.
        n_ops = max(1, _rounds(n_spam / 4))
        n_ops = min(n_ops, n_spam // 2)
        sizes = np.full(n_ops, 2, dtype=np.int64)
        extra = n_spam - 2 * n_ops
        while extra > 0:
            room = np.flatnonzero(sizes < 6)
            if len(room) == 0:  # cannot happen with n_ops ~ n_spam / 4, but stay total
                sizes[rng.integers(0, n_ops)] += extra
                break
            pick = room[rng.integers(0, len(room), extra)]
            add = np.minimum(np.bincount(pick, minlength=n_ops), 6 - sizes)
            sizes += add
            extra -= int(add.sum())
        self.n_ops = n_ops
        self.op_sizes = sizes
        operator = np.full(N, -1, dtype=np.int64)
        operator[spam_people] = np.repeat(np.arange(n_ops), sizes)
        self.operator = operator
        # Names, rhythms, social traits.
        self.first = rng.integers(0, len(words.FIRST_NAMES), N)
        self.last = rng.integers(0, len(words.LAST_NAMES), N)
        spam = role == _SPAMMER
        self.tz = np.where(spam, rng.integers(-6, 10, N), rng.integers(-3, 4, N)).astype(np.float64)
        self.peak = np.clip(rng.normal(15.5, 2.2, N), 10.0, 21.5)
        act = rng.lognormal(0.0, 0.6, N)
        self.activity = act / act.mean()
        self.reply_p = rng.uniform(0.6, 0.8, N)
        n_comm = max(1, N // 80)
        self.community = rng.integers(0, n_comm, N)
        self.n_comm = n_comm
        # Platforms: honest/bulk 1-3 (popularity-weighted), spammers 2..P (uniform).
        k = rng.choice(np.arange(P + 1), size=N, p=hk)
        k = np.where(spam, rng.integers(k_lo, P + 1, N), k)
        w = np.log(np.asarray([_PLATFORM_WEIGHTS[i % 5] for i in range(P)]))
        keys = np.where(spam[:, None], 0.0, w[None, :]) + rng.gumbel(size=(N, P))
        rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
        self.member = rank < k[:, None]

    def make_households(self) -> None:
        """Group people into households of 2–4 who share a home IP (and in half of them a family device).

        Household members are different people, so they are the non-matches that look most like one person:
        same home address, often the same family computer and last name, the same time zone and friends.
        Spam personas join households at half the rate (a teenager spamming from the family's computer,
        some of it from the home line) and take on the time zone of the household's other people.
        """
        N, prm = self.N, self.prm
        rng = self.rng("households")
        spam = self.role == _SPAMMER
        joins = rng.random(N) < np.where(spam, 0.5, 1.0) * prm.household_share
        members = rng.permutation(np.flatnonzero(joins))
        sizes = rng.choice(np.array([2, 3, 4]), size=max(1, len(members) // 2), p=(0.6, 0.25, 0.15))
        ends = np.cumsum(sizes)
        sizes, ends = sizes[ends <= len(members)], ends[ends <= len(members)]
        members = members[: int(ends[-1]) if len(ends) else 0]
        hh_of_member = np.repeat(np.arange(len(sizes)), sizes)
        # The head (first member) is someone who is not a spam persona wherever the household has one: the
        # household lives where its people do, so a persona takes on the family's time zone, never the reverse.
        order = np.lexsort((spam[members], hh_of_member))
        members = members[order]
        self.household = np.full(N, -1, dtype=np.int64)
        self.household[members] = hh_of_member
        head = members[ends - sizes] if len(sizes) else np.zeros(0, dtype=np.int64)
        self.home = np.arange(N, dtype=np.int64)  # index of the person's home IP
        self.home[members] = head[hh_of_member]
        # A family device in half of the households; everyone in it uses it as their second device.
        self.hh_device = rng.random(len(sizes)) < 0.5
        # Same time zone and circle of friends; the head's last name for most members.
        self.tz[members] = self.tz[self.home[members]]
        self.community[members] = self.community[self.home[members]]
        same_name = rng.random(len(members)) < 0.7
        self.last[members[same_name]] = self.last[self.home[members[same_name]]]

    # -- accounts -----------------------------------------------------------------------------

    def make_accounts(self) -> None:
        prm, P, N, span = self.prm, self.P, self.N, self.span
        rng = self.rng("accounts")
        pp, pl_ = np.nonzero(self.member)  # (person, platform) pairs, sorted by person
        spam_pair = self.role[pp] == _SPAMMER
        n_acc = 1 + np.where(spam_pair, np.minimum(rng.poisson(prm.rereg_mean, len(pp)), 3), 0)
        grp, seq = _expand(n_acc)
        A = len(grp)
        self.A = A
        person = pp[grp]
        plat = pl_[grp].astype(np.int64)
        self.acc_person, self.acc_plat, self.acc_seq = person, plat, seq
        self.acc_role = self.role[person]
        pacc = np.full((N, P), -1, dtype=np.int64)
        first = seq == 0
        pacc[person[first], plat[first]] = np.flatnonzero(first)
        self.pacc = pacc
        # Lifetimes (ms relative to the start).
        created = -(rng.uniform(20, 2500, A) * _DAY).astype(np.int64)
        act_from = np.zeros(A, dtype=np.int64)
        act_to = np.full(A, span, dtype=np.int64)
        sp = np.flatnonzero(self.acc_role == _SPAMMER)
        g = grp[sp]
        b0 = (rng.uniform(0.0, 0.3, len(pp)) * span).astype(np.int64)[g]
        val = np.where(seq[sp] == 0, b0, b0 + (rng.random(len(sp)) * (span - b0)).astype(np.int64))
        order = np.lexsort((val, g))
        val = val[order]
        act_from[sp] = val
        nxt = np.r_[val[1:], 0]
        last_in_grp = np.r_[g[1:] != g[:-1], True]
        gap = (rng.uniform(0.0, 3.0, len(sp)) * _DAY).astype(np.int64)
        to = np.maximum(nxt - gap, val + 2 * _HOUR)
        act_to[sp] = np.where(last_in_grp, span, np.minimum(to, span))
        # Evasion per spam account.
        ev = rng.random((len(sp), len(EVASION_KINDS))) < prm.evasion
        rereg = seq[sp] > 0
        n_first = int((~rereg).sum())
        p_fresh0 = np.clip((prm.evasion * len(sp) - rereg.sum()) / max(n_first, 1), 0.0, 1.0)
        ev[:, 0] = rereg | (rng.random(len(sp)) < p_fresh0)
        fresh_created = act_from[sp] - (rng.uniform(1.0, 40.0, len(sp)) * _HOUR).astype(np.int64)
        old_created = -(rng.uniform(30, 900, len(sp)) * _DAY).astype(np.int64)
        created[sp] = np.where(ev[:, 0], fresh_created, old_created)
        self.created, self.act_from, self.act_to = created, act_from, act_to
        self.spam_acc = sp
        self.evasion = np.zeros((A, len(EVASION_KINDS)), dtype=bool)
        self.evasion[sp] = ev
        # Compromised honest accounts (about 1% of honest accounts).
        honest_acc = np.flatnonzero(self.acc_role == _HONEST)
        n_comp = max(1, _rounds(0.01 * len(honest_acc)))
        comp = np.sort(rng.choice(honest_acc, size=min(n_comp, len(honest_acc)), replace=False))
        self.comp_acc = comp
        self.comp_op = rng.integers(0, self.n_ops, len(comp))
        self.comp_at = (rng.uniform(0.15, 0.85, len(comp)) * span).astype(np.int64)

    # -- identifiers, handles, names ----------------------------------------------------------

    def make_identifiers(self) -> None:
        N = self.N
        rng = self.rng("identifiers")
        banks = _small_banks()
        spam_person = self.role == _SPAMMER
        n_sp = len(self.spam_acc)
        # Devices: person dev0 = p, dev1 = N + p; operator bot devices; own devices of spam accounts.
        self.has_dev1 = rng.random(N) < 0.5
        # The second device: the person's own, or the family device of the household (the head's).
        in_household = self.household >= 0
        family = np.zeros(N, dtype=bool)
        family[in_household] = self.hh_device[self.household[in_household]]
        self.has_dev1 |= family
        self.dev1 = np.where(family, N + self.home, N + np.arange(N))
        self.botdev_base = 2 * N
        self.owndev_base = 2 * N + 3 * self.n_ops
        n_dev = self.owndev_base + n_sp
        dev_tokens = _hex(rng, n_dev, 16)
        self.dev_table = _concat("d-", dev_tokens)
        # IPs: home (N), carrier NAT, office, operator proxies, own IPs of spam accounts.
        n_nat = max(2, N // 600)
        n_off = max(2, N // 500)
        self.nat = np.where(rng.random(N) < 0.45, rng.integers(0, n_nat, N), -1)
        self.office = np.where(rng.random(N) < 0.25, rng.integers(0, n_off, N), -1)
        self.nat[spam_person] = -1
        self.office[spam_person] = -1
        self.proxy_n = rng.integers(3, 13, self.n_ops)
        self.proxy_start = np.cumsum(self.proxy_n) - self.proxy_n
        self.nat_base = N
        self.off_base = N + n_nat
        self.proxy_base = self.off_base + n_off
        self.ownip_base = self.proxy_base + int(self.proxy_n.sum())
        ip_vals = np.concatenate(
            [
                (64 << 24) + _affine_perm(rng, N, 1 << 26),
                (172 << 24) + (56 << 16) + _affine_perm(rng, n_nat, 1 << 16),
                (198 << 24) + (18 << 16) + _affine_perm(rng, n_off, 1 << 16),
                (45 << 24) + _affine_perm(rng, int(self.proxy_n.sum()), 1 << 24),
                (91 << 24) + rng.choice(1 << 24, size=n_sp, replace=False),
            ]
        )
        self.ip_table = _ip_strings(ip_vals)
        # Person-level email/phone.
        first = banks["first"].gather(self.first)
        last = banks["last"].gather(self.last)
        fi = first.str.slice(0, 1)
        num = _affine_perm(rng, N, 1 << max(20, (4 * N).bit_length()))  # unique per person
        nums = pl.Series(num).cast(pl.String)
        style = rng.integers(0, 4, N)
        dom_idx = np.where(
            spam_person,
            rng.integers(0, len(words.SPAMMER_EMAIL_DOMAINS), N),
            rng.integers(0, len(words.EMAIL_DOMAINS), N),
        )
        dom_tbl = pl.Series([*words.EMAIL_DOMAINS, *words.SPAMMER_EMAIL_DOMAINS])
        dom = dom_tbl.gather(np.where(spam_person, dom_idx + len(words.EMAIL_DOMAINS), dom_idx))
        local = pl.DataFrame({"f": first, "l": last, "fi": fi, "n": nums, "s": style}).select(
            pl.when(pl.col("s") == 0)
            .then(pl.concat_str("f", pl.lit("."), "l", "n"))
            .when(pl.col("s") == 1)
            .then(pl.concat_str("f", "l", "n"))
            .when(pl.col("s") == 2)
            .then(pl.concat_str("fi", "l", "n"))
            .otherwise(pl.concat_str("f", pl.lit("_"), "l", "n"))
        )
        self.email = _concat(local.to_series(), "@", dom)
        work = pl.Series([*words.WORK_DOMAINS]).gather(rng.integers(0, len(words.WORK_DOMAINS), N))
        self.alt_email = _concat(fi, ".", last, nums, "@", work)
        p_phone = np.select([self.role == _BULK, spam_person], [0.8, 0.6], 0.45)
        self.has_phone = rng.random(N) < p_phone
        self.phone = (
            2_000_000_000
            + _affine_perm(rng, N, 1 << max(22, N.bit_length())) * 1361
            + rng.integers(0, 1361, N)
        )
        self.first_s, self.last_s = first, last
        self._make_handles(rng)
        self._make_account_ids(rng)

    def _make_handles(self, rng: np.random.Generator) -> None:
        N, A = self.N, self.A
        banks = _small_banks()
        person, seq, role = self.acc_person, self.acc_seq, self.acc_role
        style0 = rng.integers(0, 8, N)
        sfx0 = rng.integers(0, 5, N)
        nn0 = rng.integers(10, 99, N)
        year0 = rng.integers(1965, 2007, N)
        word0 = rng.integers(0, len(words.HANDLE_SUFFIX_WORDS), N)
        style, sfx, nn = style0[person], sfx0[person], nn0[person]
        vary = np.where(role == _SPAMMER, self.evasion[:, 1], rng.random(A) < 0.45)
        new_style = rng.integers(0, 8, A)
        new_sfx = rng.integers(0, 6, A)
        new_nn = nn + rng.integers(0, 2, A)
        same = (new_style == style) & (new_sfx == sfx) & (new_nn == nn)
        new_sfx = np.where(same, (new_sfx + 1) % 6, new_sfx)
        style = np.where(vary, new_style, style)
        sfx = np.where(vary, new_sfx, sfx)
        nn = np.where(vary, new_nn, nn)
        extra = np.where((role == _SPAMMER) & ~vary & (seq > 0), seq + 1, -1)
        df = pl.DataFrame(
            {
                "f": self.first_s.gather(person),
                "l": self.last_s.gather(person),
                "style": style,
                "sfx": sfx,
                "nn": nn,
                "year": year0[person],
                "word": pl.Series([*words.HANDLE_SUFFIX_WORDS]).gather(word0[person]),
                "extra": extra,
                "plat": self.acc_plat,
            }
        )
        f, ln = pl.col("f"), pl.col("l")
        fi, li = f.str.slice(0, 1), ln.str.slice(0, 1)
        s = pl.col("style")
        core = (
            pl.when(s == 0)
            .then(pl.concat_str(f, pl.lit("."), ln))
            .when(s == 1)
            .then(pl.concat_str(f, ln))
            .when(s == 2)
            .then(pl.concat_str(f, pl.lit("_"), ln))
            .when(s == 3)
            .then(pl.concat_str(fi, ln))
            .when(s == 4)
            .then(pl.concat_str(fi, pl.lit("."), ln))
            .when(s == 5)
            .then(pl.concat_str(f, li))
            .when(s == 6)
            .then(pl.concat_str(ln, pl.lit("."), f))
            .otherwise(pl.concat_str(ln, fi))
        )
        k, nns = pl.col("sfx"), pl.col("nn").cast(pl.String)
        suffix = (
            pl.when(k == 0)
            .then(pl.lit(""))
            .when(k == 1)
            .then(nns)
            .when(k == 2)
            .then(pl.concat_str(pl.lit("."), nns))
            .when(k == 3)
            .then(pl.concat_str(pl.lit("_"), nns))
            .when(k == 4)
            .then(pl.col("year").cast(pl.String))
            .otherwise(pl.concat_str(pl.lit("_"), pl.col("word")))
        )
        ext = pl.when(pl.col("extra") >= 0).then(pl.col("extra").cast(pl.String)).otherwise(pl.lit(""))
        df = df.with_columns(handle=pl.concat_str(core, suffix, ext)).with_row_index("i")
        # Unique per platform: append a number to later duplicates until none remain.
        for _ in range(10):
            df = df.with_columns(dup=pl.int_range(pl.len()).over(["plat", "handle"], order_by="i"))
            if df["dup"].max() == 0:
                break
            df = df.with_columns(
                handle=pl.when(pl.col("dup") > 0)
                .then(pl.concat_str("handle", (pl.col("dup") + 1 + (pl.col("i") % 7)).cast(pl.String)))
                .otherwise("handle")
            )
        self.handle = df["handle"]
        # Display names: mostly "First Last", sometimes "First L.", lowercase or missing.
        first_t = banks["first_title"].gather(self.first[person])
        last_t = self.last_s.gather(person).str.to_titlecase()
        r = rng.random(A)
        dn = pl.DataFrame({"f": first_t, "l": last_t, "r": r}).select(
            pl.when(pl.col("r") < 0.1)
            .then(pl.lit(None, dtype=pl.String))
            .when(pl.col("r") < 0.15)
            .then(pl.concat_str("f", pl.lit(" "), pl.col("l").str.slice(0, 1), pl.lit(".")))
            .when(pl.col("r") < 0.19)
            .then(pl.concat_str("f", pl.lit(" "), "l").str.to_lowercase())
            .otherwise(pl.concat_str("f", pl.lit(" "), "l"))
        )
        self.display = dn.to_series()
        # Emails per account.
        sp_mask = role == _SPAMMER
        no_shared = self.evasion[:, 4]
        r = rng.random(A)
        prim = self.email.gather(person)
        alt = self.alt_email.gather(person)
        tok = _hex(rng, A, 9, b"abcdefghijklmnopqrstuvwxyz0123456789")
        disp_dom = pl.Series([*words.DISPOSABLE_EMAIL_DOMAINS]).gather(
            rng.integers(0, len(words.DISPOSABLE_EMAIL_DOMAINS), A)
        )
        fresh = _concat(tok, pl.Series(rng.permutation(A)).cast(pl.String), "@", disp_dom)
        upper = rng.random(A) < 0.05
        em = pl.DataFrame(
            {"prim": prim, "alt": alt, "fresh": fresh, "r": r, "sp": sp_mask, "ns": no_shared, "up": upper}
        ).select(
            pl.when(pl.col("ns"))
            .then("fresh")
            .when(pl.col("sp") & (pl.col("r") < 0.95))
            .then("prim")
            .when(pl.col("sp"))
            .then(pl.lit(None, dtype=pl.String))
            .when(pl.col("r") < 0.8)
            .then(pl.when(pl.col("up")).then(pl.col("prim").str.to_uppercase()).otherwise("prim"))
            .when(pl.col("r") < 0.9)
            .then("alt")
            .otherwise(pl.lit(None, dtype=pl.String))
        )
        self.acc_email = em.to_series()
        # Phones per account (only some platforms show them).
        has = self.has_phone[person] & (rng.random(A) < 0.85)
        fresh_phone = 8_000_000_000 + rng.permutation(A) * 997 + rng.integers(0, 997, A)
        phone = np.where(no_shared, fresh_phone, self.phone[person])
        self.acc_phone = np.where(has, phone, -1)

    def _make_account_ids(self, rng: np.random.Generator) -> None:
        A = self.A
        order_all = np.lexsort((np.arange(A), self.created, self.acc_plat))
        parts = []
        for p, style in enumerate(self.styles):
            idx = order_all[self.acc_plat[order_all] == p]  # platform p's accounts by creation time
            n = len(idx)
            if style in ("linkup", "picshare"):
                num = 100_000 + np.cumsum(rng.integers(1, 40, n))
                s = _concat("u", pl.Series(num).cast(pl.String))
            elif style == "chirp":
                snow = ((_START_MS + self.created[idx] - _CHIRP_EPOCH_MS) << 22) + (np.arange(n) & 0x3FFFFF)
                s = pl.Series(snow).cast(pl.String)
            elif style == "forum":
                s = pl.Series(1000 + np.cumsum(rng.integers(1, 12, n))).cast(pl.String)
            else:  # vidtube
                s = _concat("UC", _hex(rng, n, 22, _B64))
            parts.append(s)
        self.acc_id = pl.concat(parts).gather(np.argsort(order_all))  # order_all is sorted by platform

    # -- social graph -------------------------------------------------------------------------

    def make_graph(self) -> None:
        N = self.N
        rng = self.rng("graph")
        elig = np.flatnonzero(self.role != _SPAMMER)
        comm = self.community[elig]
        order = np.argsort(comm, kind="stable")
        members = elig[order]
        sizes = np.bincount(comm, minlength=self.n_comm)
        starts = np.cumsum(sizes) - sizes
        deg = rng.integers(5, 31, len(elig))
        src = np.repeat(elig, (deg + 1) // 2)
        c = self.community[src]
        same = rng.random(len(src)) < 0.85
        p_same = members[starts[c] + (rng.random(len(src)) * sizes[c]).astype(np.int64)]
        p_any = elig[rng.integers(0, len(elig), len(src))]
        dst = np.where(same, p_same, p_any)
        # Household members (not spam personas) are friends with one another.
        fam = np.flatnonzero((self.household >= 0) & (self.role != _SPAMMER))
        fam = fam[np.argsort(self.household[fam], kind="stable")]
        fam_a = [fam[:-d][self.household[fam[:-d]] == self.household[fam[d:]]] for d in (1, 2, 3)]
        fam_b = [fam[d:][self.household[fam[:-d]] == self.household[fam[d:]]] for d in (1, 2, 3)]
        src = np.concatenate([src, *fam_a])
        dst = np.concatenate([dst, *fam_b])
        a, b = np.minimum(src, dst), np.maximum(src, dst)
        key = np.unique(a[a != b] * N + b[a != b])
        ea, eb = key // N, key % N
        # CSR adjacency of people (both directions) for "spam to the owner's friends".
        both_s = np.concatenate([ea, eb])
        both_d = np.concatenate([eb, ea])
        o = np.lexsort((both_d, both_s))
        self.adj = both_d[o]
        self.adj_ptr = np.concatenate([[0], np.cumsum(np.bincount(both_s, minlength=N))])
        # Platform of each conversation: a random platform both are on.
        common = self.member[ea] & self.member[eb]
        has = common.any(axis=1)
        choice = np.argmax(common * (rng.random(common.shape) + 0.01), axis=1)
        ea, eb, ep = ea[has], eb[has], choice[has]
        w = rng.lognormal(-0.5, 1.0, len(ea))
        family = (self.household[ea] >= 0) & (self.household[ea] == self.household[eb])
        w[family] = np.maximum(w[family], 1.5)  # family members talk more than most friends
        self.e_a, self.e_b, self.e_plat = ea, eb, ep
        self.e_lambda = _THREAD_RATE * self.days * w * np.sqrt(self.activity[ea] * self.activity[eb])
        # Recipient pools: per platform, the honest/bulk accounts in a random order.
        self.pool_perm = []
        for p in range(self.P):
            acc = np.flatnonzero((self.acc_plat == p) & (self.acc_role != _SPAMMER))
            self.pool_perm.append(rng.permutation(acc))

    # -- planning -----------------------------------------------------------------------------

    def plan_channels(self) -> None:
        rng = self.rng("channels")
        ch_names = []
        self.ch_start = np.zeros(self.P, dtype=np.int64)
        self.ch_n = np.zeros(self.P, dtype=np.int64)
        total = 0
        for p, style in enumerate(self.styles):
            if style not in _CHANNEL_STYLES:
                continue
            n = max(2, int((self.acc_plat == p).sum()) // 60)
            self.ch_start[p], self.ch_n[p] = total, n
            total += n
            if style == "forum":
                ch_names.append(
                    _concat("t", pl.Series(10_000 + np.cumsum(rng.integers(1, 50, n))).cast(pl.String))
                )
            else:
                ch_names.append(_hex(rng, n, 11, _B64))
        self.ch_table = pl.concat(ch_names) if ch_names else pl.Series([], dtype=pl.String)
        # Posters: honest/bulk accounts on channel platforms.
        on_ch = self.has_channels[self.acc_plat] & (self.acc_role != _SPAMMER)
        cand = np.flatnonzero(on_ch)
        posters = cand[rng.random(len(cand)) < _POSTER_SHARE]
        lam = _POST_RATE * self.days * self.activity[self.acc_person[posters]]
        n_posts = rng.poisson(lam)
        self.post_acc = posters
        self.post_n = n_posts
        self.post_fav = rng.integers(0, 1 << 30, (len(posters), 3))
        self.planned_channels = float(n_posts.sum()) * (1 + _POST_REPLIES)

    def plan_bulk(self) -> None:
        rng = self.rng("bulk")
        bulk = np.flatnonzero(self.role == _BULK)
        nb = len(bulk)
        # Main account: a random platform the sender is on.
        keys = np.where(self.member[bulk], rng.random((nb, self.P)), -1.0)
        plat = np.argmax(keys, axis=1)
        acc = self.pacc[bulk, plat]
        pool_n = np.array([len(self.pool_perm[p]) for p in range(self.P)])
        size = np.exp(rng.uniform(math.log(50), math.log(500), nb))
        size = np.maximum(np.minimum(size, 0.5 * pool_n[plat]), 3).astype(np.int64)
        sender, _ = _expand(size)
        pool_pos = rng.random(len(sender))
        sub = np.empty(len(sender), dtype=np.int64)
        for p in range(self.P):
            m = plat[sender] == p
            if m.any():
                sub[m] = self.pool_perm[p][(pool_pos[m] * pool_n[p]).astype(np.int64)]
        key = np.unique(sender * self.A + sub)
        sender, sub = key // self.A, key % self.A
        keep = sub != acc[sender]
        sender, sub = sender[keep], sub[keep]
        ns = len(sender)
        span = self.span
        join = np.where(rng.random(ns) < 0.75, -1, (rng.random(ns) * span).astype(np.int64))
        # Schedule: weekly or biweekly, Tue-Thu morning local time.
        period = np.where(rng.random(nb) < 0.4, 7, 14) * _DAY
        day = rng.integers(0, 7, nb)
        day = day + ((1 + rng.integers(0, 3, nb) - (day + 3) % 7) % 7)  # move to Tue..Thu
        day = np.where(day * _DAY >= period, day - 7, day)
        day = np.where(day < 0, day + 7, day)
        tz = self.tz[bulk]
        first = day * _DAY + ((rng.uniform(8.5, 11.0, nb) - tz) * _HOUR).astype(np.int64)
        first = np.maximum(first, _HOUR)
        n_issues = np.maximum((span - first + period - 1) // period, 0)
        kinds = rng.integers(0, len(words.BULK_KINDS), nb)
        self.b_person, self.b_acc, self.b_plat = bulk, acc, plat
        self.b_first, self.b_period, self.b_nissues, self.b_kind = first, period, n_issues, kinds
        self.b_cf = rng.uniform(0.2, 0.4, nb)
        self.b_rep = rng.uniform(0.05, 0.15, nb)
        self.bs_sender, self.bs_sub, self.bs_join = sender, sub, join
        self.bs_cf = rng.random(ns) < self.b_cf[sender]
        self.bs_rep = rng.random(ns) < self.b_rep[sender]
        # Issues texts (one per sender and issue) and greeting per sender.
        issue_ptr = np.cumsum(n_issues) - n_issues
        self.b_issue_ptr = issue_ptr
        texts, urls = [], []
        domains = [self._bulk_domain(int(b), rng) for b in bulk]
        for i in range(nb):
            for k in range(int(n_issues[i])):
                t, u = self._issue_text(int(kinds[i]), k, domains[i], rng, int(first[i] + k * period[i]))
                texts.append(t)
                urls.append(u)
        self.b_issue_text = pl.Series(texts, dtype=pl.String)
        self.b_issue_url = pl.Series(urls, dtype=pl.String)
        greet = np.array(["Hi ", "Hello ", "Dear ", "Hey "])
        self.b_greet = pl.Series(greet[rng.integers(0, 4, nb)])
        # Planned volume: issue deliveries to subscribers who joined before the issue.
        f_s, p_s, n_s = first[sender], period[sender], n_issues[sender]
        k_min = np.where(join <= f_s, 0, (join - f_s + p_s - 1) // p_s)
        received = np.maximum(n_s - k_min, 0)
        self.bs_received = received
        self.planned_bulk = float(received.sum() + self.bs_cf.sum() + (self.bs_rep & (received > 0)).sum())
        self.b_first_issue = first

    def _bulk_domain(self, person: int, rng: np.random.Generator) -> str:
        last = words.LAST_NAMES[int(self.last[person])]
        tail = ("news", "jobs", "events", "weekly", "club", "hub")[int(rng.integers(0, 6))]
        return f"{last}-{tail}.example.org"

    def _issue_text(
        self, kind: int, k: int, domain: str, rng: np.random.Generator, t: int
    ) -> tuple[str, str]:
        url = f"https://{domain}/issue/{k + 1}"
        if kind == 0:
            topic = words.NEWSLETTER_TOPICS[int(rng.integers(0, len(words.NEWSLETTER_TOPICS)))]
            items = rng.choice(len(words.NEWSLETTER_ITEMS), 2, replace=False)
            a, b = (words.NEWSLETTER_ITEMS[int(i)] for i in items)
            text = f"issue #{k + 1} of our {topic} letter is out: {a} and {b}. Read it at {url}"
        elif kind == 1:
            role = words.JOB_ROLES[int(rng.integers(0, len(words.JOB_ROLES)))]
            city = words.CITIES[int(rng.integers(0, len(words.CITIES)))]
            url = f"https://{domain}/jobs/{int(rng.integers(1000, 9999))}"
            text = (
                f"we are hiring a {role} in {city} this month. Based on your profile you might be a good "
                f"fit, or know someone who is. Details: {url}"
            )
        else:
            event = words.EVENT_NAMES[int(rng.integers(0, len(words.EVENT_NAMES)))]
            city = words.CITIES[int(rng.integers(0, len(words.CITIES)))]
            date = datetime.fromtimestamp(_START_S + t // 1000 + 10 * 86400, tz=UTC)
            text = (
                f"our {event} in {city} is on {words.WEEKDAY_NAMES[date.weekday()]} "
                f"{date.strftime('%d %B')}. Free entry, RSVP at {url} - hope to see you there!"
            )
        return text, url

    def plan_spam(self) -> None:
        prm, span = self.prm, self.span
        rng = self.rng("spam")
        # Spam-capable accounts: persona accounts, then compromised accounts.
        sp, comp = self.spam_acc, self.comp_acc
        self.sa_acc = np.concatenate([sp, comp])
        n_sa = len(self.sa_acc)
        n_sp = len(sp)
        self.sa_op = np.concatenate([self.operator[self.acc_person[sp]], self.comp_op])
        self.sa_from = np.concatenate([self.act_from[sp], self.comp_at])
        self.sa_to = np.concatenate([self.act_to[sp], np.full(len(comp), span)])
        self.sa_comp = np.r_[np.zeros(n_sp, bool), np.ones(len(comp), bool)]
        ev = np.zeros((n_sa, len(EVASION_KINDS)), dtype=bool)
        ev[:n_sp] = self.evasion[sp]
        self.sa_spin, self.sa_jitter, self.sa_own = ev[:, 2], ev[:, 3], ev[:, 4]
        self.sa_own_idx = np.arange(n_sa)  # own IP/device index (only used when sa_own)
        # Templates: 2..5 per operator, each with its URL and spun variants.
        n_tpl = rng.integers(2, 6, self.n_ops)
        self.tpl_start = np.cumsum(n_tpl) - n_tpl
        self.tpl_n = n_tpl
        self._make_templates(rng, n_tpl)
        # Waves: lockstep campaign windows per operator (night/Sunday-biased in the operator's zone).
        n_w = rng.poisson(self.days / 6.0, self.n_ops) + 1
        w_op, _ = _expand(n_w)
        op_tz = rng.integers(-6, 10, self.n_ops).astype(np.float64)
        w_start = _night_sunday(
            rng, len(w_op), span, np.zeros(len(w_op), np.int64), np.full(len(w_op), span), op_tz[w_op]
        )
        w_tpl = self.tpl_start[w_op] + (rng.random(len(w_op)) * n_tpl[w_op]).astype(np.int64)
        # Participation: cross waves x the operator's spam accounts that are active then.
        sa_order = np.argsort(self.sa_op, kind="stable")
        op_cnt = np.bincount(self.sa_op, minlength=self.n_ops)
        op_ptr = np.cumsum(op_cnt) - op_cnt
        wi, pos = _expand(op_cnt[w_op])
        s = sa_order[op_ptr[w_op[wi]] + pos]
        t0 = w_start[wi]
        active = (t0 >= self.sa_from[s]) & (t0 < self.sa_to[s])
        part = active & (rng.random(len(s)) < np.where(self.sa_comp[s], 0.8, 0.7))
        s, wi = s[part], wi[part]
        offset = (rng.uniform(0, 1.5, len(s)) * _HOUR).astype(np.int64)
        offset = np.where(self.sa_jitter[s], (rng.uniform(0, 12, len(s)) * _HOUR).astype(np.int64), offset)
        wave_b = (s, w_start[wi] + offset, w_tpl[wi], np.ones(len(s), bool))
        # Solo bursts of persona accounts at the persona's own (night/Sunday-biased) times.
        persona_sa = np.arange(n_sp)
        active_days = (self.sa_to[persona_sa] - self.sa_from[persona_sa]) / _DAY
        n_solo = rng.poisson(active_days / 15.0)
        si, _ = _expand(n_solo)
        ptz = self.tz[self.acc_person[sp]]
        solo_t = _night_sunday(rng, len(si), span, self.sa_from[si], self.sa_to[si], ptz[si])
        op = self.sa_op[si]
        solo_tpl = self.tpl_start[op] + (rng.random(len(si)) * n_tpl[op]).astype(np.int64)
        solo_b = (si, solo_t, solo_tpl, np.zeros(len(si), bool))
        # Compromised accounts: an immediate blast after the takeover.
        ci = np.arange(n_sp, n_sa)
        cop = self.sa_op[ci]
        c_t = self.sa_from[ci] + (rng.uniform(0.1, 12, len(ci)) * _HOUR).astype(np.int64)
        c_tpl = self.tpl_start[cop] + (rng.random(len(ci)) * n_tpl[cop]).astype(np.int64)
        comp_b = (ci, c_t, c_tpl, np.zeros(len(ci), bool))
        # Fresh (re-)registrations start with a debut burst right after they were created.
        fi = np.flatnonzero(ev[:n_sp, 0])
        f_t = np.maximum(self.sa_from[fi], self.created[sp[fi]] + _HOUR) + (
            rng.uniform(0.0, 6.0, len(fi)) * _HOUR
        ).astype(np.int64)
        fop = self.sa_op[fi]
        f_tpl = self.tpl_start[fop] + (rng.random(len(fi)) * n_tpl[fop]).astype(np.int64)
        fresh_b = (fi, f_t, f_tpl, np.zeros(len(fi), bool))
        parts = [wave_b, solo_b, comp_b, fresh_b]
        b_sa = np.concatenate([p[0] for p in parts])
        b_t = np.concatenate([p[1] for p in parts])
        b_tpl = np.concatenate([p[2] for p in parts])
        b_lock = np.concatenate([p[3] for p in parts])
        order = np.lexsort((b_t, b_sa))
        self.bu_sa, self.bu_t, self.bu_tpl, self.bu_lock = (
            b_sa[order],
            b_t[order],
            b_tpl[order],
            b_lock[order],
        )
        self.bu_n = 1 + rng.poisson(prm.burst_mean, len(order))
        keep = self.bu_t < span
        for name in ("bu_sa", "bu_t", "bu_tpl", "bu_lock", "bu_n"):
            setattr(self, name, getattr(self, name)[keep])
        # Operator recipient pools: a contiguous window of each platform's shuffled honest accounts.
        pool_n = np.array([len(self.pool_perm[p]) for p in range(self.P)])
        self.op_pool_off = rng.integers(0, np.maximum(pool_n, 1)[None, :], (self.n_ops, self.P))
        self.op_pool_size = np.clip((0.25 * pool_n).astype(np.int64), np.minimum(pool_n, 20), 3000)
        sa_plat = self.acc_plat[self.sa_acc]
        chan = self.has_channels[sa_plat[self.bu_sa]]
        n_msgs = self.bu_n.sum()
        dm_share = float(np.where(chan, 0.65, 1.0) @ self.bu_n) / max(float(n_msgs), 1.0)
        self.planned_spam = float(n_msgs) * (1 + dm_share * prm.spam_reply)
        self.op_tz = op_tz

    def _make_templates(self, rng: np.random.Generator, n_tpl: np.ndarray) -> None:
        themes = list(words.SPAM_THEMES)
        greet_p = self.prm.greet_share
        tricks = self.rng("char-tricks")  # a stream of its own: the rest of the world is drawn as before
        pres, posts, urls, greets = [], [], [], []
        for op in range(self.n_ops):
            theme_ids = rng.choice(len(themes), size=min(2, len(themes)), replace=False)
            n_dom = int(rng.integers(1, 4))
            doms = []
            for _ in range(n_dom):
                a, b = rng.choice(len(words.SPAM_DOMAIN_WORDS), 2, replace=False)
                tld = words.SPAM_TLDS[int(rng.integers(0, len(words.SPAM_TLDS)))]
                doms.append(f"{words.SPAM_DOMAIN_WORDS[a]}-{words.SPAM_DOMAIN_WORDS[b]}{op % 97}.{tld}")
            for _t in range(int(n_tpl[op])):
                theme = themes[int(theme_ids[int(rng.integers(0, len(theme_ids)))])]
                bank = words.SPAM_THEMES[theme]
                n_sent = int(rng.integers(2, len(bank) + 1))
                sents = [bank[int(i)] for i in np.sort(rng.choice(len(bank), n_sent, replace=False))]
                cta = words.SPAM_CTAS[int(rng.integers(0, len(words.SPAM_CTAS)))].replace("{url}", "\x00")
                path = _small_banks()["token"][int(rng.integers(0, 4096))]
                urls.append(f"https://{doms[int(rng.integers(0, n_dom))]}/{path}")
                greets.append(bool(rng.random() < greet_p))
                base = [_spin(s, rng, None, 1.0) for s in sents]
                cta_base = _spin(cta, rng, None, 1.0)
                for v in range(_N_VARIANTS):
                    if v == 0:
                        body = [b[0] for b in base]
                        cta_txt = cta_base[0]
                    else:
                        body = [_spin(s, rng, b[1], 0.35)[0] for s, b in zip(sents, base, strict=True)]
                        if rng.random() < 0.5:
                            body = [body[int(i)] for i in rng.permutation(len(body))]
                        cta_txt = _spin(cta, rng, cta_base[1], 0.35)[0]
                    full = " ".join(body) + " " + cta_txt
                    if v > 0 and tricks.random() < self.prm.char_tricks:
                        full = _char_tricks(full, tricks)
                    pre, _, post = full.partition("\x00")
                    pres.append(pre)
                    posts.append(post)
        self.tpl_pre = pl.Series(pres, dtype=pl.String)
        self.tpl_post = pl.Series(posts, dtype=pl.String)
        self.tpl_url = pl.Series(urls, dtype=pl.String)
        self.tpl_greet = np.array(greets, dtype=bool)

    def plan_honest(self) -> None:
        rng = self.rng("honest-plan")
        p_reply = self.reply_p.mean()
        per_thread = 1 + p_reply * (1 + _CONTINUE_P / (1 - _CONTINUE_P))
        expected = float(self.e_lambda.sum()) * per_thread
        scale = 1.0
        if self.target_messages is not None and expected > 0:
            other = self.planned_bulk + self.planned_spam + self.planned_channels
            scale = float(np.clip((self.target_messages - other) / expected, 0.2, 5.0))
        self.e_threads = rng.poisson(self.e_lambda * scale)
        self.honest_scale = scale

    # -- emitting messages --------------------------------------------------------------------

    def honest_net(self, rng: np.random.Generator, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(person)
        r = rng.random(n)
        nat, off = self.nat[person], self.office[person]
        ip = np.where(
            (nat >= 0) & (r < 0.45),
            self.nat_base + nat,
            np.where((off >= 0) & (r >= 0.45) & (r < 0.7), self.off_base + off, self.home[person]),
        )
        dev = np.where(self.has_dev1[person] & (rng.random(n) < 0.35), self.dev1[person], person)
        return ip, dev

    def honest_text(
        self, rng: np.random.Generator, n: int, reply: np.ndarray, channel: bool = False
    ) -> tuple[pl.Series, pl.Series]:
        banks = _small_banks()
        pool = _phrase_pool()
        n_pool = len(pool) - 1
        if channel:
            opener = banks["channel_opener"].gather(rng.integers(0, len(banks["channel_opener"]), n))
        else:
            o = banks["opener"].gather(rng.integers(0, len(banks["opener"]), n))
            ro = banks["reply_opener"].gather(rng.integers(0, len(banks["reply_opener"]), n))
            opener = pl.select(
                pl.when(pl.lit(pl.Series(reply))).then(pl.lit(ro)).otherwise(pl.lit(o))
            ).to_series()
        n_ph = rng.choice(np.array([1, 2, 3]), n, p=[0.35, 0.45, 0.2])
        conn_n = len(banks["connector"])
        conn_p = np.r_[np.full(conn_n - 2, 0.996 / (conn_n - 2)), 0.004, 0.0]

        def conn(k: int) -> pl.Series:
            c = rng.choice(conn_n, n, p=conn_p)
            return banks["connector"].gather(np.where(n_ph >= k, c, conn_n - 1))

        p1 = pool.gather(rng.integers(0, n_pool, n))
        p2 = pool.gather(np.where(n_ph >= 2, rng.integers(0, n_pool, n), n_pool))
        p3 = pool.gather(np.where(n_ph >= 3, rng.integers(0, n_pool, n), n_pool))
        closer = banks["closer"].gather(rng.integers(0, len(banks["closer"]), n))
        has_url = rng.random(n) < 0.03
        dom = banks["url_domain"].gather(rng.integers(0, len(banks["url_domain"]), n))
        tok = banks["token"].gather(rng.integers(0, 4096, n))
        https = pl.concat_str(pl.lit("https://"), pl.lit(dom), pl.lit("/"), pl.lit(tok))
        url = pl.select(pl.when(pl.lit(pl.Series(has_url))).then(https)).to_series()
        url_tail = pl.when(pl.lit(url).is_not_null()).then(pl.concat_str(pl.lit(" "), pl.lit(url)))
        pieces = [opener, p1, conn(2), p2, conn(3), p3, closer]
        parts = [*(pl.lit(x) for x in pieces), url_tail.otherwise(pl.lit(""))]
        text = pl.select(pl.concat_str(parts)).to_series()
        return text, url

    def emit_honest(self) -> None:
        span = self.span
        conv_est = self.e_threads * 2.3
        for bi, (lo, hi) in enumerate(_blocks(conv_est, _CHUNK_ROWS)):
            rng = self.rng("honest", bi)
            e = lo + _expand(self.e_threads[lo:hi])[0]
            T = len(e)
            if T == 0:
                continue
            a_first = rng.random(T) < 0.5
            pa, pb = self.e_a[e], self.e_b[e]
            ini, oth = np.where(a_first, pa, pb), np.where(a_first, pb, pa)
            t0 = _diurnal(rng, T, span, self.honest_cdf, self.tz[ini], self.peak[ini], 3.0, 0.03)
            replied = rng.random(T) < self.reply_p[oth]
            more = np.minimum(rng.geometric(1 - _CONTINUE_P, T) - 1, 10)
            turns = np.where(replied, 2 + more, 1)
            th, k = _expand(turns)
            delay = np.clip(rng.lognormal(math.log(25 * 60_000), 1.3, len(th)), 20_000, 2 * _DAY).astype(
                np.int64
            )
            delay[k == 0] = 0
            cs = np.cumsum(delay)
            starts = np.cumsum(turns) - turns
            t = t0[th] + cs - np.repeat(cs[starts], turns)
            even = k % 2 == 0
            sp_ = np.where(even, ini[th], oth[th])
            rp_ = np.where(even, oth[th], ini[th])
            plat = self.e_plat[e[th]]
            keep = t < span
            sp_, rp_, plat, t, k = sp_[keep], rp_[keep], plat[keep], t[keep], k[keep]
            n = len(t)
            ip, dev = self.honest_net(rng, sp_)
            text, url = self.honest_text(rng, n, k > 0)
            none = np.full(n, -1, dtype=np.int64)
            self.sink.write(
                _Block(plat, self.pacc[sp_, plat], self.pacc[rp_, plat], none, t, ip, dev, text, url),
                f"honest-{bi}",
            )

    def emit_channels(self) -> None:
        span = self.span
        for bi, (lo, hi) in enumerate(_blocks(self.post_n * (1 + _POST_REPLIES), _CHUNK_ROWS)):
            rng = self.rng("channels-emit", bi)
            pi = lo + _expand(self.post_n[lo:hi])[0]
            n = len(pi)
            if n == 0:
                continue
            acc = self.post_acc[pi]
            person = self.acc_person[acc]
            plat = self.acc_plat[acc]
            fav = self.post_fav[pi, rng.integers(0, 3, n)]
            ch = self.ch_start[plat] + fav % np.maximum(self.ch_n[plat], 1)
            t = _diurnal(rng, n, span, self.honest_cdf, self.tz[person], self.peak[person], 3.0, 0.04)
            # Replies from random accounts of the platform.
            n_rep = rng.poisson(_POST_REPLIES, n)
            ri, _ = _expand(n_rep)
            rplat = plat[ri]
            pool_n = np.array([len(x) for x in self.pool_perm])
            u = rng.random(len(ri))
            racc = np.empty(len(ri), dtype=np.int64)
            for p in range(self.P):
                m = rplat == p
                if m.any():
                    racc[m] = self.pool_perm[p][(u[m] * pool_n[p]).astype(np.int64)]
            rt = t[ri] + np.clip(rng.lognormal(math.log(2 * _HOUR), 1.0, len(ri)), 60_000, 5 * _DAY).astype(
                np.int64
            )
            to_user = np.where(np.array([s == "vidtube" for s in self.styles])[rplat], acc[ri], -1)
            self_reply = racc == acc[ri]
            snd = np.r_[acc, racc[~self_reply]]
            rcp = np.r_[np.full(n, -1), to_user[~self_reply]]
            chs = np.r_[ch, ch[ri][~self_reply]]
            ts = np.r_[t, rt[~self_reply]]
            plats = np.r_[plat, rplat[~self_reply]]
            reply = np.r_[np.zeros(n, bool), np.ones(int((~self_reply).sum()), bool)]
            keep = ts < span
            snd, rcp, chs, ts, plats, reply = (
                snd[keep],
                rcp[keep],
                chs[keep],
                ts[keep],
                plats[keep],
                reply[keep],
            )
            ip, dev = self.honest_net(rng, self.acc_person[snd])
            text, url = self.honest_text(rng, len(ts), reply, channel=True)
            self.sink.write(_Block(plats, snd, rcp, chs, ts, ip, dev, text, url), f"channels-{bi}")

    def emit_bulk(self) -> None:
        banks = _small_banks()
        span = self.span
        s_cnt = np.bincount(self.bs_sender, minlength=len(self.b_person))
        s_ptr = np.cumsum(s_cnt) - s_cnt
        weight = np.bincount(self.bs_sender, weights=self.bs_received, minlength=len(self.b_person))
        for bi, (lo, hi) in enumerate(_blocks(weight, _CHUNK_ROWS)):
            rng = self.rng("bulk-emit", bi)
            a, b = s_ptr[lo], s_ptr[hi - 1] + s_cnt[hi - 1]
            sender, sub, join = self.bs_sender[a:b], self.bs_sub[a:b], self.bs_join[a:b]
            cf, rep = self.bs_cf[a:b], self.bs_rep[a:b]
            # Issue deliveries.
            pi, k = _expand(self.b_nissues[sender])
            s_ = sender[pi]
            it = self.b_first[s_] + k * self.b_period[s_]
            ok = (it >= join[pi]) & (it < span)
            pi, k, s_, it = pi[ok], k[ok], s_[ok], it[ok]
            it = it + rng.integers(0, 20 * 60_000, len(it))  # a blast takes a few minutes
            issue = self.b_issue_ptr[s_] + k
            snd_acc = self.b_acc[s_]
            rcp_acc = sub[pi]
            first_name = banks["first_title"].gather(self.first[self.acc_person[rcp_acc]])
            text_i = _concat(self.b_greet.gather(s_), first_name, ", ", self.b_issue_text.gather(issue))
            url_i = self.b_issue_url.gather(issue)
            # Subscribe requests (before the first issue the subscriber receives).
            ci = np.flatnonzero(cf)
            cs = sender[ci]
            before_first = (rng.random(len(ci)) * np.maximum(self.b_first[cs] - 60_000, 1)).astype(np.int64)
            ct = np.where(join[ci] < 0, before_first, join[ci])
            text_c = banks["subscribe"].gather(rng.integers(0, len(banks["subscribe"]), len(ci)))
            # Replies to one received issue.
            ri = np.flatnonzero(rep)
            rmask = np.isin(ri, pi)
            ri = ri[rmask]
            first_k = np.searchsorted(pi, ri)
            last_k = np.searchsorted(pi, ri, side="right") - 1
            pick = first_k + (rng.random(len(ri)) * (last_k - first_k + 1)).astype(np.int64)
            rt = it[pick] + np.clip(
                rng.lognormal(math.log(3 * _HOUR), 1.0, len(ri)), 60_000, 4 * _DAY
            ).astype(np.int64)
            text_r = banks["bulk_reply"].gather(rng.integers(0, len(banks["bulk_reply"]), len(ri)))
            n_i, n_c, n_r = len(it), len(ci), len(ri)
            snd = np.r_[snd_acc, sub[ci], sub[ri]]
            rcp = np.r_[rcp_acc, self.b_acc[cs], self.b_acc[sender[ri]]]
            ts = np.r_[it, ct, rt]
            plat = self.acc_plat[snd]
            keep = ts < span
            snd_person = self.acc_person[snd]
            ip, dev = self.honest_net(rng, snd_person)
            # Bulk senders send from their office (or home) IP and main device.
            is_issue = np.r_[np.ones(n_i, bool), np.zeros(n_c + n_r, bool)]
            office = self.office[snd_person]
            ip = np.where(is_issue, np.where(office >= 0, self.off_base + office, self.home[snd_person]), ip)
            dev = np.where(is_issue, snd_person, dev)
            text = pl.concat([text_i, text_c, text_r])
            url = pl.concat([url_i, pl.Series([None] * (n_c + n_r), dtype=pl.String)])
            ch = np.full(len(ts), -1, dtype=np.int64)
            kp = np.flatnonzero(keep)
            self.sink.write(
                _Block(
                    plat[kp],
                    snd[kp],
                    rcp[kp],
                    ch[kp],
                    ts[kp],
                    ip[kp],
                    dev[kp],
                    text.gather(kp),
                    url.gather(kp),
                ),
                f"bulk-{bi}",
            )

    def emit_spam(self) -> None:
        prm, span = self.prm, self.span
        banks = _small_banks()
        n_sa = len(self.sa_acc)
        self.first_spam = np.full(n_sa, np.iinfo(np.int64).max, dtype=np.int64)
        sa_plat = self.acc_plat[self.sa_acc]
        sa_person = self.acc_person[self.sa_acc]
        pool_n = np.array([len(x) for x in self.pool_perm])
        for bi, (lo, hi) in enumerate(_blocks(self.bu_n, _CHUNK_ROWS)):
            rng = self.rng("spam-emit", bi)
            b, k = _expand(self.bu_n[lo:hi])
            b = b + lo
            s = self.bu_sa[b]
            n = len(s)
            if n == 0:
                continue
            start = self.bu_t[b]
            # Burst timing: bot-like gaps, or spread over the persona's daytime with timing jitter.
            gap = rng.exponential(prm.gap_s * 1000, n).astype(np.int64)
            gap[k == 0] = 0
            cs = np.cumsum(gap)
            first_idx = np.r_[0, np.flatnonzero(np.diff(b)) + 1]
            t = start + cs - np.repeat(cs[first_idx], np.diff(np.r_[first_idx, n]))
            jit = self.sa_jitter[s]
            if jit.any():
                person = sa_person[s[jit]]
                tz, pk = self.tz[person], self.peak[person]
                h = rng.normal(pk, 3.0) % 24.0
                h0 = ((start[jit] / _HOUR) + tz) % 24.0
                off = (
                    ((h - h0) % 24.0) * _HOUR
                    + rng.integers(0, 2, len(h)) * _DAY
                    + rng.integers(0, 3_600_000, len(h))
                )
                t[jit] = start[jit] + off.astype(np.int64)
            plat = sa_plat[s]
            op = self.sa_op[s]
            keep = t < span
            # Recipients: channels (on platforms with channels), the owner's friends (compromised), or
            # the operator's pool on that platform.
            to_chan = self.has_channels[plat] & (rng.random(n) < 0.35)
            off = self.op_pool_off[op, plat]
            size = np.maximum(self.op_pool_size[plat], 1)
            pos = (off + (rng.random(n) * size).astype(np.int64)) % np.maximum(pool_n[plat], 1)
            rcp = np.full(n, -1, dtype=np.int64)
            for p in range(self.P):
                m = plat == p
                if m.any() and pool_n[p]:
                    rcp[m] = self.pool_perm[p][pos[m]]
            comp = self.sa_comp[s]
            fr = comp & (rng.random(n) < 0.5)
            if fr.any():
                owner = sa_person[s[fr]]
                deg = self.adj_ptr[owner + 1] - self.adj_ptr[owner]
                j = self.adj_ptr[owner] + (rng.random(len(owner)) * deg).astype(np.int64)
                friend = np.where(deg > 0, self.adj[np.minimum(j, len(self.adj) - 1)], -1)
                facc = np.where(friend >= 0, self.pacc[np.maximum(friend, 0), plat[fr]], -1)
                rcp[fr] = np.where(facc >= 0, facc, rcp[fr])
            ch = np.where(
                to_chan,
                self.ch_start[plat] + (rng.random(n) * np.maximum(self.ch_n[plat], 1)).astype(np.int64),
                -1,
            )
            rcp = np.where(to_chan, -1, rcp)
            snd = self.sa_acc[s]
            keep &= (rcp != snd) & ((rcp >= 0) | (ch >= 0))
            # Network identifiers.
            own = self.sa_own[s]
            proxy = (
                self.proxy_base + self.proxy_start[op] + (rng.random(n) * self.proxy_n[op]).astype(np.int64)
            )
            person = sa_person[s]
            # A persona living in a household sends half of its spam from the home line (an account that keeps
            # network identifiers of its own, the no_shared_identifier evasion, never does).
            from_home = (self.household[person] >= 0) & ~comp & (rng.random(n) < 0.5)
            ip = np.where(own, self.ownip_base + self.sa_own_idx[s],
                          np.where(from_home, self.home[person], proxy))
            pdev = np.where(self.has_dev1[person] & (rng.random(n) < 0.4), self.dev1[person], person)
            bot = self.botdev_base + op * 3 + rng.integers(0, 3, n)
            dev = np.where(own, self.owndev_base + self.sa_own_idx[s], np.where(comp, bot, pdev))
            # Text: (greeting) + spun template around the URL + (random token).
            tpl = self.bu_tpl[b]
            spin = self.sa_spin[s]
            var = np.where(spin, rng.integers(1, _N_VARIANTS, n), 0)
            vi = tpl * _N_VARIANTS + var
            tok = banks["token"].gather(rng.integers(0, 4096, n))
            track = spin & (rng.random(n) < 0.5)
            url = pl.select(
                pl.when(pl.lit(pl.Series(track)))
                .then(pl.concat_str(pl.lit(self.tpl_url.gather(tpl)), pl.lit("?r="), pl.lit(tok)))
                .otherwise(pl.lit(self.tpl_url.gather(tpl)))
            ).to_series()
            greet = self.tpl_greet[tpl] & (rcp >= 0)
            fname = banks["first_title"].gather(self.first[self.acc_person[np.maximum(rcp, 0)]])
            tail_kind = np.where(spin, rng.integers(0, 4, n), 0)
            tok2 = banks["token"].gather(rng.integers(0, 4096, n))
            tails = pl.Series(["", " ", " #", " ref "]).gather(tail_kind)
            hi_name = pl.concat_str(pl.lit("Hi "), pl.lit(fname), pl.lit(", "))
            greeting = pl.when(pl.lit(pl.Series(greet))).then(hi_name).otherwise(pl.lit(""))
            token = pl.when(pl.lit(pl.Series(tail_kind > 0))).then(pl.lit(tok2)).otherwise(pl.lit(""))
            body = [self.tpl_pre.gather(vi), url, self.tpl_post.gather(vi), tails]
            text = pl.select(pl.concat_str([greeting, *(pl.lit(x) for x in body), token])).to_series()
            # Rare replies from recipients ("stop", "who is this?").
            rep = keep & (rcp >= 0) & (rng.random(n) < prm.spam_reply)
            ri = np.flatnonzero(rep)
            rt = t[ri] + np.clip(rng.lognormal(math.log(40 * 60_000), 1.2, len(ri)), 30_000, 3 * _DAY).astype(
                np.int64
            )
            r_snd = rcp[ri]
            r_ip, r_dev = self.honest_net(rng, self.acc_person[r_snd])
            r_text = banks["spam_reply"].gather(rng.integers(0, len(banks["spam_reply"]), len(ri)))
            kp = np.flatnonzero(keep)
            np.minimum.at(self.first_spam, s[kp], t[kp])
            blk = _Block(
                plat[kp], snd[kp], rcp[kp], ch[kp], t[kp], ip[kp], dev[kp], text.gather(kp), url.gather(kp)
            )
            rk = np.flatnonzero(rt < span)
            no_url = pl.Series([None] * len(rk), dtype=pl.String)
            r_plat, r_rcp, none = plat[ri][rk], snd[ri][rk], np.full(len(rk), -1)
            rblk = _Block(
                r_plat, r_snd[rk], r_rcp, none, rt[rk], r_ip[rk], r_dev[rk], r_text.gather(rk), no_url
            )
            self.sink.write(_Block.concat([blk, rblk]), f"spam-{bi}")

    # -- flags and links ----------------------------------------------------------------------

    def make_flags(self) -> None:
        prm, span = self.prm, self.span
        rng = self.rng("flags")
        n_sp = len(self.spam_acc)
        sent = self.first_spam < span
        rows_acc, rows_label, rows_t, rows_src, rows_conf = [], [], [], [], []

        def add(acc: np.ndarray, label: str, t: np.ndarray, kind: str) -> None:
            n = len(acc)
            if kind == "spam":
                r = rng.random(n)
                src = np.where(r < 0.4, 1, np.where(r < 0.85, 0, 2))
            elif kind == "wrong":
                src = np.where(rng.random(n) < 0.8, 0, 2)
            else:
                src = np.full(n, 3)
            lo = np.array([0.5, 0.9, 0.6, 0.9])[src]
            hi = np.array([0.8, 1.0, 0.9, 1.0])[src]
            rows_acc.append(acc)
            rows_label.append(np.full(n, label == "spam"))
            rows_t.append(t)
            rows_src.append(src)
            rows_conf.append(np.round(lo + rng.random(n) * (hi - lo), 3))

        # One spam flag per flagged persona, on one account that has sent spam.
        persona = self.acc_person[self.spam_acc]
        cand = np.flatnonzero(sent[:n_sp])
        key = rng.random(len(cand))
        order = np.lexsort((key, persona[cand]))
        cand = cand[order]
        firsts = np.r_[True, persona[cand][1:] != persona[cand][:-1]]
        chosen = cand[firsts]  # one random spamming account per persona
        chosen = chosen[rng.random(len(chosen)) < prm.flag_share]
        fs = self.first_spam[chosen]
        hi = np.maximum(np.minimum(self.sa_to[chosen], span), fs + 2 * _HOUR)
        t = fs + _HOUR + (rng.random(len(chosen)) * (hi - fs - _HOUR)).astype(np.int64)
        add(self.sa_acc[chosen], "spam", t, "spam")
        self.flag_persona_acc = self.sa_acc[chosen]
        # Compromised accounts: sometimes flagged after the takeover.
        ci = n_sp + np.flatnonzero(sent[n_sp:])
        ci = ci[rng.random(len(ci)) < 0.3]
        fs = self.first_spam[ci]
        t = fs + (rng.uniform(1.0, 96.0, len(ci)) * _HOUR).astype(np.int64)
        add(self.sa_acc[ci], "spam", t, "spam")
        n_right = len(chosen) + len(ci)
        # Wrong spam flags, mostly on bulk senders.
        expected = n_right * prm.wrong_share / (1 - prm.wrong_share)
        n_wrong = int(expected) + int(rng.random() < expected - int(expected))
        if n_right >= 5:
            n_wrong = max(1, n_wrong)
        n_wb = min(len(self.b_acc), _rounds(0.65 * n_wrong))
        wb = rng.choice(self.b_acc, size=n_wb, replace=False) if n_wb else np.zeros(0, np.int64)
        honest = np.setdiff1d(np.flatnonzero(self.acc_role == _HONEST), self.comp_acc)
        wh = rng.choice(honest, size=min(len(honest), n_wrong - n_wb), replace=False)
        wrong = np.sort(np.r_[wb, wh]).astype(np.int64)
        t = (rng.uniform(0.1, 1.0, len(wrong)) * span).astype(np.int64)
        add(wrong, "spam", t, "wrong")
        self.wrong_acc = wrong
        # Clean (verified) flags on some honest and bulk accounts.
        legit = np.flatnonzero(self.acc_role != _SPAMMER)
        p_clean = np.where(self.acc_role[legit] == _BULK, 0.15, 0.03)
        clean = legit[rng.random(len(legit)) < p_clean]
        clean = np.setdiff1d(clean, wrong)
        add(clean, "clean", (rng.random(len(clean)) * span).astype(np.int64), "clean")
        acc = np.concatenate(rows_acc)
        self.flags = pl.DataFrame(
            {
                "acc": acc,
                "spam": np.concatenate(rows_label),
                "t": np.concatenate(rows_t),
                "src": np.concatenate(rows_src),
                "conf": np.concatenate(rows_conf),
            }
        )
        self.n_flags = len(acc)
        flagged = np.zeros(self.A, bool)
        flagged[acc[np.concatenate(rows_label)]] = True
        self.acc_flagged = flagged
        self.acc_wrong = np.zeros(self.A, bool)
        self.acc_wrong[wrong] = True

    def make_links(self) -> None:
        rng = self.rng("links")
        legit = (self.role != _SPAMMER) & (self.member.sum(axis=1) >= 2)
        people = np.flatnonzero(legit & (rng.random(self.N) < 0.2))
        if self.P < 2:
            self.links = (np.zeros(0, np.int64), np.zeros(0, np.int64))
            self.n_links = 0
            return
        keys = np.where(self.member[people], rng.random((len(people), self.P)), -1.0)
        top2 = np.argsort(-keys, axis=1)[:, :2]
        pa, pb = np.sort(top2, axis=1).T
        self.links = (self.pacc[people, pa], self.pacc[people, pb])
        self.n_links = len(people)

    # -- writing ------------------------------------------------------------------------------

    def _iso(self, rel_ms: np.ndarray, fmt: str) -> pl.Series:
        return pl.from_epoch(
            pl.Series(_START_MS + np.asarray(rel_ms, dtype=np.int64)), time_unit="ms"
        ).dt.strftime(fmt)

    def write_accounts(self) -> None:
        for p, (name, style) in enumerate(zip(self.names, self.styles, strict=True)):
            idx = np.flatnonzero(self.acc_plat == p)
            idx = idx[np.lexsort((idx, self.created[idx]))]
            acc_id = self.acc_id.gather(idx)
            created = self.created[idx]
            handle = self.handle.gather(idx)
            display = self.display.gather(idx)
            email = self.acc_email.gather(idx)
            phone = self.acc_phone[idx]
            d = self.out / name
            d.mkdir(parents=True, exist_ok=True)
            if style == "linkup":
                ph = pl.Series(phone).cast(pl.String)
                ph_fmt = _concat("+1 ", ph.str.slice(0, 3), "-", ph.str.slice(3, 3), "-", ph.str.slice(6, 4))
                df = pl.DataFrame(
                    {
                        "user_id": acc_id,
                        "created": self._iso(created, "%Y-%m-%dT%H:%M:%SZ"),
                        "handle": handle,
                        "full_name": display,
                        "email": email,
                        "phone": pl.select(
                            pl.when(pl.lit(pl.Series(phone >= 0))).then(pl.lit(ph_fmt))
                        ).to_series(),
                    }
                )
                df.write_parquet(d / "accounts.parquet", compression="zstd")
            elif style == "chirp":
                df = pl.DataFrame(
                    {
                        "handle_id": acc_id,
                        "created_ms": _START_MS + created,
                        "screen_name": handle,
                        "name": display,
                        "email": email,
                    }
                )
                df.write_csv(d / "accounts.csv", separator=";")
            elif style == "forum":
                df = pl.DataFrame(
                    {"user": acc_id, "joined": _START_S + created // 1000, "username": handle, "email": email}
                )
                df.write_ndjson(d / "accounts.ndjson")
            elif style == "picshare":
                ph = pl.Series(phone).cast(pl.String)
                df = pl.DataFrame(
                    {
                        "account_id": acc_id,
                        "signup": self._iso(created, "%Y-%m-%d %H:%M:%S"),
                        "nick": handle,
                        "display": display,
                        "mail": email,
                        "mobile": pl.select(
                            pl.when(pl.lit(pl.Series(phone >= 0))).then(
                                pl.concat_str(pl.lit("1"), pl.lit(ph))
                            )
                        ).to_series(),
                    }
                )
                df.write_csv(d / "accounts.csv")
            else:
                df = pl.DataFrame(
                    {
                        "uid": acc_id,
                        "created_at": _START_S + created // 1000,
                        "handle": _concat("@", handle),
                        "display_name": display,
                        "contact_email": email,
                    }
                )
                df.write_parquet(d / "accounts.parquet", compression="zstd")

    def write_flags_links(self) -> None:
        fdir = self.out / "flags"
        fdir.mkdir(parents=True, exist_ok=True)
        f = self.flags.sort("acc", "t")
        plat = self.acc_plat[f["acc"].to_numpy()]
        sources = pl.Series(["user_reports", "moderator", "automated_filter", "verification"])
        for p, name in enumerate(self.names):
            m = plat == p
            sub = f.filter(pl.Series(m))
            out = pl.DataFrame(
                {
                    "account": self.acc_id.gather(sub["acc"].to_numpy()),
                    "label": pl.select(
                        pl.when(pl.lit(sub["spam"])).then(pl.lit("spam")).otherwise(pl.lit("clean"))
                    ).to_series(),
                    "flagged_at": self._iso(sub["t"].to_numpy(), "%Y-%m-%dT%H:%M:%SZ"),
                    "source": sources.gather(sub["src"].to_numpy()),
                    "confidence": sub["conf"],
                },
                schema={
                    "account": pl.String,
                    "label": pl.String,
                    "flagged_at": pl.String,
                    "source": pl.String,
                    "confidence": pl.Float64,
                },
            )
            out.write_csv(fdir / f"{name}.csv")
        a, b = self.links
        names = pl.Series(self.names)
        links = pl.DataFrame(
            {
                "platform_a": names.gather(self.acc_plat[a]),
                "account_a": self.acc_id.gather(a),
                "platform_b": names.gather(self.acc_plat[b]),
                "account_b": self.acc_id.gather(b),
                "source": pl.Series(["connected_accounts"] * len(a), dtype=pl.String),
            }
        )
        links.write_csv(self.out / "known_links.csv")

    def write_truth(self) -> None:
        tdir = self.out / "truth"
        tdir.mkdir(parents=True, exist_ok=True)
        A = self.A
        op = np.where(self.acc_role == _SPAMMER, self.operator[self.acc_person], -1)
        op[self.comp_acc] = self.comp_op
        comp = np.zeros(A, bool)
        comp[self.comp_acc] = True
        comp_at = np.full(A, -1, dtype=np.int64)
        comp_at[self.comp_acc] = self.comp_at
        ev = pl.DataFrame({k: self.evasion[:, i] for i, k in enumerate(EVASION_KINDS)})
        ev_list = ev.select(
            pl.concat_list([pl.when(pl.col(k)).then(pl.lit(k)) for k in EVASION_KINDS]).list.drop_nulls()
        ).to_series()
        role_names = pl.Series(list(_ROLE_NAMES))
        accounts = pl.DataFrame(
            {
                "platform": pl.Series(self.names).gather(self.acc_plat),
                "account": self.acc_id,
                "person_id": self.acc_person,
                "role": role_names.gather(self.acc_role.astype(np.int64)),
                "operator_id": _null_where(pl.Series(op), op < 0),
                "compromised": comp,
                "compromised_at": _null_where(
                    pl.from_epoch(pl.Series(_START_MS + comp_at), time_unit="ms").dt.replace_time_zone("UTC"),
                    comp_at < 0,
                ),
                "evasion": ev_list,
                "flagged": self.acc_flagged,
                "wrongly_flagged": self.acc_wrong,
                "household_id": _null_where(pl.Series(self.household[self.acc_person]),
                                            self.household[self.acc_person] < 0),
            }
        )
        accounts.write_parquet(tdir / "accounts.parquet", compression="zstd")
        people = pl.DataFrame(
            {
                "person_id": np.arange(self.N),
                "role": role_names.gather(self.role.astype(np.int64)),
                "operator_id": _null_where(pl.Series(self.operator), self.operator < 0),
                "household_id": _null_where(pl.Series(self.household), self.household < 0),
            }
        )
        people.write_parquet(tdir / "people.parquet", compression="zstd")
        n_acc = np.bincount(self.operator[self.acc_person[self.spam_acc]], minlength=self.n_ops)
        operators = pl.DataFrame(
            {
                "operator_id": np.arange(self.n_ops),
                "n_personas": self.op_sizes,
                "n_accounts": n_acc,
                "n_compromised": np.bincount(self.comp_op, minlength=self.n_ops),
            }
        )
        operators.write_parquet(tdir / "operators.parquet", compression="zstd")
        (tdir / "README.md").write_text(_TRUTH_README)

    def write_config(self) -> Path:
        lines = [
            "# Generated by reputation.generate.generate_world; paths are relative to this file.",
            "[output]",
            'database = "out/reputation.duckdb"',
            'exports = "out/exports"',
            "",
            "[settings]",
            "flag_half_life_days = 90",
            'hash_key_env = "REPUTATION_HASH_KEY"',
        ]
        for name, style in zip(self.names, self.styles, strict=True):
            fmt, msg_cols, msg_ts, csv = _MESSAGE_FORMATS[style]
            lines += _source(
                f"{name}_messages",
                "messages",
                f"{name}/messages/*.{_EXT[fmt]}",
                fmt,
                name,
                msg_cols,
                msg_ts,
                csv,
            )
            fmt, acc_file, acc_cols, acc_ts, csv = _ACCOUNT_FORMATS[style]
            lines += _source(
                f"{name}_accounts", "accounts", f"{name}/{acc_file}", fmt, name, acc_cols, acc_ts, csv
            )
        for name in self.names:
            cols = {k: k for k in ("account", "label", "flagged_at", "source", "confidence")}
            csv = {"delimiter": ",", "header": True}
            lines += _source(
                f"{name}_flags",
                "flags",
                f"flags/{name}.csv",
                "csv",
                name,
                cols,
                {"flagged_at": "iso8601"},
                csv,
            )
        cols = {k: k for k in ("platform_a", "account_a", "platform_b", "account_b", "source")}
        lines += _source(
            "known_links",
            "links",
            "known_links.csv",
            "csv",
            None,
            cols,
            {},
            {"delimiter": ",", "header": True},
        )
        path = self.out / "pipeline.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


# ----------------------------------------------------------------------------------------------
# per-platform file formats

_EXT = {"parquet": "parquet", "csv": "csv", "ndjson": "ndjson"}

# style -> (format, {canonical: file column}, {canonical time column: kind}, csv options)
_MESSAGE_FORMATS: dict[str, tuple[str, dict[str, str], dict[str, str], dict[str, Any] | None]] = {
    "linkup": (
        "parquet",
        {
            "sender": "from_user", "recipient": "to_user", "sent_at": "ts", "text": "body",
            "message_id": "msg_id", "ip": "client_ip", "device": "device_id", "url": "link",
        },
        {"sent_at": "iso8601"},
        None,
    ),
    "chirp": (
        "csv",
        {
            "sender": "author", "recipient": "target", "sent_at": "epoch_ms", "text": "content",
            "message_id": "id",
        },
        {"sent_at": "epoch_ms"},
        {"delimiter": ";", "header": True},
    ),
    "forum": (
        "ndjson",
        {
            "sender": "user", "recipient": "to", "channel": "thread", "sent_at": "time", "text": "message",
            "ip": "ip",
        },
        {"sent_at": "epoch_s"},
        None,
    ),
    "picshare": (
        "csv",
        {
            "sender": "sender_id", "recipient": "recipient_id", "sent_at": "sent", "text": "text",
            "url": "url",
        },
        {"sent_at": "iso8601"},
        {"delimiter": ",", "header": True},
    ),
    "vidtube": (
        "parquet",
        {
            "channel": "channel_id", "sender": "commenter", "recipient": "reply_to_user",
            "sent_at": "created", "text": "comment", "device": "device",
        },
        {"sent_at": "epoch_s"},
        None,
    ),
}  # fmt: skip

# style -> (format, file name, {canonical: file column}, {time column: kind}, csv options)
_ACCOUNT_FORMATS: dict[str, tuple[str, str, dict[str, str], dict[str, str], dict[str, Any] | None]] = {
    "linkup": (
        "parquet", "accounts.parquet",
        {"account": "user_id", "created_at": "created", "handle": "handle", "display_name": "full_name",
         "email": "email", "phone": "phone"},
        {"created_at": "iso8601"}, None,
    ),
    "chirp": (
        "csv", "accounts.csv",
        {"account": "handle_id", "created_at": "created_ms", "handle": "screen_name", "display_name": "name",
         "email": "email"},
        {"created_at": "epoch_ms"}, {"delimiter": ";", "header": True},
    ),
    "forum": (
        "ndjson", "accounts.ndjson",
        {"account": "user", "created_at": "joined", "handle": "username", "email": "email"},
        {"created_at": "epoch_s"}, None,
    ),
    "picshare": (
        "csv", "accounts.csv",
        {"account": "account_id", "created_at": "signup", "handle": "nick", "display_name": "display",
         "email": "mail", "phone": "mobile"},
        {"created_at": "iso8601"}, {"delimiter": ",", "header": True},
    ),
    "vidtube": (
        "parquet", "accounts.parquet",
        {"account": "uid", "created_at": "created_at", "handle": "handle", "display_name": "display_name",
         "email": "contact_email"},
        {"created_at": "epoch_s"}, None,
    ),
}  # fmt: skip


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


def _source(
    name: str,
    table: str,
    path: str,
    fmt: str,
    platform: str | None,
    columns: dict[str, str],
    timestamps: dict[str, str],
    csv: dict[str, Any] | None,
) -> list[str]:
    lines = ["", "[[sources]]", f"name = {_toml_value(name)}", f"table = {_toml_value(table)}"]
    lines += [f"path = {_toml_value(path)}", f"format = {_toml_value(fmt)}"]
    if platform is not None:
        lines.append(f"platform = {_toml_value(platform)}")
    if csv:
        lines.append("[sources.csv]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in csv.items()]
    lines.append("[sources.columns]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in columns.items()]
    if timestamps:
        lines.append("[sources.timestamps]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in timestamps.items()]
    return lines


class _MessageSink:
    """Writes message blocks to ``<platform>/messages/part-<hash>.<ext>`` in each platform's format.

    Part names are hashes of (seed, block, platform), so that the sorted order of the parts says nothing
    about which generator (honest, channels, bulk, spam) wrote them. Message ids are time-ordered
    snowflakes whose low bits are a scrambled per-platform counter: unique, and not revealing either.
    """

    def __init__(self, world: _World) -> None:
        self.w = world
        self.part = [0] * world.P
        self.counter = [0] * world.P
        self.total = 0
        for name in world.names:
            d = world.out / name / "messages"
            d.mkdir(parents=True, exist_ok=True)
            for old in d.glob("part-*"):
                old.unlink()

    def write(self, blk: _Block, tag: str) -> None:
        for p in range(self.w.P):
            idx = np.flatnonzero(blk.plat == p)
            if len(idx):
                self._write(p, blk, idx[np.argsort(blk.t[idx], kind="stable")], tag)

    def finish(self) -> None:
        """Write an empty part for platforms without messages so that every glob matches a file."""
        for p in range(self.w.P):
            if self.part[p] == 0:
                self._write(p, _Block.concat([]), np.zeros(0, dtype=np.int64), "empty")

    def _message_ids(self, p: int, t_ms: np.ndarray, epoch_ms: int) -> np.ndarray:
        c0 = self.counter[p]
        self.counter[p] += len(t_ms)
        low = _scramble(np.arange(c0, c0 + len(t_ms)), _ID_BITS, self.w.seed)
        return ((t_ms - epoch_ms) << _ID_BITS) | low

    def _write(self, p: int, blk: _Block, idx: np.ndarray, tag: str) -> None:
        w = self.w
        name, style = w.names[p], w.styles[p]
        n = len(idx)
        t = _START_MS + blk.t[idx]
        snd = w.acc_id.gather(blk.snd[idx])
        rcp = _gather(w.acc_id, blk.rcp[idx])
        text = blk.text.gather(idx)
        url = blk.url.gather(idx)
        digest = hashlib.blake2b(f"{w.seed}/{tag}/{name}".encode(), digest_size=6).hexdigest()
        path = w.out / name / "messages" / f"part-{digest}"
        self.part[p] += 1
        if style == "linkup":
            df = pl.DataFrame(
                {
                    "from_user": snd,
                    "to_user": rcp,
                    "ts": pl.from_epoch(pl.Series(t), time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
                    "body": text,
                    "msg_id": _concat("m", pl.Series(self._message_ids(p, t, _START_MS)).cast(pl.String)),
                    "client_ip": _gather(w.ip_table, blk.ip[idx]),
                    "device_id": _gather(w.dev_table, blk.dev[idx]),
                    "link": url,
                }
            )
            df.write_parquet(path.with_suffix(".parquet"), compression="zstd")
        elif style == "chirp":
            snow = self._message_ids(p, t, _ID_EPOCH_MS)
            df = pl.DataFrame({"author": snd, "target": rcp, "epoch_ms": t, "content": text, "id": snow})
            df.write_csv(path.with_suffix(".csv"), separator=";")
        elif style == "forum":
            df = pl.DataFrame(
                {
                    "user": snd,
                    "to": rcp,
                    "thread": _gather(w.ch_table, blk.ch[idx]),
                    "time": t / 1000.0,
                    "message": text,
                    "ip": _gather(w.ip_table, blk.ip[idx]),
                }
            )
            df.write_ndjson(path.with_suffix(".ndjson"))
        elif style == "picshare":
            df = pl.DataFrame(
                {
                    "sender_id": snd,
                    "recipient_id": rcp,
                    "sent": pl.from_epoch(pl.Series(t), time_unit="ms").dt.strftime("%Y-%m-%d %H:%M:%S"),
                    "text": text,
                    "url": url,
                }
            )
            df.write_csv(path.with_suffix(".csv"))
        else:
            df = pl.DataFrame(
                {
                    "channel_id": _gather(w.ch_table, blk.ch[idx]),
                    "commenter": snd,
                    "reply_to_user": rcp,
                    "created": t // 1000,
                    "comment": text,
                    "device": _gather(w.dev_table, blk.dev[idx]),
                }
            )
            df.write_parquet(path.with_suffix(".parquet"), compression="zstd")
        self.total += n


_TRUTH_README = """\
# Ground truth of a generated world

Written by `reputation.generate.generate_world`. Nothing here is an input of the pipeline; it is what
the pipeline's output is evaluated against. Person and operator ids are integers local to this world.

## accounts.parquet — one row per account on every platform

| column | meaning |
|---|---|
| platform | platform name (`linkup`, `chirp`, ...) |
| account | the platform's account id, as in that platform's files (a string) |
| person_id | the person behind the account; same person_id = same person (linkage truth) |
| role | `honest`, `bulk` (legitimate bulk sender: newsletter, recruiter, events) or `spammer` (a persona) |
| operator_id | operator running the account: set for spammer and compromised accounts, else null |
| compromised | true for an honest account taken over by an operator (it sends spam after `compromised_at`) |
| compromised_at | UTC time of the takeover, null otherwise |
| evasion | list of evasion kinds used by a spammer account (below) |
| flagged | the account has a `spam` flag in `flags/<platform>.csv` |
| wrongly_flagged | the spam flag is wrong (an honest or bulk account) |
| household_id | household of the person behind the account (people who share a home IP), null if none |

Evasion kinds:

- `fresh_account`: created shortly before it started sending (every re-registration is one);
- `handle_variation`: handle derived from the persona's other handles (j.smith -> jsmith82);
- `template_spinning`: near-duplicate texts (synonyms, reordered sentences, random tokens, tracking URLs,
  and in some variants character tricks: invisible characters inside words, Cyrillic lookalike letters,
  full-width forms);
- `timing_jitter`: messages spread over the persona's daytime instead of bot-like bursts;
- `no_shared_identifier`: own email, phone, device and IP, shared with none of the persona's accounts.

Campaign truth (operator_id) is weaker than same-person truth (person_id): personas of one operator are
different people who share templates, URLs, proxy IPs and send in lockstep.

A spam account should be scored spam; a compromised account is spam after `compromised_at`; bulk
senders and honest accounts (even if wrongly flagged) are legitimate.

## people.parquet — one row per person

| column | meaning |
|---|---|
| person_id | person id (as in accounts.parquet) |
| role | `honest`, `bulk` or `spammer` |
| operator_id | operator of a spam persona, else null |
| household_id | household the person lives in, null if none |

## operators.parquet — one row per spam operator

| column | meaning |
|---|---|
| operator_id | operator id |
| n_personas | number of personas (people) the operator runs (2–6) |
| n_accounts | number of accounts of those personas (all platforms, re-registrations included) |
| n_compromised | number of honest accounts the operator took over |

## How the world was made

Each spam persona has accounts on 2..P platforms plus re-registrations on the same platform (created
later, shortly before they start sending). Personas of an operator send the same templates in lockstep
waves (same template, same time window, overlapping recipient pools) plus solo bursts at their own
times, mostly at night and on Sundays. About a third of the personas (default difficulty) carry a
spam flag on exactly one account; a few percent of spam flags are wrong, mostly on bulk senders.
Known links (`known_links.csv`) exist only for honest or bulk people.

Households (15% / 25% / 35% of people at easy / default / adversarial difficulty; spam personas at half
that rate) are 2–4 different people who share a home IP, the same time zone and friends, mostly a last
name, and in half of the households a family device that each member sometimes uses. A spam persona in a
household takes on its family's time zone, and its accounts without the `no_shared_identifier` evasion
send half of their spam from the home line. Household members are the non-matches that look most like
one person: linking them would carry one member's spam flag onto the others.
"""
