"""Tiny, randomly initialised translation models built in-process (no Hugging Face hub).

Each builder trains a small tokenizer on real Tatoeba sentences (English, German, Japanese), builds
a model of the right architecture with random weights, and saves both with ``save_pretrained`` to a
directory that the translators load through ``translate.model=<dir>``, exactly like a downloaded
model:

* :func:`build_marian`: ``MarianMTModel`` + ``MarianTokenizer`` (a SentencePiece model shared by
  both sides); with ``targets`` the vocabulary lists ``>>deu<<``-style target tokens, as the
  multi-target OPUS-MT models do;
* :func:`build_m2m100`: ``M2M100ForConditionalGeneration`` + ``M2M100Tokenizer`` (SentencePiece and
  ``vocab.json``; the language tokens ``__de__`` follow the vocabulary);
* :func:`build_nllb`: the M2M100 architecture with an ``NllbTokenizer`` (a ``tokenizers`` BPE with
  Metaspace, the FLORES-200 codes ``eng_Latn`` ... added as special tokens), as NLLB-200 is;
* :func:`build_causal`: ``LlamaForCausalLM`` with a byte-level BPE tokenizer and a ChatML chat
  template, like SmolLM2-Instruct.

Weights are drawn with a large standard deviation (``init_std=1.0``) so that a random model's
output depends on its input (with the usual 0.02 every input gets the same output), which lets the
tests tell translations apart. The default sizes are for tests (a few hundred thousand parameters, built in about a second); the
benchmark passes realistic shapes (``d_model=256``, vocabularies of several thousand pieces).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SHARED = REPO.parent / "shared" / "data" / "parallel" / "tatoeba_en_de_ja.dev.jsonl"
_BUNDLED = REPO / "corpusalign" / "data" / "sample" / "tatoeba_en_de_ja.jsonl"

#: ChatML, the template of SmolLM2-Instruct and Qwen.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tatoeba_records(limit: int | None = None) -> list[dict[str, str]]:
    """Tatoeba records (``en``, ``de``, ``ja``): the shared copy if present, else the bundled one."""
    path = _SHARED if _SHARED.is_file() else _BUNDLED
    rows: list[dict[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(rows) >= limit:
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


def training_sentences(n: int = 400) -> list[str]:
    """English, German and Japanese sentences of the first ``n`` Tatoeba records."""
    return [r[lang] for r in tatoeba_records(n) for lang in ("en", "de", "ja") if r.get(lang)]


def train_spm(path: Path, vocab_size: int, n_sentences: int = 400) -> Path:
    """A SentencePiece unigram model trained on Tatoeba, written to ``path``."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_sentences(n_sentences)),
        model_writer=buf,
        vocab_size=vocab_size,
        character_coverage=0.98,
        hard_vocab_limit=False,
        model_type="unigram",
        minloglevel=2,
        num_threads=1,
    )
    path.write_bytes(buf.getvalue())
    return path


def _spm_pieces(path: Path) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def build_marian(
    out: Path,
    targets: Sequence[str] = (),
    *,
    d_model: int = 32,
    layers: int = 1,
    ffn: int = 64,
    heads: int = 2,
    vocab_size: int = 600,
    init_std: float = 1.0,
    seed: int = 0,
) -> Path:
    """An OPUS-MT-shaped Marian model; ``targets`` (``("deu", "fra")``) makes it multi-target."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    out.mkdir(parents=True, exist_ok=True)
    work = out / "_build"
    work.mkdir(exist_ok=True)
    spm_path = train_spm(work / "spm.model", vocab_size)
    vocab: dict[str, int] = {"</s>": 0, "<unk>": 1}
    for code in targets:
        vocab[f">>{code}<<"] = len(vocab)
    for piece in _spm_pieces(spm_path):
        vocab.setdefault(piece, len(vocab))
    vocab["<pad>"] = len(vocab)
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tok = MarianTokenizer(str(spm_path), str(spm_path), str(work / "vocab.json"), source_lang="en")
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        max_position_embeddings=256,
        pad_token_id=vocab["<pad>"],
        eos_token_id=0,
        decoder_start_token_id=vocab["<pad>"],
        forced_eos_token_id=0,
        init_std=init_std,
    )
    _seed(seed)
    _save(MarianMTModel(config), out)
    tok.save_pretrained(out)
    _cleanup(work)
    return out


def build_m2m100(
    out: Path,
    *,
    d_model: int = 32,
    layers: int = 1,
    ffn: int = 64,
    heads: int = 2,
    vocab_size: int = 600,
    init_std: float = 1.0,
    seed: int = 0,
) -> Path:
    """An M2M100 model with its SentencePiece tokenizer; language tokens ``__en__`` ... follow the vocabulary."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer

    out.mkdir(parents=True, exist_ok=True)
    work = out / "_build"
    work.mkdir(exist_ok=True)
    spm_path = train_spm(work / "spm.model", vocab_size)
    vocab: dict[str, int] = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece in _spm_pieces(spm_path):
        vocab.setdefault(piece, len(vocab))
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tok = M2M100Tokenizer(str(work / "vocab.json"), str(spm_path), src_lang="en", tgt_lang="de")
    # as in facebook/m2m100_418M: the vocabulary, then 100 language tokens, then 8 "made-up words"
    size = tok.encoder_size + len(tok.lang_code_to_id) + tok.num_madeup_words
    _save_m2m100(out, M2M100Config, M2M100ForConditionalGeneration, size, d_model, layers, ffn, heads, init_std, seed)
    tok.save_pretrained(out)
    _cleanup(work)
    return out


