"""Embedders by name: the one place that knows every backend (it sits above them; they never import it)."""

from __future__ import annotations

from corpusalign.embed.base import Embedder


def make_embedder(spec: str, batch_size: int = 64, device: str | None = None) -> Embedder:
    """The embedder named by ``spec`` (see the module docstring)."""
    if spec == "e5":
        from corpusalign.embed.e5_torch import torch_available

        spec = "e5-torch" if torch_available() else "e5-native"
    if spec == "e5-native":
        from corpusalign.embed.e5_native import NativeE5Embedder

        return NativeE5Embedder(batch_size=batch_size)
    if spec == "e5-torch":
        from corpusalign.embed.e5_torch import TorchE5Embedder

        return TorchE5Embedder(batch_size=batch_size, device=device)
    if spec.startswith("st:") and len(spec) > 3:
        from corpusalign.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(spec[3:], batch_size=batch_size, device=device)
    raise ValueError(f"unknown embedder {spec!r}: use e5, e5-native, e5-torch or st:<model id or path>")
