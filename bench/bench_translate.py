"""Translation throughput: the seq2seq and causal translators against plain one-sentence-at-a-time transformers.

One command::

    python bench/bench_translate.py            # CPU, realistic-shaped small random models (~4 min on 2 busy cores)
    python bench/bench_translate.py --gpu      # GPU, an NLLB-600M-shaped random model, bf16/fp16

1. takes ``--n`` real English Tatoeba sentences (``../shared/data/parallel/tatoeba_en_de_ja.dev.jsonl``
   next to the checkout, else the bundled sample);
2. builds random models in-process (no download; ``tests/tiny_models.py``): an NLLB-layout
   encoder-decoder (M2M100 architecture, ``NllbTokenizer``) and a Llama-architecture instruct model
   with a ChatML template. CPU: ``d_model`` 256, 3+3 layers, vocabulary ~8k; ``--gpu``: NLLB-600M's
   shape (``d_model`` 1024, 12+12 layers, FFN 4096, 256,206 embeddings) and a SmolLM2-360M-shaped Llama;
3. translates the sentences en->de with each translator (``translate_batch``: length-sorted
   batches, ``--batch-size``, ``--max-tokens``) and with the plain baseline: one call per sentence
   (``transformers.pipeline("translation")`` where transformers still has it, else the same
   tokenise -> ``generate`` -> decode per sentence; one ``generate`` per chat prompt for causal);
   greedy decoding, and every output exactly ``--max-new-tokens`` tokens long (``min_new_tokens`` =
   ``max_new_tokens`` in the models' generation config) so that both sides do the same work;
4. prints a table (sentences/s, generated tokens/s, speed-up; target >= 5x) and writes
   ``bench/results/translate.json`` with the machine's load average and library versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402
import transformers  # noqa: E402
from tiny_models import build_causal, build_nllb, tatoeba_records  # noqa: E402

from corpusalign.config import load_config  # noqa: E402
from corpusalign.translate.base import MachineTranslator  # noqa: E402
from corpusalign.translate.causal import CausalTranslator  # noqa: E402
from corpusalign.translate.seq2seq import Seq2SeqTranslator  # noqa: E402

RESULTS = HERE / "results" / "translate.json"
TARGET_SPEEDUP = 5.0

#: model shapes: CPU (small but realistic) and GPU (NLLB-600M / SmolLM2-360M)
SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "seq2seq": {"d_model": 256, "layers": 3, "ffn": 1024, "heads": 4, "vocab_size": 8000},
        "causal": {"hidden": 256, "layers": 4, "ffn": 1024, "heads": 4, "vocab_size": 8000},
    },
    "gpu": {
        "seq2seq": {"d_model": 1024, "layers": 12, "ffn": 4096, "heads": 16, "vocab_size": 8000, "model_vocab": 256206},
        "causal": {"hidden": 960, "layers": 32, "ffn": 2560, "heads": 15, "vocab_size": 8000},
    },
}


def english(n: int) -> list[str]:
    """``n`` distinct English sentences in file order."""
    seen: dict[str, None] = {}
    for r in tatoeba_records():
        if r.get("en"):
            seen.setdefault(r["en"], None)
        if len(seen) == n:
            break
    return list(seen)


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def seq2seq_baseline(mt: Seq2SeqTranslator, texts: list[str], max_new_tokens: int) -> Callable[[], list[str]]:
    """One call per sentence: the translation pipeline when transformers has it, else what it does."""
    model, tok = mt._model, mt._tokenizer
    assert model is not None
    kwargs = {"max_new_tokens": max_new_tokens, "num_beams": 1, "do_sample": False}
    from transformers.pipelines import SUPPORTED_TASKS

    if "translation" in SUPPORTED_TASKS:
        pipe = transformers.pipeline(
            "translation", model=model, tokenizer=tok, device=mt.device, src_lang="eng_Latn", tgt_lang="deu_Latn"
        )
        return lambda: [pipe(t, **kwargs)[0]["translation_text"] for t in texts]
    bos = tok.convert_tokens_to_ids("deu_Latn")

    def loop() -> list[str]:
        tok.src_lang = "eng_Latn"
        out = []
        for t in texts:
            enc = tok(t, return_tensors="pt").to(mt.device)
            with torch.inference_mode():
                ids = model.generate(**enc, forced_bos_token_id=bos, **kwargs)
            out.append(tok.decode(ids[0], skip_special_tokens=True))
        return out

    return loop


def causal_baseline(mt: CausalTranslator, texts: list[str], max_new_tokens: int) -> Callable[[], list[str]]:
    """One ``generate`` per chat prompt, no padding."""
    model, tok = mt._model, mt._tokenizer
    assert model is not None

    def loop() -> list[str]:
        out = []
        for t in texts:
            enc = tok(mt.prompt(t, "en", "de"), add_special_tokens=False, return_tensors="pt").to(mt.device)
            with torch.inference_mode():
                ids = model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=tok.pad_token_id
                )
            out.append(tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
        return out

    return loop


def bench_backend(kind: str, model_dir: Path, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config(
        src="en",
        tgt=["de"],
        translate__translator=kind,
        translate__model=str(model_dir),
        translate__device=args.device,
        translate__dtype=args.dtype,
        translate__batch_size=args.batch_size,
        translate__max_tokens_per_batch=args.max_tokens,
        translate__protect=False,
        translate__generation={"num_beams": 1, "max_new_tokens": args.max_new_tokens, "temperature": 0.0},
    )
    mt: MachineTranslator = Seq2SeqTranslator(cfg) if kind == "seq2seq" else CausalTranslator(cfg)
    setup_s, _ = _time(mt.setup)
    baseline = (
        seq2seq_baseline(mt, texts, args.max_new_tokens)  # type: ignore[arg-type]
        if kind == "seq2seq"
        else causal_baseline(mt, texts, args.max_new_tokens)  # type: ignore[arg-type]
    )
    warm = texts[:4]
    mt.translate_batch(warm, "en", "de")  # warm-up
    n_tokens = len(texts) * args.max_new_tokens
    batched_s, _ = _time(lambda: mt.translate_batch(texts, "en", "de"))
    base_s, _ = _time(baseline)
    params = sum(p.numel() for p in mt._model.parameters())  # type: ignore[attr-defined]
    row = {
        "backend": kind,
        "model_params_m": round(params / 1e6, 1),
        "device": str(mt.device),  # type: ignore[attr-defined]
        "dtype": str(next(mt._model.parameters()).dtype).replace("torch.", ""),  # type: ignore[attr-defined]
        "setup_s": round(setup_s, 2),
        "sentences": len(texts),
        "generated_tokens": n_tokens,
        "batched": {"seconds": round(batched_s, 2), "sent_per_s": len(texts) / batched_s, "tok_per_s": n_tokens / batched_s},
        "one_by_one": {"seconds": round(base_s, 2), "sent_per_s": len(texts) / base_s, "tok_per_s": n_tokens / base_s},
        "model_calls": mt.calls - 1,  # type: ignore[attr-defined]
    }
    row["speedup"] = base_s / batched_s
    mt.close()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="English sentences to translate")
    ap.add_argument("--backends", default="seq2seq,causal")
    ap.add_argument("--gpu", action="store_true", help="device cuda and the realistic-size (NLLB-600M-shaped) models")
    ap.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps (default: cuda with --gpu, else cpu)")
    ap.add_argument("--dtype", default="auto", help="auto (bf16/fp16 on GPU, fp32 on CPU), float32, bfloat16, float16")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=8192, help="translate.max_tokens_per_batch")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.device = args.device or ("cuda" if args.gpu else "cpu")
    shapes = SHAPES["gpu" if args.gpu else "cpu"]
    texts = english(args.n)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.backends.split(","):
            t = time.perf_counter()
            shape = dict(shapes[kind])
            if kind == "seq2seq":
                model_dir = build_nllb(Path(tmp) / "nllb", init_std=0.02, min_new_tokens=args.max_new_tokens, **shape)
            else:
                model_dir = build_causal(Path(tmp) / "llama", init_std=0.02, min_new_tokens=args.max_new_tokens, **shape)
            print(f"built {kind} model in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            rows.append(bench_backend(kind, model_dir, texts, args))

    load = os.getloadavg()
    header = f"{'backend':<9} {'params':>8} {'device':>7} {'mode':<11} {'sent/s':>8} {'tok/s':>9} {'seconds':>8} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        for mode in ("one_by_one", "batched"):
            m = r[mode]
            sp = f"{r['speedup']:.1f}x" if mode == "batched" else ""
            print(
                f"{r['backend']:<9} {r['model_params_m']:>7}M {r['device']:>7} {mode:<11} "
                f"{m['sent_per_s']:>8.1f} {m['tok_per_s']:>9.0f} {m['seconds']:>8.2f} {sp:>9}"
            )
    ok = all(r["speedup"] >= TARGET_SPEEDUP for r in rows)
    print(
        f"target >= {TARGET_SPEEDUP:.0f}x: {'met' if ok else 'NOT met'}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    result = {
        "benchmark": "translate",
        "target_speedup": TARGET_SPEEDUP,
        "target_met": ok,
        "settings": {
            "sentences": len(texts),
            "batch_size": args.batch_size,
            "max_tokens_per_batch": args.max_tokens,
            "max_new_tokens": args.max_new_tokens,
            "decoding": "greedy, every output exactly max_new_tokens long",
            "shapes": shapes,
            "baseline": "one call per sentence (transformers has no translation pipeline in this version)"
            if "translation" not in transformers.pipelines.SUPPORTED_TASKS
            else "transformers.pipeline('translation'), one call per sentence",
        },
        "results": rows,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in load],
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
