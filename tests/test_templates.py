"""Tests of near-duplicate template clustering (reputation.graph.templates)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from reputation.config import Settings
from reputation.context import StageContext
from reputation.graph import templates as templates_module
from reputation.graph.templates import (
    NORMALISE_SQL,
    TemplateParams,
    _minhash,
    band_keys,
    build_templates,
    estimated_jaccard,
    lsh_candidates,
    lsh_pairs,
    minhash_signatures,
    normalise_texts,
    normalised_buffers,
    text_tokens,
)
from reputation.schema import STORED_TABLES

CTX = StageContext("run-1", Settings(), datetime(2026, 2, 1))
T0 = datetime(2026, 1, 5, 9)

SPAM = ("{Cheap|Discount|Low-cost} {meds|pills|medication} {without|with no} {prescription|doctor visit}. "
        "{Fast|Discreet|Quick} {shipping|delivery} {worldwide|anywhere}. {Save|Get} up to {80|70|90}% off "
        "{today only|this week}. {Order|Buy} now at {url}")
CHAT = [
    "did you finish the quarterly report for monday",
    "lunch at noon works for me see you there",
    "can you send me the slides from yesterday's talk",
    "my cat knocked the plant over again this morning",
    "the train was late so I missed the first meeting",
    "are we still going hiking on the weekend or not",
    "I found a great recipe for lentil soup last night",
    "happy birthday! hope you have a wonderful day",
]
NAMES = ["Anna", "Bob", "Carla", "Dmitri", "Eve", "Frank", "Gita", "Hiro"]


def spin(template: str, rng: random.Random) -> str:
    out, i = [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            opts = template[i + 1:j].split("|")
            out.append("http://" + rng.choice(["a", "b"]) + ".example/x" if opts == ["url"]
                       else rng.choice(opts))
            i = j + 1
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def _con(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(STORED_TABLES["messages"].ddl())
    con.executemany(
        "INSERT INTO messages (platform, sender, recipient, channel, sent_at, text) "
        "VALUES (?, ?, ?, ?, ?, ?)", rows,
    )
    return con


def world(seed: int = 0) -> list[tuple]:
    rng = random.Random(seed)
    rows: list[tuple] = []
    for i in range(40):  # spun spam from 4 accounts on 2 platforms
        rows.append(("p" if i % 2 else "q", f"spam{i % 4}", f"v{i}", None, T0 + timedelta(hours=i),
                     spin(SPAM, rng)))
    for i, name in enumerate(NAMES):  # personalised newsletter
        rows.append(("p", "news", f"u{i}", None, T0 + timedelta(minutes=i),
                     f"Hi {name}, issue #{i + 40} of the gardening newsletter: three stories we loved, "
                     f"a reader question answered and the best links of the week. Read at https://n.example/{i}"))
    for i, text in enumerate(CHAT):  # honest chat, each said once
        rows.append(("p", f"h{i}", f"h{(i + 1) % 8}", None, T0 + timedelta(hours=i), text))
    for i in range(5):  # short texts said by many people
        rows.append(("p", f"h{i}", f"h{i + 1}", None, T0, "ok thanks!"))
    return rows


def _templates_of(con: duckdb.DuckDBPyConnection, where: str) -> set[str]:
    return {r[0] for r in con.execute(f"SELECT DISTINCT template_id FROM templates WHERE {where}").fetchall()}


def test_spun_spam_and_personalised_newsletter_form_one_cluster_each():
    con = _con(world())
    n = build_templates(con, CTX)
    spam = _templates_of(con, "account LIKE 'spam%'")
    news = _templates_of(con, "account = 'news'")
    honest = _templates_of(con, "account LIKE 'h%'")
    assert len(spam) == 1 and len(news) == 1
    assert spam != news
    # the spam template spans both platforms and all four accounts
    assert con.execute("SELECT senders, platforms, messages FROM template_clusters WHERE template_id = ?",
                       [spam.pop()]).fetchall() == [(4, 2, 40)]
    # honest chat: every text its own template, and short texts get none
    assert len(honest) == len(CHAT)
    # message_templates keeps the messages of templates sent at least twice: no honest chat, all the spam
    assert con.execute("SELECT count(*) FROM message_templates WHERE sender LIKE 'h%'").fetchall()[0][0] == 0
    assert con.execute("SELECT count(*) FROM message_templates WHERE sender LIKE 'spam%'").fetchall()[0][0] == 40
    # only templates sent at least twice are listed in template_clusters, with a normalised member text
    assert con.execute("SELECT count(*) FROM template_clusters WHERE messages < 2").fetchall() == [(0,)]
    example = con.execute("SELECT example, texts FROM template_clusters WHERE template_id = ?",
                          [news.pop()]).fetchall()
    assert example[0][0].startswith("hi ") and "issue 0 of the gardening newsletter" in example[0][0]
    assert example[0][1] == len(NAMES)  # one distinct normalised text per name
    assert n == con.execute("SELECT count(*) FROM templates").fetchall()[0][0]
    assert con.execute("SELECT count(DISTINCT run_id) FROM templates").fetchall() == [(1,)]


def test_template_ids_do_not_depend_on_row_order():
    rows = world(seed=3)
    a = _con(rows)
    b = _con(list(reversed(rows)))
    build_templates(a, CTX)
    build_templates(b, CTX)
    q = "SELECT platform, account, template_id, messages FROM templates ORDER BY ALL"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_threshold_guards_against_merging_different_texts():
    con = _con(world())
    build_templates(con, CTX, TemplateParams(threshold=0.95))
    # at a near-exact threshold the spun spam falls apart into several templates
    assert len(_templates_of(con, "account LIKE 'spam%'")) > 1


def test_normalisation():
    con = duckdb.connect()
    got = con.execute(
        f"SELECT {NORMALISE_SQL} FROM (SELECT ? AS text)",
        ["Héllo,   WÖRLD!! Call 555-1234 or see https://x.example/a?b=1 now."],
    ).fetchall()[0][0]
    assert got == "héllo wörld call 0 0 or see url now"


def test_minhash_estimates_jaccard():
    rng = np.random.default_rng(0)
    a = rng.choice(2**40, size=200, replace=False).astype(np.uint64)
    fresh = rng.choice(2**40, size=100, replace=False).astype(np.uint64) + np.uint64(2**41)
    b = np.concatenate([a[:100], fresh])
    ids = np.repeat(np.arange(2), 200)
    sig = minhash_signatures(ids, np.concatenate([a, b]), 2, num_perm=256)
    est = (sig[0] == sig[1]).mean()
    assert abs(est - 100 / 300) < 0.1  # true Jaccard 1/3


def test_lsh_candidates_pairs_identical_signatures_only():
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 7, 7]], dtype=np.uint32)
    left, right = lsh_candidates(sig, bands=2, rows=2)
    assert list(zip(left.tolist(), right.tolist(), strict=True)) == [(0, 1)]


def test_b_bit_jaccard_estimate_matches_full_comparison():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**32, size=(1, 256), dtype=np.uint64).astype(np.uint32)
    other = base.copy()
    other[0, :128] = rng.integers(0, 2**32, size=128, dtype=np.uint64).astype(np.uint32)  # half equal
    sig = np.vstack([base, other, rng.integers(0, 2**32, size=(1, 256), dtype=np.uint64).astype(np.uint32)])
    est = estimated_jaccard(sig, np.array([0, 0]), np.array([1, 2]))
    assert est[0] == pytest.approx(0.5, abs=0.03)
    assert est[1] == pytest.approx(0.0, abs=0.03)  # unrelated: low bytes agree only by chance (1/256)


def test_short_texts_must_be_near_identical_to_cluster():
    # 10-word chat lines that differ in two words (J = 8/12) chain easily across thousands of people;
    # the same difference in a 22-word text (J = 20/24) is a template
    short = ["agree with the above i baked my cake this morning",
             "agree with the above i burnt my bread this morning",
             "agree with the above i ate my pie this morning"]
    frame = ("we are hiring a {} {} in berlin this month based on your profile you might be a good fit "
             "or know someone who is")
    roles = (("junior", "nurse"), ("senior", "teacher"), ("lead", "designer"))
    long = [frame.format(*role) for role in roles]
    rows = [("p", f"s{i}", "x", None, T0 + timedelta(hours=i), text) for i, text in enumerate(short)]
    rows += [("p", f"l{i}", "x", None, T0 + timedelta(hours=i), text) for i, text in enumerate(long)]
    con = _con(rows)
    build_templates(con, CTX)
    assert len(_templates_of(con, "account LIKE 's%'")) == 3
    assert len(_templates_of(con, "account LIKE 'l%'")) == 1
    # without the short-text rule the chat lines merge
    build_templates(con, CTX, TemplateParams(threshold=0.5, short_threshold=0.0))
    assert len(_templates_of(con, "account LIKE 's%'")) == 1


def test_polars_normalisation_equals_sql_normalisation():
    # the stage normalises with polars; NORMALISE_SQL is the reference (and what analysts can run)
    texts = ["Héllo,   WÖRLD!! Call 555-1234 or see https://x.example/a?b=1 now.", "", "   ", "...",
             "a  b", " a b ", "tab\there\nnewline", "WWW.Example.COM/x is www.y.z", "http://only",
             "x1y2 z٣٤ price: 80%!", "emoji 🙂🙂 ok -- fine", "Ünïcödé ÇA VA? ça va.", "a,b;c  ,  d",
             "ends with space ", "  leading", "mixed\u00a0nbsp and\u2003em space", None]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, text VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
    want = [r[0] for r in con.execute(f"SELECT {NORMALISE_SQL} FROM t ORDER BY i").fetchall()]
    got = normalise_texts(con.sql("SELECT text FROM t ORDER BY i").to_arrow_table().column("text"))
    assert got.to_pylist() == want


def test_blocked_minhash_equals_one_pass():
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 30, size=500)
    values = rng.integers(0, 2**63, size=int(lengths.sum()), dtype=np.uint64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    a = _minhash(starts, values, 16, 7, block=1)
    b = _minhash(starts, values, 16, 7, block=64)
    c = _minhash(starts, values, 16, 7, block=10_000)
    assert (a == b).all() and (a == c).all()
    # reference: the per-text minimum of ((a·x + b) mod 2^64) >> 32 for one hash function
    from reputation.graph.templates import _hash_family
    mul, add = _hash_family(16, 7)
    with np.errstate(over="ignore"):
        ref = ((values[starts[3]:starts[4]] * mul[5] + add[5]) >> np.uint64(32)).min()
    assert a[3, 5] == ref


def test_band_keys_pair_equal_bands_in_any_chunking():
    rng = np.random.default_rng(3)
    sig = rng.integers(0, 2**32, size=(50, 8), dtype=np.uint64).astype(np.uint32)
    sig[10, 4:] = sig[3, 4:]  # 3 and 10 share the second band
    sig[20] = sig[3]  # 20 is a copy of 3
    keys = band_keys(sig, bands=2, rows=4)
    assert keys.shape == (2, 50)
    assert (np.concatenate([band_keys(sig[:17], 2, 4), band_keys(sig[17:], 2, 4)], axis=1) == keys).all()
    left, right = lsh_pairs(keys)
    pairs = set(zip(left.tolist(), right.tolist(), strict=True))
    assert pairs == {(3, 10), (3, 20)}  # 10–20 is implied through the bucket root 3


def _word_hash(word: str) -> int:
    """FNV-1a 64 of the UTF-8 bytes, then Murmur3's fmix64: the word hash of minhash_texts, in Python."""
    mask = 2**64 - 1
    h = 0xCBF29CE484222325
    for byte in word.encode():
        h = ((h ^ byte) * 0x100000001B3) & mask
    for shift, mul in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB93FE53B1A85)):
        h = ((h ^ (h >> shift)) * mul) & mask
    return h ^ (h >> 33)


