"""Probe: language ID learned from the dev data's own texts, as a gate input for short strings.

fastText's lid.176 gives one- and two-word Swahili names a probability near 0 for Swahili, so the
gate leans little on language ID for short strings, and Swahili keeps most of its copied English
names ("Javanese" where CLDR says "Kijava"). The dev data, though, shows what its languages look
like in this domain ("Ki-" language names, "ya" in currency names, German "-isch"). This probe
trains, per seed on the calibration concepts only, a character n-gram classifier over the dev
languages (scikit-learn: hashed character 1-4 grams within words, multinomial logistic regression)
and gives each held-out pair ``char_lid = log p(target language | target) - log p(en | target)``.
It reports how well that separates the faults the calibrated gate keeps from the good pairs it
keeps (AUC per kind and language), and the ceiling of ``probe_gate_capacity.py`` with it added.

    python bench/bench_quality.py --embedding-cache bench/_work/quality-emb.npz \
        --dump-pairs bench/_work/cap3/pairs --out bench/_work/cap3/quality.json
    python bench/probe_char_lid.py --work bench/_work/cap3
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

from bench_quality import EXTRA_LANGS, SRC, TGTS, load_concepts, split_concepts  # noqa: E402
from probe_gate_capacity import decide, fold_probabilities, held_out_setup, inputs, means_table, scores  # noqa: E402

from corpusalign.verify.corrupt import CORRUPTIONS  # noqa: E402
from corpusalign.verify.gate import LanguageGate  # noqa: E402


def train_char_lid(concepts: pl.DataFrame):
    """A character n-gram language classifier over the texts of ``concepts`` (every language column)."""
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = [], []
    for lang in (SRC, *TGTS, *EXTRA_LANGS):
        for t in concepts[lang].drop_nulls().unique(maintain_order=True).to_list():
            texts.append(t)
            labels.append(lang)
    vec = HashingVectorizer(analyzer="char_wb", ngram_range=(1, 4), n_features=2**18, alternate_sign=False, norm="l2")
    model = LogisticRegression(C=10.0, max_iter=2000).fit(vec.transform(texts), labels)
    return vec, model


def char_lid(pairs: pl.DataFrame, vec, model) -> np.ndarray:
    logp = model.predict_log_proba(vec.transform(pairs["tgt_text"].to_list()))
    col = {c: i for i, c in enumerate(model.classes_)}
    own = np.array([logp[i, col[lang]] for i, lang in enumerate(pairs["lang"].to_list())])
    return own - logp[:, col[SRC]]


def auc(good: np.ndarray, bad: np.ndarray) -> float:
    if not len(good) or not len(bad):
        return float("nan")
    both = np.concatenate([good, bad])
    ranks = both.argsort().argsort() + 1.0
    return float((ranks[: len(good)].sum() - len(good) * (len(good) + 1) / 2) / (len(good) * len(bad)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "cap3")
    ap.add_argument(
        "--test-share", type=float, default=0.5, help="the --test-share of the bench_quality run that wrote the dumps (0.5)"
    )
    args = ap.parse_args(argv)
    concepts = load_concepts(None)
    per_seed, aucs = [], []
    for seed in args.seeds:
        pairs = pl.read_parquet(args.work / f"pairs-seed{seed}")
        gates = {
            k: LanguageGate.from_dict(v)
            for k, v in json.loads((args.work / f"quality-seed{seed}.json").read_text())["gates"].items()
        }
        calib, _ = split_concepts(concepts, args.test_share, seed)  # the calibration concepts of that run only
        vec, model = train_char_lid(calib)
        f = char_lid(pairs, vec, model)
        kept = pairs["keep"].to_numpy()
        kinds, langs, doms = (pairs[c].to_numpy() for c in ("kind", "lang", "domain"))
        for lang in ("de", "ja", "sw"):
            for kind in CORRUPTIONS:
                rows = kept & (langs == lang) & (doms == "short")
                aucs.append(
                    (
                        seed,
                        lang,
                        kind,
                        auc(f[rows & (kinds == "good")], f[rows & (kinds == kind)]),
                        int((rows & (kinds == kind)).sum()),
                    )
                )
        x, hard = inputs(pairs, gates)
        y, langs, doms, kinds, onehot, fold = held_out_setup(pairs)
        out = {}
        for label, design in (("without", x), ("with char_lid", np.column_stack([x, f]))):
            for name in ("logistic", "trees"):
                p = fold_probabilities(name, design, y, onehot, fold, hard)
                out[f"{name} {label}"] = scores(decide(p, y, langs, doms, hard), y, kinds, langs)
        per_seed.append(out)
        print(f"seed {seed} done", flush=True)
    a = pl.DataFrame(aucs, schema=["seed", "lang", "kind", "auc", "n"], orient="row")
    print("AUC of char_lid, faults the gate keeps vs good pairs it keeps, short strings (mean over seeds; n pooled):")
    with pl.Config(tbl_rows=-1):
        print(a.group_by("lang", "kind").agg(pl.col("auc").mean().round(3), pl.col("n").sum()).sort("lang", "kind"))
    print(means_table(per_seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
