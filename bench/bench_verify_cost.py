"""Verification cost per pair: this checkout against an earlier commit, on the same pairs, in one run.

What a build spends per verified pair is (a) the embedding model's time for the texts the verify step
embeds and (b) everything else: the pair scores (``pair_features``: margins, length, numbers,
placeholders, copies, scripts, domains, the language-ID look at copies), the gate's probability and
its decision (``decide``). This benchmark measures both for the current tree and for ``--baseline``
(default: the release before domain-aware gates), each in its own process importing its own source
(a ``git worktree`` of the baseline under ``bench/_work/``):

1. the same real pairs for both (Tatoeba en/de/ja, CLDR names and Debian UI strings from
   ``../shared/data/parallel``), in pools of ``--pool`` pairs per language, as a build batches them;
2. embeddings computed once with the build's default embedder and shared (the model call is the same
   code in both versions; each version reports how many texts it asks to embed, prefixes included);
3. per version, the best of ``--repeats`` timed passes of scores + probability + decision;
4. the model's time per text, timed once on a sample of the same texts.

Cost per pair = model time per text x texts embedded per pair + the rest. Target: the current tree
within 10% of the baseline. Run it on a quiet machine: both versions are timed in the same run, one
after the other, so a change of load between them moves the ratio.

    python bench/bench_verify_cost.py                      # about 3 minutes on 2 cores
    python bench/bench_verify_cost.py --baseline 024eaac --pairs 6000   # Tatoeba only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data" / "parallel"
WORK = HERE / "_work"
FILES = ("tatoeba_en_de_ja.dev.jsonl", "cldr_en_de_ja_sw.names.jsonl", "gettext_en_de_ja.ui.jsonl")
BASELINE = "024eaac"  # the last release whose gates did not know domains

#: Runs inside each version's process: scores + probability + decision over the pools, best of N.
WORKER = r"""
import json, sys, time
import numpy as np, polars as pl
src_root, data_path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, src_root)
import corpusalign
from corpusalign.verify.features import pair_features
from corpusalign.verify.gate import DEFAULT_GATES, decide, predict_proba
assert corpusalign.__file__.startswith(src_root), corpusalign.__file__
data = np.load(data_path, allow_pickle=False)
texts = data["texts"].tolist()
index = {t: i for i, t in enumerate(texts)}
vecs = data["vectors"]
pools = json.loads(str(data["pools"]))
asked = set()

def encode(some):
    asked.update(some)
    return vecs[[index[t] for t in some]]

best = None
for _ in range(repeats):
    started = time.perf_counter()
    for pool in pools:
        src, tgt, lang = pool["src"], pool["tgt"], pool["lang"]
        try:
            feats = pair_features(src, tgt, encode(src), encode(tgt), lang, margin_k=4, encode=encode, src_lang="en")
        except TypeError:  # a version without language ID's look at copies
            feats = pair_features(src, tgt, encode(src), encode(tgt), lang, margin_k=4, encode=encode)
        feats = feats.with_columns(pl.lit(0.9, dtype=pl.Float32).alias("lid_expected"))
        gate = DEFAULT_GATES.get(lang, DEFAULT_GATES["*"])
        feats = feats.with_columns(pl.Series("verify_p", predict_proba(feats, gate), dtype=pl.Float32))
        decide(feats, gate, [lang] * feats.height, lang, [0.9] * feats.height)
    took = time.perf_counter() - started
    best = took if best is None else min(best, took)
