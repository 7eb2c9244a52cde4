"""Stage 2: find duplicates over every staged batch, as partitioned units any executor runs.

Duplicates may sit in any two batches, so this stage sees the whole corpus, but no process holds
it: the work is a map and three rounds of reduces over hash partitions of the keys, each unit a
plain function of its number that reads and writes files under ``work`` (the build's
``_work/dedup``), so the local executor runs the units one after another in this process and the
Ray executor runs them as Ray tasks on the cluster (retried by Ray if a node dies; every unit
overwrites its own files, so a retry is harmless):

1. **map**, per group of consecutive staged batches: the source rows' keys, each written to the
   partition ``hash(key) mod P`` of its kind: ``ids`` (by ``concept_id``), ``exact`` (by
   ``dedup_key``), ``bands`` (one row per LSH band: band, band key, ``_seq``; by band key) and
   ``texts`` (the dedup text of rows with bands; by ``_seq``).
2. **same id**, per partition: concepts sharing an id; the first in input order (smallest ``_seq``)
   keeps it, the others are ``duplicate`` (same text) or ``duplicate_id``.
3. **exact**, per partition: rows with equal ``dedup_key``, those of step 2 left out.
4. **near**, per partition: rows sharing a band key, those of steps 2-3 left out; each row is paired
   with its group's first row; the pairs go to partitions by the first row.
5. **attach**, per partition: the distinct pairs get the first row's text, and go to partitions by
   the second row; **confirm**, per partition: the second row's text, and the exact Jaccard
   similarity of the two n-gram sets (>= ``threshold``) confirms a pair.
6. **collect**, one unit: connected components over the confirmed pairs (rows in near-duplicate
   clusters only, never the corpus; every member but the component's first row is a
   ``near_duplicate`` of it), and every duplicate, sorted by ``_seq``, written to the result file.
   On Ray this runs on a worker: the driver never holds the list of duplicates.

Every key is grouped in exactly one partition, so the result does not depend on ``P`` or on where a
unit ran: the same groups and the same representative (the first row in input order) as one pass
over the whole corpus. Memory per unit is one partition (``P`` grows with the corpus, about
:data:`ROWS_PER_PARTITION` source rows each) or one group of batches.

Example::

    staged = sorted(Path("out/_work/stage1").glob("part-*.parquet"))
    write_duplicates(staged, cfg, Path("out/_work/dedup"), Path("out/_work/duplicates.parquet"))
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from corpusalign.config import BuildConfig
from corpusalign.execute import Executor, LocalExecutor, Stage
from corpusalign.progress import Progress
from corpusalign.stats import StepStats
from corpusalign.steps.dedup import DUPLICATES_SCHEMA, dedup_text_expr, similar_pairs
from corpusalign.store.files import PieceFiles, read_piece, write_parquet, write_pieces

#: Source rows per partition of a reduce (its hash tables stay at a few hundred MiB).
ROWS_PER_PARTITION = 500_000
#: Source rows per map unit at most (a unit reads whole staged batches).
ROWS_PER_MAP_UNIT = 100_000
_PAIRS = pl.Schema({"_rep": pl.UInt64, "_seq": pl.UInt64})
_KEYED = pl.Schema({"_seq": pl.UInt64, "concept_id": pl.String, "dedup_key": pl.UInt64})
#: What each kind of shuffled file holds (the map's four kinds, then the near pairs twice).
_KINDS = {
    "ids": _KEYED,
    "exact": _KEYED,
    "texts": pl.Schema({"_seq": pl.UInt64, "concept_id": pl.String, "t": pl.String}),
    "bands": pl.Schema({"_seq": pl.UInt64, "band": pl.UInt8, "k": pl.UInt64}),
    "pairs-by-rep": _PAIRS,
    "pairs-by-seq": pl.Schema({"_rep": pl.UInt64, "_seq": pl.UInt64, "cid_rep": pl.String, "t_rep": pl.String}),
}
_ARROW = {kind: pl.DataFrame(schema=schema).to_arrow().schema for kind, schema in _KINDS.items()}


def partition_count(source_rows: int, parallelism: int = 1) -> int:
    """``P``: enough partitions to keep each under :data:`ROWS_PER_PARTITION`, and one per worker at least."""
    return max(1, math.ceil(source_rows / ROWS_PER_PARTITION), parallelism)


def _part(key: pl.Expr, parts: int) -> pl.Expr:
    """The partition of a key: Polars' hash, the same in every process of one Polars version."""
    return (key.hash(seed=0x5EED) % parts).alias("_p")


