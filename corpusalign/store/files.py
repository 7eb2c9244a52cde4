"""Atomic file writes and checksums.

Every file a build writes goes to ``NAME.tmp`` first and is renamed into place once complete and
flushed to disk, so a reader (or a resumed build) sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from corpusalign.store.schema import conform

TMP_SUFFIX = ".tmp"


def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_parquet(table: pa.Table, path: Path, schema: pa.Schema, row_group_size: int | None = None) -> Path:
    """Write ``table`` conformed to ``schema`` (zstd-compressed) atomically; ``row_group_size`` rows per
    row group at most (default: pyarrow's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    pq.write_table(conform(table, schema), tmp, compression="zstd", row_group_size=row_group_size)
    _fsync_replace(tmp, path)
    return path


def write_ipc_batches(batches: Iterable[Sequence[pa.Table]], path: Path, schema: pa.Schema) -> Path:
    """Write an Arrow IPC file (lz4) atomically, one record batch for each item of ``batches``: the
    rows of its tables, conformed to ``schema`` (an item without rows gives an empty batch).

    For working files read back one record batch at a time: Parquet's per-file cost (zstd, footer,
    row groups) made many small pieces slow to write and read, and IPC batches are read without the rest.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    options = ipc.IpcWriteOptions(compression="lz4")
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema, options=options) as writer:
        for tables in batches:
            rows = [conform(t, schema) for t in tables if t.num_rows]
            whole = pa.concat_tables(rows).combine_chunks() if rows else None
            writer.write_batch(whole.to_batches()[0] if whole is not None else pa.RecordBatch.from_pylist([], schema=schema))
    _fsync_replace(tmp, path)
    return path


def read_ipc_batch(path: Path, k: int) -> pa.RecordBatch:
    """Record batch ``k`` of an Arrow IPC file written by :func:`write_ipc`, read alone."""
    with pa.OSFile(str(path)) as source:  # reads the footer and that batch only
        reader = ipc.open_file(source)
        if not 0 <= k < reader.num_record_batches:
            raise ValueError(f"{path}: has {reader.num_record_batches} record batches, asked for batch {k}")
        return reader.get_batch(k)


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(text, encoding="utf-8")
    _fsync_replace(tmp, path)
    return path


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open ``NAME.tmp`` for streamed writing (``mode`` ``"w"``: UTF-8 text with ``\\n`` line ends, or
    ``"wb"``); on a clean exit it is flushed to disk and renamed to ``path``, on an exception removed."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', not {mode!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    f = open(tmp, mode, encoding="utf-8", newline="\n") if mode == "w" else open(tmp, mode)  # noqa: SIM115
    try:
        yield f
        f.close()
        _fsync_replace(tmp, path)
    except BaseException:
        f.close()
        tmp.unlink(missing_ok=True)
        raise


def write_json(obj: Any, path: Path) -> Path:
    return write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n", path)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def remove_temporaries(root: Path) -> int:
    """Delete ``*.tmp`` files an interrupted build left behind; returns how many."""
    n = 0
    if root.exists():
        for tmp in root.rglob(f"*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            n += 1
    return n
