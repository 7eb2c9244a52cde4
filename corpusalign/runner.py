"""The runner: carries input records through the steps into concept-keyed shards.

Vocabulary: an **input** is a file (or dataset directory) of records; a **batch** is ``batch_size``
consecutive input records, expanded to one row per concept and language; a **step** transforms a
batch (:mod:`corpusalign.steps.base`); a **shard** is an output Parquet file.

A build runs in four stages, each resumable, all working files under ``OUTPUT/_work``:

1. (a) per input file, on the executor: its records -> rows in chunks (``_work/read/``), the
   records that cannot be read kept for quarantine (:mod:`corpusalign.read.units`); (b) per batch,
   on the executor: the batch's rows from those chunks (record ordinals run across the inputs),
   its quarantine written, then translate -> normalise -> language-ID -> dedup signatures ->
   verify, staged as ``_work/stage1/part-N.parquet`` (written last);
2. find duplicates over all staged batches, in partitioned units on the executor
   (:mod:`corpusalign.steps.duplicates`; ``_work/duplicates.parquet``);
3. per group of consecutive staged batches (:data:`ROWS_PER_SELECT_UNIT` rows), on the executor:
   attach duplicates -> select, batch by batch; rejected rows to ``rejected/`` (a file per batch),
   kept rows to one file of hash-of-``concept_id`` buckets (``_work/buckets/part-N.arrow``);
4. per run of buckets (up to ten), on the executor: the index of each bucket file read once, then
   bucket by bucket its piece of every file; sort, cut into shards between concepts, write ``shards/``.

Then ``stats.json`` and, last, ``manifest.json``. The executor (:mod:`corpusalign.execute`) is this
process (``local``) or a Ray cluster (``ray``); the units and the files they write are the same.
An interrupted build run again with the same inputs and configuration skips every finished unit and
writes the same shards as an uninterrupted run. A lock file keeps two builds out of one output directory.

Example::

    result = build(load_config(src="en", tgt=("de",)), ["corpus.jsonl"], "out/")
    result.manifest["accounting"]["ok"]  # True
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from corpusalign._version import __version__
from corpusalign.config import BuildConfig
from corpusalign.execute import Executor, ExecutorOptions, Stage, make_executor
from corpusalign.progress import Progress
from corpusalign.read.formats import list_inputs
from corpusalign.read.units import ReadFileJob, assemble_batch
from corpusalign.stats import RunStats, StepStats
from corpusalign.steps.base import Step, check_wiring
from corpusalign.steps.dedup import DUPLICATES_SCHEMA, DedupSignatureStep
from corpusalign.steps.duplicates import write_duplicates
from corpusalign.steps.langid import LanguageIdStep
from corpusalign.steps.normalise import NormaliseStep
from corpusalign.steps.select import SelectStep
from corpusalign.steps.translate import TranslateStep
from corpusalign.steps.verify import SkipVerifyStep, VerifyStep
from corpusalign.store import manifest as mf
from corpusalign.store.files import TMP_SUFFIX, remove_temporaries, write_json, write_parquet
from corpusalign.store.schema import QUARANTINE_SCHEMA, REJECTED_SCHEMA, SCHEMA_VERSION, SHARD_SCHEMA, TEXT_FIELDS, conform
from corpusalign.store.shards import (
    QUARANTINE_DIR,
    REJECTED_DIR,
    bucket_count,
    open_buckets,
    read_bucket,
    shard_name,
    shard_units,
    split_bucket,
    write_buckets,
)
from corpusalign.translate import make_translator

log = logging.getLogger(__name__)

WORK = "_work"
#: Version of what an unfinished build keeps in ``_work/`` (files and columns). A resume needs the
#: same one: bump it when that changes (2: separate read stage; verify adds prefix_gain/source_gap;
#: 3: inputs read per file, stage 2 in partitioned units under _work/dedup; 4: one bucket file per
#: stage-3 unit, _work/buckets/part-N.arrow).
WORK_LAYOUT = 4
#: Staged rows (records x languages) of a stage-3 unit, consecutive batches: its one bucket file holds
#: their kept rows, and stage 4 reads (units x buckets) record batches, so larger units mean fewer,
#: larger reads (a unit per 10,000-record batch made stage 4 read 300,000 of ~85 rows at 10M concepts).
ROWS_PER_SELECT_UNIT = 150_000
LOCK = ".lock"
#: Ray's own log (its loggers, Ray Data's, what its workers print) of a build on ``--executor ray``,
#: appended to by every run; kept after the build, since ``_work/`` is not.
RAY_LOG = "logs/ray.log"


class BuildError(RuntimeError):
    """A build cannot start or continue; the message says what to do."""


class AttachDuplicatesStep(Step):
    """Adds ``dup_of`` and ``dup_kind`` from the duplicates found in stage 2 (null when unique)."""

    name = "attach_duplicates"
    reads = ("_seq",)
    adds = ("dup_of", "dup_kind")

    def __init__(self, duplicates: pl.DataFrame) -> None:
        self.duplicates = duplicates

    def process(self, batch: pl.DataFrame, stats: StepStats) -> pl.DataFrame:
        with stats.timed(batch.height):
            return batch.join(self.duplicates, on="_seq", how="left", maintain_order="left")


@dataclass
class _Unit:
    """A batch on its way through stage 1: its index, its rows and the statistics of its steps.

    Between stages it travels as a plain record (:meth:`to_record`): the index, the rows as Arrow
    IPC bytes and the statistics as JSON, so the Ray executor stores it as three Arrow columns.
    """

    index: int
    batch: pl.DataFrame
    stats: RunStats = field(default_factory=RunStats)

    def to_record(self) -> dict[str, Any]:
        buf = io.BytesIO()
        self.batch.write_ipc(buf, compression="uncompressed")
        return {"index": self.index, "batch": buf.getvalue(), "stats": json.dumps(self.stats.to_dict())}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> _Unit:
        batch = pl.read_ipc(io.BytesIO(record["batch"]))
        return cls(int(record["index"]), batch, RunStats.from_dict(json.loads(record["stats"])))


@dataclass(frozen=True)
class _LoadJob:
    """Stage 1b's first stage for batch ``i``: its rows from the files read in stage 1a; its quarantine
    entries and read counts written beside (:func:`~corpusalign.read.units.assemble_batch`)."""

    out: Path
    counts: tuple[int, ...]
    batch_size: int

    def __call__(self, i: int) -> dict[str, Any]:
        work = self.out / WORK
        batch, quarantined, n = assemble_batch(work / "read", self.counts, self.batch_size, i)
        qpath = self.out / QUARANTINE_DIR / f"part-{i:06d}.parquet"
        if quarantined:
            write_parquet(pa.Table.from_pylist(quarantined, schema=QUARANTINE_SCHEMA), qpath, QUARANTINE_SCHEMA)
        else:
            qpath.unlink(missing_ok=True)
        run = RunStats()
        run["read"].count("records", n)
        run["read"].count("quarantined", len(quarantined))
        write_json({"items": n, "stats": run.to_dict()}, work / "stats" / f"read-{i:06d}.json")
        return _Unit(i, batch).to_record()


def _run_steps(steps: tuple[Step, ...], record: dict[str, Any]) -> dict[str, Any]:
    unit = _Unit.from_record(record)
    for step in steps:
        unit.batch = step.process(unit.batch, unit.stats[step.name])
    return unit.to_record()


def _set_up(steps: tuple[Step, ...]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A model stage's factory: load the models once per worker, then run the steps on each unit."""
    for step in steps:
        step.setup()
    return partial(_run_steps, steps)