def _write_parts(frame: pl.DataFrame, path: Path, kind: str, pieces: int) -> None:
    """``frame`` (with ``_p``, 0 <= ``_p`` < ``pieces``) as one file of ``pieces`` pieces, piece ``p``
    the rows of ``_p == p`` in their order: one file per (unit, kind), however many partitions."""
    frame = frame.sort("_p", maintain_order=True)
    cuts = np.concatenate([[0], np.cumsum(np.bincount(frame["_p"].to_numpy(), minlength=pieces))])
    table = frame.drop("_p").to_arrow()
    write_pieces(([table.slice(cuts[p], cuts[p + 1] - cuts[p])] for p in range(pieces)), path, _ARROW[kind])


def _read_parts(folder: Path, kind: str, piece: int) -> pl.LazyFrame:
    """Piece ``piece`` of every file in ``folder`` (written by :func:`_write_parts`), as one frame."""
    files = sorted(folder.glob("*.arrow")) if folder.exists() else []
    return _frame(kind, [read_piece(f, piece, _ARROW[kind]) for f in files])


def _open_parts(folder: Path, kind: str) -> PieceFiles:
    """Every file in ``folder`` (written by :func:`_write_parts`), each file's index read once, for a
    unit that reads several pieces of them (:func:`_frame` of ``PieceFiles.read``)."""
    return PieceFiles(sorted(folder.glob("*.arrow")) if folder.exists() else [], _ARROW[kind])


def _frame(kind: str, batches: list[pa.RecordBatch]) -> pl.LazyFrame:
    """One frame of the pieces of ``kind`` read from every file."""
    if not batches:
        return pl.LazyFrame(schema=_KINDS[kind])
    table = pa.Table.from_batches(batches, schema=_ARROW[kind])
    return pl.from_arrow(table, rechunk=False).lazy()  # type: ignore[union-attr]  # a few columns: chunks are cheap


def _seqs(files: Sequence[Path]) -> pl.LazyFrame:
    return pl.scan_parquet(list(files)).select("_seq") if files else pl.LazyFrame(schema={"_seq": pl.UInt64})


