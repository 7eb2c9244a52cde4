"""The quality benchmark's translation-ranking adapter (bench/adapter.py): its gradient and its training."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_bench_script


@pytest.fixture(scope="module")
def adapter_mod():
    return load_bench_script("adapter.py")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ranking_loss_gradient_matches_finite_differences(adapter_mod) -> None:
    rng = np.random.default_rng(0)
    src = _unit(rng.normal(size=(6, 5)))
    tgt = _unit(src + 0.3 * rng.normal(size=(6, 5)))
    w = np.eye(5) + 0.1 * rng.normal(size=(5, 5))
    opts = dict(margin=0.3, scale=20.0, reg=0.01)
    _, grad = adapter_mod.ranking_loss(w, src, tgt, **opts)
    numeric = np.zeros_like(w)
    eps = 1e-6
    for i in range(5):
        for j in range(5):
            up, down = w.copy(), w.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (
                adapter_mod.ranking_loss(up, src, tgt, **opts)[0] - adapter_mod.ranking_loss(down, src, tgt, **opts)[0]
            ) / (2 * eps)
    assert np.abs(numeric - grad).max() < 1e-6 * max(1.0, np.abs(grad).max())


def test_fitted_adapter_ranks_translations_a_plain_cosine_confuses(adapter_mod) -> None:
    """Pairs share a meaning direction; a nuisance direction (say, the language) is large and random.
    The adapter learns to look past it: each source's own target moves to the top of its row."""
    rng = np.random.default_rng(1)
    n, dim = 400, 16
    meaning = rng.normal(size=(n, 8))
    src = _unit(np.hstack([meaning, 3 * rng.normal(size=(n, 8))]))
    tgt = _unit(np.hstack([meaning + 0.3 * rng.normal(size=(n, 8)), 3 * rng.normal(size=(n, 8))]))
    train, test = slice(0, 300), slice(300, n)

    def top1(a: np.ndarray, b: np.ndarray) -> float:
        return float(((a @ b.T).argmax(1) == np.arange(len(a))).mean())

    adapter = adapter_mod.fit_adapter(src[train], tgt[train], epochs=30, batch_size=64, lr=1e-2, reg=1e-4, seed=0)
    before = top1(src[test], tgt[test])
    after = top1(adapter.apply(src[test]), adapter.apply(tgt[test]))
    assert after > before + 0.2, (before, after)
    assert adapter.meta["last_loss"] < adapter.meta["first_loss"]
    assert adapter.weight.shape == (dim, dim) and np.allclose(np.linalg.norm(adapter.apply(src[:3]), axis=1), 1.0)
