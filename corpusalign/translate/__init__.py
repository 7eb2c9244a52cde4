"""Translators: backends that fill the target languages a record lacks."""

from corpusalign.translate.base import Translator
from corpusalign.translate.registry import make_translator

__all__ = ["Translator", "make_translator"]