@dataclass(frozen=True)
class _Jobs:
    """The units of stage 2; every method takes a unit number and returns plain values."""

    staged: tuple[str, ...]
    groups: tuple[tuple[int, int], ...]
    cfg: BuildConfig
    work: str
    parts: int
    out: str = ""
    row_group_size: int | None = None

    @property
    def root(self) -> Path:
        return Path(self.work)

    def _put(self, frame: pl.DataFrame, key: str, kind: str, name: str) -> None:
        """``frame`` as ``kind/name.arrow``, piece ``p`` the rows whose column ``key`` falls in partition ``p``."""
        _write_parts(frame.with_columns(_part(pl.col(key), self.parts)), self.root / kind / f"{name}.arrow", kind, self.parts)

    def _get(self, kind: str, p: int) -> pl.LazyFrame:
        """Partition ``p`` of ``kind``: its piece of every unit's file."""
        return _read_parts(self.root / kind, kind, p)

    # 1. map -------------------------------------------------------------------------------
    def map(self, u: int) -> str:
        lo, hi = self.groups[u]
        cfg, d = self.cfg, self.cfg.dedup
        src = (
            pl.scan_parquet([self.staged[i] for i in range(lo, hi)])
            .filter(pl.col("lang") == cfg.src)
            .select("_seq", "concept_id", "dedup_key", "lsh_bands", dedup_text_expr(cfg.fields).alias("t"))
            .collect()
        )
        name = f"u{u:05d}"
        self._put(src.select("_seq", "concept_id", "dedup_key"), "concept_id", "ids", name)
        if d.exact:
            keyed = src.filter(pl.col("dedup_key").is_not_null())
            self._put(keyed.select("_seq", "concept_id", "dedup_key"), "dedup_key", "exact", name)
        if d.near:
            banded = src.filter(pl.col("lsh_bands").is_not_null())
            self._put(banded.select("_seq", "concept_id", "t"), "_seq", "texts", name)
            keys = (
                banded.select(
                    "_seq",
                    pl.int_ranges(0, pl.col("lsh_bands").list.len(), dtype=pl.UInt8).alias("band"),
                    pl.col("lsh_bands").alias("k"),
                )
                .explode("band", "k")
                .filter(pl.col("k").is_not_null())
            )
            bands = self.cfg.dedup.bands  # piece p * bands + b: partition p's keys of band b, read one band at a time
            keys = keys.with_columns((_part(pl.col("k"), self.parts).cast(pl.UInt32) * bands + pl.col("band")).alias("_p"))
            _write_parts(keys, self.root / "bands" / f"{name}.arrow", "bands", self.parts * bands)
        return json.dumps({"rows": src.height})

    # 2. same id -----------------------------------------------------------------------------
    def same_id(self, p: int) -> str:
        rows = self._get("ids", p)
        found = _members(rows, "concept_id", _rep_key="dedup_key").select(
            "_seq",
            pl.col("concept_id").alias("dup_of"),
            pl.when(pl.col("dedup_key") == pl.col("_rep_key"))
            .then(pl.lit("duplicate"))
            .otherwise(pl.lit("duplicate_id"))
            .alias("dup_kind"),
        )
        return self._found(found, "same_id", p)

    # 3. exact ---------------------------------------------------------------------------------
    def exact(self, p: int) -> str:
        rows = self._get("exact", p).join(self._done("same_id"), on="_seq", how="anti")
        found = _members(rows, "dedup_key", dup_of="concept_id").select("_seq", "dup_of", pl.lit("duplicate").alias("dup_kind"))
        return self._found(found, "exact", p)

    def _found(self, found: pl.LazyFrame, kind: str, p: int) -> str:
        table = found.collect(engine="streaming").cast(DUPLICATES_SCHEMA).to_arrow()  # type: ignore[arg-type]
        write_parquet(table, self.root / "found" / kind / f"p{p:04d}.parquet", table.schema)
        return json.dumps({"found": table.num_rows})

    def _done(self, *kinds: str) -> pl.LazyFrame:
        return _seqs([f for k in kinds for f in sorted((self.root / "found" / k).glob("*.parquet"))])

    # 4. near: candidate pairs -----------------------------------------------------------------
    def near(self, p: int) -> str:
        done = self._done("same_id", "exact").collect().lazy()
        bands = self.cfg.dedup.bands
        files = _open_parts(self.root / "bands", "bands")  # each map unit's file index parsed once, not once a band
        found = []
        for b in range(bands):  # one band's keys in memory at a time: 1/bands of the partition
            keyed = _frame("bands", files.read(p * bands + b)).join(done, on="_seq", how="anti").collect().lazy()
            groups = _first_of_groups(keyed, ["k"])
            found.append(keyed.join(groups, on="k").filter(pl.col("_seq") != pl.col("_rep")).select("_rep", "_seq"))
        pairs = pl.concat(found).unique().collect(engine="streaming")
        self._put(pairs, "_rep", "pairs-by-rep", f"n{p:04d}")
        return json.dumps({"pairs": pairs.height})

    # 5. attach the first row's text, then confirm with the second's --------------------------------
    def attach(self, q: int) -> str:
        pairs = self._get("pairs-by-rep", q).unique()
        texts = self._texts(q).select(_rep="_seq", cid_rep="concept_id", t_rep="t")
        attached = pairs.join(texts, on="_rep").collect(engine="streaming")
        self._put(attached, "_seq", "pairs-by-seq", f"a{q:04d}")
        return json.dumps({"candidates": attached.height})

    def confirm(self, r: int) -> str:
        pairs = self._get("pairs-by-seq", r).join(self._texts(r), on="_seq").sort("_rep").collect()
        ok = similar_pairs(pairs["t_rep"], pairs["t"], self.cfg.dedup.ngram, self.cfg.dedup.threshold)
        confirmed = pairs.filter(pl.Series(ok, dtype=pl.Boolean)).select("_rep", "_seq", "cid_rep", cid=pl.col("concept_id"))
        table = confirmed.to_arrow()
        write_parquet(table, self.root / "found" / "near-pairs" / f"p{r:04d}.parquet", table.schema)
        return json.dumps({"confirmed": confirmed.height})

    # 6. the clusters of the confirmed pairs, and every duplicate sorted by _seq ---------------------
    def collect(self, _: int) -> str:
        """One unit: the near-duplicate clusters and the result file, written where the unit runs (on
        Ray, a worker), so the process that drives the build never holds the list of duplicates."""
        found = [pl.read_parquet(f) for k in ("same_id", "exact") for f in sorted((self.root / "found" / k).glob("*.parquet"))]
        pairs = sorted((self.root / "found" / "near-pairs").glob("*.parquet"))
        near = _components(pl.concat([pl.read_parquet(f) for f in pairs])) if pairs else pl.DataFrame(schema=DUPLICATES_SCHEMA)
        dups = pl.concat([f.cast(DUPLICATES_SCHEMA) for f in [*found, near]]).sort("_seq")  # type: ignore[arg-type]
        table = dups.to_arrow()
        write_parquet(table, Path(self.out), table.schema, row_group_size=self.row_group_size)
        return json.dumps(dict(dups.group_by("dup_kind").len().sort("dup_kind").iter_rows()))

    def _texts(self, p: int) -> pl.LazyFrame:
        return self._get("texts", p)


