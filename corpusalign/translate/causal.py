"""Machine translation with an instruct LLM through transformers (the ``causal`` translator).

Each text becomes one user message, ``translate.prompt`` filled with the English language names and
the text, rendered with the model's chat template (``add_generation_prompt=True``). Prompts are
sorted by length, cut into batches of at most ``translate.batch_size`` prompts and
``translate.max_tokens_per_batch`` padded prompt tokens, LEFT-padded (a decoder-only model continues
from the last position, so padding must come first) and run through ``generate``: greedy when
``translate.generation.temperature`` is 0, sampled otherwise. Only the new tokens are decoded, and
the boilerplate chat models wrap answers in is stripped by
:func:`corpusalign.translate.answers.clean_answer`.

``translate.generation.num_beams`` is for seq2seq models and not used here. ``params`` adds the
prompt, the temperature and a hash of the chat template to ``max_new_tokens`` and ``protect``, so
a changed prompt or template never reuses a cached translation.

Example::

    cfg = load_config(src="en", tgt=["de"], translate__translator="causal")
    mt = CausalTranslator(cfg)          # HuggingFaceTB/SmolLM2-135M-Instruct
    mt.translate(["Good morning."], "en", "de")
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpusalign.config import BuildConfig
from corpusalign.extras import require
from corpusalign.translate._hf import local_model_dir, read_json, require_extra, resolve_device, resolve_dtype, run_batches
from corpusalign.translate.answers import clean_answer
from corpusalign.translate.base import Failed, MachineTranslator, TranslatorUnavailable, language_name

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ translator


class CausalTranslator(MachineTranslator):
    """An instruct LLM (``AutoModelForCausalLM``) prompted with the model's chat template."""

    name = "causal"

    def __init__(self, cfg: BuildConfig) -> None:
        super().__init__(cfg)
        self.model_dir: Path | None = None
        self.device: torch.device | None = None
        self._model: PreTrainedModel | None = None
        self._tokenizer: Any = None
        self._template_hash: str | None = None
        self.calls = 0  # model.generate calls
        self.generated_tokens = 0  # new tokens generated (padding excluded)

    def check(self) -> None:
        """The model is on this machine and has a chat template (reads JSON files only)."""
        if self.model_dir is not None:
            return
        if not self.model:
            raise TranslatorUnavailable("causal translator: no model set (translate.model / --model)")
        require_extra("causal")
        model_dir = local_model_dir(self.model, "causal")
        self._template_hash = _template_hash(model_dir)
        if self._template_hash is None:
            raise TranslatorUnavailable(
                f"causal translator: the model {self.model!r} has no chat template (tokenizer_config.json or "
                "chat_template.jinja); use an instruct/chat model, e.g. HuggingFaceTB/SmolLM2-135M-Instruct"
            )
        self.model_dir = model_dir

    @property
    def params(self) -> dict[str, Any]:
        """Decoding settings, the prompt and the chat template's hash: all change the answers."""
        if self._template_hash is None and self.model_dir is None:
            try:
                self.check()
            except TranslatorUnavailable:
                pass
        params = {k: v for k, v in super().params.items() if k != "num_beams"}  # always greedy or sampled
        return {
            **params,
            "temperature": self.tcfg.generation.temperature,
            "prompt": self.tcfg.prompt,
            "chat_template": self._template_hash,
        }

    def setup(self) -> None:
        """Load the tokenizer (left padding, eos as pad token when it has none) and the model once."""
        if self._model is not None:
            return
        self.check()
        assert self.model_dir is not None
        require("torch", extra="translate", purpose="the causal translator")
        transformers = require("transformers", extra="translate", purpose="the causal translator")
        self.device = resolve_device(self.tcfg.device)
        dtype = resolve_dtype(self.tcfg.dtype, self.device)
        tok = transformers.AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self._tokenizer = tok
        model = transformers.AutoModelForCausalLM.from_pretrained(self.model_dir, local_files_only=True, dtype=dtype)
        self._model = model.to(self.device).eval()
        log.info("causal: %s on %s, %s", self.model, self.device, dtype)

    def prompt(self, text: str, src: str, tgt: str) -> str:
        """The chat-formatted prompt of one text, ready to be continued by the model."""
        content = self.tcfg.prompt.format_map({"src_name": language_name(src), "tgt_name": language_name(tgt), "text": text})
        messages = [{"role": "user", "content": content}]
        return str(self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    def translate_batch(self, texts: Sequence[str], src: str, tgt: str) -> list[str | Failed]:
        """Length-sorted, left-padded batches through ``generate``; answers cleaned by :func:`clean_answer`."""
        import torch

        self.setup()
        assert self._model is not None and self.device is not None
        tok = self._tokenizer
        prompts = [self.prompt(t, src, tgt) for t in texts]
        encoded: list[list[int]] = tok(prompts, add_special_tokens=False)["input_ids"]
        g = self.tcfg.generation
        kwargs: dict[str, Any] = {
            "max_new_tokens": g.max_new_tokens,
            "num_beams": 1,
            "pad_token_id": tok.pad_token_id,
        }
        if g.temperature > 0:
            kwargs.update(do_sample=True, temperature=g.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)

        def run(idx: list[int]) -> list[str | Failed]:
            batch = tok.pad({"input_ids": [encoded[i] for i in idx]}, padding=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out = self._model.generate(**batch, **kwargs)  # type: ignore[union-attr]
            self.calls += 1
            new = out[:, batch["input_ids"].shape[1] :]
            self.generated_tokens += int((new != tok.pad_token_id).sum())
            answers = tok.batch_decode(new, skip_special_tokens=True)
            return [clean_answer(a, texts[i]) or Failed("empty output") for a, i in zip(answers, idx, strict=True)]

        return run_batches([len(e) for e in encoded], self.tcfg.batch_size, self.tcfg.max_tokens_per_batch, run)

    def describe(self) -> str:
        return f"{super().describe()}, device={self.device}"

    def close(self) -> None:
        self._model = None
        self._tokenizer = None


def _template_hash(model_dir: Path) -> str | None:
    """A short sha256 of the model's chat template(s), or None when it has none."""
    parts: list[str] = []
    template = read_json(model_dir / "tokenizer_config.json").get("chat_template")
    if isinstance(template, str):
        parts.append(template)
    elif isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        parts += [str(t.get("template", "")) for t in template if isinstance(t, dict)]
    for f in sorted(model_dir.glob("chat_template*.jinja")) + sorted((model_dir / "additional_chat_templates").glob("*.jinja")):
        parts.append(f.read_text(encoding="utf-8"))
    jinja_json = read_json(model_dir / "chat_template.json").get("chat_template")
    if isinstance(jinja_json, str):
        parts.append(jinja_json)
    if not parts:
        return None
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


__all__ = ["CausalTranslator", "clean_answer"]
