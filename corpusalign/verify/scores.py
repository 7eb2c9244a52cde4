"""Pure scoring functions for translation-pair verification: numpy and the standard library only.

No model is called here. Embedding scores take L2-normalised vectors (rows aligned: ``src[i]`` is the
source of pair ``i``, ``tgt[i]`` its candidate translation); text scores take aligned lists of
strings. Every function returns one value per pair, so the results can be added as columns.

==========================  ==========================================================================
``cosine_rows``             cosine of each aligned pair
``margin_scores``           ratio margin (Artetxe & Schwenk, 2019) of each pair within the pool
``nearest_is_pair``         ``tgt[i]`` is the nearest neighbour of ``src[i]`` and vice versa
``neighbour_scores``        ``margin_scores`` and ``nearest_is_pair`` in one pass over the pool
``pool_scores``             the same plus ``competing_source_gap``, from the same similarities
``competing_source_gap``    cosine of ``tgt[i]`` to the best other source minus to ``src[i]``
``prefix_coverage``         cosine of the source with the target's prefix minus with the whole target
``target_prefix``           a target without its last sentence (None for a single sentence)
``length_log_ratio``        ``log(len(tgt) / len(src))`` in characters
``number_agreement``        Jaccard of the numbers (digit sequences after NFKC)
``placeholder_agreement``   printf/brace placeholders, URLs and e-mails survive as a multiset
``copy_similarity``         character 3-gram Jaccard of the casefolded texts (1.0 for a copy)
``script_agreement``        share of letters written in the scripts of the expected language
==========================  ==========================================================================
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from corpusalign.langtags import likely_script, split_tag
from corpusalign.placeholders import POSITION, POSITIONAL, placeholders, strip_placeholders
from corpusalign.verify.numerals import multiply_cjk_scales, spelled_numbers

log = logging.getLogger(__name__)

#: Above this many rows on either side, ``margin_scores`` uses FAISS when it is installed.
FAISS_MIN_POOL = 50_000
#: Similarity-matrix block size, in float32 cells (64 MiB), for the exact numpy search.
_BLOCK_CELLS = 1 << 24


# ---------------------------------------------------------------------------------------------
# Embedding scores
# ---------------------------------------------------------------------------------------------


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of row vectors, got shape {a.shape}")
    return a


def _check_aligned(src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_matrix(src, "src"), _as_matrix(tgt, "tgt")
    if a.shape != b.shape:
        raise ValueError(f"src and tgt must have the same shape (aligned pairs), got {a.shape} and {b.shape}")
    return a, b


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine ``a[i] . b[i]`` of L2-normalised rows, shape ``(n,)`` float32.

    Example::

        >>> cosine_rows(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 0.0]]))
        array([1., 0.], dtype=float32)
    """
    a, b = _check_aligned(a, b)
    return np.einsum("ij,ij->i", a, b).astype(np.float32)


class _Knn(NamedTuple):
    """Nearest-neighbour statistics of query rows against an aligned pool (row ``i`` of each is pair ``i``)."""

    mean: np.ndarray  # mean cosine to the k nearest pool rows
    best: np.ndarray  # index of the nearest pool row
    best_other: np.ndarray  # cosine to the nearest pool row other than the query's own (row i)


def _faiss_knn(query: np.ndarray, pool: np.ndarray, k: int) -> _Knn | None:
    try:
        import faiss  # optional: pip install faiss-cpu
    except ImportError:
        return None
    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(np.ascontiguousarray(pool, dtype=np.float32))
    sims, idx = index.search(np.ascontiguousarray(query, dtype=np.float32), max(k, 2))
    own_first = idx[:, 0] == np.arange(len(idx))
    return _Knn(
        sims[:, :k].mean(axis=1).astype(np.float32),
        idx[:, 0].astype(np.int64),
        np.where(own_first, sims[:, 1], sims[:, 0]).astype(np.float32),
    )


