"""A translation-ranking adapter: a linear map on a frozen embedder's vectors, LaBSE-style.

An experiment of the quality benchmark (``bench_quality.py --adapter fit``), not part of the
product: measured, it did not move the verification gate (docs/verification.md, "A LaBSE-style
adapter: measured, not adopted").

multilingual-e5-small is not trained to rank translations (LaBSE is: Feng et al., 2022), and it
shows most where verification is hard: an appended clause, a dropped one, a near-synonym of a UI
label move its cosine little. An adapter is one ``d x d`` matrix ``W``; the adapted embedding of a
text is ``normalise(e @ W)`` where ``e`` is the embedder's unit vector. :func:`fit_adapter` trains
``W``, starting at the identity, on good translation pairs with the loss LaBSE trains with: a
softmax over the cosines of a batch's pairs with an additive margin on the right pair, in both
directions (Yang et al., 2019, "Improving multilingual sentence embedding using bi-directional dual
encoder with additive margin softmax"), plus ``reg * ||W - I||^2`` to stay near the embedder's
space. NumPy only, with its gradients written out (checked against finite differences in the
tests): a few thousand pairs train in seconds on a CPU.

:class:`AdaptedEmbedder` wraps any :class:`~corpusalign.embed.base.Embedder`; the gates calibrated
through it hold only for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corpusalign.embed.base import Embedder, l2_normalise


@dataclass(frozen=True)
class Adapter:
    """``weight``: ``[dim, dim]`` float32; ``meta``: what it was trained on and how."""

    weight: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = np.asarray(self.weight)
        if w.ndim != 2 or w.shape[0] != w.shape[1] or not np.isfinite(w).all():
            raise ValueError(f"adapter weight must be a finite square matrix, got shape {w.shape}")

    @property
    def dim(self) -> int:
        return int(self.weight.shape[0])

    @property
    def digest(self) -> str:
        """Short SHA-256 of the weights (names the adapter in results)."""
        return hashlib.sha256(np.ascontiguousarray(self.weight, dtype=np.float32).tobytes()).hexdigest()[:16]

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Adapted unit vectors of ``vectors`` (``[n, dim]``)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[-1] != self.dim:
            raise ValueError(f"adapter is {self.dim}-dimensional, the embeddings {vectors.shape[-1]}-dimensional")
        return l2_normalise(vectors @ self.weight.astype(np.float32))


def ranking_loss(
    w: np.ndarray, src: np.ndarray, tgt: np.ndarray, *, margin: float, scale: float, reg: float
) -> tuple[float, np.ndarray]:
    """Bi-directional additive-margin softmax loss of one batch of aligned rows, and its gradient in ``w``."""
    eye = np.eye(len(src), dtype=w.dtype)
    u, v = src @ w, tgt @ w
    nu = np.linalg.norm(u, axis=1, keepdims=True).clip(min=1e-12)
    nv = np.linalg.norm(v, axis=1, keepdims=True).clip(min=1e-12)
    a, b = u / nu, v / nv
    logits = scale * (a @ b.T - margin * eye)
    rows = np.exp(logits - logits.max(1, keepdims=True))
    rows /= rows.sum(1, keepdims=True)  # softmax over targets: source i must pick target i
    cols = np.exp(logits - logits.max(0, keepdims=True))
    cols /= cols.sum(0, keepdims=True)  # softmax over sources: target j must pick source j
    n = len(src)
    loss = -(np.log(np.diag(rows).clip(min=1e-30)).mean() + np.log(np.diag(cols).clip(min=1e-30)).mean())
    d_sim = scale * ((rows - eye) + (cols - eye)) / n
    da, db = d_sim @ b, d_sim.T @ a
    du = (da - a * (da * a).sum(1, keepdims=True)) / nu
    dv = (db - b * (db * b).sum(1, keepdims=True)) / nv
    diff = w - np.eye(len(w), dtype=w.dtype)
    loss += reg * float((diff**2).sum())
    grad = src.T @ du + tgt.T @ dv + 2 * reg * diff
    return float(loss), grad


def fit_adapter(
    src: np.ndarray,
    tgt: np.ndarray,
    *,
    epochs: int = 3,
    batch_size: int = 256,
    lr: float = 1e-3,
    margin: float = 0.3,
    scale: float = 20.0,
    reg: float = 1e-2,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
) -> Adapter:
    """Train an :class:`Adapter` on aligned rows of ``src`` and ``tgt`` (unit embeddings of good
    translation pairs: row ``i`` of each is one pair) with Adam; the batch order is set by ``seed``."""
    src, tgt = np.asarray(src, dtype=np.float64), np.asarray(tgt, dtype=np.float64)
    if src.shape != tgt.shape or src.ndim != 2 or len(src) < 2:
        raise ValueError(f"need two aligned [n, dim] arrays with n >= 2, got {src.shape} and {tgt.shape}")
    rng = np.random.default_rng(seed)
    w = np.eye(src.shape[1])
    m, s = np.zeros_like(w), np.zeros_like(w)
    beta1, beta2, t = 0.9, 0.999, 0
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(src))
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            if len(idx) < 2:
                continue
            loss, grad = ranking_loss(w, src[idx], tgt[idx], margin=margin, scale=scale, reg=reg)
            losses.append(loss)
            t += 1
            m = beta1 * m + (1 - beta1) * grad
            s = beta2 * s + (1 - beta2) * grad**2
            w -= lr * (m / (1 - beta1**t)) / (np.sqrt(s / (1 - beta2**t)) + 1e-8)
    info = {
        "pairs": len(src),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "margin": margin,
        "scale": scale,
        "reg": reg,
        "seed": seed,
        "first_loss": round(losses[0], 4) if losses else None,
        "last_loss": round(float(np.mean(losses[-10:])), 4) if losses else None,
    }
    return Adapter(w.astype(np.float32), {**info, **(meta or {})})


class AdaptedEmbedder(Embedder):
    """``inner``'s vectors through ``adapter``: same texts, same batching, adapted unit vectors."""

    def __init__(self, inner: Embedder, adapter: Adapter) -> None:
        super().__init__(batch_size=inner.batch_size)
        self.inner, self.adapter = inner, adapter
        self.name, self.model = inner.name, inner.model
        self.dim = inner.dim or adapter.dim

    def setup(self) -> None:
        self.inner.setup()
        self.dim = self.inner.dim or self.adapter.dim

    def close(self) -> None:
        self.inner.close()

    def _encode_batch(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - encode is overridden
        return self.encode(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.adapter.apply(self.inner.encode(texts))

    def describe(self) -> str:
        return f"{self.inner.describe()} + adapter {self.adapter.digest}"
