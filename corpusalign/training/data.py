"""Read a built corpusalign corpus for training: rows grouped into concepts.

:class:`ShardDataset` opens a corpus directory written by ``corpusalign build``, refuses it when
:func:`corpusalign.store.validate.validate` finds any problem (a flipped byte or checksum, a truncated,
missing or unlisted file, a schema mismatch, an edited manifest: :class:`CorruptCorpusError` lists
them all), then reads only the columns it needs (``concept_id``, ``lang`` and the requested text
fields) of the shards the manifest lists.

Rows are indexed ``0 .. len(ds) - 1`` in (``concept_id``, ``lang``) order over the whole corpus, so a
row index means the same row whatever the sharding. The rows of concept ``c`` are the contiguous
range ``ds.concept_offsets[c] : ds.concept_offsets[c + 1]``. A sampler yields row indices;
``ds[i]`` / ``ds.__getitems__(indices)`` (what ``torch.utils.data.DataLoader`` calls with a batch
sampler) return plain row dicts, and :meth:`ShardDataset.concept` a :class:`Concept`.

Held-out split: ``split="train" | "eval"`` keeps the concepts whose stable hash
(xxh3-64 of ``split_salt + concept_id``, mapped to [0, 1)) is ``>= eval_fraction`` (train) or
``< eval_fraction`` (eval). It depends on nothing but the concept id, so it is the same on every run,
machine, shard layout, language subset and corpus version that keeps the concept; ``split="all"``
keeps everything.

Scale assumption: the requested text columns of the (split's) rows are held in memory as one Arrow
table (about the text's UTF-8 bytes plus 4 bytes of offsets per value), with a few NumPy integer arrays
per row and per concept beside it; no Python object is made per row until a row is asked for. That is
fine up to corpora of a few GB of text per process (the bundled samples are a few hundred KB). A
corpus larger than memory needs a streaming reader over the shards (one shard group per worker), which
this class does not do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from corpusalign.store import manifest as mf
from corpusalign.store.schema import TEXT_FIELDS
from corpusalign.store.validate import validate

Split = Literal["all", "train", "eval"]

#: Default salt of the held-out split hash; change it to draw another held-out set.
DEFAULT_SPLIT_SALT = "corpusalign.eval/"


class CorruptCorpusError(ValueError):
    """The corpus directory failed validation; nothing was read from its shards.

    ``problems`` holds every problem :func:`corpusalign.store.validate.validate` reported.
    """

    def __init__(self, root: str | Path, problems: Sequence[str]) -> None:
        self.root = Path(root)
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"refusing corrupt corpus {self.root} ({len(self.problems)} problem(s)):\n{listing}")


@dataclass(frozen=True)
class Concept:
    """One concept: its id and, per language, the requested text fields of its row.

    ``rows[lang]`` is ``{field: text or None}``; ``indices[lang]`` is that row's index in the dataset.
    Languages appear in the dataset's language order (anchor first).
    """

    concept_id: str
    rows: dict[str, dict[str, str | None]]
    indices: dict[str, int] = field(default_factory=dict)

    @property
    def langs(self) -> tuple[str, ...]:
        return tuple(self.rows)


def split_fraction(concept_id: str, salt: str = DEFAULT_SPLIT_SALT) -> float:
    """Stable position of ``concept_id`` in [0, 1): the held-out split keeps ids below ``eval_fraction``."""
    return xxhash.xxh3_64_intdigest((salt + concept_id).encode("utf-8")) / 2.0**64


class ShardDataset:
    """The verified rows of a built corpus, grouped by concept.

    Parameters
    ----------
    root:
        A corpus directory (``manifest.json`` plus ``shards/``).
    langs:
        Languages to read, default the manifest's. Order kept, except that the anchor (the manifest's
        ``source_language``) is moved first when present. Unknown languages raise ``ValueError``.
    fields:
        Text fields to read, default the manifest's ``fields``.
    split, eval_fraction, split_salt:
        The deterministic held-out split by concept (see the module docstring).
    check:
        Run ``validate(root)`` first and raise :class:`CorruptCorpusError` on any problem (default).
        ``False`` skips it (it hashes every file) for a corpus validated moments ago; do not use it on
        a corpus that was copied or could have changed.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        langs: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
        split: Split = "all",
        eval_fraction: float = 0.05,
        split_salt: str = DEFAULT_SPLIT_SALT,
        check: bool = True,
    ) -> None:
        self.root = Path(root)
        if split not in ("all", "train", "eval"):
            raise ValueError(f"split must be 'all', 'train' or 'eval', not {split!r}")
        if not 0.0 <= eval_fraction <= 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1], not {eval_fraction}")
        if check:
            problems = validate(self.root)
            if problems:
                raise CorruptCorpusError(self.root, problems)
        try:
            self.manifest: dict[str, Any] = mf.read_manifest(self.root)
        except ValueError as exc:  # only reachable with check=False
            raise CorruptCorpusError(self.root, [f"{mf.MANIFEST} is not valid JSON: {exc}"]) from exc

        corpus_langs = list(self.manifest.get("languages", []))
        self.anchor: str | None = self.manifest.get("source_language")
        wanted = list(corpus_langs if langs is None else langs)
        unknown = [lg for lg in wanted if lg not in corpus_langs]
        if unknown or len(set(wanted)) != len(wanted) or not wanted:
            raise ValueError(f"langs {wanted}: each must be one of the corpus languages {corpus_langs}, once")
        if self.anchor in wanted:
            wanted.remove(self.anchor)
            wanted.insert(0, self.anchor)
        self.langs: tuple[str, ...] = tuple(wanted)

        self.fields: tuple[str, ...] = tuple(self.manifest.get("fields", ["text"]) if fields is None else fields)
        bad = [f for f in self.fields if f not in TEXT_FIELDS]
        if bad or not self.fields:
            raise ValueError(f"fields {list(self.fields)}: each must be one of {list(TEXT_FIELDS)}")
        self.split: Split = split
        self.eval_fraction = float(eval_fraction)
        self.split_salt = split_salt

        df = self._read()
        marks = df.select(
            pl.col("lang").replace_strict({lg: i for i, lg in enumerate(self.langs)}, return_dtype=pl.Int16).alias("code"),
            (pl.col("concept_id") != pl.col("concept_id").shift(1)).fill_null(True).alias("first"),
        )
        self._table = df.to_arrow().combine_chunks()
        #: Per row: position of its language in ``self.langs``.
        self.row_lang: np.ndarray = marks["code"].to_numpy()
        starts = np.flatnonzero(marks["first"].to_numpy()).astype(np.int64)
        #: Row range of concept ``c``: ``concept_offsets[c] : concept_offsets[c + 1]``.
        self.concept_offsets: np.ndarray = np.concatenate([starts, [df.height]]).astype(np.int64)
        #: Per row: index of its concept.
        self.row_concept: np.ndarray = np.repeat(np.arange(len(starts), dtype=np.int64), np.diff(self.concept_offsets))
        self._concept_ids = self._table.column("concept_id").take(pa.array(starts, type=pa.int64()))

    # ------------------------------------------------------------------------------------------ read
    def _read(self) -> pl.DataFrame:
        columns = ["concept_id", "lang", *self.fields]
        frames = []
        for entry in self.manifest.get("shards", []):
            path = mf.entry_path(self.root, entry.get("path"))
            frames.append(pl.from_arrow(pq.read_table(path, columns=columns)))
        if not frames:
            return pl.DataFrame({c: [] for c in columns}, schema={c: pl.String for c in columns})
        df = pl.concat(frames, how="vertical", rechunk=False).filter(pl.col("lang").is_in(list(self.langs)))
        if self.split != "all":
            ids = df["concept_id"].unique()
            frac = np.fromiter((split_fraction(c, self.split_salt) for c in ids.to_list()), dtype=np.float64, count=len(ids))
            held = ids.filter(pl.Series(frac < self.eval_fraction))
            keep = pl.col("concept_id").is_in(held.implode())
            df = df.filter(keep if self.split == "eval" else ~keep)
        return df.sort("concept_id", "lang")

    # ------------------------------------------------------------------------------------- rows API
    def __len__(self) -> int:
        return self._table.num_rows

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} out of range for {len(self)} rows")
        return self._table.slice(index % len(self), 1).to_pylist()[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Rows ``indices`` as dicts (``concept_id``, ``lang``, the fields), in that order."""
        return self._table.take(pa.array(indices, type=pa.int64())).to_pylist()

    def column(self, name: str, indices: Sequence[int] | None = None) -> list[Any]:
        """One column (``concept_id``, ``lang`` or a field) as a list, for ``indices`` or every row."""
        col = self._table.column(name)
        if indices is not None:
            col = col.take(pa.array(indices, type=pa.int64()))
        return col.to_pylist()

    @property
    def table(self) -> pa.Table:
        """The rows as an Arrow table (read-only view; do not mutate)."""
        return self._table

    # --------------------------------------------------------------------------------- concept API
    @property
    def num_concepts(self) -> int:
        return len(self.concept_offsets) - 1

    @property
    def concept_ids(self) -> list[str]:
        return self._concept_ids.to_pylist()

    def concept_id(self, c: int) -> str:
        return self._concept_ids[c].as_py()

    def concept(self, c: int) -> Concept:
        """Concept number ``c`` (in concept_id order) with its rows in the dataset's language order."""
        if not 0 <= c < self.num_concepts:
            raise IndexError(f"concept {c} out of range for {self.num_concepts} concepts")
        lo, hi = int(self.concept_offsets[c]), int(self.concept_offsets[c + 1])
        idx = sorted(range(lo, hi), key=lambda i: self.row_lang[i])
        rows = self.__getitems__(idx)
        return Concept(
            concept_id=rows[0]["concept_id"],
            rows={r["lang"]: {f: r[f] for f in self.fields} for r in rows},
            indices={r["lang"]: i for r, i in zip(rows, idx, strict=True)},
        )

    def concepts(self) -> Iterator[Concept]:
        for c in range(self.num_concepts):
            yield self.concept(c)

    def __repr__(self) -> str:
        return (
            f"ShardDataset({str(self.root)!r}, langs={list(self.langs)}, fields={list(self.fields)}, split={self.split!r}, "
            f"concepts={self.num_concepts}, rows={len(self)})"
        )
