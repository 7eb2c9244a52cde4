"""Streaming readers for every input format. Each yields :class:`RawItem` one input record at a time.

Formats, chosen by file name:

* ``.jsonl`` / ``.json`` / ``.ndjson``: one JSON object per line (UTF-8, UTF-8 with BOM or UTF-16 with BOM);
  a ``.json`` file that holds one JSON array of objects is read as that array (record ``i`` = line ``i``);
* ``.csv`` / ``.tsv``: a header row, then one record per row;
* ``.parquet``: one record per row;
* ``.tmx``: translation memories, one record per ``<tu>`` with one field per ``xml:lang`` (as a language tag in
  canonical case, ``pt_br`` -> ``pt-BR``; a unit's only variant of a language also under the bare language:
  ``en-US`` feeds an ``en`` build);
* a directory written by Hugging Face ``datasets`` ``save_to_disk`` (extra ``hf``);
* any other directory: every file above, in sorted order.

A reader never raises on bad content: a line it cannot read becomes a ``RawItem`` with ``error`` set,
which the build quarantines with its file and line. Memory does not grow with file size; a line longer
than ``max_line_bytes`` is skipped in chunks and quarantined.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from corpusalign.extras import require
from corpusalign.langtags import base_language, canonical_case

#: Longest input line read as a record; longer lines are quarantined.
MAX_LINE_BYTES = 1 << 20
_RAW_PREVIEW = 500
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: TMX inline elements that hold native formatting codes, not text (TMX 1.4, section 3.7).
_TMX_CODES = frozenset({"bpt", "ept", "it", "ph", "ut"})
_UNDECODABLE = "corpusalign.undecodable"
log = logging.getLogger(__name__)


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    """Decode error handler: each undecodable byte becomes a lone surrogate, which marks the line bad."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(chr(0xDC00 + b) for b in exc.object[exc.start : exc.end]), exc.end


codecs.register_error(_UNDECODABLE, _mark_undecodable)


@dataclass(frozen=True, slots=True)
class RawItem:
    """One input record, or the reason it could not be read. ``line`` is 1-based (0: the whole file)."""

    source_file: str
    line: int
    record: dict[str, Any] | None
    error: str | None = None
    raw: str | None = None