def _knn(query: np.ndarray, pool: np.ndarray, k: int) -> _Knn:
    """For each query row: mean cosine to its ``k`` nearest pool rows, the index of the nearest, and
    the cosine to the nearest pool row other than its own (the pool row with the same index).

    Exact search in row blocks so that at most ``_BLOCK_CELLS`` similarities exist at once; FAISS
    (exact inner product) for pools above :data:`FAISS_MIN_POOL` rows when it is installed.
    ``best_other`` is ``-inf`` for a pool of one row.
    """
    n, m = query.shape[0], pool.shape[0]
    if max(n, m) > FAISS_MIN_POOL:
        found = _faiss_knn(query, pool, k)
        if found is not None:
            return found
        log.info("faiss is not installed: exact numpy k-NN over %d x %d pairs (pip install faiss-cpu is faster)", n, m)
    means = np.empty(n, dtype=np.float32)
    best = np.empty(n, dtype=np.int64)
    best_other = np.empty(n, dtype=np.float32)
    rows = max(1, _BLOCK_CELLS // max(m, 1))
    for start in range(0, n, rows):
        sims = query[start : start + rows] @ pool.T
        block = slice(start, start + len(sims))
        best[block] = sims.argmax(axis=1)
        top = sims if k >= m else np.partition(sims, m - k, axis=1)[:, m - k :]
        means[block] = top.mean(axis=1)
        local = np.arange(len(sims))
        sims[local, start + local] = -np.inf  # the query's own pair does not compete with itself
        best_other[block] = sims.max(axis=1)
    return _Knn(means, best, best_other)


class PoolScores(NamedTuple):
    """Scores of each aligned pair within its pool: see :func:`pool_scores`."""

    margin: np.ndarray
    nn_pair: np.ndarray
    source_gap: np.ndarray


def pool_scores(src: np.ndarray, tgt: np.ndarray, k: int = 4) -> PoolScores:
    """``margin_scores``, ``nearest_is_pair`` and ``competing_source_gap`` with one search per side.

    The gap comes from the same target-to-source similarities as the margin, so it costs nothing
    extra. A pool of one pair gets a NaN gap (no other source to compare with).

    Example::

        >>> src = np.eye(3, dtype=np.float32)
        >>> scores = pool_scores(src, src, k=2)
        >>> scores.margin.round(2), scores.nn_pair, scores.source_gap
        (array([2., 2., 2.], dtype=float32), array([ True,  True,  True]), array([-1., -1., -1.], dtype=float32))
    """
    a, b = _check_aligned(src, tgt)
    n = a.shape[0]
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n == 0:
        return PoolScores(np.zeros(0, dtype=np.float32), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.float32))
    cos = cosine_rows(a, b)
    k = min(k, n)
    src_knn = _knn(a, b, k)  # x -> its nearest targets
    tgt_knn = _knn(b, a, k)  # y -> its nearest sources
    denom = src_knn.mean / 2 + tgt_knn.mean / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = np.where(np.abs(denom) > 1e-12, cos / denom, 0.0).astype(np.float32)
    idx = np.arange(n)
    gap = (tgt_knn.best_other - cos).astype(np.float32) if n >= 2 else np.full(n, np.nan, dtype=np.float32)
    return PoolScores(margin, (src_knn.best == idx) & (tgt_knn.best == idx), gap)


