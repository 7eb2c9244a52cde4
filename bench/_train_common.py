"""Pieces shared by the trainer benchmarks: the bundled Tatoeba corpus and an in-process tokenizer."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from corpusalign.config import load_config
from corpusalign.runner import build

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
RESULTS = HERE / "results"
SAMPLE = HERE.parent / "corpusalign" / "data" / "sample" / "tatoeba_en_de_ja.jsonl"

#: ChatML, the chat template of SmolLM2-Instruct and Qwen (as in tests/tiny_models.py).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tatoeba_corpus(name: str, **overrides: Any) -> Path:
    """The bundled Tatoeba sample (en/de/ja) built with verification off into bench/_work/NAME."""
    cfg = load_config(src="en", tgt=("de", "ja"), verify__enabled=False, **overrides)
    return Path(build(cfg, [SAMPLE], WORK / name, progress=False).output)  # up to date: returns at once


def chatml_tokenizer(texts: Iterable[str], vocab: int, chat_template: bool = True) -> Any:
    """A byte-level BPE trained on ``texts``, as a ``PreTrainedTokenizerFast`` (what the trainer loads),
    with ChatML specials (eos ``<|im_end|>``, pad ``<|endoftext|>``) and, optionally, the template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    specials = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}
    specials |= {"unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, **specials)
    if chat_template:
        tok.chat_template = CHATML_TEMPLATE
    return tok
