"""Near-duplicate detection: corpusalign's dedup against datatrove's MinHash dedup on the same documents.

One command::

    nice -n 19 python bench/bench_dedup.py --repeat 2   # 1,000,000 documents; --smoke for a tiny run

1. **Input.** The English texts of ``bench/make_corpus.py``'s synthetic corpus (real Tatoeba sentences,
   3% planted exact and 2% planted near duplicates) with ``--docs`` records, written once as two Parquet
   files (``id``, ``text``) under ``bench/_work/dedup/``, cached, plus the planted pairs as ground truth.
   Both tools read these files.
2. **corpusalign**, in a fresh process: batches of 10,000 documents through the product's own
   ``DedupSignatureStep`` (xxh3 exact key + rensa MinHash band keys of character 5-grams), each batch
   staged as Parquet as a build does, then ``find_duplicates`` over the staged files (ids, exact keys,
   LSH candidate pairs confirmed by exact Jaccard >= threshold, union-find). Settings: ``BuildConfig()``
   defaults (128 permutations, 16 bands, 5-grams, threshold 0.8, no near-duplicate search under 50
   characters, seed 42).
3. **datatrove** 0.10.1, in a fresh process run by a separate virtual environment (never the project's):
   ``MinhashDedupSignature -> MinhashDedupBuckets -> MinhashDedupCluster -> MinhashDedupFilter`` on a
   ``LocalPipelineExecutor`` with 2 workers (signature and filter: 2 tasks, one per input file; buckets:
   16 tasks; cluster: 1 task), ``MinhashConfig(n_grams=5, num_buckets=16, hashes_per_bucket=8,
   precision 32, xxhash)``, the same 128 hashes in 16 bands of 8 as corpusalign. datatrove shingles
   *words*; two variants run:

   * ``char``: character 5-grams, as corpusalign. datatrove has no such option, but its word tokenizer
     is pluggable (``load_word_tokenizer`` takes a ``WordTokenizer`` instance): a tokenizer returning
     single characters turns word 5-grams into character 5-grams; its text normalisation is reduced to
     corpusalign's (lowercase, whitespace collapsed). The closest comparable setting.
   * ``word``: datatrove's own English setting: spaCy word tokens, its default normalisation (no
     punctuation, numbers and diacritics normalised), word 5-grams.

   datatrove treats every LSH bucket match as a duplicate (no Jaccard check) and searches every
   document, short or long. The filter stage reads the documents again and drops duplicates; kept
   documents are not written anywhere (corpusalign writes no corpus either), only the ids of clustered
   documents are collected for the comparison.
4. **Measures** each run behind a wrapper process: wall time; CPU time of all its processes; the peak of
   the RSS summed over the process tree (datatrove runs several processes; forked workers share pages,
   so the sum overstates it) sampled every 100 ms, and of the PSS (shared pages split between sharers)
   sampled every second and at each new RSS peak; the largest single process's RSS. ``--repeat N`` runs the tools N times, taking
   turns; the fastest run gives the stage times and the ratio, memory is the largest of all runs.
5. **Compares** duplicate clusters (sets of ids): each tool's recall of the planted exact and near
   duplicates (copy in the same cluster as its original), pair agreement (pairs of documents in the
   same cluster, counted per cluster intersection) with precision/recall/F1 of datatrove against
   corpusalign, documents flagged for removal, and why the tools disagree (character 5-gram Jaccard of
   the links one tool has and the other lacks).

Prints a markdown table; results go to ``bench/results/dedup.json``. Exit status: 0 when every target
holds (corpusalign faster than the datatrove ``char`` run and its planted recall no lower), 1 when one
fails, 2 when the datatrove side was skipped (no datatrove interpreter). Create that interpreter with::

    python -m venv bench/_work/venv-datatrove
    bench/_work/venv-datatrove/bin/pip install 'datatrove[processing]==0.10.1' polars pyarrow orjson spacy

(datatrove's dedup module needs its ``processing`` extra: xxhash, regex, tokenizers. spaCy is its English
word tokenizer, needed by the ``word`` variant only; orjson is for its JSONL writer.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "_work"
DEDUP_WORK = WORK / "dedup"
RESULTS = HERE / "results" / "dedup.json"
DATATROVE_PY = WORK / "venv-datatrove" / "bin" / "python"
DATATROVE_VERSION = "0.10.1"
INPUT_FILES = 2  # one per core: datatrove's signature and filter stages split work by file
BATCH = 10_000  # corpusalign's build batch size (BuildConfig.batch_size)
SMOKE_DOCS = 5_000
JACCARD_BINS = ("jaccard >= threshold", "0.7 <= jaccard < threshold", "0.5 <= jaccard < 0.7", "jaccard < 0.5")
VARIANTS = {
    "char": "datatrove, char 5-grams",
    "word": "datatrove, word 5-grams",
}
SETUP_HINT = (
    "python -m venv bench/_work/venv-datatrove && "
    f"bench/_work/venv-datatrove/bin/pip install 'datatrove[processing]=={DATATROVE_VERSION}' polars pyarrow orjson spacy"
)

# Runs argv[3:] as a child (its output to the log file argv[2]) and samples its process tree. Every
# 100 ms: the RSS summed over the tree (/proc/PID/statm), the largest single process's RSS and each
# process's CPU time (utime + stime from /proc/PID/stat, the last value seen per process, summed).
# Every second and at each new RSS peak: the PSS summed over the tree (/proc/PID/smaps_rollup costs
# ~5 ms per 300 MiB, too much for every sample: the sampler shares the 2 cores with what it measures).
# getrusage(RUSAGE_CHILDREN) is not enough: datatrove's workers are children of a forkserver, not of
# the process this wrapper waits for. Writes the figures to argv[1]. Standard library only.
_MEASURE = r"""
import json, os, resource, subprocess, sys, time
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