def build_nllb(
    out: Path,
    *,
    d_model: int = 32,
    layers: int = 1,
    ffn: int = 64,
    heads: int = 2,
    vocab_size: int = 600,
    init_std: float = 1.0,
    model_vocab: int | None = None,
    min_new_tokens: int = 2,
    seed: int = 0,
) -> Path:
    """The NLLB-200 layout: M2M100 architecture, ``NllbTokenizer`` with the FLORES-200 codes.

    ``model_vocab`` pads the embedding matrix beyond the tokenizer (NLLB-200 has 256,206 entries);
    ``min_new_tokens`` is saved in the generation config (the benchmark makes every output equally long).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    out.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    bpe.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        limit_alphabet=vocab_size // 3,
        show_progress=False,
    )
    bpe.train_from_iterator(training_sentences(max(400, vocab_size // 2)), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = NllbTokenizer(vocab=model["vocab"], merges=merges, src_lang="eng_Latn", tgt_lang="deu_Latn")
    size = max(len(tok), model_vocab or 0)
    _save_m2m100(
        out, M2M100Config, M2M100ForConditionalGeneration, size, d_model, layers, ffn, heads, init_std, seed, min_new_tokens
    )
    tok.save_pretrained(out)
    return out


def _save_m2m100(  # type: ignore[no-untyped-def]
    out: Path,
    config_cls,
    model_cls,
    vocab: int,
    d_model: int,
    layers: int,
    ffn: int,
    heads: int,
    init_std: float,
    seed: int,
    min_new_tokens: int = 2,
) -> None:
    config = config_cls(
        vocab_size=vocab,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        max_position_embeddings=256,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        init_std=init_std,
    )
    _seed(seed)
    _save(model_cls(config), out, min_new_tokens)


def build_causal(
    out: Path,
    *,
    hidden: int = 32,
    layers: int = 1,
    ffn: int = 64,
    heads: int = 2,
    vocab_size: int = 600,
    pad_token: bool = False,
    init_std: float = 1.0,
    min_new_tokens: int = 2,
    seed: int = 0,
) -> Path:
    """A Llama-architecture instruct model: byte-level BPE tokenizer, ChatML template, eos ``<|im_end|>``.

    Without ``pad_token`` the tokenizer has none, as many instruct models ship (the translator then
    pads with eos).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(training_sentences(max(400, vocab_size // 2)), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>" if pad_token else None,
    )
    tok.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=init_std,
    )
    _seed(seed)
    _save(LlamaForCausalLM(config), out, min_new_tokens)
    tok.save_pretrained(out)
    return out


def _save(model, out: Path, min_new_tokens: int = 2) -> None:  # type: ignore[no-untyped-def]
    """Save with a generation config that never ends before ``min_new_tokens`` new tokens: a random
    model's first choice is often end-of-sequence, and an empty output would be a failed translation."""
    model.generation_config.min_new_tokens = min_new_tokens
    model.eval().save_pretrained(out)


def _cleanup(work: Path) -> None:
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
