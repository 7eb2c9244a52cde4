"""The training loop: corpusalign shards -> aligned batches -> SFT / DPO / ORPO / DCO updates of a causal LM.

One process or many: the loop runs under ``accelerate launch`` or ``torchrun`` unchanged (DDP, or
FSDP/DeepSpeed as configured with ``accelerate config``). The batch sampler is rank-aware itself
(every rank gets whole concepts and the same number of batches), so the data loader is *not* handed
to accelerate for re-sharding. Mixed precision: ``precision=auto`` is bf16 on a GPU that supports it
and fp32 elsewhere (the ``train`` rule of :mod:`corpusalign.device`).

Per optimizer step: ``grad_accum`` batches, each one forward pass (preference objectives put the
chosen and the rejected sequences of a batch into one pass), the objective, the optional
cross-lingual consistency term, backward (gradient sync only on the last micro-batch), clipping,
AdamW, and a linear warmup/decay schedule.

DPO and DCO need the reference policy's log-probabilities: ``reference=precompute`` (default) computes them
once for every training row with the starting model before the first step and keeps two floats per
row (saved in the output directory, so a resumed run uses the same ones); ``reference=model`` keeps a
frozen copy of the starting model (with LoRA: the base model with the adapter switched off, no copy).

Output directory::

    OUT/checkpoint-000050/   Hugging Face model (or LoRA adapter) + tokenizer, and to resume:
                             optimizer.pt, scheduler.pt, rng.pt, trainer_state.json
    OUT/train_log.jsonl      one line per logged step: loss, loss per language, tokens/s, lr, memory
    OUT/train_summary.json   the run's summary (also printed)
    OUT/reference_logps.pt   DPO or DCO with reference=precompute

Resuming (``resume=True``: the newest checkpoint in OUT) restores weights, optimizer, schedule, RNG
states and the position in the sampler's epoch, so an interrupted run continues exactly as the
uninterrupted one would (tested on one process and on two). A checkpoint resumes only on the
number of processes that wrote it (the sampler position and RNG states are per process).

Under several processes the logged losses are rank 0's batches; tokens and rows count all ranks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import random
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corpusalign.device import ACCELERATE_PRECISION, cuda_available, resolve_dtype
from corpusalign.progress import Progress
from corpusalign.training.config import TrainConfig
from corpusalign.training.data import ShardDataset
from corpusalign.training.models import load_causal_lm, load_tokenizer, require_train_extra, resolve_model
from corpusalign.training.packing import check_packing, forward_packed, pack
from corpusalign.training.task import Collator, Examples

log = logging.getLogger(__name__)

STATE = "trainer_state.json"
LOG = "train_log.jsonl"
SUMMARY = "train_summary.json"
#: How far packed and padded log-probabilities may differ on the first batch (``pack: true``): float
#: rounding, not a leak across rows (which moves them by whole nats). ``no``: fp32 weights, compared
#: without autocast; ``bf16``: bf16 weights.
PACK_TOLERANCE = {"no": 1e-3, "bf16": 0.25}
REFERENCE = "reference_logps.pt"


@dataclass
class TrainResult:
    """What a run did; ``checkpoint`` is the directory of the final model."""

    output: Path
    checkpoint: Path
    steps: int
    resumed_from: int
    rows: int
    tokens: int
    seconds: float
    first_loss: float | None
    last_loss: float | None
    loss_by_lang: dict[str, float] = field(default_factory=dict)
    tokens_per_s: float = 0.0
    peak_memory_gb: float | None = None
    skipped_empty_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["output"], d["checkpoint"] = str(self.output), str(self.checkpoint)
        return d


# --------------------------------------------------------------------------------------- helpers
def make_sampler(cfg: TrainConfig, ds: ShardDataset, *, num_replicas: int = 1, rank: int = 0) -> Any:
    """The configured batch sampler: aligned, aligned without the anchor language (``no-anchor``), or an
    ablation baseline with the same rows per batch."""
    from corpusalign.training.sampler import AlignedBatchSampler, LanguageHomogeneousBatchSampler, RandomRowBatchSampler

    common = dict(
        langs=list(cfg.langs) or None, missing=cfg.missing, seed=cfg.seed, num_replicas=num_replicas, rank=rank, drop_last=True
    )
    aligned = AlignedBatchSampler(ds, cfg.concepts_per_batch, with_anchor=cfg.sampler != "no-anchor", **common)
    if len(aligned) == 0:
        raise ValueError(
            f"no full batch: {len(aligned.concepts)} eligible training concepts for {cfg.concepts_per_batch} concepts per batch "
            f"on {num_replicas} process(es); lower --concepts-per-batch or use a larger corpus"
        )
    if cfg.sampler in ("aligned", "no-anchor"):
        return aligned
    rows = cfg.concepts_per_batch * len(aligned.langs)
    cls = RandomRowBatchSampler if cfg.sampler == "random" else LanguageHomogeneousBatchSampler
    return cls(ds, rows, **common)


class Feed:
    """Endless batches from a sampler, epoch after epoch; ``consumed`` batches so far (for resuming)."""

    def __init__(self, sampler: Any, consumed: int = 0) -> None:
        self.sampler = sampler
        self.per_epoch = len(sampler)
        self.consumed = consumed

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            epoch, skip = divmod(self.consumed, self.per_epoch)
            self.sampler.set_epoch(epoch)
            for i, batch in enumerate(self.sampler):
                if i < skip:
                    continue
                self.consumed += 1
                yield batch


def latest_checkpoint(output: Path) -> Path | None:
    """The newest complete checkpoint (one with a trainer state) in a training output directory."""
    found = sorted(p for p in Path(output).glob("checkpoint-*") if (p / STATE).is_file())
    return found[-1] if found else None


def _check_packing(cfg: TrainConfig, acc: Any, model: Any, batch: dict[str, Any]) -> None:
    """Compare packed and padded log-probabilities once (:func:`check_packing`). With fp32 master weights
    the comparison runs in fp32, past accelerate's autocast wrapper (it keeps the plain forward as
    ``_original_forward``), where rounding is far below a leak: under bf16 autocast two layouts of the
    same rows already differ by up to 0.6 nats on CPU. bf16 weights are compared in bf16."""
    plain = getattr(model, "_original_forward", None) if _precision(cfg) != "no" else model
    if cfg.weights == "fp32" and plain is not None:
        check_packing(plain, batch, tolerance=PACK_TOLERANCE["no"])
    else:
        with acc.autocast():
            check_packing(model, batch, tolerance=PACK_TOLERANCE["bf16"])


def _precision(cfg: TrainConfig) -> str:
    """accelerate's ``mixed_precision`` for ``cfg.precision``: the ``train`` rule of :mod:`corpusalign.device`
    (``auto``: bf16 autocast on a CUDA GPU that supports it, unless ``device`` is ``cpu``; else none)."""
    device = "cuda" if cfg.device != "cpu" and cuda_available() else "cpu"
    dtype = resolve_dtype(cfg.precision, device, "train")
    assert dtype is not None  # the train rule always names a dtype
    return ACCELERATE_PRECISION[dtype]


def _rng_state(torch: Any) -> dict[str, Any]:
    """This process's RNG states as tensors and plain values (loadable with ``weights_only=True``)."""
    version, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [version, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(torch: Any, state: dict[str, Any]) -> None:
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    version, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((version, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------- losses
class Prefetch:
    """Ready batches from a :class:`Feed`: sampled, fetched, collated and moved to ``device``, ``depth``
    batches ahead in a background thread (pinned and copied without blocking on CUDA), so the host
    work of the next batch overlaps the current step. ``depth=0`` does it in series, in the caller.

    ``consumed`` counts the batches handed out (not those prepared ahead): what a checkpoint records,
    so a resumed run continues after the last batch that was trained on. The order of batches is the
    feed's, whatever ``depth``.
    """

    def __init__(self, feed: Feed, make: Any, device: Any, depth: int = 2, pin: bool = False) -> None:
        self.feed, self.make, self.device, self.depth, self.pin = feed, make, device, depth, pin
        self.consumed = feed.consumed
        self._it = iter(feed)
        self._queue: queue.Queue[Any] | None = None
        self._stop = threading.Event()
        if depth > 0:
            self._queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._fill, name="corpusalign-prefetch", daemon=True)
            self._thread.start()

    def _ready(self) -> dict[str, Any]:
        batch = self.make(next(self._it))
        if self.pin:
            batch = {k: v.pin_memory() for k, v in batch.items()}
        return {k: v.to(self.device, non_blocking=self.pin) for k, v in batch.items()}

    def _fill(self) -> None:
        assert self._queue is not None
        while not self._stop.is_set():
            try:
                item: Any = self._ready()
            except BaseException as exc:  # handed to the training thread, raised there
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def __next__(self) -> dict[str, Any]:
        item = self._ready() if self._queue is None else self._queue.get()
        if isinstance(item, BaseException):
            raise item
        self.consumed += 1
        return item

    def close(self) -> None:
        self._stop.set()
        if self._queue is not None:
            self._thread.join(timeout=10)


def batch_loss(model: Any, batch: dict[str, Any], cfg: TrainConfig, ref: Any = None) -> tuple[Any, Any, dict[str, float]]:
    """One forward pass: (scalar loss, per-row loss [B] detached, extra statistics).

    ``ref(batch) -> (ref_chosen_logps, ref_rejected_logps)`` for DPO and DCO.
    """
    import torch

    from corpusalign.training import objectives as obj

    want_hidden = cfg.consistency == "contrastive"
    if "packed_input_ids" in batch:
        logits, hidden = forward_packed(model, batch, hidden=want_hidden)
    else:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=want_hidden)
        logits, hidden = out.logits, out.hidden_states[-1] if want_hidden else None
    labels = batch["labels"]
    b = batch["group"].shape[0]
    stats: dict[str, float] = {}
    if cfg.objective == "sft":
        loss, per_row = obj.sft_loss(logits, labels)
    else:
        logps, counts = obj.token_logps(logits, labels)
        counted = (counts[:b] > 0) & (counts[b:] > 0)
        if cfg.objective == "dco":
            ref_c, ref_r = ref(batch)
            loss, per_row, pairs = obj.dco_loss(
                logps[:b],
                logps[b:],
                ref_c,
                ref_r,
                batch["group"],
                beta=cfg.beta,
                is_anchor=batch["is_anchor"],
                anchor_ratio=cfg.dco_anchor_ratio,
                valid=counted,
            )
            stats["dco_pairs"] = float(pairs)
        elif cfg.objective == "dpo":
            ref_c, ref_r = ref(batch)
            rows, chosen_r, rejected_r = obj.dpo_loss(
                logps[:b], logps[b:], ref_c, ref_r, beta=cfg.beta, label_smoothing=cfg.label_smoothing
            )
            if counted.any():
                stats["reward_margin"] = float((chosen_r - rejected_r)[counted].mean())
                stats["reward_accuracy"] = float((chosen_r > rejected_r)[counted].float().mean())
        else:
            mean = logps / counts.clamp(min=1)
            rows, log_odds = obj.orpo_loss(mean[:b], mean[b:], -mean[:b], lam=cfg.orpo_lambda)
            if counted.any():
                stats["log_odds_ratio"] = float(log_odds[counted].mean())
        if cfg.objective != "dco":
            loss = rows[counted].mean() if counted.any() else rows.sum() * 0.0
            per_row = torch.where(counted, rows, torch.nan)
    if cfg.consistency != "none" and cfg.consistency_weight > 0:
        if cfg.consistency == "kl":
            term = obj.consistency_kl(logits[:b], labels[:b], batch["group"])
        else:
            pooled = obj.mean_pool(hidden[:b], batch["prompt_mask"][:b] & batch["attention_mask"][:b].bool())
            term = obj.consistency_contrastive(pooled, batch["group"])
        stats["consistency"] = float(term.detach())
        loss = loss + cfg.consistency_weight * term
    return loss, per_row.detach().float(), stats


class PrecomputedReference:
    """DPO reference log-probs of every training row, computed once with the starting model."""

    def __init__(self, chosen: Any, rejected: Any) -> None:
        self.chosen, self.rejected = chosen, rejected

    def __call__(self, batch: dict[str, Any]) -> tuple[Any, Any]:
        rows = batch["row"].cpu()
        dev = batch["input_ids"].device
        return self.chosen[rows].to(dev), self.rejected[rows].to(dev)

    @classmethod
    def compute(
        cls, model: Any, examples: Examples, collate: Collator, rows: np.ndarray, device: Any, batch_rows: int
    ) -> PrecomputedReference:
        import torch

        from corpusalign.training.objectives import token_logps

        chosen = torch.zeros(len(examples), dtype=torch.float32)
        rejected = torch.zeros(len(examples), dtype=torch.float32)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for lo in range(0, len(rows), batch_rows):
                part = rows[lo : lo + batch_rows]
                batch = collate(examples.__getitems__(part.tolist()))
                out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
                logps, _ = token_logps(out.logits, batch["labels"].to(device))
                n = len(part)
                chosen[part] = logps[:n].float().cpu()
                rejected[part] = logps[n:].float().cpu()
        model.train(was_training)
        return cls(chosen, rejected)


class ModelReference:
    """DPO reference log-probs from a frozen model (or the LoRA base with the adapter disabled)."""

    def __init__(self, model: Any, *, adapter_off: bool = False) -> None:
        self.model, self.adapter_off = model, adapter_off

    def __call__(self, batch: dict[str, Any]) -> tuple[Any, Any]:
        import torch

        from corpusalign.training.objectives import token_logps

        ctx = self.model.disable_adapter() if self.adapter_off else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            logps, _ = token_logps(out.logits, batch["labels"])
        b = batch["group"].shape[0]
        return logps[:b].detach(), logps[b:].detach()


# ------------------------------------------------------------------------------------------ train
def train(
    cfg: TrainConfig,
    shards: str | Path,
    output: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on the training split of the corpus at ``shards``; see the module docstring.

    ``stop_after`` ends the run (with a checkpoint) after that many optimizer steps of this process's
    run, as an interruption would; resuming then continues to ``cfg.steps``.
    """
    require_train_extra()
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    output = Path(output)
    # Launched as several processes (torchrun, accelerate launch) on a machine without CUDA, accelerate
    # sets up CPU data parallelism only with cpu=True; otherwise every process trains alone as rank 0 of 1.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = cfg.device == "cpu" or (cfg.device == "auto" and world > 1 and not torch.cuda.is_available())
    # accelerate keeps one mixed-precision setting per process and refuses another: forget the last run's
    # (not the process group) so that one process can train runs of different precisions in turn
    AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(mixed_precision="no" if cfg.weights == "bf16" else _precision(cfg), cpu=cpu)
    if acc.num_processes != world and "WORLD_SIZE" in os.environ:
        raise ValueError(f"launched as {world} processes but accelerate runs {acc.num_processes}: check --device")
    main = acc.is_main_process

    start, state = _checkpoint_to_resume(cfg, output, resume, acc.num_processes)

    # ---- data: split, examples, sampler, collator
    _seed_everything(cfg.seed, torch)
    ds = ShardDataset(shards, langs=list(cfg.langs) or None, split="train", eval_fraction=cfg.eval_fraction)
    examples = Examples(ds, objective=cfg.objective, task=cfg.task, prompt_template=cfg.to_anchor_prompt, seed=cfg.seed)
    sampler = make_sampler(cfg, ds, num_replicas=acc.num_processes, rank=acc.process_index)

    base_dir = resolve_model(cfg.model)
    tokenizer = load_tokenizer(start or base_dir)
    collate = Collator(
        tokenizer,
        langs=sampler.langs,
        max_length=cfg.max_length,
        preference=cfg.objective != "sft",
        chat_template=cfg.chat_template,
        anchor=ds.anchor,
    )

    # ---- model, optimizer, schedule, reference policy
    model = _load_trainable(cfg, base_dir, start)
    if cfg.weights == "bf16":
        model = model.to(torch.bfloat16)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.train()
    optimizer, scheduler = _optimizer_and_schedule(cfg, model, torch)

    # The reference policy is the *starting* model: computed (or copied) before any update.
    ref = None
    if cfg.objective in ("dpo", "dco"):
        ref = _reference(cfg, model, base_dir, examples, collate, sampler, output, acc, main)

    # ---- resume: optimizer, schedule, RNG and sampler position
    model, optimizer = acc.prepare(model, optimizer)
    step = 0
    if start is not None:
        optimizer.load_state_dict(torch.load(start / "optimizer.pt", map_location="cpu", weights_only=True))
        scheduler.load_state_dict(torch.load(start / "scheduler.pt", map_location="cpu", weights_only=True))
        step = int(state["step"])
        _set_rng_state(torch, torch.load(start / "rng.pt", weights_only=True)[acc.process_index])
    feed_state = Feed(sampler, consumed=int(state.get("batches_consumed", 0)))
    forward = torch.compile(model) if cfg.compile else model  # the same parameters; checkpoints save `model`
    pin = acc.device.type == "cuda"
    if cfg.pack:
        make = lambda idx: pack(collate(examples.__getitems__(idx)), cfg.max_length, collate.pad)  # noqa: E731
    else:
        make = lambda idx: collate(examples.__getitems__(idx))  # noqa: E731
    batches = Prefetch(feed_state, make, acc.device, cfg.prefetch, pin)

    # ---- the optimizer steps
    if main:
        output.mkdir(parents=True, exist_ok=True)
        _truncate_log(output / LOG, after=step)  # entries of an interrupted run past its checkpoint
    target = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    log_path = output / LOG
    lang_names = sampler.langs
    window = _LogWindow(log_path, acc.num_processes)
    first_loss = last_loss = None
    total_tokens = total_rows = skipped = 0
    t_start = time.perf_counter()
    resumed_from = step
    packing_checked = False
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    bars = Progress(enabled=progress and main)
    try:
        with bars.task("train", "steps", total=cfg.steps) as bar:
            bar.advance(step)
            while step < target:
                micro_losses = []
                for micro in range(cfg.grad_accum):
                    batch = next(batches)
                    if cfg.pack and not packing_checked:  # one comparison with the padded layout, on a real batch
                        _check_packing(cfg, acc, model, batch)
                        packing_checked = True
                    sync = micro == cfg.grad_accum - 1
                    ctx = acc.no_sync(model) if not sync and acc.num_processes > 1 else contextlib.nullcontext()
                    with ctx, acc.autocast():
                        loss, per_row, stats = batch_loss(forward, batch, cfg, ref)
                        acc.backward(loss / cfg.grad_accum)
                    micro_losses.append(float(loss.detach()))
                    n_tok = int(batch["attention_mask"].sum())
                    window.add([lang_names[lg] for lg in batch["lang"].tolist()], per_row.tolist(), n_tok)
                    total_tokens += n_tok
                    total_rows += int(batch["group"].shape[0])
                    skipped += int((batch["labels"][: batch["group"].shape[0]] != -100).sum(1).eq(0).sum())
                if cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                last_loss = sum(micro_losses) / len(micro_losses)
                first_loss = last_loss if first_loss is None else first_loss
                bar.advance(1)
                if main and (step % cfg.log_every == 0 or step == target):
                    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
                    entry = window.flush(step, last_loss, scheduler.get_last_lr()[0], stats, memory)
                    per_lang = " ".join(f"{lg}={v:.3f}" for lg, v in entry["loss_by_lang"].items())
                    bars.note(f"step {step}: loss {last_loss:.4f} ({per_lang}), {entry['tokens_per_s'] or 0:.0f} tokens/s")
                if cfg.save_every and step % cfg.save_every == 0 and step < target:
                    _save(acc, model, tokenizer, optimizer, scheduler, cfg, output, step, batches.consumed, torch)
    finally:
        batches.close()

    # ---- the final checkpoint and the run's summary
    ckpt = _save(acc, model, tokenizer, optimizer, scheduler, cfg, output, step, batches.consumed, torch)
    seconds = time.perf_counter() - t_start
    result = TrainResult(
        output=output,
        checkpoint=ckpt,
        steps=step,
        resumed_from=resumed_from,
        rows=total_rows * acc.num_processes,
        tokens=total_tokens * acc.num_processes,
        seconds=seconds,
        first_loss=first_loss,
        last_loss=last_loss,
        loss_by_lang=_lang_means(log_path, since=resumed_from) if main else {},
        tokens_per_s=total_tokens * acc.num_processes / seconds if seconds > 0 else 0.0,
        peak_memory_gb=torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        skipped_empty_rows=skipped,
    )
    if main:
        (output / SUMMARY).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    acc.wait_for_everyone()
    return result


# ------------------------------------------------------------------------------------ internals
def _checkpoint_to_resume(cfg: TrainConfig, output: Path, resume: bool, num_processes: int) -> tuple[Path | None, dict[str, Any]]:
    """``(checkpoint, its state)`` to continue from (``(None, {})``: a fresh run); a clear error when
    ``output`` holds a run and ``resume`` is off, or the configuration or process count changed."""
    start = latest_checkpoint(output)
    if start is not None and not resume:
        raise ValueError(f"{output} already holds a training run ({start.name}): resume it, or choose another output directory")
    if resume and start is None:
        log.info("no checkpoint in %s: starting from step 0", output)
    state: dict[str, Any] = json.loads((start / STATE).read_text()) if start else {}
    if start is not None:
        saved = state.get("config", {})
        changed = sorted(
            k for k, v in cfg.to_dict().items() if saved.get(k) != v and k not in ("steps", "save_every", "log_every")
        )
        if changed:
            raise ValueError(
                f"cannot resume {start}: the configuration changed ({', '.join(changed)}); use a new output directory"
            )
        if state.get("num_processes", 1) != num_processes:  # its sampler position and RNG states are per process
            raise ValueError(
                f"cannot resume {start} on {num_processes} process(es): it was written by {state.get('num_processes', 1)}"
            )
    return start, state


def _optimizer_and_schedule(cfg: TrainConfig, model: Any, torch: Any) -> tuple[Any, Any]:
    """AdamW (no weight decay on biases and norms) and a linear schedule with warm-up over ``cfg.steps``."""
    from transformers import get_linear_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    return optimizer, get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)


class _LogWindow:
    """Per-language losses and tokens since the last log entry; :meth:`flush` appends the entry to the log."""

    def __init__(self, path: Path, num_processes: int) -> None:
        self.path, self.num_processes = path, num_processes
        self.losses: dict[str, list[float]] = defaultdict(list)
        self.tokens, self.t0 = 0, time.perf_counter()

    def add(self, langs: list[str], row_losses: list[float], tokens: int) -> None:
        for lang, value in zip(langs, row_losses, strict=True):
            if not math.isnan(value):
                self.losses[lang].append(value)
        self.tokens += tokens

    def flush(self, step: int, loss: float, lr: float, stats: dict[str, float], memory_gb: float | None) -> dict[str, Any]:
        dt = time.perf_counter() - self.t0
        entry = {
            "step": step,
            "loss": loss,
            "loss_by_lang": {lg: float(np.mean(v)) for lg, v in self.losses.items()},
            "tokens_per_s": self.tokens * self.num_processes / dt if dt > 0 else None,
            "lr": lr,
            **stats,
        }
        if memory_gb is not None:
            entry["max_memory_gb"] = memory_gb
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        self.losses.clear()
        self.tokens, self.t0 = 0, time.perf_counter()
        return entry


def _seed_everything(seed: int, torch: Any) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_trainable(cfg: TrainConfig, base_dir: Path, start: Path | None) -> Any:
    """The model to train: the base (or the checkpoint's weights), with a LoRA adapter when asked."""
    if not cfg.lora.enabled:
        return load_causal_lm(start or base_dir)
    from corpusalign.extras import require

    peft = require("peft", extra="lora", purpose="LoRA training")
    base = load_causal_lm(base_dir)
    if start is not None:
        return peft.PeftModel.from_pretrained(base, start, is_trainable=True)
    lora = peft.LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return peft.get_peft_model(base, lora)


def _reference(
    cfg: TrainConfig,
    model: Any,
    base_dir: Path,
    examples: Examples,
    collate: Collator,
    sampler: Any,
    output: Path,
    acc: Any,
    main: bool,
) -> Any:
    import torch

    if cfg.reference == "model":
        if cfg.lora.enabled:
            return ModelReference(model, adapter_off=True)
        frozen = load_causal_lm(base_dir).to(acc.device).eval()  # the starting model, also on resume
        for p in frozen.parameters():
            p.requires_grad_(False)
        return ModelReference(frozen)
    path = output / REFERENCE
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return PrecomputedReference(saved["chosen"], saved["rejected"])
    # The pool of *every* rank (sampler.pool holds all training rows); each process computes it all,
    # which is cheap next to training and avoids a gather.
    device = acc.device
    model.to(device)
    with acc.autocast():
        ref = PrecomputedReference.compute(
            model, examples, collate, sampler.pool, device, batch_rows=cfg.concepts_per_batch * len(sampler.langs)
        )
    if main:
        output.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"chosen": ref.chosen, "rejected": ref.rejected}, tmp)
        os.replace(tmp, path)
    return ref


def _save(
    acc: Any,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    cfg: TrainConfig,
    output: Path,
    step: int,
    consumed: int,
    torch: Any,
) -> Path:
    """Write ``OUT/checkpoint-{step}`` atomically (a temporary directory renamed when complete)."""
    final = output / f"checkpoint-{step:06d}"
    tmp = output / f".checkpoint-{step:06d}.tmp"
    acc.wait_for_everyone()
    state_dict = acc.get_state_dict(model)
    rng = _gather_rng(acc, torch)
    if acc.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        acc.unwrap_model(model).save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng, tmp / "rng.pt")
        state = {"step": step, "batches_consumed": consumed, "config": cfg.to_dict(), "num_processes": acc.num_processes}
        (tmp / STATE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    acc.wait_for_everyone()
    return final


def _gather_rng(acc: Any, torch: Any) -> list[dict[str, Any]]:
    """RNG states of every process, indexed by rank (one process: a list of one)."""
    if acc.num_processes == 1:
        return [_rng_state(torch)]
    from accelerate.utils import gather_object

    return list(gather_object([_rng_state(torch)]))


def _truncate_log(log_path: Path, after: int) -> None:
    """Keep only the log entries of steps ``<= after`` (all of them go for a fresh run)."""
    if not log_path.is_file():
        return
    keep = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line and json.loads(line)["step"] <= after]
    log_path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


def _lang_means(log_path: Path, since: int) -> dict[str, float]:
    """Mean logged loss per language over the run's log entries after step ``since``."""
    sums: dict[str, list[float]] = defaultdict(list)
    if log_path.is_file():
        for line in log_path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry["step"] > since:
                for lg, v in entry.get("loss_by_lang", {}).items():
                    sums[lg].append(v)
    return {lg: float(np.mean(v)) for lg, v in sums.items()}
