"""The cost of a shuffle piece: a stage-3 unit's rows written by bucket, and a bucket read back from
every unit's file, as at 1M and at 10M concepts.

The number of pieces a build writes and reads is units x buckets, so it grows with the square of the
corpus (600 at 1M concepts, 60,000 at 10M): what a piece costs beyond its rows decides whether
stages 3 and 4 scale linearly. Two formats, measured in the same run on the same rows:

* ``arrow-lz4``: the former bucket file, an Arrow IPC file with one record batch per bucket and
  Arrow's LZ4 compression (each column buffer compressed on its own);
* ``pieces``: the shipped :func:`corpusalign.store.files.write_pieces` (each piece serialised and
  compressed whole, all pieces in one index batch), read a piece at a time (:func:`read_piece`: each
  read opens its file) and as stage 4 reads it (``read_bucket_in_unit_ms``: every file opened once
  for ten buckets, :class:`~corpusalign.store.files.PieceFiles`).

The rows are real shard rows: Tatoeba sentences from the bundled sample in every text column a
build fills, the other columns as a build leaves them.

Stage 2d (near pairs) reads the same way: each of its units (one per partition) takes, for each of
the 16 LSH bands, its piece of every map unit's band-key file, map units x partitions x 16 reads in
all (10 x 2 x 16 at 1M concepts, 100 x 20 x 16 at 10M). ``NEAR_SHAPES`` measures those reads one
file open each (:func:`read_piece`, as 2d did) and with each file's index read once per unit
(:class:`PieceFiles`, as 2d does now), on pieces of ``--near-rows`` band keys (a build's are larger
at 10M; the figures are the per-read cost, which does not depend on the rows).

Usage::

    python bench/bench_pieces.py            # results: bench/results/pieces.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from corpusalign.store.files import PieceFiles, read_piece, write_pieces
from corpusalign.store.schema import SHARD_SCHEMA, conform
from corpusalign.store.shards import bucket_of

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "corpusalign" / "data" / "sample" / "tatoeba_en_de_ja.jsonl"
#: (label, buckets, units): a 150,000-row stage-3 unit, buckets of 100,000 rows, as a build has them.
SHAPES = (("1M concepts", 30, 20), ("10M concepts", 300, 200))


#: (label, map units, partitions) of stage 2d, as the scale benchmark's builds had them (docs/scaling.md).
NEAR_SHAPES = (("1M concepts", 10, 2), ("10M concepts", 100, 20))
BANDS = 16


def measure_near(units: int, parts: int, rows: int, work: Path) -> dict[str, float]:
    """Stage 2d's reads of band-key pieces: every (partition, band) piece of every map unit's file."""
    import numpy as np

    schema = pa.schema([("_seq", pa.uint64()), ("band", pa.uint8()), ("k", pa.uint64())])
    rng = np.random.default_rng(0)
    piece = pa.table(
        {
            "_seq": pa.array(rng.integers(0, 2**40, rows, dtype=np.uint64)),
            "band": pa.array(rng.integers(0, BANDS, rows).astype(np.uint8)),
            "k": pa.array(rng.integers(0, 2**63, rows, dtype=np.uint64)),
        },
        schema=schema,
    )
    files = [work / f"bands-{units}-{u}.arrow" for u in range(units)]
    for f in files:
        write_pieces(([piece] for _ in range(parts * BANDS)), f, schema)
    t = time.perf_counter()
    for p in range(parts):
        for b in range(BANDS):
            [read_piece(f, p * BANDS + b, schema) for f in files]
    each_open_s = time.perf_counter() - t
    t = time.perf_counter()
    for p in range(parts):
        opened = PieceFiles(files, schema)
        for b in range(BANDS):
            opened.read(p * BANDS + b)
    once_s = time.perf_counter() - t
    for f in files:
        f.unlink()
    return {
        "reads": units * parts * BANDS,
        "stage2d_reads_each_open_s": round(each_open_s, 2),
        "stage2d_reads_index_once_s": round(once_s, 2),
    }


def unit_rows(n: int) -> pa.Table:
    """``n`` shard rows of real text (three languages per concept)."""
    texts = [orjson.loads(line) for line in SAMPLE.read_bytes().splitlines() if line.strip()]
    rows = []
    for i in range(n // 3):
        rec = texts[i % len(texts)]
        for lang in ("en", "de", "ja"):
            rows.append(
                {
                    "concept_id": f"bench.0.{i:07d}",
                    "lang": lang,
                    "text": rec[lang],
                    "origin": "human",
                    "source_file": "corpus-00.jsonl",
                    "source_line": i,
                    "lid_lang": lang,
                    "lid_score": 0.99,
                    "lid_expected": 0.99,
                }
            )
    given = pa.Table.from_pylist(rows)
    full = {f.name: given[f.name] if f.name in given.column_names else pa.nulls(len(rows), f.type) for f in SHARD_SCHEMA}
    return conform(pa.table(full), SHARD_SCHEMA)


def write_arrow_lz4(pieces: list[pa.Table], path: Path) -> None:
    options = ipc.IpcWriteOptions(compression="lz4")
    empty = pa.RecordBatch.from_pylist([], schema=SHARD_SCHEMA)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, SHARD_SCHEMA, options=options) as w:
        for t in pieces:
            w.write_batch(t.combine_chunks().to_batches()[0] if t.num_rows else empty)


def read_arrow_lz4(path: Path, k: int) -> pa.RecordBatch:
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).get_batch(k)


def measure(rows: pa.Table, buckets: int, units: int, fmt: str, work: Path) -> dict[str, float]:
    b = bucket_of(pl.Series("concept_id", rows.column("concept_id")), buckets).to_numpy()
    ordered = rows.take(pa.array(b.argsort(kind="stable")))
    counts = [int((b == k).sum()) for k in range(buckets)]
    starts = [sum(counts[:k]) for k in range(buckets)]
    pieces = [ordered.slice(starts[k], counts[k]) for k in range(buckets)]
    files = [work / f"{fmt}-{buckets}-{u}.bin" for u in range(3)]  # three files, read round robin
    t = time.perf_counter()
    for f in files:
        write_pieces(([p] for p in pieces), f, SHARD_SCHEMA) if fmt == "pieces" else write_arrow_lz4(pieces, f)
    write_s = (time.perf_counter() - t) / len(files)
    reads = min(buckets, 10)
    t = time.perf_counter()
    for k in range(reads):
        for u in range(units):
            read_piece(files[u % 3], k, SHARD_SCHEMA) if fmt == "pieces" else read_arrow_lz4(files[u % 3], k)
    read_s = (time.perf_counter() - t) / reads
    out = {}
    if fmt == "pieces":  # as stage 4 reads: the files opened once for a unit of `reads` buckets
        t = time.perf_counter()
        opened = PieceFiles([files[u % 3] for u in range(units)], SHARD_SCHEMA)
        for k in range(reads):
            opened.read(k)
        unit_s = (time.perf_counter() - t) / reads
        out = {"read_bucket_in_unit_ms": round(unit_s * 1e3, 1), "stage4_reads_in_units_s": round(unit_s * buckets, 1)}
    return {
        "write_unit_ms": round(write_s * 1e3, 1),
        "read_bucket_ms": round(read_s * 1e3, 1),
        "stage3_writes_s": round(write_s * units, 1),
        "stage4_reads_s": round(read_s * buckets, 1),
        "file_mb": round(files[0].stat().st_size / 2**20, 2),
        **out,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=150_000, help="rows of one stage-3 unit (default: the build's 150,000)")
    ap.add_argument("--near-rows", type=int, default=1_000, help="band keys per stage-2d piece (default 1,000)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pieces.json")
    args = ap.parse_args()
    rows = unit_rows(args.rows)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, units, parts in NEAR_SHAPES:
            r = {"shape": label, "stage": "2d", "map_units": units, "partitions": parts, "rows_per_piece": args.near_rows}
            r |= measure_near(units, parts, args.near_rows, Path(tmp))
            print(json.dumps(r))
            print(
                f"{label}: stage-2d reads ({r['reads']:,}), each file opened per read {r['stage2d_reads_each_open_s']:.2f} s, "
                f"each file's index once per unit {r['stage2d_reads_index_once_s']:.2f} s"
            )
            results.append(r)
        for label, buckets, units in SHAPES:
            for fmt in ("arrow-lz4", "pieces"):
                r = {"shape": label, "buckets": buckets, "units": units, "format": fmt}
                r |= measure(rows, buckets, units, fmt, Path(tmp))
                print(json.dumps(r))
                results.append(r)
    by = {(r["shape"], r["format"]): r for r in results if "format" in r}
    for label, _, _ in SHAPES:
        old, new = by[(label, "arrow-lz4")], by[(label, "pieces")]
        before = old["stage3_writes_s"] + old["stage4_reads_s"]
        after = new["stage3_writes_s"] + new["stage4_reads_s"]
        print(f"{label}: stage-3 writes + stage-4 reads {before:.1f} s -> {after:.1f} s ({before / after:.1f}x less)")
        print(
            f"{label}: stage-4 reads, each file opened per bucket {new['stage4_reads_s']:.1f} s, once per unit of 10 buckets "
            f"{new['stage4_reads_in_units_s']:.1f} s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
