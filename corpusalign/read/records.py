"""Turn input records into batch rows: one row per concept and language, or a quarantine entry.

Accepted record shapes, for source language ``en`` and fields ``(text,)`` or ``(prompt, response)``:

* monolingual: ``{"text": "..."}`` or ``{"prompt": "...", "response": "..."}`` (the source language);
* parallel, one key per language: ``{"en": "...", "de": "..."}`` (single field ``text`` only);
* parallel, nested: ``{"en": {"prompt": "...", "response": "..."}, "de": {...}}``;
* parallel, flat columns (CSV, Parquet): ``{"prompt.en": "...", "prompt.de": "..."}``.

A language key is the build language's tag in any case, ``_`` for ``-`` (``pt-br`` and ``pt_BR`` are
``pt-BR``); a key for a base language does not fill a regional one (``pt`` is not ``pt-BR``). Keys
for languages that are not part of the build are ignored. A target language with no text is a
missing row that the translate step may fill. Every record yields exactly one row per build language,
or one quarantine entry that says why it was unusable.

Concept ids: the value of ``id_field`` when the record has one (strings or integers), otherwise
:func:`derive_concept_ids`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import polars as pl

from corpusalign.config import BuildConfig
from corpusalign.langtags import tag_value
from corpusalign.read.formats import RawItem
from corpusalign.steps.base import BATCH_COLUMNS
from corpusalign.steps.normalise import normalise_expr
from corpusalign.store.schema import TEXT_FIELDS

MAX_ID_CHARS = 256
ID_RECIPE = "corpusalign-concept-v1"


class RecordError(ValueError):
    """The record cannot become a concept; the message is the quarantine reason."""


def _lang_values(record: dict[str, Any], lang: str, fields: tuple[str, ...]) -> dict[str, Any] | None:
    value = tag_value(record, lang)
    if isinstance(value, dict):
        return {f: value.get(f) for f in fields}
    if value is not None:
        if fields != ("text",):
            raise RecordError(f"field {lang!r}: expected an object with fields {list(fields)}")
        return {"text": value}
    flat = {f: tag_value(record, f"{f}.{lang}") for f in fields}
    if any(v is not None for v in flat.values()):
        return flat
    return None


def extract(record: dict[str, Any], cfg: BuildConfig) -> tuple[str | None, dict[str, dict[str, Any] | None]]:
    """Return ``(concept_id or None, {lang: {field: text} or None})``; raise :class:`RecordError`."""
    concept_id: str | None = None
    if cfg.id_field and record.get(cfg.id_field) not in (None, ""):
        raw_id = record[cfg.id_field]
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
            raise RecordError(f"id field {cfg.id_field!r} must be a string or integer, got {type(raw_id).__name__}")
        concept_id = str(raw_id).strip()
        if not concept_id or len(concept_id) > MAX_ID_CHARS or any(ord(c) < 32 for c in concept_id):
            raise RecordError(f"id field {cfg.id_field!r}: empty, longer than {MAX_ID_CHARS} or holds control characters")
    per_lang: dict[str, dict[str, Any] | None] = {}
    for lang in cfg.langs:
        values = _lang_values(record, lang, cfg.fields)
        if values is None and lang == cfg.src:
            mono = {f: record.get(f) for f in cfg.fields}
            if any(v is not None for v in mono.values()):
                values = mono
        if values is not None:
            for f, v in values.items():
                if v is not None and not isinstance(v, str):
                    raise RecordError(f"{lang}.{f} must be a string, got {type(v).__name__}")
            if lang != cfg.src and all(v is None or not v.strip() for v in values.values()):
                values = None  # a blank target (an empty CSV cell) is missing: the translator may fill it
        per_lang[lang] = values
    source = per_lang[cfg.src]
    if source is None:
        mapped = [c for c, lang in cfg.columns.items() if lang == cfg.src]
        options = [*mapped, cfg.src, *(f"{f}.{cfg.src}" for f in cfg.fields), *cfg.fields]
        message = f"no source text: expected one of the keys {options}"
        keys = [k for k in record if k != cfg.id_field]
        if keys and not cfg.columns:
            shown = keys[:8] + (["..."] if len(keys) > 8 else [])
            message += f"; the record has {shown} (--columns NAME=LANG reads a column as a language)"
        raise RecordError(message)
    lacking = [f for f, v in source.items() if v is None]
    if lacking:
        raise RecordError(f"source record lacks field(s) {lacking}")
    return concept_id, per_lang


def records_to_batch(
    items: Iterable[RawItem], cfg: BuildConfig, seq_start: int
) -> tuple[pl.DataFrame, list[dict[str, Any]], int]:
    """Rows for the records of ``items`` and quarantine entries for the rest.

    Returns ``(batch, quarantined, n_items)``; ``_seq`` numbers the input items from ``seq_start``
    (a quarantine entry has its item's ``_seq`` too).
    """
    cols: dict[str, list[Any]] = {c: [] for c in BATCH_COLUMNS}
    quarantined: list[dict[str, Any]] = []
    seq = seq_start
    for item in items:
        if item.record is None:
            quarantined.append(
                {"source_file": item.source_file, "source_line": item.line, "error": item.error, "raw": item.raw, "_seq": seq}
            )
            seq += 1
            continue
        try:
            concept_id, per_lang = extract(item.record, cfg)
        except RecordError as exc:
            where = {"source_file": item.source_file, "source_line": item.line}
            quarantined.append({**where, "error": str(exc), "raw": _raw(item.record), "_seq": seq})
            seq += 1
            continue
        for lang in cfg.langs:
            values = per_lang[lang]
            cols["_seq"].append(seq)
            cols["concept_id"].append(concept_id)
            cols["lang"].append(lang)
            for f in TEXT_FIELDS:
                cols[f].append(values.get(f) if values is not None else None)
            present = values is not None
            cols["origin"].append(("source" if lang == cfg.src else "human") if present else None)
            cols["translator"].append("tm" if present and lang != cfg.src else None)
            cols["model"].append(None)
            cols["source_file"].append(item.source_file)
            cols["source_line"].append(item.line)
        seq += 1
    schema = {c: pl.String for c in BATCH_COLUMNS} | {"_seq": pl.UInt64, "source_line": pl.Int64}
    batch = pl.DataFrame(cols, schema=schema)
    batch = derive_concept_ids(batch, cfg)
    return batch, quarantined, seq - seq_start


def _raw(record: dict[str, Any]) -> str:
    import orjson

    try:
        return orjson.dumps(record, default=str).decode()[:500]
    except TypeError:
        return repr(record)[:500]


def derive_concept_ids(batch: pl.DataFrame, cfg: BuildConfig) -> pl.DataFrame:
    """Fill null ``concept_id`` values from the normalised source record.

    Recipe (stable across versions and machines): normalise each source field as the normalise step
    does, then ``sha256("corpusalign-concept-v1\\x1f" + src + "\\x1f" + "field=value\\x1f..." )``
    over the configured fields in order, and keep the first 24 hex digits. The same source text in the
    same language with the same fields always gets the same id.
    """
    if batch.height == 0 or batch["concept_id"].null_count() == 0:
        return batch
    src = batch.filter((pl.col("lang") == cfg.src) & pl.col("concept_id").is_null())
    norm = src.select("_seq", *(normalise_expr(pl.col(f), cfg.normalise).fill_null("").alias(f) for f in cfg.fields))
    ids = []
    for row in norm.iter_rows():
        key = "\x1f".join([ID_RECIPE, cfg.src, *(f"{f}={v}" for f, v in zip(cfg.fields, row[1:], strict=True))])
        ids.append(hashlib.sha256(key.encode("utf-8")).hexdigest()[:24])
    derived = pl.DataFrame({"_seq": norm["_seq"], "_derived": ids}, schema={"_seq": pl.UInt64, "_derived": pl.String})
    return (
        batch.join(derived, on="_seq", how="left", maintain_order="left")
        .with_columns(pl.coalesce("concept_id", "_derived").alias("concept_id"))
        .drop("_derived")
    )