def _preview(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw[: _RAW_PREVIEW * 4].decode("utf-8", errors="backslashreplace")
    # lone surrogates (undecodable input) cannot be stored as UTF-8: write them as escapes
    return raw[:_RAW_PREVIEW].encode("utf-8", errors="backslashreplace").decode("utf-8")


def read_jsonl(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[RawItem]:
    name = str(path)
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            text_file = io.TextIOWrapper(f, encoding="utf-16", errors=_UNDECODABLE)
            yield from _read_jsonl_text(name, text_file, max_line_bytes)
            return
        if head.startswith(b"\xef\xbb\xbf"):
            f.seek(3)
        if path.suffix.lower() == ".json" and _starts_with_array(f):
            yield from _read_json_array(name, f)
            return
        lineno = 0
        while True:
            line = f.readline(max_line_bytes + 1)
            if not line:
                break
            lineno += 1
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                preview = line
                while line and not line.endswith(b"\n"):  # skip the rest of the oversized line
                    line = f.readline(max_line_bytes)
                yield RawItem(name, lineno, None, f"line longer than {max_line_bytes} bytes", _preview(preview))
                continue
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawItem(name, lineno, None, f"invalid UTF-8 at byte {exc.start}", _preview(line))
                continue
            yield _parse_json_line(name, lineno, text)


#: Largest ``.json`` file holding one JSON array that is read whole (JSON Lines stream instead).
MAX_JSON_ARRAY_BYTES = 512 << 20


def _starts_with_array(f: io.BufferedReader) -> bool:
    pos = f.tell()
    head = f.read(64).lstrip()
    f.seek(pos)
    return head.startswith(b"[")


def _read_json_array(name: str, f: io.BufferedReader) -> Iterator[RawItem]:
    """A ``.json`` file holding one array of records; record ``i`` is reported as line ``i``."""
    data = f.read(MAX_JSON_ARRAY_BYTES + 1)
    if len(data) > MAX_JSON_ARRAY_BYTES:
        yield RawItem(name, 0, None, f"JSON array file larger than {MAX_JSON_ARRAY_BYTES} bytes; convert it to JSON Lines")
        return
    try:
        records = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield RawItem(name, 0, None, f"invalid JSON: {exc}", _preview(data))
        return
    for i, rec in enumerate(records, start=1):
        if isinstance(rec, dict):
            yield RawItem(name, i, rec)
        else:
            yield RawItem(name, i, None, f"expected a JSON object, got {type(rec).__name__}", _preview(repr(rec)))


def _read_jsonl_text(name: str, f: io.TextIOWrapper, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[RawItem]:
    max_chars = max(1, max_line_bytes // 2)  # UTF-16: at least two bytes per character
    lineno = 0
    while True:
        text = f.readline(max_chars + 1)
        if not text:
            break
        lineno += 1
        if len(text) > max_chars and not text.endswith("\n"):
            preview = text
            while text and not text.endswith("\n"):  # skip the rest of the oversized line
                text = f.readline(max_chars)
            yield RawItem(name, lineno, None, f"line longer than {max_line_bytes} bytes", _preview(preview))
            continue
        if not text.strip():
            continue
        if _has_surrogates(text):
            yield RawItem(name, lineno, None, "invalid UTF-16 text", _preview(text))
            continue
        yield _parse_json_line(name, lineno, text)


def _parse_json_line(name: str, lineno: int, text: str) -> RawItem:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return RawItem(name, lineno, None, f"invalid JSON: {exc}", _preview(text))
    if not isinstance(obj, dict):
        return RawItem(name, lineno, None, f"expected a JSON object, got {type(obj).__name__}", _preview(text))
    return RawItem(name, lineno, obj)


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _mapped_names(names: Sequence[str], columns: Mapping[str, str]) -> list[str]:
    """``names`` with each column of ``columns`` renamed to its language; ValueError names a mapped column
    the file lacks, or a renamed column that collides with one the file already has."""
    missing = [c for c in columns if c not in names]
    if missing:
        shown = ", ".join(f"{c!r} ({c}={columns[c]})" for c in missing)
        listed = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        raise ValueError(f"mapped column(s) {shown} not in the file; its columns: {listed}")
    renamed = [columns.get(n, n) for n in names]
    for n in names:
        if n not in columns and n in columns.values():
            mapped = next(c for c, lang in columns.items() if lang == n)
            raise ValueError(f"column {n!r} and the mapped column {mapped!r} ({mapped}={n}) would both be language {n!r}")
    return renamed


def _rename_record(record: dict[str, Any], columns: Mapping[str, str]) -> dict[str, Any]:
    """A JSON record with its mapped keys renamed to their languages; ValueError on a collision."""
    for lang in columns.values():
        if lang in record and lang not in columns:
            mapped = next(c for c, code in columns.items() if code == lang)
            if mapped in record:
                raise ValueError(f"keys {lang!r} and {mapped!r} ({mapped}={lang}) would both be language {lang!r}")
    return {columns.get(k, k): v for k, v in record.items()}


def _rename_items(items: Iterator[RawItem], columns: Mapping[str, str]) -> Iterator[RawItem]:
    for item in items:
        if item.record is None or not columns.keys() & item.record.keys():
            yield item
            continue
        try:
            yield RawItem(item.source_file, item.line, _rename_record(item.record, columns))
        except ValueError as exc:
            yield RawItem(item.source_file, item.line, None, str(exc), _preview(repr(item.record)))


def read_csv(path: Path, delimiter: str | None = None, columns: Mapping[str, str] | None = None) -> Iterator[RawItem]:
    """Rows as records keyed by the header; ``columns`` renames header columns (a missing one: the file
    is one quarantined item at line 1)."""
    name = str(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        consumed: list[str] = []  # the physical lines of the record being read, for a bad record's ``raw``

        def lines() -> Iterator[str]:
            for physical in f:
                consumed.append(physical)
                yield physical

        reader = csv.reader(lines(), delimiter=delimiter, strict=True)  # bad quoting is an error, not mangled text
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RawItem(name, 1, None, f"unreadable CSV header: {exc}")
            return
        header = [h.strip() for h in header]
        if columns:
            try:
                header = _mapped_names(header, columns)
            except ValueError as exc:
                yield RawItem(name, 1, None, str(exc), _preview("".join(consumed)))
                return
        start = reader.line_num + 1
        while True:
            consumed.clear()
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # an unterminated quote runs to the end of the file: every line it took is in ``raw``
                yield RawItem(name, start, None, f"CSV error: {exc}", _preview("".join(consumed)))
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            joined = delimiter.join(row)
            if _has_surrogates(joined):
                yield RawItem(name, line, None, "invalid UTF-8", _preview(joined.encode("utf-8", "surrogateescape")))
            elif len(row) != len(header):
                yield RawItem(name, line, None, f"expected {len(header)} columns, got {len(row)}", _preview(joined))
            else:
                yield RawItem(name, line, dict(zip(header, row, strict=True)))


def read_parquet(path: Path, batch_rows: int = 8192, columns: Mapping[str, str] | None = None) -> Iterator[RawItem]:
    """Rows as records; ``columns`` renames columns (a missing one: the file is one quarantined item at line 0)."""
    import pyarrow.parquet as pq

    name = str(path)
    try:
        pf = pq.ParquetFile(path)
        rename: dict[str, str] = {}
        if columns:
            names = pf.schema_arrow.names
            try:
                rename = dict(zip(names, _mapped_names(names, columns), strict=True))
            except ValueError as exc:
                yield RawItem(name, 0, None, str(exc))
                return
        lineno = 0
        for batch in pf.iter_batches(batch_size=batch_rows):
            if rename:
                batch = batch.rename_columns([rename[n] for n in batch.schema.names])
            for rec in batch.to_pylist():
                lineno += 1
                yield RawItem(name, lineno, rec)
    except Exception as exc:  # noqa: BLE001 - any corrupt file is quarantined, never fatal
        yield RawItem(name, 0, None, f"unreadable Parquet file: {type(exc).__name__}: {exc}")


def _tmx_lang(code: str) -> str:
    """``xml:lang`` as a language tag in canonical case: ``pt_br`` -> ``pt-BR``, ``DE_at`` -> ``de-AT``."""
    return canonical_case(code.strip().replace("_", "-"))


def _base_aliases(record: dict[str, Any], tags: list[str]) -> str | None:
    """Also file a unit's only variant of a language under the bare language (``en-US`` -> ``en``), so a
    build of ``en`` reads TMX files written with regional ``xml:lang`` codes; two variants of one
    language (``pt-BR`` and ``pt-PT``) leave the bare language to the build's tag to pick. Returns the
    problem of a unit with a bare language and a variant of it (``en`` and ``en-GB``), else ``None``."""
    variants: dict[str, list[str]] = {}
    for tag in tags:
        base = base_language(tag)
        if base != tag:
            variants.setdefault(base, []).append(tag)
    for base, found in variants.items():
        if base in tags:
            return f"two segments for language {base!r}"
        if len(found) == 1:
            record[base] = record[found[0]]
    return None


def _seg_text(el: Any) -> str:
    """Text of a ``<seg>``: its text and ``<hi>``/``<sub>`` content, without the native codes."""
    parts = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str) and child.tag not in _TMX_CODES:
            parts.append(_seg_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def read_tmx(path: Path, id_field: str | None = "concept_id") -> Iterator[RawItem]:
    """Translation units (``<tu>``) as records ``{lang: text}``; ``tuid`` becomes the concept id."""
    from lxml import etree

    name = str(path)
    try:
        context = etree.iterparse(str(path), events=("end",), tag="tu", resolve_entities=False, no_network=True, huge_tree=False)
        for _, tu in context:
            record: dict[str, Any] = {}
            tuid = tu.get("tuid")
            if tuid and id_field:
                record[id_field] = tuid
            problem = None
            tags: list[str] = []
            for tuv in tu.iter("tuv"):
                code = tuv.get(_XML_LANG) or tuv.get("lang")
                seg = tuv.find("seg")
                if not code or seg is None:
                    problem = "a <tuv> without xml:lang or <seg>"
                    continue
                lang = _tmx_lang(code)
                if lang in record:
                    problem = f"two segments for language {lang!r}"
                record[lang] = _seg_text(seg)
                tags.append(lang)
            problem = problem or _base_aliases(record, tags)
            line = tu.sourceline or 0
            if problem:
                yield RawItem(name, line, None, f"invalid TMX unit: {problem}", _preview(etree.tostring(tu)))
            else:
                yield RawItem(name, line, record)
            tu.clear()
            while tu.getprevious() is not None:
                del tu.getparent()[0]
    except etree.XMLSyntaxError as exc:
        yield RawItem(name, exc.position[0] if exc.position else 0, None, f"invalid XML: {exc}")
    except OSError as exc:
        yield RawItem(name, 0, None, f"unreadable file: {exc}")


def read_hf(path: Path, batch_rows: int = 1024) -> Iterator[RawItem]:
    datasets = require("datasets", extra="hf", purpose="reading Hugging Face datasets")
    ds = datasets.load_from_disk(str(path))
    splits = ds.items() if isinstance(ds, datasets.DatasetDict) else [(None, ds)]
    for split, part in splits:
        name = f"{path}[{split}]" if split else str(path)
        lineno = 0
        for batch in part.iter(batch_size=batch_rows):
            keys = list(batch)
            for values in zip(*(batch[k] for k in keys), strict=True):
                lineno += 1
                yield RawItem(name, lineno, dict(zip(keys, values, strict=True)))


def _is_hf_dir(path: Path) -> bool:
    return (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()


_BY_SUFFIX: dict[str, Callable[[Path], Iterator[RawItem]]] = {
    ".jsonl": read_jsonl,
    ".json": read_jsonl,
    ".ndjson": read_jsonl,
    ".csv": read_csv,
    ".tsv": read_csv,
    ".parquet": read_parquet,
    ".tmx": read_tmx,
}

SUPPORTED_SUFFIXES = tuple(_BY_SUFFIX)


def list_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Expand directories into their input files (sorted); keep HF dataset directories whole."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not _is_hf_dir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                rp = Path(root)
                if _is_hf_dir(rp) and rp != p:
                    out.append(rp)
                    dirs[:] = []
                    continue
                for f in sorted(files):
                    if Path(f).suffix.lower() not in _BY_SUFFIX:
                        continue
                    out.append(rp / f)  # a broken symbolic link stays: read_path quarantines it
        else:
            out.append(p)
    return out


def _file_kind(path: Path) -> str:
    mode = path.stat().st_mode
    for test, kind in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return kind
    return "special file"


def read_path(path: Path, id_field: str | None = "concept_id", columns: Mapping[str, str] | None = None) -> Iterator[RawItem]:
    """Records of one input (file or HF dataset directory). Problems become quarantined items.

    ``columns`` (input column -> language code) renames the columns of CSV/TSV and Parquet files, where
    a mapped column the file lacks makes the whole file one quarantined item, and the keys of JSONL
    records, which have no fixed columns (a record without a mapped key lacks that language).
    """
    if not path.exists():
        why = "a symbolic link to a file that does not exist" if path.is_symlink() else "input does not exist"
        yield RawItem(str(path), 0, None, why)
        return
    if path.is_dir():
        try:
            yield from read_hf(path)
        except OSError as exc:  # not a dataset directory, or its files are missing
            yield RawItem(str(path), 0, None, f"unreadable dataset directory: {exc}")
        return
    if not path.is_file():  # a FIFO, socket or device: opening it may block forever, reading it never ends
        yield RawItem(str(path), 0, None, f"not a regular file ({_file_kind(path)}); inputs must be files or directories")
        return
    if not os.access(path, os.R_OK):
        yield RawItem(str(path), 0, None, "input file is not readable (permission denied)")
        return
    suffix = path.suffix.lower()
    reader = _BY_SUFFIX.get(suffix)
    if reader is None:
        yield RawItem(str(path), 0, None, f"unknown input format {suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
        return
    try:
        if reader is read_tmx:
            yield from read_tmx(path, id_field)
        elif columns and reader in (read_csv, read_parquet):
            yield from reader(path, columns=columns)
        elif columns and reader is read_jsonl:
            yield from _rename_items(read_jsonl(path), columns)
        else:
            yield from reader(path)
    except OSError as exc:
        yield RawItem(str(path), 0, None, f"unreadable file: {exc}")


def read_all(
    paths: Sequence[str | Path], id_field: str | None = "concept_id", columns: Mapping[str, str] | None = None
) -> Iterator[RawItem]:
    for path in list_inputs(paths):
        yield from read_path(path, id_field, columns)
