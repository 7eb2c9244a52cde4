"""Atomic file writes and checksums.

Every file a build writes goes to ``NAME.tmp`` first and is renamed into place once complete and
flushed to disk, so a reader (or a resumed build) sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
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