def _first_of_groups(rows: pl.LazyFrame, key: list[str]) -> pl.LazyFrame:
    """``key`` and ``_rep`` (the smallest ``_seq``) of every value of ``key`` shared by two rows or more."""
    grouped = rows.group_by(key).agg(pl.col("_seq").min().alias("_rep"), pl.len().alias("_n"))
    return grouped.filter(pl.col("_n") > 1).select(*key, "_rep").collect(engine="streaming").lazy()


def _members(rows: pl.LazyFrame, key: str, **rep: str) -> pl.LazyFrame:
    """The rows that share ``key`` with an earlier row, each with ``_rep`` (its group's first row) and
    that row's columns named in ``rep`` (``alias=column``)."""
    groups = _first_of_groups(rows, [key])
    reps = rows.join(groups.select(_seq="_rep"), on="_seq", how="semi").select(_rep="_seq", **rep)
    return rows.join(groups, on=key).filter(pl.col("_seq") != pl.col("_rep")).join(reps, on="_rep")


def _components(pairs: pl.DataFrame) -> pl.DataFrame:
    """``_seq`` -> ``dup_of`` for confirmed pairs: each connected component's first row is its representative.

    Rows get dense indices in ``_seq`` order; every index takes the smallest label of its pairs, and
    labels jump to their label's label, until nothing changes (NumPy arrays, 8 bytes per row).
    """
    if not pairs.height:
        return pl.DataFrame(schema=DUPLICATES_SCHEMA)
    seqs = pl.concat([pairs["_rep"], pairs["_seq"]]).unique().sort()
    index = pl.DataFrame({"_seq": seqs, "_i": pl.int_range(seqs.len(), dtype=pl.Int64, eager=True)})
    a = pairs.select(pl.col("_rep").alias("_seq")).join(index, on="_seq", maintain_order="left")["_i"].to_numpy()
    b = pairs.select("_seq").join(index, on="_seq", maintain_order="left")["_i"].to_numpy()
    label = np.arange(seqs.len(), dtype=np.int64)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    ids = pl.concat([pairs.select(pl.col("_rep").alias("_seq"), pl.col("cid_rep").alias("cid")), pairs.select("_seq", "cid")])
    members = pl.DataFrame({"_seq": seqs, "_root": seqs.gather(label)}).filter(pl.col("_seq") != pl.col("_root"))
    return (
        members.join(ids.unique("_seq").select(pl.col("_seq").alias("_root"), pl.col("cid").alias("dup_of")), on="_root")
        .select("_seq", "dup_of", pl.lit("near_duplicate").alias("dup_kind"))
        .cast(DUPLICATES_SCHEMA)
    )


