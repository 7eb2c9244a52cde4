"""Probe a candidate signal for appended content: a target's cosine to the most similar other target.

An `extra_content` fault is a translation with another pair's text appended, so its embedding lies
close to that other target. This probe measures, on the held-out pairs that ``bench_quality.py``
dumped with its decisions, how well ``target_gap = max cos(target, other target of the pool) -
cos(target, source)`` separates the faults from the good pairs, per domain: over all of them, and
over only those the gate keeps (the misses a new gate input would have to catch). It reads the
benchmark's embedding cache, so it embeds nothing.

    python bench/bench_quality.py --seeds 0 2 --embedding-cache bench/_work/quality-emb.npz \
        --dump-pairs bench/_work/final/pairs.parquet
    python bench/probe_target_gap.py --seeds 0 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def auc(good: np.ndarray, bad: np.ndarray) -> float:
    """P(score of a good pair > score of a faulty one), ties counted half."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([good, bad]))
    return float((ranks[: len(good)].sum() - len(good) * (len(good) + 1) / 2) / (len(good) * len(bad)))


def main(argv: list[str] | None = None) -> int:
    from corpusalign.verify.scores import domain_of

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--pairs", default=str(HERE / "_work" / "final" / "pairs-seed{}.parquet"))
    ap.add_argument("--embedding-cache", type=Path, default=HERE / "_work" / "quality-emb.npz")
    args = ap.parse_args(argv)
    data = np.load(args.embedding_cache, allow_pickle=False)
    index = {t: i for i, t in enumerate(data["texts"].tolist())}
    vectors = data["vectors"]
    print(f"{'seed':<6}{'domain':<11}{'AUC all':>9}{'AUC kept':>10}{'faults kept':>13}")
    for seed in args.seeds:
        pairs = pl.read_parquet(args.pairs.format(seed)).with_row_index("_i")
        pairs = pairs.with_columns(pl.col("src_text").map_elements(domain_of, return_dtype=pl.String).alias("domain"))
        gaps = []
        for _, part in pairs.group_by("_round", "lang"):
            tgt = vectors[[index[t] for t in part["tgt_text"].to_list()]]
            src = vectors[[index[t] for t in part["src_text"].to_list()]]
            sims = tgt @ tgt.T
            np.fill_diagonal(sims, -np.inf)
            gaps.append(pl.DataFrame({"_i": part["_i"], "target_gap": sims.max(axis=1) - (tgt * src).sum(axis=1)}))
        pairs = pairs.join(pl.concat(gaps), on="_i")
        for domain in ("short", "sentence", "paragraph"):
            cell = pairs.filter(pl.col("domain") == domain)
            good, bad = cell.filter(pl.col("kind") == "good"), cell.filter(pl.col("kind") == "extra_content")
            missed = bad.filter(pl.col("keep"))
            if bad.height < 5:
                continue
            all_auc = auc(-good["target_gap"].to_numpy(), -bad["target_gap"].to_numpy())
            kept = good.filter(pl.col("keep"))
            kept_auc = (
                auc(-kept["target_gap"].to_numpy(), -missed["target_gap"].to_numpy()) if missed.height >= 3 else float("nan")
            )
            print(f"{seed:<6}{domain:<11}{all_auc:>9.3f}{kept_auc:>10.3f}{missed.height:>13}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
