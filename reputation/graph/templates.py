"""Near-duplicate message templates: MinHash + LSH banding over normalised message texts.

Spam is one text sent many times, usually lightly varied so that exact matching misses it
("Hi Anna, ..." personalisation, synonym spinning, random tokens). This stage gives every message
whose text is long enough a ``template_id`` shared by all its near-copies on every platform:

1. **Normalise** each *distinct* raw text (:func:`normalise_texts`, polars' Rust regex, in chunks; the
   rules of the SQL expression :data:`NORMALISE_SQL`, with two folds that DuckDB lacks): invisible
   characters removed (a zero-width space inside "fr\\u200bee", a variation selector), compatibility
   forms → plain letters (NFKC, the first fold: full-width and mathematical "𝐅𝐑𝐄𝐄" → "FREE"), lower
   case, lookalike letters of other scripts → Latin (the second: a Cyrillic "а" in "viаgra"), URLs →
   ``url``, digit runs → ``0``, punctuation and whitespace runs → one space. Each normalised text is
   hashed and its words counted by a compiled kernel reading the Arrow string buffer
   (:mod:`reputation.graph._kernels`). Messages are joined back once, at the end, by the 64-bit hash
   of their raw text.
2. Work on the **distinct** normalised texts only. Texts with fewer than ``min_tokens`` words ("ok",
   "thanks, see you") get no template: short phrases are said by everyone and must not form clusters.
   A "word" is a token of :func:`text_tokens`: in scripts written without spaces (Chinese, Japanese,
   Thai, ...) each pair of adjacent characters is one.
3. **MinHash**: each distinct text's shingle set (its words, optionally plus word bigrams) is hashed
   word by word (FNV-1a + a Murmur3 finaliser) and ``num_perm`` multiply-add-shift hash functions take
   the per-text minimum, all in one compiled pass over the string bytes on both cores
   (:func:`~reputation.graph._kernels.minhash_texts`; :func:`minhash_signatures` is the numpy
   reference of the same hash family). Each signature is reduced at once to what later steps need: the
   LSH band keys and the low byte of each value (:func:`band_keys`), so memory stays about 200 bytes
   per distinct text.
4. **LSH banding**: ``bands × rows`` signature values; texts whose band values agree in at least one
   band are candidates. Each bucket is linked as a star to its smallest text id.
5. **Verification**: a candidate pair is kept only when its estimated Jaccard similarity is at least
   ``threshold`` (b-bit MinHash estimate from the low byte of each value), and at least
   ``short_threshold`` when the shorter text has fewer than ``short_tokens`` words. This is the guard
   against chaining unrelated texts into a giant cluster: short generic chat ("agree with the above,
   baked my cake on the way home") differs in a word or two from thousands of other messages, and the
   more messages, the more such bridges. Measured on generated worlds: with one threshold of 0.5 the
   honest chat of a 200k-message world chained into one 9,000-text cluster; at 0.6 it chained again at
   5M messages (one cluster of 512,000 texts from 57,000 senders); with the short-text rule no honest
   giant cluster forms, while spun spam (35% of its phrases re-drawn per copy) and personalised
   newsletters, which are long, still cluster.
6. **Clusters** are the connected components of the kept pairs (``scipy.sparse.csgraph``), or, with
   ``clustering="hub"``, stars around hub texts (:func:`hub_clusters`; no chaining at all, but spun
   templates split into more clusters). A cluster's ``template_id`` is ``'t'`` + the hex of the smallest
   64-bit hash of its member texts: deterministic and independent of row order.

Word unigrams are the default shingles: spinning swaps words inside fixed sentence frames, which keeps
most unigrams but breaks many bigrams (bigrams split one operator's spun template into hundreds of
clusters on the generated world).

Tables written
--------------
``templates``
    One row per (platform, account, template_id) with message counts, targets and times (the contract).
``message_templates``
    One row per message whose template was sent at least twice (a text sent once is no near-copy of
    anything, and about half of all messages are such one-offs): the message's edge columns,
    ``sent_at``, ``url_domain`` and its ``template_id``. Later stages (features, campaigns) join on it
    instead of normalising texts again.
``template_clusters``
    One row per template: distinct texts, messages, senders and platforms, so analysts can see which
    clusters are mass mailings.

Example
-------
>>> sig = minhash_signatures(np.array([0, 0, 1, 1], dtype=np.int64),
...                          np.array([1, 2, 1, 2], dtype=np.uint64), n_texts=2, num_perm=8)
>>> bool((sig[0] == sig[1]).all())
True
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .._arrays import sorted_unique_inverse
from ..context import StageContext
from ..store import comment_table
from ._kernels import (
    band_roots,
    compact_representatives,
    distinct_row_roots,
    equal_fraction,
    minhash_texts,
    normalise_ascii,
    place_strings,
    text_hashes,
    verify_pairs,
)

TABLE = "templates"
MESSAGE_TABLE = "message_templates"
CLUSTER_TABLE = "template_clusters"

#: Code point ranges of Unicode's default-ignorable characters (``Default_Ignorable_Code_Point``, UCD
#: DerivedCoreProperties: zero-width space, joiner and non-joiner, soft hyphen, word joiner, bidi controls,
#: variation selectors, tag characters, fillers). They render as nothing, so spam slips them into words
#: ("fr\u200bee") to get past word filters; kept, each would split its word in two (a format character
#: is neither letter, mark nor digit), and a variation selector after a Chinese character would break the
#: character run in two. Every normalisation removes them first. A test checks the list against the
#: regex engine's own property table.
DEFAULT_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
#: A character class of :data:`DEFAULT_IGNORABLE_RANGES`, for RE2 (DuckDB) and polars' regex alike.
_IGNORABLE_RE = "[" + "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in DEFAULT_IGNORABLE_RANGES) + "]"

#: SQL expression normalising a column named ``text`` (see module docs): invisible characters
#: (:data:`DEFAULT_IGNORABLE_RANGES`) removed, URLs → ``url``, digit runs → ``0``, then every run of
#: characters that are neither letters, combining marks nor digits (punctuation and whitespace alike) →
#: one space. ``\pL``/``\pM``/``\pN`` keep the letters, vowel signs and digits of
#: every script (RE2's ``\w`` is ASCII; without ``\pM`` a Devanagari or Thai word fell apart at each
#: vowel sign). For analysts reproducing templates in SQL: RE2 and polars' regex differ on a few Unicode
#: details (a final sigma, a no-break space inside a URL), and :func:`normalise_texts` also folds
#: compatibility forms (NFKC: full-width and mathematical letters, ligatures, ½) and lookalike letters
#: (:data:`CONFUSABLE_LETTERS`); the pipeline uses :func:`normalise_texts`.
NORMALISE_SQL = (
    "trim(regexp_replace(regexp_replace(regexp_replace(regexp_replace(lower(' ' || "
    f"regexp_replace(text, '{_IGNORABLE_RE}', '', 'g')), "
    r"'(https?://|www\.)\S+', ' url ', 'g'), "
    r"'\pN+', '0', 'g'), "
    r"'([^\pL\pN\pM])\pM+', '\1', 'g'), "
    r"'[^\pL\pM\pN]+', ' ', 'g'))"
)


#: Distinct raw texts normalised per chunk (bounds the memory of the string copies).
NORMALISE_CHUNK = 1_000_000

#: Patterns of :func:`normalise_texts`, the rules of :data:`NORMALISE_SQL`. The last one
#: matches only runs of non-alphanumerics that are not already one plain space (a run containing a
#: character other than a space, or several spaces): replacing the single spaces between words too
#: would give the same text, but costs one replacement per word.
_URL_RE = r"(https?://|www\.)\S+"
_DIGITS_RE = r"\pN+"
#: A combining mark that follows no letter or digit (an emoji's variation selector, say) goes with its
#: symbol, so that it is not a word of its own.
_ORPHAN_MARK_RE = r"([^\pL\pN\pM])\pM+"
_SEPARATOR_RE = r" *[^\pL\pM\pN ][^\pL\pM\pN]*| {2,}"


#: Code point ranges (beyond ASCII) that NFKC leaves as they are in any text: normalised, no compatibility
#: mapping, not a combining mark, never the second half of a composition (Python's ``unicodedata``,
#: Unicode 14, over the common blocks: Latin, Greek, Cyrillic, Armenian, Hebrew, Arabic, Devanagari, Thai,
#: punctuation, arrows, symbols, kana, CJK, Hangul, emoji; a test re-checks every one). A text made of
#: these alone skips the NFKC fold of :func:`normalise_texts`, which would cost about as much as the rest
#: of its normalisation; any other text (one full-width letter is enough) is folded.
NFKC_STABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0080, 0x009F), (0x00A1, 0x00A7), (0x00A9, 0x00A9), (0x00AB, 0x00AE), (0x00B0, 0x00B1), (0x00B6, 0x00B7),
    (0x00BB, 0x00BB), (0x00BF, 0x0131), (0x0134, 0x013E), (0x0141, 0x0148), (0x014A, 0x017E), (0x0180, 0x01C3),
    (0x01CD, 0x01F0), (0x01F4, 0x024F), (0x0370, 0x0373), (0x0375, 0x0377), (0x037B, 0x037D), (0x037F, 0x037F),
    (0x0386, 0x0386), (0x0388, 0x038A), (0x038C, 0x038C), (0x038E, 0x03A1), (0x03A3, 0x03CF), (0x03D7, 0x03EF),
    (0x03F3, 0x03F3), (0x03F6, 0x03F8), (0x03FA, 0x03FF), (0x0400, 0x0482), (0x0488, 0x052F), (0x0531, 0x0556),
    (0x0559, 0x0586), (0x0588, 0x058A), (0x058D, 0x058F), (0x05BE, 0x05BE), (0x05C0, 0x05C0), (0x05C3, 0x05C3),
    (0x05C6, 0x05C6), (0x05D0, 0x05EA), (0x05EF, 0x05F4), (0x0600, 0x060F), (0x061B, 0x064A), (0x0660, 0x066F),
    (0x0671, 0x0674), (0x0679, 0x06D5), (0x06DD, 0x06DE), (0x06E5, 0x06E6), (0x06E9, 0x06E9), (0x06EE, 0x06FF),
    (0x0900, 0x093B), (0x093D, 0x094C), (0x094E, 0x0950), (0x0955, 0x0957), (0x0960, 0x097F), (0x0E01, 0x0E32),
    (0x0E34, 0x0E37), (0x0E3F, 0x0E47), (0x0E4C, 0x0E5B), (0x1100, 0x1160), (0x1176, 0x11A7), (0x11C3, 0x11FF),
    (0x200B, 0x2010), (0x2012, 0x2016), (0x2018, 0x2023), (0x2027, 0x202E), (0x2030, 0x2032), (0x2035, 0x2035),
    (0x2038, 0x203B), (0x203D, 0x203D), (0x203F, 0x2046), (0x204A, 0x2056), (0x2058, 0x205E), (0x2060, 0x2064),
    (0x2066, 0x206F), (0x20A0, 0x20A7), (0x20A9, 0x20C0), (0x2190, 0x21FF), (0x2300, 0x2328), (0x232B, 0x23FF),
    (0x25A0, 0x27BF), (0x2B00, 0x2B73), (0x2B76, 0x2B95), (0x2B97, 0x2BFF), (0x3001, 0x3029), (0x3030, 0x3035),
    (0x3037, 0x3037), (0x303B, 0x303F), (0x3041, 0x3096), (0x309D, 0x309E), (0x30A0, 0x30FE), (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFE00, 0xFE0F), (0x1F000, 0x1F02B), (0x1F030, 0x1F093), (0x1F0A0, 0x1F0AE),
    (0x1F0B1, 0x1F0BF), (0x1F0C1, 0x1F0CF), (0x1F0D1, 0x1F0F5), (0x1F10B, 0x1F10F), (0x1F12F, 0x1F12F),
    (0x1F150, 0x1F169), (0x1F16D, 0x1F18F), (0x1F191, 0x1F1AD), (0x1F1E6, 0x1F1FF), (0x1F260, 0x1F265),
    (0x1F300, 0x1F6D7), (0x1F6DD, 0x1F6EC), (0x1F6F0, 0x1F6FC), (0x1F700, 0x1F773), (0x1F780, 0x1F7D8),
    (0x1F7E0, 0x1F7EB), (0x1F7F0, 0x1F7F0), (0x1F800, 0x1F80B), (0x1F810, 0x1F847), (0x1F850, 0x1F859),
    (0x1F860, 0x1F887), (0x1F890, 0x1F8AD), (0x1F8B0, 0x1F8B1), (0x1F900, 0x1FA53), (0x1FA60, 0x1FA6D),
    (0x1FA70, 0x1FA74), (0x1FA78, 0x1FA7C), (0x1FA80, 0x1FA86), (0x1FA90, 0x1FAAC), (0x1FAB0, 0x1FABA),
    (0x1FAC0, 0x1FAC5), (0x1FAD0, 0x1FAD9), (0x1FAE0, 0x1FAE7), (0x1FAF0, 0x1FAF6),
)
_NFKC_MAY_CHANGE_RE = "[^\\x00-\\x7F" + "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in NFKC_STABLE_RANGES) + "]"


#: Lower-case letters of Cyrillic, Greek, Armenian and IPA that look like one plain Latin letter (a subset
#: of Unicode's confusables, UTS #39): the homoglyphs spam mixes into words ("сheap" with a Cyrillic с,
#: "viаgra" with a Cyrillic а) to slip past word filters. :func:`normalise_texts` replaces them in every
#: text, so a homoglyph copy shares its words with the plain one. Within one of those scripts the mapping
#: is one-to-one (no two Cyrillic letters fold to the same Latin one), so texts of that script written
#: normally stay as distinct as they were. The fold follows lower-casing, so a letter is only listed when
#: its capital imitates the same Latin letter (not Greek ν, a "v" whose capital Ν is an "N"), and capital
#: lookalikes whose small letter imitates nothing (Cyrillic В, Н, М, Т, К) are not folded: folding them
#: before lower-casing would set "Нет" apart from "нет". Every entry is NFKC-stable, since NFKC runs first.
CONFUSABLE_LETTERS: dict[str, str] = {
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l",  # Cyrillic (not ү: у is y already)
    "ο": "o", "α": "a", "ρ": "p", "ι": "i", "χ": "x", "ϳ": "j",  # Greek
    "օ": "o", "ս": "u", "ո": "n", "հ": "h", "զ": "q",  # Armenian
    "ɑ": "a", "ɡ": "g",  # IPA
}
_CONFUSABLE_RE = "[" + "".join(CONFUSABLE_LETTERS) + "]"


#: Code point ranges of the scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, the
#: ideographic iteration and closing marks, Japanese kana (with the phonetic extensions and the kana
#: supplements), CJK ideographs (extension A, the unified and compatibility blocks, the supplementary
#: planes' extensions) and half-width katakana. Their text is one "word" per phrase, so a run of them is
#: shingled as character bigrams instead (:func:`text_tokens`).
UNSPACED_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3005, 0x3007), (0x3040, 0x30FF),
    (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F),
    (0x1B000, 0x1B16F), (0x20000, 0x3FFFF))


def text_tokens(normalised: str) -> list[str]:
    """The tokens of a normalised text, the shingles MinHash compares and ``min_tokens`` counts.

    The words between spaces, except that a run of characters of a script written without spaces
    (:data:`UNSPACED_RANGES`: Chinese, Japanese, Thai, ...) gives its overlapping character bigrams, and a
    lone such character itself: a Chinese sentence is one "word" to a space split, so without this two
    copies of a spam text that differ in one character would share no shingle, and no Chinese text would
    ever get a template. Bigrams, not single characters, because a few hundred common characters make up
    most of any Chinese text. This is the reference of the compiled tokenisers
    (:func:`~reputation.graph._kernels.text_hashes`, :func:`~reputation.graph._kernels.minhash_texts`).

    >>> text_tokens("buy 便宜手机 now")
    ['buy', '便宜', '宜手', '手机', 'now']
    >>> text_tokens("iphone手机 ok")
    ['iphone', '手机', 'ok']
    """
    def unspaced(ch: str) -> bool:
        cp = ord(ch)
        return any(lo <= cp <= hi for lo, hi in UNSPACED_RANGES)

    tokens: list[str] = []
    for word in normalised.split(" ") if normalised else []:
        i = 0
        while i < len(word):
            kind = unspaced(word[i])
            j = i
            while j < len(word) and unspaced(word[j]) == kind:
                j += 1
            run = word[i:j]
            tokens += ([run[k:k + 2] for k in range(len(run) - 1)] or [run]) if kind else [run]
            i = j
    return tokens


def normalise_texts(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Normalise many texts at once, by the rules of :data:`NORMALISE_SQL`, with polars' Rust regex.

    Invisible characters removed first (:data:`DEFAULT_IGNORABLE_RANGES`: "fr\\u200bee" is "free"),
    Unicode compatibility forms folded to their plain letters (NFKC: the mathematical bold and
    script letters, full-width forms and ligatures that spam uses to slip past word filters, "𝐅𝐑𝐄𝐄" and
    "ＦＲＥＥ" become "FREE"), lower case, lookalike letters of other scripts → the Latin
    letter (:data:`CONFUSABLE_LETTERS`: a Cyrillic "а" in "viаgra"; these two folds are what
    :data:`NORMALISE_SQL` lacks), URLs → ``url``, digit runs → ``0``, runs of characters that are neither
    letters, combining marks (a Devanagari vowel sign, say) nor digits → one space, trimmed. About five
    times faster than the three RE2 passes in DuckDB, which were the largest single cost of the stage.

    Parameters
    ----------
    texts
        Arrow string array (nulls stay null).

    Returns
    -------
    pyarrow.Array
        The normalised texts, aligned with ``texts``.

    Example
    -------
    >>> normalise_texts(pa.array(["Héllo,  WÖRLD!! Call 555-1234: https://x.example/a?b=1 now.",
    ...                           "ठीक है, धन्यवाद!", "𝐅𝐑𝐄𝐄 ｉＰｈｏｎｅ", "Buy сhеар viаgrа"])).to_pylist()
    ['héllo wörld call 0 0 url now', 'ठीक है धन्यवाद', 'free iphone', 'buy cheap viagra']
    """
    s = pl.Series("text", texts).cast(pl.String)
    hidden = s.str.contains(_IGNORABLE_RE).fill_null(False)
    if hidden.any():
        s = s.scatter(hidden.arg_true(), s.filter(hidden).str.replace_all(_IGNORABLE_RE, ""))
    fold = s.str.contains(_NFKC_MAY_CHANGE_RE).fill_null(False)
    if fold.any():
        s = s.scatter(fold.arg_true(), s.filter(fold).str.normalize("NFKC"))
    s = s.str.to_lowercase()
    look = s.str.contains(_CONFUSABLE_RE).fill_null(False)
    if look.any():
        s = s.scatter(look.arg_true(), s.filter(look).str.replace_many(list(CONFUSABLE_LETTERS),
                                                                       list(CONFUSABLE_LETTERS.values())))
    out = (s.str.replace_all(_URL_RE, " url ")
           .str.replace_all(_DIGITS_RE, "0")
           .str.replace_all(_ORPHAN_MARK_RE, "$1")
           .str.replace(r"^\pM+", "")
           .str.replace_all(_SEPARATOR_RE, " ")
           .str.strip_chars(" "))
    return out.to_arrow()


