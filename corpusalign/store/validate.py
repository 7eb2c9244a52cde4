"""Check a built corpus against its manifest.

:func:`validate` returns a list of problems (empty when the corpus is sound). It checks the
manifest's own digest, that every listed file exists with the listed size, sha256 and row count,
that no unlisted file sits among the shards, rejected or quarantine sets, that every shard has the
declared schema, that rows are sorted by (``concept_id``, ``lang``) and unique, that no concept
spans two shards, that every kept concept has its source-language row and at least
``min_languages`` rows, that the per-language counts match, and that the accounting invariant holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from corpusalign.store import manifest as mf
from corpusalign.store.files import sha256_file
from corpusalign.store.schema import QUARANTINE_SCHEMA, REJECTED_SCHEMA, SCHEMA_VERSION, SHARD_SCHEMA
from corpusalign.store.shards import QUARANTINE_DIR, REJECTED_DIR, SHARD_DIR


def _check_files(root: Path, entries: list[dict[str, Any]], schema: Any, problems: list[str]) -> list[Path]:
    good = []
    for e in entries:
        rel = e.get("path", "")
        try:
            path = mf.entry_path(root, rel)
        except mf.UnsafeManifestPath:
            problems.append(f"{rel}: path points outside the corpus directory")
            continue
        if not path.exists():
            problems.append(f"{rel}: listed in the manifest but missing")
            continue
        if path.stat().st_size != e.get("bytes"):
            problems.append(f"{rel}: size {path.stat().st_size} != manifest {e.get('bytes')} (truncated or changed)")
            continue
        if sha256_file(path) != e.get("sha256"):
            problems.append(f"{rel}: sha256 differs from the manifest (file corrupted or changed)")
            continue
        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - report any unreadable file
            problems.append(f"{rel}: unreadable Parquet file ({exc})")
            continue
        if not pf.schema_arrow.remove_metadata().equals(schema.remove_metadata()):
            problems.append(f"{rel}: schema differs from corpusalign schema v{SCHEMA_VERSION}")
            continue
        if pf.metadata.num_rows != e.get("rows"):
            problems.append(f"{rel}: {pf.metadata.num_rows} rows != manifest {e.get('rows')}")
            continue
        good.append(path)
    return good


def validate(root: str | Path) -> list[str]:
    """Problems found in the corpus at ``root``; an empty list means it is sound."""
    root = Path(root)
    try:
        m = mf.read_manifest(root)
    except FileNotFoundError as exc:
        return [str(exc)]
    except ValueError as exc:
        return [f"{mf.MANIFEST} is not valid JSON: {exc}"]
    problems: list[str] = []
    if m.get("format") != mf.FORMAT:
        problems.append(f"{mf.MANIFEST}: format is {m.get('format')!r}, expected {mf.FORMAT!r}")
    if m.get("digest") != mf.canonical_digest(m):
        problems.append(f"{mf.MANIFEST}: digest does not match its content (edited by hand or damaged)")
    if m.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema version {m.get('schema_version')} is not the supported version {SCHEMA_VERSION}")
        return problems

    sets = [
        ("shards", SHARD_DIR, SHARD_SCHEMA),
        ("rejected", REJECTED_DIR, REJECTED_SCHEMA),
        ("quarantine", QUARANTINE_DIR, QUARANTINE_SCHEMA),
    ]
    good: dict[str, list[Path]] = {}
    for key, folder, schema in sets:
        entries = m.get(key, [])
        good[key] = _check_files(root, entries, schema, problems)
        listed = {(root / e["path"]).resolve() for e in entries if isinstance(e.get("path"), str)}
        if (root / folder).exists():
            for p in sorted((root / folder).rglob("*")):
                if p.is_file() and p.resolve() not in listed:
                    problems.append(f"{p.relative_to(root)}: file not listed in the manifest")

    langs = m.get("languages", [])
    src = m.get("source_language")
    min_langs = m.get("config", {}).get("select", {}).get("min_languages", 1)
    if good["shards"] and len(good["shards"]) == len(m.get("shards", [])):
        seen: dict[str, str] = {}
        rows_per_lang: dict[str, int] = {}
        for path in good["shards"]:
            rel = str(path.relative_to(root.resolve()))
            t = pl.read_parquet(path, columns=["concept_id", "lang"])
            if not t.equals(t.sort("concept_id", "lang")):
                problems.append(f"{rel}: rows not sorted by (concept_id, lang)")
            if t.is_duplicated().any():
                problems.append(f"{rel}: repeated (concept_id, lang) rows")
            bad_langs = sorted(set(t["lang"].unique().to_list()) - set(langs))
            if bad_langs:
                problems.append(f"{rel}: languages {bad_langs} not in the manifest")
            for cid in t["concept_id"].unique().to_list():
                if cid in seen:
                    problems.append(f"concept {cid!r} spans shards {seen[cid]} and {rel}")
                seen[cid] = rel
            per = t.group_by("concept_id").agg(pl.len().alias("n"), (pl.col("lang") == src).any().alias("has_src"))
            if not per["has_src"].all():
                problems.append(f"{rel}: {int((~per['has_src']).sum())} concept(s) without their {src!r} source row")
            if (per["n"] < min_langs).any():
                problems.append(f"{rel}: {int((per['n'] < min_langs).sum())} concept(s) with fewer than {min_langs} languages")
            for lang, n in t.group_by("lang").len().iter_rows():
                rows_per_lang[lang] = rows_per_lang.get(lang, 0) + n
        if rows_per_lang != m.get("counts", {}).get("rows_per_lang"):
            problems.append(f"rows per language {rows_per_lang} != manifest {m.get('counts', {}).get('rows_per_lang')}")
        if len(seen) != m.get("counts", {}).get("concepts"):
            problems.append(f"{len(seen)} concepts in the shards != manifest {m.get('counts', {}).get('concepts')}")

    acct = m.get("accounting", {})
    kept = sum(e.get("rows", 0) for e in m.get("shards", []))
    rejected = sum(e.get("rows", 0) for e in m.get("rejected", []))
    quarantined = sum(e.get("rows", 0) for e in m.get("quarantine", []))
    expected = mf.accounting(acct.get("input_records", -1), quarantined, len(langs), kept, rejected)
    if not expected["ok"] or {k: acct.get(k) for k in expected} != expected:
        problems.append(
            f"accounting: input rows {expected['input_rows']} != kept {kept} + rejected {rejected} + quarantined {quarantined}"
            if not expected["ok"]
            else "accounting in the manifest does not match the files"
        )
    return problems
