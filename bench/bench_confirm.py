"""Confirming near-duplicate candidates: ``similar_pairs`` against one ``jaccard`` call per pair.

Stage 2 confirms every LSH candidate pair by the exact Jaccard similarity of character 5-grams, in
Python. The pairs are made like the candidates of the scale benchmark's corpus: a first text of three
Tatoeba sentences and five texts that share one to three of them and add up to two others, casefolded
as the dedup text is, sorted by their first text as the confirm unit sorts them. Both ways must give
the same answers (checked); the figure is microseconds per pair, measured in the same run.

Usage::

    python bench/bench_confirm.py            # prints one JSON line
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from corpusalign.steps.dedup import jaccard, similar_pairs

REPO = Path(__file__).resolve().parent.parent
SOURCES = (
    REPO.parent / "shared" / "data" / "parallel" / "tatoeba_en_de_ja.dev.jsonl",
    REPO / "corpusalign" / "data" / "sample" / "tatoeba_en_de_ja.jsonl",
)


def main() -> None:
    source = next(p for p in SOURCES if p.exists())
    sents = [
        json.loads(line)["en"].casefold()
        for line in source.read_text().splitlines()
        if line.strip() and json.loads(line).get("en")
    ]
    rng = random.Random(0)
    pairs = []
    for _ in range(3000):
        first = rng.sample(sents, 3)
        for _ in range(5):
            second = first[: rng.choice([1, 2, 3])] + rng.sample(sents, rng.choice([0, 1, 2]))
            pairs.append((" ".join(first), " ".join(second)))
    pairs.sort(key=lambda p: p[0])
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    t = time.perf_counter()
    one_by_one = [jaccard(a, b, 5) >= 0.8 for a, b in pairs]
    per_pair = time.perf_counter() - t
    t = time.perf_counter()
    batched = similar_pairs(firsts, seconds, 5, 0.8)
    fast = time.perf_counter() - t
    if batched != one_by_one:
        raise SystemExit("similar_pairs and jaccard disagree")
    print(
        json.dumps(
            {
                "pairs": len(pairs),
                "similar": sum(batched),
                "jaccard_us_per_pair": round(per_pair / len(pairs) * 1e6, 1),
                "similar_pairs_us_per_pair": round(fast / len(pairs) * 1e6, 1),
                "speedup": round(per_pair / fast, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
