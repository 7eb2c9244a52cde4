"""Frozen, validated training configuration (``corpusalign train`` / ``corpusalign eval``).

A training parameter file (``pipelines/train-*.yaml``) fills :class:`TrainConfig` exactly like a
pipeline file fills the build config: every key must be a field, a misspelt key is an error, CLI
options override file values, and a config that exists is valid.

Example::

    cfg = load_train_config("pipelines/train-sft.yaml", model="smollm2", steps=50)
    cfg.objective  # "sft"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from corpusalign.config import ConfigError, _build, _check_lang, _to_plain, read_parameter_file

Objective = Literal["sft", "dpo", "orpo", "dco"]
SamplerKind = Literal["aligned", "random", "homogeneous"]
TaskKind = Literal["auto", "fields", "to_anchor"]
Consistency = Literal["none", "kl", "contrastive"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Reference = Literal["model", "precompute"]

OBJECTIVES = ("sft", "dpo", "orpo", "dco")
SAMPLERS = ("aligned", "no-anchor", "random", "homogeneous")
TASKS = ("auto", "fields", "to_anchor")
CONSISTENCY = ("none", "kl", "contrastive")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
REFERENCES = ("model", "precompute")

#: The question of the ``to_anchor`` task; ``{text}`` is the row's text in any language. One wording
#: for every language, so the prompts of a concept differ only in the text itself.
DEFAULT_TO_ANCHOR_PROMPT = "What does this text say in English? Answer with the English text only.\n\n{text}"


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{what}: {value!r} is not one of {list(allowed)}")


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapters through ``peft`` (extra ``lora``): only the adapters train, the base stays frozen."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise ConfigError("lora.r and lora.alpha must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("lora.dropout must be in [0, 1)")
        if not self.target_modules:
            raise ConfigError("lora.target_modules: name at least one module")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (besides the corpus and the model weights)."""

    model: str = "smollm2"  # hub id, local directory, a .gguf file, or "smollm2" (bundled, offline)
    objective: str = "sft"  # sft | dpo | orpo | dco
    langs: tuple[str, ...] = ()  # default: every language of the corpus
    sampler: str = "aligned"  # aligned | no-anchor | random | homogeneous (the last three are ablations)
    concepts_per_batch: int = 4  # K; random/homogeneous batches get the same number of rows
    missing: str = "skip_concept"  # skip_concept | partial (concepts lacking a language)
    task: str = "auto"  # auto | fields (prompt/response, prompt/chosen/rejected) | to_anchor (text)
    to_anchor_prompt: str = DEFAULT_TO_ANCHOR_PROMPT
    chat_template: bool = True  # wrap prompts in the tokenizer's chat template when it has one
    max_length: int = 256  # tokens per sequence (prompt cut first, from the left)
    steps: int = 100  # optimizer steps
    grad_accum: int = 1
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    precision: str = "auto"  # auto = bf16 on a GPU that has it, fp32 on CPU
    weights: str = "fp32"  # fp32 master weights (autocast per precision) | bf16 weights (no autocast, half the memory)
    compile: bool = False  # torch.compile the model (first steps slower while it compiles)
    pack: bool = False  # lay a batch's rows end to end in rows of max_length tokens (block-diagonal attention)
    prefetch: int = 2  # batches prepared ahead in a background thread (pinned on CUDA); 0 = in series with the step
    seed: int = 0
    beta: float = 0.1  # DPO temperature; DCO's KL coefficient (gamma = beta between two non-anchor languages)
    dco_anchor_ratio: float = 1.0  # DCO direction: others learn from the anchor with gamma = beta * r, it from them with beta / r
    label_smoothing: float = 0.0  # DPO (conservative DPO); 0 = the original loss
    reference: str = "precompute"  # DPO/DCO reference log-probs: precompute once, or a frozen model copy
    orpo_lambda: float = 0.1
    consistency: str = "none"  # none | kl | contrastive (cross-lingual consistency term, off by default)
    consistency_weight: float = 0.1
    eval_fraction: float = 0.1  # held-out concepts (by stable hash of concept_id), never trained on
    save_every: int = 0  # steps between checkpoints; 0 = only at the end
    log_every: int = 10
    gradient_checkpointing: bool = False
    device: str = "auto"  # auto | cpu | cuda (accelerate launch decides under torchrun)
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self) -> None:
        _one_of(self.objective, OBJECTIVES, "objective")
        _one_of(self.sampler, SAMPLERS, "sampler")
        _one_of(self.missing, ("skip_concept", "partial"), "missing")
        _one_of(self.task, TASKS, "task")
        _one_of(self.consistency, CONSISTENCY, "consistency")
        _one_of(self.precision, PRECISIONS, "precision")
        _one_of(self.reference, REFERENCES, "reference")
        _one_of(self.weights, ("fp32", "bf16"), "weights")
        if self.prefetch < 0:
            raise ConfigError("prefetch must be >= 0")
        if self.weights == "bf16" and self.lora.enabled:
            raise ConfigError("weights: bf16 trains every weight in bf16; with LoRA keep weights: fp32 (the base is frozen)")
        object.__setattr__(self, "langs", tuple(_check_lang(code, "langs") for code in self.langs))  # pt-br -> pt-BR
        if len(set(self.langs)) != len(self.langs):
            raise ConfigError(f"langs: repeated language in {list(self.langs)}")
        if "{text}" not in self.to_anchor_prompt:
            raise ConfigError("to_anchor_prompt must contain {text}")
        for name in ("concepts_per_batch", "max_length", "steps", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.max_length < 8:
            raise ConfigError("max_length must be >= 8 tokens")
        for name in ("warmup_steps", "save_every", "weight_decay", "max_grad_norm", "consistency_weight", "orpo_lambda"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if self.lr <= 0 or self.beta <= 0:
            raise ConfigError("lr and beta must be > 0")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError("label_smoothing must be in [0, 0.5)")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ConfigError("eval_fraction must be in [0, 1)")
        if self.dco_anchor_ratio <= 0:
            raise ConfigError("dco_anchor_ratio must be > 0")
        if self.objective == "dco" and self.sampler not in ("aligned", "no-anchor"):
            raise ConfigError(
                f"objective dco compares the language versions of a concept inside one batch: it needs sampler aligned or "
                f"no-anchor, not {self.sampler!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    return _build(TrainConfig, data, "")


def load_train_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Load a training parameter file, then apply ``overrides`` whose value is not None (``lora__r=8``)."""
    return train_config_from_dict(read_parameter_file(path, overrides))
