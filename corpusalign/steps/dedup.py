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

from collections.abc import Sequence

import numpy as np
import polars as pl
import xxhash

from corpusalign.config import BuildConfig, DedupConfig
from corpusalign.stats import StepStats
from corpusalign.steps.base import Step

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


def jaccard(a: str, b: str, n: int) -> float:
    sa, sb = set(shingles(a, n)), set(shingles(b, n))
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


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


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller ordinal (earlier in input) is the representative
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


def find_duplicates(sources: pl.LazyFrame, cfg: BuildConfig, stats: StepStats | None = None) -> pl.DataFrame:
    """Duplicates among source rows (``_seq``, ``concept_id``, ``dedup_key``, ``lsh_bands``, fields).

    Returns one row per duplicate concept: ``_seq``, ``dup_of`` (the ``concept_id`` it duplicates)
    and ``dup_kind``: ``duplicate_id`` (same id, different text), ``duplicate`` (same text) or
    ``near_duplicate`` (Jaccard similarity of n-grams >= threshold).
    """
    stats = stats or StepStats()
    d = cfg.dedup
    base = sources.select("_seq", "concept_id", "dedup_key").collect()
    with stats.timed(base.height):
        found: list[pl.DataFrame] = []
        # 1. One concept id used by several records: the first keeps it.
        first_by_id = base.group_by("concept_id").agg(pl.col("_seq").min().alias("_rep"))
        by_id = base.join(first_by_id, on="concept_id").filter(pl.col("_seq") != pl.col("_rep"))
        rep_key = base.select(pl.col("_seq").alias("_rep"), pl.col("dedup_key").alias("_rep_key"))
        by_id = by_id.join(rep_key, on="_rep").select(
            "_seq",
            pl.col("concept_id").alias("dup_of"),
            pl.when(pl.col("dedup_key") == pl.col("_rep_key"))
            .then(pl.lit("duplicate"))
            .otherwise(pl.lit("duplicate_id"))
            .alias("dup_kind"),
        )
        found.append(by_id)
        remaining = base.join(by_id.select("_seq"), on="_seq", how="anti")
        # 2. Exact duplicates of the normalised, casefolded text.
        if d.exact:
            keyed = remaining.filter(pl.col("dedup_key").is_not_null())
            first_by_key = keyed.group_by("dedup_key").agg(pl.col("_seq").min().alias("_rep"))
            exact = keyed.join(first_by_key, on="dedup_key").filter(pl.col("_seq") != pl.col("_rep"))
            exact = exact.join(
                remaining.select(pl.col("_seq").alias("_rep"), pl.col("concept_id").alias("dup_of")), on="_rep"
            ).select("_seq", "dup_of", pl.lit("duplicate").alias("dup_kind"))
            found.append(exact)
            remaining = remaining.join(exact.select("_seq"), on="_seq", how="anti")
        # 3. Near duplicates: candidate pairs from LSH bands, confirmed by exact Jaccard.
        if d.near and remaining.height > 1:
            near = _near_duplicates(sources, remaining, cfg, stats)
            found.append(near)
        dups = pl.concat([f.cast(DUPLICATES_SCHEMA) for f in found]) if found else pl.DataFrame(schema=DUPLICATES_SCHEMA)
        for kind, n in dups.group_by("dup_kind").len().iter_rows():
            stats.count(kind, n)
    return dups.sort("_seq")


def _near_duplicates(sources: pl.LazyFrame, remaining: pl.DataFrame, cfg: BuildConfig, stats: StepStats) -> pl.DataFrame:
    d = cfg.dedup
    keep = remaining.select("_seq").lazy()
    pairs: set[tuple[int, int]] = set()
    for b in range(d.bands):
        groups = (
            sources.join(keep, on="_seq", how="semi")
            .select("_seq", pl.col("lsh_bands").list.get(b, null_on_oob=True).alias("k"))
            .filter(pl.col("k").is_not_null())
            .group_by("k")
            .agg(pl.col("_seq").min().alias("rep"), pl.col("_seq").alias("members"), pl.len().alias("n"))
            .filter(pl.col("n") > 1)
            .collect()
        )
        for rep, members in groups.select("rep", "members").iter_rows():
            pairs.update((rep, m) for m in members if m != rep)
    stats.count("near_candidate_pairs", len(pairs))
    if not pairs:
        return pl.DataFrame(schema=DUPLICATES_SCHEMA)
    involved = pl.DataFrame({"_seq": sorted({s for p in pairs for s in p})}, schema={"_seq": pl.UInt64})
    texts = (
        sources.join(involved.lazy(), on="_seq", how="semi")
        .select("_seq", "concept_id", dedup_text_expr(cfg.fields).alias("t"))
        .collect()
    )
    text_of = dict(zip(texts["_seq"].to_list(), texts["t"].to_list(), strict=True))
    id_of = dict(zip(texts["_seq"].to_list(), texts["concept_id"].to_list(), strict=True))
    uf = _UnionFind()
    confirmed = 0
    for a, b in sorted(pairs):
        if jaccard(text_of[a], text_of[b], d.ngram) >= d.threshold:
            uf.union(a, b)
            confirmed += 1
    stats.count("near_confirmed_pairs", confirmed)
    rows = [(s, id_of[uf.find(s)]) for s in text_of if uf.find(s) != s]
    return pl.DataFrame(
        {"_seq": [r[0] for r in rows], "dup_of": [r[1] for r in rows], "dup_kind": ["near_duplicate"] * len(rows)},
        schema=DUPLICATES_SCHEMA,
    )