def test_compiled_minhash_of_texts_equals_the_numpy_reference():
    import pyarrow as pa

    from reputation.graph._kernels import minhash_texts, text_hashes
    from reputation.graph.templates import _hash_family, _string_buffers
    rng = random.Random(5)
    vocab = ["alpha", "beta", "gamma", "délta", "0", "url", "spam", "x", "naïve", "zeta"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 25))) for _ in range(300)]
    data, offsets = _string_buffers(pa.array(texts, pa.large_string()))
    pick = np.array([3, 0, 299, 17, 150], dtype=np.int64)  # any texts, written to any rows
    rows = np.array([4, 2, 0, 1, 3], dtype=np.int64)
    mul, add = _hash_family(32, 11)
    keys = np.zeros((8, 5), dtype=np.uint64)
    low = np.zeros((5, 32), dtype=np.uint8)
    _, _, unspaced = text_hashes(data, offsets[:-1], offsets[1:])
    minhash_texts(data, offsets[:-1], offsets[1:], unspaced, pick, rows, mul, add, 8, 4, False, keys, low)
    hashes = [np.array([_word_hash(w) for w in texts[t].split(" ")], dtype=np.uint64) for t in pick]
    ids = np.concatenate([np.full(len(h), i) for i, h in enumerate(hashes)])
    sig = minhash_signatures(ids, np.concatenate(hashes), len(pick), num_perm=32, seed=11)
    assert (keys[:, rows] == band_keys(sig, 8, 4)).all()
    assert (low[rows] == (sig & 0xFF)).all()


