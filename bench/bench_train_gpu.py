"""GPU training throughput: tokens/s and MFU of a ~0.5B Llama trained on corpusalign's aligned batches.

For the ``device`` tool (one H100/H200, no network, only the repository copied): nothing is downloaded
and no weights are carried, so the model is randomly initialised. Everything on the data side is the
product's own code:

1. corpus: ``corpusalign.runner.build`` on the bundled Tatoeba sample (1500 concepts, en/de/ja,
   verification off), opened with ``ShardDataset`` (train split; validated against the manifest);
2. tokenizer: a byte-level BPE trained in-process with ``tokenizers`` on the corpus text (target
   ``--vocab`` 32768 pieces; the ~4.3k short sentences give 22,063, so the model's embedding and LM
   head are padded up to ``--vocab`` rows, as padded vocabularies are), wrapped in
   ``PreTrainedTokenizerFast`` with ChatML specials and chat template (like SmolLM2-Instruct);
3. batches: ``AlignedBatchSampler`` (``--concepts`` K whole concepts x 3 languages per batch, anchor
   first; epochs reseeded through ``corpusalign.training.loop.Feed``), examples from ``Examples`` (task
   ``to_anchor``: "what does this say in English?" -> the concept's English text), tensors from
   ``Collator`` (chat-templated prompt, answer + eos, labels -100 on prompt and padding);
4. packing (this script's only data-side addition): Tatoeba rows are ~40 tokens, so to fill the GPU
   the real (unpadded) tokens of consecutive aligned batches are concatenated, row after row in the
   sampler's order, and cut into ``--batch-rows`` x ``--seq-len`` blocks (default 8 x 2048 = 16384
   tokens per optimizer step, ~400 rows = ~4 aligned batches of K=32; ~23% of the positions are answer
   tokens, the rest chat-templated prompts). Leftover tokens start the next
   step's block, so a row can be split across two blocks. Attention is plain causal over the whole
   block (no per-document masking: rows of one block see earlier rows, as in naive packing); the
   labels keep the Collator's -100 on prompts, so only answer tokens are in the loss, and no label
   ever asks a row to predict the next row's first token (it is a prompt token);
5. loss: ``corpusalign.training.objectives.sft_loss`` (token-mean NLL, log-softmax in float32), then
   backward, ``clip_grad_norm_(1.0)`` and AdamW (``fused=True`` on CUDA), as ``corpusalign train``
   does per step (``max_grad_norm`` 1.0).

Model: ``LlamaForCausalLM`` (``transformers``), ``attn_implementation="sdpa"`` (flash kernel, causal,
no mask tensor), tied embeddings, no KV cache, gradient checkpointing off unless ``--grad-ckpt``.
Default shape: hidden 1536, 16 layers, 12 heads of 128 (MHA), MLP 4096, vocab 32768: 503.6M
parameters (453M in the blocks; the exact count is printed). Runs (``--runs``, comma-separated):

* ``amp``: fp32 master weights and AdamW state, bf16 autocast (what ``corpusalign train`` does with
  ``precision=bf16`` through accelerate);
* ``bf16``: bf16 weights, gradients and AdamW state (no fp32 master copy);
* ``fp32``: fp32 weights, no autocast (TF32 matmuls on a GPU), for reference;
* ``+compile``: ``torch.compile`` of forward + loss (backward compiled by AOTAutograd; optimizer eager).

Each run: ``--warmup`` steps (compilation included; not timed), then two timed phases of ``--steps``
optimizer steps each, on the same model:

* ``serial``: host work, then the device step, then ``torch.cuda.synchronize()``, step after step, as
  ``corpusalign train`` runs (it reads the loss back every micro-batch, so its data preparation never
  overlaps the GPU). ``host share`` = host time / step time is exact here;
* ``overlap``: the next step's host work runs after the device step is launched and before the
  synchronize, as a prefetching DataLoader would hide it (``host share`` = host busy time / step
  time, an upper bound of what is exposed).

"Host" = sampler (next batch of row indices, a new epoch's order included) + ``Examples`` fetch (Arrow
take, prompt/answer assembly) + ``Collator`` (chat template, tokenisation, padding) + packing. "Device"
= host-to-device copy, forward, loss, backward, clipping, AdamW, zero_grad.

Throughput and MFU. ``tokens/s`` counts every position of the packed blocks (batch_rows x seq_len per
step), prompt tokens included, over wall time of the timed steps (host work included). Model FLOPs
per token follow PaLM (Chowdhery et al. 2022, appendix B): ``6 * N + 12 * L * H * Q * T``, where ``N`` is
the number of parameters in matrix multiplications (every ``nn.Linear``: attention, MLP and the tied
LM head; not the embedding lookup, the norms or rotary), ``L`` layers, ``H`` heads, ``Q`` head
dimension, ``T`` = ``--seq-len`` (PaLM's convention counts the full attention matrix, though causal
kernels skip half of it). ``MFU = tokens/s * FLOPs per token / peak``, with peak the dense bf16 rate:
989.4 TFLOP/s for H100 SXM and H200, 756 for H100 PCIe, 835 for H100 NVL, 312 for A100 (from
``torch.cuda.get_device_name``; ``--peak-tflops`` overrides). ``MFU 6N`` leaves the attention term
out. Recomputation under ``--grad-ckpt`` is not counted (that is what makes it *model* FLOPs).

Results: a table on stdout and JSON in ``$OUT/bench_train_gpu.json`` when ``$OUT`` is set, else
``bench/results/train_gpu.json``. The default runs (two eager, one compiled) take about 2-3 minutes on an
H100 including corpus build and tokenizer training; ``--budget-s`` skips the runs that would start
after that many seconds.

    python bench/bench_train_gpu.py                                  # GPU: runs amp,bf16,bf16+compile
    python bench/bench_train_gpu.py --runs amp+compile --steps 30
    nice -n 19 python bench/bench_train_gpu.py --cpu-smoke           # CPU: tiny model, same code path
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Rust tokenizer threads would fight torch's threads for the host cores (see bench_sampler.py).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from _train_common import CHATML_TEMPLATE, RESULTS, WORK, chatml_tokenizer, tatoeba_corpus  # noqa: E402

from corpusalign.training.data import ShardDataset
from corpusalign.training.loop import Feed
from corpusalign.training.objectives import IGNORE_INDEX, sft_loss
from corpusalign.training.sampler import AlignedBatchSampler
from corpusalign.training.task import Collator, Examples

#: Dense bf16 peak FLOP/s by device name (first match wins; NVIDIA data sheets, without sparsity).
PEAKS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H100", "PCIE"), 756e12),
    (("H100", "NVL"), 835e12),
    (("H100",), 989.4e12),
    (("H200",), 989.4e12),
    (("GH200",), 989.4e12),
    (("A100",), 312e12),
    (("L40S",), 362.05e12),
)


# ------------------------------------------------------------------------------------------ data
def make_corpus() -> Path:
    return tatoeba_corpus("train-gpu-corpus")


def make_tokenizer(ds: ShardDataset, vocab: int, prompt: str) -> Any:
    """Byte-level BPE trained on the corpus text (and the prompt and template), with ChatML."""
    texts = [t for t in ds.column("text") if t]
    return chatml_tokenizer([*texts, prompt, CHATML_TEMPLATE], vocab)


class Packer:
    """Aligned batches -> ``[rows, seq_len]`` blocks of ``input_ids`` and ``labels`` (see the module
    docstring, point 4). ``next()`` is the whole host side of one optimizer step."""

    def __init__(self, sampler: AlignedBatchSampler, examples: Examples, collate: Collator, rows: int, seq_len: int) -> None:
        self.feed = iter(Feed(sampler))
        self.examples, self.collate = examples, collate
        self.rows, self.seq_len = rows, seq_len
        self.ids: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.buffered = 0
        self.aligned_batches = 0
        self.examples_used = 0

    def next(self) -> dict[str, torch.Tensor]:
        need = self.rows * self.seq_len
        while self.buffered < need:
            indices = next(self.feed)
            batch = self.collate(self.examples.__getitems__(indices))
            real = batch["attention_mask"].bool()  # right padding: row-major order keeps rows whole
            self.ids.append(batch["input_ids"][real])
            self.labels.append(batch["labels"][real])
            self.buffered += int(real.sum())
            self.aligned_batches += 1
            self.examples_used += len(indices)
        ids, labels = torch.cat(self.ids), torch.cat(self.labels)
        self.ids, self.labels = [ids[need:]], [labels[need:]]
        self.buffered -= need
        shape = (self.rows, self.seq_len)
        return {"input_ids": ids[:need].view(shape).contiguous(), "labels": labels[:need].view(shape).contiguous()}


# ----------------------------------------------------------------------------------------- model
@dataclass
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int


def make_model(shape: Shape, tok: Any, seq_len: int, device: torch.device, seed: int) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.ffn,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=max(seq_len, 2048),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        use_cache=False,
    )
    torch.manual_seed(seed)
    with device:  # initialise on the device (fast on a GPU)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    return model.train()


def linear_params(model: torch.nn.Module) -> int:
    """Parameters that take part in matrix multiplications (every ``nn.Linear``, tied LM head included)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[float | None, str]:
    if override_tflops is not None:
        return override_tflops * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "unknown (CPU; pass --peak-tflops)"
    name = torch.cuda.get_device_name(device).upper()
    for keys, peak in PEAKS:
        if all(k in name for k in keys):
            return peak, f"{' '.join(keys)} dense bf16"
    return None, f"unknown device {name!r} (pass --peak-tflops)"


