"""Probe: how far could a richer model over the gate's inputs go, on the held-out pairs themselves?

The gate is a logistic regression calibrated on synthetic faults of the calibration concepts. This
probe asks what its inputs allow at best: it fits models on half of the held-out pairs that
``bench_quality.py --dump-pairs`` wrote (two folds by concept) and scores the other half, so the
models see the test's own fault distribution, and it places each (language, domain) threshold on
the held-out pairs at 97% of their good pairs kept. The figures are therefore optimistic: a
ceiling of these inputs, not a result a user would get. Models: a logistic regression with
per-language and per-domain deviations (the gate's form), and scikit-learn's gradient-boosted trees
(``HistGradientBoostingClassifier``), each with and without ``word_prefix_gain`` (the best word
prefix of a one-sentence target, :mod:`probe_word_prefix`). Hard rules as the seed's calibrated
gates set them apply on top (``+ rules``), as in the gate.

    python bench/bench_quality.py --embedding-cache bench/_work/quality-emb.npz \
        --dump-pairs bench/_work/capacity/pairs --out bench/_work/capacity/quality.json
    python bench/probe_gate_capacity.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from corpusalign.verify.corrupt import CORRUPTIONS  # noqa: E402
from corpusalign.verify.gate import DESIGN_COLUMNS, LanguageGate, design_matrix, hard_rules  # noqa: E402
from corpusalign.verify.scores import DOMAINS  # noqa: E402

LANGS = ("de", "ja", "sw")
RECALL = 0.97


def inputs(pairs: pl.DataFrame, gates: dict[str, LanguageGate]) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix of every pair under its language's gate, and where a hard rule fires."""
    x = np.zeros((pairs.height, len(DESIGN_COLUMNS)))
    hard = np.zeros(pairs.height, dtype=bool)
    for lang in pairs["lang"].unique().to_list():
        rows = (pairs["lang"] == lang).to_numpy()
        part, gate = pairs.filter(pl.col("lang") == lang), gates.get(lang, gates["*"])
        x[rows] = design_matrix(part, gate)
        fired = hard_rules(part, gate, part["lid_lang"].to_list(), lang, part["lid_score"].to_list())
        hard[rows] = np.any(np.column_stack(list(fired.values())), axis=1)
    return x, hard


def decide(p: np.ndarray, y: np.ndarray, langs: np.ndarray, doms: np.ndarray, hard: np.ndarray | None) -> np.ndarray:
    """Keep where ``p`` reaches the (language, domain) threshold that keeps ``RECALL`` of its good pairs."""
    ok = np.ones(len(p), dtype=bool) if hard is None else ~hard
    keep = np.zeros(len(p), dtype=bool)
    for lang in LANGS:
        for dom in DOMAINS:
            cell = (langs == lang) & (doms == dom)
            if not cell.any():
                continue
            need = int(np.ceil(RECALL * (cell & y).sum()))
            good = np.sort(p[cell & ok & y])[::-1]
            t = good[min(need, len(good)) - 1] if len(good) else 0.0
            keep[cell] = (p[cell] >= t) & ok[cell]
    return keep


def scores(keep: np.ndarray, y: np.ndarray, kinds: np.ndarray, langs: np.ndarray) -> dict[str, float]:
    def f1(rows: np.ndarray) -> float:
        tp = (keep & y & rows).sum()
        return 2 * tp / ((keep & rows).sum() + (y & rows).sum())

    out = {k: float(keep[kinds == k].mean()) for k in CORRUPTIONS if (kinds == k).any()}
    return {**out, "f1": f1(np.ones(len(y), dtype=bool)), "f1_sw": f1(langs == "sw")}


