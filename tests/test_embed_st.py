"""SentenceTransformerEmbedder with a tiny model built here: a random BERT and a WordPiece tokenizer
trained in-process, stacked as Transformer -> Pooling -> Normalize, saved, loaded through
``SentenceTransformer(path)`` (the real loading code; nothing is downloaded).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from corpusalign.embed import make_embedder  # noqa: E402
from corpusalign.embed.base import ModelNotAvailableError  # noqa: E402
from corpusalign.embed.sentence_transformers import SentenceTransformerEmbedder  # noqa: E402

CORPUS = [
    "The weather is lovely today.",
    "Das Wetter ist heute herrlich.",
    "I lost my keys at the station.",
    "Ich habe meine Schlüssel am Bahnhof verloren.",
    "the quick brown fox jumps over the lazy dog and runs far away into the dark forest",
    "ein kleiner Hund",
    "numbers one two three four five six seven",
    "ok",
    "query passage document sentence embedding model",
    "Watoto wanacheza mpira wa miguu.",
]


def build_tiny_st(folder: Path, prompts: dict[str, str] | None = None) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS * 3, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    backbone = folder / "backbone"
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    ).save_pretrained(backbone)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(backbone)
    transformer = Transformer(str(backbone), max_seq_length=64)
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()],
        device="cpu",
        prompts=prompts,
    )
    out = folder / "model"
    model.save(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_st(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="module")
def reference(tiny_st: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_st), device="cpu")


def test_shapes_norms_order(tiny_st: Path, reference: Any) -> None:
    emb = SentenceTransformerEmbedder(str(tiny_st), batch_size=3, device="cpu")
    vecs = emb.encode(CORPUS)
    assert emb.dim == 32 and vecs.shape == (len(CORPUS), 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    direct = reference.encode(CORPUS, normalize_embeddings=True)
    np.testing.assert_allclose(vecs, direct, atol=1e-5)  # same rows in the same order, no prompt
    assert emb.prompt == ""
    assert emb.encode([]).shape == (0, 32)
    assert "st (" in emb.describe() and str(tiny_st) in emb.describe()


def test_token_budget_batching(tiny_st: Path, reference: Any) -> None:
    emb = SentenceTransformerEmbedder(str(tiny_st), batch_size=16, device="cpu", max_tokens_per_batch=40)
    emb.setup()
    calls: list[list[str]] = []
    real = emb.st.encode

    def spy(texts: list[str], **kw: Any) -> Any:
        calls.append(list(texts))
        return real(texts, **kw)

    emb.st.encode = spy
    vecs = emb.encode(CORPUS)
    lengths = dict(zip(CORPUS, emb.token_lengths(CORPUS)))
    assert max(lengths.values()) > 10 and min(lengths.values()) <= 4
    assert len(calls) > 1 and sorted(t for c in calls for t in c) == sorted(CORPUS)
    assert any(len(c) > 1 for c in calls)
    for batch in calls:
        assert len(batch) == 1 or len(batch) * max(lengths[t] for t in batch) <= 40
    assert [lengths[c[0]] for c in calls] == sorted((lengths[c[0]] for c in calls), reverse=True)  # longest first
    np.testing.assert_allclose(vecs, reference.encode(CORPUS, normalize_embeddings=True), atol=1e-5)


def test_prompts(tmp_path: Path, tiny_st: Path, reference: Any) -> None:
    from sentence_transformers import SentenceTransformer

    configured = build_tiny_st(tmp_path / "p", prompts={"query": "query: ", "document": "passage: "})
    emb = SentenceTransformerEmbedder(str(configured), device="cpu")
    vecs = emb.encode(CORPUS[:4])
    assert emb.prompt == "query: "
    direct = SentenceTransformer(str(configured), device="cpu")
    np.testing.assert_allclose(vecs, direct.encode(CORPUS[:4], prompt="query: ", normalize_embeddings=True), atol=1e-5)
    assert not np.allclose(vecs, direct.encode(CORPUS[:4], normalize_embeddings=True), atol=1e-3)
    # an e5 model without configured prompts gets e5's "query: "; an explicit prompt wins
    e5_named = tmp_path / "tiny-multilingual-e5"
    shutil.copytree(tiny_st, e5_named)
    e5_emb = SentenceTransformerEmbedder(str(e5_named), device="cpu")
    np.testing.assert_allclose(
        e5_emb.encode(CORPUS[:2]), reference.encode(CORPUS[:2], prompt="query: ", normalize_embeddings=True), atol=1e-5
    )
    assert e5_emb.prompt == "query: "
    plain = SentenceTransformerEmbedder(str(e5_named), device="cpu", prompt="")
    np.testing.assert_allclose(plain.encode(CORPUS[:2]), reference.encode(CORPUS[:2], normalize_embeddings=True), atol=1e-5)


def test_missing_model_offline_names_the_ways_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = SentenceTransformerEmbedder("corpusalign-tests/no-such-model", device="cpu")
    with pytest.raises(ModelNotAvailableError) as err:
        emb.encode(["hello"])
    msg = str(err.value)
    assert "'corpusalign-tests/no-such-model'" in msg and "HF_HUB_OFFLINE" in msg
    assert "Hugging Face cache" in msg and "st:/path/to/folder" in msg and "'e5'" in msg
    assert isinstance(err.value, OSError)


def test_missing_local_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="no-such-folder"):
        SentenceTransformerEmbedder(str(tmp_path / "a" / "no-such-folder"), device="cpu").setup()


def test_make_embedder_st(tiny_st: Path) -> None:
    emb = make_embedder(f"st:{tiny_st}", batch_size=5, device="cpu")
    assert isinstance(emb, SentenceTransformerEmbedder) and emb.model == str(tiny_st) and emb.batch_size == 5
    assert emb.encode(["hello"]).shape == (1, 32)


@pytest.mark.slow
def test_multi_process_pool(tiny_st: Path, reference: Any) -> None:
    emb = SentenceTransformerEmbedder(str(tiny_st), batch_size=4, devices=["cpu", "cpu"])
    try:
        vecs = emb.encode(CORPUS)
        assert emb._pool is not None and len(emb._pool["processes"]) == 2
    finally:
        emb.close()
    assert emb._pool is None
    np.testing.assert_allclose(vecs, reference.encode(CORPUS, normalize_embeddings=True), atol=1e-5)


@pytest.mark.gpu
def test_gpu_half_precision(tiny_st: Path, reference: Any) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    emb = SentenceTransformerEmbedder(str(tiny_st), device="cuda")
    vecs = emb.encode(CORPUS)
    assert next(emb.st.parameters()).dtype == torch.float16
    assert vecs.dtype == np.float32
    cos = np.sum(vecs * reference.encode(CORPUS, normalize_embeddings=True), axis=1)
    assert cos.min() > 0.99, cos