# ------------------------------------------------------------------------------------------ runs
@dataclass
class Phase:
    name: str
    step_s: list[float] = field(default_factory=list)
    host_s: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    counted: int = 0  # loss-bearing (answer) tokens


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(spec: str, args: argparse.Namespace, packer: Packer, shape: Shape, tok: Any, device: torch.device) -> dict[str, Any]:
    parts = spec.split("+")
    dtype_mode, compiled = parts[0], "compile" in parts[1:]
    if dtype_mode not in ("amp", "bf16", "fp32") or any(p != "compile" for p in parts[1:]):
        raise ValueError(f"run {spec!r}: expected amp|bf16|fp32 with an optional +compile")
    model = make_model(shape, tok, args.seq_len, device, args.seed)
    if dtype_mode == "bf16":
        model.to(torch.bfloat16)
    if args.grad_ckpt:
        model.gradient_checkpointing_enable()
    n_params = sum(p.numel() for p in model.parameters())
    n_linear = linear_params(model)
    cuda = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, fused=cuda)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype_mode == "amp")

    def forward_loss(ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=ids, use_cache=False).logits
        return sft_loss(logits, labels)[0]

    fwd: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = forward_loss
    if compiled:
        fwd = torch.compile(forward_loss, backend=args.compile_backend)

    def launch(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["input_ids"].to(device, non_blocking=True)
        labels = batch["labels"].to(device, non_blocking=True)
        with autocast:
            loss = fwd(ids, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        launch(packer.next()).item()
    _sync(device)
    warmup_s = time.perf_counter() - t0

    phases = [Phase("serial"), Phase("overlap")]
    serial, overlap = phases
    for _ in range(args.steps):  # host, device, sync: the order of `corpusalign train`
        t0 = time.perf_counter()
        batch = packer.next()
        t1 = time.perf_counter()
        loss = launch(batch)
        _sync(device)
        t2 = time.perf_counter()
        serial.step_s.append(t2 - t0)
        serial.host_s.append(t1 - t0)
        serial.losses.append(float(loss))
        serial.counted += int((batch["labels"] != IGNORE_INDEX).sum())
    batch = packer.next()
    _sync(device)
    for _ in range(args.steps):  # device launched, then the next batch on the host, then sync
        t0 = time.perf_counter()
        counted = int((batch["labels"] != IGNORE_INDEX).sum())
        loss = launch(batch)
        th = time.perf_counter()
        batch = packer.next()
        t1 = time.perf_counter()
        _sync(device)
        t2 = time.perf_counter()
        overlap.step_s.append(t2 - t0)
        overlap.host_s.append(t1 - th)
        overlap.losses.append(float(loss))
        overlap.counted += counted

    peak_mem = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    tokens_per_step = args.batch_rows * args.seq_len
    attn = 12 * shape.layers * shape.heads * (shape.hidden // shape.heads) * args.seq_len
    flops_tok = 6 * n_linear + attn
    peak, _ = peak_flops(device, args.peak_tflops)
    out_phases = []
    for ph in phases:
        wall, host = sum(ph.step_s), sum(ph.host_s)
        tps = tokens_per_step * len(ph.step_s) / wall
        device_tps = tokens_per_step * len(ph.step_s) / max(wall - host, 1e-12) if ph.name == "serial" else None
        out_phases.append(
            {
                "phase": ph.name,
                "steps": len(ph.step_s),
                "step_ms_median": 1e3 * statistics.median(ph.step_s),
                "step_ms_mean": 1e3 * wall / len(ph.step_s),
                "host_ms_median": 1e3 * statistics.median(ph.host_s),
                "host_share": host / wall,
                "tokens_per_s": tps,
                "answer_tokens_per_s": ph.counted / wall,
                "model_tflops_per_s": tps * flops_tok / 1e12,
                "mfu": tps * flops_tok / peak if peak else None,
                "mfu_6n": tps * 6 * n_linear / peak if peak else None,
                "device_only_tokens_per_s": device_tps,
                "device_only_mfu": device_tps * flops_tok / peak if peak and device_tps else None,
                "loss_first": ph.losses[0],
                "loss_last": ph.losses[-1],
            }
        )
    result = {
        "run": spec,
        "dtype": dtype_mode,
        "compile": compiled,
        "grad_ckpt": args.grad_ckpt,
        "params": n_params,
        "params_linear": n_linear,
        "params_embedding": model.get_input_embeddings().weight.numel(),
        "flops_per_token": flops_tok,
        "flops_per_token_attention": attn,
        "warmup_steps": args.warmup,
        "warmup_s": warmup_s,
        "peak_memory_gib": peak_mem,
        "phases": out_phases,
    }
    return result


def run_product(spec: str, args: argparse.Namespace, root: Path, shape: Shape, tok: Any, device: torch.device) -> dict[str, Any]:
    """``train-amp|train-bf16[+compile][+pack]``: the product's own ``corpusalign.training.loop.train`` on the
    same corpus, tokenizer and model shape, with its prefetch thread; throughput from its
    ``train_log.jsonl`` (real tokens, padding excluded). Unpacked (one row per sequence) unless
    ``+pack``: ``pack: true`` with ``max_length`` = ``--seq-len``, so a batch's rows fill packed rows
    of that length (block-diagonal attention, unlike this script's own packer)."""
    from corpusalign.training.config import load_train_config
    from corpusalign.training.loop import train

    parts = spec.split("+")
    weights = parts[0].removeprefix("train-")
    if weights not in ("amp", "bf16") or any(x not in ("compile", "pack") for x in parts[1:]):
        raise ValueError(f"run {spec!r}: expected train-amp|train-bf16 with optional +compile and +pack")
    packed = "pack" in parts[1:]
    model_dir, out = WORK / "train-product-model", WORK / f"train-product-{spec.replace('+', '-')}"
    for folder in (model_dir, out):
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
    model = make_model(shape, tok, args.seq_len, torch.device("cpu"), args.seed)
    n_linear = linear_params(model)
    model.save_pretrained(model_dir, safe_serialization=True)
    tok.save_pretrained(model_dir)
    del model
    cfg = load_train_config(
        model=str(model_dir),
        objective="sft",
        task="to_anchor",
        concepts_per_batch=args.concepts,
        max_length=args.seq_len if packed else args.max_length,
        pack=packed,
        steps=args.warmup + args.steps,
        lr=args.lr,
        log_every=1,
        eval_fraction=0.05,
        device=device.type,
        precision="bf16" if weights == "amp" and device.type == "cuda" else "fp32",
        weights="bf16" if weights == "bf16" else "fp32",
        compile="compile" in parts[1:],
        gradient_checkpointing=args.grad_ckpt,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    result = train(cfg, root, out, progress=False)
    total_s = time.perf_counter() - t0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    timed = log[args.warmup :]
    tps = statistics.mean(e["tokens_per_s"] for e in timed)
    row_tokens = result.tokens / max(result.rows, 1)  # mean real tokens per sequence
    attn = 12 * shape.layers * shape.heads * (shape.hidden // shape.heads) * row_tokens
    peak, _ = peak_flops(device, args.peak_tflops)
    flops_tok = 6 * n_linear + attn
    return {
        "run": spec,
        "product": True,
        "weights": weights,
        "compile": "compile" in parts[1:],
        "pack": packed,
        "steps": result.steps,
        "timed_steps": len(timed),
        "rows_per_step": result.rows / max(result.steps, 1),
        "tokens_per_row": row_tokens,
        "tokens_per_s": tps,
        "mfu": tps * flops_tok / peak if peak else None,
        "mfu_6n": tps * 6 * n_linear / peak if peak else None,
        "loss_first": result.first_loss,
        "loss_last": result.last_loss,
        "peak_memory_gib": result.peak_memory_gb,
        "train_s": total_s,
    }


def free_memory(device: torch.device) -> None:
    """Drop the finished run's model, optimizer and compiled graphs before the next run."""
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------ main
def main() -> int:
    t_script = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--runs",
        default=None,
        help="comma-separated: amp|bf16|fp32, optionally +compile (this script's packed loop), or train-amp|train-bf16, "
        "optionally +compile and +pack (corpusalign's own train()); default amp,bf16,bf16+compile,train-bf16+compile,"
        "train-bf16+compile+pack",
    )
    ap.add_argument("--hidden", type=int, default=1536)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=None, help="default: --heads (no GQA)")
    ap.add_argument("--ffn", type=int, default=4096, help="MLP intermediate size")
    ap.add_argument("--vocab", type=int, default=32768, help="BPE target; the embedding has max(tokenizer, this) rows")
    ap.add_argument("--seq-len", type=int, default=2048, help="tokens per packed sequence")
    ap.add_argument("--batch-rows", type=int, default=8, help="packed sequences per optimizer step")
    ap.add_argument("--concepts", type=int, default=32, help="K: concepts per aligned batch (x 3 languages = rows)")
    ap.add_argument("--max-length", type=int, default=256, help="Collator max_length per row (before packing)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per phase (serial, overlap)")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing (recompute not counted in MFU)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s (default: from device name)")
    ap.add_argument("--budget-s", type=float, default=240.0, help="skip runs that would start after this many seconds")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend of +compile runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu-smoke", "--tiny", action="store_true", help="tiny model on CPU, 3 steps: tests the code path")
    args = ap.parse_args()
    if args.cpu_smoke:
        args.hidden, args.layers, args.heads, args.ffn, args.vocab = 64, 2, 2, 128, 2048
        args.seq_len, args.batch_rows, args.concepts, args.warmup, args.steps = 128, 2, 8, 1, 3
        args.runs = args.runs or "amp,bf16,train-amp,train-bf16,train-bf16+pack"
        device = torch.device("cpu")
        torch.set_num_threads(1)
    elif torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        ap.error("no CUDA device: this benchmark is for a GPU (use --cpu-smoke to test the code path on CPU)")
    args.runs = args.runs or "amp,bf16,bf16+compile,train-bf16+compile,train-bf16+compile+pack"
    args.kv_heads = args.kv_heads or args.heads
    if args.hidden % args.heads:
        ap.error("--hidden must be a multiple of --heads")
    WORK.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    root = make_corpus()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = ShardDataset(root, split="train", eval_fraction=0.05)
    examples = Examples(ds, objective="sft", task="to_anchor", seed=args.seed)
    tok = make_tokenizer(ds, args.vocab, examples.prompt_template)
    tok_s = time.perf_counter() - t0
    sampler = AlignedBatchSampler(ds, args.concepts, missing="skip_concept", seed=args.seed, drop_last=True)
    collate = Collator(tok, langs=sampler.langs, max_length=args.max_length)
    packer = Packer(sampler, examples, collate, args.batch_rows, args.seq_len)
    vocab = math.ceil(max(len(tok), args.vocab) / 128) * 128
    shape = Shape(args.hidden, args.layers, args.heads, args.kv_heads, args.ffn, vocab)
    peak, peak_src = peak_flops(device, args.peak_tflops)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"

    print(
        f"corpus: {ds.num_concepts} concepts, {len(ds)} rows (train split), {list(ds.langs)}; built in {build_s:.1f} s; "
        f"tokenizer {len(tok)} pieces (embedding {vocab} rows) + dataset open in {tok_s:.1f} s"
    )
    print(
        f"batches: AlignedBatchSampler K={args.concepts} x {len(sampler.langs)} langs = {sampler.rows_per_batch} rows, "
        f"{len(sampler)} per epoch; packed into {args.batch_rows} x {args.seq_len} = {args.batch_rows * args.seq_len} "
        f"tokens per step"
    )
    print(f"device: {dev_name}; torch {torch.__version__}; peak {peak / 1e12 if peak else float('nan'):.1f} TFLOP/s ({peak_src})")

    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    for spec in [s.strip() for s in args.runs.split(",") if s.strip()]:
        if time.perf_counter() - t_script > args.budget_s:
            skipped.append(spec)
            print(f"run {spec}: skipped (past --budget-s {args.budget_s:.0f} s)")
            continue
        try:
            if spec.startswith("train-"):
                r = run_product(spec, args, root, shape, tok, device)
                layout = "packed" if r["pack"] else "unpacked"
                print(
                    f"run {spec} (corpusalign train, {layout} rows of ~{r['tokens_per_row']:.0f} tokens): "
                    f"{r['tokens_per_s']:,.0f} tokens/s, MFU {100 * (r['mfu'] or 0):.1f}% "
                    f"(6N {100 * (r['mfu_6n'] or 0):.1f}%), loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}"
                )
                results.append(r)
                continue
            r = run_one(spec, args, packer, shape, tok, device)
        except Exception as exc:  # a failed run (compiler, memory) must not lose the others' numbers
            print(f"run {spec}: FAILED {type(exc).__name__}: {str(exc)[:500]}")
            results.append({"run": spec, "error": f"{type(exc).__name__}: {exc}"})
            continue
        finally:
            free_memory(device)
        results.append(r)
        if len(results) == 1 or "params" not in results[0]:
            print(
                f"model: Llama, {r['params']:,} parameters ({r['params_linear']:,} in matmuls incl. the tied LM head, "
                f"{r['params_embedding']:,} embedding), hidden {shape.hidden}, {shape.layers} layers, {shape.heads} heads "
                f"({shape.kv_heads} kv), MLP {shape.ffn}, vocab {shape.vocab}; sdpa; "
                f"{r['flops_per_token'] / 1e9:.3f} GFLOP/token (6N + 12LHQT, T={args.seq_len})"
            )
        print(
            f"run {spec}: warm-up {r['warmup_steps']} steps {r['warmup_s']:.1f} s, peak memory "
            + (f"{r['peak_memory_gib']:.1f} GiB" if r["peak_memory_gib"] is not None else "n/a")
        )

    def pct(x: float | None) -> str:
        return f"{100 * x:.1f}%" if x is not None else "n/a"

    head = (
        f"{'run':<16}{'phase':<9}{'step ms':>9}{'tokens/s':>11}{'TFLOP/s':>9}{'MFU':>7}{'MFU 6N':>8}"
        f"{'host':>7}{'dev-only MFU':>13}{'loss first->last':>18}"
    )
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        if "error" in r:
            print(f"{r['run']:<16}FAILED")
            continue
        if r.get("product"):
            print(f"{r['run']:<16}{'train()':<9}{'':>9}{r['tokens_per_s']:>11,.0f}{'':>9}{pct(r['mfu']):>7}{pct(r['mfu_6n']):>8}")
            continue
        for p in r["phases"]:
            print(
                f"{r['run']:<16}{p['phase']:<9}{p['step_ms_median']:>9.1f}{p['tokens_per_s']:>11,.0f}"
                f"{p['model_tflops_per_s']:>9.1f}{pct(p['mfu']):>7}{pct(p['mfu_6n']):>8}{pct(p['host_share']):>7}"
                f"{pct(p['device_only_mfu']) if p['phase'] == 'serial' else '':>13}"
                f"{p['loss_first']:>9.3f}->{p['loss_last']:<7.3f}"
            )
    print(
        "tokens/s: all positions of the packed blocks over the wall time of the timed steps (host work included); "
        "MFU = tokens/s x (6N + 12LHQT) / peak; host = sampler + fetch + Collator + packing as a share of step time "
        "(serial: exposed; overlap: busy, hidden behind the GPU); dev-only MFU: serial step time minus host time"
    )
    best = max((p["mfu"] for r in results if "phases" in r for p in r["phases"] if p["mfu"] is not None), default=None)
    product = max((r["mfu"] for r in results if r.get("product") and r["mfu"] is not None), default=None)
    if product is not None:
        verdict = "OK" if product >= 0.40 else "UNDER TARGET"
        print(f"corpusalign train: best MFU {pct(product)} (target >= 40% on an H100): {verdict}")
    if best is not None:
        print(f"best MFU {pct(best)} (target >= 40% on an H100): {'OK' if best >= 0.40 else 'UNDER TARGET'}")
    print(f"total {time.perf_counter() - t_script:.0f} s")

    out = {
        "bench": "train_gpu",
        "what": "random-init Llama trained with SFT loss on packed aligned batches of the bundled Tatoeba sample; "
        "tokens/s counts all packed positions over wall time incl. host work; MFU = tokens/s * (6N + 12LHQT) / peak, "
        "N = nn.Linear params (tied LM head included), PaLM appendix B; serial = host then device then sync "
        "(as corpusalign train), overlap = next batch prepared while the device step runs",
        "device": dev_name,
        "peak_flops": peak,
        "peak_source": peak_src,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "corpus": {"concepts": ds.num_concepts, "rows": len(ds), "langs": list(ds.langs), "build_s": build_s},
        "tokenizer": {"pieces": len(tok), "embedding_rows": vocab},
        "model": shape.__dict__,
        "packing": {
            "tokens_per_step": args.batch_rows * args.seq_len,
            "aligned_batches_used": packer.aligned_batches,
            "examples_used": packer.examples_used,
        },
        "args": vars(args),
        "results": results,
        "skipped_runs": skipped,
        "best_mfu": best,
        "best_mfu_corpusalign_train": product,
        "total_s": time.perf_counter() - t_script,
    }
    name = "train_gpu_cpu_smoke.json" if args.cpu_smoke else "train_gpu.json"
    dest = Path(os.environ["OUT"]) / "bench_train_gpu.json" if os.environ.get("OUT") else RESULTS / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {dest}")
    return 0 if any("phases" in r or r.get("product") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
