"""Multilingual sentence embedders behind one interface (see :mod:`corpusalign.embed.base`)."""

from corpusalign.embed.base import Embedder, ModelNotAvailableError, length_batches, make_embedder

__all__ = ["Embedder", "ModelNotAvailableError", "length_batches", "make_embedder"]