def write_duplicates(
    staged: Sequence[Path],
    cfg: BuildConfig,
    work: Path,
    out: Path,
    executor: Executor | None = None,
    stats: StepStats | None = None,
    parts: int | None = None,
    progress: Progress | None = None,
    row_group_size: int | None = None,
) -> dict[str, int]:
    """Find the duplicates among the source rows of the ``staged`` batch files (``_seq``,
    ``concept_id``, ``lang``, ``dedup_key``, ``lsh_bands`` and the text fields) by units on
    ``executor`` (default: this process), their files under ``work`` (removed at the end), and write
    them to the Parquet file ``out`` in row groups of ``row_group_size`` rows; returns the count of
    each ``dup_kind``.

    ``out`` holds one row per duplicate concept, sorted by ``_seq``: ``dup_of`` (the ``concept_id``
    it duplicates) and ``dup_kind``: ``duplicate_id`` (same id, different text), ``duplicate`` (same
    text) or ``near_duplicate`` (Jaccard similarity of n-grams >= threshold). ``parts`` is ``P``
    (default: :func:`partition_count` of the staged rows); ``progress`` shows a bar of the units.
    """
    executor = executor or LocalExecutor()
    stats = stats or StepStats()
    shutil.rmtree(work, ignore_errors=True)
    heights = [pl.scan_parquet(f).select(pl.len()).collect().item() for f in staged]
    parts = parts or partition_count(sum(heights) // max(1, len(cfg.langs)), executor.parallelism)
    jobs = _Jobs(tuple(map(str, staged)), _map_groups(heights, len(cfg.langs)), cfg, str(work), parts, str(out), row_group_size)
    d = cfg.dedup
    units = len(jobs.groups) + parts * (1 + d.exact + 3 * d.near) + 1
    with (progress or Progress(enabled=False)).task("find duplicates", unit="units", total=units) as bar, stats.timed(0):

        def run(fn: Callable[[int], str], n: int, name: str) -> list[dict[str, int]]:
            out = []
            for doc in executor.map([Stage(name, fn=fn)], range(n)):
                out.append(json.loads(doc))
                bar.advance(1)
            return out

        stats.rows += sum(r["rows"] for r in run(jobs.map, len(jobs.groups), "dedup_map"))
        run(jobs.same_id, parts, "dedup_same_id")
        if d.exact:
            run(jobs.exact, parts, "dedup_exact")
        if d.near:
            run(jobs.near, parts, "dedup_near")
            stats.count("near_candidate_pairs", sum(r["candidates"] for r in run(jobs.attach, parts, "dedup_attach")))
            stats.count("near_confirmed_pairs", sum(r["confirmed"] for r in run(jobs.confirm, parts, "dedup_confirm")))
        (counts,) = run(jobs.collect, 1, "dedup_collect")
        for kind, n in counts.items():
            stats.count(kind, n)
    shutil.rmtree(work, ignore_errors=True)
    return counts


def find_duplicates(
    staged: Sequence[Path],
    cfg: BuildConfig,
    work: Path,
    executor: Executor | None = None,
    stats: StepStats | None = None,
    parts: int | None = None,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """:func:`write_duplicates`, the result read back as a frame (for callers that want it in memory)."""
    out = work.with_name(work.name + ".duplicates.parquet")
    write_duplicates(staged, cfg, work, out, executor, stats, parts, progress)
    try:
        return pl.read_parquet(out)
    finally:
        out.unlink(missing_ok=True)


def _map_groups(heights: Sequence[int], n_langs: int) -> tuple[tuple[int, int], ...]:
    """Consecutive staged batches, cut so that a group holds at most :data:`ROWS_PER_MAP_UNIT` source rows."""
    groups: list[tuple[int, int]] = []
    lo = rows = 0
    for i, h in enumerate(heights):
        if i > lo and rows + h // max(1, n_langs) > ROWS_PER_MAP_UNIT:
            groups.append((lo, i))
            lo, rows = i, 0
        rows += h // max(1, n_langs)
    if heights:
        groups.append((lo, len(heights)))
    return tuple(groups)
