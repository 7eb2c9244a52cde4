"""The whole benchmark suite, one command, every table printed:

    python bench/run_all.py            # about 30 minutes on the 2-CPU machine of docs/benchmarks.md
    python bench/run_all.py --quick    # small sizes: checks that every benchmark runs (about 2 minutes;
                                       # results in bench/results/quick/, targets not meaningful)

Each benchmark is its own script, run here in turn as a fresh process (so one's memory or threads
never affect the next); each measures its ratios against a baseline inside its own run:

1. ``bench_pipeline.py``: language ID rows/s, dedup rows/s, shard writing MB/s, and the build's peak
   memory at 100k vs 1M concepts (target <= 1.5x);
2. ``bench_dedup.py``: near-duplicate detection vs datatrove's MinHash dedup on 1M documents: time,
   peak memory, agreement of the duplicate clusters (datatrove in its own virtual environment; see
   that script);
3. ``bench_build_model_share.py``: a verified build's throughput vs the raw embedding model's
   encode throughput on the same texts (target: pipeline overhead <= 10%);
4. ``bench_executors.py``: the local executor vs Ray on this machine's CPUs;
5. ``bench_embed_gpu.py``: on a CUDA GPU only, a LaBSE-sized model with the project's batching vs
   plain ``SentenceTransformer.encode`` (target >= 1.5x); without a GPU it is skipped, and the last
   GPU results in ``bench/results/gpu/`` (from ``bench/gpu_session.sh``) are printed, marked as such.

A benchmark that misses its target exits non-zero; the suite runs the rest and exits 1 at the end.
Each script's JSON lands in ``bench/results/``; docs/benchmarks.md holds the figures and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable


def suite(quick: bool) -> list[tuple[str, list[str]]]:
    if quick:
        q = HERE / "results" / "quick"  # small-size results never replace the real ones
        return [
            (
                "pipeline",
                [
                    "bench_pipeline.py",
                    "--sizes",
                    "3000,30000",
                    "--repeat",
                    "1",
                    "--minhash-texts",
                    "0",
                    "--results",
                    str(q / "pipeline.json"),
                ],
            ),
            ("dedup", ["bench_dedup.py", "--smoke", "--results", str(q / "dedup.json")]),
            ("overhead", ["bench_build_model_share.py", "--rows", "600", "--result", str(q / "build_model_share.json")]),
            (
                "executors",
                [
                    "bench_executors.py",
                    "--rows",
                    "3000",
                    "--repeat",
                    "1",
                    "--skip-verified",
                    "--results",
                    str(q / "executors.json"),
                ],
            ),
        ]
    return [
        ("pipeline", ["bench_pipeline.py", "--repeat", "1"]),
        ("dedup", ["bench_dedup.py"]),
        ("overhead", ["bench_build_model_share.py", "--rows", "6000"]),
        ("executors", ["bench_executors.py", "--repeat", "1"]),
    ]


def has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def recorded_gpu_results() -> None:
    path = HERE / "results" / "gpu" / "session.log"
    if not path.exists():
        print("no GPU here and no recorded GPU results (run bench/gpu_session.sh on a GPU machine)")
        return
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("embed: ")), None)
    print(f"no GPU here; the last recorded GPU session ({path}):")
    for line in lines[start:] if start is not None else lines[-20:]:
        print("  " + line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: check that every benchmark runs")
    ap.add_argument("--only", default=None, help="comma-separated names: pipeline, dedup, overhead, executors, gpu")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    print(f"corpusalign benchmark suite on {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    failed: list[str] = []
    summary: dict[str, dict] = {}
    for name, cmd in suite(args.quick):
        if only and name not in only:
            continue
        print(f"\n===== {name}: python bench/{' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run([PY, str(HERE / cmd[0]), *cmd[1:]], cwd=HERE.parent).returncode
        summary[name] = {"exit": rc, "seconds": round(time.perf_counter() - start, 1)}
        if rc:
            failed.append(name)
    if not only or "gpu" in only:
        print("\n===== gpu: python bench/bench_embed_gpu.py", flush=True)
        if has_cuda():
            rc = subprocess.run([PY, str(HERE / "bench_embed_gpu.py"), *(["--smoke"] if args.quick else [])]).returncode
            summary["gpu"] = {"exit": rc}
            if rc:
                failed.append("gpu")
        else:
            recorded_gpu_results()
    print("\n===== suite summary")
    for name, s in summary.items():
        print(f"  {name:<10} exit {s['exit']}  {s.get('seconds', '')} s")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "suite.json").write_text(json.dumps(summary, indent=2) + "\n")
    if failed:
        print(f"targets missed or errors in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