#: Fewer texts than this are normalised by polars in one call; more are split over ``NORMALISE_THREADS``.
PARALLEL_NORMALISE_MIN = 20_000
#: Threads of :func:`_normalise_texts_parallel`: one per core of the 2-core target machine.
NORMALISE_THREADS = 2


def _normalise_texts_parallel(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`normalise_texts` of ``texts`` in ``NORMALISE_THREADS`` slices at once.

    Each of polars' string passes runs on one core, and the stage has nothing else to do meanwhile, so
    the non-ASCII texts, a sixth of the 23M distinct texts of a 30M-message world and about two thirds
    of the normalisation time, are split in halves normalised on two threads (polars releases the GIL).
    On 160k such texts (2 cores): 0.28–0.33 s against 0.46–0.55 s in one call. The result is the same
    array, row for row.
    """
    if len(texts) < PARALLEL_NORMALISE_MIN:
        return normalise_texts(texts)
    step = -(-len(texts) // NORMALISE_THREADS)
    with ThreadPoolExecutor(max_workers=NORMALISE_THREADS) as pool:
        parts = list(pool.map(normalise_texts, [texts.slice(i, step) for i in range(0, len(texts), step)]))
    return pa.concat_arrays(parts)


def normalised_buffers(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normalised ``texts`` as a byte buffer with each text's start and end, equal to
    :func:`normalise_texts`'s strings.

    All-ASCII texts (most of them) are normalised by a compiled pass over the Arrow bytes on both cores
    (:func:`~reputation.graph._kernels.normalise_ascii`), each into its own input slot (the output is never
    longer); the rest, which need Unicode case folding and letter classes, by :func:`normalise_texts`,
    placed into their slots too where they fit. Nulls come out empty.

    >>> data, starts, ends = normalised_buffers(pa.array(["Call 555-1234 NOW: www.x.io", "Ünïcode, ça va?"]))
    >>> [bytes(data[a:b]).decode() for a, b in zip(starts, ends)]
    ['call 0 0 now url', 'ünïcode ça va']
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    data, offsets = _string_buffers(texts)
    out, lengths, is_ascii = normalise_ascii(data, offsets)
    starts = offsets[:-1].copy()
    other = np.flatnonzero(~is_ascii)
    if len(other):
        rest, rest_offsets = _string_buffers(_normalise_texts_parallel(texts.take(pa.array(other))))
        misfit = place_strings(out, starts, lengths, np.diff(offsets), other, rest, rest_offsets)
        if misfit.any():  # rare: Unicode lower case can be longer than the original ('Ⱥ': 2 -> 3 bytes)
            k = np.flatnonzero(misfit)
            starts[other[k]] = len(out) + rest_offsets[k]
            lengths[other[k]] = np.diff(rest_offsets)[k]
            out = np.concatenate([out, rest])
    return out, starts, starts + lengths


@dataclass(frozen=True)
class TemplateParams:
    """Tuning of the template clustering.

    Attributes
    ----------
    min_tokens
        Texts with fewer words (after normalisation) get no template.
    num_perm
        MinHash functions; must equal ``bands * rows``.
    bands, rows
        LSH banding: a pair with Jaccard ``s`` becomes a candidate with probability
        ``1 - (1 - s**rows)**bands``: with 16 × 4, 0.89 at s = 0.6, 0.98 at s = 0.8, but only 0.12 at
        s = 0.3, so chance collisions of unrelated chat stay few. A near-duplicate family is connected
        through many pairs, so a per-pair recall below 1 rarely splits it.
    threshold
        Minimum estimated Jaccard similarity of a kept pair.
    short_tokens, short_threshold
        A pair whose shorter text has fewer than ``short_tokens`` words needs an estimated Jaccard of
        at least ``short_threshold`` (near-identical), so that short generic chat cannot chain.
    bigrams
        Add word bigrams to the shingle set (stricter on word order; less tolerant of spinning).
    seed
        Seed of the hash family (fixed for reproducibility).
    clustering
        ``"components"`` (connected components of the kept pairs) or ``"hub"`` (:func:`hub_clusters`).
    """

    min_tokens: int = 5
    num_perm: int = 64
    bands: int = 16
    rows: int = 4
    threshold: float = 0.6
    bigrams: bool = False
    clustering: Literal["hub", "components"] = "components"
    short_tokens: int = 12
    short_threshold: float = 0.8
    seed: int = 20260101


def _hash_family(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mul = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    add = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return mul, add


def minhash_signatures(text_ids: np.ndarray, shingle_hashes: np.ndarray, n_texts: int, num_perm: int = 64,
                       seed: int = 20260101) -> np.ndarray:
    """MinHash signatures of many shingle sets at once.

    The hash family is multiply-add-shift, ``h_i(x) = ((a_i · x + b_i) mod 2^64) >> 32`` with random odd
    ``a_i`` (Dietzfelbinger et al.), applied to 64-bit shingle hashes: a few vectorised passes per
    function over all shingles, then a per-text minimum with ``np.minimum.reduceat``.

    Parameters
    ----------
    text_ids
        Text index (0..n_texts-1) of each shingle, sorted ascending; every text has ≥ 1 shingle.
    shingle_hashes
        64-bit hash of each shingle (``uint64``), aligned with ``text_ids``.
    n_texts
        Number of texts.
    num_perm
        Number of hash functions.
    seed
        Seed of the hash family; the same seed gives the same signatures.

    Returns
    -------
    numpy.ndarray
        ``(n_texts, num_perm)`` ``uint32`` array; row i is text i's signature. Two texts agree in a
        column with probability (about) the Jaccard similarity of their shingle sets.
    """
    starts = np.flatnonzero(np.r_[True, text_ids[1:] != text_ids[:-1]])
    if len(starts) != n_texts:
        raise ValueError(f"expected {n_texts} texts with shingles, got {len(starts)}")
    return _minhash(starts, shingle_hashes, num_perm, seed)


def _minhash(starts: np.ndarray, shingle_hashes: np.ndarray, num_perm: int, seed: int,
             block: int = 2048) -> np.ndarray:
    """MinHash of consecutive runs of ``shingle_hashes`` beginning at ``starts`` (all non-empty).

    Works through ``block`` texts at a time (about 30,000 shingles, a quarter MiB), so that all
    ``num_perm`` passes over a block run in the CPU cache instead of streaming the whole array from
    memory once per hash function: about twice as fast. Per hash function: multiply, add, per-text
    minimum; the ``>> 32`` is monotone, so it is applied to the minima only.
    """
    mul, add = _hash_family(num_perm, seed)
    n = len(starts)
    sig = np.empty((n, num_perm), dtype=np.uint32)
    h = np.ascontiguousarray(shingle_hashes, dtype=np.uint64)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.r_[starts[1:], len(h)]
    buf = np.empty(len(h), dtype=np.uint64)
    shift = np.uint64(32)
    with np.errstate(over="ignore"):
        for s in range(0, n, block):
            e = min(s + block, n)
            lo, hi = int(starts[s]), int(ends[e - 1])
            hh, bb, st = h[lo:hi], buf[:hi - lo], starts[s:e] - lo
            out = sig[s:e]
            for i in range(num_perm):
                np.multiply(hh, mul[i], out=bb)
                np.add(bb, add[i], out=bb)
                out[:, i] = np.minimum.reduceat(bb, st) >> shift
    return sig


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """64-bit key of each LSH band of each signature: a mixed hash of the band's ``rows`` values.

    Computed chunk by chunk right after the MinHash (see :func:`cluster_texts`), so the full
    ``n × num_perm`` signatures of all texts are never held at once: per text only the band keys
    (``8 × bands`` bytes) and the low bytes of the signature (``num_perm`` bytes) are kept. Texts with
    equal band values get equal keys. (32-bit keys would halve that memory, but a chance collision
    merges two buckets, and the star linking to the merged bucket's root then loses true pairs: at
    10M messages that changed a few clusters.)

    Returns
    -------
    numpy.ndarray
        ``(bands, n)`` ``uint64`` array, band-major so that each band is contiguous.
    """
    n = sig.shape[0]
    if bands * rows > sig.shape[1]:
        raise ValueError(f"bands × rows = {bands * rows} exceeds the signature length {sig.shape[1]}")
    keys = np.empty((bands, n), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for b in range(bands):
            key = keys[b]
            key[:] = 0
            for r in range(rows):
                key *= np.uint64(0x100000001B3)
                key ^= sig[:, b * rows + r]
            key ^= key >> np.uint64(31)  # mix, so that the high bits depend on every row's value
            key *= np.uint64(0xBF58476D1CE4E5B9)
            key ^= key >> np.uint64(29)
    return keys


def lsh_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs from band keys (see :func:`band_keys`): texts with equal keys in some band.

    Per band, texts are grouped by key (:func:`~reputation.graph._kernels.band_roots`) and each bucket
    is linked as a star to its root (smallest index), so there are at most ``n × bands`` pairs.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``left`` and ``right`` text indices, ``left < right``, duplicates removed, ordered by ``right``.
    """
    if keys.shape[1] >= 2**31:
        raise ValueError("lsh_pairs: at most 2**31 - 1 texts")
    # compiled: radix partition + in-cache sorts per band (both cores), then each text's distinct roots
    return distinct_row_roots(band_roots(np.ascontiguousarray(keys, dtype=np.uint64)))


def lsh_candidates(sig: np.ndarray, bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs from LSH banding: texts that agree on every row of some band.

    :func:`band_keys` then :func:`lsh_pairs`; see there.
    """
    return lsh_pairs(band_keys(sig, bands, rows))


def estimated_jaccard(sig: np.ndarray, left: np.ndarray, right: np.ndarray,
                      chunk: int = 4_000_000) -> np.ndarray:
    """MinHash Jaccard estimate of each pair, from the lowest 8 bits of the signature values.

    ``sig`` may be the full signatures or only their low bytes (``uint8``, see :func:`cluster_texts`).

    b-bit MinHash (Li & König 2010): comparing only the low byte of each value moves 4× less memory;
    two unequal values still agree in it with probability 1/256, which the estimate corrects for:
    ``J ≈ (share_equal − 1/256) / (1 − 1/256)`` (clipped to 0..1).
    """
    low = sig if sig.dtype == np.uint8 else sig.astype(np.uint8)  # low byte of each value
    low = np.ascontiguousarray(low)
    c = 1.0 / 256.0
    out = np.empty(len(left), dtype=np.float32)
    for s in range(0, len(left), chunk):
        e = min(s + chunk, len(left))
        equal = equal_fraction(low, np.ascontiguousarray(left[s:e]), np.ascontiguousarray(right[s:e]))
        out[s:e] = np.clip((equal - c) / (1.0 - c), 0.0, 1.0)
    return out


def hub_clusters(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cluster a similarity graph around hubs, so that clusters cannot chain.

    Every node joins its best neighbour — the one with the most neighbours (ties: smallest index) — or
    stays alone when it is itself better than all its neighbours; a node that some other node joined
    is a hub and keeps itself. Every member is therefore directly similar to its cluster's hub, and
    unlike connected components, a path of pairwise-similar texts (a → b → c → …) cannot merge
    thousands of unrelated chat messages into one cluster as the data grows.

    Parameters
    ----------
    n
        Number of nodes.
    left, right
        Edges (node indices).

    Returns
    -------
    numpy.ndarray
        The hub (a node index) of each node.

    Example
    -------
    >>> hub_clusters(5, np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4])).tolist()  # a chain is cut
    [1, 1, 2, 3, 3]
    >>> hub_clusters(4, np.array([0, 0, 0]), np.array([1, 2, 3])).tolist()  # a star stays whole
    [0, 0, 0, 0]
    """
    idx = np.arange(n, dtype=np.int64)
    deg = np.bincount(left, minlength=n) + np.bincount(right, minlength=n)
    score = deg.astype(np.int64) * np.int64(n) + (n - 1 - idx)  # more neighbours first, then lower index
    best = score.copy()
    np.maximum.at(best, left, score[right])
    np.maximum.at(best, right, score[left])
    hub = n - 1 - best % n
    is_hub = np.zeros(n, dtype=bool)
    is_hub[hub[hub != idx]] = True
    hub[is_hub] = idx[is_hub]
    return hub


def cluster_pairs(m: int, left: np.ndarray, right: np.ndarray, low: np.ndarray, n_tokens: np.ndarray,
                  params: TemplateParams) -> np.ndarray:
    """Verify candidate pairs of ``m`` texts and cluster the kept ones; return each text's label.

    Steps 5–6 of the module docs: a pair is kept when its estimated Jaccard (from the signatures' low
    bytes ``low``) passes the threshold, or the strict one when the shorter text has fewer than
    ``short_tokens`` words (``n_tokens``); clusters are the connected components of the kept pairs
    (label: the smallest text index of the component), or hubs (:func:`hub_clusters`).
    """
    if m == 0:
        return np.empty(0, dtype=np.int64)
    if len(left):
        # compiled: the estimate of estimated_jaccard against the threshold, or against the strict
        # threshold when the shorter text is short (short texts are where generic chat chains together)
        keep = verify_pairs(np.ascontiguousarray(low), left, right, np.ascontiguousarray(n_tokens),
                            params.short_tokens, float(params.threshold),
                            float(max(params.short_threshold, params.threshold)))
        left, right = left[keep], right[keep]
    if params.clustering == "components":
        graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(m, m)).tocsr()
        _, comp = connected_components(graph, directed=False)
        # component label → smallest text index in it (stable, order-free)
        first = np.full(comp.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, comp, np.arange(m, dtype=np.int64))
        return first[comp]
    return hub_clusters(m, left, right).astype(np.int64)


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes and int64 offsets of an Arrow string array (no copy for ``large_string``), read-only.

    Read-only whatever Arrow allocated them as (a slice of DuckDB's result is immutable, a concatenation
    or a cast is not): the compiled kernels they go to are then compiled for one type, not again the
    first time a run takes the other path (the parallel normalisation, from 20,000 non-ASCII texts).
    """
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    offsets.flags.writeable = False
    data.flags.writeable = False
    return data, offsets


TABLE_DOC = (
    "Near-duplicate text templates per account: one row per (platform, account, template_id). "
    "template_id is global across platforms: messages whose normalised texts are near-copies "
    "(MinHash/LSH, estimated Jaccard of word sets ≥ threshold, connected) share it. Texts shorter "
    "than the minimum word count have no template and are not counted here."
)
COLUMN_DOCS: dict[str, str] = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform of the sending account.",
    "account": "Sending account id.",
    "template_id": "Near-duplicate cluster id ('t' + 16 hex digits), the same on every platform.",
    "messages": "Messages the account sent with this template, count.",
    "recipients": "Distinct targets the account sent this template to (the direct recipient, or the "
    "channel for posts without a recipient), count.",
    "first_at": "First send of this template by the account (UTC).",
    "last_at": "Last send of this template by the account (UTC).",
}
MESSAGE_DOC = (
    "Per-message template assignment: one row per message whose text belongs to a template sent at "
    "least twice (texts sent once are left out: they are nobody's near-copy). Used by features and "
    "campaigns; join key is the message's edge and time."
)
MESSAGE_COLUMN_DOCS: dict[str, str] = {
    "run_id": "Run that wrote this row (see runs).",
    "platform": "Platform.",
    "sender": "Sending account id.",
    "recipient": "Recipient (direct message) or null.",
    "channel": "Channel or null.",
    "sent_at": "Send time (UTC), may be null.",
    "url_domain": "URL domain the message carried (see messages), or null.",
    "template_id": "Template of the message text (see templates).",
}
CLUSTER_DOC = "One row per template: how widely it was sent. Mass mailings have many messages and targets."
CLUSTER_COLUMN_DOCS: dict[str, str] = {
    "run_id": "Run that wrote this row (see runs).",
    "template_id": "Template id (see templates).",
    "texts": "Distinct normalised texts in the cluster, count.",
    "messages": "Messages with this template, count.",
    "senders": "Distinct sending accounts (platform, account), count.",
    "platforms": "Distinct platforms it was sent on, count.",
    "example": "One normalised member text (the one the template id is derived from), for analysts: lower "
    "case, URLs as 'url', digit runs as '0', lookalike letters of other scripts as Latin ones (Cyrillic "
    "text shows some Latin letters).",
    "first_at": "First send (UTC).",
    "last_at": "Last send (UTC).",
}


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def template_ids(keys: np.ndarray) -> pa.Array:
    """Template ids of 64-bit template keys: ``'t'`` + 16 lower-case hex digits, built as one Arrow buffer.

    (In SQL that was four string functions per row: 1.7 s for 4.5M rows at 10M messages.)

    >>> template_ids(np.array([255, 2**64 - 1], dtype=np.uint64)).to_pylist()
    ['t00000000000000ff', 'tffffffffffffffff']
    """
    keys = np.asarray(keys, dtype=np.uint64)
    n = len(keys)
    chars = np.empty((n, 17), dtype=np.uint8)
    chars[:, 0] = ord("t")
    for i in range(16):
        chars[:, 1 + i] = _HEX_DIGITS[(keys >> np.uint64(60 - 4 * i)) & np.uint64(15)]
    offsets = np.arange(0, 17 * (n + 1), 17, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])


#: Columns of the three tables. Template ids are high-cardinality short strings: zstd stores them in a
#: third of the CPU time of DuckDB's own dictionary/FSST choice (measured on 5.5M rows: 0.6 vs 1.8 s).
_TEMPLATE_ID = "template_id VARCHAR USING COMPRESSION zstd"
_COLUMNS = {
    MESSAGE_TABLE: "run_id VARCHAR, platform VARCHAR, sender VARCHAR, recipient VARCHAR, channel VARCHAR, "
                   f"sent_at TIMESTAMP, url_domain VARCHAR, {_TEMPLATE_ID}",
    TABLE: f"run_id VARCHAR, platform VARCHAR, account VARCHAR, {_TEMPLATE_ID}, messages BIGINT, "
           "recipients BIGINT, first_at TIMESTAMP, last_at TIMESTAMP",
    CLUSTER_TABLE: f"run_id VARCHAR, {_TEMPLATE_ID}, texts BIGINT, messages BIGINT, senders BIGINT, "
                   "platforms BIGINT, example VARCHAR, first_at TIMESTAMP, last_at TIMESTAMP",
}


def _write_template_tables(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Write ``message_templates``, ``templates`` and ``template_clusters`` from the registered
    ``_tpl_map_view`` (raw text hash → template id, and whether the template was sent at least twice)
    and ``_tpl_cluster_view`` (id, texts and example of every template sent at least twice).

    A template sent once has one (account, template) row that needs no aggregation; only the messages
    of templates sent at least twice (``message_templates``) are grouped.
    """
    p = {"run_id": run_id}
    for table, columns in _COLUMNS.items():
        con.execute(f"CREATE OR REPLACE TABLE {table} ({columns})")
    # scanned twice: copied into DuckDB once (parallel scans, native strings)
    con.execute("CREATE OR REPLACE TEMP TABLE _tpl_map AS SELECT rh, template_id, repeated FROM _tpl_map_view")
    con.execute(
        f"""INSERT INTO {MESSAGE_TABLE}
            SELECT CAST($run_id AS VARCHAR) AS run_id, m.platform, m.sender, m.recipient, m.channel,
                   m.sent_at, m.url_domain, p.template_id
            FROM messages m JOIN _tpl_map p ON p.rh = hash(m.text)
            WHERE m.text IS NOT NULL AND p.repeated""",
        p,
    )
    # targets are keyed as (recipient, channel-when-no-recipient): the same keys as 'r:' || recipient /
    # 'c:' || channel, without building a string per message; a message with neither has no target
    con.execute(
        f"""INSERT INTO {TABLE}
            SELECT CAST($run_id AS VARCHAR) AS run_id, m.platform, m.sender AS account,
                   p.template_id, 1::BIGINT AS messages,
                   (m.recipient IS NOT NULL OR m.channel IS NOT NULL)::BIGINT AS recipients,
                   m.sent_at AS first_at, m.sent_at AS last_at
            FROM messages m JOIN _tpl_map p ON p.rh = hash(m.text)
            WHERE m.text IS NOT NULL AND NOT p.repeated
            UNION ALL
            SELECT CAST($run_id AS VARCHAR), platform, sender, template_id, sum(n)::BIGINT,
                   count(*) FILTER (WHERE recipient IS NOT NULL OR ch IS NOT NULL), min(first_at), max(last_at)
            FROM (SELECT platform, sender, template_id, recipient,
                         CASE WHEN recipient IS NULL THEN channel END AS ch,
                         count(*) AS n, min(sent_at) AS first_at, max(sent_at) AS last_at
                  FROM {MESSAGE_TABLE}
                  GROUP BY ALL)
            GROUP BY platform, sender, template_id""",
        p,
    )
    con.execute(
        f"""INSERT INTO {CLUSTER_TABLE}
            SELECT CAST($run_id AS VARCHAR) AS run_id, t.template_id, x.texts,
                   t.messages, t.senders, t.platforms, CAST(x.example AS VARCHAR), t.first_at, t.last_at
            FROM (SELECT template_id, sum(messages)::BIGINT AS messages, sum(senders)::BIGINT AS senders,
                         count(*) AS platforms, min(first_at) AS first_at, max(last_at) AS last_at
                  -- per (template, platform) first: cheaper than count(DISTINCT platform)
                  FROM (SELECT template_id, platform, count(*) AS messages, count(DISTINCT sender) AS senders,
                               min(sent_at) AS first_at, max(sent_at) AS last_at
                        FROM {MESSAGE_TABLE}
                        GROUP BY template_id, platform)
                  GROUP BY template_id) t
            JOIN _tpl_cluster_view x USING (template_id)""",
        p,
    )
    con.execute("DROP TABLE _tpl_map")


class _StepClock:
    """Wall seconds of the stage's steps, for the stage's log line (where its time goes, at a glance)."""

    def __init__(self) -> None:
        self.laps: list[tuple[str, float]] = []
        self.last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps.append((step, now - self.last))
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.laps)


