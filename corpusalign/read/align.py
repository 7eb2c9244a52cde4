"""Recover concept tuples from a misaligned parallel file (a translation memory whose lines drifted).

Given the source segments and, per target language, that language's segments in roughly the same
order, :func:`align` finds which target line translates which source line, with the same signal the
verify step uses: multilingual sentence embeddings scored by the ratio margin of Artetxe & Schwenk
(2019, "Margin-based parallel corpus mining with multilingual sentence embeddings")::

    margin(x, y) = cos(x, y) / ((mean cos(x, kNN_tgt(x)) + mean cos(y, kNN_src(y))) / 2)

with the k nearest neighbours taken in both directions. A pair is kept when it is a *mutual* best
match (the target is the source's best candidate and the source is the target's) and its margin is
at least ``min_margin``. Lines that were deleted, inserted or moved simply find no mutual partner or
find their true partner wherever it went; nothing assumes the files have the same length.

Several target languages are pivoted through the source: each target is aligned to the source on its
own and the tuples are joined on the source line, so a German line lost does not cost the Japanese.

For long documents that are mostly in order, ``window`` restricts the candidates of source line ``i``
to target lines within ``window`` of the proportional diagonal ``i * m / n`` (and the kNN means to the
same band), which makes the work linear in the document length instead of quadratic.

Reads: source texts and target texts (lists, or files via :func:`align_files`). Writes: one row per
source line; a target line is used at most once. Drops nothing: unmatched source lines keep nulls.

Example::

    >>> from corpusalign.embed import make_embedder
    >>> df = align(["Good morning.", "Thank you."], {"de": ["Danke.", "Guten Morgen."]}, make_embedder("e5"))
    >>> df.select("src_line", "de_line").rows()
    [(0, 1), (1, 0)]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

from corpusalign.embed.base import Embedder

log = logging.getLogger(__name__)

#: Default minimum ratio margin of a kept pair. 1.06 is the usual mining threshold for LASER over web
#: crawls (large, diverse candidate pools); inside one document the neighbours of a line are on the
#: same topic, the kNN means are high and true pairs score only 1.0-1.05 with multilingual-e5-small
#: (measured on UDHR en-de/ja/sw), so mining inside a document needs a lower bar. Mutual best matching
#: carries most of the precision; the threshold removes pairs between two orphans (a source line whose
#: translation was deleted and an inserted, unrelated target line). See tests/test_align.py.
DEFAULT_MIN_MARGIN = 1.0

#: Plain-text inputs: one segment per line. Any other suffix goes through the corpusalign readers.
PLAIN_SUFFIXES = (".txt", ".text", "")
_BLOCK_CELLS = 1 << 22  # similarity cells computed at once (16 MiB of float32)
_TIE_BREAK = 1e-6  # among equal margins prefer the candidate nearer the diagonal (duplicate lines)


@dataclass(frozen=True)
class Matches:
    """Mutual best matches between one source and one target list (indices into the given lists)."""

    src: np.ndarray  # int64, source index of each kept pair
    tgt: np.ndarray  # int64, target index of each kept pair
    margin: np.ndarray  # float32
    cos: np.ndarray  # float32


def _bands(n: int, m: int, window: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per source row, the half-open range ``[lo, hi)`` of candidate target rows."""
    if window is None:
        return np.zeros(n, dtype=np.int64), np.full(n, m, dtype=np.int64)
    if window < 0:
        raise ValueError(f"window must be >= 0 or None, got {window}")
    centre = np.rint(np.arange(n) * (m - 1) / max(n - 1, 1)).astype(np.int64) if n > 1 else np.zeros(n, dtype=np.int64)
    return np.maximum(centre - window, 0), np.minimum(centre + window + 1, m)


def _blocks(lo: np.ndarray, hi: np.ndarray, m: int):
    """Yield ``(r0, r1, c0, c1)`` row blocks whose candidate columns span ``[c0, c1)``, a few MiB each."""
    n = len(lo)
    r0 = 0
    while r0 < n:
        r1 = r0 + 1
        c0, c1 = int(lo[r0]), int(hi[r0])
        while r1 < n:
            nc0, nc1 = min(c0, int(lo[r1])), max(c1, int(hi[r1]))
            if (r1 + 1 - r0) * max(nc1 - nc0, 1) > _BLOCK_CELLS:
                break
            c0, c1 = nc0, nc1
            r1 += 1
        yield r0, r1, c0, c1
        r0 = r1


def _block_cos(src: np.ndarray, tgt: np.ndarray, lo: np.ndarray, hi: np.ndarray, r0: int, r1: int, c0: int, c1: int):
    """Cosines of rows ``r0:r1`` against columns ``c0:c1``, ``-inf`` outside each row's band."""
    block = src[r0:r1] @ tgt[c0:c1].T
    cols = np.arange(c0, c1)[None, :]
    outside = (cols < lo[r0:r1, None]) | (cols >= hi[r0:r1, None])
    block[outside] = -np.inf
    return block


