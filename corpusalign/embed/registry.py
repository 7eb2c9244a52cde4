"""Embedders by name: the one place that knows every backend (it sits above them; they never import it)."""

from __future__ import annotations

from importlib.util import find_spec

from corpusalign.embed.base import Embedder

#: What the torch engine of e5 needs installed (the ``embed`` extra).
TORCH_ENGINE_PACKAGES = ("torch", "transformers", "tokenizers")


def resolve_spec(spec: str) -> str:
    """The engine ``spec`` names: ``e5`` is ``e5-torch`` when the ``embed`` extra is installed, else
    ``e5-native``; every other spec is itself. Nothing is imported (a build records and fingerprints
    the engine before any model loads: the two engines agree closely but not bit for bit)."""
    if spec != "e5":
        return spec
    return "e5-torch" if all(find_spec(name) is not None for name in TORCH_ENGINE_PACKAGES) else "e5-native"


def make_embedder(spec: str, batch_size: int = 64, device: str | None = None) -> Embedder:
    """The embedder named by ``spec`` (see :mod:`corpusalign.embed.base`), ``e5`` resolved by :func:`resolve_spec`."""
    spec = resolve_spec(spec)
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
