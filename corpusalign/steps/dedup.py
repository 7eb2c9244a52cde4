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

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
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


def find_duplicates(
    sources: pl.LazyFrame, cfg: BuildConfig, stats: StepStats | None = None, scratch: Path | None = None
) -> pl.DataFrame:
    """Duplicates among source rows (``_seq``, ``concept_id``, ``dedup_key``, ``lsh_bands``, fields).

    Returns one row per duplicate concept: ``_seq``, ``dup_of`` (the ``concept_id`` it duplicates)
    and ``dup_kind``: ``duplicate_id`` (same id, different text), ``duplicate`` (same text) or
    ``near_duplicate`` (Jaccard similarity of n-grams >= threshold).

    Every query runs on Polars' streaming engine and keeps only groups of two or more rows, so
    memory holds the hash tables of one grouping and the duplicates, never the corpus.
    """
    stats = stats or StepStats()
    d = cfg.dedup
    base = sources.select("_seq", "concept_id", "dedup_key")
    with stats.timed(0):
        stats.rows += sources.select(pl.len()).collect(engine="streaming").item()
        found: list[pl.DataFrame] = []
        # 1. One concept id used by several records: the first keeps it.
        ids = _groups_of_two_or_more(base, "concept_id")
        reps = _rows_of(base, ids["_rep"]).select(pl.col("_seq").alias("_rep"), pl.col("dedup_key").alias("_rep_key"))
        by_id = _members(base, ids, "concept_id", reps).select(
            "_seq",
            pl.col("concept_id").alias("dup_of"),
            pl.when(pl.col("dedup_key") == pl.col("_rep_key"))
            .then(pl.lit("duplicate"))
            .otherwise(pl.lit("duplicate_id"))
            .alias("dup_kind"),
        )
        found.append(by_id)
        # 2. Exact duplicates of the normalised, casefolded text.
        if d.exact:
            keyed = base.filter(pl.col("dedup_key").is_not_null()).join(by_id.lazy().select("_seq"), on="_seq", how="anti")
            keys = _groups_of_two_or_more(keyed, "dedup_key")
            reps = _rows_of(base, keys["_rep"]).select(pl.col("_seq").alias("_rep"), pl.col("concept_id").alias("dup_of"))
            exact = _members(keyed, keys, "dedup_key", reps).select("_seq", "dup_of", pl.lit("duplicate").alias("dup_kind"))
            found.append(exact)
        # 3. Near duplicates: candidate pairs from LSH bands, confirmed by exact Jaccard.
        if d.near:
            done = pl.concat([f.select("_seq") for f in found])
            found.append(_near_duplicates(sources, done, cfg, stats, scratch))
        dups = pl.concat([f.cast(DUPLICATES_SCHEMA) for f in found])
        for kind, n in dups.group_by("dup_kind").len().iter_rows():
            stats.count(kind, n)
    return dups.sort("_seq")


def _groups_of_two_or_more(rows: pl.LazyFrame, key: str) -> pl.DataFrame:
    """``key`` and ``_rep`` (the smallest ``_seq``) of every value of ``key`` shared by two rows or more."""
    return (
        rows.group_by(key)
        .agg(pl.col("_seq").min().alias("_rep"), pl.len().alias("_n"))
        .filter(pl.col("_n") > 1)
        .select(key, "_rep")
        .collect(engine="streaming")
    )


