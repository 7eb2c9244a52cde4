"""Probe a LaBSE-style adapter on the bundled multilingual-e5-small before building it into the gate.

For each held-out split of ``bench_quality.py`` (seed), a linear map ``W`` (384 x 384, starting at the
identity) is trained on the *calibration* concepts' good pairs only (English -> de/ja/sw, every data
set) with a translation-ranking loss (``adapter.py``: in-batch softmax over cosines with an additive
margin, both directions, as LaBSE trains). Then, on the seed's held-out labelled pairs
(``--dump-pairs`` of ``bench_quality.py``), it compares how well the raw and the adapted cosine
separate good pairs from each fault kind (AUC), per domain and for Swahili, over all pairs and over
the pairs the shipped gate keeps (the misses an adapted cosine would have to catch). It reads the
benchmark's embedding cache, so it embeds nothing.

    python bench/bench_quality.py --embedding-cache bench/_work/quality-emb.npz --dump-pairs bench/_work/final/pairs.parquet
    python bench/probe_adapter.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main(argv: list[str] | None = None) -> int:
    from adapter import fit_adapter
    from bench_quality import good_pairs, load_concepts, split_concepts
    from probe_target_gap import auc

    from corpusalign.verify.scores import domain_of

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--pairs", default=str(HERE / "_work" / "final" / "pairs-seed{}.parquet"))
    ap.add_argument("--embedding-cache", type=Path, default=HERE / "_work" / "quality-emb.npz")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--margin", type=float, default=0.3)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--reg", type=float, default=1e-2)
    args = ap.parse_args(argv)
    data = np.load(args.embedding_cache, allow_pickle=False)
    index = {t: i for i, t in enumerate(data["texts"].tolist())}
    vectors = data["vectors"]
    concepts = load_concepts(None)

    def vec(texts: list[str]) -> np.ndarray:
        return vectors[[index[t] for t in texts]]

    def normed(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)

    print(f"{'seed':<5}{'cell':<16}{'kind':<20}{'n':>6}{'AUC raw':>9}{'adapted':>9}{'kept raw':>10}{'adapted':>9}")
    for seed in args.seeds:
        calib, _ = split_concepts(concepts, 0.5, seed)
        train = good_pairs(calib).filter(pl.col("src_text").is_in(list(index)) & pl.col("tgt_text").is_in(list(index)))
        adapter = fit_adapter(
            vec(train["src_text"].to_list()),
            vec(train["tgt_text"].to_list()),
            epochs=args.epochs,
            margin=args.margin,
            scale=args.scale,
            reg=args.reg,
            seed=seed,
        )
        pairs = pl.read_parquet(args.pairs.format(seed))
        pairs = pairs.with_columns(pl.col("src_text").map_elements(domain_of, return_dtype=pl.String).alias("domain"))
        s, t = vec(pairs["src_text"].to_list()), vec(pairs["tgt_text"].to_list())
        raw = (normed(s) * normed(t)).sum(1)
        adapted = (adapter.apply(s) * adapter.apply(t)).sum(1)
        pairs = pairs.with_columns(pl.Series("raw", raw), pl.Series("adapted", adapted))
        gap = float(np.abs(raw - pairs["cos"].to_numpy()).max())
        print(f"# seed {seed}: {train.height} calibration pairs; |raw - gate cos| <= {gap:.4f}")
        cells = [("all", pl.lit(True)), *((d, pl.col("domain") == d) for d in ("short", "sentence", "paragraph"))]
        cells.append(("sw", pl.col("lang") == "sw"))
        for name, cond in cells:
            cell = pairs.filter(cond)
            good = cell.filter(pl.col("kind") == "good")
            for kind in sorted(set(cell["kind"].to_list()) - {"good"}):
                bad = cell.filter(pl.col("kind") == kind)
                if bad.height < 20:
                    continue
                gk, bk = good.filter(pl.col("keep")), bad.filter(pl.col("keep"))
                kept = (
                    (auc(gk["raw"].to_numpy(), bk["raw"].to_numpy()), auc(gk["adapted"].to_numpy(), bk["adapted"].to_numpy()))
                    if bk.height >= 10
                    else (float("nan"), float("nan"))
                )
                print(
                    f"{seed:<5}{name:<16}{kind:<20}{bad.height:>6}"
                    f"{auc(good['raw'].to_numpy(), bad['raw'].to_numpy()):>9.3f}"
                    f"{auc(good['adapted'].to_numpy(), bad['adapted'].to_numpy()):>9.3f}{kept[0]:>10.3f}{kept[1]:>9.3f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