def _write_staged(work: Path, record: dict[str, Any]) -> dict[str, int]:
    """Stage a scored batch (its statistics first, the part last); returns its index and the texts embedded."""
    unit = _Unit.from_record(record)
    write_json({"stats": unit.stats.to_dict()}, work / "stats" / f"stage1-{unit.index:06d}.json")
    staged = unit.batch.to_arrow()
    write_parquet(staged, work / "stage1" / f"part-{unit.index:06d}.parquet", staged.schema)
    verify = unit.stats.steps.get("verify")
    return {"index": unit.index, "embedded": int(verify.counters.get("texts_embedded", 0)) if verify else 0}


def bucket_file(work: Path, u: int) -> Path:
    """Stage-3 unit ``u``'s kept rows, by bucket (written by stage 3, read by stage 4)."""
    return work / "buckets" / f"part-{u:06d}.arrow"


def select_units(n_batches: int, batch_size: int, n_langs: int) -> tuple[tuple[int, int], ...]:
    """Stage 3's units: ``(first, end)`` of consecutive batches holding at most
    :data:`ROWS_PER_SELECT_UNIT` staged rows (one batch at least)."""
    per = max(1, ROWS_PER_SELECT_UNIT // max(1, batch_size * n_langs))
    return tuple((lo, min(lo + per, n_batches)) for lo in range(0, n_batches, per))


@dataclass(frozen=True)
class _SelectJob:
    """Stage 3 for consecutive staged batches: attach duplicates and select, batch by batch; write each
    batch's rejected rows, then one bucket file of the kept rows of them all."""

    out: Path
    cfg: BuildConfig
    n_buckets: int
    steps: tuple[Step, ...]
    units: tuple[tuple[int, int], ...]

    def __call__(self, u: int) -> str:
        """Returns the unit's step statistics as JSON (a plain value, as every executor wants)."""
        work = self.out / WORK
        run = RunStats()
        parts = [work / "stage1" / f"part-{i:06d}.parquet" for i in range(*self.units[u])]
        lo, hi = pl.scan_parquet(parts).select(lo=pl.col("_seq").min(), hi=pl.col("_seq").max()).collect().row(0)
        duplicates = pl.DataFrame(schema=DUPLICATES_SCHEMA)
        if lo is not None:  # duplicates.parquet is sorted by _seq: this reads only the row groups of these batches
            duplicates = pl.scan_parquet(work / "duplicates.parquet").filter(pl.col("_seq").is_between(lo, hi)).collect()
        kept: list[pa.Table] = []
        for i, part in zip(range(*self.units[u]), parts, strict=True):
            batch = pl.read_parquet(part)
            for step in (AttachDuplicatesStep(duplicates), *self.steps):
                batch = step.process(batch, run[step.name])
            rejected = batch.filter(pl.col("drop_reason").is_not_null())
            rpath = self.out / REJECTED_DIR / f"part-{i:06d}.parquet"
            if rejected.height:
                write_parquet(rejected.to_arrow(), rpath, REJECTED_SCHEMA)
            else:
                rpath.unlink(missing_ok=True)
            kept.append(conform(batch.filter(pl.col("drop_reason").is_null()).to_arrow(), SHARD_SCHEMA))
            del batch, rejected
        write_buckets(kept, self.n_buckets, bucket_file(work, u))
        doc = run.to_dict()
        write_json(doc, work / "stats" / f"stage3-{u:06d}.json")
        return json.dumps(doc)


@dataclass(frozen=True)
class _ShardJob:
    """Stage 4 for a run of buckets (:func:`~corpusalign.store.shards.shard_units`), each in turn: sort
    it, cut it into shards between concepts, write them and the bucket's marker."""

    out: Path
    cfg: BuildConfig
    n_files: int
    units: tuple[tuple[int, ...], ...]

    def __call__(self, u: int) -> str:
        """Returns ``[{"bucket", "shards", "stats"}, ...]`` as JSON (a plain value, as every executor wants)."""
        work = self.out / WORK
        files = open_buckets([bucket_file(work, f) for f in range(self.n_files)])
        results = []
        for b in self.units[u]:
            run = RunStats()
            rows = read_bucket(files, b)
            written: list[str] = []
            if rows.height:
                stats = run["write_shards"]
                with stats.timed(rows.height):
                    for k, piece in enumerate(split_bucket(rows, self.cfg.shards)):
                        rel = shard_name(b, k)
                        write_parquet(piece.to_arrow(), self.out / rel, SHARD_SCHEMA)
                        written.append(rel)
                stats.count("bytes_written", sum((self.out / rel).stat().st_size for rel in written))
            del rows
            done = {"shards": written, "stats": run.to_dict()}
            write_json(done, work / "shards" / f"b{b:05d}.json")
            results.append({"bucket": b, **done})
        return json.dumps(results)


@dataclass
class Plan:
    """What a build will do, resolved and checked, before any model is loaded."""

    cfg: BuildConfig
    inputs: list[Path]
    output: Path
    batch_steps: list[Step]
    select_steps: list[Step]

    def describe(self) -> str:
        lines = [
            f"corpusalign {__version__} build plan",
            f"  source language: {self.cfg.src}; targets: {', '.join(self.cfg.tgt)}; fields: {', '.join(self.cfg.fields)}",
            f"  inputs ({len(self.inputs)}):",
            *(f"    {p}" for p in self.inputs[:20]),
            *([f"    ... and {len(self.inputs) - 20} more"] if len(self.inputs) > 20 else []),
            f"  output: {self.output}",
            f"  stage 1, per batch of {self.cfg.batch_size} records:",
            *(f"    {s.describe()}" for s in self.batch_steps),
            "  stage 2: find duplicates across all batches (ids, exact text, MinHash LSH), in hash partitions",
            "  stage 3, per batch:",
            *(f"    {s.describe()}" for s in self.select_steps),
            f"  stage 4: shards of at most {self.cfg.shards.max_rows} rows, bucketed by concept_id",
            "  configuration:",
            *("    " + line for line in json.dumps(self.cfg.to_dict(), indent=2).splitlines()),
        ]
        return "\n".join(lines)


@dataclass
class BuildResult:
    output: Path
    manifest: dict[str, Any]
    seconds: float
    resumed: bool
    up_to_date: bool = False


def make_plan(cfg: BuildConfig, inputs: Sequence[str | Path], output: str | Path) -> Plan:
    """Resolve inputs and steps and check the wiring. Raises :class:`BuildError` on a bad plan."""
    if not inputs:
        raise BuildError("no input given")
    missing = [str(p) for p in inputs if not Path(p).exists()]
    if missing:
        raise BuildError(f"input not found: {', '.join(missing)}")
    files = list_inputs(inputs)
    if not files:
        raise BuildError(f"no input files found in {', '.join(map(str, inputs))}")
    for mem in cfg.translate.memory:
        if not Path(mem).exists():
            raise BuildError(f"translation memory not found: {mem}")
    if cfg.verify.enabled:
        from corpusalign.embed import make_embedder

        verify: Step = VerifyStep(make_embedder(cfg.verify.embedder, cfg.verify.batch_size, cfg.verify.device), cfg)
    else:
        verify = SkipVerifyStep()
    translator = make_translator(cfg)
    translator.check()  # a model that is not on this machine fails here, before any work
    batch_steps: list[Step] = [
        TranslateStep(translator, cfg),
        NormaliseStep(cfg.normalise),
        LanguageIdStep(cfg),
        DedupSignatureStep(cfg),
        verify,
    ]
    select_steps: list[Step] = [AttachDuplicatesStep(pl.DataFrame(schema=DUPLICATES_SCHEMA)), SelectStep(cfg)]
    check_wiring([*batch_steps, *select_steps])
    return Plan(cfg, files, Path(output), batch_steps, select_steps)


@contextmanager
def output_lock(output: Path) -> Iterator[None]:
    output.mkdir(parents=True, exist_ok=True)
    with open(output / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildError(
                f"another build is writing to {output} (lock {output / LOCK}); wait for it or pick another --output"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _failed_translations(manifest: dict[str, Any]) -> int:
    return int((manifest.get("translation") or {}).get("failed") or 0)


def _fingerprint(cfg: BuildConfig, inputs: Sequence[Path]) -> str:
    parts: list[Any] = [cfg.to_dict(), SCHEMA_VERSION]
    if cfg.verify.enabled:  # the engine that embeds: "e5" runs natively or in torch, which agree only closely
        from corpusalign.embed.registry import resolve_spec

        parts.append({"embedding_engine": resolve_spec(cfg.verify.embedder)})
    for p in inputs:
        try:
            st = p.stat()
        except OSError:  # a broken symbolic link: quarantined by the reader, fingerprinted as the link
            st = p.lstat()
        parts.append([str(p.resolve()), st.st_size, int(st.st_mtime)])
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _row_counts(paths: Sequence[Path], outer: pl.Expr, inner: pl.Expr) -> dict[str, dict[str, int]]:
    """``{outer value: {inner value: rows}}`` over the Parquet files ``paths``, streamed, both levels sorted."""
    if not paths:
        return {}
    counts = (
        pl.scan_parquet(list(paths))
        .select(outer.alias("outer"), inner.alias("inner"))
        .group_by("outer", "inner")
        .len()
        .collect(engine="streaming")
    )
    out: dict[str, dict[str, int]] = {}
    for a, b, n in counts.sort("outer", "inner").iter_rows():
        out.setdefault(a, {})[b] = n
    return out


def build(
    cfg: BuildConfig,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    overwrite: bool = False,
    keep_work: bool = False,
    progress: bool = True,
    executor: ExecutorOptions | None = None,
) -> BuildResult:
    """Run a whole build (or finish an interrupted one) and return its manifest.

    ``executor`` says where the per-batch and per-bucket work runs (default: this process).
    """
    plan = make_plan(cfg, inputs, output)
    return Runner(plan, overwrite=overwrite, keep_work=keep_work, progress=progress, executor=executor).run()


class Runner:
    def __init__(
        self,
        plan: Plan,
        *,
        overwrite: bool = False,
        keep_work: bool = False,
        progress: bool = True,
        executor: ExecutorOptions | None = None,
    ) -> None:
        self.plan = plan
        self.executor_options = executor or ExecutorOptions()
        self.cfg = plan.cfg
        self.out = plan.output.absolute()  # the units may run in other processes, in other directories
        self.work = self.out / WORK
        self.overwrite = overwrite
        self.keep_work = keep_work
        self.progress = Progress(enabled=progress)
        self.stats = RunStats()
        self.fingerprint = self._make_fingerprint()

    def _make_fingerprint(self) -> str:
        """What the manifest's ``build_fingerprint`` holds: config, schema version, the embedding engine
        (verification on) and the inputs' paths, sizes, mtimes."""
        return _fingerprint(self.cfg, self.plan.inputs)

    def _manifest_extra(self) -> dict[str, Any]:
        """More manifest keys (a build has none; ``corpusalign reselect`` adds ``reselected_from``)."""
        return {}

    # ----------------------------------------------------------------------------------------------
    def run(self) -> BuildResult:
        start = time.perf_counter()
        with output_lock(self.out):
            done = self._up_to_date()
            if done is not None:
                if not self.keep_work:  # a build killed after its manifest, before removing its _work/
                    shutil.rmtree(self.work, ignore_errors=True)
                self.progress.note(f"{self.out} is up to date: same inputs and configuration as its manifest")
                return BuildResult(self.out, done, time.perf_counter() - start, resumed=False, up_to_date=True)
            resumed = self._prepare()
            with make_executor(self._where()) as executor:
                try:
                    n_batches, n_items = self._stage1(executor)
                finally:  # translators hold models, connections or thread pools; stage 1 is their only user
                    for step in self.plan.batch_steps:
                        if isinstance(step, TranslateStep):
                            step.translator.close()
                self._stage2(executor)
                n_buckets, n_files = self._stage3(executor, n_batches)
                shards = self._stage4(executor, n_files, n_buckets)
            manifest = self._finish(n_batches, n_items, shards, time.perf_counter() - start)
        return BuildResult(self.out, manifest, time.perf_counter() - start, resumed)

    def _where(self) -> ExecutorOptions:
        """The executor options, with Ray's own log in ``OUTPUT/logs/ray.log`` unless they name another file."""
        options = self.executor_options
        if options.name == "ray" and options.log_file is None:
            options = replace(options, log_file=self.out / RAY_LOG)
        if options.log_file is not None:
            self.progress.note(f"Ray's own log: {options.log_file}")
        return options

    def _up_to_date(self) -> dict[str, Any] | None:
        """The existing manifest, if it was built from these very inputs and configuration."""
        if self.overwrite or not (self.out / mf.MANIFEST).exists():
            return None
        try:
            manifest = mf.read_manifest(self.out)
        except ValueError:
            return None
        if manifest.get("build_fingerprint") != self.fingerprint:
            return None
        if _failed_translations(manifest):
            return None  # the same command again retries them (the translation cache answers the rest)
        return manifest

    def _retry_failed_translations(self) -> bool:
        """The output holds this very build, finished with failed translations."""
        try:
            manifest = mf.read_manifest(self.out)
        except (FileNotFoundError, ValueError):
            return False
        return manifest.get("build_fingerprint") == self.fingerprint and _failed_translations(manifest) > 0

    def _prepare(self) -> bool:
        fingerprint = self.fingerprint
        state_path = self.work / "state.json"
        # a _work/ holding nothing but temporaries is a build killed while writing its state.json: not output
        has_output = any((self.out / d).exists() for d in (mf.MANIFEST, "shards", REJECTED_DIR, QUARANTINE_DIR)) or any(
            p.is_file() and not p.name.endswith(TMP_SUFFIX) for p in self.work.rglob("*")
        )
        if self.overwrite:
            for d in ("shards", REJECTED_DIR, QUARANTINE_DIR, WORK):
                shutil.rmtree(self.out / d, ignore_errors=True)
            for f in (mf.MANIFEST, mf.STATS):
                (self.out / f).unlink(missing_ok=True)
        elif state_path.exists():
            state = json.loads(state_path.read_text())
            if state.get("layout", 1) != WORK_LAYOUT:
                raise BuildError(
                    f"{self.out} holds an unfinished build from another corpusalign version (work layout "
                    f"{state.get('layout', 1)}, this version uses {WORK_LAYOUT}); it cannot be resumed: "
                    "pass --overwrite to start again"
                )
            if state.get("fingerprint") != fingerprint:
                raise BuildError(
                    f"{self.out} holds an unfinished build with other inputs or configuration; "
                    "rerun with the same ones to resume, or pass --overwrite to start again"
                )
            removed = remove_temporaries(self.out)
            log.info("resuming the build in %s (%d partial files removed)", self.out, removed)
            self.progress.note(f"Resuming the unfinished build in {self.out}")
            return True
        elif has_output and self._retry_failed_translations():
            n = _failed_translations(mf.read_manifest(self.out))
            self.progress.note(f"Retrying {n:,} failed translation(s) of the corpus in {self.out}")
            for d in ("shards", REJECTED_DIR, QUARANTINE_DIR, WORK):
                shutil.rmtree(self.out / d, ignore_errors=True)
            for f in (mf.MANIFEST, mf.STATS):
                (self.out / f).unlink(missing_ok=True)
        elif has_output:
            raise BuildError(f"{self.out} already holds a corpus; pass --overwrite to replace it or pick another --output")
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json({"fingerprint": fingerprint, "layout": WORK_LAYOUT, "started": started}, state_path)
        return False

    # ---------------------------------------------------------------- stage 1: read and score batches
    def _stage1(self, executor: Executor) -> tuple[int, int]:
        done_path = self.work / "stage1.done.json"
        if done_path.exists():
            done = json.loads(done_path.read_text())
            self._load_batch_stats(done["batches"])
            return done["batches"], done["items"]
        n_batches, n_items, counts = self._read(executor)
        stage_dir = self.work / "stage1"
        todo = [i for i in range(n_batches) if not (stage_dir / f"part-{i:06d}.parquet").exists()]
        verify = next((s for s in self.plan.batch_steps if isinstance(s, VerifyStep)), None)
        with (
            self.progress.task("translate, normalise, language-ID, verify", unit="batches", total=n_batches) as bar,
            self.progress.task("  embed texts", unit="texts") as embed_bar,
        ):
            bar.advance(n_batches - len(todo))
            if verify is not None and executor.in_process:
                verify.on_progress = embed_bar.advance
            for staged in executor.map(self._score_stages(executor, counts), todo):
                if not executor.in_process:
                    embed_bar.advance(staged["embedded"])
                bar.advance(1)
        write_json({"batches": n_batches, "items": n_items}, done_path)
        shutil.rmtree(self.work / "read", ignore_errors=True)
        self._load_batch_stats(n_batches)
        return n_batches, n_items

    def _read(self, executor: Executor) -> tuple[int, int, list[int]]:
        """Stage 1a: every input file read into chunks under ``_work/read/`` by a unit of its own
        (:mod:`corpusalign.read.units`); returns the batches, the records and each file's records."""
        done_path = self.work / "read.done.json"
        if done_path.exists():
            done = json.loads(done_path.read_text())
            return done["batches"], done["items"], done["counts"]
        files = self.plan.inputs
        counts = [0] * len(files)
        with self.progress.task("read", unit="records") as bar:
            job = ReadFileJob(self.work / "read", tuple(files), self.cfg, self.work / "stats", Path.cwd())
            for doc in executor.map([Stage("read", fn=job)], range(len(files))):
                done = json.loads(doc)
                counts[done["file"]] = done["items"]
                bar.advance(done["items"])
        n_items = sum(counts)
        n_batches = -(-n_items // self.cfg.batch_size)
        write_json({"batches": n_batches, "items": n_items, "counts": counts}, done_path)
        return n_batches, n_items, counts

    def _score_stages(self, executor: Executor, counts: Sequence[int]) -> list[Stage]:
        """Stage 1b as a chain: load the read batch, the steps (each model step its own stage), stage it."""
        stages = [Stage("load", fn=_LoadJob(self.out, tuple(counts), self.cfg.batch_size))]
        cpu: list[Step] = []
        for step in self.plan.batch_steps:
            if not step.holds_model:
                cpu.append(step)
                continue
            if cpu:
                stages.append(Stage("+".join(s.name for s in cpu), fn=partial(_run_steps, tuple(cpu))))
                cpu = []
            gpus = self.executor_options.gpus_per_worker if step.wants_gpu else 0.0
            stages.append(Stage(step.name, factory=partial(_set_up, (step,)), gpus=gpus))
        if cpu:
            stages.append(Stage("+".join(s.name for s in cpu), fn=partial(_run_steps, tuple(cpu))))
        stages.append(Stage("stage", fn=partial(_write_staged, self.work)))
        return stages

    def _load_batch_stats(self, n_batches: int) -> None:
        for path in sorted((self.work / "stats").glob("read-file-*.json")):
            self.stats = self.stats.merge(RunStats.from_dict(json.loads(path.read_text())["stats"]))
        for i in range(n_batches):
            for name in (f"read-{i:06d}.json", f"stage1-{i:06d}.json"):
                d = json.loads((self.work / "stats" / name).read_text())
                self.stats = self.stats.merge(RunStats.from_dict(d["stats"]))

    # ---------------------------------------------------------------- stage 2: duplicates
    def _stage2(self, executor: Executor) -> None:
        path = self.work / "duplicates.parquet"
        stats_path = self.work / "stats" / "dedup.json"
        if path.exists() and stats_path.exists():
            self.stats.steps["dedup"] = StepStats.from_dict(json.loads(stats_path.read_text()))
            return
        staged = sorted((self.work / "stage1").glob("part-*.parquet"))
        # sorted by _seq in row groups of at most a batch: a stage-3 unit reads only its batches' groups
        # (one file of every duplicate, read whole by every batch, made stage 3 quadratic in the corpus)
        write_duplicates(
            staged,
            self.cfg,
            self.work / "dedup",
            path,
            executor,
            self.stats["dedup"],
            progress=self.progress,
            row_group_size=self.cfg.batch_size,
        )
        write_json(self.stats["dedup"].to_dict(), stats_path)

    # ---------------------------------------------------------------- stage 3: select and bucket
    def _stage3(self, executor: Executor, n_batches: int) -> tuple[int, int]:
        """Returns ``(buckets, bucket files)``."""
        buckets_path = self.work / "buckets.json"
        if buckets_path.exists():
            n_buckets = json.loads(buckets_path.read_text())["buckets"]
        else:
            staged_rows = sum(s.rows for name, s in self.stats.steps.items() if name == "normalise")
            n_buckets = bucket_count(staged_rows, self.cfg.shards)
            write_json({"buckets": n_buckets}, buckets_path)
        units = select_units(n_batches, self.cfg.batch_size, len(self.cfg.langs))
        job = _SelectJob(self.out, self.cfg, n_buckets, tuple(self.plan.select_steps[1:]), units)
        todo: list[int] = []
        with self.progress.task("select and bucket", unit="batches", total=n_batches) as bar:
            for u, (lo, hi) in enumerate(units):
                marker = self.work / "stats" / f"stage3-{u:06d}.json"
                if marker.exists():
                    self.stats = self.stats.merge(RunStats.from_dict(json.loads(marker.read_text())))
                    bar.advance(hi - lo)
                else:
                    todo.append(u)
            for u, run in zip(todo, executor.map([Stage("select", fn=job)], todo), strict=True):
                self.stats = self.stats.merge(RunStats.from_dict(json.loads(run)))
                bar.advance(units[u][1] - units[u][0])
        return n_buckets, len(units)

    # ---------------------------------------------------------------- stage 4: shards
    def _stage4(self, executor: Executor, n_files: int, n_buckets: int) -> list[str]:
        by_bucket: dict[int, list[str]] = {}
        todo: list[int] = []
        with self.progress.task("write shards", unit="buckets", total=n_buckets) as bar:
            for b in range(n_buckets):
                marker = self.work / "shards" / f"b{b:05d}.json"
                if marker.exists():
                    done = json.loads(marker.read_text())
                    by_bucket[b] = done["shards"]
                    self.stats = self.stats.merge(RunStats.from_dict(done.get("stats", {})))
                    bar.advance(1)
                else:
                    todo.append(b)
            units = shard_units(todo, executor.parallelism)
            job = _ShardJob(self.out, self.cfg, n_files, units)
            for results in map(json.loads, executor.map([Stage("write_shards", fn=job)], range(len(units)))):
                for done in results:
                    by_bucket[done["bucket"]] = done["shards"]
                    self.stats = self.stats.merge(RunStats.from_dict(done["stats"]))
                    bar.advance(1)
        return [rel for b in range(n_buckets) for rel in by_bucket[b]]

    # ---------------------------------------------------------------- manifest
    def _finish(self, n_batches: int, n_items: int, shards: list[str], seconds: float) -> dict[str, Any]:
        """Count what the shards hold, check the accounting, write stats.json and the sealed manifest."""
        shard_entries, rows_per_lang, concepts, complete = self._shard_counts(shards)
        rejected = [
            mf.file_entry(self.out, f"{REJECTED_DIR}/{p.name}") for p in sorted((self.out / REJECTED_DIR).glob("part-*.parquet"))
        ]
        quarantine = [
            mf.file_entry(self.out, f"{QUARANTINE_DIR}/{p.name}")
            for p in sorted((self.out / QUARANTINE_DIR).glob("part-*.parquet"))
        ]
        provenance = self._provenance(shards)
        drop_reasons = self._drop_reasons(rejected)
        acct = mf.accounting(
            input_records=n_items,
            quarantined=sum(e["rows"] for e in quarantine),
            n_langs=len(self.cfg.langs),
            kept_rows=sum(e["rows"] for e in shard_entries),
            rejected_rows=sum(e["rows"] for e in rejected),
        )
        translators, translation = self._translation_summary(drop_reasons)
        verification = self._verification_summary()
        stats_doc = {"build_seconds": round(seconds, 3), "steps": self.stats.to_dict()}
        write_json(stats_doc, self.out / mf.STATS)
        manifest = mf.seal(
            {
                "format": mf.FORMAT,
                "schema_version": SCHEMA_VERSION,
                "corpusalign_version": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "source_language": self.cfg.src,
                "languages": list(self.cfg.langs),
                "fields": list(self.cfg.fields),
                "text_fields": list(TEXT_FIELDS),
                "config": self.cfg.to_dict(),
                "inputs": [str(p) for p in self.plan.inputs],
                "build_fingerprint": self.fingerprint,  # config, schema version, input paths, sizes, mtimes
                **self._manifest_extra(),
                "translators": translators,
                # rows the translators were asked for; "failed" > 0 makes the same command retry them
                "translation": translation,
                "verification": verification,
                "counts": {
                    "concepts": concepts,
                    "complete_concepts": complete,
                    "rows": sum(rows_per_lang.values()),
                    "rows_per_lang": dict(sorted(rows_per_lang.items())),
                    # rows kept per language by "origin:translator" (source:-, human:tm, machine:seq2seq, ...)
                    "provenance_per_lang": provenance,
                },
                "drop_reasons": drop_reasons,
                "accounting": acct,
                "shards": shard_entries,
                "rejected": rejected,
                "quarantine": quarantine,
                "stats": mf.STATS,
            }
        )
        if not acct["ok"]:
            raise BuildError(f"accounting invariant violated, nothing lost must hold: {acct}")
        write_json(manifest, self.out / mf.MANIFEST)
        if not self.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)
        return manifest

    def _shard_counts(self, shards: list[str]) -> tuple[list[dict[str, Any]], dict[str, int], int, int]:
        """``(manifest entries, rows per language, concepts, concepts with every language)`` of the shards."""
        shard_entries = []
        rows_per_lang: dict[str, int] = {}
        concepts = 0
        complete = 0
        for rel in shards:
            table = pl.read_parquet(self.out / rel, columns=["concept_id", "lang"])
            per_lang = dict(table.group_by("lang").len().sort("lang").iter_rows())
            n_concepts = table["concept_id"].n_unique()
            langs_per_concept = table.group_by("concept_id").len()
            complete += int((langs_per_concept["len"] == len(self.cfg.langs)).sum())
            concepts += n_concepts
            for k, v in per_lang.items():
                rows_per_lang[k] = rows_per_lang.get(k, 0) + v
            shard_entries.append(mf.file_entry(self.out, rel, concepts=n_concepts, rows_per_lang=per_lang))
        return shard_entries, rows_per_lang, concepts, complete

    def _provenance(self, shards: list[str]) -> dict[str, dict[str, int]]:
        """Rows kept per language by ``origin:translator`` (``source:-``, ``human:tm``, ``machine:seq2seq``, ...)."""
        by = pl.format("{}:{}", "origin", pl.col("translator").fill_null("-"))
        return _row_counts([self.out / rel for rel in shards], pl.col("lang"), by)

    def _drop_reasons(self, rejected: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        """Rejected rows per drop reason and language."""
        return _row_counts([self.out / e["path"] for e in rejected], pl.col("drop_reason"), pl.col("lang"))

    def _translation_summary(self, drop_reasons: dict[str, dict[str, int]]) -> tuple[dict[str, Any], dict[str, int]]:
        """``(translators, translation)``: each translator's origin, model and parameters, and the rows the
        translators were asked for, filled, found in the cache and failed."""
        translators = {
            s.translator.name: {"origin": s.translator.origin, "model": s.translator.model, "params": s.translator.params or None}
            for s in self.plan.batch_steps
            if isinstance(s, TranslateStep)
        }
        tstats = self.stats.steps.get("translate")
        translation = {
            k: (tstats.counters.get(k, 0) if tstats else 0)
            for k in ("requested", "filled", "not_found", "cache_hits", "cache_misses")
        }
        translation["failed"] = sum(drop_reasons.get("translation_failed", {}).values())  # rows rejected for it
        return translators, translation

    def _verification_summary(self) -> dict[str, Any] | None:
        """The verification embedder and the gates the build applied (``None`` with verification off)."""
        verify = next((s for s in self.plan.batch_steps if isinstance(s, VerifyStep)), None)
        if verify is None:
            return None
        return {
            "embedder": verify.embedder.name,
            "model": verify.embedder.model,
            "gates": {lang: g.to_dict() for lang, g in sorted(verify.gates.items())},
        }
