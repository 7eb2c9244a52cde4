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


#: Drop reasons of rows that were never in the input: a language slot of a concept that had no text
#: for it and got no translation. Every slot is accounted for (as a rejected row), but summaries and
#: reports count these apart from the rows a step judged and dropped.
NOT_IN_INPUT_REASONS = ("missing_target",)


def rows_not_in_input(manifest: dict[str, Any]) -> dict[str, int]:
    """Per language of the build: its rows rejected only because the input had no text for them."""
    drops = manifest.get("drop_reasons", {})
    return {lang: sum(drops.get(reason, {}).get(lang, 0) for reason in NOT_IN_INPUT_REASONS) for lang in manifest["languages"]}


def language_warnings(manifest: dict[str, Any]) -> list[str]:
    """One line per target language that kept no row: ``"fr: 0 of 20 rows kept (top reason missing_target 20)"``.

    The rows of a language are its slots, one per concept read; the top reason is its most frequent
    drop reason. A build language that keeps nothing is almost always a mistake (a language the
    input does not have, a column named otherwise), so the summary and report.json say so.
    """
    src = manifest.get("source_language")
    kept = manifest.get("counts", {}).get("rows_per_lang", {})
    total = manifest.get("accounting", {}).get("concepts_read", 0)
    warnings = []
    for lang in manifest.get("languages", []):
        if lang == src or kept.get(lang, 0):
            continue
        reasons = {r: by_lang[lang] for r, by_lang in manifest.get("drop_reasons", {}).items() if by_lang.get(lang)}
        top = max(sorted(reasons), key=lambda r: reasons[r]) if reasons else None
        why = f" (top reason {top} {reasons[top]:,})" if top else ""
        warnings.append(f"{lang}: 0 of {total:,} rows kept{why}")
    return warnings


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
