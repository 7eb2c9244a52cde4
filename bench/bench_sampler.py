"""Sampler + fetch + collate overhead of the trainer's data path as a share of a CPU training step.

Builds a corpus from the bundled Tatoeba sample (1500 records, en/de/ja, verification off), opens it
with ``ShardDataset``, trains a byte-level BPE tokenizer in-process on its text (``tokenizers``, no
download) and wraps it as a ``transformers.PreTrainedTokenizerFast`` with eos/pad tokens and a ChatML
chat template (as SmolLM2-Instruct has), and builds a small Llama (``transformers`` config, random
weights). The data path is the trainer's own (``corpusalign.training.loop``): ``Examples`` (task
``to_anchor`` on the corpus's ``text``: the prompt asks what the row says in English, the answer is
the concept's English text), ``Collator`` (chat template, answer + eos, labels only on the answer,
truncation to ``max_length``) and ``batch_loss``. The three samplers (aligned, random rows,
language-homogeneous; same rows per batch, ``drop_last=True``) take turns step by step on one model
and optimizer; per step it times

* ``sample``: the sampler's next batch of row indices (a new epoch's set-up included when one starts),
* ``fetch``: ``Examples.__getitems__`` (one Arrow take of the rows, the anchor answers, the prompts),
* ``collate``: ``Collator``: render the chat template, tokenise prompt and answer, truncate, pad,
  build ``input_ids``, ``attention_mask``, ``labels``, ``prompt_mask``, ``row``, ``group``, ``lang``,
* ``step``: ``batch_loss`` (forward + the objective) + backward + gradient clipping + AdamW step, as
  one optimizer step of ``train()`` with ``grad_accum=1`` on one process.

``share all = (sample + fetch + collate) / (all four)`` summed over the measured steps: the fraction of
a sequential, single-process step spent on data (no DataLoader workers, no prefetch: the worst case,
and how ``train()`` runs: it fetches and collates in the training process); ``share s+f`` leaves
out the tokenizer. Target < 1%. Results go to bench/results/sampler.json.

    python bench/bench_sampler.py                      # defaults: K=8 concepts x 3 languages = 24 rows, SFT
    python bench/bench_sampler.py --objective orpo     # preference batches: chosen + rejected, 48 sequences
    python bench/bench_sampler.py --hidden 512 --layers 8 --steps 20
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

import torch

# Rust tokenizer threads fight torch's OpenMP threads for the same cores (on 2 cores collate was ~10x
# slower with them); DataLoader workers turn them off too. Set it to true to measure the other way.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _train_common import RESULTS, WORK, chatml_tokenizer, tatoeba_corpus  # noqa: E402  (bench/ is on sys.path when run)

from corpusalign.training import ShardDataset
from corpusalign.training.config import TrainConfig, load_train_config
from corpusalign.training.loop import batch_loss
from corpusalign.training.sampler import ablation_samplers
from corpusalign.training.task import Collator, Examples


def make_corpus() -> Path:
    return tatoeba_corpus("train-sampler-corpus", shards__max_rows=1000)


def make_tokenizer(ds: ShardDataset, vocab: int, chat_template: bool) -> Any:
    """A byte-level BPE trained on the corpus's text, as a Hugging Face fast tokenizer (what the trainer loads)."""
    return chatml_tokenizer((t for t in ds.column("text") if t), vocab, chat_template)


