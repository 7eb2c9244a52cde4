"""Sampler + collate overhead as a share of a CPU training step of a small causal LM.

Builds a corpus from the bundled Tatoeba sample (1500 records, en/de/ja, verification off), opens it
with ``ShardDataset``, trains a byte-level BPE tokenizer in-process on its text (``tokenizers``, no
download) and builds a small Llama (``transformers`` config, random weights). The three samplers
(aligned, random rows, language-homogeneous; same rows per batch, ``drop_last=True``) take turns step
by step on one model and optimizer; per step it times

* ``sample``: the sampler's next batch of row indices (a new epoch's set-up included when one starts),
* ``fetch``: ``ds.__getitems__`` (one Arrow take, rows as dicts),
* ``collate``: tokenise, add <bos>/<eos>, truncate, pad to the longest row, build ``input_ids``,
  ``attention_mask``, ``labels`` and the per-row concept and language tensors an alignment loss needs,
* ``step``: forward + backward + AdamW step on that batch.

``share all = (sample + fetch + collate) / (all four)`` summed over the measured steps: the fraction of
a sequential, single-process step spent on data (no DataLoader workers, no prefetch: the worst case);
``share s+f`` leaves out the tokenizer. Target < 1%. Results go to bench/results/sampler.json.

    python bench/bench_sampler.py                      # defaults: K=8 concepts x 3 languages = 24 rows
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

from corpusalign.config import load_config
from corpusalign.runner import build
from corpusalign.train import ShardDataset
from corpusalign.train.sampler import ablation_samplers

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
RESULTS = HERE / "results"
SAMPLE = HERE.parent / "corpusalign" / "data" / "sample" / "tatoeba_en_de_ja.jsonl"


def make_corpus() -> Path:
    out = WORK / "train-sampler-corpus"
    cfg = load_config(src="en", tgt=("de", "ja"), verify__enabled=False, shards__max_rows=1000)
    return Path(build(cfg, [SAMPLE], out, progress=False).output)  # up to date: returns at once


def make_tokenizer(ds: ShardDataset, vocab: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<pad>", "<unk>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator((t for t in ds.column("text") if t), trainer=trainer)
    return tok


class Collate:
    """Rows -> padded tensors: ``input_ids``, ``attention_mask``, ``labels`` (-100 on padding),
    ``concept`` (batch-local concept number per row) and ``lang`` (language number per row).

    ``<bos> text <eos>``, truncation to ``max_len`` and padding to the longest row are done by the
    tokenizer itself (Rust), so Python only touches one list per row."""

    def __init__(self, tok: Any, langs: tuple[str, ...], max_len: int) -> None:
        from tokenizers.processors import TemplateProcessing

        self.tok = tok.__class__.from_str(tok.to_str())  # a configured copy
        bos, eos, pad = (self.tok.token_to_id(t) for t in ("<bos>", "<eos>", "<pad>"))
        self.tok.post_processor = TemplateProcessing(single="<bos> $A <eos>", special_tokens=[("<bos>", bos), ("<eos>", eos)])
        self.tok.enable_truncation(max_length=max_len)
        self.tok.enable_padding(pad_id=pad, pad_token="<pad>")
        self.lang_id = {lg: i for i, lg in enumerate(langs)}

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encs = self.tok.encode_batch([r["text"] or "" for r in rows])
        ids = torch.tensor([e.ids for e in encs], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encs], dtype=torch.long)
        labels = ids.masked_fill(mask == 0, -100)
        concept_of: dict[str, int] = {}
        concept = torch.tensor([concept_of.setdefault(r["concept_id"], len(concept_of)) for r in rows])
        lang = torch.tensor([self.lang_id[r["lang"]] for r in rows])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "concept": concept, "lang": lang}


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
    samplers: dict[str, Any], ds: ShardDataset, collate: Collate, model: torch.nn.Module, steps: int, warmup: int
) -> list[dict]:
    """Steps of the samplers interleaved (a, b, c, a, b, c, ...) so that load from other processes
    on a shared machine hits all of them alike; one model and optimizer keep training throughout."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    feeds = {name: _Feed(s) for name, s in samplers.items()}
    t: dict[str, dict[str, list[float]]] = {
        n: {"sample": [], "fetch": [], "collate": [], "step": [], "rows": [], "tok": []} for n in feeds
    }
    for i in range(warmup + steps):
        for name, feed in feeds.items():
            t0 = time.perf_counter()
            idx = feed.next()
            t1 = time.perf_counter()
            rows = ds.__getitems__(idx)
            t2 = time.perf_counter()
            batch = collate(rows)
            t3 = time.perf_counter()
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t4 = time.perf_counter()
            if i >= warmup:
                for key, v in (("sample", t1 - t0), ("fetch", t2 - t1), ("collate", t3 - t2), ("step", t4 - t3)):
                    t[name][key].append(v)
                t[name]["rows"].append(len(idx))
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
    ap.add_argument("--max-len", type=int, default=64)
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
    tok = make_tokenizer(ds, args.vocab)
    collate = Collate(tok, ds.langs, args.max_len)
    model = make_model(tok.get_vocab_size(), args.hidden, args.layers, args.max_len)
    n_params = sum(p.numel() for p in model.parameters())
    samplers = ablation_samplers(ds, args.concepts, seed=args.seed, missing="skip_concept", drop_last=True)

    results = run(samplers, ds, collate, model, args.steps, args.warmup)

    print(
        f"corpus: {ds.num_concepts} concepts, {len(ds)} rows (train split), {list(ds.langs)}; "
        f"opened+validated in {open_s * 1e3:.0f} ms"
    )
    print(
        f"model: Llama {n_params / 1e6:.1f}M params (hidden {args.hidden}, {args.layers} layers, vocab {tok.get_vocab_size()}), "
        f"torch {torch.__version__} CPU, {args.threads} threads; {args.steps} steps after {args.warmup} warm-up"
    )
    head = (
        f"{'sampler':<22}{'rows':>5}{'tokens':>7}{'sample us':>10}{'fetch us':>9}{'collate us':>11}{'step ms':>9}"
        f"{'share s+f':>10}{'share all':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r['sampler']:<22}{r['rows_per_batch_mean']:>5.0f}{r['tokens_per_batch_mean']:>7.0f}{r['sample_us_median']:>10.1f}"
            f"{r['fetch_us_median']:>9.1f}{r['collate_us_median']:>11.1f}{r['step_ms_median']:>9.1f}"
            f"{100 * r['share_sampler_fetch']:>9.3f}%{100 * r['share']:>9.3f}%"
        )
    worst = max(r["share"] for r in results)
    print(f"worst share {100 * worst:.3f}% (target < 1%): {'OK' if worst < 0.01 else 'OVER TARGET'}")
    out = {
        "bench": "sampler",
        "what": "per step: sample = sampler next (incl. new-epoch set-up), fetch = ShardDataset.__getitems__, collate = "
        "tokenise/pad to tensors, step = forward+backward+AdamW; share = (sample+fetch+collate) / all, "
        "share_sampler_fetch = (sample+fetch) / all; sums over the measured steps; sequential, no DataLoader workers; "
        "samplers interleaved step by step",
        "corpus": {"concepts": ds.num_concepts, "rows": len(ds), "langs": list(ds.langs), "open_validate_ms": 1e3 * open_s},
        "model": {"params": n_params, "hidden": args.hidden, "layers": args.layers, "vocab": tok.get_vocab_size()},
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