def _members(rows: pl.LazyFrame, groups: pl.DataFrame, key: str, reps: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``rows`` in a group of ``groups`` (by ``key``) that are not its representative,
    with ``reps`` (the representatives' columns, by ``_rep``) joined."""
    members = rows.join(groups.lazy(), on=key).filter(pl.col("_seq") != pl.col("_rep"))
    return members.collect(engine="streaming").join(reps, on="_rep")


def _rows_of(rows: pl.LazyFrame, seqs: pl.Series) -> pl.DataFrame:
    return rows.join(pl.DataFrame({"_seq": seqs}).lazy(), on="_seq", how="semi").collect(engine="streaming")


def _near_duplicates(
    sources: pl.LazyFrame, done: pl.DataFrame, cfg: BuildConfig, stats: StepStats, scratch: Path | None = None
) -> pl.DataFrame:
    """Near duplicates among the source rows not in ``done`` (those already found as duplicates).

    One streaming pass first writes a narrow file of the candidates (``_seq``, ``concept_id``, the
    dedup text and one UInt64 column per band; in ``scratch`` or a temporary folder): each band's
    pass then reads 16 bytes per source row, and the texts of the candidate pairs are read from it
    one row group at a time.
    """
    d = cfg.dedup
    with tempfile.TemporaryDirectory(prefix="corpusalign-bands-", dir=scratch) as tmp:
        narrow = Path(tmp) / "bands.parquet"
        candidates = (
            sources.join(done.lazy(), on="_seq", how="anti")
            .filter(pl.col("lsh_bands").is_not_null())
            .select(
                "_seq",
                "concept_id",
                dedup_text_expr(cfg.fields).alias("t"),
                *(pl.col("lsh_bands").list.get(b, null_on_oob=True).alias(f"b{b}") for b in range(d.bands)),
            )
        )
        writer: pq.ParquetWriter | None = None
        for chunk in candidates.collect_batches(chunk_size=_CHUNK):
            table = chunk.to_arrow()
            writer = writer or pq.ParquetWriter(narrow, table.schema)
            writer.write_table(table, row_group_size=_CHUNK)
        if writer is None:
            return pl.DataFrame(schema=DUPLICATES_SCHEMA)
        writer.close()
        found: list[pl.DataFrame] = []
        for b in range(d.bands):
            keyed = pl.scan_parquet(narrow).select("_seq", pl.col(f"b{b}").alias("k")).filter(pl.col("k").is_not_null())
            reps = _groups_of_two_or_more(keyed, "k")
            found.append(
                keyed.join(reps.lazy(), on="k")
                .filter(pl.col("_seq") != pl.col("_rep"))
                .select("_rep", "_seq")
                .collect(engine="streaming")
            )
        pairs = pl.concat(found).unique().sort("_rep", "_seq")
        stats.count("near_candidate_pairs", pairs.height)
        if not pairs.height:
            return pl.DataFrame(schema=DUPLICATES_SCHEMA)
        involved = pl.concat([pairs["_rep"], pairs["_seq"]]).unique()
        parts = [
            pl.from_arrow(batch).filter(pl.col("_seq").is_in(involved.implode()))
            for batch in pq.ParquetFile(narrow).iter_batches(batch_size=_CHUNK, columns=["_seq", "concept_id", "t"])
        ]
    texts = pl.concat(parts)  # type: ignore[arg-type]
    uf = _UnionFind()
    confirmed = 0
    for start in range(0, pairs.height, _CHUNK):  # the texts of a chunk of pairs as Python strings, not of all pairs
        chunk = (
            pairs.slice(start, _CHUNK)
            .join(texts.select(pl.col("_seq").alias("_rep"), pl.col("t").alias("ta")), on="_rep", maintain_order="left")
            .join(texts.select("_seq", pl.col("t").alias("tb")), on="_seq", maintain_order="left")
        )
        for a, b, ta, tb in chunk.select("_rep", "_seq", "ta", "tb").iter_rows():
            if jaccard(ta, tb, d.ngram) >= d.threshold:
                uf.union(a, b)
                confirmed += 1
    stats.count("near_confirmed_pairs", confirmed)
    members = [s for s in uf.parent if uf.find(s) != s]
    reps = pl.DataFrame({"_seq": members, "_rep": [uf.find(s) for s in members]}, schema={"_seq": pl.UInt64, "_rep": pl.UInt64})
    return (
        reps.join(texts.select(pl.col("_seq").alias("_rep"), pl.col("concept_id").alias("dup_of")), on="_rep")
        .select("_seq", "dup_of", pl.lit("near_duplicate").alias("dup_kind"))
        .cast(DUPLICATES_SCHEMA)
    )
