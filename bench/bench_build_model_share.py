"""Share of a verified build's time spent outside the embedding model.

Builds a synthetic corpus (bench/make_corpus.py, real Tatoeba sentences, en/de/ja) with verification
on, then reads the build's own statistics: ``build_seconds`` and the time the verify step spent inside
``Embedder.encode`` (counter ``model_ms``). Target: the pipeline outside the model <= 10% of build time.

    python bench/bench_build_model_share.py --rows 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="corpus rows (concepts x 3 languages)")
    ap.add_argument("--embedder", default="e5", help="verify.embedder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = WORK / f"corpus-{args.rows}-s{args.seed}.jsonl"
    if not corpus.exists():
        subprocess.run(
            [sys.executable, str(HERE / "make_corpus.py"), "--rows", str(args.rows), "--seed", str(args.seed), "-o", str(corpus)],
            check=True,
        )
    out = WORK / f"verified-{args.rows}"
    pipeline = WORK / "verify-bench.yaml"
    pipeline.write_text(f"verify:\n  embedder: {args.embedder}\n", encoding="utf-8")
    start = time.perf_counter()
    cmd = [
        "corpusalign",
        "build",
        "--src",
        "en",
        "--tgt",
        "de,ja",
        "-i",
        str(corpus),
        "-o",
        str(out),
        "-p",
        str(pipeline),
        "--quiet",
        "--overwrite",
    ]
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    stats = json.loads((out / "stats.json").read_text())
    build_s = stats["build_seconds"]
    verify = stats["steps"]["verify"]
    model_s = verify["counters"]["model_ms"] / 1000
    texts = verify["counters"]["texts_embedded"]
    outside = build_s - model_s
    result = {
        "rows": args.rows,
        "embedder": args.embedder,
        "build_seconds": round(build_s, 1),
        "process_wall_seconds": round(wall, 1),
        "model_seconds": round(model_s, 1),
        "texts_embedded": texts,
        "texts_per_s_in_model": round(texts / model_s, 1) if model_s else None,
        "outside_model_seconds": round(outside, 1),
        "outside_model_share": round(outside / build_s, 4),
        "target": "outside_model_share <= 0.10",
        "pass": outside / build_s <= 0.10,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "build_model_share.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'rows':<24}{args.rows:>12,}")
    for key in (
        "build_seconds",
        "process_wall_seconds",
        "model_seconds",
        "texts_embedded",
        "texts_per_s_in_model",
        "outside_model_seconds",
    ):
        print(f"{key:<24}{result[key]:>12}")
    print(
        f"{'outside the model':<24}{result['outside_model_share']:>12.1%}  {'PASS' if result['pass'] else 'FAIL'} (target <= 10%)"
    )
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