def test_lsh_pairs_equal_brute_force_bucket_stars():
    rng = np.random.default_rng(6)
    # few distinct keys (big buckets), spread over the high bits, which is what the grouping compares
    keys = rng.integers(0, 40, size=(4, 300), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    left, right = lsh_pairs(keys)
    want = set()
    for band in keys:
        for t in range(300):
            root = int(np.flatnonzero(band == band[t])[0])
            if root != t:
                want.add((root, t))
    got = list(zip(left.tolist(), right.tolist(), strict=True))
    assert len(got) == len(set(got)) and set(got) == want
    assert [t for _, t in got] == sorted(t for _, t in got)  # ordered by the second text


def test_estimated_jaccard_counts_equal_low_bytes():
    rng = np.random.default_rng(7)
    low = rng.integers(0, 256, size=(200, 64), dtype=np.uint8)
    left, right = rng.integers(0, 200, size=1000), rng.integers(0, 200, size=1000)
    low[left[0]] = low[right[0]]
    equal = (low[left] == low[right]).mean(axis=1)
    want = np.clip((equal - 1 / 256) / (1 - 1 / 256), 0, 1).astype(np.float32)
    assert (estimated_jaccard(low, left, right, chunk=300) == want).all()
    assert estimated_jaccard(low, left, right)[0] == 1.0


def test_compiled_verification_equals_estimate_and_thresholds():
    from reputation.graph._kernels import verify_pairs
    rng = np.random.default_rng(8)
    low = rng.integers(0, 4, size=(300, 64), dtype=np.uint8)  # few values: estimates spread over 0..1
    left, right = rng.integers(0, 300, size=5000), rng.integers(0, 300, size=5000)
    words = rng.integers(5, 20, size=300).astype(np.int32)
    sim = estimated_jaccard(low, left, right)
    short = np.minimum(words[left], words[right]) < 12
    want = np.where(short, sim >= 0.8, sim >= 0.3)
    assert 0 < want.sum() < len(want)
    # the prefetch distance changes nothing, including one past the last pair (clamped)
    for ahead in (0, 1, 16, 10_000):
        assert (verify_pairs(low, left, right, words, 12, 0.3, 0.8, ahead) == want).all(), ahead


def test_compaction_keeps_first_occurrences_in_storage_order_and_ids_by_rank():
    from reputation.graph._kernels import compact_representatives
    rng = np.random.default_rng(9)
    n = 400
    keys = rng.integers(0, 2**63, size=(4, n), dtype=np.uint64)
    low = rng.integers(0, 256, size=(n, 8), dtype=np.uint8)
    eligible = np.sort(rng.choice(n, 300, replace=False))
    text_hash = rng.integers(0, 60, size=300)  # many repeats
    uniq, first, inverse = np.unique(text_hash, return_index=True, return_inverse=True)
    rep_want = eligible[first]  # first occurrence of each distinct text, in rank (hash) order
    before = keys.copy()
    ids, rep, low_by_id = compact_representatives(keys, low, eligible, inverse.astype(np.int32), len(uniq))
    assert (rep == rep_want).all() and (low_by_id == low[rep_want]).all()
    order = np.argsort(rep_want)  # storage order of the representatives
    assert (ids == order).all()
    assert (keys[:, :len(uniq)] == before[:, rep_want[order]]).all()


def test_band_roots_with_ids_equal_band_roots_of_the_permuted_keys():
    # handing the sketches over in any column order, with their ids, gives the same roots as the
    # sketches gathered into id order: the smallest id of each bucket
    from reputation.graph._kernels import band_roots
    rng = np.random.default_rng(10)
    n = 5000
    by_id = rng.integers(0, 300, size=(6, n)).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # collisions
    perm = rng.permutation(n).astype(np.int32)  # column k holds id perm[k]
    want = band_roots(np.ascontiguousarray(by_id))
    got = band_roots(np.ascontiguousarray(by_id[:, perm]), perm)
    assert (got == want).all()
    for b in range(by_id.shape[0]):  # and the roots are the smallest id sharing the key
        first = {}
        for i in range(n):
            first.setdefault(by_id[b, i], i)
        assert all(want[b, i] == first[by_id[b, i]] for i in range(0, n, 97))


@pytest.mark.parametrize("parallel_min", [None, 1_000])
def test_compiled_normalisation_equals_the_regex_one_on_tricky_texts(parallel_min, monkeypatch) -> None:
    # parallel_min 1_000: the non-ASCII texts are normalised in two slices on two threads, put back in order
    if parallel_min is not None:
        monkeypatch.setattr(templates_module, "PARALLEL_NORMALISE_MIN", parallel_min)
    # URL prefixes cut short or followed by space, mixed case, digit runs inside words, every ASCII
    # white-space byte and one that is not (0x1c), and non-ASCII texts (left to the regex path)
    rng = np.random.default_rng(7)
    pieces = [*"hHtTpPsS:/wW. 0123456789aZx\t\n\x0b\x0c\r\x1c-,!?'", "http://", "https://", "www.", "HTTPS://",
              "http:// ", "www. ", "é", "Ünï", "\u00a0", "٣"]
    texts = ["".join(rng.choice(pieces, rng.integers(0, 30))) for _ in range(20_000)]
    texts += ["", "https:// x", "wwww.x", "ahttp://b c", "5http://x", "Héllo,  WÖRLD!! https://x.example/a now.",
              "ȺȺȺ", "xȾ"]  # lower case longer than the original (2 -> 3 bytes): placed past the input slots
    arr = pa.array(texts)
    data, starts, ends = normalised_buffers(arr)
    got = [bytes(data[a:b]).decode() for a, b in zip(starts, ends, strict=True)]
    assert got == normalise_texts(arr).to_pylist()
    assert sum(t.isascii() for t in texts) > 5_000 and sum(not t.isascii() for t in texts) > 5_000


def test_normalising_keeps_the_vowel_signs_of_every_script() -> None:
    texts = ["ठीक है धन्यवाद", "सीता की बात सुनी", "सोता को बीत सूना", "İstanbul'a geldim", "ขอบคุณครับ ผม",
             "love it \u2764\ufe0f so", "\u0301odd start"]
    out = normalise_texts(pa.array(texts)).to_pylist()
    assert out[0] == "ठीक है धन्यवाद" and len(out[0].split()) == 3  # "ok thanks": short, no template
    assert out[1] != out[2]  # different words stay different
    assert out[3].split() == ["i\u0307stanbul", "a", "geldim"]  # lower-case İ keeps its dot in the word
    assert len(out[4].split()) == 2
    assert out[5] == "love it so" and out[6] == "odd start"  # a mark after no letter is no word
    same = [t for i, t in enumerate(texts) if i != 3]  # DuckDB lower-cases İ to a plain i: a documented difference
    sql = duckdb.sql(f"SELECT {NORMALISE_SQL} FROM (SELECT unnest(?) AS text)", params=[same]).fetchall()
    assert [r[0] for r in sql] == [o for i, o in enumerate(out) if i != 3]  # the SQL follows the same rules


def test_compiled_tokenisers_equal_text_tokens_in_scripts_without_spaces() -> None:
    from reputation.graph._kernels import minhash_texts, text_hashes
    from reputation.graph.templates import _hash_family, _string_buffers
    rng = random.Random(8)
    # Chinese, Japanese (kana, kanji, iteration mark, half-width katakana), Thai with its vowel signs, a
    # supplementary-plane ideograph, and scripts that do use spaces (Latin, Hangul, Cyrillic, emoji)
    vocab = ["便宜", "手机", "免费送货", "今日だけ", "ｶﾀｶﾅ", "人々", "สวัสดีครับ", "\U00020000字", "iphone手机",
             "手机iphone", "a手b", "手", "sale", "0", "url", "안녕하세요", "привет", "\U0001f600", "naïve"]
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 12))) for _ in range(400)]
    texts[0] = "手"  # one lone character
    data, offsets = _string_buffers(pa.array(texts, pa.large_string()))
    _, words, unspaced = text_hashes(data, offsets[:-1], offsets[1:])
    from reputation.graph.templates import UNSPACED_RANGES
    assert unspaced.tolist() == [any(lo <= ord(c) <= hi for c in t for lo, hi in UNSPACED_RANGES) for t in texts]
    assert words.tolist() == [len(text_tokens(t)) for t in texts]
    pick = np.arange(len(texts), dtype=np.int64)
    for bigrams in (False, True):
        mul, add = _hash_family(32, 11)
        keys = np.zeros((8, len(texts)), dtype=np.uint64)
        low = np.zeros((len(texts), 32), dtype=np.uint8)
        minhash_texts(data, offsets[:-1], offsets[1:], unspaced, pick, pick, mul, add, 8, 4, bigrams, keys, low)
        hashes = []
        for t in texts:
            h = [_word_hash(w) for w in text_tokens(t)]
            if bigrams:
                h += [_mixed_pair(a, b) for a, b in zip(h, h[1:], strict=False)]
            hashes.append(np.array(h, dtype=np.uint64))
        ids = np.concatenate([np.full(len(h), i) for i, h in enumerate(hashes)])
        sig = minhash_signatures(ids, np.concatenate(hashes), len(texts), num_perm=32, seed=11)
        assert (keys == band_keys(sig, 8, 4)).all() and (low == (sig & 0xFF)).all()