def build_templates(con: duckdb.DuckDBPyConnection, ctx: StageContext,
                    params: TemplateParams | None = None) -> int:
    """Cluster message texts into near-duplicate templates; write ``templates``, ``message_templates``
    and ``template_clusters``.

    Parameters
    ----------
    con
        Connection holding ``messages``.
    ctx
        Run context.
    params
        Clustering parameters; defaults to :class:`TemplateParams` (or ``ctx.extras['template_params']``).

    Returns
    -------
    int
        Rows written to ``templates``.
    """
    if params is None:
        params = ctx.extras.get("template_params") or TemplateParams()  # type: ignore[assignment]
    assert isinstance(params, TemplateParams)
    if params.bands * params.rows != params.num_perm:
        raise ValueError("TemplateParams: bands × rows must equal num_perm")
    clock = _StepClock()
    # 1. distinct raw texts (many messages repeat a text verbatim), keyed by their 64-bit hash: the
    #    messages are joined back by hash(text) at the end, so nothing per message is kept meanwhile
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _tpl_raw AS
           SELECT hash(text) AS rh, text, count(*) AS n FROM messages WHERE text IS NOT NULL GROUP BY text"""
    )
    n_raw = con.execute("SELECT count(*) FROM _tpl_raw").fetchall()[0][0]
    clock.lap("distinct texts")
    # 2. normalise in chunks (compiled for ASCII texts, polars' Rust regex for the rest: the same result
    #    as the three RE2 passes of NORMALISE_SQL, many times faster), then, compiled, hash each
    #    normalised text, count its words and MinHash the ones with enough words. Of the signatures only
    #    the band keys and the low byte of each value are kept (see band_keys); the strings are dropped
    #    chunk by chunk.
    raw_hash = np.empty(n_raw, dtype=np.uint64)
    norm_hash = np.empty(n_raw, dtype=np.uint64)
    words = np.empty(n_raw, dtype=np.int32)
    sent = np.empty(n_raw, dtype=np.int64)  # messages per raw text
    mul, add = _hash_family(params.num_perm, params.seed)
    keys = np.empty((params.bands, n_raw), dtype=np.uint64)
    low = np.empty((n_raw, params.num_perm), dtype=np.uint8)
    pos = 0
    for lo in range(0, n_raw, NORMALISE_CHUNK):
        raw = con.sql("SELECT rh, text, n FROM _tpl_raw WHERE rowid >= $lo AND rowid < $hi",
                      params={"lo": lo, "hi": lo + NORMALISE_CHUNK}).to_arrow_table()
        data, starts, ends = normalised_buffers(raw.column("text"))
        end = pos + len(starts)
        raw_hash[pos:end] = raw.column("rh").to_numpy()
        sent[pos:end] = raw.column("n").to_numpy()
        del raw
        norm_hash[pos:end], words[pos:end], unspaced = text_hashes(data, starts, ends)
        local = np.flatnonzero(words[pos:end] >= params.min_tokens)
        minhash_texts(data, starts, ends, unspaced, local, local + pos, mul, add, params.bands, params.rows,
                      params.bigrams, keys, low)
        del data, starts, ends
        pos = end
    con.execute("DROP TABLE _tpl_raw")  # its memory is needed more by the clustering
    clock.lap("normalise + sketch")
    # 3. the distinct normalised texts with enough words, in hash order (deterministic, independent of
    #    row order; two texts with equal 64-bit hashes count as one): their sketches are moved to the
    #    front, band by band in place, in that order
    eligible = np.flatnonzero(words[:pos] >= params.min_tokens)
    uniq, inverse = sorted_unique_inverse(norm_hash[eligible])
    del norm_hash
    m = len(uniq)
    # compiled: each distinct text's first sketch moved to the front of `keys` in storage order (streaming),
    # `ids` its text id (hash rank), `rep` the raw position of each id, `low` re-ordered by id
    ids, rep, low = compact_representatives(keys, low, eligible, inverse, m)
    keys = keys[:, :m]
    clock.lap("dedupe")
    # 5.–6. candidate pairs, verification, clusters (each big array freed as soon as it is used up)
    roots_per_band = band_roots(keys, ids)
    del ids
    del keys
    left, right = distinct_row_roots(roots_per_band)
    del roots_per_band
    n_candidates = len(left)
    clock.lap("LSH buckets")
    labels = cluster_pairs(m, left, right, low, words[rep], params)
    del left, right, low
    clock.lap("verify + cluster")
    texts_per_label = np.bincount(labels, minlength=m)
    messages_per_label = np.bincount(labels[inverse], weights=sent[eligible], minlength=m)
    # templates sent at least twice get a cluster row and per-message rows; one-off texts only their
    # (account, template) row in `templates`
    roots = np.flatnonzero(messages_per_label >= 2)
    # each cluster's example: the normalised text its key comes from, normalised again (a few texts),
    # found again among the messages by the hash of its raw text
    con.register("_tpl_root_view", pa.table({"rh": raw_hash[rep[roots]], "tkey": uniq[roots],
                                             "texts": texts_per_label[roots]}))
    try:
        root_texts = con.sql("""SELECT x.tkey, x.texts, r.text
                                FROM _tpl_root_view x
                                JOIN (SELECT DISTINCT ON (h) hash(text) AS h, text FROM messages
                                      WHERE hash(text) IN (SELECT rh FROM _tpl_root_view)) r ON r.h = x.rh
                             """).to_arrow_table()
    finally:
        con.unregister("_tpl_root_view")
    clusters = pa.table({"template_id": template_ids(root_texts.column("tkey").to_numpy()),
                         "texts": root_texts.column("texts"),
                         "example": _normalise_texts_parallel(root_texts.column("text"))})
    del root_texts
    clock.lap("examples")
    # raw text hash → template key (the smallest normalised-text hash of its cluster)
    text_label = labels[inverse]
    text_map = pa.table({"rh": raw_hash[eligible], "template_id": template_ids(uniq[text_label]),
                         "repeated": messages_per_label[text_label] >= 2})
    del raw_hash, labels, inverse, eligible, text_label
    con.register("_tpl_map_view", text_map)
    con.register("_tpl_cluster_view", clusters)
    try:
        _write_template_tables(con, ctx.run_id)
    finally:
        con.unregister("_tpl_map_view")
        con.unregister("_tpl_cluster_view")
    comment_table(con, TABLE, TABLE_DOC, COLUMN_DOCS)
    comment_table(con, MESSAGE_TABLE, MESSAGE_DOC, MESSAGE_COLUMN_DOCS)
    comment_table(con, CLUSTER_TABLE, CLUSTER_DOC, CLUSTER_COLUMN_DOCS)
    n = con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0]
    clock.lap("write tables")
    ctx.info("templates: %d (account, template) rows; %d distinct texts, %d with a sketch, %d candidate pairs, "
             "%d templates sent at least twice; %s", n, n_raw, m, n_candidates, len(roots), clock)
    return int(n)
