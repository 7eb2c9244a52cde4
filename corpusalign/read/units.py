"""Stage 1a: reading the inputs as units an executor runs, one per input file, on any worker.

A record's ``_seq`` is its ordinal across all inputs, and batch ``i`` holds records
``i * batch_size`` up to the next batch: that needs the number of records in every earlier file,
which only reading them tells. So reading has two halves:

1. :class:`ReadFileJob`, per input file (a Ray task on a cluster, where every node sees the inputs
   at the same path): the file's records -> rows (:func:`~corpusalign.read.records.records_to_batch`)
   in chunks of ``batch_size`` records, numbered from 0 within the file, written as
   ``read/fNNNNN/cNNNNNN.parquet``; the records it cannot read as ``read/fNNNNN/qNNNNNN.parquet``
   with their ordinals; last ``stats/read-file-NNNNN.json`` with the file's record count and read statistics.
2. :func:`assemble_batch`, per batch, at the start of its scoring unit: the file chunks that overlap
   the batch's records, shifted by the file's offset (the records of the files before it). The rows
   are the same as reading every input in one stream (rows depend only on their own record), and
   the quarantine entries of the batch come with it.

Only counts travel to the driver; a file's rows are read on the worker that reads the file.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from corpusalign.config import BuildConfig
from corpusalign.read.formats import RawItem, read_path
from corpusalign.read.records import records_to_batch
from corpusalign.stats import RunStats
from corpusalign.store.files import write_json, write_parquet
from corpusalign.store.schema import QUARANTINE_SCHEMA

#: A quarantined record while it is being read: the quarantine columns and its ordinal in the file.
_QUARANTINE_WITH_SEQ = pa.schema([*QUARANTINE_SCHEMA, pa.field("_seq", pa.uint64())])


def _file_dir(read: Path, f: int) -> Path:
    return read / f"f{f:05d}"


@dataclass(frozen=True)
class ReadFileJob:
    """Reads input file ``f`` (of ``inputs``) into chunk files under ``read``; returns its record
    count and read statistics as JSON, also written to ``stats`` (which marks the file done)."""

    read: Path
    inputs: tuple[Path, ...]
    cfg: BuildConfig
    stats: Path
    #: The driver's working directory: a worker opens a relative input from there, and names it as given.
    cwd: Path

    def __call__(self, f: int) -> str:
        marker = self.stats / f"read-file-{f:05d}.json"
        if marker.exists():  # read by an earlier run of this build
            return marker.read_text()
        folder = _file_dir(self.read, f)
        run = RunStats()
        stats = run["read"]
        given = self.inputs[f]
        opened = given if given.is_absolute() else self.cwd / given
        items: Iterator[RawItem] = read_path(opened, self.cfg.id_field, self.cfg.columns)
        if opened != given:
            items = (replace(item, source_file=str(given)) if item.source_file == str(opened) else item for item in items)
        n = 0
        size = self.cfg.batch_size
        for c in itertools.count():
            chunk = list(itertools.islice(items, size))
            if not chunk:
                break
            with stats.timed(len(chunk)):
                rows, quarantined, k = records_to_batch(chunk, self.cfg, seq_start=c * size)
            table = rows.to_arrow()
            write_parquet(table, folder / f"c{c:06d}.parquet", table.schema)
            if quarantined:
                q = pa.Table.from_pylist(quarantined, schema=_QUARANTINE_WITH_SEQ)
                write_parquet(q, folder / f"q{c:06d}.parquet", _QUARANTINE_WITH_SEQ)
            n += k
        done = json.dumps({"file": f, "items": n, "stats": run.to_dict()})
        write_json(json.loads(done), marker)
        return done


def file_offsets(counts: Sequence[int]) -> list[int]:
    """The ordinal of each file's first record across all inputs."""
    return [0, *itertools.accumulate(counts)][: len(counts)]


def assemble_batch(read: Path, counts: Sequence[int], batch_size: int, i: int) -> tuple[pl.DataFrame, list[dict[str, Any]], int]:
    """Batch ``i``: ``(rows, quarantined, n_records)``, as one stream over every input would give them."""
    total = sum(counts)
    lo, hi = i * batch_size, min((i + 1) * batch_size, total)
    rows: list[pl.DataFrame] = []
    quarantined: list[dict[str, Any]] = []
    for f, (off, n) in enumerate(zip(file_offsets(counts), counts, strict=True)):
        a, b = max(lo - off, 0), min(hi - off, n)  # the file's records in this batch, by ordinal in the file
        if a >= b:
            continue
        for c in range(a // batch_size, (b - 1) // batch_size + 1):
            folder = _file_dir(read, f)
            keep = pl.col("_seq").is_between(a, b - 1)
            shift = (pl.col("_seq") + off).cast(pl.UInt64)
            rows.append(pl.read_parquet(folder / f"c{c:06d}.parquet").filter(keep).with_columns(shift))
            q = folder / f"q{c:06d}.parquet"
            if q.exists():
                quarantined += pl.read_parquet(q).filter(keep).sort("_seq").drop("_seq").to_dicts()
    batch = pl.concat(rows) if rows else pl.DataFrame()
    return batch, quarantined, hi - lo
