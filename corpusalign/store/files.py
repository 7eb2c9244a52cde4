"""Atomic file writes and checksums.

Every file a build writes goes to ``NAME.tmp`` first and is renamed into place once complete and
flushed to disk, so a reader (or a resumed build) sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from corpusalign.store.schema import conform

TMP_SUFFIX = ".tmp"


def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_parquet(table: pa.Table, path: Path, schema: pa.Schema) -> Path:
    """Write ``table`` conformed to ``schema`` (zstd-compressed) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    pq.write_table(conform(table, schema), tmp, compression="zstd")
    _fsync_replace(tmp, path)
    return path


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(text, encoding="utf-8")
    _fsync_replace(tmp, path)
    return path


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