def _topk_mean(values: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Mean of the ``k`` largest finite values along ``axis`` (fewer when fewer are finite)."""
    if values.shape[axis] > k:
        values = -np.partition(-values, k - 1, axis=axis).take(np.arange(k), axis=axis)
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    count = finite.sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def mutual_matches(
    src_emb: np.ndarray,
    tgt_emb: np.ndarray,
    k: int = 4,
    min_margin: float = DEFAULT_MIN_MARGIN,
    window: int | None = None,
) -> Matches:
    """Mutual best ratio-margin matches between L2-normalised ``src_emb`` (n, d) and ``tgt_emb`` (m, d).

    Pure NumPy, in blocks of a few MiB; with ``window`` only the diagonal band is ever computed.
    Among candidates with equal margins (duplicate lines) the one nearer the diagonal wins.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    src = np.ascontiguousarray(src_emb, dtype=np.float32)
    tgt = np.ascontiguousarray(tgt_emb, dtype=np.float32)
    n, m = len(src), len(tgt)
    empty = Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
    if n == 0 or m == 0:
        return empty
    lo, hi = _bands(n, m, window)
    blocks = list(_blocks(lo, hi, m))

    # pass 1: the kNN means, rows (source -> target) and columns (target -> source)
    knn_src = np.empty(n, dtype=np.float32)
    col_top = np.full((k, m), -np.inf, dtype=np.float32)  # running k largest cosines of each column
    for r0, r1, c0, c1 in blocks:
        block = _block_cos(src, tgt, lo, hi, r0, r1, c0, c1)
        knn_src[r0:r1] = _topk_mean(block, k, axis=1)
        both = np.concatenate([col_top[:, c0:c1], block], axis=0)
        col_top[:, c0:c1] = -np.partition(-both, k - 1, axis=0)[:k]
    knn_tgt = _topk_mean(col_top, k, axis=0).astype(np.float32)

    # pass 2: margins; best target of each source row, best source of each target column
    centre_t = np.arange(n) * (m - 1) / max(n - 1, 1)  # diagonal position of each source row, for tie-breaking
    row_best = np.full(n, -1, dtype=np.int64)
    row_margin = np.full(n, -np.inf, dtype=np.float32)
    row_cos = np.zeros(n, dtype=np.float32)
    col_best = np.full(m, -1, dtype=np.int64)
    col_score = np.full(m, -np.inf, dtype=np.float64)
    col_centre = np.arange(m) * (n - 1) / max(m - 1, 1) if m > 1 else np.zeros(m)
    for r0, r1, c0, c1 in blocks:
        block = _block_cos(src, tgt, lo, hi, r0, r1, c0, c1)
        denom = (knn_src[r0:r1, None] + knn_tgt[None, c0:c1]) / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            margin = np.where(np.isfinite(block), block / np.maximum(denom, 1e-6), -np.inf).astype(np.float32)
        cols = np.arange(c0, c1)
        rows = np.arange(r0, r1)
        # rows: prefer, among equal margins, the column nearest the row's diagonal position
        row_key = margin - _TIE_BREAK * np.abs(cols[None, :] - centre_t[r0:r1, None]) / max(m, 1)
        arg = row_key.argmax(axis=1)
        row_best[r0:r1] = c0 + arg
        row_margin[r0:r1] = margin[np.arange(r1 - r0), arg]
        row_cos[r0:r1] = block[np.arange(r1 - r0), arg]
        col_key = margin - _TIE_BREAK * np.abs(rows[:, None] - col_centre[None, c0:c1]) / max(n, 1)
        carg = col_key.argmax(axis=0)
        cbest = col_key[carg, np.arange(c1 - c0)]
        better = cbest > col_score[c0:c1]
        col_score[c0:c1] = np.where(better, cbest, col_score[c0:c1])
        col_best[c0:c1] = np.where(better, r0 + carg, col_best[c0:c1])

    src_idx = np.arange(n)
    valid = (row_best >= 0) & np.isfinite(row_margin)
    mutual = valid & (col_best[np.clip(row_best, 0, m - 1)] == src_idx) & (row_margin >= min_margin)
    keep = np.flatnonzero(mutual)
    return Matches(keep.astype(np.int64), row_best[keep], row_margin[keep], row_cos[keep])


def _embed_nonblank(embedder: Embedder, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the non-blank texts and their positions (blank lines take part in nothing)."""
    pos = np.array([i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()], dtype=np.int64)
    emb = embedder.encode([texts[i] for i in pos]) if len(pos) else np.zeros((0, embedder.dim), dtype=np.float32)
    return np.asarray(emb, dtype=np.float32), pos


def align(
    src_texts: Sequence[str],
    tgt_texts_by_lang: Mapping[str, Sequence[str]],
    embedder: Embedder,
    k: int = 4,
    min_margin: float = DEFAULT_MIN_MARGIN,
    window: int | None = None,
    src_ids: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Align each target list to the source list; one row per source line.

    Columns: ``concept_id`` (``src_ids[i]``, else ``align-<i>``), ``src_line`` (0-based index into
    ``src_texts``), ``src_text``, and per target language ``<lang>_line`` (0-based index into that
    language's list, null when no mutual match above ``min_margin``), ``<lang>_text``,
    ``<lang>_margin`` and ``<lang>_cos``. Blank lines never match.
    """
    n = len(src_texts)
    if src_ids is not None and len(src_ids) != n:
        raise ValueError(f"src_ids has {len(src_ids)} entries for {n} source lines")
    src_emb, src_pos = _embed_nonblank(embedder, src_texts)
    columns: dict[str, Any] = {
        "concept_id": list(src_ids) if src_ids is not None else [f"align-{i}" for i in range(n)],
        "src_line": np.arange(n, dtype=np.int64),
        "src_text": list(src_texts),
    }
    schema: dict[str, Any] = {"concept_id": pl.String, "src_line": pl.Int64, "src_text": pl.String}
    for lang, tgt_texts in tgt_texts_by_lang.items():
        started = time.perf_counter()
        tgt_emb, tgt_pos = _embed_nonblank(embedder, tgt_texts)
        found = mutual_matches(src_emb, tgt_emb, k=k, min_margin=min_margin, window=window)
        line = np.full(n, -1, dtype=np.int64)
        margin = np.full(n, np.nan, dtype=np.float64)
        cos = np.full(n, np.nan, dtype=np.float64)
        rows = src_pos[found.src]
        line[rows] = tgt_pos[found.tgt]
        margin[rows] = found.margin
        cos[rows] = found.cos
        matched = line >= 0
        columns[f"{lang}_line"] = [int(v) if ok else None for v, ok in zip(line, matched, strict=True)]
        columns[f"{lang}_text"] = [tgt_texts[v] if ok else None for v, ok in zip(line, matched, strict=True)]
        columns[f"{lang}_margin"] = [float(v) if ok else None for v, ok in zip(margin, matched, strict=True)]
        columns[f"{lang}_cos"] = [float(v) if ok else None for v, ok in zip(cos, matched, strict=True)]
        schema |= {f"{lang}_line": pl.Int64, f"{lang}_text": pl.String, f"{lang}_margin": pl.Float64, f"{lang}_cos": pl.Float64}
        log.info(
            "aligned %s: %d of %d source lines matched %d target lines (%.1fs)",
            lang,
            int(matched.sum()),
            n,
            len(tgt_texts),
            time.perf_counter() - started,
        )
    return pl.DataFrame(columns, schema=schema)


# ---------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class Segments:
    """The segments of one input file: texts, their 1-based line numbers and ids where the file had them."""

    texts: list[str]
    lines: list[int]
    ids: list[str | None]
    unreadable: int = 0


def read_segments(path: str | Path, lang: str, field: str | None = None, id_field: str | None = "concept_id") -> Segments:
    """Segments of one side of a parallel file.

    Plain text (``.txt`` or no suffix): one segment per line, blank lines kept as blank segments so
    that line numbers stay true. JSONL, TSV/CSV, Parquet, TMX: via :func:`corpusalign.read.formats.read_all`;
    the text is the record's ``field`` when given, else its ``lang`` key, else its ``text`` key.
    Unreadable records are counted and skipped.
    """
    path = Path(path)
    if path.suffix.lower() in PLAIN_SUFFIXES:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            texts = [line.rstrip("\r\n") for line in f]
        return Segments(texts, list(range(1, len(texts) + 1)), [None] * len(texts))
    from corpusalign.read.formats import read_all

    keys = [field] if field else [lang, "text"]
    texts, lines, ids, unreadable = [], [], [], 0
    for item in read_all([path], id_field=id_field):
        record = item.record
        value = next((record[key] for key in keys if record is not None and isinstance(record.get(key), str)), None)
        if value is None:
            unreadable += 1
            continue
        raw_id = record.get(id_field) if id_field else None
        texts.append(value)
        lines.append(item.line)
        ids.append(str(raw_id) if raw_id not in (None, "") else None)
    if unreadable:
        log.warning("%s: %d records without a %s text were skipped", path, unreadable, " or ".join(keys))
    return Segments(texts, lines, ids, unreadable)


def align_files(
    src_path: str | Path,
    tgt_paths: Mapping[str, str | Path],
    output: str | Path,
    embedder: Embedder,
    src_lang: str = "en",
    k: int = 4,
    min_margin: float = DEFAULT_MIN_MARGIN,
    window: int | None = None,
    field: str | None = None,
    keep_unmatched: bool = True,
    details: str | Path | None = None,
) -> dict[str, Any]:
    """Align files and write a JSONL file ``corpusalign build`` reads: ``{"concept_id", src_lang, lang...}``.

    ``concept_id`` is the source record's ``concept_id`` when it has one, else ``align-<source line>``
    (1-based line in the source file), so re-aligning the same file gives the same ids. A target key is
    present only when a match was found; with ``keep_unmatched`` (default) source lines with no match
    are written too, with the source text only, so that ``build`` can translate them or report them
    missing. ``details`` optionally writes the per-line table (file line numbers, margins, cosines) as
    Parquet. Returns a summary.
    """
    started = time.perf_counter()
    src = read_segments(src_path, src_lang, field)
    tgts = {lang: read_segments(p, lang, field) for lang, p in tgt_paths.items()}
    if src_lang in tgts:
        raise ValueError(f"the source language {src_lang!r} cannot also be a target")
    ids = [cid if cid is not None else f"align-{line}" for cid, line in zip(src.ids, src.lines, strict=True)]
    table = align(
        src.texts, {lang: s.texts for lang, s in tgts.items()}, embedder, k=k, min_margin=min_margin, window=window, src_ids=ids
    )
    # list indices -> file line numbers, 1-based, as a user sees them in an editor
    src_lines = pl.Series("src_file_line", src.lines, dtype=pl.Int64)
    table = table.with_columns(src_lines)
    for lang, seg in tgts.items():
        lookup = pl.Series(seg.lines, dtype=pl.Int64)
        idx = table[f"{lang}_line"]
        file_lines = [None if i is None else int(lookup[i]) for i in idx.to_list()]
        table = table.with_columns(pl.Series(f"{lang}_file_line", file_lines, dtype=pl.Int64))

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "wb") as f:
        for row in table.iter_rows(named=True):
            src_text = row["src_text"]
            if not isinstance(src_text, str) or not src_text.strip():
                continue
            record: dict[str, Any] = {"concept_id": row["concept_id"], src_lang: src_text}
            for lang in tgts:
                if row[f"{lang}_text"] is not None:
                    record[lang] = row[f"{lang}_text"]
            if len(record) == 2 and not keep_unmatched:
                continue
            f.write(orjson.dumps(record) + b"\n")
            written += 1
    tmp.replace(output)
    if details is not None:
        Path(details).parent.mkdir(parents=True, exist_ok=True)
        table.write_parquet(details)

    nonblank = int(sum(1 for t in src.texts if t.strip()))
    per_lang = {}
    for lang, seg in tgts.items():
        matched = int(table[f"{lang}_line"].is_not_null().sum())
        margins = table[f"{lang}_margin"].drop_nulls()
        per_lang[lang] = {
            "target_lines": sum(1 for t in seg.texts if t.strip()),
            "matched": matched,
            "unmatched_source": nonblank - matched,
            "unmatched_target": sum(1 for t in seg.texts if t.strip()) - matched,
            "median_margin": float(margins.median()) if len(margins) else None,
            "unreadable_records": seg.unreadable,
        }
    complete = 0
    if tgts:
        complete = int(table.select(pl.all_horizontal(pl.col(f"{lang}_line").is_not_null() for lang in tgts)).sum().item())
    return {
        "output": str(output),
        "source_lines": nonblank,
        "records_written": written,
        "complete_tuples": complete,
        "languages": per_lang,
        "embedder": embedder.describe(),
        "k": k,
        "min_margin": min_margin,
        "window": window,
        "seconds": round(time.perf_counter() - started, 2),
    }


def align_command(
    src: Path,
    tgt: Mapping[str, Path],
    output: Path,
    embedder_spec: str = "e5",
    src_lang: str = "en",
    k: int = 4,
    min_margin: float = DEFAULT_MIN_MARGIN,
    window: int | None = None,
    field: str | None = None,
    keep_unmatched: bool = True,
    details: Path | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> dict[str, Any]:
    """Entry point for ``corpusalign align``: build the embedder named by ``embedder_spec``, run
    :func:`align_files`, return its summary (print it as a table)."""
    from corpusalign.embed import make_embedder

    embedder = make_embedder(embedder_spec, batch_size=batch_size, device=device)
    return align_files(
        src,
        tgt,
        output,
        embedder,
        src_lang=src_lang,
        k=k,
        min_margin=min_margin,
        window=window,
        field=field,
        keep_unmatched=keep_unmatched,
        details=details,
    )
