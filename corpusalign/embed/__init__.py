"""Multilingual sentence embedders behind one interface (see :mod:`corpusalign.embed.base`), made by name
with :func:`make_embedder` (:mod:`corpusalign.embed.registry`)."""

from corpusalign.embed.base import Embedder, ModelNotAvailableError, length_batches
from corpusalign.embed.registry import make_embedder

__all__ = ["Embedder", "ModelNotAvailableError", "length_batches", "make_embedder"]
