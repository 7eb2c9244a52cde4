"""The experiment that closes the loop: does batch-wise alignment help SmolLM2-135M-Instruct?

Same corpus, steps, learning rate and seeds; only the batch composition changes:

* ``aligned``: K whole concepts per batch, each in en/de/ja (AlignedBatchSampler);
* ``random``: the same number of rows drawn at random (languages mixed, concepts split);
* ``homogeneous``: the same number of rows, one language per batch;
* ``aligned+kl`` (optional): aligned batches plus the cross-lingual consistency term (symmetric KL
  between the answer's next-token distributions across the languages of a concept), which only
  aligned batches make possible.

Corpus: the bundled Tatoeba sample (1,500 en/de/ja concepts) built with the default pipeline
(verification on). Task ``to_anchor``: the prompt asks what a text (in any of the three languages)
says in English; the answer is the concept's English sentence. Evaluation (``corpusalign eval``) on
the held-out concepts (10%, never trained on): 4-way multiple choice by log-likelihood per language,
the en - others gap, cross-lingual consistency and retrieval. The starting model is evaluated once.

    python bench/experiment_alignment.py                          # defaults below; resumes finished runs
    python bench/experiment_alignment.py --steps 40 --seeds 0 1 2 --conditions aligned random homogeneous

Results: bench/results/alignment/*.json and a markdown table on stdout (copied into docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from corpusalign.config import load_config
from corpusalign.runner import build
from corpusalign.training.config import load_train_config
from corpusalign.training.data import ShardDataset
from corpusalign.training.evaluate import evaluate, load_for_eval, retrieval_accuracy
from corpusalign.training.loop import latest_checkpoint, train

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "alignment"
RESULTS = HERE / "results" / "alignment"
SAMPLE = HERE.parent / "corpusalign" / "data" / "sample" / "tatoeba_en_de_ja.jsonl"
CONDITIONS = {
    "aligned": {"sampler": "aligned"},
    "random": {"sampler": "random"},
    "homogeneous": {"sampler": "homogeneous"},
    "aligned+kl": {"sampler": "aligned", "consistency": "kl", "consistency_weight": 1.0},
}


def corpus() -> Path:
    out = WORK / "corpus"
    cfg = load_config(src="en", tgt=("de", "ja"))
    return Path(build(cfg, [SAMPLE], out, progress=False).output)  # up to date: returns at once


def run_eval(model: str, shards: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    if out.is_file():
        res = json.loads(out.read_text())
        if "retrieval_layer" in res:
            return res
        # An evaluation from before retrieval was centred at the middle layer: redo that part only.
        net, tok, _ = load_for_eval(model, "cpu")
        ds = ShardDataset(shards, split="eval", eval_fraction=args.eval_fraction)
        full = [c for c in range(ds.num_concepts) if ds.concept_offsets[c + 1] - ds.concept_offsets[c] == len(ds.langs)]
        rows = [
            i
            for c in full[: res["concepts"]]
            for i in sorted(range(ds.concept_offsets[c], ds.concept_offsets[c + 1]), key=lambda i: ds.row_lang[i])
        ]
        texts = ds.column("text", rows)
        res.update(retrieval_accuracy(net, tok, texts, len(ds.langs), ds.langs, 0, max_length=args.max_length))
        out.write_text(json.dumps(res, indent=2) + "\n")
        return res
    net, tok, _ = load_for_eval(model, "cpu")
    res = evaluate(
        net,
        tok,
        shards,
        eval_fraction=args.eval_fraction,
        num_choices=4,
        max_concepts=args.max_concepts,
        max_length=args.max_length,
        chat_template=args.chat_template,
        batch_size=32,
    )
    res["model"] = model
    out.write_text(json.dumps(res, indent=2) + "\n")
    return res


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def non_english(r: dict[str, Any]) -> float:
    return statistics.mean(v for lg, v in r["acc_norm"].items() if lg != r["anchor"])


def table(base: dict[str, Any], runs: dict[str, list[dict[str, Any]]], langs: list[str]) -> str:
    cols = [*(f"acc {lg}" for lg in langs), "acc non-en", "gap en-others", "consistency", *(f"retr. {lg}" for lg in langs[1:])]
    lines = ["| condition | runs | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]

    def row(name: str, rs: list[dict[str, Any]]) -> str:
        vals = [
            *(mean_sd([r["acc_norm"][lg] for r in rs]) for lg in langs),
            mean_sd([non_english(r) for r in rs]),
            mean_sd([r["acc_norm_gap"] for r in rs]),
            mean_sd([r["acc_norm_consistency"] for r in rs]),
            *(mean_sd([r["retrieval"][lg] for r in rs]) for lg in langs[1:]),
        ]
        return f"| {name} | {len(rs)} | " + " | ".join(vals) + " |"

    lines.append(row("before training", [base]))
    lines.extend(row(name, rs) for name, rs in runs.items() if rs)
    return "\n".join(lines)


def paired(runs: dict[str, list[dict[str, Any]]], against: str = "random") -> str:
    """Per-seed differences of non-English accuracy and consistency against one condition."""
    if against not in runs:
        return ""
    head = f"| condition - {against} | seeds | non-en acc per seed | mean | consistency per seed | mean |"
    lines = [head, "|---|---|---|---|---|---|"]
    base = {r["train_summary"]["output"].rsplit("seed", 1)[1]: r for r in runs[against]}
    for name, rs in runs.items():
        if name == against:
            continue
        pairs = [(r, base[k]) for r in rs if (k := r["train_summary"]["output"].rsplit("seed", 1)[1]) in base]
        d_acc = [non_english(a) - non_english(b) for a, b in pairs]
        d_con = [a["acc_norm_consistency"] - b["acc_norm_consistency"] for a, b in pairs]
        if pairs:
            lines.append(
                f"| {name} | {len(pairs)} | {', '.join(f'{d:+.3f}' for d in d_acc)} | {statistics.mean(d_acc):+.3f} "
                f"| {', '.join(f'{d:+.3f}' for d in d_con)} | {statistics.mean(d_con):+.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--conditions", nargs="+", default=["aligned", "random", "homogeneous"], choices=list(CONDITIONS))
    ap.add_argument("--k", type=int, default=4, help="concepts per batch (x3 languages = rows per batch)")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-length", type=int, default=96)
    ap.add_argument("--eval-fraction", type=float, default=0.1)
    ap.add_argument("--max-concepts", type=int, default=None, help="evaluate at most this many held-out concepts")
    ap.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=False)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    shards = corpus()
    t0 = time.perf_counter()
    base = run_eval("smollm2", shards, args, RESULTS / "before.json")
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in args.conditions}
    for seed in args.seeds:
        for cond in args.conditions:
            tag = f"{cond}-seed{seed}"
            out = WORK / tag
            cfg = load_train_config(
                model="smollm2",
                objective="sft",
                steps=args.steps,
                concepts_per_batch=args.k,
                lr=args.lr,
                warmup_steps=max(1, args.steps // 10),
                max_length=args.max_length,
                chat_template=args.chat_template,
                eval_fraction=args.eval_fraction,
                seed=seed,
                device="cpu",
                log_every=10,
                **CONDITIONS[cond],
            )
            ckpt = latest_checkpoint(out)
            if ckpt is None or int(ckpt.name.split("-")[1]) < args.steps:
                t = time.perf_counter()
                r = train(cfg, shards, out, resume=True, progress=False)
                took = time.perf_counter() - t
                print(f"{tag}: trained {r.steps} steps in {took:.0f} s, loss {r.first_loss:.3f} -> {r.last_loss:.3f}", flush=True)
            res = run_eval(str(out), shards, args, RESULTS / f"{tag}.json")
            res["train_summary"] = json.loads((out / "train_summary.json").read_text())
            runs[cond].append(res)
    langs = base["langs"]
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "args": vars(args),
        "seconds": time.perf_counter() - t0,
        "before": base,
        "runs": runs,
    }
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(table(base, runs, langs))
    print()
    print(paired(runs))
    n = base["concepts"]
    print(f"\n{n} held-out concepts x {len(langs)} languages, 4 choices (acc = acc_norm); {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main()
