"""A built corpus, opened from Python: :class:`Corpus`.

A corpus is the directory a build writes (README.md, "What a build writes"): ``manifest.json``,
``stats.json``, ``shards/`` (kept rows), ``rejected/`` (rows the select step dropped, with
``drop_reason``) and ``quarantine/`` (input records that could not be read). :class:`Corpus` reads
the files the manifest lists, never anything else in the directory.

Example::

    corpus = Corpus("corpus")
    corpus.validate()                       # raises CorpusValidationError on any problem
    kept = corpus.to_polars()               # polars.DataFrame, one row per (concept_id, lang)
    for concept_id, rows in corpus.concepts():
        rows["en"]["text"], rows.get("de", {}).get("text")
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from corpusalign.export import ExportResult
    from corpusalign.runner import BuildResult

#: ``to_polars`` split -> the manifest's list of that split's files.
SPLITS = {"kept": "shards", "rejected": "rejected", "quarantine": "quarantine"}


class CorpusValidationError(ValueError):
    """``corpusalign validate`` found problems in a corpus; ``problems`` lists them, one line each."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{len(self.problems)} problem(s) in {path}:\n{shown}{more}")


@dataclass(frozen=True)
class ValidationResult:
    """What :meth:`Corpus.validate` found: ``problems`` (empty when the corpus is sound); true when ``ok``."""

    path: Path
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"{self.path}: schema, checksums, shard completeness and accounting all hold"
        return str(CorpusValidationError(self.path, self.problems))