def _mixed_pair(a: int, b: int) -> int:
    """The hash minhash_texts gives two consecutive tokens (``bigrams``): fmix64(a * FNV ^ b)."""
    mask = 2**64 - 1
    h = ((a * 0x100000001B3) & mask) ^ b
    for shift, mul in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB93FE53B1A85)):
        h = ((h ^ (h >> shift)) * mul) & mask
    return h ^ (h >> 33)


# a fixed frame with a few words varied per copy, as a spammer's template is (every phrase spun, two
# copies share about 30% of their bigrams, as little as two unrelated English texts share words)
CHINESE_SPAM = ("{便宜|特价}手机大甩卖，全国包邮，{今天|本周}下单立减{五十|一百}元，数量有限先到先得，"
                "详情请{访问|点击} {url}")
CHINESE_CHAT = ["你今天下午有空吗我们去喝咖啡吧", "明天的会议改到十点了请通知大家", "我刚看完那本书真的很好看推荐给你",
                "周末天气不错要不要一起去爬山", "好的谢谢", "好的谢谢", "收到", "收到"]


def test_chinese_spam_gets_one_template_and_chinese_chat_none() -> None:
    rng = random.Random(4)
    rows = [("p" if i % 2 else "q", f"spam{i % 3}", f"v{i}", None, T0 + timedelta(hours=i), spin(CHINESE_SPAM, rng))
            for i in range(30)]
    rows += [("p", f"h{i}", f"h{i + 1}", None, T0 + timedelta(hours=i), text) for i, text in enumerate(CHINESE_CHAT)]
    con = _con(rows)
    build_templates(con, CTX)
    spam = _templates_of(con, "account LIKE 'spam%'")
    assert len(spam) == 1
    assert con.execute("SELECT senders, platforms, messages FROM template_clusters WHERE template_id = ?",
                       [spam.pop()]).fetchall() == [(6, 2, 30)]  # 3 names on 2 platforms
    # each longer chat line is its own template; "ok thanks" (好的谢谢, 3 bigrams) and "got it" get none
    honest = con.execute("SELECT account, template_id FROM templates WHERE account LIKE 'h%' ORDER BY 1").fetchall()
    assert [a for a, _ in honest] == ["h0", "h1", "h2", "h3"] and len({t for _, t in honest}) == 4


