"""Helpers shared by the transformers translators: finding a model offline, device and dtype, batching.

Device and dtype follow the ``translate`` rule of :mod:`corpusalign.device`.

Nothing here downloads: a model is either a local directory or already in the Hugging Face cache
(``HF_HOME`` / ``HF_HUB_CACHE``); otherwise :func:`local_model_dir` raises
:class:`~corpusalign.translate.base.TranslatorUnavailable` with the ways out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from corpusalign.batching import length_batches
from corpusalign.device import DeviceUnavailable, torch_dtype
from corpusalign.device import resolve_device as policy_device
from corpusalign.device import resolve_dtype as policy_dtype
from corpusalign.translate.base import TranslatorUnavailable

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


def unavailable_message(kind: str, model: str, why: str) -> str:
    """The message of a model that cannot be loaded here, with every way out."""
    return (
        f"{kind} translator: model {model!r} is not available on this machine ({why}). Ways out: "
        f"pre-download it into the Hugging Face cache on a machine with network (`huggingface-cli download {model}`) "
        "and copy the cache here or set HF_HOME to it; point translate.model / --model at a local directory that "
        "holds the model; or use --translator openai (a served model) or --translator tm (existing translations)."
    )


def local_model_dir(model: str, kind: str) -> Path:
    """The local directory of ``model`` (a path, or a hub id already in the Hugging Face cache).

    Cheap: looks at the file system only. Raises :class:`TranslatorUnavailable` when the model is
    not on this machine.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TranslatorUnavailable(unavailable_message(kind, model, f"the directory {path} has no config.json"))
        return path
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        raise TranslatorUnavailable(unavailable_message(kind, model, "no such directory"))
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - transformers depends on huggingface_hub
        raise TranslatorUnavailable(unavailable_message(kind, model, "huggingface_hub is not installed")) from exc
    try:
        snapshot = Path(snapshot_download(model, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        where = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
        raise TranslatorUnavailable(unavailable_message(kind, model, f"not in the Hugging Face cache {where}")) from exc
    if not (snapshot / "config.json").is_file():
        raise TranslatorUnavailable(unavailable_message(kind, model, f"the cached snapshot {snapshot} has no config.json"))
    return snapshot


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; empty when the file is missing."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}


def resolve_device(name: str) -> torch.device:
    """``auto`` (cuda when present, else mps, else cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
    (:func:`corpusalign.device.resolve_device` with MPS allowed); a CUDA name without CUDA raises
    :class:`TranslatorUnavailable`."""
    import torch

    try:
        return torch.device(policy_device(name, mps=True))
    except DeviceUnavailable as exc:
        raise TranslatorUnavailable(f"translate.device is {name!r} but torch sees no CUDA device") from exc


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that supports it, else float16 on a GPU, float32 on CPU (the
    ``translate`` rule of :func:`corpusalign.device.resolve_dtype`)."""
    chosen = policy_dtype(name, str(device), "translate")
    assert chosen is not None  # the translate rule always names a dtype
    return torch_dtype(chosen)


def run_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_tokens: int,
    run: Callable[[list[int]], list[T]],
) -> list[T]:
    """``run`` over length-sorted batches of indices (longest first); results back in input order.

    A batch holds at most ``batch_size`` items and ``len(batch) * longest <= max_tokens`` padded
    tokens (an item longer than the budget runs alone). When a batch runs out of GPU memory it is
    split in two and retried.
    """
    import torch

    out: list[Any] = [None] * len(lengths)
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch < 2.5: only the CUDA one

    def go(idx: list[int]) -> None:
        try:
            results = run(idx)
        except oom:
            if len(idx) == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = len(idx) // 2
            go(idx[:half])
            go(idx[half:])
            return
        for i, r in zip(idx, results, strict=True):
            out[i] = r

    for batch in length_batches(lengths, batch_size, max_tokens):
        go(batch)
    return out


__all__ = ["local_model_dir", "read_json", "resolve_device", "resolve_dtype", "run_batches", "unavailable_message"]


def require_extra(kind: str) -> None:
    """Raise :class:`TranslatorUnavailable` naming the extra to install when torch or transformers
    is missing (checked without importing them)."""
    import importlib.util

    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise TranslatorUnavailable(
            f"the {kind} translator needs {' and '.join(missing)}: pip install 'corpusalign[translate]' "
            "(install the torch build for your hardware first)"
        )