print(json.dumps({"seconds": best, "pairs": sum(len(p["src"]) for p in pools), "texts_embedded": len(asked)}))
"""


def load_pools(n_pairs: int, pool: int) -> tuple[list[dict], list[str]]:
    """Pools of real pairs per target language (de, ja), in input order, and every text they may embed."""
    rows = []
    for name in FILES:
        path = SHARED / name
        if not path.is_file():
            raise SystemExit(f"missing {path}: this benchmark needs the shared parallel data")
        with open(path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f]
    pools, texts = [], []
    for lang in ("de", "ja"):
        pairs = [(r["en"], r[lang]) for r in rows if r.get("en") and r.get(lang)][: n_pairs // 2]
        for i in range(0, len(pairs), pool):
            chunk = pairs[i : i + pool]
            pools.append({"lang": lang, "src": [s for s, _ in chunk], "tgt": [t for _, t in chunk]})
            texts += [s for s, _ in chunk] + [t for _, t in chunk]
    return pools, texts


def with_prefixes(texts: list[str]) -> list[str]:
    from corpusalign.verify.scores import target_prefix

    out = list(dict.fromkeys(texts))
    out += [p for t in out if (p := target_prefix(t)) is not None]
    return list(dict.fromkeys(out))


def worktree(ref: str) -> Path:
    path = WORK / f"src-{ref}"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), ref], check=True, capture_output=True)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=BASELINE, help=f"git ref to compare with (default {BASELINE})")
    ap.add_argument("--pairs", type=int, default=15000, help="pairs at most, half de, half ja (default 15000: all of them)")
    ap.add_argument("--pool", type=int, default=1000, help="pairs per margin pool (default 1000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--embedder", default="e5")
    ap.add_argument("--model-sample", type=int, default=1000, help="texts timed through the model (default 1000)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "verify_cost.json")
    args = ap.parse_args(argv)

    from corpusalign.embed import make_embedder

    pools, texts = load_pools(args.pairs, args.pool)
    texts = with_prefixes(texts)
    embedder = make_embedder(args.embedder)
    embedder.setup()
    sample = texts[:: max(1, len(texts) // args.model_sample)][: args.model_sample]
    started = time.perf_counter()
    embedder.encode(sample)
    model_s_per_text = (time.perf_counter() - started) / len(sample)
    print(f"model: {model_s_per_text * 1000:.2f} ms per text ({embedder.describe()})", flush=True)
    vectors = embedder.encode(texts)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pools.npz"
        np.savez(data, texts=np.array(texts, dtype=str), vectors=vectors, pools=np.array(json.dumps(pools)))
        runs = {}
        for name, root in (("baseline " + args.baseline, worktree(args.baseline)), ("current", REPO)):
            env = {**os.environ, "PYTHONPATH": str(root)}
            out = subprocess.run(
                [sys.executable, "-c", WORKER, str(root), str(data), str(args.repeats)],
                check=True,
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp,
            )
            runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
    rows = {}
    for name, r in runs.items():
        rest = r["seconds"] / r["pairs"]
        model = model_s_per_text * r["texts_embedded"] / r["pairs"]
        rows[name] = {
            **r,
            "texts_per_pair": round(r["texts_embedded"] / r["pairs"], 4),
            "model_ms_per_pair": round(model * 1000, 4),
            "rest_ms_per_pair": round(rest * 1000, 4),
            "total_ms_per_pair": round((model + rest) * 1000, 4),
        }
    base, cur = rows[f"baseline {args.baseline}"], rows["current"]
    ratio = cur["total_ms_per_pair"] / base["total_ms_per_pair"]
    print(f"\n{'':<20}{'texts/pair':>12}{'model ms/pair':>15}{'rest ms/pair':>14}{'total ms/pair':>15}")
    for name, r in rows.items():
        print(
            f"{name:<20}{r['texts_per_pair']:>12.3f}{r['model_ms_per_pair']:>15.3f}{r['rest_ms_per_pair']:>14.3f}"
            f"{r['total_ms_per_pair']:>15.3f}"
        )
    verdict = "PASS" if ratio <= 1.10 else "FAIL"
    print(f"\ncost per pair, current / baseline: {ratio:.3f} (target <= 1.10): {verdict}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "python bench/bench_verify_cost.py " + " ".join(sys.argv[1:] if argv is None else argv),
                "embedder": embedder.describe(),
                "model_ms_per_text": round(model_s_per_text * 1000, 4),
                "runs": rows,
                "ratio": round(ratio, 4),
                "verdict": verdict,
                "loadavg": os.getloadavg(),
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
