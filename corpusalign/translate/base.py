"""The translator interface.

A translator turns a batch of source texts into target texts, one call per (batch, language pair,
field). For each text it returns one of:

* a ``str``: the translation;
* ``None``: no translation is available (the ``tm`` translator's memory has none); the row stays
  missing and the select step rejects it as ``missing_target``;
* a :class:`Failed`: a translation was attempted and failed (an endpoint kept answering 500 after
  every retry, a model produced nothing); the select step rejects the row as
  ``translation_failed`` with the reason, and the build is marked unfinished so that running the
  same command again retries exactly those texts (the cache answers the rest).

``origin`` says what the rows a translator fills are: ``human`` for imported translations, ``machine``
for machine translation. ``params`` are the generation parameters that change the output; they are
stored with every row the translator makes and are part of its cache key.

Machine translators derive from :class:`MachineTranslator`, which shields placeholders, URLs,
e-mails and markup from the model (:mod:`corpusalign.translate.protect`) and implements
:meth:`Translator.translate` on top of :meth:`MachineTranslator.translate_batch`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from corpusalign.config import BuildConfig
from corpusalign.langtags import display_name

#: English names of languages, for prompts (``{src_name}``, ``{tgt_name}``); unknown codes stay codes, tags
#: with a region or script are named from their language (:func:`language_name`).
LANGUAGE_NAMES: dict[str, str] = {
    "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian",
    "ms": "Malay", "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian",
    "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian",
    "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese", "yo": "Yoruba", "zu": "Zulu", "am": "Amharic",
    "ha": "Hausa", "ig": "Igbo",
}  # fmt: skip


def language_name(code: str) -> str:
    """The English name of a language tag for prompts: ``de`` -> ``German``; a tag with a region or a
    script names it (``pt-BR`` -> ``Portuguese (Brazil)``, ``sr-Latn`` -> ``Serbian (Latin)``,
    ``zh-Hant`` -> ``Traditional Chinese``); a bare code missing from :data:`LANGUAGE_NAMES` stays a code."""
    if code in LANGUAGE_NAMES or "-" not in code:
        return LANGUAGE_NAMES.get(code, code)
    return display_name(code, LANGUAGE_NAMES)


@dataclass(frozen=True)
class Failed:
    """A translation that was attempted and failed; ``reason`` goes to the row's ``drop_detail``."""

    reason: str


Result = str | None | Failed


class TranslatorUnavailable(RuntimeError):
    """The translator cannot run here (model not available offline, endpoint unreachable, key unset).

    Raised by :meth:`Translator.setup`, before any row is translated; the message names the model and
    the ways out.
    """


class Translator(ABC):
    name: str = "translator"
    origin: str = "machine"
    model: str | None = None
    #: It has something to load once per worker (a model, a memory, a client): its step then runs
    #: in workers that stay (on Ray, an actor pool). False for one with nothing to load, whose step
    #: runs with the plain steps beside it.
    holds_model: bool = True

    def check(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`TranslatorUnavailable` when the translator cannot run here (model not on
        disk, API key unset). Cheap: loads nothing. Called before the first batch."""

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models or memories; called once before the first batch. Raises
        :class:`TranslatorUnavailable` when the translator cannot run."""

    @abstractmethod
    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[Result]:
        """Translate ``texts`` from ``src`` to ``tgt``: one result per text, in order."""

    @property
    def params(self) -> dict[str, Any]:
        """Parameters that change the output (decoding settings, prompt); empty for ``tm``."""
        return {}

    def params_json(self) -> str | None:
        """``params`` as canonical JSON (stored in the ``translator_params`` column), or None."""
        return json.dumps(self.params, sort_keys=True, ensure_ascii=False) if self.params else None

    def describe(self) -> str:
        return f"{self.name} (origin={self.origin}, model={self.model})"

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release models, connections or thread pools."""


class MachineTranslator(Translator):
    """Base of the machine translators: placeholder protection around :meth:`translate_batch`."""

    origin = "machine"

    def __init__(self, cfg: BuildConfig) -> None:
        self.cfg = cfg
        self.tcfg = cfg.translate
        self.model = self.tcfg.model_id

    @abstractmethod
    def translate_batch(self, texts: Sequence[str], src: str, tgt: str) -> list[str | Failed]:
        """Translate protected texts (placeholders replaced by sentinels); one result per text."""

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[Result]:
        from corpusalign.translate.protect import protect, restore

        if not texts:
            return []
        self.setup()
        if not self.tcfg.protect:
            return list(self.translate_batch(list(texts), src, tgt))
        shielded = [protect(t) for t in texts]
        out = self.translate_batch([p.text for p in shielded], src, tgt)
        return [r if isinstance(r, Failed) else restore(r, p) for r, p in zip(out, shielded, strict=True)]

    @property
    def params(self) -> dict[str, Any]:
        g = self.tcfg.generation
        return {"num_beams": g.num_beams, "max_new_tokens": g.max_new_tokens, "protect": self.tcfg.protect}
