"""Peak RSS of a build per stage, sampled from ``/proc/PID/status`` every 50 ms.

The stage is read off the build's working files (``_work/stage1.done.json``, ``buckets.json``,
``shards/``, then ``manifest.json``), so a stage's peak includes memory the allocator kept from the
stages before it. Linux only. Used to find which stage drives the peak in docs/benchmarks.md::

    python bench/rss_by_stage.py bench/_work/corpus-1000000-s0.jsonl bench/_work/rss-1M [BUILD OPTIONS]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

# the non-model pipeline: verification (embeddings) off
NO_VERIFY = Path(__file__).resolve().parent / "pipelines" / "no-verify.yaml"


def stage_of(out: Path) -> str:
    work = out / "_work"
    if (out / "manifest.json").exists():
        return "finish, report"
    if (work / "shards").exists():
        return "4 shards"
    if (work / "buckets.json").exists():
        return "3 select+bucket"
    dedup = work / "dedup"
    if (work / "stage1.done.json").exists():
        if not dedup.exists() and (work / "stats" / "dedup.json").exists():
            return "2f write duplicates"  # write_duplicates returned; its statistics being written
        # 2e runs until write_duplicates returns: confirm, then the unit that writes the clusters and the sorted result
        steps = (("pairs-by-seq", "2e attach..collect"), ("pairs-by-rep", "2d near pairs"), ("found", "2b-c same id, exact"))
        for sub, name in steps:
            if (dedup / sub).exists():
                return name
        return "2a dedup map"
    if (work / "read.done.json").exists():
        return "1b load..signatures"
    return "1a read"


def main() -> None:
    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    exe = Path(sys.executable).parent / "corpusalign"
    cmd = [
        str(exe),
        "build",
        "--src",
        "en",
        "--tgt",
        "de,ja",
        "-p",
        str(NO_VERIFY),
        "-i",
        str(corpus),
        "-o",
        str(out),
        "--quiet",
        "--overwrite",
        *sys.argv[3:],  # more build options, e.g. --keep-work
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peaks: dict[str, int] = {}
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            rss_kib = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        except (OSError, StopIteration):
            rss_kib = 0
        stage = stage_of(out)
        peaks[stage] = max(peaks.get(stage, 0), rss_kib)
        time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(f"build failed with exit code {proc.returncode}")
    mib = {k: round(v / 1024) for k, v in peaks.items()}
    print(json.dumps({"seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": mib}))


if __name__ == "__main__":
    main()
