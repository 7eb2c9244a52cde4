"""The local executor vs the Ray executor on the same machine, same input, same configuration.

    python bench/bench_executors.py            # about 6 minutes on 2 CPUs

Two builds, each run by both executors in fresh ``corpusalign build`` processes, alternating
(local, ray, local, ray), the faster of each pair reported:

1. **pipeline**: the synthetic en/de/ja corpus of ``--rows`` rows (``bench/make_corpus.py``) with
   verification off (``bench/pipelines/no-verify.yaml``): CPU steps only, Ray tasks only;
2. **verified**: the bundled sample (UDHR + Tatoeba, en -> de, ja, sw) with verification on (the
   bundled e5 embedder): the embedding model as a Ray actor.

The Ray builds start a local Ray instance with ``--num-cpus`` CPUs (default 2, this machine's
count) inside the build process, so their wall time includes Ray's start (measured separately
here as ``ray.init`` + ``ray.shutdown`` in a fresh process). The manifests' counts must be equal.
Results go to ``bench/results/executors.json``.
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
WORK = HERE / "_work"
RESULTS = HERE / "results"
NO_VERIFY = HERE / "pipelines" / "no-verify.yaml"
EXE = Path(sys.executable).parent / "corpusalign"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def ray_start_seconds(num_cpus: int) -> float:
    code = (
        "import time, ray; t = time.perf_counter(); "
        f"ray.init(num_cpus={num_cpus}, include_dashboard=False, logging_level='ERROR'); ray.shutdown(); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the synthetic corpus (pipeline build)")
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-verified", action="store_true", help="only the pipeline build")
    ap.add_argument("--results", type=Path, default=RESULTS / "executors.json")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = WORK / f"corpus-{args.rows}-s0.jsonl"
    if not corpus.exists():
        subprocess.run([sys.executable, str(HERE / "make_corpus.py"), "--rows", str(args.rows), "-o", str(corpus)], check=True)
    cases = {"pipeline": ["--src", "en", "--tgt", "de,ja", "-i", str(corpus), "-p", str(NO_VERIFY)]}
    if not args.skip_verified:
        cases["verified"] = ["--src", "en", "--tgt", "de,ja,sw"]  # no -i: the bundled sample, verification on
    load_before = os.getloadavg()
    result: dict = {"rows": args.rows, "num_cpus": args.num_cpus, "cases": {}}
    result["ray_start_seconds"] = round(ray_start_seconds(args.num_cpus), 2)
    for name, build_args in cases.items():
        times: dict[str, list[float]] = {"local": [], "ray": []}
        counts = {}
        for _ in range(args.repeat):
            for ex in ("local", "ray"):
                out = WORK / f"executors-{name}-{ex}"
                cmd = [str(EXE), "build", *build_args, "-o", str(out), "--quiet", "--overwrite", "--no-report", "--executor", ex]
                if ex == "ray":
                    cmd += ["--num-cpus", str(args.num_cpus)]
                times[ex].append(timed(cmd))
                counts[ex] = json.loads((out / "manifest.json").read_text())["counts"]
        if counts["local"] != counts["ray"]:
            print(f"{name}: the executors' manifests differ: {counts}", file=sys.stderr)
            return 1
        best = {ex: min(t) for ex, t in times.items()}
        result["cases"][name] = {
            "rows": counts["local"]["rows"],
            "local_seconds": [round(t, 2) for t in times["local"]],
            "ray_seconds": [round(t, 2) for t in times["ray"]],
            "ray_over_local": round(best["ray"] / best["local"], 3),
        }
    result["machine"] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Ray start + shutdown alone: {result['ray_start_seconds']:.1f} s")
    print("| build | kept rows | local s (runs) | ray s (runs) | ray / local |")
    print("|---|---:|---:|---:|---:|")
    for name, c in result["cases"].items():
        local = " / ".join(f"{t:.1f}" for t in c["local_seconds"])
        ray = " / ".join(f"{t:.1f}" for t in c["ray_seconds"])
        print(f"| {name} | {c['rows']:,} | {local} | {ray} | {c['ray_over_local']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
