"""Exact and near-duplicate detection of concepts on their normalised source text.

Dedup needs the whole corpus, so it runs in two parts:

1. :class:`DedupSignatureStep`, per batch: for each source row, ``dedup_key`` (a 64-bit xxh3 hash of
   the casefolded text, for exact duplicates) and ``lsh_bands`` (the MinHash signature of its
   character n-grams, folded into one 64-bit key per LSH band; texts shorter than
   ``near_min_chars`` get none, as one changed word there is a changed meaning). MinHash signatures come from
   ``rensa`` (Rust): measured here it was the fastest maintained MinHash library (see
   docs/benchmarks.md), and it needs no index in memory because banding is done here.
2. :func:`find_duplicates`, once, over the signatures of every batch: concepts sharing an id,
   concepts with equal ``dedup_key``, and candidate pairs that share any LSH band, each candidate
   confirmed by the exact Jaccard similarity of its n-gram sets (>= ``threshold``). Clusters are
   connected components; every member but the first in input order gets ``dup_of`` = the first
   member's ``concept_id``. It works one band at a time over the staged files, so memory holds
   one band's keys, not the whole index.

Nothing is dropped here; the select step rejects rows whose concept has ``dup_of`` set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl
import xxhash

from corpusalign.config import BuildConfig, DedupConfig
from corpusalign.stats import StepStats
from corpusalign.steps.base import Step

_CHUNK = 65_536  # rows per chunk when streaming candidates and pairs

#: Result schema of :func:`find_duplicates`.
DUPLICATES_SCHEMA = {"_seq": pl.UInt64, "dup_of": pl.String, "dup_kind": pl.String}


def dedup_text_expr(fields: Sequence[str]) -> pl.Expr:
    """Text that dedup compares: the (already normalised) fields, casefolded, whitespace collapsed."""
    joined = pl.concat_str([pl.col(f).fill_null("") for f in fields], separator="\x1f")
    return joined.str.to_lowercase().str.replace_all(r"\s+", " ")


def shingles(text: str, n: int) -> list[str]:
    """Character n-grams of ``text``; a text shorter than ``n`` is its own single shingle."""
    if len(text) <= n:
        return [text]
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def _shingle_set(text: str, n: int) -> set[str]:
    return {text[i : i + n] for i in range(len(text) - n + 1)} if len(text) > n else {text}


def jaccard(a: str, b: str, n: int) -> float:
    """Jaccard similarity of the character n-gram sets of ``a`` and ``b`` (the union counted, not built)."""
    sa, sb = _shingle_set(a, n), _shingle_set(b, n)
    inter = len(sa & sb)
    return inter / (len(sa) + len(sb) - inter)


def similar_pairs(firsts: Iterable[str], seconds: Iterable[str], n: int, threshold: float) -> list[bool]:
    """``jaccard(a, b, n) >= threshold`` for each pair of ``firsts`` and ``seconds``, the same answers
    for less work: a run of equal ``firsts`` (pairs sorted by their first text) builds its n-gram set
    once, and two sets whose sizes alone bound the similarity below ``threshold`` are not intersected
    (nor is the second set built when its text is too short to reach that size: a text of length L
    has at most ``L - n + 1`` n-grams)."""
    out: list[bool] = []
    last: str | None = None
    sa: set[str] = set()
    for a, b in zip(firsts, seconds, strict=True):
        if a != last:
            last, sa = a, _shingle_set(a, n)
        if max(len(b) - n + 1, 1) < threshold * len(sa):  # |B| <= that bound, so |B| / |A| < threshold
            out.append(False)
            continue
        sb = _shingle_set(b, n)
        small, large = sorted((len(sa), len(sb)))
        if small / large < threshold:  # |A & B| / |A | B| <= small / large (the same division when A is in B)
            out.append(False)
            continue
        inter = len(sa & sb)
        out.append(inter / (len(sa) + len(sb) - inter) >= threshold)
    return out


def band_keys(signatures: np.ndarray, bands: int) -> np.ndarray:
    """Fold an ``(n, num_perm)`` uint32 MinHash matrix into ``(n, bands)`` uint64 band keys."""
    n, num_perm = signatures.shape
    rows = num_perm // bands
    sig = signatures.astype(np.uint64).reshape(n, bands, rows)
    mult = (np.arange(rows, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
    with np.errstate(over="ignore"):
        keys = (sig * mult).sum(axis=2, dtype=np.uint64)
        keys ^= keys >> np.uint64(29)
        keys *= np.uint64(0xBF58476D1CE4E5B9)
        keys ^= keys >> np.uint64(32)
    return keys


def minhash_band_keys(texts: Sequence[str], cfg: DedupConfig) -> np.ndarray:
    import rensa

    if not texts:
        return np.zeros((0, cfg.bands), dtype=np.uint64)
    tokens = [shingles(t, cfg.ngram) for t in texts]
    sig = np.array(rensa.RMinHash.digests_from_token_sets(tokens, cfg.num_perm, cfg.seed), dtype=np.uint32)
    return band_keys(sig, cfg.bands)


class DedupSignatureStep(Step):
    name = "dedup_signature"
    adds = ("dedup_key", "lsh_bands")

    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg
        self.reads = ("lang", *cfg.fields)

    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        is_src = pl.col("lang") == self.cfg.src
        src = batch.filter(is_src)
        with stats.timed(src.height):
            texts = src.select(dedup_text_expr(self.cfg.fields))[:, 0].to_list()
            # a source with an empty field is no concept (select rejects it as "empty"): it duplicates nothing
            empty = src.select(pl.any_horizontal(pl.col(f).is_null() | (pl.col(f) == "") for f in self.cfg.fields))[:, 0]
            exact = [None if e else xxhash.xxh3_64_intdigest(t.encode("utf-8")) for t, e in zip(texts, empty, strict=True)]
            d = self.cfg.dedup
            long_enough = (
                [i for i, (t, e) in enumerate(zip(texts, empty, strict=True)) if not e and len(t) >= d.near_min_chars]
                if d.near
                else []
            )
            rows: list[list[int] | None] = [None] * len(texts)
            if long_enough:
                keys = minhash_band_keys([texts[i] for i in long_enough], d)
                for i, k in zip(long_enough, keys.tolist(), strict=True):
                    rows[i] = k
            bands = pl.Series("lsh_bands", rows, dtype=pl.List(pl.UInt64))
            sig = pl.DataFrame({"_seq": src["_seq"], "dedup_key": pl.Series(exact, dtype=pl.UInt64), "lsh_bands": bands})
            out = batch.join(sig, on="_seq", how="left", maintain_order="left").with_columns(
                pl.when(is_src).then(pl.col("dedup_key")).alias("dedup_key"),
                pl.when(is_src).then(pl.col("lsh_bands")).alias("lsh_bands"),
            )
        return out
