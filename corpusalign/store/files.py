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

import numpy as np
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


#: One row per piece in a file of :func:`write_pieces`: the piece's record batch, serialised and compressed whole.
_PIECES = pa.schema([pa.field("piece", pa.large_binary(), nullable=False), pa.field("size", pa.int64(), nullable=False)])
_CODEC = "lz4"


def write_pieces(pieces: Iterable[Sequence[pa.Table]], path: Path, schema: pa.Schema) -> Path:
    """Write a file of pieces atomically, one for each item of ``pieces``: the rows of its tables,
    conformed to ``schema`` (an item without rows gives an empty piece), read back alone by
    :func:`read_piece`.

    For the working files of a shuffle, cut into many small pieces (a stage-2 map unit's keys by
    partition, a stage-3 unit's rows by bucket): one file per unit, whatever the number of pieces.
    A piece is one record batch, serialised without its schema and compressed whole with LZ4; the
    file is an uncompressed Arrow IPC file of one record batch with a row (``piece``, ``size``) per
    piece, so the whole unit's pieces are held until written. Against an Arrow IPC file with a
    record batch per piece and Arrow's own LZ4 (a block per column buffer), writing a stage-3 unit
    of 300 pieces took 81 instead of 117 ms in one run, 97 instead of 159 ms in another and 100
    instead of 166 ms in a third (at 30 pieces, 56 against 43 ms there: no gain at the 1M shape); a piece
    read alone (:func:`read_piece`) costs 0.3-0.4 ms either way, so many reads of the same files go
    through :class:`PieceFiles` (``bench/bench_pieces.py``, docs/scaling.md).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    codec = pa.Codec(_CODEC)
    packed, sizes = [], []
    for tables in pieces:
        rows = [conform(t, schema) for t in tables if t.num_rows]
        batch = pa.concat_tables(rows).combine_chunks().to_batches()[0] if rows else pa.RecordBatch.from_pylist([], schema=schema)
        raw = batch.serialize()
        packed.append(codec.compress(raw, asbytes=True))
        sizes.append(raw.size)
    index = pa.record_batch([pa.array(packed, pa.large_binary()), pa.array(sizes, pa.int64())], schema=_PIECES)
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, _PIECES) as writer:
        writer.write_batch(index)  # one batch: a reader finds piece k without a footer entry per piece
    _fsync_replace(tmp, path)
    return path


class PieceFiles:
    """Files written by :func:`write_pieces` with ``schema``, each file's index read once: :meth:`read`
    gives piece ``k`` of every file. A reader that takes many pieces of the same files, as a stage-4
    unit of several buckets does, parses each file's index once and then reads a piece as one read of
    its compressed bytes: at the 10M-concept shape 0.08 instead of 0.41 ms a piece
    (``bench/bench_pieces.py``). Nothing stays mapped between reads (a unit that kept ten buckets'
    pages of its files mapped had a 1M build's stage-4 peak grow by 120 MiB)."""

    def __init__(self, paths: Sequence[Path], schema: pa.Schema) -> None:
        self.paths = list(paths)
        self.schema = schema
        self._index = [_piece_index(path) for path in self.paths]

    def read(self, k: int) -> list[pa.RecordBatch]:
        codec = pa.Codec(_CODEC)
        out = []
        for path, (starts, lengths, sizes) in zip(self.paths, self._index, strict=True):
            if not 0 <= k < len(starts):
                raise ValueError(f"{path}: has {len(starts)} pieces, asked for piece {k}")
            with open(path, "rb", buffering=0) as f:
                f.seek(int(starts[k]))
                packed = f.read(int(lengths[k]))
            raw = codec.decompress(packed, decompressed_size=int(sizes[k]))
            out.append(ipc.read_record_batch(raw, self.schema))
        return out


def _piece_index(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each piece of a :func:`write_pieces` file lies: its byte offset in the file, its compressed
    length and its size once decompressed. Read off the memory-mapped index, whose ``piece`` column is
    a view of the file (an IPC file's buffers are aligned, so Arrow maps them without a copy)."""
    with pa.memory_map(str(path)) as source:
        base = source.read_buffer(1).address
        end = base + source.size()
        source.seek(0)
        reader = ipc.open_file(source)
        if not reader.schema.equals(_PIECES):
            raise ValueError(f"{path}: not a file of pieces (write_pieces)")
        entries = reader.get_batch(0)
        pieces = entries.column(0)
        data = pieces.buffers()[2]
        bounds = np.frombuffer(pieces.buffers()[1], dtype=np.int64)[pieces.offset : pieces.offset + len(pieces) + 1]
        sizes = entries.column(1).to_numpy()
        if data is None or len(pieces) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), sizes
        if not (base <= data.address and data.address + int(bounds[-1]) <= end):
            raise ValueError(f"{path}: its pieces are not a view of the file")
        return data.address - base + bounds[:-1], np.diff(bounds), sizes


def read_piece(path: Path, k: int, schema: pa.Schema) -> pa.RecordBatch:
    """Piece ``k`` of a file written by :func:`write_pieces` with ``schema``, read alone (memory-mapped;
    :class:`PieceFiles` for many pieces of the same files)."""
    with pa.memory_map(str(path)) as source:
        entries = ipc.open_file(source).get_batch(0)
        if not 0 <= k < entries.num_rows:
            raise ValueError(f"{path}: has {entries.num_rows} pieces, asked for piece {k}")
        raw = pa.Codec(_CODEC).decompress(entries.column(0)[k].as_buffer(), decompressed_size=entries.column(1)[k].as_py())
    return ipc.read_record_batch(raw, schema)


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