def test_compatibility_letters_spam_uses_to_evade_filters_fold_to_plain_ones() -> None:
    plain = "Claim your FREE iPhone now, only 100 winners today at https://win.example/x"
    bold = "".join(chr(0x1D41A + ord(c) - 97) if c.islower() else chr(0x1D400 + ord(c) - 65) if c.isupper() else c
                   for c in plain[:-28]) + plain[-28:]  # mathematical bold letters, the URL as is
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in plain[:-28]) + plain[-28:]
    assert bold != plain and wide != plain
    out = normalise_texts(pa.array([plain, bold, wide, "ﬁnance"])).to_pylist()
    assert out[0] == out[1] == out[2] == "claim your free iphone now only 0 winners today at url"
    assert out[3] == "finance"
    rows = [("p", f"s{i}", f"v{i}", None, T0 + timedelta(hours=i), text) for i, text in enumerate([plain, bold, wide])]
    con = _con(rows)
    build_templates(con, CTX)
    assert con.execute("SELECT count(DISTINCT template_id), count(*) FROM templates").fetchall() == [(1, 3)]


def test_compiled_script_test_follows_the_documented_ranges() -> None:
    from reputation.graph._kernels import _is_unspaced
    from reputation.graph.templates import UNSPACED_RANGES
    for lo, hi in UNSPACED_RANGES:
        assert [_is_unspaced(cp) for cp in (lo - 1, lo, (lo + hi) // 2, hi, hi + 1)] == [
            any(a <= cp <= b for a, b in UNSPACED_RANGES) for cp in (lo - 1, lo, (lo + hi) // 2, hi, hi + 1)]
    assert text_tokens("ㇰㇱㇲ") == ["ㇰㇱ", "ㇱㇲ"]  # katakana phonetic extensions are kana too


def test_nfkc_stable_ranges_hold_and_the_fold_skips_only_texts_it_would_not_change() -> None:
    import unicodedata

    import polars as pl

    from reputation.graph.templates import NFKC_STABLE_RANGES
    second = {int(d.split()[1], 16) for d in map(unicodedata.decomposition, map(chr, range(0x110000)))
              if d and not d.startswith("<") and len(d.split()) == 2}  # second halves of compositions
    for lo, hi in NFKC_STABLE_RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            stable = unicodedata.is_normalized("NFKC", ch) and unicodedata.combining(ch) == 0
            assert stable and cp not in second, hex(cp)
    rng = random.Random(9)
    pieces = ["a", " ", "é", "e\u0301", "ｆｒｅｅ", "𝐟𝐫𝐞𝐞", "ﬁ", "½", "…", "привет", "手机", "ｶﾀ", "カ\u3099", "🙂",
              "\u2764\ufe0f", "ㄱ", "가\u11a8", "ก\u0e33", "Ω", "\u212b", "ß", "\u00a0", "٣", "\U0001f1fa\U0001f1f8"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) for _ in range(3_000)] + [None]
    folded = pl.Series(texts).str.normalize("NFKC").to_arrow()
    assert normalise_texts(pa.array(texts)).to_pylist() == normalise_texts(folded).to_pylist()
    python_folded = [None if t is None else unicodedata.normalize("NFKC", t) for t in texts]
    assert normalise_texts(folded).to_pylist() == normalise_texts(pa.array(python_folded)).to_pylist()


def test_lookalike_letters_fold_to_latin_and_leave_cyrillic_texts_apart() -> None:
    from reputation.graph.templates import CONFUSABLE_LETTERS
    plain = "Buy cheap replica watches today, free express shipping on every order at https://w.example/x"
    swap = str.maketrans({"c": "с", "e": "е", "a": "а", "o": "о", "p": "р"})  # Cyrillic lookalikes
    homoglyph = plain[:-24].translate(swap) + plain[-24:]
    assert homoglyph != plain and normalise_texts(pa.array([homoglyph, plain])).to_pylist()[0] == (
        "buy cheap replica watches today free express shipping on every order at url")
    import unicodedata
    assert all(unicodedata.normalize("NFKC", k) == k == k.lower() for k in CONFUSABLE_LETTERS)  # NFKC runs first
    assert normalise_texts(pa.array(["ΝΟW ΟNLY", "Сheap"])).to_pylist() == ["νow only", "cheap"]  # Ν is no v
    # within one script the fold is one-to-one: texts written normally stay as distinct as they were
    for script in ((0x0400, 0x04FF), (0x0370, 0x03FF), (0x0530, 0x058F)):
        targets = [v for k, v in CONFUSABLE_LETTERS.items() if script[0] <= ord(k) <= script[1]]
        assert len(targets) == len(set(targets))
    russian = ["Привет, как дела? Давно не виделись, приходи в субботу на ужин", "Привет, как дела? Давно не "
               "виделись, приходи в воскресенье на обед", "Скидки на часы только сегодня, доставка бесплатно"]
    rows = [("p", f"s{i}", f"v{i}", None, T0 + timedelta(hours=i), text)
            for i, text in enumerate([plain, homoglyph, *russian])]
    con = _con(rows)
    build_templates(con, CTX)
    ids = dict(con.execute("SELECT account, template_id FROM templates").fetchall())
    assert ids["s0"] == ids["s1"] and len({ids["s2"], ids["s3"], ids["s4"], ids["s0"]}) == 4


def test_invisible_characters_are_removed_so_they_split_no_word() -> None:
    import polars as pl

    from reputation.graph.templates import DEFAULT_IGNORABLE_RANGES
    # the list is Unicode's Default_Ignorable_Code_Point, as the regex engine's own table has it
    listed = {cp for lo, hi in DEFAULT_IGNORABLE_RANGES for cp in range(lo, hi + 1)}
    every = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    table = pl.Series([chr(cp) for cp in every]).str.contains(r"^\p{Default_Ignorable_Code_Point}$").to_numpy()
    assert listed == {cp for cp, hit in zip(every, table, strict=True) if hit}

    plain = "Claim your free prize now, only today: https://win.example/x"
    hidden = ("Cl\u200baim y\u00adour fr\u200dee pr\u2060ize n\ufeffow, on\u200cly to\u034fday: "
              "https://win.example/x")
    texts = [plain, hidden, "便\ufe00宜手机", "love it \u2764\ufe0f so", "\u200b", None]
    out = normalise_texts(pa.array(texts)).to_pylist()
    assert out[0] == out[1] == "claim your free prize now only today url"
    assert text_tokens(out[2]) == ["便宜", "宜手", "手机"]  # a variation selector no longer breaks the run
    assert out[3:] == ["love it so", "", None]
    sql = duckdb.sql(f"SELECT {NORMALISE_SQL} FROM (SELECT unnest(?) AS text)", params=[texts[:5]]).fetchall()
    assert [r[0] for r in sql] == out[:5]  # the SQL reference removes them too

    rows = [("p", f"s{i}", f"v{i}", None, T0 + timedelta(hours=i), text) for i, text in enumerate([plain, hidden])]
    con = _con(rows)
    build_templates(con, CTX)
    assert con.execute("SELECT count(DISTINCT template_id), count(*) FROM templates").fetchall() == [(1, 2)]



@pytest.mark.parametrize("chunks, non_ascii", [(1, 50), (3, 50), (1, 25_000), (3, 25_000)])  # 20,000: parallel
def test_kernels_get_read_only_buffers_on_every_path(chunks: int, non_ascii: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """One Arrow chunk or several, serial or parallel Unicode normalisation: the compiled kernels must see
    one array type, or they are compiled again (~5 s) the first time a run takes the other path."""
    seen = []

    def recording(kernel):
        def call(*args):
            seen.append((kernel.__name__, [a.flags.writeable for a in args[-2:]]))
            return kernel(*args)
        return call

    monkeypatch.setattr(templates_module, "place_strings", recording(templates_module.place_strings))
    monkeypatch.setattr(templates_module, "normalise_ascii", recording(templates_module.normalise_ascii))
    part = pa.array([f"Héllo wörld número {i} ok" for i in range(non_ascii)] + ["Plain ASCII text 1"] * 5)
    data, starts, ends = templates_module.normalised_buffers(pa.chunked_array([part] * chunks))
    assert seen == [("normalise_ascii", [False, False]), ("place_strings", [False, False])]
    assert bytes(data[starts[0]:ends[0]]).decode() == "héllo wörld número 0 ok"
