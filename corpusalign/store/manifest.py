"""``manifest.json``: what a build wrote, how, and the proof that nothing was lost.

The manifest is written last, atomically; a directory without one holds no finished corpus. It lists
every shard, rejected and quarantine file with its row count and sha256, row and concept counts per
language, the resolved configuration, the corpusalign and schema versions, and the accounting
invariant. ``digest`` is the sha256 of the manifest's own canonical JSON without that field, so an
edit by hand is detected by ``corpusalign validate``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from corpusalign.store.files import sha256_file

MANIFEST = "manifest.json"
STATS = "stats.json"
FORMAT = "corpusalign-shards"


class UnsafeManifestPath(FileNotFoundError):
    """A manifest entry names a file outside the corpus directory (``../..``, an absolute path, or a
    symbolic link that leads out). It is no file of the corpus, so it is refused like a missing one
    (a ``FileNotFoundError``, which every command already reports as such)."""


def entry_path(root: str | Path, rel: Any) -> Path:
    """The file that manifest entry path ``rel`` names inside the corpus at ``root``, resolved.

    Raises :class:`UnsafeManifestPath` when ``rel`` is not a relative path (str) or resolves to
    anything outside ``root``: a manifest must never make a reader open files elsewhere.
    """
    base = Path(root).resolve()
    if not isinstance(rel, str) or not rel or "\x00" in rel or Path(rel).is_absolute():
        raise UnsafeManifestPath(f"manifest entry {rel!r}: not a relative path inside the corpus directory {root}")
    path = (base / rel).resolve()
    if path == base or not path.is_relative_to(base):
        raise UnsafeManifestPath(f"manifest entry {rel!r}: path points outside the corpus directory {root}")
    return path


def file_entry(root: Path, rel: str, **extra: Any) -> dict[str, Any]:
    path = root / rel
    meta = pq.read_metadata(path)
    return {"path": rel, "rows": meta.num_rows, "bytes": path.stat().st_size, "sha256": sha256_file(path), **extra}


def canonical_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """Return ``manifest`` with its ``digest`` set."""
    out = {k: v for k, v in manifest.items() if k != "digest"}
    out["digest"] = canonical_digest(out)
    return out


def read_manifest(root: str | Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{root} has no {MANIFEST}: not a finished corpusalign build")
    return json.loads(path.read_text(encoding="utf-8"))


def accounting(input_records: int, quarantined: int, n_langs: int, kept_rows: int, rejected_rows: int) -> dict[str, Any]:
    """The invariant every build must satisfy.

    Units: an input record that parses becomes a concept with one row slot per build language; a
    record that does not parse is one quarantined row. So
    ``input_rows = concepts * languages + quarantined = kept + rejected + quarantined``.
    """
    concepts = input_records - quarantined
    input_rows = concepts * n_langs + quarantined
    return {
        "input_records": input_records,
        "concepts_read": concepts,
        "languages": n_langs,
        "input_rows": input_rows,
        "kept_rows": kept_rows,
        "rejected_rows": rejected_rows,
        "quarantined_rows": quarantined,
        "ok": concepts >= 0 and input_rows == kept_rows + rejected_rows + quarantined,
    }
