"""Translators by name: the one place that knows every translation backend (it sits above them; they never import it)."""

from __future__ import annotations

from corpusalign.config import BuildConfig
from corpusalign.translate.base import Translator


def make_translator(cfg: BuildConfig) -> Translator:
    """The translator named in ``cfg.translate``, behind the translation cache when enabled."""
    kind = cfg.translate.translator
    if kind == "tm":
        from corpusalign.translate.tm import MemoryTranslator

        return MemoryTranslator(cfg.translate.memory, cfg)
    translator: Translator
    if kind == "seq2seq":
        from corpusalign.translate.seq2seq import Seq2SeqTranslator

        translator = Seq2SeqTranslator(cfg)
    elif kind == "causal":
        from corpusalign.translate.causal import CausalTranslator

        translator = CausalTranslator(cfg)
    elif kind == "openai":
        from corpusalign.translate.openai import OpenAITranslator

        translator = OpenAITranslator(cfg)
    else:  # pragma: no cover - config validation prevents this
        raise ValueError(f"unknown translator {kind!r}")
    if cfg.translate.cache:
        from corpusalign.translate.cache import CachedTranslator, TranslationCache

        translator = CachedTranslator(translator, TranslationCache.open(cfg.translate.cache_path))
    return translator