def neighbour_scores(src: np.ndarray, tgt: np.ndarray, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``(margin_scores(src, tgt, k), nearest_is_pair(src, tgt))`` computed with one search per side.

    Example::

        >>> src = np.eye(3, dtype=np.float32)
        >>> margin, nn = neighbour_scores(src, src, k=2)
        >>> margin.round(2), nn
        (array([2., 2., 2.], dtype=float32), array([ True,  True,  True]))
    """
    scores = pool_scores(src, tgt, k)
    return scores.margin, scores.nn_pair


def margin_scores(src: np.ndarray, tgt: np.ndarray, k: int = 4) -> np.ndarray:
    """Ratio margin of each aligned pair ``(src[i], tgt[i])`` within the pool of all pairs.

    ``margin(x, y) = cos(x, y) / (mean cos of x to its k nearest targets / 2 + mean cos of y to its
    k nearest sources / 2)`` (Artetxe & Schwenk, 2019, "ratio" margin). ``k`` is clipped to the pool
    size. A translation that stands out from its neighbours scores above 1; a pair whose members are
    closer to other rows scores below 1. Robust to the compressed cosines of models such as
    multilingual-e5 because it compares each pair with its own neighbourhood.

    Exact top-k in numpy, in row blocks of bounded memory (fine for pools up to ~50k pairs); FAISS
    exact inner-product search above :data:`FAISS_MIN_POOL` when ``faiss`` is installed.

    Example: three pairs where ``tgt[i]`` is a noisy copy of ``src[i]``; the aligned pairs score
    above 1, the same targets shifted by one row score below 1::

        >>> src = np.eye(3, dtype=np.float32)
        >>> tgt = src + 0.1
        >>> tgt /= np.linalg.norm(tgt, axis=1, keepdims=True)
        >>> bool((margin_scores(src, tgt, k=2) > 1).all())
        True
        >>> bool((margin_scores(src, np.roll(tgt, 1, axis=0), k=2) < 1).all())
        True
    """
    return neighbour_scores(src, tgt, k)[0]


def nearest_is_pair(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: ``tgt[i]`` is the nearest target of ``src[i]`` AND ``src[i]`` the nearest source of ``tgt[i]``.

    Ties go to the lower index. Example::

        >>> src = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> nearest_is_pair(src, src), nearest_is_pair(src, src[::-1])
        (array([ True,  True]), array([False, False]))
    """
    return neighbour_scores(src, tgt, k=1)[1]


def competing_source_gap(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Cosine of ``tgt[i]`` to the most similar OTHER source of the pool minus its cosine to ``src[i]``, float32.

    Below 0 when the target is closer to its own source than to any other (a good pair), above 0
    when some other source of the pool fits it better (a misaligned pair). NaN for a pool of one
    pair. :func:`pool_scores` computes it with the margin at no extra cost.

    Example::

        >>> src = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> tgt = np.array([[0.8, 0.6], [0.8, 0.6]])  # both targets lean towards source 0
        >>> competing_source_gap(src, tgt).round(2)
        array([-0.2,  0.2], dtype=float32)
    """
    return pool_scores(src, tgt, k=1).source_gap


#: A target with at least this many sentences gets a prefix (:func:`target_prefix`).
PREFIX_MIN_SENTENCES = 2
#: Where a sentence ends inside a text: final punctuation and closing quotes, then a space (none
#: needed after full-width punctuation).
_SENTENCE_CUT = re.compile(r"[。！？．।॥።]+[」』）”“\"'»’)\]]*|[.!?…؟۔։]+[\"'»”“’」』)）\]]*(?=\s)")


def target_prefix(text: str, lang: str | None = None) -> str | None:
    """``text`` without its last sentence, or ``None`` when it has fewer than :data:`PREFIX_MIN_SENTENCES`.

    A sentence ends at final punctuation (``.!?…``, ``।``, ``؟``, ...) and any closing quotes followed
    by a space, or at full-width ``。！？`` (no space needed), so the cut works for languages written
    without spaces too (``lang`` is accepted for symmetry with the other text scores and not
    needed). A translation followed by an unrelated sentence has the translation as its prefix; a
    faithful multi-sentence translation loses part of its meaning with its last sentence.

    Example::

        >>> target_prefix("Es ist heiß. Der Zug fährt um fünf ab.", "de")
        'Es ist heiß.'
        >>> target_prefix("暑いです。電車は五時に出ます。", "ja")
        '暑いです。'
        >>> target_prefix("Es ist heiß.", "de") is None
        True
    """
    text = (text or "").strip()
    body = len(text.rstrip(_CLOSERS))
    cuts = [m.end() for m in _SENTENCE_CUT.finditer(text) if m.end() < body]  # sentence ends before the last sentence
    if len(cuts) + 1 < PREFIX_MIN_SENTENCES:
        return None
    return text[: cuts[-1]].strip() or None


def prefix_coverage(src: np.ndarray, tgt: np.ndarray, tgt_prefix: np.ndarray) -> np.ndarray:
    """``cos(src[i], tgt_prefix[i]) - cos(src[i], tgt[i])``: how much better the target's prefix
    (:func:`target_prefix`: all but its last sentence) matches the source than the whole target, float32.

    Below 0 for a faithful translation (the prefix leaves part of the source's meaning out), above 0
    when the target carries content the source lacks (the prefix is the translation, the last
    sentence is extra). A NaN row of ``tgt_prefix`` (a target without a prefix) gives NaN.

    Example::

        >>> src = np.array([[1.0, 0.0], [1.0, 0.0]])
        >>> tgt = np.array([[0.6, 0.8], [1.0, 0.0]])  # the first target drifts away from its source
        >>> prefix = np.array([[1.0, 0.0], [0.8, 0.6]])
        >>> prefix_coverage(src, tgt, prefix).round(2)
        array([ 0.4, -0.2], dtype=float32)
    """
    a, b = _check_aligned(src, tgt)
    _, p = _check_aligned(src, tgt_prefix)
    return (cosine_rows(a, p) - cosine_rows(a, b)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Text scores
# ---------------------------------------------------------------------------------------------


def _check_texts(src_texts: Sequence[str], tgt_texts: Sequence[str]) -> None:
    if len(src_texts) != len(tgt_texts):
        raise ValueError(f"src_texts and tgt_texts must be aligned, got {len(src_texts)} and {len(tgt_texts)} texts")


#: A Han character (kanji, hanzi) counts as this many characters in length ratios: it carries about
#: as much as a short word, where a kana or a Latin letter carries a sound ("Yesterday" -> "昨日",
#: "Denmark" -> "デンマーク").
HAN_WEIGHT = 3
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def text_length(text: str) -> int:
    """Characters of ``text``, a Han character counting :data:`HAN_WEIGHT` (at least 1 for an empty text).

    >>> text_length("Yesterday"), text_length("昨日"), text_length("デンマーク"), text_length("")
    (9, 6, 5, 1)
    """
    text = text or ""
    return max(len(text) + (HAN_WEIGHT - 1) * len(_HAN.findall(text)), 1)


def length_log_ratio(src_texts: Sequence[str], tgt_texts: Sequence[str]) -> np.ndarray:
    """``log(length(tgt) / length(src))``, lengths by :func:`text_length` (characters, a Han character
    counting three), float32. Japanese mixes kanji and kana, so a plain character count would call
    "Yesterday" -> "昨日" (2 characters for 9) much shorter than "Denmark" -> "デンマーク" (5 for 7).

    Example::

        >>> length_log_ratio(["abcd", "Yesterday"], ["ab", "昨日"]).round(3)
        array([-0.693, -0.405], dtype=float32)
    """
    _check_texts(src_texts, tgt_texts)
    return np.array([math.log(text_length(t) / text_length(s)) for s, t in zip(src_texts, tgt_texts)], dtype=np.float32)


# a number: digits, optionally with thousands groups ("1,000", "1.000", "1 000", "1'000")
_NUMBER = re.compile(r"\d+(?:[,.'\u00a0\u202f ]\d{3})+(?!\d)|\d+")
_SEPARATORS = re.compile(r"[,.'\u00a0\u202f ]")
_DIGITS_CJK_SCALE = re.compile(r"(\d+)([十百千万億])")


def _to_ascii_digits(text: str) -> str:
    out = []
    for ch in text:
        if ch.isdigit() and not ("0" <= ch <= "9"):
            d = unicodedata.decimal(ch, None)
            out.append(str(d) if d is not None else ch)
        else:
            out.append(ch)
    return "".join(out)


def numbers(text: str) -> set[str]:
    """The numbers in ``text`` after NFKC: digit sequences, thousands separators removed, leading zeros kept.

    Full-width (``１９７２``) and other decimal digits (Arabic-Indic, Devanagari) count as their ASCII
    digits; digits before a Chinese/Japanese scale are multiplied out (``１万`` is ``10000``).
    Positional placeholders (``%2$s``) are not numbers. Example: ``numbers("Am 10. Oktober
    1.972")`` is ``{"10", "1972"}``.
    """
    text = _to_ascii_digits(unicodedata.normalize("NFKC", POSITIONAL.sub(" ", text or "")))
    text = multiply_cjk_scales(text)
    return {_SEPARATORS.sub("", m) for m in _NUMBER.findall(text)}


def number_agreement(src_texts: Sequence[str], tgt_texts: Sequence[str]) -> np.ndarray:
    """Jaccard similarity of the numbers of source and target; 1.0 when neither has digits, float32.

    Numbers are the digit sequences after NFKC (see :func:`numbers`: full-width ``１９７２`` is
    ``1972``). A number spelled out in words on one side (``two``, ``zwei``, ``二``, ``July``; see
    :mod:`corpusalign.verify.numerals`) joins that side's set only when the other side has the same
    number, so "two boyfriends" / "恋人が2人" agree, while words alone never cause a disagreement.

    Example::

        >>> src = ["Born 10 Oct 1972", "no digits", "3 cats", "two cats"]
        >>> number_agreement(src, ["１９７２年１０月生まれ", "keine", "5 Katzen", "猫2匹"])
        array([1., 1., 0., 1.], dtype=float32)
    """
    _check_texts(src_texts, tgt_texts)
    out = np.empty(len(src_texts), dtype=np.float32)
    for i, (s, t) in enumerate(zip(src_texts, tgt_texts)):
        a, b = numbers(s), numbers(t)
        if not a and not b:
            out[i] = 1.0
            continue
        wa, wb = spelled_numbers(s), spelled_numbers(t)
        a, b = a | (wa & (b | wb)), b | (wb & (a | wa))
        out[i] = len(a & b) / len(a | b)
    return out


def placeholder_agreement(src_texts: Sequence[str], tgt_texts: Sequence[str]) -> np.ndarray:
    """``(n,)`` bool: the target holds exactly the source's placeholders, URLs and e-mails (as a multiset).

    Order may change (translations reorder placeholders, also as positional ``%2$s``); a dropped,
    added or altered one fails.

    Example::

        >>> placeholder_agreement(["Hello %s, you have {n} messages", "Mail a@b.org"], ["{n} Nachrichten, %s", "Schreib uns"])
        array([ True, False])
        >>> placeholder_agreement(['column "%s" of "%s"'], ['"%2$s"の列"%1$s"'])
        array([ True])
    """
    _check_texts(src_texts, tgt_texts)
    return np.array([_unpositioned(s) == _unpositioned(t) for s, t in zip(src_texts, tgt_texts)], dtype=bool)


def _unpositioned(text: str) -> Counter[str]:
    """:func:`placeholders` with positional printf ones as plain ones: ``%2$s`` is ``%s`` moved."""
    out: Counter[str] = Counter()
    for p, n in placeholders(text).items():
        out[POSITION.sub("%", p)] += n
    return out


_SENTENCE_END = re.compile(r"[。！？．।॥።]+|[.!?…؟۔։]+(?=[\s\"'»”’」』)）\]]|$)")
_CLOSERS = " \t\n\"'»”’」』)）]>"
_TERMINAL = frozenset(".!?。！？．…;:；：・।॥؟۔։።")
_QUOTES_CLOSE = frozenset('"“”»」』')


def sentence_count(text: str) -> int:
    """Number of sentences in ``text``: runs of sentence-final punctuation (at least 1 for a non-empty text)."""
    text = strip_placeholders(text or "").strip()
    if not text:
        return 0
    ends = _SENTENCE_END.findall(text)
    tail = text.rstrip(_CLOSERS)
    return len(ends) + (0 if tail and tail[-1] in _TERMINAL else 1)


def sentence_count_diff(src_texts: Sequence[str], tgt_texts: Sequence[str]) -> np.ndarray:
    """``sentence_count(tgt) - sentence_count(src)``, int32: > 0 when the target has sentences the source lacks.

    Example::

        >>> sentence_count_diff(["It's hot.", "It's hot."], ["Es ist heiß.", "Es ist heiß. Der Zug fährt ab."])
        array([0, 1], dtype=int32)
    """
    _check_texts(src_texts, tgt_texts)
    return np.array([sentence_count(t) - sentence_count(s) for s, t in zip(src_texts, tgt_texts)], dtype=np.int32)


def _ends_sentence(text: str) -> bool:
    raw = strip_placeholders(text or "").rstrip()
    if raw and raw[-1] in _QUOTES_CLOSE:  # a closing quotation ends a sentence: „…“ 「…」
        return True
    tail = raw.rstrip(_CLOSERS)
    return bool(tail) and tail[-1] in _TERMINAL


def end_punctuation_agreement(src_texts: Sequence[str], tgt_texts: Sequence[str]) -> np.ndarray:
    """``(n,)`` bool: source and target both end a sentence (``.!?。！？…;:``, ``।``, ``؟``, ...) or both do not.

    A translation cut short usually loses its final punctuation. Example::

        >>> end_punctuation_agreement(["He wanted to teach.", "Help"], ["Er wollte an der", "Hilfe"])
        array([False,  True])
    """
    _check_texts(src_texts, tgt_texts)
    return np.array([_ends_sentence(s) == _ends_sentence(t) for s, t in zip(src_texts, tgt_texts)], dtype=bool)


_SPACES = re.compile(r"\s+")


def _trigrams(text: str) -> set[str]:
    t = " " + _SPACES.sub(" ", unicodedata.normalize("NFKC", text or "").casefold()).strip() + " "
    if len(t) <= 3:
        return {t}
    return {t[i : i + 3] for i in range(len(t) - 2)}


def copy_similarity(src_texts: Sequence[str], tgt_texts: Sequence[str]) -> np.ndarray:
    """Jaccard similarity of the character 3-gram sets of the casefolded, NFKC, whitespace-collapsed texts.

    1.0 for an untranslated copy; near 0 for a real translation into another language (names and
    numbers shared with the source keep it above 0). Placeholders, URLs and e-mails, which a
    translation keeps by design, are left out (see :func:`strip_placeholders`), unless nothing else
    is left.

    Example::

        >>> copy_similarity(["Hello world", "Hello world"], ["hello  WORLD", "Hallo Welt"]).round(2)
        array([1.  , 0.17], dtype=float32)
    """
    _check_texts(src_texts, tgt_texts)
    out = np.empty(len(src_texts), dtype=np.float32)
    for i, (s, t) in enumerate(zip(src_texts, tgt_texts)):
        s2, t2 = strip_placeholders(s), strip_placeholders(t)
        if s2.strip() or t2.strip():
            s, t = s2, t2
        a, b = _trigrams(s), _trigrams(t)
        out[i] = len(a & b) / len(a | b)
    return out


#: Unicode blocks of the scripts, as (first, last) code points.
SCRIPT_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "Latin": (
        (0x41, 0x5A),
        (0x61, 0x7A),
        (0xAA, 0xAA),
        (0xBA, 0xBA),
        (0xC0, 0x24F),
        (0x2B0, 0x2FF),  # modifier letters of Latin orthographies: ʼ in "Kwakʼwala", ʻ in "Hawaiʻi"
        (0x1E00, 0x1EFF),
        (0x2C60, 0x2C7F),
        (0xA720, 0xA7FF),
        (0xFF21, 0xFF3A),
        (0xFF41, 0xFF5A),
    ),
    "Greek": ((0x370, 0x3FF), (0x1F00, 0x1FFF)),
    "Cyrillic": ((0x400, 0x52F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)),
    "Armenian": ((0x530, 0x58F),),
    "Hebrew": ((0x590, 0x5FF), (0xFB1D, 0xFB4F)),
    "Arabic": ((0x600, 0x6FF), (0x750, 0x77F), (0x8A0, 0x8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "Devanagari": ((0x900, 0x97F), (0xA8E0, 0xA8FF)),
    "Bengali": ((0x980, 0x9FF),),
    "Tamil": ((0xB80, 0xBFF),),
    "Thai": ((0xE00, 0xE7F),),
    "Georgian": ((0x10A0, 0x10FF),),
    "Hangul": ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7AF), (0xD7B0, 0xD7FF), (0xFFA0, 0xFFDC)),
    "Hiragana": ((0x3040, 0x309F),),
    "Katakana": ((0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F)),
    "Han": ((0x3005, 0x3007), (0x3021, 0x3029), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3FFFF)),
    "Ethiopic": ((0x1200, 0x139F),),
}

_LATIN = ("Latin",)
#: Scripts expected for each language (ISO 639-1), when its tag names no script (:func:`expected_scripts`).
#: Languages not listed are not judged (score 1.0). Serbian is Cyrillic; Latin Serbian is ``sr-Latn``.
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    **{
        lang: _LATIN
        for lang in (
            "en de fr es it pt nl sw id ms vi tr pl cs sk sl hr bs ro hu fi et lv lt da sv nb nn no is ga cy eu ca gl "
            "af sq az uz tl so ha yo ig zu xh mt lb eo la"
        ).split()
    },
    "ja": ("Hiragana", "Katakana", "Han"),
    "zh": ("Han",),
    "ko": ("Hangul", "Han"),
    "ru": ("Cyrillic",),
    "uk": ("Cyrillic",),
    "bg": ("Cyrillic",),
    "be": ("Cyrillic",),
    "sr": ("Cyrillic",),
    "mk": ("Cyrillic",),
    "kk": ("Cyrillic",),
    "mn": ("Cyrillic",),
    "ky": ("Cyrillic",),
    "tg": ("Cyrillic",),
    "el": ("Greek",),
    "hy": ("Armenian",),
    "ka": ("Georgian",),
    "he": ("Hebrew",),
    "yi": ("Hebrew",),
    "ar": ("Arabic",),
    "fa": ("Arabic",),
    "ur": ("Arabic",),
    "ps": ("Arabic",),
    "hi": ("Devanagari",),
    "mr": ("Devanagari",),
    "ne": ("Devanagari",),
    "bn": ("Bengali",),
    "ta": ("Tamil",),
    "th": ("Thai",),
    "am": ("Ethiopic",),
}


#: Scripts of an ISO 15924 script subtag (``sr-Latn``, ``zh-Hant``); subtags not listed are not judged.
SCRIPT_SUBTAGS: dict[str, tuple[str, ...]] = {
    "Latn": _LATIN, "Cyrl": ("Cyrillic",), "Grek": ("Greek",), "Armn": ("Armenian",), "Geor": ("Georgian",),
    "Hebr": ("Hebrew",), "Arab": ("Arabic",), "Deva": ("Devanagari",), "Beng": ("Bengali",), "Taml": ("Tamil",),
    "Thai": ("Thai",), "Ethi": ("Ethiopic",), "Hani": ("Han",), "Hans": ("Han",), "Hant": ("Han",),
    "Hang": ("Hangul",), "Kore": ("Hangul", "Han"), "Hira": ("Hiragana",), "Kana": ("Katakana",),
    "Jpan": ("Hiragana", "Katakana", "Han"),
}  # fmt: skip


def expected_scripts(lang: str | None) -> tuple[str, ...] | None:
    """The scripts (keys of :data:`SCRIPT_RANGES`) a text in language ``lang`` is written in; ``None``: not judged.

    A tag's script subtag decides (``sr-Latn``: Latin, ``zh-Hant``: Han); else a region whose usual
    script differs from the language's (``sr-ME``: Latin, by CLDR likely subtags); else the
    language's entry in :data:`LANGUAGE_SCRIPTS` (``sr``: Cyrillic, ``pt-BR``: Latin).

    >>> expected_scripts("sr-Latn"), expected_scripts("sr"), expected_scripts("zh-Hant"), expected_scripts("xx")
    (('Latin',), ('Cyrillic',), ('Han',), None)
    """
    parts = split_tag(lang or "")
    if parts is None:
        return LANGUAGE_SCRIPTS.get((lang or "").lower().split("-")[0].split("_")[0])
    if parts.script:
        return SCRIPT_SUBTAGS.get(parts.script)
    if parts.region:
        script = likely_script(str(parts))
        if script and script != likely_script(parts.language) and script in SCRIPT_SUBTAGS:
            return SCRIPT_SUBTAGS[script]
    return LANGUAGE_SCRIPTS.get(parts.language)


def _script_table() -> tuple[np.ndarray, np.ndarray, list[str]]:
    spans = sorted((lo, hi, name) for name, ranges in SCRIPT_RANGES.items() for lo, hi in ranges)
    return np.array([s[0] for s in spans]), np.array([s[1] for s in spans]), [s[2] for s in spans]


_STARTS, _ENDS, _NAMES = _script_table()


def script_of(ch: str) -> str | None:
    """The script (a key of :data:`SCRIPT_RANGES`) of one character, or ``None`` when unlisted."""
    cp = ord(ch)
    i = int(np.searchsorted(_STARTS, cp, side="right")) - 1
    return _NAMES[i] if i >= 0 and cp <= _ENDS[i] else None


_LATIN_RUN = re.compile(r"[A-Za-z\u00c0-\u024f]+")


def script_agreement(texts: Sequence[str], lang: str | Sequence[str], sources: Sequence[str] | None = None) -> np.ndarray:
    """Share of the letters of each text written in a script expected for ``lang``, float32.

    ``lang`` is one code for all texts or one per text. Only letters count (``str.isalpha``, plus the
    Japanese prolonged-sound mark), outside placeholders, URLs and e-mails; a text without letters,
    or a language whose scripts are unknown (:func:`expected_scripts`), scores 1.0. With ``sources`` (aligned with
    ``texts``), words the text shares with its source are left out: option names, identifiers and
    product names stay in Latin letters in a right Japanese translation.

    Example::

        >>> script_agreement(["Guten Tag", "こんにちは", "Hello 世界"], "ja").round(2)
        array([0.  , 1.  , 0.29], dtype=float32)
        >>> script_agreement(["FORMAT に従って表示します"], "ja", ["print according to FORMAT"]).round(2)
        array([1.], dtype=float32)
    """
    langs = [lang] * len(texts) if isinstance(lang, str) else list(lang)
    if len(langs) != len(texts) or (sources is not None and len(sources) != len(texts)):
        raise ValueError(f"got {len(texts)} texts but {len(langs)} languages")
    out = np.ones(len(texts), dtype=np.float32)
    scripts = {code: expected_scripts(code) for code in set(langs)}
    for i, (text, code) in enumerate(zip(texts, langs)):
        expected = scripts[code]
        if not expected or not text:
            continue
        text = strip_placeholders(text)
        if sources is not None:
            shared = set(_LATIN_RUN.findall(sources[i] or ""))
            text = _LATIN_RUN.sub(lambda m: " " if m.group(0) in shared else m.group(0), text)
        letters = [c for c in text if c.isalpha() or c == "ー"]
        if letters:
            out[i] = sum(script_of(c) in expected for c in letters) / len(letters)
    return out


#: Sources of at most this many words are short strings (UI labels, names, menu items).
SHORT_MAX_WORDS = 6
#: Sources of more than this many words are paragraphs.
SENTENCE_MAX_WORDS = 25
#: The domains a pair falls into by the length of its source, shortest first.
DOMAINS: tuple[str, ...] = ("short", "sentence", "paragraph")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def word_count(text: str) -> int:
    """Words of ``text``: whitespace-separated tokens, and for scripts written without spaces one
    word per two CJK characters (so that a Japanese source is measured like an English one).

    >>> word_count("Confirm password"), word_count("パスワードを確認"), word_count("")
    (2, 4, 0)
    """
    text = strip_placeholders(text or "")
    cjk = len(_CJK.findall(text))
    spaced = len(_CJK.sub(" ", text).split())
    return spaced + (cjk + 1) // 2


def domain_codes(words: np.ndarray) -> np.ndarray:
    """Index into :data:`DOMAINS` for source word counts: 0 short (``<= SHORT_MAX_WORDS``), 1 sentence,
    2 paragraph (``> SENTENCE_MAX_WORDS``).

    >>> domain_codes(np.array([1, 6, 7, 25, 26]))
    array([0, 0, 1, 1, 2], dtype=int8)
    """
    words = np.asarray(words)
    return np.where(words <= SHORT_MAX_WORDS, 0, np.where(words <= SENTENCE_MAX_WORDS, 1, 2)).astype(np.int8)


def domain_of(text: str) -> str:
    """The domain (:data:`DOMAINS`) of a pair whose source is ``text``.

    >>> domain_of("Save"), domain_of("Tom is still asleep, but his sister is already at work."), domain_of("word " * 30)
    ('short', 'sentence', 'paragraph')
    """
    return DOMAINS[int(domain_codes(np.array([word_count(text)]))[0])]


_LETTER_WORD = re.compile(r"[^\W\d_]", re.UNICODE)
_ELIDED = re.compile(r"^[a-z]{1,2}['’][A-Z]")


def _neutral(text: str) -> bool:
    words = strip_placeholders(text or "").split()
    if not any(_LETTER_WORD.search(w) for w in words):
        return True  # numbers, codes, punctuation: the same in every language
    if len(words) > 4:
        return False
    # names, month names, acronyms, product codes: each word of 3 or more letters starts with a capital
    # or a digit, or with an elided article before one ("d'Ivoire", "l'Ouest")
    return all(w[0].isupper() or w[0].isdigit() or len(w) < 3 or not _LETTER_WORD.search(w) or _ELIDED.match(w) for w in words)


def language_neutral(texts: Sequence[str]) -> np.ndarray:
    """``(n,)`` float32: 1 where a text may rightly be the same in every language, else 0.

    Neutral: no letters at all (numbers, codes, punctuation), or at most 4 words whose words of 3
    or more letters each start with a capital letter or a digit (names such as "Isle of Man", month
    names, acronyms, product codes). A copy of the
    source is then not by itself a sign of an untranslated text: "April" -> "April" and
    "Honduras" -> "Honduras" are right in German, "Berlin" -> "Berlin" in Swahili. The test is
    deliberately loose ("Save" passes it too): it only stops the copy from being a hard rule, and the
    calibrated gate weighs the copy for each domain.

    >>> language_neutral(["April", "USB 3.0", "42 %", "Isle of Man", "Côte d’Ivoire", "Save", "save the file"])
    array([1., 1., 1., 1., 1., 1., 0.], dtype=float32)
    """
    return np.array([1.0 if _neutral(t) else 0.0 for t in texts], dtype=np.float32)