def make_model(vocab: int, hidden: int, layers: int, max_len: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3 // 16 * 16,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=max_len,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


class _Feed:
    """Endless batches of row indices from one sampler, moving to the next epoch when one ends."""

    def __init__(self, sampler: Any) -> None:
        self.sampler, self.epoch = sampler, 0
        sampler.set_epoch(0)
        self.it = iter(sampler)

    def next(self) -> list[int]:
        batch = next(self.it, None)
        if batch is None:  # a new epoch's order is part of the measured sampler time
            self.epoch += 1
            self.sampler.set_epoch(self.epoch)
            self.it = iter(self.sampler)
            batch = next(self.it)
        return batch


def run(
    samplers: dict[str, Any],
    examples: Examples,
    collate: Collator,
    model: torch.nn.Module,
    cfg: TrainConfig,
    steps: int,
    warmup: int,
) -> list[dict]:
    """Steps of the samplers interleaved (a, b, c, a, b, c, ...) so that load from other processes
    on a shared machine hits all of them alike; one model and optimizer keep training throughout."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    model.train()
    feeds = {name: _Feed(s) for name, s in samplers.items()}
    t: dict[str, dict[str, list[float]]] = {
        n: {"sample": [], "fetch": [], "collate": [], "step": [], "rows": [], "seqs": [], "tok": []} for n in feeds
    }
    for i in range(warmup + steps):
        for name, feed in feeds.items():
            t0 = time.perf_counter()
            idx = feed.next()
            t1 = time.perf_counter()
            rows = examples.__getitems__(idx)
            t2 = time.perf_counter()
            batch = collate(rows)
            t3 = time.perf_counter()
            loss, _per_row, _stats = batch_loss(model, batch, cfg)  # what train() does per micro-batch
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            t4 = time.perf_counter()
            if i >= warmup:
                for key, v in (("sample", t1 - t0), ("fetch", t2 - t1), ("collate", t3 - t2), ("step", t4 - t3)):
                    t[name][key].append(v)
                t[name]["rows"].append(len(idx))
                t[name]["seqs"].append(int(batch["input_ids"].shape[0]))
                t[name]["tok"].append(int(batch["attention_mask"].sum()))
    results = []
    for name, d in t.items():
        sample, fetch, coll, step = (sum(d[k]) for k in ("sample", "fetch", "collate", "step"))
        start = time.perf_counter()
        n = sum(1 for _ in samplers[name])  # the sampler alone over one whole epoch
        epoch_s = time.perf_counter() - start
        results.append(
            {
                "sampler": name,
                "steps": steps,
                "rows_per_batch_mean": statistics.mean(d["rows"]),
                "sequences_per_batch_mean": statistics.mean(d["seqs"]),
                "tokens_per_batch_mean": statistics.mean(d["tok"]),
                "sample_us_median": 1e6 * statistics.median(d["sample"]),
                "fetch_us_median": 1e6 * statistics.median(d["fetch"]),
                "collate_us_median": 1e6 * statistics.median(d["collate"]),
                "step_ms_median": 1e3 * statistics.median(d["step"]),
                "share_sampler_fetch": (sample + fetch) / (sample + fetch + coll + step),
                "share": (sample + fetch + coll) / (sample + fetch + coll + step),
                "sampler_only_epoch_us_per_batch": 1e6 * epoch_s / max(n, 1),
                "batches_per_epoch": n,
            }
        )
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concepts", type=int, default=8, help="K: concepts per aligned batch")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--max-len", type=int, default=256, help="Collator max_length (the trainer's default)")
    ap.add_argument("--objective", choices=("sft", "orpo"), default="sft")
    ap.add_argument("--no-chat-template", action="store_true", help="plain prompts instead of ChatML")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)

    root = make_corpus()
    t0 = time.perf_counter()
    ds = ShardDataset(root, split="train", eval_fraction=0.05)
    open_s = time.perf_counter() - t0
    tok = make_tokenizer(ds, args.vocab, chat_template=not args.no_chat_template)
    cfg = load_train_config(
        objective=args.objective,
        concepts_per_batch=args.concepts,
        max_length=args.max_len,
        chat_template=not args.no_chat_template,
        seed=args.seed,
        lr=1e-4,
        device="cpu",
    )
    examples = Examples(ds, objective=cfg.objective, task="to_anchor", prompt_template=cfg.to_anchor_prompt, seed=cfg.seed)
    samplers = ablation_samplers(ds, args.concepts, seed=args.seed, missing=cfg.missing, drop_last=True)
    langs = samplers["aligned"].langs
    collate = Collator(
        tok, langs=langs, max_length=cfg.max_length, preference=cfg.objective != "sft", chat_template=cfg.chat_template
    )
    model = make_model(len(tok), args.hidden, args.layers, args.max_len)
    n_params = sum(p.numel() for p in model.parameters())

    load0 = os.getloadavg()[0]
    results = run(samplers, examples, collate, model, cfg, args.steps, args.warmup)
    load1 = os.getloadavg()[0]

    print(
        f"corpus: {ds.num_concepts} concepts, {len(ds)} rows (train split), {list(ds.langs)}; "
        f"opened+validated in {open_s * 1e3:.0f} ms"
    )
    print(
        f"model: Llama {n_params / 1e6:.1f}M params (hidden {args.hidden}, {args.layers} layers, vocab {len(tok)}), "
        f"torch {torch.__version__} CPU, {args.threads} threads; {args.steps} steps after {args.warmup} warm-up"
    )
    print(
        f"data path: Examples(task=to_anchor, objective={cfg.objective}) -> Collator(max_length={cfg.max_length}, "
        f"chat template {'ChatML' if collate.chat else 'off'}) -> batch_loss; load average {load0:.2f} -> {load1:.2f}"
    )
    head = (
        f"{'sampler':<22}{'rows':>5}{'seqs':>5}{'tokens':>7}{'sample us':>10}{'fetch us':>9}{'collate us':>11}{'step ms':>9}"
        f"{'share s+f':>10}{'share all':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r['sampler']:<22}{r['rows_per_batch_mean']:>5.0f}{r['sequences_per_batch_mean']:>5.0f}"
            f"{r['tokens_per_batch_mean']:>7.0f}{r['sample_us_median']:>10.1f}"
            f"{r['fetch_us_median']:>9.1f}{r['collate_us_median']:>11.1f}{r['step_ms_median']:>9.1f}"
            f"{100 * r['share_sampler_fetch']:>9.3f}%{100 * r['share']:>9.3f}%"
        )
    worst = max(r["share"] for r in results)
    print(f"worst share {100 * worst:.3f}% (target < 1%): {'OK' if worst < 0.01 else 'OVER TARGET'}")
    out = {
        "bench": "sampler",
        "what": "per step: sample = sampler next (incl. new-epoch set-up), fetch = corpusalign.training.task.Examples."
        "__getitems__ (task to_anchor), collate = corpusalign.training.task.Collator (chat template, tokenise, pad), "
        "step = corpusalign.training.loop.batch_loss + backward + clip_grad_norm + AdamW; share = (sample+fetch+collate) / all, "
        "share_sampler_fetch = (sample+fetch) / all; sums over the measured steps; sequential, no DataLoader workers; "
        "samplers interleaved step by step",
        "data_path": {
            "objective": cfg.objective,
            "task": examples.task,
            "max_length": cfg.max_length,
            "chat_template": "ChatML" if collate.chat else None,
        },
        "load_average": {"start": load0, "end": load1},
        "corpus": {"concepts": ds.num_concepts, "rows": len(ds), "langs": list(ds.langs), "open_validate_ms": 1e3 * open_s},
        "model": {"params": n_params, "hidden": args.hidden, "layers": args.layers, "vocab": len(tok)},
        "args": vars(args),
        "torch": torch.__version__,
        "tokenizers_parallelism": os.environ["TOKENIZERS_PARALLELISM"],
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": args.threads},
        "results": results,
        "worst_share": worst,
        "target_share": 0.01,
    }
    (RESULTS / "sampler.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS / 'sampler.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
