"""Throughput of the openai translator against a loopback OpenAI-compatible server.

One command::

    python bench/bench_openai.py

1. starts the fake server of the tests (``tests/fake_openai.py``) on 127.0.0.1 with a fixed
   per-request latency (``--latency``, 30 ms: a model server's work) and no faults;
2. for each concurrency bound (``--concurrency``, 1, 4, 16, 64) translates distinct texts with
   :class:`OpenAITranslator` (chat API, one text per request, no cache) for about ``--seconds``
   seconds, ``--rounds`` times, and reports the best round in requests/s, next to the ideal
   ``concurrency / latency``; the largest number of requests the server saw in flight at once shows
   that the bound held;
3. runs once more with a rate limit (``--rate``, 100 requests/s, at concurrency 16) and reports the
   rate achieved;
4. prints a table and writes ``bench/results/openai.json`` (with the machine's load and versions).

Client and server share the machine's CPUs, so at high concurrency the figure is bounded by Python's
HTTP handling on both sides, not by the bound. ``--help`` lists the options. About 30 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from corpusalign.config import load_config  # noqa: E402
from corpusalign.translate.openai import OpenAITranslator  # noqa: E402

RESULTS = HERE / "results" / "openai.json"


def load_fake_server() -> Any:
    """``tests/fake_openai.py``, imported by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("fake_openai", REPO / "tests" / "fake_openai.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_openai"] = module
    spec.loader.exec_module(module)
    return module


def translator(base_url: str, concurrency: int, rate: float | None) -> OpenAITranslator:
    openai = {"base_url": base_url, "api_key_env": None, "concurrency": concurrency, "requests_per_second": rate}
    cfg = load_config(src="en", tgt=["de"], translate__translator="openai", translate__model="fake-mt", translate__openai=openai)
    return OpenAITranslator(cfg)


def run(fake: Any, concurrency: int, rate: float | None, n: int, tag: str) -> dict[str, Any]:
    """Translate ``n`` distinct texts; requests/s and what the server saw."""
    mt = translator(fake.base_url, concurrency, rate)
    texts = [f"Benchmark sentence {tag} number {i}, with some words." for i in range(n)]
    mt.setup()
    fake.reset()
    t0 = time.perf_counter()
    out = mt.translate_batch(texts, "en", "de")
    seconds = time.perf_counter() - t0
    mt.close()
    failed = sum(not isinstance(r, str) for r in out)
    latencies = sorted(s.end - s.start for s in fake.seen)
    return {
        "requests": len(fake.seen),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(fake.seen) / seconds, 1),
        "max_in_flight": fake.max_in_flight,
        "server_p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "failed": failed,
        "retries": mt.retries,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.03, help="server latency per request, seconds (default 0.03)")
    ap.add_argument("--concurrency", default="1,4,16,64", help="concurrency bounds (default 1,4,16,64)")
    ap.add_argument("--seconds", type=float, default=2.0, help="target seconds per round (default 2)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds per bound; the best is reported (default 2)")
    ap.add_argument("--rate", type=float, default=100.0, help="requests/s of the rate-limited run (default 100)")
    ap.add_argument("--rate-concurrency", type=int, default=16, help="concurrency of the rate-limited run (default 16)")
    args = ap.parse_args()
    fake_openai = load_fake_server()
    bounds = [int(c) for c in args.concurrency.split(",")]
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with fake_openai.FakeOpenAI(latency_s=args.latency) as fake:
        run(fake, 4, None, 40, "warm-up")
        for c in bounds:
            ideal = c / args.latency
            n = max(40, int(min(ideal, 1500) * args.seconds))
            rounds = [run(fake, c, None, n, f"c{c}r{r}") for r in range(args.rounds)]
            best = max(rounds, key=lambda r: r["requests_per_s"])
            row = {"concurrency": c, "rate_limit": None, "ideal_requests_per_s": round(ideal, 1), **best}
            row["max_in_flight"] = max(r["max_in_flight"] for r in rounds)  # over all rounds
            row["requests_per_s_rounds"] = [r["requests_per_s"] for r in rounds]
            rows.append(row)
            print(f"concurrency {c:>3}: {best['requests_per_s']:8.1f} req/s  (load {os.getloadavg()[0]:.1f})", flush=True)
        c, rate = args.rate_concurrency, args.rate
        limited = run(fake, c, rate, int(rate * args.seconds), "rate")
        rows.append({"concurrency": c, "rate_limit": rate, "ideal_requests_per_s": rate, **limited})
        rows[-1]["requests_per_s_rounds"] = [limited["requests_per_s"]]
        print(f"concurrency {c:>3}, rate limit {rate:g}/s: {limited['requests_per_s']:8.1f} req/s", flush=True)
    load_after = os.getloadavg()

    bound_held = all(r["max_in_flight"] <= r["concurrency"] for r in rows)
    result = {
        "server": "tests/fake_openai.py (ThreadingHTTPServer, 127.0.0.1, HTTP/1.1 keep-alive)",
        "api": "chat",
        "latency_s": args.latency,
        "seconds_per_round": args.seconds,
        "rounds": args.rounds,
        "runs": rows,
        "bound_held": bound_held,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "httpx": httpx.__version__,
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(load_after[0], 2),
        },
    }
    print()
    print(f"loopback server, {1000 * args.latency:g} ms per request; best of {args.rounds} rounds (rate-limited: one)")
    head = ("bound", "rate limit", "requests", "req/s", "ideal", "max in flight", "server p50 ms", "failed")
    print(f"{head[0]:>5} {head[1]:>10} {head[2]:>8} {head[3]:>8} {head[4]:>8} {head[5]:>13} {head[6]:>13} {head[7]:>6}")
    for r in rows:
        limit = f"{r['rate_limit']:g}/s" if r["rate_limit"] else "-"
        print(
            f"{r['concurrency']:>5} {limit:>10} {r['requests']:>8} {r['requests_per_s']:>8.1f} "
            f"{r['ideal_requests_per_s']:>8.1f} {r['max_in_flight']:>13} {r['server_p50_ms']:>13.1f} {r['failed']:>6}"
        )
    print(f"concurrency bound held in every run: {bound_held}")
    print(f"load average (1 min): {load_before[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