def tree(root):
    kids, cpu = {}, {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                kids.setdefault(int(fields[1]), []).append(int(p))
                cpu[int(p)] = (int(fields[19]), (int(fields[11]) + int(fields[12])) / TICK)  # (start time, CPU s)
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out, cpu

def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except (OSError, ValueError, IndexError):
        return 0

def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0

t = time.perf_counter()
with open(sys.argv[2], "w") as log:
    child = subprocess.Popen(sys.argv[3:], stdout=log, stderr=subprocess.STDOUT)
    peak_rss = peak_pss = largest = procs = 0
    cpu_seen = {}
    n = 0
    while child.poll() is None:
        pids, cpu = tree(child.pid)
        sizes = [rss_kib(p) for p in pids]
        if n % 10 == 0 or sum(sizes) > peak_rss:  # and whenever the RSS peaks, where the PSS peak is likely
            peak_pss = max(peak_pss, sum(pss_kib(p) for p in pids))
        peak_rss, largest, procs = max(peak_rss, sum(sizes)), max(largest, *sizes), max(procs, len(pids))
        for p in pids:
            if p in cpu:
                started, seconds = cpu[p]
                cpu_seen[(p, started)] = seconds  # keyed by start time too: pids get reused
        n += 1
        time.sleep(0.1)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
out = {"rc": child.returncode, "wall_s": wall, "maxrss_kib": ru.ru_maxrss, "rusage_cpu_s": ru.ru_utime + ru.ru_stime,
       "sampled_cpu_s": sum(cpu_seen.values()), "tree_peak_rss_kib": peak_rss, "tree_peak_pss_kib": peak_pss,
       "largest_process_rss_kib": largest, "max_processes": procs, "samples": n}
json.dump(out, open(sys.argv[1], "w"))
"""


# ============================================================================ input (project venv)
def generator_hash() -> str:
    return hashlib.sha256((HERE / "make_corpus.py").read_bytes()).hexdigest()[:12]


def doc_id(seed: int, index: int) -> str:
    return f"bench.{seed}.{index:07d}"  # make_corpus's concept id of record `index`


def prepare_input(docs: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """``docs`` English documents in INPUT_FILES Parquet files (``id``, ``text``) and the planted pairs; cached."""
    import polars as pl

    sys.path.insert(0, str(HERE))
    import make_corpus

    folder = DEDUP_WORK / f"docs-{docs}-s{seed}"
    meta_path = folder / "meta.json"
    gen = generator_hash()
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("generator") == gen and all((folder / f).exists() for f in meta["files"]):
            return folder, meta
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    jsonl = folder / "corpus.jsonl"
    corpus_meta = make_corpus.make_corpus(docs * len(make_corpus.LANGS), jsonl, seed)
    df = pl.read_ndjson(jsonl, schema={"concept_id": pl.String, "en": pl.String}).select(
        pl.col("concept_id").alias("id"), pl.col("en").alias("text")
    )
    if df.height != docs:
        raise SystemExit(f"make_corpus wrote {df.height} records, expected {docs}")
    files = []
    per_file = -(-docs // INPUT_FILES)
    for i in range(INPUT_FILES):
        name = f"part-{i:05d}.parquet"
        df.slice(i * per_file, per_file).write_parquet(folder / name, compression="zstd")
        files.append(name)
    truth = pl.read_csv(jsonl.with_name(jsonl.name + ".planted.tsv"), separator="\t")
    truth.select(
        pl.format("bench.{}.{}", pl.lit(seed), pl.col("copy").cast(pl.String).str.zfill(7)).alias("copy"),
        pl.format("bench.{}.{}", pl.lit(seed), pl.col("original").cast(pl.String).str.zfill(7)).alias("original"),
        "kind",
    ).write_parquet(folder / "planted.parquet")
    for suffix in ("", ".planted.tsv"):  # the JSONL is only an intermediate (3 languages, 3x the bytes)
        jsonl.with_name(jsonl.name + suffix).unlink()
    lengths = df["text"].str.len_chars()
    meta = {
        "docs": docs,
        "seed": seed,
        "generator": gen,
        "files": files,
        "planted": corpus_meta["planted"],
        "source": corpus_meta["source"],
        "source_sentences": corpus_meta["source_sentences"],
        "text_chars_mean": round(float(lengths.mean()), 1),
        "text_chars_median": float(lengths.median()),
        "docs_under_50_chars": int((lengths < 50).sum()),
        "parquet_bytes": sum((folder / f).stat().st_size for f in files),
        "make_seconds": round(time.perf_counter() - start, 2),
    }
    (folder / "corpus.jsonl.meta.json").unlink(missing_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"  made {folder.relative_to(REPO)}: {docs:,} documents in {meta['make_seconds']} s")
    return folder, meta


# ============================================================================ corpusalign side (project venv, child)
def run_corpusalign(input_dir: Path, out: Path) -> None:
    """The product's dedup: DedupSignatureStep per batch of 10,000, staged Parquet, find_duplicates."""
    t0 = time.perf_counter()
    import polars as pl
    import pyarrow.parquet as pq

    from corpusalign.config import BuildConfig
    from corpusalign.stats import StepStats
    from corpusalign.steps.dedup import DedupSignatureStep
    from corpusalign.steps.duplicates import find_duplicates
    from corpusalign.store.files import write_parquet

    t_import = time.perf_counter()
    cfg = BuildConfig()  # defaults: src "en", fields ("text",), dedup = DedupConfig()
    step = DedupSignatureStep(cfg)
    sig_stats, dup_stats = StepStats(), StepStats()
    stage = out / "stage1"
    stage.mkdir(parents=True)
    seq = part = 0
    read_s = stage_s = 0.0
    for f in sorted(input_dir.glob("part-*.parquet")):
        t = time.perf_counter()
        batches = pq.ParquetFile(f).iter_batches(batch_size=BATCH, columns=["id", "text"])
        for rb in batches:
            df = pl.from_arrow(rb)
            assert isinstance(df, pl.DataFrame)
            batch = df.select(
                pl.int_range(seq, seq + df.height, dtype=pl.UInt64).alias("_seq"),
                pl.col("id").alias("concept_id"),
                pl.lit("en").alias("lang"),
                "text",
            )
            read_s += time.perf_counter() - t
            signed = step.process(batch, sig_stats)
            t = time.perf_counter()
            staged = signed.to_arrow()
            write_parquet(staged, stage / f"part-{part:06d}.parquet", staged.schema)
            stage_s += time.perf_counter() - t
            seq += df.height
            part += 1
            t = time.perf_counter()
    t_signed = time.perf_counter()
    sources = pl.scan_parquet(stage / "part-*.parquet").filter(pl.col("lang") == cfg.src)
    staged = sorted(stage.glob("part-*.parquet"))
    dups = find_duplicates(staged, cfg, out / "dedup", stats=dup_stats)  # as the runner calls it, on the local executor
    t_found = time.perf_counter()
    ids = sources.select("_seq", "concept_id").collect()
    dups.join(ids, on="_seq").select(pl.col("concept_id").alias("id"), "dup_of", "dup_kind").write_parquet(out / "links.parquet")
    report = {
        "docs": seq,
        "batches": part,
        "config": {k: getattr(cfg.dedup, k) for k in ("ngram", "num_perm", "bands", "threshold", "near_min_chars", "seed")},
        "stages_s": {
            "import": round(t_import - t0, 3),
            "read batches": round(read_s, 3),
            "dedup_signature": round(sig_stats.seconds, 3),
            "stage Parquet": round(stage_s, 3),
            "find_duplicates": round(t_found - t_signed, 3),
        },
        "find_duplicates_step_s": round(dup_stats.seconds, 3),
        "counters": dup_stats.counters,
        "flagged": dups.height,
        "total_s": round(time.perf_counter() - t0, 3),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(stage)


# ============================================================================ datatrove side (datatrove venv, child)
def _collect_clustered(out_dir: str, data, rank: int = 0, world_size: int = 1):  # noqa: ANN001
    """Pipeline step after MinhashDedupFilter: note (id, cluster) of kept documents that are in a cluster."""
    rows = []
    for doc in data:
        c = doc.metadata.get("minhash_cluster_id", -1)
        if c >= 0:
            rows.append({"id": doc.id, "cluster": c})
        yield doc
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(out_dir) / f"{rank:05d}.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def _char_tokenizer():  # noqa: ANN202
    """A datatrove WordTokenizer whose 'words' are characters, so n_grams=5 means character 5-grams."""
    from datatrove.utils.word_tokenizers import WordTokenizer

    class CharTokenizer(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return list(text)

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    return CharTokenizer("chars")


def run_datatrove(input_dir: Path, out: Path, variant: str, workers: int) -> None:
    t0 = time.perf_counter()
    from functools import partial

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import TextNormConfig

    t_import = time.perf_counter()
    if variant == "char":  # corpusalign's normalisation: casefold, collapse whitespace; character 5-grams
        norm = TextNormConfig(
            lowercase=True, norm_whitespace=True, remove_punctuation=False, norm_unicode_diacritics=False, norm_numbers=False
        )
        language: Any = _char_tokenizer()
    else:  # datatrove's defaults for English: spaCy words, punctuation removed, numbers and diacritics normalised
        norm = TextNormConfig()
        language = "en"
    cfg = MinhashConfig(
        n_grams=5,
        num_buckets=16,
        hashes_per_bucket=8,
        seed=42,
        norm_config=norm,
        hash_config=HashConfig(precision=32, hash_fc="xxhash"),
    )
    files = len(list(input_dir.glob("part-*.parquet")))

    def reader() -> ParquetReader:
        return ParquetReader(str(input_dir), glob_pattern="part-*.parquet", text_key="text", id_key="id")

    logs = out / "logs"
    stages = [
        (
            "signature",
            [reader(), MinhashDedupSignature(output_folder=str(out / "signatures"), config=cfg, language=language)],
            files,
        ),
        (
            "buckets",
            [MinhashDedupBuckets(input_folder=str(out / "signatures"), output_folder=str(out / "buckets"), config=cfg)],
            cfg.num_buckets,
        ),
        (
            "cluster",
            [
                MinhashDedupCluster(
                    input_folder=str(out / "buckets"), output_folder=str(out / "remove_ids"), config=cfg, save_cluster_id=True
                )
            ],
            1,
        ),
        (
            "filter",
            [
                reader(),
                MinhashDedupFilter(
                    input_folder=str(out / "remove_ids"),
                    exclusion_writer=JsonlWriter(str(out / "removed"), compression=None),
                    load_cluster_ids=True,
                ),
                partial(_collect_clustered, str(out / "kept_clustered")),
            ],
            files,
        ),
    ]
    times = {"import": round(t_import - t0, 3)}
    for name, pipeline, tasks in stages:
        t = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=str(logs / name)).run()
        times[name] = round(time.perf_counter() - t, 3)
    report = {
        "variant": variant,
        "workers": workers,
        "tasks": {name: tasks for name, _, tasks in stages},
        "config": {
            "n_grams": cfg.n_grams,
            "num_buckets": cfg.num_buckets,
            "hashes_per_bucket": cfg.hashes_per_bucket,
            "seed": cfg.seed,
            "hash": str(cfg.hash_config),
            "norm": vars(norm),
            "tokenizer": "characters (custom WordTokenizer)" if variant == "char" else "spaCy (datatrove default for en)",
        },
        "stages_s": times,
        "total_s": round(time.perf_counter() - t0, 3),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out / "signatures", ignore_errors=True)


# ============================================================================ measuring (project venv)
def measure(cmd: list[str], report: Path, log: Path) -> dict[str, Any]:
    subprocess.run([sys.executable, "-c", _MEASURE, str(report), str(log), *cmd], check=True)
    m = json.loads(report.read_text())
    return {
        "rc": m["rc"],
        "wall_s": round(m["wall_s"], 2),
        # the child is waited for, so rusage has all of its own CPU; sampling adds processes rusage never sees
        "cpu_s": round(max(m["rusage_cpu_s"], m["sampled_cpu_s"]), 2),
        "rusage_cpu_s": round(m["rusage_cpu_s"], 2),
        "sampled_cpu_s": round(m["sampled_cpu_s"], 2),
        # one process: its ru_maxrss is exact, sampling may miss a short peak
        "peak_rss_mib": round(max(m["tree_peak_rss_kib"], m["maxrss_kib"] if m["max_processes"] == 1 else 0) / 1024, 1),
        "peak_pss_mib": round(m["tree_peak_pss_kib"] / 1024, 1),
        "largest_process_rss_mib": round(max(m["largest_process_rss_kib"], m["maxrss_kib"]) / 1024, 1),
        "rusage_maxrss_mib": round(m["maxrss_kib"] / 1024, 1),
        "max_processes": m["max_processes"],
    }


def datatrove_info(python: Path) -> dict[str, Any] | None:
    code = (
        "import json, platform, datatrove.pipeline.dedup.minhash\n"
        "from importlib.metadata import version, PackageNotFoundError\n"
        "def v(p):\n"
        "    try:\n"
        "        return version(p)\n"
        "    except PackageNotFoundError:\n"
        "        return None\n"
        "pkgs = ('datatrove', 'numpy', 'pyarrow', 'polars', 'xxhash', 'spacy', 'multiprocess')\n"
        "print(json.dumps({'python': platform.python_version(), **{p: v(p) for p in pkgs}}))"
    )
    try:
        res = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    except OSError:
        return None
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
    return json.loads(res.stdout)


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        git = ["git", "-C", str(REPO)]
        info["git_commit"] = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "corpusalign"], capture_output=True, text=True).stdout
        info["library_uncommitted_changes"] = dirty.strip().split("\n") if dirty.strip() else []
    except OSError:
        pass
    for pkg in ("corpusalign", "polars", "pyarrow", "numpy", "rensa", "xxhash"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    return info


# ============================================================================ comparing (project venv)
def corpusalign_clusters(out: Path) -> dict[str, str]:
    """id -> cluster (its root's id) for every document in a duplicate cluster, from the dup_of links."""
    import polars as pl

    links = pl.read_parquet(out / "links.parquet")
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    for a, b in links.select("id", "dup_of").iter_rows():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members = set(links["id"].to_list()) | set(links["dup_of"].to_list())
    return {m: find(m) for m in members}


def datatrove_clusters(out: Path) -> tuple[dict[str, str], int]:
    """id -> minhash_cluster_id for every clustered document (removed ones and kept ones), and the removed count."""
    clusters: dict[str, str] = {}
    removed = 0
    for f in sorted((out / "removed").glob("*.jsonl")):
        with open(f) as fh:
            for line in fh:
                doc = json.loads(line)
                clusters[doc["id"]] = str(doc["metadata"]["minhash_cluster_id"])
                removed += 1
    for f in sorted((out / "kept_clustered").glob("*.jsonl")):
        with open(f) as fh:
            for line in fh:
                doc = json.loads(line)
                clusters[doc["id"]] = str(doc["cluster"])
    return clusters, removed


def pair_counts(a: dict[str, str], b: dict[str, str]) -> dict[str, Any]:
    """Same-cluster pairs of each clustering and of both, counted per cluster (intersection) size."""
    import polars as pl

    def pairs(sizes: pl.Series) -> int:
        return int((sizes.cast(pl.Int64) * (sizes.cast(pl.Int64) - 1) // 2).sum())

    da = pl.DataFrame({"id": list(a), "a": list(a.values())}, schema={"id": pl.String, "a": pl.String})
    db = pl.DataFrame({"id": list(b), "b": list(b.values())}, schema={"id": pl.String, "b": pl.String})
    pa = pairs(da.group_by("a").len()["len"])
    pb = pairs(db.group_by("b").len()["len"])
    both = pairs(da.join(db, on="id").group_by("a", "b").len()["len"])
    return {
        "pairs_reference": pa,
        "pairs_other": pb,
        "pairs_both": both,
        "precision": round(both / pb, 4) if pb else None,
        "recall": round(both / pa, 4) if pa else None,
        "f1": round(2 * both / (pa + pb), 4) if pa + pb else None,
    }


def planted_recall(clusters: dict[str, str], planted: list[tuple[str, str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("exact_duplicate", "near_duplicate"):
        pairs = [(c, o) for c, o, k in planted if k == kind]
        found = sum(1 for c, o in pairs if c in clusters and clusters.get(o) == clusters[c])
        out[kind] = {"planted": len(pairs), "found": found, "recall": round(found / len(pairs), 4) if pairs else None}
    total = sum(v["planted"] for v in out.values())
    found = sum(v["found"] for v in out.values())
    out["all"] = {"planted": total, "found": found, "recall": round(found / total, 4) if total else None}
    return out


def links(clusters: dict[str, str]) -> list[tuple[str, str]]:
    """(member, first member) for every member of a cluster but its first (smallest id)."""
    first: dict[str, str] = {}
    for doc, c in clusters.items():
        if c not in first or doc < first[c]:
            first[c] = doc
    return [(doc, first[c]) for doc, c in clusters.items() if doc != first[c]]


def disagreement(
    one: dict[str, str], other: dict[str, str], texts: dict[str, str], near_min_chars: int, ngram: int, threshold: float
) -> dict[str, Any]:
    """Links of ``one`` whose documents ``other`` puts in different clusters, by their character n-gram Jaccard."""
    from corpusalign.steps.dedup import jaccard

    mine = links(one)
    missed = [(a, b) for a, b in mine if a not in other or other.get(b) != other[a]]
    out = {"links": len(mine), "missed_by_other": len(missed), "short": 0, **dict.fromkeys(JACCARD_BINS, 0)}
    for a, b in missed:
        ta, tb = texts[a], texts[b]
        if min(len(ta), len(tb)) < near_min_chars:
            out["short"] += 1
            continue
        j = jaccard(ta, tb, ngram)
        lower = (threshold, 0.7, 0.5, 0.0)
        out[next(k for k, lo in zip(JACCARD_BINS, lower, strict=True) if j >= lo)] += 1
    return out


def normalised_texts(input_dir: Path) -> dict[str, str]:
    import polars as pl

    from corpusalign.steps.dedup import dedup_text_expr

    df = pl.read_parquet(input_dir / "part-*.parquet").select("id", dedup_text_expr(("text",)).alias("t"))
    return dict(zip(df["id"].to_list(), df["t"].to_list(), strict=True))


# ============================================================================ report
def fmt(x: Any, spec: str = ",") -> str:
    if x is None:
        return "–"
    return format(x, spec)


def pct(r: dict[str, Any]) -> str:
    return f"{r['recall'] * 100:.2f}% ({r['found']:,} / {r['planted']:,})" if r["recall"] is not None else "–"


def print_table(res: dict[str, Any]) -> None:
    runs = res["runs"]
    names = list(runs)
    head = "| | " + " | ".join(runs[n]["label"] for n in names) + " |"
    print(head)
    print("|---|" + "---:|" * len(names))

    def row(label: str, cell) -> None:  # noqa: ANN001
        print(f"| {label} | " + " | ".join(cell(runs[n]) for n in names) + " |")

    row("wall s (whole process)", lambda r: " / ".join(f"{m['wall_s']:.1f}" for m in r["measures"]))
    row("CPU s (user + sys, all processes)", lambda r: " / ".join(f"{m['cpu_s']:.1f}" for m in r["measures"]))
    row("peak RSS MiB (process tree; max of runs)", lambda r: f"{r['measure']['peak_rss_mib']:,.0f}")
    row("peak PSS MiB (process tree; max of runs)", lambda r: f"{r['measure']['peak_pss_mib']:,.0f}")
    row("largest single process RSS MiB (max of runs)", lambda r: f"{r['measure']['largest_process_rss_mib']:,.0f}")
    row("processes (max seen)", lambda r: str(r["measure"]["max_processes"]))
    row("docs flagged as duplicates", lambda r: fmt(r["flagged"]))
    row("duplicate clusters", lambda r: fmt(r["clusters"]))
    row("docs in clusters", lambda r: fmt(r["clustered_docs"]))
    row("largest cluster (docs)", lambda r: fmt(r["largest_cluster"]))
    row("same-cluster pairs", lambda r: fmt(r["pairs"]))
    row("recall, planted exact", lambda r: pct(r["planted_recall"]["exact_duplicate"]))
    row("recall, planted near", lambda r: pct(r["planted_recall"]["near_duplicate"]))
    row("recall, all planted", lambda r: pct(r["planted_recall"]["all"]))
    row(
        "pairs vs corpusalign: precision (share of its pairs corpusalign has)",
        lambda r: fmt(r.get("vs_corpusalign", {}).get("precision"), ".4f"),
    )
    row(
        "pairs vs corpusalign: recall (share of corpusalign's pairs it has)",
        lambda r: fmt(r.get("vs_corpusalign", {}).get("recall"), ".4f"),
    )
    row("pairs vs corpusalign: F1", lambda r: fmt(r.get("vs_corpusalign", {}).get("f1"), ".4f"))
    print()
    for n in names:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in runs[n]["stages_s"].items())
        print(f"- {runs[n]['label']} stages (s, inside the process): {stages}")
    dis = [n for n in names if "disagreement" in runs[n]]
    if dis:
        print()
        print("Disagreement: links (member -> first member of its cluster) one side has and the other lacks, by the")
        print(
            f"character {res['corpusalign_config']['ngram']}-gram Jaccard of the two texts "
            f"(short = under {res['corpusalign_config']['near_min_chars']} characters):"
        )
        print()
        print(
            "| links of | missed by | links | missed | short | J >= threshold | 0.7 <= J < threshold | 0.5 <= J < 0.7 | J < 0.5 |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for n in dis:
            for direction, d in runs[n]["disagreement"].items():
                one, other = (
                    ("corpusalign", runs[n]["label"]) if direction == "corpusalign_links" else (runs[n]["label"], "corpusalign")
                )
                bins = " | ".join(f"{d[k]:,}" for k in JACCARD_BINS)
                print(f"| {one} | {other} | {d['links']:,} | {d['missed_by_other']:,} | {d['short']:,} | {bins} |")


# ============================================================================ main
def child_main(argv: list[str]) -> int:
    if argv[0] == "_corpusalign":
        run_corpusalign(Path(argv[1]), Path(argv[2]))
    elif argv[0] == "_datatrove":
        run_datatrove(Path(argv[1]), Path(argv[2]), argv[3], int(argv[4]))
    else:
        raise SystemExit(f"unknown internal command {argv[0]}")
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        return child_main(sys.argv[1:])
    ap = argparse.ArgumentParser(
        description="Benchmark corpusalign's near-duplicate detection against datatrove's MinHash dedup."
    )
    ap.add_argument("--docs", type=int, default=1_000_000, help="documents (English texts) to deduplicate (default: 1,000,000)")
    ap.add_argument("--smoke", action="store_true", help=f"tiny run ({SMOKE_DOCS:,} documents) to test the script")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--datatrove-python", type=Path, default=DATATROVE_PY, help="interpreter with datatrove 0.10.1 (separate venv)"
    )
    ap.add_argument("--variants", default="char,word", help="datatrove shingle variants to run: char, word (default: char,word)")
    ap.add_argument("--workers", type=int, default=2, help="datatrove LocalPipelineExecutor workers (default: 2, one per core)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool, taking turns; the fastest is reported (default: 1)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    docs = SMOKE_DOCS if args.smoke else args.docs
    variants = [v for v in args.variants.split(",") if v]
    if unknown := [v for v in variants if v not in VARIANTS]:
        ap.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    start = time.perf_counter()
    info = machine()
    print(f"machine: {info.get('cpu_model')} x{info['nproc']}, {info.get('ram_gib')} GiB RAM; Python {info['python']}; ", end="")
    print(f"load average {' '.join(f'{x:.2f}' for x in info['loadavg_at_start'])}")

    dt_py = args.datatrove_python
    dt_info = datatrove_info(dt_py) if dt_py.exists() else None
    skip_reason = None
    if dt_info is None:
        skip_reason = f"no datatrove interpreter at {dt_py}"
    elif "error" in dt_info:
        skip_reason = f"{dt_py} cannot import datatrove: {dt_info['error']}"
    elif dt_info.get("datatrove") != DATATROVE_VERSION:
        print(f"warning: {dt_py} has datatrove {dt_info.get('datatrove')}, this benchmark was written for {DATATROVE_VERSION}")
    if not skip_reason and dt_info and dt_info.get("spacy") is None and "word" in variants:
        print(f"skipping the datatrove 'word' variant: {dt_py} has no spaCy (datatrove's English word tokenizer)")
        variants.remove("word")
    if skip_reason:
        print(f"SKIPPING the datatrove side: {skip_reason}. Create it with:\n  {SETUP_HINT}")
        variants = []
    info["datatrove_env"] = dt_info

    input_dir, meta = prepare_input(docs, args.seed)
    print(f"input: {input_dir.relative_to(REPO)}: {docs:,} documents, planted {meta['planted']}")
    import polars as pl

    planted = [tuple(r) for r in pl.read_parquet(input_dir / "planted.parquet").iter_rows()]

    run_root = DEDUP_WORK / f"runs-{docs}"
    shutil.rmtree(run_root, ignore_errors=True)
    run_root.mkdir(parents=True)
    commands: dict[str, list[str]] = {"corpusalign": [sys.executable, str(Path(__file__).resolve()), "_corpusalign"]}
    for v in variants:
        commands[v] = [str(dt_py), str(Path(__file__).resolve()), "_datatrove"]
    runs: dict[str, dict[str, Any]] = {}
    for i in range(args.repeat):  # tools take turns, so a noisy stretch of the shared machine hits all of them
        for name, base in commands.items():
            out = run_root / name
            shutil.rmtree(out, ignore_errors=True)
            cmd = [*base, str(input_dir), str(out)] + ([name, str(args.workers)] if name != "corpusalign" else [])
            label = "corpusalign" if name == "corpusalign" else VARIANTS[name]
            print(f"running {label} ({i + 1}/{args.repeat}) ...", flush=True)
            log = run_root / f"{name}.log"
            m = measure(cmd, run_root / f"{name}.measure.json", log)
            if m["rc"] != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise SystemExit(f"{tail}\n{label} failed (exit {m['rc']}): {' '.join(cmd)}; log: {log}")
            report = json.loads((out / "report.json").read_text())
            if name == "corpusalign":
                clusters = corpusalign_clusters(out)
                flagged = report["flagged"]
            else:
                clusters, flagged = datatrove_clusters(out)
            print(
                f"  {m['wall_s']:.1f} s wall, {m['cpu_s']:.1f} s CPU, peak RSS {m['peak_rss_mib']:,.0f} MiB, {flagged:,} flagged"
            )
            r = runs.setdefault(name, {"label": label, "command": " ".join(cmd), "measures": [], "reports": []})
            r["measures"].append(m)
            r["reports"].append(report)
            if "flagged" in r and (r["flagged"], r["clustered_docs"]) != (flagged, len(clusters)):
                print(f"  warning: {label} flagged {flagged:,} this time, {r['flagged']:,} before")
            sizes: dict[str, int] = {}
            for c in clusters.values():
                sizes[c] = sizes.get(c, 0) + 1
            r.update(
                flagged=flagged,
                clusters=len(sizes),
                clustered_docs=len(clusters),
                largest_cluster=max(sizes.values(), default=0),
                pairs=sum(s * (s - 1) // 2 for s in sizes.values()),
                planted_recall=planted_recall(clusters, planted),
                _clusters=clusters,
            )
    for r in runs.values():  # headline: the fastest run's time and stages, the largest memory of all runs
        best = min(range(len(r["measures"])), key=lambda k: r["measures"][k]["wall_s"])
        r["measure"] = {
            **r["measures"][best],
            **{k: max(m[k] for m in r["measures"]) for k in ("peak_rss_mib", "peak_pss_mib", "largest_process_rss_mib")},
        }
        r["report"] = r["reports"][best]
        r["stages_s"] = r["report"]["stages_s"]

    ca = runs["corpusalign"]
    cfg = ca["report"]["config"]
    texts = normalised_texts(input_dir) if len(runs) > 1 else {}
    for name in variants:
        r = runs[name]
        r["vs_corpusalign"] = pair_counts(ca["_clusters"], r["_clusters"])
        args_j = (texts, cfg["near_min_chars"], cfg["ngram"], cfg["threshold"])
        r["disagreement"] = {
            "corpusalign_links": disagreement(ca["_clusters"], r["_clusters"], *args_j),
            "datatrove_links": disagreement(r["_clusters"], ca["_clusters"], *args_j),
        }
    for r in runs.values():
        r.pop("_clusters")

    res: dict[str, Any] = {
        "machine": info,
        "args": {**vars(args), "datatrove_python": str(dt_py), "results": str(args.results), "docs": docs},
        "input": {**meta, "path": str(input_dir.relative_to(REPO))},
        "corpusalign_config": cfg,
        "runs": runs,
        "datatrove_skipped": skip_reason,
    }
    print()
    print_table(res)
    checks: list[tuple[str, bool]] = []
    if "char" in runs:
        dt = runs["char"]
        ratio = dt["measure"]["wall_s"] / ca["measure"]["wall_s"]
        res["speedup_vs_datatrove_char"] = round(ratio, 3)
        checks.append(
            (
                f"corpusalign faster than {dt['label']}: {ca['measure']['wall_s']:.1f} s vs {dt['measure']['wall_s']:.1f} s "
                f"({ratio:.2f}x)",
                ratio > 1,
            )
        )
        rc, rd = ca["planted_recall"]["all"]["recall"], dt["planted_recall"]["all"]["recall"]
        checks.append((f"corpusalign planted recall not lower: {rc:.4f} vs {rd:.4f}", rc >= rd))
    if checks:
        print("\nTargets:")
        for text, ok in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    res["targets"] = [{"check": t, "pass": ok} for t, ok in checks]
    res["total_seconds"] = round(time.perf_counter() - start, 1)
    res["loadavg_at_end"] = os.getloadavg()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(
        f"\nresults: {args.results} (total {res['total_seconds']} s; load average at end "
        f"{' '.join(f'{x:.2f}' for x in res['loadavg_at_end'])})"
    )
    if skip_reason:
        print(f"datatrove side SKIPPED ({skip_reason}); exit 2")
        return 2
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
