"""The translator interface.

A translator turns a batch of source texts into target texts, one call per (batch, language pair).
It returns ``None`` for a text it cannot translate; such rows stay missing and the select step
rejects them as ``missing_target``. ``origin`` says what the rows it fills are: ``human`` for
imported translations, ``machine`` for machine translation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from corpusalign.config import BuildConfig


class Translator(ABC):
    name: str = "translator"
    origin: str = "machine"
    model: str | None = None

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models or memories; called once before the first batch."""

    @abstractmethod
    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str | None]:
        """Translate ``texts`` from ``src`` to ``tgt``; ``None`` where no translation is available."""

    def describe(self) -> str:
        return f"{self.name} (origin={self.origin}, model={self.model})"


def make_translator(cfg: BuildConfig) -> Translator:
    """The translator named in ``cfg.translate``."""
    if cfg.translate.translator == "tm":
        from corpusalign.translate.tm import MemoryTranslator

        return MemoryTranslator(cfg.translate.memory, cfg)
    raise ValueError(f"unknown translator {cfg.translate.translator!r}")  # config validation prevents this
