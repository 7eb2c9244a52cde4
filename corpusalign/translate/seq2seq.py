"""Encoder-decoder machine translation through transformers (the ``seq2seq`` translator).

Three model families, detected from ``config.json`` (``model_type``) and the tokenizer class:

* **NLLB-200** (``facebook/nllb-200-distilled-600M``, the default): M2M100 architecture with an
  ``NllbTokenizer``; languages are FLORES-200 codes (``eng_Latn``), set as the tokenizer's
  ``src_lang`` and forced as the first generated token (``forced_bos_token_id``);
* **M2M100** (``facebook/m2m100_418M``): the same with ISO 639-1 codes (``__de__`` tokens);
* **Marian** (``Helsinki-NLP/opus-mt-en-de``): one model per language pair; a multi-target model
  (``opus-mt-en-mul``) lists ``>>xxx<<`` target tokens, one of which is put in front of each text.

Texts are tokenised once, sorted by length and cut into batches of at most ``translate.batch_size``
texts and ``translate.max_tokens_per_batch`` padded source tokens, so that little time is spent on
padding; results come back in input order. Decoding uses ``translate.generation`` (``num_beams``,
``max_new_tokens``). On a GPU the model runs in bfloat16/float16 (``translate.dtype: auto``).

A model is never downloaded: :meth:`Seq2SeqTranslator.check` finds it in a local directory or the
Hugging Face cache, and checks that the build's languages are known to it, before any work.

Example::

    cfg = load_config(src="en", tgt=["de"], translate__translator="seq2seq")
    mt = Seq2SeqTranslator(cfg)
    mt.check()
    mt.translate(["Good morning."], "en", "de")  # ['Guten Morgen.']
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpusalign.config import BuildConfig
from corpusalign.extras import require
from corpusalign.translate._hf import local_model_dir, read_json, require_extra, resolve_device, resolve_dtype, run_batches
from corpusalign.translate.base import Failed, MachineTranslator, TranslatorUnavailable
from corpusalign.translate.langcodes import (
    LANGUAGES,
    UnknownLanguage,
    flores_code,
    iso3,
    m2m100_code,
    marian_target_token,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

FAMILIES = ("nllb", "m2m100", "marian")
_FLORES = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
_OPUS_PAIR = re.compile(r"opus-mt(?:-tc-big)?-([a-z]{2,3})-([a-z]{2,3})$")


def detect_family(model_dir: Path) -> str:
    """``nllb``, ``m2m100`` or ``marian`` from ``config.json`` and ``tokenizer_config.json``."""
    model_type = read_json(model_dir / "config.json").get("model_type", "")
    tok_class = str(read_json(model_dir / "tokenizer_config.json").get("tokenizer_class") or "")
    if model_type == "marian" or tok_class.startswith("Marian"):
        return "marian"
    if tok_class.startswith("Nllb"):
        return "nllb"
    if model_type == "m2m_100" or tok_class.startswith("M2M100"):
        return "m2m100"
    raise TranslatorUnavailable(
        f"seq2seq translator: model type {model_type or '?'!r} (tokenizer {tok_class or '?'}) of {model_dir} is not "
        f"supported; use an NLLB-200, M2M100 or Marian (OPUS-MT) model"
    )


@dataclass(frozen=True)
class LanguagePlan:
    """How one language pair is put to the model."""

    src_lang: str | None  # the tokenizer's src_lang (NLLB, M2M100)
    forced_bos_token_id: int | None  # the target language token (NLLB, M2M100)
    prefix: str  # put in front of every text (multi-target Marian: ">>deu<< ")


class Seq2SeqTranslator(MachineTranslator):
    """NLLB, M2M100 and Marian models through ``AutoModelForSeq2SeqLM``."""

    name = "seq2seq"

    def __init__(self, cfg: BuildConfig) -> None:
        super().__init__(cfg)
        self.model_dir: Path | None = None
        self.family: str | None = None
        self.device: torch.device | None = None
        self._model: PreTrainedModel | None = None
        self._tokenizer: Any = None
        self._plans: dict[tuple[str, str], LanguagePlan] = {}
        self._drop_ids: torch.Tensor | None = None  # token ids removed from outputs before decoding
        self.calls = 0  # model.generate calls
        self.generated_tokens = 0  # tokens generated (padding excluded)

    # ------------------------------------------------------------------------------------- set-up

    def check(self) -> None:
        """The model is on this machine and knows the build's languages (reads JSON files only)."""
        if self.model_dir is not None:
            return
        if not self.model:
            raise TranslatorUnavailable("seq2seq translator: no model set (translate.model / --model)")
        require_extra("seq2seq")
        model_dir = local_model_dir(self.model, "seq2seq")
        family = self.family = detect_family(model_dir)
        for lang in (self.cfg.src, *self.cfg.tgt):
            if lang != self.cfg.src or family != "marian":
                self._check_language_offline(model_dir, family, lang, is_target=lang != self.cfg.src)
        self.model_dir = model_dir

    def _check_language_offline(self, model_dir: Path, family: str, lang: str, *, is_target: bool) -> None:
        """Without loading the tokenizer: the language has a code this family of models knows."""
        try:
            if family == "nllb":
                flores_code(lang)
            elif family == "m2m100":
                from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

                m2m100_code(lang, {c for codes in FAIRSEQ_LANGUAGE_CODES.values() for c in codes})
            elif is_target:
                targets = [k for k in read_json(model_dir / "vocab.json") if k.startswith(">>") and k.endswith("<<")]
                if targets:
                    marian_target_token(lang, targets)
                else:
                    self._check_marian_pair(model_dir, self.cfg.src, lang)
        except UnknownLanguage:
            raise TranslatorUnavailable(self._unknown(lang)) from None

    def _check_marian_pair(self, model_dir: Path, src: str, tgt: str) -> None:
        """A single-pair Marian model translates the pair its tokenizer config or name says, if any."""
        tok_cfg = read_json(model_dir / "tokenizer_config.json")
        pair = (tok_cfg.get("source_lang"), tok_cfg.get("target_lang"))
        m = _OPUS_PAIR.search(str(self.model).rstrip("/"))
        if None in pair and m:
            pair = (m.group(1), m.group(2))
        for want, have, side in ((src, pair[0], "source"), (tgt, pair[1], "target")):
            if have and want != have and iso3(want) != iso3(have) and have not in ("mul", "multi"):
                raise TranslatorUnavailable(
                    f"seq2seq translator: the Marian model {self.model!r} translates {pair[0]}->{pair[1]}, "
                    f"not {src}->{tgt} (its {side} language is {have!r}); choose the OPUS-MT model of the pair"
                )

    def _unknown(self, lang: str) -> str:
        variant = (
            "; a script needs a FLORES-200 code <language>_<Script> in the model (FLORES-200 has Serbian in Cyrillic "
            "only: build sr, not sr-Latn)"
            if self.family == "nllb" and "-" in lang
            else ""
        )
        return (
            f"seq2seq translator: language code {lang!r} is unknown to the model {self.model!r} ({self.family} "
            f"model); codes with a mapping: ISO 639-1 codes: {', '.join(sorted(LANGUAGES))}, with a region or a "
            f"script as in pt-BR or zh-Hant{variant}"
        )

    def setup(self) -> None:
        """Load the tokenizer and the model once (offline), on the configured device and dtype."""
        if self._model is not None:
            return
        self.check()
        assert self.model_dir is not None
        require("torch", extra="translate", purpose="the seq2seq translator")
        transformers = require("transformers", extra="translate", purpose="the seq2seq translator")
        self.device = resolve_device(self.tcfg.device)
        dtype = resolve_dtype(self.tcfg.dtype, self.device)
        self._tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        model = transformers.AutoModelForSeq2SeqLM.from_pretrained(self.model_dir, local_files_only=True, dtype=dtype)
        self._model = model.to(self.device).eval()
        if self.family == "m2m100":
            import torch

            self._drop_ids = torch.tensor(sorted(self._tokenizer.lang_code_to_id.values()))
        for lang in self.cfg.tgt:  # fail now, not after the first batches
            self._plan(self.cfg.src, lang)
        log.info("seq2seq: %s (%s) on %s, %s", self.model, self.family, self.device, dtype)

    def _plan(self, src: str, tgt: str) -> LanguagePlan:
        """The language codes of one pair, checked against the loaded tokenizer."""
        if (src, tgt) in self._plans:
            return self._plans[(src, tgt)]
        tok = self._tokenizer
        lang = src
        try:
            if self.family == "nllb":
                codes = {t for t in tok.get_vocab() if _FLORES.match(t)}
                src_code = flores_code(src, codes)
                lang = tgt
                plan = LanguagePlan(src_code, tok.convert_tokens_to_ids(flores_code(tgt, codes)), "")
            elif self.family == "m2m100":
                codes = set(tok.lang_code_to_id)
                src_code = m2m100_code(src, codes)
                lang = tgt
                plan = LanguagePlan(src_code, tok.get_lang_id(m2m100_code(tgt, codes)), "")
            else:
                lang = tgt
                targets = list(getattr(tok, "supported_language_codes", None) or ())
                prefix = marian_target_token(tgt, targets) + " " if targets else ""
                if not targets:
                    self._check_marian_pair(self.model_dir or Path("."), src, tgt)
                plan = LanguagePlan(None, None, prefix)
        except UnknownLanguage:
            raise TranslatorUnavailable(self._unknown(lang)) from None
        self._plans[(src, tgt)] = plan
        return plan

    # ------------------------------------------------------------------------------------- translate

    def translate_batch(self, texts: Sequence[str], src: str, tgt: str) -> list[str | Failed]:
        """Length-sorted batches through ``generate``; empty outputs become ``Failed("empty output")``."""
        import torch

        self.setup()
        assert self._model is not None and self.device is not None
        plan = self._plan(src, tgt)
        tok = self._tokenizer
        if plan.src_lang is not None:
            tok.src_lang = plan.src_lang
        max_len = min(int(getattr(tok, "model_max_length", 1024) or 1024), self._max_positions())
        encoded: list[list[int]] = tok(
            [plan.prefix + t for t in texts], truncation=True, max_length=max_len, add_special_tokens=True
        )["input_ids"]
        g = self.tcfg.generation

        def run(idx: list[int]) -> list[str | Failed]:
            batch = tok.pad({"input_ids": [encoded[i] for i in idx]}, padding=True, return_tensors="pt").to(self.device)
            kwargs: dict[str, Any] = {"num_beams": g.num_beams, "max_new_tokens": g.max_new_tokens, "do_sample": False}
            if plan.forced_bos_token_id is not None:
                kwargs["forced_bos_token_id"] = plan.forced_bos_token_id
            with torch.inference_mode():
                out = self._model.generate(**batch, **kwargs)  # type: ignore[union-attr]
            self.calls += 1
            # drop the decoder start token and the forced target language token
            out = out[:, 1 if plan.forced_bos_token_id is None else 2 :]
            pad = tok.pad_token_id
            if self._drop_ids is not None and pad is not None:  # M2M100 language tokens are not "special"
                out = out.masked_fill(torch.isin(out, self._drop_ids.to(out.device)), pad)
            self.generated_tokens += int((out != pad).sum()) if pad is not None else out.numel()
            decoded = tok.batch_decode(out, skip_special_tokens=True, clean_up_tokenization_spaces=True)
            return [d.strip() or Failed("empty output") for d in decoded]

        return run_batches([len(e) for e in encoded], self.tcfg.batch_size, self.tcfg.max_tokens_per_batch, run)

    def _max_positions(self) -> int:
        cfg = self._model.config if self._model is not None else None
        return int(getattr(cfg, "max_position_embeddings", 1024) or 1024)

    def describe(self) -> str:
        return f"{super().describe()}, family={self.family}, device={self.device}"

    def close(self) -> None:
        self._model = None
        self._tokenizer = None


__all__ = ["FAMILIES", "LanguagePlan", "Seq2SeqTranslator", "detect_family"]
