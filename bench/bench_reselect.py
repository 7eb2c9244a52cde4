"""Reselect vs rebuild: changing a threshold on a finished build, from its stored scores.

One command::

    python bench/bench_reselect.py

1. builds the bundled sample with verification on (``corpusalign build -o OUT --quiet --no-report``,
   the shipped gates, the bundled multilingual-e5-small) in a fresh process, timed;
2. reselects it with the same pipeline (``corpusalign reselect OUT -o OUT2 --quiet --no-report``) and
   with a stricter German threshold (``--threshold de=0.6``), each in a fresh process, timed, the
   same number of times (``--repeat``, default 3; the median is reported);
3. checks that the reselect with the same pipeline wrote byte-identical shards and rejected files, and
   prints the seconds of each and the ratio build / reselect.

Results also go to ``bench/results/reselect.json``. Both commands run in fresh processes, so each
pays its own interpreter and import start-up (the build also loads the embedder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "corpusalign.cli"]


def _timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([*CLI, *args], check=True)
    return time.perf_counter() - start


def _same_files(a: Path, b: Path) -> bool:
    rel = sorted(str(p.relative_to(a)) for d in ("shards", "rejected", "quarantine") for p in (a / d).glob("*.parquet"))
    other = sorted(str(p.relative_to(b)) for d in ("shards", "rejected", "quarantine") for p in (b / d).glob("*.parquet"))
    return rel == other and all((a / r).read_bytes() == (b / r).read_bytes() for r in rel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "reselect")
    ap.add_argument("--repeat", type=int, default=3, help="reselect runs per variant (median reported)")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    built = args.work / "corpus"
    build_s = _timed(["build", "-o", str(built), "--quiet", "--no-report"])
    manifest = json.loads((built / "manifest.json").read_text())
    same, strict = [], []
    for i in range(args.repeat):
        same.append(_timed(["reselect", str(built), "-o", str(args.work / f"same-{i}"), "--quiet", "--no-report"]))
        strict.append(
            _timed(
                ["reselect", str(built), "-o", str(args.work / f"strict-{i}"), "--threshold", "de=0.6", "--quiet", "--no-report"]
            )
        )
    identical = _same_files(built, args.work / "same-0")
    strict_manifest = json.loads((args.work / "strict-0" / "manifest.json").read_text())
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "rows": manifest["accounting"]["input_rows"],
        "kept_rows": manifest["accounting"]["kept_rows"],
        "build_s": round(build_s, 2),
        "reselect_same_s": round(statistics.median(same), 2),
        "reselect_strict_de_s": round(statistics.median(strict), 2),
        "ratio_build_over_reselect": round(build_s / statistics.median(same), 1),
        "same_pipeline_byte_identical": identical,
        "strict_de_kept_rows": strict_manifest["accounting"]["kept_rows"],
        "reselect_runs_s": {"same": [round(s, 2) for s in same], "strict_de": [round(s, 2) for s in strict]},
    }
    out = HERE / "results" / "reselect.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"build (verification on, {result['rows']:,} rows): {result['build_s']:.2f} s")
    same_s = result["reselect_same_s"]
    print(f"reselect, same pipeline: {same_s:.2f} s (median of {args.repeat}), byte-identical: {identical}")
    print(
        f"reselect, --threshold de=0.6: {result['reselect_strict_de_s']:.2f} s; "
        f"kept {result['strict_de_kept_rows']:,} of {result['kept_rows']:,}"
    )
    print(f"ratio build / reselect: {result['ratio_build_over_reselect']}x")


if __name__ == "__main__":
    main()
