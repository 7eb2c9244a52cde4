"""GPU embedding throughput: plain ``SentenceTransformer.encode`` against corpusalign's ``st:`` embedder.

For the ``device`` tool (one H100/H200, no network, only the repository copied): nothing is downloaded.

1. texts: every text field of the bundled samples (``corpusalign/data/sample/*.jsonl``: 5,477 distinct
   Tatoeba sentences in en/de/ja/... and UDHR paragraphs of up to a few hundred tokens), plus
   ``../shared/data/parallel/*.jsonl`` next to the checkout when it is there (it is not on the device);
   the distinct texts are repeated and shuffled (seeded) up to ``--n`` texts (60,000), ``--long-share``
   (10%) of them from the texts of 150 characters or more (long sentences and UDHR paragraphs), the
   rest Tatoeba-like sentences: mean ~16 tokens, p95 ~48, p99 ~70 (plain repetition would give ~1%
   long texts);
2. model: LaBSE's shape, randomly initialised: ``BertModel`` with 12 layers, hidden 768, 12 heads,
   MLP 3072, 501,153 embedding rows, 512 positions, stacked as sentence-transformers
   ``Transformer`` (``max_seq_length`` 256, as LaBSE's) -> ``Pooling(cls)`` -> ``Normalize`` and saved
   in float32 to a temporary folder. The tokenizer is a WordPiece trained in-process with
   ``tokenizers`` on the texts (~21k pieces; the ids fall in the first rows of the embedding, which
   keeps LaBSE's size), saved as ``PreTrainedTokenizerFast`` with BERT's specials;
3. methods, each loaded from that folder the way a user loads it:

   * ``baseline``: ``SentenceTransformer(folder, device=...).encode(texts, batch_size=B)``, defaults
     otherwise (float32 weights, as saved);
   * ``embedder``: ``corpusalign.embed.sentence_transformers.SentenceTransformerEmbedder(folder,
     batch_size=B, device=..., max_tokens_per_batch=T)`` with its defaults on CUDA (``dtype="auto"``:
     float16);
   * extra rows while the time budget allows (``--extras``): ``sync``, the embedder's encode path
     before batches were kept on the device (a device->host copy per batch); ``bf16``, the embedder
     in bfloat16; ``big``, batch 1024 and a 4x token budget; ``nobudget``, batches by characters
     without the token budget; ``bs32``, the baseline at sentence-transformers' default batch size 32;

4. timing: one warm-up call per method on a slice of the texts, then rounds in which every method
   encodes all texts once (the order of the methods flips every round); ``torch.cuda.synchronize``
   around each call; the best round counts (``--repeats`` rounds at most, fewer when ``--budget-s``
   runs out; every method gets at least one). Reported: texts/s, tokens/s (tokens as the model sees
   them, special tokens included, truncated), speed-up over the baseline at the same batch size
   (target >= 1.5x), and the agreement of each method's vectors with the baseline's (mean and min
   cosine between corresponding rows). Also the padded tokens each plan feeds the model: the
   baseline sorts by characters (Japanese and German of the same token length end up apart), the
   embedder with a token budget by tokens.

Results: a table on stdout and JSON at ``--out`` (default ``$OUT/bench_embed_gpu.json`` when ``$OUT``
is set, else ``bench/results/embed_gpu.json``).

    python bench/bench_embed_gpu.py                                   # GPU, 60k texts, ~2 min on an H100
    nice -n 19 python bench/bench_embed_gpu.py --device cpu --smoke   # tiny model, 500 texts: tests the code path
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never wait on a network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

# only numpy, torch and sentence-transformers below this module: no polars/orjson needed
from corpusalign.embed.base import l2_normalise  # noqa: E402
from corpusalign.embed.sentence_transformers import SentenceTransformerEmbedder  # noqa: E402

SAMPLES = sorted((REPO / "corpusalign" / "data" / "sample").glob("*.jsonl"))
SHARED = REPO.parent / "shared" / "data" / "parallel"
TARGET = 1.5
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ------------------------------------------------------------------------------------------ data
def read_pool(files: Sequence[Path]) -> list[str]:
    """Distinct non-empty text fields (every string value but ids) of the JSONL files, in file order."""
    seen: dict[str, None] = {}
    for f in files:
        with f.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                rec = json.loads(line)
                for key, val in rec.items():
                    if isinstance(val, str) and val.strip() and not key.endswith("id"):
                        seen.setdefault(val, None)
    return list(seen)


def make_texts(pool: list[str], n: int, seed: int, long_share: float | None = None, long_chars: int = 150) -> list[str]:
    """``n`` texts: the pool repeated, or, with ``long_share``, that share of texts drawn (cyclically) from
    the pool's texts of at least ``long_chars`` characters and the rest from the shorter ones; shuffled."""

    def cycle(items: list[str], k: int) -> list[str]:
        return (items * -(-k // len(items)))[:k] if k else []

    long = [t for t in pool if len(t) >= long_chars]
    if long_share is None or not long or len(long) == len(pool):
        texts = cycle(pool, n)
    else:
        n_long = round(n * long_share)
        texts = cycle(long, n_long) + cycle([t for t in pool if len(t) < long_chars], n - n_long)
    random.Random(seed).shuffle(texts)
    return texts


# ----------------------------------------------------------------------------------------- model
def train_tokenizer(pool: list[str], vocab: int, max_len: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(pool, trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_len,
    )


def build_model(folder: Path, tok: Any, shape: dict[str, int], max_seq_length: int, device: str, seed: int) -> Path:
    """A random LaBSE-shaped sentence-transformers model saved (float32) to ``folder/model``."""
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel

    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Normalize, Pooling, Transformer  # type: ignore[no-redef]

    backbone = folder / "backbone"
    tok.save_pretrained(backbone)
    cfg = BertConfig(
        vocab_size=max(shape["vocab"], len(tok)),
        hidden_size=shape["hidden"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        intermediate_size=shape["ffn"],
        max_position_embeddings=shape["positions"],
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device):  # initialise where it is fast
        bert = BertModel(cfg)  # with its pooler, as AutoModel loads it (sentence-transformers pools CLS itself)
    bert.to("cpu").save_pretrained(backbone)
    del bert
    transformer = Transformer(str(backbone), max_seq_length=max_seq_length)
    st = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "cls"), Normalize()], device="cpu"
    )
    out = folder / "model"
    st.save(str(out))
    del st, transformer
    gc.collect()
    return out


# ------------------------------------------------------------------------------------------ runs
class SyncEmbedder(SentenceTransformerEmbedder):
    """The embedder's encode path before it kept batches on the device: one ``st.encode`` per planned
    batch straight to numpy (a device->host copy, and so a synchronisation, after every batch)."""

    name = "st-sync"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.setup()
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for idx in self.batch_plan(texts):
            vecs = self.st.encode(
                [texts[i] for i in idx],
                prompt=self.prompt or None,
                batch_size=len(idx),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out[idx] = np.asarray(vecs, dtype=np.float32)
        return l2_normalise(out)


def share_model(dst: SentenceTransformerEmbedder, src: SentenceTransformerEmbedder) -> SentenceTransformerEmbedder:
    """Let ``dst`` use the model ``src`` loaded (same folder, device and dtype): saves a load per variant."""
    src.setup()
    dst.st, dst.dim, dst.prompt, dst.device = src.st, src.dim, src.prompt, src.device
    return dst


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a = l2_normalise(np.asarray(a, dtype=np.float32))
    b = l2_normalise(np.asarray(b, dtype=np.float32))
    cos = np.sum(a * b, axis=1)
    return {"mean": float(cos.mean()), "min": float(cos.min()), "p001": float(np.quantile(cos, 0.001))}


def param_dtype(model: Any) -> str:
    return str(next(model.parameters()).dtype).replace("torch.", "")


# ------------------------------------------------------------------------------------------ main
def main() -> int:
    t_script = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny model and 500 texts: tests the code path (CPU)")
    ap.add_argument("--n", type=int, default=60_000, help="texts to embed per call")
    ap.add_argument("--batch-size", type=int, default=256, help="B: baseline batch_size and the embedder's batch cap")
    ap.add_argument("--max-tokens", type=int, default=32768, help="T: the embedder's max_tokens_per_batch")
    ap.add_argument("--big-batch", type=int, default=1024, help="batch cap of the embedder_big row (token budget x4)")
    ap.add_argument(
        "--long-share",
        type=float,
        default=0.1,
        help="share of texts drawn from the sample's long ones (>= --long-chars; UDHR paragraphs); -1: plain repetition "
        "(~1%% long: Tatoeba dominates)",
    )
    ap.add_argument("--long-chars", type=int, default=150, help="characters from which a text counts as long")
    ap.add_argument("--max-seq-length", type=int, default=256, help="truncation (LaBSE's sentence-transformers config: 256)")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--ffn", type=int, default=3072)
    ap.add_argument("--vocab", type=int, default=501_153, help="embedding rows (LaBSE: 501,153)")
    ap.add_argument("--tok-vocab", type=int, default=30_000, help="WordPiece training target")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds at most, best counts (default 3; --smoke: 2)")
    ap.add_argument("--budget-s", type=float, default=110.0, help="no new round (or extra row) after this many seconds")
    ap.add_argument("--extras", default="sync,bf16,big,nobudget,bs32", help="extra rows, comma-separated ('' for none)")
    ap.add_argument("--no-shared", action="store_true", help="only the bundled samples, even where ../shared exists")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.smoke:
        args.n, args.layers, args.hidden, args.heads, args.ffn, args.vocab = min(args.n, 500), 2, 64, 2, 128, 4096
        args.tok_vocab, args.max_seq_length = 2000, 128
        args.batch_size, args.max_tokens, args.big_batch = 64, 2048, 128
        args.device = args.device or "cpu"
    args.repeats = args.repeats or (2 if args.smoke else 3)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and not args.smoke:
        print("note: no CUDA device; running the full-size benchmark on the CPU (slow; --smoke for a code-path test)")
    if args.out is None:
        args.out = (
            Path(os.environ["OUT"]) / "bench_embed_gpu.json"
            if os.environ.get("OUT")
            else HERE / "results" / ("embed_gpu_cpu_smoke.json" if args.smoke else "embed_gpu.json")
        )
    cuda = device.startswith("cuda")
    if cuda:
        dev_name = torch.cuda.get_device_name()
    else:
        dev_name = platform.processor() or "CPU"
        if args.smoke:
            torch.set_num_threads(min(2, torch.get_num_threads()))

    import sentence_transformers
    import transformers

    files = list(SAMPLES)
    if not args.no_shared and SHARED.is_dir():
        files += sorted(SHARED.glob("*.jsonl"))
    pool = read_pool(files)
    texts = make_texts(pool, args.n, args.seed, None if args.long_share < 0 else args.long_share, args.long_chars)
    shape = {
        "layers": args.layers,
        "hidden": args.hidden,
        "heads": args.heads,
        "ffn": args.ffn,
        "vocab": args.vocab,
        "positions": 512 if not args.smoke else 128,
    }
    print(
        f"device: {dev_name}; torch {torch.__version__}, transformers {transformers.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}"
    )
    print(f"texts: {len(pool):,} distinct from {[f.name for f in files]} -> {len(texts):,} (repeated, shuffled)")

    B = args.batch_size
    with tempfile.TemporaryDirectory(prefix="embed-gpu-") as tmp:
        t0 = time.perf_counter()
        tok = train_tokenizer(pool, args.tok_vocab, args.max_seq_length)
        tok_train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        folder = build_model(Path(tmp), tok, shape, max_seq_length=args.max_seq_length, device=device, seed=args.seed)
        build_s = time.perf_counter() - t0
        size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
        print(
            f"tokenizer: {len(tok):,} pieces in {tok_train_s:.1f} s; "
            f"model built and saved ({size_mb:,.0f} MiB) in {build_s:.1f} s"
        )

        # token statistics as the model sees the texts (special tokens, truncation)
        t0 = time.perf_counter()
        lens = np.array([len(x) for x in tok(texts, truncation=True, max_length=args.max_seq_length)["input_ids"]])
        tokenize_s = time.perf_counter() - t0
        n_tokens = int(lens.sum())
        from corpusalign.batching import length_batches

        by_chars = np.argsort([-len(t) for t in texts], kind="stable")  # what SentenceTransformer.encode does
        padded_base = int(sum(len(c) * lens[c].max() for c in np.array_split(by_chars, range(B, len(texts), B))))
        padded_emb = int(sum(len(b) * lens[b].max() for b in length_batches(lens.tolist(), B, args.max_tokens)))
        tok_stats = {
            "total": n_tokens,
            "mean": float(lens.mean()),
            "median": float(np.median(lens)),
            "p95": float(np.quantile(lens, 0.95)),
            "max": int(lens.max()),
            "share_over_64": float((lens > 64).mean()),
            "tokenize_all_once_s": tokenize_s,
            "padded_baseline": padded_base,
            "padded_embedder": padded_emb,
        }
        print(
            f"tokens: {n_tokens:,} in all, mean {tok_stats['mean']:.1f}, median {tok_stats['median']:.0f}, "
            f"p95 {tok_stats['p95']:.0f}, max {tok_stats['max']} (truncated at {args.max_seq_length}); "
            f"{100 * tok_stats['share_over_64']:.1f}% over 64; tokenising all once: {tokenize_s:.2f} s; padded tokens "
            f"fed at batch {B}: baseline (by characters) {padded_base:,}, embedder (by tokens) {padded_emb:,}"
        )

        from sentence_transformers import SentenceTransformer

        t0 = time.perf_counter()
        base = SentenceTransformer(str(folder), device=device)
        load_base_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        emb = SentenceTransformerEmbedder(
            str(folder), batch_size=args.batch_size, device=device, max_tokens_per_batch=args.max_tokens
        )
        emb.setup()
        load_emb_s = time.perf_counter() - t0
        print(f"loaded: baseline {param_dtype(base)} in {load_base_s:.1f} s; embedder {emb.describe()} in {load_emb_s:.1f} s")

        methods: dict[str, tuple[Callable[[list[str]], np.ndarray], dict[str, Any]]] = {
            "baseline": (
                lambda t: base.encode(t, batch_size=B),
                {
                    "what": f"SentenceTransformer(folder, device={device!r}).encode(texts, batch_size={B})",
                    "dtype": param_dtype(base),
                },
            ),
            "embedder": (
                emb.encode,
                {
                    "what": f"SentenceTransformerEmbedder(batch_size={B}, max_tokens_per_batch={args.max_tokens}, dtype=auto)",
                    "dtype": param_dtype(emb.st),
                },
            ),
        }
        extras = [e.strip() for e in args.extras.split(",") if e.strip()]
        pending: dict[str, Callable[[], tuple[Callable[[list[str]], np.ndarray], dict[str, Any]]]] = {}

        def add_bf16() -> tuple[Callable[[list[str]], np.ndarray], dict[str, Any]]:
            e = SentenceTransformerEmbedder(
                str(folder), batch_size=B, device=device, max_tokens_per_batch=args.max_tokens, dtype="bfloat16"
            )
            e.setup()
            return e.encode, {
                "what": f"embedder, dtype=bfloat16 (batch {B}, {args.max_tokens} tokens)",
                "dtype": param_dtype(e.st),
            }

        def add_nobudget() -> tuple[Callable[[list[str]], np.ndarray], dict[str, Any]]:
            e = share_model(SentenceTransformerEmbedder(str(folder), batch_size=B, device=device), emb)
            return e.encode, {
                "what": f"embedder, batch_size={B}, no token budget (char-length batches)",
                "dtype": param_dtype(e.st),
            }

        def add_big() -> tuple[Callable[[list[str]], np.ndarray], dict[str, Any]]:
            e = share_model(
                SentenceTransformerEmbedder(
                    str(folder), batch_size=args.big_batch, device=device, max_tokens_per_batch=4 * args.max_tokens
                ),
                emb,
            )
            return e.encode, {
                "what": f"embedder, batch_size={args.big_batch}, max_tokens_per_batch={4 * args.max_tokens}",
                "dtype": param_dtype(e.st),
            }

        def add_sync() -> tuple[Callable[[list[str]], np.ndarray], dict[str, Any]]:
            e = share_model(SyncEmbedder(str(folder), batch_size=B, device=device, max_tokens_per_batch=args.max_tokens), emb)
            return e.encode, {
                "what": "embedder with the pre-change encode path (numpy per batch: a sync per batch)",
                "dtype": param_dtype(e.st),
            }

        def add_bs32() -> tuple[Callable[[list[str]], np.ndarray], dict[str, Any]]:
            return (lambda t: base.encode(t)), {
                "what": "SentenceTransformer.encode(texts): default batch_size 32",
                "dtype": param_dtype(base),
            }

        makers = {"bf16": add_bf16, "nobudget": add_nobudget, "big": add_big, "sync": add_sync, "bs32": add_bs32}
        for e in extras:
            if e not in makers:
                ap.error(f"--extras: unknown {e!r}; choose from {sorted(makers)}")
            pending[e] = makers[e]

        warm = texts[: min(len(texts), 4 * B)]
        timings: dict[str, list[float]] = {}
        outputs: dict[str, np.ndarray] = {}
        info: dict[str, dict[str, Any]] = {}
        warm_s: dict[str, float] = {}

        def warm_up(name: str) -> None:
            fn = methods[name][0]
            warm_s[name], _ = timed(lambda: fn(warm), device)
            timings[name] = []
            info[name] = methods[name][1]

        def run(name: str) -> None:
            fn = methods[name][0]
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            s, out = timed(lambda: fn(texts), device)
            timings[name].append(s)
            outputs[name] = np.asarray(out, dtype=np.float32)
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
            info[name]["peak_memory_gib"] = max(info[name].get("peak_memory_gib") or 0.0, peak or 0.0) if cuda else None
            print(f"  {name:<14} {s:8.2f} s  {len(texts) / s:>10,.0f} texts/s")

        for name in methods:
            warm_up(name)

        def elapsed() -> float:
            return time.perf_counter() - t_script

        # rounds 1 and 2: the two main methods (the order flipped in round 2); then each extra row is added,
        # warmed up and timed once while time remains; then rounds over every method (order flipping) while a
        # whole one fits in --budget-s, else one more of the two main methods when that fits
        main = ["baseline", "embedder"]
        print("round 1")
        for name in main:
            run(name)
        main_s = min(timings["baseline"]) + min(timings["embedder"])
        done = 1
        if args.repeats >= 2 and elapsed() + main_s <= args.budget_s:
            print("round 2")
            for name in main[::-1]:
                run(name)
            done = 2
        order = list(main)
        for e, make in pending.items():
            if elapsed() > args.budget_s:
                print(f"  {e}: skipped (past --budget-s {args.budget_s:.0f} s)")
                continue
            try:
                methods[e] = make()
                warm_up(e)
                run(e)
                order.append(e)
            except Exception as exc:  # an extra row must not lose the main numbers
                print(f"  {e}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
                info[e] = {"error": f"{type(exc).__name__}: {exc}"}
        for r in range(done + 1, args.repeats + 1):
            order = order[::-1]
            full = sum(min(timings[n]) for n in order)
            if elapsed() + full <= args.budget_s:
                print(f"round {r}")
                for name in order:
                    run(name)
            elif elapsed() + main_s <= args.budget_s:
                print(f"round {r} (main methods only: a whole round does not fit in --budget-s)")
                for name in [n for n in order if n in main]:
                    run(name)
            else:
                break

        ref = outputs["baseline"]
        rows = []
        base_best = min(timings["baseline"])
        for name, ts in timings.items():
            if not ts:
                continue
            best = min(ts)
            row = {
                "method": name,
                **info[name],
                "rounds": len(ts),
                "seconds_all_rounds": ts,
                "best_s": best,
                "warmup_s": warm_s[name],
                "texts_per_s": len(texts) / best,
                "tokens_per_s": n_tokens / best,
                "speedup_vs_baseline": base_best / best,
                "cosine_vs_baseline": agreement(outputs[name], ref),
                "norm_min": float(np.linalg.norm(outputs[name], axis=1).min()),
            }
            rows.append(row)
        for name, i in info.items():
            if "error" in i:
                rows.append({"method": name, **i})

    print()
    head = f"{'method':<14}{'dtype':>10}{'best s':>9}{'texts/s':>11}{'tokens/s':>12}{'vs base':>9}{'cos mean':>10}{'cos min':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['method']:<14}FAILED")
            continue
        c = r["cosine_vs_baseline"]
        print(
            f"{r['method']:<14}{r['dtype']:>10}{r['best_s']:>9.2f}{r['texts_per_s']:>11,.0f}{r['tokens_per_s']:>12,.0f}"
            f"{r['speedup_vs_baseline']:>8.2f}x{c['mean']:>10.5f}{c['min']:>9.5f}"
        )
    ratio = base_best / min(timings["embedder"])
    ok = ratio >= TARGET
    print(f"embedder vs baseline (same batch size {B}): {ratio:.2f}x; target >= {TARGET}x: {'met' if ok else 'NOT met'}")
    if "bs32" in timings and timings["bs32"]:
        print(f"embedder vs baseline at ST's default batch size 32: {min(timings['bs32']) / min(timings['embedder']):.2f}x")
    print(f"total {time.perf_counter() - t_script:.0f} s")

    result = {
        "bench": "embed_gpu",
        "what": "random-init LaBSE-shaped model (BERT-base, 501,153 embedding rows, CLS pooling, normalised) built in-process; "
        "baseline = plain SentenceTransformer.encode (float32 as saved); embedder = corpusalign's SentenceTransformerEmbedder "
        "(dtype auto = float16 on CUDA, token-budget batches); best of the rounds; cosine = per-row agreement with the baseline",
        "device": dev_name,
        "smoke": args.smoke,
        "target_speedup": TARGET,
        "speedup": ratio,
        "target_met": ok,
        "texts": len(texts),
        "distinct_texts": len(pool),
        "sources": [str(f.relative_to(REPO.parent)) if f.is_relative_to(REPO.parent) else str(f) for f in files],
        "tokens": tok_stats,
        "tokenizer_pieces": len(tok),
        "model": {**shape, "max_seq_length": args.max_seq_length, "pooling": "cls", "saved_mib": size_mb, "build_s": build_s},
        "load_s": {"baseline": load_base_s, "embedder": load_emb_s},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": rows,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "total_s": time.perf_counter() - t_script,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