def held_out_setup(pairs: pl.DataFrame) -> tuple[np.ndarray, ...]:
    """``y, langs, doms, kinds``, the language and domain one-hot inputs and the fold (by concept) of each pair."""
    y = pairs["label"].to_numpy().astype(bool)
    langs, doms, kinds = (pairs[c].to_numpy() for c in ("lang", "domain", "kind"))
    onehot = np.column_stack([langs == lang for lang in LANGS] + [doms == dom for dom in DOMAINS]).astype(float)
    fold = np.array([int.from_bytes(str(c).encode()[-4:], "big") % 2 for c in pairs["concept_id"].to_list()])
    return y, langs, doms, kinds, onehot, fold


def fold_probabilities(
    model: str, design: np.ndarray, y: np.ndarray, onehot: np.ndarray, fold: np.ndarray, hard: np.ndarray
) -> np.ndarray:
    """Each pair's probability from ``model`` (``logistic``, with per-language and per-domain deviations,
    or ``trees``) fitted on the other fold's pairs that no hard rule drops. ``design`` may hold NaN
    only for trees."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    p = np.zeros(len(y))
    for k in (0, 1):
        tr, te = (fold != k) & ~hard, fold == k
        if model == "logistic":
            z = np.column_stack([design, *(design * onehot[:, [j]] for j in range(onehot.shape[1])), onehot])
            scale = StandardScaler().fit(z[tr])
            fit = LogisticRegression(C=1.0, max_iter=5000).fit(scale.transform(z[tr]), y[tr])
            p[te] = fit.predict_proba(scale.transform(z[te]))[:, 1]
        else:
            z = np.column_stack([design, onehot])
            fit = HistGradientBoostingClassifier(
                max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20, random_state=0
            ).fit(z[tr], y[tr])
            p[te] = fit.predict_proba(z[te])[:, 1]
    return p


def run(pairs: pl.DataFrame, gates: dict[str, LanguageGate], gain: np.ndarray) -> dict[str, dict[str, float]]:
    x, hard = inputs(pairs, gates)
    y, langs, doms, kinds, onehot, fold = held_out_setup(pairs)
    out = {"gate as calibrated + rules": scores(decide(pairs["verify_p"].to_numpy(), y, langs, doms, hard), y, kinds, langs)}
    for with_gain in (False, True):
        lin = x if not with_gain else np.column_stack([x, np.nan_to_num(gain, nan=-0.05), np.isnan(gain)])
        tree = x if not with_gain else np.column_stack([x, gain])
        for name in ("logistic", "trees"):
            p = fold_probabilities(name, lin if name == "logistic" else tree, y, onehot, fold, hard)
            label = f"{name}{' + word prefixes' if with_gain else ''} + rules"
            out[label] = scores(decide(p, y, langs, doms, hard), y, kinds, langs)
    return out


def main(argv: list[str] | None = None) -> int:
    from probe_word_prefix import add_cache_options, cached_embedder, word_prefix_gain

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "capacity")
    add_cache_options(ap)
    args = ap.parse_args(argv)
    embedder = cached_embedder(args)
    per_seed = []
    for seed in args.seeds:
        pairs = pl.read_parquet(args.work / f"pairs-seed{seed}")
        gates = json.loads((args.work / f"quality-seed{seed}.json").read_text())["gates"]
        per_seed.append(run(pairs, {k: LanguageGate.from_dict(v) for k, v in gates.items()}, word_prefix_gain(pairs, embedder)))
    embedder.save(args.prefix_cache)
    print(f"seeds {args.seeds}, means; fault kinds: share kept")
    print(means_table(per_seed))
    return 0


def means_table(per_seed: list[dict[str, dict[str, float]]]) -> str:
    """A Markdown table of each model's :func:`scores`, averaged over the seeds."""
    cols = [*CORRUPTIONS[:-1], "f1", "f1_sw"]
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for label in per_seed[0]:
        cells = []
        for c in cols:
            v = float(np.mean([r[label][c] for r in per_seed]))
            cells.append(f"{v:.3f}" if c.startswith("f1") else f"{100 * v:.1f}%")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
