"""Driver and worker memory, and time, of a build at 1M and 10M concepts, on the local and Ray executors.

For each size, a synthetic en/de/ja corpus of ``bench/make_corpus.py --shuffle-words`` (one concept =
three rows, 3% exact and 2% near duplicates planted; each record's English and German words in an
order of its own, so records that draw the same Tatoeba sentences are rarely near-duplicate
candidates and dedup's work is almost only the planted duplicates at every size) split into ``--files`` JSONL files (the
earlier corpora: ``--corpus distinct``, no chance repeats of a record's set of sentences but chance
near duplicates that grow with the square of the corpus; ``--corpus repeats``, chance repeats too), built with the
non-model pipeline (``bench/pipelines/no-verify.yaml``: everything but embedding verification),
report included, ``--quiet``. While the build runs, every 100 ms: the RSS of the build process
(the driver) and of each of its descendant processes (Ray's workers, raylet and object store; none
on the local executor), from ``/proc``, and the stage the build's working files show
(``rss_by_stage.stage_of``), for the driver's peak and the seconds of each stage. Results go to ``bench/results/scale.json``::

    python bench/bench_scale.py --concepts 1000000 10000000 --executors local ray

The targets (issue #19): the driver's peak at 10M <= 1.3x its peak at 1M; time linear within 10%
(time at 10M / time at 1M between 9 and 11). This machine's CPUs change speed with outside load, so
each run also records a speed probe beside the build and its time in probe units (:func:`probe`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
from rss_by_stage import stage_of

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "_work" / "scale"
NO_VERIFY = BENCH / "pipelines" / "no-verify.yaml"


def make_inputs(concepts: int, files: int, corpus: str) -> Path:
    """``files`` JSONL files holding the corpus of ``concepts`` records, in order (made once, then kept)."""
    name = f"corpus-{concepts}" + ("" if corpus == "repeats" else f"-{corpus}")
    folder = WORK / name
    done = WORK / f"{name}.done.json"  # not in the folder: every .json file there is an input
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    whole = WORK / f"{name}.jsonl"
    make = [sys.executable, str(BENCH / "make_corpus.py"), "--rows", str(3 * concepts), "--seed", "0", "-o", str(whole)]
    make += {"distinct": ["--distinct"], "shuffled": ["--shuffle-words"], "repeats": []}[corpus]
    subprocess.run(make, check=True)
    per = -(-concepts // files)
    with open(whole, "rb") as src:
        for k in range(files):
            with open(folder / f"part-{k:03d}.jsonl", "wb") as dst:
                for _ in range(per):
                    line = src.readline()
                    if not line:
                        break
                    dst.write(line)
    whole.unlink()
    done.write_text(json.dumps({"concepts": concepts, "files": files}))
    return folder


def _rss(proc: psutil.Process) -> int:
    try:
        return proc.memory_info().rss
    except psutil.Error:
        return 0


#: Seconds between two runs of the speed probe (:func:`probe`) while a build runs.
PROBE_EVERY = 1.0


def probe() -> float:
    """Seconds a fixed piece of pure-Python work takes now (about 12 ms on this machine's fast CPU).

    The virtual CPUs of this machine change speed under load from elsewhere on the host: this
    probe, run every second with the machine otherwise idle, took 12.4 ms or 21-22 ms at random,
    and a 1M build took 181 to 279 s from one hour to the next. So a run records the probe beside
    the build, at raised priority (it measures the CPU, not the build's share of it), and the time
    ratio between sizes is given twice: as measured, and with each second weighted by the
    machine's speed at that moment (``probe_work``).
    """
    t = time.perf_counter()
    s = 0
    for i in range(300_000):
        s += i * i
    return time.perf_counter() - t


def batch_seconds_by_tenth(times: list[float]) -> list[float]:
    """Mean seconds between staged batches in each tenth of stage 1b, from the times their files appeared:
    flat when a batch costs the same at the end of the corpus as at its start."""
    gaps = [b - a for a, b in zip(times, times[1:])]
    tenth = len(gaps) // 10
    if tenth == 0:
        return []
    return [round(sum(gaps[k * tenth : (k + 1) * tenth]) / tenth, 3) for k in range(10)]


def _normal_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except PermissionError:
        pass


def run_build(inputs: Path, out: Path, executor: str, num_cpus: int) -> dict[str, object]:
    cmd = [str(Path(sys.executable).parent / "corpusalign"), "build", "--src", "en", "--tgt", "de,ja", "-p", str(NO_VERIFY)]
    cmd += ["-i", str(inputs), "-o", str(out), "--quiet", "--overwrite"]
    if executor == "ray":
        cmd += ["--executor", "ray", "--num-cpus", str(num_cpus)]
    subprocess.run(["rm", "-rf", str(out)], check=True)  # stage_of reads the output's working files
    start = last = last_probe = time.perf_counter()
    probe_s = probe()
    probes: list[float] = [probe_s]
    work = 0.0  # the build's seconds, each divided by the probe's seconds at that moment
    proc = subprocess.Popen(cmd, preexec_fn=_normal_priority)
    driver = psutil.Process(proc.pid)
    peak_driver = peak_worker = peak_total = 0
    worker_name = ""
    by_stage: dict[str, list[float]] = {}  # stage -> [driver peak RSS, seconds]
    staged: dict[str, float] = {}  # stage-1 part file -> when it was first seen
    stage1 = out / "_work" / "stage1"
    while proc.poll() is None:
        d = _rss(driver)
        peak_driver = max(peak_driver, d)
        now = time.perf_counter()
        seen = by_stage.setdefault(stage_of(out), [0, 0.0])
        work += (now - last) / probe_s
        seen[0], seen[1], last = max(seen[0], d), seen[1] + now - last, now
        if now - last_probe >= PROBE_EVERY:
            probe_s, last_probe = probe(), now
            probes.append(probe_s)
        for name in os.listdir(stage1) if stage1.is_dir() else ():
            if name.endswith(".parquet"):  # not the temporary file of a write under way
                staged.setdefault(name, now - start)
        total = d
        try:
            kids = driver.children(recursive=True)
        except psutil.Error:
            kids = []
        for k in kids:
            r = _rss(k)
            total += r
            if r > peak_worker:
                peak_worker = r
                try:
                    worker_name = " ".join(k.cmdline())[:60].strip()
                except psutil.Error:
                    pass
        peak_total = max(peak_total, total)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({proc.returncode}): {' '.join(cmd)}")
    manifest = json.loads((out / "manifest.json").read_text())
    steps = json.loads((out / "stats.json").read_text())["steps"]
    dedup = steps.get("dedup", {}).get("counters", {})
    return {
        "executor": executor,
        "wall_s": round(wall, 1),
        "driver_peak_mib": round(peak_driver / 2**20),
        "largest_child_peak_mib": round(peak_worker / 2**20),
        "largest_child": worker_name,
        "all_processes_peak_mib": round(peak_total / 2**20),
        "driver_peak_mib_by_stage": {k: round(v[0] / 2**20) for k, v in by_stage.items()},
        "seconds_by_stage": {k: round(v[1], 1) for k, v in by_stage.items()},
        # the machine's speed during the build (see probe): the probe's time-weighted harmonic mean, and
        # the build's time in probe units (wall seconds / probe seconds, summed): compare these between sizes
        "probe_ms": round(wall / work * 1e3, 2),
        "probe_ms_fastest": round(min(probes) * 1e3, 2),
        "probe_work": round(work),
        "rows_kept": manifest["counts"]["rows"],
        "accounting_ok": manifest["accounting"]["ok"],
        "dedup": dedup,
        "stage1_batch_s_by_tenth": batch_seconds_by_tenth(sorted(staged.values())),
        # each step's own seconds, summed over its batches (on Ray: over every worker, so CPU-seconds)
        "step_seconds": {name: round(st.get("seconds", 0.0), 1) for name, st in steps.items()},
    }


def main() -> None:
    try:  # the probe measures the CPU, not what the build leaves of it (needs root; the build runs at 0)
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except PermissionError:
        print("bench_scale: not root, so the speed probe runs at the build's priority", file=sys.stderr)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concepts", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--executors", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    ap.add_argument("--files", type=int, default=10, help="input files per corpus (Ray reads them in parallel)")
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--keep", action="store_true", help="keep the built corpora")
    ap.add_argument(
        "--corpus",
        choices=["shuffled", "distinct", "repeats"],
        default="shuffled",
        help="shuffled (default): dedup's work is almost only the planted duplicates at every size "
        "(make_corpus.py --shuffle-words); "
        "distinct: no chance exact repeats, chance near-duplicate candidates grow with the square of the corpus "
        "(make_corpus.py --distinct); repeats: chance exact repeats too",
    )
    ap.add_argument("-o", "--results", type=Path, default=BENCH / "results" / "scale.json")
    args = ap.parse_args()
    results = json.loads(args.results.read_text()) if args.results.exists() else []
    for concepts in args.concepts:
        inputs = make_inputs(concepts, args.files, args.corpus)
        for executor in args.executors:
            out = WORK / f"build-{concepts}-{executor}"
            r = {"concepts": concepts, "rows": 3 * concepts, "files": args.files, "corpus": args.corpus}
            r |= run_build(inputs, out, executor, args.num_cpus)
            r["load_avg_1m"] = round(psutil.getloadavg()[0], 2)
            print(json.dumps(r), flush=True)
            key = (concepts, executor, args.corpus)
            results = [x for x in results if (x["concepts"], x["executor"], x.get("corpus", "repeats")) != key] + [r]
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(results, indent=2) + "\n")
            if not args.keep:
                subprocess.run(["rm", "-rf", str(out)], check=True)
    by = {(r["concepts"], r["executor"], r.get("corpus", "repeats")): r for r in results}
    for executor in args.executors:
        small, big = (by.get((c, executor, args.corpus)) for c in (1_000_000, 10_000_000))
        if small and big:
            print(
                f"{executor}: driver peak {big['driver_peak_mib']} / {small['driver_peak_mib']} MiB = "
                f"{big['driver_peak_mib'] / small['driver_peak_mib']:.2f}x (target <= 1.3x); "
                f"time {big['wall_s']} / {small['wall_s']} s = {big['wall_s'] / small['wall_s']:.2f}x (target 9-11x)"
            )


if __name__ == "__main__":
    main()
