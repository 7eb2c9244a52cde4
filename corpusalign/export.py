"""Export a built corpus's kept rows for other tools: Hugging Face ``translation`` JSONL, plain JSONL, TMX 1.4.

``corpusalign export CORPUS --format F -o OUT`` and :meth:`corpusalign.Corpus.export` run
:func:`export_corpus`. Formats (docs/export.md):

* ``hf-translation``: the layout of the ``datasets`` ``Translation`` feature, one JSON object per
  line, ``{"concept_id": ..., "translation": {"en": ..., "de": ...}}``. ``pairs="anchor"`` (default):
  OUT is a directory with one file per (anchor, target) pair, ``en-de.jsonl``, one line per concept
  that has both languages; ``pairs="all"``: OUT is one file, one line per concept with every build
  language (null where the concept lacks one, so that every line has the same keys).
* ``jsonl``: ``layout="concepts"`` (default), one line per concept, ``{"concept_id": ..., "en": ...,
  "de": ...}`` (for a corpus of several fields, ``{"en": {"prompt": ..., "response": ...}, ...}``),
  a shape ``corpusalign build`` reads back; ``layout="rows"``, one line per kept row with every
  shard column, as ``Corpus.to_polars()`` has it.
* ``tmx``: TMX 1.4, one ``<tu tuid=CONCEPT_ID>`` per concept with one ``<tuv xml:lang=..>`` per
  language, the anchor first and the header's ``srclang``.

``hf-translation`` and ``tmx`` need one text per language: a corpus of one field exports it, a corpus
of several (prompt/response, ...) needs ``field``. Languages come in build order (anchor first); a
language a concept lacks (or whose text in the field is null) is left out (``pairs="all"``: null).

The export streams: shards are read one at a time, in the manifest's order, in record batches (a
concept never spans two shards and rows are sorted by (concept_id, lang)), so memory stays constant
whatever the corpus size. Every output file is written to ``NAME.tmp`` and renamed when complete.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from corpusalign.store import manifest as mf
from corpusalign.store.files import atomic_open
from corpusalign.store.schema import SCHEMA_VERSION, SHARD_SCHEMA
from corpusalign.store.shards import QUARANTINE_DIR, REJECTED_DIR, SHARD_DIR

#: Output formats.
FORMATS: tuple[str, ...] = ("hf-translation", "jsonl", "tmx")
#: ``hf-translation`` modes: one file per (anchor, target) pair, or every language of a concept in one line.
PAIRS: tuple[str, ...] = ("anchor", "all")
#: ``jsonl`` layouts: one line per concept, or one line per kept row with every shard column.
LAYOUTS: tuple[str, ...] = ("concepts", "rows")

#: Rows per record batch read from a shard.
BATCH_ROWS = 4096


class ExportError(ValueError):
    """An export that cannot run as asked: an unknown format, an option the format does not take, a
    field the corpus does not have, an output path that is no place to write."""


class ExportCorpusError(ExportError):
    """The corpus fails the checks every export makes (manifest format, schema version and digest;
    every listed shard inside the corpus, present, of its listed size and schema)."""


@dataclass
class ExportResult:
    """What an export wrote: ``files`` maps each written file to its records (lines, or ``<tu>`` units)."""

    format: str
    output: Path
    files: dict[Path, int] = field(default_factory=dict)
    #: Concepts read from the shards (each exported unless it lacked every text of the field).
    concepts: int = 0
    #: Characters XML 1.0 cannot hold (C0 controls other than tab, LF, CR; U+FFFE, U+FFFF) written as U+FFFD (tmx only).
    replaced_chars: int = 0

    @property
    def records(self) -> int:
        return sum(self.files.values())


# ---------------------------------------------------------------------------------------- reading
def _check_corpus(root: Path, manifest: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """The listed shards, after the checks every export makes (cheap: no file is hashed or read)."""
    if manifest.get("format") != mf.FORMAT:
        raise ExportCorpusError(f"{root}: manifest format is {manifest.get('format')!r}, expected {mf.FORMAT!r}")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ExportCorpusError(f"{root}: schema version {manifest.get('schema_version')} is not the supported {SCHEMA_VERSION}")
    if manifest.get("digest") != mf.canonical_digest(manifest):
        raise ExportCorpusError(f"{root}: {mf.MANIFEST} digest does not match its content (edited or damaged)")
    shards = []
    for entry in manifest.get("shards", []):
        try:
            path = mf.entry_path(root, entry.get("path"))
        except mf.UnsafeManifestPath as exc:
            raise ExportCorpusError(str(exc)) from None
        if not path.is_file():
            raise ExportCorpusError(f"{root}: shard {entry.get('path')} is listed in the manifest but missing")
        if path.stat().st_size != entry.get("bytes"):
            raise ExportCorpusError(f"{root}: shard {entry.get('path')} has another size than the manifest lists (changed)")
        shards.append((path, entry))
    return shards


def _iter_rows(shards: list[tuple[Path, dict[str, Any]]], columns: list[str] | None) -> Iterator[dict[str, Any]]:
    """Every kept row as a dict of ``columns`` (all shard columns for None), shard by shard, batch by batch."""
    import pyarrow.parquet as pq

    for path, entry in shards:
        with pq.ParquetFile(path) as pf:
            have = set(pf.schema_arrow.names)
            missing = [c for c in (columns or SHARD_SCHEMA.names) if c not in have]
            if missing:
                raise ExportCorpusError(f"shard {entry.get('path')}: no column(s) {missing} (not schema v{SCHEMA_VERSION})")
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns or SHARD_SCHEMA.names):
                yield from batch.to_pylist()


def _iter_concepts(
    shards: list[tuple[Path, dict[str, Any]]], columns: list[str], langs: list[str]
) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """``(concept_id, {lang: row})`` per concept, languages in build order; one concept in memory at a time."""
    order = {lang: i for i, lang in enumerate(langs)}
    current: str | None = None
    rows: list[dict[str, Any]] = []

    def flush() -> tuple[str, dict[str, dict[str, Any]]]:
        ordered = sorted(rows, key=lambda r: (order.get(r["lang"], len(order)), r["lang"]))
        return str(current), {r["lang"]: r for r in ordered}

    for path_entry in shards:
        # a concept never spans shards: flush at each shard's end (validate checks the rule)
        for row in _iter_rows([path_entry], columns):
            if rows and row["concept_id"] != current:
                yield flush()
                rows = []
            current = row["concept_id"]
            rows.append(row)
        if rows:
            yield flush()
            rows = []


# ---------------------------------------------------------------------------------------- options
def _text_field(manifest: dict[str, Any], fmt: str, chosen: str | None) -> str:
    fields = list(manifest.get("fields") or ["text"])
    if chosen is not None:
        if chosen not in fields:
            raise ExportError(f"field {chosen!r} is not a field of this corpus; its fields: {', '.join(fields)}")
        return chosen
    if len(fields) > 1:
        raise ExportError(f"{fmt} exports one text per language; choose a field (--field): {', '.join(fields)}")
    return fields[0]


# ---------------------------------------------------------------------------------------- writers
def _line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _export_hf(
    shards: list[tuple[Path, dict[str, Any]]], manifest: dict[str, Any], output: Path, text: str, pairs: str, result: ExportResult
) -> None:
    langs = list(manifest.get("languages", []))
    src = str(manifest.get("source_language", langs[0] if langs else ""))
    concepts = _iter_concepts(shards, ["concept_id", "lang", text], langs)
    if pairs == "all":
        path = output
        n = 0
        with atomic_open(path, "wb") as f:
            for cid, rows in concepts:
                result.concepts += 1
                # every build language, null where the concept lacks it: one fixed struct (Translation(languages=...))
                translation = {lang: rows[lang][text] if lang in rows else None for lang in langs}
                translation.update({lang: row[text] for lang, row in rows.items() if lang not in translation})
                if any(t is not None for t in translation.values()):
                    f.write(_line({"concept_id": cid, "translation": translation}))
                    n += 1
        result.files[path] = n
        return
    with ExitStack() as stack:
        files: dict[str, IO[bytes]] = {}
        counts: dict[str, int] = {}
        for cid, rows in concepts:
            result.concepts += 1
            anchor = rows.get(src, {}).get(text)
            if anchor is None:
                continue
            for lang, row in rows.items():
                if lang == src or row[text] is None:
                    continue
                if lang not in files:  # a pair's file opens with its first line: no empty files
                    files[lang] = stack.enter_context(atomic_open(output / f"{src}-{lang}.jsonl", "wb"))
                    counts[lang] = 0
                files[lang].write(_line({"concept_id": cid, "translation": {src: anchor, lang: row[text]}}))
                counts[lang] += 1
    for lang in sorted(counts, key=lambda lang: (langs.index(lang) if lang in langs else len(langs), lang)):
        result.files[output / f"{src}-{lang}.jsonl"] = counts[lang]


def _export_jsonl(
    shards: list[tuple[Path, dict[str, Any]]],
    manifest: dict[str, Any],
    output: Path,
    chosen: str | None,
    layout: str,
    result: ExportResult,
) -> None:
    path = output
    n = 0
    with atomic_open(path, "wb") as f:
        if layout == "rows":
            previous: str | None = None
            for row in _iter_rows(shards, None):
                result.concepts += row["concept_id"] != previous
                previous = row["concept_id"]
                f.write(_line(row))
                n += 1
        else:
            fields = list(manifest.get("fields") or ["text"])
            flat = chosen is not None or len(fields) == 1
            wanted = [chosen] if chosen is not None else fields
            for cid, rows in _iter_concepts(shards, ["concept_id", "lang", *wanted], list(manifest.get("languages", []))):
                result.concepts += 1
                record: dict[str, Any] = {"concept_id": cid}
                for lang, row in rows.items():
                    if flat:
                        if row[wanted[0]] is not None:
                            record[lang] = row[wanted[0]]
                    else:
                        record[lang] = {fname: row[fname] for fname in wanted}
                if len(record) > 1:
                    f.write(_line(record))
                    n += 1
    result.files[path] = n


# TMX: XML 1.0 allows tab, LF, CR and everything from U+0020 except surrogates, U+FFFE and U+FFFF.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# in attribute values a parser turns tab, LF and CR into spaces unless they are character references
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#9;"})


def _xml(value: str, table: dict[int, str], result: ExportResult) -> str:
    value, n = _XML_INVALID.subn("\ufffd", value)
    result.replaced_chars += n
    return value.translate(table)


def _export_tmx(
    shards: list[tuple[Path, dict[str, Any]]], manifest: dict[str, Any], output: Path, text: str, result: ExportResult
) -> None:
    from corpusalign._version import __version__

    path = output
    langs = list(manifest.get("languages", []))
    src = str(manifest.get("source_language", langs[0] if langs else ""))
    n = 0

    def attr(value: str) -> str:
        return _xml(value, _ATTR_ESCAPES, result)

    with atomic_open(path, "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4">\n')
        f.write(
            f'  <header creationtool="corpusalign" creationtoolversion="{attr(__version__)}" datatype="plaintext"'
            f' segtype="block" adminlang="en" srclang="{attr(src)}" o-tmf="corpusalign"/>\n  <body>\n'
        )
        for cid, rows in _iter_concepts(shards, ["concept_id", "lang", text, "origin", "model"], langs):
            result.concepts += 1
            tuvs = []
            for lang, row in rows.items():
                if row[text] is None:
                    continue
                props = "".join(
                    f'<prop type="x-{name}">{_xml(row[name], _TEXT_ESCAPES, result)}</prop>'
                    for name in ("origin", "model")
                    if row[name] is not None
                )
                seg = _xml(row[text], _TEXT_ESCAPES, result)
                tuvs.append(f'      <tuv xml:lang="{attr(lang)}">{props}<seg>{seg}</seg></tuv>\n')
            if tuvs:
                f.write(f'    <tu tuid="{attr(cid)}">\n{"".join(tuvs)}    </tu>\n')
                n += 1
        f.write("  </body>\n</tmx>\n")
    result.files[path] = n


# ---------------------------------------------------------------------------------------- entry point
def export_corpus(
    corpus: str | Path,
    format: str,
    output: str | Path,
    *,
    field: str | None = None,
    pairs: str | None = None,
    layout: str | None = None,
    manifest: dict[str, Any] | None = None,
    check: Callable[[], Any] | None = None,
) -> ExportResult:
    """Export the kept rows of the corpus at ``corpus`` as ``format`` (one of :data:`FORMATS`) to ``output``.

    ``field``: the text field to export (``hf-translation``, ``tmx``, ``jsonl`` concepts); needed for
    a corpus of several fields. ``pairs`` (``hf-translation`` only): ``anchor`` (default; ``output``
    is a directory of ``SRC-TGT.jsonl`` files) or ``all``. ``layout`` (``jsonl`` only): ``concepts``
    (default) or ``rows``. ``check`` runs after the options are resolved and before anything is read
    (:meth:`Corpus.export` passes its full validation). Raises :class:`ExportError` for options that
    do not fit, :class:`ExportCorpusError` for a corpus that fails the manifest and shard checks and
    :class:`FileNotFoundError` for a directory without ``manifest.json``.
    """
    root = Path(corpus)
    output = Path(output)
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; formats: {', '.join(FORMATS)}")
    if pairs is not None and format != "hf-translation":
        raise ExportError(f"pairs applies to hf-translation only, not to {format}")
    if layout is not None and format != "jsonl":
        raise ExportError(f"layout applies to jsonl only, not to {format}")
    if pairs is not None and pairs not in PAIRS:
        raise ExportError(f"pairs must be one of {', '.join(PAIRS)}, not {pairs!r}")
    if layout is not None and layout not in LAYOUTS:
        raise ExportError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if manifest is None:
        manifest = mf.read_manifest(root)
    text = None
    if format == "jsonl" and layout == "rows":
        if field is not None:
            raise ExportError("the rows layout exports every shard column; field applies to the concepts layout")
    elif format == "jsonl":
        if field is not None:
            _text_field(manifest, format, field)
    else:
        text = _text_field(manifest, format, field)
    out = output.resolve()
    base = root.resolve()
    for guarded in (SHARD_DIR, REJECTED_DIR, QUARANTINE_DIR, mf.MANIFEST, mf.STATS):
        if out == base / guarded or out.is_relative_to(base / guarded):
            raise ExportError(f"{output}: would write into the corpus's own {guarded}; choose another output")
    if format == "hf-translation" and (pairs or "anchor") == "anchor":
        if output.exists() and not output.is_dir():
            raise ExportError(f"{output} is a file; pairs=anchor writes one file per language pair (SRC-TGT.jsonl) into a folder")
    elif output.is_dir():
        raise ExportError(f"{output} is a directory; this export writes one file: name it (e.g. {output / 'corpus.jsonl'})")
    if check is not None:
        check()  # the full validation first: it lists every problem
    shards = _check_corpus(root, manifest)
    result = ExportResult(format, output)
    if format == "hf-translation":
        assert text is not None
        _export_hf(shards, manifest, output, text, pairs or "anchor", result)
    elif format == "jsonl":
        _export_jsonl(shards, manifest, output, field, layout or "concepts", result)
    else:
        assert text is not None
        _export_tmx(shards, manifest, output, text, result)
    return result
