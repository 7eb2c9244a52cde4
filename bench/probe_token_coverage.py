"""Probe: token-level coverage from multilingual-e5-small's hidden states, as more gate inputs.

Sentence embeddings average a text's tokens, so a name with another appended or a sentence cut in
half can keep a high cosine. This probe aligns tokens instead (as BERTScore and SimAlign do): each
text's content tokens (the ``query:`` prefix, ``<s>`` and ``</s>`` left out) at a hidden layer of
the torch conversion of e5-small, L2-normalised, and for each pair

* ``tcov<layer>``: the mean over target tokens of their best cosine to a source token (appended
  content lowers it), ``tlow<layer>`` the mean of the lowest quarter of those;
* ``scov<layer>``: the mean over source tokens of their best cosine to a target token (a cut-off
  target lowers it), ``slow<layer>`` the lowest quarter.

It prints each input's AUC between the good pairs and the faults that the calibrated gate keeps, then
what the models of :mod:`probe_gate_capacity` (fitted on half of the held-out pairs, thresholds on
them: a ceiling, not a user's result) reach with and without the inputs.

    python bench/bench_quality.py --embedding-cache bench/_work/quality-emb.npz \
        --dump-pairs bench/_work/capacity/pairs --out bench/_work/capacity/quality.json
    python bench/probe_token_coverage.py --seeds 0 4
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

from probe_gate_capacity import decide, fold_probabilities, held_out_setup, inputs, scores  # noqa: E402

from corpusalign.verify.gate import LanguageGate  # noqa: E402

LAYERS = (9, 12)
#: The inputs the models get (of those :func:`coverage` computes).
MODEL_INPUTS = ("tlow9", "scov12", "tcov12", "scov9", "tcov9", "slow12")
FAULTS = ("extra_content", "truncated", "misaligned", "wrong_language")


def token_states(texts: list[str], layers: tuple[int, ...], batch: int = 64) -> dict[tuple[str, int], np.ndarray]:
    """``{(text, layer): [content tokens, 384]}`` L2-normalised hidden states (first 500 tokens)."""
    import torch

    from corpusalign.embed import make_embedder
    from corpusalign.embed.e5_convert import E5_PREFIX

    embedder = make_embedder("e5-torch")
    embedder.setup()
    loaded = embedder.loaded
    model, runtime, pad = loaded.model, loaded.runtime, loaded.header.pad
    n_prefix = len(runtime.content_ids([""], E5_PREFIX)[0])
    ids_all = runtime.content_ids(texts, E5_PREFIX)
    order = np.argsort([len(x) for x in ids_all])
    out: dict[tuple[str, int], np.ndarray] = {}
    with torch.inference_mode():
        for lo in range(0, len(order), batch):
            rows = order[lo : lo + batch]
            seqs = [[runtime.bos, *ids_all[i][:500], runtime.eos] for i in rows]
            ids = np.full((len(rows), max(len(s) for s in seqs)), pad, dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, s in enumerate(seqs):
                ids[r, : len(s)], mask[r, : len(s)] = s, 1
            hidden = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), output_hidden_states=True)
            for layer in layers:
                states = hidden.hidden_states[layer].float().numpy()
                for r, i in enumerate(rows):
                    v = states[r, 1 + n_prefix : len(seqs[r]) - 1]
                    v = v if len(v) else states[r, 1 : len(seqs[r]) - 1]
                    out[(texts[i], layer)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def coverage(pairs: pl.DataFrame, states: dict[tuple[str, int], np.ndarray], layers: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The inputs of the module docstring, per pair."""
    cols: dict[str, list[float]] = {}
    for layer in layers:
        for s, t in zip(pairs["src_text"].to_list(), pairs["tgt_text"].to_list()):
            sim = states[(t, layer)] @ states[(s, layer)].T  # [target tokens, source tokens]
            best_t, best_s = sim.max(axis=1), sim.max(axis=0)
            for name, v in (("tcov", best_t), ("scov", best_s)):
                cols.setdefault(f"{name}{layer}", []).append(float(v.mean()))
                low = np.sort(v)[: max(1, len(v) // 4)]
                cols.setdefault(f"{name[0]}low{layer}", []).append(float(low.mean()))
    return {k: np.asarray(v) for k, v in cols.items()}


def main(argv: list[str] | None = None) -> int:
    from probe_target_gap import auc

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 4])
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "capacity")
    args = ap.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {}
    for seed in args.seeds:
        pairs = pl.read_parquet(args.work / f"pairs-seed{seed}")
        texts = sorted(set(pairs["src_text"].to_list()) | set(pairs["tgt_text"].to_list()))
        cov = coverage(pairs, token_states(texts, LAYERS), LAYERS)
        kinds, keep = pairs["kind"].to_numpy(), pairs["keep"].to_numpy()
        good = (kinds == "good") & keep
        for name, v in cov.items():
            aucs = "  ".join(f"{k} {auc(v[good], v[(kinds == k) & keep]):.3f}" for k in FAULTS)
            print(f"seed {seed} {name:<7} AUC, good vs kept faults: {aucs}")
        raw = json.loads((args.work / f"quality-seed{seed}.json").read_text())["gates"]
        x, hard = inputs(pairs, {k: LanguageGate.from_dict(v) for k, v in raw.items()})
        y, langs, doms, kinds, onehot, fold = held_out_setup(pairs)
        for label, design in (("", x), (" + token coverage", np.column_stack([x, *(cov[c] for c in MODEL_INPUTS)]))):
            for model in ("logistic", "trees"):
                p = fold_probabilities(model, design, y, onehot, fold, hard)
                results.setdefault(model + label, []).append(scores(decide(p, y, langs, doms, hard), y, kinds, langs))
    cols = ["misaligned", "untranslated", "wrong_language", "truncated", "extra_content", "f1", "f1_sw"]
    print(f"\nseeds {args.seeds}, means (models fitted on the held-out pairs: a ceiling)")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for label, runs in results.items():
        means = {c: float(np.mean([r[c] for r in runs])) for c in cols}
        cells = [f"{v:.3f}" if c.startswith("f1") else f"{100 * v:.1f}%" for c, v in means.items()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
