"""Concept-keyed shard layout.

Rows go to a bucket by a stable hash of ``concept_id`` (xxh3-64 modulo the bucket count), so every
language version of a concept lands in the same bucket. A bucket is sorted by (``concept_id``,
``lang``) and cut into shards of at most ``max_rows`` rows (and about ``max_bytes`` bytes of text),
always between concepts, never inside one. Shard files are named ``shards/part-BBBBB-KKK.parquet``
for bucket ``B`` and piece ``K``.

Between the two, each stage-3 unit writes one *bucket file* (:func:`write_buckets`): its kept rows
by bucket, one compressed piece per bucket (:func:`~corpusalign.store.files.write_pieces`), so a
bucket is read as piece ``B`` of every unit's file (:func:`read_bucket`). One file per unit, not one
per (unit, bucket): the number of files grows with the corpus, not with its square. The number of
pieces does (units x buckets), so a piece must be cheap to write and to read, and a stage-4 unit
takes several buckets (:func:`shard_units`) from files whose index it reads once (:func:`open_buckets`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import xxhash

from corpusalign.config import ShardConfig
from corpusalign.store.files import PieceFiles, write_pieces
from corpusalign.store.schema import SHARD_SCHEMA, TEXT_FIELDS

SHARD_DIR = "shards"
REJECTED_DIR = "rejected"
QUARANTINE_DIR = "quarantine"
#: Buckets a stage-4 unit writes at most (:func:`shard_units`): at 10M concepts stage 4 reads 60,000
#: pieces, 24.9 s with a bucket file opened for each, 4.9 s opened once for ten (bench/bench_pieces.py;
#: 21.0 and 4.7 s in a later run).
BUCKETS_PER_UNIT = 10


def bucket_count(expected_rows: int, cfg: ShardConfig) -> int:
    """Buckets for a corpus of about ``expected_rows`` rows: about one shard each."""
    return max(1, math.ceil(expected_rows / cfg.max_rows))


def bucket_of(concept_ids: pl.Series, n_buckets: int) -> pl.Series:
    """Stable bucket of each concept id (same on every machine and version)."""
    ids = concept_ids.to_list()
    return pl.Series("_bucket", [xxhash.xxh3_64_intdigest(c.encode("utf-8")) % n_buckets for c in ids], dtype=pl.UInt32)


def write_buckets(parts: Sequence[pa.Table], n_buckets: int, path: Path) -> Path:
    """Write the rows of ``parts`` (shard columns; the kept rows of consecutive batches) as one bucket
    file: piece ``b`` holds bucket ``b``'s rows, part by part in their order, and every bucket has its
    piece, empty or not. Each part is reordered by bucket on its own (a copy of that part) and each
    bucket's piece is written from their slices, so the unit is never concatenated whole."""
    ordered, cuts = [], []
    for part in parts:
        buckets = bucket_of(pl.Series("concept_id", part.column("concept_id")), n_buckets).to_numpy()
        ordered.append(part.take(pa.array(np.argsort(buckets, kind="stable"))))
        cuts.append(np.concatenate([[0], np.cumsum(np.bincount(buckets, minlength=n_buckets))]))
    pieces = ([t.slice(c[b], c[b + 1] - c[b]) for t, c in zip(ordered, cuts, strict=True)] for b in range(n_buckets))
    return write_pieces(pieces, path, SHARD_SCHEMA)


def open_buckets(paths: Sequence[Path]) -> PieceFiles:
    """The bucket files ``paths`` (of :func:`write_buckets`), each opened once, for :func:`read_bucket`."""
    return PieceFiles(paths, SHARD_SCHEMA)


def read_bucket(files: PieceFiles, bucket: int) -> pl.DataFrame:
    """Bucket ``bucket``'s rows from the bucket files of :func:`open_buckets`, in their order."""
    rows = pa.Table.from_batches(files.read(bucket), schema=SHARD_SCHEMA)
    # one chunk per column: Polars takes that far faster than hundreds of small ones
    return pl.from_arrow(rows.combine_chunks())  # type: ignore[return-value]


def shard_units(buckets: Sequence[int], parallelism: int) -> tuple[tuple[int, ...], ...]:
    """Stage 4's units: ``buckets`` (those left to write), in order, in runs of at most
    :data:`BUCKETS_PER_UNIT` and at least ``4 x parallelism`` runs while there are buckets enough, so
    a unit reads each bucket file's index once for several buckets and a cluster still has units for
    every CPU."""
    per = max(1, min(BUCKETS_PER_UNIT, len(buckets) // max(1, 4 * parallelism)))
    return tuple(tuple(buckets[i : i + per]) for i in range(0, len(buckets), per))


def shard_name(bucket: int, piece: int) -> str:
    return f"{SHARD_DIR}/part-{bucket:05d}-{piece:03d}.parquet"


def split_bucket(rows: pl.DataFrame, cfg: ShardConfig) -> Iterator[pl.DataFrame]:
    """Sort a bucket by (concept_id, lang) and cut it into shards between concepts."""
    if rows.height == 0:
        return
    rows = rows.sort("concept_id", "lang")
    sizes = rows.group_by("concept_id", maintain_order=True).agg(
        pl.len().alias("n"),
        pl.sum_horizontal(pl.col(f).str.len_bytes().fill_null(0) for f in TEXT_FIELDS).sum().alias("b"),
    )
    counts = sizes["n"].to_numpy()
    nbytes = sizes["b"].to_numpy() + 64 * counts  # text plus a rough per-row overhead
    piece_rows = piece_bytes = 0
    piece_start = 0
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i in range(len(counts)):
        over_rows = piece_rows + counts[i] > cfg.max_rows
        over_bytes = cfg.max_bytes is not None and piece_bytes + nbytes[i] > cfg.max_bytes
        if piece_rows and (over_rows or over_bytes):
            yield rows.slice(int(offsets[piece_start]), int(offsets[i] - offsets[piece_start]))
            piece_start, piece_rows, piece_bytes = i, 0, 0
        piece_rows += int(counts[i])
        piece_bytes += int(nbytes[i])
    yield rows.slice(int(offsets[piece_start]), int(offsets[len(counts)] - offsets[piece_start]))