class Corpus:
    """A finished build in directory ``path`` (raises :class:`FileNotFoundError` when it holds no manifest.json)."""

    def __init__(self, path: str | Path) -> None:
        from corpusalign.store.manifest import read_manifest

        self.path = Path(path)
        #: The parsed manifest.json: files, counts per language, configuration, accounting.
        self.manifest: dict[str, Any] = read_manifest(self.path)
        #: The runner's result when this corpus was returned by :func:`corpusalign.build` (else None).
        self.build_result: BuildResult | None = None

    # ------------------------------------------------------------------------------------------
    @cached_property
    def stats(self) -> dict[str, Any]:
        """The parsed stats.json: build time, and per step its counters, timings and histograms."""
        from corpusalign.store.manifest import STATS

        return json.loads((self.path / str(self.manifest.get("stats") or STATS)).read_text(encoding="utf-8"))

    @property
    def languages(self) -> list[str]:
        """The build's languages, source first."""
        return list(self.manifest.get("languages", []))

    @property
    def source_language(self) -> str:
        return str(self.manifest.get("source_language", ""))

    def __repr__(self) -> str:
        m = self.manifest
        counts, acct = m.get("counts", {}), m.get("accounting", {})
        targets = ", ".join(self.languages[1:])
        shards = len(m.get("shards", []))
        from corpusalign.store.manifest import rows_not_in_input

        absent = sum(rows_not_in_input(m).values()) if "languages" in m else 0
        return (
            f"<Corpus {str(self.path)!r}: {self.source_language} -> {targets}; "
            f"{counts.get('rows', 0):,} rows kept in {shards} shard{'s' if shards != 1 else ''} "
            f"({counts.get('concepts', 0):,} concepts, {counts.get('complete_concepts', 0):,} with every language); "
            f"{acct.get('rejected_rows', 0) - absent:,} rejected, {absent:,} not in the input, "
            f"{acct.get('quarantined_rows', 0):,} quarantined>"
        )

    # ------------------------------------------------------------------------------------------
    def validate(self, *, raise_on_error: bool = True) -> ValidationResult:
        """Run ``corpusalign validate``'s checks (manifest digest, sizes and sha256 of every listed file,
        no unlisted files, schema, sort order, shard completeness, accounting).

        Raises :class:`CorpusValidationError` (a ``ValueError`` listing every problem) when any check
        fails; with ``raise_on_error=False`` returns the :class:`ValidationResult` instead, problems
        and all. A sound corpus returns a result whose ``ok`` is true.
        """
        from corpusalign.store.validate import validate

        result = ValidationResult(self.path, validate(self.path))
        if raise_on_error and not result.ok:
            raise CorpusValidationError(self.path, result.problems)
        return result

    def files(self, split: str = "kept") -> list[Path]:
        """The Parquet files of ``split`` (``kept``, ``rejected`` or ``quarantine``) that the manifest lists."""
        from corpusalign.store.manifest import entry_path

        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        return [entry_path(self.path, e.get("path")) for e in self.manifest.get(SPLITS[split], [])]

    def to_polars(self, split: str = "kept", *, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """The rows of ``split`` as one polars DataFrame (a LazyFrame with ``lazy=True``).

        ``kept``: the shards (schema v3, README "Shard schema"), each shard sorted by (concept_id,
        lang); ``rejected``: the rows the select step dropped, with ``drop_reason`` and
        ``drop_detail``; ``quarantine``: the input records that could not be read (``source_file``,
        ``source_line``, ``error``, ``raw``). An empty split gives an empty frame with its schema.
        """
        import polars as pl

        from corpusalign.store.schema import QUARANTINE_SCHEMA, REJECTED_SCHEMA, SHARD_SCHEMA

        paths = self.files(split)
        if not paths:
            schema = {"kept": SHARD_SCHEMA, "rejected": REJECTED_SCHEMA, "quarantine": QUARANTINE_SCHEMA}[split]
            empty = pl.from_arrow(schema.empty_table())
            assert isinstance(empty, pl.DataFrame)
            return empty.lazy() if lazy else empty
        return pl.scan_parquet(paths) if lazy else pl.read_parquet(paths)

    def to_hf(self, split: str = "kept") -> Any:
        """A ``datasets.DatasetDict`` with one split per language (source first) holding that language's
        rows of ``split`` (``kept`` or ``rejected``), sorted by concept_id; a language without rows gets
        an empty split. Needs the ``hf`` extra (``pip install 'corpusalign[hf]'``): without
        ``datasets`` it raises :class:`~corpusalign.extras.MissingExtraError` naming it.
        """
        from corpusalign.extras import require

        if split not in ("kept", "rejected"):
            raise ValueError(f"to_hf: split must be kept or rejected, not {split!r} (quarantined records have no language)")
        datasets = require("datasets", extra="hf", purpose="Corpus.to_hf()")
        import polars as pl

        frame = self.to_polars(split)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.sort("concept_id", "lang", maintain_order=True)
        langs = list(dict.fromkeys([*self.languages, *frame["lang"].unique().sort().to_list()]))
        return datasets.DatasetDict({lang: datasets.Dataset(frame.filter(pl.col("lang") == lang).to_arrow()) for lang in langs})

    def export(
        self,
        format: str,
        output: str | Path,
        *,
        field: str | None = None,
        pairs: str | None = None,
        layout: str | None = None,
        validate: bool = True,
    ) -> ExportResult:
        """Write the kept rows as ``format``: ``hf-translation`` (``pairs="anchor"``: a directory of
        ``SRC-TGT.jsonl`` files, or ``"all"``: one file), ``jsonl`` (``layout="concepts"`` or ``"rows"``)
        or ``tmx`` (TMX 1.4), streamed one shard at a time, each file written atomically (docs/export.md).
        ``field`` picks the text field of a corpus of several. ``validate`` (default) runs
        :meth:`validate` first and raises :class:`CorpusValidationError` on any problem; bad options
        raise :class:`~corpusalign.export.ExportError`. Returns the files written and their records.
        """
        from corpusalign.export import export_corpus

        check = self.validate if validate else None
        return export_corpus(
            self.path, format, output, field=field, pairs=pairs, layout=layout, manifest=self.manifest, check=check
        )

    def concepts(self) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
        """The kept rows grouped by concept: ``(concept_id, {lang: row})`` for each concept, the
        languages in build order (source first), each row a dict of every shard column
        (``concept_id`` and ``lang`` included). Reads one shard at a time, in the manifest's order;
        within a shard concepts come sorted by ``concept_id`` (a concept never spans two shards).
        """
        import polars as pl

        order = {lang: i for i, lang in enumerate(self.languages)}
        for path in self.files("kept"):
            frame = pl.read_parquet(path)
            current: str | None = None
            rows: list[dict[str, Any]] = []
            for row in frame.iter_rows(named=True):
                if row["concept_id"] != current and rows:
                    yield current, _by_lang(rows, order)  # type: ignore[misc]
                    rows = []
                current = row["concept_id"]
                rows.append(row)
            if rows:
                yield current, _by_lang(rows, order)  # type: ignore[misc]


def _by_lang(rows: list[dict[str, Any]], order: dict[str, int]) -> dict[str, dict[str, Any]]:
    rows = sorted(rows, key=lambda r: (order.get(r["lang"], len(order)), r["lang"]))
    return {r["lang"]: r for r in rows}
